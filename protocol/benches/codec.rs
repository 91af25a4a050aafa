//! Pose codec figures for `cargo xtask bench`: encode and decode throughput on
//! one core, and the size of a pose in a batch beside the same pose as JSON.

use roomscale_protocol::pose::{self, AvatarPose, Joint};
use serde_json::json;
use std::hint::black_box;

mod support;
use support::{rate, sample_poses};

const ROOM: usize = 25;

fn main() {
    let poses = sample_poses(1024);
    let encoded: Vec<_> = poses
        .iter()
        .enumerate()
        .map(|(i, p)| pose::encode_pose(i as u16, p))
        .collect();

    let encode_rate = rate(|| {
        let mut acc = 0u8;
        for (i, p) in poses.iter().enumerate() {
            acc ^= pose::encode_pose(i as u16, black_box(p))[7];
        }
        black_box(acc);
        poses.len()
    });
    let decode_rate = rate(|| {
        let mut acc = 0.0f32;
        for bytes in &encoded {
            acc += pose::decode_pose(black_box(bytes)).unwrap().1.head.position[1];
        }
        black_box(acc);
        encoded.len()
    });
    let mut batch = Vec::with_capacity(8 + ROOM * pose::POSE_BYTES);
    let batch_rate = rate(|| {
        for chunk in encoded.chunks_exact(ROOM) {
            batch.clear();
            pose::encode_batch(&mut batch, 1234, chunk.iter());
            black_box(&batch);
        }
        encoded.len() / ROOM * ROOM
    });

    batch.clear();
    pose::encode_batch(&mut batch, 1234, encoded[..ROOM].iter());
    let binary_per_pose = batch.len() as f64 / ROOM as f64;
    let json_batch = serde_json::to_string(&json!({
        "server_time_ms": 1234,
        "poses": poses[..ROOM].iter().enumerate().map(|(slot, p)| pose_json(slot, p)).collect::<Vec<_>>(),
    }))
    .unwrap();
    let json_per_pose = json_batch.len() as f64 / ROOM as f64;

    println!("pose codec (one core, {} poses per round):", poses.len());
    println!(
        "  encode            {:>8.2} M poses/s   (target >= 5 M/s)",
        encode_rate / 1e6
    );
    println!("  decode            {:>8.2} M poses/s", decode_rate / 1e6);
    println!(
        "  batch of {ROOM} (copy) {:>8.2} M poses/s",
        batch_rate / 1e6
    );
    println!(
        "  size in a batch of {ROOM}: {binary_per_pose:.2} bytes/pose binary (target <= 32), {json_per_pose:.1} bytes/pose JSON, JSON/binary = {:.1}x (target >= 8x)",
        json_per_pose / binary_per_pose
    );
}

/// The same information as plain JSON, as a client without the codec would send it.
fn pose_json(slot: usize, p: &AvatarPose) -> serde_json::Value {
    let joint = |j: &Joint| json!({"position": j.position, "orientation": j.orientation});
    json!({"slot": slot, "flags": p.flags.0, "head": joint(&p.head), "left": joint(&p.left), "right": joint(&p.right)})
}
