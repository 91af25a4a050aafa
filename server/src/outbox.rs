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
//!
//! A room encodes its pose batch once per tick as a [`SharedPoseFrame`] and
//! hands every member the same one: a client that keeps up gets those very
//! bytes handed to its socket, shared rather than copied and with no encoding
//! of its own (the WebSocket layer still copies them into its write buffer);
//! only a client still behind on the previous tick pays for a merge. A
//! batch carries the poses of moving objects after the avatar poses; a merge
//! keeps the newest per object handle as it does per avatar slot.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use roomscale_protocol::frame;
use roomscale_protocol::objects::{OBJECT_POSE_BYTES, object_pose_handle};
use roomscale_protocol::pose::{self, POSE_BYTES};

use tokio::sync::Notify;

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
#[derive(Debug)]
pub struct Outbox {
    shared: Arc<Shared>,
}

/// The receiving half, owned by the connection's writer. Dropping it (the
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
    shared: Arc<Shared>,
}

/// The next reliable frame could not be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// None is queued now.
    Empty,
    /// None is queued and every [`Outbox`] is gone.
    Disconnected,
}

/// One lock for everything queued, and one wake-up for the writer: a
/// connection costs no channel of its own, and nothing is allocated while
/// nothing waits.
#[derive(Debug)]
struct Shared {
    queue: std::sync::Mutex<Queue>,
    /// Something was queued, or the last sender went away.
    ready: Notify,
    /// Set once a close was requested or the receiver went away: the reader
    /// checks it after every frame, without a lock.
    closing: AtomicBool,
    /// Wakes the reader and the writer when `closing` is set.
    closing_now: Notify,
    /// Bytes of the frames in the reliable queue.
    queued_bytes: AtomicUsize,
    /// Set when the client was disconnected for falling behind.
    overflowed: AtomicBool,
    /// [`Outbox`] handles alive; at zero nothing more can be queued.
    senders: AtomicUsize,
}

#[derive(Debug, Default)]
struct Queue {
    /// Frames that must arrive, in order.
    reliable: VecDeque<Message>,
    /// Unsent poses, at most one batch per channel.
    poses: Vec<PendingPoses>,
    /// The receiver is gone: nothing is queued any more.
    closed: bool,
    /// The close code and reason, once a close was requested; the first wins.
    close: Option<(u16, String)>,
}

/// Poses waiting to be sent on one channel.
#[derive(Debug)]
pub struct PendingPoses {
    channel: u64,
    batch: PendingBatch,
}

/// A channel's unsent poses: a room's shared frame as it was handed over (the
/// client kept up), or a batch merged from several (it did not).
#[derive(Debug)]
enum PendingBatch {
    Shared(Arc<SharedPoseFrame>),
    Merged(MergedBatch),
}

/// Poses merged for one channel, at most one per member slot and one per
/// object handle.
#[derive(Debug)]
struct MergedBatch {
    topic: Arc<str>,
    server_time_ms: u32,
    poses: Vec<[u8; POSE_BYTES]>,
    objects: Vec<[u8; OBJECT_POSE_BYTES]>,
}

impl MergedBatch {
    /// Takes in newer poses, each replacing the unsent one of its slot (an
    /// object's, of its handle); returns how many it replaced.
    fn merge(
        &mut self,
        server_time_ms: u32,
        poses: impl Iterator<Item = [u8; POSE_BYTES]>,
        objects: impl Iterator<Item = [u8; OBJECT_POSE_BYTES]>,
    ) -> usize {
        self.server_time_ms = server_time_ms;
        let mut replaced = 0;
        for pose in poses {
            let slot = pose::pose_slot(&pose);
            match self.poses.iter_mut().find(|p| pose::pose_slot(p) == slot) {
                Some(older) => {
                    *older = pose;
                    replaced += 1;
                }
                None => self.poses.push(pose),
            }
        }
        for object in objects {
            let handle = object_pose_handle(&object);
            match self
                .objects
                .iter_mut()
                .find(|o| object_pose_handle(o) == handle)
            {
                Some(older) => {
                    *older = object;
                    replaced += 1;
                }
                None => self.objects.push(object),
            }
        }
        replaced
    }

