//! `[play]`: fan-out to players.

use super::{ConfigError, invalid};
use serde::Deserialize;
use std::time::Duration;

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
    #[serde(deserialize_with = "super::duration")]
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

impl PlayConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.queue_messages < 16 {
            return Err(invalid("play.queue_messages", "must be at least 16"));
        }
        if self.merge_window > Duration::from_millis(500) {
            return Err(invalid("play.merge_window", "must be at most 500ms"));
        }
        Ok(())
    }
}
