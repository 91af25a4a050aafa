//! The room channel over a real WebSocket: presence, chat, poses, replays, limits,
//! bad input and a room that panics.

use roomscale_protocol::pose::{self, AvatarPose, Joint, PoseFlags};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::common::TestServer;
use crate::common::ws::{Received, join_payload};

fn topic(room_id: &str) -> String {
    format!("room:{room_id}")
}

#[tokio::test]
async fn members_see_each_other_chat_and_leave() {
    let server = TestServer::start().await;
    let room = topic(&server.create_room("Lobby").await);
    let mut ada = server.socket("Ada").await;
    let (ada_ref, reply) = ada.join_ok(&room, "Ada").await;
    assert_eq!(reply["user_id"], ada.user_id.as_str());
    assert_eq!(reply["room"]["name"], "Lobby");
    let state = ada.expect_event("presence_state").await;
    assert_eq!(state[&ada.user_id]["metas"][0]["name"], "Ada");

    let mut bo = server.socket("Bo").await;
    bo.join_ok(&room, "Bo").await;
    let state = bo.expect_event("presence_state").await;
    assert!(
        state.get(&ada.user_id).is_some() && state.get(&bo.user_id).is_some(),
        "{state}"
    );
    let diff = ada.expect_event("presence_diff").await;
    assert_eq!(
        diff["joins"][&bo.user_id]["metas"][0]["client_kind"],
        "desktop"
    );

    let chat_ref = ada
        .push(Some(&ada_ref), &room, "chat", json!({"text": "<b>hi</b>"}))
        .await;
    let (status, stored) = ada.expect_reply(&chat_ref).await;
    assert_eq!(status, "ok");
    let event = bo.expect_event("event").await;
    assert_eq!(event["id"], stored["id"]);
    assert_eq!(event["body"], json!({"type": "chat", "text": "<b>hi</b>"}));
    assert_eq!(event["name"], "Ada");

    drop(bo);
    let diff = ada.expect_event("presence_diff").await;
    assert!(diff["leaves"].get(&ada.user_id).is_none());
    assert_eq!(diff["leaves"].as_object().unwrap().len(), 1, "{diff}");
}

pub(crate) fn sample_pose(x: f32) -> AvatarPose {
    let joint = |p: [f32; 3]| Joint {
        position: p,
        orientation: [0.0, 0.0, 0.0, 1.0],
    };
    AvatarPose {
        head: joint([x, 1.6, -2.0]),
        left: joint([x - 0.3, 1.2, -2.2]),
        right: joint([x + 0.3, 1.2, -2.2]),
        flags: PoseFlags(PoseFlags::LEFT_TRACKED | PoseFlags::RIGHT_TRACKED),
    }
}

#[tokio::test]
async fn poses_are_relayed_to_others_in_batches() {
    let server = TestServer::start().await;
    let room = topic(&server.create_room("Poses").await);
    let mut ada = server.socket("Ada").await;
    let (ada_ref, ada_reply) = ada.join_ok(&room, "Ada").await;
    let mut bo = server.socket("Bo").await;
    bo.join_ok(&room, "Bo").await;

    ada.push_binary(
        &ada_ref,
        &room,
        "pose",
        &pose::encode_pose(0, &sample_pose(1.5)),
    )
    .await;
    let payload = bo.expect_poses().await;
    let batch = pose::decode_batch(&payload).unwrap();
    let poses: Vec<_> = batch.iter().collect();
    assert_eq!(poses.len(), 1);
    let (slot, received) = poses[0];
    assert_eq!(
        u64::from(slot),
        ada_reply["slot"].as_u64().unwrap(),
        "stamped with the sender's slot"
    );
    assert!((received.head.position[0] - 1.5).abs() <= pose::POSITION_ERROR_BOUND_M);

    // A wrong-sized pose is refused with a reason (pushed with a ref).
    let mut out = Vec::new();
    roomscale_protocol::frame::encode_client_push(
        &mut out,
        &ada_ref,
        "77",
        &room,
        "pose",
        &[1, 2, 3],
    )
    .unwrap();
    ada.send_raw(Message::binary(out)).await;
    let (status, response) = ada.expect_reply("77").await;
    assert_eq!(status, "error");
    assert_eq!(response["code"], "invalid_payload");
}

