//! The voice pipeline: what the transport plugs into. Plain logic, no
//! threads, sockets or clocks of its own; one owner drives it every 20 ms.
//!
//! Sending: [`VoicePipeline::capture`] takes each 20 ms microphone frame
//! through echo cancellation, noise suppression and gain control, and Opus,
//! and returns the packet to send ([`Outgoing`]) or nothing (DTX, muted).
//!
//! Receiving: [`VoicePipeline::receive`] takes each RTP Opus payload with the
//! user it belongs to (sequence number, timestamp, arrival time) into that
//! user's jitter buffer. [`VoicePipeline::playout`], once per 20 ms of
//! speaker time, decodes (or conceals, or rebuilds from FEC) one frame of
//! every voice, places each at its speaker's head for the listener
//! ([`VoicePipeline::set_listener`], [`VoicePipeline::set_position`], updated
//! by the app each frame), mixes them to stereo for the speakers, and tells
//! the echo canceller what the speakers play.
//!
//! A typical driver: a thread that waits for the microphone's next frame
//! (its clock paces sending), calls `capture` and hands the packet to the
//! transport; and that, whenever the speaker has fewer than two frames
//! queued, calls `playout` and writes the frame (the speaker's clock paces
//! receiving). Received packets are passed to `receive` as they come.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use glam::Vec3;

use super::codec::{
    CodecError, Decoder, Encoder, EncoderConfig, FRAME_SAMPLES, MAX_PACKET_SAMPLES,
};
use super::devices::STEREO_FRAME;
use super::jitter::{JitterBuffer, JitterConfig, JitterStats, Packet, Playout};
use super::mixer::{HeadPose, Mixer};
use super::processing::{ProcessingConfig, Processor};

/// Everything the pipeline can be set up with; the defaults are DESIGN.md's.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PipelineConfig {
    pub encoder: EncoderConfig,
    pub processing: ProcessingConfig,
    pub jitter: JitterConfig,
}

/// One Opus packet to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub payload: Bytes,
    /// Where the frame's first sample lies in the capture stream (48 kHz
    /// samples since capture started); frames not sent (DTX, muted) leave a
    /// gap, so RTP timestamps made from it keep real time.
    pub sample: u64,
    /// The frame's level as RFC 6464 puts it: minus dBov, 0 (full scale) to
    /// 127 (silence), after processing.
    pub level_dbov: u8,
    /// Whether the frame holds voice rather than silence (Opus DTX's view).
    pub voice: bool,
}

/// Counters of one remote voice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VoiceStats {
    pub jitter: JitterStats,
    /// Payloads that were not valid Opus (concealed instead).
    pub decode_errors: u64,
}

/// Capture → processing → Opus; jitter buffer → Opus → spatial mix.
#[derive(Debug)]
pub struct VoicePipeline {
    config: PipelineConfig,
    encoder: Encoder,
    processor: Option<Processor>,
    processing_unavailable: Option<String>,
    transmitting: bool,
    /// Samples captured so far (the next frame's first sample).
    captured: u64,
    input_level: f32,
    voices: HashMap<String, RemoteVoice>,
    mixer: Mixer,
    frame: Vec<f32>,
}

#[derive(Debug)]
struct RemoteVoice {
    jitter: JitterBuffer,
    decoder: Decoder,
    /// Decoded samples beyond this slot (a packet longer than 20 ms).
    carry: Vec<f32>,
    decoded: Vec<f32>,
    level: f32,
    decode_errors: u64,
}

/// A pipeline that cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("a microphone frame must be {FRAME_SAMPLES} mono samples (20 ms at 48 kHz), not {0}")]
    FrameSize(usize),
}

impl VoicePipeline {
    /// A pipeline. Where microphone processing is not available here the
    /// pipeline still works, sending the microphone as captured, and
    /// [`VoicePipeline::processing_unavailable`] says why.
    pub fn new(config: PipelineConfig) -> Result<VoicePipeline, PipelineError> {
        let (processor, processing_unavailable) = match Processor::new(config.processing) {
            Ok(processor) => (Some(processor), None),
            Err(error) => (None, Some(error.to_string())),
        };
        Ok(VoicePipeline {
            config,
            encoder: Encoder::new(config.encoder)?,
            processor,
            processing_unavailable,
            transmitting: true,
            captured: 0,
            input_level: 0.0,
            voices: HashMap::new(),
            mixer: Mixer::new(),
            frame: vec![0.0; FRAME_SAMPLES],
        })
    }

