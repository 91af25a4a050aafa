//! Moderation from the room: mute, remove, lock and co-moderators, enforced by
//! the server and seen by everyone; a deleted room closes its live session.
//!
//! Rooms are made through the store with a known owner, so each test knows
//! which visitor runs the room.

use roomscale_protocol::events::{ErrorCode, ErrorReply};
use roomscale_protocol::limits::REMOVAL_BAN_SECONDS;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::ws::{TestSocket, assert_ok, assert_refused, join_payload};
use crate::common::{TestServer, stored_room};

/// A visitor: its token (so it can open more sockets as the same person) and
/// one socket joined to the room.
pub(crate) struct Person {
    pub(crate) token: String,
    pub(crate) socket: TestSocket,
    pub(crate) join_ref: String,
}

impl Person {
    pub(crate) fn user_id(&self) -> String {
        self.socket.user_id.clone()
    }

    /// Pushes a moderation act and returns the reply (status, response).
    async fn moderate(&mut self, topic: &str, act: Value) -> (String, Value) {
        self.push(topic, "moderate", act).await
    }

    /// Pushes a moderation act the room must carry out.
    async fn moderate_ok(&mut self, topic: &str, act: Value) {
        let reply = self.moderate(topic, act.clone()).await;
        assert_eq!(reply.0, "ok", "{act} was refused: {}", reply.1);
    }

    /// Pushes a moderation act the room must refuse as `forbidden`, with a
    /// reason that mentions `reason_part`.
    async fn moderate_forbidden(&mut self, topic: &str, act: Value, reason_part: &str) {
        assert_refused(self.moderate(topic, act).await, "forbidden", reason_part);
    }

    async fn push(&mut self, topic: &str, event: &str, payload: Value) -> (String, Value) {
        self.socket
            .request(Some(&self.join_ref), topic, event, payload)
            .await
    }

    /// Chats `text`, which the room must accept.
    async fn chat_ok(&mut self, topic: &str, text: &str) {
        assert_ok(self.push(topic, "chat", json!({"text": text})).await);
    }
}

/// Waits for the server to close `join_ref`'s channel of `topic` with `code`;
/// returns the close payload.
async fn expect_channel_closed(
    socket: &mut TestSocket,
    topic: &str,
    join_ref: &str,
    code: &str,
) -> Value {
    let close = socket
        .expect_text(|f| f.event == "phx_close" && f.topic == topic)
        .await;
    assert_eq!(close.join_ref.as_deref(), Some(join_ref));
    assert_eq!(close.payload["code"], code, "{}", close.payload);
    close.payload
}

/// A fresh visitor, joined to `topic` under `name`.
async fn arrive(server: &TestServer, topic: &str, name: &str) -> Person {
    let (token, user_id) = server.session(name).await;
    let mut socket = server.socket_with_token(&token, &user_id).await;
    let (join_ref, _) = socket.join_ok(topic, name).await;
    Person {
        token,
        socket,
        join_ref,
    }
}

/// A fresh server with a room that a new visitor, Olga, owns and has joined:
/// (server, room id, topic, Olga).
pub(crate) async fn olgas_room() -> (TestServer, Uuid, String, Person) {
    let server = TestServer::start().await;
    let (token, owner_id) = server.session("Olga").await;
    let room = stored_room(&server.state.store, "Moderated", Some(&owner_id)).await;
    let topic = format!("room:{}", room.id);
    let mut socket = server.socket_with_token(&token, &owner_id).await;
    let (join_ref, reply) = socket.join_ok(&topic, "Olga").await;
    assert_eq!(reply["governance"]["owner_user_id"], owner_id, "{reply}");
    let olga = Person {
        token,
        socket,
        join_ref,
    };
    (server, room.id, topic, olga)
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
    let room = stored_room(&server.state.store, name, None).await;
    format!("room:{}", room.id)
}

#[tokio::test]
async fn a_deleted_room_closes_its_live_session_and_refuses_joins() {
    let (server, room_id, topic, mut olga) = olgas_room().await;
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
        let close =
            expect_channel_closed(&mut person.socket, &topic, &person.join_ref, "room_deleted")
                .await;
        assert_eq!(close["reason"], reason.reason.as_str());
    }

    // Joining again is refused: the room is gone, not merely restarted.
    bo.socket
        .join_refused(&topic, "Bo", "room_not_found", "")
        .await;

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
    cy.chat_ok(&elsewhere, "still here").await;
}

