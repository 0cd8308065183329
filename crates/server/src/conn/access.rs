//! Who may publish or play: the static key check, then the decision hook, awaited inside the
//! connection's select loop (the connection keeps serving its socket and deadlines meanwhile),
//! and the end-of-life notifications.

use super::core::{RtmpConn, Waiting};
use crate::auth::{Action, Denial};
use crate::hooks::{AccessRequest, Ended, HookCall, Notice};
use rtmp_proto::session::CloseReason;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// What the peer is told when refused: the details stay in our log.
const DENIED: &str = "Not authorised.";

/// A publish or play waiting for its hook.
pub(crate) struct PendingHook {
    action: Action,
    name: String,
    call: HookCall,
    asked: Instant,
}

impl std::fmt::Debug for PendingHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingHook")
            .field("action", &self.action)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl PendingHook {
    /// Resolves with the hook's answer, within `[hooks] timeout` (for the driver to await).
    pub(crate) async fn answer(&mut self) -> Result<(), Denial> {
        self.call.as_mut().await
    }
}

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
        if let Err(why) = self.shared.config.auth.check(action, &app, &name, &query) {
            self.deny(action, &name, &why, now);
            return;
        }
        let request = AccessRequest {
            action,
            app: &app,
            stream: &name,
            query: &query,
            client_addr: self.control.peer,
            conn_id: self.control.id,
        };
        match self.shared.hooks.authorize(&request) {
            Some(call) => {
                tracing::debug!(conn = self.control.id, stream = %name, action = action.label(), "asking the hook");
                self.waiting = Waiting::Hook(PendingHook {
                    action,
                    name,
                    call,
                    asked: now,
                });
            }
            None => self.access_granted(action, name, now),
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
        self.shared.hooks.notify(notice, &self.ended(reason, false));
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
        self.shared
            .hooks
            .notify(Notice::Close, &self.ended(label, true));
    }

    fn ended<'a>(&'a self, reason: &'a str, whole_connection: bool) -> Ended<'a> {
        let since = if whole_connection {
            self.control.started
        } else {
            self.record.since
        };
        Ended {
            app: self.session.app(),
            stream: self.record.stream_name.as_deref(),
            client_addr: self.control.peer,
            conn_id: self.control.id,
            reason,
            duration: since.elapsed(),
            bytes_in: self.control.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.control.bytes_out.load(Ordering::Relaxed),
        }
    }
}
