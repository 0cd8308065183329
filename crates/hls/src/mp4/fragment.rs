//! CMAF chunks: `moof` (`mfhd`, then per track `traf` = `tfhd` + `tfdt` + `trun`) followed by
//! one `mdat` with every track's samples, and the `styp` that opens a segment.
//!
//! `tfhd` uses default-base-is-moof, so each `trun` data offset counts from the start of its
//! `moof`; `trun` carries every sample's duration and size, and for video its flags and
//! (signed, version 1) composition offset, so keyframes are marked per sample.

use super::BoxWriter;
use bytes::Bytes;

/// `sample_depends_on = 2`: a sync sample.
pub(crate) const FLAGS_SYNC: u32 = 0x0200_0000;
/// `sample_depends_on = 1`, `sample_is_non_sync_sample = 1`.
pub(crate) const FLAGS_NON_SYNC: u32 = 0x0101_0000;

/// One sample as it goes into a `trun`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FragmentSample {
    /// In the track's timescale.
    pub(crate) duration: u32,
    /// Presentation minus decode time, in the track's timescale.
    pub(crate) cts: i32,
    pub(crate) keyframe: bool,
    pub(crate) data: Bytes,
}

/// One track's samples in a fragment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TrackRun<'a> {
    pub(crate) track_id: u32,
    /// Decode time of the first sample (`tfdt`).
    pub(crate) base_decode_time: u64,
    pub(crate) samples: &'a [FragmentSample],
    /// Video: per-sample flags and composition offsets.
    pub(crate) video: bool,
}

/// `styp` for the start of a segment (CMAF / DASH media segment brands).
pub(crate) fn styp(w: &mut BoxWriter) {
    let b = w.open(b"styp");
    w.bytes(b"msdh");
    w.u32(0);
    w.bytes(b"msdh");
    w.bytes(b"msix");
    w.close(b);
}

/// Writes `[styp] moof mdat`. Runs without samples are left out.
pub(crate) fn fragment(sequence: u32, with_styp: bool, runs: &[TrackRun<'_>]) -> Bytes {
    let data_len: usize = runs
        .iter()
        .flat_map(|r| r.samples.iter())
        .map(|s| s.data.len())
        .sum();
    let mut w = BoxWriter::with_capacity(data_len + 256 + 16 * runs.len() * 64);
    if with_styp {
        styp(&mut w);
    }
    let moof_start = w.len();
    let moof = w.open(b"moof");
    let mfhd = w.open_full(b"mfhd", 0, 0);
    w.u32(sequence);
    w.close(mfhd);
    let mut offset_slots = Vec::with_capacity(runs.len());
    for run in runs.iter().filter(|r| !r.samples.is_empty()) {
        let traf = w.open(b"traf");
        let tfhd = w.open_full(b"tfhd", 0, 0x02_0000); // default-base-is-moof
        w.u32(run.track_id);
        w.close(tfhd);
        let tfdt = w.open_full(b"tfdt", 1, 0);
        w.u64(run.base_decode_time);
        w.close(tfdt);
        // data-offset, sample-duration, sample-size [, sample-flags, composition-offset]
        let flags = if run.video { 0x000f01 } else { 0x000301 };
        let trun = w.open_full(b"trun", u8::from(run.video), flags);
        w.u32(u32::try_from(run.samples.len()).unwrap_or(u32::MAX));
        offset_slots.push(w.len());
        w.u32(0); // data_offset, patched below
        for s in run.samples {
            w.u32(s.duration);
            w.u32(u32::try_from(s.data.len()).unwrap_or(u32::MAX));
            if run.video {
                w.u32(if s.keyframe {
                    FLAGS_SYNC
                } else {
                    FLAGS_NON_SYNC
                });
                w.u32(s.cts as u32); // two's complement, as trun version 1 reads it
            }
        }
        w.close(trun);
        w.close(traf);
    }
    w.close(moof);
    let moof_len = w.len() - moof_start;
    // Each run's data follows the previous one's in the mdat, after its 8-byte header.
    let mut offset = moof_len + 8;
    for (slot, run) in offset_slots
        .into_iter()
        .zip(runs.iter().filter(|r| !r.samples.is_empty()))
    {
        w.patch_u32(slot, u32::try_from(offset).unwrap_or(u32::MAX));
        offset += run.samples.iter().map(|s| s.data.len()).sum::<usize>();
    }
    let mdat = w.open(b"mdat");
    for s in runs.iter().flat_map(|r| r.samples.iter()) {
        w.bytes(&s.data);
    }
    w.close(mdat);
    w.buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_video_sample_byte_exact() {
        let samples = [FragmentSample {
            duration: 3000,
            cts: -1,
            keyframe: true,
            data: Bytes::from_static(&[0xaa, 0xbb]),
        }];
        let run = TrackRun {
            track_id: 1,
            base_decode_time: 0x1_0000_0000,
            samples: &samples,
            video: true,
        };
        let out = fragment(7, false, &[run]);
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0, 0, 0, 0x68, b'm', b'o', b'o', b'f',
            0, 0, 0, 0x10, b'm', b'f', b'h', b'd', 0, 0, 0, 0, 0, 0, 0, 7,
            0, 0, 0, 0x50, b't', b'r', b'a', b'f',
            0, 0, 0, 0x10, b't', b'f', b'h', b'd', 0, 0x02, 0, 0, 0, 0, 0, 1,
            0, 0, 0, 0x14, b't', b'f', b'd', b't', 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0,
            0, 0, 0, 0x24, b't', b'r', b'u', b'n', 1, 0, 0x0f, 0x01,
            0, 0, 0, 1, // sample_count
            0, 0, 0, 0x70, // data_offset = moof (0x68) + mdat header
            0, 0, 0x0b, 0xb8, 0, 0, 0, 2, 0x02, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
            0, 0, 0, 0x0a, b'm', b'd', b'a', b't', 0xaa, 0xbb,
        ];
        assert_eq!(&out[..], expected);
    }

    #[test]
    fn two_tracks_share_one_mdat() {
        let video = [FragmentSample {
            duration: 3000,
            cts: 0,
            keyframe: false,
            data: Bytes::from_static(&[1, 2, 3]),
        }];
        let audio = [1u8, 2].map(|b| FragmentSample {
            duration: 1024,
            cts: 0,
            keyframe: true,
            data: Bytes::from(vec![b; 4]),
        });
        let out = fragment(
            1,
            true,
            &[
                TrackRun {
                    track_id: 1,
                    base_decode_time: 0,
                    samples: &video,
                    video: true,
                },
                TrackRun {
                    track_id: 2,
                    base_decode_time: 0,
                    samples: &audio,
                    video: false,
                },
            ],
        );
        assert_eq!(&out[4..8], b"styp");
        let moof_at = 24;
        let moof_len = u32::from_be_bytes(out[moof_at..moof_at + 4].try_into().unwrap()) as usize;
        let mdat = &out[moof_at + moof_len..];
        assert_eq!(&mdat[4..8], b"mdat");
        assert_eq!(&mdat[8..], &[1, 2, 3, 1, 1, 1, 1, 2, 2, 2, 2]);
        // The audio trun's data offset points just past the video sample.
        let trun2 = out.windows(4).rposition(|w| w == b"trun").unwrap() - 4;
        let off = u32::from_be_bytes(out[trun2 + 16..trun2 + 20].try_into().unwrap());
        assert_eq!(off as usize, moof_len + 8 + 3);
        assert_eq!(&out[trun2 + 8..trun2 + 12], &[0, 0, 0x03, 0x01]);
    }
}
