//! Shared objects: props people pick up, hand over and throw.
//!
//! An object's *resting* state ([`ObjectState`]: kind, colour, pose) is the
//! `state` of a persisted `object_set` event; a stored `object_set` always
//! means "at rest, nobody holds it". While someone holds or throws it, the
//! server names its holder (`object_grab` is answered with the object's
//! [`ObjectGrabReply::handle`], everyone hears [`ObjectHolderPush`]) and the
//! holder streams its pose in the binary pose stream: each object pose is
//! [`OBJECT_POSE_BYTES`] = 14 bytes ([`crate::pose`] holds its codec), a
//! little-endian bit stream quantized like an avatar's head:
//!
//! | bits | field                                                       |
//! |------|-------------------------------------------------------------|
//! | 16   | handle: the room's short number for the object              |
//! | 4    | flags ([`ObjectPoseFlags`])                                 |
//! | 60   | position: 3 x 20-bit signed millimetres (+-524.287 m)       |
//! | 32   | orientation: smallest-three (2-bit index, 3 x 10 bits)      |
//!
//! A client's binary `pose` push is its 31-byte avatar pose followed by up to
//! [`MAX_OBJECTS_PER_POSE_PUSH`] object poses (one per hand, or a thrown
//! object in flight). A server batch carries them after the avatar poses (see
//! [`crate::pose`], batch format 2).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use ts_rs::TS;

// The object pose travels in the binary pose stream, so its codec lives
// with the avatar pose's.
pub use crate::pose::{
    MAX_OBJECTS_PER_POSE_PUSH, OBJECT_POSE_BYTES, ObjectPose, ObjectPoseFlags, PosePush,
    decode_object_pose, encode_object_pose, encode_pose_push, object_pose_handle,
};

/// `object_grab`: take hold of an object (refused while someone else holds it).
pub const OBJECT_GRAB_EVENT: &str = "object_grab";
/// `object_release`: let go of a held object; the holder now throws it and
/// streams its flight until it comes to rest with an `object_set`.
pub const OBJECT_RELEASE_EVENT: &str = "object_release";
/// `object_holder` (server push): who holds or throws an object now.
pub const OBJECT_HOLDER_EVENT: &str = "object_holder";

/// Most objects one room holds.
pub const MAX_OBJECTS_PER_ROOM: usize = 64;
/// How far from the room's centre an object may rest, per horizontal axis, in
/// metres (the floor's half size), and how high.
pub const OBJECT_HORIZONTAL_RANGE_M: f32 = 15.0;
pub const OBJECT_HEIGHT_RANGE_M: f32 = 10.0;
/// How long the server waits for a holder's object pose before it lets the
/// object drop where it was last seen, in milliseconds. Clients send a held
/// object's pose at least every [`OBJECT_KEEPALIVE_MS`] even when it is still.
pub const HOLD_SILENCE_MS: u64 = 2_000;
pub const OBJECT_KEEPALIVE_MS: u64 = 500;
/// The longest flight the server waits for before it settles a thrown object
/// itself, in milliseconds.
pub const MAX_FLIGHT_MS: u64 = 15_000;

/// What an object is; each client draws each kind the same size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    /// A 10 cm cube.
    Cube,
    /// A ball 12 cm across.
    Ball,
    /// A marker pen: a cylinder 2 cm across and 14 cm long along its local Y.
    Marker,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 3] = [ObjectKind::Cube, ObjectKind::Ball, ObjectKind::Marker];

    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Cube => "cube",
            ObjectKind::Ball => "ball",
            ObjectKind::Marker => "marker",
        }
    }
}

/// An object at rest: the `state` of an `object_set` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct ObjectState {
    pub kind: ObjectKind,
    /// `#rrggbb`.
    pub colour: String,
    /// Metres, room coordinates.
    pub position: [f32; 3],
    /// Unit quaternion `[x, y, z, w]`.
    pub orientation: [f32; 4],
}

impl ObjectState {
    /// Reads and checks the `state` of an `object_set`.
    pub fn from_value(value: &Value) -> Result<ObjectState, String> {
        let state = ObjectState::deserialize(value).map_err(|e| {
            format!(
                "state must be {{\"kind\": \"cube\"|\"ball\"|\"marker\", \"colour\": \"#rrggbb\", \
                 \"position\": [x, y, z], \"orientation\": [x, y, z, w]}}: {e}"
            )
        })?;
        state.validate()?;
        Ok(state)
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("a plain struct")
    }

