//! The sans-IO core of one connection on the playback port: request heads in, answers out,
//! and for a live body (HTTP-FLV) a fan-out viewer with the same merge windows, bounded ring,
//! skip-to-keyframe and dead-viewer bounds as an RTMP player. Every deadline is in the one
//! table; the generic driver only moves bytes.

use super::flv::FlvSink;
use super::request::{self, Refusal, Request, Route, StreamPath};
use super::response::{self, Body};
use crate::access::{self, PendingHook, Verdict};
use crate::auth::{Action, Denial};
use crate::control::{ConnControl, ConnRole, Protocol};
use crate::evidence::{Kernel, PEER_CHECK_EVERY, PeerCheck, peer_check};
use crate::fanout::{OutQueue, Pacing, Viewer};
use crate::shared::Shared;
use crate::stream::StreamEvent;
use crate::timers::{ConnDeadlines, ConnTimer};
use bytes::{Buf, BytesMut};
use rtmp_proto::session::CloseReason;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;

/// How long a refused peer gets to receive its answer before the socket closes.
const REFUSAL_LINGER: Duration = Duration::from_secs(2);

/// What the connection is doing.
#[derive(Debug)]
pub(super) enum Phase {
    /// Waiting for a request head (deadline: `Request`).
    Head,
    /// A request waits for the on_play hook.
    Hook(Request, PendingHook),
    /// An answer is being written; then the next request, or the close.
    Answer {
        /// Whether the connection stays open after it.
        keep_alive: bool,
    },
    /// A live body: an HTTP-FLV viewer.
    Live(Live),
}

/// A live body and the viewer feeding it.
#[derive(Debug)]
pub(super) struct Live {
    pub(super) viewer: Viewer,
    pub(super) sink: FlvSink,
    pub(super) stream: StreamPath,
}

/// One connection on the playback port, without its socket.
#[derive(Debug)]
pub(crate) struct HttpConn {
    pub(super) shared: Arc<Shared>,
    pub(super) control: Arc<ConnControl>,
    pub(super) inbuf: BytesMut,
    pub(super) out: OutQueue,
    pub(super) timers: ConnDeadlines,
    pub(super) phase: Phase,
    /// Set when the connection closes once its output is flushed (`Linger` bounds the wait).
    pub(super) closing: Option<CloseReason>,
    /// Requests answered so far: the first head is bounded by `handshake_timeout`, the next
    /// ones by `[playback] idle_timeout`.
    pub(super) served: u64,
    pub(super) last_rx: Instant,
    pub(super) last_tx: Instant,
    /// The stream last played and when, for the close log and the hook notifications.
    pub(super) played: Option<(StreamPath, Instant)>,
}

impl HttpConn {
    /// A connection accepted at `now`.
    pub(crate) fn new(shared: Arc<Shared>, control: Arc<ConnControl>, now: Instant) -> Self {
        let mut timers = ConnDeadlines::default();
        timers.set(
            ConnTimer::Request,
            now + shared.config.liveness.handshake_timeout,
        );
        timers.set(ConnTimer::RateSample, now);
        Self {
            shared,
            control,
            inbuf: BytesMut::new(),
            out: OutQueue::default(),
            timers,
            phase: Phase::Head,
            closing: None,
            served: 0,
            last_rx: now,
            last_tx: now,
            played: None,
        }
    }

    /// Processes `n` bytes just read into the receive buffer.
    pub(crate) fn handle_input(&mut self, now: Instant, n: usize) -> Result<(), CloseReason> {
        self.last_rx = now;
        self.control.touch_rx(now, n as u64);
        match self.phase {
            Phase::Head => self.next_request(now),
            // Nothing is expected while a body streams: what comes is dropped, so it cannot
            // pile up (a peer's FIN still ends the connection).
            Phase::Live(_) => self.inbuf.clear(),
            // A pipelined request waits its turn, within the head bound.
            Phase::Hook(..) | Phase::Answer { .. } if self.inbuf.len() > request::MAX_HEAD => {
                self.refuse(&Refusal::HeadTooLarge, now);
            }
            Phase::Hook(..) | Phase::Answer { .. } => {}
        }
        self.settle(now);
        Ok(())
    }

