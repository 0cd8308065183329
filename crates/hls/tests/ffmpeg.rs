//! End to end with real ffmpeg: ffmpeg encodes a stream into FLV (the same tag bodies an RTMP
//! publisher sends), the segmenter packages it, and ffmpeg/ffprobe must decode the playlist,
//! every segment and every segment's first part without errors. Skips loudly without
//! ffmpeg (a failure under CI, which installs it).

// Test helpers: a failed setup step should fail the test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Scratch, Tag, probe, read_flv, run};
use lifeline_hls::{Config, Lookup, Segmenter, Status, UriTemplate};
use std::path::Path;

fn tools(test: &str) -> bool {
    testkit::require_tool(test, "ffmpeg") && testkit::require_tool(test, "ffprobe")
}

/// Feeds every tag, returning the playlist as it was half-way (live, with parts).
fn feed(seg: &mut Segmenter, tags: &[Tag]) -> String {
    let mut live = None;
    for (i, tag) in tags.iter().enumerate() {
        seg.push(tag.kind, tag.timestamp, tag.body.clone())
            .unwrap_or_else(|e| panic!("tag {i} ({:?} at {} ms): {e}", tag.kind, tag.timestamp));
        if live.is_none() && tag.timestamp >= 3000 {
            live = seg.media_playlist(&UriTemplate::default(), false);
        }
    }
    seg.end();
    live.expect("a live playlist after 3 s")
}

/// Writes the playlist and everything it names into `dir`; returns the segment names.
fn write_out(seg: &Segmenter, dir: &Path) -> Vec<String> {
    let playlist = seg.media_playlist(&UriTemplate::default(), false).unwrap();
    std::fs::write(dir.join("index.m3u8"), &playlist).unwrap();
    let mut segments = Vec::new();
    for line in playlist.lines() {
        let name = match line.strip_prefix("#EXT-X-MAP:URI=\"") {
            Some(rest) => rest.trim_end_matches('"'),
            None if !line.starts_with('#') => line,
            None => continue,
        };
        let Lookup::Ready(bytes) = seg.lookup(name) else {
            panic!("{name} not found");
        };
        std::fs::write(dir.join(name), &bytes).unwrap();
        if name.starts_with("seg-") {
            segments.push(name.to_string());
        }
    }
    segments
}

/// Decodes the playlist, each init+segment and each init+first part; returns the number of
/// (video, audio) frames decoded from the playlist.
fn check_decodes(seg: &Segmenter, dir: &Path, segments: &[String], audio: bool) -> (usize, usize) {
    let out = run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-allowed_extensions",
            "ALL",
            "-i",
            "index.m3u8",
            "-f",
            "null",
            "-",
        ],
        dir,
    );
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(errors.trim().is_empty(), "decode errors: {errors}");
    let streams = probe(
        dir,
        "index.m3u8",
        &[
            "-count_frames",
            "-show_entries",
            "stream=codec_type,nb_read_frames",
        ],
    );
    // Streams are listed twice (under the HLS program and on their own): take the largest.
    let count = |kind: &str| {
        streams
            .iter()
            .filter_map(|l| l.strip_prefix(&format!("{kind},")))
            .map(|n| n.parse::<usize>().unwrap())
            .max()
            .unwrap_or(0)
    };
    let (video, sound) = (count("video"), count("audio"));
    if audio {
        assert!(sound > 0, "no audio decoded: {streams:?}");
    }
    let init = std::fs::read(dir.join("init-0.mp4")).unwrap();
    for name in segments {
        // Every segment on its own (after the init) starts with a keyframe.
        let msn = name.trim_start_matches("seg-").trim_end_matches(".m4s");
        let Lookup::Ready(part0) = seg.lookup(&format!("part-{msn}.0.m4s")) else {
            panic!("no part 0 of {name}");
        };
        for (file, body) in [
            (
                format!("alone-{name}.mp4"),
                std::fs::read(dir.join(name)).unwrap(),
            ),
            (format!("alone-part-{msn}.0.mp4"), part0.to_vec()),
        ] {
            std::fs::write(dir.join(&file), [&init[..], &body[..]].concat()).unwrap();
            let frames = probe(
                dir,
                &file,
                &[
                    "-select_streams",
                    "v",
                    "-show_entries",
                    "frame=key_frame,pict_type",
                ],
            );
            assert!(!frames.is_empty(), "{file} decodes no video frame");
            assert!(
                frames[0].starts_with("1,"),
                "{file} starts with {:?}",
                frames[0]
            );
        }
    }
    (video, sound)
}

