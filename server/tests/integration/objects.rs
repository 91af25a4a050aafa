//! Shared objects over a real WebSocket: the starter props of a new room, a
//! grab, its streamed poses, a release and the stored rest as a second member
//! sees them, a closed page letting go, objects across a server restart, and
//! bad object input answered without losing anything.

use std::time::{Duration, Instant};

use roomscale_protocol::objects::{
    ObjectPose, ObjectPoseFlags, ObjectState, encode_object_pose, encode_pose_push,
};
use roomscale_protocol::pose::{self, POSITION_ERROR_BOUND_M};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::common::TestServer;
use crate::common::process::ServerProcess;
use crate::common::ws::{AdaAndBo, TestSocket, assert_ok, assert_refused, socket_at};
use crate::socket::sample_pose;

fn topic(room_id: &str) -> String {
    format!("room:{room_id}")
}

/// The join reply's objects by id: (handle, state, holder).
fn objects_of(reply: &Value) -> Vec<(String, u64, ObjectState, Value)> {
    reply["objects"]
        .as_array()
        .expect("the join reply lists objects")
        .iter()
        .map(|o| {
            (
                o["object_id"].as_str().unwrap().to_string(),
                o["handle"].as_u64().unwrap(),
                ObjectState::from_value(&o["state"]).unwrap(),
                o.get("holder").cloned().unwrap_or(Value::Null),
            )
        })
        .collect()
}

fn handle_of(reply: &Value, object_id: &str) -> u16 {
    objects_of(reply)
        .into_iter()
        .find(|(id, ..)| id == object_id)
        .unwrap_or_else(|| panic!("{object_id} in {reply}"))
        .1 as u16
}

/// A pose push: the avatar at `x`, holding object `handle` at `position`.
fn push_with_object(x: f32, handle: u16, position: [f32; 3]) -> Vec<u8> {
    let object = encode_object_pose(&ObjectPose {
        handle,
        flags: ObjectPoseFlags(ObjectPoseFlags::HELD),
        position,
        orientation: [0.0, 0.0, 0.0, 1.0],
    });
    encode_pose_push(&pose::encode_pose(0, &sample_pose(x)), &[object])
}

/// The next batch carrying object `handle`: its position.
async fn object_in_batches(socket: &mut TestSocket, handle: u16) -> [f32; 3] {
    loop {
        let payload = socket.expect_poses().await;
        let batch = pose::decode_batch(&payload).unwrap();
        if let Some(object) = batch.objects().find(|o| o.handle == handle) {
            return object.position;
        }
    }
}

fn state_at(kind: &str, position: [f32; 3]) -> Value {
    json!({"kind": kind, "colour": "#22aa44", "position": position, "orientation": [0, 0, 0, 1]})
}

/// Ada and Bo joined to a new room named `room_name`, and the handle of
/// `object_id` there as Ada's join reply gives it.
async fn ada_and_bo_with(server: &TestServer, room_name: &str, object_id: &str) -> (AdaAndBo, u16) {
    let topic = topic(&server.create_room(room_name).await);
    let mut ada = server.socket("Ada").await;
    let (ada_ref, reply) = ada.join_ok(&topic, "Ada").await;
    let handle = handle_of(&reply, object_id);
    let mut bo = server.socket("Bo").await;
    let (bo_ref, _) = bo.join_ok(&topic, "Bo").await;
    let members = AdaAndBo {
        topic,
        ada,
        ada_ref,
        bo,
        bo_ref,
    };
    (members, handle)
}

/// The member on `socket` asks `event` ("object_grab", "object_release")
/// about `object_id`: the reply.
async fn ask(
    socket: &mut TestSocket,
    join_ref: &str,
    room: &str,
    event: &str,
    object_id: &str,
) -> (String, Value) {
    socket
        .request(Some(join_ref), room, event, json!({"object_id": object_id}))
        .await
}

/// The member on `socket` holds object `handle` at `position`, its avatar at
/// the origin: one pose push.
async fn carry(
    socket: &mut TestSocket,
    join_ref: &str,
    room: &str,
    handle: u16,
    position: [f32; 3],
) {
    let push = push_with_object(0.0, handle, position);
    socket.push_binary(join_ref, room, "pose", &push).await;
}

#[tokio::test]
async fn a_new_room_starts_with_the_starter_props_on_the_table() {
    let server = TestServer::start().await;
    let room = topic(&server.create_room("Props").await);
    let mut ada = server.socket("Ada").await;
    let (_, reply) = ada.join_ok(&room, "Ada").await;
    let objects = objects_of(&reply);
    let mut expected: Vec<_> = roomscale_physics::starter_props();
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    let listed: Vec<_> = objects
        .iter()
        .map(|(id, _, state, _)| (id.clone(), state.clone()))
        .collect();
    assert_eq!(listed, expected);
    for id in ["cube-1", "cube-2", "ball-1", "ball-2", "marker-1"] {
        assert!(listed.iter().any(|(i, _)| i == id), "{id} in {listed:?}");
    }
    let mut handles: Vec<_> = objects.iter().map(|o| o.1).collect();
    handles.sort_unstable();
    handles.dedup();
    assert_eq!(handles.len(), objects.len(), "one handle each");
    assert!(objects.iter().all(|o| o.3.is_null()), "nobody holds them");
}

