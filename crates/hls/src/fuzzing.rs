//! The fuzz entry point for `fuzz/fuzz_targets/fmp4_mux.rs`, and the invariant checks it
//! shares with the unit tests. Compiled only for fuzzing and tests.
//!
//! [`fuzz_mux`] turns arbitrary bytes into a sequence of segmenter calls (see its docs) and
//! after every call checks what the crate promises: no panic, memory within the configured
//! bound, every part within the part target and every segment within the target duration,
//! media sequence numbers that only grow, every URI in the playlist resolvable (the preload
//! hint pending), segments equal to their parts back to back, and well-formed boxes.

use crate::{Config, Directives, FrameKind, Lookup, Reload, Segmenter, UriTemplate};
use bytes::Bytes;
use std::time::Duration;

/// A fuzz entry point: takes any bytes, panics only on a broken invariant.
pub type Target = fn(&[u8]);

/// Every target by the name of its fuzz binary and corpus directory.
pub const TARGETS: [(&str, Target); 1] = [("fmp4_mux", fuzz_mux)];

/// A real `avcC` (x264, 320x240) and AAC-LC 48 kHz stereo config, to put in front of inputs
/// (flag bit 2) so that mutations reach the muxer.
fn synthetic_headers() -> [(FrameKind, Bytes); 2] {
    let mut video = vec![
        0x17, 0, 0, 0, 0, 1, 0x64, 0x00, 0x0d, 0xff, 0xe1, 0x00, 0x19,
    ];
    video.extend_from_slice(&[
        0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
        0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x60,
    ]);
    video.extend_from_slice(&[1, 0, 4, 0x68, 0xeb, 0xe3, 0xcb]);
    [
        (FrameKind::Video, Bytes::from(video)),
        (FrameKind::Audio, Bytes::from_static(&[0xaf, 0, 0x11, 0x90])),
    ]
}

/// Settings picked by bits 0–1 of the flags byte: small limits so that caps are reached.
fn config(flags: u8) -> Config {
    let ms = Duration::from_millis;
    let base = Config {
        segment_count: 3,
        max_segment_bytes: 256 << 10,
        max_part_bytes: 64 << 10,
        max_segment_duration: ms(4000),
        drop_unsupported_audio: flags & 8 != 0,
        ..Config::default()
    };
    match flags & 3 {
        0 => base,
        1 => Config {
            segment_duration: ms(200),
            part_duration: ms(50),
            ..base
        },
        2 => Config {
            max_segment_bytes: 8 << 10,
            max_part_bytes: 2 << 10,
            max_segment_duration: ms(1500),
            ..base
        },
        _ => Config {
            segment_duration: ms(2000),
            part_duration: ms(500),
            segment_count: 1,
            ..base
        },
    }
}

/// The segmenter on arbitrary bytes.
///
/// Byte 0 holds flags: bits 0–1 pick the [`config`], bit 2 puts real AVC and AAC sequence
/// headers first, bit 3 drops unsupported audio instead of refusing the stream. The rest is a
/// list of operations `[op] ...`: op & 7 is 0/1 = video/audio message
/// `[i16 timestamp step][u16 length][body]`, 2 = metadata, 3 = `discontinuity()`, 4 = `end()`,
/// 5 = `set_wallclock` (or, with the top four bits set, a player request
/// `[u64 msn][u64 part]` for `reload` and `lookup`), 6/7 = video/audio with
/// `[u32 absolute timestamp]` instead of the step. Op bit 3 puts a valid frame header before
/// the body (bit 4: a keyframe).
pub fn fuzz_mux(data: &[u8]) {
    run(data);
}

