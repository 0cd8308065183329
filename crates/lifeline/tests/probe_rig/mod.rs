//! The rig of `ops_probe.rs`: nginx-rtmp or Lifeline on host 0 of a namespace LAN, ffmpeg
//! publishers and players on the other hosts, `lifeline sockets probe` run in the server's
//! namespace, and snapshots of every socket option of the server process.

use liveness::probe::KeepaliveOptions;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};
use testkit::nginx::{self, Nginx, connection_id};
use testkit::player::Player;
use testkit::rtmp::{Lifeline, ffmpeg_publish};
use testkit::{ChildGuard, Lan, NetNs, require_root, require_tool};

/// Where the server listens (host 0).
pub(crate) const LISTEN: &str = "192.0.2.10:1935";
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_lifeline");

/// Lifeline configured so that only the probe can free a dead publisher within the test: a
/// duplicate is refused, and its own detection is minutes away (keepalive on, user timeout set:
/// the probe must restore those too).
pub(crate) const LIFELINE_CONFIG: &str = r#"
[liveness]
publish_idle_timeout = "10m"
tcp_keepalive_idle = "600s"
tcp_keepalive_interval = "10s"
tcp_keepalive_count = 3
tcp_user_timeout = "10m"
[publish]
on_duplicate = "reject"
[http]
enabled = false
"#;

/// Which server the rig runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Nginx,
    Lifeline,
}

pub(crate) enum Server {
    Nginx(Nginx),
    Lifeline(Lifeline),
}

/// A LAN with the server on host 0. Field order: the server stops before the namespaces go.
pub(crate) struct Rig {
    pub(crate) server: Server,
    pub(crate) lan: Lan,
}

pub(crate) fn ip(i: usize) -> String {
    Lan::addr(i).to_string()
}

impl Rig {
    /// `None` (after a loud skip) when the test cannot run here.
    pub(crate) fn new(test: &str, kind: Kind, hosts: usize) -> Option<Self> {
        if !require_root(test) || !require_tool(test, "ffmpeg") || !require_tool(test, "nft") {
            return None;
        }
        if kind == Kind::Nginx && !nginx::require(test) {
            return None;
        }
        let lan = Lan::new("pb", hosts).expect("build the LAN");
        let server = match kind {
            Kind::Nginx => Server::Nginx(
                Nginx::start_in(&lan.hosts[0], LISTEN.parse().unwrap(), "").expect("nginx"),
            ),
            Kind::Lifeline => {
                let ns = lan.hosts[0].name().to_owned();
                Server::Lifeline(Lifeline::start_in(
                    Path::new(BIN),
                    LIFELINE_CONFIG,
                    &["ip", "netns", "exec", &ns],
                    LISTEN,
                ))
            }
        };
        Some(Self { server, lan })
    }

    pub(crate) fn host(&self, i: usize) -> &NetNs {
        &self.lan.hosts[i]
    }

    pub(crate) fn url(&self, stream: &str) -> String {
        format!("rtmp://{LISTEN}/{stream}")
    }

    pub(crate) fn pid(&self) -> u32 {
        match &self.server {
            Server::Nginx(n) => n.pid(),
            Server::Lifeline(l) => l.pid(),
        }
    }

    fn dir(&self) -> &Path {
        match &self.server {
            Server::Nginx(n) => n.dir(),
            Server::Lifeline(l) => l.dir(),
        }
    }

    pub(crate) fn log(&self) -> String {
        match &self.server {
            Server::Nginx(n) => n.log_text(),
            Server::Lifeline(l) => l.log_text(),
        }
    }

    pub(crate) fn log_lines(&self) -> usize {
        self.log().lines().count()
    }

    /// Starts ffmpeg publishing `stream` from host `i` (not waiting for the server).
    pub(crate) fn spawn_publisher(&self, i: usize, stream: &str) -> ChildGuard {
        let log = self
            .dir()
            .join(format!("pub-{i}-{}.log", testkit::unique_name("")));
        ChildGuard::spawn_logged(
            &mut self.host(i).wrap(&ffmpeg_publish(&self.url(stream), 600)),
            &log,
        )
        .expect("start ffmpeg")
    }

