//! Moderation acts: mute, remove (with a ban), lock and co-moderators (stored
//! before they take effect), and closing the room's live session.

use super::*;

impl RoomState {
    pub(super) fn moderate(
        &mut self,
        member: MemberId,
        msg_ref: String,
        act: ModeratePush,
        now: Instant,
    ) {
        let Some(sender) = self.members.get(&member) else {
            return;
        };
        let by_user_id = sender.user_id.clone();
        let by_name = sender.meta.name.clone();
        let to = sender.address.clone();
        if let Err(reason) = rules::may_act(&self.governance, &by_user_id, &act) {
            return self.reply(member, &msg_ref, Err(ErrorCode::Forbidden), reason);
        }
        let target_name = match &act {
            ModeratePush::Mute { user_id, .. }
            | ModeratePush::Remove { user_id }
            | ModeratePush::Moderator { user_id, .. } => self
                .members
                .values()
                .find(|m| &m.user_id == user_id)
                .map(|m| m.meta.name.clone()),
            ModeratePush::Lock { .. } => None,
        };
        let notice = ModerationNotice {
            act,
            by_user_id,
            by_name,
            target_name,
            governance: self.governance.clone(),
        };
        let write = match &notice.act {
            ModeratePush::Mute { user_id, muted } => {
                let (user_id, muted) = (user_id.clone(), *muted);
                self.moderator_mute(&user_id, muted, now);
                None
            }
            ModeratePush::Remove { user_id } => {
                let user_id = user_id.clone();
                self.remove_user(&user_id, now);
                None
            }
            ModeratePush::Lock { locked } => Some(StorageWrite::Lock { locked: *locked }),
            ModeratePush::Moderator { user_id, moderator } => Some(StorageWrite::Moderator {
                user_id: user_id.clone(),
                moderator: *moderator,
            }),
        };
        match write {
            // Stored first: the change shows only once it holds.
            Some(write) => {
                let id = self.request_id();
                self.writes.insert(
                    id,
                    PendingWrite::Governance {
                        member,
                        to,
                        msg_ref,
                        notice,
                    },
                );
                self.outputs.push_back(Output::Write { id, write });
            }
            None => {
                let frame = ok_frame(&to, &msg_ref, EmptyReply {});
                self.outputs.push_back(Output::Send { member, to, frame });
                self.broadcast(None, ServerEvent::Moderation(notice));
            }
        }
    }

    /// Mutes (or gives back the voice of) every member of `user_id`: the SFU
    /// stops forwarding them and they cannot unmute themselves.
    pub(super) fn moderator_mute(&mut self, user_id: &str, muted: bool, now: Instant) {
        if muted {
            self.moderator_muted.insert(user_id.to_string());
        } else {
            self.moderator_muted.remove(user_id);
        }
        for id in self.members_of(user_id) {
            self.change_meta(id, now, |meta| {
                meta.moderator_muted = muted;
                // Given back, the voice stays muted until its owner unmutes.
                if muted {
                    meta.muted = true;
                }
            });
            if muted {
                self.outputs.push_back(Output::Voice(VoiceEffect::SetMuted {
                    member: id,
                    muted: true,
                }));
            }
        }
    }

    /// Closes every channel of `user_id` in this room and keeps it out for
    /// [`REMOVAL_BAN_SECONDS`].
    pub(super) fn remove_user(&mut self, user_id: &str, now: Instant) {
        let ban = Duration::from_secs(REMOVAL_BAN_SECONDS);
        let until = now + ban;
        self.outputs.push_back(Output::Ban {
            user_id: user_id.to_string(),
            until,
        });
        let reason = ErrorReply::new(ErrorCode::Removed, self.removal_reason(until, ban));
        for id in self.members_of(user_id) {
            self.close_member(id, &reason);
        }
    }

    pub(super) fn removal_reason(&self, until: Instant, left: Duration) -> String {
        format!(
            "a moderator removed you from this room; you can rejoin after {} (in {})",
            rfc3339(self.unix_ms(until)),
            rules::minutes(left)
        )
    }

    /// Sends every member `phx_close` with `reason` and lets it go (presence,
    /// voice, pending poses): the room's live session is over.
    pub(super) fn close_everyone(&mut self, reason: &ErrorReply) {
        let members: Vec<MemberId> = self.members.keys().copied().collect();
        for member in members {
            self.close_member(member, reason);
        }
        for (request, _) in std::mem::take(&mut self.waiting_joins) {
            self.outputs.push_back(Output::Refused {
                accepted: request.accepted,
                reply: reason.clone(),
            });
        }
        for join in std::mem::take(&mut self.replaying).into_values() {
            self.people.depart(&join.user_id);
            self.outputs.push_back(Output::Refused {
                accepted: join.accepted,
                reply: reason.clone(),
            });
        }
        // Nobody is left to keep a room that no longer exists.
        self.room = None;
        self.stop();
    }

    /// Closes one member's channel with `reason` and takes it out of the room.
    pub(super) fn close_member(&mut self, member: MemberId, reason: &ErrorReply) {
        let Some(m) = self.members.get(&member) else {
            return;
        };
        let to = m.address.clone();
        let frame = channel_frame(&to, &ServerEvent::ChannelClose(Some(reason.clone())));
        self.outputs.push_back(Output::Send {
            member,
            to: to.clone(),
            frame,
        });
        self.leave(member);
        self.closed.insert(member, (to, reason.clone()));
    }
}
