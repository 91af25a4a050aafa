//! The server's one error type and how each kind of error becomes an HTTP response.
//!
//! Clients learn what they can fix (a 400 with the reason, a 422 with a message per
//! field, a 404); internal causes (database, I/O) are logged and answered with a
//! generic 500 or 503 whose body never carries their text.

use std::collections::BTreeMap;
use std::fmt;

use axum::Json;
use axum::http::StatusCode;
use axum::http::header::{HeaderValue, RETRY_AFTER};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not found")]
    NotFound,
    /// The request itself is unreadable (malformed JSON, a path segment that is not a
    /// UUID); the message says what was wrong and is sent to the client.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The request was readable but some fields are not acceptable.
    #[error("invalid input: {0}")]
    Validation(FieldErrors),
    /// The caller may not do this (not the room's owner, a request from another
    /// site); the message says why and is sent to the client.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Credentials were given but are not valid; the message says what to send.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The caller did this too often; `message` says what and when to try again.
    #[error("too many requests: {message}")]
    RateLimited {
        message: String,
        retry_after: std::time::Duration,
    },
    // sqlx errors already show their cause in their own message, so they are
    // included in ours rather than chained as a source, which would print it twice.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(sqlx::migrate::MigrateError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Error {
        Error::Database(error)
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(error: sqlx::migrate::MigrateError) -> Error {
        Error::Migrate(error)
    }
}

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Error::NotFound => StatusCode::NOT_FOUND,
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            // The pool could not hand out a connection in time: the database is
            // down or overloaded, and trying again later may work.
            Error::Database(sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::Database(_) | Error::Migrate(_) | Error::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// Whether the cause is ours (and so logged, and hidden from the client).
    pub fn is_internal(&self) -> bool {
        self.status().is_server_error()
    }

    /// Logs an internal cause with its whole chain of sources. Client errors are not
    /// logged: they are the client's to fix and would only fill the log.
    pub fn log_if_internal(&self) {
        if self.is_internal() {
            tracing::error!(error = %ErrorChain(self), "request failed");
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        self.log_if_internal();
        let status = self.status();
        let body = match &self {
            Error::NotFound => json!({"error": "not found"}),
            Error::BadRequest(message)
            | Error::Forbidden(message)
            | Error::Unauthorized(message) => {
                json!({"error": message})
            }
            Error::RateLimited { message, .. } => json!({"error": message}),
            Error::Validation(fields) => {
                json!({"error": "some fields are not valid", "fields": fields})
            }
            _ if status == StatusCode::SERVICE_UNAVAILABLE => {
                json!({"error": "the database is unavailable; try again shortly"})
            }
            _ => json!({"error": "internal server error"}),
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(retry_after) = self.retry_after_header() {
            response.headers_mut().insert(RETRY_AFTER, retry_after);
        }
        response
    }
}

impl Error {
    /// A rate limit's `Retry-After` header (whole seconds, rounded up).
    pub fn retry_after_header(&self) -> Option<HeaderValue> {
        match self {
            Error::RateLimited { retry_after, .. } => {
                let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                Some(HeaderValue::from(seconds.max(1)))
            }
            _ => None,
        }
    }

    /// A rate limit hit while doing `what` ("create rooms"), waiting `wait`.
    pub fn rate_limited(what: &str, wait: std::time::Duration) -> Error {
        let seconds = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
        let when = if seconds < 120 {
            format!("{seconds} seconds")
        } else {
            format!("{} minutes", seconds.div_ceil(60))
        };
        Error::RateLimited {
            message: format!("too many attempts to {what} from your address; try again in {when}"),
            retry_after: wait,
        }
    }
}

/// Validation messages keyed by field name, as the client named the field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
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

    /// `Ok(())` when no field had an error, else [`Error::Validation`].
    pub fn into_result(self) -> Result<()> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation(self))
        }
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

/// Displays an error followed by each of its sources, `outer: inner: innermost`.
#[derive(Debug)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}
