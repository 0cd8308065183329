//! Entry points for the cargo-fuzz targets in `fuzz/`, compiled only for fuzzing and tests.
//!
//! The fuzz targets are one-line wrappers over these functions, and the stable corpus replay
//! test below calls the very same functions, so every input the fuzzer ever kept (and every
//! crash turned into a regression file) is rerun by a plain `cargo test` in CI.
//!
//! Errors from hostile input are the expected outcome and are ignored; a panic here means a
//! promise of this crate was broken: it panicked on its own, or a cross-check failed (a value
//! that does not survive re-encoding, split input read differently from whole input, server
//! output that a client could not read).

use crate::amf0;
use crate::chunk::{ChunkError, ChunkReader, RawMessage, ReaderLimits};
use crate::handshake::{HANDSHAKE_SIZE, HandshakeError, HandshakeProgress, ServerHandshake};
use crate::message::{Message, type_id};
use crate::session::{Event, ServerSession, SessionConfig};
use bytes::{Bytes, BytesMut};
use std::time::{Duration, Instant};

mod client;
pub use client::client_session;

/// A fuzz entry point: takes any bytes, panics only on a broken invariant.
pub type Target = fn(&[u8]);

/// Every target by the name of its fuzz binary and corpus directory, so the replay test cannot
/// miss one.
pub const TARGETS: [(&str, Target); 6] = [
    ("handshake", handshake),
    ("chunk_reader", chunk_reader),
    ("amf0_decode", amf0_decode),
    ("command_parse", command_parse),
    ("session", session),
    ("client_session", client_session),
];

/// The server handshake on arbitrary bytes, whole and split in two: both must agree on the
/// outcome, on what is left for the chunk stream, and on the plain-form echo.
pub fn handshake(data: &[u8]) {
    let whole = run_handshake(&[data]);
    let mid = data.len() / 2;
    let split = run_handshake(&[&data[..mid], &data[mid..]]);
    assert_eq!(whole.0, split.0, "split handshake input read differently");
    assert_eq!(whole.1.len(), split.1.len());
    if whole.0.is_ok() {
        assert_eq!(whole.2, split.2, "different leftover after C2");
    }

    let full = 1 + 2 * HANDSHAKE_SIZE;
    match whole.0 {
        Err(HandshakeError::UnsupportedVersion(v)) => {
            assert_eq!(Some(&v), data.first());
            assert!(whole.1.is_empty(), "answered a bad version");
        }
        Ok(HandshakeProgress::Done) => {
            assert!(data.len() >= full);
            assert_eq!(whole.2, &data[full..]);
        }
        Ok(HandshakeProgress::InProgress) => assert!(data.len() < full),
    }
    if !whole.1.is_empty() {
        // S0 + S1 + S2, once C0 + C1 are in.
        assert_eq!(whole.1.len(), full);
        if whole.3 {
            assert_eq!(&whole.1[1 + HANDSHAKE_SIZE..], &data[1..=HANDSHAKE_SIZE]);
            assert_eq!(&split.1[1 + HANDSHAKE_SIZE..], &data[1..=HANDSHAKE_SIZE]);
        }
    } else {
        assert!(data.len() <= HANDSHAKE_SIZE || whole.0.is_err());
    }
}

type HandshakeRun = (
    Result<HandshakeProgress, HandshakeError>,
    BytesMut,
    BytesMut,
    bool,
);

/// Feeds `pieces` one after the other; returns the last result, the output, the leftover input
/// and whether the plain (echo) form was used.
fn run_handshake(pieces: &[&[u8]]) -> HandshakeRun {
    let mut hs = ServerHandshake::new();
    let (mut input, mut out) = (BytesMut::new(), BytesMut::new());
    let mut result = Ok(HandshakeProgress::InProgress);
    for piece in pieces {
        input.extend_from_slice(piece);
        result = hs.process(&mut input, &mut out);
        if result.is_err() {
            break;
        }
    }
    let plain = hs.digest_schema().is_none();
    (result, out, input, plain)
}

