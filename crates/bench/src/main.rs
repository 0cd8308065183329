//! `lifeline-bench`: a load generator for RTMP servers, built on Lifeline's own protocol crate.
//!
//! `load`: M publishers replay an FLV file in real time, N players per stream count what they
//! receive (bitrate, frames, lag behind the publisher); reports how many kept up. `idle`:
//! many connections that only handshake and `connect`, to measure what an idle connection
//! costs the server. Both can sample the server's CPU and RSS from /proc over the exact
//! measurement window (`--server-pid`), and always report the generator's own CPU, because a
//! generator that costs more than the server measures itself.
//!
//! Everything runs on one thread: the generator's CPU is then bounded by one core and easy to
//! compare with the server's.

mod conn;
mod flv;
mod report;
mod stats;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use conn::{Conn, Role, Target};
use rtmp_proto::session::MediaKind;
use stats::{Histogram, PlayerStats, ProcSample, proc_sample};
use std::cell::{Cell, RefCell};
use std::net::ToSocketAddrs as _;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    version,
    about = "RTMP load generator: publishers, players, idle connections"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Publishers replaying an FLV in real time and players counting what arrives.
    Load(LoadArgs),
    /// Connections that only handshake and `connect`, then idle.
    Idle(IdleArgs),
    /// Renders the JSON lines of `load`/`idle` runs (tagged with --server) as Markdown tables.
    Report(report::ReportArgs),
}

#[derive(clap::Args)]
struct Common {
    /// rtmp://host[:port]/app/name (with several publishers, names get -0, -1, … appended).
    #[arg(long)]
    url: String,
    /// Server process to sample from /proc (CPU, RSS) over the measurement window.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Connections being set up at once.
    #[arg(long, default_value_t = 200)]
    concurrency: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Name of the server under test, copied into the report (e.g. lifeline, nginx-rtmp).
    #[arg(long, default_value = "")]
    server: String,
}

#[derive(clap::Args)]
struct LoadArgs {
    #[command(flatten)]
    common: Common,
    /// FLV file to replay (looped).
    #[arg(long)]
    flv: PathBuf,
    /// Publishers (streams).
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    /// Players per stream.
    #[arg(long, default_value_t = 10)]
    players: usize,
    /// Seconds after the last player started before measuring (skips the GOP-cache burst).
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 15.0)]
    duration: f64,
}

#[derive(clap::Args)]
struct IdleArgs {
    #[command(flatten)]
    common: Common,
    /// Idle connections to open.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Seconds to hold them open while measuring CPU.
    #[arg(long, default_value_t = 15.0)]
    hold: f64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let local = tokio::task::LocalSet::new();
    let report = match cli.command {
        Cmd::Load(args) => local.block_on(&rt, load(args))?,
        Cmd::Idle(args) => local.block_on(&rt, idle(args))?,
        Cmd::Report(args) => report::render(&args)?,
    };
    println!("{report}");
    Ok(())
}

/// A server that writes in batches (SRS: 350 ms) shows its players' media up to one batch
/// stale at either end of the window: that much less advance still counts as keeping up.
const BATCH_SLACK_S: f64 = 0.4;

/// The target and the stream name from an rtmp:// URL.
fn parse_url(url: &str) -> anyhow::Result<(Target, String)> {
    let rest = url
        .strip_prefix("rtmp://")
        .context("the URL must start with rtmp://")?;
    let (hostport, path) = rest.split_once('/').context("the URL has no /app/name")?;
    let (app, name) = path.split_once('/').context("the URL has no stream name")?;
    let hostport = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:1935")
    };
    let addr = hostport
        .to_socket_addrs()?
        .next()
        .with_context(|| format!("cannot resolve {hostport}"))?;
    let tc_url = format!("rtmp://{hostport}/{app}");
    Ok((
        Target {
            addr,
            app: app.to_owned(),
            tc_url,
        },
        name.to_owned(),
    ))
}

/// Bounds connection setup so a burst of SYNs does not overflow the server's accept backlog.
fn gate(n: usize) -> Rc<tokio::sync::Semaphore> {
    Rc::new(tokio::sync::Semaphore::new(n.max(1)))
}

fn sample(pid: Option<u32>) -> Option<ProcSample> {
    pid.and_then(|p| proc_sample(&p.to_string()))
}

