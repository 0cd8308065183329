//! One task per connection: socket I/O, the protocol session, the stream it publishes or plays,
//! and a single timer re-armed to the session's earliest deadline.

mod access;
mod control;
mod observe;
mod outq;
mod play;

use play::recv_player;

pub use control::{ConnControl, ConnRole, Observed};

use crate::config::Config;
use crate::registry::{
    ChallengeTicket, PlayerGuard, PublishOutcome, PublishRefusal, PublisherGuard, Registry,
};
use crate::stream::StreamEvent;
use outq::OutQueue;
use rtmp_proto::chunk::ChunkError;
use rtmp_proto::session::{CloseReason, Event, ProtocolError, ServerSession};
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::broadcast;
use tokio::time::Instant;

/// Bytes asked of the kernel per read.
const READ_CHUNK: usize = 64 * 1024;
/// What a new connection asks of the kernel per read; doubled each time a read fills it, up to
/// [`READ_CHUNK`], so idle connections keep a small buffer and busy publishers a large one.
const READ_START: usize = 4 * 1024;
/// Reads per wake-up before giving the other duties a turn.
const READS_PER_WAKE: usize = 16;
/// Chunks parsed per wake-up, roughly: a peer with a tiny chunk size (1 is legal) makes every
/// byte cost a parse, so it gets fewer bytes per turn and yields to the other connections.
const CHUNKS_PER_WAKE: usize = 2048;
/// A player takes no more fan-out messages while this much output is queued: the bounded
/// fan-out ring, not this queue, absorbs a slow reader.
const OUT_HIGH_WATER: usize = 512 * 1024;
/// How long after a challenge a publisher looks for kernel evidence that its host is gone: past
/// the longest delayed ACK (200 ms), so a live host has surely ACKed the ping by then.
const CHALLENGE_EVIDENCE_AFTER: Duration = Duration::from_millis(300);
/// Longest gap between two looks at a player's TCP_INFO.
const PEER_CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long a refused peer gets to receive its refusal before the socket closes.
const REFUSAL_LINGER: Duration = Duration::from_secs(2);

/// What every connection task shares.
#[derive(Debug)]
pub struct Shared {
    /// The configuration in force.
    pub config: Arc<Config>,
    /// The live streams.
    pub registry: Arc<Registry>,
    /// The live connections, for the admin API.
    pub live: Arc<crate::live::LiveTable>,
    /// Prometheus metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The `[hooks]` client (decisions and end-of-life notifications).
    pub hooks: Arc<crate::hooks::Hooks>,
}

struct Player {
    guard: PlayerGuard,
    rx: broadcast::Receiver<StreamEvent>,
    /// Dropping frames until a keyframe after falling a ring behind.
    skipping: bool,
    lag_drops: u32,
    seen_video: bool,
}

struct Conn {
    shared: Arc<Shared>,
    control: Arc<ConnControl>,
    session: ServerSession,
    out: OutQueue,
    /// Output waits until then to batch more messages (the merge window).
    write_at: Option<Instant>,
    /// Bytes asked of the kernel per read (adaptive, see [`READ_START`]).
    read_size: usize,
    publisher: Option<PublisherGuard>,
    player: Option<Player>,
    stream_key: Option<String>,
    /// Set when the connection is to close once its output is flushed (a refusal).
    closing: Option<(CloseReason, Instant)>,
    last_tx: Instant,
    /// The last role held ("publisher", "player"), for the close log.
    role: &'static str,
    /// Next look at TCP_INFO for a player: data in flight and no ACK for `tcp_user_timeout`
    /// means the peer is gone (PeerUnreachable).
    peer_check_at: Option<Instant>,
    /// Our publish request waits for the incumbent's challenge to be decided.
    challenge: Option<ChallengeTicket>,
    /// When this (publishing) connection last refreshed its RTT for challenges.
    rtt_refreshed: Instant,
    /// When a newcomer challenged this publisher, and when to look at the kernel's evidence.
    challenged: Option<(Instant, Instant)>,
    /// A publish or play waiting for the on_publish / on_play hook's answer.
    hook: Option<access::PendingHook>,
    /// The stream name (without app) last granted, for the hook notifications.
    stream_name: Option<String>,
    /// When the current publish or play was granted.
    role_since: Instant,
    /// When to take the next throughput sample.
    rates_due: Instant,
}

