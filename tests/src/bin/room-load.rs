//! `room-load`: how many clients one server core holds.
//!
//! Starts the real `roomscale-server` binary pinned to its cores (`taskset`,
//! `TOKIO_WORKER_THREADS` = their count) and connects clients in rooms of 25
//! that each send a pose at 30 Hz, staggered over the period. The clients live
//! in generator processes, each pinned to a core of its own with a
//! single-threaded runtime, and each holding whole rooms; this process only
//! steers them and adds up their figures (JSON lines over their stdin and
//! stdout). The ramp adds rooms step by step; each step gets 2 s of warm-up
//! and 5 s of measurement: poses sent and received, latency, the server's CPU
//! (utime + stime from /proc/PID/stat, all its threads) and RSS (VmRSS), and
//! each generator's own lag and CPU, so a saturated generator is told apart
//! from a saturated server.
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
//! ```text
//! room-load [--steps 250,500,...] [--server PATH] [--budget-secs S]
//!           [--server-cores 1,2,...] [--generator-cores N]
//! ```
//!
//! `--server-cores` runs the whole ramp once per count, the steps multiplied by
//! the count, and prints the clients held per server core at each; a count
//! this machine has no room for (with the generator cores beside it) is
//! skipped with the command a bigger machine would run. `--generator-cores N`
//! (default 1) spreads the rooms over N generator processes.
//!
//! After a failed step the ramp goes on while the server and the generators
//! all have CPU to spare, to show how the cost scales ("held" counts only up
//! to the first failure); then steps between the largest held and the
//! smallest failed count narrow the limit down to 250 clients per server core.
//!
//! Environment: ROOMSCALE_SERVER_BIN (server binary, default: next to this one),
//! ROOMSCALE_LOAD_SERVER_CPU (the server's first core, default 0),
//! ROOMSCALE_LOAD_CLIENT_CPU (the generators' first core, default just past
//! the server's).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use roomscale_protocol::frame::{self, ServerBinary};
use roomscale_protocol::pose::{self, BATCH_HEADER_BYTES, POSE_BYTES};
use roomscale_tests::load::{
    self, CorePlan, Failure, Histogram, Limits, StepFigures, batch_times, latency_us,
};
use roomscale_tests::process::{self, GeneratorProcess, Server};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt as _;
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

