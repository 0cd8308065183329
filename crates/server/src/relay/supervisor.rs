//! One tokio task per relay: look whether it is wanted, connect, run, back off, again — until
//! the local stream no longer needs it or the server shuts down. Every wait is a back-off step
//! of at least 80 % of `retry_min`, so a relay that fails at once never spins. The decisions are
//! [`super::policy`]'s; this only sleeps and wakes.

use super::RelayManager;
use super::attempt::{self, Stop};
use super::policy::{RandomJitter, Want};
use super::status::RelayHandle;
use crate::util::millis;
use std::sync::Arc;
use std::time::Instant;

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// The deadline a [`Want::Run`] waits for (a pull's `idle_after`), if any.
fn wake_at(want: &Want) -> Option<Instant> {
    match want {
        Want::Run(at) => *at,
        Want::Stop(_) => None,
    }
}

/// Runs `handle` until it is retired.
pub(super) async fn supervise(manager: Arc<RelayManager>, handle: Arc<RelayHandle>) {
    let mut jitter = RandomJitter;
    let mut idle = None;
    let shutdown = manager.shutdown.clone();
    tracing::info!(relay = handle.id, kind = ?handle.kind, stream = %handle.key, url = %handle.masked_url(), "relay started");
    loop {
        if shutdown.is_cancelled() {
            return manager.remove(&handle);
        }
        let mut want = manager.wants(&handle, &mut idle, Instant::now());
        if matches!(want, Want::Stop(_)) {
            if manager.retire(&handle, &mut idle) {
                return;
            }
            continue;
        }
        handle.connecting(Instant::now());
        // This attempt goes to the current URL: a move before it is no reason to stop it.
        handle.take_moved();
        let stop = Stop::new(&shutdown);
        let attempt = attempt::run(&manager.deps, &handle, &stop);
        tokio::pin!(attempt);
        let mut moved = false;
        let reason = loop {
            tokio::select! {
                reason = &mut attempt => break reason,
                () = handle.poked() => {}
                () = until(wake_at(&want)) => {}
            }
            want = manager.wants(&handle, &mut idle, Instant::now());
            if let Want::Stop(reason) = &want {
                // A local stream that ended because the server is stopping ended with it.
                let stopping = manager
                    .deps
                    .stopping
                    .load(std::sync::atomic::Ordering::SeqCst);
                stop.stop(if stopping {
                    rtmp_proto::session::CloseReason::Shutdown
                } else {
                    reason.clone()
                });
            } else if handle.take_moved() {
                // A cluster pull's name moved to another node: reconnect there (the local
                // name stays held meanwhile, so the players keep waiting on a live stream).
                tracing::info!(relay = handle.id, stream = %handle.key, url = %handle.masked_url(), "the name moved: the pull follows it");
                stop.stop(rtmp_proto::session::CloseReason::TakenOver);
                moved = true;
            }
        };
        let now = Instant::now();
        let mut wait = handle.ended(&reason, now, &mut jitter);
        if moved {
            // Not a failure: the new owner is there now (one move per etcd event, no spin).
            wait = std::time::Duration::ZERO;
        }
        if shutdown.is_cancelled() {
            return manager.remove(&handle);
        }
        tracing::info!(
            relay = handle.id, stream = %handle.key, reason = %reason,
            retry_in_ms = millis(wait), "relay ended"
        );
        let retry_at = now + wait;
        loop {
            want = manager.wants(&handle, &mut idle, Instant::now());
            if matches!(want, Want::Stop(_)) && manager.retire(&handle, &mut idle) {
                return;
            }
            if handle.take_moved() {
                // A cluster pull's name moved while we waited: try the new owner now.
                break;
            }
            tokio::select! {
                () = tokio::time::sleep_until(retry_at.into()) => break,
                () = handle.poked() => {}
                () = until(wake_at(&want)) => {}
                () = shutdown.cancelled() => return manager.remove(&handle),
            }
        }
    }
}
