//! A fan-out writer: the viewers of one shard, grouped by stream. A group takes its stream's
//! events off the broadcast ring once for all its viewers into a short log, and each tick walks
//! its viewers and writes each one everything from its place in the log in one vectored write,
//! straight from the shared buffers (no per-viewer copy, clone or task wake-up). How long a tick
//! waits after the last one is the latency budget's current window ([`LatencyBudget`]).
//!
//! Per viewer it keeps what the per-connection [`Viewer`](super::Viewer) keeps: the skip to the
//! next keyframe (with fresh decoder configuration) after falling a whole log behind, the close
//! after `max_lag_drops` such falls in a row, and a publisher change handed to the connection to
//! answer in its protocol before anything after it is written. Sockets are a [`Target`], so all
//! of it runs in tests against scripted sockets on an explicit clock.

use super::budget::LatencyBudget;
use super::link::{Link, LinkEnd};
use super::shards::{Inbox, NewSeat};
use super::{OutQueue, resumes_at};
use crate::metrics::Metrics;
use crate::stream::{Stream, StreamEvent, Watcher};
use rtmp_proto::session::MediaKind;
use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSlice};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::broadcast::{self, error::TryRecvError};

/// Buffers per vectored write (Linux takes up to 1024; a merge window holds a few dozen).
const MAX_IOV: usize = 128;
/// Events a group keeps behind its newest even when every viewer has written them: a viewer
/// that attaches just after may start a little back in the stream.
const KEEP: u64 = 64;
/// A viewer whose socket was full is tried again this soon even when nothing new comes.
const RETRY: Duration = Duration::from_millis(50);

/// Where a viewer's bytes go (a socket; scripted in tests).
pub(crate) trait Target: Send + Sync + std::fmt::Debug {
    /// One non-blocking vectored write.
    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
}

impl Target for tokio::net::TcpStream {
    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        // tokio keeps the socket's readiness: on a full socket this returns WouldBlock without
        // a syscall until the kernel reports room again.
        self.try_write_vectored(bufs)
    }
}

/// Tells the writer that a group's stream sent events: at most once per drain, and not at all
/// while the writer has a tick for the group coming (it drains the group then), so a stream's
/// messages wake each writer once per merge window, not once per message.
#[derive(Debug)]
pub(super) struct GroupWatch {
    key: usize,
    /// Events were sent since the last drain.
    dirty: AtomicBool,
    /// The writer will look at the group at its next tick anyway.
    ticking: AtomicBool,
    inbox: Arc<Inbox>,
}

impl Watcher for GroupWatch {
    fn wake(&self) {
        // SeqCst pairs with the writer's store of `ticking` then load of `dirty` (see
        // `Writer::run`): one of the two sides always sees the other.
        if !self.dirty.swap(true, Ordering::SeqCst) && !self.ticking.load(Ordering::SeqCst) {
            self.inbox.group_changed(self.key);
        }
    }
}

/// One viewer in a group.
#[derive(Debug)]
struct Seat {
    link: Arc<Link>,
    target: Arc<dyn Target>,
    /// The sequence number of the next event to write.
    cursor: u64,
    /// Bytes that go before the event at `cursor`: the start handed over, control output,
    /// the rest of a message a write took only part of.
    pending: OutQueue,
    skipping: bool,
    seen_video: bool,
    lag_drops: u32,
    blocked: bool,
    /// Stopped at a publisher change until the connection answers it.
    at_notice: bool,
    /// Control output came: write this viewer now, whatever the window.
    urgent: bool,
}

/// A stream's viewers in this writer.
#[derive(Debug)]
struct Group {
    stream: Arc<Stream>,
    watch: Arc<GroupWatch>,
    rx: broadcast::Receiver<StreamEvent>,
    log: VecDeque<StreamEvent>,
    /// Sequence number of `log[0]`; the next event `rx` yields is `start + log.len()`.
    start: u64,
    seats: Vec<Seat>,
    /// No merged write before then.
    next_write: Instant,
}

impl Group {
    fn head(&self) -> u64 {
        self.start + self.log.len() as u64
    }

    fn event(&self, seq: u64) -> Option<&StreamEvent> {
        self.log
            .get(usize::try_from(seq.checked_sub(self.start)?).ok()?)
    }
}

/// What the writer needs from the configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriterConfig {
    /// Events a group keeps for its slowest viewer (`[play] queue_messages`).
    pub(crate) log_max: usize,
    /// `[play] max_lag_drops`.
    pub(crate) max_lag_drops: u32,
}

/// A shard's viewers and its latency budget.
#[derive(Debug)]
pub(crate) struct Writer {
    groups: HashMap<usize, Group>,
    pub(super) budget: LatencyBudget,
    config: WriterConfig,
    metrics: Arc<Metrics>,
    inbox: Arc<Inbox>,
}

impl Writer {
    pub(crate) fn new(
        config: WriterConfig,
        budget: LatencyBudget,
        metrics: Arc<Metrics>,
        inbox: Arc<Inbox>,
    ) -> Self {
        Self {
            groups: HashMap::new(),
            budget,
            config,
            metrics,
            inbox,
        }
    }

