//! Who may publish or play, for every kind of connection: the static stream key, then the
//! decision hook (awaited by the connection's own driver, which keeps serving its socket and
//! deadlines meanwhile); and the end-of-life notifications every connection sends.

use crate::auth::{Action, Denial};
use crate::control::ConnControl;
use crate::hooks::{AccessRequest, Ended, HookCall, Notice};
use crate::shared::Shared;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// What the peer is told when refused: the details stay in our log.
pub(crate) const DENIED: &str = "Not authorised.";

/// The outcome of asking.
pub(crate) enum Verdict {
    /// Allowed: go on to the registry.
    Granted,
    /// Refused, with the reason for our log.
    Denied(Denial),
    /// The decision hook was asked; await [`PendingHook::answer`].
    Pending(PendingHook),
}

/// A publish or play waiting for its hook.
pub(crate) struct PendingHook {
    /// Publish or play.
    pub(crate) action: Action,
    /// The stream name asked for.
    pub(crate) name: String,
    call: HookCall,
    /// When the hook was asked.
    pub(crate) asked: Instant,
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

/// Steps one and two of a publish or play: the stream key, then the hook.
pub(crate) fn ask(
    shared: &Shared,
    control: &ConnControl,
    action: Action,
    app: &str,
    name: String,
    query: &str,
    now: Instant,
) -> Verdict {
    if let Err(why) = shared.config.auth.check(action, app, &name, query) {
        return Verdict::Denied(why);
    }
    let request = AccessRequest {
        action,
        app,
        stream: &name,
        query,
        client_addr: control.peer,
        conn_id: control.id,
    };
    match shared.hooks.authorize(&request) {
        Some(call) => {
            tracing::debug!(conn = control.id, stream = %name, action = action.label(), "asking the hook");
            Verdict::Pending(PendingHook {
                action,
                name,
                call,
                asked: now,
            })
        }
        None => Verdict::Granted,
    }
}

/// What a connection tells the notification hooks when something it held ends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Held<'a> {
    /// The application.
    pub(crate) app: &'a str,
    /// The stream name, if one was granted.
    pub(crate) stream: Option<&'a str>,
    /// When the publish or play was granted.
    pub(crate) since: Instant,
}

/// Sends `notice` (a publisher or player ended, or the connection closed) for `control`.
pub(crate) fn notify(
    shared: &Shared,
    control: &ConnControl,
    notice: Notice,
    held: Held<'_>,
    reason: &str,
) {
    let since = if notice == Notice::Close {
        control.started
    } else {
        held.since
    };
    shared.hooks.notify(
        notice,
        &Ended {
            app: held.app,
            stream: held.stream,
            client_addr: control.peer,
            conn_id: control.id,
            reason,
            duration: since.elapsed(),
            bytes_in: control.bytes_in.load(Ordering::Relaxed),
            bytes_out: control.bytes_out.load(Ordering::Relaxed),
        },
    );
}
