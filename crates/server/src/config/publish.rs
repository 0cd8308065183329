//! `[publish]`: one publisher per name, and what a second one gets.

use super::{ConfigError, invalid};
use serde::Deserialize;
use std::time::Duration;

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
    #[serde(deserialize_with = "super::duration")]
    pub stale_after: Duration,
    /// With "takeover-stale": how long a challenged incumbent has to show any sign of life
    /// (never less than 3 × its smoothed RTT).
    #[serde(deserialize_with = "super::duration")]
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

impl PublishConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !(Duration::from_millis(100)..=Duration::from_secs(30)).contains(&self.challenge_timeout)
        {
            return Err(invalid("publish.challenge_timeout", "must be 100ms..=30s"));
        }
        Ok(())
    }
}
