//! The RTMP handshake: C0/C1/C2 ↔ S0/S1/S2, version 3, plain and digest ("complex", FP9) forms.
//!
//! Flash Player and some encoders send a C1 carrying an HMAC-SHA256 digest and refuse to play
//! H.264/AAC unless S1/S2 carry matching digests, so the server answers in kind; everything else
//! (ffmpeg, OBS, librtmp) gets the plain echo handshake. C2 is never validated because many
//! clients send junk there.

use bytes::{Buf, BufMut, BytesMut};
use hmac::{Hmac, KeyInit, Mac};
use rand::Rng;
use sha2::Sha256;
use std::fmt;

/// Size of C1/S1/C2/S2.
pub const HANDSHAKE_SIZE: usize = 1536;

/// The only RTMP version we speak (6 would be RTMPE, which we do not).
const RTMP_VERSION: u8 = 3;
/// Length of an HMAC-SHA256 digest.
const DIGEST_LEN: usize = 32;
/// Version field we put in a digest S1 (bytes 4..8); any non-zero value marks the digest form.
const SERVER_VERSION: [u8; 4] = [0x04, 0x05, 0x00, 0x01];

/// The 32 bytes both public handshake keys end with.
const KEY_TAIL: [u8; 32] = [
    0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1, 0x02, 0x9E, 0x7E, 0x57,
    0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE,
];
/// Text part of the Flash Player key; the C1 digest is keyed with these 30 bytes alone.
const FP_KEY_TEXT: &[u8; 30] = b"Genuine Adobe Flash Player 001";
/// Text part of the Flash Media Server key; the S1 digest is keyed with these 36 bytes alone.
const FMS_KEY_TEXT: &[u8; 36] = b"Genuine Adobe Flash Media Server 001";

/// The full 68-byte FMS key (text + tail), from which the S2 signing key is derived.
fn fms_key() -> [u8; 68] {
    let mut key = [0; 68];
    key[..36].copy_from_slice(FMS_KEY_TEXT);
    key[36..].copy_from_slice(&KEY_TAIL);
    key
}

/// The full 62-byte Flash Player key, with which a digest client signs C2.
/// Takes the version byte (checked as soon as it arrives, before the rest) and the 1536-byte
/// block after it (C0+C1 or S0+S1), or nothing while they are incomplete: both sides of the
/// handshake start the same way.
fn take_version_and_block(input: &mut BytesMut) -> Result<Option<BytesMut>, HandshakeError> {
    match input.first() {
        None => return Ok(None),
        Some(&v) if v != RTMP_VERSION => return Err(HandshakeError::UnsupportedVersion(v)),
        Some(_) => {}
    }
    if input.len() < 1 + HANDSHAKE_SIZE {
        return Ok(None);
    }
    input.advance(1);
    Ok(Some(input.split_to(HANDSHAKE_SIZE)))
}

#[cfg(test)]
fn fp_key() -> [u8; 62] {
    let mut key = [0; 62];
    key[..30].copy_from_slice(FP_KEY_TEXT);
    key[30..].copy_from_slice(&KEY_TAIL);
    key
}

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

/// Where the 32-byte digest sits in a 1536-byte C1/S1. Clients use either layout; the server
/// answers with the one the client used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestSchema {
    /// Key block first, digest block at 772: offset from bytes 772..776.
    Schema0,
    /// Digest block first at 8: offset from bytes 8..12.
    Schema1,
}

impl DigestSchema {
    /// Offset of the digest inside `block` (1536 bytes), always within bounds.
    fn offset(self, block: &[u8]) -> usize {
        let (at, base) = match self {
            Self::Schema0 => (772, 776),
            Self::Schema1 => (8, 12),
        };
        let sum: usize = block
            .get(at..at + 4)
            .unwrap_or_default()
            .iter()
            .map(|&b| usize::from(b))
            .sum();
        sum % 728 + base
    }
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; DIGEST_LEN] {
    let mut out = [0; DIGEST_LEN];
    // HMAC accepts keys of any length, so this never fails; the fallback keeps us panic-free.
    if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) {
        for part in parts {
            mac.update(part);
        }
        out.copy_from_slice(&mac.finalize().into_bytes());
    }
    out
}

