//! How long after a part was ready each viewer's blocking playlist request for it was
//! answered.
//!
//! "Ready" is not visible from outside the server, so it is bounded from above by the
//! earliest answer any viewer got for that part: a request sent before that instant was
//! blocked in the server when the part became ready, and its delay is its answer time minus
//! the earliest answer. The figure is thus the spread of the server's wake-ups across the
//! blocked viewers (plus the generator's own time to read them all, which the report gives
//! as its CPU); it does not include the first viewer's answer latency. A request sent after
//! that instant was not blocked (its viewer was still busy with the previous part) and is
//! counted as late instead.

use super::playlist::PartId;
use std::collections::HashMap;
use std::time::Instant;

/// One blocking playlist request that was answered 200.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) part: PartId,
    pub(crate) sent: Instant,
    pub(crate) answered: Instant,
}

/// The delays of the requests answered within a window.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Summary {
    /// Requests that were blocked when their part became ready.
    pub(crate) blocked: usize,
    /// Requests sent after their part was ready (answered at once).
    pub(crate) late: usize,
    /// Distinct parts answered.
    pub(crate) parts: usize,
    /// Quantiles of the blocked requests' delays, in ms: p50, p95, p99, max.
    pub(crate) delay_ms: Option<[f64; 4]>,
}

/// Summarises the samples answered in `from..=to`; `samples` may hold more (before and
/// after), which only serve to find each part's earliest answer.
pub(crate) fn summarize(samples: &[Sample], from: Instant, to: Instant) -> Summary {
    let mut ready: HashMap<PartId, Instant> = HashMap::new();
    for s in samples {
        ready
            .entry(s.part)
            .and_modify(|t| *t = (*t).min(s.answered))
            .or_insert(s.answered);
    }
    let mut delays_us: Vec<u64> = Vec::new();
    let mut late = 0;
    let mut parts = std::collections::HashSet::new();
    for s in samples.iter().filter(|s| (from..=to).contains(&s.answered)) {
        let Some(&at) = ready.get(&s.part) else {
            continue;
        };
        parts.insert(s.part);
        if s.sent <= at {
            delays_us.push(s.answered.saturating_duration_since(at).as_micros() as u64);
        } else {
            late += 1;
        }
    }
    delays_us.sort_unstable();
    let q = |q: f64| {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let rank = ((delays_us.len() as f64) * q).ceil().max(1.0) as usize;
        delays_us[rank.min(delays_us.len()) - 1] as f64 / 1000.0
    };
    Summary {
        blocked: delays_us.len(),
        late,
        parts: parts.len(),
        delay_ms: (!delays_us.is_empty()).then(|| [q(0.50), q(0.95), q(0.99), q(1.0)]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn delays_from_the_earliest_answer() {
        let t = Instant::now();
        let ms = |n: u64| t + Duration::from_millis(n);
        let s = |part, sent, answered| Sample {
            part,
            sent: ms(sent),
            answered: ms(answered),
        };
        let samples = [
            // Part (1,0): ready by 100; answers at 100, 101, 104; one request sent at 102.
            s((1, 0), 10, 100),
            s((1, 0), 20, 104),
            s((1, 0), 30, 101),
            s((1, 0), 102, 103),
            // Part (1,1): only its earliest answer is before the window.
            s((1, 1), 150, 200),
            s((1, 1), 160, 1002),
        ];
        let sum = summarize(&samples, ms(50), ms(2000));
        assert_eq!(sum.blocked, 5);
        assert_eq!(sum.late, 1);
        assert_eq!(sum.parts, 2);
        assert_eq!(sum.delay_ms, Some([1.0, 802.0, 802.0, 802.0]));
        let sum = summarize(&samples, ms(300), ms(2000));
        assert_eq!((sum.blocked, sum.late, sum.parts), (1, 0, 1));
        assert_eq!(summarize(&[], t, t).delay_ms, None);
    }
}
