//! The RTMP handshake: C0/C1/C2 ↔ S0/S1/S2, version 3, plain and digest ("complex", FP9) forms.

use bytes::BytesMut;

/// Size of C1/S1/C2/S2.
pub const HANDSHAKE_SIZE: usize = 1536;

/// Where a handshake stands after some input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeProgress {
    /// More input is needed.
    InProgress,
    /// The handshake is complete; bytes left in the input are the first chunks.
    Done,
}

/// Why a handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// C0 (or S0) named a version other than 3.
    #[error("unsupported RTMP version {0}")]
    UnsupportedVersion(u8),
}

/// The server side of the handshake.
#[derive(Debug)]
pub struct ServerHandshake {}

impl Default for ServerHandshake {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerHandshake {
    /// A fresh handshake with random S1 bytes.
    pub fn new() -> Self {
        Self {}
    }

    /// Consumes what it can from `input`; appends S0+S1+S2 to `out` once C0+C1 are in.
    pub fn process(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<HandshakeProgress, HandshakeError> {
        let _ = (input, out);
        Ok(HandshakeProgress::InProgress)
    }
}

/// The client side of the handshake (plain form), for the load generator and tests.
#[derive(Debug, Default)]
pub struct ClientHandshake {}

impl ClientHandshake {
    /// Appends C0+C1 to `out`; call once at the start.
    pub fn start(&mut self, out: &mut BytesMut) {
        let _ = out;
    }

    /// Consumes S0/S1/S2 from `input`; appends C2 to `out` once S1 is in.
    pub fn process(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<HandshakeProgress, HandshakeError> {
        let _ = (input, out);
        Ok(HandshakeProgress::InProgress)
    }
}
