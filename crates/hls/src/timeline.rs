//! Publisher timestamps (32-bit milliseconds, per track, from anywhere) onto one output
//! timeline that starts near 0 and only moves forward.
//!
//! * Differences are taken modulo 2^32 as signed 32-bit values, so the RTMP timestamp wrap
//!   (every 49.7 days) is just another small step.
//! * The first message of the stream is time 0 (or, after a restart, just after the previous
//!   content), and both tracks keep their relative offset, so A/V sync survives.
//! * Junk is contained per track: a step backwards of more than [`MAX_BACKWARD_MS`] or
//!   forwards of more than [`MAX_FORWARD_MS`] re-anchors that track to continue where it was;
//!   smaller backward steps (and repeats) are nudged to 1 ms after the previous message without
//!   moving the anchor, so a little jitter does not accumulate.

use crate::error::Track;

/// A step back larger than this is a new time base, not jitter.
pub(crate) const MAX_BACKWARD_MS: i64 = 1_000;
/// A step forward larger than this is a new time base, not a gap.
pub(crate) const MAX_FORWARD_MS: i64 = 10_000;

#[derive(Debug, Clone, Copy, Default)]
struct TrackTime {
    /// Last raw timestamp and its unwrapped value relative to the stream origin.
    last: Option<(u32, i64)>,
    /// Added to the unwrapped value (moved only when re-anchoring).
    offset: i64,
    /// Last output time.
    out: Option<u64>,
    /// Last positive step, used as the step when re-anchoring.
    step: u64,
}

/// Maps raw message timestamps to output milliseconds.
#[derive(Debug, Clone, Default)]
pub(crate) struct Timeline {
    origin: Option<u32>,
    /// Output time of the origin.
    base: u64,
    video: TrackTime,
    audio: TrackTime,
}

impl Timeline {
    /// The output time (ms) for a message on `track` stamped `raw`; strictly increasing per
    /// track.
    pub(crate) fn map(&mut self, track: Track, raw: u32) -> u64 {
        let origin = *self.origin.get_or_insert(raw);
        let base = self.base;
        let t = match track {
            Track::Video => &mut self.video,
            Track::Audio => &mut self.audio,
        };
        let unwrapped = match t.last {
            None => i64::from(raw.wrapping_sub(origin) as i32),
            Some((last_raw, last)) => {
                last.saturating_add(i64::from(raw.wrapping_sub(last_raw) as i32))
            }
        };
        t.last = Some((raw, unwrapped));
        let wanted = i64::try_from(base)
            .unwrap_or(i64::MAX)
            .saturating_add(unwrapped)
            .saturating_add(t.offset);
        let out = match t.out {
            None => {
                // A track starting (slightly) before the origin starts at the origin.
                if wanted < 0 {
                    t.offset = t.offset.saturating_sub(wanted);
                }
                u64::try_from(wanted).unwrap_or(0)
            }
            Some(prev) => {
                let prev_i = i64::try_from(prev).unwrap_or(i64::MAX);
                let step = wanted.saturating_sub(prev_i);
                if !(-MAX_BACKWARD_MS..=MAX_FORWARD_MS).contains(&step) {
                    let next = prev.saturating_add(t.step.max(1));
                    t.offset = t.offset.saturating_add(
                        i64::try_from(next)
                            .unwrap_or(i64::MAX)
                            .saturating_sub(wanted),
                    );
                    next
                } else if step <= 0 {
                    prev.saturating_add(1)
                } else {
                    t.step = u64::try_from(step).unwrap_or(1).min(1_000);
                    u64::try_from(wanted).unwrap_or(prev.saturating_add(1))
                }
            }
        };
        t.out = Some(out);
        out
    }

    /// Starts a new time base (a new publisher): the next message, on either track, lands just
    /// after everything output so far.
    pub(crate) fn restart(&mut self) {
        let end = [self.video, self.audio]
            .iter()
            .filter_map(|t| t.out.map(|o| o.saturating_add(t.step.max(1))))
            .max()
            .unwrap_or(0);
        *self = Self {
            base: end,
            ..Self::default()
        };
    }
}

