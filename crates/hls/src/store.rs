//! What is kept for players: the last few complete segments, the parts of the segment in
//! progress, and the init segments they refer to. Everything is `Bytes`, so a response is a
//! reference count, never a copy.
//!
//! A segment's bytes are its parts' bytes back to back (the first part starts with `styp`).
//! When a segment completes, its parts are copied once into the segment buffer and then
//! re-pointed at slices of it, so a complete segment costs its size once, not twice.

use crate::names::Resource;
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::time::Duration;

/// A partial segment (one `moof` + `mdat`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    pub(crate) duration: Duration,
    /// Starts with a sync sample of the primary track.
    pub(crate) independent: bool,
    pub(crate) bytes: Bytes,
}

/// What [`Store::part_after`] finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextPart {
    /// The next part, with the init segment it needs.
    Ready {
        /// Its segment's media sequence number.
        msn: u64,
        /// Its index in the segment.
        index: u32,
        /// The id of the init segment it needs.
        init: u64,
        /// Its bytes (`moof` + `mdat`, `styp` first at a segment start).
        bytes: Bytes,
    },
    /// Not published yet: ask again after an [`Update`](crate::Update) with parts.
    Pending,
}

/// A media segment, complete or in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Segment {
    pub(crate) msn: u64,
    /// Id of the init segment it needs.
    pub(crate) init: u64,
    /// Preceded by `EXT-X-DISCONTINUITY`.
    pub(crate) discontinuity: bool,
    /// Wall-clock time of its first sample (ms since the Unix epoch), when known.
    pub(crate) program_date_time: Option<u64>,
    pub(crate) parts: Vec<Part>,
    /// Sum of the parts' durations.
    pub(crate) duration: Duration,
    /// The whole segment; empty while in progress.
    pub(crate) bytes: Bytes,
}

impl Segment {
    #[cfg(test)]
    pub(crate) fn independent(&self) -> bool {
        self.parts.first().is_some_and(|p| p.independent)
    }

    fn held(&self) -> usize {
        if self.bytes.is_empty() {
            self.parts.iter().map(|p| p.bytes.len()).sum()
        } else {
            self.bytes.len()
        }
    }
}

/// The kept segments and inits.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    /// Complete segments, oldest first.
    pub(crate) segments: VecDeque<Segment>,
    /// The segment in progress (it has at least one part).
    pub(crate) open: Option<Segment>,
    inits: VecDeque<(u64, Bytes)>,
    next_msn: u64,
    /// Discontinuity tags that aged out of the playlist (`EXT-X-DISCONTINUITY-SEQUENCE`).
    pub(crate) discontinuity_sequence: u64,
    /// Longest complete segment ever, for `EXT-X-TARGETDURATION` (which must not shrink).
    pub(crate) longest: Duration,
    /// Complete segments to keep.
    keep: usize,
}

impl Store {
    pub(crate) fn new(keep: usize) -> Self {
        Self {
            segments: VecDeque::new(),
            open: None,
            inits: VecDeque::new(),
            next_msn: 0,
            discontinuity_sequence: 0,
            longest: Duration::ZERO,
            keep: keep.max(1),
        }
    }

    pub(crate) fn add_init(&mut self, id: u64, bytes: Bytes) {
        self.inits.push_back((id, bytes));
        self.drop_unused_inits();
    }

    /// Starts a segment with its first part (closing any open one first).
    pub(crate) fn begin(&mut self, init: u64, discontinuity: bool, pdt: Option<u64>, first: Part) {
        self.close();
        let msn = self.next_msn;
        self.next_msn += 1;
        self.open = Some(Segment {
            msn,
            init,
            discontinuity,
            program_date_time: pdt,
            duration: first.duration,
            parts: vec![first],
            bytes: Bytes::new(),
        });
    }

    /// Adds a part to the open segment; false when there is none.
    pub(crate) fn push(&mut self, part: Part) -> bool {
        let Some(seg) = self.open.as_mut() else {
            return false;
        };
        seg.duration += part.duration;
        seg.parts.push(part);
        true
    }

