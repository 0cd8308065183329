//! `[cluster]`: one publisher per stream name across several Lifeline nodes, through etcd
//! (docs/cluster.md).
//!
//! * The lease keeper task ([`lease`]) holds this node's etcd lease and fences: when no renewal
//!   was acknowledged for long enough that the lease *could* expire on etcd's side, every local
//!   publisher is stopped (`cluster_lease_lost`) first.
//! * A publish claims `{prefix}/streams/{app}/{name}` under the lease, create-if-absent
//!   ([`Cluster::claim`]); a name another node holds is refused (`reject`) or its holder is asked
//!   to challenge its publisher through a challenge key ([`claim::Asking`], [`challenge`]).
//! * The watch task keeps a view of every claim and node (the admin API, the players' pulls from
//!   the owner) and answers the challenges put for our names.
//! * A claim is released when the last local connection that relied on it is gone.

mod challenge;
mod claim;
mod etcd;
mod lease;
mod renew;
mod watching;

pub use claim::{ClaimValue, Refusal};
pub use etcd::EtcdError;

use crate::config::{Config, RelayUrl};
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::util::lock;
use claim::{AskStep, Asking, Key, Keys, Owner, owner};
use etcd::{Created, Etcd, WatchEvent};
use lease::{Keeper, Step};
use rtmp_proto::session::CloseReason;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// Told when the owner of a name moves to another node (or goes), so that a pull from the old
/// owner follows it (the relay manager).
pub trait OwnerFollower: Send + Sync + std::fmt::Debug {
    /// `key`'s claim is now `owner`'s (another node's), or nobody's.
    fn owner_changed(&self, key: &str, owner: Option<&ClaimValue>);
}

/// What the node knows of one local name.
#[derive(Debug, Default)]
struct LocalClaim {
    /// Local connections relying on the claim (asking, or publishing under it).
    refs: usize,
    /// The claim in etcd: its create revision and the lease epoch it was made under.
    held: Option<(i64, u64)>,
}

/// What the watch shows of etcd.
#[derive(Debug, Default)]
struct View {
    owners: HashMap<String, ClaimValue>,
    nodes: HashMap<String, ClaimValue>,
    /// Whether the watch is connected.
    watching: bool,
}

/// The cluster side of a node.
#[derive(Debug)]
pub struct Cluster {
    node: String,
    advertise: String,
    config: Arc<Config>,
    etcd: Etcd,
    keys: Keys,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    me: Weak<Cluster>,
    keeper: Mutex<Keeper>,
    claims: Mutex<HashMap<String, LocalClaim>>,
    view: Mutex<View>,
    /// Names whose challenge this node is answering (one answer at a time per name).
    answering: Mutex<HashSet<String>>,
    /// Serialises the create and the release of claims (never held across a wait).
    ops: tokio::sync::Mutex<()>,
    follower: OnceLock<Weak<dyn OwnerFollower>>,
    /// A new lease after a fence: the watch may have been cut with us, read afresh.
    rejoined: tokio::sync::Notify,
    shutdown: CancellationToken,
}

/// The host name (`/proc/sys/kernel/hostname`), the default node name.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "lifeline".to_owned())
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn unavailable(e: &EtcdError) -> Refusal {
    Refusal::Unavailable(e.to_string())
}

impl Cluster {
    /// The cluster side of a node with `config` (`[cluster]` on); its tasks start with
    /// [`Self::start`].
    pub fn new(config: Arc<Config>, registry: Arc<Registry>, metrics: Arc<Metrics>) -> Arc<Self> {
        let c = &config.cluster;
        let node = if c.node.is_empty() {
            host_name()
        } else {
            c.node.clone()
        };
        let advertise = if c.advertise.is_empty() {
            let l = config.rtmp.listen;
            if l.ip().is_unspecified() {
                format!("rtmp://{}:{}", host_name(), l.port())
            } else {
                format!("rtmp://{l}")
            }
        } else {
            c.advertise.trim_end_matches('/').to_owned()
        };
        let now = Instant::now();
        Arc::new_cyclic(|me| Self {
            node,
            advertise,
            etcd: Etcd::new(&c.etcd),
            keys: Keys::new(c.prefix()),
            keeper: Mutex::new(Keeper::new(c.lease_ttl, now)),
            config: config.clone(),
            registry,
            metrics,
            me: me.clone(),
            claims: Mutex::new(HashMap::new()),
            view: Mutex::new(View::default()),
            answering: Mutex::new(HashSet::new()),
            ops: tokio::sync::Mutex::new(()),
            follower: OnceLock::new(),
            rejoined: tokio::sync::Notify::new(),
            shutdown: CancellationToken::new(),
        })
    }