/// [`fuzz_mux`], returning the checker (how many playlists were checked).
fn run(data: &[u8]) -> Checker {
    let mut checker = Checker::default();
    let Some((&flags, mut rest)) = data.split_first() else {
        return checker;
    };
    let mut seg = Segmenter::new(config(flags));
    if flags & 4 != 0 {
        for (kind, body) in synthetic_headers() {
            let _ = seg.push(kind, 0, body);
        }
    }
    let (mut video_ts, mut audio_ts) = (0u32, 0u32);
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        let kind = match op & 7 {
            0 | 6 => FrameKind::Video,
            1 | 7 => FrameKind::Audio,
            2 => FrameKind::Metadata,
            3 => {
                seg.discontinuity();
                checker.check(&seg);
                continue;
            }
            4 => {
                seg.end();
                checker.check(&seg);
                continue;
            }
            _ if op & 0xf0 == 0xf0 => {
                // A player's request: blocking reload directives and a part by name.
                let Some((b, tail)) = rest.split_first_chunk::<16>() else {
                    break;
                };
                rest = tail;
                let (msn, part) = b.split_at(8);
                let msn = u64::from_be_bytes(msn.try_into().unwrap_or_default());
                let part = u64::from_be_bytes(part.try_into().unwrap_or_default());
                let _ = seg.reload(Directives {
                    msn: Some(msn),
                    part: (op & 8 != 0).then_some(part),
                });
                let _ = seg.lookup(&format!("part-{msn}.{part}.m4s"));
                continue;
            }
            _ => {
                seg.set_wallclock(1_800_000_000_000);
                continue;
            }
        };
        let ts = if op & 7 >= 6 {
            let Some((b, tail)) = rest.split_first_chunk::<4>() else {
                break;
            };
            rest = tail;
            u32::from_be_bytes(*b)
        } else {
            let Some((b, tail)) = rest.split_first_chunk::<2>() else {
                break;
            };
            rest = tail;
            let step = i16::from_be_bytes(*b) as i32 as u32;
            let ts = if kind == FrameKind::Audio {
                &mut audio_ts
            } else {
                &mut video_ts
            };
            *ts = ts.wrapping_add(step);
            *ts
        };
        let Some((len, tail)) = rest.split_first_chunk::<2>() else {
            break;
        };
        let len = usize::from(u16::from_be_bytes(*len)).min(tail.len());
        let (body, tail) = tail.split_at(len);
        rest = tail;
        let mut payload = Vec::with_capacity(len + 5);
        if op & 8 != 0 {
            match kind {
                FrameKind::Video => {
                    payload.extend_from_slice(&[
                        if op & 16 != 0 { 0x17 } else { 0x27 },
                        1,
                        0,
                        0,
                        0,
                    ]);
                }
                FrameKind::Audio => payload.extend_from_slice(&[0xaf, 1]),
                FrameKind::Metadata => {}
            }
        }
        payload.extend_from_slice(body);
        let _ = seg.push(kind, ts, Bytes::from(payload));
        checker.check(&seg);
    }
    seg.end();
    checker.check(&seg);
    checker
}

/// Invariants across successive states of one segmenter.
#[derive(Debug, Default)]
pub(crate) struct Checker {
    first_msn: u64,
    last_part: Option<(u64, u32)>,
    renders: u64,
}

impl Checker {
    /// Checks `seg` now, and that nothing went backwards since the last check.
    pub(crate) fn check(&mut self, seg: &Segmenter) {
        let cfg = seg.config();
        let bound =
            (cfg.segment_count + 2) * cfg.max_segment_bytes + 4 * cfg.max_part_bytes + (64 << 10);
        assert!(
            seg.memory() <= bound,
            "memory {} over bound {bound}",
            seg.memory()
        );
        let last = seg.last_part();
        assert!(
            last >= self.last_part,
            "last part went back: {last:?} < {:?}",
            self.last_part
        );
        self.last_part = last;
        assert!(seg.blocking_timeout() >= Duration::from_secs(3));
        let uris = UriTemplate::default();
        let Some(text) = seg.media_playlist(&uris, true) else {
            return;
        };
        self.renders += 1;
        let first = check_playlist(seg, &text);
        assert!(first >= self.first_msn, "media sequence went back");
        self.first_msn = first;
        if let Some((msn, part)) = last {
            let d = Directives {
                msn: Some(msn),
                part: Some(part.into()),
            };
            assert_eq!(seg.reload(d), Reload::Ready, "the newest part is not ready");
        }
        assert!(seg.multivariant_playlist("index.m3u8").is_some());
    }
}

