//! The stream registry: app + name → stream, with one publisher per name.
//!
//! Publisher and player slots are held by RAII guards, so every way a connection can end
//! (error, timeout, kick, panic) releases what it held.

use crate::config::Config;
use crate::control::{ConnControl, Protocol};
use crate::limits::{LimitKey, RefusalLog};
use crate::metrics::Metrics;
use crate::stream::{
    Challenge, ChallengeEvidence, PublisherSlot, Stream, StreamState, Subscription,
};
use crate::takeover::{self, Busy, ChallengeOutcome, Decision, Incumbent};
use crate::util::{lock, millis};
use rtmp_proto::session::{CloseReason, Media};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Instant;

/// What happened to a stream, for whoever watches the registry (the relays).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamChange {
    /// A publisher speaking this protocol was granted the name.
    Published(Protocol),
    /// The publisher left or was evicted: the name is free.
    Unpublished,
    /// A viewer is about to attach (a player, an HTTP viewer, an HLS session): told before,
    /// so that a pull relay can claim a free name first and the viewer starts on a live stream.
    PlayerJoining,
    /// A viewer left.
    PlayerLeft,
}

/// Told of every publisher and viewer that comes or goes, always after the registry's locks
/// are released (so it may look at the registry), from the task that caused the change.
pub trait StreamWatcher: Send + Sync + std::fmt::Debug {
    /// `key` (`app/name`) changed.
    fn changed(&self, key: &str, change: StreamChange);
}

/// Why a publish was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublishRefusal {
    /// The name has a live publisher.
    #[error("{key} is already being published ({why}; incumbent silent for {silent_ms} ms)")]
    Busy {
        /// `app/name`.
        key: String,
        /// How long the incumbent had been silent.
        silent_ms: u64,
        /// Which rule refused.
        why: Busy,
    },
    /// A `[limits]` bound.
    #[error("{0}")]
    Limit(LimitRefusal),
}

/// A `[limits]` bound that refused a publish or a play.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} reached ({limit})")]
pub struct LimitRefusal {
    /// The bound; its label is the `reason` of `lifeline_refusals_total`.
    pub key: LimitKey,
    /// Its configured value.
    pub limit: usize,
}

/// What a publish request gets.
#[derive(Debug)]
pub enum PublishOutcome {
    /// The name is the caller's.
    Granted(PublisherGuard),
    /// Refused now.
    Refused(PublishRefusal),
    /// The incumbent is being challenged; call [`Registry::resolve_challenge`] at the deadline.
    Challenged(ChallengeTicket),
}

/// A newcomer's claim while the incumbent is challenged.
#[derive(Debug)]
pub struct ChallengeTicket {
    stream: Arc<Stream>,
    started: Instant,
    evidence: Arc<ChallengeEvidence>,
    /// When to call [`Registry::resolve_challenge`].
    pub deadline: Instant,
}

impl ChallengeTicket {
    /// Resolves when the incumbent's connection found kernel evidence of its death.
    pub async fn dead_evidence(&self) {
        self.evidence.notified().await;
    }
}

/// All live streams.
#[derive(Debug)]
pub struct Registry {
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    refusals: Arc<RefusalLog>,
    streams: Mutex<HashMap<String, Arc<Stream>>>,
    /// Weak: the watchers (the relays, the cluster) hold the registry, not the other way round.
    watchers: OnceLock<Vec<Weak<dyn StreamWatcher>>>,
}

fn stream_key(app: &str, name: &str) -> String {
    format!("{app}/{name}")
}

impl Registry {
    /// An empty registry.
    pub fn new(config: Arc<Config>) -> Self {
        Self::with_metrics(config, Arc::default())
    }

    /// An empty registry that counts takeovers in `metrics`.
    pub fn with_metrics(config: Arc<Config>, metrics: Arc<Metrics>) -> Self {
        Self {
            config,
            refusals: Arc::new(RefusalLog::new(metrics.clone())),
            metrics,
            streams: Mutex::new(HashMap::new()),
            watchers: OnceLock::new(),
        }
    }

    /// Tells `watcher` of every change from now on, for as long as it lives (once; later
    /// calls are ignored).
    pub fn set_watcher(&self, watcher: &Arc<dyn StreamWatcher>) {
        self.set_watchers(std::slice::from_ref(watcher));
    }

    /// [`Self::set_watcher`] for several watchers, told in this order.
    pub fn set_watchers(&self, watchers: &[Arc<dyn StreamWatcher>]) {
        let _ = self
            .watchers
            .set(watchers.iter().map(Arc::downgrade).collect());
    }

    fn notify(&self, key: &str, change: StreamChange) {
        for w in self.watchers.get().into_iter().flatten() {
            if let Some(w) = w.upgrade() {
                w.changed(key, change);
            }
        }
    }

