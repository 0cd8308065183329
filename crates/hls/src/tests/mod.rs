//! Segmenter tests on synthetic streams with explicit timestamps: cutting rules, bounds,
//! discontinuities, audio-only, junk. Playlist and reload tests are in [`playlist`].

mod playlist;

use crate::codec::avc_test_record;
use crate::fuzzing::Checker;
use crate::{Config, FrameKind, Lookup, PushError, Segmenter, Status, Track};
use bytes::Bytes;
use std::time::Duration;

/// A synthetic publisher: AVC video at `fps` with a keyframe every `gop` frames, and AAC-LC
/// 48 kHz audio, interleaved by timestamp like ffmpeg and OBS send them.
pub(crate) struct Publisher {
    pub(crate) fps: f64,
    pub(crate) gop: u32,
    pub(crate) audio: bool,
    pub(crate) video: bool,
    pub(crate) start_ms: u32,
    frame: u64,
    audio_frame: u64,
}

impl Publisher {
    pub(crate) fn new(fps: f64, gop: u32) -> Self {
        Self {
            fps,
            gop,
            audio: true,
            video: true,
            start_ms: 0,
            frame: 0,
            audio_frame: 0,
        }
    }

    pub(crate) fn headers(&self, seg: &mut Segmenter) {
        if self.video {
            seg.push(FrameKind::Video, self.start_ms, avc_header())
                .unwrap();
        }
        if self.audio {
            seg.push(
                FrameKind::Audio,
                self.start_ms,
                Bytes::from_static(&[0xaf, 0, 0x11, 0x90]),
            )
            .unwrap();
        }
    }

    /// Pushes media up to `until_ms` after the start; returns the parts published.
    pub(crate) fn run(&mut self, seg: &mut Segmenter, until_ms: f64, check: &mut Checker) -> u32 {
        let mut parts = 0;
        loop {
            let vt = self.frame as f64 * 1000.0 / self.fps;
            let at = self.audio_frame as f64 * 1024.0 * 1000.0 / 48000.0;
            let video_next = self.video && (!self.audio || vt <= at);
            let t = if video_next { vt } else { at };
            if t >= until_ms || (!self.video && !self.audio) {
                return parts;
            }
            let ts = self.start_ms.wrapping_add(t as u32);
            let update = if video_next {
                let key = self.frame.is_multiple_of(u64::from(self.gop));
                self.frame += 1;
                seg.push(FrameKind::Video, ts, video_frame(key, 800))
            } else {
                self.audio_frame += 1;
                seg.push(
                    FrameKind::Audio,
                    ts,
                    Bytes::from(vec![0xaf, 1, 0x21, 0x10, 0x04, 0x60]),
                )
            };
            parts += update.unwrap().parts;
            check.check(seg);
        }
    }
}

pub(crate) fn avc_header() -> Bytes {
    let mut b = vec![0x17, 0, 0, 0, 0];
    b.extend_from_slice(&avc_test_record());
    Bytes::from(b)
}

/// A video message with one NAL unit of `size` bytes.
pub(crate) fn video_frame(key: bool, size: usize) -> Bytes {
    let mut b = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
    b.extend_from_slice(&(size as u32).to_be_bytes());
    b.push(if key { 0x65 } else { 0x41 });
    b.resize(9 + size, 0x5a);
    Bytes::from(b)
}

pub(crate) fn config() -> Config {
    Config::default()
}

/// Durations of the complete segments, in ms.
pub(crate) fn segment_ms(seg: &Segmenter) -> Vec<u128> {
    seg.store()
        .segments
        .iter()
        .map(|s| s.duration.as_millis())
        .collect()
}

fn live(fps: f64, gop: u32, secs: f64, config: Config) -> Segmenter {
    let mut seg = Segmenter::new(config);
    let mut p = Publisher::new(fps, gop);
    p.headers(&mut seg);
    p.run(&mut seg, secs * 1000.0, &mut Checker::default());
    seg
}

#[test]
fn gop_of_two_seconds_gives_two_second_segments() {
    let seg = live(30.0, 60, 9.0, config());
    let durations = segment_ms(&seg);
    assert_eq!(durations.len(), 4, "{durations:?}");
    assert!(durations.iter().all(|&d| d == 2000), "{durations:?}");
    assert_eq!(seg.target_duration(), 2);
    for s in &seg.store().segments {
        assert!(s.independent());
        assert_eq!(s.parts.len(), 10, "2 s of 200 ms parts");
        assert!(
            s.parts
                .iter()
                .all(|p| p.duration <= Duration::from_millis(200))
        );
        assert!(s.parts.iter().skip(1).all(|p| !p.independent));
    }
}

