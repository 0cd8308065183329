//! A sans-IO HTTP/1.1 response reader for the playback viewers: the head is parsed once
//! (status, framing, keep-alive), then the body is handed to a [`Body`] sink slice by slice,
//! where it lies in the read buffer. Chunked framing is stripped on the way; nothing of the
//! body is kept here, only a partial head or chunk-size line between reads.

use std::borrow::Cow;
use thiserror::Error;

/// A response head longer than this is refused (the server's are under 300 bytes).
const MAX_HEAD: usize = 8 * 1024;
/// A chunk-size line (hex size, optional extensions) longer than this is refused.
const MAX_CHUNK_LINE: usize = 128;
/// Headers parsed in a head.
const MAX_HEADERS: usize = 24;

/// What went wrong reading a response.
#[derive(Debug, Error)]
pub(crate) enum HttpError {
    #[error("malformed response head: {0}")]
    Head(#[from] httparse::Error),
    #[error("response head over {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("malformed Content-Length")]
    ContentLength,
    #[error("malformed chunk-size line")]
    ChunkSize,
    #[error("no CRLF after a chunk's data")]
    ChunkEnd,
    #[error("bytes after the response, with no request outstanding")]
    Unsolicited,
    #[error("malformed body: {0}")]
    Body(&'static str),
}

/// How the body of a response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Length(u64),
    Chunked,
    /// Until the server closes the connection.
    Close,
}

/// The parts of a response head the viewers act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) status: u16,
    pub(crate) framing: Framing,
    /// Whether the connection may carry the next request.
    pub(crate) keep_alive: bool,
}

/// Where a response's body goes.
pub(crate) trait Body {
    /// `n` bytes were just read from the socket at `now` (before they are fed).
    fn arrived(&mut self, _n: usize, _now: std::time::Instant) {}
    /// The head arrived (before any body bytes).
    fn head(&mut self, head: &Head);
    /// Body bytes, framing removed.
    fn data(&mut self, data: &[u8]) -> Result<(), &'static str>;
}

/// A complete line (CRLF removed) and the bytes after it.
type Line<'a> = (Cow<'a, [u8]>, &'a [u8]);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Length(u64),
    UntilClose,
    ChunkSize,
    ChunkData(u64),
    /// The CRLF after a chunk's data: how many of its two bytes are still due.
    ChunkEnd(u8),
    /// Trailer lines after the last chunk, up to the empty line.
    Trailer,
    Done,
}

/// One response at a time on a keep-alive connection.
#[derive(Debug)]
pub(crate) struct ResponseReader {
    state: State,
    /// A head or line split across reads (empty otherwise).
    partial: Vec<u8>,
    head: Option<Head>,
}

impl Default for ResponseReader {
    fn default() -> Self {
        Self {
            state: State::Head,
            partial: Vec::new(),
            head: None,
        }
    }
}

impl ResponseReader {
    /// Ready for the next response (after [`Self::feed`] returned `true`).
    pub(crate) fn reset(&mut self) {
        self.state = State::Head;
        self.partial.clear();
        self.head = None;
    }

    /// The head of the response being read, once it arrived.
    pub(crate) fn head(&self) -> Option<Head> {
        self.head
    }

    /// Whether the server closing the connection now ends the response properly.
    pub(crate) fn done_at_close(&self) -> bool {
        matches!(self.state, State::UntilClose | State::Done)
    }

