//! Playlist structure, URI templates, lookups and blocking-reload decisions on a live stream.

use super::{Publisher, config, segment_ms};
use crate::fuzzing::{Checker, check_playlist};
use crate::{Directives, Lookup, Reload, Segmenter, UriTemplate};

fn live(secs: f64) -> (Segmenter, Publisher) {
    let mut seg = Segmenter::new(config());
    let mut p = Publisher::new(30.0, 30);
    p.headers(&mut seg);
    p.run(&mut seg, secs * 1000.0, &mut Checker::default());
    (seg, p)
}

fn reload(seg: &Segmenter, msn: Option<u64>, part: Option<u64>) -> Reload {
    seg.reload(Directives { msn, part })
}

#[test]
fn media_playlist_structure() {
    let (mut seg, _) = live(10.25);
    seg.set_wallclock(1_798_761_600_000);
    let uris = UriTemplate {
        prefix: "/hls/cam/".into(),
        suffix: "?s=ab".into(),
    };
    let text = seg.media_playlist(&uris, true).unwrap();
    let head: Vec<&str> = text.lines().take(7).collect();
    assert_eq!(
        head,
        [
            "#EXTM3U",
            "#EXT-X-VERSION:9",
            "#EXT-X-TARGETDURATION:1",
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600",
            "#EXT-X-PART-INF:PART-TARGET=0.200",
            "#EXT-X-MEDIA-SEQUENCE:3",
            "#EXT-X-DISCONTINUITY-SEQUENCE:0",
        ]
    );
    assert_eq!(
        text.lines().nth(7),
        Some("#EXT-X-MAP:URI=\"/hls/cam/init-0.mp4?s=ab\"")
    );
    // Seven segments listed plainly, for players that ignore the low-latency tags.
    let segs: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("/hls/cam/seg-"))
        .collect();
    assert_eq!(segs.len(), 7);
    assert_eq!(segs[0], "/hls/cam/seg-3.m4s?s=ab");
    assert_eq!(text.matches("#EXTINF:1.000,\n").count(), 7);
    // Parts only for the last three target durations: the open segment (one part so far)
    // and the three complete segments before it, five 200 ms parts each.
    let parts = text
        .lines()
        .filter(|l| l.starts_with("#EXT-X-PART:"))
        .count();
    assert_eq!(parts, 3 * 5 + 1);
    let first_part = text.find("#EXT-X-PART:").unwrap();
    assert!(
        text[..first_part].contains("seg-6.m4s"),
        "parts start after seg-6"
    );
    assert!(text.contains(
        "#EXT-X-PART:DURATION=0.200,URI=\"/hls/cam/part-7.0.m4s?s=ab\",INDEPENDENT=YES\n"
    ));
    assert!(text.contains("#EXT-X-PART:DURATION=0.200,URI=\"/hls/cam/part-7.1.m4s?s=ab\"\n"));
    assert!(text.ends_with("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"/hls/cam/part-10.1.m4s?s=ab\"\n"));
    // No date was known when these segments started.
    assert!(!text.contains("PROGRAM-DATE-TIME"));
    check_playlist(
        &seg,
        &seg.media_playlist(&UriTemplate::default(), true).unwrap(),
    );
}

#[test]
fn program_date_time_follows_the_wallclock() {
    let (mut seg, mut p) = live(1.0);
    // The newest media time pushed (audio at 981 ms) is 2027-01-01T00:00:00Z, so segment 1,
    // starting at 1000 ms, is 19 ms later.
    seg.set_wallclock(1_798_761_600_000);
    p.run(&mut seg, 3100.0, &mut Checker::default());
    let text = seg.media_playlist(&UriTemplate::default(), true).unwrap();
    assert!(
        text.contains("#EXT-X-PROGRAM-DATE-TIME:2027-01-01T00:00:00.019Z\n"),
        "{text}"
    );
    assert!(
        text.contains("#EXT-X-PROGRAM-DATE-TIME:2027-01-01T00:00:01.019Z\n"),
        "{text}"
    );
}

#[test]
fn no_playlist_before_the_first_segment() {
    let (seg, _) = live(0.5);
    assert!(seg.media_playlist(&UriTemplate::default(), false).is_none());
    assert!(seg.multivariant_playlist("index.m3u8").is_none());
    assert_eq!(reload(&seg, None, None), Reload::Wait);
    assert_eq!(reload(&seg, Some(0), Some(0)), Reload::Wait);
    // The parts exist already and can be fetched.
    assert!(matches!(seg.lookup("part-0.0.m4s"), Lookup::Ready(_)));
    assert!(matches!(seg.lookup("init-0.mp4"), Lookup::Ready(_)));
}