/// Limits small enough for the fuzzer to reach every limit error with short inputs.
const FUZZ_LIMITS: ReaderLimits = ReaderLimits {
    max_message_size: 1 << 16,
    max_chunk_streams: 8,
    max_buffered: 1 << 16,
};

/// The chunk reader on arbitrary bytes. The first byte picks the starting chunk size (0: the
/// default 128; 1–127: that size; 128–255: multiples of 256 up to 32 KiB); Set Chunk Size and
/// Abort messages in the stream are applied as a session would. The input is read whole and
/// one byte at a time, which must give the same messages and the same error.
pub fn chunk_reader(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let chunk_size = match sel {
        0 => None,
        1..=127 => Some(u32::from(sel)),
        _ => Some((u32::from(sel) - 127) * 256),
    };
    let whole = read_chunks(chunk_size, rest, usize::MAX);
    let bytewise = read_chunks(chunk_size, rest, 1);
    assert_eq!(whole, bytewise, "byte-at-a-time input read differently");
}

/// What reading a chunk stream produced.
#[derive(Debug, PartialEq, Eq)]
struct ChunkRun {
    messages: Vec<RawMessage>,
    error: Option<ChunkError>,
    /// Input bytes consumed (whole chunks only).
    consumed: usize,
    buffered: usize,
}

fn read_chunks(chunk_size: Option<u32>, data: &[u8], step: usize) -> ChunkRun {
    let mut reader = ChunkReader::new(FUZZ_LIMITS);
    if let Some(size) = chunk_size
        && reader.set_chunk_size(size).is_err()
    {
        unreachable!("chunk sizes chosen above are valid"); // ok: fuzz harness; the panic is its finding
    }
    let mut run = ChunkRun {
        messages: Vec::new(),
        error: None,
        consumed: 0,
        buffered: 0,
    };
    let mut buf = BytesMut::new();
    let mut fed = 0;
    'feed: for piece in data.chunks(step.max(1)) {
        buf.extend_from_slice(piece);
        fed += piece.len();
        loop {
            match reader.read(&mut buf) {
                Ok(Some(msg)) => {
                    assert!(msg.payload.len() <= FUZZ_LIMITS.max_message_size as usize);
                    match Message::parse(&msg) {
                        Ok(Message::SetChunkSize(size)) => {
                            if let Err(e) = reader.set_chunk_size(size) {
                                run.error = Some(e);
                                break 'feed;
                            }
                        }
                        Ok(Message::Abort(csid)) => reader.abort(csid),
                        _ => {}
                    }
                    run.messages.push(msg);
                }
                Ok(None) => break,
                Err(e) => {
                    run.error = Some(e);
                    break 'feed;
                }
            }
            assert!(reader.buffered() <= FUZZ_LIMITS.max_buffered);
        }
    }
    run.consumed = fed - buf.len();
    run.buffered = reader.buffered();
    run
}

/// The AMF0 decoder on arbitrary bytes. Whatever decodes must encode to bytes that decode to
/// the same encoding again (compared as bytes, since NaN is not equal to itself), and a
/// failed decode must leave its input untouched.
pub fn amf0_decode(data: &[u8]) {
    let mut cur = data;
    if amf0::decode(&mut cur).is_err() {
        assert_eq!(cur.len(), data.len(), "failed decode consumed input");
    }
    let Ok(values) = amf0::decode_all(data) else {
        return;
    };
    let mut first = BytesMut::new();
    amf0::encode_all(&values, &mut first);
    let again = match amf0::decode_all(&first) {
        Ok(v) => v,
        Err(e) => panic!("re-encoded AMF0 does not decode: {e}"), // ok: fuzz harness; the panic is its finding
    };
    let mut second = BytesMut::new();
    amf0::encode_all(&again, &mut second);
    assert_eq!(first, second, "AMF0 encoding not stable");
}

