//! Size limits every side enforces. They live here so a client can refuse to send
//! what the server would refuse to accept.

/// Largest WebSocket frame (text or binary) either side accepts, in bytes.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Longest topic, event name or ref: binary frames store their sizes in one byte.
pub const MAX_HEADER_FIELD_BYTES: usize = 255;
/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 40;
/// Longest chat message, in characters.
pub const MAX_CHAT_CHARS: usize = 2_000;
/// Longest shared-object id, in bytes.
pub const MAX_OBJECT_ID_BYTES: usize = 64;
/// Largest shared-object state, serialized as JSON, in bytes.
pub const MAX_OBJECT_STATE_BYTES: usize = 8 * 1024;
/// Largest SDP offer or answer, in bytes.
pub const MAX_SDP_BYTES: usize = 32 * 1024;
/// Longest ICE candidate line, in bytes.
pub const MAX_ICE_CANDIDATE_BYTES: usize = 1_024;
/// Most persisted events a join reply replays; older history is fetched in pages.
pub const MAX_REPLAYED_EVENTS: usize = 500;
/// Most bytes of events (as JSON) a join reply or a history page carries: a
/// room with a long history still joins in one small frame.
pub const MAX_REPLAY_BYTES: usize = 48 * 1024;
/// Longest user id a client may name (in moderation acts), in bytes.
pub const MAX_USER_ID_BYTES: usize = 64;
/// How long a member removed by a moderator may not rejoin, in seconds.
pub const REMOVAL_BAN_SECONDS: u64 = 10 * 60;
