//! Every message the server sends on a room channel, as one type: replies to
//! pushes, pushes and broadcasts of room state, voice signaling, channel
//! control and pose batches.
//!
//! The server builds each frame from a [`ServerEvent`] with
//! [`ServerEvent::encode`]; a client reads each frame back with
//! [`ServerEvent::parse_text`] or [`ServerEvent::parse_binary`] after
//! [`crate::frame`] decoded it. Parsing never panics: an unknown event or a
//! payload of the wrong shape is a [`ServerEventError`].
//!
//! A reply's response type depends on the push it answers, which only the
//! client that sent the push knows (by its ref). So an ok reply's
//! [`ReplyBody`] is read as the type the caller expects with
//! [`ReplyBody::read`], which only accepts the response types of
//! [`ReplyResponse`]; an error reply is always an [`ErrorReply`] and is typed
//! at once.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use crate::events::{
    ClosePayload, EmptyReply, ErrorReply, HistoryPage, IceCandidate, JoinReply, MODERATION_EVENT,
    ModerationNotice, POSES_EVENT, PRESENCE_DIFF_EVENT, PRESENCE_STATE_EVENT, ROOM_EVENT_EVENT,
    RTC_ICE_EVENT, RTC_OFFER_EVENT, ReplyStatus, RoomEvent, SPEAKING_EVENT, SessionDescription,
    Speaking, StoredReply, VOICE_TRACKS_EVENT, VoiceTracks,
};
use crate::frame::{self, FrameError, ServerBinary, TextFrame, control};
use crate::objects::{OBJECT_HOLDER_EVENT, ObjectGrabReply, ObjectHolderPush};
use crate::pose::{PoseBatchBuf, PoseError};
use crate::presence::{PresenceDiff, PresenceState};

/// One message from the server on a room channel (or, for heartbeat
/// replies, on the `phoenix` topic).
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// `phx_reply`: the answer to the client's push with `msg_ref`.
    Reply(Reply),
    /// `presence_state`: everyone in the room, sent once after a join.
    PresenceState(PresenceState),
    /// `presence_diff`: who joined, left or changed since.
    PresenceDiff(PresenceDiff),
    /// `event`: a persisted room event, broadcast once it is stored.
    Event(RoomEvent),
    /// `speaking`: someone started or stopped speaking.
    Speaking(Speaking),
    /// `moderation`: a moderation act everyone hears of.
    Moderation(ModerationNotice),
    /// `rtc_offer`: the SFU renegotiates (a track was added or removed).
    RtcOffer(SessionDescription),
    /// `rtc_ice`: a trickled candidate of the SFU.
    RtcIce(IceCandidate),
    /// `voice_tracks`: which incoming track carries whose voice.
    VoiceTracks(VoiceTracks),
    /// `object_holder`: an object was grabbed or thrown (or its holder lost it).
    ObjectHolder(ObjectHolderPush),
    /// `poses`, binary: the room's latest poses, once per tick.
    Poses(PoseBatchBuf),
    /// `phx_error`: the channel's room crashed; the client rejoins.
    ChannelError,
    /// `phx_close`: the server ended the channel. With a reason (removed,
    /// room deleted) the membership is over; without one (`{}`, as Phoenix
    /// sends after a leave) only the channel is.
    ChannelClose(Option<ClosePayload>),
}

/// `phx_reply`: the ref of the push it answers and how that push went.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub msg_ref: String,
    pub outcome: Result<ReplyBody, ErrorReply>,
}

impl Reply {
    pub fn ok(msg_ref: impl Into<String>, body: impl Into<ReplyBody>) -> Reply {
        Reply {
            msg_ref: msg_ref.into(),
            outcome: Ok(body.into()),
        }
    }

    pub fn error(msg_ref: impl Into<String>, reason: ErrorReply) -> Reply {
        Reply {
            msg_ref: msg_ref.into(),
            outcome: Err(reason),
        }
    }

    /// The ok response as `T`, a refusal as the inner `Err`; the outer `Err`
    /// says why the response is not a `T`.
    pub fn read<T: ReplyResponse>(self) -> Result<Result<T, ErrorReply>, ServerEventError> {
        match self.outcome {
            Ok(body) => body.read().map(Ok),
            Err(refusal) => Ok(Err(refusal)),
        }
    }
}

