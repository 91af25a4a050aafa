//! `soak`: honest rooms keep working, and the server's memory comes back
//! down, while an attacker works through the security catalogue.
//!
//! Starts the real `roomscale-server` binary (pinned to one core, one runtime
//! worker, default limits) and from this process runs, for `--duration`
//! seconds:
//! - honest traffic: `--rooms` rooms of 25 members that each send a pose at
//!   30 Hz, a chat every 3 to 8 s (recording the id each acknowledgement
//!   gives), a heartbeat every 30 s; in each room a member leaves every 20 s
//!   and rejoins a moment later with `last_seen_id`. Each room connects from
//!   its own loopback address (127.0.1.N; all of 127.0.0.0/8 reaches a server
//!   on 127.0.0.1), so per-address limits see 25 people, as a household or
//!   an office would be. Any honest socket the server closes, and any error
//!   reply to an honest push, counts as an honest member dropped or refused.
//! - an attacker from addresses of its own (127.0.0.2 to 127.0.0.7) that
//!   cycles through the catalogue until `--cooldown` seconds before the end:
//!   oversize and malformed frames, unknown events, non-canonical topics,
//!   unknown room ids, too many channels and sockets, forged and expired
//!   tokens, cross-origin upgrades, chat and heartbeat floods, a socket that
//!   joins a room with a long history and asks for its pages without ever
//!   reading, bidi and control characters, moderation by a non-owner, room
//!   and token floods over HTTP, cross-site forms and strangers editing a
//!   room. It assumes no particular answer: it counts how each attack was
//!   answered and prints that table. The cooldown is a quarter of the run,
//!   at most 30 s, unless given.
//!
//! The server's RSS (VmRSS) is sampled every second. Start is taken once the
//! honest members are in, before the first attack; end after the attacker has
//! been quiet for the cooldown while honest traffic went on. At the end every
//! acknowledged chat is looked up in the SQLite file the server wrote, and
//! through the protocol (the join reply and `history` pages), by id and text.
//!
//! Pass: no honest member dropped or refused, no acknowledged chat lost, the
//! server alive, and end RSS <= start x 1.5 + 64 MiB. Otherwise it exits 1.
//!
//!   soak [--duration SECS] [--rooms N] [--cooldown SECS] [--short] [--server PATH]
//!
//! `--short` is a one-minute smoke run. Environment: ROOMSCALE_SERVER_BIN
//! (server binary, default: next to this one), ROOMSCALE_LOAD_SERVER_CPU
//! (default 0).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::{SinkExt, StreamExt};
use hmac::{Hmac, KeyInit as _, Mac as _};
use roomscale_protocol::events::{
    ErrorReply, HistoryPage, JoinReply, RoomEvent, RoomEventBody, StoredReply,
};
use roomscale_protocol::frame::{self, control};
use roomscale_protocol::pose::{self, POSE_BYTES};
use roomscale_protocol::server_event::{Reply, ServerEvent, ServerMessage};
use roomscale_tests::load::{self, Histogram};
use roomscale_tests::process::{self, Server};
use roomscale_tests::soak::{
    self, ChatLedger, Incoming, LedgerCheck, Outcomes, Rng, describe_refusal, describe_reply,
    read_text,
};
use serde_json::{Value, json};
use sqlx::Row as _;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

const ROOM_SIZE: usize = 25;
const POSE_PERIOD: Duration = Duration::from_nanos(1_000_000_000 / 30);
const HEARTBEAT_PERIOD: Duration = Duration::from_secs(30);
/// Each member chats once in this many milliseconds, uniformly.
const CHAT_EVERY_MS: (u64, u64) = (3_000, 8_000);
/// In each room one member leaves this often (three a minute) ...
const LEAVE_EVERY: Duration = Duration::from_secs(20);
/// ... and comes back after this many milliseconds, uniformly.
const REJOIN_AFTER_MS: (u64, u64) = (500, 2_000);
/// How long a reply may take before the push counts as unanswered.
const REPLY_WAIT: Duration = Duration::from_secs(5);
const JOIN_WAIT: Duration = Duration::from_secs(15);
/// No attack may take longer than this (the rest of the cycle goes on).
const ATTACK_LIMIT: Duration = Duration::from_secs(40);
/// How long the silent socket stays joined without reading.
const SILENT_HOLD: Duration = Duration::from_secs(10);
/// Chats of about 1,500 characters the attacker stores in its own room first,
/// so the silent socket joins a room with a long history.
const HISTORY_FILL: usize = 400;
const HISTORY_FILL_SHORT: usize = 150;
const PINNED_ENV: &str = "ROOMSCALE_SOAK";

/// The attacker's own addresses: one per kind of abuse that per-address
/// limits are meant to stop, so that one flood does not hide another.
const ATTACKER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const ATTACKER_SOCKETS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
const ATTACKER_TOKENS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);
const TOKEN_FLOOD: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 5);
const ROOM_FLOOD: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 6);
/// The owner of the room that cross-site forms and strangers go after.
const VICTIM: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 7);
const EVIL_ORIGIN: &str = "https://evil.example";

type Result<T, E = String> = std::result::Result<T, E>;
type Ws = WebSocketStream<TcpStream>;

fn honest_address(room: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 1, (room + 1) as u8)
}

