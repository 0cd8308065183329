//! Writes the seed corpus of the `fmp4_mux` fuzz target (`fuzz/corpus/fmp4_mux/`) from real
//! ffmpeg output and a few hand-made streams. Run on purpose, not in CI:
//! `cargo test -p lifeline-hls --test corpus -- --ignored`. The library's
//! `fuzzing::tests::replay_fuzz_corpus` replays the files in every `cargo test`.

// Test helpers: a failed setup step should fail the test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Scratch, Tag, read_flv, run};
use lifeline_hls::FrameKind;
use std::path::PathBuf;

/// Encodes tags in the input format `lifeline_hls::fuzzing::fuzz_mux` reads: a flags byte,
/// then `[op][i16 step | u32 absolute timestamp][u16 length][body]` per message; `None`
/// is a `discontinuity()` call.
fn encode(flags: u8, tags: &[Option<Tag>]) -> Vec<u8> {
    let mut out = vec![flags];
    let (mut video, mut audio) = (0u32, 0u32);
    for tag in tags {
        let Some(tag) = tag else {
            out.push(3);
            continue;
        };
        let (op, last) = match tag.kind {
            FrameKind::Video => (0u8, &mut video),
            FrameKind::Audio => (1, &mut audio),
            FrameKind::Metadata => continue,
        };
        let step = tag.timestamp.wrapping_sub(*last) as i32;
        match i16::try_from(step) {
            Ok(step) => {
                out.push(op);
                out.extend_from_slice(&step.to_be_bytes());
            }
            Err(_) => {
                out.push(op + 6);
                out.extend_from_slice(&tag.timestamp.to_be_bytes());
            }
        }
        *last = tag.timestamp;
        let len = tag.body.len().min(usize::from(u16::MAX));
        out.extend_from_slice(&(len as u16).to_be_bytes());
        out.extend_from_slice(&tag.body[..len]);
    }
    out
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/fmp4_mux")
}

fn until(tags: &[Tag], ms: u32) -> Vec<Option<Tag>> {
    tags.iter()
        .filter(|t| t.timestamp < ms)
        .cloned()
        .map(Some)
        .collect()
}

#[test]
#[ignore = "rewrites fuzz/corpus/fmp4_mux; run on purpose"]
fn write_fuzz_corpus() {
    if !testkit::require_tool("write_fuzz_corpus", "ffmpeg") {
        return;
    }
    let dir = Scratch::new("corpus");
    run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x120:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=sample_rate=48000",
            "-t",
            "3",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
            "-g",
            "15",
            "-b:v",
            "100k",
            "-c:a",
            "aac",
            "-b:a",
            "32k",
            "-f",
            "flv",
            "in.flv",
        ],
        &dir.0,
    );
    let tags = read_flv(&std::fs::read(dir.path("in.flv")).unwrap());
    let out = corpus_dir();
    std::fs::create_dir_all(&out).unwrap();
    let write = |name: &str, data: Vec<u8>| std::fs::write(out.join(name), data).unwrap();
    // Real tags: 1.6 s of H.264 + AAC with its sequence headers, in each config preset.
    let real = until(&tags, 1600);
    write("ffmpeg-h264-aac", encode(0, &real));
    write("ffmpeg-h264-aac-tiny-parts", encode(1, &real));
    write("ffmpeg-h264-aac-small-caps", encode(2, &real));
    // A publisher change in the middle: the same stream again after a discontinuity.
    let mut twice = until(&tags, 700);
    twice.push(None);
    twice.extend(until(&tags, 700));
    write("ffmpeg-discontinuity", encode(0, &twice));
    // Audio only, and video only.
    let audio: Vec<_> = real
        .iter()
        .filter(|t| matches!(t, Some(t) if t.kind == FrameKind::Audio))
        .cloned()
        .collect();
    write("ffmpeg-audio-only", encode(0, &audio));
    let video: Vec<_> = real
        .iter()
        .filter(|t| matches!(t, Some(t) if t.kind == FrameKind::Video))
        .cloned()
        .collect();
    write("ffmpeg-video-only", encode(3, &video));
    // Timestamps that wrap at 2^32 ms half-way.
    let wrap: Vec<_> = real
        .iter()
        .flatten()
        .map(|t| {
            Some(Tag {
                timestamp: t.timestamp.wrapping_add(u32::MAX - 800),
                ..t.clone()
            })
        })
        .collect();
    write("ffmpeg-timestamp-wrap", encode(0, &wrap));
    // HEVC (Enhanced RTMP, built from x265's Annex B) and AV1 + Opus, 1.2 s each.
    run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x120:rate=30",
            "-t",
            "1.2",
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-x265-params",
            "log-level=error:keyint=15:min-keyint=15:bframes=0:aud=1:scenecut=0",
            "-f",
            "hevc",
            "in.hevc",
        ],
        &dir.0,
    );
    let hevc = common::annexb::hevc_tags(&std::fs::read(dir.path("in.hevc")).unwrap(), 30);
    write(
        "ffmpeg-hevc",
        encode(0, &hevc.into_iter().map(Some).collect::<Vec<_>>()),
    );
    run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x120:rate=30",
            "-t",
            "1.2",
            "-c:v",
            "libaom-av1",
            "-cpu-used",
            "8",
            "-usage",
            "realtime",
            "-g",
            "15",
            "-pix_fmt",
            "yuv420p",
            "-b:v",
            "50k",
            "-f",
            "obu",
            "in.obu",
        ],
        &dir.0,
    );
    run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=sample_rate=48000",
            "-t",
            "1.2",
            "-c:a",
            "libopus",
            "-b:a",
            "24k",
            "-f",
            "ogg",
            "in.opus",
        ],
        &dir.0,
    );
    let av1 = common::obu::av1_tags(&std::fs::read(dir.path("in.obu")).unwrap(), 30);
    let opus = common::obu::opus_tags(&std::fs::read(dir.path("in.opus")).unwrap());
    let both = common::obu::interleave(av1, opus);
    write(
        "ffmpeg-av1-opus",
        encode(0, &both.into_iter().map(Some).collect::<Vec<_>>()),
    );
    // Synthetic headers (flag bit 2) and frames with generated headers (op bit 3/4): a
    // keyframe then 120 inter frames 33 ms apart, audio 21 ms apart.
    let mut synth = vec![4u8];
    for i in 0..120u8 {
        synth.extend_from_slice(&[if i % 40 == 0 { 0x18 } else { 0x08 }, 0, 33, 0, 8]);
        synth.extend_from_slice(&[0, 0, 0, 4, 0x41, i, i, i]);
        synth.extend_from_slice(&[0x09, 0, 21, 0, 3, 0x21, 0x10, i]);
    }
    write("synthetic-headers-and-frames", synth.clone());
    // The same with player requests in between: reload directives and part lookups.
    let mut requests = synth;
    for (msn, part) in [(0u64, 0u64), (1, 7), (u64::MAX, u64::MAX), (2, 0)] {
        requests.push(0xfd);
        requests.extend_from_slice(&msn.to_be_bytes());
        requests.extend_from_slice(&part.to_be_bytes());
    }
    write("synthetic-player-requests", requests);
}
