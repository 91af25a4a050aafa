//! One WebSocket connection: a reader task that decodes, validates, rate-limits
//! and dispatches every inbound frame, and a writer task that drains the
//! connection's [`Outbox`]. Bad input gets an error reply that says what was
//! wrong; a frame that cannot be read at all closes the socket with the reason.
//!
//! Fairness, per connection:
//! - Every frame counts against a budget: JSON pushes, joins (which also
//!   broadcast presence to a whole room), binary frames (poses) and heartbeats
//!   each have a token bucket of their own. A heartbeat's payload is `{}`; a
//!   large one closes the socket.
//! - Each frame refused for its rate costs a *strike* (poses, refused without
//!   a reply, cost one per [`POSE_REFUSALS_PER_STRIKE`]); strikes come back
//!   slowly, so a client refused far more often than that is disconnected as a
//!   flood, however it spaces its allowed frames in between.
//! - Rooms are only `room:<lowercase canonical uuid>`, so the channel map holds
//!   at most one channel per room, and at most `--channels-per-socket` of them;
//!   a second join of a topic replaces the first. A join of a room that is not
//!   in the store is refused here, without starting a room actor.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use roomscale_protocol::events::{
    ClientEvent, EmptyReply, ErrorCode, ErrorReply, POSE_EVENT, RoomEventBody,
};
use roomscale_protocol::frame::{self, control};
use roomscale_protocol::limits::MAX_FRAME_BYTES;
use roomscale_protocol::objects::PosePush;
use roomscale_protocol::server_event::{Reply, ServerEvent};
use roomscale_protocol::{
    PHOENIX_TOPIC, ROOM_TOPIC_PREFIX, check_version, room_id_from_topic, room_topic,
};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::silence::SilenceLimit;
use crate::AppState;
use crate::address::ChannelAddress;
use crate::identity::Claims;
use crate::limits::{Place, TokenBucket};
use crate::metrics::Metrics;
use crate::outbox::{Outbox, OutboxReceiver, binary_ok_reply, close_code, outbox};
use crate::room::{self, JoinRequest, MemberId, PushedObjects, RoomCommand};
use crate::voice;

/// A send that makes no progress for this long means the client stopped reading.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames a writer keeps room for between rounds.
const SPARE_ROUND_FRAMES: usize = 4;
/// How long a closing socket waits for the client to answer the close.
const CLOSE_DRAIN: Duration = Duration::from_secs(2);
/// JSON pushes per second per connection, and the burst allowed above it.
const EVENTS_PER_SECOND: f64 = 20.0;
const EVENTS_BURST: f64 = 40.0;
/// Pose frames per second per connection (clients send at most 30).
const POSES_PER_SECOND: f64 = 60.0;
const POSES_BURST: f64 = 20.0;
/// Joins per second per connection, and the burst: each join (and the leave of
/// a join it replaces) is a presence broadcast to everyone in the room, so
/// rejoining in a loop must not be a cheap way to flood a room.
const JOINS_PER_SECOND: f64 = 1.0;
const JOINS_BURST: f64 = 10.0;
/// Heartbeats per second per connection, and the burst (clients send one
/// every 30 s).
const HEARTBEATS_PER_SECOND: f64 = 1.0;
const HEARTBEATS_BURST: f64 = 10.0;
/// Largest heartbeat frame: refs and the `{}` payload fit many times over.
const MAX_HEARTBEAT_FRAME_BYTES: usize = 1024;
/// Frames refused for their rate a client may run up at once before it is
/// disconnected as a flood, and how fast that allowance comes back.
const STRIKES_BURST: f64 = 100.0;
const STRIKES_PER_SECOND: f64 = 1.0;
/// Poses dropped for their rate that cost one strike: an honest client whose
/// poses bunch up after a network stall loses a few, a flood loses the socket.
const POSE_REFUSALS_PER_STRIKE: u32 = 30;

/// The server-wide places a socket holds while it is open (one of its peer
/// address's, one of its user's); dropping them gives them back.
pub(super) struct Places {
    pub(super) _ip: Place<std::net::IpAddr>,
    pub(super) _user: Place<String>,
}

