//! The Roomscale server: room pages and a JSON API over HTTP, real-time rooms
//! over WebSocket, rooms and their events in SQLite or PostgreSQL.
//!
//! Entry points: [`run`] starts a whole server from a [`Config`]; [`app`] builds
//! the router alone over an [`AppState`], for tests that call it in-process
//! (`tower::ServiceExt::oneshot`) or serve it themselves ([`serve_app`]).
//!
//! Modules:
//! - [`address`]: where a channel's replies and pushes go.
//! - [`config`]: flags and environment variables.
//! - [`storage`]: [`storage::Store`], rooms and persisted room events, and
//!   [`storage::StorageError`], which knows nothing of HTTP.
//! - [`identity`]: the visitor cookie and socket tokens.
//! - [`http`]: pages, the JSON API, health and metrics endpoints.
//! - [`socket`]: the WebSocket endpoint speaking the room protocol.
//! - [`room`]: room actors, their supervisor, presence and pose relay.
//! - [`origin`]: which web pages may drive the server from a browser.
//! - [`outbox`]: per-connection send queues that never wait on a slow client.
//! - [`limits`]: rate limits and open-socket counts per address and user.
//! - [`metrics`]: counters rendered for Prometheus.
//! - [`janitor`]: the hourly purge of deleted rooms and old history.
//! - [`time`]: Unix milliseconds and RFC 3339, how times are stored and shown.
//! - [`error`]: the one error type and how it becomes a response.

pub mod address;
pub mod config;
pub mod error;
pub mod http;
pub mod identity;
pub mod janitor;
pub mod limits;
pub mod metrics;
pub mod origin;
pub mod outbox;
pub mod room;
pub mod socket;
pub mod storage;
pub mod time;
pub mod voice;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{FromRef, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::Config;
pub use identity::{AdminToken, Identity};
pub use metrics::Metrics;
pub use storage::Store;

/// How long open HTTP connections may take to finish after a shutdown signal.
const HTTP_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long long-lived tasks (sockets, rooms) may take to notice the shutdown
/// and let go of the state before the database is closed under them.
const TASK_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What the HTTP handlers and the server's long-lived tasks share; cheap to
/// clone. The router holds one; a handler takes only the parts it uses
/// (`State<Store>`, `State<Identity>`, ...: see the `FromRef` impls below), and
/// room actors get their own smaller context (`room::RoomContext`) built from it.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Rooms and their events. Used by the pages, the JSON API and `/healthz`;
    /// by sockets (does the room they join exist?) and by room actors.
    pub store: Store,
    /// The signing key: visitor cookies, socket tokens and form tokens. Used by
    /// the pages, the API's callers and socket upgrades.
    pub identity: Identity,
    /// Counters every part adds to; `/metrics` renders them.
    pub metrics: Arc<Metrics>,
    /// The settings. Read per request by the origin check, the security
    /// headers, the assets and `/metrics`; by sockets and room actors for
    /// their limits; by [`serve_app`] for the listener's.
    pub config: Arc<Config>,
    /// Becomes `true` when the server is shutting down. Long-lived tasks (sockets,
    /// room actors) watch it, say goodbye to their clients and finish, and
    /// [`run`] waits for every clone of this receiver to be dropped before it
    /// closes the database. Use [`AppState::shutdown_requested`] to wait for it.
    pub shutdown: watch::Receiver<bool>,
    /// The running room actors. Sockets send them their members' commands; the
    /// pages and the API close a room they delete; the SFU reports speakers.
    pub rooms: room::Rooms,
    /// The voice SFU, or why it could not start (the rooms work without it).
    /// Sockets hand it signaling; room actors send it positions and mutes.
    pub voice: Result<voice::Voice, Arc<str>>,
    /// Server-wide limits per address and per user: room creation and socket
    /// tokens (pages and API), open sockets (socket upgrades).
    pub limits: Arc<limits::Limits>,
    /// The operator's token for the JSON API, read only by
    /// [`http::caller::Caller`]; `None` when its file could not be read or
    /// written (the API then has no admin).
    pub admin_token: Option<AdminToken>,
}

/// The SFU's way to the room actors: it tells them who speaks and asks
/// whom a moderator removed.
struct RoomsForVoice(room::Rooms);

impl voice::RoomLink for RoomsForVoice {
    fn speaking(&self, room: uuid::Uuid, member: voice::MemberId, speaking: bool) {
        let command = room::RoomCommand::Speaking { member, speaking };
        if self.0.try_send(room, command) || speaking {
            return;
        }
        // The end of speech reaches a busy room too (a waiting task
        // delivers it), so no indicator stays lit over a muted member.
        let rooms = self.0.clone();
        tokio::spawn(async move {
            let command = room::RoomCommand::Speaking {
                member,
                speaking: false,
            };
            rooms.send(room, command).await
        });
    }