    /// Completes the open segment, if any, and ages out the oldest beyond the kept count.
    pub(crate) fn close(&mut self) -> bool {
        let Some(mut seg) = self.open.take() else {
            return false;
        };
        let total = seg.parts.iter().map(|p| p.bytes.len()).sum();
        let mut all = BytesMut::with_capacity(total);
        for p in &seg.parts {
            all.extend_from_slice(&p.bytes);
        }
        let all = all.freeze();
        let mut at = 0;
        for p in &mut seg.parts {
            let len = p.bytes.len();
            p.bytes = all.slice(at..at + len);
            at += len;
        }
        seg.bytes = all;
        self.longest = self.longest.max(seg.duration);
        self.segments.push_back(seg);
        while self.segments.len() > self.keep {
            if let Some(old) = self.segments.pop_front()
                && old.discontinuity
            {
                self.discontinuity_sequence += 1;
            }
        }
        self.drop_unused_inits();
        true
    }

    /// Keeps the newest init and every init a kept segment refers to.
    fn drop_unused_inits(&mut self) {
        let oldest = self.segments.front().or(self.open.as_ref()).map(|s| s.init);
        let newest = self.inits.back().map(|(id, _)| *id);
        self.inits
            .retain(|(id, _)| Some(*id) == newest || oldest.is_some_and(|o| *id >= o));
    }

    /// The media sequence number the next segment will get.
    pub(crate) fn next_msn(&self) -> u64 {
        self.next_msn
    }

    /// A complete segment by number.
    pub(crate) fn complete(&self, msn: u64) -> Option<&Segment> {
        let first = self.segments.front()?.msn;
        self.segments
            .get(usize::try_from(msn.checked_sub(first)?).ok()?)
    }

    pub(crate) fn last_complete_msn(&self) -> Option<u64> {
        self.segments.back().map(|s| s.msn)
    }

    /// The newest published part.
    pub(crate) fn last_part(&self) -> Option<(u64, u32)> {
        let seg = self.open.as_ref().or(self.segments.back())?;
        let index = u32::try_from(seg.parts.len().checked_sub(1)?).ok()?;
        Some((seg.msn, index))
    }

    /// The part that will be published next (the preload hint).
    pub(crate) fn next_part(&self) -> (u64, u32) {
        match &self.open {
            Some(seg) => (seg.msn, u32::try_from(seg.parts.len()).unwrap_or(u32::MAX)),
            None => (self.next_msn, 0),
        }
    }

    /// The bytes of a published resource.
    pub(crate) fn get(&self, resource: Resource) -> Option<Bytes> {
        match resource {
            Resource::Init(id) => self
                .inits
                .iter()
                .find(|(i, _)| *i == id)
                .map(|(_, b)| b.clone()),
            Resource::Segment(msn) => self.complete(msn).map(|s| s.bytes.clone()),
            Resource::Part(msn, index) => {
                let seg = match &self.open {
                    Some(open) if open.msn == msn => open,
                    _ => self.complete(msn)?,
                };
                seg.parts
                    .get(usize::try_from(index).ok()?)
                    .map(|p| p.bytes.clone())
            }
        }
    }

    /// The published part after `after` in publishing order, or — for `None`, or when
    /// `after` aged out — the newest part that starts with a keyframe, so a reader joins (or
    /// rejoins) where it can decode at once.
    pub(crate) fn part_after(&self, after: Option<(u64, u32)>) -> NextPart {
        let segs = || self.segments.iter().chain(&self.open);
        let seg_of = |msn: u64| segs().find(|s| s.msn == msn);
        let found = |seg: &Segment, index: usize| {
            seg.parts.get(index).map(|p| NextPart::Ready {
                msn: seg.msn,
                index: u32::try_from(index).unwrap_or(u32::MAX),
                init: seg.init,
                bytes: p.bytes.clone(),
            })
        };
        if let Some((msn, index)) = after
            && let Some(seg) = seg_of(msn)
        {
            let next = usize::try_from(index)
                .unwrap_or(usize::MAX)
                .saturating_add(1);
            if let Some(ready) = found(seg, next) {
                return ready;
            }
            // The end of its segment: the first part of the next one, when it exists.
            if self.open.as_ref().is_some_and(|o| o.msn == msn) {
                return NextPart::Pending;
            }
            return match seg_of(msn + 1) {
                Some(next) => found(next, 0).unwrap_or(NextPart::Pending),
                None => NextPart::Pending,
            };
        }
        let newest_key = segs()
            .rev()
            .find_map(|s| s.parts.iter().rposition(|p| p.independent).map(|i| (s, i)));
        match newest_key {
            Some((seg, index)) => found(seg, index).unwrap_or(NextPart::Pending),
            None => NextPart::Pending,
        }
    }

