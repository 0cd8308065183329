//! The admin HTTP server: JSON API, Prometheus metrics and a live dashboard, in the same
//! process as the RTMP server and reading the same shared state.
//!
//! Kernel evidence (TCP_INFO, keepalive settings) is read by the handler itself on the
//! connection's socket, borrowed through [`ConnControl::with_socket`]: the connection task is
//! never interrupted, and the numbers are as fresh as the request. The descriptor is lent only
//! while the connection task owns the socket, under a lock, so a closed and reused descriptor
//! number is never read.
//!
//! [`ConnControl::with_socket`]: crate::control::ConnControl::with_socket

mod api;
mod relays;

use crate::shared::Shared;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use api::ApiError;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");
const WATCH_JS: &str = include_str!("assets/watch.js");

/// What the handlers share: the server's state and the required token, if any.
#[derive(Debug, Clone)]
pub struct AdminState {
    shared: Arc<Shared>,
    token: Option<Arc<str>>,
}

/// The admin API, metrics and dashboard for `shared`, guarded by `[http] token` when set.
pub fn router(shared: Arc<Shared>) -> Router {
    let token = shared.config.http.token.as_deref().map(Arc::from);
    let state = AdminState { shared, token };
    Router::new()
        .route("/", get(index))
        .route("/assets/app.js", get(app_js))
        .route("/assets/style.css", get(style_css))
        .route("/assets/watch.js", get(watch_js))
        .route("/metrics", get(api::metrics))
        .route("/api/v1/streams", get(api::streams))
        .route(
            "/api/v1/streams/{app}/{name}",
            delete(api::kick_stream).get(api::stream),
        )
        .route("/api/v1/connections", get(api::connections))
        .route(
            "/api/v1/connections/{id}",
            delete(api::kick_connection).get(api::connection),
        )
        .route("/api/v1/events", get(api::events))
        .route("/api/v1/relays", get(relays::relays))
        .route("/api/v1/cluster", get(relays::cluster))
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state)
}

/// A bound, not yet serving admin HTTP server.
#[derive(Debug)]
pub struct AdminServer {
    listener: TcpListener,
    router: Router,
}

impl AdminServer {
    /// Binds `[http] listen` for the server whose state is `shared`.
    pub async fn bind(shared: Arc<Shared>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(shared.config.http.listen).await?;
        Ok(Self {
            listener,
            router: router(shared),
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` is cancelled.
    pub async fn run(self, shutdown: CancellationToken) -> std::io::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
    }
}

/// Refuses a request without the token: `Authorization: Bearer <token>`, or `?token=` (so a
/// browser can open the dashboard; its script then sends the header).
async fn auth(State(state): State<AdminState>, req: Request, next: Next) -> Response {
    let Some(token) = &state.token else {
        return next.run(req).await;
    };
    let from_header = bearer(req.headers());
    let from_query = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")));
    let ok = [from_header, from_query]
        .into_iter()
        .flatten()
        .any(|given| same(given.as_bytes(), token.as_bytes()));
    if ok {
        return next.run(req).await;
    }
    let mut resp = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "this server requires a token: send \"Authorization: Bearer <token>\" (dashboard: open /?token=<token>)",
    )
    .into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    resp
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Compares without an early exit, so response time does not reveal a matching prefix.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn watch_js() -> Response {
    asset("text/javascript; charset=utf-8", WATCH_JS)
}

async fn style_css() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

#[cfg(test)]
mod tests;
