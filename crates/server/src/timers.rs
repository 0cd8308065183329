//! The deadlines of one connection, whatever kind of peer it serves: one typed table, so the
//! driver sleeps until a single instant and every rule that acts at a deadline lives in the
//! connection's core, tested on an explicit clock.

use rtmp_proto::timer::{DeadlineTable, TimerKind};
use std::time::Instant;

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
    /// An HTTP request head must be complete by then (the first one within
    /// `handshake_timeout`, the next ones within `[playback] idle_timeout`).
    Request,
    /// Queued output has not moved since then plus `play_stall_timeout` (HTTP viewers; an RTMP
    /// session keeps its own).
    WriteStall,
    /// A viewer that came before the publisher stops waiting for one.
    WaitPublisher,
    /// A blocked HLS request (playlist reload, preload hint) is answered 503 then.
    Blocked,
    /// Refresh the publisher's RTT, which a challenger's wait depends on (lazy).
    RttRefresh,
    /// Take a throughput sample for the admin API (lazy).
    RateSample,
}

impl TimerKind for ConnTimer {
    type Slots = [Option<Instant>; 12];
    const ALL: &'static [Self] = &[
        Self::Session,
        Self::MergeWindow,
        Self::Linger,
        Self::PeerCheck,
        Self::Challenge,
        Self::ChallengeEvidence,
        Self::Request,
        Self::WriteStall,
        Self::WaitPublisher,
        Self::Blocked,
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

impl ConnTimer {
    /// A stable name for the admin API.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::MergeWindow => "merge_window",
            Self::Linger => "linger",
            Self::PeerCheck => "peer_check",
            Self::Challenge => "challenge",
            Self::ChallengeEvidence => "challenge_evidence",
            Self::Request => "request",
            Self::WriteStall => "write_stall",
            Self::WaitPublisher => "wait_publisher",
            Self::Blocked => "blocked",
            Self::RttRefresh => "rtt_refresh",
            Self::RateSample => "rate_sample",
        }
    }
}

/// The table of a connection's deadlines.
pub(crate) type ConnDeadlines = DeadlineTable<ConnTimer>;
