//! Fault tests of issue "Know a dead peer in seconds" (K1..K6): the publish-conflict challenge
//! and the kernel's evidence, on the same namespace LAN as `liveness_faults.rs` (`fault_rig`).
//! Each prints `MEASURED <scenario> <seconds>` for `scripts/liveness-times.sh`.
//!
//! Needs root, ffmpeg and nft; otherwise each test prints why it is skipped and passes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault_rig;

use fault_rig::*;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use testkit::client::RtmpClient;
use testkit::player::WHITE_SRC;
use testkit::rtmp::log_time;
use testkit::{DropWhat, NftDrop};

// ---------------------------------------------------------------------------------------------
// K: Know a dead peer in seconds (challenge on publish conflict, default challenge_timeout 1 s)
// ---------------------------------------------------------------------------------------------

/// K1: publisher's cable pulled; a newcomer starting 1 s later publishes at its first attempt,
/// within 2 s of the pull; the player gets the newcomer's frames without reconnecting.
#[test]
fn k1_newcomer_replaces_a_dead_publisher_at_first_attempt() {
    let Some(mut rig) = Rig::new("k1", 3, "") else {
        return;
    };
    let old = rig.live_publisher(1);
    let mut player = rig.live_player(3);
    let mark = rig.server.log_lines();
    let t0 = kill_host(rig.host(1), &old);
    std::thread::sleep(Duration::from_secs(1));
    let skip = rig.server.log_lines();
    let _newcomer = rig.publisher(2, Some(WHITE_SRC));
    let outcome = rig.publish_outcome(skip, 2, Duration::from_secs(8));
    let at = match outcome {
        Some((at, Ok(_))) => at,
        other => panic!(
            "first attempt did not publish ({:.2}s after the pull): {other:?}\n{}",
            secs(t0.elapsed()),
            rig.log()
        ),
    };
    let took = secs(at - t0);
    measured("K1", took);
    let text = rig.log();
    let held = text
        .lines()
        .skip(skip)
        .find(|l| l.contains("challenging the publisher"))
        .zip(
            text.lines()
                .skip(skip)
                .find(|l| l.contains(" publish conn=")),
        )
        .and_then(|(c, p)| Some(log_time(p)? - log_time(c)?));
    println!("K1: the server held the newcomer's publish for {held:?} s");
    // SLACK covers the newcomer ffmpeg's own start-up (≈ 0.3 s before it sends publish).
    assert!(took <= 2.0 + SLACK, "published {took:.2}s after the pull");
    let (_, reason) = rig
        .wait_close(mark, 1, t0, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("old publisher not closed\n{}", rig.log()));
    assert_eq!(reason, "taken_over");
    assert!(
        player
            .wait_frame_after(at, Duration::from_secs(10), |f| f.white)
            .is_some(),
        "player got no newcomer frame\n{}",
        rig.log()
    );
    assert!(player.process().is_running(), "player had to reconnect");
}

/// One raw newcomer from host `i`: seconds until its publish was answered, and the code.
fn newcomer_attempt(rig: &Rig, i: usize) -> (f64, String) {
    let mut c = RtmpClient::connect_in(rig.host(i), rig.addr(), "live", Duration::from_secs(5))
        .expect("newcomer connects");
    c.create_stream(Duration::from_secs(5)).unwrap();
    let t = Instant::now();
    let code = c
        .publish("cam", Duration::from_secs(10))
        .unwrap_or_else(|e| format!("error: {e}"));
    (secs(t.elapsed()), code)
}

/// K2: a live publisher and a newcomer → refused within challenge_timeout + 0.5 s while the live
/// stream plays on; then 20 newcomers with 10 % loss on the live publisher: 20 refusals.
#[test]
fn k2_live_publisher_answers_the_challenge() {
    let Some(mut rig) = Rig::new("k2", 3, "") else {
        return;
    };
    let mut live = rig.live_publisher(1);
    let player = rig.live_player(3);
    let mark = rig.server.log_lines();
    let t0 = Instant::now();
    let (took, code) = newcomer_attempt(&rig, 2);
    measured("K2", took);
    std::thread::sleep(Duration::from_millis(500));
    let gap = player.max_gap(t0, Instant::now());
    assert_ne!(
        code, "NetStream.Publish.Start",
        "a live publisher was stolen"
    );
    assert!(code.starts_with("NetStream."), "no clean refusal: {code}");
    assert!(took <= 1.0 + 0.5, "refused after {took:.2}s");
    assert!(gap <= Duration::from_secs(1), "live player gap {gap:?}");

    let _loss = NftDrop::new(rig.host(1), DropWhat::Loss(10)).unwrap();
    let t1 = Instant::now();
    let mut refused = 0;
    let mut worst: f64 = 0.0;
    for _ in 0..20 {
        let (took, code) = newcomer_attempt(&rig, 2);
        worst = worst.max(took);
        if code != "NetStream.Publish.Start" && code.starts_with("NetStream.") {
            refused += 1;
        } else {
            println!("K2: newcomer got {code} after {took:.2}s under loss");
        }
        if code == "NetStream.Publish.Start" {
            break;
        }
    }
    measured("K2-loss", worst);
    println!(
        "K2: {refused}/20 refused under 10% loss; live player's longest gap {:?}",
        player.max_gap(t1, Instant::now())
    );
    assert_eq!(refused, 20, "{}", rig.log());
    assert!(live.is_running(), "live publisher died");
    let closes = rig.server.close_lines(mark);
    assert!(
        closes.iter().all(|l| !l.contains("peer=192.0.2.11:")),
        "{}",
        closes.join("\n")
    );
}

