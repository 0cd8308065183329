//! `lifeline sockets [kill|probe]`: list TCP sockets with the kernel's liveness evidence, judge
//! them, probe their peers now, and destroy the dead ones.

use super::secs;
use anyhow::bail;
use clap::{Args, Subcommand};
use liveness::diag::{SocketEntry, SocketTimer};
use liveness::suspect::{Reason, Thresholds, judge};
use liveness::{SocketLiveness, TcpState};
use serde_json::{Value, json};
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

/// Version of the `sockets --json` document (docs/ops.md); bumped on incompatible change.
const SCHEMA: &str = "lifeline.sockets/1";

/// `lifeline sockets …`: list, judge and kill TCP sockets of this network namespace.
#[derive(Debug, Args)]
pub(crate) struct SocketsArgs {
    #[command(subcommand)]
    action: Option<SocketsAction>,
    #[command(flatten)]
    filter: Filter,
    /// Machine-readable output (schema in docs/ops.md).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum SocketsAction {
    /// Destroy the matching sockets (SOCK_DESTROY; needs CAP_NET_ADMIN).
    Kill(KillArgs),
    /// Make the kernel probe each matched ESTABLISHED socket's peer now and say which answered
    /// (borrows the sockets with pidfd_getfd, restores every option; needs root).
    Probe(super::probe::ProbeArgs),
}

#[derive(Debug, Args)]
struct KillArgs {
    #[command(flatten)]
    filter: Filter,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    yes: bool,
}

/// Which sockets to act on; all given conditions must hold.
#[derive(Debug, Args, Clone)]
struct Filter {
    /// Local or remote port.
    #[arg(long)]
    port: Option<u16>,
    /// Local port only (`sport` in ss terms), e.g. to hit the server side of a connection.
    #[arg(long)]
    local_port: Option<u16>,
    /// Remote port only (`dport` in ss terms).
    #[arg(long)]
    remote_port: Option<u16>,
    /// Owning process id.
    #[arg(long)]
    pid: Option<i32>,
    /// State, as ss names it: established, close-wait, listen, syn-sent, fin-wait-1, …
    #[arg(long)]
    state: Option<String>,
    /// Keep only sockets that match a suspicion rule (see docs/ops.md).
    #[arg(long)]
    dead: bool,
    /// Suspicion rules: seconds without any ACK while data or probes are outstanding.
    #[arg(long, default_value_t = 10.0)]
    no_ack_secs: f64,
    /// Suspicion rules: retransmission back-off exponent that is suspicious on its own.
    #[arg(long, default_value_t = 5)]
    backoff: u8,
}

impl Filter {
    fn thresholds(&self) -> anyhow::Result<Thresholds> {
        let no_ack = Duration::try_from_secs_f64(self.no_ack_secs)
            .map_err(|_| anyhow::anyhow!("--no-ack-secs must be a non-negative number"))?;
        Ok(Thresholds {
            no_ack,
            backoff: self.backoff,
        })
    }

    fn state(&self) -> anyhow::Result<Option<TcpState>> {
        let Some(s) = &self.state else {
            return Ok(None);
        };
        let norm = s.to_ascii_lowercase().replace('_', "-");
        let st = match norm.as_str() {
            "established" | "estab" => TcpState::Established,
            "syn-sent" => TcpState::SynSent,
            "syn-recv" => TcpState::SynRecv,
            "fin-wait-1" => TcpState::FinWait1,
            "fin-wait-2" => TcpState::FinWait2,
            "time-wait" => TcpState::TimeWait,
            "close" | "closed" => TcpState::Close,
            "close-wait" => TcpState::CloseWait,
            "last-ack" => TcpState::LastAck,
            "listen" | "listening" => TcpState::Listen,
            "closing" => TcpState::Closing,
            _ => bail!("unknown state {s:?} (try established, close-wait, listen, …)"),
        };
        Ok(Some(st))
    }

    fn is_empty(&self) -> bool {
        self.port.is_none()
            && self.local_port.is_none()
            && self.remote_port.is_none()
            && self.pid.is_none()
            && self.state.is_none()
            && !self.dead
    }

    /// Dumps, fills owners and keeps the matches, each with its suspicion reasons.
    fn select(&self) -> anyhow::Result<Vec<(SocketEntry, Vec<Reason>)>> {
        let t = self.thresholds()?;
        let state = self.state()?;
        let mut all = liveness::diag::dump_tcp()?;
        all.retain(|e| {
            self.port
                .is_none_or(|p| e.local.port() == p || e.remote.port() == p)
                && self.local_port.is_none_or(|p| e.local.port() == p)
                && self.remote_port.is_none_or(|p| e.remote.port() == p)
                && state.is_none_or(|s| e.state == s)
        });
        liveness::diag::fill_owners(&mut all);
        Ok(all
            .into_iter()
            .filter(|e| self.pid.is_none_or(|p| e.owners.iter().any(|o| o.pid == p)))
            .map(|e| {
                let r = judge(&e, &t);
                (e, r)
            })
            .filter(|(_, r)| !self.dead || !r.is_empty())
            .collect())
    }
}

