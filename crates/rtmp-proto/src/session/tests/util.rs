//! A scripted RTMP client wired straight to a [`ServerSession`]: no sockets, no runtime, and a
//! clock the test moves by hand, so every run takes the same path.

use super::super::{Event, ProtocolError, ServerSession, SessionConfig};
use crate::amf0::Value;
use crate::chunk::{ChunkReader, ChunkWriter, MessageHeader, ReaderLimits};
use crate::handshake::{ClientHandshake, HandshakeProgress};
use crate::message::{Command, Message, UserControl};
use bytes::{Bytes, BytesMut};
use std::time::{Duration, Instant};

/// Chunk streams the scripted client uses, like ffmpeg does.
pub(super) const C_CONTROL: u32 = 2;
pub(super) const C_COMMAND: u32 = 3;
pub(super) const C_STREAM: u32 = 4;
pub(super) const C_VIDEO: u32 = 6;

/// One message the server sent, as the client decoded it.
#[derive(Debug, Clone)]
pub(super) struct Reply {
    pub(super) header: MessageHeader,
    pub(super) message: Message,
}

impl Reply {
    /// The command inside, if this is one.
    pub(super) fn command(&self) -> Option<&Command> {
        match &self.message {
            Message::Command(c) => Some(c),
            _ => None,
        }
    }

    /// `args[0].code` of an `onStatus`, `_result` or `_error`.
    pub(super) fn status_code(&self) -> Option<&str> {
        self.command()?.args.first()?.get("code")?.as_str()
    }
}

/// Server plus scripted client plus the test's clock.
pub(super) struct Harness {
    pub(super) t0: Instant,
    pub(super) now: Instant,
    pub(super) server: ServerSession,
    handshake: ClientHandshake,
    handshake_done: bool,
    /// Server bytes not yet consumed by the client (handshake or chunks).
    from_server: BytesMut,
    /// Client bytes not yet delivered to the server.
    pub(super) to_server: BytesMut,
    writer: ChunkWriter,
    reader: ChunkReader,
    /// Every byte the client ever sent, for writing corpus files.
    pub(super) transcript: Vec<u8>,
}

impl Harness {
    pub(super) fn new(config: SessionConfig) -> Self {
        let t0 = Instant::now();
        Self {
            t0,
            now: t0,
            server: ServerSession::new(config, t0),
            handshake: ClientHandshake::default(),
            handshake_done: false,
            from_server: BytesMut::new(),
            to_server: BytesMut::new(),
            writer: ChunkWriter::default(),
            reader: ChunkReader::new(ReaderLimits::default()),
            transcript: Vec::new(),
        }
    }

    /// Pings and stall checks off, so only the timer under test can fire.
    pub(super) fn quiet_config() -> SessionConfig {
        let mut config = SessionConfig::default();
        config.timeouts.ping_interval = None;
        config
    }

    pub(super) fn at(&self, secs: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(secs)
    }

    pub(super) fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    /// Jumps the clock to the session's next deadline and runs it, as a driver would.
    pub(super) fn jump(&mut self) -> Option<crate::session::CloseReason> {
        let at = self.server.poll_timeout().expect("a deadline is armed");
        assert!(at >= self.now, "deadline in the past");
        self.now = at;
        self.server.handle_timeout(self.now)
    }

    /// Delivers everything the client queued, `step` bytes per read (through
    /// `recv_buf` + `handle_input`, as the driver does), then lets the client read the answer.
    pub(super) fn flush_step(&mut self, step: usize) -> Result<(), ProtocolError> {
        while !self.to_server.is_empty() {
            let n = step.min(self.to_server.len());
            let part = self.to_server.split_to(n);
            self.transcript.extend_from_slice(&part);
            self.server.recv_buf().extend_from_slice(&part);
            self.server.handle_input(self.now, n)?;
            self.pump_client();
        }
        Ok(())
    }

    pub(super) fn flush(&mut self) -> Result<(), ProtocolError> {
        self.flush_step(usize::MAX)
    }

    /// Moves server output to the client; the client answers the handshake itself.
    fn pump_client(&mut self) {
        while let Some(out) = self.server.take_output() {
            self.from_server.extend_from_slice(&out);
        }
        if !self.handshake_done {
            let progress = self
                .handshake
                .process(&mut self.from_server, &mut self.to_server)
                .expect("server handshake is valid");
            self.handshake_done = progress == HandshakeProgress::Done;
        }
    }

