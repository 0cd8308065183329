//! Relay fault tests (issue #18, R3) on the namespace LAN of `fault_rig`: the edge Lifeline on
//! host 0, the upstream or origin on host 1, publishers and players on the other hosts. Each
//! prints `MEASURED <id> <seconds>` for docs/relay.md.
//!
//! * R3a: the upstream's cable is pulled while the edge pushes to it;
//! * R3b: the origin's process is frozen (SIGSTOP) while the edge pulls from it;
//! * R3c: an upstream that refuses every publish.
//!
//! Needs root, ffmpeg, nft (and nginx + libnginx-mod-rtmp, installed as root when missing).
//! The tests take turns: each measures a bound, and two at once on 2 cores would blur it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault_rig;

use fault_rig::{LISTEN, Rig, bin, measured, secs};
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use testkit::client::RtmpClient;
use testkit::nginx::{self, Nginx};
use testkit::player::{Player, cpu_time};
use testkit::process::ChildGuard;
use testkit::rtmp::{Lifeline, ffmpeg_publish, log_field};

/// Where the upstream / origin listens: host 1.
const UPSTREAM: &str = "192.0.2.11:1935";

static TURN: Mutex<()> = Mutex::new(());

fn turn() -> MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(PoisonError::into_inner)
}

fn relay_close(rig: &mut Rig, skip: usize, protocol: &str, timeout: Duration) -> Option<String> {
    let needle = format!("protocol=\"{protocol}\"");
    rig.server.wait_line(skip, timeout, |l| {
        l.contains(" close conn=") && l.contains(&needle)
    })
}

/// R3a: while the edge pushes, the upstream's cable is pulled: the push is `peer_unreachable`
/// within tcp_user_timeout + 1 s; once the link is back, frames reach the upstream again within
/// retry_max + 2 s; the edge's own player never notices.
#[test]
fn r3a_upstream_cable_pulled_during_a_push() {
    let _turn = turn();
    let config = format!(
        "[liveness]\ntcp_user_timeout = \"5s\"\nhandshake_timeout = \"2s\"\n\
         [relay]\nretry_min = \"500ms\"\nretry_max = \"4s\"\n\
         [[relay.push]]\napp = \"live\"\nname = \"*\"\nurl = \"rtmp://{UPSTREAM}/live/{{name}}\"\n"
    );
    let Some(mut rig) = Rig::new("r3a", 3, &config) else {
        return;
    };
    let ns = rig.host(1).name().to_owned();
    let mut upstream = Lifeline::start_in(bin(), "", &["ip", "netns", "exec", &ns], "0.0.0.0:1935");
    let _publisher = rig.live_publisher(2);
    let local = rig.live_player(3);
    // The upstream's own player, over its loopback: the pulled cable does not touch it.
    let up_player = Player::start(rig.host(1), "rtmp://127.0.0.1:1935/live/cam").unwrap();
    assert!(
        up_player.wait_frames(25, Duration::from_secs(15)),
        "no frames at the upstream\n{}\n{}",
        rig.log(),
        upstream.log_text()
    );
    let mark = rig.server.log_lines();
    let t0 = Instant::now();
    rig.host(1).set_link(false).unwrap();
    let close = relay_close(&mut rig, mark, "rtmp-push", Duration::from_secs(12))
        .unwrap_or_else(|| panic!("the dead upstream held the push\n{}", rig.log()));
    let after = secs(t0.elapsed());
    measured("R3a-unreachable", after);
    assert_eq!(
        log_field(&close, "reason"),
        Some("peer_unreachable"),
        "{close}"
    );
    assert!(after <= 5.0 + 1.0, "peer_unreachable after {after:.2}s");

    // Out a little longer: attempts fail and back off.
    std::thread::sleep(Duration::from_secs(3));
    rig.host(1).set_link(true).unwrap();
    let up = Instant::now();
    let again = up_player
        .wait_frame_after(up, Duration::from_secs(12), |_| true)
        .unwrap_or_else(|| panic!("no frames at the upstream again\n{}", rig.log()));
    let back = secs(again - up);
    measured("R3a-frames-again", back);
    let end = Instant::now();
    let gap = local.max_gap(t0, end);
    println!("R3a: the edge's player's longest gap {gap:?}");
    assert!(
        back <= 4.0 + 2.0,
        "frames at the upstream {back:.2}s after link-up"
    );
    assert!(
        gap <= Duration::from_secs(1),
        "local player interrupted {gap:?}"
    );
    let text = rig.server.log_text();
    let attempts: Vec<&str> = text
        .lines()
        .skip(mark)
        .filter(|l| l.contains("relay connect failed") || l.contains("relay ended"))
        .filter_map(|l| log_field(l, "reason"))
        .collect();
    println!("R3a: attempts ended during the outage: {attempts:?}");
    drop(up_player);
    let _ = upstream.stop();
}

