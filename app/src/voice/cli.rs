//! The voice flags of `roomscale join` and what a headless client prints
//! about its call, so bots and tests can follow it line by line:
//!
//! ```text
//! voice: microphone tone440.wav from unix_us=1700000000000000
//! voice: speaker out.wav from unix_us=1700000000000000
//! voice: connected
//! voice: tracks {"1": "<user id>"}
//! voice: levels <user id>=0.212
//! voice: left (speaker buffer averaged 30.0 ms)
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::devices::{InputChoice, OutputChoice};
use super::pipeline::PipelineConfig;
use super::rtc::VoiceStatus;
use super::session::{VoiceError, VoiceMonitor, VoiceOptions, VoiceSession};
use crate::client::{RoomClient, ServerUrl};

/// How often a headless client prints what it hears.
const LEVELS_EVERY: Duration = Duration::from_millis(500);

/// Voice on the command line. Any of them joins voice at start.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct VoiceArgs {
    /// Join voice with the default microphone and speakers (listening only
    /// when no microphone opens).
    #[arg(long)]
    pub voice: bool,
    /// Join voice with this microphone: its exact name, or part of exactly one device's name.
    #[arg(long, value_name = "NAME", conflicts_with = "mic_wav")]
    pub mic: Option<String>,
    /// Join voice with these speakers, by name as --mic.
    #[arg(long, value_name = "NAME", conflicts_with = "speaker_wav")]
    pub speaker: Option<String>,
    /// Talk with this WAV file (played in real time, then silence) instead of a microphone.
    #[arg(long, value_name = "FILE")]
    pub mic_wav: Option<PathBuf>,
    /// Write what you hear to this WAV file (48 kHz stereo, in real time) instead of speakers.
    #[arg(long, value_name = "FILE")]
    pub speaker_wav: Option<PathBuf>,
    /// Join voice muted.
    #[arg(long)]
    pub muted: bool,
}

impl VoiceArgs {
    /// What the flags ask for; `None` when they leave voice off. Without a
    /// window nothing plays unless speakers are named, and a client given
    /// only somewhere to play joins listening only.
    pub fn options(&self, headless: bool) -> Option<VoiceOptions> {
        let any = self.voice
            || self.mic.is_some()
            || self.speaker.is_some()
            || self.mic_wav.is_some()
            || self.speaker_wav.is_some();
        if !any {
            return None;
        }
        let input = match (&self.mic_wav, &self.mic) {
            (Some(path), _) => Some(InputChoice::Wav(path.clone())),
            (None, Some(name)) => Some(InputChoice::Named(name.clone())),
            (None, None) if self.voice => Some(InputChoice::Default),
            (None, None) => None,
        };
        let output = match (&self.speaker_wav, &self.speaker) {
            (Some(path), _) => Some(OutputChoice::Wav(path.clone())),
            (None, Some(name)) => Some(OutputChoice::Named(name.clone())),
            (None, None) if self.voice && !headless => Some(OutputChoice::Default),
            (None, None) => None,
        };
        Some(
            VoiceOptions {
                input,
                output,
                pipeline: PipelineConfig::default(),
            }
            .with_wav_input_unprocessed(),
        )
    }

    /// Starts voice if the flags ask for it and prints, from then on, what
    /// happens to the call (see the module's example).
    pub async fn start_headless(
        &self,
        room: &RoomClient,
        server: &ServerUrl,
    ) -> Result<Option<VoiceSession>, VoiceError> {
        let Some(options) = self.options(true) else {
            return Ok(None);
        };
        let session = VoiceSession::start(room, server, options).await?;
        if self.muted {
            session.set_muted(true);
        }
        let report = session.report();
        match (&report.microphone, &report.microphone_refused) {
            (Some(name), _) => println!(
                "voice: microphone {name} from unix_us={}",
                unix_us(report.microphone_started)
            ),
            (None, Some(why)) => println!("voice: listening only ({why})"),
            (None, None) => println!("voice: listening only"),
        }
        if let Some(name) = &report.speaker {
            println!(
                "voice: speaker {name} from unix_us={}",
                unix_us(report.speaker_started)
            );
        }
        if let Some(why) = &report.processing_unavailable {
            println!("voice: no echo cancellation here ({why})");
        }
        Ok(Some(session))
    }
}

