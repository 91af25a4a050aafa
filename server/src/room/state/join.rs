//! Joining and leaving: admission (room, ban, lock, capacity, name), the
//! replay read, then the join reply, `presence_state` and the others' diff.

use super::*;

impl RoomState {
    pub(super) fn join(
        &mut self,
        request: Box<JoinRequest>,
        banned_until: Option<Instant>,
        now: Instant,
    ) {
        match self.stage {
            Stage::Loading => return self.waiting_joins.push((request, banned_until)),
            Stage::Stopped => return,
            Stage::Running => {}
        }
        let JoinRequest {
            member,
            user_id,
            msg_ref,
            address,
            payload,
            accepted,
        } = *request;
        let name = match self.admit(&user_id, &payload.name, banned_until, now) {
            Ok(name) => name,
            Err(reply) => {
                self.outputs.push_back(Output::Refused { accepted, reply });
                return;
            }
        };
        self.people.arrive(&user_id);
        let after_id = payload.last_seen_id.unwrap_or(0);
        let id = self.request_id();
        // Events stored but not yet broadcast will reach this member as
        // broadcasts; those broadcast while the read is under way follow the
        // reply (see `missed`).
        let before_id = self.last_broadcast_id.saturating_add(1);
        self.replaying.insert(
            id,
            PendingJoin {
                member,
                user_id,
                name,
                msg_ref,
                address,
                payload,
                accepted,
                after_id,
                missed: Vec::new(),
            },
        );
        self.outputs.push_back(Output::Read {
            id,
            read: StorageRead::Events {
                after_id,
                before_id,
            },
        });
    }

    /// Whether `user_id` may join now; `Ok` with its display name as shown.
    fn admit(
        &self,
        user_id: &str,
        name: &str,
        banned_until: Option<Instant>,
        now: Instant,
    ) -> Result<String, ErrorReply> {
        if self.room.is_none() {
            let reason = format!(
                "room {} does not exist; pick one from the room list",
                self.room_id
            );
            return Err(ErrorReply::new(ErrorCode::RoomNotFound, reason));
        }
        if let Some(until) = banned_until
            && until > now
        {
            let reason = self.removal_reason(until, until - now);
            return Err(ErrorReply::new(ErrorCode::Removed, reason));
        }
        // Someone already in (another tab, the headset beside the browser) is
        // no new arrival: the lock and the capacity count people.
        let already_in = self.people.contains(user_id);
        if self.governance.locked && !already_in && !self.governance.may_moderate(user_id) {
            return Err(ErrorReply::new(
                ErrorCode::RoomLocked,
                "this room is locked: its moderators let nobody new in for now; try again later",
            ));
        }
        let capacity = self.settings.capacity;
        if !already_in && self.people.count() >= usize::from(capacity) {
            let reason = format!(
                "room full: it holds {capacity} people; try again later or pick another room"
            );
            return Err(ErrorReply::new(ErrorCode::RoomFull, reason));
        }
        normalize_name(name).map_err(|reason| ErrorReply::new(ErrorCode::InvalidPayload, reason))
    }

    pub(super) fn replay_read(
        &mut self,
        join: PendingJoin,
        result: Result<EventPage, String>,
        now: Instant,
    ) {
        let page = match result {
            Ok(page) => page,
            Err(error) => {
                tracing::error!(room_id = %self.room_id, "loading events for a join: {error}");
                self.people.depart(&join.user_id);
                self.outputs.push_back(Output::Refused {
                    accepted: join.accepted,
                    reply: ErrorReply::new(
                        ErrorCode::Internal,
                        "the room's history could not be loaded; try joining again",
                    ),
                });
                return;
            }
        };
        let Some(room) = self.room.clone() else {
            // The room closed while the replay was read.
            self.people.depart(&join.user_id);
            return;
        };
        let moderator_muted = self.moderator_muted.contains(&join.user_id);
        let meta = PresenceMeta {
            phx_ref: self.new_phx_ref(now),
            phx_ref_prev: None,
            name: join.name,
            colour: join.payload.colour,
            client_kind: join.payload.client_kind,
            slot: self.free_slot(),
            joined_at: self.unix_ms(now),
            speaking: false,
            muted: moderator_muted,
            moderator_muted,
            role: rules::role_of(&self.governance, &join.user_id),
        };
        let reply = JoinReply {
            user_id: join.user_id.clone(),
            slot: meta.slot,
            protocol_version: PROTOCOL_VERSION,
            room,
            events: page.events,
            truncated: page.more,
            pose_rate_hz: POSE_RATE_HZ,
            governance: self.governance.clone(),
            objects: self.object_snapshots(),
        };
        let reply = ok_frame(&join.address, &join.msg_ref, reply);
        let joined = PresenceDiff {
            joins: [(
                join.user_id.clone(),
                PresenceEntry {
                    metas: vec![meta.clone()],
                },
            )]
            .into(),
            leaves: Default::default(),
        };
        let member = join.member;
        self.members.insert(
            member,
            Member {
                user_id: join.user_id,
                address: join.address.clone(),
                meta,
                latest_pose: None,
                pose_changed: false,
                needs_every_pose: true,
            },
        );
        self.rebuild_recipients();
        let presence = channel_frame(
            &join.address,
            &ServerEvent::PresenceState(self.presence_state()),
        );
        // Before the connection hears it joined, so before any offer of its
        // client can reach the SFU.
        if moderator_muted {
            self.outputs.push_back(Output::Voice(VoiceEffect::SetMuted {
                member,
                muted: true,
            }));
        }
        self.outputs.push_back(Output::Joined {
            member,
            to: join.address.clone(),
            reply,
            presence,
            accepted: join.accepted,
        });
        for frame in join.missed {
            self.outputs.push_back(Output::Send {
                member,
                to: join.address.clone(),
                frame,
            });
        }
        self.broadcast(Some(member), ServerEvent::PresenceDiff(joined));
    }

    pub(super) fn leave(&mut self, member: MemberId) {
        self.closed.remove(&member);
        let Some(gone) = self.members.remove(&member) else {
            return;
        };
        // What it held drops, and the rest is stored, before the room may idle.
        self.drop_objects_of(member, self.now);
        self.people.depart(&gone.user_id);
        self.rebuild_recipients();
        self.outputs.push_back(Output::ForgetPoses {
            member,
            to: gone.address,
        });
        self.outputs
            .push_back(Output::Voice(VoiceEffect::Leave { member }));
        let left = PresenceDiff {
            joins: Default::default(),
            leaves: [(
                gone.user_id,
                PresenceEntry {
                    metas: vec![gone.meta],
                },
            )]
            .into(),
        };
        self.broadcast(Some(member), ServerEvent::PresenceDiff(left));
    }
}
