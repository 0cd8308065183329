//! A playback connection's self-report for the admin API, and its end: the close log line
//! and the hook notifications, as for an RTMP connection.

use super::conn::HttpConn;
use crate::access;
use crate::control::{ConnRole, RATES_EVERY};
use crate::evidence::{CloseLine, Kernel, log_close, refine_timeout};
use crate::hooks::Notice;
use crate::timers::ConnTimer;
use rtmp_proto::session::CloseReason;
use std::time::Instant;

impl HttpConn {
    /// Publishes role, stream, queue depth and deadlines to the connection's handle.
    pub(crate) fn observe(&mut self, now: Instant) {
        if self.timers.due(ConnTimer::RateSample, now) {
            self.timers.set(ConnTimer::RateSample, now + RATES_EVERY);
            self.control.sample_rates(now);
        }
        let role = self.role();
        let closing = [
            (
                ConnTimer::Request,
                if self.served == 0 {
                    CloseReason::HandshakeTimeout.label()
                } else {
                    CloseReason::IdleTimeout.label()
                },
            ),
            (ConnTimer::WriteStall, CloseReason::PlayStall.label()),
        ]
        .into_iter()
        .filter_map(|(t, reason)| Some((reason, self.timers.get(t)?)))
        .min_by_key(|&(_, at)| at);
        let next = self.timers.next_wake().map(|(t, at)| (t.label(), at));
        let fanout_lag = match &self.phase {
            super::conn::Phase::Live(live) => live.viewer.lag(),
            _ => 0,
        };
        let queue_bytes = self.out.len();
        let last_tx = self.last_tx;
        let played = self.played.as_ref().map(|(s, _)| s);
        self.control.update_observed(|o| {
            o.role = role;
            // Formatted only when it changed: this runs on every wake-up.
            let same = match (&o.stream, played) {
                (Some(have), Some(s)) => {
                    have.len() == s.app.len() + 1 + s.name.len()
                        && have.starts_with(s.app.as_str())
                        && have.ends_with(s.name.as_str())
                }
                (None, None) => true,
                _ => false,
            };
            if !same {
                o.stream = played.map(ToString::to_string);
            }
            o.last_tx = last_tx;
            o.queue_bytes = queue_bytes;
            o.fanout_lag = fanout_lag;
            o.next = next;
            o.closing = closing;
        });
    }

    /// Ends the connection: lets go of the stream, logs the close with the kernel's evidence
    /// and sends the notifications. Returns the final reason.
    pub(crate) fn finish(
        &mut self,
        reason: CloseReason,
        kernel: &impl Kernel,
        now: Instant,
    ) -> CloseReason {
        let watched = self.release();
        let info = kernel.tcp_info().ok();
        let reason = refine_timeout(reason, info.as_ref());
        let stream = self.played.as_ref().map(|(s, _)| s.to_string());
        let line = CloseLine {
            role: if self.played.is_some() {
                ConnRole::Player.label()
            } else {
                "idle"
            },
            stream: stream.as_deref(),
            silent: now.saturating_duration_since(self.last_rx),
        };
        log_close(&self.control, line, &reason, info.as_ref());
        let held = self.played.as_ref().map_or(
            access::Held {
                app: "",
                stream: None,
                since: self.control.started,
            },
            |(s, since)| access::Held {
                app: &s.app,
                stream: Some(&s.name),
                since: *since,
            },
        );
        if watched {
            access::notify(
                &self.shared,
                &self.control,
                Notice::PlayDone,
                held,
                reason.label(),
            );
        }
        access::notify(
            &self.shared,
            &self.control,
            Notice::Close,
            held,
            reason.label(),
        );
        reason
    }
}
