//! `[relay]`: pushing local streams to other servers and pulling streams from an origin, with
//! the reconnect back-off they share. URLs are parsed here, at start, so a bad one stops the
//! server with the entry and the reason instead of failing at the first publish.

use super::relay_url::RelayUrl;
use super::{ConfigError, invalid};
use serde::Deserialize;
use std::time::Duration;

/// `[relay]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    /// The first reconnect waits this long; each failed one doubles it.
    #[serde(deserialize_with = "super::duration")]
    pub retry_min: Duration,
    /// The longest wait between two reconnects.
    #[serde(deserialize_with = "super::duration")]
    pub retry_max: Duration,
    /// `[[relay.push]]`: local streams published to other servers.
    pub push: Vec<PushRelay>,
    /// `[[relay.pull]]`: streams played from an origin on a local player's demand.
    pub pull: Vec<PullRelay>,
    /// Extra trusted CA certificates (PEM) for `rtmps://` upstreams, beside the system's.
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(30),
            push: Vec::new(),
            pull: Vec::new(),
            ca_file: None,
        }
    }
}

/// One `[[relay.push]]`: while a local publisher of `app/name` is live, it is published to
/// `url` too.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushRelay {
    /// The local application.
    pub app: String,
    /// The local stream name, or `"*"` for every stream of the app.
    pub name: String,
    /// Where to publish: `rtmp://host[:port]/app/{name}[?key=…]`.
    pub url: RelayUrl,
}

/// One `[[relay.pull]]`: the first local player of a name of `app` with no local publisher
/// makes the server play it from `url` and publish it locally.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullRelay {
    /// The local application.
    pub app: String,
    /// The origin: `rtmp://host[:port]/app/{name}[?key=…]`.
    pub url: RelayUrl,
    /// The pull stops this long after its last local player left.
    #[serde(deserialize_with = "super::duration", default = "default_idle_after")]
    pub idle_after: Duration,
}

fn default_idle_after() -> Duration {
    Duration::from_secs(10)
}

/// Matches every stream name of an app.
pub const ANY_NAME: &str = "*";

impl PushRelay {
    /// Whether this entry pushes the local stream `app/name`.
    pub fn matches(&self, app: &str, name: &str) -> bool {
        self.app == app && (self.name == ANY_NAME || self.name == name)
    }
}

impl RelayConfig {
    /// Whether any relay is configured.
    pub fn any(&self) -> bool {
        !self.push.is_empty() || !self.pull.is_empty()
    }

    /// The pull entry serving `app`, if any (at most one per app).
    pub fn pull_for(&self, app: &str) -> Option<(usize, &PullRelay)> {
        self.pull.iter().enumerate().find(|(_, p)| p.app == app)
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.retry_min < Duration::from_millis(100) {
            return Err(invalid("relay.retry_min", "must be at least 100ms"));
        }
        if !(self.retry_min..=Duration::from_secs(3600)).contains(&self.retry_max) {
            return Err(invalid("relay.retry_max", "must be retry_min..=1h"));
        }
        for (i, p) in self.push.iter().enumerate() {
            let at = |why: &str| invalid("relay.push", format!("entry #{}: {why}", i + 1));
            if p.app.is_empty() || p.app.contains('/') {
                return Err(at("app must be a non-empty application name without '/'"));
            }
            if p.name.is_empty() {
                return Err(at("name must be a stream name or \"*\""));
            }
            if p.name == ANY_NAME && !p.url.has_name() {
                return Err(at(&format!(
                    "name = \"*\" needs {{name}} in the url's stream part ({:?}), or every \
                     stream would be published to the same upstream name",
                    p.url
                )));
            }
        }
        for (i, p) in self.pull.iter().enumerate() {
            let at = |why: &str| invalid("relay.pull", format!("entry #{}: {why}", i + 1));
            if p.app.is_empty() || p.app.contains('/') {
                return Err(at("app must be a non-empty application name without '/'"));
            }
            if !p.url.has_name() {
                return Err(at(&format!(
                    "the origin url needs {{name}} in its stream part ({:?}): a pull serves \
                     every name of its app",
                    p.url
                )));
            }
            if p.idle_after > Duration::from_secs(3600) {
                return Err(at("idle_after must be at most 1h"));
            }
            if self.pull[..i].iter().any(|q| q.app == p.app) {
                return Err(at(&format!(
                    "a second pull for app {:?}: one origin per app",
                    p.app
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::time::Duration;

    fn parse(text: &str) -> Result<Config, String> {
        Config::from_toml(text).map_err(|e| e.to_string())
    }

    #[test]
    fn pushes_and_pulls_parse() {
        let c = parse(
            r#"
            [relay]
            retry_min = "250ms"
            [[relay.push]]
            app = "live"
            name = "*"
            url = "rtmp://cdn:1936/in/{name}?key=k"
            [[relay.push]]
            app = "live"
            name = "cam"
            url = "rtmp://a.rtmp.youtube.com/live2/KEY"
            [[relay.pull]]
            app = "edge"
            url = "rtmp://origin/live/{name}"
            "#,
        )
        .unwrap();
        let r = &c.relay;
        assert_eq!(r.retry_min, Duration::from_millis(250));
        assert_eq!(r.retry_max, Duration::from_secs(30));
        assert_eq!(r.push.len(), 2);
        assert!(r.push[0].matches("live", "anything") && !r.push[0].matches("other", "x"));
        assert!(r.push[1].matches("live", "cam") && !r.push[1].matches("live", "cam2"));
        assert_eq!(r.pull[0].idle_after, Duration::from_secs(10));
        assert_eq!(r.pull_for("edge").map(|(i, _)| i), Some(0));
        assert!(r.pull_for("live").is_none());
    }

    #[test]
    fn clear_errors() {
        let push = |name: &str, url: &str| {
            parse(&format!(
                "[[relay.push]]\napp = \"live\"\nname = \"{name}\"\nurl = \"{url}\"\n"
            ))
            .unwrap_err()
        };
        let e = push("*", "rtmp://a.rtmp.youtube.com/live2/KEY");
        assert!(e.contains("relay.push") && e.contains("{name}"), "{e}");
        assert!(!e.contains("KEY"), "the key is never printed: {e}");
        let e = push("cam", "rtmpt://h/live/x");
        assert!(e.contains("unknown scheme"), "{e}");
        let e = push("cam", "rtmp://h/live");
        assert!(e.contains("no stream name"), "{e}");
        let e = push("cam", "not a url");
        assert!(e.contains("not a URL"), "{e}");
        let e =
            parse("[[relay.pull]]\napp = \"edge\"\nurl = \"rtmp://o/live/fixed\"\n").unwrap_err();
        assert!(e.contains("relay.pull") && e.contains("{name}"), "{e}");
        let two = "[[relay.pull]]\napp = \"e\"\nurl = \"rtmp://o/l/{name}\"\n";
        let e = parse(&format!("{two}{two}")).unwrap_err();
        assert!(e.contains("one origin per app"), "{e}");
        let e = parse("[relay]\nretry_min = \"10s\"\nretry_max = \"1s\"\n").unwrap_err();
        assert!(e.contains("relay.retry_max"), "{e}");
        let e = parse(
            "[[relay.push]]\napp = \"live\"\nname = \"x\"\nurl = \"rtmp://h/l/x\"\nkey = 1\n",
        )
        .unwrap_err();
        assert!(e.contains("unknown field"), "{e}");
    }
}
