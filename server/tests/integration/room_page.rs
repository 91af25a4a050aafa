//! The room page over a real listener: the full-window shell that room.js
//! builds on (no top bar, `#room-root` with what the client needs, the hidden
//! `#room-details` with the owner's actions), the 404 page for a room id that
//! names no room, and the 410 page for a deleted room with Undo for its owner.

use std::time::{Duration, SystemTime};

use crate::common::{Http, Request, Response, TestServer};
use crate::ownership::{Browser, csrf_in};

/// The value of the first `name="…"` attribute in `html`.
fn attribute<'a>(html: &'a str, name: &str) -> &'a str {
    let start = html
        .find(&format!(" {name}=\""))
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + name.len()
        + 3;
    let end = start + html[start..].find('"').unwrap();
    &html[start..end]
}

/// The HTML from the element opening with `open` to its first `close`.
fn element<'a>(html: &'a str, open: &str, close: &str) -> &'a str {
    let start = html
        .find(open)
        .unwrap_or_else(|| panic!("no {open} in {html}"));
    let end = start + html[start..].find(close).unwrap() + close.len();
    &html[start..end]
}

fn assert_html(response: &Response, status: u16, what: &str) {
    assert_eq!(response.status, status, "{what}: {}", response.body);
    let content_type = response.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/html"),
        "{what} is a page, not {content_type}"
    );
}

