//! A plain Rust WebSocket client speaking Phoenix v2 frames, for the socket tests.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use roomscale_protocol::frame::{self, ServerBinary, TextFrame};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

use super::TestServer;

pub const WAIT: Duration = Duration::from_secs(5);

/// What the server sent.
#[derive(Debug, Clone)]
pub enum Received {
    Text(TextFrame),
    Binary(Vec<u8>),
    Close(Option<CloseFrame>),
}

pub struct TestSocket {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_ref: u64,
    pub user_id: String,
}

impl TestServer {
    /// A fresh visitor's socket token and user id.
    pub async fn session(&self, name: &str) -> (String, String) {
        super::new_session(self, name).await
    }

    /// Creates a room named `name` through the API as a new visitor; returns
    /// the created answer (the room, and the visitor's cookie).
    pub async fn post_room(&self, name: &str) -> super::Response {
        super::post_room(self, name).await
    }

    /// Creates a room named `name` through the API; returns its id.
    pub async fn create_room(&self, name: &str) -> String {
        self.post_room(name).await.json()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub async fn socket(&self, name: &str) -> TestSocket {
        let (token, user_id) = self.session(name).await;
        socket_at(self.addr, &token, &user_id).await
    }

    /// A new visitor's socket, joined to `topic` as `name`: (socket, join ref).
    pub async fn joined(&self, topic: &str, name: &str) -> (TestSocket, String) {
        let mut socket = self.socket(name).await;
        let (join_ref, _) = socket.join_ok(topic, name).await;
        (socket, join_ref)
    }

    /// Another socket of a visitor who already has `token`: a second tab or
    /// device of the same person.
    pub async fn socket_with_token(&self, token: &str, user_id: &str) -> TestSocket {
        socket_at(self.addr, token, user_id).await
    }
}

/// A socket to the server at `addr`, opened with a visitor's `token`.
pub async fn socket_at(addr: SocketAddr, token: &str, user_id: &str) -> TestSocket {
    let url = format!("ws://{addr}/socket/websocket?vsn=2.0.0&token={token}");
    let (ws, _) = connect_async(url).await.expect("websocket connects");
    TestSocket::new(ws, user_id.to_string())
}

/// Asserts that a reply (status, response) is `ok`; returns the response.
#[track_caller]
pub fn assert_ok(reply: (String, Value)) -> Value {
    let (status, response) = reply;
    assert_eq!(status, "ok", "the push was refused: {response}");
    response
}

/// Asserts that a reply (status, response) is an error with `code` whose
/// reason mentions `reason_part` (`""` for any reason); returns the response.
#[track_caller]
pub fn assert_refused(reply: (String, Value), code: &str, reason_part: &str) -> Value {
    let (status, response) = reply;
    assert_eq!(
        (status.as_str(), response["code"].as_str()),
        ("error", Some(code)),
        "{response}"
    );
    let reason = response["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(reason_part),
        "the reason should mention {reason_part:?}: {response}"
    );
    response
}

/// Asserts that the server closed a socket with `code` and a reason that
/// mentions `reason_part`.
#[track_caller]
pub fn assert_closed_with(close: &CloseFrame, code: u16, reason_part: &str) {
    assert_eq!(u16::from(close.code), code, "{close:?}");
    assert!(close.reason.contains(reason_part), "{close:?}");
}

/// A member joined to a room: its socket and the join's ref.
pub struct Joined {
    pub socket: TestSocket,
    pub join_ref: String,
}

impl super::TestServer {
    /// A new room named `room_name` with Ada and Bo joined; returns its topic.
    pub async fn room_with_ada_and_bo(&self, room_name: &str) -> (String, Joined, Joined) {
        let topic = format!("room:{}", self.create_room(room_name).await);
        let mut joined = Vec::new();
        for name in ["Ada", "Bo"] {
            let mut socket = self.socket(name).await;
            let (join_ref, _) = socket.join_ok(&topic, name).await;
            joined.push(Joined { socket, join_ref });
        }
        let bo = joined.pop().expect("two joined");
        let ada = joined.pop().expect("two joined");
        (topic, ada, bo)
    }
}

/// Ada and Bo joined to a new room: its topic, and each one's socket and join ref.
pub struct AdaAndBo {
    pub topic: String,
    pub ada: TestSocket,
    pub ada_ref: String,
    pub bo: TestSocket,
    pub bo_ref: String,
}

impl AdaAndBo {
    /// (topic, Ada's socket, her join ref, Bo's socket, his join ref).
    pub fn into_parts(self) -> (String, TestSocket, String, TestSocket, String) {
        (self.topic, self.ada, self.ada_ref, self.bo, self.bo_ref)
    }
}

impl TestServer {
    /// [`TestServer::room_with_ada_and_bo`], unpacked.
    pub async fn ada_and_bo(&self, room_name: &str) -> AdaAndBo {
        let (topic, ada, bo) = self.room_with_ada_and_bo(room_name).await;
        AdaAndBo {
            topic,
            ada: ada.socket,
            ada_ref: ada.join_ref,
            bo: bo.socket,
            bo_ref: bo.join_ref,
        }
    }
}

pub fn join_payload(name: &str) -> Value {
    json!({"protocol_version": 1, "name": name, "colour": "#3a7bd5", "client_kind": "desktop"})
}

impl TestSocket {
    pub fn new(ws: WebSocketStream<MaybeTlsStream<TcpStream>>, user_id: String) -> TestSocket {
        TestSocket {
            ws,
            next_ref: 1,
            user_id,
        }
    }

