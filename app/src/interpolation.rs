//! Remote avatars move smoothly although their poses arrive in 30 Hz batches
//! with network jitter: each receiver shows every avatar about [`DEFAULT_DELAY`]
//! in the past, interpolating between the two batches around that moment.
//!
//! A track notices when the sender's clock restarted (a restarted room's pose
//! clock starts again at 0) and starts over from the first sample of the new
//! timeline; see [`AvatarTrack::push`]. Callers also [`AvatarTrack::reset`] (or
//! drop) every track on each join, when slots may have changed hands.
//!
//! Plain logic: time is an input (seconds on the receiver's clock), so tests run
//! faster than real time with any jitter they like. The browser's
//! `server/web/src/room/interpolation.ts` is the same logic; both are checked
//! against `protocol/vectors/interpolation.json`.

use std::collections::VecDeque;

use roomscale_protocol::pose::{AvatarPose, Joint};

/// How far behind real time remote avatars are shown, in seconds.
pub const DEFAULT_DELAY: f64 = 0.1;
/// Samples older than this behind the newest are forgotten, in seconds.
const HISTORY: f64 = 1.0;
/// A sample stamped before the newest one that arrived more than this much
/// later than the fastest delivery so far (seconds) belongs to a restarted
/// clock. Jitter never makes a stream go back in time, and a stream that
/// stalls and then delivers a late burst goes forward, so neither trips it.
const CLOCK_RESTART: f64 = 1.0;

/// A pose that can be shown between two samples of it.
pub trait Interpolate: Copy {
    /// The pose `f` (0..=1) of the way from `a` to `b`.
    fn interpolate(a: &Self, b: &Self, f: f32) -> Self;
}

impl Interpolate for AvatarPose {
    fn interpolate(a: &AvatarPose, b: &AvatarPose, f: f32) -> AvatarPose {
        AvatarPose {
            head: lerp_joint(&a.head, &b.head, f),
            left: lerp_joint(&a.left, &b.left, f),
            right: lerp_joint(&a.right, &b.right, f),
            // Tracking flags switch at the later sample, never half-way.
            flags: if f < 1.0 { a.flags } else { b.flags },
        }
    }
}

/// One remote avatar's recent poses on the sender's timeline.
pub type AvatarTrack = Track<AvatarPose>;

/// One remote stream's recent poses (an avatar's, or a held object's) on the
/// sender's timeline.
#[derive(Debug, Clone)]
pub struct Track<P> {
    delay: f64,
    /// (server time in seconds, pose), oldest first.
    samples: VecDeque<(f64, P)>,
    /// Smallest (receive time - server time) seen: the clock offset of the
    /// fastest delivery, which jitter can only make larger.
    offset: Option<f64>,
}

impl<P: Interpolate> Default for Track<P> {
    fn default() -> Self {
        Track::new(DEFAULT_DELAY)
    }
}

impl<P: Interpolate> Track<P> {
    pub fn new(delay: f64) -> Track<P> {
        Track {
            delay,
            samples: VecDeque::new(),
            offset: None,
        }
    }

    /// Records a pose stamped `server_time` (batch header, seconds) that arrived
    /// at `receive_time` (receiver clock, seconds).
    ///
    /// A sample stamped before the newest one yet delivered more than a second
    /// later than the fastest delivery so far cannot come from the timeline the
    /// track holds: the sender's clock restarted (a restarted room, or its
    /// 32-bit millisecond clock wrapping). The track then forgets its samples
    /// and offset and starts over from this sample. Any other sample, early,
    /// late or out of order, is sorted into the timeline.
    pub fn push(&mut self, receive_time: f64, server_time: f64, pose: P) {
        let offset = receive_time - server_time;
        if let (Some(fastest), Some((newest, _))) = (self.offset, self.samples.back())
            && server_time < *newest
            && offset - fastest > CLOCK_RESTART
        {
            self.reset();
        }
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

    /// Forgets every sample and the clock offset, as a new track would have.
    /// Callers do this on every (re)join: the room's clock may have restarted
    /// and the slot may now be someone else's.
    pub fn reset(&mut self) {
        self.samples.clear();
        self.offset = None;
    }

    /// The pose to show at `now` (receiver clock), or `None` before the first sample.
    pub fn sample(&self, now: f64) -> Option<P> {
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
        Some(P::interpolate(a, b, f))
    }

    /// Whether any sample arrived since the last reset.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
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
pub fn nlerp(a: [f32; 4], b: [f32; 4], f: f32) -> [f32; 4] {
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
    use roomscale_protocol::pose::{PoseFlags, angle_between};
    use serde_json::Value;

    /// Shared with the browser's tests (`server/web/test/interpolation.test.mjs`).
    const VECTORS: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../protocol/vectors/interpolation.json"
    ));

    /// The pose a vector's `value` stands for: head at [v, 1.6, -v] turned
    /// v/10 rad about +Y, hands at the identity.
    fn pose_of(value: f64, flags: u8) -> AvatarPose {
        let half = (value / 20.0) as f32;
        let mut pose = AvatarPose {
            flags: PoseFlags(flags),
            ..AvatarPose::default()
        };
        pose.head.position = [value as f32, 1.6, -value as f32];
        pose.head.orientation = [0.0, half.sin(), 0.0, half.cos()];
        pose
    }

