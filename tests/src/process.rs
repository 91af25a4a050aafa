//! What the load benchmarks share: the real server binary started pinned to
//! one core, the generator re-run pinned to another, what /proc says about a
//! process, and a few HTTP requests (a hand-written HTTP/1.1 client keeps the
//! crate lean).

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type Result<T, E = String> = std::result::Result<T, E>;

/// Runs this program again pinned to the client CPU, with the open-files limit
/// raised to its hard limit (a shell does both, as no `unsafe` is allowed here).
pub fn reexec_pinned(program: &str, client_cpu: usize, pinned_env: &str) -> ExitCode {
    reexec_pinned_to(program, &client_cpu.to_string(), pinned_env)
}

/// [`reexec_pinned`] onto the cores `cpus` names, as `taskset -c` takes them.
pub fn reexec_pinned_to(program: &str, cpus: &str, pinned_env: &str) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(error) => {
            eprintln!("{program}: cannot find my own executable: {error}");
            return ExitCode::FAILURE;
        }
    };
    let status = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec taskset -c "$0" "$@""#)
        .arg(cpus)
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(pinned_env, "1")
        .status();
    match status {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(status) => {
            if status.code() == Some(1) && !Path::new("/usr/bin/taskset").exists() {
                eprintln!("{program}: taskset (util-linux) is needed to pin processes to cores");
            }
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("{program}: could not run sh to pin myself to a core: {error}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------

#[derive(Debug)]
pub struct Server {
    child: Child,
    pub pid: u32,
    pub addr: SocketAddr,
    _data_dir: tempfile::TempDir,
    pub log: Arc<Mutex<ServerLog>>,
}

#[derive(Debug, Default)]
pub struct ServerLog {
    pub lines: u64,
    pub first: Vec<String>,
}

impl Server {
    /// The server's data directory (its SQLite file and signing key).
    pub fn data_dir(&self) -> &Path {
        self._data_dir.path()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn server_binary(explicit: Option<&Path>) -> Result<PathBuf> {
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None => std::env::current_exe()
            .map_err(|e| format!("cannot find my own executable: {e}"))?
            .with_file_name("roomscale-server"),
    };
    if !path.is_file() {
        return Err(format!(
            "no server binary at {}; build it with `cargo build --release -p roomscale-server` \
             or name one with --server / ROOMSCALE_SERVER_BIN",
            path.display()
        ));
    }
    Ok(path)
}

/// Every client of a benchmark comes from 127.0.0.1: limits per address that
/// suit the internet would throttle the load itself.
pub const GENEROUS_PER_ADDRESS_LIMITS: [(&str, &str); 3] = [
    ("ROOMSCALE_SOCKETS_PER_IP", "1000000"),
    ("ROOMSCALE_TOKENS_PER_MINUTE", "1000000"),
    ("ROOMSCALE_ROOMS_PER_HOUR", "1000000"),
];

/// Starts the server pinned to `server_cpu` with one runtime worker, on a free
/// loopback port and a fresh data directory, with `extra_args` and
/// [`GENEROUS_PER_ADDRESS_LIMITS`].
pub fn start_server(
    binary: &Path,
    server_cpu: usize,
    extra_args: &[&str],
    pinned_env: &str,
) -> Result<Server> {
    start_server_with_limits(
        binary,
        server_cpu,
        extra_args,
        pinned_env,
        &GENEROUS_PER_ADDRESS_LIMITS,
    )
}

/// [`start_server`] with the per-address limits in `limits` (environment
/// variables); none keeps the server's defaults, for a benchmark whose clients
/// come from addresses of their own.
pub fn start_server_with_limits(
    binary: &Path,
    server_cpu: usize,
    extra_args: &[&str],
    pinned_env: &str,
    limits: &[(&str, &str)],
) -> Result<Server> {
    start_server_on(binary, &[server_cpu], extra_args, pinned_env, limits)
}

/// [`start_server_with_limits`] on several cores: pinned to `cores`, with one
/// runtime worker per core.
pub fn start_server_on(
    binary: &Path,
    cores: &[usize],
    extra_args: &[&str],
    pinned_env: &str,
    limits: &[(&str, &str)],
) -> Result<Server> {
    let data_dir = tempfile::Builder::new()
        .prefix("roomscale-load-")
        .tempdir()
        .map_err(|e| format!("creating a temporary data directory: {e}"))?;
    // The server warns about a data directory others may read, as it should.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(data_dir.path(), std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("making the temporary data directory private: {e}"))?;
    }
    let mut command = Command::new("taskset");
    command
        .arg("-c")
        .arg(crate::load::cpu_list(cores))
        .arg(binary)
        .args(["--bind", "127.0.0.1:0"])
        .args(extra_args)
        .arg("--data-dir")
        .arg(data_dir.path())
        // warn, plus the one info line that says which port it bound.
        .args(["--log", "warn,roomscale_server=info"])
        .env("TOKIO_WORKER_THREADS", cores.len().to_string())
        .env_remove("RUST_LOG")
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ROOMSCALE_") && key != pinned_env {
            command.env_remove(key);
        }
    }
    command.envs(limits.iter().copied());
    let mut child = command
        .spawn()
        .map_err(|e| format!("starting {}: {e}", binary.display()))?;
    let pid = child.id(); // taskset execs the server: same process.
    let stderr = child.stderr.take().expect("stderr is piped");
    let log = Arc::new(Mutex::new(ServerLog::default()));
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let log_writer = log.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = crate::load::parse_listening_line(&line) {
                let _ = addr_tx.send(addr);
                continue;
            }
            if line.contains(" INFO ") {
                continue;
            }
            let mut log = log_writer.lock().expect("not poisoned");
            log.lines += 1;
            if log.first.len() < 5 {
                log.first.push(line);
            }
        }
    });
    let mut server = Server {
        child,
        pid,
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        _data_dir: data_dir,
        log,
    };
    match addr_rx.recv_timeout(Duration::from_secs(20)) {
        Ok(addr) => server.addr = addr,
        Err(_) => {
            let status = server.child.try_wait().ok().flatten();
            let log = server.log.lock().expect("not poisoned").first.join("\n");
            return Err(format!(
                "the server did not report its address within 20 s (exit: {status:?}); its log:\n{log}"
            ));
        }
    }
    Ok(server)
}

