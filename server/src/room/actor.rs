//! One room's actor: the only owner of the room's members, presence and latest
//! poses. It persists chat and object events through a writer task (one write
//! at a time, so ids and broadcasts stay in order) and relays pose batches once
//! per tick.
//!
//! It also keeps the room's rules: who may moderate (the owner and the
//! co-moderators it named), whether it takes new joins, how many people fit
//! (people, not channels: a second tab of someone already in takes no place),
//! and how fast the room may write to storage, so that one room's flood cannot
//! take the database from the others.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use roomscale_protocol::PROTOCOL_VERSION;
use roomscale_protocol::events::{
    EmptyReply, ErrorCode, ErrorReply, Governance, HistoryPage, JoinReply, MODERATION_EVENT,
    ModeratePush, ModerationNotice, PRESENCE_DIFF_EVENT, PRESENCE_STATE_EVENT, ROOM_EVENT_EVENT,
    RoomEvent, RoomEventBody, RoomSummary, SPEAKING_EVENT, Speaking, StoredReply,
    UpdateProfilePush,
};
use roomscale_protocol::limits::{MAX_REPLAY_BYTES, MAX_REPLAYED_EVENTS, REMOVAL_BAN_SECONDS};
use roomscale_protocol::names::normalize_name;
use roomscale_protocol::pose::{self, POSE_BYTES};
use roomscale_protocol::presence::{
    PresenceDiff, PresenceEntry, PresenceMeta, PresenceState, Role,
};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::MissedTickBehavior;
use uuid::Uuid;

use super::{Contact, JoinRequest, MemberId, RoomCommand, Roster};
use crate::AppState;
use crate::limits::TokenBucket;
use crate::outbox::{Outbox, text_frame};
use crate::storage::{rfc3339, unix_millis};

/// Pose batches per second.
pub const POSE_RATE_HZ: u32 = 30;
/// How long an empty room stays loaded before its actor stops.
const IDLE_STOP_AFTER: Duration = Duration::from_secs(30);
/// Writes a room may have waiting for storage before it refuses more.
const PERSIST_QUEUE: usize = 256;
/// Persisted events per second a room may send to storage, and the burst
/// allowed above it: far more than people chat, and little enough that a
/// flooded room leaves the database to the others.
const PERSISTS_PER_SECOND: f64 = 20.0;
const PERSISTS_BURST: f64 = 40.0;
/// A person's share of that: one member flooding leaves the rest of the room's
/// rate to everyone else in it.
const PERSISTS_PER_SECOND_PER_USER: f64 = 10.0;
const PERSISTS_BURST_PER_USER: f64 = 20.0;
/// History pages a room reads from storage at once; more are refused as busy.
const HISTORY_READERS: usize = 2;

/// Commands handled per wake-up beyond the first.
const COMMAND_BATCH: usize = 64;

/// The SFU picks the nearest speakers from head positions sent this often
/// (every 6th tick: 5 Hz).
const VOICE_POSITIONS_EVERY_TICKS: u64 = 6;

pub(crate) struct RoomActor {
    state: AppState,
    room_id: Uuid,
    roster: Roster,
    room: Option<RoomSummary>,
    members: HashMap<MemberId, Member>,
    /// The newest event id broadcast to members; replays stop here so a joiner
    /// never gets an event twice (once replayed, once broadcast).
    last_broadcast_id: u64,
    started: Instant,
    next_phx_ref: u64,
    /// Pose ticks so far; every few, head positions go to the SFU.
    ticks: u64,
    /// Who runs the room and whether it is locked, as stored.
    governance: Governance,
    /// Users a moderator muted: their members join muted while the room runs.
    moderator_muted: HashSet<String>,
    /// Persisted events this room may still write now, and each person in it.
    persist_limit: TokenBucket,
    persist_limit_per_user: HashMap<String, TokenBucket>,
    history_readers: Arc<Semaphore>,
    /// Members the room closed (removed by a moderator) whose connections may
    /// still push on the channel: told why until their connection leaves it.
    closed: HashMap<MemberId, Closed>,
}

struct Closed {
    outbox: Outbox,
    join_ref: String,
    topic: Arc<str>,
    reason: ErrorReply,
}

