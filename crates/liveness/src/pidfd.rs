//! Reaching into another process's sockets with `pidfd_open` + `pidfd_getfd` (Linux ≥ 5.6).
//!
//! The duplicate refers to the *same open file description*, so `setsockopt` on it changes the
//! other process's socket; closing the duplicate leaves the other process's fd intact. This is
//! what lets an operator arm keepalive on a running server that never enabled it.

use crate::{LivenessError, SocketLiveness};
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, PidfdGetfdFlags, pidfd_getfd, pidfd_open};
use std::os::fd::OwnedFd;

fn explain(action: String, e: Errno) -> LivenessError {
    match e {
        Errno::PERM | Errno::ACCESS => LivenessError::PermissionDenied {
            action,
            needs: "ptrace access to the target (PTRACE_MODE_ATTACH_REALCREDS): run as root \
                    (CAP_SYS_PTRACE) or as the same user on a dumpable process; Yama ptrace_scope ≥ 1, \
                    SELinux/AppArmor or a seccomp profile may also forbid it"
                .into(),
        },
        Errno::NOSYS => LivenessError::Unsupported {
            action,
            needs: "pidfd_open/pidfd_getfd need Linux ≥ 5.6".into(),
        },
        e => LivenessError::Process {
            action,
            source: std::io::Error::from_raw_os_error(e.raw_os_error()),
        },
    }
}

/// Duplicates file descriptor `fd` of process `pid` into this process.
pub fn duplicate_fd(pid: i32, fd: i32) -> Result<OwnedFd, LivenessError> {
    let p = Pid::from_raw(pid).ok_or_else(|| LivenessError::Process {
        action: format!("pidfd_open({pid})"),
        source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
    })?;
    let pidfd =
        pidfd_open(p, PidfdFlags::empty()).map_err(|e| explain(format!("pidfd_open({pid})"), e))?;
    pidfd_getfd(&pidfd, fd, PidfdGetfdFlags::empty())
        .map_err(|e| explain(format!("pidfd_getfd(pid {pid}, fd {fd})"), e))
}

/// Applies `liveness` to socket `fd` of process `pid` and returns what the socket has now.
pub fn arm(pid: i32, fd: i32, liveness: &SocketLiveness) -> Result<SocketLiveness, LivenessError> {
    liveness.validate()?;
    let dup = duplicate_fd(pid, fd)?;
    liveness.apply(&dup)?;
    SocketLiveness::read(&dup)
}

/// Reads the keepalive / user-timeout settings of socket `fd` of process `pid`.
pub fn read(pid: i32, fd: i32) -> Result<SocketLiveness, LivenessError> {
    SocketLiveness::read(duplicate_fd(pid, fd)?)
}
