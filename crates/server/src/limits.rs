//! Bounds checked at accept — connections overall and per IP, new handshakes per second — and
//! the rate-limited refusal log every `[limits]` refusal goes through.
//!
//! A refusal at accept closes the socket at once (with a reset: nothing of it is kept, not even a
//! TIME_WAIT entry). Each refusal is counted in `lifeline_refusals_total{reason}`; the log gets
//! the first refusal of a reason at once and then at most one summary line a second, so a flood
//! cannot flood the log.

use crate::config::LimitsConfig;
use crate::metrics::Metrics;
use crate::util::lock;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// At most one refusal log line per reason this often.
const LOG_EVERY: Duration = Duration::from_secs(1);

/// A bound that refused a peer. Most are `[limits]` keys; a few are other settings or fixed
/// bounds of the protocol, named for what they are rather than passed off as `[limits]` keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LimitKey {
    /// `limits.max_connections` connections are open.
    MaxConnections,
    /// `limits.max_connections_per_ip` connections from this address are open.
    MaxConnectionsPerIp,
    /// The `limits.max_handshakes_per_second` bucket is empty.
    MaxHandshakesPerSecond,
    /// `limits.max_streams` streams exist.
    MaxStreams,
    /// `limits.max_players_per_stream` players watch the stream.
    MaxPlayersPerStream,
    /// A peer used more than `limits.max_chunk_streams` chunk streams.
    MaxChunkStreams,
    /// A peer announced a message over `rtmp.max_message_size`.
    MaxMessageSize,
    /// A peer made the chunk reader hold more than its fixed bound of partial messages.
    MaxBuffered,
    /// A peer asked for more message streams than one connection may hold (a fixed bound).
    MaxStreamsPerConnection,
}

impl LimitKey {
    /// A stable label: the `reason` of `lifeline_refusals_total`.
    pub fn label(self) -> &'static str {
        match self {
            Self::MaxConnections => "max_connections",
            Self::MaxConnectionsPerIp => "max_connections_per_ip",
            Self::MaxHandshakesPerSecond => "max_handshakes_per_second",
            Self::MaxStreams => "max_streams",
            Self::MaxPlayersPerStream => "max_players_per_stream",
            Self::MaxChunkStreams => "max_chunk_streams",
            Self::MaxMessageSize => "max_message_size",
            Self::MaxBuffered => "max_buffered",
            Self::MaxStreamsPerConnection => "max_streams_per_connection",
        }
    }

    /// Where the bound is set, for the log: the configuration key, or that it is fixed.
    pub fn setting(self) -> &'static str {
        match self {
            Self::MaxConnections => "limits.max_connections",
            Self::MaxConnectionsPerIp => "limits.max_connections_per_ip",
            Self::MaxHandshakesPerSecond => "limits.max_handshakes_per_second",
            Self::MaxStreams => "limits.max_streams",
            Self::MaxPlayersPerStream => "limits.max_players_per_stream",
            Self::MaxChunkStreams => "limits.max_chunk_streams",
            Self::MaxMessageSize => "rtmp.max_message_size",
            Self::MaxBuffered => "the chunk reader's fixed buffer bound",
            Self::MaxStreamsPerConnection => "the fixed bound of message streams per connection",
        }
    }
}

impl std::fmt::Display for LimitKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.setting())
    }
}

/// What an admitted connection holds until it ends: its connection slot and its per-IP count.
#[derive(Debug)]
pub struct Admission {
    _slot: OwnedSemaphorePermit,
    _ip: IpGuard,
}

