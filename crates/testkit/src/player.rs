//! A watched ffmpeg player: decodes a live stream to grey 320x240 frames on stdout, and a thread
//! records when each frame arrived and whether it was plain white (the "newcomer" picture of
//! [`crate::rtmp::ffmpeg_publish_src`] with [`WHITE_SRC`]). Gaps, counts and whose frames
//! arrived are then simple questions.

use crate::NetNs;
use crate::process::ChildGuard;
use std::io::{self, Read};
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bytes of one decoded 320x240 grey frame.
pub const FRAME_BYTES: usize = 320 * 240;
/// A lavfi source whose frames a [`Player`] recognises as white.
pub const WHITE_SRC: &str = "color=c=white:size=320x240:rate=25";

/// One decoded frame: when it arrived and whether it was white.
#[derive(Debug, Clone, Copy)]
pub struct FrameSeen {
    /// Arrival time on the test's side.
    pub at: Instant,
    /// All (or nearly all) pixels white: a frame of [`WHITE_SRC`].
    pub white: bool,
}

/// A playing ffmpeg whose frames are timed; killed (by pid) on drop.
#[derive(Debug)]
pub struct Player {
    child: ChildGuard,
    frames: Arc<Mutex<Vec<FrameSeen>>>,
    reader: Option<JoinHandle<()>>,
}

fn lock(m: &Mutex<Vec<FrameSeen>>) -> MutexGuard<'_, Vec<FrameSeen>> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Player {
    /// Plays `url` from inside `ns`.
    pub fn start(ns: &NetNs, url: &str) -> io::Result<Self> {
        Self::spawn(ns.command("ffmpeg"), url)
    }

    /// Plays `url` from the test's own network namespace (e.g. over loopback).
    pub fn start_local(url: &str) -> io::Result<Self> {
        Self::spawn(std::process::Command::new("ffmpeg"), url)
    }

    fn spawn(mut cmd: std::process::Command, url: &str) -> io::Result<Self> {
        cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error"])
            .args(["-fflags", "nobuffer", "-i", url])
            .args(["-an", "-f", "rawvideo", "-pix_fmt", "gray", "-"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = ChildGuard::spawn(&mut cmd)?;
        let mut stdout = child
            .take_stdout()
            .ok_or_else(|| io::Error::other("stdout not piped"))?;
        let frames = Arc::new(Mutex::new(Vec::new()));
        let sink = frames.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; FRAME_BYTES];
            while stdout.read_exact(&mut buf).is_ok() {
                let bright = buf.iter().filter(|&&b| b > 200).count();
                lock(&sink).push(FrameSeen {
                    at: Instant::now(),
                    white: bright * 100 > FRAME_BYTES * 95,
                });
            }
        });
        Ok(Self {
            child,
            frames,
            reader: Some(reader),
        })
    }

    /// The process, e.g. to freeze it.
    pub fn process(&mut self) -> &mut ChildGuard {
        &mut self.child
    }

    /// Every frame so far.
    pub fn frames(&self) -> Vec<FrameSeen> {
        lock(&self.frames).clone()
    }

    /// Frames so far.
    pub fn count(&self) -> usize {
        lock(&self.frames).len()
    }

    /// Waits until `n` frames have arrived in total.
    pub fn wait_frames(&self, n: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, |f| f.len() >= n)
    }

    /// Waits until a frame matching `pred` arrives after `after`; returns its arrival time.
    pub fn wait_frame_after(
        &self,
        after: Instant,
        timeout: Duration,
        pred: impl Fn(&FrameSeen) -> bool,
    ) -> Option<Instant> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(f) = lock(&self.frames).iter().find(|f| f.at > after && pred(f)) {
                return Some(f.at);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_until(&self, timeout: Duration, done: impl Fn(&[FrameSeen]) -> bool) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if done(&lock(&self.frames)) {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Frames that arrived after `after` and match `pred`.
    pub fn count_after(&self, after: Instant, pred: impl Fn(&FrameSeen) -> bool) -> usize {
        lock(&self.frames)
            .iter()
            .filter(|f| f.at > after && pred(f))
            .count()
    }

    /// The longest time without a frame within `[from, to]` (edges count as gap ends).
    pub fn max_gap(&self, from: Instant, to: Instant) -> Duration {
        let frames = lock(&self.frames);
        let mut last = from;
        let mut gap = Duration::ZERO;
        for f in frames.iter().filter(|f| f.at > from && f.at <= to) {
            gap = gap.max(f.at - last);
            last = f.at;
        }
        gap.max(to.saturating_duration_since(last))
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        // SIGKILL by pid (std refuses once the child is reaped), also ends a frozen child.
        let _ = self.child.child_mut().kill();
        let _ = self.child.wait_timeout(Duration::from_secs(5));
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// The resident set size of process `pid`, in KiB (`VmRSS` in `/proc/<pid>/status`).
pub fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time (user + system) a process has used so far, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // USER_HZ is 100 on every Linux ABI the project targets.
    Some(Duration::from_millis((utime + stime) * 10))
}
