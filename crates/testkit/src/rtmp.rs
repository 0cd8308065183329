//! A Lifeline server process and real RTMP clients (ffmpeg, rtmpdump) for end-to-end tests.

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
        std::fs::create_dir_all(&dir).unwrap();
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

/// Whether `tool` is on the PATH; prints why the test is skipped when it is not.
pub fn require_tool(test: &str, tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("SKIPPED {test}: {tool} is not installed (scripts/test.sh installs it)");
    }
    found
}

/// A running `lifeline serve`, stopped on drop.
#[derive(Debug)]
pub struct Lifeline {
    /// The RTMP address it listens on.
    pub addr: SocketAddr,
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
        std::fs::write(&config_path, config).unwrap();
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
            .arg(listen);
        cmd.env(
            "RUST_LOG",
            std::env::var("LIFELINE_TEST_LOG").unwrap_or_else(|_| "info".into()),
        );
        let child = ChildGuard::spawn_logged(&mut cmd, &log).expect("start lifeline");
        let mut server = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
            child,
            dir,
        };
        let line = server
            .wait_log("RTMP listening", Duration::from_secs(10))
            .unwrap_or_else(|| panic!("server did not start:\n{}", server.log_text()));
        let addr = line.rsplit("addr=").next().unwrap_or_default().trim();
        server.addr = addr
            .parse()
            .unwrap_or_else(|_| panic!("no address in {line:?}"));
        server
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
