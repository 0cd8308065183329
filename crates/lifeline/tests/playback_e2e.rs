//! Browser playback with real clients (Debian's ffmpeg) against `lifeline serve` on 127.0.0.1:
//! HTTP-FLV and low-latency HLS decode, every HLS segment starts with a keyframe, the
//! playlists are well formed, a blocking reload answers with the part it asked for, and
//! viewers of both formats go on through a publisher takeover without reconnecting.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testkit::http::get;
use testkit::player::{Player, WHITE_SRC};
use testkit::process::ChildGuard;
use testkit::rtmp::{
    Lifeline, ffmpeg_play_frames, ffmpeg_publish, ffmpeg_publish_src, require_tool,
};

const FRAME_BYTES: usize = 320 * 240;
const T: Duration = Duration::from_secs(10);

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_lifeline"))
}

/// Runs `cmd` (stdout piped) for at most `timeout` and returns what it wrote.
fn output_of(mut cmd: Command, timeout: Duration) -> Vec<u8> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = ChildGuard::spawn(&mut cmd).unwrap();
    let mut stdout = child.take_stdout().expect("stdout piped");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    child.wait_timeout(timeout);
    drop(child);
    reader.join().unwrap_or_default()
}

fn wait_publishing(server: &mut Lifeline, stream: &str) {
    let needle = format!("stream={stream}");
    let line = server.wait_log("publish conn", Duration::from_secs(15));
    assert!(
        line.is_some_and(|l| l.contains(&needle)),
        "no publish of {stream}:\n{}",
        server.log_text()
    );
}

/// A media playlist's lines, with the values of the tags the checks need.
struct Playlist {
    text: String,
}

impl Playlist {
    fn tag(&self, name: &str) -> Option<&str> {
        self.text
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
    }

    fn tags(&self, name: &str) -> Vec<&str> {
        self.text
            .lines()
            .filter_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .collect()
    }

    fn attr<'a>(value: &'a str, key: &str) -> Option<&'a str> {
        value.split(',').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == key).then(|| v.trim_matches('"'))
        })
    }

    /// (media sequence number, part index) of the newest part.
    fn last_part(&self) -> (u64, u32) {
        let uri = self
            .tags("#EXT-X-PART")
            .last()
            .and_then(|p| Self::attr(p, "URI"))
            .expect("a part")
            .to_owned();
        let (msn, index) = uri
            .strip_prefix("part-")
            .and_then(|s| s.strip_suffix(".m4s"))
            .and_then(|s| s.split_once('.'))
            .expect("part-M.I.m4s");
        (msn.parse().unwrap(), index.parse().unwrap())
    }

    /// The complete segments' URIs.
    fn segments(&self) -> Vec<String> {
        self.text
            .lines()
            .filter(|l| l.starts_with("seg-"))
            .map(str::to_owned)
            .collect()
    }
}

