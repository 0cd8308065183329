//! A real nginx-rtmp (Debian's `nginx` + `libnginx-mod-rtmp`) for tests that compare Lifeline
//! with it or act on it from outside: one process (`master_process off`, so the pid started is
//! the server holding every connection), config, logs and pid file in a temp dir, listening
//! inside a test namespace, killed by its pid on drop.

use crate::process::ChildGuard;
use crate::rtmp::TempDir;
use crate::{NetNs, skip};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where Debian's libnginx-mod-rtmp puts the module.
pub const MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

static INSTALL: Mutex<()> = Mutex::new(());

fn installed() -> bool {
    skip::have_tool("nginx") && Path::new(MODULE).exists()
}

/// Whether nginx and the RTMP module are there, installing them with apt-get when missing and
/// root (CI's fresh Debian). Otherwise a [`skip`](crate::skip()) for `test`. Installing never
/// starts the system's nginx (a policy-rc.d that denies service starts is in place meanwhile).
pub fn require(test: &str) -> bool {
    let _one_at_a_time = INSTALL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if installed() {
        return true;
    }
    if !rustix::process::geteuid().is_root() {
        return skip(
            test,
            "nginx + libnginx-mod-rtmp are not installed, and only root can install them",
        );
    }
    let script = r#"set -e
policy=/usr/sbin/policy-rc.d; drop=0
if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; drop=1; fi
trap '[ "$drop" = 1 ] && rm -f "$policy"' EXIT
apt-get -o DPkg::Lock::Timeout=600 update -q
DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q nginx libnginx-mod-rtmp
"#;
    let out = Command::new("sh").args(["-c", script]).output();
    match out {
        Ok(o) if o.status.success() && installed() => true,
        Ok(o) => skip(
            test,
            &format!(
                "installing nginx + libnginx-mod-rtmp failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
        ),
        Err(e) => skip(test, &format!("cannot run apt-get: {e}")),
    }
}

/// A running nginx-rtmp, killed on drop.
#[derive(Debug)]
pub struct Nginx {
    /// Where it listens (inside its namespace).
    pub addr: SocketAddr,
    child: ChildGuard,
    log: PathBuf,
    dir: TempDir,
}

impl Nginx {
    /// Starts nginx-rtmp inside `ns`, listening on `listen`, with module defaults and one
    /// application `live` (`live on;` plus `app_extra`, e.g. `push rtmp://…;` for a relay).
    /// The error log is at level `info`, which records each connection, publish and refusal.
    pub fn start_in(ns: &NetNs, listen: SocketAddr, app_extra: &str) -> std::io::Result<Self> {
        Self::start(Some(ns), listen, app_extra)
    }

    /// [`Self::start_in`] in the test's own network namespace (e.g. on a loopback port).
    pub fn start_local(listen: SocketAddr, app_extra: &str) -> std::io::Result<Self> {
        Self::start(None, listen, app_extra)
    }

    fn start(ns: Option<&NetNs>, listen: SocketAddr, app_extra: &str) -> std::io::Result<Self> {
        let dir = TempDir::new("nginx-rtmp-test");
        let p = dir.path();
        let log = p.join("error.log");
        let conf = p.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "load_module {MODULE};\n\
                 daemon off;\n\
                 master_process off;\n\
                 worker_processes 1;\n\
                 pid {pid};\n\
                 error_log {log} info;\n\
                 events {{ worker_connections 1024; }}\n\
                 rtmp {{\n  server {{\n    listen {listen};\n    application live {{\n      live on;\n      {app_extra}\n    }}\n  }}\n}}\n",
                pid = p.join("nginx.pid").display(),
                log = log.display(),
            ),
        )?;
        let mut cmd = ns.map_or_else(|| Command::new("nginx"), |ns| ns.command("nginx"));
        cmd.arg("-p")
            .arg(p)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(&log);
        let child = ChildGuard::spawn_logged(&mut cmd, &p.join("stderr.log"))?;
        let mut nginx = Self {
            addr: listen,
            child,
            log,
            dir,
        };
        let port = format!("sport = :{}", listen.port());
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let ss = ["ss", "-Hltn", &port];
            let listening = match ns {
                Some(ns) => ns.run(&ss),
                None => crate::run(Command::new("ss").args(&ss[1..])),
            }
            .is_ok_and(|o| !o.stdout.is_empty());
            if listening {
                return Ok(nginx);
            }
            if !nginx.child.is_running() || Instant::now() >= end {
                return Err(std::io::Error::other(format!(
                    "nginx did not start listening on {listen}: {}{}",
                    nginx.log_text(),
                    std::fs::read_to_string(nginx.dir.path().join("stderr.log"))
                        .unwrap_or_default()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `rtmp://ADDR/PATH`.
    pub fn url(&self, path: &str) -> String {
        format!("rtmp://{}/{path}", self.addr)
    }

    /// The server's pid (the only nginx process).
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Whether it still runs.
    pub fn is_running(&mut self) -> bool {
        self.child.is_running()
    }

    /// The process, e.g. to freeze it (SIGSTOP) and thaw it.
    pub fn process(&self) -> &ChildGuard {
        &self.child
    }

    /// ESTABLISHED TCP connections on its listening port, seen from the test's namespace
    /// (a server started with [`Self::start_local`]).
    pub fn established(&self) -> usize {
        let filter = format!("sport = :{}", self.addr.port());
        crate::run(Command::new("ss").args(["-Htn", "state", "established", &filter]))
            .map_or(0, |o| String::from_utf8_lossy(&o.stdout).lines().count())
    }

    /// A scratch directory that lives as long as the server.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The error log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Log lines so far (a mark for [`Self::wait_line`]).
    pub fn log_lines(&self) -> usize {
        self.log_text().lines().count()
    }

    /// Waits for a line after the first `skip` for which `pred` holds.
    pub fn wait_line(
        &self,
        skip: usize,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(l) = self.log_text().lines().skip(skip).find(|l| pred(l)) {
                return Some(l.to_owned());
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The connection numbers (`*N`) nginx gave to clients from `ip`, after line `skip`.
    pub fn connections_from(&self, skip: usize, ip: &str) -> Vec<u64> {
        let needle = format!("client connected '{ip}'");
        self.log_text()
            .lines()
            .skip(skip)
            .filter(|l| l.contains(&needle))
            .filter_map(connection_id)
            .collect()
    }
}

/// The `*N` connection number of an nginx log line.
pub fn connection_id(line: &str) -> Option<u64> {
    let rest = &line[line.find(" *")? + 2..];
    rest.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_ids() {
        let l =
            "2026/12/01 19:36:42 [error] 3035#3035: *2 live: already publishing, client: 127.0.0.1";
        assert_eq!(connection_id(l), Some(2));
        assert_eq!(connection_id("2026/12/01 [notice] 1#1: nginx/1.22.1"), None);
    }
}