    fn encode(&self) -> Bytes {
        encode_pose_frame(&self.topic, self.server_time_ms, &self.poses, &self.objects)
    }
}

/// One room tick's pose batch (avatar poses, then the poses of moving
/// objects), framed once as a Phoenix binary broadcast and shared by every
/// member's connection (each client skips its own slot).
#[derive(Debug)]
pub struct SharedPoseFrame {
    topic: Arc<str>,
    server_time_ms: u32,
    /// The whole frame, ready to write.
    bytes: Bytes,
    /// Where the encoded avatar poses start in `bytes`.
    poses_at: usize,
    /// Where the encoded object poses start in `bytes` (they run to its end).
    objects_at: usize,
}

impl SharedPoseFrame {
    pub fn encode(
        topic: &Arc<str>,
        server_time_ms: u32,
        poses: &[[u8; POSE_BYTES]],
        objects: &[[u8; OBJECT_POSE_BYTES]],
    ) -> Arc<Self> {
        let objects = &objects[..objects.len().min(pose::MAX_BATCH_OBJECTS)];
        let bytes = encode_pose_frame(topic, server_time_ms, poses, objects);
        let objects_at = bytes.len() - objects.len() * OBJECT_POSE_BYTES;
        let poses_at = objects_at - poses.len() * POSE_BYTES;
        Arc::new(SharedPoseFrame {
            topic: topic.clone(),
            server_time_ms,
            bytes,
            poses_at,
            objects_at,
        })
    }

    /// The frame as it goes on the wire.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    pub fn server_time_ms(&self) -> u32 {
        self.server_time_ms
    }

    /// The encoded avatar poses the frame carries.
    pub fn poses(&self) -> impl ExactSizeIterator<Item = &[u8; POSE_BYTES]> {
        self.bytes[self.poses_at..self.objects_at]
            .chunks_exact(POSE_BYTES)
            .map(|chunk| chunk.try_into().expect("chunks are exactly POSE_BYTES"))
    }

    /// The encoded object poses the frame carries.
    pub fn objects(&self) -> impl ExactSizeIterator<Item = &[u8; OBJECT_POSE_BYTES]> {
        self.bytes[self.objects_at..]
            .chunks_exact(OBJECT_POSE_BYTES)
            .map(|chunk| {
                chunk
                    .try_into()
                    .expect("chunks are exactly OBJECT_POSE_BYTES")
            })
    }

    fn to_merged(&self) -> MergedBatch {
        MergedBatch {
            topic: self.topic.clone(),
            server_time_ms: self.server_time_ms,
            poses: self.poses().copied().collect(),
            objects: self.objects().copied().collect(),
        }
    }
}

/// A pose batch framed as the binary broadcast clients receive.
fn encode_pose_frame(
    topic: &str,
    server_time_ms: u32,
    poses: &[[u8; POSE_BYTES]],
    objects: &[[u8; OBJECT_POSE_BYTES]],
) -> Bytes {
    let event = roomscale_protocol::events::POSES_EVENT;
    let size =
        pose::BATCH_HEADER_BYTES + poses.len() * POSE_BYTES + objects.len() * OBJECT_POSE_BYTES;
    let mut out = Vec::with_capacity(3 + topic.len() + event.len() + size);
    let mut payload = Vec::with_capacity(size);
    pose::encode_batch_with_objects(&mut payload, server_time_ms, poses.iter(), objects.iter());
    frame::encode_broadcast(&mut out, topic, event, &payload)
        .expect("room topics and event names fit a binary frame");
    Bytes::from(out)
}

/// The client is too far behind; it is being disconnected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

