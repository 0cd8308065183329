//! `lifeline sockets probe` end to end, as root, inside throw-away network namespaces: a real
//! nginx-rtmp from Debian (installed when missing) and Lifeline's own server, whose idle dead
//! publisher holds a stream name that only the probe frees; a lossy path; a vanished player with
//! data in flight; a probe interrupted half-way; and no privileges.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ops_common;
mod probe_rig;

use liveness::probe::KeepaliveOptions;
use ops_common::pair;
use probe_rig::{Kind, Rig, measured, of_host, probe, socket_options};
use serde_json::Value;
use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};
use testkit::{DropWhat, NetNs, NftDrop, require_root};

/// The default window, and what a verdict may exceed it by (10 ms polls on a shared machine).
const WINDOW: f64 = 3.0;
const SLACK: f64 = 0.25;

fn ms(v: &Value) -> f64 {
    v.as_f64().unwrap() / 1000.0
}

/// Acceptance 1 and 6: A publishes `cctv5`, B `news`, two players watch `news`; A's cable is
/// pulled and its ffmpeg frozen; a newcomer for `cctv5` is refused; the probe finds A (and only
/// A) dead, destroys it, and the newcomer publishes; nobody else notices anything.
fn dead_publisher_freed(test: &str, kind: Kind, id: &str) {
    let Some(rig) = Rig::new(test, kind, 6) else {
        return;
    };
    let a = rig.live_publisher(1, "live/cctv5");
    let mut b = rig.live_publisher(2, "live/news");
    let p3 = rig.live_player(3, "live/news");
    let p4 = rig.live_player(4, "live/news");
    std::thread::sleep(Duration::from_millis(500));

    rig.host(1).set_link(false).unwrap();
    a.freeze();
    let mark = rig.log_lines();
    let mut refused = rig.spawn_publisher(5, "live/cctv5");
    match rig.publish_outcome(mark, 5, Duration::from_secs(10)) {
        Some((_, Err(line))) => println!("{id}: newcomer refused while A holds the name: {line}"),
        other => panic!("newcomer not refused: {other:?}\n{}", rig.log()),
    }
    // nginx-rtmp leaves the refused session open: end the newcomer (by its pid) so that only
    // the five sockets of the scenario are left to judge.
    let _ = refused.terminate(Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(300));

    let before = socket_options(rig.pid());
    let (n3, n4) = (p3.count(), p4.count());
    let t_probe = Instant::now();
    let run = probe(
        rig.host(0),
        &["--port", "1935", "--kill", "--yes", "--json"],
    );
    let mark = rig.log_lines();
    let newcomer = rig.spawn_publisher(5, "live/cctv5");
    let published = rig.publish_outcome(mark, 5, Duration::from_secs(10));
    let v = run.json();
    assert!(run.out.status.success(), "{}\n{v:#}", run.stderr());

    // Verdicts: exactly A dead, within the window; everything else alive.
    let sockets = v["sockets"].as_array().unwrap();
    assert_eq!(sockets.len(), 4, "A, B and two players: {v:#}");
    let dead_a = of_host(&v, 1);
    assert_eq!(dead_a.len(), 1, "{v:#}");
    let a_sock = &dead_a[0];
    assert_eq!(a_sock["verdict"], "dead", "{a_sock:#}");
    assert_eq!(a_sock["killed"], true, "{a_sock:#}");
    let verdict_after = ms(&a_sock["decided_after_ms"]);
    assert!(
        verdict_after <= WINDOW + SLACK,
        "dead after {verdict_after} s"
    );
    for s in sockets.iter().filter(|s| s["cookie"] != a_sock["cookie"]) {
        assert_eq!(s["verdict"], "alive", "{s:#}");
        assert_eq!(s["killed"], Value::Null);
    }
    for s in sockets {
        assert_eq!(s["restored"], true, "{s:#}");
        assert_eq!(s["options_before"], s["options_after"]);
    }
    let alive_max = sockets
        .iter()
        .filter_map(|s| s["answered_after_ms"].as_f64())
        .fold(0.0, f64::max);
    println!(
        "{id}: A {} ({}), live peers answered within {alive_max} ms; probe command took {:.3} s",
        a_sock["evidence"]["text"],
        a_sock["mode"],
        run.took.as_secs_f64()
    );
    measured(&format!("{id}-dead-verdict"), verdict_after);
    measured(&format!("{id}-command"), run.took.as_secs_f64());

    // The name is free: the newcomer publishes within 2 s of the command's return.
    let (at, outcome) = published.unwrap_or_else(|| panic!("no publish outcome\n{}", rig.log()));
    assert!(
        outcome.is_ok(),
        "newcomer refused after the kill: {outcome:?}"
    );
    let freed = at.duration_since(run.returned).as_secs_f64();
    measured(&format!("{id}-newcomer-published"), freed);
    assert!(
        freed <= 2.0,
        "newcomer published {freed} s after the command returned"
    );

    // Nobody else noticed: news keeps flowing to both players, B still publishes.
    std::thread::sleep(Duration::from_millis(1000));
    let until = Instant::now();
    for (p, n) in [(&p3, n3), (&p4, n4)] {
        assert!(p.count() > n + 25, "frames {n} -> {}", p.count());
        let gap = p.max_gap(t_probe, until);
        assert!(
            gap <= Duration::from_millis(1000),
            "a player had a {gap:?} gap"
        );
    }
    assert!(b.is_running(), "news publisher ended\n{}", rig.log());

    // Every option of every socket the server still has reads back as before the probe.
    let after = socket_options(rig.pid());
    let a_inode = a_sock["inode"].as_u64().unwrap();
    assert!(before.contains_key(&a_inode) && !after.contains_key(&a_inode));
    for (inode, o) in &after {
        if let Some(b) = before.get(inode) {
            assert_eq!(o, b, "socket {inode} changed");
        }
    }
    let kept = before.keys().filter(|i| after.contains_key(i)).count();
    assert!(kept >= 4, "listener, B and the players: {kept}");
    drop(newcomer);
}

