//! TLS between the socket and a connection's core: ciphertext from the socket is decrypted
//! into the core's receive buffer, and the core's output is encrypted into TLS records and
//! written out, all through rustls's sans-IO connection. The core never knows. Liveness stays
//! on the TCP socket underneath (keepalive, TCP_USER_TIMEOUT, TCP_INFO), so every mechanism
//! works the same under TLS.

use bytes::BytesMut;
use rtmp_proto::session::CloseReason;
use std::io::{self, IoSlice, Read, Write};
use std::sync::Arc;
use tokio::net::TcpStream;

/// Ciphertext rustls may hold for the socket before it takes no more plaintext: a full socket
/// then holds back the core's output (bounded) instead of growing rustls's buffer.
const TLS_BUFFER: usize = 256 * 1024;

/// A connection's TLS state.
#[derive(Debug)]
pub(crate) struct Tls {
    conn: rustls::Connection,
    /// The first byte received: plain RTMP begins with its version byte 3, a TLS handshake
    /// record with 22 (rustls would only say "invalid content type").
    first: Option<u8>,
    /// Our side: the server (RTMPS port) or a client (an `rtmps://` relay).
    server: bool,
}

/// What a read turn gave.
pub(crate) enum TlsRead {
    /// This much plaintext was appended to the buffer (maybe 0: a handshake record).
    Plain(usize),
    /// The socket has nothing more now.
    Drained,
}

impl Tls {
    /// A server side with `config`.
    pub(crate) fn server(config: Arc<rustls::ServerConfig>) -> Result<Self, CloseReason> {
        let mut conn = rustls::ServerConnection::new(config)
            .map_err(|e| CloseReason::ProtocolError(format!("TLS: {e}")))?;
        conn.set_buffer_limit(Some(TLS_BUFFER));
        Ok(Self {
            conn: conn.into(),
            first: None,
            server: true,
        })
    }

    /// A client side to `host`, whose certificate `config` verifies.
    pub(crate) fn client(
        config: Arc<rustls::ClientConfig>,
        host: &str,
    ) -> Result<Self, CloseReason> {
        let name = rustls_pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| CloseReason::ProtocolError(format!("TLS: {host:?}: {e}")))?;
        let mut conn = rustls::ClientConnection::new(config, name)
            .map_err(|e| CloseReason::ProtocolError(format!("TLS: {e}")))?;
        conn.set_buffer_limit(Some(TLS_BUFFER));
        Ok(Self {
            conn: conn.into(),
            first: None,
            server: false,
        })
    }

    /// Reads once from the socket and decrypts what came into `buf`.
    pub(crate) fn read(
        &mut self,
        stream: &TcpStream,
        buf: &mut BytesMut,
    ) -> Result<TlsRead, CloseReason> {
        let mut sock = Recording {
            stream,
            first: &mut self.first,
        };
        match self.conn.read_tls(&mut sock) {
            Ok(0) => return Err(CloseReason::PeerClosed),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(TlsRead::Drained),
            Err(e) => return Err(crate::evidence::io_reason(&e, false)),
        }
        let state = match self.conn.process_new_packets() {
            Ok(state) => state,
            Err(e) => {
                // The alert rustls queued is our last word; the peer may not even read it.
                let _ = self.conn.write_tls(&mut Sock(stream));
                return Err(CloseReason::ProtocolError(
                    if self.first == Some(3) && self.server {
                        "plain RTMP sent to the RTMPS port (a TLS ClientHello was expected)".into()
                    } else if self.first == Some(3) {
                        "the upstream answered plain RTMP, not TLS (use rtmp://)".into()
                    } else {
                        format!("TLS: {e}")
                    },
                ));
            }
        };
        let avail = state.plaintext_bytes_to_read();
        if avail == 0 {
            if state.peer_has_closed() {
                return Err(CloseReason::PeerClosed);
            }
            return Ok(TlsRead::Plain(0));
        }
        let start = buf.len();
        buf.resize(start + avail, 0);
        let got = self
            .conn
            .reader()
            .read(buf.get_mut(start..).unwrap_or_default())
            .unwrap_or(0);
        buf.truncate(start + got);
        Ok(TlsRead::Plain(got))
    }

    /// Whether encrypted bytes wait for the socket.
    pub(crate) fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// Writes waiting ciphertext; `Ok(false)` when the socket is full.
    pub(crate) fn flush(&mut self, stream: &TcpStream) -> io::Result<bool> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut Sock(stream)) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Encrypts as much of `slices` as the TLS buffer takes; returns the plaintext bytes taken
    /// (0 when the handshake is not done or the buffer is full: flush first).
    pub(crate) fn encrypt(&mut self, slices: &[IoSlice<'_>]) -> usize {
        if self.conn.is_handshaking() {
            return 0;
        }
        self.conn.writer().write_vectored(slices).unwrap_or(0)
    }
}

/// The socket as `Read` for rustls, noting the first byte ever received.
struct Recording<'a> {
    stream: &'a TcpStream,
    first: &'a mut Option<u8>,
}

impl Read for Recording<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stream.try_read(buf)?;
        if self.first.is_none() {
            *self.first = buf.get(..n).and_then(|b| b.first()).copied();
        }
        Ok(n)
    }
}

/// The socket as `Read`/`Write` for rustls, without blocking: tokio's `try_*` calls clear the
/// socket's readiness on `WouldBlock`, so the driver then waits for the next event.
struct Sock<'a>(&'a TcpStream);

impl Read for Sock<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for Sock<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
