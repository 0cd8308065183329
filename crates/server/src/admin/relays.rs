//! `GET /api/v1/relays`: every push and pull with its URL (keys masked), state, last close
//! reason, reconnect count, bytes and current bitrate.

use super::AdminState;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::time::Instant;

pub(super) async fn relays(State(state): State<AdminState>) -> Response {
    let list = state.shared.relays.list(Instant::now());
    Json(json!({ "relays": list })).into_response()
}
