//! What a connection sends, and how rooms hand it frames without ever waiting on
//! a slow client.
//!
//! Each connection has one [`Outbox`]. Frames that must all arrive (replies,
//! presence, chat) go through a queue bounded in frames and in bytes; when a
//! client falls so far behind that the queue is full, it is disconnected with a
//! reason rather than letting the server's memory grow, and what it had queued
//! is freed with the connection. Poses go through a "latest only" slot per channel:
//! a newer pose of the same member replaces the unsent older one, so a slow
//! reader gets the newest batch, never a backlog.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use roomscale_protocol::frame;
use roomscale_protocol::pose::{self, POSE_BYTES};
use serde::Serialize;
use tokio::sync::{Notify, mpsc, watch};

use crate::metrics::Metrics;

/// Reliable frames a connection may have queued before it counts as too slow.
pub const RELIABLE_QUEUE_FRAMES: usize = 1024;
/// Bytes of reliable frames a connection may have queued before it counts as
/// too slow: a thousand small frames are fine, a thousand join replies are not.
pub const RELIABLE_QUEUE_BYTES: usize = 1024 * 1024;

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

/// The receiving half, owned by the connection's writer task. Dropping it (the
/// writer stopped: the client went away or stopped reading) asks everyone
/// holding the [`Outbox`] to let the connection go.
#[derive(Debug)]
pub struct OutboxReceiver {
    pub reliable: ReliableReceiver,
    shared: Arc<Shared>,
}

/// The queue of frames that must arrive, as the writer drains it; it gives the
/// bytes of each frame it hands out back to the queue's budget.
#[derive(Debug)]
pub struct ReliableReceiver {
    frames: mpsc::Receiver<Message>,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    pending_poses: std::sync::Mutex<Vec<PendingBatch>>,
    poses_ready: Notify,
    /// The close code and reason, once a close was requested; the first wins.
    close: watch::Sender<Option<(u16, String)>>,
    /// Bytes of the frames in the reliable queue.
    queued_bytes: AtomicUsize,
    /// Set when the client was disconnected for falling behind.
    overflowed: AtomicBool,
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
        queued_bytes: AtomicUsize::new(0),
        overflowed: AtomicBool::new(false),
    });
    (
        Outbox {
            reliable: tx,
            shared: shared.clone(),
        },
        OutboxReceiver {
            reliable: ReliableReceiver {
                frames: rx,
                shared: shared.clone(),
            },
            shared,
        },
    )
}

impl Outbox {
    /// Queues a frame that must arrive. A queue full in frames or in bytes
    /// disconnects the client.
    pub fn send(&self, message: Message) -> Result<(), Overflow> {
        let len = frame_len(&message);
        let queued = self.shared.queued_bytes.fetch_add(len, Ordering::AcqRel) + len;
        if queued > RELIABLE_QUEUE_BYTES {
            self.shared.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            return Err(self.overflow(&format!(
                "disconnected: too far behind the room (over {} KiB waiting to be sent); \
                 reconnect when the network is better",
                RELIABLE_QUEUE_BYTES / 1024
            )));
        }
        match self.reliable.try_send(message) {
            Ok(()) => Ok(()),
            Err(error) => {
                self.shared.queued_bytes.fetch_sub(len, Ordering::AcqRel);
                match error {
                    mpsc::error::TrySendError::Full(_) => Err(self.overflow(
                        "disconnected: the connection fell too far behind the room \
                         (send queue full); reconnect when the network is better",
                    )),
                    mpsc::error::TrySendError::Closed(_) => Err(Overflow),
                }
            }
        }
    }

    fn overflow(&self, reason: &str) -> Overflow {
        self.shared.overflowed.store(true, Ordering::Release);
        self.close(close_code::TRY_AGAIN_LATER, reason);
        Overflow
    }

    /// True when the client was disconnected for falling behind.
    pub fn overflowed(&self) -> bool {
        self.shared.overflowed.load(Ordering::Acquire)
    }

