//! `lifeline sockets probe`: make the kernel probe every matched ESTABLISHED socket now, say
//! which peers answered within the window, restore every option, and optionally destroy the
//! dead. The decisions are `liveness::probe`'s; this file borrows, arms, samples and restores.

use super::probe_report::{self, Item, KillResult, Outcome, Unknown};
use anyhow::{Context, bail};
use clap::Args;
use liveness::diag::{Owner, SocketEntry};
use liveness::probe::{self, KeepaliveOptions, Probe, SockOpt, Step};
use liveness::{LivenessError, TcpState};
use std::os::fd::OwnedFd;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// `CAP_NET_ADMIN` (SOCK_DESTROY) and `CAP_SYS_PTRACE` (pidfd_getfd, /proc/PID/fd of others).
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_PTRACE: u32 = 19;

/// Arguments of `sockets probe`.
#[derive(Debug, Args)]
pub(crate) struct ProbeArgs {
    /// Local or remote port.
    #[arg(long)]
    port: Option<u16>,
    /// Local port only, e.g. the server's listening port.
    #[arg(long)]
    local_port: Option<u16>,
    /// Remote port only.
    #[arg(long)]
    remote_port: Option<u16>,
    /// Only sockets held by this process.
    #[arg(long)]
    pid: Option<i32>,
    /// How long a peer has to answer ("3s", "500ms"); raised to 3 × a socket's RTT when shorter.
    #[arg(long, default_value = "3s", value_parser = parse_within)]
    within: Duration,
    /// Destroy the sockets found dead (SOCK_DESTROY; needs CAP_NET_ADMIN).
    #[arg(long)]
    kill: bool,
    /// With --kill: do not ask for confirmation.
    #[arg(long, short = 'y', requires = "kill")]
    yes: bool,
    /// Machine-readable output (schema in docs/ops.md).
    #[arg(long)]
    json: bool,
}

fn parse_within(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e}"))?;
    if !(probe::MIN_WITHIN..=probe::MAX_WITHIN).contains(&d) {
        return Err(format!(
            "{s:?} is out of range ({}..={})",
            humantime::format_duration(probe::MIN_WITHIN),
            humantime::format_duration(probe::MAX_WITHIN)
        ));
    }
    Ok(d)
}

/// Whether this process has capability `bit` in its effective set.
fn has_cap(bit: u32) -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let hex = s.lines().find_map(|l| l.strip_prefix("CapEff:"))?.trim();
            u64::from_str_radix(hex, 16).ok()
        })
        .is_some_and(|caps| caps & (1 << bit) != 0)
}

/// SIGINT / SIGTERM / SIGHUP only raise a flag while options are armed (the watch loop sees it
/// within one poll and restores); once everything is restored they act as usual again.
struct Signals {
    caught: Arc<AtomicUsize>,
    restored: Arc<AtomicBool>,
}

impl Signals {
    const WATCHED: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

    fn install() -> anyhow::Result<Self> {
        let s = Self {
            caught: Arc::new(AtomicUsize::new(0)),
            restored: Arc::new(AtomicBool::new(false)),
        };
        for sig in Self::WATCHED {
            let n = usize::try_from(sig).unwrap_or(0);
            signal_hook::flag::register_usize(sig, s.caught.clone(), n)
                .context("installing signal handlers")?;
            signal_hook::flag::register_conditional_default(sig, s.restored.clone())
                .context("installing signal handlers")?;
        }
        Ok(s)
    }

    fn caught(&self) -> Option<i32> {
        match self.caught.load(Ordering::SeqCst) {
            0 => None,
            n => i32::try_from(n).ok(),
        }
    }

    fn all_restored(&self) {
        self.restored.store(true, Ordering::SeqCst);
    }
}

/// A socket borrowed from its owner with `pidfd_getfd`. Whatever was armed on it is put back
/// by [`Borrowed::restore`], or on drop (error paths, panics) as a last resort.
struct Borrowed {
    dup: OwnedFd,
    restore: Vec<SockOpt>,
    armed: bool,
    label: String,
}

