//! Server configuration: TOML, every key optional, embedded defaults.
//!
//! [`DEFAULT_CONFIG_TOML`] is what `lifeline config` prints; a test checks that it parses to
//! exactly [`Config::default`], so the documented defaults and the real ones cannot drift.

use serde::{Deserialize, Deserializer};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// The full default configuration with a comment on every key (`lifeline config`).
pub const DEFAULT_CONFIG_TOML: &str = include_str!("default_config.toml");

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not valid TOML, an unknown key, or a value of the wrong type.
    #[error("{0}")]
    Parse(#[from] toml::de::Error),
    /// A value outside its allowed range.
    #[error("{key}: {why}")]
    Invalid {
        /// The `section.key` at fault.
        key: &'static str,
        /// What is wrong and what is allowed.
        why: String,
    },
}

/// Everything the server can be told.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[rtmp]`: the RTMP listener and protocol limits.
    pub rtmp: RtmpConfig,
    /// `[liveness]`: how fast silence and dead peers are detected.
    pub liveness: LivenessConfig,
    /// `[publish]`: one publisher per name, and what a second one gets.
    pub publish: PublishConfig,
    /// `[play]`: fan-out to players.
    pub play: PlayConfig,
    /// `[limits]`: resources a peer (or all peers) may hold.
    pub limits: LimitsConfig,
    /// `[http]`: the admin API, metrics and dashboard.
    pub http: HttpConfig,
    /// `[auth]`: static stream keys for publish (and optionally play).
    pub auth: crate::auth::AuthConfig,
    /// `[hooks]`: HTTP callbacks that authorise publish/play and hear when they end.
    pub hooks: crate::hooks::HooksConfig,
}

/// `[rtmp]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RtmpConfig {
    /// Address the RTMP listener binds.
    pub listen: SocketAddr,
    /// Chunk size we send with (announced after connect).
    pub chunk_size: u32,
    /// Window Acknowledgement Size we announce.
    pub window_ack_size: u32,
    /// Largest message a peer may send, in bytes.
    pub max_message_size: u32,
}

impl Default for RtmpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 1935)),
            chunk_size: 4096,
            window_ack_size: 2_500_000,
            max_message_size: 8 << 20,
        }
    }
}

/// `[liveness]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LivenessConfig {
    /// From accept until publish or play is under way (and again once it ends).
    #[serde(deserialize_with = "duration")]
    pub handshake_timeout: Duration,
    /// A publisher that sends no bytes for this long is closed and its name freed.
    #[serde(deserialize_with = "duration")]
    pub publish_idle_timeout: Duration,
    /// A player whose socket accepts no bytes for this long is closed.
    #[serde(deserialize_with = "duration")]
    pub play_stall_timeout: Duration,
    /// Ping (RTMP User Control 6) a player silent for this long; "0s" disables pings.
    #[serde(deserialize_with = "duration")]
    pub ping_interval: Duration,
    /// No byte at all from the peer within this long after a ping closes it.
    #[serde(deserialize_with = "duration")]
    pub ping_timeout: Duration,
    /// TCP_KEEPIDLE; "0s" leaves SO_KEEPALIVE off.
    #[serde(deserialize_with = "duration")]
    pub tcp_keepalive_idle: Duration,
    /// TCP_KEEPINTVL.
    #[serde(deserialize_with = "duration")]
    pub tcp_keepalive_interval: Duration,
    /// TCP_KEEPCNT.
    pub tcp_keepalive_count: u32,
    /// TCP_USER_TIMEOUT, and the age of the last ACK at which a connection with data in
    /// flight is judged unreachable (checked from TCP_INFO); "0s" leaves both off.
    #[serde(deserialize_with = "duration")]
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

/// What a second publisher of a live name gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnDuplicate {
    /// Always refused; the name frees only when its publisher ends or times out.
    Reject,
    /// Takes over when the incumbent has sent nothing for `stale_after`; refused otherwise.
    TakeoverStale,
    /// Always takes over.
    Takeover,
}

