//! Who may publish and play (issue #7), end to end with ffmpeg against `lifeline serve` on
//! 127.0.0.1 and a small in-test HTTP server as the hook endpoint: static keys, hooks that
//! allow, deny or never answer, done notifications with their close reason, and a takeover of
//! a frozen publisher that only the holder of the right key can win.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::io::Read;
use std::net::TcpStream;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use testkit::client::RtmpClient;
use testkit::hookserver::{HookServer, Reply};
use testkit::process::ChildGuard;
use testkit::rtmp::{Lifeline, ffmpeg_play_frames, ffmpeg_publish, log_field, require_tool};

const FRAME_BYTES: usize = 320 * 240;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_lifeline"))
}

/// Plays up to `frames` frames of `url`; how many whole 320x240 frames arrived.
fn play_frames(url: &str, frames: u32, timeout: Duration) -> usize {
    let mut cmd = ffmpeg_play_frames(url, frames);
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
    reader.join().unwrap_or_default().len() / FRAME_BYTES
}

/// Waits for the `publish conn=…` line of `stream` (after `skip` lines); returns its conn id.
fn wait_publishing(server: &mut Lifeline, skip: usize, stream: &str) -> String {
    let needle = format!("stream={stream}");
    let line = server
        .wait_line(skip, Duration::from_secs(15), |l| {
            l.contains(" publish conn=") && l.contains(&needle)
        })
        .unwrap_or_else(|| panic!("no publish of {stream}:\n{}", server.log_text()));
    log_field(&line, "conn").unwrap().to_owned()
}

fn denied_line(server: &mut Lifeline, skip: usize, what: &str, why: &str) -> String {
    server
        .wait_line(skip, Duration::from_secs(15), |l| {
            l.contains(&format!("{what} denied")) && l.contains(why)
        })
        .unwrap_or_else(|| panic!("no '{what} denied: {why}':\n{}", server.log_text()))
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("hook body {body:?}: {e}"))
}

fn rtmp(server: &Lifeline, app: &str) -> RtmpClient {
    let tcp = TcpStream::connect(server.addr).unwrap();
    RtmpClient::connect(tcp, app, Duration::from_secs(5)).unwrap()
}

#[test]
fn stream_keys_decide_publish_and_play() {
    if !require_tool("stream_keys_decide_publish_and_play", "ffmpeg") {
        return;
    }
    let config = r#"
[auth]
enabled = true
[auth.apps.live]
publish = { cam = "s3cret" }
play = { cam = "viewer" }
"#;
    let mut server = Lifeline::start(bin(), config);

    for (query, why) in [("?key=nope", "wrong key"), ("", "no key given")] {
        let mark = server.log_lines();
        let url = server.url(&format!("live/cam{query}"));
        let mut bad =
            ChildGuard::spawn_logged(&mut ffmpeg_publish(&url, 10), &server.dir().join("bad.log"))
                .unwrap();
        denied_line(&mut server, mark, "publish", why);
        let status = bad.wait_timeout(Duration::from_secs(10));
        assert!(
            status.is_some_and(|s| !s.success()),
            "ffmpeg with {query:?} was not refused"
        );
    }
    assert!(
        !server.log_text().contains(" publish conn="),
        "{}",
        server.log_text()
    );

    let mark = server.log_lines();
    let url = server.url("live/cam?key=s3cret");
    let _publisher =
        ChildGuard::spawn_logged(&mut ffmpeg_publish(&url, 30), &server.dir().join("pub.log"))
            .unwrap();
    wait_publishing(&mut server, mark, "live/cam");

    let mark = server.log_lines();
    let frames = play_frames(&server.url("live/cam"), 25, Duration::from_secs(10));
    assert_eq!(frames, 0, "a player without the play key got frames");
    denied_line(&mut server, mark, "play", "no key given");

    let frames = play_frames(
        &server.url("live/cam?key=viewer"),
        25,
        Duration::from_secs(20),
    );
    assert_eq!(
        frames,
        25,
        "the player with the key:\n{}",
        server.log_text()
    );
}

