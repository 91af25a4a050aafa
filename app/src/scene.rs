//! The one scene model every mode draws: who is in the room (presence), each
//! remote avatar's interpolated track, this visitor's own slot, the chat with
//! the room's moderation acts among it, and who may moderate. Desktop, headset
//! and headless modes feed it room updates and ask it what to draw at a given
//! time; none of them keeps its own copy.
//!
//! Names are shown with the per-user tag beside them ([`tagged`]), so two
//! people who chose the same name still look different.
//!
//! The chat keeps the newest lines; older history comes in pages on demand
//! ([`RoomScene::history_before`] says from where, [`RoomScene::older_page`]
//! takes a page in), and a line is never shown twice.

use std::collections::HashMap;

use glam::Vec3;
use roomscale_protocol::events::{
    ClosePayload, Governance, HistoryPage, ModeratePush, ModerationNotice, RoomEventBody,
};
use roomscale_protocol::names::user_tag;
use roomscale_protocol::pose::AvatarPose;
use roomscale_protocol::presence::{PresenceMeta, Role};

use crate::client::{Presence, RoomUpdate};
use crate::colour::colour_from_hex;
use crate::interpolation::AvatarTrack;
use crate::objects::Objects;
use crate::render::AvatarInstance;

/// Chat lines kept while nobody asks for older ones.
const CHAT_KEPT: usize = 200;
/// Most chat lines kept however much older history is loaded.
const CHAT_MOST: usize = 5_000;

/// A name as people see it: with the user's tag beside it, `Ada (K3F2)`.
pub fn tagged(name: &str, user_id: &str) -> String {
    format!("{name} ({})", user_tag(user_id))
}

/// How far above the head a name tag floats, in metres.
pub const NAME_TAG_HEIGHT: f32 = 0.22;

/// One remote avatar to draw at some moment.
#[derive(Debug, Clone)]
pub struct RemoteAvatar {
    pub instance: AvatarInstance,
    pub name: String,
    /// The name with the user's tag, as name tags show it.
    pub label: String,
    pub slot: u16,
    /// The server hears this person speak now (name tags show a ring).
    pub speaking: bool,
}

impl RemoteAvatar {
    /// Where this avatar's name tag goes.
    pub fn name_tag_position(&self) -> Vec3 {
        Vec3::from(self.instance.pose.head.position) + Vec3::Y * NAME_TAG_HEIGHT
    }
}

/// A line in the chat log: something said, or a moderation act.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatLine {
    /// The chat event's id; `None` for lines that are not stored events
    /// (moderation acts, the end of the visit).
    pub id: Option<u64>,
    /// Who said it, tagged; empty for lines that are not speech.
    pub name: String,
    pub text: String,
}

impl ChatLine {
    /// The line as the chat shows it.
    pub fn display(&self) -> String {
        if self.name.is_empty() {
            format!("— {}", self.text)
        } else {
            format!("{}: {}", self.name, self.text)
        }
    }

    fn notice(text: String) -> ChatLine {
        ChatLine {
            id: None,
            name: String::new(),
            text,
        }
    }
}

/// What this visitor may do to one other person in the room.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Allowed {
    /// Mute or unmute their voice.
    pub mute: bool,
    /// Remove them from the room.
    pub remove: bool,
    /// Make them a moderator or take it back (the owner only).
    pub name_moderator: bool,
}

/// The room as this visitor knows it. Times are seconds on the local clock.
#[derive(Debug, Default)]
pub struct RoomScene {
    presence: Presence,
    tracks: HashMap<u16, AvatarTrack>,
    own_slot: Option<u16>,
    chat: Vec<ChatLine>,
    /// How many chat lines are kept: grows as older pages are loaded.
    chat_limit: usize,
    /// Bumped whenever a line is added, so a view can tell it changed.
    chat_revision: u64,
    /// Events older than this id exist and are not in the chat.
    history_before: Option<u64>,
    governance: Governance,
    /// Why the server ended this visit, once it did.
    closed: Option<ClosePayload>,
    /// Every shared object, and this visitor's holds and throws.
    objects: Objects,
}

impl RoomScene {
    /// Joined or rejoined with `slot`. A rejoin may follow a server restart:
    /// slots are handed out again and the room's pose clock starts over, so
    /// every track begins anew and the own slot is the one just given.
    pub fn joined(&mut self, slot: u16) {
        self.own_slot = Some(slot);
        self.tracks.clear();
        self.objects.set_own_slot(Some(slot));
    }

