//! HTTP/1.1 request heads on the playback port, parsed into typed routes. Pure and bounded:
//! the head must fit in [`MAX_HEAD`] bytes, names are checked before anything looks them up,
//! and every refusal is a status with a one-line reason. Fuzzed (`playback_request`).

use std::fmt;

/// Largest request head accepted; more is `431 Request Header Fields Too Large`.
pub const MAX_HEAD: usize = 16 * 1024;
/// Most headers a request may carry.
const MAX_HEADERS: usize = 64;
/// Longest app or stream name, in bytes (after percent-decoding).
pub const MAX_NAME: usize = 256;
/// Longest HLS session id.
const MAX_SESSION: usize = 32;

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/{app}/{name}.flv`: HTTP-FLV, live.
    Flv(StreamPath),
    /// `/{app}/{name}.mp4`: fragmented MP4, live (init segment, then every part as it is
    /// made); what the dashboard's watch view feeds to Media Source Extensions.
    Mp4(StreamPath),
    /// `/{app}/{name}/index.m3u8`: the multivariant playlist, which opens an HLS session.
    HlsIndex(StreamPath),
    /// `/{app}/{name}/s/{session}/{file}`: the session's media playlist or one of its media
    /// resources (init segment, segment, part).
    HlsSession {
        /// The stream.
        stream: StreamPath,
        /// The session id from the multivariant playlist.
        session: String,
        /// `media.m3u8` or a resource name.
        file: String,
    },
}

/// An app and a stream name, checked to be safe to look up and to print.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamPath {
    /// The application (`connect`'s app for RTMP).
    pub app: String,
    /// The stream name.
    pub name: String,
}

impl fmt::Display for StreamPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.app, self.name)
    }
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET` or `HEAD`.
    pub head_only: bool,
    /// What is asked for.
    pub route: Route,
    /// The query string as sent (without `?`), for keys and `_HLS_*` directives.
    pub query: String,
    /// Whether the connection stays open after the answer (HTTP/1.1 default, or
    /// `Connection: keep-alive` on 1.0).
    pub keep_alive: bool,
    /// Bytes the head took in the buffer.
    pub head_len: usize,
}

/// A request refused before it reaches a stream: the status and a one-line reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// Not HTTP, or a malformed head.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// A path this port does not serve.
    #[error("not found: {0}")]
    NotFound(&'static str),
    /// A method other than GET or HEAD.
    #[error("method not allowed: only GET and HEAD")]
    MethodNotAllowed,
    /// The head is larger than [`MAX_HEAD`] or has too many headers.
    #[error("request header fields too large (16 KiB at most)")]
    HeadTooLarge,
    /// A name longer than [`MAX_NAME`].
    #[error("URI too long: names are at most 256 bytes")]
    NameTooLong,
}

impl Refusal {
    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::NotFound(_) => 404,
            Self::MethodNotAllowed => 405,
            Self::HeadTooLarge => 431,
            Self::NameTooLong => 414,
        }
    }
}

/// Parses the request head at the start of `buf`: `Ok(None)` while it is incomplete.
pub fn parse(buf: &[u8]) -> Result<Option<Request>, Refusal> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Err(Refusal::HeadTooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Refusal::HeadTooLarge),
        Err(_) => return Err(Refusal::BadRequest("not an HTTP/1.x request")),
    };
    if head_len > MAX_HEAD {
        return Err(Refusal::HeadTooLarge);
    }
    let head_only = match req.method {
        Some("GET") => false,
        Some("HEAD") => true,
        _ => return Err(Refusal::MethodNotAllowed),
    };
    let target = req.path.ok_or(Refusal::BadRequest("no request target"))?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let connection = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("connection"))
        .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase());
    let keep_alive = match req.version {
        Some(1) => !connection.as_deref().is_some_and(|c| c.contains("close")),
        _ => connection
            .as_deref()
            .is_some_and(|c| c.contains("keep-alive")),
    };
    Ok(Some(Request {
        head_only,
        route: route(path)?,
        query: query.to_owned(),
        keep_alive,
        head_len,
    }))
}

