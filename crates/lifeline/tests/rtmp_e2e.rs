//! End to end with real clients (Debian's ffmpeg and rtmpdump) against `lifeline serve` on
//! 127.0.0.1: publish, play, refusal of a second publisher, republish, mid-stream join, and
//! hostile bytes that must not disturb anyone else.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testkit::process::ChildGuard;
use testkit::rtmp::{Lifeline, ffmpeg_play_frames, ffmpeg_publish, require_tool};

const FRAME_BYTES: usize = 320 * 240;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_lifeline"))
}

fn start() -> Lifeline {
    Lifeline::start(bin(), "")
}

/// Plays `frames` frames and returns how many whole 320x240 frames arrived.
#[allow(clippy::unwrap_used, clippy::expect_used)]
fn play_frames(url: &str, frames: u32, timeout: Duration) -> usize {
    let mut cmd = ffmpeg_play_frames(url, frames);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = ChildGuard::spawn(&mut cmd).unwrap();
    let mut out = Vec::new();
    let mut stdout = child.take_stdout().expect("stdout piped");
    let reader = std::thread::spawn(move || {
        let _ = stdout.read_to_end(&mut out);
        out
    });
    child.wait_timeout(timeout);
    drop(child);
    let out = reader.join().unwrap_or_default();
    out.len() / FRAME_BYTES
}

/// Waits until the server logs that `stream` is being published.
fn wait_publishing(server: &mut Lifeline, stream: &str) {
    let needle = format!("stream={stream}");
    let line = server.wait_log("publish conn", Duration::from_secs(15));
    assert!(
        line.is_some_and(|l| l.contains(&needle)),
        "no publish of {stream}:\n{}",
        server.log_text()
    );
}

#[test]
fn ffmpeg_publishes_and_ffmpeg_and_rtmpdump_play() {
    if !require_tool("ffmpeg_publishes_and_ffmpeg_and_rtmpdump_play", "ffmpeg") {
        return;
    }
    let mut server = start();
    let url = server.url("live/e2e");
    let mut publisher =
        ChildGuard::spawn_logged(&mut ffmpeg_publish(&url, 20), &server.dir().join("pub.log"))
            .unwrap();
    wait_publishing(&mut server, "live/e2e");

    let frames = play_frames(&url, 100, Duration::from_secs(20));
    assert_eq!(
        frames,
        100,
        "player decoded {frames} frames of 320x240\n{}",
        server.log_text()
    );

    if require_tool("rtmpdump part", "rtmpdump") {
        let flv = server.dir().join("dump.flv");
        // rtmpdump keeps a live stream open: let it record for 4 s, then stop it.
        let mut dump = Command::new("rtmpdump");
        dump.args(["-q", "-v", "-r", &url, "-o"])
            .arg(&flv)
            .stdin(Stdio::null());
        let mut dump = ChildGuard::spawn(&mut dump).unwrap();
        std::thread::sleep(Duration::from_secs(4));
        let status = dump.wait_timeout(Duration::ZERO);
        drop(dump);
        let size = std::fs::metadata(&flv).map(|m| m.len()).unwrap_or(0);
        assert!(
            size > 20_000,
            "rtmpdump wrote {size} bytes (exit {status:?})"
        );
        let probe = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "stream=codec_name,width",
                "-of",
                "csv=p=0",
            ])
            .arg(&flv)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&probe.stdout);
        assert!(
            text.contains("h264,320") && text.contains("aac"),
            "rtmpdump's file holds {text:?}"
        );
    }
    assert!(
        publisher.is_running(),
        "publisher died:\n{}",
        server.log_text()
    );
    let status = server.stop();
    assert!(
        status.is_some_and(|s| s.success()),
        "graceful shutdown failed: {status:?}"
    );
}

