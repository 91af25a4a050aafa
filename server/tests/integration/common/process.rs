//! The real `roomscale-server` binary as a child process, for tests that kill it.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStderr, Command};

use super::Request;

pub struct ServerProcess {
    pub addr: SocketAddr,
    child: Child,
    log: Lines<BufReader<ChildStderr>>,
}

impl ServerProcess {
    /// Starts the binary on a free port with `data_dir`, and `database_url` when given.
    pub async fn start(data_dir: &Path, database_url: Option<&str>) -> ServerProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_roomscale-server"));
        command
            .arg("--bind=127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--log=info")
            .env_remove("RUST_LOG")
            .env_remove("DATABASE_URL")
            // Every test client comes from 127.0.0.1: limits per address that
            // suit the internet would throttle honest tests.
            .env("ROOMSCALE_SOCKETS_PER_IP", "1000000")
            .env("ROOMSCALE_TOKENS_PER_MINUTE", "1000000")
            .env("ROOMSCALE_ROOMS_PER_HOUR", "1000000")
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(url) = database_url {
            command.arg("--database-url").arg(url);
        }
        let mut child = command.spawn().unwrap();
        let mut log = BufReader::new(child.stderr.take().unwrap()).lines();
        // Port 0 lets the system choose; the log says which it chose.
        let addr = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = log.next_line().await.unwrap() {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    return rest.split_whitespace().next().unwrap().parse().unwrap();
                }
            }
            panic!("the server exited before listening");
        })
        .await
        .expect("the server did not start within 20 s");
        ServerProcess { addr, child, log }
    }

    /// A room named `room_name` made over HTTP, and a new visitor `name`:
    /// (room topic, socket token, user id). The token outlives a restart on
    /// the same data directory, so a test can come back as the same visitor.
    pub async fn room_and_visitor(&self, room_name: &str, name: &str) -> (String, String, String) {
        let room = Request::post("/api/rooms")
            .json(&json!({"name": room_name, "description": ""}))
            .send(self.addr)
            .await;
        assert_eq!(room.status, 201, "creating a room: {}", room.body);
        let topic = format!("room:{}", room.json()["id"].as_str().unwrap());
        let session = Request::post("/api/session")
            .json(&json!({"name": name}))
            .send(self.addr)
            .await;
        assert_eq!(session.status, 200, "opening a session: {}", session.body);
        let session = session.json();
        (
            topic,
            session["token"].as_str().unwrap().to_string(),
            session["user_id"].as_str().unwrap().to_string(),
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("still running")
    }

    /// Sends a signal (`"KILL"`, `"TERM"`) and waits for the process to end.
    pub async fn signal(mut self, signal: &str) -> (std::process::ExitStatus, Vec<String>) {
        let sent = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("the server did not stop within 20 s")
            .unwrap();
        let mut rest = Vec::new();
        while let Ok(Some(line)) = self.log.next_line().await {
            rest.push(line);
        }
        (status, rest)
    }
}