/// Message parsing on an arbitrary (type id, body): the first byte is the type id. A message
/// that parses must encode to something that parses and encodes identically.
pub fn command_parse(data: &[u8]) {
    let Some((&ty, body)) = data.split_first() else {
        return;
    };
    let body = Bytes::copy_from_slice(body);
    let Ok(msg) = Message::parse_payload(ty, &body) else {
        return;
    };
    if ty == type_id::COMMAND_AMF0 {
        assert!(matches!(msg, Message::Command(_)));
    }
    let (t1, b1) = msg.encode();
    let again = match Message::parse_payload(t1, &b1) {
        Ok(m) => m,
        Err(e) => panic!("re-encoded message type {t1} does not parse: {e}"), // ok: fuzz harness; the panic is its finding
    };
    let (t2, b2) = again.encode();
    assert_eq!((t1, b1), (t2, b2), "message encoding not stable");
}

/// Read sizes the `session` target can deliver input in (bits 1–3 of its flags byte).
const STEPS: [usize; 8] = [usize::MAX, 1, 2, 7, 64, 128, 1000, 4096];

/// A whole server session on arbitrary bytes, as a driver would run it.
///
/// The first byte is a flags byte: bit 0 prepends a valid plain C0+C1+C2 so the rest reaches
/// the chunk stream; bits 1–3 pick the read size from [`STEPS`]; bits 4–7 the clock advance
/// after each read, in 500 ms units. Every publish and play request is accepted, every timer is
/// run, and everything the server writes is read back by a client-side chunk reader: it must be
/// a valid handshake followed by a valid chunk stream of parseable messages.
pub fn session(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut input = Vec::with_capacity(rest.len() + 1 + 2 * HANDSHAKE_SIZE);
    if flags & 1 != 0 {
        input.push(3);
        input.resize(1 + 2 * HANDSHAKE_SIZE, 0);
    }
    input.extend_from_slice(rest);
    let step = STEPS[usize::from(flags >> 1) & 7];
    let tick = Duration::from_millis(u64::from(flags >> 4) * 500);

    let t0 = Instant::now();
    let mut now = t0;
    let config = SessionConfig {
        reader_limits: FUZZ_LIMITS,
        ..SessionConfig::default()
    };
    let mut server = ServerSession::new(config, t0);
    let mut peer = PeerView::default();

    for (i, piece) in input.chunks(step).enumerate() {
        let result = server.feed(now, piece);
        drive(&mut server, &mut peer, now, i);
        if result.is_err() {
            return;
        }
        now += tick;
        if !run_timers(&mut server, &mut peer, now) {
            return;
        }
    }
    // Then let the clock run to each deadline in turn, as an idle connection would see.
    for i in 0..16u32 {
        let Some(at) = server.poll_timeout() else {
            return;
        };
        now = now.max(at);
        server.on_write_state(now, i.is_multiple_of(2), false);
        if !run_timers(&mut server, &mut peer, now) {
            return;
        }
    }
}

/// Runs due timers; false once one of them closes the connection.
fn run_timers(server: &mut ServerSession, peer: &mut PeerView, now: Instant) -> bool {
    let closed = server.handle_timeout(now).is_some();
    if !closed && let Some(next) = server.poll_timeout() {
        assert!(next > now, "a due timer was left armed");
    }
    peer.read(server);
    !closed
}

/// Answers events the way a permissive server would and checks the output.
fn drive(server: &mut ServerSession, peer: &mut PeerView, now: Instant, i: usize) {
    while let Some(event) = server.poll_event() {
        match event {
            Event::PublishRequested { .. } => server.accept_publish(now),
            Event::PlayRequested { name, .. } => server.accept_play(&name, i.is_multiple_of(2)),
            Event::Media(m) => assert!(m.payload.len() <= FUZZ_LIMITS.max_message_size as usize),
            _ => {}
        }
    }
    server.play_notify(i.is_multiple_of(3));
    server.on_write_state(now, server.has_output(), !i.is_multiple_of(4));
    peer.read(server);
}

/// The client's view of the server's output: S0+S1+S2, then a chunk stream.
#[derive(Debug)]
struct PeerView {
    buf: BytesMut,
    handshake_left: usize,
    reader: ChunkReader,
}