fn main() -> ExitCode {
    let options = match Options::parse() {
        Ok(options) => options,
        Err(error) => {
            eprintln!("soak: {error}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime starts");
    let local = tokio::task::LocalSet::new();
    match local.block_on(&runtime, soak_run(options)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("soak: error: {error}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, Clone)]
struct Options {
    duration: Duration,
    cooldown: Option<Duration>,
    rooms: usize,
    short: bool,
    server: Option<PathBuf>,
    server_cpu: usize,
}

impl Options {
    fn parse() -> Result<Options> {
        let server_cpu = match std::env::var("ROOMSCALE_LOAD_SERVER_CPU") {
            Ok(v) => v
                .parse()
                .map_err(|_| format!("ROOMSCALE_LOAD_SERVER_CPU={v:?} is not a CPU number"))?,
            Err(_) => 0,
        };
        let mut options = Options {
            duration: Duration::from_secs(600),
            cooldown: None,
            rooms: 4,
            short: false,
            server: std::env::var_os("ROOMSCALE_SERVER_BIN").map(PathBuf::from),
            server_cpu,
        };
        let seconds = |flag: &str, v: String| -> Result<Duration> {
            v.parse::<u64>()
                .map(Duration::from_secs)
                .map_err(|_| format!("{flag} {v}: not a whole number of seconds"))
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or(format!("{arg} needs a value"));
            match arg.as_str() {
                "--duration" => options.duration = seconds("--duration", value()?)?,
                "--cooldown" => options.cooldown = Some(seconds("--cooldown", value()?)?),
                "--rooms" => {
                    let v = value()?;
                    options.rooms = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=200).contains(n))
                        .ok_or(format!("--rooms {v}: between 1 and 200"))?;
                }
                "--short" => {
                    options.short = true;
                    options.duration = Duration::from_secs(60);
                }
                "--server" => options.server = Some(value()?.into()),
                other => {
                    return Err(format!(
                        "unknown argument {other}; use --duration SECS --rooms N --cooldown SECS \
                         --short --server PATH"
                    ));
                }
            }
        }
        if options.duration < Duration::from_secs(20) {
            return Err("--duration must be at least 20 s: the attacks need time".into());
        }
        Ok(options)
    }

    /// Attack-free time at the end: long enough for memory to come back.
    fn cooldown(&self) -> Duration {
        self.cooldown
            .unwrap_or_else(|| (self.duration / 4).min(Duration::from_secs(30)))
            .min(self.duration / 2)
    }
}

// ---------------------------------------------------------------------------
// Sockets and HTTP from a chosen loopback address
// ---------------------------------------------------------------------------

/// A TCP connection to `addr` from `source`, with an optional small receive
/// buffer (the silent socket wants the server's writes to back up).
async fn tcp_from(
    source: Ipv4Addr,
    addr: SocketAddr,
    receive_buffer: Option<u32>,
) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    if let Some(bytes) = receive_buffer {
        socket.set_recv_buffer_size(bytes)?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

#[derive(Debug)]
struct HttpAnswer {
    status: u16,
    cookie: Option<String>,
    body: Vec<u8>,
}

impl HttpAnswer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

async fn http_from(
    source: Ipv4Addr,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<HttpAnswer> {
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
    {
        request.push_str("Content-Type: application/json\r\n");
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    let connect = tcp_from(source, addr, None);
    let raw = process::http_exchange(connect, method, path, &request).await?;
    let (status, body) = load::parse_http_response(&raw)
        .ok_or_else(|| format!("{method} {path}: unreadable HTTP response"))?;
    Ok(HttpAnswer {
        status,
        cookie: soak::cookies_from_response(&raw),
        body: body.to_vec(),
    })
}

/// How a WebSocket upgrade went.
enum Upgrade {
    Open(Box<Ws>),
    /// The server answered the upgrade with this HTTP status.
    Refused(u16),
    Failed(String),
}

impl Upgrade {
    fn describe(&self) -> String {
        match self {
            Upgrade::Open(_) => "upgraded".into(),
            Upgrade::Refused(status) => format!("HTTP {status}"),
            Upgrade::Failed(error) => format!("failed ({})", first_words(error)),
        }
    }
}

async fn open_socket(
    source: Ipv4Addr,
    addr: SocketAddr,
    token: &str,
    origin: Option<&str>,
    receive_buffer: Option<u32>,
) -> Upgrade {
    let url = format!("ws://{addr}/socket/websocket?vsn=2.0.0&token={token}");
    let mut request = match url.into_client_request() {
        Ok(request) => request,
        Err(error) => return Upgrade::Failed(format!("bad request: {error}")),
    };
    if let Some(origin) = origin
        && let Ok(value) = HeaderValue::from_str(origin)
    {
        request.headers_mut().insert("Origin", value);
    }
    let stream = match tcp_from(source, addr, receive_buffer).await {
        Ok(stream) => stream,
        Err(error) => return Upgrade::Failed(format!("connect from {source}: {error}")),
    };
    let config = WebSocketConfig::default().read_buffer_size(8 * 1024);
    let upgrade = tokio_tungstenite::client_async_with_config(request, stream, Some(config));
    match tokio::time::timeout(Duration::from_secs(15), upgrade).await {
        Ok(Ok((ws, _))) => Upgrade::Open(Box::new(ws)),
        Ok(Err(tungstenite::Error::Http(response))) => Upgrade::Refused(response.status().as_u16()),
        Ok(Err(error)) => Upgrade::Failed(error.to_string()),
        Err(_) => Upgrade::Failed("no upgrade within 15 s".into()),
    }
}

fn first_words(text: &str) -> String {
    text.split_whitespace()
        .take(5)
        .collect::<Vec<_>>()
        .join(" ")
}

fn join_payload(name: &str, last_seen_id: Option<u64>) -> Value {
    let mut payload = json!({
        "protocol_version": roomscale_protocol::PROTOCOL_VERSION,
        "name": name,
        "colour": "#3a7bd5",
        "client_kind": "desktop",
    });
    if let Some(id) = last_seen_id {
        payload["last_seen_id"] = json!(id);
    }
    payload
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A refusal as the server wrote it on the wire, for harms and errors.
fn refusal_json(refusal: &ErrorReply) -> Value {
    serde_json::to_value(refusal).unwrap_or(Value::Null)
}

fn describe_close_message(close: Option<&tungstenite::protocol::CloseFrame>) -> String {
    match close {
        Some(frame) => soak::describe_close(u16::from(frame.code), frame.reason.as_str()),
        None => "closed (no code)".into(),
    }
}

// ---------------------------------------------------------------------------
// What everyone shares
// ---------------------------------------------------------------------------

#[derive(Default)]
struct HonestStats {
    in_room: usize,
    joins: u64,
    rejoins: u64,
    /// Sockets the server closed or broke, joins it refused.
    dropped: u64,
    /// Error replies to honest pushes.
    refused: u64,
    chats_sent: u64,
    chats_acked: u64,
    /// Chats still without a reply when their member left or the run ended.
    unanswered: u64,
    ack_latency: Histogram,
    poses_sent: u64,
    batches_received: u64,
    /// Rejoin replies that carried an event not newer than `last_seen_id`.
    replay_not_newer: u64,
}

struct Soak {
    addr: SocketAddr,
    epoch: Instant,
    stop_honest: Cell<bool>,
    honest: RefCell<HonestStats>,
    ledger: RefCell<ChatLedger>,
    outcomes: RefCell<Outcomes>,
    /// The first few honest harms, with when and what.
    harms: RefCell<Vec<String>>,
    /// Every honest member harmed at least once.
    harmed: RefCell<std::collections::BTreeSet<String>>,
}

enum Harm {
    Dropped(String),
    Refused(String),
}

impl Soak {
    fn harm(&self, who: &str, harm: Harm) {
        let (kind, detail) = match harm {
            Harm::Dropped(detail) => {
                self.honest.borrow_mut().dropped += 1;
                ("dropped", detail)
            }
            Harm::Refused(detail) => {
                self.honest.borrow_mut().refused += 1;
                ("refused", detail)
            }
        };
        self.harmed.borrow_mut().insert(who.to_string());
        let mut harms = self.harms.borrow_mut();
        if harms.len() < 10 {
            harms.push(format!(
                "t={:.0}s {who} {kind}: {detail}",
                self.epoch.elapsed().as_secs_f64()
            ));
        }
    }

    fn record(&self, attack: &str, answer: impl Into<String>) {
        self.outcomes.borrow_mut().record(attack, answer);
    }
}

// ---------------------------------------------------------------------------
// Honest members
// ---------------------------------------------------------------------------

struct Member {
    soak: Rc<Soak>,
    room: usize,
    room_id: String,
    seat: usize,
    token: String,
    leave_now: Rc<Cell<bool>>,
    rng: RefCell<Rng>,
}

enum SessionEnd {
    Stopped,
    Left,
}

struct PendingChat {
    text: String,
    sent: Instant,
}

impl Member {
    fn who(&self) -> String {
        format!("room {} seat {}", self.room, self.seat)
    }

    fn topic(&self) -> String {
        roomscale_protocol::room_topic(&self.room_id)
    }

    async fn run(self) {
        let mut last_seen: Option<u64> = None;
        let mut rejoin = false;
        while !self.soak.stop_honest.get() {
            match self.session(&mut last_seen, rejoin).await {
                Ok(SessionEnd::Stopped) => break,
                Ok(SessionEnd::Left) => {
                    let pause = self
                        .rng
                        .borrow_mut()
                        .range(REJOIN_AFTER_MS.0, REJOIN_AFTER_MS.1);
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
                Err(harm) => {
                    self.soak.harm(&self.who(), harm);
                    // As a real client would: back off, then come back.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            rejoin = true;
        }
    }

    async fn session(&self, last_seen: &mut Option<u64>, rejoin: bool) -> Result<SessionEnd, Harm> {
        let soak = &self.soak;
        let source = honest_address(self.room);
        let mut ws = match open_socket(source, soak.addr, &self.token, None, None).await {
            Upgrade::Open(ws) => ws,
            refused => return Err(Harm::Dropped(format!("socket {}", refused.describe()))),
        };
        let topic = self.topic();
        let join_ref = "1";
        let name = format!("member {}-{}", self.room, self.seat);
        let join = frame::encode_text_parts(
            Some(join_ref),
            Some(join_ref),
            &topic,
            control::JOIN,
            &join_payload(&name, *last_seen),
        );
        ws.send(Message::text(join))
            .await
            .map_err(|e| Harm::Dropped(format!("sending the join: {e}")))?;
        let reply = tokio::time::timeout(JOIN_WAIT, async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(text))) => {
                        if let Some(Incoming::Reply { msg_ref, reply }) = read_text(text.as_str())
                            && msg_ref == join_ref
                        {
                            return Ok(reply);
                        }
                    }
                    Some(Ok(Message::Close(close))) => {
                        return Err(format!(
                            "closed on join: {}",
                            describe_close_message(close.as_ref())
                        ));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(format!("socket error on join: {e}")),
                    None => return Err("socket ended on join".into()),
                }
            }
        })
        .await
        .map_err(|_| Harm::Dropped(format!("no join reply within {JOIN_WAIT:?}")))?
        .map_err(Harm::Dropped)?;
        let joined = match reply.and_then(Reply::read::<JoinReply>) {
            Ok(Ok(joined)) => joined,
            Ok(Err(refusal)) => {
                return Err(Harm::Dropped(format!(
                    "join refused: {}",
                    refusal_json(&refusal)
                )));
            }
            Err(error) => {
                return Err(Harm::Dropped(format!("join reply unreadable: {error}")));
            }
        };
        let before = *last_seen;
        for RoomEvent { id, .. } in joined.events {
            if before.is_some_and(|seen| id <= seen) {
                soak.honest.borrow_mut().replay_not_newer += 1;
            }
            *last_seen = Some(last_seen.map_or(id, |seen| seen.max(id)));
        }
        {
            let mut stats = soak.honest.borrow_mut();
            stats.in_room += 1;
            stats.joins += 1;
            if rejoin {
                stats.rejoins += 1;
            }
        }
        let result = self.in_room(&mut ws, join_ref, last_seen).await;
        soak.honest.borrow_mut().in_room -= 1;
        result
    }

    async fn in_room(
        &self,
        ws: &mut Ws,
        join_ref: &str,
        last_seen: &mut Option<u64>,
    ) -> Result<SessionEnd, Harm> {
        let soak = &self.soak;
        let topic = self.topic();
        let mut pose_push = Vec::new();
        frame::encode_client_push(
            &mut pose_push,
            join_ref,
            "",
            &topic,
            roomscale_protocol::events::POSE_EVENT,
            &[0; POSE_BYTES],
        )
        .expect("a room topic fits");
        let pose_at = pose_push.len() - POSE_BYTES;
        let offset = Duration::from_nanos(
            self.rng
                .borrow_mut()
                .range(0, POSE_PERIOD.as_nanos() as u64),
        );
        let mut poses = tokio::time::interval_at((Instant::now() + offset).into(), POSE_PERIOD);
        poses.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut heartbeats =
            tokio::time::interval_at((Instant::now() + HEARTBEAT_PERIOD).into(), HEARTBEAT_PERIOD);
        let chat_gap = || {
            Duration::from_millis(
                self.rng
                    .borrow_mut()
                    .range(CHAT_EVERY_MS.0, CHAT_EVERY_MS.1),
            )
        };
        let chat_timer = tokio::time::sleep(chat_gap());
        tokio::pin!(chat_timer);
        let mut pending: HashMap<String, PendingChat> = HashMap::new();
        let mut next_ref: u64 = 2;
        let mut chats: u64 = 0;

        let end = loop {
            tokio::select! {
                _ = poses.tick() => {
                    if soak.stop_honest.get() {
                        break SessionEnd::Stopped;
                    }
                    if self.leave_now.replace(false) {
                        break SessionEnd::Left;
                    }
                    let t_us = soak.epoch.elapsed().as_micros() as u64;
                    pose_push[pose_at..].copy_from_slice(&pose::encode_pose(0, &load::pose_carrying_time(t_us)));
                    ws.send(Message::binary(pose_push.clone())).await
                        .map_err(|e| Harm::Dropped(format!("sending a pose: {e}")))?;
                    soak.honest.borrow_mut().poses_sent += 1;
                }
                _ = &mut chat_timer => {
                    chat_timer.as_mut().reset((Instant::now() + chat_gap()).into());
                    chats += 1;
                    let filler = "lorem ipsum dolor sit amet ".repeat(self.rng.borrow_mut().range(0, 5) as usize);
                    let text = format!("room {} seat {} chat {chats}: {filler}", self.room, self.seat);
                    let msg_ref = next_ref.to_string();
                    next_ref += 1;
                    let push = frame::encode_text_parts(Some(join_ref), Some(&msg_ref), &topic, "chat", &json!({ "text": text }));
                    ws.send(Message::text(push)).await
                        .map_err(|e| Harm::Dropped(format!("sending a chat: {e}")))?;
                    pending.insert(msg_ref, PendingChat { text, sent: Instant::now() });
                    soak.honest.borrow_mut().chats_sent += 1;
                }
                _ = heartbeats.tick() => {
                    let msg_ref = next_ref.to_string();
                    next_ref += 1;
                    let heartbeat = frame::encode_text_parts(None, Some(&msg_ref), roomscale_protocol::PHOENIX_TOPIC, control::HEARTBEAT, &json!({}));
                    ws.send(Message::text(heartbeat)).await
                        .map_err(|e| Harm::Dropped(format!("sending a heartbeat: {e}")))?;
                }
                message = ws.next() => self.on_message(message, &topic, &mut pending, last_seen)?,
            }
        };

        // Leaving: first the replies to the chats in flight (a member that has
        // left is no longer told), then as phoenix.js does.
        let drained = tokio::time::timeout(REPLY_WAIT, async {
            while !pending.is_empty() {
                let message = ws.next().await;
                self.on_message(message, &topic, &mut pending, last_seen)?;
            }
            Ok::<_, Harm>(())
        })
        .await;
        if let Ok(Err(harm)) = drained {
            return Err(harm);
        }
        let msg_ref = next_ref.to_string();
        let leave = frame::encode_text_parts(
            Some(join_ref),
            Some(&msg_ref),
            &topic,
            control::LEAVE,
            &json!({}),
        );
        ws.send(Message::text(leave))
            .await
            .map_err(|e| Harm::Dropped(format!("sending the leave: {e}")))?;
        soak.honest.borrow_mut().unanswered += pending.len() as u64;
        let _ = ws.close(None).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
        Ok(end)
    }

    fn on_message(
        &self,
        message: Option<Result<Message, tungstenite::Error>>,
        topic: &str,
        pending: &mut HashMap<String, PendingChat>,
        last_seen: &mut Option<u64>,
    ) -> Result<(), Harm> {
        let soak = &self.soak;
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Binary(bytes))) => {
                if matches!(
                    ServerMessage::decode_binary(&bytes),
                    Ok(ServerMessage {
                        event: ServerEvent::Poses(_),
                        ..
                    })
                ) {
                    soak.honest.borrow_mut().batches_received += 1;
                }
                return Ok(());
            }
            Some(Ok(Message::Close(close))) => {
                return Err(Harm::Dropped(format!(
                    "the server closed the socket: {}",
                    describe_close_message(close.as_ref())
                )));
            }
            Some(Ok(_)) => return Ok(()),
            Some(Err(error)) => return Err(Harm::Dropped(format!("socket error: {error}"))),
            None => return Err(Harm::Dropped("the socket ended".into())),
        };
        let (topic_of_frame, name, event) = match read_text(text.as_str()) {
            None => return Ok(()),
            Some(Incoming::Reply { msg_ref, reply }) => {
                let Some(chat) = pending.remove(&msg_ref) else {
                    return Ok(());
                };
                let refused = match reply.and_then(Reply::read::<StoredReply>) {
                    Ok(Ok(StoredReply { id })) => {
                        soak.ledger
                            .borrow_mut()
                            .acknowledged(&self.room_id, id, chat.text);
                        let mut stats = soak.honest.borrow_mut();
                        stats.chats_acked += 1;
                        stats
                            .ack_latency
                            .record(chat.sent.elapsed().as_micros() as u64);
                        return Ok(());
                    }
                    Ok(Err(refusal)) => format!(
                        "chat answered {}",
                        json!({ "status": "error", "response": refusal_json(&refusal) })
                    ),
                    Err(error) => format!("chat answered with an unreadable reply: {error}"),
                };
                soak.harm(&self.who(), Harm::Refused(refused));
                return Ok(());
            }
            Some(Incoming::Other { topic, name, event }) => (topic, name, event),
        };
        if topic_of_frame != topic {
            return Ok(());
        }
        match event {
            Ok(ServerEvent::Event(RoomEvent { id, .. })) => {
                *last_seen = Some(last_seen.map_or(id, |seen| seen.max(id)));
                Ok(())
            }
            // The payload as the server wrote it: `{}` for phx_error, the
            // reason (or `{}`) for phx_close.
            Ok(ServerEvent::ChannelError | ServerEvent::ChannelClose(None)) => {
                Err(Harm::Dropped(format!("{name} from the server: {{}}")))
            }
            Ok(ServerEvent::ChannelClose(Some(reason))) => Err(Harm::Dropped(format!(
                "{name} from the server: {}",
                refusal_json(&reason)
            ))),
            Err(error) if name == control::CLOSE || name == control::ERROR => Err(Harm::Dropped(
                format!("{name} from the server, unreadable: {error}"),
            )),
            _ => Ok(()),
        }
    }
}

/// Asks one member of each room to leave (and come back) every [`LEAVE_EVERY`].
async fn leave_scheduler(soak: Rc<Soak>, seats: Vec<Rc<Cell<bool>>>, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut tick = tokio::time::interval_at((Instant::now() + LEAVE_EVERY).into(), LEAVE_EVERY);
    loop {
        tick.tick().await;
        if soak.stop_honest.get() {
            return;
        }
        let seat = rng.range(0, seats.len() as u64) as usize;
        seats[seat].set(true);
    }
}

// ---------------------------------------------------------------------------
// The attacker
// ---------------------------------------------------------------------------

/// A socket token the attacker holds, with the visitor cookie that came with it.
#[derive(Debug, Clone)]
struct Stolen {
    token: String,
    user_id: String,
    cookie: Option<String>,
}

struct Attacker {
    soak: Rc<Soak>,
    rng: Rng,
    /// Tokens fetched once: [0] owns the history room, [1] to [3] join it
    /// as others, the rest open many sockets.
    tokens: Vec<Stolen>,
    history_room: String,
    /// More rooms of the attacker's, for too many channels on one socket.
    spare_rooms: Vec<String>,
    victim: Option<(String, Option<String>)>,
    secret_key: Option<Vec<u8>>,
    short: bool,
}

/// A socket the attacker drives by hand, push by push.
struct Probe {
    ws: Box<Ws>,
    next_ref: u64,
}

impl Probe {
    async fn open(soak: &Soak, source: Ipv4Addr, token: &str) -> Result<Probe, String> {
        match open_socket(source, soak.addr, token, None, None).await {
            Upgrade::Open(ws) => Ok(Probe { ws, next_ref: 1 }),
            other => Err(format!("socket {}", other.describe())),
        }
    }

    fn take_ref(&mut self) -> String {
        self.next_ref += 1;
        self.next_ref.to_string()
    }

    /// Sends a JSON push and says how it was answered.
    async fn push(
        &mut self,
        join_ref: Option<&str>,
        topic: &str,
        event: &str,
        payload: Value,
    ) -> String {
        let msg_ref = self.take_ref();
        let message = (join_ref, msg_ref.as_str(), topic, event);
        self.send_for_answer(message, &payload).await
    }

    /// Joins `topic`; returns the join ref when it was accepted, and the answer.
    async fn join(&mut self, topic: &str, name: &str) -> (Option<String>, String) {
        let join_ref = self.take_ref();
        let message = (
            Some(join_ref.as_str()),
            join_ref.as_str(),
            topic,
            control::JOIN,
        );
        let answer = self
            .send_for_answer(message, &join_payload(name, None))
            .await;
        ((answer == "ok").then_some(join_ref), answer)
    }

    /// Sends one text frame, (join ref, msg ref, topic, event) with
    /// `payload`, and says how it was answered.
    async fn send_for_answer(
        &mut self,
        (join_ref, msg_ref, topic, event): (Option<&str>, &str, &str, &str),
        payload: &Value,
    ) -> String {
        let text = frame::encode_text_parts(join_ref, Some(msg_ref), topic, event, payload);
        if let Err(error) = self.ws.send(Message::text(text)).await {
            return format!("send failed ({})", first_words(&error.to_string()));
        }
        self.answer(msg_ref, REPLY_WAIT).await
    }

    /// Reads until the reply to `msg_ref`, a close, or `wait` without one.
    async fn answer(&mut self, msg_ref: &str, wait: Duration) -> String {
        let read = async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Text(text))) => {
                        if let Some(Incoming::Reply {
                            msg_ref: answered,
                            reply,
                        }) = read_text(text.as_str())
                            && answered == msg_ref
                        {
                            return describe_reply(&reply);
                        }
                    }
                    Some(Ok(Message::Close(close))) => {
                        return describe_close_message(close.as_ref());
                    }
                    Some(Ok(_)) => {}
                    Some(Err(error)) => {
                        return format!("socket error ({})", first_words(&error.to_string()));
                    }
                    None => return "socket ended".into(),
                }
            }
        };
        tokio::time::timeout(wait, read)
            .await
            .unwrap_or_else(|_| format!("no answer in {} s", wait.as_secs()))
    }

    /// Sends a raw message and says what the server did about it: a reply, a
    /// close, or nothing.
    async fn raw(&mut self, message: Message) -> String {
        if let Err(error) = self.ws.send(message).await {
            // The server may have cut the connection mid-frame; its close
            // frame (if any) is still to be read.
            let answer = self.answer("-", Duration::from_secs(2)).await;
            return format!(
                "send failed ({}), then {answer}",
                first_words(&error.to_string())
            );
        }
        self.answer("-", Duration::from_secs(3)).await
    }
}