/// Checks one media playlist against the segmenter that rendered it; returns its media
/// sequence number.
pub(crate) fn check_playlist(seg: &Segmenter, text: &str) -> u64 {
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("#EXTM3U"));
    let value = |tag: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(tag))
            .unwrap_or_else(|| panic!("no {tag} in\n{text}"))
            .to_string()
    };
    let target: f64 = value("#EXT-X-TARGETDURATION:").parse().unwrap_or(0.0);
    assert!(target >= 1.0);
    let part_target: f64 = value("#EXT-X-PART-INF:PART-TARGET=").parse().unwrap_or(0.0);
    assert!(part_target > 0.0);
    let msn: u64 = value("#EXT-X-MEDIA-SEQUENCE:").parse().unwrap_or(u64::MAX);
    assert!(value("#EXT-X-SERVER-CONTROL:").contains("CAN-BLOCK-RELOAD=YES"));
    let mut segments = Vec::new();
    let mut pending_extinf = None;
    for line in text.lines() {
        if let Some(d) = line.strip_prefix("#EXTINF:") {
            let d: f64 = d.trim_end_matches(',').parse().unwrap_or(f64::MAX);
            assert!(
                d.round() <= target,
                "segment of {d} s over target {target}\n{text}"
            );
            pending_extinf = Some(d);
        } else if let Some(attrs) = line.strip_prefix("#EXT-X-PART:") {
            let d: f64 = attr(attrs, "DURATION").parse().unwrap_or(f64::MAX);
            assert!(d <= part_target, "part of {d} s over {part_target}\n{text}");
            let uri = attr(attrs, "URI");
            assert!(
                matches!(seg.lookup(uri.trim_matches('"')), Lookup::Ready(_)),
                "{uri}"
            );
        } else if let Some(attrs) = line.strip_prefix("#EXT-X-PRELOAD-HINT:") {
            let uri = attr(attrs, "URI");
            assert_eq!(seg.lookup(uri.trim_matches('"')), Lookup::Pending, "{uri}");
        } else if let Some(attrs) = line.strip_prefix("#EXT-X-MAP:") {
            let uri = attr(attrs, "URI");
            let Lookup::Ready(init) = seg.lookup(uri.trim_matches('"')) else {
                panic!("init {uri} missing");
            };
            check_boxes(&init, &[b"ftyp", b"moov"]);
        } else if !line.starts_with('#') && !line.is_empty() {
            assert!(
                pending_extinf.take().is_some(),
                "URI without EXTINF: {line}"
            );
            segments.push(line.to_string());
        }
    }
    for name in &segments {
        let Lookup::Ready(bytes) = seg.lookup(name) else {
            panic!("segment {name} missing");
        };
        check_segment(seg, name, &bytes);
    }
    msn
}

fn attr<'a>(attrs: &'a str, key: &str) -> &'a str {
    attrs
        .split(',')
        .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key} in {attrs}"))
}

/// A segment is `styp` + (`moof` `mdat`)+ and equals its parts back to back.
fn check_segment(seg: &Segmenter, name: &str, bytes: &Bytes) {
    let kinds = check_boxes(bytes, &[]);
    assert_eq!(kinds.first(), Some(b"styp"), "{name}");
    assert!(
        kinds.len() >= 3 && kinds.len() % 2 == 1,
        "{name}: {kinds:?}"
    );
    let msn = name.trim_start_matches("seg-").trim_end_matches(".m4s");
    let mut joined = Vec::new();
    for i in 0.. {
        match seg.lookup(&format!("part-{msn}.{i}.m4s")) {
            Lookup::Ready(p) => joined.extend_from_slice(&p),
            _ => break,
        }
    }
    assert_eq!(&joined[..], &bytes[..], "{name} is not its parts");
}

/// Walks top-level boxes; every size must fit. Returns the box types; `expect` is the
/// required prefix of types.
fn check_boxes(data: &[u8], expect: &[&[u8; 4]]) -> Vec<[u8; 4]> {
    let mut kinds = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let Some((head, _)) = rest.split_first_chunk::<8>() else {
            panic!("trailing {} bytes", rest.len());
        };
        let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        assert!(
            size >= 8 && size <= rest.len(),
            "box size {size} of {}",
            rest.len()
        );
        kinds.push([head[4], head[5], head[6], head[7]]);
        rest = &rest[size..];
    }
    for (want, got) in expect.iter().zip(&kinds) {
        assert_eq!(*want, got);
    }
    kinds
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// Replays every committed corpus file on stable.
    #[test]
    fn replay_fuzz_corpus() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
        let mut total = 0;
        for (name, target) in TARGETS {
            let dir = root.join(name);
            let mut files: Vec<_> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .map(|entry| entry.unwrap().path())
                .collect();
            files.sort();
            for file in files {
                let data = std::fs::read(&file).unwrap();
                let outcome = std::panic::catch_unwind(|| target(&data));
                assert!(outcome.is_ok(), "{name}: {} fails", file.display());
                total += 1;
            }
        }
        assert!(total >= 5, "only {total} corpus files");
    }

    #[test]
    fn seeds_reach_the_playlists() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/fmp4_mux");
        for name in [
            "ffmpeg-h264-aac",
            "ffmpeg-discontinuity",
            "ffmpeg-audio-only",
        ] {
            let data = std::fs::read(root.join(name)).unwrap();
            assert!(run(&data).renders > 10, "{name} renders no playlist");
        }
    }

    #[test]
    fn short_and_empty_inputs() {
        for input in [&[][..], &[0], &[4], &[4, 0x18, 0], &[0xff; 64]] {
            fuzz_mux(input);
        }
    }
}
