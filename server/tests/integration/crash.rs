//! Acknowledged data survives `SIGKILL`, and a graceful stop says goodbye.

use serde_json::json;

use crate::common::process::ServerProcess;
use crate::common::with_postgres_database;
use crate::common::ws::{join_payload, socket_at};

async fn acknowledged_chat_survives_sigkill(database_url: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), database_url.as_deref()).await;
    let (topic, token, user_id) = server.room_and_visitor("Durable", "Ada").await;

    let mut ada = socket_at(server.addr, &token, &user_id).await;
    let (join_ref, _) = ada.join_ok(&topic, "Ada").await;
    let mut acked = Vec::new();
    for i in 0..20 {
        let r = ada
            .push(
                Some(&join_ref),
                &topic,
                "chat",
                json!({"text": format!("message {i}")}),
            )
            .await;
        let (status, stored) = ada.expect_reply(&r).await;
        assert_eq!(status, "ok");
        acked.push(stored["id"].as_u64().unwrap());
    }
    let (status, _) = server.signal("KILL").await;
    assert!(!status.success(), "SIGKILL ends the process abruptly");

    // The same data directory (and so the same key: the token still works).
    let server = ServerProcess::start(dir.path(), database_url.as_deref()).await;
    let mut ada = socket_at(server.addr, &token, &user_id).await;
    let mut rejoin = join_payload("Ada");
    rejoin["last_seen_id"] = json!(acked[9]);
    let (_, status, reply) = ada.join(&topic, rejoin).await;
    assert_eq!(status, "ok", "{reply}");
    let replayed: Vec<(u64, String)> = reply["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["id"].as_u64().unwrap(),
                e["body"]["text"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(u64, String)> = acked[10..]
        .iter()
        .enumerate()
        .map(|(i, &id)| (id, format!("message {}", i + 10)))
        .collect();
    assert_eq!(
        replayed, expected,
        "exactly the newer acknowledged events, no gaps, no duplicates"
    );

    let mut bo = socket_at(server.addr, &token, &user_id).await;
    let (_, everything) = bo.join_ok(&topic, "Bo").await;
    assert_eq!(everything["events"].as_array().unwrap().len(), 20);
    server.signal("TERM").await;
}

#[tokio::test]
async fn acknowledged_chat_survives_sigkill_on_sqlite() {
    acknowledged_chat_survives_sigkill(None).await;
}

#[tokio::test]
async fn acknowledged_chat_survives_sigkill_on_postgres() {
    with_postgres_database(
        "crash::acknowledged_chat_survives_sigkill_on_postgres",
        |url| async move {
            acknowledged_chat_survives_sigkill(Some(url)).await;
        },
    )
    .await;
}

#[tokio::test]
async fn sigterm_closes_sockets_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), None).await;
    let (topic, token, user_id) = server.room_and_visitor("Closing", "Ada").await;
    let mut ada = socket_at(server.addr, &token, &user_id).await;
    ada.join_ok(&topic, "Ada").await;
    let stopping = tokio::spawn(server.signal("TERM"));
    let close = ada.expect_close().await;
    assert_eq!(u16::from(close.code), 1001);
    assert!(close.reason.contains("shutting down"), "{close:?}");
    let (status, log) = stopping.await.unwrap();
    assert!(status.success(), "{status}: {log:#?}");
}
