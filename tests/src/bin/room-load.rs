//! `room-load`: how many clients one server core holds.
//!
//! Starts the real `roomscale-server` binary pinned to one core
//! (`taskset -c 0`, `TOKIO_WORKER_THREADS=1`), and from this process, pinned to
//! another core with a single-threaded runtime, connects clients in rooms of 25
//! that each send a pose at 30 Hz, staggered over the period. The ramp adds
//! rooms step by step; each step gets 2 s of warm-up and 5 s of measurement:
//! poses sent and received, latency, the server's CPU (utime + stime from
//! /proc/PID/stat, all its threads) and RSS (VmRSS), and the generator's own lag
//! and CPU, so a saturated generator is told apart from a saturated server.
//!
//! Each pose carries its send time in the head position (see
//! `roomscale_tests::load`). Two latencies come out of each received batch:
//! - e2e: send -> receipt for every pose. It includes the wait for the room's
//!   next 30 Hz relay tick (0-33 ms by design), so its p99 is about 33 ms at best.
//! - relay: the age of the newest pose in the batch. Senders in a room are
//!   spread 1.3 ms apart, so this is the time from the relay tick to receipt
//!   (plus < 1.3 ms), including any queueing before the tick: what the server
//!   adds. A step holds while relay p99 < 20 ms, its median does not grow
//!   during the window, >= 95% of the poses arrive and no client drops.
//!
//!   room-load [--steps 250,500,...] [--server PATH] [--budget-secs S]
//!
//! After a failed step the ramp goes on while the server and the generator
//! both have CPU to spare, to show how the cost scales ("held" counts only up
//! to the first failure); then steps between the largest held and the smallest
//! failed count narrow the limit down to 250 clients.
//!
//! Environment: ROOMSCALE_SERVER_BIN (server binary, default: next to this one),
//! ROOMSCALE_LOAD_SERVER_CPU (default 0), ROOMSCALE_LOAD_CLIENT_CPU (default 1).

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use roomscale_protocol::frame::{self, ServerBinary};
use roomscale_protocol::pose::{self, BATCH_HEADER_BYTES, POSE_BYTES};
use roomscale_tests::load::{
    self, Failure, Histogram, Limits, StepFigures, batch_times, latency_us,
};
use roomscale_tests::process::{self, Server};
use serde_json::json;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

const ROOM_SIZE: usize = 25;
const POSE_PERIOD: Duration = Duration::from_nanos(1_000_000_000 / 30);
const DEFAULT_STEPS: &[usize] = &[250, 500, 1000, 1500, 2000, 2500, 3000, 3500, 4000];
const WARM_UP: Duration = Duration::from_secs(2);
const SLICES: u32 = 5;
const SLICE: Duration = Duration::from_secs(1);
/// Connections being set up at once.
const SETUP_CONCURRENCY: usize = 64;
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Refinement stops when the held and failed counts are this close.
const GRANULARITY: usize = 250;
const PINNED_ENV: &str = "ROOMSCALE_LOAD_PINNED";

type Result<T, E = String> = std::result::Result<T, E>;

