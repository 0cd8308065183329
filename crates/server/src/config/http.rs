//! `[http]`: the admin API, metrics and dashboard.

use super::{ConfigError, invalid};
use serde::Deserialize;
use std::net::SocketAddr;

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

impl HttpConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(invalid(
                "http.token",
                "must not be empty (leave it out instead)",
            ));
        }
        Ok(())
    }
}
