//! Cross-component tests live in `tests/`; this library holds what the room load
//! benchmark (`src/bin/room-load.rs`) computes, so that it is unit-tested.

pub mod load;
