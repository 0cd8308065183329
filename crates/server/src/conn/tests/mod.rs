//! The connection core on an explicit clock: no socket, no runtime, no root. A scripted
//! kernel stands in for TCP_INFO; a test peer speaks RTMP bytes to the core.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod peer;

use super::core::RtmpConn;
use crate::config::{Config, OnDuplicate};
use crate::control::ConnControl;
use crate::evidence::ScriptedKernel;
use crate::shared::Shared;
use crate::stream::StreamEvent;
use crate::timers::ConnTimer;
use bytes::Bytes;
use peer::Peer;
use rtmp_proto::session::{CloseReason, Media, MediaKind};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const MS: Duration = Duration::from_millis(1);

/// A server's shared state and a clock.
struct Rig {
    shared: Arc<Shared>,
    t0: Instant,
    next_id: u64,
}

impl Rig {
    fn new(config: Config) -> Self {
        Self {
            shared: Shared::new(Arc::new(config)),
            t0: Instant::now(),
            next_id: 1,
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + MS * u32::try_from(ms).unwrap()
    }

    /// A connection core accepted at `ms`.
    fn conn(&mut self, ms: u64) -> RtmpConn {
        let id = self.next_id;
        self.next_id += 1;
        let peer = format!("192.0.2.{id}:5000").parse().unwrap();
        let control = Arc::new(ConnControl::new(id, peer, CancellationToken::new()));
        RtmpConn::new(self.shared.clone(), control, self.at(ms))
    }
}

fn video(ts: u32, key: bool) -> Media {
    let mut body = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
    body.extend_from_slice(&ts.to_be_bytes());
    Media {
        kind: MediaKind::Video,
        timestamp: ts,
        payload: Bytes::from(body),
    }
}

fn video_header() -> Media {
    Media {
        kind: MediaKind::Video,
        timestamp: 0,
        payload: Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 2, 3]),
    }
}

/// A publisher of `live/cam` (through the registry, as a publishing connection would).
fn publisher(rig: &mut Rig) -> (crate::registry::PublisherGuard, Arc<ConnControl>) {
    let control = Arc::new(ConnControl::new(
        999,
        "192.0.2.200:1".parse().unwrap(),
        CancellationToken::new(),
    ));
    match rig
        .shared
        .registry
        .publish("live", "cam", &control, rig.at(0))
    {
        crate::registry::PublishOutcome::Granted(g) => (g, control),
        other => panic!("{other:?}"),
    }
}

/// Runs the core's due deadlines at `now` and delivers what it wants written to `peer`.
fn tick(
    conn: &mut RtmpConn,
    peer: &mut Peer,
    now: Instant,
    kernel: &ScriptedKernel,
) -> Result<(), CloseReason> {
    if conn.poll_timeout().is_some_and(|at| at <= now) {
        conn.handle_timeout(now, kernel)?;
    }
    peer.deliver(conn, now);
    Ok(())
}

#[test]
fn merge_window_batches_a_viewers_writes() {
    let mut rig = Rig::new(Config::default());
    let kernel = ScriptedKernel::default();
    let (publisher, _) = publisher(&mut rig);
    let mut conn = rig.conn(0);
    let mut peer = Peer::connect(&mut conn, rig.at(0), &kernel);
    peer.play(&mut conn, "cam", rig.at(1), &kernel);
    assert!(peer.statuses().contains(&"NetStream.Play.Start".to_owned()));
    let window = Config::default().play.own_window();
    assert_eq!(window, Duration::from_millis(100));

    // The play replies' write started a window; it closes with nothing on the ring, which
    // ends the cadence: no wake-up while the stream is paused.
    assert_eq!(conn.timers.get(ConnTimer::MergeWindow), Some(rig.at(101)));
    tick(&mut conn, &mut peer, rig.at(101), &kernel).unwrap();
    assert!(
        conn.can_take(),
        "nothing came: the viewer waits on the ring"
    );
    assert_eq!(conn.timers.get(ConnTimer::MergeWindow), None);

    // The first frame after a pause opens a window: nothing is written until it closes.
    publisher.publish(video(0, true));
    let ev = first_event(&mut conn);
    conn.on_stream_event(rig.at(150), ev).unwrap();
    assert!(!conn.wants_write(), "held for the window");
    assert!(
        !conn.can_take(),
        "the ring keeps what comes during the window"
    );
    for ts in [33, 66] {
        publisher.publish(video(ts, false));
    }
    assert_eq!(conn.timers.get(ConnTimer::MergeWindow), Some(rig.at(250)));
    tick(&mut conn, &mut peer, rig.at(250), &kernel).unwrap();
    assert_eq!(
        peer.take_video_timestamps(),
        vec![0, 33, 66],
        "one write for the window"
    );

    // The next window starts at the write and takes what came meanwhile, in one write.
    assert_eq!(conn.timers.get(ConnTimer::MergeWindow), Some(rig.at(350)));
    publisher.publish(video(99, false));
    publisher.publish(video(132, false));
    tick(&mut conn, &mut peer, rig.at(350), &kernel).unwrap();
    assert_eq!(peer.take_video_timestamps(), vec![99, 132]);
    tick(&mut conn, &mut peer, rig.at(450), &kernel).unwrap();
    assert!(conn.can_take());
    assert_eq!(
        conn.timers.get(ConnTimer::MergeWindow),
        None,
        "an empty window ends it"
    );
}

