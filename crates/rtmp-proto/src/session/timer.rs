//! Deadlines as data: each connection owns a tiny fixed table, and its driver sleeps until the
//! earliest entry. Arming, moving or clearing a deadline is a field write, so a connection costs
//! nothing while idle and nothing sweeps over all connections.

use std::time::Instant;

/// The deadlines one connection can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// From accept until publish or play is under way.
    Handshake,
    /// A publisher must send something before this.
    PublishIdle,
    /// Send an RTMP Ping Request: the peer has been silent for the ping interval.
    PingSend,
    /// The Ping Request went unanswered (no byte since it was sent).
    PingTimeout,
    /// Queued output has not moved for this long.
    WriteStall,
}

impl Timer {
    /// The close reason this deadline gives when it fires, or `None` for one that only makes
    /// the session act (a ping is sent).
    pub fn close_reason(self) -> Option<super::CloseReason> {
        use super::CloseReason;
        match self {
            Self::Handshake => Some(CloseReason::HandshakeTimeout),
            Self::PublishIdle => Some(CloseReason::PublishIdle),
            Self::PingTimeout => Some(CloseReason::PingTimeout),
            Self::WriteStall => Some(CloseReason::PlayStall),
            Self::PingSend => None,
        }
    }

    /// A stable label for logs and the admin API.
    pub fn label(self) -> &'static str {
        match self {
            Self::Handshake => "handshake",
            Self::PublishIdle => "publish_idle",
            Self::PingSend => "ping_send",
            Self::PingTimeout => "ping_timeout",
            Self::WriteStall => "write_stall",
        }
    }

    const ALL: [Timer; 5] = [
        Self::Handshake,
        Self::PublishIdle,
        Self::PingSend,
        Self::PingTimeout,
        Self::WriteStall,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// One optional deadline per [`Timer`].
#[derive(Debug, Clone, Default)]
pub struct TimerTable {
    deadlines: [Option<Instant>; 5],
}

impl TimerTable {
    /// Arms (or moves) `timer` to fire at `at`.
    pub fn set(&mut self, timer: Timer, at: Instant) {
        self.deadlines[timer.index()] = Some(at);
    }

    /// Disarms `timer`.
    pub fn stop(&mut self, timer: Timer) {
        self.deadlines[timer.index()] = None;
    }

    /// When `timer` fires, if armed.
    pub fn get(&self, timer: Timer) -> Option<Instant> {
        self.deadlines[timer.index()]
    }

    /// The earliest armed deadline and its timer.
    pub fn next(&self) -> Option<(Timer, Instant)> {
        Timer::ALL
            .iter()
            .filter_map(|&t| self.get(t).map(|at| (t, at)))
            .min_by_key(|&(_, at)| at)
    }

    /// The earliest timer due at `now`, disarmed as it is returned.
    pub fn pop_expired(&mut self, now: Instant) -> Option<Timer> {
        let (timer, at) = self.next()?;
        (at <= now).then(|| {
            self.stop(timer);
            timer
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn earliest_wins_and_pops_once() {
        let t0 = Instant::now();
        let mut table = TimerTable::default();
        assert_eq!(table.next(), None);
        table.set(Timer::PublishIdle, t0 + Duration::from_secs(30));
        table.set(Timer::Handshake, t0 + Duration::from_secs(10));
        assert_eq!(
            table.next(),
            Some((Timer::Handshake, t0 + Duration::from_secs(10)))
        );
        assert_eq!(table.pop_expired(t0 + Duration::from_secs(5)), None);
        assert_eq!(
            table.pop_expired(t0 + Duration::from_secs(10)),
            Some(Timer::Handshake)
        );
        assert_eq!(table.pop_expired(t0 + Duration::from_secs(10)), None);
        table.stop(Timer::PublishIdle);
        assert_eq!(table.next(), None);
    }
}