const ROOM_SIZE: usize = 25;
const POSE_PERIOD: Duration = Duration::from_nanos(1_000_000_000 / 30);
const DEFAULT_STEPS: &[usize] = &[250, 500, 1000, 1500, 2000, 2500, 3000, 3500, 4000];
const WARM_UP: Duration = Duration::from_secs(2);
const SLICES: u32 = 5;
const SLICE: Duration = Duration::from_secs(1);
/// Connections being set up at once, per generator process.
const SETUP_CONCURRENCY: usize = 64;
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Refinement stops when the held and failed counts are this close (per
/// server core).
const GRANULARITY: usize = 250;
const PINNED_ENV: &str = "ROOMSCALE_LOAD_PINNED";
/// The first argument of a generator process (this program, run by itself).
const GENERATOR_ARG: &str = "--generator-process";

type Result<T, E = String> = std::result::Result<T, E>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(GENERATOR_ARG) {
        return generator::main(&args[1..]);
    }
    let options = match Options::parse(&args) {
        Ok(options) => options,
        Err(error) => {
            eprintln!("room-load: {error}");
            return ExitCode::FAILURE;
        }
    };
    if std::env::var_os(PINNED_ENV).is_none() {
        // This process only steers; it keeps off the server's cores.
        return process::reexec_pinned_to(
            "room-load",
            &load::cpu_list(&options.controller_cores()),
            PINNED_ENV,
        );
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
    /// Steps for one server core; a ramp on k cores runs each times k.
    steps: Vec<usize>,
    server: Option<PathBuf>,
    budget: Duration,
    /// Server core counts, one ramp each.
    server_cores: Vec<usize>,
    generator_cores: usize,
    first_server_cpu: usize,
    first_generator_cpu: Option<usize>,
    available_cores: usize,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options> {
        let cpu = |name: &str| -> Result<Option<usize>> {
            match std::env::var(name) {
                Ok(v) => v
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("{name}={v:?} is not a CPU number")),
                Err(_) => Ok(None),
            }
        };
        let counts = |flag: &str, v: &str| -> Result<Vec<usize>> {
            v.split(',')
                .map(|s| {
                    s.trim()
                        .parse::<usize>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or(format!(
                            "{flag} {v}: a list of positive numbers, e.g. 1,2,4"
                        ))
                })
                .collect()
        };
        let mut options = Options {
            steps: DEFAULT_STEPS.to_vec(),
            server: std::env::var_os("ROOMSCALE_SERVER_BIN").map(PathBuf::from),
            budget: Duration::from_secs(170),
            server_cores: vec![1],
            generator_cores: 1,
            first_server_cpu: cpu("ROOMSCALE_LOAD_SERVER_CPU")?.unwrap_or(0),
            first_generator_cpu: cpu("ROOMSCALE_LOAD_CLIENT_CPU")?,
            available_cores: process::available_cores(),
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or(format!("{arg} needs a value"));
            match arg.as_str() {
                "--steps" => {
                    let v = value()?;
                    options.steps = counts("--steps", v)?;
                    if let Some(bad) = options.steps.iter().find(|n| *n % ROOM_SIZE != 0) {
                        return Err(format!(
                            "--steps {v}: {bad} is not a multiple of {ROOM_SIZE} (rooms come whole)"
                        ));
                    }
                }
                "--server" => options.server = Some(value()?.into()),
                "--budget-secs" => {
                    let v = value()?;
                    options.budget = Duration::from_secs(
                        v.parse()
                            .map_err(|_| format!("--budget-secs {v}: not a number"))?,
                    );
                }
                "--server-cores" => options.server_cores = counts("--server-cores", value()?)?,
                "--generator-cores" => {
                    let v = value()?;
                    options.generator_cores = v
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or(format!("--generator-cores {v}: a positive number"))?;
                }
                other => {
                    return Err(format!(
                        "unknown argument {other}; use --steps N,N,.. --server PATH \
                         --budget-secs S --server-cores K,K,.. --generator-cores N"
                    ));
                }
            }
        }
        Ok(options)
    }

    fn plan(&self, server_cores: usize) -> Result<CorePlan> {
        CorePlan::new(
            server_cores,
            self.generator_cores,
            self.first_server_cpu,
            self.first_generator_cpu,
            self.available_cores,
        )
    }

    /// Where the steering process runs: off every server core of every ramp
    /// where the machine allows, else beside the first ramp's generators.
    fn controller_cores(&self) -> Vec<usize> {
        let plans: Vec<CorePlan> = self
            .server_cores
            .iter()
            .filter_map(|&k| self.plan(k).ok())
            .collect();
        let free: Vec<usize> = (0..self.available_cores)
            .filter(|c| plans.iter().all(|p| !p.server.contains(c)))
            .collect();
        match (free.is_empty(), plans.first()) {
            (false, _) => free,
            (true, Some(plan)) => plan.generators.clone(),
            (true, None) => (0..self.available_cores).collect(),
        }
    }
}

// ---------------------------------------------------------------------------
// Clients (in a generator process)
// ---------------------------------------------------------------------------

/// What the clients count; the controller takes it once per slice.
#[derive(Default)]
struct Stats {
    sent: u64,
    batches: u64,
    poses_received: u64,
    e2e: Histogram,
    relay: Histogram,
    /// How late each send was against its schedule.
    lag: Histogram,
    /// Clients whose socket closed or failed.
    disconnected: u64,
}

impl Stats {
    fn merge(&mut self, other: &Stats) {
        self.sent += other.sent;
        self.batches += other.batches;
        self.poses_received += other.poses_received;
        self.e2e.merge(&other.e2e);
        self.relay.merge(&other.relay);
        self.lag.merge(&other.lag);
        self.disconnected += other.disconnected;
    }

    fn to_json(&self) -> Value {
        json!({
            "sent": self.sent,
            "batches": self.batches,
            "poses_received": self.poses_received,
            "e2e": self.e2e.to_json(),
            "relay": self.relay.to_json(),
            "lag": self.lag.to_json(),
            "disconnected": self.disconnected,
        })
    }

    fn from_json(value: &Value) -> Result<Stats> {
        let count = |key: &str| {
            value[key]
                .as_u64()
                .ok_or(format!("a generator's figures lack {key}: {value}"))
        };
        let histogram = |key: &str| {
            Histogram::from_json(&value[key])
                .ok_or(format!("a generator's figures lack the {key} histogram"))
        };
        Ok(Stats {
            sent: count("sent")?,
            batches: count("batches")?,
            poses_received: count("poses_received")?,
            e2e: histogram("e2e")?,
            relay: histogram("relay")?,
            lag: histogram("lag")?,
            disconnected: count("disconnected")?,
        })
    }
}