    /// Bytes of reliable frames queued and not yet taken by the writer.
    pub fn queued_bytes(&self) -> usize {
        self.shared.queued_bytes.load(Ordering::Acquire)
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

impl ReliableReceiver {
    /// The next frame; `None` once every sender is gone.
    pub async fn recv(&mut self) -> Option<Message> {
        let frame = self.frames.recv().await?;
        self.taken(&frame);
        Some(frame)
    }

    /// The next frame if one is queued.
    pub fn try_recv(&mut self) -> Result<Message, mpsc::error::TryRecvError> {
        let frame = self.frames.try_recv()?;
        self.taken(&frame);
        Ok(frame)
    }

    fn taken(&self, frame: &Message) {
        self.shared
            .queued_bytes
            .fetch_sub(frame_len(frame), Ordering::AcqRel);
    }
}

impl Drop for OutboxReceiver {
    fn drop(&mut self) {
        // The writer is gone: rooms must stop queueing for this connection, and
        // its reader must stop too, so the member leaves and its memory is freed.
        self.shared.close.send_if_modified(|close| {
            if close.is_some() {
                return false;
            }
            *close = Some((close_code::GOING_AWAY, String::new()));
            true
        });
        self.reliable.frames.close();
        while self.reliable.frames.try_recv().is_ok() {}
        self.shared.queued_bytes.store(0, Ordering::Release);
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

/// The bytes a frame carries.
pub fn frame_len(message: &Message) -> usize {
    match message {
        Message::Text(text) => text.len(),
        Message::Binary(bytes) => bytes.len(),
        _ => 0,
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use roomscale_protocol::frame::{ServerBinary, decode_server_binary};
    use roomscale_protocol::pose::{AvatarPose, decode_batch, encode_pose};

    fn pose_at(slot: u16, x: f32) -> [u8; POSE_BYTES] {
        let mut pose = AvatarPose::default();
        pose.head.position[0] = x;
        encode_pose(slot, &pose)
    }

    #[test]
    fn a_slow_reader_gets_the_newest_pose_per_member_not_a_backlog() {
        let (outbox, receiver) = outbox();
        let topic: Arc<str> = Arc::from("room:x");
        let metrics = Metrics::new();
        let mut replaced = 0;
        for tick in 0..100u32 {
            let poses = [pose_at(1, tick as f32), pose_at(2, -(tick as f32))];
            replaced += outbox.send_poses(7, &topic, tick, poses.into_iter());
        }
        assert_eq!(
            replaced, 198,
            "all but the newest of each member were dropped"
        );
        let frames = receiver.take_pose_frames(&metrics);
        assert_eq!(frames.len(), 1, "one batch, not a hundred");
        let Message::Binary(bytes) = &frames[0] else {
            panic!("binary batch")
        };
        let Ok(ServerBinary::Broadcast { payload, .. }) = decode_server_binary(bytes) else {
            panic!("broadcast")
        };
        let batch = decode_batch(payload).unwrap();
        assert_eq!(batch.server_time_ms, 99);
        let heads: Vec<_> = batch
            .iter()
            .map(|(slot, p)| (slot, p.head.position[0]))
            .collect();
        assert_eq!(heads, [(1, 99.0), (2, -99.0)]);
        assert!(receiver.take_pose_frames(&metrics).is_empty());
    }

    #[test]
    fn a_full_reliable_queue_closes_the_connection_with_a_reason() {
        let (outbox, receiver) = outbox();
        for _ in 0..RELIABLE_QUEUE_FRAMES {
            outbox.send(Message::Text("x".into())).unwrap();
        }
        assert!(!outbox.is_closing());
        assert_eq!(
            outbox.send(Message::Text("one too many".into())),
            Err(Overflow)
        );
        assert!(outbox.is_closing());
        let close = receiver.close_frame().expect("a close was requested");
        assert_eq!(close.code, close_code::TRY_AGAIN_LATER);
        assert!(
            close.reason.contains("fell too far behind"),
            "{}",
            close.reason
        );
    }

    #[test]
    fn a_queue_full_in_bytes_closes_the_connection_and_the_bytes_come_back() {
        let (outbox, mut receiver) = outbox();
        let big = "x".repeat(64 * 1024);
        let fits = RELIABLE_QUEUE_BYTES / big.len();
        for _ in 0..fits {
            outbox.send(Message::Text(big.clone().into())).unwrap();
        }
        assert_eq!(outbox.queued_bytes(), fits * big.len());
        assert!(fits < RELIABLE_QUEUE_FRAMES, "the byte cap bites first");
        assert_eq!(
            outbox.send(Message::Text(big.clone().into())),
            Err(Overflow)
        );
        assert!(outbox.overflowed());
        let close = receiver.close_frame().expect("a close was requested");
        assert_eq!(close.code, close_code::TRY_AGAIN_LATER);
        assert!(close.reason.contains("KiB waiting"), "{}", close.reason);
        assert!(
            close.reason.ends_with("network is better"),
            "the whole reason fits a close frame: {}",
            close.reason
        );
        assert_eq!(
            outbox.queued_bytes(),
            fits * big.len(),
            "the refused frame is not counted"
        );

        // What the writer takes is given back to the budget.
        let mut drained = 0;
        while receiver.reliable.try_recv().is_ok() {
            drained += 1;
        }
        assert_eq!(drained, fits);
        assert_eq!(outbox.queued_bytes(), 0);
    }

    #[test]
    fn a_writer_that_stops_lets_the_connection_go() {
        let (outbox, receiver) = outbox();
        outbox.send(Message::Text("queued".into())).unwrap();
        assert!(!outbox.is_closing());
        drop(receiver);
        assert!(outbox.is_closing(), "readers and rooms see the end");
        assert_eq!(outbox.queued_bytes(), 0);
        assert_eq!(outbox.send(Message::Text("late".into())), Err(Overflow));
        assert!(!outbox.overflowed(), "gone, not too slow");
    }
}
