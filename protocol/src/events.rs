//! Typed room events: what travels inside the frames of [`crate::frame`].
//!
//! Client pushes are parsed with [`ClientEvent::parse`], which checks the event
//! name, the payload's schema (unknown fields are refused) and its legality
//! (lengths, colours, ranges). Server messages are plain serializable structs
//! whose event names are the `*_EVENT` constants;
//! [`crate::server_event::ServerEvent`] gathers them into one type.

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;
use thiserror::Error;
use ts_rs::TS;

use crate::frame::control;
use crate::limits::*;
pub use crate::objects::*;
pub use crate::presence::ClientKind;
use crate::presence::PresenceState;

/// Server -> client event names (besides the Phoenix control events).
pub const PRESENCE_STATE_EVENT: &str = "presence_state";
pub const PRESENCE_DIFF_EVENT: &str = "presence_diff";
/// A persisted room event ([`RoomEvent`]), broadcast after it is stored.
pub const ROOM_EVENT_EVENT: &str = "event";
/// A binary pose batch ([`crate::pose`]), once per tick.
pub const POSES_EVENT: &str = "poses";
pub const VOICE_TRACKS_EVENT: &str = "voice_tracks";
pub const SPEAKING_EVENT: &str = "speaking";
/// Client -> server: the sender's own pose, binary.
pub const POSE_EVENT: &str = "pose";
pub const CHAT_EVENT: &str = "chat";
pub const OBJECT_SET_EVENT: &str = "object_set";
pub const OBJECT_REMOVE_EVENT: &str = "object_remove";
pub const UPDATE_PROFILE_EVENT: &str = "update_profile";
pub const SET_MUTED_EVENT: &str = "set_muted";
/// WebRTC signaling, both directions.
pub const RTC_OFFER_EVENT: &str = "rtc_offer";
pub const RTC_ANSWER_EVENT: &str = "rtc_answer";
pub const RTC_ICE_EVENT: &str = "rtc_ice";
/// Client -> server: leave voice (the room stays joined).
pub const VOICE_LEAVE_EVENT: &str = "voice_leave";
/// Client -> server: a moderation act ([`ModeratePush`]), owner and moderators only.
pub const MODERATE_EVENT: &str = "moderate";
/// Client -> server: a page of older history ([`HistoryPush`] -> [`HistoryPage`]).
pub const HISTORY_EVENT: &str = "history";
/// Server -> client: a moderation act everyone sees ([`ModerationNotice`]).
pub const MODERATION_EVENT: &str = "moderation";

/// `phx_join` payload for `room:<id>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct JoinPayload {
    pub protocol_version: u32,
    pub name: String,
    /// `#rrggbb`.
    pub colour: String,
    pub client_kind: ClientKind,
    /// The id of the newest persisted event the client already has; the join
    /// reply then carries only newer ones. Absent on a first join.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "number")]
    pub last_seen_id: Option<u64>,
}

/// The `response` of a successful room join.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct JoinReply {
    pub user_id: String,
    /// This connection's slot: poses in batches are keyed by slot.
    pub slot: u16,
    pub protocol_version: u32,
    pub room: RoomSummary,
    /// Persisted events newer than `last_seen_id`, oldest first: the newest
    /// that fit in [`MAX_REPLAY_BYTES`] (and [`MAX_REPLAYED_EVENTS`]).
    pub events: Vec<RoomEvent>,
    /// True when older events newer than `last_seen_id` were left out: ask for
    /// them with `history` (`before_id` = the first event's id).
    pub truncated: bool,
    /// How often the server sends pose batches.
    pub pose_rate_hz: u32,
    /// Who runs the room and whether it is locked.
    pub governance: Governance,
    /// Every object in the room: where it rests and who holds it now. The
    /// truth about objects; `object_set` events in `events` are history.
    #[serde(default)]
    pub objects: Vec<ObjectSnapshot>,
}

/// Who may moderate a room, and whether it takes new joins.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Governance {
    /// The user who created the room; `None` for rooms made before rooms had
    /// owners (only the server's admin runs those).
    #[serde(default)]
    pub owner_user_id: Option<String>,
    /// Co-moderators the owner named (user ids).
    #[serde(default)]
    pub moderators: Vec<String>,
    /// A locked room refuses new joins; members already in stay.
    #[serde(default)]
    pub locked: bool,
}