/// What /proc says about a process at one moment.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    pub at: Instant,
    pub cpu_ticks: u64,
    pub rss: u64,
}

pub fn sample_proc(pid: &str) -> Result<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("reading /proc/{pid}/stat: {e} (did the server exit?)"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("reading /proc/{pid}/status: {e}"))?;
    Ok(ProcSample {
        at: Instant::now(),
        cpu_ticks: crate::load::parse_stat_cpu_ticks(&stat).ok_or("unreadable /proc/PID/stat")?,
        rss: crate::load::parse_status_field(&status, "VmRSS").ok_or("no VmRSS")?,
    })
}

pub fn cpu_jiffies(cpu: usize) -> (u64, u64) {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| crate::load::parse_cpu_jiffies(&s, cpu))
        .unwrap_or((0, 0))
}

/// Busy and total jiffies of several cores, summed.
pub fn cpu_jiffies_of(cores: &[usize]) -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    cores
        .iter()
        .filter_map(|&cpu| crate::load::parse_cpu_jiffies(&stat, cpu))
        .fold((0, 0), |(busy, total), (b, t)| (busy + b, total + t))
}

/// Cores on this machine (online), whatever this process is pinned to: the
/// core numbers `taskset` takes run below this.
pub fn available_cores() -> usize {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|list| crate::load::parse_cpu_count(&list))
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

