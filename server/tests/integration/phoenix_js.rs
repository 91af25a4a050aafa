//! The official phoenix.js client (in Node) and a Rust client in one room.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use crate::common::TestServer;

#[tokio::test]
async fn phoenix_js_and_rust_clients_share_presence_and_chat() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    if !std::path::Path::new(root)
        .join("node_modules/phoenix")
        .exists()
    {
        crate::common::skip(
            "phoenix.js test needs node_modules (run `npm ci` or `cargo xtask test`)",
        );
        return;
    }
    let server = TestServer::start().await;
    let room_id = server.create_room("Mixed").await;
    let topic = format!("room:{room_id}");
    let (node_token, node_user) = server.session("Node").await;
    let mut rust = server.socket("Rusty").await;

    let mut node = Command::new("node")
        .arg("--experimental-websocket")
        .arg("--no-warnings")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/js/phoenix-room.mjs"
        ))
        .arg(format!("ws://{}/socket", server.addr))
        .arg(&node_token)
        .arg(&topic)
        .arg(&rust.user_id)
        .current_dir(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut next_line = async || {
        tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("phoenix.js answered in time")
            .unwrap()
            .expect("phoenix.js printed a line")
    };

    let joined = next_line().await;
    assert!(
        joined.starts_with(&format!("joined {node_user}")),
        "{joined}"
    );
    let (rust_ref, _) = rust.join_ok(&topic, "Rusty").await;
    let state = rust.expect_event("presence_state").await;
    assert_eq!(state[&node_user]["metas"][0]["name"], "Node <phoenix>");

    assert_eq!(
        next_line().await,
        format!("presence has {} named Rusty kind desktop", rust.user_id)
    );
    let chat = rust.expect_event("event").await;
    assert_eq!(chat["body"]["text"], "hello from phoenix.js");
    assert_eq!(chat["user_id"], node_user.as_str());
    assert!(next_line().await.starts_with("chat stored "));

    let r = rust
        .push(
            Some(&rust_ref),
            &topic,
            "chat",
            json!({"text": "hello from rust"}),
        )
        .await;
    assert_eq!(rust.expect_reply(&r).await.0, "ok");
    assert_eq!(next_line().await, "got chat \"hello from rust\"");
    assert_eq!(next_line().await, "unknown event refused: unknown_event");

    let r = rust
        .push(Some(&rust_ref), &topic, "phx_leave", json!({}))
        .await;
    assert_eq!(rust.expect_reply(&r).await.0, "ok");
    assert_eq!(next_line().await, "saw leave");
    let mut stdin = node.stdin.take().unwrap();
    stdin.write_all(b"done\n").await.unwrap();
    let status = tokio::time::timeout(Duration::from_secs(5), node.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "phoenix.js client exited with {status}");
}
