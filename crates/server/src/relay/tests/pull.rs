//! A pull against a scripted origin, the precedence of local publishers, and the manager's
//! triggers on a tokio test runtime.

use super::*;

/// A pull of `live/cam` from a scripted origin, with a local player attached.
fn pulling(rig: &Rig, handle: &Arc<RelayHandle>, ms: u64) -> (RelayConn, Upstream) {
    let mut conn = rig.conn(handle, ms);
    let mut up = Upstream::new(rig.at(ms));
    pump(&mut conn, &mut up, rig.at(ms + 5), Ok(()));
    assert!(
        up.events
            .iter()
            .any(|e| matches!(e, Event::PlayRequested { name, .. } if name == "cam"))
    );
    (conn, up)
}

fn origin_sends(conn: &mut RelayConn, up: &Upstream, now: Instant, media: &[Media]) {
    let mut bytes = BytesMut::new();
    for m in media {
        up.send(m, &mut bytes);
    }
    conn.recv_buf().extend_from_slice(&bytes);
    conn.handle_input(now, bytes.len()).unwrap();
}

#[test]
fn a_pull_publishes_locally_and_keeps_the_name_across_reconnects() {
    let rig = Rig::new("[liveness]\npublish_idle_timeout = \"3s\"\n");
    let handle = rig.handle(RelayKind::Pull, "rtmp://origin/live/{name}");
    let (_player, mut sub) = rig.shared.registry.play("live", "cam");
    assert!(!sub.live);

    let (mut conn, up) = pulling(&rig, &handle, 0);
    assert_eq!(handle.state(), RelayState::Connecting, "no media yet");
    origin_sends(
        &mut conn,
        &up,
        rig.at(10),
        &[video_header(), video(0, true)],
    );
    assert_eq!(handle.state(), RelayState::Live);
    let stream = rig.shared.registry.stream("live/cam").unwrap();
    let publisher = stream.snapshot().publisher.unwrap();
    assert_eq!(publisher.protocol(), Protocol::RtmpPull);
    assert!(matches!(sub.rx.try_recv(), Ok(StreamEvent::Published)));
    assert!(matches!(sub.rx.try_recv(), Ok(StreamEvent::Frame(_))));
    assert!(matches!(sub.rx.try_recv(), Ok(StreamEvent::Frame(f)) if f.keyframe));

    // The origin goes quiet: publish_idle after publish_idle_timeout.
    let kernel = ScriptedKernel::default();
    let deadline = conn.poll_timeout().unwrap();
    assert_eq!(deadline, rig.at(3010));
    assert_eq!(
        conn.handle_timeout(deadline, &kernel),
        Err(CloseReason::PublishIdle)
    );
    conn.finish(CloseReason::PublishIdle, &kernel, deadline);
    assert!(
        handle.holds_current(),
        "the name stays the pull's between connections"
    );
    assert!(stream.snapshot().publisher.is_some());
    assert!(sub.rx.try_recv().is_err(), "players heard no unpublish");

    // The next connection's first media starts a new era, and players go on.
    let (mut conn, up) = pulling(&rig, &handle, 5000);
    origin_sends(
        &mut conn,
        &up,
        rig.at(5010),
        &[video_header(), video(0, true)],
    );
    assert!(matches!(sub.rx.try_recv(), Ok(StreamEvent::Published)));
    let Ok(StreamEvent::Frame(header)) = sub.rx.try_recv() else {
        panic!("no header")
    };
    assert!(header.sequence_header);
    let Ok(StreamEvent::Frame(key)) = sub.rx.try_recv() else {
        panic!("no keyframe")
    };
    assert!(key.timestamp > 0, "timestamps continue across eras");
}

#[test]
fn a_local_publisher_takes_the_name_from_a_pull() {
    let rig = Rig::new("");
    let handle = rig.handle(RelayKind::Pull, "rtmp://origin/live/{name}");
    let Claim::Held(h) = hold::claim(
        &rig.shared.relays.deps,
        &handle,
        CancellationToken::new(),
        rig.t0,
    ) else {
        panic!("a free name is held")
    };
    handle.put_hold(Some(h));
    let (_player, sub) = rig.shared.registry.play("live", "cam");
    assert!(
        sub.live,
        "a viewer arriving at a held name starts on a live stream"
    );
    let (_guard, local) = rig.local_publisher();
    let stream = rig.shared.registry.stream("live/cam").unwrap();
    assert_eq!(stream.snapshot().publisher.unwrap().id, local.id);

    // And a pull never takes a name from a local publisher.
    let other = rig.handle(RelayKind::Pull, "rtmp://origin/live/{name}");
    assert!(matches!(
        hold::claim(
            &rig.shared.relays.deps,
            &other,
            CancellationToken::new(),
            rig.t0
        ),
        Claim::Busy
    ));
    let (mut conn, up) = pulling(&rig, &other, 0);
    origin_sends(&mut conn, &up, rig.at(10), &[video(0, true)]);
    assert_eq!(conn.poll_close(), Some(CloseReason::TakenOver));
    assert_eq!(stream.snapshot().publisher.unwrap().id, local.id);
}

const RELAYS: &str = r#"
[relay]
retry_min = "100ms"
retry_max = "200ms"
[[relay.push]]
app = "live"
name = "*"
url = "rtmp://127.0.0.1:1/live/{name}"
[[relay.pull]]
app = "edge"
url = "rtmp://127.0.0.1:1/live/{name}"
idle_after = "300ms"
"#;

