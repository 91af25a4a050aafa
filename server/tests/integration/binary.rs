//! The `roomscale-server` binary as an operator runs it: it starts on a fresh data
//! directory, serves, and stops cleanly on SIGTERM; a database it cannot open
//! stops it at once with a message that says what to check.

use crate::common::Request;
use crate::common::process::ServerProcess;

#[tokio::test]
async fn the_binary_serves_until_sigterm_then_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let server = ServerProcess::start(&data_dir, None).await;

    let health = Request::get("/healthz").send(server.addr).await;
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

    let (status, rest) = server.signal("TERM").await;
    assert!(status.success(), "exit status {status}; log: {rest:#?}");
    assert!(
        rest.iter().any(|line| line.contains("stopped")),
        "{rest:#?}"
    );
}

#[tokio::test]
async fn a_database_that_cannot_be_opened_stops_the_binary_with_what_to_check() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1 of loopback: the connection is refused at once.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_roomscale-server"))
        .arg("--bind=127.0.0.1:0")
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--database-url=postgres://roomscale:hunter2@127.0.0.1:1/roomscale")
        .env_remove("DATABASE_URL")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(20), output)
        .await
        .expect("the server gave up within 20 s")
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for part in [
        "--database-url",
        "postgres://roomscale:***@127.0.0.1:1/roomscale",
        "could not be opened",
        "that PostgreSQL is running",
    ] {
        assert!(stderr.contains(part), "lacks {part:?}: {stderr}");
    }
    assert!(!stderr.contains("hunter2"), "the password leaked: {stderr}");
}
