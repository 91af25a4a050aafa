//! The WebSocket endpoint: `GET /socket/websocket?vsn=2.0.0&token=...`, the
//! Phoenix Channels v2 protocol on top, one [`connection`] task pair per socket.
//!
//! Before a socket opens, the upgrade must pass, in order: the server is not
//! shutting down; the serializer version is one we speak; the page asking
//! (`Origin`) is one of this server's own or an `--allowed-origin` (403
//! otherwise; programs that send no `Origin` pass); the socket token is valid
//! (403); and neither the peer's IP address (an IPv6 one by its /64, see
//! [`crate::limits::address_key`]) nor the token's user already holds as many
//! open sockets as `--sockets-per-ip` / `--sockets-per-user` allow (429). The
//! two places taken are held for the socket's whole life, its closing
//! handshake included.

mod connection;
mod silence;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, Query, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use roomscale_protocol::limits::MAX_FRAME_BYTES;
use serde::Deserialize;
use std::time::SystemTime;

use crate::AppState;

/// Bytes read from a socket at a time. Frames that are larger still arrive
/// whole; the buffer only grows for them. A pose push is about 70 bytes, so
/// this holds several; every connection keeps this much for its life.
const READ_BUFFER_BYTES: usize = 512;

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
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
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
    // A page on another site must not open a socket in the visitor's name.
    if let Err(reason) = crate::origin::check(&headers, &state.config) {
        return refuse(&state, StatusCode::FORBIDDEN, "origin_refused", reason);
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
    let limits = &state.limits;
    let Some(ip_place) = limits
        .sockets_per_ip
        .enter(crate::limits::address_key(peer.ip()))
    else {
        let reason = format!(
            "too many open connections from your address {}: at most {} at a time; \
             close another tab or app, or wait for one to end",
            peer.ip(),
            limits.sockets_per_ip.max()
        );
        return refuse(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            "sockets_per_ip",
            reason,
        );
    };
    let Some(user_place) = limits.sockets_per_user.enter(claims.user_id.clone()) else {
        let reason = format!(
            "too many open connections for this visitor: at most {} at a time; \
             close another tab or app, or wait for one to end",
            limits.sockets_per_user.max()
        );
        return refuse(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            "sockets_per_user",
            reason,
        );
    };
    let places = connection::Places {
        _ip: ip_place,
        _user: user_place,
    };
    // Frames a little over our limit still arrive whole so the connection can say
    // what was wrong; larger ones are cut off by the WebSocket layer, so that
    // no socket holds more than twice the limit of one message in memory.
    // Room frames are small; the default 128 KiB read buffer per socket would
    // be most of a connection's memory. Each frame is written as it is handed
    // over rather than gathered first: the write buffer keeps, for the
    // socket's whole life, the room of the largest write it ever held, and a
    // gathered burst (a join reply and the presence that follows it) is many
    // times one frame. A round of one pose batch is one write either way.
    ws.read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_message_size(MAX_FRAME_BYTES * 2)
        .max_frame_size(MAX_FRAME_BYTES * 2)
        .on_upgrade(move |socket| connection::serve(socket, state, claims, places))
}

fn refuse(state: &AppState, status: StatusCode, kind: &'static str, reason: String) -> Response {
    state.metrics.error(kind);
    (status, reason).into_response()
}
