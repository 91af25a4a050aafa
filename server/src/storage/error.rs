//! What can go wrong in storage, each said so that the person reading it knows
//! what failed and what to do about it.
//!
//! Storage knows nothing of HTTP: the server's [`crate::error::Error`] converts
//! a [`StorageError`] into a status (a missing room is a 404, refused fields a
//! 422, an unreachable database a 503, the rest a 500 whose text stays in the
//! log).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The result of a storage operation.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// A storage operation that failed.
// sqlx errors already show their cause in their own message, so they are
// included in ours rather than chained as a source, which would print it twice.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(
        "unsupported database URL scheme {scheme:?}: use sqlite://PATH or \
         postgres://USER:PASSWORD@HOST/DB"
    )]
    UnsupportedUrl { scheme: String },

    #[error(
        "the database URL {url} cannot be read: {error}; write it as sqlite://PATH or \
         postgres://USER:PASSWORD@HOST/DB"
    )]
    InvalidUrl { url: String, error: sqlx::Error },

    #[error(
        "the database file {} could not be created: {error}; check that the directory \
         exists and that the server's user may write to it",
        path.display()
    )]
    CreateFile {
        path: PathBuf,
        error: std::io::Error,
    },

    #[error(
        "the database at {url} did not answer within {waited:?}; check that it is running \
         and that the URL's host and port are right"
    )]
    ConnectTimedOut { url: String, waited: Duration },

    /// `check` says what to look at, for the kind of database the URL names.
    #[error("the database at {url} could not be opened: {error}; {check}")]
    Connect {
        url: String,
        error: sqlx::Error,
        check: &'static str,
    },

    #[error(
        "the database at {url} could not be brought up to date: {error}; if a newer server \
         wrote it, run that version, or restore a backup"
    )]
    Migrate {
        url: String,
        error: sqlx::migrate::MigrateError,
    },

    /// The room does not exist, or was deleted (also while the operation ran).
    #[error("the room does not exist or was deleted")]
    RoomNotFound,

    /// Some fields of the input are not acceptable; each says why.
    #[error("some fields are not valid: {0}")]
    Invalid(FieldErrors),

    #[error(
        "a database query failed: {0}; if this keeps happening, check that the database is running"
    )]
    Query(sqlx::Error),

    /// A stored value this server cannot read; the message says which.
    #[error(
        "the database holds data this server cannot read: {0}; was it written by a newer \
         server?"
    )]
    Unreadable(String),

    #[error("a room event could not be written as JSON: {0}")]
    Encode(serde_json::Error),
}

impl From<sqlx::Error> for StorageError {
    fn from(error: sqlx::Error) -> StorageError {
        StorageError::Query(error)
    }
}

impl StorageError {
    /// Whether the database was out of reach (down, or every connection busy)
    /// rather than the operation being wrong: trying again later may work.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StorageError::Query(sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed)
                | StorageError::ConnectTimedOut { .. }
        )
    }
}

/// Validation messages keyed by field name, as the client named the field.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct FieldErrors(BTreeMap<&'static str, String>);

impl FieldErrors {
    pub fn new() -> FieldErrors {
        FieldErrors::default()
    }

    pub fn add(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.insert(field, message.into());
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.get(field).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when no field had an error, else these errors (which `?` turns
    /// into a [`StorageError::Invalid`] or the server's validation error).
    pub fn into_result(self) -> Result<(), FieldErrors> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl From<FieldErrors> for StorageError {
    fn from(errors: FieldErrors) -> StorageError {
        StorageError::Invalid(errors)
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (field, message)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{field}: {message}")?;
        }
        Ok(())
    }
}

/// A database URL with its password replaced by `***`, fit for logs and
/// error messages.
pub fn redact_url(url: &str) -> String {
    // postgres://user:password@host/db: the password runs from the first ':' after
    // "://" to the last '@' before the path.
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &authority[..colon],
            &rest[at..]
        ),
        _ => url.to_string(),
    }
}
