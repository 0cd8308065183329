//! One relay's shared handle: what it is (push or pull, local stream, masked URL), where its
//! life stands ([`Lifecycle`]), its current connection, and what the admin API lists. The
//! supervisor task and the connection core update it; the admin side only reads it.

use super::hold::NameHold;
use super::policy::{Jitter, Lifecycle, RelayState};
use crate::config::RelayUrl;
use crate::control::{ConnControl, Protocol};
use crate::util::{lock, millis};
use rtmp_proto::session::CloseReason;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Which way a relay goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RelayKind {
    /// A local stream published to another server.
    Push,
    /// A stream played from an origin and published locally.
    Pull,
}

impl RelayKind {
    /// What its connections speak.
    pub(crate) fn protocol(self) -> Protocol {
        match self {
            Self::Push => Protocol::RtmpPush,
            Self::Pull => Protocol::RtmpPull,
        }
    }
}

/// How a relay's last connection (or connect attempt) ended.
#[derive(Debug, Clone)]
struct LastClose {
    reason: &'static str,
    detail: String,
    at: Instant,
}

#[derive(Debug)]
struct Inner {
    life: Lifecycle,
    current: Option<Arc<ConnControl>>,
    last_close: Option<LastClose>,
    /// Bytes of the connections that ended.
    bytes_in: u64,
    bytes_out: u64,
}

/// One relay: a push target of one local stream, or the pull of one local name.
#[derive(Debug)]
pub(crate) struct RelayHandle {
    pub(crate) id: u64,
    pub(crate) kind: RelayKind,
    /// Its `[[relay.push]]` / `[[relay.pull]]` entry.
    pub(crate) entry: usize,
    /// The local stream: `app`, `name` and `app/name`.
    pub(crate) app: String,
    pub(crate) name: String,
    pub(crate) key: String,
    /// Where it connects (a cluster pull follows its name's owner: see [`Self::retarget`]).
    url: Mutex<RelayUrl>,
    /// The URL changed: the current connection is to end and the next go to the new one.
    moved: std::sync::atomic::AtomicBool,
    /// For a pull: how long it outlives its last player.
    pub(crate) idle_after: Duration,
    /// The registry changed something about the local stream: look again.
    poke: Notify,
    inner: Mutex<Inner>,
    /// A pull's hold on the local name while no connection carries it (see `hold`).
    hold: Mutex<Option<NameHold>>,
}

/// A relay as `GET /api/v1/relays` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RelayView {
    /// Unique within this server process.
    pub id: u64,
    /// `push` or `pull`.
    pub kind: RelayKind,
    /// The local stream, `app/name`.
    pub stream: String,
    /// The upstream (push) or origin (pull), keys masked.
    pub url: String,
    /// `connecting`, `live` or `backoff`.
    pub state: RelayState,
    /// How long it has been in that state.
    pub state_ms: u64,
    /// The current connection's id (in `/api/v1/connections`), if connected.
    pub conn: Option<u64>,
    /// Connection attempts so far.
    pub attempts: u64,
    /// Attempts after the first.
    pub reconnects: u64,
    /// How the last attempt ended: `reason` (a close reason label), `detail` (the upstream's
    /// own words for a refusal), `ago_ms`.
    pub last_close: Option<serde_json::Value>,
    /// Bytes received and sent over all its connections.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// The current connection's media rate (sent for a push, received for a pull), bits/s.
    pub bitrate_bps: u64,
    /// In back-off: when the next attempt starts.
    pub retry_in_ms: Option<u64>,
    /// The back-off step a failure waits now (before jitter).
    pub backoff_ms: u64,
}

