//! Remote avatars move smoothly although their poses arrive in 30 Hz batches
//! with network jitter: each receiver shows every avatar about [`DEFAULT_DELAY`]
//! in the past, interpolating between the two batches around that moment.
//!
//! Plain logic: time is an input (seconds on the receiver's clock), so tests run
//! faster than real time with any jitter they like.

use std::collections::VecDeque;

use roomscale_protocol::pose::{AvatarPose, Joint};

/// How far behind real time remote avatars are shown, in seconds.
pub const DEFAULT_DELAY: f64 = 0.1;
/// Samples older than this behind the newest are forgotten, in seconds.
const HISTORY: f64 = 1.0;

/// One remote avatar's recent poses on the sender's timeline.
#[derive(Debug, Clone)]
pub struct AvatarTrack {
    delay: f64,
    /// (server time in seconds, pose), oldest first.
    samples: VecDeque<(f64, AvatarPose)>,
    /// Smallest (receive time - server time) seen: the clock offset of the
    /// fastest delivery, which jitter can only make larger.
    offset: Option<f64>,
}

impl Default for AvatarTrack {
    fn default() -> Self {
        AvatarTrack::new(DEFAULT_DELAY)
    }
}

impl AvatarTrack {
    pub fn new(delay: f64) -> AvatarTrack {
        AvatarTrack {
            delay,
            samples: VecDeque::new(),
            offset: None,
        }
    }

    /// Records a pose stamped `server_time` (batch header, seconds) that arrived
    /// at `receive_time` (receiver clock, seconds).
    pub fn push(&mut self, receive_time: f64, server_time: f64, pose: AvatarPose) {
        let offset = receive_time - server_time;
        self.offset = Some(self.offset.map_or(offset, |o| o.min(offset)));
        // Batches can arrive out of order over a reconnect; keep the timeline sorted.
        let at = self.samples.partition_point(|(t, _)| *t <= server_time);
        if at > 0 && self.samples[at - 1].0 == server_time {
            self.samples[at - 1].1 = pose;
        } else {
            self.samples.insert(at, (server_time, pose));
        }
        let newest = self.samples.back().map_or(server_time, |(t, _)| *t);
        while self.samples.len() > 2 && self.samples[1].0 < newest - HISTORY {
            self.samples.pop_front();
        }
    }

    /// The pose to show at `now` (receiver clock), or `None` before the first sample.
    pub fn sample(&self, now: f64) -> Option<AvatarPose> {
        let offset = self.offset?;
        let target = now - offset - self.delay;
        let after = self.samples.partition_point(|(t, _)| *t <= target);
        if after == 0 {
            return self.samples.front().map(|(_, p)| *p);
        }
        if after == self.samples.len() {
            return self.samples.back().map(|(_, p)| *p);
        }
        let (t0, a) = &self.samples[after - 1];
        let (t1, b) = &self.samples[after];
        let f = ((target - t0) / (t1 - t0)) as f32;
        Some(AvatarPose {
            head: lerp_joint(&a.head, &b.head, f),
            left: lerp_joint(&a.left, &b.left, f),
            right: lerp_joint(&a.right, &b.right, f),
            // Tracking flags switch at the later sample, never half-way.
            flags: if f < 1.0 { a.flags } else { b.flags },
        })
    }
}

fn lerp_joint(a: &Joint, b: &Joint, f: f32) -> Joint {
    let mut position = [0.0; 3];
    for (i, p) in position.iter_mut().enumerate() {
        *p = a.position[i] + (b.position[i] - a.position[i]) * f;
    }
    Joint {
        position,
        orientation: nlerp(a.orientation, b.orientation, f),
    }
}

/// Normalised linear interpolation along the shorter arc; between 30 Hz
/// samples the angles are small, where it matches slerp closely.
fn nlerp(a: [f32; 4], b: [f32; 4], f: f32) -> [f32; 4] {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let sign = if dot < 0.0 { -1.0 } else { 1.0 };
    let mut q = [0.0; 4];
    for i in 0..4 {
        q[i] = a[i] * (1.0 - f) + b[i] * sign * f;
    }
    let norm = q.iter().map(|c| c * c).sum::<f32>().sqrt();
    if norm < 1e-6 { a } else { q.map(|c| c / norm) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roomscale_protocol::pose::angle_between;

    /// A head walking along -Z at 1 m/s while turning at 1 rad/s.
    fn truth(t: f64) -> AvatarPose {
        let angle = t as f32;
        let mut pose = AvatarPose::default();
        pose.head.position = [0.0, 1.6, -(t as f32)];
        pose.head.orientation = [0.0, (angle / 2.0).sin(), 0.0, (angle / 2.0).cos()];
        pose
    }

    /// Deterministic jitter in [0, max) seconds.
    fn jitter(i: u64, max: f64) -> f64 {
        let x = (i
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407)
            >> 33) as f64;
        (x / (1u64 << 31) as f64) * max
    }

    #[test]
    fn jittered_30hz_samples_play_back_smoothly_100ms_late() {
        let mut track = AvatarTrack::default();
        let latency = 0.040;
        let mut worst_position = 0.0f32;
        let mut worst_angle = 0.0f32;
        let mut next_sample = 0u64;
        // Render at 90 Hz for 3 s while 30 Hz samples arrive with up to 50 ms jitter.
        for frame in 0..270u64 {
            let now = frame as f64 / 90.0;
            while {
                let sent = next_sample as f64 / 30.0;
                sent + latency + jitter(next_sample, 0.05) <= now
            } {
                let sent = next_sample as f64 / 30.0;
                track.push(
                    sent + latency + jitter(next_sample, 0.05),
                    sent,
                    truth(sent),
                );
                next_sample += 1;
            }
            if now < 0.5 {
                continue; // warming up
            }
            let shown = track.sample(now).expect("samples arrived");
            // The offset estimate is the fastest delivery (latency, no jitter),
            // so the avatar shows the truth DEFAULT_DELAY behind the sender.
            let expected = truth(now - latency - DEFAULT_DELAY);
            worst_position =
                worst_position.max((shown.head.position[2] - expected.head.position[2]).abs());
            worst_angle = worst_angle.max(angle_between(
                shown.head.orientation,
                expected.head.orientation,
            ));
        }
        assert!(worst_position < 0.005, "position off by {worst_position} m");
        assert!(worst_angle < 0.01, "orientation off by {worst_angle} rad");
    }

    #[test]
    fn holds_the_newest_pose_when_samples_stop() {
        let mut track = AvatarTrack::default();
        assert!(track.sample(0.0).is_none());
        track.push(1.0, 0.0, truth(0.0));
        track.push(1.033, 0.033, truth(0.033));
        let held = track.sample(10.0).unwrap();
        assert_eq!(held.head.position, truth(0.033).head.position);
    }

    #[test]
    fn out_of_order_samples_are_sorted_into_place() {
        let mut track = AvatarTrack::new(0.0);
        track.push(0.0, 0.0, truth(0.0));
        track.push(0.2, 0.2, truth(0.2));
        track.push(0.21, 0.1, truth(0.1));
        let mid = track.sample(0.15).unwrap();
        assert!(
            (mid.head.position[2] + 0.15).abs() < 1e-4,
            "{:?}",
            mid.head.position
        );
    }
}
