//! One RTMP client connection of the load generator: handshake with `ClientHandshake`, then
//! `connect` / `createStream` / `play` or `publish` built with `rtmp-proto`'s `Command`, then a
//! read loop that answers pings and acknowledges as the server asks, so that a correct server
//! never has a reason to close it.
//!
//! Reads go into one buffer per thread shared by every connection (the runtime is
//! single-threaded and no read is held across an await), so ten thousand connections cost
//! their sockets and a few hundred bytes of state each, not ten thousand read buffers.

use crate::stats::PlayerStats;
use crate::wire::{Scanner, Sink, WireError};
use anyhow::{Context as _, bail};
use bytes::{Bytes, BytesMut};
use rtmp_proto::amf0::Value;
use rtmp_proto::chunk::{ChunkWriter, MessageHeader};
use rtmp_proto::handshake::{ClientHandshake, HandshakeProgress};
use rtmp_proto::message::{Command, Message, UserControl, type_id};
use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Size of the per-thread read buffer: many segments per read at high fan-out.
const READ_BUF: usize = 256 * 1024;
const CSID_CONTROL: u32 = 2;
const CSID_COMMAND: u32 = 3;
const CSID_STREAM: u32 = 8;

thread_local! {
    static READ_SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_BUF]);
}

/// Where the server lives and what to ask it for.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    pub(crate) app: String,
    pub(crate) tc_url: String,
}

/// What a connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Handshake and `connect`, then stay silent except for protocol duties.
    Idle,
    Play,
    Publish,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    CreatingStream,
    Starting,
    Ready,
}

/// The protocol side of a connection: what the scanner's messages mean for us.
struct Proto {
    role: Role,
    name: String,
    phase: Phase,
    stream_id: u32,
    /// Bytes received since the handshake began (for Acknowledgements).
    received: u64,
    window: u64,
    acked: u64,
    /// Replies to send (ping responses, acks, next commands).
    out: BytesMut,
    writer: ChunkWriter,
    failure: Option<String>,
    /// Media accounting, for players.
    stats: Option<Rc<RefCell<PlayerStats>>>,
    now: Instant,
}

impl Proto {
    fn send(&mut self, csid: u32, stream_id: u32, msg: &Message) {
        let (type_id, payload) = msg.encode();
        let header = MessageHeader {
            csid,
            timestamp: 0,
            type_id,
            stream_id,
        };
        self.writer.write(&header, &payload, &mut self.out);
    }

    fn command(&mut self, stream_id: u32, name: &str, tid: f64, object: Value, args: Vec<Value>) {
        let csid = if stream_id == 0 {
            CSID_COMMAND
        } else {
            CSID_STREAM
        };
        self.send(
            csid,
            stream_id,
            &Message::Command(Command::new(name, tid, object, args)),
        );
    }

