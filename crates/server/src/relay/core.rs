//! The sans-IO core of one outgoing relay connection: the rtmp-proto client session, the local
//! side it serves (a fan-out viewer for a push, the stream name for a pull), its output queue
//! and every deadline in one table — the same [`ConnDeadlines`] and bounds as an incoming
//! connection. The generic driver (`crate::driver`) moves its bytes; every decision is made
//! here on an explicit clock, so it is all tested against a scripted server session.

use super::RelayDeps;
use super::hold::NameHold;
use super::status::{RelayHandle, RelayKind};
use crate::control::{ConnControl, ConnRole, RATES_EVERY};
use crate::evidence::{AckProgress, CloseLine, Kernel, log_close, refine_timeout};
use crate::fanout::{OutQueue, Viewer};
use crate::timers::{ConnDeadlines, ConnTimer};
use bytes::BytesMut;
use rtmp_proto::client::{
    ClientConfig, ClientEvent, ClientSession, ClientTimeouts, ClientTimer, MediaMode,
};
use rtmp_proto::session::CloseReason;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How long the upstream gets to take our last words (a clean unpublish) before the socket
/// closes anyway.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// What the connection does for the local stream.
#[derive(Debug)]
pub(super) enum Side {
    /// Publishes the local stream upstream; `viewer` once the upstream said Publish.Start.
    Push {
        viewer: Option<Viewer>,
        /// The local publisher left: the push ends.
        source_ended: bool,
    },
    /// Plays from the origin and publishes it under the pull's hold on the local name
    /// (claimed here at the first media if the relay had none); `media` once some came.
    Pull { hold: Option<NameHold>, media: bool },
}

/// One relay connection, without its socket.
#[derive(Debug)]
pub(crate) struct RelayConn {
    pub(super) deps: Arc<RelayDeps>,
    pub(super) handle: Arc<RelayHandle>,
    pub(super) control: Arc<ConnControl>,
    pub(super) session: ClientSession,
    pub(super) out: OutQueue,
    pub(super) timers: ConnDeadlines,
    pub(super) side: Side,
    /// Set when the connection ends once its output is flushed (`Linger` bounds the wait).
    pub(super) closing: Option<CloseReason>,
    pub(super) last_tx: Instant,
    /// The upstream's acknowledgements of a push (see `evidence::reader_stalled`).
    pub(super) acked: Option<AckProgress>,
    /// When media started to flow.
    pub(super) live_since: Option<Instant>,
}

impl RelayConn {
    /// A connection whose TCP connect just succeeded at `now`; connect, handshake and
    /// publish/play must all be done by `setup_deadline` (`handshake_timeout` after the
    /// attempt began).
    pub(crate) fn new(
        deps: Arc<RelayDeps>,
        handle: Arc<RelayHandle>,
        control: Arc<ConnControl>,
        now: Instant,
        setup_deadline: Instant,
    ) -> Self {
        let config = &deps.config;
        let url = &handle.url();
        let mut cc = ClientConfig::new(url.app(), url.tc_url());
        cc.chunk_size = config.rtmp.chunk_size;
        cc.reader_limits = rtmp_proto::chunk::ReaderLimits {
            max_message_size: config.rtmp.max_message_size,
            max_chunk_streams: config.limits.max_chunk_streams,
            ..Default::default()
        };
        let l = &config.liveness;
        cc.timeouts = ClientTimeouts {
            setup: setup_deadline.saturating_duration_since(now),
            media_idle: (handle.kind == RelayKind::Pull).then_some(l.publish_idle_timeout),
            write_stall: l.play_stall_timeout,
        };
        cc.media = MediaMode::Full;
        let mut session = ClientSession::new(cc, now);
        let stream_name = url.stream_name(&handle.name);
        // Asked for at once: the session sends it when connect is answered.
        let side = match handle.kind {
            RelayKind::Push => {
                let _ = session.publish(now, &stream_name);
                Side::Push {
                    viewer: None,
                    source_ended: false,
                }
            }
            RelayKind::Pull => {
                let _ = session.play(now, &stream_name);
                Side::Pull {
                    hold: handle.take_hold(),
                    media: false,
                }
            }
        };
        let mut timers = ConnDeadlines::default();
        timers.set(ConnTimer::RateSample, now);
        let mut conn = Self {
            deps,
            handle,
            control,
            session,
            out: OutQueue::default(),
            timers,
            side,
            closing: None,
            last_tx: now,
            acked: None,
            live_since: None,
        };
        conn.settle(now);
        conn
    }

    pub(crate) fn recv_buf(&mut self) -> &mut BytesMut {
        self.session.recv_buf()
    }

