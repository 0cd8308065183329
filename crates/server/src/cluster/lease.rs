//! The lease keeper's state machine, pure and on an explicit clock: joining → held (renewing)
//! → fenced → joining again.
//!
//! etcd expires a lease `ttl` after the last renewal it *processed*, measured on its clock. A
//! renewal we sent at `s` (our clock) and saw acknowledged was processed after `s`, so the lease
//! lives on etcd's side at least until `s + ttl` in etcd's time. Our clock may run slower than
//! etcd's by up to [`DRIFT`]; so we stop our publishers (fence) at
//! `s + (ttl − margin) / (1 + DRIFT)` at the latest, `margin` being what stopping them and a
//! late timer may take. When the lease can expire on etcd's side, nothing of ours publishes
//! under it any more: another node may then claim the names (docs/cluster.md, "Safety").

use std::time::{Duration, Instant};

/// The largest rate difference assumed between our monotonic clock and etcd's (1 %: crystals
/// are within 0.01 %, and a VM's clock within far less than this once NTP disciplines it).
pub(crate) const DRIFT: f64 = 0.01;

/// The keeper's timing, all derived from `lease_ttl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LeaseTimes {
    /// The lease's TTL as granted by etcd.
    pub(crate) ttl: Duration,
    /// How often the lease is renewed, and the deadline of each etcd call: `ttl / 5`.
    pub(crate) interval: Duration,
    /// Time to stop the publishers and for timers to be late: `ttl / 10` (500 ms at 5 s).
    pub(crate) margin: Duration,
}

impl LeaseTimes {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            interval: ttl / 5,
            margin: ttl / 10,
        }
    }

    /// How long after sending an acknowledged renewal we may still publish under the lease.
    pub(crate) fn fence_after(&self) -> Duration {
        self.ttl.saturating_sub(self.margin).div_f64(1.0 + DRIFT)
    }

    /// A failed renewal is retried this soon (several tries fit before the fence).
    pub(crate) fn retry(&self) -> Duration {
        self.interval / 4
    }
}

/// What the keeper holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LeaseState {
    /// No lease: asking for one (again) at `next_try`.
    Joining {
        /// When to ask etcd for a lease.
        next_try: Instant,
    },
    /// A lease we may publish under until `fence_at`.
    Held {
        /// etcd's lease id.
        id: i64,
        /// When the last acknowledged renewal (or the grant) was sent.
        renewed_sent: Instant,
        /// When our publishers must be stopped unless a renewal is acknowledged first.
        fence_at: Instant,
        /// When to renew next.
        next_renew: Instant,
    },
}

/// What the keeper's task should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Ask etcd for a lease (deadline: `interval`).
    Grant,
    /// Renew lease `id` (deadline: [`Keeper::call_deadline`]).
    Renew(i64),
    /// The lease `id` must be taken as lost: stop every local publisher now, then join again.
    Fence(i64),
    /// Nothing before this instant.
    Wait(Instant),
}

/// The keeper. Every method takes the time explicitly.
#[derive(Debug, Clone)]
pub(crate) struct Keeper {
    pub(crate) times: LeaseTimes,
    state: LeaseState,
    /// Bumped at every grant: a claim made under one epoch is worthless in the next.
    epoch: u64,
}

impl Keeper {
    pub(crate) fn new(ttl: Duration, now: Instant) -> Self {
        Self {
            times: LeaseTimes::new(ttl),
            state: LeaseState::Joining { next_try: now },
            epoch: 0,
        }
    }

    pub(crate) fn state(&self) -> LeaseState {
        self.state
    }

    /// The lease we may publish under at `now`, and its epoch.
    pub(crate) fn valid(&self, now: Instant) -> Option<(i64, u64)> {
        match self.state {
            LeaseState::Held { id, fence_at, .. } if now < fence_at => Some((id, self.epoch)),
            _ => None,
        }
    }

    /// What to do at `now`.
    pub(crate) fn poll(&mut self, now: Instant) -> Step {
        match self.state {
            LeaseState::Joining { next_try } if now >= next_try => Step::Grant,
            LeaseState::Joining { next_try } => Step::Wait(next_try),
            LeaseState::Held { id, fence_at, .. } if now >= fence_at => {
                self.state = LeaseState::Joining { next_try: now };
                Step::Fence(id)
            }
            LeaseState::Held { id, next_renew, .. } if now >= next_renew => Step::Renew(id),
            LeaseState::Held {
                next_renew,
                fence_at,
                ..
            } => Step::Wait(next_renew.min(fence_at)),
        }
    }

    /// The deadline of a renewal started at `now`: it must be over before the fence.
    pub(crate) fn call_deadline(&self, now: Instant) -> Instant {
        let end = now + self.times.interval;
        match self.state {
            LeaseState::Held { fence_at, .. } => end.min(fence_at),
            LeaseState::Joining { .. } => end,
        }
    }

    /// etcd granted lease `id` to a request sent at `sent`; returns the new epoch.
    pub(crate) fn granted(&mut self, id: i64, sent: Instant) -> u64 {
        self.epoch += 1;
        self.state = LeaseState::Held {
            id,
            renewed_sent: sent,
            fence_at: sent + self.times.fence_after(),
            next_renew: sent + self.times.interval,
        };
        self.epoch
    }

