//! When does the kernel give up on a dead peer? The exact formulas of `net/ipv4/tcp_timer.c`.
//!
//! Two independent mechanisms:
//! * an **idle** socket (nothing unacknowledged) is probed by keepalive, if `SO_KEEPALIVE` is
//!   on: abort at `idle + count × interval` after the last received segment, or with a user
//!   timeout U at `idle + interval × max(1, ⌈(U − idle) / interval⌉)` (U replaces the count);
//! * a **busy** socket (data in flight) is never probed by keepalive; the retransmission timer
//!   aborts it at the first RTO expiry at or after `T(tcp_retries2)` (the kernel's
//!   `tcp_model_timeout`), or at U when a user timeout is set.

use crate::Keepalive;
use serde::Serialize;
use std::time::Duration;

/// `TCP_RTO_MIN`: the base of the retransmission back-off for established sockets.
pub const DEFAULT_RTO_MIN: Duration = Duration::from_millis(200);
/// `TCP_RTO_MAX` (default of `tcp_rto_max_ms` since Linux 6.15).
pub const DEFAULT_RTO_MAX: Duration = Duration::from_secs(120);
/// Kernel defaults of the keepalive sysctls: 7200 s / 75 s / 9.
pub const KERNEL_DEFAULT_KEEPALIVE: Keepalive = Keepalive {
    idle: Duration::from_secs(7200),
    interval: Duration::from_secs(75),
    count: 9,
};
/// Kernel default of `tcp_retries2`.
pub const DEFAULT_RETRIES2: u32 = 15;

/// Time from the last received segment to the abort of an idle socket whose peer vanished.
///
/// `user_timeout` of `None` or zero means "not set": the probe count decides. Otherwise the
/// timer still ticks at idle, idle+interval, … and aborts at the first tick that is at least U
/// after the last received segment and has sent at least one probe.
pub fn idle_detection(k: &Keepalive, user_timeout: Option<Duration>) -> Duration {
    match user_timeout.filter(|u| !u.is_zero()) {
        None => k.idle + k.interval * k.count,
        Some(u) => {
            let ticks = if u <= k.idle || k.interval.is_zero() {
                1
            } else {
                let rest = (u - k.idle).as_nanos();
                let step = k.interval.as_nanos();
                rest.div_ceil(step).max(1)
            };
            k.idle + k.interval * u32::try_from(ticks).unwrap_or(u32::MAX)
        }
    }
}

/// The kernel's `tcp_model_timeout(retries2)`: the *lower bound* on the time a busy socket
/// keeps retransmitting to a dead peer before it is aborted (924.6 s for the default 15).
pub fn retries2_bound(retries2: u32, rto_min: Duration, rto_max: Duration) -> Duration {
    let base = rto_min.as_micros().max(1);
    let max = rto_max.as_micros().max(base);
    let thresh = (max / base).ilog2();
    let us = if retries2 <= thresh {
        ((2u128 << retries2) - 1) * base
    } else {
        ((2u128 << thresh) - 1) * base + u128::from(retries2 - thresh) * max
    };
    Duration::from_micros(u64::try_from(us).unwrap_or(u64::MAX))
}

/// The moment the kernel actually aborts a busy socket under `tcp_retries2`: the first RTO
/// expiry at or after [`retries2_bound`], with RTOs starting at `first_rto` and doubling up to
/// `rto_max` (on loopback the first RTO is about 204 ms; read it from `tcp_info.rto_us`).
pub fn retries2_abort(
    retries2: u32,
    rto_min: Duration,
    rto_max: Duration,
    first_rto: Duration,
) -> Duration {
    let bound = retries2_bound(retries2, rto_min, rto_max);
    let mut rto = first_rto.max(Duration::from_millis(1)).min(rto_max);
    let mut t = Duration::ZERO;
    loop {
        t += rto;
        if t >= bound {
            return t;
        }
        rto = (rto * 2).min(rto_max);
    }
}

