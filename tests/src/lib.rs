//! Cross-component tests live in `tests/`; this library holds what the load
//! benchmarks (`src/bin/room-load.rs`, `src/bin/voice-load.rs`) share and
//! compute, so that it is unit-tested.

pub mod load;
pub mod process;
