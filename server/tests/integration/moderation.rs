//! Moderation from the room: mute, remove, lock and co-moderators, enforced by
//! the server and seen by everyone; a deleted room closes its live session.
//!
//! Rooms are made through the store with a known owner, so each test knows
//! which visitor runs the room.

use roomscale_protocol::events::{ErrorCode, ErrorReply};
use roomscale_protocol::limits::REMOVAL_BAN_SECONDS;
use roomscale_server::storage::NewRoom;
use serde_json::{Value, json};
use tokio_tungstenite::connect_async;
use uuid::Uuid;

use crate::common::TestServer;
use crate::common::ws::{TestSocket, join_payload};

/// A visitor: its token (so it can open more sockets as the same person) and
/// one socket joined to the room.
struct Person {
    token: String,
    socket: TestSocket,
    join_ref: String,
}

impl Person {
    fn user_id(&self) -> String {
        self.socket.user_id.clone()
    }

    /// Pushes a moderation act and returns the reply (status, response).
    async fn moderate(&mut self, topic: &str, act: Value) -> (String, Value) {
        let r = self
            .socket
            .push(Some(&self.join_ref), topic, "moderate", act)
            .await;
        self.socket.expect_reply(&r).await
    }

    async fn push(&mut self, topic: &str, event: &str, payload: Value) -> (String, Value) {
        let r = self
            .socket
            .push(Some(&self.join_ref), topic, event, payload)
            .await;
        self.socket.expect_reply(&r).await
    }
}

pub(crate) async fn socket_with_token(
    server: &TestServer,
    token: &str,
    user_id: &str,
) -> TestSocket {
    let url = format!(
        "ws://{}/socket/websocket?vsn=2.0.0&token={token}",
        server.addr
    );
    let (ws, _) = connect_async(url).await.expect("websocket connects");
    TestSocket::new(ws, user_id.to_string())
}

/// A fresh visitor, joined to `topic` under `name`.
async fn arrive(server: &TestServer, topic: &str, name: &str) -> Person {
    let (token, user_id) = server.session(name).await;
    let mut socket = socket_with_token(server, &token, &user_id).await;
    let (join_ref, _) = socket.join_ok(topic, name).await;
    Person {
        token,
        socket,
        join_ref,
    }
}

/// A room owned by a new visitor named `owner_name`; returns its id, its topic
/// and the owner's token and user id (not yet joined).
async fn owned_room(server: &TestServer, owner_name: &str) -> (Uuid, String, String, String) {
    let (token, owner_id) = server.session(owner_name).await;
    let room = server
        .state
        .store
        .create_room(
            &NewRoom {
                name: "Moderated".into(),
                ..Default::default()
            },
            Some(&owner_id),
        )
        .await
        .unwrap();
    (room.id, format!("room:{}", room.id), token, owner_id)
}

async fn owner_joins(server: &TestServer, topic: &str, token: &str, owner_id: &str) -> Person {
    let mut socket = socket_with_token(server, token, owner_id).await;
    let (join_ref, reply) = socket.join_ok(topic, "Olga").await;
    assert_eq!(reply["governance"]["owner_user_id"], owner_id, "{reply}");
    Person {
        token: token.to_string(),
        socket,
        join_ref,
    }
}

/// Waits for a `moderation` notice and returns it.
async fn notice(socket: &mut TestSocket) -> Value {
    socket.expect_event("moderation").await
}

/// Waits for a presence diff that shows `user_id` joining (after a change).
async fn changed_meta(socket: &mut TestSocket, user_id: &str) -> Value {
    loop {
        let diff = socket.expect_event("presence_diff").await;
        if let Some(meta) = diff["joins"][user_id]["metas"].get(0) {
            return meta.clone();
        }
    }
}

/// The metas of `user_id` that presence diffs show joining until the next
/// `moderation` notice (the room sends an act's presence changes first), and
/// the notice.
async fn metas_until_notice(socket: &mut TestSocket, user_id: &str) -> (Vec<Value>, Value) {
    let mut metas = Vec::new();
    loop {
        let frame = socket
            .expect_text(|f| f.event == "presence_diff" || f.event == "moderation")
            .await;
        if frame.event == "moderation" {
            return (metas, frame.payload);
        }
        if let Some(joined) = frame.payload["joins"][user_id]["metas"].as_array() {
            metas.extend(joined.iter().cloned());
        }
    }
}