#[tokio::test]
async fn only_the_owner_and_moderators_may_moderate_and_everyone_sees_each_act() {
    let (server, room_id, topic, mut olga) = olgas_room().await;
    let mut bo = arrive(&server, &topic, "Bo").await;
    let mut mallory = arrive(&server, &topic, "Mallory").await;
    let owner_id = olga.user_id();

    // A plain member may do none of it, and is told why.
    for act in [
        json!({"action": "mute", "user_id": bo.user_id(), "muted": true}),
        json!({"action": "remove", "user_id": bo.user_id()}),
        json!({"action": "lock", "locked": true}),
        json!({"action": "moderator", "user_id": mallory.user_id(), "moderator": true}),
    ] {
        mallory.moderate_forbidden(&topic, act, "owner").await;
    }

    // The owner names Bo a co-moderator: stored, shown in presence, told to all.
    olga.moderate_ok(
        &topic,
        json!({"action": "moderator", "user_id": bo.user_id(), "moderator": true}),
    )
    .await;
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
    let naming = json!({"action": "moderator", "user_id": mallory.user_id(), "moderator": true});
    bo.moderate_forbidden(&topic, naming, "").await;
    let removing_the_owner = json!({"action": "remove", "user_id": &owner_id});
    bo.moderate_forbidden(&topic, removing_the_owner, "owner cannot")
        .await;

    // A newcomer sees the owner's and the moderator's roles.
    let mut cy = arrive(&server, &topic, "Cy").await;
    let state = cy.socket.expect_event("presence_state").await;
    assert_eq!(state[&owner_id]["metas"][0]["role"], "owner");
    assert_eq!(state[&bo.user_id()]["metas"][0]["role"], "moderator");
    assert!(state[&mallory.user_id()]["metas"][0].get("role").is_none());

    // The owner may act on moderators; unnamed, Bo is a member again.
    olga.moderate_ok(
        &topic,
        json!({"action": "moderator", "user_id": bo.user_id(), "moderator": false}),
    )
    .await;
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
    mallory.chat_ok(&topic, "hello").await;
}

#[tokio::test]
async fn a_moderator_mute_holds_until_a_moderator_lifts_it() {
    let (server, _, topic, mut olga) = olgas_room().await;
    let mut bo = arrive(&server, &topic, "Bo").await;

    let mute = json!({"action": "mute", "user_id": bo.user_id(), "muted": true});
    olga.moderate_ok(&topic, mute.clone()).await;
    // The sender's reply comes after the presence change, so Bo's own view
    // is the one that shows both.
    let bo_id = bo.user_id();
    let (metas, notice) = metas_until_notice(&mut bo.socket, &bo_id).await;
    assert_eq!(metas.len(), 1, "{metas:?}");
    assert_eq!(
        (&metas[0]["muted"], &metas[0]["moderator_muted"]),
        (&json!(true), &json!(true))
    );
    assert_eq!(notice["act"], mute);

    // Bo cannot unmute himself, but stays in the room and may chat.
    let unmuting = bo.push(&topic, "set_muted", json!({"muted": false})).await;
    assert_refused(unmuting, "forbidden", "moderator muted you");
    bo.chat_ok(&topic, "I can still type").await;

    // A second tab of Bo joins muted as well.
    let mut tab = server.socket_with_token(&bo.token, &bo.user_id()).await;
    let (_, _) = tab.join_ok(&topic, "Bo").await;
    let state = tab.expect_event("presence_state").await;
    for meta in state[&bo.user_id()]["metas"].as_array().unwrap() {
        assert_eq!(meta["moderator_muted"], true, "{meta}");
    }
    let joined = changed_meta(&mut bo.socket, &bo_id).await;
    assert_eq!(joined["moderator_muted"], true, "{joined}");

    // Lifted, Bo is still muted until he unmutes, which he now may.
    let lift = json!({"action": "mute", "user_id": bo.user_id(), "muted": false});
    olga.moderate_ok(&topic, lift).await;
    let (metas, _) = metas_until_notice(&mut bo.socket, &bo_id).await;
    assert_eq!(metas.len(), 2, "both of Bo's clients: {metas:?}");
    for meta in &metas {
        assert!(meta.get("moderator_muted").is_none(), "{meta}");
        assert_eq!(meta["muted"], true, "{meta}");
    }
    assert_ok(bo.push(&topic, "set_muted", json!({"muted": false})).await);
}

