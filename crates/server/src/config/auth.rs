//! `[auth]`: static stream keys; the check itself is in [`crate::auth`].

use super::{ConfigError, invalid};
use serde::Deserialize;
use std::collections::BTreeMap;

/// `[auth]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Off by default, like most RTMP servers; when on, nothing is published without its key.
    pub enabled: bool,
    /// `[auth.apps.<app>]`: keys per application. An app not listed cannot be published.
    pub apps: BTreeMap<String, AppKeys>,
}

/// `[auth.apps.<app>]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AppKeys {
    /// Stream name → the key its publisher must present.
    pub publish: BTreeMap<String, String>,
    /// The key for names without their own entry; without it such names cannot be published.
    pub publish_default_key: Option<String>,
    /// Stream name → the key its players must present. Empty (with no default): open for play.
    pub play: BTreeMap<String, String>,
    /// The play key for names without their own entry.
    pub play_default_key: Option<String>,
}

impl AuthConfig {
    /// Refuses empty keys: an empty key would be "anyone who types `?key=`".
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for keys in self.apps.values() {
            let all = keys
                .publish
                .values()
                .chain(keys.play.values())
                .chain(keys.publish_default_key.iter())
                .chain(keys.play_default_key.iter());
            for key in all {
                if key.is_empty() {
                    return Err(invalid(
                        "auth.apps",
                        "keys must not be empty (leave the entry out instead)",
                    ));
                }
            }
        }
        Ok(())
    }
}