    /// Why echo cancellation, noise suppression and gain control do not run
    /// on this platform, if they do not.
    pub fn processing_unavailable(&self) -> Option<&str> {
        self.processing_unavailable.as_deref()
    }

    pub fn processing(&self) -> ProcessingConfig {
        self.config.processing
    }

    /// Switches microphone processing parts on or off (the settings).
    pub fn set_processing(&mut self, processing: ProcessingConfig) {
        self.config.processing = processing;
        if let Some(processor) = &mut self.processor {
            processor.set_config(processing);
        }
    }

    /// Whether captured frames are sent: false while muted or while
    /// push-to-talk is released. Capture still runs (the level meter, the
    /// echo canceller's view of the room).
    pub fn set_transmitting(&mut self, transmitting: bool) {
        self.transmitting = transmitting;
    }

    pub fn is_transmitting(&self) -> bool {
        self.transmitting
    }

    /// The last captured frame's RMS after processing (0 to 1), for the
    /// input level meter.
    pub fn input_level(&self) -> f32 {
        self.input_level
    }

    /// One 20 ms microphone frame ([`FRAME_SAMPLES`] mono samples at 48 kHz)
    /// in; the packet to send out, if any.
    pub fn capture(&mut self, frame: &[f32]) -> Result<Option<Outgoing>, PipelineError> {
        if frame.len() != FRAME_SAMPLES {
            return Err(PipelineError::FrameSize(frame.len()));
        }
        self.frame.copy_from_slice(frame);
        if let Some(processor) = &mut self.processor
            && let Err(error) = processor.capture(&mut self.frame)
        {
            // Sending unprocessed audio beats sending none.
            eprintln!("voice: microphone processing failed, sending as captured: {error}");
            self.frame.copy_from_slice(frame);
        }
        let sample = self.captured;
        self.captured += FRAME_SAMPLES as u64;
        let energy: f32 = self.frame.iter().map(|s| s * s).sum();
        self.input_level = (energy / FRAME_SAMPLES as f32).sqrt();
        if !self.transmitting {
            return Ok(None);
        }
        let Some(packet) = self.encoder.encode(&self.frame)? else {
            return Ok(None);
        };
        // RFC 6464: the level relative to a full-scale square wave.
        let dbov = if self.input_level > 0.0 {
            (-20.0 * self.input_level.log10()).clamp(0.0, 127.0)
        } else {
            127.0
        };
        Ok(Some(Outgoing {
            voice: !super::codec::is_dtx(packet),
            payload: Bytes::copy_from_slice(packet),
            sample,
            level_dbov: dbov.round() as u8,
        }))
    }

    /// One received RTP Opus packet of `user`'s voice. `arrival` is on the
    /// same clock as `now` in [`VoicePipeline::playout`].
    pub fn receive(
        &mut self,
        user: &str,
        ssrc: u32,
        sequence: u16,
        timestamp: u32,
        arrival: Duration,
        payload: Bytes,
    ) {
        let config = self.config.jitter;
        let voice = self
            .voices
            .entry(user.to_owned())
            .or_insert_with(|| RemoteVoice {
                jitter: JitterBuffer::new(config),
                decoder: Decoder::new().expect("an Opus decoder for 48 kHz mono always opens"),
                carry: Vec::new(),
                decoded: vec![0.0; MAX_PACKET_SAMPLES],
                level: 0.0,
                decode_errors: 0,
            });
        // The packet's length in time, from its Opus header (a malformed one
        // counts as one frame and is concealed when its turn comes).
        let samples = Decoder::packet_samples(&payload)
            .ok()
            .filter(|n| *n >= FRAME_SAMPLES && *n % FRAME_SAMPLES == 0)
            .unwrap_or(FRAME_SAMPLES) as u32;
        voice.jitter.push(Packet {
            ssrc,
            sequence,
            timestamp,
            arrival,
            samples,
            payload,
        });
    }

    /// The listener's head (desktop camera or XR head pose), each frame.
    pub fn set_listener(&mut self, pose: HeadPose) {
        self.mixer.set_listener(pose);
    }

    /// Where `user`'s head is (their interpolated avatar head), each frame.
    pub fn set_position(&mut self, user: &str, position: Vec3) {
        self.mixer.set_position(user, position);
    }

    /// Per-person volume (1 as sent, 0 silent).
    pub fn set_volume(&mut self, user: &str, volume: f32) {
        self.mixer.set_volume(user, volume);
    }

    /// Mute all voices (the speakers play silence).
    pub fn set_muted_all(&mut self, muted: bool) {
        self.mixer.set_muted(muted);
    }