/// Routes a path (without its query).
pub fn route(path: &str) -> Result<Route, Refusal> {
    let rest = path
        .strip_prefix('/')
        .ok_or(Refusal::BadRequest("the path must start with /"))?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [app, file] => {
            let (name, ext) = file.rsplit_once('.').ok_or(Refusal::NotFound(
                "use /{app}/{name}.flv, .mp4 or /index.m3u8",
            ))?;
            let stream = stream_path(app, name)?;
            match ext {
                "flv" => Ok(Route::Flv(stream)),
                "mp4" => Ok(Route::Mp4(stream)),
                _ => Err(Refusal::NotFound(
                    "use /{app}/{name}.flv, .mp4 or /index.m3u8",
                )),
            }
        }
        [app, name, "index.m3u8"] => Ok(Route::HlsIndex(stream_path(app, name)?)),
        [app, name, "s", session, file] => {
            let stream = stream_path(app, name)?;
            let session = (*session).to_owned();
            if session.is_empty()
                || session.len() > MAX_SESSION
                || !session.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                return Err(Refusal::NotFound("no such HLS session"));
            }
            if file.is_empty() || file.len() > 64 || !file.bytes().all(is_file_byte) {
                return Err(Refusal::NotFound("no such HLS resource"));
            }
            Ok(Route::HlsSession {
                stream,
                session,
                file: (*file).to_owned(),
            })
        }
        _ => Err(Refusal::NotFound(
            "use /{app}/{name}.flv, /{app}/{name}.mp4 or /{app}/{name}/index.m3u8",
        )),
    }
}

fn is_file_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')
}

/// Decodes and checks one app or name: percent-decoded UTF-8, no `/`, no control
/// characters, not `.` or `..`, at most [`MAX_NAME`] bytes.
fn name(raw: &str) -> Result<String, Refusal> {
    if raw.len() > 3 * MAX_NAME {
        return Err(Refusal::NameTooLong);
    }
    let decoded = percent_decode(raw).ok_or(Refusal::BadRequest("bad percent-encoding"))?;
    if decoded.len() > MAX_NAME {
        return Err(Refusal::NameTooLong);
    }
    if decoded.is_empty() || decoded == "." || decoded == ".." {
        return Err(Refusal::NotFound("empty or dot name"));
    }
    if decoded
        .chars()
        .any(|c| c.is_control() || c == '/' || c == '\\')
    {
        return Err(Refusal::BadRequest(
            "control characters or slashes in a name",
        ));
    }
    Ok(decoded)
}

fn stream_path(app: &str, stream: &str) -> Result<StreamPath, Refusal> {
    Ok(StreamPath {
        app: name(app)?,
        name: name(stream)?,
    })
}

