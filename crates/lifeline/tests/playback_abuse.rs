//! Hostile input on the playback port, beside a real ffmpeg publish + play that must stay real
//! time: garbage, oversized heads (431), odd paths, dribbled heads, 10,000 idle keep-alive
//! connections — each gets a clear 4xx or a close, nothing crashes, and the server's file
//! descriptors return to their baseline. And 1000 HLS sessions that stop requesting expire,
//! freeing the stream's segmenter with the last of them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod live_rig;

use live_rig::{STREAM, metric, start};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use testkit::abuse::fd_count;
use testkit::http::{get, http};

const CONFIG: &str = r#"
[liveness]
handshake_timeout = "2s"
[playback]
idle_timeout = "2s"
[limits]
max_connections_per_ip = 20000
max_handshakes_per_second = 100000
handshake_burst = 100000
"#;

/// Sends `bytes` on a fresh connection and reads the answer until the server closes it (or
/// `timeout`); returns the status (0: closed without an answer) and the answer text.
fn exchange(addr: SocketAddr, bytes: &[u8], timeout: Duration) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn settle_fds(pid: u32, baseline: usize, timeout: Duration) -> usize {
    let end = Instant::now() + timeout;
    loop {
        let n = fd_count(pid).unwrap();
        if n <= baseline || Instant::now() >= end {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn hostile_requests_get_a_clear_answer_and_leave_nothing_behind() {
    let Some((_serial, server, live)) = start("playback_hostile", CONFIG) else {
        return;
    };
    let addr = server.playback_addr.expect("playback on");
    let pid = server.pid();
    let fds_before = fd_count(pid).unwrap();
    let t0 = Instant::now();
    let t = Duration::from_secs(5);

    let long_header = format!(
        "GET /{STREAM}.flv HTTP/1.1\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(17 * 1024)
    );
    let long_name = format!("GET /live/{}.flv HTTP/1.1\r\n\r\n", "n".repeat(4096));
    let cases: Vec<(&str, Vec<u8>, &[u16])> = vec![
        (
            "garbage",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(),
            &[400],
        ),
        ("RTMP handshake", vec![3u8; 1537], &[400, 431]),
        ("17 KiB header", long_header.into_bytes(), &[431]),
        ("4 KiB name", long_name.into_bytes(), &[414]),
        (
            "dot-dot",
            b"GET /../etc/passwd HTTP/1.1\r\n\r\n".to_vec(),
            &[404, 400],
        ),
        (
            "encoded dot-dot",
            b"GET /live/%2e%2e.flv HTTP/1.1\r\n\r\n".to_vec(),
            &[404, 400],
        ),
        (
            "NUL",
            b"GET /live/a%00b.flv HTTP/1.1\r\n\r\n".to_vec(),
            &[400],
        ),
        (
            "bad escape",
            b"GET /live/a%zz.flv HTTP/1.1\r\n\r\n".to_vec(),
            &[400],
        ),
        (
            "POST",
            b"POST /live/cam.flv HTTP/1.1\r\nContent-Length: 0\r\n\r\n".to_vec(),
            &[405],
        ),
        (
            "unknown path",
            b"GET /nothing/here/at/all HTTP/1.1\r\n\r\n".to_vec(),
            &[404],
        ),
        (
            "unknown session",
            b"GET /live/rt/s/deadbeef/media.m3u8 HTTP/1.1\r\nConnection: close\r\n\r\n".to_vec(),
            &[404],
        ),
    ];
    for (what, bytes, want) in &cases {
        let (status, text) = exchange(addr, bytes, t);
        assert!(want.contains(&status), "{what}: {status}\n{text}");
        let reason = text.split("\r\n\r\n").nth(1).unwrap_or("").trim();
        assert!(!reason.is_empty(), "{what}: no reason given");
        eprintln!("{what}: {status} {reason}");
    }

    // A head dribbled a byte every 300 ms is cut off at handshake_timeout (2 s).
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let started = Instant::now();
    let mut closed = None;
    for b in b"GET /live/rt.flv HTTP/1.1\r\nHost: x\r\n"
        .iter()
        .cycle()
        .take(60)
    {
        if slow.write_all(&[*b]).is_err() {
            closed = Some(started.elapsed());
            break;
        }
        let mut buf = [0u8; 512];
        match slow.read(&mut buf) {
            Ok(0) => {
                closed = Some(started.elapsed());
                break;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => {
                closed = Some(started.elapsed());
                break;
            }
        }
    }
    let closed = closed.expect("a dribbled head was never cut off");
    eprintln!("dribbled head closed after {closed:?}");
    assert!(closed <= Duration::from_secs(4), "{closed:?}");

    let rt = live.assert_real_time(t0, "hostile requests");
    let fds_after = settle_fds(pid, fds_before, Duration::from_secs(5));
    eprintln!("server fds {fds_before} -> {fds_after}; live stream: {rt}");
    assert!(fds_after <= fds_before, "fds {fds_before} -> {fds_after}");
}

#[test]
fn ten_thousand_idle_keep_alive_connections_are_closed_at_the_idle_timeout() {
    let Some((_serial, server, live)) = start("playback_idle", CONFIG) else {
        return;
    };
    let addr = server.playback_addr.expect("playback on");
    let pid = server.pid();
    let fds_before = fd_count(pid).unwrap();
    let t0 = Instant::now();
    let request = b"GET /live/none/s/abc/media.m3u8 HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut conns = Vec::with_capacity(10_000);
    // 2,500 a second: a crowd arriving, not a SYN flood (the accept limits handle floods).
    for i in 0..10_000 {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(request).unwrap();
        conns.push(s);
        if i % 250 == 249 {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let opened = t0.elapsed();
    let fds_open = fd_count(pid).unwrap();
    // Every one got its answer (404, keep-alive) and is then idle; each is closed by the
    // server at idle_timeout (2 s) after its answer.
    let mut answered = 0;
    let mut closed = 0;
    let deadline = Instant::now() + Duration::from_secs(15);
    for s in &mut conns {
        let left = deadline.saturating_duration_since(Instant::now());
        s.set_read_timeout(Some(left.max(Duration::from_millis(10))))
            .unwrap();
        let mut out = Vec::new();
        if s.read_to_end(&mut out).is_ok() {
            closed += 1;
        }
        if out.starts_with(b"HTTP/1.1 404") {
            answered += 1;
        }
    }
    let all_closed = t0.elapsed();
    drop(conns);
    let fds_after = settle_fds(pid, fds_before, Duration::from_secs(5));
    let rt = live.assert_real_time(t0, "10,000 idle keep-alive connections");
    eprintln!(
        "10,000 keep-alive connections opened in {opened:?}, {answered} answered, {closed} \
         closed by the server after {all_closed:?}; server fds {fds_before} -> {fds_open} -> \
         {fds_after}; live stream: {rt}"
    );
    assert_eq!(answered, 10_000);
    assert_eq!(closed, 10_000);
    assert!(fds_after <= fds_before, "fds {fds_before} -> {fds_after}");
    assert!(
        metric(&server, "lifeline_closes_total{reason=\"idle_timeout\"}") >= 10_000,
        "closes by idle_timeout"
    );
}

fn stream_hls_bytes(server: &testkit::rtmp::Lifeline) -> Option<u64> {
    let body = http(server.http_addr.unwrap(), "GET", "/api/v1/streams", None).body;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["streams"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == "rt")?["hls_bytes"]
        .as_u64()
}

#[test]
fn a_thousand_hls_sessions_that_stop_requesting_expire_and_free_the_segmenter() {
    let Some((_serial, server, live)) = start("playback_sessions", CONFIG) else {
        return;
    };
    let addr = server.playback_addr.expect("playback on");
    let t0 = Instant::now();
    let t = Duration::from_secs(10);
    let mut medias = Vec::new();
    for _ in 0..1000 {
        let idx = get(addr, &format!("/{STREAM}/index.m3u8"), t).unwrap();
        assert_eq!(idx.status, 200, "{}", idx.text());
        medias.push(idx.text().lines().last().unwrap().to_owned());
    }
    // A few of them actually play a little.
    for m in medias.iter().take(10) {
        let p = get(addr, &format!("/{STREAM}/{m}"), t).unwrap();
        assert_eq!(p.status, 200);
    }
    let viewers = metric(&server, "lifeline_viewers{protocol=\"hls\"}");
    let held = stream_hls_bytes(&server);
    eprintln!(
        "1000 sessions opened in {:?}: {viewers} HLS viewers, segmenter {held:?} bytes",
        t0.elapsed()
    );
    assert_eq!(viewers, 1000);
    assert!(held.is_some_and(|b| b > 0));
    let stopped = Instant::now();
    // Three target durations (1 s) without a request, then the reaper's next look (0.5 s).
    let end = stopped + Duration::from_secs(10);
    while metric(&server, "lifeline_viewers{protocol=\"hls\"}") > 0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
    let expired_after = stopped.elapsed();
    let expired = metric(
        &server,
        "lifeline_viewer_closes_total{protocol=\"hls\",reason=\"session_expired\"}",
    );
    let held_after = stream_hls_bytes(&server);
    let rt = live.assert_real_time(t0, "1000 HLS sessions");
    eprintln!(
        "sessions expired {expired_after:?} after their last request: {expired} session_expired, \
         segmenter {held_after:?} bytes after; live stream: {rt}"
    );
    assert_eq!(metric(&server, "lifeline_viewers{protocol=\"hls\"}"), 0);
    assert_eq!(expired, 1000);
    assert!(expired_after <= Duration::from_secs(5), "{expired_after:?}");
    assert_eq!(held_after, None, "the segmenter outlived its last viewer");
    // The session's URIs are dead now: a clear 404 that says what to do.
    let gone = get(addr, &format!("/{STREAM}/{}", medias[0]), t).unwrap();
    assert_eq!(gone.status, 404);
    assert!(gone.text().contains("index.m3u8"), "{}", gone.text());
}
