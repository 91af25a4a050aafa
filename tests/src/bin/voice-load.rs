//! `voice-load`: how many audio down-tracks one server core forwards.
//!
//! Starts the real `roomscale-server` pinned to one core (`taskset -c 0`,
//! `TOKIO_WORKER_THREADS=1`; the SFU is one task on it) and spreads its
//! simulated members over `--generator-cores N` generator processes, each
//! pinned to a core of its own (1 by default, on the next core). A member is
//! a real WebRTC peer (str0m, over loopback UDP) in a room of 17 that
//! publishes one Opus-sized audio frame every 20 ms and subscribes to the 16
//! others (the default most voices per listener): 272 down-tracks per room.
//! Signaling goes over the room channel exactly as browsers do it. Rooms are
//! dealt to the generator processes in turn; this process only creates
//! rooms, asks the generators for their figures and adds them up.
//!
//! Every frame carries its send time (Unix microseconds, one clock for all
//! processes); each step measures, after all peers hear all others and a
//! warm-up: frames expected and received (loss); the latency the SFU adds,
//! from the server's own histogram (`/metrics`,
//! `roomscale_voice_forward_latency_seconds`: a datagram's read to its last
//! forwarded copy being sent; time it waited in the server's socket before
//! the read is not in it, and shows in the peer-to-peer latency and, when
//! the server falls behind, in loss), its percentiles interpolated linearly
//! within the bucket holding them (the server's buckets are 0.25 ms wide up
//! to 10 ms; an older server's coarser buckets make a coarser figure); send
//! -> receipt latency between the peers (which adds both peers' stacks and
//! the generators' scheduling); the server's CPU; and each generator's CPU
//! and send-timer lag; and the datagrams the server's socket could not send
//! (`srvDrops`: its buffer full, which on loopback also means a receiver
//! fell behind); and how much of the server's core other processes took
//! (a failed step is not judged when that passes 10 % while the server had
//! less than 90 %). A step holds with
//! no frame lost and an SFU p99 under
//! 5 ms. A step that fails while a generator is saturated (> 90 % CPU or its
//! 20 ms timer late by > 5 ms at p99) says that the generator ran out, not
//! the server.
//!
//!   voice-load [--steps 272,544,...] [--server PATH] [--generator-cores N]
//!
//! Environment: ROOMSCALE_SERVER_BIN (server binary, default: next to this
//! one), ROOMSCALE_LOAD_SERVER_CPU (default 0), ROOMSCALE_LOAD_CLIENT_CPU
//! (the first generator core, default: the one after the server's).

use std::cell::RefCell;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use roomscale_protocol::frame;
use roomscale_tests::load::{CorePlan, Histogram, cpu_list};
use roomscale_tests::process::{self, GeneratorProcess};
use serde_json::{Value, json};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::Message;

const ROOM_SIZE: usize = 17;
const DOWN_TRACKS_PER_ROOM: usize = ROOM_SIZE * (ROOM_SIZE - 1);
const FRAME_PERIOD: Duration = Duration::from_millis(20);
/// An Opus voice frame at about 32 kbit/s.
const FRAME_BYTES: usize = 80;
const DEFAULT_STEPS: &[usize] = &[1088, 1632, 2176, 2720];
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const WARM_UP: Duration = Duration::from_secs(2);
const MEASURE: Duration = Duration::from_secs(5);
/// Frames sent this close to the end of the window may still be in flight.
const GRACE: Duration = Duration::from_millis(300);
const MAX_P99_MS: f64 = 5.0;
/// A generator this busy, or this late on its send timer, is the limit.
const GENERATOR_SATURATED_CPU: f64 = 90.0;
const GENERATOR_SATURATED_LAG_MS: f64 = 5.0;
/// How often each peer's socket says it is alive, as phoenix.js does.
const HEARTBEAT_PERIOD: Duration = Duration::from_secs(30);
/// How much earlier than asked a peer's str0m timer may fire.
const TIMER_SLACK: Duration = Duration::from_millis(5);
/// Other processes taking more than this share of the server's core make
/// a failed step say nothing about the server.
const NOISY_CORE_PERCENT: f64 = 10.0;
/// The server's count of datagrams its socket could not send.
const SERVER_DROPS: &str = "roomscale_voice_datagrams_dropped_total";
const PINNED_ENV: &str = "ROOMSCALE_LOAD_PINNED";
/// The argument that makes this program a generator process, with the
/// server's address after it.
const GENERATOR_ARG: &str = "--generator-of";

