//! `lifeline keepalive …`: see and tune the namespace's keepalive sysctls, compute detection
//! times, and arm keepalive on a running process.

use super::{human, secs};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use liveness::calc::{self, Report};
use liveness::sysctl::{DEFAULT_PERSIST_FILE, KeepaliveChange, Sysctl};
use liveness::{Keepalive, SocketLiveness, TcpState};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// `lifeline keepalive …`: the kernel's keepalive settings and detection times.
#[derive(Debug, Subcommand)]
pub(crate) enum KeepaliveCommand {
    /// Show net.ipv4.tcp_keepalive_* and tcp_retries2 with the detection times they give.
    Show {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Change the keepalive sysctls of this network namespace (needs root).
    Set(SetArgs),
    /// Compute exact dead-peer detection times for given settings.
    Calc(CalcArgs),
    /// Arm keepalive (and optionally TCP_USER_TIMEOUT) on the sockets of a running process.
    Enable(EnableArgs),
}

/// Arguments of `keepalive set`.
#[derive(Debug, Args)]
pub(crate) struct SetArgs {
    /// New net.ipv4.tcp_keepalive_time, seconds (1..=32767).
    #[arg(long)]
    time: Option<u64>,
    /// New net.ipv4.tcp_keepalive_intvl, seconds (1..=32767).
    #[arg(long)]
    intvl: Option<u64>,
    /// New net.ipv4.tcp_keepalive_probes (1..=255).
    #[arg(long)]
    probes: Option<u32>,
    /// Also write a sysctl.d file so the values survive a reboot.
    #[arg(long, num_args = 0..=1, default_missing_value = DEFAULT_PERSIST_FILE)]
    persist: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

/// Arguments of `keepalive calc`. Unset values come from this namespace's sysctls when
/// readable, else the kernel defaults.
#[derive(Debug, Args)]
pub(crate) struct CalcArgs {
    /// Keepalive idle time (TCP_KEEPIDLE / tcp_keepalive_time), seconds.
    #[arg(long)]
    time: Option<u64>,
    /// Keepalive interval (TCP_KEEPINTVL / tcp_keepalive_intvl), seconds.
    #[arg(long)]
    intvl: Option<u64>,
    /// Keepalive probe count (TCP_KEEPCNT / tcp_keepalive_probes).
    #[arg(long)]
    probes: Option<u32>,
    /// TCP_USER_TIMEOUT, milliseconds (0 = off).
    #[arg(long)]
    user_timeout: Option<u64>,
    /// net.ipv4.tcp_retries2.
    #[arg(long)]
    retries2: Option<u32>,
    /// Minimum RTO, ms (TCP_RTO_MIN; 200 on Linux).
    #[arg(long)]
    rto_min: Option<u64>,
    /// Maximum RTO, ms (TCP_RTO_MAX_MS / tcp_rto_max_ms; 120000 by default).
    #[arg(long)]
    rto_max: Option<u64>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

/// Arguments of `keepalive enable`.
#[derive(Debug, Args)]
pub(crate) struct EnableArgs {
    /// Process whose sockets get keepalive.
    #[arg(long)]
    pid: i32,
    /// Only sockets with this local or remote port.
    #[arg(long)]
    port: Option<u16>,
    /// TCP_KEEPIDLE, seconds.
    #[arg(long, default_value_t = 60)]
    idle: u64,
    /// TCP_KEEPINTVL, seconds.
    #[arg(long, default_value_t = 10)]
    intvl: u64,
    /// TCP_KEEPCNT.
    #[arg(long, default_value_t = 3)]
    count: u32,
    /// Also set TCP_USER_TIMEOUT, milliseconds (covers sockets with data in flight).
    #[arg(long)]
    user_timeout: Option<u64>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

/// Runs a `keepalive` subcommand.
pub(crate) fn run_keepalive(cmd: KeepaliveCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        KeepaliveCommand::Show { json } => show(json),
        KeepaliveCommand::Set(a) => set(a),
        KeepaliveCommand::Calc(a) => calc_cmd(a),
        KeepaliveCommand::Enable(a) => enable(a),
    }
}

fn netns_id() -> String {
    std::fs::read_link("/proc/self/ns/net")
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn report_json(r: &Report) -> serde_json::Value {
    json!({
        "tcp_keepalive_time_s": r.keepalive.idle.as_secs(),
        "tcp_keepalive_intvl_s": r.keepalive.interval.as_secs(),
        "tcp_keepalive_probes": r.keepalive.count,
        "user_timeout_ms": r.user_timeout.map(|u| u.as_millis() as u64),
        "tcp_retries2": r.retries2,
        "rto_min_ms": r.rto_min.as_millis() as u64,
        "rto_max_ms": r.rto_max.as_millis() as u64,
        "idle_detection_s": r.idle.as_secs_f64(),
        "busy_detection_bound_s": r.busy_bound.as_secs_f64(),
        "busy_detection_s": r.busy.as_secs_f64(),
    })
}

fn print_report(r: &Report) {
    let k = &r.keepalive;
    let idle_formula = match r.user_timeout.filter(|u| !u.is_zero()) {
        None => format!(
            "{} + {} × {}",
            k.idle.as_secs(),
            k.count,
            k.interval.as_secs()
        ),
        Some(u) => format!(
            "{} + {} × max(1, ⌈({} − {}) / {}⌉)  (user timeout replaces the probe count)",
            k.idle.as_secs(),
            k.interval.as_secs(),
            secs(u),
            k.idle.as_secs(),
            k.interval.as_secs()
        ),
    };
    println!(
        "  idle dead peer (keepalive)        {:>28}   = {idle_formula}",
        human(r.idle)
    );
    match r.user_timeout.filter(|u| !u.is_zero()) {
        Some(u) => println!(
            "  busy dead peer (data in flight)   {:>28}   = TCP_USER_TIMEOUT",
            human(u)
        ),
        None => {
            println!(
                "  busy dead peer (data in flight)   {:>28}   ≥ T(tcp_retries2={}) = {} (lower bound)",
                human(r.busy),
                r.retries2,
                secs(r.busy_bound)
            );
            println!(
                "                                    (first RTO expiry at or after the bound, RTO from {} doubling up to {})",
                secs(r.rto_min),
                secs(r.rto_max)
            );
        }
    }
}

fn show(json_out: bool) -> anyhow::Result<ExitCode> {
    let s = Sysctl::default()
        .read()
        .context("reading /proc/sys/net/ipv4 (is this Linux?)")?;
    let rto_max = s.rto_max.unwrap_or(calc::DEFAULT_RTO_MAX);
    let r = Report::new(
        s.keepalive,
        None,
        s.retries2,
        calc::DEFAULT_RTO_MIN,
        rto_max,
    );
    if json_out {
        let mut v = report_json(&r);
        v["tcp_rto_max_ms"] = json!(s.rto_max.map(|d| d.as_millis() as u64));
        v["netns"] = json!(netns_id());
        v["note"] = json!(
            "sysctls apply only to sockets with SO_KEEPALIVE, and only in this network namespace"
        );
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("Network namespace {}:", netns_id());
    println!(
        "  net.ipv4.tcp_keepalive_time   = {:>6} s",
        s.keepalive.idle.as_secs()
    );
    println!(
        "  net.ipv4.tcp_keepalive_intvl  = {:>6} s",
        s.keepalive.interval.as_secs()
    );
    println!("  net.ipv4.tcp_keepalive_probes = {:>6}", s.keepalive.count);
    println!("  net.ipv4.tcp_retries2         = {:>6}", s.retries2);
    match s.rto_max {
        Some(m) => println!("  net.ipv4.tcp_rto_max_ms       = {:>6}", m.as_millis()),
        None => println!("  net.ipv4.tcp_rto_max_ms       =      - (kernel < 6.15: 120000 fixed)"),
    }
    println!("Worst-case detection of a dead peer:");
    print_report(&r);
    println!(
        "Reminder: these sysctls apply only to sockets with SO_KEEPALIVE (off by default), only in \
         this network namespace (containers have their own), and sockets without per-socket \
         TCP_KEEPIDLE/INTVL/CNT. A busy socket is never probed: set TCP_USER_TIMEOUT per socket."
    );
    Ok(ExitCode::SUCCESS)
}

fn set(a: SetArgs) -> anyhow::Result<ExitCode> {
    let change = KeepaliveChange {
        time: a.time,
        intvl: a.intvl,
        probes: a.probes,
    };
    if change == KeepaliveChange::default() {
        bail!("nothing to set: give --time, --intvl and/or --probes");
    }
    change.validate()?;
    let sysctl = Sysctl::default();
    let before = sysctl.read().context("reading the current values")?;
    let after_k = change.applied_to(before.keepalive);
    sysctl.write_keepalive(&change)?;
    let after = sysctl.read()?;
    if after.keepalive != after_k {
        bail!(
            "the kernel did not keep the values: expected {after_k:?}, reads {:?}",
            after.keepalive
        );
    }
    if let Some(path) = &a.persist {
        liveness::sysctl::persist(path, &after.keepalive)?;
    }
    if a.json {
        let k = |k: &Keepalive| {
            json!({"tcp_keepalive_time_s": k.idle.as_secs(), "tcp_keepalive_intvl_s": k.interval.as_secs(),
                   "tcp_keepalive_probes": k.count, "idle_detection_s": k.detection_time().as_secs()})
        };
        let v = json!({"netns": netns_id(), "before": k(&before.keepalive), "after": k(&after.keepalive),
                       "persisted_to": a.persist.as_ref().map(|p| p.display().to_string())});
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let (b, n) = (before.keepalive, after.keepalive);
    println!("Network namespace {}:", netns_id());
    println!(
        "  net.ipv4.tcp_keepalive_time   {:>6} → {} s",
        b.idle.as_secs(),
        n.idle.as_secs()
    );
    println!(
        "  net.ipv4.tcp_keepalive_intvl  {:>6} → {} s",
        b.interval.as_secs(),
        n.interval.as_secs()
    );
    println!(
        "  net.ipv4.tcp_keepalive_probes {:>6} → {}",
        b.count, n.count
    );
    println!(
        "Idle dead peer now detected after {} (was {}).",
        human(n.detection_time()),
        human(b.detection_time())
    );
    if let Some(p) = &a.persist {
        println!(
            "Persisted to {} (applied at boot, or now by `sysctl --system`).",
            p.display()
        );
    }
    println!(
        "Note: keepalive timers already armed keep their old deadline until they fire; only \
         sockets with SO_KEEPALIVE and no per-socket values are affected."
    );
    Ok(ExitCode::SUCCESS)
}

fn calc_cmd(a: CalcArgs) -> anyhow::Result<ExitCode> {
    let current = Sysctl::default().read().ok();
    let base = current
        .map(|c| c.keepalive)
        .unwrap_or(calc::KERNEL_DEFAULT_KEEPALIVE);
    let k = Keepalive {
        idle: a.time.map(Duration::from_secs).unwrap_or(base.idle),
        interval: a.intvl.map(Duration::from_secs).unwrap_or(base.interval),
        count: a.probes.unwrap_or(base.count),
    };
    k.validate()?;
    let retries2 = a
        .retries2
        .or(current.map(|c| c.retries2))
        .unwrap_or(calc::DEFAULT_RETRIES2);
    let rto_min = a
        .rto_min
        .map(Duration::from_millis)
        .unwrap_or(calc::DEFAULT_RTO_MIN);
    let rto_max = a
        .rto_max
        .map(Duration::from_millis)
        .or(current.and_then(|c| c.rto_max))
        .unwrap_or(calc::DEFAULT_RTO_MAX);
    if rto_min.is_zero() || rto_max < rto_min {
        bail!("need 0 < --rto-min ≤ --rto-max");
    }
    let user_timeout = a.user_timeout.map(Duration::from_millis);
    SocketLiveness {
        keepalive: Some(k),
        user_timeout,
    }
    .validate()?;
    let r = Report::new(k, user_timeout, retries2, rto_min, rto_max);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report_json(&r))?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "keepalive idle {} / interval {} / probes {}, user timeout {}, tcp_retries2 {}, RTO {}..{}",
        k.idle.as_secs(),
        k.interval.as_secs(),
        k.count,
        user_timeout
            .filter(|u| !u.is_zero())
            .map(|u| format!("{} ms", u.as_millis()))
            .unwrap_or_else(|| "off".into()),
        retries2,
        secs(rto_min),
        secs(rto_max)
    );
    print_report(&r);
    println!(
        "Times count from the last segment received (idle) or the first unacknowledged send (busy)."
    );
    Ok(ExitCode::SUCCESS)
}

fn enable(a: EnableArgs) -> anyhow::Result<ExitCode> {
    let k = Keepalive {
        idle: Duration::from_secs(a.idle),
        interval: Duration::from_secs(a.intvl),
        count: a.count,
    };
    let want = SocketLiveness {
        keepalive: Some(k),
        user_timeout: a.user_timeout.map(Duration::from_millis),
    };
    want.validate()?;
    let mut all = liveness::diag::dump_tcp()?;
    liveness::diag::fill_owners(&mut all);
    let mine: Vec<_> = all
        .iter()
        .filter(|e| matches!(e.state, TcpState::Established | TcpState::Listen))
        .filter(|e| {
            a.port
                .is_none_or(|p| e.local.port() == p || e.remote.port() == p)
        })
        .filter_map(|e| e.owners.iter().find(|o| o.pid == a.pid).map(|o| (e, o)))
        .collect();
    if mine.is_empty() {
        bail!(
            "process {} has no established or listening TCP socket{} in this network namespace \
             (for a container, run under `nsenter -t {} -n`)",
            a.pid,
            a.port.map(|p| format!(" on port {p}")).unwrap_or_default(),
            a.pid
        );
    }
    let mut results = Vec::new();
    let mut failed = 0;
    for (e, o) in mine {
        let before = liveness::pidfd::read(o.pid, o.fd).ok();
        match liveness::pidfd::arm(o.pid, o.fd, &want) {
            Ok(after) => results.push((e, o, before, Ok(after))),
            Err(err) => {
                failed += 1;
                results.push((e, o, before, Err(err)));
            }
        }
    }
    if a.json {
        let v: Vec<_> = results
            .iter()
            .map(|(e, o, before, r)| {
                json!({
                    "pid": o.pid, "fd": o.fd, "local": e.local, "remote": e.remote,
                    "state": e.state.ss_name(),
                    "before": before.as_ref().map(super::sockets::liveness_json),
                    "after": r.as_ref().ok().map(super::sockets::liveness_json),
                    "error": r.as_ref().err().map(|e| e.to_string()),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "sockets": v }))?
        );
    } else {
        for (e, o, before, r) in &results {
            let what = format!(
                "pid {} fd {:<3} {:<10} {} → {}",
                o.pid,
                o.fd,
                e.state.ss_name(),
                e.local,
                e.remote
            );
            match r {
                Ok(after) => println!(
                    "armed   {what}: {} → {}",
                    super::sockets::liveness_text(before.as_ref()),
                    super::sockets::liveness_text(Some(after))
                ),
                Err(err) => println!("FAILED  {what}: {err}"),
            }
        }
        println!(
            "Idle dead peer now detected {} after the last segment received{}.",
            human(liveness::calc::idle_detection(&k, want.user_timeout)),
            match want.user_timeout {
                Some(u) if !u.is_zero() => format!("; busy dead peer after {}", human(u)),
                _ => "; sockets with data in flight still depend on tcp_retries2 \
                      (add --user-timeout)"
                    .into(),
            }
        );
        println!(
            "An already-idle socket probes at once. Listening sockets pass the options on to \
             connections accepted from now on."
        );
    }
    if failed > 0 {
        bail!("{failed} socket(s) could not be armed");
    }
    Ok(ExitCode::SUCCESS)
}
