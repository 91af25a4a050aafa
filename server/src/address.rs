//! Where frames for one channel of one connection go: the connection's
//! [`Outbox`], the channel's topic and its join ref. The socket replies
//! through it, rooms keep one per member, and the SFU answers signaling and
//! sends its own offers through it, so all three reach a client the same way
//! and in order.

use std::sync::Arc;

use roomscale_protocol::events::ErrorReply;
use roomscale_protocol::frame::control;
use serde::Serialize;

use crate::outbox::{Outbox, Overflow, text_frame};

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

    /// `phx_reply` with status `ok` to the push `msg_ref`.
    pub fn reply_ok(&self, msg_ref: &str, response: &impl Serialize) -> Result<(), Overflow> {
        self.outbox
            .reply_ok(self.join_ref(), msg_ref, &self.topic, response)
    }

    /// `phx_reply` with status `error` to the push `msg_ref`.
    pub fn reply_error(&self, msg_ref: &str, reason: &ErrorReply) -> Result<(), Overflow> {
        self.outbox
            .reply_error(self.join_ref(), msg_ref, &self.topic, reason)
    }

    /// A server push on the channel.
    pub fn push(&self, event: &str, payload: &impl Serialize) -> Result<(), Overflow> {
        self.outbox
            .push(self.join_ref(), &self.topic, event, payload)
    }

    /// `phx_error`: the channel crashed on the server; phoenix clients rejoin.
    pub fn channel_error(&self) -> Result<(), Overflow> {
        self.control(control::ERROR, &serde_json::json!({}))
    }

    /// `phx_close` with a reason: the server ended the channel; clients do not
    /// rejoin.
    pub fn channel_close(&self, reason: &ErrorReply) -> Result<(), Overflow> {
        self.control(control::CLOSE, reason)
    }

    fn control(&self, event: &str, payload: &impl Serialize) -> Result<(), Overflow> {
        // Channel-level events carry the join ref as their ref too, as
        // Phoenix sends them.
        self.outbox.send(text_frame(
            self.join_ref(),
            self.join_ref(),
            &self.topic,
            event,
            payload,
        ))
    }
}
