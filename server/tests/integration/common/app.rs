//! The server's router in-process, without a listener: each request goes
//! through [`roomscale_server::app`] with `tower::ServiceExt::oneshot`, as
//! axum's testing example does. The state behind it is the real one (real
//! SQLite in a temporary directory, the real signing key, limits and rooms);
//! only the TCP connection is left out, so tests of pages and the JSON API run
//! without ports and without waiting on sockets.
//!
//! Tests of the listener itself (the connection cap, the read deadline) and
//! of WebSockets use [`super::TestServer`], which serves the same router on
//! a real port.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::ConnectInfo;
use roomscale_server::{AppState, Config};
use tempfile::TempDir;
use tokio::sync::watch;
use tower::ServiceExt as _;

use super::{Http, Request, Response};

/// The `Host` every in-process request names: the server's own origin is
/// `http://` this, as it would be for a browser that reached it there.
pub const APP_HOST: &str = "rooms.test:4000";

/// The peer address handlers see unless a request names another: loopback,
/// as for a client on the same machine.
pub const LOOPBACK_PEER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 50_000);

/// The router over a fresh state with its own data directory and SQLite
/// database. Long-lived tasks the state started (room actors) see the server
/// shut down when it drops.
#[derive(Debug)]
pub struct TestApp {
    pub state: AppState,
    router: Router,
    /// Held so that the state's tasks run until the app is dropped.
    _shutdown: watch::Sender<bool>,
    _data_dir: TempDir,
}

impl TestApp {
    pub async fn start() -> TestApp {
        TestApp::start_with(|_| {}).await
    }

    /// An app whose configuration `configure` changes first.
    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> TestApp {
        let (state, shutdown, data_dir) = super::test_state(configure).await;
        TestApp {
            router: roomscale_server::app(state.clone()),
            state,
            _shutdown: shutdown,
            _data_dir: data_dir,
        }
    }

    /// Answers `request` as if it came from [`LOOPBACK_PEER`].
    pub async fn send(&self, request: Request) -> Response {
        self.send_from(LOOPBACK_PEER, request).await
    }

    /// Answers `request` as if it came from `peer` (what per-address limits
    /// and `/metrics` look at).
    pub async fn send_from(&self, peer: SocketAddr, request: Request) -> Response {
        let mut http_request = request.to_http(APP_HOST);
        http_request.extensions_mut().insert(ConnectInfo(peer));
        let response = self
            .router
            .clone()
            .oneshot(http_request)
            .await
            .unwrap_or_else(|never| match never {});
        Response::from_http(response).await
    }

    pub async fn get(&self, path: &str) -> Response {
        self.send(Request::get(path)).await
    }

    /// A fresh visitor's socket token and user id.
    pub async fn session(&self, name: &str) -> (String, String) {
        super::new_session(self, name).await
    }

    /// Creates a room named `name` through the API as a new visitor; returns
    /// the created answer (the room, and the visitor's cookie).
    pub async fn post_room(&self, name: &str) -> Response {
        super::post_room(self, name).await
    }

    /// The origin of the server's own pages, as a same-origin form names it.
    pub fn base_url(&self) -> String {
        format!("http://{APP_HOST}")
    }
}

impl Http for TestApp {
    fn state(&self) -> &AppState {
        &self.state
    }

    fn origin(&self) -> String {
        self.base_url()
    }

    async fn send(&self, request: Request) -> Response {
        TestApp::send(self, request).await
    }
}