pub fn outbox() -> (Outbox, OutboxReceiver) {
    let shared = Arc::new(Shared {
        queue: Default::default(),
        ready: Notify::new(),
        closing: AtomicBool::new(false),
        closing_now: Notify::new(),
        queued_bytes: AtomicUsize::new(0),
        overflowed: AtomicBool::new(false),
        senders: AtomicUsize::new(1),
    });
    (
        Outbox {
            shared: shared.clone(),
        },
        OutboxReceiver {
            reliable: ReliableReceiver {
                shared: shared.clone(),
            },
            shared,
        },
    )
}

impl Clone for Outbox {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Outbox {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last one: a writer waiting for frames must learn there
            // will be none.
            self.shared.ready.notify_one();
        }
    }
}

impl Shared {
    fn request_close(&self, code: u16, reason: &str) {
        {
            let mut queue = self.queue.lock().expect("poisoned");
            if queue.close.is_some() {
                return;
            }
            queue.close = Some((code, reason.to_string()));
        }
        self.closing.store(true, Ordering::Release);
        self.closing_now.notify_waiters();
    }

    async fn closing(&self) {
        loop {
            // Registered before the check, so a close in between still wakes it.
            let woken = self.closing_now.notified();
            if self.closing.load(Ordering::Acquire) {
                return;
            }
            woken.await;
        }
    }
}

impl PendingBatch {
    /// The batch as one that can take in more poses.
    fn merged(&mut self) -> &mut MergedBatch {
        if let PendingBatch::Shared(frame) = self {
            *self = PendingBatch::Merged(frame.to_merged());
        }
        match self {
            PendingBatch::Merged(batch) => batch,
            PendingBatch::Shared(_) => unreachable!("turned into a merged batch above"),
        }
    }
}

impl Outbox {
    /// Queues a frame that must arrive. A queue full in frames or in bytes
    /// disconnects the client.
    pub fn send(&self, message: Message) -> Result<(), Overflow> {
        let len = frame_len(&message);
        {
            let mut queue = self.shared.queue.lock().expect("poisoned");
            if queue.closed {
                return Err(Overflow);
            }
            let queued = self.shared.queued_bytes.load(Ordering::Acquire) + len;
            if queued > RELIABLE_QUEUE_BYTES {
                drop(queue);
                return Err(self.overflow(&format!(
                    "disconnected: too far behind the room (over {} KiB waiting to be sent); \
                     reconnect when the network is better",
                    RELIABLE_QUEUE_BYTES / 1024
                )));
            }
            if queue.reliable.len() >= RELIABLE_QUEUE_FRAMES {
                drop(queue);
                return Err(self.overflow(
                    "disconnected: the connection fell too far behind the room \
                     (send queue full); reconnect when the network is better",
                ));
            }
            self.shared.queued_bytes.fetch_add(len, Ordering::AcqRel);
            queue.reliable.push_back(message);
        }
        self.shared.ready.notify_one();
        Ok(())
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
        let replaced = {
            let mut queue = self.shared.queue.lock().expect("poisoned");
            if queue.closed {
                return 0;
            }
            let pending = &mut queue.poses;
            let batch = match pending.iter_mut().position(|p| p.channel == channel) {
                Some(i) => pending[i].batch.merged(),
                None => {
                    // Most connections are in one room: room for one batch.
                    pending.reserve_exact(1);
                    pending.push(PendingPoses {
                        channel,
                        batch: PendingBatch::Merged(MergedBatch {
                            topic: topic.clone(),
                            server_time_ms,
                            poses: Vec::new(),
                            objects: Vec::new(),
                        }),
                    });
                    pending.last_mut().expect("just pushed").batch.merged()
                }
            };
            batch.merge(server_time_ms, poses, std::iter::empty())
        };
        self.shared.ready.notify_one();
        replaced
    }

