//! What `sockets probe` prints: the human table, the `lifeline.probe/1` JSON document
//! (docs/ops.md), and the exit status.

use super::secs;
use anyhow::bail;
use liveness::diag::{Owner, SocketEntry};
use liveness::probe::{Answer, KeepaliveOptions, Mode, Plan, Verdict};
use serde_json::{Value, json};
use std::process::ExitCode;
use std::time::Duration;

/// Version of the `sockets probe --json` document; bumped on incompatible change.
const SCHEMA: &str = "lifeline.probe/1";

/// Why a socket got no verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// A right is missing (the text names it).
    Permission,
    /// The process or the connection went away meanwhile.
    Gone,
    /// SIGINT / SIGTERM / SIGHUP.
    Interrupted,
    /// Anything else the kernel refused.
    Error,
}

impl Cause {
    fn name(self) -> &'static str {
        match self {
            Self::Permission => "permission",
            Self::Gone => "gone",
            Self::Interrupted => "interrupted",
            Self::Error => "error",
        }
    }
}

/// An `unknown` outcome.
#[derive(Debug, Clone)]
pub(crate) struct Unknown {
    pub(crate) cause: Cause,
    pub(crate) text: String,
}

impl Unknown {
    pub(crate) fn permission(text: String) -> Self {
        Self {
            cause: Cause::Permission,
            text,
        }
    }
    pub(crate) fn gone(text: String) -> Self {
        Self {
            cause: Cause::Gone,
            text,
        }
    }
    pub(crate) fn interrupted(text: String) -> Self {
        Self {
            cause: Cause::Interrupted,
            text,
        }
    }
    pub(crate) fn error(text: String) -> Self {
        Self {
            cause: Cause::Error,
            text,
        }
    }
}

/// Where a socket's probe stands.
#[derive(Debug, Clone, Default)]
pub(crate) enum Outcome {
    /// Not started or not finished.
    #[default]
    Pending,
    /// The watch decided.
    Verdict(Verdict),
    /// No verdict.
    Unknown(Unknown),
}

/// Everything recorded about one matched socket.
#[derive(Debug, Default)]
pub(crate) struct Item {
    pub(crate) owner: Option<Owner>,
    pub(crate) before: Option<KeepaliveOptions>,
    pub(crate) after: Option<KeepaliveOptions>,
    pub(crate) plan: Option<Plan>,
    pub(crate) outcome: Outcome,
    pub(crate) decided_after: Option<Duration>,
    pub(crate) forced_probes: u32,
    pub(crate) restore_error: Option<String>,
    pub(crate) killed: Option<bool>,
}

impl Item {
    pub(crate) fn is_dead(&self) -> bool {
        matches!(self.outcome, Outcome::Verdict(Verdict::Dead(_)))
    }

    fn verdict(&self) -> &'static str {
        match &self.outcome {
            Outcome::Verdict(Verdict::Alive { .. }) => "alive",
            Outcome::Verdict(Verdict::Dead(_)) => "dead",
            _ => "unknown",
        }
    }

    /// The `unknown` reason, also for a connection that closed during the probe.
    fn unknown(&self) -> Option<Unknown> {
        match &self.outcome {
            Outcome::Unknown(u) => Some(u.clone()),
            Outcome::Verdict(Verdict::Gone { state }) => Some(Unknown::gone(format!(
                "the connection became {} during the probe, without an answer",
                state.ss_name()
            ))),
            Outcome::Pending => Some(Unknown::error("not probed".into())),
            Outcome::Verdict(_) => None,
        }
    }

    fn changed(&self) -> bool {
        self.plan.as_ref().is_some_and(|p| !p.arm.is_empty())
    }

    /// Whether the options read back as before (None: nothing was borrowed).
    fn restored(&self) -> Option<bool> {
        let before = self.before?;
        Some(self.restore_error.is_none() && self.after == Some(before))
    }
}

fn options_json(o: &KeepaliveOptions) -> Value {
    json!({
        "keepalive": o.keepalive, "idle_s": o.idle_s, "interval_s": o.interval_s,
        "count": o.count, "user_timeout_ms": o.user_timeout_ms,
    })
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn answer_text(a: Answer) -> &'static str {
    match a {
        Answer::Data => "data from the peer",
        Answer::AckedData => "the peer acknowledged our data",
        Answer::Ack => "the peer answered a probe",
    }
}

