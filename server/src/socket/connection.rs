//! One WebSocket connection: a reader task that decodes, validates, rate-limits
//! and dispatches every inbound frame, and a writer task that drains the
//! connection's [`Outbox`]. Bad input gets an error reply that says what was
//! wrong; a frame that cannot be read at all closes the socket with the reason.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use roomscale_protocol::events::{ClientEvent, ErrorCode, ErrorReply, POSE_EVENT, RoomEventBody};
use roomscale_protocol::frame::{self, control};
use roomscale_protocol::limits::MAX_FRAME_BYTES;
use roomscale_protocol::pose::POSE_BYTES;
use roomscale_protocol::{PHOENIX_TOPIC, check_version, room_id_from_topic};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::AppState;
use crate::identity::Claims;
use crate::limits::TokenBucket;
use crate::metrics::Metrics;
use crate::outbox::{Outbox, OutboxReceiver, binary_ok_reply, close_code, outbox};
use crate::room::{self, JoinRequest, MemberId, RoomCommand};
use crate::voice;

/// A send that makes no progress for this long means the client stopped reading.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// JSON pushes per second per connection, and the burst allowed above it.
const EVENTS_PER_SECOND: f64 = 20.0;
const EVENTS_BURST: f64 = 40.0;
/// Pose frames per second per connection (clients send at most 30).
const POSES_PER_SECOND: f64 = 60.0;
const POSES_BURST: f64 = 20.0;
/// Frames over the rate limit in a row after which the client counts as flooding.
const FLOOD_LIMIT: u32 = 200;

pub async fn serve(socket: WebSocket, state: AppState, claims: Claims) {
    state.metrics.connections.inc();
    let (sink, stream) = socket.split();
    let (outbox, receiver) = outbox();
    let writer = tokio::spawn(write_frames(sink, receiver, state.metrics.clone()));
    let now = Instant::now();
    let mut connection = Connection {
        state: state.clone(),
        claims,
        outbox,
        channels: HashMap::new(),
        events: TokenBucket::new(EVENTS_PER_SECOND, EVENTS_BURST, now),
        poses: TokenBucket::new(POSES_PER_SECOND, POSES_BURST, now),
        over_limit: 0,
    };
    connection.read_frames(stream).await;
    connection.leave_all().await;
    // Make sure the writer stops, with the reason already given if there was one.
    connection.outbox.close(1000, "");
    drop(connection);
    let _ = writer.await;
    state.metrics.connections.dec();
}

struct Connection {
    state: AppState,
    claims: Claims,
    outbox: Outbox,
    /// Joined channels by topic.
    channels: HashMap<String, Channel>,
    events: TokenBucket,
    poses: TokenBucket,
    over_limit: u32,
}

struct Channel {
    member: MemberId,
    room_id: Uuid,
    join_ref: String,
    inbox: mpsc::Sender<RoomCommand>,
}

/// Where a reply goes: the pushed frame's refs and topic.
struct ReplyTo<'a> {
    join_ref: Option<&'a str>,
    msg_ref: Option<&'a str>,
    topic: &'a str,
}

