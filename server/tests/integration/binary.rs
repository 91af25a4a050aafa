//! The `roomscale-server` binary as an operator runs it: it starts on a fresh data
//! directory, serves, and stops cleanly on SIGTERM.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;

use crate::common::Request;

#[tokio::test]
async fn the_binary_serves_until_sigterm_then_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_roomscale-server"))
        .arg("--bind=127.0.0.1:0")
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--log=info")
        .env_remove("RUST_LOG")
        .env_remove("DATABASE_URL")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut log = BufReader::new(child.stderr.take().unwrap()).lines();

    // Port 0 lets the system choose; the log says which it chose.
    let addr: SocketAddr = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = log.next_line().await.unwrap() {
            if let Some(rest) = line.split("listening on http://").nth(1) {
                return rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        }
        panic!("the server exited before listening");
    })
    .await
    .expect("the server did not start within 20 s");

    let health = Request::get("/healthz").send(addr).await;
    assert_eq!((health.status, health.body.trim()), (200, "ok"));
    assert!(data_dir.join("roomscale.db").exists());
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(data_dir.join("secret.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the key is readable by its owner only");
    }

    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("the server did not stop within 20 s of SIGTERM")
        .unwrap();
    let mut rest = Vec::new();
    while let Some(line) = log.next_line().await.unwrap() {
        rest.push(line);
    }
    assert!(status.success(), "exit status {status}; log: {rest:#?}");
    assert!(
        rest.iter().any(|line| line.contains("stopped")),
        "{rest:#?}"
    );
}
