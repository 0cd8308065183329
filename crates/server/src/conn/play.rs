//! The player's side of a connection: attaching to a stream, taking fan-out messages in
//! merge windows, skipping to a keyframe after falling behind, and the kernel's evidence that
//! a player's host is gone.

use super::{Conn, OUT_HIGH_WATER, PEER_CHECK_EVERY, Player, REFUSAL_LINGER};
use crate::stream::{Frame, StreamEvent};
use rtmp_proto::session::{CloseReason, MediaKind};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::broadcast;
use tokio::time::Instant;

impl Conn {
    pub(super) fn queue_frame(&mut self, frame: &Frame) {
        if self.out.is_empty() && self.write_at.is_none() {
            let window = self.shared.config.play.merge_window;
            self.write_at = (!window.is_zero()).then(|| Instant::now() + window);
        }
        self.out.push(frame.chunks.clone());
    }

    pub(super) fn on_play(&mut self, name: &str) {
        let app = self.session.app().to_owned();
        let (guard, sub) = match self.shared.registry.try_play(&app, name) {
            Ok(attached) => attached,
            Err(refusal) => {
                tracing::info!(conn = self.control.id, peer = %self.control.peer, "play refused: {refusal}");
                self.session.reject_play(&refusal.to_string());
                self.closing = Some((
                    CloseReason::Refused(refusal.to_string()),
                    Instant::now() + REFUSAL_LINGER,
                ));
                return;
            }
        };
        self.session.accept_play(name, sub.live);
        self.role = "player";
        self.role_since = Instant::now();
        self.take_session_output();
        tracing::info!(conn = self.control.id, peer = %self.control.peer, stream = %guard.stream().key, live = sub.live, "play");
        self.stream_key = Some(guard.stream().key.clone());
        let mut player = Player {
            guard,
            rx: sub.rx,
            skipping: false,
            lag_drops: 0,
            seen_video: false,
        };
        for frame in &sub.initial {
            player.seen_video |= frame.kind == MediaKind::Video;
            self.out.push(frame.chunks.clone());
        }
        self.note_queued();
        self.player = Some(player);
        self.peer_check_at = self
            .user_timeout()
            .map(|u| Instant::now() + u.min(PEER_CHECK_EVERY));
    }

    pub(super) fn user_timeout(&self) -> Option<Duration> {
        let u = self.shared.config.liveness.tcp_user_timeout;
        (!u.is_zero()).then_some(u)
    }

    /// Kernel evidence: with data in flight and no ACK for `tcp_user_timeout`, the peer's
    /// host is gone. Checked at least every [`PEER_CHECK_EVERY`], and exactly when the
    /// oldest unanswered data would reach the bound, so this fires before the kernel's own
    /// TCP_USER_TIMEOUT (which counts from the later retransmission start).
    pub(super) fn check_peer(
        &mut self,
        stream: &TcpStream,
        now: Instant,
    ) -> Result<(), CloseReason> {
        let Some(limit) = self.user_timeout() else {
            self.peer_check_at = None;
            return Ok(());
        };
        let next = match liveness::tcp_info(stream) {
            Ok(info) if info.unacked > 0 => {
                let silent = Duration::from_millis(u64::from(info.last_ack_recv_ms));
                if silent >= limit {
                    tracing::debug!(
                        conn = self.control.id,
                        unacked = info.unacked,
                        last_ack_ms = info.last_ack_recv_ms,
                        "peer unreachable"
                    );
                    return Err(CloseReason::PeerUnreachable);
                }
                (limit - silent).clamp(Duration::from_millis(50), PEER_CHECK_EVERY)
            }
            _ => limit.min(PEER_CHECK_EVERY),
        };
        self.peer_check_at = Some(now + next);
        Ok(())
    }

    /// The merge window is over: takes everything the fan-out ring gathered and writes it in
    /// one go, in this same turn. When nothing came, the window ends and the player waits for
    /// the next message without any timer (a paused stream costs its players no wake-ups).
    pub(super) fn merge_window_closed(&mut self, stream: &TcpStream) -> Result<(), CloseReason> {
        if self.closing.is_none()
            && self.out.len() < OUT_HIGH_WATER
            && let Some(ev) = self.try_recv_player()
        {
            self.on_stream_event(ev)?;
        }
        if self.out.is_empty() {
            self.write_at = None;
            return Ok(());
        }
        self.write(stream)
    }

    /// The next fan-out event if one is waiting (a lag counts as one).
    fn try_recv_player(&mut self) -> Option<Result<StreamEvent, broadcast::error::RecvError>> {
        match self.player.as_mut()?.rx.try_recv() {
            Ok(ev) => Some(Ok(ev)),
            Err(broadcast::error::TryRecvError::Lagged(n)) => {
                Some(Err(broadcast::error::RecvError::Lagged(n)))
            }
            Err(_) => None,
        }
    }

    /// Handles one fan-out event, then drains what else is ready while there is room.
    pub(super) fn on_stream_event(
        &mut self,
        first: Result<StreamEvent, broadcast::error::RecvError>,
    ) -> Result<(), CloseReason> {
        let mut next = Some(first);
        while let Some(ev) = next.take() {
            match ev {
                Ok(StreamEvent::Frame(frame)) => self.play_frame(&frame),
                Ok(StreamEvent::Published) => self.session.play_notify(true),
                Ok(StreamEvent::Unpublished) => self.session.play_notify(false),
                Err(broadcast::error::RecvError::Lagged(n)) => self.lagged(n)?,
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            }
            self.take_session_output();
            if self.out.len() < OUT_HIGH_WATER {
                next = self.try_recv_player();
            }
        }
        if let Some(p) = &mut self.player
            && !p.skipping
            && p.rx.is_empty()
        {
            p.lag_drops = 0;
        }
        self.note_queued();
        Ok(())
    }

    pub(super) fn play_frame(&mut self, frame: &Frame) {
        let Some(p) = &mut self.player else { return };
        p.seen_video |= frame.kind == MediaKind::Video;
        if p.skipping {
            let resume = (frame.kind == MediaKind::Video && frame.keyframe)
                || (frame.kind == MediaKind::Audio && !p.seen_video && !frame.sequence_header);
            if !resume {
                return;
            }
            p.skipping = false;
            // Frames were lost: resend the decoder configuration before the keyframe.
            let headers = p.guard.stream().headers();
            for h in &headers {
                self.out.push(h.chunks.clone());
            }
        }
        self.queue_frame(frame);
    }

    pub(super) fn lagged(&mut self, missed: u64) -> Result<(), CloseReason> {
        let Some(p) = &mut self.player else {
            return Ok(());
        };
        p.skipping = true;
        p.lag_drops += 1;
        self.shared.metrics.record_dropped(missed);
        tracing::debug!(
            conn = self.control.id,
            missed,
            drops = p.lag_drops,
            "player fell behind, skipping to a keyframe"
        );
        if p.lag_drops > self.shared.config.play.max_lag_drops {
            return Err(CloseReason::PlayStall);
        }
        Ok(())
    }
}

pub(super) async fn recv_player(
    player: &mut Option<Player>,
) -> Result<StreamEvent, broadcast::error::RecvError> {
    match player {
        Some(p) => p.rx.recv().await,
        None => std::future::pending().await,
    }
}
