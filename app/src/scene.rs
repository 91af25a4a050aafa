//! The one scene model every mode draws: who is in the room (presence), each
//! remote avatar's interpolated track, this visitor's own slot, and the chat.
//! Desktop, headset and headless modes feed it room updates and ask it what to
//! draw at a given time; none of them keeps its own copy.

use std::collections::HashMap;

use glam::Vec3;
use roomscale_protocol::events::RoomEventBody;
use roomscale_protocol::pose::AvatarPose;

use crate::client::{Presence, RoomUpdate};
use crate::interpolation::AvatarTrack;
use crate::render::{self, AvatarInstance};

/// Chat lines kept for display.
const CHAT_KEPT: usize = 200;

/// How far above the head a name tag floats, in metres.
pub const NAME_TAG_HEIGHT: f32 = 0.22;

/// One remote avatar to draw at some moment.
#[derive(Debug, Clone)]
pub struct RemoteAvatar {
    pub instance: AvatarInstance,
    pub name: String,
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

/// A chat line: event id, speaker's name, text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatLine {
    pub id: u64,
    pub name: String,
    pub text: String,
}

/// The room as this visitor knows it. Times are seconds on the local clock.
#[derive(Debug, Default)]
pub struct RoomScene {
    presence: Presence,
    tracks: HashMap<u16, AvatarTrack>,
    own_slot: Option<u16>,
    chat: Vec<ChatLine>,
}

impl RoomScene {
    /// Joined or rejoined with `slot`. A rejoin may follow a server restart:
    /// slots are handed out again and the room's pose clock starts over, so
    /// every track begins anew and the own slot is the one just given.
    pub fn joined(&mut self, slot: u16) {
        self.own_slot = Some(slot);
        self.tracks.clear();
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

    /// Applies an update that arrived at `now`.
    pub fn apply(&mut self, now: f64, update: RoomUpdate) {
        match update {
            RoomUpdate::Joined { slot, .. } => self.joined(slot),
            RoomUpdate::Presence(presence) => {
                self.tracks
                    .retain(|slot, _| presence.by_slot(*slot).is_some());
                self.presence = presence;
            }
            RoomUpdate::Event(event) => {
                if let RoomEventBody::Chat { text } = event.body {
                    self.chat.push(ChatLine {
                        id: event.id,
                        name: event.name,
                        text,
                    });
                    if self.chat.len() > CHAT_KEPT {
                        self.chat.drain(..self.chat.len() - CHAT_KEPT);
                    }
                }
            }
            RoomUpdate::Poses {
                server_time_ms,
                poses,
            } => {
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
            .filter_map(|(_, meta)| {
                let pose: AvatarPose = self.tracks.get(&meta.slot)?.sample(now)?;
                Some(RemoteAvatar {
                    instance: AvatarInstance {
                        pose,
                        colour: render::colour_from_hex(&meta.colour).unwrap_or([0.7; 3]),
                    },
                    name: meta.name.clone(),
                    slot: meta.slot,
                    speaking: meta.speaking,
                })
            })
            .collect()
    }
}