impl Attacker {
    fn history_topic(&self) -> String {
        roomscale_protocol::room_topic(&self.history_room)
    }

    async fn probe(&self, token: usize) -> Result<Probe, String> {
        let token = &self.tokens[token.min(self.tokens.len() - 1)].token;
        Probe::open(&self.soak, ATTACKER, token).await
    }

    /// A probe for `attack`, or `None` once why not is recorded under it.
    async fn started_probe(&self, attack: &str, token: usize) -> Option<Probe> {
        match self.probe(token).await {
            Ok(probe) => Some(probe),
            Err(error) => {
                self.soak
                    .record(attack, format!("could not start: {error}"));
                None
            }
        }
    }

    /// A probe joined to the history room, or why not (recorded under `attack`).
    async fn joined_probe(&self, attack: &str, token: usize) -> Option<(Probe, String)> {
        let mut probe = self.started_probe(attack, token).await?;
        match probe.join(&self.history_topic(), "mallory").await {
            (Some(join_ref), _) => Some((probe, join_ref)),
            (None, answer) => {
                self.soak
                    .record(attack, format!("could not join its own room: {answer}"));
                None
            }
        }
    }

    /// One pass over the catalogue.
    /// One pass over the catalogue; no attack starts after `until`.
    async fn cycle(&mut self, until: Instant) {
        let silent = tokio::task::spawn_local(silent_socket(
            self.soak.clone(),
            self.tokens[0].token.clone(),
            self.history_topic(),
            until,
        ));
        let attacks: [(&str, AttackFn); 14] = [
            ("oversize frames", |a| Box::pin(a.oversize())),
            ("malformed frames", |a| Box::pin(a.malformed())),
            ("unknown events", |a| Box::pin(a.unknown_events())),
            ("topics", |a| Box::pin(a.topics())),
            ("channels", |a| Box::pin(a.channels())),
            ("chat flood", |a| Box::pin(a.chat_flood())),
            ("heartbeat flood", |a| Box::pin(a.heartbeat_flood())),
            ("many sockets", |a| Box::pin(a.many_sockets())),
            ("tokens", |a| Box::pin(a.bad_tokens())),
            ("bidi and control characters", |a| {
                Box::pin(a.invisible_characters())
            }),
            ("moderation by a non-owner", |a| Box::pin(a.moderation())),
            ("token flood", |a| Box::pin(a.token_flood())),
            ("room flood", |a| Box::pin(a.room_flood())),
            ("cross-site and stranger edits", |a| {
                Box::pin(a.cross_site())
            }),
        ];
        for (name, attack) in attacks {
            if Instant::now() >= until {
                break;
            }
            if tokio::time::timeout(ATTACK_LIMIT, attack(self))
                .await
                .is_err()
            {
                self.soak.record(
                    name,
                    format!("did not finish in {} s", ATTACK_LIMIT.as_secs()),
                );
            }
        }
        let _ = silent.await;
    }