#[test]
fn a_viewer_a_ring_behind_skips_to_the_next_keyframe_with_fresh_headers() {
    let mut config = Config::default();
    config.play.queue_messages = 16;
    config.play.merge_window = Some(Duration::ZERO);
    let mut rig = Rig::new(config);
    let kernel = ScriptedKernel::default();
    let (publisher, _) = publisher(&mut rig);
    publisher.publish(video_header());
    let mut conn = rig.conn(0);
    let mut peer = Peer::connect(&mut conn, rig.at(0), &kernel);
    peer.play(&mut conn, "cam", rig.at(1), &kernel);
    peer.take_video_timestamps();
    // 40 frames while the viewer does not read: the ring (16) overflows.
    for i in 1..=40u32 {
        publisher.publish(video(i * 33, i == 35));
    }
    let ev = first_event(&mut conn);
    assert!(ev.is_err(), "the viewer learns it lagged");
    conn.on_stream_event(rig.at(2000), ev).unwrap();
    peer.deliver(&mut conn, rig.at(2000));
    let got = peer.take_video_timestamps();
    assert_eq!(
        got.first(),
        Some(&0),
        "the sequence header is sent again first: {got:?}"
    );
    assert_eq!(got.get(1), Some(&(35 * 33)), "then the keyframe: {got:?}");
    assert_eq!(got.len(), 2 + 5, "and what follows it: {got:?}");
}

#[test]
fn a_viewer_that_keeps_lagging_is_closed_play_stall() {
    let mut config = Config::default();
    config.play.queue_messages = 16;
    config.play.max_lag_drops = 2;
    let mut rig = Rig::new(config);
    let kernel = ScriptedKernel::default();
    let (publisher, _) = publisher(&mut rig);
    let mut conn = rig.conn(0);
    let mut peer = Peer::connect(&mut conn, rig.at(0), &kernel);
    peer.play(&mut conn, "cam", rig.at(1), &kernel);
    let mut result = Ok(());
    for round in 0..3u32 {
        for i in 0..20 {
            publisher.publish(video(round * 1000 + i, false));
        }
        let ev = first_event(&mut conn);
        result = conn.on_stream_event(rig.at(100 * u64::from(round)), ev);
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result, Err(CloseReason::PlayStall));
}

#[test]
fn peer_unreachable_from_scripted_tcp_info() {
    let mut rig = Rig::new(Config::default());
    let kernel = ScriptedKernel::default();
    let (_publisher, _) = publisher(&mut rig);
    let mut conn = rig.conn(0);
    let mut peer = Peer::connect(&mut conn, rig.at(0), &kernel);
    peer.play(&mut conn, "cam", rig.at(0), &kernel);
    // Data in flight, ACKs stop at t = 1 s: the host is gone 10 s later (tcp_user_timeout).
    let mut closed = None;
    for s in 1..=12u64 {
        let now = rig.at(s * 1000);
        kernel.set(4, u32::try_from(s.saturating_sub(1) * 1000).unwrap());
        while let Some(at) = conn.poll_timeout().filter(|&at| at <= now) {
            if let Err(reason) = conn.handle_timeout(at, &kernel) {
                closed = Some((reason, at));
                break;
            }
        }
        if closed.is_some() {
            break;
        }
    }
    let (reason, at) = closed.expect("closed");
    assert_eq!(reason, CloseReason::PeerUnreachable);
    assert!(
        at <= rig.at(11_000),
        "judged at the bound, not a check late: {:?}",
        at - rig.t0
    );

    // Idle with nothing in flight is not this rule's business.
    let mut idle = rig.conn(0);
    let mut peer = Peer::connect(&mut idle, rig.at(0), &kernel);
    peer.play(&mut idle, "cam", rig.at(0), &kernel);
    kernel.set(0, 60_000);
    let now = rig.at(5000);
    while let Some(at) = idle.poll_timeout().filter(|&at| at <= now) {
        idle.handle_timeout(at, &kernel).unwrap();
    }
}

