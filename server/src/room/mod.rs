//! Rooms: one actor task per active room, a supervisor that restarts it when
//! it panics, and the table of who was removed from which room.
//!
//! A room's logic is [`state::RoomState`], a state machine without I/O: commands,
//! storage results and ticks go in with the time, effects come out (frames for
//! members, storage reads and writes, voice changes, bans, the next deadline).
//! [`actor`] is the thin loop around it that owns the inbox, the clock, the
//! storage tasks and the outputs. [`rules`] holds the room's rules as plain
//! functions (who may moderate whom, the write budgets, the people count).
//!
//! Connections never touch room state; they send [`RoomCommand`]s. A room starts
//! on its first join and stops after it has been empty for a while. When an
//! actor panics, its supervisor sends `phx_error` to every member it had (phoenix
//! clients then rejoin) and starts a fresh actor; other rooms never notice.
//!
//! Actors get a [`RoomContext`] (storage, metrics, the voice handle, the bans,
//! the room capacity), built from the `AppState` here, not the state itself.
//!
//! Who was removed from which room is kept here ([`Bans`]), beside the running
//! rooms, so a removal outlives the actor of a room that went idle.
//!
//! How many people each room has now, by kind of client, and when it last saw
//! a join, a leave or a chat line is kept here too ([`Activity`]): each actor
//! writes it when its members change or a chat line arrives (never per pose),
//! and the room list reads it without asking the actors.

mod actor;
pub(crate) mod rules;
pub(crate) mod state;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use roomscale_protocol::events::{
    ErrorCode, ErrorReply, JoinPayload, ModeratePush, RoomEventBody, UpdateProfilePush,
};
use roomscale_protocol::objects::{MAX_OBJECTS_PER_POSE_PUSH, OBJECT_POSE_BYTES, PosePush};
use roomscale_protocol::pose::POSE_BYTES;
use roomscale_protocol::presence::ClientKind;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use crate::AppState;
use crate::address::ChannelAddress;
use crate::metrics::Metrics;
use crate::storage::Store;
use crate::voice::Voice;

use actor::RoomActor;
pub use state::POSE_RATE_HZ;

/// Commands a room's inbox holds before senders wait.
const ROOM_INBOX: usize = 4096;

/// Identifies one member: one join of one connection. Unique for the process.
pub type MemberId = u64;

static NEXT_MEMBER: AtomicU64 = AtomicU64::new(1);

pub fn next_member_id() -> MemberId {
    NEXT_MEMBER.fetch_add(1, Ordering::Relaxed)
}

/// What a connection asks of a room.
#[derive(Debug)]
pub enum RoomCommand {
    Join(Box<JoinRequest>),
    Leave {
        member: MemberId,
    },
    /// A binary `pose` push: the avatar pose and the poses of the objects
    /// the member holds or throws (only a holder's count).
    Pose {
        member: MemberId,
        pose: [u8; POSE_BYTES],
        objects: PushedObjects,
    },
    /// `object_grab`: take hold of an object (or catch it mid-throw).
    ObjectGrab {
        member: MemberId,
        msg_ref: String,
        object_id: String,
    },
    /// `object_release`: the holder let go and now throws it.
    ObjectRelease {
        member: MemberId,
        msg_ref: String,
        object_id: String,
    },
    /// Chat and shared-object changes: stored, then acknowledged and broadcast.
    Persist {
        member: MemberId,
        msg_ref: String,
        body: RoomEventBody,
    },
    UpdateProfile {
        member: MemberId,
        msg_ref: String,
        update: UpdateProfilePush,
    },
    SetMuted {
        member: MemberId,
        msg_ref: String,
        muted: bool,
    },
    /// A moderation act by the member (refused unless it may moderate).
    Moderate {
        member: MemberId,
        msg_ref: String,
        act: ModeratePush,
    },
    /// A page of the history older than `before_id`.
    History {
        member: MemberId,
        msg_ref: String,
        before_id: u64,
    },
    /// The SFU heard a member start or stop speaking.
    Speaking {
        member: MemberId,
        speaking: bool,
    },
    /// End the room's live session: every member gets `phx_close` with this
    /// reason, leaves voice, and the actor stops (the room was deleted).
    Close {
        reason: ErrorReply,
    },
    /// Test hook: make the actor panic, to exercise the supervisor.
    #[cfg(feature = "test-hooks")]
    InjectPanic,
}

