//! The server's one error type and how each kind of error becomes an HTTP response.
//!
//! Clients learn what they can fix (a 400 with the reason, a 422 with a message per
//! field, a 404); internal causes (database, I/O) are logged and answered with a
//! generic 500 or 503 whose body never carries their text. Storage has its own
//! [`StorageError`], which `?` turns into an [`Error`].

use std::fmt;

use axum::Json;
use axum::http::StatusCode;
use axum::http::header::{HeaderValue, RETRY_AFTER};
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub use crate::storage::FieldErrors;
use crate::storage::StorageError;

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
    /// Storage failed for a reason of its own (the database, not the request).
    #[error(transparent)]
    Storage(StorageError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<StorageError> for Error {
    /// A missing room is a 404 and refused fields a 422, as if the handler had
    /// found them itself; every other storage failure is the server's.
    fn from(error: StorageError) -> Error {
        match error {
            StorageError::RoomNotFound => Error::NotFound,
            StorageError::Invalid(fields) => Error::Validation(fields),
            other => Error::Storage(other),
        }
    }
}

impl From<FieldErrors> for Error {
    fn from(fields: FieldErrors) -> Error {
        Error::Validation(fields)
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
            // The database is down or overloaded: trying again later may work.
            Error::Storage(error) if error.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            Error::Storage(_) | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn storage_errors_answer_with_what_the_client_can_act_on() {
        async fn check(error: StorageError, status: StatusCode, body_part: &str) {
            let shown = error.to_string();
            let response = Error::from(error).into_response();
            assert_eq!(response.status(), status, "{shown}");
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            let body = String::from_utf8(body.to_vec()).unwrap();
            assert!(body.contains(body_part), "{shown}: {body}");
        }
        let mut fields = FieldErrors::new();
        fields.add("name", "must not be blank");
        check(
            StorageError::RoomNotFound,
            StatusCode::NOT_FOUND,
            "not found",
        )
        .await;
        check(
            StorageError::Invalid(fields),
            StatusCode::UNPROCESSABLE_ENTITY,
            "must not be blank",
        )
        .await;
        check(
            StorageError::Query(sqlx::Error::PoolTimedOut),
            StatusCode::SERVICE_UNAVAILABLE,
            "try again shortly",
        )
        .await;
        // Internal causes stay in the log.
        check(
            StorageError::Unreadable("room 7: \"privately\" is not a visibility".into()),
            StatusCode::INTERNAL_SERVER_ERROR,
            "\"internal server error\"",
        )
        .await;
        check(
            StorageError::Query(sqlx::Error::RowNotFound),
            StatusCode::INTERNAL_SERVER_ERROR,
            "\"internal server error\"",
        )
        .await;
    }
}
