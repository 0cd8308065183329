//! RTMPS with real clients: ffmpeg publishes and plays over TLS beside a plain RTMP player;
//! SIGHUP swaps the certificate without dropping anyone; hostile bytes on the TLS port are
//! closed with a clear reason; and the dead-publisher (K1) and dead-player (K4) bounds hold
//! over TLS in network namespaces, because liveness lives on the TCP socket under TLS.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault_rig;

use fault_rig::{Rig, kill_host, measured, secs};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testkit::abuse::{c0c1, fd_count};
use testkit::player::{Player, WHITE_SRC};
use testkit::process::ChildGuard;
use testkit::rtmp::{
    Lifeline, TempDir, ffmpeg_play_frames, ffmpeg_publish, ffmpeg_publish_src, log_field,
    require_tool,
};

const FRAME_BYTES: usize = 320 * 240;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_lifeline"))
}

/// Writes a self-signed certificate for `cn` (also valid for 127.0.0.1 and 192.0.2.10) and
/// its key to `dir/{name}.pem` and `dir/{name}.key`.
fn self_signed(dir: &Path, name: &str, cn: &str) {
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress("192.0.2.10".parse().unwrap()));
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
}

fn tls_config(dir: &Path, listen: &str, extra: &str) -> String {
    format!(
        "[rtmps]\nlisten = \"{listen}\"\ncert = \"{}\"\nkey = \"{}\"\n{extra}",
        dir.join("server.pem").display(),
        dir.join("server.key").display()
    )
}

/// Runs `cmd` (stdout piped) for at most `timeout`; the number of whole frames it wrote.
fn frames_of(mut cmd: Command, timeout: Duration) -> usize {
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = ChildGuard::spawn(&mut cmd).unwrap();
    let mut stdout = child.take_stdout().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out.len()
    });
    child.wait_timeout(timeout);
    drop(child);
    reader.join().unwrap_or(0) / FRAME_BYTES
}

/// The subject of the certificate `addr` presents (`openssl s_client`).
fn served_subject(addr: std::net::SocketAddr) -> String {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            "localhost",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find(|l| l.starts_with("subject="))
        .unwrap_or("")
        .to_owned()
}

fn wait_publishing(server: &mut Lifeline, stream: &str) {
    let needle = format!("stream={stream}");
    let line = server.wait_log("publish conn", Duration::from_secs(15));
    assert!(
        line.is_some_and(|l| l.contains(&needle)),
        "no publish of {stream}:\n{}",
        server.log_text()
    );
}

fn tools(test: &str) -> bool {
    require_tool(test, "ffmpeg") && require_tool(test, "openssl")
}

#[test]
fn ffmpeg_publishes_and_plays_over_rtmps_beside_a_plain_rtmp_player() {
    let test = "ffmpeg_publishes_and_plays_over_rtmps_beside_a_plain_rtmp_player";
    if !tools(test) {
        return;
    }
    let certs = TempDir::new("lifeline-certs");
    self_signed(certs.path(), "server", "lifeline-test");
    let mut server = Lifeline::start(bin(), &tls_config(certs.path(), "127.0.0.1:0", ""));
    let url = server.rtmps_url("live/cctv5");
    let _publisher =
        ChildGuard::spawn_logged(&mut ffmpeg_publish(&url, 30), &server.dir().join("pub.log"))
            .unwrap();
    wait_publishing(&mut server, "live/cctv5");
    let plain = server.url("live/cctv5");
    let tls_player = std::thread::spawn(move || {
        frames_of(ffmpeg_play_frames(&url, 100), Duration::from_secs(20))
    });
    let plain_frames = frames_of(ffmpeg_play_frames(&plain, 100), Duration::from_secs(20));
    let tls_frames = tls_player.join().unwrap();
    eprintln!("RTMPS player: {tls_frames} frames; plain RTMP player: {plain_frames} frames");
    assert!(tls_frames >= 100, "{tls_frames} frames over RTMPS");
    assert!(plain_frames >= 100, "{plain_frames} frames over RTMP");
}