impl RoomCommand {
    /// The member and ref of a push its client awaits a reply to.
    fn push_ref(&self) -> Option<(MemberId, &str)> {
        match self {
            RoomCommand::Persist {
                member, msg_ref, ..
            }
            | RoomCommand::UpdateProfile {
                member, msg_ref, ..
            }
            | RoomCommand::SetMuted {
                member, msg_ref, ..
            }
            | RoomCommand::Moderate {
                member, msg_ref, ..
            }
            | RoomCommand::History {
                member, msg_ref, ..
            }
            | RoomCommand::ObjectGrab {
                member, msg_ref, ..
            }
            | RoomCommand::ObjectRelease {
                member, msg_ref, ..
            } => Some((*member, msg_ref)),
            _ => None,
        }
    }
}

/// The object poses of one `pose` push, kept inline (a push carries at most
/// [`MAX_OBJECTS_PER_POSE_PUSH`]): a pose command allocates nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushedObjects {
    poses: [[u8; OBJECT_POSE_BYTES]; MAX_OBJECTS_PER_POSE_PUSH],
    len: u8,
}

impl PushedObjects {
    /// The object poses of a parsed push.
    pub fn of(push: &PosePush<'_>) -> PushedObjects {
        PushedObjects::collect(push.objects())
    }

    /// Object poses given one by one (tests, load generators); those past
    /// [`MAX_OBJECTS_PER_POSE_PUSH`] are left out.
    pub fn from_poses(poses: &[[u8; OBJECT_POSE_BYTES]]) -> PushedObjects {
        PushedObjects::collect(poses.iter())
    }

    fn collect<'a>(poses: impl Iterator<Item = &'a [u8; OBJECT_POSE_BYTES]>) -> PushedObjects {
        let mut objects = PushedObjects::default();
        for pose in poses.take(MAX_OBJECTS_PER_POSE_PUSH) {
            objects.poses[usize::from(objects.len)] = *pose;
            objects.len += 1;
        }
        objects
    }

    pub fn as_slice(&self) -> &[[u8; OBJECT_POSE_BYTES]] {
        &self.poses[..usize::from(self.len)]
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[derive(Debug)]
pub struct JoinRequest {
    pub member: MemberId,
    pub user_id: String,
    /// The ref of the `phx_join` push, which the join reply answers.
    pub msg_ref: String,
    /// Where the joined channel's frames go (its join ref is the join's).
    pub address: ChannelAddress,
    pub payload: JoinPayload,
    /// `Ok` once the room has sent the join reply itself (so it precedes
    /// presence), `Err` with the reply the connection should send.
    pub accepted: oneshot::Sender<Result<(), ErrorReply>>,
}

/// What a room actor uses of the server, and nothing more.
#[derive(Debug, Clone)]
pub(crate) struct RoomContext {
    pub store: Store,
    /// Where the actor publishes its people count and last activity.
    pub activity: Activity,
    pub metrics: Arc<Metrics>,
    /// `None` when voice is off on this server.
    pub voice: Option<Voice>,
    pub bans: Bans,
    pub settings: state::RoomSettings,
    /// The server's shutdown signal. Held by every room task: the server closes
    /// the database only once the last holder let go of it.
    pub shutdown: watch::Receiver<bool>,
}

impl RoomContext {
    fn from_app(state: &AppState, bans: &Bans, activity: &Activity) -> RoomContext {
        RoomContext {
            store: state.store.clone(),
            activity: activity.clone(),
            metrics: state.metrics.clone(),
            voice: state.voice.as_ref().ok().cloned(),
            bans: bans.clone(),
            settings: state::RoomSettings {
                capacity: state.config.room_capacity,
            },
            shutdown: state.shutdown.clone(),
        }
    }

    fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// The members of a running room as its supervisor reaches them when the
/// actor panics: published by the actor whenever membership changes, kept
/// outside it so it survives the panic.
pub(crate) type Roster = Arc<Mutex<state::Recipients>>;

/// Users removed from rooms, and until when they may not rejoin. Shared by
/// every room actor and the SFU; cheap to clone.
#[derive(Debug, Clone, Default)]
pub(crate) struct Bans {
    until: Arc<Mutex<HashMap<(Uuid, String), Instant>>>,
}

/// Bans kept before expired ones are swept out.
const SWEEP_BANS_ABOVE: usize = 1024;

impl Bans {
    /// Keeps `user_id` out of a room until `until`.
    pub(crate) fn ban(&self, room_id: Uuid, user_id: &str, until: Instant, now: Instant) {
        let mut bans = self.until.lock().expect("poisoned");
        if bans.len() > SWEEP_BANS_ABOVE {
            bans.retain(|_, until| *until > now);
        }
        bans.insert((room_id, user_id.to_string()), until);
    }

    /// Until when `user_id` must stay out of a room, if it was ever removed
    /// (the time may have passed).
    pub(crate) fn until(&self, room_id: Uuid, user_id: &str) -> Option<Instant> {
        let bans = self.until.lock().expect("poisoned");
        bans.get(&(room_id, user_id.to_string())).copied()
    }

    /// Lets a removed user back in before the ban ends (it became a moderator).
    pub(crate) fn unban(&self, room_id: Uuid, user_id: &str) {
        let mut bans = self.until.lock().expect("poisoned");
        bans.remove(&(room_id, user_id.to_string()));
    }
}

/// How many people are in a room now, by kind of client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Headcount {
    /// In a web browser, flat or immersive.
    pub browser: u32,
    /// In the native app's desktop window.
    pub desktop: u32,
    /// In a headset: the native app through OpenXR, or on a Quest.
    pub headset: u32,
    pub total: u32,
}

impl Headcount {
    /// Counts the members' kinds of client.
    pub fn count(kinds: impl IntoIterator<Item = ClientKind>) -> Headcount {
        let mut people = Headcount::default();
        for kind in kinds {
            match kind {
                ClientKind::Web => people.browser += 1,
                ClientKind::Desktop => people.desktop += 1,
                ClientKind::Xr | ClientKind::Quest => people.headset += 1,
            }
            people.total += 1;
        }
        people
    }
}

/// What the room list shows of a room's life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoomLife {
    pub people: Headcount,
    /// Unix milliseconds of the last join, leave or chat line this process
    /// saw; `None` when it saw none since it started.
    pub active_at: Option<i64>,
}

