//! The kernel's TCP keepalive and retransmission sysctls, as *this network namespace* sees them.
//!
//! Read and written through `/proc/sys/net/ipv4/…` directly (the `sysctl` crate is only a
//! wrapper over the same files). These values are per network namespace: a container does not
//! see the host's, and writing here changes only the caller's namespace.

use crate::{Keepalive, LivenessError};
use serde::Serialize;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default location of the sysctl tree.
pub const PROC_SYS_IPV4: &str = "/proc/sys/net/ipv4";
/// Default file for `--persist`; the `60-` prefix orders it after distribution defaults.
pub const DEFAULT_PERSIST_FILE: &str = "/etc/sysctl.d/60-lifeline-keepalive.conf";

/// Largest sysctl keepalive time/interval we accept: the per-socket limit, because the kernel's
/// sysctl itself has no range check and accepts even 0.
pub const MAX_SYSCTL_SECS: u64 = crate::options::MAX_KEEP_SECS;
/// Largest `tcp_keepalive_probes` (an u8 in the kernel).
pub const MAX_SYSCTL_PROBES: u32 = 255;

/// The namespace-wide settings that decide how long a dead peer goes unnoticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct KernelSettings {
    /// `tcp_keepalive_time`, `tcp_keepalive_intvl`, `tcp_keepalive_probes`.
    pub keepalive: Keepalive,
    /// `tcp_retries2`.
    pub retries2: u32,
    /// `tcp_rto_max_ms` (Linux ≥ 6.15), `None` when the kernel does not have it.
    pub rto_max: Option<Duration>,
}

/// Access to one sysctl tree; tests point it at a temporary directory, real use at /proc.
#[derive(Debug, Clone)]
pub struct Sysctl {
    root: PathBuf,
}

impl Default for Sysctl {
    fn default() -> Self {
        Self::new(PROC_SYS_IPV4)
    }
}

/// A requested change of the keepalive sysctls; `None` keeps the current value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeepaliveChange {
    /// New `tcp_keepalive_time`, seconds.
    pub time: Option<u64>,
    /// New `tcp_keepalive_intvl`, seconds.
    pub intvl: Option<u64>,
    /// New `tcp_keepalive_probes`.
    pub probes: Option<u32>,
}

impl KeepaliveChange {
    /// Refuses values the kernel would accept although they make no sense (0 seconds) or reject.
    pub fn validate(&self) -> Result<(), LivenessError> {
        let secs = |what, v: Option<u64>| match v {
            Some(v) if !(1..=MAX_SYSCTL_SECS).contains(&v) => Err(LivenessError::OutOfRange {
                what,
                value: v.into(),
                min: 1,
                max: MAX_SYSCTL_SECS.into(),
                unit: "s",
            }),
            _ => Ok(()),
        };
        secs("net.ipv4.tcp_keepalive_time", self.time)?;
        secs("net.ipv4.tcp_keepalive_intvl", self.intvl)?;
        if let Some(p) = self.probes
            && !(1..=MAX_SYSCTL_PROBES).contains(&p)
        {
            return Err(LivenessError::OutOfRange {
                what: "net.ipv4.tcp_keepalive_probes",
                value: p.into(),
                min: 1,
                max: MAX_SYSCTL_PROBES.into(),
                unit: "probes",
            });
        }
        Ok(())
    }

    /// The settings after this change.
    pub fn applied_to(&self, k: Keepalive) -> Keepalive {
        Keepalive {
            idle: self.time.map(Duration::from_secs).unwrap_or(k.idle),
            interval: self.intvl.map(Duration::from_secs).unwrap_or(k.interval),
            count: self.probes.unwrap_or(k.count),
        }
    }
}