/// The response of an ok reply. Built from one of the [`ReplyResponse`]
/// types on the server; received as JSON on a client, typed by
/// [`ReplyBody::read`] once the reader says which push it answers.
#[derive(Debug, Clone)]
pub struct ReplyBody(Body);

#[derive(Debug, Clone)]
enum Body {
    Join(Box<JoinReply>),
    Stored(StoredReply),
    History(HistoryPage),
    Answer(SessionDescription),
    Grab(ObjectGrabReply),
    Empty,
    Received(Value),
}

impl ReplyBody {
    /// The response as `T`: what an ok reply to the push that `T` answers carries.
    pub fn read<T: ReplyResponse>(self) -> Result<T, ServerEventError> {
        match self.0 {
            Body::Received(value) => {
                T::deserialize(value).map_err(|error| ServerEventError::InvalidReply {
                    expected: T::ANSWERS,
                    reason: error.to_string(),
                })
            }
            typed => T::take(ReplyBody(typed)).map_err(|other| ServerEventError::InvalidReply {
                expected: T::ANSWERS,
                reason: format!("the response is {}", describe(&other.0)),
            }),
        }
    }

    /// The response as JSON, as the server writes it.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("reply bodies are plain structs")
    }
}

fn describe(body: &Body) -> &'static str {
    match body {
        Body::Join(_) => "a join reply",
        Body::Stored(_) => "a stored event's id",
        Body::History(_) => "a history page",
        Body::Answer(_) => "an SDP answer",
        Body::Grab(_) => "an object's handle",
        Body::Empty => "empty",
        Body::Received(_) => "unread JSON",
    }
}

/// Two bodies are equal when they say the same on the wire, whether built
/// or received.
impl PartialEq for ReplyBody {
    fn eq(&self, other: &Self) -> bool {
        self.to_json() == other.to_json()
    }
}

impl Serialize for ReplyBody {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Body::Join(reply) => reply.serialize(serializer),
            Body::Stored(reply) => reply.serialize(serializer),
            Body::History(page) => page.serialize(serializer),
            Body::Answer(answer) => answer.serialize(serializer),
            Body::Grab(grab) => grab.serialize(serializer),
            Body::Empty => EmptyReply {}.serialize(serializer),
            Body::Received(value) => value.serialize(serializer),
        }
    }
}

/// The types an ok reply carries, each naming the pushes it answers. Only
/// these can be read out of a [`ReplyBody`].
pub trait ReplyResponse: Serialize + DeserializeOwned + sealed::Sealed {
    /// The pushes whose ok reply carries this type, for error messages.
    const ANSWERS: &'static str;
}

mod sealed {
    /// Keeps [`super::ReplyResponse`] to the types of this module, and moves
    /// a built body out as its type.
    pub trait Sealed: Sized {
        fn take(body: super::ReplyBody) -> Result<Self, super::ReplyBody>;
    }
}

macro_rules! reply_response {
    ($ty:ty, $answers:expr, |$value:ident| $wrap:expr, $pattern:pat => $unwrap:expr) => {
        impl sealed::Sealed for $ty {
            fn take(body: ReplyBody) -> Result<Self, ReplyBody> {
                match body.0 {
                    $pattern => Ok($unwrap),
                    other => Err(ReplyBody(other)),
                }
            }
        }
        impl ReplyResponse for $ty {
            const ANSWERS: &'static str = $answers;
        }
        impl From<$ty> for ReplyBody {
            fn from($value: $ty) -> ReplyBody {
                ReplyBody($wrap)
            }
        }
    };
}

reply_response!(JoinReply, "phx_join", |reply| Body::Join(Box::new(reply)), Body::Join(reply) => *reply);
reply_response!(
    StoredReply,
    "chat, object_set or object_remove",
    |reply| Body::Stored(reply),
    Body::Stored(reply) => reply
);
reply_response!(HistoryPage, "history", |page| Body::History(page), Body::History(page) => page);
reply_response!(
    SessionDescription,
    "rtc_offer",
    |answer| Body::Answer(answer),
    Body::Answer(answer) => answer
);
reply_response!(
    ObjectGrabReply,
    "object_grab",
    |grab| Body::Grab(grab),
    Body::Grab(grab) => grab
);
reply_response!(
    EmptyReply,
    "phx_leave, heartbeat, rtc_answer, rtc_ice, voice_leave, set_muted, update_profile, moderate or object_release",
    |_empty| Body::Empty,
    Body::Empty => EmptyReply {}
);

