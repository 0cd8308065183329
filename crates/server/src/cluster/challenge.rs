//! The owner's side of a cross-node challenge: a newcomer on another node wants a name whose
//! publisher is here. The local publisher is judged exactly as for a local newcomer — the
//! `[publish]` policy through [`takeover::decide`], then a ping and the kernel's evidence
//! (`conn/publish.rs`) settled by [`takeover::settle`] — and the answer is to keep the claim or
//! to release it.

use crate::config::PublishConfig;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::stream::{Challenge, ChallengeEvidence};
use crate::takeover::{self, ChallengeOutcome, Decision, Incumbent};
use crate::util::millis;
use rtmp_proto::session::CloseReason;
use std::sync::Arc;
use std::time::Instant;

/// The challenger id a remote newcomer stands under in the stream's challenge slot (no local
/// connection has it).
const REMOTE_CHALLENGER: u64 = u64::MAX;

/// What the owner's node answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The local publisher is alive (or the policy keeps it): the claim stays.
    Keep,
    /// No local publisher any more (it was taken over, or had gone): the claim goes.
    Release,
}

/// Judges the local publisher of `key` for a newcomer of node `from`.
pub(crate) async fn answer(
    registry: &Arc<Registry>,
    policy: &PublishConfig,
    metrics: &Metrics,
    key: &str,
    from: &str,
) -> Verdict {
    let started = Instant::now();
    let Some(stream) = registry.stream(key) else {
        return Verdict::Release;
    };
    let (incumbent, evidence, deadline) = {
        let mut state = stream.lock();
        let Some(slot) = state
            .publisher
            .clone()
            .filter(|p| !p.control.protocol().is_relay())
        else {
            return Verdict::Release;
        };
        let c = slot.control;
        let facts = Incumbent {
            silent: started.saturating_duration_since(c.last_rx()),
            srtt: c.srtt(),
            challenged: state
                .challenge
                .as_ref()
                .is_some_and(|ch| ch.deadline > started),
            pulled: false,
        };
        match takeover::decide(&facts, policy, true) {
            Decision::Refuse(why) => {
                tracing::info!(stream = %key, node = from, incumbent = c.id, "cross-node newcomer refused: {why}");
                return Verdict::Keep;
            }
            Decision::TakeOver => {
                drop(state);
                tracing::info!(stream = %key, node = from, old = c.id, "publisher taken over by a newcomer on another node");
                if registry.evict_publisher_if(key, Some(c.id), CloseReason::TakenOver) {
                    metrics.record_takeover();
                }
                return Verdict::Release;
            }
            Decision::Challenge { wait } => {
                let evidence = Arc::new(ChallengeEvidence::default());
                state.challenge = Some(Challenge {
                    challenger: REMOTE_CHALLENGER,
                    evidence: evidence.clone(),
                    deadline: started + wait,
                });
                c.challenge();
                tracing::info!(
                    stream = %key, node = from, incumbent = c.id, wait_ms = millis(wait),
                    "challenging the publisher for a newcomer on another node"
                );
                (c, evidence, started + wait)
            }
        }
    };
    tokio::select! {
        () = tokio::time::sleep_until(deadline.into()) => {}
        () = evidence.notified() => {}
    }
    let outcome = {
        let mut state = stream.lock();
        let current = state
            .challenge
            .as_ref()
            .is_some_and(|ch| Arc::ptr_eq(&ch.evidence, &evidence));
        if current {
            state.challenge = None;
        }
        match state.publisher.as_ref().map(|p| p.control.id) {
            None => return Verdict::Release,
            // Someone else publishes here now (a local takeover meanwhile): keep for them.
            Some(id) if id != incumbent.id => return Verdict::Keep,
            Some(_) => {}
        }
        ChallengeOutcome {
            current,
            answered: incumbent.last_rx() > started,
            host_gone: evidence.is_dead(),
        }
    };
    match takeover::settle(outcome) {
        Ok(()) => {
            tracing::info!(
                stream = %key, node = from, old = incumbent.id, host_gone = outcome.host_gone,
                "challenge unanswered: publisher taken over by a newcomer on another node"
            );
            if registry.evict_publisher_if(key, Some(incumbent.id), CloseReason::TakenOver) {
                metrics.record_takeover();
            }
            Verdict::Release
        }
        Err(_) => {
            tracing::info!(stream = %key, node = from, incumbent = incumbent.id, "challenge answered: the cross-node newcomer is refused");
            Verdict::Keep
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, OnDuplicate};
    use crate::control::ConnControl;
    use crate::registry::{PublishOutcome, PublisherGuard};
    use std::time::Duration;
    use tokio_util::sync::CancellationToken;

    fn publisher(registry: &Arc<Registry>) -> (Arc<ConnControl>, PublisherGuard) {
        let c = Arc::new(ConnControl::new(
            7,
            "192.0.2.1:40000".parse().unwrap(),
            CancellationToken::new(),
        ));
        match registry.publish("live", "a", &c, Instant::now()) {
            PublishOutcome::Granted(g) => (c, g),
            other => panic!("not granted: {other:?}"),
        }
    }

    fn setup(policy: OnDuplicate) -> (Arc<Registry>, PublishConfig, Metrics) {
        let mut config = Config::default();
        config.publish.on_duplicate = policy;
        // Real time (the code under test mixes std and tokio clocks, as in production).
        config.publish.challenge_timeout = Duration::from_millis(100);
        let registry = Arc::new(Registry::new(Arc::new(config.clone())));
        (registry, config.publish, Metrics::new())
    }

    #[tokio::test]
    async fn the_owner_judges_its_publisher_as_for_a_local_newcomer() {
        let (registry, policy, metrics) = setup(OnDuplicate::TakeoverStale);
        assert_eq!(
            answer(&registry, &policy, &metrics, "live/a", "b").await,
            Verdict::Release,
            "no publisher here: the claim goes"
        );
        // A live publisher that answers the ping: kept.
        let (c, _g) = publisher(&registry);
        let answering = {
            let c = c.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                c.touch_rx(Instant::now(), 10);
            })
        };
        assert_eq!(
            answer(&registry, &policy, &metrics, "live/a", "b").await,
            Verdict::Keep
        );
        answering.await.unwrap();
        assert!(
            registry
                .stream("live/a")
                .unwrap()
                .snapshot()
                .publisher
                .is_some()
        );
        // Silent through challenge_timeout: taken over, the claim goes.
        let started = Instant::now();
        assert_eq!(
            answer(&registry, &policy, &metrics, "live/a", "b").await,
            Verdict::Release
        );
        assert!(started.elapsed() >= policy.challenge_timeout);
        assert_eq!(c.requested_reason(), Some(CloseReason::TakenOver));
        assert!(
            registry
                .stream("live/a")
                .is_none_or(|s| s.snapshot().publisher.is_none())
        );
    }

    #[tokio::test]
    async fn reject_keeps_and_takeover_releases_at_once() {
        let (registry, policy, metrics) = setup(OnDuplicate::Reject);
        let (_c, _g) = publisher(&registry);
        assert_eq!(
            answer(&registry, &policy, &metrics, "live/a", "b").await,
            Verdict::Keep
        );
        let (registry, policy, metrics) = setup(OnDuplicate::Takeover);
        let (c, _g) = publisher(&registry);
        let started = Instant::now();
        assert_eq!(
            answer(&registry, &policy, &metrics, "live/a", "b").await,
            Verdict::Release
        );
        assert!(
            started.elapsed() < Duration::from_millis(50),
            "no challenge under takeover"
        );
        assert_eq!(c.requested_reason(), Some(CloseReason::TakenOver));
    }
}
