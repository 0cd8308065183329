//! Prometheus metrics. Counters are bumped where things happen (a close, a takeover, a drop);
//! gauges and byte totals are taken from the live connections when scraped, so the connection
//! hot path pays nothing for them.

use crate::control::{ConnRole, Protocol};
use crate::util::lock;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use rtmp_proto::session::CloseReason;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The `reason` label: `CloseReason::label()`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Close reason.
    pub reason: &'static str,
}

/// The `role` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoleLabels {
    /// Connection role.
    pub role: &'static str,
}

/// The `state` label of a relay.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// `connecting`, `live` or `backoff`.
    pub state: &'static str,
}

/// The `outcome` label of a cross-node challenge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `kept` or `released` (asked of us), `granted`, `refused` (asked by us).
    pub outcome: &'static str,
}

type HistogramFamily = Family<ReasonLabels, Histogram, fn() -> Histogram>;

/// The `protocol` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProtocolLabels {
    /// `rtmp`, `http-flv`, `http-mp4`, `hls`.
    pub protocol: &'static str,
}

/// The `protocol` and `reason` labels.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProtocolReasonLabels {
    /// The viewer's protocol.
    pub protocol: &'static str,
    /// Close reason.
    pub reason: &'static str,
}

/// What a scrape needs of one live connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnSample {
    /// What it speaks.
    pub protocol: Protocol,
    /// Its current role.
    pub role: ConnRole,
    /// Bytes received so far.
    pub bytes_in: u64,
    /// Bytes sent so far.
    pub bytes_out: u64,
}

/// Everything exported on `/metrics`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    connections: Family<RoleLabels, Gauge>,
    viewers: Family<ProtocolLabels, Gauge>,
    viewer_closes: Family<ProtocolReasonLabels, Counter>,
    streams: Gauge,
    bytes_in: Counter,
    bytes_out: Counter,
    closes: Family<ReasonLabels, Counter>,
    silence: HistogramFamily,
    frames_dropped: Counter,
    takeovers: Counter,
    refusals: Family<ReasonLabels, Counter>,
    relays: Family<StateLabels, Gauge>,
    relay_closes: Family<ReasonLabels, Counter>,
    cluster_renewals: Counter,
    cluster_renewal_failures: Counter,
    cluster_leases_lost: Counter,
    cluster_challenges: Family<OutcomeLabels, Counter>,
    /// Bytes of connections that have ended (live ones are added at scrape time).
    closed_bytes_in: AtomicU64,
    closed_bytes_out: AtomicU64,
    /// Serialises scrapes: byte counters are advanced to a total computed at scrape time.
    scrape: Mutex<()>,
}

