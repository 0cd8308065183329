//! `GET /api/v1/cluster`: the cluster as this node sees it.
//! `GET /api/v1/relays`: every push and pull with its URL (keys masked), state, last close
//! reason, reconnect count, bytes and current bitrate.

use super::AdminState;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::time::Instant;

/// `GET /api/v1/cluster`: this node, its lease, the cluster's nodes and who owns which name
/// (`{"enabled": false}` without `[cluster]`).
pub(super) async fn cluster(State(state): State<AdminState>) -> Response {
    match &state.shared.cluster {
        Some(c) => {
            let mut v = serde_json::to_value(c.view()).unwrap_or_default();
            v["enabled"] = serde_json::Value::Bool(true);
            Json(v).into_response()
        }
        None => Json(json!({ "enabled": false })).into_response(),
    }
}

pub(super) async fn relays(State(state): State<AdminState>) -> Response {
    let list = state.shared.relays.list(Instant::now());
    Json(json!({ "relays": list })).into_response()
}