#[test]
fn nginx_rtmp_dead_publisher_found_and_freed() {
    dead_publisher_freed(
        "nginx_rtmp_dead_publisher_found_and_freed",
        Kind::Nginx,
        "probe-nginx",
    );
}

#[test]
fn lifeline_dead_publisher_found_and_freed() {
    dead_publisher_freed(
        "lifeline_dead_publisher_found_and_freed",
        Kind::Lifeline,
        "probe-lifeline",
    );
}

/// Acceptance 2: with 10 % random loss on B's path (both directions), 20 probes in a row say
/// `alive` for B's publisher and for an idle connection from B's host (which only a probe and
/// its repeats can show alive).
#[test]
fn lossy_path_is_alive_twenty_times() {
    let test = "lossy_path_is_alive_twenty_times";
    let Some(rig) = Rig::new(test, Kind::Nginx, 2) else {
        return;
    };
    let _b = rig.live_publisher(1, "live/news");
    let server = probe_rig::LISTEN.parse::<std::net::SocketAddr>().unwrap();
    // An RTMP client that connected to `live` and then says nothing: its socket is idle, and
    // nginx-rtmp sets no read timer after the handshake.
    let _idle = testkit::client::RtmpClient::connect_in(
        rig.host(1),
        server,
        "live",
        Duration::from_secs(5),
    )
    .expect("RTMP connect");
    let idle_remote = _idle.socket().local_addr().unwrap().to_string();
    let _loss = NftDrop::new(rig.host(1), DropWhat::Loss(10)).unwrap();
    let mut slowest = 0.0f64;
    let mut probed = 0;
    for round in 0..20 {
        let run = probe(rig.host(0), &["--port", "1935", "--json"]);
        let v = run.json();
        assert!(run.out.status.success(), "round {round}: {}", run.stderr());
        let socks = of_host(&v, 1);
        assert_eq!(socks.len(), 2, "round {round}: {v:#}");
        for s in &socks {
            assert_eq!(s["verdict"], "alive", "round {round}: {s:#}");
            assert_eq!(s["restored"], true);
            slowest = slowest.max(ms(&s["answered_after_ms"]));
        }
        // The idle connection has nothing in flight: only a keepalive probe can answer it
        // (the publisher's socket may be answered by its data or, now and then, an ACK too).
        probed += socks
            .iter()
            .filter(|s| s["remote"].as_str() == Some(idle_remote.as_str()) && s["answer"] == "ack")
            .count();
    }
    println!(
        "20 rounds alive; slowest answer {slowest:.3} s after the probe began; {probed} answered a keepalive probe"
    );
    measured("probe-lossy-slowest-answer", slowest);
    assert_eq!(probed, 20, "the idle connection answers a probe each round");
}

