//! The JSON API: the same room operations as the pages, and socket tokens for
//! clients that are not the room page (the native app, bots, tests).

use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{ApiJson, parse_room_id};
use crate::AppState;
use crate::error::{Error, FieldErrors, Result};
use crate::identity::Visitor;
use crate::storage::{NewRoom, Room, rfc3339};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/rooms", get(list_rooms).post(create_room))
        .route(
            "/api/rooms/{id}",
            get(show_room).put(update_room).delete(delete_room),
        )
        .route("/api/session", post(create_session))
}

async fn list_rooms(State(state): State<AppState>) -> Result<Json<Vec<Room>>> {
    Ok(Json(state.store.list_rooms().await?))
}

async fn create_room(
    State(state): State<AppState>,
    visitor: Visitor,
    ApiJson(input): ApiJson<NewRoom>,
) -> Result<Response> {
    let room = state
        .store
        .create_room(&input, Some(&visitor.user_id))
        .await?;
    let location = format!("/api/rooms/{}", room.id);
    Ok((StatusCode::CREATED, [(LOCATION, location)], Json(room)).into_response())
}

async fn show_room(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Room>> {
    let id = parse_room_id(&id)?;
    let room = state.store.get_room(id).await?.ok_or(Error::NotFound)?;
    Ok(Json(room))
}

async fn update_room(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<NewRoom>,
) -> Result<Json<Room>> {
    let id = parse_room_id(&id)?;
    let room = state
        .store
        .update_room(id, &input)
        .await?
        .ok_or(Error::NotFound)?;
    Ok(Json(room))
}

async fn delete_room(State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode> {
    let id = parse_room_id(&id)?;
    if state.store.delete_room(id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::NotFound)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct SessionRequest {
    /// The display name to put in the token; the client may still choose another
    /// when it joins a room.
    name: Option<String>,
}

#[derive(Debug, Serialize)]
struct SessionResponse {
    token: String,
    user_id: String,
    /// RFC 3339.
    expires_at: String,
}

/// Issues a socket token for the cookie's user, or for a new user when the request
/// has no valid cookie (which it then gets). The body is optional: empty, or JSON
/// `{"name": "..."}`.
async fn create_session(
    State(state): State<AppState>,
    visitor: Visitor,
    body: Bytes,
) -> Result<Response> {
    let request: SessionRequest = if body.iter().all(u8::is_ascii_whitespace) {
        SessionRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            Error::BadRequest(format!("the body is not a valid session request: {e}"))
        })?
    };
    let name = request.name.as_deref().map(str::trim);
    if let Some(name) = name {
        let mut errors = FieldErrors::new();
        if let Err(message) = roomscale_protocol::events::validate_name(name) {
            errors.add("name", message);
        }
        errors.into_result()?;
    }
    let (token, expires_at) = state
        .identity
        .issue_token(&visitor.user_id, name, SystemTime::now());
    let response = SessionResponse {
        token,
        user_id: visitor.user_id.clone(),
        expires_at: rfc3339(expires_at),
    };
    Ok((visitor.set_cookie(), Json(response)).into_response())
}
