//! Where frames for one channel of one connection go: the connection's
//! [`Outbox`], the channel's topic and its join ref. The socket replies
//! through it, rooms keep one per member, and the SFU answers signaling and
//! sends its own offers through it, so all three reach a client the same way
//! and in order.

use std::sync::Arc;

use axum::extract::ws::Message;
use roomscale_protocol::server_event::{ServerEvent, ServerFrame};

use crate::outbox::{Outbox, Overflow};

/// One joined channel of one connection.
#[derive(Debug, Clone)]
pub struct ChannelAddress {
    pub outbox: Outbox,
    pub topic: Arc<str>,
    /// The ref of the join that opened the channel; `None` for frames that
    /// arrive outside a channel (phoenix.js sends heartbeats that way).
    pub join_ref: Option<Arc<str>>,
}

impl ChannelAddress {
    pub fn new(outbox: Outbox, topic: Arc<str>, join_ref: Option<Arc<str>>) -> ChannelAddress {
        ChannelAddress {
            outbox,
            topic,
            join_ref,
        }
    }

    fn join_ref(&self) -> Option<&str> {
        self.join_ref.as_deref()
    }

    /// Any server message for this channel, built from its typed value:
    /// replies carry their push's ref, `phx_error`/`phx_close` the join ref.
    pub fn send(&self, event: &ServerEvent) -> Result<(), Overflow> {
        self.outbox
            .send(server_frame(&self.topic, self.join_ref(), event))
    }

    /// `phx_error`: the channel crashed on the server; phoenix clients rejoin.
    pub fn channel_error(&self) -> Result<(), Overflow> {
        self.send(&ServerEvent::ChannelError)
    }
}

/// The frame of a broadcast to every member of `topic`: no join ref, so it
/// is built once and the same frame is cloned into each member's outbox
/// (cloning shares its bytes).
pub fn broadcast_frame(topic: &str, event: &ServerEvent) -> Message {
    server_frame(topic, None, event)
}

/// The frame of `event` on `topic`, for the channel joined with `join_ref`
/// (`None`: a broadcast).
pub fn server_frame(topic: &str, join_ref: Option<&str>, event: &ServerEvent) -> Message {
    // Only pose batches are binary; a channel's topic is a canonical room
    // topic and a room's batch is far below the frame limit, so the one
    // failure `encode` knows cannot happen here.
    match event
        .encode(topic, join_ref)
        .expect("room topics and pose batches fit a binary frame")
    {
        ServerFrame::Text(text) => Message::Text(text.into()),
        ServerFrame::Binary(bytes) => Message::Binary(bytes.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::outbox;
    use roomscale_protocol::events::{EmptyReply, ErrorCode, ErrorReply, Speaking};
    use roomscale_protocol::pose::{AvatarPose, PoseBatchBuf, encode_pose};
    use roomscale_protocol::server_event::{Reply, ServerMessage};

    const TOPIC: &str = "room:6f1c2a7e-4b3d-4c5e-9f10-2a3b4c5d6e7f";

    fn parsed(message: Message) -> ServerMessage {
        match message {
            Message::Text(text) => ServerMessage::decode_text(&text),
            Message::Binary(bytes) => ServerMessage::decode_binary(&bytes),
            other => panic!("not a data frame: {other:?}"),
        }
        .expect("the client parses what the server sends")
    }

    #[tokio::test]
    async fn typed_sends_reach_the_outbox_as_the_client_reads_them() {
        let (sender, mut receiver) = outbox();
        let address = ChannelAddress::new(sender, TOPIC.into(), Some("3".into()));
        let events = [
            ServerEvent::Reply(Reply::ok("7", EmptyReply {})),
            ServerEvent::Reply(Reply::error(
                "8",
                ErrorReply::new(ErrorCode::RateLimited, "slow down"),
            )),
            ServerEvent::ChannelClose(Some(ErrorReply::new(ErrorCode::Removed, "removed"))),
        ];
        for event in &events {
            address.send(event).unwrap();
            let message = parsed(receiver.reliable.recv().await.unwrap());
            assert_eq!(&message.event, event);
            assert_eq!(message.topic, TOPIC);
            assert_eq!(message.join_ref.as_deref(), Some("3"));
        }
    }

    #[test]
    fn a_broadcast_frame_is_built_once_for_every_member() {
        let speaking = ServerEvent::Speaking(Speaking {
            user_id: "u-2".into(),
            speaking: true,
        });
        let message = parsed(broadcast_frame(TOPIC, &speaking));
        assert_eq!(message.join_ref, None);
        assert_eq!(message.event, speaking);
        let poses = [encode_pose(2, &AvatarPose::default())];
        let batch = ServerEvent::Poses(PoseBatchBuf::new(40, poses.iter()));
        let frame = broadcast_frame(TOPIC, &batch);
        assert!(matches!(frame, Message::Binary(_)));
        assert_eq!(parsed(frame).event, batch);
    }
}
