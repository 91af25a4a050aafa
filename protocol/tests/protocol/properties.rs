//! Property tests: every codec round-trips, and decoding arbitrary bytes returns
//! a value or a typed error, never a panic.

use proptest::prelude::*;
use roomscale_protocol::events::{ClientEvent, RoomEvent, RoomEventBody};
use roomscale_protocol::frame;
use roomscale_protocol::pose::{self, AvatarPose, Joint, PoseFlags};
use roomscale_protocol::server_event::ServerMessage;
use serde_json::{Value, json};

/// Any JSON, a few levels deep, with the field names server payloads use.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[a-z_]{0,8}".prop_map(Value::String),
        prop::sample::select(vec!["ok", "error", "chat", "u-1", "mute"]).prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "status", "response", "code", "reason", "user_id", "speaking", "sdp", "joins",
                    "leaves", "metas", "id", "body", "type", "text", "tracks",
                ]),
                inner,
                0..5,
            )
            .prop_map(|map| Value::Object(
                map.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}

fn unit_quaternion() -> impl Strategy<Value = [f32; 4]> {
    // Normalising a vector drawn from a cube covers every orientation; include
    // the axes and 45-degree cases where smallest-three picks ties.
    prop_oneof![
        prop::array::uniform4(-1.0f32..1.0).prop_filter_map("non-zero", |q| {
            let n = q.iter().map(|c| c * c).sum::<f32>().sqrt();
            (n > 1e-3).then(|| q.map(|c| c / n))
        }),
        prop::sample::select(vec![
            [0.0, 0.0, 0.0, 1.0],
            [0.0, 0.0, 0.0, -1.0],
            [1.0, 0.0, 0.0, 0.0],
            [0.5, 0.5, 0.5, 0.5],
            [0.70710677, 0.70710677, 0.0, 0.0],
            [0.0, -0.70710677, 0.0, 0.70710677],
        ]),
    ]
}

fn joint_near(head: [f32; 3]) -> impl Strategy<Value = Joint> {
    let r = pose::HAND_RANGE_M - 0.001;
    (prop::array::uniform3(-r..r), unit_quaternion()).prop_map(move |(offset, orientation)| Joint {
        position: [
            head[0] + offset[0],
            head[1] + offset[1],
            head[2] + offset[2],
        ],
        orientation,
    })
}

fn avatar_pose() -> impl Strategy<Value = AvatarPose> {
    let r = pose::HEAD_RANGE_M - pose::HAND_RANGE_M;
    (prop::array::uniform3(-r..r), unit_quaternion(), 0u8..16).prop_flat_map(
        |(head_position, head_orientation, flags)| {
            (joint_near(head_position), joint_near(head_position)).prop_map(move |(left, right)| {
                AvatarPose {
                    head: Joint {
                        position: head_position,
                        orientation: head_orientation,
                    },
                    left,
                    right,
                    flags: PoseFlags(flags),
                }
            })
        },
    )
}

fn assert_within_bounds(original: &AvatarPose, decoded: &AvatarPose) {
    for (a, b) in [
        (original.head, decoded.head),
        (original.left, decoded.left),
        (original.right, decoded.right),
    ] {
        for axis in 0..3 {
            let error = (a.position[axis] - b.position[axis]).abs();
            // f32 spacing near 500 m is 3e-5 m: the bound already allows for it.
            assert!(
                error <= pose::POSITION_ERROR_BOUND_M,
                "position error {error} m > bound at {a:?} -> {b:?}"
            );
        }
        let angle = pose::angle_between(a.orientation, b.orientation);
        assert!(
            angle <= pose::ANGLE_ERROR_BOUND_RAD,
            "angle error {} deg > bound at {:?} -> {:?}",
            angle.to_degrees(),
            a.orientation,
            b.orientation
        );
        let norm: f32 = b.orientation.iter().map(|c| c * c).sum();
        assert!(
            (norm - 1.0).abs() < 1e-5,
            "decoded quaternion not unit: {norm}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn poses_round_trip_within_the_stated_bound(slot in any::<u16>(), pose in avatar_pose()) {
        let bytes = pose::encode_pose(slot, &pose);
        let (decoded_slot, decoded) = pose::decode_pose(&bytes).unwrap();
        prop_assert_eq!(decoded_slot, slot);
        prop_assert_eq!(decoded.flags, pose.flags);
        assert_within_bounds(&pose, &decoded);
    }

    #[test]
    fn any_31_bytes_decode_to_a_legal_pose(bytes in prop::collection::vec(any::<u8>(), 31)) {
        let (_, decoded) = pose::decode_pose(&bytes).unwrap();
        for joint in [decoded.head, decoded.left, decoded.right] {
            prop_assert!(joint.position.iter().all(|c| c.is_finite()));
            let norm: f32 = joint.orientation.iter().map(|c| c * c).sum();
            prop_assert!((norm - 1.0).abs() < 1e-4, "norm {}", norm);
        }
    }

    #[test]
    fn batches_round_trip(poses in prop::collection::vec((any::<u16>(), avatar_pose()), 0..40), time in any::<u32>()) {
        let encoded: Vec<_> = poses.iter().map(|(slot, p)| pose::encode_pose(*slot, p)).collect();
        let mut out = Vec::new();
        pose::encode_batch(&mut out, time, encoded.iter());
        let batch = pose::decode_batch(&out).unwrap();
        prop_assert_eq!(batch.server_time_ms, time);
        prop_assert_eq!(batch.len(), poses.len());
        for ((slot, original), (decoded_slot, decoded)) in poses.iter().zip(batch.iter()) {
            prop_assert_eq!(*slot, decoded_slot);
            assert_within_bounds(original, &decoded);
        }
    }

    #[test]
    fn batch_decoding_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(batch) = pose::decode_batch(&bytes) {
            prop_assert_eq!(batch.iter().count(), batch.len());
        }
    }

    #[test]
    fn binary_frames_round_trip(
        join_ref in "[0-9]{0,8}", msg_ref in "[0-9]{0,8}",
        topic in "[a-z:0-9-]{1,60}", event in "[a-z_]{1,20}",
        payload in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut out = Vec::new();
        frame::encode_client_push(&mut out, &join_ref, &msg_ref, &topic, &event, &payload).unwrap();
        let push = frame::decode_client_binary(&out).unwrap();
        prop_assert_eq!((push.join_ref, push.msg_ref, push.topic, push.event, push.payload),
                        (&join_ref[..], &msg_ref[..], &topic[..], &event[..], &payload[..]));

        for kind in 0..3 {
            out.clear();
            match kind {
                0 => frame::encode_server_push(&mut out, &join_ref, &topic, &event, &payload).unwrap(),
                1 => frame::encode_reply(&mut out, &join_ref, &msg_ref, &topic, "ok", &payload).unwrap(),
                _ => frame::encode_broadcast(&mut out, &topic, &event, &payload).unwrap(),
            }
            let decoded = frame::decode_server_binary(&out).unwrap();
            let (t, p) = match decoded {
                frame::ServerBinary::Push { topic, payload, .. }
                | frame::ServerBinary::Reply { topic, payload, .. }
                | frame::ServerBinary::Broadcast { topic, payload, .. } => (topic, payload),
            };
            prop_assert_eq!((t, p), (&topic[..], &payload[..]));
        }
    }

    #[test]
    fn frame_decoding_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = frame::decode_client_binary(&bytes);
        let _ = frame::decode_server_binary(&bytes);
        let _ = frame::decode_text(&String::from_utf8_lossy(&bytes));
        let _ = ServerMessage::decode_binary(&bytes);
        let _ = ServerMessage::decode_text(&String::from_utf8_lossy(&bytes));
    }

    /// Well-formed frames of every server event name with arbitrary JSON
    /// payloads: typed or refused, never a panic.
    #[test]
    fn server_messages_of_any_payload_never_panic(
        event in prop::sample::select(vec![
            "phx_reply", "presence_state", "presence_diff", "event", "speaking", "moderation",
            "rtc_offer", "rtc_ice", "voice_tracks", "poses", "phx_error", "phx_close", "other",
        ]),
        msg_ref in proptest::option::of("[0-9]{1,3}"),
        payload in json_value(),
    ) {
        let text = frame::encode_text_parts(None, msg_ref.as_deref(), "room:x", event, &payload);
        if let Ok(message) = ServerMessage::decode_text(&text) {
            // What reads back encodes again.
            prop_assert!(message.event.encode("room:x", None).is_ok());
        }
    }

    #[test]
    fn text_frames_round_trip(
        join_ref in proptest::option::of("[0-9]{1,6}"), msg_ref in proptest::option::of("[0-9]{1,6}"),
        topic in "room:[a-f0-9-]{1,36}", text in "\\PC{1,200}",
    ) {
        prop_assume!(!text.trim().is_empty());
        // Text with invisible formatting characters is refused, and is
        // checked in names.rs; the round trip is about everything else.
        prop_assume!(!text.chars().any(roomscale_protocol::names::is_invisible_control));
        let event = ClientEvent::parse("chat", json!({"text": text})).unwrap();
        let encoded = frame::encode_text_parts(join_ref.as_deref(), msg_ref.as_deref(), &topic, event.name(), &event.payload());
        let decoded = frame::decode_text(&encoded).unwrap();
        prop_assert_eq!(decoded.join_ref, join_ref);
        prop_assert_eq!(decoded.msg_ref, msg_ref);
        prop_assert_eq!(ClientEvent::parse(&decoded.event, decoded.payload).unwrap(), event);
    }

    #[test]
    fn room_events_round_trip(id in any::<u64>(), sent_at in any::<i64>(), text in "\\PC{1,100}", object in "[a-z0-9._-]{1,64}") {
        for body in [
            RoomEventBody::Chat { text: text.clone() },
            RoomEventBody::ObjectSet { object_id: object.clone(), state: json!({"n": id, "s": text}) },
            RoomEventBody::ObjectRemove { object_id: object.clone() },
        ] {
            let event = RoomEvent { id, user_id: "u".into(), name: "n".into(), sent_at, body };
            let json = serde_json::to_string(&event).unwrap();
            prop_assert_eq!(serde_json::from_str::<RoomEvent>(&json).unwrap(), event);
        }
    }
}
