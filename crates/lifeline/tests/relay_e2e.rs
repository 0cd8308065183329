//! Relays end to end (issue #18), on loopback with real servers and real clients: pushes into
//! and pulls from Debian's nginx-rtmp (R1), Lifeline to Lifeline with stream keys on the
//! upstream (R2), and a push to an upstream that stops reading for 30 s (R4). Each prints
//! `MEASURED <id> <value>` for docs/relay.md.
//!
//! Needs ffmpeg (and nginx + libnginx-mod-rtmp, installed as root when missing); otherwise each
//! test says SKIPPED (a failure under LIFELINE_REQUIRE_ROOT=1).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod relay_rig;

use relay_rig::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use testkit::nginx::{self, Nginx};
use testkit::player::{Player, cpu_time, vm_rss_kib};
use testkit::process::ChildGuard;
use testkit::rtmp::{Lifeline, ffmpeg_publish, log_time, require_tool};

fn nginx_on_loopback(test: &str) -> Option<Nginx> {
    if !require_tool(test, "ffmpeg") || !nginx::require(test) {
        return None;
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    Some(Nginx::start_local(addr, "").expect("start nginx-rtmp"))
}

fn publish(url: &str, seconds: u32, log: &std::path::Path) -> ChildGuard {
    ChildGuard::spawn_logged(&mut ffmpeg_publish(url, seconds), log).expect("start ffmpeg")
}

/// R1a: ffmpeg publishes to Lifeline, which pushes into nginx-rtmp; ffmpeg plays it from nginx.
#[test]
fn r1_push_into_nginx_rtmp() {
    let Some(nginx) = nginx_on_loopback("r1_push_into_nginx_rtmp") else {
        return;
    };
    let config = format!(
        "[[relay.push]]\napp = \"live\"\nname = \"*\"\nurl = \"rtmp://{}/live/{{name}}?key=s3cret\"\n",
        nginx.addr
    );
    let mut server = Lifeline::start(bin(), &config);
    let t0 = Instant::now();
    let mut publisher = publish(&server.url("live/cam"), 30, &server.dir().join("pub.log"));
    let relay = wait_relay(&server, "push", "live/cam", "live", Duration::from_secs(15))
        .unwrap_or_else(|| panic!("push never live\n{}", server.log_text()));
    measured("R1-push-live", t0.elapsed().as_secs_f64());
    assert_eq!(
        relay["url"],
        format!("rtmp://{}/live/cam?key=***", nginx.addr),
        "key masked"
    );
    assert!(
        !server.log_text().contains("s3cret"),
        "the key is never logged"
    );

    let frames = play_frames(&nginx.url("live/cam"), 100, Duration::from_secs(25));
    assert_eq!(
        frames,
        100,
        "nginx's player decoded {frames} frames\n{}",
        server.log_text()
    );
    let relay = wait_relay(&server, "push", "live/cam", "live", Duration::ZERO).unwrap();
    assert!(relay["bytes_out"].as_u64().unwrap() > 100_000, "{relay}");
    assert!(relay["bitrate_bps"].as_u64().unwrap() > 0, "{relay}");
    assert_eq!(relay["reconnects"], 0);
    let conns = testkit::http::http(
        server.http_addr.unwrap(),
        "GET",
        "/api/v1/connections",
        None,
    );
    assert!(conns.body.contains("\"rtmp-push\""), "{}", conns.body);

    // The local stream ends: so does the push.
    let mark = server.log_lines();
    let _ = publisher.child_mut().kill();
    let gone = wait_no_relay(&server, Duration::from_secs(5));
    assert!(
        gone.is_some(),
        "push outlived its stream\n{}",
        server.log_text()
    );
    let close = server
        .wait_line(mark, Duration::from_secs(2), |l| {
            l.contains(" close conn=") && l.contains("rtmp-push")
        })
        .unwrap();
    assert!(close.contains("reason=completed"), "{close}");
    let metrics = testkit::http::http(server.http_addr.unwrap(), "GET", "/metrics", None).body;
    assert!(
        metrics.contains("lifeline_relay_closes_total{reason=\"completed\"} 1"),
        "{metrics}"
    );
}

/// R1b: ffmpeg publishes to nginx-rtmp; ffmpeg plays it from Lifeline, which pulls it; the pull
/// stops `idle_after` after the player left (admin API and nginx's connection count).
#[test]
fn r1_pull_from_nginx_rtmp_until_idle_after() {
    let Some(nginx) = nginx_on_loopback("r1_pull_from_nginx_rtmp_until_idle_after") else {
        return;
    };
    let _publisher = publish(&nginx.url("live/src"), 40, &nginx.dir().join("pub.log"));
    assert!(
        nginx
            .wait_line(0, Duration::from_secs(15), |l| l
                .contains("publish: name='src'"))
            .is_some(),
        "no publish at nginx\n{}",
        nginx.log_text()
    );
    let config = format!(
        "[[relay.pull]]\napp = \"edge\"\nurl = \"rtmp://{}/live/{{name}}\"\nidle_after = \"2s\"\n",
        nginx.addr
    );
    let server = Lifeline::start(bin(), &config);
    assert_eq!(nginx.established(), 1, "only the publisher so far");
    let frames = play_frames(&server.url("edge/src"), 100, Duration::from_secs(25));
    let left = Instant::now();
    assert_eq!(
        frames,
        100,
        "Lifeline's player decoded {frames} frames\n{}",
        server.log_text()
    );
    let relay = relays(&server);
    assert_eq!(relay.len(), 1, "{relay:?}");
    assert_eq!(relay[0]["kind"], "pull");
    assert_eq!(
        relay[0]["state"], "live",
        "still pulling right after the player left"
    );

    let gone = wait_no_relay(&server, Duration::from_secs(6))
        .unwrap_or_else(|| panic!("pull never stopped\n{}", server.log_text()));
    let end = Instant::now() + Duration::from_secs(3);
    while nginx.established() > 1 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    let ngx_gone = Instant::now();
    assert_eq!(
        nginx.established(),
        1,
        "the pull's connection is gone from nginx"
    );
    let text = server.log_text();
    let player_close = text
        .lines()
        .find(|l| l.contains(" close conn=") && l.contains("protocol=\"rtmp\""));
    let pull_close = text
        .lines()
        .find(|l| l.contains(" close conn=") && l.contains("rtmp-pull"));
    let (Some(p), Some(q)) = (player_close, pull_close) else {
        panic!("close lines missing\n{text}")
    };
    assert!(q.contains("reason=idle_timeout"), "{q}");
    let idle = log_time(q).unwrap() - log_time(p).unwrap();
    measured("R1-pull-idle", idle);
    println!(
        "R1: admin API empty {:.2} s, nginx's count down {:.2} s after the player left",
        (gone - left).as_secs_f64(),
        (ngx_gone - left).as_secs_f64()
    );
    assert!(
        (1.9..=3.0).contains(&idle),
        "the pull stopped {idle:.2}s after the player left"
    );
    assert!((ngx_gone - left).as_secs_f64() <= 3.5);
}

/// R2: Lifeline pushes to and pulls from another Lifeline whose streams need keys.
#[test]
fn r2_lifeline_to_lifeline_with_keys() {
    if !require_tool("r2_lifeline_to_lifeline_with_keys", "ffmpeg") {
        return;
    }
    let upstream_config = "[auth]\nenabled = true\n[auth.apps.live]\n\
        publish = { cam = \"pushkey\", src = \"srckey\" }\nplay_default_key = \"playkey\"\n";
    let mut upstream = Lifeline::start(bin(), upstream_config);
    let config = format!(
        "[[relay.push]]\napp = \"live\"\nname = \"*\"\nurl = \"rtmp://{0}/live/{{name}}?key=pushkey\"\n\
         [[relay.pull]]\napp = \"edge\"\nurl = \"rtmp://{0}/live/{{name}}?key=playkey\"\n",
        upstream.addr
    );
    let mut edge = Lifeline::start(bin(), &config);

    // Push: publish to the edge, play from the upstream (with its play key).
    let _pub1 = publish(&edge.url("live/cam"), 30, &edge.dir().join("pub1.log"));
    let relay = wait_relay(&edge, "push", "live/cam", "live", Duration::from_secs(15))
        .unwrap_or_else(|| {
            panic!(
                "push never live\n{}\n{}",
                edge.log_text(),
                upstream.log_text()
            )
        });
    assert_eq!(
        relay["url"],
        format!("rtmp://{}/live/cam?key=***", upstream.addr)
    );
    let frames = play_frames(
        &upstream.url("live/cam?key=playkey"),
        100,
        Duration::from_secs(25),
    );
    assert_eq!(
        frames,
        100,
        "upstream's player: {frames} frames\n{}",
        upstream.log_text()
    );
    assert!(
        upstream
            .wait_log("publish conn=", Duration::ZERO)
            .is_some_and(|l| l.contains("stream=live/cam")),
        "{}",
        upstream.log_text()
    );

    // Pull: publish to the upstream (its key), play from the edge.
    let _pub2 = publish(
        &upstream.url("live/src?key=srckey"),
        30,
        &edge.dir().join("pub2.log"),
    );
    let frames = play_frames(&edge.url("edge/src"), 100, Duration::from_secs(25));
    assert_eq!(
        frames,
        100,
        "edge's player: {frames} frames\n{}",
        edge.log_text()
    );
    let pull = relays(&edge)
        .into_iter()
        .find(|r| r["kind"] == "pull")
        .unwrap_or_else(|| panic!("no pull listed\n{}", edge.log_text()));
    assert_eq!(
        pull["url"],
        format!("rtmp://{}/live/src?key=***", upstream.addr)
    );
    for (who, text) in [("edge", edge.log_text()), ("upstream", upstream.log_text())] {
        for key in ["pushkey", "playkey"] {
            assert!(!text.contains(key), "{who} logged the key {key}");
        }
    }
    // Shutdown ends every relay connection with `shutdown`.
    let mark = edge.log_lines();
    let status = edge.stop();
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    let closes = edge.close_lines(mark);
    for protocol in ["rtmp-push", "rtmp-pull"] {
        let line = closes
            .iter()
            .find(|l| l.contains(&format!("protocol=\"{protocol}\"")))
            .unwrap_or_else(|| panic!("no {protocol} close at shutdown:\n{}", closes.join("\n")));
        assert!(
            line.contains("reason=shutdown"),
            "{line}\nthe edge:\n{}",
            edge.log_text()
        );
    }
    let _ = upstream.stop();
}

/// R4: the upstream's process stops reading for 30 s while Lifeline pushes 2 Mbit/s to it: the
/// push is bounded (server RSS + < 50 MiB), the local player plays on, and the push comes back.
#[test]
fn r4_push_to_an_upstream_that_stops_reading() {
    let Some(nginx) = nginx_on_loopback("r4_push_to_an_upstream_that_stops_reading") else {
        return;
    };
    let config = format!(
        "[liveness]\nplay_stall_timeout = \"5s\"\nhandshake_timeout = \"3s\"\n\
         [relay]\nretry_min = \"500ms\"\nretry_max = \"4s\"\n\
         [[relay.push]]\napp = \"live\"\nname = \"cam\"\nurl = \"rtmp://{}/live/cam\"\n",
        nginx.addr
    );
    let mut server = Lifeline::start(bin(), &config);
    // Constant 2 Mbit/s: the frozen upstream is owed a lot.
    let mut cmd = ffmpeg_publish_cbr(&server.url("live/cam"), 90, "2M");
    let _publisher = ChildGuard::spawn_logged(&mut cmd, &server.dir().join("pub.log")).unwrap();
    assert!(
        wait_relay(&server, "push", "live/cam", "live", Duration::from_secs(15)).is_some(),
        "push never live\n{}",
        server.log_text()
    );
    let player = Player::start_local(&server.url("live/cam")).unwrap();
    assert!(
        player.wait_frames(50, Duration::from_secs(15)),
        "local player"
    );
    std::thread::sleep(Duration::from_secs(2));
    let pid = server.pid();
    let base = vm_rss_kib(pid).unwrap();
    let cpu0 = cpu_time(pid).unwrap();
    let mark = server.log_lines();

    let t0 = Instant::now();
    let t0_of_day = time_of_day();
    nginx.process().freeze();
    let mut peak = base;
    while t0.elapsed() < Duration::from_secs(30) {
        peak = peak.max(vm_rss_kib(pid).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(250));
    }
    nginx.process().thaw();
    let thawed = Instant::now();
    let cpu = (cpu_time(pid).unwrap() - cpu0).as_secs_f64() / 30.0 * 100.0;
    let gap = player.max_gap(t0, thawed);
    let close = server
        .wait_line(mark, Duration::ZERO, |l| {
            l.contains(" close conn=") && l.contains("rtmp-push")
        })
        .unwrap_or_else(|| panic!("the stalled push was never closed\n{}", server.log_text()));
    let back = wait_relay(&server, "push", "live/cam", "live", Duration::from_secs(15));
    let recovered = thawed.elapsed().as_secs_f64();
    let growth_mib = peak.saturating_sub(base) as f64 / 1024.0;
    measured("R4-rss-growth-mib", growth_mib);
    measured("R4-recover", recovered);
    println!(
        "R4: first close: {}; local player's longest gap {gap:?}; server CPU {cpu:.1} %",
        close.split(" close ").nth(1).unwrap_or(&close)
    );
    let stalled_after = log_time(&close).unwrap() - t0_of_day;
    measured("R4-closed-after", stalled_after);
    assert!(growth_mib < 50.0, "RSS grew {growth_mib:.1} MiB");
    assert!(close.contains("reason=play_stall"), "{close}");
    assert!(
        gap <= Duration::from_secs(1),
        "local player stalled {gap:?}"
    );
    assert!(
        back.is_some(),
        "push never came back\n{}",
        server.log_text()
    );
    let frames = play_frames(&nginx.url("live/cam"), 25, Duration::from_secs(15));
    assert_eq!(frames, 25, "frames at the upstream again");
}
