//! End-to-end tests across components: the native room client against a real
//! server on loopback.

mod native_client;