    /// Sends each case's frame on a fresh probe and records what came back.
    async fn raw_frames(&self, cases: impl IntoIterator<Item = (&str, Message)>) {
        for (attack, message) in cases {
            if let Some(mut probe) = self.started_probe(attack, 3).await {
                let answer = probe.raw(message).await;
                self.soak.record(attack, answer);
            }
        }
    }

    async fn oversize(&mut self) {
        let cases: [(&str, Message); 3] = [
            (
                "oversize text frame (70 KB)",
                Message::text(frame::encode_text_parts(
                    None,
                    Some("1"),
                    roomscale_protocol::PHOENIX_TOPIC,
                    control::HEARTBEAT,
                    &json!({ "pad": "x".repeat(70_000) }),
                )),
            ),
            (
                "oversize binary frame (200 KB)",
                Message::binary(vec![0u8; 200_000]),
            ),
            (
                "frame past the WebSocket limit (4 MiB)",
                Message::text("y".repeat(4 * 1024 * 1024)),
            ),
        ];
        self.raw_frames(cases).await;
    }

    async fn malformed(&mut self) {
        let cases: [(&str, Message); 4] = [
            (
                "malformed text frame (not JSON)",
                Message::text("not a frame at all"),
            ),
            (
                "malformed text frame (wrong shape)",
                Message::text(r#"{"event":"phx_join"}"#),
            ),
            (
                "malformed binary frame",
                Message::binary(vec![0xff, 3, 1, 2, 3]),
            ),
            (
                "binary frame with lying lengths",
                Message::binary(vec![0, 200, 200, 200, 200, 1]),
            ),
        ];
        self.raw_frames(cases).await;
    }

    async fn unknown_events(&mut self) {
        let Some((mut probe, join_ref)) = self.joined_probe("unknown events", 1).await else {
            return;
        };
        let topic = self.history_topic();
        let answer = probe
            .push(Some(&join_ref), &topic, "explode", json!({}))
            .await;
        self.soak.record("unknown event on a room", answer);
        let answer = probe
            .push(
                None,
                roomscale_protocol::PHOENIX_TOPIC,
                "explode",
                json!({}),
            )
            .await;
        self.soak
            .record("unknown event on the phoenix topic", answer);
        let answer = probe
            .push(
                Some(&join_ref),
                &topic,
                "chat",
                json!({ "text": "hi", "admin": true }),
            )
            .await;
        self.soak.record("push with an unknown field", answer);
        let mut binary = Vec::new();
        let msg_ref = probe.take_ref();
        frame::encode_client_push(
            &mut binary,
            &join_ref,
            &msg_ref,
            &topic,
            "boom",
            &[0; POSE_BYTES],
        )
        .expect("fits");
        let _ = probe.ws.send(Message::binary(binary)).await;
        let answer = probe.answer(&msg_ref, REPLY_WAIT).await;
        self.soak.record("unknown binary event", answer);
        let answer = probe
            .push(
                Some(&join_ref),
                "rooms:lobby",
                "chat",
                json!({ "text": "hi" }),
            )
            .await;
        self.soak.record("push to an unknown topic", answer);
    }

    async fn topics(&mut self) {
        let Some(mut probe) = self.started_probe("topics", 1).await else {
            return;
        };
        for (spelling, topic) in soak::non_canonical_topics(&self.history_room) {
            let (_, answer) = probe.join(&topic, "mallory").await;
            self.soak
                .record(&format!("join by a {spelling} topic"), answer);
        }
        let unknown = if self.short { 10 } else { 20 };
        for _ in 0..unknown {
            let topic = roomscale_protocol::room_topic(&soak::random_uuid(&mut self.rng));
            let (_, answer) = probe.join(&topic, "mallory").await;
            self.soak.record("join of an unknown room id", answer);
        }
    }

    async fn channels(&mut self) {
        let Some(mut probe) = self.started_probe("channels", 2).await else {
            return;
        };
        let mut rooms = vec![self.history_room.clone()];
        rooms.extend(self.spare_rooms.iter().cloned());
        for (n, room) in rooms.iter().enumerate() {
            let (_, answer) = probe
                .join(&roomscale_protocol::room_topic(room), "mallory")
                .await;
            let attack = if n < 4 {
                "channels on one socket: 1st to 4th"
            } else {
                "channels on one socket: 5th and later"
            };
            self.soak.record(attack, answer);
        }
        let (_, answer) = probe.join(&self.history_topic(), "mallory twice").await;
        self.soak
            .record("the same room twice on one socket", answer);
    }

    /// Sends `count` copies of one push (join ref, topic, event, payload)
    /// without waiting, then records under `attack` how each was answered.
    async fn flood(
        &self,
        probe: &mut Probe,
        attack: &str,
        count: usize,
        (join_ref, topic, event, payload): (Option<&str>, &str, &str, Value),
    ) {
        let mut refs = Vec::with_capacity(count);
        let mut send_error = None;
        for _ in 0..count {
            let msg_ref = probe.take_ref();
            let push = frame::encode_text_parts(join_ref, Some(&msg_ref), topic, event, &payload);
            if let Err(error) = probe.ws.send(Message::text(push)).await {
                send_error = Some(error.to_string());
                break;
            }
            refs.push(msg_ref);
        }
        let answers = tally_replies(probe, &refs, send_error).await;
        let mut outcomes = self.soak.outcomes.borrow_mut();
        for (answer, n) in answers {
            outcomes.add(attack, answer, n);
        }
    }

    async fn chat_flood(&mut self) {
        let Some((mut probe, join_ref)) = self.joined_probe("chat flood", 1).await else {
            return;
        };
        let topic = self.history_topic();
        let count = if self.short { 200 } else { 400 };
        let chat = json!({ "text": "flood ".repeat(160) });
        let attack = format!("chat flood ({count} pushes at once)");
        let push = (Some(join_ref.as_str()), topic.as_str(), "chat", chat);
        self.flood(&mut probe, &attack, count, push).await;
    }

    async fn heartbeat_flood(&mut self) {
        let Some(mut probe) = self.started_probe("heartbeat flood", 3).await else {
            return;
        };
        let count = if self.short { 300 } else { 1000 };
        let beat = json!({ "pad": "h".repeat(58_000) });
        let attack = format!("heartbeat flood ({count} x 58 KB)");
        let push = (
            None,
            roomscale_protocol::PHOENIX_TOPIC,
            control::HEARTBEAT,
            beat,
        );
        self.flood(&mut probe, &attack, count, push).await;
    }

    /// The tokens the many-socket attacks use: all but the first four (which
    /// the other attacks use) and the last, and the last.
    fn many_sockets_tokens(&self) -> (&[Stolen], &Stolen) {
        let (visitor, rest) = self.tokens.split_last().expect("setup got tokens");
        (&rest[4.min(rest.len() - 1)..], visitor)
    }

    async fn many_sockets(&mut self) {
        // Many sockets from one address, spread over several visitors so
        // that the per-visitor limit does not answer first.
        let mut open = Vec::new();
        let count = if self.short { 70 } else { 90 };
        let (pool, visitor) = self.many_sockets_tokens();
        for n in 0..count {
            let token = &pool[n % pool.len()].token;
            let upgrade = open_socket(ATTACKER_SOCKETS, self.soak.addr, token, None, None).await;
            self.soak.record(
                &format!("{count} sockets from one address"),
                upgrade.describe(),
            );
            if let Upgrade::Open(ws) = upgrade {
                open.push(ws);
            }
        }
        // Many sockets of one visitor, from the attacker's main address.
        for _ in 0..12 {
            let upgrade = open_socket(ATTACKER, self.soak.addr, &visitor.token, None, None).await;
            self.soak
                .record("12 sockets of one visitor", upgrade.describe());
            if let Upgrade::Open(ws) = upgrade {
                open.push(ws);
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        for mut ws in open {
            let _ = WebSocketStream::close(&mut *ws, None).await;
        }
    }

    async fn bad_tokens(&mut self) {
        let genuine = self.tokens[1].clone();
        let mut cases: Vec<(&str, String)> = vec![
            ("token: garbage", "not-a-token".into()),
            ("token: none", String::new()),
            (
                "token: signature altered",
                soak::token_with_bad_signature(&genuine.token),
            ),
        ];
        // The same signature over claims naming another user.
        if let Some((_, signature)) = genuine.token.split_once('.') {
            let claims = URL_SAFE_NO_PAD.encode(soak::token_claims_json(
                &self.tokens[0].user_id,
                unix_ms() + 3_600_000,
            ));
            cases.push(("token: claims swapped", format!("{claims}.{signature}")));
        }
        // Expired, and signed with the server's own key: only the expiry is wrong.
        if let Some(key) = &self.secret_key {
            let claims = URL_SAFE_NO_PAD.encode(soak::token_claims_json(
                &genuine.user_id,
                unix_ms() - 60_000,
            ));
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
            mac.update(b"roomscale socket token v1\0");
            mac.update(claims.as_bytes());
            let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
            cases.push((
                "token: expired (signed with the server's key)",
                format!("{claims}.{signature}"),
            ));
        }
        for (attack, token) in cases {
            let upgrade = open_socket(ATTACKER, self.soak.addr, &token, None, None).await;
            self.soak.record(attack, upgrade.describe());
        }
        for (attack, origin) in [
            (
                "cross-origin upgrade (Origin: https://evil.example)",
                EVIL_ORIGIN,
            ),
            ("cross-origin upgrade (Origin: null)", "null"),
        ] {
            let upgrade =
                open_socket(ATTACKER, self.soak.addr, &genuine.token, Some(origin), None).await;
            self.soak.record(attack, upgrade.describe());
        }
    }

    async fn invisible_characters(&mut self) {
        match http_from(
            ATTACKER,
            self.soak.addr,
            "POST",
            "/api/session",
            &[],
            &json!({ "name": "admin\u{202E}txt.exe" }).to_string(),
        )
        .await
        {
            Ok(answer) => self.soak.record(
                "session name with a bidi override",
                format!("HTTP {}", answer.status),
            ),
            Err(error) => self.soak.record(
                "session name with a bidi override",
                format!("failed ({})", first_words(&error)),
            ),
        }
        let Some(mut probe) = self.started_probe("bidi and control characters", 2).await else {
            return;
        };
        let (_, answer) = probe.join(&self.history_topic(), "ad\u{202E}nim").await;
        self.soak.record("join name with a bidi override", answer);
        let (join_ref, answer) = probe.join(&self.history_topic(), "mallory").await;
        let Some(join_ref) = join_ref else {
            return self.soak.record(
                "bidi and control characters",
                format!("could not join its own room: {answer}"),
            );
        };
        let topic = self.history_topic();
        for (attack, payload, event) in [
            (
                "chat with a bidi override",
                json!({ "text": "see \u{202E}gnp.exe" }),
                "chat",
            ),
            (
                "chat with control characters",
                json!({ "text": "bell\u{0007}\u{001b}[2J" }),
                "chat",
            ),
            (
                "profile name with a zero-width character",
                json!({ "name": "ma\u{200B}llory" }),
                "update_profile",
            ),
        ] {
            let answer = probe.push(Some(&join_ref), &topic, event, payload).await;
            self.soak.record(attack, answer);
        }
    }

    async fn moderation(&mut self) {
        let Some((mut probe, join_ref)) = self.joined_probe("moderation by a non-owner", 2).await
        else {
            return;
        };
        let topic = self.history_topic();
        let owner = self.tokens[0].user_id.clone();
        let me = self.tokens[2].user_id.clone();
        for (attack, payload) in [
            (
                "moderation by a non-owner: remove the owner",
                json!({ "action": "remove", "user_id": owner }),
            ),
            (
                "moderation by a non-owner: mute the owner",
                json!({ "action": "mute", "user_id": owner, "muted": true }),
            ),
            (
                "moderation by a non-owner: name itself moderator",
                json!({ "action": "moderator", "user_id": me, "moderator": true }),
            ),
            (
                "moderation by a non-owner: lock the room",
                json!({ "action": "lock", "locked": true }),
            ),
        ] {
            let answer = probe
                .push(Some(&join_ref), &topic, "moderate", payload)
                .await;
            self.soak.record(attack, answer);
        }
    }

    async fn token_flood(&mut self) {
        let count = if self.short { 40 } else { 60 };
        for _ in 0..count {
            let answer =
                http_from(TOKEN_FLOOD, self.soak.addr, "POST", "/api/session", &[], "").await;
            self.soak.record(
                &format!("token flood ({count} requests)"),
                http_outcome(&answer),
            );
        }
    }

    async fn room_flood(&mut self) {
        let count = if self.short { 40 } else { 50 };
        for n in 0..count {
            let body = json!({ "name": format!("flood {n}"), "description": "" }).to_string();
            let answer =
                http_from(ROOM_FLOOD, self.soak.addr, "POST", "/api/rooms", &[], &body).await;
            self.soak.record(
                &format!("room creation flood ({count} requests)"),
                http_outcome(&answer),
            );
        }
        let answer = http_from(ROOM_FLOOD, self.soak.addr, "GET", "/api/rooms", &[], "").await;
        let size = answer.as_ref().map_or(0, |a| a.body.len());
        self.soak.record(
            "room list after the floods",
            format!(
                "{} ({})",
                http_outcome(&answer),
                if size > 256 * 1024 {
                    "over 256 KiB"
                } else {
                    "under 256 KiB"
                }
            ),
        );
    }

    async fn cross_site(&mut self) {
        let addr = self.soak.addr;
        if self.victim.is_none() {
            self.victim = create_victim_room(addr).await.ok();
        }
        let Some((room, cookie)) = self.victim.clone() else {
            return self.soak.record(
                "cross-site and stranger edits",
                "could not create the victim room",
            );
        };
        let cookie = cookie.unwrap_or_default();
        let cross_site = [
            ("Origin", EVIL_ORIGIN),
            ("Sec-Fetch-Site", "cross-site"),
            ("Cookie", cookie.as_str()),
        ];
        let form = [("Content-Type", "application/x-www-form-urlencoded")];
        let with = |extra: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
            cross_site
                .iter()
                .chain(extra)
                .map(|(k, v)| (*k, v.to_string()))
                .collect()
        };
        let requests: Vec<HostileRequest> = vec![
            (
                "cross-site form: create a room",
                "POST",
                "/rooms/new".into(),
                with(&form),
                "name=evil&description=".into(),
            ),
            (
                "cross-site form: rename a room",
                "POST",
                format!("/rooms/{room}/edit"),
                with(&form),
                "name=pwned&description=".into(),
            ),
            (
                "cross-site form: delete a room",
                "POST",
                format!("/rooms/{room}/delete"),
                with(&form),
                String::new(),
            ),
            (
                "cross-site JSON: create a room",
                "POST",
                "/api/rooms".into(),
                with(&[]),
                json!({ "name": "evil", "description": "" }).to_string(),
            ),
            (
                "stranger renames a room (API)",
                "PUT",
                format!("/api/rooms/{room}"),
                Vec::new(),
                json!({ "name": "pwned", "description": "" }).to_string(),
            ),
            (
                "stranger deletes a room (API)",
                "DELETE",
                format!("/api/rooms/{room}"),
                Vec::new(),
                String::new(),
            ),
        ];
        for (attack, method, path, headers, body) in requests {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            // A cross-site request comes from the victim's own browser: its
            // address and its cookie. A stranger comes from the attacker's.
            let source = if headers.is_empty() { ATTACKER } else { VICTIM };
            let answer = http_from(source, addr, method, &path, &headers, &body).await;
            self.soak.record(attack, http_outcome(&answer));
        }
        let check = http_from(VICTIM, addr, "GET", &format!("/api/rooms/{room}"), &[], "").await;
        let survived = match &check {
            Ok(answer) if answer.status == 200 => {
                if answer.json()["name"] == "victim" {
                    "kept, unchanged"
                } else {
                    "kept, RENAMED"
                }
            }
            Ok(answer) if answer.status == 404 => "GONE",
            _ => "unknown",
        };
        self.soak
            .record("the victim room after the cycle", survived);
        if survived == "GONE" {
            self.victim = None;
        } else if survived == "kept, RENAMED" {
            let restore = json!({ "name": "victim", "description": "" }).to_string();
            let _ = http_from(
                VICTIM,
                addr,
                "PUT",
                &format!("/api/rooms/{room}"),
                &[("Cookie", cookie.as_str())],
                &restore,
            )
            .await;
        }
    }
}

/// What a hostile HTTP request is called in the table, its method, path,
/// headers and body.
type HostileRequest = (
    &'static str,
    &'static str,
    String,
    Vec<(&'static str, String)>,
    String,
);

type AttackFn =
    for<'a> fn(&'a mut Attacker) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>>;

fn http_outcome(answer: &Result<HttpAnswer>) -> String {
    match answer {
        Ok(answer) => format!("HTTP {}", answer.status),
        Err(error) => format!("failed ({})", first_words(error)),
    }
}

/// Reads the answers to pushes sent back to back: replies by status and code,
/// then how the socket ended (or that it stayed open).
async fn tally_replies(
    probe: &mut Probe,
    refs: &[String],
    send_error: Option<String>,
) -> Vec<(String, u64)> {
    let mut waiting: std::collections::HashSet<&str> = refs.iter().map(String::as_str).collect();
    let mut answers: HashMap<String, u64> = HashMap::new();
    let mut ended = None;
    while !waiting.is_empty() {
        let next = tokio::time::timeout(REPLY_WAIT, probe.ws.next()).await;
        match next {
            Err(_) => break,
            Ok(Some(Ok(Message::Text(text)))) => {
                if let Some(Incoming::Reply { msg_ref, reply }) = read_text(text.as_str())
                    && waiting.remove(msg_ref.as_str())
                {
                    *answers.entry(describe_reply(&reply)).or_default() += 1;
                }
            }
            Ok(Some(Ok(Message::Close(close)))) => {
                ended = Some(describe_close_message(close.as_ref()));
                break;
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(error))) => {
                ended = Some(format!(
                    "socket error ({})",
                    first_words(&error.to_string())
                ));
                break;
            }
            Ok(None) => {
                ended = Some("socket ended".into());
                break;
            }
        }
    }
    if !waiting.is_empty() {
        *answers.entry("no reply".into()).or_default() += waiting.len() as u64;
    }
    if let Some(error) = send_error {
        *answers
            .entry(format!("sending stopped ({})", first_words(&error)))
            .or_default() += 1;
    }
    *answers
        .entry(format!(
            "then {}",
            ended.unwrap_or_else(|| "still open".into())
        ))
        .or_default() += 1;
    let mut answers: Vec<_> = answers.into_iter().collect();
    answers.sort();
    answers
}

/// Joins the room with the long history and, for [`SILENT_HOLD`], asks for
/// its newest history page as often as the per-socket limit allows, never
/// reading a byte (its receive buffer is 4 KiB): each ask costs a few dozen
/// bytes and brings up to 48 KiB the server must hold somewhere. Then it sees
/// whether the server gave up on it.
async fn silent_socket(soak: Rc<Soak>, token: String, topic: String, until: Instant) {
    const ATTACK: &str = "silent socket: history pages asked for, never read";
    let mut ws = match open_socket(ATTACKER, soak.addr, &token, None, Some(4096)).await {
        Upgrade::Open(ws) => ws,
        other => {
            return soak.record(
                ATTACK,
                format!("could not start: socket {}", other.describe()),
            );
        }
    };
    let join_ref = "1";
    let join = frame::encode_text_parts(
        Some(join_ref),
        Some(join_ref),
        &topic,
        control::JOIN,
        &join_payload("silent", None),
    );
    let hold_until =
        Instant::now() + SILENT_HOLD.min(until.saturating_duration_since(Instant::now()));
    let mut pushes = vec![Message::text(join)];
    let mut pace = tokio::time::interval(Duration::from_millis(60));
    let mut n: u64 = 1;
    while Instant::now() < hold_until {
        for push in pushes.drain(..) {
            // Writes may block once the server stops reading: that is an answer too.
            match tokio::time::timeout(Duration::from_secs(2), ws.send(push)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => {
                    tokio::time::sleep_until(hold_until.into()).await;
                    break;
                }
            }
        }
        pace.tick().await;
        n += 1;
        let msg_ref = n.to_string();
        pushes.push(Message::text(frame::encode_text_parts(
            Some(join_ref),
            Some(&msg_ref),
            &topic,
            "history",
            &json!({ "before_id": 1_000_000_000u64 }),
        )));
    }
    // Whatever it queued arrives at once now; a close the server sent comes after it.
    let outcome = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(close))) => {
                    return format!(
                        "server closed it: {}",
                        describe_close_message(close.as_ref())
                    );
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return "server cut it off".to_string(),
            }
        }
    })
    .await
    .unwrap_or_else(|_| "still open after the hold".into());
    soak.record(ATTACK, outcome);
}