async fn plain_room(server: &TestServer, name: &str) -> String {
    let room = server
        .state
        .store
        .create_room(
            &NewRoom {
                name: name.into(),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    format!("room:{}", room.id)
}

#[tokio::test]
async fn a_deleted_room_closes_its_live_session_and_refuses_joins() {
    let server = TestServer::start().await;
    let (room_id, topic, token, owner_id) = owned_room(&server, "Olga").await;
    let mut olga = owner_joins(&server, &topic, &token, &owner_id).await;
    let mut bo = arrive(&server, &topic, "Bo").await;
    let elsewhere = plain_room(&server, "Elsewhere").await;
    let mut cy = arrive(&server, &elsewhere, "Cy").await;

    assert!(server.state.store.delete_room(room_id).await.unwrap());
    let reason = ErrorReply::new(
        ErrorCode::RoomDeleted,
        "this room was deleted by its owner; pick another from the room list",
    );
    assert!(server.state.rooms.close(room_id, reason.clone()).await);

    for person in [&mut olga, &mut bo] {
        let close = person
            .socket
            .expect_text(|f| f.event == "phx_close" && f.topic == topic)
            .await;
        assert_eq!(close.join_ref.as_deref(), Some(person.join_ref.as_str()));
        assert_eq!(close.payload["code"], "room_deleted");
        assert_eq!(close.payload["reason"], reason.reason.as_str());
    }

    // Joining again is refused: the room is gone, not merely restarted.
    let (_, status, response) = bo.socket.join(&topic, join_payload("Bo")).await;
    assert_eq!(status, "error", "{response}");
    assert_eq!(response["code"], "room_not_found");

    // Restored, the room takes joins again; but the channel its deletion
    // closed reaches neither the room nor its voice.
    assert!(server.state.store.restore_room(room_id).await.unwrap());
    let (status, response) = olga
        .push(&topic, "rtc_offer", json!({"sdp": "v=0\r\n"}))
        .await;
    assert_eq!(status, "error", "{response}");
    assert!(
        response["reason"].as_str().unwrap().contains("rejoin"),
        "{response}"
    );
    let (status, response) = olga.push(&topic, "chat", json!({"text": "ghost"})).await;
    assert_eq!(status, "error", "{response}");
    let (_, status, response) = bo.socket.join(&topic, join_payload("Bo")).await;
    assert_eq!(status, "ok", "{response}");

    // The other room never noticed.
    let (status, _) = cy
        .push(&elsewhere, "chat", json!({"text": "still here"}))
        .await;
    assert_eq!(status, "ok");
}

#[tokio::test]
async fn only_the_owner_and_moderators_may_moderate_and_everyone_sees_each_act() {
    let server = TestServer::start().await;
    let (room_id, topic, token, owner_id) = owned_room(&server, "Olga").await;
    let mut olga = owner_joins(&server, &topic, &token, &owner_id).await;
    let mut bo = arrive(&server, &topic, "Bo").await;
    let mut mallory = arrive(&server, &topic, "Mallory").await;

    // A plain member may do none of it, and is told why.
    for act in [
        json!({"action": "mute", "user_id": bo.user_id(), "muted": true}),
        json!({"action": "remove", "user_id": bo.user_id()}),
        json!({"action": "lock", "locked": true}),
        json!({"action": "moderator", "user_id": mallory.user_id(), "moderator": true}),
    ] {
        let (status, response) = mallory.moderate(&topic, act.clone()).await;
        assert_eq!(status, "error", "{act}");
        assert_eq!(response["code"], "forbidden", "{act}");
        assert!(
            response["reason"].as_str().unwrap().contains("owner"),
            "{response}"
        );
    }

    // The owner names Bo a co-moderator: stored, shown in presence, told to all.
    let (status, _) = olga
        .moderate(
            &topic,
            json!({"action": "moderator", "user_id": bo.user_id(), "moderator": true}),
        )
        .await;
    assert_eq!(status, "ok");
    let bo_id = bo.user_id();
    let (metas, _) = metas_until_notice(&mut mallory.socket, &bo_id).await;
    assert_eq!(metas.len(), 1, "{metas:?}");
    assert_eq!(metas[0]["role"], "moderator", "{metas:?}");
    for person in [&mut olga, &mut bo] {
        let notice = notice(&mut person.socket).await;
        assert_eq!(notice["act"]["action"], "moderator");
        assert_eq!(notice["by_user_id"], owner_id.as_str());
        assert_eq!(notice["by_name"], "Olga");
        assert_eq!(notice["target_name"], "Bo");
        assert_eq!(notice["governance"]["moderators"], json!([&bo_id]));
    }
    assert_eq!(
        server.state.store.room_moderators(room_id).await.unwrap(),
        [bo.user_id()]
    );

    // A moderator moderates, but names nobody and cannot touch the owner.
    let (status, response) = bo
        .moderate(
            &topic,
            json!({"action": "moderator", "user_id": mallory.user_id(), "moderator": true}),
        )
        .await;
    assert_eq!(
        (status.as_str(), &response["code"]),
        ("error", &json!("forbidden"))
    );
    let (status, response) = bo
        .moderate(&topic, json!({"action": "remove", "user_id": &owner_id}))
        .await;
    assert_eq!(
        (status.as_str(), &response["code"]),
        ("error", &json!("forbidden"))
    );
    assert!(
        response["reason"]
            .as_str()
            .unwrap()
            .contains("owner cannot"),
        "{response}"
    );

    // A newcomer sees the owner's and the moderator's roles.
    let mut cy = arrive(&server, &topic, "Cy").await;
    let state = cy.socket.expect_event("presence_state").await;
    assert_eq!(state[&owner_id]["metas"][0]["role"], "owner");
    assert_eq!(state[&bo.user_id()]["metas"][0]["role"], "moderator");
    assert!(state[&mallory.user_id()]["metas"][0].get("role").is_none());

    // The owner may act on moderators; unnamed, Bo is a member again.
    let (status, _) = olga
        .moderate(
            &topic,
            json!({"action": "moderator", "user_id": bo.user_id(), "moderator": false}),
        )
        .await;
    assert_eq!(status, "ok");
    let (metas, notice) = metas_until_notice(&mut cy.socket, &bo.user_id()).await;
    assert_eq!(metas.len(), 1, "{metas:?}");
    assert!(metas[0].get("role").is_none(), "{metas:?}");
    assert_eq!(notice["governance"]["moderators"], json!([]));
    assert!(
        server
            .state
            .store
            .room_moderators(room_id)
            .await
            .unwrap()
            .is_empty()
    );

    // Through it all the room kept serving everyone.
    let (status, _) = mallory.push(&topic, "chat", json!({"text": "hello"})).await;
    assert_eq!(status, "ok");
}

#[tokio::test]
async fn a_moderator_mute_holds_until_a_moderator_lifts_it() {
    let server = TestServer::start().await;
    let (_, topic, token, owner_id) = owned_room(&server, "Olga").await;
    let mut olga = owner_joins(&server, &topic, &token, &owner_id).await;
    let mut bo = arrive(&server, &topic, "Bo").await;

    let (status, _) = olga
        .moderate(
            &topic,
            json!({"action": "mute", "user_id": bo.user_id(), "muted": true}),
        )
        .await;
    assert_eq!(status, "ok");
    // The sender's reply comes after the presence change, so Bo's own view
    // is the one that shows both.
    let bo_id = bo.user_id();
    let (metas, notice) = metas_until_notice(&mut bo.socket, &bo_id).await;
    assert_eq!(metas.len(), 1, "{metas:?}");
    assert_eq!(
        (&metas[0]["muted"], &metas[0]["moderator_muted"]),
        (&json!(true), &json!(true))
    );
    assert_eq!(
        notice["act"],
        json!({"action": "mute", "user_id": bo.user_id(), "muted": true})
    );

    // Bo cannot unmute himself, but stays in the room and may chat.
    let (status, response) = bo.push(&topic, "set_muted", json!({"muted": false})).await;
    assert_eq!(status, "error");
    assert_eq!(response["code"], "forbidden");
    assert!(
        response["reason"]
            .as_str()
            .unwrap()
            .contains("moderator muted you"),
        "{response}"
    );
    let (status, _) = bo
        .push(&topic, "chat", json!({"text": "I can still type"}))
        .await;
    assert_eq!(status, "ok");

    // A second tab of Bo joins muted as well.
    let mut tab = socket_with_token(&server, &bo.token, &bo.user_id()).await;
    let (_, _) = tab.join_ok(&topic, "Bo").await;
    let state = tab.expect_event("presence_state").await;
    for meta in state[&bo.user_id()]["metas"].as_array().unwrap() {
        assert_eq!(meta["moderator_muted"], true, "{meta}");
    }
    let joined = changed_meta(&mut bo.socket, &bo_id).await;
    assert_eq!(joined["moderator_muted"], true, "{joined}");

    // Lifted, Bo is still muted until he unmutes, which he now may.
    let (status, _) = olga
        .moderate(
            &topic,
            json!({"action": "mute", "user_id": bo.user_id(), "muted": false}),
        )
        .await;
    assert_eq!(status, "ok");
    let (metas, _) = metas_until_notice(&mut bo.socket, &bo_id).await;
    assert_eq!(metas.len(), 2, "both of Bo's clients: {metas:?}");
    for meta in &metas {
        assert!(meta.get("moderator_muted").is_none(), "{meta}");
        assert_eq!(meta["muted"], true, "{meta}");
    }
    let (status, _) = bo.push(&topic, "set_muted", json!({"muted": false})).await;
    assert_eq!(status, "ok");
}

#[tokio::test]
async fn a_removed_person_is_closed_out_and_cannot_rejoin_for_a_while() {
    let server = TestServer::start().await;
    let (room_id, topic, token, owner_id) = owned_room(&server, "Olga").await;
    let mut olga = owner_joins(&server, &topic, &token, &owner_id).await;
    let mut mallory = arrive(&server, &topic, "Mallory").await;
    // Mallory's second client (the headset beside the browser).
    let mut headset = socket_with_token(&server, &mallory.token, &mallory.user_id()).await;
    let (headset_ref, _) = headset.join_ok(&topic, "Mallory").await;
    let mut bo = arrive(&server, &topic, "Bo").await;

    let (status, _) = olga
        .moderate(
            &topic,
            json!({"action": "remove", "user_id": mallory.user_id()}),
        )
        .await;
    assert_eq!(status, "ok");
    for (socket, join_ref) in [
        (&mut mallory.socket, mallory.join_ref.as_str()),
        (&mut headset, headset_ref.as_str()),
    ] {
        let close = socket
            .expect_text(|f| f.event == "phx_close" && f.topic == topic)
            .await;
        assert_eq!(close.join_ref.as_deref(), Some(join_ref));
        assert_eq!(close.payload["code"], "removed");
        assert!(
            close.payload["reason"]
                .as_str()
                .unwrap()
                .contains("rejoin after"),
            "{}",
            close.payload
        );
    }
    // A client that pushes on regardless is told why, and nothing reaches the room.
    let (status, response) = mallory
        .push(&topic, "chat", json!({"text": "I am still here"}))
        .await;
    assert_eq!(status, "error");
    assert_eq!(response["code"], "removed", "{response}");

    // Both of Mallory's clients left everyone's presence, then all are told.
    let mut left = 0;
    while left < 2 {
        let diff = bo.socket.expect_event("presence_diff").await;
        left += diff["leaves"][&mallory.user_id()]["metas"]
            .as_array()
            .map_or(0, Vec::len);
    }
    let notice = notice(&mut bo.socket).await;
    assert_eq!(notice["act"]["action"], "remove");
    assert_eq!(notice["target_name"], "Mallory");
    let (status, _) = bo.push(&topic, "chat", json!({"text": "better now"})).await;
    assert_eq!(status, "ok");
    let event = olga.socket.expect_event("event").await;
    assert_eq!(
        event["body"]["text"], "better now",
        "Mallory's push was not stored"
    );

    // Rejoining is refused, with when it will be allowed, also after the
    // room's actor was replaced (the ban is kept outside it).
    let (_, status, response) = mallory.socket.join(&topic, join_payload("Mallory")).await;
    assert_eq!(status, "error");
    assert_eq!(response["code"], "removed");
    let minutes = REMOVAL_BAN_SECONDS / 60;
    assert!(
        response["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("in {minutes} minutes")),
        "{response}"
    );
    assert!(server.state.rooms.inject_panic(room_id).await);
    olga.socket.expect_text(|f| f.event == "phx_error").await;
    olga.join_ref = olga.socket.join_ok(&topic, "Olga").await.0;
    let mut fresh = socket_with_token(&server, &mallory.token, &mallory.user_id()).await;
    let (_, status, response) = fresh.join(&topic, join_payload("Mallory")).await;
    assert_eq!(
        (status.as_str(), &response["code"]),
        ("error", &json!("removed"))
    );

    // Moderators are removed only by the owner; the owner never.
    let (status, _) = olga
        .moderate(
            &topic,
            json!({"action": "moderator", "user_id": bo.user_id(), "moderator": true}),
        )
        .await;
    assert_eq!(status, "ok");
    bo.join_ref = bo.socket.join_ok(&topic, "Bo").await.0;
    let mut cy = arrive(&server, &topic, "Cy").await;
    let mut dee = arrive(&server, &topic, "Dee").await;
    let (status, _) = olga
        .moderate(
            &topic,
            json!({"action": "moderator", "user_id": cy.user_id(), "moderator": true}),
        )
        .await;
    assert_eq!(status, "ok");
    let (status, response) = cy
        .moderate(&topic, json!({"action": "remove", "user_id": bo.user_id()}))
        .await;
    assert_eq!(
        (status.as_str(), &response["code"]),
        ("error", &json!("forbidden"))
    );
    let (status, _) = cy
        .moderate(
            &topic,
            json!({"action": "remove", "user_id": dee.user_id()}),
        )
        .await;
    assert_eq!(status, "ok");
    let close = dee.socket.expect_text(|f| f.event == "phx_close").await;
    assert_eq!(close.payload["code"], "removed");
}

#[tokio::test]
async fn a_locked_room_keeps_its_members_and_refuses_newcomers() {
    let server = TestServer::start().await;
    let (room_id, topic, token, owner_id) = owned_room(&server, "Olga").await;
    let mut olga = owner_joins(&server, &topic, &token, &owner_id).await;
    let mut bo = arrive(&server, &topic, "Bo").await;

    let (status, _) = olga
        .moderate(&topic, json!({"action": "lock", "locked": true}))
        .await;
    assert_eq!(status, "ok");
    let notice = notice(&mut bo.socket).await;
    assert_eq!(notice["governance"]["locked"], true);
    let stored = server.state.store.get_room(room_id).await.unwrap().unwrap();
    assert!(stored.locked, "the lock is stored");

    let (newcomer_token, newcomer_id) = server.session("Cy").await;
    let mut cy = socket_with_token(&server, &newcomer_token, &newcomer_id).await;
    let (_, status, response) = cy.join(&topic, join_payload("Cy")).await;
    assert_eq!(status, "error");
    assert_eq!(response["code"], "room_locked");
    assert!(
        response["reason"].as_str().unwrap().contains("locked"),
        "{response}"
    );

    // Those already in stay, and may open another client; the owner too.
    let mut bo_tab = socket_with_token(&server, &bo.token, &bo.user_id()).await;
    let (_, reply) = bo_tab.join_ok(&topic, "Bo").await;
    assert_eq!(reply["governance"]["locked"], true);
    let mut olga_tab = socket_with_token(&server, &token, &owner_id).await;
    olga_tab.join_ok(&topic, "Olga").await;
    let (status, _) = bo
        .push(&topic, "chat", json!({"text": "still talking"}))
        .await;
    assert_eq!(status, "ok");

    let (status, _) = olga
        .moderate(&topic, json!({"action": "lock", "locked": false}))
        .await;
    assert_eq!(status, "ok");
    let (_, status, response) = cy.join(&topic, join_payload("Cy")).await;
    assert_eq!(status, "ok", "{response}");
    assert_eq!(response["governance"]["locked"], false);
}
