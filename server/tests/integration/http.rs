//! Pages, the JSON API, tokens, health and metrics, through the router
//! in-process (no listener): the real handlers, state and SQLite database.

use std::time::{Duration, SystemTime};

use roomscale_server::Identity;
use roomscale_server::identity::TokenError;
use serde_json::{Value, json};

use crate::common::{Request, Response, TestApp};
use crate::ownership::{Browser, csrf_in};

const COOKIE: &str = "roomscale_user";

/// The id in a `/rooms/{id}` or `/api/rooms/{id}` location.
fn id_from_location(response: &Response) -> String {
    let location = response.header("location").expect("a Location header");
    location.rsplit('/').next().unwrap().to_string()
}

/// The value of `attribute="..."` in `html`, unescaped only as far as tokens need.
fn attribute<'a>(html: &'a str, attribute: &str) -> &'a str {
    let start = html
        .find(&format!("{attribute}=\""))
        .unwrap_or_else(|| panic!("no {attribute} in {html}"))
        + attribute.len()
        + 2;
    let end = start + html[start..].find('"').unwrap();
    &html[start..end]
}

#[tokio::test]
async fn the_landing_page_welcomes_and_sets_the_visitor_cookie() {
    let server = TestApp::start().await;
    let response = server.get("/").await;
    assert_eq!(response.status, 200);
    assert!(
        response.body.contains("Welcome to Roomscale"),
        "{}",
        response.body
    );
    assert!(response.body.contains(r#"href="/rooms""#));
    assert!(
        response
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );

    let set_cookie = response
        .set_cookie(COOKIE)
        .expect("a new visitor gets a cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(
            set_cookie.contains(attribute),
            "{set_cookie} lacks {attribute}"
        );
    }

    let cookie = response.cookie(COOKIE).unwrap();
    let again = server.send(Request::get("/").cookie(&cookie)).await;
    assert_eq!(
        again.set_cookie(COOKIE),
        None,
        "a known visitor keeps the cookie"
    );

    // A cookie signed with another key is ignored and replaced.
    let foreign = Identity::generate().cookie_value("someone");
    let replaced = server
        .send(Request::get("/").cookie(&format!("{COOKIE}={foreign}")))
        .await;
    let new_cookie = replaced
        .cookie(COOKIE)
        .expect("a forged cookie is replaced");
    assert!(!new_cookie.contains("someone"));
}

#[tokio::test]
async fn rooms_are_managed_through_the_pages() {
    let server = TestApp::start().await;
    let browser = Browser::new(&server).await;
    let form = browser.get("/rooms/new").await;
    assert_eq!(form.status, 200);
    assert!(
        form.body
            .contains(r#"<form method="post" action="/rooms/new">"#),
        "{}",
        form.body
    );

    let created = browser
        .post(
            "/rooms/new",
            &[
                ("name", "Lobby"),
                ("description", "Say hello"),
                ("_csrf", &csrf_in(&form.body, "/rooms/new")),
            ],
        )
        .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let id = id_from_location(&created);
    assert_eq!(created.header("location").unwrap(), format!("/rooms/{id}"));

    let list = server.get("/rooms").await;
    assert_eq!(list.status, 200);
    assert!(
        list.body
            .contains(&format!(r#"<a href="/rooms/{id}">Lobby</a>"#)),
        "{}",
        list.body
    );

    let own = browser.get(&format!("/rooms/{id}")).await;
    assert!(own.body.contains(&format!(r#"href="/rooms/{id}/edit""#)));
    assert!(
        own.body
            .contains(&format!(r#"action="/rooms/{id}/delete""#))
    );

    let visit = server.get(&format!("/rooms/{id}")).await;
    assert_eq!(visit.status, 200);
    assert!(visit.body.contains("<h2>Lobby</h2>") && visit.body.contains("Say hello"));
    assert!(
        !visit.body.contains(&format!(r#"href="/rooms/{id}/edit""#)),
        "only the owner sees the edit link"
    );
    assert!(
        visit
            .body
            .contains(r#"<script type="module" src="/assets/room.js"></script>"#)
    );
    assert_eq!(attribute(&visit.body, "data-room-id"), id);

    // The embedded token belongs to the visitor of the cookie just set.
    let cookie = visit.cookie(COOKIE).expect("the room page sets the cookie");
    let user_id = server
        .state
        .identity
        .verify_cookie_value(cookie.split_once('=').unwrap().1)
        .unwrap();
    let claims = server
        .state
        .identity
        .verify_token(attribute(&visit.body, "data-token"), SystemTime::now())
        .expect("the embedded token is valid");
    assert_eq!(claims.user_id, user_id);
    assert_eq!(attribute(&visit.body, "data-user-id"), user_id);
    let with_cookie = server
        .send(Request::get(&format!("/rooms/{id}")).cookie(&cookie))
        .await;
    let claims = server
        .state
        .identity
        .verify_token(
            attribute(&with_cookie.body, "data-token"),
            SystemTime::now(),
        )
        .unwrap();
    assert_eq!(
        claims.user_id, user_id,
        "the same visitor gets a token for the same user"
    );

    let edit = browser.get(&format!("/rooms/{id}/edit")).await;
    assert_eq!(edit.status, 200);
    assert!(edit.body.contains(r#"value="Lobby""#) && edit.body.contains(">Say hello</textarea>"));
    let updated = browser
        .post(
            &format!("/rooms/{id}/edit"),
            &[
                ("name", "Atrium"),
                ("description", ""),
                ("_csrf", &csrf_in(&edit.body, &format!("/rooms/{id}/edit"))),
            ],
        )
        .await;
    assert_eq!(updated.status, 303);
    assert_eq!(updated.header("location").unwrap(), format!("/rooms/{id}"));
    assert!(
        server
            .get(&format!("/rooms/{id}"))
            .await
            .body
            .contains("<h2>Atrium</h2>")
    );

    let delete = format!("/rooms/{id}/delete");
    let deleted = browser.submit(&format!("/rooms/{id}"), &delete, &[]).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert!(deleted.body.contains("Room deleted"));
    assert_eq!(server.get(&format!("/rooms/{id}")).await.status, 410);
    assert!(!server.get("/rooms").await.body.contains("Atrium"));
    let token = server.state.identity.csrf_token(&browser.user_id);
    assert_eq!(
        browser.post(&delete, &[("_csrf", &token)]).await.status,
        404
    );
}

#[tokio::test]
async fn invalid_forms_are_shown_again_with_messages_and_typed_values() {
    let server = TestApp::start().await;
    let browser = Browser::new(&server).await;
    let long = "d".repeat(501);
    let response = browser
        .submit(
            "/rooms/new",
            "/rooms/new",
            &[("name", "  "), ("description", &long)],
        )
        .await;
    assert_eq!(response.status, 422);
    assert!(
        response
            .body
            .contains(r#"id="name-error">Must not be blank.</p>"#),
        "{}",
        response.body
    );
    assert!(response.body.contains("at most 500 are allowed"));
    assert!(
        response.body.contains(&format!(">{long}</textarea>")),
        "the typed description is kept"
    );
    assert!(server.get("/rooms").await.body.contains("No rooms yet"));

    let id = browser.create_room("Lobby", "public").await;
    let edit = format!("/rooms/{id}/edit");
    let response = browser
        .submit(&edit, &edit, &[("name", ""), ("description", "typed <b>")])
        .await;
    assert_eq!(response.status, 422);
    assert!(response.body.contains("Must not be blank."));
    assert!(
        response.body.contains(">typed &lt;b&gt;</textarea>"),
        "{}",
        response.body
    );
    assert!(
        server
            .get(&format!("/rooms/{id}"))
            .await
            .body
            .contains("<h2>Lobby</h2>"),
        "unchanged"
    );
}

#[tokio::test]
async fn markup_in_rooms_is_escaped_on_every_page() {
    let server = TestApp::start().await;
    let name = "<script>alert(1)</script>";
    let description = r#""><img src=x onerror=alert(2)>"#;
    let created = server
        .send(Request::post("/api/rooms").json(&json!({"name": name, "description": description})))
        .await;
    assert_eq!(created.status, 201);
    let id = id_from_location(&created);
    let owner = created.cookie(COOKIE).expect("the creator gets a cookie");

    for path in [
        "/rooms".to_string(),
        format!("/rooms/{id}"),
        format!("/rooms/{id}/edit"),
    ] {
        let page = server.send(Request::get(&path).cookie(&owner)).await;
        assert_eq!(page.status, 200, "{path}");
        assert!(
            !page.body.contains("<script>alert"),
            "{path} shows raw markup:\n{}",
            page.body
        );
        assert!(
            !page.body.contains("<img"),
            "{path} shows raw markup:\n{}",
            page.body
        );
        assert!(
            page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{path}:\n{}",
            page.body
        );
        assert!(
            page.body
                .contains("&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn rooms_are_managed_through_the_api() {
    let server = TestApp::start().await;
    let created = server
        .send(Request::post("/api/rooms").json(&json!({"name": " Lobby ", "description": "Hi"})))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let room = created.json();
    let id = room["id"].as_str().unwrap().to_string();
    assert_eq!(
        created.header("location").unwrap(),
        format!("/api/rooms/{id}")
    );
    assert_eq!(room["name"], "Lobby");
    assert_eq!(room["description"], "Hi");
    let inserted_at = room["inserted_at"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(inserted_at, &time::format_description::well_known::Rfc3339)
            .is_ok(),
        "{inserted_at} is not RFC 3339"
    );
    let keys: Vec<&str> = room
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "name",
            "description",
            "inserted_at",
            "updated_at",
            "owner_id",
            "visibility",
            "locked"
        ]
    );
    assert_eq!(room["visibility"], "public");
    let owner = created.cookie(COOKIE).expect("the creator gets a cookie");

    let list = server.get("/api/rooms").await;
    assert_eq!(list.status, 200);
    // Listed with who is in it now (nobody) and when it was last lively (never).
    let mut listed = room.clone();
    listed["people"] = json!({"browser": 0, "desktop": 0, "headset": 0, "total": 0});
    listed["active_at"] = Value::Null;
    assert_eq!(list.json(), json!([listed]));
    // One room says who is in it too: the lobby shows it before entering.
    assert_eq!(server.get(&format!("/api/rooms/{id}")).await.json(), listed);

    let updated = server
        .send(
            Request::put(&format!("/api/rooms/{id}"))
                .json(&json!({"name": "Atrium", "description": ""}))
                .cookie(&owner),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.json()["name"], "Atrium");
    assert_eq!(
        server.get(&format!("/api/rooms/{id}")).await.json()["name"],
        "Atrium"
    );

    let deleted = server
        .send(Request::delete(&format!("/api/rooms/{id}")).cookie(&owner))
        .await;
    assert_eq!((deleted.status, deleted.body.as_str()), (204, ""));
    for request in [
        Request::get(&format!("/api/rooms/{id}")),
        Request::delete(&format!("/api/rooms/{id}")).cookie(&owner),
        Request::put(&format!("/api/rooms/{id}"))
            .json(&json!({"name": "x"}))
            .cookie(&owner),
    ] {
        let response = server.send(request).await;
        assert_eq!(response.status, 404);
        assert_eq!(response.json(), json!({"error": "not found"}));
    }
}

#[tokio::test]
async fn api_errors_say_what_to_fix() {
    let server = TestApp::start().await;
    async fn check(server: &TestApp, request: Request, status: u16, expected: Value) {
        let response = server.send(request.clone()).await;
        assert_eq!(response.status, status, "{request:?}: {}", response.body);
        let body = response.json();
        // Every expected key must be there with a message containing the expected text.
        fn contains(got: &Value, want: &Value) -> bool {
            match (got, want) {
                (Value::Object(got), Value::Object(want)) => want
                    .iter()
                    .all(|(k, w)| got.get(k).is_some_and(|g| contains(g, w))),
                (Value::String(got), Value::String(want)) => got.contains(want.as_str()),
                (got, want) => got == want,
            }
        }
        assert!(
            contains(&body, &expected),
            "{request:?}: {body} does not match {expected}"
        );
    }
    check(
        &server,
        Request::post("/api/rooms").json(&json!({"name": "", "description": "d".repeat(501)})),
        422,
        json!({"fields": {"name": "must not be blank", "description": "at most 500"}}),
    )
    .await;
    check(
        &server,
        Request::post("/api/rooms").json(&json!({})),
        422,
        json!({"fields": {"name": "blank"}}),
    )
    .await;
    check(
        &server,
        Request::post("/api/rooms").raw_body("application/json", b"{\"name\": "),
        400,
        json!({"error": "EOF"}),
    )
    .await;
    check(
        &server,
        Request::post("/api/rooms").json(&json!({"name": "x", "colour": "red"})),
        400,
        json!({"error": "unknown field `colour`"}),
    )
    .await;
    check(
        &server,
        Request::post("/api/rooms").raw_body("text/plain", b"{\"name\": \"x\"}"),
        400,
        json!({"error": "Content-Type: application/json"}),
    )
    .await;
    check(
        &server,
        Request::get("/api/rooms/not-a-uuid"),
        400,
        json!({"error": "room ids are UUIDs"}),
    )
    .await;
    check(
        &server,
        Request::get("/api/nothing-here"),
        404,
        json!({"error": "not found"}),
    )
    .await;
    let id = uuid::Uuid::new_v4();
    check(
        &server,
        Request::get(&format!("/api/rooms/{id}")),
        404,
        json!({"error": "not found"}),
    )
    .await;
    assert!(
        server
            .get("/api/rooms")
            .await
            .json()
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing was stored"
    );
}

#[tokio::test]
async fn unknown_pages_and_rooms_are_404_pages() {
    let server = TestApp::start().await;
    let unknown_room = uuid::Uuid::new_v4();
    for path in [
        "/nothing-here".to_string(),
        format!("/rooms/{unknown_room}"),
        format!("/rooms/{unknown_room}/edit"),
        "/rooms/not-a-uuid".to_string(),
    ] {
        let response = server.get(&path).await;
        assert_eq!(response.status, 404, "{path}");
        assert!(
            response
                .header("content-type")
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
        assert!(response.body.contains("Not found"), "{path}");
    }
    let browser = Browser::new(&server).await;
    let token = server.state.identity.csrf_token(&browser.user_id);
    let response = browser
        .post(
            &format!("/rooms/{unknown_room}/edit"),
            &[("name", "x"), ("_csrf", &token)],
        )
        .await;
    assert_eq!(response.status, 404);
}

#[tokio::test]
async fn sessions_issue_tokens_the_server_accepts() {
    let server = TestApp::start().await;
    let identity = &server.state.identity;

    let response = server.send(Request::post("/api/session")).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let session = response.json();
    let claims = identity
        .verify_token(session["token"].as_str().unwrap(), SystemTime::now())
        .unwrap();
    assert_eq!(claims.user_id, session["user_id"].as_str().unwrap());
    assert_eq!(claims.name, None);
    let expires_at = time::OffsetDateTime::parse(
        session["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let lifetime = expires_at - time::OffsetDateTime::now_utc();
    assert!(
        lifetime > time::Duration::days(13) && lifetime <= time::Duration::days(14),
        "{lifetime}"
    );
    assert_eq!(
        claims.expires_at,
        (expires_at.unix_timestamp_nanos() / 1_000_000) as i64,
        "the JSON expiry is the token's"
    );

    // A cookie visitor gets a token for their own user id.
    let cookie = response
        .cookie(COOKIE)
        .expect("a new user gets the cookie too");
    let named = server
        .send(
            Request::post("/api/session")
                .cookie(&cookie)
                .json(&json!({"name": "Ada"})),
        )
        .await
        .json();
    assert_eq!(named["user_id"], session["user_id"]);
    let claims = identity
        .verify_token(named["token"].as_str().unwrap(), SystemTime::now())
        .unwrap();
    assert_eq!(claims.name.as_deref(), Some("Ada"));

    // Without a cookie every session is a new user.
    let other = server.send(Request::post("/api/session")).await.json();
    assert_ne!(other["user_id"], session["user_id"]);

    let invalid = server
        .send(Request::post("/api/session").json(&json!({"name": "  "})))
        .await;
    assert_eq!(invalid.status, 422);
    assert!(
        invalid.json()["fields"]["name"]
            .as_str()
            .unwrap()
            .contains("blank")
    );
    let malformed = server
        .send(Request::post("/api/session").json(&json!({"nick": "Ada"})))
        .await;
    assert_eq!(malformed.status, 400);
}

#[test]
fn tokens_are_refused_for_the_right_reason() {
    let identity = Identity::generate();
    let now = SystemTime::now();
    let (token, _) = identity.issue_token("user-1", Some("Ada"), now);

    let check = |token: &str, at: SystemTime, expected: Result<&str, TokenError>| match (
        identity.verify_token(token, at),
        expected,
    ) {
        (Ok(claims), Ok(user_id)) => assert_eq!(claims.user_id, user_id),
        (Err(error), Err(want)) => {
            assert_eq!(error, want, "{token:?}");
            assert!(error.to_string().contains("POST /api/session"), "{error}");
        }
        (got, want) => panic!("{token:?}: got {got:?}, want {want:?}"),
    };
    check(&token, now, Ok("user-1"));

    // One character of the claims changed: still well-formed, no longer ours.
    let (claims_part, signature) = token.split_once('.').unwrap();
    let mut forged = claims_part.as_bytes().to_vec();
    forged[5] = if forged[5] == b'A' { b'B' } else { b'A' };
    let forged = format!("{}.{signature}", String::from_utf8(forged).unwrap());
    check(&forged, now, Err(TokenError::BadSignature));

    let (other_key, _) = Identity::generate().issue_token("user-1", None, now);
    check(&other_key, now, Err(TokenError::BadSignature));

    let long_ago = now - Duration::from_secs(15 * 24 * 60 * 60);
    let (old, old_expiry) = identity.issue_token("user-1", None, long_ago);
    check(
        &old,
        now,
        Err(TokenError::Expired {
            expires_at: old_expiry,
        }),
    );
    let message = identity.verify_token(&old, now).unwrap_err().to_string();
    assert!(message.contains("expired at 20"), "{message}");
    // Still valid a moment before its expiry.
    check(&old, long_ago + Duration::from_secs(60), Ok("user-1"));

    check("", now, Err(TokenError::Missing));
    check(
        "no-dot",
        now,
        Err(TokenError::Malformed("it has no signature part")),
    );
    check(
        "abc.!!!",
        now,
        Err(TokenError::Malformed("its signature is not base64url")),
    );
}

#[tokio::test]
async fn health_reflects_the_database() {
    let server = TestApp::start().await;
    let response = server.get("/healthz").await;
    assert_eq!((response.status, response.body.trim()), (200, "ok"));
    server.state.store.close().await;
    let response = server.get("/healthz").await;
    assert_eq!(response.status, 503, "{}", response.body);
}

#[tokio::test]
async fn metrics_are_exposed_for_prometheus() {
    let server = TestApp::start().await;
    server.get("/nothing-here").await;
    server.state.metrics.error("invalid_payload");
    let response = server.get("/metrics").await;
    assert_eq!(response.status, 200);
    assert!(
        response
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    for name in [
        "roomscale_connections",
        "roomscale_rooms_active",
        "roomscale_frames_in_total",
        "roomscale_frames_out_total",
        "roomscale_bytes_in_total",
        "roomscale_bytes_out_total",
        "roomscale_poses_relayed_total",
        "roomscale_poses_dropped_total",
        "roomscale_errors_total",
        "roomscale_http_responses_total",
    ] {
        assert!(
            response.body.contains(&format!("# TYPE {name} ")),
            "{name} missing:\n{}",
            response.body
        );
    }
    assert!(
        response
            .body
            .contains("roomscale_errors_total{kind=\"invalid_payload\"} 1")
    );
    assert!(
        response
            .body
            .contains("roomscale_http_responses_total{status=\"4xx\"} 1"),
        "{}",
        response.body
    );
}