    /// Every shared object: what to draw ([`Objects::displayed`]) and the
    /// holds this visitor makes.
    pub fn objects(&self) -> &Objects {
        &self.objects
    }

    pub fn objects_mut(&mut self) -> &mut Objects {
        &mut self.objects
    }

    /// Left the room: nothing remains.
    pub fn left(&mut self) {
        *self = RoomScene::default();
    }

    pub fn own_slot(&self) -> Option<u16> {
        self.own_slot
    }

    pub fn presence(&self) -> &Presence {
        &self.presence
    }

    pub fn chat(&self) -> &[ChatLine] {
        &self.chat
    }

    /// Changes whenever a chat line is added.
    pub fn chat_revision(&self) -> u64 {
        self.chat_revision
    }

    /// Older events exist before this id and are not shown: ask the room
    /// client for `history(id)` and hand the page to [`Self::older_page`].
    pub fn history_before(&self) -> Option<u64> {
        self.history_before
    }

    /// Takes in a page of history asked for with `before_id`. A page that no
    /// longer fits (asked before the chat moved on) is ignored.
    pub fn older_page(&mut self, before_id: u64, page: HistoryPage) {
        if self.history_before != Some(before_id) {
            return;
        }
        self.history_before = if page.more {
            page.events.first().map(|e| e.id)
        } else {
            None
        };
        let older: Vec<ChatLine> = page
            .events
            .into_iter()
            .filter(|event| event.id < before_id)
            .filter_map(|event| match event.body {
                RoomEventBody::Chat { text } => Some(ChatLine {
                    id: Some(event.id),
                    name: tagged(&event.name, &event.user_id),
                    text,
                }),
                _ => None,
            })
            .collect();
        self.chat_revision += 1;
        self.chat.splice(0..0, older);
        // What was asked for stays while new lines come, for a while.
        self.chat_limit = (self.chat.len() + CHAT_KEPT)
            .max(self.limit())
            .min(CHAT_MOST);
        self.trim();
    }

    /// The room's owner, moderators and lock.
    pub fn governance(&self) -> &Governance {
        &self.governance
    }

    /// Why the server ended this visit (removed, room deleted), once it did.
    pub fn closed(&self) -> Option<&ClosePayload> {
        self.closed.as_ref()
    }

    /// This visitor's user id and presence, once presence shows its slot.
    pub fn own_member(&self) -> Option<(&str, &PresenceMeta)> {
        self.presence.by_slot(self.own_slot?)
    }

    /// This visitor's role: presence says, else the governance.
    pub fn own_role(&self) -> Role {
        let Some((user_id, meta)) = self.own_member() else {
            return Role::Member;
        };
        if self.governance.is_owner(user_id) {
            Role::Owner
        } else if self.governance.may_moderate(user_id) {
            Role::Moderator
        } else {
            meta.role
        }
    }

    /// A moderator muted this visitor: its own unmute does nothing until
    /// they take it back.
    pub fn own_moderator_muted(&self) -> bool {
        self.own_member()
            .is_some_and(|(_, meta)| meta.moderator_muted)
    }

    /// May this visitor lock or unlock the room.
    pub fn may_lock(&self) -> bool {
        self.own_role() != Role::Member
    }

    /// What this visitor may do to `user_id`: moderators mute and remove
    /// members, the owner also names moderators; nobody acts on themselves
    /// or on the owner.
    pub fn allowed_on(&self, user_id: &str) -> Allowed {
        let own = self.own_role();
        let own_id = self.own_member().map(|(id, _)| id);
        if own == Role::Member || own_id == Some(user_id) || self.governance.is_owner(user_id) {
            return Allowed::default();
        }
        let target_is_moderator = self.governance.may_moderate(user_id);
        let owner = own == Role::Owner;
        Allowed {
            // A moderator does not act on another moderator; the owner may.
            mute: owner || !target_is_moderator,
            remove: owner || !target_is_moderator,
            name_moderator: owner,
        }
    }

    /// Whether `user_id` is a moderator (the owner not counted).
    pub fn is_moderator(&self, user_id: &str) -> bool {
        self.governance.may_moderate(user_id) && !self.governance.is_owner(user_id)
    }

    fn limit(&self) -> usize {
        if self.chat_limit == 0 {
            CHAT_KEPT
        } else {
            self.chat_limit
        }
    }

    fn push_line(&mut self, line: ChatLine) {
        self.chat.push(line);
        self.chat_revision += 1;
        self.trim();
    }

