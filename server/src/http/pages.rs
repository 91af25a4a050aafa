//! Server-rendered pages: the landing page, the room list, the room forms, the
//! room page that hosts the browser client, and the error pages.
//!
//! Every page sets the visitor cookie when the request had none, so that the room
//! page can embed a socket token for a stable user id. Every form carries the
//! visitor's CSRF token (`_csrf`), checked on every post; only a room's owner
//! sees, and may use, its edit and delete forms.
//!
//! The room page is a shell for room.js and fills the window (no top bar):
//! `#room-root` carries the room id, the visitor's id and socket token and the
//! room's name; the hidden `#room-details` holds what the room menu shows
//! (name, description, and for the owner Edit and Delete). A room id that names
//! no room, or is no room id, gets a 404 page; a deleted room, kept for
//! [`DELETED_ROOMS_KEPT`] until the janitor purges it, gets a 410 page that
//! offers its owner Undo while it can still be restored.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use uuid::Uuid;

use super::api::{delete_and_close, restore, take_room_creation};
use super::caller::{Caller, not_the_owner};
use super::html::{escape, layout, room_layout};
use crate::error::{Error, FieldErrors};
use crate::identity::Visitor;
use crate::limits::Limits;
use crate::room::{Headcount, RoomLife, Rooms};
use crate::storage::{DELETED_ROOMS_KEPT, NewRoom, Room, RoomListQuery, StorageError, Visibility};
use crate::time::{rfc3339, unix_millis};
use crate::{AppState, Identity, Store};

/// Rooms per page of /rooms.
pub const ROOMS_PER_PAGE: u64 = 50;

/// The pages' stylesheet, served at [`STYLESHEET_PATH`] (a file, not an inline
/// `<style>`, so the Content-Security-Policy need not allow inline styles for it).
const STYLESHEET: &str = include_str!("pages.css");
pub const STYLESHEET_PATH: &str = "/pages.css";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(landing))
        .route(STYLESHEET_PATH, get(stylesheet))
        .route("/rooms", get(list_rooms))
        .route("/rooms/new", get(new_room_form).post(create_room))
        .route("/rooms/{id}", get(show_room))
        .route("/rooms/{id}/edit", get(edit_room_form).post(update_room))
        .route("/rooms/{id}/delete", post(delete_room))
        .route("/rooms/{id}/restore", post(restore_room))
}

type PageResult = Result<Response, PageError>;

async fn landing(visitor: Visitor) -> Response {
    let body = r#"<section class="hero">
<h1>Welcome to Roomscale</h1>
<p>Roomscale is a place to meet people in shared 3D rooms that stay where you left them. Join from a web browser, the desktop app or a VR headset, talk with spatial voice, chat, and pass objects around.</p>
<p class="actions"><a class="button primary" href="/rooms/new">Create a room</a> <a class="button" href="/rooms">See who is around</a></p>
</section>"#;
    page(&visitor, StatusCode::OK, layout("Welcome", body))
}

async fn stylesheet() -> Response {
    (
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/css; charset=utf-8"),
            ),
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        STYLESHEET,
    )
        .into_response()
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ListPage {
    page: Option<String>,
}