/// Sets a connection up and returns the future that serves it. The set-up is
/// done here rather than in an `async fn`, whose future would keep room for
/// its arguments (the whole WebSocket) for the connection's life.
pub(super) fn serve(
    socket: WebSocket,
    state: AppState,
    claims: Claims,
    places: Places,
) -> impl Future<Output = ()> + Send {
    state.metrics.connections.inc();
    let (sink, stream) = socket.split();
    let (outbox, receiver) = outbox();
    let writer = tokio::spawn(write_frames(sink, receiver, state.metrics.clone()));
    let now = Instant::now();
    let connection = Connection {
        state,
        claims,
        outbox,
        channels: Channels::default(),
        events: TokenBucket::new(EVENTS_PER_SECOND, EVENTS_BURST, now),
        joins: TokenBucket::new(JOINS_PER_SECOND, JOINS_BURST, now),
        poses: TokenBucket::new(POSES_PER_SECOND, POSES_BURST, now),
        heartbeats: TokenBucket::new(HEARTBEATS_PER_SECOND, HEARTBEATS_BURST, now),
        strikes: TokenBucket::new(STRIKES_PER_SECOND, STRIKES_BURST, now),
        refused_poses: 0,
    };
    run(connection, stream, writer, places)
}

async fn run(
    mut connection: Connection,
    mut stream: SplitStream<WebSocket>,
    writer: tokio::task::JoinHandle<()>,
    places: Places,
) {
    connection.read_frames(&mut stream).await;
    connection.leave_all().await;
    // Make sure the writer stops, with the reason already given if there was one.
    connection.outbox.close(1000, "");
    let metrics = connection.state.metrics.clone();
    drop(connection);
    // Read and drop what the client still sends until it answers the close (or
    // a moment passes): a socket closed with unread data is reset by the
    // kernel, and the client would lose the close frame and its reason.
    let drain = async {
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    };
    let (_, _) = tokio::join!(writer, tokio::time::timeout(CLOSE_DRAIN, drain));
    drop(places);
    metrics.connections.dec();
}

struct Connection {
    state: AppState,
    claims: Claims,
    outbox: Outbox,
    /// Joined channels by topic (canonical, so at most one per room).
    channels: Channels,
    events: TokenBucket,
    joins: TokenBucket,
    poses: TokenBucket,
    heartbeats: TokenBucket,
    /// Refusals the client may still run up before it counts as flooding.
    strikes: TokenBucket,
    /// Poses refused since the last strike they cost.
    refused_poses: u32,
}

/// A connection's joined channels by topic: a short list, as a connection is
/// in one room or a few (`--channels-per-socket`), where a hash map's table
/// would cost every connection more memory than searching the list costs time.
#[derive(Default)]
struct Channels(Vec<(Box<str>, Channel)>);

impl Channels {
    fn get(&self, topic: &str) -> Option<&Channel> {
        self.0
            .iter()
            .find(|(joined, _)| **joined == *topic)
            .map(|(_, channel)| channel)
    }

    fn contains_key(&self, topic: &str) -> bool {
        self.get(topic).is_some()
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn remove(&mut self, topic: &str) -> Option<Channel> {
        let at = self.0.iter().position(|(joined, _)| **joined == *topic)?;
        Some(self.0.swap_remove(at).1)
    }

    /// Adds a channel; one joined on the same topic is replaced.
    fn insert(&mut self, topic: &str, channel: Channel) {
        self.remove(topic);
        if self.0.is_empty() {
            self.0.reserve_exact(1);
        }
        self.0.push((topic.into(), channel));
    }

    fn drain(&mut self) -> impl Iterator<Item = Channel> + '_ {
        self.0.drain(..).map(|(_, channel)| channel)
    }
}

struct Channel {
    member: MemberId,
    room_id: Uuid,
    join_ref: String,
    inbox: mpsc::Sender<RoomCommand>,
}

/// An inbound push and where its answer goes: the address of the channel it
/// names (with the push's own join ref, as Phoenix replies) and the push's ref
/// (`None`: the client asked for no reply).
struct Request<'a> {
    address: ChannelAddress,
    msg_ref: Option<&'a str>,
}

impl Request<'_> {
    fn topic(&self) -> &str {
        &self.address.topic
    }

    fn join_ref(&self) -> Option<&str> {
        self.address.join_ref.as_deref()
    }
}

