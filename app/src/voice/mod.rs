//! Native voice: the media side (Opus, the jitter buffer, the spatial mixer,
//! microphone processing, microphones and speakers or WAV files in their
//! place, and the pipeline that joins them), the transport to the server's
//! SFU, and the session that runs a call with all of them.

pub mod cli;
pub mod codec;
pub mod devices;
pub mod jitter;
pub mod mixer;
pub mod pipeline;
pub mod processing;
pub mod rtc;
pub mod session;
pub mod wav;