    fn removed_for(&self, room: uuid::Uuid, user_id: &str) -> Option<Duration> {
        self.0.banned_for(room, user_id)
    }
}

impl AppState {
    pub fn new(
        config: Config,
        store: Store,
        identity: Identity,
        shutdown: watch::Receiver<bool>,
    ) -> AppState {
        let rooms = room::Rooms::default();
        let metrics = Arc::new(Metrics::new());
        let secure_cookie = config
            .public_url
            .as_deref()
            .is_some_and(|url| url.to_ascii_lowercase().starts_with("https://"));
        let identity = identity.with_secure_cookie(secure_cookie);
        let admin_token = match AdminToken::load_or_create(&config.admin_token_path()) {
            Ok(token) => Some(token),
            Err(error) => {
                tracing::error!("the JSON API has no admin: {error}");
                None
            }
        };
        let voice = voice::Voice::start(
            config.voice_settings(),
            Arc::new(RoomsForVoice(rooms.clone())),
            metrics.clone(),
        )
        .map_err(|error| {
            tracing::error!("voice is off: {error:#}");
            Arc::from(format!("{error:#}"))
        });
        AppState {
            store,
            identity,
            metrics,
            limits: Arc::new(limits::Limits::new(&config)),
            config: Arc::new(config),
            shutdown,
            rooms,
            voice,
            admin_token,
        }
    }

    /// Completes once the server begins shutting down (at once if it already has).
    pub async fn shutdown_requested(&self) {
        let mut shutdown = self.shutdown.clone();
        // An error means the sender is gone, which only happens when the server
        // is going away: that counts as a shutdown too.
        let _ = shutdown.wait_for(|stopping| *stopping).await;
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// The parts of [`AppState`] a handler or middleware may take alone, as
/// `State<Part>`.
macro_rules! state_parts {
    ($($part:ty => $field:ident),* $(,)?) => {
        $(
            impl FromRef<AppState> for $part {
                fn from_ref(state: &AppState) -> $part {
                    state.$field.clone()
                }
            }
        )*
    };
}

state_parts! {
    Store => store,
    Identity => identity,
    Arc<Metrics> => metrics,
    Arc<Config> => config,
    room::Rooms => rooms,
    Arc<limits::Limits> => limits,
    Option<AdminToken> => admin_token,
}

/// The whole HTTP surface: every module's routes, a 404 for the rest, and response
/// counting for `/metrics`.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(http::pages::router())
        .merge(http::api::router())
        .merge(http::health::router())
        .merge(http::assets::router())
        .merge(socket::router())
        .fallback(http::not_found)
        // The last layer added runs first: the access log sees the final status.
        .layer(middleware::from_fn(http::security::time_limit))
        .layer(middleware::from_fn_with_state(
            state.config.clone(),
            http::security::check_origin,
        ))
        .layer(middleware::from_fn_with_state(
            state.config.clone(),
            http::security::security_headers,
        ))
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            count_responses,
        ))
        .layer(middleware::from_fn(http::security::access_log))
        .with_state(state)
}

async fn count_responses(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    metrics.http_response(response.status());
    response
}

