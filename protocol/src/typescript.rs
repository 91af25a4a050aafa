//! TypeScript declarations of the JSON wire types, generated from the Rust types
//! so the browser client cannot drift from the server. The output is committed
//! at `protocol/bindings/protocol.ts`; a test fails when it is stale.

use ts_rs::{Config, TS};

use crate::events::*;
use crate::presence::*;

/// The whole generated file.
pub fn generate() -> String {
    let cfg = Config::new().with_large_int("number");
    let mut out = String::from(
        "// Generated from the Rust types in protocol/src by `cargo xtask codegen`.\n\
         // Do not edit: change the Rust types and regenerate.\n\n",
    );
    let declarations = [
        ClientKind::decl(&cfg),
        JoinPayload::decl(&cfg),
        JoinReply::decl(&cfg),
        RoomSummary::decl(&cfg),
        ErrorReply::decl(&cfg),
        ErrorCode::decl(&cfg),
        RoomEvent::decl(&cfg),
        RoomEventBody::decl(&cfg),
        StoredReply::decl(&cfg),
        EmptyReply::decl(&cfg),
        ChatPush::decl(&cfg),
        ObjectSetPush::decl(&cfg),
        ObjectRemovePush::decl(&cfg),
        ObjectKind::decl(&cfg),
        ObjectState::decl(&cfg),
        ObjectHolder::decl(&cfg),
        ObjectSnapshot::decl(&cfg),
        ObjectGrabPush::decl(&cfg),
        ObjectReleasePush::decl(&cfg),
        ObjectGrabReply::decl(&cfg),
        ObjectHolderPush::decl(&cfg),
        UpdateProfilePush::decl(&cfg),
        SetMutedPush::decl(&cfg),
        SessionDescription::decl(&cfg),
        IceCandidate::decl(&cfg),
        VoiceTracks::decl(&cfg),
        VoiceTrack::decl(&cfg),
        Speaking::decl(&cfg),
        Governance::decl(&cfg),
        ModeratePush::decl(&cfg),
        ModerationNotice::decl(&cfg),
        HistoryPush::decl(&cfg),
        HistoryPage::decl(&cfg),
        "type ClosePayload = ErrorReply;".to_string(),
        Role::decl(&cfg),
        PresenceMeta::decl(&cfg),
        PresenceEntry::decl(&cfg),
        PresenceDiff::decl(&cfg),
        "type PresenceState = Record<string, PresenceEntry>;".to_string(),
    ];
    for decl in declarations {
        out.push_str("export ");
        out.push_str(&decl);
        out.push_str("\n\n");
    }
    out.push_str(&constants());
    out
}

fn constants() -> String {
    use crate::limits::*;
    use crate::objects::*;
    use crate::pose::*;
    let numbers: &[(&str, u64)] = &[
        ("PROTOCOL_VERSION", u64::from(crate::PROTOCOL_VERSION)),
        ("MAX_FRAME_BYTES", MAX_FRAME_BYTES as u64),
        ("MAX_NAME_CHARS", MAX_NAME_CHARS as u64),
        ("MAX_CHAT_CHARS", MAX_CHAT_CHARS as u64),
        ("MAX_REPLAY_BYTES", MAX_REPLAY_BYTES as u64),
        ("REMOVAL_BAN_SECONDS", REMOVAL_BAN_SECONDS),
        ("POSE_BYTES", POSE_BYTES as u64),
        ("BATCH_HEADER_BYTES", BATCH_HEADER_BYTES as u64),
        ("BATCH_FORMAT_VERSION", u64::from(BATCH_FORMAT_VERSION)),
        ("POSE_REFRESH_MS", POSE_REFRESH_MS),
        ("OBJECT_POSE_BYTES", OBJECT_POSE_BYTES as u64),
        (
            "MAX_OBJECTS_PER_POSE_PUSH",
            MAX_OBJECTS_PER_POSE_PUSH as u64,
        ),
        ("MAX_OBJECTS_PER_ROOM", MAX_OBJECTS_PER_ROOM as u64),
        ("HOLD_SILENCE_MS", HOLD_SILENCE_MS),
        ("OBJECT_KEEPALIVE_MS", OBJECT_KEEPALIVE_MS),
        ("MAX_FLIGHT_MS", MAX_FLIGHT_MS),
    ];
    let events: &[(&str, &str)] = &[
        ("PRESENCE_STATE_EVENT", PRESENCE_STATE_EVENT),
        ("PRESENCE_DIFF_EVENT", PRESENCE_DIFF_EVENT),
        ("ROOM_EVENT_EVENT", ROOM_EVENT_EVENT),
        ("POSES_EVENT", POSES_EVENT),
        ("POSE_EVENT", POSE_EVENT),
        ("VOICE_TRACKS_EVENT", VOICE_TRACKS_EVENT),
        ("SPEAKING_EVENT", SPEAKING_EVENT),
        ("CHAT_EVENT", CHAT_EVENT),
        ("OBJECT_SET_EVENT", OBJECT_SET_EVENT),
        ("OBJECT_REMOVE_EVENT", OBJECT_REMOVE_EVENT),
        ("OBJECT_GRAB_EVENT", OBJECT_GRAB_EVENT),
        ("OBJECT_RELEASE_EVENT", OBJECT_RELEASE_EVENT),
        ("OBJECT_HOLDER_EVENT", OBJECT_HOLDER_EVENT),
        ("UPDATE_PROFILE_EVENT", UPDATE_PROFILE_EVENT),
        ("SET_MUTED_EVENT", SET_MUTED_EVENT),
        ("RTC_OFFER_EVENT", RTC_OFFER_EVENT),
        ("RTC_ANSWER_EVENT", RTC_ANSWER_EVENT),
        ("RTC_ICE_EVENT", RTC_ICE_EVENT),
        ("VOICE_LEAVE_EVENT", VOICE_LEAVE_EVENT),
        ("MODERATE_EVENT", MODERATE_EVENT),
        ("HISTORY_EVENT", HISTORY_EVENT),
        ("MODERATION_EVENT", MODERATION_EVENT),
    ];
    let mut out = String::new();
    for (name, value) in numbers {
        out.push_str(&format!("export const {name} = {value};\n"));
    }
    for (name, value) in events {
        out.push_str(&format!("export const {name} = \"{value}\";\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn committed_bindings_are_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/bindings/protocol.ts");
        let generated = super::generate();
        if std::env::var_os("ROOMSCALE_BLESS").is_some() {
            std::fs::write(path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == generated,
            "protocol/bindings/protocol.ts is stale: run `cargo xtask codegen` and commit it"
        );
    }
}
