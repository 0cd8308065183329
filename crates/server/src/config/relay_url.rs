//! A relay's upstream URL: `rtmp://host[:port]/app/stream[?query]`, where the stream part (and
//! the query) may hold `{name}`, the local stream's name. Parsed once at start, so a bad URL is
//! a configuration error and never a runtime surprise.
//!
//! URLs carry secrets (stream keys), so a [`RelayUrl`] never shows itself whole: its `Debug` and
//! [`RelayUrl::masked`] replace every query value with `***`, and a stream part without
//! `{name}` — a YouTube-style path key, `rtmp://a.rtmp.youtube.com/live2/KEY` — with `***`.

use std::fmt;

/// The port an `rtmp://` URL without one means.
const DEFAULT_PORT: u16 = 1935;
/// The port an `rtmps://` URL without one means (what RTMPS ingest services listen on).
const DEFAULT_TLS_PORT: u16 = 443;
/// What `{name}` stands for.
const PLACEHOLDER: &str = "{name}";
/// What a secret is shown as.
const MASK: &str = "***";

/// Why a relay URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// No `scheme://` at all.
    #[error("{0:?} is not a URL (expected rtmp://host[:port]/app/{{name}})")]
    NotAUrl(String),
    /// A scheme other than `rtmp` or `rtmps`.
    #[error("unknown scheme {0:?}: rtmp:// and rtmps:// are supported (not rtmpt or rtmpe)")]
    Scheme(String),
    /// `user:password@` before the host.
    #[error("credentials in the URL are not supported: put the key in the query or the path")]
    Credentials,
    /// Nothing where the host should be, or a malformed one.
    #[error("no valid host in the URL")]
    Host,
    /// A port that is not 1..=65535.
    #[error("bad port {0:?}")]
    Port(String),
    /// No application after the host.
    #[error("no application in the URL (rtmp://host/app/{{name}})")]
    NoApp,
    /// No stream part after the application.
    #[error("no stream name after the application (add /{{name}} or the stream key)")]
    NoStream,
    /// `{name}` outside the stream part and the query, or another `{…}`.
    #[error("{0}")]
    Placeholder(&'static str),
}

/// A parsed `rtmp://` URL of a push target or a pull origin.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct RelayUrl {
    /// `rtmps://`: TLS to the upstream, its certificate verified.
    tls: bool,
    host: String,
    port: u16,
    app: String,
    /// The stream part after the application (may contain `/`), with `{name}` unreplaced.
    stream: String,
    query: Option<String>,
}

impl RelayUrl {
    /// Parses and checks `text`.
    pub fn parse(text: &str) -> Result<Self, UrlError> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| UrlError::NotAUrl(text.to_owned()))?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "rtmp" => false,
            "rtmps" => true,
            _ => return Err(UrlError::Scheme(scheme.to_owned())),
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.contains('@') {
            return Err(UrlError::Credentials);
        }
        let (host, port) = host_port(authority)?;
        let port = match port {
            Some(p) => p,
            None if tls => DEFAULT_TLS_PORT,
            None => DEFAULT_PORT,
        };
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q.to_owned()).filter(|q| !q.is_empty())),
            None => (path, None),
        };
        let (app, stream) = path.split_once('/').unwrap_or((path, ""));
        if app.is_empty() {
            return Err(UrlError::NoApp);
        }
        if stream.is_empty() {
            return Err(UrlError::NoStream);
        }
        if [host.as_str(), app].iter().any(|s| s.contains('{')) {
            return Err(UrlError::Placeholder(
                "{name} may stand only in the stream name or the query",
            ));
        }
        for part in std::iter::once(stream).chain(query.as_deref()) {
            if part.replace(PLACEHOLDER, "").contains(['{', '}']) {
                return Err(UrlError::Placeholder(
                    "the only placeholder is {name} (the local stream's name)",
                ));
            }
        }
        Ok(Self {
            tls,
            host,
            port,
            app: app.to_owned(),
            stream: stream.to_owned(),
            query,
        })
    }

    /// Whether the stream part holds `{name}` (needed where one entry serves many names).
    pub fn has_name(&self) -> bool {
        self.stream.contains(PLACEHOLDER)
    }

    /// Whether the upstream is reached over TLS (`rtmps://`).
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// `rtmp` or `rtmps`.
    fn scheme(&self) -> &'static str {
        if self.tls { "rtmps" } else { "rtmp" }
    }

    /// The host (a name or an address), without brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port (1935, or 443 for `rtmps://`, unless given).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `connect`'s application.
    pub fn app(&self) -> &str {
        &self.app
    }

    /// `connect`'s `tcUrl`: everything up to and including the application.
    pub fn tc_url(&self) -> String {
        format!("{}://{}/{}", self.scheme(), self.authority(), self.app)
    }

    /// What `publish` / `play` asks for when relaying the local stream `name`: the stream part
    /// with `{name}` replaced, and the query (where stream keys travel), as encoders send it.
    pub fn stream_name(&self, name: &str) -> String {
        let stream = self.stream.replace(PLACEHOLDER, name);
        match &self.query {
            Some(q) => format!("{stream}?{}", q.replace(PLACEHOLDER, name)),
            None => stream,
        }
    }

    /// The URL for `name` as logs and the admin API show it: every query value is `***`, and a
    /// stream part without `{name}` (a path key) is `***`.
    pub fn masked(&self, name: Option<&str>) -> String {
        let stream = if self.has_name() {
            name.map_or_else(
                || self.stream.clone(),
                |n| self.stream.replace(PLACEHOLDER, n),
            )
        } else {
            MASK.to_owned()
        };
        let mut out = format!(
            "{}://{}/{}/{stream}",
            self.scheme(),
            self.authority(),
            self.app
        );
        if let Some(q) = &self.query {
            let masked: Vec<String> = q
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) => format!("{k}={MASK}"),
                    None => MASK.to_owned(),
                })
                .collect();
            out.push('?');
            out.push_str(&masked.join("&"));
        }
        out
    }

    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Never the whole URL: it may hold a stream key.