#[tokio::test]
async fn a_removed_person_is_closed_out_and_cannot_rejoin_for_a_while() {
    let (server, room_id, topic, mut olga) = olgas_room().await;
    let mut mallory = arrive(&server, &topic, "Mallory").await;
    // Mallory's second client (the headset beside the browser).
    let mut headset = server
        .socket_with_token(&mallory.token, &mallory.user_id())
        .await;
    let (headset_ref, _) = headset.join_ok(&topic, "Mallory").await;
    let mut bo = arrive(&server, &topic, "Bo").await;

    let removal = json!({"action": "remove", "user_id": mallory.user_id()});
    olga.moderate_ok(&topic, removal).await;
    for (socket, join_ref) in [
        (&mut mallory.socket, mallory.join_ref.as_str()),
        (&mut headset, headset_ref.as_str()),
    ] {
        let close = expect_channel_closed(socket, &topic, join_ref, "removed").await;
        assert!(
            close["reason"].as_str().unwrap().contains("rejoin after"),
            "{close}"
        );
    }
    // A client that pushes on regardless is told why, and nothing reaches the room.
    let pushed = mallory
        .push(&topic, "chat", json!({"text": "I am still here"}))
        .await;
    assert_refused(pushed, "removed", "");

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
    bo.chat_ok(&topic, "better now").await;
    let event = olga.socket.expect_event("event").await;
    assert_eq!(
        event["body"]["text"], "better now",
        "Mallory's push was not stored"
    );

    // Rejoining is refused, with when it will be allowed, also after the
    // room's actor was replaced (the ban is kept outside it).
    let minutes = REMOVAL_BAN_SECONDS / 60;
    let when = format!("in {minutes} minutes");
    mallory
        .socket
        .join_refused(&topic, "Mallory", "removed", &when)
        .await;
    assert!(server.state.rooms.inject_panic(room_id).await);
    olga.socket.expect_text(|f| f.event == "phx_error").await;
    olga.join_ref = olga.socket.join_ok(&topic, "Olga").await.0;
    let mut fresh = server
        .socket_with_token(&mallory.token, &mallory.user_id())
        .await;
    fresh.join_refused(&topic, "Mallory", "removed", "").await;

    // Moderators are removed only by the owner; the owner never.
    let naming_bo = json!({"action": "moderator", "user_id": bo.user_id(), "moderator": true});
    olga.moderate_ok(&topic, naming_bo).await;
    bo.join_ref = bo.socket.join_ok(&topic, "Bo").await.0;
    let mut cy = arrive(&server, &topic, "Cy").await;
    let mut dee = arrive(&server, &topic, "Dee").await;
    let naming_cy = json!({"action": "moderator", "user_id": cy.user_id(), "moderator": true});
    olga.moderate_ok(&topic, naming_cy).await;
    let removing_bo = json!({"action": "remove", "user_id": bo.user_id()});
    cy.moderate_forbidden(&topic, removing_bo, "").await;
    let removing_dee = json!({"action": "remove", "user_id": dee.user_id()});
    cy.moderate_ok(&topic, removing_dee).await;
    let close = dee.socket.expect_text(|f| f.event == "phx_close").await;
    assert_eq!(close.payload["code"], "removed");
}

#[tokio::test]
async fn a_locked_room_keeps_its_members_and_refuses_newcomers() {
    let (server, room_id, topic, mut olga) = olgas_room().await;
    let mut bo = arrive(&server, &topic, "Bo").await;

    olga.moderate_ok(&topic, json!({"action": "lock", "locked": true}))
        .await;
    let notice = notice(&mut bo.socket).await;
    assert_eq!(notice["governance"]["locked"], true);
    let stored = server.state.store.get_room(room_id).await.unwrap().unwrap();
    assert!(stored.locked, "the lock is stored");

    let (newcomer_token, newcomer_id) = server.session("Cy").await;
    let mut cy = server
        .socket_with_token(&newcomer_token, &newcomer_id)
        .await;
    cy.join_refused(&topic, "Cy", "room_locked", "locked").await;

    // Those already in stay, and may open another client; the owner too.
    let mut bo_tab = server.socket_with_token(&bo.token, &bo.user_id()).await;
    let (_, reply) = bo_tab.join_ok(&topic, "Bo").await;
    assert_eq!(reply["governance"]["locked"], true);
    let mut olga_tab = server.socket_with_token(&olga.token, &olga.user_id()).await;
    olga_tab.join_ok(&topic, "Olga").await;
    bo.chat_ok(&topic, "still talking").await;

    olga.moderate_ok(&topic, json!({"action": "lock", "locked": false}))
        .await;
    let (_, status, response) = cy.join(&topic, join_payload("Cy")).await;
    assert_eq!(status, "ok", "{response}");
    assert_eq!(response["governance"]["locked"], false);
}
