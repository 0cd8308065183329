//! HTTP-FLV viewers: one `GET /{app}/{name}.flv` each, then the chunked body read as fast as
//! it comes, its FLV tags counted by their headers into the same [`PlayerStats`] as RTMP
//! players (audio and video tags: what an RTMP player counts as media messages), so the two
//! compare figure for figure.

use crate::flvscan::FlvScan;
use crate::http::{Body, Head};
use crate::httpconn::{HttpConn, Until};
use crate::stats::PlayerStats;
use anyhow::{Context as _, bail};
use rtmp_proto::message::type_id;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Counts an HTTP-FLV body into a player's stats.
struct FlvBody {
    stats: Rc<RefCell<PlayerStats>>,
    scan: FlvScan,
    now: Instant,
    status: u16,
}

impl Body for FlvBody {
    fn arrived(&mut self, n: usize, now: Instant) {
        self.now = now;
        self.stats.borrow_mut().wire_bytes += n as u64;
    }

    fn head(&mut self, head: &Head) {
        self.status = head.status;
    }

    fn data(&mut self, data: &[u8]) -> Result<(), &'static str> {
        if self.status != 200 {
            return Ok(());
        }
        let mut stats = self.stats.borrow_mut();
        let now = self.now;
        self.scan.feed(data, |kind, size, ts| {
            if kind == type_id::AUDIO || kind == type_id::VIDEO {
                stats.on_media(ts, size, now);
            }
        })
    }
}

/// A started HTTP-FLV viewer: the server answered 200 and the body is flowing.
pub(crate) struct FlvViewer {
    conn: HttpConn,
    body: FlvBody,
}

impl FlvViewer {
    /// Connects and asks for `path`; returns once the server answered 200 (within `timeout`).
    pub(crate) async fn open(
        addr: SocketAddr,
        path: &str,
        stats: Rc<RefCell<PlayerStats>>,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let opened = tokio::time::timeout(timeout, async {
            let mut conn = HttpConn::connect(addr).await?;
            conn.get(path).await?;
            let mut body = FlvBody {
                stats,
                scan: FlvScan::default(),
                now: Instant::now(),
                status: 0,
            };
            let head = conn.pump(&mut body, Until::Head).await?;
            if head.status != 200 {
                bail!("GET {path}: HTTP {}", head.status);
            }
            Ok(Self { conn, body })
        })
        .await;
        opened.with_context(|| format!("GET {path}: no answer within {timeout:?}"))?
    }

    /// Counts the body until the server ends it or an error occurs.
    pub(crate) async fn run(mut self) -> anyhow::Result<()> {
        self.conn.pump(&mut self.body, Until::End).await?;
        bail!("the server ended the body")
    }
}
