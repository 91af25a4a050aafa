//! The HTTP side of the security catalogue: cross-site requests, headers,
//! cookies, files, /metrics, timeouts and what reaches the logs. Each test
//! shows the attack failing and honest use going on.
//!
//! Requests and responses go through the router in-process ([`TestApp`]); the
//! tests of the listener (deadlines, the connection cap), of sockets and of the
//! binary's files and log use a real port.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::common::app::{APP_HOST, LOOPBACK_PEER};
use crate::common::ws::{WAIT, assert_ok, socket_at};
use crate::common::{Request, TestApp, TestServer, stored_room};
use crate::ownership::{Browser, csrf_in};

const EVIL: &str = "https://evil.example";

#[tokio::test]
async fn forms_and_api_calls_from_another_site_change_nothing() {
    let server = TestServer::start().await;
    let (ada, id) = Browser::with_public_room(&server, "Target").await;
    let room_page = ada.get(&format!("/rooms/{id}")).await.body;
    let token = csrf_in(&room_page, &format!("/rooms/{id}/delete"));

    // Another site's page posts the delete form with the visitor's cookie (the
    // browser attaches it): even with the right token, its Origin gives it away.
    let forged = server
        .send(
            Request::post(&format!("/rooms/{id}/delete"))
                .cookie(&ada.cookie)
                .header("Origin", EVIL)
                .form(&[("_csrf", &token)]),
        )
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert!(forged.body.contains("evil.example"), "{}", forged.body);
    // A browser that sends no Origin but says the request is cross-site.
    let cross = server
        .send(
            Request::post(&format!("/rooms/{id}/delete"))
                .cookie(&ada.cookie)
                .header("Sec-Fetch-Site", "cross-site")
                .form(&[("_csrf", &token)]),
        )
        .await;
    assert_eq!(cross.status, 403, "{}", cross.body);
    // Without the token (a page elsewhere cannot read it), same origin or none.
    for fields in [vec![], vec![("_csrf", "forged")]] {
        let tokenless = ada.post(&format!("/rooms/{id}/delete"), &fields).await;
        assert_eq!(tokenless.status, 403, "{}", tokenless.body);
        assert!(
            tokenless.body.contains("another site"),
            "{}",
            tokenless.body
        );
    }
    let new_room = server
        .send(
            Request::post("/rooms/new")
                .cookie(&ada.cookie)
                .form(&[("name", "Spam")]),
        )
        .await;
    assert_eq!(
        new_room.status, 403,
        "a form without a token creates nothing"
    );
    // The JSON API, with the owner's cookie, from another site's script.
    let api = server
        .send(
            Request::delete(&format!("/api/rooms/{id}"))
                .cookie(&ada.cookie)
                .header("Origin", EVIL),
        )
        .await;
    assert_eq!(api.status, 403, "{}", api.body);
    assert!(
        api.json()["error"]
            .as_str()
            .unwrap()
            .contains("evil.example")
    );

    // The room survived and still serves its members.
    assert_eq!(server.get(&format!("/rooms/{id}")).await.status, 200);
    let mut member = server.socket("Bo").await;
    member.join_ok(&format!("room:{id}"), "Bo").await;
    assert_eq!(crate::common::listed_rooms(&server).await.len(), 1);
    // And the owner's own page still works.
    let deleted = ada
        .post(&format!("/rooms/{id}/delete"), &[("_csrf", &token)])
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
}

