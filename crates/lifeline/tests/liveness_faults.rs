//! Fault tests: dead TCP peers in network namespaces, and how fast Lifeline lets go of them.
//!
//! Every test builds its own LAN (`testkit::Lan`: host 0 runs the server, the others run real
//! ffmpeg publishers/players or a tiny raw RTMP client), kills a peer the way a crash or a pulled
//! cable does (link down or packets dropped, *and* the process frozen: never a clean close),
//! prints `MEASURED <scenario> <seconds>` (collected by `scripts/liveness-times.sh` into
//! docs/liveness.md) and asserts the bound.
//!
//! L1..L8: issue "Dead connections never hold a stream hostage".
//! K1..K6: issue "Know a dead peer in seconds" (the publish-conflict challenge).
//!
//! Needs root, ffmpeg and nft; otherwise each test prints why it is skipped and passes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use testkit::client::RtmpClient;
use testkit::player::{Player, WHITE_SRC, cpu_time, vm_rss_kib};
use testkit::process::ChildGuard;
use testkit::rtmp::{
    Lifeline, ffmpeg_publish, ffmpeg_publish_src, log_field, log_time, require_tool,
};
use testkit::{DropWhat, Lan, NetNs, NftDrop, require_root};

/// Where the server listens (host 0 of every LAN).
const LISTEN: &str = "192.0.2.10:1935";
/// The stream every test uses.
const STREAM: &str = "live/cam";
/// What a measurement may exceed a bound by: the log is polled every 20 ms and the fault is
/// injected by `ip`/`nft` commands that take a few ms themselves.
const SLACK: f64 = 0.5;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_lifeline"))
}

/// A LAN with the server on host 0. Field order matters: the server stops before the
/// namespaces go.
struct Rig {
    server: Lifeline,
    lan: Lan,
}

impl Rig {
    /// `None` (after printing why) when the test cannot run here.
    fn new(test: &str, clients: usize, config: &str) -> Option<Self> {
        if !require_root(test) || !require_tool(test, "ffmpeg") || !require_tool(test, "nft") {
            return None;
        }
        let lan = Lan::new("lf", clients + 1).expect("build the LAN");
        let ns = lan.hosts[0].name().to_owned();
        let server = Lifeline::start_in(bin(), config, &["ip", "netns", "exec", &ns], LISTEN);
        Some(Self { server, lan })
    }

    fn host(&self, i: usize) -> &NetNs {
        &self.lan.hosts[i]
    }

    fn ip(i: usize) -> String {
        Lan::addr(i).to_string()
    }

