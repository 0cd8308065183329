//! What a connection and the fan-out writer serving its viewer share: the connection's control
//! output on its way to the socket (it goes out between two messages, before the next one), what
//! the writer found (a write error, a full socket, a publisher change at this viewer's place in
//! the stream), and counters for the admin API. The connection keeps its socket for reading and
//! all of its deadlines; the writer only writes.

use super::OutQueue;
use super::shards::Inbox;
use crate::control::ConnControl;
use crate::registry::PlayerGuard;
use crate::util::lock;
use bytes::Bytes;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Why the writer stopped serving a viewer; the connection closes with the matching reason.
#[derive(Debug)]
pub(crate) enum LinkEnd {
    /// A write failed.
    Io(io::Error),
    /// The viewer fell a whole log behind more than `[play] max_lag_drops` times in a row.
    Lagged,
}

#[derive(Debug, Default)]
struct LinkState {
    /// Connection → writer: output to send before the next fan-out message.
    control: OutQueue,
    /// Connection → writer: the viewer is gone (the writer lets go of the socket).
    detached: bool,
    /// Connection → writer: the answer to `notice` is in `control`; go on past it.
    resume: bool,
    /// Writer → connection: a publisher started (`true`) or left here in the stream.
    notice: Option<bool>,
    /// Writer → connection: the writer stopped.
    end: Option<LinkEnd>,
}

/// The shared state of one viewer served by a fan-out writer.
#[derive(Debug)]
pub(crate) struct Link {
    pub(super) control: Arc<ConnControl>,
    state: Mutex<LinkState>,
    /// Writer → connection: look at [`Link::take_notice`], [`Link::take_end`], `blocked`.
    to_conn: Notify,
    /// Output is waiting for the socket (the last write did not take it all).
    blocked: AtomicBool,
    /// Fan-out messages this viewer is behind (admin API).
    pub(super) lag: AtomicUsize,
    /// Bytes waiting in the writer for this viewer, beyond the shared messages (admin API).
    pub(super) queued: AtomicUsize,
    /// When a write last made progress, in ms since `epoch`.
    last_tx_ms: AtomicU64,
    epoch: Instant,
    inbox: Arc<Inbox>,
}

impl Link {
    pub(super) fn new(control: Arc<ConnControl>, inbox: Arc<Inbox>, now: Instant) -> Arc<Self> {
        Arc::new(Self {
            control,
            state: Mutex::default(),
            to_conn: Notify::new(),
            blocked: AtomicBool::new(false),
            lag: AtomicUsize::new(0),
            queued: AtomicUsize::new(0),
            last_tx_ms: AtomicU64::new(0),
            epoch: now,
            inbox,
        })
    }

    // --- the writer's side ---

    /// Takes the connection's control output (and whether it answered a notice), and whether
    /// the viewer is gone.
    pub(super) fn take_control(&self, into: &mut OutQueue) -> (bool, bool) {
        let mut s = lock(&self.state);
        while let Some(b) = s.control.pop_front() {
            into.push(b);
        }
        (std::mem::take(&mut s.resume), s.detached)
    }

    pub(super) fn notice(&self, live: bool) {
        lock(&self.state).notice = Some(live);
        self.to_conn.notify_one();
    }

    pub(super) fn end(&self, end: LinkEnd) {
        lock(&self.state).end = Some(end);
        self.to_conn.notify_one();
    }

    pub(super) fn set_blocked(&self, blocked: bool) {
        if self.blocked.swap(blocked, Ordering::Relaxed) != blocked && blocked {
            self.to_conn.notify_one();
        }
    }

    pub(super) fn wrote(&self, n: usize, now: Instant) {
        self.control
            .bytes_out
            .fetch_add(n as u64, Ordering::Relaxed);
        let ms = u64::try_from(now.saturating_duration_since(self.epoch).as_millis()).unwrap_or(0);
        self.last_tx_ms.store(ms, Ordering::Relaxed);
    }

    pub(super) fn is_detached(&self) -> bool {
        lock(&self.state).detached
    }

    // --- the connection's side ---

    fn poke_writer(self: &Arc<Self>) {
        self.inbox.link_changed(self.clone());
    }
}

/// A connection's viewer while a fan-out writer serves it: the player's place in the
/// registry and the link. Dropping it lets the writer know the viewer is gone.
#[derive(Debug)]
pub(crate) struct Seated {
    /// Held for the registry's player count; the writer holds the stream itself.
    _guard: PlayerGuard,
    link: Arc<Link>,
}

impl Seated {
    pub(super) fn new(guard: PlayerGuard, link: Arc<Link>) -> Self {
        Self {
            _guard: guard,
            link,
        }
    }

    /// Queues control output: it goes out before the next fan-out message.
    pub(crate) fn send(&self, b: Bytes) {
        lock(&self.link.state).control.push(b);
        self.link.poke_writer();
    }

    /// The answer to a notice is queued (with [`Self::send`] before): the writer goes on.
    pub(crate) fn resume(&self) {
        lock(&self.link.state).resume = true;
        self.link.poke_writer();
    }

    /// A publisher change the writer reached at this viewer's place, to be answered.
    pub(crate) fn take_notice(&self) -> Option<bool> {
        lock(&self.link.state).notice.take()
    }

    /// Why the writer stopped, if it did.
    pub(crate) fn take_end(&self) -> Option<LinkEnd> {
        lock(&self.link.state).end.take()
    }

    /// Whether output is waiting for the socket.
    pub(crate) fn blocked(&self) -> bool {
        self.link.blocked.load(Ordering::Relaxed)
    }

    /// Fan-out messages the viewer is behind.
    pub(crate) fn lag(&self) -> usize {
        self.link.lag.load(Ordering::Relaxed)
    }

    /// Bytes waiting in the writer beyond the shared messages.
    pub(crate) fn queued(&self) -> usize {
        self.link.queued.load(Ordering::Relaxed)
    }

    /// When a write last made progress (the link's start if none did).
    pub(crate) fn last_tx(&self) -> Instant {
        self.link.epoch + Duration::from_millis(self.link.last_tx_ms.load(Ordering::Relaxed))
    }

    /// Resolves when the writer has something for the connection to look at.
    pub(crate) async fn changed(&self) {
        self.link.to_conn.notified().await;
    }
}

impl Drop for Seated {
    fn drop(&mut self) {
        lock(&self.link.state).detached = true;
        self.link.poke_writer();
    }
}