/// Every room's [`RoomLife`], written by the actors on joins, leaves and chat
/// lines only, read by the room list; cheap to clone.
#[derive(Debug, Clone, Default)]
pub(crate) struct Activity {
    rooms: Arc<Mutex<HashMap<Uuid, RoomLife>>>,
}

impl Activity {
    /// The room's members changed: these are its people now.
    pub(crate) fn people(&self, room_id: Uuid, people: Headcount, unix_ms: i64) {
        let mut rooms = self.rooms.lock().expect("poisoned");
        let life = rooms.entry(room_id).or_default();
        if life.people != people {
            life.people = people;
            life.active_at = Some(unix_ms);
        }
    }

    /// Someone said something in the room.
    pub(crate) fn chatted(&self, room_id: Uuid, unix_ms: i64) {
        let mut rooms = self.rooms.lock().expect("poisoned");
        rooms.entry(room_id).or_default().active_at = Some(unix_ms);
    }

    /// The room's actor is gone (stopped or crashed): nobody is in it, but
    /// its last activity stays.
    fn emptied(&self, room_id: Uuid) {
        let mut rooms = self.rooms.lock().expect("poisoned");
        if let Some(life) = rooms.get_mut(&room_id) {
            life.people = Headcount::default();
        }
    }
}

/// The running rooms; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Rooms {
    running: Arc<Mutex<HashMap<Uuid, RoomHandle>>>,
    bans: Bans,
    activity: Activity,
}

#[derive(Debug, Clone)]
struct RoomHandle {
    inbox: mpsc::Sender<RoomCommand>,
    generation: u64,
}

static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

impl Rooms {
    /// The inbox of a room, starting its actor if it is not running.
    pub fn inbox(&self, state: &AppState, room_id: Uuid) -> mpsc::Sender<RoomCommand> {
        let mut running = self.running.lock().expect("poisoned");
        if let Some(handle) = running.get(&room_id)
            && !handle.inbox.is_closed()
        {
            return handle.inbox.clone();
        }
        let (inbox, commands) = mpsc::channel(ROOM_INBOX);
        let generation = NEXT_GENERATION.fetch_add(1, Ordering::Relaxed);
        running.insert(
            room_id,
            RoomHandle {
                inbox: inbox.clone(),
                generation,
            },
        );
        state.metrics.rooms_active.set(running.len() as i64);
        tokio::spawn(supervise(
            RoomContext::from_app(state, &self.bans, &self.activity),
            self.clone(),
            room_id,
            generation,
            commands,
        ));
        inbox
    }

    /// Sends a command to a running room; false when the room is not running.
    pub async fn send(&self, room_id: Uuid, command: RoomCommand) -> bool {
        let inbox = {
            let running = self.running.lock().expect("poisoned");
            running.get(&room_id).map(|h| h.inbox.clone())
        };
        match inbox {
            Some(inbox) => inbox.send(command).await.is_ok(),
            None => false,
        }
    }

