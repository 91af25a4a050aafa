//! The headless room client: what the desktop app, headset modes, bots, load
//! tests and end-to-end tests all drive.
//!
//! [`RoomClient::join`] gets a session token, opens the Phoenix v2 socket, joins
//! the room and then keeps a task running that sends heartbeats and the latest
//! pose (at most 30 Hz, only when its encoding changed), turns incoming frames into
//! [`RoomUpdate`]s, and reconnects with backoff after a drop, rejoining with
//! `last_seen_id` so no persisted event is lost or repeated.
//!
//! A rejoin is a new membership: the server may hand out a different slot, and
//! a restarted room's pose clock starts again at 0. The client reports it as
//! [`RoomUpdate::Joined`], and [`RoomClient::slot`] always answers the slot of
//! the latest join.
//!
//! Shared objects: the join's snapshot comes as [`RoomUpdate::Objects`]
//! after the replayed events (whose `object_set`s are only history), holders
//! as [`RoomUpdate::ObjectHolder`], object poses inside [`RoomUpdate::Poses`].
//! [`RoomClient::grab`], [`RoomClient::release`], [`RoomClient::set_object`]
//! and [`RoomClient::remove_object`] answer with the typed reply, and
//! [`RoomClient::set_object_poses`] puts held or thrown objects in the pose
//! pushes (the app's objects model says what to send).
//!
//! Voice signaling rides the same channel: [`RoomClient::voice_signaling`]
//! gives the typed pushes and inbound events a WebRTC peer needs.
//!
//! History: a join replays only the newest events that fit in
//! `MAX_REPLAY_BYTES`. The first join says so with
//! [`RoomUpdate::OlderHistory`], and [`RoomClient::history`] pages further
//! back on demand. A rejoin fills the whole gap since `last_seen_id` by paging
//! before it passes anything on, so every event reaches the updates once.
//!
//! A room may end a membership: a moderator removes this member, or the room
//! is deleted. The server says why in a `phx_close`; the client passes it on as
//! [`RoomUpdate::Closed`] and stops, without reconnecting. Joins refused for a
//! reason that waiting will not fix stop it too; refusals that may pass (a
//! locked or full room, a limit) are tried again only slowly.

mod http;
mod pose_sender;
mod presence;
mod socket;
mod voice;

use std::fmt;

use roomscale_protocol::events::{
    ChatPush, ClientEvent, ClientKind, ClosePayload, EmptyReply, ErrorCode, ErrorReply, Governance,
    HistoryPage, HistoryPush, ModeratePush, ModerationNotice, ObjectRemovePush, ObjectSetPush,
    RoomEvent, RoomSummary, SessionDescription, SetMutedPush, StoredReply,
};
use roomscale_protocol::objects::{
    ObjectGrabPush, ObjectGrabReply, ObjectHolder, ObjectHolderPush, ObjectPose, ObjectReleasePush,
    ObjectSnapshot, ObjectState,
};
use roomscale_protocol::pose::AvatarPose;
use roomscale_protocol::server_event::{Reply, ReplyResponse};
use serde::Deserialize;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};

pub use presence::Presence;
pub use voice::{VoiceEvent, VoiceSignaling};

/// Why the client could not do what it was asked; each says what to do.
#[derive(Debug, Clone, Error)]
pub enum ClientError {
    #[error(
        "cannot reach the server at {server} ({cause}); is it running? start one with `cargo xtask run`, or pass --server URL"
    )]
    Unreachable { server: String, cause: String },
    #[error("{0}")]
    BadUrl(String),
    #[error("the server answered HTTP {status}: {body}")]
    Http { status: u16, body: String },
    // The server's reasons already say what to do about each refusal.
    #[error("the server refused: {reason}")]
    Refused { code: String, reason: String },
    /// A grab or change of an object someone else holds (`object_held`).
    #[error("the server refused: {reason}")]
    ObjectHeld {
        reason: String,
        holder: Option<ObjectHolder>,
    },
    #[error("the server sent something unexpected: {0}")]
    Protocol(String),
    #[error(
        "the connection to the room was lost before the server answered; it reconnects by itself, try again"
    )]
    ConnectionLost,
    #[error("the client has left the room")]
    Closed,
}

/// `http://host:port`, the server's base address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    host: String,
    port: u16,
}