/// Acceptance 3: a player whose host vanished while nginx streams to it: data in flight, so it
/// is watched (nothing armed) and found dead within the window; --kill frees it.
#[test]
fn vanished_player_with_data_in_flight_is_dead() {
    let test = "vanished_player_with_data_in_flight_is_dead";
    let Some(rig) = Rig::new(test, Kind::Nginx, 3) else {
        return;
    };
    let _pub = rig.live_publisher(1, "live/cctv5");
    let mut player = rig.live_player(2, "live/cctv5");
    rig.host(2).set_link(false).unwrap();
    player.process().freeze();
    std::thread::sleep(Duration::from_millis(300));
    let run = probe(
        rig.host(0),
        &["--port", "1935", "--kill", "--yes", "--json"],
    );
    let v = run.json();
    assert!(run.out.status.success(), "{}\n{v:#}", run.stderr());
    let p = &of_host(&v, 2)[0];
    assert_eq!(p["verdict"], "dead", "{p:#}");
    assert_eq!(p["mode"], "watched", "{p:#}");
    assert_eq!(p["armed"], serde_json::json!([]));
    assert!(p["evidence"]["unacked"].as_u64().unwrap() > 0, "{p:#}");
    assert_eq!(p["killed"], true);
    let after = ms(&p["decided_after_ms"]);
    assert!(after <= WINDOW + SLACK, "dead after {after} s");
    assert_eq!(of_host(&v, 1)[0]["verdict"], "alive");
    println!("vanished player: {}", p["evidence"]["text"]);
    measured("probe-vanished-player-dead-verdict", after);
}

/// Options of the test's own sockets, read directly.
fn opts(s: &std::net::TcpStream) -> KeepaliveOptions {
    KeepaliveOptions::read(s).unwrap()
}

/// Three connections held by this test process with different options, two of them with a
/// black-holed peer (so the probe is still watching them when interrupted).
type Pairs = Vec<(std::net::TcpStream, std::net::TcpStream)>;

fn three_pairs(ns: &NetNs) -> (std::net::TcpListener, Pairs) {
    let (l, c1, s1) = pair(ns);
    let (c2, s2) = ops_common::connect(ns, &l);
    let (c3, s3) = ops_common::connect(ns, &l);
    liveness::SocketLiveness {
        keepalive: Some(liveness::Keepalive {
            idle: Duration::from_secs(30),
            interval: Duration::from_secs(5),
            count: 4,
        }),
        user_timeout: Some(Duration::from_millis(7000)),
    }
    .apply(&s2)
    .unwrap();
    liveness::SocketLiveness {
        keepalive: Some(liveness::Keepalive {
            idle: Duration::from_secs(600),
            interval: Duration::from_secs(75),
            count: 9,
        }),
        user_timeout: None,
    }
    .apply(&s3)
    .unwrap();
    (l, vec![(c1, s1), (c2, s2), (c3, s3)])
}

