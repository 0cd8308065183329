//! The LAN rig of the fault tests (`liveness_faults.rs`, `fast_verdicts.rs`): a server on host 0
//! of a namespace LAN, ffmpeg publishers and players on the other hosts, ways to kill a host the
//! way a crash or a pulled cable does, and the scenarios both issues' tests share.

// Each test binary uses part of the rig.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use testkit::player::Player;
use testkit::process::ChildGuard;
use testkit::rtmp::{Lifeline, ffmpeg_publish, ffmpeg_publish_src, log_field, require_tool};
use testkit::{Lan, NetNs, require_root};

/// Where the server listens (host 0 of every LAN).
pub(crate) const LISTEN: &str = "192.0.2.10:1935";
/// The stream every test uses.
pub(crate) const STREAM: &str = "live/cam";
/// What a measurement may exceed a bound by: the log is polled every 20 ms and the fault is
/// injected by `ip`/`nft` commands that take a few ms themselves.
pub(crate) const SLACK: f64 = 0.5;

pub(crate) fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_lifeline"))
}

/// A LAN with the server on host 0. Field order matters: the server stops before the
/// namespaces go.
pub(crate) struct Rig {
    pub(crate) server: Lifeline,
    pub(crate) lan: Lan,
}

impl Rig {
    /// `None` (after printing why) when the test cannot run here.
    pub(crate) fn new(test: &str, clients: usize, config: &str) -> Option<Self> {
        if !require_root(test) || !require_tool(test, "ffmpeg") || !require_tool(test, "nft") {
            return None;
        }
        let lan = Lan::new("lf", clients + 1).expect("build the LAN");
        let ns = lan.hosts[0].name().to_owned();
        let server = Lifeline::start_in(bin(), config, &["ip", "netns", "exec", &ns], LISTEN);
        Some(Self { server, lan })
    }

    pub(crate) fn host(&self, i: usize) -> &NetNs {
        &self.lan.hosts[i]
    }

    pub(crate) fn ip(i: usize) -> String {
        Lan::addr(i).to_string()
    }

    pub(crate) fn url(&self) -> String {
        self.server.url(STREAM)
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// An ffmpeg publisher on host `i` (testsrc, or `src`).
    pub(crate) fn publisher(&self, i: usize, src: Option<&str>) -> ChildGuard {
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
    pub(crate) fn publish_outcome(
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
    pub(crate) fn live_publisher(&mut self, i: usize) -> ChildGuard {
        let skip = self.server.log_lines();
        let p = self.publisher(i, None);
        match self.publish_outcome(skip, i, Duration::from_secs(15)) {
            Some((_, Ok(_))) => p,
            other => panic!("publisher {i} not live: {other:?}\n{}", self.log()),
        }
    }

    /// A player on host `i` that has already decoded a second of video.
    pub(crate) fn live_player(&self, i: usize) -> Player {
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
    pub(crate) fn wait_close(
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

    pub(crate) fn log(&self) -> String {
        self.server.log_text()
    }
}

/// Pulls host `i`'s cable and freezes its process: a crashed or unplugged machine.
pub(crate) fn kill_host(host: &NetNs, process: &ChildGuard) -> Instant {
    let t0 = Instant::now();
    host.set_link(false).expect("link down");
    process.freeze();
    t0
}

pub(crate) fn measured(id: &str, secs: f64) {
    println!("MEASURED {id} {secs:.2}");
}

pub(crate) fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// A playing viewer's cable is pulled; returns (seconds to release, reason) after checking
/// that the publisher and another viewer went on without a gap.
pub(crate) fn player_cable_pulled(test: &str, id: &str, bound: f64, reasons: &[&str]) {
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

/// A 3 s outage of the hosts in `down` (link down, processes running): nothing may close, and
/// both players must play again. Returns the seconds from link-up until both had frames again.
pub(crate) fn short_outage(test: &str, id: &str, down: &[usize]) {
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