fn main() -> ExitCode {
    let options = match Options::parse() {
        Ok(options) => options,
        Err(error) => {
            eprintln!("room-load: {error}");
            return ExitCode::FAILURE;
        }
    };
    if std::env::var_os(PINNED_ENV).is_none() {
        return process::reexec_pinned("room-load", options.client_cpu, PINNED_ENV);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime starts");
    let local = tokio::task::LocalSet::new();
    match local.block_on(&runtime, bench(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("room-load: error: {error}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, Clone)]
struct Options {
    steps: Vec<usize>,
    server: Option<PathBuf>,
    budget: Duration,
    server_cpu: usize,
    client_cpu: usize,
}

impl Options {
    fn parse() -> Result<Options> {
        let cpu = |name: &str, default: usize| -> Result<usize> {
            match std::env::var(name) {
                Ok(v) => v
                    .parse()
                    .map_err(|_| format!("{name}={v:?} is not a CPU number")),
                Err(_) => Ok(default),
            }
        };
        let mut options = Options {
            steps: DEFAULT_STEPS.to_vec(),
            server: std::env::var_os("ROOMSCALE_SERVER_BIN").map(PathBuf::from),
            budget: Duration::from_secs(170),
            server_cpu: cpu("ROOMSCALE_LOAD_SERVER_CPU", 0)?,
            client_cpu: cpu("ROOMSCALE_LOAD_CLIENT_CPU", 1)?,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or(format!("{arg} needs a value"));
            match arg.as_str() {
                "--steps" => {
                    let v = value()?;
                    options.steps = v
                        .split(',')
                        .map(|s| {
                            s.trim()
                                .parse::<usize>()
                                .ok()
                                .filter(|n| *n > 0 && n % ROOM_SIZE == 0)
                                .ok_or(format!(
                                    "--steps {v}: each step is a positive multiple of {ROOM_SIZE}"
                                ))
                        })
                        .collect::<Result<_>>()?;
                }
                "--server" => options.server = Some(value()?.into()),
                "--budget-secs" => {
                    let v = value()?;
                    options.budget = Duration::from_secs(
                        v.parse()
                            .map_err(|_| format!("--budget-secs {v}: not a number"))?,
                    );
                }
                other => {
                    return Err(format!(
                        "unknown argument {other}; use --steps N,N,.. --server PATH --budget-secs S"
                    ));
                }
            }
        }
        if options.server_cpu == options.client_cpu {
            return Err("the server and the clients need different CPUs".into());
        }
        Ok(options)
    }
}

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

/// What the clients count; the controller swaps it out once per slice.
#[derive(Default)]
struct Stats {
    sent: u64,
    batches: u64,
    poses_received: u64,
    e2e: Histogram,
    relay: Histogram,
    /// How late each send was against its schedule.
    lag: Histogram,
}

impl Stats {
    fn merge(&mut self, other: &Stats) {
        self.sent += other.sent;
        self.batches += other.batches;
        self.poses_received += other.poses_received;
        self.e2e.merge(&other.e2e);
        self.relay.merge(&other.relay);
        self.lag.merge(&other.lag);
    }
}

struct Shared {
    epoch: Instant,
    addr: SocketAddr,
    stats: RefCell<Stats>,
    joined: Cell<usize>,
    setup_errors: RefCell<Vec<String>>,
    disconnected: Cell<u64>,
    last_disconnect: RefCell<Option<String>>,
}

impl Shared {
    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

struct Room {
    stop: Rc<Cell<bool>>,
}

struct Client {
    shared: Rc<Shared>,
    room_id: String,
    /// Index of the room, for a phase offset between rooms.
    room: usize,
    seat: usize,
    stop: Rc<Cell<bool>>,
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

impl Client {
    async fn run(self, setup: Rc<Semaphore>) {
        let permit = setup.acquire().await.expect("never closed");
        let joined = tokio::time::timeout(SETUP_TIMEOUT, self.connect_and_join()).await;
        drop(permit);
        let (ws, join_ref) = match joined {
            Ok(Ok(joined)) => joined,
            Ok(Err(error)) => return self.shared.setup_errors.borrow_mut().push(error),
            Err(_) => {
                return self
                    .shared
                    .setup_errors
                    .borrow_mut()
                    .push(format!("no join within {SETUP_TIMEOUT:?}"));
            }
        };
        self.shared.joined.set(self.shared.joined.get() + 1);
        if let Err(reason) = self.pose_loop(ws, &join_ref).await {
            self.shared
                .disconnected
                .set(self.shared.disconnected.get() + 1);
            *self.shared.last_disconnect.borrow_mut() = Some(reason);
        }
        self.shared.joined.set(self.shared.joined.get() - 1);
    }

    fn topic(&self) -> String {
        roomscale_protocol::room_topic(&self.room_id)
    }

    async fn connect_and_join(&self) -> Result<(Ws, String)> {
        let addr = self.shared.addr;
        let name = format!("load-{}-{}", self.room, self.seat);
        let session =
            process::http_json(addr, "/api/session", json!({ "name": name }), 200).await?;
        let token = session["token"].as_str().ok_or("no token in the session")?;
        let url = format!("ws://{addr}/socket/websocket?vsn=2.0.0&token={token}");
        // Small buffers: thousands of sockets live in this process.
        let config = WebSocketConfig::default()
            .read_buffer_size(2048)
            .write_buffer_size(0);
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
            .await
            .map_err(|e| format!("WebSocket connect: {e}"))?;
        let topic = self.topic();
        let join_ref = "1".to_string();
        let payload = json!({
            "protocol_version": roomscale_protocol::PROTOCOL_VERSION,
            "name": name,
            "colour": "#3a7bd5",
            "client_kind": "desktop",
        });
        let text = frame::encode_text_parts(
            Some(&join_ref),
            Some(&join_ref),
            &topic,
            frame::control::JOIN,
            &payload,
        );
        ws.send(Message::text(text))
            .await
            .map_err(|e| format!("sending the join: {e}"))?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    let Ok(reply) = frame::decode_text(&text) else {
                        continue;
                    };
                    if reply.event == frame::control::REPLY
                        && reply.msg_ref.as_deref() == Some(&join_ref)
                    {
                        if reply.payload["status"] == "ok" {
                            return Ok((ws, join_ref));
                        }
                        return Err(format!("join refused: {}", reply.payload["response"]));
                    }
                }
                Some(Ok(Message::Close(close))) => {
                    return Err(format!("closed on join: {close:?}"));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("socket error on join: {e}")),
                None => return Err("socket ended on join".into()),
            }
        }
    }

    /// Sends a pose every period at this client's phase, reads batches meanwhile.
    async fn pose_loop(&self, mut ws: Ws, join_ref: &str) -> Result<()> {
        let shared = &self.shared;
        let mut template = Vec::new();
        frame::encode_client_push(
            &mut template,
            join_ref,
            "",
            &self.topic(),
            roomscale_protocol::events::POSE_EVENT,
            &[0; POSE_BYTES],
        )
        .expect("a room topic fits");
        let pose_at = template.len() - POSE_BYTES;

        // Seats spread evenly over the period; rooms offset by the golden ratio.
        let period_ns = POSE_PERIOD.as_nanos() as u64;
        let room_offset = (self.room as f64 * 0.618_034).fract();
        let phase_ns =
            ((self.seat as f64 + room_offset) / ROOM_SIZE as f64 * period_ns as f64) as u64;
        let since_epoch = shared.epoch.elapsed().as_nanos() as u64;
        let periods = (since_epoch.saturating_sub(phase_ns)) / period_ns + 1;
        let first = shared.epoch + Duration::from_nanos(phase_ns + periods * period_ns);
        let mut tick = tokio::time::interval_at(first.into(), POSE_PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);

        loop {
            tokio::select! {
                scheduled = tick.tick() => {
                    if self.stop.get() {
                        let _ = ws.close(None).await;
                        return Ok(());
                    }
                    let now = Instant::now();
                    let lag = now.saturating_duration_since(scheduled.into_std());
                    let t_us = now.duration_since(shared.epoch).as_micros() as u64;
                    let mut push = template.clone();
                    push[pose_at..].copy_from_slice(&pose::encode_pose(0, &load::pose_carrying_time(t_us)));
                    ws.send(Message::binary(push)).await.map_err(|e| format!("send: {e}"))?;
                    let mut stats = shared.stats.borrow_mut();
                    stats.sent += 1;
                    stats.lag.record(lag.as_micros() as u64);
                }
                message = ws.next() => match message {
                    Some(Ok(Message::Binary(bytes))) => self.on_batch(&bytes),
                    Some(Ok(Message::Close(close))) => return Err(format!("server closed: {close:?}")),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(format!("socket error: {e}")),
                    None => return Err("socket ended".into()),
                },
            }
        }
    }

    fn on_batch(&self, bytes: &[u8]) {
        let Ok(ServerBinary::Broadcast {
            event: "poses",
            payload,
            ..
        }) = frame::decode_server_binary(bytes)
        else {
            return;
        };
        if pose::decode_batch(payload).is_err() {
            return;
        }
        let now = self.shared.now_us();
        let mut stats = self.shared.stats.borrow_mut();
        let mut newest = u64::MAX;
        let mut count = 0;
        for sent in batch_times(&payload[BATCH_HEADER_BYTES..]) {
            let latency = latency_us(now, sent);
            stats.e2e.record(latency);
            newest = newest.min(latency);
            count += 1;
        }
        if count > 0 {
            stats.relay.record(newest);
            stats.batches += 1;
            stats.poses_received += count;
        }
    }
}

// ---------------------------------------------------------------------------
// The ramp
// ---------------------------------------------------------------------------

struct Bench {
    options: Options,
    server: Server,
    shared: Rc<Shared>,
    rooms: Vec<Room>,
    room_ids: Vec<String>,
    setup: Rc<Semaphore>,
    ticks_per_s: f64,
    idle_rss: u64,
    limits: Limits,
}

/// One measured step.
#[derive(Debug, Clone)]
struct Step {
    clients: usize,
    /// Reached by removing rooms after a failed step (RSS then includes the
    /// allocator's memory from the larger step).
    after_shrink: bool,
    sent_per_s: f64,
    received_per_s: f64,
    delivered: f64,
    e2e_p50: f64,
    e2e_p99: f64,
    relay_p50: f64,
    relay_p99: f64,
    relay_max: f64,
    server_cpu: f64,
    /// Busy time of the server's core beyond the server's own CPU time, and
    /// of the client core beyond this process's: other load, interrupts.
    core_other: f64,
    gen_core_other: f64,
    rss: u64,
    gen_lag_p99: f64,
    gen_cpu: f64,
    server_dropped_per_s: f64,
    verdict: Result<(), Failure>,
}

impl Step {
    fn cpu_per_100(&self) -> f64 {
        self.server_cpu / (self.clients as f64 / 100.0)
    }
}

impl Bench {
    /// Adds or removes whole rooms until `clients` are connected and joined.
    async fn set_clients(&mut self, clients: usize) -> Result<()> {
        let want_rooms = clients / ROOM_SIZE;
        while self.rooms.len() > want_rooms {
            let room = self.rooms.pop().expect("more rooms than wanted");
            room.stop.set(true);
        }
        while self.room_ids.len() < want_rooms {
            let n = self.room_ids.len();
            let room = process::http_json(
                self.server.addr,
                "/api/rooms",
                json!({ "name": format!("load {n}"), "description": "" }),
                201,
            )
            .await?;
            let id = room["id"].as_str().ok_or("no id in the created room")?;
            self.room_ids.push(id.to_string());
        }
        while self.rooms.len() < want_rooms {
            let index = self.rooms.len();
            let stop = Rc::new(Cell::new(false));
            for seat in 0..ROOM_SIZE {
                let client = Client {
                    shared: self.shared.clone(),
                    room_id: self.room_ids[index].clone(),
                    room: index,
                    seat,
                    stop: stop.clone(),
                };
                tokio::task::spawn_local(client.run(self.setup.clone()));
            }
            self.rooms.push(Room { stop });
        }
        let deadline = Instant::now() + SETUP_TIMEOUT + Duration::from_secs(5);
        loop {
            if let Some(error) = self.shared.setup_errors.borrow().first() {
                return Err(format!(
                    "{} clients could not connect and join; first: {error}",
                    self.shared.setup_errors.borrow().len()
                ));
            }
            if self.shared.joined.get() == clients {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "only {} of {clients} clients joined within {SETUP_TIMEOUT:?}",
                    self.shared.joined.get()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn measure(&mut self, clients: usize, after_shrink: bool) -> Result<Step> {
        tokio::time::sleep(WARM_UP).await;
        let server_pid = self.server.pid.to_string();
        let counters = [
            "roomscale_poses_dropped_total",
            "roomscale_poses_relayed_total",
        ];
        let before_counters = process::server_counter(self.server.addr, &counters).await;
        let disconnected_before = self.shared.disconnected.get();
        drop(self.shared.stats.take());
        let server_before = process::sample_proc(&server_pid)?;
        let me_before = process::sample_proc("self")?;
        let core_before = process::cpu_jiffies(self.options.server_cpu);
        let gen_core_before = process::cpu_jiffies(self.options.client_cpu);
        let start = server_before.at;

        let mut slices = Vec::new();
        for k in 1..=SLICES {
            tokio::time::sleep_until((start + SLICE * k).into()).await;
            slices.push(self.shared.stats.take());
        }
        let server_after = process::sample_proc(&server_pid)?;
        let me_after = process::sample_proc("self")?;
        let core_after = process::cpu_jiffies(self.options.server_cpu);
        let gen_core_after = process::cpu_jiffies(self.options.client_cpu);
        let after_counters = process::server_counter(self.server.addr, &counters).await;
        let elapsed = (server_after.at - start).as_secs_f64();

        let mut total = Stats::default();
        for slice in &slices {
            total.merge(slice);
        }
        let server_cpu =
            (server_after.cpu_ticks - server_before.cpu_ticks) as f64 / self.ticks_per_s / elapsed;
        let gen_cpu =
            (me_after.cpu_ticks - me_before.cpu_ticks) as f64 / self.ticks_per_s / elapsed;
        let core_busy = (core_after.0 - core_before.0) as f64 / self.ticks_per_s / elapsed;
        let gen_core_busy =
            (gen_core_after.0 - gen_core_before.0) as f64 / self.ticks_per_s / elapsed;
        let expected = total.sent as f64 * (ROOM_SIZE - 1) as f64;
        let delivered = if expected > 0.0 {
            total.poses_received as f64 / expected
        } else {
            0.0
        };
        let figures = StepFigures {
            relay_p99_ms: total.relay.quantile_ms(0.99),
            relay_p50_per_slice_ms: slices.iter().map(|s| s.relay.quantile_ms(0.5)).collect(),
            delivered,
            generator_lag_p99_ms: total.lag.quantile_ms(0.99),
            // All of its core: softirq work for its sockets is not charged to it.
            generator_cpu: gen_core_busy.max(gen_cpu),
            disconnected: self.shared.disconnected.get() - disconnected_before,
            server_cpu,
        };
        Ok(Step {
            clients,
            after_shrink,
            sent_per_s: total.sent as f64 / elapsed,
            received_per_s: total.poses_received as f64 / elapsed,
            delivered,
            e2e_p50: total.e2e.quantile_ms(0.5),
            e2e_p99: total.e2e.quantile_ms(0.99),
            relay_p50: total.relay.quantile_ms(0.5),
            relay_p99: figures.relay_p99_ms,
            relay_max: total.relay.max_us() as f64 / 1000.0,
            server_cpu,
            core_other: (core_busy - server_cpu).max(0.0),
            gen_core_other: (gen_core_busy - gen_cpu).max(0.0),
            rss: server_after.rss,
            gen_lag_p99: figures.generator_lag_p99_ms,
            gen_cpu,
            server_dropped_per_s: (after_counters[0].saturating_sub(before_counters[0])) as f64
                / elapsed,
            verdict: load::judge(&figures, &self.limits),
        })
    }

    fn print_header(&self) {
        println!(
            "{:>7} {:>7} {:>8} {:>6} {:>13} {:>19} {:>6} {:>6} {:>7} {:>7} {:>7} {:>6} {:>6} {:>6}  verdict",
            "clients",
            "sent/s",
            "recv/s",
            "deliv",
            "e2e p50/p99",
            "relay p50/p99/max",
            "srvCPU",
            "/100cl",
            "RSS",
            "RSS/cl",
            "srvDrop",
            "others",
            "genLag",
            "genCPU",
        );
        println!(
            "{:>7} {:>7} {:>8} {:>6} {:>13} {:>19} {:>6} {:>6} {:>7} {:>7} {:>7} {:>6} {:>6} {:>6}",
            "",
            "poses",
            "poses",
            "%",
            "ms",
            "ms",
            "%core",
            "%core",
            "MiB",
            "KiB",
            "/s",
            "%s/%c",
            "p99 ms",
            "%",
        );
    }

    fn print_step(&self, s: &Step) {
        let rss_per_client = (s.rss.saturating_sub(self.idle_rss)) as f64 / s.clients as f64;
        let verdict = match &s.verdict {
            Ok(()) => "held".to_string(),
            Err(Failure::Server(r)) => format!("FAILED (server): {r}"),
            Err(Failure::Generator(r)) => format!("STOP (generator): {r}"),
        };
        println!(
            "{:>7} {:>7.0} {:>8.0} {:>6.1} {:>6.1}/{:<6.1} {:>5.1}/{:>5.1}/{:>6.1} {:>6.1} {:>6.2} {:>7.1} {:>7.1} {:>7.0} {:>3.0}/{:<2.0} {:>6.1} {:>6.0}  {verdict}{}",
            s.clients,
            s.sent_per_s,
            s.received_per_s,
            s.delivered * 100.0,
            s.e2e_p50,
            s.e2e_p99,
            s.relay_p50,
            s.relay_p99,
            s.relay_max,
            s.server_cpu * 100.0,
            s.cpu_per_100() * 100.0,
            s.rss as f64 / (1024.0 * 1024.0),
            rss_per_client / 1024.0,
            s.server_dropped_per_s,
            s.core_other * 100.0,
            s.gen_core_other * 100.0,
            s.gen_lag_p99,
            s.gen_cpu * 100.0,
            if s.after_shrink {
                " (after shrinking)"
            } else {
                ""
            },
        );
    }
}

async fn bench(options: Options) -> Result<()> {
    let started = Instant::now();
    let largest = options.steps.iter().copied().max().unwrap_or(0);
    let fd_limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| load::parse_open_files_limit(&l));
    if let Some(limit) = fd_limit
        && (limit as usize) < largest + 256
    {
        return Err(format!(
            "the open-files limit is {limit}, too low for {largest} clients (each needs a socket \
             here and one in the server); raise it with `ulimit -n {}` or use smaller --steps",
            largest + 256
        ));
    }
    let binary = process::server_binary(options.server.as_deref())?;
    let server = process::start_server(
        &binary,
        options.server_cpu,
        &["--room-capacity", "25"],
        PINNED_ENV,
    )?;
    let ticks_per_s = process::clock_ticks_per_second();
    let shared = Rc::new(Shared {
        epoch: Instant::now(),
        addr: server.addr,
        stats: RefCell::default(),
        joined: Cell::new(0),
        setup_errors: RefCell::default(),
        disconnected: Cell::new(0),
        last_disconnect: RefCell::default(),
    });
    let server_pid = server.pid;
    let mut bench = Bench {
        options: options.clone(),
        server,
        shared,
        rooms: Vec::new(),
        room_ids: Vec::new(),
        setup: Rc::new(Semaphore::new(SETUP_CONCURRENCY)),
        ticks_per_s,
        idle_rss: 0,
        limits: Limits::default(),
    };
    // Settle, then the idle baseline.
    tokio::time::sleep(Duration::from_millis(500)).await;
    bench.idle_rss = process::sample_proc(&server_pid.to_string())?.rss;
    let modified = std::fs::metadata(&binary)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .map_or("?".into(), |age| {
            format!("{:.0} min", age.as_secs_f64() / 60.0)
        });
    println!(
        "server: {} (built {modified} ago), pid {server_pid}, {} on CPU {}, TOKIO_WORKER_THREADS=1",
        binary.display(),
        bench.server.addr,
        options.server_cpu,
    );
    println!(
        "server threads: {}; idle RSS {:.1} MiB",
        process::thread_names(server_pid),
        bench.idle_rss as f64 / (1024.0 * 1024.0)
    );
    println!(
        "clients: this process on CPU {}, one thread; rooms of {ROOM_SIZE}, a pose each 33.3 ms; \
         per step {:?} warm-up + {}x{:?} measured; open-files limit {}; load average {}",
        options.client_cpu,
        WARM_UP,
        SLICES,
        SLICE,
        fd_limit.map_or("unlimited".into(), |l| l.to_string()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    );
    println!(
        "pass: relay p99 < {} ms, relay median growth <= {} ms over the window, >= {:.0}% delivered, \
         no disconnects; generator counts as saturated at send lag p99 >= {} ms or CPU >= {:.0}%",
        bench.limits.relay_p99_ms,
        bench.limits.backlog_growth_ms,
        bench.limits.min_delivered * 100.0,
        bench.limits.generator_lag_p99_ms,
        bench.limits.generator_cpu * 100.0,
    );
    println!();
    bench.print_header();

    let mut steps: Vec<Step> = Vec::new();
    // The largest step held with every smaller step held too.
    let mut held: Option<usize> = None;
    // The smallest step that failed.
    let mut failed: Option<(usize, Failure)> = None;
    let mut last_step_time = Duration::from_secs(10);
    let mut stopped_for_time = false;
    let mut ramp: Vec<usize> = options.steps.clone();
    ramp.reverse();
    let mut shrinking = false;
    loop {
        // Up the ramp first; then, between the largest step held and the
        // smallest that failed, halve the gap down to GRANULARITY.
        let next = match ramp.pop() {
            Some(clients) => clients,
            None => {
                let low = held.unwrap_or(0);
                match &failed {
                    Some((high, _)) if high - low > GRANULARITY => {
                        let mid = (low + high) / 2 / ROOM_SIZE * ROOM_SIZE;
                        if mid <= low {
                            break;
                        }
                        // Rooms come and go whole; below the current count this
                        // removes rooms, and RSS keeps the larger step's memory.
                        shrinking |= mid < bench.rooms.len() * ROOM_SIZE;
                        mid
                    }
                    _ => break,
                }
            }
        };
        if started.elapsed() + last_step_time + Duration::from_secs(3) > options.budget {
            stopped_for_time = true;
            break;
        }
        let step_started = Instant::now();
        if let Err(error) = bench.set_clients(next).await {
            println!("{next:>7}  FAILED (server): {error}");
            if failed.as_ref().is_none_or(|(at, _)| next < *at) {
                failed = Some((next, Failure::Server(error)));
            }
            break;
        }
        let step = bench.measure(next, shrinking).await?;
        bench.print_step(&step);
        last_step_time = step_started.elapsed();
        let verdict = step.verdict.clone();
        let server_saturated = step.server_cpu >= bench.limits.server_saturated_cpu;
        steps.push(step);
        match verdict {
            Ok(()) => {
                if failed.as_ref().is_none_or(|(at, _)| next < *at) {
                    held = Some(held.map_or(next, |h| h.max(next)));
                }
            }
            Err(failure) => {
                let generator = matches!(failure, Failure::Generator(_));
                if failed.as_ref().is_none_or(|(at, _)| next < *at) {
                    failed = Some((next, failure));
                }
                // Past a failure, the ramp goes on only while both sides have
                // CPU to spare: it shows how the cost scales, and "held" still
                // counts only up to the first failure.
                if generator || server_saturated {
                    ramp.clear();
                }
            }
        }
    }
    for room in &bench.rooms {
        room.stop.set(true);
    }

    // Summary.
    println!();
    let server_log = bench.server.log.lock().expect("not poisoned");
    if server_log.lines > 0 {
        println!(
            "server logged {} warning/error lines, first: {}",
            server_log.lines,
            server_log.first.join(" | ")
        );
    }
    if let Some(reason) = bench.shared.last_disconnect.borrow().as_ref() {
        println!(
            "clients disconnected: {} (last: {reason})",
            bench.shared.disconnected.get()
        );
    }
    let best = held.and_then(|h| steps.iter().rfind(|s| s.clients == h && s.verdict.is_ok()));
    // Cost figures come from the largest step measured on the way up with the
    // server below saturation (a saturated server's CPU says nothing per client;
    // a step reached by shrinking still holds the larger step's memory).
    let costed = steps
        .iter()
        .filter(|s| !s.after_shrink && s.server_cpu < bench.limits.server_saturated_cpu)
        .max_by_key(|s| s.clients)
        .or(steps.first());
    match best {
        Some(best) => println!(
            "room load: max clients held on one server core: {} (relay p99 {:.1} ms, e2e p99 {:.1} ms, \
             no backlog) -- target >= 2000: {}",
            best.clients,
            best.relay_p99,
            best.e2e_p99,
            if best.clients >= 2000 {
                "met"
            } else {
                "NOT MET"
            }
        ),
        None => println!(
            "room load: max clients held on one server core: 0 (no step held) -- target >= 2000: NOT MET"
        ),
    }
    if let Some(s) = costed {
        let held_note = if s.verdict.is_ok() {
            ""
        } else {
            ", a step that did not hold"
        };
        println!(
            "room load: server CPU per 100 clients: {:.2}% of one core (at {} clients{held_note}: {:.0}%); \
             CPU-bound estimate {:.0} clients at 100%",
            s.cpu_per_100() * 100.0,
            s.clients,
            s.server_cpu * 100.0,
            100.0 / s.cpu_per_100()
        );
        let per_client = s.rss.saturating_sub(bench.idle_rss) as f64 / s.clients as f64;
        println!(
            "room load: RSS per client: {:.1} KiB (({:.1} MiB at {} clients - {:.1} MiB idle) / {}) -- target < 64 KiB: {}",
            per_client / 1024.0,
            s.rss as f64 / (1024.0 * 1024.0),
            s.clients,
            bench.idle_rss as f64 / (1024.0 * 1024.0),
            s.clients,
            if per_client < 64.0 * 1024.0 {
                "met"
            } else {
                "NOT MET"
            }
        );
    }
    match (&failed, stopped_for_time) {
        (Some((at, Failure::Server(reason))), _) => {
            println!("room load: limit: the server, at {at} clients: {reason}")
        }
        (Some((at, Failure::Generator(reason))), _) => println!(
            "room load: limit: the load generator, at {at} clients ({reason}); the server was not \
             saturated, so the figure is a lower bound"
        ),
        (None, true) => println!(
            "room load: limit: time budget ({:?}) reached before a step failed; the figure is a lower bound",
            options.budget
        ),
        (None, false) => println!(
            "room load: limit: none reached; the largest step held, so the figure is a lower bound"
        ),
    }
    println!("room load: took {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}
