//! What every connection task and the admin side share. The server builds it once and owns
//! it; connections and handlers only borrow it through an `Arc`.

use crate::config::Config;
use crate::fanout::{Shards, WriterConfig};
use crate::hooks::Hooks;
use crate::live::LiveTable;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::relay::RelayManager;
use crate::sessions::HlsSessions;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The server's shared state.
#[derive(Debug)]
pub struct Shared {
    /// The configuration in force.
    pub config: Arc<Config>,
    /// The live streams.
    pub registry: Arc<Registry>,
    /// The live connections, for the admin API.
    pub live: Arc<LiveTable>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// The `[hooks]` client (decisions and end-of-life notifications).
    pub hooks: Arc<Hooks>,
    /// Open HLS sessions.
    pub sessions: HlsSessions,
    /// Pushes and pulls (`[relay]`).
    pub relays: Arc<RelayManager>,
    /// The cluster side (`[cluster]` on), started with the server.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// The next connection (or session) id; relay connections draw theirs here too.
    next_id: Arc<AtomicU64>,
    /// The certificate for RTMPS and HTTPS playback, when configured (reloadable).
    pub tls: std::sync::OnceLock<Arc<crate::tls::TlsStore>>,
    /// The playback listener's address once bound (the dashboard's watch view needs it).
    pub playback_addr: std::sync::OnceLock<std::net::SocketAddr>,
    /// The fan-out writers (one per core) that serve RTMP players.
    pub(crate) fanout: Shards,
}

impl Shared {
    /// Everything a server with `config` starts with (call inside the runtime when `[hooks]`
    /// has notification URLs: their sender task is spawned here).
    pub fn new(config: Arc<Config>) -> Arc<Self> {
        let metrics = Arc::new(Metrics::new());
        let writers = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let fanout = Shards::new(
            writers,
            WriterConfig {
                log_max: config.play.queue_messages,
                max_lag_drops: config.play.max_lag_drops,
            },
            config.play.merging(),
            metrics.clone(),
        );
        let registry = Arc::new(Registry::with_metrics(config.clone(), metrics.clone()));
        let live = Arc::new(LiveTable::default());
        let next_id = Arc::new(AtomicU64::new(1));
        let relays = RelayManager::new(
            config.clone(),
            registry.clone(),
            live.clone(),
            metrics.clone(),
            next_id.clone(),
        );
        let cluster = config.cluster.enabled().then(|| {
            crate::cluster::Cluster::new(config.clone(), registry.clone(), metrics.clone())
        });
        if let Some(c) = &cluster {
            relays.set_cluster(c);
        }
        if config.relay.any() || cluster.is_some() {
            let watcher: Arc<dyn crate::registry::StreamWatcher> = relays.clone();
            registry.set_watcher(&watcher);
        }
        Arc::new(Self {
            fanout,
            registry,
            hooks: Hooks::new(&config.hooks),
            live,
            metrics,
            config,
            sessions: HlsSessions::default(),
            relays,
            cluster,
            next_id,
            playback_addr: std::sync::OnceLock::new(),
            tls: std::sync::OnceLock::new(),
        })
    }

    /// A fresh id for a connection or an HLS session, unique within this server.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The Prometheus text exposition of this server.
    pub fn render_metrics(&self) -> String {
        self.metrics.set_relay_states(self.relays.state_counts());
        self.metrics
            .render(self.live.samples(), self.registry.streams().len())
    }
}
