//! The dashboard in headless Chromium, driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`; the protocol is plain JSON over HTTP, spoken here directly): it shows the
//! live stream and both connections, its kick button kicks, and a screenshot is saved to
//! `$CARGO_TARGET_TMPDIR/dashboard.png`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testkit::http::{http, http_json};
use testkit::process::ChildGuard;
use testkit::rtmp::{Lifeline, ffmpeg_play_frames, ffmpeg_publish, require_tool};

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Installs chromium and its driver when missing and we are root; otherwise says why not.
fn ensure_browser() -> Option<(String, String)> {
    let find = || {
        let browser = ["chromium", "chromium-browser"]
            .into_iter()
            .find(|t| have(t))?;
        let driver = ["chromedriver", "chromium-driver"]
            .into_iter()
            .find(|t| have(t))?;
        Some((browser.to_owned(), driver.to_owned()))
    };
    if let Some(found) = find() {
        return Some(found);
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if root {
        let _ = Command::new("apt-get").args(["update", "-q"]).status();
        let _ = Command::new("apt-get")
            .args(["install", "-y", "-q", "chromium", "chromium-driver"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
    }
    let found = find();
    if found.is_none() {
        testkit::skip(
            "dashboard_in_chromium",
            "chromium / chromium-driver not installed and not root",
        );
    }
    found
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct WebDriver {
    addr: SocketAddr,
    session: String,
}

impl WebDriver {
    fn call(&self, method: &str, path: &str, body: &Value) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let text = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let resp = http_json(self.addr, method, &path, &text);
        let v: Value = serde_json::from_str(&resp.body).unwrap_or(Value::Null);
        assert_eq!(resp.status, 200, "{method} {path}: {}", resp.body);
        v["value"].clone()
    }

    /// Clicks the first element matching `css`, finding it again when a dashboard refresh
    /// replaced it between the find and the click (a stale element reference).
    fn click(&self, css: &str, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Some(id) = self.wait_for(css, end.saturating_duration_since(Instant::now())) {
                let path = format!("/session/{}/element/{id}/click", self.session);
                if http_json(self.addr, "POST", &path, "{}").status == 200 {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// The first element matching `css`, waiting up to `timeout` for it.
    fn wait_for(&self, css: &str, timeout: Duration) -> Option<String> {
        let end = Instant::now() + timeout;
        loop {
            let path = format!("/session/{}/element", self.session);
            let body = json!({"using": "css selector", "value": css}).to_string();
            let resp = http_json(self.addr, "POST", &path, &body);
            if resp.status == 200 {
                let v: Value = serde_json::from_str(&resp.body)
                    .unwrap_or_else(|e| panic!("find {css}: {e}: {resp:?}"));
                let id = v["value"][ELEMENT_KEY].as_str().map(str::to_owned);
                assert!(id.is_some(), "find {css}: {v}");
                return id;
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn screenshot(&self, to: &Path) {
        let b64 = self.call("GET", "/screenshot", &Value::Null);
        let png = decode_base64(b64.as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::write(to, png).unwrap();
        eprintln!("dashboard screenshot: {}", to.display());
    }
}

impl Drop for WebDriver {
    fn drop(&mut self) {
        let path = format!("/session/{}", self.session);
        let _ = http_json(self.addr, "DELETE", &path, "{}");
    }
}

fn decode_base64(text: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for v in text.bytes().filter_map(val) {
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[test]
fn dashboard_in_chromium() {
    if !require_tool("dashboard_in_chromium", "ffmpeg") {
        return;
    }
    let Some((browser, driver)) = ensure_browser() else {
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

    let port = free_port();
    let _driver = ChildGuard::spawn_logged(
        Command::new(&driver).arg(format!("--port={port}")),
        &server.dir().join("chromedriver.log"),
    )
    .unwrap();
    let wd_addr = SocketAddr::from(([127, 0, 0, 1], port));
    let end = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(wd_addr).is_err() {
        assert!(Instant::now() < end, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let browser_path = String::from_utf8(
        Command::new("sh")
            .args(["-c", &format!("command -v {browser}")])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let caps = json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": browser_path.trim(),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1500,900"]
        }
    }}});
    let resp = http_json(wd_addr, "POST", "/session", &caps.to_string());
    assert_eq!(resp.status, 200, "new session: {}", resp.body);
    let v: Value = serde_json::from_str(&resp.body).unwrap();
    let wd = WebDriver {
        addr: wd_addr,
        session: v["value"]["sessionId"].as_str().unwrap().to_owned(),
    };
    wd.call("POST", "/url", &json!({"url": format!("http://{api}/")}));

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