fn cpu_pct(a: Option<ProcSample>, b: Option<ProcSample>, wall: Duration) -> Option<f64> {
    let (a, b) = (a?, b?);
    Some(b.cpu.saturating_sub(a.cpu).as_secs_f64() / wall.as_secs_f64() * 100.0)
}

/// Replays `tags` on a fresh publishing connection, looping, until the task is dropped.
async fn publish(
    target: Target,
    name: String,
    tags: Rc<Vec<flv::Tag>>,
    duration_ms: u32,
    origin_out: Rc<Cell<Option<Instant>>>,
) -> anyhow::Result<()> {
    let mut conn = Conn::open(&target, Role::Publish, &name, None, Duration::from_secs(10)).await?;
    let origin = Instant::now() + Duration::from_millis(100);
    origin_out.set(Some(origin));
    for cycle in 0u32.. {
        // Timestamps keep increasing across loops, as a live encoder's would.
        let offset = cycle.wrapping_mul(duration_ms + 40);
        for tag in tags.iter() {
            if tag.kind == MediaKind::Metadata && cycle > 0 {
                continue;
            }
            let ts = tag.timestamp.wrapping_add(offset);
            let at = origin + Duration::from_millis(u64::from(ts));
            loop {
                tokio::select! {
                    biased;
                    () = tokio::time::sleep_until(at.into()) => break,
                    r = conn.readable() => {
                        r?;
                        conn.serve_ready().await?;
                    }
                }
            }
            // Script tags are `onMetaData, {…}`: the session wraps them in `@setDataFrame`.
            conn.send_media(tag.kind, ts, &tag.body).await?;
        }
    }
    Ok(())
}

