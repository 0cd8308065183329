//! The client side of one RTMP connection as a state machine, the mirror of
//! [`ServerSession`](crate::session::ServerSession): bytes in, events and bytes out.
//!
//! ```text
//!  new ─► C0/C1 ─► S0/S1/S2 ─► C2, Set Chunk Size, connect ─► Connected
//!                 publish(name) / play(name) ─► [releaseStream, FCPublish,] createStream
//!                 ─► StreamCreated ─► publish / play ─► Publishing / Playing ─► media
//! ```
//!
//! The driver (a tokio task, a blocking test client, a load generator) feeds received bytes to
//! [`ClientSession::handle_input`] or [`ClientSession::feed`], drains
//! [`ClientSession::poll_event`] and [`ClientSession::take_output`], and sleeps until
//! [`ClientSession::poll_timeout`]. Requests made early wait for what they need: `publish`
//! right after [`ClientSession::new`] is sent once `connect` and `createStream` are answered.
//! The session answers pings, acknowledges the server's window and follows its chunk size by
//! itself, so a correct server never has a reason to drop it; it never panics on what the
//! server sends.

mod commands;
mod config;
mod events;
mod media;
#[cfg(test)]
mod tests;
mod timer;

pub use config::{ClientConfig, ClientTimeouts, MediaMode};
pub use events::{ClientError, ClientEvent, ClientState, MediaHeader, StreamEnd};
pub use timer::{ClientTimer, ClientTimerTable};

use crate::chunk::{ChunkReader, ChunkWriter, MAX_CHUNK_SIZE, MessageHeader, RawMessage, Skimmed};
use crate::handshake::{ClientHandshake, HandshakeProgress, HandshakeRng};
use crate::message::{Message, UserControl, type_id};
use crate::session::{CSID_CONTROL, CloseReason, MediaKind, ProtocolError};
use bytes::{Buf, Bytes, BytesMut};
use std::collections::VecDeque;
use std::time::Instant;

#[derive(Debug)]
enum Phase {
    Handshake(ClientHandshake),
    Connecting,
    Connected,
    Refused,
}

/// What the connection's one stream is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Goal {
    Publish,
    Play,
}

/// The message stream's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    None,
    /// `createStream` sent.
    Creating,
    /// Created, nothing started on it.
    Ready(u32),
    /// `publish` or `play` sent.
    Starting(u32, Goal),
    /// `NetStream.Publish.Start` or `NetStream.Play.Start` seen.
    Active(u32, Goal),
}

/// The client side of one RTMP connection.
#[derive(Debug)]
pub struct ClientSession {
    config: ClientConfig,
    phase: Phase,
    stream: Stream,
    /// A publish or play asked for but not sent yet, with its stream name.
    pending: Option<(Goal, String)>,
    /// A `createStream` asked for on its own (so the stream id is known before a publish).
    want_stream: bool,
    /// The name of the stream being published or played (for `FCUnpublish`).
    name: String,
    /// Whether `releaseStream` and `FCPublish` went out for the coming publish.
    announced: bool,
    /// Transaction ids of the requests whose `_error` is a refusal.
    create_tid: f64,
    start_tid: f64,
    next_tid: f64,
    reader: ChunkReader,
    writer: ChunkWriter,
    inbuf: BytesMut,
    out: BytesMut,
    events: VecDeque<ClientEvent>,
    timers: ClientTimerTable,
    epoch: Instant,
    last_rx: Instant,
    bytes_in: u64,
    /// The server's Window Acknowledgement Size: we acknowledge every this many bytes.
    peer_ack_window: u32,
    acked_at: u64,
    /// The window we announced in answer to Set Peer Bandwidth.
    announced_window: Option<u32>,
    /// Whether `StreamEnded` was reported since the stream last (re)started.
    ended: bool,
}

/// Transaction id of `connect` (the first request, as every client numbers it).
const CONNECT_TID: f64 = 1.0;

impl ClientSession {
    /// A session for a TCP connection just opened at `now`; C0+C1 are already in
    /// [`Self::take_output`].
    pub fn new(config: ClientConfig, now: Instant) -> Self {
        Self::with_rng(config, now, HandshakeRng::thread())
    }

