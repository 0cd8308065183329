//! The sans-IO core of one RTMP connection: the protocol session, what the connection holds
//! (a stream name, a stream it watches), what it waits for (a hook's answer, a challenge's
//! verdict), its output queue, and every deadline it has, in one table.
//!
//! The driver (`driver.rs`) only moves bytes and sleeps: it feeds received bytes to
//! [`RtmpConn::handle_input`], writes [`RtmpConn::output`] when [`RtmpConn::wants_write`],
//! sleeps until [`RtmpConn::poll_timeout`] and calls [`RtmpConn::handle_timeout`], and passes
//! on what other tasks tell it (a fan-out message, a challenge, a hook's answer). Every
//! decision is made here, on an explicit clock, with the kernel's evidence read through
//! [`Kernel`] — so all of it is tested without sockets or root.

use crate::access::PendingHook;
use crate::control::{ConnControl, ConnRole};

use crate::evidence::Kernel;
use crate::fanout::{OutQueue, Seated, Viewer};
use crate::registry::{ChallengeTicket, PublisherGuard};
use crate::shared::Shared;
use crate::timers::{ConnDeadlines, ConnTimer};
use bytes::BytesMut;
use rtmp_proto::session::{CloseReason, Event, ServerSession};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How long a refused peer gets to receive its refusal before the socket closes.
pub(super) const REFUSAL_LINGER: Duration = Duration::from_secs(2);
/// A challenger's wait is at least 3 × our RTT: a publisher refreshes it this often (one
/// getsockopt, only while reading anyway).
const RTT_REFRESH_EVERY: Duration = Duration::from_secs(1);

/// What the connection holds.
#[derive(Debug)]
pub(super) enum Held {
    /// Nothing (yet, or any more).
    Nothing,
    /// A stream name, as its publisher.
    Name(Publishing),
    /// A stream it watches, taking fan-out messages itself (until a writer takes over).
    Stream(Viewer),
    /// A stream it watches, served by a fan-out writer.
    Seated(Seated),
}

/// A publisher's state.
#[derive(Debug)]
pub(super) struct Publishing {
    pub(super) guard: PublisherGuard,
    /// When a newcomer last challenged us (its kernel-evidence look is `ChallengeEvidence`).
    pub(super) challenged_at: Option<Instant>,
}

/// A publish or play request waiting for something outside the connection.
#[derive(Debug)]
pub(super) enum Waiting {
    /// Nothing.
    Nothing,
    /// The on_publish / on_play hook's answer.
    Hook(PendingHook),
    /// The verdict of the challenge of the name's incumbent (deadline: `Challenge`).
    Challenge(ChallengeTicket),
    /// `[cluster]`: the claim of the name in etcd (bounded by the cluster's own deadlines).
    Cluster(PendingClaim),
}

/// A publish waiting for its claim in etcd.
#[derive(Debug)]
pub(crate) struct PendingClaim {
    pub(super) name: String,
    pub(super) claim: crate::cluster::ClaimRef,
    pub(super) answer: tokio::sync::oneshot::Receiver<Result<u64, crate::cluster::Refusal>>,
}

impl PendingClaim {
    /// Resolves with the claim's outcome (for the driver to await).
    pub(crate) async fn answer(&mut self) -> Result<u64, crate::cluster::Refusal> {
        (&mut self.answer).await.unwrap_or_else(|_| {
            Err(crate::cluster::Refusal::Unavailable(
                "the claim was abandoned".to_owned(),
            ))
        })
    }
}

/// What the connection did, for its close log, hook notifications and the admin API.
#[derive(Debug)]
pub(super) struct Record {
    /// `app/name` last published or played.
    pub(super) stream_key: Option<String>,
    /// The stream name (without app) last granted, for the hook notifications.
    pub(super) stream_name: Option<String>,
    /// The last role granted (publisher or player); `None` while still setting up.
    pub(super) last_held: Option<ConnRole>,
    /// When the current publish or play was granted.
    pub(super) since: Instant,
    /// When a write of ours last made progress.
    pub(super) last_tx: Instant,
    /// Bytes sent when the fan-out writer's progress was last looked at.
    pub(super) synced_out: u64,
}

/// One RTMP connection, without its socket.
#[derive(Debug)]
pub(crate) struct RtmpConn {
    pub(super) shared: Arc<Shared>,
    pub(super) control: Arc<ConnControl>,
    pub(super) session: ServerSession,
    pub(super) out: OutQueue,
    pub(super) timers: ConnDeadlines,
    pub(super) held: Held,
    pub(super) waiting: Waiting,
    /// Set when the connection is to close once its output is flushed (a refusal); the
    /// `Linger` deadline bounds the wait.
    pub(super) closing: Option<CloseReason>,
    pub(super) record: Record,
    /// The viewer just attached goes to a fan-out writer once the driver shares the socket.
    pub(super) handoff: bool,
    /// `[cluster]`: the claim of the name this connection publishes (or asks for).
    pub(super) cluster_claim: Option<crate::cluster::ClaimRef>,
}