#[test]
fn a_refused_peer_gets_its_refusal_then_the_linger_closes_it() {
    let mut config = Config::default();
    config.publish.on_duplicate = OnDuplicate::Reject;
    let mut rig = Rig::new(config);
    let kernel = ScriptedKernel::default();
    let (_publisher, _) = publisher(&mut rig);
    let mut conn = rig.conn(0);
    let mut peer = Peer::connect(&mut conn, rig.at(0), &kernel);
    peer.publish(&mut conn, "cam", rig.at(10), &kernel);
    assert!(
        peer.statuses()
            .contains(&"NetStream.Publish.BadName".to_owned())
    );
    assert!(
        !conn.wants_read(),
        "nothing more is read from a refused peer"
    );
    assert!(
        conn.poll_close().is_some(),
        "refusal delivered: close at once"
    );

    // A peer that does not read its refusal is closed at the linger deadline.
    let mut slow = rig.conn(0);
    let mut peer = Peer::connect(&mut slow, rig.at(0), &kernel);
    peer.send_publish(&mut slow, "cam", rig.at(10), &kernel);
    assert!(slow.poll_close().is_none(), "its refusal is still queued");
    assert_eq!(slow.poll_timeout(), Some(rig.at(10 + 2000)));
    let r = slow.handle_timeout(rig.at(2010), &kernel);
    assert!(matches!(r, Err(CloseReason::Refused(_))), "{r:?}");
}

#[test]
fn challenge_won_by_silence_and_lost_by_a_sign_of_life() {
    for incumbent_answers in [false, true] {
        let mut rig = Rig::new(Config::default());
        let kernel = ScriptedKernel::default();
        let mut incumbent = rig.conn(0);
        let mut a = Peer::connect(&mut incumbent, rig.at(0), &kernel);
        a.publish(&mut incumbent, "cam", rig.at(0), &kernel);
        assert!(a.statuses().contains(&"NetStream.Publish.Start".to_owned()));

        let mut newcomer = rig.conn(100);
        let mut b = Peer::connect(&mut newcomer, rig.at(100), &kernel);
        b.send_publish(&mut newcomer, "cam", rig.at(200), &kernel);
        assert!(
            b.statuses().is_empty(),
            "the newcomer waits for the verdict"
        );
        let deadline = newcomer.poll_timeout().unwrap();
        assert_eq!(
            deadline,
            rig.at(1200),
            "challenge_timeout after the request"
        );

        // The incumbent's connection is told, and pings its peer.
        assert!(incumbent.is_publisher());
        incumbent.on_challenged(rig.at(200));
        a.deliver(&mut incumbent, rig.at(200));
        assert!(a.pings_received() > 0, "the incumbent is pinged");
        if incumbent_answers {
            a.answer_pings(&mut incumbent, rig.at(250), &kernel);
        }
        newcomer.handle_timeout(deadline, &kernel).unwrap();
        b.deliver(&mut newcomer, deadline);
        let code = if incumbent_answers {
            "NetStream.Publish.BadName"
        } else {
            "NetStream.Publish.Start"
        };
        assert!(
            b.statuses().contains(&code.to_owned()),
            "answers={incumbent_answers}: {:?}",
            b.statuses()
        );
        let incumbent_closed = incumbent.control.requested_reason();
        assert_eq!(
            incumbent_closed,
            (!incumbent_answers).then_some(CloseReason::TakenOver)
        );
    }
}

#[test]
fn a_challenged_host_that_acks_nothing_loses_at_once() {
    let mut rig = Rig::new(Config::default());
    let kernel = ScriptedKernel::default();
    let mut incumbent = rig.conn(0);
    let mut a = Peer::connect(&mut incumbent, rig.at(0), &kernel);
    a.publish(&mut incumbent, "cam", rig.at(0), &kernel);
    let mut newcomer = rig.conn(100);
    let mut b = Peer::connect(&mut newcomer, rig.at(100), &kernel);
    b.send_publish(&mut newcomer, "cam", rig.at(200), &kernel);
    incumbent.on_challenged(rig.at(200));
    // 300 ms later the ping is still unacknowledged and nothing came back.
    kernel.set(1, 5000);
    let look = incumbent.poll_timeout().unwrap();
    assert_eq!(look, rig.at(500));
    incumbent.handle_timeout(look, &kernel).unwrap();
    // The newcomer's driver wakes on the evidence and settles before the deadline.
    newcomer.on_incumbent_gone(rig.at(500));
    b.deliver(&mut newcomer, rig.at(500));
    assert!(b.statuses().contains(&"NetStream.Publish.Start".to_owned()));
}

/// The first fan-out event waiting for the viewer, as the driver's `recv` would return it.
fn first_event(
    conn: &mut RtmpConn,
) -> Result<StreamEvent, tokio::sync::broadcast::error::RecvError> {
    let super::core::Held::Stream(viewer) = &mut conn.held else {
        panic!("not a viewer");
    };
    futures_lite_poll(viewer.recv())
}

/// Polls a future that is ready (the ring has an event) without a runtime.
fn futures_lite_poll<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("no event waiting"),
    }
}
