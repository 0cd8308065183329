//! One RTMP client connection of the load generator: an `rtmp_proto::client::ClientSession`
//! over a tokio `TcpStream`. The session does the handshake, `connect`, `createStream` and
//! `play` or `publish`, answers pings and acknowledges as the server asks, so a correct server
//! never has a reason to close it; players run it in `MediaMode::HeadersOnly`, so media is
//! counted from its chunk headers and never copied.
//!
//! Reads go into the thread's shared buffer ([`crate::scratch`]) and the session scans them
//! where they lie; for `rtmps://` they pass through [`crate::tls`] first.

use crate::stats::PlayerStats;
use crate::tls::Tls;
use anyhow::{Context as _, bail};
use rtmp_proto::client::{ClientConfig, ClientEvent, ClientSession, ClientState, MediaMode};
use rtmp_proto::session::MediaKind;
use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

/// Chunk size a publisher announces: fewer headers for the server to parse (as OBS and ffmpeg
/// do). Players and idle connections keep the default, as most players do.
const PUBLISH_CHUNK_SIZE: u32 = 4096;

/// Where the server lives and what to ask it for.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    pub(crate) app: String,
    pub(crate) tc_url: String,
    /// For `rtmps://`: the TLS configuration and the name the certificate is checked against.
    pub(crate) tls: Option<(Arc<rustls::ClientConfig>, String)>,
}

/// What a connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Handshake and `connect`, then stay silent except for protocol duties.
    Idle,
    Play,
    Publish,
}

/// A live client connection.
pub(crate) struct Conn {
    stream: TcpStream,
    /// TLS between the socket and the session, for `rtmps://`.
    tls: Option<Tls>,
    session: ClientSession,
    name: String,
    /// Media accounting, for players.
    stats: Option<Rc<RefCell<PlayerStats>>>,
    /// Why the server refused us, once it did.
    refused: Option<String>,
}

impl Conn {
    /// Connects and asks for `role` on stream `name`; returns once the server has accepted
    /// (`connect` answered for idle, `NetStream.*.Start` for play and publish).
    pub(crate) async fn open(
        target: &Target,
        role: Role,
        name: &str,
        stats: Option<Rc<RefCell<PlayerStats>>>,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        tokio::time::timeout(
            timeout,
            Self::open_inner(target, role, name, stats, timeout),
        )
        .await
        .with_context(|| format!("{role:?} {name}: not started within {timeout:?}"))?
    }

    async fn open_inner(
        target: &Target,
        role: Role,
        name: &str,
        stats: Option<Rc<RefCell<PlayerStats>>>,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(target.addr).await?;
        stream.set_nodelay(true)?;
        let mut config = ClientConfig::new(target.app.as_str(), target.tc_url.as_str());
        config.flash_ver = "FMLE/3.0 (compatible; lifeline-bench)".into();
        config.media = MediaMode::HeadersOnly;
        config.chunk_size = if role == Role::Publish {
            PUBLISH_CHUNK_SIZE
        } else {
            128
        };
        config.timeouts.setup = timeout;
        // A player that sees no media stays: the report counts what arrived, or did not.
        config.timeouts.media_idle = None;
        let now = Instant::now();
        let mut session = ClientSession::new(config, now);
        match role {
            Role::Idle => {}
            Role::Play => session.play(now, name)?,
            Role::Publish => session.publish(now, name)?,
        }
        let tls = match &target.tls {
            Some((config, host)) => Some(Tls::new(config.clone(), host)?),
            None => None,
        };
        let mut conn = Self {
            stream,
            tls,
            session,
            name: name.to_owned(),
            stats,
            refused: None,
        };
        conn.flush().await?;
        loop {
            let started = matches!(
                (role, conn.session.state()),
                (Role::Idle, ClientState::Connected)
                    | (Role::Play, ClientState::Playing(_))
                    | (Role::Publish, ClientState::Publishing(_))
            );
            if started {
                return Ok(conn);
            }
            conn.stream.readable().await?;
            conn.read_ready()?;
            conn.flush().await?;
        }
    }

    /// Feeds received bytes to the session and acts on what it reports.
    fn consume(&mut self, data: &[u8]) -> anyhow::Result<()> {
        let now = Instant::now();
        self.session
            .feed(now, data)
            .map_err(|e| anyhow::anyhow!("{}: {e}", self.name))?;
        while let Some(event) = self.session.poll_event() {
            match event {
                ClientEvent::MediaHeader(m) => {
                    if let Some(stats) = &self.stats {
                        stats.borrow_mut().on_media(m.timestamp, m.len, now);
                    }
                }
                ClientEvent::Refused { code, description } => {
                    self.refused = Some(format!("{}: {code} ({description})", self.name));
                }
                _ => {}
            }
        }
        if let Some(why) = self.refused.take() {
            bail!(why);
        }
        Ok(())
    }

    /// Reads whatever the socket has, without waiting. Errors when the server closed.
    fn read_ready(&mut self) -> anyhow::Result<()> {
        crate::scratch::with(|buf| {
            loop {
                match self.stream.try_read(buf) {
                    Ok(0) => bail!("{}: server closed the connection", self.name),
                    Ok(n) => {
                        if let Some(stats) = &self.stats {
                            stats.borrow_mut().wire_bytes += n as u64;
                        }
                        let data = buf.get(..n).unwrap_or_default();
                        match self.tls.take() {
                            None => self.consume(data)?,
                            Some(mut tls) => {
                                let fed = tls.receive(data, |plain| self.consume(plain));
                                self.tls = Some(tls);
                                fed?;
                            }
                        }
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
        match &mut self.tls {
            None => {
                while let Some(out) = self.session.take_output() {
                    self.stream.write_all(&out).await?;
                }
            }
            Some(tls) => {
                while let Some(out) = self.session.take_output() {
                    tls.send(&out)?;
                }
                tls.flush(&self.stream).await?;
            }
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

    /// Sends one media message (a publisher's FLV tag body), serving incoming bytes first.
    pub(crate) async fn send_media(
        &mut self,
        kind: MediaKind,
        timestamp: u32,
        body: &[u8],
    ) -> anyhow::Result<()> {
        self.read_ready()?;
        self.session.send_media(kind, timestamp, body)?;
        self.flush().await?;
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
