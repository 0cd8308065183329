//! Skipping a test loudly. libtest hides the output of a passing test, so a test that returns
//! early would look green; every skip therefore goes through [`skip`], which
//!
//! * prints `SKIPPED <test>: <reason>` on stderr (seen with `--nocapture`),
//! * appends the same line to the file named by `LIFELINE_SKIP_LOG`, which `scripts/test.sh`
//!   counts and prints at the end, where a person sees it,
//! * and panics when `LIFELINE_REQUIRE_ROOT=1` (set by `.ci/run`), so under CI a skip is a
//!   failure.

use std::io::Write;
use std::process::Command;

/// Environment variable that turns every skip into a failure.
pub const REQUIRE_ENV: &str = "LIFELINE_REQUIRE_ROOT";
/// Environment variable naming the file every skip is appended to.
pub const LOG_ENV: &str = "LIFELINE_SKIP_LOG";

/// Records that `test` is skipped because of `reason`; panics under `LIFELINE_REQUIRE_ROOT=1`.
/// Returns `false` so callers can write `if !ok { return skip(..) }`-style guards.
pub fn skip(test: &str, reason: &str) -> bool {
    let line = format!("SKIPPED {test}: {reason}");
    eprintln!("{line}");
    if let Some(path) = std::env::var_os(LOG_ENV)
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
    if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") {
        panic!("{line} — and {REQUIRE_ENV}=1 forbids skipping");
    }
    false
}

/// True when running as root; otherwise a [`skip`].
pub fn require_root(test: &str) -> bool {
    rustix::process::geteuid().is_root()
        || skip(
            test,
            "needs root (network namespaces, nftables, sysctls); CI runs it as root",
        )
}

/// Whether `tool` is on the PATH; otherwise a [`skip`].
pub fn require_tool(test: &str, tool: &str) -> bool {
    have_tool(tool)
        || skip(
            test,
            &format!("{tool} is not installed (scripts/test.sh installs it)"),
        )
}

/// Whether `tool` is on the PATH (no skip recorded).
pub fn have_tool(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run only by [`skip_fails_under_require_root`], in a child process.
    #[test]
    #[ignore = "run as a child process by skip_fails_under_require_root"]
    fn child_that_skips() {
        skip("child_that_skips", "demonstration");
    }

    #[test]
    fn skip_fails_under_require_root() {
        let exe = std::env::current_exe().unwrap();
        let log = std::env::temp_dir().join(format!("skiplog-{}", std::process::id()));
        let run = |require: &str| {
            Command::new(&exe)
                .args(["--exact", "skip::tests::child_that_skips", "--ignored"])
                .env(REQUIRE_ENV, require)
                .env(LOG_ENV, &log)
                .output()
                .unwrap()
        };
        assert!(
            run("0").status.success(),
            "a skip passes without {REQUIRE_ENV}"
        );
        let strict = run("1");
        assert!(
            !strict.status.success(),
            "a skip fails under {REQUIRE_ENV}=1"
        );
        let logged = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        assert_eq!(
            logged
                .matches("SKIPPED child_that_skips: demonstration")
                .count(),
            2
        );
    }
}