impl Connection {
    async fn read_frames(&mut self, stream: &mut SplitStream<WebSocket>) {
        let mut silence = SilenceLimit::new(
            Instant::now(),
            Duration::from_secs(self.state.config.heartbeat_timeout),
        );
        // Built once, not per frame: at tens of thousands of frames a second,
        // fresh futures and a re-armed timer for every frame cost more than
        // the frames. The silence timer fires at most once per limit and is
        // re-armed for the deadline the frames since have moved it to.
        // Only the shutdown flag, not a whole second AppState, lives as long
        // as the loop.
        let mut shutdown_flag = self.state.shutdown.clone();
        let shutdown = async move {
            // An error means the sender is gone: the server is going away too.
            let _ = shutdown_flag.wait_for(|stopping| *stopping).await;
        };
        let outbox = self.outbox.clone();
        let closing = outbox.closing();
        let silence_timer = tokio::time::sleep_until(silence.deadline().into());
        tokio::pin!(shutdown, closing, silence_timer);
        loop {
            let next = tokio::select! {
                _ = &mut shutdown => {
                    self.outbox.close(close_code::GOING_AWAY, "the server is shutting down; reconnect in a moment");
                    return;
                }
                _ = &mut closing => return,
                _ = &mut silence_timer => {
                    if !silence.expired(Instant::now()) {
                        silence_timer.as_mut().reset(silence.deadline().into());
                        continue;
                    }
                    Err(())
                }
                next = stream.next() => Ok(next),
            };
            silence.heard(Instant::now());
            let message = match next {
                Err(_) => {
                    self.state.metrics.error("heartbeat_timeout");
                    let reason = format!(
                        "no message for {} s: send a heartbeat every 30 s to stay connected",
                        silence.limit().as_secs()
                    );
                    self.outbox.close(close_code::POLICY_VIOLATION, &reason);
                    return;
                }
                Ok(None) => return,
                Ok(Some(Err(error))) => {
                    self.state.metrics.error("broken_frame");
                    let reason = format!("unreadable WebSocket data: {error}");
                    let code = if reason.contains("too long") || reason.contains("too big") {
                        close_code::MESSAGE_TOO_BIG
                    } else {
                        close_code::UNSUPPORTED_DATA
                    };
                    self.outbox.close(code, &reason);
                    return;
                }
                Ok(Some(Ok(message))) => message,
            };
            match message {
                Message::Text(text) => {
                    if self.oversize(text.len()) {
                        return;
                    }
                    // Boxed: joins and the other text events need far more
                    // state than the read loop, and only for a moment; every
                    // connection would otherwise carry room for it.
                    Box::pin(self.on_text(text.as_str())).await;
                }
                Message::Binary(bytes) => {
                    if self.oversize(bytes.len()) {
                        return;
                    }
                    self.on_binary(&bytes);
                }
                Message::Close(_) => return,
                Message::Ping(_) | Message::Pong(_) => {}
            }
            if self.outbox.is_closing() {
                return;
            }
        }
    }

    fn oversize(&self, len: usize) -> bool {
        self.state.metrics.frames_in.inc();
        self.state.metrics.bytes_in.add(len as u64);
        if len <= MAX_FRAME_BYTES {
            return false;
        }
        self.state.metrics.error("too_large");
        self.outbox.close(
            close_code::MESSAGE_TOO_BIG,
            &format!("frame of {len} bytes exceeds the limit of {MAX_FRAME_BYTES} bytes"),
        );
        true
    }

    async fn on_text(&mut self, text: &str) {
        let decoded = match frame::decode_text(text) {
            Ok(decoded) => decoded,
            Err(error) => {
                self.state.metrics.error("malformed_frame");
                self.outbox.close(
                    close_code::UNSUPPORTED_DATA,
                    &format!("malformed frame: {error}"),
                );
                return;
            }
        };
        let to = self.request(
            &decoded.topic,
            decoded.join_ref.as_deref(),
            decoded.msg_ref.as_deref(),
        );
        if decoded.topic == PHOENIX_TOPIC && decoded.event == control::HEARTBEAT {
            return self.heartbeat(&to, text.len(), &decoded.payload);
        }
        if !self.within_rate(&to) {
            return;
        }
        if decoded.topic == PHOENIX_TOPIC {
            let reason = format!(
                "unknown event \"{}\" on the phoenix topic; only heartbeat goes there",
                truncate(&decoded.event)
            );
            return self.reply_error(&to, ErrorCode::UnknownEvent, reason);
        }
        let Some(room_id) =
            room_id_from_topic(&decoded.topic).and_then(|id| Uuid::parse_str(id).ok())
        else {
            let reason = unknown_topic_reason(&decoded.topic);
            self.reply_error(&to, ErrorCode::UnknownTopic, reason);
            return;
        };
        let event = match ClientEvent::parse(&decoded.event, decoded.payload.clone()) {
            Ok(event) => event,
            Err(error) => return self.reply_error(&to, error.code(), error.to_string()),
        };
        match event {
            ClientEvent::Join(payload) => self.join(room_id, &to, payload).await,
            ClientEvent::Heartbeat => self.reply_error(
                &to,
                ErrorCode::UnknownEvent,
                "heartbeat goes on the phoenix topic".into(),
            ),
            other => self.channel_event(&to, other).await,
        }
    }