/// Prints the call's changes until it ends: status, the track map, and
/// every half second the level of each voice heard.
pub async fn print_changes(session: VoiceMonitor) {
    let mut status = session.status();
    let mut tracks = BTreeMap::new();
    let mut levels = tokio::time::interval(LEVELS_EVERY);
    loop {
        tokio::select! {
            changed = status.changed() => {
                if changed.is_err() {
                    return;
                }
                let now = status.borrow_and_update().clone();
                match now {
                    VoiceStatus::Joining => println!("voice: joining"),
                    VoiceStatus::Connected => println!("voice: connected"),
                    VoiceStatus::Reconnecting(why) => println!("voice: reconnecting ({why})"),
                    VoiceStatus::Off(why) => {
                        println!("voice: off ({why})");
                        return;
                    }
                }
            }
            _ = levels.tick() => {
                let now: BTreeMap<String, String> = session.tracks().into_iter().collect();
                if now != tracks {
                    tracks = now;
                    println!("voice: tracks {}", serde_json::to_string(&tracks).unwrap_or_default());
                }
                let report = session.report();
                if !report.voice_levels.is_empty() {
                    let mut heard: Vec<_> = report.voice_levels.iter().collect();
                    heard.sort_by(|a, b| a.0.cmp(b.0));
                    let heard: Vec<String> = heard
                        .into_iter()
                        .map(|(user, level)| format!("{user}={level:.3}"))
                        .collect();
                    println!("voice: levels {}", heard.join(" "));
                }
            }
        }
    }
}

/// Leaves voice and says so, with the speakers' buffer (the part of the
/// delay that belongs to the output device). The speaker file is complete
/// once this returns.
pub async fn leave_headless(session: VoiceSession) {
    let report = session.report();
    session.leave().await;
    if report.speaker.is_some() {
        println!(
            "voice: left (speaker buffer averaged {:.1} ms)",
            report.speaker_queue_ms
        );
    } else {
        println!("voice: left");
    }
}

fn unix_us(at: Option<SystemTime>) -> u128 {
    at.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        args: VoiceArgs,
        headless: bool,
        expected: Option<(Option<InputChoice>, Option<OutputChoice>)>,
    ) {
        let got = args.options(headless).map(|o| (o.input, o.output));
        assert_eq!(got, expected, "{args:?} headless={headless}");
    }

    #[test]
    fn the_flags_choose_devices_and_files() {
        let wav = |p: &str| PathBuf::from(p);
        check(VoiceArgs::default(), true, None);
        check(
            VoiceArgs {
                mic_wav: Some(wav("a.wav")),
                ..Default::default()
            },
            true,
            Some((Some(InputChoice::Wav(wav("a.wav"))), None)),
        );
        check(
            VoiceArgs {
                speaker_wav: Some(wav("b.wav")),
                ..Default::default()
            },
            true,
            Some((None, Some(OutputChoice::Wav(wav("b.wav"))))),
        );
        check(
            VoiceArgs {
                voice: true,
                ..Default::default()
            },
            true,
            Some((Some(InputChoice::Default), None)),
        );
        check(
            VoiceArgs {
                voice: true,
                ..Default::default()
            },
            false,
            Some((Some(InputChoice::Default), Some(OutputChoice::Default))),
        );
        check(
            VoiceArgs {
                mic: Some("USB".into()),
                speaker: Some("HDMI".into()),
                ..Default::default()
            },
            false,
            Some((
                Some(InputChoice::Named("USB".into())),
                Some(OutputChoice::Named("HDMI".into())),
            )),
        );
    }

    #[test]
    fn a_wav_microphone_is_sent_unprocessed() {
        let args = VoiceArgs {
            mic_wav: Some("a.wav".into()),
            ..Default::default()
        };
        let options = args.options(true).unwrap();
        assert_eq!(
            options.pipeline.processing,
            super::super::processing::ProcessingConfig::OFF
        );
        let args = VoiceArgs {
            voice: true,
            ..Default::default()
        };
        assert_eq!(
            args.options(false).unwrap().pipeline.processing,
            super::super::processing::ProcessingConfig::default()
        );
    }
}
