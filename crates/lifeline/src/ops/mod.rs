//! Ops toolkit subcommands: `keepalive …` and `sockets …`, for any process on this host.
//!
//! Everything here acts on the caller's network namespace (run it under
//! `nsenter -t PID -n` to act on a container's). Failures the kernel reports for lack of
//! privileges are returned as errors, so the process exits non-zero.

mod keepalive;
mod probe;
mod probe_report;
mod sockets;

pub(crate) use keepalive::{KeepaliveCommand, run_keepalive};
pub(crate) use sockets::{SocketsArgs, run_sockets};

use std::time::Duration;

/// Seconds with millisecond precision, for humans.
fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{s:.3} s")
    }
}

/// `1 h 2 min 3 s` rendering of long durations next to the seconds.
fn human(d: Duration) -> String {
    let t = d.as_secs();
    if t < 60 {
        return secs(d);
    }
    let (h, m, s) = (t / 3600, (t % 3600) / 60, t % 60);
    let long = match (h, m, s) {
        (0, m, 0) => format!("{m} min"),
        (0, m, s) => format!("{m} min {s} s"),
        (h, m, s) => format!("{h} h {m} min {s} s"),
    };
    format!("{} ({long})", secs(d))
}