type Result<T, E = String> = std::result::Result<T, E>;

fn main() -> ExitCode {
    let mut steps = DEFAULT_STEPS.to_vec();
    let mut server = std::env::var_os("ROOMSCALE_SERVER_BIN").map(PathBuf::from);
    let mut generator_cores = 1usize;
    let mut generator_of = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--steps", Some(v)) => {
                steps = v
                    .split(',')
                    .filter_map(|s| s.trim().parse().ok())
                    .filter(|&n: &usize| n > 0)
                    .collect()
            }
            ("--server", Some(v)) => server = Some(v.into()),
            ("--generator-cores", Some(v)) => match v.parse() {
                Ok(n) if n > 0 => generator_cores = n,
                _ => {
                    eprintln!("voice-load: --generator-cores takes a number of cores, 1 or more");
                    return ExitCode::FAILURE;
                }
            },
            (GENERATOR_ARG, Some(v)) => generator_of = Some(v),
            _ => {
                eprintln!(
                    "voice-load: unknown argument {arg}; use --steps N,N,.. --server PATH \
                     --generator-cores N"
                );
                return ExitCode::FAILURE;
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime starts");
    if let Some(addr) = generator_of {
        // A generator process, pinned by the one that started it.
        let Ok(addr) = addr.parse() else {
            eprintln!("voice-load: {GENERATOR_ARG} takes the server's address, not {addr}");
            return ExitCode::FAILURE;
        };
        let local = tokio::task::LocalSet::new();
        return match local.block_on(&runtime, generate(addr)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("voice-load generator: error: {error}");
                ExitCode::FAILURE
            }
        };
    }
    let cpu = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
    let server_cpu = cpu("ROOMSCALE_LOAD_SERVER_CPU").unwrap_or(0);
    let plan = match CorePlan::new(
        1,
        generator_cores,
        server_cpu,
        cpu("ROOMSCALE_LOAD_CLIENT_CPU"),
        process::available_cores(),
    ) {
        Ok(plan) => plan,
        Err(reason) => {
            eprintln!("voice-load: {reason}; ask for fewer --generator-cores");
            return ExitCode::FAILURE;
        }
    };
    // This process mostly waits; it stays off the server's core.
    if std::env::var_os(PINNED_ENV).is_none() {
        return process::reexec_pinned_to("voice-load", &cpu_list(&plan.generators), PINNED_ENV);
    }
    match runtime.block_on(bench(steps, server, plan)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("voice-load: error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Microseconds since the Unix epoch: the one clock every process shares.
fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

// ---------------------------------------------------------------------------
// A generator process: peers on one core, driven by JSON lines on stdin
// ---------------------------------------------------------------------------

/// What every peer of a generator adds to, shared on its one thread.
#[derive(Default)]
struct Tally {
    /// Measurement window, Unix microseconds.
    window: Option<(u64, u64)>,
    sent_in_window: u64,
    received_in_window: u64,
    latency: Histogram,
    /// Lateness of the 20 ms send timer: the generator's own saturation.
    send_lag: Histogram,
    failures: Vec<String>,
}

struct Shared {
    addr: SocketAddr,
    tally: RefCell<Tally>,
}

impl Shared {
    fn now_us(&self) -> u64 {
        unix_us()
    }

    fn in_window(&self, t_us: u64) -> bool {
        self.tally
            .borrow()
            .window
            .is_some_and(|(from, to)| t_us >= from && t_us < to)
    }
}

/// Serves requests, one JSON line each, until stdin closes:
/// `{"join": ROOM_ID, "first": N}` joins a room's peers (ids from N);
/// `{"ready": true}` says how many hear all others; `{"window": [FROM, TO]}`
/// starts counting frames sent in that window; `{"report": true}` hands back
/// the window's figures.
async fn generate(addr: SocketAddr) -> Result<()> {
    let shared = Rc::new(Shared {
        addr,
        tally: RefCell::new(Tally::default()),
    });
    let ready = Rc::new(RefCell::new(0usize));
    let mut peers = 0usize;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdout = tokio::io::stdout();
    while let Some(line) = lines
        .next_line()
        .await
        .map_err(|e| format!("reading requests: {e}"))?
    {
        let request: Value =
            serde_json::from_str(&line).map_err(|e| format!("request {line:?}: {e}"))?;
        let answer = match serve_request(&request, &shared, &ready, &mut peers).await {
            Ok(answer) => answer,
            Err(error) => json!({ "error": error }),
        };
        let mut line = answer.to_string();
        line.push('\n');
        stdout
            .write_all(line.as_bytes())
            .await
            .map_err(|e| format!("answering: {e}"))?;
        stdout
            .flush()
            .await
            .map_err(|e| format!("answering: {e}"))?;
    }
    Ok(())
}

async fn serve_request(
    request: &Value,
    shared: &Rc<Shared>,
    ready: &Rc<RefCell<usize>>,
    peers: &mut usize,
) -> Result<Value> {
    if let Some(room) = request["join"].as_str() {
        let first = request["first"].as_u64().ok_or("join without a first id")? as u32;
        for id in first..first + ROOM_SIZE as u32 {
            let peer = Peer::join(shared.clone(), id, room, ready.clone()).await?;
            tokio::task::spawn_local(peer.run());
            *peers += 1;
        }
        return Ok(json!({ "peers": *peers }));
    }
    if request["ready"].as_bool() == Some(true) {
        let tally = shared.tally.borrow();
        return Ok(json!({
            "ready": *ready.borrow(),
            "peers": *peers,
            "failure": tally.failures.first(),
        }));
    }
    if let Some(window) = request["window"].as_array() {
        let (Some(from), Some(to)) = (window[0].as_u64(), window[1].as_u64()) else {
            return Err("window takes [from, to] in Unix microseconds".into());
        };
        let mut tally = shared.tally.borrow_mut();
        tally.window = Some((from, to));
        tally.sent_in_window = 0;
        tally.received_in_window = 0;
        tally.latency = Histogram::default();
        tally.send_lag = Histogram::default();
        return Ok(json!({}));
    }
    if request["report"].as_bool() == Some(true) {
        let tally = shared.tally.borrow();
        return Ok(json!({
            "sent": tally.sent_in_window,
            "received": tally.received_in_window,
            "latency": tally.latency.to_json(),
            "send_lag": tally.send_lag.to_json(),
            "failure": tally.failures.first(),
        }));
    }
    Err(format!("unknown request {request}"))
}

/// One simulated member: room channel, str0m peer, UDP socket.
struct Peer {
    shared: Rc<Shared>,
    id: u32,
    ws: Ws,
    join_ref: String,
    topic: String,
    next_ref: u64,
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    mic: Option<Mid>,
    connected: bool,
    heard: HashSet<u32>,
    ready: Rc<RefCell<usize>>,
    counted_ready: bool,
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl Peer {
    async fn join(
        shared: Rc<Shared>,
        id: u32,
        room: &str,
        ready: Rc<RefCell<usize>>,
    ) -> Result<Peer> {
        let addr = shared.addr;
        let session = process::http_json(
            addr,
            "/api/session",
            json!({ "name": format!("voice-{id}") }),
            200,
        )
        .await?;
        let token = session["token"].as_str().ok_or("no token in the session")?;
        let url = format!("ws://{addr}/socket/websocket?vsn=2.0.0&token={token}");
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .map_err(|e| format!("WebSocket connect: {e}"))?;
        let socket = UdpSocket::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("binding a UDP socket: {e}"))?;
        let local = socket.local_addr().map_err(|e| e.to_string())?;
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_opus(true, false)
            .build(Instant::now());
        rtc.add_local_candidate(Candidate::host(local, "udp").map_err(|e| e.to_string())?);
        let mut peer = Peer {
            shared,
            id,
            ws,
            join_ref: "1".into(),
            topic: format!("room:{room}"),
            next_ref: 1,
            rtc,
            socket,
            local,
            mic: None,
            connected: false,
            heard: HashSet::new(),
            ready,
            counted_ready: false,
        };
        let payload = json!({
            "protocol_version": roomscale_protocol::PROTOCOL_VERSION,
            "name": format!("voice-{id}"),
            "colour": "#3a7bd5",
            "client_kind": "desktop",
        });
        peer.request(frame::control::JOIN, payload).await?;
        let mut api = peer.rtc.sdp_api();
        let mic = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let (offer, pending) = api.apply().ok_or("no offer for a new media line")?;
        let reply = peer
            .request("rtc_offer", json!({ "sdp": offer.to_sdp_string() }))
            .await?;
        let answer = SdpAnswer::from_sdp_string(reply["sdp"].as_str().unwrap_or_default())
            .map_err(|e| format!("the server's answer: {e}"))?;
        peer.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| format!("accepting the server's answer: {e}"))?;
        peer.mic = Some(mic);
        Ok(peer)
    }

    /// Sends a push and waits for its reply (frames before it are skipped).
    async fn request(&mut self, event: &str, payload: Value) -> Result<Value> {
        self.next_ref += 1;
        let msg_ref = self.next_ref.to_string();
        let text = frame::encode_text_parts(
            Some(&self.join_ref),
            Some(&msg_ref),
            &self.topic,
            event,
            &payload,
        );
        self.ws
            .send(Message::text(text))
            .await
            .map_err(|e| format!("sending {event}: {e}"))?;
        loop {
            let Some(Ok(message)) = self.ws.next().await else {
                return Err(format!("socket ended waiting for the reply to {event}"));
            };
            let Message::Text(text) = message else {
                continue;
            };
            let Ok(frame) = frame::decode_text(&text) else {
                continue;
            };
            if frame.event == frame::control::REPLY && frame.msg_ref.as_deref() == Some(&msg_ref) {
                if frame.payload["status"] == "ok" {
                    return Ok(frame.payload["response"].clone());
                }
                return Err(format!("{event} refused: {}", frame.payload["response"]));
            }
        }
    }

    async fn run(mut self) {
        if let Err(error) = self.serve().await {
            self.shared
                .tally
                .borrow_mut()
                .failures
                .push(format!("peer {}: {error}", self.id));
        }
    }

    async fn serve(&mut self) -> Result<()> {
        let mut buf = vec![0u8; 2048];
        let mut ticker = tokio::time::interval(FRAME_PERIOD);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut seq: u64 = 0;
        // The room closes a socket that says nothing for a minute.
        let mut heartbeat = tokio::time::interval(HEARTBEAT_PERIOD);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // One timer for str0m's timeouts, moved rather than made anew each turn.
        let wake = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(wake);
        loop {
            let timeout = tokio::time::Instant::from_std(self.drain()?);
            // A deadline a little earlier than asked is kept (str0m takes an
            // early timeout as a no-op): its deadline moves by a hair with
            // nearly every packet, and moving the timer as often costs.
            let keep = wake.deadline() <= timeout
                && timeout.duration_since(wake.deadline()) < TIMER_SLACK
                && !wake.is_elapsed();
            if !keep {
                wake.as_mut().reset(timeout);
            }
            tokio::select! {
                message = self.ws.next() => match message {
                    Some(Ok(Message::Text(text))) => self.on_text(&text).await?,
                    Some(Ok(Message::Close(close))) => return Err(format!("room closed the socket: {close:?}")),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(format!("socket error: {e}")),
                    None => return Err("socket ended".into()),
                },
                readable = self.socket.readable() => {
                    readable.map_err(|e| format!("UDP socket: {e}"))?;
                    // Everything queued, then one drain: a busy generator must not fall behind.
                    while let Ok((len, source)) = self.socket.try_recv_from(&mut buf) {
                        if let Ok(receive) = Receive::new(Protocol::Udp, source, self.local, &buf[..len]) {
                            let _ = self.rtc.handle_input(Input::Receive(Instant::now(), receive));
                        }
                    }
                }
                due = ticker.tick() => {
                    let lag = due.elapsed().as_micros() as u64;
                    self.shared.tally.borrow_mut().send_lag.record(lag);
                    self.publish(seq)?;
                    seq += 1;
                }
                _ = heartbeat.tick() => {
                    self.next_ref += 1;
                    let text = frame::encode_text_parts(
                        None,
                        Some(&self.next_ref.to_string()),
                        roomscale_protocol::PHOENIX_TOPIC,
                        frame::control::HEARTBEAT,
                        &json!({}),
                    );
                    self.ws
                        .send(Message::text(text))
                        .await
                        .map_err(|e| format!("sending a heartbeat: {e}"))?;
                }
                _ = &mut wake => {
                    let _ = self.rtc.handle_input(Input::Timeout(Instant::now()));
                }
            }
        }
    }

    fn publish(&mut self, seq: u64) -> Result<()> {
        let (Some(mic), true) = (self.mic, self.connected) else {
            return Ok(());
        };
        let Some(writer) = self.rtc.writer(mic) else {
            return Ok(());
        };
        let Some(pt) = writer.payload_params().next().map(|p| p.pt()) else {
            return Ok(());
        };
        let t_us = self.shared.now_us();
        let mut frame = vec![0x5a; FRAME_BYTES];
        frame[..8].copy_from_slice(&t_us.to_le_bytes());
        frame[8..12].copy_from_slice(&self.id.to_le_bytes());
        let rtp_time = MediaTime::new(seq * 960, Frequency::FORTY_EIGHT_KHZ);
        writer
            .audio_level(-30, true)
            .write(pt, Instant::now(), rtp_time, frame)
            .map_err(|e| format!("writing a frame: {e}"))?;
        if self.shared.in_window(t_us) {
            self.shared.tally.borrow_mut().sent_in_window += (ROOM_SIZE - 1) as u64;
        }
        Ok(())
    }

    async fn on_text(&mut self, text: &str) -> Result<()> {
        let Ok(frame) = frame::decode_text(text) else {
            return Ok(());
        };
        if frame.event == "rtc_offer" {
            let offer =
                SdpOffer::from_sdp_string(frame.payload["sdp"].as_str().unwrap_or_default())
                    .map_err(|e| format!("the server's offer: {e}"))?;
            let answer = self
                .rtc
                .sdp_api()
                .accept_offer(offer)
                .map_err(|e| format!("accepting the server's offer: {e}"))?;
            // Replies come back on this socket; the next loop turn skips them.
            self.next_ref += 1;
            let text = frame::encode_text_parts(
                Some(&self.join_ref),
                Some(&self.next_ref.to_string()),
                &self.topic,
                "rtc_answer",
                &json!({ "sdp": answer.to_sdp_string() }),
            );
            self.ws
                .send(Message::text(text))
                .await
                .map_err(|e| format!("sending an answer: {e}"))?;
        }
        Ok(())
    }

    /// Runs str0m's output: datagrams out, media in. Returns its next timeout.
    fn drain(&mut self) -> Result<Instant> {
        let mut due_at_once = 0;
        loop {
            match self
                .rtc
                .poll_output()
                .map_err(|e| format!("peer failed: {e}"))?
            {
                // A written frame becomes a packet on the timeout str0m asks
                // for at once: run it now rather than on the next timer turn.
                Output::Timeout(at) if due_at_once < 4 && at <= Instant::now() => {
                    due_at_once += 1;
                    let _ = self.rtc.handle_input(Input::Timeout(Instant::now()));
                }
                Output::Timeout(at) => return Ok(at),
                Output::Transmit(transmit) => {
                    let _ = self
                        .socket
                        .try_send_to(&transmit.contents, transmit.destination);
                }
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(Event::MediaData(data)) => {
                    if data.data.len() < 12 {
                        continue;
                    }
                    let now = self.shared.now_us();
                    let sent = u64::from_le_bytes(data.data[..8].try_into().expect("8 bytes"));
                    let from = u32::from_le_bytes(data.data[8..12].try_into().expect("4 bytes"));
                    if !self.counted_ready
                        && self.heard.insert(from)
                        && self.heard.len() == ROOM_SIZE - 1
                    {
                        self.counted_ready = true;
                        *self.ready.borrow_mut() += 1;
                    }
                    if self.shared.in_window(sent) {
                        let mut tally = self.shared.tally.borrow_mut();
                        tally.received_in_window += 1;
                        tally.latency.record(now.saturating_sub(sent));
                    }
                }
                Output::Event(_) => {}
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The controller: server, rooms, generators, figures
// ---------------------------------------------------------------------------

struct Step {
    down_tracks: usize,
    sent: u64,
    received: u64,
    loss: f64,
    sfu_p50_ms: f64,
    sfu_p99_ms: f64,
    p50_ms: f64,
    p99_ms: f64,
    server_cpu: f64,
    /// Datagrams the server could not send (its socket's buffer was full).
    server_drops: u64,
    /// How much of the server's core other processes took, in % (interrupt
    /// work, which the server's own datagrams cause, is not counted).
    server_core_other: f64,
    /// The busiest generator's CPU and send-timer lag (p99).
    generator_cpu: f64,
    send_lag_p99_ms: f64,
}

impl Step {
    fn holds(&self) -> bool {
        self.sent > 0 && self.received >= self.sent && self.sfu_p99_ms < MAX_P99_MS
    }

    fn generator_saturated(&self) -> bool {
        self.generator_cpu > GENERATOR_SATURATED_CPU
            || self.send_lag_p99_ms > GENERATOR_SATURATED_LAG_MS
    }
}

async fn bench(steps: Vec<usize>, server: Option<PathBuf>, plan: CorePlan) -> Result<()> {
    let binary = process::server_binary(server.as_deref())?;
    let server_cpu = plan.server[0];
    let server =
        process::start_server(&binary, server_cpu, &["--room-capacity", "25"], PINNED_ENV)?;
    let ticks_per_s = process::clock_ticks_per_second();
    let addr = server.addr.to_string();
    let mut generators = Vec::new();
    for &core in &plan.generators {
        generators.push(GeneratorProcess::spawn(
            core,
            &[GENERATOR_ARG, &addr],
            &[(PINNED_ENV, "1")],
        )?);
    }
    println!(
        "server: {} pid {}, {} on CPU {server_cpu}, TOKIO_WORKER_THREADS=1; {} generator process(es) on CPU {}",
        binary.display(),
        server.pid,
        server.addr,
        generators.len(),
        cpu_list(&plan.generators),
    );
    println!(
        "peers: str0m over loopback UDP, rooms of {ROOM_SIZE} ({DOWN_TRACKS_PER_ROOM} down-tracks each) dealt to the generators in turn, \
         an {FRAME_BYTES}-byte frame every 20 ms per publisher; {} s warm-up, {} s measured",
        WARM_UP.as_secs(),
        MEASURE.as_secs()
    );
    println!(
        "pass: no frame lost and SFU-added p99 < {MAX_P99_MS} ms (server histogram, interpolated within its buckets)\n"
    );
    println!(
        "down-tracks  peers   loss %  srvDrops  SFU p50/p99 ms  e2e p50/p99 ms  srvCPU %  others on srv core %  genCPU % (max)  genLag p99 ms  verdict"
    );
    let mut rooms = 0usize;
    let mut held: Option<Step> = None;
    let mut failed: Option<Step> = None;
    let server_pid = server.pid.to_string();
    // A peer the server dropped (its socket closed, its voice refused) ends
    // the ramp: that step is not held.
    let mut lost_peer = None;
    'steps: for target in steps {
        let wanted = target.div_ceil(DOWN_TRACKS_PER_ROOM);
        while rooms < wanted {
            let room = process::http_json(
                server.addr,
                "/api/rooms",
                json!({ "name": format!("voice load {rooms}") }),
                201,
            )
            .await?;
            let room_id = room["id"].as_str().ok_or("no room id")?;
            let generator = &mut generators[rooms % plan.generators.len()];
            generator
                .request(&json!({ "join": room_id, "first": rooms * ROOM_SIZE }))
                .await?;
            rooms += 1;
        }
        let peers = rooms * ROOM_SIZE;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let mut ready = 0;
            for generator in &mut generators {
                let answer = generator.request(&json!({ "ready": true })).await?;
                if let Some(failure) = answer["failure"].as_str() {
                    lost_peer = Some((target, failure.to_string()));
                    break 'steps;
                }
                ready += answer["ready"].as_u64().unwrap_or(0) as usize;
            }
            if ready >= peers {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "only {ready} of {peers} peers hear all {} others after {} s",
                    ROOM_SIZE - 1,
                    READY_TIMEOUT.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(WARM_UP).await;
        let from = unix_us();
        let window = json!({ "window": [from, from + (MEASURE - GRACE).as_micros() as u64] });
        for generator in &mut generators {
            generator.request(&window).await?;
        }
        let histogram_before = forward_latency_buckets(server.addr).await;
        let drops_before = process::server_counter(server.addr, &[SERVER_DROPS]).await[0];
        let server_before = process::sample_proc(&server_pid)?;
        let core_before = process_jiffies(server_cpu);
        let mut generators_before = Vec::new();
        for generator in &generators {
            generators_before.push(process::sample_proc(&generator.pid.to_string())?);
        }
        tokio::time::sleep(MEASURE).await;
        let server_after = process::sample_proc(&server_pid)?;
        let core_after = process_jiffies(server_cpu);
        let mut generator_cpu: f64 = 0.0;
        let seconds = server_after
            .at
            .duration_since(server_before.at)
            .as_secs_f64();
        let cpu = |a: u64, b: u64| (b - a) as f64 / ticks_per_s / seconds * 100.0;
        for (generator, before) in generators.iter().zip(&generators_before) {
            let after = process::sample_proc(&generator.pid.to_string())?;
            generator_cpu = generator_cpu.max(cpu(before.cpu_ticks, after.cpu_ticks));
        }
        let histogram_after = forward_latency_buckets(server.addr).await;
        let drops_after = process::server_counter(server.addr, &[SERVER_DROPS]).await[0];
        let sfu = bucket_delta(&histogram_before, &histogram_after);
        let (mut sent, mut received) = (0, 0);
        let mut latency = Histogram::default();
        let mut send_lag_p99_ms: f64 = 0.0;
        for generator in &mut generators {
            let report = generator.request(&json!({ "report": true })).await?;
            if let Some(failure) = report["failure"].as_str() {
                lost_peer = Some((target, failure.to_string()));
                break 'steps;
            }
            sent += report["sent"].as_u64().unwrap_or(0);
            received += report["received"].as_u64().unwrap_or(0);
            let histogram = |key: &str| {
                Histogram::from_json(&report[key])
                    .ok_or_else(|| format!("a generator's report has no {key} histogram"))
            };
            latency.merge(&histogram("latency")?);
            send_lag_p99_ms = send_lag_p99_ms.max(histogram("send_lag")?.quantile_ms(0.99));
        }
        let loss = 1.0 - received as f64 / sent.max(1) as f64;
        let step = Step {
            down_tracks: rooms * DOWN_TRACKS_PER_ROOM,
            sent,
            received,
            loss: loss.max(0.0),
            sfu_p50_ms: bucket_quantile_ms(&sfu, 0.50),
            sfu_p99_ms: bucket_quantile_ms(&sfu, 0.99),
            p50_ms: latency.quantile_ms(0.50),
            p99_ms: latency.quantile_ms(0.99),
            server_cpu: cpu(server_before.cpu_ticks, server_after.cpu_ticks),
            server_drops: drops_after.saturating_sub(drops_before),
            server_core_other: {
                let busy = core_after.0.saturating_sub(core_before.0) as f64;
                let total = core_after.1.saturating_sub(core_before.1).max(1) as f64;
                (busy / total * 100.0 - cpu(server_before.cpu_ticks, server_after.cpu_ticks))
                    .max(0.0)
            },
            generator_cpu,
            send_lag_p99_ms,
        };
        let verdict = if step.holds() {
            "held"
        } else if step.server_core_other > NOISY_CORE_PERCENT && step.server_cpu < 90.0 {
            "NOT JUDGED (other work took the server's core; run on a quiet machine)"
        } else if step.sfu_p99_ms >= MAX_P99_MS {
            // The server's own figure: whatever the generator did, the
            // server took too long with what it had read.
            "FAILED (server: SFU-added p99)"
        } else if step.generator_saturated() && step.generator_cpu > GENERATOR_SATURATED_CPU {
            "STOP (the generator ran out of CPU, not the server)"
        } else if step.generator_saturated() {
            "STOP (the generator's core was taken by other work, not the server)"
        } else {
            "FAILED (server)"
        };
        println!(
            "{:>11}  {:>5}  {:>7.3}  {:>8}  {:>6.2}/{:<7.2}  {:>6.2}/{:<7.2}  {:>8.1}  {:>20.1}  {:>14.1}  {:>13.2}  {verdict}",
            step.down_tracks,
            peers,
            step.loss * 100.0,
            step.server_drops,
            step.sfu_p50_ms,
            step.sfu_p99_ms,
            step.p50_ms,
            step.p99_ms,
            step.server_cpu,
            step.server_core_other,
            step.generator_cpu,
            step.send_lag_p99_ms,
        );
        if !step.holds() {
            failed = Some(step);
            break;
        }
        held = Some(step);
    }
    for generator in generators {
        generator.stop().await;
    }
    match &held {
        Some(s) => println!(
            "\nvoice: down-tracks held on one server core: {} (loss {:.3} %, server {:.0} % CPU) -- target >= 2000: {}\n\
             voice: latency the SFU adds at that load (interpolated within 0.25 ms buckets): p50 {:.2} ms, p99 {:.2} ms -- target p99 < 5 ms: {}\n\
             voice: peer to peer through the SFU (both WebRTC stacks and the generators' scheduling included): p50 {:.2} ms, p99 {:.2} ms",
            s.down_tracks,
            s.loss * 100.0,
            s.server_cpu,
            if s.down_tracks >= 2000 {
                "met"
            } else {
                "NOT MET"
            },
            s.sfu_p50_ms,
            s.sfu_p99_ms,
            if s.sfu_p99_ms < MAX_P99_MS {
                "met"
            } else {
                "NOT MET"
            },
            s.p50_ms,
            s.p99_ms,
        ),
        None => println!("\nvoice: no step held"),
    }
    if let Some((target, failure)) = &lost_peer {
        println!(
            "voice: the step to {target} down-tracks is not held: a peer was lost ({failure})"
        );
    }
    if let Some(s) = &failed {
        println!(
            "voice: first step not held: {} down-tracks (loss {:.3} %, SFU p99 {:.2} ms, server {:.0} % CPU, busiest generator {:.0} % CPU, its send lag p99 {:.2} ms)",
            s.down_tracks,
            s.loss * 100.0,
            s.sfu_p99_ms,
            s.server_cpu,
            s.generator_cpu,
            s.send_lag_p99_ms,
        );
        if s.server_core_other > NOISY_CORE_PERCENT && s.server_cpu < 90.0 {
            println!(
                "voice: other processes took {:.0} % of the server's core during that step: it says nothing about the server; run again on a quiet machine",
                s.server_core_other
            );
        } else if s.generator_saturated() && s.sfu_p99_ms < MAX_P99_MS {
            println!(
                "voice: the generator, not the server, ran out at that step: the server's figure is at least {}; \
                 run with more --generator-cores on a machine that has them",
                held.as_ref().map_or(0, |h| h.down_tracks)
            );
        }
    }
    Ok(())
}

/// Jiffies a core spent running processes (user, nice and system time:
/// not interrupts, where the kernel delivers loopback datagrams) and in all,
/// from `/proc/stat`.
fn process_jiffies(cpu: usize) -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let name = format!("cpu{cpu}");
    let Some(line) = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name.as_str()))
    else {
        return (0, 0);
    };
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let processes = values.iter().take(3).sum();
    let total = values.iter().take(8).sum();
    (processes, total)
}

/// The server's forward-latency histogram: (upper edge in ms, cumulative count).
async fn forward_latency_buckets(addr: SocketAddr) -> Vec<(f64, u64)> {
    let Ok((200, body)) = process::http(addr, "GET", "/metrics", "").await else {
        return Vec::new();
    };
    String::from_utf8_lossy(&body)
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("roomscale_voice_forward_latency_seconds_bucket{le=\"")?;
            let (le, count) = rest.split_once("\"} ")?;
            let edge_ms = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse::<f64>().ok()? * 1000.0
            };
            Some((edge_ms, count.trim().parse().ok()?))
        })
        .collect()
}