/// Opens an HLS session; returns the media playlist's path.
fn open_session(addr: SocketAddr, stream: &str) -> String {
    let idx = get(addr, &format!("/{stream}/index.m3u8"), T).unwrap();
    assert_eq!(idx.status, 200, "{}", idx.text());
    assert_eq!(
        idx.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    let text = idx.text();
    assert!(text.starts_with("#EXTM3U"), "{text}");
    assert!(text.contains("#EXT-X-STREAM-INF:"), "{text}");
    assert!(text.contains("CODECS=\"avc1."), "{text}");
    let media = text.lines().last().unwrap();
    format!("/{stream}/{media}")
}

fn media_playlist(addr: SocketAddr, path: &str) -> Playlist {
    let r = get(addr, path, T).unwrap();
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    Playlist { text: r.text() }
}

/// Structure of a low-latency media playlist (RFC 8216bis).
fn check_structure(p: &Playlist) {
    let text = &p.text;
    assert!(text.starts_with("#EXTM3U\n"), "{text}");
    let target: f64 = p.tag("#EXT-X-TARGETDURATION").unwrap().parse().unwrap();
    let part_target: f64 = p
        .tag("#EXT-X-PART-INF")
        .and_then(|v| Playlist::attr(v, "PART-TARGET"))
        .unwrap()
        .parse()
        .unwrap();
    let control = p.tag("#EXT-X-SERVER-CONTROL").unwrap();
    assert_eq!(Playlist::attr(control, "CAN-BLOCK-RELOAD"), Some("YES"));
    let hold: f64 = Playlist::attr(control, "PART-HOLD-BACK")
        .unwrap()
        .parse()
        .unwrap();
    assert!(hold >= 2.0 * part_target, "PART-HOLD-BACK {hold}");
    assert!(p.tag("#EXT-X-MAP").is_some(), "{text}");
    assert!(p.tag("#EXT-X-PRELOAD-HINT").is_some(), "{text}");
    for part in p.tags("#EXT-X-PART") {
        let d: f64 = Playlist::attr(part, "DURATION").unwrap().parse().unwrap();
        assert!(
            d <= part_target + 1e-9,
            "part {d} > PART-TARGET {part_target}"
        );
    }
    for inf in p.tags("#EXTINF") {
        let d: f64 = inf.trim_end_matches(',').parse().unwrap();
        assert!(d.round() <= target, "segment {d} > TARGETDURATION {target}");
    }
}

#[test]
fn http_flv_and_hls_decode_with_ffmpeg() {
    if !require_tool("http_flv_and_hls_decode_with_ffmpeg", "ffmpeg") {
        return;
    }
    let mut server = Lifeline::start(bin(), "");
    let addr = server.playback_addr.expect("playback on");
    let mut publisher = ChildGuard::spawn_logged(
        &mut ffmpeg_publish(&server.url("live/pb"), 40),
        &server.dir().join("pub.log"),
    )
    .unwrap();
    wait_publishing(&mut server, "live/pb");

    // HTTP-FLV: 100 frames decoded.
    let flv = server.playback_url("live/pb.flv");
    let frames = output_of(ffmpeg_play_frames(&flv, 100), Duration::from_secs(20)).len();
    assert!(
        frames / FRAME_BYTES >= 100,
        "{} frames from {flv}",
        frames / FRAME_BYTES
    );

    // HLS: 100 video frames, and audio.
    let hls = server.playback_url("live/pb/index.m3u8");
    let frames = output_of(ffmpeg_play_frames(&hls, 100), Duration::from_secs(25)).len();
    assert!(
        frames / FRAME_BYTES >= 100,
        "{} frames from {hls}",
        frames / FRAME_BYTES
    );
    let mut audio = Command::new("ffmpeg");
    audio
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-i", &hls])
        .args([
            "-vn", "-t", "3", "-ac", "1", "-ar", "8000", "-f", "s16le", "-",
        ]);
    let samples = output_of(audio, Duration::from_secs(20)).len() / 2;
    assert!(samples >= 2 * 8000, "{samples} audio samples from {hls}");

    // The playlists' structure, twice, with the media sequence moving forward.
    let media = open_session(addr, "live/pb");
    let first = media_playlist(addr, &media);
    check_structure(&first);
    std::thread::sleep(Duration::from_millis(2500));
    let later = media_playlist(addr, &media);
    check_structure(&later);
    let seq = |p: &Playlist| -> u64 { p.tag("#EXT-X-MEDIA-SEQUENCE").unwrap().parse().unwrap() };
    assert!(seq(&later) > seq(&first), "media sequence did not move");
    assert!(later.last_part() > first.last_part());

    // Every complete segment, with its init segment, starts with a keyframe.
    let dir = server.dir().to_owned();
    let base = media.rsplit_once('/').unwrap().0.to_owned();
    let map = Playlist::attr(later.tag("#EXT-X-MAP").unwrap(), "URI")
        .unwrap()
        .to_owned();
    let init = get(addr, &format!("{base}/{map}"), T).unwrap();
    assert_eq!(init.status, 200);
    let segments = later.segments();
    assert!(segments.len() >= 2, "{}", later.text);
    for seg in &segments {
        let body = get(addr, &format!("{base}/{seg}"), T).unwrap();
        assert_eq!(body.status, 200, "{seg}");
        assert_eq!(body.header("content-type"), Some("video/mp4"));
        let file = dir.join(format!("{seg}.mp4"));
        std::fs::write(&file, [init.body.as_slice(), &body.body].concat()).unwrap();
        let mut probe = Command::new("ffprobe");
        probe
            .args(["-v", "error", "-select_streams", "v", "-show_frames"])
            .args([
                "-read_intervals",
                "%+#1",
                "-show_entries",
                "frame=key_frame",
            ])
            .args(["-of", "csv=p=0"])
            .arg(&file);
        let out = String::from_utf8_lossy(&output_of(probe, T))
            .trim()
            .to_owned();
        assert_eq!(out.lines().next(), Some("1"), "{seg} starts with {out:?}");
    }
    eprintln!(
        "{} segments checked, each starts with a keyframe",
        segments.len()
    );

    // A blocking reload for the preload-hint part waits until that part is made, then
    // lists it; the same for the first part of the segment after next.
    for ahead in [false, true] {
        let now = media_playlist(addr, &media);
        let hint = Playlist::attr(now.tag("#EXT-X-PRELOAD-HINT").unwrap(), "URI")
            .unwrap()
            .to_owned();
        let (msn, part) = hint
            .strip_prefix("part-")
            .and_then(|s| s.strip_suffix(".m4s"))
            .and_then(|s| s.split_once('.'))
            .map(|(m, i)| (m.parse::<u64>().unwrap(), i.parse::<u32>().unwrap()))
            .unwrap();
        let (msn, part) = if ahead { (msn + 1, 0) } else { (msn, part) };
        let want = format!("part-{msn}.{part}.m4s");
        let started = Instant::now();
        let blocked = media_playlist(addr, &format!("{media}?_HLS_msn={msn}&_HLS_part={part}"));
        let waited = started.elapsed();
        assert!(
            blocked
                .tags("#EXT-X-PART")
                .iter()
                .any(|p| p.contains(&want)),
            "{want} not in\n{}",
            blocked.text
        );
        eprintln!("blocking reload for {want} answered after {waited:?}");
        assert!(waited < Duration::from_secs(3), "{waited:?}");
    }

    // Hostile directives are refused, not waited on.
    let bad = get(addr, &format!("{media}?_HLS_part=1"), T).unwrap();
    assert_eq!(bad.status, 400, "{}", bad.text());
    publisher.terminate(Duration::from_secs(5));
}

#[test]
fn http_viewers_follow_a_takeover_without_reconnecting() {
    if !require_tool(
        "http_viewers_follow_a_takeover_without_reconnecting",
        "ffmpeg",
    ) {
        return;
    }
    let mut server = Lifeline::start(bin(), "[publish]\non_duplicate = \"takeover\"\n");
    let url = server.url("live/tk");
    let _first = ChildGuard::spawn_logged(
        &mut ffmpeg_publish(&url, 60),
        &server.dir().join("pub1.log"),
    )
    .unwrap();
    wait_publishing(&mut server, "live/tk");
    let flv = Player::start_local(&server.playback_url("live/tk.flv")).unwrap();
    let hls = Player::start_local(&server.playback_url("live/tk/index.m3u8")).unwrap();
    assert!(
        flv.wait_frames(25, Duration::from_secs(15)),
        "FLV viewer started"
    );
    assert!(
        hls.wait_frames(25, Duration::from_secs(20)),
        "HLS viewer started"
    );
    let mark = server.log_lines();
    let switched = Instant::now();
    let _second = ChildGuard::spawn_logged(
        &mut ffmpeg_publish_src(&url, 60, WHITE_SRC),
        &server.dir().join("pub2.log"),
    )
    .unwrap();
    assert!(
        server
            .wait_log_after(mark, "publisher taken over", Duration::from_secs(15))
            .is_some(),
        "{}",
        server.log_text()
    );
    for (name, player) in [("HTTP-FLV", &flv), ("HLS", &hls)] {
        let white = player.wait_frame_after(switched, Duration::from_secs(15), |f| f.white);
        assert!(
            white.is_some(),
            "{name} viewer never showed the new publisher"
        );
        eprintln!(
            "{name} viewer shows the new publisher {:?} after the takeover",
            white.map(|at| at.saturating_duration_since(switched))
        );
    }
    // Same processes, same connections: nobody reconnected.
    let closes = server.close_lines(mark);
    assert!(
        closes.iter().all(|l| !l.contains("protocol=\"http-flv\"")),
        "an HTTP-FLV viewer was closed: {closes:?}"
    );
}