/// HMAC of a 1536-byte block with the 32 digest bytes at `offset` left out.
fn block_digest(key: &[u8], block: &[u8], offset: usize) -> [u8; DIGEST_LEN] {
    let before = block.get(..offset).unwrap_or_default();
    let after = block.get(offset + DIGEST_LEN..).unwrap_or_default();
    hmac_sha256(key, &[before, after])
}

/// Finds a valid Flash Player digest in C1, trying both layouts.
fn find_client_digest(c1: &[u8]) -> Option<(DigestSchema, [u8; DIGEST_LEN])> {
    [DigestSchema::Schema0, DigestSchema::Schema1]
        .into_iter()
        .find_map(|schema| {
            let offset = schema.offset(c1);
            let claimed = c1.get(offset..offset + DIGEST_LEN)?;
            let computed = block_digest(FP_KEY_TEXT, c1, offset);
            constant_time_eq(claimed, &computed).then(|| {
                let mut digest = [0; DIGEST_LEN];
                digest.copy_from_slice(claimed);
                (schema, digest)
            })
        })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Writes `digest` into `block` at the schema's offset, computed with `key` over the rest.
fn sign_block(block: &mut [u8], schema: DigestSchema, key: &[u8]) -> [u8; DIGEST_LEN] {
    let offset = schema.offset(block);
    let digest = block_digest(key, block, offset);
    if let Some(slot) = block.get_mut(offset..offset + DIGEST_LEN) {
        slot.copy_from_slice(&digest);
    }
    digest
}

/// Where the random filler of C1/S1/S2 comes from.
///
/// The thread-local CSPRNG by default (drawn at the moment it is needed, so a session stays
/// `Send` and costs no generator state while it waits); tests and fuzzing inject a seeded
/// generator so a whole session replays byte for byte. The bytes only need to be unpredictable
/// enough that a peer cannot tell connections apart by them; no secret depends on them.
#[derive(Default)]
pub struct HandshakeRng(Option<Box<dyn Rng + Send + Sync>>);

impl HandshakeRng {
    /// The thread-local CSPRNG (`rand::rng()`).
    pub fn thread() -> Self {
        Self(None)
    }

    /// Bytes from `rng`, e.g. a `rand::rngs::StdRng` seeded in a test.
    pub fn from_rng(rng: impl Rng + Send + Sync + 'static) -> Self {
        Self(Some(Box::new(rng)))
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        match &mut self.0 {
            Some(rng) => rng.fill_bytes(buf),
            None => rand::rng().fill_bytes(buf),
        }
    }

    fn block(&mut self) -> [u8; HANDSHAKE_SIZE] {
        let mut block = [0; HANDSHAKE_SIZE];
        self.fill(&mut block);
        block
    }
}

impl fmt::Debug for HandshakeRng {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Some(_) => "HandshakeRng(injected)",
            None => "HandshakeRng(thread)",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    AwaitC0C1,
    AwaitC2,
    Done,
}

/// The server side of the handshake.
///
/// S0+S1+S2 are sent together as soon as C0+C1 are in, without waiting for C2: clients send
/// C2 only after S2, and waiting would cost a round trip.
#[derive(Debug)]
pub struct ServerHandshake {
    state: ServerState,
    schema: Option<DigestSchema>,
    rng: HandshakeRng,
}

impl Default for ServerHandshake {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerHandshake {
    /// A fresh handshake; the random S1/S2 bytes are drawn when C1 arrives.
    pub fn new() -> Self {
        Self::with_rng(HandshakeRng::thread())
    }

    /// A fresh handshake drawing its random bytes from `rng`.
    pub fn with_rng(rng: HandshakeRng) -> Self {
        Self {
            state: ServerState::AwaitC0C1,
            schema: None,
            rng,
        }
    }

    /// Which digest layout the client used, once C1 is in; `None` for the plain handshake.
    pub fn digest_schema(&self) -> Option<DigestSchema> {
        self.schema
    }

    /// Consumes what it can from `input`; appends S0+S1+S2 to `out` once C0+C1 are in.
    ///
    /// Input after C2 is left in `input`: it is the start of the chunk stream. A bad version
    /// byte is reported as soon as it arrives, before C1.
    pub fn process(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<HandshakeProgress, HandshakeError> {
        if self.state == ServerState::AwaitC0C1 {
            let Some(c1) = take_version_and_block(input)? else {
                return Ok(HandshakeProgress::InProgress);
            };
            self.respond(&c1, out);
            self.state = ServerState::AwaitC2;
        }
        if self.state == ServerState::AwaitC2 {
            if input.len() < HANDSHAKE_SIZE {
                return Ok(HandshakeProgress::InProgress);
            }
            input.advance(HANDSHAKE_SIZE);
            self.state = ServerState::Done;
        }
        Ok(HandshakeProgress::Done)
    }

    /// Appends S0+S1+S2 answering `c1`.
    fn respond(&mut self, c1: &[u8], out: &mut BytesMut) {
        out.reserve(1 + 2 * HANDSHAKE_SIZE);
        out.put_u8(RTMP_VERSION);
        let digest_c1 = c1.get(4..8).is_some_and(|v| v.iter().any(|&b| b != 0));
        let found = if digest_c1 {
            find_client_digest(c1)
        } else {
            None
        };
        match found {
            Some((schema, client_digest)) => {
                self.schema = Some(schema);
                let mut s1 = self.rng.block();
                // Time 0: our epoch starts with this connection (the spec allows any value).
                s1[..4].fill(0);
                s1[4..8].copy_from_slice(&SERVER_VERSION);
                sign_block(&mut s1, schema, FMS_KEY_TEXT);
                out.put_slice(&s1);

                let mut s2 = self.rng.block();
                let key = hmac_sha256(&fms_key(), &[&client_digest]);
                let signature = hmac_sha256(&key, &[&s2[..HANDSHAKE_SIZE - DIGEST_LEN]]);
                s2[HANDSHAKE_SIZE - DIGEST_LEN..].copy_from_slice(&signature);
                out.put_slice(&s2);
            }
            None => {
                let mut s1 = self.rng.block();
                // Time 0, then the 4 zero bytes the plain form requires.
                s1[..8].fill(0);
                out.put_slice(&s1);
                out.put_slice(c1);
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum ClientState {
    #[default]
    Start,
    AwaitS0S1,
    AwaitS2,
    Done,
}

/// The client side of the handshake (plain form: zero version, C2 echoes S1), which every
/// server accepts; the digest form only matters to Flash Player-era servers that insist on it.
#[derive(Debug, Default)]
pub struct ClientHandshake {
    state: ClientState,
    rng: HandshakeRng,
}

impl ClientHandshake {
    /// A fresh handshake drawing the random bytes of C1 from `rng`.
    pub fn with_rng(rng: HandshakeRng) -> Self {
        Self {
            state: ClientState::Start,
            rng,
        }
    }

    /// Whether S0+S1+S2 are all in (C2 has been written).
    pub fn is_done(&self) -> bool {
        self.state == ClientState::Done
    }

    /// Appends C0+C1 to `out`; call once at the start (later calls do nothing).
    pub fn start(&mut self, out: &mut BytesMut) {
        if self.state != ClientState::Start {
            return;
        }
        let mut c1 = self.rng.block();
        c1[..8].fill(0);
        out.reserve(1 + HANDSHAKE_SIZE);
        out.put_u8(RTMP_VERSION);
        out.put_slice(&c1);
        self.state = ClientState::AwaitS0S1;
    }

    /// Consumes S0/S1/S2 from `input`; appends C2 to `out` once S1 is in. Starts the handshake
    /// first if [`start`](Self::start) was not called, so a forgotten call cannot hang.
    pub fn process(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<HandshakeProgress, HandshakeError> {
        self.start(out);
        if self.state == ClientState::AwaitS0S1 {
            let Some(s1) = take_version_and_block(input)? else {
                return Ok(HandshakeProgress::InProgress);
            };
            out.put_slice(&s1);
            self.state = ClientState::AwaitS2;
        }
        if self.state == ClientState::AwaitS2 {
            if input.len() < HANDSHAKE_SIZE {
                return Ok(HandshakeProgress::InProgress);
            }
            input.advance(HANDSHAKE_SIZE);
            self.state = ClientState::Done;
        }
        Ok(HandshakeProgress::Done)
    }
}

#[cfg(test)]
mod tests;