#[test]
fn hooks_decide_publish_and_play() {
    if !require_tool("hooks_decide_publish_and_play", "ffmpeg") {
        return;
    }
    // Publish: only names starting with "ok". Play: only with token=letmein.
    let hooks = HookServer::start(|path, body| {
        let body = json(body);
        let allow = match path {
            "/on_publish" => body["stream"].as_str().is_some_and(|s| s.starts_with("ok")),
            "/on_play" => body["args"]["token"] == "letmein",
            _ => true,
        };
        Reply::Status(if allow { 200 } else { 403 })
    });
    let config = format!(
        "[hooks]\non_publish = \"{}\"\non_play = \"{}\"\n",
        hooks.url("on_publish"),
        hooks.url("on_play")
    );
    let mut server = Lifeline::start(bin(), &config);

    let mark = server.log_lines();
    let url = server.url("live/nope");
    let mut bad =
        ChildGuard::spawn_logged(&mut ffmpeg_publish(&url, 10), &server.dir().join("bad.log"))
            .unwrap();
    denied_line(&mut server, mark, "publish", "hook answered 403");
    assert!(
        bad.wait_timeout(Duration::from_secs(10))
            .is_some_and(|s| !s.success())
    );

    let mark = server.log_lines();
    let url = server.url("live/ok1?token=abc&x=a%20b");
    let _publisher =
        ChildGuard::spawn_logged(&mut ffmpeg_publish(&url, 30), &server.dir().join("pub.log"))
            .unwrap();
    let conn = wait_publishing(&mut server, mark, "live/ok1");
    let asked = hooks
        .wait_request("/on_publish", Duration::from_secs(1), |b| {
            b.contains("\"ok1\"")
        })
        .unwrap();
    let asked = json(&asked.body);
    assert_eq!(asked["action"], "publish");
    assert_eq!(asked["app"], "live");
    assert_eq!(asked["stream"], "ok1");
    assert_eq!(asked["args"]["token"], "abc");
    assert_eq!(asked["args"]["x"], "a b");
    assert_eq!(asked["query"], "token=abc&x=a%20b");
    assert_eq!(asked["conn_id"].to_string(), conn);
    assert!(
        asked["client_addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{asked}"
    );

    let mark = server.log_lines();
    let frames = play_frames(
        &server.url("live/ok1?token=wrong"),
        25,
        Duration::from_secs(10),
    );
    assert_eq!(frames, 0, "a player the hook refused got frames");
    denied_line(&mut server, mark, "play", "hook answered 403");

    let frames = play_frames(
        &server.url("live/ok1?token=letmein"),
        25,
        Duration::from_secs(20),
    );
    assert_eq!(
        frames,
        25,
        "the player the hook allowed:\n{}",
        server.log_text()
    );
    assert!(
        hooks
            .requests()
            .iter()
            .any(|r| r.path == "/on_play" && json(&r.body)["action"] == "play")
    );
}

#[test]
fn a_hook_that_never_answers_denies_after_the_timeout() {
    let hooks = HookServer::start(|_, _| Reply::Hang);
    let config = format!(
        "[hooks]\non_publish = \"{}\"\ntimeout = \"1s\"\n",
        hooks.url("on_publish")
    );
    let mut server = Lifeline::start(bin(), &config);
    let mark = server.log_lines();
    let mut client = rtmp(&server, "live");
    let start = Instant::now();
    let code = client.publish("cam", Duration::from_secs(10)).unwrap();
    let waited = start.elapsed();
    assert_eq!(code, "NetStream.Publish.BadName");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_millis(2500),
        "denied after {waited:?}"
    );
    assert_eq!(hooks.requests().len(), 1);
    denied_line(&mut server, mark, "publish", "did not answer within 1s");
    let close = server
        .wait_close(mark, "127.0.0.1", Duration::from_secs(5))
        .expect("the refused connection closes");
    assert_eq!(log_field(&close, "reason"), Some("refused"), "{close}");
}

