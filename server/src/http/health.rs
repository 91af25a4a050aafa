//! Operations endpoints: `/healthz` for load balancers and `/metrics` for
//! Prometheus (loopback only, unless the request bears `--metrics-token`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::error::ErrorChain;
use crate::identity::AdminToken;
use crate::{AppState, Config, Metrics, Store};

/// A health check that takes longer than this counts as failed: a load balancer
/// would rather try another node than wait.
const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
}

/// 200 `ok` when the database answers, 503 otherwise.
async fn healthz(State(store): State<Store>) -> Response {
    match tokio::time::timeout(HEALTH_CHECK_TIMEOUT, store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ok\n").into_response(),
        Ok(Err(error)) => {
            tracing::warn!(error = %ErrorChain(&error), "health check: the database did not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
        }
        Err(_) => {
            tracing::warn!(
                "health check: the database did not answer within {HEALTH_CHECK_TIMEOUT:?}"
            );
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
        }
    }
}

/// The counters, to loopback peers, or to any peer bearing `--metrics-token`
/// (`Authorization: Bearer <token>`); 403 to the rest.
async fn metrics(
    State(config): State<Arc<Config>>,
    State(metrics): State<Arc<Metrics>>,
    request: Request,
) -> Response {
    let from_loopback = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(peer)| peer.ip().is_loopback());
    let bearer = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    let token_matches = match (&config.metrics_token, bearer) {
        (Some(expected), Some(given)) => AdminToken::new(expected).matches(given),
        _ => false,
    };
    if !from_loopback && !token_matches {
        let reason = if config.metrics_token.is_some() {
            "/metrics answers only to loopback, or to requests bearing the metrics token \
             (Authorization: Bearer <token>)\n"
        } else {
            "/metrics answers only to loopback; start the server with --metrics-token to \
             read it from elsewhere with Authorization: Bearer <token>\n"
        };
        return (StatusCode::FORBIDDEN, reason).into_response();
    }
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        metrics.render(),
    )
        .into_response()
}
