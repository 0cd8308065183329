//! Suspicion rules: which sockets look like they have a dead peer, from kernel evidence only.
//!
//! The rules (documented for operators in docs/ops.md) are deliberately simple so that a human
//! can check them against `ss -tonpi`:
//! * `no-ack`: data is in flight (`unacked > 0`) and nothing ACK-bearing arrived for longer
//!   than `no_ack` — a live peer acknowledges within an RTT or so;
//! * `backoff`: the retransmission timer backed off at least `backoff` times in a row
//!   (RTO ≥ 200 ms × 2^backoff: the peer has been silent for seconds);
//! * `probes`: keepalive or zero-window probes are unanswered (`probes ≥ 1`) and nothing
//!   arrived for longer than `no_ack` — a live peer answers a probe within an RTT.
//!
//! Listening and TIME-WAIT sockets are never suspected.

use crate::TcpState;
use crate::diag::SocketEntry;
use serde::Serialize;
use std::time::Duration;

/// Thresholds of the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Thresholds {
    /// Silence (no ACK received) that counts as suspicious while data or probes are outstanding.
    pub no_ack: Duration,
    /// Retransmission back-off exponent that counts as suspicious on its own.
    pub backoff: u8,
}

impl Default for Thresholds {
    /// 10 s without an ACK while data is in flight, or 5 back-offs (≥ 6.2 s of silence).
    fn default() -> Self {
        Self {
            no_ack: Duration::from_secs(10),
            backoff: 5,
        }
    }
}

/// Why a socket is suspected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "rule", rename_all = "kebab-case")]
pub enum Reason {
    /// Data in flight, no ACK for `last_ack_recv_ms`.
    NoAck {
        /// Unacknowledged segments.
        unacked: u32,
        /// ms since the last ACK.
        last_ack_recv_ms: u32,
    },
    /// Retransmission back-off reached the threshold.
    Backoff {
        /// Back-off exponent.
        backoff: u8,
    },
    /// Unanswered keepalive or zero-window probes.
    Probes {
        /// Outstanding probes.
        probes: u8,
        /// ms since the last ACK.
        last_ack_recv_ms: u32,
    },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::NoAck {
                unacked,
                last_ack_recv_ms,
            } => write!(
                f,
                "no-ack: {unacked} segment(s) in flight, no ACK for {:.1} s",
                f64::from(*last_ack_recv_ms) / 1000.0
            ),
            Reason::Backoff { backoff } => {
                write!(f, "backoff: retransmission backed off {backoff} times")
            }
            Reason::Probes {
                probes,
                last_ack_recv_ms,
            } => write!(
                f,
                "probes: {probes} probe(s) unanswered, nothing received for {:.1} s",
                f64::from(*last_ack_recv_ms) / 1000.0
            ),
        }
    }
}

/// Applies the rules to one socket; an empty list means "no evidence of a dead peer".
pub fn judge(e: &SocketEntry, t: &Thresholds) -> Vec<Reason> {
    let mut out = Vec::new();
    if matches!(e.state, TcpState::Listen | TcpState::TimeWait) {
        return out;
    }
    let Some(i) = &e.tcp_info else { return out };
    let silent = u128::from(i.last_ack_recv_ms) > t.no_ack.as_millis();
    if i.unacked > 0 && silent {
        out.push(Reason::NoAck {
            unacked: i.unacked,
            last_ack_recv_ms: i.last_ack_recv_ms,
        });
    }
    if i.backoff >= t.backoff {
        out.push(Reason::Backoff { backoff: i.backoff });
    }
    if i.probes >= 1 && silent {
        out.push(Reason::Probes {
            probes: i.probes,
            last_ack_recv_ms: i.last_ack_recv_ms,
        });
    }
    out
}
