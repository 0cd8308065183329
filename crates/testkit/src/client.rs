//! A tiny blocking RTMP client built on `rtmp-proto`: handshake, `connect`, `createStream`,
//! `publish`/`play`, and nothing else. Enough to hold a connection in a chosen state (connected
//! but idle, a publish request in flight) or to race many newcomers cheaply, where ffmpeg would
//! be too heavy or too opaque.

use crate::NetNs;
use bytes::BytesMut;
use rtmp_proto::amf0::Value;
use rtmp_proto::chunk::{ChunkReader, ChunkWriter, MessageHeader, ReaderLimits};
use rtmp_proto::handshake::{ClientHandshake, HandshakeProgress};
use rtmp_proto::message::{Command, Message, UserControl};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Chunk stream for commands on stream 0 (as ffmpeg uses).
const C_COMMAND: u32 = 3;
/// Chunk stream for commands on the media stream.
const C_STREAM: u32 = 4;
/// Chunk stream for protocol control.
const C_CONTROL: u32 = 2;

/// A connected RTMP client (handshake and `connect` done).
#[derive(Debug)]
pub struct RtmpClient {
    stream: TcpStream,
    writer: ChunkWriter,
    reader: ChunkReader,
    inbuf: BytesMut,
    next_tid: f64,
    stream_id: Option<u32>,
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("no {what} in time"))
}

impl RtmpClient {
    /// Opens the TCP connection from inside `ns` (the socket stays in that namespace), then
    /// runs the handshake and `connect` to `app` from the calling thread.
    pub fn connect_in(
        ns: &NetNs,
        addr: SocketAddr,
        app: &str,
        timeout: Duration,
    ) -> io::Result<Self> {
        let stream = Self::tcp_in(ns, addr, timeout)?;
        Self::connect(stream, app, timeout)
    }

    /// Just the TCP connection, opened inside `ns`.
    pub fn tcp_in(ns: &NetNs, addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        ns.in_ns(move || TcpStream::connect_timeout(&addr, timeout))
    }

    /// Handshake and `connect` over an already open TCP connection.
    pub fn connect(stream: TcpStream, app: &str, timeout: Duration) -> io::Result<Self> {
        stream.set_nodelay(true)?;
        let mut c = Self {
            stream,
            writer: ChunkWriter::default(),
            reader: ChunkReader::new(ReaderLimits::default()),
            inbuf: BytesMut::new(),
            next_tid: 1.0,
            stream_id: None,
        };
        c.handshake(timeout)?;
        let peer = c.stream.peer_addr()?;
        let obj = Value::object([
            ("app", Value::string(app)),
            ("type", Value::string("nonprivate")),
            ("flashVer", Value::string("FMLE/3.0 (compatible; testkit)")),
            ("tcUrl", Value::string(format!("rtmp://{peer}/{app}"))),
        ]);
        let tid = c.call(0, "connect", obj, vec![])?;
        c.await_result(tid, timeout)?;
        Ok(c)
    }

    fn handshake(&mut self, timeout: Duration) -> io::Result<()> {
        let end = Instant::now() + timeout;
        let mut hs = ClientHandshake::default();
        let mut out = BytesMut::new();
        hs.start(&mut out);
        self.stream.write_all(&out)?;
        loop {
            out.clear();
            let progress = hs
                .process(&mut self.inbuf, &mut out)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            self.stream.write_all(&out)?;
            if progress == HandshakeProgress::Done {
                return Ok(());
            }
            self.fill(end, "handshake")?;
        }
    }

