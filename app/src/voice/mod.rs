//! Native voice: the media side (Opus, the jitter buffer, the spatial mixer,
//! microphone processing, WAV files in place of devices) and the transport to
//! the server's SFU.

pub mod codec;
pub mod jitter;
pub mod mixer;
pub mod processing;
pub mod rtc;
pub mod wav;
