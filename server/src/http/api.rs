//! The JSON API: the same room operations as the pages, and socket tokens for
//! clients that are not the room page (the native app, bots, tests).
//!
//! Who may do what: anyone may list, read and create rooms (creation limited per
//! IP address); only a room's owner or the operator (see [`Caller`]) may edit,
//! delete or restore it. The room list is paged by a cursor: `?limit=` rooms at
//! a time, and a `Link: <...>; rel="next"` header while there are more. Each
//! listed room also says who is in it now (`people`: browser, desktop, headset
//! and total) and when it last saw a join, a leave or a chat line
//! (`active_at`, RFC 3339, or null when this server has seen none since it
//! started).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::header::{LINK, LOCATION};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use roomscale_protocol::events::{ErrorCode, ErrorReply};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::caller::Caller;
use super::{ApiJson, parse_room_id};
use crate::error::{Error, FieldErrors, Result};
use crate::identity::Visitor;
use crate::limits::Limits;
use crate::room::{Headcount, RoomLife, Rooms};
use crate::storage::{NewRoom, Room, RoomCursor, RoomListQuery};
use crate::time::rfc3339;
use crate::{AppState, Identity, Store};

/// Rooms per page of GET /api/rooms unless `?limit=` says otherwise.
pub const DEFAULT_LIST_LIMIT: u64 = 50;
/// The most rooms one page of GET /api/rooms holds.
pub const MAX_LIST_LIMIT: u64 = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/rooms", get(list_rooms).post(create_room))
        .route(
            "/api/rooms/{id}",
            get(show_room).put(update_room).delete(delete_room),
        )
        .route("/api/rooms/{id}/restore", post(restore_room))
        .route("/api/session", post(create_session))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ListParams {
    limit: Option<u64>,
    after: Option<String>,
}

/// One room as the list shows it: the room, who is in it, and when it was last
/// lively.
#[derive(Debug, Serialize)]
pub struct ListedRoom<'a> {
    #[serde(flatten)]
    pub room: &'a Room,
    pub people: Headcount,
    pub active_at: Option<String>,
}