/// What `--kill` did.
#[derive(Debug, Default)]
pub(crate) struct KillResult {
    /// Asked and refused.
    pub(crate) declined: bool,
    /// Dead sockets that still exist after SOCK_DESTROY (re-listed).
    pub(crate) survivors: usize,
    /// Errors the kernel gave.
    pub(crate) errors: Vec<String>,
}

/// The probe's results, for printing.
pub(crate) struct Report<'a> {
    pub(crate) entries: &'a [SocketEntry],
    pub(crate) within: Duration,
    pub(crate) elapsed: Duration,
    pub(crate) interrupted: Option<String>,
}

impl Report<'_> {
    fn socket_json(e: &SocketEntry, it: &Item) -> Value {
        let plan = it.plan.as_ref();
        let (answered, answer, evidence) = match &it.outcome {
            Outcome::Verdict(Verdict::Alive {
                answered_after_ms,
                answer,
            }) => (
                Some(*answered_after_ms),
                serde_json::to_value(answer).ok(),
                None,
            ),
            Outcome::Verdict(Verdict::Dead(ev)) => {
                let mut v = serde_json::to_value(ev).unwrap_or(Value::Null);
                v["text"] = json!(ev.to_string());
                (None, None, Some(v))
            }
            _ => (None, None, None),
        };
        json!({
            "local": e.local.to_string(),
            "remote": e.remote.to_string(),
            "inode": e.inode,
            "cookie": e.cookie,
            "owner": it.owner.as_ref().map(|o| json!({"pid": o.pid, "fd": o.fd, "command": o.command})),
            "verdict": it.verdict(),
            "mode": plan.map(|p| p.mode),
            "window_ms": plan.map(|p| ms(p.window)),
            "window_raised": plan.and_then(|p| p.raised).map(|r| {
                let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
                v["text"] = json!(r.to_string());
                v
            }),
            "decided_after_ms": it.decided_after.map(ms),
            "answered_after_ms": answered,
            "answer": answer,
            "evidence": evidence,
            "unknown": it.unknown().map(|u| json!({"cause": u.cause.name(), "text": u.text})),
            "options_before": it.before.as_ref().map(options_json),
            "armed": plan.map(|p| p.arm.clone()).unwrap_or_default(),
            "options_after": it.after.as_ref().map(options_json),
            "restored": it.restored(),
            "restore_error": it.restore_error,
            "killed": it.killed,
        })
    }

    fn counts(items: &[Item]) -> (usize, usize, usize) {
        let n = |v: &str| items.iter().filter(|i| i.verdict() == v).count();
        (n("alive"), n("dead"), n("unknown"))
    }

    /// The `lifeline.probe/1` document.
    pub(crate) fn json(&self, items: &[Item], kill: Option<&KillResult>) -> Value {
        let (alive, dead, unknown) = Self::counts(items);
        json!({
            "schema": SCHEMA,
            "netns": std::fs::read_link("/proc/self/ns/net").map(|p| p.display().to_string()).ok(),
            "within_ms": ms(self.within),
            "elapsed_ms": ms(self.elapsed),
            "interrupted": self.interrupted,
            "summary": {"alive": alive, "dead": dead, "unknown": unknown},
            "sockets": self.entries.iter().zip(items).map(|(e, i)| Self::socket_json(e, i)).collect::<Vec<_>>(),
            "kill": kill.map(|k| json!({
                "declined": k.declined,
                "destroyed": items.iter().filter(|i| i.killed == Some(true)).count(),
                "survived": k.survivors,
                "errors": k.errors,
            })),
        })
    }

    /// The human table.
    pub(crate) fn print_table(&self, items: &[Item]) {
        if items.is_empty() {
            println!("No matching ESTABLISHED socket in this network namespace.");
            return;
        }
        println!(
            "{:<7}  {:<22} {:<22} {:<22} {:>8}  DETAIL",
            "VERDICT", "LOCAL", "REMOTE", "OWNER", "AFTER"
        );
        let mut notes = Vec::new();
        for (e, it) in self.entries.iter().zip(items) {
            let owner = it.owner.as_ref().map_or_else(
                || "-".to_string(),
                |o| format!("{}[{}] fd {}", o.command, o.pid, o.fd),
            );
            let mode = match it.plan.as_ref().map(|p| p.mode) {
                Some(Mode::Armed) => " (idle: probed)",
                Some(Mode::Watched) => " (data in flight: watched)",
                None => "",
            };
            let (after, detail) = match (&it.outcome, it.unknown()) {
                (
                    Outcome::Verdict(Verdict::Alive {
                        answered_after_ms,
                        answer,
                    }),
                    _,
                ) => (
                    secs(Duration::from_millis(*answered_after_ms)),
                    format!("{}{mode}", answer_text(*answer)),
                ),
                (Outcome::Verdict(Verdict::Dead(ev)), _) => (
                    it.decided_after.map_or("-".into(), secs),
                    format!("{ev}{mode}"),
                ),
                (_, Some(u)) => ("-".into(), u.text),
                (_, None) => ("-".into(), String::new()),
            };
            println!(
                "{:<7}  {:<22} {:<22} {:<22} {:>8}  {detail}",
                it.verdict(),
                e.local.to_string(),
                e.remote.to_string(),
                owner,
                after
            );
            if let Some(p) = &it.plan
                && let Some(r) = p.raised
            {
                notes.push(format!(
                    "  window for {} → {} raised to {}: {r}",
                    e.local,
                    e.remote,
                    secs(p.window)
                ));
            }
            if it.changed() && it.restored() == Some(false) {
                notes.push(format!(
                    "  OPTIONS NOT RESTORED on {} → {}: {}",
                    e.local,
                    e.remote,
                    it.restore_error
                        .as_deref()
                        .unwrap_or("they read back differently")
                ));
            }
        }
        for n in notes {
            println!("{n}");
        }
        let (alive, dead, unknown) = Self::counts(items);
        let armed = items.iter().filter(|i| i.changed()).count();
        let restored = items
            .iter()
            .filter(|i| i.changed() && i.restored() == Some(true))
            .count();
        println!(
            "{} socket(s): {alive} alive, {dead} dead, {unknown} unknown (window {}, took {}). \
             Options armed on {armed}, restored and read back unchanged on {restored}.",
            items.len(),
            secs(self.within),
            secs(Duration::from_millis(ms(self.elapsed)))
        );
    }

    /// What `--kill` did, for humans.
    pub(crate) fn print_kill(&self, items: &[Item], k: &KillResult) {
        if k.declined {
            println!("Nothing destroyed.");
            return;
        }
        for (e, it) in self.entries.iter().zip(items) {
            if let Some(gone) = it.killed {
                println!(
                    "{} {} → {}",
                    if gone { "destroyed" } else { "SURVIVED " },
                    e.local,
                    e.remote
                );
            }
        }
        for err in &k.errors {
            eprintln!("lifeline: {err}");
        }
    }

    /// What went wrong restoring, if anything did.
    pub(crate) fn unrestored(&self, items: &[Item]) -> Option<String> {
        let bad: Vec<_> = items
            .iter()
            .filter(|i| i.changed() && i.restored() != Some(true))
            .collect();
        let first = bad.first()?;
        Some(format!(
            "{} socket(s) could not be restored exactly: {}",
            bad.len(),
            first
                .restore_error
                .as_deref()
                .unwrap_or("options read back differently")
        ))
    }

    /// Exit status: 0 when every matched socket got a verdict (or went away meanwhile) and
    /// everything armed was restored; an error naming the problem otherwise.
    pub(crate) fn exit(
        &self,
        items: &[Item],
        kill: Option<&KillResult>,
    ) -> anyhow::Result<ExitCode> {
        if let Some(problem) = self.unrestored(items) {
            bail!("{problem}");
        }
        if let Some(k) = kill {
            if k.declined {
                return Ok(ExitCode::from(1));
            }
            if k.survivors > 0 {
                bail!(
                    "{} dead socket(s) still exist: the kernel refused SOCK_DESTROY (needs \
                     CAP_NET_ADMIN in this network namespace and CONFIG_INET_DIAG_DESTROY=y)",
                    k.survivors
                );
            }
        }
        let failed: Vec<Unknown> = items
            .iter()
            .filter_map(Item::unknown)
            .filter(|u| matches!(u.cause, Cause::Permission | Cause::Error))
            .collect();
        if let Some(first) = failed.first() {
            bail!(
                "{} of {} socket(s) could not be probed: {}",
                failed.len(),
                items.len(),
                first.text
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
