//! `voice-load`: how many audio down-tracks one server core forwards.
//!
//! Starts the real `roomscale-server` pinned to one core (`taskset -c 0`,
//! `TOKIO_WORKER_THREADS=1`; the SFU is one task on it) and, from this process
//! pinned to another core, joins rooms of 17 members, each a real WebRTC peer
//! (str0m, over loopback UDP) that publishes one Opus-sized audio frame every
//! 20 ms and subscribes to the 16 others (the default most voices per listener): 272 down-tracks per room. Signaling
//! goes over the room channel exactly as browsers do it.
//!
//! Every frame carries its send time; each step measures, after all peers hear
//! all others and a warm-up: frames expected and received (loss); the latency
//! the SFU adds, from the server's own histogram (`/metrics`,
//! `roomscale_voice_forward_latency_seconds`: a datagram's arrival to its
//! forwarded copies being sent; percentiles are bucket upper edges, so never
//! optimistic); send -> receipt latency between the peers (which adds both
//! peers' stacks and this generator's scheduling); the server's CPU; and this
//! generator's lag and CPU. A step holds with < 1 % loss and an SFU p99 < 5 ms.
//!
//!   voice-load [--steps 110,220,...] [--server PATH]
//!
//! Environment: ROOMSCALE_SERVER_BIN (server binary, default: next to this
//! one), ROOMSCALE_LOAD_SERVER_CPU (default 0), ROOMSCALE_LOAD_CLIENT_CPU (default 1).

use std::cell::RefCell;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use roomscale_protocol::frame;
use roomscale_tests::load::Histogram;
use roomscale_tests::process;
use serde_json::{Value, json};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::Message;

const ROOM_SIZE: usize = 17;
const DOWN_TRACKS_PER_ROOM: usize = ROOM_SIZE * (ROOM_SIZE - 1);
const FRAME_PERIOD: Duration = Duration::from_millis(20);
/// An Opus voice frame at about 32 kbit/s.
const FRAME_BYTES: usize = 80;
const DEFAULT_STEPS: &[usize] = &[272, 544, 816, 1088, 1360];
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const WARM_UP: Duration = Duration::from_secs(2);
const MEASURE: Duration = Duration::from_secs(5);
/// Frames sent this close to the end of the window may still be in flight.
const GRACE: Duration = Duration::from_millis(300);
const MAX_LOSS: f64 = 0.01;
const MAX_P99_MS: f64 = 5.0;
const PINNED_ENV: &str = "ROOMSCALE_LOAD_PINNED";

type Result<T, E = String> = std::result::Result<T, E>;