    /// How host `i`'s publish (after log line `skip`) ended: accepted (`Ok`) or refused
    /// (`Err`), with the line and when it was seen.
    pub(crate) fn publish_outcome(
        &self,
        skip: usize,
        i: usize,
        timeout: Duration,
    ) -> Option<(Instant, Result<String, String>)> {
        let end = Instant::now() + timeout;
        let peer = format!("peer={}:", ip(i));
        let client = format!("client connected '{}'", ip(i));
        let mut seen: Option<(Instant, u64, String)> = None;
        loop {
            let log = self.log();
            let lines: Vec<&str> = log.lines().skip(skip).collect();
            match &self.server {
                Server::Lifeline(_) => {
                    if let Some(l) = lines.iter().find(|l| {
                        l.contains(&peer)
                            && (l.contains(" publish conn=") || l.contains("publish refused"))
                    }) {
                        let r = if l.contains("publish refused") {
                            Err(l.to_string())
                        } else {
                            Ok(l.to_string())
                        };
                        return Some((Instant::now(), r));
                    }
                }
                Server::Nginx(_) => {
                    // nginx-rtmp logs "publish: name=…" for every attempt, then "live: already
                    // publishing" right after it for a refused one.
                    let ids: Vec<u64> = lines
                        .iter()
                        .filter(|l| l.contains(&client))
                        .filter_map(|l| connection_id(l))
                        .collect();
                    let on = |id: u64, what: &str| {
                        let tag = format!(" *{id} {what}");
                        lines
                            .iter()
                            .find(|l| l.contains(&tag))
                            .map(|l| l.to_string())
                    };
                    if let Some((at, id, line)) = &seen {
                        if let Some(refusal) = on(*id, "live: already publishing") {
                            return Some((*at, Err(refusal)));
                        }
                        if at.elapsed() >= Duration::from_millis(500) {
                            return Some((*at, Ok(line.clone())));
                        }
                    } else if let Some((id, line)) = ids
                        .iter()
                        .find_map(|&id| on(id, "publish: name=").map(|l| (id, l)))
                    {
                        seen = Some((Instant::now(), id, line));
                        continue;
                    }
                }
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A publisher of `stream` on host `i` that the server has accepted.
    pub(crate) fn live_publisher(&self, i: usize, stream: &str) -> ChildGuard {
        let skip = self.log_lines();
        let p = self.spawn_publisher(i, stream);
        match self.publish_outcome(skip, i, Duration::from_secs(15)) {
            Some((_, Ok(_))) => p,
            other => panic!("publisher {i} not live: {other:?}\n{}", self.log()),
        }
    }

    /// A player of `stream` on host `i` that has decoded a second of video.
    pub(crate) fn live_player(&self, i: usize, stream: &str) -> Player {
        let p = Player::start(self.host(i), &self.url(stream)).expect("start player");
        assert!(
            p.wait_frames(25, Duration::from_secs(15)),
            "player {i} got {} frames\n{}",
            p.count(),
            self.log()
        );
        p
    }
}

/// Every TCP socket option of process `pid`, by socket inode (the listener included).
pub(crate) fn socket_options(pid: u32) -> BTreeMap<u64, KeepaliveOptions> {
    let mut out = BTreeMap::new();
    let pid = i32::try_from(pid).unwrap();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        let Ok(target) = std::fs::read_link(fd.path()) else {
            continue;
        };
        let t = target.to_string_lossy();
        let Some(inode) = t
            .strip_prefix("socket:[")
            .and_then(|r| r.strip_suffix(']'))
            .and_then(|n| n.parse().ok())
        else {
            continue;
        };
        let Ok(n) = fd.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(dup) = liveness::pidfd::duplicate_fd(pid, n)
            && let Ok(o) = KeepaliveOptions::read(&dup)
        {
            out.insert(inode, o);
        }
    }
    out
}

/// One run of `lifeline sockets probe …` inside a namespace.
pub(crate) struct ProbeRun {
    pub(crate) out: Output,
    pub(crate) took: Duration,
    pub(crate) returned: Instant,
}

impl ProbeRun {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.out.stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}\nstderr: {}",
                String::from_utf8_lossy(&self.out.stdout),
                String::from_utf8_lossy(&self.out.stderr)
            )
        })
    }

    pub(crate) fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
}

pub(crate) fn probe(ns: &NetNs, args: &[&str]) -> ProbeRun {
    let t0 = Instant::now();
    let out = ns
        .command(BIN)
        .args(["sockets", "probe"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run lifeline");
    ProbeRun {
        took: t0.elapsed(),
        returned: Instant::now(),
        out,
    }
}

/// The sockets of a probe document whose peer is host `i`.
pub(crate) fn of_host(v: &Value, i: usize) -> Vec<Value> {
    let prefix = format!("{}:", ip(i));
    v["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["remote"].as_str().unwrap().starts_with(&prefix))
        .cloned()
        .collect()
}

pub(crate) fn measured(id: &str, secs: f64) {
    println!("MEASURED {id} {secs:.3}");
}