struct Member {
    user_id: String,
    join_ref: String,
    topic: Arc<str>,
    outbox: Outbox,
    meta: PresenceMeta,
    latest_pose: Option<[u8; POSE_BYTES]>,
    pose_changed: bool,
    /// A new member's first batch carries everyone's latest pose.
    needs_every_pose: bool,
}

struct PersistJob {
    member: MemberId,
    outbox: Outbox,
    join_ref: String,
    topic: Arc<str>,
    msg_ref: String,
    user_id: String,
    name: String,
    body: RoomEventBody,
}

struct Persisted {
    job: PersistJob,
    result: crate::error::Result<RoomEvent>,
}

impl RoomActor {
    pub(crate) fn new(state: AppState, room_id: Uuid, roster: Roster) -> RoomActor {
        RoomActor {
            state,
            room_id,
            roster,
            room: None,
            members: HashMap::new(),
            last_broadcast_id: 0,
            started: Instant::now(),
            next_phx_ref: 1,
            ticks: 0,
            governance: Governance::default(),
            moderator_muted: HashSet::new(),
            persist_limit: TokenBucket::new(PERSISTS_PER_SECOND, PERSISTS_BURST, Instant::now()),
            persist_limit_per_user: HashMap::new(),
            history_readers: Arc::new(Semaphore::new(HISTORY_READERS)),
            closed: HashMap::new(),
        }
    }