async fn load(args: LoadArgs) -> anyhow::Result<String> {
    let (target, base) = parse_url(&args.common.url)?;
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
            if let Err(e) = publish(target, name, tags, duration_ms, origin).await {
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
    let gate = gate(args.common.concurrency);
    let ready = Rc::new(Cell::new(0usize));
    let errors: Rc<RefCell<Vec<String>>> = Rc::default();
    let mut players = Vec::new();
    let ramp_start = Instant::now();
    for (s, name) in names.iter().enumerate() {
        let origin = origins[s].get().unwrap_or_else(Instant::now);
        for _ in 0..args.players {
            let stats = Rc::new(RefCell::new(PlayerStats::new(origin, lag.clone())));
            players.push(stats.clone());
            let (target, name, gate, ready, errors) = (
                target.clone(),
                name.clone(),
                gate.clone(),
                ready.clone(),
                errors.clone(),
            );
            tokio::task::spawn_local(async move {
                let permit = gate.acquire().await;
                let opened = Conn::open(
                    &target,
                    Role::Play,
                    &name,
                    Some(stats.clone()),
                    Duration::from_secs(20),
                )
                .await;
                drop(permit);
                let result = match opened {
                    Ok(conn) => {
                        ready.set(ready.get() + 1);
                        conn.run().await
                    }
                    Err(e) => Err(e),
                };
                if let Err(e) = result {
                    let msg = format!("{e:#}");
                    stats.borrow_mut().closed = Some(msg.clone());
                    let mut errors = errors.borrow_mut();
                    if errors.len() < 5 {
                        errors.push(msg);
                    }
                }
            });
        }
    }
    let total = players.len();
    let ramp_deadline = Instant::now() + Duration::from_secs(60);
    while ready.get()
        + players
            .iter()
            .filter(|p| p.borrow().closed.is_some())
            .count()
        < total
        && Instant::now() < ramp_deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ramp = ramp_start.elapsed();
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;

    let snap =
        |players: &[Rc<RefCell<PlayerStats>>], measuring: bool| -> Vec<(u64, u64, Option<u32>)> {
            players
                .iter()
                .map(|p| {
                    let mut p = p.borrow_mut();
                    p.measuring = measuring;
                    (p.bytes, p.frames, p.max_ts)
                })
                .collect()
        };
    let (gen0, srv0) = (proc_sample("self"), sample(args.common.server_pid));
    let t0 = Instant::now();
    let start = snap(&players, true);
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    let end = snap(&players, false);
    let wall = t0.elapsed();
    let (gen1, srv1) = (proc_sample("self"), sample(args.common.server_pid));

    let secs = wall.as_secs_f64();
    let mut kept_up = 0usize;
    let mut bitrates = Vec::with_capacity(total);
    let mut fps = Vec::with_capacity(total);
    let mut delivered_bits = 0f64;
    for (i, p) in players.iter().enumerate() {
        let (b0, f0, ts0) = start[i];
        let (b1, f1, ts1) = end[i];
        let bits = (b1 - b0) as f64 * 8.0;
        delivered_bits += bits;
        bitrates.push(bits / secs / 1000.0);
        fps.push((f1 - f0) as f64 / secs);
        let advance = match (ts0, ts1) {
            (Some(a), Some(b)) => f64::from(b.wrapping_sub(a)) / 1000.0,
            _ => 0.0,
        };
        if p.borrow().closed.is_none() && advance >= 0.99 * secs - BATCH_SLACK_S {
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
    let closed = players
        .iter()
        .filter(|p| p.borrow().closed.is_some())
        .count();
    let report = serde_json::json!({
        "mode": "load",
        "server": args.common.server,
        "url": args.common.url,
        "publishers": args.publishers,
        "players_per_stream": args.players,
        "players": total,
        "started": ready.get(),
        "closed": closed,
        "ramp_s": ramp.as_secs_f64(),
        "window_s": secs,
        "kept_up": kept_up,
        "kept_up_pct": if total == 0 { 0.0 } else { kept_up as f64 * 100.0 / total as f64 },
        "bitrate_kbps_mean": mean(&bitrates),
        "bitrate_kbps_min": if bitrates.is_empty() { 0.0 } else { min(&bitrates) },
        "fps_mean": mean(&fps),
        "delivered_gbps": gbps,
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
        "errors": *errors.borrow(),
        "publisher_errors": *pub_failed.borrow(),
    });
    Ok(if args.common.json {
        report.to_string()
    } else {
        serde_json::to_string_pretty(&report)?
    })
}

async fn idle(args: IdleArgs) -> anyhow::Result<String> {
    let (target, name) = parse_url(&args.common.url)?;
    let pid = args.common.server_pid;
    let base = sample(pid);
    let gate = gate(args.common.concurrency);
    let ready = Rc::new(Cell::new(0usize));
    let ended = Rc::new(Cell::new(0usize));
    let errors: Rc<RefCell<Vec<String>>> = Rc::default();
    let t_open = Instant::now();
    for _ in 0..args.connections {
        let (target, name, gate, ready, ended, errors) = (
            target.clone(),
            name.clone(),
            gate.clone(),
            ready.clone(),
            ended.clone(),
            errors.clone(),
        );
        tokio::task::spawn_local(async move {
            let permit = gate.acquire().await;
            let opened =
                Conn::open(&target, Role::Idle, &name, None, Duration::from_secs(30)).await;
            drop(permit);
            let result = match opened {
                Ok(conn) => {
                    ready.set(ready.get() + 1);
                    conn.run().await
                }
                Err(e) => Err(e),
            };
            ended.set(ended.get() + 1);
            if let Err(e) = result {
                let mut errors = errors.borrow_mut();
                if errors.len() < 5 {
                    errors.push(format!("{e:#}"));
                }
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while ready.get() + ended.get() < args.connections && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let open_s = t_open.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (gen0, srv0) = (proc_sample("self"), sample(pid));
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;
    let wall = t0.elapsed();
    let (gen1, srv1) = (proc_sample("self"), sample(pid));
    let open = ready.get().saturating_sub(ended.get());
    let rss_per_conn = match (base, srv1) {
        (Some(b), Some(a)) if open > 0 => {
            Some(a.rss_kib.saturating_sub(b.rss_kib) as f64 / open as f64)
        }
        _ => None,
    };
    let report = serde_json::json!({
        "mode": "idle",
        "server": args.common.server,
        "url": args.common.url,
        "connections": args.connections,
        "connected": ready.get(),
        "open_at_end": open,
        "open_s": open_s,
        "hold_s": wall.as_secs_f64(),
        "server_rss_kib_before": base.map(|s| s.rss_kib),
        "server_rss_kib": srv1.map(|s| s.rss_kib),
        "server_rss_kib_per_conn": rss_per_conn,
        "server_cpu_pct": cpu_pct(srv0, srv1, wall),
        "generator_cpu_pct": cpu_pct(gen0, gen1, wall),
        "generator_rss_kib": gen1.map(|s| s.rss_kib),
        "errors": *errors.borrow(),
    });
    Ok(if args.common.json {
        report.to_string()
    } else {
        serde_json::to_string_pretty(&report)?
    })
}