impl Connection {
    async fn read_frames(&mut self, mut stream: SplitStream<WebSocket>) {
        let silence_limit = Duration::from_secs(self.state.config.heartbeat_timeout);
        // Built once, not per frame: at tens of thousands of frames a second,
        // fresh futures and a re-armed timer for every frame cost more than
        // the frames. The silence timer fires at most once per limit and is
        // re-armed from the time of the last frame.
        let state = self.state.clone();
        let outbox = self.outbox.clone();
        let shutdown = state.shutdown_requested();
        let closing = outbox.closing();
        let silence = tokio::time::sleep(silence_limit);
        tokio::pin!(shutdown, closing, silence);
        let mut last_frame = Instant::now();
        loop {
            let next = tokio::select! {
                _ = &mut shutdown => {
                    self.outbox.close(close_code::GOING_AWAY, "the server is shutting down; reconnect in a moment");
                    return;
                }
                _ = &mut closing => return,
                _ = &mut silence => {
                    let quiet_until = last_frame + silence_limit;
                    if Instant::now() < quiet_until {
                        silence.as_mut().reset(quiet_until.into());
                        continue;
                    }
                    Err(())
                }
                next = stream.next() => Ok(next),
            };
            last_frame = Instant::now();
            let message = match next {
                Err(_) => {
                    self.state.metrics.error("heartbeat_timeout");
                    let reason = format!(
                        "no message for {} s: send a heartbeat every 30 s to stay connected",
                        silence_limit.as_secs()
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
                    self.on_text(text.as_str()).await;
                }
                Message::Binary(bytes) => {
                    if self.oversize(bytes.len()) {
                        return;
                    }
                    self.on_binary(&bytes).await;
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
        let to = ReplyTo {
            join_ref: decoded.join_ref.as_deref(),
            msg_ref: decoded.msg_ref.as_deref(),
            topic: &decoded.topic,
        };
        if decoded.event != control::HEARTBEAT && !self.within_rate(&to) {
            return;
        }
        if decoded.topic == PHOENIX_TOPIC {
            if decoded.event == control::HEARTBEAT {
                self.reply_ok(&to, &serde_json::json!({}));
            } else {
                self.reply_error(
                    &to,
                    ErrorCode::UnknownEvent,
                    format!(
                        "unknown event \"{}\" on the phoenix topic; only heartbeat goes there",
                        truncate(&decoded.event)
                    ),
                );
            }
            return;
        }
        let Some(room_id) =
            room_id_from_topic(&decoded.topic).and_then(|id| Uuid::parse_str(id).ok())
        else {
            self.reply_error(
                &to,
                ErrorCode::UnknownTopic,
                format!(
                    "unknown topic \"{}\"; rooms are room:<room id>",
                    truncate(&decoded.topic)
                ),
            );
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

    async fn channel_event(&mut self, to: &ReplyTo<'_>, event: ClientEvent) {
        let Some(channel) = self.channels.get(to.topic) else {
            let reason = format!("join {} before sending \"{}\"", to.topic, event.name());
            return self.reply_error(to, ErrorCode::NotJoined, reason);
        };
        if to
            .join_ref
            .is_some_and(|join_ref| join_ref != channel.join_ref)
        {
            let reason = format!(
                "this push belongs to an earlier join of {}; rejoin first",
                to.topic
            );
            return self.reply_error(to, ErrorCode::NotJoined, reason);
        }
        let member = channel.member;
        let msg_ref = to.msg_ref.unwrap_or_default().to_string();
        let command = match event {
            ClientEvent::Leave => {
                let channel = self.channels.remove(to.topic).expect("looked up above");
                let _ = channel.inbox.send(RoomCommand::Leave { member }).await;
                self.reply_ok(to, &serde_json::json!({}));
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
            self.channels.remove(to.topic);
            let gone = room::room_gone();
            self.reply_error(to, gone.code, gone.reason);
        }
    }

    async fn join(
        &mut self,
        room_id: Uuid,
        to: &ReplyTo<'_>,
        payload: roomscale_protocol::events::JoinPayload,
    ) {
        if let Err(error) = check_version(payload.protocol_version) {
            return self.reply_error(to, ErrorCode::UnsupportedVersion, error.to_string());
        }
        // A second join of a topic replaces the first, as in Phoenix: this is how
        // clients rejoin after a room restarted.
        if let Some(old) = self.channels.remove(to.topic) {
            let _ = old
                .inbox
                .send(RoomCommand::Leave { member: old.member })
                .await;
        }
        let join_ref = to.join_ref.or(to.msg_ref).unwrap_or_default().to_string();
        let topic: Arc<str> = Arc::from(to.topic);
        // Twice: a room that was stopping when the join arrived is started again.
        for _ in 0..2 {
            let member = room::next_member_id();
            let inbox = self.state.rooms.inbox(&self.state, room_id);
            let (accepted, answer) = oneshot::channel();
            let request = JoinRequest {
                member,
                user_id: self.claims.user_id.clone(),
                join_ref: join_ref.clone(),
                msg_ref: to.msg_ref.unwrap_or_default().to_string(),
                topic: topic.clone(),
                payload: payload.clone(),
                outbox: self.outbox.clone(),
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
                        to.topic.to_string(),
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

    async fn on_binary(&mut self, bytes: &[u8]) {
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
        let to = ReplyTo {
            join_ref: Some(push.join_ref),
            msg_ref: (!push.msg_ref.is_empty()).then_some(push.msg_ref),
            topic: push.topic,
        };
        if push.event != POSE_EVENT {
            let reason = format!(
                "unknown binary event \"{}\"; binary frames carry only \"pose\"",
                truncate(push.event)
            );
            return self.reply_error(&to, ErrorCode::UnknownEvent, reason);
        }
        let Some(channel) = self.channels.get(push.topic) else {
            let reason = format!("join {} before sending poses", truncate(push.topic));
            return self.reply_error(&to, ErrorCode::NotJoined, reason);
        };
        let Ok(pose) = <[u8; POSE_BYTES]>::try_from(push.payload) else {
            let reason = format!("a pose is {POSE_BYTES} bytes, got {}", push.payload.len());
            return self.reply_error(&to, ErrorCode::InvalidPayload, reason);
        };
        if !self.poses.take(Instant::now()) {
            self.state.metrics.poses_dropped.inc();
            self.state.metrics.error("rate_limited");
            return;
        }
        let member = channel.member;
        if channel
            .inbox
            .try_send(RoomCommand::Pose { member, pose })
            .is_err()
        {
            self.state.metrics.poses_dropped.inc();
        }
        if let Some(msg_ref) = to.msg_ref {
            let _ = self
                .outbox
                .send(binary_ok_reply(push.join_ref, msg_ref, push.topic));
        }
    }

    /// Applies the per-connection limit on JSON pushes; a client far over it is
    /// disconnected as a flood.
    fn within_rate(&mut self, to: &ReplyTo<'_>) -> bool {
        if self.events.take(Instant::now()) {
            self.over_limit = 0;
            return true;
        }
        self.over_limit += 1;
        if self.over_limit > FLOOD_LIMIT {
            self.state.metrics.error("flood");
            self.outbox.close(
                close_code::POLICY_VIOLATION,
                "disconnected for flooding: far more messages than the rate limit allows",
            );
        } else {
            let reason = format!(
                "slow down: at most {EVENTS_PER_SECOND} messages per second; this one was dropped"
            );
            self.reply_error(to, ErrorCode::RateLimited, reason);
        }
        false
    }

    async fn leave_all(&mut self) {
        for (_, channel) in self.channels.drain() {
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
    fn signal(&self, to: &ReplyTo<'_>, member: MemberId, room_id: Uuid, event: ClientEvent) {
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
            topic: Arc::from(to.topic),
            join_ref: to.join_ref.map(str::to_string),
            msg_ref: to.msg_ref.map(str::to_string),
            outbox: self.outbox.clone(),
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

    fn reply_ok(&self, to: &ReplyTo<'_>, response: &impl serde::Serialize) {
        if let Some(msg_ref) = to.msg_ref {
            let _ = self
                .outbox
                .reply_ok(to.join_ref, msg_ref, to.topic, response);
        }
    }

    fn reply_error(&self, to: &ReplyTo<'_>, code: ErrorCode, reason: String) {
        self.state.metrics.error(code.as_str());
        if let Some(msg_ref) = to.msg_ref {
            let _ = self.outbox.reply_error(
                to.join_ref,
                msg_ref,
                to.topic,
                &ErrorReply::new(code, reason),
            );
        }
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(80).collect()
}

/// Drains the outbox into the socket: reliable frames first, then the newest
/// pose batches, flushing once per round; stops at a close request.
async fn write_frames(
    mut sink: SplitSink<WebSocket, Message>,
    mut outbox: OutboxReceiver,
    metrics: Arc<Metrics>,
) {
    let signals = outbox.signals();
    loop {
        let mut frames = Vec::new();
        tokio::select! {
            biased;
            _ = signals.close_requested() => break,
            frame = outbox.reliable.recv() => match frame {
                Some(frame) => frames.push(frame),
                None => break,
            },
            _ = signals.poses_ready() => {}
        }
        while let Ok(frame) = outbox.reliable.try_recv() {
            frames.push(frame);
        }
        frames.extend(outbox.take_pose_frames(&metrics));
        let send = async {
            for frame in frames {
                metrics.frames_out.inc();
                metrics.bytes_out.add(frame_len(&frame) as u64);
                sink.feed(frame).await?;
            }
            sink.flush().await
        };
        match tokio::time::timeout(SEND_TIMEOUT, send).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                metrics.error("slow_reader");
                return;
            }
        }
    }
    // Send what was queued before the close (a last error reply, say), then the reason.
    let mut frames = Vec::new();
    while let Ok(frame) = outbox.reliable.try_recv() {
        frames.push(frame);
    }
    let close = outbox
        .close_frame()
        .filter(|f| f.code != 1000 || !f.reason.is_empty());
    let goodbye = async {
        for frame in frames {
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
