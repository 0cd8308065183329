//! Headless Chromium driven over WebDriver, for the browser tests: Debian's `chromium` and
//! `chromium-driver` (installed with apt when missing and we are root), spoken to in plain
//! JSON over HTTP with [`crate::http`].
//!
//! The browser gets a fresh profile in a temp dir and no background networking (this
//! machine's network is closed, and Chromium would retry its lookups many times at once), and
//! may autoplay. It, chromedriver and every process they started end with the [`Browser`],
//! also when the test fails: the session is closed, then whatever chromedriver's children
//! left is killed by pid.

use crate::http::http_json;
use crate::process::ChildGuard;
use crate::rtmp::TempDir;
use crate::skip::skip;
use serde_json::{Value, json};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The key of a WebDriver element reference in JSON.
pub const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Flags every test browser runs with; as root Chromium needs `--no-sandbox`.
const ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
];

/// Where the browser and its driver are.
#[derive(Debug, Clone)]
pub struct Tools {
    /// The Chromium binary.
    pub browser: PathBuf,
    /// The chromedriver binary.
    pub driver: PathBuf,
}

fn which(tool: &str) -> Option<PathBuf> {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .ok()?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !path.is_empty()).then(|| PathBuf::from(path))
}

/// Whether we run as root (and so may install packages).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Installs Debian `packages` with apt-get when we are root (quietly; the caller checks
/// what it needed afterwards).
pub fn apt_install(packages: &[&str]) {
    if !is_root() {
        return;
    }
    let _ = Command::new("apt-get").args(["update", "-q"]).status();
    let _ = Command::new("apt-get")
        .args(["install", "-y", "-q"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status();
}

/// Chromium and chromedriver, installed when missing and we are root; otherwise a
/// [`skip`] of `test` and `None`.
pub fn ensure_browser(test: &str) -> Option<Tools> {
    let find = || {
        let browser = ["chromium", "chromium-browser"]
            .into_iter()
            .find_map(which)?;
        let driver = ["chromedriver", "chromium-driver"]
            .into_iter()
            .find_map(which)?;
        Some(Tools { browser, driver })
    };
    if find().is_none() {
        apt_install(&["chromium", "chromium-driver"]);
    }
    let found = find();
    if found.is_none() {
        skip(
            test,
            "chromium / chromium-driver not installed and not root",
        );
    }
    found
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// One browser session; closed, and its processes gone, on drop.
#[derive(Debug)]
pub struct Browser {
    addr: SocketAddr,
    session: String,
    driver: ChildGuard,
    /// The profile (`--user-data-dir`) and chromedriver's log; removed last.
    dir: TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with [`ARGS`] plus `extra` (for instance
    /// `--window-size=1500,900`).
    pub fn start(tools: &Tools, extra: &[&str]) -> Self {
        let dir = TempDir::new("lifeline-browser");
        let port = free_port();
        // TMPDIR too: Chromium leaves scoped dirs in it, which go with `dir`.
        let driver = ChildGuard::spawn_logged(
            Command::new(&tools.driver)
                .arg(format!("--port={port}"))
                .env("TMPDIR", dir.path()),
            &dir.path().join("chromedriver.log"),
        )
        .expect("start chromedriver");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let end = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < end, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = format!("--user-data-dir={}", dir.path().join("profile").display());
        let args: Vec<&str> = ARGS
            .iter()
            .copied()
            .chain(extra.iter().copied())
            .chain([profile.as_str()])
            .collect();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": tools.browser, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let resp = http_json(addr, "POST", "/session", &caps.to_string());
        assert_eq!(resp.status, 200, "new session: {}", resp.body);
        let v: Value = serde_json::from_str(&resp.body).unwrap();
        let session = v["value"]["sessionId"].as_str().unwrap().to_owned();
        Self {
            addr,
            session,
            driver,
            dir,
        }
    }

    /// A command of this session (`path` after `/session/{id}`); panics unless it answers 200.
    pub fn call(&self, method: &str, path: &str, body: &Value) -> Value {
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

    /// Opens `url`.
    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", &json!({ "url": url }));
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page; its return value.
    pub fn execute(&self, script: &str, args: &[Value]) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            &json!({"script": script, "args": args}),
        )
    }

    /// Clicks the first element matching `css`, finding it again when the page replaced it
    /// between the find and the click (a stale element reference).
    pub fn click(&self, css: &str, timeout: Duration) -> bool {
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
    pub fn wait_for(&self, css: &str, timeout: Duration) -> Option<String> {
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

    /// Saves a screenshot of the window as a PNG file.
    pub fn screenshot(&self, to: &Path) {
        let b64 = self.call("GET", "/screenshot", &Value::Null);
        let png = decode_base64(b64.as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::write(to, png).unwrap();
        eprintln!("screenshot: {}", to.display());
    }

    /// The page's console messages since the last call, one a line (for failure messages).
    pub fn console(&self) -> String {
        let path = format!("/session/{}/se/log", self.session);
        let resp = http_json(self.addr, "POST", &path, r#"{"type":"browser"}"#);
        let v: Value = serde_json::from_str(&resp.body).unwrap_or(Value::Null);
        v["value"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["message"].as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// chromedriver's own log so far.
    pub fn driver_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Chromium's processes are chromedriver's descendants only until it quits them;
        // note them first, so what the session's end leaves can still be found by pid.
        let left = descendants(self.driver.pid());
        let path = format!("/session/{}", self.session);
        let _ = http_json(self.addr, "DELETE", &path, "{}");
        let end = Instant::now() + Duration::from_secs(5);
        while left.iter().any(Proc::alive) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(50));
        }
        for p in left.iter().filter(|p| p.alive()) {
            p.kill();
        }
        // Then `driver` is killed by its guard and `dir` removed.
    }
}

/// A process as `/proc` shows it; its start time tells it from a later one with its pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Proc {
    pid: i32,
    start: u64,
}

impl Proc {
    /// `(pid, ppid, start time)` from `/proc/{pid}/stat`.
    fn read(pid: i32) -> Option<(Self, i32)> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name may hold spaces and parentheses: fields start after the last ')'.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ppid = fields.get(1)?.parse().ok()?;
        let start = fields.get(19)?.parse().ok()?;
        Some((Self { pid, start }, ppid))
    }

    /// Still running (and not a zombie) as the same process.
    fn alive(&self) -> bool {
        let running = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .ok()
            .and_then(|s| Some(!s.rsplit_once(')')?.1.trim_start().starts_with('Z')))
            .unwrap_or(false);
        running && Self::read(self.pid).is_some_and(|(p, _)| p == *self)
    }

    fn kill(&self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}

/// Every process below `root` (children, their children, ...).
fn descendants(root: u32) -> Vec<Proc> {
    let all: Vec<(Proc, i32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter_map(Proc::read)
        .collect();
    let mut found = Vec::new();
    let mut parents = vec![i32::try_from(root).unwrap_or(0)];
    while let Some(parent) = parents.pop() {
        for (p, ppid) in &all {
            if *ppid == parent && !found.contains(p) {
                found.push(*p);
                parents.push(p.pid);
            }
        }
    }
    found
}

/// Standard base64 (what WebDriver's screenshots are in), ignoring anything else.
pub fn decode_base64(text: &str) -> Vec<u8> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64() {
        assert_eq!(decode_base64("iVBORw0KGgo="), b"\x89PNG\r\n\x1a\n");
        assert_eq!(decode_base64("aGk="), b"hi");
    }

    #[test]
    fn finds_descendants_by_pid() {
        let mut sh = Command::new("sh");
        sh.args(["-c", "sleep 30 & sleep 30; wait"]);
        let guard = ChildGuard::spawn(&mut sh).unwrap();
        let end = Instant::now() + Duration::from_secs(5);
        let mut found = descendants(guard.pid());
        while found.len() < 2 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
            found = descendants(guard.pid());
        }
        assert_eq!(found.len(), 2, "{found:?}");
        for p in &found {
            assert!(p.alive());
            p.kill();
        }
        drop(guard);
        std::thread::sleep(Duration::from_millis(100));
        assert!(found.iter().all(|p| !p.alive()));
    }
}