struct Shared {
    epoch: Instant,
    addr: SocketAddr,
    stats: RefCell<Stats>,
    joined: Cell<usize>,
    setup_errors: RefCell<Vec<String>>,
    last_disconnect: RefCell<Option<String>>,
    /// Told when `joined` or `setup_errors` change.
    changed: Notify,
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
        let shared = &self.shared;
        let (ws, join_ref, slot) = match joined {
            Ok(Ok(joined)) => joined,
            Ok(Err(error)) => {
                shared.setup_errors.borrow_mut().push(error);
                return shared.changed.notify_waiters();
            }
            Err(_) => {
                let error = format!("no join within {SETUP_TIMEOUT:?}");
                shared.setup_errors.borrow_mut().push(error);
                return shared.changed.notify_waiters();
            }
        };
        shared.joined.set(shared.joined.get() + 1);
        shared.changed.notify_waiters();
        if let Err(reason) = self.pose_loop(ws, &join_ref, slot).await {
            shared.stats.borrow_mut().disconnected += 1;
            *shared.last_disconnect.borrow_mut() = Some(reason);
        }
        shared.joined.set(shared.joined.get() - 1);
        shared.changed.notify_waiters();
    }

    fn topic(&self) -> String {
        roomscale_protocol::room_topic(&self.room_id)
    }

    /// Connects and joins; the socket, the join ref and the slot the room gave.
    async fn connect_and_join(&self) -> Result<(Ws, String, Option<u16>)> {
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
                            let slot = reply.payload["response"]["slot"]
                                .as_u64()
                                .and_then(|slot| u16::try_from(slot).ok());
                            return Ok((ws, join_ref, slot));
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
    async fn pose_loop(&self, mut ws: Ws, join_ref: &str, slot: Option<u16>) -> Result<()> {
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
                    Some(Ok(Message::Binary(bytes))) => self.on_batch(&bytes, slot),
                    Some(Ok(Message::Close(close))) => return Err(format!("server closed: {close:?}")),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(format!("socket error: {e}")),
                    None => return Err("socket ended".into()),
                },
            }
        }
    }

    /// Counts the others' poses in a batch (`own_slot`'s is this client's own).
    fn on_batch(&self, bytes: &[u8], own_slot: Option<u16>) {
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
        for sent in batch_times(&payload[BATCH_HEADER_BYTES..], own_slot) {
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
// A generator process: holds the rooms the controller deals it
// ---------------------------------------------------------------------------

mod generator {
    use super::*;

    /// `room-load --generator-process ADDR`: runs clients against the server
    /// at ADDR, taking requests as JSON lines on stdin:
    /// - `{"do": "rooms", "rooms": [[index, id], ...]}`: hold exactly these
    ///   rooms (whole rooms of 25 join or leave); answers once all are joined.
    /// - `{"do": "take"}`: the figures counted since the last take.
    ///
    /// Ends when stdin closes.
    pub fn main(args: &[String]) -> ExitCode {
        let Some(addr) = args.first().and_then(|a| a.parse::<SocketAddr>().ok()) else {
            eprintln!("room-load: {GENERATOR_ARG} needs the server's address");
            return ExitCode::FAILURE;
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime starts");
        let local = tokio::task::LocalSet::new();
        match local.block_on(&runtime, serve(addr)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("room-load: generator process: {error}");
                ExitCode::FAILURE
            }
        }
    }

    async fn serve(addr: SocketAddr) -> Result<()> {
        let shared = Rc::new(Shared {
            epoch: Instant::now(),
            addr,
            stats: RefCell::default(),
            joined: Cell::new(0),
            setup_errors: RefCell::default(),
            last_disconnect: RefCell::default(),
            changed: Notify::new(),
        });
        let setup = Rc::new(Semaphore::new(SETUP_CONCURRENCY));
        let mut rooms: BTreeMap<usize, Room> = BTreeMap::new();
        let mut requests = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Some(line) = requests
            .next_line()
            .await
            .map_err(|e| format!("reading requests: {e}"))?
        {
            let request: Value = serde_json::from_str(&line)
                .map_err(|e| format!("unreadable request {line:?}: {e}"))?;
            let answer = match request["do"].as_str() {
                Some("rooms") => hold_rooms(&shared, &setup, &mut rooms, &request["rooms"]).await,
                Some("take") => Ok(take(&shared)),
                other => Err(format!("unknown request {other:?}")),
            };
            let answer = answer.unwrap_or_else(|error| json!({ "error": error }));
            use std::io::Write as _;
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{answer}")
                .and_then(|()| stdout.flush())
                .map_err(|e| format!("answering the controller: {e}"))?;
        }
        for room in rooms.values() {
            room.stop.set(true);
        }
        Ok(())
    }

    /// Starts and stops rooms until exactly `wanted` are held, every client joined.
    async fn hold_rooms(
        shared: &Rc<Shared>,
        setup: &Rc<Semaphore>,
        rooms: &mut BTreeMap<usize, Room>,
        wanted: &Value,
    ) -> Result<Value> {
        let wanted: BTreeMap<usize, String> = wanted
            .as_array()
            .ok_or("rooms must be a list of [index, id]")?
            .iter()
            .map(|pair| {
                Some((
                    usize::try_from(pair[0].as_u64()?).ok()?,
                    pair[1].as_str()?.to_string(),
                ))
            })
            .collect::<Option<_>>()
            .ok_or("rooms must be a list of [index, id]")?;
        rooms.retain(|index, room| {
            let keep = wanted.contains_key(index);
            if !keep {
                room.stop.set(true);
            }
            keep
        });
        for (&index, id) in &wanted {
            if rooms.contains_key(&index) {
                continue;
            }
            let stop = Rc::new(Cell::new(false));
            for seat in 0..ROOM_SIZE {
                let client = Client {
                    shared: shared.clone(),
                    room_id: id.clone(),
                    room: index,
                    seat,
                    stop: stop.clone(),
                };
                tokio::task::spawn_local(client.run(setup.clone()));
            }
            rooms.insert(index, Room { stop });
        }
        let clients = wanted.len() * ROOM_SIZE;
        let deadline = tokio::time::Instant::now() + SETUP_TIMEOUT + Duration::from_secs(5);
        loop {
            let changed = shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(error) = shared.setup_errors.borrow().first() {
                return Err(format!(
                    "{} clients could not connect and join; first: {error}",
                    shared.setup_errors.borrow().len()
                ));
            }
            if shared.joined.get() == clients {
                return Ok(json!({ "joined": clients }));
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Err(format!(
                    "only {} of {clients} clients joined within {SETUP_TIMEOUT:?}",
                    shared.joined.get()
                ));
            }
        }
    }

    fn take(shared: &Shared) -> Value {
        let stats = shared.stats.take();
        let mut answer = stats.to_json();
        answer["joined"] = json!(shared.joined.get());
        answer["last_disconnect"] = json!(shared.last_disconnect.borrow().clone());
        answer
    }
}

// ---------------------------------------------------------------------------
// The ramp (in the controller)
// ---------------------------------------------------------------------------

/// One ramp: a server on its cores and the generator processes beside it.
struct Ramp {
    options: Options,
    plan: CorePlan,
    server: Server,
    generators: Vec<GeneratorProcess>,
    room_ids: Vec<String>,
    rooms: usize,
    ticks_per_s: f64,
    idle_rss: u64,
    limits: Limits,
    last_disconnect: Option<String>,
    disconnected: u64,
}

/// One measured step.
#[derive(Debug, Clone)]
struct Step {
    clients: usize,
    server_cores: usize,
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
    /// Server CPU time over wall time: 1.0 is one whole core.
    server_cpu: f64,
    /// Busy time of the server's cores beyond the server's own CPU time, and
    /// of the busiest generator core beyond its process's: other load, interrupts.
    core_other: f64,
    gen_core_other: f64,
    rss: u64,
    idle_rss: u64,
    /// The generator that came nearest its limit (its core is shown as
    /// gCore): its core, send lag p99, CPU.
    gen_core: usize,
    gen_lag_p99: f64,
    gen_cpu: f64,
    server_dropped_per_s: f64,
    verdict: Result<(), Failure>,
}

impl Step {
    /// Server CPU per 100 clients, in cores.
    fn cpu_per_100(&self) -> f64 {
        self.server_cpu / (self.clients as f64 / 100.0)
    }

    fn clients_per_core(&self) -> f64 {
        self.clients as f64 / self.server_cores as f64
    }

    fn rss_per_client(&self) -> f64 {
        self.rss.saturating_sub(self.idle_rss) as f64 / self.clients as f64
    }
}

/// What a ramp found, for the summary across server core counts.
struct RampResult {
    server_cores: usize,
    held: Option<Step>,
    costed: Option<Step>,
    limit: String,
}

impl Ramp {
    async fn start(options: &Options, plan: CorePlan) -> Result<Ramp> {
        let binary = process::server_binary(options.server.as_deref())?;
        let server = process::start_server_on(
            &binary,
            &plan.server,
            &["--room-capacity", "25"],
            PINNED_ENV,
            &process::GENEROUS_PER_ADDRESS_LIMITS,
        )?;
        let addr = server.addr.to_string();
        let generators = plan
            .generators
            .iter()
            .map(|&core| {
                GeneratorProcess::spawn(core, &[GENERATOR_ARG, &addr], &[(PINNED_ENV, "1")])
            })
            .collect::<Result<Vec<_>>>()?;
        let mut ramp = Ramp {
            options: options.clone(),
            plan,
            server,
            generators,
            room_ids: Vec::new(),
            rooms: 0,
            ticks_per_s: process::clock_ticks_per_second(),
            idle_rss: 0,
            limits: Limits::default(),
            last_disconnect: None,
            disconnected: 0,
        };
        // Settle, then the idle baseline.
        tokio::time::sleep(Duration::from_millis(500)).await;
        ramp.idle_rss = process::sample_proc(&ramp.server.pid.to_string())?.rss;
        let modified = std::fs::metadata(&binary)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .map_or("?".into(), |age| {
                format!("{:.0} min", age.as_secs_f64() / 60.0)
            });
        println!(
            "server: {} (built {modified} ago), pid {}, {} on CPU {}, TOKIO_WORKER_THREADS={}",
            binary.display(),
            ramp.server.pid,
            ramp.server.addr,
            ramp.plan.server_list(),
            ramp.plan.server.len(),
        );
        println!(
            "server threads: {}; idle RSS {:.1} MiB",
            process::thread_names(ramp.server.pid),
            ramp.idle_rss as f64 / (1024.0 * 1024.0)
        );
        println!(
            "clients: {} generator process(es), one thread each, on CPU {}; rooms of {ROOM_SIZE} \
             dealt in turn, a pose each 33.3 ms; per step {:?} warm-up + {}x{:?} measured; \
             load average {}",
            ramp.generators.len(),
            load::cpu_list(&ramp.plan.generators),
            WARM_UP,
            SLICES,
            SLICE,
            std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
        );
        Ok(ramp)
    }

    fn server_cores(&self) -> usize {
        self.plan.server.len()
    }

    /// Sends `request` to every generator, then collects their answers.
    async fn ask_all(&mut self, request: impl Fn(usize) -> Value) -> Result<Vec<Value>> {
        for (i, generator) in self.generators.iter_mut().enumerate() {
            generator.send(&request(i)).await?;
        }
        let mut answers = Vec::new();
        for generator in &mut self.generators {
            answers.push(generator.answer().await?);
        }
        Ok(answers)
    }

    /// Adds or removes whole rooms until `clients` are connected and joined.
    async fn set_clients(&mut self, clients: usize) -> Result<()> {
        let want_rooms = clients / ROOM_SIZE;
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
        let dealt = load::deal_rooms(want_rooms, self.generators.len());
        let ids = self.room_ids.clone();
        self.ask_all(|i| {
            let rooms: Vec<Value> = dealt[i].iter().map(|&r| json!([r, ids[r]])).collect();
            json!({ "do": "rooms", "rooms": rooms })
        })
        .await?;
        self.rooms = want_rooms;
        Ok(())
    }

    /// Each generator's figures since the last take.
    async fn take(&mut self) -> Result<Vec<Stats>> {
        let answers = self.ask_all(|_| json!({ "do": "take" })).await?;
        answers
            .iter()
            .map(|answer| {
                if let Some(reason) = answer["last_disconnect"].as_str() {
                    self.last_disconnect = Some(reason.to_string());
                }
                Stats::from_json(answer)
            })
            .collect()
    }

    async fn measure(&mut self, clients: usize, after_shrink: bool) -> Result<Step> {
        tokio::time::sleep(WARM_UP).await;
        let server_pid = self.server.pid.to_string();
        let counters = [
            "roomscale_poses_dropped_total",
            "roomscale_poses_relayed_total",
        ];
        let before_counters = process::server_counter(self.server.addr, &counters).await;
        drop(self.take().await?);
        let server_before = process::sample_proc(&server_pid)?;
        let generators_before = self.sample_generators()?;
        let core_before = process::cpu_jiffies_of(&self.plan.server);
        let start = server_before.at;

        let mut slices = Vec::new();
        let mut per_generator: Vec<Stats> = Vec::new();
        per_generator.resize_with(self.generators.len(), Stats::default);
        for k in 1..=SLICES {
            tokio::time::sleep_until((start + SLICE * k).into()).await;
            let taken = self.take().await?;
            let mut slice = Stats::default();
            for (total, stats) in per_generator.iter_mut().zip(&taken) {
                total.merge(stats);
                slice.merge(stats);
            }
            slices.push(slice);
        }
        let server_after = process::sample_proc(&server_pid)?;
        let generators_after = self.sample_generators()?;
        let core_after = process::cpu_jiffies_of(&self.plan.server);
        let after_counters = process::server_counter(self.server.addr, &counters).await;
        let elapsed = (server_after.at - start).as_secs_f64();
        let per_s = |ticks: u64| ticks as f64 / self.ticks_per_s / elapsed;

        let mut total = Stats::default();
        for slice in &slices {
            total.merge(slice);
        }
        self.disconnected += total.disconnected;
        let server_cpu = per_s(server_after.cpu_ticks - server_before.cpu_ticks);
        let core_busy = per_s(core_after.0 - core_before.0);
        // The generator nearest its limit: by CPU (all of its core, as softirq
        // work for its sockets is not charged to it), then by send lag.
        let mut worst = (0, 0.0, 0.0, 0.0);
        for (i, stats) in per_generator.iter().enumerate() {
            let (process_before, core_before) = generators_before[i];
            let (process_after, core_after) = generators_after[i];
            let own = per_s(process_after - process_before);
            let core = per_s(core_after - core_before);
            let cpu = own.max(core);
            let lag = stats.lag.quantile_ms(0.99);
            if i == 0 || (cpu, lag) > (worst.2, worst.1) {
                worst = (self.generators[i].core, lag, cpu, (core - own).max(0.0));
            }
        }
        let (gen_core, gen_lag_p99, gen_cpu, gen_core_other) = worst;
        let expected = total.sent as f64 * (ROOM_SIZE - 1) as f64;
        let delivered = if expected > 0.0 {
            total.poses_received as f64 / expected
        } else {
            0.0
        };
        let cores = self.server_cores() as f64;
        let figures = StepFigures {
            relay_p99_ms: total.relay.quantile_ms(0.99),
            relay_p50_per_slice_ms: slices.iter().map(|s| s.relay.quantile_ms(0.5)).collect(),
            delivered,
            generator_lag_p99_ms: gen_lag_p99,
            generator_cpu: gen_cpu,
            disconnected: total.disconnected,
            // Saturation is judged per core.
            server_cpu: server_cpu / cores,
        };
        // A generator's core may be busy with other work (another build, say):
        // say how much of it was the generator's own.
        let verdict = load::judge(&figures, &self.limits).map_err(|failure| match failure {
            Failure::Generator(reason) => Failure::Generator(format!(
                "{reason}; on core {gen_core} the generator itself used {:.0}% and other work \
                 {:.0}%",
                (gen_cpu - gen_core_other).max(0.0) * 100.0,
                gen_core_other * 100.0
            )),
            other => other,
        });
        Ok(Step {
            clients,
            server_cores: self.server_cores(),
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
            gen_core_other,
            rss: server_after.rss,
            idle_rss: self.idle_rss,
            gen_core,
            gen_lag_p99,
            gen_cpu,
            server_dropped_per_s: (after_counters[0].saturating_sub(before_counters[0])) as f64
                / elapsed,
            verdict,
        })
    }

    /// Each generator's CPU ticks and its core's busy jiffies.
    fn sample_generators(&self) -> Result<Vec<(u64, u64)>> {
        self.generators
            .iter()
            .map(|g| {
                let sample = process::sample_proc(&g.pid.to_string())
                    .map_err(|e| format!("the generator on core {}: {e}", g.core))?;
                Ok((sample.cpu_ticks, process::cpu_jiffies(g.core).0))
            })
            .collect()
    }

    fn server_saturated(&self, step: &Step) -> bool {
        step.server_cpu >= self.limits.server_saturated_cpu * self.server_cores() as f64
    }

    fn print_header(&self) {
        println!(
            "{:>7} {:>7} {:>7} {:>8} {:>6} {:>13} {:>19} {:>6} {:>6} {:>7} {:>7} {:>7} {:>6} {:>6} {:>6} {:>5}  verdict",
            "clients",
            "cl/core",
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
            "gCore",
        );
        println!(
            "{:>7} {:>7} {:>7} {:>8} {:>6} {:>13} {:>19} {:>6} {:>6} {:>7} {:>7} {:>7} {:>6} {:>6} {:>6} {:>5}",
            "",
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
            "%s/%g",
            "p99 ms",
            "%",
            "",
        );
    }

    fn print_step(&self, s: &Step) {
        let verdict = match &s.verdict {
            Ok(()) => "held".to_string(),
            Err(Failure::Server(r)) => format!("FAILED (server): {r}"),
            Err(Failure::Generator(r)) => format!("STOP (generator, not the server): {r}"),
        };
        println!(
            "{:>7} {:>7.0} {:>7.0} {:>8.0} {:>6.1} {:>6.1}/{:<6.1} {:>5.1}/{:>5.1}/{:>6.1} {:>6.1} {:>6.2} {:>7.1} {:>7.1} {:>7.0} {:>3.0}/{:<2.0} {:>6.1} {:>6.0} {:>5}  {verdict}{}",
            s.clients,
            s.clients_per_core(),
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
            s.rss_per_client() / 1024.0,
            s.server_dropped_per_s,
            s.core_other * 100.0,
            s.gen_core_other * 100.0,
            s.gen_lag_p99,
            s.gen_cpu * 100.0,
            s.gen_core,
            if s.after_shrink {
                " (after shrinking)"
            } else {
                ""
            },
        );
    }

    /// Runs the ramp up, then narrows the limit down.
    async fn run(&mut self) -> Result<RampResult> {
        let started = Instant::now();
        let cores = self.server_cores();
        println!(
            "pass: relay p99 < {} ms, relay median growth <= {} ms over the window, >= {:.0}% \
             delivered, no disconnects; a generator counts as saturated at send lag p99 >= {} ms \
             or CPU >= {:.0}% of its core",
            self.limits.relay_p99_ms,
            self.limits.backlog_growth_ms,
            self.limits.min_delivered * 100.0,
            self.limits.generator_lag_p99_ms,
            self.limits.generator_cpu * 100.0,
        );
        println!();
        self.print_header();
        let mut steps: Vec<Step> = Vec::new();
        // The largest step held with every smaller step held too.
        let mut held: Option<usize> = None;
        // The smallest step that failed.
        let mut failed: Option<(usize, Failure)> = None;
        let mut last_step_time = Duration::from_secs(10);
        let mut stopped_for_time = false;
        let mut ramp: Vec<usize> = self.options.steps.iter().map(|s| s * cores).collect();
        ramp.reverse();
        let mut shrinking = false;
        loop {
            // Up the ramp first; then, between the largest step held and the
            // smallest that failed, halve the gap down to GRANULARITY per core.
            let next = match ramp.pop() {
                Some(clients) => clients,
                None => {
                    let low = held.unwrap_or(0);
                    match &failed {
                        Some((high, _)) if high - low > GRANULARITY * cores => {
                            let mid = (low + high) / 2 / ROOM_SIZE * ROOM_SIZE;
                            if mid <= low {
                                break;
                            }
                            // Rooms come and go whole; below the current count this
                            // removes rooms, and RSS keeps the larger step's memory.
                            shrinking |= mid < self.rooms * ROOM_SIZE;
                            mid
                        }
                        _ => break,
                    }
                }
            };
            if started.elapsed() + last_step_time + Duration::from_secs(3) > self.options.budget {
                stopped_for_time = true;
                break;
            }
            let step_started = Instant::now();
            if let Err(error) = self.set_clients(next).await {
                println!("{next:>7}  FAILED (server): {error}");
                if failed.as_ref().is_none_or(|(at, _)| next < *at) {
                    failed = Some((next, Failure::Server(error)));
                }
                break;
            }
            let step = self.measure(next, shrinking).await?;
            self.print_step(&step);
            last_step_time = step_started.elapsed();
            let verdict = step.verdict.clone();
            let server_saturated = self.server_saturated(&step);
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
        println!();
        let server_log = self.server.log.lock().expect("not poisoned");
        if server_log.lines > 0 {
            println!(
                "server logged {} warning/error lines, first: {}",
                server_log.lines,
                server_log.first.join(" | ")
            );
        }
        drop(server_log);
        if let Some(reason) = &self.last_disconnect {
            println!(
                "clients disconnected: {} (last: {reason})",
                self.disconnected
            );
        }
        let best = held.and_then(|h| steps.iter().rfind(|s| s.clients == h && s.verdict.is_ok()));
        // Cost figures come from the largest step measured on the way up with the
        // server below saturation (a saturated server's CPU says nothing per client;
        // a step reached by shrinking still holds the larger step's memory).
        let costed = steps
            .iter()
            .filter(|s| !s.after_shrink && !self.server_saturated(s))
            .max_by_key(|s| s.clients)
            .or(steps.first());
        let limit = match (&failed, stopped_for_time) {
            (Some((at, Failure::Server(reason))), _) => {
                format!("the server, at {at} clients: {reason}")
            }
            (Some((at, Failure::Generator(reason))), _) => format!(
                "the load generator, not the server, at {at} clients ({reason}); the server was \
                 not saturated, so the figure is a lower bound: run with more --generator-cores"
            ),
            (None, true) => format!(
                "time budget ({:?}) reached before a step failed; the figure is a lower bound",
                self.options.budget
            ),
            (None, false) => {
                "none reached; the largest step held, so the figure is a lower bound".to_string()
            }
        };
        let result = RampResult {
            server_cores: cores,
            held: best.cloned(),
            costed: costed.cloned(),
            limit,
        };
        print_summary(&result);
        println!(
            "room load: the ramp on {cores} server core(s) took {:.0} s",
            started.elapsed().as_secs_f64()
        );
        Ok(result)
    }

    async fn stop(self) {
        for generator in self.generators {
            generator.stop().await;
        }
    }
}

const CLIENTS_TARGET_PER_CORE: usize = 2000;
const RSS_TARGET_KIB: f64 = 12.0;

fn print_summary(r: &RampResult) {
    let cores = r.server_cores;
    let on = if cores == 1 {
        "one server core".to_string()
    } else {
        format!("{cores} server cores")
    };
    match &r.held {
        Some(best) => println!(
            "room load: max clients held on {on}: {} ({:.0} per server core; relay p50/p99 \
             {:.1}/{:.1} ms, e2e p99 {:.1} ms, {:.1}% delivered, no backlog) -- target >= {} per \
             core: {}",
            best.clients,
            best.clients_per_core(),
            best.relay_p50,
            best.relay_p99,
            best.e2e_p99,
            best.delivered * 100.0,
            CLIENTS_TARGET_PER_CORE,
            if best.clients_per_core() >= CLIENTS_TARGET_PER_CORE as f64 {
                "met"
            } else {
                "NOT MET"
            }
        ),
        None => println!(
            "room load: max clients held on {on}: 0 (no step held) -- target >= \
             {CLIENTS_TARGET_PER_CORE} per core: NOT MET"
        ),
    }
    if let Some(s) = &r.costed {
        let held_note = if s.verdict.is_ok() {
            ""
        } else {
            ", a step that did not hold"
        };
        println!(
            "room load: server CPU per 100 clients: {:.2}% of one core (at {} clients{held_note}: \
             {:.0}%); CPU-bound estimate {:.0} clients per core at 100%",
            s.cpu_per_100() * 100.0,
            s.clients,
            s.server_cpu * 100.0,
            100.0 / s.cpu_per_100()
        );
        let per_client_kib = s.rss_per_client() / 1024.0;
        println!(
            "room load: RSS per client: {:.1} KiB (({:.1} MiB at {} clients - {:.1} MiB idle) / {}) \
             -- target <= {RSS_TARGET_KIB} KiB: {}",
            per_client_kib,
            s.rss as f64 / (1024.0 * 1024.0),
            s.clients,
            s.idle_rss as f64 / (1024.0 * 1024.0),
            s.clients,
            if per_client_kib <= RSS_TARGET_KIB {
                "met"
            } else {
                "NOT MET"
            }
        );
    }
    println!("room load: limit: {}", r.limit);
}

async fn bench(options: Options) -> Result<()> {
    let started = Instant::now();
    let largest_cores = options.server_cores.iter().copied().max().unwrap_or(1);
    let largest = options.steps.iter().copied().max().unwrap_or(0) * largest_cores;
    let fd_limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| load::parse_open_files_limit(&l));
    if let Some(limit) = fd_limit
        && (limit as usize) < largest + 256
    {
        return Err(format!(
            "the open-files limit is {limit}, too low for {largest} clients (each needs a socket \
             in a generator and one in the server); raise it with `ulimit -n {}` or use smaller \
             --steps",
            largest + 256
        ));
    }
    println!(
        "room load: {} core(s) here; server core counts {}, {} generator process(es); \
         open-files limit {}",
        options.available_cores,
        load::cpu_list(&options.server_cores),
        options.generator_cores,
        fd_limit.map_or("unlimited".into(), |l| l.to_string()),
    );
    let mut results = Vec::new();
    let mut skipped = Vec::new();
    for &cores in &options.server_cores {
        println!();
        println!("== {cores} server core(s)");
        let plan = match options.plan(cores) {
            Ok(plan) => plan,
            Err(reason) => {
                println!("skipped: {reason}");
                skipped.push(cores);
                continue;
            }
        };
        let mut ramp = Ramp::start(&options, plan).await?;
        let result = ramp.run().await;
        ramp.stop().await;
        results.push(result?);
    }
    if results.len() > 1 {
        println!();
        println!("room load: scaling (clients held per server core count)");
        for r in &results {
            let held = r.held.as_ref();
            println!(
                "  {} server core(s): {} clients held, {:.0} per core; RSS per client {}; \
                 limit: {}",
                r.server_cores,
                held.map_or(0, |s| s.clients),
                held.map_or(0.0, |s| s.clients_per_core()),
                r.costed.as_ref().map_or("?".into(), |s| format!(
                    "{:.1} KiB",
                    s.rss_per_client() / 1024.0
                )),
                r.limit,
            );
        }
    }
    if !skipped.is_empty() {
        let most = skipped.iter().copied().max().unwrap_or(1);
        let generators = options.generator_cores.max(most * 2);
        println!(
            "room load: server core count(s) {} need more cores than the {} here; on a machine \
             with at least {} cores run: room-load --server-cores {} --generator-cores {generators} \
             (about two generator cores per server core keep the generators off the limit)",
            load::cpu_list(&skipped),
            options.available_cores,
            most + generators,
            load::cpu_list(&options.server_cores),
        );
    }
    println!("room load: took {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}
