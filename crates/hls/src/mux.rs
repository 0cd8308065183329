//! Samples into parts and segments: where to cut, and the `moof`+`mdat` bytes of each part.
//!
//! One track is *primary* (video if the stream has video, else audio) and its samples decide
//! every cut; the other track's samples ride along in the part that covers their decode time.
//! A sample's duration is the distance to the next sample of its track, so a sample is placed
//! only when its successor arrives, and the newest one waits (or, at a flush, is given the
//! previous duration).
//!
//! Cutting rules, checked each time a primary sample arrives (its predecessor now placed):
//! * **segment**: at a keyframe once the segment has reached the target duration (so a GOP
//!   longer than the target gives a segment per GOP); and, whatever the frame, once it reaches
//!   `max_segment`, `max_segment_bytes` or [`MAX_PARTS`], so a stream without keyframes
//!   cannot grow one segment without bound;
//! * **part**: before the part would exceed the part target (a part never does: a single
//!   sample longer than the part target is shortened to it, leaving a gap in decode time), or
//!   at `max_part_bytes` / [`MAX_PART_SAMPLES`].

use crate::mp4::{FragmentSample, TrackRun, fragment};
use bytes::Bytes;
use std::collections::VecDeque;
use std::time::Duration;

/// Parts in one segment before it is cut regardless.
pub(crate) const MAX_PARTS: u32 = 256;
/// Primary samples in one part before it is cut regardless.
pub(crate) const MAX_PART_SAMPLES: usize = 1024;
/// Duration of a video frame that never had a successor nor a predecessor: 1/30 s at 90 kHz.
const LONE_FRAME_TICKS: u32 = 3000;
/// Secondary samples waiting for a part before the oldest are dropped.
pub(crate) const MAX_WAITING: usize = 1024;

/// Where and when to cut (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) part_target: Duration,
    pub(crate) segment_target: Duration,
    pub(crate) max_segment: Duration,
    pub(crate) max_part_bytes: usize,
    pub(crate) max_segment_bytes: usize,
}

/// A sample with its decode time in its track's timescale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sample {
    pub(crate) dts: u64,
    pub(crate) cts: i32,
    pub(crate) keyframe: bool,
    pub(crate) data: Bytes,
}

/// What the fragmenter produced, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Out {
    Part {
        bytes: Bytes,
        duration: Duration,
        independent: bool,
        /// The first part of a new segment.
        starts_segment: bool,
        /// Decode time of its first primary sample.
        start: Duration,
    },
    SegmentEnd,
}

/// One track's samples on their way into parts.
#[derive(Debug, Clone)]
pub(crate) struct Queue {
    track_id: u32,
    timescale: u32,
    video: bool,
    /// The newest sample, whose duration is not known yet.
    last: Option<Sample>,
    /// Placed samples (duration known), oldest first, with their decode times.
    ready: VecDeque<(u64, FragmentSample)>,
    ready_ticks: u64,
    ready_bytes: usize,
    /// Duration of the last placed sample, the estimate for the next one.
    step: u32,
}

impl Queue {
    pub(crate) fn new(track_id: u32, timescale: u32, video: bool) -> Self {
        Self {
            track_id,
            timescale: timescale.max(1),
            video,
            last: None,
            ready: VecDeque::new(),
            ready_ticks: 0,
            ready_bytes: 0,
            step: 0,
        }
    }

    /// Takes `sample` as the newest and places its predecessor, with a duration of at most
    /// `cap` ticks.
    fn push(&mut self, sample: Sample, cap: u64) {
        let dts = sample.dts;
        if let Some(prev) = self.last.replace(sample) {
            let dur = dts.saturating_sub(prev.dts).clamp(1, cap.max(1));
            self.place(prev, u32::try_from(dur).unwrap_or(u32::MAX));
        }
    }

    fn place(&mut self, s: Sample, duration: u32) {
        self.step = duration;
        self.ready_ticks += u64::from(duration);
        self.ready_bytes += s.data.len();
        self.ready.push_back((
            s.dts,
            FragmentSample {
                duration,
                cts: s.cts,
                keyframe: s.keyframe,
                data: s.data,
            },
        ));
    }

