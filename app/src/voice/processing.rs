//! Microphone processing as people expect from a call: echo cancellation
//! (so someone on desktop speakers does not send everyone's voices back to
//! them), noise suppression and automatic gain, all on by default.
//!
//! It is WebRTC's audio processing module (the one browsers use), as the
//! library Debian ships (`libwebrtc-audio-processing-dev`, version 0.3) through
//! the `webrtc-audio-processing` crate. That library is linked on Linux only;
//! elsewhere [`Processor::new`] says it is unavailable and the pipeline sends
//! the microphone as captured.

/// Which parts of the processing run; all on by default, each switchable in
/// the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessingConfig {
    pub echo_cancellation: bool,
    pub noise_suppression: bool,
    pub gain_control: bool,
}

impl Default for ProcessingConfig {
    fn default() -> Self {
        ProcessingConfig {
            echo_cancellation: true,
            noise_suppression: true,
            gain_control: true,
        }
    }
}

impl ProcessingConfig {
    /// Everything off: the microphone as captured.
    pub const OFF: ProcessingConfig = ProcessingConfig {
        echo_cancellation: false,
        noise_suppression: false,
        gain_control: false,
    };

    pub fn any(&self) -> bool {
        self.echo_cancellation || self.noise_suppression || self.gain_control
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessingError {
    #[error(
        "microphone processing (echo cancellation, noise suppression, gain control) is not \
         built for this platform; the microphone is sent as captured"
    )]
    Unavailable,
    #[error("WebRTC audio processing failed ({what}): {message}")]
    Failed { what: &'static str, message: String },
    #[error("audio processing takes 20 ms frames of {expected} samples, not {got}")]
    FrameSize { expected: usize, got: usize },
}

/// Speaker channels the echo canceller is told about.
pub const RENDER_CHANNELS: usize = 2;

#[cfg(target_os = "linux")]
pub use linux::Processor;

#[cfg(target_os = "linux")]
mod linux {
    use std::fmt;

    use webrtc_audio_processing as apm;

    use super::*;
    use crate::voice::codec::FRAME_SAMPLES;

    /// WebRTC's processing works on 10 ms blocks: two per 20 ms frame.
    const BLOCK: usize = FRAME_SAMPLES / 2;

    /// The microphone's processor. Feed it every frame the speakers play
    /// ([`Processor::render`]) and every frame the microphone captures
    /// ([`Processor::capture`]), in the order they happen.
    pub struct Processor {
        inner: apm::Processor,
        config: ProcessingConfig,
    }

    impl fmt::Debug for Processor {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Processor")
                .field("config", &self.config)
                .finish_non_exhaustive()
        }
    }

    impl Processor {
        pub fn new(config: ProcessingConfig) -> Result<Processor, ProcessingError> {
            let inner = apm::Processor::new(&apm::InitializationConfig {
                num_capture_channels: 1,
                num_render_channels: RENDER_CHANNELS as i32,
                ..apm::InitializationConfig::default()
            })
            .map_err(|error| ProcessingError::Failed {
                what: "creating the processor",
                message: error.to_string(),
            })?;
            let mut processor = Processor { inner, config };
            processor.set_config(config);
            Ok(processor)
        }

        pub fn config(&self) -> ProcessingConfig {
            self.config
        }

        /// Switches parts on or off; takes effect with the next frame.
        pub fn set_config(&mut self, config: ProcessingConfig) {
            self.config = config;
            self.inner.set_config(apm::Config {
                echo_cancellation: config.echo_cancellation.then_some(apm::EchoCancellation {
                    suppression_level: apm::EchoCancellationSuppressionLevel::High,
                    // Device buffers and the pipeline move the echo around:
                    // let the canceller find the delay itself.
                    stream_delay_ms: None,
                    enable_delay_agnostic: true,
                    enable_extended_filter: true,
                }),
                noise_suppression: config.noise_suppression.then_some(apm::NoiseSuppression {
                    suppression_level: apm::NoiseSuppressionLevel::High,
                }),
                gain_control: config.gain_control.then_some(apm::GainControl {
                    mode: apm::GainControlMode::AdaptiveDigital,
                    target_level_dbfs: 3,
                    compression_gain_db: 9,
                    enable_limiter: true,
                }),
                enable_high_pass_filter: config.any(),
                ..apm::Config::default()
            });
        }

        /// What the speakers play now: one 20 ms stereo interleaved frame.
        pub fn render(&mut self, stereo: &[f32]) -> Result<(), ProcessingError> {
            if stereo.len() != RENDER_CHANNELS * FRAME_SAMPLES {
                return Err(ProcessingError::FrameSize {
                    expected: RENDER_CHANNELS * FRAME_SAMPLES,
                    got: stereo.len(),
                });
            }
            if !self.config.echo_cancellation {
                return Ok(());
            }
            let mut block = [0.0f32; RENDER_CHANNELS * BLOCK];
            for half in stereo.chunks_exact(RENDER_CHANNELS * BLOCK) {
                block.copy_from_slice(half);
                self.inner
                    .process_render_frame(&mut block)
                    .map_err(|error| ProcessingError::Failed {
                        what: "speaker frame",
                        message: error.to_string(),
                    })?;
            }
            Ok(())
        }