    async fn channel_event(&mut self, to: &Request<'_>, event: ClientEvent) {
        let Some(channel) = self.channels.get(to.topic()) else {
            let reason = format!("join {} before sending \"{}\"", to.topic(), event.name());
            return self.reply_error(to, ErrorCode::NotJoined, reason);
        };
        if to
            .join_ref()
            .is_some_and(|join_ref| join_ref != channel.join_ref)
        {
            let reason = format!(
                "this push belongs to an earlier join of {}; rejoin first",
                to.topic()
            );
            return self.reply_error(to, ErrorCode::NotJoined, reason);
        }
        // The room's actor is gone (the room was deleted, or crashed and was
        // restarted): this channel no longer reaches a room, and must not reach
        // the SFU either, even once the room is restored.
        if channel.inbox.is_closed() {
            self.channels.remove(to.topic());
            let gone = room::room_gone();
            return self.reply_error(to, gone.code, gone.reason);
        }
        let member = channel.member;
        let msg_ref = to.msg_ref.unwrap_or_default().to_string();
        let command = match event {
            ClientEvent::Leave => {
                let channel = self.channels.remove(to.topic()).expect("looked up above");
                let _ = channel.inbox.send(RoomCommand::Leave { member }).await;
                self.reply_ok(to);
                return;
            }
            ClientEvent::Chat(chat) => RoomCommand::Persist {
                member,
                msg_ref,
                body: RoomEventBody::Chat { text: chat.text },
            },
            ClientEvent::ObjectSet(set) => RoomCommand::Persist {
                member,
                msg_ref,
                body: RoomEventBody::ObjectSet {
                    object_id: set.object_id,
                    state: set.state,
                },
            },
            ClientEvent::ObjectRemove(remove) => RoomCommand::Persist {
                member,
                msg_ref,
                body: RoomEventBody::ObjectRemove {
                    object_id: remove.object_id,
                },
            },
            ClientEvent::ObjectGrab(grab) => RoomCommand::ObjectGrab {
                member,
                msg_ref,
                object_id: grab.object_id,
            },
            ClientEvent::ObjectRelease(release) => RoomCommand::ObjectRelease {
                member,
                msg_ref,
                object_id: release.object_id,
            },
            ClientEvent::UpdateProfile(update) => RoomCommand::UpdateProfile {
                member,
                msg_ref,
                update,
            },
            ClientEvent::SetMuted(muted) => RoomCommand::SetMuted {
                member,
                msg_ref,
                muted: muted.muted,
            },
            ClientEvent::RtcOffer(_)
            | ClientEvent::RtcAnswer(_)
            | ClientEvent::RtcIce(_)
            | ClientEvent::VoiceLeave => {
                let room_id = channel.room_id;
                return self.signal(to, member, room_id, event);
            }
            ClientEvent::Moderate(act) => RoomCommand::Moderate {
                member,
                msg_ref,
                act,
            },
            ClientEvent::History(history) => RoomCommand::History {
                member,
                msg_ref,
                before_id: history.before_id,
            },
            ClientEvent::Join(_) | ClientEvent::Heartbeat => unreachable!("handled by on_text"),
        };
        if channel.inbox.send(command).await.is_err() {
            self.channels.remove(to.topic());
            let gone = room::room_gone();
            self.reply_error(to, gone.code, gone.reason);
        }
    }