    /// Feeds bytes read from the socket; `true` once the response is complete.
    pub(crate) fn feed(
        &mut self,
        mut data: &[u8],
        body: &mut impl Body,
    ) -> Result<bool, HttpError> {
        while !data.is_empty() {
            match self.state {
                State::Head => data = self.read_head(data, body)?,
                State::Length(left) => {
                    let take = usize::try_from(left).map_or(data.len(), |l| l.min(data.len()));
                    body.data(&data[..take]).map_err(HttpError::Body)?;
                    data = &data[take..];
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        State::Done
                    } else {
                        State::Length(left)
                    };
                }
                State::UntilClose => {
                    body.data(data).map_err(HttpError::Body)?;
                    data = &[];
                }
                State::ChunkSize => {
                    let Some((line, rest)) = self.line(data, MAX_CHUNK_LINE)? else {
                        return Ok(false);
                    };
                    let size = parse_chunk_size(&line).ok_or(HttpError::ChunkSize)?;
                    data = rest;
                    self.state = if size == 0 {
                        State::Trailer
                    } else {
                        State::ChunkData(size)
                    };
                }
                State::ChunkData(left) => {
                    let take = usize::try_from(left).map_or(data.len(), |l| l.min(data.len()));
                    body.data(&data[..take]).map_err(HttpError::Body)?;
                    data = &data[take..];
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        State::ChunkEnd(2)
                    } else {
                        State::ChunkData(left)
                    };
                }
                State::ChunkEnd(due) => {
                    let expect = if due == 2 { b'\r' } else { b'\n' };
                    if data[0] != expect {
                        return Err(HttpError::ChunkEnd);
                    }
                    data = &data[1..];
                    self.state = if due == 2 {
                        State::ChunkEnd(1)
                    } else {
                        State::ChunkSize
                    };
                }
                State::Trailer => {
                    let Some((line, rest)) = self.line(data, MAX_HEAD)? else {
                        return Ok(false);
                    };
                    data = rest;
                    if line.is_empty() {
                        self.state = State::Done;
                    }
                }
                State::Done => return Err(HttpError::Unsolicited),
            }
        }
        Ok(self.state == State::Done)
    }

    /// Parses the head, from `data` where it lies when it came whole, else from the partial
    /// buffer; returns what follows it.
    fn read_head<'a>(
        &mut self,
        data: &'a [u8],
        body: &mut impl Body,
    ) -> Result<&'a [u8], HttpError> {
        let (head, used) = if self.partial.is_empty() {
            match parse_head(data)? {
                Some((head, n)) => (head, n),
                None => {
                    self.stash(data, MAX_HEAD)?;
                    return Ok(&[]);
                }
            }
        } else {
            let before = self.partial.len();
            self.stash(data, MAX_HEAD)?;
            match parse_head(&self.partial)? {
                Some((head, n)) => (head, n - before),
                None => return Ok(&[]),
            }
        };
        self.partial.clear();
        self.head = Some(head);
        body.head(&head);
        self.state = match head.framing {
            Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
            Framing::Close => State::UntilClose,
        };
        Ok(&data[used..])
    }

    /// A CRLF-terminated line (without the CRLF) and what follows it; `None` when the line
    /// continues in the next read. Borrowed from `data` unless it was split across reads.
    fn line<'a>(&mut self, data: &'a [u8], max: usize) -> Result<Option<Line<'a>>, HttpError> {
        let Some(lf) = data.iter().position(|&b| b == b'\n') else {
            self.stash(data, max)?;
            return Ok(None);
        };
        if self.partial.len() + lf > max {
            return Err(HttpError::ChunkSize);
        }
        let mut line = if self.partial.is_empty() {
            Cow::Borrowed(&data[..lf])
        } else {
            let mut line = std::mem::take(&mut self.partial);
            line.extend_from_slice(&data[..lf]);
            Cow::Owned(line)
        };
        if line.last() == Some(&b'\r') {
            match &mut line {
                Cow::Borrowed(l) => *l = &l[..l.len() - 1],
                Cow::Owned(l) => {
                    l.pop();
                }
            }
        }
        Ok(Some((line, &data[lf + 1..])))
    }

    fn stash(&mut self, data: &[u8], max: usize) -> Result<(), HttpError> {
        if self.partial.len() + data.len() > max {
            return Err(if max == MAX_HEAD {
                HttpError::HeadTooLarge
            } else {
                HttpError::ChunkSize
            });
        }
        self.partial.extend_from_slice(data);
        Ok(())
    }
}