    /// Tells `follower` of owner changes from now on (once).
    pub fn set_follower(&self, follower: &Arc<dyn OwnerFollower>) {
        let _ = self.follower.set(Arc::downgrade(follower));
    }

    /// Starts the lease keeper and the watch (inside the runtime).
    pub fn start(self: &Arc<Self>) {
        tracing::info!(node = %self.node, advertise = %self.advertise, etcd = ?self.config.cluster.etcd, "cluster: joining");
        tokio::spawn(self.clone().keep_lease());
        tokio::spawn(self.clone().watch_loop());
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The lease we may publish under now, and its epoch.
    fn lease(&self) -> Option<(i64, u64)> {
        lock(&self.keeper).valid(Instant::now())
    }

    /// Whether a claim made in `epoch` is still one we may publish under.
    fn epoch_valid(&self, epoch: u64) -> bool {
        self.lease().is_some_and(|(_, e)| e == epoch)
    }

    fn value(&self) -> Vec<u8> {
        ClaimValue {
            node: self.node.clone(),
            advertise: self.advertise.clone(),
            since: unix_ms(),
        }
        .to_bytes()
    }

    /// The owner of `key` another node advertises, for a player here (none when the name is
    /// ours or free).
    pub fn remote_owner(&self, key: &str) -> Option<ClaimValue> {
        lock(&self.view)
            .owners
            .get(key)
            .filter(|v| v.node != self.node)
            .cloned()
    }

    /// The RTMP URL a player here pulls `key` from (the owner's advertised URL), if another
    /// node owns it.
    pub fn pull_url(&self, key: &str) -> Option<RelayUrl> {
        let owner = self.remote_owner(key)?;
        let (app, _) = key.split_once('/')?;
        RelayUrl::parse(&format!("{}/{app}/{{name}}", owner.advertise)).ok()
    }

    // ---- claims: the newcomer's side ----

    /// Claims `key` (`app/name`) for a local publisher: the answer comes on the receiver; the
    /// [`ClaimRef`] keeps the claim for as long as the connection holds it.
    pub fn claim(
        self: &Arc<Self>,
        key: &str,
    ) -> (ClaimRef, oneshot::Receiver<Result<u64, Refusal>>) {
        lock(&self.claims).entry(key.to_owned()).or_default().refs += 1;
        let claim = ClaimRef {
            cluster: self.clone(),
            key: key.to_owned(),
            epoch: OnceLock::new(),
        };
        let (tx, rx) = oneshot::channel();
        let me = self.clone();
        let key = key.to_owned();
        tokio::spawn(async move {
            let started = Instant::now();
            let result = me.acquire(&key).await;
            let waited_ms = started.elapsed().as_millis();
            match &result {
                Ok(_) => tracing::info!(stream = %key, waited_ms, "cluster: claim held"),
                Err(why) => {
                    tracing::info!(stream = %key, waited_ms, "cluster: claim refused: {why}")
                }
            }
            let granted = result.is_ok();
            if tx.send(result).is_err() && granted {
                // The connection went while we claimed: nobody relies on the claim.
                me.release(&key).await;
            }
        });
        (claim, rx)
    }

    async fn acquire(&self, key: &str) -> Result<u64, Refusal> {
        let stream_key = self.keys.stream(key);
        let mut asking: Option<Asking> = None;
        loop {
            let Some((lease, epoch)) = self.lease() else {
                return Err(Refusal::Unavailable(
                    "this node holds no etcd lease".to_owned(),
                ));
            };
            let interval = lock(&self.keeper).times.interval;
            let ops = self.ops.lock().await;
            let created = self
                .etcd
                .create(&stream_key, &self.value(), lease, Instant::now() + interval)
                .await
                .map_err(|e| unavailable(&e))?;
            let kv = match created {
                Created::Yes(rev) => {
                    self.hold(key, rev, epoch);
                    drop(ops);
                    self.done_asking(key, asking.is_some(), true).await;
                    return Ok(epoch);
                }
                Created::Exists(kv) => kv,
            };
            match owner(Some(&kv), &self.node, lease) {
                Owner::Ours => {
                    self.hold(key, kv.create_revision, epoch);
                    drop(ops);
                    self.done_asking(key, asking.is_some(), true).await;
                    return Ok(epoch);
                }
                Owner::Stale { create_revision } => {
                    // Ours from an older lease: no publisher of ours relies on it any more.
                    let _ = self
                        .etcd
                        .delete_if(&stream_key, create_revision, Instant::now() + interval)
                        .await;
                    continue;
                }
                Owner::Free => continue,
                Owner::Other(holder) => {
                    drop(ops);
                    let now = Instant::now();
                    let ask = match asking.take() {
                        Some(a) => a,
                        None => {
                            let a = Asking::start(key, &holder, &self.config.publish, now)
                                .inspect_err(|_| {
                                    self.metrics.record_cluster_challenge("refused")
                                })?;
                            tracing::info!(stream = %key, owner = %holder.node, "cluster: asking the owner's node to challenge its publisher");
                            self.etcd
                                .put(
                                    &self.keys.challenge(key, &self.node),
                                    &self.value(),
                                    lease,
                                    now + interval,
                                )
                                .await
                                .map_err(|e| unavailable(&e))?;
                            a
                        }
                    };
                    match self.poll_asking(key, &ask).await {
                        AskStep::Claim => asking = Some(ask),
                        AskStep::Granted => {
                            self.done_asking(key, true, true).await;
                            return Ok(epoch);
                        }
                        AskStep::Refused(r) => {
                            self.done_asking(key, true, false).await;
                            return Err(r);
                        }
                        AskStep::Poll(_) => asking = Some(ask),
                    }
                }
            }
        }
    }

    /// Looks at the claim and our challenge key until the owner answers or the time is up.
    async fn poll_asking(&self, key: &str, ask: &Asking) -> AskStep {
        let stream_key = self.keys.stream(key);
        let challenge_key = self.keys.challenge(key, &self.node);
        loop {
            let Some((lease, _)) = self.lease() else {
                return AskStep::Refused(Refusal::Unavailable(
                    "this node lost its etcd lease".to_owned(),
                ));
            };
            let deadline = Instant::now() + Duration::from_millis(500);
            let (claim, pending) = tokio::join!(
                self.etcd.get(&stream_key, deadline),
                self.etcd.get(&challenge_key, deadline)
            );
            let (claim, pending) = match (claim, pending) {
                (Ok(c), Ok(p)) => (c, p.is_some()),
                (Err(e), _) | (_, Err(e)) => return AskStep::Refused(unavailable(&e)),
            };
            match ask.step(
                &owner(claim.as_ref(), &self.node, lease),
                pending,
                Instant::now(),
            ) {
                AskStep::Poll(at) => {
                    tokio::time::sleep_until(at.into()).await;
                }
                other => return other,
            }
        }
    }

    /// The cross-node challenge (if any) is over: delete our challenge key, count it.
    async fn done_asking(&self, key: &str, asked: bool, granted: bool) {
        if !asked {
            return;
        }
        self.metrics
            .record_cluster_challenge(if granted { "granted" } else { "refused" });
        let deadline = Instant::now() + Duration::from_millis(500);
        let _ = self
            .etcd
            .delete(&self.keys.challenge(key, &self.node), deadline)
            .await;
    }

    fn hold(&self, key: &str, create_revision: i64, epoch: u64) {
        lock(&self.claims).entry(key.to_owned()).or_default().held = Some((create_revision, epoch));
    }

    // ---- claims: release ----

    fn unref(&self, key: &str) {
        let last = {
            let mut claims = lock(&self.claims);
            let Some(c) = claims.get_mut(key) else { return };
            c.refs = c.refs.saturating_sub(1);
            c.refs == 0
        };
        if last
            && let Some(me) = self.me.upgrade()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let key = key.to_owned();
            rt.spawn(async move { me.release(&key).await });
        }
    }