    /// Places the newest sample with an estimated duration (the previous one, or `fallback`).
    fn place_last(&mut self, fallback: u32) {
        if let Some(last) = self.last.take() {
            let est = if self.step > 0 { self.step } else { fallback };
            self.place(last, est.max(1));
        }
    }

    fn take(&mut self, n: usize) -> (u64, Vec<FragmentSample>) {
        let base = self.ready.front().map_or(0, |(dts, _)| *dts);
        let taken: Vec<FragmentSample> = self
            .ready
            .drain(..n.min(self.ready.len()))
            .map(|(_, s)| s)
            .collect();
        for s in &taken {
            self.ready_ticks -= u64::from(s.duration);
            self.ready_bytes -= s.data.len();
        }
        (base, taken)
    }

    fn ticks(&self, d: Duration) -> u64 {
        let t = d.as_nanos() * u128::from(self.timescale) / 1_000_000_000;
        u64::try_from(t).unwrap_or(u64::MAX)
    }

    fn duration(&self, ticks: u64) -> Duration {
        let ns = u128::from(ticks) * 1_000_000_000 / u128::from(self.timescale);
        Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    fn held(&self) -> usize {
        self.ready_bytes + self.last.as_ref().map_or(0, |s| s.data.len())
    }
}

/// Cuts one run of samples (one init segment's worth) into parts and segments.
#[derive(Debug, Clone)]
pub(crate) struct Fragmenter {
    primary: Queue,
    secondary: Option<Queue>,
    limits: Limits,
    /// The limits in primary ticks.
    part_ticks: u64,
    segment_ticks: u64,
    max_segment_ticks: u64,
    /// The current segment so far (closed parts only).
    in_segment: bool,
    segment_ticks_so_far: u64,
    segment_bytes: usize,
    segment_parts: u32,
    /// `mfhd` sequence number of the last fragment.
    sequence: u32,
    /// Secondary samples dropped because no part came to take them.
    pub(crate) dropped: u64,
}

impl Fragmenter {
    pub(crate) fn new(
        primary: Queue,
        secondary: Option<Queue>,
        limits: Limits,
        sequence: u32,
    ) -> Self {
        let part_ticks = primary.ticks(limits.part_target).max(1);
        Self {
            segment_ticks: primary.ticks(limits.segment_target).max(1),
            max_segment_ticks: primary.ticks(limits.max_segment).max(part_ticks),
            part_ticks,
            primary,
            secondary,
            limits,
            in_segment: false,
            segment_ticks_so_far: 0,
            segment_bytes: 0,
            segment_parts: 0,
            sequence,
            dropped: 0,
        }
    }

    /// The last `mfhd` sequence number used, so the next run can continue from it.
    pub(crate) fn sequence(&self) -> u32 {
        self.sequence
    }

    /// Bytes waiting in the queues.
    pub(crate) fn held(&self) -> usize {
        self.primary.held() + self.secondary.as_ref().map_or(0, Queue::held)
    }

    /// A sample of the primary track (decode times strictly increasing).
    pub(crate) fn push_primary(&mut self, sample: Sample, out: &mut Vec<Out>) {
        let key = sample.keyframe || !self.primary.video;
        let had = self.primary.last.is_some();
        self.primary.push(sample, self.part_ticks);
        if had {
            self.cut(key, out);
        }
    }

    /// A sample of the secondary track (decode times strictly increasing).
    pub(crate) fn push_secondary(&mut self, sample: Sample) {
        let Some(q) = self.secondary.as_mut() else {
            return;
        };
        q.push(sample, u64::from(u32::MAX));
        while q.ready.len() > MAX_WAITING || q.ready_bytes > self.limits.max_part_bytes {
            q.take(1);
            self.dropped += 1;
        }
    }

