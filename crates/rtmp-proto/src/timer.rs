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
