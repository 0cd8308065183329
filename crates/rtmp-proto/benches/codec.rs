//! Throughput of the codecs every byte of a live stream goes through: the chunk writer (once
//! per media message on the server), the chunk reader (every byte a publisher sends) and AMF0
//! (commands and metadata). Reported in bytes per second so regressions show as MB/s.
//!
//! `cargo bench -p rtmp-proto -- --test` runs each once, as CI does, so the benches cannot rot.

use bytes::BytesMut;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rtmp_proto::amf0::{self, Value};
use rtmp_proto::chunk::{ChunkReader, ChunkWriter, MessageHeader, ReaderLimits};
use rtmp_proto::message::Command;
use std::hint::black_box;

/// Message sizes of a 600 kbps H.264 stream at 30 fps: inter frames of ~2 KB, keyframes of
/// ~40 KB, AAC frames of ~200 bytes.
const SIZES: [usize; 3] = [200, 2_000, 40_000];

fn header(i: u32, csid: u32) -> MessageHeader {
    MessageHeader {
        csid,
        timestamp: i * 33,
        type_id: 9,
        stream_id: 1,
    }
}

fn chunk_writer(c: &mut Criterion) {
    let mut group = c.benchmark_group("chunk_writer");
    for size in SIZES {
        let payload = vec![0x17u8; size];
        let mut writer = ChunkWriter::default();
        writer.set_chunk_size(4096);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &payload, |b, p| {
            let mut i = 0u32;
            b.iter(|| {
                i = i.wrapping_add(1);
                black_box(writer.encode(&header(i, 6), p))
            });
        });
    }
    group.finish();
}

/// A stream of `count` messages of `size` bytes, chunked at `chunk_size`, alternating two
/// chunk streams as audio and video do.
fn encoded_stream(size: usize, count: u32, chunk_size: u32) -> BytesMut {
    let mut writer = ChunkWriter::default();
    writer.set_chunk_size(chunk_size);
    let payload = vec![0xafu8; size];
    let mut out = BytesMut::new();
    for i in 0..count {
        writer.write(&header(i, 4 + i % 2), &payload, &mut out);
    }
    out
}

fn chunk_reader(c: &mut Criterion) {
    let mut group = c.benchmark_group("chunk_reader");
    for (chunk_size, size) in [(128, 2_000), (4096, 200), (4096, 2_000), (4096, 40_000)] {
        let input = encoded_stream(size, 64, chunk_size);
        group.throughput(Throughput::Bytes(input.len() as u64));
        let id = format!("{size}B@{chunk_size}");
        group.bench_with_input(BenchmarkId::from_parameter(id), &input, |b, input| {
            b.iter(|| {
                let mut reader = ChunkReader::new(ReaderLimits::default());
                // Infallible here: the chunk size is valid.
                let _ = reader.set_chunk_size(chunk_size);
                let mut buf = input.clone();
                let mut n = 0usize;
                while let Ok(Some(m)) = reader.read(&mut buf) {
                    n += m.payload.len();
                }
                black_box(n)
            });
        });
    }
    group.finish();
}

fn metadata() -> Value {
    Value::ecma_array([
        ("duration", Value::number(0)),
        ("width", Value::number(1280)),
        ("height", Value::number(720)),
        ("videodatarate", Value::number(600)),
        ("framerate", Value::number(30)),
        ("videocodecid", Value::number(7)),
        ("audiodatarate", Value::number(128)),
        ("audiosamplerate", Value::number(44100)),
        ("audiosamplesize", Value::number(16)),
        ("stereo", Value::Boolean(true)),
        ("audiocodecid", Value::number(10)),
        ("encoder", Value::string("Lavf60.16.100")),
        ("filesize", Value::number(0)),
    ])
}

fn connect_command() -> Command {
    Command::new(
        "connect",
        1.0,
        Value::object([
            ("app", Value::string("live")),
            ("type", Value::string("nonprivate")),
            ("flashVer", Value::string("FMLE/3.0 (compatible; FMSc/1.0)")),
            ("tcUrl", Value::string("rtmp://127.0.0.1:1935/live")),
            ("fpad", Value::Boolean(false)),
            ("capabilities", Value::number(15)),
            ("audioCodecs", Value::number(4071)),
            ("videoCodecs", Value::number(252)),
            ("videoFunction", Value::number(1)),
        ]),
        Vec::new(),
    )
}

fn amf0_codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("amf0");
    let values = vec![Value::string("onMetaData"), metadata()];
    let mut encoded = BytesMut::new();
    amf0::encode_all(&values, &mut encoded);
    group.throughput(Throughput::Bytes(encoded.len() as u64));
    group.bench_function("encode_metadata", |b| {
        let mut out = BytesMut::with_capacity(encoded.len());
        b.iter(|| {
            out.clear();
            amf0::encode_all(black_box(&values), &mut out);
            black_box(out.len())
        });
    });
    group.bench_function("decode_metadata", |b| {
        b.iter(|| black_box(amf0::decode_all(black_box(&encoded))));
    });

    let connect = connect_command();
    let body = connect.encode();
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("encode_connect", |b| {
        b.iter(|| black_box(black_box(&connect).encode()));
    });
    group.bench_function("decode_connect", |b| {
        b.iter(|| black_box(Command::decode(black_box(&body))));
    });
    group.finish();
}

criterion_group!(benches, chunk_writer, chunk_reader, amf0_codec);
criterion_main!(benches);
