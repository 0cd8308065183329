//! `[rtmp]`: the RTMP listener and protocol limits.

use super::{ConfigError, invalid};
use serde::Deserialize;
use std::net::SocketAddr;

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

impl RtmpConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !(128..=65536).contains(&self.chunk_size) {
            return Err(invalid("rtmp.chunk_size", "must be 128..=65536"));
        }
        if self.window_ack_size < 4096 {
            return Err(invalid("rtmp.window_ack_size", "must be at least 4096"));
        }
        if !(1024..=(64 << 20)).contains(&self.max_message_size) {
            return Err(invalid("rtmp.max_message_size", "must be 1 KiB..=64 MiB"));
        }
        Ok(())
    }
}
