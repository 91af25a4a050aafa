//! The task behind a [`super::RoomClient`]: one Phoenix v2 socket at a time,
//! reconnected with backoff, rejoined with `last_seen_id` (and the gap a
//! truncated replay leaves paged in with `history`), until the server ends
//! the membership with a reason.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use roomscale_protocol::events::{
    ClientEvent, ClosePayload, ErrorCode, ErrorReply, HistoryPage, HistoryPush, JoinPayload,
    JoinReply, POSE_EVENT, RoomEvent, RoomSummary,
};
use roomscale_protocol::frame::{self, control};
use roomscale_protocol::objects::ObjectPose;
use roomscale_protocol::pose::{AvatarPose, PoseBatchBuf};
use roomscale_protocol::server_event::{Reply, ServerEvent, ServerEventError, ServerMessage};
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
/// After a refusal that only time can lift (a locked or full room, a limit
/// on connections): wait at least this long, doubling up to the maximum, so a
/// client left running does not knock every few seconds.
const REFUSED_BACKOFF_FIRST: Duration = Duration::from_secs(15);
const REFUSED_BACKOFF_MAX: Duration = Duration::from_secs(120);
/// How often a rejoin asks again for a history page the room was too busy
/// to read, waiting a little longer each time.
const HISTORY_BUSY_RETRIES: u32 = 8;
const HISTORY_BUSY_WAIT: Duration = Duration::from_millis(100);

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
    /// Pushes asked for while reconnecting, sent once joined again.
    queued: Vec<(ClientEvent, Awaiting)>,
}

/// What the frame loop wants sent in pose pushes: the avatar's pose and
/// the poses of the objects it holds or throws, latest only.
pub struct PoseSource {
    pub avatar: watch::Receiver<Option<AvatarPose>>,
    pub objects: watch::Receiver<Vec<ObjectPose>>,
}

/// How one connection ended.
enum Ended {
    Left(oneshot::Sender<()>),
    Lost(String),
    /// The server ended the membership for good (removed, room deleted).
    Closed(ClosePayload),
    /// The caller dropped the client.
    Dropped,
}

/// Why a join did not happen.
#[derive(Debug)]
enum JoinFailure {
    /// The server answered the join with a refusal.
    Refused(ErrorReply),
    /// No answer: unreachable, dropped, malformed.
    Failed(ClientError),
}

impl From<ClientError> for JoinFailure {
    fn from(error: ClientError) -> Self {
        JoinFailure::Failed(error)
    }
}

impl From<JoinFailure> for ClientError {
    fn from(failure: JoinFailure) -> Self {
        match failure {
            JoinFailure::Refused(ErrorReply { code, reason, .. }) => ClientError::Refused {
                code: code.as_str().to_string(),
                reason,
            },
            JoinFailure::Failed(error) => error,
        }
    }
}

/// What to do after a rejoin failed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Retry {
    /// A network failure: again soon, with the usual backoff.
    Soon,
    /// A refusal that may pass (locked, full, a limit): again, but slowly.
    Slowly,
    /// A refusal that waiting will not fix: stop.
    Never,
}

/// How a rejoin refused with `code` is retried.
fn retry_after_refusal(code: ErrorCode) -> Retry {
    match code {
        ErrorCode::RoomLocked
        | ErrorCode::RoomFull
        | ErrorCode::LimitReached
        | ErrorCode::RateLimited
        | ErrorCode::Internal => Retry::Slowly,
        ErrorCode::Removed
        | ErrorCode::RoomDeleted
        | ErrorCode::RoomNotFound
        | ErrorCode::UnsupportedVersion
        | ErrorCode::Forbidden => Retry::Never,
        // Refusals of a join this client should not have sent: trying the
        // same join again gets the same answer, but slowly costs little.
        ErrorCode::UnknownTopic
        | ErrorCode::UnknownEvent
        | ErrorCode::InvalidPayload
        | ErrorCode::NotJoined
        | ErrorCode::AlreadyJoined
        | ErrorCode::ObjectHeld
        | ErrorCode::ObjectNotFound
        | ErrorCode::TooLarge
        | ErrorCode::VoiceUnavailable => Retry::Slowly,
    }
}