/// Strict `%XX` decoding to UTF-8 (`None` for a malformed escape or invalid UTF-8): a name
/// has exactly one spelling once decoded, so `%2e%2e` is caught as `..`.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The fuzzing entry point (`fuzz/fuzz_targets/playback_request.rs`, and the corpus replay
/// below): parses arbitrary bytes as a request head and checks what a parse promises.
pub fn fuzz_request(data: &[u8]) {
    let Ok(Some(req)) = parse(data) else { return };
    assert!(req.head_len <= data.len() && req.head_len <= MAX_HEAD);
    let names: Vec<&str> = match &req.route {
        Route::Flv(s) | Route::Mp4(s) | Route::HlsIndex(s) => vec![&s.app, &s.name],
        Route::HlsSession {
            stream,
            session,
            file,
        } => vec![&stream.app, &stream.name, session, file],
    };
    for n in names {
        assert!(!n.is_empty() && n.len() <= MAX_NAME && n != "." && n != "..");
        assert!(!n.chars().any(|c| c.is_control() || c == '/' || c == '\\'));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Replays the fuzz target's committed corpus (seeds and any crash found since).
    #[test]
    fn replay_fuzz_corpus() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus/playback_request");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            fuzz_request(&std::fs::read(entry.unwrap().path()).unwrap());
            n += 1;
        }
        assert!(n >= 5, "corpus at {} has {n} files", dir.display());
    }

    fn get(path: &str) -> Result<Option<Request>, Refusal> {
        parse(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
    }

    fn sp(app: &str, name: &str) -> StreamPath {
        StreamPath {
            app: app.into(),
            name: name.into(),
        }
    }

    #[test]
    fn routes() {
        let r = get("/live/cctv5.flv?key=k").unwrap().unwrap();
        assert_eq!(r.route, Route::Flv(sp("live", "cctv5")));
        assert_eq!(r.query, "key=k");
        assert!(r.keep_alive);
        assert_eq!(
            get("/live/cam.mp4").unwrap().unwrap().route,
            Route::Mp4(sp("live", "cam"))
        );
        assert_eq!(
            get("/live/cam/index.m3u8").unwrap().unwrap().route,
            Route::HlsIndex(sp("live", "cam"))
        );
        assert_eq!(
            get("/live/cam/s/ab12/part-3.1.m4s").unwrap().unwrap().route,
            Route::HlsSession {
                stream: sp("live", "cam"),
                session: "ab12".into(),
                file: "part-3.1.m4s".into()
            }
        );
        assert_eq!(
            get("/live/a%20b.flv").unwrap().unwrap().route,
            Route::Flv(sp("live", "a b"))
        );
    }

    #[test]
    fn incomplete_heads_wait_and_big_ones_are_refused() {
        assert_eq!(parse(b"GET /live/a.flv HTTP/1.1\r\nHost: x\r\n"), Ok(None));
        let mut big = b"GET /live/a.flv HTTP/1.1\r\nX-Pad: ".to_vec();
        big.resize(MAX_HEAD + 10, b'a');
        assert_eq!(parse(&big), Err(Refusal::HeadTooLarge));
        assert_eq!(Refusal::HeadTooLarge.status(), 431);
        let many: String = (0..100).map(|i| format!("H{i}: v\r\n")).collect();
        let req = format!("GET /live/a.flv HTTP/1.1\r\n{many}\r\n");
        assert_eq!(parse(req.as_bytes()), Err(Refusal::HeadTooLarge));
    }

    #[test]
    fn hostile_paths() {
        for p in [
            "/../etc/passwd",
            "/live/../x.flv",
            "/live/%2e%2e.flv",
            "/live/a%00b.flv",
            "/live/a%2fb.flv",
            "/live/a%zz.flv",
            "/live/%ff.flv",
            "/x",
            "/",
            "//a.flv",
            "/live/cam/s/../index.m3u8",
            "/live/cam/s/a-b/media.m3u8",
            "/live/cam/s/ab/../../x",
        ] {
            let r = get(p);
            assert!(r.is_err(), "{p}: {r:?}");
        }
        let long = format!("/live/{}.flv", "n".repeat(4096));
        assert_eq!(get(&long), Err(Refusal::NameTooLong));
        assert_eq!(
            parse(b"\x16\x03\x01garbage\r\n\r\n").unwrap_err().status(),
            400
        );
        assert_eq!(
            parse(b"POST /live/a.flv HTTP/1.1\r\n\r\n"),
            Err(Refusal::MethodNotAllowed)
        );
    }

    #[test]
    fn keep_alive_rules() {
        let r = parse(b"GET /a/b.flv HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!r.keep_alive);
        let r = parse(b"GET /a/b.flv HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!r.keep_alive);
        let r = parse(b"HEAD /a/b.flv HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(r.keep_alive && r.head_only);
    }
}
