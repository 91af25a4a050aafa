//! What every request passes through on its way in and out: the origin check
//! for state-changing requests, a time limit for handlers, the security headers
//! of every response, and the access log (which never shows a socket token).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::header::{
    CONTENT_SECURITY_POLICY, HOST, HeaderValue, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderName, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};

use super::html::{escape, layout};
use crate::Config;
use crate::error::Error;

/// How long a handler may take, reading the request body included. A WebSocket
/// upgrade's handler answers at once; the socket then lives on outside it.
pub const HANDLER_TIMEOUT: Duration = Duration::from_secs(30);

/// The query parameters whose values the access log never shows.
const SECRET_QUERY_PARAMETERS: &[&str] = &["token"];

const PERMISSIONS_POLICY: HeaderName = HeaderName::from_static("permissions-policy");

/// Refuses POST, PUT, PATCH and DELETE requests that a browser made for a page
/// of another origin (see [`crate::origin`]): 403, as JSON under `/api/` and
/// as a page elsewhere.
pub async fn check_origin(
    State(config): State<Arc<Config>>,
    request: Request,
    next: Next,
) -> Response {
    let changes_state = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if changes_state && let Err(reason) = crate::origin::check(request.headers(), &config) {
        tracing::info!(
            method = %request.method(),
            path = %request.uri().path(),
            "refused a cross-site request: {reason}"
        );
        return if request.uri().path().starts_with("/api/") {
            Error::Forbidden(reason).into_response()
        } else {
            let body = format!(
                "<h1>Refused</h1>\n<p>{}. Nothing was changed.</p>",
                escape(&reason)
            );
            (StatusCode::FORBIDDEN, Html(layout("Refused", &body))).into_response()
        };
    }
    next.run(request).await
}

/// Cuts a handler that takes longer than [`HANDLER_TIMEOUT`] (a body trickling
/// in, a stuck query) with 408.
pub async fn time_limit(request: Request, next: Next) -> Response {
    match tokio::time::timeout(HANDLER_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "The request was not finished within {} seconds; send it again.\n",
                HANDLER_TIMEOUT.as_secs()
            ),
        )
            .into_response(),
    }
}

/// Adds the security headers to every response: what the page may load and
/// connect to, that no other site may frame it, what it tells other sites it
/// was referred from, which devices it may ask for.
pub async fn security_headers(
    State(config): State<Arc<Config>>,
    request: Request,
    next: Next,
) -> Response {
    let policy = content_security_policy(&config, request.headers().get(HOST));
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if let Ok(policy) = HeaderValue::try_from(policy) {
        headers.insert(CONTENT_SECURITY_POLICY, policy);
    }
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(
        PERMISSIONS_POLICY,
        HeaderValue::from_static("microphone=(self), xr-spatial-tracking=(self)"),
    );
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// The Content-Security-Policy: scripts only from this origin (and
/// WebAssembly, which Babylon.js compiles), no plugins, no framing. Styles may
/// be inline (the room client styles its overlay from script), scripts never.
/// The room's WebSocket is named explicitly for the host the page came from,
/// for browsers that do not count `ws:` as `'self'`.
fn content_security_policy(config: &Config, host: Option<&HeaderValue>) -> String {
    let public_host = config
        .public_url
        .as_deref()
        .and_then(crate::origin::origin_of)
        .and_then(|origin| origin.split_once("://").map(|(_, host)| host.to_string()));
    let host = public_host.or_else(|| {
        host.and_then(|value| value.to_str().ok())
            .filter(|host| {
                !host.is_empty()
                    && host
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
            })
            .map(str::to_string)
    });
    let sockets = match host {
        Some(host) => format!(" ws://{host} wss://{host}"),
        None => String::new(),
    };
    format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; \
         media-src 'self' blob:; font-src 'self' data:; \
         connect-src 'self' data: blob:{sockets}; worker-src 'self' blob:; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// One line per request at info: method, path (with secrets in the query
/// redacted), status and duration.
pub async fn access_log(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let target = redacted_target(request.uri());
    let response = next.run(request).await;
    tracing::info!(
        target: "roomscale_server::access",
        %method,
        path = %target,
        status = response.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    response
}

/// The path and query of `uri`, with the value of every secret query
/// parameter replaced by `[redacted]`.
pub fn redacted_target(uri: &axum::http::Uri) -> String {
    let path = uri.path();
    let Some(query) = uri.query() else {
        return path.to_string();
    };
    let query = query
        .split('&')
        .map(|pair| {
            let name = pair.split_once('=').map_or(pair, |(name, _)| name);
            if SECRET_QUERY_PARAMETERS
                .iter()
                .any(|secret| name.eq_ignore_ascii_case(secret))
            {
                format!("{name}=[redacted]")
            } else {
                pair.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("&");
    format!("{path}?{query}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_in_queries_are_redacted() {
        let check = |uri: &str, expected: &str| {
            assert_eq!(redacted_target(&uri.parse().unwrap()), expected, "{uri}");
        };
        check("/rooms", "/rooms");
        check(
            "/socket/websocket?vsn=2.0.0&token=abc.def",
            "/socket/websocket?vsn=2.0.0&token=[redacted]",
        );
        check(
            "/x?TOKEN=abc&token&a=b",
            "/x?TOKEN=[redacted]&token=[redacted]&a=b",
        );
        check("/x?tokens=1", "/x?tokens=1");
    }
}
