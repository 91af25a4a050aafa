// Generated from the Rust types in protocol/src by `cargo xtask codegen`.
// Do not edit: change the Rust types and regenerate.

export type ClientKind = "web" | "desktop" | "xr" | "quest";

export type JoinPayload = { protocol_version: number, name: string, 
/**
 * `#rrggbb`.
 */
colour: string, client_kind: ClientKind, 
/**
 * The id of the newest persisted event the client already has; the join
 * reply then carries only newer ones. Absent on a first join.
 */
last_seen_id?: number, };

export type JoinReply = { user_id: string, 
/**
 * This connection's slot: poses in batches are keyed by slot.
 */
slot: number, protocol_version: number, room: RoomSummary, 
/**
 * Persisted events newer than `last_seen_id`, oldest first: the newest
 * that fit in [`MAX_REPLAY_BYTES`] (and [`MAX_REPLAYED_EVENTS`]).
 */
events: Array<RoomEvent>, 
/**
 * True when older events newer than `last_seen_id` were left out: ask for
 * them with `history` (`before_id` = the first event's id).
 */
truncated: boolean, 
/**
 * How often the server sends pose batches.
 */
pose_rate_hz: number, 
/**
 * Who runs the room and whether it is locked.
 */
governance: Governance, 
/**
 * Every object in the room: where it rests and who holds it now. The
 * truth about objects; `object_set` events in `events` are history.
 */
objects: Array<ObjectSnapshot>, };

export type RoomSummary = { id: string, name: string, description: string, };

export type ErrorReply = { code: ErrorCode, reason: string, 
/**
 * Who holds the object, when a grab or change was refused for it
 * (`object_held`).
 */
holder?: ObjectHolder, };

export type ErrorCode = "unsupported_version" | "room_not_found" | "room_full" | "unknown_topic" | "unknown_event" | "invalid_payload" | "not_joined" | "already_joined" | "rate_limited" | "too_large" | "voice_unavailable" | "forbidden" | "room_locked" | "removed" | "room_deleted" | "limit_reached" | "object_held" | "object_not_found" | "internal";

export type RoomEvent = { id: number, user_id: string, 
/**
 * The sender's display name when it was sent.
 */
name: string, 
/**
 * Unix time, milliseconds.
 */
sent_at: number, body: RoomEventBody, };

export type RoomEventBody = { "type": "chat", text: string, } | { "type": "object_set", object_id: string, state: unknown, } | { "type": "object_remove", object_id: string, };

export type StoredReply = { id: number, };

export type EmptyReply = Record<symbol, never>;

export type ChatPush = { text: string, };

export type ObjectSetPush = { object_id: string, state: unknown, };

export type ObjectRemovePush = { object_id: string, };

export type ObjectKind = "cube" | "ball" | "marker";

export type ObjectState = { kind: ObjectKind, 
/**
 * `#rrggbb`.
 */
colour: string, 
/**
 * Metres, room coordinates.
 */
position: [number, number, number], 
/**
 * Unit quaternion `[x, y, z, w]`.
 */
orientation: [number, number, number, number], };

export type ObjectHolder = { user_id: string, name: string, 
/**
 * The holder's member slot, as in pose batches.
 */
slot: number, 
/**
 * Released and flying: the holder simulates it until it rests.
 */
throwing: boolean, };

export type ObjectSnapshot = { object_id: string, handle: number, state: ObjectState, holder?: ObjectHolder, };

export type ObjectGrabPush = { object_id: string, };

export type ObjectReleasePush = { object_id: string, };

export type ObjectGrabReply = { handle: number, };

export type ObjectHolderPush = { object_id: string, handle: number, holder?: ObjectHolder, };

export type UpdateProfilePush = { name?: string, colour?: string, };

export type SetMutedPush = { muted: boolean, };

export type SessionDescription = { sdp: string, };

export type IceCandidate = { candidate: string, sdp_mid?: string, sdp_mline_index?: number, };

export type VoiceTracks = { tracks: Array<VoiceTrack>, };

export type VoiceTrack = { mid: string, user_id: string, slot: number, };

export type Speaking = { user_id: string, speaking: boolean, };