#[test]
fn sighup_swaps_the_certificate_without_dropping_anyone() {
    let test = "sighup_swaps_the_certificate_without_dropping_anyone";
    if !tools(test) {
        return;
    }
    let certs = TempDir::new("lifeline-certs");
    self_signed(certs.path(), "server", "lifeline-old");
    let mut server = Lifeline::start(bin(), &tls_config(certs.path(), "127.0.0.1:0", ""));
    let addr = server.rtmps_addr.unwrap();
    assert!(
        served_subject(addr).contains("lifeline-old"),
        "{}",
        served_subject(addr)
    );
    let url = server.rtmps_url("live/hup");
    let mut publisher =
        ChildGuard::spawn_logged(&mut ffmpeg_publish(&url, 60), &server.dir().join("pub.log"))
            .unwrap();
    wait_publishing(&mut server, "live/hup");
    let player = Player::start_local(&url).unwrap();
    assert!(player.wait_frames(25, Duration::from_secs(15)));
    let mark = server.log_lines();
    let t0 = Instant::now();

    // A new certificate, then SIGHUP (to the pid we started).
    self_signed(certs.path(), "server", "lifeline-new");
    let hup = |server: &Lifeline| {
        let pid = rustix::process::Pid::from_raw(i32::try_from(server.pid()).unwrap()).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
    };
    hup(&server);
    assert!(
        server
            .wait_log_after(mark, "TLS certificate reloaded", Duration::from_secs(5))
            .is_some(),
        "{}",
        server.log_text()
    );
    let subject = served_subject(addr);
    eprintln!("after SIGHUP a new connection sees {subject}");
    assert!(subject.contains("lifeline-new"), "{subject}");

    // A bad file keeps the certificate in force.
    std::fs::write(certs.path().join("server.key"), "not a key").unwrap();
    hup(&server);
    assert!(
        server
            .wait_log_after(mark, "TLS certificate not reloaded", Duration::from_secs(5))
            .is_some(),
        "{}",
        server.log_text()
    );
    assert!(served_subject(addr).contains("lifeline-new"));

    std::thread::sleep(Duration::from_secs(1));
    let gap = player.max_gap(t0, Instant::now());
    let closes = server.close_lines(mark);
    eprintln!("player's longest gap across both reloads {gap:?}; closes {closes:?}");
    assert!(gap <= Duration::from_secs(1), "player gap {gap:?}");
    assert!(publisher.is_running(), "publisher dropped");
    assert!(
        closes.iter().all(|l| !l.contains("live/hup")),
        "someone was dropped: {closes:?}"
    );
}