#[test]
fn done_notifications_carry_the_close_reason() {
    let hooks = HookServer::start(|_, _| Reply::Status(204));
    let config = format!(
        "[liveness]\npublish_idle_timeout = \"1s\"\n[hooks]\non_publish_done = \"{}\"\non_close = \"{}\"\n",
        hooks.url("done"),
        hooks.url("close")
    );
    let server = Lifeline::start(bin(), &config);
    let mut client = rtmp(&server, "live");
    assert_eq!(
        client.publish("idle", Duration::from_secs(5)).unwrap(),
        "NetStream.Publish.Start"
    );
    // Send nothing more: publish_idle_timeout closes it.
    let done = hooks
        .wait_request("/done", Duration::from_secs(10), |_| true)
        .unwrap_or_else(|| panic!("no on_publish_done:\n{}", server.log_text()));
    let done = json(&done.body);
    assert_eq!(done["event"], "publish_done");
    assert_eq!(done["reason"], "publish_idle", "{done}");
    assert_eq!(done["app"], "live");
    assert_eq!(done["stream"], "idle");
    assert!(done["duration_ms"].as_u64().unwrap() >= 900, "{done}");
    assert!(done["bytes_in"].as_u64().unwrap() > 0, "{done}");
    assert!(done["bytes_out"].as_u64().unwrap() > 0, "{done}");
    let close = hooks
        .wait_request("/close", Duration::from_secs(5), |_| true)
        .expect("on_close");
    let close = json(&close.body);
    assert_eq!(close["event"], "close");
    assert_eq!(close["reason"], "publish_idle");
    assert_eq!(close["conn_id"], done["conn_id"]);
    drop(client);
}

#[test]
fn only_the_right_key_takes_over_a_frozen_publisher() {
    if !require_tool("only_the_right_key_takes_over_a_frozen_publisher", "ffmpeg") {
        return;
    }
    let hooks = HookServer::start(|_, _| Reply::Status(200));
    let config = format!(
        r#"
[auth]
enabled = true
[auth.apps.live]
publish = {{ cam = "s3cret" }}
[publish]
on_duplicate = "takeover-stale"
stale_after = "30s"
challenge_timeout = "1s"
[hooks]
on_publish_done = "{}"
"#,
        hooks.url("done")
    );
    let mut server = Lifeline::start(bin(), &config);
    let url = server.url("live/cam?key=s3cret");
    let incumbent =
        ChildGuard::spawn_logged(&mut ffmpeg_publish(&url, 60), &server.dir().join("pub.log"))
            .unwrap();
    let old = wait_publishing(&mut server, 0, "live/cam");
    std::thread::sleep(Duration::from_secs(1));
    // Frozen: its kernel still ACKs on loopback, so only the challenge can find it dead.
    incumbent.freeze();

    let mark = server.log_lines();
    let mut thief = rtmp(&server, "live");
    let start = Instant::now();
    let code = thief
        .publish("cam?key=guess", Duration::from_secs(5))
        .unwrap();
    assert_eq!(code, "NetStream.Publish.BadName");
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
    denied_line(&mut server, mark, "publish", "wrong key");
    let log = server.log_text();
    let after: Vec<&str> = log.lines().skip(mark).collect();
    assert!(
        !after
            .iter()
            .any(|l| l.contains("challenging the publisher")),
        "the wrong key disturbed the incumbent:\n{log}"
    );
    assert!(
        !after
            .iter()
            .any(|l| l.contains(" close conn=") && log_field(l, "conn") == Some(old.as_str())),
        "the incumbent was closed:\n{log}"
    );

    let mut owner = rtmp(&server, "live");
    let code = owner
        .publish("cam?key=s3cret", Duration::from_secs(10))
        .unwrap();
    assert_eq!(code, "NetStream.Publish.Start", "{}", server.log_text());
    let done = hooks
        .wait_request("/done", Duration::from_secs(5), |b| {
            json(b)["conn_id"] == old.parse::<u64>().unwrap()
        })
        .unwrap_or_else(|| panic!("no on_publish_done for conn {old}:\n{}", server.log_text()));
    let done = json(&done.body);
    assert_eq!(done["reason"], "taken_over", "{done}");
    assert_eq!(done["stream"], "cam");
    incumbent.thaw();
}
