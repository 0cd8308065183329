//! Segmenter settings, their defaults, and the bounds they put on memory.

use std::time::Duration;

/// How a stream is cut and how much of it is kept.
///
/// Memory per stream is bounded by about `(segment_count + 1) * max_segment_bytes` plus one
/// part of queued samples: the kept segments, the one in progress, and the samples waiting
/// for their successor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Target segment length. Segments are cut only at video keyframes once they are this
    /// long, so a longer GOP gives longer segments (audio-only streams are cut by duration).
    pub segment_duration: Duration,
    /// Target part length (`EXT-X-PART-INF:PART-TARGET`); no part is longer.
    pub part_duration: Duration,
    /// Complete segments kept and listed. Keep `segment_count * segment_duration` at three
    /// target durations or more, as RFC 8216bis 6.2.2 asks of a live playlist.
    pub segment_count: usize,
    /// A segment is cut at this length even without a keyframe (the next one then starts
    /// with a frame players cannot decode from).
    pub max_segment_duration: Duration,
    /// A segment is cut at this size even without a keyframe.
    pub max_segment_bytes: usize,
    /// A part is cut at this size even if shorter than the part target.
    pub max_part_bytes: usize,
    /// Serve video only when the audio codec cannot be packaged, instead of refusing the
    /// stream.
    pub drop_unsupported_audio: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            segment_duration: Duration::from_secs(1),
            part_duration: Duration::from_millis(200),
            segment_count: 7,
            max_segment_duration: Duration::from_secs(10),
            max_segment_bytes: 16 << 20,
            max_part_bytes: 4 << 20,
            drop_unsupported_audio: false,
        }
    }
}

/// Shortest part target we accept (shorter targets make playlists huge for no gain).
pub const MIN_PART_DURATION: Duration = Duration::from_millis(20);

impl Config {
    /// The same settings made consistent: part ≤ segment ≤ max segment, at least one kept
    /// segment, part limit ≤ segment limit, nothing zero.
    pub fn normalized(mut self) -> Self {
        self.part_duration = self.part_duration.max(MIN_PART_DURATION);
        self.segment_duration = self.segment_duration.max(self.part_duration);
        self.max_segment_duration = self.max_segment_duration.max(self.segment_duration);
        self.segment_count = self.segment_count.max(1);
        self.max_segment_bytes = self.max_segment_bytes.max(1024);
        self.max_part_bytes = self.max_part_bytes.clamp(1024, self.max_segment_bytes);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_orders_the_limits() {
        let c = Config {
            segment_duration: Duration::ZERO,
            part_duration: Duration::ZERO,
            segment_count: 0,
            max_segment_duration: Duration::ZERO,
            max_segment_bytes: 0,
            max_part_bytes: usize::MAX,
            drop_unsupported_audio: false,
        }
        .normalized();
        assert_eq!(c.part_duration, MIN_PART_DURATION);
        assert_eq!(c.segment_duration, MIN_PART_DURATION);
        assert_eq!(c.max_segment_duration, MIN_PART_DURATION);
        assert_eq!(
            (c.segment_count, c.max_segment_bytes, c.max_part_bytes),
            (1, 1024, 1024)
        );
        assert_eq!(Config::default().normalized(), Config::default());
    }
}
