//! The spatial mixer: every remote voice placed at its speaker's head,
//! relative to the listener's head, mixed to stereo.
//!
//! Distance: exactly the browser's `PannerNode` "inverse" model with
//! DESIGN.md's parameters ([`distance_gain`]), so a voice sounds equally far
//! in every client.
//!
//! Direction: a spherical-head model (Brown & Duda, "A structural model for
//! binaural sound synthesis", 1998), computed here, so no measured HRIR set
//! has to be shipped: per ear, the interaural time difference as a fractional
//! delay (Woodworth's formula for a sphere of radius [`HEAD_RADIUS`]) and the
//! head shadow as a one-pole, one-zero filter whose high-frequency gain goes
//! from +6 dB facing the source to −20 dB behind the head. At voice
//! frequencies a sphere casts little shadow (under 2 dB at 440 Hz), so on
//! desktop speakers, where crosstalk blurs the time difference, voices would
//! sound almost centred; measured heads (torso, pinnae) and the browser's
//! HRTF panner show more. A broadband level difference of up to
//! [`BROADBAND_ILD_DB`], power-preserving, brings the native client to where
//! the browser's panner is.
//!
//! Every parameter moves linearly across each 20 ms frame from the last
//! frame's value, so moving voices do not click.

use std::collections::HashMap;

use glam::{Quat, Vec3};

use super::codec::{FRAME_SAMPLES, SAMPLE_RATE};

/// WebAudio `refDistance` (metres): nearer voices are not louder.
pub const REF_DISTANCE: f32 = 1.0;
/// WebAudio `rolloffFactor`.
pub const ROLLOFF: f32 = 1.0;
/// WebAudio `maxDistance` (metres): farther voices are not quieter.
pub const MAX_DISTANCE: f32 = 25.0;
/// Radius of the model head (metres), the average adult's.
pub const HEAD_RADIUS: f32 = 0.0875;
/// Speed of sound (m/s).
pub const SPEED_OF_SOUND: f32 = 343.0;
/// The level difference between the ears, on top of the head shadow, for a
/// voice straight to one side.
pub const BROADBAND_ILD_DB: f32 = 6.0;
/// Ears sit a little behind the head's centre line (Brown & Duda: ±100°).
const EAR_AZIMUTH_DEGREES: f32 = 100.0;
/// Head-shadow filter: high-frequency gain at the ear's far side, and the
/// incidence angle where the shadow is deepest (Brown & Duda).
const ALPHA_MIN: f32 = 0.1;
const THETA_MIN_DEGREES: f32 = 150.0;
/// Samples of input each voice keeps for the fractional delay: the longest
/// delay the model gives, (a/c)(1 + π/2) ≈ 0.66 ms ≈ 32 samples, plus the
/// interpolator's reach.
const HISTORY: usize = 40;

/// The inverse distance model of WebAudio's `PannerNode` with DESIGN.md's
/// parameters: `ref / (ref + rolloff * (d - ref))` with `d` clamped to
/// `[ref, max]`.
pub fn distance_gain(distance: f32) -> f32 {
    let d = distance.clamp(REF_DISTANCE, MAX_DISTANCE);
    REF_DISTANCE / (REF_DISTANCE + ROLLOFF * (d - REF_DISTANCE))
}

/// A head: position and orientation in room coordinates (metres,
/// right-handed, +Y up, −Z forward, as OpenXR and WebXR).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeadPose {
    pub position: Vec3,
    pub orientation: Quat,
}

impl Default for HeadPose {
    fn default() -> Self {
        HeadPose {
            position: Vec3::ZERO,
            orientation: Quat::IDENTITY,
        }
    }
}

/// What one voice is rendered with in one frame: gains, delays (samples) and
/// head-shadow factors for the left and right ear.
#[derive(Debug, Clone, Copy, PartialEq)]
struct EarParams {
    gain: [f32; 2],
    delay: [f32; 2],
    alpha: [f32; 2],
}

