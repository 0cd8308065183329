//! Shared helpers for Lifeline's tests. Everything a helper starts is undone on drop, also when
//! the test fails.
//!
//! * [`require_root`], [`require_tool`], [`skip`]: skip loudly (a failure under CI);
//! * [`ChildGuard`]: a child process killed *by its pid* on drop;
//! * [`NetNs`]: a throw-away network namespace with a unique name, deleted on drop, in which
//!   commands, child processes and even threads of the test (for sockets) can run;
//! * [`Lan`]: hosts on 192.0.2.0/24 joined by veth pairs to a bridge namespace (no default route);
//! * [`NftDrop`]: nftables rules that black-hole a host or a port, or drop a share of packets.

// Test helpers: a failing setup step should abort the test with its message, so unwrap/expect
// are acceptable here (the library API still returns io::Result where callers may recover).
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod abuse;
pub mod client;
pub mod hookserver;
pub mod http;
pub mod nginx;
pub mod player;
pub mod process;
pub mod rtmp;
pub mod skip;
pub mod static_http;
pub mod webdriver;

pub use process::ChildGuard;
pub use skip::{require_root, require_tool, skip};

use std::io;
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Runs a command, failing with its stderr when it exits non-zero.
pub fn run(cmd: &mut Command) -> io::Result<Output> {
    let out = cmd.stdin(Stdio::null()).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out)
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique across parallel tests and test binaries: prefix + pid + counter.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A network namespace created for one test and deleted on drop, with `lo` up.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates `<prefix><pid>_<n>`.
    pub fn new(prefix: &str) -> io::Result<Self> {
        let name = unique_name(prefix);
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Self { name };
        ns.run(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name (as `ip netns` knows it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A `Command` that runs `program` inside the namespace (`ip netns exec`, which execs, so
    /// the spawned pid is the program's own).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// The same program, arguments and environment as `cmd`, run inside the namespace.
    pub fn wrap(&self, cmd: &Command) -> Command {
        let mut c = self.command(cmd.get_program());
        c.args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c
    }

    /// Takes `eth0` down (`false`) or up (`true`): a pulled and re-plugged cable. No FIN or
    /// RST leaves the host; its sockets just stop hearing anything.
    pub fn set_link(&self, up: bool) -> io::Result<()> {
        self.run(&["ip", "link", "set", "eth0", if up { "up" } else { "down" }])
            .map(|_| ())
    }

    /// Runs `args` inside the namespace and returns its output (error on non-zero exit).
    pub fn run(&self, args: &[&str]) -> io::Result<Output> {
        let (prog, rest) = args.split_first().ok_or(io::ErrorKind::InvalidInput)?;
        run(self.command(prog).args(rest))
    }

    /// Runs `f` on a new thread that has entered the namespace: sockets it creates belong to
    /// the namespace (and stay there when handed back to other threads).
    pub fn in_ns<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = Path::new("/run/netns").join(&self.name);
        let file = std::fs::File::open(&path).expect("open /run/netns/<name>");
        std::thread::spawn(move || {
            rustix::thread::move_into_link_name_space(
                file.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .expect("setns into the test namespace");
            f()
        })
        .join()
        .expect("thread in namespace panicked")
    }

    /// Reads a sysctl of this namespace, e.g. `net/ipv4/tcp_keepalive_time`.
    pub fn sysctl(&self, key: &str) -> io::Result<String> {
        let out = self.run(&["cat", &format!("/proc/sys/{key}")])?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Writes a sysctl of this namespace only (never the host's).
    pub fn set_sysctl(&self, key: &str, value: &str) -> io::Result<()> {
        self.run(&["sh", "-c", &format!("echo {value} > /proc/sys/{key}")])
            .map(|_| ())
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Hosts on 192.0.2.0/24 (TEST-NET-1, never routed) joined to a bridge in its own namespace by
/// veth pairs. No default route, so nothing can leak out of the test.
#[derive(Debug)]
pub struct Lan {
    /// The hosts; host `i` has address `192.0.2.(10 + i)` on `eth0`.
    pub hosts: Vec<NetNs>,
    bridge: NetNs,
}

impl Lan {
    /// Creates the bridge namespace and `n` hosts (n ≤ 200).
    pub fn new(prefix: &str, n: usize) -> io::Result<Self> {
        let bridge = NetNs::new(&format!("{prefix}br"))?;
        bridge.run(&["ip", "link", "add", "br0", "type", "bridge"])?;
        bridge.run(&["ip", "link", "set", "br0", "up"])?;
        let mut lan = Self {
            hosts: Vec::new(),
            bridge,
        };
        for i in 0..n {
            let host = NetNs::new(&format!("{prefix}h"))?;
            let peer = format!("p{i}");
            host.run(&[
                "ip",
                "link",
                "add",
                "eth0",
                "type",
                "veth",
                "peer",
                "name",
                &peer,
                "netns",
                lan.bridge.name(),
            ])?;
            host.run(&[
                "ip",
                "addr",
                "add",
                &format!("{}/24", Self::addr(i)),
                "dev",
                "eth0",
            ])?;
            host.run(&["ip", "link", "set", "eth0", "up"])?;
            lan.bridge
                .run(&["ip", "link", "set", &peer, "master", "br0"])?;
            lan.bridge.run(&["ip", "link", "set", &peer, "up"])?;
            lan.hosts.push(host);
        }
        Ok(lan)
    }

    /// Address of host `i`.
    pub fn addr(i: usize) -> std::net::Ipv4Addr {
        std::net::Ipv4Addr::new(192, 0, 2, 10 + u8::try_from(i).unwrap_or(200))
    }
}

/// What an [`NftDrop`] drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropWhat {
    /// Every packet from or to this address.
    Host(std::net::IpAddr),
    /// Every TCP segment with this source or destination port (both directions).
    TcpPort(u16),
    /// A random `percent` of all packets (loss).
    Loss(u8),
}

/// An nftables table in one namespace that drops packets; deleted on drop.
#[derive(Debug)]
pub struct NftDrop {
    ns: String,
    table: String,
}

impl NftDrop {
    /// Installs the rule in `ns` on the input and output hooks, so the peer is black-holed in
    /// both directions without any RST or ICMP (a vanished host, not a clean close).
    pub fn new(ns: &NetNs, what: DropWhat) -> io::Result<Self> {
        let table = unique_name("tk");
        let rule = match what {
            DropWhat::Host(std::net::IpAddr::V4(a)) => {
                format!("ip saddr {a} drop; ip daddr {a} drop")
            }
            DropWhat::Host(std::net::IpAddr::V6(a)) => {
                format!("ip6 saddr {a} drop; ip6 daddr {a} drop")
            }
            DropWhat::TcpPort(p) => format!("tcp sport {p} drop; tcp dport {p} drop"),
            DropWhat::Loss(n) => format!("numgen random mod 100 < {n} drop"),
        };
        let script = format!(
            "table inet {table} {{\n\
               chain in {{ type filter hook input priority -10; policy accept; {rule}; }}\n\
               chain out {{ type filter hook output priority -10; policy accept; {rule}; }}\n\
             }}\n"
        );
        let mut cmd = ns.command("nft");
        cmd.args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().ok_or(io::ErrorKind::BrokenPipe)?;
            stdin.write_all(script.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "nft failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(Self {
            ns: ns.name().to_string(),
            table,
        })
    }
}

impl Drop for NftDrop {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "nft",
                "delete",
                "table",
                "inet",
                &self.table,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lan_hosts_reach_each_other_and_blackhole_works() {
        if !require_root("testkit::lan_hosts_reach_each_other_and_blackhole_works") {
            return;
        }
        let lan = Lan::new("tkl", 2).unwrap();
        let ping = |h: &NetNs| {
            h.run(&["ping", "-c", "1", "-W", "1", &Lan::addr(1).to_string()])
                .is_ok()
        };
        assert!(ping(&lan.hosts[0]));
        let names: Vec<String> = lan.hosts.iter().map(|h| h.name().to_string()).collect();
        {
            let _drop = NftDrop::new(&lan.hosts[1], DropWhat::Host(Lan::addr(0).into())).unwrap();
            assert!(!ping(&lan.hosts[0]));
        }
        assert!(ping(&lan.hosts[0]));
        drop(lan);
        let list = String::from_utf8(
            run(Command::new("ip").args(["netns", "list"]))
                .unwrap()
                .stdout,
        )
        .unwrap();
        for n in names {
            assert!(!list.contains(&n), "{n} left behind");
        }
    }

    #[test]
    fn child_guard_kills_by_pid() {
        let g = ChildGuard::spawn(Command::new("sleep").arg("30")).unwrap();
        let pid = g.pid();
        drop(g);
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }
}
