//! A plain Rust WebSocket client speaking Phoenix v2 frames, for the socket tests.

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
        let response = self
            .send(super::Request::post("/api/session").json(&json!({"name": name})))
            .await;
        assert_eq!(response.status, 200, "{}", response.body);
        let body = response.json();
        (
            body["token"].as_str().unwrap().to_string(),
            body["user_id"].as_str().unwrap().to_string(),
        )
    }

    pub async fn create_room(&self, name: &str) -> String {
        let response = self
            .send(
                super::Request::post("/api/rooms").json(&json!({"name": name, "description": ""})),
            )
            .await;
        assert_eq!(response.status, 201, "{}", response.body);
        response.json()["id"].as_str().unwrap().to_string()
    }

    pub async fn socket(&self, name: &str) -> TestSocket {
        let (token, user_id) = self.session(name).await;
        let url = format!(
            "ws://{}/socket/websocket?vsn=2.0.0&token={token}",
            self.addr
        );
        let (ws, _) = connect_async(url).await.expect("websocket connects");
        TestSocket {
            ws,
            next_ref: 1,
            user_id,
        }
    }
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
}
