//! What a player's client session costs per byte received: the load generator runs thousands
//! of them on one thread, so this bounds how many players one core can measure. Compares the
//! chunk reader reassembling every message (`read`), passing over media bodies (`skim`), and
//! a whole playing `ClientSession` in both media modes, fed in reads of a typical size.
//!
//! `cargo bench -p rtmp-proto --bench client -- --test` runs each once, as CI does.

use bytes::BytesMut;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rtmp_proto::chunk::{ChunkReader, ChunkWriter, MessageHeader, ReaderLimits};
use rtmp_proto::client::{ClientConfig, ClientSession, ClientState, MediaMode};
use rtmp_proto::message::type_id;
use rtmp_proto::session::{Event, ServerSession, SessionConfig};
use std::hint::black_box;
use std::time::Instant;

/// Bytes per socket read: a server that merges writes hands a player several messages at once.
const READ: usize = 8 * 1024;

/// Ten seconds of a 600 kbps stream as a server sends it to a player at chunk size 4096:
/// video at 30 fps (a 40 KB keyframe every 2 s, 2 KB frames between), one AAC frame per
/// video frame. Starts with the Set Chunk Size that announces 4096.
fn stream() -> Vec<u8> {
    let mut writer = ChunkWriter::default();
    let mut out = BytesMut::new();
    let control = MessageHeader {
        csid: 2,
        timestamp: 0,
        type_id: type_id::SET_CHUNK_SIZE,
        stream_id: 0,
    };
    writer.write(&control, &4096u32.to_be_bytes(), &mut out);
    writer.set_chunk_size(4096);
    for i in 0..300u32 {
        let len = if i % 60 == 0 { 40_000 } else { 2_000 };
        let video = MessageHeader {
            csid: 7,
            timestamp: i * 33,
            type_id: type_id::VIDEO,
            stream_id: 1,
        };
        writer.write(&video, &vec![0x17; len], &mut out);
        let audio = MessageHeader {
            csid: 6,
            timestamp: i * 33,
            type_id: type_id::AUDIO,
            stream_id: 1,
        };
        writer.write(&audio, &[0xAF; 200], &mut out);
    }
    out.to_vec()
}

/// A client session playing `cam` from an in-memory server session.
fn playing(mode: MediaMode) -> ClientSession {
    let now = Instant::now();
    let mut config = ClientConfig::new("live", "rtmp://127.0.0.1/live");
    config.media = mode;
    config.timeouts.media_idle = None;
    let mut client = ClientSession::new(config, now);
    let mut server = ServerSession::new(SessionConfig::default(), now);
    let _ = client.play(now, "cam");
    while !matches!(client.state(), ClientState::Playing(_)) {
        if let Some(out) = client.take_output() {
            let _ = server.feed(now, &out);
        }
        while let Some(event) = server.poll_event() {
            if let Event::PlayRequested { name, .. } = event {
                server.accept_play(&name, true);
            }
        }
        if let Some(out) = server.take_output() {
            let _ = client.feed(now, &out);
        }
        while client.poll_event().is_some() {}
    }
    client
}

fn player(c: &mut Criterion) {
    let input = stream();
    let mut group = c.benchmark_group("player");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("chunk_reader_read", |b| {
        b.iter(|| {
            let mut reader = ChunkReader::new(ReaderLimits::default());
            let mut buf = BytesMut::new();
            let mut n = 0usize;
            for piece in input.chunks(READ) {
                buf.extend_from_slice(piece);
                while let Ok(Some(m)) = reader.read(&mut buf) {
                    if let Ok(rtmp_proto::message::Message::SetChunkSize(size)) =
                        rtmp_proto::message::Message::parse(&m)
                    {
                        let _ = reader.set_chunk_size(size);
                    }
                    n += m.payload.len();
                }
            }
            black_box(n)
        });
    });
    group.bench_function("chunk_reader_skim", |b| {
        let media = |t| t == type_id::AUDIO || t == type_id::VIDEO;
        b.iter(|| {
            let mut reader = ChunkReader::new(ReaderLimits::default());
            let _ = reader.set_chunk_size(4096);
            let mut n = 0usize;
            let mut used = 0;
            while let Ok((step, Some(_))) = reader.skim(&input[used..], media) {
                used += step;
                n += 1;
            }
            black_box(n)
        });
    });
    for mode in [MediaMode::Full, MediaMode::HeadersOnly] {
        group.bench_with_input(
            BenchmarkId::new("session", format!("{mode:?}")),
            &mode,
            |b, &mode| {
                let now = Instant::now();
                b.iter_batched(
                    || playing(mode),
                    |mut client| {
                        let mut n = 0usize;
                        for piece in input.chunks(READ) {
                            let _ = client.feed(now, piece);
                            while let Some(event) = client.poll_event() {
                                black_box(&event);
                                n += 1;
                            }
                        }
                        black_box(n)
                    },
                    criterion::BatchSize::LargeInput,
                );
            },
        );
    }
    group.finish();
}

criterion_group!(benches, player);
criterion_main!(benches);
