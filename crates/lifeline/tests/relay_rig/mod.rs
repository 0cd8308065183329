//! What the relay tests (`relay_e2e.rs`, `relay_faults.rs`) share: the admin API's relay list,
//! waiting for a relay state, counting decoded frames, and a free loopback port.

// Each test binary uses part of the rig.
#![allow(dead_code)]

use serde_json::Value;
use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testkit::process::ChildGuard;
use testkit::rtmp::{Lifeline, ffmpeg_play_frames};

/// Bytes of one decoded 320x240 grey frame.
pub(crate) const FRAME_BYTES: usize = 320 * 240;

pub(crate) fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_lifeline"))
}

pub(crate) fn measured(id: &str, secs: f64) {
    println!("MEASURED {id} {secs:.2}");
}

/// A loopback port nobody listens on right now (for servers that need one in their config).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `GET /api/v1/relays`.
pub(crate) fn relays(server: &Lifeline) -> Vec<Value> {
    let addr: SocketAddr = server.http_addr.expect("[http] is enabled");
    let resp = testkit::http::http(addr, "GET", "/api/v1/relays", None);
    assert_eq!(resp.status, 200, "{}", resp.body);
    let json: Value = serde_json::from_str(&resp.body).expect("JSON");
    json["relays"].as_array().cloned().unwrap_or_default()
}

/// Waits until a relay of `kind` for `stream` is in `state`; returns it.
pub(crate) fn wait_relay(
    server: &Lifeline,
    kind: &str,
    stream: &str,
    state: &str,
    timeout: Duration,
) -> Option<Value> {
    let end = Instant::now() + timeout;
    loop {
        let found = relays(server)
            .into_iter()
            .find(|r| r["kind"] == kind && r["stream"] == stream && r["state"] == state);
        if found.is_some() || Instant::now() >= end {
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until no relay is listed; returns when that was seen.
pub(crate) fn wait_no_relay(server: &Lifeline, timeout: Duration) -> Option<Instant> {
    let end = Instant::now() + timeout;
    loop {
        if relays(server).is_empty() {
            return Some(Instant::now());
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `cmd` (an [`ffmpeg_play_frames`], maybe inside a namespace) until it exits or
/// `timeout` passes; returns how many whole 320x240 frames it decoded.
pub(crate) fn play_frames_with(mut cmd: Command, timeout: Duration) -> usize {
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = ChildGuard::spawn(&mut cmd).expect("start ffmpeg");
    let mut stdout = child.take_stdout().expect("stdout piped");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out.len()
    });
    child.wait_timeout(timeout);
    drop(child);
    reader.join().unwrap_or(0) / FRAME_BYTES
}

/// ffmpeg publishing testsrc + sine at a constant video bitrate (e.g. "2M", filler included).
pub(crate) fn ffmpeg_publish_cbr(url: &str, seconds: u32, bitrate: &str) -> Command {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
        ])
        .args([
            "-g", "25", "-b:v", bitrate, "-minrate", bitrate, "-maxrate", bitrate,
        ])
        .args(["-bufsize", bitrate, "-x264-params", "nal-hrd=cbr"])
        .args(["-c:a", "aac", "-b:a", "64k"])
        .args(["-t", &seconds.to_string(), "-f", "flv", url]);
    cmd
}

/// Now, in seconds since midnight UTC (the clock of [`testkit::rtmp::log_time`]).
pub(crate) fn time_of_day() -> f64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    since.as_secs_f64() % 86_400.0
}

/// [`play_frames_with`] from the test's own namespace.
pub(crate) fn play_frames(url: &str, frames: u32, timeout: Duration) -> usize {
    play_frames_with(ffmpeg_play_frames(url, frames), timeout)
}
