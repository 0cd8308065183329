//! `[rtmps]`: RTMP over TLS (and the certificate HTTPS playback uses).

use super::{ConfigError, invalid};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// `[rtmps]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RtmpsConfig {
    /// Address the RTMPS listener binds; unset (the default), there is none.
    pub listen: Option<SocketAddr>,
    /// The certificate chain, PEM (leaf first).
    pub cert: Option<PathBuf>,
    /// The private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
}

impl RtmpsConfig {
    /// Whether a certificate is configured (for RTMPS or HTTPS playback).
    pub fn has_certificate(&self) -> bool {
        self.cert.is_some() && self.key.is_some()
    }

    pub(super) fn validate(&self, playback_tls: bool) -> Result<(), ConfigError> {
        if (self.listen.is_some() || playback_tls) && !self.has_certificate() {
            return Err(invalid(
                "rtmps.cert",
                "rtmps.cert and rtmps.key (PEM files) are needed for [rtmps] listen and for \
                 [playback] tls",
            ));
        }
        Ok(())
    }
}