impl<'a> ListedRoom<'a> {
    pub fn new(room: &'a Room, life: Option<&RoomLife>) -> ListedRoom<'a> {
        let life = life.copied().unwrap_or_default();
        ListedRoom {
            room,
            people: life.people,
            active_at: life.active_at.map(rfc3339),
        }
    }
}

/// A JSON array of rooms, newest first: public ones and the caller's own
/// unlisted ones, each with its people now and last activity.
async fn list_rooms(
    State(store): State<Store>,
    State(live): State<Rooms>,
    caller: Caller,
    params: std::result::Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response> {
    let Query(params) = params.map_err(|rejection| {
        Error::BadRequest(format!(
            "the query is not understood ({}); use ?limit=N&after=CURSOR",
            rejection.body_text()
        ))
    })?;
    let limit = params.limit.unwrap_or(DEFAULT_LIST_LIMIT);
    if !(1..=MAX_LIST_LIMIT).contains(&limit) {
        return Err(Error::BadRequest(format!(
            "limit={limit} is out of range; ask for 1 to {MAX_LIST_LIMIT} rooms at a time"
        )));
    }
    let after = params
        .after
        .as_deref()
        .map(str::parse::<RoomCursor>)
        .transpose()
        .map_err(Error::BadRequest)?;
    // One more than asked shows whether there is a next page.
    let mut rooms = store
        .list_rooms_page(&RoomListQuery {
            viewer: caller.user_id().map(str::to_string),
            after,
            offset: 0,
            limit: limit + 1,
        })
        .await?;
    let more = rooms.len() as u64 > limit;
    rooms.truncate(limit as usize);
    let life = live.life(rooms.iter().map(|room| room.id));
    let listed: Vec<ListedRoom<'_>> = rooms
        .iter()
        .map(|room| ListedRoom::new(room, life.get(&room.id)))
        .collect();
    let mut response = (caller.set_cookie(), Json(&listed)).into_response();
    if more && let Some(last) = rooms.last() {
        let next = format!(
            "</api/rooms?limit={limit}&after={}>; rel=\"next\"",
            last.cursor()
        );
        if let Ok(value) = HeaderValue::try_from(next) {
            response.headers_mut().insert(LINK, value);
        }
    }
    Ok(response)
}

async fn create_room(
    State(store): State<Store>,
    State(limits): State<Arc<Limits>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    caller: Caller,
    ApiJson(input): ApiJson<NewRoom>,
) -> Result<Response> {
    take_room_creation(&limits, peer)?;
    let room = store.create_room(&input, caller.user_id()).await?;
    let location = format!("/api/rooms/{}", room.id);
    Ok((
        StatusCode::CREATED,
        caller.set_cookie(),
        [(LOCATION, location)],
        Json(room),
    )
        .into_response())
}

/// Counts one room creation against `peer`'s address, or says when it may
/// create the next.
pub fn take_room_creation(limits: &Limits, peer: SocketAddr) -> Result<()> {
    limits
        .rooms_per_ip
        .take(&crate::limits::address_key(peer.ip()), Instant::now())
        .map_err(|wait| Error::rate_limited("create rooms", wait))
}

/// One room, with who is in it now (the lobby shows it before a visitor enters).
async fn show_room(
    State(store): State<Store>,
    State(live): State<Rooms>,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = parse_room_id(&id)?;
    let room = store.get_room(id).await?.ok_or(Error::NotFound)?;
    let life = live.life([room.id]);
    Ok(Json(ListedRoom::new(&room, life.get(&room.id))).into_response())
}

async fn update_room(
    State(store): State<Store>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<NewRoom>,
) -> Result<Json<Room>> {
    let id = parse_room_id(&id)?;
    let room = store.get_room(id).await?.ok_or(Error::NotFound)?;
    caller.may_manage(&room)?;
    let room = store
        .update_room(id, &input)
        .await?
        .ok_or(Error::NotFound)?;
    Ok(Json(room))
}

async fn delete_room(
    State(store): State<Store>,
    State(rooms): State<Rooms>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let id = parse_room_id(&id)?;
    let room = store.get_room(id).await?.ok_or(Error::NotFound)?;
    caller.may_manage(&room)?;
    delete_and_close(&store, &rooms, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Soft-deletes a room and ends its live session: its members are told why and
/// the room stops taking joins. Shared by the form and the API.
pub async fn delete_and_close(store: &Store, rooms: &Rooms, id: Uuid) -> Result<()> {
    if !store.delete_room(id).await? {
        return Err(Error::NotFound);
    }
    rooms
        .close(
            id,
            ErrorReply::new(
                ErrorCode::RoomDeleted,
                "this room was deleted by its owner; find another on the room list",
            ),
        )
        .await;
    Ok(())
}

/// Brings back a room deleted within the last 7 days; the owner or the operator.
async fn restore_room(
    State(store): State<Store>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Room>> {
    let id = parse_room_id(&id)?;
    let room = restore(&store, &caller, id).await?;
    Ok(Json(room))
}

/// Restores room `id` when `caller` may; shared by the form and the API.
pub async fn restore(store: &Store, caller: &Caller, id: Uuid) -> Result<Room> {
    let room = store
        .get_room_including_deleted(id)
        .await?
        .ok_or(Error::NotFound)?;
    caller.may_manage(&room)?;
    if room.deleted_at.is_none() {
        return Err(Error::BadRequest(
            "the room is not deleted, so there is nothing to restore".to_string(),
        ));
    }
    if !store.restore_room(id).await? {
        return Err(Error::BadRequest(
            "the room was deleted more than 7 days ago and can no longer be restored".to_string(),
        ));
    }
    store.get_room(id).await?.ok_or(Error::NotFound)
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
/// `{"name": "..."}`. Limited per IP address.
async fn create_session(
    State(identity): State<Identity>,
    State(limits): State<Arc<Limits>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    visitor: Visitor,
    body: Bytes,
) -> Result<Response> {
    limits
        .tokens_per_ip
        .take(&crate::limits::address_key(peer.ip()), Instant::now())
        .map_err(|wait| Error::rate_limited("get socket tokens", wait))?;
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
    let (token, expires_at) = identity.issue_token(&visitor.user_id, name, SystemTime::now());
    let response = SessionResponse {
        token,
        user_id: visitor.user_id.clone(),
        expires_at: rfc3339(expires_at),
    };
    Ok((visitor.set_cookie(), Json(response)).into_response())
}