    /// Drops the oldest lines beyond the limit; what they held of history
    /// can be asked for again.
    fn trim(&mut self) {
        let limit = self.limit();
        if self.chat.len() <= limit {
            return;
        }
        let dropped: Vec<ChatLine> = self.chat.drain(..self.chat.len() - limit).collect();
        if let Some(newest_dropped) = dropped.iter().rev().find_map(|line| line.id) {
            self.history_before = Some(newest_dropped + 1);
        }
    }

    /// Applies an update that arrived at `now`.
    pub fn apply(&mut self, now: f64, update: RoomUpdate) {
        self.apply_update(now, update);
        // A refused grab names the holder in the chat.
        for notice in self.objects.take_notices() {
            self.push_line(ChatLine::notice(notice));
        }
    }

    fn apply_update(&mut self, now: f64, update: RoomUpdate) {
        match update {
            RoomUpdate::Joined { slot, .. } => self.joined(slot),
            RoomUpdate::Presence(presence) => {
                self.tracks
                    .retain(|slot, _| presence.by_slot(*slot).is_some());
                self.presence = presence;
            }
            RoomUpdate::Event(event) => {
                self.objects.on_event(&event);
                if let RoomEventBody::Chat { text } = event.body {
                    self.push_line(ChatLine {
                        id: Some(event.id),
                        name: tagged(&event.name, &event.user_id),
                        text,
                    });
                }
            }
            RoomUpdate::Governance(governance) => self.governance = governance,
            RoomUpdate::OlderHistory { before_id } => self.history_before = Some(before_id),
            RoomUpdate::Moderation(notice) => {
                let line = moderation_line(&notice);
                self.governance = notice.governance;
                self.push_line(ChatLine::notice(line));
            }
            // Out of the room: nobody is shown any more, and this visitor
            // holds no slot; the chat stays, ending with why.
            RoomUpdate::Closed(why) => {
                self.push_line(ChatLine::notice(closed_line(&why)));
                self.closed = Some(why);
                self.presence = Presence::default();
                self.tracks.clear();
                self.own_slot = None;
                self.objects.clear();
            }
            RoomUpdate::Objects(snapshot) => {
                let own_slot = self.own_slot.unwrap_or(u16::MAX);
                self.objects.joined(own_slot, &snapshot);
            }
            RoomUpdate::ObjectHolder(push) => self.objects.on_holder(&push),
            RoomUpdate::ObjectReply(reply) => self.objects.on_reply(reply, now),
            RoomUpdate::Poses {
                server_time_ms,
                poses,
                objects,
            } => {
                self.objects.on_poses(now, server_time_ms, &objects);
                let server_time = f64::from(server_time_ms) / 1000.0;
                for (slot, pose) in poses {
                    if Some(slot) != self.own_slot {
                        self.tracks
                            .entry(slot)
                            .or_default()
                            .push(now, server_time, pose);
                    }
                }
            }
            RoomUpdate::ConnectionLost { .. } => {}
        }
    }

    /// Every remote member with a pose, as it should be shown at `now`.
    pub fn remote_avatars(&self, now: f64) -> Vec<RemoteAvatar> {
        self.presence
            .members()
            .filter(|(_, meta)| Some(meta.slot) != self.own_slot)
            .filter_map(|(user, meta)| {
                let pose: AvatarPose = self.tracks.get(&meta.slot)?.sample(now)?;
                Some(RemoteAvatar {
                    instance: AvatarInstance {
                        pose,
                        colour: colour_from_hex(&meta.colour).unwrap_or([0.7; 3]),
                    },
                    name: meta.name.clone(),
                    label: tagged(&meta.name, user),
                    slot: meta.slot,
                    speaking: meta.speaking,
                })
            })
            .collect()
    }
}

/// A moderation act as a line in the chat: who did what to whom.
pub fn moderation_line(notice: &ModerationNotice) -> String {
    let by = tagged(&notice.by_name, &notice.by_user_id);
    let target = |user_id: &str| match &notice.target_name {
        Some(name) => tagged(name, user_id),
        None => format!("someone not in the room ({})", user_tag(user_id)),
    };
    match &notice.act {
        ModeratePush::Mute {
            user_id,
            muted: true,
        } => format!("{by} muted {}", target(user_id)),
        ModeratePush::Mute {
            user_id,
            muted: false,
        } => format!("{by} unmuted {}", target(user_id)),
        ModeratePush::Remove { user_id } => {
            format!("{by} removed {} from the room", target(user_id))
        }
        ModeratePush::Lock { locked: true } => format!("{by} locked the room: nobody new can join"),
        ModeratePush::Lock { locked: false } => format!("{by} unlocked the room"),
        ModeratePush::Moderator {
            user_id,
            moderator: true,
        } => format!("{by} made {} a moderator", target(user_id)),
        ModeratePush::Moderator {
            user_id,
            moderator: false,
        } => format!("{by} took moderator rights from {}", target(user_id)),
    }
}

