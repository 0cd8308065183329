//! The watch: successive `tcp_info` samples of a probed socket, on an explicit clock, turned
//! into `alive`, `dead` or "keep watching".

use super::{Mode, Plan};
use crate::{TcpInfo, TcpState};
use serde::Serialize;
use std::time::Duration;

/// `tcp_info`'s "ms ago" fields count whole jiffies (4 ms at HZ=250, 10 ms at HZ=100) and our
/// clock is read beside the syscall: the same old packet can appear up to this much younger.
const TOLERANCE_MS: i64 = 20;

/// What came back from the peer after the probe began.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Answer {
    /// New data (`bytes_received` grew).
    Data,
    /// An acknowledgement of our data (`bytes_acked` grew).
    AckedData,
    /// A segment without new data or acknowledgement: what a keepalive probe draws.
    Ack,
}

/// Why a peer is called dead: the kernel's counters when the window closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    /// Nothing heard from the peer for this long, ms (since before the probe began).
    pub silent_ms: u64,
    /// Unanswered keepalive / zero-window probes (`tcpi_probes`).
    pub probes: u8,
    /// Probes the watch forced by re-setting `TCP_KEEPIDLE`.
    pub forced_probes: u32,
    /// Segments in flight, unacknowledged.
    pub unacked: u32,
    /// Consecutive retransmissions of the oldest unacked segment.
    pub retransmits: u8,
    /// Segments retransmitted during the window.
    pub retransmitted: u32,
    /// Retransmission back-off exponent.
    pub backoff: u8,
    /// Current retransmission timeout, ms.
    pub rto_ms: u32,
    /// Whether more than one unanswered transmission reached the peer's address (a lost probe
    /// was repeated). Only false when even an extended window saw a single one.
    pub repeated: bool,
}

impl std::fmt::Display for Evidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "nothing heard for {:.1} s",
            self.silent_ms as f64 / 1000.0
        )?;
        if self.probes > 0 {
            write!(f, ", {} probe(s) unanswered", self.probes)?;
        }
        if self.unacked > 0 {
            write!(
                f,
                ", {} segment(s) unacked, {} retransmitted (backoff {})",
                self.unacked, self.retransmitted, self.backoff
            )?;
        }
        Ok(())
    }
}

/// The outcome for one socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Something came back after the probe began.
    Alive {
        /// From the start of the probe to the answer's arrival, ms.
        answered_after_ms: u64,
        /// What came back.
        answer: Answer,
    },
    /// Nothing came back within the window.
    Dead(Evidence),
    /// The connection left ESTABLISHED without an answer (closed by its owner, reset, or
    /// destroyed by someone else): there is nothing left to judge.
    Gone {
        /// Its state now.
        state: TcpState,
    },
}

/// What the driver should do after a sample.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// Sample again after [`super::POLL`].
    Wait,
    /// Set [`Plan::reprobe`] again to force another probe, then keep sampling.
    Reprobe,
    /// Done: restore the options.
    Decided(Verdict),
}

/// Arrival time of the last packet heard, in ms relative to the probe's start (negative:
/// before it).
fn heard_at(elapsed: Duration, i: &TcpInfo) -> i64 {
    ms(elapsed) - i64::from(i.last_ack_recv_ms.min(i.last_data_recv_ms))
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The probe of one socket, fed with `tcp_info` samples on the caller's clock.
#[derive(Debug, Clone)]
pub struct Probe {
    plan: Plan,
    start: Duration,
    deadline: Duration,
    extended: bool,
    base_heard_ms: i64,
    base_acked: Option<u64>,
    base_received: Option<u64>,
    base_total_retrans: u32,
    next_reprobe: Duration,
    forced: u32,
}

impl Probe {
    /// Starts watching at `start` (when the plan was armed), with the sample `before` taken
    /// just before arming.
    pub fn new(plan: Plan, start: Duration, before: &TcpInfo) -> Self {
        Self {
            deadline: start + plan.window,
            next_reprobe: start + plan.first_probe + plan.reprobe_every,
            base_heard_ms: heard_at(Duration::ZERO, before),
            base_acked: before.bytes_acked,
            base_received: before.bytes_received,
            base_total_retrans: before.total_retrans,
            extended: false,
            forced: 0,
            start,
            plan,
        }
    }

    /// The plan being carried out.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// When the window closes (moved once when it had to be extended).
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Probes forced so far.
    pub fn forced_probes(&self) -> u32 {
        self.forced
    }

    fn answer(&self, elapsed: Duration, i: &TcpInfo) -> Option<(Answer, i64)> {
        let grew = |now: Option<u64>, base: Option<u64>| matches!((now, base), (Some(n), Some(b)) if n > b);
        if grew(i.bytes_received, self.base_received) {
            let at = ms(elapsed) - i64::from(i.last_data_recv_ms);
            return Some((Answer::Data, at));
        }
        if grew(i.bytes_acked, self.base_acked) {
            let at = ms(elapsed) - i64::from(i.last_ack_recv_ms);
            return Some((Answer::AckedData, at));
        }
        let at = heard_at(elapsed, i);
        (at > self.base_heard_ms + TOLERANCE_MS).then_some((Answer::Ack, at))
    }

    /// Judges the sample `i` taken at `now`.
    pub fn step(&mut self, now: Duration, i: &TcpInfo) -> Step {
        let elapsed = now.saturating_sub(self.start);
        if let Some((answer, at)) = self.answer(elapsed, i) {
            let at = at.clamp(0, ms(elapsed));
            return Step::Decided(Verdict::Alive {
                answered_after_ms: u64::try_from(at).unwrap_or(0),
                answer,
            });
        }
        if i.state != TcpState::Established {
            return Step::Decided(Verdict::Gone { state: i.state });
        }
        let retransmitted = i.total_retrans.saturating_sub(self.base_total_retrans);
        let repeated = i.probes >= 2 || i.retransmits >= 1 || i.backoff >= 1 || retransmitted >= 1;
        if now >= self.deadline {
            if !repeated && !self.extended {
                // One unanswered transmission is not yet a verdict: give the kernel (or us) time
                // for another, once.
                self.extended = true;
                let rto = Duration::from_micros(u64::from(i.rto_us));
                self.deadline = now + (2 * rto).max(self.plan.reprobe_every).min(self.plan.window);
                return self.reprobe_or_wait(now);
            }
            let silent = ms(elapsed) - self.base_heard_ms.min(ms(elapsed));
            return Step::Decided(Verdict::Dead(Evidence {
                silent_ms: u64::try_from(silent).unwrap_or(0),
                probes: i.probes,
                forced_probes: self.forced,
                unacked: i.unacked,
                retransmits: i.retransmits,
                retransmitted,
                backoff: i.backoff,
                rto_ms: i.rto_us / 1000,
                repeated,
            }));
        }
        self.reprobe_or_wait(now)
    }

    fn reprobe_or_wait(&mut self, now: Duration) -> Step {
        if self.plan.mode == Mode::Armed && self.plan.reprobe.is_some() && now >= self.next_reprobe
        {
            self.forced += 1;
            self.next_reprobe = now + self.plan.reprobe_every;
            return Step::Reprobe;
        }
        Step::Wait
    }
}