impl Governance {
    /// True for the owner and the co-moderators.
    pub fn may_moderate(&self, user_id: &str) -> bool {
        self.owner_user_id.as_deref() == Some(user_id)
            || self.moderators.iter().any(|m| m == user_id)
    }

    pub fn is_owner(&self, user_id: &str) -> bool {
        self.owner_user_id.as_deref() == Some(user_id)
    }
}

/// A moderation act, as a moderator asks for it and as everyone is told of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModeratePush {
    /// Silence (or give back) someone's voice: the SFU stops forwarding it and
    /// the member cannot unmute itself.
    Mute { user_id: String, muted: bool },
    /// Remove someone from the room; they cannot rejoin for
    /// [`REMOVAL_BAN_SECONDS`].
    Remove { user_id: String },
    /// Lock (no new joins) or unlock the room.
    Lock { locked: bool },
    /// Name or unname a co-moderator (the owner only).
    Moderator { user_id: String, moderator: bool },
}

/// `moderation` payload: what was done, by whom, and the room's governance after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ModerationNotice {
    pub act: ModeratePush,
    pub by_user_id: String,
    pub by_name: String,
    /// The display name of the member the act was about, when there was one in the room.
    #[serde(default)]
    pub target_name: Option<String>,
    pub governance: Governance,
}

/// `history` push: events older than `before_id`, newest first in what fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct HistoryPush {
    #[ts(type = "number")]
    pub before_id: u64,
}

/// Reply to `history`: older events, oldest first, at most [`MAX_REPLAY_BYTES`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct HistoryPage {
    pub events: Vec<RoomEvent>,
    /// True when there are still older events.
    pub more: bool,
}

/// The payload of a `phx_close` the server sends on its own (the room was
/// deleted, the member was removed): why, in a code and a sentence.
pub type ClosePayload = ErrorReply;

/// A room as a join reply names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct RoomSummary {
    pub id: String,
    pub name: String,
    pub description: String,
}

/// The `response` of every error reply: a machine-readable code and a sentence
/// a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ErrorReply {
    pub code: ErrorCode,
    pub reason: String,
    /// Who holds the object, when a grab or change was refused for it
    /// (`object_held`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub holder: Option<ObjectHolder>,
}

impl ErrorReply {
    pub fn new(code: ErrorCode, reason: impl Into<String>) -> Self {
        ErrorReply {
            code,
            reason: reason.into(),
            holder: None,
        }
    }

    /// A refusal because someone else holds (or throws) the object.
    pub fn object_held(holder: ObjectHolder) -> Self {
        let doing = if holder.throwing {
            "has just thrown"
        } else {
            "is holding"
        };
        ErrorReply {
            code: ErrorCode::ObjectHeld,
            reason: format!("{} {doing} it; try again once they let go", holder.name),
            holder: Some(holder),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    UnsupportedVersion,
    RoomNotFound,
    RoomFull,
    UnknownTopic,
    UnknownEvent,
    InvalidPayload,
    NotJoined,
    AlreadyJoined,
    RateLimited,
    TooLarge,
    VoiceUnavailable,
    /// The act needs a right the sender lacks (moderation by a non-moderator).
    Forbidden,
    /// The room is locked: no new joins.
    RoomLocked,
    /// The member was removed from the room (and may not rejoin for a while).
    Removed,
    /// The room was deleted.
    RoomDeleted,
    /// A per-socket, per-user or per-address limit was reached.
    LimitReached,
    /// Someone else holds or throws the object (`holder` says who).
    ObjectHeld,
    /// No object with that id in this room.
    ObjectNotFound,
    Internal,
}

impl ErrorCode {
    /// The snake_case name, as on the wire; also a metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::RoomNotFound => "room_not_found",
            ErrorCode::RoomFull => "room_full",
            ErrorCode::UnknownTopic => "unknown_topic",
            ErrorCode::UnknownEvent => "unknown_event",
            ErrorCode::InvalidPayload => "invalid_payload",
            ErrorCode::NotJoined => "not_joined",
            ErrorCode::AlreadyJoined => "already_joined",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::VoiceUnavailable => "voice_unavailable",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::RoomLocked => "room_locked",
            ErrorCode::Removed => "removed",
            ErrorCode::RoomDeleted => "room_deleted",
            ErrorCode::LimitReached => "limit_reached",
            ErrorCode::ObjectHeld => "object_held",
            ErrorCode::ObjectNotFound => "object_not_found",
            ErrorCode::Internal => "internal",
        }
    }
}