/// Why a server message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ServerEventError {
    #[error("the server sent an unknown event \"{0}\"")]
    UnknownEvent(String),
    #[error("the server's \"{event}\" payload is malformed: {reason}")]
    InvalidPayload { event: &'static str, reason: String },
    #[error("the reply to {expected} is malformed: {reason}")]
    InvalidReply {
        expected: &'static str,
        reason: String,
    },
    #[error("the server's reply carries no ref, so nothing it answers can be found")]
    ReplyWithoutRef,
    #[error("the server's binary \"{event}\" frame is not a pose batch: {error}")]
    BadPoses { event: String, error: PoseError },
    #[error(
        "the server sent a binary reply with a {0}-byte response; only empty ones are expected"
    )]
    BinaryReplyBody(usize),
}

/// A frame ready for the socket, as [`ServerEvent::encode`] builds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerFrame {
    Text(String),
    Binary(Vec<u8>),
}

impl ServerEvent {
    /// The event name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            ServerEvent::Reply(_) => control::REPLY,
            ServerEvent::PresenceState(_) => PRESENCE_STATE_EVENT,
            ServerEvent::PresenceDiff(_) => PRESENCE_DIFF_EVENT,
            ServerEvent::Event(_) => ROOM_EVENT_EVENT,
            ServerEvent::Speaking(_) => SPEAKING_EVENT,
            ServerEvent::Moderation(_) => MODERATION_EVENT,
            ServerEvent::RtcOffer(_) => RTC_OFFER_EVENT,
            ServerEvent::RtcIce(_) => RTC_ICE_EVENT,
            ServerEvent::VoiceTracks(_) => VOICE_TRACKS_EVENT,
            ServerEvent::ObjectHolder(_) => OBJECT_HOLDER_EVENT,
            ServerEvent::Poses(_) => POSES_EVENT,
            ServerEvent::ChannelError => control::ERROR,
            ServerEvent::ChannelClose(_) => control::CLOSE,
        }
    }

    /// The frame for this event on `topic`. `join_ref` is the channel's join
    /// ref for a frame to one member, `None` for a broadcast every member of
    /// the topic shares. Refs follow Phoenix: a reply carries its push's ref,
    /// `phx_error` and `phx_close` carry the join ref as their ref too, other
    /// pushes none. Pose batches are always binary broadcasts (kind 2), whose
    /// layout has no join ref: one batch serves the whole room.
    ///
    /// Only a binary frame can fail: a topic over 255 bytes or a batch over
    /// the frame limit.
    pub fn encode(&self, topic: &str, join_ref: Option<&str>) -> Result<ServerFrame, FrameError> {
        let name = self.name();
        let text = |msg_ref: Option<&str>, payload: &dyn typed_payload::Payload| {
            ServerFrame::Text(payload.frame(join_ref, msg_ref, topic, name))
        };
        let empty = EmptyReply {};
        Ok(match self {
            ServerEvent::Reply(reply) => match &reply.outcome {
                Ok(body) => text(
                    Some(&reply.msg_ref),
                    &ReplyPayloadOut {
                        status: ReplyStatus::Ok,
                        response: body,
                    },
                ),
                Err(refusal) => text(
                    Some(&reply.msg_ref),
                    &ReplyPayloadOut {
                        status: ReplyStatus::Error,
                        response: refusal,
                    },
                ),
            },
            ServerEvent::PresenceState(state) => text(None, state),
            ServerEvent::PresenceDiff(diff) => text(None, diff),
            ServerEvent::Event(event) => text(None, event),
            ServerEvent::Speaking(speaking) => text(None, speaking),
            ServerEvent::Moderation(notice) => text(None, notice),
            ServerEvent::RtcOffer(offer) => text(None, offer),
            ServerEvent::RtcIce(candidate) => text(None, candidate),
            ServerEvent::VoiceTracks(tracks) => text(None, tracks),
            ServerEvent::ObjectHolder(holder) => text(None, holder),
            ServerEvent::ChannelError => text(join_ref, &empty),
            ServerEvent::ChannelClose(Some(reason)) => text(join_ref, reason),
            ServerEvent::ChannelClose(None) => text(join_ref, &empty),
            ServerEvent::Poses(batch) => {
                let mut out = Vec::with_capacity(batch.as_bytes().len() + topic.len() + 8);
                frame::encode_broadcast(&mut out, topic, POSES_EVENT, batch.as_bytes())?;
                ServerFrame::Binary(out)
            }
        })
    }

    /// Types a decoded text frame. The caller checks the topic and join ref
    /// (which channel the frame is for); this reads the event and payload.
    pub fn parse_text(frame: &TextFrame) -> Result<ServerEvent, ServerEventError> {
        let payload = &frame.payload;
        Ok(match frame.event.as_str() {
            control::REPLY => {
                let msg_ref = frame
                    .msg_ref
                    .clone()
                    .ok_or(ServerEventError::ReplyWithoutRef)?;
                let reply: ReplyPayloadIn = typed(control::REPLY, payload)?;
                let outcome =
                    match reply.status {
                        ReplyStatus::Ok => Ok(ReplyBody(Body::Received(reply.response))),
                        ReplyStatus::Error => Err(ErrorReply::deserialize(&reply.response)
                            .map_err(|error| ServerEventError::InvalidPayload {
                                event: control::REPLY,
                                reason: format!("error response: {error}"),
                            })?),
                    };
                ServerEvent::Reply(Reply { msg_ref, outcome })
            }
            PRESENCE_STATE_EVENT => {
                ServerEvent::PresenceState(typed(PRESENCE_STATE_EVENT, payload)?)
            }
            PRESENCE_DIFF_EVENT => ServerEvent::PresenceDiff(typed(PRESENCE_DIFF_EVENT, payload)?),
            ROOM_EVENT_EVENT => ServerEvent::Event(typed(ROOM_EVENT_EVENT, payload)?),
            SPEAKING_EVENT => ServerEvent::Speaking(typed(SPEAKING_EVENT, payload)?),
            MODERATION_EVENT => ServerEvent::Moderation(typed(MODERATION_EVENT, payload)?),
            RTC_OFFER_EVENT => ServerEvent::RtcOffer(typed(RTC_OFFER_EVENT, payload)?),
            RTC_ICE_EVENT => ServerEvent::RtcIce(typed(RTC_ICE_EVENT, payload)?),
            VOICE_TRACKS_EVENT => ServerEvent::VoiceTracks(typed(VOICE_TRACKS_EVENT, payload)?),
            OBJECT_HOLDER_EVENT => ServerEvent::ObjectHolder(typed(OBJECT_HOLDER_EVENT, payload)?),
            control::ERROR => ServerEvent::ChannelError,
            control::CLOSE => {
                if payload.as_object().is_some_and(|fields| fields.is_empty()) {
                    ServerEvent::ChannelClose(None)
                } else {
                    ServerEvent::ChannelClose(Some(typed(control::CLOSE, payload)?))
                }
            }
            other => return Err(ServerEventError::UnknownEvent(truncate(other))),
        })
    }

    /// Types a decoded binary frame: a pose batch (broadcast or push), or an
    /// empty binary reply (the server's answer to a binary push with a ref).
    pub fn parse_binary(frame: &ServerBinary<'_>) -> Result<ServerEvent, ServerEventError> {
        match *frame {
            ServerBinary::Broadcast { event, payload, .. }
            | ServerBinary::Push { event, payload, .. } => {
                if event != POSES_EVENT {
                    return Err(ServerEventError::UnknownEvent(truncate(event)));
                }
                let batch = PoseBatchBuf::from_bytes(payload.to_vec()).map_err(|error| {
                    ServerEventError::BadPoses {
                        event: event.to_string(),
                        error,
                    }
                })?;
                Ok(ServerEvent::Poses(batch))
            }
            ServerBinary::Reply {
                msg_ref,
                status,
                payload,
                ..
            } => {
                if !payload.is_empty() {
                    return Err(ServerEventError::BinaryReplyBody(payload.len()));
                }
                let outcome = match status {
                    "ok" => Ok(ReplyBody(Body::Empty)),
                    "error" => Err(ErrorReply::new(
                        crate::events::ErrorCode::Internal,
                        "the server refused a binary push without saying why",
                    )),
                    other => {
                        return Err(ServerEventError::InvalidPayload {
                            event: control::REPLY,
                            reason: format!(
                                "status must be \"ok\" or \"error\", got \"{}\"",
                                truncate(other)
                            ),
                        });
                    }
                };
                if msg_ref.is_empty() {
                    return Err(ServerEventError::ReplyWithoutRef);
                }
                Ok(ServerEvent::Reply(Reply {
                    msg_ref: msg_ref.to_string(),
                    outcome,
                }))
            }
        }
    }
}

