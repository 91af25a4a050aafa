//! Integration tests of the server through its real boundaries: pages and the
//! JSON API through the router in-process (`oneshot`, the real state and
//! database), sockets and the listener on a bound port, the binary as a child
//! process, and the store on real SQLite files and a real PostgreSQL server.
//!
//! PostgreSQL tests run when ROOMSCALE_TEST_POSTGRES_URL names a server (as
//! `cargo xtask test` arranges) and print why they were skipped otherwise.

mod abuse;
#[cfg(unix)] // Stops the server with SIGTERM.
mod binary;
mod common;
#[cfg(unix)] // Kills the server with SIGKILL.
mod crash;
mod http;
mod moderation;
mod objects;
mod ownership;
mod phoenix_js;
mod room_list;
mod room_page;
mod security_http;
mod socket;
mod storage;
mod voice;
mod voice_control;
