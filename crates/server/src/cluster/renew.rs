//! The lease keeper task of [`Cluster`]: grants, renews, fences (stops every local publisher
//! before the lease could expire on etcd's side) and re-joins; the decisions are
//! [`super::lease::Keeper`]'s, on an explicit clock.

use super::*;

impl Cluster {
    // ---- the lease ----

    pub(super) async fn keep_lease(self: Arc<Self>) {
        let ttl = self.config.cluster.lease_ttl;
        // Renewals failed in a row (etcd away), for the log line when it is back.
        let mut failing: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let step = lock(&self.keeper).poll(now);
            match step {
                Step::Grant => {
                    let deadline = now + lock(&self.keeper).times.interval;
                    match self.etcd.grant(ttl, deadline).await {
                        Ok(id) => {
                            let epoch = lock(&self.keeper).granted(id, now);
                            tracing::info!(node = %self.node, lease = id, epoch, "cluster: lease granted");
                            if epoch > 1 {
                                self.rejoined.notify_one();
                            }
                            let _ = self
                                .etcd
                                .put(
                                    &self.keys.node(&self.node),
                                    &self.value(),
                                    id,
                                    deadline.max(Instant::now() + Duration::from_millis(500)),
                                )
                                .await;
                        }
                        Err(e) => {
                            tracing::warn!(node = %self.node, "cluster: no lease: {e}");
                            lock(&self.keeper).grant_failed(Instant::now());
                        }
                    }
                }
                Step::Renew(id) => {
                    let deadline = lock(&self.keeper).call_deadline(now);
                    match self.etcd.keepalive(id, deadline).await {
                        Ok(ttl) if ttl > 0 => {
                            self.metrics.record_lease_renewal(true);
                            lock(&self.keeper).renewed(id, now);
                            if let Some(since) = failing.take() {
                                tracing::info!(
                                    lease = id,
                                    failing_ms = since.elapsed().as_millis(),
                                    "cluster: lease renewed again (etcd is back)"
                                );
                            }
                        }
                        Ok(_) => {
                            tracing::warn!(lease = id, "cluster: etcd no longer has our lease");
                            self.metrics.record_lease_renewal(false);
                            lock(&self.keeper).gone(id, Instant::now());
                        }
                        Err(e) => {
                            if failing.is_none() {
                                tracing::warn!(lease = id, "cluster: renewal failed: {e}");
                            }
                            failing.get_or_insert(now);
                            self.metrics.record_lease_renewal(false);
                            lock(&self.keeper).renew_failed(Instant::now());
                        }
                    }
                }
                Step::Fence(id) => {
                    failing = None;
                    self.fence(id);
                }
                Step::Wait(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at.into()) => {}
                        () = self.shutdown.cancelled() => return,
                    }
                }
            }
            if self.shutdown.is_cancelled() {
                return;
            }
        }
    }

    /// The lease `id` may expire on etcd's side from now on: nothing of ours may publish under
    /// it. Every local publisher is stopped (`cluster_lease_lost`).
    pub(super) fn fence(&self, id: i64) {
        self.metrics.record_lease_lost();
        let dropped: Vec<String> = {
            let mut claims = lock(&self.claims);
            claims.values_mut().for_each(|c| c.held = None);
            claims.retain(|_, c| c.refs > 0);
            claims.keys().cloned().collect()
        };
        let mut stopped = 0;
        for stream in self.registry.streams() {
            let publisher = stream.snapshot().publisher;
            if let Some(p) = publisher.filter(|p| !p.protocol().is_relay())
                && self.registry.evict_publisher_if(
                    &stream.key,
                    Some(p.id),
                    CloseReason::ClusterLeaseLost,
                )
            {
                stopped += 1;
            }
        }
        tracing::warn!(
            node = %self.node, lease = id, stopped, names = dropped.len(),
            "cluster: lease not renewed in time, local publishers stopped (cluster_lease_lost); re-joining"
        );
        // Best effort: when etcd is reachable after all, our names are free at once.
        if let Some(me) = self.me.upgrade() {
            tokio::spawn(async move {
                let _ = me
                    .etcd
                    .revoke(id, Instant::now() + Duration::from_secs(1))
                    .await;
            });
        }
    }

    /// Leaves the cluster (the server shuts down): the lease and every claim under it go.
    pub async fn leave(&self) {
        self.shutdown.cancel();
        let id = match lock(&self.keeper).state() {
            lease::LeaseState::Held { id, .. } => id,
            lease::LeaseState::Joining { .. } => return,
        };
        let _ = self
            .etcd
            .revoke(id, Instant::now() + Duration::from_secs(1))
            .await;
    }
}