#[tokio::test]
async fn a_grab_its_poses_a_release_and_the_rest_reach_the_other_member() {
    let server = TestServer::start().await;
    let (members, handle) = ada_and_bo_with(&server, "Catch", "cube-1").await;
    let (room, mut ada, ada_ref, mut bo, bo_ref) = members.into_parts();

    let grabbed = assert_ok(ask(&mut ada, &ada_ref, &room, "object_grab", "cube-1").await);
    assert_eq!(grabbed["handle"], handle);
    let holder = bo.expect_event("object_holder").await;
    assert_eq!(holder["object_id"], "cube-1");
    assert_eq!(holder["holder"]["user_id"], ada.user_id.as_str());
    assert_eq!(holder["holder"]["throwing"], false);

    // Bo's grab while Ada holds it is refused, naming Ada.
    let refusal = assert_refused(
        ask(&mut bo, &bo_ref, &room, "object_grab", "cube-1").await,
        "object_held",
        "Ada",
    );
    assert_eq!(refusal["holder"]["user_id"], ada.user_id.as_str());

    // Ada carries it: Bo sees it move in the pose batches.
    for x in [0.2f32, 0.4, 0.6] {
        carry(&mut ada, &ada_ref, &room, handle, [x, 1.2, -1.0]).await;
        let seen = object_in_batches(&mut bo, handle).await;
        assert!(
            (seen[0] - x).abs() <= POSITION_ERROR_BOUND_M && (seen[1] - 1.2).abs() < 0.001,
            "{seen:?} for {x}"
        );
    }

    assert_ok(ask(&mut ada, &ada_ref, &room, "object_release", "cube-1").await);
    let thrown = bo.expect_event("object_holder").await;
    assert_eq!(thrown["holder"]["throwing"], true);

    // The flight ends where it rests: stored, then everyone hears it.
    let rest = state_at("cube", [0.6, 0.05, -0.8]);
    let stored = assert_ok(
        ada.request(
            Some(&ada_ref),
            &room,
            "object_set",
            json!({"object_id": "cube-1", "state": rest}),
        )
        .await,
    );
    let event = bo.expect_event("event").await;
    assert_eq!(event["id"], stored["id"]);
    assert_eq!(event["body"]["type"], "object_set");
    assert_eq!(event["body"]["object_id"], "cube-1");
    assert_eq!(event["user_id"], ada.user_id.as_str());

    // Free again: Bo takes it.
    let caught = assert_ok(ask(&mut bo, &bo_ref, &room, "object_grab", "cube-1").await);
    assert_eq!(caught["handle"], handle);
    let mut cy = server.socket("Cy").await;
    let (_, cy_reply) = cy.join_ok(&room, "Cy").await;
    let cube = objects_of(&cy_reply)
        .into_iter()
        .find(|o| o.0 == "cube-1")
        .unwrap();
    assert_eq!(cube.2, ObjectState::from_value(&rest).unwrap());
    assert_eq!(cube.3["user_id"], bo.user_id.as_str());
}

#[tokio::test]
async fn a_page_closed_while_holding_lets_go_within_3_s() {
    let server = TestServer::start().await;
    let (members, handle) = ada_and_bo_with(&server, "Dropped", "ball-1").await;
    let (room, mut ada, ada_ref, mut bo, bo_ref) = members.into_parts();
    assert_ok(ask(&mut ada, &ada_ref, &room, "object_grab", "ball-1").await);
    bo.expect_event("object_holder").await;
    carry(&mut ada, &ada_ref, &room, handle, [2.0, 1.4, 0.5]).await;
    object_in_batches(&mut bo, handle).await;

    // The page goes away without a word.
    drop(ada);
    let closed = Instant::now();
    let dropped = bo.expect_event("object_holder").await;
    assert!(dropped.get("holder").is_none(), "{dropped}");
    let event = bo.expect_event("event").await;
    let released_after = closed.elapsed();
    assert!(
        released_after < Duration::from_secs(3),
        "released after {released_after:?}"
    );
    assert_eq!(event["body"]["object_id"], "ball-1");
    let rest = ObjectState::from_value(&event["body"]["state"]).unwrap();
    assert!(
        (rest.position[0] - 2.0).abs() < 0.01 && rest.position[1] < 0.1,
        "dropped where it was held, onto the floor: {:?}",
        rest.position
    );
    assert_ok(ask(&mut bo, &bo_ref, &room, "object_grab", "ball-1").await);
}

