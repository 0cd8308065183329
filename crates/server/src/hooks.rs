//! HTTP hooks: an external service decides who may publish or play, and hears when publishers,
//! players and connections end.
//!
//! A hook endpoint is a peer like any other and may be dead: every call has `[hooks] timeout`
//! as a hard deadline over connect, request and response, and a deadline passed is a denial.
//! Decisions are bounded by a semaphore (one call over the bound is denied at once rather than
//! queued), notifications by a fixed-size queue drained by one task (when full they are dropped
//! and counted), so a slow endpoint can never make memory or tasks grow without bound, nor
//! block a connection's event loop: the connection awaits its decision inside its own select
//! loop, still serving its socket and its deadlines.

use crate::auth::{Action, Denial};
use crate::config::{HooksConfig, parse_url};
use bytes::Bytes;
use http::{Request, StatusCode, Uri, header};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};

/// A pending publish/play decision: `Ok` allows, `Err` says why not (for the log).
pub type HookCall = Pin<Box<dyn Future<Output = Result<(), Denial>> + Send>>;

/// Who asks for what, as the decision hooks are told.
#[derive(Debug, Clone)]
pub struct AccessRequest<'a> {
    /// Publish or play.
    pub action: Action,
    /// The application (`connect`'s app).
    pub app: &'a str,
    /// The stream name, without its query.
    pub stream: &'a str,
    /// The query as sent (`key=…&…`), so the hook can check its own credentials.
    pub query: &'a str,
    /// The client.
    pub client_addr: SocketAddr,
    /// The connection, as in logs and the admin API.
    pub conn_id: u64,
}

/// Which notification hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// A publisher ended.
    PublishDone,
    /// A player ended.
    PlayDone,
    /// A connection closed.
    Close,
}

impl Notice {
    /// The `event` field of the JSON.
    pub fn label(self) -> &'static str {
        match self {
            Self::PublishDone => "publish_done",
            Self::PlayDone => "play_done",
            Self::Close => "close",
        }
    }
}

/// What a notification reports.
#[derive(Debug, Clone)]
pub struct Ended<'a> {
    /// The application, if `connect` got that far.
    pub app: &'a str,
    /// The stream name, if the connection published or played one.
    pub stream: Option<&'a str>,
    /// The client.
    pub client_addr: SocketAddr,
    /// The connection.
    pub conn_id: u64,
    /// The close reason label (`taken_over`, `publish_idle`, …) or `unpublished` / `stopped`.
    pub reason: &'a str,
    /// How long the publisher, player or connection lasted.
    pub duration: Duration,
    /// Bytes the connection received so far.
    pub bytes_in: u64,
    /// Bytes the connection sent so far.
    pub bytes_out: u64,
}

struct Note {
    url: Uri,
    body: Bytes,
    event: &'static str,
}

/// The hook client every connection shares.
#[derive(Debug)]
pub struct Hooks {
    on_publish: Option<Uri>,
    on_play: Option<Uri>,
    on_publish_done: Option<Uri>,
    on_play_done: Option<Uri>,
    on_close: Option<Uri>,
    timeout: Duration,
    in_flight: Arc<Semaphore>,
    notes: Option<mpsc::Sender<Note>>,
    dropped: AtomicU64,
}

impl std::fmt::Debug for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Note").field("url", &self.url).finish()
    }
}

impl Hooks {
    /// The hooks of `config`; with a notification URL, spawns the task that sends them (so call
    /// it inside the runtime). Invalid URLs count as unset: `Config::validate` refuses them.
    pub fn new(config: &HooksConfig) -> Arc<Self> {
        let url = |u: &Option<String>| u.as_deref().and_then(|u| parse_url(u).ok());
        let notifies = [
            &config.on_publish_done,
            &config.on_play_done,
            &config.on_close,
        ]
        .iter()
        .any(|u| u.is_some());
        let notes = match tokio::runtime::Handle::try_current() {
            Ok(rt) if notifies => {
                let (tx, rx) = mpsc::channel(config.queue.max(1));
                rt.spawn(send_notes(rx, config.timeout));
                Some(tx)
            }
            Ok(_) => None,
            Err(_) => {
                if notifies {
                    tracing::warn!("no runtime: hook notifications are off");
                }
                None
            }
        };
        Arc::new(Self {
            on_publish: url(&config.on_publish),
            on_play: url(&config.on_play),
            on_publish_done: url(&config.on_publish_done),
            on_play_done: url(&config.on_play_done),
            on_close: url(&config.on_close),
            timeout: config.timeout,
            in_flight: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            notes,
            dropped: AtomicU64::new(0),
        })
    }