    fn next_request(&mut self, now: Instant) {
        if self.closing.is_some() {
            return;
        }
        match request::parse(&self.inbuf) {
            Ok(None) => {}
            Err(refusal) => {
                self.inbuf.clear();
                self.refuse(&refusal, now);
            }
            Ok(Some(req)) => {
                self.inbuf.advance(req.head_len);
                self.timers.stop(ConnTimer::Request);
                self.dispatch(req, now);
            }
        }
    }

    fn dispatch(&mut self, req: Request, now: Instant) {
        let stream = match &req.route {
            Route::Flv(s) => s.clone(),
            Route::Mp4(_) | Route::HlsIndex(_) | Route::HlsSession { .. } => {
                return self.answer_error(404, "not served yet", req.keep_alive, now);
            }
        };
        let verdict = access::ask(
            &self.shared,
            &self.control,
            Action::Play,
            &stream.app,
            stream.name.clone(),
            &req.query,
            now,
        );
        match verdict {
            Verdict::Granted => self.play(req, stream, now),
            Verdict::Denied(why) => self.deny(&stream, &why, now),
            Verdict::Pending(hook) => self.phase = Phase::Hook(req, hook),
        }
    }

    /// The on_play hook answered (or its deadline passed, which is a denial).
    pub(crate) fn hook_answered(&mut self, now: Instant, verdict: Result<(), Denial>) {
        let Phase::Hook(req, _) = std::mem::replace(&mut self.phase, Phase::Head) else {
            return;
        };
        let Route::Flv(stream) = req.route.clone() else {
            return;
        };
        match verdict {
            Ok(()) => self.play(req, stream, now),
            Err(why) => self.deny(&stream, &why, now),
        }
        self.settle(now);
    }

    fn deny(&mut self, stream: &StreamPath, why: &Denial, now: Instant) {
        tracing::info!(conn = self.control.id, peer = %self.control.peer, %stream, "play denied: {why}");
        self.answer_error(403, "play not authorised", false, now);
    }

    /// Attaches an HTTP-FLV viewer; its body starts once a publisher is live (at once if one
    /// is), or the request is answered 404 after `[playback] wait_for_publisher`.
    fn play(&mut self, req: Request, stream: StreamPath, now: Instant) {
        self.control.set_protocol(Protocol::HttpFlv);
        if req.head_only {
            return self.answer_head_only(now, req.keep_alive);
        }
        let (guard, sub) = match self.shared.registry.try_play(&stream.app, &stream.name) {
            Ok(attached) => attached,
            Err(limit) => {
                tracing::info!(conn = self.control.id, peer = %self.control.peer, "play refused: {limit}");
                return self.answer_error(503, &limit.to_string(), false, now);
            }
        };
        let live = sub.live;
        let config = &self.shared.config;
        let head = response::head(
            200,
            "video/x-flv",
            Body::Chunked,
            false,
            &config.playback.allow_origin,
            &[],
        );
        let mut sink = FlvSink::new(head);
        if live {
            sink.start(&mut self.out);
        }
        let pacing = Pacing {
            merge_window: config.play.own_window(),
            max_lag_drops: config.play.max_lag_drops,
        };
        let viewer = Viewer::attach(guard, sub, pacing, &mut sink, &mut self.out);
        tracing::info!(conn = self.control.id, peer = %self.control.peer, %stream, live, protocol = "http-flv", "play");
        if !live {
            self.timers.set(
                ConnTimer::WaitPublisher,
                now + config.playback.wait_for_publisher,
            );
        }
        self.timers.put(
            ConnTimer::PeerCheck,
            config
                .liveness
                .user_timeout()
                .map(|u| now + u.min(PEER_CHECK_EVERY)),
        );
        self.played = Some((stream.clone(), now));
        self.phase = Phase::Live(Live {
            viewer,
            sink,
            stream,
        });
    }

    fn answer_head_only(&mut self, now: Instant, keep_alive: bool) {
        let head = response::head(
            200,
            "video/x-flv",
            Body::Chunked,
            keep_alive,
            &self.shared.config.playback.allow_origin,
            &[],
        );
        self.out.push(head);
        self.out.seal_raw();
        self.answered(keep_alive, now);
    }