    pub fn validate(&self) -> Result<(), String> {
        let colour = self.colour.as_bytes();
        if colour.len() != 7 || colour[0] != b'#' || !colour[1..].iter().all(u8::is_ascii_hexdigit)
        {
            return Err("colour must be #rrggbb".into());
        }
        let [x, y, z] = self.position;
        if !self.position.iter().all(|c| c.is_finite())
            || x.abs() > OBJECT_HORIZONTAL_RANGE_M
            || z.abs() > OBJECT_HORIZONTAL_RANGE_M
            || !(0.0..=OBJECT_HEIGHT_RANGE_M).contains(&y)
        {
            return Err(format!(
                "position must be inside the room: x and z within +-{OBJECT_HORIZONTAL_RANGE_M} m, \
                 y from 0 to {OBJECT_HEIGHT_RANGE_M} m"
            ));
        }
        let norm: f32 = self.orientation.iter().map(|c| c * c).sum();
        if !self.orientation.iter().all(|c| c.is_finite()) || (norm.sqrt() - 1.0).abs() > 0.01 {
            return Err("orientation must be a unit quaternion [x, y, z, w]".into());
        }
        Ok(())
    }
}

/// Who holds (or throws) an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ObjectHolder {
    pub user_id: String,
    pub name: String,
    /// The holder's member slot, as in pose batches.
    pub slot: u16,
    /// Released and flying: the holder simulates it until it rests.
    pub throwing: bool,
}

/// One object as a join reply lists it: its last resting state, its handle in
/// pose batches, and who holds it now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct ObjectSnapshot {
    pub object_id: String,
    pub handle: u16,
    pub state: ObjectState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub holder: Option<ObjectHolder>,
}

/// `object_grab` and `object_release` payloads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct ObjectGrabPush {
    pub object_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct ObjectReleasePush {
    pub object_id: String,
}

/// The reply to a granted `object_grab`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ObjectGrabReply {
    pub handle: u16,
}

/// `object_holder`: an object was grabbed (`holder` set, not throwing),
/// released into a throw (`throwing`), or let go of without a stored rest
/// (`holder` absent: the holder left mid-throw and the server is settling it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ObjectHolderPush {
    pub object_id: String,
    pub handle: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub holder: Option<ObjectHolder>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pose::{ANGLE_ERROR_BOUND_RAD, POSE_BYTES, POSITION_ERROR_BOUND_M, angle_between};

    #[test]
    fn object_poses_round_trip_within_the_avatar_bounds() {
        let pose = ObjectPose {
            handle: 513,
            flags: ObjectPoseFlags(ObjectPoseFlags::HELD),
            position: [-1.2345, 0.7771, 12.5],
            orientation: [0.1825742, 0.3651484, 0.5477226, 0.7302967],
        };
        let bytes = encode_object_pose(&pose);
        assert_eq!(object_pose_handle(&bytes), 513);
        let back = decode_object_pose(&bytes).unwrap();
        assert_eq!(back.handle, 513);
        assert!(back.flags.contains(ObjectPoseFlags::HELD));
        for (a, b) in back.position.iter().zip(pose.position) {
            assert!((a - b).abs() <= POSITION_ERROR_BOUND_M, "{a} vs {b}");
        }
        assert!(angle_between(back.orientation, pose.orientation) <= ANGLE_ERROR_BOUND_RAD);
    }

    #[test]
    fn pushes_carry_zero_to_two_objects_and_nothing_else() {
        let avatar = [7u8; POSE_BYTES];
        let object = [1u8; OBJECT_POSE_BYTES];
        for n in 0..=2 {
            let payload = encode_pose_push(&avatar, &vec![object; n]);
            let push = PosePush::parse(&payload).unwrap();
            assert_eq!(push.avatar, &avatar);
            assert_eq!(push.objects().len(), n);
        }
        assert!(PosePush::parse(&[0; POSE_BYTES - 1]).is_err());
        assert!(PosePush::parse(&[0; POSE_BYTES + 3]).is_err());
        assert!(PosePush::parse(&[0; POSE_BYTES + 3 * OBJECT_POSE_BYTES]).is_err());
    }

    #[test]
    fn states_are_checked() {
        let good = ObjectState {
            kind: ObjectKind::Cube,
            colour: "#ff8800".into(),
            position: [0.0, 0.8, -2.0],
            orientation: [0.0, 0.0, 0.0, 1.0],
        };
        assert_eq!(ObjectState::from_value(&good.to_value()).unwrap(), good);
        let mut far = good.clone();
        far.position[0] = 40.0;
        assert!(far.validate().unwrap_err().contains("inside the room"));
        let mut colour = good.clone();
        colour.colour = "red".into();
        assert!(colour.validate().is_err());
        let mut spin = good.clone();
        spin.orientation = [0.0, 0.0, 0.0, 2.0];
        assert!(spin.validate().is_err());
        assert!(ObjectState::from_value(&serde_json::json!({"kind": "anvil"})).is_err());
    }
}