/// Runs a server until SIGTERM or Ctrl-C: opens the database (migrating it), loads
/// or creates the signing key, listens, and on the signal stops accepting, tells
/// long-lived tasks to finish, waits briefly for them and closes the database.
pub async fn run(config: Config) -> anyhow::Result<()> {
    create_private_dir(&config.data_dir).with_context(|| {
        format!(
            "could not create the data directory {}; choose another with --data-dir",
            config.data_dir.display()
        )
    })?;
    let identity = Identity::load_or_create(&config.secret_key_path())?;
    let admin_token_path = config.admin_token_path();
    AdminToken::load_or_create(&admin_token_path).with_context(|| {
        format!(
            "could not set up the admin token; fix {} or choose another file with --admin-token-file",
            admin_token_path.display()
        )
    })?;
    tracing::info!(
        path = %admin_token_path.display(),
        "the admin token for the JSON API (Authorization: Bearer ...) is in this file"
    );
    let database_url = config.database_url();
    let shown_url = storage::redact_url(&database_url);
    // The storage error names the database and what to check; this names the
    // flags that choose it.
    let store = Store::connect(&database_url).await.context(
        "opening the database that --database-url (DATABASE_URL) names, or roomscale.db in \
         --data-dir",
    )?;
    let listener = TcpListener::bind(config.bind).await.with_context(|| {
        format!(
            "could not listen on {}; is another server using that port? choose another with --bind",
            config.bind
        )
    })?;
    let address = listener.local_addr().context("reading the bound address")?;
    tracing::info!(database = %shown_url, "listening on http://{address}");

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let state = AppState::new(config, store.clone(), identity, shutdown_rx);
    if let Err(reason) = &state.voice
        && state.config.voice_port != 0
    {
        anyhow::bail!("{reason}");
    }
    let janitor = janitor::spawn(store.clone(), state.config.clone(), state.shutdown.clone());
    serve(listener, state, shutdown_tx).await?;
    if let Err(error) = janitor.await {
        tracing::warn!("the janitor task failed: {error}");
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// The listener [`serve_app`] serves: at most `max_connections` open at once,
/// Nagle's algorithm off (pose batches are small and latency-bound, and waiting
/// to coalesce them adds up to 40 ms per hop), and a deadline for clients that
/// send their request too slowly (see [`http::connections`]).
pub fn listen_without_delay(
    listener: TcpListener,
    max_connections: u32,
    read_timeout: Duration,
) -> NoDelayListener {
    use axum::serve::ListenerExt as _;
    http::connections::CappedListener::new(listener, max_connections, read_timeout)
        .tap_io(set_no_delay)
}

/// A listener whose accepted sockets have Nagle's algorithm off; a named type
/// so that axum can tell handlers each connection's peer address.
pub type NoDelayListener = axum::serve::TapIo<
    http::connections::CappedListener,
    fn(&mut http::connections::GuardedStream),
>;

fn set_no_delay(stream: &mut http::connections::GuardedStream) {
    if let Err(error) = stream.tcp().set_nodelay(true) {
        tracing::debug!(%error, "could not set TCP_NODELAY on an accepted socket");
    }
}

/// Serves [`app`] on `listener`, with each request's peer address available
/// to handlers as `ConnectInfo<SocketAddr>` (per-address limits need it).
pub fn serve_app(
    listener: TcpListener,
    state: AppState,
) -> axum::serve::Serve<
    NoDelayListener,
    axum::extract::connect_info::IntoMakeServiceWithConnectInfo<Router, std::net::SocketAddr>,
    axum::middleware::AddExtension<Router, axum::extract::ConnectInfo<std::net::SocketAddr>>,
> {
    let listener = listen_without_delay(
        listener,
        state.config.max_connections,
        state.config.http_read_timeout,
    );
    axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
}

/// Creates `dir` (and its parents) readable only by the server's user (0700
/// where there are modes), and warns when an existing one is open to others.
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        builder.mode(0o700);
        builder.create(dir)?;
        let mode = std::fs::metadata(dir)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %dir.display(),
                mode = format!("{:o}", mode & 0o777),
                "the data directory is open to other users; run chmod 700 on it"
            );
        }
        Ok(())
    }
    #[cfg(not(unix))]
    builder.create(dir)
}

async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown_tx: watch::Sender<bool>,
) -> anyhow::Result<()> {
    let mut stopping = shutdown_tx.subscribe();
    let server = serve_app(listener, state).with_graceful_shutdown(async move {
        let _ = stopping.wait_for(|stopping| *stopping).await;
    });
    let mut server = tokio::spawn(server.into_future());

    tokio::select! {
        finished = &mut server => {
            finished.context("the server task failed")?.context("the server stopped")?;
            return Ok(());
        }
        () = termination_signal() => {}
    }

    tracing::info!("shutting down: refusing new connections, finishing open ones");
    shutdown_tx.send_replace(true);
    match tokio::time::timeout(HTTP_DRAIN_TIMEOUT, &mut server).await {
        Ok(finished) => finished
            .context("the server task failed")?
            .context("the server stopped")?,
        Err(_) => {
            tracing::warn!(
                "HTTP connections still open after {HTTP_DRAIN_TIMEOUT:?}; closing them"
            );
            server.abort();
        }
    }
    // Every task holding the state holds a shutdown receiver: when the last one is
    // dropped, nothing uses the database any more.
    if tokio::time::timeout(TASK_DRAIN_TIMEOUT, shutdown_tx.closed())
        .await
        .is_err()
    {
        tracing::warn!(
            "some socket or room tasks did not finish within {TASK_DRAIN_TIMEOUT:?}; stopping anyway"
        );
    }
    Ok(())
}

/// Completes on Ctrl-C, or on SIGTERM where there is such a thing.
async fn termination_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