    /// The stream `key` (`app/name`), if it is live (published or played).
    pub fn stream(&self, key: &str) -> Option<Arc<Stream>> {
        self.map().get(key).cloned()
    }

    /// Where every `[limits]` refusal (here and at accept) is counted and logged.
    pub fn refusal_log(&self) -> &Arc<RefusalLog> {
        &self.refusals
    }

    fn refuse(&self, limit: LimitRefusal, who: &str) -> LimitRefusal {
        self.refusals.refused(limit.key, who, Instant::now());
        limit
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<Stream>>> {
        lock(&self.streams)
    }

    fn entry(&self, map: &mut HashMap<String, Arc<Stream>>, key: &str) -> Arc<Stream> {
        map.entry(key.to_owned())
            .or_insert_with(|| Arc::new(Stream::new(key.to_owned(), &self.config)))
            .clone()
    }

    /// The stream for `key`, created if needed and `limits.max_streams` allows. Lock order is
    /// always map, then stream state: the caller gets the state locked while the map lock was
    /// still held, so the stream cannot be dropped from the map in between.
    fn with_stream<T>(
        &self,
        key: &str,
        f: impl FnOnce(&Arc<Stream>, &mut StreamState) -> T,
    ) -> Result<T, LimitRefusal> {
        let mut map = self.map();
        let max = self.config.limits.max_streams;
        if map.len() >= max && !map.contains_key(key) {
            drop(map);
            let limit = LimitRefusal {
                key: LimitKey::MaxStreams,
                limit: max,
            };
            return Err(self.refuse(limit, key));
        }
        let stream = self.entry(&mut map, key);
        let mut state = stream.lock();
        drop(map);
        Ok(f(&stream, &mut state))
    }

    /// Drops `stream` from the map once nobody publishes or plays it.
    fn release_if_unused(&self, stream: &Arc<Stream>) {
        let mut map = self.map();
        let state = stream.lock();
        if state.publisher.is_none()
            && state.players == 0
            && map
                .get(&stream.key)
                .is_some_and(|current| Arc::ptr_eq(current, stream))
        {
            map.remove(&stream.key);
        }
    }

    /// The streams, for observability.
    pub fn streams(&self) -> Vec<Arc<Stream>> {
        self.map().values().cloned().collect()
    }

    /// Claims `app/name` for the connection `control`, applying `[publish] on_duplicate`
    /// against a live incumbent. Under "takeover-stale" an incumbent that is not plainly stale
    /// is challenged: the outcome comes from [`Self::resolve_challenge`] at the ticket's
    /// deadline.
    pub fn publish(
        self: &Arc<Self>,
        app: &str,
        name: &str,
        control: &Arc<ConnControl>,
        now: Instant,
    ) -> PublishOutcome {
        self.publish_claim(app, name, control, now, true)
    }

    /// [`Self::publish`] for a newcomer that may or may not be `authorised` for the name (by
    /// its stream key or the on_publish hook). An unauthorised newcomer may take a free name
    /// but never challenges or displaces an incumbent: it is refused at once, and the
    /// incumbent is not even pinged, so takeover cannot become a way to steal a stream.
    pub fn publish_claim(
        self: &Arc<Self>,
        app: &str,
        name: &str,
        control: &Arc<ConnControl>,
        now: Instant,
        authorised: bool,
    ) -> PublishOutcome {
        let key = stream_key(app, name);
        let outcome = self.with_stream(&key, |stream, state| {
            let Some(incumbent) = state.publisher.clone() else {
                return PublishOutcome::Granted(self.grant(stream, state, control));
            };
            let silent = now.saturating_duration_since(incumbent.control.last_rx());
            let facts = Incumbent {
                silent,
                srtt: incumbent.control.srtt(),
                challenged: state.challenge.as_ref().is_some_and(|c| c.deadline > now),
                pulled: incumbent.control.protocol() == Protocol::RtmpPull,
            };
            match takeover::decide(&facts, &self.config.publish, authorised) {
                Decision::Refuse(why) => PublishOutcome::Refused(PublishRefusal::Busy {
                    key: key.clone(),
                    silent_ms: millis(silent),
                    why,
                }),
                Decision::Challenge { wait } => {
                    let deadline = now + wait;
                    let evidence = Arc::new(ChallengeEvidence::default());
                    state.challenge = Some(Challenge {
                        challenger: control.id,
                        evidence: evidence.clone(),
                        deadline,
                    });
                    incumbent.control.challenge();
                    tracing::info!(
                        stream = %key, incumbent = incumbent.control.id, newcomer = control.id,
                        silent_ms = millis(silent), wait_ms = millis(wait), "challenging the publisher"
                    );
                    PublishOutcome::Challenged(ChallengeTicket {
                        stream: stream.clone(),
                        started: now,
                        evidence,
                        deadline,
                    })
                }
                Decision::TakeOver => {
                    tracing::info!(
                        stream = %key, old = incumbent.control.id, new = control.id,
                        silent_ms = millis(silent), "publisher taken over"
                    );
                    incumbent.control.close(CloseReason::TakenOver);
                    self.metrics.record_takeover();
                    PublishOutcome::Granted(self.grant(stream, state, control))
                }
            }
        });
        let outcome =
            outcome.unwrap_or_else(|limit| PublishOutcome::Refused(PublishRefusal::Limit(limit)));
        if matches!(outcome, PublishOutcome::Granted(_)) {
            self.notify(&key, StreamChange::Published(control.protocol()));
        }
        outcome
    }

    fn grant(
        self: &Arc<Self>,
        stream: &Arc<Stream>,
        state: &mut StreamState,
        control: &Arc<ConnControl>,
    ) -> PublisherGuard {
        state.challenge = None;
        stream.begin_publisher(
            state,
            PublisherSlot {
                control: control.clone(),
            },
        );
        PublisherGuard {
            registry: self.clone(),
            stream: stream.clone(),
            conn_id: control.id,
        }
    }

    /// Decides a challenge at its deadline: any byte from the incumbent since the challenge
    /// proves it alive (the newcomer is refused); silence proves it dead (it is reset with
    /// TakenOver and the newcomer publishes).
    pub fn resolve_challenge(
        self: &Arc<Self>,
        ticket: ChallengeTicket,
        control: &Arc<ConnControl>,
        now: Instant,
    ) -> Result<PublisherGuard, PublishRefusal> {
        let ChallengeTicket {
            stream,
            started,
            evidence,
            ..
        } = ticket;
        let mut map = self.map();
        let mut state = stream.lock();
        let ours = state
            .challenge
            .as_ref()
            .is_some_and(|c| c.challenger == control.id);
        if ours {
            state.challenge = None;
        }
        let in_map = map
            .get(&stream.key)
            .is_some_and(|s| Arc::ptr_eq(s, &stream));
        if !in_map {
            // Everyone left meanwhile: start afresh on a new entry.
            map.insert(stream.key.clone(), stream.clone());
        }
        drop(map);
        if let Some(incumbent) = state.publisher.clone() {
            let last_rx = incumbent.control.last_rx();
            let silent = now.saturating_duration_since(last_rx);
            let outcome = ChallengeOutcome {
                current: ours,
                answered: last_rx > started,
                host_gone: evidence.is_dead(),
            };
            if let Err(why) = takeover::settle(outcome) {
                tracing::info!(
                    stream = %stream.key, incumbent = incumbent.control.id, newcomer = control.id,
                    "challenge answered: incumbent alive, newcomer refused"
                );
                return Err(PublishRefusal::Busy {
                    key: stream.key.clone(),
                    silent_ms: millis(silent),
                    why,
                });
            }
            tracing::info!(
                stream = %stream.key, incumbent = incumbent.control.id, newcomer = control.id,
                silent_ms = millis(silent), "challenge unanswered: publisher taken over"
            );
            incumbent.control.close(CloseReason::TakenOver);
            self.metrics.record_takeover();
        }
        let guard = self.grant(&stream, &mut state, control);
        drop(state);
        self.notify(&stream.key, StreamChange::Published(control.protocol()));
        Ok(guard)
    }

    /// Called by a challenged publisher's own connection when the kernel shows its host gone
    /// (nothing at all received since the challenge, not even an ACK of the ping): the waiting
    /// newcomer is woken to take over at once.
    pub fn report_unreachable_incumbent(&self, stream: &Stream, conn_id: u64) {
        let state = stream.lock();
        if state.publisher.as_ref().map(|p| p.control.id) == Some(conn_id)
            && let Some(challenge) = &state.challenge
        {
            challenge.evidence.set_dead();
        }
    }

    /// Attaches a player to `app/name`, publisher or not, unless `limits.max_streams` or
    /// `limits.max_players_per_stream` refuses it.
    pub fn try_play(
        self: &Arc<Self>,
        app: &str,
        name: &str,
    ) -> Result<(PlayerGuard, Subscription), LimitRefusal> {
        let key = stream_key(app, name);
        let max = self.config.limits.max_players_per_stream;
        self.notify(&key, StreamChange::PlayerJoining);
        let attached = self.with_stream(&key, |stream, state| {
            (state.players < max).then(|| self.attach(stream, state))
        })?;
        attached.ok_or_else(|| {
            let limit = LimitRefusal {
                key: LimitKey::MaxPlayersPerStream,
                limit: max,
            };
            self.refuse(limit, &key)
        })
    }

    /// Counts a viewer of `app/name` that does not read the fan-out ring (an HLS session: it
    /// reads the stream's segmenter), under the same limits as a player.
    pub fn try_watch(self: &Arc<Self>, app: &str, name: &str) -> Result<PlayerGuard, LimitRefusal> {
        let key = stream_key(app, name);
        let max = self.config.limits.max_players_per_stream;
        self.notify(&key, StreamChange::PlayerJoining);
        let attached = self.with_stream(&key, |stream, state| {
            (state.players < max).then(|| {
                state.players += 1;
                PlayerGuard {
                    registry: self.clone(),
                    stream: stream.clone(),
                }
            })
        })?;
        attached.ok_or_else(|| {
            let limit = LimitRefusal {
                key: LimitKey::MaxPlayersPerStream,
                limit: max,
            };
            self.refuse(limit, &key)
        })
    }

    /// Attaches a player to `app/name`, publisher or not, whatever the limits (tests, benches).
    pub fn play(self: &Arc<Self>, app: &str, name: &str) -> (PlayerGuard, Subscription) {
        let key = stream_key(app, name);
        self.notify(&key, StreamChange::PlayerJoining);
        let mut map = self.map();
        let stream = self.entry(&mut map, &key);
        let mut state = stream.lock();
        drop(map);
        self.attach(&stream, &mut state)
    }

    fn attach(
        self: &Arc<Self>,
        stream: &Arc<Stream>,
        state: &mut StreamState,
    ) -> (PlayerGuard, Subscription) {
        state.players += 1;
        let sub = stream.subscribe(state);
        (
            PlayerGuard {
                registry: self.clone(),
                stream: stream.clone(),
            },
            sub,
        )
    }

    /// Removes the publisher of `app/name` (closing its connection with `reason`). The name is
    /// free when this returns. Returns whether there was one.
    pub fn evict_publisher(&self, key: &str, reason: CloseReason) -> bool {
        self.evict_publisher_if(key, None, reason)
    }

    /// [`Self::evict_publisher`] only if the publisher is still connection `conn_id` (when
    /// given): a decision taken about one publisher never evicts its successor.
    pub fn evict_publisher_if(&self, key: &str, conn_id: Option<u64>, reason: CloseReason) -> bool {
        let Some(stream) = self.map().get(key).cloned() else {
            return false;
        };
        let mut state = stream.lock();
        let Some(slot) = state
            .publisher
            .clone()
            .filter(|p| conn_id.is_none_or(|id| p.control.id == id))
        else {
            return false;
        };
        slot.control.close(reason);
        stream.end_publisher(&mut state);
        drop(state);
        self.release_if_unused(&stream);
        self.notify(key, StreamChange::Unpublished);
        true
    }
}

/// Holds a stream name for a publisher; dropping it frees the name (if still ours).
#[derive(Debug)]
pub struct PublisherGuard {
    registry: Arc<Registry>,
    stream: Arc<Stream>,
    conn_id: u64,
}

impl PublisherGuard {
    /// Sends a media message to the stream's players.
    pub fn publish(&self, media: Media) {
        self.stream.publish(self.conn_id, media);
    }

