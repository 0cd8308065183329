//! TLS between the socket and a connection's core: ciphertext from the socket is decrypted
//! into the core's receive buffer, and the core's output is encrypted into TLS records and
//! written out, all through rustls's sans-IO connection. The core never knows. Liveness stays
//! on the TCP socket underneath (keepalive, TCP_USER_TIMEOUT, TCP_INFO), so every mechanism
//! works the same under TLS.
//!
//! A player's TLS state is shared ([`SharedTls`]) between its connection's task (reads, the
//! handshake, alerts) and the fan-out writer that seats it, which encrypts each merged window
//! of shared chunks in one go: one record per 16 KiB of plaintext, not one per message, and
//! the chunks as the stream made them (never re-chunked).

use crate::fanout::Target;
use bytes::BytesMut;
use rtmp_proto::session::CloseReason;
use std::io::{self, IoSlice, Read, Write};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
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
    /// A server side with `config`. Boxed, as [`Self::client`]: a rustls connection is over
    /// 1 KiB, and every connection task that may carry one (each nested future holding it
    /// inline) would pay that on plain ports too.
    pub(crate) fn server(config: Arc<rustls::ServerConfig>) -> Result<Box<Self>, CloseReason> {
        let mut conn = rustls::ServerConnection::new(config)
            .map_err(|e| CloseReason::ProtocolError(format!("TLS: {e}")))?;
        conn.set_buffer_limit(Some(TLS_BUFFER));
        Ok(Box::new(Self {
            conn: conn.into(),
            first: None,
            server: true,
        }))
    }

    /// A client side to `host`, whose certificate `config` verifies.
    pub(crate) fn client(
        config: Arc<rustls::ClientConfig>,
        host: &str,
    ) -> Result<Box<Self>, CloseReason> {
        let name = rustls_pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| CloseReason::ProtocolError(format!("TLS: {host:?}: {e}")))?;
        let mut conn = rustls::ClientConnection::new(config, name)
            .map_err(|e| CloseReason::ProtocolError(format!("TLS: {e}")))?;
        conn.set_buffer_limit(Some(TLS_BUFFER));
        Ok(Box::new(Self {
            conn: conn.into(),
            first: None,
            server: false,
        }))
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

/// A connection's TLS state and its socket, for the connection's task and a fan-out writer
/// alike. Every record is made and written under the one lock, from rustls's one queue, so
/// the two never interleave or reorder records.
#[derive(Debug)]
pub(crate) struct SharedTls {
    stream: Arc<TcpStream>,
    tls: Mutex<Tls>,
}

impl SharedTls {
    pub(crate) fn new(stream: Arc<TcpStream>, tls: Tls) -> Self {
        Self {
            stream,
            tls: Mutex::new(tls),
        }
    }

    /// The TLS state (held briefly: a read, a write turn).
    pub(crate) fn lock(&self) -> MutexGuard<'_, Tls> {
        self.tls.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Target for SharedTls {
    /// Encrypts what the socket can be given now and writes it. Ciphertext the socket did not
    /// take stays queued in rustls (at most [`TLS_BUFFER`], like a larger socket buffer) and
    /// goes first at the next call; the bytes reported are plaintext taken.
    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut tls = self.lock();
        if !tls.flush(&self.stream)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = tls.encrypt(bufs);
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        tls.flush(&self.stream)?;
        Ok(n)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    /// TLS 1.3 with AES-GCM: header 5, inner content type 1, tag 16.
    const RECORD_OVERHEAD: usize = 22;

    /// Moves every record `from` has for `to`.
    fn pass(from: &mut rustls::Connection, to: &mut rustls::Connection) {
        let mut wire = Vec::new();
        while from.wants_write() {
            from.write_tls(&mut wire).unwrap();
        }
        let mut rd = wire.as_slice();
        while !rd.is_empty() {
            to.read_tls(&mut rd).unwrap();
            to.process_new_packets().unwrap();
        }
    }

    /// A server side done with its handshake (and its tickets sent) and its client.
    fn handshaken() -> (Tls, rustls::Connection) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = CertificateDer::from(cert.der().to_vec());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut tls = Tls::server(Arc::new(server)).unwrap();
        let mut client: rustls::Connection = rustls::ClientConnection::new(
            Arc::new(client),
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
        )
        .unwrap()
        .into();
        while client.is_handshaking() || tls.conn.is_handshaking() || tls.conn.wants_write() {
            pass(&mut client, &mut tls.conn);
            pass(&mut tls.conn, &mut client);
        }
        (*tls, client)
    }

    #[test]
    fn a_merged_window_is_one_record_not_one_per_message() {
        let (mut tls, mut client) = handshaken();
        // A window's worth of messages as the fan-out hands them over: many shared chunks.
        let messages: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 200 + usize::from(i)]).collect();
        let slices: Vec<IoSlice<'_>> = messages.iter().map(|m| IoSlice::new(m)).collect();
        let total: usize = messages.iter().map(Vec::len).sum();
        assert!(total < 16 * 1024);
        assert_eq!(tls.encrypt(&slices), total);
        let mut wire = Vec::new();
        while tls.conn.wants_write() {
            tls.conn.write_tls(&mut wire).unwrap();
        }
        assert_eq!(
            wire.len(),
            total + RECORD_OVERHEAD,
            "one record for the window"
        );
        let mut rd = wire.as_slice();
        while !rd.is_empty() {
            client.read_tls(&mut rd).unwrap();
            client.process_new_packets().unwrap();
        }
        let mut plain = vec![0; total];
        client.reader().read_exact(&mut plain).unwrap();
        assert!(
            plain == messages.concat(),
            "the chunks as they were, in order"
        );
    }

    #[test]
    fn more_than_a_record_is_split_at_16_kib_only() {
        let (mut tls, _client) = handshaken();
        let big = vec![7u8; 40 * 1024];
        let slices = [IoSlice::new(&big[..1000]), IoSlice::new(&big[1000..])];
        assert_eq!(tls.encrypt(&slices), big.len());
        let mut wire = Vec::new();
        while tls.conn.wants_write() {
            tls.conn.write_tls(&mut wire).unwrap();
        }
        assert_eq!(wire.len(), big.len() + 3 * RECORD_OVERHEAD);
    }
}
