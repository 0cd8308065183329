//! A relay connection's core against a scripted upstream (rtmp-proto's own `ServerSession`),
//! on an explicit clock: no socket, no runtime, no root. The manager's triggers run on a tokio
//! test runtime against an upstream that refuses the connection.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod pull;

use super::RelayState;
use super::core::RelayConn;
use super::hold::{self, Claim};
use super::status::{RelayHandle, RelayKind};
use crate::config::{Config, RelayUrl};
use crate::control::{ConnControl, Protocol};
use crate::evidence::ScriptedKernel;
use crate::registry::{PublishOutcome, PublisherGuard};
use crate::shared::Shared;
use crate::stream::StreamEvent;
use bytes::{Bytes, BytesMut};
use rtmp_proto::chunk::{ChunkWriter, MessageHeader};
use rtmp_proto::session::{CloseReason, Event, Media, MediaKind, ServerSession, SessionConfig};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const MS: Duration = Duration::from_millis(1);

/// The upstream server: a real server session whose answers the test chooses.
struct Upstream {
    session: ServerSession,
    events: Vec<Event>,
}

impl Upstream {
    fn new(now: Instant) -> Self {
        Self {
            session: ServerSession::new(SessionConfig::default(), now),
            events: Vec::new(),
        }
    }

    fn media(&self) -> Vec<Media> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Media(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    /// Sends `media` to a player of message stream 1, as a server's fan-out would.
    fn send(&self, media: &Media, into: &mut BytesMut) {
        let mut writer = ChunkWriter::default();
        writer.set_chunk_size(self.session.out_chunk_size());
        let header = MessageHeader {
            csid: media.kind.csid(),
            timestamp: media.timestamp,
            type_id: media.kind.type_id(),
            stream_id: 1,
        };
        writer.write(&header, &media.payload, into);
    }
}

struct Rig {
    shared: Arc<Shared>,
    t0: Instant,
}

impl Rig {
    fn new(extra: &str) -> Self {
        let config = Config::from_toml(extra).unwrap();
        Self {
            shared: Shared::new(Arc::new(config)),
            t0: Instant::now(),
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + MS * u32::try_from(ms).unwrap()
    }

    fn handle(&self, kind: RelayKind, url: &str) -> Arc<RelayHandle> {
        Arc::new(RelayHandle::new(
            1,
            kind,
            0,
            "live/cam",
            RelayUrl::parse(url).unwrap(),
            Duration::from_secs(10),
            (Duration::from_secs(1), Duration::from_secs(30)),
            self.t0,
        ))
    }

    /// A connection of `handle` opened at `ms`.
    fn conn(&self, handle: &Arc<RelayHandle>, ms: u64) -> RelayConn {
        let control = Arc::new(ConnControl::speaking(
            handle.kind.protocol(),
            self.shared.next_id(),
            "192.0.2.99:1935".parse().unwrap(),
            CancellationToken::new(),
        ));
        let now = self.at(ms);
        let deadline = now + self.shared.config.liveness.handshake_timeout;
        RelayConn::new(
            self.shared.relays.deps.clone(),
            handle.clone(),
            control,
            now,
            deadline,
        )
    }

    /// A local publisher of `live/cam` with a sequence header and a keyframe cached.
    fn local_publisher(&self) -> (PublisherGuard, Arc<ConnControl>) {
        let control = Arc::new(ConnControl::new(
            self.shared.next_id(),
            "192.0.2.200:1".parse().unwrap(),
            CancellationToken::new(),
        ));
        let PublishOutcome::Granted(guard) = self
            .shared
            .registry
            .publish("live", "cam", &control, self.t0)
        else {
            panic!("publish refused");
        };
        guard.publish(video_header());
        guard.publish(video(0, true));
        (guard, control)
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

/// Moves bytes both ways until nothing moves, answering publish and play as `accept` says.
fn pump(conn: &mut RelayConn, up: &mut Upstream, now: Instant, accept: Result<(), &str>) {
    for _ in 0..32 {
        let mut moved = false;
        let bytes: Vec<u8> = conn
            .output()
            .slices()
            .iter()
            .flat_map(|s| s.to_vec())
            .collect();
        if conn.wants_write() && !bytes.is_empty() {
            conn.wrote(bytes.len());
            conn.write_done(now, true);
            up.session.feed(now, &bytes).unwrap();
            moved = true;
        }
        while let Some(ev) = up.session.poll_event() {
            match (&ev, accept) {
                (Event::PublishRequested { .. }, Ok(())) => up.session.accept_publish(now),
                (Event::PublishRequested { .. }, Err(why)) => up.session.reject_publish(why),
                (Event::PlayRequested { name, .. }, Ok(())) => up.session.accept_play(name, true),
                (Event::PlayRequested { .. }, Err(why)) => up.session.reject_play(why),
                _ => {}
            }
            up.events.push(ev);
        }
        while let Some(b) = up.session.take_output() {
            conn.recv_buf().extend_from_slice(&b);
            conn.handle_input(now, b.len()).unwrap();
            moved = true;
        }
        if !moved {
            return;
        }
    }
    panic!("the conversation never settled");
}

#[test]
fn a_push_publishes_the_local_stream_with_its_cached_start() {
    // Each frame written at once: the merge window is the viewer's business, tested there.
    let rig = Rig::new("[play]\nmerge_window = \"0s\"\n");
    let (guard, _) = rig.local_publisher();
    let handle = rig.handle(RelayKind::Push, "rtmp://up/ingest/{name}?key=k");
    let mut conn = rig.conn(&handle, 0);
    let mut up = Upstream::new(rig.at(0));
    pump(&mut conn, &mut up, rig.at(5), Ok(()));
    let asked = up.events.iter().find_map(|e| match e {
        Event::PublishRequested { name, query, .. } => Some((name.clone(), query.clone())),
        _ => None,
    });
    assert_eq!(asked, Some(("cam".into(), "key=k".into())));
    assert!(matches!(&up.events[0], Event::Connected { app, .. } if app == "ingest"));
    assert_eq!(
        up.media().len(),
        2,
        "sequence header and GOP went up at once"
    );
    assert_eq!(handle.state(), RelayState::Live);
    assert_eq!(
        rig.shared
            .registry
            .stream("live/cam")
            .unwrap()
            .player_count(),
        1
    );

    // A live frame: through the fan-out ring, chunked again for the upstream.
    guard.publish(video(40, false));
    conn.take_ring(rig.at(10)).unwrap();
    pump(&mut conn, &mut up, rig.at(10), Ok(()));
    let media = up.media();
    assert_eq!(media.len(), 3);
    assert_eq!(media[2].payload, video(40, false).payload);

    // The local stream ends: the push unpublishes and closes with `completed`.
    drop(guard);
    conn.take_ring(rig.at(20)).unwrap();
    pump(&mut conn, &mut up, rig.at(20), Ok(()));
    assert!(up.events.contains(&Event::Unpublished), "{:?}", up.events);
    assert_eq!(conn.poll_close(), Some(CloseReason::Completed));
}

#[test]
fn a_refusal_carries_the_upstream_own_words() {
    let rig = Rig::new("");
    let _local = rig.local_publisher();
    let handle = rig.handle(RelayKind::Push, "rtmp://up/live/{name}");
    let mut conn = rig.conn(&handle, 0);
    let mut up = Upstream::new(rig.at(0));
    pump(&mut conn, &mut up, rig.at(5), Err("Already publishing"));
    assert_eq!(
        conn.poll_close(),
        Some(CloseReason::Refused(
            "NetStream.Publish.BadName: Already publishing".into()
        ))
    );
    assert_eq!(handle.state(), RelayState::Connecting, "never live");
}

#[test]
fn setup_is_bounded_by_handshake_timeout() {
    let rig = Rig::new("[liveness]\nhandshake_timeout = \"2s\"\n");
    let handle = rig.handle(RelayKind::Push, "rtmp://up/live/{name}");
    let mut conn = rig.conn(&handle, 0);
    let kernel = ScriptedKernel::default();
    assert_eq!(conn.poll_timeout(), Some(rig.at(2000)));
    assert_eq!(conn.handle_timeout(rig.at(1999), &kernel), Ok(()));
    assert_eq!(
        conn.handle_timeout(rig.at(2000), &kernel),
        Err(CloseReason::HandshakeTimeout)
    );
}

#[test]
fn a_vanished_upstream_is_unreachable_and_a_closed_window_a_stall() {
    let rig = Rig::new("[liveness]\ntcp_user_timeout = \"4s\"\nplay_stall_timeout = \"3s\"\n");
    let _local = rig.local_publisher();
    let handle = rig.handle(RelayKind::Push, "rtmp://up/live/{name}");
    let kernel = ScriptedKernel::default();

    let mut conn = rig.conn(&handle, 0);
    let mut up = Upstream::new(rig.at(0));
    pump(&mut conn, &mut up, rig.at(5), Ok(()));
    // Data in flight, no ACK for tcp_user_timeout: the upstream's host is gone.
    kernel.set(3, 4000);
    let (mut now, mut result) = (rig.at(5), Ok(()));
    while result.is_ok() && now < rig.at(10_000) {
        now = conn.poll_timeout().unwrap();
        result = conn.handle_timeout(now, &kernel);
    }
    assert_eq!(result, Err(CloseReason::PeerUnreachable));
    assert!(
        now <= rig.at(1005),
        "the peer check runs within a second: {now:?}"
    );

    // ACKs come, but nothing new is acknowledged while data waits: its window is closed.
    let mut conn = rig.conn(&handle, 0);
    let mut up = Upstream::new(rig.at(0));
    pump(&mut conn, &mut up, rig.at(5), Ok(()));
    let mut info = crate::evidence::info(1, 10);
    info.bytes_acked = Some(5000);
    *kernel.0.borrow_mut() = Some(info);
    let mut result = Ok(());
    let mut now = rig.at(5);
    while result.is_ok() && now < rig.at(10_000) {
        now = conn.poll_timeout().unwrap();
        result = conn.handle_timeout(now, &kernel);
    }
    assert_eq!(result, Err(CloseReason::PlayStall));
    assert!(
        now >= rig.at(3000) && now <= rig.at(4100),
        "at play_stall_timeout: {now:?}"
    );
}

#[test]
fn output_that_never_moves_is_a_play_stall() {
    let rig = Rig::new("[liveness]\nplay_stall_timeout = \"3s\"\ntcp_user_timeout = \"0s\"\n");
    let (guard, _) = rig.local_publisher();
    let handle = rig.handle(RelayKind::Push, "rtmp://up/live/{name}");
    let mut conn = rig.conn(&handle, 0);
    let mut up = Upstream::new(rig.at(0));
    pump(&mut conn, &mut up, rig.at(5), Ok(()));
    guard.publish(video(40, false));
    conn.take_ring(rig.at(10)).unwrap();
    assert!(!conn.output().is_empty());
    // The socket takes nothing from now on.
    conn.write_done(rig.at(10), false);
    let kernel = ScriptedKernel::default();
    let (mut now, mut result) = (rig.at(10), Ok(()));
    while result.is_ok() && now < rig.at(60_000) {
        now = conn.poll_timeout().unwrap();
        result = conn.handle_timeout(now, &kernel);
    }
    assert_eq!(result, Err(CloseReason::PlayStall));
    assert_eq!(
        now,
        rig.at(3010),
        "play_stall_timeout after the output stopped moving"
    );
}
