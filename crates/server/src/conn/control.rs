//! The shared handle of one connection: what other tasks (takeover, kick, shutdown, the admin
//! API) may see of it and do to it.

use rtmp_proto::session::CloseReason;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Shared state of one connection.
#[derive(Debug)]
pub struct ConnControl {
    /// Unique id within this server process.
    pub id: u64,
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
}

impl ConnControl {
    /// A handle for a connection accepted now; `cancel` is a child of the server's shutdown token.
    pub fn new(id: u64, peer: SocketAddr, cancel: CancellationToken) -> Self {
        Self {
            id,
            peer,
            started: Instant::now(),
            cancel,
            reason: Mutex::new(None),
            last_rx_us: AtomicU64::new(0),
            srtt_us: AtomicU32::new(0),
            challenged: Notify::new(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
        }
    }

    /// Asks the connection to close with `reason`; the first reason given wins.
    pub fn close(&self, reason: CloseReason) {
        let mut slot = self
            .reason
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(reason);
        }
        drop(slot);
        self.cancel.cancel();
    }

    /// The reason given to [`Self::close`], if any.
    pub fn requested_reason(&self) -> Option<CloseReason> {
        self.reason
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
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
