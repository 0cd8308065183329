//! The watch task of [`Cluster`]: keeps the view of every claim and node, tells the relay
//! manager when an owner moves, and answers the challenges other nodes put for our names.

use super::*;

impl Cluster {
    // ---- the watch ----

    pub(super) async fn watch_loop(self: Arc<Self>) {
        let prefix = self.keys.all();
        loop {
            let deadline = Instant::now() + Duration::from_secs(1);
            let opened = match self.etcd.range_prefix(&prefix, deadline).await {
                Ok((kvs, rev)) => {
                    self.reset_view(kvs);
                    self.etcd
                        .watch(&prefix, rev + 1, Instant::now() + Duration::from_secs(1))
                        .await
                }
                Err(e) => Err(e),
            };
            match opened {
                Ok(mut watch) => {
                    lock(&self.view).watching = true;
                    loop {
                        // A watch has no deadline of its own: a connection cut off silently (a
                        // partition) is replaced when the node re-joins after its fence.
                        let next = tokio::select! {
                            n = watch.next() => n,
                            () = self.rejoined.notified() => Err(EtcdError::Timeout),
                            () = self.shutdown.cancelled() => return,
                        };
                        match next {
                            Ok((events, _)) => events.into_iter().for_each(|e| self.apply(e)),
                            Err(e) => {
                                tracing::debug!("cluster: watch ended: {e}");
                                break;
                            }
                        }
                    }
                    lock(&self.view).watching = false;
                }
                Err(e) => tracing::debug!("cluster: cannot watch: {e}"),
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(300)) => {}
                () = self.shutdown.cancelled() => return,
            }
        }
    }

    pub(super) fn reset_view(&self, kvs: Vec<etcd::Kv>) {
        let before: HashMap<String, ClaimValue> = {
            let mut view = lock(&self.view);
            let before = std::mem::take(&mut view.owners);
            view.nodes.clear();
            before
        };
        let mut challenges = Vec::new();
        for kv in kvs {
            if matches!(self.keys.parse(&kv.key), Some(Key::Challenge { .. })) {
                challenges.push(kv);
            } else {
                self.apply(WatchEvent::Put(kv));
            }
        }
        // Owners that went while we were not watching.
        let gone: Vec<String> = {
            let view = lock(&self.view);
            before
                .into_keys()
                .filter(|k| !view.owners.contains_key(k))
                .collect()
        };
        for key in gone {
            self.tell_follower(&key, None);
        }
        for kv in challenges {
            self.apply(WatchEvent::Put(kv));
        }
    }

    pub(super) fn tell_follower(&self, key: &str, owner: Option<&ClaimValue>) {
        if let Some(f) = self.follower.get().and_then(Weak::upgrade) {
            f.owner_changed(key, owner.filter(|o| o.node != self.node));
        }
    }

    pub(super) fn apply(&self, event: WatchEvent) {
        match event {
            WatchEvent::Put(kv) => match self.keys.parse(&kv.key) {
                Some(Key::Stream(key)) => {
                    let Some(v) = ClaimValue::parse(&kv.value) else {
                        return;
                    };
                    let changed = lock(&self.view)
                        .owners
                        .insert(key.to_owned(), v.clone())
                        .as_ref()
                        != Some(&v);
                    if changed {
                        self.tell_follower(key, Some(&v));
                    }
                }
                Some(Key::Node(node)) => {
                    if let Some(v) = ClaimValue::parse(&kv.value) {
                        lock(&self.view).nodes.insert(node.to_owned(), v);
                    }
                }
                Some(Key::Challenge { stream, from }) if from != self.node => {
                    self.challenged(stream, from);
                }
                _ => {}
            },
            WatchEvent::Delete(etcd_key) => match self.keys.parse(&etcd_key) {
                Some(Key::Stream(key)) => {
                    let was = lock(&self.view).owners.remove(key);
                    if was.is_some() {
                        self.tell_follower(key, None);
                    }
                }
                Some(Key::Node(node)) => {
                    lock(&self.view).nodes.remove(node);
                }
                _ => {}
            },
        }
    }

    // ---- challenges: the owner's side ----

    /// Node `from` asks us to challenge our publisher of `key`.
    pub(super) fn challenged(&self, key: &str, from: &str) {
        // Only the owner answers (every node sees every challenge key).
        let ours = lock(&self.claims)
            .get(key)
            .is_some_and(|c| c.held.is_some())
            || lock(&self.view)
                .owners
                .get(key)
                .is_some_and(|v| v.node == self.node);
        if !ours || !lock(&self.answering).insert(key.to_owned()) {
            return;
        }
        let Some(me) = self.me.upgrade() else { return };
        let (key, from) = (key.to_owned(), from.to_owned());
        tokio::spawn(async move {
            let verdict =
                challenge::answer(&me.registry, &me.config.publish, &me.metrics, &key, &from).await;
            tracing::info!(stream = %key, node = %from, ?verdict, "cluster: challenge answered");
            let deadline = Instant::now() + Duration::from_secs(1);
            match verdict {
                challenge::Verdict::Keep => {
                    me.metrics.record_cluster_challenge("kept");
                    let _ = me
                        .etcd
                        .delete(&me.keys.challenge(&key, &from), deadline)
                        .await;
                }
                challenge::Verdict::Release => {
                    me.metrics.record_cluster_challenge("released");
                    me.release_for(&key).await;
                }
            }
            lock(&me.answering).remove(&key);
        });
    }

    /// Gives `key` up for another node (our publisher is gone or was taken over).
    pub(super) async fn release_for(&self, key: &str) {
        let _ops = self.ops.lock().await;
        if self.publishes_locally(key) {
            return;
        }
        let held = lock(&self.claims).get_mut(key).and_then(|c| c.held.take());
        let rev = match held {
            Some((rev, _)) => Some(rev),
            // Not in our books: a claim of ours from an older lease, or none.
            None => {
                let deadline = Instant::now() + Duration::from_millis(500);
                match self.etcd.get(&self.keys.stream(key), deadline).await {
                    Ok(Some(kv))
                        if ClaimValue::parse(&kv.value).is_some_and(|v| v.node == self.node) =>
                    {
                        Some(kv.create_revision)
                    }
                    _ => None,
                }
            }
        };
        if let Some(rev) = rev {
            self.delete_claim(key, rev).await;
        }
    }
}