impl Borrowed {
    /// Sets `arm` in order. On failure only what was set is put back.
    fn arm(&mut self, arm: &[SockOpt]) -> Result<(), LivenessError> {
        self.armed = true;
        let (n, r) = SockOpt::apply_all(arm, &self.dup);
        if r.is_err() {
            let set = &arm[..n];
            self.restore
                .retain(|o| set.iter().any(|a| a.name() == o.name()));
        }
        r
    }

    /// Puts back every option armed; tries them all even when one fails.
    fn restore(&mut self) -> Result<(), LivenessError> {
        if !self.armed {
            return Ok(());
        }
        self.armed = false;
        let mut first_err = None;
        for o in &self.restore {
            if let Err(e) = o.apply(&self.dup) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for Borrowed {
    fn drop(&mut self) {
        if let Err(e) = self.restore() {
            eprintln!(
                "lifeline: restoring the options of {} failed: {e}",
                self.label
            );
        }
    }
}

/// A socket under probe.
struct Active {
    item: usize,
    sock: Borrowed,
    probe: Probe,
    start: Duration,
}

/// Matching ESTABLISHED sockets of this namespace with their owners.
fn select(a: &ProbeArgs) -> anyhow::Result<Vec<SocketEntry>> {
    if let Some(pid) = a.pid {
        let dir = format!("/proc/{pid}/fd");
        if let Err(e) = std::fs::read_dir(&dir) {
            match e.kind() {
                std::io::ErrorKind::NotFound => bail!("no process {pid}"),
                std::io::ErrorKind::PermissionDenied => bail!(
                    "{dir}: permission denied — seeing and borrowing another user's sockets \
                     needs ptrace access to process {pid} (root, or CAP_SYS_PTRACE); nothing \
                     was probed or changed"
                ),
                _ => return Err(e).with_context(|| format!("reading {dir}")),
            }
        }
    }
    let mut all = liveness::diag::dump_tcp()?;
    all.retain(|e| {
        e.state == TcpState::Established
            && a.port
                .is_none_or(|p| e.local.port() == p || e.remote.port() == p)
            && a.local_port.is_none_or(|p| e.local.port() == p)
            && a.remote_port.is_none_or(|p| e.remote.port() == p)
    });
    let owners = liveness::diag::socket_owners();
    for e in &mut all {
        if let Some(o) = owners.get(&u64::from(e.inode)) {
            e.owners = o.clone();
        }
    }
    if let Some(pid) = a.pid {
        all.retain(|e| e.owners.iter().any(|o| o.pid == pid));
        for e in &mut all {
            e.owners.sort_by_key(|o| o.pid != pid);
        }
    }
    Ok(all)
}

fn unknown_from(e: &LivenessError) -> Unknown {
    let gone = matches!(e, LivenessError::Process { source, .. }
        if matches!(source.raw_os_error(), Some(libc::ESRCH) | Some(libc::EBADF)));
    match e {
        LivenessError::PermissionDenied { .. } => Unknown::permission(e.to_string()),
        _ if gone => Unknown::gone(format!("the process went away: {e}")),
        _ => Unknown::error(e.to_string()),
    }
}

/// Borrows the socket from the first owner that lets us, checking it is still the socket we
/// matched (a pid or fd number may have been reused since the dump).
fn borrow(e: &SocketEntry) -> Result<(Owner, OwnedFd), Unknown> {
    if e.owners.is_empty() {
        return Err(if has_cap(CAP_SYS_PTRACE) {
            Unknown::gone("no process holds this socket any more".into())
        } else {
            Unknown::permission(
                "its owner is not visible: /proc/PID/fd of another user's process needs ptrace \
                 access (root, or CAP_SYS_PTRACE)"
                    .into(),
            )
        });
    }
    let mut last = None;
    for o in &e.owners {
        match liveness::pidfd::duplicate_fd(o.pid, o.fd) {
            Ok(dup) => match rustix::fs::fstat(&dup) {
                Ok(st) if st.st_ino == u64::from(e.inode) => return Ok((o.clone(), dup)),
                _ => {
                    last = Some(Unknown::gone(format!(
                        "fd {} of process {} is no longer this socket",
                        o.fd, o.pid
                    )))
                }
            },
            Err(err) => last = Some(unknown_from(&err)),
        }
    }
    Err(last.unwrap_or_else(|| Unknown::error("no owner to borrow from".into())))
}

/// Borrows, reads, plans and arms one socket; `Err` is its `unknown` outcome.
fn start_one(
    index: usize,
    e: &SocketEntry,
    item: &mut Item,
    within: Duration,
    epoch: Instant,
) -> Result<Active, Unknown> {
    let (owner, dup) = borrow(e)?;
    item.owner = Some(owner.clone());
    let label = format!(
        "{} → {} (pid {} fd {})",
        e.local, e.remote, owner.pid, owner.fd
    );
    let before = KeepaliveOptions::read(&dup).map_err(|e| unknown_from(&e))?;
    item.before = Some(before);
    let sample = liveness::tcp_info(&dup).map_err(|e| unknown_from(&e))?;
    let plan = probe::plan(&before, &sample, within).map_err(|err| match err {
        probe::PlanError::NotEstablished { .. } => Unknown::gone(err.to_string()),
        _ => Unknown::error(err.to_string()),
    })?;
    item.plan = Some(plan.clone());
    let mut sock = Borrowed {
        dup,
        restore: plan.restore.clone(),
        armed: false,
        label,
    };
    let start = epoch.elapsed();
    if let Err(err) = sock.arm(&plan.arm) {
        finish(item, &mut sock);
        return Err(unknown_from(&err));
    }
    Ok(Active {
        item: index,
        probe: Probe::new(plan, start, &sample),
        sock,
        start,
    })
}

/// Restores and reads back, recording both on the item.
fn finish(item: &mut Item, sock: &mut Borrowed) {
    if let Err(e) = sock.restore() {
        item.restore_error = Some(e.to_string());
    }
    item.after = KeepaliveOptions::read(&sock.dup).ok();
}

/// Samples every socket under probe each [`probe::POLL`] until all have a verdict (each is
/// restored as soon as it has one) or a signal arrives (returned; the rest stay armed for the
/// caller to restore at once).
fn watch(
    active: &mut Vec<Active>,
    items: &mut [Item],
    signals: &Signals,
    epoch: Instant,
) -> Option<i32> {
    while !active.is_empty() {
        std::thread::sleep(probe::POLL);
        if let Some(sig) = signals.caught() {
            return Some(sig);
        }
        let now = epoch.elapsed();
        active.retain_mut(|act| {
            let decided = match liveness::tcp_info(&act.sock.dup) {
                Err(e) => Outcome::Unknown(unknown_from(&e)),
                Ok(info) => match act.probe.step(now, &info) {
                    Step::Decided(v) => Outcome::Verdict(v),
                    Step::Reprobe => match act.probe.plan().reprobe.map(|o| o.apply(&act.sock.dup))
                    {
                        Some(Err(e)) => Outcome::Unknown(unknown_from(&e)),
                        _ => return true,
                    },
                    _ => return true,
                },
            };
            let item = &mut items[act.item];
            item.decided_after = Some(now.saturating_sub(act.start));
            item.forced_probes = act.probe.forced_probes();
            item.outcome = decided;
            finish(item, &mut act.sock);
            false
        });
    }
    None
}

/// Runs `sockets probe`.
/// `json` is `sockets --json`, which `sockets probe --json` may also be given as.
pub(crate) fn run_probe(mut a: ProbeArgs, json: bool) -> anyhow::Result<ExitCode> {
    a.json |= json;
    if a.kill && !has_cap(CAP_NET_ADMIN) {
        bail!(
            "--kill destroys sockets with SOCK_DESTROY, which needs CAP_NET_ADMIN in this network \
             namespace (run as root); nothing was probed or changed"
        );
    }
    let signals = Signals::install()?;
    crate::raise_nofile_limit();
    let t_begin = Instant::now();
    let entries = select(&a)?;
    let mut items: Vec<Item> = entries.iter().map(|_| Item::default()).collect();
    let epoch = Instant::now();
    let mut active: Vec<Active> = Vec::new();
    let mut interrupted = None;
    for (i, e) in entries.iter().enumerate() {
        if let Some(sig) = signals.caught() {
            interrupted = Some(sig);
            break;
        }
        match start_one(i, e, &mut items[i], a.within, epoch) {
            Ok(act) => active.push(act),
            Err(u) => items[i].outcome = Outcome::Unknown(u),
        }
    }
    if interrupted.is_none() {
        interrupted = watch(&mut active, &mut items, &signals, epoch);
    }
    // Interrupted: restore what is still armed before anything else.
    for mut act in active.drain(..) {
        let item = &mut items[act.item];
        let name = interrupted.map_or("a signal".into(), signal_name);
        item.outcome = Outcome::Unknown(Unknown::interrupted(format!(
            "interrupted by {name} before an answer"
        )));
        finish(item, &mut act.sock);
    }
    signals.all_restored();
    for (i, e) in entries.iter().enumerate() {
        if interrupted.is_some() && matches!(items[i].outcome, Outcome::Pending) {
            items[i].outcome = Outcome::Unknown(Unknown::interrupted(format!(
                "interrupted before {} → {} was probed",
                e.local, e.remote
            )));
        }
    }
    let report = probe_report::Report {
        entries: &entries,
        within: a.within,
        elapsed: t_begin.elapsed(),
        interrupted: interrupted.map(signal_name),
    };
    if !a.json {
        report.print_table(&items);
    }
    let kill = if a.kill && interrupted.is_none() {
        Some(kill_dead(&entries, &mut items, a.yes)?)
    } else {
        None
    };
    if a.json {
        let v = report.json(&items, kill.as_ref());
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if let Some(k) = &kill {
        report.print_kill(&items, k);
    }
    if let Some(sig) = interrupted {
        match report.unrestored(&items) {
            None => eprintln!(
                "lifeline: {}; every option armed was restored",
                signal_name(sig)
            ),
            Some(problem) => eprintln!("lifeline: {}; {problem}", signal_name(sig)),
        }
        return Ok(ExitCode::from(u8::try_from(128 + sig).unwrap_or(1)));
    }
    report.exit(&items, kill.as_ref())
}

fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGHUP => "SIGHUP".into(),
        n => format!("signal {n}"),
    }
}

fn kill_dead(entries: &[SocketEntry], items: &mut [Item], yes: bool) -> anyhow::Result<KillResult> {
    let dead: Vec<usize> = (0..items.len()).filter(|&i| items[i].is_dead()).collect();
    let mut r = KillResult::default();
    if dead.is_empty() {
        return Ok(r);
    }
    if !yes {
        use std::io::{BufRead, Write};
        eprint!("Destroy the {} dead socket(s)? [y/N] ", dead.len());
        std::io::stderr().flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            r.declined = true;
            return Ok(r);
        }
    }
    for &i in &dead {
        if let Err(e) = liveness::diag::destroy(&entries[i]) {
            r.errors
                .push(format!("{} → {}: {e}", entries[i].local, entries[i].remote));
        }
    }
    // The kernel's word, not ours, decides what is gone.
    let after = liveness::diag::dump_tcp()?;
    for &i in &dead {
        let alive = after
            .iter()
            .any(|a| a.cookie == entries[i].cookie && a.state != TcpState::Close);
        items[i].killed = Some(!alive);
        r.survivors += usize::from(alive);
    }
    Ok(r)
}
