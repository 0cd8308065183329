//! The admin API end to end: `lifeline serve` on 127.0.0.1 with ffmpeg publishing and playing;
//! the API lists both connections with their roles and growing byte counts, a kick frees the
//! stream name at once and is counted in /metrics, and a token locks everything.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use testkit::http::http;
use testkit::process::ChildGuard;
use testkit::rtmp::{Lifeline, ffmpeg_play_frames, ffmpeg_publish, require_tool};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_lifeline"))
}

fn get_json(addr: SocketAddr, path: &str) -> Value {
    let resp = http(addr, "GET", path, None);
    assert_eq!(resp.status, 200, "{path}: {}", resp.body);
    serde_json::from_str(&resp.body).unwrap_or_else(|e| panic!("{path}: {e}: {}", resp.body))
}

/// Polls the connection list until `pred` holds for it.
fn wait_conns(addr: SocketAddr, what: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let v = get_json(addr, "/api/v1/connections");
        let list = v["connections"].as_array().cloned().unwrap_or_default();
        if pred(&list) {
            return list;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}: {v:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn with_role<'a>(list: &'a [Value], role: &str) -> Option<&'a Value> {
    list.iter().find(|c| c["role"] == role)
}

/// Checks the Prometheus text format line by line and returns `(series, value)` pairs.
fn parse_prometheus(text: &str) -> Vec<(String, f64)> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line == "# EOF" {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let kind = rest.split_whitespace().next().unwrap_or_default();
            assert!(
                ["HELP", "TYPE", "UNIT"].contains(&kind),
                "bad comment: {line}"
            );
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line: {line}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "bad labels: {line}");
        }
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
        };
        samples.push((series.to_owned(), value));
    }
    samples
}

fn metric(addr: SocketAddr, series: &str) -> f64 {
    let resp = http(addr, "GET", "/metrics", None);
    assert_eq!(resp.status, 200);
    parse_prometheus(&resp.body)
        .into_iter()
        .find(|(s, _)| s == series)
        .map_or(0.0, |(_, v)| v)
}