/// A persisted room event: stored before it is acknowledged, numbered by the
/// server with ids that only grow within a room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct RoomEvent {
    #[ts(type = "number")]
    pub id: u64,
    pub user_id: String,
    /// The sender's display name when it was sent.
    pub name: String,
    /// Unix time, milliseconds.
    #[ts(type = "number")]
    pub sent_at: i64,
    pub body: RoomEventBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RoomEventBody {
    Chat {
        text: String,
    },
    ObjectSet {
        object_id: String,
        #[ts(type = "unknown")]
        state: Value,
    },
    ObjectRemove {
        object_id: String,
    },
}

/// The `response` of a reply that carries nothing but its status
/// (`rtc_answer`, `rtc_ice`, `voice_leave`, `set_muted`, `update_profile`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct EmptyReply {}

/// Whether a push was done (`ok`) or refused (`error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplyStatus {
    Ok,
    Error,
}

/// The reply to a stored push (`chat`, `object_set`, `object_remove`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct StoredReply {
    #[ts(type = "number")]
    pub id: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct ChatPush {
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct ObjectSetPush {
    pub object_id: String,
    #[ts(type = "unknown")]
    pub state: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct ObjectRemovePush {
    pub object_id: String,
}

/// Change of the sender's name or colour; presence shows it to everyone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct UpdateProfilePush {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub colour: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct SetMutedPush {
    pub muted: bool,
}

/// An SDP offer or answer, in either direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct SessionDescription {
    pub sdp: String,
}

/// A trickled ICE candidate, in either direction; an empty `candidate` ends the trickle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct IceCandidate {
    pub candidate: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub sdp_mid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub sdp_mline_index: Option<u16>,
}

/// Which incoming audio track (by SDP `mid`) carries which user's voice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct VoiceTracks {
    pub tracks: Vec<VoiceTrack>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct VoiceTrack {
    pub mid: String,
    pub user_id: String,
    pub slot: u16,
}

/// Who is speaking now; sent when it changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Speaking {
    pub user_id: String,
    pub speaking: bool,
}

/// `presence_state` payload.
pub type PresenceStatePayload = PresenceState;

/// Every JSON push a client may send on a room topic (or heartbeat on `phoenix`).
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    Heartbeat,
    Join(JoinPayload),
    Leave,
    Chat(ChatPush),
    ObjectSet(ObjectSetPush),
    ObjectRemove(ObjectRemovePush),
    ObjectGrab(ObjectGrabPush),
    ObjectRelease(ObjectReleasePush),
    UpdateProfile(UpdateProfilePush),
    SetMuted(SetMutedPush),
    RtcOffer(SessionDescription),
    RtcAnswer(SessionDescription),
    RtcIce(IceCandidate),
    VoiceLeave,
    Moderate(ModeratePush),
    History(HistoryPush),
}

/// Why a push was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EventError {
    #[error("unknown event \"{0}\"")]
    Unknown(String),
    #[error("invalid \"{event}\" payload: {reason}")]
    Invalid { event: &'static str, reason: String },
}

impl EventError {
    pub fn code(&self) -> ErrorCode {
        match self {
            EventError::Unknown(_) => ErrorCode::UnknownEvent,
            EventError::Invalid { .. } => ErrorCode::InvalidPayload,
        }
    }
}

