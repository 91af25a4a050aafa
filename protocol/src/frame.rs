//! Phoenix Channels v2 frames, byte-for-byte as phoenix.js (1.7+) encodes them
//! (`assets/js/phoenix/serializer.js`).
//!
//! Text frames are JSON arrays `[join_ref, ref, topic, event, payload]`.
//! Binary frames start with a kind byte, then one size byte per header field,
//! then the fields, then the raw payload:
//!
//! | kind | direction        | sizes                          | fields                   |
//! |------|------------------|--------------------------------|--------------------------|
//! | 0    | client -> server | join_ref, ref, topic, event    | same order, then payload |
//! | 0    | server -> client | join_ref, topic, event         | same order, then payload |
//! | 1    | server -> client | join_ref, ref, topic, status   | same order, then payload |
//! | 2    | server -> client | topic, event                   | same order, then payload |
//!
//! A push from the server carries no ref, and a binary reply carries its status
//! where other frames carry the event; phoenix.js turns it into
//! `{event: "phx_reply", payload: {status, response}}`.
//!
//! Decoding never panics: every malformed input yields a [`FrameError`].

use serde_json::Value;
use thiserror::Error;

use crate::limits::{MAX_FRAME_BYTES, MAX_HEADER_FIELD_BYTES};

/// Event names of the Phoenix control messages.
pub mod control {
    pub const JOIN: &str = "phx_join";
    pub const LEAVE: &str = "phx_leave";
    pub const REPLY: &str = "phx_reply";
    pub const ERROR: &str = "phx_error";
    pub const CLOSE: &str = "phx_close";
    pub const HEARTBEAT: &str = "heartbeat";
}

/// The kind byte that opens a binary frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BinaryKind {
    Push = 0,
    Reply = 1,
    Broadcast = 2,
}

/// A decoded text frame. Refs are strings or absent, as phoenix.js sends them.
#[derive(Debug, Clone, PartialEq)]
pub struct TextFrame {
    pub join_ref: Option<String>,
    pub msg_ref: Option<String>,
    pub topic: String,
    pub event: String,
    pub payload: Value,
}

/// What the server receives in a binary frame: always a push (kind 0 with four sizes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientBinaryPush<'a> {
    pub join_ref: &'a str,
    /// Empty when the sender wants no reply.
    pub msg_ref: &'a str,
    pub topic: &'a str,
    pub event: &'a str,
    pub payload: &'a [u8],
}

/// What a client receives in a binary frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerBinary<'a> {
    Push {
        join_ref: &'a str,
        topic: &'a str,
        event: &'a str,
        payload: &'a [u8],
    },
    Reply {
        join_ref: &'a str,
        msg_ref: &'a str,
        topic: &'a str,
        status: &'a str,
        payload: &'a [u8],
    },
    Broadcast {
        topic: &'a str,
        event: &'a str,
        payload: &'a [u8],
    },
}

