//! `lifeline keepalive show/set/calc` end to end, inside throw-away network namespaces:
//! the sysctl round trip, and calc's answers against the kernel's measured aborts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ops_common;

use ops_common::{lifeline, lifeline_json, pair};
use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};
use testkit::{DropWhat, NetNs, NftDrop, require_root};

fn host_keepalive() -> Vec<String> {
    [
        "tcp_keepalive_time",
        "tcp_keepalive_intvl",
        "tcp_keepalive_probes",
    ]
    .iter()
    .map(|n| std::fs::read_to_string(format!("/proc/sys/net/ipv4/{n}")).unwrap())
    .collect()
}

#[test]
fn show_set_round_trip_in_a_namespace() {
    if !require_root("show_set_round_trip_in_a_namespace") {
        return;
    }
    let host_before = host_keepalive();
    let ns = NetNs::new("llka").unwrap();
    let v = lifeline_json(&ns, &["keepalive", "show"]);
    assert_eq!(v["tcp_keepalive_time_s"], 7200);
    assert_eq!(v["idle_detection_s"], 7875.0);

    let dir = std::env::temp_dir().join(testkit::unique_name("llka-persist"));
    let file = dir.join("60-lifeline-keepalive.conf");
    let v = lifeline_json(
        &ns,
        &[
            "keepalive",
            "set",
            "--time",
            "60",
            "--intvl",
            "10",
            "--probes",
            "3",
            "--persist",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(v["before"]["tcp_keepalive_time_s"], 7200);
    assert_eq!(v["after"]["idle_detection_s"], 90);
    assert_eq!(ns.sysctl("net/ipv4/tcp_keepalive_intvl").unwrap(), "10");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("net.ipv4.tcp_keepalive_time = 60\n"),
        "{text}"
    );
    let show = lifeline_json(&ns, &["keepalive", "show"]);
    assert_eq!(show["idle_detection_s"], 90.0);

    // Invalid: refused, non-zero exit, nothing written (sysctls nor file).
    let other = dir.join("other.conf");
    for bad in [["--time", "0"], ["--time", "40000"], ["--probes", "0"]] {
        let mut args = vec!["keepalive", "set", "--intvl", "5"];
        args.extend_from_slice(&bad);
        args.extend_from_slice(&["--persist", other.to_str().unwrap()]);
        let out = lifeline(&ns, &args);
        assert!(!out.status.success(), "{bad:?} accepted");
        assert!(String::from_utf8_lossy(&out.stderr).contains("out of range"));
    }
    assert!(!other.exists());
    assert_eq!(ns.sysctl("net/ipv4/tcp_keepalive_time").unwrap(), "60");
    assert_eq!(
        host_keepalive(),
        host_before,
        "host sysctls must not change"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn calc_defaults_and_table() {
    // calc needs no privileges and reads nothing it cannot.
    let out = std::process::Command::new(ops_common::BIN)
        .args([
            "keepalive",
            "calc",
            "--time",
            "7200",
            "--intvl",
            "75",
            "--probes",
            "9",
            "--retries2",
            "15",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["idle_detection_s"], 7875.0);
    assert_eq!(v["busy_detection_bound_s"], 924.6);
}

/// Measures how long after the last received segment the kernel aborts an idle socket whose
/// peer is black-holed, and compares with `keepalive calc`.
fn idle_abort(user_timeout_ms: Option<u64>) -> (f64, f64) {
    let ns = NetNs::new("llkc").unwrap();
    let (_l, mut c, mut s) = pair(&ns);
    liveness::SocketLiveness {
        keepalive: Some(liveness::Keepalive {
            idle: Duration::from_secs(2),
            interval: Duration::from_secs(1),
            count: 3,
        }),
        user_timeout: user_timeout_ms.map(Duration::from_millis),
    }
    .apply(&s)
    .unwrap();
    c.write_all(b"x").unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).unwrap();
    let t0 = Instant::now();
    let _hole = NftDrop::new(&ns, DropWhat::TcpPort(c.local_addr().unwrap().port())).unwrap();
    let err = s.read(&mut b).expect_err("read must fail");
    let measured = t0.elapsed().as_secs_f64();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    let mut args = vec![
        "keepalive",
        "calc",
        "--time",
        "2",
        "--intvl",
        "1",
        "--probes",
        "3",
    ];
    let u = user_timeout_ms.map(|u| u.to_string());
    if let Some(u) = &u {
        args.extend(["--user-timeout", u.as_str()]);
    }
    let v = lifeline_json(&ns, &args);
    (measured, v["idle_detection_s"].as_f64().unwrap())
}

#[test]
fn calc_matches_kernel_idle_keepalive() {
    if !require_root("calc_matches_kernel_idle_keepalive") {
        return;
    }
    let (measured, predicted) = idle_abort(None);
    println!("idle 2/1/3: measured {measured:.3} s, calc {predicted} s");
    assert_eq!(predicted, 5.0);
    assert!(
        (measured - predicted).abs() < 0.5,
        "measured {measured} vs calc {predicted}"
    );
}

#[test]
fn calc_matches_kernel_idle_with_user_timeout() {
    if !require_root("calc_matches_kernel_idle_with_user_timeout") {
        return;
    }
    // U = 3.5 s replaces the count: abort at 2 + 1 × ⌈1.5⌉ = 4 s, not 5.
    let (measured, predicted) = idle_abort(Some(3500));
    println!("idle 2/1/3 U=3500: measured {measured:.3} s, calc {predicted} s");
    assert_eq!(predicted, 4.0);
    assert!(
        (measured - predicted).abs() < 0.5,
        "measured {measured} vs calc {predicted}"
    );
}

/// Data in flight to a black-holed peer: keepalive is not used; the user timeout or
/// tcp_retries2 decides.
fn busy_abort(ns: &NetNs, user_timeout_ms: Option<u64>) -> f64 {
    let (_l, mut c, mut s) = pair(ns);
    liveness::SocketLiveness {
        keepalive: Some(liveness::Keepalive {
            idle: Duration::from_secs(1),
            interval: Duration::from_secs(1),
            count: 1,
        }),
        user_timeout: user_timeout_ms.map(Duration::from_millis),
    }
    .apply(&s)
    .unwrap();
    c.write_all(b"x").unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).unwrap();
    let _hole = NftDrop::new(ns, DropWhat::TcpPort(c.local_addr().unwrap().port())).unwrap();
    let t0 = Instant::now();
    s.write_all(&[7u8; 1000]).unwrap();
    let err = s.read(&mut b).expect_err("read must fail");
    let measured = t0.elapsed().as_secs_f64();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    measured
}

#[test]
fn calc_matches_kernel_busy_with_user_timeout() {
    if !require_root("calc_matches_kernel_busy_with_user_timeout") {
        return;
    }
    let ns = NetNs::new("llkb").unwrap();
    let measured = busy_abort(&ns, Some(3000));
    let v = lifeline_json(
        &ns,
        &[
            "keepalive",
            "calc",
            "--time",
            "1",
            "--intvl",
            "1",
            "--probes",
            "1",
            "--user-timeout",
            "3000",
        ],
    );
    let predicted = v["busy_detection_s"].as_f64().unwrap();
    println!("busy U=3000: measured {measured:.3} s, calc {predicted} s");
    assert_eq!(predicted, 3.0);
    assert!(
        (measured - predicted).abs() < 0.5,
        "measured {measured} vs calc {predicted}"
    );
}

#[test]
fn calc_matches_kernel_busy_with_retries2() {
    if !require_root("calc_matches_kernel_busy_with_retries2") {
        return;
    }
    let ns = NetNs::new("llkr").unwrap();
    ns.set_sysctl("net/ipv4/tcp_retries2", "4").unwrap();
    let measured = busy_abort(&ns, None);
    // calc reads tcp_retries2 from the namespace it runs in.
    let v = lifeline_json(&ns, &["keepalive", "calc"]);
    assert_eq!(v["tcp_retries2"], 4);
    let predicted = v["busy_detection_s"].as_f64().unwrap();
    println!(
        "busy tcp_retries2=4: measured {measured:.3} s, calc {predicted} s (bound {})",
        v["busy_detection_bound_s"]
    );
    assert!(
        (measured - predicted).abs() < 0.5,
        "measured {measured} vs calc {predicted}"
    );
}
