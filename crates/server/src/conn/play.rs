//! The player's side of a connection: attaching to a stream through the RTMP sink, and the
//! kernel's evidence that a player's host is gone.

use super::core::{Held, RtmpConn};
use crate::control::ConnRole;
use crate::evidence::{Kernel, PEER_CHECK_EVERY, PeerCheck, peer_check_sparse};
use crate::fanout::{OutQueue, Sink, Viewer};
use crate::stream::Frame;
use crate::timers::ConnTimer;
use rtmp_proto::session::{CloseReason, ServerSession};
use std::time::Instant;

/// RTMP's wire format for fan-out: a frame is already chunked for every player (same chunk
/// size, message stream 1), so it is queued as is; publisher changes are the session's
/// `PublishNotify` / `UnpublishNotify` status messages, sent at once.
pub(super) struct RtmpSink<'a> {
    pub(super) session: &'a mut ServerSession,
}

impl Sink for RtmpSink<'_> {
    fn frame(&mut self, frame: &Frame, out: &mut OutQueue) {
        out.push(frame.chunks.clone());
    }

    fn publisher_changed(&mut self, live: bool, out: &mut OutQueue) -> bool {
        self.session.play_notify(live);
        let mut queued = false;
        while let Some(b) = self.session.take_output() {
            out.push(b);
            queued = true;
        }
        queued
    }
}

impl RtmpConn {
    /// Attaches to the stream (authorised by key and hook already), unless a limit refuses.
    pub(super) fn on_play(&mut self, name: &str, now: Instant) {
        let app = self.session.app().to_owned();
        let (guard, sub) = match self.shared.registry.try_play(&app, name) {
            Ok(attached) => attached,
            Err(refusal) => {
                tracing::info!(conn = self.control.id, peer = %self.control.peer, "play refused: {refusal}");
                self.session.reject_play(&refusal.to_string());
                self.close_after_refusal(CloseReason::Refused(refusal.to_string()), now);
                return;
            }
        };
        self.session.accept_play(name, sub.live);
        self.record.last_held = Some(ConnRole::Player);
        self.record.since = now;
        // The play replies go out before the cached start.
        self.settle(now);
        tracing::info!(conn = self.control.id, peer = %self.control.peer, stream = %guard.stream().key, live = sub.live, "play");
        self.record.stream_key = Some(guard.stream().key.clone());
        let play = &self.shared.config.play;
        let pacing = crate::fanout::Pacing {
            merge_window: play.own_window(),
            max_lag_drops: play.max_lag_drops,
        };
        let mut sink = RtmpSink {
            session: &mut self.session,
        };
        let viewer = Viewer::attach(guard, sub, pacing, &mut sink, &mut self.out);
        self.held = Held::Stream(viewer);
        self.handoff = true;
        self.timers.put(
            ConnTimer::PeerCheck,
            self.shared
                .config
                .liveness
                .user_timeout()
                .map(|u| now + u.min(PEER_CHECK_EVERY)),
        );
    }

    /// Takes fan-out messages into the queue through the RTMP sink.
    pub(super) fn take_fanout(
        &mut self,
        now: Instant,
        first: Option<Result<crate::stream::StreamEvent, tokio::sync::broadcast::error::RecvError>>,
    ) -> Result<(), CloseReason> {
        let Held::Stream(viewer) = &mut self.held else {
            return Ok(());
        };
        let mut sink = RtmpSink {
            session: &mut self.session,
        };
        viewer.take(
            first,
            &mut sink,
            &mut self.out,
            &mut self.timers,
            now,
            &self.shared.metrics,
        )
    }

    pub(super) fn window_closed(&mut self, now: Instant) -> Result<(), CloseReason> {
        if self.closing.is_some() {
            return Ok(());
        }
        let Held::Stream(viewer) = &mut self.held else {
            return Ok(());
        };
        let mut sink = RtmpSink {
            session: &mut self.session,
        };
        viewer.window_closed(
            &mut sink,
            &mut self.out,
            &mut self.timers,
            now,
            &self.shared.metrics,
        )
    }

    /// Kernel evidence: with data in flight and no ACK for `tcp_user_timeout`, the peer's
    /// host is gone (see [`peer_check_sparse`]: a player's stalls are judged by its writes).
    pub(super) fn check_peer(
        &mut self,
        now: Instant,
        kernel: &impl Kernel,
    ) -> Result<(), CloseReason> {
        let Some(limit) = self.shared.config.liveness.user_timeout() else {
            return Ok(());
        };
        if !matches!(self.held, Held::Stream(_) | Held::Seated(_)) {
            return Ok(());
        }
        let info = kernel.tcp_info().ok();
        match peer_check_sparse(info.as_ref(), limit) {
            PeerCheck::Unreachable => {
                tracing::debug!(
                    conn = self.control.id,
                    unacked = info.as_ref().map_or(0, |i| i.unacked),
                    last_ack_ms = info.as_ref().map_or(0, |i| i.last_ack_recv_ms),
                    "peer unreachable"
                );
                Err(CloseReason::PeerUnreachable)
            }
            PeerCheck::Again(after) => {
                self.timers.set(ConnTimer::PeerCheck, now + after);
                Ok(())
            }
        }
    }
}
