//! Rooms have owners: who may edit, delete and restore them, the admin token,
//! visibility, the paginated list and the creation limits.
//!
//! Requests go to the router in-process ([`TestApp`]); the tests that also
//! join a room over a WebSocket use a real listener ([`TestServer`]).

use std::time::SystemTime;

use roomscale_protocol::events::ErrorCode;
use serde_json::{Value, json};

use crate::common::ws::WAIT;
use crate::common::{Http, Request, Response, TestApp, TestServer};

const COOKIE: &str = "roomscale_user";

/// A browser with its own visitor cookie: it reads each form's CSRF token from
/// the page the form is on, as a real browser submits what the page holds.
pub(crate) struct Browser<'a, S: Http> {
    pub server: &'a S,
    pub cookie: String,
    pub user_id: String,
}

impl<'a, S: Http> Browser<'a, S> {
    pub async fn new(server: &'a S) -> Browser<'a, S> {
        let landing = server.send(Request::get("/")).await;
        let cookie = landing
            .cookie(COOKIE)
            .expect("the landing page sets the cookie");
        let user_id = server
            .state()
            .identity
            .verify_cookie_value(cookie.split_once('=').unwrap().1)
            .unwrap();
        Browser {
            server,
            cookie,
            user_id,
        }
    }

    /// A new visitor's browser, and the public room `name` it made (its id).
    pub async fn with_public_room(server: &'a S, name: &str) -> (Browser<'a, S>, String) {
        let browser = Browser::new(server).await;
        let id = browser.create_room(name, "public").await;
        (browser, id)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.server
            .send(Request::get(path).cookie(&self.cookie))
            .await
    }

    /// Posts `fields` plus the `_csrf` the page at `form_page` holds, from this
    /// server's own origin.
    pub async fn submit(&self, form_page: &str, action: &str, fields: &[(&str, &str)]) -> Response {
        let page = self.get(form_page).await;
        assert_eq!(page.status, 200, "{form_page}: {}", page.body);
        let token = csrf_in(&page.body, action);
        let mut fields = fields.to_vec();
        fields.push(("_csrf", &token));
        self.post(action, &fields).await
    }

    /// Posts `fields` as they are, from this server's own origin.
    pub async fn post(&self, action: &str, fields: &[(&str, &str)]) -> Response {
        let origin = self.server.origin();
        self.server
            .send(
                Request::post(action)
                    .cookie(&self.cookie)
                    .header("Origin", &origin)
                    .form(fields),
            )
            .await
    }

    /// The JSON API with this browser's cookie.
    pub async fn api(&self, request: Request) -> Response {
        self.server.send(request.cookie(&self.cookie)).await
    }

    /// Creates a room through the form and returns its id.
    pub async fn create_room(&self, name: &str, visibility: &str) -> String {
        self.create_described_room(name, "", visibility).await
    }

    /// Creates a room with a description through the form and returns its id.
    pub async fn create_described_room(
        &self,
        name: &str,
        description: &str,
        visibility: &str,
    ) -> String {
        let created = self
            .submit(
                "/rooms/new",
                "/rooms/new",
                &[
                    ("name", name),
                    ("description", description),
                    ("visibility", visibility),
                ],
            )
            .await;
        assert_eq!(created.status, 303, "{}", created.body);
        created
            .header("location")
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string()
    }
}

/// The `_csrf` value of the form posting to `action` in `html`.
pub(crate) fn csrf_in(html: &str, action: &str) -> String {
    let form = html
        .find(&format!("action=\"{action}\""))
        .unwrap_or_else(|| panic!("no form posting to {action} in {html}"));
    let rest = &html[form..];
    let start = rest
        .find("name=\"_csrf\" value=\"")
        .expect("the form has a _csrf field")
        + "name=\"_csrf\" value=\"".len();
    let end = start + rest[start..].find('"').unwrap();
    rest[start..end].to_string()
}

fn admin_token(server: &impl Http) -> String {
    std::fs::read_to_string(server.state().config.admin_token_path())
        .expect("the admin token file exists")
        .trim()
        .to_string()
}

#[tokio::test]
async fn only_the_owner_sees_and_uses_the_edit_and_delete_forms() {
    let server = TestApp::start().await;
    let (ada, id) = Browser::with_public_room(&server, "Ada's room").await;
    let mallory = Browser::new(&server).await;
    let room_page = format!("/rooms/{id}");

    let own = ada.get(&room_page).await;
    assert!(own.body.contains(&format!("href=\"/rooms/{id}/edit\"")));
    assert!(own.body.contains(&format!("action=\"/rooms/{id}/delete\"")));
    let other = mallory.get(&room_page).await;
    assert_eq!(other.status, 200);
    assert!(!other.body.contains("/edit\""), "{}", other.body);
    assert!(!other.body.contains("/delete\""), "{}", other.body);

    // Mallory, with a valid form token of her own, still may not edit or delete.
    let edit_form = mallory.get(&format!("/rooms/{id}/edit")).await;
    assert_eq!(edit_form.status, 403);
    assert!(
        edit_form
            .body
            .contains("Only the room&#39;s owner may change"),
        "{}",
        edit_form.body
    );
    let her_token = csrf_in(&mallory.get("/rooms/new").await.body, "/rooms/new");
    for (action, fields) in [
        (
            format!("/rooms/{id}/edit"),
            vec![("name", "Pwned"), ("_csrf", her_token.as_str())],
        ),
        (
            format!("/rooms/{id}/delete"),
            vec![("_csrf", her_token.as_str())],
        ),
    ] {
        let response = mallory.post(&action, &fields).await;
        assert_eq!(response.status, 403, "{action}: {}", response.body);
        assert!(response.body.contains("owner"), "{}", response.body);
    }
    assert!(
        ada.get(&room_page)
            .await
            .body
            .contains("<h2>Ada&#39;s room</h2>")
    );

    // The owner edits and deletes.
    let edited = ada
        .submit(
            &format!("/rooms/{id}/edit"),
            &format!("/rooms/{id}/edit"),
            &[
                ("name", "Atrium"),
                ("description", "Bigger"),
                ("visibility", "public"),
            ],
        )
        .await;
    assert_eq!(edited.status, 303, "{}", edited.body);
    assert!(ada.get(&room_page).await.body.contains("<h2>Atrium</h2>"));
}

#[tokio::test]
async fn only_the_owner_or_the_admin_change_rooms_through_the_api() {
    let server = TestApp::start().await;
    let created = server.post_room("Mine").await;
    let owner_cookie = created.cookie(COOKIE).expect("a new visitor gets a cookie");
    let id = created.json()["id"].as_str().unwrap().to_string();
    let owner_id = created.json()["owner_id"].as_str().unwrap().to_string();
    let path = format!("/api/rooms/{id}");

    // A stranger with no cookie, another visitor's cookie, or another user's
    // socket token: 403 with the reason, and the room is unchanged.
    let (stranger_token, _) = server.session("Mallory").await;
    let other_visitor = Browser::new(&server).await;
    for request in [
        Request::put(&path).json(&json!({"name": "Renamed"})),
        Request::delete(&path),
        Request::put(&path)
            .json(&json!({"name": "Renamed"}))
            .cookie(&other_visitor.cookie),
        Request::delete(&path).cookie(&other_visitor.cookie),
        Request::put(&path)
            .json(&json!({"name": "Renamed"}))
            .header("Authorization", &format!("Bearer {stranger_token}")),
        Request::delete(&path).header("Authorization", &format!("Bearer {stranger_token}")),
    ] {
        let response = server.send(request).await;
        assert_eq!(response.status, 403, "{}", response.body);
        assert!(
            response.json()["error"].as_str().unwrap().contains("owner"),
            "{}",
            response.body
        );
    }
    let forged = server
        .send(Request::delete(&path).header("Authorization", "Bearer not-a-token"))
        .await;
    assert_eq!(forged.status, 401, "{}", forged.body);
    assert_eq!(server.get(&path).await.json()["name"], "Mine");

    // The owner, by cookie or by a socket token of theirs (the native app).
    let renamed = server
        .send(
            Request::put(&path)
                .json(&json!({"name": "Ours", "visibility": "unlisted"}))
                .cookie(&owner_cookie),
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    assert_eq!(renamed.json()["visibility"], "unlisted");
    let (owner_token, _) = server
        .state
        .identity
        .issue_token(&owner_id, None, SystemTime::now());
    let renamed = server
        .send(
            Request::put(&path)
                .json(&json!({"name": "Ours again"}))
                .header("Authorization", &format!("Bearer {owner_token}")),
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    assert_eq!(
        renamed.json()["visibility"],
        "unlisted",
        "an edit without a visibility keeps it"
    );

    // The admin may do anything.
    let admin = format!("Bearer {}", admin_token(&server));
    let by_admin = server
        .send(
            Request::put(&path)
                .json(&json!({"name": "Moderated"}))
                .header("Authorization", &admin),
        )
        .await;
    assert_eq!(by_admin.status, 200, "{}", by_admin.body);
    let deleted = server
        .send(Request::delete(&path).header("Authorization", &admin))
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    assert_eq!(server.get(&path).await.status, 404);
    let restored = server
        .send(Request::post(&format!("{path}/restore")).header("Authorization", &admin))
        .await;
    assert_eq!(restored.status, 200, "{}", restored.body);
    assert_eq!(server.get(&path).await.json()["name"], "Moderated");
}

#[tokio::test]
async fn rooms_made_before_owners_are_the_admins_alone() {
    let server = TestApp::start().await;
    let room = server
        .state
        .store
        .create_room(
            &roomscale_server::storage::NewRoom {
                name: "Legacy".into(),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    let path = format!("/api/rooms/{}", room.id);
    let anyone = server.send(Request::delete(&path)).await;
    assert_eq!(anyone.status, 403);
    assert!(anyone.body.contains("operator"), "{}", anyone.body);
    let admin = server
        .send(
            Request::delete(&path)
                .header("Authorization", &format!("Bearer {}", admin_token(&server))),
        )
        .await;
    assert_eq!(admin.status, 204, "{}", admin.body);
}

#[tokio::test]
async fn deleting_ends_the_live_session_and_the_owner_can_undo_it() {
    let server = TestServer::start().await;
    let (ada, id) = Browser::with_public_room(&server, "Doomed").await;
    let topic = format!("room:{id}");
    let mut member = server.socket("Bo").await;
    member.join_ok(&topic, "Bo").await;

    let deleted = ada
        .submit(&format!("/rooms/{id}"), &format!("/rooms/{id}/delete"), &[])
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert!(deleted.body.contains("Undo"), "{}", deleted.body);

    // The member is told at once, with the reason.
    let close = tokio::time::timeout(WAIT, async {
        loop {
            if let crate::common::ws::Received::Text(frame) = member.recv().await
                && frame.event == "phx_close"
            {
                return frame;
            }
        }
    })
    .await
    .expect("the member gets phx_close");
    assert_eq!(close.payload["code"], json!(ErrorCode::RoomDeleted));
    assert_eq!(ada.get(&format!("/rooms/{id}")).await.status, 410);
    assert!(!ada.get("/rooms").await.body.contains("Doomed"));
    let mut late = server.socket("Cy").await;
    let (_, status, refused) = late
        .join(&topic, crate::common::ws::join_payload("Cy"))
        .await;
    assert_eq!(status, "error", "a deleted room takes no joins: {refused}");

    // Undo, from the page shown after deleting.
    let undone = ada
        .post(
            &format!("/rooms/{id}/restore"),
            &[(
                "_csrf",
                &csrf_in(&deleted.body, &format!("/rooms/{id}/restore")),
            )],
        )
        .await;
    assert_eq!(undone.status, 303, "{}", undone.body);
    assert_eq!(ada.get(&format!("/rooms/{id}")).await.status, 200);
    let mut back = server.socket("Di").await;
    back.join_ok(&topic, "Di").await;

    // Restoring is the owner's too.
    let mallory = Browser::new(&server).await;
    ada.api(Request::delete(&format!("/api/rooms/{id}"))).await;
    let theirs = mallory
        .api(Request::post(&format!("/api/rooms/{id}/restore")))
        .await;
    assert_eq!(theirs.status, 403, "{}", theirs.body);
    let ours = ada
        .api(Request::post(&format!("/api/rooms/{id}/restore")))
        .await;
    assert_eq!(ours.status, 200, "{}", ours.body);
}

#[tokio::test]
async fn the_janitor_purges_rooms_deleted_over_a_week_ago_and_trims_history() {
    let server = TestApp::start().await;
    let store = &server.state.store;
    let new_room = |name: &str| roomscale_server::storage::NewRoom {
        name: name.into(),
        ..Default::default()
    };
    let old = store
        .create_room(&new_room("Old"), Some("u"))
        .await
        .unwrap();
    let recent = store
        .create_room(&new_room("Recent"), Some("u"))
        .await
        .unwrap();
    let live = store
        .create_room(&new_room("Live"), Some("u"))
        .await
        .unwrap();
    for room in [old.id, recent.id, live.id] {
        store.delete_room(room).await.unwrap();
    }
    store.restore_room(live.id).await.unwrap();
    let eight_days_ago = roomscale_server::time::unix_millis(
        SystemTime::now() - std::time::Duration::from_secs(8 * 24 * 60 * 60),
    );
    sqlx::query("UPDATE rooms SET deleted_at = $1 WHERE id = $2")
        .bind(eight_days_ago)
        .bind(old.id.to_string())
        .execute(store.pool())
        .await
        .unwrap();
    assert!(
        !store.restore_room(old.id).await.unwrap(),
        "too late to restore"
    );

    // History beyond the newest 2 events per room goes too.
    for text in ["one", "two", "three", "four", "five"] {
        let body = roomscale_protocol::events::RoomEventBody::Chat { text: text.into() };
        let now = roomscale_server::time::unix_millis(SystemTime::now());
        store
            .append_event(live.id, "u", "Ada", now, &body)
            .await
            .unwrap();
    }
    let mut config = roomscale_server::Config::for_tests(std::env::temp_dir());
    config.history_max_events = 2;
    let swept = roomscale_server::janitor::sweep(store, &config, SystemTime::now())
        .await
        .unwrap();
    assert_eq!(
        swept,
        roomscale_server::janitor::Swept {
            rooms: 1,
            events: 3
        }
    );
    let (kept, _) = store.events_after(live.id, 0, 100).await.unwrap();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert_eq!(
        store.get_room_including_deleted(old.id).await.unwrap(),
        None
    );
    assert!(
        store
            .get_room_including_deleted(recent.id)
            .await
            .unwrap()
            .is_some()
    );
    assert!(store.get_room(live.id).await.unwrap().is_some());
}

#[tokio::test]
async fn unlisted_rooms_are_reached_by_link_and_listed_only_to_their_owner() {
    let server = TestServer::start().await;
    let ada = Browser::new(&server).await;
    let bo = Browser::new(&server).await;
    let hidden = ada.create_room("Hidden den", "unlisted").await;
    ada.create_room("Open hall", "public").await;

    let own_list = ada.get("/rooms").await.body;
    assert!(
        own_list.contains("Hidden den") && own_list.contains("unlisted</span>"),
        "{own_list}"
    );
    let their_list = bo.get("/rooms").await.body;
    assert!(their_list.contains("Open hall"));
    assert!(!their_list.contains("Hidden den"), "{their_list}");
    let api_list = bo.api(Request::get("/api/rooms")).await.json();
    assert_eq!(api_list.as_array().unwrap().len(), 1, "{api_list}");
    let own_api_list = ada.api(Request::get("/api/rooms")).await.json();
    assert_eq!(own_api_list.as_array().unwrap().len(), 2, "{own_api_list}");

    // The link works for anyone, and the room can be joined.
    assert_eq!(bo.get(&format!("/rooms/{hidden}")).await.status, 200);
    assert_eq!(
        server.get(&format!("/api/rooms/{hidden}")).await.status,
        200
    );
    let mut socket = server.socket("Bo").await;
    socket.join_ok(&format!("room:{hidden}"), "Bo").await;
}

/// Follows the `Link: <...>; rel="next"` header.
fn next_link(response: &Response) -> Option<String> {
    let link = response.header("link")?;
    let (target, rel) = link.split_once(';')?;
    assert!(rel.contains("rel=\"next\""), "{link}");
    Some(
        target
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_string(),
    )
}

/// A room named `Room <number>`, created at `number` seconds past the epoch so
/// that the list's order is known (rooms made in one millisecond tie).
async fn numbered_room(server: &TestApp, number: i64) {
    let store = &server.state.store;
    let room = store
        .create_room(
            &roomscale_server::storage::NewRoom {
                name: format!("Room {number}"),
                ..Default::default()
            },
            Some("someone"),
        )
        .await
        .unwrap();
    sqlx::query("UPDATE rooms SET inserted_at = $1 WHERE id = $2")
        .bind(number * 1000)
        .bind(room.id.to_string())
        .execute(store.pool())
        .await
        .unwrap();
}

#[tokio::test]
async fn the_room_list_comes_in_pages() {
    let server = TestApp::start().await;
    for number in 0..7 {
        numbered_room(&server, number).await;
    }
    let mut seen = Vec::new();
    let mut path = Some("/api/rooms?limit=3".to_string());
    let mut pages = 0;
    while let Some(next) = path {
        let response = server.get(&next).await;
        assert_eq!(response.status, 200, "{next}: {}", response.body);
        let rooms: Vec<Value> = serde_json::from_str(&response.body).unwrap();
        assert!(rooms.len() <= 3);
        seen.extend(
            rooms
                .iter()
                .map(|room| room["name"].as_str().unwrap().to_string()),
        );
        path = next_link(&response);
        pages += 1;
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..7).rev().map(|n| format!("Room {n}")).collect();
    assert_eq!(seen, expected, "newest first, each room once");

    let whole = server.get("/api/rooms").await;
    assert_eq!(whole.json().as_array().unwrap().len(), 7);
    assert_eq!(whole.header("link"), None);
    for bad in [
        "/api/rooms?limit=0",
        "/api/rooms?limit=101",
        "/api/rooms?after=nonsense",
    ] {
        let response = server.get(bad).await;
        assert_eq!(response.status, 400, "{bad}");
        assert!(response.json()["error"].is_string());
    }
    // The pages: numbered, with a link to the older ones.
    for number in 7..60 {
        numbered_room(&server, number).await;
    }
    let first = server.get("/rooms").await.body;
    assert!(first.contains("Room 59") && !first.contains(">Room 9<"));
    assert!(first.contains("href=\"/rooms?page=2\""), "{first}");
    let second = server.get("/rooms?page=2").await.body;
    assert!(second.contains(">Room 9<") && second.contains(">Room 0<"));
    assert!(!second.contains("page=3"));
}

#[tokio::test]
async fn room_creation_is_limited_per_address_on_pages_and_api() {
    let server = TestServer::start_with(|config| config.rooms_per_hour = 3).await;
    let ada = Browser::new(&server).await;
    ada.create_room("One", "public").await;
    for name in ["Two", "Three"] {
        let created = server
            .send(Request::post("/api/rooms").json(&json!({"name": name})))
            .await;
        assert_eq!(created.status, 201);
    }
    let api = server
        .send(Request::post("/api/rooms").json(&json!({"name": "Four"})))
        .await;
    assert_eq!(api.status, 429, "{}", api.body);
    let retry: u64 = api.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
    assert!(
        api.json()["error"]
            .as_str()
            .unwrap()
            .contains("try again in")
    );
    let form = ada
        .submit("/rooms/new", "/rooms/new", &[("name", "Five")])
        .await;
    assert_eq!(form.status, 429, "{}", form.body);
    assert!(form.header("retry-after").is_some());
    assert!(form.body.contains("try again in"), "{}", form.body);
    assert_eq!(crate::common::listed_rooms(&server).await.len(), 3);
    // Honest use goes on: rooms are still read and joined.
    let id = server.get("/api/rooms").await.json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut socket = server.socket("Ada").await;
    socket.join_ok(&format!("room:{id}"), "Ada").await;
}

#[tokio::test]
async fn socket_tokens_are_limited_per_address() {
    let server = TestApp::start_with(|config| config.tokens_per_minute = 2).await;
    server.session("Ada").await;
    server.session("Bo").await;
    let refused = server.send(Request::post("/api/session")).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert!(refused.header("retry-after").is_some());
    assert!(
        refused.json()["error"]
            .as_str()
            .unwrap()
            .contains("try again in")
    );
    // The room page still embeds a token for visitors (a page view is no flood).
    let page = server.get("/rooms").await;
    assert_eq!(page.status, 200);
}

/// What the store keeps about owners, visibility, locks, moderators and
/// deletion, the same on SQLite and PostgreSQL.
async fn the_store_keeps_governance_and_deletion(store: roomscale_server::Store) {
    use roomscale_server::storage::{NewRoom, RoomListQuery, Visibility};
    let room = |name: &str, visibility| NewRoom {
        name: name.into(),
        description: String::new(),
        visibility,
    };
    let public = store
        .create_room(&room("Public", None), Some("ada"))
        .await
        .unwrap();
    let unlisted = store
        .create_room(&room("Unlisted", Some(Visibility::Unlisted)), Some("ada"))
        .await
        .unwrap();
    assert_eq!(public.visibility, Visibility::Public);
    assert_eq!(unlisted.owner_id.as_deref(), Some("ada"));

    let listed = |viewer: Option<&str>| {
        let store = store.clone();
        let viewer = viewer.map(str::to_string);
        async move {
            store
                .list_rooms_page(&RoomListQuery {
                    viewer,
                    limit: 10,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_iter()
                .map(|room| room.name)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(listed(None).await, ["Public"]);
    assert_eq!(listed(Some("bo")).await, ["Public"]);
    assert_eq!(listed(Some("ada")).await.len(), 2);
    let first = store
        .list_rooms_page(&RoomListQuery {
            viewer: Some("ada".into()),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    let rest = store
        .list_rooms_page(&RoomListQuery {
            viewer: Some("ada".into()),
            after: Some(first[0].cursor()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_ne!(rest[0].id, first[0].id);

    // An edit without a visibility keeps it; with one, changes it.
    let kept = store
        .update_room(unlisted.id, &room("Renamed", None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.visibility, Visibility::Unlisted);
    let opened = store
        .update_room(unlisted.id, &room("Renamed", Some(Visibility::Public)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(opened.visibility, Visibility::Public);

    store.set_room_locked(public.id, true).await.unwrap();
    // Naming someone twice is naming them once; unnaming takes them off.
    for (user, moderator) in [("bo", true), ("bo", true), ("cy", true), ("cy", false)] {
        store
            .set_room_moderator(public.id, user, moderator)
            .await
            .unwrap();
    }
    let moderators = store.room_moderators(public.id).await.unwrap();
    assert_eq!(moderators, ["bo"]);
    let governance = store
        .get_room(public.id)
        .await
        .unwrap()
        .unwrap()
        .governance(moderators);
    assert_eq!(governance.owner_user_id.as_deref(), Some("ada"));
    assert!(governance.locked && governance.may_moderate("bo") && !governance.may_moderate("cy"));

    assert!(store.delete_room(public.id).await.unwrap());
    assert_eq!(store.get_room(public.id).await.unwrap(), None);
    assert!(
        store
            .update_room(public.id, &room("x", None))
            .await
            .unwrap()
            .is_none()
    );
    let deleted = store
        .get_room_including_deleted(public.id)
        .await
        .unwrap()
        .unwrap();
    assert!(deleted.deleted_at.is_some());
    assert!(store.restore_room(public.id).await.unwrap());
    assert!(
        !store.restore_room(public.id).await.unwrap(),
        "not deleted now"
    );
    assert!(store.get_room(public.id).await.unwrap().is_some());
    store.delete_room(public.id).await.unwrap();
    let later = roomscale_server::time::unix_millis(SystemTime::now()) + 1;
    assert_eq!(store.purge_deleted_rooms(later).await.unwrap(), 1);
    assert_eq!(
        store.get_room_including_deleted(public.id).await.unwrap(),
        None
    );
    assert!(store.room_moderators(public.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_store_keeps_governance_and_deletion_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = roomscale_server::config::sqlite_url(&dir.path().join("roomscale.db"));
    let store = roomscale_server::Store::connect(&url).await.unwrap();
    the_store_keeps_governance_and_deletion(store.clone()).await;
    store.close().await;
}

#[tokio::test]
async fn the_store_keeps_governance_and_deletion_on_postgres() {
    crate::common::with_postgres_database(
        "ownership::the_store_keeps_governance_and_deletion_on_postgres",
        |url| async move {
            let store = roomscale_server::Store::connect(&url).await.unwrap();
            the_store_keeps_governance_and_deletion(store.clone()).await;
            store.close().await;
        },
    )
    .await;
}