#[test]
fn hostile_bytes_on_the_tls_port_are_closed_with_a_clear_reason() {
    let test = "hostile_bytes_on_the_tls_port_are_closed_with_a_clear_reason";
    if !tools(test) {
        return;
    }
    let certs = TempDir::new("lifeline-certs");
    self_signed(certs.path(), "server", "lifeline-test");
    let config = tls_config(
        certs.path(),
        "127.0.0.1:0",
        "[liveness]\nhandshake_timeout = \"2s\"\n",
    );
    let mut server = Lifeline::start(bin(), &config);
    let addr = server.rtmps_addr.unwrap();
    let pid = server.pid();
    let fds_before = fd_count(pid).unwrap();

    let closed_with = |server: &mut Lifeline, mark: usize, port: u16| {
        let needle = format!("peer=127.0.0.1:{port} ");
        server
            .wait_line(mark, Duration::from_secs(5), |l| {
                l.contains(" close conn=") && l.contains(&needle)
            })
            .unwrap_or_else(|| panic!("not closed:\n{}", server.log_text()))
    };
    // Plain RTMP to the TLS port.
    let mark = server.log_lines();
    let mut s = TcpStream::connect(addr).unwrap();
    let port = s.local_addr().unwrap().port();
    s.write_all(&c0c1()).unwrap();
    let line = closed_with(&mut server, mark, port);
    eprintln!("plain RTMP: {line}");
    assert_eq!(log_field(&line, "reason"), Some("protocol_error"), "{line}");
    assert!(line.contains("plain RTMP"), "{line}");

    // Garbage.
    let mark = server.log_lines();
    let mut s = TcpStream::connect(addr).unwrap();
    let port = s.local_addr().unwrap().port();
    s.write_all(b"\x16\x03\x01\x00\x05hello, not a ClientHello")
        .unwrap();
    let line = closed_with(&mut server, mark, port);
    eprintln!("garbage: {line}");
    assert_eq!(log_field(&line, "reason"), Some("protocol_error"), "{line}");

    // A ClientHello dribbled a byte a second: cut at handshake_timeout (2 s).
    let mark = server.log_lines();
    let mut s = TcpStream::connect(addr).unwrap();
    let port = s.local_addr().unwrap().port();
    let started = Instant::now();
    for b in [0x16u8, 0x03, 0x01, 0x02, 0x00] {
        if s.write_all(&[b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let line = closed_with(&mut server, mark, port);
    let after = started.elapsed();
    eprintln!("dribbled ClientHello closed after {after:?}: {line}");
    assert_eq!(
        log_field(&line, "reason"),
        Some("handshake_timeout"),
        "{line}"
    );
    assert!(after <= Duration::from_secs(4), "{after:?}");

    // And a normal RTMPS publish and play still work.
    let url = server.rtmps_url("live/ok");
    let _publisher =
        ChildGuard::spawn_logged(&mut ffmpeg_publish(&url, 20), &server.dir().join("pub.log"))
            .unwrap();
    wait_publishing(&mut server, "live/ok");
    let frames = frames_of(ffmpeg_play_frames(&url, 50), Duration::from_secs(20));
    assert!(frames >= 50, "{frames} frames");
    drop(s);
    let end = Instant::now() + Duration::from_secs(5);
    let mut fds = fd_count(pid).unwrap();
    while fds > fds_before + 2 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
        fds = fd_count(pid).unwrap();
    }
    eprintln!("server fds {fds_before} -> {fds} (the publisher still connected)");
    assert!(fds <= fds_before + 2, "fds {fds_before} -> {fds}");
}

/// The fault rig with the server also on RTMPS (192.0.2.10:1936).
fn tls_rig(test: &str, clients: usize) -> Option<(Rig, TempDir)> {
    if !require_tool(test, "openssl") {
        return None;
    }
    let certs = TempDir::new("lifeline-certs");
    self_signed(certs.path(), "server", "lifeline-test");
    let rig = Rig::new(
        test,
        clients,
        &tls_config(certs.path(), "192.0.2.10:1936", ""),
    )?;
    Some((rig, certs))
}

const TLS_URL: &str = "rtmps://192.0.2.10:1936/live/cam";

#[test]
fn k1_tls_newcomer_replaces_a_dead_rtmps_publisher() {
    let Some((mut rig, _certs)) = tls_rig("k1_tls", 3) else {
        return;
    };
    let dir = rig.server.dir().to_owned();
    let log = |n: &str| dir.join(format!("{n}.log"));
    let old = ChildGuard::spawn_logged(
        &mut rig.host(1).wrap(&ffmpeg_publish(TLS_URL, 600)),
        &log("old"),
    )
    .unwrap();
    assert!(
        rig.publish_outcome(0, 1, Duration::from_secs(15))
            .is_some_and(|(_, r)| r.is_ok())
    );
    let mut player = Player::start(rig.host(3), TLS_URL).unwrap();
    assert!(player.wait_frames(25, Duration::from_secs(15)));
    let mark = rig.server.log_lines();
    let t0 = kill_host(rig.host(1), &old);
    std::thread::sleep(Duration::from_secs(1));
    let skip = rig.server.log_lines();
    let _newcomer = ChildGuard::spawn_logged(
        &mut rig
            .host(2)
            .wrap(&ffmpeg_publish_src(TLS_URL, 600, WHITE_SRC)),
        &log("new"),
    )
    .unwrap();
    let at = match rig.publish_outcome(skip, 2, Duration::from_secs(8)) {
        Some((at, Ok(_))) => at,
        other => panic!("first attempt did not publish: {other:?}\n{}", rig.log()),
    };
    let took = secs(at - t0);
    measured("K1-TLS", took);
    // The TLS handshake adds a round trip or two to the newcomer's start.
    assert!(
        took <= 2.0 + fault_rig::SLACK,
        "published {took:.2}s after the pull"
    );
    let (_, reason) = rig.wait_close(mark, 1, t0, Duration::from_secs(5)).unwrap();
    assert_eq!(reason, "taken_over");
    assert!(
        player
            .wait_frame_after(at, Duration::from_secs(10), |f| f.white)
            .is_some(),
        "player got no newcomer frame"
    );
    assert!(player.process().is_running(), "player had to reconnect");
}

#[test]
fn k4_tls_dead_rtmps_player_is_released_at_the_user_timeout() {
    let Some((mut rig, _certs)) = tls_rig("k4_tls", 3) else {
        return;
    };
    let mut publisher = rig.live_publisher(1);
    let mut victim = Player::start(rig.host(2), TLS_URL).unwrap();
    assert!(victim.wait_frames(25, Duration::from_secs(15)));
    let other = Player::start(rig.host(3), TLS_URL).unwrap();
    assert!(other.wait_frames(25, Duration::from_secs(15)));
    let mark = rig.server.log_lines();
    let t0 = kill_host(rig.host(2), victim.process());
    let (after, reason) = rig
        .wait_close(mark, 2, t0, Duration::from_secs(25))
        .unwrap_or_else(|| panic!("dead RTMPS player never released\n{}", rig.log()));
    measured("K4-TLS", after);
    std::thread::sleep(Duration::from_secs(1));
    let gap = other.max_gap(t0, Instant::now());
    println!("K4-TLS: reason {reason}, other player's longest gap {gap:?}");
    assert_eq!(reason, "peer_unreachable");
    assert!(
        after <= 10.0 + fault_rig::SLACK,
        "released after {after:.2}s"
    );
    assert!(gap <= Duration::from_secs(1), "other player gap {gap:?}");
    assert!(publisher.is_running());
}

#[test]
fn playback_over_https_with_the_rtmps_certificate() {
    let test = "playback_over_https_with_the_rtmps_certificate";
    if !tools(test) {
        return;
    }
    let certs = TempDir::new("lifeline-certs");
    self_signed(certs.path(), "server", "lifeline-test");
    let config = format!(
        "[rtmps]\ncert = \"{}\"\nkey = \"{}\"\n[playback]\ntls = true\n",
        certs.path().join("server.pem").display(),
        certs.path().join("server.key").display()
    );
    let mut server = Lifeline::start(bin(), &config);
    let _publisher = ChildGuard::spawn_logged(
        &mut ffmpeg_publish(&server.url("live/https"), 30),
        &server.dir().join("pub.log"),
    )
    .unwrap();
    wait_publishing(&mut server, "live/https");
    let addr = server.playback_addr.unwrap();
    let subject = served_subject(addr);
    assert!(subject.contains("lifeline-test"), "{subject}");
    let flv = format!("https://{addr}/live/https.flv");
    let frames = frames_of(ffmpeg_play_frames(&flv, 50), Duration::from_secs(20));
    let hls = format!("https://{addr}/live/https/index.m3u8");
    let hls_frames = frames_of(ffmpeg_play_frames(&hls, 50), Duration::from_secs(25));
    eprintln!("HTTPS: {frames} frames from {flv}, {hls_frames} from {hls}");
    assert!(frames >= 50 && hls_frames >= 50);
}

#[test]
fn a_push_to_an_rtmps_upstream_verifies_its_certificate() {
    let test = "a_push_to_an_rtmps_upstream_verifies_its_certificate";
    if !tools(test) {
        return;
    }
    let certs = TempDir::new("lifeline-certs");
    self_signed(certs.path(), "server", "lifeline-upstream");
    let upstream = Lifeline::start(bin(), &tls_config(certs.path(), "127.0.0.1:0", ""));
    let target = upstream.rtmps_url("live/cam");
    let relay = |ca: &str| {
        format!(
            "[relay]\nretry_min = \"200ms\"\nretry_max = \"1s\"\n{ca}\
             [[relay.push]]\napp = \"live\"\nname = \"cam\"\nurl = \"{target}\"\n"
        )
    };
    // Without the upstream's CA: the certificate is refused, and the push backs off.
    let mut untrusting = Lifeline::start(bin(), &relay(""));
    let _p1 = ChildGuard::spawn_logged(
        &mut ffmpeg_publish(&untrusting.url("live/cam"), 20),
        &untrusting.dir().join("pub.log"),
    )
    .unwrap();
    let refused = untrusting.wait_line(0, Duration::from_secs(15), |l| {
        l.contains("close conn=") && l.contains("rtmp-push") && l.contains("certificate")
    });
    eprintln!("untrusted upstream: {refused:?}");
    assert!(refused.is_some(), "{}", untrusting.log_text());
    drop(_p1);
    drop(untrusting);

    // With it ([relay] ca_file), the stream reaches the upstream over TLS.
    let ca = format!(
        "ca_file = \"{}\"\n",
        certs.path().join("server.pem").display()
    );
    let edge = Lifeline::start(bin(), &relay(&ca));
    let _p2 = ChildGuard::spawn_logged(
        &mut ffmpeg_publish(&edge.url("live/cam"), 30),
        &edge.dir().join("pub.log"),
    )
    .unwrap();
    let plain = upstream.url("live/cam");
    let end = Instant::now() + Duration::from_secs(20);
    let mut frames = 0;
    while frames < 50 && Instant::now() < end {
        frames = frames_of(ffmpeg_play_frames(&plain, 50), Duration::from_secs(10));
    }
    eprintln!("{frames} frames at the upstream, pushed over rtmps");
    assert!(frames >= 50, "{}", edge.log_text());
}