export type Governance = { 
/**
 * The user who created the room; `None` for rooms made before rooms had
 * owners (only the server's admin runs those).
 */
owner_user_id: string | null, 
/**
 * Co-moderators the owner named (user ids).
 */
moderators: Array<string>, 
/**
 * A locked room refuses new joins; members already in stay.
 */
locked: boolean, };

export type ModeratePush = { "action": "mute", user_id: string, muted: boolean, } | { "action": "remove", user_id: string, } | { "action": "lock", locked: boolean, } | { "action": "moderator", user_id: string, moderator: boolean, };

export type ModerationNotice = { act: ModeratePush, by_user_id: string, by_name: string, 
/**
 * The display name of the member the act was about, when there was one in the room.
 */
target_name: string | null, governance: Governance, };

export type HistoryPush = { before_id: number, };

export type HistoryPage = { events: Array<RoomEvent>, 
/**
 * True when there are still older events.
 */
more: boolean, };

export type ClosePayload = ErrorReply;

export type Role = "member" | "moderator" | "owner";

export type PresenceMeta = { 
/**
 * Unique per join; phoenix.js matches metas by it.
 */
phx_ref: string, 
/**
 * The `phx_ref` this meta replaces after an update.
 */
phx_ref_prev?: string, name: string, 
/**
 * `#rrggbb`.
 */
colour: string, client_kind: ClientKind, 
/**
 * The member's slot: its poses in a batch carry this number.
 */
slot: number, 
/**
 * Unix time of the join, in milliseconds.
 */
joined_at: number, speaking: boolean, muted: boolean, 
/**
 * Muted by a moderator: the member cannot unmute itself. Left out when false.
 */
moderator_muted?: boolean, 
/**
 * Left out for plain members.
 */
role?: Role, };

export type PresenceEntry = { metas: Array<PresenceMeta>, };

export type PresenceDiff = { joins: { [key in string]: PresenceEntry }, leaves: { [key in string]: PresenceEntry }, };

export type PresenceState = Record<string, PresenceEntry>;

export const PROTOCOL_VERSION = 1;
export const MAX_FRAME_BYTES = 65536;
export const MAX_NAME_CHARS = 40;
export const MAX_CHAT_CHARS = 2000;
export const MAX_REPLAY_BYTES = 49152;
export const REMOVAL_BAN_SECONDS = 600;
export const POSE_BYTES = 31;
export const BATCH_HEADER_BYTES = 8;
export const BATCH_FORMAT_VERSION = 2;
export const POSE_REFRESH_MS = 1000;
export const OBJECT_POSE_BYTES = 14;
export const MAX_OBJECTS_PER_POSE_PUSH = 2;
export const MAX_OBJECTS_PER_ROOM = 64;
export const HOLD_SILENCE_MS = 2000;
export const OBJECT_KEEPALIVE_MS = 500;
export const MAX_FLIGHT_MS = 15000;
export const PRESENCE_STATE_EVENT = "presence_state";
export const PRESENCE_DIFF_EVENT = "presence_diff";
export const ROOM_EVENT_EVENT = "event";
export const POSES_EVENT = "poses";
export const POSE_EVENT = "pose";
export const VOICE_TRACKS_EVENT = "voice_tracks";
export const SPEAKING_EVENT = "speaking";
export const CHAT_EVENT = "chat";
export const OBJECT_SET_EVENT = "object_set";
export const OBJECT_REMOVE_EVENT = "object_remove";
export const OBJECT_GRAB_EVENT = "object_grab";
export const OBJECT_RELEASE_EVENT = "object_release";
export const OBJECT_HOLDER_EVENT = "object_holder";
export const UPDATE_PROFILE_EVENT = "update_profile";
export const SET_MUTED_EVENT = "set_muted";
export const RTC_OFFER_EVENT = "rtc_offer";
export const RTC_ANSWER_EVENT = "rtc_answer";
export const RTC_ICE_EVENT = "rtc_ice";
export const VOICE_LEAVE_EVENT = "voice_leave";
export const MODERATE_EVENT = "moderate";
export const HISTORY_EVENT = "history";
export const MODERATION_EVENT = "moderation";
