//! `[hooks]`: HTTP callbacks that authorise publish/play and hear when they end; the client
//! itself is in [`crate::hooks`].

use super::{ConfigError, invalid};
use http::Uri;
use serde::Deserialize;
use std::time::Duration;

/// `[hooks]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HooksConfig {
    /// Asked before every publish; a 2xx answer allows it.
    pub on_publish: Option<String>,
    /// Asked before every play; a 2xx answer allows it.
    pub on_play: Option<String>,
    /// Told when a publisher ends, with the reason.
    pub on_publish_done: Option<String>,
    /// Told when a player ends, with the reason.
    pub on_play_done: Option<String>,
    /// Told when any connection closes, with the reason.
    pub on_close: Option<String>,
    /// Hard deadline of each call (connect + request + response).
    #[serde(deserialize_with = "super::duration")]
    pub timeout: Duration,
    /// Decisions in flight at once; one more is denied instead of waiting.
    pub max_in_flight: usize,
    /// Notifications waiting to be sent; more are dropped.
    pub queue: usize,
}

impl Default for HooksConfig {
    fn default() -> Self {
        Self {
            on_publish: None,
            on_play: None,
            on_publish_done: None,
            on_play_done: None,
            on_close: None,
            timeout: Duration::from_secs(3),
            max_in_flight: 64,
            queue: 1024,
        }
    }
}

impl HooksConfig {
    /// URLs must be plain `http://host[:port]/path` (no TLS client is built in), and the
    /// bounds must leave room for at least one call.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for (key, url) in [
            ("hooks.on_publish", &self.on_publish),
            ("hooks.on_play", &self.on_play),
            ("hooks.on_publish_done", &self.on_publish_done),
            ("hooks.on_play_done", &self.on_play_done),
            ("hooks.on_close", &self.on_close),
        ] {
            if let Some(url) = url {
                parse_url(url).map_err(|why| invalid(key, why))?;
            }
        }
        if !(Duration::from_millis(100)..=Duration::from_secs(60)).contains(&self.timeout) {
            return Err(invalid("hooks.timeout", "must be 100ms..=60s"));
        }
        if self.max_in_flight == 0 {
            return Err(invalid("hooks.max_in_flight", "must be at least 1"));
        }
        if self.queue == 0 {
            return Err(invalid("hooks.queue", "must be at least 1"));
        }
        Ok(())
    }
}

pub(crate) fn parse_url(url: &str) -> Result<Uri, String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("{url:?}: only http:// URLs are supported"));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{url:?} has no host"));
    }
    Ok(uri)
}
