//! The pose relay: once per tick, the poses that changed (avatars', then
//! moving objects') go out as one frame every member shares, and a newcomer
//! gets everyone's latest pose and every moving object's.

use super::*;

impl RoomState {
    /// Sends the poses that changed since the last tick as one frame every
    /// member shares (each client skips its own slot), and a member that just
    /// joined a frame with everyone's latest pose.
    pub(super) fn relay_poses(&mut self, now: Instant) {
        self.ticks += 1;
        if self.ticks.is_multiple_of(VOICE_POSITIONS_EVERY_TICKS) && self.members.len() > 1 {
            let heads = self
                .members
                .iter()
                .filter_map(|(&id, m)| {
                    let (_, pose) = pose::decode_pose(&m.latest_pose?).ok()?;
                    Some((id, pose.head.position))
                })
                .collect();
            self.outputs
                .push_back(Output::Voice(VoiceEffect::Positions { heads }));
        }
        let server_time_ms = now.saturating_duration_since(self.started).as_millis() as u32;
        let mut poses = std::mem::take(&mut self.tick_poses);
        poses.clear();
        let mut objects = Vec::new();
        let mut newcomers = Vec::new();
        // Whose poses the frame carries: one member alone gets nothing from it.
        let mut senders = Senders::default();
        for (&id, m) in self.members.iter_mut() {
            if m.needs_every_pose {
                newcomers.push(id);
            }
            if m.pose_changed {
                m.pose_changed = false;
                if let Some(pose) = m.latest_pose {
                    poses.push(pose);
                    senders.add(id);
                }
            }
        }
        self.take_object_poses(&mut objects, &mut senders);
        if !poses.is_empty() || !objects.is_empty() {
            let mut skip = newcomers.clone();
            if let Senders::One(only_sender) = senders {
                skip.push(only_sender);
            }
            if skip.len() < self.members.len() {
                self.outputs.push_back(Output::Poses {
                    to: self.recipients.clone(),
                    skip,
                    frame: SharedPoseFrame::encode(&self.topic, server_time_ms, &poses, &objects),
                });
            }
        }
        if !newcomers.is_empty() {
            poses.clear();
            objects.clear();
            let mut only_pose_of = None;
            for (&id, m) in &self.members {
                if let Some(pose) = m.latest_pose {
                    poses.push(pose);
                    only_pose_of = Some(id);
                }
            }
            // Every object in motion: a newcomer sees it where it is now.
            self.moving_object_poses(&mut objects);
            if poses.len() > 1 || !objects.is_empty() {
                only_pose_of = None;
            }
            let mut to = Vec::with_capacity(newcomers.len());
            for id in newcomers {
                let Some(m) = self.members.get_mut(&id) else {
                    continue;
                };
                m.needs_every_pose = false;
                // Its own pose alone is nothing to send it.
                if only_pose_of != Some(id) {
                    to.push(Recipient {
                        member: id,
                        address: m.address.clone(),
                    });
                }
            }
            if (!poses.is_empty() || !objects.is_empty()) && !to.is_empty() {
                self.outputs.push_back(Output::Poses {
                    to: Arc::from(to),
                    skip: Vec::new(),
                    frame: SharedPoseFrame::encode(&self.topic, server_time_ms, &poses, &objects),
                });
            }
        }
        self.tick_poses = poses;
    }
}

/// Whose poses a tick's frame carries, as far as skipping goes: a member
/// whose own poses are all the frame holds gets nothing from it. Kept as a
/// state rather than a list, so the tick allocates nothing for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum Senders {
    #[default]
    Nobody,
    One(MemberId),
    Several,
}

impl Senders {
    pub(super) fn add(&mut self, member: MemberId) {
        *self = match *self {
            Senders::Nobody => Senders::One(member),
            Senders::One(only) if only == member => Senders::One(only),
            _ => Senders::Several,
        };
    }
}