impl RtmpConn {
    /// A connection accepted at `now`.
    pub(crate) fn new(shared: Arc<Shared>, control: Arc<ConnControl>, now: Instant) -> Self {
        let session = ServerSession::new(shared.config.session(), now);
        let mut timers = ConnDeadlines::default();
        timers.put(ConnTimer::Session, session.poll_timeout());
        timers.set(ConnTimer::RateSample, now);
        Self {
            shared,
            control,
            session,
            out: OutQueue::default(),
            timers,
            held: Held::Nothing,
            waiting: Waiting::Nothing,
            closing: None,
            handoff: false,
            cluster_claim: None,
            record: Record {
                stream_key: None,
                stream_name: None,
                last_held: None,
                since: now,
                last_tx: now,
                synced_out: 0,
            },
        }
    }

    /// Where the driver reads into; follow each read with [`Self::handle_input`].
    pub(crate) fn recv_buf(&mut self) -> &mut BytesMut {
        self.session.recv_buf()
    }

    /// Processes `n` bytes just read into [`Self::recv_buf`].
    pub(crate) fn handle_input(
        &mut self,
        now: Instant,
        n: usize,
        kernel: &impl Kernel,
    ) -> Result<(), CloseReason> {
        self.control.touch_rx(now, n as u64);
        if matches!(self.held, Held::Name(_)) && self.timers.due(ConnTimer::RttRefresh, now) {
            self.timers
                .set(ConnTimer::RttRefresh, now + RTT_REFRESH_EVERY);
            if let Ok(info) = kernel.tcp_info() {
                self.control
                    .set_srtt(Duration::from_micros(u64::from(info.rtt_us)));
            }
        }
        let result = self
            .session
            .handle_input(now, n)
            .map_err(|e| self.protocol_error(&e, now));
        if result.is_ok() {
            self.handle_events(now);
        }
        self.settle(now);
        result
    }

    /// Whether the driver should read: not while closing (the refusal is all that is left).
    pub(crate) fn wants_read(&self) -> bool {
        self.closing.is_none()
    }

    /// Whether queued output should be written now (no merge window holds it back).
    pub(crate) fn wants_write(&self) -> bool {
        Viewer::may_write(&self.out, &self.timers)
    }

    /// The queued output, for the driver's vectored writes.
    pub(crate) fn output(&self) -> &OutQueue {
        &self.out
    }

    /// The socket took `n` bytes of [`Self::output`].
    pub(crate) fn wrote(&mut self, n: usize) {
        self.out.advance(n);
        self.control
            .bytes_out
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The driver's writes of this turn are over; `progressed` if any byte went out.
    pub(crate) fn write_done(&mut self, now: Instant, progressed: bool) {
        if progressed {
            self.record.last_tx = now;
        }
        if self.out.is_empty() {
            match &self.held {
                Held::Stream(viewer) => viewer.flushed(&mut self.timers, now),
                // Only a viewer writing for itself refills its queue soon: any other
                // connection gives the queue's memory back until it has something to say.
                _ => self.out.release(),
            }
        }
        self.session
            .on_write_state(now, !self.out.is_empty(), progressed);
        self.settle(now);
    }

    /// Whether the driver should await the fan-out ring now.
    pub(crate) fn can_take(&self) -> bool {
        self.closing.is_none()
            && matches!(self.held, Held::Stream(_))
            && Viewer::can_take(&self.out, &self.timers)
    }

    /// A fan-out message (or a lag) the driver received from the ring.
    pub(crate) fn on_stream_event(
        &mut self,
        now: Instant,
        ev: Result<crate::stream::StreamEvent, tokio::sync::broadcast::error::RecvError>,
    ) -> Result<(), CloseReason> {
        let result = self.take_fanout(now, Some(ev));
        self.settle(now);
        result
    }

    /// Whether the connection holds a name (a newcomer's challenge reaches only publishers).
    #[cfg(test)]
    pub(crate) fn is_publisher(&self) -> bool {
        matches!(self.held, Held::Name(_))
    }

    /// The earliest deadline that should wake the connection.
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
        // A writer's progress moves the write-stall deadline before it is judged.
        self.sync_seated(now);
        while let Some(timer) = self.timers.pop_due(now) {
            match timer {
                ConnTimer::Session => {
                    if let Some(reason) = self.session.handle_timeout(now) {
                        return Err(reason);
                    }
                    self.timers
                        .put(ConnTimer::Session, self.session.poll_timeout());
                }
                ConnTimer::MergeWindow => self.window_closed(now)?,
                ConnTimer::Linger => {
                    return Err(self.closing.clone().unwrap_or(CloseReason::Shutdown));
                }
                ConnTimer::PeerCheck => self.check_peer(now, kernel)?,
                ConnTimer::Challenge => self.resolve_challenge(now),
                ConnTimer::ChallengeEvidence => self.challenge_evidence(now, kernel),
                // Lazy: never popped, acted on where the connection is awake anyway.
                ConnTimer::RttRefresh | ConnTimer::RateSample => {}
                // HTTP's: an RTMP session keeps its own request and stall deadlines.
                ConnTimer::Request
                | ConnTimer::WriteStall
                | ConnTimer::WaitPublisher
                | ConnTimer::Blocked => {}
            }
        }
        Ok(())
    }