/// K3: a live publisher SIGSTOPped for 3 s (link up, so its kernel still ACKs) and a newcomer
/// during the pause: the newcomer wins (the RTMP process must answer, not the kernel).
#[test]
fn k3_frozen_publisher_loses_to_a_newcomer() {
    let Some(mut rig) = Rig::new("k3", 3, "") else {
        return;
    };
    let old = rig.live_publisher(1);
    let player = rig.live_player(3);
    let mark = rig.server.log_lines();
    old.freeze();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let skip = rig.server.log_lines();
    let start = Instant::now();
    let _newcomer = rig.publisher(2, Some(WHITE_SRC));
    let outcome = rig.publish_outcome(skip, 2, Duration::from_secs(2));
    if let Some(left) = Duration::from_secs(3).checked_sub(t0.elapsed()) {
        std::thread::sleep(left);
    }
    old.thaw();
    let outcome = outcome.or_else(|| rig.publish_outcome(skip, 2, Duration::from_secs(8)));
    let won = matches!(outcome, Some((_, Ok(_))));
    println!(
        "K3: outcome {}",
        if won {
            "newcomer-wins"
        } else {
            "incumbent-kept"
        }
    );
    if let Some((at, _)) = &outcome {
        measured("K3", secs(*at - start));
    }
    assert!(won, "newcomer did not win: {outcome:?}\n{}", rig.log());
    let (_, reason) = rig
        .wait_close(mark, 1, t0, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("frozen publisher not closed\n{}", rig.log()));
    assert_eq!(reason, "taken_over");
    let (at, _) = outcome.unwrap();
    assert!(
        player
            .wait_frame_after(at, Duration::from_secs(10), |f| f.white)
            .is_some(),
        "player got no newcomer frame"
    );
}

/// K4: a player's cable pulled while streaming → released within 10 s (peer_unreachable), the
/// other player without a gap.
#[test]
fn k4_dead_player_is_released_by_tcp_info_evidence() {
    player_cable_pulled("k4", "K4", 10.0, &["peer_unreachable"]);
}

/// K5: a healthy player whose link goes down for 3 s and comes back is not closed.
#[test]
fn k5_player_survives_a_short_outage() {
    short_outage("k5", "K5", &[2]);
}

/// K6: 20 newcomers racing for a dead publisher's name: exactly one publishes, the others get a
/// clean refusal.
#[test]
fn k6_newcomers_race_for_a_dead_name() {
    let Some(mut rig) = Rig::new("k6", 3, "") else {
        return;
    };
    let old = rig.live_publisher(1);
    let mark = rig.server.log_lines();
    let mut clients = Vec::new();
    for k in 0..20 {
        let host = rig.host(2 + k % 2);
        let mut c = RtmpClient::connect_in(host, rig.addr(), "live", Duration::from_secs(5))
            .expect("newcomer connects");
        c.create_stream(Duration::from_secs(5)).unwrap();
        clients.push(c);
    }
    let t0 = kill_host(rig.host(1), &old);
    std::thread::sleep(Duration::from_secs(1));
    let barrier = Arc::new(Barrier::new(clients.len()));
    let race = Instant::now();
    let handles: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let code = c
                    .publish("cam", Duration::from_secs(10))
                    .unwrap_or_else(|e| format!("error: {e}"));
                (Instant::now(), code, c)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let winners = results
        .iter()
        .filter(|(_, c, _)| c == "NetStream.Publish.Start")
        .count();
    let unclean: Vec<&String> = results
        .iter()
        .map(|(_, c, _)| c)
        .filter(|c| !c.starts_with("NetStream."))
        .collect();
    let last = results.iter().map(|(at, _, _)| *at).max().unwrap();
    measured("K6", secs(last - race));
    println!(
        "K6: {winners} winner(s), codes {:?} ({:.2}s after the pull)",
        results
            .iter()
            .map(|(_, c, _)| c.as_str())
            .collect::<Vec<_>>(),
        secs(last - t0)
    );
    assert_eq!(winners, 1, "{}", rig.log());
    assert!(unclean.is_empty(), "unclean answers: {unclean:?}");
    let (_, reason) = rig
        .wait_close(mark, 1, t0, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("dead publisher not closed\n{}", rig.log()));
    assert_eq!(reason, "taken_over");
}
