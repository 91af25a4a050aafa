//! The socket side of the security catalogue: topic spelling, replay memory,
//! capacity and fairness limits, floods, heartbeats and names.

use std::net::Ipv4Addr;

use roomscale_protocol::pose;
use serde_json::{Value, json};
use tokio::net::TcpSocket;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::common::TestServer;
use crate::common::ws::{
    AdaAndBo, Received, TestSocket, assert_closed_with, assert_ok, assert_refused, join_payload,
};

/// Opens a socket with `token` from the loopback address `from` (any of
/// 127.0.0.0/8 reaches the server on 127.0.0.1, and counts as its own
/// address), sending `headers` with the upgrade. `Err` holds the refusal's
/// status and body.
async fn connect_from(
    server: &TestServer,
    from: Ipv4Addr,
    token: &str,
    user_id: &str,
    headers: &[(&'static str, &str)],
) -> Result<TestSocket, (u16, String)> {
    let url = format!(
        "ws://{}/socket/websocket?vsn=2.0.0&token={token}",
        server.addr
    );
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(*name, value.parse().unwrap());
    }
    let tcp = TcpSocket::new_v4().unwrap();
    tcp.bind((from, 0).into()).unwrap();
    let stream = tcp.connect(server.addr).await.expect("tcp connects");
    match tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream)).await {
        Ok((ws, _)) => Ok(TestSocket::new(ws, user_id.to_string())),
        Err(tungstenite::Error::Http(response)) => Err((
            response.status().as_u16(),
            String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).to_string(),
        )),
        Err(other) => panic!("the upgrade failed without an HTTP answer: {other}"),
    }
}