/// R3b: while the edge pulls, the origin's process (nginx-rtmp) is frozen: the pull ends with
/// `publish_idle` after publish_idle_timeout and reconnects; once the origin runs again its
/// players get frames again without reconnecting themselves.
#[test]
fn r3b_origin_frozen_during_a_pull() {
    let _turn = turn();
    if !nginx::require("r3b_origin_frozen_during_a_pull") {
        return;
    }
    let config = format!(
        "[liveness]\npublish_idle_timeout = \"3s\"\nhandshake_timeout = \"2s\"\n\
         [relay]\nretry_min = \"500ms\"\nretry_max = \"2s\"\n\
         [[relay.pull]]\napp = \"edge\"\nurl = \"rtmp://{UPSTREAM}/live/{{name}}\"\n"
    );
    let Some(mut rig) = Rig::new("r3b", 3, &config) else {
        return;
    };
    let origin = Nginx::start_in(rig.host(1), UPSTREAM.parse().unwrap(), "").unwrap();
    let cmd = ffmpeg_publish(&origin.url("live/cam"), 600);
    let log = origin.dir().join("pub.log");
    let _publisher = ChildGuard::spawn_logged(&mut rig.host(2).wrap(&cmd), &log).unwrap();
    assert!(
        origin
            .wait_line(0, Duration::from_secs(15), |l| l
                .contains("publish: name='cam'"))
            .is_some(),
        "no publish at the origin\n{}",
        origin.log_text()
    );
    let edge: SocketAddr = LISTEN.parse().unwrap();
    let mut player = Player::start(rig.host(3), &format!("rtmp://{edge}/edge/cam")).unwrap();
    assert!(
        player.wait_frames(25, Duration::from_secs(15)),
        "edge player got {} frames\n{}",
        player.count(),
        rig.log()
    );
    let mark = rig.server.log_lines();
    let t0 = Instant::now();
    origin.process().freeze();
    let close = relay_close(&mut rig, mark, "rtmp-pull", Duration::from_secs(8));
    let idle = secs(t0.elapsed());
    std::thread::sleep(Duration::from_secs(8).saturating_sub(t0.elapsed()));
    origin.process().thaw();
    let thawed = Instant::now();
    let close = close.unwrap_or_else(|| panic!("the frozen origin held the pull\n{}", rig.log()));
    measured("R3b-publish-idle", idle);
    assert_eq!(log_field(&close, "reason"), Some("publish_idle"), "{close}");
    assert!(idle <= 3.0 + 1.0, "publish_idle after {idle:.2}s");
    let again = player
        .wait_frame_after(thawed, Duration::from_secs(15), |_| true)
        .unwrap_or_else(|| panic!("the edge's player got no frames again\n{}", rig.log()));
    let back = secs(again - thawed);
    measured("R3b-frames-again", back);
    let attempts = rig
        .server
        .log_text()
        .lines()
        .skip(mark)
        .filter(|l| l.contains("relay connect failed") || l.contains("relay ended"))
        .count();
    println!("R3b: {attempts} attempts ended while the origin was frozen");
    assert!(
        back <= 2.0 + 2.0 + 2.0,
        "frames again {back:.2}s after the thaw"
    );
    assert!(player.process().is_running(), "the player had to reconnect");
    assert!(
        player.wait_frames(player.count() + 50, Duration::from_secs(10)),
        "the player plays on"
    );
}