#[tokio::test]
async fn the_registry_starts_and_stops_relays() {
    let shared = Shared::new(Arc::new(Config::from_toml(RELAYS).unwrap()));
    let relays = &shared.relays;
    let control = Arc::new(ConnControl::new(
        shared.next_id(),
        "192.0.2.1:1".parse().unwrap(),
        CancellationToken::new(),
    ));
    let PublishOutcome::Granted(guard) =
        shared
            .registry
            .publish("live", "cam", &control, Instant::now())
    else {
        panic!("refused")
    };
    let list = relays.list(Instant::now());
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].kind, RelayKind::Push);
    assert_eq!(list[0].url, "rtmp://127.0.0.1:1/live/cam");

    // The first viewer of a pulled app: the name is held before it attaches.
    let (player, sub) = shared.registry.try_play("edge", "cam").unwrap();
    assert!(sub.live);
    assert_eq!(relays.list(Instant::now()).len(), 2);

    // Nobody listens on port 1: attempts fail, back off, and retry.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pull = relays
        .list(Instant::now())
        .into_iter()
        .find(|v| v.kind == RelayKind::Pull)
        .unwrap();
    assert!(pull.attempts >= 2, "{pull:?}");
    assert_eq!(pull.last_close.unwrap()["reason"], "peer_reset");
    assert!(shared.metrics.relay_closes("peer_reset") >= 2);
    assert!(
        shared
            .render_metrics()
            .contains("lifeline_relays{state=\"backoff\"}")
    );

    // The publisher leaves: the push ends; the player leaves: the pull ends after idle_after.
    drop(guard);
    drop(player);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(relays.list(Instant::now()).len(), 1, "push gone at once");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        relays.list(Instant::now()).is_empty(),
        "pull gone after idle_after"
    );
    assert!(
        shared.registry.stream("edge/cam").is_none(),
        "and its name freed"
    );
    relays.shutdown();
    relays.wait().await;
}

#[tokio::test]
async fn a_local_publisher_stops_a_running_pull_and_it_comes_back_after() {
    let shared = Shared::new(Arc::new(Config::from_toml(RELAYS).unwrap()));
    let relays = &shared.relays;
    let (_player, sub) = shared.registry.try_play("edge", "cam").unwrap();
    assert!(sub.live, "held by the pull");
    let pulls = || {
        relays
            .list(Instant::now())
            .into_iter()
            .filter(|v| v.kind == RelayKind::Pull)
            .count()
    };
    assert_eq!(pulls(), 1);
    let control = Arc::new(ConnControl::new(
        shared.next_id(),
        "192.0.2.1:1".parse().unwrap(),
        CancellationToken::new(),
    ));
    let PublishOutcome::Granted(guard) =
        shared
            .registry
            .publish("edge", "cam", &control, Instant::now())
    else {
        panic!("a local publisher must win over a pull")
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(pulls(), 0, "the pull yielded");
    let snap = shared.registry.stream("edge/cam").unwrap().snapshot();
    assert_eq!(snap.publisher.unwrap().id, control.id);
    // The local publisher leaves while the player stays: the origin may have it again.
    drop(guard);
    assert_eq!(pulls(), 1, "the pull is back for the remaining player");
    let snap = shared.registry.stream("edge/cam").unwrap().snapshot();
    assert_eq!(snap.publisher.unwrap().protocol(), Protocol::RtmpPull);
    relays.shutdown();
    relays.wait().await;
    assert!(relays.list(Instant::now()).is_empty());
}

#[test]
fn a_kicked_pull_ends_its_connection_and_claims_again() {
    let rig = Rig::new("");
    let handle = rig.handle(RelayKind::Pull, "rtmp://origin/live/{name}");
    let (_player, _sub) = rig.shared.registry.play("live", "cam");
    let (mut conn, up) = pulling(&rig, &handle, 0);
    origin_sends(
        &mut conn,
        &up,
        rig.at(10),
        &[video_header(), video(0, true)],
    );
    assert!(
        rig.shared
            .registry
            .evict_publisher("live/cam", CloseReason::Kicked)
    );
    conn.observe(rig.at(1010));
    assert_eq!(conn.poll_close(), Some(CloseReason::Kicked));
    let kernel = ScriptedKernel::default();
    conn.finish(CloseReason::Kicked, &kernel, rig.at(1010));
    assert!(!handle.holds_current(), "the kicked hold has no name");
    // The next connection claims the free name again.
    let (mut conn, up) = pulling(&rig, &handle, 2000);
    origin_sends(
        &mut conn,
        &up,
        rig.at(2010),
        &[video_header(), video(0, true)],
    );
    let stream = rig.shared.registry.stream("live/cam").unwrap();
    assert_eq!(
        stream.snapshot().publisher.unwrap().protocol(),
        Protocol::RtmpPull
    );
    assert!(
        handle.take_hold().is_none(),
        "the new hold rides on the connection"
    );
}

#[tokio::test]
async fn a_kick_of_a_pulled_stream_is_claimed_again_for_its_players() {
    let shared = Shared::new(Arc::new(Config::from_toml(RELAYS).unwrap()));
    let (_player, _sub) = shared.registry.try_play("edge", "cam").unwrap();
    let first = shared
        .registry
        .stream("edge/cam")
        .unwrap()
        .snapshot()
        .publisher
        .unwrap();
    assert!(
        shared
            .registry
            .evict_publisher("edge/cam", CloseReason::Kicked)
    );
    let again = shared
        .registry
        .stream("edge/cam")
        .unwrap()
        .snapshot()
        .publisher
        .unwrap();
    assert_eq!(again.protocol(), Protocol::RtmpPull);
    assert_ne!(again.id, first.id, "a new hold");
    shared.relays.shutdown();
    shared.relays.wait().await;
}