    /// [`Self::new`] with the handshake's random bytes drawn from `rng`, so tests replay a
    /// session byte for byte.
    pub fn with_rng(config: ClientConfig, now: Instant, rng: HandshakeRng) -> Self {
        let mut timers = ClientTimerTable::default();
        if let Some(at) = now.checked_add(config.timeouts.setup) {
            timers.set(ClientTimer::Setup, at);
        }
        let mut handshake = ClientHandshake::with_rng(rng);
        let mut out = BytesMut::new();
        handshake.start(&mut out);
        Self {
            reader: ChunkReader::new(config.reader_limits),
            config,
            phase: Phase::Handshake(handshake),
            stream: Stream::None,
            pending: None,
            want_stream: false,
            name: String::new(),
            announced: false,
            create_tid: 0.0,
            start_tid: 0.0,
            next_tid: CONNECT_TID + 1.0,
            writer: ChunkWriter::default(),
            inbuf: BytesMut::new(),
            out,
            events: VecDeque::new(),
            timers,
            epoch: now,
            last_rx: now,
            bytes_in: 0,
            peer_ack_window: 0,
            acked_at: 0,
            announced_window: None,
            ended: false,
        }
    }

    /// Where the session stands.
    pub fn state(&self) -> ClientState {
        match (&self.phase, self.stream) {
            (Phase::Handshake(_), _) => ClientState::Handshake,
            (Phase::Connecting, _) => ClientState::Connecting,
            (Phase::Refused, _) => ClientState::Refused,
            (Phase::Connected, Stream::Active(id, Goal::Publish)) => ClientState::Publishing(id),
            (Phase::Connected, Stream::Active(id, Goal::Play)) => ClientState::Playing(id),
            (Phase::Connected, Stream::Creating | Stream::Starting(..)) => ClientState::Starting,
            (Phase::Connected, _) if self.pending.is_some() => ClientState::Starting,
            (Phase::Connected, Stream::None | Stream::Ready(_)) => ClientState::Connected,
        }
    }

    /// The message stream id from `createStream`, once answered.
    pub fn stream_id(&self) -> Option<u32> {
        match self.stream {
            Stream::Ready(id) | Stream::Starting(id, _) | Stream::Active(id, _) => Some(id),
            Stream::None | Stream::Creating => None,
        }
    }

    /// The deadline table, for observability.
    pub fn timers(&self) -> &ClientTimerTable {
        &self.timers
    }

    /// When the server last sent a byte.
    pub fn last_rx(&self) -> Instant {
        self.last_rx
    }