    /// Whether a local (non-relay) publisher holds `key`.
    fn publishes_locally(&self, key: &str) -> bool {
        self.registry.stream(key).is_some_and(|s| {
            s.snapshot()
                .publisher
                .is_some_and(|p| !p.protocol().is_relay())
        })
    }

    /// Releases the claim of `key` unless a local connection still relies on it.
    async fn release(&self, key: &str) {
        let _ops = self.ops.lock().await;
        let held = {
            let mut claims = lock(&self.claims);
            let Some(c) = claims.get_mut(key) else { return };
            if c.refs > 0 || self.publishes_locally(key) {
                return;
            }
            let held = c.held.take();
            claims.remove(key);
            held
        };
        let Some((rev, _)) = held else { return };
        self.delete_claim(key, rev).await;
    }

    async fn delete_claim(&self, key: &str, rev: i64) {
        let deadline = Instant::now() + lock(&self.keeper).times.interval;
        match self
            .etcd
            .delete_if(&self.keys.stream(key), rev, deadline)
            .await
        {
            Ok(_) => tracing::info!(stream = %key, "cluster: claim released"),
            // The lease takes it with it in the end.
            Err(e) => {
                tracing::warn!(stream = %key, "cluster: claim not released ({e}); it goes with the lease")
            }
        }
    }