impl ClientEvent {
    /// Types and validates a JSON push. The binary `pose` push is not JSON and is
    /// decoded by [`crate::pose`].
    pub fn parse(event: &str, payload: Value) -> Result<ClientEvent, EventError> {
        let parsed = match event {
            control::HEARTBEAT => ClientEvent::Heartbeat,
            control::JOIN => ClientEvent::Join(typed(control::JOIN, payload)?),
            control::LEAVE => ClientEvent::Leave,
            CHAT_EVENT => ClientEvent::Chat(typed(CHAT_EVENT, payload)?),
            OBJECT_SET_EVENT => ClientEvent::ObjectSet(typed(OBJECT_SET_EVENT, payload)?),
            OBJECT_REMOVE_EVENT => ClientEvent::ObjectRemove(typed(OBJECT_REMOVE_EVENT, payload)?),
            OBJECT_GRAB_EVENT => ClientEvent::ObjectGrab(typed(OBJECT_GRAB_EVENT, payload)?),
            OBJECT_RELEASE_EVENT => {
                ClientEvent::ObjectRelease(typed(OBJECT_RELEASE_EVENT, payload)?)
            }
            UPDATE_PROFILE_EVENT => {
                ClientEvent::UpdateProfile(typed(UPDATE_PROFILE_EVENT, payload)?)
            }
            SET_MUTED_EVENT => ClientEvent::SetMuted(typed(SET_MUTED_EVENT, payload)?),
            RTC_OFFER_EVENT => ClientEvent::RtcOffer(typed(RTC_OFFER_EVENT, payload)?),
            RTC_ANSWER_EVENT => ClientEvent::RtcAnswer(typed(RTC_ANSWER_EVENT, payload)?),
            RTC_ICE_EVENT => ClientEvent::RtcIce(typed(RTC_ICE_EVENT, payload)?),
            VOICE_LEAVE_EVENT => ClientEvent::VoiceLeave,
            MODERATE_EVENT => ClientEvent::Moderate(typed(MODERATE_EVENT, payload)?),
            HISTORY_EVENT => ClientEvent::History(typed(HISTORY_EVENT, payload)?),
            other => return Err(EventError::Unknown(truncate(other, 64))),
        };
        parsed.validate()?;
        Ok(parsed)
    }

