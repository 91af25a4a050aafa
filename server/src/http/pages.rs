//! Server-rendered pages: the landing page, the room list, the room forms and the
//! room page that hosts the browser client.
//!
//! Every page sets the visitor cookie when the request had none, so that the room
//! page can embed a socket token for a stable user id.

use std::time::SystemTime;

use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use uuid::Uuid;

use super::html::{escape, layout};
use crate::AppState;
use crate::error::{Error, FieldErrors};
use crate::identity::Visitor;
use crate::storage::{NewRoom, Room, rfc3339};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(landing))
        .route("/rooms", get(list_rooms))
        .route("/rooms/new", get(new_room_form).post(create_room))
        .route("/rooms/{id}", get(show_room))
        .route("/rooms/{id}/edit", get(edit_room_form).post(update_room))
        .route("/rooms/{id}/delete", post(delete_room))
}

type PageResult = Result<Response, PageError>;

async fn landing(visitor: Visitor) -> Response {
    let body = r#"<h1>Welcome to Roomscale</h1>
<p>Meet people in persistent rooms, in your browser, on a PC headset or on a Quest.</p>
<p><a href="/rooms">See the rooms</a> or <a href="/rooms/new">create one</a>.</p>"#;
    page(&visitor, StatusCode::OK, layout("Welcome", body))
}

async fn list_rooms(State(state): State<AppState>, visitor: Visitor) -> PageResult {
    let rooms = state.store.list_rooms().await?;
    let mut body =
        String::from("<h1>Rooms</h1>\n<p><a href=\"/rooms/new\">Create a room</a></p>\n");
    if rooms.is_empty() {
        body.push_str("<p>No rooms yet.</p>\n");
    } else {
        body.push_str("<ul class=\"rooms\">\n");
        for room in &rooms {
            body.push_str(&format!(
                "<li><a href=\"/rooms/{id}\">{name}</a><div class=\"description\">{description}</div><div class=\"meta\">Updated {updated}</div></li>\n",
                id = room.id,
                name = escape(&room.name),
                description = escape(&room.description),
                updated = time_element(room.updated_at),
            ));
        }
        body.push_str("</ul>\n");
    }
    Ok(page(&visitor, StatusCode::OK, layout("Rooms", &body)))
}

