//! `lifeline sockets [--dead] [kill]` and `keepalive enable --pid` end to end, inside
//! throw-away network namespaces.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ops_common;

use ops_common::{connect, lifeline, lifeline_json, pair};
use serde_json::Value;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};
use testkit::{ChildGuard, DropWhat, NetNs, NftDrop, require_root};

fn find<'a>(v: &'a Value, local: &str, remote: &str) -> Option<&'a Value> {
    v["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["local"] == local && s["remote"] == remote)
}

#[test]
fn lists_known_connection_with_owner_and_keepalive() {
    if !require_root("lists_known_connection_with_owner_and_keepalive") {
        return;
    }
    let ns = NetNs::new("llso").unwrap();
    let (l, c, s) = pair(&ns);
    liveness::SocketLiveness {
        keepalive: Some(liveness::Keepalive {
            idle: Duration::from_secs(30),
            interval: Duration::from_secs(5),
            count: 4,
        }),
        user_timeout: None,
    }
    .apply(&s)
    .unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let v = lifeline_json(&ns, &["sockets", "--port", &port]);
    assert_eq!(v["schema"], "lifeline.sockets/1");
    let (ca, sa) = (
        c.local_addr().unwrap().to_string(),
        l.local_addr().unwrap().to_string(),
    );
    let client = find(&v, &ca, &sa).expect("client side listed");
    let server = find(&v, &sa, &ca).expect("server side listed");
    let me = std::process::id();
    for e in [client, server] {
        assert_eq!(e["state"], "ESTAB");
        assert!(
            e["owners"]
                .as_array()
                .unwrap()
                .iter()
                .any(|o| o["pid"] == me),
            "{e}"
        );
        assert_eq!(e["suspect"], false);
    }
    assert_eq!(client["keepalive"], false);
    assert_eq!(server["keepalive"], true);
    assert_eq!(server["socket_options"]["idle_s"], 30);
    assert_eq!(server["socket_options"]["count"], 4);
    assert_eq!(server["timer"]["kind"], "keepalive");
    // The human view works too.
    let out = lifeline(&ns, &["sockets", "--port", &port]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("keepalive 30/5/4"));
}

#[test]
fn dead_flags_blackholed_peer_with_data_in_flight_only() {
    if !require_root("dead_flags_blackholed_peer_with_data_in_flight_only") {
        return;
    }
    let ns = NetNs::new("llsd").unwrap();
    let (l, c1, mut s1) = pair(&ns);
    let (mut c2, mut s2) = connect(&ns, &l);
    let _hole = NftDrop::new(&ns, DropWhat::TcpPort(c1.local_addr().unwrap().port())).unwrap();
    s1.write_all(&[1u8; 1000]).unwrap();
    s2.write_all(&[2u8; 1000]).unwrap();
    let mut buf = [0u8; 1000];
    c2.read_exact(&mut buf).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let port = l.local_addr().unwrap().port().to_string();
    let v = lifeline_json(
        &ns,
        &["sockets", "--port", &port, "--dead", "--no-ack-secs", "1"],
    );
    let list = v["sockets"].as_array().unwrap();
    let sa = l.local_addr().unwrap().to_string();
    assert_eq!(list.len(), 1, "{v}");
    assert_eq!(list[0]["local"], sa);
    assert_eq!(list[0]["remote"], c1.local_addr().unwrap().to_string());
    assert_eq!(list[0]["suspect"], true);
    // Depending on timing the kernel is retransmitting (no-ack, backoff) or probing a window
    // it never saw open (probes); either way data waits for a peer that does not answer.
    assert!(!list[0]["reasons"].as_array().unwrap().is_empty(), "{v}");
    let info = &list[0]["tcp_info"];
    assert!(info["unacked"].as_u64().unwrap() + info["notsent_bytes"].as_u64().unwrap() > 0);
    drop(c2);
}