    pub(crate) async fn run(mut self, mut commands: mpsc::Receiver<RoomCommand>) {
        if let Err(error) = self.load().await {
            tracing::error!(room_id = %self.room_id, "could not load the room: {error}");
        }
        let (jobs, job_queue) = mpsc::channel(PERSIST_QUEUE);
        let (done, mut finished) = mpsc::channel(PERSIST_QUEUE);
        tokio::spawn(write_events(
            self.state.clone(),
            self.room_id,
            job_queue,
            done,
        ));

        let mut tick = tokio::time::interval(Duration::from_secs(1) / POSE_RATE_HZ);
        tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut idle_since = Some(Instant::now());
        // Made once: the loop turns for every pose a member sends.
        let state = self.state.clone();
        let shutdown = state.shutdown_requested();
        tokio::pin!(shutdown);
        loop {
            let idle_deadline =
                idle_since.map(|t| tokio::time::Instant::from_std(t + IDLE_STOP_AFTER));
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => {
                        if self.handle(command, &jobs).await.is_break() {
                            break;
                        }
                        // Whatever else is queued, before waiting again.
                        let mut stop = false;
                        for _ in 0..COMMAND_BATCH {
                            let Ok(command) = commands.try_recv() else { break };
                            if self.handle(command, &jobs).await.is_break() {
                                stop = true;
                                break;
                            }
                        }
                        if stop {
                            break;
                        }
                    }
                    None => break,
                },
                Some(persisted) = finished.recv() => self.persisted(persisted),
                _ = tick.tick(), if !self.members.is_empty() => self.relay_poses(),
                _ = sleep_until_some(idle_deadline) => break,
                _ = &mut shutdown => break,
            }
            idle_since = match (self.members.is_empty(), idle_since) {
                (true, None) => Some(Instant::now()),
                (true, since) => since,
                (false, _) => None,
            };
        }
        // Let queued writes finish and acknowledge them: an event that was stored
        // must be acknowledged or replayed, never silently half-done.
        drop(jobs);
        commands.close();
        while let Some(persisted) = finished.recv().await {
            self.persisted(persisted);
        }
    }

    async fn load(&mut self) -> crate::error::Result<()> {
        let Some(room) = self.state.store.get_room(self.room_id).await? else {
            return Ok(());
        };
        let moderators = self.state.store.room_moderators(self.room_id).await?;
        self.governance = room.governance(moderators);
        self.room = Some(room.summary());
        let (newest, _) = self.state.store.events_after(self.room_id, 0, 1).await?;
        self.last_broadcast_id = newest.last().map_or(0, |e| e.id);
        Ok(())
    }

    /// Handles one command; `Break` when the room must stop.
    async fn handle(
        &mut self,
        command: RoomCommand,
        jobs: &mpsc::Sender<PersistJob>,
    ) -> ControlFlow<()> {
        if let Some((member, msg_ref)) = command.push_ref()
            && let Some(closed) = self.closed.get(&member)
        {
            let _ = closed.outbox.reply_error(
                Some(&closed.join_ref),
                msg_ref,
                &closed.topic,
                &closed.reason,
            );
            return ControlFlow::Continue(());
        }
        match command {
            RoomCommand::Join(request) => self.join(*request).await,
            RoomCommand::Leave { member } => self.leave(member),
            RoomCommand::Pose { member, mut pose } => {
                if let Some(m) = self.members.get_mut(&member) {
                    pose::set_pose_slot(&mut pose, m.meta.slot);
                    m.latest_pose = Some(pose);
                    m.pose_changed = true;
                }
            }
            RoomCommand::Persist {
                member,
                msg_ref,
                body,
            } => self.persist(member, msg_ref, body, jobs),
            RoomCommand::UpdateProfile {
                member,
                msg_ref,
                update,
            } => self.update_profile(member, &msg_ref, update),
            RoomCommand::SetMuted {
                member,
                msg_ref,
                muted,
            } => self.set_muted(member, &msg_ref, muted),
            RoomCommand::Moderate {
                member,
                msg_ref,
                act,
            } => self.moderate(member, &msg_ref, act).await,
            RoomCommand::History {
                member,
                msg_ref,
                before_id,
            } => self.history(member, msg_ref, before_id),
            RoomCommand::Speaking { member, speaking } => {
                if let Some(user_id) = self.members.get(&member).map(|m| m.user_id.clone()) {
                    // Everyone, the speaker too: its own indicator follows the server.
                    self.broadcast(SPEAKING_EVENT, &Speaking { user_id, speaking });
                }
            }
            RoomCommand::Close { reason } => {
                self.close_everyone(&reason);
                return ControlFlow::Break(());
            }
            RoomCommand::InjectPanic => panic!("panic injected into room {}", self.room_id),
        }
        ControlFlow::Continue(())
    }

    /// Hands a chat or object event to the writer, within the room's rate.
    fn persist(
        &mut self,
        member: MemberId,
        msg_ref: String,
        body: RoomEventBody,
        jobs: &mpsc::Sender<PersistJob>,
    ) {
        let Some(m) = self.members.get(&member) else {
            return;
        };
        let now = Instant::now();
        if self.persist_limit_per_user.len() > 2 * usize::from(self.state.config.room_capacity) {
            // Kept past a leave (a rejoin must not refill them), but not forever.
            let present: HashSet<&str> =
                self.members.values().map(|m| m.user_id.as_str()).collect();
            self.persist_limit_per_user
                .retain(|user, _| present.contains(user.as_str()));
        }
        let own = self
            .persist_limit_per_user
            .entry(m.user_id.clone())
            .or_insert_with(|| {
                TokenBucket::new(PERSISTS_PER_SECOND_PER_USER, PERSISTS_BURST_PER_USER, now)
            });
        // The person's own share first, so a flood spends only the flooder's.
        if !own.take(now) {
            self.state.metrics.error("room_rate_limited");
            let reason = format!(
                "slow down: this room stores at most {PERSISTS_PER_SECOND_PER_USER} messages \
                 a second from one person; this one was not sent, send it again in a moment"
            );
            return self.reply(member, &msg_ref, Err(ErrorCode::RateLimited), reason);
        }
        if !self.persist_limit.take(now) {
            self.state.metrics.error("room_rate_limited");
            let reason = format!(
                "this room is storing messages as fast as it may ({PERSISTS_PER_SECOND} a second); \
                 this one was not sent: wait a moment and send it again"
            );
            return self.reply(member, &msg_ref, Err(ErrorCode::RateLimited), reason);
        }
        let job = PersistJob {
            member,
            outbox: m.outbox.clone(),
            join_ref: m.join_ref.clone(),
            topic: m.topic.clone(),
            msg_ref,
            user_id: m.user_id.clone(),
            name: m.meta.name.clone(),
            body,
        };
        if let Err(mpsc::error::TrySendError::Full(job)) = jobs.try_send(job) {
            self.state.metrics.error("persist_queue_full");
            let _ = job.outbox.reply_error(
                Some(&job.join_ref),
                &job.msg_ref,
                &job.topic,
                &ErrorReply::new(
                    ErrorCode::RateLimited,
                    "the room is busy storing messages; wait a moment and send again",
                ),
            );
        }
    }

    fn update_profile(&mut self, member: MemberId, msg_ref: &str, update: UpdateProfilePush) {
        // Stored and shown as normalised, whatever spelling the client sent.
        let name = match update.name.as_deref().map(normalize_name).transpose() {
            Ok(name) => name,
            Err(reason) => {
                return self.reply(member, msg_ref, Err(ErrorCode::InvalidPayload), reason);
            }
        };
        self.change_meta(member, |meta| {
            if let Some(name) = name {
                meta.name = name;
            }
            if let Some(colour) = update.colour {
                meta.colour = colour;
            }
        });
        self.reply(member, msg_ref, Ok(()), String::new());
    }

    fn set_muted(&mut self, member: MemberId, msg_ref: &str, muted: bool) {
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
        self.change_meta(member, |meta| meta.muted = muted);
        // Muting is enforced where voice flows, not only shown.
        if let Ok(voice) = &self.state.voice {
            voice.set_muted(member, muted);
        }
        self.reply(member, msg_ref, Ok(()), String::new());
    }

    /// Reads a page of older history in a task of its own (the room keeps
    /// serving meanwhile) and replies to the member with it.
    fn history(&mut self, member: MemberId, msg_ref: String, before_id: u64) {
        let Some(m) = self.members.get(&member) else {
            return;
        };
        let Ok(permit) = self.history_readers.clone().try_acquire_owned() else {
            self.state.metrics.error("history_busy");
            return self.reply(
                member,
                &msg_ref,
                Err(ErrorCode::RateLimited),
                "the room is already reading history for others; ask again in a moment".into(),
            );
        };
        // Events stored but not yet broadcast reach the member as broadcasts.
        let before_id = before_id.min(self.last_broadcast_id.saturating_add(1));
        let store = self.state.store.clone();
        let room_id = self.room_id;
        let outbox = m.outbox.clone();
        let join_ref = m.join_ref.clone();
        let topic = m.topic.clone();
        let metrics = self.state.metrics.clone();
        tokio::spawn(async move {
            let page = store
                .events_page(room_id, 0, before_id, MAX_REPLAYED_EVENTS, MAX_REPLAY_BYTES)
                .await;
            drop(permit);
            let sent = match page {
                Ok(page) => outbox.reply_ok(
                    Some(&join_ref),
                    &msg_ref,
                    &topic,
                    &HistoryPage {
                        events: page.events,
                        more: page.more,
                    },
                ),
                Err(error) => {
                    tracing::error!(%room_id, "reading a history page: {error}");
                    outbox.reply_error(
                        Some(&join_ref),
                        &msg_ref,
                        &topic,
                        &ErrorReply::new(
                            ErrorCode::Internal,
                            "the room's history could not be read; try again",
                        ),
                    )
                }
            };
            // A client that asks for pages but never reads them is cut off.
            if sent.is_err() && outbox.overflowed() {
                metrics.error("send_queue_full");
            }
        });
    }

    /// Answers a member's push: `ok` with an empty response, or an error with
    /// `reason`.
    fn reply(
        &self,
        member: MemberId,
        msg_ref: &str,
        outcome: Result<(), ErrorCode>,
        reason: String,
    ) {
        let Some(m) = self.members.get(&member) else {
            return;
        };
        let _ = match outcome {
            Ok(()) => m
                .outbox
                .reply_ok(Some(&m.join_ref), msg_ref, &m.topic, &EmptyReply {}),
            Err(code) => {
                self.state.metrics.error(code.as_str());
                m.outbox.reply_error(
                    Some(&m.join_ref),
                    msg_ref,
                    &m.topic,
                    &ErrorReply::new(code, reason),
                )
            }
        };
    }

    // Moderation -----------------------------------------------------------

    async fn moderate(&mut self, member: MemberId, msg_ref: &str, act: ModeratePush) {
        let Some(sender) = self.members.get(&member) else {
            return;
        };
        let by_user_id = sender.user_id.clone();
        let by_name = sender.meta.name.clone();
        if let Err(reason) = self.may_act(&by_user_id, &act) {
            return self.reply(member, msg_ref, Err(ErrorCode::Forbidden), reason);
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
        match &act {
            ModeratePush::Mute { user_id, muted } => self.moderator_mute(user_id, *muted),
            ModeratePush::Remove { user_id } => self.remove_user(user_id),
            ModeratePush::Lock { locked } => {
                if let Err(error) = self
                    .state
                    .store
                    .set_room_locked(self.room_id, *locked)
                    .await
                {
                    tracing::error!(room_id = %self.room_id, "storing the room's lock: {error}");
                    return self.reply(
                        member,
                        msg_ref,
                        Err(ErrorCode::Internal),
                        "the lock could not be stored, so nothing changed; try again".into(),
                    );
                }
                self.governance.locked = *locked;
            }
            ModeratePush::Moderator { user_id, moderator } => {
                if let Err(error) = self
                    .state
                    .store
                    .set_room_moderator(self.room_id, user_id, *moderator)
                    .await
                {
                    tracing::error!(room_id = %self.room_id, "storing a moderator: {error}");
                    return self.reply(
                        member,
                        msg_ref,
                        Err(ErrorCode::Internal),
                        "the moderator could not be stored, so nothing changed; try again".into(),
                    );
                }
                self.governance.moderators.retain(|m| m != user_id);
                if *moderator {
                    self.governance.moderators.push(user_id.clone());
                    self.state.rooms.unban(self.room_id, user_id);
                }
                let role = self.role_of(user_id);
                for id in self.members_of(user_id) {
                    self.change_meta(id, |meta| meta.role = role);
                }
            }
        }
        self.reply(member, msg_ref, Ok(()), String::new());
        let notice = ModerationNotice {
            act,
            by_user_id,
            by_name,
            target_name,
            governance: self.governance.clone(),
        };
        self.broadcast(MODERATION_EVENT, &notice);
    }

    /// Whether `by` may do `act`; `Err` says why not.
    fn may_act(&self, by: &str, act: &ModeratePush) -> Result<(), String> {
        let governance = &self.governance;
        if !governance.may_moderate(by) {
            return Err(
                "only the room's owner and the moderators it named may moderate this room".into(),
            );
        }
        match act {
            ModeratePush::Lock { .. } => Ok(()),
            ModeratePush::Moderator { user_id, .. } => {
                if !governance.is_owner(by) {
                    Err("only the room's owner names or unnames moderators".into())
                } else if governance.is_owner(user_id) {
                    Err("the owner already runs the room; name someone else".into())
                } else {
                    Ok(())
                }
            }
            ModeratePush::Mute { user_id, .. } | ModeratePush::Remove { user_id } => {
                if governance.is_owner(user_id) {
                    Err("the room's owner cannot be muted or removed".into())
                } else if governance.may_moderate(user_id) && !governance.is_owner(by) {
                    Err("moderators can be muted or removed only by the room's owner".into())
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Mutes (or gives back the voice of) every member of `user_id`: the SFU
    /// stops forwarding them and they cannot unmute themselves.
    fn moderator_mute(&mut self, user_id: &str, muted: bool) {
        if muted {
            self.moderator_muted.insert(user_id.to_string());
        } else {
            self.moderator_muted.remove(user_id);
        }
        for id in self.members_of(user_id) {
            self.change_meta(id, |meta| {
                meta.moderator_muted = muted;
                // Given back, the voice stays muted until its owner unmutes.
                if muted {
                    meta.muted = true;
                }
            });
            if muted && let Ok(voice) = &self.state.voice {
                voice.set_muted(id, true);
            }
        }
    }

    /// Closes every channel of `user_id` in this room and keeps it out for
    /// [`REMOVAL_BAN_SECONDS`].
    fn remove_user(&mut self, user_id: &str) {
        let ban = Duration::from_secs(REMOVAL_BAN_SECONDS);
        self.state.rooms.ban(self.room_id, user_id, ban);
        let reason = ErrorReply::new(
            ErrorCode::Removed,
            format!(
                "a moderator removed you from this room; you can rejoin after {} (in {})",
                rfc3339(unix_millis(SystemTime::now() + ban)),
                minutes(ban)
            ),
        );
        for id in self.members_of(user_id) {
            self.close_member(id, &reason);
        }
    }

    fn members_of(&self, user_id: &str) -> Vec<MemberId> {
        self.members
            .iter()
            .filter(|(_, m)| m.user_id == user_id)
            .map(|(&id, _)| id)
            .collect()
    }

    fn role_of(&self, user_id: &str) -> Role {
        if self.governance.is_owner(user_id) {
            Role::Owner
        } else if self.governance.may_moderate(user_id) {
            Role::Moderator
        } else {
            Role::Member
        }
    }

    /// Sends every member `phx_close` with `reason` and lets it go (presence,
    /// voice, pending poses): the room's live session is over.
    fn close_everyone(&mut self, reason: &ErrorReply) {
        let members: Vec<MemberId> = self.members.keys().copied().collect();
        for member in members {
            self.close_member(member, reason);
        }
        // Nobody is left to keep a room that no longer exists.
        self.room = None;
    }

    /// Closes one member's channel with `reason` and takes it out of the room.
    fn close_member(&mut self, member: MemberId, reason: &ErrorReply) {
        let Some(m) = self.members.get(&member) else {
            return;
        };
        let _ = m.outbox.send(text_frame(
            Some(&m.join_ref),
            Some(&m.join_ref),
            &m.topic,
            roomscale_protocol::frame::control::CLOSE,
            reason,
        ));
        let closed = Closed {
            outbox: m.outbox.clone(),
            join_ref: m.join_ref.clone(),
            topic: m.topic.clone(),
            reason: reason.clone(),
        };
        self.leave(member);
        self.closed.insert(member, closed);
    }

    async fn join(&mut self, request: JoinRequest) {
        let JoinRequest {
            member,
            user_id,
            join_ref,
            msg_ref,
            topic,
            payload,
            outbox,
            accepted,
        } = request;
        let reject = |accepted: oneshot::Sender<_>, code, reason: String| {
            let _ = accepted.send(Err(ErrorReply::new(code, reason)));
        };
        let Some(room) = self.room.clone() else {
            return reject(
                accepted,
                ErrorCode::RoomNotFound,
                format!(
                    "room {} does not exist; pick one from the room list",
                    self.room_id
                ),
            );
        };
        if let Some(left) = self.state.rooms.banned_for(self.room_id, &user_id) {
            return reject(
                accepted,
                ErrorCode::Removed,
                format!(
                    "a moderator removed you from this room; you can rejoin after {} (in {})",
                    rfc3339(unix_millis(SystemTime::now() + left)),
                    minutes(left)
                ),
            );
        }
        // Someone already in (another tab, the headset beside the browser) is
        // no new arrival: the lock and the capacity count people.
        let already_in = self.members.values().any(|m| m.user_id == user_id);
        if self.governance.locked && !already_in && !self.governance.may_moderate(&user_id) {
            return reject(
                accepted,
                ErrorCode::RoomLocked,
                "this room is locked: its moderators let nobody new in for now; try again later"
                    .into(),
            );
        }
        let capacity = self.state.config.room_capacity;
        if !already_in && self.people() >= usize::from(capacity) {
            return reject(
                accepted,
                ErrorCode::RoomFull,
                format!(
                    "room full: it holds {capacity} people; try again later or pick another room"
                ),
            );
        }
        let name = match normalize_name(&payload.name) {
            Ok(name) => name,
            Err(reason) => return reject(accepted, ErrorCode::InvalidPayload, reason),
        };
        let after = payload.last_seen_id.unwrap_or(0);
        // Events stored but not yet broadcast will reach this member as broadcasts.
        let before = self.last_broadcast_id.saturating_add(1);
        let (events, truncated) = match self
            .state
            .store
            .events_page(
                self.room_id,
                after,
                before,
                MAX_REPLAYED_EVENTS,
                MAX_REPLAY_BYTES,
            )
            .await
        {
            Ok(page) => (page.events, page.more),
            Err(error) => {
                tracing::error!(room_id = %self.room_id, "loading events for a join: {error}");
                return reject(
                    accepted,
                    ErrorCode::Internal,
                    "the room's history could not be loaded; try joining again".into(),
                );
            }
        };
        let moderator_muted = self.moderator_muted.contains(&user_id);
        let meta = PresenceMeta {
            phx_ref: self.new_phx_ref(),
            phx_ref_prev: None,
            name,
            colour: payload.colour,
            client_kind: payload.client_kind,
            slot: self.free_slot(),
            joined_at: unix_millis(SystemTime::now()),
            speaking: false,
            muted: moderator_muted,
            moderator_muted,
            role: self.role_of(&user_id),
        };
        let reply = JoinReply {
            user_id: user_id.clone(),
            slot: meta.slot,
            protocol_version: PROTOCOL_VERSION,
            room,
            events,
            truncated,
            pose_rate_hz: POSE_RATE_HZ,
            governance: self.governance.clone(),
        };
        if outbox
            .reply_ok(Some(&join_ref), &msg_ref, &topic, &reply)
            .is_err()
        {
            // A client that asks for joins but never reads them is cut off by
            // its outbox; it never becomes a member.
            if outbox.overflowed() {
                self.state.metrics.error("send_queue_full");
            }
            return;
        }
        let joined = PresenceDiff {
            joins: [(
                user_id.clone(),
                PresenceEntry {
                    metas: vec![meta.clone()],
                },
            )]
            .into(),
            leaves: Default::default(),
        };
        self.roster.lock().expect("poisoned").insert(
            member,
            Contact {
                outbox: outbox.clone(),
                join_ref: join_ref.clone(),
                topic: topic.clone(),
            },
        );
        self.members.insert(
            member,
            Member {
                user_id,
                join_ref: join_ref.clone(),
                topic: topic.clone(),
                outbox: outbox.clone(),
                meta,
                latest_pose: None,
                pose_changed: false,
                needs_every_pose: true,
            },
        );
        let _ = outbox.push(
            Some(&join_ref),
            &topic,
            PRESENCE_STATE_EVENT,
            &self.presence_state(),
        );
        self.broadcast_except(member, PRESENCE_DIFF_EVENT, &joined);
        // Before any offer of its client can reach the SFU.
        if moderator_muted && let Ok(voice) = &self.state.voice {
            voice.set_muted(member, true);
        }
        let _ = accepted.send(Ok(()));
    }

    fn leave(&mut self, member: MemberId) {
        self.closed.remove(&member);
        let Some(gone) = self.members.remove(&member) else {
            return;
        };
        self.roster.lock().expect("poisoned").remove(&member);
        gone.outbox.drop_channel_poses(member);
        if let Ok(voice) = &self.state.voice {
            voice.leave(member);
        }
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
        self.broadcast_except(member, PRESENCE_DIFF_EVENT, &left);
    }

    /// Changes a member's presence meta and tells everyone.
    fn change_meta(&mut self, member: MemberId, change: impl FnOnce(&mut PresenceMeta)) {
        let phx_ref = self.new_phx_ref();
        let Some(m) = self.members.get_mut(&member) else {
            return;
        };
        let old = m.meta.clone();
        change(&mut m.meta);
        m.meta.phx_ref_prev = Some(old.phx_ref.clone());
        m.meta.phx_ref = phx_ref;
        let diff = PresenceDiff {
            joins: [(
                m.user_id.clone(),
                PresenceEntry {
                    metas: vec![m.meta.clone()],
                },
            )]
            .into(),
            leaves: [(m.user_id.clone(), PresenceEntry { metas: vec![old] })].into(),
        };
        self.broadcast(PRESENCE_DIFF_EVENT, &diff);
    }

    fn persisted(&mut self, Persisted { job, result }: Persisted) {
        match result {
            Ok(event) => {
                self.last_broadcast_id = self.last_broadcast_id.max(event.id);
                let _ = job.outbox.reply_ok(
                    Some(&job.join_ref),
                    &job.msg_ref,
                    &job.topic,
                    &StoredReply { id: event.id },
                );
                self.broadcast(ROOM_EVENT_EVENT, &event);
            }
            Err(error) => {
                tracing::error!(room_id = %self.room_id, member = job.member, "storing an event failed: {error}");
                self.state.metrics.error("persist_failed");
                let _ = job.outbox.reply_error(
                    Some(&job.join_ref),
                    &job.msg_ref,
                    &job.topic,
                    &ErrorReply::new(
                        ErrorCode::Internal,
                        "the message could not be stored and was not sent; try again",
                    ),
                );
            }
        }
    }

    /// Sends each member the poses that changed since the last tick (everyone's,
    /// for a member that just joined), leaving out its own.
    fn relay_poses(&mut self) {
        self.ticks += 1;
        if self.ticks.is_multiple_of(VOICE_POSITIONS_EVERY_TICKS)
            && self.members.len() > 1
            && let Ok(voice) = &self.state.voice
        {
            let heads = self
                .members
                .iter()
                .filter_map(|(&id, m)| {
                    let (_, pose) = pose::decode_pose(&m.latest_pose?).ok()?;
                    Some((id, pose.head.position))
                })
                .collect();
            voice.positions(self.room_id, heads);
        }
        let changed: Vec<(MemberId, [u8; POSE_BYTES])> = self
            .members
            .iter_mut()
            .filter(|(_, m)| m.pose_changed)
            .filter_map(|(&id, m)| {
                m.pose_changed = false;
                m.latest_pose.map(|p| (id, p))
            })
            .collect();
        let needs_every_pose = self.members.values().any(|m| m.needs_every_pose);
        if changed.is_empty() && !needs_every_pose {
            return;
        }
        let everyone: Vec<(MemberId, [u8; POSE_BYTES])> = if needs_every_pose {
            self.members
                .iter()
                .filter_map(|(&id, m)| m.latest_pose.map(|p| (id, p)))
                .collect()
        } else {
            Vec::new()
        };
        let server_time_ms = self.started.elapsed().as_millis() as u32;
        let mut dropped = 0;
        for (&id, member) in self.members.iter_mut() {
            let source = if member.needs_every_pose {
                &everyone
            } else {
                &changed
            };
            member.needs_every_pose = false;
            let mut others = source
                .iter()
                .filter(|(from, _)| *from != id)
                .map(|(_, p)| *p)
                .peekable();
            if others.peek().is_none() {
                continue;
            }
            dropped += member
                .outbox
                .send_poses(id, &member.topic, server_time_ms, others);
        }
        self.state.metrics.poses_dropped.add(dropped as u64);
    }

    fn broadcast(&mut self, event: &str, payload: &impl serde::Serialize) {
        self.broadcast_to(None, event, payload);
    }

    fn broadcast_except(&mut self, except: MemberId, event: &str, payload: &impl serde::Serialize) {
        self.broadcast_to(Some(except), event, payload);
    }

    /// Sends a frame to every member but `except`. A member too far behind to
    /// take it is being disconnected: it leaves the room at once, so the room
    /// stops queueing for it and its memory is freed.
    fn broadcast_to(
        &mut self,
        except: Option<MemberId>,
        event: &str,
        payload: &impl serde::Serialize,
    ) {
        let Some(topic) = self.members.values().next().map(|m| m.topic.clone()) else {
            return;
        };
        let frame = text_frame(None, None, &topic, event, payload);
        let mut behind = Vec::new();
        for (&id, member) in &self.members {
            if Some(id) != except
                && member.outbox.send(frame.clone()).is_err()
                && member.outbox.overflowed()
            {
                behind.push(id);
            }
        }
        for id in behind {
            self.state.metrics.error("send_queue_full");
            self.leave(id);
        }
    }

    /// How many people are in the room (a person may be in with several clients).
    fn people(&self) -> usize {
        self.members
            .values()
            .map(|m| m.user_id.as_str())
            .collect::<HashSet<_>>()
            .len()
    }

    fn presence_state(&self) -> PresenceState {
        let mut state = PresenceState::new();
        for member in self.members.values() {
            state
                .entry(member.user_id.clone())
                .or_default()
                .metas
                .push(member.meta.clone());
        }
        state
    }

    fn free_slot(&self) -> u16 {
        let mut used: Vec<u16> = self.members.values().map(|m| m.meta.slot).collect();
        used.sort_unstable();
        let mut slot = 1;
        for taken in used {
            if taken == slot {
                slot += 1;
            } else if taken > slot {
                break;
            }
        }
        slot
    }

    fn new_phx_ref(&mut self) -> String {
        self.next_phx_ref += 1;
        format!(
            "{:x}-{}",
            self.started.elapsed().as_nanos() as u64 ^ self.room_id.as_u128() as u64,
            self.next_phx_ref
        )
    }
}

/// Stores a room's events one at a time, in order, and hands each result back.
async fn write_events(
    state: AppState,
    room_id: Uuid,
    mut jobs: mpsc::Receiver<PersistJob>,
    done: mpsc::Sender<Persisted>,
) {
    while let Some(job) = jobs.recv().await {
        let result = state
            .store
            .append_event(
                room_id,
                &job.user_id,
                &job.name,
                unix_millis(SystemTime::now()),
                &job.body,
            )
            .await;
        if done.send(Persisted { job, result }).await.is_err() {
            break;
        }
    }
}

/// A wait in whole minutes, rounded up, as a person reads it.
fn minutes(wait: Duration) -> String {
    match wait.as_secs().div_ceil(60) {
        1 => "1 minute".into(),
        n => format!("{n} minutes"),
    }
}

async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