impl ServerUrl {
    pub fn parse(url: &str) -> Result<ServerUrl, ClientError> {
        let rest = if let Some(rest) = url.strip_prefix("http://") {
            rest
        } else if url.starts_with("https://") {
            return Err(ClientError::BadUrl(format!(
                "{url}: the native client speaks plain http for now; put it behind http on a trusted network or use the browser"
            )));
        } else {
            return Err(ClientError::BadUrl(format!(
                "{url}: expected a URL like http://localhost:4000"
            )));
        };
        let authority = rest.split('/').next().unwrap_or_default();
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse().map_err(|_| {
                    ClientError::BadUrl(format!("{url}: the port must be a number"))
                })?,
            ),
            None => (authority, 80),
        };
        if host.is_empty() {
            return Err(ClientError::BadUrl(format!("{url}: the host is missing")));
        }
        Ok(ServerUrl {
            host: host.to_string(),
            port,
        })
    }

    /// The host part: a name or an IP address.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}:{}", self.host, self.port)
    }
}

/// A room link as people share it: `http://host:port/rooms/<room id>`.
pub fn parse_room_url(url: &str) -> Result<(ServerUrl, String), ClientError> {
    let server = ServerUrl::parse(url)?;
    let path = url.splitn(4, '/').nth(3).unwrap_or_default();
    match path
        .strip_prefix("rooms/")
        .map(|id| id.trim_end_matches('/'))
    {
        // The server names a room only by its lowercase id: a link typed or
        // pasted in upper case still finds it.
        Some(id) if id.len() == 36 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') => {
            Ok((server, id.to_ascii_lowercase()))
        }
        _ => Err(ClientError::BadUrl(format!(
            "{url}: expected a room link like http://localhost:4000/rooms/<room id>; copy it from the room's page"
        ))),
    }
}

/// A socket token for this client, from `POST /api/session`.
#[derive(Debug, Clone, Deserialize)]
pub struct Session {
    pub token: String,
    pub user_id: String,
    pub expires_at: String,
}

impl Session {
    pub async fn create(server: &ServerUrl, name: &str) -> Result<Session, ClientError> {
        http::request(
            server,
            "POST",
            "/api/session",
            None,
            Some(&serde_json::json!({"name": name})),
        )
        .await
    }
}

/// A room as the JSON API lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct RoomListing {
    pub id: String,
    pub name: String,
    pub description: String,
}

pub async fn list_rooms(server: &ServerUrl) -> Result<Vec<RoomListing>, ClientError> {
    http::request(server, "GET", "/api/rooms", None, None::<&()>).await
}

/// Creates a room through the JSON API, owned by nobody who can moderate it
/// from a room client (a new visitor each time).
pub async fn create_room(
    server: &ServerUrl,
    name: &str,
    description: &str,
) -> Result<RoomListing, ClientError> {
    let body = serde_json::json!({"name": name, "description": description});
    http::request(server, "POST", "/api/rooms", None, Some(&body)).await
}

/// Creates a room owned by `session`'s user: joined with that session
/// ([`RoomClient::join_as`]), this client may moderate it.
pub async fn create_room_as(
    server: &ServerUrl,
    session: &Session,
    name: &str,
    description: &str,
) -> Result<RoomListing, ClientError> {
    let body = serde_json::json!({"name": name, "description": description});
    http::request(
        server,
        "POST",
        "/api/rooms",
        Some(&session.token),
        Some(&body),
    )
    .await
}

/// Deletes a room `session`'s user owns: its live session ends at once, every
/// member told why.
pub async fn delete_room_as(
    server: &ServerUrl,
    session: &Session,
    room_id: &str,
) -> Result<(), ClientError> {
    http::request::<Option<serde_json::Value>>(
        server,
        "DELETE",
        &format!("/api/rooms/{room_id}"),
        Some(&session.token),
        None::<&()>,
    )
    .await
    .map(drop)
}

/// Who this client is in the room.
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: String,
    /// `#rrggbb`.
    pub colour: String,
    pub kind: ClientKind,
}

/// What a grab came to.
#[derive(Debug, Clone, PartialEq)]
pub enum GrabOutcome {
    /// Granted: the object's handle in pose pushes and batches.
    Granted { handle: u16 },
    /// Someone else holds it (`ErrorReply::holder`).
    Held(Option<ObjectHolder>),
    /// Refused for another reason (gone, a rest being stored, the connection).
    Failed(String),
}

