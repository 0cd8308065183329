//! Per-player counters and the shared lag histogram, updated without allocating: a player
//! touches a few integers per media message.

use std::time::{Duration, Instant};

/// Lag histogram resolution: 1 ms buckets up to this many ms, then one overflow bucket.
const HIST_MS: usize = 30_000;

/// What one player has received.
#[derive(Debug, Clone)]
pub(crate) struct PlayerStats {
    /// When the publisher of this player's stream sent timestamp 0 (its real-time origin).
    pub(crate) origin: Instant,
    /// Media payload bytes (audio and video message bodies, FLV tag bodies, HLS parts): what
    /// "delivered" counts, the same for every kind of player.
    pub(crate) bytes: u64,
    /// Bytes read from the socket, protocol framing included.
    pub(crate) wire_bytes: u64,
    /// Audio and video messages (RTMP, HTTP-FLV) or parts (HLS).
    pub(crate) frames: u64,
    /// Highest media timestamp received, in ms.
    pub(crate) max_ts: Option<u32>,
    /// Whether lag samples go to the histogram (during the measurement window).
    pub(crate) measuring: bool,
    /// Lag samples in ms, by bucket (shared by all players; `None` in snapshots).
    pub(crate) lag: Option<std::rc::Rc<std::cell::RefCell<Histogram>>>,
    /// Set when the connection ended.
    pub(crate) closed: Option<String>,
}

impl PlayerStats {
    pub(crate) fn new(origin: Instant, lag: std::rc::Rc<std::cell::RefCell<Histogram>>) -> Self {
        Self {
            origin,
            bytes: 0,
            wire_bytes: 0,
            frames: 0,
            max_ts: None,
            measuring: false,
            lag: Some(lag),
            closed: None,
        }
    }

    /// Counts one media message; lag is how long after the publisher sent it (by the file's
    /// clock) it arrived here.
    pub(crate) fn on_media(&mut self, timestamp: u32, len: u32, now: Instant) {
        self.bytes += u64::from(len);
        self.frames += 1;
        self.max_ts = Some(self.max_ts.map_or(timestamp, |m| m.max(timestamp)));
        if self.measuring {
            let sent = self.origin + Duration::from_millis(u64::from(timestamp));
            let lag = now.saturating_duration_since(sent).as_millis() as u64;
            if let Some(h) = &self.lag {
                h.borrow_mut().record(lag);
            }
        }
    }
}

/// Millisecond lag histogram.
#[derive(Debug)]
pub(crate) struct Histogram {
    buckets: Vec<u64>,
    count: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: vec![0; HIST_MS + 1],
            count: 0,
        }
    }
}

impl Histogram {
    pub(crate) fn record(&mut self, ms: u64) {
        let i = usize::try_from(ms).unwrap_or(HIST_MS).min(HIST_MS);
        self.buckets[i] += 1;
        self.count += 1;
    }

    /// The `q`-quantile (0..=1) in ms; `None` without samples. The last bucket means "at
    /// least 30 s".
    pub(crate) fn quantile(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let rank = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (ms, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(ms as u64);
            }
        }
        Some(HIST_MS as u64)
    }

    pub(crate) fn count(&self) -> u64 {
        self.count
    }
}

/// CPU time (user + system) and resident memory of a process, from /proc.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProcSample {
    pub(crate) cpu: Duration,
    pub(crate) rss_kib: u64,
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/status` (`pid` "self" for ourselves).
pub(crate) fn proc_sample(pid: &str) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux ABI the project targets.
    let cpu = Duration::from_millis((utime + stime) * 10);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Some(ProcSample { cpu, rss_kib })
}
