//! The shared handle of one connection: what other tasks (takeover, kick, shutdown, the admin
//! API) may see of it and do to it. A leaf of the crate's module graph: the registry, the
//! live table, metrics and the admin API all hold these handles, and none of them needs the
//! connection task's code.

use crate::util::lock;
use rtmp_proto::session::CloseReason;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The protocol a connection (or an HLS session) speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Protocol {
    /// RTMP, publishers and players.
    #[serde(rename = "rtmp")]
    Rtmp,
    /// HTTP-FLV viewers.
    #[serde(rename = "http-flv")]
    HttpFlv,
    /// Fragmented-MP4 viewers over HTTP (the dashboard's watch view).
    #[serde(rename = "http-mp4")]
    HttpMp4,
    /// HLS viewers: a session spanning many HTTP requests.
    #[serde(rename = "hls")]
    Hls,
    /// An HTTP connection on the playback port that has not asked for a stream yet.
    #[serde(rename = "http")]
    Http,
    /// An outgoing relay connection publishing a local stream to another server.
    #[serde(rename = "rtmp-push")]
    RtmpPush,
    /// An outgoing relay connection playing a stream from an origin to publish it locally.
    #[serde(rename = "rtmp-pull")]
    RtmpPull,
}

impl Protocol {
    /// Every protocol, for metrics that must show zero counts too.
    pub const ALL: [Protocol; 7] = [
        Self::Rtmp,
        Self::HttpFlv,
        Self::HttpMp4,
        Self::Hls,
        Self::Http,
        Self::RtmpPush,
        Self::RtmpPull,
    ];

    /// A stable label for JSON and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::Rtmp => "rtmp",
            Self::HttpFlv => "http-flv",
            Self::HttpMp4 => "http-mp4",
            Self::Hls => "hls",
            Self::Http => "http",
            Self::RtmpPush => "rtmp-push",
            Self::RtmpPull => "rtmp-pull",
        }
    }

    fn index(self) -> u8 {
        self as u8
    }

    /// Whether this is an outgoing relay connection (a push or a pull), not a viewer.
    pub fn is_relay(self) -> bool {
        matches!(self, Self::RtmpPush | Self::RtmpPull)
    }

    fn from_index(i: u8) -> Self {
        Self::ALL.get(usize::from(i)).copied().unwrap_or(Self::Http)
    }
}

/// Shared state of one connection.
#[derive(Debug)]
pub struct ConnControl {
    /// Unique id within this server process.
    pub id: u64,
    /// What it speaks (an HTTP connection becomes `HttpFlv` once it asks for a stream).
    protocol: std::sync::atomic::AtomicU8,
    /// The peer's address.
    pub peer: SocketAddr,
    /// When the connection was accepted.
    pub started: Instant,
    cancel: CancellationToken,
    reason: Mutex<Option<CloseReason>>,
    /// Microseconds after `started` at which the peer last sent a byte.
    last_rx_us: AtomicU64,
    /// Smoothed RTT from TCP_INFO, µs (refreshed by the connection's own task).
    srtt_us: AtomicU32,
    /// A newcomer wants this publisher's name: ping now.
    challenged: Notify,
    /// Bytes received so far.
    pub bytes_in: AtomicU64,
    /// Bytes written so far.
    pub bytes_out: AtomicU64,
    /// What the connection task last published about itself, for the admin API.
    observed: Mutex<Observed>,
    /// The socket's descriptor while a [`LentSocket`] owns the socket: the admin API reads
    /// TCP_INFO through it under this lock, and the lease clears it (taking the lock) before
    /// the socket closes, so a reused descriptor number is never read.
    fd: Mutex<Option<RawFd>>,
    /// Receive and send rates in bits/s, sampled about once a second by the connection's own
    /// task as it wakes (an idle connection costs nothing).
    rates: Mutex<Rates>,
}

/// What a connection is doing, as the admin API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnRole {
    /// Handshake, connect or createStream still under way: no publish or play granted yet.
    Handshaking,
    /// Its publish or play ended; neither publishing nor playing now.
    Idle,
    /// Holds a stream name.
    Publisher,
    /// Plays a stream.
    Player,
}

impl ConnRole {
    /// Every role, for metrics that must show zero counts too.
    pub const ALL: [ConnRole; 4] = [Self::Handshaking, Self::Idle, Self::Publisher, Self::Player];

    /// A stable label for JSON and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::Handshaking => "handshaking",
            Self::Idle => "idle",
            Self::Publisher => "publisher",
            Self::Player => "player",
        }
    }
}