    /// Hands the channel a room's shared pose frame; returns how many unsent
    /// poses were replaced by newer ones (dropped as stale). When nothing is
    /// pending the frame itself is kept and written as it is; when the client
    /// is still behind on an earlier one, the two are merged, newest pose per
    /// slot.
    pub fn send_shared_poses(&self, channel: u64, frame: &Arc<SharedPoseFrame>) -> usize {
        let replaced = {
            let mut queue = self.shared.queue.lock().expect("poisoned");
            if queue.closed {
                return 0;
            }
            match queue.poses.iter_mut().find(|p| p.channel == channel) {
                None => {
                    queue.poses.reserve_exact(1);
                    queue.poses.push(PendingPoses {
                        channel,
                        batch: PendingBatch::Shared(frame.clone()),
                    });
                    0
                }
                Some(behind) => behind.batch.merged().merge(
                    frame.server_time_ms,
                    frame.poses().copied(),
                    frame.objects().copied(),
                ),
            }
        };
        self.shared.ready.notify_one();
        replaced
    }

    /// Forgets unsent poses of a channel the client left.
    pub fn drop_channel_poses(&self, channel: u64) {
        let mut queue = self.shared.queue.lock().expect("poisoned");
        queue.poses.retain(|p| p.channel != channel);
    }

    /// Asks the writer to close the connection with a reason; the first reason wins.
    pub fn close(&self, code: u16, reason: &str) {
        self.shared.request_close(code, reason);
    }

    pub fn is_closing(&self) -> bool {
        self.shared.closing.load(Ordering::Acquire)
    }

    /// Completes when a close was requested.
    pub async fn closing(&self) {
        self.shared.closing().await
    }
}

impl ReliableReceiver {
    /// The next frame; `None` once none is queued and every sender is gone.
    pub async fn recv(&mut self) -> Option<Message> {
        let shared = self.shared.clone();
        loop {
            let ready = shared.ready.notified();
            match self.try_recv() {
                Ok(frame) => return Some(frame),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) => ready.await,
            }
        }
    }

    /// The next frame if one is queued.
    pub fn try_recv(&mut self) -> Result<Message, TryRecvError> {
        let frame = self
            .shared
            .queue
            .lock()
            .expect("poisoned")
            .reliable
            .pop_front();
        match frame {
            Some(frame) => {
                self.shared
                    .queued_bytes
                    .fetch_sub(frame_len(&frame), Ordering::AcqRel);
                Ok(frame)
            }
            None if self.shared.senders.load(Ordering::Acquire) == 0 => {
                Err(TryRecvError::Disconnected)
            }
            None => Err(TryRecvError::Empty),
        }
    }
}

impl Drop for OutboxReceiver {
    fn drop(&mut self) {
        // The writer is gone: rooms must stop queueing for this connection, and
        // its reader must stop too, so the member leaves and its memory is freed.
        self.shared.request_close(close_code::GOING_AWAY, "");
        // What was queued is freed now, outside the lock, not when the
        // last room lets go of its handle.
        let unsent = {
            let mut queue = self.shared.queue.lock().expect("poisoned");
            queue.closed = true;
            (
                std::mem::take(&mut queue.reliable),
                std::mem::take(&mut queue.poses),
            )
        };
        self.shared.queued_bytes.store(0, Ordering::Release);
        drop(unsent);
    }
}

impl OutboxReceiver {
    /// Moves everything queued into `frames`: the reliable frames in order,
    /// then the pending pose batches (a shared frame as it is, a merged batch
    /// encoded now). `poses` is scratch space kept between calls so that a
    /// round allocates nothing.
    pub fn take_all(
        &self,
        frames: &mut Vec<Message>,
        poses: &mut Vec<PendingPoses>,
        metrics: &Metrics,
    ) {
        {
            let mut queue = self.shared.queue.lock().expect("poisoned");
            frames.extend(queue.reliable.drain(..));
            std::mem::swap(&mut queue.poses, poses);
            if queue.reliable.capacity() > SPARE_QUEUE_FRAMES {
                // A burst (a join reply with history, say) is over: give its
                // room back rather than keep it for the connection's life.
                queue.reliable = VecDeque::new();
            }
        }
        let taken: usize = frames.iter().map(frame_len).sum();
        self.shared.queued_bytes.fetch_sub(taken, Ordering::AcqRel);
        append_pose_frames(poses, frames, metrics);
    }