async fn list_rooms(
    State(store): State<Store>,
    State(live): State<Rooms>,
    visitor: Visitor,
    Query(params): Query<ListPage>,
) -> PageResult {
    // A page number that is not one shows the first page rather than an error:
    // it came from a hand-edited link.
    let page_number = params
        .page
        .as_deref()
        .and_then(|page| page.parse::<u64>().ok())
        .filter(|&page| (1..=1_000_000).contains(&page))
        .unwrap_or(1);
    let mut rooms = store
        .list_rooms_page(&RoomListQuery {
            viewer: Some(visitor.user_id.clone()),
            after: None,
            offset: (page_number - 1) * ROOMS_PER_PAGE,
            limit: ROOMS_PER_PAGE + 1,
        })
        .await?;
    let more = rooms.len() as u64 > ROOMS_PER_PAGE;
    rooms.truncate(ROOMS_PER_PAGE as usize);
    let mut body = String::from(
        "<h1>Rooms</h1>\n<p class=\"actions\"><a class=\"button primary\" href=\"/rooms/new\">Create a room</a></p>\n",
    );
    if rooms.is_empty() {
        body.push_str(if page_number == 1 {
            "<p>No rooms yet.</p>\n"
        } else {
            "<p>No more rooms.</p>\n"
        });
    } else {
        // pages.js keeps the first page's counts and order live from the API.
        body.push_str(if page_number == 1 {
            "<ul class=\"rooms\" data-live=\"/api/rooms?limit=100\">\n"
        } else {
            "<ul class=\"rooms\">\n"
        });
        let life = live.life(rooms.iter().map(|room| room.id));
        sort_by_activity(&mut rooms, &life);
        for room in &rooms {
            let badge = if room.visibility == Visibility::Unlisted {
                " <span class=\"badge\" title=\"Only people with the link see this room; it is listed to you because it is yours\">unlisted</span>"
            } else {
                ""
            };
            let life = life.get(&room.id).copied().unwrap_or_default();
            body.push_str(&format!(
                "<li class=\"room\" data-room-id=\"{id}\" data-total=\"{total}\" data-active-at=\"{active_at}\" data-inserted-at=\"{inserted_at}\">\
                 <div class=\"room-text\"><a href=\"/rooms/{id}\">{name}</a>{badge}<div class=\"description\">{description}</div><div class=\"meta\">Updated {updated}</div></div>\
                 <div class=\"people\"><span class=\"count\" aria-hidden=\"true\">{total}</span> <span class=\"people-text\">{people}</span></div>\
                 <a class=\"button join\" href=\"/rooms/{id}\" aria-label=\"Join {name}\">Join</a></li>\n",
                id = room.id,
                name = escape(&room.name),
                description = escape(&room.description),
                updated = time_element(room.updated_at),
                total = life.people.total,
                active_at = life.active_at.unwrap_or(0),
                inserted_at = room.inserted_at,
                people = people_text(&life.people),
            ));
        }
        body.push_str("</ul>\n");
    }
    let mut pager = Vec::new();
    if page_number > 1 {
        pager.push(format!(
            "<a rel=\"prev\" href=\"/rooms?page={}\">Newer rooms</a>",
            page_number - 1
        ));
    }
    if more {
        pager.push(format!(
            "<a rel=\"next\" href=\"/rooms?page={}\">Older rooms</a>",
            page_number + 1
        ));
    }
    if !pager.is_empty() {
        body.push_str(&format!("<nav class=\"pager\">{}</nav>\n", pager.join(" ")));
    }
    Ok(page(&visitor, StatusCode::OK, layout("Rooms", &body)))
}

/// The room list's order: most people first, then the most recent join, leave
/// or chat line, then the newest room. pages.js sorts by the same rule.
fn sort_by_activity(rooms: &mut [Room], life: &HashMap<Uuid, RoomLife>) {
    let key = |room: &Room| {
        let life = life.get(&room.id).copied().unwrap_or_default();
        (
            life.people.total,
            life.active_at.unwrap_or(0),
            room.inserted_at,
        )
    };
    rooms.sort_by_key(|room| std::cmp::Reverse(key(room)));
}

/// "3 here: 2 in a browser, 1 in a headset", or "nobody here yet"; pages.js
/// writes the same words when the counts change.
fn people_text(people: &Headcount) -> String {
    if people.total == 0 {
        return "nobody here yet".to_string();
    }
    let kinds: Vec<String> = [
        (people.browser, "in a browser"),
        (people.desktop, "in the desktop app"),
        (people.headset, "in a headset"),
    ]
    .iter()
    .filter(|(count, _)| *count > 0)
    .map(|(count, place)| format!("{count} {place}"))
    .collect();
    format!("{} here: {}", people.total, kinds.join(", "))
}

/// What the room forms post.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RoomForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    name: String,
    description: String,
    visibility: Option<String>,
}

impl RoomForm {
    /// The room as typed, or a field error for a visibility that is not one.
    fn room(&self) -> (NewRoom, FieldErrors) {
        let mut errors = FieldErrors::new();
        let visibility = match self.visibility.as_deref().map(str::parse::<Visibility>) {
            None => None,
            Some(Ok(visibility)) => Some(visibility),
            Some(Err(message)) => {
                errors.add("visibility", message);
                None
            }
        };
        let room = NewRoom {
            name: self.name.clone(),
            description: self.description.clone(),
            visibility,
        };
        (room, errors)
    }
}

/// A form post with nothing but its CSRF token.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TokenForm {
    #[serde(rename = "_csrf")]
    csrf: String,
}

