//! A member's pushes that touch storage or presence: chat and object events
//! within the write budgets, profile changes, its own mute, history pages.

use super::*;

impl RoomState {
    /// Hands a chat or object event to storage, within the room's rate.
    pub(super) fn persist(
        &mut self,
        member: MemberId,
        msg_ref: String,
        body: RoomEventBody,
        now: Instant,
    ) {
        let Some(m) = self.members.get(&member) else {
            return;
        };
        if self.persist_limit_per_user.len() > 2 * usize::from(self.settings.capacity) {
            // Kept past a leave (a rejoin must not refill them), but not forever.
            let people = &self.people;
            self.persist_limit_per_user
                .retain(|user, _| people.contains(user));
        }
        let own = self
            .persist_limit_per_user
            .entry(m.user_id.clone())
            .or_insert_with(|| {
                TokenBucket::new(
                    rules::PERSISTS_PER_SECOND_PER_USER,
                    rules::PERSISTS_BURST_PER_USER,
                    now,
                )
            });
        // The person's own share first, so a flood spends only the flooder's.
        if !own.take(now) {
            self.outputs
                .push_back(Output::CountError("room_rate_limited"));
            let reason = format!(
                "slow down: this room stores at most {} messages a second from one person; \
                 this one was not sent, send it again in a moment",
                rules::PERSISTS_PER_SECOND_PER_USER
            );
            return self.reply(member, &msg_ref, Err(ErrorCode::RateLimited), reason);
        }
        if !self.persist_limit.take(now) {
            self.outputs
                .push_back(Output::CountError("room_rate_limited"));
            let reason = format!(
                "this room is storing messages as fast as it may ({} a second); \
                 this one was not sent: wait a moment and send it again",
                rules::PERSISTS_PER_SECOND
            );
            return self.reply(member, &msg_ref, Err(ErrorCode::RateLimited), reason);
        }
        if self.writes.len() >= rules::PERSIST_QUEUE {
            self.outputs
                .push_back(Output::CountError("persist_queue_full"));
            let frame = error_frame(
                &m.address,
                &msg_ref,
                &ErrorReply::new(
                    ErrorCode::RateLimited,
                    "the room is busy storing messages; wait a moment and send again",
                ),
            );
            let to = m.address.clone();
            self.outputs.push_back(Output::Send { member, to, frame });
            return;
        }
        let object_id = objects::object_of(&body).map(str::to_string);
        if let Some(object_id) = &object_id {
            // Grabs of it wait until it is stored.
            self.objects.begin_write(object_id);
        }
        let write = StorageWrite::Event {
            user_id: m.user_id.clone(),
            name: m.meta.name.clone(),
            sent_at_ms: self.unix_ms(now),
            body,
        };
        let to = m.address.clone();
        let id = self.request_id();
        self.writes.insert(
            id,
            PendingWrite::Event {
                member,
                to,
                msg_ref,
                object_id,
            },
        );
        self.outputs.push_back(Output::Write { id, write });
    }

    pub(super) fn update_profile(
        &mut self,
        member: MemberId,
        msg_ref: &str,
        update: UpdateProfilePush,
        now: Instant,
    ) {
        // Stored and shown as normalised, whatever spelling the client sent.
        let name = match update.name.as_deref().map(normalize_name).transpose() {
            Ok(name) => name,
            Err(reason) => {
                return self.reply(member, msg_ref, Err(ErrorCode::InvalidPayload), reason);
            }
        };
        self.change_meta(member, now, |meta| {
            if let Some(name) = name {
                meta.name = name;
            }
            if let Some(colour) = update.colour {
                meta.colour = colour;
            }
        });
        self.reply(member, msg_ref, Ok(()), String::new());
    }

    pub(super) fn set_muted(&mut self, member: MemberId, msg_ref: &str, muted: bool, now: Instant) {
        let Some(m) = self.members.get(&member) else {
            return;
        };
        if !muted && m.meta.moderator_muted {
            return self.reply(
                member,
                msg_ref,
                Err(ErrorCode::Forbidden),
                "a moderator muted you in this room; only a moderator can let you speak again"
                    .into(),
            );
        }
        self.change_meta(member, now, |meta| meta.muted = muted);
        // Muting is enforced where voice flows, not only shown.
        self.outputs
            .push_back(Output::Voice(VoiceEffect::SetMuted { member, muted }));
        self.reply(member, msg_ref, Ok(()), String::new());
    }

    /// Asks for a page of older history, read off the loop; the reply goes
    /// out when it comes back.
    pub(super) fn history(&mut self, member: MemberId, msg_ref: String, before_id: u64) {
        let Some(m) = self.members.get(&member) else {
            return;
        };
        if self.history_reads.len() >= rules::HISTORY_READERS {
            self.outputs.push_back(Output::CountError("history_busy"));
            return self.reply(
                member,
                &msg_ref,
                Err(ErrorCode::RateLimited),
                "the room is already reading history for others; ask again in a moment".into(),
            );
        }
        let reader = Recipient {
            member,
            address: m.address.clone(),
        };
        // Events stored but not yet broadcast reach the member as broadcasts.
        let before_id = before_id.min(self.last_broadcast_id.saturating_add(1));
        let id = self.request_id();
        self.history_reads.insert(id, (reader, msg_ref));
        self.outputs.push_back(Output::Read {
            id,
            read: StorageRead::Events {
                after_id: 0,
                before_id,
            },
        });
    }
}
