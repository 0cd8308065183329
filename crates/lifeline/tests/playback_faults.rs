//! Dead and slow HTTP viewers in network namespaces, as L3/L8 for RTMP players: an HTTP-FLV
//! viewer whose cable is pulled is released at `tcp_user_timeout` (`peer_unreachable`), one
//! that stops reading at `play_stall_timeout` (`play_stall`) without memory growth, and the
//! other viewers never notice. Plus: 1000 HLS sessions that stop requesting expire, and the
//! stream's segmenter memory is freed with the last of them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault_rig;

use fault_rig::{Rig, STREAM, kill_host, measured, secs};
use std::time::{Duration, Instant};
use testkit::player::Player;
use testkit::rtmp::log_field;

/// An HTTP-FLV viewer on host `i` that has already decoded a second of video.
fn flv_viewer(rig: &Rig, i: usize) -> Player {
    let url = rig.server.playback_url(&format!("{STREAM}.flv"));
    let p = Player::start(rig.host(i), &url).expect("start player");
    assert!(
        p.wait_frames(25, Duration::from_secs(15)),
        "HTTP-FLV viewer {i} got {} frames\n{}",
        p.count(),
        rig.log()
    );
    p
}

fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[test]
fn h3_dead_http_flv_viewer_is_released_at_the_user_timeout() {
    let Some(mut rig) = Rig::new("h3", 3, "") else {
        return;
    };
    let mut publisher = rig.live_publisher(1);
    let mut victim = flv_viewer(&rig, 2);
    let other = flv_viewer(&rig, 3);
    let mark = rig.server.log_lines();
    let t0 = kill_host(rig.host(2), victim.process());
    let (after, reason) = rig
        .wait_close(mark, 2, t0, Duration::from_secs(25))
        .unwrap_or_else(|| panic!("dead HTTP-FLV viewer never released\n{}", rig.log()));
    measured("H3", after);
    std::thread::sleep(Duration::from_secs(1));
    let gap = other.max_gap(t0, Instant::now());
    println!("H3: reason {reason}, other viewer's longest gap {gap:?}");
    assert_eq!(reason, "peer_unreachable", "{}", rig.log());
    assert!(
        after <= 10.0 + 1.0,
        "released after {after:.2}s (tcp_user_timeout 10 s)"
    );
    assert!(
        gap <= Duration::from_secs(1),
        "the other viewer had a {gap:?} gap"
    );
    assert!(publisher.is_running(), "publisher died\n{}", rig.log());
}

#[test]
fn h8_frozen_http_flv_viewer_is_released_at_the_play_stall_timeout() {
    let Some(mut rig) = Rig::new("h8", 3, "") else {
        return;
    };
    let mut publisher = rig.live_publisher(1);
    let mut frozen = flv_viewer(&rig, 2);
    let other = flv_viewer(&rig, 3);
    let pid = rig.server.pid();
    let rss0 = vm_rss_kib(pid).unwrap();
    let mut rss_max = rss0;
    let mark = rig.server.log_lines();
    let t0 = Instant::now();
    frozen.process().freeze();
    let line = loop {
        rss_max = rss_max.max(vm_rss_kib(pid).unwrap_or(0));
        if let Some(l) = rig
            .server
            .wait_close(mark, &Rig::ip(2), Duration::from_millis(200))
        {
            break Some(l);
        }
        if t0.elapsed() > Duration::from_secs(40) {
            break None;
        }
    };
    let after = secs(t0.elapsed());
    let line = line.unwrap_or_else(|| panic!("frozen viewer never released\n{}", rig.log()));
    measured("H8", after);
    let reason = log_field(&line, "reason").unwrap_or("?").to_owned();
    let growth_mib = (rss_max.saturating_sub(rss0)) as f64 / 1024.0;
    let gap = other.max_gap(t0, Instant::now());
    println!(
        "H8: reason {reason}, server RSS {rss0} kB -> max {rss_max} kB (+{growth_mib:.1} MiB), \
         other viewer's longest gap {gap:?}"
    );
    // play_stall is our bound (no acknowledged progress for play_stall_timeout); the kernel's
    // TCP_USER_TIMEOUT also bounds a closed window's probing (`user_timeout`), and may come
    // first — L8 accepts both for RTMP players too.
    assert!(
        ["play_stall", "user_timeout"].contains(&reason.as_str()),
        "{line}"
    );
    assert!(
        after <= 15.0 + 1.0,
        "released after {after:.2}s (play_stall_timeout 15 s)"
    );
    assert!(growth_mib < 50.0, "RSS grew {growth_mib:.1} MiB");
    assert!(gap <= Duration::from_secs(1), "other viewer gap {gap:?}");
    assert!(publisher.is_running());
}