    /// Ends the run: every sample goes out (the newest with an estimated duration) and the
    /// segment is closed.
    pub(crate) fn flush(&mut self, fallback_audio: u32, out: &mut Vec<Out>) {
        let fallback = if self.primary.video {
            LONE_FRAME_TICKS
        } else {
            fallback_audio
        };
        self.primary.place_last(fallback);
        if let Some(q) = self.secondary.as_mut() {
            q.place_last(fallback_audio);
        }
        if self.primary.ready_ticks > self.part_ticks && self.primary.ready.len() > 1 {
            self.emit(self.primary.ready.len() - 1, out);
        }
        if !self.primary.ready.is_empty() {
            self.emit(self.primary.ready.len(), out);
        }
        self.end_segment(out);
    }

    fn cut(&mut self, next_is_key: bool, out: &mut Vec<Out>) {
        let p = &self.primary;
        if p.ready_ticks > self.part_ticks && p.ready.len() > 1 {
            // The newest placed sample overran the part: the part ends before it.
            self.emit(p.ready.len() - 1, out);
        }
        let p = &self.primary;
        let span = self.segment_ticks_so_far + p.ready_ticks;
        // Forced cuts come before the limit would be passed by the next sample.
        let forced = span + u64::from(p.step) > self.max_segment_ticks
            || self.segment_bytes + p.ready_bytes >= self.limits.max_segment_bytes
            || self.segment_parts >= MAX_PARTS;
        if (next_is_key && span >= self.segment_ticks) || forced {
            if !p.ready.is_empty() {
                self.emit(p.ready.len(), out);
            }
            self.end_segment(out);
        } else if p.ready_ticks + u64::from(p.step) > self.part_ticks
            || p.ready_bytes >= self.limits.max_part_bytes
            || p.ready.len() >= MAX_PART_SAMPLES
        {
            self.emit(p.ready.len(), out);
        }
    }

    fn end_segment(&mut self, out: &mut Vec<Out>) {
        if self.in_segment {
            out.push(Out::SegmentEnd);
        }
        self.in_segment = false;
        self.segment_ticks_so_far = 0;
        self.segment_bytes = 0;
        self.segment_parts = 0;
    }

    /// Emits a part with the first `n` placed primary samples and the secondary samples that
    /// start before the part ends.
    fn emit(&mut self, n: usize, out: &mut Vec<Out>) {
        // The part ends where the first sample it leaves out starts.
        let end = match (self.primary.ready.get(n), &self.primary.last) {
            (Some((dts, _)), _) => Some(*dts),
            (None, Some(last)) => Some(last.dts),
            (None, None) => None,
        };
        let (base, samples) = self.primary.take(n);
        let Some(first) = samples.first() else {
            return;
        };
        let independent = first.keyframe || !self.primary.video;
        let ticks: u64 = samples.iter().map(|s| u64::from(s.duration)).sum();
        let mut runs = vec![TrackRun {
            track_id: self.primary.track_id,
            base_decode_time: base,
            samples: &samples,
            video: self.primary.video,
        }];
        let secondary = self.secondary.as_mut().map(|q| {
            let limit = end.map(|e| {
                let t =
                    u128::from(e) * u128::from(q.timescale) / u128::from(self.primary.timescale);
                u64::try_from(t).unwrap_or(u64::MAX)
            });
            let count = q
                .ready
                .iter()
                .take_while(|(dts, _)| limit.is_none_or(|l| *dts < l))
                .count();
            (q.track_id, q.video, q.take(count))
        });
        if let Some((track_id, video, (base, samples))) = &secondary {
            runs.push(TrackRun {
                track_id: *track_id,
                base_decode_time: *base,
                samples,
                video: *video,
            });
        }
        self.sequence = self.sequence.wrapping_add(1);
        let starts_segment = !self.in_segment;
        let bytes = fragment(self.sequence, starts_segment, &runs);
        self.in_segment = true;
        self.segment_ticks_so_far += ticks;
        self.segment_bytes += bytes.len();
        self.segment_parts += 1;
        out.push(Out::Part {
            duration: self.primary.duration(ticks),
            start: self.primary.duration(base),
            independent,
            starts_segment,
            bytes,
        });
    }
}