/// A snapshot the connection task refreshes each time it wakes up (cheap: one uncontended
/// lock), so the admin side never has to ask the task anything.
#[derive(Debug, Clone)]
pub struct Observed {
    /// Current role.
    pub role: ConnRole,
    /// `app/name` published or played.
    pub stream: Option<String>,
    /// When our last write made progress.
    pub last_tx: Instant,
    /// Bytes queued in user space, not yet accepted by the socket.
    pub queue_bytes: usize,
    /// Fan-out messages a player has not taken yet.
    pub fanout_lag: usize,
    /// The connection's next deadline, whatever it does, by its label.
    pub next: Option<(&'static str, Instant)>,
    /// The deadline that will close the connection if nothing happens, and the close
    /// reason label it would give.
    pub closing: Option<(&'static str, Instant)>,
}

/// How often a connection task samples its throughput.
pub(crate) const RATES_EVERY: Duration = Duration::from_secs(1);
/// A sample older than this is no longer the current rate.
const RATES_STALE: Duration = Duration::from_secs(2);

/// Throughput measured between two samples.
#[derive(Debug, Clone, Copy, Default)]
struct Rates {
    at: Option<Instant>,
    bytes_in: u64,
    bytes_out: u64,
    in_bps: u64,
    out_bps: u64,
}

impl ConnControl {
    /// A handle for a connection accepted now; `cancel` is a child of the server's shutdown token.
    pub fn new(id: u64, peer: SocketAddr, cancel: CancellationToken) -> Self {
        Self::speaking(Protocol::Rtmp, id, peer, cancel)
    }

    /// A handle for a connection (or HLS session) of `protocol` accepted now.
    pub fn speaking(
        protocol: Protocol,
        id: u64,
        peer: SocketAddr,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            id,
            protocol: std::sync::atomic::AtomicU8::new(protocol.index()),
            peer,
            started: Instant::now(),
            cancel,
            reason: Mutex::new(None),
            last_rx_us: AtomicU64::new(0),
            srtt_us: AtomicU32::new(0),
            challenged: Notify::new(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            observed: Mutex::new(Observed {
                role: ConnRole::Handshaking,
                stream: None,
                last_tx: Instant::now(),
                queue_bytes: 0,
                fanout_lag: 0,
                next: None,
                closing: None,
            }),
            fd: Mutex::new(None),
            rates: Mutex::new(Rates::default()),
        }
    }

    /// What the connection speaks.
    pub fn protocol(&self) -> Protocol {
        Protocol::from_index(self.protocol.load(Ordering::Relaxed))
    }

    /// An HTTP connection says what it serves once it knows.
    pub(crate) fn set_protocol(&self, protocol: Protocol) {
        self.protocol.store(protocol.index(), Ordering::Relaxed);
    }

    /// The connection's last self-report.
    pub fn observed(&self) -> Observed {
        lock(&self.observed).clone()
    }

    /// Runs `f` on the connection's last self-report (for the task to update it in place).
    pub(crate) fn update_observed(&self, f: impl FnOnce(&mut Observed)) {
        f(&mut lock(&self.observed));
    }

    /// Lends `socket`'s descriptor to the admin API (see [`Self::with_socket`]) for as long
    /// as the returned lease, which owns the socket, lives.
    pub fn lend<S: AsRawFd>(self: &Arc<Self>, socket: S) -> LentSocket<S> {
        *lock(&self.fd) = Some(socket.as_raw_fd());
        LentSocket {
            control: self.clone(),
            socket,
        }
    }

    /// Runs `f` on the connection's socket if it is still open. The lock is held meanwhile, so
    /// `f` must be quick (a getsockopt or two).
    pub fn with_socket<T>(&self, f: impl FnOnce(std::os::fd::BorrowedFd<'_>) -> T) -> Option<T> {
        let slot = lock(&self.fd);
        let fd = (*slot)?;
        #[allow(unsafe_code)]
        // SAFETY: the descriptor is set by `lend` and cleared, under this same lock, by the
        // lease's `Drop` before the socket it owns is dropped — on every path, a panic or a
        // dropped task future included — so while the lock is held it is open and still this
        // connection's socket.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        Some(f(borrowed))
    }

    /// Takes a throughput sample now; rates are bits per second since the previous sample.
    pub(crate) fn sample_rates(&self, now: Instant) {
        let bytes_in = self.bytes_in.load(Ordering::Relaxed);
        let bytes_out = self.bytes_out.load(Ordering::Relaxed);
        let mut r = lock(&self.rates);
        if let Some(at) = r.at {
            let secs = now.saturating_duration_since(at).as_secs_f64();
            if secs >= 0.05 {
                r.in_bps = bps(bytes_in.saturating_sub(r.bytes_in), secs);
                r.out_bps = bps(bytes_out.saturating_sub(r.bytes_out), secs);
            } else {
                return;
            }
        }
        *r = Rates {
            at: Some(now),
            bytes_in,
            bytes_out,
            ..*r
        };
    }

    /// (receive, send) rates in bits/s at `now`: the last sample's, or, when the task has not
    /// sampled for a while (it sleeps while nothing happens), the average since its last sample.
    pub fn rates_bps(&self, now: Instant) -> (u64, u64) {
        let r = lock(&self.rates);
        match r.at {
            Some(at) if now.saturating_duration_since(at) > RATES_STALE => {
                let secs = now.saturating_duration_since(at).as_secs_f64();
                let bytes_in = self.bytes_in.load(Ordering::Relaxed);
                let bytes_out = self.bytes_out.load(Ordering::Relaxed);
                (
                    bps(bytes_in.saturating_sub(r.bytes_in), secs),
                    bps(bytes_out.saturating_sub(r.bytes_out), secs),
                )
            }
            _ => (r.in_bps, r.out_bps),
        }
    }

    /// Asks the connection to close with `reason`; the first reason given wins.
    pub fn close(&self, reason: CloseReason) {
        let mut slot = lock(&self.reason);
        if slot.is_none() {
            *slot = Some(reason);
        }
        drop(slot);
        self.cancel.cancel();
    }

    /// The reason given to [`Self::close`], if any.
    pub fn requested_reason(&self) -> Option<CloseReason> {
        lock(&self.reason).clone()
    }

    /// Resolves when the connection was asked to close (or the server shuts down).
    pub fn cancelled(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.cancel.cancelled()
    }

    /// Records that the peer sent something at `now`.
    pub fn touch_rx(&self, now: Instant, bytes: u64) {
        let us = u64::try_from(now.saturating_duration_since(self.started).as_micros())
            .unwrap_or(u64::MAX);
        self.last_rx_us.store(us, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes, Ordering::Relaxed);
    }

    /// When the peer last sent a byte (the accept time if never).
    pub fn last_rx(&self) -> Instant {
        self.started + Duration::from_micros(self.last_rx_us.load(Ordering::Relaxed))
    }

    /// Asks the connection to prove it is alive (it sends an RTMP Ping Request at once).
    pub fn challenge(&self) {
        self.challenged.notify_one();
    }

    /// Resolves when [`Self::challenge`] was called.
    pub(crate) async fn challenged(&self) {
        self.challenged.notified().await;
    }

    /// The peer's smoothed RTT as last measured.
    pub fn srtt(&self) -> Duration {
        Duration::from_micros(u64::from(self.srtt_us.load(Ordering::Relaxed)))
    }

    /// Records the peer's smoothed RTT.
    pub(crate) fn set_srtt(&self, rtt: Duration) {
        let us = u32::try_from(rtt.as_micros()).unwrap_or(u32::MAX);
        self.srtt_us.store(us, Ordering::Relaxed);
    }
}

/// A socket whose descriptor is lent to the admin API through its [`ConnControl`]. The loan
/// is withdrawn in `Drop`, which runs before the owned socket itself is dropped (closed), so
/// the admin side can never read a closed or reused descriptor.
#[derive(Debug)]
pub struct LentSocket<S: AsRawFd> {
    control: Arc<ConnControl>,
    socket: S,
}

impl<S: AsRawFd> std::ops::Deref for LentSocket<S> {
    type Target = S;
    fn deref(&self) -> &S {
        &self.socket
    }
}

impl<S: AsRawFd> Drop for LentSocket<S> {
    fn drop(&mut self) {
        *lock(&self.control.fd) = None;
    }
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn bps(bytes: u64, secs: f64) -> u64 {
    (bytes as f64 * 8.0 / secs) as u64
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_fd_loan_ends_with_the_lease_even_in_a_panic() {
        let control = Arc::new(ConnControl::new(
            1,
            "127.0.0.1:1".parse().unwrap(),
            CancellationToken::new(),
        ));
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let lease = control.lend(socket);
        assert!(
            control.with_socket(|_| ()).is_some(),
            "lent while the lease lives"
        );
        drop(lease);
        assert!(
            control.with_socket(|_| ()).is_none(),
            "withdrawn before the close"
        );

        let c2 = control.clone();
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _lease = c2.lend(std::net::TcpListener::bind("127.0.0.1:0").unwrap());
            panic!("the task panics while it owns the socket");
        }));
        assert!(unwound.is_err());
        assert!(
            control.with_socket(|_| ()).is_none(),
            "withdrawn on unwind too"
        );
    }
}
