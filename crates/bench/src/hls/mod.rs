//! Low-latency HLS viewers, each one keep-alive connection and one request at a time, as a
//! low-latency player goes: `index.m3u8` opens a session; its media playlist gives the
//! preload-hint part; then, for each part, a blocking reload (`_HLS_msn`/`_HLS_part`)
//! answered when the part exists, and a `GET` of the part. Parts are counted into the
//! viewer's [`PlayerStats`] (bytes, parts as frames, their media duration as the timestamp),
//! requests and errors into the run's [`HlsStats`], and every blocking answer into a
//! [`Sample`] for the answer delays ([`delay`]).

pub(crate) mod delay;
mod playlist;
pub(crate) mod wire;

use crate::http::{Body, Head};
use crate::httpconn::{FetchError, HttpConn, Until};
use crate::stats::PlayerStats;
use delay::Sample;
use playlist::{PartId, PlaylistScan};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Longest wait for one response: the server answers a blocking reload within three target
/// durations (503 after that), so a longer silence is a timeout here.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after an error before the next request, so a failing viewer does not spin.
const BACKOFF: Duration = Duration::from_millis(100);
/// Error messages kept for the report.
const KEEP_ERRORS: usize = 5;

/// Requests completed (a response of any status), by kind.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Requests {
    pub(crate) index: u64,
    pub(crate) playlist: u64,
    /// Of `playlist`, those with `_HLS_msn`/`_HLS_part`.
    pub(crate) blocking: u64,
    pub(crate) part: u64,
}

impl Requests {
    pub(crate) fn total(&self) -> u64 {
        self.index + self.playlist + self.part
    }
}

/// What all the HLS viewers of a run saw.
#[derive(Debug, Default)]
pub(crate) struct HlsStats {
    pub(crate) requests: Requests,
    /// Non-2xx answers by status.
    pub(crate) status: BTreeMap<u16, u64>,
    pub(crate) timeouts: u64,
    /// Connections lost or unreadable (not timeouts).
    pub(crate) io_errors: u64,
    pub(crate) sessions: u64,
    pub(crate) samples: Vec<Sample>,
    pub(crate) messages: Vec<String>,
}

impl HlsStats {
    fn note(&mut self, msg: String) {
        if self.messages.len() < KEEP_ERRORS {
            self.messages.push(msg);
        }
    }
}

/// Counts a part's body.
#[derive(Default)]
struct Count {
    bytes: u64,
    wire: u64,
}

impl Body for Count {
    fn arrived(&mut self, n: usize, _now: Instant) {
        self.wire += n as u64;
    }
    fn head(&mut self, _head: &Head) {}
    fn data(&mut self, data: &[u8]) -> Result<(), &'static str> {
        self.bytes += data.len() as u64;
        Ok(())
    }
}

/// The next request of a viewer.
#[derive(Debug, Clone)]
enum Step {
    Index,
    /// The media playlist: plain, or blocking for this part.
    Playlist(Option<PartId>),
    Part {
        uri: String,
        duration_ms: u32,
        next: Option<PartId>,
    },
}

/// One LL-HLS viewer.
pub(crate) struct HlsViewer {
    addr: SocketAddr,
    index: String,
    stats: Rc<RefCell<PlayerStats>>,
    run: Rc<RefCell<HlsStats>>,
    /// Counts viewers whose session opened.
    started: Rc<Cell<usize>>,
    opened: bool,
    conn: Option<HttpConn>,
    /// The session's media playlist path, and the directory its URIs are relative to.
    media: Option<(String, String)>,
    /// Media duration of the parts fetched, in ms.
    played_ms: u32,
}

impl HlsViewer {
    pub(crate) fn new(
        addr: SocketAddr,
        index: String,
        stats: Rc<RefCell<PlayerStats>>,
        run: Rc<RefCell<HlsStats>>,
        started: Rc<Cell<usize>>,
    ) -> Self {
        Self {
            addr,
            index,
            stats,
            run,
            started,
            opened: false,
            conn: None,
            media: None,
            played_ms: 0,
        }
    }

    /// Plays until the task is dropped, recovering from errors as a player would; `permit`
    /// (a place among the connections being set up) is held until the first answer.
    pub(crate) async fn run(mut self, mut permit: Option<tokio::sync::SemaphorePermit<'_>>) {
        let mut step = Step::Index;
        loop {
            let result = self.step(&step).await;
            permit.take();
            step = match result {
                Ok(next) => next,
                Err(e) => {
                    {
                        let mut run = self.run.borrow_mut();
                        match e {
                            FetchError::Timeout => run.timeouts += 1,
                            _ => run.io_errors += 1,
                        }
                        run.note(format!("HLS: {e}"));
                    }
                    self.conn = None;
                    tokio::time::sleep(BACKOFF).await;
                    self.restart()
                }
            };
        }
    }

    /// Where to start again after an error: the session's playlist, or a new session.
    fn restart(&self) -> Step {
        if self.media.is_some() {
            Step::Playlist(None)
        } else {
            Step::Index
        }
    }