    /// The reason to end the connection now, if any: a refusal whose answer is flushed.
    pub(crate) fn poll_close(&self) -> Option<CloseReason> {
        self.closing.clone().filter(|_| self.out.is_empty())
    }

    /// After every entry point: the session's output goes on the queue (at once: control
    /// messages never wait for a merge window) and its deadline into the table.
    pub(super) fn settle(&mut self, now: Instant) {
        if self.session.has_output() {
            while let Some(b) = self.session.take_output() {
                match &self.held {
                    Held::Seated(seated) => seated.send(b),
                    _ => self.out.push(b),
                }
            }
            self.timers.stop(ConnTimer::MergeWindow);
        }
        if !self.out.is_empty() {
            self.session.on_write_state(now, true, false);
        }
        self.timers
            .put(ConnTimer::Session, self.session.poll_timeout());
    }

    /// Stops the connection's publish or play with a refusal, closing once it is delivered.
    pub(super) fn close_after_refusal(&mut self, reason: CloseReason, now: Instant) {
        self.closing = Some(reason);
        self.timers.set(ConnTimer::Linger, now + REFUSAL_LINGER);
    }

    fn handle_events(&mut self, now: Instant) {
        while let Some(event) = self.session.poll_event() {
            match event {
                Event::Connected { app, tc_url } => {
                    tracing::debug!(conn = self.control.id, peer = %self.control.peer, %app, ?tc_url, "connect");
                }
                Event::PublishRequested { name, query, .. } => {
                    self.request_access(crate::auth::Action::Publish, name, query, now);
                }
                Event::PlayRequested { name, query, .. } => {
                    self.request_access(crate::auth::Action::Play, name, query, now);
                }
                Event::Media(media) => {
                    if let Held::Name(p) = &self.held {
                        p.guard.publish(media);
                    }
                }
                Event::Unpublished => {
                    self.drop_pending_hook();
                    if matches!(self.held, Held::Name(_)) {
                        self.held = Held::Nothing;
                        self.notify_done(crate::hooks::Notice::PublishDone, "unpublished");
                        tracing::info!(
                            conn = self.control.id,
                            stream = self.record.stream_key.as_deref().unwrap_or("-"),
                            "unpublish"
                        );
                    }
                }
                Event::PlayStopped => {
                    self.drop_pending_hook();
                    if matches!(self.held, Held::Stream(_) | Held::Seated(_)) {
                        self.held = Held::Nothing;
                        self.notify_done(crate::hooks::Notice::PlayDone, "stopped");
                    }
                    self.timers.stop(ConnTimer::PeerCheck);
                    self.timers.stop(ConnTimer::MergeWindow);
                }
                Event::PingResponse(_) => {}
            }
        }
    }

    /// A request given up by the peer no longer waits for its hook's answer.
    fn drop_pending_hook(&mut self) {
        if matches!(self.waiting, Waiting::Hook(_)) {
            self.waiting = Waiting::Nothing;
        }
    }

    /// Gives up what the connection holds (the name is free when this returns) and reports
    /// what it held: (published, played).
    pub(super) fn release(&mut self) -> (bool, bool) {
        let held = std::mem::replace(&mut self.held, Held::Nothing);
        self.timers.stop(ConnTimer::PeerCheck);
        if matches!(held, Held::Name(_)) {
            // After the registry let go of the name (the guard above): the claim may go.
            drop(held);
            self.cluster_claim = None;
            return (true, false);
        }
        (
            matches!(held, Held::Name(_)),
            matches!(held, Held::Stream(_) | Held::Seated(_)),
        )
    }

    /// Whether our last write came after the peer's last byte (an ETIMEDOUT then means the
    /// retransmission timeout rather than keepalive).
    pub(crate) fn sent_after_rx(&self) -> bool {
        let writer_tx = match &self.held {
            Held::Seated(seated) => Some(seated.last_tx()),
            _ => None,
        };
        self.record
            .last_tx
            .max(writer_tx.unwrap_or(self.record.last_tx))
            > self.session.last_rx()
    }
}