    /// Processes `n` bytes just read into [`Self::recv_buf`].
    pub(crate) fn handle_input(&mut self, now: Instant, n: usize) -> Result<(), CloseReason> {
        self.control.touch_rx(now, n as u64);
        if let Side::Pull { hold: Some(h), .. } = &self.side {
            h.received(now, n);
        }
        let result = self
            .session
            .handle_input(now, n)
            .map_err(|e| CloseReason::ProtocolError(e.to_string()));
        if result.is_ok() {
            self.handle_events(now);
        }
        self.settle(now);
        result
    }

    fn handle_events(&mut self, now: Instant) {
        while let Some(event) = self.session.poll_event() {
            match event {
                ClientEvent::Connected { server_version } => {
                    tracing::debug!(
                        conn = self.control.id,
                        relay = self.handle.id,
                        ?server_version,
                        "relay connected"
                    );
                }
                ClientEvent::Publishing => self.push_started(now),
                ClientEvent::Media(media) => self.pull_media(now, media),
                ClientEvent::Refused { code, description } => {
                    tracing::info!(
                        conn = self.control.id, relay = self.handle.id, stream = %self.handle.key,
                        url = %self.handle.masked_url(), %code, %description,
                        "relay refused by the upstream"
                    );
                    self.close(CloseReason::Refused(format!("{code}: {description}")), now);
                }
                ClientEvent::StreamEnded(how) if matches!(self.side, Side::Pull { .. }) => {
                    tracing::info!(
                        conn = self.control.id,
                        relay = self.handle.id,
                        ?how,
                        "the origin's stream ended"
                    );
                    self.close(CloseReason::Completed, now);
                }
                ClientEvent::Status {
                    level,
                    code,
                    description,
                } => {
                    tracing::debug!(conn = self.control.id, %level, %code, %description, "relay status");
                }
                _ => {}
            }
        }
    }

    /// Media flows: the relay is live.
    pub(super) fn went_live(&mut self, now: Instant) {
        if self.live_since.is_none() {
            self.live_since = Some(now);
            self.handle.went_live(now);
            tracing::info!(
                conn = self.control.id, relay = self.handle.id, kind = ?self.handle.kind,
                stream = %self.handle.key, url = %self.handle.masked_url(), "relay live"
            );
        }
    }

    /// Ends the connection with `reason` once what is queued went out (at most
    /// [`CLOSE_LINGER`] later).
    pub(super) fn close(&mut self, reason: CloseReason, now: Instant) {
        if self.closing.is_none() {
            self.closing = Some(reason);
            self.timers.set(ConnTimer::Linger, now + CLOSE_LINGER);
        }
    }

    pub(crate) fn wants_read(&self) -> bool {
        true
    }

    /// Whether queued output should be written now (no merge window holds it back).
    pub(crate) fn wants_write(&self) -> bool {
        Viewer::may_write(&self.out, &self.timers)
    }

    pub(crate) fn output(&self) -> &OutQueue {
        &self.out
    }

