//! The task behind a [`super::RoomClient`]: one Phoenix v2 socket at a time,
//! reconnected with backoff, rejoined with `last_seen_id`.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use roomscale_protocol::events::{
    ErrorReply, JoinPayload, JoinReply, POSE_EVENT, POSES_EVENT, PRESENCE_DIFF_EVENT,
    PRESENCE_STATE_EVENT, ROOM_EVENT_EVENT, RTC_ICE_EVENT, RTC_OFFER_EVENT, ReplyPayload,
    RoomEvent, RoomSummary, SPEAKING_EVENT, VOICE_TRACKS_EVENT,
};
use roomscale_protocol::frame::{self, ServerBinary, control};
use roomscale_protocol::pose::{self, AvatarPose};
use roomscale_protocol::{PHOENIX_TOPIC, PROTOCOL_VERSION, room_topic};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;

use super::pose_sender::PoseSender;
use super::{
    Awaiting, ClientError, Command, Identity, Presence, RoomUpdate, ServerUrl, Session, VoiceEvent,
};

const HEARTBEAT_EVERY: Duration = Duration::from_secs(30);
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct RoomTask {
    server: ServerUrl,
    topic: String,
    session: Session,
    identity: Identity,
    updates: mpsc::Sender<RoomUpdate>,
    /// The slot of the latest join, read by [`super::RoomClient::slot`].
    slot: watch::Sender<u16>,
    presence: Presence,
    last_seen_id: Option<u64>,
    next_ref: u64,
    /// Where inbound voice events go: the latest [`super::VoiceSignaling`].
    voice: Option<mpsc::Sender<VoiceEvent>>,
}

/// How one connection ended.
enum Ended {
    Left(oneshot::Sender<()>),
    Lost(String),
    /// The caller dropped the client.
    Dropped,
}

/// Answers [`super::RoomClient::join`] once the first join succeeded or failed.
type Joined = oneshot::Sender<Result<RoomSummary, ClientError>>;

impl RoomTask {
    pub fn new(
        server: ServerUrl,
        room_id: String,
        session: Session,
        identity: Identity,
        updates: mpsc::Sender<RoomUpdate>,
        slot: watch::Sender<u16>,
    ) -> RoomTask {
        RoomTask {
            server,
            topic: room_topic(&room_id),
            session,
            identity,
            updates,
            slot,
            presence: Presence::default(),
            last_seen_id: None,
            next_ref: 0,
            voice: None,
        }
    }