    fn url(&self) -> String {
        self.server.url(STREAM)
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// An ffmpeg publisher on host `i` (testsrc, or `src`).
    fn publisher(&self, i: usize, src: Option<&str>) -> ChildGuard {
        let url = self.url();
        let cmd = match src {
            Some(src) => ffmpeg_publish_src(&url, 600, src),
            None => ffmpeg_publish(&url, 600),
        };
        let log = self
            .server
            .dir()
            .join(format!("pub-{i}-{}.log", testkit::unique_name("")));
        ChildGuard::spawn_logged(&mut self.host(i).wrap(&cmd), &log).expect("start ffmpeg")
    }

    /// Waits (after log line `skip`) for host `i`'s publish to be accepted (`Ok`) or refused
    /// (`Err`), returning when it was seen and the line.
    fn publish_outcome(
        &mut self,
        skip: usize,
        i: usize,
        timeout: Duration,
    ) -> Option<(Instant, Result<String, String>)> {
        let peer = format!("peer={}:", Self::ip(i));
        let line = self.server.wait_line(skip, timeout, |l| {
            l.contains(&peer) && (l.contains(" publish conn=") || l.contains("publish refused"))
        })?;
        let at = Instant::now();
        Some(if line.contains("publish refused") {
            (at, Err(line))
        } else {
            (at, Ok(line))
        })
    }

    /// Starts a publisher on host `i` and waits until the server has accepted it.
    fn live_publisher(&mut self, i: usize) -> ChildGuard {
        let skip = self.server.log_lines();
        let p = self.publisher(i, None);
        match self.publish_outcome(skip, i, Duration::from_secs(15)) {
            Some((_, Ok(_))) => p,
            other => panic!("publisher {i} not live: {other:?}\n{}", self.log()),
        }
    }

    /// A player on host `i` that has already decoded a second of video.
    fn live_player(&self, i: usize) -> Player {
        let p = Player::start(self.host(i), &self.url()).expect("start player");
        assert!(
            p.wait_frames(25, Duration::from_secs(15)),
            "player {i} got {} frames\n{}",
            p.count(),
            self.log()
        );
        p
    }

    /// Waits for the close of host `i`'s connection; returns the seconds since `t0` and the
    /// reason label.
    fn wait_close(
        &mut self,
        skip: usize,
        i: usize,
        t0: Instant,
        timeout: Duration,
    ) -> Option<(f64, String)> {
        let line = self.server.wait_close(skip, &Self::ip(i), timeout)?;
        let secs = t0.elapsed().as_secs_f64();
        let reason = log_field(&line, "reason").unwrap_or("?").to_owned();
        Some((secs, reason))
    }

    fn log(&self) -> String {
        self.server.log_text()
    }
}

/// Pulls host `i`'s cable and freezes its process: a crashed or unplugged machine.
fn kill_host(host: &NetNs, process: &ChildGuard) -> Instant {
    let t0 = Instant::now();
    host.set_link(false).expect("link down");
    process.freeze();
    t0
}

fn measured(id: &str, secs: f64) {
    println!("MEASURED {id} {secs:.2}");
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

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

/// A playing viewer's cable is pulled; returns (seconds to release, reason) after checking
/// that the publisher and another viewer went on without a gap.
fn player_cable_pulled(test: &str, id: &str, bound: f64, reasons: &[&str]) {
    let Some(mut rig) = Rig::new(test, 3, "") else {
        return;
    };
    let mut publisher = rig.live_publisher(1);
    let mut victim = rig.live_player(2);
    let other = rig.live_player(3);
    let mark = rig.server.log_lines();
    let t0 = kill_host(rig.host(2), victim.process());

    let (after, reason) = rig
        .wait_close(mark, 2, t0, Duration::from_secs_f64(bound + 10.0))
        .unwrap_or_else(|| panic!("dead player never released\n{}", rig.log()));
    measured(id, after);
    println!("{id}: reason {reason}");
    let until = Instant::now() + Duration::from_secs(1);
    std::thread::sleep(Duration::from_secs(1));
    let gap = other.max_gap(t0, until);
    assert!(
        reasons.contains(&reason.as_str()),
        "reason {reason}\n{}",
        rig.log()
    );
    assert!(
        after <= bound + SLACK,
        "released after {after:.2}s > {bound}s"
    );
    assert!(
        gap <= Duration::from_secs(1),
        "the other player had a {gap:?} gap"
    );
    assert!(publisher.is_running(), "publisher died\n{}", rig.log());
    assert!(
        rig.server.close_lines(mark).len() == 1,
        "{}",
        rig.server.close_lines(mark).join("\n")
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

/// A 3 s outage of the hosts in `down` (link down, processes running): nothing may close, and
/// both players must play again. Returns the seconds from link-up until both had frames again.
fn short_outage(test: &str, id: &str, down: &[usize]) {
    let Some(mut rig) = Rig::new(test, 3, "") else {
        return;
    };
    let mut publisher = rig.live_publisher(1);
    let mut p2 = rig.live_player(2);
    let mut p3 = rig.live_player(3);
    let mark = rig.server.log_lines();
    for &h in down {
        rig.host(h).set_link(false).unwrap();
    }
    std::thread::sleep(Duration::from_secs(3));
    for &h in down {
        rig.host(h).set_link(true).unwrap();
    }
    let up = Instant::now();
    let back: Vec<Option<Instant>> = [&p2, &p3]
        .iter()
        .map(|p| p.wait_frame_after(up, Duration::from_secs(15), |_| true))
        .collect();
    let recovered = back
        .iter()
        .map(|b| b.map(|t| secs(t - up)))
        .collect::<Option<Vec<f64>>>();
    let recovery = recovered
        .as_ref()
        .map(|v| v.iter().copied().fold(0.0, f64::max));
    if let Some(r) = recovery {
        measured(id, r);
    }
    // Then they keep playing.
    std::thread::sleep(Duration::from_secs(3));
    let later = Instant::now() - Duration::from_secs(2);
    assert!(
        recovery.is_some(),
        "a player never resumed: {back:?}\n{}",
        rig.log()
    );
    let closes = rig.server.close_lines(mark);
    assert!(closes.is_empty(), "closed: {}", closes.join("\n"));
    assert!(publisher.is_running(), "publisher exited");
    assert!(p2.process().is_running() && p3.process().is_running());
    for p in [&p2, &p3] {
        let n = p.count_after(later, |_| true);
        assert!(n >= 25, "a player got only {n} frames in the last 2 s");
    }
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