/// Like [`connect_from`], for a socket the server must refuse: `what` says
/// which, should it connect. Returns the refusal's status and body.
async fn refusal_from(
    server: &TestServer,
    from: Ipv4Addr,
    (token, user_id): (&str, &str),
    headers: &[(&'static str, &str)],
    what: &str,
) -> (u16, String) {
    connect_from(server, from, token, user_id, headers)
        .await
        .err()
        .unwrap_or_else(|| panic!("{what} was not refused"))
}

/// Chat from `from` reaches `to`; returns once `to` has seen it.
async fn chat_reaches(
    from: &mut TestSocket,
    from_ref: &str,
    to: &mut TestSocket,
    topic: &str,
    text: &str,
) {
    let reply = from
        .request(Some(from_ref), topic, "chat", json!({"text": text}))
        .await;
    assert_ok(reply);
    let event = to
        .expect_text(|f| f.event == "event" && f.payload["body"]["text"] == text)
        .await;
    assert_eq!(event.topic, topic);
}

/// A pose from `from` reaches `to` in a pose batch.
async fn pose_reaches(from: &mut TestSocket, from_ref: &str, to: &mut TestSocket, topic: &str) {
    let sent = pose::encode_pose(0, &crate::socket::sample_pose(2.5));
    from.push_binary(from_ref, topic, "pose", &sent).await;
    loop {
        let batch = to.expect_poses().await;
        let poses: Vec<_> = pose::decode_batch(&batch).unwrap().iter().collect();
        if poses
            .iter()
            .any(|(_, p)| (p.head.position[0] - 2.5).abs() <= pose::POSITION_ERROR_BOUND_M)
        {
            return;
        }
    }
}

fn error_code(response: &Value) -> &str {
    response["code"].as_str().unwrap_or_default()
}

mod topics {
    use super::*;

    #[tokio::test]
    async fn other_spellings_of_a_room_are_refused_naming_the_canonical_topic() {
        let server = TestServer::start().await;
        let room_id = server.create_room("Spelling").await;
        let canonical = format!("room:{room_id}");
        let (mut ada, ada_ref) = server.joined(&canonical, "Ada").await;

        let upper = room_id.to_uppercase();
        let simple = room_id.replace('-', "");
        let mut mallory = server.socket("Mallory").await;
        for spelling in [
            format!("room:{upper}"),
            format!("ROOM:{room_id}"),
            format!("room:{{{room_id}}}"),
            format!("room:urn:uuid:{room_id}"),
            format!("room:{simple}"),
        ] {
            // The reason names the canonical topic.
            mallory
                .join_refused(&spelling, "Mallory", "unknown_topic", &canonical)
                .await;
            // Nor may a member push under another spelling of its room.
            let reply = ada
                .request(Some(&ada_ref), &spelling, "chat", json!({"text": "x"}))
                .await;
            assert_refused(reply, "unknown_topic", "");
        }

        // Members who join the canonical topic hear everything under it.
        let (mut bo, bo_ref) = server.joined(&canonical, "Bo").await;
        let diff = ada.expect_text(|f| f.event == "presence_diff").await;
        assert_eq!(diff.topic, canonical);
        chat_reaches(&mut bo, &bo_ref, &mut ada, &canonical, "one spelling").await;
        chat_reaches(&mut ada, &ada_ref, &mut bo, &canonical, "for everyone").await;
        assert_eq!(
            server.state.rooms.running_count(),
            1,
            "no room task for another spelling"
        );
    }

    #[tokio::test]
    async fn a_second_join_of_a_topic_replaces_the_first() {
        let server = TestServer::start().await;
        let topic = format!("room:{}", server.create_room("Twice").await);
        let (mut ada, first_ref) = server.joined(&topic, "Ada").await;
        let (second_ref, _) = ada.join_ok(&topic, "Ada again").await;
        assert_ne!(first_ref, second_ref);

        // One channel, one member: a newcomer sees Ada once, by her newer name.
        let mut bo = server.socket("Bo").await;
        bo.join_ok(&topic, "Bo").await;
        let state = bo.expect_event("presence_state").await;
        let metas = state[&ada.user_id]["metas"].as_array().unwrap();
        assert_eq!(metas.len(), 1, "{state}");
        assert_eq!(metas[0]["name"], "Ada again");

        // The first join is gone; the second one works.
        let reply = ada
            .request(Some(&first_ref), &topic, "chat", json!({"text": "old"}))
            .await;
        assert_refused(reply, "not_joined", "");
        chat_reaches(&mut ada, &second_ref, &mut bo, &topic, "new").await;
    }
}

mod limits {
    use super::*;

    #[tokio::test]
    async fn joins_beyond_the_channels_per_socket_limit_are_refused() {
        let server = TestServer::start_with(|config| config.channels_per_socket = 2).await;
        let mut topics = Vec::new();
        for name in ["One", "Two", "Three"] {
            topics.push(format!("room:{}", server.create_room(name).await));
        }
        let mut ada = server.socket("Ada").await;
        let (first_ref, _) = ada.join_ok(&topics[0], "Ada").await;
        ada.join_ok(&topics[1], "Ada").await;
        let refused = ada
            .join_refused(&topics[2], "Ada", "limit_reached", "2 rooms")
            .await;
        assert!(
            refused["reason"].as_str().unwrap().contains("leave"),
            "{refused}"
        );

        // Joining a topic again replaces its channel: no new place needed.
        ada.join_ok(&topics[1], "Ada").await;
        // Leaving one makes room for another.
        let left = ada
            .request(Some(&first_ref), &topics[0], "phx_leave", json!({}))
            .await;
        assert_ok(left);
        let (third_ref, _) = ada.join_ok(&topics[2], "Ada").await;
        let mut bo = server.socket("Bo").await;
        bo.join_ok(&topics[2], "Bo").await;
        chat_reaches(&mut ada, &third_ref, &mut bo, &topics[2], "made room").await;
    }

    /// Waits until the server has given back every place of `ip`, as it does
    /// once a closed socket's task has finished.
    async fn wait_until_released(server: &TestServer, ip: Ipv4Addr, held: u32) {
        let started = std::time::Instant::now();
        while server.state.limits.sockets_per_ip.held(&ip.into()) != held {
            assert!(
                started.elapsed() < crate::common::ws::WAIT,
                "the server still counts a closed socket of {ip}"
            );
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Asserts that one more socket of `visitor` (token, user id) from `from`
    /// is refused for too many open connections `whose` (of whom), at most 2.
    async fn refused_as_too_many(
        server: &TestServer,
        from: Ipv4Addr,
        (token, user_id): &(String, String),
        whose: &str,
    ) {
        let what = format!("a socket over the limit {whose}");
        let (status, body) = refusal_from(server, from, (token, user_id), &[], &what).await;
        assert_eq!(status, 429, "{body}");
        assert!(
            body.contains(&format!("too many open connections {whose}"))
                && body.contains("at most 2"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn sockets_per_address_are_limited_and_other_addresses_keep_theirs() {
        let server = TestServer::start_with(|config| config.sockets_per_ip = 2).await;
        let topic = format!("room:{}", server.create_room("Busy").await);
        let busy: Ipv4Addr = "127.0.0.2".parse().unwrap();
        let mut open = Vec::new();
        for name in ["Ada", "Bo"] {
            let (token, user_id) = server.session(name).await;
            let mut socket = connect_from(&server, busy, &token, &user_id, &[])
                .await
                .unwrap_or_else(|refusal| panic!("{name} refused: {refusal:?}"));
            let (join_ref, _) = socket.join_ok(&topic, name).await;
            open.push((socket, join_ref));
        }
        let cy = server.session("Cy").await;
        refused_as_too_many(&server, busy, &cy, "from your address 127.0.0.2").await;
        let (token, user_id) = cy;
        assert!(server.state.metrics.errors("sockets_per_ip") >= 1);

        // Another address is not held back by the busy one.
        let other: Ipv4Addr = "127.0.0.3".parse().unwrap();
        let mut dee = connect_from(&server, other, &token, &user_id, &[])
            .await
            .expect("another address connects");
        let (dee_ref, _) = dee.join_ok(&topic, "Dee").await;

        // The members from the busy address are still served.
        let (mut bo, bo_ref) = open.pop().unwrap();
        let (mut ada, ada_ref) = open.pop().unwrap();
        chat_reaches(&mut ada, &ada_ref, &mut bo, &topic, "still here").await;

        // A closed socket gives its place back.
        drop(bo);
        let _ = bo_ref;
        wait_until_released(&server, busy, 1).await;
        connect_from(&server, busy, &token, &user_id, &[])
            .await
            .expect("a place came free");
        chat_reaches(&mut dee, &dee_ref, &mut ada, &topic, "hello from elsewhere").await;
    }

    #[tokio::test]
    async fn sockets_per_user_are_limited() {
        let server = TestServer::start_with(|config| config.sockets_per_user = 2).await;
        let topic = format!("room:{}", server.create_room("Tabs").await);
        let ada = server.session("Ada").await;
        let (token, user_id) = &ada;
        let loopback = Ipv4Addr::LOCALHOST;
        let mut first = connect_from(&server, loopback, token, user_id, &[])
            .await
            .unwrap();
        let (first_ref, _) = first.join_ok(&topic, "Ada").await;
        let _second = connect_from(&server, loopback, token, user_id, &[])
            .await
            .unwrap();
        // The same visitor from another address is still the same visitor.
        let elsewhere: Ipv4Addr = "127.0.0.4".parse().unwrap();
        refused_as_too_many(&server, elsewhere, &ada, "for this visitor").await;
        // Another visitor connects, and both are served.
        let mut bo = server.socket("Bo").await;
        bo.join_ok(&topic, "Bo").await;
        chat_reaches(
            &mut first,
            &first_ref,
            &mut bo,
            &topic,
            "two tabs are enough",
        )
        .await;
    }
}

mod floods {
    use super::*;

    /// A fresh server with Ada and Bo in a new room named `room_name`.
    async fn server_with_bystanders(room_name: &str) -> (TestServer, AdaAndBo) {
        let server = TestServer::start().await;
        let room = server.ada_and_bo(room_name).await;
        (server, room)
    }

    /// Ada and Bo, in a room of their own, are bystanders: what another
    /// visitor does to the server must not reach them. Ada's chat `text`
    /// still reaches Bo.
    async fn still_chat(room: &mut AdaAndBo, text: &str) {
        chat_reaches(
            &mut room.ada,
            &room.ada_ref,
            &mut room.bo,
            &room.topic,
            text,
        )
        .await;
    }

    /// Sends `count` heartbeats carrying `payload` without waiting; returns their refs.
    async fn send_heartbeats(socket: &mut TestSocket, payload: Value, count: usize) -> Vec<String> {
        let mut refs = Vec::new();
        for _ in 0..count {
            refs.push(
                socket
                    .push(None, "phoenix", "heartbeat", payload.clone())
                    .await,
            );
        }
        refs
    }

    /// Reads the replies to `refs`: (answered, refused as rate limited); any
    /// other refusal fails the test.
    async fn answered_and_limited(socket: &mut TestSocket, refs: &[String]) -> (usize, usize) {
        let (mut answered, mut limited) = (0, 0);
        for r in refs {
            let (status, response) = socket.expect_reply(r).await;
            match status.as_str() {
                "ok" => answered += 1,
                _ => {
                    assert_eq!(error_code(&response), "rate_limited", "{response}");
                    limited += 1;
                }
            }
        }
        (answered, limited)
    }

    #[tokio::test]
    async fn heartbeats_have_a_budget_and_a_payload_of_braces() {
        let (server, mut room) = server_with_bystanders("Beats").await;

        // A burst of heartbeats: a few are answered, the rest refused.
        let mut beater = server.socket("Beater").await;
        let refs = send_heartbeats(&mut beater, json!({}), 30).await;
        let (answered, _) = answered_and_limited(&mut beater, &refs).await;
        assert!((1..=12).contains(&answered), "answered {answered} of 30");

        // A small payload other than {} is refused; a big one closes the socket.
        let mut odd = server.socket("Odd").await;
        let reply = odd
            .request(None, "phoenix", "heartbeat", json!({"x": 1}))
            .await;
        assert_refused(reply, "invalid_payload", "");
        let big = json!({ "padding": "x".repeat(58_000) });
        let mut heavy = server.socket("Heavy").await;
        send_heartbeats(&mut heavy, big, 3).await;
        assert_closed_with(&heavy.expect_close().await, 1008, "heartbeat");
        assert_eq!(server.state.metrics.errors("oversized_heartbeat"), 1);

        // An honest client's heartbeat, and the room, are unaffected.
        let reply = room
            .ada
            .request(None, "phoenix", "heartbeat", json!({}))
            .await;
        assert_eq!(reply, ("ok".to_string(), json!({})));
        still_chat(&mut room, "beat on").await;
    }

    #[tokio::test]
    async fn a_thousand_heartbeats_are_not_all_answered() {
        let (server, mut room) = server_with_bystanders("Drums").await;
        let mut drummer = server.socket("Drummer").await;
        send_heartbeats(&mut drummer, json!({}), 1_000).await;
        let mut answered = 0;
        let close = loop {
            match drummer.recv().await {
                Received::Text(f) if f.payload["status"] == "ok" => answered += 1,
                Received::Close(close) => break close.expect("a reason"),
                _ => {}
            }
        };
        assert!(answered <= 12, "{answered} heartbeats answered");
        assert_closed_with(&close, 1008, "flooding");
        still_chat(&mut room, "in time").await;
    }

    #[tokio::test]
    async fn a_flooder_that_paces_its_allowed_frames_is_still_disconnected() {
        let (server, mut room) = server_with_bystanders("Paced").await;
        let (mut flooder, flood_ref) = server.joined(&room.topic, "Flooder").await;

        // Bursts of 30 with pauses in between, so that some frames are allowed
        // after each burst's refusals: no run of refusals is ever long, but
        // the refusals add up.
        let (mut allowed_after_refusal, mut refused) = (0, 0);
        let mut close = None;
        'rounds: for round in 0..40 {
            let mut refs = Vec::new();
            for i in 0..30 {
                let text = json!({"text": format!("spam {round}.{i}")});
                refs.push(
                    flooder
                        .push(Some(&flood_ref), &room.topic, "chat", text)
                        .await,
                );
            }
            // Refusals are answered at once, stored chat later: in any order.
            let mut unanswered: std::collections::HashSet<String> = refs.into_iter().collect();
            while !unanswered.is_empty() {
                let frame = match flooder.recv().await {
                    Received::Close(frame) => {
                        close = frame;
                        break 'rounds;
                    }
                    Received::Text(f) if f.event == "phx_reply" => f,
                    _ => continue,
                };
                if !unanswered.remove(frame.msg_ref.as_deref().unwrap_or_default()) {
                    continue;
                }
                match frame.payload["status"].as_str() {
                    Some("ok") if refused > 0 => allowed_after_refusal += 1,
                    Some("ok") => {}
                    _ => refused += 1,
                }
            }
            // Long enough for the rate limit to allow a few frames again.
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        assert_closed_with(
            &close.expect("disconnected with a reason"),
            1008,
            "flooding",
        );
        assert!(
            allowed_after_refusal > 0 && refused < 200,
            "allowed frames came between refusals ({allowed_after_refusal}); refused {refused}"
        );

        // The members of the room keep their poses and chat.
        pose_reaches(&mut room.ada, &room.ada_ref, &mut room.bo, &room.topic).await;
        pose_reaches(&mut room.bo, &room.bo_ref, &mut room.ada, &room.topic).await;
        still_chat(&mut room, "after the flood").await;
    }

    #[tokio::test]
    async fn a_pose_flood_is_disconnected_and_others_keep_their_poses() {
        let (server, mut room) = server_with_bystanders("Poses").await;
        let (mut flooder, flood_ref) = server.joined(&room.topic, "Flooder").await;
        let pose = pose::encode_pose(0, &crate::socket::sample_pose(0.0));
        let mut frame = Vec::new();
        roomscale_protocol::frame::encode_client_push(
            &mut frame,
            &flood_ref,
            "",
            &room.topic,
            "pose",
            &pose,
        )
        .unwrap();
        // Far more than poses per second allow: each refused 30 cost a strike.
        for _ in 0..4_000 {
            flooder.send_raw(Message::binary(frame.clone())).await;
        }
        assert_closed_with(&flooder.expect_close().await, 1008, "flooding");
        pose_reaches(&mut room.ada, &room.ada_ref, &mut room.bo, &room.topic).await;
    }

    #[tokio::test]
    async fn a_huge_frame_is_cut_off_with_a_reason() {
        let (server, mut room) = server_with_bystanders("Huge").await;
        let mut mallory = server.socket("Mallory").await;
        let text = format!(
            r#"[null,"1","{}","chat",{{"text":"{}"}}]"#,
            room.topic,
            "x".repeat(1_000_000)
        );
        mallory.send_raw(Message::text(text)).await;
        assert_closed_with(&mallory.expect_close().await, 1009, "too long");
        still_chat(&mut room, "small frames pass").await;
    }

    #[tokio::test]
    async fn joins_of_unknown_rooms_start_no_room_task() {
        let (server, mut room) = server_with_bystanders("Real").await;
        let running = server.state.rooms.running_count();
        assert_eq!(running, 1);
        let mut refused = 0;
        // Within each socket's join budget: 50 sockets, 10 joins each.
        for socket_index in 0..50 {
            let mut prober = server.socket(&format!("Prober {socket_index}")).await;
            for _ in 0..10 {
                let made_up = format!("room:{}", uuid::Uuid::new_v4());
                prober
                    .join_refused(&made_up, "Prober", "room_not_found", "does not exist")
                    .await;
                refused += 1;
            }
        }
        assert_eq!(refused, 500);
        assert_eq!(server.state.rooms.running_count(), running);
        still_chat(&mut room, "only real rooms run").await;
    }

    #[tokio::test]
    async fn rejoining_in_a_loop_is_rate_limited() {
        let (server, mut room) = server_with_bystanders("Churn").await;
        let mut churner = server.socket("Churner").await;
        let mut refs = Vec::new();
        for _ in 0..30 {
            let join_ref = churner.next_ref();
            let text = roomscale_protocol::frame::encode_text_parts(
                Some(&join_ref),
                Some(&join_ref),
                &room.topic,
                "phx_join",
                &join_payload("Churner"),
            );
            churner.send_raw(Message::text(text)).await;
            refs.push(join_ref);
        }
        let (joined, limited) = answered_and_limited(&mut churner, &refs).await;
        assert!(
            joined <= 12 && limited >= 18,
            "joined {joined}, limited {limited}"
        );
        still_chat(&mut room, "calm again").await;
    }
}

mod origin {
    use super::*;

    const EVIL: (&str, &str) = ("origin", "https://evil.example");

    #[tokio::test]
    async fn a_page_from_another_origin_cannot_open_a_socket() {
        let server = TestServer::start().await;
        let topic = format!("room:{}", server.create_room("Home").await);
        let (token, user_id) = server.session("Ada").await;
        let visitor = (token.as_str(), user_id.as_str());
        let loopback = Ipv4Addr::LOCALHOST;
        for headers in [
            vec![EVIL],
            vec![("origin", "null")],
            vec![("sec-fetch-site", "cross-site")],
        ] {
            let what = format!("a socket with {headers:?}");
            let (status, body) = refusal_from(&server, loopback, visitor, &headers, &what).await;
            assert_eq!(status, 403, "{headers:?}");
            assert!(body.contains("refused"), "{headers:?}: {body}");
        }
        let (_, body) = refusal_from(&server, loopback, visitor, &[EVIL], "evil.example").await;
        assert!(
            body.contains("evil.example") && body.contains("--allowed-origin"),
            "{body}"
        );
        assert!(server.state.metrics.errors("origin_refused") >= 4);

        // The server's own pages, and programs that send no Origin, connect.
        let own = format!("http://{}", server.addr);
        let mut page = connect_from(
            &server,
            loopback,
            &token,
            &user_id,
            &[("origin", &own), ("sec-fetch-site", "same-origin")],
        )
        .await
        .expect("the server's own page connects");
        let (page_ref, _) = page.join_ok(&topic, "Ada").await;
        let mut app = connect_from(&server, loopback, &token, &user_id, &[])
            .await
            .expect("a program without Origin connects");
        app.join_ok(&topic, "Ada's app").await;
        chat_reaches(&mut page, &page_ref, &mut app, &topic, "same origin").await;
    }

    #[tokio::test]
    async fn allowed_origins_admit_another_page() {
        let server = TestServer::start_with(|config| {
            config.allowed_origins = vec!["https://rooms.example".into()];
        })
        .await;
        let topic = format!("room:{}", server.create_room("Shared").await);
        let (token, user_id) = server.session("Ada").await;
        let loopback = Ipv4Addr::LOCALHOST;
        let mut ada = connect_from(
            &server,
            loopback,
            &token,
            &user_id,
            &[("origin", "https://rooms.example")],
        )
        .await
        .expect("an allowed origin connects");
        ada.join_ok(&topic, "Ada").await;
        let visitor = (token.as_str(), user_id.as_str());
        let (status, _) = refusal_from(&server, loopback, visitor, &[EVIL], "another origin").await;
        assert_eq!(status, 403);
    }
}

/// Join replay memory and history pages: a long history joins in one small
/// frame, pages back exactly once, and a socket that never reads is cut off.
mod replay {
    use std::time::Duration;

    use roomscale_protocol::events::RoomEventBody;
    use roomscale_protocol::limits::MAX_REPLAY_BYTES;
    use serde_json::{Value, json};
    use sqlx::Connection as _;
    use tokio_tungstenite::MaybeTlsStream;
    use tokio_tungstenite::tungstenite::Message;
    use uuid::Uuid;

    use crate::common::ws::{TestSocket, assert_ok, join_payload};
    use crate::common::{TestServer, stored_room};

    /// Events written straight to the database, in one transaction.
    pub(crate) const HISTORY_EVENTS: u64 = 1_000;
    /// Each a 2,000-character chat: about 2 MB of history in all.
    const TEXT_CHARS: usize = 2_000;

    /// A room with about 2 MB of chat history; returns its id and topic.
    pub(crate) async fn room_with_long_history(server: &TestServer) -> (Uuid, String) {
        let room = stored_room(&server.state.store, "Long history", None).await;
        let mut conn = server.state.store.pool().acquire().await.unwrap();
        let mut tx = conn.begin().await.unwrap();
        for id in 1..=HISTORY_EVENTS {
            let text = format!("{id:>6} {}", "x".repeat(TEXT_CHARS - 7));
            let body = serde_json::to_string(&RoomEventBody::Chat { text }).unwrap();
            sqlx::query(
                "INSERT INTO room_events (room_id, id, user_id, name, sent_at, kind, body) \
                 VALUES ($1, $2, 'writer', 'Writer', $3, 'chat', $4)",
            )
            .bind(room.id.to_string())
            .bind(id as i64)
            .bind(1_700_000_000_000 + id as i64)
            .bind(body)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
        (room.id, format!("room:{}", room.id))
    }

    fn ids(events: &Value) -> Vec<u64> {
        events
            .as_array()
            .expect("an events array")
            .iter()
            .map(|e| e["id"].as_u64().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn a_long_history_joins_in_a_small_reply_and_pages_back_every_event_once() {
        let server = TestServer::start().await;
        let (_, topic) = room_with_long_history(&server).await;
        let mut ada = server.socket("Ada").await;
        let (join_ref, reply) = ada.join_ok(&topic, "Ada").await;

        let reply_bytes = serde_json::to_string(&reply).unwrap().len();
        assert!(
            reply_bytes < 50_000,
            "the join reply is {reply_bytes} bytes"
        );
        let events_bytes = serde_json::to_string(&reply["events"]).unwrap().len();
        assert!(events_bytes <= MAX_REPLAY_BYTES, "{events_bytes} bytes");
        assert_eq!(reply["truncated"], true);
        let mut seen = ids(&reply["events"]);
        assert_eq!(
            seen.last(),
            Some(&HISTORY_EVENTS),
            "the newest events come first"
        );
        assert!(seen.windows(2).all(|w| w[1] == w[0] + 1), "{seen:?}");

        // Page back until the start: every event once, each page within bounds
        // (paced as a client scrolling would, within the per-socket rate).
        let mut pages = 0;
        let mut pace = tokio::time::interval(Duration::from_millis(60));
        loop {
            pace.tick().await;
            let before_id = seen[0];
            let page = ada
                .request(
                    Some(&join_ref),
                    &topic,
                    "history",
                    json!({"before_id": before_id}),
                )
                .await;
            let page = assert_ok(page);
            let page_bytes = serde_json::to_string(&page["events"]).unwrap().len();
            assert!(
                page_bytes <= MAX_REPLAY_BYTES,
                "a page of {page_bytes} bytes"
            );
            let older = ids(&page["events"]);
            assert!(!older.is_empty(), "a page before {before_id} is empty");
            assert!(
                older.windows(2).all(|w| w[0] < w[1]) && *older.last().unwrap() < before_id,
                "oldest first, all before {before_id}: {older:?}"
            );
            seen.splice(0..0, older);
            pages += 1;
            if page["more"] == false {
                break;
            }
            assert!(pages < 200, "paging never ends");
        }
        assert_eq!(seen, (1..=HISTORY_EVENTS).collect::<Vec<_>>());
        assert!(pages > 10, "2 MB cannot come back in {pages} pages");

        // A rejoin that saw almost everything gets just the rest, untruncated.
        let mut again = join_payload("Ada");
        again["last_seen_id"] = json!(HISTORY_EVENTS - 3);
        let (_, status, reply) = ada.join(&topic, again).await;
        assert_eq!(status, "ok", "{reply}");
        assert_eq!(
            ids(&reply["events"]),
            [HISTORY_EVENTS - 2, HISTORY_EVENTS - 1, HISTORY_EVENTS]
        );
        assert_eq!(reply["truncated"], false);
    }

    /// A socket whose kernel receive buffer is small, so that a reader that
    /// stops reading is seen behind soon (loopback buffers hold megabytes).
    async fn socket_with_small_window(
        server: &TestServer,
        token: &str,
        user_id: &str,
    ) -> TestSocket {
        let url = format!(
            "ws://{}/socket/websocket?vsn=2.0.0&token={token}",
            server.addr
        );
        let tcp = tokio::net::TcpSocket::new_v4().unwrap();
        tcp.set_recv_buffer_size(4096).unwrap();
        let stream = tcp.connect(server.addr).await.expect("tcp connects");
        let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
            .await
            .expect("websocket connects");
        TestSocket::new(ws, user_id.to_string())
    }

    /// The number of `event` broadcasts `socket` gets until it has the chat `text`.
    async fn events_until(socket: &mut TestSocket, text: &str) -> usize {
        let mut count = 0;
        loop {
            let frame = socket.expect_text(|f| f.event == "event").await;
            count += 1;
            if frame.payload["body"]["text"] == text {
                return count;
            }
        }
    }

    #[tokio::test]
    async fn a_socket_that_never_reads_is_cut_off_while_the_room_keeps_chatting() {
        let server = TestServer::start().await;
        let (_, topic) = room_with_long_history(&server).await;
        let (mut ada, ada_ref) = server.joined(&topic, "Ada").await;
        let (mut bo, bo_ref) = server.joined(&topic, "Bo").await;
        let (token, silent_id) = server.session("Silent").await;
        let mut silent = socket_with_small_window(&server, &token, &silent_id).await;
        let (silent_ref, _) = silent.join_ok(&topic, "Silent").await;

        // From now on the silent socket reads nothing. It asks for history
        // again and again (each answer carries up to 48 KiB) while Ada chats;
        // within its rate limit, so only its outbox can stop it.
        let mut pace = tokio::time::interval(Duration::from_millis(60));
        let mut sent_chats = 0;
        let mut asked = 0;
        loop {
            pace.tick().await;
            if server.state.metrics.errors("send_queue_full") > 0 {
                break;
            }
            assert!(asked < 500, "the silent socket was never cut off");
            let text = roomscale_protocol::frame::encode_text_parts(
                Some(&silent_ref),
                Some(&format!("history{asked}")),
                &topic,
                "history",
                &json!({"before_id": HISTORY_EVENTS}),
            );
            silent.send_raw(Message::text(text)).await;
            asked += 1;
            if asked % 4 == 0 {
                let text = format!("honest {sent_chats}");
                let reply = ada
                    .request(Some(&ada_ref), &topic, "chat", json!({"text": text}))
                    .await;
                assert_ok(reply);
                sent_chats += 1;
            }
        }

        // Its connection ends, and with it everything queued for it.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while server.state.metrics.connections.get() > 2 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the silent socket's connection is still open"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // It left the room: a newcomer sees only Ada and Bo.
        let mut cy = server.socket("Cy").await;
        cy.join_ok(&topic, "Cy").await;
        let state = cy.expect_event("presence_state").await;
        assert!(state.get(&silent_id).is_none(), "{state}");
        assert_eq!(state.as_object().unwrap().len(), 3, "{state}");

        // Every chat Ada sent reached Bo, and the room still serves both.
        let last = format!("honest {}", sent_chats - 1);
        assert_eq!(events_until(&mut bo, &last).await, sent_chats);
        super::chat_reaches(&mut bo, &bo_ref, &mut ada, &topic, "after").await;
    }
}

/// Capacity counts people: a second client of someone already in takes no place.
mod capacity {
    use crate::common::TestServer;
    use crate::common::ws::join_payload;

    #[tokio::test]
    async fn a_full_room_still_takes_another_client_of_someone_inside() {
        let server = TestServer::start_with(|config| config.room_capacity = 2).await;
        let topic = format!("room:{}", server.create_room("Small").await);
        let (ada_token, ada_id) = server.session("Ada").await;
        let mut ada_tabs = Vec::new();
        for _ in 0..2 {
            let mut tab = server.socket_with_token(&ada_token, &ada_id).await;
            tab.join_ok(&topic, "Ada").await;
            ada_tabs.push(tab);
        }
        let mut bo = server.socket("Bo").await;
        bo.join_ok(&topic, "Bo").await;

        // Two people are in: a third person is refused, a third tab of Ada is not.
        let mut cy = server.socket("Cy").await;
        cy.join_refused(&topic, "Cy", "room_full", "2 people").await;
        let mut headset = server.socket_with_token(&ada_token, &ada_id).await;
        headset.join_ok(&topic, "Ada").await;
        let state = headset.expect_event("presence_state").await;
        assert_eq!(state[&ada_id]["metas"].as_array().unwrap().len(), 3);
        assert_eq!(state.as_object().unwrap().len(), 2, "{state}");

        // When Bo leaves, his place is free again.
        drop(bo);
        loop {
            let diff = headset.expect_event("presence_diff").await;
            if diff["leaves"].as_object().is_some_and(|l| !l.is_empty()) {
                break;
            }
        }
        let (_, status, response) = cy.join(&topic, join_payload("Cy")).await;
        assert_eq!(status, "ok", "{response}");
    }
}

/// Names are stored and shown in their normalised form.
mod names {
    use serde_json::json;

    use crate::common::TestServer;
    use crate::common::ws::{TestSocket, assert_ok, assert_refused};

    /// Ada's chat `text` reaches Bo under the name `shown`.
    async fn chat_shows_name(
        (ada, ada_ref): (&mut TestSocket, &str),
        bo: &mut TestSocket,
        topic: &str,
        text: &str,
        shown: &str,
    ) {
        assert_ok(
            ada.request(Some(ada_ref), topic, "chat", json!({"text": text}))
                .await,
        );
        let event = bo.expect_event("event").await;
        assert_eq!(event["body"]["text"], text);
        assert_eq!(event["name"], shown);
    }

    #[tokio::test]
    async fn presence_and_chat_carry_the_normalised_name() {
        let server = TestServer::start().await;
        let topic = format!("room:{}", server.create_room("Names").await);
        let mut bo = server.socket("Bo").await;
        bo.join_ok(&topic, "Bo").await;
        let mut ada = server.socket("Ada").await;
        // A decomposed "é" with spaces around: shown as one NFC "é", trimmed.
        let (ada_ref, _) = ada.join_ok(&topic, "  Ame\u{301}lie ").await;
        let diff = bo.expect_event("presence_diff").await;
        assert_eq!(
            diff["joins"][&ada.user_id]["metas"][0]["name"],
            "Am\u{e9}lie"
        );
        chat_shows_name(
            (&mut ada, &ada_ref),
            &mut bo,
            &topic,
            "bonjour",
            "Am\u{e9}lie",
        )
        .await;

        let renamed = ada
            .request(
                Some(&ada_ref),
                &topic,
                "update_profile",
                json!({"name": " Zoe\u{308}"}),
            )
            .await;
        assert_ok(renamed);
        let diff = bo.expect_event("presence_diff").await;
        assert_eq!(diff["joins"][&ada.user_id]["metas"][0]["name"], "Zo\u{eb}");
        chat_shows_name((&mut ada, &ada_ref), &mut bo, &topic, "renamed", "Zo\u{eb}").await;

        // A name that hides its direction is refused; the room serves on.
        let mut eve = server.socket("Eve").await;
        eve.join_refused(&topic, "\u{202E}evE", "invalid_payload", "")
            .await;
        let hidden = ada
            .request(
                Some(&ada_ref),
                &topic,
                "update_profile",
                json!({"name": "a\u{200B}b"}),
            )
            .await;
        assert_refused(hidden, "invalid_payload", "");
        chat_shows_name(
            (&mut ada, &ada_ref),
            &mut bo,
            &topic,
            "still here",
            "Zo\u{eb}",
        )
        .await;
    }
}

/// A flood of stored events in one room leaves the store to the others.
mod write_rate {
    use serde_json::{Value, json};

    use crate::common::TestServer;
    use crate::common::ws::TestSocket;

    /// Sends a chat and waits for its reply: (status, response).
    async fn chat(
        socket: &mut TestSocket,
        join_ref: &str,
        topic: &str,
        text: &str,
    ) -> (String, Value) {
        socket
            .request(Some(join_ref), topic, "chat", json!({"text": text}))
            .await
    }

    /// Sends `count` chats without waiting, then reads every reply; returns
    /// (stored, refused as rate limited).
    async fn flood(
        socket: &mut TestSocket,
        join_ref: &str,
        topic: &str,
        count: usize,
    ) -> (usize, usize) {
        let mut refs = Vec::new();
        for i in 0..count {
            let r = socket
                .push(
                    Some(join_ref),
                    topic,
                    "chat",
                    json!({"text": format!("flood {i}")}),
                )
                .await;
            refs.push(r);
        }
        // Refusals come at once, acknowledgements after the write: in any order.
        let mut waiting: std::collections::HashSet<String> = refs.into_iter().collect();
        let (mut stored, mut limited) = (0, 0);
        while !waiting.is_empty() {
            let reply = socket
                .expect_text(|f| {
                    f.event == "phx_reply"
                        && f.msg_ref.as_ref().is_some_and(|r| waiting.contains(r))
                })
                .await;
            waiting.remove(reply.msg_ref.as_deref().unwrap());
            let response: &Value = &reply.payload["response"];
            match (reply.payload["status"].as_str(), response["code"].as_str()) {
                (Some("ok"), _) => stored += 1,
                (Some("error"), Some("rate_limited")) => limited += 1,
                other => panic!("unexpected reply {other:?}: {response}"),
            }
        }
        (stored, limited)
    }

    #[tokio::test]
    async fn a_flooded_room_keeps_its_honest_members_and_other_rooms_served() {
        let server = TestServer::start().await;
        let flooded = format!("room:{}", server.create_room("Flooded").await);
        let quiet = format!("room:{}", server.create_room("Quiet").await);
        let (token, flooder_id) = server.session("Flooder").await;
        let mut floods = Vec::new();
        for _ in 0..2 {
            let mut socket = server.socket_with_token(&token, &flooder_id).await;
            let (join_ref, _) = socket.join_ok(&flooded, "Flooder").await;
            floods.push((socket, join_ref));
        }
        let (mut ada, ada_ref) = server.joined(&flooded, "Ada").await;
        let (mut carl, carl_ref) = server.joined(&quiet, "Carl").await;

        // Both of the flooder's sockets at once, while Carl chats elsewhere.
        let flooded_topic = flooded.clone();
        let flooding = tokio::spawn(async move {
            let started = std::time::Instant::now();
            let (mut stored, mut limited) = (0, 0);
            for (mut socket, join_ref) in floods {
                let (s, l) = flood(&mut socket, &join_ref, &flooded_topic, 40).await;
                stored += s;
                limited += l;
            }
            (stored, limited, started.elapsed())
        });
        let mut carl_ids = Vec::new();
        for i in 0..15 {
            let (status, response) =
                chat(&mut carl, &carl_ref, &quiet, &format!("quiet {i}")).await;
            assert_eq!(status, "ok", "Carl's message {i}: {response}");
            carl_ids.push(response["id"].as_u64().unwrap());
        }
        assert_eq!(
            carl_ids,
            (1..=15).collect::<Vec<u64>>(),
            "all stored, in order"
        );

        let (stored, limited, elapsed) = flooding.await.unwrap();
        assert!(limited > 0, "the flood was limited");
        // One person stores 20 at once and 10 a second after that.
        let allowed = 20.0 + 10.0 * elapsed.as_secs_f64() + 1.0;
        assert!(
            (stored as f64) <= allowed,
            "{stored} stored in {elapsed:?}, at most {allowed} allowed"
        );
        // The flooder spent only its own share: Ada still gets through.
        for i in 0..5 {
            let (status, response) =
                chat(&mut ada, &ada_ref, &flooded, &format!("honest {i}")).await;
            assert_eq!(status, "ok", "Ada's message {i}: {response}");
        }
    }
}

/// The retention policy, on SQLite and on PostgreSQL.
mod retention {
    use roomscale_protocol::events::RoomEventBody;
    use roomscale_server::Store;
    use uuid::Uuid;

    use crate::common::{stored_room, with_postgres_database};

    fn chat(i: i64) -> RoomEventBody {
        RoomEventBody::Chat {
            text: format!("m{i}"),
        }
    }

    async fn room_with_events(store: &Store, name: &str, count: i64) -> Uuid {
        let room = stored_room(store, name, None).await.id;
        for i in 1..=count {
            store
                .append_event(room, "u", "Ada", i, &chat(i))
                .await
                .unwrap();
        }
        room
    }

    async fn ids(store: &Store, room: Uuid) -> Vec<u64> {
        let (events, _) = store.events_after(room, 0, 1_000).await.unwrap();
        events.iter().map(|e| e.id).collect()
    }

    async fn history_is_purged_by_age_and_count_and_numbering_goes_on(store: Store) {
        let a = room_with_events(&store, "A", 10).await;
        let b = room_with_events(&store, "B", 10).await;

        // Sent before 6 ms: five of each room.
        assert_eq!(store.purge_history(Some(6), None).await.unwrap(), 10);
        assert_eq!(ids(&store, a).await, [6, 7, 8, 9, 10]);
        // The newest three of each room stay.
        assert_eq!(store.purge_history(None, Some(3)).await.unwrap(), 4);
        assert_eq!(ids(&store, b).await, [8, 9, 10]);
        // No limit, or a limit of 0 (the flag's "keep all"), purges nothing.
        assert_eq!(store.purge_history(None, None).await.unwrap(), 0);
        assert_eq!(store.purge_history(None, Some(0)).await.unwrap(), 0);
        // Everything is old now, but each room keeps its newest event, so the
        // ids a client has seen still mean what they meant.
        assert_eq!(store.purge_history(Some(i64::MAX), None).await.unwrap(), 4);
        assert_eq!(ids(&store, a).await, [10]);
        let next = store
            .append_event(a, "u", "Ada", 11, &chat(11))
            .await
            .unwrap();
        assert_eq!(next.id, 11);
    }

    async fn history_pages_keep_to_their_byte_budget(store: Store) {
        let room = room_with_events(&store, "Pages", 30).await;
        let one = serde_json::to_vec(&store.events_after(room, 0, 1).await.unwrap().0[0])
            .unwrap()
            .len();
        // Room for about five events.
        let budget = 2 + 5 * (one + 1) + one / 2;
        let page = store
            .events_page(room, 0, u64::MAX, 500, budget)
            .await
            .unwrap();
        let got: Vec<u64> = page.events.iter().map(|e| e.id).collect();
        assert_eq!(got, [26, 27, 28, 29, 30]);
        assert!(page.more);
        assert!(page.bytes <= budget);
        assert_eq!(page.bytes, serde_json::to_vec(&page.events).unwrap().len());

        // Paging back meets every event once.
        let mut seen = got;
        while seen[0] > 1 {
            let page = store
                .events_page(room, 0, seen[0], 500, budget)
                .await
                .unwrap();
            let older: Vec<u64> = page.events.iter().map(|e| e.id).collect();
            assert_eq!(page.more, older[0] > 1, "{older:?}");
            seen.splice(0..0, older);
        }
        assert_eq!(seen, (1..=30).collect::<Vec<u64>>());

        // The count limit, the lower bound, and a budget smaller than one event:
        // (after, before, count, bytes) -> (ids, more).
        for ((after, before, count, bytes), expected) in [
            ((0, u64::MAX, 3, usize::MAX), (&[28, 29, 30][..], true)),
            ((27, u64::MAX, 500, usize::MAX), (&[28, 29, 30][..], false)),
            ((0, 10, 500, 1), (&[9][..], true)),
        ] {
            let page = store
                .events_page(room, after, before, count, bytes)
                .await
                .unwrap();
            let got: Vec<u64> = page.events.iter().map(|e| e.id).collect();
            assert_eq!(
                (got.as_slice(), page.more),
                expected,
                "after {after}, before {before}, at most {count} events and {bytes} bytes"
            );
        }
    }

    macro_rules! on_both_backends {
        ($($case:ident),* $(,)?) => {
            mod sqlite {
                $(
                    #[tokio::test]
                    async fn $case() {
                        let dir = tempfile::tempdir().unwrap();
                        let url = roomscale_server::config::sqlite_url(&dir.path().join("r.db"));
                        let store = super::Store::connect(&url).await.unwrap();
                        super::$case(store.clone()).await;
                        store.close().await;
                    }
                )*
            }
            mod postgres {
                $(
                    #[tokio::test]
                    async fn $case() {
                        super::with_postgres_database(
                            concat!("abuse::retention::postgres::", stringify!($case)),
                            |url| async move {
                                let store = super::Store::connect(&url).await.unwrap();
                                super::$case(store.clone()).await;
                                store.close().await;
                            },
                        )
                        .await;
                    }
                )*
            }
        };
    }

    on_both_backends!(
        history_is_purged_by_age_and_count_and_numbering_goes_on,
        history_pages_keep_to_their_byte_budget,
    );
}