fn silence_histogram() -> Histogram {
    // 10 ms .. ~82 s: a clean close is near zero, a dead peer sits at its timeout.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.01, 2.0, 14,
    ))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set of metrics under the `lifeline_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("lifeline");
        let connections = Family::<RoleLabels, Gauge>::default();
        let viewers = Family::<ProtocolLabels, Gauge>::default();
        let viewer_closes = Family::<ProtocolReasonLabels, Counter>::default();
        registry.register(
            "viewers",
            "Viewers (players, HTTP viewers, HLS sessions) by protocol",
            viewers.clone(),
        );
        registry.register(
            "viewer_closes",
            "Viewers that ended, by protocol and close reason",
            viewer_closes.clone(),
        );
        let streams = Gauge::default();
        let bytes_in = Counter::default();
        let bytes_out = Counter::default();
        let closes = Family::<ReasonLabels, Counter>::default();
        let silence: HistogramFamily = Family::new_with_constructor(silence_histogram);
        let frames_dropped = Counter::default();
        let takeovers = Counter::default();
        let refusals = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "connections",
            "Open connections by role",
            connections.clone(),
        );
        registry.register(
            "streams",
            "Live streams (published or played)",
            streams.clone(),
        );
        registry.register(
            "received_bytes",
            "Bytes received from peers",
            bytes_in.clone(),
        );
        registry.register("sent_bytes", "Bytes written to peers", bytes_out.clone());
        registry.register("closes", "Connections closed, by reason", closes.clone());
        registry.register(
            "silence_before_close_seconds",
            "How long the peer had sent nothing when its connection was released, by reason",
            silence.clone(),
        );
        registry.register(
            "player_frames_dropped",
            "Frames skipped for players that fell behind",
            frames_dropped.clone(),
        );
        registry.register(
            "takeovers",
            "Publishers that lost their stream name to a newcomer",
            takeovers.clone(),
        );
        registry.register(
            "refusals",
            "Connections, publishes and plays refused by a [limits] bound, by the limit's key",
            refusals.clone(),
        );
        let relays = Family::<StateLabels, Gauge>::default();
        let relay_closes = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "relays",
            "Relays (pushes and pulls) by state",
            relays.clone(),
        );
        registry.register(
            "relay_closes",
            "Relay connection attempts ended, by close reason",
            relay_closes.clone(),
        );
        let cluster_renewals = Counter::default();
        let cluster_renewal_failures = Counter::default();
        let cluster_leases_lost = Counter::default();
        let cluster_challenges = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "cluster_lease_renewals",
            "etcd lease renewals acknowledged ([cluster])",
            cluster_renewals.clone(),
        );
        registry.register(
            "cluster_lease_renewal_failures",
            "etcd lease renewals that failed or timed out ([cluster])",
            cluster_renewal_failures.clone(),
        );
        registry.register(
            "cluster_leases_lost",
            "Leases given up unrenewed: the node stopped its publishers (cluster_lease_lost)",
            cluster_leases_lost.clone(),
        );
        registry.register(
            "cluster_challenges",
            "Cross-node challenges, by outcome (kept/released: asked of this node; granted/refused: asked by it)",
            cluster_challenges.clone(),
        );
        Self {
            registry,
            relays,
            relay_closes,
            cluster_renewals,
            cluster_renewal_failures,
            cluster_leases_lost,
            cluster_challenges,
            connections,
            viewers,
            viewer_closes,
            streams,
            bytes_in,
            bytes_out,
            closes,
            silence,
            frames_dropped,
            takeovers,
            refusals,
            closed_bytes_in: AtomicU64::new(0),
            closed_bytes_out: AtomicU64::new(0),
            scrape: Mutex::new(()),
        }
    }

    /// A connection ended with `reason` after the peer had been silent for `silence`.
    pub fn record_close(
        &self,
        reason: &CloseReason,
        silence: Duration,
        bytes_in: u64,
        bytes_out: u64,
    ) {
        let labels = ReasonLabels {
            reason: reason.label(),
        };
        self.closes.get_or_create(&labels).inc();
        self.silence
            .get_or_create(&labels)
            .observe(silence.as_secs_f64());
        self.closed_bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        self.closed_bytes_out
            .fetch_add(bytes_out, Ordering::Relaxed);
    }

    /// A viewer of `protocol` ended with `reason`.
    pub fn record_viewer_close(&self, protocol: Protocol, reason: &CloseReason) {
        let labels = ProtocolReasonLabels {
            protocol: protocol.label(),
            reason: reason.label(),
        };
        self.viewer_closes.get_or_create(&labels).inc();
    }

    /// Viewers of `protocol` that ended with `reason` so far.
    pub fn viewer_closes(&self, protocol: Protocol, reason: &'static str) -> u64 {
        let labels = ProtocolReasonLabels {
            protocol: protocol.label(),
            reason,
        };
        self.viewer_closes.get_or_create(&labels).get()
    }

    /// A relay's connection attempt ended with `reason` (a connection, or a failed connect).
    pub fn record_relay_close(&self, reason: &CloseReason) {
        let labels = ReasonLabels {
            reason: reason.label(),
        };
        self.relay_closes.get_or_create(&labels).inc();
    }

    /// Relay attempts that ended with `reason` so far.
    pub fn relay_closes(&self, reason: &'static str) -> u64 {
        self.relay_closes
            .get_or_create(&ReasonLabels { reason })
            .get()
    }

    /// Sets `lifeline_relays{state}` (for a scrape).
    pub fn set_relay_states(&self, counts: impl IntoIterator<Item = (&'static str, usize)>) {
        for (state, n) in counts {
            self.relays
                .get_or_create(&StateLabels { state })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// An etcd lease renewal was acknowledged (`ok`) or failed.
    pub fn record_lease_renewal(&self, ok: bool) {
        if ok {
            self.cluster_renewals.inc();
        } else {
            self.cluster_renewal_failures.inc();
        }
    }

    /// The node gave up its lease unrenewed and stopped its publishers.
    pub fn record_lease_lost(&self) {
        self.cluster_leases_lost.inc();
    }

    /// Leases lost so far.
    pub fn leases_lost(&self) -> u64 {
        self.cluster_leases_lost.get()
    }

    /// A cross-node challenge ended with `outcome`.
    pub fn record_cluster_challenge(&self, outcome: &'static str) {
        self.cluster_challenges
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// A publisher lost its name to a newcomer.
    pub fn record_takeover(&self) {
        self.takeovers.inc();
    }

    /// A `[limits]` bound (`reason` is its key) refused a connection, a publish or a play.
    pub fn record_refusal(&self, reason: &'static str) {
        self.refusals.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// Refusals by the limit `reason` so far.
    pub fn refusals(&self, reason: &'static str) -> u64 {
        self.refusals.get_or_create(&ReasonLabels { reason }).get()
    }

    /// A player skipped `n` messages after falling behind.
    pub fn record_dropped(&self, n: u64) {
        self.frames_dropped.inc_by(n);
    }

    /// Connections closed with `reason` so far.
    pub fn closes(&self, reason: &'static str) -> u64 {
        self.closes.get_or_create(&ReasonLabels { reason }).get()
    }

    /// The Prometheus text exposition, with gauges refreshed from the live connections and
    /// the number of `streams`.
    pub fn render(&self, conns: impl IntoIterator<Item = ConnSample>, streams: usize) -> String {
        let _scrape = lock(&self.scrape);
        let mut by_role = [0i64; ConnRole::ALL.len()];
        let mut by_protocol = [0i64; Protocol::ALL.len()];
        let (mut bytes_in, mut bytes_out) = (
            self.closed_bytes_in.load(Ordering::Relaxed),
            self.closed_bytes_out.load(Ordering::Relaxed),
        );
        for c in conns {
            if let Some(n) = ConnRole::ALL
                .iter()
                .position(|r| *r == c.role)
                .and_then(|i| by_role.get_mut(i))
            {
                *n += 1;
            }
            if c.role == ConnRole::Player
                && let Some(n) = Protocol::ALL
                    .iter()
                    .position(|p| *p == c.protocol)
                    .and_then(|i| by_protocol.get_mut(i))
            {
                *n += 1;
            }
            bytes_in += c.bytes_in;
            bytes_out += c.bytes_out;
        }
        for (protocol, n) in Protocol::ALL.iter().zip(by_protocol) {
            if *protocol != Protocol::Http && !protocol.is_relay() {
                self.viewers
                    .get_or_create(&ProtocolLabels {
                        protocol: protocol.label(),
                    })
                    .set(n);
            }
        }
        for (role, n) in ConnRole::ALL.iter().zip(by_role) {
            self.connections
                .get_or_create(&RoleLabels { role: role.label() })
                .set(n);
        }
        self.streams.set(i64::try_from(streams).unwrap_or(i64::MAX));
        // A connection's bytes move from "live" to "closed" when it ends; the sum only grows,
        // except for the instant between the two, which the max() absorbs.
        self.bytes_in
            .inc_by(bytes_in.saturating_sub(self.bytes_in.get()));
        self.bytes_out
            .inc_by(bytes_out.saturating_sub(self.bytes_out.get()));
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
