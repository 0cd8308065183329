//! The accept loop: socket options on every connection, a connection cap, graceful shutdown.

use crate::config::Config;
use crate::conn;
use crate::control::ConnControl;
use crate::limits::AcceptLimits;
use crate::shared::Shared;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Accept queue length asked of the kernel.
const LISTEN_BACKLOG: u32 = 4096;
/// How long connections get to close on shutdown before the server stops waiting.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A bound, not yet running server.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
}

impl Server {
    /// Binds the RTMP listener of `config`.
    pub async fn bind(config: Config) -> std::io::Result<Self> {
        let listener = listen(config.rtmp.listen)?;
        Ok(Self {
            listener,
            shared: Shared::new(Arc::new(config)),
            shutdown: CancellationToken::new(),
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A token that stops the server when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// What the connections share (registry, config), for the admin side.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Accepts until the shutdown token is cancelled, then closes every connection
    /// (reason Shutdown) and waits for them, at most [`SHUTDOWN_GRACE`].
    pub async fn run(self) {
        let tracker = TaskTracker::new();
        let refusals = self.shared.registry.refusal_log().clone();
        let limits = AcceptLimits::new(&self.shared.config.limits, refusals.clone());
        let mut flush = tokio::time::interval(Duration::from_secs(1));
        let next_id = AtomicU64::new(1);
        let socket_liveness = self.shared.config.socket_liveness();
        loop {
            let (stream, peer) = tokio::select! {
                () = self.shutdown.cancelled() => break,
                _ = flush.tick() => {
                    refusals.flush(std::time::Instant::now());
                    continue;
                }
                r = self.listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning; never fatal.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let Ok(permit) = limits.admit(peer, std::time::Instant::now()) else {
                // Close at once, with a reset: the refused peer leaves nothing behind.
                let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                continue;
            };
            if let Err(e) = prepare(&stream, &socket_liveness) {
                tracing::warn!(%peer, "socket options not applied: {e}");
            }
            let id = next_id.fetch_add(1, Ordering::Relaxed);
            let control = Arc::new(ConnControl::new(id, peer, self.shutdown.child_token()));
            let socket = control.lend(stream);
            let live = self.shared.live.insert(control.clone());
            let shared = self.shared.clone();
            tracing::debug!(conn = id, %peer, "accept");
            tracker.spawn(async move {
                let reason = conn::run(socket, control.clone(), shared.clone()).await;
                // Leave the table first: a scrape in between then undercounts bytes for an
                // instant instead of counting them twice.
                drop(live);
                let silence = control.last_rx().elapsed();
                shared.metrics.record_close(
                    &reason,
                    silence,
                    control.bytes_in.load(Ordering::Relaxed),
                    control.bytes_out.load(Ordering::Relaxed),
                );
                shared.live.record_close(&control, &reason, silence);
                drop(permit);
            });
        }
        tracker.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("connections still open after {SHUTDOWN_GRACE:?}; exiting anyway");
        }
    }
}

/// Binds `addr` with a deep accept queue: a burst of connections (a thousand idle ones, a
/// reconnect storm) must not overflow it while the accept loop is busy, or the kernel drops the
/// SYNs of everyone, legitimate clients included, for a second or more. The kernel caps it at
/// `net.core.somaxconn`.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

fn prepare(stream: &TcpStream, liveness: &liveness::SocketLiveness) -> Result<(), String> {
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    liveness.apply(stream).map_err(|e| e.to_string())
}