/// Refuses a form that does not carry the visitor's CSRF token: it was posted
/// by a page from another site, or before the visitor had this cookie.
fn check_csrf(identity: &Identity, visitor: &Visitor, token: &str) -> Result<(), PageError> {
    if identity.verify_csrf_token(&visitor.user_id, token) {
        Ok(())
    } else {
        Err(PageError(Error::Forbidden(
            "this form has expired or was sent from another site, so nothing was changed; \
             go back, reload the page and try again"
                .to_string(),
        )))
    }
}

async fn new_room_form(State(identity): State<Identity>, visitor: Visitor) -> Response {
    let form = room_form(
        &identity,
        &visitor,
        "/rooms/new",
        "Create room",
        &NewRoom::default(),
        &FieldErrors::new(),
    );
    page(
        &visitor,
        StatusCode::OK,
        layout("New room", &format!("<h1>New room</h1>\n{form}")),
    )
}

async fn create_room(
    State(store): State<Store>,
    State(identity): State<Identity>,
    State(limits): State<Arc<Limits>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    visitor: Visitor,
    Form(form): Form<RoomForm>,
) -> PageResult {
    check_csrf(&identity, &visitor, &form.csrf)?;
    let (input, errors) = form.room();
    let outcome = match errors.into_result() {
        Ok(()) => match take_room_creation(&limits, peer) {
            Ok(()) => store
                .create_room(&input, Some(&visitor.user_id))
                .await
                .map_err(Error::from),
            Err(error) => Err(error),
        },
        Err(errors) => Err(Error::Validation(errors)),
    };
    match outcome {
        Ok(room) => Ok(redirect(&visitor, &format!("/rooms/{}", room.id))),
        Err(Error::Validation(errors)) => {
            let form = room_form(
                &identity,
                &visitor,
                "/rooms/new",
                "Create room",
                &input,
                &errors,
            );
            let body = format!("<h1>New room</h1>\n{form}");
            Ok(page(
                &visitor,
                StatusCode::UNPROCESSABLE_ENTITY,
                layout("New room", &body),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

async fn show_room(
    State(store): State<Store>,
    State(identity): State<Identity>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> PageResult {
    let id = page_room_id(&id)?;
    let room = store
        .get_room_including_deleted(id)
        .await?
        .ok_or(PageError(Error::NotFound))?;
    if room.deleted_at.is_some() {
        let body = deleted_room_body(&identity, &visitor, &room);
        return Ok(no_store(page(
            &visitor,
            StatusCode::GONE,
            layout("Room deleted", &body),
        )));
    }
    let (token, _) = identity.issue_token(&visitor.user_id, None, SystemTime::now());
    let owner_controls = if room.is_owned_by(&visitor.user_id) {
        format!(
            r#"<p class="owner-actions"><a class="button" href="/rooms/{id}/edit">Edit room</a></p>
<form method="post" action="/rooms/{id}/delete" data-confirm="{confirm}"><input type="hidden" name="_csrf" value="{csrf}"><button type="submit" class="danger">Delete room</button></form>
"#,
            id = room.id,
            confirm = escape(&format!(
                "Delete the room \u{201c}{}\u{201d} for everyone? You can undo this for 7 days.",
                room.name
            )),
            csrf = escape(&identity.csrf_token(&visitor.user_id)),
        )
    } else {
        String::new()
    };
    let visibility = match room.visibility {
        Visibility::Public => "",
        Visibility::Unlisted => " · unlisted: only people with the link can find it",
    };
    let description = if room.description.trim().is_empty() {
        String::new()
    } else {
        format!(
            "<p class=\"description\">{}</p>\n",
            escape(&room.description)
        )
    };
    // room.js builds the view inside #room-root and moves #room-details into
    // its Room menu; the details stay hidden until then.
    let body = format!(
        r#"<div id="room-root" data-room-id="{id}" data-user-id="{user_id}" data-token="{token}" data-room-name="{name}">
<noscript>The room needs JavaScript to show people and carry voice.</noscript>
</div>
<section id="room-details" hidden aria-label="About this room">
<h2>{name}</h2>
{description}<p class="meta">Created {created}{visibility}</p>
{owner_controls}</section>
<script type="module" src="/assets/room.js"></script>"#,
        id = room.id,
        name = escape(&room.name),
        created = time_element(room.inserted_at),
        user_id = escape(&visitor.user_id),
        token = escape(&token),
    );
    // The page embeds a socket token: no cache may keep it.
    Ok(no_store(page(
        &visitor,
        StatusCode::OK,
        room_layout(&room.name, &body),
    )))
}

/// What a deleted room's page says (also shown right after deleting it): that
/// nobody can join it, and to its owner, while it can still be restored, the
/// Undo form.
fn deleted_room_body(identity: &Identity, visitor: &Visitor, room: &Room) -> String {
    let restorable_until = room
        .deleted_at
        .map(|deleted_at| {
            deleted_at
                .saturating_add(i64::try_from(DELETED_ROOMS_KEPT.as_millis()).unwrap_or(i64::MAX))
        })
        .filter(|&until| until > unix_millis(SystemTime::now()));
    let owner = room.is_owned_by(&visitor.user_id);
    let undo = match restorable_until {
        Some(until) if owner => format!(
            r#"<p>You can bring it back, with its chat, until {until}.</p>
<form method="post" action="/rooms/{id}/restore"><input type="hidden" name="_csrf" value="{csrf}"><button type="submit" class="primary">Undo</button></form>
"#,
            until = time_element(until),
            id = room.id,
            csrf = escape(&identity.csrf_token(&visitor.user_id)),
        ),
        _ => String::new(),
    };
    let who = if owner {
        "You deleted the room"
    } else {
        "Its owner deleted the room"
    };
    format!(
        r#"<section class="room-error">
<h1>This room was deleted</h1>
<p>{who} &#8220;{name}&#8221;: nobody can join it, and it is gone from the room list.</p>
{undo}{links}
</section>"#,
        name = escape(&room.name),
        // Undo, when offered, is the page's main action.
        links = room_error_links(undo.is_empty()),
    )
}

/// Where to go from a room that is not there; `main` when nothing else on the
/// page is the main action.
fn room_error_links(main: bool) -> String {
    format!(
        r#"<p class="actions"><a class="button{primary}" href="/rooms">See the rooms</a> <a class="button" href="/rooms/new">Create a room</a></p>"#,
        primary = if main { " primary" } else { "" },
    )
}

async fn edit_room_form(
    State(store): State<Store>,
    State(identity): State<Identity>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> PageResult {
    let room = find_room(&store, &id).await?;
    owner_only(&visitor, &room)?;
    let values = NewRoom {
        name: room.name.clone(),
        description: room.description.clone(),
        visibility: Some(room.visibility),
    };
    Ok(edit_page(
        &identity,
        &visitor,
        &room,
        &values,
        &FieldErrors::new(),
        StatusCode::OK,
    ))
}

async fn update_room(
    State(store): State<Store>,
    State(identity): State<Identity>,
    visitor: Visitor,
    Path(id): Path<String>,
    Form(form): Form<RoomForm>,
) -> PageResult {
    check_csrf(&identity, &visitor, &form.csrf)?;
    let room = find_room(&store, &id).await?;
    owner_only(&visitor, &room)?;
    let (input, errors) = form.room();
    let outcome = match errors.into_result() {
        Ok(()) => store
            .update_room(room.id, &input)
            .await
            .map_err(Error::from),
        Err(errors) => Err(Error::Validation(errors)),
    };
    match outcome {
        Ok(Some(room)) => Ok(redirect(&visitor, &format!("/rooms/{}", room.id))),
        Ok(None) => Err(Error::NotFound.into()),
        Err(Error::Validation(errors)) => Ok(edit_page(
            &identity,
            &visitor,
            &room,
            &input,
            &errors,
            StatusCode::UNPROCESSABLE_ENTITY,
        )),
        Err(e) => Err(e.into()),
    }
}

async fn delete_room(
    State(store): State<Store>,
    State(identity): State<Identity>,
    State(rooms): State<Rooms>,
    visitor: Visitor,
    Path(id): Path<String>,
    Form(form): Form<TokenForm>,
) -> PageResult {
    check_csrf(&identity, &visitor, &form.csrf)?;
    let room = find_room(&store, &id).await?;
    owner_only(&visitor, &room)?;
    delete_and_close(&store, &rooms, room.id).await?;
    // The room as stored now, with its deletion time for the Undo deadline.
    let room = store
        .get_room_including_deleted(room.id)
        .await?
        .ok_or(PageError(Error::NotFound))?;
    let body = deleted_room_body(&identity, &visitor, &room);
    Ok(no_store(page(
        &visitor,
        StatusCode::OK,
        layout("Room deleted", &body),
    )))
}

async fn restore_room(
    State(store): State<Store>,
    State(identity): State<Identity>,
    visitor: Visitor,
    Path(id): Path<String>,
    Form(form): Form<TokenForm>,
) -> PageResult {
    check_csrf(&identity, &visitor, &form.csrf)?;
    let id = page_room_id(&id)?;
    let room = restore(&store, &Caller::User(visitor.clone()), id).await?;
    Ok(redirect(&visitor, &format!("/rooms/{}", room.id)))
}

/// Refuses a visitor who does not own `room` (the pages have no admin: the
/// operator uses the API).
fn owner_only(visitor: &Visitor, room: &Room) -> Result<(), PageError> {
    if room.is_owned_by(&visitor.user_id) {
        Ok(())
    } else {
        Err(PageError(not_the_owner(room)))
    }
}

fn edit_page(
    identity: &Identity,
    visitor: &Visitor,
    room: &Room,
    values: &NewRoom,
    errors: &FieldErrors,
    status: StatusCode,
) -> Response {
    let form = room_form(
        identity,
        visitor,
        &format!("/rooms/{}/edit", room.id),
        "Save",
        values,
        errors,
    );
    let body = format!(
        "<h1>Edit {name}</h1>\n{form}\n<p><a href=\"/rooms/{id}\">Back to the room</a></p>",
        name = escape(&room.name),
        id = room.id,
    );
    page(
        visitor,
        status,
        layout(&format!("Edit {}", room.name), &body),
    )
}

/// The room form, showing `values` as typed and a message under each field in
/// `errors`.
fn room_form(
    identity: &Identity,
    visitor: &Visitor,
    action: &str,
    submit: &str,
    values: &NewRoom,
    errors: &FieldErrors,
) -> String {
    let error = |field: &str| match errors.get(field) {
        Some(message) => format!(
            "<p class=\"error\" id=\"{field}-error\">{}</p>\n",
            escape(&capitalise(message))
        ),
        None => String::new(),
    };
    let visibility = values.visibility.unwrap_or_default();
    let selected = |option: Visibility| {
        if option == visibility {
            " selected"
        } else {
            ""
        }
    };
    format!(
        r#"<form method="post" action="{action}">
<input type="hidden" name="_csrf" value="{csrf}">
<label for="name">Name</label>
<input id="name" name="name" maxlength="80" required value="{name}">
{name_error}<label for="description">Description</label>
<textarea id="description" name="description" maxlength="500" rows="4">{description}</textarea>
{description_error}<label for="visibility">Who can find it</label>
<select id="visibility" name="visibility">
<option value="public"{public}>Public: listed on the room list</option>
<option value="unlisted"{unlisted}>Unlisted: only people with the link</option>
</select>
{visibility_error}<button type="submit">{submit}</button>
</form>"#,
        action = escape(action),
        csrf = escape(&identity.csrf_token(&visitor.user_id)),
        name = escape(&values.name),
        name_error = error("name"),
        description = escape(&values.description),
        description_error = error("description"),
        public = selected(Visibility::Public),
        unlisted = selected(Visibility::Unlisted),
        visibility_error = error("visibility"),
        submit = escape(submit),
    )
}

/// The room a page is about; a malformed id is just another room that is not found.
async fn find_room(store: &Store, id: &str) -> Result<Room, PageError> {
    let id = page_room_id(id)?;
    store.get_room(id).await?.ok_or(PageError(Error::NotFound))
}

fn page_room_id(id: &str) -> Result<Uuid, PageError> {
    id.parse().map_err(|_| PageError(Error::NotFound))
}

fn page(visitor: &Visitor, status: StatusCode, html: String) -> Response {
    (status, visitor.set_cookie(), Html(html)).into_response()
}

/// `response`, which no cache may keep (it holds a token, or changes on undo).
fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn redirect(visitor: &Visitor, to: &str) -> Response {
    (visitor.set_cookie(), Redirect::to(to)).into_response()
}

/// A `<time>` that pages.js shows in the reader's time zone; without JavaScript
/// the UTC time stays readable.
fn time_element(unix_ms: i64) -> String {
    let stamp = escape(&rfc3339(unix_ms));
    format!("<time datetime=\"{stamp}\">{stamp}</time>")
}

fn capitalise(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect::<String>() + ".",
        None => String::new(),
    }
}

/// The 404 page for a path that is nothing.
pub fn not_found_page() -> Response {
    let body = r#"<section class="page-error">
<h1>Not found</h1>
<p>There is nothing at this address. <a href="/rooms">See the rooms</a>.</p>
</section>"#;
    (StatusCode::NOT_FOUND, Html(layout("Not found", body))).into_response()
}

/// The 404 page for a room id that names no room (or is not a room id at all).
fn room_not_found_page() -> Response {
    let body = format!(
        r#"<section class="room-error">
<h1>This room does not exist</h1>
<p>The link may be mistyped or cut short: check it with whoever shared it, or pick a room from the list.</p>
{links}
</section>"#,
        links = room_error_links(true),
    );
    (StatusCode::NOT_FOUND, Html(layout("Not found", &body))).into_response()
}

/// An [`Error`] shown as a page rather than as JSON.
#[derive(Debug)]
struct PageError(Error);

impl From<Error> for PageError {
    fn from(error: Error) -> PageError {
        PageError(error)
    }
}

impl From<StorageError> for PageError {
    fn from(error: StorageError) -> PageError {
        PageError(error.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let PageError(error) = self;
        error.log_if_internal();
        let status = error.status();
        let message = match &error {
            // Every page route is about a room.
            Error::NotFound => return room_not_found_page(),
            // Client errors carry a message meant for the client.
            Error::BadRequest(message)
            | Error::Forbidden(message)
            | Error::Unauthorized(message)
            | Error::RateLimited { message, .. } => capitalise(message),
            Error::Validation(_) => error.to_string(),
            _ if status == StatusCode::SERVICE_UNAVAILABLE => {
                "The database is unavailable; try again shortly.".to_string()
            }
            _ => "Something went wrong on the server; try again, and tell the operator if it \
                  keeps happening."
                .to_string(),
        };
        let body = format!(
            "<section class=\"page-error\">\n<h1>Sorry</h1>\n<p>{}</p>\n</section>",
            escape(&message)
        );
        let mut response = (status, Html(layout("Error", &body))).into_response();
        if let Some(retry_after) = error.retry_after_header() {
            response.headers_mut().insert(RETRY_AFTER, retry_after);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roomscale_protocol::presence::ClientKind;

    fn room(name: &str, inserted_at: i64) -> Room {
        Room {
            id: Uuid::new_v4(),
            name: name.to_string(),
            description: String::new(),
            inserted_at,
            updated_at: inserted_at,
            owner_id: None,
            visibility: Visibility::Public,
            locked: false,
            deleted_at: None,
        }
    }

    #[test]
    fn people_are_told_in_words_by_kind() {
        assert_eq!(people_text(&Headcount::default()), "nobody here yet");
        let people = Headcount::count([ClientKind::Web, ClientKind::Quest, ClientKind::Web]);
        assert_eq!(
            people_text(&people),
            "3 here: 2 in a browser, 1 in a headset"
        );
        let people = Headcount::count([ClientKind::Desktop, ClientKind::Xr]);
        assert_eq!(
            people_text(&people),
            "2 here: 1 in the desktop app, 1 in a headset"
        );
    }

    #[test]
    fn the_busiest_then_the_liveliest_then_the_newest_room_comes_first() {
        let mut rooms = vec![
            room("new and empty", 300),
            room("old and chatty", 100),
            room("crowded", 50),
            room("newer, one here", 200),
            room("older, one here", 150),
        ];
        let life = |people: &[ClientKind], active_at: Option<i64>| RoomLife {
            people: Headcount::count(people.iter().copied()),
            active_at,
        };
        let lives = HashMap::from([
            (rooms[1].id, life(&[], Some(900))),
            (
                rooms[2].id,
                life(&[ClientKind::Web, ClientKind::Desktop], Some(10)),
            ),
            (rooms[3].id, life(&[ClientKind::Web], Some(500))),
            (rooms[4].id, life(&[ClientKind::Quest], Some(500))),
        ]);
        sort_by_activity(&mut rooms, &lives);
        let order: Vec<&str> = rooms.iter().map(|room| room.name.as_str()).collect();
        assert_eq!(
            order,
            [
                "crowded",
                "newer, one here",
                "older, one here",
                "old and chatty",
                "new and empty"
            ]
        );
    }
}
