//! The fan-out writer on an explicit clock, against scripted sockets: merged writes straight
//! from the shared log, full sockets, the skip to a keyframe, the close after repeated lags, a
//! publisher change answered by the connection before anything after it, late attachers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::writer::{Target, Writer, WriterConfig};
use super::{LinkEnd, OutQueue, Seated, Shards};
use crate::config::{Config, Merging};
use crate::control::ConnControl;
use crate::metrics::Metrics;
use crate::registry::{PublishOutcome, PublisherGuard, Registry};
use bytes::Bytes;
use rtmp_proto::session::{Media, MediaKind};
use std::io::{self, IoSlice};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const MS: Duration = Duration::from_millis(1);

/// A socket that takes at most `room` bytes (then WouldBlock) and keeps what it took.
#[derive(Debug, Default)]
struct Sock {
    state: Mutex<(Vec<u8>, usize, usize)>, // (bytes taken, room, writes)
}

impl Sock {
    fn open() -> Arc<Self> {
        let s = Self::default();
        s.state.lock().unwrap().1 = usize::MAX;
        Arc::new(s)
    }
    fn set_room(&self, room: usize) {
        self.state.lock().unwrap().1 = room;
    }
    fn writes(&self) -> usize {
        self.state.lock().unwrap().2
    }
    /// The marker numbers of the test frames received so far, in order (and forgets them).
    fn take_marks(&self) -> Vec<u32> {
        let bytes = std::mem::take(&mut self.state.lock().unwrap().0);
        marks(&bytes)
    }
}

impl Target for Sock {
    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut s = self.state.lock().unwrap();
        if s.1 == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        s.2 += 1;
        let mut n = 0;
        for b in bufs {
            let take = b.len().min(s.1);
            s.0.extend_from_slice(&b[..take]);
            s.1 -= take;
            n += take;
            if take < b.len() {
                break;
            }
        }
        Ok(n)
    }
}

/// Test frames carry `0xAB 0xCD <u32 mark>` in their payload.
fn marks(bytes: &[u8]) -> Vec<u32> {
    bytes
        .windows(6)
        .filter(|w| w[0] == 0xAB && w[1] == 0xCD)
        .map(|w| u32::from_be_bytes([w[2], w[3], w[4], w[5]]))
        .collect()
}

fn video(mark: u32, key: bool) -> Media {
    let mut body = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0, 0xAB, 0xCD];
    body.extend_from_slice(&mark.to_be_bytes());
    Media {
        kind: MediaKind::Video,
        timestamp: mark,
        payload: Bytes::from(body),
    }
}

struct Rig {
    registry: Arc<Registry>,
    shards: Shards,
    writer: Writer,
    publisher: Option<PublisherGuard>,
    t0: Instant,
    next_id: u64,
}

