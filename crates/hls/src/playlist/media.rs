//! The media playlist. Plain players read `EXTINF` + segment URI lines and ignore the rest;
//! low-latency players also read `EXT-X-PART` (listed for the last segments, see
//! [`PART_WINDOW_TARGETS`]), the parts of the segment in progress and the preload hint.

use super::date::rfc3339_utc;
use super::{PART_WINDOW_TARGETS, View, secs};
use crate::names::{Resource, UriTemplate};
use crate::store::Segment;
use std::fmt::Write;
use std::time::Duration;

/// Renders the playlist; `program_date_time` adds `EXT-X-PROGRAM-DATE-TIME` where known.
pub(crate) fn render_media(view: &View<'_>, uris: &UriTemplate, program_date_time: bool) -> String {
    let store = view.store;
    let mut s = String::with_capacity(1024 + 160 * store.segments.len() * 6);
    let first_msn = store
        .segments
        .front()
        .or(store.open.as_ref())
        .map_or(store.next_msn(), |seg| seg.msn);
    // Writing to a String cannot fail; the results are ignored for that reason.
    let _ = write!(
        s,
        "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:{}\n\
         #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={}\n\
         #EXT-X-PART-INF:PART-TARGET={}\n#EXT-X-MEDIA-SEQUENCE:{first_msn}\n\
         #EXT-X-DISCONTINUITY-SEQUENCE:{}\n",
        view.target,
        secs(view.part_target * 3),
        secs(view.part_target),
        store.discontinuity_sequence,
    );
    // Which segments get their parts listed: those ending within the window of the end.
    let window = view.target() * PART_WINDOW_TARGETS;
    let mut after = store.open.as_ref().map_or(Duration::ZERO, |o| o.duration);
    let mut with_parts = vec![false; store.segments.len()];
    for (i, seg) in store.segments.iter().enumerate().rev() {
        if after >= window {
            break;
        }
        if let Some(flag) = with_parts.get_mut(i) {
            *flag = true;
        }
        after += seg.duration;
    }
    let mut init = None;
    for (seg, parts) in store.segments.iter().zip(with_parts) {
        segment_tags(&mut s, seg, &mut init, uris, program_date_time);
        if parts {
            part_lines(&mut s, seg, uris);
        }
        let _ = write!(
            s,
            "#EXTINF:{},\n{}\n",
            secs(seg.duration),
            uris.uri(Resource::Segment(seg.msn))
        );
    }
    if let Some(open) = &store.open {
        segment_tags(&mut s, open, &mut init, uris, program_date_time);
        part_lines(&mut s, open, uris);
    }
    if view.ended {
        s.push_str("#EXT-X-ENDLIST\n");
    } else if let Some((msn, index)) = view.hint {
        let _ = writeln!(
            s,
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"",
            uris.uri(Resource::Part(msn, index))
        );
    }
    s
}

/// The tags that apply to a segment and so come before its first part.
fn segment_tags(
    s: &mut String,
    seg: &Segment,
    init: &mut Option<u64>,
    uris: &UriTemplate,
    program_date_time: bool,
) {
    // Also on the first listed segment: EXT-X-DISCONTINUITY-SEQUENCE only counts tags that
    // aged out, so dropping this one would renumber the segments after it.
    if seg.discontinuity {
        s.push_str("#EXT-X-DISCONTINUITY\n");
    }
    if *init != Some(seg.init) {
        let _ = writeln!(
            s,
            "#EXT-X-MAP:URI=\"{}\"",
            uris.uri(Resource::Init(seg.init))
        );
        *init = Some(seg.init);
    }
    if program_date_time && let Some(ms) = seg.program_date_time {
        let _ = writeln!(s, "#EXT-X-PROGRAM-DATE-TIME:{}", rfc3339_utc(ms));
    }
}

fn part_lines(s: &mut String, seg: &Segment, uris: &UriTemplate) {
    for (i, part) in seg.parts.iter().enumerate() {
        let index = u32::try_from(i).unwrap_or(u32::MAX);
        let _ = writeln!(
            s,
            "#EXT-X-PART:DURATION={},URI=\"{}\"{}",
            secs(part.duration),
            uris.uri(Resource::Part(seg.msn, index)),
            if part.independent {
                ",INDEPENDENT=YES"
            } else {
                ""
            }
        );
    }
}