    pub(crate) fn wrote(&mut self, n: usize) {
        self.out.advance(n);
        self.control
            .bytes_out
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn write_done(&mut self, now: Instant, progressed: bool) {
        if progressed {
            self.last_tx = now;
        }
        if self.out.is_empty()
            && let Side::Push {
                viewer: Some(v), ..
            } = &self.side
        {
            v.flushed(&mut self.timers, now);
        }
        self.session
            .on_write_state(now, !self.out.is_empty(), progressed);
        self.settle(now);
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_wake().map(|(_, at)| at)
    }

    /// Runs every deadline due at `now`; `Err` ends the connection with that reason.
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
                ConnTimer::Session => {
                    if let Some(reason) = self.session.handle_timeout(now) {
                        return Err(relay_reason(reason));
                    }
                }
                ConnTimer::MergeWindow => self.window_closed(now)?,
                ConnTimer::PeerCheck => self.check_upstream(now, kernel)?,
                ConnTimer::Linger => {
                    return Err(self.closing.clone().unwrap_or(CloseReason::Completed));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The reason to end now: a close whose last words are out.
    pub(crate) fn poll_close(&self) -> Option<CloseReason> {
        self.closing.clone().filter(|_| self.out.is_empty())
    }

    /// After every entry point: the session's output goes on the queue (control messages
    /// never wait for a merge window), a push whose source ended unpublishes, and the
    /// session's deadline goes into the table.
    pub(super) fn settle(&mut self, now: Instant) {
        if let Side::Push {
            source_ended: true, ..
        } = self.side
            && self.closing.is_none()
        {
            tracing::info!(conn = self.control.id, relay = self.handle.id, stream = %self.handle.key, "local stream ended: push ends");
            let _ = self.session.close_stream();
            self.close(CloseReason::Completed, now);
        }
        if self.session.has_output() {
            while let Some(b) = self.session.take_output() {
                self.out.push(b);
            }
            self.timers.stop(ConnTimer::MergeWindow);
        }
        if !self.out.is_empty() {
            self.session.on_write_state(now, true, false);
        }
        self.timers
            .put(ConnTimer::Session, self.session.poll_timeout());
    }

    /// Whether our last write came after the upstream's last byte.
    pub(crate) fn sent_after_rx(&self) -> bool {
        self.last_tx > self.session.last_rx()
    }

    /// Publishes role, stream, queue and deadlines to the connection's handle.
    pub(crate) fn observe(&mut self, now: Instant) {
        if self.timers.due(ConnTimer::RateSample, now) {
            self.timers.set(ConnTimer::RateSample, now + RATES_EVERY);
            self.control.sample_rates(now);
            if let Side::Pull { hold: Some(h), .. } = &self.side {
                h.sample_rates(now);
                // Once a second: the name was taken from us (an operator's kick): this
                // connection's media goes nowhere, so it ends and the relay claims again.
                if let Some(reason) = h.lost() {
                    self.close(reason, now);
                }
            }
        }
        let role = match &self.side {
            _ if self.live_since.is_none() => ConnRole::Handshaking,
            Side::Push {
                viewer: Some(_), ..
            } => ConnRole::Player,
            Side::Pull { hold: Some(_), .. } => ConnRole::Publisher,
            _ => ConnRole::Idle,
        };
        let timers = self.session.timers();
        let closing = [
            (ClientTimer::Setup, CloseReason::HandshakeTimeout),
            (ClientTimer::MediaIdle, CloseReason::PublishIdle),
            (ClientTimer::WriteStall, CloseReason::PlayStall),
        ]
        .into_iter()
        .filter_map(|(t, r)| Some((r.label(), timers.get(t)?)))
        .min_by_key(|&(_, at)| at);
        let next = self.timers.next_wake().map(|(t, at)| (t.label(), at));
        let fanout_lag = match &self.side {
            Side::Push {
                viewer: Some(v), ..
            } => v.lag(),
            _ => 0,
        };
        let (queue_bytes, last_tx) = (self.out.len(), self.last_tx);
        let key = &self.handle.key;
        self.control.update_observed(|o| {
            o.role = role;
            if o.stream.as_deref() != Some(key) {
                o.stream = Some(key.clone());
            }
            o.last_tx = last_tx;
            o.queue_bytes = queue_bytes;
            o.fanout_lag = fanout_lag;
            o.next = next;
            o.closing = closing;
        });
    }

    /// Ends the connection: lets go of the local side, splits a kernel timeout into keepalive
    /// or user timeout, and logs the close like any connection's. Returns the final reason.
    pub(crate) fn finish(
        &mut self,
        reason: CloseReason,
        kernel: &impl Kernel,
        now: Instant,
    ) -> CloseReason {
        let role = match (&self.side, self.live_since) {
            (_, None) => "idle",
            (Side::Push { .. }, Some(_)) => ConnRole::Player.label(),
            (Side::Pull { .. }, Some(_)) => ConnRole::Publisher.label(),
        };
        self.release();
        let info = kernel.tcp_info().ok();
        let reason = refine_timeout(reason, info.as_ref());
        let line = CloseLine {
            role,
            stream: Some(&self.handle.key),
            silent: now.saturating_duration_since(self.session.last_rx()),
        };
        log_close(&self.control, line, &reason, info.as_ref());
        reason
    }

    /// Lets go of the viewer; a pull's hold on the name goes back to the relay, which keeps
    /// it across reconnects (its players stay attached).
    pub(super) fn release(&mut self) {
        self.timers.stop(ConnTimer::PeerCheck);
        self.timers.stop(ConnTimer::MergeWindow);
        match &mut self.side {
            Side::Push { viewer, .. } => *viewer = None,
            Side::Pull { hold, .. } => self.handle.put_hold(hold.take()),
        }
    }
}

/// The client session's own deadlines, named as the same bounds are for incoming connections:
/// an origin that sends no media is `publish_idle`, an upstream that stops reading `play_stall`.
pub(super) fn relay_reason(reason: CloseReason) -> CloseReason {
    match reason {
        CloseReason::MediaIdle => CloseReason::PublishIdle,
        CloseReason::WriteStall => CloseReason::PlayStall,
        other => other,
    }
}