    /// Reads more bytes into the input buffer, failing at `end`.
    fn fill(&mut self, end: Instant, what: &str) -> io::Result<()> {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out(what));
        }
        self.stream.set_read_timeout(Some(left))?;
        let mut buf = [0u8; 16 * 1024];
        let got = loop {
            match self.stream.read(&mut buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other,
            }
        };
        match got {
            Ok(0) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("server closed before the {what}"),
            )),
            Ok(n) => {
                self.inbuf.extend_from_slice(&buf[..n]);
                Ok(())
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err(timed_out(what))
            }
            Err(e) => Err(e),
        }
    }

    /// The next message from the server (answering pings and following chunk size changes).
    pub fn recv(&mut self, timeout: Duration) -> io::Result<Message> {
        let end = Instant::now() + timeout;
        loop {
            let raw = self
                .reader
                .read(&mut self.inbuf)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            if let Some(raw) = raw {
                let msg = Message::parse(&raw)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                match &msg {
                    Message::SetChunkSize(size) => self
                        .reader
                        .set_chunk_size(*size)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?,
                    Message::UserControl(UserControl::PingRequest(ts)) => {
                        self.send(
                            C_CONTROL,
                            0,
                            &Message::UserControl(UserControl::PingResponse(*ts)),
                        )?;
                    }
                    _ => {}
                }
                return Ok(msg);
            }
            self.fill(end, "message")?;
        }
    }

    fn send(&mut self, csid: u32, stream_id: u32, msg: &Message) -> io::Result<()> {
        let (type_id, payload) = msg.encode();
        let header = MessageHeader {
            csid,
            timestamp: 0,
            type_id,
            stream_id,
        };
        let mut out = BytesMut::new();
        self.writer.write(&header, &payload, &mut out);
        self.stream.write_all(&out)
    }

    fn call(
        &mut self,
        stream_id: u32,
        name: &str,
        object: Value,
        args: Vec<Value>,
    ) -> io::Result<f64> {
        let tid = self.next_tid;
        self.next_tid += 1.0;
        let csid = if stream_id == 0 { C_COMMAND } else { C_STREAM };
        self.send(
            csid,
            stream_id,
            &Message::Command(Command::new(name, tid, object, args)),
        )?;
        Ok(tid)
    }

    fn await_result(&mut self, tid: f64, timeout: Duration) -> io::Result<Command> {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if let Message::Command(c) = self.recv(left)?
                && c.transaction_id == tid
                && (c.name == "_result" || c.name == "_error")
            {
                if c.name == "_error" {
                    return Err(io::Error::other(format!("{c:?}")));
                }
                return Ok(c);
            }
        }
    }

    /// Waits for the next `onStatus` and returns its `code`.
    pub fn await_status(&mut self, timeout: Duration) -> io::Result<String> {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if let Message::Command(c) = self.recv(left)?
                && c.name == "onStatus"
            {
                let code = c
                    .args
                    .first()
                    .and_then(|a| a.get("code"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                return Ok(code);
            }
        }
    }

    /// `createStream` (once); returns the message stream id.
    pub fn create_stream(&mut self, timeout: Duration) -> io::Result<u32> {
        if let Some(id) = self.stream_id {
            return Ok(id);
        }
        let tid = self.call(0, "createStream", Value::Null, vec![])?;
        let reply = self.await_result(tid, timeout)?;
        let id = reply
            .args
            .first()
            .and_then(Value::as_f64)
            .ok_or_else(|| io::Error::other("createStream without a stream id"))?;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let id = id as u32;
        self.stream_id = Some(id);
        Ok(id)
    }

    /// Sends `publish name live` without waiting for the answer (see [`Self::await_status`]).
    pub fn send_publish(&mut self, name: &str) -> io::Result<()> {
        let id = self.create_stream(Duration::from_secs(5))?;
        self.call(
            id,
            "publish",
            Value::Null,
            vec![Value::string(name), Value::string("live")],
        )?;
        Ok(())
    }

    /// `publish`, then the `onStatus` code (`NetStream.Publish.Start` or an error code such as
    /// `NetStream.Publish.BadName`).
    pub fn publish(&mut self, name: &str, timeout: Duration) -> io::Result<String> {
        self.send_publish(name)?;
        self.await_status(timeout)
    }

    /// Sends `play name` without waiting for the answer (see [`Self::await_status`]).
    pub fn send_play(&mut self, name: &str) -> io::Result<()> {
        let id = self.create_stream(Duration::from_secs(5))?;
        self.call(
            id,
            "play",
            Value::Null,
            vec![Value::string(name), Value::Number(-1000.0)],
        )?;
        Ok(())
    }

    /// `play`, then the first `onStatus` code (`NetStream.Play.Reset` or an error code such as
    /// `NetStream.Play.Failed`).
    pub fn play(&mut self, name: &str, timeout: Duration) -> io::Result<String> {
        self.send_play(name)?;
        self.await_status(timeout)
    }

    /// Announces Set Chunk Size `size` and chunks everything sent from now on with it (any
    /// value, even ones a server must refuse, such as 0).
    pub fn set_chunk_size(&mut self, size: u32) -> io::Result<()> {
        self.send(C_CONTROL, 0, &Message::SetChunkSize(size))?;
        self.writer.set_chunk_size(size);
        Ok(())
    }

    /// Sends one message of type `type_id` with `payload` on chunk stream `csid`.
    pub fn send_raw(
        &mut self,
        csid: u32,
        type_id: u8,
        stream_id: u32,
        payload: &[u8],
    ) -> io::Result<()> {
        let header = MessageHeader {
            csid,
            timestamp: 0,
            type_id,
            stream_id,
        };
        let mut out = BytesMut::new();
        self.writer.write(&header, payload, &mut out);
        self.stream.write_all(&out)
    }

    /// Sends a Ping Request and waits for the server's Ping Response: proof that the server
    /// has parsed everything sent before it.
    pub fn ping(&mut self, timeout: Duration) -> io::Result<Duration> {
        let start = Instant::now();
        let ts = 0x5EED;
        self.send(
            C_CONTROL,
            0,
            &Message::UserControl(UserControl::PingRequest(ts)),
        )?;
        let end = start + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if let Message::UserControl(UserControl::PingResponse(t)) = self.recv(left)?
                && t == ts
            {
                return Ok(start.elapsed());
            }
        }
    }

    /// The socket, e.g. to read its local address.
    pub fn socket(&self) -> &TcpStream {
        &self.stream
    }
}