fn main() -> ExitCode {
    let mut steps = DEFAULT_STEPS.to_vec();
    let mut server = std::env::var_os("ROOMSCALE_SERVER_BIN").map(PathBuf::from);
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
            _ => {
                eprintln!("voice-load: unknown argument {arg}; use --steps N,N,.. --server PATH");
                return ExitCode::FAILURE;
            }
        }
    }
    let cpu = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (server_cpu, client_cpu) = (
        cpu("ROOMSCALE_LOAD_SERVER_CPU", 0),
        cpu("ROOMSCALE_LOAD_CLIENT_CPU", 1),
    );
    if std::env::var_os(PINNED_ENV).is_none() {
        return process::reexec_pinned("voice-load", client_cpu, PINNED_ENV);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime starts");
    let local = tokio::task::LocalSet::new();
    match local.block_on(&runtime, bench(steps, server, server_cpu, client_cpu)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("voice-load: error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// What every peer adds to, shared on this one thread.
#[derive(Default)]
struct Tally {
    /// Measurement window on the generator clock, microseconds since `epoch`.
    window: Option<(u64, u64)>,
    sent_in_window: u64,
    received_in_window: u64,
    latency: Histogram,
    /// Lateness of the 20 ms send timer: the generator's own saturation.
    send_lag: Histogram,
    failures: Vec<String>,
}

struct Shared {
    epoch: Instant,
    addr: SocketAddr,
    tally: RefCell<Tally>,
}

impl Shared {
    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    fn in_window(&self, t_us: u64) -> bool {
        self.tally
            .borrow()
            .window
            .is_some_and(|(from, to)| t_us >= from && t_us < to)
    }
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
        // One timer for str0m's timeouts, moved rather than made anew each turn.
        let wake = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(wake);
        loop {
            let timeout = tokio::time::Instant::from_std(self.drain()?);
            if wake.deadline() != timeout {
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
        loop {
            match self
                .rtc
                .poll_output()
                .map_err(|e| format!("peer failed: {e}"))?
            {
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
                    if self.heard.insert(from)
                        && self.heard.len() == ROOM_SIZE - 1
                        && !self.counted_ready
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

struct Step {
    down_tracks: usize,
    loss: f64,
    sfu_p50_ms: f64,
    sfu_p99_ms: f64,
    p50_ms: f64,
    p99_ms: f64,
    server_cpu: f64,
    generator_cpu: f64,
    send_lag_p99_ms: f64,
}

async fn bench(
    steps: Vec<usize>,
    server: Option<PathBuf>,
    server_cpu: usize,
    client_cpu: usize,
) -> Result<()> {
    let binary = process::server_binary(server.as_deref())?;
    let server =
        process::start_server(&binary, server_cpu, &["--room-capacity", "25"], PINNED_ENV)?;
    let ticks_per_s = process::clock_ticks_per_second();
    println!(
        "server: {} pid {}, {} on CPU {server_cpu}, TOKIO_WORKER_THREADS=1; generator on CPU {client_cpu}",
        binary.display(),
        server.pid,
        server.addr
    );
    println!(
        "peers: str0m over loopback UDP, rooms of {ROOM_SIZE} ({DOWN_TRACKS_PER_ROOM} down-tracks each), \
         an {FRAME_BYTES}-byte frame every 20 ms per publisher; {} s warm-up, {} s measured",
        WARM_UP.as_secs(),
        MEASURE.as_secs()
    );
    println!(
        "pass: loss < {:.0} % and SFU-added p99 < {MAX_P99_MS} ms\n",
        MAX_LOSS * 100.0
    );
    println!(
        "down-tracks  peers   loss %  SFU p50/p99 ms  e2e p50/p99 ms  srvCPU %  genCPU %  genLag p99 ms  verdict"
    );
    let shared = Rc::new(Shared {
        epoch: Instant::now(),
        addr: server.addr,
        tally: RefCell::new(Tally::default()),
    });
    let ready = Rc::new(RefCell::new(0usize));
    let mut peers = 0usize;
    let mut held = None;
    let mut results = Vec::new();
    let server_pid = server.pid.to_string();
    for target in steps {
        let rooms = target.div_ceil(DOWN_TRACKS_PER_ROOM);
        while peers < rooms * ROOM_SIZE {
            let room = process::http_json(
                server.addr,
                "/api/rooms",
                json!({ "name": format!("voice load {}", peers / ROOM_SIZE) }),
                201,
            )
            .await?;
            let room_id = room["id"].as_str().ok_or("no room id")?.to_string();
            for _ in 0..ROOM_SIZE {
                let peer =
                    Peer::join(shared.clone(), peers as u32, &room_id, ready.clone()).await?;
                tokio::task::spawn_local(peer.run());
                peers += 1;
            }
        }
        let deadline = Instant::now() + READY_TIMEOUT;
        while *ready.borrow() < peers {
            if let Some(failure) = shared.tally.borrow().failures.first() {
                return Err(failure.clone());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "only {} of {peers} peers hear all {} others after {} s",
                    ready.borrow(),
                    ROOM_SIZE - 1,
                    READY_TIMEOUT.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(WARM_UP).await;
        {
            let mut tally = shared.tally.borrow_mut();
            let now = shared.now_us();
            tally.window = Some((now, now + (MEASURE - GRACE).as_micros() as u64));
            tally.sent_in_window = 0;
            tally.received_in_window = 0;
            tally.latency = Histogram::default();
            tally.send_lag = Histogram::default();
        }
        let histogram_before = forward_latency_buckets(server.addr).await;
        let server_before = process::sample_proc(&server_pid)?;
        let me_before = process::sample_proc("self")?;
        tokio::time::sleep(MEASURE).await;
        let server_after = process::sample_proc(&server_pid)?;
        let me_after = process::sample_proc("self")?;
        let histogram_after = forward_latency_buckets(server.addr).await;
        let sfu = bucket_delta(&histogram_before, &histogram_after);
        let seconds = server_after
            .at
            .duration_since(server_before.at)
            .as_secs_f64();
        let cpu = |a: u64, b: u64| (b - a) as f64 / ticks_per_s / seconds * 100.0;
        let tally = shared.tally.borrow();
        let down_tracks = rooms * DOWN_TRACKS_PER_ROOM;
        let loss = 1.0 - tally.received_in_window as f64 / tally.sent_in_window.max(1) as f64;
        let step = Step {
            down_tracks,
            loss: loss.max(0.0),
            sfu_p50_ms: bucket_quantile_ms(&sfu, 0.50),
            sfu_p99_ms: bucket_quantile_ms(&sfu, 0.99),
            p50_ms: tally.latency.quantile_ms(0.50),
            p99_ms: tally.latency.quantile_ms(0.99),
            server_cpu: cpu(server_before.cpu_ticks, server_after.cpu_ticks),
            generator_cpu: cpu(me_before.cpu_ticks, me_after.cpu_ticks),
            send_lag_p99_ms: tally.send_lag.quantile_ms(0.99),
        };
        let holds = step.loss < MAX_LOSS && step.sfu_p99_ms < MAX_P99_MS;
        let verdict = if holds {
            "held".to_string()
        } else if step.generator_cpu > 90.0 || step.send_lag_p99_ms > 5.0 {
            "STOP (generator saturated)".to_string()
        } else {
            "FAILED (server)".to_string()
        };
        println!(
            "{:>11}  {:>5}  {:>7.3}  {:>6.2}/{:<7.2}  {:>6.2}/{:<7.2}  {:>8.1}  {:>8.1}  {:>13.2}  {verdict}",
            step.down_tracks,
            peers,
            step.loss * 100.0,
            step.sfu_p50_ms,
            step.sfu_p99_ms,
            step.p50_ms,
            step.p99_ms,
            step.server_cpu,
            step.generator_cpu,
            step.send_lag_p99_ms,
        );
        drop(tally);
        if !holds {
            results.push(step);
            break;
        }
        held = Some(step.down_tracks);
        results.push(step);
    }
    let best = results.iter().rfind(|s| Some(s.down_tracks) == held);
    match best {
        Some(s) => println!(
            "\nvoice: down-tracks forwarded on one server core: {} (loss {:.3} %, server {:.0} % CPU) -- target >= 1000: {}\n\
             voice: latency the SFU adds at that load: p50 {:.2} ms, p99 {:.2} ms -- target p99 < 5 ms: {}\n\
             voice: peer to peer through the SFU (both WebRTC stacks and the generator's scheduling included): p50 {:.2} ms, p99 {:.2} ms",
            s.down_tracks,
            s.loss * 100.0,
            s.server_cpu,
            if s.down_tracks >= 1000 {
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
    if let Some(s) = results.last().filter(|s| Some(s.down_tracks) != held) {
        println!(
            "voice: first step not held: {} down-tracks (loss {:.3} %, SFU p99 {:.2} ms, server {:.0} % CPU, generator {:.0} % CPU)",
            s.down_tracks,
            s.loss * 100.0,
            s.sfu_p99_ms,
            s.server_cpu,
            s.generator_cpu
        );
    }
    Ok(())
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

/// The upper edge of the bucket holding quantile `q` of cumulative counts.
fn bucket_quantile_ms(cumulative: &[(f64, u64)], q: f64) -> f64 {
    let total = cumulative.last().map_or(0, |(_, c)| *c);
    if total == 0 {
        return f64::NAN;
    }
    let rank = (q * total as f64).ceil() as u64;
    cumulative
        .iter()
        .find(|(_, c)| *c >= rank)
        .map_or(f64::INFINITY, |(edge, _)| *edge)
}
