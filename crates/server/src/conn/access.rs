//! Who may publish or play: the static key check, then the decision hook, awaited inside the
//! connection's select loop (the connection keeps serving its socket and deadlines meanwhile),
//! and the end-of-life notifications.

use super::core::{RtmpConn, Waiting};
use crate::access::{self, DENIED, Verdict};
use crate::auth::{Action, Denial};
use crate::hooks::Notice;
use rtmp_proto::session::CloseReason;
use std::time::Instant;

impl RtmpConn {
    /// Steps one and two of a publish or play: the stream key, then the hook. Granted requests
    /// go on to the registry; a pending hook parks the request in `waiting`.
    pub(super) fn request_access(
        &mut self,
        action: Action,
        name: String,
        query: String,
        now: Instant,
    ) {
        let app = self.session.app().to_owned();
        match access::ask(
            &self.shared,
            &self.control,
            action,
            &app,
            name.clone(),
            &query,
            now,
        ) {
            Verdict::Granted => self.access_granted(action, name, now),
            Verdict::Denied(why) => self.deny(action, &name, &why, now),
            Verdict::Pending(hook) => self.waiting = Waiting::Hook(hook),
        }
    }

    /// The hook answered (or its deadline passed, which is a denial).
    pub(crate) fn hook_answered(&mut self, now: Instant, verdict: Result<(), Denial>) {
        let Waiting::Hook(pending) = std::mem::replace(&mut self.waiting, Waiting::Nothing) else {
            return;
        };
        let waited_ms = now.saturating_duration_since(pending.asked).as_millis();
        match verdict {
            Ok(()) => {
                tracing::debug!(conn = self.control.id, stream = %pending.name, waited_ms, "hook allowed");
                self.access_granted(pending.action, pending.name, now);
            }
            Err(why) => {
                tracing::debug!(conn = self.control.id, waited_ms, "hook denied");
                self.deny(pending.action, &pending.name, &why, now);
            }
        }
        self.settle(now);
    }

    /// Step three: the registry (takeover rules included), which the peer reaches only once
    /// authorised for the name.
    fn access_granted(&mut self, action: Action, name: String, now: Instant) {
        match action {
            Action::Publish => self.on_publish(&name, now),
            Action::Play => self.on_play(&name, now),
        }
        self.record.stream_name = Some(name);
    }

    fn deny(&mut self, action: Action, name: &str, why: &Denial, now: Instant) {
        let app = self.session.app();
        tracing::info!(
            conn = self.control.id, peer = %self.control.peer, stream = %format_args!("{app}/{name}"),
            "{} denied: {why}", action.label()
        );
        match action {
            Action::Publish => self.session.reject_publish(DENIED),
            Action::Play => self.session.reject_play(DENIED),
        }
        self.close_after_refusal(
            CloseReason::Refused(format!("{} not authorised", action.label())),
            now,
        );
    }

    /// A publisher or player ended while the connection goes on (unpublish, stop).
    pub(super) fn notify_done(&self, notice: Notice, reason: &str) {
        access::notify(
            &self.shared,
            &self.control,
            notice,
            self.held_for_hooks(),
            reason,
        );
    }

    /// The connection ended: the done notification of whatever it held, then on_close.
    pub(super) fn notify_closed(&self, (published, played): (bool, bool), reason: &CloseReason) {
        let label = reason.label();
        if published {
            self.notify_done(Notice::PublishDone, label);
        }
        if played {
            self.notify_done(Notice::PlayDone, label);
        }
        self.notify_done(Notice::Close, label);
    }

    fn held_for_hooks(&self) -> access::Held<'_> {
        access::Held {
            app: self.session.app(),
            stream: self.record.stream_name.as_deref(),
            since: self.record.since,
        }
    }
}
