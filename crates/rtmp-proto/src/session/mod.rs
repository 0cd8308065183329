//! The server side of one RTMP connection as a state machine: bytes in, events and bytes out.
//!
//! The driver (a tokio task in the server crate) feeds received bytes to
//! [`ServerSession::handle_input`], drains [`ServerSession::poll_event`] and
//! [`ServerSession::take_output`], and sleeps until [`ServerSession::poll_timeout`]. Decisions
//! that need the whole server (may this name be published?) come back as events, and the
//! driver answers with [`ServerSession::accept_publish`] and friends. Nothing here blocks, so
//! the whole thing can be tested and fuzzed without sockets or a runtime.

mod close;
mod replies;
#[cfg(test)]
mod tests;
mod timer;

pub use close::CloseReason;
pub use timer::{Timer, TimerTable};

use crate::amf0::Value;
use crate::chunk::{ChunkError, ChunkReader, ChunkWriter, MessageHeader, RawMessage, ReaderLimits};
use crate::handshake::{HandshakeError, HandshakeProgress, HandshakeRng, ServerHandshake};
use crate::message::{Command, Message, MessageError, UserControl};
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Chunk stream for protocol control and user control messages (fixed by the spec).
pub const CSID_CONTROL: u32 = 2;
/// Chunk stream for connection-level command replies.
pub const CSID_COMMAND: u32 = 3;
/// Chunk stream for stream-level status and data messages.
pub const CSID_STREAM: u32 = 5;
/// Chunk stream we send audio on.
pub const CSID_AUDIO: u32 = 6;
/// Chunk stream we send video on.
pub const CSID_VIDEO: u32 = 7;
/// Most message streams (createStream) one connection may hold.
pub const MAX_STREAMS: u32 = 8;

/// The liveness bounds the session enforces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From accept until publish or play is under way.
    pub handshake: Duration,
    /// A publisher that sends no bytes for this long is closed.
    pub publish_idle: Duration,
    /// A connection whose queued output does not move for this long is closed.
    pub play_stall: Duration,
    /// Ping a player that has been silent this long; `None` disables pings.
    pub ping_interval: Option<Duration>,
    /// How long a ping may go unanswered (no byte at all from the peer).
    pub ping_timeout: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            handshake: Duration::from_secs(10),
            publish_idle: Duration::from_secs(30),
            play_stall: Duration::from_secs(10),
            ping_interval: Some(Duration::from_secs(5)),
            ping_timeout: Duration::from_secs(10),
        }
    }
}

/// Per-session settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// Our outbound chunk size, announced right after `connect`.
    pub chunk_size: u32,
    /// Window Acknowledgement Size and Set Peer Bandwidth we announce.
    pub window_ack_size: u32,
    /// Bounds on what the peer can make the chunk reader hold.
    pub reader_limits: ReaderLimits,
    /// Liveness deadlines.
    pub timeouts: Timeouts,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            chunk_size: 4096,
            window_ack_size: 2_500_000,
            reader_limits: ReaderLimits::default(),
            timeouts: Timeouts::default(),
        }
    }
}

/// Something the driver must act on.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// `connect` succeeded (already answered).
    Connected {
        /// Application name (the path's first part), without any `?query`.
        app: String,
        /// `tcUrl` as the client sent it.
        tc_url: Option<String>,
    },
    /// The peer asks to publish; answer with `accept_publish` or `reject_publish`.
    PublishRequested {
        /// Message stream the publish arrived on.
        stream_id: u32,
        /// Stream name without the query.
        name: String,
        /// What followed `?` in the name (stream keys travel there).
        query: String,
    },
    /// The peer asks to play; answer with `accept_play` or `reject_play`.
    PlayRequested {
        /// Message stream the play arrived on.
        stream_id: u32,
        /// Stream name without the query.
        name: String,
        /// What followed `?` in the name.
        query: String,
    },
    /// Media or metadata from the publisher.
    Media(Media),
    /// The publisher ended its stream (deleteStream / closeStream / FCUnpublish).
    Unpublished,
    /// The player ended playback (deleteStream / closeStream).
    PlayStopped,
    /// The peer answered one of our pings.
    PingResponse(u32),
}

/// The kind of a media message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    /// Message type 8.
    Audio,
    /// Message type 9.
    Video,
    /// Message type 18, as `onMetaData` (the `@setDataFrame` wrapper removed).
    Metadata,
}