impl EarParams {
    /// For a source at `source` heard by `listener`, scaled by `volume`.
    fn new(listener: &HeadPose, source: Vec3, volume: f32) -> EarParams {
        let offset = listener.orientation.inverse() * (source - listener.position);
        let distance = offset.length();
        // A voice at the listener's own head has no direction: put it ahead.
        let direction = if distance > 1e-4 {
            offset / distance
        } else {
            Vec3::NEG_Z
        };
        let gain = distance_gain(distance) * volume;
        // Broadband level difference by how far to the side (+1 right).
        let lateral = direction.x;
        let right = 10f32.powf(BROADBAND_ILD_DB * lateral / 40.0);
        let left = 1.0 / right;
        let norm = ((left * left + right * right) / 2.0).sqrt();
        let level = [left / norm, right / norm];
        let mut params = EarParams {
            gain: [0.0; 2],
            delay: [0.0; 2],
            alpha: [0.0; 2],
        };
        let ear_azimuth = EAR_AZIMUTH_DEGREES.to_radians();
        let radius_time = HEAD_RADIUS / SPEED_OF_SOUND * SAMPLE_RATE as f32;
        for (ear, side) in [(0, -1.0f32), (1, 1.0)] {
            let ear_direction = Vec3::new(side * ear_azimuth.sin(), 0.0, -ear_azimuth.cos());
            let theta = direction.dot(ear_direction).clamp(-1.0, 1.0).acos();
            // Brown & Duda's head shadow: alpha 2 facing the source (+6 dB at
            // high frequencies), ALPHA_MIN at THETA_MIN.
            params.alpha[ear] = (1.0 + ALPHA_MIN / 2.0)
                + (1.0 - ALPHA_MIN / 2.0)
                    * (theta / THETA_MIN_DEGREES.to_radians() * std::f32::consts::PI).cos();
            // Woodworth: the path to the ear, straight on the near side,
            // around the sphere on the far side; offset so it is never below
            // the two samples the interpolator reads ahead.
            let path = if theta < std::f32::consts::FRAC_PI_2 {
                -theta.cos()
            } else {
                theta - std::f32::consts::FRAC_PI_2
            };
            params.delay[ear] = radius_time * (1.0 + path) + 2.0;
            params.gain[ear] = gain * level[ear];
        }
        params
    }
}

/// One voice's rendering state: its delay line and filters, and the
/// parameters of the last frame (where this frame's ramps start).
#[derive(Debug, Clone)]
pub struct SpatialVoice {
    /// The last [`HISTORY`] input samples, then room for one frame.
    buffer: Vec<f32>,
    /// Head-shadow filter state per ear: (last input, last output).
    filter: [(f32, f32); 2],
    last: Option<EarParams>,
    /// Whether the delay line and filters hold nothing but silence.
    quiet: bool,
}

impl Default for SpatialVoice {
    fn default() -> Self {
        SpatialVoice {
            buffer: vec![0.0; HISTORY + FRAME_SAMPLES],
            filter: [(0.0, 0.0); 2],
            last: None,
            quiet: true,
        }
    }
}

impl SpatialVoice {
    /// Renders one mono frame (`input`, [`FRAME_SAMPLES`] samples; `None` for
    /// silence) of a voice at `source`, heard by `listener` at `volume`, and
    /// adds it to `out` (stereo interleaved, 2 × [`FRAME_SAMPLES`]).
    pub fn render(
        &mut self,
        input: Option<&[f32]>,
        listener: &HeadPose,
        source: Vec3,
        volume: f32,
        out: &mut [f32],
    ) {
        assert_eq!(
            out.len(),
            2 * FRAME_SAMPLES,
            "the mixer writes one stereo frame"
        );
        let target = EarParams::new(listener, source, volume);
        let start = self.last.unwrap_or(target);
        self.last = Some(target);
        match input {
            Some(input) => {
                assert_eq!(input.len(), FRAME_SAMPLES, "voices are 20 ms mono frames");
                self.buffer[HISTORY..].copy_from_slice(input);
                self.quiet = false;
            }
            // Silence: flush what is still in the delay line and filters once.
            None if self.quiet => return,
            None => {
                self.buffer[HISTORY..].fill(0.0);
                self.quiet = true;
            }
        }
        let beta = 2.0 * SPEED_OF_SOUND / HEAD_RADIUS;
        let k = 2.0 * SAMPLE_RATE as f32;
        let a1 = (beta - k) / (k + beta);
        let step = 1.0 / FRAME_SAMPLES as f32;
        for ear in 0..2 {
            let (mut x1, mut y1) = self.filter[ear];
            let (d0, dd) = (
                start.delay[ear],
                (target.delay[ear] - start.delay[ear]) * step,
            );
            let (g0, dg) = (start.gain[ear], (target.gain[ear] - start.gain[ear]) * step);
            let (al0, dal) = (
                start.alpha[ear],
                (target.alpha[ear] - start.alpha[ear]) * step,
            );
            for i in 0..FRAME_SAMPLES {
                let t = i as f32;
                let delay = d0 + dd * t;
                let x = fractional(&self.buffer, (HISTORY + i) as f32 - delay);
                // Bilinear transform of (alpha s + beta) / (s + beta).
                let alpha = al0 + dal * t;
                let b0 = (alpha * k + beta) / (k + beta);
                let b1 = (beta - alpha * k) / (k + beta);
                let y = b0 * x + b1 * x1 - a1 * y1;
                x1 = x;
                y1 = y;
                out[2 * i + ear] += (g0 + dg * t) * y;
            }
            self.filter[ear] = (x1, y1);
        }
        self.buffer.copy_within(FRAME_SAMPLES.., 0);
        if self.quiet && self.filter.iter().any(|(_, y)| y.abs() > 1e-9) {
            // The filters ring a little longer; one more silent frame flushes them.
            self.quiet = false;
            self.buffer[HISTORY..].fill(0.0);
        }
    }
}