/// One connection counted against its IP address; dropping it uncounts it (and forgets the
/// address when it was the last), so the map holds only addresses with open connections.
#[derive(Debug)]
struct IpGuard {
    map: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl Drop for IpGuard {
    fn drop(&mut self) {
        let mut map = lock(&self.map);
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// A token bucket: `rate` tokens a second, at most `burst` saved up.
#[derive(Debug)]
struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    fn new(rate: u32, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate: f64::from(rate.max(1)),
            burst,
            tokens: burst,
            at: now,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The accept-time limits of one server.
#[derive(Debug)]
pub struct AcceptLimits {
    slots: Arc<Semaphore>,
    per_ip_max: usize,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
    bucket: Mutex<TokenBucket>,
    log: Arc<RefusalLog>,
}

impl AcceptLimits {
    /// Limits from `[limits]`, refusals logged and counted through `log`.
    pub fn new(config: &LimitsConfig, log: Arc<RefusalLog>) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(config.max_connections)),
            per_ip_max: config.max_connections_per_ip,
            per_ip: Arc::default(),
            bucket: Mutex::new(TokenBucket::new(
                config.max_handshakes_per_second,
                config.handshake_burst,
                Instant::now(),
            )),
            log,
        }
    }

    /// Admits a new connection from `peer`, or says (and logs and counts) why not. Cheap
    /// checks first; a refused connection takes no handshake token.
    pub fn admit(&self, peer: SocketAddr, now: Instant) -> Result<Admission, LimitKey> {
        let result = self.check(peer.ip(), now);
        if let Err(refusal) = result {
            self.log.refused(refusal, &peer.to_string(), now);
        }
        result
    }

    fn check(&self, ip: IpAddr, now: Instant) -> Result<Admission, LimitKey> {
        let slot = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| LimitKey::MaxConnections)?;
        let mut map = lock(&self.per_ip);
        let count = map.get(&ip).copied().unwrap_or(0);
        if count >= self.per_ip_max {
            return Err(LimitKey::MaxConnectionsPerIp);
        }
        if !lock(&self.bucket).take(now) {
            return Err(LimitKey::MaxHandshakesPerSecond);
        }
        map.insert(ip, count + 1);
        drop(map);
        Ok(Admission {
            _slot: slot,
            _ip: IpGuard {
                map: self.per_ip.clone(),
                ip,
            },
        })
    }

    /// Addresses with open connections (for tests and observability).
    pub fn tracked_ips(&self) -> usize {
        lock(&self.per_ip).len()
    }
}

#[derive(Debug, Default)]
struct ReasonLog {
    last_line: Option<Instant>,
    /// Refusals since the last line.
    unlogged: u64,
    last_who: String,
}

/// Counts every refusal in the metrics and logs them without flooding: the first refusal of a
/// reason at once, then at most one line per reason a second, with how many there were.
#[derive(Debug)]
pub struct RefusalLog {
    metrics: Arc<Metrics>,
    reasons: Mutex<HashMap<LimitKey, ReasonLog>>,
    /// Signalled when a refusal is left for [`Self::flush`]: the flusher sleeps on it, so a
    /// server that refuses nothing has no timer firing.
    pending: tokio::sync::Notify,
}