/// One media message from a publisher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// Audio, video or metadata.
    pub kind: MediaKind,
    /// Timestamp as the publisher sent it.
    pub timestamp: u32,
    /// Body, shared without copying.
    pub payload: Bytes,
}

impl MediaKind {
    /// The RTMP message type id for this kind.
    pub fn type_id(self) -> u8 {
        match self {
            Self::Audio => crate::message::type_id::AUDIO,
            Self::Video => crate::message::type_id::VIDEO,
            Self::Metadata => crate::message::type_id::DATA_AMF0,
        }
    }

    /// The chunk stream we send this kind on.
    pub fn csid(self) -> u32 {
        match self {
            Self::Audio => CSID_AUDIO,
            Self::Video => CSID_VIDEO,
            Self::Metadata => CSID_STREAM,
        }
    }
}

/// Why the session gave up on its peer; the connection is closed with
/// [`CloseReason::ProtocolError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The handshake was malformed.
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// The chunk stream was malformed or exceeded a limit.
    #[error("chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    /// A message body was malformed.
    #[error("message: {0}")]
    Message(#[from] MessageError),
    /// A command we do not know.
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    /// A command that makes no sense now (e.g. publish before connect).
    #[error("unexpected command {name:?}: {why}")]
    UnexpectedCommand {
        /// Command name.
        name: String,
        /// What was wrong with it.
        why: &'static str,
    },
    /// More createStream calls than [`MAX_STREAMS`].
    #[error("more than {MAX_STREAMS} message streams")]
    TooManyStreams,
}

#[derive(Debug)]
enum Phase {
    Handshake(ServerHandshake),
    AwaitConnect,
    Connected,
}

/// What the connection does once it is past connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Connected, no stream yet.
    Idle,
    /// Asked to publish; waiting for the server's decision.
    PublishPending(u32),
    /// Publishing on the given message stream.
    Publisher(u32),
    /// Asked to play; waiting for the server's decision.
    PlayPending(u32),
    /// Playing on the given message stream.
    Player(u32),
}

/// The server side of one RTMP connection.
#[derive(Debug)]
pub struct ServerSession {
    config: SessionConfig,
    phase: Phase,
    reader: ChunkReader,
    writer: ChunkWriter,
    inbuf: BytesMut,
    out: BytesMut,
    events: VecDeque<Event>,
    timers: TimerTable,
    role: Role,
    app: String,
    streams_created: u32,
    epoch: Instant,
    last_rx: Instant,
    bytes_in: u64,
    /// The peer's Window Acknowledgement Size: we acknowledge every this many bytes.
    peer_ack_window: u32,
    acked_at: u64,
}

impl ServerSession {
    /// A session for a connection accepted at `now`.
    pub fn new(config: SessionConfig, now: Instant) -> Self {
        Self::with_rng(config, now, HandshakeRng::thread())
    }

    /// [`Self::new`] with the handshake's random bytes drawn from `rng`, so tests and fuzzing
    /// replay a session byte for byte.
    pub fn with_rng(config: SessionConfig, now: Instant, rng: HandshakeRng) -> Self {
        let mut timers = TimerTable::default();
        timers.set(Timer::Handshake, now + config.timeouts.handshake);
        Self {
            config,
            phase: Phase::Handshake(ServerHandshake::with_rng(rng)),
            reader: ChunkReader::new(config.reader_limits),
            writer: ChunkWriter::default(),
            inbuf: BytesMut::new(),
            out: BytesMut::new(),
            events: VecDeque::new(),
            timers,
            role: Role::Idle,
            app: String::new(),
            streams_created: 0,
            epoch: now,
            last_rx: now,
            bytes_in: 0,
            peer_ack_window: 0,
            acked_at: 0,
        }
    }

    /// The application name from `connect` (empty before).
    pub fn app(&self) -> &str {
        &self.app
    }

    /// What the connection is doing.
    pub fn role(&self) -> Role {
        self.role
    }

    /// When the peer last sent a byte.
    pub fn last_rx(&self) -> Instant {
        self.last_rx
    }

