//! One connection attempt of a relay: resolve and connect within `handshake_timeout`, give the
//! socket the `[liveness]` options every accepted socket gets, lend it to the admin API, drive
//! the core to its end, and account for the close as the accept loop does for its own.

use super::RelayDeps;
use super::core::RelayConn;
use super::status::RelayHandle;
use crate::control::ConnControl;
use crate::evidence::io_reason;
use crate::util::lock;
use rtmp_proto::session::CloseReason;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// How the supervisor ends an attempt early (the relay is no longer wanted, or shutdown):
/// the reason reaches the connection's own `ConnControl`, so it ends with exactly that one.
#[derive(Debug)]
pub(super) struct Stop {
    token: CancellationToken,
    reason: Mutex<Option<CloseReason>>,
    current: Mutex<Option<Arc<ConnControl>>>,
}

impl Stop {
    /// A stop signal that also fires when `parent` (the server's shutdown) does.
    pub(super) fn new(parent: &CancellationToken) -> Self {
        Self {
            token: parent.child_token(),
            reason: Mutex::new(None),
            current: Mutex::new(None),
        }
    }

    /// Whether the attempt is being stopped: by [`Self::stop`], or by the server's shutdown,
    /// whose flag is set before any token is cancelled. The flag, not the token: cancelling
    /// a tree marks the children first and the parent last, so the publisher's connection can
    /// end (on the other core) before this attempt's token or its parent reads as cancelled.
    fn stopping(&self, deps: &RelayDeps) -> bool {
        self.token.is_cancelled() || deps.stopping.load(Ordering::SeqCst)
    }

    /// Ends the attempt with `reason` (the first reason given wins).
    pub(super) fn stop(&self, reason: CloseReason) {
        lock(&self.reason).get_or_insert(reason.clone());
        if let Some(c) = lock(&self.current).as_ref() {
            c.close(reason);
        }
        self.token.cancel();
    }

    fn reason(&self) -> CloseReason {
        lock(&self.reason).clone().unwrap_or(CloseReason::Shutdown)
    }

    fn attach(&self, control: &Arc<ConnControl>) {
        *lock(&self.current) = Some(control.clone());
        if let Some(r) = lock(&self.reason).clone() {
            control.close(r);
        }
    }
}

/// Runs one attempt of `handle` to its end; returns its one close reason.
pub(super) async fn run(
    deps: &Arc<RelayDeps>,
    handle: &Arc<RelayHandle>,
    stop: &Stop,
) -> CloseReason {
    let started = Instant::now();
    let deadline = started + deps.config.liveness.handshake_timeout;
    let url = handle.url();
    let connect = connect(url.host(), url.port());
    let stream = tokio::select! {
        biased;
        () = stop.token.cancelled() => return failed(deps, handle, stop.reason(), "stopped while connecting"),
        r = tokio::time::timeout_at(deadline.into(), connect) => match r {
            Ok(Ok(s)) => s,
            Ok(Err((reason, why))) => return failed(deps, handle, reason, &why),
            Err(_) => return failed(deps, handle, CloseReason::HandshakeTimeout, "TCP connect not done within handshake_timeout"),
        },
    };
    if let Err(e) = stream
        .set_nodelay(true)
        .map_err(|e| e.to_string())
        .and_then(|()| {
            deps.config
                .socket_liveness()
                .apply(&stream)
                .map_err(|e| e.to_string())
        })
    {
        tracing::warn!(relay = handle.id, "socket options not applied: {e}");
    }
    let peer = stream
        .peer_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], handle.url().port())));
    let id = deps.ids.fetch_add(1, Ordering::Relaxed);
    let control = Arc::new(ConnControl::speaking(
        handle.kind.protocol(),
        id,
        peer,
        stop.token.child_token(),
    ));
    stop.attach(&control);
    handle.connected(control.clone());
    let socket = control.lend(Arc::new(stream));
    let live = deps.live.insert(control.clone());
    tracing::debug!(conn = id, relay = handle.id, %peer, url = %handle.masked_url(), "relay connected");
    let mut core = RelayConn::new(
        deps.clone(),
        handle.clone(),
        control.clone(),
        Instant::now(),
        deadline,
    );
    let tls = if handle.url().tls() {
        match deps.tls.as_ref() {
            Ok(config) => {
                match crate::transport::Tls::client(config.clone(), handle.url().host()) {
                    Ok(t) => Some(t),
                    Err(reason) => return failed(deps, handle, reason, "TLS"),
                }
            }
            Err(why) => {
                let reason = CloseReason::ProtocolError(format!("TLS: {why}"));
                return failed(deps, handle, reason, "TLS");
            }
        }
    } else {
        None
    };
    let reason = match crate::driver::drive_over(&socket, tls, &mut core).await {
        // The local stream ended because the server is stopping: that is the reason.
        CloseReason::Completed if stop.stopping(deps) => stop.reason(),
        reason => reason,
    };
    let reason = core.finish(reason, &**socket, Instant::now());
    if reason.wants_reset() {
        // Abortive close: RST now instead of retransmitting into the void.
        let _ = socket2::SockRef::from(&**socket).set_linger(Some(Duration::ZERO));
    }
    drop(core);
    drop(socket);
    drop(live);
    let silence = control.last_rx().elapsed();
    deps.metrics.record_close(
        &reason,
        silence,
        control.bytes_in.load(Ordering::Relaxed),
        control.bytes_out.load(Ordering::Relaxed),
    );
    deps.live.record_close(&control, &reason, silence);
    deps.metrics.record_relay_close(&reason);
    reason
}

/// An attempt that never got a connection: logged and counted like a close.
fn failed(deps: &RelayDeps, handle: &RelayHandle, reason: CloseReason, why: &str) -> CloseReason {
    tracing::info!(
        relay = handle.id, kind = ?handle.kind, stream = %handle.key, url = %handle.masked_url(),
        reason = %reason, why, "relay connect failed"
    );
    deps.metrics.record_relay_close(&reason);
    reason
}

/// Resolves `host` and connects to the first address that answers.
async fn connect(host: &str, port: u16) -> Result<TcpStream, (CloseReason, String)> {
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| {
                (
                    CloseReason::PeerUnreachable,
                    format!("cannot resolve {host}: {e}"),
                )
            })?
            .collect(),
    };
    let mut last = (
        CloseReason::PeerUnreachable,
        format!("no address for {host}"),
    );
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => last = (io_reason(&e, false), format!("connect to {addr}: {e}")),
        }
    }
    Err(last)
}