/// How a rejoin that got no answer is retried: HTTP refusals of the upgrade
/// (too many sockets, a limit on the address) slowly, network failures soon.
fn retry_after_failure(error: &ClientError) -> Retry {
    match error {
        ClientError::Http { status, .. } if (400..600).contains(status) => Retry::Slowly,
        _ => Retry::Soon,
    }
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
            queued: Vec::new(),
        }
    }

    pub async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        pose: PoseSource,
        joined: Joined,
    ) {
        let mut joined = Some(joined);
        let mut backoff = BACKOFF_FIRST;
        let mut pose_sender = PoseSender::default();
        loop {
            let (ended, retry) = match self.connect_and_join().await {
                Ok((mut socket, join_ref, reply, held)) => {
                    backoff = BACKOFF_FIRST;
                    self.joined(reply, joined.take()).await;
                    // The membership just joined has heard no pose of ours,
                    // so the latest goes out even if it did not change.
                    pose_sender.rejoined();
                    let ended = self
                        .serve(
                            &mut socket,
                            &join_ref,
                            held,
                            &mut commands,
                            &pose,
                            &mut pose_sender,
                        )
                        .await;
                    (ended, Retry::Soon)
                }
                // The first join's refusal is final: the caller hears why.
                Err(failure) if joined.is_some() => {
                    let _ = joined.take().expect("checked").send(Err(failure.into()));
                    return;
                }
                Err(JoinFailure::Refused(refusal)) => match retry_after_refusal(refusal.code) {
                    Retry::Never => (Ended::Closed(refusal), Retry::Never),
                    retry => (
                        Ended::Lost(format!(
                            "the server refused to take this client back: {}",
                            refusal.reason
                        )),
                        retry,
                    ),
                },
                Err(JoinFailure::Failed(error)) => {
                    let retry = retry_after_failure(&error);
                    (Ended::Lost(error.to_string()), retry)
                }
            };
            match ended {
                Ended::Left(done) => {
                    let _ = done.send(());
                    return;
                }
                Ended::Dropped => return,
                Ended::Closed(why) => {
                    for (_, awaiting) in self.queued.drain(..) {
                        awaiting.answer(Err(ClientError::Closed));
                    }
                    let _ = self.updates.send(RoomUpdate::Closed(why)).await;
                    return;
                }
                Ended::Lost(reason) => {
                    if retry == Retry::Slowly {
                        backoff = backoff.max(REFUSED_BACKOFF_FIRST);
                    }
                    let _ = self
                        .updates
                        .send(RoomUpdate::ConnectionLost { reason })
                        .await;
                    // Leaving while waiting to reconnect is heard at once.
                    let wait = tokio::time::sleep(backoff);
                    tokio::pin!(wait);
                    loop {
                        tokio::select! {
                            _ = &mut wait => break,
                            command = commands.recv() => match command {
                                Some(Command::Leave { done }) => {
                                    let _ = done.send(());
                                    return;
                                }
                                None => return,
                                Some(Command::SubscribeVoice(events)) => self.voice = Some(events),
                                // Sent once joined again.
                                Some(Command::Push { event, awaiting }) => {
                                    self.queued.push((event, awaiting));
                                }
                            },
                        }
                    }
                    let most = if retry == Retry::Slowly {
                        REFUSED_BACKOFF_MAX
                    } else {
                        BACKOFF_MAX
                    };
                    backoff = (backoff * 2).min(most);
                }
            }
        }
    }

    fn next_ref(&mut self) -> String {
        self.next_ref += 1;
        self.next_ref.to_string()
    }

    /// Connects and joins; for a rejoin whose replay was truncated, pages in
    /// the gap too. Returns the socket, the join's ref, the reply (its events
    /// the whole gap, oldest first) and the frames that arrived while the gap
    /// was paged in, for [`Self::serve`] to handle first.
    async fn connect_and_join(
        &mut self,
    ) -> Result<(Socket, String, JoinReply, Vec<String>), JoinFailure> {
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
                        return Err(JoinFailure::Failed(ClientError::Protocol(format!(
                            "the server closed the socket: {close:?}"
                        ))));
                    }
                    None | Some(Err(_)) => {
                        return Err(JoinFailure::Failed(ClientError::ConnectionLost));
                    }
                    _ => continue,
                }
            };
            // Before the join is answered nothing else concerns this client.
            let Ok(ServerMessage {
                event: ServerEvent::Reply(reply),
                ..
            }) = ServerMessage::decode_text(&text)
            else {
                continue;
            };
            if reply.msg_ref != join_ref {
                continue;
            }
            let mut reply = match reply.read::<JoinReply>() {
                Ok(Ok(reply)) => reply,
                Ok(Err(refusal)) => return Err(JoinFailure::Refused(refusal)),
                Err(malformed) => {
                    return Err(JoinFailure::Failed(ClientError::Protocol(
                        malformed.to_string(),
                    )));
                }
            };
            let mut held = Vec::new();
            if let Some(seen) = self.last_seen_id
                && reply.truncated
            {
                let missed = self
                    .missed_before(&mut socket, &join_ref, seen, &reply, &mut held)
                    .await?;
                reply.events.splice(0..0, missed);
                reply.truncated = false;
            }
            return Ok((socket, join_ref, reply, held));
        }
    }

    /// The events after `seen` that a rejoin's truncated replay left out,
    /// oldest first: paged back with `history` from the first replayed event
    /// until a page reaches `seen` or the start of the room's history. Other
    /// frames arriving meanwhile go to `held`, in order.
    async fn missed_before(
        &mut self,
        socket: &mut Socket,
        join_ref: &str,
        seen: u64,
        reply: &JoinReply,
        held: &mut Vec<String>,
    ) -> Result<Vec<RoomEvent>, ClientError> {
        let mut before = reply.events.first().map_or(u64::MAX, |e| e.id);
        let mut missed: Vec<RoomEvent> = Vec::new();
        let mut busy_answers = 0;
        loop {
            let msg_ref = self.next_ref();
            let push = ClientEvent::History(HistoryPush { before_id: before });
            let frame = frame::encode_text_parts(
                Some(join_ref),
                Some(&msg_ref),
                &self.topic,
                push.name(),
                &push.payload(),
            );
            socket
                .send(Message::text(frame))
                .await
                .map_err(|_| ClientError::ConnectionLost)?;
            let reply = self.reply_to(socket, &msg_ref, held).await?;
            let page: HistoryPage = match super::typed(Ok(reply)) {
                // The room reads history for a few members at a time (after
                // a restart everyone rejoins at once): ask again shortly
                // rather than dropping the join and starting over.
                Err(ClientError::Refused { code, .. })
                    if code == ErrorCode::RateLimited.as_str()
                        && busy_answers < HISTORY_BUSY_RETRIES =>
                {
                    busy_answers += 1;
                    tokio::time::sleep(HISTORY_BUSY_WAIT * busy_answers).await;
                    continue;
                }
                other => other?,
            };
            let more = page.more;
            let Some(oldest) = page.events.first().map(|e| e.id) else {
                break;
            };
            let page: Vec<RoomEvent> = page
                .events
                .into_iter()
                .filter(|e| e.id > seen && e.id < before)
                .collect();
            missed.splice(0..0, page);
            if !more || oldest <= seen || oldest >= before {
                break;
            }
            before = oldest;
        }
        Ok(missed)
    }

    /// Waits for the reply to `msg_ref`; frames of this topic that come
    /// first go to `held`, pose batches are dropped (they are worth nothing late).
    async fn reply_to(
        &self,
        socket: &mut Socket,
        msg_ref: &str,
        held: &mut Vec<String>,
    ) -> Result<Reply, ClientError> {
        let deadline = Instant::now() + JOIN_TIMEOUT;
        loop {
            let message = tokio::time::timeout_at(deadline, socket.next())
                .await
                .map_err(|_| {
                    ClientError::Protocol("no answer to a history request within 10 s".into())
                })?;
            let text = match message {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    return Err(ClientError::ConnectionLost);
                }
                Some(Ok(_)) => continue,
            };
            let Ok(frame) = frame::decode_text(&text) else {
                return Err(ClientError::Protocol(
                    "the server sent a malformed frame".into(),
                ));
            };
            let answers_this =
                frame.event == control::REPLY && frame.msg_ref.as_deref() == Some(msg_ref);
            match ServerEvent::parse_text(&frame) {
                Ok(ServerEvent::Reply(reply)) if answers_this => return Ok(reply),
                Err(error) if answers_this => {
                    return Err(ClientError::Protocol(error.to_string()));
                }
                // Everything else is served once the gap is filled.
                _ => held.push(text.to_string()),
            }
        }
    }

    /// Takes in a successful join: the slot first, so that whoever hears of
    /// the join reads the new slot; then the first join's answer, or a
    /// rejoin's [`RoomUpdate::Joined`]; then the events the join replayed.
    async fn joined(&mut self, reply: JoinReply, first: Option<Joined>) {
        self.slot.send_replace(reply.slot);
        let first_join = first.is_some();
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
        let _ = self
            .updates
            .send(RoomUpdate::Governance(reply.governance))
            .await;
        if first_join {
            // Older history is the consumer's to fetch, on demand.
            if reply.truncated
                && let Some(first_event) = reply.events.first()
            {
                let _ = self
                    .updates
                    .send(RoomUpdate::OlderHistory {
                        before_id: first_event.id,
                    })
                    .await;
            }
            // From now on every later event is new: a rejoin asks for all
            // of them even if this join replayed none.
            self.last_seen_id.get_or_insert(0);
        }
        for event in reply.events {
            self.event(event).await;
        }
        // After the replay: its object_set events are history, the
        // snapshot is what is true now.
        let _ = self.updates.send(RoomUpdate::Objects(reply.objects)).await;
    }

    /// Passes on an event unless it was seen already (a replay overlapping a broadcast).
    async fn event(&mut self, event: RoomEvent) {
        if self.last_seen_id.is_some_and(|seen| event.id <= seen) {
            return;
        }
        self.last_seen_id = Some(event.id);
        let _ = self.updates.send(RoomUpdate::Event(event)).await;
    }

    /// Serves one joined connection until it ends: `held` frames (those that
    /// came while a gap was paged in) first, then the pushes queued while
    /// reconnecting, then whatever comes.
    async fn serve(
        &mut self,
        socket: &mut Socket,
        join_ref: &str,
        held: Vec<String>,
        commands: &mut mpsc::Receiver<Command>,
        pose: &PoseSource,
        pose_sender: &mut PoseSender,
    ) -> Ended {
        let mut heartbeat =
            tokio::time::interval_at(Instant::now() + HEARTBEAT_EVERY, HEARTBEAT_EVERY);
        let mut pose_tick = tokio::time::interval(pose_sender.period());
        pose_tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut pending: HashMap<String, Awaiting> = HashMap::new();
        let mut outgoing = Vec::new();
        let mut ended_early = None;
        for text in held {
            if let Some(ended) = self.on_text(&text, join_ref, &mut pending).await {
                ended_early = Some(ended);
                break;
            }
        }
        for (event, awaiting) in std::mem::take(&mut self.queued) {
            let msg_ref = self.next_ref();
            outgoing.push(Message::text(frame::encode_text_parts(
                Some(join_ref),
                Some(&msg_ref),
                &self.topic,
                event.name(),
                &event.payload(),
            )));
            pending.insert(msg_ref, awaiting);
        }
        let ended = loop {
            if let Some(ended) = ended_early.take() {
                break ended;
            }
            for message in outgoing.drain(..) {
                if socket.feed(message).await.is_err() {
                    break;
                }
            }
            if let Err(error) = socket.flush().await {
                break Ended::Lost(error.to_string());
            }
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
                    if let Some(current) = *pose.avatar.borrow() {
                        pose_sender.offer(&current);
                    }
                    pose_sender.offer_objects(&pose.objects.borrow());
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
        };
        if let Ended::Closed(_) = ended {
            // The server ended the membership; nothing more goes on this socket.
            let _ = socket.close(None).await;
        }
        let unanswered = match ended {
            Ended::Closed(_) => ClientError::Closed,
            _ => ClientError::ConnectionLost,
        };
        for (_, awaiting) in pending.drain() {
            awaiting.answer(Err(unanswered.clone()));
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
        let event = match ServerEvent::parse_text(&frame) {
            Ok(event) => event,
            Err(error) => return self.on_malformed(&frame, error, pending),
        };
        match event {
            ServerEvent::Reply(reply) => {
                let awaiting = pending.remove(&reply.msg_ref)?;
                awaiting.answer(Ok(reply));
            }
            ServerEvent::RtcOffer(offer) => self.voice_event(VoiceEvent::Offer(offer)),
            ServerEvent::VoiceTracks(tracks) => self.voice_event(VoiceEvent::Tracks(tracks)),
            ServerEvent::RtcIce(candidate) => self.voice_event(VoiceEvent::Ice(candidate)),
            ServerEvent::Speaking(speaking) => self.voice_event(VoiceEvent::Speaking(speaking)),
            ServerEvent::PresenceState(state) => {
                self.presence.replace(state);
                let _ = self
                    .updates
                    .send(RoomUpdate::Presence(self.presence.clone()))
                    .await;
            }
            ServerEvent::PresenceDiff(diff) => {
                self.presence.apply(diff);
                let _ = self
                    .updates
                    .send(RoomUpdate::Presence(self.presence.clone()))
                    .await;
            }
            ServerEvent::Event(event) => self.event(event).await,
            ServerEvent::ChannelError
                if frame.join_ref.as_deref().is_none_or(|r| r == join_ref) =>
            {
                return Some(Ended::Lost("the room restarted".into()));
            }
            ServerEvent::Moderation(notice) => {
                let _ = self.updates.send(RoomUpdate::Moderation(notice)).await;
            }
            // A close with a reason ends the membership for good; one without
            // (an older server) is a lost connection.
            ServerEvent::ChannelClose(Some(why)) => return Some(Ended::Closed(why)),
            ServerEvent::ChannelClose(None) => {
                return Some(Ended::Lost("the server closed the channel".into()));
            }
            // Pose batches come binary; an error for another join is stale.
            ServerEvent::Poses(_) | ServerEvent::ChannelError => {}
            ServerEvent::ObjectHolder(holder) => {
                let _ = self.updates.send(RoomUpdate::ObjectHolder(holder)).await;
            }
        }
        None
    }

    /// A frame for this room that did not read as its event should: the
    /// server and this client disagree about the protocol. A reply still
    /// answers its push (with why it is unreadable) and a close still ends
    /// the channel; anything else is dropped, since nothing can act on it.
    fn on_malformed(
        &mut self,
        frame: &frame::TextFrame,
        error: ServerEventError,
        pending: &mut HashMap<String, Awaiting>,
    ) -> Option<Ended> {
        match frame.event.as_str() {
            control::REPLY => {
                let awaiting = frame.msg_ref.as_deref().and_then(|r| pending.remove(r))?;
                awaiting.answer(Err(ClientError::Protocol(error.to_string())));
            }
            control::CLOSE => return Some(Ended::Lost("the server closed the channel".into())),
            // A newer server may send events this client does not know yet.
            _ if matches!(error, ServerEventError::UnknownEvent(_)) => {}
            _ => eprintln!("room: dropped a message from the server: {error}"),
        }
        None
    }

    /// Hands a voice event to the voice signaling, if any listens.
    fn voice_event(&mut self, event: VoiceEvent) {
        let Some(voice) = &self.voice else {
            return;
        };
        if let Err(mpsc::error::TrySendError::Closed(_)) = voice.try_send(event) {
            self.voice = None;
        }
    }

    fn on_binary(&mut self, bytes: &[u8]) {
        let message = match ServerMessage::decode_binary(bytes) {
            Ok(message) => message,
            // A binary frame this client cannot read is a pose batch it
            // cannot show: worth nothing, and the next tick brings another.
            Err(_) => return,
        };
        let ServerEvent::Poses(batch) = message.event else {
            return;
        };
        if message.topic != self.topic {
            return;
        }
        let update = others_poses(&batch, *self.slot.borrow());
        // Poses are worth nothing late: drop them when the reader falls behind.
        let _ = self.updates.try_send(update);
    }
}