impl Sysctl {
    /// A tree rooted at `root` (normally [`PROC_SYS_IPV4`]).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn read_u64(&self, name: &str) -> Result<Option<u64>, LivenessError> {
        let path = self.root.join(name);
        match std::fs::read_to_string(&path) {
            Ok(s) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| LivenessError::Parse { path, content: s }),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(source) => Err(LivenessError::File { path, source }),
        }
    }

    fn require_u64(&self, name: &str) -> Result<u64, LivenessError> {
        self.read_u64(name)?.ok_or_else(|| LivenessError::File {
            path: self.root.join(name),
            source: std::io::Error::from(ErrorKind::NotFound),
        })
    }

    /// Reads the current values.
    pub fn read(&self) -> Result<KernelSettings, LivenessError> {
        let u32_of = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        Ok(KernelSettings {
            keepalive: Keepalive {
                idle: Duration::from_secs(self.require_u64("tcp_keepalive_time")?),
                interval: Duration::from_secs(self.require_u64("tcp_keepalive_intvl")?),
                count: u32_of(self.require_u64("tcp_keepalive_probes")?),
            },
            retries2: u32_of(self.require_u64("tcp_retries2")?),
            rto_max: self.read_u64("tcp_rto_max_ms")?.map(Duration::from_millis),
        })
    }

    /// Validates, then writes the changed values; nothing is written when validation fails.
    /// `EACCES`/`EPERM` become [`LivenessError::PermissionDenied`] naming the capability.
    pub fn write_keepalive(&self, change: &KeepaliveChange) -> Result<(), LivenessError> {
        change.validate()?;
        let items = [
            ("tcp_keepalive_time", change.time),
            ("tcp_keepalive_intvl", change.intvl),
            ("tcp_keepalive_probes", change.probes.map(u64::from)),
        ];
        for (name, value) in items {
            let Some(value) = value else { continue };
            let path = self.root.join(name);
            if let Err(source) = std::fs::write(&path, format!("{value}\n")) {
                return Err(match source.kind() {
                    ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => {
                        LivenessError::PermissionDenied {
                            action: format!("writing {}", path.display()),
                            needs: "root with CAP_NET_ADMIN in this network namespace; \
                                    /proc/sys must be writable (not a read-only container mount)"
                                .into(),
                        }
                    }
                    _ => LivenessError::File { path, source },
                });
            }
        }
        Ok(())
    }
}

/// The content of a sysctl.d file that re-applies `k` at boot (`systemd-sysctl`) or on
/// `sysctl --system`.
pub fn persist_content(k: &Keepalive) -> String {
    format!(
        "# Written by `lifeline keepalive set --persist`.\n\
         # Applies only to sockets with SO_KEEPALIVE, and only in the host's network namespace\n\
         # (containers start from the kernel defaults). Idle dead peer detected after {} s.\n\
         net.ipv4.tcp_keepalive_time = {}\n\
         net.ipv4.tcp_keepalive_intvl = {}\n\
         net.ipv4.tcp_keepalive_probes = {}\n",
        k.detection_time().as_secs(),
        k.idle.as_secs(),
        k.interval.as_secs(),
        k.count
    )
}

/// Writes [`persist_content`] to `path` (creating parent directories).
pub fn persist(path: &Path, k: &Keepalive) -> Result<(), LivenessError> {
    let file_err = |source: std::io::Error| {
        if source.kind() == ErrorKind::PermissionDenied {
            LivenessError::PermissionDenied {
                action: format!("writing {}", path.display()),
                needs: "root (the file is owned by root)".into(),
            }
        } else {
            LivenessError::File {
                path: path.to_path_buf(),
                source,
            }
        }
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(file_err)?;
    }
    std::fs::write(path, persist_content(k)).map_err(file_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_tree() -> (PathBuf, Sysctl) {
        let dir = std::env::temp_dir().join(format!("liveness-sysctl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (n, v) in [
            ("tcp_keepalive_time", 7200),
            ("tcp_keepalive_intvl", 75),
            ("tcp_keepalive_probes", 9),
            ("tcp_retries2", 15),
        ] {
            std::fs::write(dir.join(n), format!("{v}\n")).unwrap();
        }
        (dir.clone(), Sysctl::new(dir))
    }

    #[test]
    fn round_trip_and_refusal() {
        let (dir, s) = fake_tree();
        let before = s.read().unwrap();
        assert_eq!(before.keepalive.detection_time().as_secs(), 7875);
        assert_eq!(before.rto_max, None);
        let bad = KeepaliveChange {
            time: Some(60),
            intvl: Some(0),
            probes: None,
        };
        assert!(s.write_keepalive(&bad).is_err());
        assert_eq!(s.read().unwrap(), before, "nothing written on refusal");
        let good = KeepaliveChange {
            time: Some(60),
            intvl: Some(10),
            probes: Some(3),
        };
        s.write_keepalive(&good).unwrap();
        assert_eq!(s.read().unwrap().keepalive.detection_time().as_secs(), 90);
        let f = dir.join("sub/60.conf");
        persist(&f, &s.read().unwrap().keepalive).unwrap();
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(text.contains("net.ipv4.tcp_keepalive_intvl = 10\n"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