    /// Bytes received from the server so far.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in
    }

    /// Our outbound chunk size in force.
    pub fn out_chunk_size(&self) -> u32 {
        self.writer.chunk_size()
    }

    /// The server's chunk size in force (128 until it announces one).
    pub fn in_chunk_size(&self) -> u32 {
        self.reader.chunk_size()
    }

    /// Where the driver puts received bytes (read straight into it, so payloads are never
    /// copied); follow every read with [`Self::handle_input`].
    pub fn recv_buf(&mut self) -> &mut BytesMut {
        &mut self.inbuf
    }

    /// Processes the `received` bytes just appended to [`Self::recv_buf`] (and anything left
    /// over from before). On error the connection should be closed with a protocol-error
    /// reason.
    pub fn handle_input(&mut self, now: Instant, received: usize) -> Result<(), ProtocolError> {
        self.on_received(now, received as u64);
        let mut input = std::mem::take(&mut self.inbuf);
        let result = self.process(now, &mut input);
        // Fully consumed: drop the buffer rather than keep its capacity, so an idle connection
        // holds no receive memory.
        if !input.is_empty() {
            self.inbuf = input;
        }
        result
    }

    /// Processes `bytes` received into a buffer the driver owns (e.g. one read buffer shared
    /// by thousands of connections). In [`MediaMode::HeadersOnly`] they are scanned where they
    /// lie and only an incomplete chunk header or control message at their end is copied;
    /// otherwise they are copied into [`Self::recv_buf`] first.
    pub fn feed(&mut self, now: Instant, bytes: &[u8]) -> Result<(), ProtocolError> {
        let direct = self.config.media == MediaMode::HeadersOnly
            && self.inbuf.is_empty()
            && !matches!(self.phase, Phase::Handshake(_));
        if !direct {
            self.inbuf.extend_from_slice(bytes);
            return self.handle_input(now, bytes.len());
        }
        self.on_received(now, bytes.len() as u64);
        let used = self.skim(now, bytes)?;
        if let Some(rest) = bytes.get(used..).filter(|r| !r.is_empty()) {
            self.inbuf.extend_from_slice(rest);
        }
        Ok(())
    }

    fn on_received(&mut self, now: Instant, n: u64) {
        if n == 0 {
            return;
        }
        self.last_rx = now;
        self.bytes_in += n;
        if self.peer_ack_window > 0
            && self.bytes_in - self.acked_at >= u64::from(self.peer_ack_window)
        {
            self.acked_at = self.bytes_in;
            // The sequence number is the byte count modulo 2^32 (RTMP 1.0 §5.4.3).
            let seq = (self.bytes_in & 0xFFFF_FFFF) as u32;
            self.send_message(CSID_CONTROL, 0, &Message::Acknowledgement(seq));
        }
    }

    fn process(&mut self, now: Instant, input: &mut BytesMut) -> Result<(), ProtocolError> {
        if let Phase::Handshake(hs) = &mut self.phase {
            match hs.process(input, &mut self.out)? {
                HandshakeProgress::InProgress => return Ok(()),
                HandshakeProgress::Done => self.on_handshake_done(),
            }
        }
        match self.config.media {
            MediaMode::Full => {
                while let Some(raw) = self.reader.read(input)? {
                    self.on_message(now, raw)?;
                }
            }
            MediaMode::HeadersOnly => {
                let used = self.skim(now, input)?;
                input.advance(used);
            }
        }
        Ok(())
    }

    /// Runs `data` through the skimming reader; returns the bytes consumed.
    fn skim(&mut self, now: Instant, data: &[u8]) -> Result<usize, ProtocolError> {
        let is_av = |t| t == type_id::AUDIO || t == type_id::VIDEO;
        let mut used = 0;
        loop {
            let rest = data.get(used..).unwrap_or_default();
            let (n, found) = self.reader.skim(rest, is_av)?;
            used += n;
            match found {
                Some(Skimmed::Message(raw)) => self.on_message(now, raw)?,
                Some(Skimmed::Skipped { header, len }) => {
                    let kind = if header.type_id == type_id::AUDIO {
                        MediaKind::Audio
                    } else {
                        MediaKind::Video
                    };
                    let media = MediaHeader {
                        kind,
                        timestamp: header.timestamp,
                        len,
                    };
                    self.on_media_header(now, media);
                }
                None => return Ok(used),
            }
        }
    }

    /// C2 is out: announce our chunk size, then `connect`.
    fn on_handshake_done(&mut self) {
        self.phase = Phase::Connecting;
        let size = self.config.chunk_size.clamp(1, MAX_CHUNK_SIZE);
        if size != self.writer.chunk_size() {
            self.send_message(CSID_CONTROL, 0, &Message::SetChunkSize(size));
            self.writer.set_chunk_size(size);
        }
        self.send_connect();
    }

    fn on_message(&mut self, now: Instant, raw: RawMessage) -> Result<(), ProtocolError> {
        let message = match Message::parse(&raw) {
            Ok(m) => m,
            // Data messages carry whatever a publisher put there (AMF3 cue points, …); one we
            // cannot read is not worth the connection.
            Err(_) if matches!(raw.header.type_id, type_id::DATA_AMF0 | type_id::DATA_AMF3) => {
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        match message {
            Message::SetChunkSize(size) => self.reader.set_chunk_size(size)?,
            Message::Abort(csid) => self.reader.abort(csid),
            Message::WindowAckSize(size) => self.peer_ack_window = size,
            Message::SetPeerBandwidth { size, .. } => {
                // RTMP 1.0 §5.4.5: answer with our window when it differs from the last one.
                if self.announced_window != Some(size) {
                    self.announced_window = Some(size);
                    self.send_message(CSID_CONTROL, 0, &Message::WindowAckSize(size));
                }
            }
            Message::UserControl(uc) => self.user_control(uc),
            Message::Audio(payload) => self.on_media(now, MediaKind::Audio, &raw, payload),
            Message::Video(payload) => self.on_media(now, MediaKind::Video, &raw, payload),
            Message::Data(values) => self.on_data(now, &raw, values),
            Message::Command(cmd) => self.command(now, cmd)?,
            Message::Aggregate(body) => self.on_aggregate(now, &raw, &body),
            Message::Acknowledgement(_) | Message::Other { .. } => {}
        }
        Ok(())
    }

    fn user_control(&mut self, uc: UserControl) {
        match uc {
            UserControl::PingRequest(ts) => {
                let pong = Message::UserControl(UserControl::PingResponse(ts));
                self.send_message(CSID_CONTROL, 0, &pong);
            }
            UserControl::PingResponse(ts) => self.events.push_back(ClientEvent::PingResponse(ts)),
            UserControl::StreamBegin(id) if self.stream_id() == Some(id) => self.ended = false,
            UserControl::StreamEof(id) if self.stream_id() == Some(id) => {
                self.stream_ended(StreamEnd::Eof);
            }
            _ => {}
        }
    }

    fn stream_ended(&mut self, how: StreamEnd) {
        if !self.ended && matches!(self.stream, Stream::Starting(..) | Stream::Active(..)) {
            self.ended = true;
            self.events.push_back(ClientEvent::StreamEnded(how));
        }
    }

    /// The earliest deadline, for the driver's single timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next().map(|(_, at)| at)
    }

    /// Runs every deadline due at `now`; returns the close reason when one ends the
    /// connection.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<CloseReason> {
        let timer = self.timers.pop_expired(now)?;
        Some(match timer {
            ClientTimer::Setup => CloseReason::HandshakeTimeout,
            ClientTimer::MediaIdle => CloseReason::MediaIdle,
            ClientTimer::WriteStall => CloseReason::WriteStall,
        })
    }

    /// Tells the session whether output is waiting for the socket. `progressed` says whether
    /// any byte was written since the last call: the stall deadline restarts on progress and
    /// is cleared once nothing is queued.
    pub fn on_write_state(&mut self, now: Instant, pending: bool, progressed: bool) {
        if !pending {
            self.timers.stop(ClientTimer::WriteStall);
        } else if (progressed || self.timers.get(ClientTimer::WriteStall).is_none())
            && let Some(at) = now.checked_add(self.config.timeouts.write_stall)
        {
            self.timers.set(ClientTimer::WriteStall, at);
        }
    }

    /// Sends a Ping Request; returns its timestamp, which the server's
    /// [`ClientEvent::PingResponse`] echoes.
    pub fn send_ping(&mut self, now: Instant) -> Result<u32, ClientError> {
        self.ready_to_send()?;
        // Milliseconds since the session began; wraps after 49 days, as RTMP timestamps do.
        let ts = (now.saturating_duration_since(self.epoch).as_millis() & 0xFFFF_FFFF) as u32;
        let ping = Message::UserControl(UserControl::PingRequest(ts));
        self.send_message(CSID_CONTROL, 0, &ping);
        Ok(ts)
    }

    /// Announces Set Chunk Size `size` and chunks everything sent from now on with it.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ClientError> {
        if size == 0 || size > MAX_CHUNK_SIZE {
            return Err(ClientError::InvalidChunkSize(size));
        }
        if matches!(self.phase, Phase::Handshake(_)) {
            // Announced with the first chunks, right after C2.
            self.config.chunk_size = size;
            return Ok(());
        }
        self.send_message(CSID_CONTROL, 0, &Message::SetChunkSize(size));
        self.writer.set_chunk_size(size);
        Ok(())
    }

    /// Sends one message exactly as given, bypassing the session's state (for tests and tools
    /// that must send what a well-behaved client would not); the chunk stream stays valid.
    pub fn send_raw(&mut self, header: &MessageHeader, payload: &[u8]) -> Result<(), ClientError> {
        self.ready_to_send()?;
        self.writer.write(header, payload, &mut self.out);
        Ok(())
    }

    /// Messages may go out once C2 has.
    fn ready_to_send(&self) -> Result<(), ClientError> {
        match self.phase {
            Phase::Handshake(_) => Err(ClientError::Handshaking),
            _ => Ok(()),
        }
    }

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Bytes to send, if any.
    pub fn take_output(&mut self) -> Option<Bytes> {
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
}
