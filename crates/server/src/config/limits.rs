//! `[limits]`: resources a peer (or all peers) may hold.

use super::{ConfigError, invalid};
use serde::Deserialize;

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

impl LimitsConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for (key, v) in [
            ("limits.max_connections", self.max_connections),
            ("limits.max_connections_per_ip", self.max_connections_per_ip),
            (
                "limits.max_handshakes_per_second",
                self.max_handshakes_per_second as usize,
            ),
            ("limits.handshake_burst", self.handshake_burst as usize),
            ("limits.max_streams", self.max_streams),
            ("limits.max_players_per_stream", self.max_players_per_stream),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if !(4..=65_599).contains(&self.max_chunk_streams) {
            return Err(invalid("limits.max_chunk_streams", "must be 4..=65599"));
        }
        Ok(())
    }
}
