//! The fan-out writers: one per core, each a task that sleeps until its next tick or until
//! something reaches its inbox (a viewer to seat, a connection's control output or departure,
//! a stream's new events). Viewers are spread over the writers in turn, so one stream's
//! fan-out uses every core, and each writer reads the stream's ring once for all of its own
//! viewers: the cores do not contend on per-viewer state or reference counts.

use super::OutQueue;
use super::budget::LatencyBudget;
use super::link::{Link, Seated};
use super::writer::{Target, Writer, WriterConfig};
use crate::config::Merging;
use crate::control::ConnControl;
use crate::metrics::Metrics;
use crate::registry::PlayerGuard;
use crate::stream::{Stream, StreamEvent};
use crate::util::lock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, broadcast};

/// A viewer handed to a writer.
#[derive(Debug)]
pub(crate) struct NewSeat {
    pub(super) link: Arc<Link>,
    pub(super) target: Arc<dyn Target>,
    pub(super) stream: Arc<Stream>,
    pub(super) rx: broadcast::Receiver<StreamEvent>,
    pub(super) next_seq: u64,
    pub(super) pending: OutQueue,
    pub(super) seen_video: bool,
}

#[derive(Debug, Default)]
struct Queued {
    seats: Vec<NewSeat>,
    links: Vec<Arc<Link>>,
    groups: Vec<usize>,
}

/// What reaches a writer from other tasks.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    queued: Mutex<Queued>,
    notify: Notify,
}

impl Inbox {
    pub(super) fn take(&self) -> (Vec<NewSeat>, Vec<Arc<Link>>, Vec<usize>) {
        let mut q = lock(&self.queued);
        (
            std::mem::take(&mut q.seats),
            std::mem::take(&mut q.links),
            std::mem::take(&mut q.groups),
        )
    }

    fn push(&self, f: impl FnOnce(&mut Queued)) {
        f(&mut lock(&self.queued));
        self.notify.notify_one();
    }

    pub(super) fn link_changed(&self, link: Arc<Link>) {
        self.push(|q| q.links.push(link));
    }

    pub(super) fn group_changed(&self, key: usize) {
        self.push(|q| q.groups.push(key));
    }
}

/// The set of fan-out writers of a server.
#[derive(Debug)]
pub(crate) struct Shards {
    inboxes: Vec<Arc<Inbox>>,
    next: AtomicUsize,
    config: WriterConfig,
    merging: Merging,
    metrics: Arc<Metrics>,
}

impl Shards {
    /// `n` writers (at least one); none runs until [`Self::spawn`].
    pub(crate) fn new(
        n: usize,
        config: WriterConfig,
        merging: Merging,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            inboxes: (0..n.max(1)).map(|_| Arc::default()).collect(),
            next: AtomicUsize::new(0),
            config,
            merging,
            metrics,
        }
    }

    /// Starts the writers' tasks on the current runtime; they end with `shutdown`.
    pub(crate) fn spawn(&self, shutdown: tokio_util::sync::CancellationToken) {
        for inbox in &self.inboxes {
            let mut writer = self.writer(inbox.clone(), Instant::now());
            let inbox = inbox.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    () = run(&mut writer, &inbox) => {}
                }
            });
        }
    }

    /// A writer over `inbox` (the tasks' and the tests').
    pub(crate) fn writer(&self, inbox: Arc<Inbox>, now: Instant) -> Writer {
        let budget = match self.merging {
            Merging::Budget(max) => LatencyBudget::adaptive(max, now),
            Merging::Fixed(w) => LatencyBudget::fixed(w, now),
        };
        Writer::new(self.config, budget, self.metrics.clone(), inbox)
    }

    /// The inbox of writer `i` (tests drive writers by hand).
    #[cfg(test)]
    pub(crate) fn inbox(&self, i: usize) -> Arc<Inbox> {
        self.inboxes[i % self.inboxes.len()].clone()
    }

    /// Hands a viewer to the next writer: from now on that writer writes `start` (output the
    /// connection had queued), then the stream's events from `next_seq`, to `target`.
    #[allow(clippy::too_many_arguments)] // a viewer's whole hand-over, taken apart at once
    pub(crate) fn seat(
        &self,
        control: Arc<ConnControl>,
        target: Arc<dyn Target>,
        guard: PlayerGuard,
        rx: broadcast::Receiver<StreamEvent>,
        next_seq: u64,
        start: OutQueue,
        seen_video: bool,
        now: Instant,
    ) -> Seated {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.inboxes.len();
        let inbox = self.inboxes[i].clone();
        let link = Link::new(control, inbox.clone(), now);
        let seat = NewSeat {
            link: link.clone(),
            target,
            stream: guard.stream().clone(),
            rx,
            next_seq,
            pending: start,
            seen_video,
        };
        inbox.push(|q| q.seats.push(seat));
        Seated::new(guard, link)
    }
}

/// A writer's task: run, sleep until the next tick or the inbox, measure the time worked.
async fn run(writer: &mut Writer, inbox: &Inbox) {
    let sleep = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(sleep);
    loop {
        let t0 = Instant::now();
        let next = writer.run(t0);
        let t1 = Instant::now();
        writer.budget.record(t1, t1 - t0);
        let at = next.map_or_else(
            || tokio::time::Instant::now() + Duration::from_secs(3600),
            tokio::time::Instant::from_std,
        );
        if sleep.deadline() != at {
            sleep.as_mut().reset(at);
        }
        tokio::select! {
            biased;
            () = inbox.notify.notified() => {}
            () = &mut sleep => {}
        }
    }
}
