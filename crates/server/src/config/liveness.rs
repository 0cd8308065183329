//! `[liveness]`: how fast silence and dead peers are detected.

use super::{ConfigError, invalid};
use serde::Deserialize;
use std::time::Duration;

/// `[liveness]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LivenessConfig {
    /// From accept until publish or play is under way (and again once it ends).
    #[serde(deserialize_with = "super::duration")]
    pub handshake_timeout: Duration,
    /// A publisher that sends no bytes for this long is closed and its name freed.
    #[serde(deserialize_with = "super::duration")]
    pub publish_idle_timeout: Duration,
    /// A player whose socket accepts no bytes for this long is closed.
    #[serde(deserialize_with = "super::duration")]
    pub play_stall_timeout: Duration,
    /// Ping (RTMP User Control 6) a player silent for this long; "0s" disables pings.
    #[serde(deserialize_with = "super::duration")]
    pub ping_interval: Duration,
    /// No byte at all from the peer within this long after a ping closes it.
    #[serde(deserialize_with = "super::duration")]
    pub ping_timeout: Duration,
    /// TCP_KEEPIDLE; "0s" leaves SO_KEEPALIVE off.
    #[serde(deserialize_with = "super::duration")]
    pub tcp_keepalive_idle: Duration,
    /// TCP_KEEPINTVL.
    #[serde(deserialize_with = "super::duration")]
    pub tcp_keepalive_interval: Duration,
    /// TCP_KEEPCNT.
    pub tcp_keepalive_count: u32,
    /// TCP_USER_TIMEOUT, and the age of the last ACK at which a connection with data in
    /// flight is judged unreachable (checked from TCP_INFO); "0s" leaves both off.
    #[serde(deserialize_with = "super::duration")]
    pub tcp_user_timeout: Duration,
}

impl Default for LivenessConfig {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            publish_idle_timeout: Duration::from_secs(30),
            play_stall_timeout: Duration::from_secs(15),
            ping_interval: Duration::from_secs(15),
            ping_timeout: Duration::from_secs(10),
            tcp_keepalive_idle: Duration::from_secs(30),
            tcp_keepalive_interval: Duration::from_secs(10),
            tcp_keepalive_count: 3,
            tcp_user_timeout: Duration::from_secs(10),
        }
    }
}

impl LivenessConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for (key, d) in [
            ("liveness.handshake_timeout", self.handshake_timeout),
            ("liveness.publish_idle_timeout", self.publish_idle_timeout),
            ("liveness.play_stall_timeout", self.play_stall_timeout),
            ("liveness.ping_timeout", self.ping_timeout),
        ] {
            if d < Duration::from_millis(100) {
                return Err(invalid(key, "must be at least 100ms"));
            }
        }
        self.socket()
            .validate()
            .map_err(|e| invalid("liveness.tcp_keepalive_*", e.to_string()))
    }

    /// The kernel-level liveness every accepted socket gets.
    pub fn socket(&self) -> liveness::SocketLiveness {
        liveness::SocketLiveness {
            keepalive: (!self.tcp_keepalive_idle.is_zero()).then_some(liveness::Keepalive {
                idle: self.tcp_keepalive_idle,
                interval: self.tcp_keepalive_interval,
                count: self.tcp_keepalive_count,
            }),
            user_timeout: (!self.tcp_user_timeout.is_zero()).then_some(self.tcp_user_timeout),
        }
    }

    /// The `tcp_user_timeout` bound, unless it is off ("0s").
    pub fn user_timeout(&self) -> Option<Duration> {
        (!self.tcp_user_timeout.is_zero()).then_some(self.tcp_user_timeout)
    }
}
