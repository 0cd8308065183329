//! The latency budget: how long a fan-out writer lets viewers' output wait so that it goes out
//! in fewer, larger writes. The kernel charges per write and per wake-up, not per byte, so on a
//! busy server merging is what keeps CPU per delivered byte low; on an idle one it only adds
//! latency. The writer therefore measures its own busy time and merges only as long as it must:
//! the shortest window ([`MIN_WINDOW`]) while writing costs less than [`IDLE_SHARE`] of a core,
//! longer as the load grows, never longer than the budget the operator accepts
//! (`[play] latency_budget`).
//!
//! Pure: the writer reports the time it spent and the time that passed; decisions are made here
//! on an explicit clock.

use std::time::{Duration, Instant};

/// A writer busier than this share of one core merges longer; well below it, shorter. A share
/// this low means the machine has the time to spare for immediate writes.
pub(crate) const IDLE_SHARE: f64 = 0.02;
/// How often the window is re-decided: long enough to average over many writes and windows.
const DECIDE_EVERY: Duration = Duration::from_millis(500);
/// Within this factor of [`IDLE_SHARE`] the window is left alone (no hunting).
const BAND: f64 = 1.4;
/// The shortest adaptive window, what an idle writer merges. Not shorter, because of how a
/// frozen reader is found. Its kernel keeps ACKing what fits in its receive window; only once
/// the window is closed does data stay unacknowledged, and TCP_USER_TIMEOUT counts from there
/// (the zero-window probes). A player fed message by message grows its receive window as it
/// reads (measured with ffmpeg on a LAN: 100 KB → 1 MB within seconds), and at a stream's rate
/// that takes 20 s or more to fill, so only ping_timeout releases it, at 21 s; fed every
/// 100 ms its window stays at ~100 KB, full in ~3 s, and user_timeout releases it at 14 s
/// (fault test L8; 60 ms: the same; 40 ms: 180 KB, released at 17 s, close to L8's 20 s bound).
pub(crate) const MIN_WINDOW: Duration = Duration::from_millis(100);

/// A writer's merge window, decided from its measured load.
#[derive(Debug, Clone)]
pub(crate) struct LatencyBudget {
    /// The longest window allowed (the operator's latency budget).
    max: Duration,
    /// Never adapt: a window fixed by `[play] merge_window`.
    fixed: bool,
    window: Duration,
    busy: Duration,
    since: Instant,
}

impl LatencyBudget {
    /// Adaptive, up to `max`; starts writing at once.
    pub(crate) fn adaptive(max: Duration, now: Instant) -> Self {
        Self {
            max,
            fixed: false,
            window: MIN_WINDOW.min(max),
            busy: Duration::ZERO,
            since: now,
        }
    }

    /// Always `window` (the operator fixed it).
    pub(crate) fn fixed(window: Duration, now: Instant) -> Self {
        Self {
            max: window,
            fixed: true,
            window,
            busy: Duration::ZERO,
            since: now,
        }
    }

    /// How long output may wait now to be merged ("0s": write at once).
    pub(crate) fn window(&self) -> Duration {
        self.window
    }

    /// The writer spent `busy` working; at `now` it may re-decide the window.
    pub(crate) fn record(&mut self, now: Instant, busy: Duration) {
        self.busy += busy;
        let span = now.saturating_duration_since(self.since);
        if self.fixed || span < DECIDE_EVERY {
            return;
        }
        let share = self.busy.as_secs_f64() / span.as_secs_f64();
        self.busy = Duration::ZERO;
        self.since = now;
        self.window = next_window(self.window, share, self.max);
    }
}

/// The window after one measured with `share` of a core busy. Writing cost falls roughly as
/// 1 / window, so the window is scaled by how far the share is from [`IDLE_SHARE`] (at most
/// doubled or halved per step, to stay stable), within `MIN_WINDOW..=max`.
fn next_window(window: Duration, share: f64, max: Duration) -> Duration {
    let floor = MIN_WINDOW.min(max);
    let ratio = share / IDLE_SHARE;
    if (1.0 / BAND..=BAND).contains(&ratio) {
        return window.clamp(floor, max);
    }
    window
        .max(floor)
        .mul_f64(ratio.clamp(0.5, 2.0))
        .clamp(floor, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Drives a budget with a writer whose cost per second is `cost_at_zero` when writing at
    /// once and falls as 1 / window beyond `per_message` (the spacing of the stream's messages,
    /// below which merging gathers nothing).
    fn settle(budget: &mut LatencyBudget, t0: Instant, load: impl Fn(Duration) -> f64) -> Instant {
        let mut now = t0;
        for _ in 0..40 {
            let share = load(budget.window());
            now += DECIDE_EVERY;
            budget.record(now, DECIDE_EVERY.mul_f64(share));
        }
        now
    }

    fn writer(cost_at_zero: f64) -> impl Fn(Duration) -> f64 {
        move |w: Duration| {
            let per_message = 14.0;
            let w = w.as_secs_f64() * 1000.0;
            cost_at_zero * (per_message / w.max(per_message))
        }
    }

    #[test]
    fn an_idle_writer_merges_only_the_shortest_window() {
        let t0 = Instant::now();
        let mut b = LatencyBudget::adaptive(250 * MS, t0);
        settle(&mut b, t0, writer(0.01));
        assert_eq!(b.window(), MIN_WINDOW);
    }

    #[test]
    fn a_loaded_writer_merges_up_to_the_budget_and_no_further() {
        let t0 = Instant::now();
        let mut b = LatencyBudget::adaptive(250 * MS, t0);
        // Writing at once would take 60 % of a core: even the whole budget leaves it busy.
        settle(&mut b, t0, writer(0.6));
        assert_eq!(b.window(), 250 * MS);
    }

    #[test]
    fn a_moderate_load_settles_between_and_goes_back_when_the_load_does() {
        let t0 = Instant::now();
        let mut b = LatencyBudget::adaptive(250 * MS, t0);
        let now = settle(&mut b, t0, writer(0.15));
        let w = b.window();
        assert!(w > 50 * MS && w < 250 * MS, "{w:?}");
        let share = writer(0.15)(w);
        assert!(
            (IDLE_SHARE / BAND..=IDLE_SHARE * BAND).contains(&share),
            "{share}"
        );
        // The viewers left: the load falls and so does the window, to the shortest.
        settle(&mut b, now, writer(0.005));
        assert_eq!(b.window(), MIN_WINDOW);
    }

    #[test]
    fn decisions_wait_for_enough_time_to_average() {
        let t0 = Instant::now();
        let mut b = LatencyBudget::adaptive(250 * MS, t0);
        b.record(t0 + 100 * MS, 100 * MS);
        assert_eq!(b.window(), MIN_WINDOW, "a single busy tick is no trend");
        b.record(t0 + DECIDE_EVERY, Duration::ZERO);
        assert_eq!(b.window(), 2 * MIN_WINDOW);
    }

    #[test]
    fn a_fixed_window_never_moves() {
        let t0 = Instant::now();
        let mut b = LatencyBudget::fixed(100 * MS, t0);
        settle(&mut b, t0, writer(0.9));
        assert_eq!(b.window(), 100 * MS);
        let mut b = LatencyBudget::fixed(Duration::ZERO, t0);
        settle(&mut b, t0, writer(0.9));
        assert_eq!(b.window(), Duration::ZERO);
    }
}
