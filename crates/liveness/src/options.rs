//! Per-socket keepalive and `TCP_USER_TIMEOUT`.

use crate::LivenessError;
use serde::{Deserialize, Serialize};
use socket2::{SockRef, TcpKeepalive};
use std::os::fd::AsFd;
use std::time::Duration;

/// Largest `TCP_KEEPIDLE` / `TCP_KEEPINTVL` the kernel accepts (`MAX_TCP_KEEPIDLE`), seconds.
pub(crate) const MAX_KEEP_SECS: u64 = 32767;
/// Largest `TCP_KEEPCNT` the kernel accepts (`MAX_TCP_KEEPCNT`).
pub(crate) const MAX_KEEPCNT: u32 = 127;
/// Largest `TCP_USER_TIMEOUT` (an `int` of milliseconds).
pub(crate) const MAX_USER_TIMEOUT_MS: u128 = i32::MAX as u128;

/// Keepalive timings of one socket (`TCP_KEEPIDLE`, `TCP_KEEPINTVL`, `TCP_KEEPCNT`).
///
/// Explicit per-socket values, because the sysctl defaults (7200 s / 75 s / 9) detect an idle
/// dead peer only after 7875 s, and container namespaces do not inherit the host's sysctls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keepalive {
    /// Idle time since the last *received* segment before the first probe.
    pub idle: Duration,
    /// Time between probes, and from the last probe to the abort.
    pub interval: Duration,
    /// Unanswered probes before the abort (ignored by the kernel when a user timeout is set).
    pub count: u32,
}

impl Keepalive {
    /// Checks the kernel's limits before anything is set, so that a config error shows at load
    /// time instead of as an `EINVAL` on the first accepted connection.
    pub fn validate(&self) -> Result<(), LivenessError> {
        check_secs("TCP_KEEPIDLE", self.idle)?;
        check_secs("TCP_KEEPINTVL", self.interval)?;
        if !(1..=MAX_KEEPCNT).contains(&self.count) {
            return Err(LivenessError::OutOfRange {
                what: "TCP_KEEPCNT",
                value: self.count.into(),
                min: 1,
                max: MAX_KEEPCNT.into(),
                unit: "probes",
            });
        }
        Ok(())
    }

    /// Worst-case time from the last received segment to the abort of an idle socket whose
    /// peer vanished (`idle + count × interval`).
    pub fn detection_time(&self) -> Duration {
        crate::calc::idle_detection(self, None)
    }
}

fn check_secs(what: &'static str, d: Duration) -> Result<(), LivenessError> {
    if d.subsec_nanos() != 0 {
        return Err(LivenessError::NotWholeSeconds { what, value: d });
    }
    if !(1..=MAX_KEEP_SECS).contains(&d.as_secs()) {
        return Err(LivenessError::OutOfRange {
            what,
            value: d.as_secs().into(),
            min: 1,
            max: MAX_KEEP_SECS.into(),
            unit: "s",
        });
    }
    Ok(())
}

/// What to arm on a TCP socket so that a dead peer is detected by the kernel.
///
/// `None` fields leave the socket's current setting alone (useful on accepted sockets, which
/// inherit the listener's options).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketLiveness {
    /// `SO_KEEPALIVE` plus timings: detects a vanished peer on an *idle* socket.
    pub keepalive: Option<Keepalive>,
    /// `TCP_USER_TIMEOUT`: how long sent data may stay unacknowledged (detects a vanished peer on
    /// a *busy* socket, and a peer that stopped reading); it also replaces `TCP_KEEPCNT`.
    pub user_timeout: Option<Duration>,
}

impl SocketLiveness {
    /// The recommended pairing: keepalive plus a user timeout equal to keepalive's detection
    /// time, so idle and busy dead peers are both detected after the same bound.
    pub fn matched(keepalive: Keepalive) -> Self {
        Self {
            keepalive: Some(keepalive),
            user_timeout: Some(keepalive.detection_time()),
        }
    }

