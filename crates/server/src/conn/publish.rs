//! The publisher's side of a connection: claiming the name, a newcomer's challenge of us (and
//! our kernel evidence), our challenge of an incumbent, and refusals.

use super::core::{Held, PendingClaim, Publishing, RtmpConn, Waiting};
use crate::control::ConnRole;
use crate::evidence::{Kernel, host_gone_since_challenge};
use crate::limits::LimitKey;
use crate::registry::{PublishOutcome, PublishRefusal, PublisherGuard};
use crate::timers::ConnTimer;
use rtmp_proto::chunk::ChunkError;
use rtmp_proto::session::{CloseReason, ProtocolError};
use std::time::{Duration, Instant};

/// How long after a challenge a publisher looks for kernel evidence that its host is gone: past
/// the longest delayed ACK (200 ms), so a live host has surely ACKed the ping by then.
const CHALLENGE_EVIDENCE_AFTER: Duration = Duration::from_millis(300);

impl RtmpConn {
    /// Claims the name (authorised by key and hook already): in etcd first when in a cluster
    /// (one publisher per name across the nodes), then in the local registry.
    pub(super) fn on_publish(&mut self, name: &str, now: Instant) {
        if let Some(cluster) = self.shared.cluster.clone() {
            let key = format!("{}/{name}", self.session.app());
            let (claim, answer) = cluster.claim(&key);
            self.waiting = Waiting::Cluster(PendingClaim {
                name: name.to_owned(),
                claim,
                answer,
            });
            return;
        }
        self.publish_locally(name, now);
    }

    /// The cluster answered our claim.
    pub(crate) fn cluster_answered(
        &mut self,
        now: Instant,
        verdict: Result<u64, crate::cluster::Refusal>,
    ) {
        let Waiting::Cluster(pending) = std::mem::replace(&mut self.waiting, Waiting::Nothing)
        else {
            return;
        };
        match verdict {
            Ok(epoch) => {
                pending.claim.granted(epoch);
                // A claim of an earlier request (the same connection publishing again) goes
                // after the new one is counted.
                self.cluster_claim = Some(pending.claim);
                self.publish_locally(&pending.name, now);
                // The lease may have been fenced between the claim and the registry: a
                // publisher granted after the fence's sweep stops here.
                if matches!(self.held, Held::Name(_))
                    && !self
                        .cluster_claim
                        .as_ref()
                        .is_some_and(crate::cluster::ClaimRef::valid)
                {
                    self.control.close(CloseReason::ClusterLeaseLost);
                }
            }
            Err(refusal) => {
                tracing::info!(conn = self.control.id, peer = %self.control.peer, "publish refused: {refusal}");
                self.session.reject_publish(&refusal.to_string());
                self.close_after_refusal(CloseReason::Refused(refusal.to_string()), now);
            }
        }
        self.settle(now);
    }

    fn publish_locally(&mut self, name: &str, now: Instant) {
        let app = self.session.app().to_owned();
        match self.shared.registry.publish(&app, name, &self.control, now) {
            PublishOutcome::Granted(guard) => self.publish_granted(guard, now),
            PublishOutcome::Refused(refusal) => self.publish_refused(&refusal, now),
            PublishOutcome::Challenged(ticket) => {
                self.timers.set(ConnTimer::Challenge, ticket.deadline);
                self.waiting = Waiting::Challenge(ticket);
            }
        }
    }

    /// A newcomer wants our name: prove we are alive by pinging the peer now, and look at the
    /// kernel's evidence once a live host would have ACKed.
    pub(crate) fn on_challenged(&mut self, now: Instant) {
        let Held::Name(p) = &mut self.held else {
            return;
        };
        tracing::debug!(conn = self.control.id, "challenged: pinging the publisher");
        self.session.send_ping(now);
        p.challenged_at = Some(now);
        let wait = CHALLENGE_EVIDENCE_AFTER.max(self.control.srtt() * 3);
        self.timers.set(ConnTimer::ChallengeEvidence, now + wait);
        self.settle(now);
    }

    /// A challenged publisher looks at its own socket: when nothing at all came back since the
    /// challenge, the host is gone and the newcomer need not wait out `challenge_timeout`.
    pub(super) fn challenge_evidence(&mut self, now: Instant, kernel: &impl Kernel) {
        let Held::Name(p) = &mut self.held else {
            return;
        };
        let Some(since) = p.challenged_at.take() else {
            return;
        };
        let received = self.control.last_rx() > since;
        let Ok(info) = kernel.tcp_info() else { return };
        if host_gone_since_challenge(&info, received, now.saturating_duration_since(since)) {
            tracing::info!(
                conn = self.control.id,
                unacked = info.unacked,
                last_ack_ms = info.last_ack_recv_ms,
                "challenged publisher's host is unreachable"
            );
            self.shared
                .registry
                .report_unreachable_incumbent(p.guard.stream(), self.control.id);
        }
    }

    /// The incumbent we challenge was found gone by its own connection: settle at once.
    pub(crate) fn on_incumbent_gone(&mut self, now: Instant) {
        self.resolve_challenge(now);
        self.settle(now);
    }

    /// Settles our challenge of the incumbent (at its deadline, or early on evidence).
    pub(super) fn resolve_challenge(&mut self, now: Instant) {
        let Waiting::Challenge(ticket) = std::mem::replace(&mut self.waiting, Waiting::Nothing)
        else {
            return;
        };
        self.timers.stop(ConnTimer::Challenge);
        match self
            .shared
            .registry
            .resolve_challenge(ticket, &self.control, now)
        {
            Ok(guard) => self.publish_granted(guard, now),
            Err(refusal) => self.publish_refused(&refusal, now),
        }
    }

    fn publish_granted(&mut self, guard: PublisherGuard, now: Instant) {
        self.session.accept_publish(now);
        self.record.last_held = Some(ConnRole::Publisher);
        self.record.since = now;
        self.record.stream_key = Some(guard.stream().key.clone());
        tracing::info!(conn = self.control.id, peer = %self.control.peer, stream = %guard.stream().key, "publish");
        self.timers.set(ConnTimer::RttRefresh, now);
        self.held = Held::Name(Publishing {
            guard,
            challenged_at: None,
        });
    }

    fn publish_refused(&mut self, refusal: &PublishRefusal, now: Instant) {
        tracing::info!(conn = self.control.id, peer = %self.control.peer, "publish refused: {refusal}");
        self.session.reject_publish(&refusal.to_string());
        self.close_after_refusal(CloseReason::Refused(refusal.to_string()), now);
    }

    /// A protocol error closes the connection; one that is a bound of ours is also counted
    /// and logged as a refusal.
    pub(super) fn protocol_error(&self, e: &ProtocolError, now: Instant) -> CloseReason {
        let limit = match e {
            ProtocolError::Chunk(ChunkError::TooManyChunkStreams(_)) => {
                Some(LimitKey::MaxChunkStreams)
            }
            ProtocolError::Chunk(ChunkError::MessageTooLarge { .. }) => {
                Some(LimitKey::MaxMessageSize)
            }
            ProtocolError::Chunk(ChunkError::TooMuchBuffered(_)) => Some(LimitKey::MaxBuffered),
            ProtocolError::TooManyStreams => Some(LimitKey::MaxStreamsPerConnection),
            _ => None,
        };
        if let Some(limit) = limit {
            let peer = self.control.peer.to_string();
            self.shared
                .registry
                .refusal_log()
                .refused(limit, &peer, now);
        }
        CloseReason::ProtocolError(e.to_string())
    }
}
