//! `load`: publishers replaying an FLV in real time, players of one kind counting what
//! arrives, one measurement window with the server's and the generator's CPU sampled over it.

use crate::conn::{Conn, Role, Target};
use crate::hls::{HlsStats, HlsViewer, Requests, delay};
use crate::httpflv::FlvViewer;
use crate::stats::{Histogram, PlayerStats, proc_sample};
use crate::{LoadArgs, PlayerKind, cpu_pct, flv, gate, parse_playback, parse_url, publish, sample};
use anyhow::{Context as _, bail};
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// An HLS viewer kept up when the parts it fetched in the window cover all of it but this
/// much: parts are counted when fetched, so the window's two ends cut one part each.
const HLS_KEPT_UP_SLACK_S: f64 = 0.5;
/// Time for a player to start (RTMP play, HTTP-FLV answer head).
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// What every player task needs.
#[derive(Clone)]
struct Spawner {
    kind: PlayerKind,
    target: Target,
    playback: Option<SocketAddr>,
    gate: Rc<tokio::sync::Semaphore>,
    ready: Rc<Cell<usize>>,
    errors: Rc<RefCell<Vec<String>>>,
    hls: Rc<RefCell<HlsStats>>,
}

impl Spawner {
    fn spawn(&self, name: &str, stats: Rc<RefCell<PlayerStats>>) {
        let s = self.clone();
        let name = name.to_owned();
        tokio::task::spawn_local(async move {
            let result = s.play(&name, stats.clone()).await;
            if let Err(e) = result {
                let msg = format!("{e:#}");
                stats.borrow_mut().closed = Some(msg.clone());
                let mut errors = s.errors.borrow_mut();
                if errors.len() < 5 {
                    errors.push(msg);
                }
            }
        });
    }

    async fn play(&self, name: &str, stats: Rc<RefCell<PlayerStats>>) -> anyhow::Result<()> {
        let app = &self.target.app;
        let permit = self.gate.acquire().await;
        match (self.kind, self.playback) {
            (PlayerKind::Rtmp, _) => {
                let opened =
                    Conn::open(&self.target, Role::Play, name, Some(stats), START_TIMEOUT).await;
                drop(permit);
                let conn = opened?;
                self.ready.set(self.ready.get() + 1);
                conn.run().await
            }
            (PlayerKind::HttpFlv, Some(addr)) => {
                let path = format!("/{app}/{name}.flv");
                let opened = FlvViewer::open(addr, &path, stats, START_TIMEOUT).await;
                drop(permit);
                let viewer = opened?;
                self.ready.set(self.ready.get() + 1);
                viewer.run().await
            }
            (PlayerKind::Hls, Some(addr)) => {
                let index = format!("/{app}/{name}/index.m3u8");
                let viewer =
                    HlsViewer::new(addr, index, stats, self.hls.clone(), self.ready.clone());
                viewer.run(permit.ok()).await;
                Ok(())
            }
            (_, None) => bail!("--player-kind {} needs --playback", self.kind.label()),
        }
    }
}

/// Figures snapshotted at both ends of the window.
#[derive(Clone, Copy)]
struct Snap {
    bytes: u64,
    wire: u64,
    frames: u64,
    max_ts: Option<u32>,
}

fn snap(players: &[Rc<RefCell<PlayerStats>>], measuring: bool) -> Vec<Snap> {
    players
        .iter()
        .map(|p| {
            let mut p = p.borrow_mut();
            p.measuring = measuring;
            Snap {
                bytes: p.bytes,
                wire: p.wire_bytes,
                frames: p.frames,
                max_ts: p.max_ts,
            }
        })
        .collect()
}

/// HLS counters snapshotted at both ends of the window.
#[derive(Clone, Copy)]
struct HlsSnap {
    requests: Requests,
    non_2xx: u64,
    timeouts: u64,
    io_errors: u64,
}

fn hls_snap(h: &HlsStats) -> HlsSnap {
    HlsSnap {
        requests: h.requests,
        non_2xx: h.status.values().sum(),
        timeouts: h.timeouts,
        io_errors: h.io_errors,
    }
}

