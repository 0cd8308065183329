//! The connection's self-report for the admin API: refreshed each time the task wakes up, from
//! state it already holds, so observing a connection never costs it a syscall.

use super::Conn;
use super::control::{ConnRole, RATES_EVERY};
use rtmp_proto::session::Timer;
use tokio::time::Instant;

impl Conn {
    /// Publishes role, stream, queue depth and deadlines to [`super::ConnControl`], and samples
    /// the throughput once a [`RATES_EVERY`].
    pub(super) fn observe(&mut self, now: Instant) {
        if now >= self.rates_due {
            self.rates_due = now + RATES_EVERY;
            self.control.sample_rates(now.into_std());
        }
        let timers = self.session.timers();
        let role = if self.publisher.is_some() {
            ConnRole::Publisher
        } else if self.player.is_some() {
            ConnRole::Player
        } else if self.role == "idle" {
            // Never granted a publish or play: still setting up (bounded by handshake_timeout).
            ConnRole::Handshaking
        } else {
            ConnRole::Idle
        };
        let ping_timeout = self.shared.config.liveness.ping_timeout;
        // The deadline that closes the connection if nothing changes; a pending ping counts
        // as its own deadline plus the time the peer then has to answer.
        let closing = [
            (Timer::Handshake, "handshake_timeout"),
            (Timer::PublishIdle, "publish_idle"),
            (Timer::PingTimeout, "ping_timeout"),
            (Timer::WriteStall, "play_stall"),
        ]
        .into_iter()
        .filter_map(|(t, reason)| timers.get(t).map(|at| (reason, at)))
        .chain(
            timers
                .get(Timer::PingSend)
                .filter(|_| timers.get(Timer::PingTimeout).is_none())
                .map(|at| ("ping_timeout", at + ping_timeout)),
        )
        .min_by_key(|&(_, at)| at);
        let next = timers.next();
        let fanout_lag = self.player.as_ref().map_or(0, |p| p.rx.len());
        let queue_bytes = self.out.len();
        let last_tx = self.last_tx.into_std();
        self.control.update_observed(|o| {
            o.role = role;
            if o.stream.as_deref() != self.stream_key.as_deref() {
                o.stream.clone_from(&self.stream_key);
            }
            o.last_tx = last_tx;
            o.queue_bytes = queue_bytes;
            o.fanout_lag = fanout_lag;
            o.next = next;
            o.closing = closing;
        });
    }
}