    /// Whether a decision hook is configured for `action`: then a 2xx from it is what
    /// authorises the client (also for takeover).
    pub fn decides(&self, action: Action) -> bool {
        match action {
            Action::Publish => self.on_publish.is_some(),
            Action::Play => self.on_play.is_some(),
        }
    }

    /// Starts asking the decision hook for `req`; `None` when none is configured. The future
    /// resolves within `[hooks] timeout`, always.
    pub fn authorize(&self, req: &AccessRequest<'_>) -> Option<HookCall> {
        let url = match req.action {
            Action::Publish => self.on_publish.clone(),
            Action::Play => self.on_play.clone(),
        }?;
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            return Some(Box::pin(std::future::ready(Err(Denial::HookBusy))));
        };
        let args: serde_json::Map<String, serde_json::Value> = crate::auth::query_pairs(req.query)
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect();
        let body = serde_json::json!({
            "action": req.action.label(),
            "app": req.app,
            "stream": req.stream,
            "query": req.query,
            "args": args,
            "client_addr": req.client_addr.to_string(),
            "conn_id": req.conn_id,
        });
        let body = Bytes::from(body.to_string());
        let timeout = self.timeout;
        Some(Box::pin(async move {
            let answer = tokio::time::timeout(timeout, post(&url, body)).await;
            drop(permit);
            match answer {
                Ok(Ok(status)) if status.is_success() => Ok(()),
                Ok(Ok(status)) => Err(Denial::HookStatus(status)),
                Ok(Err(e)) => Err(Denial::HookFailed(e)),
                Err(_) => Err(Denial::HookTimeout(timeout)),
            }
        }))
    }

    /// Queues a notification; never waits. When the queue is full it is dropped and counted.
    pub fn notify(&self, notice: Notice, ended: &Ended<'_>) {
        let url = match notice {
            Notice::PublishDone => &self.on_publish_done,
            Notice::PlayDone => &self.on_play_done,
            Notice::Close => &self.on_close,
        };
        let (Some(url), Some(tx)) = (url, &self.notes) else {
            return;
        };
        let body = serde_json::json!({
            "event": notice.label(),
            "app": ended.app,
            "stream": ended.stream,
            "client_addr": ended.client_addr.to_string(),
            "conn_id": ended.conn_id,
            "reason": ended.reason,
            "duration_ms": u64::try_from(ended.duration.as_millis()).unwrap_or(u64::MAX),
            "bytes_in": ended.bytes_in,
            "bytes_out": ended.bytes_out,
        });
        let note = Note {
            url: url.clone(),
            body: Bytes::from(body.to_string()),
            event: notice.label(),
        };
        if tx.try_send(note).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(
                    dropped_total = n,
                    "hook notification dropped: queue full or sender stopped (hooks.queue)"
                );
            }
        }
    }

    /// Notifications dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Sends queued notifications one at a time, each within `timeout`: a dead endpoint costs one
/// timeout per notification, and the bounded queue in front absorbs (or drops) the rest.
async fn send_notes(mut rx: mpsc::Receiver<Note>, timeout: Duration) {
    while let Some(note) = rx.recv().await {
        match tokio::time::timeout(timeout, post(&note.url, note.body)).await {
            Ok(Ok(status)) if status.is_success() => {
                tracing::debug!(event = note.event, "hook notified");
            }
            Ok(Ok(status)) => {
                tracing::warn!(event = note.event, url = %note.url, %status, "hook notification refused");
            }
            Ok(Err(e)) => {
                tracing::warn!(event = note.event, url = %note.url, "hook notification failed: {e}");
            }
            Err(_) => {
                tracing::warn!(event = note.event, url = %note.url, "hook notification timed out after {timeout:?}");
            }
        }
    }
}

/// One POST on a fresh connection; only the status matters. The caller bounds it in time.
async fn post(url: &Uri, body: Bytes) -> Result<StatusCode, String> {
    let host = url.host().ok_or("no host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = url.port_u16().unwrap_or(80);
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("connect to {host}:{port}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| e.to_string())?;
    let authority = url.authority().map_or(host, |a| a.as_str());
    let path = url.path_and_query().map_or("/", |p| p.as_str());
    let request = Request::post(path)
        .header(header::HOST, authority)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, "lifeline")
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    let send = sender.send_request(request);
    tokio::pin!(conn, send);
    tokio::select! {
        biased;
        r = &mut send => return r.map(|resp| resp.status()).map_err(|e| e.to_string()),
        r = &mut conn => r.map_err(|e| e.to_string())?,
    }
    // The connection ended cleanly: an answer it read is already waiting for `send`.
    send.await
        .map(|resp| resp.status())
        .map_err(|e| e.to_string())
}
