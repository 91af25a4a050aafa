//! Voice figures for `cargo xtask bench`: the spatial mixer's CPU time per
//! remote voice per 20 ms frame, and the share of one core that 32 voices
//! take to be received (jitter buffer), decoded (Opus), spatialized and
//! mixed, as the voice pipeline does it. CPU time is the thread's own.

use std::time::Duration;

use bytes::Bytes;
use cpu_time::ThreadTime;
use glam::{Quat, Vec3};
use roomscale_app::voice::codec::{Encoder, EncoderConfig, FRAME_SAMPLES, SAMPLE_RATE};
use roomscale_app::voice::devices::STEREO_FRAME;
use roomscale_app::voice::mixer::{HeadPose, SpatialVoice};
use roomscale_app::voice::pipeline::{PipelineConfig, VoicePipeline};
use roomscale_app::voice::processing::ProcessingConfig;

const VOICES: usize = 32;
const FRAMES: usize = 500;
const FRAME: Duration = Duration::from_millis(20);

fn main() {
    println!("voice (48 kHz, 20 ms frames, {VOICES} remote voices moving around the listener):");
    mixer();
    receive_side(
        ProcessingConfig::OFF,
        "decoded (Opus), spatialized and mixed",
    );
    receive_side(
        ProcessingConfig::default(),
        "the same, plus the echo canceller's view of the speakers",
    );
}

/// Where voice `v` stands in frame `frame`: circling the listener at 1 to 8 m.
fn position(v: usize, frame: usize) -> Vec3 {
    let radius = 1.0 + (v % 8) as f32;
    let angle = v as f32 * 0.7 + frame as f32 * 0.01 * (1.0 + v as f32 * 0.1);
    Vec3::new(
        radius * angle.sin(),
        1.6 + 0.2 * (v % 3) as f32,
        -radius * angle.cos(),
    )
}

fn listener(frame: usize) -> HeadPose {
    HeadPose {
        position: Vec3::new(0.0, 1.6, 0.0),
        orientation: Quat::from_rotation_y(frame as f32 * 0.005),
    }
}

/// A voice-like test signal per speaker: pulses through two formants at a
/// pitch of its own, in syllables.
fn speech(v: usize, frames: usize) -> Vec<f32> {
    let rate = SAMPLE_RATE as f32;
    let pitch = 110.0 + 7.0 * v as f32;
    let (mut s1, mut v1, mut s2, mut v2, mut phase) = (0.0f32, 0.0f32, 0.0f32, 0.0f32, 0.0f32);
    (0..frames * FRAME_SAMPLES)
        .map(|n| {
            let t = n as f32 / rate;
            phase += pitch / rate;
            let pulse = if phase.fract() < pitch / rate {
                1.0
            } else {
                0.0
            };
            for (s, velocity, f) in [(&mut s1, &mut v1, 600.0f32), (&mut s2, &mut v2, 1700.0)] {
                let w = std::f32::consts::TAU * f / rate;
                *velocity += w * (pulse - *s * w) - 0.03 * *velocity;
                *s += *velocity;
            }
            0.05 * (s1 + 0.5 * s2) * (std::f32::consts::TAU * 3.0 * t).sin().abs()
        })
        .collect()
}

fn mixer() {
    let signals: Vec<Vec<f32>> = (0..VOICES).map(|v| speech(v, 50)).collect();
    let mut voices: Vec<SpatialVoice> = (0..VOICES).map(|_| SpatialVoice::default()).collect();
    let mut out = vec![0.0f32; STEREO_FRAME];
    let start = ThreadTime::now();
    for frame in 0..FRAMES {
        out.fill(0.0);
        let pose = listener(frame);
        for (v, voice) in voices.iter_mut().enumerate() {
            let at = (frame % 50) * FRAME_SAMPLES;
            let input = &signals[v][at..at + FRAME_SAMPLES];
            voice.render(Some(input), &pose, position(v, frame), 1.0, &mut out);
        }
        std::hint::black_box(&out);
    }
    let per_voice = start.elapsed().as_secs_f64() * 1000.0 / (FRAMES * VOICES) as f64;
    println!(
        "  spatial mixer: {per_voice:.4} ms CPU per remote voice per 20 ms frame (target <= 0.1 ms)"
    );
}

fn receive_side(processing: ProcessingConfig, what: &str) {
    // Each speaker's packets, encoded beforehand (the sender's work is not
    // the listener's).
    let packets: Vec<Vec<Bytes>> = (0..VOICES)
        .map(|v| {
            let mut encoder = Encoder::new(EncoderConfig {
                dtx: false,
                ..EncoderConfig::default()
            })
            .expect("an Opus encoder");
            speech(v, FRAMES)
                .chunks(FRAME_SAMPLES)
                .map(|frame| {
                    Bytes::copy_from_slice(encoder.encode(frame).expect("encoding").expect("sent"))
                })
                .collect()
        })
        .collect();
    let users: Vec<String> = (0..VOICES).map(|v| format!("user-{v}")).collect();
    let mut pipeline = VoicePipeline::new(PipelineConfig {
        processing,
        ..PipelineConfig::default()
    })
    .expect("a voice pipeline");
    let mut out = vec![0.0f32; STEREO_FRAME];
    // By frame, then by speaker.
    let packets: Vec<Vec<Bytes>> = (0..FRAMES)
        .map(|frame| packets.iter().map(|p| p[frame].clone()).collect())
        .collect();
    let start = ThreadTime::now();
    for (frame, sent) in packets.iter().enumerate() {
        let now = FRAME * frame as u32;
        pipeline.set_listener(listener(frame));
        for ((v, user), packet) in users.iter().enumerate().zip(sent) {
            pipeline.set_position(user, position(v, frame));
            pipeline.receive(
                user,
                v as u32,
                frame as u16,
                (frame * FRAME_SAMPLES) as u32,
                now,
                packet.clone(),
            );
        }
        pipeline.playout(now + Duration::from_millis(30), &mut out);
        std::hint::black_box(&out);
    }
    let cpu = start.elapsed();
    let share = cpu.as_secs_f64() / (FRAME * FRAMES as u32).as_secs_f64() * 100.0;
    let decoded = users
        .iter()
        .filter_map(|u| pipeline.voice_stats(u))
        .map(|s| s.jitter.received)
        .sum::<u64>();
    println!(
        "  {VOICES} voices {what}: {share:.1} % of one core ({:.3} ms CPU per 20 ms; {decoded} packets; target < 10 %)",
        cpu.as_secs_f64() * 1000.0 / FRAMES as f64
    );
}
