//! The accept loop: socket options on every connection, a connection cap, graceful shutdown.

use crate::config::Config;
use crate::conn::{self, ConnControl, Shared};
use crate::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

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
        let listener = TcpListener::bind(config.rtmp.listen).await?;
        let config = Arc::new(config);
        let registry = Arc::new(Registry::new(config.clone()));
        Ok(Self {
            listener,
            shared: Arc::new(Shared { config, registry }),
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
        let slots = Arc::new(Semaphore::new(self.shared.config.limits.max_connections));
        let next_id = AtomicU64::new(1);
        let socket_liveness = self.shared.config.socket_liveness();
        loop {
            let (stream, peer) = tokio::select! {
                () = self.shutdown.cancelled() => break,
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
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                tracing::warn!(%peer, "refused: limits.max_connections reached");
                continue;
            };
            if let Err(e) = prepare(&stream, &socket_liveness) {
                tracing::warn!(%peer, "socket options not applied: {e}");
            }
            let id = next_id.fetch_add(1, Ordering::Relaxed);
            let control = Arc::new(ConnControl::new(id, peer, self.shutdown.child_token()));
            let shared = self.shared.clone();
            tracing::debug!(conn = id, %peer, "accept");
            tracker.spawn(async move {
                conn::run(stream, control, shared).await;
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

fn prepare(stream: &TcpStream, liveness: &liveness::SocketLiveness) -> Result<(), String> {
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    liveness.apply(stream).map_err(|e| e.to_string())
}