        /// Processes one captured 20 ms mono frame in place.
        pub fn capture(&mut self, mono: &mut [f32]) -> Result<(), ProcessingError> {
            if mono.len() != FRAME_SAMPLES {
                return Err(ProcessingError::FrameSize {
                    expected: FRAME_SAMPLES,
                    got: mono.len(),
                });
            }
            if !self.config.any() {
                return Ok(());
            }
            for half in mono.chunks_exact_mut(BLOCK) {
                self.inner.process_capture_frame(half).map_err(|error| {
                    ProcessingError::Failed {
                        what: "microphone frame",
                        message: error.to_string(),
                    }
                })?;
            }
            Ok(())
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub use other::Processor;

#[cfg(not(target_os = "linux"))]
mod other {
    use super::*;

    /// No processing library on this platform: [`Processor::new`] fails.
    #[derive(Debug)]
    pub struct Processor {
        config: ProcessingConfig,
    }

    impl Processor {
        pub fn new(_config: ProcessingConfig) -> Result<Processor, ProcessingError> {
            Err(ProcessingError::Unavailable)
        }

        pub fn config(&self) -> ProcessingConfig {
            self.config
        }

        pub fn set_config(&mut self, config: ProcessingConfig) {
            self.config = config;
        }

        pub fn render(&mut self, _stereo: &[f32]) -> Result<(), ProcessingError> {
            Ok(())
        }

        pub fn capture(&mut self, _mono: &mut [f32]) -> Result<(), ProcessingError> {
            Ok(())
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::voice::codec::FRAME_SAMPLES;
    use crate::voice::codec::tests::speech_like;

    fn energy(x: &[f32]) -> f64 {
        x.iter().map(|s| f64::from(*s).powi(2)).sum()
    }

    /// Plays `far` (a remote voice) on the speakers; the microphone hears it
    /// back at −6 dB after `delay` samples, through a small room (an echo of
    /// the echo 5 ms later), and nobody speaks locally. Returns what would be
    /// sent, and the microphone signal, over the last 4 s (after the
    /// canceller has adapted).
    fn echo(config: ProcessingConfig, delay: usize) -> (Vec<f32>, Vec<f32>) {
        let frames = 400;
        let far = speech_like(frames);
        let mut mic = vec![0.0f32; far.len()];
        for n in delay..far.len() {
            mic[n] = 0.5 * far[n - delay];
            if n >= delay + 240 {
                mic[n] += 0.15 * far[n - delay - 240];
            }
        }
        let mut processor = Processor::new(config).unwrap();
        let mut sent = Vec::new();
        for (speaker, captured) in far.chunks(FRAME_SAMPLES).zip(mic.chunks(FRAME_SAMPLES)) {
            let stereo: Vec<f32> = speaker.iter().flat_map(|s| [*s, *s]).collect();
            processor.render(&stereo).unwrap();
            let mut frame = captured.to_vec();
            processor.capture(&mut frame).unwrap();
            sent.extend_from_slice(&frame);
        }
        let from = 200 * FRAME_SAMPLES;
        (sent[from..].to_vec(), mic[from..].to_vec())
    }

    #[test]
    fn echo_is_at_least_20_db_weaker_with_cancellation() {
        // Echo paths of 10, 50 and 100 ms (device buffers and the pipeline).
        for delay in [480, 2400, 4800] {
            let (with, mic) = echo(ProcessingConfig::default(), delay);
            let (without, _) = echo(
                ProcessingConfig {
                    echo_cancellation: false,
                    ..ProcessingConfig::default()
                },
                delay,
            );
            let (raw, _) = echo(ProcessingConfig::OFF, delay);
            let vs_raw = 10.0 * (energy(&raw) / energy(&with)).log10();
            let vs_without = 10.0 * (energy(&without) / energy(&with)).log10();
            assert!(
                vs_raw >= 20.0,
                "{delay} samples: {vs_raw:.1} dB below the raw microphone"
            );
            assert!(
                vs_without >= 20.0,
                "{delay} samples: {vs_without:.1} dB below processing without cancellation"
            );
            assert_eq!(raw, mic, "off is the microphone as captured");
        }
    }

    #[test]
    fn gain_control_brings_a_quiet_voice_up_and_noise_suppression_quiets_noise() {
        let quiet: Vec<f32> = speech_like(300).iter().map(|s| s * 0.03).collect();
        let run = |config: ProcessingConfig, input: &[f32]| -> Vec<f32> {
            let mut processor = Processor::new(config).unwrap();
            let mut out = Vec::new();
            for frame in input.chunks(FRAME_SAMPLES) {
                let mut frame = frame.to_vec();
                processor.render(&[0.0; 2 * FRAME_SAMPLES]).unwrap();
                processor.capture(&mut frame).unwrap();
                out.extend_from_slice(&frame);
            }
            out[150 * FRAME_SAMPLES..].to_vec()
        };
        let agc = ProcessingConfig {
            gain_control: true,
            ..ProcessingConfig::OFF
        };
        let gained =
            10.0 * (energy(&run(agc, &quiet)) / energy(&quiet[150 * FRAME_SAMPLES..])).log10();
        assert!(
            gained > 6.0,
            "gain control raised a quiet voice by {gained:.1} dB"
        );
        let mut state = 1u32;
        let hiss: Vec<f32> = (0..300 * FRAME_SAMPLES)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                0.02 * ((state >> 8) as f32 / (1u32 << 24) as f32 - 0.5)
            })
            .collect();
        let ns = ProcessingConfig {
            noise_suppression: true,
            ..ProcessingConfig::OFF
        };
        let suppressed =
            10.0 * (energy(&hiss[150 * FRAME_SAMPLES..]) / energy(&run(ns, &hiss))).log10();
        assert!(
            suppressed > 6.0,
            "noise suppression took {suppressed:.1} dB off steady noise"
        );
    }

    #[test]
    fn frames_of_the_wrong_size_are_refused() {
        let mut processor = Processor::new(ProcessingConfig::default()).unwrap();
        assert!(processor.capture(&mut [0.0; 480]).is_err());
        assert!(processor.render(&[0.0; 960]).is_err());
        processor.set_config(ProcessingConfig::OFF);
        assert_eq!(processor.config(), ProcessingConfig::OFF);
    }
}