/// `[publish]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublishConfig {
    /// Policy for a second publisher of a live name.
    pub on_duplicate: OnDuplicate,
    /// With "takeover-stale": how long the incumbent must have been silent to lose the name.
    #[serde(deserialize_with = "duration")]
    pub stale_after: Duration,
    /// With "takeover-stale": how long a challenged incumbent has to show any sign of life
    /// (never less than 3 × its smoothed RTT).
    #[serde(deserialize_with = "duration")]
    pub challenge_timeout: Duration,
}

impl Default for PublishConfig {
    fn default() -> Self {
        Self {
            on_duplicate: OnDuplicate::TakeoverStale,
            stale_after: Duration::from_secs(5),
            challenge_timeout: Duration::from_secs(1),
        }
    }
}

/// `[play]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlayConfig {
    /// Messages a player may fall behind the publisher before frames are dropped for it.
    pub queue_messages: usize,
    /// After a player drops frames this many times in a row without catching up, it is closed.
    pub max_lag_drops: u32,
    /// Keep the frames since the last keyframe so a new player starts decoding at once.
    pub gop_cache: bool,
    /// Largest GOP cache per stream, in bytes; a longer GOP is not cached.
    pub gop_cache_max_bytes: usize,
    /// How long a player's writes wait to batch more messages into one write.
    #[serde(deserialize_with = "duration")]
    pub merge_window: Duration,
}

impl Default for PlayConfig {
    fn default() -> Self {
        Self {
            queue_messages: 1024,
            max_lag_drops: 8,
            gop_cache: true,
            gop_cache_max_bytes: 16 << 20,
            merge_window: Duration::from_millis(100),
        }
    }
}

/// `[limits]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Connections open at once; more are refused at accept.
    pub max_connections: usize,
    /// Connections open at once from one IP address; more are refused at accept.
    pub max_connections_per_ip: usize,
    /// New connections (each one a handshake) accepted per second, on average.
    pub max_handshakes_per_second: u32,
    /// New connections accepted at once above that rate (the token bucket's depth).
    pub handshake_burst: u32,
    /// Live streams (names published or played) at once.
    pub max_streams: usize,
    /// Players of one stream at once.
    pub max_players_per_stream: usize,
    /// Chunk streams one connection may use at once.
    pub max_chunk_streams: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_connections: 20_000,
            max_connections_per_ip: 1000,
            max_handshakes_per_second: 1000,
            handshake_burst: 2000,
            max_streams: 1000,
            max_players_per_stream: 5000,
            max_chunk_streams: 64,
        }
    }
}

/// `[http]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Serve the admin API, `/metrics` and the dashboard at all.
    pub enabled: bool,
    /// Address the HTTP server binds; loopback by default because it can kick connections.
    pub listen: SocketAddr,
    /// When set, every request must carry `Authorization: Bearer <token>`.
    pub token: Option<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            token: None,
        }
    }
}

pub(crate) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "{text:?} is not a duration like \"30s\" or \"500ms\": {e}"
        ))
    })
}

pub(crate) fn invalid(key: &'static str, why: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        why: why.into(),
    }
}