/// A text message with its channel, for readers that want frame and event at once.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerMessage {
    pub topic: String,
    pub join_ref: Option<String>,
    pub event: ServerEvent,
}

/// Why a server frame could not be read: its framing, or its content.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ServerMessageError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Event(#[from] ServerEventError),
}

impl ServerMessage {
    /// Decodes and types a text frame from the server.
    pub fn decode_text(text: &str) -> Result<ServerMessage, ServerMessageError> {
        let frame = frame::decode_text(text)?;
        let event = ServerEvent::parse_text(&frame)?;
        Ok(ServerMessage {
            topic: frame.topic,
            join_ref: frame.join_ref,
            event,
        })
    }

    /// Decodes and types a binary frame from the server.
    pub fn decode_binary(bytes: &[u8]) -> Result<ServerMessage, ServerMessageError> {
        let frame = frame::decode_server_binary(bytes)?;
        let event = ServerEvent::parse_binary(&frame)?;
        let (topic, join_ref) = match frame {
            ServerBinary::Broadcast { topic, .. } => (topic, None),
            ServerBinary::Push {
                topic, join_ref, ..
            }
            | ServerBinary::Reply {
                topic, join_ref, ..
            } => (topic, Some(join_ref.to_string())),
        };
        Ok(ServerMessage {
            topic: topic.to_string(),
            join_ref,
            event,
        })
    }
}