    /// The grant failed at `now`: try again in an interval.
    pub(crate) fn grant_failed(&mut self, now: Instant) {
        self.state = LeaseState::Joining {
            next_try: now + self.times.interval,
        };
    }

    /// The renewal of `id` sent at `sent` was acknowledged with a live TTL.
    pub(crate) fn renewed(&mut self, id: i64, sent: Instant) {
        if let LeaseState::Held {
            id: held,
            renewed_sent,
            fence_at,
            ..
        } = &mut self.state
            && *held == id
        {
            // Only a renewal sent before the fence counts (one answered late, after the fence
            // fired, finds the keeper joining and is ignored above).
            if sent > *renewed_sent && sent < *fence_at {
                *renewed_sent = sent;
                *fence_at = sent + self.times.fence_after();
            }
            self.set_next_renew(sent + self.times.interval);
        }
    }

    /// The renewal failed (no answer, an error) at `now`: retry soon; the fence stays.
    pub(crate) fn renew_failed(&mut self, now: Instant) {
        self.set_next_renew(now + self.times.retry());
    }

    fn set_next_renew(&mut self, at: Instant) {
        if let LeaseState::Held { next_renew, .. } = &mut self.state {
            *next_renew = at;
        }
    }

    /// etcd says lease `id` no longer exists (TTL 0): fence at once.
    pub(crate) fn gone(&mut self, id: i64, now: Instant) {
        if let LeaseState::Held {
            id: held, fence_at, ..
        } = &mut self.state
            && *held == id
        {
            *fence_at = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn times_at_five_seconds() {
        let t = LeaseTimes::new(Duration::from_secs(5));
        assert_eq!(t.interval, MS(1000));
        assert_eq!(t.margin, MS(500));
        // (5 s − 0.5 s) / 1.01 = 4.455 s: before etcd can expire the lease, with the drift.
        let f = t.fence_after();
        assert!(f > MS(4450) && f < MS(4460), "{f:?}");
        assert!(f.mul_f64(1.0 + DRIFT) + t.margin <= t.ttl);
    }

    #[test]
    fn grant_renew_and_fence() {
        let t0 = Instant::now();
        let at = |ms| t0 + MS(ms);
        let mut k = Keeper::new(Duration::from_secs(5), t0);
        assert_eq!(k.poll(t0), Step::Grant);
        assert_eq!(k.valid(t0), None, "nothing may publish before a lease");
        assert_eq!(k.granted(7, t0), 1);
        assert_eq!(k.valid(at(10)), Some((7, 1)));
        assert_eq!(k.poll(at(10)), Step::Wait(at(1000)));
        assert_eq!(k.poll(at(1000)), Step::Renew(7));
        k.renewed(7, at(1000));
        assert_eq!(k.poll(at(1001)), Step::Wait(at(2000)));
        // From 2 s on etcd is gone: every renewal fails; retried every 250 ms.
        assert_eq!(k.poll(at(2000)), Step::Renew(7));
        assert_eq!(k.call_deadline(at(2000)), at(3000));
        k.renew_failed(at(3000));
        assert_eq!(k.poll(at(3000)), Step::Wait(at(3250)));
        let fence = at(1000) + k.times.fence_after();
        k.renew_failed(fence - MS(100));
        assert_eq!(
            k.call_deadline(fence - MS(100)),
            fence,
            "no call outlives the fence"
        );
        assert!(k.valid(fence - MS(1)).is_some());
        assert_eq!(
            k.valid(fence),
            None,
            "fenced before etcd can expire the lease"
        );
        assert_eq!(k.poll(fence), Step::Fence(7));
        assert_eq!(k.poll(fence), Step::Grant, "then joins again");
        // A late answer to a renewal of the old lease changes nothing.
        k.renewed(7, fence - MS(50));
        assert_eq!(k.valid(fence), None);
        assert_eq!(k.granted(9, at(9000)), 2, "a new epoch");
        assert_eq!(k.valid(at(9001)), Some((9, 2)));
    }

    #[test]
    fn a_renewal_counts_from_when_it_was_sent() {
        let t0 = Instant::now();
        let mut k = Keeper::new(Duration::from_secs(5), t0);
        k.granted(1, t0);
        // Sent at 1 s, answered at 1.9 s: the fence moves to 1 s + 4.455 s, not 1.9 s + ….
        k.renewed(1, t0 + MS(1000));
        assert_eq!(k.valid(t0 + MS(5454)), Some((1, 1)));
        assert_eq!(k.valid(t0 + MS(5456)), None);
        // An older renewal answered after a newer one does not move the fence back.
        k.renewed(1, t0 + MS(500));
        assert_eq!(k.valid(t0 + MS(5454)), Some((1, 1)));
    }

    #[test]
    fn lease_gone_fences_at_once() {
        let t0 = Instant::now();
        let mut k = Keeper::new(Duration::from_secs(5), t0);
        k.granted(3, t0);
        k.gone(4, t0 + MS(100));
        assert!(k.valid(t0 + MS(100)).is_some(), "another lease's news");
        k.gone(3, t0 + MS(100));
        assert_eq!(k.poll(t0 + MS(100)), Step::Fence(3));
        k.grant_failed(t0 + MS(100));
        assert_eq!(k.poll(t0 + MS(200)), Step::Wait(t0 + MS(1100)));
    }
}