    async fn join(
        &mut self,
        room_id: Uuid,
        to: &Request<'_>,
        payload: roomscale_protocol::events::JoinPayload,
    ) {
        if let Err(error) = check_version(payload.protocol_version) {
            return self.reply_error(to, ErrorCode::UnsupportedVersion, error.to_string());
        }
        if !self.joins.take(Instant::now()) {
            let reason = format!(
                "too many joins: at most {JOINS_PER_SECOND} per second on one connection; \
                 this one was dropped, join again in a moment"
            );
            return self.refuse_for_rate(to, reason);
        }
        let limit = self.state.config.channels_per_socket as usize;
        if !self.channels.contains_key(to.topic()) && self.channels.len() >= limit {
            let reason = format!(
                "this connection is already in {limit} rooms, the most one connection may \
                 join; leave one (phx_leave) or open another connection"
            );
            return self.reply_error(to, ErrorCode::LimitReached, reason);
        }
        // Only rooms in the store get an actor: a join of a made-up id must not
        // start a task.
        match self.state.store.get_room(room_id).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                let reason = format!(
                    "room {room_id} does not exist (or was deleted); pick one from the room list"
                );
                return self.reply_error(to, ErrorCode::RoomNotFound, reason);
            }
            Err(error) => {
                tracing::error!(%room_id, "looking up a room for a join: {error:#}");
                let reason = "the room could not be looked up; try joining again".to_string();
                return self.reply_error(to, ErrorCode::Internal, reason);
            }
        }
        // A second join of a topic replaces the first, as in Phoenix: this is how
        // clients rejoin after a room restarted.
        if let Some(old) = self.channels.remove(to.topic()) {
            let _ = old
                .inbox
                .send(RoomCommand::Leave { member: old.member })
                .await;
        }
        let join_ref = to.join_ref().or(to.msg_ref).unwrap_or_default().to_string();
        let topic = to.address.topic.clone();
        // Twice: a room that was stopping when the join arrived is started again.
        for _ in 0..2 {
            let member = room::next_member_id();
            let inbox = self.state.rooms.inbox(&self.state, room_id);
            let (accepted, answer) = oneshot::channel();
            let request = JoinRequest {
                member,
                user_id: self.claims.user_id.clone(),
                msg_ref: to.msg_ref.unwrap_or_default().to_string(),
                address: ChannelAddress::new(
                    self.outbox.clone(),
                    topic.clone(),
                    Some(Arc::from(join_ref.as_str())),
                ),
                payload: payload.clone(),
                accepted,
            };
            if inbox
                .send(RoomCommand::Join(Box::new(request)))
                .await
                .is_err()
            {
                continue;
            }
            match answer.await {
                Ok(Ok(())) => {
                    self.channels.insert(
                        to.topic(),
                        Channel {
                            member,
                            room_id,
                            join_ref,
                            inbox,
                        },
                    );
                    return;
                }
                Ok(Err(reply)) => return self.reply_error(to, reply.code, reply.reason),
                Err(_) => continue,
            }
        }
        let gone = room::room_gone();
        self.reply_error(to, gone.code, gone.reason);
    }

    fn on_binary(&mut self, bytes: &[u8]) {
        // Before anything else, so that no binary frame (a pose, or something
        // that only looks like one) is answered beyond the pose rate.
        if !self.poses.take(Instant::now()) {
            self.state.metrics.poses_dropped.inc();
            self.state.metrics.error("rate_limited");
            self.refused_poses += 1;
            if self.refused_poses >= POSE_REFUSALS_PER_STRIKE {
                self.refused_poses = 0;
                self.strike();
            }
            return;
        }
        let push = match frame::decode_client_binary(bytes) {
            Ok(push) => push,
            Err(error) => {
                self.state.metrics.error("malformed_frame");
                self.outbox.close(
                    close_code::UNSUPPORTED_DATA,
                    &format!("malformed binary frame: {error}"),
                );
                return;
            }
        };
        // Built only when there is something to answer: poses are the hot path.
        let msg_ref = (!push.msg_ref.is_empty()).then_some(push.msg_ref);
        let to = || self.request(push.topic, Some(push.join_ref), msg_ref);
        if push.event != POSE_EVENT {
            let reason = format!(
                "unknown binary event \"{}\"; binary frames carry only \"pose\"",
                truncate(push.event)
            );
            return self.reply_error(&to(), ErrorCode::UnknownEvent, reason);
        }
        let Some(channel) = self.channels.get(push.topic) else {
            let reason = format!("join {} before sending poses", truncate(push.topic));
            return self.reply_error(&to(), ErrorCode::NotJoined, reason);
        };
        // The avatar pose, then 0..2 object poses: the size says how many.
        let parsed = match PosePush::parse(push.payload) {
            Ok(parsed) => parsed,
            Err(error) => {
                let reason = format!("{error}; this push was dropped");
                return self.reply_error(&to(), ErrorCode::InvalidPayload, reason);
            }
        };
        let member = channel.member;
        let command = RoomCommand::Pose {
            member,
            pose: *parsed.avatar,
            objects: PushedObjects::of(&parsed),
        };
        if channel.inbox.try_send(command).is_err() {
            self.state.metrics.poses_dropped.inc();
        }
        if let Some(msg_ref) = msg_ref {
            let _ = self
                .outbox
                .send(binary_ok_reply(push.join_ref, msg_ref, push.topic));
        }
    }

    /// Applies the per-connection limit on JSON pushes.
    fn within_rate(&mut self, to: &Request<'_>) -> bool {
        if self.events.take(Instant::now()) {
            return true;
        }
        let reason = format!(
            "slow down: at most {EVENTS_PER_SECOND} messages per second; this one was dropped"
        );
        self.refuse_for_rate(to, reason);
        false
    }

    /// Answers a heartbeat: its own small budget, and a payload of `{}`.
    fn heartbeat(&mut self, to: &Request<'_>, frame_bytes: usize, payload: &Value) {
        if frame_bytes > MAX_HEARTBEAT_FRAME_BYTES {
            self.state.metrics.error("oversized_heartbeat");
            self.outbox.close(
                close_code::POLICY_VIOLATION,
                &format!(
                    "a heartbeat of {frame_bytes} bytes; heartbeats carry an empty payload {{}} \
                     and fit in {MAX_HEARTBEAT_FRAME_BYTES} bytes"
                ),
            );
            return;
        }
        if !self.heartbeats.take(Instant::now()) {
            let reason = format!(
                "slow down: at most {HEARTBEATS_PER_SECOND} heartbeat per second (one every \
                 30 s keeps the connection open); this one was dropped"
            );
            return self.refuse_for_rate(to, reason);
        }
        if payload.as_object().is_none_or(|fields| !fields.is_empty()) {
            let reason = "a heartbeat's payload is an empty object {}".to_string();
            return self.reply_error(to, ErrorCode::InvalidPayload, reason);
        }
        self.reply_ok(to);
    }

    /// Refuses a frame for its rate with `reason`, at the cost of a strike.
    fn refuse_for_rate(&mut self, to: &Request<'_>, reason: String) {
        if self.strike() {
            self.reply_error(to, ErrorCode::RateLimited, reason);
        }
    }

    /// Counts one refusal; when the client has run out of them, closes the
    /// socket as a flood and returns false.
    fn strike(&mut self) -> bool {
        if self.strikes.take(Instant::now()) {
            return true;
        }
        if !self.outbox.is_closing() {
            self.state.metrics.error("flood");
            self.outbox.close(
                close_code::POLICY_VIOLATION,
                &format!(
                    "disconnected for flooding: far more messages than the rate limit allows \
                     (about {EVENTS_PER_SECOND} messages and {POSES_PER_SECOND} poses per second); \
                     reconnect and send less"
                ),
            );
        }
        false
    }

    async fn leave_all(&mut self) {
        for channel in self.channels.drain() {
            let _ = channel
                .inbox
                .send(RoomCommand::Leave {
                    member: channel.member,
                })
                .await;
        }
    }

    /// Hands WebRTC signaling to the SFU, which replies itself so that its
    /// answers and offers reach the client in order.
    fn signal(&self, to: &Request<'_>, member: MemberId, room_id: Uuid, event: ClientEvent) {
        let voice = match &self.state.voice {
            Ok(voice) => voice,
            Err(reason) => {
                let reason =
                    format!("voice is off on this server ({reason}); the room works without it");
                return self.reply_error(to, ErrorCode::VoiceUnavailable, reason);
            }
        };
        let route = voice::Route {
            member,
            user_id: Arc::from(self.claims.user_id.as_str()),
            room: room_id,
            address: to.address.clone(),
            msg_ref: to.msg_ref.map(Arc::from),
        };
        let sent = match event {
            ClientEvent::RtcOffer(offer) => voice.offer(route, offer.sdp),
            ClientEvent::RtcAnswer(answer) => voice.answer(route, answer.sdp),
            ClientEvent::RtcIce(candidate) => voice.ice(route, candidate),
            ClientEvent::VoiceLeave => voice.leave_voice(route),
            _ => unreachable!("only signaling events reach the SFU"),
        };
        if sent.is_err() {
            self.reply_error(
                to,
                ErrorCode::VoiceUnavailable,
                "the voice server is busy; try again in a moment".into(),
            );
        }
    }

    /// Where the answer to a push on `topic` goes.
    fn request<'a>(
        &self,
        topic: &str,
        join_ref: Option<&str>,
        msg_ref: Option<&'a str>,
    ) -> Request<'a> {
        Request {
            address: ChannelAddress::new(
                self.outbox.clone(),
                Arc::from(topic),
                join_ref.map(Arc::from),
            ),
            msg_ref,
        }
    }

    /// An empty `ok` reply to the push, when it carries a ref to answer.
    fn reply_ok(&self, to: &Request<'_>) {
        if let Some(msg_ref) = to.msg_ref {
            let _ = to
                .address
                .send(&ServerEvent::Reply(Reply::ok(msg_ref, EmptyReply {})));
        }
    }

    fn reply_error(&self, to: &Request<'_>, code: ErrorCode, reason: String) {
        self.state.metrics.error(code.as_str());
        if let Some(msg_ref) = to.msg_ref {
            let refusal = Reply::error(msg_ref, ErrorReply::new(code, reason));
            let _ = to.address.send(&ServerEvent::Reply(refusal));
        }
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(80).collect()
}