#[tokio::test]
async fn pages_carry_the_security_headers_and_no_inline_script() {
    let server = TestApp::start().await;
    let (ada, id) = Browser::with_public_room(&server, "Headers").await;
    for path in [
        "/".to_string(),
        "/rooms".into(),
        format!("/rooms/{id}"),
        "/api/rooms".into(),
    ] {
        let response = ada.get(&path).await;
        assert_eq!(response.status, 200, "{path}");
        let policy = response.header("content-security-policy").expect("a CSP");
        let script_src = policy
            .split(';')
            .map(str::trim)
            .find(|directive| directive.starts_with("script-src"))
            .unwrap();
        assert!(!script_src.contains("unsafe-inline"), "{policy}");
        assert!(!script_src.contains("'unsafe-eval'"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        assert!(policy.contains("object-src 'none'"), "{policy}");
        assert!(
            policy.contains(&format!("ws://{APP_HOST}")),
            "the room's socket is allowed: {policy}"
        );
        assert_eq!(response.header("referrer-policy"), Some("same-origin"));
        assert_eq!(
            response.header("permissions-policy"),
            Some("microphone=(self), xr-spatial-tracking=(self)")
        );
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
        // Every script is a file; no inline <script> or <style> blocks.
        let mut rest = response.body.as_str();
        while let Some(start) = rest.find("<script") {
            let tag_end = start + rest[start..].find('>').unwrap();
            assert!(
                rest[start..tag_end].contains(" src="),
                "{path}: inline script"
            );
            rest = &rest[tag_end..];
        }
        assert!(!response.body.contains("<style"), "{path}: inline style");
    }
    let room = ada.get(&format!("/rooms/{id}")).await;
    assert_eq!(
        room.header("cache-control"),
        Some("no-store"),
        "the room page embeds a token"
    );
    let stylesheet = server.get("/pages.css").await;
    assert_eq!(stylesheet.status, 200);
    let content_type = stylesheet.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/css"), "{content_type}");
    assert!(stylesheet.body.contains("#room-root"));
}

#[tokio::test]
async fn the_cookie_is_secure_behind_https() {
    let plain = TestApp::start().await;
    let cookie = plain.get("/").await;
    let cookie = cookie.set_cookie("roomscale_user").unwrap();
    assert!(!cookie.contains("Secure"), "{cookie}");

    let https = TestApp::start_with(|config| {
        config.public_url = Some("https://rooms.example.org".into());
    })
    .await;
    let landing = https.get("/").await;
    let cookie = landing.set_cookie("roomscale_user").unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
    assert!(
        landing
            .header("content-security-policy")
            .unwrap()
            .contains("wss://rooms.example.org")
    );
}

#[tokio::test]
async fn metrics_answer_loopback_or_the_metrics_token_only() {
    let server =
        TestApp::start_with(|config| config.metrics_token = Some("metrics-secret-123".into()))
            .await;
    // A documentation address stands for a peer on another machine.
    let outside = SocketAddr::from(([198, 51, 100, 7], 50_000));

    let local = server
        .send_from(LOOPBACK_PEER, Request::get("/metrics"))
        .await;
    assert_eq!(local.status, 200);
    assert!(local.body.contains("roomscale_connections"));
    let stranger = server.send_from(outside, Request::get("/metrics")).await;
    assert_eq!(stranger.status, 403, "{}", stranger.body);
    assert!(stranger.body.contains("Authorization: Bearer"));
    let wrong = Request::get("/metrics").header("Authorization", "Bearer metrics-secret-124");
    assert_eq!(server.send_from(outside, wrong).await.status, 403);
    let scraper = Request::get("/metrics").header("Authorization", "Bearer metrics-secret-123");
    let scraped = server.send_from(outside, scraper).await;
    assert_eq!(scraped.status, 200, "{}", scraped.body);
    // Pages still answer everyone.
    assert_eq!(
        server
            .send_from(outside, Request::get("/rooms"))
            .await
            .status,
        200
    );
}

/// Reads until the server closes the connection; the bytes it sent.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    tokio::time::timeout(within, stream.read_to_end(&mut received))
        .await
        .ok()
        .map(|_| received)
}

#[tokio::test]
async fn slow_requests_are_cut_but_sockets_are_not() {
    let read_timeout = Duration::from_millis(700);
    let server = TestServer::start_with(|config| config.http_read_timeout = read_timeout).await;

    // A client that never finishes its headers (slowloris).
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /rooms HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let closed = read_until_closed(&mut slow, read_timeout * 5).await;
    assert!(closed.is_some(), "a trickling request is cut");
    // One that connects and says nothing.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    assert!(
        read_until_closed(&mut silent, read_timeout * 5)
            .await
            .is_some()
    );
    // A body that never arrives.
    let mut bodiless = TcpStream::connect(server.addr).await.unwrap();
    bodiless
        .write_all(b"POST /api/session HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        .await
        .unwrap();
    assert!(
        read_until_closed(&mut bodiless, read_timeout * 5)
            .await
            .is_some()
    );

    // A socket quiet for longer than the deadline keeps working.
    let token = {
        let response = Request::post("/api/session").send(server.addr).await;
        response.json()["token"].as_str().unwrap().to_string()
    };
    let room = stored_room(&server.state.store, "Quiet", Some("owner")).await;
    let mut socket = socket_at(server.addr, &token, "").await;
    let topic = format!("room:{}", room.id);
    let (join_ref, _) = socket.join_ok(&topic, "Ada").await;
    // The point is the time passing with nothing sent.
    tokio::time::sleep(read_timeout * 2).await;
    let chat = json!({"text": "still here"});
    assert_ok(socket.request(Some(&join_ref), &topic, "chat", chat).await);
    // And plain requests are still served.
    assert_eq!(Request::get("/healthz").send(server.addr).await.status, 200);
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_their_turn() {
    let server = TestServer::start_with(|config| config.max_connections = 2).await;
    let first = TcpStream::connect(server.addr).await.unwrap();
    let second = TcpStream::connect(server.addr).await.unwrap();
    // Both are accepted: a request on each would be answered. A third waits.
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    let waited = tokio::time::timeout(Duration::from_millis(500), third.read(&mut byte)).await;
    assert!(
        waited.is_err(),
        "the third connection is not served while two are open"
    );
    drop(first);
    let answer = read_until_closed(&mut third, WAIT)
        .await
        .expect("served once a place frees");
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    drop(second);
    assert_eq!(server.get("/healthz").await.status, 200);
}

#[cfg(unix)]
#[tokio::test]
async fn files_are_private_and_the_log_never_shows_a_socket_token() {
    use std::os::unix::fs::PermissionsExt as _;

    use crate::common::process::ServerProcess;

    let parent = tempfile::tempdir().unwrap();
    let data_dir = parent.path().join("fresh").join("data");
    let server = ServerProcess::start(&data_dir, None).await;
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data_dir), 0o700, "the data directory");
    for file in ["roomscale.db", "secret.key", "admin.token"] {
        assert_eq!(mode(&data_dir.join(file)), 0o600, "{file}");
    }

    let session = Request::post("/api/session")
        .json(&json!({"name": "Ada"}))
        .send(server.addr)
        .await;
    let token = session.json()["token"].as_str().unwrap().to_string();
    let created = Request::post("/api/rooms")
        .json(&json!({"name": "Logged"}))
        .send(server.addr)
        .await;
    let topic = format!("room:{}", created.json()["id"].as_str().unwrap());
    let mut socket = socket_at(server.addr, &token, "").await;
    socket.join_ok(&topic, "Ada").await;
    // A refused token, which a careless log would print to explain the refusal.
    let refused = Request::get(&format!("/socket/websocket?vsn=2.0.0&token={token}x"))
        .send(server.addr)
        .await;
    assert_ne!(refused.status, 101);
    drop(socket);

    let (_, log) = server.signal("TERM").await;
    let log = log.join("\n");
    let signature = token.rsplit_once('.').unwrap().1;
    assert!(
        !log.contains(signature),
        "a socket token reached the log:\n{log}"
    );
    assert!(
        log.contains("/socket/websocket?vsn=2.0.0&token=[redacted]"),
        "the access log names the socket request, redacted:\n{log}"
    );
    assert!(
        log.contains("/api/rooms") && log.contains("status=201"),
        "{log}"
    );
    let admin = std::fs::read_to_string(data_dir.join("admin.token")).unwrap();
    assert!(
        !log.contains(admin.trim()),
        "the admin token reached the log"
    );
}
