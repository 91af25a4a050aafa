//! Cross-component tests live in `tests/`; this library holds what the load
//! benchmarks (`src/bin/room-load.rs`, `src/bin/voice-load.rs`,
//! `src/bin/soak.rs`) share and compute, so that it is unit-tested, and the
//! real OpenXR runtime (Monado in a Debian 13 chroot) that XR tests run against.

pub mod load;
pub mod monado;
pub mod process;
pub mod soak;
