//! One room's logic as a state machine without I/O, in the shape of str0m's
//! `Rtc`: [`RoomState::handle`] takes an [`Input`] (a command from a
//! connection, the result of a storage read or write the actor ran, a member
//! found unreachable, a timeout) with the time it happened, and
//! [`RoomState::poll_output`] hands out the effects in order ([`Output`]:
//! frames for members, storage reads and writes, voice changes, bans, metrics,
//! "stop", and last the next deadline). It reads no clock, awaits nothing,
//! holds no lock and knows no `AppState`, so tests drive it on a fake clock.
//!
//! It owns the room's members, presence and latest poses, and keeps the
//! room's rules: who may moderate (the owner and the co-moderators it named),
//! whether it takes new joins, how many people fit (people, not channels: a
//! second tab of someone already in takes no place), and how fast the room may
//! write to storage, so that one room's flood cannot take the database from the
//! others.
//!
//! Its parts: [`join`] (admission, the replay, leaving), [`pushes`] (chat and
//! objects within the write budgets, profile, own mute, history), [`moderation`]
//! (mute, remove, lock, co-moderators, closing the room) and [`relay`] (the
//! pose tick); the rules themselves are plain functions in [`super::rules`].
//!
//! Ordering it keeps: a join is admitted, then its replay is read (off the
//! actor's loop), then the join reply, `presence_state` and the others'
//! `presence_diff` go out. The replay stops at the newest event broadcast when
//! the read was asked for, and events broadcast while the read was under way
//! follow the reply as pushes: a joiner never sees an event twice or misses
//! one. Events are acknowledged only once stored, and broadcast in id order.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::Message;
use roomscale_protocol::PROTOCOL_VERSION;
use roomscale_protocol::events::{
    EmptyReply, ErrorCode, ErrorReply, Governance, HistoryPage, JoinReply, ModeratePush,
    ModerationNotice, RoomEvent, RoomEventBody, RoomSummary, Speaking, StoredReply,
    UpdateProfilePush,
};
use roomscale_protocol::limits::REMOVAL_BAN_SECONDS;
use roomscale_protocol::names::normalize_name;
use roomscale_protocol::objects::ObjectState;
use roomscale_protocol::pose::{self, POSE_BYTES};
use roomscale_protocol::presence::{
    ClientKind, PresenceDiff, PresenceEntry, PresenceMeta, PresenceState,
};
use roomscale_protocol::server_event::{Reply, ReplyBody, ServerEvent};
use tokio::sync::oneshot;
use uuid::Uuid;

mod join;
mod moderation;
mod objects;
mod pushes;
mod relay;

use super::rules::{self, People};
use super::{JoinRequest, MemberId, RoomCommand};
use crate::address::ChannelAddress;
use crate::address::{broadcast_frame, server_frame};
use crate::limits::TokenBucket;
use crate::outbox::SharedPoseFrame;
use crate::storage::EventPage;
use crate::time::rfc3339;

/// Pose batches per second.
pub const POSE_RATE_HZ: u32 = 30;
/// The time between two pose ticks.
pub const TICK: Duration = Duration::from_nanos(1_000_000_000 / POSE_RATE_HZ as u64);
/// How long an empty room stays loaded before its actor stops.
pub const IDLE_STOP_AFTER: Duration = Duration::from_secs(30);
/// The SFU picks the nearest speakers from head positions sent this often
/// (every 6th tick: 5 Hz).
const VOICE_POSITIONS_EVERY_TICKS: u64 = 6;

/// The few server settings a room uses.
#[derive(Debug, Clone, Copy)]
pub struct RoomSettings {
    /// People a room holds.
    pub capacity: u16,
}

/// One member as frames reach it.
#[derive(Debug, Clone)]
pub struct Recipient {
    pub member: MemberId,
    pub address: ChannelAddress,
}

/// The members of a room at one moment, shared by every output that goes to
/// all of them: built again only when someone joins or leaves, never per frame.
pub type Recipients = Arc<[Recipient]>;

