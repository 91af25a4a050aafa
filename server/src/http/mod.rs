//! HTTP routes, one module per area, each with its own `router()`; `crate::app`
//! merges them. Handlers take the parts of `AppState` they use
//! (`State<Store>`, `State<Identity>`, `State<Arc<Config>>`, ...), and the
//! middleware in [`security`] only the settings.

pub mod api;
pub mod assets;
pub mod caller;
pub mod connections;
pub mod health;
mod html;
pub mod pages;
pub mod security;

use axum::extract::{FromRequest, Request};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::Error;

/// The answer for a path no route claims: JSON under `/api/`, a page elsewhere.
pub async fn not_found(uri: Uri) -> Response {
    if uri.path().starts_with("/api/") {
        Error::NotFound.into_response()
    } else {
        pages::not_found_page()
    }
}

/// A room id from a path segment.
fn parse_room_id(segment: &str) -> Result<Uuid, Error> {
    segment.parse().map_err(|_| {
        Error::BadRequest(format!(
            "{:?} is not a room id; room ids are UUIDs such as 67e55044-10b1-426f-9247-bb680e5fe0c8",
            segment.chars().take(64).collect::<String>()
        ))
    })
}

/// `axum::Json`, except that a body that cannot be read becomes our
/// [`Error::BadRequest`], a JSON answer that says what was wrong.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(Error::BadRequest(rejection.body_text())),
        }
    }
}
