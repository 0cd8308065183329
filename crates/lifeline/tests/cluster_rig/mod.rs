//! The rig of `cluster.rs`: one etcd and three Lifeline nodes on a namespace LAN
//! (192.0.2.0/24), and the hosts their publishers and players run on.
//!
//! ```text
//! host 0  192.0.2.10  etcd (client port 2379; a throw-away data directory)
//! host 1  192.0.2.11  node a        host 4  192.0.2.14  a's publisher
//! host 2  192.0.2.12  node b        host 5  192.0.2.15  b's newcomer (white frames)
//! host 3  192.0.2.13  node c        host 6  192.0.2.16  the player on c
//! ```
//!
//! Everything is torn down by guards, also when a test fails: the nodes and etcd are killed
//! (by pid) before the namespaces (and any nft table in them) are deleted.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::player::{Player, WHITE_SRC};
use testkit::process::ChildGuard;
use testkit::rtmp::{Lifeline, TempDir, ffmpeg_publish, ffmpeg_publish_src, require_tool};
use testkit::{Lan, NetNs, require_root};

/// The stream of every test.
pub(crate) const STREAM: &str = "live/cctv5";
/// The etcd host.
pub(crate) const ETCD: usize = 0;
/// The hosts of nodes a, b, c.
pub(crate) const NODES: [usize; 3] = [1, 2, 3];
/// a's publisher, b's newcomer, c's player.
pub(crate) const PUB_A: usize = 4;
pub(crate) const PUB_B: usize = 5;
pub(crate) const PLAYER_C: usize = 6;

pub(crate) fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_lifeline"))
}

pub(crate) fn ip(host: usize) -> String {
    Lan::addr(host).to_string()
}

/// Now, as [`testkit::rtmp::log_time`] reads a log line's time: seconds since midnight UTC.
pub(crate) fn wall() -> f64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    d.as_secs_f64() % 86_400.0
}

pub(crate) fn measured(id: &str, secs: f64) {
    println!("MEASURED {id} {secs:.2}");
}

/// etcd in the etcd host's namespace, killed on drop (its data directory goes with the rig).
pub(crate) struct Etcd {
    process: Option<ChildGuard>,
    ns: String,
    data: std::path::PathBuf,
    log: std::path::PathBuf,
    starts: u32,
}

impl Etcd {
    fn start(ns: &NetNs, dir: &Path) -> Self {
        let mut e = Self {
            process: None,
            ns: ns.name().to_owned(),
            data: dir.join("etcd-data"),
            log: dir.join("etcd.log"),
            starts: 0,
        };
        e.restart();
        e
    }

    /// Starts etcd (again, on the same data directory) and waits until it serves clients.
    pub(crate) fn restart(&mut self) {
        let client = format!("http://{}:2379", ip(ETCD));
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, "etcd", "--name", "t"])
            .arg("--data-dir")
            .arg(&self.data)
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args(["--listen-peer-urls", "http://127.0.0.1:2380"])
            .args(["--initial-advertise-peer-urls", "http://127.0.0.1:2380"])
            .args(["--initial-cluster", "t=http://127.0.0.1:2380"])
            // A single member elects itself after one election timeout: 250 ms, not 1 s, so
            // that a restart is quick (the LAN's RTT is microseconds).
            .args(["--heartbeat-interval", "50", "--election-timeout", "250"]);
        self.starts += 1;
        let log = self.log.with_extension(format!("{}.log", self.starts));
        self.process = Some(ChildGuard::spawn_logged(&mut cmd, &log).expect("start etcd"));
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("ready to serve client requests") {
                return;
            }
            assert!(Instant::now() < end, "etcd did not start:\n{text}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills etcd (SIGKILL: etcd is crash-safe, and a graceful stop takes about 2 s).
    pub(crate) fn stop(&mut self) {
        drop(self.process.take());
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        drop(self.process.take());
    }
}

/// The LAN, etcd and the three nodes. Field order is drop order: nodes, etcd, files, LAN.
pub(crate) struct Rig {
    pub(crate) nodes: Vec<Lifeline>,
    pub(crate) etcd: Etcd,
    dir: TempDir,
    pub(crate) lan: Lan,
}

