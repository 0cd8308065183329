//! Chunk stream tests: writer → reader round trips, a compressing encoder for the reader's
//! fmt 1/2/3 paths, interleaving, split feeding, and hostile input.

use super::writer::{put_basic_header, put_u24};
use super::*;
use bytes::{BufMut, BytesMut};
use proptest::prelude::*;
use std::collections::{HashMap, VecDeque};

/// One message to send, with the chunks it was cut into.
#[derive(Debug, Clone)]
struct Encoded {
    header: MessageHeader,
    payload: Bytes,
    chunks: Vec<Vec<u8>>,
}

/// Cuts our writer's output for one message back into its chunks, so tests can interleave them.
fn writer_chunks(writer: &ChunkWriter, header: &MessageHeader, payload: &[u8]) -> Vec<Vec<u8>> {
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
struct Prev {
    timestamp: u32,
    delta: u32,
    length: usize,
    type_id: u8,
    stream_id: u32,
    extended: Option<u32>,
}

/// A test-only encoder that compresses headers like real encoders do: fmt 1 when only the
/// stream id is shared, fmt 2 when length and type repeat too, fmt 3 when the delta repeats.
#[derive(Debug)]
struct CompressingEncoder {
    chunk_size: usize,
    /// Whether fmt 3 chunks repeat the extended timestamp (ffmpeg) or not (some encoders).
    repeat_ext: bool,
    prev: HashMap<u32, Prev>,
    /// Set when a non-repeating stream is ambiguous for the peeking reader (payload starting
    /// with the extended timestamp bytes); such cases are skipped.
    ambiguous: bool,
    /// The fmt of every message start, so tests can check coverage.
    fmts: Vec<u8>,
}

impl CompressingEncoder {
    fn new(chunk_size: usize, repeat_ext: bool) -> Self {
        Self {
            chunk_size,
            repeat_ext,
            prev: HashMap::new(),
            ambiguous: false,
            fmts: Vec::new(),
        }
    }

    fn encode(
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
fn interleave(messages: &[Encoded], picks: &[usize]) -> Vec<u8> {
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
fn feed(reader: &mut ChunkReader, stream: &[u8], splits: &[usize]) -> Vec<RawMessage> {
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
fn check_per_csid(sent: &[Encoded], got: &[RawMessage]) {
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

/// A message to generate: timestamps advance per csid by `delta`, so deltas repeat often and
/// the compressing encoder gets to emit fmt 2 and fmt 3 starts.
#[derive(Debug, Clone)]
struct Spec {
    csid: u32,
    first_ts: u32,
    delta: u32,
    type_id: u8,
    keep_stream: bool,
    stream_id: u32,
    len: usize,
    fill: u8,
    compress: bool,
}

fn spec() -> impl Strategy<Value = Spec> {
    let boundary = prop_oneof![
        Just(0u32),
        Just(1000),
        Just(0xFF_FFFE),
        Just(0xFF_FFFF),
        Just(0x100_0000),
        Just(u32::MAX),
        Just(u32::MAX - 1),
        any::<u32>(),
    ];
    let delta = prop_oneof![
        Just(0u32),
        Just(20),
        Just(33),
        Just(0xFF_FFFE),
        Just(0xFF_FFFF),
        Just(0x100_0000),
        Just(u32::MAX),
    ];
    let len = prop_oneof![
        4 => Just(10usize),
        4 => Just(128),
        2 => Just(129),
        2 => Just(0),
        8 => 0..400usize,
        3 => 0..3000usize,
        1 => 60_000..80_000usize,
    ];
    (
        prop_oneof![
            2u32..=8,
            Just(63),
            Just(64),
            Just(319),
            Just(320),
            Just(65_599)
        ],
        boundary,
        delta,
        prop_oneof![Just(8u8), Just(9), any::<u8>()],
        any::<bool>(),
        prop_oneof![Just(0u32), Just(1), any::<u32>()],
        len,
        any::<u8>(),
        prop::bool::weighted(0.8),
    )
        .prop_map(
            |(csid, first_ts, delta, type_id, keep_stream, stream_id, len, fill, compress)| Spec {
                csid,
                first_ts,
                delta,
                type_id,
                keep_stream,
                stream_id,
                len,
                fill,
                compress,
            },
        )
}

/// Turns specs into concrete headers and payloads.
fn materialize(specs: &[Spec], constant_fill: Option<u8>) -> Vec<(MessageHeader, Bytes, bool)> {
    let mut last: HashMap<u32, (u32, u32)> = HashMap::new();
    specs
        .iter()
        .map(|s| {
            let (timestamp, stream_id) = match last.get(&s.csid) {
                None => (s.first_ts, s.stream_id),
                Some(&(ts, sid)) => (
                    ts.wrapping_add(s.delta),
                    if s.keep_stream { sid } else { s.stream_id },
                ),
            };
            last.insert(s.csid, (timestamp, stream_id));
            let payload: Vec<u8> = (0..s.len)
                .map(|i| constant_fill.unwrap_or_else(|| (i as u8).wrapping_mul(31) ^ s.fill))
                .collect();
            let header = MessageHeader {
                csid: s.csid,
                timestamp,
                type_id: s.type_id,
                stream_id,
            };
            (header, Bytes::from(payload), s.compress)
        })
        .collect()
}

fn chunk_size() -> impl Strategy<Value = u32> {
    prop_oneof![
        1u32..=16,
        17u32..=300,
        1u32..=70_000,
        Just(128),
        Just(4096),
        Just(MAX_CHUNK_SIZE)
    ]
}

fn splits() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        Just(vec![1usize]),
        prop::collection::vec(1usize..=8, 1..16),
        prop::collection::vec(1usize..=5000, 1..16),
        Just(vec![usize::MAX]),
    ]
}

fn big_limits() -> ReaderLimits {
    ReaderLimits {
        max_message_size: 1 << 20,
        max_chunk_streams: 64,
        max_buffered: 64 << 20,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn writer_reader_round_trip(
        specs in prop::collection::vec(spec(), 1..12),
        cs in chunk_size(),
        picks in prop::collection::vec(any::<usize>(), 1..32),
        splits in splits(),
    ) {
        let mut writer = ChunkWriter::default();
        writer.set_chunk_size(cs);
        let messages: Vec<Encoded> = materialize(&specs, None)
            .into_iter()
            .map(|(header, payload, _)| {
                let chunks = writer_chunks(&writer, &header, &payload);
                Encoded { header, payload, chunks }
            })
            .collect();
        let stream = interleave(&messages, &picks);
        let mut reader = ChunkReader::new(big_limits());
        reader.set_chunk_size(cs).unwrap();
        let got = feed(&mut reader, &stream, &splits);
        check_per_csid(&messages, &got);
        prop_assert_eq!(reader.bytes_read(), stream.len() as u64);
        prop_assert_eq!(reader.buffered(), 0);
    }

    #[test]
    fn compressed_headers_round_trip(
        specs in prop::collection::vec(spec(), 1..16),
        cs in chunk_size(),
        picks in prop::collection::vec(any::<usize>(), 1..32),
        splits in splits(),
        repeat_ext in any::<bool>(),
    ) {
        let mut enc = CompressingEncoder::new(cs as usize, repeat_ext);
        // Without repeated extended timestamps, constant payload bytes keep the reader's peek
        // unambiguous unless the extended value itself starts with that byte.
        let fill = if repeat_ext { None } else { Some(0xEE) };
        let messages: Vec<Encoded> = materialize(&specs, fill)
            .into_iter()
            .map(|(header, payload, compress)| {
                let chunks = enc.encode(&header, &payload, compress);
                Encoded { header, payload, chunks }
            })
            .collect();
        // Interleaving only across csids keeps each csid's chunk order, which is all the
        // header compression relies on.
        let stream = interleave(&messages, &picks);
        if !enc.ambiguous {
            let mut reader = ChunkReader::new(big_limits());
            reader.set_chunk_size(cs).unwrap();
            let got = feed(&mut reader, &stream, &splits);
            check_per_csid(&messages, &got);
        }
    }

    #[test]
    fn arbitrary_input_never_panics(
        data in prop::collection::vec(any::<u8>(), 0..2048),
        cs in prop_oneof![Just(1u32), Just(128), Just(MAX_CHUNK_SIZE)],
        splits in splits(),
    ) {
        let limits = ReaderLimits { max_message_size: 4096, max_chunk_streams: 8, max_buffered: 8192 };
        let mut reader = ChunkReader::new(limits);
        reader.set_chunk_size(cs).unwrap();
        let mut buf = BytesMut::new();
        let mut pos = 0;
        let mut i = 0;
        'outer: while pos < data.len() {
            let n = splits[i % splits.len()].max(1);
            i += 1;
            let end = data.len().min(pos.saturating_add(n));
            buf.extend_from_slice(&data[pos..end]);
            pos = end;
            loop {
                match reader.read(&mut buf) {
                    Ok(Some(m)) => prop_assert!(m.payload.len() <= 4096),
                    Ok(None) => break,
                    Err(_) => break 'outer,
                }
            }
            prop_assert!(reader.buffered() <= 8192);
        }
    }
}

fn regression_input() -> Vec<u8> {
    let mut v = vec![0x04, 0, 0, 0, 0, 0, 0xc8, 0x09, 1, 0, 0, 0];
    v.extend([0xAA; 128]);
    v.extend([0x06, 0, 0, 0, 0, 0, 0x0a, 0x08, 1, 0, 0, 0]);
    v.extend([0xBB; 10]);
    v.push(0xc4);
    v.extend([0xAA; 72]);
    v
}

fn check_regression(got: &[RawMessage]) {
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0].header,
        MessageHeader {
            csid: 6,
            timestamp: 0,
            type_id: 8,
            stream_id: 1
        }
    );
    assert_eq!(&got[0].payload[..], &[0xBB; 10][..]);
    assert_eq!(
        got[1].header,
        MessageHeader {
            csid: 4,
            timestamp: 0,
            type_id: 9,
            stream_id: 1
        }
    );
    assert_eq!(&got[1].payload[..], &[0xAA; 200][..]);
}

#[test]
fn audio_inside_video_whole_buffer() {
    let input = regression_input();
    let mut reader = ChunkReader::new(ReaderLimits::default());
    let got = feed(&mut reader, &input, &[usize::MAX]);
    check_regression(&got);
    assert_eq!(reader.bytes_read(), input.len() as u64);
}

#[test]
fn audio_inside_video_byte_at_a_time() {
    let input = regression_input();
    let mut reader = ChunkReader::new(ReaderLimits::default());
    check_regression(&feed(&mut reader, &input, &[1]));
}

#[test]
fn single_chunk_payload_is_zero_copy() {
    let writer = ChunkWriter::default();
    let header = MessageHeader {
        csid: 4,
        timestamp: 5,
        type_id: 9,
        stream_id: 1,
    };
    let mut buf = BytesMut::from(&writer.encode(&header, &[7; 100])[..]);
    let base = buf.as_ptr();
    let mut reader = ChunkReader::new(ReaderLimits::default());
    let m = reader.read(&mut buf).unwrap().unwrap();
    assert_eq!(m.payload.as_ptr(), base.wrapping_add(12));
    assert_eq!(m.header, header);
}

#[test]
fn chunk_size_extremes() {
    for cs in [1, MAX_CHUNK_SIZE] {
        let mut writer = ChunkWriter::default();
        writer.set_chunk_size(cs);
        let mut reader = ChunkReader::new(ReaderLimits::default());
        reader.set_chunk_size(cs).unwrap();
        let header = MessageHeader {
            csid: 3,
            timestamp: 0x100_0000,
            type_id: 20,
            stream_id: 0,
        };
        let payload: Vec<u8> = (0..1000).map(|i| i as u8).collect();
        let mut buf = BytesMut::from(&writer.encode(&header, &payload)[..]);
        let m = reader.read(&mut buf).unwrap().unwrap();
        assert_eq!(m.header, header);
        assert_eq!(&m.payload[..], &payload[..]);
        assert!(buf.is_empty());
    }
    let mut reader = ChunkReader::new(ReaderLimits::default());
    assert_eq!(
        reader.set_chunk_size(0),
        Err(ChunkError::InvalidChunkSize(0))
    );
    assert_eq!(
        reader.set_chunk_size(0x8000_0000),
        Err(ChunkError::InvalidChunkSize(0x8000_0000))
    );
    assert_eq!(reader.chunk_size(), DEFAULT_CHUNK_SIZE);
}

#[test]
fn oversized_message_rejected_at_header_time() {
    let mut reader = ChunkReader::new(ReaderLimits::default());
    // 16 MiB − 1, the largest length the field can hold; only the header is buffered.
    let mut buf = BytesMut::from(&[0x04, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0x09, 1, 0, 0, 0][..]);
    assert_eq!(
        reader.read(&mut buf),
        Err(ChunkError::MessageTooLarge {
            len: 0xFF_FFFF,
            max: 8 << 20
        })
    );
}

#[test]
fn large_announced_message_buffers_only_what_arrived() {
    let mut reader = ChunkReader::new(ReaderLimits::default());
    let writer = ChunkWriter::default();
    let header = MessageHeader {
        csid: 4,
        timestamp: 0,
        type_id: 9,
        stream_id: 1,
    };
    let encoded = writer.encode(&header, &vec![1; 8 << 20]);
    let mut buf = BytesMut::from(&encoded[..12 + 128 + 1 + 64]);
    assert_eq!(reader.read(&mut buf), Ok(None));
    assert_eq!(reader.buffered(), 128);
    assert_eq!(
        buf.len(),
        65,
        "the incomplete second chunk stays in the input"
    );
}

#[test]
fn too_many_chunk_streams() {
    let writer = ChunkWriter::default();
    let mut buf = BytesMut::new();
    for csid in 2..10_002 {
        let header = MessageHeader {
            csid,
            timestamp: 0,
            type_id: 8,
            stream_id: 1,
        };
        writer.write(&header, &[1, 2, 3], &mut buf);
    }
    let mut reader = ChunkReader::new(ReaderLimits::default());
    let mut ok = 0;
    let err = loop {
        match reader.read(&mut buf) {
            Ok(Some(_)) => ok += 1,
            Ok(None) => panic!("limit never hit"),
            Err(e) => break e,
        }
    };
    assert_eq!(ok, 64);
    assert_eq!(err, ChunkError::TooManyChunkStreams(64));
}

#[test]
fn too_much_buffered() {
    let limits = ReaderLimits {
        max_message_size: 1 << 20,
        max_chunk_streams: 64,
        max_buffered: 1000,
    };
    let mut reader = ChunkReader::new(limits);
    let mut writer = ChunkWriter::default();
    writer.set_chunk_size(600);
    reader.set_chunk_size(600).unwrap();
    let a = writer_chunks(
        &writer,
        &MessageHeader {
            csid: 4,
            timestamp: 0,
            type_id: 9,
            stream_id: 1,
        },
        &[0; 2000],
    );
    let b = writer_chunks(
        &writer,
        &MessageHeader {
            csid: 5,
            timestamp: 0,
            type_id: 9,
            stream_id: 1,
        },
        &[0; 2000],
    );
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&a[0]);
    buf.extend_from_slice(&b[0]);
    assert_eq!(
        reader.read(&mut buf),
        Err(ChunkError::TooMuchBuffered(1000))
    );
}

#[test]
fn continuation_without_header_rejected() {
    for first in [0xC3u8, 0x83, 0x43] {
        let mut reader = ChunkReader::new(ReaderLimits::default());
        let mut buf = BytesMut::from(&[first, 0, 0, 0, 0, 0, 1, 8, 0, 0, 0, 0][..]);
        assert_eq!(reader.read(&mut buf), Err(ChunkError::NoPreviousHeader(3)));
    }
}

#[test]
fn abort_drops_partial_message() {
    let mut reader = ChunkReader::new(ReaderLimits::default());
    let writer = ChunkWriter::default();
    let h1 = MessageHeader {
        csid: 4,
        timestamp: 10,
        type_id: 9,
        stream_id: 1,
    };
    let first = writer_chunks(&writer, &h1, &[1; 300]).remove(0);
    let mut buf = BytesMut::from(&first[..]);
    assert_eq!(reader.read(&mut buf), Ok(None));
    assert_eq!(reader.buffered(), 128);
    reader.abort(4);
    assert_eq!(reader.buffered(), 0);
    // A fmt 3 chunk now starts a new message with the previous header (length 300), delta 10.
    let mut c = vec![0xC4];
    c.extend([2; 128]);
    buf.extend_from_slice(&c);
    assert_eq!(reader.read(&mut buf), Ok(None));
    let h2 = MessageHeader {
        csid: 4,
        timestamp: 20,
        type_id: 8,
        stream_id: 1,
    };
    buf.extend_from_slice(&writer.encode(&h2, &[3; 5]));
    let m = reader.read(&mut buf).unwrap().unwrap();
    assert_eq!(m.header, h2);
    assert_eq!(reader.buffered(), 0);
}

#[test]
fn extended_timestamp_on_continuations_repeated_or_not() {
    let ts = 0x0123_4567u32;
    let mut head = vec![0x04, 0xFF, 0xFF, 0xFF, 0, 0, 200, 9, 1, 0, 0, 0];
    head.extend(ts.to_be_bytes());
    head.extend([0xAA; 128]);
    for repeat in [true, false] {
        let mut input = head.clone();
        input.push(0xC4);
        if repeat {
            input.extend(ts.to_be_bytes());
        }
        input.extend([0xAA; 72]);
        for split in [1, usize::MAX] {
            let mut reader = ChunkReader::new(ReaderLimits::default());
            let got = feed(&mut reader, &input, &[split]);
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].header.timestamp, ts);
            assert_eq!(&got[0].payload[..], &[0xAA; 200][..]);
        }
    }
}

