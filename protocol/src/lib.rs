//! The Roomscale room protocol: wire types and codecs shared by the server, the
//! native app and (through generated TypeScript) the browser client.
//!
//! The crate performs no I/O, spawns nothing and never reads a clock: it turns
//! bytes into typed values and back, and checks that values are legal. It builds
//! for any target the app ships on.
//!
//! Layers, from the bytes up:
//! - [`frame`]: Phoenix Channels v2 frames, text (`[join_ref, ref, topic, event,
//!   payload]`) and binary (push, reply, broadcast), byte-for-byte as phoenix.js
//!   encodes them.
//! - [`events`]: the typed room events carried in those frames, with validation.
//! - [`presence`]: presence state and diffs in the shape phoenix.js `Presence` consumes.
//! - [`pose`]: the quantized avatar pose (31 bytes) and pose batches.
//! - [`version`]: the protocol version and the compatibility check.
//! - [`server_event`]: every message the server sends on a room channel, as
//!   one type the server encodes and clients parse.
//! - [`objects`]: shared objects: resting state, holders, the 14-byte object pose.
//! - [`names`]: display names and chat text people see, and the per-user tag.

pub mod events;
pub mod frame;
pub mod limits;
pub mod names;
pub mod objects;
pub mod pose;
pub mod presence;
pub mod server_event;
pub mod typescript;
pub mod version;

pub use version::{PROTOCOL_VERSION, SUPPORTED_VERSIONS, check_version};

/// The topic that carries socket-level control messages (heartbeats).
pub const PHOENIX_TOPIC: &str = "phoenix";
/// Prefix of every room topic: `room:<room uuid>`.
pub const ROOM_TOPIC_PREFIX: &str = "room:";

/// The room id inside a room topic, or `None` when the topic is not a room
/// topic. Only the canonical spelling counts: `room:` and a lowercase,
/// hyphenated UUID. Other spellings of the same id (upper case, braces, `urn:`)
/// would name the same room under another topic, and clients drop broadcasts
/// whose topic they did not join.
pub fn room_id_from_topic(topic: &str) -> Option<&str> {
    topic
        .strip_prefix(ROOM_TOPIC_PREFIX)
        .filter(|id| is_canonical_uuid(id))
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in lowercase hex digits.
pub fn is_canonical_uuid(id: &str) -> bool {
    id.len() == 36
        && id.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

/// The topic of the room with this id.
pub fn room_topic(room_id: &str) -> String {
    format!("{ROOM_TOPIC_PREFIX}{room_id}")
}
