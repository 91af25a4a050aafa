//! Presence in the exact shape phoenix.js `Presence` consumes: a state maps each
//! key (our user id) to `{metas: [...]}`, one meta per connection of that user;
//! a diff carries `joins` and `leaves` in the same shape. Each meta has a unique
//! `phx_ref`, which phoenix.js uses to tell metas apart.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// What kind of client joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ClientKind {
    /// A browser, flat or immersive.
    Web,
    /// The native app in a desktop window.
    Desktop,
    /// The native app through OpenXR on a PC.
    Xr,
    /// The native app on a standalone Quest.
    Quest,
}

/// One connection of a user in a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct PresenceMeta {
    /// Unique per join; phoenix.js matches metas by it.
    pub phx_ref: String,
    /// The `phx_ref` this meta replaces after an update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub phx_ref_prev: Option<String>,
    pub name: String,
    /// `#rrggbb`.
    pub colour: String,
    pub client_kind: ClientKind,
    /// The member's slot: its poses in a batch carry this number.
    pub slot: u16,
    /// Unix time of the join, in milliseconds.
    #[ts(type = "number")]
    pub joined_at: i64,
    #[serde(default)]
    pub speaking: bool,
    #[serde(default)]
    pub muted: bool,
    /// Muted by a moderator: the member cannot unmute itself. Left out when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[ts(as = "Option<bool>", optional)]
    pub moderator_muted: bool,
    /// Left out for plain members.
    #[serde(default, skip_serializing_if = "Role::is_member")]
    #[ts(as = "Option<Role>", optional)]
    pub role: Role,
}

/// What a member may do in the room.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    #[default]
    Member,
    /// Named by the owner: may mute, remove and lock.
    Moderator,
    /// Created the room: may moderate and name moderators.
    Owner,
}

impl Role {
    pub fn is_member(&self) -> bool {
        *self == Role::Member
    }
}

/// All metas of one user.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
pub struct PresenceEntry {
    pub metas: Vec<PresenceMeta>,
}

/// `presence_state`: everyone in the room, keyed by user id.
pub type PresenceState = BTreeMap<String, PresenceEntry>;

/// `presence_diff`: who joined and who left since the last state or diff.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
pub struct PresenceDiff {
    pub joins: BTreeMap<String, PresenceEntry>,
    pub leaves: BTreeMap<String, PresenceEntry>,
}

impl PresenceDiff {
    pub fn is_empty(&self) -> bool {
        self.joins.is_empty() && self.leaves.is_empty()
    }
}