impl Rig {
    /// `None` (after saying why) when the test cannot run here.
    pub(crate) fn new(test: &str, lease_ttl: &str) -> Option<Self> {
        if !require_root(test)
            || !require_tool(test, "ffmpeg")
            || !require_tool(test, "nft")
            || !require_tool(test, "etcd")
        {
            return None;
        }
        let lan = Lan::new("lc", 7).expect("build the LAN");
        let dir = TempDir::new("lifeline-cluster");
        let etcd = Etcd::start(&lan.hosts[ETCD], dir.path());
        let nodes = NODES
            .iter()
            .zip(["a", "b", "c"])
            .map(|(&h, name)| {
                let listen = format!("{}:1935", ip(h));
                let config = format!(
                    "[cluster]\netcd = [\"http://{}:2379\"]\nnode = \"{name}\"\n\
                     advertise = \"rtmp://{listen}\"\nlease_ttl = \"{lease_ttl}\"\n\
                     prefix = \"/lifeline-test\"\n",
                    ip(ETCD)
                );
                let ns = lan.hosts[h].name().to_owned();
                Lifeline::start_in(bin(), &config, &["ip", "netns", "exec", &ns], &listen)
            })
            .collect();
        let mut rig = Self {
            nodes,
            etcd,
            dir,
            lan,
        };
        for n in 0..3 {
            rig.nodes[n]
                .wait_log("cluster: lease granted", Duration::from_secs(10))
                .unwrap_or_else(|| panic!("node {n} never joined\n{}", rig.logs()));
        }
        Some(rig)
    }

    pub(crate) fn host(&self, i: usize) -> &NetNs {
        &self.lan.hosts[i]
    }

    /// Node `n`'s (0 = a) URL of the stream.
    pub(crate) fn url(&self, n: usize) -> String {
        self.nodes[n].url(STREAM)
    }

    /// An ffmpeg publisher on `host` to node `n`: testsrc, or white frames when `white`.
    pub(crate) fn publisher(&self, host: usize, n: usize, white: bool) -> ChildGuard {
        let url = self.url(n);
        let cmd = if white {
            ffmpeg_publish_src(&url, 600, WHITE_SRC)
        } else {
            ffmpeg_publish(&url, 600)
        };
        let log = self
            .dir
            .path()
            .join(format!("pub-{host}-{}.log", testkit::unique_name("")));
        ChildGuard::spawn_logged(&mut self.host(host).wrap(&cmd), &log).expect("start ffmpeg")
    }

    /// Waits (after log line `skip` of node `n`) until `host`'s publish is accepted (`Ok`) or
    /// refused (`Err`) there.
    pub(crate) fn outcome(
        &mut self,
        n: usize,
        skip: usize,
        host: usize,
        timeout: Duration,
    ) -> Option<(Instant, Result<String, String>)> {
        let peer = format!("peer={}:", ip(host));
        let line = self.nodes[n].wait_line(skip, timeout, |l| {
            l.contains(&peer) && (l.contains(" publish conn=") || l.contains("publish refused"))
        })?;
        let at = Instant::now();
        Some(if line.contains("publish refused") {
            (at, Err(line))
        } else {
            (at, Ok(line))
        })
    }

    /// A publisher on `host` to node `n`, once that node accepted it.
    pub(crate) fn live_publisher(&mut self, host: usize, n: usize, white: bool) -> ChildGuard {
        let skip = self.nodes[n].log_lines();
        let p = self.publisher(host, n, white);
        match self.outcome(n, skip, host, Duration::from_secs(15)) {
            Some((_, Ok(_))) => p,
            other => panic!(
                "publisher on host {host} not live: {other:?}\n{}",
                self.logs()
            ),
        }
    }

    /// Publishes from `host` to node `n` again and again (each refusal ends ffmpeg) until the
    /// node accepts it or `timeout` passes: when it was accepted, and the publisher.
    pub(crate) fn publish_until_live(
        &mut self,
        host: usize,
        n: usize,
        white: bool,
        timeout: Duration,
    ) -> Option<(Instant, ChildGuard)> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            let skip = self.nodes[n].log_lines();
            let p = self.publisher(host, n, white);
            let left = end.saturating_duration_since(Instant::now());
            match self.outcome(n, skip, host, left)? {
                (at, Ok(_)) => return Some((at, p)),
                (_, Err(_)) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        None
    }

    /// A player on c's host, once it decoded a second of video.
    pub(crate) fn live_player_on_c(&self) -> Player {
        let p = Player::start(self.host(PLAYER_C), &self.url(2)).expect("start player");
        assert!(
            p.wait_frames(25, Duration::from_secs(20)),
            "player on c got {} frames\n{}",
            p.count(),
            self.logs()
        );
        p
    }

    /// Kills node `n` with SIGKILL.
    pub(crate) fn kill_node(&self, n: usize) -> Instant {
        let pid = self.nodes[n].pid().to_string();
        let t0 = Instant::now();
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
        t0
    }

    /// Every node's log (for a failure's message).
    pub(crate) fn logs(&self) -> String {
        let mut out = String::new();
        for (n, name) in ["a", "b", "c"].iter().enumerate() {
            out += &format!("===== node {name}\n{}\n", self.nodes[n].log_text());
        }
        out
    }
}

/// Whether the player saw white frames (the newcomer's) and then testsrc frames again: two
/// publishers' frames interleaved. Returns (first white frame, interleaved).
pub(crate) fn first_white(player: &Player) -> (Option<Instant>, bool) {
    let frames = player.frames();
    let Some(i) = frames.iter().position(|f| f.white) else {
        return (None, false);
    };
    (Some(frames[i].at), frames[i..].iter().any(|f| !f.white))
}