    /// Sends a command to a running room without waiting; false when the
    /// room is not running or its inbox is full.
    pub fn try_send(&self, room_id: Uuid, command: RoomCommand) -> bool {
        let running = self.running.lock().expect("poisoned");
        running
            .get(&room_id)
            .is_some_and(|h| h.inbox.try_send(command).is_ok())
    }

    /// Ends a room's live session (the room was deleted): its members get
    /// `phx_close` with `reason` and its actor stops. Joins after this are
    /// refused as long as the store no longer returns the room. False when the
    /// room was not running (there was nobody to tell).
    pub async fn close(&self, room_id: Uuid, reason: ErrorReply) -> bool {
        self.send(room_id, RoomCommand::Close { reason }).await
    }

    /// Test hook: make a running room's actor panic.
    #[cfg(feature = "test-hooks")]
    pub async fn inject_panic(&self, room_id: Uuid) -> bool {
        self.send(room_id, RoomCommand::InjectPanic).await
    }

    /// How long `user_id` must still stay out of a room, if it was removed.
    pub(crate) fn banned_for(&self, room_id: Uuid, user_id: &str) -> Option<Duration> {
        self.bans
            .until(room_id, user_id)?
            .checked_duration_since(Instant::now())
    }

    /// Each listed room's people now and last activity (rooms this process
    /// never saw anyone in have none). One short lock, no actor is asked.
    pub fn life(&self, room_ids: impl IntoIterator<Item = Uuid>) -> HashMap<Uuid, RoomLife> {
        let rooms = self.activity.rooms.lock().expect("poisoned");
        room_ids
            .into_iter()
            .filter_map(|id| rooms.get(&id).map(|life| (id, *life)))
            .collect()
    }

    pub fn running_count(&self) -> usize {
        self.running.lock().expect("poisoned").len()
    }

    /// Forgets a room whose actor stopped, unless a newer actor replaced it.
    fn stopped(&self, metrics: &Metrics, room_id: Uuid, generation: u64) {
        let mut running = self.running.lock().expect("poisoned");
        if running
            .get(&room_id)
            .is_some_and(|h| h.generation == generation)
        {
            running.remove(&room_id);
        }
        metrics.rooms_active.set(running.len() as i64);
    }

    /// A new inbox for a crashed room, unless a newer actor already replaced it.
    fn restart(&self, room_id: Uuid, crashed: u64) -> Option<(u64, mpsc::Receiver<RoomCommand>)> {
        let mut running = self.running.lock().expect("poisoned");
        if running
            .get(&room_id)
            .is_some_and(|h| h.generation != crashed)
        {
            return None;
        }
        let (inbox, commands) = mpsc::channel(ROOM_INBOX);
        let generation = NEXT_GENERATION.fetch_add(1, Ordering::Relaxed);
        running.insert(room_id, RoomHandle { inbox, generation });
        Some((generation, commands))
    }
}

/// Runs a room's actor, restarting it after a panic.
async fn supervise(
    context: RoomContext,
    rooms: Rooms,
    room_id: Uuid,
    mut generation: u64,
    mut commands: mpsc::Receiver<RoomCommand>,
) {
    loop {
        let roster = Roster::default();
        let actor = RoomActor::new(context.clone(), room_id, roster.clone());
        let outcome = tokio::spawn(actor.run(commands)).await;
        match outcome {
            Ok(()) => break,
            Err(error) if error.is_panic() => {
                context.metrics.error("room_panic");
                tracing::error!(%room_id, "room actor panicked; restarting it and asking its members to rejoin");
                let members = roster.lock().map(|r| r.clone()).unwrap_or_default();
                // Its members must rejoin the fresh actor, which counts them again.
                context.activity.emptied(room_id);
                for recipient in members.iter() {
                    // The member is gone with the actor (it rejoins as a new
                    // one): its voice peer must not outlive it.
                    if let Some(voice) = &context.voice {
                        voice.leave(recipient.member);
                    }
                    let _ = recipient.address.channel_error();
                }
                if context.is_shutting_down() {
                    break;
                }
                match rooms.restart(room_id, generation) {
                    Some((next_generation, fresh)) => {
                        generation = next_generation;
                        commands = fresh;
                    }
                    // A join already started a new actor for this room.
                    None => return,
                }
            }
            Err(_) => break,
        }
    }
    context.activity.emptied(room_id);
    rooms.stopped(&context.metrics, room_id, generation);
}

/// The error reply for a command sent to a room that is gone.
pub fn room_gone() -> ErrorReply {
    ErrorReply::new(
        ErrorCode::Internal,
        "the room restarted; rejoin the channel and try again",
    )
}
