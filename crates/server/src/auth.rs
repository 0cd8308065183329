//! Static stream keys: who may publish (and play) which name, decided from the config alone.
//!
//! Encoders can only pass a secret inside the stream name (`rtmp://host/live/cctv5?key=s3cret`),
//! so the key travels in the name's query. Keys are compared in constant time, so a guesser
//! learns nothing from how long a refusal takes.

use crate::config::AuthConfig;
use std::time::Duration;
use subtle::ConstantTimeEq;

/// What a client asks to do with a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Publish.
    Publish,
    /// Play.
    Play,
}

impl Action {
    /// A stable label for logs and hook JSON.
    pub fn label(self) -> &'static str {
        match self {
            Self::Publish => "publish",
            Self::Play => "play",
        }
    }
}

/// Why a publish or play was not authorised: for our log, never for the peer (which is only
/// told "Not authorised.") and never naming the expected key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Denial {
    /// `[auth]` is on and the app has no keys at all.
    #[error("stream key: no [auth.apps.{app}] keys")]
    NoAppKeys {
        /// The application.
        app: String,
    },
    /// Neither the name nor the app's default has a key for this action.
    #[error("stream key: no {action} key for {app}/{name}", action = .action.label())]
    NoKeyFor {
        /// Publish or play.
        action: Action,
        /// The application.
        app: String,
        /// The stream name.
        name: String,
    },
    /// The query carries no `key=`.
    #[error("stream key: no key given")]
    NoKeyGiven,
    /// The key given is not the one configured.
    #[error("stream key: wrong key")]
    WrongKey,
    /// The decision hook answered with a status other than 2xx.
    #[error("hook answered {0}")]
    HookStatus(http::StatusCode),
    /// The decision hook could not be reached or broke the protocol.
    #[error("hook failed: {0}")]
    HookFailed(String),
    /// The decision hook did not answer within `[hooks] timeout`.
    #[error("hook did not answer within {0:?}")]
    HookTimeout(Duration),
    /// `[hooks] max_in_flight` decisions are already waiting.
    #[error("too many hook calls in flight (hooks.max_in_flight)")]
    HookBusy,
}

impl AuthConfig {
    /// Whether `action` on `app/name` is allowed with the query `query` (`key=…&…`).
    pub fn check(&self, action: Action, app: &str, name: &str, query: &str) -> Result<(), Denial> {
        if !self.enabled {
            return Ok(());
        }
        let keys = self.apps.get(app);
        let no_key = || Denial::NoKeyFor {
            action,
            app: app.to_owned(),
            name: name.to_owned(),
        };
        let expected = match (action, keys) {
            (Action::Publish, None) => {
                return Err(Denial::NoAppKeys {
                    app: app.to_owned(),
                });
            }
            (Action::Play, None) => return Ok(()),
            (Action::Publish, Some(k)) => k
                .publish
                .get(name)
                .or(k.publish_default_key.as_ref())
                .ok_or_else(no_key)?,
            (Action::Play, Some(k)) => {
                if k.play.is_empty() && k.play_default_key.is_none() {
                    return Ok(());
                }
                k.play
                    .get(name)
                    .or(k.play_default_key.as_ref())
                    .ok_or_else(no_key)?
            }
        };
        match query_param(query, "key") {
            None => Err(Denial::NoKeyGiven),
            // Constant time, so a guesser learns nothing from how long a refusal takes (only
            // the configured key's length can leak, which is not secret enough to matter).
            Some(given) if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) => Ok(()),
            Some(_) => Err(Denial::WrongKey),
        }
    }
}

