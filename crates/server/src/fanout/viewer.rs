//! One viewer's side of a stream's fan-out: the ring receiver, merge windows, and the skip to
//! the next keyframe after falling a whole ring behind. Pure state over the connection's
//! deadline table and output queue; the driver only awaits [`Viewer::recv`] when
//! [`Viewer::can_take`] says so.

use super::{OUT_HIGH_WATER, OutQueue, resumes_at};
use crate::metrics::Metrics;
use crate::registry::PlayerGuard;
use crate::stream::{Frame, StreamEvent, Subscription};
use crate::timers::{ConnDeadlines, ConnTimer};
use rtmp_proto::session::{CloseReason, MediaKind};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

/// How a wire format turns fan-out messages into bytes on a viewer's queue.
pub(crate) trait Sink {
    /// Queues `frame` (the sink's shared encoding of it, never a copy).
    fn frame(&mut self, frame: &Frame, out: &mut OutQueue);
    /// A publisher started (`live`) or left. Returns whether it queued control output that
    /// must go out at once rather than wait for the merge window.
    fn publisher_changed(&mut self, live: bool, out: &mut OutQueue) -> bool;
}

/// What a viewer's merge windows and lag bounds are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pacing {
    /// How long output waits to batch more messages into one write ("0s": write at once).
    pub(crate) merge_window: Duration,
    /// Falling a ring behind this many times in a row without catching up closes the viewer.
    pub(crate) max_lag_drops: u32,
}

/// A viewer attached to a stream.
#[derive(Debug)]
pub(crate) struct Viewer {
    guard: PlayerGuard,
    rx: broadcast::Receiver<StreamEvent>,
    pacing: Pacing,
    /// Dropping frames until a keyframe after falling a ring behind.
    skipping: bool,
    lag_drops: u32,
    seen_video: bool,
    /// The sequence number of the next event the ring yields.
    next_seq: u64,
}

impl Viewer {
    /// Attaches with the stream's cached start (metadata, sequence headers, the current GOP)
    /// queued at once, so the viewer starts decoding without waiting for a keyframe.
    pub(crate) fn attach(
        guard: PlayerGuard,
        sub: Subscription,
        pacing: Pacing,
        sink: &mut impl Sink,
        out: &mut OutQueue,
    ) -> Self {
        let mut seen_video = false;
        for frame in &sub.initial {
            seen_video |= frame.kind == MediaKind::Video;
            sink.frame(frame, out);
        }
        Self {
            guard,
            rx: sub.rx,
            pacing,
            skipping: false,
            lag_drops: 0,
            seen_video,
            next_seq: sub.next_seq,
        }
    }

    /// Gives the viewer up to a fan-out writer: its place in the registry, its ring receiver,
    /// the sequence number of the next event and whether it has seen video. Only for a viewer
    /// that is not skipping (one just attached).
    pub(crate) fn into_parts(self) -> (PlayerGuard, broadcast::Receiver<StreamEvent>, u64, bool) {
        (self.guard, self.rx, self.next_seq, self.seen_video)
    }

    /// Whether the viewer is skipping to a keyframe (it cannot be handed over then).
    pub(crate) fn skipping(&self) -> bool {
        self.skipping
    }

    /// Fan-out messages waiting on the ring for this viewer.
    pub(crate) fn lag(&self) -> usize {
        self.rx.len()
    }

    /// Whether the viewer takes messages off the ring now: not while a merge window is open
    /// (they wait in the ring and are taken all at once when it closes), nor while enough
    /// output is queued (the ring, not the queue, absorbs a slow reader).
    pub(crate) fn can_take(out: &OutQueue, timers: &ConnDeadlines) -> bool {
        out.len() < OUT_HIGH_WATER && timers.get(ConnTimer::MergeWindow).is_none()
    }

    /// Whether queued output should be written now (no merge window open).
    pub(crate) fn may_write(out: &OutQueue, timers: &ConnDeadlines) -> bool {
        !out.is_empty() && timers.get(ConnTimer::MergeWindow).is_none()
    }

    /// The next ring event, for the driver to await while [`Self::can_take`].
    pub(crate) async fn recv(&mut self) -> Result<StreamEvent, RecvError> {
        self.rx.recv().await
    }