async fn new_room_form(visitor: Visitor) -> Response {
    let form = room_form(
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
    State(state): State<AppState>,
    visitor: Visitor,
    Form(input): Form<NewRoom>,
) -> PageResult {
    match state
        .store
        .create_room(&input, Some(&visitor.user_id))
        .await
    {
        Ok(room) => Ok(redirect(&visitor, &format!("/rooms/{}", room.id))),
        Err(Error::Validation(errors)) => {
            let form = room_form("/rooms/new", "Create room", &input, &errors);
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
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> PageResult {
    let room = find_room(&state, &id).await?;
    let (token, _) = state
        .identity
        .issue_token(&visitor.user_id, None, SystemTime::now());
    let body = format!(
        r#"<h1>{name}</h1>
<p class="description">{description}</p>
<p class="meta">Created {created}</p>
<p><a href="/rooms/{id}/edit">Edit room</a></p>
<form method="post" action="/rooms/{id}/delete" data-confirm="{confirm}"><button type="submit">Delete room</button></form>
<div id="room-root" data-room-id="{id}" data-user-id="{user_id}" data-token="{token}"></div>
<noscript>The room needs JavaScript to show people and carry voice.</noscript>
<script type="module" src="/assets/room.js"></script>"#,
        id = room.id,
        name = escape(&room.name),
        description = escape(&room.description),
        created = time_element(room.inserted_at),
        confirm = escape(&format!(
            "Delete the room \u{201c}{}\u{201d} and its chat history for everyone?",
            room.name
        )),
        user_id = escape(&visitor.user_id),
        token = escape(&token),
    );
    Ok(page(&visitor, StatusCode::OK, layout(&room.name, &body)))
}

async fn edit_room_form(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> PageResult {
    let room = find_room(&state, &id).await?;
    let values = NewRoom {
        name: room.name.clone(),
        description: room.description.clone(),
        visibility: Some(room.visibility),
    };
    Ok(edit_page(
        &visitor,
        &room,
        &values,
        &FieldErrors::new(),
        StatusCode::OK,
    ))
}

async fn update_room(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
    Form(input): Form<NewRoom>,
) -> PageResult {
    let room = find_room(&state, &id).await?;
    match state.store.update_room(room.id, &input).await {
        Ok(Some(room)) => Ok(redirect(&visitor, &format!("/rooms/{}", room.id))),
        Ok(None) => Err(Error::NotFound.into()),
        Err(Error::Validation(errors)) => Ok(edit_page(
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
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> PageResult {
    let id = page_room_id(&id)?;
    if state.store.delete_room(id).await? {
        Ok(redirect(&visitor, "/rooms"))
    } else {
        Err(Error::NotFound.into())
    }
}

fn edit_page(
    visitor: &Visitor,
    room: &Room,
    values: &NewRoom,
    errors: &FieldErrors,
    status: StatusCode,
) -> Response {
    let form = room_form(&format!("/rooms/{}/edit", room.id), "Save", values, errors);
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
fn room_form(action: &str, submit: &str, values: &NewRoom, errors: &FieldErrors) -> String {
    let error = |field: &str| match errors.get(field) {
        Some(message) => format!(
            "<p class=\"error\" id=\"{field}-error\">{}</p>\n",
            escape(&capitalise(message))
        ),
        None => String::new(),
    };
    format!(
        r#"<form method="post" action="{action}">
<label for="name">Name</label>
<input id="name" name="name" maxlength="80" required value="{name}">
{name_error}<label for="description">Description</label>
<textarea id="description" name="description" maxlength="500" rows="4">{description}</textarea>
{description_error}<button type="submit">{submit}</button>
</form>"#,
        action = escape(action),
        name = escape(&values.name),
        name_error = error("name"),
        description = escape(&values.description),
        description_error = error("description"),
        submit = escape(submit),
    )
}

/// The room a page is about; a malformed id is just another room that is not found.
async fn find_room(state: &AppState, id: &str) -> Result<Room, PageError> {
    let id = page_room_id(id)?;
    state
        .store
        .get_room(id)
        .await?
        .ok_or(PageError(Error::NotFound))
}

fn page_room_id(id: &str) -> Result<Uuid, PageError> {
    id.parse().map_err(|_| PageError(Error::NotFound))
}

fn page(visitor: &Visitor, status: StatusCode, html: String) -> Response {
    (status, visitor.set_cookie(), Html(html)).into_response()
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

/// The 404 page.
pub fn not_found_page() -> Response {
    let body = r#"<h1>Not found</h1>
<p>There is nothing here; the room may have been deleted. <a href="/rooms">See the rooms</a>.</p>"#;
    (StatusCode::NOT_FOUND, Html(layout("Not found", body))).into_response()
}

/// An [`Error`] shown as a page rather than as JSON.
#[derive(Debug)]
struct PageError(Error);

impl From<Error> for PageError {
    fn from(error: Error) -> PageError {
        PageError(error)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let PageError(error) = self;
        error.log_if_internal();
        let status = error.status();
        let message = match &error {
            Error::NotFound => return not_found_page(),
            // Client errors carry a message meant for the client.
            Error::BadRequest(_) | Error::Validation(_) => error.to_string(),
            _ if status == StatusCode::SERVICE_UNAVAILABLE => {
                "The database is unavailable; try again shortly.".to_string()
            }
            _ => "Something went wrong on the server; try again, and tell the operator if it \
                  keeps happening."
                .to_string(),
        };
        let body = format!("<h1>Sorry</h1>\n<p>{}</p>", escape(&message));
        (status, Html(layout("Error", &body))).into_response()
    }
}