/// Why a frame could not be decoded or encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("frame is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("frame must be a JSON array of 5 elements [join_ref, ref, topic, event, payload]")]
    WrongShape,
    #[error("{field} must be a string or null")]
    BadRef { field: &'static str },
    #[error("{field} must be a non-empty string")]
    BadName { field: &'static str },
    #[error("binary frame is empty")]
    Empty,
    #[error("binary frame kind {0} is not one of push (0), reply (1), broadcast (2)")]
    UnknownKind(u8),
    #[error("binary frame kind {kind} is not accepted in this direction")]
    UnexpectedKind { kind: u8 },
    #[error("binary frame is truncated: header says {needed} bytes, frame has {actual}")]
    Truncated { needed: usize, actual: usize },
    #[error("{field} in binary frame is not valid UTF-8")]
    NotUtf8 { field: &'static str },
    #[error("{field} is {len} bytes; binary frames allow at most 255")]
    FieldTooLong { field: &'static str, len: usize },
}

// ---------------------------------------------------------------------------
// Text frames
// ---------------------------------------------------------------------------

/// Decodes a text frame. The payload is kept as JSON; [`crate::events`] types it.
pub fn decode_text(text: &str) -> Result<TextFrame, FrameError> {
    check_size(text.len())?;
    let value: Value =
        serde_json::from_str(text).map_err(|e| FrameError::InvalidJson(e.to_string()))?;
    let Value::Array(items) = value else {
        return Err(FrameError::WrongShape);
    };
    let Ok::<[Value; 5], _>([join_ref, msg_ref, topic, event, payload]) = items.try_into() else {
        return Err(FrameError::WrongShape);
    };
    Ok(TextFrame {
        join_ref: optional_string(join_ref, "join_ref")?,
        msg_ref: optional_string(msg_ref, "ref")?,
        topic: required_string(topic, "topic")?,
        event: required_string(event, "event")?,
        payload,
    })
}

/// Encodes a text frame exactly as phoenix.js `JSON.stringify` would.
pub fn encode_text(frame: &TextFrame) -> String {
    encode_text_parts(
        frame.join_ref.as_deref(),
        frame.msg_ref.as_deref(),
        &frame.topic,
        &frame.event,
        &frame.payload,
    )
}

/// Encodes a text frame from borrowed parts, without building a [`TextFrame`].
pub fn encode_text_parts(
    join_ref: Option<&str>,
    msg_ref: Option<&str>,
    topic: &str,
    event: &str,
    payload: &impl serde::Serialize,
) -> String {
    // A tuple of serializable parts serializes as the JSON array phoenix expects.
    serde_json::to_string(&(join_ref, msg_ref, topic, event, payload))
        .expect("JSON values and plain structs always serialize")
}

fn optional_string(value: Value, field: &'static str) -> Result<Option<String>, FrameError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) if s.len() <= MAX_HEADER_FIELD_BYTES => Ok(Some(s)),
        Value::String(s) => Err(FrameError::FieldTooLong {
            field,
            len: s.len(),
        }),
        _ => Err(FrameError::BadRef { field }),
    }
}

fn required_string(value: Value, field: &'static str) -> Result<String, FrameError> {
    match value {
        Value::String(s) if s.is_empty() => Err(FrameError::BadName { field }),
        Value::String(s) if s.len() <= MAX_HEADER_FIELD_BYTES => Ok(s),
        Value::String(s) => Err(FrameError::FieldTooLong {
            field,
            len: s.len(),
        }),
        _ => Err(FrameError::BadName { field }),
    }
}

fn check_size(size: usize) -> Result<(), FrameError> {
    if size > MAX_FRAME_BYTES {
        Err(FrameError::TooLarge {
            size,
            limit: MAX_FRAME_BYTES,
        })
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Binary frames
// ---------------------------------------------------------------------------

/// Decodes a binary frame sent by a client (phoenix.js `binaryEncode`).
pub fn decode_client_binary(bytes: &[u8]) -> Result<ClientBinaryPush<'_>, FrameError> {
    check_size(bytes.len())?;
    let mut reader = Reader::new(bytes)?;
    match reader.kind {
        0 => {
            let [join_ref, msg_ref, topic, event] =
                reader.fields(["join_ref", "ref", "topic", "event"])?;
            check_name(topic, "topic")?;
            check_name(event, "event")?;
            Ok(ClientBinaryPush {
                join_ref,
                msg_ref,
                topic,
                event,
                payload: reader.rest(),
            })
        }
        1 | 2 => Err(FrameError::UnexpectedKind { kind: reader.kind }),
        other => Err(FrameError::UnknownKind(other)),
    }
}

/// Decodes a binary frame sent by the server (phoenix.js `binaryDecode`).
pub fn decode_server_binary(bytes: &[u8]) -> Result<ServerBinary<'_>, FrameError> {
    check_size(bytes.len())?;
    let mut reader = Reader::new(bytes)?;
    let frame = match reader.kind {
        0 => {
            let [join_ref, topic, event] = reader.fields(["join_ref", "topic", "event"])?;
            ServerBinary::Push {
                join_ref,
                topic,
                event,
                payload: reader.rest(),
            }
        }
        1 => {
            let [join_ref, msg_ref, topic, status] =
                reader.fields(["join_ref", "ref", "topic", "status"])?;
            ServerBinary::Reply {
                join_ref,
                msg_ref,
                topic,
                status,
                payload: reader.rest(),
            }
        }
        2 => {
            let [topic, event] = reader.fields(["topic", "event"])?;
            ServerBinary::Broadcast {
                topic,
                event,
                payload: reader.rest(),
            }
        }
        other => return Err(FrameError::UnknownKind(other)),
    };
    Ok(frame)
}

/// Appends a client push (kind 0, four sizes) to `out`.
pub fn encode_client_push(
    out: &mut Vec<u8>,
    join_ref: &str,
    msg_ref: &str,
    topic: &str,
    event: &str,
    payload: &[u8],
) -> Result<(), FrameError> {
    write_binary(
        out,
        BinaryKind::Push,
        &[
            ("join_ref", join_ref),
            ("ref", msg_ref),
            ("topic", topic),
            ("event", event),
        ],
        payload,
    )
}

/// Appends a server push (kind 0, three sizes: no ref) to `out`.
pub fn encode_server_push(
    out: &mut Vec<u8>,
    join_ref: &str,
    topic: &str,
    event: &str,
    payload: &[u8],
) -> Result<(), FrameError> {
    write_binary(
        out,
        BinaryKind::Push,
        &[("join_ref", join_ref), ("topic", topic), ("event", event)],
        payload,
    )
}

/// Appends a binary reply (kind 1) to `out`; `status` is `"ok"` or `"error"`.
pub fn encode_reply(
    out: &mut Vec<u8>,
    join_ref: &str,
    msg_ref: &str,
    topic: &str,
    status: &str,
    payload: &[u8],
) -> Result<(), FrameError> {
    write_binary(
        out,
        BinaryKind::Reply,
        &[
            ("join_ref", join_ref),
            ("ref", msg_ref),
            ("topic", topic),
            ("status", status),
        ],
        payload,
    )
}

/// Appends a binary broadcast (kind 2) to `out`.
pub fn encode_broadcast(
    out: &mut Vec<u8>,
    topic: &str,
    event: &str,
    payload: &[u8],
) -> Result<(), FrameError> {
    write_binary(
        out,
        BinaryKind::Broadcast,
        &[("topic", topic), ("event", event)],
        payload,
    )
}

fn write_binary(
    out: &mut Vec<u8>,
    kind: BinaryKind,
    fields: &[(&'static str, &str)],
    payload: &[u8],
) -> Result<(), FrameError> {
    let header_len = 1 + fields.len() + fields.iter().map(|(_, f)| f.len()).sum::<usize>();
    check_size(header_len + payload.len())?;
    for (name, field) in fields {
        if field.len() > MAX_HEADER_FIELD_BYTES {
            return Err(FrameError::FieldTooLong {
                field: name,
                len: field.len(),
            });
        }
    }
    out.reserve(header_len + payload.len());
    out.push(kind as u8);
    // Sizes fit in a byte: checked above.
    out.extend(fields.iter().map(|(_, f)| f.len() as u8));
    for (_, field) in fields {
        out.extend_from_slice(field.as_bytes());
    }
    out.extend_from_slice(payload);
    Ok(())
}

fn check_name(value: &str, field: &'static str) -> Result<(), FrameError> {
    if value.is_empty() {
        Err(FrameError::BadName { field })
    } else {
        Ok(())
    }
}

/// Walks a binary frame: the kind byte, N size bytes, N fields, the payload.
struct Reader<'a> {
    kind: u8,
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Result<Self, FrameError> {
        let (&kind, _) = bytes.split_first().ok_or(FrameError::Empty)?;
        Ok(Reader {
            kind,
            bytes,
            offset: 1,
        })
    }

    fn fields<const N: usize>(
        &mut self,
        names: [&'static str; N],
    ) -> Result<[&'a str; N], FrameError> {
        let sizes_end = self.offset + N;
        let sizes = self
            .bytes
            .get(self.offset..sizes_end)
            .ok_or(FrameError::Truncated {
                needed: sizes_end,
                actual: self.bytes.len(),
            })?;
        let needed = sizes_end + sizes.iter().map(|&s| usize::from(s)).sum::<usize>();
        if needed > self.bytes.len() {
            return Err(FrameError::Truncated {
                needed,
                actual: self.bytes.len(),
            });
        }
        let mut offset = sizes_end;
        let mut out = [""; N];
        for (i, name) in names.into_iter().enumerate() {
            let end = offset + usize::from(sizes[i]);
            out[i] = std::str::from_utf8(&self.bytes[offset..end])
                .map_err(|_| FrameError::NotUtf8 { field: name })?;
            offset = end;
        }
        self.offset = offset;
        Ok(out)
    }

    fn rest(&self) -> &'a [u8] {
        &self.bytes[self.offset..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check_text_error(input: &str, expected: FrameError) {
        assert_eq!(decode_text(input), Err(expected), "input: {input}");
    }

    #[test]
    fn text_frames_decode_and_reencode_identically() {
        let text = r#"["1","2","room:abc","phx_join",{"name":"Ada","n":1.5}]"#;
        let frame = decode_text(text).unwrap();
        assert_eq!(frame.join_ref.as_deref(), Some("1"));
        assert_eq!(frame.msg_ref.as_deref(), Some("2"));
        assert_eq!(frame.topic, "room:abc");
        assert_eq!(frame.event, "phx_join");
        assert_eq!(frame.payload, json!({"name": "Ada", "n": 1.5}));
        assert_eq!(encode_text(&frame), text);
    }

    #[test]
    fn malformed_text_frames_are_typed_errors() {
        check_text_error(
            "[1,2",
            FrameError::InvalidJson("EOF while parsing a list at line 1 column 4".into()),
        );
        check_text_error(r#"{"a":1}"#, FrameError::WrongShape);
        check_text_error(r#"["1","2","t","e"]"#, FrameError::WrongShape);
        check_text_error(r#"["1","2","t","e",{},6]"#, FrameError::WrongShape);
        check_text_error(
            r#"[1,"2","t","e",{}]"#,
            FrameError::BadRef { field: "join_ref" },
        );
        check_text_error(
            r#"[null,{},"t","e",{}]"#,
            FrameError::BadRef { field: "ref" },
        );
        check_text_error(
            r#"[null,null,"","e",{}]"#,
            FrameError::BadName { field: "topic" },
        );
        check_text_error(
            r#"[null,null,"t",7,{}]"#,
            FrameError::BadName { field: "event" },
        );
        let huge = format!(r#"[null,null,"t","e","{}"]"#, "x".repeat(MAX_FRAME_BYTES));
        check_text_error(
            &huge,
            FrameError::TooLarge {
                size: huge.len(),
                limit: MAX_FRAME_BYTES,
            },
        );
    }

    #[test]
    fn client_push_layout_matches_phoenix_js() {
        let mut out = Vec::new();
        encode_client_push(&mut out, "1", "22", "room:x", "pose", &[9, 8]).unwrap();
        assert_eq!(
            out,
            [
                &[0u8, 1, 2, 6, 4][..],
                b"1",
                b"22",
                b"room:x",
                b"pose",
                &[9, 8]
            ]
            .concat()
        );
        let push = decode_client_binary(&out).unwrap();
        assert_eq!(
            push,
            ClientBinaryPush {
                join_ref: "1",
                msg_ref: "22",
                topic: "room:x",
                event: "pose",
                payload: &[9, 8],
            }
        );
    }

    #[test]
    fn server_frames_round_trip() {
        let mut out = Vec::new();
        encode_broadcast(&mut out, "room:x", "poses", &[1, 2, 3]).unwrap();
        assert_eq!(
            decode_server_binary(&out).unwrap(),
            ServerBinary::Broadcast {
                topic: "room:x",
                event: "poses",
                payload: &[1, 2, 3]
            }
        );
        out.clear();
        encode_reply(&mut out, "1", "5", "room:x", "ok", &[]).unwrap();
        assert_eq!(
            decode_server_binary(&out).unwrap(),
            ServerBinary::Reply {
                join_ref: "1",
                msg_ref: "5",
                topic: "room:x",
                status: "ok",
                payload: &[]
            }
        );
        out.clear();
        encode_server_push(&mut out, "1", "room:x", "e", &[7]).unwrap();
        assert_eq!(
            decode_server_binary(&out).unwrap(),
            ServerBinary::Push {
                join_ref: "1",
                topic: "room:x",
                event: "e",
                payload: &[7]
            }
        );
    }

    #[test]
    fn malformed_binary_frames_are_typed_errors() {
        let cases: &[(&[u8], FrameError)] = &[
            (&[], FrameError::Empty),
            (&[7, 0, 0], FrameError::UnknownKind(7)),
            (
                &[2, 1, 1, b'a', b'b'],
                FrameError::UnexpectedKind { kind: 2 },
            ),
            (
                &[0, 1, 1],
                FrameError::Truncated {
                    needed: 5,
                    actual: 3,
                },
            ),
            (
                &[0, 1, 1, 1, 9, b'a', b'b', b'c'],
                FrameError::Truncated {
                    needed: 17,
                    actual: 8,
                },
            ),
            (
                &[0, 1, 0, 1, 1, 0xff, b't', b'e'],
                FrameError::NotUtf8 { field: "join_ref" },
            ),
            (
                &[0, 0, 0, 0, 1, b'e'],
                FrameError::BadName { field: "topic" },
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                decode_client_binary(input),
                Err(expected.clone()),
                "{input:?}"
            );
        }
    }

    #[test]
    fn overlong_header_fields_are_refused_on_encode() {
        let long = "t".repeat(256);
        let mut out = Vec::new();
        assert_eq!(
            encode_broadcast(&mut out, &long, "e", &[]),
            Err(FrameError::FieldTooLong {
                field: "topic",
                len: 256
            })
        );
        assert!(out.is_empty(), "a refused frame writes nothing");
    }
}
