//! Deadlines as data: each connection owns a tiny fixed table, and its driver sleeps until the
//! earliest entry. Arming, moving or clearing a deadline is a field write, so a connection costs
//! nothing while idle and nothing sweeps over all connections.
//!
//! The table is generic over the set of timers so the server and client sessions share one
//! implementation while each keeps its own closed enum (a driver matching on the server's
//! timers must not see client-only ones, and the other way round).

use std::fmt::Debug;
use std::time::Instant;

/// A closed set of timers that a [`DeadlineTable`] can hold.
pub trait TimerKind: Copy + Eq + Debug + 'static {
    /// The storage: an array with one slot per timer (`[Option<Instant>; N]`), so a table
    /// costs exactly its slots and no allocation.
    type Slots: AsRef<[Option<Instant>]> + AsMut<[Option<Instant>]> + Clone + Debug + Default;
    /// Every timer, in the order ties are broken (earlier entries fire first).
    const ALL: &'static [Self];
    /// The timer's slot; below the length of [`Self::Slots`].
    fn index(self) -> usize;
    /// Whether reaching this deadline should wake the connection. A lazy deadline is acted on
    /// only when the connection is awake anyway (a throughput sample, say), so it never costs
    /// an idle connection a wake-up: [`DeadlineTable::next_wake`] and
    /// [`DeadlineTable::pop_due`] pass over it.
    fn wakes(self) -> bool {
        true
    }
}

/// One optional deadline per timer of `T`.
#[derive(Debug, Clone)]
pub struct DeadlineTable<T: TimerKind> {
    deadlines: T::Slots,
}

impl<T: TimerKind> Default for DeadlineTable<T> {
    fn default() -> Self {
        Self {
            deadlines: T::Slots::default(),
        }
    }
}

impl<T: TimerKind> DeadlineTable<T> {
    /// Arms (or moves) `timer` to fire at `at`.
    pub fn set(&mut self, timer: T, at: Instant) {
        if let Some(slot) = self.deadlines.as_mut().get_mut(timer.index()) {
            *slot = Some(at);
        }
    }

    /// Arms `timer` to `at`, or disarms it for `None`.
    pub fn put(&mut self, timer: T, at: Option<Instant>) {
        if let Some(slot) = self.deadlines.as_mut().get_mut(timer.index()) {
            *slot = at;
        }
    }

    /// Whether `timer` is armed and due at `now`.
    pub fn due(&self, timer: T, now: Instant) -> bool {
        self.get(timer).is_some_and(|at| at <= now)
    }

    /// The earliest deadline that wakes the connection (see [`TimerKind::wakes`]).
    pub fn next_wake(&self) -> Option<(T, Instant)> {
        T::ALL
            .iter()
            .filter(|t| t.wakes())
            .filter_map(|&t| self.get(t).map(|at| (t, at)))
            .min_by_key(|&(_, at)| at)
    }

    /// The earliest waking timer due at `now`, disarmed as it is returned; lazy ones are left
    /// to whoever acts on them.
    pub fn pop_due(&mut self, now: Instant) -> Option<T> {
        let (timer, at) = self.next_wake()?;
        (at <= now).then(|| {
            self.stop(timer);
            timer
        })
    }

    /// Disarms `timer`.
    pub fn stop(&mut self, timer: T) {
        if let Some(slot) = self.deadlines.as_mut().get_mut(timer.index()) {
            *slot = None;
        }
    }

    /// When `timer` fires, if armed.
    pub fn get(&self, timer: T) -> Option<Instant> {
        self.deadlines
            .as_ref()
            .get(timer.index())
            .copied()
            .flatten()
    }

    /// The earliest armed deadline and its timer.
    pub fn next(&self) -> Option<(T, Instant)> {
        T::ALL
            .iter()
            .filter_map(|&t| self.get(t).map(|at| (t, at)))
            .min_by_key(|&(_, at)| at)
    }

    /// The earliest timer due at `now`, disarmed as it is returned.
    pub fn pop_expired(&mut self, now: Instant) -> Option<T> {
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

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum T {
        A,
        Lazy,
    }

    impl TimerKind for T {
        type Slots = [Option<Instant>; 2];
        const ALL: &'static [Self] = &[Self::A, Self::Lazy];
        fn index(self) -> usize {
            self as usize
        }
        fn wakes(self) -> bool {
            self != Self::Lazy
        }
    }

    #[test]
    fn lazy_deadlines_never_wake_nor_pop() {
        let t0 = Instant::now();
        let mut d = DeadlineTable::<T>::default();
        d.set(T::Lazy, t0);
        assert_eq!(d.next_wake(), None);
        assert_eq!(d.next(), Some((T::Lazy, t0)), "but they are in the table");
        d.put(T::A, Some(t0 + Duration::from_secs(1)));
        assert_eq!(d.pop_due(t0 + Duration::from_secs(2)), Some(T::A));
        assert_eq!(d.pop_due(t0 + Duration::from_secs(2)), None);
        assert!(d.due(T::Lazy, t0));
    }
}
