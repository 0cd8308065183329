//! The client session's fuzz entry point: what a hostile or broken server can make a
//! [`ClientSession`] do.

use super::{FUZZ_LIMITS, STEPS};
use crate::chunk::{ChunkReader, ReaderLimits};
use crate::client::{ClientConfig, ClientEvent, ClientSession, MediaMode};
use crate::handshake::{HANDSHAKE_SIZE, HandshakeRng};
use crate::message::Message;
use crate::session::{MediaKind, ProtocolError};
use bytes::BytesMut;
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::time::Instant;

/// A client session fed arbitrary server bytes.
///
/// The first byte is a flags byte: bit 0 puts a valid plain S0+S1+S2 in front (so the rest
/// reaches the chunk stream), bit 1 selects [`MediaMode::HeadersOnly`], bit 2 plays (else
/// publishes), bits 3–5 pick the read size from [`STEPS`]. The input is fed whole and in reads
/// of that size: both must give the same events and the same error. Everything the client
/// writes must be C0+C1, then C2, then a valid chunk stream of parseable messages; every
/// deadline it arms must close the connection when it fires.
pub fn client_session(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut input = Vec::with_capacity(rest.len() + 1 + 2 * HANDSHAKE_SIZE);
    if flags & 1 != 0 {
        input.push(3);
        input.resize(1 + 2 * HANDSHAKE_SIZE, 0);
    }
    input.extend_from_slice(rest);
    let step = STEPS[usize::from(flags >> 3) & 7];
    let whole = run(flags, &input, usize::MAX);
    let split = run(flags, &input, step);
    assert_eq!(whole, split, "split server input read differently");
}

fn run(flags: u8, input: &[u8], step: usize) -> (Vec<ClientEvent>, Option<ProtocolError>) {
    let t0 = Instant::now();
    let mut config = ClientConfig::new("live", "rtmp://fuzz.invalid/live");
    config.reader_limits = FUZZ_LIMITS;
    if flags & 2 != 0 {
        config.media = MediaMode::HeadersOnly;
    }
    let rng = HandshakeRng::from_rng(StdRng::seed_from_u64(0));
    let mut client = ClientSession::with_rng(config, t0, rng);
    let started = if flags & 4 != 0 {
        client.play(t0, "cam")
    } else {
        client.publish(t0, "cam?key=k")
    };
    assert!(started.is_ok(), "a fresh session refused a request");
    let mut view = ServerView::default();
    let mut events = Vec::new();
    let mut error = None;
    for piece in input.chunks(step.max(1)) {
        let result = client.feed(t0, piece);
        while let Some(event) = client.poll_event() {
            if event == ClientEvent::Publishing {
                // A publisher sends as soon as it may; the output is checked below.
                let sent = client.send_media(MediaKind::Audio, 0, &[0xAF, 1, 2]);
                assert!(sent.is_ok(), "publishing but cannot send");
            }
            events.push(event);
        }
        view.read(&mut client);
        if let Err(e) = result {
            error = Some(e);
            break;
        }
    }
    // Every client deadline ends the connection when it fires, and is gone after.
    if let Some(at) = client.poll_timeout() {
        assert!(
            client.handle_timeout(at).is_some(),
            "a due deadline did nothing"
        );
    }
    (events, error)
}

/// The server's view of what the client writes: C0+C1, C2, then a chunk stream.
#[derive(Debug)]
struct ServerView {
    buf: BytesMut,
    handshake_left: usize,
    reader: ChunkReader,
}

impl Default for ServerView {
    fn default() -> Self {
        Self {
            buf: BytesMut::new(),
            handshake_left: 1 + 2 * HANDSHAKE_SIZE,
            reader: ChunkReader::new(ReaderLimits::default()),
        }
    }
}

impl ServerView {
    fn read(&mut self, client: &mut ClientSession) {
        while let Some(out) = client.take_output() {
            let mut out = &out[..];
            if self.handshake_left > 0 {
                if self.handshake_left == 1 + 2 * HANDSHAKE_SIZE {
                    assert_eq!(out.first(), Some(&3), "C0 is not version 3");
                }
                let n = self.handshake_left.min(out.len());
                self.handshake_left -= n;
                out = &out[n..];
            }
            self.buf.extend_from_slice(out);
        }
        loop {
            let msg = match self.reader.read(&mut self.buf) {
                Ok(Some(msg)) => msg,
                Ok(None) => return,
                Err(e) => panic!("client wrote an invalid chunk stream: {e}"), // ok: fuzz harness; the panic is its finding
            };
            match Message::parse(&msg) {
                Ok(Message::SetChunkSize(size)) => {
                    if let Err(e) = self.reader.set_chunk_size(size) {
                        panic!("client announced a bad chunk size: {e}"); // ok: fuzz harness; the panic is its finding
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("client wrote an unparseable message: {e}"), // ok: fuzz harness; the panic is its finding
            }
        }
    }
}
