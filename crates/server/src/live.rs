//! The table of live connections and the recent close events: what the admin API lists and
//! kicks. A connection is in the table from accept until its task ends (an RAII guard), so the
//! table never shows a connection that is gone nor misses one that is open.

use crate::control::{ConnControl, ConnRole};
use crate::metrics::ConnSample;
use crate::util::{lock, millis};
use rtmp_proto::session::CloseReason;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Close events kept for the dashboard (oldest dropped first).
const RECENT_CLOSES: usize = 200;

/// One connection's end, as the dashboard shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CloseEvent {
    /// Increasing number, so a poller asks only for what it has not seen.
    pub seq: u64,
    /// Connection id.
    pub id: u64,
    /// Peer address.
    pub peer: SocketAddr,
    /// What it spoke.
    pub protocol: crate::control::Protocol,
    /// Role held when it ended.
    pub role: ConnRole,
    /// Stream published or played.
    pub stream: Option<String>,
    /// `CloseReason::label()`.
    pub reason: &'static str,
    /// The reason with its detail, if any.
    pub detail: String,
    /// Peer silence when the connection was released, ms.
    pub silence_ms: u64,
    /// Connection age, ms.
    pub age_ms: u64,
    /// Wall-clock time of the close, ms since the Unix epoch.
    pub at_unix_ms: u64,
}

/// Live connections by id, and the last close events.
#[derive(Debug, Default)]
pub struct LiveTable {
    conns: Mutex<BTreeMap<u64, Arc<ConnControl>>>,
    closes: Mutex<VecDeque<CloseEvent>>,
    next_seq: AtomicU64,
}

/// Keeps a connection in the table; dropping it removes the connection.
#[derive(Debug)]
pub struct LiveGuard {
    table: Arc<LiveTable>,
    id: u64,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        lock(&self.table.conns).remove(&self.id);
    }
}

impl LiveTable {
    /// Adds a connection until the returned guard is dropped.
    pub fn insert(self: &Arc<Self>, control: Arc<ConnControl>) -> LiveGuard {
        let id = control.id;
        lock(&self.conns).insert(id, control);
        LiveGuard {
            table: self.clone(),
            id,
        }
    }

    /// One connection, if live.
    pub fn get(&self, id: u64) -> Option<Arc<ConnControl>> {
        lock(&self.conns).get(&id).cloned()
    }

    /// All live connections, by id.
    pub fn all(&self) -> Vec<Arc<ConnControl>> {
        lock(&self.conns).values().cloned().collect()
    }

    /// What a metrics scrape needs of every live connection.
    pub fn samples(&self) -> Vec<ConnSample> {
        lock(&self.conns)
            .values()
            .map(|c| ConnSample {
                protocol: c.protocol(),
                role: c.observed().role,
                bytes_in: c.bytes_in.load(Ordering::Relaxed),
                bytes_out: c.bytes_out.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Number of live connections.
    pub fn len(&self) -> usize {
        lock(&self.conns).len()
    }

    /// Whether no connection is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records the end of `control`'s connection (the viewer count by protocol included:
    /// a connection that played, or an HLS session).
    pub fn record_close(&self, control: &ConnControl, reason: &CloseReason, silence: Duration) {
        let observed = control.observed();
        let event = CloseEvent {
            seq: self.next_seq.fetch_add(1, Ordering::Relaxed) + 1,
            id: control.id,
            peer: control.peer,
            protocol: control.protocol(),
            role: observed.role,
            stream: observed.stream,
            reason: reason.label(),
            detail: reason.to_string(),
            silence_ms: millis(silence),
            age_ms: millis(control.started.elapsed()),
            at_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, millis),
        };
        let mut closes = lock(&self.closes);
        if closes.len() == RECENT_CLOSES {
            closes.pop_front();
        }
        closes.push_back(event);
    }

    /// Close events with `seq > after`, oldest first.
    pub fn closes_after(&self, after: u64) -> Vec<CloseEvent> {
        lock(&self.closes)
            .iter()
            .filter(|e| e.seq > after)
            .cloned()
            .collect()
    }
}
