//! HLS sessions: an HLS viewer is a series of HTTP requests, not a connection, so Lifeline
//! gives it a session (its id is in the playlist's URIs) that counts as a player of the
//! stream, shows in the admin API like a connection, and expires after three target
//! durations without a request — the HLS form of a dead viewer.

use crate::control::ConnControl;
use crate::live::LiveGuard;
use crate::registry::PlayerGuard;
use crate::stream::HlsUse;
use crate::util::lock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One HLS viewer.
#[derive(Debug)]
pub struct Session {
    /// Its handle, as a connection's (protocol `hls`).
    pub control: Arc<ConnControl>,
    /// `app/name`.
    pub stream_key: String,
    /// The app and the name, for the hook notifications.
    pub app: String,
    /// The stream name.
    pub name: String,
    /// Its hold on the stream's segmenter.
    pub(crate) hls: HlsUse,
    /// Its place in the live table, for the admin API.
    pub(crate) _live: LiveGuard,
    /// Its count among the stream's players.
    pub(crate) _player: PlayerGuard,
    /// Its last request.
    pub last: Instant,
}

/// Every open HLS session, by id.
#[derive(Debug, Default)]
pub struct HlsSessions {
    map: Mutex<HashMap<String, Session>>,
    /// Signalled on every insert: the reaper sleeps on it while no session is open, so an
    /// idle server has no timer firing (a permit is kept when nobody waits yet).
    opened: tokio::sync::Notify,
}

impl HlsSessions {
    /// Adds `session` under a fresh random id (the capability its URIs carry); returns the id.
    pub(crate) fn insert(&self, session: Session) -> String {
        let mut map = lock(&self.map);
        loop {
            let id = format!("{:016x}", rand::random::<u64>());
            if !map.contains_key(&id) {
                map.insert(id.clone(), session);
                drop(map);
                self.opened.notify_one();
                return id;
            }
        }
    }

    /// A request of session `id` for `stream_key` at `now`: its segmenter, if the session
    /// exists and belongs to that stream.
    pub(crate) fn touch(
        &self,
        id: &str,
        stream_key: &str,
        now: Instant,
    ) -> Option<(Arc<crate::hls::HlsStream>, Arc<ConnControl>)> {
        let mut map = lock(&self.map);
        let s = map.get_mut(id).filter(|s| s.stream_key == stream_key)?;
        s.last = now;
        s.control.touch_rx(now, 0);
        Some((s.hls.hls().clone(), s.control.clone()))
    }

    /// Removes and returns the sessions silent for longer than their stream's bound
    /// (`expire_after` of its segmenter).
    pub(crate) fn expire(
        &self,
        now: Instant,
        expire_after: impl Fn(&Session) -> Duration,
    ) -> Vec<Session> {
        let mut map = lock(&self.map);
        let gone: Vec<String> = map
            .iter()
            .filter(|(_, s)| now.saturating_duration_since(s.last) > expire_after(s))
            .map(|(id, _)| id.clone())
            .collect();
        gone.iter().filter_map(|id| map.remove(id)).collect()
    }

    /// Resolves once a session was inserted since the last call (at once if one was).
    pub(crate) async fn opened(&self) {
        self.opened.notified().await;
    }

    /// Removes every session (server shutdown).
    pub(crate) fn drain(&self) -> Vec<Session> {
        lock(&self.map).drain().map(|(_, s)| s).collect()
    }

    /// Open sessions.
    pub fn len(&self) -> usize {
        lock(&self.map).len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
