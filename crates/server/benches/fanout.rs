//! The fan-out path from a publisher's media message to N players' output queues, in process:
//! chunk the message once, cache it for the GOP, put it on the stream's broadcast ring, and
//! have each player take it off and queue the shared `Bytes` for writing. Sockets are left
//! out on purpose: this isolates what the server adds per message per player.
//!
//! Throughput is in delivered messages (one message to one player counts once).

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lifeline_server::Config;
use lifeline_server::control::ConnControl;
use lifeline_server::registry::{PublishOutcome, Registry};
use lifeline_server::stream::StreamEvent;
use rtmp_proto::session::{Media, MediaKind};
use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Messages per iteration: well under the default ring (1024), so no player lags.
const BATCH: u32 = 256;

/// A 600 kbps stream at 30 fps plus AAC: ~2.5 KB video frames, 200-byte audio frames.
fn media(i: u32) -> Media {
    if i.is_multiple_of(3) {
        let mut body = vec![0u8; 200];
        body[0] = 0xaf;
        body[1] = 1;
        Media {
            kind: MediaKind::Audio,
            timestamp: i * 23,
            payload: Bytes::from(body),
        }
    } else {
        let mut body = vec![0u8; 2_500];
        body[0] = if i % 60 == 1 { 0x17 } else { 0x27 };
        body[1] = 1;
        Media {
            kind: MediaKind::Video,
            timestamp: i * 33,
            payload: Bytes::from(body),
        }
    }
}

fn fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout");
    let frames: Vec<Media> = (0..BATCH).map(media).collect();
    for players in [1usize, 100, 1000] {
        let registry = Arc::new(Registry::new(Arc::new(Config::default())));
        let control = Arc::new(ConnControl::new(
            1,
            "127.0.0.1:1".parse().unwrap_or_else(|_| unreachable!()),
            CancellationToken::new(),
        ));
        let PublishOutcome::Granted(publisher) =
            registry.publish("live", "bench", &control, Instant::now())
        else {
            panic!("a fresh registry refused the publisher");
        };
        let mut subs: Vec<_> = (0..players)
            .map(|_| {
                let (guard, sub) = registry.play("live", "bench");
                (
                    guard,
                    sub.rx,
                    VecDeque::<Bytes>::with_capacity(BATCH as usize),
                )
            })
            .collect();
        group.throughput(Throughput::Elements(u64::from(BATCH) * players as u64));
        group.bench_function(BenchmarkId::from_parameter(players), |b| {
            b.iter(|| {
                for m in &frames {
                    publisher.publish(m.clone());
                }
                let mut queued = 0usize;
                for (_, rx, out) in &mut subs {
                    while let Ok(ev) = rx.try_recv() {
                        if let StreamEvent::Frame(f) = ev {
                            queued += f.chunks.len();
                            out.push_back(f.chunks);
                        }
                    }
                    out.clear();
                }
                black_box(queued)
            });
        });
    }
    group.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