/// Runs a connection to its end and returns why it ended.
pub async fn run(stream: TcpStream, control: Arc<ConnControl>, shared: Arc<Shared>) -> CloseReason {
    let now = Instant::now();
    let session = ServerSession::new(shared.config.session(), now.into_std());
    let mut conn = Conn {
        shared,
        control,
        session,
        out: OutQueue::default(),
        write_at: None,
        read_size: READ_START,
        publisher: None,
        player: None,
        stream_key: None,
        closing: None,
        last_tx: now,
        role: "idle",
        peer_check_at: None,
        challenge: None,
        rtt_refreshed: now,
        challenged: None,
        hook: None,
        stream_name: None,
        role_since: now,
        rates_due: now,
    };
    let reason = refine_timeout(conn.drive(&stream).await, &stream);
    conn.finish(&stream, &reason);
    conn.control.detach_fd();
    reason
}

impl Conn {
    async fn drive(&mut self, stream: &TcpStream) -> CloseReason {
        let sleep = tokio::time::sleep(Duration::from_secs(3600));
        tokio::pin!(sleep);
        // Made once: a fresh cancellation future per turn would lock the token's tree each time.
        let control = self.control.clone();
        let cancelled = control.cancelled();
        tokio::pin!(cancelled);
        loop {
            self.take_session_output();
            let now = Instant::now();
            if self.write_at.is_some_and(|at| at <= now)
                && let Err(reason) = self.merge_window_closed(stream)
            {
                return reason;
            }
            self.observe(now);
            if let Some((reason, deadline)) = &self.closing
                && (self.out.is_empty() || now >= *deadline)
            {
                return reason.clone();
            }
            let write_ready = !self.out.is_empty() && self.write_at.is_none_or(|at| at <= now);
            let deadline = [
                self.session.poll_timeout().map(Instant::from_std),
                // Once passed, the socket's write readiness drives the rest of the batch.
                self.write_at.filter(|&at| at > now),
                self.closing.as_ref().map(|(_, d)| *d),
                self.peer_check_at,
                self.challenge
                    .as_ref()
                    .map(|t| Instant::from_std(t.deadline)),
                self.challenged.map(|(_, check)| check),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + Duration::from_secs(3600));
            if sleep.deadline() != deadline {
                sleep.as_mut().reset(deadline);
            }
            // While a merge window is open, fan-out messages wait in the ring: the player wakes
            // once per window, drains them all and writes them in one vectored write.
            let can_take = self.out.len() < OUT_HIGH_WATER
                && self.closing.is_none()
                && self.write_at.is_none_or(|at| at <= now);

            tokio::select! {
                biased;
                () = &mut cancelled => {
                    return self.control.requested_reason().unwrap_or(CloseReason::Shutdown);
                }
                () = self.control.challenged(), if self.publisher.is_some() => {
                    tracing::debug!(conn = self.control.id, "challenged: pinging the publisher");
                    let now = Instant::now();
                    self.session.send_ping(now.into_std());
                    let wait = CHALLENGE_EVIDENCE_AFTER.max(self.control.srtt() * 3);
                    self.challenged = Some((now, now + wait));
                }
                () = wait_evidence(&self.challenge), if self.challenge.is_some() => {
                    self.resolve_challenge();
                }
                verdict = access::wait_hook(&mut self.hook), if self.hook.is_some() => {
                    self.hook_answered(verdict);
                }
                ev = recv_player(&mut self.player), if can_take && self.player.is_some() => {
                    if let Err(reason) = self.on_stream_event(ev) {
                        return reason;
                    }
                }
                r = stream.writable(), if write_ready => {
                    if let Err(reason) = r.map_err(|e| self.io_reason(&e)).and_then(|()| self.write(stream)) {
                        return reason;
                    }
                }
                r = stream.readable(), if self.closing.is_none() => {
                    match r.map_err(|e| self.io_reason(&e)).and_then(|()| self.read(stream)) {
                        Err(reason) => return reason,
                        // Input is waiting beyond this turn's budget: let the others run first.
                        Ok(true) => tokio::task::yield_now().await,
                        Ok(false) => {}
                    }
                }
                () = &mut sleep => {
                    let now = Instant::now();
                    if let Some(reason) = self.session.handle_timeout(now.into_std()) {
                        return reason;
                    }
                    if self.challenge.as_ref().is_some_and(|t| Instant::from_std(t.deadline) <= now) {
                        self.resolve_challenge();
                    }
                    if let Some((since, check)) = self.challenged
                        && check <= now
                    {
                        self.challenged = None;
                        self.challenge_evidence(stream, since);
                    }
                    if self.peer_check_at.is_some_and(|at| at <= now)
                        && let Err(reason) = self.check_peer(stream, now)
                    {
                        return reason;
                    }
                }
            }
        }
    }