    /// Forgets `user`'s voice (they left voice or the room).
    pub fn remove_voice(&mut self, user: &str) {
        self.voices.remove(user);
        self.mixer.remove(user);
    }

    /// The RMS of `user`'s last played frame (0 to 1), for speaking rings.
    pub fn voice_level(&self, user: &str) -> Option<f32> {
        self.voices.get(user).map(|v| v.level)
    }

    pub fn voice_stats(&self, user: &str) -> Option<VoiceStats> {
        self.voices.get(user).map(|v| VoiceStats {
            jitter: v.jitter.stats(),
            decode_errors: v.decode_errors,
        })
    }

    /// The users whose voices the pipeline holds.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.voices.keys().map(String::as_str)
    }

    /// The next 20 ms for the speakers at `now`: `out` is
    /// [`STEREO_FRAME`] samples of 48 kHz stereo, interleaved.
    pub fn playout(&mut self, now: Duration, out: &mut [f32]) {
        assert_eq!(
            out.len(),
            STEREO_FRAME,
            "playout writes one 20 ms stereo frame"
        );
        for (user, voice) in &mut self.voices {
            let frame = &mut self.frame[..];
            let played = match voice.jitter.pop(now) {
                Playout::Decode(payload) => {
                    match voice.decoder.decode(&payload, &mut voice.decoded) {
                        Ok(n) if n >= FRAME_SAMPLES => {
                            frame.copy_from_slice(&voice.decoded[..FRAME_SAMPLES]);
                            voice.carry.clear();
                            voice
                                .carry
                                .extend_from_slice(&voice.decoded[FRAME_SAMPLES..n]);
                            true
                        }
                        _ => {
                            voice.decode_errors += 1;
                            voice.decoder.conceal(frame).is_ok()
                        }
                    }
                }
                Playout::Continue if voice.carry.len() >= FRAME_SAMPLES => {
                    frame.copy_from_slice(&voice.carry[..FRAME_SAMPLES]);
                    voice.carry.drain(..FRAME_SAMPLES);
                    true
                }
                Playout::Continue | Playout::Conceal => voice.decoder.conceal(frame).is_ok(),
                Playout::RecoverFec(next) => voice.decoder.recover(&next, frame).is_ok(),
                Playout::Silence => false,
            };
            if played {
                let energy: f32 = frame.iter().map(|s| s * s).sum();
                voice.level = (energy / FRAME_SAMPLES as f32).sqrt();
                self.mixer.push_frame(user, frame);
            } else {
                voice.level = 0.0;
            }
        }
        self.mixer.mix(out);
        if let Some(processor) = &mut self.processor
            && let Err(error) = processor.render(out)
        {
            eprintln!("voice: echo cancellation lost a speaker frame: {error}");
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{RngExt as _, SeedableRng as _};

    use super::*;
    use crate::voice::codec::tests::speech_like;

    const FRAME: Duration = Duration::from_millis(20);

    fn tone(frequency: f32, frames: usize) -> Vec<f32> {
        (0..frames * FRAME_SAMPLES)
            .map(|n| 0.4 * (std::f32::consts::TAU * frequency * n as f32 / 48_000.0).sin())
            .collect()
    }

    /// Sends `signal` from one pipeline to another over a path that loses
    /// `loss` of the packets and delays each by 30 ms plus up to `jitter`;
    /// returns what the receiver's speakers play. `echo` feeds the
    /// receiver's speakers back into its microphone at that gain, and what
    /// the receiver then sends is decoded at the far end and returned second.
    fn call(
        signal: &[f32],
        seed: u64,
        loss: f64,
        jitter: Duration,
        receiver: PipelineConfig,
        echo: Option<f32>,
    ) -> (Vec<f32>, Vec<f32>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut alice = VoicePipeline::new(PipelineConfig::default()).unwrap();
        let mut bob = VoicePipeline::new(receiver).unwrap();
        bob.set_position("alice", Vec3::new(2.0, 0.0, 0.0));
        let mut in_flight: Vec<(Duration, u16, u32, Bytes)> = Vec::new();
        let mut heard = Vec::new();
        let mut far_end = Vec::new();
        let mut sequence = 0u16;
        let mut back_sequence = 0u16;
        let mut far = Decoder::new().unwrap();
        let mut speaker = vec![0.0f32; STEREO_FRAME];
        let mut last_speaker = vec![0.0f32; STEREO_FRAME];
        let mut decoded = vec![0.0f32; MAX_PACKET_SAMPLES];
        for (i, frame) in signal.chunks(FRAME_SAMPLES).enumerate() {
            let now = FRAME * i as u32;
            if let Some(out) = alice.capture(frame).unwrap() {
                if !rng.random_bool(loss) {
                    let arrival = now + Duration::from_millis(30) + jitter.mul_f64(rng.random());
                    in_flight.push((arrival, sequence, out.sample as u32, out.payload));
                }
                sequence = sequence.wrapping_add(1);
            }
            // Bob's speakers run 5 ms behind Alice's microphone clock.
            let playout = now + Duration::from_millis(5);
            in_flight.sort_by_key(|p| p.0);
            while in_flight.first().is_some_and(|p| p.0 <= playout) {
                let (arrival, sequence, timestamp, payload) = in_flight.remove(0);
                bob.receive("alice", 1, sequence, timestamp, arrival, payload);
            }
            bob.playout(playout, &mut speaker);
            heard.extend_from_slice(&speaker);
            if let Some(gain) = echo {
                // Bob's microphone hears his speakers (one frame late, as a
                // device buffer delays it) and nobody in his room speaks.
                let mic: Vec<f32> = last_speaker
                    .chunks(2)
                    .map(|pair| gain * 0.5 * (pair[0] + pair[1]))
                    .collect();
                last_speaker.copy_from_slice(&speaker);
                match bob.capture(&mic).unwrap() {
                    Some(out) => {
                        back_sequence = back_sequence.wrapping_add(1);
                        let n = far.decode(&out.payload, &mut decoded).unwrap();
                        far_end.extend_from_slice(&decoded[..n]);
                    }
                    None => far_end.extend(std::iter::repeat_n(0.0, FRAME_SAMPLES)),
                }
            }
        }
        (heard, far_end)
    }

    /// The longest run of (near) silence in `stereo` after its first sound, in ms.
    fn longest_gap_ms(stereo: &[f32]) -> f64 {
        let mono: Vec<f32> = stereo
            .chunks(2)
            .map(|p| p[0].abs().max(p[1].abs()))
            .collect();
        let start = mono.iter().position(|s| *s > 0.01).unwrap();
        let end = mono.iter().rposition(|s| *s > 0.01).unwrap();
        // Silence: no sample above 0.001 within a 5 ms window.
        let (mut longest, mut run) = (0usize, 0usize);
        for window in mono[start..end].chunks(240) {
            if window.iter().all(|s| *s < 0.001) {
                run += window.len();
                longest = longest.max(run);
            } else {
                run = 0;
            }
        }
        longest as f64 / 48.0
    }

    fn rms(x: &[f32]) -> f32 {
        (x.iter().map(|s| s * s).sum::<f32>() / x.len().max(1) as f32).sqrt()
    }

    #[test]
    fn ten_percent_loss_leaves_no_gap_longer_than_60_ms() {
        let signal = tone(440.0, 500);
        for seed in 1..=3 {
            let (heard, _) = call(
                &signal,
                seed,
                0.10,
                Duration::from_millis(20),
                PipelineConfig::default(),
                None,
            );
            let gap = longest_gap_ms(&heard);
            assert!(gap <= 60.0, "seed {seed}: a gap of {gap} ms");
            // Alice stands 2 m to Bob's right.
            let left: Vec<f32> = heard.iter().step_by(2).copied().collect();
            let right: Vec<f32> = heard.iter().skip(1).step_by(2).copied().collect();
            assert!(
                rms(&right) > 1.5 * rms(&left),
                "right {} left {}",
                rms(&right),
                rms(&left)
            );
        }
    }

    #[test]
    fn the_speakers_fed_back_at_minus_6_db_are_20_db_weaker_at_the_far_end_with_cancellation() {
        let signal = speech_like(500);
        let (_, with) = call(
            &signal,
            7,
            0.0,
            Duration::ZERO,
            PipelineConfig::default(),
            Some(0.5),
        );
        let without_config = PipelineConfig {
            processing: ProcessingConfig {
                echo_cancellation: false,
                ..ProcessingConfig::default()
            },
            ..PipelineConfig::default()
        };
        let (_, without) = call(&signal, 7, 0.0, Duration::ZERO, without_config, Some(0.5));
        // After the canceller has had 5 s to adapt.
        let tail = |x: &[f32]| x[250 * FRAME_SAMPLES..].to_vec();
        let energy = |x: &[f32]| x.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>();
        let weaker = 10.0 * (energy(&tail(&without)) / energy(&tail(&with)).max(1e-12)).log10();
        assert!(
            weaker >= 20.0,
            "echo at the far end {weaker:.1} dB weaker with cancellation"
        );
    }

    #[test]
    fn muted_frames_are_not_sent_but_keep_their_place_in_time() {
        let mut pipeline = VoicePipeline::new(PipelineConfig::default()).unwrap();
        let voice = tone(300.0, 4);
        let frames: Vec<&[f32]> = voice.chunks(FRAME_SAMPLES).collect();
        assert_eq!(pipeline.capture(frames[0]).unwrap().unwrap().sample, 0);
        pipeline.set_transmitting(false);
        assert_eq!(pipeline.capture(frames[1]).unwrap(), None);
        assert!(
            pipeline.input_level() > 0.05,
            "the meter still moves while muted"
        );
        pipeline.set_transmitting(true);
        let out = pipeline.capture(frames[2]).unwrap().unwrap();
        assert_eq!(out.sample, 2 * FRAME_SAMPLES as u64);
        assert!(out.voice && out.level_dbov < 40, "{out:?}");
        assert!(matches!(
            pipeline.capture(&[0.0; 100]),
            Err(PipelineError::FrameSize(100))
        ));
    }

    #[test]
    fn silence_sends_one_dtx_packet_then_nothing() {
        let mut pipeline = VoicePipeline::new(PipelineConfig::default()).unwrap();
        let mut sent = Vec::new();
        for _ in 0..50 {
            if let Some(out) = pipeline.capture(&[0.0; FRAME_SAMPLES]).unwrap() {
                sent.push(out);
            }
        }
        assert!(sent.len() < 15, "{} of 50 silent frames sent", sent.len());
        assert!(
            sent.iter().any(|out| !out.voice),
            "the DTX packet says silence follows"
        );
    }

    #[test]
    fn garbage_payloads_are_concealed_not_played_and_counted() {
        let mut alice = VoicePipeline::new(PipelineConfig::default()).unwrap();
        let mut bob = VoicePipeline::new(PipelineConfig::default()).unwrap();
        let voice = tone(440.0, 50);
        let mut speaker = vec![0.0f32; STEREO_FRAME];
        for (i, frame) in voice.chunks(FRAME_SAMPLES).enumerate() {
            let out = alice.capture(frame).unwrap().unwrap();
            let payload = if i == 20 {
                Bytes::from_static(&[0xff, 0xff, 0xff])
            } else {
                out.payload
            };
            let now = FRAME * i as u32;
            bob.receive("alice", 9, i as u16, out.sample as u32, now, payload);
            bob.playout(now + Duration::from_millis(30), &mut speaker);
            assert!(speaker.iter().all(|s| s.is_finite() && s.abs() <= 2.0));
        }
        assert_eq!(bob.voice_stats("alice").unwrap().decode_errors, 1);
        assert!(bob.voice_level("alice").unwrap() > 0.01);
        assert_eq!(bob.users().collect::<Vec<_>>(), ["alice"]);
        bob.remove_voice("alice");
        assert!(bob.voice_stats("alice").is_none());
    }

    #[test]
    fn mute_all_and_volume_reach_the_speakers() {
        let signal = tone(440.0, 100);
        let (loud, _) = call(
            &signal,
            3,
            0.0,
            Duration::ZERO,
            PipelineConfig::default(),
            None,
        );
        let mut alice = VoicePipeline::new(PipelineConfig::default()).unwrap();
        let mut bob = VoicePipeline::new(PipelineConfig::default()).unwrap();
        bob.set_position("alice", Vec3::new(2.0, 0.0, 0.0));
        bob.set_volume("alice", 0.5);
        let mut speaker = vec![0.0f32; STEREO_FRAME];
        let mut half = Vec::new();
        for (i, frame) in signal.chunks(FRAME_SAMPLES).enumerate() {
            let out = alice.capture(frame).unwrap().unwrap();
            let now = FRAME * i as u32;
            bob.receive(
                "alice",
                1,
                i as u16,
                out.sample as u32,
                now + Duration::from_millis(30),
                out.payload,
            );
            bob.playout(now + Duration::from_millis(5), &mut speaker);
            half.extend_from_slice(&speaker);
            if i == 80 {
                bob.set_muted_all(true);
            }
        }
        let ratio = rms(&half[40 * STEREO_FRAME..80 * STEREO_FRAME])
            / rms(&loud[40 * STEREO_FRAME..80 * STEREO_FRAME]);
        assert!((ratio - 0.5).abs() < 0.05, "half volume gave {ratio}");
        assert!(
            half[82 * STEREO_FRAME..].iter().all(|s| *s == 0.0),
            "mute all"
        );
    }
}
