//! `[playback]`: watching in a browser — HTTP-FLV, low-latency HLS and fragmented MP4 on a
//! port of their own, separate from the admin listener.

use super::{ConfigError, invalid};
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;

/// `[playback]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlaybackConfig {
    /// Serve HTTP playback at all.
    pub enabled: bool,
    /// Address the playback listener binds (`--playback` overrides it).
    pub listen: SocketAddr,
    /// A viewer that arrives before the publisher waits this long before 404.
    #[serde(deserialize_with = "super::duration")]
    pub wait_for_publisher: Duration,
    /// A keep-alive connection idle between requests is closed after this long.
    #[serde(deserialize_with = "super::duration")]
    pub idle_timeout: Duration,
    /// `Access-Control-Allow-Origin` on every answer.
    pub allow_origin: String,
    /// Target duration of an HLS segment; segments are cut at keyframes, so a longer GOP
    /// makes longer segments.
    #[serde(deserialize_with = "super::duration")]
    pub hls_segment_duration: Duration,
    /// Target duration of a low-latency HLS part.
    #[serde(deserialize_with = "super::duration")]
    pub hls_part_duration: Duration,
    /// Complete segments an HLS playlist lists (and the server keeps in memory per stream).
    pub hls_segment_count: usize,
    /// Serve HTTPS instead of HTTP, with the `[rtmps]` certificate.
    pub tls: bool,
}

impl Default for PlaybackConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([0, 0, 0, 0], 8088)),
            wait_for_publisher: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(10),
            allow_origin: "*".into(),
            hls_segment_duration: Duration::from_secs(1),
            hls_part_duration: Duration::from_millis(200),
            hls_segment_count: 7,
            tls: false,
        }
    }
}

impl PlaybackConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.wait_for_publisher > Duration::from_secs(60) {
            return Err(invalid(
                "playback.wait_for_publisher",
                "must be at most 60s",
            ));
        }
        if !(Duration::from_millis(100)..=Duration::from_secs(600)).contains(&self.idle_timeout) {
            return Err(invalid("playback.idle_timeout", "must be 100ms..=600s"));
        }
        if self.allow_origin.contains(['\r', '\n']) {
            return Err(invalid("playback.allow_origin", "must be one header line"));
        }
        if !(Duration::from_millis(500)..=Duration::from_secs(30))
            .contains(&self.hls_segment_duration)
        {
            return Err(invalid(
                "playback.hls_segment_duration",
                "must be 500ms..=30s",
            ));
        }
        if self.hls_part_duration < Duration::from_millis(100)
            || self.hls_part_duration > self.hls_segment_duration
        {
            return Err(invalid(
                "playback.hls_part_duration",
                "must be at least 100ms and at most hls_segment_duration",
            ));
        }
        if !(3..=60).contains(&self.hls_segment_count) {
            return Err(invalid("playback.hls_segment_count", "must be 3..=60"));
        }
        Ok(())
    }
}
