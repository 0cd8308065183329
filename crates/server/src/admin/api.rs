//! The JSON API and `/metrics`.

use super::AdminState;
use crate::control::{ConnControl, ConnRole};
use crate::util::millis;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use rtmp_proto::session::CloseReason;
use serde::Serialize;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// An error the API answers with: a status and a message meant for a human, as JSON
/// `{"error": "...", "status": N}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// An error with `status` and a message saying what went wrong and what to do.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({ "error": self.message, "status": self.status.as_u16() })),
        )
            .into_response()
    }
}

pub(super) async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such endpoint; see docs/api.md (GET /api/v1/streams, /api/v1/connections, /metrics)",
    )
}

pub(super) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this endpoint",
    )
}

/// A stream's publisher as listed.
#[derive(Debug, Serialize)]
struct PublisherView {
    id: u64,
    peer: SocketAddr,
    /// How long it has been publishing.
    publishing_ms: Option<u64>,
    /// Receive rate over the last second.
    bitrate_bps: u64,
    #[serde(flatten)]
    media: crate::stream::MediaInfo,
}

#[derive(Debug, Serialize)]
struct StreamView {
    app: String,
    name: String,
    publisher: Option<PublisherView>,
    players: usize,
    gop_cache_frames: usize,
    gop_cache_bytes: usize,
    /// Bytes the HLS segmenter holds (null while nobody watches over HLS or MP4).
    hls_bytes: Option<usize>,
}

fn stream_view(stream: &crate::stream::Stream, now: Instant) -> StreamView {
    let snap = stream.snapshot();
    let (app, name) = stream
        .key
        .split_once('/')
        .unwrap_or((stream.key.as_str(), ""));
    StreamView {
        app: app.to_owned(),
        name: name.to_owned(),
        publisher: snap.publisher.map(|p| PublisherView {
            id: p.id,
            peer: p.peer,
            publishing_ms: snap
                .publishing_since
                .map(|s| millis(now.saturating_duration_since(s))),
            bitrate_bps: p.rates_bps(now).0,
            media: snap.media,
        }),
        players: snap.players,
        gop_cache_frames: snap.gop_frames,
        gop_cache_bytes: snap.gop_bytes,
        hls_bytes: snap.hls_bytes,
    }
}

fn all_streams(state: &AdminState) -> Vec<StreamView> {
    let now = Instant::now();
    let mut list: Vec<StreamView> = state
        .shared
        .registry
        .streams()
        .iter()
        .map(|s| stream_view(s, now))
        .collect();
    list.sort_by(|a, b| (&a.app, &a.name).cmp(&(&b.app, &b.name)));
    list
}

pub(super) async fn streams(State(state): State<AdminState>) -> Response {
    let playback = state.shared.playback_addr.get().map(|a| {
        json!({
            "port": a.port(),
            "paths": ["/{app}/{name}.flv", "/{app}/{name}/index.m3u8", "/{app}/{name}.mp4"],
        })
    });
    Json(json!({ "streams": all_streams(&state), "playback": playback })).into_response()
}

pub(super) async fn stream(
    State(state): State<AdminState>,
    Path((app, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let key = format!("{app}/{name}");
    let stream = state
        .shared
        .registry
        .streams()
        .into_iter()
        .find(|s| s.key == key)
        .ok_or_else(|| no_stream(&key))?;
    Ok(Json(stream_view(&stream, Instant::now())).into_response())
}

fn no_stream(key: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no live stream {key:?} (GET /api/v1/streams lists them)"),
    )
}

/// Kicks the publisher of `app/name`: its connection is reset (reason kicked) and the name is
/// free when this returns.
pub(super) async fn kick_stream(
    State(state): State<AdminState>,
    Path((app, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let key = format!("{app}/{name}");
    let id = state
        .shared
        .registry
        .streams()
        .into_iter()
        .find(|s| s.key == key)
        .and_then(|s| s.snapshot().publisher.map(|p| p.id));
    if id.is_none()
        || !state
            .shared
            .registry
            .evict_publisher(&key, CloseReason::Kicked)
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("{key:?} has no publisher to kick"),
        ));
    }
    tracing::info!(stream = %key, conn = ?id, "admin: publisher kicked");
    Ok(Json(json!({ "kicked": id, "stream": key, "name_free": true })).into_response())
}

#[derive(Debug, Serialize)]
struct Keepalive {
    enabled: bool,
    idle_s: Option<u64>,
    interval_s: Option<u64>,
    count: Option<u32>,
    user_timeout_ms: Option<u64>,
}

#[derive(Debug, Serialize)]
struct KernelView {
    tcp_info: Option<liveness::TcpInfo>,
    keepalive: Keepalive,
}

#[derive(Debug, Serialize)]
struct DeadlineView {
    timer: &'static str,
    in_ms: i64,
}

/// The deadline that will close the connection unless the peer does something.
#[derive(Debug, Serialize)]
struct ClosingView {
    /// The close reason it would give.
    reason: &'static str,
    in_ms: i64,
    /// The silence this deadline measures (since the last byte received, the last write
    /// progress or, while handshaking, the accept).
    silence_ms: u64,
    /// `silence_ms + in_ms`: the silence allowed.
    limit_ms: u64,
}