impl GrabOutcome {
    /// What [`RoomClient::grab`] answered.
    pub fn from_result(result: Result<u16, ClientError>) -> GrabOutcome {
        match result {
            Ok(handle) => GrabOutcome::Granted { handle },
            Err(ClientError::ObjectHeld { holder, .. }) => GrabOutcome::Held(holder),
            Err(error) => GrabOutcome::Failed(error.to_string()),
        }
    }

    /// The outcome a refusal carries.
    pub fn from_error(error: &ErrorReply) -> GrabOutcome {
        if error.code == ErrorCode::ObjectHeld {
            GrabOutcome::Held(error.holder.clone())
        } else {
            GrabOutcome::Failed(error.reason.clone())
        }
    }
}

/// The server's answer to an object request, carried back to the frame loop
/// (as [`RoomUpdate::ObjectReply`], through the frame-loop bridge).
#[derive(Debug, Clone, PartialEq)]
pub enum ObjectReply {
    Grab {
        object_id: String,
        outcome: GrabOutcome,
    },
    /// The `object_set` ending a flight was refused.
    RestRefused { object_id: String, reason: String },
    /// An `object_release` was refused.
    ReleaseRefused { object_id: String, reason: String },
}

/// What the client learned from the room, in arrival order.
#[derive(Debug, Clone)]
pub enum RoomUpdate {
    /// Rejoined after a reconnect: sent for every join after the first, which
    /// [`RoomClient::join`] itself returns. The room may have restarted, so
    /// slots may have changed hands and its pose clock starts again at 0:
    /// consumers reset or drop every interpolation track they keep by slot,
    /// and take this client's own slot from here (or [`RoomClient::slot`],
    /// which already answers it). Updates after this one are about the new
    /// membership.
    Joined { room: RoomSummary, slot: u16 },
    /// Presence changed; the whole current presence.
    Presence(Presence),
    /// A persisted event this client had not seen (never one twice).
    Event(RoomEvent),
    /// A pose batch: every pose with its slot, and the poses of objects
    /// being held or thrown (this client's own included), stamped with the
    /// room's pose clock (milliseconds since the room started; it restarts
    /// with the room).
    Poses {
        server_time_ms: u32,
        poses: Vec<(u16, AvatarPose)>,
        objects: Vec<ObjectPose>,
    },
    /// Every object in the room and who holds it, as a join found them:
    /// after every join (the first included) and after the events it
    /// replayed, whose `object_set`s are only history. The truth from here on.
    Objects(Vec<ObjectSnapshot>),
    /// Someone grabbed or threw an object, or the server took it from a
    /// lost holder (`holder` absent).
    ObjectHolder(ObjectHolderPush),
    /// The answer to an object request a frame loop made through
    /// the frame-loop bridge (the room client itself answers its callers directly).
    ObjectReply(ObjectReply),
    /// The room's owner, moderators and lock, as a join found them: after
    /// every join (the first included), before the events it replayed.
    Governance(Governance),
    /// The first join's replay left older events out: events older than
    /// `before_id` exist, for [`RoomClient::history`] to fetch on demand.
    OlderHistory { before_id: u64 },
    /// A moderation act everyone in the room hears of; its `governance` is
    /// the room's from now on.
    Moderation(ModerationNotice),
    /// The connection dropped; the client is reconnecting.
    ConnectionLost { reason: String },
    /// The server ended this membership (a moderator removed this member, the
    /// room was deleted) or refused to take it back: the client has stopped
    /// and does not reconnect. The last update.
    Closed(ClosePayload),
}

#[derive(Debug)]
enum Command {
    /// A push whose reply someone awaits.
    Push {
        event: ClientEvent,
        awaiting: Awaiting,
    },
    /// Voice events go to this channel from now on.
    SubscribeVoice(mpsc::Sender<VoiceEvent>),
    Leave {
        done: oneshot::Sender<()>,
    },
}

/// Who waits for a push's reply, and the type its ok reply carries.
#[derive(Debug)]
enum Awaiting {
    /// `chat`, `object_set`, `object_remove`: the stored event's id.
    Stored(oneshot::Sender<Result<u64, ClientError>>),
    /// `rtc_offer`: the server's answer.
    Description(oneshot::Sender<Result<SessionDescription, ClientError>>),
    /// `history`: a page of older events.
    History(oneshot::Sender<Result<HistoryPage, ClientError>>),
    /// `object_grab`: the object's handle.
    Grab(oneshot::Sender<Result<ObjectGrabReply, ClientError>>),
    /// Pushes whose reply carries only its status.
    Empty(oneshot::Sender<Result<(), ClientError>>),
}

