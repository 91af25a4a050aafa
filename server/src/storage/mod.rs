//! Persistent rooms and room events, in SQLite or PostgreSQL.
//!
//! One [`Store`] over an `sqlx::AnyPool` serves both backends with the same SQL
//! and the same migrations (`server/migrations/`), so what the tests prove on one
//! holds for the other. Queries use `$1`-style parameters, which both accept.
//!
//! Storage has its own error type, [`StorageError`], and knows nothing of HTTP;
//! timestamps are Unix milliseconds ([`crate::time`]).

mod error;
mod events;
mod objects;
mod rooms;

use std::borrow::Cow;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::error::ErrorKind;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyConnection, AnyPool, Connection as _, Executor, SqlSafeStr};

pub use error::{FieldErrors, Result, StorageError, redact_url};
pub use events::EventPage;
pub use rooms::{
    DELETED_ROOMS_KEPT, NewRoom, Room, RoomCursor, RoomListQuery, Visibility, validate_room,
};

/// The migrations, embedded so the binary needs no files beside it. Each entry is
/// (version, description, SQL); versions only grow, and an applied file is never
/// edited (sqlx refuses to start when a checksum changed).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "rooms and events",
        include_str!("../../migrations/0001_rooms_and_events.sql"),
    ),
    (
        2,
        "owners visibility soft delete",
        include_str!("../../migrations/0002_owners_visibility_soft_delete.sql"),
    ),
    (
        3,
        "room objects",
        include_str!("../../migrations/0003_room_objects.sql"),
    ),
];

/// How long a connection waits for another writer's lock on SQLite before
/// giving up with "database is locked".
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a request waits for a free pooled connection before failing with 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// A handle to the database; cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Store {
    /// Opens the database at `url` (`sqlite://PATH` or `postgres://...`) and brings
    /// its schema up to date. A SQLite file is created when missing.
    pub async fn connect(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url)?;
        let shown_url = redact_url(url);
        let connect_url = match backend {
            Backend::Sqlite => {
                create_private_sqlite_file(url)?;
                sqlite_url_creating_file(url)
            }
            Backend::Postgres => Cow::Borrowed(url),
        };
        let options: AnyConnectOptions =
            connect_url
                .parse()
                .map_err(|error| StorageError::InvalidUrl {
                    url: shown_url.clone(),
                    error,
                })?;
        let connect_failed = |error| StorageError::Connect {
            url: shown_url.clone(),
            error,
            check: backend.what_to_check_when_it_does_not_open(),
        };
        // A pool that cannot connect only says "pool timed out"; one direct attempt
        // first reports the real reason (connection refused, wrong password).
        let probe = tokio::time::timeout(ACQUIRE_TIMEOUT, AnyConnection::connect_with(&options))
            .await
            .map_err(|_| StorageError::ConnectTimedOut {
                url: shown_url.clone(),
                waited: ACQUIRE_TIMEOUT,
            })?
            .map_err(connect_failed)?;
        probe.close().await.map_err(connect_failed)?;
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                // SQLite has one writer at a time anyway; a few readers suffice.
                Backend::Sqlite => 4,
                Backend::Postgres => 10,
            })
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // The Any driver cannot take SqliteConnectOptions and the URL
                        // only carries mode/cache/vfs, so the pragmas are set on each
                        // new connection. WAL lets readers proceed during a write;
                        // synchronous=FULL makes a commit durable before it returns
                        // (an acknowledged chat message survives a power cut).
                        conn.execute(sqlx::AssertSqlSafe(format!(
                            "PRAGMA journal_mode = WAL; \
                             PRAGMA synchronous = FULL; \
                             PRAGMA foreign_keys = ON; \
                             PRAGMA busy_timeout = {};",
                            SQLITE_BUSY_TIMEOUT.as_millis()
                        )))
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(connect_failed)?;
        let store = Store { pool, backend };
        store
            .migrate()
            .await
            .map_err(|error| StorageError::Migrate {
                url: shown_url.clone(),
                error,
            })?;
        Ok(store)
    }

    /// Closes every connection, waiting for queries in flight. Later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Answers `Ok` when the database answers a trivial query.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for queries the typed API does not offer (tests, diagnostics).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    async fn migrate(&self) -> std::result::Result<(), sqlx::migrate::MigrateError> {
        let migrations = MIGRATIONS
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect();
        Migrator::with_migrations(migrations)
            .run(&self.pool)
            .await?;
        Ok(())
    }
}

