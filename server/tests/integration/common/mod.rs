//! Shared test fixtures: the router in-process ([`TestApp`]), a real server on
//! a free loopback port ([`TestServer`]), and databases (SQLite in a temporary
//! directory, or a fresh PostgreSQL database).

#![allow(dead_code)] // Each test module uses a different part.

pub mod app;
pub mod client;
#[cfg(unix)]
pub mod process;
pub mod ws;

use std::future::Future;
use std::net::SocketAddr;

use roomscale_server::storage::{NewRoom, Room};
use roomscale_server::{AppState, Config, Identity, Store};
use sqlx::{Connection as _, Executor as _};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use app::TestApp;
pub use client::{Request, Response};

/// What answers a test's HTTP requests: the router in-process ([`TestApp`]) or
/// a real listener ([`TestServer`]). Helpers that only send requests (a
/// browser with its cookie) take either.
pub trait Http {
    fn state(&self) -> &AppState;
    /// The origin of the server's own pages, as a same-origin form names it.
    fn origin(&self) -> String;
    fn send(&self, request: Request) -> impl Future<Output = Response>;
}

/// Names a PostgreSQL server the tests may create databases on, e.g.
/// `postgres://roomscale:roomscale@127.0.0.1:5432/postgres`.
pub const POSTGRES_URL_VAR: &str = "ROOMSCALE_TEST_POSTGRES_URL";

/// A server serving [`roomscale_server::app`] on 127.0.0.1 with its own data
/// directory and SQLite database; stopped when dropped.
#[derive(Debug)]
pub struct TestServer {
    pub addr: SocketAddr,
    pub base_url: String,
    pub state: AppState,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
    _data_dir: TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    /// A server whose configuration `configure` changes first.
    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> TestServer {
        TestServer::start_on("127.0.0.1:0", configure).await
    }

    /// A server listening on `bind`, whose configuration `configure` changes
    /// first.
    pub async fn start_on(bind: &str, configure: impl FnOnce(&mut Config)) -> TestServer {
        let (state, shutdown, data_dir) = test_state(configure).await;

        let listener = TcpListener::bind(bind).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let serving = state.clone();
        let task = tokio::spawn(async move {
            roomscale_server::serve_app(listener, serving)
                .await
                .expect("test server failed");
        });
        TestServer {
            addr,
            base_url: format!("http://{addr}"),
            state,
            shutdown,
            task,
            _data_dir: data_dir,
        }
    }

    pub async fn send(&self, request: Request) -> Response {
        request.send(self.addr).await
    }

    pub async fn get(&self, path: &str) -> Response {
        self.send(Request::get(path)).await
    }

    /// Tells long-lived tasks that the server is stopping, as `run` does.
    pub fn signal_shutdown(&self) {
        self.shutdown.send_replace(true);
    }
}

impl Http for TestServer {
    fn state(&self) -> &AppState {
        &self.state
    }

    fn origin(&self) -> String {
        self.base_url.clone()
    }

    async fn send(&self, request: Request) -> Response {
        TestServer::send(self, request).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A fresh server state over a temporary data directory, with the
/// configuration `configure` changes first: what the in-process app and the
/// real-port server both start from.
pub async fn test_state(
    configure: impl FnOnce(&mut Config),
) -> (AppState, watch::Sender<bool>, TempDir) {
    let data_dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(data_dir.path());
    configure(&mut config);
    let store = Store::connect(&config.database_url()).await.unwrap();
    let identity = Identity::load_or_create(&config.secret_key_path()).unwrap();
    let (shutdown, shutdown_rx) = watch::channel(false);
    let state = AppState::new(config, store, identity, shutdown_rx);
    (state, shutdown, data_dir)
}

/// The rooms `GET /api/rooms` lists to a visitor without a cookie.
pub async fn listed_rooms(server: &impl Http) -> Vec<serde_json::Value> {
    let listed = server.send(Request::get("/api/rooms")).await.json();
    listed
        .as_array()
        .unwrap_or_else(|| panic!("the room list is not an array: {listed}"))
        .clone()
}

/// A fresh visitor's socket token and user id, from `POST /api/session`.
pub async fn new_session(server: &impl Http, name: &str) -> (String, String) {
    let response = server
        .send(Request::post("/api/session").json(&serde_json::json!({"name": name})))
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    let body = response.json();
    (
        body["token"].as_str().unwrap().to_string(),
        body["user_id"].as_str().unwrap().to_string(),
    )
}

/// Creates a room named `name` through the API as a new visitor; returns the
/// created answer (the room, and the visitor's cookie).
pub async fn post_room(server: &impl Http, name: &str) -> Response {
    let request =
        Request::post("/api/rooms").json(&serde_json::json!({"name": name, "description": ""}));
    let response = server.send(request).await;
    assert_eq!(response.status, 201, "{}", response.body);
    response
}

/// A room made straight in `store` with only a name, owned by the visitor
/// `owner` (a user id) or by nobody.
pub async fn stored_room(store: &Store, name: &str, owner: Option<&str>) -> Room {
    let room = NewRoom {
        name: name.into(),
        ..Default::default()
    };
    store
        .create_room(&room, owner)
        .await
        .unwrap_or_else(|e| panic!("cannot store the room {name:?}: {e}"))
}

/// Says why a test did not run. Written straight to stderr, past the test
/// harness's capture, so `cargo xtask test` can list every skip.
pub fn skip(reason: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "skipped: {reason}");
}

/// The PostgreSQL server to test against, when one is configured.
pub fn postgres_url() -> Option<String> {
    std::env::var(POSTGRES_URL_VAR)
        .ok()
        .filter(|url| !url.trim().is_empty())
}

/// Runs `test` against a fresh, empty PostgreSQL database whose URL it is given,
/// and drops the database afterwards, also when the test panics. Without a
/// configured server, prints why the test is skipped and returns.
pub async fn with_postgres_database<F, Fut>(test_name: &str, test: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(server_url) = postgres_url() else {
        skip(&format!(
            "{test_name} needs PostgreSQL (set {POSTGRES_URL_VAR}; cargo xtask test starts a local PostgreSQL)"
        ));
        return;
    };
    sqlx::any::install_default_drivers();
    let name = format!("roomscale_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::AnyConnection::connect(&server_url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {POSTGRES_URL_VAR}: {e}"));
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap();

    // In a task of its own, so that a failing test still gets its database dropped.
    let outcome = tokio::spawn(test(database_url(&server_url, &name))).await;

    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .await
        .unwrap();
    admin.close().await.unwrap();
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

/// `server_url` with its database name replaced by `database`.
fn database_url(server_url: &str, database: &str) -> String {
    let (base, query) = match server_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (server_url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut url = format!("{}/{database}", &base[..path_start]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

#[test]
fn database_urls_swap_the_database_name() {
    let check = |server: &str, expected: &str| assert_eq!(database_url(server, "t1"), expected);
    check("postgres://u:p@h:5432/postgres", "postgres://u:p@h:5432/t1");
    check("postgres://u:p@h:5432", "postgres://u:p@h:5432/t1");
    check(
        "postgres://h/postgres?sslmode=disable",
        "postgres://h/t1?sslmode=disable",
    );
}
