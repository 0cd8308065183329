//! The cluster on etcd (issue #20), end to end: one etcd and three Lifeline nodes a, b, c on the
//! namespace LAN of `cluster_rig`. Each test prints `MEASURED <id> <seconds>` for
//! docs/cluster.md.
//!
//! * C1: a publisher on a; a second one on b is refused; a player on c decodes a's frames.
//! * C2: a's publisher's cable pulled: b's newcomer publishes within 2 s, c's player goes on
//!   with b's frames without reconnecting.
//! * C3: node a SIGKILLed: its names are free within lease_ttl + 1 s.
//! * C4: node a cut off from etcd only: it stops its publisher within lease_ttl
//!   (`cluster_lease_lost`), b's newcomer publishes after that, c's player never sees both.
//! * C5: etcd restarted: the nodes renew again within lease_ttl, no stream is dropped.
//!
//! Needs root, ffmpeg, nft and etcd (`etcd-server`, installed by scripts/test.sh as root). The
//! tests take turns: each measures a bound.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster_rig;

use cluster_rig::{PLAYER_C, PUB_A, PUB_B, Rig, first_white, ip, measured, wall};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use testkit::{DropWhat, NftDrop};

static TURN: Mutex<()> = Mutex::new(());

fn turn() -> MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The lease TTL of C1–C4 (short, so the tests are short); C5 runs the default 5 s.
const TTL: f64 = 3.0;
/// What a measurement may exceed its bound by: logs are polled every 20 ms, ffmpeg takes a
/// few hundred ms to connect and handshake.
const SLACK: f64 = 0.5;

const A: usize = 0;
const B: usize = 1;

#[test]
fn c1_one_publisher_per_name_across_nodes() {
    let _turn = turn();
    let Some(mut rig) = Rig::new("c1_one_publisher_per_name_across_nodes", "3s") else {
        return;
    };
    let _a = rig.live_publisher(PUB_A, A, false);
    let skip = rig.nodes[B].log_lines();
    let t0 = Instant::now();
    let _b = rig.publisher(PUB_B, B, true);
    let (at, outcome) = rig
        .outcome(B, skip, PUB_B, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("b never decided\n{}", rig.logs()));
    let why = outcome.expect_err("b's publisher must be refused while a's is live");
    assert!(why.contains("published on node a"), "{why}");
    measured("C1-refusal", (at - t0).as_secs_f64());
    let player = rig.live_player_on_c();
    assert!(
        player.frames().iter().all(|f| !f.white),
        "c's player saw b's frames"
    );
    println!("C1: c's player decoded {} frames of a's", player.count());
}

#[test]
fn c2_publisher_cable_pulled_newcomer_on_another_node() {
    let _turn = turn();
    let Some(mut rig) = Rig::new("c2_publisher_cable_pulled_newcomer_on_another_node", "3s") else {
        return;
    };
    let a_pub = rig.live_publisher(PUB_A, A, false);
    let mut player = rig.live_player_on_c();
    // The cable of a's publisher is pulled (and its process frozen): a crashed machine.
    rig.host(PUB_A).set_link(false).unwrap();
    a_pub.freeze();
    let t0 = Instant::now();
    let (at, _b) = rig
        .publish_until_live(PUB_B, B, true, Duration::from_secs(15))
        .unwrap_or_else(|| panic!("b's newcomer never published\n{}", rig.logs()));
    let took = (at - t0).as_secs_f64();
    measured("C2-newcomer", took);
    let white = player.wait_frame_after(t0, Duration::from_secs(15), |f| f.white);
    let white = white.unwrap_or_else(|| panic!("c's player never saw b's frames\n{}", rig.logs()));
    measured("C2-player-follows", (white - t0).as_secs_f64());
    std::thread::sleep(Duration::from_secs(1));
    assert!(player.process().is_running(), "c's player did not survive");
    let (_, interleaved) = first_white(&player);
    assert!(!interleaved, "c's player saw a's frames after b's");
    assert!(took <= 2.0 + SLACK, "newcomer published after {took:.2}s");
    let c_closes = rig.nodes[2].close_lines(0);
    assert!(
        !c_closes
            .iter()
            .any(|l| l.contains(&format!("peer={}:", ip(PLAYER_C)))),
        "c's player was disconnected: {c_closes:?}"
    );
}

#[test]
fn c3_node_killed_names_free_within_the_lease() {
    let _turn = turn();
    let Some(mut rig) = Rig::new("c3_node_killed_names_free_within_the_lease", "3s") else {
        return;
    };
    let _a = rig.live_publisher(PUB_A, A, false);
    let t0 = rig.kill_node(A);
    let (at, _b) = rig
        .publish_until_live(PUB_B, B, true, Duration::from_secs(20))
        .unwrap_or_else(|| panic!("b's newcomer never published\n{}", rig.logs()));
    let took = (at - t0).as_secs_f64();
    measured("C3-name-free", took);
    assert!(
        took <= TTL + 1.0 + SLACK,
        "a's name was free only after {took:.2}s"
    );
}