    /// The stream held.
    pub fn stream(&self) -> &Arc<Stream> {
        &self.stream
    }

    /// Starts a new publisher era under the same hold (a pull relay reconnected to its
    /// origin): players are told, timestamps continue, the cache starts afresh — and the name
    /// is never free in between, so players stay. Does nothing if the name is no longer ours.
    pub fn restart(&self) {
        let mut state = self.stream.lock();
        if let Some(slot) = state
            .publisher
            .clone()
            .filter(|p| p.control.id == self.conn_id)
        {
            self.stream.begin_publisher(&mut state, slot);
        }
    }
}

impl Drop for PublisherGuard {
    fn drop(&mut self) {
        let ended = {
            let mut state = self.stream.lock();
            let ours = state.publisher.as_ref().map(|p| p.control.id) == Some(self.conn_id);
            if ours {
                self.stream.end_publisher(&mut state);
            }
            ours
        };
        self.registry.release_if_unused(&self.stream);
        if ended {
            self.registry
                .notify(&self.stream.key, StreamChange::Unpublished);
        }
    }
}

/// A player's attachment to a stream; dropping it detaches.
#[derive(Debug)]
pub struct PlayerGuard {
    registry: Arc<Registry>,
    stream: Arc<Stream>,
}

impl PlayerGuard {
    /// The stream played.
    pub fn stream(&self) -> &Arc<Stream> {
        &self.stream
    }
}

impl Drop for PlayerGuard {
    fn drop(&mut self) {
        {
            let mut state = self.stream.lock();
            state.players = state.players.saturating_sub(1);
        }
        self.registry.release_if_unused(&self.stream);
        self.registry
            .notify(&self.stream.key, StreamChange::PlayerLeft);
    }
}
