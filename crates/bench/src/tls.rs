//! `rtmps://` for the generator's connections: rustls's sans-IO client driven over the same
//! non-blocking socket calls as plain RTMP, so a TLS connection costs the decryption and
//! nothing else. Reads still go into the thread's one scratch buffer; rustls copies each read
//! into its record buffer, decrypts it there, and the session scans the plaintext where
//! rustls keeps it (no second copy).

use anyhow::Context as _;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConnection, DigitallySignedStruct, SignatureScheme};
use std::io::{self, BufRead as _};
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpStream;

/// How the generator trusts the server's certificate.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Trust<'a> {
    /// The certificates of a PEM file (e.g. a benchmark's throw-away CA).
    CaFile(&'a Path),
    /// Any certificate, for a test-generated self-signed one: the handshake's signature is
    /// still checked (same cost as a real client), the chain and the name are not.
    Insecure,
}

/// The client configuration every `rtmps://` connection of a run shares.
pub(crate) fn client_config(trust: Trust<'_>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS versions")?;
    let config = match trust {
        Trust::CaFile(path) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .with_context(|| format!("--ca-file {}", path.display()))?;
            anyhow::ensure!(
                !certs.is_empty(),
                "--ca-file {}: no certificate",
                path.display()
            );
            for cert in certs {
                roots
                    .add(cert)
                    .with_context(|| format!("--ca-file {}", path.display()))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// One connection's TLS session.
pub(crate) struct Tls {
    conn: ClientConnection,
}

impl Tls {
    /// A session to `host` (a name or an IP address).
    pub(crate) fn new(config: Arc<rustls::ClientConfig>, host: &str) -> anyhow::Result<Self> {
        let name = ServerName::try_from(host.to_owned()).context("TLS server name")?;
        let mut conn = ClientConnection::new(config, name).context("TLS session")?;
        // The session's own output (a publisher's keyframe) is queued whole and flushed at
        // once: no bound needed, nothing is written ahead of the socket for long.
        conn.set_buffer_limit(None);
        Ok(Self { conn })
    }

    /// Decrypts `data` (as read from the socket) and hands each run of plaintext to `plain`.
    pub(crate) fn receive(
        &mut self,
        mut data: &[u8],
        mut plain: impl FnMut(&[u8]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        while !data.is_empty() {
            // At most one record buffer (~16 KiB) per call: process it before taking more.
            if self.conn.read_tls(&mut data).context("TLS read")? == 0 {
                anyhow::bail!("server closed the TLS session");
            }
            let state = self.conn.process_new_packets().context("TLS")?;
            let mut left = state.plaintext_bytes_to_read();
            if left == 0 && state.peer_has_closed() {
                anyhow::bail!("server closed the TLS session");
            }
            while left > 0 {
                let mut reader = self.conn.reader();
                let chunk = reader.fill_buf().context("TLS plaintext")?;
                let n = chunk.len();
                if n == 0 {
                    break;
                }
                plain(chunk)?;
                reader.consume(n);
                left = left.saturating_sub(n);
            }
        }
        Ok(())
    }

    /// Queues plaintext for the server (encrypted once the handshake is done).
    pub(crate) fn send(&mut self, data: &[u8]) -> io::Result<()> {
        io::Write::write_all(&mut self.conn.writer(), data)
    }

    /// Writes queued records to `stream`, waiting while it is full.
    pub(crate) async fn flush(&mut self, stream: &TcpStream) -> io::Result<()> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut Sock(stream)) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.writable().await?,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The socket as a non-blocking `Write` for rustls.
struct Sock<'a>(&'a TcpStream);

impl io::Write for Sock<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Accepts any certificate but checks the handshake signatures with the provider's algorithms.
#[derive(Debug)]
struct AnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