/// Why the visit ended, as a person reads it.
pub fn closed_line(why: &ClosePayload) -> String {
    use roomscale_protocol::events::ErrorCode;
    let what = match why.code {
        ErrorCode::Removed => "A moderator removed you from this room",
        ErrorCode::RoomDeleted => "This room was deleted",
        _ => "The server ended your visit",
    };
    format!("{what}: {}", why.reason)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use roomscale_protocol::events::{ClientKind, ErrorCode, ErrorReply, RoomEvent};
    use roomscale_protocol::presence::{PresenceEntry, PresenceState};

    fn chat(id: u64) -> RoomEvent {
        RoomEvent {
            id,
            user_id: "u-ada".into(),
            name: "Ada".into(),
            sent_at: 0,
            body: RoomEventBody::Chat {
                text: format!("message {id}"),
            },
        }
    }

    fn ids(scene: &RoomScene) -> Vec<u64> {
        scene.chat().iter().filter_map(|line| line.id).collect()
    }

    pub(crate) fn meta(slot: u16, name: &str, role: Role) -> PresenceMeta {
        PresenceMeta {
            phx_ref: format!("ref{slot}"),
            phx_ref_prev: None,
            name: name.into(),
            colour: "#808080".into(),
            client_kind: ClientKind::Desktop,
            slot,
            joined_at: 0,
            speaking: false,
            muted: false,
            moderator_muted: false,
            role,
        }
    }

    /// Presence in which a moderator muted Mia (`u-member`, slot 3), with
    /// Olga the owner beside her.
    pub(crate) fn mute_mia_by_moderator(scene: &mut RoomScene) {
        let mut muted = meta(3, "Mia", Role::Member);
        muted.moderator_muted = true;
        muted.muted = true;
        let mut presence = scene.presence().clone();
        presence.replace(
            [
                (
                    "u-owner".to_string(),
                    PresenceEntry {
                        metas: vec![meta(1, "Olga", Role::Owner)],
                    },
                ),
                ("u-member".to_string(), PresenceEntry { metas: vec![muted] }),
            ]
            .into(),
        );
        scene.apply(0.0, RoomUpdate::Presence(presence));
    }

    /// A room with an owner (Olga, `u-owner`, slot 1), a moderator (Mo,
    /// `u-mod`, slot 2) and a member (Mia, `u-member`, slot 3); this visitor
    /// holds `own_slot`.
    pub(crate) fn room(own_slot: u16) -> RoomScene {
        let mut scene = RoomScene::default();
        scene.joined(own_slot);
        let state: PresenceState = [
            ("u-owner", meta(1, "Olga", Role::Owner)),
            ("u-mod", meta(2, "Mo", Role::Moderator)),
            ("u-member", meta(3, "Mia", Role::Member)),
        ]
        .into_iter()
        .map(|(user, meta)| (user.to_string(), PresenceEntry { metas: vec![meta] }))
        .collect();
        let mut presence = Presence::default();
        presence.replace(state);
        scene.apply(0.0, RoomUpdate::Presence(presence));
        scene.apply(
            0.0,
            RoomUpdate::Governance(Governance {
                owner_user_id: Some("u-owner".into()),
                moderators: vec!["u-mod".into()],
                locked: false,
            }),
        );
        scene
    }

    #[test]
    fn older_pages_go_before_the_replay_once_each_until_none_are_left() {
        let mut scene = RoomScene::default();
        scene.joined(1);
        scene.apply(0.0, RoomUpdate::OlderHistory { before_id: 10 });
        for id in 10..=15 {
            scene.apply(0.0, RoomUpdate::Event(chat(id)));
        }
        assert_eq!(scene.history_before(), Some(10));
        let page = |range: std::ops::RangeInclusive<u64>, more| HistoryPage {
            events: range.map(chat).collect(),
            more,
        };
        scene.older_page(10, page(5..=9, true));
        assert_eq!(ids(&scene), (5..=15).collect::<Vec<_>>());
        assert_eq!(scene.history_before(), Some(5));
        // The same page asked for twice: the second answer is stale.
        scene.older_page(10, page(5..=9, true));
        assert_eq!(ids(&scene), (5..=15).collect::<Vec<_>>());
        scene.older_page(5, page(1..=4, false));
        assert_eq!(ids(&scene), (1..=15).collect::<Vec<_>>());
        assert_eq!(scene.history_before(), None, "nothing older is left");
        assert_eq!(
            scene.chat()[0].display(),
            "Ada (".to_string() + &user_tag("u-ada") + "): message 1"
        );
    }

    #[test]
    fn lines_dropped_to_keep_the_chat_short_can_be_loaded_again_without_repeats() {
        let mut scene = RoomScene::default();
        scene.joined(1);
        for id in 1..=250 {
            scene.apply(0.0, RoomUpdate::Event(chat(id)));
        }
        assert_eq!(ids(&scene), (51..=250).collect::<Vec<_>>());
        assert_eq!(scene.history_before(), Some(51));
        let revision = scene.chat_revision();
        scene.older_page(
            51,
            HistoryPage {
                events: (1..=50).map(chat).collect(),
                more: false,
            },
        );
        assert!(scene.chat_revision() > revision);
        assert_eq!(ids(&scene), (1..=250).collect::<Vec<_>>());
        assert_eq!(scene.history_before(), None);
        // Loaded history stays while new lines come.
        scene.apply(0.0, RoomUpdate::Event(chat(251)));
        assert_eq!(ids(&scene).len(), 251);
    }

    #[test]
    fn moderation_acts_are_chat_lines_with_tagged_names_and_change_the_governance() {
        let mut scene = room(3);
        let notice = |act| ModerationNotice {
            act,
            by_user_id: "u-owner".into(),
            by_name: "Olga".into(),
            target_name: Some("Mia".into()),
            governance: Governance {
                owner_user_id: Some("u-owner".into()),
                moderators: vec!["u-mod".into(), "u-member".into()],
                locked: true,
            },
        };
        scene.apply(
            0.0,
            RoomUpdate::Moderation(notice(ModeratePush::Moderator {
                user_id: "u-member".into(),
                moderator: true,
            })),
        );
        let line = scene.chat().last().unwrap();
        assert_eq!(line.id, None);
        assert_eq!(
            line.display(),
            format!(
                "— Olga ({}) made Mia ({}) a moderator",
                user_tag("u-owner"),
                user_tag("u-member")
            )
        );
        assert!(scene.governance().locked);
        assert_eq!(scene.own_role(), Role::Moderator, "the governance says so");
        for (act, expected) in [
            (
                ModeratePush::Mute {
                    user_id: "u-member".into(),
                    muted: true,
                },
                "muted Mia",
            ),
            (
                ModeratePush::Mute {
                    user_id: "u-member".into(),
                    muted: false,
                },
                "unmuted Mia",
            ),
            (
                ModeratePush::Remove {
                    user_id: "u-member".into(),
                },
                "removed Mia",
            ),
            (ModeratePush::Lock { locked: true }, "locked the room"),
            (ModeratePush::Lock { locked: false }, "unlocked the room"),
        ] {
            let line = moderation_line(&notice(act));
            assert!(line.contains(expected), "{line}");
        }
    }

    #[test]
    fn only_the_owner_and_moderators_get_controls_and_never_on_the_owner() {
        let as_owner = room(1);
        assert_eq!(as_owner.own_role(), Role::Owner);
        assert!(as_owner.may_lock());
        assert_eq!(
            as_owner.allowed_on("u-mod"),
            Allowed {
                mute: true,
                remove: true,
                name_moderator: true
            }
        );
        assert_eq!(
            as_owner.allowed_on("u-owner"),
            Allowed::default(),
            "not on oneself"
        );

        let as_moderator = room(2);
        assert!(as_moderator.may_lock());
        assert_eq!(
            as_moderator.allowed_on("u-member"),
            Allowed {
                mute: true,
                remove: true,
                name_moderator: false
            }
        );
        assert_eq!(as_moderator.allowed_on("u-owner"), Allowed::default());
        assert_eq!(
            as_moderator.allowed_on("u-mod"),
            Allowed::default(),
            "a moderator does not act on moderators"
        );

        let as_member = room(3);
        assert!(!as_member.may_lock());
        for user in ["u-owner", "u-mod", "u-member"] {
            assert_eq!(as_member.allowed_on(user), Allowed::default(), "{user}");
        }
    }

    #[test]
    fn the_end_of_a_visit_says_why() {
        let mut scene = room(3);
        scene.apply(
            0.0,
            RoomUpdate::Closed(ErrorReply::new(
                ErrorCode::Removed,
                "you can rejoin in 10 minutes",
            )),
        );
        assert_eq!(scene.closed().map(|why| why.code), Some(ErrorCode::Removed));
        assert_eq!(scene.own_slot(), None, "out of the room");
        assert_eq!(scene.presence().members().count(), 0);
        assert_eq!(
            scene.chat().last().unwrap().display(),
            "— A moderator removed you from this room: you can rejoin in 10 minutes"
        );
    }

    /// Batches may carry this visitor's own pose (the server shares one
    /// batch per room): it never becomes a remote avatar or a track, also
    /// after a rejoin moved this visitor to another slot.
    #[test]
    fn the_own_slot_in_a_pose_batch_is_never_shown_or_tracked() {
        let mut scene = room(2);
        let batch = |server_time_ms: u32| RoomUpdate::Poses {
            server_time_ms,
            poses: [1, 2, 3]
                .into_iter()
                .map(|slot| (slot, AvatarPose::default()))
                .collect(),
            objects: Vec::new(),
        };
        for tick in 0..6 {
            scene.apply(f64::from(tick) * 0.033, batch(tick * 33));
        }
        let slots = |scene: &RoomScene| {
            let mut slots: Vec<u16> = scene.remote_avatars(0.5).iter().map(|a| a.slot).collect();
            slots.sort();
            slots
        };
        assert_eq!(slots(&scene), [1, 3]);
        assert!(!scene.tracks.contains_key(&2), "no track of its own");

        scene.apply(
            0.3,
            RoomUpdate::Joined {
                room: roomscale_protocol::events::RoomSummary {
                    id: "r".into(),
                    name: "Lobby".into(),
                    description: String::new(),
                },
                slot: 3,
            },
        );
        for tick in 0..6 {
            scene.apply(0.3 + f64::from(tick) * 0.033, batch(tick * 33));
        }
        assert_eq!(slots(&scene), [1, 2]);
        assert!(
            !scene.tracks.contains_key(&3),
            "no track of its new own slot"
        );
    }

    #[test]
    fn own_moderator_mute_comes_from_presence() {
        let mut scene = room(3);
        assert!(!scene.own_moderator_muted());
        mute_mia_by_moderator(&mut scene);
        assert!(scene.own_moderator_muted());
        assert_eq!(scene.own_member().map(|(id, _)| id), Some("u-member"));
    }

    /// A join replays `object_set`s as chat history; the snapshot after
    /// them is what the scene shows, and a refused grab names the holder in
    /// the chat.
    #[test]
    fn objects_come_from_the_snapshot_and_refusals_reach_the_chat() {
        use roomscale_protocol::objects::{ObjectHolder, ObjectKind, ObjectSnapshot, ObjectState};
        let mut scene = RoomScene::default();
        scene.joined(2);
        let state = |x: f32| ObjectState {
            kind: ObjectKind::Ball,
            colour: "#00ff00".into(),
            position: [x, 0.06, 0.0],
            orientation: [0.0, 0.0, 0.0, 1.0],
        };
        let old_rest = RoomEvent {
            body: RoomEventBody::ObjectSet {
                object_id: "ball-1".into(),
                state: state(1.0).to_value(),
            },
            ..chat(3)
        };
        scene.apply(0.0, RoomUpdate::Event(old_rest));
        let holder = ObjectHolder {
            user_id: "u-bo".into(),
            name: "Bo".into(),
            slot: 5,
            throwing: false,
        };
        scene.apply(
            0.0,
            RoomUpdate::Objects(vec![ObjectSnapshot {
                object_id: "ball-1".into(),
                handle: 1,
                state: state(2.0),
                holder: Some(holder),
            }]),
        );
        let ball = scene.objects().shown("ball-1", 0.1).unwrap();
        assert_eq!(ball.position, [2.0, 0.06, 0.0]);
        assert_eq!(ball.holder.map(|h| h.name), Some("Bo".into()));
        assert_eq!(scene.objects_mut().grab("ball-1", 0.1), None);
        scene.apply(0.2, RoomUpdate::Presence(Presence::default()));
        assert_eq!(
            scene.chat().last().unwrap().display(),
            "— ball-1 is held by Bo"
        );
    }
}
