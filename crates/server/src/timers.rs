//! The deadlines of one connection, whatever kind of peer it serves: one typed table, so the
//! driver sleeps until a single instant and every rule that acts at a deadline lives in the
//! connection's core, tested on an explicit clock.

use crate::deadlines::{Deadlines, TimerKind};

/// Every deadline a connection can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ConnTimer {
    /// The protocol session's own earliest deadline (handshake, publish idle, pings, write
    /// stall): mirrored here after every call into the session.
    Session,
    /// A viewer's output waits until then to batch more messages into one write.
    MergeWindow,
    /// A refused peer gets until then to receive its refusal before the socket closes.
    Linger,
    /// Next look at a viewer's TCP_INFO for an unreachable host.
    PeerCheck,
    /// Our publish request waits for the incumbent's challenge to be decided.
    Challenge,
    /// We were challenged: look at the kernel's evidence that our host is gone.
    ChallengeEvidence,
    /// Refresh the publisher's RTT, which a challenger's wait depends on (lazy).
    RttRefresh,
    /// Take a throughput sample for the admin API (lazy).
    RateSample,
}

impl TimerKind for ConnTimer {
    const ALL: &'static [Self] = &[
        Self::Session,
        Self::MergeWindow,
        Self::Linger,
        Self::PeerCheck,
        Self::Challenge,
        Self::ChallengeEvidence,
        Self::RttRefresh,
        Self::RateSample,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// Samples and RTT refreshes ride on wake-ups that happen anyway: an idle connection
    /// must cost nothing.
    fn wakes(self) -> bool {
        !matches!(self, Self::RttRefresh | Self::RateSample)
    }
}

/// The table of a connection's deadlines.
pub(crate) type ConnDeadlines = Deadlines<ConnTimer, 8>;
