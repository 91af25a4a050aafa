//! What a connection sends, and how rooms hand it frames without ever waiting on
//! a slow client.
//!
//! Each connection has one [`Outbox`]. Frames that must all arrive (replies,
//! presence, chat) go through a bounded queue; when a client falls so far behind
//! that the queue is full, it is disconnected with a reason rather than letting
//! the server's memory grow. Poses go through a "latest only" slot per channel:
//! a newer pose of the same member replaces the unsent older one, so a slow
//! reader gets the newest batch, never a backlog.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use roomscale_protocol::frame;
use roomscale_protocol::pose::{self, POSE_BYTES};
use serde::Serialize;
use tokio::sync::{Notify, mpsc, watch};

use crate::metrics::Metrics;

/// Reliable frames a connection may have queued before it counts as too slow.
pub const RELIABLE_QUEUE_FRAMES: usize = 1024;

/// WebSocket close codes we use (RFC 6455 section 7.4.1).
pub mod close_code {
    pub const GOING_AWAY: u16 = 1001;
    pub const UNSUPPORTED_DATA: u16 = 1003;
    pub const POLICY_VIOLATION: u16 = 1008;
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

/// The sending half that rooms and the connection's reader hold.
#[derive(Debug, Clone)]
pub struct Outbox {
    reliable: mpsc::Sender<Message>,
    shared: Arc<Shared>,
}

/// The receiving half, owned by the connection's writer task.
#[derive(Debug)]
pub struct OutboxReceiver {
    pub reliable: mpsc::Receiver<Message>,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    pending_poses: std::sync::Mutex<Vec<PendingBatch>>,
    poses_ready: Notify,
    /// The close code and reason, once a close was requested; the first wins.
    close: watch::Sender<Option<(u16, String)>>,
}

/// Poses waiting to be sent on one channel, at most one per member slot.
#[derive(Debug)]
struct PendingBatch {
    channel: u64,
    topic: Arc<str>,
    server_time_ms: u32,
    poses: Vec<[u8; POSE_BYTES]>,
}

/// The client is too far behind; it is being disconnected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

pub fn outbox() -> (Outbox, OutboxReceiver) {
    let (tx, rx) = mpsc::channel(RELIABLE_QUEUE_FRAMES);
    let shared = Arc::new(Shared {
        pending_poses: Default::default(),
        poses_ready: Notify::new(),
        close: watch::Sender::new(None),
    });
    (
        Outbox {
            reliable: tx,
            shared: shared.clone(),
        },
        OutboxReceiver {
            reliable: rx,
            shared,
        },
    )
}

impl Outbox {
    /// Queues a frame that must arrive. A full queue disconnects the client.
    pub fn send(&self, message: Message) -> Result<(), Overflow> {
        match self.reliable.try_send(message) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.close(
                    close_code::TRY_AGAIN_LATER,
                    "disconnected: the connection fell too far behind the room \
                     (send queue full); reconnect when the network is better",
                );
                Err(Overflow)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Overflow),
        }
    }

    /// Merges poses into the channel's pending batch; returns how many unsent
    /// poses were replaced by newer ones (dropped as stale).
    pub fn send_poses(
        &self,
        channel: u64,
        topic: &Arc<str>,
        server_time_ms: u32,
        poses: impl Iterator<Item = [u8; POSE_BYTES]>,
    ) -> usize {
        let mut replaced = 0;
        {
            let mut pending = self.shared.pending_poses.lock().expect("poisoned");
            let batch = match pending.iter_mut().position(|b| b.channel == channel) {
                Some(i) => &mut pending[i],
                None => {
                    pending.push(PendingBatch {
                        channel,
                        topic: topic.clone(),
                        server_time_ms,
                        poses: Vec::new(),
                    });
                    pending.last_mut().expect("just pushed")
                }
            };
            batch.server_time_ms = server_time_ms;
            for pose in poses {
                let slot = pose::pose_slot(&pose);
                match batch.poses.iter_mut().find(|p| pose::pose_slot(p) == slot) {
                    Some(older) => {
                        *older = pose;
                        replaced += 1;
                    }
                    None => batch.poses.push(pose),
                }
            }
        }
        self.shared.poses_ready.notify_one();
        replaced
    }

    /// Forgets unsent poses of a channel the client left.
    pub fn drop_channel_poses(&self, channel: u64) {
        let mut pending = self.shared.pending_poses.lock().expect("poisoned");
        pending.retain(|b| b.channel != channel);
    }

    /// Asks the writer to close the connection with a reason; the first reason wins.
    pub fn close(&self, code: u16, reason: &str) {
        self.shared.close.send_if_modified(|close| {
            if close.is_some() {
                return false;
            }
            *close = Some((code, reason.to_string()));
            true
        });
    }

    pub fn is_closing(&self) -> bool {
        self.shared.close.borrow().is_some() || self.reliable.is_closed()
    }

    /// Completes when a close was requested.
    pub async fn closing(&self) {
        let mut close = self.shared.close.subscribe();
        let _ = close.wait_for(Option::is_some).await;
    }

    // Frame builders -------------------------------------------------------

    pub fn reply_ok(
        &self,
        join_ref: Option<&str>,
        msg_ref: &str,
        topic: &str,
        response: &impl Serialize,
    ) -> Result<(), Overflow> {
        self.send(reply_frame(join_ref, msg_ref, topic, "ok", response))
    }

    pub fn reply_error(
        &self,
        join_ref: Option<&str>,
        msg_ref: &str,
        topic: &str,
        response: &impl Serialize,
    ) -> Result<(), Overflow> {
        self.send(reply_frame(join_ref, msg_ref, topic, "error", response))
    }

    pub fn push(
        &self,
        join_ref: Option<&str>,
        topic: &str,
        event: &str,
        payload: &impl Serialize,
    ) -> Result<(), Overflow> {
        self.send(text_frame(join_ref, None, topic, event, payload))
    }
}

