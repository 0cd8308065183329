//! The accept loops: socket options on every connection, connection caps shared by both
//! ports, graceful shutdown. The RTMP port runs RTMP connections; the playback port
//! (`[playback]`) runs HTTP ones; both on the same driver, registry and limits.

use crate::config::Config;
use crate::control::{ConnControl, ConnRole, Protocol};
use crate::limits::AcceptLimits;
use crate::shared::Shared;
use crate::transport::Tls;
use rtmp_proto::session::CloseReason;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
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
    playback: Option<TcpListener>,
    rtmps: Option<TcpListener>,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
}

/// What the accept loops share.
struct Accepting {
    shared: Arc<Shared>,
    limits: AcceptLimits,
    tracker: TaskTracker,
    socket_liveness: liveness::SocketLiveness,
    shutdown: CancellationToken,
}

impl Server {
    /// Binds the RTMP listener of `config`, and the playback listener when `[playback]` is on.
    pub async fn bind(config: Config) -> std::io::Result<Self> {
        // The certificate first: a missing or unreadable file is an error naming it, before
        // anything is bound.
        let tls = match (&config.rtmps.cert, &config.rtmps.key) {
            (Some(cert), Some(key)) if config.rtmps.listen.is_some() || config.playback.tls => {
                Some(Arc::new(
                    crate::tls::TlsStore::load(cert, key).map_err(std::io::Error::other)?,
                ))
            }
            _ => None,
        };
        let listener = listen(config.rtmp.listen)?;
        let playback = if config.playback.enabled {
            Some(listen(config.playback.listen)?)
        } else {
            None
        };
        let rtmps = config.rtmps.listen.map(listen).transpose()?;
        let shared = Shared::new(Arc::new(config));
        if let Some(tls) = tls {
            let _ = shared.tls.set(tls);
        }
        if let Some(addr) = playback.as_ref().and_then(|l| l.local_addr().ok()) {
            let _ = shared.playback_addr.set(addr);
        }
        Ok(Self {
            listener,
            playback,
            rtmps,
            // What callers cancel; `run` then stops the relays and every connection at once,
            // through the relays' token, after marking the shutdown (so a push whose local
            // publisher closed first still ends with `shutdown`, not with its stream).
            shutdown: CancellationToken::new(),
            shared,
        })
    }

    /// The RTMP address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The RTMPS address actually bound, when `[rtmps] listen` is set.
    pub fn rtmps_addr(&self) -> Option<std::io::Result<SocketAddr>> {
        self.rtmps.as_ref().map(TcpListener::local_addr)
    }

    /// The playback address actually bound, when `[playback]` is on.
    pub fn playback_addr(&self) -> Option<std::io::Result<SocketAddr>> {
        self.playback.as_ref().map(TcpListener::local_addr)
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
        let stopping = self.shared.relays.shutdown_token();
        self.shared.fanout.spawn(stopping.clone());
        if let Some(cluster) = &self.shared.cluster {
            cluster.start();
        }
        let refusals = self.shared.registry.refusal_log().clone();
        let accepting = Arc::new(Accepting {
            limits: AcceptLimits::new(&self.shared.config.limits, refusals.clone()),
            tracker: TaskTracker::new(),
            socket_liveness: self.shared.config.socket_liveness(),
            shutdown: stopping.clone(),
            shared: self.shared.clone(),
        });
        let flush = refusals.run_flusher();
        let rtmp = accept_loop(
            &accepting,
            &self.listener,
            Protocol::Rtmp,
            false,
            crate::conn::run,
        );
        let playback_tls = self.shared.config.playback.tls;
        let playback = async {
            match &self.playback {
                Some(l) => {
                    accept_loop(
                        &accepting,
                        l,
                        Protocol::Http,
                        playback_tls,
                        crate::playback::run,
                    )
                    .await;
                }
                None => std::future::pending().await,
            }
        };
        let rtmps = async {
            match &self.rtmps {
                Some(l) => accept_loop(&accepting, l, Protocol::Rtmp, true, crate::conn::run).await,
                None => std::future::pending().await,
            }
        };
        let reaper = tokio::spawn(crate::playback::reap_sessions(
            self.shared.clone(),
            stopping.clone(),
        ));
        tokio::select! {
            () = self.shutdown.cancelled() => {}
            () = stopping.cancelled() => {}
            () = rtmp => {}
            () = playback => {}
            () = rtmps => {}
            () = flush => {}
        }
        // Relays end with the connections (reason shutdown), within the same grace.
        self.shared.relays.shutdown();
        let _ = reaper.await;
        accepting.tracker.close();
        let closed = async {
            accepting.tracker.wait().await;
            self.shared.relays.wait().await;
        };
        if tokio::time::timeout(SHUTDOWN_GRACE, closed).await.is_err() {
            tracing::warn!("connections still open after {SHUTDOWN_GRACE:?}; exiting anyway");
        }
        // Our names are free at once for the other nodes (rather than at the lease's expiry).
        if let Some(cluster) = &self.shared.cluster {
            cluster.leave().await;
        }
    }
}

/// Accepts on `listener` forever, running each connection with `run`, through TLS when `tls`.
async fn accept_loop<F, Fut>(
    accepting: &Arc<Accepting>,
    listener: &TcpListener,
    protocol: Protocol,
    tls: bool,
    run: F,
) where
    F: Fn(
        crate::control::LentSocket<Arc<TcpStream>>,
        Arc<ConnControl>,
        Arc<Shared>,
        Option<Box<Tls>>,
    ) -> Fut,
    Fut: Future<Output = CloseReason> + Send + 'static,
{
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning; never fatal.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = accepting.limits.admit(peer, std::time::Instant::now()) else {
            // Close at once, with a reset: the refused peer leaves nothing behind.
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            continue;
        };
        if let Err(e) = prepare(&stream, &accepting.socket_liveness) {
            tracing::warn!(%peer, "socket options not applied: {e}");
        }
        let id = accepting.shared.next_id();
        let control = Arc::new(ConnControl::speaking(
            protocol,
            id,
            peer,
            accepting.shutdown.child_token(),
        ));
        // Shared: a fan-out writer may write to it while the connection's task reads.
        let socket = control.lend(Arc::new(stream));
        let shared = accepting.shared.clone();
        let live = shared.live.insert(control.clone());
        tracing::debug!(conn = id, %peer, protocol = protocol.label(), "accept");
        // The configuration current at accept; a reload applies to later connections.
        let tls = match tls.then(|| shared.tls.get()).flatten() {
            Some(store) => match Tls::server(store.config()) {
                Ok(t) => Some(t),
                Err(reason) => {
                    tracing::warn!(conn = id, %peer, "TLS refused: {reason}");
                    continue;
                }
            },
            None => None,
        };
        // Boxed: a future captured by an async block and awaited there is stored twice in the
        // block's state (once as the capture, once as the awaited value), which made every
        // connection's task 6.3 KiB instead of 3.2.
        let task = Box::pin(run(socket, control.clone(), shared.clone(), tls));
        accepting.tracker.spawn(async move {
            let reason = task.await;
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
            if control.observed().role == ConnRole::Player {
                shared
                    .metrics
                    .record_viewer_close(control.protocol(), &reason);
            }
            drop(permit);
        });
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