    /// Runs the handshake, moving `step` bytes at a time each way.
    pub(super) fn handshake(&mut self, step: usize) {
        self.handshake.start(&mut self.to_server);
        for _ in 0..100_000 {
            self.flush_step(step).expect("handshake accepted");
            if self.handshake_done && self.to_server.is_empty() {
                assert!(self.server.take_output().is_none());
                return;
            }
            self.pump_client();
        }
        panic!("handshake did not finish");
    }

    /// Queues one message on the client's chunk stream.
    pub(super) fn queue(&mut self, csid: u32, stream_id: u32, timestamp: u32, msg: &Message) {
        let (type_id, payload) = msg.encode();
        let header = MessageHeader {
            csid,
            timestamp,
            type_id,
            stream_id,
        };
        self.writer.write(&header, &payload, &mut self.to_server);
        if let Message::SetChunkSize(size) = msg {
            self.writer.set_chunk_size(*size);
        }
    }

    /// Sends one message and delivers it.
    pub(super) fn send(
        &mut self,
        csid: u32,
        stream_id: u32,
        msg: &Message,
    ) -> Result<(), ProtocolError> {
        self.queue(csid, stream_id, 0, msg);
        self.flush()
    }

    /// Sends a command with the given transaction id, `Null` command object.
    pub(super) fn call(
        &mut self,
        stream_id: u32,
        name: &str,
        tid: f64,
        args: Vec<Value>,
    ) -> Result<(), ProtocolError> {
        let csid = if stream_id == 0 { C_COMMAND } else { C_STREAM };
        self.send(
            csid,
            stream_id,
            &Message::Command(Command::new(name, tid, Value::Null, args)),
        )
    }

    /// `connect` as ffmpeg sends it when publishing.
    pub(super) fn connect(&mut self, app: &str) -> Result<(), ProtocolError> {
        let obj = Value::object([
            ("app", Value::string(app)),
            ("type", Value::string("nonprivate")),
            (
                "flashVer",
                Value::string("FMLE/3.0 (compatible; Lavf61.7.100)"),
            ),
            (
                "tcUrl",
                Value::string(format!("rtmp://127.0.0.1:1935/{app}")),
            ),
        ]);
        self.send(
            C_COMMAND,
            0,
            &Message::Command(Command::new("connect", 1.0, obj, vec![])),
        )
    }

    /// Everything the server sent since the last call, decoded by the client.
    pub(super) fn replies(&mut self) -> Vec<Reply> {
        self.pump_client();
        assert!(
            self.handshake_done,
            "replies() before the handshake finished"
        );
        let mut out = Vec::new();
        while let Some(raw) = self
            .reader
            .read(&mut self.from_server)
            .expect("server output is a valid chunk stream")
        {
            let message = Message::parse(&raw).expect("server output parses");
            if let Message::SetChunkSize(size) = message {
                self.reader.set_chunk_size(size).expect("valid chunk size");
            }
            out.push(Reply {
                header: raw.header,
                message,
            });
        }
        out
    }

    pub(super) fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.server.poll_event()).collect()
    }

    /// Handshake, connect, createStream: a connection ready to publish or play on stream 1.
    pub(super) fn ready(config: SessionConfig) -> Self {
        let mut h = Self::new(config);
        h.handshake(usize::MAX);
        h.connect("live").unwrap();
        h.call(0, "createStream", 2.0, vec![]).unwrap();
        h.replies();
        h.events();
        h
    }

    /// [`Self::ready`], then a publish the server accepts.
    pub(super) fn publishing(config: SessionConfig) -> Self {
        let mut h = Self::ready(config);
        h.call(
            1,
            "publish",
            3.0,
            vec![Value::string("cam"), Value::string("live")],
        )
        .unwrap();
        assert!(matches!(h.events()[..], [Event::PublishRequested { .. }]));
        h.server.accept_publish(h.now);
        h.replies();
        h
    }

    /// [`Self::ready`], then a play the server accepts (publisher live).
    pub(super) fn playing(config: SessionConfig) -> Self {
        let mut h = Self::ready(config);
        h.call(1, "play", 3.0, vec![Value::string("cam")]).unwrap();
        assert!(matches!(h.events()[..], [Event::PlayRequested { .. }]));
        h.server.accept_play("cam", true);
        h.replies();
        h
    }
}

/// A User Control event sent by the client.
pub(super) fn user_control(uc: UserControl) -> Message {
    Message::UserControl(uc)
}

/// Media bytes of `len` copies of `fill`.
pub(super) fn media(len: usize, fill: u8) -> Bytes {
    Bytes::from(vec![fill; len])
}