impl OutboxReceiver {
    /// Takes every pending pose batch, encoded as binary broadcast frames.
    pub fn take_pose_frames(&self, metrics: &Metrics) -> Vec<Message> {
        let pending = std::mem::take(&mut *self.shared.pending_poses.lock().expect("poisoned"));
        pending
            .into_iter()
            .filter(|batch| !batch.poses.is_empty())
            .map(|batch| {
                metrics.poses_relayed.add(batch.poses.len() as u64);
                let mut payload =
                    Vec::with_capacity(pose::BATCH_HEADER_BYTES + batch.poses.len() * POSE_BYTES);
                pose::encode_batch(&mut payload, batch.server_time_ms, batch.poses.iter());
                let mut out = Vec::with_capacity(payload.len() + batch.topic.len() + 16);
                frame::encode_broadcast(
                    &mut out,
                    &batch.topic,
                    roomscale_protocol::events::POSES_EVENT,
                    &payload,
                )
                .expect("room topics and event names fit a binary frame");
                Message::Binary(out.into())
            })
            .collect()
    }

    /// Wake-ups for the writer, usable while `reliable` is borrowed.
    pub fn signals(&self) -> Signals {
        Signals {
            shared: self.shared.clone(),
            close: self.shared.close.subscribe(),
        }
    }

    /// The close frame to send, if a close was requested.
    pub fn close_frame(&self) -> Option<CloseFrame> {
        let close = self.shared.close.borrow();
        close.as_ref().map(|(code, reason)| CloseFrame {
            code: *code,
            reason: Utf8Bytes::from(truncate_reason(reason)),
        })
    }
}

/// What wakes a connection's writer besides a reliable frame.
#[derive(Debug)]
pub struct Signals {
    shared: Arc<Shared>,
    close: watch::Receiver<Option<(u16, String)>>,
}

impl Signals {
    pub async fn poses_ready(&self) {
        self.shared.poses_ready.notified().await
    }

    pub async fn close_requested(&self) {
        let mut close = self.close.clone();
        let _ = close.wait_for(Option::is_some).await;
    }
}

/// Close reasons must fit a control frame (123 bytes of UTF-8).
fn truncate_reason(reason: &str) -> String {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_string()
}

pub fn text_frame(
    join_ref: Option<&str>,
    msg_ref: Option<&str>,
    topic: &str,
    event: &str,
    payload: &impl Serialize,
) -> Message {
    Message::Text(frame::encode_text_parts(join_ref, msg_ref, topic, event, payload).into())
}

pub fn reply_frame(
    join_ref: Option<&str>,
    msg_ref: &str,
    topic: &str,
    status: &str,
    response: &impl Serialize,
) -> Message {
    #[derive(Serialize)]
    struct Reply<'a, T> {
        status: &'a str,
        response: &'a T,
    }
    text_frame(
        join_ref,
        Some(msg_ref),
        topic,
        frame::control::REPLY,
        &Reply { status, response },
    )
}

/// An empty binary `ok` reply, for binary pushes that carry a ref.
pub fn binary_ok_reply(join_ref: &str, msg_ref: &str, topic: &str) -> Message {
    let mut out = Vec::with_capacity(8 + join_ref.len() + msg_ref.len() + topic.len());
    frame::encode_reply(&mut out, join_ref, msg_ref, topic, "ok", &[])
        .expect("refs and topics that arrived in a binary frame fit one");
    Message::Binary(out.into())
}