    // ---- the admin view ----

    /// The cluster as this node sees it.
    pub fn view(&self) -> ClusterView {
        let (lease, epoch) = match lock(&self.keeper).state() {
            lease::LeaseState::Held { id, .. } if self.lease().is_some() => {
                (Some(id), self.lease().map(|l| l.1))
            }
            _ => (None, None),
        };
        let view = lock(&self.view);
        let mut nodes: Vec<ClaimValue> = view.nodes.values().cloned().collect();
        nodes.sort_by(|a, b| a.node.cmp(&b.node));
        let mut streams: Vec<OwnerView> = view
            .owners
            .iter()
            .map(|(k, v)| OwnerView {
                stream: k.clone(),
                node: v.node.clone(),
                advertise: v.advertise.clone(),
                since: v.since,
            })
            .collect();
        streams.sort_by(|a, b| a.stream.cmp(&b.stream));
        ClusterView {
            node: self.node.clone(),
            advertise: self.advertise.clone(),
            lease,
            epoch,
            watching: view.watching,
            lease_ttl_ms: u64::try_from(self.config.cluster.lease_ttl.as_millis())
                .unwrap_or(u64::MAX),
            leases_lost: self.metrics.leases_lost(),
            nodes,
            streams,
        }
    }
}

/// `GET /api/v1/cluster`.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterView {
    /// This node.
    pub node: String,
    /// Its advertised RTMP URL.
    pub advertise: String,
    /// The lease it publishes under (none: joining, and nothing may publish).
    pub lease: Option<i64>,
    /// The lease's epoch (bumped at every re-join).
    pub epoch: Option<u64>,
    /// Whether the watch on etcd is connected.
    pub watching: bool,
    /// `[cluster] lease_ttl`.
    pub lease_ttl_ms: u64,
    /// Leases given up unrenewed since start.
    pub leases_lost: u64,
    /// The registered nodes.
    pub nodes: Vec<ClaimValue>,
    /// Who owns which name.
    pub streams: Vec<OwnerView>,
}

/// One claimed name.
#[derive(Debug, Clone, Serialize)]
pub struct OwnerView {
    /// `app/name`.
    pub stream: String,
    /// The owner's node.
    pub node: String,
    /// Its RTMP URL.
    pub advertise: String,
    /// When it claimed (Unix ms).
    pub since: u64,
}

/// A local connection's reliance on the claim of its name: the claim is released when the last
/// one is dropped (and no local publisher holds the name).
#[derive(Debug)]
pub struct ClaimRef {
    cluster: Arc<Cluster>,
    key: String,
    epoch: OnceLock<u64>,
}

impl ClaimRef {
    /// The claim was granted in `epoch`.
    pub fn granted(&self, epoch: u64) {
        let _ = self.epoch.set(epoch);
    }

    /// Whether the claim still stands (the lease it was made under is still ours).
    pub fn valid(&self) -> bool {
        self.epoch
            .get()
            .is_some_and(|e| self.cluster.epoch_valid(*e))
    }
}

impl Drop for ClaimRef {
    fn drop(&mut self) {
        self.cluster.unref(&self.key);
    }
}