    pub fn next_ref(&mut self) -> String {
        self.next_ref += 1;
        self.next_ref.to_string()
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.ws.send(message).await.expect("send");
    }

    /// Pushes an event and returns its ref.
    pub async fn push(
        &mut self,
        join_ref: Option<&str>,
        topic: &str,
        event: &str,
        payload: Value,
    ) -> String {
        let msg_ref = self.next_ref();
        let text = frame::encode_text_parts(join_ref, Some(&msg_ref), topic, event, &payload);
        self.send_raw(Message::text(text)).await;
        msg_ref
    }

    /// Pushes a binary frame (a pose) without a ref.
    pub async fn push_binary(&mut self, join_ref: &str, topic: &str, event: &str, payload: &[u8]) {
        let mut out = Vec::new();
        frame::encode_client_push(&mut out, join_ref, "", topic, event, payload).unwrap();
        self.send_raw(Message::binary(out)).await;
    }

    pub async fn recv(&mut self) -> Received {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for a frame")
                .expect("socket ended without a close frame");
            match message {
                Ok(Message::Text(text)) => {
                    return Received::Text(
                        frame::decode_text(&text).expect("server frames decode"),
                    );
                }
                Ok(Message::Binary(bytes)) => return Received::Binary(bytes.to_vec()),
                Ok(Message::Close(close)) => return Received::Close(close),
                Ok(_) => continue,
                Err(error) => panic!("socket error: {error}"),
            }
        }
    }

    /// Waits for a text frame matching `wanted`, skipping others.
    pub async fn expect_text(&mut self, mut wanted: impl FnMut(&TextFrame) -> bool) -> TextFrame {
        loop {
            match self.recv().await {
                Received::Text(frame) if wanted(&frame) => return frame,
                Received::Close(close) => panic!("closed while waiting: {close:?}"),
                _ => continue,
            }
        }
    }

    /// Pushes an event and waits for its reply: (status, response).
    pub async fn request(
        &mut self,
        join_ref: Option<&str>,
        topic: &str,
        event: &str,
        payload: Value,
    ) -> (String, Value) {
        let msg_ref = self.push(join_ref, topic, event, payload).await;
        self.expect_reply(&msg_ref).await
    }

    pub async fn expect_reply(&mut self, msg_ref: &str) -> (String, Value) {
        let frame = self
            .expect_text(|f| f.event == "phx_reply" && f.msg_ref.as_deref() == Some(msg_ref))
            .await;
        (
            frame.payload["status"].as_str().unwrap().to_string(),
            frame.payload["response"].clone(),
        )
    }

    pub async fn expect_event(&mut self, event: &str) -> Value {
        self.expect_text(|f| f.event == event).await.payload
    }

    /// Waits for a pose batch broadcast and returns its payload.
    pub async fn expect_poses(&mut self) -> Vec<u8> {
        loop {
            match self.recv().await {
                Received::Binary(bytes) => {
                    if let Ok(ServerBinary::Broadcast {
                        event: "poses",
                        payload,
                        ..
                    }) = frame::decode_server_binary(&bytes)
                    {
                        return payload.to_vec();
                    }
                }
                Received::Close(close) => panic!("closed while waiting for poses: {close:?}"),
                Received::Text(_) => {}
            }
        }
    }

    /// Waits for the server to close, returning the close frame.
    pub async fn expect_close(&mut self) -> CloseFrame {
        loop {
            match self.recv().await {
                Received::Close(Some(close)) => return close,
                Received::Close(None) => panic!("closed without a reason"),
                _ => continue,
            }
        }
    }

    /// Joins `topic` and returns (join_ref, reply response).
    pub async fn join(&mut self, topic: &str, payload: Value) -> (String, String, Value) {
        let join_ref = self.next_ref();
        let text = frame::encode_text_parts(
            Some(&join_ref),
            Some(&join_ref),
            topic,
            "phx_join",
            &payload,
        );
        self.send_raw(Message::text(text)).await;
        let (status, response) = self.expect_reply(&join_ref).await;
        (join_ref, status, response)
    }

    pub async fn join_ok(&mut self, topic: &str, name: &str) -> (String, Value) {
        let (join_ref, status, response) = self.join(topic, join_payload(name)).await;
        assert_eq!(status, "ok", "join refused: {response}");
        (join_ref, response)
    }

    /// Joins `topic` as `name`, expecting a refusal with `code` whose reason
    /// mentions `reason_part`; returns the response.
    pub async fn join_refused(
        &mut self,
        topic: &str,
        name: &str,
        code: &str,
        reason_part: &str,
    ) -> Value {
        let (_, status, response) = self.join(topic, join_payload(name)).await;
        assert_refused((status, response), code, reason_part)
    }
}