impl Rig {
    fn new(config: Config, merging: Merging) -> Self {
        let config = Arc::new(config);
        let metrics = Arc::new(Metrics::new());
        let registry = Arc::new(Registry::with_metrics(config.clone(), metrics.clone()));
        let wc = WriterConfig {
            log_max: config.play.queue_messages,
            max_lag_drops: config.play.max_lag_drops,
        };
        let shards = Shards::new(1, wc, merging, metrics);
        let t0 = Instant::now();
        let writer = shards.writer(shards.inbox(0), t0);
        let control = Arc::new(ConnControl::new(
            999,
            "192.0.2.200:1".parse().unwrap(),
            CancellationToken::new(),
        ));
        let PublishOutcome::Granted(publisher) = registry.publish("live", "cam", &control, t0)
        else {
            panic!("refused");
        };
        Self {
            registry,
            shards,
            writer,
            publisher: Some(publisher),
            t0,
            next_id: 1,
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + MS * u32::try_from(ms).unwrap()
    }

    /// A viewer of `live/cam` handed to the writer at `ms`, its cached start queued first.
    fn viewer(&mut self, sock: &Arc<Sock>, ms: u64) -> Seated {
        self.next_id += 1;
        let control = Arc::new(ConnControl::new(
            self.next_id,
            "192.0.2.1:5000".parse().unwrap(),
            CancellationToken::new(),
        ));
        let (guard, sub) = self.registry.play("live", "cam");
        let mut start = OutQueue::default();
        for f in &sub.initial {
            start.push(f.chunks.clone());
        }
        let target: Arc<dyn Target> = sock.clone();
        self.shards.seat(
            control,
            target,
            guard,
            sub.rx,
            sub.next_seq,
            start,
            false,
            self.at(ms),
        )
    }

    fn publish(&self, media: Media) {
        self.publisher.as_ref().unwrap().publish(media);
    }

    fn run(&mut self, ms: u64) -> Option<Instant> {
        self.writer.run(self.at(ms))
    }
}

fn fixed(ms: u64) -> Merging {
    Merging::Fixed(MS * u32::try_from(ms).unwrap())
}

#[test]
fn one_write_per_window_for_everything_since_the_viewers_place() {
    let mut rig = Rig::new(Config::default(), fixed(100));
    rig.publish(video(1, true));
    let (a, b) = (Sock::open(), Sock::open());
    let _va = rig.viewer(&a, 0);
    let _vb = rig.viewer(&b, 0);
    rig.run(0);
    assert_eq!(a.take_marks(), vec![1], "the cached start at once");
    assert_eq!(b.take_marks(), vec![1]);
    rig.publish(video(2, false));
    rig.publish(video(3, false));
    assert_eq!(rig.run(40), Some(rig.at(100)), "held until the window ends");
    assert!(a.take_marks().is_empty());
    rig.run(100);
    assert_eq!(a.writes(), 2, "one write for the window");
    assert_eq!(a.take_marks(), vec![2, 3]);
    assert_eq!(b.take_marks(), vec![2, 3]);
    rig.publish(video(4, false));
    assert_eq!(
        rig.run(150),
        Some(rig.at(200)),
        "the cadence goes on: the next message waits for the tick"
    );
    assert!(a.take_marks().is_empty());
    rig.run(200);
    assert_eq!(a.take_marks(), vec![4]);
    assert_eq!(
        rig.run(300),
        None,
        "a tick that found nothing: no more wake-ups"
    );
    rig.publish(video(5, false));
    rig.run(330);
    assert_eq!(
        a.take_marks(),
        vec![5],
        "after a pause the first message goes at once"
    );
}

#[test]
fn an_adaptive_writer_starts_with_the_shortest_window() {
    let mut rig = Rig::new(Config::default(), Merging::Budget(250 * MS));
    let a = Sock::open();
    let _va = rig.viewer(&a, 0);
    rig.run(0);
    rig.publish(video(1, true));
    rig.run(1);
    assert_eq!(a.take_marks(), vec![1], "the first after a pause at once");
    rig.publish(video(2, false));
    assert_eq!(rig.run(2), Some(rig.at(101)));
    rig.run(101);
    assert_eq!(a.take_marks(), vec![2]);
}

#[test]
fn a_full_socket_keeps_the_rest_exactly_and_tells_the_connection() {
    let mut rig = Rig::new(Config::default(), fixed(0));
    let a = Sock::open();
    let va = rig.viewer(&a, 0);
    rig.run(0);
    a.set_room(20);
    for mark in 1..=4 {
        rig.publish(video(mark, mark == 1));
    }
    let next = rig.run(10);
    assert!(va.blocked(), "the connection arms its write-stall deadline");
    assert!(
        next.is_some_and(|at| at <= rig.at(60)),
        "tried again soon: {next:?}"
    );
    a.set_room(usize::MAX);
    rig.run(60);
    assert!(!va.blocked());
    assert_eq!(a.take_marks(), vec![1, 2, 3, 4], "nothing lost or repeated");
}

#[test]
fn a_viewer_a_log_behind_skips_to_the_next_keyframe_with_fresh_headers() {
    let mut config = Config::default();
    config.play.queue_messages = 16;
    let mut rig = Rig::new(config, fixed(0));
    let header = Media {
        kind: MediaKind::Video,
        timestamp: 0,
        payload: Bytes::from_static(&[0x17, 0, 0, 0, 0, 0xAB, 0xCD, 0, 0, 0, 0]),
    };
    rig.publish(header);
    let (a, b) = (Sock::open(), Sock::open());
    let _va = rig.viewer(&a, 0);
    let _vb = rig.viewer(&b, 0);
    rig.run(0);
    a.take_marks();
    a.set_room(0);
    // 40 frames while viewer a's socket is full: the log (16) moves on without it.
    for i in 1..=40u32 {
        rig.publish(video(i, i == 35));
        rig.run(u64::from(i));
    }
    assert_eq!(
        b.take_marks().len(),
        1 + 40,
        "the other viewer is not held back"
    );
    a.set_room(usize::MAX);
    rig.run(100);
    assert_eq!(
        a.take_marks(),
        vec![0, 35, 36, 37, 38, 39, 40],
        "headers, then the keyframe"
    );
}

#[test]
fn a_viewer_that_keeps_falling_behind_is_ended() {
    let mut config = Config::default();
    config.play.queue_messages = 16;
    config.play.max_lag_drops = 2;
    let mut rig = Rig::new(config, fixed(0));
    let a = Sock::open();
    let va = rig.viewer(&a, 0);
    rig.run(0);
    // Each round the stream sends more than the log holds before the writer gets to run.
    for round in 0..4u32 {
        for i in 0..20 {
            rig.publish(video(round * 100 + i, false));
        }
        rig.run(u64::from(round * 100 + 50));
    }
    assert!(matches!(va.take_end(), Some(LinkEnd::Lagged)));
    assert_eq!(rig.writer.seats(), 0, "the writer let go of the socket");
}

#[test]
fn a_publisher_change_waits_for_the_connections_answer() {
    let mut rig = Rig::new(Config::default(), fixed(0));
    let a = Sock::open();
    let va = rig.viewer(&a, 0);
    rig.publish(video(1, true));
    rig.run(0);
    assert_eq!(a.take_marks(), vec![1]);
    // The publisher leaves and a new one starts.
    rig.publisher = None;
    let control = Arc::new(ConnControl::new(
        997,
        "192.0.2.202:1".parse().unwrap(),
        CancellationToken::new(),
    ));
    let PublishOutcome::Granted(next) = rig.registry.publish("live", "cam", &control, rig.t0)
    else {
        panic!("refused");
    };
    next.publish(video(2, true));
    rig.run(10);
    assert_eq!(
        va.take_notice(),
        Some(false),
        "unpublished, at its place in the stream"
    );
    assert!(
        a.take_marks().is_empty(),
        "nothing after it before the answer"
    );
    va.send(Bytes::from_static(&[0xAB, 0xCD, 0, 0, 0, 90]));
    va.resume();
    rig.run(20);
    assert_eq!(va.take_notice(), Some(true));
    va.send(Bytes::from_static(&[0xAB, 0xCD, 0, 0, 0, 91]));
    va.resume();
    rig.run(30);
    assert_eq!(
        a.take_marks(),
        vec![90, 91, 2],
        "answers in order, then the new media"
    );
}

#[test]
fn a_late_viewer_starts_at_its_own_place_and_a_gone_one_is_let_go() {
    let mut rig = Rig::new(Config::default(), fixed(0));
    let (a, b) = (Sock::open(), Sock::open());
    let va = rig.viewer(&a, 0);
    rig.publish(video(1, true));
    rig.run(0);
    rig.publish(video(2, false));
    // b subscribes now (its cached start holds 1 and 2) but is seated after 3 came.
    let vb = rig.viewer(&b, 5);
    rig.publish(video(3, false));
    rig.run(10);
    assert_eq!(a.take_marks(), vec![1, 2, 3]);
    assert_eq!(b.take_marks(), vec![1, 2, 3], "no gap, no repeat");
    drop(va);
    drop(vb);
    rig.run(20);
    assert_eq!(rig.writer.seats(), 0);
}

#[test]
fn messages_inside_a_window_wake_the_writer_once_not_per_message() {
    let mut rig = Rig::new(Config::default(), fixed(100));
    let a = Sock::open();
    let _va = rig.viewer(&a, 0);
    rig.publish(video(1, true));
    rig.run(0);
    let inbox = rig.shards.inbox(0);
    // The writer ticks at 100 ms: messages before then only mark the stream.
    rig.publish(video(2, false));
    rig.publish(video(3, false));
    assert!(inbox.take().2.is_empty(), "no wake-up before the tick");
    rig.run(100);
    assert_eq!(a.take_marks(), vec![1, 2, 3]);
    // The tick at 200 finds nothing and stops the cadence: the next message wakes it again.
    assert_eq!(rig.run(200), None);
    rig.publish(video(4, false));
    assert_eq!(
        inbox.take().2.len(),
        1,
        "a stream with no tick coming wakes the writer"
    );
    rig.run(210);
    assert_eq!(a.take_marks(), vec![4]);
}