/// Acceptance 4: SIGINT (and SIGTERM) half-way through a 10 s window leaves every option as
/// it was, and the exit status says which signal.
#[test]
fn interrupted_probe_restores_every_option() {
    let test = "interrupted_probe_restores_every_option";
    if !require_root(test) || !testkit::require_tool(test, "nft") {
        return;
    }
    let ns = NetNs::new("pbi").unwrap();
    let (l, pairs) = three_pairs(&ns);
    let _holes: Vec<NftDrop> = pairs[..2]
        .iter()
        .map(|(c, _)| NftDrop::new(&ns, DropWhat::TcpPort(c.local_addr().unwrap().port())).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(1100));
    let before: Vec<_> = pairs.iter().map(|(_, s)| opts(s)).collect();
    let port = l.local_addr().unwrap().port().to_string();
    for (sig, name, code) in [
        (libc::SIGINT, "SIGINT", 130),
        (libc::SIGTERM, "SIGTERM", 143),
    ] {
        let mut guard = testkit::ChildGuard::spawn(
            ns.command(probe_rig::BIN)
                .args([
                    "sockets",
                    "probe",
                    "--local-port",
                    &port,
                    "--within",
                    "10s",
                    "--json",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )
        .unwrap();
        // Half-way: once the keepalive-less socket is armed, let it probe a little.
        let t0 = Instant::now();
        while !opts(&pairs[0].1).keepalive {
            assert!(t0.elapsed() < Duration::from_secs(5), "never armed");
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(1000));
        assert_ne!(
            opts(&pairs[1].1),
            before[1],
            "the guarded socket is armed too"
        );
        guard.signal(sig);
        let status = guard.wait_timeout(Duration::from_secs(5)).expect("exits");
        let read = |r: Option<&mut dyn Read>| {
            let mut s = String::new();
            r.unwrap().read_to_string(&mut s).unwrap();
            s
        };
        let child = guard.child_mut();
        let stdout = read(child.stdout.as_mut().map(|r| r as &mut dyn Read));
        let stderr = read(child.stderr.as_mut().map(|r| r as &mut dyn Read));
        let took = t0.elapsed();
        assert_eq!(status.code(), Some(code), "{stderr}");
        assert!(
            stderr.contains(name) && stderr.contains("restored"),
            "{stderr}"
        );
        assert!(
            took < Duration::from_secs(4),
            "stopped {took:?} after arming"
        );
        for (i, (_, s)) in pairs.iter().enumerate() {
            assert_eq!(opts(s), before[i], "{name}: socket {i} not restored");
        }
        let v: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(v["interrupted"], name);
        let unknown = v["sockets"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["unknown"]["cause"] == "interrupted")
            .count();
        assert_eq!(unknown, 2, "{v:#}");
        println!(
            "{name} {:.3} s after arming: exit {code}, options restored",
            took.as_secs_f64()
        );
    }
}

/// Acceptance 5: unprivileged (nobody, no capabilities) against root's sockets: an error that
/// names the missing right, a non-zero exit, nothing changed.
#[test]
fn without_privileges_names_the_missing_right() {
    let test = "without_privileges_names_the_missing_right";
    if !require_root(test) || !testkit::require_tool(test, "setpriv") {
        return;
    }
    let ns = NetNs::new("pbn").unwrap();
    let (l, pairs) = three_pairs(&ns);
    let before: Vec<_> = pairs.iter().map(|(_, s)| opts(s)).collect();
    let port = l.local_addr().unwrap().port().to_string();
    let me = std::process::id().to_string();
    let cases: [(&[&str], &[&str]); 3] = [
        (&["--local-port", &port], &["ptrace", "CAP_SYS_PTRACE"]),
        (
            &["--local-port", &port, "--pid", &me],
            &["ptrace", "CAP_SYS_PTRACE"],
        ),
        (
            &["--local-port", &port, "--kill", "--yes"],
            &["CAP_NET_ADMIN"],
        ),
    ];
    for (args, needles) in cases {
        let out = ns
            .command("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
            ])
            .arg(probe_rig::BIN)
            .args(["sockets", "probe"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        println!(
            "as nobody, probe {args:?}: exit {:?}: {}",
            out.status.code(),
            stderr.trim()
        );
        assert!(!out.status.success(), "{args:?}: {stderr}");
        for n in needles {
            assert!(stderr.contains(n), "{args:?}: {n} not named in {stderr}");
        }
        for (i, (_, s)) in pairs.iter().enumerate() {
            assert_eq!(opts(s), before[i], "{args:?}: socket {i} changed");
        }
    }
    // The same probe as root judges them all (every peer is alive).
    let run = probe(&ns, &["--local-port", &port, "--json"]);
    let v = run.json();
    assert!(run.out.status.success(), "{}", run.stderr());
    assert_eq!(v["summary"]["alive"], 3, "{v:#}");
}
