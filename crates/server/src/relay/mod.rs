//! Relays (issue #18): pushing local streams to other servers and pulling streams from an
//! origin, with the same liveness as every incoming connection.
//!
//! ```text
//!  registry ── StreamChange ──► RelayManager ── spawns ──► supervisor (one task per relay)
//!                                   │ pokes                    │ connect, run, back off
//!                                   ▼                          ▼
//!                              RelayHandle ◄── updates ── RelayConn (ConnCore on the driver)
//!                              (admin API)                push: Viewer → ClientSession
//!                                                         pull: ClientSession → NameHold
//! ```
//!
//! The registry tells the manager when a publisher or viewer comes or goes ([`StreamWatcher`]).
//! A publisher of a name some `[[relay.push]]` matches starts one push per entry; a viewer of a
//! name of a `[[relay.pull]]` app with no local publisher starts the pull. Each relay is a
//! supervisor task (`supervisor`) whose decisions are pure (`policy`), and each of its
//! connections is a sans-IO core (`core`) on the generic driver, in the live table like any
//! connection (protocol `rtmp-push` / `rtmp-pull`), with one close reason. A pull holds its
//! local name across its connections (`hold`), so its players never see it unpublished.
//!
//! Lock order: manager, then registry (the registry calls the watcher with no lock held).

mod attempt;
mod core;
mod driver;
mod hold;
mod policy;
mod pull;
mod push;
mod status;
mod supervisor;
#[cfg(test)]
mod tests;

pub use policy::RelayState;
pub use status::{RelayKind, RelayView};

use crate::config::Config;
use crate::control::Protocol;
use crate::live::LiveTable;
use crate::metrics::Metrics;
use crate::registry::{Registry, StreamChange, StreamWatcher};
use crate::util::lock;
use policy::{Holder, Local, Want};
use status::RelayHandle;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

fn config_ca(config: &Config) -> Option<&std::path::Path> {
    config.relay.ca_file.as_deref()
}

/// What relays share with the rest of the server.
#[derive(Debug)]
pub(crate) struct RelayDeps {
    pub(crate) config: Arc<Config>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) live: Arc<LiveTable>,
    pub(crate) metrics: Arc<Metrics>,
    /// The server's connection ids (relay connections are listed with the others).
    pub(crate) ids: Arc<AtomicU64>,
    /// Cancelled on shutdown: every relay connection's token is a child of it.
    pub(crate) shutdown: CancellationToken,
    /// Set by [`RelayManager::shutdown`] before `shutdown` is cancelled (see `attempt::Stop`).
    pub(crate) stopping: std::sync::atomic::AtomicBool,
    /// TLS for `rtmps://` upstreams (the system's roots and `[relay] ca_file`), or why not.
    pub(crate) tls: Result<Arc<rustls::ClientConfig>, String>,
}

/// Every relay of the server, by local stream.
#[derive(Debug)]
pub struct RelayManager {
    deps: Arc<RelayDeps>,
    me: Weak<RelayManager>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    relays: Mutex<HashMap<String, Vec<Arc<RelayHandle>>>>,
    next_id: AtomicU64,
    /// `[cluster]`: a player's name owned by another node is pulled from it.
    cluster: std::sync::OnceLock<Weak<crate::cluster::Cluster>>,
}

/// The entry number of a pull from the name's owner in the cluster (no `[[relay.pull]]`).
pub(crate) const CLUSTER_ENTRY: usize = usize::MAX;
/// A cluster pull outlives its last player this long.
const CLUSTER_IDLE_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

impl RelayManager {
    /// A manager for `config`'s relays; nothing runs until the registry reports a stream.
    pub fn new(
        config: Arc<Config>,
        registry: Arc<Registry>,
        live: Arc<LiveTable>,
        metrics: Arc<Metrics>,
        ids: Arc<AtomicU64>,
    ) -> Arc<Self> {
        let shutdown = CancellationToken::new();
        // The system's roots are read only when some upstream needs them.
        let wants_tls = config.relay.push.iter().any(|p| p.url.tls())
            || config.relay.pull.iter().any(|p| p.url.tls());
        let tls = if wants_tls {
            crate::tls::client_config(config_ca(&config)).map_err(|e| e.to_string())
        } else {
            Err("no rtmps:// upstream is configured".to_owned())
        };
        Arc::new_cyclic(|me| Self {
            deps: Arc::new(RelayDeps {
                config,
                registry,
                live,
                metrics,
                ids,
                shutdown: shutdown.clone(),
                stopping: std::sync::atomic::AtomicBool::new(false),
                tls,
            }),
            me: me.clone(),
            shutdown,
            tracker: TaskTracker::new(),
            relays: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            cluster: std::sync::OnceLock::new(),
        })
    }