/// JSON view of per-socket keepalive / user timeout settings (stable, documented).
pub(super) fn liveness_json(l: &SocketLiveness) -> Value {
    json!({
        "keepalive": l.keepalive.is_some(),
        "idle_s": l.keepalive.map(|k| k.idle.as_secs()),
        "interval_s": l.keepalive.map(|k| k.interval.as_secs()),
        "count": l.keepalive.map(|k| k.count),
        "user_timeout_ms": l.user_timeout.map(|u| u.as_millis() as u64),
    })
}

/// One-line human view of per-socket settings.
pub(super) fn liveness_text(l: Option<&SocketLiveness>) -> String {
    let Some(l) = l else {
        return "unknown".into();
    };
    let mut s = match l.keepalive {
        Some(k) => format!(
            "keepalive {}/{}/{}",
            k.idle.as_secs(),
            k.interval.as_secs(),
            k.count
        ),
        None => "keepalive off".into(),
    };
    if let Some(u) = l.user_timeout {
        s.push_str(&format!(", user timeout {} ms", u.as_millis()));
    }
    s
}

fn timer_json(t: &Option<SocketTimer>) -> Value {
    match t {
        None => Value::Null,
        Some(t) => serde_json::to_value(t).unwrap_or(Value::Null),
    }
}

fn entry_json(e: &SocketEntry, reasons: &[Reason]) -> Value {
    let info = e.tcp_info.as_ref().map(|i| {
        json!({
            "rtt_us": i.rtt_us, "rttvar_us": i.rttvar_us, "rto_us": i.rto_us,
            "unacked": i.unacked, "retransmits": i.retransmits, "backoff": i.backoff,
            "probes": i.probes, "total_retrans": i.total_retrans,
            "last_data_sent_ms": i.last_data_sent_ms, "last_data_recv_ms": i.last_data_recv_ms,
            "last_ack_recv_ms": i.last_ack_recv_ms, "notsent_bytes": i.notsent_bytes,
            "bytes_acked": i.bytes_acked, "bytes_received": i.bytes_received,
        })
    });
    json!({
        "local": e.local.to_string(),
        "remote": e.remote.to_string(),
        "state": e.state.ss_name(),
        "inode": e.inode,
        "uid": e.uid,
        "cookie": e.cookie,
        "recv_queue": e.recv_queue,
        "send_queue": e.send_queue,
        "owners": e.owners.iter().map(|o| json!({"pid": o.pid, "fd": o.fd, "command": o.command})).collect::<Vec<_>>(),
        "keepalive": e.keepalive_on(),
        "socket_options": e.liveness.as_ref().map(liveness_json),
        "timer": timer_json(&e.timer),
        "tcp_info": info,
        "suspect": !reasons.is_empty(),
        "reasons": reasons.iter().map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
            v["text"] = json!(r.to_string());
            v
        }).collect::<Vec<_>>(),
    })
}

fn ms(v: u32) -> String {
    secs(Duration::from_millis(u64::from(v)))
}