    /// The wire name of this event.
    pub fn name(&self) -> &'static str {
        match self {
            ClientEvent::Heartbeat => control::HEARTBEAT,
            ClientEvent::Join(_) => control::JOIN,
            ClientEvent::Leave => control::LEAVE,
            ClientEvent::Chat(_) => CHAT_EVENT,
            ClientEvent::ObjectSet(_) => OBJECT_SET_EVENT,
            ClientEvent::ObjectRemove(_) => OBJECT_REMOVE_EVENT,
            ClientEvent::ObjectGrab(_) => OBJECT_GRAB_EVENT,
            ClientEvent::ObjectRelease(_) => OBJECT_RELEASE_EVENT,
            ClientEvent::UpdateProfile(_) => UPDATE_PROFILE_EVENT,
            ClientEvent::SetMuted(_) => SET_MUTED_EVENT,
            ClientEvent::RtcOffer(_) => RTC_OFFER_EVENT,
            ClientEvent::RtcAnswer(_) => RTC_ANSWER_EVENT,
            ClientEvent::RtcIce(_) => RTC_ICE_EVENT,
            ClientEvent::VoiceLeave => VOICE_LEAVE_EVENT,
            ClientEvent::Moderate(_) => MODERATE_EVENT,
            ClientEvent::History(_) => HISTORY_EVENT,
        }
    }

    /// The JSON payload, as a client sends it.
    pub fn payload(&self) -> Value {
        let value = match self {
            ClientEvent::Heartbeat | ClientEvent::Leave | ClientEvent::VoiceLeave => {
                Ok(Value::Object(Default::default()))
            }
            ClientEvent::Join(p) => serde_json::to_value(p),
            ClientEvent::Chat(p) => serde_json::to_value(p),
            ClientEvent::ObjectSet(p) => serde_json::to_value(p),
            ClientEvent::ObjectRemove(p) => serde_json::to_value(p),
            ClientEvent::ObjectGrab(p) => serde_json::to_value(p),
            ClientEvent::ObjectRelease(p) => serde_json::to_value(p),
            ClientEvent::UpdateProfile(p) => serde_json::to_value(p),
            ClientEvent::SetMuted(p) => serde_json::to_value(p),
            ClientEvent::RtcOffer(p) | ClientEvent::RtcAnswer(p) => serde_json::to_value(p),
            ClientEvent::RtcIce(p) => serde_json::to_value(p),
            ClientEvent::Moderate(p) => serde_json::to_value(p),
            ClientEvent::History(p) => serde_json::to_value(p),
        };
        value.expect("event payloads are plain structs")
    }

    fn validate(&self) -> Result<(), EventError> {
        let event = self.name();
        let invalid = |reason: String| EventError::Invalid { event, reason };
        match self {
            ClientEvent::Join(join) => {
                validate_name(&join.name).map_err(invalid)?;
                validate_colour(&join.colour).map_err(invalid)?;
            }
            ClientEvent::Chat(chat) => validate_chat(&chat.text).map_err(invalid)?,
            ClientEvent::ObjectSet(set) => {
                validate_object_id(&set.object_id).map_err(invalid)?;
                let size = set.state.to_string().len();
                if size <= MAX_OBJECT_STATE_BYTES {
                    ObjectState::from_value(&set.state).map_err(invalid)?;
                }
                if size > MAX_OBJECT_STATE_BYTES {
                    return Err(invalid(format!(
                        "state is {size} bytes; at most {MAX_OBJECT_STATE_BYTES} are allowed"
                    )));
                }
            }
            ClientEvent::ObjectRemove(ObjectRemovePush { object_id })
            | ClientEvent::ObjectGrab(ObjectGrabPush { object_id })
            | ClientEvent::ObjectRelease(ObjectReleasePush { object_id }) => {
                validate_object_id(object_id).map_err(invalid)?
            }
            ClientEvent::UpdateProfile(update) => {
                if let Some(name) = &update.name {
                    validate_name(name).map_err(invalid)?;
                }
                if let Some(colour) = &update.colour {
                    validate_colour(colour).map_err(invalid)?;
                }
            }
            ClientEvent::RtcOffer(desc) | ClientEvent::RtcAnswer(desc) => {
                if desc.sdp.is_empty() || desc.sdp.len() > MAX_SDP_BYTES {
                    return Err(invalid(format!(
                        "sdp must be 1 to {MAX_SDP_BYTES} bytes, got {}",
                        desc.sdp.len()
                    )));
                }
            }
            ClientEvent::RtcIce(ice) => {
                if ice.candidate.len() > MAX_ICE_CANDIDATE_BYTES {
                    return Err(invalid(format!(
                        "candidate is longer than {MAX_ICE_CANDIDATE_BYTES} bytes"
                    )));
                }
            }
            ClientEvent::Moderate(
                ModeratePush::Mute { user_id, .. }
                | ModeratePush::Remove { user_id }
                | ModeratePush::Moderator { user_id, .. },
            ) => {
                if user_id.is_empty() || user_id.len() > MAX_USER_ID_BYTES {
                    return Err(invalid(format!(
                        "user_id must be 1 to {MAX_USER_ID_BYTES} bytes"
                    )));
                }
            }
            ClientEvent::Heartbeat
            | ClientEvent::Leave
            | ClientEvent::SetMuted(_)
            | ClientEvent::VoiceLeave
            | ClientEvent::Moderate(ModeratePush::Lock { .. })
            | ClientEvent::History(_) => {}
        }
        Ok(())
    }
}

fn typed<T: DeserializeOwned>(event: &'static str, payload: Value) -> Result<T, EventError> {
    serde_json::from_value(payload).map_err(|e| EventError::Invalid {
        event,
        reason: e.to_string(),
    })
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

/// A display name as clients send it: what [`crate::names::normalize_name`]
/// accepts (the server stores the normalised form).
pub fn validate_name(name: &str) -> Result<(), String> {
    crate::names::normalize_name(name).map(drop)
}

/// A colour: `#rrggbb` in hex digits.
pub fn validate_colour(colour: &str) -> Result<(), String> {
    let ok = colour.len() == 7
        && colour.starts_with('#')
        && colour[1..].bytes().all(|b| b.is_ascii_hexdigit());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "colour must look like #3a7bd5, got \"{}\"",
            truncate(colour, 16)
        ))
    }
}

/// A chat message: 1 to [`MAX_CHAT_CHARS`] characters, not blank, no hidden
/// controls (see [`crate::names::validate_chat_text`]).
pub fn validate_chat(text: &str) -> Result<(), String> {
    crate::names::validate_chat_text(text)
}