/// Audio decode times in samples. Millisecond timestamps are rounded (an AAC frame at 44.1 kHz
/// is 23.22 ms, sent as 23 or 24), so while the timestamps agree with the sample count to
/// within half a frame, the next time is the previous one plus the frame's samples, exactly;
/// beyond that (a gap, an overlap) it follows the timestamp.
#[derive(Debug, Clone, Default)]
pub(crate) struct AudioClock {
    /// Where the next frame should start, if the last one's length was known.
    next: Option<u64>,
    last: Option<u64>,
}

impl AudioClock {
    /// The decode time, in samples at `rate`, of a frame stamped `ms` holding `samples`.
    pub(crate) fn ticks(&mut self, ms: u64, rate: u32, samples: Option<u32>) -> u64 {
        let from_ms = u64::try_from(u128::from(ms) * u128::from(rate) / 1000).unwrap_or(u64::MAX);
        let tolerance = u64::from(samples.unwrap_or(0) / 2).max(u64::from(rate / 200));
        let t = match self.next {
            Some(expected) if expected.abs_diff(from_ms) <= tolerance => expected,
            _ => from_ms,
        };
        let t = match self.last {
            Some(last) if t <= last => last + 1,
            _ => t,
        };
        self.last = Some(t);
        self.next = samples.map(|n| t + u64::from(n));
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Track::{Audio, Video};

    #[test]
    fn starts_at_zero_and_keeps_offsets() {
        let mut t = Timeline::default();
        assert_eq!(t.map(Video, 5000), 0);
        assert_eq!(t.map(Audio, 5010), 10);
        assert_eq!(t.map(Video, 5033), 33);
        // Audio a little before the origin starts at 0 and keeps its spacing.
        let mut t = Timeline::default();
        assert_eq!(t.map(Video, 100), 0);
        assert_eq!(t.map(Audio, 90), 0);
        assert_eq!(t.map(Audio, 113), 23);
    }

    #[test]
    fn wraps_at_32_bits() {
        let mut t = Timeline::default();
        assert_eq!(t.map(Video, u32::MAX - 9), 0);
        assert_eq!(t.map(Video, 5), 15);
        assert_eq!(t.map(Video, 40), 50);
    }

    #[test]
    fn junk_is_contained() {
        let mut t = Timeline::default();
        t.map(Video, 0);
        t.map(Video, 40);
        // A repeat and a small step back: nudged, the anchor stays.
        assert_eq!(t.map(Video, 40), 41);
        assert_eq!(t.map(Video, 30), 42);
        assert_eq!(t.map(Video, 80), 80);
        // A jump of an hour: continues one step (the last, 38 ms) later, then follows the
        // new base.
        assert_eq!(t.map(Video, 3_600_000), 118);
        assert_eq!(t.map(Video, 3_600_040), 158);
        // And back to 0: likewise.
        assert_eq!(t.map(Video, 0), 198);
    }

    #[test]
    fn audio_clock_snaps_to_whole_frames() {
        let mut c = AudioClock::default();
        // 44.1 kHz AAC: timestamps 0, 23, 46, 70, 93 ms are frames 0..4 exactly.
        let got: Vec<u64> = [0, 23, 46, 70, 93]
            .iter()
            .map(|&ms| c.ticks(ms, 44100, Some(1024)))
            .collect();
        assert_eq!(got, [0, 1024, 2048, 3072, 4096]);
        // A 500 ms gap is kept as a gap.
        assert_eq!(c.ticks(616, 44100, Some(1024)), 27165);
        // Without frame sizes the timestamps rule, but time never goes back.
        let mut c = AudioClock::default();
        assert_eq!(c.ticks(20, 48000, None), 960);
        assert_eq!(c.ticks(20, 48000, None), 961);
    }

    #[test]
    fn restart_continues_after_the_end() {
        let mut t = Timeline::default();
        t.map(Video, 1000);
        t.map(Video, 1040);
        t.map(Audio, 1023);
        t.restart();
        assert_eq!(t.map(Audio, 77), 80);
        assert_eq!(t.map(Video, 77), 80);
    }
}
