//! Deadlines as data: a fixed table with one optional instant per timer of an enum, and the
//! earliest of them for the driver's single sleep. Arming, moving or clearing a deadline is a
//! field write, so a connection costs nothing while idle and nothing sweeps over connections.

use std::time::Instant;

/// A set of timers: a small enum whose variants index the table.
pub(crate) trait TimerKind: Copy + Eq + std::fmt::Debug + 'static {
    /// Every timer, in index order; the table has one slot per entry.
    const ALL: &'static [Self];
    /// The slot of this timer (its position in [`Self::ALL`]).
    fn index(self) -> usize;
    /// A stable name for logs and the admin API.
    fn label(self) -> &'static str;
    /// Whether reaching this deadline should wake the connection. A lazy deadline is only
    /// acted on when the connection is awake anyway (e.g. a throughput sample), so it never
    /// costs an idle connection a wake-up.
    fn wakes(self) -> bool {
        true
    }
}

/// One optional deadline per timer of `K` (`N` = `K::ALL.len()`).
#[derive(Debug, Clone)]
pub(crate) struct Deadlines<K: TimerKind, const N: usize> {
    at: [Option<Instant>; N],
    _kind: std::marker::PhantomData<K>,
}

impl<K: TimerKind, const N: usize> Default for Deadlines<K, N> {
    fn default() -> Self {
        Self {
            at: [None; N],
            _kind: std::marker::PhantomData,
        }
    }
}

impl<K: TimerKind, const N: usize> Deadlines<K, N> {
    /// Arms (or moves) `timer` to `at`.
    pub(crate) fn set(&mut self, timer: K, at: Instant) {
        if let Some(slot) = self.at.get_mut(timer.index()) {
            *slot = Some(at);
        }
    }

    /// Arms `timer` to `at`, or disarms it for `None`.
    pub(crate) fn put(&mut self, timer: K, at: Option<Instant>) {
        if let Some(slot) = self.at.get_mut(timer.index()) {
            *slot = at;
        }
    }

    /// Disarms `timer`.
    pub(crate) fn stop(&mut self, timer: K) {
        self.put(timer, None);
    }

    /// When `timer` fires, if armed.
    pub(crate) fn get(&self, timer: K) -> Option<Instant> {
        self.at.get(timer.index()).copied().flatten()
    }

    /// Whether `timer` is armed and due at `now`.
    pub(crate) fn due(&self, timer: K, now: Instant) -> bool {
        self.get(timer).is_some_and(|at| at <= now)
    }

    /// The earliest deadline that wakes the connection, and its timer.
    pub(crate) fn next_wake(&self) -> Option<(K, Instant)> {
        K::ALL
            .iter()
            .filter(|t| t.wakes())
            .filter_map(|&t| self.get(t).map(|at| (t, at)))
            .min_by_key(|&(_, at)| at)
    }

    /// The earliest waking timer due at `now`, disarmed as it is returned. Lazy ones are left
    /// to whoever acts on them (see [`TimerKind::wakes`]).
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<K> {
        let (timer, _) = K::ALL
            .iter()
            .filter(|t| t.wakes())
            .filter_map(|&t| self.get(t).filter(|&at| at <= now).map(|at| (t, at)))
            .min_by_key(|&(_, at)| at)?;
        self.stop(timer);
        Some(timer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum T {
        A,
        B,
        Lazy,
    }

    impl TimerKind for T {
        const ALL: &'static [Self] = &[Self::A, Self::B, Self::Lazy];
        fn index(self) -> usize {
            self as usize
        }
        fn label(self) -> &'static str {
            "t"
        }
        fn wakes(self) -> bool {
            self != Self::Lazy
        }
    }

    #[test]
    fn earliest_waking_deadline_and_pops_in_order() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut d = Deadlines::<T, 3>::default();
        assert_eq!(d.next_wake(), None);
        d.set(T::Lazy, t0);
        assert_eq!(d.next_wake(), None, "a lazy deadline never wakes");
        d.set(T::B, t0 + s(2));
        d.set(T::A, t0 + s(5));
        assert_eq!(d.next_wake(), Some((T::B, t0 + s(2))));
        assert_eq!(d.pop_due(t0 + s(3)), Some(T::B));
        assert_eq!(d.pop_due(t0 + s(3)), None, "lazy ones are not popped");
        assert!(d.due(T::Lazy, t0 + s(3)));
        assert!(d.due(T::A, t0 + s(5)));
        d.stop(T::A);
        assert_eq!(d.get(T::A), None);
    }
}
