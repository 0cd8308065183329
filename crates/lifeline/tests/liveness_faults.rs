//! Fault tests of issue "Dead connections never hold a stream hostage" (L1..L8): dead TCP peers
//! in network namespaces, and how fast Lifeline lets go of them.
//!
//! Every test builds its own LAN (`fault_rig`: host 0 runs the server, the others run real
//! ffmpeg publishers/players or a tiny raw RTMP client), kills a peer the way a crash or a pulled
//! cable does (link down or packets dropped, *and* the process frozen: never a clean close),
//! prints `MEASURED <scenario> <seconds>` (collected by `scripts/liveness-times.sh` into
//! docs/liveness.md) and asserts the bound. The K tests are in `fast_verdicts.rs`.
//!
//! Needs root, ffmpeg and nft; otherwise each test prints why it is skipped and passes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault_rig;

use fault_rig::*;
use std::time::{Duration, Instant};
use testkit::client::RtmpClient;
use testkit::player::{WHITE_SRC, cpu_time, vm_rss_kib};
use testkit::rtmp::log_field;
use testkit::{DropWhat, Lan, NftDrop};

// ---------------------------------------------------------------------------------------------
// L: Dead connections never hold a stream hostage
// ---------------------------------------------------------------------------------------------

/// L1: the publisher's cable is pulled; a newcomer from another host (retrying as a real
/// encoder would) publishes the name within stale_after + 1 s, a player receives its frames,
/// and the old connection ends with taken_over.
#[test]
fn l1_dead_publisher_is_taken_over_by_a_newcomer() {
    let Some(mut rig) = Rig::new("l1", 3, "") else {
        return;
    };
    let old = rig.live_publisher(1);
    let player = rig.live_player(3);
    let mark = rig.server.log_lines();
    let t0 = kill_host(rig.host(1), &old);

    let mut newcomer = None;
    let mut attempts = 0;
    while newcomer.is_none() && t0.elapsed() < Duration::from_secs(12) {
        attempts += 1;
        let skip = rig.server.log_lines();
        let mut p = rig.publisher(2, Some(WHITE_SRC));
        match rig.publish_outcome(skip, 2, Duration::from_secs(10)) {
            Some((at, Ok(_))) => newcomer = Some((at, p)),
            _ => {
                p.wait_timeout(Duration::from_secs(3));
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    let (at, _newcomer) = newcomer.unwrap_or_else(|| panic!("no takeover\n{}", rig.log()));
    let took = secs(at - t0);
    measured("L1", took);
    println!("L1: newcomer published after {attempts} attempt(s)");
    assert!(
        took <= 5.0 + 1.0,
        "takeover after {took:.2}s > stale_after + 1s\n{}",
        rig.log()
    );
    let (_, reason) = rig
        .wait_close(mark, 1, t0, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("old publisher not closed\n{}", rig.log()));
    assert_eq!(reason, "taken_over", "{}", rig.log());
    assert!(
        player
            .wait_frame_after(at, Duration::from_secs(10), |f| f.white)
            .is_some(),
        "the player got no frame of the newcomer\n{}",
        rig.log()
    );
}

/// L2: with on_duplicate = "reject", the dead publisher's name is freed by publish_idle within
/// publish_idle_timeout + 1 s; a newcomer is refused before and succeeds after.
#[test]
fn l2_reject_policy_frees_the_name_after_publish_idle() {
    let config = "[publish]\non_duplicate = \"reject\"\n";
    let Some(mut rig) = Rig::new("l2", 2, config) else {
        return;
    };
    let old = rig.live_publisher(1);
    // Streaming for a while, so every reply the server sent it is ACKed: a publisher pulled
    // with a reply in flight goes sooner, at tcp_user_timeout (reason user_timeout).
    std::thread::sleep(Duration::from_secs(2));
    let mark = rig.server.log_lines();
    let t0 = kill_host(rig.host(1), &old);

    std::thread::sleep(Duration::from_secs(2));
    let mut early = RtmpClient::connect_in(rig.host(2), rig.addr(), "live", Duration::from_secs(5))
        .expect("newcomer connects");
    let code = early
        .publish("cam", Duration::from_secs(5))
        .expect("answer");
    assert_ne!(
        code, "NetStream.Publish.Start",
        "reject policy let a newcomer in"
    );
    drop(early);

    let (after, reason) = rig
        .wait_close(mark, 1, t0, Duration::from_secs(40))
        .unwrap_or_else(|| panic!("dead publisher never released\n{}", rig.log()));
    measured("L2", after);
    assert_eq!(reason, "publish_idle", "{}", rig.log());
    assert!(after <= 30.0 + 1.0, "released after {after:.2}s");

    let skip = rig.server.log_lines();
    let _newcomer = rig.publisher(2, None);
    let outcome = rig.publish_outcome(skip, 2, Duration::from_secs(10));
    assert!(
        matches!(outcome, Some((_, Ok(_)))),
        "{outcome:?}\n{}",
        rig.log()
    );
}

/// L3: a player's cable is pulled while streaming → released within 20 s.
#[test]
fn l3_dead_player_is_released() {
    player_cable_pulled(
        "l3",
        "L3",
        20.0,
        &["play_stall", "user_timeout", "peer_unreachable"],
    );
}

/// L4: connected (`connect` done) but never publishes or plays, then the host dies → released
/// by handshake_timeout within 10 + 1 s.
#[test]
fn l4_dead_connection_before_publish_is_released() {
    let Some(mut rig) = Rig::new("l4", 1, "") else {
        return;
    };
    let mark = rig.server.log_lines();
    let client = RtmpClient::connect_in(rig.host(1), rig.addr(), "live", Duration::from_secs(5))
        .expect("connect");
    let accepted = Instant::now();
    let t0 = Instant::now();
    rig.host(1).set_link(false).unwrap();
    let (after, reason) = rig
        .wait_close(mark, 1, t0, Duration::from_secs(20))
        .unwrap_or_else(|| panic!("never released\n{}", rig.log()));
    measured("L4", after);
    drop(client);
    println!(
        "L4: released {:.2}s after connect",
        secs(accepted.elapsed())
    );
    assert_eq!(reason, "handshake_timeout", "{}", rig.log());
    assert!(after <= 10.0 + 1.0, "released after {after:.2}s");
}

/// L5: application timeouts out of the way; an idle connection's peer is black-holed (nft, both
/// directions) → the kernel's keepalive releases it within idle + count × interval + 1 s.
#[test]
fn l5_kernel_keepalive_releases_an_idle_dead_peer() {
    let config = "[liveness]\nhandshake_timeout = \"1h\"\npublish_idle_timeout = \"1h\"\n\
                  play_stall_timeout = \"1h\"\nping_interval = \"0s\"\n\
                  tcp_keepalive_idle = \"4s\"\ntcp_keepalive_interval = \"2s\"\n\
                  tcp_keepalive_count = 3\ntcp_user_timeout = \"0s\"\n";
    let Some(mut rig) = Rig::new("l5", 1, config) else {
        return;
    };
    let mark = rig.server.log_lines();
    let client = RtmpClient::connect_in(rig.host(1), rig.addr(), "live", Duration::from_secs(5))
        .expect("connect");
    // Let the last ACKs of the connect exchange land: idle counts from the last segment.
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    let _blackhole = NftDrop::new(rig.host(1), DropWhat::Host(Lan::addr(0).into())).unwrap();
    let (after, reason) = rig
        .wait_close(mark, 1, t0, Duration::from_secs(20))
        .unwrap_or_else(|| panic!("never released\n{}", rig.log()));
    measured("L5", after);
    drop(client);
    assert_eq!(reason, "keepalive_timeout", "{}", rig.log());
    assert!(after <= 4.0 + 3.0 * 2.0 + 1.0, "released after {after:.2}s");
}

/// L6: publisher's and a player's links down for 3 s, then up → nothing closed, all continue.
#[test]
fn l6_short_outage_closes_nothing() {
    short_outage("l6", "L6", &[1, 2]);
}

/// L7: a live publisher and a second publisher of the same name → refused; the live stream is
/// never stolen (its player sees only its frames, without a gap).
#[test]
fn l7_live_publisher_is_never_stolen() {
    let Some(mut rig) = Rig::new("l7", 3, "") else {
        return;
    };
    let mut live = rig.live_publisher(1);
    let player = rig.live_player(3);
    let mark = rig.server.log_lines();
    let t0 = Instant::now();
    let mut newcomer = rig.publisher(2, Some(WHITE_SRC));
    let outcome = rig.publish_outcome(mark, 2, Duration::from_secs(10));
    let Some((at, Err(_))) = outcome else {
        panic!("newcomer not refused: {outcome:?}\n{}", rig.log());
    };
    measured("L7", secs(at - t0));
    assert!(
        newcomer.wait_timeout(Duration::from_secs(5)).is_some(),
        "refused ffmpeg still running"
    );
    std::thread::sleep(Duration::from_secs(1));
    let gap = player.max_gap(t0, Instant::now());
    assert_eq!(player.count_after(t0, |f| f.white), 0, "newcomer's frames");
    assert!(gap <= Duration::from_secs(1), "player gap {gap:?}");
    assert!(live.is_running(), "live publisher died\n{}", rig.log());
    let closes = rig.server.close_lines(mark);
    assert!(
        closes.iter().all(|l| !l.contains("peer=192.0.2.11:")),
        "{}",
        closes.join("\n")
    );
}

/// L8: a player that stays connected (link up) but stops reading (frozen) is released by the
/// stall bound, and the server does not buffer for it meanwhile.
#[test]
fn l8_frozen_reader_is_released_without_memory_growth() {
    let Some(mut rig) = Rig::new("l8", 3, "") else {
        return;
    };
    let mut publisher = rig.live_publisher(1);
    let mut frozen = rig.live_player(2);
    let other = rig.live_player(3);
    let pid = rig.server.pid();
    let rss0 = vm_rss_kib(pid).unwrap();
    let mut rss_max = rss0;
    let mark = rig.server.log_lines();
    let t0 = Instant::now();
    let cpu0 = cpu_time(pid).unwrap();
    frozen.process().freeze();
    let line = loop {
        rss_max = rss_max.max(vm_rss_kib(pid).unwrap_or(0));
        if let Some(l) = rig
            .server
            .wait_close(mark, &Rig::ip(2), Duration::from_millis(200))
        {
            break Some(l);
        }
        if t0.elapsed() > Duration::from_secs(40) {
            break None;
        }
    };
    let after = secs(t0.elapsed());
    let cpu_pct = (cpu_time(pid).unwrap() - cpu0).as_secs_f64() / after * 100.0;
    let line = line.unwrap_or_else(|| panic!("frozen player never released\n{}", rig.log()));
    measured("L8", after);
    let reason = log_field(&line, "reason").unwrap_or("?").to_owned();
    let growth_mib = (rss_max.saturating_sub(rss0)) as f64 / 1024.0;
    println!(
        "L8: reason {reason}, server RSS {rss0} kB -> max {rss_max} kB (+{growth_mib:.1} MiB), \
         server CPU meanwhile {cpu_pct:.1} %"
    );
    // Its socket blocked, the frozen player's task waits for write readiness: no spinning (a
    // busy loop would show as ~100 % of a core; the stream and two players cost a few percent).
    assert!(
        cpu_pct < 50.0,
        "server CPU {cpu_pct:.1} % while a player was frozen"
    );
    let gap = other.max_gap(t0, Instant::now());
    // play_stall or user_timeout are the stall bounds; a frozen ffmpeg also stops answering
    // RTMP pings, so ping_timeout (ping_interval + ping_timeout after its last word) may come
    // first.
    assert!(
        ["play_stall", "user_timeout", "ping_timeout"].contains(&reason.as_str()),
        "{line}"
    );
    assert!(after <= 15.0 + 5.0, "released after {after:.2}s");
    assert!(growth_mib < 50.0, "RSS grew {growth_mib:.1} MiB");
    assert!(gap <= Duration::from_secs(1), "other player gap {gap:?}");
    assert!(publisher.is_running());
}
