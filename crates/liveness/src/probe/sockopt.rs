//! The five per-socket options a probe saves, changes and restores, read and written raw.
//!
//! [`crate::SocketLiveness`] hides the timings while `SO_KEEPALIVE` is off; a probe must put
//! back exactly what was there, so it works on all five values as the kernel reports them.

use crate::LivenessError;
use rustix::net::sockopt;
use serde::Serialize;
use std::os::fd::AsFd;
use std::time::Duration;

/// `SO_KEEPALIVE`, `TCP_KEEPIDLE`, `TCP_KEEPINTVL`, `TCP_KEEPCNT`, `TCP_USER_TIMEOUT` of one
/// socket, as `getsockopt` returns them (a timing without a per-socket value reads back the
/// namespace's sysctl).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct KeepaliveOptions {
    /// `SO_KEEPALIVE`.
    pub keepalive: bool,
    /// `TCP_KEEPIDLE`, seconds.
    pub idle_s: u32,
    /// `TCP_KEEPINTVL`, seconds.
    pub interval_s: u32,
    /// `TCP_KEEPCNT`.
    pub count: u32,
    /// `TCP_USER_TIMEOUT`, ms (0 = off).
    pub user_timeout_ms: u32,
}

fn get(option: &'static str) -> impl Fn(rustix::io::Errno) -> LivenessError {
    move |e| LivenessError::GetOption {
        option,
        source: e.into(),
    }
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

impl KeepaliveOptions {
    /// Reads all five from `sock` (ours, or one borrowed with `pidfd_getfd`).
    pub fn read(sock: impl AsFd) -> Result<Self, LivenessError> {
        let fd = sock.as_fd();
        Ok(Self {
            keepalive: sockopt::socket_keepalive(fd).map_err(get("SO_KEEPALIVE"))?,
            idle_s: secs(sockopt::tcp_keepidle(fd).map_err(get("TCP_KEEPIDLE"))?),
            interval_s: secs(sockopt::tcp_keepintvl(fd).map_err(get("TCP_KEEPINTVL"))?),
            count: sockopt::tcp_keepcnt(fd).map_err(get("TCP_KEEPCNT"))?,
            user_timeout_ms: sockopt::tcp_user_timeout(fd).map_err(get("TCP_USER_TIMEOUT"))?,
        })
    }
}

/// One `setsockopt` of a probe's plan, in the order the plan lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "option", content = "value")]
pub enum SockOpt {
    /// `SO_KEEPALIVE`.
    #[serde(rename = "SO_KEEPALIVE")]
    KeepAlive(bool),
    /// `TCP_KEEPIDLE`, seconds (1..=32767). Setting it re-arms the keepalive timer to
    /// `max(0, idle − time since the last packet received)`: an idle socket probes at once.
    #[serde(rename = "TCP_KEEPIDLE")]
    KeepIdle(u32),
    /// `TCP_KEEPINTVL`, seconds (1..=32767).
    #[serde(rename = "TCP_KEEPINTVL")]
    KeepIntvl(u32),
    /// `TCP_KEEPCNT` (1..=127).
    #[serde(rename = "TCP_KEEPCNT")]
    KeepCnt(u32),
    /// `TCP_USER_TIMEOUT`, ms (0 = off).
    #[serde(rename = "TCP_USER_TIMEOUT")]
    UserTimeout(u32),
}

impl SockOpt {
    /// The option's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::KeepAlive(_) => "SO_KEEPALIVE",
            Self::KeepIdle(_) => "TCP_KEEPIDLE",
            Self::KeepIntvl(_) => "TCP_KEEPINTVL",
            Self::KeepCnt(_) => "TCP_KEEPCNT",
            Self::UserTimeout(_) => "TCP_USER_TIMEOUT",
        }
    }

    /// Sets it on `sock`.
    pub fn apply(&self, sock: impl AsFd) -> Result<(), LivenessError> {
        let fd = sock.as_fd();
        let r = match *self {
            Self::KeepAlive(on) => sockopt::set_socket_keepalive(fd, on),
            Self::KeepIdle(s) => sockopt::set_tcp_keepidle(fd, Duration::from_secs(s.into())),
            Self::KeepIntvl(s) => sockopt::set_tcp_keepintvl(fd, Duration::from_secs(s.into())),
            Self::KeepCnt(n) => sockopt::set_tcp_keepcnt(fd, n),
            Self::UserTimeout(ms) => sockopt::set_tcp_user_timeout(fd, ms),
        };
        r.map_err(|e| LivenessError::SetOption {
            option: self.name(),
            source: e.into(),
        })
    }

    /// Applies `opts` in order, stopping at the first failure; returns how many were set.
    pub fn apply_all(opts: &[SockOpt], sock: impl AsFd) -> (usize, Result<(), LivenessError>) {
        let fd = sock.as_fd();
        for (i, o) in opts.iter().enumerate() {
            if let Err(e) = o.apply(fd) {
                return (i, Err(e));
            }
        }
        (opts.len(), Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_apply_round_trip() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let before = KeepaliveOptions::read(&l).unwrap();
        assert!(!before.keepalive);
        let set = [
            SockOpt::UserTimeout(12_345),
            SockOpt::KeepIntvl(3),
            SockOpt::KeepCnt(4),
            SockOpt::KeepAlive(true),
            SockOpt::KeepIdle(2),
        ];
        assert_eq!(SockOpt::apply_all(&set, &l).0, set.len());
        let after = KeepaliveOptions::read(&l).unwrap();
        assert_eq!(
            after,
            KeepaliveOptions {
                keepalive: true,
                idle_s: 2,
                interval_s: 3,
                count: 4,
                user_timeout_ms: 12_345
            }
        );
        let (n, r) = SockOpt::apply_all(&[SockOpt::KeepAlive(false), SockOpt::KeepIdle(0)], &l);
        assert_eq!(n, 1);
        assert!(r.is_err(), "TCP_KEEPIDLE 0 is EINVAL");
        assert!(!KeepaliveOptions::read(&l).unwrap().keepalive);
    }
}
