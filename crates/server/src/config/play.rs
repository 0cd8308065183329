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
    /// The most latency the server may add to a player's media to write it in fewer, larger
    /// writes; it adds none while the machine has time to spare (see `fanout::budget`).
    #[serde(deserialize_with = "super::duration")]
    pub latency_budget: Duration,
    /// A fixed merge window instead of the adaptive budget (unset by default; "0s" writes
    /// every message at once).
    #[serde(deserialize_with = "opt_duration")]
    pub merge_window: Option<Duration>,
}

fn opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    super::duration(d).map(Some)
}

impl Default for PlayConfig {
    fn default() -> Self {
        Self {
            queue_messages: 1024,
            max_lag_drops: 8,
            gop_cache: true,
            gop_cache_max_bytes: 16 << 20,
            latency_budget: Duration::from_millis(300),
            merge_window: None,
        }
    }
}

/// How players' output is merged into fewer writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merging {
    /// Adaptively, adding up to this much latency as the load requires.
    Budget(Duration),
    /// Always this long (`merge_window` set).
    Fixed(Duration),
}

/// Longest merge window or latency budget: beyond it players see a stutter, not a delay.
const MAX_WINDOW: Duration = Duration::from_millis(500);

impl PlayConfig {
    /// How the fan-out writers merge: the fixed window if one is set, else the budget.
    pub(crate) fn merging(&self) -> Merging {
        match self.merge_window {
            Some(w) => Merging::Fixed(w),
            None => Merging::Budget(self.latency_budget),
        }
    }

    /// The window of a viewer merged by its own connection (HTTP-FLV, not yet served by the
    /// fan-out writers): the fixed one if set, else what it was before the budget (100ms),
    /// within the budget.
    pub(crate) fn own_window(&self) -> Duration {
        self.merge_window
            .unwrap_or(Duration::from_millis(100).min(self.latency_budget))
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.queue_messages < 16 {
            return Err(invalid("play.queue_messages", "must be at least 16"));
        }
        if self.merge_window.is_some_and(|w| w > MAX_WINDOW) {
            return Err(invalid("play.merge_window", "must be at most 500ms"));
        }
        if self.latency_budget > MAX_WINDOW {
            return Err(invalid("play.latency_budget", "must be at most 500ms"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_the_default_and_merge_window_overrides_it() {
        let play = PlayConfig::default();
        assert_eq!(play.merging(), Merging::Budget(Duration::from_millis(300)));
        let fixed = PlayConfig {
            merge_window: Some(Duration::ZERO),
            ..PlayConfig::default()
        };
        assert_eq!(fixed.merging(), Merging::Fixed(Duration::ZERO));
        assert_eq!(fixed.own_window(), Duration::ZERO);
        // Viewers not served by the writers keep the budget's shortest window.
        assert_eq!(play.own_window(), Duration::from_millis(100));
        let tight = PlayConfig {
            latency_budget: Duration::from_millis(30),
            ..PlayConfig::default()
        };
        assert_eq!(tight.own_window(), Duration::from_millis(30));
    }

    #[test]
    fn windows_beyond_half_a_second_are_refused() {
        for (play, key) in [
            (
                PlayConfig {
                    merge_window: Some(Duration::from_millis(600)),
                    ..PlayConfig::default()
                },
                "merge_window",
            ),
            (
                PlayConfig {
                    latency_budget: Duration::from_millis(600),
                    ..PlayConfig::default()
                },
                "latency_budget",
            ),
        ] {
            let err = play.validate().unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
    }
}
