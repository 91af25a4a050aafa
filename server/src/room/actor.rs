//! One room's actor: the only owner of the room's members, presence and latest
//! poses. It persists chat and object events through a writer task (one write
//! at a time, so ids and broadcasts stay in order) and relays pose batches once
//! per tick.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use roomscale_protocol::PROTOCOL_VERSION;
use roomscale_protocol::events::{
    ErrorCode, ErrorReply, JoinReply, PRESENCE_DIFF_EVENT, PRESENCE_STATE_EVENT, ROOM_EVENT_EVENT,
    RoomEvent, RoomEventBody, RoomSummary, SPEAKING_EVENT, Speaking, StoredReply,
};
use roomscale_protocol::limits::MAX_REPLAYED_EVENTS;
use roomscale_protocol::pose::{self, POSE_BYTES};
use roomscale_protocol::presence::{PresenceDiff, PresenceEntry, PresenceMeta, PresenceState};
use tokio::sync::{mpsc, oneshot};
use tokio::time::MissedTickBehavior;
use uuid::Uuid;

use super::{Contact, JoinRequest, MemberId, RoomCommand, Roster};
use crate::AppState;
use crate::outbox::{Outbox, text_frame};
use crate::storage::unix_millis;

/// Pose batches per second.
pub const POSE_RATE_HZ: u32 = 30;
/// How long an empty room stays loaded before its actor stops.
const IDLE_STOP_AFTER: Duration = Duration::from_secs(30);
/// Writes a room may have waiting for storage before it refuses more.
const PERSIST_QUEUE: usize = 256;

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
            } => {
                let Some(m) = self.members.get(&member) else {
                    return ControlFlow::Continue(());
                };
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
            RoomCommand::UpdateProfile {
                member,
                msg_ref,
                update,
            } => {
                self.update_meta(member, &msg_ref, |meta| {
                    if let Some(name) = update.name {
                        meta.name = name;
                    }
                    if let Some(colour) = update.colour {
                        meta.colour = colour;
                    }
                });
            }
            RoomCommand::SetMuted {
                member,
                msg_ref,
                muted,
            } => {
                self.update_meta(member, &msg_ref, |meta| meta.muted = muted);
                // Muting is enforced where voice flows, not only shown.
                if let Ok(voice) = &self.state.voice {
                    voice.set_muted(member, muted);
                }
            }
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
        self.leave(member);
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
        let capacity = self.state.config.room_capacity;
        if self.members.len() >= usize::from(capacity) {
            return reject(
                accepted,
                ErrorCode::RoomFull,
                format!(
                    "room full: it holds {capacity} people; try again later or pick another room"
                ),
            );
        }
        let after = payload.last_seen_id.unwrap_or(0);
        let (mut events, truncated) = match self
            .state
            .store
            .events_after(self.room_id, after, MAX_REPLAYED_EVENTS)
            .await
        {
            Ok(found) => found,
            Err(error) => {
                tracing::error!(room_id = %self.room_id, "loading events for a join: {error}");
                return reject(
                    accepted,
                    ErrorCode::Internal,
                    "the room's history could not be loaded; try joining again".into(),
                );
            }
        };
        // Events stored but not yet broadcast will reach this member as broadcasts.
        events.retain(|e| e.id <= self.last_broadcast_id);

        let meta = PresenceMeta {
            phx_ref: self.new_phx_ref(),
            phx_ref_prev: None,
            name: payload.name,
            colour: payload.colour,
            client_kind: payload.client_kind,
            slot: self.free_slot(),
            joined_at: unix_millis(SystemTime::now()),
            speaking: false,
            muted: false,
            moderator_muted: false,
            role: Default::default(),
        };
        let reply = JoinReply {
            user_id: user_id.clone(),
            slot: meta.slot,
            protocol_version: PROTOCOL_VERSION,
            room,
            events,
            truncated,
            pose_rate_hz: POSE_RATE_HZ,
            governance: Default::default(),
        };
        if outbox
            .reply_ok(Some(&join_ref), &msg_ref, &topic, &reply)
            .is_err()
        {
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
        let _ = accepted.send(Ok(()));
    }

    fn leave(&mut self, member: MemberId) {
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

    fn update_meta(
        &mut self,
        member: MemberId,
        msg_ref: &str,
        change: impl FnOnce(&mut PresenceMeta),
    ) {
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
        let _ = m
            .outbox
            .reply_ok(Some(&m.join_ref), msg_ref, &m.topic, &serde_json::json!({}));
        self.broadcast_except(0, PRESENCE_DIFF_EVENT, &diff);
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
                self.broadcast_except(0, ROOM_EVENT_EVENT, &event);
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

    fn broadcast(&self, event: &str, payload: &impl serde::Serialize) {
        self.broadcast_to(None, event, payload);
    }

    fn broadcast_except(&self, except: MemberId, event: &str, payload: &impl serde::Serialize) {
        self.broadcast_to(Some(except), event, payload);
    }

    fn broadcast_to(&self, except: Option<MemberId>, event: &str, payload: &impl serde::Serialize) {
        let Some(topic) = self.members.values().next().map(|m| m.topic.clone()) else {
            return;
        };
        let frame = text_frame(None, None, &topic, event, payload);
        for (&id, member) in &self.members {
            if Some(id) != except {
                let _ = member.outbox.send(frame.clone());
            }
        }
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

async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