    /// Queues an error answer; the connection closes after it unless `keep_alive`.
    pub(super) fn answer_error(
        &mut self,
        status: u16,
        reason: &str,
        keep_alive: bool,
        now: Instant,
    ) {
        let (head, body) = response::error(
            status,
            reason,
            keep_alive,
            &self.shared.config.playback.allow_origin,
        );
        self.out.push(head);
        self.out.push(body);
        self.out.seal_raw();
        if !keep_alive {
            self.closing = Some(CloseReason::Refused(format!("{status} {reason}")));
            self.timers.set(ConnTimer::Linger, now + REFUSAL_LINGER);
        }
        self.answered(keep_alive, now);
    }

    fn refuse(&mut self, refusal: &Refusal, now: Instant) {
        tracing::info!(conn = self.control.id, peer = %self.control.peer, "request refused: {refusal}");
        self.answer_error(refusal.status(), &refusal.to_string(), false, now);
    }

    fn answered(&mut self, keep_alive: bool, now: Instant) {
        self.served += 1;
        self.phase = Phase::Answer { keep_alive };
        self.settle(now);
    }

    /// After every entry point: a finished answer leads to the next request or the close;
    /// a live body's output is framed as one chunk per batch; the stall deadline follows the
    /// queue.
    pub(super) fn settle(&mut self, now: Instant) {
        if let Phase::Answer { keep_alive } = self.phase
            && self.out.is_empty()
            && self.closing.is_none()
        {
            if keep_alive {
                self.phase = Phase::Head;
                let idle = self.shared.config.playback.idle_timeout;
                self.timers.set(ConnTimer::Request, now + idle);
                // A pipelined request may be waiting already.
                if !self.inbuf.is_empty() {
                    self.next_request(now);
                }
            } else {
                self.closing = Some(CloseReason::Completed);
            }
        }
        if let Phase::Live(live) = &self.phase
            && live.sink.started()
            && self.timers.get(ConnTimer::MergeWindow).is_none()
        {
            self.timers.stop(ConnTimer::WaitPublisher);
            self.out.seal_chunk();
        }
        if self.out.is_empty() {
            self.timers.stop(ConnTimer::WriteStall);
        } else if self.timers.get(ConnTimer::WriteStall).is_none() {
            self.timers.set(
                ConnTimer::WriteStall,
                now + self.shared.config.liveness.play_stall_timeout,
            );
        }
    }

    /// Whether the driver should read: not while closing.
    pub(crate) fn wants_read(&self) -> bool {
        self.closing.is_none()
    }

    /// Whether queued output should be written now (no merge window holds it back).
    pub(crate) fn wants_write(&self) -> bool {
        Viewer::may_write(&self.out, &self.timers)
    }

    /// The socket took `n` bytes of the queued output.
    pub(crate) fn wrote(&mut self, n: usize) {
        self.out.advance(n);
        self.control
            .bytes_out
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// This turn's writes are over.
    pub(crate) fn write_done(&mut self, now: Instant, progressed: bool) {
        if progressed {
            self.last_tx = now;
            self.timers.stop(ConnTimer::WriteStall);
        }
        if self.out.is_empty()
            && let Phase::Live(live) = &self.phase
        {
            live.viewer.flushed(&mut self.timers, now);
        }
        self.settle(now);
    }

    /// Whether the driver should await the fan-out ring now.
    pub(crate) fn can_take(&self) -> bool {
        self.closing.is_none()
            && matches!(self.phase, Phase::Live(_))
            && Viewer::can_take(&self.out, &self.timers)
    }

    /// A fan-out message (or a lag) the driver received.
    pub(crate) fn on_stream_event(
        &mut self,
        now: Instant,
        ev: Result<StreamEvent, RecvError>,
    ) -> Result<(), CloseReason> {
        let result = self.take_fanout(now, Some(ev));
        self.settle(now);
        result
    }

    fn take_fanout(
        &mut self,
        now: Instant,
        first: Option<Result<StreamEvent, RecvError>>,
    ) -> Result<(), CloseReason> {
        let Phase::Live(live) = &mut self.phase else {
            return Ok(());
        };
        live.viewer.take(
            first,
            &mut live.sink,
            &mut self.out,
            &mut self.timers,
            now,
            &self.shared.metrics,
        )
    }

    /// The earliest deadline that should wake the connection.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_wake().map(|(_, at)| at)
    }

