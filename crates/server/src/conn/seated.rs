//! A player whose media a fan-out writer writes: the hand-over once the driver shares the
//! socket, what the writer reports (an end, a full socket, a publisher change to answer), and
//! the write-stall deadline kept in step with the writer's progress. The connection keeps its
//! reads and its deadlines; its session's output goes to the writer, before the next message.

use super::core::{Held, RtmpConn};
use crate::evidence::io_reason;
use crate::fanout::{LinkEnd, Target};
use rtmp_proto::session::CloseReason;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl RtmpConn {
    /// Hands the viewer just attached to a fan-out writer, with what is queued for it (the play
    /// replies and the cached start).
    pub(super) fn seat(&mut self, target: Arc<dyn Target>, now: Instant) {
        self.handoff = false;
        if self.closing.is_some() {
            return;
        }
        let Held::Stream(viewer) = std::mem::replace(&mut self.held, Held::Nothing) else {
            return;
        };
        if viewer.skipping() {
            self.held = Held::Stream(viewer);
            return;
        }
        let (guard, rx, next_seq, seen_video) = viewer.into_parts();
        let start = std::mem::take(&mut self.out);
        let seated = self.shared.fanout.seat(
            self.control.clone(),
            target,
            guard,
            rx,
            next_seq,
            start,
            seen_video,
            now,
        );
        self.held = Held::Seated(seated);
        self.record.synced_out = self.control.bytes_out.load(Ordering::Relaxed);
        self.timers.stop(crate::timers::ConnTimer::MergeWindow);
        self.session.on_write_state(now, false, false);
        self.settle(now);
    }

    /// The writer has news: its end closes the connection; a publisher change is answered in
    /// the session's words (the writer holds later media until then); a full socket arms the
    /// write-stall deadline.
    pub(super) fn on_writer(&mut self, now: Instant) -> Result<(), CloseReason> {
        let Held::Seated(seated) = &self.held else {
            return Ok(());
        };
        match seated.take_end() {
            Some(LinkEnd::Io(e)) => return Err(io_reason(&e, true)),
            Some(LinkEnd::Lagged) => return Err(CloseReason::PlayStall),
            None => {}
        }
        if let Some(live) = seated.take_notice() {
            self.session.play_notify(live);
            self.settle(now);
            if let Held::Seated(seated) = &self.held {
                seated.resume();
            }
        }
        self.sync_seated(now);
        self.settle(now);
        Ok(())
    }

    /// Tells the session whether the writer's output is waiting for the socket and whether it
    /// moved since the last look, so `play_stall_timeout` judges the writer's progress.
    pub(super) fn sync_seated(&mut self, now: Instant) {
        let Held::Seated(seated) = &self.held else {
            return;
        };
        let out = self.control.bytes_out.load(Ordering::Relaxed);
        let progressed = out != self.record.synced_out;
        self.record.synced_out = out;
        // The stall is counted from the writer's last progress, not from when we looked.
        let at = if progressed {
            let tx = seated.last_tx().min(now);
            self.record.last_tx = self.record.last_tx.max(tx);
            tx
        } else {
            now
        };
        self.session
            .on_write_state(at, seated.blocked(), progressed);
        self.timers.put(
            crate::timers::ConnTimer::Session,
            self.session.poll_timeout(),
        );
    }
}
