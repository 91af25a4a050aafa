//! The bridge between a frame loop (desktop window, headset) and the network:
//! the room browser's HTTP calls and the joined room's client run on a small
//! tokio runtime, and the two sides talk through two channels, so a slow
//! network never stalls a frame.
//!
//! One session (socket token) serves every room joined on a server, so the
//! visitor is one person there: rooms it creates are its own to moderate.
//!
//! It also keeps voice honest about moderation: while a moderator has muted
//! this visitor, the call stays muted whatever the frame loop asks, and no
//! unmute is sent. Given back, the voice stays muted until the visitor
//! unmutes, as the server keeps it.

use anyhow::{Context, Result};
use roomscale_protocol::events::{HistoryPage, ModeratePush};
use roomscale_protocol::pose::AvatarPose;
use tokio::sync::mpsc as async_mpsc;

use crate::client::{self, Identity, RoomClient, RoomListing, RoomUpdate, ServerUrl, Session};
use crate::objects::{GrabOutcome, ObjectReply, Objects};
use crate::voice::mixer::HeadPose;
use crate::voice::processing::ProcessingConfig;
use crate::voice::session::{VoiceMonitor, VoiceOptions, VoiceSession};
use glam::Vec3;
use roomscale_protocol::objects::{ObjectPose, ObjectState};

/// What the frame loop asks of the network side.
#[derive(Debug)]
pub enum NetCommand {
    /// Leave any room, talk to this server from now on, and list its rooms.
    Connect(ServerUrl),
    RefreshRooms,
    CreateRoom(String),
    Join(String),
    Chat(String),
    /// A moderation act in the current room (owner and moderators).
    Moderate(ModeratePush),
    /// Fetch the chat history older than this event id
    /// ([`crate::scene::RoomScene::history_before`]).
    LoadOlderHistory(u64),
    SetPose(AvatarPose),
    /// Object requests and poses, from [`crate::objects::Objects`]: see
    /// [`Net::grab`], [`Net::release`] and [`Net::pump_objects`]. Answers come
    /// back as [`RoomUpdate::ObjectReply`].
    Grab(String),
    Release(String),
    /// An object comes to rest (a flight ended, or a new one spawned).
    SetObject(String, ObjectState),
    RemoveObject(String),
    /// The poses of the objects this visitor holds or throws now.
    ObjectPoses(Vec<ObjectPose>),
    Leave,
    /// Join voice in the current room with these devices.
    JoinVoice(VoiceOptions),
    LeaveVoice,
    SetMuted(bool),
    /// Silence every remote voice here, or not.
    MuteAll(bool),
    /// One person's volume (by user id), 1 as sent.
    SetVolume(String, f32),
    SetProcessing(ProcessingConfig),
    /// Where the listener's head is and each speaker's (by user id).
    PlaceVoices {
        listener: HeadPose,
        voices: Vec<(String, Vec3)>,
    },
}

/// What the network side reports to the frame loop.
#[derive(Debug)]
pub enum NetEvent {
    Rooms(Vec<RoomListing>),
    Joined {
        room_name: String,
        user_id: String,
        slot: u16,
    },
    /// A room update. After [`RoomUpdate::Closed`] the room is gone: the
    /// server ended the visit, and nothing reconnects.
    Update(RoomUpdate),
    /// A page of older history asked for with `before_id`.
    History {
        before_id: u64,
        page: HistoryPage,
    },
    Left,
    /// A notice for the status line: something failed or happened.
    Status(String),
    /// Voice started (a monitor to watch it) or ended (`None`).
    Voice(Option<VoiceMonitor>),
}

/// The running network side. Dropping it stops the runtime.
#[derive(Debug)]
pub struct Net {
    pub commands: async_mpsc::UnboundedSender<NetCommand>,
    pub events: std::sync::mpsc::Receiver<NetEvent>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Net {
    pub fn start(server: ServerUrl, identity: Identity) -> Result<Net> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("starting the network runtime")?;
        let (commands, command_rx) = async_mpsc::unbounded_channel();
        let (event_tx, events) = std::sync::mpsc::channel();
        runtime.spawn(network(server, identity, command_rx, event_tx));
        Ok(Net {
            commands,
            events,
            runtime: Some(runtime),
        })
    }

