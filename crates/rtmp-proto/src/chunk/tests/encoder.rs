//! A reference encoder for the chunk tests: cuts our writer's output back into chunks, and
//! compresses headers (fmt 1/2/3) the way real encoders do, so the reader's every path is fed;
//! plus the helpers that interleave, split-feed and check what came out.

use super::super::writer::{put_basic_header, put_u24};
use super::super::*;
use bytes::{BufMut, BytesMut};
use std::collections::{HashMap, VecDeque};

use super::big_limits;

/// One message to send, with the chunks it was cut into.
#[derive(Debug, Clone)]
pub(super) struct Encoded {
    pub(super) header: MessageHeader,
    pub(super) payload: Bytes,
    pub(super) chunks: Vec<Vec<u8>>,
}

/// Cuts our writer's output for one message back into its chunks, so tests can interleave them.
pub(super) fn writer_chunks(
    writer: &ChunkWriter,
    header: &MessageHeader,
    payload: &[u8],
) -> Vec<Vec<u8>> {
    let encoded = writer.encode(header, payload);
    assert_eq!(encoded.len(), writer.encoded_len(header, payload.len()));
    let basic = match header.csid {
        0..=63 => 1,
        64..=319 => 2,
        _ => 3,
    };
    let ext = if header.timestamp >= EXTENDED_TIMESTAMP {
        4
    } else {
        0
    };
    let cs = writer.chunk_size() as usize;
    let mut chunks = Vec::new();
    let mut pos = 0;
    let mut remaining = payload.len();
    let mut first = true;
    loop {
        let part = remaining.min(cs);
        let len = basic + if first { 11 } else { 0 } + ext + part;
        chunks.push(encoded[pos..pos + len].to_vec());
        pos += len;
        remaining -= part;
        first = false;
        if remaining == 0 {
            break;
        }
    }
    assert_eq!(pos, encoded.len());
    chunks
}

/// What the test-only compressing encoder remembers per chunk stream (mirrors the reader).
#[derive(Debug, Clone, Copy)]
pub(super) struct Prev {
    pub(super) timestamp: u32,
    pub(super) delta: u32,
    pub(super) length: usize,
    pub(super) type_id: u8,
    pub(super) stream_id: u32,
    pub(super) extended: Option<u32>,
}

/// A test-only encoder that compresses headers like real encoders do: fmt 1 when only the
/// stream id is shared, fmt 2 when length and type repeat too, fmt 3 when the delta repeats.
#[derive(Debug)]
pub(super) struct CompressingEncoder {
    pub(super) chunk_size: usize,
    /// Whether fmt 3 chunks repeat the extended timestamp (ffmpeg) or not (some encoders).
    pub(super) repeat_ext: bool,
    pub(super) prev: HashMap<u32, Prev>,
    /// Set when a non-repeating stream is ambiguous for the peeking reader (payload starting
    /// with the extended timestamp bytes); such cases are skipped.
    pub(super) ambiguous: bool,
    /// The fmt of every message start, so tests can check coverage.
    pub(super) fmts: Vec<u8>,
}

impl CompressingEncoder {
    pub(super) fn new(chunk_size: usize, repeat_ext: bool) -> Self {
        Self {
            chunk_size,
            repeat_ext,
            prev: HashMap::new(),
            ambiguous: false,
            fmts: Vec::new(),
        }
    }

    pub(super) fn encode(
        &mut self,
        header: &MessageHeader,
        payload: &[u8],
        allow_compress: bool,
    ) -> Vec<Vec<u8>> {
        let prev = self
            .prev
            .get(&header.csid)
            .copied()
            .filter(|_| allow_compress);
        let fmt = match prev {
            None => 0,
            Some(p) if p.stream_id != header.stream_id => 0,
            Some(p) => {
                let delta = header.timestamp.wrapping_sub(p.timestamp);
                if p.length != payload.len() || p.type_id != header.type_id {
                    1
                } else if delta == p.delta {
                    3
                } else {
                    2
                }
            }
        };
        self.fmts.push(fmt);
        let mut next = Prev {
            timestamp: header.timestamp,
            delta: header.timestamp,
            length: payload.len(),
            type_id: header.type_id,
            stream_id: header.stream_id,
            extended: None,
        };
        let mut first = BytesMut::new();
        put_basic_header(&mut first, fmt, header.csid);
        let field_value = match (fmt, prev) {
            (0, _) | (_, None) => header.timestamp,
            (_, Some(p)) => header.timestamp.wrapping_sub(p.timestamp),
        };
        if fmt < 3 {
            let ext = field_value >= EXTENDED_TIMESTAMP;
            put_u24(
                &mut first,
                if ext { EXTENDED_TIMESTAMP } else { field_value },
            );
            if fmt < 2 {
                put_u24(&mut first, payload.len() as u32);
                first.put_u8(header.type_id);
            }
            if fmt == 0 {
                first.put_u32_le(header.stream_id);
            }
            if ext {
                first.put_u32(field_value);
            }
            next.delta = field_value;
            next.extended = ext.then_some(field_value);
        } else if let Some(p) = prev {
            next.delta = p.delta;
            next.extended = p.extended;
            if let Some(v) = p.extended {
                if self.repeat_ext {
                    first.put_u32(v);
                } else {
                    self.note_ambiguity(v, payload);
                }
            }
        }
        self.prev.insert(header.csid, next);

        let mut parts = payload.chunks(self.chunk_size);
        first.put_slice(parts.next().unwrap_or_default());
        let mut chunks = vec![first.to_vec()];
        for part in parts {
            let mut c = BytesMut::new();
            put_basic_header(&mut c, 3, header.csid);
            if let Some(v) = next.extended {
                if self.repeat_ext {
                    c.put_u32(v);
                } else {
                    self.note_ambiguity(v, part);
                }
            }
            c.put_slice(part);
            chunks.push(c.to_vec());
        }
        chunks
    }