    /// Bytes held for players.
    pub(crate) fn held(&self) -> usize {
        let inits: usize = self.inits.iter().map(|(_, b)| b.len()).sum();
        let segs: usize = self
            .segments
            .iter()
            .chain(&self.open)
            .map(Segment::held)
            .sum();
        inits + segs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(b: &'static [u8]) -> Part {
        Part {
            duration: Duration::from_millis(200),
            independent: b.first() == Some(&b'k'),
            bytes: Bytes::from_static(b),
        }
    }

    #[test]
    fn parts_become_slices_of_their_segment() {
        let mut s = Store::new(2);
        s.add_init(0, Bytes::from_static(b"init0"));
        s.begin(0, false, None, part(b"k1"));
        assert!(s.push(part(b"22")));
        assert_eq!(s.get(Resource::Part(0, 1)).as_deref(), Some(&b"22"[..]));
        assert_eq!(s.get(Resource::Segment(0)), None, "still open");
        assert_eq!(s.next_part(), (0, 2));
        assert!(s.close());
        assert_eq!(s.get(Resource::Segment(0)).as_deref(), Some(&b"k122"[..]));
        let seg = s.complete(0).unwrap();
        let whole = seg.bytes.as_ptr();
        assert_eq!(seg.parts[1].bytes.as_ptr(), whole.wrapping_add(2));
        assert_eq!(s.longest, Duration::from_millis(400));
        assert_eq!(s.next_part(), (1, 0));
        assert_eq!(s.last_part(), Some((0, 1)));
    }

    #[test]
    fn old_segments_and_inits_age_out() {
        let mut s = Store::new(2);
        for i in 0..4u64 {
            s.add_init(i, Bytes::from_static(b"init"));
            s.begin(i, i > 0, None, part(b"k"));
            s.close();
        }
        assert_eq!(s.segments.iter().map(|x| x.msn).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(
            s.discontinuity_sequence, 1,
            "segment 1's discontinuity aged out"
        );
        assert_eq!(s.get(Resource::Init(1)), None);
        assert!(s.get(Resource::Init(2)).is_some());
        assert_eq!(s.get(Resource::Part(1, 0)), None);
        assert_eq!(s.held(), 2 * 4 + 2);
    }

    #[test]
    fn a_reader_joins_at_the_newest_keyframe_and_follows_every_part() {
        let mut s = Store::new(3);
        assert_eq!(s.part_after(None), NextPart::Pending);
        s.add_init(0, Bytes::from_static(b"init0"));
        s.begin(0, false, None, part(b"k0"));
        s.push(part(b"p1"));
        s.begin(0, false, None, part(b"k2"));
        s.push(part(b"p3"));
        let key = |p: &NextPart| match p {
            NextPart::Ready {
                msn, index, bytes, ..
            } => Some((*msn, *index, bytes.clone())),
            NextPart::Pending => None,
        };
        let first = s.part_after(None);
        assert_eq!(key(&first), Some((1, 0, Bytes::from_static(b"k2"))));
        assert_eq!(
            key(&s.part_after(Some((1, 0)))),
            Some((1, 1, Bytes::from_static(b"p3")))
        );
        assert_eq!(
            s.part_after(Some((1, 1))),
            NextPart::Pending,
            "the open segment's end"
        );
        assert_eq!(
            key(&s.part_after(Some((0, 1)))),
            Some((1, 0, Bytes::from_static(b"k2")))
        );
        s.begin(0, false, None, part(b"k4"));
        assert_eq!(
            key(&s.part_after(Some((1, 1)))),
            Some((2, 0, Bytes::from_static(b"k4")))
        );
        for _ in 0..5 {
            s.begin(0, false, None, part(b"k"));
        }
        let rejoin = key(&s.part_after(Some((1, 1)))).map(|(m, i, _)| (m, i));
        assert_eq!(
            rejoin,
            Some((7, 0)),
            "aged out: rejoin at the newest keyframe"
        );
    }
}