impl Config {
    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text)
    }

    /// Checks ranges serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let r = &self.rtmp;
        if !(128..=65536).contains(&r.chunk_size) {
            return Err(invalid("rtmp.chunk_size", "must be 128..=65536"));
        }
        if r.window_ack_size < 4096 {
            return Err(invalid("rtmp.window_ack_size", "must be at least 4096"));
        }
        if !(1024..=(64 << 20)).contains(&r.max_message_size) {
            return Err(invalid("rtmp.max_message_size", "must be 1 KiB..=64 MiB"));
        }
        let l = &self.liveness;
        for (key, d) in [
            ("liveness.handshake_timeout", l.handshake_timeout),
            ("liveness.publish_idle_timeout", l.publish_idle_timeout),
            ("liveness.play_stall_timeout", l.play_stall_timeout),
            ("liveness.ping_timeout", l.ping_timeout),
        ] {
            if d < Duration::from_millis(100) {
                return Err(invalid(key, "must be at least 100ms"));
            }
        }
        self.socket_liveness()
            .validate()
            .map_err(|e| invalid("liveness.tcp_keepalive_*", e.to_string()))?;
        if !(Duration::from_millis(100)..=Duration::from_secs(30))
            .contains(&self.publish.challenge_timeout)
        {
            return Err(invalid("publish.challenge_timeout", "must be 100ms..=30s"));
        }
        if self.play.queue_messages < 16 {
            return Err(invalid("play.queue_messages", "must be at least 16"));
        }
        if self.play.merge_window > Duration::from_millis(500) {
            return Err(invalid("play.merge_window", "must be at most 500ms"));
        }
        if self
            .http
            .token
            .as_deref()
            .is_some_and(|t| t.trim().is_empty())
        {
            return Err(invalid(
                "http.token",
                "must not be empty (leave it out instead)",
            ));
        }
        let m = &self.limits;
        for (key, v) in [
            ("limits.max_connections", m.max_connections),
            ("limits.max_connections_per_ip", m.max_connections_per_ip),
            (
                "limits.max_handshakes_per_second",
                m.max_handshakes_per_second as usize,
            ),
            ("limits.handshake_burst", m.handshake_burst as usize),
            ("limits.max_streams", m.max_streams),
            ("limits.max_players_per_stream", m.max_players_per_stream),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if !(4..=65_599).contains(&m.max_chunk_streams) {
            return Err(invalid("limits.max_chunk_streams", "must be 4..=65599"));
        }
        self.auth.validate()?;
        self.hooks.validate()?;
        Ok(())
    }

    /// The kernel-level liveness every accepted socket gets.
    pub fn socket_liveness(&self) -> liveness::SocketLiveness {
        let l = &self.liveness;
        liveness::SocketLiveness {
            keepalive: (!l.tcp_keepalive_idle.is_zero()).then_some(liveness::Keepalive {
                idle: l.tcp_keepalive_idle,
                interval: l.tcp_keepalive_interval,
                count: l.tcp_keepalive_count,
            }),
            user_timeout: (!l.tcp_user_timeout.is_zero()).then_some(l.tcp_user_timeout),
        }
    }

    /// The protocol session's settings.
    pub fn session(&self) -> rtmp_proto::session::SessionConfig {
        let l = &self.liveness;
        rtmp_proto::session::SessionConfig {
            chunk_size: self.rtmp.chunk_size,
            window_ack_size: self.rtmp.window_ack_size,
            reader_limits: rtmp_proto::chunk::ReaderLimits {
                max_message_size: self.rtmp.max_message_size,
                max_chunk_streams: self.limits.max_chunk_streams,
                ..Default::default()
            },
            timeouts: rtmp_proto::session::Timeouts {
                handshake: l.handshake_timeout,
                publish_idle: l.publish_idle_timeout,
                play_stall: l.play_stall_timeout,
                ping_interval: (!l.ping_interval.is_zero()).then_some(l.ping_interval),
                ping_timeout: l.ping_timeout,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults_are_the_defaults() {
        assert_eq!(
            Config::from_toml(DEFAULT_CONFIG_TOML).unwrap(),
            Config::default()
        );
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::from_toml("[liveness]\npublish_idle_timout = \"5s\"\n").unwrap_err();
        assert!(err.to_string().contains("publish_idle_timout"), "{err}");
    }

    #[test]
    fn durations_and_ranges() {
        let c = Config::from_toml("[liveness]\npublish_idle_timeout = \"500ms\"\n").unwrap();
        assert_eq!(c.liveness.publish_idle_timeout, Duration::from_millis(500));
        let err = Config::from_toml("[liveness]\nping_timeout = \"soon\"\n").unwrap_err();
        assert!(err.to_string().contains("not a duration"), "{err}");
        let err = Config::from_toml("[liveness]\ntcp_keepalive_count = 128\n").unwrap_err();
        assert!(err.to_string().contains("tcp_keepalive"), "{err}");
        let err = Config::from_toml("[liveness]\ntcp_keepalive_idle = \"40000s\"\n").unwrap_err();
        assert!(err.to_string().contains("tcp_keepalive"), "{err}");
        let err = Config::from_toml("[publish]\non_duplicate = \"steal\"\n").unwrap_err();
        assert!(err.to_string().contains("takeover-stale"), "{err}");
    }
}