impl Awaiting {
    /// Hands the waiter the reply, typed, or why there is none.
    fn answer(self, reply: Result<Reply, ClientError>) {
        match self {
            Awaiting::Stored(tx) => {
                let _ = tx.send(typed::<StoredReply>(reply).map(|r| r.id));
            }
            Awaiting::Description(tx) => {
                let _ = tx.send(typed::<SessionDescription>(reply));
            }
            Awaiting::History(tx) => {
                let _ = tx.send(typed::<HistoryPage>(reply));
            }
            Awaiting::Grab(tx) => {
                let _ = tx.send(typed::<ObjectGrabReply>(reply));
            }
            Awaiting::Empty(tx) => {
                let _ = tx.send(typed::<EmptyReply>(reply).map(|_| ()));
            }
        }
    }
}

/// An ok reply's response as `T`, a refusal as [`ClientError::Refused`].
fn typed<T: ReplyResponse>(reply: Result<Reply, ClientError>) -> Result<T, ClientError> {
    match reply?
        .read::<T>()
        .map_err(|malformed| ClientError::Protocol(malformed.to_string()))?
    {
        Ok(response) => Ok(response),
        Err(ErrorReply {
            code: ErrorCode::ObjectHeld,
            reason,
            holder,
        }) => Err(ClientError::ObjectHeld { reason, holder }),
        Err(ErrorReply { code, reason, .. }) => Err(ClientError::Refused {
            code: code.as_str().to_string(),
            reason,
        }),
    }
}

/// A joined room. Dropping it leaves the room.
#[derive(Debug)]
pub struct RoomClient {
    pub user_id: String,
    /// The room as the first join described it; a rejoin's description comes
    /// in [`RoomUpdate::Joined`].
    pub room: RoomSummary,
    /// This client's slot, written by the task on every join.
    slot: watch::Receiver<u16>,
    commands: mpsc::Sender<Command>,
    pose: watch::Sender<Option<AvatarPose>>,
    object_poses: watch::Sender<Vec<ObjectPose>>,
    /// Room updates; read them, or the client buffers up to a limit and then
    /// drops pose batches (never events).
    pub updates: mpsc::Receiver<RoomUpdate>,
}

impl RoomClient {
    /// Gets a session, connects, joins, and returns once the first join succeeded.
    pub async fn join(
        server: &ServerUrl,
        room_id: &str,
        identity: Identity,
    ) -> Result<RoomClient, ClientError> {
        let session = Session::create(server, &identity.name).await?;
        RoomClient::join_as(server, room_id, identity, session).await
    }

    /// Joins as `session`'s user: the same person in every room joined with
    /// it, so a room it created is its own to moderate.
    pub async fn join_as(
        server: &ServerUrl,
        room_id: &str,
        identity: Identity,
        session: Session,
    ) -> Result<RoomClient, ClientError> {
        let (commands, command_rx) = mpsc::channel(64);
        let (pose, pose_rx) = watch::channel(None);
        let (object_poses, object_poses_rx) = watch::channel(Vec::new());
        let (update_tx, updates) = mpsc::channel(1024);
        let (slot_tx, slot) = watch::channel(0);
        let (joined_tx, joined_rx) = oneshot::channel();
        let task = socket::RoomTask::new(
            server.clone(),
            room_id.to_string(),
            session.clone(),
            identity,
            update_tx,
            slot_tx,
        );
        let source = socket::PoseSource {
            avatar: pose_rx,
            objects: object_poses_rx,
        };
        tokio::spawn(task.run(command_rx, source, joined_tx));
        let room = joined_rx.await.map_err(|_| ClientError::ConnectionLost)??;
        Ok(RoomClient {
            user_id: session.user_id,
            room,
            slot,
            commands,
            pose,
            object_poses,
            updates,
        })
    }

    /// This client's slot as of its latest join: the slot its own poses carry
    /// in other members' batches and its presence meta shows. A rejoin may
    /// change it, so read it where it is needed rather than keeping a copy.
    /// It changes just before the [`RoomUpdate::Joined`] that reports it is
    /// queued, so a reader still working through updates from before the
    /// rejoin sees the new slot early; such a reader takes the slot from that
    /// update instead.
    pub fn slot(&self) -> u16 {
        *self.slot.borrow()
    }