    /// A bridge with no network behind it: what the frame loop sends lands
    /// in the receiver, for tests of the window's and the panel's controls.
    #[cfg(test)]
    pub(crate) fn detached() -> (Net, async_mpsc::UnboundedReceiver<NetCommand>) {
        let (commands, received) = async_mpsc::unbounded_channel();
        let (_, events) = std::sync::mpsc::channel();
        let net = Net {
            commands,
            events,
            runtime: None,
        };
        (net, received)
    }

    pub fn send(&self, command: NetCommand) {
        // The network task lives as long as `self`; a failed send means it
        // ended, which the event channel already reports.
        let _ = self.commands.send(command);
    }

    /// Asks to grab `object_id` for this visitor ([`Objects::grab`]); false
    /// if it cannot be (a notice says why).
    pub fn grab(&self, objects: &mut Objects, object_id: &str, now: f64) -> bool {
        match objects.grab(object_id, now) {
            Some(request) => {
                self.send(NetCommand::Grab(request.object_id));
                true
            }
            None => false,
        }
    }

    /// Lets go of (throws) `object_id` ([`Objects::release`]).
    pub fn release(&self, objects: &mut Objects, object_id: &str, now: f64) {
        if let Some(request) = objects.release(object_id, now) {
            self.send(NetCommand::Release(request.object_id));
        }
    }

    /// Once a frame, after [`Objects::hold_at`]: advances this visitor's
    /// throws and sends what they need (poses, late releases, rests).
    pub fn pump_objects(&self, objects: &mut Objects, now: f64) {
        let tick = objects.tick(now);
        for release in tick.releases {
            self.send(NetCommand::Release(release.object_id));
        }
        for (object_id, state) in tick.rests {
            self.send(NetCommand::SetObject(object_id, state));
        }
        self.send(NetCommand::ObjectPoses(tick.poses));
    }