/// R3c: an upstream that refuses every publish: each refusal is logged with the upstream's own
/// words, the back-off reaches retry_max and stays there, and the server's CPU stays < 1 %.
#[test]
fn r3c_an_upstream_that_refuses_every_publish() {
    let _turn = turn();
    let config = format!(
        "[liveness]\npublish_idle_timeout = \"60s\"\n\
         [relay]\nretry_min = \"250ms\"\nretry_max = \"2s\"\n\
         [[relay.push]]\napp = \"live\"\nname = \"*\"\nurl = \"rtmp://{UPSTREAM}/live/{{name}}?key=wrong\"\n"
    );
    let Some(rig) = Rig::new("r3c", 2, &config) else {
        return;
    };
    let ns = rig.host(1).name().to_owned();
    let upstream_config =
        "[auth]\nenabled = true\n[auth.apps.live]\npublish = { cam = \"right\" }\n";
    let mut upstream = Lifeline::start_in(
        bin(),
        upstream_config,
        &["ip", "netns", "exec", &ns],
        "0.0.0.0:1935",
    );
    // An idle local publisher: the push is wanted, and nothing else costs the server CPU.
    let mut publisher =
        RtmpClient::connect_in(rig.host(2), rig.addr(), "live", Duration::from_secs(5)).unwrap();
    assert_eq!(
        publisher.publish("cam", Duration::from_secs(5)).unwrap(),
        "NetStream.Publish.Start"
    );
    let refusals = |rig: &Rig| -> Vec<u64> {
        rig.log()
            .lines()
            .filter(|l| l.contains("relay ended") && l.contains("reason=refused"))
            .filter_map(|l| log_field(l, "retry_in_ms")?.parse().ok())
            .collect()
    };
    let end = Instant::now() + Duration::from_secs(15);
    while refusals(&rig).iter().filter(|&&w| w >= 1600).count() < 1 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    let reached = refusals(&rig);
    let t_max = reached.len();
    assert!(
        reached.iter().any(|&w| w >= 1600),
        "back-off never reached retry_max: {reached:?}\n{}",
        rig.log()
    );
    let pid = rig.server.pid();
    let (cpu0, t0) = (cpu_time(pid).unwrap(), Instant::now());
    std::thread::sleep(Duration::from_secs(8));
    let cpu = (cpu_time(pid).unwrap() - cpu0).as_secs_f64() / secs(t0.elapsed()) * 100.0;
    let waits = refusals(&rig);
    measured("R3c-cpu-percent", cpu);
    measured(
        "R3c-backoff-max",
        waits.iter().copied().max().unwrap_or(0) as f64 / 1000.0,
    );
    println!("R3c: waits after each refusal (ms): {waits:?}");
    let text = rig.log();
    let refused = text
        .lines()
        .find(|l| l.contains("relay refused by the upstream"))
        .unwrap_or_else(|| panic!("no refusal logged\n{text}"));
    assert!(
        refused.contains("NetStream.Publish.BadName") && refused.contains("Not authorised."),
        "the upstream's own words: {refused}"
    );
    assert!(!text.contains("key=wrong"), "the key is never logged");
    let after: Vec<u64> = waits.iter().skip(t_max).copied().collect();
    assert!(after.len() >= 3, "attempts while at the cap: {waits:?}");
    assert!(
        after.iter().all(|&w| (1600..=2000).contains(&w)),
        "at the cap the waits stay within 80..100 % of retry_max: {waits:?}"
    );
    assert!(cpu < 1.0, "server CPU {cpu:.2} % while refused");
    let _ = upstream.stop();
}