#[cfg(unix)] // Stops the server with SIGTERM.
#[tokio::test]
async fn objects_stay_where_they_rest_across_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), None).await;
    let (topic, token, user_id) = server.room_and_visitor("Kept", "Ada").await;
    let mut ada = socket_at(server.addr, &token, &user_id).await;
    let (join_ref, _) = ada.join_ok(&topic, "Ada").await;
    let moved = state_at("cube", [1.5, 0.05, 2.5]);
    let spawned = state_at("ball", [-2.0, 0.06, 1.0]);
    for (event, payload) in [
        ("object_set", json!({"object_id": "cube-1", "state": moved})),
        (
            "object_set",
            json!({"object_id": "ball-9", "state": spawned}),
        ),
        ("object_remove", json!({"object_id": "marker-1"})),
    ] {
        assert_ok(ada.request(Some(&join_ref), &topic, event, payload).await);
    }
    let (_, before) = ada.join_ok(&topic, "Ada").await;
    let before = objects_of(&before);
    drop(ada);
    server.signal("TERM").await;

    let server = ServerProcess::start(dir.path(), None).await;
    let mut ada = socket_at(server.addr, &token, &user_id).await;
    let (_, after) = ada.join_ok(&topic, "Ada").await;
    let after = objects_of(&after);
    let states = |objects: &[(String, u64, ObjectState, Value)]| {
        objects
            .iter()
            .map(|(id, _, state, _)| (id.clone(), state.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(states(&after), states(&before));
    let find = |id: &str| after.iter().find(|o| o.0 == id).map(|o| o.2.clone());
    assert_eq!(
        find("cube-1"),
        Some(ObjectState::from_value(&moved).unwrap())
    );
    assert_eq!(
        find("ball-9"),
        Some(ObjectState::from_value(&spawned).unwrap())
    );
    assert_eq!(find("marker-1"), None, "removed for good");
    server.signal("TERM").await;
}

#[tokio::test]
async fn bad_object_input_is_answered_with_a_reason_and_loses_nothing() {
    let server = TestServer::start().await;
    let room = topic(&server.create_room("Bad input").await);
    let mut ada = server.socket("Ada").await;
    let (ada_ref, reply) = ada.join_ok(&room, "Ada").await;
    let objects = objects_of(&reply);
    let handle = handle_of(&reply, "cube-2");

    for (event, payload, reason) in [
        (
            "object_grab",
            json!({"object_id": "a b"}),
            "object_id must be",
        ),
        ("object_remove", json!({}), "object_id"),
        (
            "object_set",
            json!({"object_id": "cube-1", "state": state_at("cube", [40.0, 0.0, 0.0])}),
            "inside the room",
        ),
        (
            "object_set",
            json!({"object_id": "cube-1", "state": {"kind": "anvil"}}),
            "state must be",
        ),
        (
            "object_set",
            json!({"object_id": "cube-1", "state": {"kind": "cube", "colour": "#ffffff",
                   "position": [0, 1, 0], "orientation": [0, 0, 0, 1],
                   "note": "x".repeat(9000)}}),
            "state",
        ),
    ] {
        assert_refused(
            ada.request(Some(&ada_ref), &room, event, payload.clone())
                .await,
            "invalid_payload",
            reason,
        );
    }
    // A release of what nobody holds, and a grab of what is not there.
    assert_refused(
        ask(&mut ada, &ada_ref, &room, "object_release", "cube-1").await,
        "forbidden",
        "grab it first",
    );
    assert_refused(
        ask(&mut ada, &ada_ref, &room, "object_grab", "anvil-1").await,
        "object_not_found",
        "anvil-1",
    );

    // A pose push with three objects, and one with a stray byte.
    let avatar = pose::encode_pose(0, &sample_pose(0.0));
    for (msg_ref, len) in [("90", 31 + 3 * 14), ("91", 31 + 14 + 1)] {
        let mut payload = avatar.to_vec();
        payload.resize(len, 0);
        let mut out = Vec::new();
        roomscale_protocol::frame::encode_client_push(
            &mut out, &ada_ref, msg_ref, &room, "pose", &payload,
        )
        .unwrap();
        ada.send_raw(Message::binary(out)).await;
        assert_refused(
            ada.expect_reply(msg_ref).await,
            "invalid_payload",
            "up to 2 object poses",
        );
    }
    // Poses of an object nobody holds are ignored and counted.
    carry(&mut ada, &ada_ref, &room, handle, [5.0, 1.0, 0.0]).await;

    // Still connected, and nothing changed.
    assert_ok(
        ada.request(Some(&ada_ref), &room, "chat", json!({"text": "still here"}))
            .await,
    );
    let mut bo = server.socket("Bo").await;
    let (_, bo_reply) = bo.join_ok(&room, "Bo").await;
    assert_eq!(objects_of(&bo_reply), objects);
    let events = bo_reply["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "only the chat was stored: {events:?}");
    assert!(server.state.metrics.object_poses_ignored.get() >= 1);
}
