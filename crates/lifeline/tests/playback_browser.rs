//! Browser playback (issue 15) in headless Chromium over WebDriver: the dashboard's own watch
//! view (Media Source Extensions fed with the live fMP4, no library), hls.js in low-latency
//! mode on the LL-HLS playlist, and mpegts.js on HTTP-FLV. Each must *play*: `currentTime`
//! advances by 5 s with frames decoded and no error. hls.js and mpegts.js come from the npm
//! registry, installed by the test into a temp dir (never committed) and served with the test
//! page by a static server on 127.0.0.1.
//!
//! The tests take turns (one browser, one encoder at a time): on two shared cores, parallel
//! browsers would measure each other rather than the server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use testkit::player::WHITE_SRC;
use testkit::process::ChildGuard;
use testkit::rtmp::{Lifeline, TempDir, ffmpeg_publish_src, require_tool};
use testkit::skip::{have_tool, skip};
use testkit::static_http::StaticServer;
use testkit::webdriver::{Browser, Tools, apt_install, ensure_browser};

/// testsrc in 4:2:0: x264 would otherwise pick 4:4:4 for it, which browsers do not decode.
const SRC: &str = "testsrc=size=320x240:rate=25,format=yuv420p";
/// Playback time each player must show, and the frames it must have decoded meanwhile (at
/// 25 fps, 5 s is 125; a few may be dropped).
const PLAY_S: f64 = 5.0;
const MIN_FRAMES: u64 = 100;
/// hls.js's latency behind the live edge in low-latency mode must stay under this.
const MAX_HLS_LATENCY_S: f64 = 1.5;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn turn() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A server with ffmpeg publishing `live/cam`, and the browser tools.
struct Live {
    server: Lifeline,
    tools: Tools,
    publisher: ChildGuard,
}

fn live(test: &str) -> Option<Live> {
    if !require_tool(test, "ffmpeg") {
        return None;
    }
    let tools = ensure_browser(test)?;
    let mut server = Lifeline::start(Path::new(env!("CARGO_BIN_EXE_lifeline")), "");
    let publisher = ChildGuard::spawn_logged(
        &mut ffmpeg_publish_src(&server.url("live/cam"), 60, SRC),
        &server.dir().join("pub.log"),
    )
    .unwrap();
    assert!(
        server
            .wait_log("publish conn", Duration::from_secs(15))
            .is_some(),
        "{}",
        server.log_text()
    );
    Some(Live {
        server,
        tools,
        publisher,
    })
}

/// `npm install`s `packages` into `dir` (npm itself from apt when missing and root); false
/// after a [`skip`] when that cannot be done.
fn npm_install(test: &str, dir: &Path, packages: &[&str]) -> bool {
    if !have_tool("npm") {
        apt_install(&["npm"]);
    }
    if !have_tool("npm") {
        return skip(test, "npm is not installed and we are not root");
    }
    let started = Instant::now();
    let out = Command::new("npm")
        .args([
            "install",
            "--no-save",
            "--no-audit",
            "--no-fund",
            "--fetch-timeout=20000",
            "--fetch-retries=1",
            "--prefix",
        ])
        .arg(dir)
        .args(packages)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "npm install {packages:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "{test}: npm installed {packages:?} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    true
}

/// What a page's `probe()` reports.
#[derive(Debug, Clone)]
struct Sample {
    /// Seconds since the sampling began.
    at: f64,
    time: f64,
    frames: u64,
    errors: Vec<String>,
    extra: Value,
}