impl fmt::Debug for RelayUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked(None))
    }
}

impl TryFrom<String> for RelayUrl {
    type Error = UrlError;
    fn try_from(text: String) -> Result<Self, UrlError> {
        Self::parse(&text)
    }
}

fn host_port(authority: &str) -> Result<(String, Option<u16>), UrlError> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, rest) = v6.split_once(']').ok_or(UrlError::Host)?;
        match rest {
            "" => (host, None),
            _ => (host, Some(rest.strip_prefix(':').ok_or(UrlError::Host)?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':');
    if host.is_empty() || !host.chars().all(valid) {
        return Err(UrlError::Host);
    }
    let port = match port {
        None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| UrlError::Port(p.to_owned()))?,
        ),
    };
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_encoders_and_cdns_use() {
        let u = RelayUrl::parse("rtmp://cdn.example:1936/live/{name}?key=s3cret").unwrap();
        assert_eq!((u.host(), u.port(), u.app()), ("cdn.example", 1936, "live"));
        assert_eq!(u.tc_url(), "rtmp://cdn.example:1936/live");
        assert_eq!(u.stream_name("cam"), "cam?key=s3cret");
        assert!(u.has_name());
        assert_eq!(
            u.masked(Some("cam")),
            "rtmp://cdn.example:1936/live/cam?key=***"
        );

        let yt = RelayUrl::parse("rtmp://a.rtmp.youtube.com/live2/abcd-efgh-ijkl").unwrap();
        assert_eq!(yt.port(), DEFAULT_PORT);
        assert_eq!(yt.stream_name("cam"), "abcd-efgh-ijkl");
        assert!(!yt.has_name());
        assert_eq!(
            yt.masked(Some("cam")),
            "rtmp://a.rtmp.youtube.com:1935/live2/***",
            "a literal stream part is a path key"
        );
        assert!(
            !format!("{yt:?}").contains("abcd"),
            "Debug never shows a key"
        );

        let v6 = RelayUrl::parse("rtmp://[::1]:19350/edge/in/{name}?a=1&token").unwrap();
        assert_eq!((v6.host(), v6.port()), ("::1", 19350));
        assert_eq!(v6.stream_name("x"), "in/x?a=1&token");
        assert_eq!(
            v6.masked(Some("x")),
            "rtmp://[::1]:19350/edge/in/x?a=***&***"
        );
        assert_eq!(
            RelayUrl::parse("RTMP://h/live/{name}?n={name}")
                .unwrap()
                .stream_name("c"),
            "c?n=c"
        );
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        let err = |t: &str| RelayUrl::parse(t).unwrap_err();
        assert!(matches!(err("live/{name}"), UrlError::NotAUrl(_)));
        assert_eq!(err("rtmpt://h/live/x"), UrlError::Scheme("rtmpt".into()));
        let tls = RelayUrl::parse("rtmps://a.rtmps.youtube.com/live2/KEY").unwrap();
        assert!(
            tls.tls() && tls.port() == 443,
            "rtmps:// defaults to port 443"
        );
        assert_eq!(tls.tc_url(), "rtmps://a.rtmps.youtube.com:443/live2");
        assert_eq!(err("http://h/live/x"), UrlError::Scheme("http".into()));
        assert_eq!(err("rtmp://u:p@h/live/x"), UrlError::Credentials);
        assert_eq!(err("rtmp:///live/x"), UrlError::Host);
        assert_eq!(err("rtmp://h:0/live/x"), UrlError::Port("0".into()));
        assert_eq!(err("rtmp://h:99999/live/x"), UrlError::Port("99999".into()));
        assert_eq!(err("rtmp://h"), UrlError::NoApp);
        assert_eq!(err("rtmp://h/live"), UrlError::NoStream);
        assert_eq!(err("rtmp://h/live/"), UrlError::NoStream);
        assert!(matches!(err("rtmp://h/{name}/x"), UrlError::Placeholder(_)));
        assert!(matches!(
            err("rtmp://h/live/{app}"),
            UrlError::Placeholder(_)
        ));
        assert!(matches!(err("rtmp://[::1/live/x"), UrlError::Host));
    }
}