    /// Reads and processes what the peer sent, up to a budget; `Ok(true)` when the budget ran
    /// out with more input possibly waiting.
    fn read(&mut self, stream: &TcpStream) -> Result<bool, CloseReason> {
        let chunk_size = usize::try_from(self.session.in_chunk_size()).unwrap_or(usize::MAX);
        let mut budget = chunk_size
            .saturating_mul(CHUNKS_PER_WAKE)
            .clamp(4096, READ_CHUNK * READS_PER_WAKE);
        while budget > 0 {
            let want = budget.min(self.read_size);
            let buf = self.session.recv_buf();
            buf.reserve(want);
            // A short read means the socket's queue is empty: say so to tokio (a WouldBlock from
            // `try_io` clears the readiness, unless an event came meanwhile), so the next turn
            // waits for data instead of spending a `recv` to find nothing — what tokio's own
            // `poll_read` does, and a syscall saved per wake-up of every publisher.
            let mut short = None;
            let read = stream.try_io(Interest::READABLE, || {
                let n = stream.try_read_buf(&mut bytes::BufMut::limit(&mut *buf, want))?;
                if n > 0 && n < want {
                    short = Some(n);
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(n)
            });
            let n = match short.map_or(read, Ok) {
                Ok(0) => return Err(CloseReason::PeerClosed),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Nothing there (a full read before, or a stale wake-up): keep no empty
                    // buffer reserved across the wait, or each idle connection holds
                    // `read_size` bytes for nothing.
                    if buf.is_empty() {
                        *buf = bytes::BytesMut::new();
                    }
                    return Ok(false);
                }
                Err(e) => return Err(self.io_reason(&e)),
            };
            budget -= n.min(budget);
            if n == want {
                self.read_size = (self.read_size * 2).min(READ_CHUNK);
            }
            let now = Instant::now();
            self.control.touch_rx(now.into_std(), n as u64);
            if self.publisher.is_some() && now >= self.rtt_refreshed + Duration::from_secs(1) {
                // A challenger's wait is at least 3 x our RTT: keep it current (one getsockopt
                // a second, only for publishers).
                self.rtt_refreshed = now;
                if let Ok(info) = liveness::tcp_info(stream) {
                    self.control
                        .set_srtt(Duration::from_micros(u64::from(info.rtt_us)));
                }
            }
            self.session
                .handle_input(now.into_std(), n)
                .map_err(|e| self.protocol_error(&e))?;
            self.handle_events()?;
            if n < want {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn write(&mut self, stream: &TcpStream) -> Result<(), CloseReason> {
        let mut progressed = false;
        while !self.out.is_empty() {
            let slices = self.out.slices();
            match stream.try_write_vectored(&slices) {
                Ok(n) => {
                    drop(slices);
                    self.out.advance(n);
                    self.control
                        .bytes_out
                        .fetch_add(n as u64, Ordering::Relaxed);
                    progressed |= n > 0;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(self.io_reason(&e)),
            }
        }
        let now = Instant::now();
        if progressed {
            self.last_tx = now;
        }
        if self.out.is_empty() {
            // A player's next window starts now: it wakes once per window, by its timer, and
            // takes what the ring gathered meanwhile (see `merge_window_closed`).
            let window = self.shared.config.play.merge_window;
            self.write_at = (self.player.is_some() && !window.is_zero()).then(|| now + window);
        }
        self.session
            .on_write_state(now.into_std(), !self.out.is_empty(), progressed);
        Ok(())
    }

    /// Moves the session's control output to the queue, to be written at once.
    fn take_session_output(&mut self) {
        if self.session.has_output() {
            while let Some(b) = self.session.take_output() {
                self.out.push(b);
            }
            self.write_at = None;
            self.note_queued();
        }
    }

    fn note_queued(&mut self) {
        if !self.out.is_empty() {
            self.session
                .on_write_state(Instant::now().into_std(), true, false);
        }
    }

    fn handle_events(&mut self) -> Result<(), CloseReason> {
        while let Some(event) = self.session.poll_event() {
            match event {
                Event::Connected { app, tc_url } => {
                    tracing::debug!(conn = self.control.id, peer = %self.control.peer, %app, ?tc_url, "connect");
                }
                Event::PublishRequested { name, query, .. } => {
                    self.request_access(crate::auth::Action::Publish, name, query);
                }
                Event::PlayRequested { name, query, .. } => {
                    self.request_access(crate::auth::Action::Play, name, query);
                }
                Event::Media(media) => {
                    if let Some(p) = &self.publisher {
                        p.publish(media);
                    }
                }
                Event::Unpublished => {
                    self.hook = None;
                    if self.publisher.take().is_some() {
                        self.notify_done(crate::hooks::Notice::PublishDone, "unpublished");
                        tracing::info!(
                            conn = self.control.id,
                            stream = self.stream_key.as_deref().unwrap_or("-"),
                            "unpublish"
                        );
                    }
                }
                Event::PlayStopped => {
                    self.hook = None;
                    if self.player.take().is_some() {
                        self.notify_done(crate::hooks::Notice::PlayDone, "stopped");
                    }
                    self.peer_check_at = None;
                }
                Event::PingResponse(_) => {}
            }
        }
        Ok(())
    }

    fn on_publish(&mut self, name: &str) {
        let app = self.session.app().to_owned();
        let now = Instant::now().into_std();
        match self.shared.registry.publish(&app, name, &self.control, now) {
            PublishOutcome::Granted(guard) => self.publish_granted(guard),
            PublishOutcome::Refused(refusal) => self.publish_refused(&refusal),
            PublishOutcome::Challenged(ticket) => self.challenge = Some(ticket),
        }
    }

    /// A challenged publisher looks at its own socket: when nothing at all came back since the
    /// challenge — no RTMP byte, and not even a TCP ACK of the ping from the host's kernel —
    /// the host is gone and the newcomer need not wait out `challenge_timeout`. A frozen
    /// process on a live host still ACKs, so it waits the full challenge (and loses it then).
    fn challenge_evidence(&mut self, stream: &TcpStream, since: Instant) {
        let Some(guard) = &self.publisher else { return };
        if self.control.last_rx() > since.into_std() {
            return;
        }
        let Ok(info) = liveness::tcp_info(stream) else {
            return;
        };
        let waited = since.elapsed();
        if info.unacked > 0 && Duration::from_millis(u64::from(info.last_ack_recv_ms)) >= waited {
            tracing::info!(
                conn = self.control.id,
                unacked = info.unacked,
                last_ack_ms = info.last_ack_recv_ms,
                "challenged publisher's host is unreachable"
            );
            self.shared
                .registry
                .report_unreachable_incumbent(guard.stream(), self.control.id);
        }
    }

    fn resolve_challenge(&mut self) {
        let Some(ticket) = self.challenge.take() else {
            return;
        };
        let now = Instant::now().into_std();
        match self
            .shared
            .registry
            .resolve_challenge(ticket, &self.control, now)
        {
            Ok(guard) => self.publish_granted(guard),
            Err(refusal) => self.publish_refused(&refusal),
        }
    }

    fn publish_granted(&mut self, guard: PublisherGuard) {
        self.session.accept_publish(Instant::now().into_std());
        self.role = "publisher";
        self.role_since = Instant::now();
        self.stream_key = Some(guard.stream().key.clone());
        tracing::info!(conn = self.control.id, peer = %self.control.peer, stream = %guard.stream().key, "publish");
        self.publisher = Some(guard);
    }

    fn publish_refused(&mut self, refusal: &PublishRefusal) {
        tracing::info!(conn = self.control.id, peer = %self.control.peer, "publish refused: {refusal}");
        self.session.reject_publish(&refusal.to_string());
        self.closing = Some((
            CloseReason::Refused(refusal.to_string()),
            Instant::now() + REFUSAL_LINGER,
        ));
    }

    /// A protocol error closes the connection; one that is a `[limits]` bound is also counted
    /// and logged as a refusal.
    fn protocol_error(&self, e: &ProtocolError) -> CloseReason {
        let limit = match e {
            ProtocolError::Chunk(ChunkError::TooManyChunkStreams(_)) => Some("max_chunk_streams"),
            ProtocolError::Chunk(ChunkError::MessageTooLarge { .. }) => Some("max_message_size"),
            ProtocolError::Chunk(ChunkError::TooMuchBuffered(_)) => Some("max_buffered"),
            ProtocolError::TooManyStreams => Some("max_streams_per_connection"),
            _ => None,
        };
        if let Some(limit) = limit {
            let peer = self.control.peer.to_string();
            self.shared
                .registry
                .refusal_log()
                .refused(limit, &peer, Instant::now().into_std());
        }
        CloseReason::ProtocolError(e.to_string())
    }

    fn io_reason(&self, e: &io::Error) -> CloseReason {
        match e.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => CloseReason::PeerReset,
            // ETIMEDOUT: with our data sent after the peer's last word, the retransmission
            // (user) timeout fired; on an idle socket, keepalive did.
            io::ErrorKind::TimedOut if self.last_tx > Instant::from_std(self.session.last_rx()) => {
                CloseReason::UserTimeout
            }
            io::ErrorKind::TimedOut => CloseReason::KeepaliveTimeout,
            io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
                CloseReason::PeerUnreachable
            }
            _ => CloseReason::PeerReset,
        }
    }

    fn finish(&mut self, stream: &TcpStream, reason: &CloseReason) {
        // Free the name before anything else can fail.
        let ended = (
            self.publisher.take().is_some(),
            self.player.take().is_some(),
        );
        self.peer_check_at = None;
        // Kernel evidence for the log: how long since the peer ACKed anything, and what is
        // still in flight.
        let (last_ack_ms, unacked) = liveness::tcp_info(stream)
            .map(|i| (i64::from(i.last_ack_recv_ms), i64::from(i.unacked)))
            .unwrap_or((-1, -1));
        if reason.wants_reset() {
            // Abortive close: RST now instead of retransmitting into the void.
            let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
        }
        let silent_ms = Instant::now()
            .into_std()
            .saturating_duration_since(self.session.last_rx())
            .as_millis();
        let role = self.role;
        tracing::info!(
            conn = self.control.id,
            peer = %self.control.peer,
            role,
            stream = self.stream_key.as_deref().unwrap_or("-"),
            reason = %reason,
            silent_ms,
            last_ack_ms,
            unacked,
            bytes_in = self.control.bytes_in.load(Ordering::Relaxed),
            bytes_out = self.control.bytes_out.load(Ordering::Relaxed),
            age_ms = self.control.started.elapsed().as_millis(),
            "close"
        );
        self.notify_closed(ended, reason);
    }
}

/// The kernel says only ETIMEDOUT; its counters say which timer gave up: keepalive probes
/// went unanswered (idle socket), or retransmissions did (data in flight, TCP_USER_TIMEOUT).
fn refine_timeout(reason: CloseReason, stream: &TcpStream) -> CloseReason {
    if !matches!(
        reason,
        CloseReason::KeepaliveTimeout | CloseReason::UserTimeout
    ) {
        return reason;
    }
    match liveness::tcp_info(stream) {
        Ok(info) if info.retransmits > 0 || info.unacked > 0 => CloseReason::UserTimeout,
        Ok(info) if info.probes > 0 => CloseReason::KeepaliveTimeout,
        _ => reason,
    }
}

async fn wait_evidence(ticket: &Option<ChallengeTicket>) {
    match ticket {
        Some(t) => t.dead_evidence().await,
        None => std::future::pending().await,
    }
}