#[derive(Deserialize)]
struct ReplyPayloadIn {
    status: ReplyStatus,
    response: Value,
}

#[derive(Serialize)]
struct ReplyPayloadOut<'a, T: Serialize> {
    status: ReplyStatus,
    response: &'a T,
}

/// Lets `encode` pick each variant's payload type in one `match`: every
/// payload writes itself into a text frame, typed, without a JSON value in
/// between (join replies are up to 48 KiB).
mod typed_payload {
    use serde::Serialize;

    pub trait Payload {
        fn frame(
            &self,
            join_ref: Option<&str>,
            msg_ref: Option<&str>,
            topic: &str,
            event: &str,
        ) -> String;
    }

    impl<T: Serialize> Payload for T {
        fn frame(
            &self,
            join_ref: Option<&str>,
            msg_ref: Option<&str>,
            topic: &str,
            event: &str,
        ) -> String {
            crate::frame::encode_text_parts(join_ref, msg_ref, topic, event, self)
        }
    }
}

fn typed<T: DeserializeOwned>(event: &'static str, payload: &Value) -> Result<T, ServerEventError> {
    T::deserialize(payload).map_err(|error| ServerEventError::InvalidPayload {
        event,
        reason: error.to_string(),
    })
}

fn truncate(name: &str) -> String {
    name.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{
        ErrorCode, Governance, ModeratePush, RoomEventBody, RoomSummary, VoiceTrack,
    };
    use crate::objects::{ObjectHolder, ObjectKind, ObjectSnapshot, ObjectState};
    use crate::pose::{AvatarPose, encode_pose};
    use crate::presence::{ClientKind, PresenceEntry, PresenceMeta, Role};
    use serde_json::json;

    const TOPIC: &str = "room:6f1c2a7e-4b3d-4c5e-9f10-2a3b4c5d6e7f";

    fn meta(slot: u16) -> PresenceMeta {
        PresenceMeta {
            phx_ref: format!("F{slot}"),
            phx_ref_prev: None,
            name: "Bo".into(),
            colour: "#ff8800".into(),
            client_kind: ClientKind::Quest,
            slot,
            joined_at: 1_700_000_000_000,
            speaking: false,
            muted: true,
            moderator_muted: false,
            role: Role::Moderator,
        }
    }

    fn chat(id: u64) -> RoomEvent {
        RoomEvent {
            id,
            user_id: "u-1".into(),
            name: "Ada".into(),
            sent_at: 1_700_000_000_123,
            body: RoomEventBody::Chat { text: "hi".into() },
        }
    }

    fn governance() -> Governance {
        Governance {
            owner_user_id: Some("u-1".into()),
            moderators: vec!["u-2".into()],
            locked: false,
        }
    }

    fn join_reply() -> JoinReply {
        JoinReply {
            user_id: "u-1".into(),
            slot: 3,
            protocol_version: 1,
            room: RoomSummary {
                id: "6f1c2a7e-4b3d-4c5e-9f10-2a3b4c5d6e7f".into(),
                name: "Lobby".into(),
                description: "".into(),
            },
            events: vec![chat(7)],
            truncated: true,
            pose_rate_hz: 30,
            governance: governance(),
            objects: vec![ObjectSnapshot {
                object_id: "ball-1".into(),
                handle: 1,
                state: ObjectState {
                    kind: ObjectKind::Ball,
                    colour: "#22aa44".into(),
                    position: [0.25, 0.8125, -2.0],
                    orientation: [0.0, 0.0, 0.0, 1.0],
                },
                holder: None,
            }],
        }
    }

    fn batch() -> PoseBatchBuf {
        let poses = [
            encode_pose(1, &AvatarPose::default()),
            encode_pose(4, &AvatarPose::default()),
        ];
        PoseBatchBuf::new(1234, poses.iter())
    }

    /// One of each variant (and each reply body), as the server sends them.
    fn every_event() -> Vec<ServerEvent> {
        vec![
            ServerEvent::Reply(Reply::ok("1", join_reply())),
            ServerEvent::Reply(Reply::ok("2", StoredReply { id: 8 })),
            ServerEvent::Reply(Reply::ok(
                "3",
                HistoryPage {
                    events: vec![chat(5), chat(6)],
                    more: false,
                },
            )),
            ServerEvent::Reply(Reply::ok("4", SessionDescription { sdp: "v=0".into() })),
            ServerEvent::Reply(Reply::ok("5", EmptyReply {})),
            ServerEvent::Reply(Reply::error(
                "6",
                ErrorReply::new(ErrorCode::RateLimited, "slow down; try again in a second"),
            )),
            ServerEvent::PresenceState(
                [(
                    "u-2".to_string(),
                    PresenceEntry {
                        metas: vec![meta(4)],
                    },
                )]
                .into(),
            ),
            ServerEvent::PresenceDiff(PresenceDiff {
                joins: [(
                    "u-2".to_string(),
                    PresenceEntry {
                        metas: vec![meta(4)],
                    },
                )]
                .into(),
                leaves: Default::default(),
            }),
            ServerEvent::Event(chat(9)),
            ServerEvent::Speaking(Speaking {
                user_id: "u-2".into(),
                speaking: true,
            }),
            ServerEvent::Moderation(ModerationNotice {
                act: ModeratePush::Mute {
                    user_id: "u-3".into(),
                    muted: true,
                },
                by_user_id: "u-1".into(),
                by_name: "Ada".into(),
                target_name: Some("Cy".into()),
                governance: governance(),
            }),
            ServerEvent::RtcOffer(SessionDescription {
                sdp: "v=0\r\n".into(),
            }),
            ServerEvent::RtcIce(IceCandidate {
                candidate: "candidate:1 1 udp 1 127.0.0.1 5000 typ host".into(),
                sdp_mid: Some("0".into()),
                sdp_mline_index: Some(0),
            }),
            ServerEvent::VoiceTracks(VoiceTracks {
                tracks: vec![VoiceTrack {
                    mid: "1".into(),
                    user_id: "u-2".into(),
                    slot: 4,
                }],
            }),
            ServerEvent::ObjectHolder(ObjectHolderPush {
                object_id: "cube-1".into(),
                handle: 3,
                holder: Some(ObjectHolder {
                    user_id: "u-2".into(),
                    name: "Bo".into(),
                    slot: 4,
                    throwing: false,
                }),
            }),
            ServerEvent::Poses(batch()),
            ServerEvent::ChannelError,
            ServerEvent::ChannelClose(Some(ErrorReply::new(
                ErrorCode::Removed,
                "a moderator removed you from this room",
            ))),
            ServerEvent::ChannelClose(None),
        ]
    }

    fn decode(frame: ServerFrame) -> ServerMessage {
        match frame {
            ServerFrame::Text(text) => ServerMessage::decode_text(&text),
            ServerFrame::Binary(bytes) => ServerMessage::decode_binary(&bytes),
        }
        .unwrap()
    }

    #[test]
    fn every_event_round_trips_from_server_to_client() {
        let events = every_event();
        let names: std::collections::BTreeSet<_> = events.iter().map(ServerEvent::name).collect();
        assert_eq!(names.len(), 13, "one case per variant: {names:?}");
        for event in events {
            for join_ref in [Some("1"), None] {
                let message = decode(event.encode(TOPIC, join_ref).unwrap());
                assert_eq!(message.event, event, "{}", event.name());
                assert_eq!(message.topic, TOPIC);
                let expected_join_ref = match event {
                    // A batch is one frame for the whole room.
                    ServerEvent::Poses(_) => None,
                    _ => join_ref,
                };
                assert_eq!(
                    message.join_ref.as_deref(),
                    expected_join_ref,
                    "{}",
                    event.name()
                );
            }
        }
    }

    #[test]
    fn refs_are_laid_out_as_phoenix_sends_them() {
        let check = |event: ServerEvent, join_ref: Option<&str>, expected: &str| {
            let ServerFrame::Text(text) = event.encode(TOPIC, join_ref).unwrap() else {
                panic!("text expected");
            };
            assert_eq!(text, expected.replace("TOPIC", TOPIC));
        };
        check(
            ServerEvent::Reply(Reply::ok("4", EmptyReply {})),
            Some("1"),
            r#"["1","4","TOPIC","phx_reply",{"status":"ok","response":{}}]"#,
        );
        check(
            ServerEvent::Reply(Reply::error(
                "9",
                ErrorReply::new(ErrorCode::NotJoined, "join first"),
            )),
            None,
            r#"[null,"9","TOPIC","phx_reply",{"status":"error","response":{"code":"not_joined","reason":"join first"}}]"#,
        );
        check(
            ServerEvent::Speaking(Speaking {
                user_id: "u".into(),
                speaking: false,
            }),
            None,
            r#"[null,null,"TOPIC","speaking",{"user_id":"u","speaking":false}]"#,
        );
        check(
            ServerEvent::RtcOffer(SessionDescription { sdp: "v=0".into() }),
            Some("3"),
            r#"["3",null,"TOPIC","rtc_offer",{"sdp":"v=0"}]"#,
        );
        check(
            ServerEvent::ChannelError,
            Some("3"),
            r#"["3","3","TOPIC","phx_error",{}]"#,
        );
        check(
            ServerEvent::ChannelClose(Some(ErrorReply::new(ErrorCode::RoomDeleted, "gone"))),
            Some("3"),
            r#"["3","3","TOPIC","phx_close",{"code":"room_deleted","reason":"gone"}]"#,
        );
        let ServerFrame::Binary(bytes) = ServerEvent::Poses(batch())
            .encode(TOPIC, Some("3"))
            .unwrap()
        else {
            panic!("poses are binary");
        };
        let mut expected = Vec::new();
        frame::encode_broadcast(&mut expected, TOPIC, POSES_EVENT, batch().as_bytes()).unwrap();
        assert_eq!(bytes, expected);
    }

    #[test]
    fn a_reply_reads_as_the_type_its_push_expects_and_no_other() {
        let received = |event: ServerEvent| {
            let ServerEvent::Reply(reply) = decode(event.encode(TOPIC, Some("1")).unwrap()).event
            else {
                panic!("a reply");
            };
            reply
        };
        let stored = received(ServerEvent::Reply(Reply::ok("2", StoredReply { id: 8 })));
        assert_eq!(stored.msg_ref, "2");
        assert_eq!(
            stored.clone().read::<StoredReply>(),
            Ok(Ok(StoredReply { id: 8 }))
        );
        let error = stored.read::<HistoryPage>().unwrap_err();
        assert!(
            error
                .to_string()
                .contains("the reply to history is malformed"),
            "{error}"
        );

        let refused = received(ServerEvent::Reply(Reply::error(
            "3",
            ErrorReply::new(ErrorCode::Forbidden, "only moderators may do that"),
        )));
        assert_eq!(
            refused.read::<EmptyReply>(),
            Ok(Err(ErrorReply::new(
                ErrorCode::Forbidden,
                "only moderators may do that"
            )))
        );

        // A body the server built reads the same way, and refuses the wrong type too.
        let built = ReplyBody::from(join_reply());
        assert_eq!(built.clone().read::<JoinReply>(), Ok(join_reply()));
        assert_eq!(
            built.read::<StoredReply>(),
            Err(ServerEventError::InvalidReply {
                expected: "chat, object_set or object_remove",
                reason: "the response is a join reply".into()
            })
        );
    }

    fn check_error(frame: &str, fragment: &str) {
        let error = ServerMessage::decode_text(frame)
            .expect_err(frame)
            .to_string();
        assert!(
            error.contains(fragment),
            "{frame}: {error:?} lacks {fragment:?}"
        );
    }

    #[test]
    fn unknown_events_and_bad_payloads_are_typed_errors() {
        check_error(r#"[null,null,"t","dance",{}]"#, "unknown event \"dance\"");
        check_error(
            r#"[null,null,"t","speaking",{"user_id":5}]"#,
            "\"speaking\" payload is malformed",
        );
        check_error(
            r#"["1",null,"t","phx_reply",{"status":"ok","response":{}}]"#,
            "carries no ref",
        );
        check_error(
            r#"["1","2","t","phx_reply",{"status":"maybe","response":{}}]"#,
            "unknown variant `maybe`",
        );
        check_error(
            r#"["1","2","t","phx_reply",{"status":"error","response":{}}]"#,
            "error response",
        );
        check_error(
            r#"["1","1","t","phx_close",{"why":"?"}]"#,
            "\"phx_close\" payload is malformed",
        );
        check_error(
            r#"[null,null,"t","event",[]]"#,
            "\"event\" payload is malformed",
        );
        check_error("[1,2", "not valid JSON");

        let mut out = Vec::new();
        frame::encode_broadcast(&mut out, TOPIC, POSES_EVENT, &[1, 0, 2, 0, 0, 0, 0, 0]).unwrap();
        let error = ServerMessage::decode_binary(&out).unwrap_err().to_string();
        assert!(error.contains("not a pose batch"), "{error}");
        out.clear();
        frame::encode_broadcast(&mut out, TOPIC, "confetti", &[]).unwrap();
        let error = ServerMessage::decode_binary(&out).unwrap_err().to_string();
        assert!(error.contains("unknown event \"confetti\""), "{error}");
        out.clear();
        frame::encode_reply(&mut out, "1", "7", TOPIC, "ok", &[]).unwrap();
        assert_eq!(
            ServerMessage::decode_binary(&out).unwrap().event,
            ServerEvent::Reply(Reply::ok("7", EmptyReply {}))
        );
    }

    #[test]
    fn a_close_without_a_reason_is_only_the_channel_ending() {
        let message = ServerMessage::decode_text(r#"["1","1","t","phx_close",{}]"#).unwrap();
        assert_eq!(message.event, ServerEvent::ChannelClose(None));
        let any =
            ServerMessage::decode_text(r#"["1","1","t","phx_error",{"whatever":1}]"#).unwrap();
        assert_eq!(any.event, ServerEvent::ChannelError);
        let reply = json!({"status": "ok", "response": {"id": 3}});
        let text = frame::encode_text_parts(Some("1"), Some("2"), "t", "phx_reply", &reply);
        let ServerEvent::Reply(reply) = ServerMessage::decode_text(&text).unwrap().event else {
            panic!("a reply");
        };
        assert_eq!(reply.read::<StoredReply>(), Ok(Ok(StoredReply { id: 3 })));
    }
}