    /// Runs every deadline due at `now`.
    pub(crate) fn handle_timeout(
        &mut self,
        now: Instant,
        kernel: &impl Kernel,
    ) -> Result<(), CloseReason> {
        let result = self.run_timers(now, kernel);
        self.settle(now);
        result
    }

    fn run_timers(&mut self, now: Instant, kernel: &impl Kernel) -> Result<(), CloseReason> {
        while let Some(timer) = self.timers.pop_due(now) {
            match timer {
                ConnTimer::Request if self.served == 0 => {
                    return Err(CloseReason::HandshakeTimeout);
                }
                ConnTimer::Request => return Err(CloseReason::IdleTimeout),
                ConnTimer::WriteStall => return Err(CloseReason::PlayStall),
                ConnTimer::Linger => {
                    return Err(self.closing.clone().unwrap_or(CloseReason::Shutdown));
                }
                ConnTimer::MergeWindow => {
                    if self.closing.is_none()
                        && let Phase::Live(live) = &mut self.phase
                    {
                        live.viewer.window_closed(
                            &mut live.sink,
                            &mut self.out,
                            &mut self.timers,
                            now,
                            &self.shared.metrics,
                        )?;
                    }
                }
                ConnTimer::PeerCheck => self.check_peer(now, kernel)?,
                ConnTimer::WaitPublisher => self.no_publisher(now),
                ConnTimer::Session
                | ConnTimer::Challenge
                | ConnTimer::ChallengeEvidence
                | ConnTimer::Blocked
                | ConnTimer::RttRefresh
                | ConnTimer::RateSample => {}
            }
        }
        Ok(())
    }

    /// Nobody published within `wait_for_publisher`: 404, and the viewer lets go.
    fn no_publisher(&mut self, now: Instant) {
        let Phase::Live(live) = &self.phase else {
            return;
        };
        if live.sink.started() {
            return;
        }
        let reason = format!(
            "no publisher for {} within {:?}",
            live.stream, self.shared.config.playback.wait_for_publisher
        );
        self.release();
        self.out = OutQueue::default();
        self.timers.stop(ConnTimer::MergeWindow);
        self.answer_error(404, &reason, false, now);
    }

    fn check_peer(&mut self, now: Instant, kernel: &impl Kernel) -> Result<(), CloseReason> {
        let Some(limit) = self.shared.config.liveness.user_timeout() else {
            return Ok(());
        };
        if !matches!(self.phase, Phase::Live(_)) {
            return Ok(());
        }
        match peer_check(kernel.tcp_info().ok().as_ref(), limit) {
            PeerCheck::Unreachable => Err(CloseReason::PeerUnreachable),
            PeerCheck::Again(after) => {
                self.timers.set(ConnTimer::PeerCheck, now + after);
                Ok(())
            }
        }
    }

    /// The reason to end the connection now: an answer with `Connection: close` (or a
    /// refusal) is flushed.
    pub(crate) fn poll_close(&self) -> Option<CloseReason> {
        self.closing.clone().filter(|_| self.out.is_empty())
    }

    /// Lets go of the stream watched; whether there was one.
    pub(super) fn release(&mut self) -> bool {
        self.timers.stop(ConnTimer::PeerCheck);
        self.timers.stop(ConnTimer::WaitPublisher);
        if matches!(self.phase, Phase::Live(_)) {
            self.phase = Phase::Head;
            return true;
        }
        false
    }

    /// The role the admin API shows.
    pub(super) fn role(&self) -> ConnRole {
        match self.phase {
            Phase::Live(_) => ConnRole::Player,
            _ if self.served == 0 => ConnRole::Handshaking,
            _ => ConnRole::Idle,
        }
    }
}