/// What happened, as the actor hands it to the room.
#[derive(Debug)]
pub enum Input {
    /// A command from a connection. Joins come as [`Input::Join`] instead
    /// (one sent here is taken as from a user under no ban).
    Command(RoomCommand),
    /// A join, with the end of the ban its user is under in this room, if
    /// any: the ban table is shared with other rooms and the SFU, so the
    /// actor looks it up.
    Join {
        request: Box<JoinRequest>,
        banned_until: Option<Instant>,
    },
    /// A storage read asked for by [`Output::Read`] finished.
    Read {
        id: u64,
        result: Result<ReadResult, String>,
    },
    /// A storage write asked for by [`Output::Write`] finished.
    Written {
        id: u64,
        result: Result<Option<RoomEvent>, String>,
    },
    /// A member's connection is too far behind (or gone) to take its frames:
    /// it leaves the room at once so the room stops queueing for it.
    Unreachable { member: MemberId },
    /// A deadline from [`Output::Timeout`] passed.
    Timeout,
}

/// What a storage read found.
#[derive(Debug)]
pub enum ReadResult {
    /// The room as stored; `None` when there is no such room (or it was deleted).
    Room(Option<LoadedRoom>),
    Events(EventPage),
}

/// A room as it is loaded when its actor starts.
#[derive(Debug, Clone)]
pub struct LoadedRoom {
    pub summary: RoomSummary,
    pub governance: Governance,
    /// The id of the newest stored event (0 when there is none).
    pub newest_event_id: u64,
    /// Its objects where they rest, by id.
    pub objects: Vec<(String, ObjectState)>,
}

/// A storage read for the actor to run off its loop.
#[derive(Debug, Clone, PartialEq)]
pub enum StorageRead {
    /// The room, its moderators, its newest event id and its objects.
    Room,
    /// [`crate::storage::Store::events_page`] with the replay limits.
    Events { after_id: u64, before_id: u64 },
}

/// A storage write; the actor runs them one at a time, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum StorageWrite {
    Event {
        user_id: String,
        name: String,
        sent_at_ms: i64,
        body: RoomEventBody,
    },
    Lock {
        locked: bool,
    },
    Moderator {
        user_id: String,
        moderator: bool,
    },
}

/// A change for the SFU.
#[derive(Debug, Clone, PartialEq)]
pub enum VoiceEffect {
    SetMuted {
        member: MemberId,
        muted: bool,
    },
    Leave {
        member: MemberId,
    },
    /// Head positions of the room's members.
    Positions {
        heads: Vec<(MemberId, [f32; 3])>,
    },
}

