//! What a relay decides, as pure functions on an explicit clock: whether it is still wanted
//! (a push while its local publisher lives; a pull while it has players and no local
//! publisher, until `idle_after`), its states (connecting → live → backoff), and the jittered
//! exponential back-off between attempts. No locks, no sockets, no tasks: the supervisor
//! gathers the facts and carries the decisions out.

use rtmp_proto::session::CloseReason;
use std::time::{Duration, Instant};

/// A back-off step is shortened by up to this share, at random: relays that failed together
/// (an upstream restart) do not come back in lockstep.
const JITTER_SHARE: f64 = 0.2;

/// Where a relay stands, as the admin API and `lifeline_relays{state}` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RelayState {
    /// Resolving, connecting, handshaking, or waiting for publish/play to start (and, for a
    /// pull, for the origin's first media).
    Connecting,
    /// Media flows.
    Live,
    /// Waiting before the next attempt.
    Backoff,
}

impl RelayState {
    /// Every state, for metrics that must show zero counts too.
    pub const ALL: [RelayState; 3] = [Self::Connecting, Self::Live, Self::Backoff];

    /// A stable label for JSON and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Live => "live",
            Self::Backoff => "backoff",
        }
    }
}

/// A source of randomness for the jitter, injectable so tests know every delay.
pub(crate) trait Jitter {
    /// A number in `[0, 1)`.
    fn fraction(&mut self) -> f64;
}

/// The process's random generator.
#[derive(Debug, Default)]
pub(crate) struct RandomJitter;

impl Jitter for RandomJitter {
    fn fraction(&mut self) -> f64 {
        rand::random::<f64>()
    }
}

/// Exponential back-off: `min`, `2 min`, `4 min` … capped at `max`, each step shortened by up
/// to [`JITTER_SHARE`] at random (never below `min`'s 80 %: no wait is ever near zero).
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    /// Failed attempts since the last reset.
    failures: u32,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            failures: 0,
        }
    }

    /// The current step before jitter.
    pub(crate) fn step(&self) -> Duration {
        let factor = 1u32.checked_shl(self.failures.min(31)).unwrap_or(u32::MAX);
        self.min.saturating_mul(factor).min(self.max)
    }

    /// The wait before the next attempt; the step doubles for the one after.
    pub(crate) fn next(&mut self, jitter: &mut impl Jitter) -> Duration {
        let step = self.step();
        self.failures = self.failures.saturating_add(1);
        let cut = jitter.fraction().clamp(0.0, 1.0) * JITTER_SHARE;
        step.mul_f64(1.0 - cut)
    }

    /// Back to `min`.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
}

/// A relay's life: connecting → live → backoff → connecting …, with its attempt count and the
/// back-off, which restarts from `retry_min` only after a connection that stayed live for
/// `retry_max` (an upstream that accepts and drops at once still backs off to `retry_max`).
#[derive(Debug, Clone)]
pub(crate) struct Lifecycle {
    state: RelayState,
    /// When the current state began.
    since: Instant,
    backoff: Backoff,
    live_since: Option<Instant>,
    /// Connection attempts so far.
    attempts: u64,
    /// While in back-off: when the next attempt starts.
    retry_at: Option<Instant>,
}

impl Lifecycle {
    pub(crate) fn new(now: Instant, retry_min: Duration, retry_max: Duration) -> Self {
        Self {
            state: RelayState::Connecting,
            since: now,
            backoff: Backoff::new(retry_min, retry_max),
            live_since: None,
            attempts: 0,
            retry_at: None,
        }
    }

    pub(crate) fn state(&self) -> RelayState {
        self.state
    }

    pub(crate) fn since(&self) -> Instant {
        self.since
    }

    pub(crate) fn attempts(&self) -> u64 {
        self.attempts
    }

    /// Attempts after the first.
    pub(crate) fn reconnects(&self) -> u64 {
        self.attempts.saturating_sub(1)
    }

    pub(crate) fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// The back-off step the next failure will wait (before jitter).
    pub(crate) fn step(&self) -> Duration {
        self.backoff.step()
    }

    /// An attempt starts.
    pub(crate) fn connecting(&mut self, now: Instant) {
        self.enter(RelayState::Connecting, now);
        self.attempts += 1;
        self.live_since = None;
        self.retry_at = None;
    }

    /// Media flows.
    pub(crate) fn live(&mut self, now: Instant) {
        if self.state == RelayState::Connecting {
            self.enter(RelayState::Live, now);
            self.live_since = Some(now);
        }
    }

    /// The attempt ended (whatever the reason): returns how long to wait before the next.
    pub(crate) fn ended(&mut self, now: Instant, jitter: &mut impl Jitter) -> Duration {
        let stable = self
            .live_since
            .is_some_and(|t| now.saturating_duration_since(t) >= self.backoff.max);
        if stable {
            self.backoff.reset();
        }
        let wait = self.backoff.next(jitter);
        self.enter(RelayState::Backoff, now);
        self.live_since = None;
        self.retry_at = Some(now + wait);
        wait
    }

    fn enter(&mut self, state: RelayState, now: Instant) {
        self.state = state;
        self.since = now;
    }
}

/// Who holds the local stream's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Holder {
    /// Nobody.
    Nobody,
    /// A local publisher (an encoder, or any connection that is not a pull).
    Local,
    /// A pull relay.
    Pull,
}

/// What a relay knows of its local stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Local {
    pub(crate) holder: Holder,
    /// Viewers attached (players, HTTP viewers, HLS sessions, pushes).
    pub(crate) players: usize,
}

/// Whether a relay should (go on) run(ning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Want {
    /// Run; for a pull with no player, until the deadline given.
    Run(Option<Instant>),
    /// Stop: the current connection (if any) ends with this reason.
    Stop(CloseReason),
}

