//! A pull's hold on its local name. It is claimed when the first viewer is about to attach (so
//! that viewer starts on a live stream instead of hearing it unpublished), before any
//! connection to the origin exists, and it outlives the pull's connections: while the origin is
//! away the local players stay attached to a silent stream, and each new connection starts a
//! new publisher era ([`PublisherGuard::restart`]) — they get frames again without
//! reconnecting. The hold is the pull relay itself as a publisher (its own [`ConnControl`],
//! protocol `rtmp-pull`), claimed as an unauthorised newcomer: it takes a free name only, and
//! any authorised local publisher takes the name from it (`takeover::Incumbent::pulled`).

use super::RelayDeps;
use super::status::RelayHandle;
use crate::control::{ConnControl, Protocol};
use crate::registry::{PublishOutcome, PublishRefusal, PublisherGuard};
use rtmp_proto::session::{CloseReason, Media};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// The local name, held for a pull.
#[derive(Debug)]
pub(crate) struct NameHold {
    guard: PublisherGuard,
    /// The publisher the registry and the admin API see for the stream.
    holder: Arc<ConnControl>,
    /// No connection has published under this hold yet (its era is still the claim's).
    fresh: bool,
}

/// What a claim got.
#[derive(Debug)]
pub(crate) enum Claim {
    /// The name is the pull's.
    Held(NameHold),
    /// A local publisher holds it: the pull yields.
    Busy,
    /// A `[limits]` bound refused it.
    Limit(String),
}

/// Claims `handle`'s local name if it is free.
pub(crate) fn claim(
    deps: &RelayDeps,
    handle: &RelayHandle,
    cancel: CancellationToken,
    now: Instant,
) -> Claim {
    // The origin's address when the URL names one; a host name is resolved per connection.
    let url = handle.url();
    let ip = url
        .host()
        .parse::<IpAddr>()
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let holder = Arc::new(ConnControl::speaking(
        Protocol::RtmpPull,
        deps.ids.fetch_add(1, Ordering::Relaxed),
        SocketAddr::new(ip, url.port()),
        cancel,
    ));
    let outcome = deps
        .registry
        .publish_claim(&handle.app, &handle.name, &holder, now, false);
    match outcome {
        PublishOutcome::Granted(guard) => {
            tracing::info!(relay = handle.id, stream = %handle.key, publisher = holder.id, "pull holds the local name");
            Claim::Held(NameHold {
                guard,
                holder,
                fresh: true,
            })
        }
        PublishOutcome::Refused(PublishRefusal::Limit(limit)) => Claim::Limit(limit.to_string()),
        PublishOutcome::Refused(_) | PublishOutcome::Challenged(_) => Claim::Busy,
    }
}

impl NameHold {
    /// Whether the hold still has the name (an operator's kick or a local publisher may have
    /// taken it; the registry then closed the holder with that reason).
    pub(crate) fn is_current(&self) -> bool {
        self.guard
            .stream()
            .snapshot()
            .publisher
            .is_some_and(|p| p.id == self.holder.id)
    }

    /// Why the name was taken from the hold (`kicked`, `taken_over`), if it was.
    pub(crate) fn lost(&self) -> Option<CloseReason> {
        self.holder.requested_reason()
    }

    /// A connection's first media: a new era, unless it is the first under this hold.
    pub(crate) fn begin_connection(&mut self) {
        if !self.fresh {
            self.guard.restart();
        }
        self.fresh = false;
    }

    /// Publishes the origin's `media` to the local players.
    pub(crate) fn publish(&self, media: Media) {
        self.guard.publish(media);
    }

    /// Counts `n` bytes from the origin as the local publisher's (its bitrate in the API).
    pub(crate) fn received(&self, now: Instant, n: usize) {
        self.holder.touch_rx(now, n as u64);
    }

    /// Samples the local publisher's throughput (see `ConnControl::sample_rates`).
    pub(crate) fn sample_rates(&self, now: Instant) {
        self.holder.sample_rates(now);
    }
}
