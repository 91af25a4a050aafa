//! The room list shows life: each room's people now by kind of client and
//! its last activity, in the JSON API and on the /rooms page, following joins
//! and leaves over real sockets.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::TestServer;
use crate::common::ws::join_payload;

/// The listed room with `id`, from GET /api/rooms.
async fn listed(server: &TestServer, id: &str) -> Value {
    let list = server.get("/api/rooms").await.json();
    list.as_array()
        .expect("the room list is a JSON array")
        .iter()
        .find(|room| room["id"] == id)
        .unwrap_or_else(|| panic!("room {id} is not in the list: {list}"))
        .clone()
}

/// An `active_at` as Unix milliseconds.
fn unix_ms(active_at: &Value) -> i128 {
    let text = active_at
        .as_str()
        .unwrap_or_else(|| panic!("active_at is a string: {active_at}"));
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|error| panic!("active_at {text} is not RFC 3339: {error}"));
    at.unix_timestamp_nanos() / 1_000_000
}

/// Waits until the room's `people` are `want` (a leave reaches the room a
/// moment after the socket closes).
async fn people_become(server: &TestServer, id: &str, want: Value) -> Value {
    let mut room = listed(server, id).await;
    for _ in 0..100 {
        if room["people"] == want {
            return room;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        room = listed(server, id).await;
    }
    panic!("room {id} never had people {want}; it lists {room}");
}

#[tokio::test]
async fn the_room_list_counts_people_by_kind_and_follows_joins_and_leaves() {
    let server = TestServer::start().await;
    let quiet = server.create_room("Quiet").await;
    let busy = server.create_room("Busy").await;

    let quiet_room = listed(&server, &quiet).await;
    assert_eq!(
        quiet_room["people"],
        json!({"browser": 0, "desktop": 0, "headset": 0, "total": 0})
    );
    assert_eq!(quiet_room["active_at"], Value::Null);
    // The existing fields are still there.
    assert_eq!(quiet_room["name"], "Quiet");

    let topic = format!("room:{busy}");
    let mut desk = server.socket("Desk").await;
    desk.join_ok(&topic, "Desk").await;
    let mut web = server.socket("Webby").await;
    let mut payload = join_payload("Webby");
    payload["client_kind"] = json!("web");
    let (_, status, reply) = web.join(&topic, payload).await;
    assert_eq!(status, "ok", "the browser's join was refused: {reply}");
    let mut quest = server.socket("Quinn").await;
    let mut payload = join_payload("Quinn");
    payload["client_kind"] = json!("quest");
    let (_, status, reply) = quest.join(&topic, payload).await;
    assert_eq!(status, "ok", "the headset's join was refused: {reply}");

    let busy_room = people_become(
        &server,
        &busy,
        json!({"browser": 1, "desktop": 1, "headset": 1, "total": 3}),
    )
    .await;
    let active_at = busy_room["active_at"]
        .as_str()
        .unwrap_or_else(|| panic!("a room people joined has an active_at: {busy_room}"));
    assert!(
        active_at.ends_with('Z') && active_at.contains('T'),
        "active_at is RFC 3339: {active_at}"
    );

    // A chat line is activity too: the quiet room, with nobody left in it,
    // becomes lively later than the busy one.
    let mut chatter = server.socket("Chatter").await;
    let (chatter_ref, _) = chatter.join_ok(&format!("room:{quiet}"), "Chatter").await;
    people_become(
        &server,
        &quiet,
        json!({"browser": 0, "desktop": 1, "headset": 0, "total": 1}),
    )
    .await;
    let joined_at = listed(&server, &quiet).await["active_at"].clone();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (status, reply) = chatter
        .request(
            Some(&chatter_ref),
            &format!("room:{quiet}"),
            "chat",
            json!({"text": "anyone?"}),
        )
        .await;
    assert_eq!(status, "ok", "the chat line was refused: {reply}");
    let chatted_at = listed(&server, &quiet).await["active_at"].clone();
    assert!(
        unix_ms(&chatted_at) > unix_ms(&joined_at),
        "a chat line moves active_at on: joined {joined_at}, chatted {chatted_at}"
    );
    drop(chatter);
    people_become(
        &server,
        &quiet,
        json!({"browser": 0, "desktop": 0, "headset": 0, "total": 0}),
    )
    .await;

    // The page lists the busy room first (the quiet one is newer), with its
    // count in words and a join link.
    let html = server.get("/rooms").await.body;
    let busy_at = html.find(&format!("data-room-id=\"{busy}\"")).unwrap();
    let quiet_at = html.find(&format!("data-room-id=\"{quiet}\"")).unwrap();
    assert!(busy_at < quiet_at, "the busiest room comes first: {html}");
    assert!(
        html.contains("3 here: 1 in a browser, 1 in the desktop app, 1 in a headset"),
        "{html}"
    );
    assert!(html.contains("nobody here yet"), "{html}");
    assert!(
        html.contains(&format!("class=\"button join\" href=\"/rooms/{busy}\"")),
        "{html}"
    );

    drop(web);
    drop(quest);
    people_become(
        &server,
        &busy,
        json!({"browser": 0, "desktop": 1, "headset": 0, "total": 1}),
    )
    .await;
    drop(desk);
    people_become(
        &server,
        &busy,
        json!({"browser": 0, "desktop": 0, "headset": 0, "total": 0}),
    )
    .await;
}

#[tokio::test]
async fn a_room_that_crashes_counts_only_those_who_rejoin() {
    let server = TestServer::start().await;
    let room = server.create_room("Shaky").await;
    let topic = format!("room:{room}");
    let mut ada = server.socket("Ada").await;
    ada.join_ok(&topic, "Ada").await;
    people_become(
        &server,
        &room,
        json!({"browser": 0, "desktop": 1, "headset": 0, "total": 1}),
    )
    .await;

    let room_id = room.parse().unwrap();
    assert!(server.state.rooms.inject_panic(room_id).await);
    ada.expect_event("phx_error").await;
    // Ada's member went with the crashed actor; until she rejoins nobody is there.
    people_become(
        &server,
        &room,
        json!({"browser": 0, "desktop": 0, "headset": 0, "total": 0}),
    )
    .await;
    ada.join_ok(&topic, "Ada").await;
    people_become(
        &server,
        &room,
        json!({"browser": 0, "desktop": 1, "headset": 0, "total": 1}),
    )
    .await;
}