pub(crate) async fn load(args: LoadArgs) -> anyhow::Result<String> {
    let (target, base) = parse_url(&args.common.url, &args.common)?;
    // Players may come in another way than the publishers (rtmps:// beside rtmp://); the
    // stream is the one the publishers feed.
    let player_target = match &args.player_url {
        Some(url) => parse_url(url, &args.common)?.0,
        None => target.clone(),
    };
    let playback = match (&args.playback, args.player_kind) {
        (Some(a), _) => Some(parse_playback(a)?),
        (None, PlayerKind::Rtmp) => None,
        (None, kind) => bail!("--player-kind {} needs --playback", kind.label()),
    };
    let (tags, duration_ms) = flv::load(&args.flv)?;
    let tags = Rc::new(tags);
    let names: Vec<String> = (0..args.publishers)
        .map(|i| {
            if args.publishers == 1 {
                base.clone()
            } else {
                format!("{base}-{i}")
            }
        })
        .collect();
    let pub_failed: Rc<RefCell<Vec<String>>> = Rc::default();
    let mut origins = Vec::new();
    for name in &names {
        let origin = Rc::new(Cell::new(None));
        origins.push(origin.clone());
        let (target, name, tags, failed) = (
            target.clone(),
            name.clone(),
            tags.clone(),
            pub_failed.clone(),
        );
        tokio::task::spawn_local(async move {
            if let Err(e) = publish::publish(target, name, tags, duration_ms, origin).await {
                failed.borrow_mut().push(format!("publisher: {e:#}"));
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while origins.iter().any(|o| o.get().is_none()) {
        if !pub_failed.borrow().is_empty() || Instant::now() > deadline {
            bail!("publishers did not start: {:?}", pub_failed.borrow());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the first GOP reach the server so players start with a cached keyframe.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let lag = Rc::new(RefCell::new(Histogram::default()));
    let spawner = Spawner {
        kind: args.player_kind,
        target: player_target,
        playback,
        gate: gate(args.common.concurrency),
        ready: Rc::new(Cell::new(0)),
        errors: Rc::default(),
        hls: Rc::default(),
    };
    let mut players = Vec::new();
    let ramp_start = Instant::now();
    for (s, name) in names.iter().enumerate() {
        let origin = origins[s].get().unwrap_or_else(Instant::now);
        for _ in 0..args.players {
            let stats = Rc::new(RefCell::new(PlayerStats::new(origin, lag.clone())));
            players.push(stats.clone());
            spawner.spawn(name, stats);
        }
    }
    let total = players.len();
    let closed = |players: &[Rc<RefCell<PlayerStats>>]| {
        players
            .iter()
            .filter(|p| p.borrow().closed.is_some())
            .count()
    };
    let ramp_deadline = Instant::now() + Duration::from_secs(60);
    while spawner.ready.get() + closed(&players) < total && Instant::now() < ramp_deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ramp = ramp_start.elapsed();
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;

    let (gen0, srv0) = (proc_sample("self"), sample(args.common.server_pid));
    let t0 = Instant::now();
    let start = snap(&players, true);
    let hls0 = hls_snap(&spawner.hls.borrow());
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    let end = snap(&players, false);
    let hls1 = hls_snap(&spawner.hls.borrow());
    let t1 = Instant::now();
    let wall = t1 - t0;
    let (gen1, srv1) = (proc_sample("self"), sample(args.common.server_pid));

    let secs = wall.as_secs_f64();
    // A server that writes in batches (SRS: 350 ms) shows its players' media up to one batch
    // stale at either end of the window: that much less advance still counts as keeping up.
    const BATCH_SLACK_S: f64 = 0.4;
    let need = match args.player_kind {
        PlayerKind::Hls => secs - HLS_KEPT_UP_SLACK_S,
        PlayerKind::Rtmp | PlayerKind::HttpFlv => 0.99 * secs - BATCH_SLACK_S,
    };
    let mut kept_up = 0usize;
    let mut bitrates = Vec::with_capacity(total);
    let mut fps = Vec::with_capacity(total);
    let (mut delivered_bits, mut wire_bits) = (0f64, 0f64);
    for (i, p) in players.iter().enumerate() {
        let (a, b) = (start[i], end[i]);
        let bits = (b.bytes - a.bytes) as f64 * 8.0;
        delivered_bits += bits;
        wire_bits += (b.wire - a.wire) as f64 * 8.0;
        bitrates.push(bits / secs / 1000.0);
        fps.push((b.frames - a.frames) as f64 / secs);
        let advance = match (a.max_ts, b.max_ts) {
            (Some(x), Some(y)) => f64::from(y.wrapping_sub(x)) / 1000.0,
            _ => 0.0,
        };
        if p.borrow().closed.is_none() && advance >= need {
            kept_up += 1;
        }
    }
    let mean = |v: &[f64]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let lag = lag.borrow();
    let gbps = delivered_bits / secs / 1e9;
    let server_cpu = cpu_pct(srv0, srv1, wall);
    let mut errors = spawner.errors.borrow().clone();
    let mut report = serde_json::json!({
        "mode": "load",
        "server": args.common.server,
        "url": args.common.url,
        "player_url": args.player_url,
        "player_kind": args.player_kind.label(),
        "playback": args.playback,
        "publishers": args.publishers,
        "players_per_stream": args.players,
        "players": total,
        "started": spawner.ready.get(),
        "closed": closed(&players),
        "ramp_s": ramp.as_secs_f64(),
        "window_s": secs,
        "kept_up": kept_up,
        "kept_up_pct": if total == 0 { 0.0 } else { kept_up as f64 * 100.0 / total as f64 },
        "bitrate_kbps_mean": mean(&bitrates),
        "bitrate_kbps_min": if bitrates.is_empty() { 0.0 } else { min(&bitrates) },
        "fps_mean": mean(&fps),
        "delivered_gbps": gbps,
        "wire_gbps": wire_bits / secs / 1e9,
        "lag_samples": lag.count(),
        "lag_ms_p50": lag.quantile(0.50),
        "lag_ms_p90": lag.quantile(0.90),
        "lag_ms_p95": lag.quantile(0.95),
        "lag_ms_p99": lag.quantile(0.99),
        "lag_ms_max": lag.quantile(1.0),
        "server_cpu_pct": server_cpu,
        "server_rss_kib": srv1.map(|s| s.rss_kib),
        "server_cpu_pct_per_gbps": server_cpu.filter(|_| gbps > 0.0).map(|c| c / gbps),
        "generator_cpu_pct": cpu_pct(gen0, gen1, wall),
        "generator_rss_kib": gen1.map(|s| s.rss_kib),
        "publisher_errors": *pub_failed.borrow(),
    });
    if args.player_kind == PlayerKind::Hls {
        let hls = spawner.hls.borrow();
        let sum = delay::summarize(&hls.samples, t0, t1);
        let (r0, r1) = (hls0.requests, hls1.requests);
        let per_s = |a: u64, b: u64| (b - a) as f64 / secs;
        let d = |i: usize| sum.delay_ms.map(|q| q[i]);
        let extra = serde_json::json!({
            "requests": r1.total() - r0.total(),
            "requests_per_s": per_s(r0.total(), r1.total()),
            "playlist_requests_per_s": per_s(r0.playlist, r1.playlist),
            "part_requests_per_s": per_s(r0.part, r1.part),
            "blocking_answers": sum.blocked,
            "late_requests": sum.late,
            "parts_answered": sum.parts,
            "blocking_delay_ms_p50": d(0),
            "blocking_delay_ms_p95": d(1),
            "blocking_delay_ms_p99": d(2),
            "blocking_delay_ms_max": d(3),
            "http_errors": hls1.non_2xx - hls0.non_2xx,
            "timeouts": hls1.timeouts - hls0.timeouts,
            "io_errors": hls1.io_errors - hls0.io_errors,
            "http_errors_by_status_whole_run": hls.status.iter()
                .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
                .collect::<serde_json::Map<_, _>>(),
            "sessions_opened": hls.sessions,
        });
        if let (Some(map), serde_json::Value::Object(extra)) = (report.as_object_mut(), extra) {
            map.extend(extra);
        }
        errors.extend(hls.messages.iter().take(5 - errors.len().min(5)).cloned());
    }
    if let Some(map) = report.as_object_mut() {
        map.insert("errors".into(), serde_json::json!(errors));
    }
    Ok(if args.common.json {
        report.to_string()
    } else {
        serde_json::to_string_pretty(&report).context("cannot render the report")?
    })
}