fn sample(browser: &Browser, probe: &str, since: Instant) -> Sample {
    let v = browser.execute(probe, &[]);
    Sample {
        at: since.elapsed().as_secs_f64(),
        time: v["time"].as_f64().unwrap_or(0.0),
        frames: v["frames"].as_u64().unwrap_or(0),
        errors: v["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_owned))
            .collect(),
        extra: v["extra"].clone(),
    }
}

/// Samples `probe` every 500 ms until `currentTime` has advanced [`PLAY_S`] beyond where it
/// was when frames first showed, failing on any error or after `timeout`. Returns the first
/// playing sample and the last.
fn play(browser: &Browser, what: &str, probe: &str, timeout: Duration) -> (Sample, Sample) {
    let since = Instant::now();
    let mut first: Option<Sample> = None;
    loop {
        let s = sample(browser, probe, since);
        assert!(
            s.errors.is_empty(),
            "{what}: errors {:?}\nconsole:\n{}",
            s.errors,
            browser.console()
        );
        if first.is_none() && s.frames > 0 && s.time > 0.0 {
            first = Some(s.clone());
        }
        if let Some(f) = &first
            && s.time - f.time >= PLAY_S
        {
            let f = f.clone();
            eprintln!(
                "{what}: currentTime {:.2} -> {:.2} s (+{:.2} s) in {:.2} s of wall time, \
                 frames {} -> {}; {}",
                f.time,
                s.time,
                s.time - f.time,
                s.at - f.at,
                f.frames,
                s.frames,
                s.extra
            );
            assert!(
                s.frames - f.frames >= MIN_FRAMES,
                "{what}: only {} frames decoded in {PLAY_S} s",
                s.frames - f.frames
            );
            return (f, s);
        }
        assert!(
            since.elapsed() < timeout,
            "{what}: not playing after {timeout:?}: last {s:?}\nconsole:\n{}",
            browser.console()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A test page: `watch()` adds a muted `<video>` and starts a player on it with `make`
/// (a function body given `v` and `errors` that returns a function of extra figures);
/// `probe(i)` reports on the `i`th.
fn page(title: &str, libs: &str, make: &str) -> String {
    format!(
        r#"<!doctype html><meta charset="utf-8"><title>{title}</title>
{libs}
<script>
"use strict";
const players = [];
function watch() {{
  const v = document.createElement("video");
  Object.assign(v, {{ muted: true, autoplay: true, playsInline: true, width: 320 }});
  document.body.append(v);
  const errors = [];
  v.addEventListener("error", () => errors.push("video error: " + (v.error ? v.error.code + " " + v.error.message : "?")));
  const extra = ((v, errors) => {{ {make} }})(v, errors);
  players.push({{ v, errors, extra }});
}}
function probe(i) {{
  const p = players[i];
  return {{ time: p.v.currentTime, frames: p.v.getVideoPlaybackQuality().totalVideoFrames, errors: p.errors, extra: p.extra() }};
}}
</script>"#
    )
}

/// The watch view's state; `extra.white` says the picture is (nearly) all white, read off
/// a canvas the frame is drawn on (MSE media is same-origin, so the canvas is readable).
const WATCH_PROBE: &str = r#"const v = document.getElementById("watch-video");
const shown = document.getElementById("watch-error").textContent;
const b = v.buffered;
const c = document.createElement("canvas");
c.width = 32; c.height = 24;
const g = c.getContext("2d", { willReadFrequently: true });
g.drawImage(v, 0, 0, 32, 24);
const px = g.getImageData(0, 0, 32, 24).data;
let sum = 0;
for (let i = 0; i < px.length; i += 4) sum += (px[i] + px[i + 1] + px[i + 2]) / 3;
const failed = [shown ? "shown: " + shown : "", Watch.failures ? `restarted ${Watch.failures} times` : ""];
return { time: v.currentTime, frames: v.getVideoPlaybackQuality().totalVideoFrames,
         errors: errors.concat(failed.filter(Boolean)),
         extra: { size: v.videoWidth + "x" + v.videoHeight, white: sum / (px.length / 4) > 200,
                  behind_newest_s: b.length ? b.end(b.length - 1) - v.currentTime : null,
                  status: document.getElementById("watch-status").textContent } };"#;

/// The dashboard in a browser, its watch view opened on `live/cam` by the row's button,
/// with the video's `error` events collected.
fn open_watch_view(test: &str, live: &Live) -> Browser {
    let api = live.server.http_addr.expect("HTTP listening");
    let browser = Browser::start(&live.tools, &["--window-size=1400,1000"]);
    browser.goto(&format!("http://{api}/"));
    let supported = browser.execute(
        r#"return MediaSource.isTypeSupported('video/mp4; codecs="avc1.42E01E,mp4a.40.2"')"#,
        &[],
    );
    eprintln!("{test}: MSE supports H.264/AAC: {supported}");
    assert_eq!(
        supported,
        json!(true),
        "this Chromium cannot play H.264/AAC"
    );
    browser.execute(
        r#"const v = document.getElementById("watch-video");
        window.errors = [];
        v.addEventListener("error", () => errors.push("video error: " + (v.error ? v.error.code + " " + v.error.message : "?")));"#,
        &[],
    );
    let t = Duration::from_secs(20);
    assert!(
        browser.click("tr[data-stream='live/cam'] button.watch", t),
        "watch button"
    );
    assert!(browser.wait_for("#watch:not([hidden])", t).is_some());
    browser
}

#[test]
fn dashboard_watch_view_plays_mse() {
    let test = "dashboard_watch_view_plays_mse";
    let _turn = turn();
    let Some(live) = live(test) else { return };
    let browser = open_watch_view(test, &live);
    let (_, last) = play(&browser, "watch view", WATCH_PROBE, Duration::from_secs(30));
    assert_eq!(last.extra["size"], "320x240");
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("watch.png");
    browser.screenshot(&shot);
    // The dashboard lists the watch view itself as a player over HTTP-MP4.
    assert!(
        browser
            .wait_for(
                "tr[data-role='player'][data-protocol='http-mp4']",
                Duration::from_secs(5)
            )
            .is_some()
    );
}

/// A new publisher's init segment comes in the same body: the view appends it, steps over
/// the hole between the two publishers' media, and shows the newcomer's (white) picture.
#[test]
fn watch_view_follows_a_new_publisher() {
    let test = "watch_view_follows_a_new_publisher";
    let _turn = turn();
    let Some(mut live) = live(test) else { return };
    let browser = open_watch_view(test, &live);
    let (_, before) = play(
        &browser,
        "watch view, first publisher",
        WATCH_PROBE,
        Duration::from_secs(30),
    );
    assert_eq!(before.extra["white"], false, "testsrc is not white");
    let mark = live.server.log_lines();
    let stopped = Instant::now();
    live.publisher.terminate(Duration::from_secs(5));
    let white = format!("{WHITE_SRC},format=yuv420p");
    live.publisher = ChildGuard::spawn_logged(
        &mut ffmpeg_publish_src(&live.server.url("live/cam"), 60, &white),
        &live.server.dir().join("pub2.log"),
    )
    .unwrap();
    assert!(
        live.server
            .wait_log_after(mark, "publish conn", Duration::from_secs(15))
            .is_some(),
        "{}",
        live.server.log_text()
    );
    let end = stopped + Duration::from_secs(20);
    while sample(&browser, WATCH_PROBE, stopped).extra["white"] != true {
        assert!(
            Instant::now() < end,
            "the new publisher's picture never showed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "{test}: the new publisher's picture shows {:.2} s after the first one was stopped",
        stopped.elapsed().as_secs_f64()
    );
    let (_, after) = play(
        &browser,
        "watch view, second publisher",
        WATCH_PROBE,
        Duration::from_secs(30),
    );
    assert_eq!(
        after.extra["white"], true,
        "the new publisher's picture: {after:?}"
    );
    browser.screenshot(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("watch-new-publisher.png"));
}

/// Plays the `i`th hls.js player for [`PLAY_S`], then samples `hls.latency` (hls.js's own
/// measure of how far behind the live edge it plays) six times over 2.5 s, and prints them.
fn hls_latencies(browser: &Browser, what: &str, i: usize) -> Vec<f64> {
    let probe = format!("return probe({i});");
    play(browser, what, &probe, Duration::from_secs(30));
    let since = Instant::now();
    let samples: Vec<Sample> = (0..6)
        .map(|n| {
            if n > 0 {
                std::thread::sleep(Duration::from_millis(500));
            }
            sample(browser, &probe, since)
        })
        .collect();
    assert!(samples.iter().all(|s| s.errors.is_empty()), "{samples:?}");
    let latencies: Vec<f64> = samples
        .iter()
        .map(|s| s.extra["latency"].as_f64().unwrap())
        .collect();
    eprintln!(
        "{what} (hls.js {}): latency samples (s) {latencies:.3?}, target latency {} s",
        samples[0].extra["version"].as_str().unwrap_or("?"),
        samples[0].extra["target"],
    );
    latencies
}

#[test]
fn hls_js_low_latency_plays_near_live() {
    let test = "hls_js_low_latency_plays_near_live";
    let _turn = turn();
    let Some(live) = live(test) else { return };
    let dir = TempDir::new("lifeline-hlsjs");
    if !npm_install(test, dir.path(), &["hls.js@1"]) {
        return;
    }
    let src = live.server.playback_url("live/cam/index.m3u8");
    let make = format!(
        r#"if (!Hls.isSupported()) errors.push("hls.js: MSE not supported");
const hls = new Hls({{ lowLatencyMode: true }});
hls.on(Hls.Events.ERROR, (_, d) => {{ if (d.fatal) errors.push("hls.js fatal: " + d.type + " " + d.details); }});
hls.loadSource({src});
hls.attachMedia(v);
return () => ({{ latency: hls.latency, target: hls.targetLatency, version: Hls.version }});"#,
        src = json!(src)
    );
    let html = page(
        "hls.js",
        r#"<script src="node_modules/hls.js/dist/hls.min.js"></script>"#,
        &make,
    );
    std::fs::write(dir.path().join("index.html"), html).unwrap();
    let files = StaticServer::serve(dir.path()).unwrap();
    let browser = Browser::start(&live.tools, &["--window-size=800,600"]);
    browser.goto(&files.url("/"));
    browser.execute("watch()", &[]);
    // The stream's first HLS viewer starts its segmenter (the server holds its first playlist
    // until two segments are complete); the second joins a stream already segmented. Both
    // are held to the bound.
    let cold = hls_latencies(&browser, "hls.js, first viewer (cold segmenter)", 0);
    assert!(
        cold.iter().all(|l| (0.0..=MAX_HLS_LATENCY_S).contains(l)),
        "hls.js latency {cold:?} above {MAX_HLS_LATENCY_S} s (first viewer)"
    );
    browser.execute("watch()", &[]);
    let warm = hls_latencies(&browser, "hls.js, second viewer", 1);
    assert!(
        warm.iter().all(|l| (0.0..=MAX_HLS_LATENCY_S).contains(l)),
        "hls.js latency {warm:?} above {MAX_HLS_LATENCY_S} s"
    );
}

#[test]
fn mpegts_js_plays_http_flv() {
    let test = "mpegts_js_plays_http_flv";
    let _turn = turn();
    let Some(live) = live(test) else { return };
    let dir = TempDir::new("lifeline-mpegtsjs");
    if !npm_install(test, dir.path(), &["mpegts.js@1"]) {
        return;
    }
    let src = live.server.playback_url("live/cam.flv");
    let make = format!(
        r#"if (!mpegts.getFeatureList().mseLivePlayback) errors.push("mpegts.js: no MSE live playback");
const player = mpegts.createPlayer({{ type: "flv", isLive: true, url: {src} }}, {{ enableStashBuffer: false, liveBufferLatencyChasing: true }});
player.on(mpegts.Events.ERROR, (type, detail, info) => errors.push("mpegts.js: " + type + " " + detail + " " + JSON.stringify(info)));
player.attachMediaElement(v);
player.load();
v.play().catch(() => {{}});
return () => ({{ behind_newest_s: v.buffered.length ? v.buffered.end(v.buffered.length - 1) - v.currentTime : null, version: mpegts.version }});"#,
        src = json!(src)
    );
    let html = page(
        "mpegts.js",
        r#"<script src="node_modules/mpegts.js/dist/mpegts.js"></script>"#,
        &make,
    );
    std::fs::write(dir.path().join("index.html"), html).unwrap();
    let files = StaticServer::serve(dir.path()).unwrap();
    let browser = Browser::start(&live.tools, &["--window-size=800,600"]);
    browser.goto(&files.url("/"));
    browser.execute("watch()", &[]);
    play(
        &browser,
        "mpegts.js",
        "return probe(0);",
        Duration::from_secs(30),
    );
}