impl Default for PeerView {
    fn default() -> Self {
        Self {
            buf: BytesMut::new(),
            handshake_left: 1 + 2 * HANDSHAKE_SIZE,
            reader: ChunkReader::new(ReaderLimits::default()),
        }
    }
}

impl PeerView {
    fn read(&mut self, server: &mut ServerSession) {
        let Some(out) = server.take_output() else {
            return;
        };
        let mut out = &out[..];
        if self.handshake_left > 0 {
            if self.handshake_left == 1 + 2 * HANDSHAKE_SIZE {
                assert_eq!(out.first(), Some(&3), "S0 is not version 3");
            }
            let n = self.handshake_left.min(out.len());
            self.handshake_left -= n;
            out = &out[n..];
        }
        self.buf.extend_from_slice(out);
        loop {
            let msg = match self.reader.read(&mut self.buf) {
                Ok(Some(msg)) => msg,
                Ok(None) => break,
                Err(e) => panic!("server wrote an invalid chunk stream: {e}"), // ok: fuzz harness; the panic is its finding
            };
            match Message::parse(&msg) {
                Ok(Message::SetChunkSize(size)) => {
                    if let Err(e) = self.reader.set_chunk_size(size) {
                        panic!("server announced a bad chunk size: {e}"); // ok: fuzz harness; the panic is its finding
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("server wrote an unparseable message: {e}"), // ok: fuzz harness; the panic is its finding
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn corpus_root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus")
    }

    /// Replays every committed corpus file (seeds, regressions, crashes) on stable.
    #[test]
    fn replay_fuzz_corpus() {
        let mut total = 0;
        for (name, target) in TARGETS {
            let dir = corpus_root().join(name);
            let mut files: Vec<_> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display())) // ok: fuzz harness; the panic is its finding
                .map(|entry| entry.unwrap().path())
                .collect();
            files.sort();
            assert!(!files.is_empty(), "no corpus for {name}");
            for file in files {
                let data = std::fs::read(&file).unwrap();
                let outcome = std::panic::catch_unwind(|| target(&data));
                assert!(outcome.is_ok(), "{name}: {} fails", file.display());
                total += 1;
            }
        }
        assert!(total >= 10);
    }

    #[test]
    fn interleaved_audio_inside_split_video() {
        let mut data = vec![0u8];
        data.extend_from_slice(&[0x04, 0, 0, 0, 0, 0, 0xC8, 9, 1, 0, 0, 0]);
        data.extend_from_slice(&[0xAA; 128]);
        data.extend_from_slice(&[0x06, 0, 0, 0, 0, 0, 0x0A, 8, 1, 0, 0, 0]);
        data.extend_from_slice(&[0xBB; 10]);
        data.push(0xC4);
        data.extend_from_slice(&[0xAA; 72]);
        chunk_reader(&data);
        let run = read_chunks(None, &data[1..], usize::MAX);
        assert_eq!(run.error, None);
        let got: Vec<(u32, u8, usize)> = run
            .messages
            .iter()
            .map(|m| (m.header.csid, m.header.type_id, m.payload.len()))
            .collect();
        assert_eq!(got, [(6, 8, 10), (4, 9, 200)]);
        assert_eq!((run.consumed, run.buffered), (data.len() - 1, 0));
    }

    #[test]
    fn hostile_amf0_is_refused_quietly() {
        let deep: Vec<u8> = std::iter::repeat_n([0x03, 0x00, 0x01, b'a'], 5000)
            .flatten()
            .collect();
        for input in [
            &deep[..],
            &[0x0A, 0xFF, 0xFF, 0xFF, 0xFF],
            &[0x02, 0x00, 0x05, 0x61],
        ] {
            amf0_decode(input);
            assert!(amf0::decode_all(input).is_err());
            let mut cmd = vec![type_id::COMMAND_AMF0];
            cmd.extend_from_slice(input);
            command_parse(&cmd);
        }
    }

    #[test]
    fn session_entry_point_handles_empty_and_short_input() {
        for input in [&[][..], &[0], &[1], &[0xFF, 3], &[0x01, 0xC5, 1]] {
            session(input);
        }
    }
}
