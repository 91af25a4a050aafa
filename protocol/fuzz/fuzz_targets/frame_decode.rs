//! Every frame decoder, on arbitrary bytes: it returns a frame or an error, and
//! a frame it accepts re-encodes to the same bytes; a server message it types
//! encodes again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomscale_protocol::events::ClientEvent;
use roomscale_protocol::frame::{self, ServerBinary};
use roomscale_protocol::server_event::{ServerEvent, ServerMessage};

fuzz_target!(|data: &[u8]| {
    if let Ok(push) = frame::decode_client_binary(data) {
        let mut out = Vec::new();
        frame::encode_client_push(&mut out, push.join_ref, push.msg_ref, push.topic, push.event, push.payload)
            .expect("a decoded push re-encodes");
        assert_eq!(out, data);
    }
    if let Ok(message) = ServerMessage::decode_binary(data) {
        message.event.encode(&message.topic, None).expect("a typed batch encodes");
    }
    if let Ok(decoded) = frame::decode_server_binary(data) {
        let mut out = Vec::new();
        match decoded {
            ServerBinary::Push { join_ref, topic, event, payload } => {
                frame::encode_server_push(&mut out, join_ref, topic, event, payload)
            }
            ServerBinary::Reply { join_ref, msg_ref, topic, status, payload } => {
                frame::encode_reply(&mut out, join_ref, msg_ref, topic, status, payload)
            }
            ServerBinary::Broadcast { topic, event, payload } => {
                frame::encode_broadcast(&mut out, topic, event, payload)
            }
        }
        .expect("a decoded frame re-encodes");
        assert_eq!(out, data);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(decoded) = frame::decode_text(text) {
            let _ = ClientEvent::parse(&decoded.event, decoded.payload.clone());
            if let Ok(event) = ServerEvent::parse_text(&decoded) {
                event.encode(&decoded.topic, decoded.join_ref.as_deref()).expect("text encodes");
            }
            let again = frame::decode_text(&frame::encode_text(&decoded)).expect("re-encoded frame decodes");
            assert_eq!(again, decoded);
        }
    }
});
