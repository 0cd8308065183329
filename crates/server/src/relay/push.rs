//! A push's side: the local stream read like a player (a fan-out [`Viewer`]: bounded ring,
//! merge windows, skip to the next keyframe), each frame encoded for the upstream by the client
//! session, and the kernel's evidence that the upstream is gone or stopped reading.

use super::core::{RelayConn, Side};
use crate::evidence::{Kernel, PEER_CHECK_EVERY, PeerCheck, peer_check, reader_stalled};
use crate::fanout::{OutQueue, Pacing, Sink, Viewer};
use crate::stream::{Frame, StreamEvent};
use crate::timers::ConnTimer;
use rtmp_proto::client::ClientSession;
use rtmp_proto::session::CloseReason;
use std::time::Instant;
use tokio::sync::broadcast::error::RecvError;

/// The upstream's wire format. A local player's `Frame::chunks` cannot be reused: the
/// upstream gave us our own message stream id and we chunk with our own chunk streams, so each
/// message is chunked again by the session — one copy of the payload per push per message.
pub(super) struct PushSink<'a> {
    pub(super) session: &'a mut ClientSession,
    pub(super) source_ended: &'a mut bool,
}

impl Sink for PushSink<'_> {
    fn frame(&mut self, frame: &Frame, out: &mut OutQueue) {
        // Metadata arrives as `onMetaData, {…}`; the session wraps it in `@setDataFrame`.
        if self
            .session
            .send_media(frame.kind, frame.timestamp, &frame.payload)
            .is_ok()
        {
            while let Some(b) = self.session.take_output() {
                out.push(b);
            }
        }
    }

    /// A new local publisher's headers and frames simply follow; the end of the local stream
    /// ends the push.
    fn publisher_changed(&mut self, live: bool, _out: &mut OutQueue) -> bool {
        if !live {
            *self.source_ended = true;
        }
        false
    }
}

impl RelayConn {
    /// The upstream accepted our publish: attach to the local stream like a player; its
    /// cached start (metadata, sequence headers, the current GOP) goes up at once.
    pub(super) fn push_started(&mut self, now: Instant) {
        let Side::Push {
            viewer,
            source_ended,
        } = &mut self.side
        else {
            return;
        };
        let h = &self.handle;
        let (guard, sub) = match self.deps.registry.try_play(&h.app, &h.name) {
            Ok(attached) => attached,
            Err(limit) => {
                let reason = CloseReason::Refused(format!("local stream: {limit}"));
                return self.close(reason, now);
            }
        };
        if !sub.live {
            *source_ended = true;
            return;
        }
        let play = &self.deps.config.play;
        let pacing = Pacing {
            merge_window: play.own_window(),
            max_lag_drops: play.max_lag_drops,
        };
        let mut sink = PushSink {
            session: &mut self.session,
            source_ended,
        };
        *viewer = Some(Viewer::attach(guard, sub, pacing, &mut sink, &mut self.out));
        self.timers.put(
            ConnTimer::PeerCheck,
            self.deps
                .config
                .liveness
                .user_timeout()
                .map(|u| now + u.min(PEER_CHECK_EVERY)),
        );
        self.went_live(now);
    }

    /// Whether the driver should await the fan-out ring now.
    pub(crate) fn can_take(&self) -> bool {
        self.closing.is_none()
            && matches!(
                self.side,
                Side::Push {
                    viewer: Some(_),
                    ..
                }
            )
            && Viewer::can_take(&self.out, &self.timers)
    }

    /// The viewer to await, when [`Self::can_take`].
    pub(super) fn viewer_mut(&mut self) -> Option<&mut Viewer> {
        match &mut self.side {
            Side::Push { viewer, .. } => viewer.as_mut(),
            Side::Pull { .. } => None,
        }
    }

    /// A fan-out message (or a lag) the driver received from the ring.
    pub(crate) fn on_stream_event(
        &mut self,
        now: Instant,
        ev: Result<StreamEvent, RecvError>,
    ) -> Result<(), CloseReason> {
        let result = self.take_fanout(now, Some(ev));
        self.settle(now);
        result
    }

    /// What the driver does when the ring has something: take it all (tests).
    #[cfg(test)]
    pub(super) fn take_ring(&mut self, now: Instant) -> Result<(), CloseReason> {
        let result = self.take_fanout(now, None);
        self.settle(now);
        result
    }

    fn take_fanout(
        &mut self,
        now: Instant,
        first: Option<Result<StreamEvent, RecvError>>,
    ) -> Result<(), CloseReason> {
        let Side::Push {
            viewer: Some(viewer),
            source_ended,
        } = &mut self.side
        else {
            return Ok(());
        };
        let mut sink = PushSink {
            session: &mut self.session,
            source_ended,
        };
        viewer.take(
            first,
            &mut sink,
            &mut self.out,
            &mut self.timers,
            now,
            &self.deps.metrics,
        )
    }

    pub(super) fn window_closed(&mut self, now: Instant) -> Result<(), CloseReason> {
        if self.closing.is_some() {
            return Ok(());
        }
        let Side::Push {
            viewer: Some(viewer),
            source_ended,
        } = &mut self.side
        else {
            return Ok(());
        };
        let mut sink = PushSink {
            session: &mut self.session,
            source_ended,
        };
        viewer.window_closed(
            &mut sink,
            &mut self.out,
            &mut self.timers,
            now,
            &self.deps.metrics,
        )
    }

    /// The kernel's evidence about the upstream, as for a player: data in flight and no ACK for
    /// `tcp_user_timeout` is `peer_unreachable`; data waiting and nothing new acknowledged for
    /// `play_stall_timeout` (its window stays closed) is `play_stall`.
    pub(super) fn check_upstream(
        &mut self,
        now: Instant,
        kernel: &impl Kernel,
    ) -> Result<(), CloseReason> {
        let Some(limit) = self.deps.config.liveness.user_timeout() else {
            return Ok(());
        };
        if !matches!(
            self.side,
            Side::Push {
                viewer: Some(_),
                ..
            }
        ) {
            return Ok(());
        }
        let info = kernel.tcp_info().ok();
        let mut next = match peer_check(info.as_ref(), limit) {
            PeerCheck::Unreachable => {
                tracing::debug!(
                    conn = self.control.id,
                    unacked = info.as_ref().map_or(0, |i| i.unacked),
                    last_ack_ms = info.as_ref().map_or(0, |i| i.last_ack_recv_ms),
                    "upstream unreachable"
                );
                return Err(CloseReason::PeerUnreachable);
            }
            PeerCheck::Again(after) => now + after,
        };
        if let Some(info) = &info {
            let stall = self.deps.config.liveness.play_stall_timeout;
            let pending =
                info.unacked > 0 || info.notsent_bytes.unwrap_or(0) > 0 || !self.out.is_empty();
            let (progress, stalled) = reader_stalled(self.acked, info, pending, now, stall);
            if stalled {
                return Err(CloseReason::PlayStall);
            }
            self.acked = progress;
            if let Some(p) = progress.filter(|_| pending) {
                next = next.min(p.at + stall);
            }
        }
        self.timers.set(ConnTimer::PeerCheck, next);
        Ok(())
    }
}