fn bucket_delta(before: &[(f64, u64)], after: &[(f64, u64)]) -> Vec<(f64, u64)> {
    after
        .iter()
        .map(|&(edge, count)| {
            let earlier = before
                .iter()
                .find(|(e, _)| *e == edge)
                .map_or(0, |(_, c)| *c);
            (edge, count.saturating_sub(earlier))
        })
        .collect()
}

/// Quantile `q` of cumulative bucket counts, in ms, interpolated linearly
/// between the edges of the bucket that holds it (values are taken as
/// spread evenly within a bucket). In the +Inf bucket it is infinite: past
/// the last edge, nothing can be said.
fn bucket_quantile_ms(cumulative: &[(f64, u64)], q: f64) -> f64 {
    let total = cumulative.last().map_or(0, |(_, c)| *c);
    if total == 0 {
        return f64::NAN;
    }
    let rank = q * total as f64;
    let (mut lower_edge, mut below) = (0.0, 0u64);
    for &(edge, count) in cumulative {
        if count as f64 >= rank && count > below {
            if edge.is_infinite() {
                return f64::INFINITY;
            }
            let within = (rank - below as f64) / (count - below) as f64;
            return lower_edge + (edge - lower_edge) * within.clamp(0.0, 1.0);
        }
        (lower_edge, below) = (edge, count);
    }
    lower_edge
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_interpolated_within_the_bucket() {
        // 100 values: 50 in (0, 1] ms, 49 in (4.75, 5] ms, 1 in (5, 5.25] ms.
        let buckets = [
            (1.0, 50),
            (4.75, 50),
            (5.0, 99),
            (5.25, 100),
            (f64::INFINITY, 100),
        ];
        assert_eq!(bucket_quantile_ms(&buckets, 0.5), 1.0);
        assert!((bucket_quantile_ms(&buckets, 0.25) - 0.5).abs() < 1e-9);
        let p99 = bucket_quantile_ms(&buckets, 0.99);
        assert!((p99 - 5.0).abs() < 1e-9, "{p99}");
        let p995 = bucket_quantile_ms(&buckets, 0.995);
        assert!((p995 - 5.125).abs() < 1e-9, "{p995}");
        assert!(bucket_quantile_ms(&[], 0.5).is_nan());
    }
}
