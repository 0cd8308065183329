//! Asking the kernel to probe a connection's peer *now*, and judging the answer.
//!
//! An idle connection whose peer vanished looks exactly like a quiet live one: nothing is in
//! flight, so the kernel holds no evidence. A probe makes evidence. The plan, for one socket:
//!
//! * **idle** (nothing unacknowledged or unsent) → *armed*: `SO_KEEPALIVE` on and
//!   `TCP_KEEPIDLE` = 1 s. Setting `TCP_KEEPIDLE` re-arms the keepalive timer to
//!   `max(0, idle − time since the last packet received)`, so a socket idle for ≥ 1 s sends a
//!   keepalive probe at once; setting it again repeats the probe (the watch does so every
//!   [`Plan::reprobe_every`], so a lost probe is repeated within the window).
//! * **busy** (data in flight or queued) → *watched*: keepalive never probes such a socket, but
//!   the kernel is already retransmitting to it; nothing is changed.
//!
//! The peer is `alive` when anything arrives from it after the probe began (new data, an ACK of
//! our data, or the pure ACK a keepalive probe draws), `dead` when the window passes without one.
//!
//! **Safety.** What is armed can never make the kernel abort the connection within the window:
//! with `TCP_USER_TIMEOUT` = U set, keepalive aborts only once the time since the last received
//! packet reaches U, and retransmissions only once the oldest unacknowledged data is U old. The
//! plan sets U ≥ idle-at-start + 2 × window + [`restore_margin`] (keeping a larger original U), so
//! neither clock can reach U before the options are restored. `TCP_KEEPCNT` is then unused, so
//! it is left alone. Everything changed is restored, and only what was changed.

mod sockopt;
mod watch;

#[cfg(test)]
mod tests;

pub use sockopt::{KeepaliveOptions, SockOpt};
pub use watch::{Answer, Evidence, Probe, Step, Verdict};

use crate::{TcpInfo, TcpState};
use serde::Serialize;
use std::time::Duration;

/// Default window (`lifeline sockets probe --within`).
pub const DEFAULT_WITHIN: Duration = Duration::from_secs(3);
/// Shortest window accepted: below it, scheduling noise of the watch itself dominates.
pub const MIN_WITHIN: Duration = Duration::from_millis(100);
/// Longest window accepted: the user timeout armed for it must stay far below `i32::MAX` ms.
pub const MAX_WITHIN: Duration = Duration::from_secs(600);
/// The smallest `TCP_KEEPIDLE`: a socket that heard from its peer less than this ago sends its
/// first probe only when it has been idle this long.
pub const PROBE_IDLE: Duration = Duration::from_secs(1);
/// How often the driver should sample `tcp_info` of a socket being probed.
pub const POLL: Duration = Duration::from_millis(10);

/// Largest `TCP_USER_TIMEOUT` the kernel accepts (an `int` of ms).
const MAX_USER_TIMEOUT_MS: u64 = i32::MAX as u64;
/// Largest `TCP_KEEPINTVL` (`MAX_TCP_KEEPINTVL`).
const MAX_KEEPINTVL_S: u64 = 32767;

/// How a socket is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Idle: keepalive armed to probe at once.
    Armed,
    /// Data in flight: the kernel's retransmissions are the probe; nothing is changed.
    Watched,
}

/// Why the window is longer than asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum WindowRaise {
    /// At least 3 × the socket's smoothed RTT, so an answer has time to come back.
    Rtt {
        /// The socket's RTT, µs.
        rtt_us: u32,
    },
    /// The socket heard from its peer less than [`PROBE_IDLE`] ago, so its first probe leaves
    /// only after `delay_ms`; the window still holds three probes after that.
    FirstProbe {
        /// Until the first probe, ms.
        delay_ms: u64,
    },
}

impl std::fmt::Display for WindowRaise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rtt { rtt_us } => write!(
                f,
                "at least 3 × the socket's RTT ({:.1} ms)",
                f64::from(*rtt_us) / 1000.0
            ),
            Self::FirstProbe { delay_ms } => write!(
                f,
                "the socket heard from its peer just now: its first probe leaves after {delay_ms} ms"
            ),
        }
    }
}

/// What to do to one socket, computed from its saved options and a `tcp_info` sample taken
/// just before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Armed or watched.
    pub mode: Mode,
    /// The window actually used (≥ the one asked for).
    pub window: Duration,
    /// Why `window` is longer than asked, if it is.
    pub raised: Option<WindowRaise>,
    /// Options to set, in this order (empty when watched). The last one fires the probe.
    pub arm: Vec<SockOpt>,
    /// Options to put back, in this order: exactly those `arm` changed, the user timeout last so
    /// the abort guard holds until the very end.
    pub restore: Vec<SockOpt>,
    /// Set again to force another probe while no answer came (armed sockets).
    pub reprobe: Option<SockOpt>,
    /// How often to force a probe while no answer came.
    pub reprobe_every: Duration,
    /// When the first probe leaves, counted from arming.
    pub first_probe: Duration,
}