#[derive(Debug, Serialize)]
struct ConnView {
    id: u64,
    peer: SocketAddr,
    protocol: crate::control::Protocol,
    role: ConnRole,
    stream: Option<String>,
    age_ms: u64,
    bytes_in: u64,
    bytes_out: u64,
    rx_bps: u64,
    tx_bps: u64,
    /// ms since the peer last sent a byte.
    last_rx_ms: u64,
    /// ms since a write of ours last made progress.
    last_tx_ms: u64,
    queue_bytes: usize,
    fanout_lag: usize,
    next_deadline: Option<DeadlineView>,
    closing: Option<ClosingView>,
    kernel: Option<KernelView>,
}

fn signed_ms(at: Instant, now: Instant) -> i64 {
    match at.checked_duration_since(now) {
        Some(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        None => -i64::try_from(now.duration_since(at).as_millis()).unwrap_or(i64::MAX),
    }
}

fn kernel_view(c: &ConnControl) -> Option<KernelView> {
    c.with_socket(|fd| {
        let sock = socket2::SockRef::from(&fd);
        let enabled = sock.keepalive().unwrap_or(false);
        let secs = |r: std::io::Result<Duration>| r.ok().map(|d| d.as_secs());
        KernelView {
            tcp_info: liveness::tcp_info(fd).ok(),
            keepalive: Keepalive {
                enabled,
                idle_s: secs(sock.tcp_keepalive_time()),
                interval_s: secs(sock.tcp_keepalive_interval()),
                count: sock.tcp_keepalive_retries().ok(),
                user_timeout_ms: sock.tcp_user_timeout().ok().flatten().map(millis),
            },
        }
    })
}

fn conn_view(c: &ConnControl, now: Instant) -> ConnView {
    let o = c.observed();
    let last_rx = c.last_rx();
    let (rx_bps, tx_bps) = c.rates_bps(now);
    let closing = o.closing.map(|(reason, at)| {
        let from = match reason {
            // Once a publish or play has ended, the deadline counts from the end instead.
            "handshake_timeout" if o.role == ConnRole::Handshaking => c.started,
            "play_stall" => o.last_tx,
            _ => last_rx,
        };
        let silence = millis(now.saturating_duration_since(from));
        let in_ms = signed_ms(at, now);
        ClosingView {
            reason,
            in_ms,
            silence_ms: silence,
            limit_ms: silence.saturating_add_signed(in_ms),
        }
    });
    ConnView {
        id: c.id,
        peer: c.peer,
        protocol: c.protocol(),
        role: o.role,
        stream: o.stream,
        age_ms: millis(now.saturating_duration_since(c.started)),
        bytes_in: c.bytes_in.load(Ordering::Relaxed),
        bytes_out: c.bytes_out.load(Ordering::Relaxed),
        rx_bps,
        tx_bps,
        last_rx_ms: millis(now.saturating_duration_since(last_rx)),
        last_tx_ms: millis(now.saturating_duration_since(o.last_tx)),
        queue_bytes: o.queue_bytes,
        fanout_lag: o.fanout_lag,
        next_deadline: o.next.map(|(t, at)| DeadlineView {
            timer: t,
            in_ms: signed_ms(at, now),
        }),
        closing,
        kernel: kernel_view(c),
    }
}

pub(super) async fn connections(State(state): State<AdminState>) -> Response {
    let now = Instant::now();
    let list: Vec<ConnView> = state
        .shared
        .live
        .all()
        .iter()
        .map(|c| conn_view(c, now))
        .collect();
    Json(json!({ "connections": list })).into_response()
}

fn parse_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{raw:?} is not a connection id (a positive integer)"),
        )
    })
}

fn live_conn(state: &AdminState, id: u64) -> Result<Arc<ConnControl>, ApiError> {
    state.shared.live.get(id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no open connection {id} (it may have closed already)"),
        )
    })
}

pub(super) async fn connection(
    State(state): State<AdminState>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let c = live_conn(&state, parse_id(&raw)?)?;
    Ok(Json(conn_view(&c, Instant::now())).into_response())
}

/// Kicks a connection: reset with reason kicked. If it publishes, its name is free when this
/// returns (the registry slot is released here, not when the connection task gets to it).
pub(super) async fn kick_connection(
    State(state): State<AdminState>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&raw)?;
    let c = live_conn(&state, id)?;
    let held = state
        .shared
        .registry
        .streams()
        .into_iter()
        .find(|s| s.snapshot().publisher.is_some_and(|p| p.id == id))
        .map(|s| s.key.clone());
    if let Some(key) = &held {
        state
            .shared
            .registry
            .evict_publisher(key, CloseReason::Kicked);
    }
    c.close(CloseReason::Kicked);
    tracing::info!(
        conn = id,
        stream = held.as_deref().unwrap_or("-"),
        "admin: connection kicked"
    );
    Ok(Json(json!({ "kicked": id, "freed_stream": held })).into_response())
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct EventsQuery {
    #[serde(default)]
    after: u64,
}

pub(super) async fn events(
    State(state): State<AdminState>,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("bad query: {e} (expected ?after=<seq>)"),
        )
    })?;
    let events = state.shared.live.closes_after(q.after);
    let last = events.last().map_or(q.after, |e| e.seq);
    Ok(Json(json!({ "closes": events, "last_seq": last })).into_response())
}

pub(super) async fn metrics(State(state): State<AdminState>) -> Response {
    let body = state.shared.render_metrics();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