    /// Viewers served.
    #[cfg(test)]
    pub(crate) fn seats(&self) -> usize {
        self.groups.values().map(|g| g.seats.len()).sum()
    }

    /// Takes what the inbox gathered, writes what is due at `now`; returns when to run next.
    pub(crate) fn run(&mut self, now: Instant) -> Option<Instant> {
        // The groups woken are found by their flags, with those that waited for this tick.
        let (seats, links, _woken) = self.inbox.take();
        for seat in seats {
            self.seat(seat, now);
        }
        for link in links {
            self.link_changed(&link);
        }
        let window = self.budget.window();
        let mut next: Option<Instant> = None;
        let mut emptied = Vec::new();
        for (key, g) in &mut self.groups {
            if g.watch.dirty.load(Ordering::SeqCst) {
                drain(g);
            }
            let due = window.is_zero() || now >= g.next_write;
            let mut wrote = false;
            let mut waiting = false;
            let mut i = 0;
            let head = g.head();
            while i < g.seats.len() {
                let seat = &mut g.seats[i];
                let has_work = !seat.pending.is_empty() || (seat.cursor < head && !seat.at_notice);
                if has_work && (due || seat.urgent || seat.blocked) {
                    let keep = write_seat(g, i, now, &self.config, &self.metrics);
                    wrote = true;
                    if !keep {
                        g.seats.swap_remove(i);
                        continue;
                    }
                }
                let seat = &g.seats[i];
                waiting |= seat.blocked;
                if !seat.pending.is_empty() || (seat.cursor < head && !seat.at_notice) {
                    waiting = true;
                }
                i += 1;
            }
            if wrote && due {
                g.next_write = now + window;
                // Keep the cadence one more window: the stream's next messages are gathered
                // by that tick instead of each waking the writer. A tick that finds nothing
                // stops it, so a paused stream costs nothing.
                waiting |= !window.is_zero();
            }
            trim(g, self.config.log_max);
            let ticking = waiting && !window.is_zero() && !g.seats.is_empty();
            g.watch.ticking.store(ticking, Ordering::SeqCst);
            if !ticking && g.watch.dirty.load(Ordering::SeqCst) {
                // Events came after the drain while the stream thought a tick was coming.
                next = Some(now);
            }
            if g.seats.is_empty() {
                emptied.push(*key);
            } else if waiting {
                let blocked = g.seats.iter().any(|s| s.blocked);
                let at = if blocked {
                    g.next_write.min(now + RETRY)
                } else {
                    g.next_write
                };
                next = Some(next.map_or(at, |n| n.min(at.max(now))));
            }
        }
        for key in emptied {
            if let Some(g) = self.groups.remove(&key) {
                let watch: Arc<dyn Watcher> = g.watch;
                g.stream.unwatch(&watch);
            }
        }
        next
    }

    fn seat(&mut self, new: NewSeat, now: Instant) {
        let key = Arc::as_ptr(&new.stream) as usize;
        let NewSeat {
            link,
            target,
            stream,
            rx,
            next_seq,
            pending,
            seen_video,
        } = new;
        if link.is_detached() {
            return;
        }
        let group = self.groups.entry(key).or_insert_with(|| {
            let watch = Arc::new(GroupWatch {
                key,
                dirty: AtomicBool::new(true),
                ticking: AtomicBool::new(false),
                inbox: self.inbox.clone(),
            });
            stream.watch(watch.clone());
            Group {
                stream: stream.clone(),
                watch,
                rx,
                log: VecDeque::new(),
                start: next_seq,
                seats: Vec::new(),
                next_write: now,
            }
        });
        drain(group);
        group.seats.push(Seat {
            link,
            target,
            cursor: next_seq,
            pending,
            skipping: false,
            seen_video,
            lag_drops: 0,
            blocked: false,
            at_notice: false,
            urgent: true,
        });
    }

    fn link_changed(&mut self, link: &Arc<Link>) {
        for g in self.groups.values_mut() {
            let Some(i) = g.seats.iter().position(|s| Arc::ptr_eq(&s.link, link)) else {
                continue;
            };
            let seat = &mut g.seats[i];
            let (resume, detached) = link.take_control(&mut seat.pending);
            if detached {
                g.seats.swap_remove(i);
                return;
            }
            if resume && seat.at_notice {
                seat.at_notice = false;
                seat.cursor += 1;
            }
            seat.urgent = true;
            return;
        }
    }
}

/// Takes the stream's new events off the ring into the log.
fn drain(g: &mut Group) {
    g.watch.dirty.store(false, Ordering::SeqCst);
    loop {
        match g.rx.try_recv() {
            Ok(ev) => g.log.push_back(ev),
            Err(TryRecvError::Lagged(n)) => {
                // The ring overtook this writer: what it held is gone for every viewer here.
                g.start = g.head() + n;
                g.log.clear();
            }
            Err(TryRecvError::Empty | TryRecvError::Closed) => return,
        }
    }
}

