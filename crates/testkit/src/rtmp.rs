//! A Lifeline server process and real RTMP clients (ffmpeg, rtmpdump) for end-to-end tests.
//!
//! Test-only code: its `unwrap`/`expect`/`panic!` are the failure of the test that calls them
//! (a temp dir not made, the server not started); no peer's byte reaches any of them.

use crate::process::ChildGuard;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A fresh directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `<tmp>/<prefix>-<pid>-<n>`.
    pub fn new(prefix: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("{prefix}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap(); // ok: test helper, no peer byte
        Self(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub use crate::skip::require_tool;

/// The playback port beside an RTMP `listen` address: the same host, an ephemeral port.
fn playback_listen(listen: &str) -> String {
    let ip = listen
        .parse::<SocketAddr>()
        .map_or(std::net::IpAddr::from([127, 0, 0, 1]), |a| a.ip());
    SocketAddr::new(ip, 0).to_string()
}

/// A running `lifeline serve`, stopped on drop.
#[derive(Debug)]
pub struct Lifeline {
    /// The RTMP address it listens on.
    pub addr: SocketAddr,
    /// The admin HTTP address (API, metrics, dashboard), if `[http]` is enabled.
    pub http_addr: Option<SocketAddr>,
    /// The playback address (HTTP-FLV, HLS, MP4), if `[playback]` is enabled.
    pub playback_addr: Option<SocketAddr>,
    /// The RTMPS address, if `[rtmps] listen` is set.
    pub rtmps_addr: Option<SocketAddr>,
    log: PathBuf,
    child: ChildGuard,
    dir: TempDir,
}

impl Lifeline {
    /// Starts `bin serve` with `config` (TOML) on 127.0.0.1 and an ephemeral port.
    pub fn start(bin: &Path, config: &str) -> Self {
        Self::start_in(bin, config, &[], "127.0.0.1:0")
    }

    /// Starts `bin serve` behind `prefix` (e.g. `ip netns exec NS`), listening on `listen`.
    pub fn start_in(bin: &Path, config: &str, prefix: &[&str], listen: &str) -> Self {
        let dir = TempDir::new("lifeline-test");
        let config_path = dir.path().join("lifeline.toml");
        std::fs::write(&config_path, config).unwrap(); // ok: test helper, no peer byte
        let log = dir.path().join("server.log");
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.arg("serve")
            .arg("--config")
            .arg(&config_path)
            .arg("--listen")
            .arg(listen)
            .arg("--http")
            .arg("127.0.0.1:0")
            .arg("--playback")
            .arg(playback_listen(listen));
        cmd.env(
            "RUST_LOG",
            std::env::var("LIFELINE_TEST_LOG").unwrap_or_else(|_| "info".into()),
        );
        let child = ChildGuard::spawn_logged(&mut cmd, &log).expect("start lifeline"); // ok: test helper, no peer byte
        let mut server = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            http_addr: None,
            playback_addr: None,
            rtmps_addr: None,
            log,
            child,
            dir,
        };
        let line = server
            .wait_log("RTMP listening", Duration::from_secs(10))
            .unwrap_or_else(|| panic!("server did not start:\n{}", server.log_text())); // ok: test helper, no peer byte
        let addr = line.rsplit("addr=").next().unwrap_or_default().trim();
        server.addr = addr
            .parse()
            .unwrap_or_else(|_| panic!("no address in {line:?}")); // ok: test helper, no peer byte
        // The playback and HTTP listeners are bound right after the RTMP one, before
        // anything is served.
        server.playback_addr = server
            .wait_log("playback listening", Duration::from_millis(500))
            .and_then(|l| l.rsplit("addr=").next()?.trim().parse().ok());
        if config.contains("[rtmps]") {
            server.rtmps_addr = server
                .wait_log("RTMPS listening", Duration::from_millis(500))
                .and_then(|l| l.rsplit("addr=").next()?.trim().parse().ok());
        }
        server.http_addr = server
            .wait_log("HTTP listening", Duration::from_millis(500))
            .and_then(|l| l.rsplit("addr=").next()?.trim().parse().ok());
        server
    }

    /// `http://PLAYBACK_ADDR/PATH` (panics when playback is off).
    pub fn playback_url(&self, path: &str) -> String {
        let addr = self.playback_addr.expect("[playback] is enabled"); // ok: test helper, no peer byte
        format!("http://{addr}/{path}")
    }

    /// `rtmps://RTMPS_ADDR/PATH` (panics when `[rtmps]` is off).
    pub fn rtmps_url(&self, path: &str) -> String {
        let addr = self.rtmps_addr.expect("[rtmps] listen is set"); // ok: test helper, no peer byte
        format!("rtmps://{addr}/{path}")
    }

    /// `rtmp://ADDR/PATH`.
    pub fn url(&self, path: &str) -> String {
        format!("rtmp://{}/{path}", self.addr)
    }

    /// A scratch directory that lives as long as the server.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the server logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for a log line containing `needle` and returns it.
    pub fn wait_log(&mut self, needle: &str, timeout: Duration) -> Option<String> {
        self.wait_log_after(0, needle, timeout)
    }

    /// Like [`Self::wait_log`], ignoring the first `skip` lines.
    pub fn wait_log_after(
        &mut self,
        skip: usize,
        needle: &str,
        timeout: Duration,
    ) -> Option<String> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(line) = self
                .log_text()
                .lines()
                .skip(skip)
                .find(|l| l.contains(needle))
            {
                return Some(line.to_owned());
            }
            if Instant::now() >= end || !self.child.is_running() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for a log line after the first `skip` lines for which `pred` holds.
    pub fn wait_line(
        &mut self,
        skip: usize,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(line) = self.log_text().lines().skip(skip).find(|l| pred(l)) {
                return Some(line.to_owned());
            }
            if Instant::now() >= end || !self.child.is_running() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the `close` line of a connection from `peer_ip` (after `skip` lines).
    pub fn wait_close(&mut self, skip: usize, peer_ip: &str, timeout: Duration) -> Option<String> {
        let needle = format!("peer={peer_ip}:");
        self.wait_line(skip, timeout, |l| {
            l.contains(" close conn=") && l.contains(&needle)
        })
    }

    /// `close` lines after the first `skip` lines.
    pub fn close_lines(&self, skip: usize) -> Vec<String> {
        self.log_text()
            .lines()
            .skip(skip)
            .filter(|l| l.contains(" close conn="))
            .map(str::to_owned)
            .collect()
    }

    /// Number of log lines so far (a mark for [`Self::wait_log_after`]).
    pub fn log_lines(&self) -> usize {
        self.log_text().lines().count()
    }

    /// The server's pid.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// SIGTERM, then the exit status (None if it had to be killed).
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.child.terminate(Duration::from_secs(10))
    }
}

/// ffmpeg publishing generated H.264 + AAC (testsrc + sine) in real time for `seconds`.
pub fn ffmpeg_publish(url: &str, seconds: u32) -> Command {
    ffmpeg_publish_src(url, seconds, "testsrc=size=320x240:rate=25")
}

/// [`ffmpeg_publish`] with another lavfi video source (320x240@25), e.g.
/// [`crate::player::WHITE_SRC`] so that players can tell this publisher's frames apart.
pub fn ffmpeg_publish_src(url: &str, seconds: u32, video_src: &str) -> Command {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", video_src])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-g",
            "25",
        ])
        .args(["-c:a", "aac", "-b:a", "64k"])
        .args(["-t", &seconds.to_string(), "-f", "flv", url]);
    cmd
}

/// ffmpeg playing `url` and writing `frames` decoded 320x240 grey frames to stdout (their byte
/// count proves both the number of frames and the resolution).
pub fn ffmpeg_play_frames(url: &str, frames: u32) -> Command {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error", "-i", url])
        .args([
            "-frames:v",
            &frames.to_string(),
            "-an",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
            "-",
        ]);
    cmd
}

/// The value of `key=` in a log line (quotes removed; a trailing `:` of a reason with detail,
/// like `reason=refused: …`, too).
pub fn log_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!(" {key}=");
    let start = line.find(&pat)? + pat.len();
    let rest = &line[start..];
    let value = rest.split_whitespace().next()?;
    Some(value.trim_matches('"').trim_end_matches(':'))
}

/// The time of day of a log line's leading RFC 3339 timestamp
/// (`2026-11-25T15:33:48.695877Z …`), in seconds since midnight UTC: differences between two
/// lines are the server's own timing, free of the test's polling delay.
pub fn log_time(line: &str) -> Option<f64> {
    let time = line.split_whitespace().next()?.split('T').nth(1)?;
    let time = time.trim_end_matches('Z');
    let mut parts = time.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}
