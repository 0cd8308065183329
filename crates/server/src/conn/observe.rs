//! The connection's self-report for the admin API and its close log: refreshed each time the
//! task wakes up, from state it already holds, so observing a connection never costs it a
//! syscall.

use super::core::{Held, RtmpConn};
use crate::control::{ConnRole, RATES_EVERY};
use crate::evidence::{CloseLine, Kernel, log_close, refine_timeout};
use crate::timers::ConnTimer;
use rtmp_proto::session::{CloseReason, Timer};
use std::time::Instant;

impl RtmpConn {
    /// Publishes role, stream, queue depth and deadlines to the connection's handle, and
    /// samples the throughput once a [`RATES_EVERY`].
    pub(crate) fn observe(&mut self, now: Instant) {
        if self.timers.due(ConnTimer::RateSample, now) {
            self.timers.set(ConnTimer::RateSample, now + RATES_EVERY);
            self.control.sample_rates(now);
        }
        let timers = self.session.timers();
        let role = match self.held {
            Held::Name(_) => ConnRole::Publisher,
            Held::Stream(_) | Held::Seated(_) => ConnRole::Player,
            // Never granted a publish or play: still setting up (bounded by handshake_timeout).
            Held::Nothing if self.record.last_held.is_none() => ConnRole::Handshaking,
            Held::Nothing => ConnRole::Idle,
        };
        let ping_timeout = self.shared.config.liveness.ping_timeout;
        // The deadline that closes the connection if nothing changes; a pending ping counts
        // as its own deadline plus the time the peer then has to answer.
        let closing = [
            Timer::Handshake,
            Timer::PublishIdle,
            Timer::PingTimeout,
            Timer::WriteStall,
        ]
        .into_iter()
        .filter_map(|t| Some((t.close_reason()?.label(), timers.get(t)?)))
        .chain(
            timers
                .get(Timer::PingSend)
                .filter(|_| timers.get(Timer::PingTimeout).is_none())
                .map(|at| (CloseReason::PingTimeout.label(), at + ping_timeout)),
        )
        .min_by_key(|&(_, at)| at);
        let next = timers.next().map(|(t, at)| (t.label(), at));
        let fanout_lag = match &self.held {
            Held::Stream(v) => v.lag(),
            Held::Seated(s) => s.lag(),
            _ => 0,
        };
        let queue_bytes = self.out.len()
            + match &self.held {
                Held::Seated(s) => s.queued(),
                _ => 0,
            };
        let last_tx = self.record.last_tx;
        let stream = self.record.stream_key.as_deref();
        self.control.update_observed(|o| {
            o.role = role;
            if o.stream.as_deref() != stream {
                o.stream = stream.map(str::to_owned);
            }
            o.last_tx = last_tx;
            o.queue_bytes = queue_bytes;
            o.fanout_lag = fanout_lag;
            o.next = next;
            o.closing = closing;
        });
    }

    /// Ends the connection: frees what it held (the name first), splits a kernel timeout
    /// into keepalive or user timeout, logs the close with the peer's silence and the
    /// kernel's evidence, and sends the hook notifications. Returns the final reason.
    pub(crate) fn finish(
        &mut self,
        reason: CloseReason,
        kernel: &impl Kernel,
        now: Instant,
    ) -> CloseReason {
        let ended = self.release();
        let info = kernel.tcp_info().ok();
        let reason = refine_timeout(reason, info.as_ref());
        let line = CloseLine {
            // The last role held: "idle" if none was ever granted.
            role: self.record.last_held.map_or("idle", ConnRole::label),
            stream: self.record.stream_key.as_deref(),
            silent: now.saturating_duration_since(self.session.last_rx()),
        };
        log_close(&self.control, line, &reason, info.as_ref());
        self.notify_closed(ended, &reason);
        reason
    }
}
