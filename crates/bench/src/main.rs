//! `lifeline-bench`: a load generator for RTMP servers, built on Lifeline's own protocol crate.
//!
//! `load`: M publishers replay an FLV file in real time, N players per stream count what they
//! receive (bitrate, frames, lag behind the publisher); reports how many kept up. The players
//! are RTMP players, or HTTP viewers on a playback port (`--player-kind http-flv|hls`):
//! HTTP-FLV bodies counted tag by tag into the same figures, or low-latency HLS viewers
//! (blocking reloads and parts) with requests per second and the blocking answers' delays.
//! `idle`:
//! many connections that only handshake and `connect`, to measure what an idle connection
//! costs the server. Both can sample the server's CPU and RSS from /proc over the exact
//! measurement window (`--server-pid`), and always report the generator's own CPU, because a
//! generator that costs more than the server measures itself.
//!
//! Everything runs on one thread: the generator's CPU is then bounded by one core and easy to
//! compare with the server's.

mod conn;
mod flv;
mod flvscan;
mod hls;
mod http;
mod httpconn;
mod httpflv;
mod idle;
mod load;
mod playback_report;
mod publish;
mod report;
mod scratch;
mod stats;
mod tls;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use conn::Target;
use stats::{ProcSample, proc_sample};
use std::net::{SocketAddr, ToSocketAddrs as _};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    version,
    about = "RTMP load generator: publishers, players (RTMP, HTTP-FLV, LL-HLS), idle connections"
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
    /// Renders the JSON lines of `load` runs of each --player-kind (bench/playback.sh) as
    /// Markdown tables: RTMP beside HTTP-FLV at each player count, and LL-HLS.
    PlaybackReport(playback_report::PlaybackReportArgs),
    /// The LL-HLS blocking answers' delays measured on the wire: reads a packet capture of
    /// the playback port (tcpdump -i lo -s 200 -w F 'tcp port P') taken during an
    /// `--player-kind hls` load; prints one JSON object.
    WireDelays(hls::wire::WireArgs),
}

#[derive(clap::Args)]
struct Common {
    /// rtmp://host[:port]/app/name, or rtmps:// for RTMP over TLS (port 443 by default);
    /// with several publishers, names get -0, -1, … appended.
    #[arg(long)]
    url: String,
    /// For rtmps://: trust the certificates of this PEM file (e.g. a benchmark's CA) instead
    /// of accepting any.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// For rtmps://: accept any server certificate (a test-generated self-signed one); the
    /// handshake's signatures are still checked, so a handshake costs what a real one does.
    /// rtmps:// needs this or --ca-file.
    #[arg(long)]
    insecure: bool,
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

/// What the players of a `load` are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PlayerKind {
    /// RTMP players on `--url`.
    Rtmp,
    /// HTTP-FLV viewers: `GET /{app}/{name}.flv` on `--playback`, the chunked body's FLV tags
    /// counted by their headers (same figures as RTMP players).
    HttpFlv,
    /// Low-latency HLS viewers on `--playback`: `GET /{app}/{name}/index.m3u8`, then per part
    /// a blocking playlist reload (`_HLS_msn`/`_HLS_part`) and a `GET` of the part, one
    /// keep-alive connection each. Adds requests/s, the delay of each blocking answer after
    /// its part was ready (p50/p95/p99), non-2xx answers and timeouts. Kept up: the parts
    /// fetched in the window cover it to within 0.5 s.
    Hls,
}

impl PlayerKind {
    fn label(self) -> &'static str {
        match self {
            Self::Rtmp => "rtmp",
            Self::HttpFlv => "http-flv",
            Self::Hls => "hls",
        }
    }
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
    /// Where the RTMP players connect instead of --url (same stream): e.g. players over
    /// rtmps:// of a stream published over rtmp://.
    #[arg(long)]
    player_url: Option<String>,
    /// What the players are (publishers are always RTMP, on --url).
    #[arg(long, value_enum, default_value_t = PlayerKind::Rtmp)]
    player_kind: PlayerKind,
    /// The server's HTTP playback port, host:port (for http-flv and hls players); the
    /// stream's app and name come from --url.
    #[arg(long)]
    playback: Option<String>,
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
        Cmd::Load(args) => local.block_on(&rt, load::load(args))?,
        Cmd::Idle(args) => local.block_on(&rt, idle::idle(args))?,
        Cmd::Report(args) => report::render(&args)?,
        Cmd::PlaybackReport(args) => playback_report::render(&args)?,
        Cmd::WireDelays(args) => hls::wire::render(&args)?,
    };
    println!("{report}");
    Ok(())
}

/// The target and the stream name from an rtmp:// or rtmps:// URL.
fn parse_url(url: &str, common: &Common) -> anyhow::Result<(Target, String)> {
    let (scheme, rest, port) = if let Some(rest) = url.strip_prefix("rtmps://") {
        ("rtmps", rest, 443)
    } else if let Some(rest) = url.strip_prefix("rtmp://") {
        ("rtmp", rest, 1935)
    } else {
        anyhow::bail!("the URL must start with rtmp:// or rtmps://");
    };
    let (hostport, path) = rest.split_once('/').context("the URL has no /app/name")?;
    let (app, name) = path.split_once('/').context("the URL has no stream name")?;
    let host = hostport
        .rsplit_once(':')
        .map_or(hostport, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let tls = if scheme == "rtmps" {
        let trust = match (&common.ca_file, common.insecure) {
            (Some(path), _) => tls::Trust::CaFile(path),
            (None, true) => tls::Trust::Insecure,
            (None, false) => anyhow::bail!("rtmps:// needs --ca-file or --insecure"),
        };
        Some((tls::client_config(trust)?, host.to_owned()))
    } else {
        None
    };
    let hostport = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:{port}")
    };
    let addr = hostport
        .to_socket_addrs()?
        .next()
        .with_context(|| format!("cannot resolve {hostport}"))?;
    let tc_url = format!("{scheme}://{hostport}/{app}");
    Ok((
        Target {
            addr,
            app: app.to_owned(),
            tc_url,
            tls,
        },
        name.to_owned(),
    ))
}

/// The address of an HTTP playback port given as host:port (or http://host:port/).
fn parse_playback(addr: &str) -> anyhow::Result<SocketAddr> {
    let hostport = addr
        .strip_prefix("http://")
        .unwrap_or(addr)
        .trim_end_matches('/');
    hostport
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {hostport}"))?
        .next()
        .with_context(|| format!("cannot resolve {hostport}"))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn common(insecure: bool) -> Common {
        Common {
            url: String::new(),
            ca_file: None,
            insecure,
            server_pid: None,
            concurrency: 1,
            json: false,
            server: String::new(),
        }
    }

    #[test]
    fn rtmps_urls_carry_tls_and_their_scheme() {
        let (t, name) = parse_url("rtmps://127.0.0.1/live/a", &common(true)).unwrap();
        assert_eq!((t.addr.port(), name.as_str()), (443, "a"));
        assert_eq!(t.tc_url, "rtmps://127.0.0.1:443/live");
        assert_eq!(t.tls.map(|(_, host)| host).as_deref(), Some("127.0.0.1"));
        let (t, _) = parse_url("rtmp://127.0.0.1/live/a", &common(true)).unwrap();
        assert!(t.tls.is_none() && t.addr.port() == 1935);
        // No silent trust: rtmps:// needs a CA file or an explicit --insecure.
        assert!(parse_url("rtmps://127.0.0.1:1936/live/a", &common(false)).is_err());
    }
}