    fn number(step: &Value, key: &str, case: &str) -> f64 {
        step[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{case}: {key} is not a number in {step}"))
    }

    /// Runs one vector case step by step.
    fn check(case: &Value) {
        let name = case["name"].as_str().expect("every case has a name");
        let mut track = AvatarTrack::new(number(case, "delay", name));
        for (i, step) in case["steps"].as_array().expect("steps").iter().enumerate() {
            let at = format!("{name}, step {i}");
            if let Some(push) = step.get("push") {
                let flags = push.get("flags").and_then(Value::as_u64).unwrap_or(0);
                track.push(
                    number(push, "receive", &at),
                    number(push, "server", &at),
                    pose_of(number(push, "value", &at), flags as u8),
                );
            } else if let Some(sample) = step.get("sample") {
                let shown = track.sample(number(sample, "now", &at));
                let Some(value) = sample["expect"].as_f64() else {
                    assert!(shown.is_none(), "{at}: expected no pose, got {shown:?}");
                    continue;
                };
                let shown = shown.unwrap_or_else(|| panic!("{at}: expected {value}, got none"));
                let expected = pose_of(value, 0);
                for axis in 0..3 {
                    let error = (shown.head.position[axis] - expected.head.position[axis]).abs();
                    assert!(
                        error <= 1e-4,
                        "{at}: expected {value}, head at {:?}",
                        shown.head.position
                    );
                }
                let angle = angle_between(shown.head.orientation, expected.head.orientation);
                assert!(angle <= 1e-3, "{at}: head turned {angle} rad off");
                if let Some(flags) = sample.get("flags").and_then(Value::as_u64) {
                    assert_eq!(u64::from(shown.flags.0), flags, "{at}: flags");
                }
            } else if step.get("reset").is_some() {
                track.reset();
            } else {
                panic!("{at}: unknown step {step}");
            }
        }
    }

    #[test]
    fn shared_vectors() {
        let vectors: Value = serde_json::from_str(VECTORS).expect("interpolation.json is JSON");
        let cases = vectors["cases"].as_array().expect("cases");
        assert!(cases.len() >= 10, "too few interpolation vectors");
        for case in cases {
            check(case);
        }
    }

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

    /// Batches of a 30 Hz sender whose clock runs from 50 s and restarts at 0
    /// at 3 s, after an outage of `outage` s; each arrives 40 ms plus up to
    /// `jitter_max` late. Yields (arrival, stamp, sent) in arrival order.
    fn restarting_stream(outage: f64, jitter_max: f64) -> Vec<(f64, f64, f64)> {
        let mut batches: Vec<(f64, f64, f64)> = (0..180u64)
            .map(|i| {
                let sent = i as f64 / 30.0;
                let (sent, stamp) = if sent < 3.0 {
                    (sent, 50.0 + sent)
                } else {
                    (sent + outage, sent - 3.0)
                };
                (sent + 0.040 + jitter(i, jitter_max), stamp, sent)
            })
            .collect();
        batches.sort_by(|a, b| a.0.total_cmp(&b.0));
        batches
    }

    #[test]
    fn a_clock_restart_mid_stream_is_followed_as_if_the_track_were_new() {
        let mut track = AvatarTrack::default();
        // Fed only the new clock's batches: what the track must show once it
        // has seen the first of them.
        let mut fresh = AvatarTrack::default();
        let mut batches = restarting_stream(0.5, 0.05).into_iter().peekable();
        let mut worst_before = 0.0f32;
        let mut compared = 0;
        for frame in 0..540u64 {
            let now = frame as f64 / 90.0;
            while let Some((arrives, stamp, _)) = batches.next_if(|b| b.0 <= now) {
                track.push(arrives, stamp, truth(stamp));
                if stamp < 50.0 {
                    fresh.push(arrives, stamp, truth(stamp));
                }
            }
            if (0.5..3.0).contains(&now) {
                // The fastest delivery took 40 ms; the avatar is shown the
                // default delay behind that.
                let shown = track.sample(now).expect("samples arrived");
                let expected = truth(50.0 + now - 0.040 - DEFAULT_DELAY);
                worst_before =
                    worst_before.max((shown.head.position[2] - expected.head.position[2]).abs());
            }
            if let Some(expected) = fresh.sample(now) {
                assert_eq!(track.sample(now), Some(expected), "at {now} s");
                compared += 1;
            }
        }
        assert!(
            worst_before < 0.005,
            "before the restart: off by {worst_before} m"
        );
        assert!(compared > 100, "only {compared} frames after the restart");
    }

    #[test]
    fn heavy_jitter_and_reordering_never_reset_a_track_but_a_restart_does() {
        // Up to 0.9 s of jitter reorders batches freely; the outage is longer,
        // as a server restart's is, so the old connection's batches all come first.
        let mut track = AvatarTrack::default();
        let mut fastest_on_clock: Option<(bool, f64)> = None;
        for (arrives, stamp, _) in restarting_stream(1.0, 0.9) {
            let restarted = stamp < 50.0;
            let offset = arrives - stamp;
            fastest_on_clock = Some(match fastest_on_clock {
                Some((clock, fastest)) if clock == restarted => (clock, fastest.min(offset)),
                _ => (restarted, offset),
            });
            track.push(arrives, stamp, truth(stamp));
            // A spurious reset would leave the offset of a slower batch; a
            // missed one would keep the old clock's.
            assert_eq!(
                track.offset,
                fastest_on_clock.map(|(_, fastest)| fastest),
                "after the batch stamped {stamp} arriving at {arrives}"
            );
        }
    }
}