#[test]
fn multivariant_playlist() {
    let (seg, _) = live(3.0);
    let text = seg.multivariant_playlist("live.m3u8?s=1").unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "#EXTM3U");
    let inf = lines[2];
    assert!(inf.starts_with("#EXT-X-STREAM-INF:BANDWIDTH="), "{inf}");
    assert!(
        inf.contains(",CODECS=\"avc1.64000d,mp4a.40.2\",RESOLUTION=320x240"),
        "{inf}"
    );
    // ~30 x 813 bytes of video + audio per second: about 200 kbit/s.
    let bw: u64 = inf["#EXT-X-STREAM-INF:BANDWIDTH=".len()..]
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((190_000..260_000).contains(&bw), "{bw}");
    assert_eq!(lines[3], "live.m3u8?s=1");
    let video = seg.video_config().unwrap();
    assert_eq!(
        (video.width, video.height, video.codecs.as_str()),
        (320, 240, "avc1.64000d")
    );
    let audio = seg.audio_config().unwrap();
    assert_eq!((audio.sample_rate, audio.channels), (48000, 2));
}

#[test]
fn lookups_by_name() {
    let (seg, _) = live(2.3);
    // Segment 2 is in progress with one part (2.0–2.2 s); part 2.1 is the preload hint.
    assert!(matches!(seg.lookup("seg-1.m4s"), Lookup::Ready(_)));
    assert_eq!(seg.lookup("seg-2.m4s"), Lookup::Pending);
    assert!(matches!(seg.lookup("part-2.0.m4s"), Lookup::Ready(_)));
    assert_eq!(seg.lookup("part-2.1.m4s"), Lookup::Pending);
    assert_eq!(seg.lookup("part-2.2.m4s"), Lookup::NotFound);
    assert_eq!(seg.lookup("part-3.0.m4s"), Lookup::NotFound);
    assert_eq!(seg.lookup("index.m3u8"), Lookup::NotFound);
    assert_eq!(seg.lookup("init-1.mp4"), Lookup::NotFound);
    assert_eq!(seg.last_part(), Some((2, 0)));
}

#[test]
fn blocking_reload_decisions() {
    let (mut seg, mut p) = live(2.3);
    // Complete: 0 and 1; building: 2 with part 0 published.
    assert_eq!(reload(&seg, None, None), Reload::Ready);
    assert_eq!(reload(&seg, Some(1), None), Reload::Ready);
    assert_eq!(reload(&seg, Some(2), None), Reload::Wait);
    assert_eq!(reload(&seg, Some(3), None), Reload::Wait);
    assert!(matches!(reload(&seg, Some(4), None), Reload::BadRequest(_)));
    assert!(matches!(reload(&seg, None, Some(0)), Reload::BadRequest(_)));
    assert_eq!(reload(&seg, Some(2), Some(0)), Reload::Ready);
    assert_eq!(reload(&seg, Some(2), Some(1)), Reload::Wait);
    // Advance part limit: 3 / 0.2 s = 15 parts past the newest.
    assert_eq!(reload(&seg, Some(2), Some(15)), Reload::Wait);
    assert!(matches!(
        reload(&seg, Some(2), Some(16)),
        Reload::BadRequest(_)
    ));
    assert_eq!(reload(&seg, Some(3), Some(0)), Reload::Wait);
    assert!(matches!(
        reload(&seg, Some(3), Some(12)),
        Reload::BadRequest(_)
    ));
    // Segment 1 has five parts; its "part 5" is part 0 of segment 2, which exists.
    assert_eq!(reload(&seg, Some(1), Some(4)), Reload::Ready);
    assert_eq!(reload(&seg, Some(1), Some(5)), Reload::Ready);
    // Hostile numbers are refused, not overflowed.
    assert!(matches!(
        reload(&seg, Some(u64::MAX), Some(u64::MAX)),
        Reload::BadRequest(_)
    ));
    assert!(matches!(
        reload(&seg, Some(2), Some(u64::MAX)),
        Reload::BadRequest(_)
    ));
    assert!(matches!(
        reload(&seg, Some(3), Some(u64::MAX)),
        Reload::BadRequest(_)
    ));
    // Aged-out and old requests are answered at once.
    assert_eq!(reload(&seg, Some(0), Some(99)), Reload::Ready);
    // Waiting requests become ready as parts arrive.
    p.run(&mut seg, 2500.0, &mut Checker::default());
    assert_eq!(reload(&seg, Some(2), Some(1)), Reload::Ready);
    p.run(&mut seg, 3050.0, &mut Checker::default());
    assert_eq!(reload(&seg, Some(2), None), Reload::Ready);
    // Segment 2 is complete with 5 parts; part 5 means segment 3 part 0, published at 3.2 s.
    assert_eq!(segment_ms(&seg).len(), 3);
    assert_eq!(reload(&seg, Some(2), Some(5)), Reload::Wait);
    assert_eq!(seg.blocking_timeout(), std::time::Duration::from_secs(3));
    seg.end();
    assert_eq!(
        reload(&seg, Some(9), Some(9)),
        Reload::Ready,
        "ENDLIST ignores directives"
    );
}

#[test]
fn every_state_of_a_long_stream_checks_out() {
    // The fuzz invariants (URIs resolvable, durations within targets, sequence numbers that
    // only grow, segments equal to their parts) after every single message.
    let mut seg = Segmenter::new(config());
    let mut p = Publisher::new(29.97, 45);
    p.headers(&mut seg);
    let mut check = Checker::default();
    let parts = p.run(&mut seg, 12_000.0, &mut check);
    assert!(parts >= 55, "{parts}");
    assert!(segment_ms(&seg).iter().all(|&d| (1500..1520).contains(&d)));
}