/// Drops the events every viewer has written (keeping [`KEEP`] for late attachers), and the
/// oldest beyond `log_max` whatever the slowest viewer's place.
fn trim(g: &mut Group, log_max: usize) {
    let slowest = g.seats.iter().map(|s| s.cursor).min().unwrap_or(u64::MAX);
    let keep_from = slowest.min(g.head().saturating_sub(KEEP));
    while (g.start < keep_from || g.log.len() > log_max) && g.log.pop_front().is_some() {
        g.start += 1;
    }
}

/// Writes seat `i` of `g` as far as its socket takes; `false` when the seat is done for.
fn write_seat(
    g: &mut Group,
    i: usize,
    now: Instant,
    config: &WriterConfig,
    metrics: &Metrics,
) -> bool {
    let head = g.head();
    let start = g.start;
    loop {
        let seat = &mut g.seats[i];
        seat.urgent = false;
        if seat.cursor < start {
            metrics.record_dropped(start - seat.cursor);
            seat.cursor = start;
            seat.skipping = true;
            seat.lag_drops += 1;
            tracing::debug!(
                drops = seat.lag_drops,
                "viewer fell behind, skipping to a keyframe"
            );
            if seat.lag_drops > config.max_lag_drops {
                seat.link.end(LinkEnd::Lagged);
                return false;
            }
        }
        // Skip to a keyframe, then stop before the next publisher change.
        let mut end = seat.cursor;
        while end < head && !seat.at_notice {
            match g
                .log
                .get(usize::try_from(end - start).unwrap_or(usize::MAX))
            {
                Some(StreamEvent::Frame(f)) if seat.skipping => {
                    if resumes_at(f, seat.seen_video) {
                        seat.skipping = false;
                        for h in g.stream.headers() {
                            seat.pending.push(h.chunks.clone());
                        }
                        continue;
                    }
                    seat.seen_video |= f.kind == MediaKind::Video;
                    seat.cursor += 1;
                    end += 1;
                }
                Some(StreamEvent::Frame(_)) => end += 1,
                _ => break,
            }
        }
        let seat = &g.seats[i];
        let mut iov = [IoSlice::new(&[]); MAX_IOV];
        let mut n_iov = seat.pending.fill(&mut iov);
        let mut frames: u64 = 0;
        let mut total = seat.pending.len();
        while n_iov < MAX_IOV && seat.cursor + frames < end {
            if let Some(StreamEvent::Frame(f)) = g.event(seat.cursor + frames) {
                iov[n_iov] = IoSlice::new(&f.chunks);
                total += f.chunks.len();
                n_iov += 1;
            }
            frames += 1;
        }
        let at_end = seat.cursor + frames == end && n_iov < MAX_IOV;
        if n_iov == 0 {
            reached(g, i, end, head);
            return true;
        }
        let result = seat.target.write_vectored(&iov[..n_iov]);
        let seat = &mut g.seats[i];
        match result {
            Ok(n) => {
                seat.link.wrote(n, now);
                let mut left = n;
                let from_pending = left.min(seat.pending.len());
                seat.pending.advance(from_pending);
                left -= from_pending;
                for _ in 0..frames {
                    let Some(StreamEvent::Frame(f)) = g
                        .log
                        .get(usize::try_from(seat.cursor - start).unwrap_or(usize::MAX))
                    else {
                        seat.cursor += 1;
                        continue;
                    };
                    if left == 0 {
                        break;
                    }
                    seat.seen_video |= f.kind == MediaKind::Video;
                    if left < f.chunks.len() {
                        seat.pending.push(f.chunks.slice(left..));
                        left = 0;
                    } else {
                        left -= f.chunks.len();
                    }
                    seat.cursor += 1;
                }
                if n < total {
                    // The socket is full: the kernel says when it has room again.
                    set_blocked(seat, true);
                    return true;
                }
                if at_end {
                    set_blocked(seat, false);
                    reached(g, i, end, head);
                    return true;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                set_blocked(seat, true);
                return true;
            }
            Err(e) => {
                seat.link.end(LinkEnd::Io(e));
                return false;
            }
        }
    }
}

fn set_blocked(seat: &mut Seat, blocked: bool) {
    seat.blocked = blocked;
    seat.link.set_blocked(blocked);
    seat.link
        .queued
        .store(seat.pending.len(), Ordering::Relaxed);
}

/// Seat `i` wrote everything up to `end`: a publisher change there goes to its connection; a
/// viewer caught up with the stream is no longer lagging.
fn reached(g: &mut Group, i: usize, end: u64, head: u64) {
    let notice = match g.event(end) {
        Some(StreamEvent::Published) => Some(true),
        Some(StreamEvent::Unpublished) => Some(false),
        _ => None,
    };
    let seat = &mut g.seats[i];
    if seat.cursor != end || !seat.pending.is_empty() {
        return;
    }
    if let Some(live) = notice
        && !seat.at_notice
    {
        seat.at_notice = true;
        seat.link.notice(live);
    }
    if seat.cursor == head && !seat.skipping {
        seat.lag_drops = 0;
    }
    seat.link.lag.store(
        usize::try_from(head - seat.cursor).unwrap_or(usize::MAX),
        Ordering::Relaxed,
    );
    seat.link.queued.store(0, Ordering::Relaxed);
}