fn validate_object_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= MAX_OBJECT_ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "object_id must be 1 to {MAX_OBJECT_ID_BYTES} characters of A-Z a-z 0-9 - _ ."
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(event: &str, payload: Value, expected: Result<ClientEvent, &str>) {
        let got = ClientEvent::parse(event, payload.clone());
        match expected {
            Ok(want) => {
                assert_eq!(got, Ok(want.clone()), "{event} {payload}");
                assert_eq!(want.name(), event);
                assert_eq!(ClientEvent::parse(event, want.payload()), Ok(want));
            }
            Err(fragment) => {
                let message = got.expect_err("must be refused").to_string();
                assert!(message.contains(fragment), "{message:?} lacks {fragment:?}");
            }
        }
    }

    #[test]
    fn pushes_are_typed_and_validated() {
        let join = json!({"protocol_version": 1, "name": "Ada", "colour": "#3a7bd5", "client_kind": "web"});
        check(
            "phx_join",
            join.clone(),
            Ok(ClientEvent::Join(JoinPayload {
                protocol_version: 1,
                name: "Ada".into(),
                colour: "#3a7bd5".into(),
                client_kind: ClientKind::Web,
                last_seen_id: None,
            })),
        );
        let mut with_last = join.clone();
        with_last["last_seen_id"] = json!(41);
        check(
            "phx_join",
            with_last,
            Ok(ClientEvent::Join(JoinPayload {
                protocol_version: 1,
                name: "Ada".into(),
                colour: "#3a7bd5".into(),
                client_kind: ClientKind::Web,
                last_seen_id: Some(41),
            })),
        );
        check(
            "chat",
            json!({"text": "hi"}),
            Ok(ClientEvent::Chat(ChatPush { text: "hi".into() })),
        );
        check("heartbeat", json!({}), Ok(ClientEvent::Heartbeat));
        check("phx_leave", json!({}), Ok(ClientEvent::Leave));
        check(
            "rtc_ice",
            json!({"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host", "sdp_mid": "0"}),
            Ok(ClientEvent::RtcIce(IceCandidate {
                candidate: "candidate:1 1 udp 1 127.0.0.1 5000 typ host".into(),
                sdp_mid: Some("0".into()),
                sdp_mline_index: None,
            })),
        );
    }

    #[test]
    fn bad_pushes_say_what_is_wrong() {
        check("dance", json!({}), Err("unknown event \"dance\""));
        check("chat", json!({"text": "  "}), Err("text must not be blank"));
        check("chat", json!({"text": 5}), Err("invalid type"));
        check(
            "chat",
            json!({"text": "a", "extra": 1}),
            Err("unknown field `extra`"),
        );
        check(
            "chat",
            json!({"text": "x".repeat(MAX_CHAT_CHARS + 1)}),
            Err("at most 2000"),
        );
        check(
            "phx_join",
            json!({"protocol_version": 1, "name": "Ada", "colour": "red", "client_kind": "web"}),
            Err("colour must look like #3a7bd5"),
        );
        check(
            "phx_join",
            json!({"protocol_version": 1, "name": "Ada", "colour": "#000000", "client_kind": "toaster"}),
            Err("unknown variant `toaster`"),
        );
        check(
            "object_set",
            json!({"object_id": "a b", "state": {}}),
            Err("object_id must be"),
        );
        check(
            "object_set",
            json!({"object_id": "ball", "state": "x".repeat(MAX_OBJECT_STATE_BYTES)}),
            Err("state is"),
        );
        check("rtc_offer", json!({"sdp": ""}), Err("sdp must be 1 to"));
    }

    #[test]
    fn room_events_serialize_with_a_type_tag() {
        let event = RoomEvent {
            id: 7,
            user_id: "u1".into(),
            name: "Ada".into(),
            sent_at: 1_700_000_000_000,
            body: RoomEventBody::Chat { text: "hi".into() },
        };
        let value = serde_json::to_value(&event).unwrap();
        assert_eq!(
            value,
            json!({"id": 7, "user_id": "u1", "name": "Ada", "sent_at": 1_700_000_000_000i64,
                   "body": {"type": "chat", "text": "hi"}})
        );
        assert_eq!(serde_json::from_value::<RoomEvent>(value).unwrap(), event);
    }
}