    fn note_ambiguity(&mut self, ext: u32, payload: &[u8]) {
        match payload.first() {
            Some(&b) if b != ext.to_be_bytes()[0] => {}
            _ => self.ambiguous = true,
        }
    }
}

/// Interleaves the chunk lists at chunk boundaries (messages on one csid stay in order).
pub(super) fn interleave(messages: &[Encoded], picks: &[usize]) -> Vec<u8> {
    let mut queues: Vec<(u32, VecDeque<Vec<u8>>)> = Vec::new();
    for m in messages {
        let q = match queues.iter().position(|(c, _)| *c == m.header.csid) {
            Some(i) => &mut queues[i].1,
            None => {
                queues.push((m.header.csid, VecDeque::new()));
                &mut queues.last_mut().unwrap().1
            }
        };
        q.extend(m.chunks.iter().cloned());
    }
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        queues.retain(|(_, q)| !q.is_empty());
        if queues.is_empty() {
            return out;
        }
        let pick = picks.get(i % picks.len().max(1)).copied().unwrap_or(0) % queues.len();
        i += 1;
        out.extend(queues[pick].1.pop_front().unwrap());
    }
}

/// Feeds `stream` to a reader in pieces of the given sizes, collecting every message.
pub(super) fn feed(reader: &mut ChunkReader, stream: &[u8], splits: &[usize]) -> Vec<RawMessage> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < stream.len() {
        let n = splits
            .get(i % splits.len().max(1))
            .copied()
            .unwrap_or(usize::MAX)
            .max(1);
        i += 1;
        let end = stream.len().min(pos.saturating_add(n));
        buf.extend_from_slice(&stream[pos..end]);
        pos = end;
        while let Some(m) = reader.read(&mut buf).unwrap() {
            out.push(m);
        }
    }
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    out
}

/// Checks that each chunk stream delivered its messages in order and intact.
pub(super) fn check_per_csid(sent: &[Encoded], got: &[RawMessage]) {
    assert_eq!(sent.len(), got.len());
    let mut by_csid: HashMap<u32, VecDeque<&Encoded>> = HashMap::new();
    for m in sent {
        by_csid.entry(m.header.csid).or_default().push_back(m);
    }
    for g in got {
        let want = by_csid
            .get_mut(&g.header.csid)
            .and_then(|q| q.pop_front())
            .unwrap();
        assert_eq!(g.header, want.header);
        assert_eq!(g.payload, want.payload);
    }
}

#[test]
fn compressing_encoder_covers_every_fmt() {
    for repeat_ext in [true, false] {
        for cs in [1usize, 7, 128] {
            let mut enc = CompressingEncoder::new(cs, repeat_ext);
            let mut sent = Vec::new();
            // (timestamp, length, type): fmt 0, 2 (delta 20 ≠ 0), 3, 1 (length changes), 3,
            // then extended deltas: 2, 3, and extended absolute after a stream id change.
            let plan: [(u32, usize, u8, u32); 9] = [
                (0, 10, 9, 1),
                (20, 10, 9, 1),
                (40, 10, 9, 1),
                (60, 300, 9, 1),
                (80, 300, 9, 1),
                (0x0100_0050, 300, 9, 1),
                (0x0200_0050, 300, 9, 1),
                (0x0300_0050, 300, 9, 1),
                (0x0300_0050, 300, 9, 2),
            ];
            for (timestamp, len, type_id, stream_id) in plan {
                let header = MessageHeader {
                    csid: 5,
                    timestamp,
                    type_id,
                    stream_id,
                };
                let payload = Bytes::from(vec![0xEE; len]);
                let chunks = enc.encode(&header, &payload, true);
                sent.push(Encoded {
                    header,
                    payload,
                    chunks,
                });
            }
            assert_eq!(enc.fmts, [0, 2, 3, 1, 3, 2, 3, 3, 0]);
            assert!(!enc.ambiguous);
            let stream = interleave(&sent, &[0]);
            for split in [1, 3, usize::MAX] {
                let mut reader = ChunkReader::new(big_limits());
                reader.set_chunk_size(cs as u32).unwrap();
                check_per_csid(&sent, &feed(&mut reader, &stream, &[split]));
            }
        }
    }
}