#[test]
fn half_second_gop_gives_one_second_segments() {
    let seg = live(30.0, 15, 6.5, config());
    let durations = segment_ms(&seg);
    assert!(durations.len() >= 5, "{durations:?}");
    assert!(durations.iter().all(|&d| d == 1000), "{durations:?}");
    assert_eq!(seg.target_duration(), 1);
}

#[test]
fn parts_stay_within_the_target_at_awkward_frame_rates() {
    for fps in [24.0, 29.97, 25.0, 59.94, 7.0, 3.0] {
        let seg = live(fps, (fps * 2.0) as u32, 8.0, config());
        let target = Duration::from_millis(200);
        let parts: Vec<_> = seg.store().segments.iter().flat_map(|s| &s.parts).collect();
        assert!(!parts.is_empty(), "{fps} fps");
        assert!(parts.iter().all(|p| p.duration <= target), "{fps} fps");
        // All but the last part of each segment use at least half the target (85% is not
        // reachable when frames do not divide 200 ms, e.g. 24 fps gives 4 x 41.7 ms).
        for s in &seg.store().segments {
            if fps >= 20.0 {
                let short = s
                    .parts
                    .iter()
                    .rev()
                    .skip(1)
                    .filter(|p| p.duration < target / 2);
                assert_eq!(short.count(), 0, "{fps} fps");
            }
        }
    }
}

#[test]
fn only_the_last_segments_are_kept() {
    let seg = live(30.0, 30, 40.0, config());
    let store = seg.store();
    assert_eq!(store.segments.len(), 7);
    let msns: Vec<u64> = store.segments.iter().map(|s| s.msn).collect();
    assert_eq!(msns, (32..39).collect::<Vec<_>>());
    assert_eq!(seg.lookup("seg-31.m4s"), Lookup::NotFound);
    assert!(matches!(seg.lookup("seg-32.m4s"), Lookup::Ready(_)));
    // 7 segments + the open one, 1 s each of ~30 x 813-byte frames plus audio.
    assert!(seg.memory() < 9 * 40_000, "{}", seg.memory());
    assert_eq!(seg.stats().inits, 1);
}

#[test]
fn a_new_publisher_is_a_discontinuity_with_a_new_init() {
    let mut check = Checker::default();
    let mut seg = Segmenter::new(config());
    let mut a = Publisher::new(30.0, 30);
    a.headers(&mut seg);
    a.run(&mut seg, 3500.0, &mut check);
    let update = seg.discontinuity();
    assert_eq!(update.segments, 1, "the segment in progress is closed");
    let before = segment_ms(&seg);
    // The last frame (3466 ms) gets the previous frame's 33 ms.
    assert_eq!(before, [1000, 1000, 1000, 499]);
    // The new publisher starts its clock from an unrelated value.
    let mut b = Publisher::new(25.0, 25);
    b.start_ms = 4_000_000_000;
    b.headers(&mut seg);
    b.run(&mut seg, 2100.0, &mut check);
    let store = seg.store();
    let inits: Vec<u64> = store.segments.iter().map(|s| s.init).collect();
    assert_eq!(inits, [0, 0, 0, 0, 1, 1]);
    let discs: Vec<bool> = store.segments.iter().map(|s| s.discontinuity).collect();
    assert_eq!(discs, [false, false, false, false, true, false]);
    let text = seg.media_playlist(&Default::default(), false).unwrap();
    assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1);
    assert_eq!(text.matches("#EXT-X-MAP:").count(), 2);
    let map1 = text.find("#EXT-X-MAP:URI=\"init-1.mp4\"").unwrap();
    assert!(text.find("#EXT-X-DISCONTINUITY\n").unwrap() < map1);
    // Decode times continue after the old content instead of jumping to 4e9 ms.
    let first_new = &store.segments[4].parts[0].bytes;
    let tfdt = first_new.windows(4).position(|w| w == b"tfdt").unwrap();
    let base = u64::from_be_bytes(first_new[tfdt + 8..tfdt + 16].try_into().unwrap());
    assert!((3_500 * 90..3_700 * 90).contains(&base), "{base}");
    // As the old segments age out, the discontinuity sequence counts the removed tag.
    b.run(&mut seg, 9100.0, &mut check);
    let text = seg.media_playlist(&Default::default(), false).unwrap();
    assert!(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"), "{text}");
    assert_eq!(seg.lookup("init-0.mp4"), Lookup::NotFound);
}