/// An effect for the actor to carry out.
#[derive(Debug)]
pub enum Output {
    /// A frame for one channel. When it cannot take it because it is too far
    /// behind, the actor answers [`Input::Unreachable`] for `member`.
    Send {
        member: MemberId,
        to: ChannelAddress,
        frame: Message,
    },
    /// The same frame for every one of `to` but `except`.
    Broadcast {
        to: Recipients,
        except: Option<MemberId>,
        frame: Message,
    },
    /// A join admitted: send `reply`, then `presence`, then tell the
    /// connection through `accepted`. When the reply cannot be sent, drop
    /// `accepted` and answer [`Input::Unreachable`]: the joiner never stays.
    Joined {
        member: MemberId,
        to: ChannelAddress,
        reply: Message,
        presence: Message,
        accepted: oneshot::Sender<Result<(), ErrorReply>>,
    },
    /// A join refused: the connection sends `reply` itself.
    Refused {
        accepted: oneshot::Sender<Result<(), ErrorReply>>,
        reply: ErrorReply,
    },
    /// One tick's pose batch, encoded once, for every one of `to` but those
    /// in `skip` (each client skips its own slot in it).
    Poses {
        to: Recipients,
        skip: Vec<MemberId>,
        frame: Arc<SharedPoseFrame>,
    },
    /// Forget the unsent poses of a member that left.
    ForgetPoses {
        member: MemberId,
        to: ChannelAddress,
    },
    /// Read from storage; answer with [`Input::Read`] and this id.
    Read {
        id: u64,
        read: StorageRead,
    },
    /// Write to storage after every earlier write; answer with
    /// [`Input::Written`] and this id.
    Write {
        id: u64,
        write: StorageWrite,
    },
    Voice(VoiceEffect),
    /// Keep `user_id` out of this room until `until`.
    Ban {
        user_id: String,
        until: Instant,
    },
    /// Let `user_id` back in (it became a moderator).
    Unban {
        user_id: String,
    },
    /// Count an error of this kind in the metrics.
    CountError(&'static str),
    /// Count object poses ignored because their sender holds no such object.
    ObjectPosesIgnored(u32),
    /// The room's live session is over: stop taking commands, let the writes
    /// under way finish (feeding their results back), then end.
    Stop,
    /// Nothing more to do before this time unless an input arrives; it comes
    /// last, once every other output was taken.
    Timeout(Instant),
}

pub struct RoomState {
    room_id: Uuid,
    topic: Arc<str>,
    settings: RoomSettings,
    /// The time the room started, and the wall clock then (Unix
    /// milliseconds): wall times are derived from the inputs' time.
    started: Instant,
    started_unix_ms: i64,
    stage: Stage,
    room: Option<RoomSummary>,
    /// Who runs the room and whether it is locked, as stored.
    governance: Governance,
    members: HashMap<MemberId, Member>,
    /// Built again when someone joins or leaves.
    recipients: Recipients,
    people: People,
    /// The newest event id broadcast to members; replays stop here so a joiner
    /// never gets an event twice (once replayed, once broadcast).
    last_broadcast_id: u64,
    next_phx_ref: u64,
    next_request_id: u64,
    /// Joins that arrived while the room was loading.
    waiting_joins: Vec<(Box<JoinRequest>, Option<Instant>)>,
    /// Joins admitted whose replay is being read, by read id.
    replaying: HashMap<u64, PendingJoin>,
    /// History pages being read, by read id: who asked, and its push's ref.
    history_reads: HashMap<u64, (Recipient, String)>,
    /// Writes under way, by write id, in the order they were asked for.
    writes: HashMap<u64, PendingWrite>,
    /// Users a moderator muted: their members join muted while the room runs.
    moderator_muted: HashSet<String>,
    /// Persisted events this room may still write now, and each person in it.
    persist_limit: TokenBucket,
    persist_limit_per_user: HashMap<String, TokenBucket>,
    /// Members the room closed (removed by a moderator) whose connections may
    /// still push on the channel: told why until their connection leaves it.
    closed: HashMap<MemberId, (ChannelAddress, ErrorReply)>,
    /// Pose ticks so far; every few, head positions go to the SFU.
    ticks: u64,
    next_tick: Option<Instant>,
    idle_since: Option<Instant>,
    /// The poses of one tick, reused from tick to tick.
    tick_poses: Vec<[u8; POSE_BYTES]>,
    /// The room's shared objects.
    objects: objects::Objects,
    /// The time of the input being handled.
    now: Instant,
    outputs: VecDeque<Output>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Loading,
    Running,
    Stopped,
}

struct Member {
    user_id: String,
    address: ChannelAddress,
    meta: PresenceMeta,
    latest_pose: Option<[u8; POSE_BYTES]>,
    pose_changed: bool,
    /// A new member's first batch carries everyone's latest pose.
    needs_every_pose: bool,
}

/// A join admitted and waiting for its replay.
struct PendingJoin {
    member: MemberId,
    user_id: String,
    name: String,
    msg_ref: String,
    address: ChannelAddress,
    payload: roomscale_protocol::events::JoinPayload,
    accepted: oneshot::Sender<Result<(), ErrorReply>>,
    /// The client already has events up to this id.
    after_id: u64,
    /// Events broadcast since the replay was asked for: they follow the reply.
    missed: Vec<Message>,
}

/// What to do when a write finishes.
enum PendingWrite {
    Event {
        member: MemberId,
        to: ChannelAddress,
        msg_ref: String,
        /// The object the event is about.
        object_id: Option<String>,
    },
    /// The rest the server worked out for an object whose holder was lost.
    Settle { object_id: String },
    Governance {
        member: MemberId,
        to: ChannelAddress,
        msg_ref: String,
        notice: ModerationNotice,
    },
}

impl RoomState {
    /// A room about to load: its first output asks to read it from storage.
    /// `now` is when it starts and `unix_ms` the wall clock then.
    pub fn new(room_id: Uuid, settings: RoomSettings, now: Instant, unix_ms: i64) -> RoomState {
        let mut state = RoomState {
            room_id,
            topic: Arc::from(format!("room:{room_id}")),
            settings,
            started: now,
            started_unix_ms: unix_ms,
            stage: Stage::Loading,
            room: None,
            governance: Governance::default(),
            members: HashMap::new(),
            recipients: Arc::from(Vec::new()),
            people: People::default(),
            last_broadcast_id: 0,
            next_phx_ref: 1,
            next_request_id: 1,
            waiting_joins: Vec::new(),
            replaying: HashMap::new(),
            history_reads: HashMap::new(),
            writes: HashMap::new(),
            moderator_muted: HashSet::new(),
            persist_limit: TokenBucket::new(rules::PERSISTS_PER_SECOND, rules::PERSISTS_BURST, now),
            persist_limit_per_user: HashMap::new(),
            closed: HashMap::new(),
            ticks: 0,
            next_tick: None,
            idle_since: Some(now),
            tick_poses: Vec::new(),
            objects: Default::default(),
            now,
            outputs: VecDeque::new(),
        };
        let id = state.request_id();
        state.outputs.push_back(Output::Read {
            id,
            read: StorageRead::Room,
        });
        state
    }