    /// Pulls names another node of `cluster` owns for local players, following their owner.
    pub fn set_cluster(self: &Arc<Self>, cluster: &Arc<crate::cluster::Cluster>) {
        let _ = self.cluster.set(Arc::downgrade(cluster));
        let follower: Arc<dyn crate::cluster::OwnerFollower> = self.clone();
        cluster.set_follower(&follower);
    }

    fn cluster(&self) -> Option<Arc<crate::cluster::Cluster>> {
        self.cluster.get().and_then(Weak::upgrade)
    }

    /// Every relay, by id.
    pub fn list(&self, now: Instant) -> Vec<RelayView> {
        let mut views: Vec<RelayView> = lock(&self.relays)
            .values()
            .flatten()
            .map(|h| h.view(now))
            .collect();
        views.sort_by_key(|v| v.id);
        views
    }

    /// Relays per state, every state included.
    pub fn state_counts(&self) -> Vec<(&'static str, usize)> {
        let mut counts = [0usize; RelayState::ALL.len()];
        for h in lock(&self.relays).values().flatten() {
            if let Some(i) = RelayState::ALL.iter().position(|s| *s == h.state()) {
                counts[i] += 1;
            }
        }
        RelayState::ALL
            .iter()
            .map(|s| s.label())
            .zip(counts)
            .collect()
    }

    /// The token that stops every relay and every connection (see `Server::bind`).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops every relay (their connections end with `shutdown`) and starts no new one.
    pub fn shutdown(&self) {
        self.deps
            .stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.shutdown.cancel();
        self.tracker.close();
    }

    /// Resolves when every relay task has ended (after [`Self::shutdown`]).
    pub async fn wait(&self) {
        self.tracker.wait().await;
    }

    /// Who holds the local stream `key`, and how many watch it.
    fn local(&self, key: &str) -> Local {
        let Some(stream) = self.deps.registry.stream(key) else {
            return Local {
                holder: Holder::Nobody,
                players: 0,
            };
        };
        let snap = stream.snapshot();
        let holder = match snap.publisher.map(|p| p.protocol()) {
            None => Holder::Nobody,
            Some(Protocol::RtmpPull) => Holder::Pull,
            Some(_) => Holder::Local,
        };
        Local {
            holder,
            players: snap.players,
        }
    }

    /// Whether `handle` is still wanted at `now` (see [`policy`]).
    fn wants(&self, handle: &RelayHandle, idle: &mut Option<Instant>, now: Instant) -> Want {
        let local = self.local(&handle.key);
        match handle.kind {
            RelayKind::Push => policy::push_wants(local),
            RelayKind::Pull => policy::pull_wants(local, idle, now, handle.idle_after),
        }
    }

    /// Removes `handle` if it is still not wanted, deciding under the manager's lock so that a
    /// change reported meanwhile either sees it gone (and starts a new one) or keeps it.
    fn retire(&self, handle: &Arc<RelayHandle>, idle: &mut Option<Instant>) -> bool {
        let mut relays = lock(&self.relays);
        if !matches!(self.wants(handle, idle, Instant::now()), Want::Stop(_)) {
            return false;
        }
        remove_from(&mut relays, handle);
        drop(relays);
        tracing::info!(relay = handle.id, stream = %handle.key, "relay stopped: no longer needed");
        // After the lock: letting go of a pull's name tells the watcher, which takes it.
        drop(handle.take_hold());
        true
    }

    fn remove(&self, handle: &Arc<RelayHandle>) {
        remove_from(&mut lock(&self.relays), handle);
        drop(handle.take_hold());
    }

    /// The relay `kind` of entry `entry` for `key`, started unless it runs already.
    fn ensure(
        &self,
        relays: &mut HashMap<String, Vec<Arc<RelayHandle>>>,
        key: &str,
        kind: RelayKind,
        entry: usize,
    ) -> Option<Arc<RelayHandle>> {
        let list = relays.entry(key.to_owned()).or_default();
        if let Some(h) = list.iter().find(|h| h.kind == kind && h.entry == entry) {
            return Some(h.clone());
        }
        if self.shutdown.is_cancelled() {
            return None;
        }
        let (Some(me), Ok(rt)) = (self.me.upgrade(), tokio::runtime::Handle::try_current()) else {
            tracing::warn!(stream = %key, "relay not started: no runtime");
            return None;
        };
        let r = &self.deps.config.relay;
        let (url, idle_after) = match kind {
            RelayKind::Push => (r.push.get(entry)?.url.clone(), std::time::Duration::ZERO),
            RelayKind::Pull if entry == CLUSTER_ENTRY => {
                (self.cluster()?.pull_url(key)?, CLUSTER_IDLE_AFTER)
            }
            RelayKind::Pull => {
                let p = r.pull.get(entry)?;
                (p.url.clone(), p.idle_after)
            }
        };
        let handle = Arc::new(RelayHandle::new(
            self.next_id.fetch_add(1, Ordering::Relaxed),
            kind,
            entry,
            key,
            url,
            idle_after,
            (r.retry_min, r.retry_max),
            Instant::now(),
        ));
        list.push(handle.clone());
        self.tracker
            .spawn_on(supervisor::supervise(me, handle.clone()), &rt);
        Some(handle)
    }
}