impl RefusalLog {
    /// A log counting in `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            reasons: Mutex::default(),
            pending: tokio::sync::Notify::new(),
        }
    }

    /// Records a refusal by the bound `reason` of `who` (a peer, a stream).
    pub fn refused(&self, reason: LimitKey, who: &str, now: Instant) {
        self.metrics.record_refusal(reason.label());
        let mut reasons = lock(&self.reasons);
        let r = reasons.entry(reason).or_default();
        r.unlogged += 1;
        if r.last_line.is_some_and(|at| now < at + LOG_EVERY) {
            who.clone_into(&mut r.last_who);
            drop(reasons);
            self.pending.notify_one();
            return;
        }
        if r.last_line.is_none() || r.unlogged == 1 {
            tracing::info!(
                limit = reason.label(),
                peer = who,
                "refused: {reason} reached"
            );
        } else {
            tracing::info!(
                limit = reason.label(),
                count = r.unlogged,
                last = who,
                "refused {} times since the last line: {reason} reached",
                r.unlogged
            );
        }
        r.last_line = Some(now);
        r.unlogged = 0;
    }

    /// When [`Self::flush`] has a line to write: the earliest second after a reason's last line
    /// with refusals left untold, or `None`.
    pub fn next_flush(&self) -> Option<Instant> {
        lock(&self.reasons)
            .values()
            .filter(|r| r.unlogged > 0)
            .map(|r| r.last_line.map_or_else(Instant::now, |at| at + LOG_EVERY))
            .min()
    }

    /// Flushes the untold refusals at [`Self::next_flush`], sleeping while there are none;
    /// never returns.
    pub async fn run_flusher(&self) {
        loop {
            match self.next_flush() {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => self.pending.notified().await,
            }
            self.flush(Instant::now());
        }
    }

    /// Logs the summary of refusals not logged yet, for reasons whose last line is older than a
    /// second (so the tail of a flood is not left untold).
    pub fn flush(&self, now: Instant) {
        let mut reasons = lock(&self.reasons);
        for (reason, r) in reasons.iter_mut() {
            if r.unlogged > 0 && r.last_line.is_none_or(|at| now >= at + LOG_EVERY) {
                tracing::info!(
                    limit = reason.label(),
                    count = r.unlogged,
                    last = %r.last_who,
                    "refused {} times since the last line: {reason} reached",
                    r.unlogged
                );
                r.last_line = Some(now);
                r.unlogged = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(conns: usize, per_ip: usize, rate: u32, burst: u32) -> AcceptLimits {
        let config = LimitsConfig {
            max_connections: conns,
            max_connections_per_ip: per_ip,
            max_handshakes_per_second: rate,
            handshake_burst: burst,
            ..LimitsConfig::default()
        };
        AcceptLimits::new(&config, Arc::new(RefusalLog::new(Arc::default())))
    }

    fn peer(last: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, last], port))
    }

    #[test]
    fn per_ip_count_is_released_by_the_guard() {
        let l = limits(100, 2, 1000, 1000);
        let now = Instant::now();
        let a = l.admit(peer(1, 1), now).unwrap();
        let _b = l.admit(peer(1, 2), now).unwrap();
        assert_eq!(
            l.admit(peer(1, 3), now).unwrap_err(),
            LimitKey::MaxConnectionsPerIp
        );
        let _c = l.admit(peer(2, 1), now).unwrap();
        drop(a);
        let d = l.admit(peer(1, 4), now).unwrap();
        assert_eq!(l.tracked_ips(), 2);
        drop((d, _b, _c));
        assert_eq!(l.tracked_ips(), 0, "no address left behind");
    }

    #[test]
    fn connection_cap_and_bucket() {
        let l = limits(3, 10, 10, 2);
        let now = Instant::now();
        let a = l.admit(peer(1, 1), now).unwrap();
        let _b = l.admit(peer(2, 1), now).unwrap();
        assert_eq!(
            l.admit(peer(3, 1), now).unwrap_err(),
            LimitKey::MaxHandshakesPerSecond
        );
        // A tenth of a second later one token is back.
        let later = now + Duration::from_millis(100);
        let _c = l.admit(peer(3, 1), later).unwrap();
        let much_later = now + Duration::from_secs(10);
        assert_eq!(
            l.admit(peer(4, 1), much_later).unwrap_err(),
            LimitKey::MaxConnections
        );
        drop(a);
        assert!(l.admit(peer(4, 1), much_later).is_ok());
    }

    #[test]
    fn refusals_are_counted_and_the_log_is_rate_limited() {
        let metrics = Arc::new(Metrics::new());
        let log = RefusalLog::new(metrics.clone());
        let now = Instant::now();
        for i in 0..1000 {
            log.refused(LimitKey::MaxStreams, "x", now + Duration::from_millis(i));
        }
        assert_eq!(metrics.refusals("max_streams"), 1000);
        let r = lock(&log.reasons);
        // Logged at 0 ms and at 1000 ms would be next; 999 are waiting for the summary.
        assert_eq!(r[&LimitKey::MaxStreams].unlogged, 999);
    }

    #[test]
    fn the_flusher_is_due_only_while_refusals_wait_untold() {
        let log = RefusalLog::new(Arc::new(Metrics::new()));
        let now = Instant::now();
        assert_eq!(log.next_flush(), None, "nothing refused: no timer");
        log.refused(LimitKey::MaxStreams, "x", now);
        assert_eq!(
            log.next_flush(),
            None,
            "the first refusal is logged at once"
        );
        log.refused(LimitKey::MaxStreams, "y", now + Duration::from_millis(10));
        assert_eq!(log.next_flush(), Some(now + LOG_EVERY));
        log.flush(now + LOG_EVERY);
        assert_eq!(log.next_flush(), None, "told: no timer again");
    }
}