/// The two ways on from a room that is not there.
fn assert_room_error_links(html: &str) {
    let error = element(html, "<section class=\"room-error\">", "</section>");
    assert!(
        error.contains(r#"href="/rooms">See the rooms</a>"#),
        "{error}"
    );
    assert!(
        error.contains(r#"href="/rooms/new">Create a room</a>"#),
        "{error}"
    );
    assert!(!html.contains("room-root"), "no room to show: {html}");
}

#[tokio::test]
async fn the_room_page_fills_the_window_and_keeps_details_for_the_room_menu() {
    let server = TestServer::start().await;
    let ada = Browser::new(&server).await;
    let name = r#"Ada's "lab" <&> co"#;
    let id = ada
        .create_described_room(name, "Bring snacks\nand ideas", "public")
        .await;
    let escaped_name = "Ada&#39;s &quot;lab&quot; &lt;&amp;&gt; co";

    let own = ada.get(&format!("/rooms/{id}")).await;
    assert_html(&own, 200, "the owner's room page");
    assert_eq!(own.header("cache-control"), Some("no-store"));
    let html = &own.body;
    assert!(html.contains("<body class=\"room-page\">"), "{html}");
    assert!(
        !html.contains("<nav"),
        "the room page has no top bar: {html}"
    );
    assert!(html.contains(&format!("<title>{escaped_name} · Roomscale</title>")));
    assert!(html.contains(r#"<link rel="stylesheet" href="/pages.css">"#));
    assert!(html.contains(r#"<script type="module" src="/assets/pages.js"></script>"#));
    assert!(html.contains(r#"<script type="module" src="/assets/room.js"></script>"#));
    assert_eq!(
        html.matches("<script").count(),
        2,
        "no inline script (the Content-Security-Policy refuses it): {html}"
    );

    let root = element(html, "<div id=\"room-root\"", "</div>");
    assert_eq!(attribute(root, "data-room-id"), id);
    assert_eq!(attribute(root, "data-user-id"), ada.user_id);
    assert_eq!(attribute(root, "data-room-name"), escaped_name);
    let claims = server
        .state
        .identity
        .verify_token(attribute(root, "data-token"), SystemTime::now())
        .expect("the embedded socket token is valid");
    assert_eq!(claims.user_id, ada.user_id);
    assert!(
        root.contains(
            "<noscript>The room needs JavaScript to show people and carry voice.</noscript>"
        ),
        "{root}"
    );

    let details = element(
        html,
        r#"<section id="room-details" hidden aria-label="About this room">"#,
        "</section>",
    );
    assert!(
        details.contains(&format!("<h2>{escaped_name}</h2>")),
        "{details}"
    );
    assert!(
        details.contains("<p class=\"description\">Bring snacks\nand ideas</p>"),
        "{details}"
    );
    assert!(details.contains("<p class=\"meta\">Created <time datetime=\""));
    assert!(
        details.contains(&format!(
            r#"<p class="owner-actions"><a class="button" href="/rooms/{id}/edit">Edit room</a></p>"#
        )),
        "{details}"
    );
    let delete = element(
        details,
        &format!(r#"<form method="post" action="/rooms/{id}/delete""#),
        "</form>",
    );
    assert!(
        attribute(delete, "data-confirm").contains("You can undo this for 7 days"),
        "{delete}"
    );
    assert!(
        delete.contains(r#"<button type="submit" class="danger">Delete room</button>"#),
        "{delete}"
    );
    assert!(
        server
            .state
            .identity
            .verify_csrf_token(&ada.user_id, attribute(delete, "value")),
        "the delete form carries the owner's CSRF token: {delete}"
    );

    // Everyone else gets the same shell and details, without the owner's actions.
    for (who, other) in [
        (
            "another visitor",
            Browser::new(&server)
                .await
                .get(&format!("/rooms/{id}"))
                .await,
        ),
        ("a first visit", server.get(&format!("/rooms/{id}")).await),
    ] {
        assert_html(&other, 200, who);
        let html = &other.body;
        let root = element(html, "<div id=\"room-root\"", "</div>");
        assert_eq!(attribute(root, "data-room-id"), id, "{who}");
        assert_ne!(attribute(root, "data-user-id"), ada.user_id, "{who}");
        let details = element(html, "<section id=\"room-details\" hidden", "</section>");
        assert!(
            details.contains(&format!("<h2>{escaped_name}</h2>")),
            "{who}"
        );
        for owners_only in ["Edit room", "Delete room", "/edit\"", "/delete\"", "_csrf"] {
            assert!(
                !html.contains(owners_only),
                "{who} sees {owners_only:?}: {html}"
            );
        }
    }
}

#[tokio::test]
async fn a_room_id_that_names_no_room_gets_the_room_not_found_page() {
    let server = TestServer::start().await;
    let never = uuid::Uuid::new_v4();
    for path in [
        format!("/rooms/{never}"),
        "/rooms/not-a-room-id".to_string(),
        "/rooms/%3Cscript%3E".to_string(),
    ] {
        let response = server.get(&path).await;
        assert_html(&response, 404, &path);
        let html = &response.body;
        assert!(
            html.contains("<h1>This room does not exist</h1>"),
            "{path}: {html}"
        );
        assert!(html.contains("The link may be mistyped"), "{path}: {html}");
        assert!(
            !html.contains("script&gt;"),
            "{path}: the id is not echoed: {html}"
        );
        assert_room_error_links(html);
        // An error page keeps the top bar: there is somewhere else to go.
        assert!(html.contains("<nav class=\"site-nav\""), "{path}: {html}");
    }
}

#[tokio::test]
async fn a_deleted_room_is_gone_with_undo_for_its_owner_and_undo_brings_it_back() {
    let server = TestServer::start().await;
    let ada = Browser::new(&server).await;
    let bo = Browser::new(&server).await;
    let id = ada.create_room("Workshop", "public").await;
    let room_page = format!("/rooms/{id}");
    let restore = format!("/rooms/{id}/restore");

    let deleted = ada
        .submit(&room_page, &format!("/rooms/{id}/delete"), &[])
        .await;
    assert_html(&deleted, 200, "the page after deleting");
    assert!(deleted.body.contains("<h1>This room was deleted</h1>"));
    assert!(deleted.body.contains(&format!("action=\"{restore}\"")));

    let own = ada.get(&room_page).await;
    assert_html(&own, 410, "the owner's view of the deleted room");
    assert_eq!(own.header("cache-control"), Some("no-store"));
    assert!(
        own.body.contains("<h1>This room was deleted</h1>"),
        "{}",
        own.body
    );
    assert!(
        own.body
            .contains("You deleted the room &#8220;Workshop&#8221;"),
        "{}",
        own.body
    );
    assert!(
        own.body
            .contains("You can bring it back, with its chat, until <time"),
        "{}",
        own.body
    );
    assert!(
        own.body
            .contains(r#"<button type="submit" class="primary">Undo</button>"#),
        "{}",
        own.body
    );
    assert_room_error_links(&own.body);

    for (who, other) in [
        ("another visitor", bo.get(&room_page).await),
        ("a first visit", server.get(&room_page).await),
    ] {
        assert_html(&other, 410, who);
        assert!(
            other.body.contains("<h1>This room was deleted</h1>"),
            "{who}"
        );
        assert!(
            !other.body.contains("Undo"),
            "{who} sees Undo: {}",
            other.body
        );
        assert!(!other.body.contains("/restore"), "{who}: {}", other.body);
        assert!(
            other
                .body
                .contains("Its owner deleted the room &#8220;Workshop&#8221;"),
            "{who}: {}",
            other.body
        );
        assert_room_error_links(&other.body);
    }
    // Nor may another visitor restore it with a form token of their own.
    let bos_token = csrf_in(&bo.get("/rooms/new").await.body, "/rooms/new");
    let refused = bo.post(&restore, &[("_csrf", &bos_token)]).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(ada.get(&room_page).await.status, 410);

    // The owner's Undo, from the 410 page, brings the room page back.
    let undone = ada
        .post(&restore, &[("_csrf", &csrf_in(&own.body, &restore))])
        .await;
    assert_eq!(undone.status, 303, "{}", undone.body);
    assert_eq!(undone.header("location"), Some(room_page.as_str()));
    let back = bo.get(&room_page).await;
    assert_html(&back, 200, "the restored room");
    assert_eq!(
        attribute(
            element(&back.body, "<div id=\"room-root\"", ">"),
            "data-room-id"
        ),
        id
    );
}

#[tokio::test]
async fn a_room_deleted_too_long_ago_to_restore_is_still_gone_but_without_undo() {
    let server = TestServer::start().await;
    let ada = Browser::new(&server).await;
    let id = ada.create_room("Old times", "public").await;
    ada.submit(&format!("/rooms/{id}"), &format!("/rooms/{id}/delete"), &[])
        .await;
    let store = &server.state().store;
    let eight_days_ago = roomscale_server::time::unix_millis(
        SystemTime::now() - Duration::from_secs(8 * 24 * 60 * 60),
    );
    sqlx::query("UPDATE rooms SET deleted_at = $1 WHERE id = $2")
        .bind(eight_days_ago)
        .bind(&id)
        .execute(store.pool())
        .await
        .unwrap();

    let own = ada.get(&format!("/rooms/{id}")).await;
    assert_html(&own, 410, "a room waiting to be purged");
    assert!(own.body.contains("<h1>This room was deleted</h1>"));
    assert!(!own.body.contains("Undo"), "too late to undo: {}", own.body);
    assert_room_error_links(&own.body);

    // Once the janitor has purged it, the room never existed.
    store.purge_deleted_rooms(eight_days_ago + 1).await.unwrap();
    let purged = server
        .send(Request::get(&format!("/rooms/{id}")).cookie(&ada.cookie))
        .await;
    assert_html(&purged, 404, "a purged room");
    assert!(purged.body.contains("This room does not exist"));
}