/// Why a socket cannot be probed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// `--within` outside [`MIN_WITHIN`]..=[`MAX_WITHIN`].
    #[error("window {within:?} is out of range ({MIN_WITHIN:?}..={MAX_WITHIN:?})")]
    Window {
        /// The refused window.
        within: Duration,
    },
    /// Only ESTABLISHED connections have a peer to probe.
    #[error("the socket is {}, not ESTABLISHED", state.ss_name())]
    NotEstablished {
        /// Its state.
        state: TcpState,
    },
    /// Idle for so long that no `TCP_USER_TIMEOUT` could keep the kernel from aborting it
    /// while probing (the option is an `int` of ms, about 24.8 days).
    #[error("idle for {idle:?}: longer than TCP_USER_TIMEOUT can cover, probing could abort it")]
    IdleTooLong {
        /// Time since the last packet received.
        idle: Duration,
    },
    /// A timing the probe would change reads back a value `setsockopt` refuses (a sysctl set
    /// to 0 or above 32767), so it could not be put back exactly.
    #[error("{option} reads {value}, which setsockopt refuses: it could not be restored")]
    Unrestorable {
        /// The option.
        option: &'static str,
        /// What it reads.
        value: u32,
    },
}

/// Time since anything arrived from the peer: the clock keepalive uses
/// (`min(now − lrcvtime, now − rcv_tstamp)`).
pub fn heard_ago(i: &TcpInfo) -> Duration {
    Duration::from_millis(u64::from(i.last_ack_recv_ms.min(i.last_data_recv_ms)))
}

/// Whether the kernel is already sending to the peer (unacknowledged or unsent data).
pub fn busy(i: &TcpInfo) -> bool {
    i.unacked > 0 || i.notsent_bytes.unwrap_or(0) > 0
}

/// Slack between the end of the window and the earliest abort the armed options allow: time
/// for the driver to restore, even on a loaded machine.
pub fn restore_margin(window: Duration) -> Duration {
    window.max(Duration::from_secs(10))
}

/// Plans the probe of one socket with the options `saved` (read from it) and the `tcp_info`
/// sample `now` taken just before arming, for a requested window `within`.
pub fn plan(saved: &KeepaliveOptions, now: &TcpInfo, within: Duration) -> Result<Plan, PlanError> {
    if !(MIN_WITHIN..=MAX_WITHIN).contains(&within) {
        return Err(PlanError::Window { within });
    }
    if now.state != TcpState::Established {
        return Err(PlanError::NotEstablished { state: now.state });
    }
    let rtt = Duration::from_micros(u64::from(now.rtt_us));
    // A few times per window, never faster than twice the RTT (an answer could be on its way)
    // and, unless the RTT is that long, at least once per second.
    let floor = (2 * rtt).max(Duration::from_millis(100));
    let reprobe_every = (within / 10).max(floor).min(PROBE_IDLE.max(floor));
    let mut window = within;
    let mut raised = None;
    if 3 * rtt > window {
        window = 3 * rtt;
        raised = Some(WindowRaise::Rtt { rtt_us: now.rtt_us });
    }
    if busy(now) {
        return Ok(Plan {
            mode: Mode::Watched,
            window,
            raised,
            arm: Vec::new(),
            restore: Vec::new(),
            reprobe: None,
            reprobe_every,
            first_probe: Duration::ZERO,
        });
    }
    let idle = heard_ago(now);
    let first_probe = PROBE_IDLE.saturating_sub(idle);
    // Room for the late first probe and two repeats, each with time to be answered.
    let needed = first_probe + 2 * reprobe_every + 3 * rtt;
    if !first_probe.is_zero() && needed > window {
        window = needed;
        raised = Some(WindowRaise::FirstProbe {
            delay_ms: u64::try_from(first_probe.as_millis()).unwrap_or(u64::MAX),
        });
    }
    // The watch may extend the window once, by at most the window itself.
    let guard = idle + 2 * window + restore_margin(window);
    let guard_ms = u64::try_from(guard.as_millis()).unwrap_or(u64::MAX);
    if guard_ms > MAX_USER_TIMEOUT_MS {
        return Err(PlanError::IdleTooLong { idle });
    }
    let restorable = |option, value: u32| {
        if (1..=MAX_KEEPINTVL_S).contains(&u64::from(value)) {
            Ok(())
        } else {
            Err(PlanError::Unrestorable { option, value })
        }
    };
    restorable("TCP_KEEPIDLE", saved.idle_s)?;
    let mut arm = Vec::new();
    let mut restore = Vec::new();
    // The abort guard first, so it holds before anything can send a probe.
    let user_timeout = u32::try_from(guard_ms).unwrap_or(u32::MAX);
    if saved.user_timeout_ms < user_timeout {
        arm.push(SockOpt::UserTimeout(user_timeout));
    }
    // The kernel's own repeat cadence, should the watch be slow to force one.
    let interval = u32::try_from((window.as_secs() / 4).clamp(1, MAX_KEEPINTVL_S)).unwrap_or(1);
    if saved.interval_s > interval {
        restorable("TCP_KEEPINTVL", saved.interval_s)?;
        arm.push(SockOpt::KeepIntvl(interval));
    }
    if !saved.keepalive {
        arm.push(SockOpt::KeepAlive(true));
        restore.push(SockOpt::KeepAlive(false));
    }
    let fire = SockOpt::KeepIdle(1);
    arm.push(fire);
    if saved.interval_s > interval {
        restore.push(SockOpt::KeepIntvl(saved.interval_s));
    }
    restore.push(SockOpt::KeepIdle(saved.idle_s));
    if saved.user_timeout_ms < user_timeout {
        restore.push(SockOpt::UserTimeout(saved.user_timeout_ms));
    }
    Ok(Plan {
        mode: Mode::Armed,
        window,
        raised,
        arm,
        restore,
        reprobe: Some(fire),
        reprobe_every,
        first_probe,
    })
}