pub fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The server's threads by name, e.g. "tokio-runtime-w x1, sqlx-sqlite-wor x1".
pub fn thread_names(pid: u32) -> String {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|dir| {
            dir.filter_map(|t| t.ok())
                .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                .map(|n| n.trim().to_string())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < names.len() {
        let n = names[i..].iter().take_while(|x| **x == names[i]).count();
        out.push(format!("{} x{n}", names[i]));
        i += n;
    }
    out.join(", ")
}

// ---------------------------------------------------------------------------
// Generator processes
// ---------------------------------------------------------------------------

/// A child process of a load generator, pinned to one core, that takes
/// requests as JSON lines on its stdin and answers each with one JSON line on
/// its stdout; an answer `{"error": "..."}` is an error. It ends when its
/// stdin closes, and is killed when dropped.
#[derive(Debug)]
pub struct GeneratorProcess {
    child: tokio::process::Child,
    pub pid: u32,
    pub core: usize,
    stdin: tokio::process::ChildStdin,
    answers: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl GeneratorProcess {
    /// Runs this program again with `args` on `core`, with `env` set.
    pub fn spawn(core: usize, args: &[&str], env: &[(&str, &str)]) -> Result<GeneratorProcess> {
        use tokio::io::AsyncBufReadExt as _;
        let exe =
            std::env::current_exe().map_err(|e| format!("cannot find my own executable: {e}"))?;
        let mut child = tokio::process::Command::new("taskset")
            .arg("-c")
            .arg(core.to_string())
            .arg(exe)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                format!("starting a generator process on core {core} with taskset: {e}")
            })?;
        let pid = child.id().ok_or("the generator process exited at once")?;
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        Ok(GeneratorProcess {
            child,
            pid,
            core,
            stdin,
            answers: tokio::io::BufReader::new(stdout).lines(),
        })
    }

    /// Sends a request without waiting for its answer.
    pub async fn send(&mut self, request: &Value) -> Result<()> {
        let mut line = request.to_string();
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .await
            .map_err(|e| format!("writing to the generator on core {}: {e}", self.core))
    }

    /// The answer to the oldest request not yet answered.
    pub async fn answer(&mut self) -> Result<Value> {
        let line = self
            .answers
            .next_line()
            .await
            .map_err(|e| format!("reading from the generator on core {}: {e}", self.core))?
            .ok_or_else(|| {
                format!(
                    "the generator process on core {} ended (see its messages above)",
                    self.core
                )
            })?;
        let answer: Value = serde_json::from_str(&line)
            .map_err(|e| format!("the generator on core {} answered {line:?}: {e}", self.core))?;
        match answer["error"].as_str() {
            Some(error) => Err(format!("generator on core {}: {error}", self.core)),
            None => Ok(answer),
        }
    }

    /// Sends a request and waits for its answer.
    pub async fn request(&mut self, request: &Value) -> Result<Value> {
        self.send(request).await?;
        self.answer().await
    }

    /// Closes its stdin and waits a moment for it to end, then kills it.
    pub async fn stop(mut self) {
        drop(self.stdin);
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

// ---------------------------------------------------------------------------
// HTTP (a few requests; a hand-written HTTP/1.1 client keeps the crate lean)
// ---------------------------------------------------------------------------

pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, Vec<u8>)> {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let raw = http_exchange(TcpStream::connect(addr), method, path, &request).await?;
    let (status, body) = crate::load::parse_http_response(&raw)
        .ok_or_else(|| format!("{method} {path}: unreadable HTTP response"))?;
    Ok((status, body.to_vec()))
}

/// Writes a whole HTTP/1.1 `request` (one that asks for `Connection: close`)
/// on the stream `connect` opens, and reads the raw answer to its end, all
/// within 30 s; errors name `method` and `path`.
pub async fn http_exchange(
    connect: impl std::future::Future<Output = std::io::Result<TcpStream>>,
    method: &str,
    path: &str,
    request: &str,
) -> Result<Vec<u8>> {
    let exchange = async {
        let mut stream = connect.await?;
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .map_err(|_| format!("{method} {path}: no answer within 30 s"))?
        .map_err(|e| format!("{method} {path}: {e}"))
}

pub async fn http_json(addr: SocketAddr, path: &str, body: Value, expect: u16) -> Result<Value> {
    let (status, body) = http(addr, "POST", path, &body.to_string()).await?;
    if status != expect {
        return Err(format!(
            "POST {path}: status {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    serde_json::from_slice(&body).map_err(|e| format!("POST {path}: {e}"))
}

/// Creates a room named `name` on the server at `addr` and returns its link
/// (`http://ADDR/rooms/ID`), for benchmarks that start clients by link.
pub fn create_room_link(addr: SocketAddr, name: &str) -> Result<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting a runtime: {e}"))?;
    let room = runtime.block_on(http_json(
        addr,
        "/api/rooms",
        serde_json::json!({ "name": name, "description": "" }),
        201,
    ))?;
    let id = room["id"].as_str().ok_or("the created room has no id")?;
    Ok(format!("http://{addr}/rooms/{id}"))
}

/// Counters from /metrics (Prometheus text), by full name.
pub async fn server_counter(addr: SocketAddr, names: &[&str]) -> Vec<u64> {
    let text = match http(addr, "GET", "/metrics", "").await {
        Ok((200, body)) => String::from_utf8_lossy(&body).into_owned(),
        _ => String::new(),
    };
    names
        .iter()
        .map(|name| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
                .unwrap_or(0)
        })
        .collect()
}
