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
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn seeded(seed: u64) -> HandshakeRng {
        HandshakeRng::from_rng(StdRng::seed_from_u64(seed))
    }

    fn random_block() -> [u8; HANDSHAKE_SIZE] {
        seeded(99).block()
    }

    /// Runs server and client against each other, moving `step` bytes at a time each way.
    fn run_pair(step: usize, trailer: &[u8]) -> (BytesMut, BytesMut) {
        let mut server = ServerHandshake::new();
        let mut client = ClientHandshake::default();
        let (mut to_server, mut to_client) = (BytesMut::new(), BytesMut::new());
        client.start(&mut to_server);
        let (mut server_in, mut client_in) = (BytesMut::new(), BytesMut::new());
        let (mut server_done, mut client_done) = (false, false);
        let mut trailer_sent = false;
        for _ in 0..100_000 {
            let n = step.min(to_server.len());
            server_in.extend_from_slice(&to_server.split_to(n));
            if !server_done {
                server_done = server.process(&mut server_in, &mut to_client).unwrap()
                    == HandshakeProgress::Done;
            }
            let n = step.min(to_client.len());
            client_in.extend_from_slice(&to_client.split_to(n));
            if !client_done {
                client_done = client.process(&mut client_in, &mut to_server).unwrap()
                    == HandshakeProgress::Done;
            }
            if client_done && !trailer_sent {
                // The client's first chunks follow C2 immediately.
                to_server.extend_from_slice(trailer);
                trailer_sent = true;
            }
            if server_done && client_done && to_server.is_empty() && to_client.is_empty() {
                return (server_in, client_in);
            }
        }
        panic!("handshake did not finish");
    }

    #[test]
    fn pair_completes_in_one_go() {
        let (server_left, client_left) = run_pair(usize::MAX, b"chunks");
        assert_eq!(&server_left[..], b"chunks");
        assert!(client_left.is_empty());
    }

    #[test]
    fn pair_completes_byte_at_a_time() {
        let (server_left, client_left) = run_pair(1, b"first chunk bytes");
        assert_eq!(&server_left[..], b"first chunk bytes");
        assert!(client_left.is_empty());
    }

    fn plain_c0c1() -> BytesMut {
        let mut out = BytesMut::new();
        ClientHandshake::default().start(&mut out);
        out
    }

    #[test]
    fn plain_s2_echoes_c1_and_leftover_is_kept() {
        let mut server = ServerHandshake::new();
        let mut input = plain_c0c1();
        let c1 = input[1..].to_vec();
        let mut out = BytesMut::new();
        assert_eq!(
            server.process(&mut input, &mut out),
            Ok(HandshakeProgress::InProgress)
        );
        assert_eq!(out.len(), 1 + 2 * HANDSHAKE_SIZE);
        assert_eq!(out[0], 3);
        assert_eq!(&out[5..9], &[0; 4]);
        assert_eq!(&out[1 + HANDSHAKE_SIZE..], &c1[..]);
        assert_eq!(server.digest_schema(), None);
        input.extend_from_slice(&[0x55; HANDSHAKE_SIZE]);
        input.extend_from_slice(&[1, 2, 3]);
        assert_eq!(
            server.process(&mut input, &mut out),
            Ok(HandshakeProgress::Done)
        );
        assert_eq!(&input[..], &[1, 2, 3]);
        // Done is sticky and leaves further input alone.
        assert_eq!(
            server.process(&mut input, &mut out),
            Ok(HandshakeProgress::Done)
        );
        assert_eq!(&input[..], &[1, 2, 3]);
    }

    #[test]
    fn bad_version_rejected() {
        let mut server = ServerHandshake::new();
        let mut input = BytesMut::from(&[6u8][..]);
        assert_eq!(
            server.process(&mut input, &mut BytesMut::new()),
            Err(HandshakeError::UnsupportedVersion(6))
        );
        let mut client = ClientHandshake::default();
        let mut input = BytesMut::from(&[0x16u8, 3, 1][..]);
        assert_eq!(
            client.process(&mut input, &mut BytesMut::new()),
            Err(HandshakeError::UnsupportedVersion(0x16))
        );
    }

    #[test]
    fn truncated_input_stays_in_progress() {
        let full = plain_c0c1();
        for len in [0, 1, 100, HANDSHAKE_SIZE] {
            let mut server = ServerHandshake::new();
            let mut input = BytesMut::from(&full[..len]);
            let mut out = BytesMut::new();
            assert_eq!(
                server.process(&mut input, &mut out),
                Ok(HandshakeProgress::InProgress)
            );
            assert!(out.is_empty());
            assert_eq!(
                input.len(),
                len,
                "nothing consumed before C0+C1 are complete"
            );
        }
        let mut server = ServerHandshake::new();
        let mut input = full.clone();
        let mut out = BytesMut::new();
        server.process(&mut input, &mut out).unwrap();
        input.extend_from_slice(&[0; HANDSHAKE_SIZE - 1]);
        assert_eq!(
            server.process(&mut input, &mut out),
            Ok(HandshakeProgress::InProgress)
        );
        assert_eq!(input.len(), HANDSHAKE_SIZE - 1);
    }

    /// A C1 as Flash Player builds it: non-zero version, digest at the schema's offset.
    fn digest_c1(schema: DigestSchema) -> ([u8; HANDSHAKE_SIZE], [u8; DIGEST_LEN]) {
        let mut c1 = random_block();
        c1[..4].copy_from_slice(&1234u32.to_be_bytes());
        c1[4..8].copy_from_slice(&[0x80, 0x00, 0x07, 0x02]);
        // Computed independently of `sign_block`: the digest covers C1 minus its 32 bytes.
        let offset = schema.offset(&c1);
        let mut rest = c1[..offset].to_vec();
        rest.extend_from_slice(&c1[offset + DIGEST_LEN..]);
        let mut mac = Hmac::<Sha256>::new_from_slice(&fp_key()[..30]).unwrap();
        mac.update(&rest);
        let digest: [u8; DIGEST_LEN] = mac.finalize().into_bytes().into();
        c1[offset..offset + DIGEST_LEN].copy_from_slice(&digest);
        (c1, digest)
    }

    #[test]
    fn complex_handshake_signs_s1_and_s2() {
        for schema in [DigestSchema::Schema0, DigestSchema::Schema1] {
            let (c1, client_digest) = digest_c1(schema);
            let mut input = BytesMut::new();
            input.put_u8(3);
            input.put_slice(&c1);
            let mut server = ServerHandshake::new();
            let mut out = BytesMut::new();
            assert_eq!(
                server.process(&mut input, &mut out),
                Ok(HandshakeProgress::InProgress)
            );
            assert_eq!(server.digest_schema(), Some(schema));
            assert_eq!(out.len(), 1 + 2 * HANDSHAKE_SIZE);
            let s1 = &out[1..1 + HANDSHAKE_SIZE];
            let s2 = &out[1 + HANDSHAKE_SIZE..];

            assert_ne!(&s1[4..8], &[0; 4]);
            let offset = schema.offset(s1);
            let mut mac = Hmac::<Sha256>::new_from_slice(&fms_key()[..36]).unwrap();
            mac.update(&s1[..offset]);
            mac.update(&s1[offset + DIGEST_LEN..]);
            mac.verify_slice(&s1[offset..offset + DIGEST_LEN]).unwrap();

            let mut mac = Hmac::<Sha256>::new_from_slice(&fms_key()).unwrap();
            mac.update(&client_digest);
            let key = mac.finalize().into_bytes();
            let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
            mac.update(&s2[..HANDSHAKE_SIZE - DIGEST_LEN]);
            mac.verify_slice(&s2[HANDSHAKE_SIZE - DIGEST_LEN..])
                .unwrap();
            assert_ne!(s2, &c1[..], "digest S2 is not an echo");
        }
    }

    #[test]
    fn non_zero_version_without_digest_falls_back_to_plain() {
        let mut c1 = random_block();
        c1[4..8].copy_from_slice(&[9, 0, 124, 2]);
        let mut input = BytesMut::new();
        input.put_u8(3);
        input.put_slice(&c1);
        let mut server = ServerHandshake::new();
        let mut out = BytesMut::new();
        server.process(&mut input, &mut out).unwrap();
        assert_eq!(server.digest_schema(), None);
        assert_eq!(&out[5..9], &[0; 4]);
        assert_eq!(&out[1 + HANDSHAKE_SIZE..], &c1[..]);
    }

    #[test]
    fn keys_are_the_published_text_and_tail() {
        // The S1 digest is keyed with the text part alone, S2 with text + tail; a typo in
        // either breaks every Flash Player client, so check the bytes, not just the lengths.
        let fms = fms_key();
        assert_eq!(&fms[..36], b"Genuine Adobe Flash Media Server 001");
        assert_eq!(&fms[36..], &KEY_TAIL);
        let fp = fp_key();
        assert_eq!(&fp[..30], b"Genuine Adobe Flash Player 001");
        assert_eq!(&fp[30..], &KEY_TAIL);
        assert_eq!(&KEY_TAIL[..4], &[0xF0, 0xEE, 0xC2, 0x4A]);
        assert_eq!(&KEY_TAIL[28..], &[0xCF, 0xEB, 0x31, 0xAE]);
    }

    /// One plain handshake between seeded peers: C0+C1, S0+S1+S2, C2 as sent on the wire.
    fn seeded_exchange(client_seed: u64, server_seed: u64) -> (BytesMut, BytesMut, BytesMut) {
        let mut client = ClientHandshake::with_rng(seeded(client_seed));
        let mut server = ServerHandshake::with_rng(seeded(server_seed));
        let mut c0c1 = BytesMut::new();
        client.start(&mut c0c1);
        let (mut input, mut s0s1s2) = (c0c1.clone(), BytesMut::new());
        server.process(&mut input, &mut s0s1s2).unwrap();
        let (mut input, mut c2) = (s0s1s2.clone(), BytesMut::new());
        assert_eq!(
            client.process(&mut input, &mut c2).unwrap(),
            HandshakeProgress::Done
        );
        assert!(client.is_done());
        let mut input = c2.clone();
        assert_eq!(
            server.process(&mut input, &mut BytesMut::new()).unwrap(),
            HandshakeProgress::Done
        );
        (c0c1, s0s1s2, c2)
    }

    #[test]
    fn seeded_plain_handshake_echoes_c1_and_s1() {
        let (c0c1, s0s1s2, c2) = seeded_exchange(1, 2);
        assert_eq!(c0c1[0], 3);
        let c1 = &c0c1[1..];
        assert_eq!(&c1[..8], &[0; 8], "plain C1: time 0, zero version");
        assert_eq!(s0s1s2[0], 3);
        let s1 = &s0s1s2[1..=HANDSHAKE_SIZE];
        let s2 = &s0s1s2[1 + HANDSHAKE_SIZE..];
        assert_eq!(&s1[..8], &[0; 8], "plain S1: time 0, zero version");
        assert_eq!(s2, c1, "S2 echoes C1");
        assert_eq!(&c2[..], s1, "C2 echoes S1");
        // The filler is the injected generator's output, so a seed replays the exchange.
        let mut filler = [0; HANDSHAKE_SIZE];
        seeded(1).fill(&mut filler);
        assert_eq!(&c1[8..], &filler[8..]);
        assert_eq!(seeded_exchange(1, 2), (c0c1.clone(), s0s1s2.clone(), c2));
        let (other, _, _) = seeded_exchange(3, 2);
        assert_ne!(other, c0c1, "another seed, other bytes");
        assert!(c1[8..].iter().any(|&b| b != 0), "the filler is random");
    }
}