    /// Bytes received from the peer so far.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in
    }

    /// Our outbound chunk size (media for this peer must be chunked with it).
    pub fn out_chunk_size(&self) -> u32 {
        self.writer.chunk_size()
    }

    /// The peer's chunk size in force (what it announced with Set Chunk Size; 128 before).
    pub fn in_chunk_size(&self) -> u32 {
        self.reader.chunk_size()
    }

    /// The deadline table, for observability.
    pub fn timers(&self) -> &TimerTable {
        &self.timers
    }

    /// Where the driver puts received bytes (read straight into it, so payloads are never
    /// copied); follow every read with [`Self::handle_input`].
    pub fn recv_buf(&mut self) -> &mut BytesMut {
        &mut self.inbuf
    }

    /// Processes the `received` bytes just appended to [`Self::recv_buf`] (and anything left
    /// over from before), queueing events and output. On error the connection should be closed
    /// with a protocol-error reason.
    pub fn handle_input(&mut self, now: Instant, received: usize) -> Result<(), ProtocolError> {
        self.on_received(now, received as u64);
        let mut input = std::mem::take(&mut self.inbuf);
        let result = self.process(&mut input);
        // Fully consumed: drop the buffer rather than keep its capacity, so an idle connection
        // holds no receive memory (a busy one reallocates anyway, its old buffer being shared
        // with the payloads it produced).
        if !input.is_empty() {
            self.inbuf = input;
        }
        result
    }

    /// Appends `bytes` to the receive buffer and processes them (tests and fuzzing).
    pub fn feed(&mut self, now: Instant, bytes: &[u8]) -> Result<(), ProtocolError> {
        self.inbuf.extend_from_slice(bytes);
        self.handle_input(now, bytes.len())
    }

    fn on_received(&mut self, now: Instant, n: u64) {
        if n == 0 {
            return;
        }
        self.last_rx = now;
        self.bytes_in += n;
        self.timers.stop(Timer::PingTimeout);
        self.arm_ping(now);
        if let Role::Publisher(_) = self.role {
            self.timers
                .set(Timer::PublishIdle, now + self.config.timeouts.publish_idle);
        }
        if self.peer_ack_window > 0
            && self.bytes_in - self.acked_at >= u64::from(self.peer_ack_window)
        {
            self.acked_at = self.bytes_in;
            // The sequence number is the byte count modulo 2^32 (RTMP 1.0 §5.4.3).
            let seq = (self.bytes_in & 0xFFFF_FFFF) as u32;
            self.send_message(CSID_CONTROL, 0, &Message::Acknowledgement(seq));
        }
    }

    fn process(&mut self, input: &mut BytesMut) -> Result<(), ProtocolError> {
        if let Phase::Handshake(hs) = &mut self.phase {
            match hs.process(input, &mut self.out)? {
                HandshakeProgress::InProgress => return Ok(()),
                HandshakeProgress::Done => self.phase = Phase::AwaitConnect,
            }
        }
        while let Some(raw) = self.reader.read(input)? {
            self.handle_message(&raw)?;
        }
        Ok(())
    }

    fn handle_message(&mut self, raw: &RawMessage) -> Result<(), ProtocolError> {
        match Message::parse(raw)? {
            Message::SetChunkSize(size) => self.reader.set_chunk_size(size)?,
            Message::Abort(csid) => self.reader.abort(csid),
            Message::Acknowledgement(_) | Message::SetPeerBandwidth { .. } => {}
            Message::WindowAckSize(size) => self.peer_ack_window = size,
            Message::UserControl(uc) => self.handle_user_control(raw.header.timestamp, uc),
            Message::Audio(payload) => self.media(raw, MediaKind::Audio, payload),
            Message::Video(payload) => self.media(raw, MediaKind::Video, payload),
            Message::Data(values) => self.data(raw, values),
            Message::Command(cmd) => self.command(raw.header.stream_id, cmd)?,
            // Aggregates and shared objects are not used by live encoders we support.
            Message::Aggregate(_) | Message::Other { .. } => {}
        }
        Ok(())
    }

    fn handle_user_control(&mut self, _timestamp: u32, uc: UserControl) {
        match uc {
            UserControl::PingRequest(ts) => {
                self.send_message(
                    CSID_CONTROL,
                    0,
                    &Message::UserControl(UserControl::PingResponse(ts)),
                );
            }
            UserControl::PingResponse(ts) => self.events.push_back(Event::PingResponse(ts)),
            _ => {}
        }
    }

    fn media(&mut self, raw: &RawMessage, kind: MediaKind, payload: Bytes) {
        if self.role == Role::Publisher(raw.header.stream_id) {
            self.events.push_back(Event::Media(Media {
                kind,
                timestamp: raw.header.timestamp,
                payload,
            }));
        }
    }

    fn data(&mut self, raw: &RawMessage, values: Vec<Value>) {
        if self.role != Role::Publisher(raw.header.stream_id) {
            return;
        }
        // Encoders send `@setDataFrame, onMetaData, {…}`; players expect `onMetaData, {…}`.
        let values = match values.first().and_then(Value::as_str) {
            Some("@setDataFrame") => values.into_iter().skip(1).collect(),
            Some("onMetaData") => values,
            _ => return,
        };
        if values.first().and_then(Value::as_str) != Some("onMetaData") {
            return;
        }
        let (_, payload) = Message::Data(values).encode();
        self.events.push_back(Event::Media(Media {
            kind: MediaKind::Metadata,
            timestamp: raw.header.timestamp,
            payload,
        }));
    }

    /// The earliest deadline, for the driver's single timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next().map(|(_, at)| at)
    }

    /// Runs every deadline due at `now`. Returns the close reason when one of them ends the
    /// connection; a due ping is simply sent.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<CloseReason> {
        while let Some(timer) = self.timers.pop_expired(now) {
            if let Some(reason) = timer.close_reason() {
                return Some(reason);
            }
            self.send_ping(now);
        }
        None
    }

    /// Schedules the next ping for a player silent since `now`. Only players are pinged:
    /// publishers are judged by `publish_idle` (and by a challenge when a newcomer wants their
    /// name), so an encoder that pauses is never pinged away sooner than operators expect; a
    /// connection that neither publishes nor plays is bounded by `handshake_timeout`, so
    /// thousands of idle connections cost no wake-ups at all.
    pub(super) fn arm_ping(&mut self, now: Instant) {
        match self.config.timeouts.ping_interval {
            Some(interval) if matches!(self.role, Role::Player(_)) => {
                self.timers.set(Timer::PingSend, now + interval);
            }
            _ => self.timers.stop(Timer::PingSend),
        }
    }

    /// Sends a Ping Request now and arms the ping timeout (unless one is outstanding).
    pub fn send_ping(&mut self, now: Instant) {
        let ts = self.millis_since_start(now);
        self.send_message(
            CSID_CONTROL,
            0,
            &Message::UserControl(UserControl::PingRequest(ts)),
        );
        if self.timers.get(Timer::PingTimeout).is_none() {
            self.timers
                .set(Timer::PingTimeout, now + self.config.timeouts.ping_timeout);
        }
    }

    /// Tells the session whether output is waiting for the socket. `progressed` says whether
    /// any byte was written since the last call: the stall deadline restarts on progress and
    /// is cleared once nothing is queued.
    pub fn on_write_state(&mut self, now: Instant, pending: bool, progressed: bool) {
        if !pending {
            self.timers.stop(Timer::WriteStall);
        } else if progressed || self.timers.get(Timer::WriteStall).is_none() {
            self.timers
                .set(Timer::WriteStall, now + self.config.timeouts.play_stall);
        }
    }

    fn millis_since_start(&self, now: Instant) -> u32 {
        // Wraps after 49 days, as RTMP timestamps do.
        (now.saturating_duration_since(self.epoch).as_millis() & 0xFFFF_FFFF) as u32
    }

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<Event> {
        let event = self.events.pop_front();
        if event.is_none() && self.role == Role::Idle && self.events.capacity() > 0 {
            // A connection that neither publishes nor plays may wait a long time (up to the
            // handshake bound): it keeps no queue meanwhile. Busy sessions keep theirs.
            self.events = VecDeque::new();
        }
        event
    }

    /// Bytes to send, if any.
    pub fn take_output(&mut self) -> Option<Bytes> {
        // `take` rather than `split`: the spare capacity would otherwise stay allocated for as
        // long as the connection lives.
        (!self.out.is_empty()).then(|| std::mem::take(&mut self.out).freeze())
    }

    /// Whether bytes are waiting in [`Self::take_output`].
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    fn send_message(&mut self, csid: u32, stream_id: u32, msg: &Message) {
        let (type_id, payload) = msg.encode();
        let header = MessageHeader {
            csid,
            timestamp: 0,
            type_id,
            stream_id,
        };
        self.writer.write(&header, &payload, &mut self.out);
    }

    fn send_command(&mut self, csid: u32, stream_id: u32, cmd: Command) {
        self.send_message(csid, stream_id, &Message::Command(cmd));
    }
}
