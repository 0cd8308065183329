//! A tiny blocking RTMP client: `rtmp_proto::client::ClientSession` driven over a
//! `std::net::TcpStream`, one call at a time. Enough to hold a connection in a chosen state
//! (connected but idle, a publish request in flight) or to race many newcomers cheaply, where
//! ffmpeg would be too heavy or too opaque. The session answers pings and acknowledges on its
//! own whenever this client reads.

use crate::NetNs;
use rtmp_proto::chunk::MessageHeader;
use rtmp_proto::client::{ClientConfig, ClientError, ClientEvent, ClientSession, StreamEnd};
use rtmp_proto::message::type_id;
use rtmp_proto::session::CSID_CONTROL;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A connected RTMP client (handshake and `connect` done).
#[derive(Debug)]
pub struct RtmpClient {
    stream: TcpStream,
    session: ClientSession,
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("no {what} in time"))
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

fn refused(code: &str, description: &str) -> io::Error {
    io::Error::other(format!("refused: {code} ({description})"))
}

fn session_error(e: ClientError) -> io::Error {
    io::Error::other(e.to_string())
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
        let peer = stream.peer_addr()?;
        let mut config = ClientConfig::new(app, format!("rtmp://{peer}/{app}"));
        config.flash_ver = "FMLE/3.0 (compatible; testkit)".into();
        // The protocol default: tests that want another chunk size set it themselves.
        config.chunk_size = 128;
        // Tests hold connections in odd states on purpose; each call has its own timeout.
        config.timeouts.setup = Duration::from_secs(24 * 3600);
        config.timeouts.media_idle = None;
        let mut c = Self {
            stream,
            session: ClientSession::new(config, Instant::now()),
        };
        c.flush()?;
        c.wait_for(timeout, "connect", |e| match e {
            ClientEvent::Connected { .. } => Some(Ok(())),
            ClientEvent::Refused { code, description } => Some(Err(refused(&code, &description))),
            _ => None,
        })?;
        Ok(c)
    }

    /// Writes whatever the session has queued.
    fn flush(&mut self) -> io::Result<()> {
        while let Some(out) = self.session.take_output() {
            self.stream.write_all(&out)?;
        }
        Ok(())
    }

    /// Reads once (failing at `end`), feeds the session and sends what it answers.
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
                self.session
                    .feed(Instant::now(), &buf[..n])
                    .map_err(invalid)?;
                self.flush()
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

    /// Reads until `pick` takes an event (events it passes over are dropped).
    fn wait_for<T>(
        &mut self,
        timeout: Duration,
        what: &str,
        mut pick: impl FnMut(ClientEvent) -> Option<io::Result<T>>,
    ) -> io::Result<T> {
        let end = Instant::now() + timeout;
        loop {
            while let Some(event) = self.session.poll_event() {
                if let Some(result) = pick(event) {
                    return result;
                }
            }
            self.fill(end, what)?;
        }
    }

    /// The next event from the session (the server's answers, media, ping responses).
    pub fn next_event(&mut self, timeout: Duration) -> io::Result<ClientEvent> {
        self.wait_for(timeout, "event", |e| Some(Ok(e)))
    }

    /// Waits for the next `onStatus` and returns its `code` (`NetStream.Publish.Start`,
    /// `NetStream.Play.Reset`, an error code such as `NetStream.Publish.BadName`, …).
    pub fn await_status(&mut self, timeout: Duration) -> io::Result<String> {
        self.wait_for(timeout, "onStatus", |e| {
            let code = match e {
                ClientEvent::Status { code, .. } | ClientEvent::Refused { code, .. } => code,
                ClientEvent::Publishing => "NetStream.Publish.Start".into(),
                ClientEvent::Playing => "NetStream.Play.Start".into(),
                ClientEvent::StreamEnded(StreamEnd::Unpublished) => {
                    "NetStream.Play.UnpublishNotify".into()
                }
                ClientEvent::StreamEnded(StreamEnd::Stopped) => "NetStream.Play.Stop".into(),
                _ => return None,
            };
            Some(Ok(code))
        })
    }

    /// `createStream` (once); returns the message stream id.
    pub fn create_stream(&mut self, timeout: Duration) -> io::Result<u32> {
        if let Some(id) = self.session.stream_id() {
            return Ok(id);
        }
        self.session
            .create_stream(Instant::now())
            .map_err(session_error)?;
        self.flush()?;
        self.wait_for(timeout, "createStream result", |e| match e {
            ClientEvent::StreamCreated(id) => Some(Ok(id)),
            ClientEvent::Refused { code, description } => Some(Err(refused(&code, &description))),
            _ => None,
        })
    }

    /// Sends `publish name live` without waiting for the answer (see [`Self::await_status`]).
    pub fn send_publish(&mut self, name: &str) -> io::Result<()> {
        self.create_stream(Duration::from_secs(5))?;
        self.session
            .publish(Instant::now(), name)
            .map_err(session_error)?;
        self.flush()
    }

    /// `publish`, then the `onStatus` code (`NetStream.Publish.Start` or an error code such as
    /// `NetStream.Publish.BadName`).
    pub fn publish(&mut self, name: &str, timeout: Duration) -> io::Result<String> {
        self.send_publish(name)?;
        self.await_status(timeout)
    }

    /// Sends `play name` without waiting for the answer (see [`Self::await_status`]).
    pub fn send_play(&mut self, name: &str) -> io::Result<()> {
        self.create_stream(Duration::from_secs(5))?;
        self.session
            .play(Instant::now(), name)
            .map_err(session_error)?;
        self.flush()
    }

    /// `play`, then the first `onStatus` code (`NetStream.Play.Reset` or an error code such as
    /// `NetStream.Play.Failed`).
    pub fn play(&mut self, name: &str, timeout: Duration) -> io::Result<String> {
        self.send_play(name)?;
        self.await_status(timeout)
    }

    /// Announces Set Chunk Size `size` and chunks everything sent from now on with it. Sizes a
    /// server must refuse (0, or the top bit set) are announced all the same.
    pub fn set_chunk_size(&mut self, size: u32) -> io::Result<()> {
        if let Err(ClientError::InvalidChunkSize(_)) = self.session.set_chunk_size(size) {
            let header = MessageHeader {
                csid: CSID_CONTROL,
                timestamp: 0,
                type_id: type_id::SET_CHUNK_SIZE,
                stream_id: 0,
            };
            self.session
                .send_raw(&header, &size.to_be_bytes())
                .map_err(session_error)?;
        }
        self.flush()
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
        self.session
            .send_raw(&header, payload)
            .map_err(session_error)?;
        self.flush()
    }

    /// Sends a Ping Request and waits for the server's Ping Response: proof that the server
    /// has parsed everything sent before it.
    pub fn ping(&mut self, timeout: Duration) -> io::Result<Duration> {
        let start = Instant::now();
        let ts = self.session.send_ping(start).map_err(session_error)?;
        self.flush()?;
        self.wait_for(timeout, "ping response", |e| match e {
            ClientEvent::PingResponse(t) if t == ts => Some(Ok(start.elapsed())),
            _ => None,
        })
    }

    /// The socket, e.g. to read its local address.
    pub fn socket(&self) -> &TcpStream {
        &self.stream
    }
}