    /// `GET path` on the viewer's connection (opened if needed), within the timeout.
    async fn fetch(&mut self, path: &str, body: &mut impl Body) -> Result<Head, FetchError> {
        let addr = self.addr;
        let conn = &mut self.conn;
        let result = tokio::time::timeout(REQUEST_TIMEOUT, async {
            if conn.is_none() {
                *conn = Some(HttpConn::connect(addr).await?);
            }
            let c = conn.as_mut().ok_or(FetchError::Closed)?;
            c.get(path).await?;
            c.pump(body, Until::End).await
        })
        .await
        .unwrap_or(Err(FetchError::Timeout));
        if !matches!(result, Ok(head) if head.keep_alive) {
            self.conn = None;
        }
        result
    }

    /// Counts a non-2xx answer; the step after it.
    async fn refused(&mut self, what: &str, status: u16) -> Step {
        {
            let mut run = self.run.borrow_mut();
            *run.status.entry(status).or_default() += 1;
            run.note(format!("HLS: {what}: HTTP {status}"));
        }
        tokio::time::sleep(BACKOFF).await;
        if status == 404 && what == "playlist" {
            // The session expired: a new one.
            self.media = None;
        }
        self.restart()
    }

    async fn step(&mut self, step: &Step) -> Result<Step, FetchError> {
        match step {
            Step::Index => {
                let mut scan = PlaylistScan::multivariant();
                let path = self.index.clone();
                let head = self.fetch(&path, &mut scan).await?;
                self.run.borrow_mut().requests.index += 1;
                scan.finish().map_err(crate::http::HttpError::Body)?;
                let Some(uri) = scan.last_uri.filter(|_| head.status == 200) else {
                    return Ok(self.refused("index", head.status).await);
                };
                let media = resolve(&self.index, &uri);
                let dir = media[..media.rfind('/').map_or(0, |i| i + 1)].to_owned();
                self.media = Some((media, dir));
                self.run.borrow_mut().sessions += 1;
                if !self.opened {
                    self.opened = true;
                    self.started.set(self.started.get() + 1);
                }
                Ok(Step::Playlist(None))
            }
            Step::Playlist(want) => {
                let Some((media, _)) = &self.media else {
                    return Ok(Step::Index);
                };
                let path = match want {
                    Some((msn, part)) => format!("{media}?_HLS_msn={msn}&_HLS_part={part}"),
                    None => media.clone(),
                };
                let mut scan = PlaylistScan::media(*want);
                let sent = Instant::now();
                let head = self.fetch(&path, &mut scan).await?;
                let answered = Instant::now();
                scan.finish().map_err(crate::http::HttpError::Body)?;
                {
                    let mut run = self.run.borrow_mut();
                    run.requests.playlist += 1;
                    if let Some(part) = want.filter(|_| head.status == 200) {
                        run.requests.blocking += 1;
                        run.samples.push(Sample {
                            part,
                            sent,
                            answered,
                        });
                    }
                }
                if head.status != 200 {
                    return Ok(self.refused("playlist", head.status).await);
                }
                Ok(match (want, scan.found) {
                    (Some(_), Some(part)) => Step::Part {
                        uri: part.uri,
                        duration_ms: part.duration_ms,
                        next: scan.after.or(scan.hint),
                    },
                    (Some(want), None) => Step::Playlist(Some(scan.hint.unwrap_or(*want))),
                    (None, _) => match scan.hint {
                        Some(hint) => Step::Playlist(Some(hint)),
                        None => {
                            self.run
                                .borrow_mut()
                                .note("HLS: playlist without a preload hint".into());
                            tokio::time::sleep(BACKOFF).await;
                            Step::Playlist(None)
                        }
                    },
                })
            }
            Step::Part {
                uri,
                duration_ms,
                next,
            } => {
                let Some((_, dir)) = &self.media else {
                    return Ok(Step::Index);
                };
                let path = resolve(dir, uri);
                let mut count = Count::default();
                let head = self.fetch(&path, &mut count).await?;
                self.run.borrow_mut().requests.part += 1;
                if head.status != 200 {
                    return Ok(self.refused("part", head.status).await);
                }
                self.played_ms = self.played_ms.wrapping_add(*duration_ms);
                let mut stats = self.stats.borrow_mut();
                stats.bytes += count.bytes;
                stats.wire_bytes += count.wire;
                stats.frames += 1;
                stats.max_ts = Some(self.played_ms);
                Ok(Step::Playlist(*next))
            }
        }
    }
}

/// `uri` as a path on the server, relative to the resource at (or directory) `base`.
fn resolve(base: &str, uri: &str) -> String {
    if uri.starts_with('/') {
        return uri.to_owned();
    }
    if let Some(rest) = uri.strip_prefix("http://") {
        return rest
            .find('/')
            .map_or_else(|| "/".to_owned(), |i| rest[i..].to_owned());
    }
    let dir = &base[..base.rfind('/').map_or(0, |i| i + 1)];
    format!("{dir}{uri}")
}

#[cfg(test)]
mod tests {
    use super::resolve;

    #[test]
    fn uris_resolve_against_the_playlist() {
        assert_eq!(
            resolve("/live/x/index.m3u8", "s/ab/media.m3u8"),
            "/live/x/s/ab/media.m3u8"
        );
        assert_eq!(
            resolve("/live/x/s/ab/", "part-1.2.m4s"),
            "/live/x/s/ab/part-1.2.m4s"
        );
        assert_eq!(resolve("/a/b", "/c/d"), "/c/d");
        assert_eq!(resolve("/a/b", "http://h:1/c/d"), "/c/d");
    }
}
