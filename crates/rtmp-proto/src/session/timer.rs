//! The server session's deadlines, in the shared [`DeadlineTable`].

use crate::timer::{DeadlineTable, TimerKind};
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
}

impl TimerKind for Timer {
    type Slots = [Option<Instant>; 5];
    const ALL: &'static [Self] = &[
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
pub type TimerTable = DeadlineTable<Timer>;

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