    pub async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        pose: watch::Receiver<Option<AvatarPose>>,
        joined: Joined,
    ) {
        let mut joined = Some(joined);
        let mut backoff = BACKOFF_FIRST;
        let mut pose_sender = PoseSender::default();
        loop {
            let ended = match self.connect_and_join().await {
                Ok((mut socket, join_ref, reply)) => {
                    backoff = BACKOFF_FIRST;
                    self.joined(reply, joined.take()).await;
                    // The membership just joined has heard no pose of ours,
                    // so the latest goes out even if it did not change.
                    pose_sender.rejoined();
                    self.serve(
                        &mut socket,
                        &join_ref,
                        &mut commands,
                        &pose,
                        &mut pose_sender,
                    )
                    .await
                }
                // The first join's refusal is final: the caller hears why.
                Err(error) if joined.is_some() => {
                    let _ = joined.take().expect("checked").send(Err(error));
                    return;
                }
                Err(error) => Ended::Lost(error.to_string()),
            };
            match ended {
                Ended::Left(done) => {
                    let _ = done.send(());
                    return;
                }
                Ended::Dropped => return,
                Ended::Lost(reason) => {
                    let _ = self
                        .updates
                        .send(RoomUpdate::ConnectionLost { reason })
                        .await;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    fn next_ref(&mut self) -> String {
        self.next_ref += 1;
        self.next_ref.to_string()
    }

    async fn connect_and_join(&mut self) -> Result<(Socket, String, JoinReply), ClientError> {
        let url = format!(
            "ws://{}/socket/websocket?vsn=2.0.0&token={}",
            self.server.authority(),
            self.session.token
        );
        let (mut socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .map_err(|error| match error {
                tokio_tungstenite::tungstenite::Error::Http(response) => ClientError::Http {
                    status: response.status().as_u16(),
                    body: String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                        .into_owned(),
                },
                other => ClientError::Unreachable {
                    server: self.server.to_string(),
                    cause: other.to_string(),
                },
            })?;
        let join_ref = self.next_ref();
        let payload = JoinPayload {
            protocol_version: PROTOCOL_VERSION,
            name: self.identity.name.clone(),
            colour: self.identity.colour.clone(),
            client_kind: self.identity.kind,
            last_seen_id: self.last_seen_id,
        };
        let join = frame::encode_text_parts(
            Some(&join_ref),
            Some(&join_ref),
            &self.topic,
            control::JOIN,
            &payload,
        );
        socket
            .send(Message::text(join))
            .await
            .map_err(|_| ClientError::ConnectionLost)?;
        let deadline = Instant::now() + JOIN_TIMEOUT;
        loop {
            let message = tokio::time::timeout_at(deadline, socket.next())
                .await
                .map_err(|_| ClientError::Protocol("no answer to the join within 10 s".into()))?;
            let Some(Ok(Message::Text(text))) = message else {
                match message {
                    Some(Ok(Message::Close(close))) => {
                        return Err(ClientError::Protocol(format!(
                            "the server closed the socket: {close:?}"
                        )));
                    }
                    None | Some(Err(_)) => return Err(ClientError::ConnectionLost),
                    _ => continue,
                }
            };
            let Ok(reply) = frame::decode_text(&text) else {
                continue;
            };
            if reply.event != control::REPLY || reply.msg_ref.as_deref() != Some(join_ref.as_str())
            {
                continue;
            }
            let response = reply.payload["response"].clone();
            if reply.payload["status"] == "ok" {
                let reply: JoinReply = serde_json::from_value(response)
                    .map_err(|e| ClientError::Protocol(format!("join reply: {e}")))?;
                return Ok((socket, join_ref, reply));
            }
            let refusal: ErrorReply = serde_json::from_value(response)
                .map_err(|e| ClientError::Protocol(format!("join error reply: {e}")))?;
            return Err(ClientError::Refused {
                code: refusal.code.as_str().to_string(),
                reason: refusal.reason,
            });
        }
    }

    /// Takes in a successful join: the slot first, so that whoever hears of
    /// the join reads the new slot; then the first join's answer, or a
    /// rejoin's [`RoomUpdate::Joined`]; then the events the join replayed.
    async fn joined(&mut self, reply: JoinReply, first: Option<Joined>) {
        self.slot.send_replace(reply.slot);
        match first {
            Some(first) => {
                let _ = first.send(Ok(reply.room));
            }
            None => {
                // The new membership has no voice yet: voice starts over.
                if let Some(voice) = &self.voice {
                    let _ = voice.try_send(VoiceEvent::Rejoined);
                }
                let _ = self
                    .updates
                    .send(RoomUpdate::Joined {
                        room: reply.room,
                        slot: reply.slot,
                    })
                    .await;
            }
        }
        for event in reply.events {
            self.event(event).await;
        }
    }

    /// Passes on an event unless it was seen already (a replay overlapping a broadcast).
    async fn event(&mut self, event: RoomEvent) {
        if self.last_seen_id.is_some_and(|seen| event.id <= seen) {
            return;
        }
        self.last_seen_id = Some(event.id);
        let _ = self.updates.send(RoomUpdate::Event(event)).await;
    }

    async fn serve(
        &mut self,
        socket: &mut Socket,
        join_ref: &str,
        commands: &mut mpsc::Receiver<Command>,
        pose: &watch::Receiver<Option<AvatarPose>>,
        pose_sender: &mut PoseSender,
    ) -> Ended {
        let mut heartbeat =
            tokio::time::interval_at(Instant::now() + HEARTBEAT_EVERY, HEARTBEAT_EVERY);
        let mut pose_tick = tokio::time::interval(pose_sender.period());
        pose_tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut pending: HashMap<String, Awaiting> = HashMap::new();
        let mut outgoing = Vec::new();
        let ended = loop {
            tokio::select! {
                message = socket.next() => match message {
                    Some(Ok(Message::Text(text))) => {
                        if let Some(ended) = self.on_text(&text, join_ref, &mut pending).await {
                            break ended;
                        }
                    }
                    Some(Ok(Message::Binary(bytes))) => self.on_binary(&bytes),
                    Some(Ok(Message::Close(close))) => break Ended::Lost(format!("the server closed the connection: {}", close.map(|c| c.reason.to_string()).unwrap_or_default())),
                    Some(Ok(_)) => {}
                    Some(Err(error)) => break Ended::Lost(error.to_string()),
                    None => break Ended::Lost("the connection ended".into()),
                },
                command = commands.recv() => match command {
                    Some(Command::Push { event, awaiting }) => {
                        let msg_ref = self.next_ref();
                        outgoing.push(Message::text(frame::encode_text_parts(Some(join_ref), Some(&msg_ref), &self.topic, event.name(), &event.payload())));
                        pending.insert(msg_ref, awaiting);
                    }
                    Some(Command::SubscribeVoice(events)) => self.voice = Some(events),
                    Some(Command::Leave { done }) => {
                        let msg_ref = self.next_ref();
                        let leave = frame::encode_text_parts(Some(join_ref), Some(&msg_ref), &self.topic, control::LEAVE, &Value::Object(Default::default()));
                        let _ = socket.send(Message::text(leave)).await;
                        let _ = socket.close(None).await;
                        break Ended::Left(done);
                    }
                    None => {
                        let _ = socket.close(None).await;
                        break Ended::Dropped;
                    }
                },
                now = pose_tick.tick() => {
                    if let Some(current) = *pose.borrow() {
                        pose_sender.offer(&current);
                    }
                    if let Some(encoded) = pose_sender.due(now.into_std()) {
                        let mut out = Vec::with_capacity(64);
                        frame::encode_client_push(&mut out, join_ref, "", &self.topic, POSE_EVENT, &encoded)
                            .expect("room topics fit a binary frame");
                        outgoing.push(Message::binary(out));
                    }
                }
                _ = heartbeat.tick() => {
                    let msg_ref = self.next_ref();
                    outgoing.push(Message::text(frame::encode_text_parts(None, Some(&msg_ref), PHOENIX_TOPIC, control::HEARTBEAT, &Value::Object(Default::default()))));
                }
            }
            for message in outgoing.drain(..) {
                if socket.feed(message).await.is_err() {
                    break;
                }
            }
            if let Err(error) = socket.flush().await {
                break Ended::Lost(error.to_string());
            }
        };
        for (_, awaiting) in pending.drain() {
            awaiting.answer(Err(ClientError::ConnectionLost));
        }
        ended
    }

    async fn on_text(
        &mut self,
        text: &str,
        join_ref: &str,
        pending: &mut HashMap<String, Awaiting>,
    ) -> Option<Ended> {
        let Ok(frame) = frame::decode_text(text) else {
            return Some(Ended::Lost("the server sent a malformed frame".into()));
        };
        if frame.topic != self.topic {
            return None;
        }
        match frame.event.as_str() {
            control::REPLY => {
                let awaiting = frame.msg_ref.as_deref().and_then(|r| pending.remove(r))?;
                awaiting.answer(ReplyPayload::parse(frame.payload).map_err(ClientError::Protocol));
            }
            RTC_OFFER_EVENT => self.voice_event(frame.payload, VoiceEvent::Offer),
            VOICE_TRACKS_EVENT => self.voice_event(frame.payload, VoiceEvent::Tracks),
            RTC_ICE_EVENT => self.voice_event(frame.payload, VoiceEvent::Ice),
            SPEAKING_EVENT => self.voice_event(frame.payload, VoiceEvent::Speaking),
            PRESENCE_STATE_EVENT => {
                if let Ok(state) = serde_json::from_value(frame.payload) {
                    self.presence.replace(state);
                    let _ = self
                        .updates
                        .send(RoomUpdate::Presence(self.presence.clone()))
                        .await;
                }
            }
            PRESENCE_DIFF_EVENT => {
                if let Ok(diff) = serde_json::from_value(frame.payload) {
                    self.presence.apply(diff);
                    let _ = self
                        .updates
                        .send(RoomUpdate::Presence(self.presence.clone()))
                        .await;
                }
            }
            ROOM_EVENT_EVENT => {
                if let Ok(event) = serde_json::from_value(frame.payload) {
                    self.event(event).await;
                }
            }
            control::ERROR if frame.join_ref.as_deref().is_none_or(|r| r == join_ref) => {
                return Some(Ended::Lost("the room restarted".into()));
            }
            control::CLOSE => return Some(Ended::Lost("the server closed the channel".into())),
            _ => {}
        }
        None
    }

    /// Types a voice event and hands it to the voice signaling, if any
    /// listens. A payload of the wrong shape is dropped: the server and this
    /// client disagree about the protocol, and voice can do nothing with it.
    fn voice_event<T: serde::de::DeserializeOwned>(
        &mut self,
        payload: Value,
        event: impl FnOnce(T) -> VoiceEvent,
    ) {
        let Some(voice) = &self.voice else {
            return;
        };
        match serde_json::from_value(payload) {
            Ok(typed) => {
                if let Err(mpsc::error::TrySendError::Closed(_)) = voice.try_send(event(typed)) {
                    self.voice = None;
                }
            }
            Err(error) => {
                eprintln!("voice: dropped a malformed voice event from the server: {error}")
            }
        }
    }

    fn on_binary(&mut self, bytes: &[u8]) {
        let Ok(ServerBinary::Broadcast {
            event: POSES_EVENT,
            payload,
            ..
        }) = frame::decode_server_binary(bytes)
        else {
            return;
        };
        let Ok(batch) = pose::decode_batch(payload) else {
            return;
        };
        let update = RoomUpdate::Poses {
            server_time_ms: batch.server_time_ms,
            poses: batch.iter().collect(),
        };
        // Poses are worth nothing late: drop them when the reader falls behind.
        let _ = self.updates.try_send(update);
    }
}