#[test]
fn fmt3_new_message_after_fmt0_repeats_timestamp_as_delta() {
    let mut input = vec![0x03, 0, 0, 100, 0, 0, 2, 8, 1, 0, 0, 0, 1, 2];
    input.extend([0xC3, 3, 4]);
    let mut reader = ChunkReader::new(ReaderLimits::default());
    let got = feed(&mut reader, &input, &[usize::MAX]);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].header.timestamp, 100);
    assert_eq!(got[1].header.timestamp, 200);
    assert_eq!(&got[1].payload[..], &[3, 4]);
}

#[test]
fn basic_header_forms() {
    for csid in [2, 63, 64, 319, 320, 65_599] {
        let writer = ChunkWriter::default();
        let header = MessageHeader {
            csid,
            timestamp: 1,
            type_id: 8,
            stream_id: 0,
        };
        let mut buf = BytesMut::from(&writer.encode(&header, &[9; 300])[..]);
        let mut reader = ChunkReader::new(ReaderLimits::default());
        let m = reader.read(&mut buf).unwrap().unwrap();
        assert_eq!(m.header, header);
        assert_eq!(m.payload.len(), 300);
    }
}

#[test]
fn zero_length_message() {
    let writer = ChunkWriter::default();
    let header = MessageHeader {
        csid: 2,
        timestamp: 0,
        type_id: 4,
        stream_id: 0,
    };
    let mut buf = BytesMut::from(&writer.encode(&header, &[])[..]);
    let mut reader = ChunkReader::new(ReaderLimits::default());
    let m = reader.read(&mut buf).unwrap().unwrap();
    assert!(m.payload.is_empty());
    assert!(buf.is_empty());
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
