//! Who gets a stream name that already has a live publisher: pure policy, no locks, no I/O.
//!
//! The registry gathers the facts under its lock (how long the incumbent has been silent, its
//! RTT, whether a challenge is already under way), asks [`decide`], and carries the decision
//! out. A challenge is settled later by [`settle`], from what happened meanwhile.

use crate::config::{OnDuplicate, PublishConfig};
use std::time::Duration;

/// What the registry knows of the incumbent publisher when a newcomer asks for its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incumbent {
    /// Since the incumbent last sent a byte.
    pub silent: Duration,
    /// Its smoothed RTT as last measured.
    pub srtt: Duration,
    /// Another newcomer's challenge of it is still running.
    pub challenged: bool,
    /// It is a pull relay (a copy of another server's stream): a local publisher always takes
    /// the name from it, live or not.
    pub pulled: bool,
}

/// Why a newcomer is refused a live name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Busy {
    /// A newcomer without the name's key (or the hook's consent) never displaces anyone.
    #[error("the newcomer is not authorised for this name")]
    NotAuthorised,
    /// `[publish] on_duplicate = "reject"`.
    #[error("on_duplicate is reject")]
    Reject,
    /// Only one challenge per name at a time.
    #[error("another newcomer is already challenging it")]
    ChallengeRunning,
    /// The challenged incumbent showed a sign of life.
    #[error("the publisher answered the challenge")]
    Answered,
}

/// What a newcomer for a live name gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Refused: the incumbent keeps the name.
    Refuse(Busy),
    /// The incumbent is closed (`taken_over`) and the newcomer publishes at once.
    TakeOver,
    /// The incumbent is pinged; the newcomer waits `wait` for the verdict.
    Challenge {
        /// How long the incumbent has to show any sign of life.
        wait: Duration,
    },
}

/// The policy of `[publish]` applied to a newcomer for a name held by `incumbent`.
pub fn decide(incumbent: &Incumbent, policy: &PublishConfig, authorised: bool) -> Decision {
    if !authorised {
        return Decision::Refuse(Busy::NotAuthorised);
    }
    if incumbent.pulled {
        return Decision::TakeOver;
    }
    match policy.on_duplicate {
        OnDuplicate::Reject => Decision::Refuse(Busy::Reject),
        OnDuplicate::Takeover => Decision::TakeOver,
        OnDuplicate::TakeoverStale if incumbent.silent >= policy.stale_after => Decision::TakeOver,
        OnDuplicate::TakeoverStale if incumbent.challenged => {
            Decision::Refuse(Busy::ChallengeRunning)
        }
        // Never less than 3 RTTs: a live incumbent on a long path must have time to answer.
        OnDuplicate::TakeoverStale => Decision::Challenge {
            wait: policy.challenge_timeout.max(incumbent.srtt * 3),
        },
    }
}

/// What happened to a challenge by the time it is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChallengeOutcome {
    /// The challenge being settled is still the stream's current one (not abandoned or
    /// replaced by a newer publisher's era).
    pub current: bool,
    /// The incumbent sent a byte after the challenge began.
    pub answered: bool,
    /// The incumbent's own connection found kernel evidence that its host is gone.
    pub host_gone: bool,
}

/// Settles a challenge: the newcomer wins when the challenge is still current and the
/// incumbent stayed silent, or when its host is known to be gone (a late byte from a buffer
/// does not save a host that no longer ACKs).
pub fn settle(outcome: ChallengeOutcome) -> Result<(), Busy> {
    if outcome.current && (!outcome.answered || outcome.host_gone) {
        Ok(())
    } else {
        Err(Busy::Answered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(on_duplicate: OnDuplicate) -> PublishConfig {
        PublishConfig {
            on_duplicate,
            ..PublishConfig::default()
        }
    }

    fn incumbent(silent_ms: u64) -> Incumbent {
        Incumbent {
            silent: Duration::from_millis(silent_ms),
            srtt: Duration::from_millis(1),
            challenged: false,
            pulled: false,
        }
    }

    #[test]
    fn unauthorised_newcomers_never_displace() {
        for p in [
            OnDuplicate::Reject,
            OnDuplicate::Takeover,
            OnDuplicate::TakeoverStale,
        ] {
            assert_eq!(
                decide(&incumbent(60_000), &policy(p), false),
                Decision::Refuse(Busy::NotAuthorised)
            );
        }
    }

    #[test]
    fn policies() {
        let live = incumbent(10);
        assert_eq!(
            decide(&live, &policy(OnDuplicate::Reject), true),
            Decision::Refuse(Busy::Reject)
        );
        assert_eq!(
            decide(&live, &policy(OnDuplicate::Takeover), true),
            Decision::TakeOver
        );
        let stale = policy(OnDuplicate::TakeoverStale);
        assert_eq!(
            decide(&incumbent(5_000), &stale, true),
            Decision::TakeOver,
            "silent for stale_after: taken over without a challenge"
        );
        assert_eq!(
            decide(&live, &stale, true),
            Decision::Challenge {
                wait: Duration::from_secs(1)
            }
        );
        let far = Incumbent {
            srtt: Duration::from_millis(700),
            ..live
        };
        assert_eq!(
            decide(&far, &stale, true),
            Decision::Challenge {
                wait: Duration::from_millis(2100)
            },
            "at least 3 RTTs"
        );
        let racing = Incumbent {
            challenged: true,
            ..live
        };
        assert_eq!(
            decide(&racing, &stale, true),
            Decision::Refuse(Busy::ChallengeRunning)
        );
    }

    #[test]
    fn a_local_publisher_always_wins_over_a_pull() {
        let pull = Incumbent {
            pulled: true,
            ..incumbent(0)
        };
        for p in [
            OnDuplicate::Reject,
            OnDuplicate::Takeover,
            OnDuplicate::TakeoverStale,
        ] {
            assert_eq!(decide(&pull, &policy(p), true), Decision::TakeOver, "{p:?}");
            assert_eq!(
                decide(&pull, &policy(p), false),
                Decision::Refuse(Busy::NotAuthorised),
                "but only with the name's key (and never for another pull)"
            );
        }
    }

    #[test]
    fn challenge_won_and_lost() {
        let won = ChallengeOutcome {
            current: true,
            answered: false,
            host_gone: false,
        };
        assert_eq!(settle(won), Ok(()), "silence loses the name");
        let answered = ChallengeOutcome {
            answered: true,
            ..won
        };
        assert_eq!(settle(answered), Err(Busy::Answered), "any byte keeps it");
        let gone = ChallengeOutcome {
            host_gone: true,
            ..answered
        };
        assert_eq!(settle(gone), Ok(()), "kernel evidence beats a stale byte");
        let abandoned = ChallengeOutcome {
            current: false,
            ..won
        };
        assert_eq!(settle(abandoned), Err(Busy::Answered));
    }
}
