//! Frames captured from phoenix.js (`protocol/vectors/frames.json`, made by
//! `phoenix-frames.mjs`) and pose encodings (`protocol/vectors/poses.json`,
//! made here, checked by the browser client's tests).

use roomscale_protocol::events::{
    ClientEvent, EmptyReply, HistoryPage, JoinReply, SessionDescription, StoredReply,
};
use roomscale_protocol::frame::{self, ClientBinaryPush, ServerBinary, TextFrame};
use roomscale_protocol::pose::{self, AvatarPose, Joint, PoseFlags};
use roomscale_protocol::server_event::{ServerEvent, ServerFrame, ServerMessage};
use serde_json::{Value, json};
use std::f32::consts::FRAC_1_SQRT_2;

use crate::{hex, unhex};

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors");

fn load(name: &str) -> Value {
    let path = format!("{VECTORS}/{name}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn opt(value: &Value) -> Option<&str> {
    value.as_str()
}

#[test]
fn phoenix_js_frames_decode_and_reencode_byte_for_byte() {
    let vectors = load("frames.json");
    let frames = vectors["frames"].as_array().unwrap();
    assert!(frames.len() >= 10, "too few vectors");
    // Every message the server sends has a vector phoenix.js read.
    let mut server_events = std::collections::BTreeSet::new();
    for vector in frames.iter().filter(|v| v["direction"] == "to_client") {
        let message = match vector["encoding"].as_str() {
            Some("text") => ServerMessage::decode_text(vector["frame"].as_str().unwrap()),
            _ => ServerMessage::decode_binary(&unhex(vector["frame_hex"].as_str().unwrap())),
        };
        server_events.insert(message.unwrap().event.name());
    }
    assert_eq!(
        server_events.into_iter().collect::<Vec<_>>(),
        [
            "event",
            "moderation",
            "phx_close",
            "phx_error",
            "phx_reply",
            "poses",
            "presence_diff",
            "presence_state",
            "rtc_ice",
            "rtc_offer",
            "speaking",
            "voice_tracks"
        ]
    );
    for vector in frames {
        let name = vector["name"].as_str().unwrap();
        let message = &vector["message"];
        match (vector["direction"].as_str(), vector["encoding"].as_str()) {
            (Some("to_server"), Some("text")) => {
                check_text(name, vector["frame"].as_str().unwrap(), message);
                check_client_event(name, vector["frame"].as_str().unwrap());
            }
            (Some("to_client"), Some("text")) => {
                check_text(name, vector["frame"].as_str().unwrap(), message);
                check_server_event(name, vector["frame"].as_str().unwrap());
            }
            (Some("to_server"), Some("binary")) => {
                check_client_binary(name, &unhex(vector["frame_hex"].as_str().unwrap()), message)
            }
            (Some("to_client"), Some("binary")) => {
                check_server_binary(name, &unhex(vector["frame_hex"].as_str().unwrap()), message)
            }
            other => panic!("{name}: unknown vector kind {other:?}"),
        }
    }
}

fn check_text(name: &str, text: &str, message: &Value) {
    let decoded = frame::decode_text(text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let expected = TextFrame {
        join_ref: opt(&message["join_ref"]).map(String::from),
        msg_ref: opt(&message["ref"]).map(String::from),
        topic: message["topic"].as_str().unwrap().into(),
        event: message["event"].as_str().unwrap().into(),
        payload: message["payload"].clone(),
    };
    assert_eq!(decoded, expected, "{name}");
    assert_eq!(
        frame::encode_text(&decoded),
        text,
        "{name}: re-encoding differs"
    );
}

/// Typed round trip of a client push: parse into our types and encode from them.
fn check_client_event(name: &str, text: &str) {
    let decoded = frame::decode_text(text).unwrap();
    let payload = match decoded.event.as_str() {
        "phx_join" | "phx_leave" | "heartbeat" | "chat" | "object_set" | "rtc_ice" => {
            ClientEvent::parse(&decoded.event, decoded.payload.clone())
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .payload()
        }
        other => panic!("{name}: no client push \"{other}\""),
    };
    let reencoded = frame::encode_text_parts(
        decoded.join_ref.as_deref(),
        decoded.msg_ref.as_deref(),
        &decoded.topic,
        &decoded.event,
        &payload,
    );
    assert_eq!(reencoded, text, "{name}: typed re-encoding differs");
}

/// Typed round trip of a server message: the client reads it as a
/// [`ServerEvent`], and the server, encoding that event for the same channel,
/// writes the very frame phoenix.js read.
fn check_server_event(name: &str, text: &str) {
    let message = ServerMessage::decode_text(text).unwrap_or_else(|e| panic!("{name}: {e}"));
    if let ServerEvent::Reply(reply) = &message.event {
        // The vector's name says which push the reply answers.
        let reply = reply.clone();
        let read = match name {
            "join_reply" => reply.read::<JoinReply>().map(drop),
            "stored_reply" => reply.read::<StoredReply>().map(drop),
            "history_reply" => reply.read::<HistoryPage>().map(drop),
            "rtc_answer_reply" => reply.read::<SessionDescription>().map(drop),
            _ => reply.read::<EmptyReply>().map(drop),
        };
        read.unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let reencoded = message
        .event
        .encode(&message.topic, message.join_ref.as_deref())
        .unwrap();
    assert_eq!(
        reencoded,
        ServerFrame::Text(text.to_string()),
        "{name}: typed re-encoding differs"
    );
}

fn check_client_binary(name: &str, bytes: &[u8], message: &Value) {
    let push = frame::decode_client_binary(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    let payload = unhex(message["payload_hex"].as_str().unwrap());
    assert_eq!(
        push,
        ClientBinaryPush {
            join_ref: message["join_ref"].as_str().unwrap(),
            msg_ref: message["ref"].as_str().unwrap(),
            topic: message["topic"].as_str().unwrap(),
            event: message["event"].as_str().unwrap(),
            payload: &payload,
        },
        "{name}"
    );
    let mut out = Vec::new();
    frame::encode_client_push(
        &mut out,
        push.join_ref,
        push.msg_ref,
        push.topic,
        push.event,
        push.payload,
    )
    .unwrap();
    assert_eq!(hex(&out), hex(bytes), "{name}: re-encoding differs");
}

fn check_server_binary(name: &str, bytes: &[u8], message: &Value) {
    let typed = ServerMessage::decode_binary(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    match &typed.event {
        ServerEvent::Poses(batch) => {
            assert_eq!(
                hex(batch.as_bytes()),
                message["payload_hex"].as_str().unwrap()
            );
            if typed.join_ref.is_none() {
                let reencoded = typed.event.encode(&typed.topic, None).unwrap();
                assert_eq!(reencoded, ServerFrame::Binary(bytes.to_vec()), "{name}");
            }
        }
        ServerEvent::Reply(reply) => {
            assert_eq!(reply.clone().read::<EmptyReply>(), Ok(Ok(EmptyReply {})));
        }
        other => panic!("{name}: a binary frame read as \"{}\"", other.name()),
    }
    let decoded = frame::decode_server_binary(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    let payload = unhex(message["payload_hex"].as_str().unwrap());
    let topic = message["topic"].as_str().unwrap();
    let mut out = Vec::new();
    match decoded {
        ServerBinary::Broadcast {
            topic: t,
            event,
            payload: p,
        } => {
            assert_eq!(
                (t, event, p),
                (topic, message["event"].as_str().unwrap(), &payload[..])
            );
            frame::encode_broadcast(&mut out, t, event, p).unwrap();
        }
        ServerBinary::Reply {
            join_ref,
            msg_ref,
            topic: t,
            status,
            payload: p,
        } => {
            assert_eq!(message["event"], "phx_reply", "{name}");
            assert_eq!(
                (join_ref, msg_ref, t, status, p),
                (
                    message["join_ref"].as_str().unwrap(),
                    message["ref"].as_str().unwrap(),
                    topic,
                    message["status"].as_str().unwrap(),
                    &payload[..]
                )
            );
            frame::encode_reply(&mut out, join_ref, msg_ref, t, status, p).unwrap();
        }
        ServerBinary::Push {
            join_ref,
            topic: t,
            event,
            payload: p,
        } => {
            assert_eq!(
                (join_ref, t, event, p),
                (
                    message["join_ref"].as_str().unwrap(),
                    topic,
                    message["event"].as_str().unwrap(),
                    &payload[..]
                )
            );
            frame::encode_server_push(&mut out, join_ref, t, event, p).unwrap();
        }
    }
    assert_eq!(hex(&out), hex(bytes), "{name}: re-encoding differs");
}

/// Poses whose encodings every implementation of the codec must reproduce.
fn pose_cases() -> Vec<(&'static str, u16, AvatarPose)> {
    let turn = |angle: f32, axis: [f32; 3]| {
        let (s, c) = (angle / 2.0).sin_cos();
        [axis[0] * s, axis[1] * s, axis[2] * s, c]
    };
    let joint = |position: [f32; 3], orientation: [f32; 4]| Joint {
        position,
        orientation,
    };
    vec![
        ("identity at origin", 0, AvatarPose::default()),
        (
            "standing, looking left, both controllers",
            7,
            AvatarPose {
                head: joint([0.25, 1.65, -1.5], turn(0.5, [0.0, 1.0, 0.0])),
                left: joint([0.05, 1.2, -1.8], turn(-0.3, [1.0, 0.0, 0.0])),
                right: joint([0.45, 1.1, -1.75], turn(1.2, [0.0, 0.0, 1.0])),
                flags: PoseFlags(PoseFlags::LEFT_TRACKED | PoseFlags::RIGHT_TRACKED),
            },
        ),
        (
            "far corner, hand tracking, negative w",
            65535,
            AvatarPose {
                head: joint([-300.123, 0.0015, 499.9994], [0.1, -0.2, 0.3, -0.927_361_8]),
                left: joint([-301.5, 0.5, 500.75], [0.5, 0.5, 0.5, 0.5]),
                right: joint(
                    [-299.0, 1.0, 499.0],
                    [-FRAC_1_SQRT_2, 0.0, 0.0, FRAC_1_SQRT_2],
                ),
                flags: PoseFlags(PoseFlags::LEFT_TRACKED | PoseFlags::HAND_TRACKING),
            },
        ),
        (
            "clamped: head beyond range, hand too far",
            12,
            AvatarPose {
                head: joint([900.0, -900.0, 1.0], [0.0, 0.0, 0.0, 1.0]),
                left: joint([0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]),
                right: joint([905.0, -897.0, 1.0], [0.0, 0.0, 1.0, 0.0]),
                flags: PoseFlags(PoseFlags::RIGHT_TRACKED),
            },
        ),
    ]
}

fn pose_json(slot: u16, pose: &AvatarPose) -> Value {
    let joint = |j: &Joint| json!({"position": j.position, "orientation": j.orientation});
    json!({"slot": slot, "flags": pose.flags.0, "head": joint(&pose.head),
           "left": joint(&pose.left), "right": joint(&pose.right)})
}

#[test]
fn pose_vectors_are_current() {
    let mut cases = Vec::new();
    for (name, slot, pose) in pose_cases() {
        let bytes = pose::encode_pose(slot, &pose);
        let (decoded_slot, decoded) = pose::decode_pose(&bytes).unwrap();
        cases.push(json!({"name": name, "input": pose_json(slot, &pose),
                          "encoded_hex": hex(&bytes), "decoded": pose_json(decoded_slot, &decoded)}));
    }
    let mut batch = Vec::new();
    let encoded: Vec<_> = pose_cases()
        .iter()
        .map(|(_, slot, pose)| pose::encode_pose(*slot, pose))
        .collect();
    pose::encode_batch(&mut batch, 987_654_321, encoded.iter());
    let generated = serde_json::to_string_pretty(&json!({
        "comment": "Generated by protocol/tests/protocol/vectors.rs (ROOMSCALE_BLESS=1 to rewrite); do not edit.",
        "poses": cases,
        "batch": {"server_time_ms": 987_654_321u32, "hex": hex(&batch)},
    }))
    .unwrap()
        + "\n";
    let path = format!("{VECTORS}/poses.json");
    if std::env::var_os("ROOMSCALE_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "protocol/vectors/poses.json is stale: run `cargo xtask codegen`, review and commit it"
    );
}
