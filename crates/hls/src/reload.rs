//! Blocking playlist reload (RFC 8216bis 6.2.5.2) as a decision the server acts on: answer
//! now, park the request until the segmenter publishes more, or refuse it.

use crate::playlist::View;

/// The `_HLS_msn` / `_HLS_part` delivery directives of a playlist request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Directives {
    /// `_HLS_msn`: wait for this media sequence number.
    pub msn: Option<u64>,
    /// `_HLS_part`: and this part index within it.
    pub part: Option<u64>,
}

impl Directives {
    /// Reads the directives from a query string (`a=1&_HLS_msn=5&_HLS_part=2`, without `?`).
    /// Other parameters, `_HLS_skip` included (we offer no delta updates), are ignored; a
    /// directive that is not a decimal integer, or given twice, is an error.
    pub fn from_query(query: &str) -> Result<Self, &'static str> {
        let mut d = Self::default();
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match key {
                "_HLS_msn" => &mut d.msn,
                "_HLS_part" => &mut d.part,
                _ => continue,
            };
            if slot.is_some() {
                return Err("repeated delivery directive");
            }
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err("delivery directive is not a decimal integer");
            }
            *slot = Some(
                value
                    .parse()
                    .map_err(|_| "delivery directive out of range")?,
            );
        }
        Ok(d)
    }
}

/// What to do with a playlist request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// Render the playlist and answer now.
    Ready,
    /// Not there yet: hold the request, and ask again each time
    /// [`Update::parts`](crate::Update::parts) is non-zero; after
    /// [`Segmenter::blocking_timeout`](crate::Segmenter::blocking_timeout), answer 503.
    Wait,
    /// Answer 400 with this reason.
    BadRequest(&'static str),
}

/// RFC 8216bis 6.2.5.2: how many parts past the newest one a client may ask for.
pub(crate) fn advance_part_limit(view: &View<'_>) -> u64 {
    let secs = view.part_target.as_secs_f64();
    if secs > 0.0 && secs < 1.0 {
        (3.0 / secs).floor() as u64
    } else {
        3
    }
}

/// Decides a request with `directives` against the current state.
pub(crate) fn decide(view: &View<'_>, d: Directives) -> Reload {
    if view.ended {
        // A finished playlist never changes: the directives are ignored.
        return Reload::Ready;
    }
    let Some(msn) = d.msn else {
        return if d.part.is_some() {
            Reload::BadRequest("_HLS_part without _HLS_msn")
        } else if view.renderable() {
            Reload::Ready
        } else {
            Reload::Wait
        };
    };
    let store = view.store;
    // The segment being built (or the next to be), one past the last complete one.
    let building = store.open.as_ref().map_or(store.next_msn(), |s| s.msn);
    if msn > building.saturating_add(1) {
        return Reload::BadRequest("_HLS_msn more than two segments ahead");
    }
    let published = store.open.as_ref().map_or(0, |s| s.parts.len() as u64);
    let decision = match d.part {
        None if msn < building => Reload::Ready,
        None => Reload::Wait,
        Some(part) if msn < building => match store.complete(msn) {
            // Past the last part of a complete segment means part 0 of the next one.
            Some(seg) if part >= seg.parts.len() as u64 && msn.saturating_add(1) == building => {
                if published > 0 {
                    Reload::Ready
                } else {
                    Reload::Wait
                }
            }
            // In the segment, or in a later complete one, or aged out: all published.
            _ => Reload::Ready,
        },
        Some(part) => {
            let ahead = if msn == building {
                part.saturating_add(1).saturating_sub(published)
            } else {
                // The segment after the one being built: count the parts the current one
                // probably still needs, from the targets.
                let per_segment = view.target().as_nanos() / view.part_target.as_nanos().max(1);
                let per_segment = u64::try_from(per_segment).unwrap_or(u64::MAX).max(1);
                per_segment
                    .saturating_sub(published)
                    .saturating_add(part)
                    .saturating_add(1)
            };
            if ahead == 0 {
                Reload::Ready
            } else if ahead > advance_part_limit(view) {
                Reload::BadRequest("_HLS_part beyond the advance part limit")
            } else {
                Reload::Wait
            }
        }
    };
    match decision {
        Reload::Ready if !view.renderable() => Reload::Wait,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_from_query() {
        assert_eq!(
            Directives::from_query("s=1&_HLS_msn=12&_HLS_part=3&_HLS_skip=YES"),
            Ok(Directives {
                msn: Some(12),
                part: Some(3)
            })
        );
        assert_eq!(Directives::from_query(""), Ok(Directives::default()));
        for bad in [
            "_HLS_msn=-1",
            "_HLS_msn=",
            "_HLS_msn",
            "_HLS_msn=1&_HLS_msn=2",
            "_HLS_part=+2",
            "_HLS_msn=99999999999999999999",
        ] {
            assert!(Directives::from_query(bad).is_err(), "{bad}");
        }
    }
}