#[tokio::test]
async fn a_rejoin_with_last_seen_id_replays_exactly_the_newer_events() {
    let server = TestServer::start().await;
    let room = topic(&server.create_room("History").await);
    let mut ada = server.socket("Ada").await;
    let (ada_ref, _) = ada.join_ok(&room, "Ada").await;
    let mut ids = Vec::new();
    for text in ["one", "two", "three"] {
        let r = ada
            .push(Some(&ada_ref), &room, "chat", json!({"text": text}))
            .await;
        let (status, stored) = ada.expect_reply(&r).await;
        assert_eq!(status, "ok");
        ids.push(stored["id"].as_u64().unwrap());
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids grow: {ids:?}");

    let mut bo = server.socket("Bo").await;
    let (_, _, first) = bo.join(&room, join_payload("Bo")).await;
    let texts: Vec<_> = first["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["body"]["text"].clone())
        .collect();
    assert_eq!(texts, [json!("one"), json!("two"), json!("three")]);

    let mut again = join_payload("Bo");
    again["last_seen_id"] = json!(ids[0]);
    let mut carl = server.socket("Carl").await;
    let (_, status, reply) = carl.join(&room, again).await;
    assert_eq!(status, "ok");
    let replayed: Vec<_> = reply["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    assert_eq!(replayed, ids[1..]);
}

#[tokio::test]
async fn bad_input_gets_a_reason_and_the_room_keeps_serving() {
    let server = TestServer::start().await;
    let (room, ada, bo) = server.room_with_ada_and_bo("Robust").await;
    let (mut ada, ada_ref, mut bo) = (ada.socket, ada.join_ref, bo.socket);

    // Error replies: the socket stays open.
    let cases = [
        (
            "room:not-a-uuid",
            "chat",
            json!({"text": "x"}),
            "unknown_topic",
        ),
        ("lobby", "phx_join", json!({}), "unknown_topic"),
        (room.as_str(), "dance", json!({}), "unknown_event"),
        (
            room.as_str(),
            "chat",
            json!({"text": ""}),
            "invalid_payload",
        ),
        (
            room.as_str(),
            "chat",
            json!({"txt": "hi"}),
            "invalid_payload",
        ),
        (
            room.as_str(),
            "rtc_offer",
            json!({"sdp": "v=0"}),
            "invalid_payload",
        ),
        ("phoenix", "dance", json!({}), "unknown_event"),
    ];
    for (topic, event, payload, code) in cases {
        let r = ada
            .push(Some(&ada_ref), topic, event, payload.clone())
            .await;
        let (status, response) = ada.expect_reply(&r).await;
        assert_eq!(
            (status.as_str(), response["code"].as_str()),
            ("error", Some(code)),
            "{topic} {event} {payload}: {response}"
        );
        assert!(!response["reason"].as_str().unwrap().is_empty());
    }
    let other_room = topic(&server.create_room("Elsewhere").await);
    let r = ada
        .push(None, &other_room, "chat", json!({"text": "not joined"}))
        .await;
    let (_, response) = ada.expect_reply(&r).await;
    assert_eq!(response["code"], "not_joined");

    // A newer protocol version is refused with the versions the server speaks.
    let mut newer = join_payload("Ada");
    newer["protocol_version"] = json!(99);
    let (_, status, response) = ada.join(&other_room, newer).await;
    assert_eq!(status, "error");
    assert!(
        response["reason"]
            .as_str()
            .unwrap()
            .contains("this server speaks 1"),
        "{response}"
    );

    // Broken frames close the offending socket with a reason.
    let broken: [(Message, u16, &str); 5] = [
        (Message::text("[1,2"), 1003, "malformed frame"),
        (
            Message::text(r#"["1","2","room:x","chat"]"#),
            1003,
            "5 elements",
        ),
        (
            Message::binary(vec![9, 9, 9]),
            1003,
            "malformed binary frame",
        ),
        (Message::binary(vec![0, 200, 1, 1, 1]), 1003, "truncated"),
        (
            Message::text(format!(
                r#"[null,"1","{room}","chat",{{"text":"{}"}}]"#,
                "x".repeat(70_000)
            )),
            1009,
            "exceeds the limit",
        ),
    ];
    for (message, code, fragment) in broken {
        let mut mallory = server.socket("Mallory").await;
        mallory.send_raw(message).await;
        let close = mallory.expect_close().await;
        assert_eq!(u16::from(close.code), code, "{close:?}");
        assert!(
            close.reason.contains(fragment),
            "{close:?} lacks {fragment}"
        );
    }

    // The room still relays chat between its members.
    let r = ada
        .push(Some(&ada_ref), &room, "chat", json!({"text": "still here"}))
        .await;
    assert_eq!(ada.expect_reply(&r).await.0, "ok");
    let event = bo.expect_event("event").await;
    assert_eq!(event["body"]["text"], "still here");
    let errors = server.state.metrics.errors("malformed_frame");
    assert!(errors >= 4, "malformed frames counted: {errors}");
}

#[tokio::test]
async fn a_flood_is_rate_limited_then_disconnected() {
    let server = TestServer::start().await;
    let room = topic(&server.create_room("Flood").await);
    let mut ada = server.socket("Ada").await;
    let (ada_ref, _) = ada.join_ok(&room, "Ada").await;
    let mut flooder = server.socket("Flooder").await;
    let (flood_ref, _) = flooder.join_ok(&room, "Flooder").await;
    for i in 0..400 {
        let text = frame_text(&flood_ref, i, &room);
        flooder.send_raw(Message::text(text)).await;
    }
    let mut limited = 0;
    let close = loop {
        match flooder.recv().await {
            Received::Text(f) if f.payload["response"]["code"] == "rate_limited" => limited += 1,
            Received::Close(close) => break close.expect("a reason"),
            _ => {}
        }
    };
    assert!(limited > 0, "some pushes got rate_limited replies first");
    assert_eq!(u16::from(close.code), 1008);
    assert!(close.reason.contains("flooding"), "{close:?}");
    // The flood's accepted part reached Ada; the room still serves her.
    let r = ada
        .push(
            Some(&ada_ref),
            &room,
            "chat",
            json!({"text": "after the flood"}),
        )
        .await;
    let (status, _) = ada.expect_reply(&r).await;
    assert_eq!(status, "ok");
}

fn frame_text(join_ref: &str, i: usize, topic: &str) -> String {
    roomscale_protocol::frame::encode_text_parts(
        Some(join_ref),
        Some(&format!("f{i}")),
        topic,
        "chat",
        &json!({"text": format!("spam {i}")}),
    )
}

#[tokio::test]
async fn forged_expired_and_missing_tokens_are_refused_with_a_reason() {
    let server = TestServer::start().await;
    let (token, user_id) = server.session("Ada").await;
    let mut forged = token.clone().into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let (expired, _) =
        server
            .state
            .identity
            .issue_token(&user_id, None, std::time::SystemTime::UNIX_EPOCH);
    let other_key = roomscale_server::Identity::generate();
    let (wrong_key, _) = other_key.issue_token(&user_id, None, std::time::SystemTime::now());
    for (token, status, fragment) in [
        (forged.as_str(), 403, "signature"),
        (expired.as_str(), 403, "expired"),
        (wrong_key.as_str(), 403, "signature"),
        ("", 403, "no socket token"),
        ("garbage", 403, "malformed"),
    ] {
        let url = format!(
            "ws://{}/socket/websocket?vsn=2.0.0&token={token}",
            server.addr
        );
        match tokio_tungstenite::connect_async(url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), status);
                let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                    .to_string();
                assert!(body.contains(fragment), "{body:?} lacks {fragment}");
            }
            other => panic!("token {token:?} was not refused: {other:?}"),
        }
    }
    let url = format!(
        "ws://{}/socket/websocket?vsn=1.0.0&token={token}",
        server.addr
    );
    assert!(
        tokio_tungstenite::connect_async(url).await.is_err(),
        "old serializer refused"
    );
}

#[tokio::test]
async fn heartbeats_are_answered() {
    let server = TestServer::start().await;
    let mut ada = server.socket("Ada").await;
    let r = ada.push(None, "phoenix", "heartbeat", json!({})).await;
    assert_eq!(ada.expect_reply(&r).await, ("ok".to_string(), json!({})));
}

#[tokio::test]
async fn a_full_room_refuses_joins_with_a_reason() {
    let server = TestServer::start_with(|config| config.room_capacity = 2).await;
    let room = topic(&server.create_room("Small").await);
    let mut sockets = Vec::new();
    for name in ["A", "B"] {
        let mut s = server.socket(name).await;
        s.join_ok(&room, name).await;
        sockets.push(s);
    }
    let mut late = server.socket("C").await;
    let (_, status, response) = late.join(&room, join_payload("C")).await;
    assert_eq!(status, "error");
    assert_eq!(response["code"], "room_full");
    assert!(response["reason"].as_str().unwrap().contains("room full"));
    let (_, status, response) = late
        .join(
            "room:00000000-0000-4000-8000-000000000000",
            join_payload("C"),
        )
        .await;
    assert_eq!(
        (status.as_str(), response["code"].as_str()),
        ("error", Some("room_not_found"))
    );
}

#[tokio::test]
async fn a_room_that_panics_restarts_and_other_rooms_never_notice() {
    let server = TestServer::start().await;
    let doomed_id = server.create_room("Doomed").await;
    let doomed = topic(&doomed_id);
    let calm = topic(&server.create_room("Calm").await);
    let mut ada = server.socket("Ada").await;
    let (ada_ref, _) = ada.join_ok(&doomed, "Ada").await;
    let r = ada
        .push(Some(&ada_ref), &doomed, "chat", json!({"text": "before"}))
        .await;
    assert_eq!(ada.expect_reply(&r).await.0, "ok");
    let mut bo = server.socket("Bo").await;
    let (bo_ref, _) = bo.join_ok(&calm, "Bo").await;
    let mut cy = server.socket("Cy").await;
    cy.join_ok(&calm, "Cy").await;

    let doomed_uuid = doomed_id.parse().unwrap();
    assert!(server.state.rooms.inject_panic(doomed_uuid).await);
    let error = ada.expect_text(|f| f.event == "phx_error").await;
    assert_eq!(error.join_ref.as_deref(), Some(ada_ref.as_str()));

    // Rejoining (as phoenix.js does) works, with the stored history intact.
    let (_, reply) = ada.join_ok(&doomed, "Ada").await;
    assert_eq!(reply["events"][0]["body"]["text"], "before");
    let r = ada
        .push(None, &doomed, "chat", json!({"text": "after"}))
        .await;
    assert_eq!(ada.expect_reply(&r).await.0, "ok");

    // The calm room kept serving throughout.
    let r = bo
        .push(Some(&bo_ref), &calm, "chat", json!({"text": "calm"}))
        .await;
    assert_eq!(bo.expect_reply(&r).await.0, "ok");
    assert_eq!(cy.expect_event("event").await["body"]["text"], "calm");
    assert_eq!(server.state.metrics.errors("room_panic"), 1);
}

#[tokio::test]
async fn a_silent_socket_is_closed_and_leaves_presence() {
    let server = TestServer::start_with(|config| config.heartbeat_timeout = 1).await;
    let room = topic(&server.create_room("Quiet").await);
    let mut ada = server.socket("Ada").await;
    let (ada_ref, _) = ada.join_ok(&room, "Ada").await;
    let mut silent = server.socket("Silent").await;
    silent.join_ok(&room, "Silent").await;
    ada.expect_event("presence_diff").await;
    // Ada keeps talking; the other socket says nothing for longer than the limit.
    let started = std::time::Instant::now();
    let leave = loop {
        let r = ada.push(None, "phoenix", "heartbeat", json!({})).await;
        let frame = ada
            .expect_text(|f| f.msg_ref.as_deref() == Some(r.as_str()) || f.event == "presence_diff")
            .await;
        if frame.event == "presence_diff" {
            break frame.payload;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(4),
            "no leave within the timeout"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    assert!(leave["leaves"].get(&silent.user_id).is_some(), "{leave}");
    let close = silent.expect_close().await;
    assert_eq!(u16::from(close.code), 1008);
    assert!(close.reason.contains("heartbeat"), "{close:?}");
    let _ = ada_ref;
}

#[tokio::test]
async fn one_socket_can_be_in_several_rooms() {
    let server = TestServer::start().await;
    let first = topic(&server.create_room("First").await);
    let second = topic(&server.create_room("Second").await);
    let mut ada = server.socket("Ada").await;
    let (first_ref, _) = ada.join_ok(&first, "Ada").await;
    let (second_ref, _) = ada.join_ok(&second, "Ada in two places").await;
    let mut bo = server.socket("Bo").await;
    bo.join_ok(&second, "Bo").await;

    let r = ada
        .push(
            Some(&first_ref),
            &first,
            "chat",
            json!({"text": "to the first"}),
        )
        .await;
    assert_eq!(ada.expect_reply(&r).await.0, "ok");
    let r = ada
        .push(
            Some(&second_ref),
            &second,
            "chat",
            json!({"text": "to the second"}),
        )
        .await;
    assert_eq!(ada.expect_reply(&r).await.0, "ok");
    let event = bo.expect_text(|f| f.event == "event").await;
    assert_eq!(event.topic, second);
    assert_eq!(
        event.payload["body"]["text"], "to the second",
        "Bo hears only his room"
    );

    // Leaving one room keeps the other.
    let r = ada
        .push(Some(&first_ref), &first, "phx_leave", json!({}))
        .await;
    assert_eq!(ada.expect_reply(&r).await.0, "ok");
    let r = ada
        .push(Some(&first_ref), &first, "chat", json!({"text": "gone"}))
        .await;
    assert_eq!(ada.expect_reply(&r).await.1["code"], "not_joined");
    let r = ada
        .push(
            Some(&second_ref),
            &second,
            "chat",
            json!({"text": "still here"}),
        )
        .await;
    assert_eq!(ada.expect_reply(&r).await.0, "ok");
}