/// Cubic (Catmull-Rom) interpolation of `buffer` at fractional index `at`.
fn fractional(buffer: &[f32], at: f32) -> f32 {
    let i = at.floor();
    let f = at - i;
    let i = i as usize;
    let (p0, p1, p2, p3) = (buffer[i - 1], buffer[i], buffer[i + 1], buffer[i + 2]);
    p1 + 0.5
        * f
        * (p2 - p0 + f * (2.0 * p0 - 5.0 * p1 + 4.0 * p2 - p3 + f * (3.0 * (p1 - p2) + p3 - p0)))
}

/// Every remote voice of a room, by user id, mixed for one listener.
#[derive(Debug, Default)]
pub struct Mixer {
    listener: HeadPose,
    voices: HashMap<String, MixerVoice>,
    muted: bool,
    /// Last frame's master gain (0 or 1), so muting fades over one frame.
    master: f32,
}

#[derive(Debug, Default)]
struct MixerVoice {
    renderer: SpatialVoice,
    position: Vec3,
    volume: f32,
    /// The frame to play next, when `has_frame`.
    frame: Vec<f32>,
    has_frame: bool,
}

impl Mixer {
    pub fn new() -> Mixer {
        Mixer {
            master: 1.0,
            ..Mixer::default()
        }
    }

    /// The listener's head (the desktop camera or the XR head pose).
    pub fn set_listener(&mut self, pose: HeadPose) {
        self.listener = pose;
    }

    /// Where `user`'s head is now (the interpolated avatar head).
    pub fn set_position(&mut self, user: &str, position: Vec3) {
        self.voice(user).position = position;
    }

    /// Per-person volume: 1 is as sent, 0 silences that person.
    pub fn set_volume(&mut self, user: &str, volume: f32) {
        self.voice(user).volume = volume.max(0.0);
    }

    pub fn volume(&self, user: &str) -> Option<f32> {
        self.voices.get(user).map(|v| v.volume)
    }

    /// Mute all: the mix is silent while set (voices keep being decoded).
    pub fn set_muted(&mut self, muted: bool) {
        self.muted = muted;
    }

    pub fn is_muted(&self) -> bool {
        self.muted
    }

    /// Forgets a voice (its speaker left voice).
    pub fn remove(&mut self, user: &str) {
        self.voices.remove(user);
    }

    /// Hands over `user`'s next decoded frame ([`FRAME_SAMPLES`] mono samples).
    pub fn push_frame(&mut self, user: &str, frame: &[f32]) {
        let voice = self.voice(user);
        voice.frame.clear();
        voice.frame.extend_from_slice(frame);
        voice.has_frame = true;
    }

    /// Mixes the frames pushed since the last call into `out` (stereo
    /// interleaved f32, 2 × [`FRAME_SAMPLES`], overwritten). A voice that
    /// pushed nothing is silent this frame.
    pub fn mix(&mut self, out: &mut [f32]) {
        out.fill(0.0);
        for voice in self.voices.values_mut() {
            let frame = voice.has_frame.then_some(&voice.frame[..]);
            voice
                .renderer
                .render(frame, &self.listener, voice.position, voice.volume, out);
            voice.has_frame = false;
        }
        let master = if self.muted { 0.0 } else { 1.0 };
        if master != self.master || master == 0.0 {
            let step = (master - self.master) / FRAME_SAMPLES as f32;
            for (i, pair) in out.chunks_exact_mut(2).enumerate() {
                let gain = self.master + step * i as f32;
                pair[0] *= gain;
                pair[1] *= gain;
            }
            self.master = master;
        }
    }