fn remove_from(relays: &mut HashMap<String, Vec<Arc<RelayHandle>>>, handle: &Arc<RelayHandle>) {
    if let Some(list) = relays.get_mut(&handle.key) {
        list.retain(|h| !Arc::ptr_eq(h, handle));
        if list.is_empty() {
            relays.remove(&handle.key);
        }
    }
}

impl StreamWatcher for RelayManager {
    fn changed(&self, key: &str, change: StreamChange) {
        let Some((app, name)) = key.split_once('/') else {
            return;
        };
        let config = &self.deps.config.relay;
        let mut relays = lock(&self.relays);
        let mut claim_for = None;
        match change {
            // Pulled streams are never pushed (no relay loops through an edge).
            StreamChange::Published(p) if !p.is_relay() => {
                for (i, push) in config.push.iter().enumerate() {
                    if push.matches(app, name) {
                        self.ensure(&mut relays, key, RelayKind::Push, i);
                    }
                }
            }
            // A viewer comes to a name nobody publishes, or the local publisher of a watched
            // name left: the origin may have it.
            StreamChange::PlayerJoining | StreamChange::Unpublished => {
                let entry = config.pull_for(app).map(|(i, _)| i).or_else(|| {
                    self.cluster()
                        .and_then(|c| c.remote_owner(key))
                        .map(|_| CLUSTER_ENTRY)
                });
                if let Some(i) = entry {
                    let local = self.local(key);
                    let watched = change == StreamChange::PlayerJoining || local.players > 0;
                    if watched && local.holder == Holder::Nobody {
                        claim_for = self.ensure(&mut relays, key, RelayKind::Pull, i);
                    }
                }
            }
            _ => {}
        }
        if let Some(list) = relays.get(key) {
            list.iter().for_each(|h| h.poke());
        }
        relays.retain(|_, list| !list.is_empty());
        drop(relays);
        self.claim_for(key, claim_for);
    }
}

impl RelayManager {
    /// After the lock: a claim is a publish, which the registry reports back to the watcher.
    fn claim_for(&self, key: &str, claim_for: Option<Arc<RelayHandle>>) {
        if let Some(h) = claim_for.filter(|h| !h.holds_current()) {
            match hold::claim(&self.deps, &h, self.shutdown.child_token(), Instant::now()) {
                hold::Claim::Held(held) => h.put_hold(Some(held)),
                hold::Claim::Busy => {}
                hold::Claim::Limit(why) => {
                    tracing::info!(relay = h.id, stream = %key, "pull cannot hold the name: {why}");
                }
            }
        }
    }
}

impl crate::cluster::OwnerFollower for RelayManager {
    fn owner_changed(&self, key: &str, owner: Option<&crate::cluster::ClaimValue>) {
        // The owner went: the pull stays where it is until another node claims the name.
        if owner.is_none() {
            return;
        }
        let Some(cluster) = self.cluster() else {
            return;
        };
        let Some(url) = cluster.pull_url(key) else {
            return;
        };
        let mut relays = lock(&self.relays);
        let running = relays
            .get(key)
            .and_then(|l| {
                l.iter()
                    .find(|h| h.kind == RelayKind::Pull && h.entry == CLUSTER_ENTRY)
            })
            .cloned();
        let mut claim_for = None;
        match running {
            Some(h) => {
                if h.retarget(url) {
                    tracing::info!(relay = h.id, stream = %key, url = %h.masked_url(), "cluster: the name's owner moved");
                }
            }
            None => {
                // Players here wait for a name nobody published: its owner is there now.
                let local = self.local(key);
                let pulled_by_config = key
                    .split_once('/')
                    .is_some_and(|(app, _)| self.deps.config.relay.pull_for(app).is_some());
                if !pulled_by_config && local.players > 0 && local.holder == Holder::Nobody {
                    claim_for = self.ensure(&mut relays, key, RelayKind::Pull, CLUSTER_ENTRY);
                }
            }
        }
        drop(relays);
        self.claim_for(key, claim_for);
    }
}