/// Time from the send of the oldest unacknowledged segment to the abort of a busy socket:
/// the user timeout when set (the RTO timer is clamped to fire at it), else the
/// `tcp_retries2` model.
pub fn busy_detection(
    retries2: u32,
    rto_min: Duration,
    rto_max: Duration,
    first_rto: Duration,
    user_timeout: Option<Duration>,
) -> Duration {
    match user_timeout.filter(|u| !u.is_zero()) {
        Some(u) => u,
        None => retries2_abort(retries2, rto_min, rto_max, first_rto),
    }
}

/// All detection times for one configuration, as `lifeline keepalive calc` reports them.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Keepalive timings used.
    pub keepalive: Keepalive,
    /// `TCP_USER_TIMEOUT`, if any.
    pub user_timeout: Option<Duration>,
    /// `tcp_retries2`.
    pub retries2: u32,
    /// RTO base and cap.
    pub rto_min: Duration,
    /// RTO cap.
    pub rto_max: Duration,
    /// Idle dead peer (needs `SO_KEEPALIVE`): time after the last received segment.
    pub idle: Duration,
    /// Busy dead peer without user timeout: lower bound `T(retries2)`.
    pub busy_bound: Duration,
    /// Busy dead peer: expected abort (first RTO expiry ≥ bound, or U).
    pub busy: Duration,
}

impl Report {
    /// Computes every figure; `first_rto` defaults to `rto_min` when unknown.
    pub fn new(
        keepalive: Keepalive,
        user_timeout: Option<Duration>,
        retries2: u32,
        rto_min: Duration,
        rto_max: Duration,
    ) -> Self {
        Self {
            idle: idle_detection(&keepalive, user_timeout),
            busy_bound: retries2_bound(retries2, rto_min, rto_max),
            busy: busy_detection(retries2, rto_min, rto_max, rto_min, user_timeout),
            keepalive,
            user_timeout,
            retries2,
            rto_min,
            rto_max,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ka(i: u64, v: u64, n: u32) -> Keepalive {
        Keepalive {
            idle: Duration::from_secs(i),
            interval: Duration::from_secs(v),
            count: n,
        }
    }
    const MIN: Duration = DEFAULT_RTO_MIN;
    const MAX: Duration = DEFAULT_RTO_MAX;

    #[test]
    fn idle_defaults_are_7875_not_7800() {
        assert_eq!(
            idle_detection(&KERNEL_DEFAULT_KEEPALIVE, None).as_secs(),
            7875
        );
        assert_eq!(idle_detection(&ka(4, 2, 3), None).as_secs(), 10);
        assert_eq!(
            idle_detection(&ka(4, 2, 3), Some(Duration::ZERO)).as_secs(),
            10
        );
    }

    #[test]
    fn user_timeout_table_from_the_note() {
        let k = ka(4, 2, 3);
        let ms = Duration::from_millis;
        assert_eq!(idle_detection(&k, Some(ms(5000))), Duration::from_secs(6));
        assert_eq!(idle_detection(&k, Some(ms(15000))), Duration::from_secs(16));
        assert_eq!(idle_detection(&k, Some(ms(2000))), Duration::from_secs(6));
        // U = idle + count × interval gives exactly the keepalive time.
        assert_eq!(
            idle_detection(&ka(60, 10, 3), Some(ms(90_000))),
            Duration::from_secs(90)
        );
    }

    #[test]
    fn retries2_model() {
        let t = |n| retries2_bound(n, MIN, MAX).as_secs_f64();
        assert!((t(15) - 924.6).abs() < 1e-9);
        assert!((t(5) - 12.6).abs() < 1e-9);
        assert!((t(8) - 102.2).abs() < 1e-9);
        assert!((t(3) - 3.0).abs() < 1e-9);
        let short = retries2_bound(15, MIN, Duration::from_secs(1)).as_secs_f64();
        assert!((short - 14.4).abs() < 1e-9);
        // With loopback's 204 ms first RTO, retries2 = 5 aborts at the 6th expiry: 12.852 s.
        let abort = retries2_abort(5, MIN, MAX, Duration::from_millis(204)).as_secs_f64();
        assert!((abort - 12.852).abs() < 1e-9, "{abort}");
    }

    #[test]
    fn busy_with_user_timeout_is_u() {
        let u = Some(Duration::from_millis(3000));
        assert_eq!(busy_detection(15, MIN, MAX, MIN, u), Duration::from_secs(3));
    }
}
