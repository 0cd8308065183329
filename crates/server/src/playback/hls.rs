//! HLS on the playback port: the multivariant playlist opens a session; the session's media
//! playlist blocks for a part not made yet (`_HLS_msn` / `_HLS_part`, at most three target
//! durations, then 503), and so does a request for the preload-hint part.

use super::conn::{HttpConn, Phase};
use super::request::{Request, StreamPath};
use super::response::{self, Body};
use crate::control::{ConnControl, ConnRole, Protocol};
use crate::hls::HlsStream;
use crate::registry::PlayerGuard;
use crate::sessions::Session;
use crate::stream::HlsUse;
use crate::timers::ConnTimer;
use bytes::Bytes;
use lifeline_hls::{Directives, Lookup, MEDIA_CONTENT_TYPE, PLAYLIST_CONTENT_TYPE, Reload, Status};
use rtmp_proto::session::CloseReason;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Complete segments a stream has before a new session gets its playlist.
const MIN_SEGMENTS_TO_START: u64 = 2;

/// The playlist every session's URIs are relative to.
const MEDIA_PLAYLIST: &str = "media.m3u8";

/// A request waiting for the segmenter.
#[derive(Debug)]
pub(super) struct Blocked {
    pub(super) req: Request,
    /// The session the request belongs to (its bytes are counted there too).
    pub(super) session: Option<Arc<ConnControl>>,
    pub(super) hls: Arc<HlsStream>,
    pub(super) updates: watch::Receiver<u64>,
    pub(super) on: BlockedOn,
}

/// What a blocked request waits for.
#[derive(Debug)]
pub(super) enum BlockedOn {
    /// The stream to go live, to open a session (holding the viewer's place meanwhile).
    Index {
        stream: StreamPath,
        hold: Box<(PlayerGuard, HlsUse)>,
    },
    /// The part the playlist reload asks for.
    Playlist(Directives),
    /// A part or segment not made yet (the preload hint).
    Resource(String),
}

/// Ends the HLS sessions silent for three target durations (or kicked): each is closed like
/// a connection, with its one close reason in the log, the metrics and the hooks. Runs until
/// the server stops, then closes the rest with `shutdown`.
pub(crate) async fn reap_sessions(
    shared: Arc<crate::shared::Shared>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // No session, no timer: an idle server is never woken.
        if shared.sessions.is_empty() {
            tokio::select! {
                () = stop.cancelled() => break,
                () = shared.sessions.opened() => {}
            }
            tick.reset();
        }
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let expired = shared.sessions.expire(Instant::now(), |s| {
            if s.control.requested_reason().is_some() {
                return Duration::ZERO;
            }
            Duration::from_secs(
                s.hls
                    .hls()
                    .with(|seg| seg.target_duration())
                    .saturating_mul(3),
            )
        });
        for session in expired {
            let reason = session
                .control
                .requested_reason()
                .unwrap_or(CloseReason::SessionExpired);
            close_session(&shared, session, &reason);
        }
    }
    for session in shared.sessions.drain() {
        close_session(&shared, session, &CloseReason::Shutdown);
    }
}

fn close_session(shared: &crate::shared::Shared, session: Session, reason: &CloseReason) {
    use crate::evidence::{CloseLine, log_close};
    use std::sync::atomic::Ordering;
    let control = session.control.clone();
    let silence = session.last.elapsed();
    let line = CloseLine {
        role: ConnRole::Player.label(),
        stream: Some(&session.stream_key),
        silent: silence,
    };
    log_close(&control, line, reason, None);
    let held = crate::access::Held {
        app: &session.app,
        stream: Some(&session.name),
        since: control.started,
    };
    crate::access::notify(
        shared,
        &control,
        crate::hooks::Notice::PlayDone,
        held,
        reason.label(),
    );
    crate::access::notify(
        shared,
        &control,
        crate::hooks::Notice::Close,
        held,
        reason.label(),
    );
    // Leave the live table (and the stream's players, and its segmenter) first.
    drop(session);
    shared.metrics.record_close(
        reason,
        silence,
        control.bytes_in.load(Ordering::Relaxed),
        control.bytes_out.load(Ordering::Relaxed),
    );
    shared.live.record_close(&control, reason, silence);
    shared.metrics.record_viewer_close(Protocol::Hls, reason);
}