impl RelayHandle {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: u64,
        kind: RelayKind,
        entry: usize,
        key: &str,
        url: RelayUrl,
        idle_after: Duration,
        retry: (Duration, Duration),
        now: Instant,
    ) -> Self {
        let (app, name) = key.split_once('/').unwrap_or((key, ""));
        Self {
            id,
            kind,
            entry,
            app: app.to_owned(),
            name: name.to_owned(),
            key: key.to_owned(),
            url: Mutex::new(url),
            moved: std::sync::atomic::AtomicBool::new(false),
            idle_after,
            poke: Notify::new(),
            inner: Mutex::new(Inner {
                life: Lifecycle::new(now, retry.0, retry.1),
                current: None,
                last_close: None,
                bytes_in: 0,
                bytes_out: 0,
            }),
            hold: Mutex::new(None),
        }
    }

    /// Takes the pull's hold on the local name (for a connection to carry).
    pub(crate) fn take_hold(&self) -> Option<NameHold> {
        lock(&self.hold).take()
    }

    /// Gives a hold back (a connection ended) or sets a new one. A hold that still has the name
    /// is never replaced by one that lost it (a kicked connection's, returned after a new claim).
    /// The hold left over is dropped after the lock: dropping one may tell the watcher.
    pub(crate) fn put_hold(&self, hold: Option<NameHold>) {
        let mut slot = lock(&self.hold);
        let keep_old = slot.as_ref().is_some_and(NameHold::is_current)
            && !hold.as_ref().is_some_and(NameHold::is_current);
        let left_over = if keep_old {
            hold
        } else {
            std::mem::replace(&mut *slot, hold)
        };
        drop(slot);
        drop(left_over);
    }

    /// Whether the handle keeps a hold that has the name now.
    pub(crate) fn holds_current(&self) -> bool {
        lock(&self.hold).as_ref().is_some_and(NameHold::is_current)
    }

    /// The upstream URL for this stream, keys masked.
    pub(crate) fn masked_url(&self) -> String {
        self.url().masked(Some(&self.name))
    }

    /// Where it connects now.
    pub(crate) fn url(&self) -> RelayUrl {
        lock(&self.url).clone()
    }

    /// Connects to `url` from now on (a cluster pull whose name moved to another node); the
    /// current connection, if any, is ended by the supervisor. Returns whether it changed.
    pub(crate) fn retarget(&self, url: RelayUrl) -> bool {
        let mut cur = lock(&self.url);
        if *cur == url {
            return false;
        }
        *cur = url;
        drop(cur);
        self.moved.store(true, std::sync::atomic::Ordering::Relaxed);
        self.poke();
        true
    }

    /// Whether the URL changed since last asked.
    pub(crate) fn take_moved(&self) -> bool {
        self.moved.swap(false, std::sync::atomic::Ordering::Relaxed)
    }

    /// Wakes the supervisor to look at the local stream again (a stored permit if it is busy).
    pub(crate) fn poke(&self) {
        self.poke.notify_one();
    }

    /// Resolves once [`Self::poke`] was called.
    pub(crate) async fn poked(&self) {
        self.poke.notified().await;
    }

    pub(crate) fn state(&self) -> RelayState {
        lock(&self.inner).life.state()
    }

    /// An attempt starts.
    pub(crate) fn connecting(&self, now: Instant) {
        lock(&self.inner).life.connecting(now);
    }

    /// The attempt's connection is open.
    pub(crate) fn connected(&self, control: Arc<ConnControl>) {
        lock(&self.inner).current = Some(control);
    }

    /// Media flows (the push's upstream accepted it, the pull got the origin's first media).
    pub(crate) fn went_live(&self, now: Instant) {
        lock(&self.inner).life.live(now);
    }

    /// The attempt ended with `reason`: records it and returns the back-off wait.
    pub(crate) fn ended(
        &self,
        reason: &CloseReason,
        now: Instant,
        jitter: &mut impl Jitter,
    ) -> Duration {
        let mut inner = lock(&self.inner);
        if let Some(c) = inner.current.take() {
            inner.bytes_in += c.bytes_in.load(Ordering::Relaxed);
            inner.bytes_out += c.bytes_out.load(Ordering::Relaxed);
        }
        inner.last_close = Some(LastClose {
            reason: reason.label(),
            detail: reason.to_string(),
            at: now,
        });
        inner.life.ended(now, jitter)
    }

    /// The admin API's view at `now`.
    pub(crate) fn view(&self, now: Instant) -> RelayView {
        let inner = lock(&self.inner);
        let life = &inner.life;
        let current = inner.current.as_ref();
        let live = |f: fn(&ConnControl) -> u64| current.map_or(0, |c| f(c));
        let bitrate_bps = current.map_or(0, |c| {
            let (rx, tx) = c.rates_bps(now);
            match self.kind {
                RelayKind::Push => tx,
                RelayKind::Pull => rx,
            }
        });
        RelayView {
            id: self.id,
            kind: self.kind,
            stream: self.key.clone(),
            url: self.masked_url(),
            state: life.state(),
            state_ms: millis(now.saturating_duration_since(life.since())),
            conn: current.map(|c| c.id),
            attempts: life.attempts(),
            reconnects: life.reconnects(),
            last_close: inner.last_close.as_ref().map(|l| {
                serde_json::json!({
                    "reason": l.reason,
                    "detail": l.detail,
                    "ago_ms": millis(now.saturating_duration_since(l.at)),
                })
            }),
            bytes_in: inner.bytes_in + live(|c| c.bytes_in.load(Ordering::Relaxed)),
            bytes_out: inner.bytes_out + live(|c| c.bytes_out.load(Ordering::Relaxed)),
            bitrate_bps,
            retry_in_ms: (life.state() == RelayState::Backoff)
                .then(|| life.retry_at())
                .flatten()
                .map(|at| millis(at.saturating_duration_since(now))),
            backoff_ms: millis(life.step()),
        }
    }
}