#[test]
fn changed_sequence_headers_start_a_new_init_and_repeated_ones_do_not() {
    let mut check = Checker::default();
    let mut seg = Segmenter::new(config());
    let mut p = Publisher::new(30.0, 30);
    p.headers(&mut seg);
    p.run(&mut seg, 2050.0, &mut check);
    // Some encoders repeat the sequence header with every keyframe.
    p.headers(&mut seg);
    p.run(&mut seg, 3050.0, &mut check);
    assert_eq!(seg.stats().inits, 1);
    // A different configuration (here mono audio) is a new init and a discontinuity.
    let update = seg.push(
        FrameKind::Audio,
        3050,
        Bytes::from_static(&[0xaf, 0, 0x11, 0x88]),
    );
    assert_eq!(update.unwrap().segments, 1);
    p.run(&mut seg, 5050.0, &mut check);
    assert_eq!(seg.stats().inits, 2);
    assert_eq!(seg.codecs().as_deref(), Some("avc1.64000d,mp4a.40.2"));
    assert!(seg.store().segments.iter().any(|s| s.discontinuity));
}

#[test]
fn audio_only_streams_are_cut_by_duration() {
    let mut seg = Segmenter::new(config());
    let mut p = Publisher::new(30.0, 30);
    p.video = false;
    p.headers(&mut seg);
    p.run(&mut seg, 6000.0, &mut Checker::default());
    let durations = segment_ms(&seg);
    assert!(durations.len() >= 4, "{durations:?}");
    // 1 s rounded up to whole 1024-sample frames at 48 kHz: 47 frames = 1002.7 ms.
    assert!(
        durations.iter().all(|&d| (1000..1030).contains(&d)),
        "{durations:?}"
    );
    assert_eq!(seg.codecs().as_deref(), Some("mp4a.40.2"));
    let parts = &seg.store().segments[1].parts;
    assert!(
        parts
            .iter()
            .all(|p| p.independent && p.duration <= Duration::from_millis(200))
    );
}

#[test]
fn video_without_keyframes_never_starts_and_holds_nothing() {
    let mut seg = Segmenter::new(config());
    seg.push(FrameKind::Video, 0, avc_header()).unwrap();
    for i in 0..3000u32 {
        seg.push(FrameKind::Video, i * 33, video_frame(false, 5000))
            .unwrap();
    }
    assert_eq!(seg.status(), Status::Starting);
    assert_eq!(seg.memory(), 0);
    assert_eq!(seg.stats().dropped_frames, 3000);
}

#[test]
fn keyframes_that_stop_coming_cannot_grow_a_segment_without_bound() {
    let config = Config {
        max_segment_bytes: 1 << 20,
        ..config()
    };
    let mut check = Checker::default();
    let mut seg = Segmenter::new(config);
    seg.push(FrameKind::Video, 0, avc_header()).unwrap();
    for i in 0..3000u32 {
        seg.push(FrameKind::Video, i * 33, video_frame(i == 0, 20_000))
            .unwrap();
        check.check(&seg);
    }
    let store = seg.store();
    assert_eq!(store.segments.len(), 7);
    // Cut by size: 1 MiB of 20 kB frames is about 52 frames.
    assert!(
        store
            .segments
            .iter()
            .all(|s| s.bytes.len() <= (1 << 20) + 64 * 1024)
    );
    assert!(store.segments.iter().all(|s| !s.independent()));
    assert!(seg.memory() <= 9 << 20, "{}", seg.memory());
    // And by duration when frames are small: 10 s at most.
    let mut seg = Segmenter::new(Config::default());
    seg.push(FrameKind::Video, 0, avc_header()).unwrap();
    for i in 0..1000u32 {
        seg.push(FrameKind::Video, i * 33, video_frame(i == 0, 100))
            .unwrap();
    }
    assert_eq!(segment_ms(&seg), [9999, 9999, 9999]);
    assert_eq!(seg.target_duration(), 10);
}

#[test]
fn unsupported_codecs_are_reported_once_and_block_hls() {
    let mut seg = Segmenter::new(config());
    seg.push(FrameKind::Video, 0, avc_header()).unwrap();
    let err = seg.push(FrameKind::Audio, 0, Bytes::from_static(&[0x2f, 0xff, 0xfb]));
    let Err(PushError::Unsupported(u)) = err else {
        panic!("{err:?}");
    };
    assert_eq!(u.track, Track::Audio);
    assert_eq!(
        u.to_string(),
        "audio codec MP3 cannot be played over HLS (supported: AAC-LC, HE-AAC, Opus)"
    );
    assert_eq!(seg.status(), Status::Unsupported(u));
    for i in 0..100u32 {
        seg.push(FrameKind::Video, i * 33, video_frame(i % 30 == 0, 500))
            .unwrap();
    }
    assert!(seg.media_playlist(&Default::default(), false).is_none());
    // A new publisher with supported codecs clears it.
    seg.discontinuity();
    let mut p = Publisher::new(30.0, 30);
    p.headers(&mut seg);
    p.run(&mut seg, 1500.0, &mut Checker::default());
    assert_eq!(seg.status(), Status::Live);
}

