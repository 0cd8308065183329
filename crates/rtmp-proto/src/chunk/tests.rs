//! Chunk stream tests: writer → reader round trips, compressed headers (through the reference
//! encoder in `tests/encoder.rs`), interleaving, split feeding, and hostile input.

use super::*;
use bytes::BytesMut;
use proptest::prelude::*;
use std::collections::HashMap;

mod encoder;
mod pinning;
mod skim;
use encoder::*;

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