    fn voice(&mut self, user: &str) -> &mut MixerVoice {
        if !self.voices.contains_key(user) {
            self.voices.insert(
                user.to_owned(),
                MixerVoice {
                    volume: 1.0,
                    ..MixerVoice::default()
                },
            );
        }
        self.voices.get_mut(user).expect("just inserted")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: f32 = SAMPLE_RATE as f32;

    fn tone(frequency: f32, frames: usize) -> Vec<f32> {
        (0..frames * FRAME_SAMPLES)
            .map(|n| 0.5 * (std::f32::consts::TAU * frequency * n as f32 / RATE).sin())
            .collect()
    }

    /// Deterministic white noise in [-0.5, 0.5].
    fn noise(frames: usize) -> Vec<f32> {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        (0..frames * FRAME_SAMPLES)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect()
    }

    /// Renders `signal` from `source` for `listener`; stereo interleaved.
    fn render(signal: &[f32], listener: HeadPose, source: impl Fn(usize) -> Vec3) -> Vec<f32> {
        let mut voice = SpatialVoice::default();
        let mut out = Vec::with_capacity(signal.len() * 2);
        let mut frame = vec![0.0; 2 * FRAME_SAMPLES];
        for (i, input) in signal.chunks(FRAME_SAMPLES).enumerate() {
            frame.fill(0.0);
            voice.render(Some(input), &listener, source(i), 1.0, &mut frame);
            out.extend_from_slice(&frame);
        }
        out
    }

    /// Left and right RMS after the first 50 ms, as the browser's probe
    /// (`renderSpatialProbe` in server/web/src/room/voice.ts) measures.
    fn rms(stereo: &[f32]) -> (f32, f32) {
        let from = (RATE * 0.05) as usize;
        let frames = &stereo[2 * from..];
        let n = frames.len() as f32 / 2.0;
        let sum = |ear: usize| {
            frames
                .iter()
                .skip(ear)
                .step_by(2)
                .map(|s| s * s)
                .sum::<f32>()
        };
        ((sum(0) / n).sqrt(), (sum(1) / n).sqrt())
    }

    /// The browser's probe: a 440 Hz voice for 0.5 s at `position`, the
    /// listener at the origin looking down −Z.
    fn probe(position: Vec3) -> (f32, f32) {
        rms(&render(&tone(440.0, 25), HeadPose::default(), |_| position))
    }

    fn db(x: f32) -> f32 {
        20.0 * x.log10()
    }

    #[test]
    fn distance_gain_is_the_inverse_model_of_design_md() {
        for (distance, gain) in [
            (0.0, 1.0),
            (0.5, 1.0),
            (1.0, 1.0),
            (2.0, 0.5),
            (4.0, 0.25),
            (10.0, 0.1),
            (25.0, 0.04),
            (100.0, 0.04),
        ] {
            assert!(
                (distance_gain(distance) - gain).abs() < 1e-6,
                "at {distance} m"
            );
        }
    }

    #[test]
    fn a_voice_2_m_to_the_right_is_at_least_6_db_louder_on_the_right() {
        let (left, right) = probe(Vec3::new(2.0, 0.0, 0.0));
        assert!(
            db(right / left) >= 6.0,
            "right {right}, left {left}: {} dB",
            db(right / left)
        );
        // The browser's own assertion: right-channel energy at least twice the left's.
        assert!(right * right >= 2.0 * left * left);
        // And the mirror image.
        let (left, right) = probe(Vec3::new(-2.0, 0.0, 0.0));
        assert!(db(left / right) >= 6.0);
        // Speech has more high frequencies, where the head shadows more.
        let (left, right) = rms(&render(&noise(25), HeadPose::default(), |_| {
            Vec3::new(2.0, 0.0, 0.0)
        }));
        assert!(db(right / left) >= 9.0, "noise: {} dB", db(right / left));
    }

    #[test]
    fn levels_at_1_2_and_4_m_follow_the_inverse_law_within_1_db() {
        let level = |d: f32| {
            let (left, right) = probe(Vec3::new(0.0, 0.0, -d));
            db(left.hypot(right))
        };
        let at_one = level(1.0);
        for d in [2.0f32, 4.0] {
            let measured = level(d) - at_one;
            let expected = db(1.0 / d);
            assert!(
                (measured - expected).abs() <= 1.0,
                "at {d} m: {measured:.2} dB, the inverse model says {expected:.2} dB"
            );
        }
        // Beyond 25 m a voice gets no quieter.
        assert!((level(25.0) - level(40.0)).abs() < 0.01);
    }

    #[test]
    fn a_voice_ahead_or_behind_or_above_is_balanced() {
        for position in [
            Vec3::new(0.0, 0.0, -2.0),
            Vec3::new(0.0, 0.0, 2.0),
            Vec3::new(0.0, 3.0, 0.0),
            Vec3::ZERO,
        ] {
            let (left, right) = probe(position);
            assert!(
                db(right / left).abs() < 0.1,
                "at {position}: {} dB",
                db(right / left)
            );
        }
    }

    #[test]
    fn the_voice_is_placed_relative_to_the_listeners_head() {
        // Turned 90° to the left (facing −X), a voice ahead in the room is on the right.
        let turned = HeadPose {
            position: Vec3::ZERO,
            orientation: Quat::from_rotation_y(90f32.to_radians()),
        };
        let (left, right) = rms(&render(&tone(440.0, 25), turned, |_| {
            Vec3::new(0.0, 0.0, -2.0)
        }));
        assert!(db(right / left) >= 6.0);
        // Moved: a listener at (5, 1.6, 5) hears a voice at (3, 1.6, 5) on the left.
        let moved = HeadPose {
            position: Vec3::new(5.0, 1.6, 5.0),
            orientation: Quat::IDENTITY,
        };
        let (left, right) = rms(&render(&tone(440.0, 25), moved, |_| {
            Vec3::new(3.0, 1.6, 5.0)
        }));
        assert!(db(left / right) >= 6.0);
        assert!(
            (db(left.hypot(right))
                - probe(Vec3::new(-2.0, 0.0, 0.0))
                    .0
                    .hypot(probe(Vec3::new(-2.0, 0.0, 0.0)).1)
                    .log10()
                    * 20.0)
                .abs()
                < 0.01
        );
    }

    #[test]
    fn the_far_ear_hears_a_side_voice_later_by_the_heads_width() {
        let stereo = render(&noise(10), HeadPose::default(), |_| {
            Vec3::new(2.0, 0.0, 0.0)
        });
        let (left, right): (Vec<f32>, Vec<f32>) = stereo.chunks(2).map(|p| (p[0], p[1])).unzip();
        let correlation = |lag: usize| -> f32 {
            right[100..8000]
                .iter()
                .zip(&left[100 + lag..])
                .map(|(r, l)| r * l)
                .sum()
        };
        let lag = (0..60)
            .max_by(|a, b| correlation(*a).total_cmp(&correlation(*b)))
            .unwrap();
        // Woodworth for 90° (ears at ±100°): about 0.6 ms, 27–30 samples.
        assert!((24..=33).contains(&lag), "interaural delay {lag} samples");
    }

    #[test]
    fn a_moving_voice_does_not_click() {
        let signal = tone(440.0, 100);
        let max_step = |stereo: &[f32]| {
            stereo
                .chunks(2)
                .collect::<Vec<_>>()
                .windows(2)
                .map(|w| (w[1][0] - w[0][0]).abs().max((w[1][1] - w[0][1]).abs()))
                .fold(0.0f32, f32::max)
        };
        let still = max_step(&render(&signal, HeadPose::default(), |_| {
            Vec3::new(1.0, 0.0, 0.0)
        }));
        // Circling the head at 1 m once a second.
        let circling = render(&signal, HeadPose::default(), |frame| {
            let angle = frame as f32 * 0.02 * std::f32::consts::TAU;
            Vec3::new(angle.sin(), 0.0, -angle.cos())
        });
        assert!(
            max_step(&circling) <= 1.1 * still,
            "circling: {} vs still {still}",
            max_step(&circling)
        );
        // Jumping from 1 m left to 1 m right and back every frame.
        let jumping = render(&signal, HeadPose::default(), |frame| {
            Vec3::new(if frame % 2 == 0 { -1.0 } else { 1.0 }, 0.0, 0.0)
        });
        assert!(
            max_step(&jumping) <= 1.5 * still,
            "jumping: {} vs still {still}",
            max_step(&jumping)
        );
        // From 25 m to 1 m in one frame: the gain ramps over the frame.
        let approaching = render(&signal, HeadPose::default(), |frame| {
            Vec3::new(0.0, 0.0, if frame < 50 { -25.0 } else { -1.0 })
        });
        assert!(
            max_step(&approaching) <= 1.5 * still,
            "approaching: {}",
            max_step(&approaching)
        );
    }

    #[test]
    fn volume_mute_all_and_silence() {
        let signal = tone(440.0, 10);
        let run = |setup: &dyn Fn(&mut Mixer), frames: usize| -> Vec<f32> {
            let mut mixer = Mixer::new();
            mixer.set_position("ada", Vec3::new(0.0, 0.0, -1.0));
            setup(&mut mixer);
            let mut out = vec![0.0; 2 * FRAME_SAMPLES];
            let mut all = Vec::new();
            for input in signal.chunks(FRAME_SAMPLES).take(frames) {
                mixer.push_frame("ada", input);
                mixer.mix(&mut out);
                all.extend_from_slice(&out);
            }
            all
        };
        let full = rms(&run(&|_| {}, 10));
        let half = rms(&run(&|m| m.set_volume("ada", 0.5), 10));
        assert!((db(half.0 / full.0) + 6.02).abs() < 0.05);
        let silent = run(&|m| m.set_volume("ada", 0.0), 10);
        assert!(silent.iter().all(|s| *s == 0.0));
        let muted = run(&|m| m.set_muted(true), 10);
        assert!(
            muted[2 * FRAME_SAMPLES..].iter().all(|s| *s == 0.0),
            "silent after a one-frame fade"
        );
        // Unmuting fades in over a frame, without a jump.
        let mut mixer = Mixer::new();
        mixer.set_position("ada", Vec3::new(0.0, 0.0, -1.0));
        mixer.set_muted(true);
        let mut out = vec![0.0; 2 * FRAME_SAMPLES];
        for (i, input) in signal.chunks(FRAME_SAMPLES).enumerate() {
            if i == 5 {
                mixer.set_muted(false);
            }
            mixer.push_frame("ada", input);
            mixer.mix(&mut out);
            if i == 5 {
                assert!(out[0].abs() < 1e-6 && out[out.len() - 2].abs() > 0.01);
            }
        }
        // A voice that stops pushing frames goes silent after its tail.
        let mut mixer = Mixer::new();
        mixer.set_position("ada", Vec3::new(2.0, 0.0, 0.0));
        mixer.push_frame("ada", &signal[..FRAME_SAMPLES]);
        mixer.mix(&mut out);
        for _ in 0..3 {
            mixer.mix(&mut out);
        }
        assert!(out.iter().all(|s| s.abs() < 1e-6));
        assert!(!mixer.is_muted());
        mixer.remove("ada");
        assert_eq!(mixer.volume("ada"), None);
    }

    #[test]
    fn the_mix_is_the_sum_of_the_voices() {
        let (ada, bob) = (tone(440.0, 10), noise(10));
        let mut mixer = Mixer::new();
        mixer.set_position("ada", Vec3::new(-2.0, 0.0, 0.0));
        mixer.set_position("bob", Vec3::new(1.0, 0.5, 3.0));
        let mut out = vec![0.0; 2 * FRAME_SAMPLES];
        let mut mixed = Vec::new();
        for (a, b) in ada.chunks(FRAME_SAMPLES).zip(bob.chunks(FRAME_SAMPLES)) {
            mixer.push_frame("ada", a);
            mixer.push_frame("bob", b);
            mixer.mix(&mut out);
            mixed.extend_from_slice(&out);
        }
        let alone_ada = render(&ada, HeadPose::default(), |_| Vec3::new(-2.0, 0.0, 0.0));
        let alone_bob = render(&bob, HeadPose::default(), |_| Vec3::new(1.0, 0.5, 3.0));
        for (i, m) in mixed.iter().enumerate() {
            assert!((m - alone_ada[i] - alone_bob[i]).abs() < 1e-6, "sample {i}");
        }
    }
}