    /// Takes every pending pose batch, as binary broadcast frames: a shared
    /// frame as it is, a merged batch encoded now.
    pub fn take_pose_frames(&self, metrics: &Metrics) -> Vec<Message> {
        let mut pending = std::mem::take(&mut self.shared.queue.lock().expect("poisoned").poses);
        let mut frames = Vec::new();
        append_pose_frames(&mut pending, &mut frames, metrics);
        frames
    }

    /// Wake-ups for the writer, usable while `reliable` is borrowed.
    pub fn signals(&self) -> Signals {
        Signals {
            shared: self.shared.clone(),
        }
    }

    /// True once nothing is queued and every sender is gone: nothing more
    /// will come.
    pub fn senders_gone(&self) -> bool {
        self.shared.senders.load(Ordering::Acquire) == 0
    }

    /// The close frame to send, if a close was requested.
    pub fn close_frame(&self) -> Option<CloseFrame> {
        let queue = self.shared.queue.lock().expect("poisoned");
        queue.close.as_ref().map(|(code, reason)| CloseFrame {
            code: *code,
            reason: Utf8Bytes::from(truncate_reason(reason)),
        })
    }
}

/// Reliable frames whose room a quiet connection keeps between rounds.
const SPARE_QUEUE_FRAMES: usize = 4;

/// Drains `pending` into `frames` as binary broadcast frames.
fn append_pose_frames(
    pending: &mut Vec<PendingPoses>,
    frames: &mut Vec<Message>,
    metrics: &Metrics,
) {
    for pending in pending.drain(..) {
        let (poses, objects, bytes) = match pending.batch {
            PendingBatch::Shared(frame) => (
                frame.poses().len(),
                frame.objects().len(),
                frame.bytes.clone(),
            ),
            PendingBatch::Merged(batch) => (batch.poses.len(), batch.objects.len(), batch.encode()),
        };
        if poses == 0 && objects == 0 {
            continue;
        }
        metrics.poses_relayed.add(poses as u64);
        metrics.object_poses_relayed.add(objects as u64);
        frames.push(Message::Binary(bytes));
    }
}

/// What wakes a connection's writer.
#[derive(Debug)]
pub struct Signals {
    shared: Arc<Shared>,
}

impl Signals {
    /// Something was queued (a frame or poses), or the last sender went away.
    pub async fn ready(&self) {
        self.shared.ready.notified().await
    }

