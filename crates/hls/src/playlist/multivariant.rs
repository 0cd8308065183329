//! A multivariant playlist with the one variant we make, for players (and `<video>` in
//! Safari) that want `CODECS` before they fetch media.

use super::View;
use std::fmt::Write;

/// What the variant advertises besides its bandwidth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VariantInfo {
    /// RFC 6381 codecs of every track, comma-separated.
    pub(crate) codecs: String,
    /// Video size, when there is video and its size is known.
    pub(crate) resolution: Option<(u32, u32)>,
}

/// Renders the multivariant playlist pointing at `media_uri`; `None` before a segment exists
/// (there is no bandwidth to state yet).
pub(crate) fn render_multivariant(
    view: &View<'_>,
    info: &VariantInfo,
    media_uri: &str,
) -> Option<String> {
    // RFC 8216bis 4.4.6.2: BANDWIDTH is the peak segment bit rate, AVERAGE-BANDWIDTH the mean.
    let rates = view.store.segments.iter().filter_map(|seg| {
        let secs = seg.duration.as_secs_f64();
        (secs > 0.0).then(|| seg.bytes.len() as f64 * 8.0 / secs)
    });
    let (mut peak, mut bits, mut time) = (0.0f64, 0.0f64, 0.0f64);
    for seg in &view.store.segments {
        bits += seg.bytes.len() as f64 * 8.0;
        time += seg.duration.as_secs_f64();
    }
    for r in rates {
        peak = peak.max(r);
    }
    if time <= 0.0 {
        return None;
    }
    let mut s = String::from("#EXTM3U\n#EXT-X-VERSION:9\n");
    let _ = write!(
        s,
        "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{}\"",
        peak.ceil() as u64,
        (bits / time).ceil() as u64,
        info.codecs
    );
    if let Some((w, h)) = info.resolution.filter(|(w, h)| *w > 0 && *h > 0) {
        let _ = write!(s, ",RESOLUTION={w}x{h}");
    }
    let _ = write!(s, "\n{media_uri}\n");
    Some(s)
}
