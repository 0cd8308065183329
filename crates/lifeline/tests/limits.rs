//! The `[limits]` bounds over loopback (issue "Hostile input"): refusals per address, per server,
//! per stream and of the handshake rate, their counters and their bounded logging — beside a
//! real ffmpeg publish + play that must stay real time (`live_rig`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod live_rig;

use live_rig::{connect, metric, start};
use std::time::{Duration, Instant};
use testkit::abuse::RawConn;

#[test]
fn limits_refuse_count_and_log_without_flooding() {
    let config = r#"
[limits]
max_connections_per_ip = 6
max_streams = 2
max_players_per_stream = 2
"#;
    let Some((_serial, mut server, live)) = start("limits", config) else {
        return;
    };
    let t0 = Instant::now();
    // ffmpeg holds two connections (publisher, player) and one stream with one player.
    let mut a = connect(server.addr);
    assert_eq!(
        a.publish("second", Duration::from_secs(5)).unwrap(),
        "NetStream.Publish.Start"
    );
    let mut b = connect(server.addr);
    assert_eq!(
        b.publish("third", Duration::from_secs(5)).unwrap(),
        "NetStream.Publish.BadName"
    );
    let mut c = connect(server.addr);
    assert_eq!(
        c.play("rt", Duration::from_secs(5)).unwrap(),
        "NetStream.Play.Reset"
    );
    let mut d = connect(server.addr);
    assert_eq!(
        d.play("rt", Duration::from_secs(5)).unwrap(),
        "NetStream.Play.Failed"
    );
    let refused = server.wait_line(0, Duration::from_secs(5), |l| {
        l.contains("reason=refused: limits.max_players_per_stream reached (2)")
    });
    assert!(refused.is_some(), "{}", server.log_text());
    assert!(
        server
            .log_text()
            .contains("reason=refused: limits.max_streams reached (2)"),
        "{}",
        server.log_text()
    );
    // b and d are closed after their refusal; six connections are open (ffmpeg x2, a, c and
    // two more): then every further connection from 127.0.0.1 is refused at accept.
    let _e = RawConn::open(server.addr).unwrap();
    let _f = RawConn::open(server.addr).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mark = server.log_lines();
    let start = Instant::now();
    let refused_at_once = (0..500)
        .filter(|_| RawConn::refused_at_once(server.addr, Duration::from_secs(2)))
        .count();
    let flood = start.elapsed();
    std::thread::sleep(Duration::from_millis(1500));
    let lines = server
        .log_text()
        .lines()
        .skip(mark)
        .filter(|l| l.contains("limits.max_connections_per_ip"))
        .map(str::to_owned)
        .collect::<Vec<_>>();
    let per_ip = metric(
        &server,
        "lifeline_refusals_total{reason=\"max_connections_per_ip\"}",
    );
    let rt = live.assert_real_time(t0, "refusals");
    println!(
        "500 connections over the per-IP cap: {refused_at_once} closed at once in {} ms, \
         {per_ip} counted, {} log lines; live stream: {rt}",
        flood.as_millis(),
        lines.len()
    );
    assert_eq!(refused_at_once, 500);
    assert_eq!(per_ip, 500);
    assert!(
        (1..=2 + flood.as_secs() as usize * 2).contains(&lines.len()),
        "{lines:#?}"
    );
    assert_eq!(
        metric(&server, "lifeline_refusals_total{reason=\"max_streams\"}"),
        1
    );
    assert_eq!(
        metric(
            &server,
            "lifeline_refusals_total{reason=\"max_players_per_stream\"}"
        ),
        1
    );
    drop((a, b, c, d));
}

#[test]
fn handshake_rate_is_bounded_at_accept() {
    let config = r#"
[limits]
max_handshakes_per_second = 20
handshake_burst = 20
"#;
    let Some((_serial, server, live)) = start("handshake_rate", config) else {
        return;
    };
    // The two ffmpeg connections took two tokens; they are back by now.
    std::thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    // A refused connection is reset at once (even during connect); an admitted one waits for
    // its handshake.
    let mut conns: Vec<Option<RawConn>> =
        (0..200).map(|_| RawConn::open(server.addr).ok()).collect();
    let took = t0.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(300));
    let admitted = conns
        .iter_mut()
        .flatten()
        .map(|c| c.wait_closed(Duration::from_millis(5)))
        .filter(Option::is_none)
        .count();
    drop(conns);
    let refused = metric(
        &server,
        "lifeline_refusals_total{reason=\"max_handshakes_per_second\"}",
    );
    std::thread::sleep(Duration::from_millis(500));
    let rt = live.assert_real_time(t0, "handshake rate");
    println!(
        "200 connections in {took:.1} s at 20/s with a burst of 20: {admitted} admitted, \
         {refused} refused; live stream: {rt}"
    );
    let allowed = 20.0 + 20.0 * took;
    assert!(
        (admitted as f64) <= allowed + 2.0 && admitted >= 20,
        "{admitted} admitted, at most {allowed:.0} allowed"
    );
    assert_eq!(refused as usize, 200 - admitted);
}