    fn on_command(&mut self, cmd: &Command) {
        match (self.phase, cmd.name.as_str()) {
            (_, "_error") => self.failure = Some(format!("{} refused: {:?}", self.name, cmd.args)),
            (Phase::Connecting, "_result") if cmd.transaction_id == 1.0 => {
                if self.role == Role::Idle {
                    self.phase = Phase::Ready;
                } else {
                    self.phase = Phase::CreatingStream;
                    self.command(0, "createStream", 2.0, Value::Null, Vec::new());
                }
            }
            (Phase::CreatingStream, "_result") if cmd.transaction_id == 2.0 => {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let id = cmd.args.first().and_then(Value::as_f64).unwrap_or(1.0) as u32;
                self.stream_id = id;
                self.phase = Phase::Starting;
                let name = Value::string(self.name.as_str());
                if self.role == Role::Play {
                    self.command(id, "play", 0.0, Value::Null, vec![name]);
                    // Buffer length 1 s (as players send), then consider ourselves playing.
                    self.send(
                        CSID_CONTROL,
                        0,
                        &Message::UserControl(UserControl::SetBufferLength {
                            stream_id: id,
                            millis: 1000,
                        }),
                    );
                } else {
                    self.command(
                        id,
                        "publish",
                        0.0,
                        Value::Null,
                        vec![name, Value::string("live")],
                    );
                }
            }
            (Phase::Starting, "onStatus") => {
                let code = cmd
                    .args
                    .first()
                    .and_then(|a| a.get("code"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                match code {
                    "NetStream.Play.Start" | "NetStream.Publish.Start" => self.phase = Phase::Ready,
                    c if c.contains("Failed")
                        || c.contains("BadName")
                        || c.contains("Rejected") =>
                    {
                        self.failure = Some(format!("{}: {c}", self.name));
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

impl Sink for Proto {
    fn media(&mut self, type_id: u8, timestamp: u32, len: u32) {
        if let Some(stats) = &self.stats {
            stats
                .borrow_mut()
                .on_media(type_id, timestamp, len, self.now);
        }
    }

    fn other(&mut self, type_id: u8, _stream_id: u32, body: &[u8]) {
        match type_id {
            type_id::WINDOW_ACK_SIZE if body.len() >= 4 => {
                self.window = u64::from(u32::from_be_bytes([body[0], body[1], body[2], body[3]]));
            }
            type_id::USER_CONTROL if body.len() >= 6 && body[..2] == [0, 6] => {
                let ts = u32::from_be_bytes([body[2], body[3], body[4], body[5]]);
                self.send(
                    CSID_CONTROL,
                    0,
                    &Message::UserControl(UserControl::PingResponse(ts)),
                );
            }
            type_id::COMMAND_AMF0 | type_id::COMMAND_AMF3 => {
                let body = Bytes::copy_from_slice(body);
                if let Ok(Message::Command(cmd)) = Message::parse_payload(type_id, &body) {
                    self.on_command(&cmd);
                }
            }
            _ => {}
        }
    }
}

/// A live client connection.
pub(crate) struct Conn {
    stream: TcpStream,
    scanner: Scanner,
    proto: Proto,
}

impl Conn {
    /// Connects, handshakes and asks for `role` on stream `name`; returns once the server has
    /// accepted (`_result` of connect for idle, `onStatus` *.Start for play and publish).
    pub(crate) async fn open(
        target: &Target,
        role: Role,
        name: &str,
        stats: Option<Rc<RefCell<PlayerStats>>>,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        tokio::time::timeout(timeout, Self::open_inner(target, role, name, stats))
            .await
            .with_context(|| format!("{role:?} {name}: not started within {timeout:?}"))?
    }

    async fn open_inner(
        target: &Target,
        role: Role,
        name: &str,
        stats: Option<Rc<RefCell<PlayerStats>>>,
    ) -> anyhow::Result<Self> {
        let mut stream = TcpStream::connect(target.addr).await?;
        stream.set_nodelay(true)?;
        let mut hs = ClientHandshake::default();
        let (mut input, mut out) = (BytesMut::with_capacity(4096), BytesMut::new());
        hs.start(&mut out);
        stream.write_all(&out).await?;
        let mut received = 0u64;
        loop {
            out.clear();
            let progress = hs.process(&mut input, &mut out)?;
            stream.write_all(&out).await?;
            if progress == HandshakeProgress::Done {
                break;
            }
            let n = stream.read_buf(&mut input).await?;
            if n == 0 {
                bail!("server closed during the handshake");
            }
            received += n as u64;
        }
        let mut conn = Self {
            stream,
            scanner: Scanner::default(),
            proto: Proto {
                role,
                name: name.to_owned(),
                phase: Phase::Connecting,
                stream_id: 0,
                received: received - input.len() as u64,
                window: u64::MAX,
                acked: 0,
                out: BytesMut::with_capacity(256),
                writer: ChunkWriter::default(),
                failure: None,
                stats,
                now: Instant::now(),
            },
        };
        let object = Value::object([
            ("app", Value::string(target.app.as_str())),
            ("type", Value::string("nonprivate")),
            (
                "flashVer",
                Value::string("FMLE/3.0 (compatible; lifeline-bench)"),
            ),
            ("tcUrl", Value::string(target.tc_url.as_str())),
        ]);
        conn.proto.command(0, "connect", 1.0, object, Vec::new());
        if !input.is_empty() {
            conn.consume(&input)?;
        }
        conn.flush().await?;
        while conn.proto.phase != Phase::Ready {
            conn.stream.readable().await?;
            conn.read_ready()?;
            conn.flush().await?;
        }
        Ok(conn)
    }

    /// Feeds received bytes to the scanner and queues acks that are due.
    fn consume(&mut self, data: &[u8]) -> anyhow::Result<()> {
        self.proto.received += data.len() as u64;
        self.proto.now = Instant::now();
        self.scanner
            .feed(data, &mut self.proto)
            .map_err(|e: WireError| anyhow::anyhow!("{}: {e}", self.proto.name))?;
        if let Some(f) = self.proto.failure.take() {
            bail!(f);
        }
        if self.proto.received - self.proto.acked >= self.proto.window {
            self.proto.acked = self.proto.received;
            // The field is 32 bits and wraps, as every implementation expects.
            #[allow(clippy::cast_possible_truncation)]
            let seq = self.proto.received as u32;
            self.proto
                .send(CSID_CONTROL, 0, &Message::Acknowledgement(seq));
        }
        Ok(())
    }

    /// Reads whatever the socket has, without waiting. Errors when the server closed.
    fn read_ready(&mut self) -> anyhow::Result<()> {
        READ_SCRATCH.with_borrow_mut(|buf| {
            loop {
                match self.stream.try_read(buf) {
                    Ok(0) => bail!("{}: server closed the connection", self.proto.name),
                    Ok(n) => {
                        self.consume(&buf[..n])?;
                        if n < buf.len() {
                            return Ok(());
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) => return Err(e.into()),
                }
            }
        })
    }

    async fn flush(&mut self) -> io::Result<()> {
        if !self.proto.out.is_empty() {
            self.stream.write_all(&self.proto.out).await?;
            self.proto.out.clear();
        }
        Ok(())
    }

    /// Serves protocol duties (pings, acks) and counts media until the server closes or an
    /// error occurs; used by players and idle connections.
    pub(crate) async fn run(mut self) -> anyhow::Result<()> {
        loop {
            self.stream.readable().await?;
            self.read_ready()?;
            self.flush().await?;
        }
    }

    /// The message stream id `createStream` gave us.
    pub(crate) fn stream_id(&self) -> u32 {
        self.proto.stream_id
    }

    /// Sends one pre-chunked message (a publisher's media), serving incoming bytes first.
    pub(crate) async fn send_chunks(&mut self, chunks: &[u8]) -> anyhow::Result<()> {
        self.read_ready()?;
        self.flush().await?;
        self.stream.write_all(chunks).await?;
        Ok(())
    }

    /// Resolves when the server sent something; cancel-safe, for a publisher's `select!`.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        self.stream.readable().await
    }

    /// Serves what arrived after [`Self::readable`] (pings, commands).
    pub(crate) async fn serve_ready(&mut self) -> anyhow::Result<()> {
        self.read_ready()?;
        self.flush().await?;
        Ok(())
    }
}
