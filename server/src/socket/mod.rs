//! The WebSocket endpoint: `GET /socket/websocket?vsn=2.0.0&token=...`, the
//! Phoenix Channels v2 protocol on top, one [`connection`] task pair per socket.

mod connection;

use axum::Router;
use axum::extract::{Query, State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use roomscale_protocol::limits::MAX_FRAME_BYTES;
use serde::Deserialize;
use std::time::SystemTime;

use crate::AppState;

/// Bytes read from a socket at a time. Frames that are larger still arrive
/// whole; the buffer only grows for them.
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// The serializer version phoenix.js 1.7+ asks for.
pub const SERIALIZER_VSN: &str = "2.0.0";

pub fn router() -> Router<AppState> {
    Router::new().route("/socket/websocket", get(upgrade))
}

#[derive(Debug, Deserialize)]
struct SocketParams {
    vsn: Option<String>,
    token: Option<String>,
}

async fn upgrade(
    State(state): State<AppState>,
    Query(params): Query<SocketParams>,
    ws: WebSocketUpgrade,
) -> Response {
    if state.is_shutting_down() {
        return refuse(
            &state,
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the server is shutting down; reconnect in a moment".into(),
        );
    }
    match params.vsn.as_deref() {
        Some(SERIALIZER_VSN) => {}
        other => {
            let reason = format!(
                "serializer version {} is not supported; connect with vsn={SERIALIZER_VSN} (phoenix.js 1.7 or newer)",
                other.unwrap_or("(none)")
            );
            return refuse(&state, StatusCode::BAD_REQUEST, "bad_vsn", reason);
        }
    }
    let token = params.token.unwrap_or_default();
    let claims = match state.identity.verify_token(&token, SystemTime::now()) {
        Ok(claims) => claims,
        Err(error) => {
            return refuse(
                &state,
                StatusCode::FORBIDDEN,
                "bad_token",
                error.to_string(),
            );
        }
    };
    // Frames a little over our limit still arrive whole so the connection can say
    // what was wrong; far larger ones are cut off by the WebSocket layer.
    // Room frames are small; the default 128 KiB read buffer per socket would
    // be most of a connection's memory.
    ws.read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(MAX_FRAME_BYTES * 16)
        .max_frame_size(MAX_FRAME_BYTES * 16)
        .on_upgrade(move |socket| connection::serve(socket, state, claims))
}

fn refuse(state: &AppState, status: StatusCode, kind: &'static str, reason: String) -> Response {
    state.metrics.error(kind);
    (status, reason).into_response()
}