#[test]
fn unsupported_audio_can_be_dropped_instead() {
    let config = Config {
        drop_unsupported_audio: true,
        ..config()
    };
    let mut seg = Segmenter::new(config);
    seg.push(FrameKind::Video, 0, avc_header()).unwrap();
    for i in 0..100u32 {
        let _ = seg.push(
            FrameKind::Audio,
            i * 26,
            Bytes::from_static(&[0x2f, 0xff, 0xfb]),
        );
        seg.push(FrameKind::Video, i * 33, video_frame(i % 30 == 0, 500))
            .unwrap();
    }
    assert_eq!(seg.status(), Status::Live);
    assert_eq!(seg.codecs().as_deref(), Some("avc1.64000d"));
}

#[test]
fn timestamps_that_wrap_or_jump_keep_the_timeline_moving() {
    let mut check = Checker::default();
    let mut seg = Segmenter::new(config());
    let mut p = Publisher::new(30.0, 30);
    p.start_ms = u32::MAX - 1500;
    p.headers(&mut seg);
    p.run(&mut seg, 4000.0, &mut check);
    assert!(
        segment_ms(&seg).iter().all(|&d| d == 1000),
        "{:?}",
        segment_ms(&seg)
    );
    // Junk: a frame from an hour ago, a duplicate, one from the far future.
    for ts in [5, 5, 2_000_000_000] {
        seg.push(FrameKind::Video, ts, video_frame(false, 100))
            .unwrap();
        check.check(&seg);
    }
    p.run(&mut seg, 8000.0, &mut check);
    assert!(seg.store().segments.len() >= 6);
}

#[test]
fn end_flushes_the_last_segment() {
    let mut seg = Segmenter::new(config());
    let mut p = Publisher::new(30.0, 30);
    p.headers(&mut seg);
    p.run(&mut seg, 2500.0, &mut Checker::default());
    let update = seg.end();
    assert_eq!(update.segments, 1);
    assert_eq!(segment_ms(&seg), [1000, 1000, 499]);
    assert_eq!(seg.status(), Status::Ended);
    let text = seg.media_playlist(&Default::default(), false).unwrap();
    assert!(text.ends_with("#EXT-X-ENDLIST\n"));
    assert!(!text.contains("PRELOAD-HINT"));
    assert_eq!(
        seg.push(FrameKind::Video, 0, avc_header()),
        Err(PushError::Ended)
    );
}

#[test]
fn a_late_audio_header_joins_the_first_init() {
    let mut seg = Segmenter::new(config());
    seg.push(FrameKind::Video, 0, avc_header()).unwrap();
    for i in 0..4u32 {
        seg.push(FrameKind::Video, i * 33, video_frame(i == 0, 500))
            .unwrap();
    }
    assert_eq!(seg.stats().inits, 0, "waiting for the audio header");
    let mut p = Publisher::new(30.0, 30);
    p.video = false;
    p.headers(&mut seg);
    assert_eq!(seg.stats().inits, 1);
    p.run(&mut seg, 100.0, &mut Checker::default());
    for i in 4..90u32 {
        seg.push(FrameKind::Video, i * 33, video_frame(i % 30 == 0, 500))
            .unwrap();
    }
    assert_eq!(seg.stats().inits, 1);
    assert_eq!(seg.codecs().as_deref(), Some("avc1.64000d,mp4a.40.2"));
    assert!(seg.store().segments.iter().all(|s| !s.discontinuity));
    // From the first keyframe; the one at 990 ms is short of the 1 s target, so the first
    // cut is at the keyframe at 1980 ms.
    assert_eq!(segment_ms(&seg), [1980]);
}

#[test]
fn video_only_streams_start_after_a_second_with_nothing_lost() {
    let mut seg = Segmenter::new(config());
    let mut p = Publisher::new(30.0, 30);
    p.audio = false;
    p.headers(&mut seg);
    p.run(&mut seg, 990.0, &mut Checker::default());
    assert_eq!(seg.stats().inits, 0);
    p.run(&mut seg, 3100.0, &mut Checker::default());
    assert_eq!(seg.stats().inits, 1);
    assert_eq!(segment_ms(&seg), [1000, 1000, 1000]);
    assert_eq!(seg.stats().dropped_frames, 0);
    assert_eq!(seg.codecs().as_deref(), Some("avc1.64000d"));
}