fn print_entry(e: &SocketEntry, reasons: &[Reason]) {
    let owners = if e.owners.is_empty() {
        "owner unknown".to_string()
    } else {
        e.owners
            .iter()
            .map(|o| format!("{}[{}] fd {}", o.command, o.pid, o.fd))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let flag = if reasons.is_empty() { " " } else { "!" };
    println!(
        "{flag} {:<11} {:<22} → {:<22} {owners}",
        e.state.ss_name(),
        e.local,
        e.remote
    );
    if e.state == TcpState::Listen {
        if let Some(l) = &e.liveness {
            println!("      accepted sockets inherit: {}", liveness_text(Some(l)));
        }
        return;
    }
    let ka = match (e.keepalive_on(), &e.liveness) {
        (_, Some(l)) => liveness_text(Some(l)),
        (Some(true), None) => "keepalive on".into(),
        (Some(false), None) => "keepalive off".into(),
        (None, None) => "keepalive unknown".into(),
    };
    let timer = match &e.timer {
        None => "no timer".to_string(),
        Some(SocketTimer::Keepalive { remaining_ms }) => {
            format!(
                "keepalive timer in {}",
                secs(Duration::from_millis(*remaining_ms))
            )
        }
        Some(SocketTimer::Retransmit {
            remaining_ms,
            count,
        }) => format!(
            "retransmit timer in {} ({count} retransmits)",
            secs(Duration::from_millis(*remaining_ms))
        ),
        Some(SocketTimer::ZeroWindowProbe { remaining_ms }) => format!(
            "zero-window probe in {}",
            secs(Duration::from_millis(*remaining_ms))
        ),
        Some(SocketTimer::TimeWait) => "time-wait".into(),
    };
    println!(
        "      {ka}; {timer}; queues recv {} send {}",
        e.recv_queue, e.send_queue
    );
    if let Some(i) = &e.tcp_info {
        println!(
            "      last recv {} ago, last ack {} ago, last send {} ago; unacked {}, retransmits {}, backoff {}, probes {}, rtt {:.1} ms, rto {}",
            ms(i.last_data_recv_ms),
            ms(i.last_ack_recv_ms),
            ms(i.last_data_sent_ms),
            i.unacked,
            i.retransmits,
            i.backoff,
            i.probes,
            f64::from(i.rtt_us) / 1000.0,
            ms(i.rto_us / 1000)
        );
    }
    for r in reasons {
        println!("      SUSPECT {r}");
    }
}

fn print_list(list: &[(SocketEntry, Vec<Reason>)], json_out: bool) -> anyhow::Result<()> {
    if json_out {
        let v = json!({
            "schema": SCHEMA,
            "netns": std::fs::read_link("/proc/self/ns/net").map(|p| p.display().to_string()).ok(),
            "sockets": list.iter().map(|(e, r)| entry_json(e, r)).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for (e, r) in list {
            print_entry(e, r);
        }
        let n = list.iter().filter(|(_, r)| !r.is_empty()).count();
        println!("{} socket(s), {n} suspected dead (marked !).", list.len());
    }
    Ok(())
}

/// Runs `sockets` (and `sockets kill`).
pub(crate) fn run_sockets(args: SocketsArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        None => {
            let list = args.filter.select()?;
            print_list(&list, args.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(SocketsAction::Kill(k)) => kill(k, args.json),
        Some(SocketsAction::Probe(p)) => super::probe::run_probe(p, args.json),
    }
}

fn kill(k: KillArgs, json_out: bool) -> anyhow::Result<ExitCode> {
    let f = &k.filter;
    if f.is_empty() {
        bail!("refusing to kill every socket: give --port, --pid, --state and/or --dead");
    }
    let targets: Vec<_> = f
        .select()?
        .into_iter()
        .filter(|(e, _)| e.state != TcpState::TimeWait)
        .collect();
    if targets.is_empty() {
        println!("No matching socket.");
        return Ok(ExitCode::SUCCESS);
    }
    if !k.yes {
        println!("Would destroy:");
        print_list(&targets, false)?;
        print!("Destroy these {} socket(s)? [y/N] ", targets.len());
        std::io::stdout().flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            println!("Nothing destroyed.");
            return Ok(ExitCode::from(1));
        }
    }
    let mut errors = Vec::new();
    for (e, _) in &targets {
        if let Err(err) = liveness::diag::destroy(e) {
            errors.push(format!("{} → {}: {err}", e.local, e.remote));
        }
    }
    // Re-list: the kernel's word, not ours, decides what is gone.
    let after = liveness::diag::dump_tcp()?;
    let survivors: Vec<_> = targets
        .iter()
        .filter(|(e, _)| {
            after
                .iter()
                .any(|a| a.cookie == e.cookie && !matches!(a.state, TcpState::Close))
        })
        .map(|(e, _)| e)
        .collect();
    let killed = targets.len() - survivors.len();
    if json_out {
        let v = json!({
            "destroyed": targets.iter().filter(|(e, _)| !survivors.iter().any(|s| s.cookie == e.cookie))
                .map(|(e, r)| entry_json(e, r)).collect::<Vec<_>>(),
            "survived": survivors.iter().map(|e| entry_json(e, &[])).collect::<Vec<_>>(),
            "errors": errors,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for (e, _) in &targets {
            let gone = !survivors.iter().any(|s| s.cookie == e.cookie);
            println!(
                "{} {} {} → {}",
                if gone { "destroyed" } else { "SURVIVED " },
                e.state.ss_name(),
                e.local,
                e.remote
            );
        }
        for err in &errors {
            eprintln!("lifeline: {err}");
        }
        println!(
            "{killed} of {} socket(s) destroyed (confirmed by re-listing).",
            targets.len()
        );
    }
    if !survivors.is_empty() {
        bail!(
            "{} socket(s) still exist: the kernel refused SOCK_DESTROY (needs root / CAP_NET_ADMIN \
             in this network namespace and CONFIG_INET_DIAG_DESTROY=y)",
            survivors.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