/// The decoded `(name, value)` pairs of a query string (`a=1&b=x%20y`); a pair without `=`
/// has an empty value.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// The first value of `name` in `query`.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query_pairs(query)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// `%XX` and `+` decoding; malformed escapes are kept as they are.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(b) = hex {
                    out.push(b);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AuthConfig {
        crate::Config::from_toml(
            "[auth]\nenabled = true\n[auth.apps.live]\npublish = { cctv5 = \"s3cret\" }\n\
             [auth.apps.vip]\npublish_default_key = \"pk\"\nplay = { a = \"v\" }\n",
        )
        .unwrap()
        .auth
    }

    #[test]
    fn publish_needs_the_names_key() {
        let c = config();
        assert_eq!(
            c.check(Action::Publish, "live", "cctv5", "key=s3cret"),
            Ok(())
        );
        assert_eq!(
            c.check(Action::Publish, "live", "cctv5", "x=1&key=s3cret"),
            Ok(())
        );
        assert!(
            c.check(Action::Publish, "live", "cctv5", "key=s3cre")
                .is_err()
        );
        assert!(
            c.check(Action::Publish, "live", "cctv5", "key=s3cret1")
                .is_err()
        );
        assert!(c.check(Action::Publish, "live", "cctv5", "").is_err());
        assert!(
            c.check(Action::Publish, "live", "other", "key=s3cret")
                .is_err()
        );
        assert!(
            c.check(Action::Publish, "nope", "cctv5", "key=s3cret")
                .is_err()
        );
        assert_eq!(c.check(Action::Publish, "vip", "any", "key=pk"), Ok(()));
    }

    #[test]
    fn play_is_open_unless_keys_are_configured() {
        let c = config();
        assert_eq!(c.check(Action::Play, "live", "cctv5", ""), Ok(()));
        assert_eq!(c.check(Action::Play, "elsewhere", "x", ""), Ok(()));
        assert_eq!(c.check(Action::Play, "vip", "a", "key=v"), Ok(()));
        assert!(c.check(Action::Play, "vip", "a", "key=w").is_err());
        assert!(c.check(Action::Play, "vip", "b", "key=v").is_err());
    }

    #[test]
    fn disabled_allows_everything() {
        let mut c = config();
        c.enabled = false;
        assert_eq!(c.check(Action::Publish, "nope", "x", ""), Ok(()));
    }

    #[test]
    fn empty_keys_are_refused() {
        let err =
            crate::Config::from_toml("[auth.apps.live]\npublish = { a = \"\" }\n").unwrap_err();
        assert!(err.to_string().contains("auth.apps"), "{err}");
    }

    #[test]
    fn an_unauthorised_newcomer_never_displaces_the_incumbent() {
        use crate::registry::{PublishOutcome, Registry};
        use std::sync::Arc;
        let mut config = crate::Config::default();
        config.publish.on_duplicate = crate::config::OnDuplicate::Takeover;
        let registry = Arc::new(Registry::new(Arc::new(config)));
        let conn = |id| {
            let peer = "127.0.0.1:1".parse().unwrap();
            let cancel = tokio_util::sync::CancellationToken::new();
            Arc::new(crate::control::ConnControl::new(id, peer, cancel))
        };
        let (a, b, c) = (conn(1), conn(2), conn(3));
        let now = std::time::Instant::now();
        let _held = match registry.publish_claim("live", "cam", &a, now, true) {
            PublishOutcome::Granted(g) => g,
            other => panic!("{other:?}"),
        };
        let refused = registry.publish_claim("live", "cam", &b, now, false);
        assert!(matches!(refused, PublishOutcome::Refused(_)), "{refused:?}");
        assert_eq!(a.requested_reason(), None, "the incumbent was disturbed");
        let taken = registry.publish_claim("live", "cam", &c, now, true);
        assert!(matches!(taken, PublishOutcome::Granted(_)), "{taken:?}");
        assert!(a.requested_reason().is_some());
    }

    #[test]
    fn query_decoding() {
        assert_eq!(query_param("key=a%20b+c", "key").as_deref(), Some("a b c"));
        assert_eq!(query_param("key=%zz", "key").as_deref(), Some("%zz"));
        assert_eq!(query_param("flag&key=", "key").as_deref(), Some(""));
        assert_eq!(query_param("a=1", "key"), None);
    }
}