/// The head at the start of `buf` and its length, or `None` if incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(n) = resp.parse(buf)? else {
        return Ok(None);
    };
    let status = resp.code.unwrap_or(0);
    let mut keep_alive = resp.version == Some(1);
    let mut framing = Framing::Close;
    for h in resp.headers.iter() {
        let value = std::str::from_utf8(h.value).unwrap_or("").trim();
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if value.to_ascii_lowercase().contains("chunked") {
                framing = Framing::Chunked;
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            if framing != Framing::Chunked {
                framing = Framing::Length(value.parse().map_err(|_| HttpError::ContentLength)?);
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            if value.eq_ignore_ascii_case("close") {
                keep_alive = false;
            } else if value.eq_ignore_ascii_case("keep-alive") {
                keep_alive = true;
            }
        }
    }
    // 1xx, 204 and 304 have no body, whatever the headers say.
    if (100..200).contains(&status) || status == 204 || status == 304 {
        framing = Framing::Length(0);
    }
    if framing == Framing::Close {
        keep_alive = false;
    }
    Ok(Some((
        Head {
            status,
            framing,
            keep_alive,
        },
        n,
    )))
}

/// The size of a chunk-size line: hex digits, then optional `;extensions`.
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let hex = line.split(|&b| b == b';').next()?;
    let hex = std::str::from_utf8(hex).ok()?.trim();
    if hex.is_empty() || hex.len() > 15 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect {
        head: Option<Head>,
        body: Vec<u8>,
    }

    impl Body for Collect {
        fn head(&mut self, head: &Head) {
            self.head = Some(*head);
        }
        fn data(&mut self, data: &[u8]) -> Result<(), &'static str> {
            self.body.extend_from_slice(data);
            Ok(())
        }
    }

    /// Feeds `wire` in pieces of `step` bytes; the result of the last feed and what came out.
    fn run(wire: &[u8], step: usize) -> (Result<bool, String>, Collect) {
        let mut r = ResponseReader::default();
        let mut c = Collect::default();
        let mut last = Ok(false);
        for piece in wire.chunks(step) {
            last = r.feed(piece, &mut c).map_err(|e| e.to_string());
            if last.is_err() {
                break;
            }
        }
        (last, c)
    }

    #[test]
    fn chunked_body_in_any_split() {
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-T: 1\r\n\r\n";
        for step in 1..=wire.len() {
            let (done, c) = run(wire, step);
            assert_eq!(done, Ok(true), "step {step}");
            assert_eq!(c.body, b"hello, world", "step {step}");
            let head = c.head.unwrap_or(Head {
                status: 0,
                framing: Framing::Close,
                keep_alive: false,
            });
            assert_eq!(head.status, 200);
            assert_eq!(head.framing, Framing::Chunked);
            assert!(head.keep_alive);
        }
    }

    #[test]
    fn content_length_and_close() {
        let wire = b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\nConnection: close\r\n\r\ngone";
        for step in 1..=wire.len() {
            let (done, c) = run(wire, step);
            assert_eq!(done, Ok(true));
            assert_eq!(c.body, b"gone");
            assert_eq!(c.head.map(|h| (h.status, h.keep_alive)), Some((404, false)));
        }
    }

    #[test]
    fn next_response_after_reset() {
        let mut r = ResponseReader::default();
        let mut c = Collect::default();
        let one = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert!(matches!(r.feed(one, &mut c), Ok(true)));
        assert!(matches!(r.feed(b"x", &mut c), Err(HttpError::Unsolicited)));
        r.reset();
        assert!(matches!(
            r.feed(b"HTTP/1.1 204 No Content\r\n\r\n", &mut c),
            Ok(true)
        ));
    }

    #[test]
    fn malformed_input_is_an_error() {
        for wire in [
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\naXY",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTX/1.1 200 OK\r\n\r\n",
        ] {
            let (result, _) = run(wire, wire.len());
            assert!(result.is_err(), "{}", String::from_utf8_lossy(wire));
        }
        let (result, _) = run(&vec![b'a'; MAX_HEAD + 1], 100);
        assert!(result.is_err());
    }
}