/// What a look at the segmenter decides.
enum Answer {
    /// 200 with this body and content type.
    Ok(Bytes, &'static str),
    /// 200 with the media playlist.
    Playlist,
    /// Not yet: keep waiting.
    Wait,
    /// An error status and its reason.
    Error(u16, String),
}

impl HttpConn {
    /// `/{app}/{name}/index.m3u8`, authorised: hold a player's place and open a session as
    /// soon as the stream is live.
    pub(super) fn hls_index(&mut self, req: Request, stream: StreamPath, now: Instant) {
        self.control.set_protocol(Protocol::Hls);
        let player = match self.shared.registry.try_watch(&stream.app, &stream.name) {
            Ok(p) => p,
            Err(limit) => return self.answer_error(503, &limit.to_string(), false, now),
        };
        let hls = player.stream().use_hls();
        let h = hls.hls().clone();
        let updates = h.subscribe();
        let blocked = Blocked {
            req,
            session: None,
            hls: h,
            updates,
            on: BlockedOn::Index {
                stream,
                hold: Box::new((player, hls)),
            },
        };
        let wait = self
            .shared
            .config
            .playback
            .wait_for_publisher
            .max(self.shared.config.playback.hls_segment_duration * 3);
        self.timers.set(ConnTimer::Blocked, now + wait);
        self.phase = Phase::Blocked(blocked);
        self.recheck_blocked(now);
    }

    /// `/{app}/{name}/s/{session}/{file}`: the session's id is its credential.
    pub(super) fn hls_session(
        &mut self,
        req: Request,
        stream: StreamPath,
        session: &str,
        file: String,
        now: Instant,
    ) {
        self.control.set_protocol(Protocol::Hls);
        let key = stream.to_string();
        let Some((hls, session)) = self.shared.sessions.touch(session, &key, now) else {
            return self.answer_error(
                404,
                "no such HLS session (it expired): load index.m3u8 again",
                req.keep_alive,
                now,
            );
        };
        let on = if file == MEDIA_PLAYLIST {
            match Directives::from_query(&req.query) {
                Ok(d) => BlockedOn::Playlist(d),
                Err(why) => return self.answer_error(400, why, req.keep_alive, now),
            }
        } else {
            BlockedOn::Resource(file)
        };
        let timeout = hls
            .with(|s| s.blocking_timeout())
            .max(Duration::from_secs(1));
        let updates = hls.subscribe();
        self.timers.set(ConnTimer::Blocked, now + timeout);
        self.phase = Phase::Blocked(Blocked {
            req,
            session: Some(session),
            hls,
            updates,
            on,
        });
        self.recheck_blocked(now);
    }