/// A push runs while a local publisher (not a pull: pulled streams are never pushed) is live.
pub(crate) fn push_wants(local: Local) -> Want {
    match local.holder {
        Holder::Local => Want::Run(None),
        Holder::Nobody | Holder::Pull => Want::Stop(CloseReason::Completed),
    }
}

/// A pull yields to a local publisher at once, and stops `idle_after` after its last player
/// left (`idle` remembers since when there has been none).
pub(crate) fn pull_wants(
    local: Local,
    idle: &mut Option<Instant>,
    now: Instant,
    idle_after: Duration,
) -> Want {
    if local.holder == Holder::Local {
        return Want::Stop(CloseReason::TakenOver);
    }
    if local.players > 0 {
        *idle = None;
        return Want::Run(None);
    }
    let until = *idle.get_or_insert(now) + idle_after;
    if now >= until {
        Want::Stop(CloseReason::IdleTimeout)
    } else {
        Want::Run(Some(until))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replays fractions in a loop.
    struct Script(Vec<f64>, usize);

    impl Jitter for Script {
        fn fraction(&mut self) -> f64 {
            let f = self.0[self.1 % self.0.len()];
            self.1 += 1;
            f
        }
    }

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn backoff_doubles_to_the_cap_with_bounded_jitter() {
        let mut b = Backoff::new(S(1), S(30));
        let mut none = Script(vec![0.0], 0);
        let steps: Vec<u64> = (0..8).map(|_| b.next(&mut none).as_secs()).collect();
        assert_eq!(steps, [1, 2, 4, 8, 16, 30, 30, 30]);
        b.reset();
        assert_eq!(b.step(), S(1));
        let mut most = Script(vec![0.999_999], 0);
        let d = b.next(&mut most);
        assert!(d > Duration::from_millis(800) && d <= S(1), "{d:?}");
        let mut b = Backoff::new(S(1), S(30));
        for _ in 0..1000 {
            let d = b.next(&mut most);
            assert!(d >= Duration::from_millis(800), "never near zero: {d:?}");
            assert!(d <= S(30));
        }
        assert_eq!(b.step(), S(30), "no overflow after many failures");
    }

    #[test]
    fn lifecycle_connecting_live_backoff() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + S(s);
        let mut jitter = Script(vec![0.0], 0);
        let mut life = Lifecycle::new(t0, S(1), S(30));
        assert_eq!(life.state(), RelayState::Connecting);
        life.connecting(t0);
        assert_eq!(life.reconnects(), 0);
        // A refusal: back off 1 s, then 2 s, …
        assert_eq!(life.ended(at(0), &mut jitter), S(1));
        assert_eq!(life.state(), RelayState::Backoff);
        assert_eq!(life.retry_at(), Some(at(1)));
        life.live(at(1));
        assert_eq!(
            life.state(),
            RelayState::Backoff,
            "live only from connecting"
        );
        life.connecting(at(1));
        assert_eq!(life.ended(at(1), &mut jitter), S(2));
        // Live, but dropped after 5 s: not stable, the back-off goes on growing.
        life.connecting(at(3));
        life.live(at(3));
        assert_eq!(life.state(), RelayState::Live);
        assert_eq!(life.since(), at(3));
        assert_eq!(life.ended(at(8), &mut jitter), S(4));
        // Live for retry_max: the next wait starts from retry_min again.
        life.connecting(at(12));
        life.live(at(12));
        assert_eq!(life.ended(at(42), &mut jitter), S(1));
        assert_eq!(life.attempts(), 4);
        assert_eq!(life.reconnects(), 3);
    }

    fn local(holder: Holder, players: usize) -> Local {
        Local { holder, players }
    }

    #[test]
    fn a_push_lives_with_its_local_publisher() {
        assert_eq!(push_wants(local(Holder::Local, 0)), Want::Run(None));
        assert_eq!(
            push_wants(local(Holder::Nobody, 3)),
            Want::Stop(CloseReason::Completed)
        );
        assert_eq!(
            push_wants(local(Holder::Pull, 3)),
            Want::Stop(CloseReason::Completed),
            "a pulled stream is never pushed"
        );
    }

    #[test]
    fn a_pull_yields_to_a_local_publisher_and_idles_out() {
        let t0 = Instant::now();
        let idle_after = S(10);
        let mut idle = None;
        let mut want = |holder, players, s| {
            pull_wants(local(holder, players), &mut idle, t0 + S(s), idle_after)
        };
        assert_eq!(want(Holder::Nobody, 1, 0), Want::Run(None));
        assert_eq!(want(Holder::Pull, 2, 1), Want::Run(None));
        // The last player left at 5 s: runs until 15 s.
        assert_eq!(want(Holder::Pull, 0, 5), Want::Run(Some(t0 + S(15))));
        assert_eq!(want(Holder::Pull, 0, 14), Want::Run(Some(t0 + S(15))));
        // A player came back at 14 s: the idle clock starts afresh when it leaves.
        assert_eq!(want(Holder::Pull, 1, 14), Want::Run(None));
        assert_eq!(want(Holder::Pull, 0, 20), Want::Run(Some(t0 + S(30))));
        assert_eq!(
            want(Holder::Nobody, 0, 30),
            Want::Stop(CloseReason::IdleTimeout)
        );
        // A local publisher always wins, players or not.
        assert_eq!(
            want(Holder::Local, 5, 31),
            Want::Stop(CloseReason::TakenOver)
        );
        let mut idle = None;
        assert_eq!(
            pull_wants(local(Holder::Nobody, 0), &mut idle, t0, Duration::ZERO),
            Want::Stop(CloseReason::IdleTimeout),
            "idle_after 0s stops as soon as nobody watches"
        );
    }
}
