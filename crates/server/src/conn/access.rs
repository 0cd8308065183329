//! Who may publish or play: the static key check, then the decision hook, awaited inside the
//! connection's select loop (the connection keeps serving its socket and deadlines meanwhile),
//! and the end-of-life notifications.

use super::{Conn, REFUSAL_LINGER};
use crate::auth::Action;
use crate::hooks::{AccessRequest, Ended, HookCall, Notice};
use rtmp_proto::session::CloseReason;
use std::sync::atomic::Ordering;
use tokio::time::Instant;

/// What the peer is told when refused: the details stay in our log.
const DENIED: &str = "Not authorised.";

/// A publish or play waiting for its hook.
pub(super) struct PendingHook {
    action: Action,
    name: String,
    call: HookCall,
    asked: Instant,
}

/// Resolves with the pending hook's answer (never, without one).
pub(super) async fn wait_hook(hook: &mut Option<PendingHook>) -> Result<(), String> {
    match hook {
        Some(h) => h.call.as_mut().await,
        None => std::future::pending().await,
    }
}

impl Conn {
    /// Steps one and two of a publish or play: the stream key, then the hook. Granted requests
    /// go on to the registry; a pending hook parks the request in `self.hook`.
    pub(super) fn request_access(&mut self, action: Action, name: String, query: String) {
        let app = self.session.app().to_owned();
        if let Err(why) = self.shared.config.auth.check(action, &app, &name, &query) {
            self.deny(action, &name, &format!("stream key: {why}"));
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
                self.hook = Some(PendingHook {
                    action,
                    name,
                    call,
                    asked: Instant::now(),
                });
            }
            None => self.access_granted(action, name),
        }
    }

    /// The hook answered (or its deadline passed, which is a denial).
    pub(super) fn hook_answered(&mut self, verdict: Result<(), String>) {
        let Some(pending) = self.hook.take() else {
            return;
        };
        let waited_ms = pending.asked.elapsed().as_millis();
        match verdict {
            Ok(()) => {
                tracing::debug!(conn = self.control.id, stream = %pending.name, waited_ms, "hook allowed");
                self.access_granted(pending.action, pending.name);
            }
            Err(why) => {
                tracing::debug!(conn = self.control.id, waited_ms, "hook denied");
                self.deny(pending.action, &pending.name, &why);
            }
        }
    }

    /// Step three: the registry (takeover rules included), which the peer reaches only once
    /// authorised for the name.
    fn access_granted(&mut self, action: Action, name: String) {
        match action {
            Action::Publish => self.on_publish(&name),
            Action::Play => self.on_play(&name),
        }
        self.stream_name = Some(name);
    }

    fn deny(&mut self, action: Action, name: &str, why: &str) {
        let app = self.session.app();
        tracing::info!(
            conn = self.control.id, peer = %self.control.peer, stream = %format_args!("{app}/{name}"),
            "{} denied: {why}", action.label()
        );
        match action {
            Action::Publish => self.session.reject_publish(DENIED),
            Action::Play => self.session.reject_play(DENIED),
        }
        self.closing = Some((
            CloseReason::Refused(format!("{} not authorised", action.label())),
            Instant::now() + REFUSAL_LINGER,
        ));
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
            self.role_since.into_std()
        };
        Ended {
            app: self.session.app(),
            stream: self.stream_name.as_deref(),
            client_addr: self.control.peer,
            conn_id: self.control.id,
            reason,
            duration: since.elapsed(),
            bytes_in: self.control.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.control.bytes_out.load(Ordering::Relaxed),
        }
    }
}
