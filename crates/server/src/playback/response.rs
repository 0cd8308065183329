//! Response heads of the playback port: one status line, the headers every answer carries
//! (CORS, no caching for live media), and a one-line reason for every refusal.

use bytes::Bytes;
use std::fmt::Write as _;

/// The reason phrase of the statuses this port sends.
fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// How the body of an answer is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Body {
    /// `Content-Length: n`.
    Length(usize),
    /// `Transfer-Encoding: chunked` (a live body, never ending by itself).
    Chunked,
}

/// A response head.
pub(crate) fn head(
    status: u16,
    content_type: &str,
    body: Body,
    keep_alive: bool,
    allow_origin: &str,
    extra: &[(&str, &str)],
) -> Bytes {
    let mut h = String::with_capacity(256);
    let _ = write!(h, "HTTP/1.1 {status} {}\r\n", reason_phrase(status));
    let _ = write!(h, "Content-Type: {content_type}\r\n");
    match body {
        Body::Length(n) => {
            let _ = write!(h, "Content-Length: {n}\r\n");
        }
        Body::Chunked => h.push_str("Transfer-Encoding: chunked\r\n"),
    }
    h.push_str("Cache-Control: no-cache\r\n");
    if !allow_origin.is_empty() {
        let _ = write!(h, "Access-Control-Allow-Origin: {allow_origin}\r\n");
    }
    for (k, v) in extra {
        let _ = write!(h, "{k}: {v}\r\n");
    }
    h.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    Bytes::from(h)
}

/// A whole error answer: the status and a one-line reason as a plain-text body.
pub(crate) fn error(
    status: u16,
    reason: &str,
    keep_alive: bool,
    allow_origin: &str,
) -> (Bytes, Bytes) {
    let body = Bytes::from(format!("{reason}\n"));
    let head = head(
        status,
        "text/plain; charset=utf-8",
        Body::Length(body.len()),
        keep_alive,
        allow_origin,
        &[],
    );
    (head, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        let h = head(200, "video/x-flv", Body::Chunked, false, "*", &[]);
        let text = std::str::from_utf8(&h).unwrap_or_default();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("Transfer-Encoding: chunked\r\n"));
        assert!(text.contains("Access-Control-Allow-Origin: *\r\n"));
        assert!(text.ends_with("Connection: close\r\n\r\n"));
        let (h, b) = error(404, "no publisher for live/x", true, "");
        let text = std::str::from_utf8(&h).unwrap_or_default();
        assert!(text.contains(&format!("Content-Length: {}\r\n", b.len())));
        assert!(!text.contains("Access-Control"));
    }
}