#[test]
fn c4_node_cut_off_from_etcd_fences_itself() {
    let _turn = turn();
    let Some(mut rig) = Rig::new("c4_node_cut_off_from_etcd_fences_itself", "3s") else {
        return;
    };
    let _a = rig.live_publisher(PUB_A, A, false);
    let player = rig.live_player_on_c();
    let skip_a = rig.nodes[A].log_lines();
    // Only a's traffic to and from etcd is dropped: its RTMP clients still reach it.
    let _cut = NftDrop::new(rig.host(1), DropWhat::Host(ip(0).parse().unwrap())).unwrap();
    let t0 = Instant::now();
    let cut_at = wall();
    let (b_at, _b) = rig
        .publish_until_live(PUB_B, B, true, Duration::from_secs(20))
        .unwrap_or_else(|| panic!("b's newcomer never published\n{}", rig.logs()));
    let close = rig.nodes[A]
        .wait_line(skip_a, Duration::from_secs(1), |l| {
            l.contains(" close conn=") && l.contains(&format!("peer={}:", ip(PUB_A)))
        })
        .unwrap_or_else(|| panic!("a's publisher was never stopped\n{}", rig.logs()));
    assert!(close.contains("reason=cluster_lease_lost"), "{close}");
    let fenced = rig.nodes[A]
        .log_text()
        .lines()
        .skip(skip_a)
        .find(|l| l.contains("local publishers stopped (cluster_lease_lost)"))
        .map(str::to_owned)
        .unwrap_or_default();
    let fence_at = testkit::rtmp::log_time(&fenced).expect("fence time");
    let claimed = rig.nodes[B]
        .log_text()
        .lines()
        .rfind(|l| l.contains("cluster: claim held"))
        .map(str::to_owned)
        .unwrap_or_default();
    let claim_at = testkit::rtmp::log_time(&claimed).expect("claim time");
    let b_took = (b_at - t0).as_secs_f64();
    measured("C4-newcomer", b_took);
    measured("C4-claim-after-fence", claim_at - fence_at);
    assert!(
        claim_at > fence_at,
        "b claimed at {claim_at} before a fenced at {fence_at}"
    );
    let white = player.wait_frame_after(t0, Duration::from_secs(15), |f| f.white);
    assert!(
        white.is_some(),
        "c's player never saw b's frames\n{}",
        rig.logs()
    );
    std::thread::sleep(Duration::from_secs(1));
    let (_, interleaved) = first_white(&player);
    assert!(
        !interleaved,
        "c's player saw a's and b's frames interleaved"
    );
    // The fence came within lease_ttl of the cut (the last renewal was before it).
    let fence_secs = fence_at - cut_at;
    measured("C4-fence", fence_secs);
    assert!(
        fence_secs <= TTL + SLACK,
        "a fenced {fence_secs:.2}s after the cut"
    );
}

#[test]
fn c5_etcd_restarted_nothing_dropped() {
    let _turn = turn();
    let Some(mut rig) = Rig::new("c5_etcd_restarted_nothing_dropped", "5s") else {
        return;
    };
    let mut a_pub = rig.live_publisher(PUB_A, A, false);
    let player = rig.live_player_on_c();
    let skips: Vec<usize> = rig.nodes.iter().map(|n| n.log_lines()).collect();
    let t0 = Instant::now();
    rig.etcd.stop();
    // etcd away for about 2 s (the stop itself included), less than the 5 s lease.
    std::thread::sleep(Duration::from_secs(2).saturating_sub(t0.elapsed()));
    rig.etcd.restart();
    let back = Instant::now();
    measured("C5-etcd-away", (back - t0).as_secs_f64());
    let mut worst: f64 = 0.0;
    for (n, &skip) in skips.iter().enumerate() {
        let renewed = rig.nodes[n].wait_line(skip, Duration::from_secs(5), |l| {
            l.contains("lease renewed again")
        });
        assert!(renewed.is_some(), "node {n} never renewed\n{}", rig.logs());
        worst = worst.max(back.elapsed().as_secs_f64());
    }
    measured("C5-renewed", worst);
    assert!(worst <= 5.0, "renewed {worst:.2}s after etcd was back");
    std::thread::sleep(Duration::from_secs(2));
    for (n, &skip) in skips.iter().enumerate() {
        let text = rig.nodes[n].log_text();
        let after: Vec<&str> = text.lines().skip(skip).collect();
        assert!(
            !after
                .iter()
                .any(|l| l.contains("cluster_lease_lost") || l.contains(" close conn=")),
            "node {n} dropped something:\n{}",
            after.join("\n")
        );
    }
    assert!(a_pub.is_running(), "a's publisher ended");
    let gap = player.max_gap(t0, Instant::now());
    measured("C5-player-gap", gap.as_secs_f64());
    assert!(
        gap <= Duration::from_secs(1),
        "c's player had a {gap:?} gap"
    );
}
