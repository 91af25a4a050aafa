//! Timing and sample poses shared by the pose codec bench and the physics
//! crate's flight bench (which includes this file by path), so both report
//! figures measured the same way on the same poses.

use std::time::{Duration, Instant};

use roomscale_protocol::pose::{AvatarPose, Joint, PoseFlags};

/// Items per second of `round`, best of several 400 ms runs.
pub fn rate(mut round: impl FnMut() -> usize) -> f64 {
    let mut best = 0.0f64;
    for _ in 0..5 {
        let start = Instant::now();
        let mut items = 0;
        while start.elapsed() < Duration::from_millis(400) {
            items += round();
        }
        best = best.max(items as f64 / start.elapsed().as_secs_f64());
    }
    best
}

pub fn sample_poses(n: usize) -> Vec<AvatarPose> {
    (0..n)
        .map(|i| {
            let t = i as f32 * 0.37;
            let turn = |a: f32| [0.0, (a / 2.0).sin(), 0.0, (a / 2.0).cos()];
            AvatarPose {
                head: Joint {
                    position: [t.sin() * 4.0, 1.6 + t.cos() * 0.05, t.cos() * 4.0],
                    orientation: turn(t),
                },
                left: Joint {
                    position: [t.sin() * 4.0 - 0.3, 1.2, t.cos() * 4.0 - 0.2],
                    orientation: turn(t + 0.4),
                },
                right: Joint {
                    position: [t.sin() * 4.0 + 0.3, 1.1, t.cos() * 4.0 - 0.25],
                    orientation: turn(t - 0.4),
                },
                flags: PoseFlags(PoseFlags::LEFT_TRACKED | PoseFlags::RIGHT_TRACKED),
            }
        })
        .collect()
}