#[test]
fn api_lists_kicks_and_counts_with_ffmpeg() {
    if !require_tool("api_lists_kicks_and_counts_with_ffmpeg", "ffmpeg") {
        return;
    }
    // "reject": a second publisher is refused while the name is held, so the republish below
    // succeeds only if the kick freed the name.
    let server = Lifeline::start(bin(), "[publish]\non_duplicate = \"reject\"\n");
    let api = server.http_addr.expect("HTTP listening");
    let url = server.url("live/admin");
    let _publisher =
        ChildGuard::spawn_logged(&mut ffmpeg_publish(&url, 40), &server.dir().join("pub.log"))
            .unwrap();
    let list = wait_conns(api, "a publisher", |l| with_role(l, "publisher").is_some());
    let mut play = ffmpeg_play_frames(&url, 100_000);
    play.stdout(Stdio::null()).stderr(Stdio::null());
    let _player = ChildGuard::spawn(&mut play).unwrap();
    let list2 = wait_conns(api, "a player receiving", |l| {
        with_role(l, "player").is_some_and(|p| p["bytes_out"].as_u64() > Some(10_000))
    });
    let publisher = with_role(&list2, "publisher").unwrap().clone();
    let player = with_role(&list2, "player").unwrap().clone();
    let pub_id = publisher["id"].as_u64().unwrap();
    assert_eq!(publisher["stream"], "live/admin");
    assert_eq!(player["stream"], "live/admin");
    assert!(
        publisher["peer"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert_eq!(list[0]["id"], publisher["id"]);
    // Kernel evidence and deadlines are there for a live socket.
    let tcp = &publisher["kernel"]["tcp_info"];
    assert_eq!(tcp["state"], "ESTABLISHED", "{publisher:#}");
    assert!(
        publisher["kernel"]["keepalive"]["enabled"]
            .as_bool()
            .unwrap()
    );
    assert_eq!(
        publisher["closing"]["reason"], "publish_idle",
        "{publisher:#}"
    );
    // The earliest deadline that would close a healthy player: the ping (a silent peer) or the
    // write stall (queued output), depending on the moment.
    assert!(
        ["ping_timeout", "play_stall"]
            .contains(&player["closing"]["reason"].as_str().unwrap_or("")),
        "{player:#}"
    );

    // Byte counts grow.
    std::thread::sleep(Duration::from_millis(1500));
    let later = wait_conns(api, "connections", |_| true);
    let grew = |id: &Value, field: &str, before: &Value| {
        let now = later.iter().find(|c| &c["id"] == id).unwrap()[field]
            .as_u64()
            .unwrap();
        assert!(
            now > before[field].as_u64().unwrap(),
            "{field} of {id} did not grow"
        );
    };
    grew(&publisher["id"], "bytes_in", &publisher);
    grew(&player["id"], "bytes_out", &player);

    let streams = get_json(api, "/api/v1/streams");
    let stream = &streams["streams"][0];
    assert_eq!(stream["app"], "live");
    assert_eq!(stream["name"], "admin");
    assert_eq!(stream["publisher"]["id"], pub_id);
    assert_eq!(stream["players"], 1);
    assert_eq!(stream["publisher"]["video_codec"], "h264", "{stream:#}");
    assert_eq!(stream["publisher"]["width"], 320, "{stream:#}");
    assert!(
        stream["publisher"]["bitrate_bps"].as_u64().unwrap() > 0,
        "{stream:#}"
    );
    assert!(stream["gop_cache_frames"].as_u64().unwrap() > 0);

    // Kick the publisher: the name is free when the DELETE returns.
    assert_eq!(metric(api, "lifeline_closes_total{reason=\"kicked\"}"), 0.0);
    let mark = server.log_lines();
    let resp = http(
        api,
        "DELETE",
        &format!("/api/v1/connections/{pub_id}"),
        None,
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    let _again = ChildGuard::spawn_logged(
        &mut ffmpeg_publish(&url, 30),
        &server.dir().join("pub2.log"),
    )
    .unwrap();
    let end = Instant::now() + Duration::from_secs(15);
    let line = loop {
        let log = server.log_text();
        let found = log
            .lines()
            .skip(mark)
            .find(|l| l.contains("publish conn=") || l.contains("publish refused"))
            .map(str::to_owned);
        if let Some(line) = found {
            break line;
        }
        assert!(Instant::now() < end, "no republish after the kick:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        line.contains("publish conn=") && line.contains("stream=live/admin"),
        "republish after kick: {line}\n{}",
        server.log_text()
    );
    let end = Instant::now() + Duration::from_secs(5);
    while metric(api, "lifeline_closes_total{reason=\"kicked\"}") < 1.0 {
        assert!(Instant::now() < end, "kick not counted");
        std::thread::sleep(Duration::from_millis(100));
    }
    let events = get_json(api, "/api/v1/events");
    assert!(
        events["closes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["id"] == pub_id && e["reason"] == "kicked"),
        "{events:#}"
    );

    // The whole exposition parses, and the gauges agree with the API.
    let text = http(api, "GET", "/metrics", None).body;
    let samples = parse_prometheus(&text);
    assert!(
        samples
            .iter()
            .any(|(s, v)| s == "lifeline_connections{role=\"publisher\"}" && *v >= 1.0),
        "{text}"
    );
    assert!(
        samples
            .iter()
            .any(|(s, v)| s == "lifeline_received_bytes_total" && *v > 0.0),
        "{text}"
    );
    assert!(
        samples
            .iter()
            .any(|(s, _)| s.starts_with("lifeline_silence_before_close_seconds_bucket{")),
        "{text}"
    );
}

#[test]
fn token_locks_api_and_dashboard() {
    let server = Lifeline::start(bin(), "[http]\ntoken = \"t0ken\"\n");
    let api = server.http_addr.expect("HTTP listening");
    for path in ["/", "/api/v1/streams", "/api/v1/connections", "/metrics"] {
        let resp = http(api, "GET", path, None);
        assert_eq!(resp.status, 401, "{path}");
        assert!(resp.body.contains("token"), "{path}: {}", resp.body);
        assert_eq!(http(api, "GET", path, Some("wrong")).status, 401, "{path}");
        assert_eq!(http(api, "GET", path, Some("t0ken")).status, 200, "{path}");
    }
    assert_eq!(http(api, "GET", "/?token=t0ken", None).status, 200);
    assert_eq!(
        http(api, "DELETE", "/api/v1/connections/1", None).status,
        401
    );
}