/// A batch as an update, without this client's own pose: the room may share
/// one batch with every member, and a client shows its own avatar from its
/// own tracking, never from the echo.
fn others_poses(batch: &PoseBatchBuf, own_slot: u16) -> RoomUpdate {
    let batch = batch.batch();
    RoomUpdate::Poses {
        server_time_ms: batch.server_time_ms,
        poses: batch.iter().filter(|(slot, _)| *slot != own_slot).collect(),
        objects: batch.objects().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejoins_refused_for_good_stop_and_those_that_may_pass_are_retried_slowly() {
        for code in [
            ErrorCode::Removed,
            ErrorCode::RoomDeleted,
            ErrorCode::RoomNotFound,
            ErrorCode::UnsupportedVersion,
        ] {
            assert_eq!(retry_after_refusal(code), Retry::Never, "{code:?}");
        }
        for code in [
            ErrorCode::RoomLocked,
            ErrorCode::RoomFull,
            ErrorCode::LimitReached,
            ErrorCode::RateLimited,
        ] {
            assert_eq!(retry_after_refusal(code), Retry::Slowly, "{code:?}");
        }
        let refused_upgrade = ClientError::Http {
            status: 429,
            body: "too many sockets".into(),
        };
        assert_eq!(retry_after_failure(&refused_upgrade), Retry::Slowly);
        assert_eq!(
            retry_after_failure(&ClientError::ConnectionLost),
            Retry::Soon
        );
        assert!(REFUSED_BACKOFF_FIRST > BACKOFF_MAX);
    }

    #[test]
    fn a_batch_reaches_the_updates_without_this_clients_own_pose() {
        let pose_at = |x: f32| {
            let mut pose = AvatarPose::default();
            pose.head.position = [x, 1.6, 0.0];
            pose
        };
        let encoded: Vec<_> = [(1, 1.0), (2, 2.0), (3, 3.0)]
            .into_iter()
            .map(|(slot, x)| roomscale_protocol::pose::encode_pose(slot, &pose_at(x)))
            .collect();
        let batch = PoseBatchBuf::new(500, encoded.iter());
        let RoomUpdate::Poses {
            server_time_ms,
            poses,
            ..
        } = others_poses(&batch, 2)
        else {
            panic!("a pose update");
        };
        assert_eq!(server_time_ms, 500);
        let slots: Vec<u16> = poses.iter().map(|(slot, _)| *slot).collect();
        assert_eq!(slots, [1, 3], "slot 2 is this client's own");
        assert_eq!(poses[1].1.head.position, [3.0, 1.6, 0.0]);
    }

    #[test]
    fn a_refused_join_says_what_to_do() {
        // The server's reason says what to do; the client passes it on whole,
        // once.
        let reason =
            "this room is locked: its moderators let nobody new in for now; try again later";
        let refused: ClientError =
            JoinFailure::Refused(ErrorReply::new(ErrorCode::RoomLocked, reason)).into();
        assert_eq!(refused.to_string(), format!("the server refused: {reason}"));
    }
}
