//! The `roomscale-server` binary as an operator runs it: it starts on a fresh data
//! directory, serves, and stops cleanly on SIGTERM.

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
