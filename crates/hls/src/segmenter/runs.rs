//! Runs: the frames held until a run can start, starting one (a new init segment) and
//! closing it, and publishing the fragmenter's output to the store.

use super::{Run, START_WAIT_MS, Segmenter};
use crate::error::Track;
use crate::mp4::{AUDIO_TRACK_ID, VIDEO_TIMESCALE, VIDEO_TRACK_ID, init_segment};
use crate::mux::{Fragmenter, Limits, Out, Queue};
use crate::playlist::VariantInfo;
use crate::store::Part;
use crate::timeline::AudioClock;
use bytes::Bytes;

/// A frame waiting for the run to start.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub(crate) track: Track,
    /// Output time, ms.
    pub(crate) ms: u64,
    pub(crate) cts: i32,
    pub(crate) keyframe: bool,
    pub(crate) data: Bytes,
}

impl Segmenter {
    /// Holds a frame until a run starts. Video is held from a keyframe on; audio, while a
    /// video configuration waits for its keyframe, only for [`START_WAIT_MS`] (without one,
    /// [`try_start`](Self::try_start) starts an audio-only run at that age); everything
    /// within `max_segment_bytes`.
    pub(super) fn hold(&mut self, frame: Held) {
        let now = frame.ms;
        self.held_bytes += frame.data.len();
        self.held.push_back(frame);
        let video_held = self.held.iter().any(|h| h.track == Track::Video);
        while let Some(front) = self.held.front() {
            let waiting_for_key = !video_held && self.video.is_some();
            let stale = waiting_for_key && now.saturating_sub(front.ms) > START_WAIT_MS
                || self.held_bytes > self.config.max_segment_bytes;
            if !stale {
                break;
            }
            self.held_bytes -= front.data.len();
            self.held.pop_front();
            self.stats.dropped_frames += 1;
        }
    }

    /// Starts a run if enough is known: with video once a keyframe is held and the audio
    /// configuration is in (or [`START_WAIT_MS`] passed without one, or the hold is big);
    /// audio-only once audio has flowed that long without any video configuration.
    pub(super) fn try_start(&mut self, now: u64) {
        if self.run.is_some() || self.unsupported.is_some() {
            return;
        }
        let first = |track| self.held.iter().find(|h| h.track == track).map(|h| h.ms);
        match (first(Track::Video), first(Track::Audio)) {
            (Some(v0), _) if self.video.is_some() => {
                let waited = now.saturating_sub(v0) >= START_WAIT_MS;
                if self.audio.is_some() || waited || self.held_bytes > self.config.max_part_bytes {
                    self.start_run(true, v0);
                }
            }
            (None, Some(a0))
                if self.video.is_none()
                    && self.audio.is_some()
                    && now.saturating_sub(a0) >= START_WAIT_MS =>
            {
                self.start_run(false, a0);
            }
            _ => {}
        }
    }

    pub(super) fn clear_held(&mut self) {
        self.stats.dropped_frames += self.held.len() as u64;
        self.held.clear();
        self.held_bytes = 0;
    }

    /// Starts a run (a new init segment) at output time `start_ms`: with video when a held
    /// keyframe starts it, else audio-only. Held frames from `start_ms` on go into it.
    pub(super) fn start_run(&mut self, with_video: bool, start_ms: u64) {
        let video = if with_video { self.video.clone() } else { None };
        let audio = self.audio.clone();
        let init = self.next_init;
        self.next_init += 1;
        self.store
            .add_init(init, init_segment(video.as_ref(), audio.as_ref()));
        self.stats.inits += 1;
        let limits = Limits {
            part_target: self.config.part_duration,
            segment_target: self.config.segment_duration,
            max_segment: self.config.max_segment_duration,
            max_part_bytes: self.config.max_part_bytes,
            max_segment_bytes: self.config.max_segment_bytes,
        };
        let audio_queue = audio
            .as_ref()
            .map(|a| Queue::new(AUDIO_TRACK_ID, a.sample_rate, false));
        let (primary, secondary) = match (&video, audio_queue) {
            (Some(_), q) => (Queue::new(VIDEO_TRACK_ID, VIDEO_TIMESCALE, true), q),
            (None, Some(q)) => (q, None),
            (None, None) => return,
        };
        let codecs: Vec<&str> = [
            video.as_ref().map(|v| v.codecs.as_str()),
            audio.as_ref().map(|a| a.codecs.as_str()),
        ]
        .into_iter()
        .flatten()
        .collect();
        self.variant = Some(VariantInfo {
            codecs: codecs.join(","),
            resolution: video.as_ref().map(|v| (v.width, v.height)),
        });
        self.audio_clock = AudioClock::default();
        self.run = Some(Run {
            init,
            video,
            audio,
            frag: Fragmenter::new(primary, secondary, limits, self.sequence),
        });
        let held = std::mem::take(&mut self.held);
        self.held_bytes = 0;
        for h in held {
            match h.track {
                Track::Video if with_video => self.mux_video(h.ms, h.cts, h.keyframe, h.data),
                Track::Audio if h.ms >= start_ms => self.mux_audio(h.ms, h.data),
                _ => self.stats.dropped_frames += 1,
            }
        }
    }

    /// Flushes the run and closes its last segment; the next run starts a discontinuity.
    pub(super) fn close_run(&mut self) {
        if let Some(mut run) = self.run.take() {
            let mut out = Vec::new();
            let fallback = run
                .audio
                .as_ref()
                .map_or(1024, |a| a.frame_samples.max(960));
            run.frag.flush(fallback, &mut out);
            self.sequence = run.frag.sequence();
            self.stats.dropped_frames += run.frag.dropped;
            self.run = Some(run);
            self.apply(out);
            self.run = None;
        }
        if self.store.close() {
            self.stats.segments += 1;
        }
        self.discontinuity = self.discontinuity || self.store.last_complete_msn().is_some();
    }

    /// Publishes the fragmenter's output.
    pub(super) fn apply(&mut self, out: Vec<Out>) {
        let Some(init) = self.run.as_ref().map(|r| r.init) else {
            return;
        };
        for o in out {
            match o {
                Out::Part {
                    bytes,
                    duration,
                    independent,
                    starts_segment,
                    start,
                } => {
                    let part = Part {
                        duration,
                        independent,
                        bytes,
                    };
                    if starts_segment {
                        if self.store.close() {
                            self.stats.segments += 1;
                        }
                        let pdt = self.wallclock.map(|(media, wall)| {
                            let start = u64::try_from(start.as_millis()).unwrap_or(u64::MAX);
                            wall.saturating_add(start).saturating_sub(media)
                        });
                        let disc = std::mem::take(&mut self.discontinuity);
                        self.store.begin(init, disc, pdt, part);
                    } else if !self.store.push(part) {
                        continue;
                    }
                    self.stats.parts += 1;
                }
                Out::SegmentEnd => {
                    if self.store.close() {
                        self.stats.segments += 1;
                    }
                }
            }
        }
    }
}