    pub async fn close_requested(&self) {
        self.shared.closing().await
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

    fn decoded_heads(frame: &Message) -> (u32, Vec<(u16, f32)>) {
        let Message::Binary(bytes) = frame else {
            panic!("binary batch")
        };
        let Ok(ServerBinary::Broadcast {
            topic,
            event,
            payload,
        }) = decode_server_binary(bytes)
        else {
            panic!("broadcast")
        };
        assert_eq!((topic, event), ("room:x", "poses"));
        let batch = decode_batch(payload).unwrap();
        let heads = batch
            .iter()
            .map(|(slot, p)| (slot, p.head.position[0]))
            .collect();
        (batch.server_time_ms, heads)
    }

    #[test]
    fn a_client_that_keeps_up_gets_the_shared_frame_bytes_themselves() {
        let (outbox, receiver) = outbox();
        let (other, other_receiver) = super::outbox();
        let metrics = Metrics::new();
        let frame = SharedPoseFrame::encode(
            &"room:x".into(),
            42,
            &[pose_at(1, 1.0), pose_at(2, 2.0)],
            &[],
        );
        assert_eq!(outbox.send_shared_poses(7, &frame), 0);
        assert_eq!(other.send_shared_poses(3, &frame), 0);

        for receiver in [&receiver, &other_receiver] {
            let frames = receiver.take_pose_frames(&metrics);
            assert_eq!(frames.len(), 1);
            let Message::Binary(bytes) = &frames[0] else {
                panic!("binary batch")
            };
            assert_eq!(
                bytes.as_ptr(),
                frame.bytes().as_ptr(),
                "the room's encoding is written as it is, not copied"
            );
            assert_eq!(decoded_heads(&frames[0]), (42, vec![(1, 1.0), (2, 2.0)]));
        }
        assert_eq!(metrics.poses_relayed.get(), 4);

        // Taken: the next tick's frame is again kept as it is.
        let next = SharedPoseFrame::encode(&"room:x".into(), 75, &[pose_at(1, 3.0)], &[]);
        assert_eq!(outbox.send_shared_poses(7, &next), 0);
        let frames = receiver.take_pose_frames(&metrics);
        let Message::Binary(bytes) = &frames[0] else {
            panic!("binary batch")
        };
        assert_eq!(bytes.as_ptr(), next.bytes().as_ptr());
    }

    #[test]
    fn a_client_behind_on_shared_frames_gets_one_merged_batch_of_the_newest_poses() {
        let (outbox, receiver) = outbox();
        let metrics = Metrics::new();
        let first = SharedPoseFrame::encode(
            &"room:x".into(),
            10,
            &[pose_at(1, 1.0), pose_at(2, 2.0)],
            &[],
        );
        let second = SharedPoseFrame::encode(
            &"room:x".into(),
            43,
            &[pose_at(2, 20.0), pose_at(3, 30.0)],
            &[],
        );
        let third = SharedPoseFrame::encode(&"room:x".into(), 76, &[pose_at(3, 300.0)], &[]);
        assert_eq!(outbox.send_shared_poses(7, &first), 0);
        assert_eq!(outbox.send_shared_poses(7, &second), 1, "slot 2 was stale");
        assert_eq!(outbox.send_shared_poses(7, &third), 1, "slot 3 was stale");

        let frames = receiver.take_pose_frames(&metrics);
        assert_eq!(frames.len(), 1, "one batch, not three");
        assert_eq!(
            decoded_heads(&frames[0]),
            (76, vec![(1, 1.0), (2, 20.0), (3, 300.0)])
        );
        assert_eq!(metrics.poses_relayed.get(), 3);
        for frame in [&first, &second, &third] {
            assert_eq!(
                decoded_heads(&Message::Binary(frame.bytes().clone()))
                    .1
                    .len(),
                frame.poses().len(),
                "merging left the shared frames as they were"
            );
        }
        assert!(receiver.take_pose_frames(&metrics).is_empty());
    }

    fn object_at(handle: u16, x: f32) -> [u8; OBJECT_POSE_BYTES] {
        roomscale_protocol::objects::encode_object_pose(&roomscale_protocol::objects::ObjectPose {
            handle,
            flags: Default::default(),
            position: [x, 1.0, 0.0],
            orientation: [0.0, 0.0, 0.0, 1.0],
        })
    }

    #[test]
    fn a_client_behind_gets_the_newest_pose_of_each_object_too() {
        let (outbox, receiver) = outbox();
        let metrics = Metrics::new();
        let first = SharedPoseFrame::encode(
            &"room:x".into(),
            10,
            &[pose_at(1, 1.0)],
            &[object_at(5, 0.1), object_at(6, 0.2)],
        );
        let second = SharedPoseFrame::encode(&"room:x".into(), 43, &[], &[object_at(5, 0.5)]);
        assert_eq!(first.objects().len(), 2);
        assert_eq!(second.poses().len(), 0);
        assert_eq!(outbox.send_shared_poses(7, &first), 0);
        assert_eq!(
            outbox.send_shared_poses(7, &second),
            1,
            "object 5 was stale"
        );
        let frames = receiver.take_pose_frames(&metrics);
        assert_eq!(frames.len(), 1);
        let Message::Binary(bytes) = &frames[0] else {
            panic!("binary batch")
        };
        let Ok(ServerBinary::Broadcast { payload, .. }) = decode_server_binary(bytes) else {
            panic!("broadcast")
        };
        let batch = decode_batch(payload).unwrap();
        assert_eq!(batch.server_time_ms, 43);
        assert_eq!(batch.len(), 1);
        let objects: Vec<_> = batch
            .objects()
            .map(|o| (o.handle, (o.position[0] * 10.0).round() as i32))
            .collect();
        assert_eq!(objects, [(5, 5), (6, 2)]);
        assert_eq!(metrics.object_poses_relayed.get(), 2);
    }

    #[test]
    fn shared_frames_and_single_poses_merge_per_channel() {
        let (outbox, receiver) = outbox();
        let metrics = Metrics::new();
        let topic: Arc<str> = Arc::from("room:x");
        let shared = SharedPoseFrame::encode(&"room:x".into(), 10, &[pose_at(1, 1.0)], &[]);
        assert_eq!(outbox.send_shared_poses(7, &shared), 0);
        assert_eq!(
            outbox.send_poses(7, &topic, 11, [pose_at(1, 5.0)].into_iter()),
            1
        );
        // Another channel of the same connection keeps its own batch.
        assert_eq!(outbox.send_shared_poses(8, &shared), 0);
        outbox.drop_channel_poses(8);

        let frames = receiver.take_pose_frames(&metrics);
        assert_eq!(frames.len(), 1, "the left channel's poses are gone");
        assert_eq!(decoded_heads(&frames[0]), (11, vec![(1, 5.0)]));
    }

    #[test]
    fn a_round_takes_reliable_frames_in_order_then_poses() {
        let (outbox, receiver) = outbox();
        let metrics = Metrics::new();
        let shared = SharedPoseFrame::encode(&"room:x".into(), 10, &[pose_at(1, 1.0)], &[]);
        outbox.send_shared_poses(7, &shared);
        for i in 0..3 {
            outbox
                .send(Message::Text(format!("frame {i}").into()))
                .unwrap();
        }
        let (mut frames, mut poses) = (Vec::new(), Vec::new());
        receiver.take_all(&mut frames, &mut poses, &metrics);
        let texts: Vec<_> = frames[..3]
            .iter()
            .map(|f| match f {
                Message::Text(text) => text.to_string(),
                other => panic!("text first, got {other:?}"),
            })
            .collect();
        assert_eq!(texts, ["frame 0", "frame 1", "frame 2"]);
        assert_eq!(decoded_heads(&frames[3]), (10, vec![(1, 1.0)]));
        assert_eq!(frames.len(), 4);
        assert_eq!(outbox.queued_bytes(), 0, "taken frames leave the budget");

        // A burst's room is given back once it is sent.
        for _ in 0..200 {
            outbox.send(Message::Text("burst".into())).unwrap();
        }
        frames.clear();
        receiver.take_all(&mut frames, &mut poses, &metrics);
        assert_eq!(frames.len(), 200);
        assert_eq!(receiver.shared.queue.lock().unwrap().reliable.capacity(), 0);
    }

    #[tokio::test]
    async fn the_writer_learns_when_every_sender_is_gone() {
        let (outbox, mut receiver) = outbox();
        let room_handle = outbox.clone();
        outbox.send(Message::Text("last words".into())).unwrap();
        drop(outbox);
        assert!(!receiver.senders_gone(), "a room still holds one");
        drop(room_handle);
        assert!(receiver.senders_gone());
        let signals = receiver.signals();
        tokio::time::timeout(std::time::Duration::from_secs(5), signals.ready())
            .await
            .expect("the last sender's drop wakes the writer");
        let Some(Message::Text(text)) = receiver.reliable.recv().await else {
            panic!("the queued frame comes first")
        };
        assert_eq!(text.as_str(), "last words");
        assert!(receiver.reliable.recv().await.is_none());
    }

    #[test]
    fn nothing_is_queued_for_a_connection_whose_writer_is_gone() {
        let (outbox, receiver) = outbox();
        drop(receiver);
        let shared = SharedPoseFrame::encode(&"room:x".into(), 10, &[pose_at(1, 1.0)], &[]);
        assert_eq!(outbox.send_shared_poses(7, &shared), 0);
        let topic: Arc<str> = Arc::from("room:x");
        outbox.send_poses(7, &topic, 1, [pose_at(1, 1.0)].into_iter());
        assert!(outbox.shared.queue.lock().unwrap().poses.is_empty());
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