    /// Sends a chat message; resolves with its id once the server stored it.
    pub async fn chat(&self, text: &str) -> Result<u64, ClientError> {
        self.push_stored(ClientEvent::Chat(ChatPush {
            text: text.to_string(),
        }))
        .await
    }

    /// Asks to hold `object_id`; resolves with its handle in pose pushes and
    /// batches, or [`ClientError::ObjectHeld`] naming who holds it.
    pub async fn grab(&self, object_id: &str) -> Result<u16, ClientError> {
        self.send_grab(object_id).await?.await
    }

    /// Sends `object_grab` now (in order with every other push) and returns
    /// the wait for its answer, which borrows nothing: a frame loop's bridge
    /// waits for it elsewhere.
    pub async fn send_grab(
        &self,
        object_id: &str,
    ) -> Result<impl Future<Output = Result<u16, ClientError>> + Send + 'static, ClientError> {
        let (tx, answer) = oneshot::channel();
        let event = ClientEvent::ObjectGrab(ObjectGrabPush {
            object_id: object_id.to_string(),
        });
        self.send_command(event, Awaiting::Grab(tx)).await?;
        Ok(async move {
            Ok(answer
                .await
                .map_err(|_| ClientError::ConnectionLost)??
                .handle)
        })
    }

    /// Lets go of a held object: this client now throws it, streams its
    /// flight ([`Self::set_object_poses`]) and ends it with
    /// [`Self::set_object`] at rest.
    pub async fn release(&self, object_id: &str) -> Result<(), ClientError> {
        self.send_release(object_id).await?.await
    }

    /// Sends `object_release` now; see [`Self::send_grab`].
    pub async fn send_release(
        &self,
        object_id: &str,
    ) -> Result<impl Future<Output = Result<(), ClientError>> + Send + 'static, ClientError> {
        let (tx, answer) = oneshot::channel();
        let event = ClientEvent::ObjectRelease(ObjectReleasePush {
            object_id: object_id.to_string(),
        });
        self.send_command(event, Awaiting::Empty(tx)).await?;
        Ok(async move { answer.await.map_err(|_| ClientError::ConnectionLost)? })
    }

    /// Puts an object at rest at `state` (a new id spawns one); resolves
    /// with the stored event's id.
    pub async fn set_object(
        &self,
        object_id: &str,
        state: &ObjectState,
    ) -> Result<u64, ClientError> {
        self.send_set_object(object_id, state).await?.await
    }

    /// Sends `object_set` now; see [`Self::send_grab`].
    pub async fn send_set_object(
        &self,
        object_id: &str,
        state: &ObjectState,
    ) -> Result<impl Future<Output = Result<u64, ClientError>> + Send + 'static, ClientError> {
        let (tx, answer) = oneshot::channel();
        let event = ClientEvent::ObjectSet(ObjectSetPush {
            object_id: object_id.to_string(),
            state: state.to_value(),
        });
        self.send_command(event, Awaiting::Stored(tx)).await?;
        Ok(async move { answer.await.map_err(|_| ClientError::ConnectionLost)? })
    }

    /// Deletes an object; resolves with the stored event's id.
    pub async fn remove_object(&self, object_id: &str) -> Result<u64, ClientError> {
        self.push_stored(ClientEvent::ObjectRemove(ObjectRemovePush {
            object_id: object_id.to_string(),
        }))
        .await
    }

    async fn send_command(
        &self,
        event: ClientEvent,
        awaiting: Awaiting,
    ) -> Result<(), ClientError> {
        self.commands
            .send(Command::Push { event, awaiting })
            .await
            .map_err(|_| ClientError::Closed)
    }

    async fn push_stored(&self, event: ClientEvent) -> Result<u64, ClientError> {
        let (stored, answer) = oneshot::channel();
        self.send_command(event, Awaiting::Stored(stored)).await?;
        answer.await.map_err(|_| ClientError::ConnectionLost)?
    }

    /// Mutes or unmutes this client in the room: presence shows it, and the
    /// SFU stops forwarding its voice while muted.
    pub async fn set_muted(&self, muted: bool) -> Result<(), ClientError> {
        self.push_empty(ClientEvent::SetMuted(SetMutedPush { muted }))
            .await
    }

    /// A moderation act (owner and moderators only; the server refuses
    /// others with `forbidden`). Everyone, this client included, then hears
    /// of it as [`RoomUpdate::Moderation`].
    pub async fn moderate(&self, act: ModeratePush) -> Result<(), ClientError> {
        self.push_empty(ClientEvent::Moderate(act)).await
    }

    /// The events just older than `before_id`, oldest first, as many as fit
    /// in one page, and whether still older ones exist. These are not passed
    /// on as updates: what to do with older history is the caller's.
    pub async fn history(&self, before_id: u64) -> Result<HistoryPage, ClientError> {
        let (tx, answer) = oneshot::channel();
        self.commands
            .send(Command::Push {
                event: ClientEvent::History(HistoryPush { before_id }),
                awaiting: Awaiting::History(tx),
            })
            .await
            .map_err(|_| ClientError::Closed)?;
        answer.await.map_err(|_| ClientError::ConnectionLost)?
    }

    async fn push_empty(&self, event: ClientEvent) -> Result<(), ClientError> {
        let (tx, answer) = oneshot::channel();
        self.commands
            .send(Command::Push {
                event,
                awaiting: Awaiting::Empty(tx),
            })
            .await
            .map_err(|_| ClientError::Closed)?;
        answer.await.map_err(|_| ClientError::ConnectionLost)?
    }

    /// The voice signaling of this room: typed pushes, and from now on the
    /// inbound voice events (a previous [`VoiceSignaling`] stops getting them).
    pub async fn voice_signaling(&self) -> Result<VoiceSignaling, ClientError> {
        let (tx, events) = mpsc::channel(voice::VOICE_EVENT_QUEUE);
        self.commands
            .send(Command::SubscribeVoice(tx))
            .await
            .map_err(|_| ClientError::Closed)?;
        Ok(VoiceSignaling::new(self.commands.downgrade(), events))
    }

    /// Sets this client's pose; call it every frame. The latest one is sent
    /// on the next pose tick (30 Hz) if its wire encoding differs from the
    /// last one sent, so standing still, tracking noise below the encoding's
    /// resolution included, sends only a refresh once a second.
    pub fn set_pose(&self, pose: AvatarPose) {
        self.pose.send_replace(Some(pose));
    }

    /// Sets the poses of the objects this client holds or throws (at most
    /// two go out; the objects model's tick gives them); call it every
    /// frame. While any is set, a pose push goes out on every pose tick that
    /// changed something and at least every `OBJECT_KEEPALIVE_MS`, so the
    /// server keeps the hold.
    pub fn set_object_poses(&self, poses: Vec<ObjectPose>) {
        self.object_poses.send_if_modified(|current| {
            let changed = *current != poses;
            *current = poses;
            changed
        });
    }

    /// Leaves the room and closes the connection.
    pub async fn leave(self) {
        let (done, finished) = oneshot::channel();
        if self.commands.send(Command::Leave { done }).await.is_ok() {
            let _ = finished.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_links_parse_or_say_what_is_expected() {
        let (server, id) =
            parse_room_url("http://localhost:4000/rooms/6f1c2a7e-4b3d-4c5e-9f10-2a3b4c5d6e7f")
                .unwrap();
        assert_eq!(server.authority(), "localhost:4000");
        assert_eq!(id, "6f1c2a7e-4b3d-4c5e-9f10-2a3b4c5d6e7f");
        let (_, shouted) =
            parse_room_url("http://localhost:4000/rooms/6F1C2A7E-4B3D-4C5E-9F10-2A3B4C5D6E7F")
                .unwrap();
        assert_eq!(shouted, id, "the server knows rooms by their lowercase id");
        for (bad, fragment) in [
            ("localhost:4000/rooms/x", "expected a URL like"),
            (
                "https://example.org/rooms/6f1c2a7e-4b3d-4c5e-9f10-2a3b4c5d6e7f",
                "plain http",
            ),
            ("http://localhost:4000/rooms/nope", "expected a room link"),
            ("http://:4000/rooms/x", "host is missing"),
            ("http://localhost:port/rooms/x", "port must be a number"),
        ] {
            let error = parse_room_url(bad).unwrap_err().to_string();
            assert!(error.contains(fragment), "{bad}: {error}");
        }
    }
}