    /// The next effect, in order; [`Output::Timeout`] once there is none
    /// left, and `None` when the room has stopped and has nothing more to send
    /// (or, running, has no deadline: it waits for an input).
    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some(output) = self.outputs.pop_front() {
            return Some(output);
        }
        if self.stage == Stage::Stopped {
            return None;
        }
        self.deadline().map(Output::Timeout)
    }

    /// The members as the supervisor reaches them if the actor panics.
    pub fn recipients(&self) -> &Recipients {
        &self.recipients
    }

    /// Each member's kind of client (the room list counts them).
    pub fn client_kinds(&self) -> impl Iterator<Item = ClientKind> + '_ {
        self.members.values().map(|m| m.meta.client_kind)
    }

    pub fn is_stopped(&self) -> bool {
        self.stage == Stage::Stopped
    }

    /// Takes in what happened at `now`.
    pub fn handle(&mut self, input: Input, now: Instant) {
        self.now = now;
        match input {
            Input::Command(command) => self.command(command, now),
            Input::Join {
                request,
                banned_until,
            } => self.join(request, banned_until, now),
            Input::Read { id, result } => self.read_done(id, result, now),
            Input::Written { id, result } => self.written(id, result, now),
            Input::Unreachable { member } => self.leave(member),
            Input::Timeout => self.timeout(now),
        }
        self.after_input(now);
    }

    fn command(&mut self, command: RoomCommand, now: Instant) {
        if self.stage == Stage::Stopped {
            return;
        }
        if let Some((member, msg_ref)) = command.push_ref()
            && let Some((to, reason)) = self.closed.get(&member)
        {
            let frame = error_frame(to, msg_ref, reason);
            let to = to.clone();
            self.outputs.push_back(Output::Send { member, to, frame });
            return;
        }
        match command {
            RoomCommand::Join(request) => self.join(request, None, now),
            RoomCommand::Leave { member } => self.leave(member),
            RoomCommand::Pose {
                member,
                mut pose,
                objects,
            } => {
                if let Some(m) = self.members.get_mut(&member) {
                    pose::set_pose_slot(&mut pose, m.meta.slot);
                    m.latest_pose = Some(pose);
                    m.pose_changed = true;
                    if !objects.is_empty() {
                        self.object_poses(member, &objects, now);
                    }
                }
            }
            RoomCommand::Persist {
                member,
                msg_ref,
                body,
            } => match body {
                RoomEventBody::Chat { .. } => self.persist(member, msg_ref, body, now),
                RoomEventBody::ObjectSet { .. } | RoomEventBody::ObjectRemove { .. } => {
                    self.change_object(member, msg_ref, body, now)
                }
            },
            RoomCommand::UpdateProfile {
                member,
                msg_ref,
                update,
            } => self.update_profile(member, &msg_ref, update, now),
            RoomCommand::ObjectGrab {
                member,
                msg_ref,
                object_id,
            } => self.grab(member, &msg_ref, &object_id, now),
            RoomCommand::ObjectRelease {
                member,
                msg_ref,
                object_id,
            } => self.release(member, &msg_ref, &object_id, now),
            RoomCommand::SetMuted {
                member,
                msg_ref,
                muted,
            } => self.set_muted(member, &msg_ref, muted, now),
            RoomCommand::Moderate {
                member,
                msg_ref,
                act,
            } => self.moderate(member, msg_ref, act, now),
            RoomCommand::History {
                member,
                msg_ref,
                before_id,
            } => self.history(member, msg_ref, before_id),
            RoomCommand::Speaking { member, speaking } => {
                if let Some(user_id) = self.members.get(&member).map(|m| m.user_id.clone()) {
                    // Everyone, the speaker too: its own indicator follows the server.
                    self.broadcast(None, ServerEvent::Speaking(Speaking { user_id, speaking }));
                }
            }
            RoomCommand::Close { reason } => self.close_everyone(&reason),
            // The actor panics itself; the logic has nothing to do.
            #[cfg(feature = "test-hooks")]
            RoomCommand::InjectPanic => {}
        }
    }

    // Storage results --------------------------------------------------------

    fn read_done(&mut self, id: u64, result: Result<ReadResult, String>, now: Instant) {
        if let Some(join) = self.replaying.remove(&id) {
            let page = result.and_then(|read| match read {
                ReadResult::Events(page) => Ok(page),
                ReadResult::Room(_) => Err("a room came back for an events read".into()),
            });
            return self.replay_read(join, page, now);
        }
        if let Some((reader, msg_ref)) = self.history_reads.remove(&id) {
            let frame = match result {
                Ok(ReadResult::Events(page)) => ok_frame(
                    &reader.address,
                    &msg_ref,
                    HistoryPage {
                        events: page.events,
                        more: page.more,
                    },
                ),
                Ok(ReadResult::Room(_)) | Err(_) => {
                    if let Err(error) = &result {
                        tracing::error!(room_id = %self.room_id, "reading a history page: {error}");
                    }
                    error_frame(
                        &reader.address,
                        &msg_ref,
                        &ErrorReply::new(
                            ErrorCode::Internal,
                            "the room's history could not be read; try again",
                        ),
                    )
                }
            };
            self.outputs.push_back(Output::Send {
                member: reader.member,
                to: reader.address,
                frame,
            });
            return;
        }
        if self.stage != Stage::Loading {
            return;
        }
        match result {
            Ok(ReadResult::Room(room)) => {
                self.stage = Stage::Running;
                if let Some(room) = room {
                    self.room = Some(room.summary);
                    self.governance = room.governance;
                    self.last_broadcast_id = room.newest_event_id;
                    self.load_objects(room.objects);
                }
                for (request, banned_until) in std::mem::take(&mut self.waiting_joins) {
                    self.join(request, banned_until, now);
                }
            }
            Ok(ReadResult::Events(_)) | Err(_) => {
                if let Err(error) = &result {
                    tracing::error!(room_id = %self.room_id, "could not load the room: {error}");
                }
                // Refused, and the actor stops: the next join starts a fresh
                // one that tries again.
                for (request, _) in std::mem::take(&mut self.waiting_joins) {
                    self.outputs.push_back(Output::Refused {
                        accepted: request.accepted,
                        reply: ErrorReply::new(
                            ErrorCode::Internal,
                            "the room could not be loaded; try joining again",
                        ),
                    });
                }
                self.stop();
            }
        }
    }

    fn written(&mut self, id: u64, result: Result<Option<RoomEvent>, String>, now: Instant) {
        let Some(pending) = self.writes.remove(&id) else {
            return;
        };
        match pending {
            PendingWrite::Settle { object_id } => match result {
                Ok(Some(event)) => self.event_stored(event),
                Ok(None) | Err(_) => {
                    let error = result.err().unwrap_or_else(|| "no event came back".into());
                    tracing::error!(
                        room_id = %self.room_id,
                        object_id,
                        "storing where a dropped object came to rest failed; it stays where it \
                         rested before: {error}"
                    );
                    self.outputs.push_back(Output::CountError("persist_failed"));
                    self.object_write_failed(&object_id);
                }
            },
            PendingWrite::Event {
                member,
                to,
                msg_ref,
                object_id,
            } => match result {
                Ok(Some(event)) => {
                    let frame = ok_frame(&to, &msg_ref, StoredReply { id: event.id });
                    self.outputs.push_back(Output::Send { member, to, frame });
                    self.event_stored(event);
                }
                Ok(None) | Err(_) => {
                    if let Some(object_id) = object_id {
                        self.object_write_failed(&object_id);
                    }
                    let error = result.err().unwrap_or_else(|| "no event came back".into());
                    tracing::error!(room_id = %self.room_id, member, "storing an event failed: {error}");
                    self.outputs.push_back(Output::CountError("persist_failed"));
                    let frame = error_frame(
                        &to,
                        &msg_ref,
                        &ErrorReply::new(
                            ErrorCode::Internal,
                            "the message could not be stored and was not sent; try again",
                        ),
                    );
                    self.outputs.push_back(Output::Send { member, to, frame });
                }
            },
            PendingWrite::Governance {
                member,
                to,
                msg_ref,
                notice,
            } => {
                if let Err(error) = result {
                    let reason = match notice.act {
                        ModeratePush::Lock { .. } => {
                            tracing::error!(room_id = %self.room_id, "storing the room's lock: {error}");
                            "the lock could not be stored, so nothing changed; try again"
                        }
                        _ => {
                            tracing::error!(room_id = %self.room_id, "storing a moderator: {error}");
                            "the moderator could not be stored, so nothing changed; try again"
                        }
                    };
                    self.outputs
                        .push_back(Output::CountError(ErrorCode::Internal.as_str()));
                    let frame =
                        error_frame(&to, &msg_ref, &ErrorReply::new(ErrorCode::Internal, reason));
                    self.outputs.push_back(Output::Send { member, to, frame });
                    return;
                }
                match &notice.act {
                    ModeratePush::Lock { locked } => self.governance.locked = *locked,
                    ModeratePush::Moderator { user_id, moderator } => {
                        self.governance.moderators.retain(|m| m != user_id);
                        if *moderator {
                            self.governance.moderators.push(user_id.clone());
                            self.outputs.push_back(Output::Unban {
                                user_id: user_id.clone(),
                            });
                        }
                        let role = rules::role_of(&self.governance, user_id);
                        for id in self.members_of(user_id) {
                            self.change_meta(id, now, |meta| meta.role = role);
                        }
                    }
                    ModeratePush::Mute { .. } | ModeratePush::Remove { .. } => {}
                }
                let frame = ok_frame(&to, &msg_ref, EmptyReply {});
                self.outputs.push_back(Output::Send { member, to, frame });
                let notice = ModerationNotice {
                    governance: self.governance.clone(),
                    ..notice
                };
                self.broadcast(None, ServerEvent::Moderation(notice));
            }
        }
    }

    /// A stored event goes to everyone (and to joins whose replay is being
    /// read); then an object's event takes effect: the object rests as it
    /// says, free.
    fn event_stored(&mut self, event: RoomEvent) {
        self.last_broadcast_id = self.last_broadcast_id.max(event.id);
        let id = event.id;
        let frame = broadcast_frame(&self.topic, &ServerEvent::Event(event.clone()));
        for join in self.replaying.values_mut() {
            if id > join.after_id {
                join.missed.push(frame.clone());
            }
        }
        self.broadcast_frame(None, frame);
        self.object_stored(&event.body);
    }

    fn stop(&mut self) {
        self.stage = Stage::Stopped;
        self.next_tick = None;
        self.outputs.push_back(Output::Stop);
    }

    // Time -----------------------------------------------------------------

    fn timeout(&mut self, now: Instant) {
        if self.stage == Stage::Stopped {
            return;
        }
        if let Some(since) = self.idle_since
            && now >= since + IDLE_STOP_AFTER
        {
            return self.stop();
        }
        self.object_timeouts(now);
        if let Some(tick) = self.next_tick
            && now >= tick
        {
            self.relay_poses(now);
            // Ticks missed while the room was busy are skipped, not caught up.
            let next = tick + TICK;
            self.next_tick = Some(if next > now { next } else { now + TICK });
        }
    }

    /// Keeps the timers true to what the input changed.
    fn after_input(&mut self, now: Instant) {
        if self.stage == Stage::Stopped {
            return;
        }
        if self.members.is_empty() {
            self.next_tick = None;
        } else if self.next_tick.is_none() {
            self.next_tick = Some(now + TICK);
        }
        // Writes under way (a dropped object's rest, say) are stored before
        // the room counts as idle, so the next start loads them.
        let idle = self.members.is_empty()
            && self.replaying.is_empty()
            && self.waiting_joins.is_empty()
            && self.writes.is_empty();
        self.idle_since = match (idle, self.idle_since) {
            (true, None) => Some(now),
            (true, since) => since,
            (false, _) => None,
        };
    }

    fn deadline(&self) -> Option<Instant> {
        let idle = self.idle_since.map(|since| since + IDLE_STOP_AFTER);
        [self.next_tick, idle, self.object_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// The wall clock at `at`, in Unix milliseconds.
    fn unix_ms(&self, at: Instant) -> i64 {
        let since = at.saturating_duration_since(self.started).as_millis();
        self.started_unix_ms
            .saturating_add(i64::try_from(since).unwrap_or(i64::MAX))
    }

    // Helpers ----------------------------------------------------------------

    /// Answers a member's push: `ok` with an empty response, or an error with
    /// `reason`.
    fn reply(
        &mut self,
        member: MemberId,
        msg_ref: &str,
        outcome: Result<(), ErrorCode>,
        reason: String,
    ) {
        let Some(m) = self.members.get(&member) else {
            return;
        };
        let frame = match outcome {
            Ok(()) => ok_frame(&m.address, msg_ref, EmptyReply {}),
            Err(code) => {
                self.outputs.push_back(Output::CountError(code.as_str()));
                error_frame(&m.address, msg_ref, &ErrorReply::new(code, reason))
            }
        };
        let to = m.address.clone();
        self.outputs.push_back(Output::Send { member, to, frame });
    }

    /// Changes a member's presence meta and tells everyone.
    fn change_meta(
        &mut self,
        member: MemberId,
        now: Instant,
        change: impl FnOnce(&mut PresenceMeta),
    ) {
        let phx_ref = self.new_phx_ref(now);
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
        self.broadcast(None, ServerEvent::PresenceDiff(diff));
    }

    fn broadcast(&mut self, except: Option<MemberId>, event: ServerEvent) {
        if self.members.is_empty() {
            return;
        }
        let frame = broadcast_frame(&self.topic, &event);
        self.broadcast_frame(except, frame);
    }

    fn broadcast_frame(&mut self, except: Option<MemberId>, frame: Message) {
        let excepted = except.is_some_and(|id| self.members.contains_key(&id));
        if self.members.len() <= usize::from(excepted) {
            return;
        }
        self.outputs.push_back(Output::Broadcast {
            to: self.recipients.clone(),
            except,
            frame,
        });
    }

    fn rebuild_recipients(&mut self) {
        self.recipients = self
            .members
            .iter()
            .map(|(&member, m)| Recipient {
                member,
                address: m.address.clone(),
            })
            .collect();
    }

    fn members_of(&self, user_id: &str) -> Vec<MemberId> {
        self.members
            .iter()
            .filter(|(_, m)| m.user_id == user_id)
            .map(|(&id, _)| id)
            .collect()
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

    fn new_phx_ref(&mut self, now: Instant) -> String {
        self.next_phx_ref += 1;
        format!(
            "{:x}-{}",
            now.saturating_duration_since(self.started).as_nanos() as u64
                ^ self.room_id.as_u128() as u64,
            self.next_phx_ref
        )
    }

    fn request_id(&mut self) -> u64 {
        let id = self.next_request_id;
        self.next_request_id += 1;
        id
    }
}

fn ok_frame(to: &ChannelAddress, msg_ref: &str, response: impl Into<ReplyBody>) -> Message {
    channel_frame(to, &ServerEvent::Reply(Reply::ok(msg_ref, response)))
}

fn error_frame(to: &ChannelAddress, msg_ref: &str, reason: &ErrorReply) -> Message {
    channel_frame(
        to,
        &ServerEvent::Reply(Reply::error(msg_ref, reason.clone())),
    )
}

/// A frame for one channel: replies carry their push's ref, `phx_close` the
/// join ref, as Phoenix sends them.
fn channel_frame(to: &ChannelAddress, event: &ServerEvent) -> Message {
    server_frame(&to.topic, to.join_ref.as_deref(), event)
}