/// Why a topic is not a room's, naming the one spelling that is: when the
/// topic names a room in another spelling (upper case, braces, `urn:uuid:`),
/// the reason gives that room's canonical topic.
fn unknown_topic_reason(topic: &str) -> String {
    let shown = truncate(topic);
    let id = topic
        .get(..ROOM_TOPIC_PREFIX.len())
        .filter(|prefix| prefix.eq_ignore_ascii_case(ROOM_TOPIC_PREFIX))
        .and_then(|_| Uuid::parse_str(&topic[ROOM_TOPIC_PREFIX.len()..]).ok());
    match id {
        Some(id) => format!(
            "unknown topic \"{shown}\"; rooms are spelled room:<room id> with the id as a \
             lowercase UUID, here {}",
            room_topic(&id.hyphenated().to_string())
        ),
        None => format!(
            "unknown topic \"{shown}\"; rooms are spelled room:<room id> with the id as a \
             lowercase UUID, e.g. room:0f8fad5b-d9cb-469f-a165-70867728950e"
        ),
    }
}

/// Drains the outbox into the socket: everything queued each round
/// (reliable frames first, then the newest pose batches), flushed once;
/// stops at a close request.
async fn write_frames(
    mut sink: SplitSink<WebSocket, Message>,
    mut outbox: OutboxReceiver,
    metrics: Arc<Metrics>,
) {
    let signals = outbox.signals();
    // Kept between rounds: a round allocates nothing of its own.
    let mut frames = Vec::new();
    let mut poses = Vec::new();
    loop {
        tokio::select! {
            biased;
            _ = signals.close_requested() => break,
            _ = signals.ready() => {}
        }
        outbox.take_all(&mut frames, &mut poses, &metrics);
        if frames.is_empty() {
            if outbox.senders_gone() {
                break;
            }
            continue;
        }
        let send = async {
            for frame in frames.drain(..) {
                metrics.frames_out.inc();
                metrics.bytes_out.add(frame_len(&frame) as u64);
                sink.feed(frame).await?;
            }
            sink.flush().await
        };
        match tokio::time::timeout(SEND_TIMEOUT, send).await {
            Ok(Ok(())) => {
                if frames.capacity() > SPARE_ROUND_FRAMES {
                    // A burst is over; a quiet connection keeps little.
                    frames = Vec::new();
                }
            }
            Ok(Err(_)) => return,
            Err(_) => {
                metrics.error("slow_reader");
                return;
            }
        }
    }
    // Send what was queued before the close (a last error reply, say), then the reason.
    let mut last = Vec::new();
    while let Ok(frame) = outbox.reliable.try_recv() {
        last.push(frame);
    }
    let close = outbox
        .close_frame()
        .filter(|f| f.code != 1000 || !f.reason.is_empty());
    let goodbye = async {
        for frame in last {
            sink.feed(frame).await?;
        }
        sink.send(Message::Close(close)).await
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), goodbye).await;
}

fn frame_len(message: &Message) -> usize {
    match message {
        Message::Text(text) => text.len(),
        Message::Binary(bytes) => bytes.len(),
        _ => 0,
    }
}