#[test]
fn kill_destroys_chosen_connection_only() {
    if !require_root("kill_destroys_chosen_connection_only") {
        return;
    }
    let ns = NetNs::new("llsk").unwrap();
    let (l, mut c1, s1) = pair(&ns);
    let (mut c2, mut s2) = connect(&ns, &l);
    let sport = l.local_addr().unwrap().port().to_string();
    let cport = c1.local_addr().unwrap().port().to_string();
    let owner = std::thread::spawn(move || {
        let mut s1 = s1;
        let mut b = [0u8; 1];
        s1.read(&mut b)
    });
    std::thread::sleep(Duration::from_millis(200));
    let out = lifeline(
        &ns,
        &[
            "sockets",
            "kill",
            "--local-port",
            &sport,
            "--remote-port",
            &cport,
            "--yes",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 of 1 socket(s) destroyed"), "{stdout}");
    let owner_err = owner.join().unwrap().expect_err("owner's read must fail");
    assert_eq!(
        owner_err.kind(),
        ErrorKind::ConnectionAborted,
        "{owner_err}"
    );
    let mut b = [0u8; 1];
    let peer_err = c1.read(&mut b).expect_err("peer sees a reset");
    assert_eq!(peer_err.kind(), ErrorKind::ConnectionReset, "{peer_err}");
    // The other connection is untouched.
    c2.write_all(b"k").unwrap();
    s2.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"k");
}

#[test]
fn kill_without_privilege_fails_loudly() {
    if !require_root("kill_without_privilege_fails_loudly") {
        return;
    }
    let ns = NetNs::new("llsn").unwrap();
    let (l, _c, _s) = pair(&ns);
    let sport = l.local_addr().unwrap().port().to_string();
    // Same binary, unprivileged (nobody): the kernel refuses SOCK_DESTROY; we must exit non-zero.
    let out = ns
        .command("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(ops_common::BIN)
        .args([
            "sockets",
            "kill",
            "--local-port",
            &sport,
            "--state",
            "established",
            "--yes",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("CAP_NET_ADMIN"), "{stderr}");
}

/// Child mode of this test binary: a server that never sets keepalive. It prints its port,
/// accepts one connection, reads one byte, then blocks in read and reports how that ends.
#[test]
fn child_server_helper() {
    if std::env::var_os("LIFELINE_TEST_CHILD_SERVER").is_none() {
        return;
    }
    // Direct writes to stdout: libtest's capture only intercepts the print! macros.
    let say = |msg: String| {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{msg}").unwrap();
        out.flush().unwrap();
    };
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    say(format!("PORT {}", l.local_addr().unwrap().port()));
    let (mut s, _) = l.accept().unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).unwrap();
    say("READY".into());
    match s.read(&mut b) {
        Ok(n) => say(format!("READ_OK {n}")),
        Err(e) => say(format!("READ_ERR {}", e.raw_os_error().unwrap_or(-1))),
    }
}

#[test]
fn enable_arms_keepalive_on_a_running_child() {
    if !require_root("enable_arms_keepalive_on_a_running_child") {
        return;
    }
    let ns = NetNs::new("llse").unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut child = ChildGuard::spawn(
        ns.command(&exe)
            .args([
                "--exact",
                "child_server_helper",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("LIFELINE_TEST_CHILD_SERVER", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped()),
    )
    .unwrap();
    let pid = child.pid().to_string();
    let mut lines = BufReader::new(child.child_mut().stdout.take().unwrap()).lines();
    let mut next = |prefix: &str| loop {
        let line = lines.next().expect("child output").unwrap();
        // libtest may print "test child_server_helper ... " before our first line.
        if let Some(i) = line.find(prefix) {
            return line[i + prefix.len()..].trim().to_string();
        }
    };
    let port: u16 = next("PORT ").parse().unwrap();
    let mut c = ns.in_ns(move || std::net::TcpStream::connect(("127.0.0.1", port)).unwrap());
    c.write_all(b"x").unwrap();
    next("READY");
    let p = port.to_string();
    let before = lifeline_json(
        &ns,
        &["sockets", "--local-port", &p, "--state", "established"],
    );
    assert_eq!(before["sockets"][0]["keepalive"], false, "{before}");

    let v = lifeline_json(
        &ns,
        &[
            "keepalive",
            "enable",
            "--pid",
            &pid,
            "--port",
            &p,
            "--idle",
            "2",
            "--intvl",
            "1",
            "--count",
            "3",
        ],
    );
    assert!(
        v["sockets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["error"].is_null()),
        "{v}"
    );
    let after = lifeline_json(
        &ns,
        &["sockets", "--local-port", &p, "--state", "established"],
    );
    let opts = &after["sockets"][0]["socket_options"];
    assert_eq!(after["sockets"][0]["keepalive"], true, "{after}");
    assert_eq!(
        (
            opts["idle_s"].as_u64(),
            opts["interval_s"].as_u64(),
            opts["count"].as_u64()
        ),
        (Some(2), Some(1), Some(3))
    );

    // Black-hole the peer: the unmodified child's read fails with ETIMEDOUT within calc's bound.
    let bound = lifeline_json(
        &ns,
        &[
            "keepalive",
            "calc",
            "--time",
            "2",
            "--intvl",
            "1",
            "--probes",
            "3",
        ],
    )["idle_detection_s"]
        .as_f64()
        .unwrap();
    let t0 = Instant::now();
    let _hole = NftDrop::new(&ns, DropWhat::TcpPort(c.local_addr().unwrap().port())).unwrap();
    let result = next("READ_");
    let elapsed = t0.elapsed().as_secs_f64();
    println!("child read: READ_{result} after {elapsed:.3} s (calc bound {bound} s)");
    assert_eq!(result, "ERR 110", "ETIMEDOUT expected");
    assert!(elapsed <= bound + 0.5, "{elapsed} > {bound}");
}