impl Backend {
    fn what_to_check_when_it_does_not_open(self) -> &'static str {
        match self {
            Backend::Sqlite => {
                "check that the file's directory exists and that the server's user may read \
                 and write there"
            }
            Backend::Postgres => {
                "check the URL's host, port and database name, that PostgreSQL is running, \
                 and the user's password"
            }
        }
    }

    fn of_url(url: &str) -> Result<Backend> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            _ => Err(StorageError::UnsupportedUrl {
                scheme: scheme.to_string(),
            }),
        }
    }
}

/// Adds `mode=rwc` (read, write, create) to a SQLite URL that names no mode, so a
/// fresh data directory gets its database file instead of an error.
fn sqlite_url_creating_file(url: &str) -> Cow<'_, str> {
    let query = url.split_once('?').map(|(_, query)| query).unwrap_or("");
    if query.split('&').any(|pair| pair.starts_with("mode=")) || url.contains(":memory:") {
        Cow::Borrowed(url)
    } else if url.contains('?') {
        Cow::Owned(format!("{url}&mode=rwc"))
    } else {
        Cow::Owned(format!("{url}?mode=rwc"))
    }
}

/// Creates the database file a `sqlite://PATH` URL names, readable only by the
/// server's user (0600), when it does not exist yet; SQLite gives its journal
/// files the same mode. In-memory databases and existing files are left alone.
fn create_private_sqlite_file(url: &str) -> Result<()> {
    let Some(path) = sqlite_path(url) else {
        return Ok(());
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    match options.open(&path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        // A missing directory: sqlx reports it with the URL.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(StorageError::CreateFile { path, error }),
    }
}

/// The file a `sqlite:` URL names (percent-decoded), or `None` for memory.
fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let encoded = rest.split('?').next().unwrap_or_default();
    if encoded.is_empty() || encoded.contains(":memory:") {
        return None;
    }
    let bytes = encoded.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = bytes
            .get(index + 1..index + 3)
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (bytes[index], hex) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                index += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    Some(std::path::PathBuf::from(String::from_utf8(decoded).ok()?))
}

/// Whether a failed write lost a race that the same write may win when retried:
/// on PostgreSQL two concurrent `INSERT ... SELECT MAX(id) + 1` can compute the
/// same id, and the primary key refuses the second. (SQLite takes its write lock
/// when such a statement starts, so there the statement alone is atomic.)
fn is_retryable_conflict(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.kind() == ErrorKind::UniqueViolation)
}

fn is_foreign_key_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.kind() == ErrorKind::ForeignKeyViolation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_get_create_mode_unless_they_name_one() {
        let check = |url: &str, expected: &str| {
            assert_eq!(sqlite_url_creating_file(url), expected, "{url}");
        };
        check("sqlite:///a/b.db", "sqlite:///a/b.db?mode=rwc");
        check(
            "sqlite:///a/b.db?cache=shared",
            "sqlite:///a/b.db?cache=shared&mode=rwc",
        );
        check("sqlite:///a/b.db?mode=ro", "sqlite:///a/b.db?mode=ro");
        check("sqlite::memory:", "sqlite::memory:");
    }

    #[test]
    fn sqlite_paths_are_decoded_from_urls() {
        assert_eq!(
            sqlite_path("sqlite:///srv/a%3Fb%23c%25d.db?mode=rwc"),
            Some("/srv/a?b#c%d.db".into())
        );
        assert_eq!(sqlite_path("sqlite:data.db"), Some("data.db".into()));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://h/db"), None);
    }

    #[test]
    fn passwords_are_redacted() {
        let check = |url: &str, expected: &str| assert_eq!(redact_url(url), expected, "{url}");
        check(
            "postgres://roomscale:secret@127.0.0.1:5432/roomscale",
            "postgres://roomscale:***@127.0.0.1:5432/roomscale",
        );
        check(
            "postgres://roomscale@db/roomscale",
            "postgres://roomscale@db/roomscale",
        );
        check(
            "sqlite:///var/lib/roomscale/roomscale.db",
            "sqlite:///var/lib/roomscale/roomscale.db",
        );
        check("not a url", "not a url");
    }
}
