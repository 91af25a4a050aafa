//! End-to-end tests across components: the native room client and its voice
//! transport against a real server on loopback, and OpenXR programs against a
//! real runtime (Monado).

mod monado;
mod native_client;
mod objects;
mod room_links;
mod room_rules;
mod voice_transport;