#[test]
fn h264_aac_from_ffmpeg_plays_back() {
    if !tools("h264_aac_from_ffmpeg_plays_back") {
        return;
    }
    let dir = Scratch::new("h264");
    run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "6",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
            "-g",
            "30",
            "-c:a",
            "aac",
            "-b:a",
            "64k",
            "-f",
            "flv",
            "in.flv",
        ],
        &dir.0,
    );
    let tags = read_flv(&std::fs::read(dir.path("in.flv")).unwrap());
    let mut seg = Segmenter::new(Config::default());
    let live = feed(&mut seg, &tags);
    assert!(
        live.contains("#EXT-X-PART:") && live.contains("#EXT-X-PRELOAD-HINT:"),
        "{live}"
    );
    assert_eq!(seg.status(), Status::Ended);
    assert_eq!(seg.codecs().as_deref(), Some("avc1.64000d,mp4a.40.2"));
    let segments = write_out(&seg, &dir.0);
    assert_eq!(segments.len(), 6, "6 s of 1 s GOPs");
    let (video, audio) = check_decodes(&seg, &dir.0, &segments, true);
    eprintln!(
        "h264/aac: {} segments, {video} video and {audio} audio frames",
        segments.len()
    );
    assert_eq!(video, 180, "6 s at 30 fps");
    assert!(
        audio >= 280,
        "{audio} audio frames (6 s at 48 kHz is 281.25)"
    );
}

#[test]
fn hevc_from_ffmpeg_plays_back() {
    if !tools("hevc_from_ffmpeg_plays_back") {
        return;
    }
    let dir = Scratch::new("hevc");
    run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=30",
            "-t",
            "4",
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-x265-params",
            "log-level=error:keyint=30:min-keyint=30:bframes=0:aud=1:scenecut=0",
            "-f",
            "hevc",
            "in.hevc",
        ],
        &dir.0,
    );
    let tags = common::annexb::hevc_tags(&std::fs::read(dir.path("in.hevc")).unwrap(), 30);
    assert_eq!(tags.len(), 121, "sequence start + 120 frames");
    let mut seg = Segmenter::new(Config::default());
    feed(&mut seg, &tags);
    assert_eq!(seg.codecs().as_deref(), Some("hvc1.1.6.L60.90"));
    let segments = write_out(&seg, &dir.0);
    assert_eq!(segments.len(), 4);
    let (video, _) = check_decodes(&seg, &dir.0, &segments, false);
    eprintln!("hevc: {} segments, {video} video frames", segments.len());
    assert_eq!(video, 120);
}

#[test]
fn av1_opus_from_ffmpeg_plays_back() {
    if !tools("av1_opus_from_ffmpeg_plays_back") {
        return;
    }
    let dir = Scratch::new("av1");
    run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=30",
            "-t",
            "4",
            "-c:v",
            "libaom-av1",
            "-cpu-used",
            "8",
            "-usage",
            "realtime",
            "-g",
            "30",
            "-pix_fmt",
            "yuv420p",
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
            "4",
            "-c:a",
            "libopus",
            "-b:a",
            "48k",
            "-f",
            "ogg",
            "in.opus",
        ],
        &dir.0,
    );
    let video = common::obu::av1_tags(&std::fs::read(dir.path("in.obu")).unwrap(), 30);
    let audio = common::obu::opus_tags(&std::fs::read(dir.path("in.opus")).unwrap());
    let mut seg = Segmenter::new(Config::default());
    feed(&mut seg, &common::obu::interleave(video, audio));
    assert_eq!(seg.codecs().as_deref(), Some("av01.0.00M.08,opus"));
    let segments = write_out(&seg, &dir.0);
    assert_eq!(segments.len(), 4);
    let (video, audio) = check_decodes(&seg, &dir.0, &segments, true);
    eprintln!(
        "av1/opus: {} segments, {video} video and {audio} audio frames",
        segments.len()
    );
    assert_eq!(video, 120);
    assert!(audio >= 195, "{audio} Opus packets (4 s of 20 ms is 200)");
}