    /// Handles `first` (an event the driver received, or `None` to look at the ring), then
    /// drains what else is ready while there is room.
    pub(crate) fn take(
        &mut self,
        first: Option<Result<StreamEvent, RecvError>>,
        sink: &mut impl Sink,
        out: &mut OutQueue,
        timers: &mut ConnDeadlines,
        now: Instant,
        metrics: &Metrics,
    ) -> Result<(), CloseReason> {
        let mut next = first.or_else(|| self.try_recv());
        while let Some(ev) = next.take() {
            self.next_seq += match &ev {
                Err(RecvError::Lagged(missed)) => *missed,
                Err(RecvError::Closed) => 0,
                Ok(_) => 1,
            };
            match ev {
                Ok(StreamEvent::Frame(frame)) => self.frame(&frame, sink, out, timers, now),
                Ok(StreamEvent::Published) => self.publisher_changed(true, sink, out, timers),
                Ok(StreamEvent::Unpublished) => self.publisher_changed(false, sink, out, timers),
                Err(RecvError::Lagged(missed)) => self.lagged(missed, metrics)?,
                Err(RecvError::Closed) => return Ok(()),
            }
            if out.len() < OUT_HIGH_WATER {
                next = self.try_recv();
            }
        }
        if !self.skipping && self.rx.is_empty() {
            self.lag_drops = 0;
        }
        Ok(())
    }

    /// The merge window is over: takes everything the ring gathered, to be written in this
    /// same turn. When nothing came, the cadence ends and the viewer waits for the next message
    /// without any timer (a paused stream costs its viewers no wake-ups).
    pub(crate) fn window_closed(
        &mut self,
        sink: &mut impl Sink,
        out: &mut OutQueue,
        timers: &mut ConnDeadlines,
        now: Instant,
        metrics: &Metrics,
    ) -> Result<(), CloseReason> {
        timers.stop(ConnTimer::MergeWindow);
        if out.len() < OUT_HIGH_WATER {
            self.take(None, sink, out, timers, now, metrics)?;
            // Taking may have opened a window for an empty queue: this one is already over.
            timers.stop(ConnTimer::MergeWindow);
        }
        Ok(())
    }

    /// A write emptied the queue: the next window starts now, so the viewer wakes once per
    /// window, by its timer, and takes what the ring gathered meanwhile.
    pub(crate) fn flushed(&self, timers: &mut ConnDeadlines, now: Instant) {
        let window = self.pacing.merge_window;
        if !window.is_zero() {
            timers.set(ConnTimer::MergeWindow, now + window);
        }
    }

    fn frame(
        &mut self,
        frame: &Frame,
        sink: &mut impl Sink,
        out: &mut OutQueue,
        timers: &mut ConnDeadlines,
        now: Instant,
    ) {
        self.seen_video |= frame.kind == MediaKind::Video;
        if self.skipping {
            if !resumes_at(frame, self.seen_video) {
                return;
            }
            self.skipping = false;
            // Frames were lost: resend the decoder configuration before the keyframe.
            for h in &self.guard.stream().headers() {
                sink.frame(h, out);
            }
        }
        if out.is_empty() && timers.get(ConnTimer::MergeWindow).is_none() {
            let window = self.pacing.merge_window;
            if !window.is_zero() {
                timers.set(ConnTimer::MergeWindow, now + window);
            }
        }
        sink.frame(frame, out);
    }

    fn publisher_changed(
        &mut self,
        live: bool,
        sink: &mut impl Sink,
        out: &mut OutQueue,
        timers: &mut ConnDeadlines,
    ) {
        if sink.publisher_changed(live, out) {
            timers.stop(ConnTimer::MergeWindow);
        }
    }

    fn lagged(&mut self, missed: u64, metrics: &Metrics) -> Result<(), CloseReason> {
        self.skipping = true;
        self.lag_drops += 1;
        metrics.record_dropped(missed);
        tracing::debug!(
            missed,
            drops = self.lag_drops,
            "viewer fell behind, skipping to a keyframe"
        );
        if self.lag_drops > self.pacing.max_lag_drops {
            return Err(CloseReason::PlayStall);
        }
        Ok(())
    }

    /// The next event if one is waiting (a lag counts as one).
    fn try_recv(&mut self) -> Option<Result<StreamEvent, RecvError>> {
        match self.rx.try_recv() {
            Ok(ev) => Some(Ok(ev)),
            Err(TryRecvError::Lagged(n)) => Some(Err(RecvError::Lagged(n))),
            Err(_) => None,
        }
    }
}