    /// Checks every value against the kernel's limits (see [`Keepalive::validate`]).
    pub fn validate(&self) -> Result<(), LivenessError> {
        if let Some(k) = &self.keepalive {
            k.validate()?;
        }
        if let Some(u) = self.user_timeout {
            let ms = u.as_millis();
            if ms > MAX_USER_TIMEOUT_MS || (ms == 0 && !u.is_zero()) {
                return Err(LivenessError::OutOfRange {
                    what: "TCP_USER_TIMEOUT",
                    value: ms,
                    min: 0,
                    max: MAX_USER_TIMEOUT_MS,
                    unit: "ms",
                });
            }
        }
        Ok(())
    }

    /// Validates, then sets the options on `sock` (any TCP socket: std, tokio, a raw fd
    /// duplicated from another process). Nothing is set when validation fails.
    pub fn apply(&self, sock: impl AsFd) -> Result<(), LivenessError> {
        self.validate()?;
        let sock = SockRef::from(&sock);
        if let Some(k) = &self.keepalive {
            let ka = TcpKeepalive::new()
                .with_time(k.idle)
                .with_interval(k.interval)
                .with_retries(k.count);
            sock.set_tcp_keepalive(&ka)
                .map_err(|source| LivenessError::SetOption {
                    option: "SO_KEEPALIVE/TCP_KEEPIDLE/TCP_KEEPINTVL/TCP_KEEPCNT",
                    source,
                })?;
        }
        if let Some(u) = self.user_timeout {
            let value = if u.is_zero() { None } else { Some(u) };
            sock.set_tcp_user_timeout(value)
                .map_err(|source| LivenessError::SetOption {
                    option: "TCP_USER_TIMEOUT",
                    source,
                })?;
        }
        Ok(())
    }

    /// Reads back what the socket has now (keepalive `None` when `SO_KEEPALIVE` is off, user
    /// timeout `None` when 0), e.g. to confirm that an `apply` on another process took effect.
    pub fn read(sock: impl AsFd) -> Result<Self, LivenessError> {
        let sock = SockRef::from(&sock);
        let get = |option: &'static str| move |source| LivenessError::GetOption { option, source };
        let on = sock.keepalive().map_err(get("SO_KEEPALIVE"))?;
        let keepalive = if on {
            Some(Keepalive {
                idle: sock.tcp_keepalive_time().map_err(get("TCP_KEEPIDLE"))?,
                interval: sock
                    .tcp_keepalive_interval()
                    .map_err(get("TCP_KEEPINTVL"))?,
                count: sock.tcp_keepalive_retries().map_err(get("TCP_KEEPCNT"))?,
            })
        } else {
            None
        };
        let user_timeout = sock.tcp_user_timeout().map_err(get("TCP_USER_TIMEOUT"))?;
        Ok(Self {
            keepalive,
            user_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ka(i: u64, v: u64, n: u32) -> Keepalive {
        Keepalive {
            idle: Duration::from_secs(i),
            interval: Duration::from_secs(v),
            count: n,
        }
    }

    #[test]
    fn limits_match_the_kernel() {
        assert!(ka(1, 1, 1).validate().is_ok());
        assert!(ka(32767, 32767, 127).validate().is_ok());
        assert!(ka(0, 1, 1).validate().is_err());
        assert!(ka(32768, 1, 1).validate().is_err());
        assert!(ka(1, 0, 1).validate().is_err());
        assert!(ka(1, 1, 0).validate().is_err());
        assert!(ka(1, 1, 128).validate().is_err());
        let frac = Keepalive {
            idle: Duration::from_millis(1500),
            ..ka(1, 1, 1)
        };
        assert!(frac.validate().is_err());
    }

    #[test]
    fn apply_and_read_back() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let l = SocketLiveness {
            keepalive: Some(ka(5, 2, 3)),
            user_timeout: Some(Duration::from_millis(11000)),
        };
        l.apply(&listener).unwrap();
        assert_eq!(SocketLiveness::read(&listener).unwrap(), l);
        // Invalid values: nothing is set.
        let bad = SocketLiveness {
            keepalive: Some(ka(40000, 2, 3)),
            user_timeout: None,
        };
        assert!(bad.apply(&listener).is_err());
        assert_eq!(SocketLiveness::read(&listener).unwrap(), l);
        assert_eq!(
            SocketLiveness::matched(ka(60, 10, 3)).user_timeout,
            Some(Duration::from_secs(90))
        );
    }
}