    /// Leaves the room (if in one) and waits up to `timeout` for the
    /// server to hear it, then stops the runtime.
    pub fn shut_down(mut self, timeout: std::time::Duration) {
        self.send(NetCommand::Leave);
        let deadline = std::time::Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.events.recv_timeout(left) {
                Ok(NetEvent::Left) | Err(_) => break,
                Ok(_) => {}
            }
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(std::time::Duration::from_millis(200));
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn network(
    mut server: ServerUrl,
    identity: Identity,
    mut commands: async_mpsc::UnboundedReceiver<NetCommand>,
    events: std::sync::mpsc::Sender<NetEvent>,
) {
    let mut room: Option<RoomClient> = None;
    let mut voice: Option<VoiceSession> = None;
    let mut mute = MuteState::default();
    // This visitor on `server`: made on first need, dropped with the server.
    let mut session: Option<Session> = None;
    let report = |result: Result<NetEvent, client::ClientError>| {
        let _ = events.send(result.unwrap_or_else(|e| NetEvent::Status(e.to_string())));
    };
    // Voice ends before its room does.
    let leave_voice = |voice: &mut Option<VoiceSession>| {
        let session = voice.take();
        let events = events.clone();
        async move {
            if let Some(session) = session {
                session.leave().await;
                let _ = events.send(NetEvent::Voice(None));
            }
        }
    };
    loop {
        let update = async {
            match room.as_mut() {
                Some(room) => room.updates.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            command = commands.recv() => match command {
                None => break,
                Some(NetCommand::Connect(to)) => {
                    leave_voice(&mut voice).await;
                    if let Some(old) = room.take() {
                        old.leave().await;
                        let _ = events.send(NetEvent::Left);
                    }
                    server = to;
                    session = None;
                    report(client::list_rooms(&server).await.map(NetEvent::Rooms));
                }
                Some(NetCommand::RefreshRooms) => report(client::list_rooms(&server).await.map(NetEvent::Rooms)),
                Some(NetCommand::CreateRoom(name)) => {
                    let created = match session_for(&mut session, &server, &identity).await {
                        Ok(own) => client::create_room_as(&server, &own, &name, "").await,
                        Err(error) => Err(error),
                    };
                    report(created.map(|_| NetEvent::Status(format!("created \"{name}\""))));
                    report(client::list_rooms(&server).await.map(NetEvent::Rooms));
                }
                Some(NetCommand::Join(room_id)) => {
                    leave_voice(&mut voice).await;
                    if let Some(old) = room.take() {
                        old.leave().await;
                    }
                    mute.moderator_muted = false;
                    let joined = match session_for(&mut session, &server, &identity).await {
                        Ok(own) => RoomClient::join_as(&server, &room_id, identity.clone(), own).await,
                        Err(error) => Err(error),
                    };
                    match joined {
                        Ok(joined) => {
                            let _ = events.send(NetEvent::Joined { room_name: joined.room.name.clone(), user_id: joined.user_id.clone(), slot: joined.slot() });
                            room = Some(joined);
                        }
                        Err(error) => report(Err(error)),
                    }
                }
                Some(NetCommand::Chat(text)) => {
                    if let Some(room) = &room && let Err(error) = room.chat(&text).await {
                        report(Err(error));
                    }
                }
                Some(NetCommand::Moderate(act)) => {
                    if let Some(room) = &room && let Err(error) = room.moderate(act).await {
                        let _ = events.send(NetEvent::Status(format!("moderation: {error}")));
                    }
                }
                Some(NetCommand::LoadOlderHistory(before_id)) => {
                    if let Some(room) = &room {
                        match room.history(before_id).await {
                            Ok(page) => {
                                let _ = events.send(NetEvent::History { before_id, page });
                            }
                            Err(error) => {
                                let _ = events.send(NetEvent::Status(format!("loading older chat: {error}")));
                            }
                        }
                    }
                }
                Some(NetCommand::SetPose(pose)) => {
                    if let Some(room) = &room {
                        room.set_pose(pose);
                    }
                }
                Some(NetCommand::Grab(object_id)) => {
                    if let Some(room) = &room {
                        let answer = room.send_grab(&object_id).await;
                        reply_when_answered(answer, &events, move |result| {
                            Some(ObjectReply::Grab { object_id, outcome: GrabOutcome::from_result(result) })
                        });
                    }
                }
                Some(NetCommand::Release(object_id)) => {
                    if let Some(room) = &room {
                        let answer = room.send_release(&object_id).await;
                        reply_when_answered(answer, &events, move |result| {
                            result.err().map(|error| ObjectReply::ReleaseRefused { object_id, reason: error.to_string() })
                        });
                    }
                }
                Some(NetCommand::SetObject(object_id, state)) => {
                    if let Some(room) = &room {
                        let answer = room.send_set_object(&object_id, &state).await;
                        reply_when_answered(answer, &events, move |result| {
                            result.err().map(|error| ObjectReply::RestRefused { object_id, reason: error.to_string() })
                        });
                    }
                }
                Some(NetCommand::RemoveObject(object_id)) => {
                    if let Some(room) = &room && let Err(error) = room.remove_object(&object_id).await {
                        let _ = events.send(NetEvent::Status(format!("removing {object_id}: {error}")));
                    }
                }
                Some(NetCommand::ObjectPoses(poses)) => {
                    if let Some(room) = &room {
                        room.set_object_poses(poses);
                    }
                }
                Some(NetCommand::Leave) => {
                    leave_voice(&mut voice).await;
                    if let Some(old) = room.take() {
                        old.leave().await;
                    }
                    let _ = events.send(NetEvent::Left);
                }
                Some(NetCommand::JoinVoice(options)) => match (&room, &voice) {
                    (Some(joined), None) => match VoiceSession::start(joined, &server, options).await {
                        Ok(session) => {
                            if mute.moderator_muted {
                                session.set_muted(true);
                            }
                            let _ = events.send(NetEvent::Voice(Some(session.monitor())));
                            voice = Some(session);
                        }
                        Err(error) => {
                            let _ = events.send(NetEvent::Status(format!("voice: {error}")));
                            let _ = events.send(NetEvent::Voice(None));
                        }
                    },
                    (None, _) => {
                        let _ = events.send(NetEvent::Status("voice: join a room first".into()));
                        let _ = events.send(NetEvent::Voice(None));
                    }
                    (Some(_), Some(session)) => {
                        let _ = events.send(NetEvent::Voice(Some(session.monitor())));
                    }
                },
                Some(NetCommand::LeaveVoice) => leave_voice(&mut voice).await,
                Some(NetCommand::SetMuted(muted)) => {
                    let refused = mute.wish(muted);
                    if let Some(session) = &voice {
                        session.set_muted(mute.effective());
                    }
                    if refused {
                        let _ = events.send(NetEvent::Status(MODERATOR_MUTED.into()));
                    }
                }
                Some(NetCommand::MuteAll(muted)) => {
                    if let Some(session) = &voice {
                        session.set_muted_all(muted);
                    }
                }
                Some(NetCommand::SetVolume(user, volume)) => {
                    if let Some(session) = &voice {
                        session.set_volume(&user, volume);
                    }
                }
                Some(NetCommand::SetProcessing(config)) => {
                    if let Some(session) = &voice {
                        session.set_processing(config);
                    }
                }
                Some(NetCommand::PlaceVoices { listener, voices }) => {
                    if let Some(session) = &voice {
                        session.set_listener(listener);
                        for (user, head) in voices {
                            session.set_position(&user, head);
                        }
                    }
                }
            },
            Some(update) = update => {
                if let (RoomUpdate::Presence(presence), Some(joined)) = (&update, &room) {
                    let muted = presence
                        .members()
                        .any(|(user, meta)| user == joined.user_id && meta.moderator_muted);
                    if mute.moderated(muted)
                        && let Some(session) = &voice
                    {
                        session.set_muted(mute.effective());
                    }
                }
                let closed = match &update {
                    RoomUpdate::Closed(why) => Some(crate::scene::closed_line(why)),
                    _ => None,
                };
                let _ = events.send(NetEvent::Update(update));
                if let Some(why) = closed {
                    // For the status line (and the headset's room picker).
                    let _ = events.send(NetEvent::Status(why));
                    // The server ended the visit: nothing is left to leave.
                    leave_voice(&mut voice).await;
                    room = None;
                    mute.moderator_muted = false;
                }
            }
        }
    }
}

/// Waits for the server's answer to an object request off the command loop
/// (so poses keep flowing meanwhile) and passes on what `reply` makes of it.
fn reply_when_answered<T, A>(
    answer: Result<A, client::ClientError>,
    events: &std::sync::mpsc::Sender<NetEvent>,
    reply: impl FnOnce(Result<T, client::ClientError>) -> Option<ObjectReply> + Send + 'static,
) where
    A: Future<Output = Result<T, client::ClientError>> + Send + 'static,
    T: Send + 'static,
{
    let events = events.clone();
    tokio::spawn(async move {
        let result = match answer {
            Ok(answer) => answer.await,
            Err(error) => Err(error),
        };
        if let Some(reply) = reply(result) {
            let _ = events.send(NetEvent::Update(RoomUpdate::ObjectReply(reply)));
        }
    });
}

/// The visitor's session on `server`, made on first need.
async fn session_for(
    session: &mut Option<Session>,
    server: &ServerUrl,
    identity: &Identity,
) -> Result<Session, client::ClientError> {
    if let Some(session) = session {
        return Ok(session.clone());
    }
    let made = Session::create(server, &identity.name).await?;
    *session = Some(made.clone());
    Ok(made)
}

/// Said when the visitor tries to unmute while a moderator has muted them.
pub const MODERATOR_MUTED: &str =
    "a moderator muted you: you cannot unmute until a moderator unmutes you";

/// This visitor's own mute and a moderator's, and what voice does with both.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct MuteState {
    /// What the visitor (or push-to-talk) asked for.
    wanted: bool,
    /// A moderator muted this visitor (presence says so).
    moderator_muted: bool,
}

impl MuteState {
    /// The visitor asks to mute or unmute; true when the unmute is refused
    /// because a moderator muted them.
    fn wish(&mut self, muted: bool) -> bool {
        self.wanted = muted;
        !muted && self.moderator_muted
    }

    /// Presence says whether a moderator mutes this visitor; true when that
    /// changed. A moderator's mute is the visitor's too from then on: taken
    /// back, the voice stays muted until the visitor unmutes.
    fn moderated(&mut self, muted: bool) -> bool {
        let changed = self.moderator_muted != muted;
        self.moderator_muted = muted;
        if muted {
            self.wanted = true;
        }
        changed
    }

    /// Whether voice is muted now.
    fn effective(&self) -> bool {
        self.wanted || self.moderator_muted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moderator_mute_holds_until_taken_back_and_then_until_the_visitor_unmutes() {
        let mut mute = MuteState::default();
        assert!(!mute.effective());
        assert!(mute.moderated(true), "presence turned moderator-muted on");
        assert!(mute.effective());
        assert!(mute.wish(false), "unmuting oneself is refused");
        assert!(mute.effective(), "and voice stays muted");
        assert!(
            !mute.moderated(true),
            "the same presence again changes nothing"
        );
        assert!(mute.moderated(false));
        assert!(
            mute.effective(),
            "given back, the voice stays muted until the visitor unmutes"
        );
        assert!(!mute.wish(false), "now the visitor's unmute goes through");
        assert!(!mute.effective());
        assert!(!mute.wish(true), "muting oneself is never refused");
        assert!(mute.effective());
    }

    /// What a frame loop's object calls put on the wire, in order: the grab,
    /// the held pose every frame, the release, the flight's poses and its rest.
    #[test]
    fn object_calls_become_commands_in_order() {
        use roomscale_protocol::objects::{ObjectKind, ObjectSnapshot};
        let (net, mut sent) = Net::detached();
        let mut objects = Objects::new();
        objects.joined(
            3,
            &[ObjectSnapshot {
                object_id: "ball-1".into(),
                handle: 6,
                state: ObjectState {
                    kind: ObjectKind::Ball,
                    colour: "#e8c547".into(),
                    position: [0.0, 0.81, -1.6],
                    orientation: [0.0, 0.0, 0.0, 1.0],
                },
                holder: None,
            }],
        );
        assert!(net.grab(&mut objects, "ball-1", 0.0));
        assert!(!net.grab(&mut objects, "ball-1", 0.0), "asked once");
        assert!(!net.grab(&mut objects, "nothing", 0.0));
        objects.on_grab_reply("ball-1", GrabOutcome::Granted { handle: 6 }, 0.02);
        objects.hold_at("ball-1", [0.0, 1.5, -1.0], [0.0, 0.0, 0.0, 1.0], 0.03);
        net.pump_objects(&mut objects, 0.03);
        net.release(&mut objects, "ball-1", 0.04);
        let mut now = 0.04;
        while objects.mine().next().is_some() {
            now += 1.0 / 60.0;
            net.pump_objects(&mut objects, now);
            assert!(now < 10.0, "the ball never came to rest");
        }
        net.pump_objects(&mut objects, now + 0.1);
        let mut commands = Vec::new();
        while let Ok(command) = sent.try_recv() {
            commands.push(command);
        }
        assert!(matches!(&commands[0], NetCommand::Grab(id) if id == "ball-1"));
        assert!(
            matches!(&commands[1], NetCommand::ObjectPoses(p) if p.len() == 1 && p[0].handle == 6)
        );
        assert!(matches!(&commands[2], NetCommand::Release(id) if id == "ball-1"));
        let rests: Vec<&ObjectState> = commands
            .iter()
            .filter_map(|c| match c {
                NetCommand::SetObject(id, state) if id == "ball-1" => Some(state),
                _ => None,
            })
            .collect();
        assert_eq!(rests.len(), 1, "one rest: {commands:?}");
        assert!(
            (rests[0].position[1] - 0.06).abs() < 0.01,
            "on the floor: {:?}",
            rests[0]
        );
        assert!(
            matches!(commands.last(), Some(NetCommand::ObjectPoses(p)) if p.is_empty()),
            "at rest nothing more streams"
        );
    }
}