async fn create_victim_room(addr: SocketAddr) -> Result<(String, Option<String>)> {
    let session = http_from(VICTIM, addr, "POST", "/api/session", &[], "").await?;
    let cookie = session.cookie.clone();
    let mut headers = Vec::new();
    if let Some(cookie) = &cookie {
        headers.push(("Cookie", cookie.as_str()));
    }
    let body = json!({ "name": "victim", "description": "" }).to_string();
    let room = http_from(VICTIM, addr, "POST", "/api/rooms", &headers, &body).await?;
    if room.status != 201 {
        return Err(format!("creating the victim room: HTTP {}", room.status));
    }
    let id = room.json()["id"]
        .as_str()
        .ok_or("the room has no id")?
        .to_string();
    Ok((id, cookie))
}

// ---------------------------------------------------------------------------
// Setup
// ---------------------------------------------------------------------------

/// A room created from `source` (with `cookie`, the creator owns it).
async fn create_room(
    source: Ipv4Addr,
    addr: SocketAddr,
    name: &str,
    cookie: Option<&str>,
) -> Result<String> {
    let body = json!({ "name": name, "description": "soak" }).to_string();
    let headers: Vec<(&str, &str)> = cookie.map(|c| ("Cookie", c)).into_iter().collect();
    let answer = http_from(source, addr, "POST", "/api/rooms", &headers, &body).await?;
    if answer.status != 201 {
        return Err(format!(
            "creating room {name:?} from {source}: HTTP {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        ));
    }
    Ok(answer.json()["id"]
        .as_str()
        .ok_or("the created room has no id")?
        .to_string())
}

async fn session_token(source: Ipv4Addr, addr: SocketAddr, name: &str) -> Result<Stolen> {
    let body = json!({ "name": name }).to_string();
    let answer = http_from(source, addr, "POST", "/api/session", &[], &body).await?;
    if answer.status != 200 {
        return Err(format!(
            "a socket token for {name:?} from {source}: HTTP {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        ));
    }
    let json = answer.json();
    Ok(Stolen {
        token: json["token"]
            .as_str()
            .ok_or("no token in the session")?
            .to_string(),
        user_id: json["user_id"].as_str().unwrap_or_default().to_string(),
        cookie: answer.cookie,
    })
}

async fn setup_attacker(
    soak: &Rc<Soak>,
    data_dir: &Path,
    short: bool,
    seed: u64,
) -> Result<Attacker> {
    let addr = soak.addr;
    let mut tokens = Vec::new();
    for n in 0..16 {
        match session_token(ATTACKER_TOKENS, addr, &format!("mallory {n}")).await {
            Ok(token) => tokens.push(token),
            Err(error) if tokens.len() >= 6 => {
                println!("soak: the attacker got {} tokens ({error})", tokens.len());
                break;
            }
            Err(error) => return Err(format!("the attacker's setup: {error}")),
        }
    }
    let history_room =
        create_room(ATTACKER, addr, "mallory's", tokens[0].cookie.as_deref()).await?;
    let mut spare_rooms = Vec::new();
    for n in 0..5 {
        spare_rooms.push(
            create_room(
                ATTACKER,
                addr,
                &format!("mallory's {n}"),
                tokens[0].cookie.as_deref(),
            )
            .await?,
        );
    }
    // A long history: large chats from two of the attacker's visitors, each
    // paced below what one visitor may store (10 a second), together below
    // what one room stores (20 a second).
    let fill = if short {
        HISTORY_FILL_SHORT
    } else {
        HISTORY_FILL
    };
    let topic = roomscale_protocol::room_topic(&history_room);
    let stored = Rc::new(Cell::new(0usize));
    let refused = Rc::new(RefCell::new(Outcomes::default()));
    let mut fillers = Vec::new();
    for (socket, filler) in tokens.iter().take(2).enumerate() {
        let (token, topic, stored, refused, soak) = (
            filler.token.clone(),
            topic.clone(),
            stored.clone(),
            refused.clone(),
            soak.clone(),
        );
        fillers.push(tokio::task::spawn_local(async move {
            let mut probe = match Probe::open(&soak, ATTACKER, &token).await {
                Ok(probe) => probe,
                Err(error) => return refused.borrow_mut().record("history fill", error),
            };
            let (Some(join_ref), _) = probe.join(&topic, "mallory").await else {
                return refused.borrow_mut().record("history fill", "join refused");
            };
            let mut pace = tokio::time::interval(Duration::from_millis(110));
            for n in 0..fill / 2 {
                pace.tick().await;
                let text = format!("history {socket}-{n} {}", "lorem ipsum ".repeat(125));
                match probe
                    .push(Some(&join_ref), &topic, "chat", json!({ "text": text }))
                    .await
                    .as_str()
                {
                    "ok" => stored.set(stored.get() + 1),
                    other => refused.borrow_mut().record("history fill", other),
                }
            }
        }));
    }
    for filler in fillers {
        let _ = filler.await;
    }
    println!(
        "soak: the attacker's room has {} chats of 1.5 KB; refused while filling: {:?}",
        stored.get(),
        refused.borrow().render()
    );
    let secret_key = std::fs::read(data_dir.join("secret.key")).ok();
    Ok(Attacker {
        soak: soak.clone(),
        rng: Rng::new(seed ^ 0x5eed),
        tokens,
        history_room,
        spare_rooms,
        victim: create_victim_room(addr).await.ok(),
        secret_key,
        short,
    })
}

// ---------------------------------------------------------------------------
// Checking the chats
// ---------------------------------------------------------------------------

/// Every chat the server stored in `room_id`, from its SQLite file.
async fn stored_chats(database: &Path, room_id: &str) -> Result<HashMap<u64, String>> {
    use sqlx::ConnectOptions as _;
    let mut connection = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(database)
        .connect()
        .await
        .map_err(|e| format!("opening {}: {e}", database.display()))?;
    let rows = sqlx::query("SELECT id, body FROM room_events WHERE room_id = ?1 AND kind = 'chat'")
        .bind(room_id)
        .fetch_all(&mut connection)
        .await
        .map_err(|e| format!("reading room_events from {}: {e}", database.display()))?;
    let mut chats = HashMap::new();
    for row in rows {
        let id: i64 = row.try_get("id").map_err(|e| e.to_string())?;
        let body: String = row.try_get("body").map_err(|e| e.to_string())?;
        let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        chats.insert(
            id as u64,
            body["text"].as_str().unwrap_or_default().to_string(),
        );
    }
    Ok(chats)
}

/// What a client can read back: the join reply, then `history` pages.
struct ReadBack {
    chats: HashMap<u64, String>,
    /// The oldest id read: chats before it could not be checked this way.
    from_id: u64,
    note: Option<String>,
}

async fn read_back(
    source: Ipv4Addr,
    addr: SocketAddr,
    token: &str,
    room_id: &str,
) -> Result<ReadBack> {
    let Upgrade::Open(ws) = open_socket(source, addr, token, None, None).await else {
        return Err("the read-back socket was refused".into());
    };
    let mut probe = Probe { ws, next_ref: 1 };
    let topic = roomscale_protocol::room_topic(room_id);
    let join_ref = probe.take_ref();
    let join = join_payload("reader", None);
    let reply = send_and_wait(
        &mut probe,
        (&join_ref, &join_ref),
        &topic,
        control::JOIN,
        &join,
    )
    .await?;
    let joined = match reply.read::<JoinReply>() {
        Ok(Ok(joined)) => joined,
        Ok(Err(refusal)) => {
            return Err(format!(
                "the read-back join was refused: {}",
                refusal_json(&refusal)
            ));
        }
        Err(error) => return Err(format!("the read-back join reply is unreadable: {error}")),
    };
    let mut chats = HashMap::new();
    let mut oldest = u64::MAX;
    let collect = |events: Vec<RoomEvent>, chats: &mut HashMap<u64, String>, oldest: &mut u64| {
        for event in events {
            *oldest = (*oldest).min(event.id);
            if let RoomEventBody::Chat { text } = event.body {
                chats.insert(event.id, text);
            }
        }
    };
    collect(joined.events, &mut chats, &mut oldest);
    let mut more = joined.truncated;
    let mut note = None;
    let mut before = oldest;
    while more && before > 1 {
        let msg_ref = probe.take_ref();
        let asked = json!({ "before_id": before });
        let page =
            send_and_wait(&mut probe, (&join_ref, &msg_ref), &topic, "history", &asked).await?;
        let page = match page.read::<HistoryPage>() {
            Ok(Ok(page)) => page,
            Ok(Err(refusal)) => {
                note = Some(format!("history refused ({})", describe_refusal(&refusal)));
                break;
            }
            Err(error) => {
                note = Some(format!("history page unreadable ({error})"));
                break;
            }
        };
        let previous = oldest;
        collect(page.events, &mut chats, &mut oldest);
        more = page.more;
        if oldest >= previous {
            note = Some("a history page brought nothing older".into());
            break;
        }
        before = oldest;
        // Pages come at the pace of the per-socket limit.
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let _ = WebSocketStream::close(&mut *probe.ws, None).await;
    let from_id = if note.is_some() || more { oldest } else { 0 };
    Ok(ReadBack {
        chats,
        from_id,
        note,
    })
}

/// Sends one push under (join ref, msg ref) and waits for its reply.
async fn send_and_wait(
    probe: &mut Probe,
    (join_ref, msg_ref): (&str, &str),
    topic: &str,
    event: &str,
    payload: &Value,
) -> Result<Reply> {
    let text = frame::encode_text_parts(Some(join_ref), Some(msg_ref), topic, event, payload);
    probe
        .ws
        .send(Message::text(text))
        .await
        .map_err(|e| e.to_string())?;
    wait_reply(probe, msg_ref).await
}

async fn wait_reply(probe: &mut Probe, msg_ref: &str) -> Result<Reply> {
    let read = async {
        loop {
            match probe.ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    if let Some(Incoming::Reply {
                        msg_ref: answered,
                        reply,
                    }) = read_text(text.as_str())
                        && answered == msg_ref
                    {
                        return reply.map_err(|error| error.to_string());
                    }
                }
                Some(Ok(Message::Close(close))) => {
                    return Err(describe_close_message(close.as_ref()));
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error.to_string()),
                None => return Err("the socket ended".into()),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(15), read)
        .await
        .map_err(|_| "no reply within 15 s".to_string())?
}

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

async fn soak_run(options: Options) -> Result<bool> {
    let binary = process::server_binary(options.server.as_deref())?;
    let server: Server =
        process::start_server_with_limits(&binary, options.server_cpu, &[], PINNED_ENV, &[])?;
    let pid = server.pid.to_string();
    let seed = unix_ms() as u64;
    let soak = Rc::new(Soak {
        addr: server.addr,
        epoch: Instant::now(),
        stop_honest: Cell::new(false),
        honest: RefCell::default(),
        ledger: RefCell::default(),
        outcomes: RefCell::default(),
        harms: RefCell::default(),
        harmed: RefCell::default(),
    });
    let cooldown = options.cooldown();
    println!(
        "soak: server {} pid {pid} on {} (CPU {}, one worker, default limits); {} rooms of {ROOM_SIZE} from \
         127.0.1.1-{}; attacker from 127.0.0.2-7; {} s, the last {} s without attacks",
        binary.display(),
        server.addr,
        options.server_cpu,
        options.rooms,
        options.rooms,
        options.duration.as_secs(),
        cooldown.as_secs(),
    );

    // Honest rooms and their members' tokens, each room from its own address.
    let mut members = Vec::new();
    let mut room_ids = Vec::new();
    for room in 0..options.rooms {
        let source = honest_address(room);
        let room_id = create_room(source, server.addr, &format!("honest {room}"), None).await?;
        let mut seats = Vec::new();
        for seat in 0..ROOM_SIZE {
            let token = session_token(source, server.addr, &format!("member {room}-{seat}"))
                .await
                .map_err(|e| format!("an honest member's token was refused: {e}"))?;
            seats.push((seat, token.token));
        }
        room_ids.push(room_id.clone());
        members.push((room, room_id, seats));
    }
    let mut attacker = setup_attacker(&soak, server.data_dir(), options.short, seed).await?;

    // Honest members in.
    let mut tasks = Vec::new();
    let mut member_tokens: Vec<String> = Vec::new();
    for (room, room_id, seats) in members {
        let mut leave_flags = Vec::new();
        for (seat, token) in seats {
            if seat == 0 {
                member_tokens.push(token.clone());
            }
            let leave_now = Rc::new(Cell::new(false));
            leave_flags.push(leave_now.clone());
            let member = Member {
                soak: soak.clone(),
                room,
                room_id: room_id.clone(),
                seat,
                token,
                leave_now,
                rng: RefCell::new(Rng::new(
                    seed ^ ((room * ROOM_SIZE + seat + 1) as u64 * 0x9e37_79b9),
                )),
            };
            tasks.push(tokio::task::spawn_local(member.run()));
        }
        tokio::task::spawn_local(leave_scheduler(
            soak.clone(),
            leave_flags,
            seed ^ room as u64,
        ));
    }
    let everyone = options.rooms * ROOM_SIZE;
    let joined_by = Instant::now() + Duration::from_secs(60);
    while soak.honest.borrow().in_room < everyone {
        if Instant::now() > joined_by {
            return Err(format!(
                "only {} of {everyone} honest members joined within 60 s; harms: {:?}",
                soak.honest.borrow().in_room,
                soak.harms.borrow()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Memory, once a second, from here to the end.
    let samples: Rc<RefCell<Vec<(f64, u64)>>> = Rc::default();
    let server_gone: Rc<RefCell<Option<String>>> = Rc::default();
    {
        let (samples, server_gone, pid) = (samples.clone(), server_gone.clone(), pid.clone());
        tokio::task::spawn_local(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                match process::sample_proc(&pid) {
                    Ok(sample) => samples
                        .borrow_mut()
                        .push((started.elapsed().as_secs_f64(), sample.rss)),
                    Err(error) => {
                        *server_gone.borrow_mut() = Some(error);
                        return;
                    }
                }
            }
        });
    }
    let start_rss = process::sample_proc(&pid)?.rss;
    println!(
        "soak: {everyone} honest members in; server RSS {:.1} MiB; attacks start",
        mib(start_rss)
    );

    // Attacks until the cooldown; honest traffic throughout.
    let attacks_until = started + options.duration - cooldown;
    let mut cycles = 0;
    while Instant::now() < attacks_until && server_gone.borrow().is_none() {
        attacker.cycle(attacks_until).await;
        cycles += 1;
        let honest = soak.honest.borrow();
        println!(
            "soak: t={:.0}s cycle {cycles} done; RSS {:.1} MiB; honest in room {}/{everyone}, dropped {}, refused {}",
            started.elapsed().as_secs_f64(),
            mib(samples.borrow().last().map_or(0, |s| s.1)),
            honest.in_room,
            honest.dropped,
            honest.refused,
        );
    }
    let attacks_ended = started.elapsed();
    tokio::time::sleep_until((started + options.duration).into()).await;
    let end_rss = process::sample_proc(&pid).map(|s| s.rss);
    soak.stop_honest.set(true);
    for task in tasks {
        let _ = task.await;
    }

    // Every acknowledged chat, by id and text: in the database, and as a client reads it.
    let database = server.data_dir().join("roomscale.db");
    let ledger = soak.ledger.borrow().clone();
    let mut in_database = LedgerCheck::default();
    let mut through_protocol = LedgerCheck::default();
    let mut protocol_notes = Vec::new();
    for (room, room_id) in room_ids.iter().enumerate() {
        match stored_chats(&database, room_id).await {
            Ok(stored) => in_database.merge(ledger.check(room_id, &stored, 0)),
            Err(error) => return Err(format!("reading back the chats: {error}")),
        }
        match read_back(
            honest_address(room),
            server.addr,
            &member_tokens[room],
            room_id,
        )
        .await
        {
            Ok(back) => {
                through_protocol.merge(ledger.check(room_id, &back.chats, back.from_id));
                if let Some(note) = back.note {
                    protocol_notes.push(format!(
                        "room {room}: {note}, checked from id {}",
                        back.from_id
                    ));
                }
            }
            Err(error) => protocol_notes.push(format!("room {room}: {error}")),
        }
    }

    // The report.
    let alive = server_gone.borrow().is_none() && process::sample_proc(&pid).is_ok();
    // The run's samples: not those taken while the members left and the
    // chats were read back.
    let samples: Vec<(f64, u64)> = samples
        .borrow()
        .iter()
        .copied()
        .filter(|(t, _)| *t <= options.duration.as_secs_f64() + 0.5)
        .collect();
    let (peak_at, peak) = samples
        .iter()
        .copied()
        .max_by_key(|s| s.1)
        .unwrap_or((0.0, start_rss));
    let end_rss = end_rss.unwrap_or(peak);
    let (peak_at, peak) = if end_rss > peak {
        (options.duration.as_secs_f64(), end_rss)
    } else {
        (peak_at, peak.max(start_rss))
    };
    let honest = soak.honest.borrow();
    println!();
    println!("attacks, and how the server answered them ({cycles} cycles):");
    for line in soak.outcomes.borrow().render() {
        println!("  {line}");
    }
    println!();
    let log = server.log.lock().expect("not poisoned");
    if log.lines > 0 {
        println!(
            "server logged {} warning/error lines, first: {}",
            log.lines,
            log.first.join(" | ")
        );
    }
    println!(
        "honest traffic: {} joins ({} rejoins with last_seen_id, {} replayed an event not newer), {} poses sent, \
         {:.1} pose batches/s per member, {} chats sent, {} acknowledged, {} without a reply",
        honest.joins,
        honest.rejoins,
        honest.replay_not_newer,
        honest.poses_sent,
        honest.batches_received as f64 / everyone as f64 / options.duration.as_secs_f64(),
        honest.chats_sent,
        honest.chats_acked,
        honest.unanswered,
    );
    println!(
        "honest chat acknowledgement: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        honest.ack_latency.quantile_ms(0.5),
        honest.ack_latency.quantile_ms(0.99),
        honest.ack_latency.max_us() as f64 / 1000.0,
    );
    let timeline: Vec<String> = samples
        .iter()
        .step_by(30)
        .map(|(t, rss)| format!("{t:.0}s {:.1}", mib(*rss)))
        .collect();
    println!("server RSS every 30 s (MiB): {}", timeline.join(", "));
    for harm in soak.harms.borrow().iter() {
        println!("  {harm}");
    }
    for note in &protocol_notes {
        println!("  read back through the protocol: {note}");
    }
    for example in in_database
        .examples
        .iter()
        .chain(&through_protocol.examples)
    {
        println!("  lost: {example}");
    }
    let allowed = soak::rss_allowed_end(start_rss);
    let rss_ok = soak::rss_came_back(start_rss, end_rss);
    let hurt = honest.dropped + honest.refused;
    let lost = in_database.lost() + through_protocol.lost();
    let verdict = |ok: bool| if ok { "met" } else { "NOT MET" };
    println!(
        "soak: server RSS start {:.1} MiB, peak {:.1} MiB (t={peak_at:.0}s), end {:.1} MiB ({:.0} s after the last attack) \
         -- rule: end <= start x 1.5 + 64 MiB = {:.1} MiB: {}",
        mib(start_rss),
        mib(peak),
        mib(end_rss),
        (options.duration.as_secs_f64() - attacks_ended.as_secs_f64()).max(0.0),
        mib(allowed),
        verdict(rss_ok),
    );
    println!(
        "soak: honest members dropped or refused: {} ({} drops, {} refusals) -- must be 0: {}",
        soak.harmed.borrow().len(),
        honest.dropped,
        honest.refused,
        verdict(hurt == 0)
    );
    println!(
        "soak: acknowledged chats lost: {lost} of {} (in the SQLite file: {} missing, {} altered; through join + \
         history: {} checked, {} missing, {} altered) -- must be 0: {}",
        ledger.len(),
        in_database.missing,
        in_database.altered,
        through_protocol.checked,
        through_protocol.missing,
        through_protocol.altered,
        verdict(lost == 0),
    );
    if !alive {
        println!(
            "soak: the server died: {}",
            server_gone
                .borrow()
                .clone()
                .unwrap_or_else(|| "its process is gone".into())
        );
    }
    let passed = alive && rss_ok && hurt == 0 && lost == 0 && !ledger.is_empty();
    println!(
        "soak: {} ({} s, {cycles} attack cycles, {} attack kinds)",
        if passed { "passed" } else { "FAILED" },
        options.duration.as_secs(),
        soak.outcomes.borrow().attacks()
    );
    Ok(passed)
}
