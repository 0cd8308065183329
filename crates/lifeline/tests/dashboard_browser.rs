//! The dashboard in headless Chromium, driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`, through [`testkit::webdriver`]): it shows the
//! live stream and both connections, its kick button kicks, and a screenshot is saved to
//! `$CARGO_TARGET_TMPDIR/dashboard.png`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use testkit::http::http;
use testkit::process::ChildGuard;
use testkit::rtmp::{Lifeline, ffmpeg_play_frames, ffmpeg_publish, require_tool};
use testkit::webdriver::{Browser, ensure_browser};

#[test]
fn dashboard_in_chromium() {
    if !require_tool("dashboard_in_chromium", "ffmpeg") {
        return;
    }
    let Some(tools) = ensure_browser("dashboard_in_chromium") else {
        return;
    };
    let mut server = Lifeline::start(Path::new(env!("CARGO_BIN_EXE_lifeline")), "");
    let api = server.http_addr.expect("HTTP listening");
    let url = server.url("live/browser");
    let _publisher =
        ChildGuard::spawn_logged(&mut ffmpeg_publish(&url, 60), &server.dir().join("pub.log"))
            .unwrap();
    assert!(
        server
            .wait_log("publish conn", Duration::from_secs(15))
            .is_some(),
        "{}",
        server.log_text()
    );
    let mut play = ffmpeg_play_frames(&url, 100_000);
    play.stdout(Stdio::null()).stderr(Stdio::null());
    let _player = ChildGuard::spawn(&mut play).unwrap();

    let wd = Browser::start(&tools, &["--window-size=1500,900"]);
    wd.goto(&format!("http://{api}/"));

    let t = Duration::from_secs(20);
    assert!(
        wd.wait_for("tr[data-stream='live/browser']", t).is_some(),
        "stream row"
    );
    assert!(
        wd.wait_for("tr[data-role='publisher']", t).is_some(),
        "publisher row"
    );
    assert!(
        wd.wait_for("tr[data-role='player']", t).is_some(),
        "player row"
    );
    assert!(wd.wait_for(".bar > span", t).is_some(), "silence bar");
    // Let a refresh or two show bitrates before the picture.
    std::thread::sleep(Duration::from_millis(2500));
    let shot_dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    wd.screenshot(&shot_dir.join("dashboard.png"));

    assert!(
        wd.click("tr[data-stream='live/browser'] button.kick", t),
        "kick button"
    );
    assert!(
        wd.wait_for("#closes li[data-reason='kicked']", t).is_some(),
        "close event shown"
    );
    let metrics = http(api, "GET", "/metrics", None).body;
    assert!(
        metrics.contains("lifeline_closes_total{reason=\"kicked\"} 1"),
        "{metrics}"
    );
    wd.screenshot(&shot_dir.join("dashboard-after-kick.png"));
}