    /// The segmenter changed (or a request just arrived): answer the blocked request if its
    /// part is there.
    pub(super) fn recheck_blocked(&mut self, now: Instant) {
        let Phase::Blocked(b) = &mut self.phase else {
            return;
        };
        b.updates.mark_unchanged();
        let answer = b.hls.with(|seg| match &b.on {
            BlockedOn::Index { .. } => match seg.status() {
                // A cold segmenter (this viewer started it) lists one segment at first;
                // players pick their live edge from the playlist they get first, so it is
                // held until two are complete (about two GOPs), as in any warm stream.
                Status::Live if seg.stats().segments >= MIN_SEGMENTS_TO_START => {
                    Answer::Ok(Bytes::new(), PLAYLIST_CONTENT_TYPE)
                }
                Status::Live => Answer::Wait,
                Status::Unsupported(why) => Answer::Error(415, why.to_string()),
                Status::Ended => Answer::Error(404, "the stream ended".into()),
                _ => Answer::Wait,
            },
            BlockedOn::Playlist(d) => match (seg.status(), seg.reload(*d)) {
                (Status::Unsupported(why), _) => Answer::Error(415, why.to_string()),
                // Rendered below, outside the segmenter's lock, once for all sessions.
                (_, Reload::Ready) => Answer::Playlist,
                (_, Reload::Wait) => Answer::Wait,
                (_, Reload::BadRequest(why)) => Answer::Error(400, why.into()),
            },
            BlockedOn::Resource(name) => match seg.lookup(name) {
                Lookup::Ready(bytes) => Answer::Ok(bytes, MEDIA_CONTENT_TYPE),
                Lookup::Pending => Answer::Wait,
                Lookup::NotFound => Answer::Error(404, format!("no HLS resource {name}")),
            },
        });
        let answer = match answer {
            Answer::Playlist => b
                .hls
                .media_playlist()
                .map_or(Answer::Wait, |p| Answer::Ok(p, PLAYLIST_CONTENT_TYPE)),
            other => other,
        };
        match answer {
            Answer::Wait | Answer::Playlist => {}
            Answer::Error(status, reason) => {
                let keep_alive = b.req.keep_alive;
                self.unblock();
                self.answer_error(status, &reason, keep_alive, now);
            }
            Answer::Ok(body, content_type) => {
                let Phase::Blocked(b) = std::mem::replace(&mut self.phase, Phase::Head) else {
                    return;
                };
                self.timers.stop(ConnTimer::Blocked);
                let body = match b.on {
                    BlockedOn::Index { stream, hold } => {
                        match self.open_session(&b.hls, stream, *hold, now) {
                            Some(playlist) => Bytes::from(playlist),
                            None => {
                                return self.answer_error(503, "no playlist yet", false, now);
                            }
                        }
                    }
                    _ => body,
                };
                if let Some(session) = &b.session {
                    session
                        .bytes_out
                        .fetch_add(body.len() as u64, std::sync::atomic::Ordering::Relaxed);
                }
                self.answer_ok(&b.req, body, content_type, now);
            }
        }
    }

    /// The blocked request waited its bound.
    pub(super) fn blocked_timed_out(&mut self, now: Instant) {
        let Phase::Blocked(b) = &self.phase else {
            return;
        };
        let (status, reason) = match &b.on {
            BlockedOn::Index { stream, hold } if hold.0.stream().snapshot().publisher.is_none() => {
                (404, format!("no publisher for {stream}"))
            }
            BlockedOn::Index { .. } => (503, "the stream has no playlist yet".to_owned()),
            _ => (503, "the requested part did not come in time".to_owned()),
        };
        let keep_alive = b.req.keep_alive;
        self.unblock();
        self.answer_error(status, &reason, keep_alive, now);
    }

    fn unblock(&mut self) {
        self.timers.stop(ConnTimer::Blocked);
        if matches!(self.phase, Phase::Blocked(_)) {
            self.phase = Phase::Head;
        }
    }

    /// Opens a session for the viewer whose place `hold` keeps; returns the multivariant
    /// playlist pointing at the session's media playlist.
    fn open_session(
        &mut self,
        hls: &HlsStream,
        stream: StreamPath,
        (player, hls_use): (PlayerGuard, HlsUse),
        now: Instant,
    ) -> Option<String> {
        let control = Arc::new(ConnControl::speaking(
            Protocol::Hls,
            self.shared.next_id(),
            self.control.peer,
            tokio_util::sync::CancellationToken::new(),
        ));
        let key = stream.to_string();
        control.update_observed(|o| {
            o.role = ConnRole::Player;
            o.stream = Some(key.clone());
        });
        let live = self.shared.live.insert(control.clone());
        let session_conn = control.id;
        let id = self.shared.sessions.insert(Session {
            control,
            stream_key: key.clone(),
            app: stream.app.clone(),
            name: stream.name.clone(),
            hls: hls_use,
            _live: live,
            _player: player,
            last: now,
        });
        tracing::info!(conn = self.control.id, session_conn, peer = %self.control.peer, stream = %key, protocol = "hls", "play");
        self.played = Some((stream, now));
        hls.with(|s| s.multivariant_playlist(&format!("s/{id}/{MEDIA_PLAYLIST}")))
    }

    /// A 200 answer with `body` (just the head for HEAD).
    fn answer_ok(&mut self, req: &Request, body: Bytes, content_type: &str, now: Instant) {
        let head = response::head(
            200,
            content_type,
            Body::Length(body.len()),
            req.keep_alive,
            &self.shared.config.playback.allow_origin,
            &[],
        );
        self.out.push(head);
        if !req.head_only {
            self.out.push(body);
        }
        self.out.seal_raw();
        self.answered(req.keep_alive, now);
    }
}
