//! Server configuration: TOML, every key optional, embedded defaults. One file per section,
//! each with its own validation; this module only assembles them.
//!
//! [`DEFAULT_CONFIG_TOML`] is what `lifeline config` prints; a test checks that it parses to
//! exactly [`Config::default`], so the documented defaults and the real ones cannot drift.

mod auth;
mod cluster;
mod hooks;
mod http;
mod limits;
mod liveness;
mod play;
mod playback;
mod publish;
mod relay;
mod relay_url;
mod rtmp;
mod rtmps;

pub use auth::{AppKeys, AuthConfig};
pub use cluster::ClusterConfig;
pub use hooks::HooksConfig;
pub(crate) use hooks::parse_url;
pub use http::HttpConfig;
pub use limits::LimitsConfig;
pub use liveness::LivenessConfig;
pub use play::{Merging, PlayConfig};
pub use playback::PlaybackConfig;
pub use publish::{OnDuplicate, PublishConfig};
pub use relay::{ANY_NAME, PullRelay, PushRelay, RelayConfig};
pub use relay_url::{RelayUrl, UrlError};
pub use rtmp::RtmpConfig;
pub use rtmps::RtmpsConfig;

use serde::{Deserialize, Deserializer};
use std::path::Path;
use std::time::Duration;

/// The full default configuration with a comment on every key (`lifeline config`).
pub const DEFAULT_CONFIG_TOML: &str = include_str!("default.toml");

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
    /// `[rtmps]`: RTMP over TLS, and the certificate HTTPS playback uses.
    pub rtmps: RtmpsConfig,
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
    /// `[playback]`: HTTP-FLV, HLS and fragmented MP4 for browsers.
    pub playback: PlaybackConfig,
    /// `[auth]`: static stream keys for publish (and optionally play).
    pub auth: AuthConfig,
    /// `[hooks]`: HTTP callbacks that authorise publish/play and hear when they end.
    pub hooks: HooksConfig,
    /// `[relay]`: pushes to and pulls from other RTMP servers.
    pub relay: RelayConfig,
    /// `[cluster]`: one publisher per name across nodes, through etcd.
    pub cluster: ClusterConfig,
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

    /// Checks ranges serde cannot express, section by section.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.rtmp.validate()?;
        self.rtmps.validate(self.playback.tls)?;
        self.liveness.validate()?;
        self.publish.validate()?;
        self.play.validate()?;
        self.limits.validate()?;
        self.http.validate()?;
        self.playback.validate()?;
        self.auth.validate()?;
        self.hooks.validate()?;
        self.relay.validate()?;
        self.cluster.validate()
    }

    /// The kernel-level liveness every accepted socket gets.
    pub fn socket_liveness(&self) -> ::liveness::SocketLiveness {
        self.liveness.socket()
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
