//! Playlists as text (RFC 8216bis): the low-latency media playlist and a one-variant
//! multivariant playlist. Rendering is a pure function of the [`View`], so two renders of the
//! same state are identical and nothing here can fail.

mod date;
mod media;
mod multivariant;

pub(crate) use media::render_media;
pub(crate) use multivariant::{VariantInfo, render_multivariant};

use crate::store::Store;
use std::time::Duration;

/// Parts are listed for segments that end within this many target durations of the end of
/// the playlist (RFC 8216bis 6.2.2 lets them go after three).
pub(crate) const PART_WINDOW_TARGETS: u32 = 3;

/// What a playlist is rendered from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct View<'a> {
    pub(crate) store: &'a Store,
    /// `EXT-X-TARGETDURATION`, whole seconds.
    pub(crate) target: u64,
    /// `PART-TARGET`.
    pub(crate) part_target: Duration,
    /// The part that will be published next, if one is coming.
    pub(crate) hint: Option<(u64, u32)>,
    /// `EXT-X-ENDLIST`: the stream is over.
    pub(crate) ended: bool,
}

impl View<'_> {
    /// A playlist exists once a segment is complete: plain players need one to start, and it
    /// fixes the target duration before the first render.
    pub(crate) fn renderable(&self) -> bool {
        !self.store.segments.is_empty()
    }

    /// Whole seconds, as `EXT-X-TARGETDURATION` and the 3×target rules count them.
    pub(crate) fn target(&self) -> Duration {
        Duration::from_secs(self.target)
    }
}

/// Seconds with millisecond precision, as attribute values and `EXTINF` are written.
pub(crate) fn secs(d: Duration) -> String {
    let ms = d.as_micros().div_ceil(1000);
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_up_to_the_millisecond() {
        assert_eq!(secs(Duration::from_millis(200)), "0.200");
        assert_eq!(secs(Duration::from_micros(1_999_001)), "2.000");
        assert_eq!(secs(Duration::from_nanos(33_333_333)), "0.034");
        assert_eq!(secs(Duration::ZERO), "0.000");
    }
}