#[test]
fn second_publisher_is_refused_while_the_first_goes_on_then_republish_works() {
    if !require_tool("second_publisher_is_refused", "ffmpeg") {
        return;
    }
    let mut server = start();
    let url = server.url("live/dup");
    let mut first = ChildGuard::spawn_logged(
        &mut ffmpeg_publish(&url, 6),
        &server.dir().join("first.log"),
    )
    .unwrap();
    wait_publishing(&mut server, "live/dup");
    std::thread::sleep(Duration::from_secs(1));

    // A player attached throughout.
    let player_url = url.clone();
    let player = std::thread::spawn(move || play_frames(&player_url, 75, Duration::from_secs(20)));

    let t0 = Instant::now();
    let mut second = ChildGuard::spawn_logged(
        &mut ffmpeg_publish(&url, 10),
        &server.dir().join("second.log"),
    )
    .unwrap();
    let status = second.wait_timeout(Duration::from_secs(5));
    let refused_after = t0.elapsed();
    assert!(
        status.is_some_and(|s| !s.success()),
        "second publisher not refused within 5 s: {status:?}"
    );
    eprintln!("second publisher refused after {refused_after:?}");
    assert!(
        server.log_text().contains("publish refused"),
        "{}",
        server.log_text()
    );
    assert!(first.is_running(), "first publisher was disturbed");
    assert_eq!(player.join().unwrap(), 75, "player stopped receiving");

    // The first publisher ends cleanly; republishing the name works at once.
    let done = first.wait_timeout(Duration::from_secs(15));
    assert!(
        done.is_some_and(|s| s.success()),
        "first publisher: {done:?}"
    );
    let mark = server.log_lines();
    let mut again = ChildGuard::spawn_logged(
        &mut ffmpeg_publish(&url, 3),
        &server.dir().join("again.log"),
    )
    .unwrap();
    let line = server.wait_log_after(mark, "publish conn", Duration::from_secs(5));
    assert!(line.is_some(), "republish failed:\n{}", server.log_text());
    let status = again.wait_timeout(Duration::from_secs(15));
    assert!(
        status.is_some_and(|s| s.success()),
        "republisher: {status:?}"
    );
}

#[test]
fn player_joining_mid_stream_starts_at_a_keyframe_within_a_second() {
    if !require_tool("player_joining_mid_stream", "ffmpeg") {
        return;
    }
    let mut server = start();
    let url = server.url("live/mid");
    let _publisher =
        ChildGuard::spawn_logged(&mut ffmpeg_publish(&url, 15), &server.dir().join("pub.log"))
            .unwrap();
    wait_publishing(&mut server, "live/mid");
    std::thread::sleep(Duration::from_millis(2300)); // join in the middle of a 1 s GOP

    // A low-latency player (as ffplay -fflags nobuffer): ffmpeg's default probing would wait
    // for seconds of stream before decoding anything, whatever the server does.
    let t0 = Instant::now();
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error"])
        .args([
            "-fflags",
            "nobuffer",
            "-analyzeduration",
            "200000",
            "-i",
            &url,
        ])
        .args(["-frames:v", "1", "-an", "-f", "null", "-"])
        .output()
        .unwrap();
    let first_frame = t0.elapsed();
    eprintln!("first frame decoded {first_frame:?} after the player started");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        first_frame < Duration::from_secs(1),
        "first frame after {first_frame:?}"
    );

    // Decoding 50 frames from the join point gives no decoder errors (it starts at a keyframe).
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-i", &url])
        .args(["-frames:v", "50", "-an", "-f", "null", "-"])
        .output()
        .unwrap();
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && errors.trim().is_empty(),
        "decoder complained: {errors}"
    );
}

#[test]
fn hostile_bytes_close_only_their_connection() {
    if !require_tool("hostile_bytes_close_only_their_connection", "ffmpeg") {
        return;
    }
    let mut server = start();
    let addr = server.addr;
    let send = |bytes: &[u8]| {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let _ = s.write_all(bytes);
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    };
    // Garbage instead of C0.
    send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    // A truncated handshake, then the peer goes away.
    drop(TcpStream::connect(addr).unwrap().write_all(&[3; 700]));
    // A valid handshake followed by a chunk announcing a 16 MiB message that never comes.
    let mut hs = vec![3u8];
    hs.extend_from_slice(&[0; 1536]);
    hs.extend_from_slice(&[0; 1536]);
    hs.extend_from_slice(&[0x03, 0, 0, 0, 0xFF, 0xFF, 0xFF, 20, 0, 0, 0, 0]);
    send(&hs);

    let log = server.log_text();
    assert!(
        log.contains("protocol_error"),
        "no protocol error logged:\n{log}"
    );

    let url = server.url("live/after");
    let _publisher =
        ChildGuard::spawn_logged(&mut ffmpeg_publish(&url, 8), &server.dir().join("pub.log"))
            .unwrap();
    wait_publishing(&mut server, "live/after");
    let frames = play_frames(&url, 25, Duration::from_secs(15));
    assert_eq!(frames, 25);
}
