//! Object figures for `cargo xtask bench`: what a flight costs a client's (or
//! the server's) core, and what a held or thrown object adds to the wire.
//!
//! - the physics step, ns per step per object, and per simulated second of
//!   flight (90 steps), over a spread of throws onto the table, the floor and
//!   the walls; and a whole throw settled at once (`simulate_to_rest`, what
//!   the server does for a lost holder);
//! - bytes a held object adds to its holder's pose push and to the room's
//!   pose batch each tick: a real push and a real 25-avatar batch encoded
//!   with and without one object pose, each inside its Phoenix binary frame.

use std::hint::black_box;

use roomscale_physics::{Body, MAX_FLIGHT_STEPS, STEP_SECONDS, World, simulate_to_rest, step};
use roomscale_protocol::events::{POSE_EVENT, POSES_EVENT};
use roomscale_protocol::frame;
use roomscale_protocol::objects::{
    self, ObjectKind, ObjectPose, ObjectPoseFlags, ObjectState, encode_object_pose,
    encode_pose_push,
};
use roomscale_protocol::pose;

// The same timing and sample poses as the pose codec bench, so the figures
// compare; the physics crate already depends on the protocol crate.
#[path = "../../protocol/benches/support/mod.rs"]
mod support;
use support::{rate, sample_poses};

const ROOM: usize = 25;
/// Pose ticks per second (the client's and the room's pose rate).
const TICK_HZ: f64 = 30.0;
const TOPIC: &str = "room:6f1c2a7e-4b3d-4c5e-9f10-2a3b4c5d6e7f";

fn main() {
    let world = World::room();
    let throws = throws(66);

    // Every throw stepped in turn from release to rest, again and again:
    // each call is one object's step.
    let mut flying = throws.clone();
    let mut flight_steps = 0u64;
    let mut flights = 0u64;
    let step_rate = rate(|| {
        for (body, start) in flying.iter_mut().zip(&throws) {
            if step(&world, black_box(body)) {
                *body = *start;
                flights += 1;
            }
        }
        flight_steps += flying.len() as u64;
        flying.len()
    });
    let ns_per_step = 1e9 / step_rate;
    let steps_per_flight = throws
        .iter()
        .map(|start| {
            let mut body = *start;
            f64::from(simulate_to_rest(&world, &mut body, MAX_FLIGHT_STEPS))
        })
        .sum::<f64>()
        / throws.len() as f64;
    let settle_rate = rate(|| {
        for start in &throws {
            let mut body = *start;
            black_box(simulate_to_rest(
                &world,
                black_box(&mut body),
                MAX_FLIGHT_STEPS,
            ));
        }
        throws.len()
    });
    black_box((flight_steps, flights));

    println!(
        "object physics, Rust (one core, {} throws of each kind in turn):",
        throws.len() / 3
    );
    println!("  step              {ns_per_step:>8.1} ns per object per step");
    println!(
        "  flight            {:>8.2} us per object per simulated second ({} steps): a core flies {:.0} objects in real time",
        ns_per_step / (f64::from(STEP_SECONDS) * 1e3),
        (1.0 / STEP_SECONDS).round(),
        f64::from(STEP_SECONDS) * 1e9 / ns_per_step,
    );
    println!(
        "  whole throw       {:>8.1} us to settle at once (mean {steps_per_flight:.0} steps, {:.2} s of flight)",
        1e6 / settle_rate,
        steps_per_flight * f64::from(STEP_SECONDS),
    );

    wire_figures();
}

/// Bytes one held object adds to a client's push and a room's batch.
fn wire_figures() {
    let avatars: Vec<_> = sample_poses(ROOM)
        .iter()
        .enumerate()
        .map(|(slot, p)| pose::encode_pose(slot as u16, p))
        .collect();
    let object = encode_object_pose(&ObjectPose {
        handle: 3,
        flags: ObjectPoseFlags(ObjectPoseFlags::HELD),
        position: [0.4, 1.2, -0.9],
        orientation: [0.1, 0.3, -0.2, 0.927_362],
    });

    // A client's push: its avatar pose, then the held object's pose.
    let push = |objects: &[[u8; objects::OBJECT_POSE_BYTES]]| {
        let payload = encode_pose_push(&avatars[0], objects);
        let mut framed = Vec::new();
        frame::encode_client_push(&mut framed, "1", "", TOPIC, POSE_EVENT, &payload)
            .expect("a pose push fits a frame");
        (payload.len(), framed.len())
    };
    let (push_payload, push_frame) = push(&[]);
    let (push_payload_1, push_frame_1) = push(&[object]);

    // The room's batch of 25 avatars, without and with the object.
    let batch = |objects: &[[u8; objects::OBJECT_POSE_BYTES]]| {
        let mut payload = Vec::new();
        pose::encode_batch_with_objects(&mut payload, 123_456, avatars.iter(), objects.iter());
        let mut framed = Vec::new();
        frame::encode_broadcast(&mut framed, TOPIC, POSES_EVENT, &payload)
            .expect("a batch fits a frame");
        (payload.len(), framed.len())
    };
    let (batch_payload, batch_frame) = batch(&[]);
    let (batch_payload_1, batch_frame_1) = batch(&[object]);
    // The decoder agrees the object is there.
    let decoded = pose::decode_batch(&{
        let mut payload = Vec::new();
        pose::encode_batch_with_objects(&mut payload, 1, avatars.iter(), [object].iter());
        payload
    })
    .expect("the batch decodes")
    .objects()
    .count();
    assert_eq!(decoded, 1);

    let push_added = push_frame_1 - push_frame;
    let batch_added = batch_frame_1 - batch_frame;
    println!("held object on the wire ({TICK_HZ} Hz pose ticks, Phoenix binary frames):");
    println!(
        "  pose push         {push_frame} -> {push_frame_1} bytes framed ({push_payload} -> {push_payload_1} payload): +{push_added} B/tick, +{:.0} B/s up from the holder",
        push_added as f64 * TICK_HZ
    );
    println!(
        "  batch of {ROOM}       {batch_frame} -> {batch_frame_1} bytes framed ({batch_payload} -> {batch_payload_1} payload): +{batch_added} B/tick ({:.1} %), +{:.0} B/s to each member, +{:.1} kB/s out of a room of {ROOM}",
        batch_added as f64 / batch_frame as f64 * 100.0,
        batch_added as f64 * TICK_HZ,
        batch_added as f64 * TICK_HZ * ROOM as f64 / 1e3,
    );
}

/// Throws of each kind from around the room: onto the table, across the
/// floor, into walls, spinning.
fn throws(n: usize) -> Vec<Body> {
    let mut seed = 0x9e37_79b9u32;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed as f32 / u32::MAX as f32
    };
    (0..n)
        .map(|i| {
            let kind = ObjectKind::ALL[i % 3];
            let state = ObjectState {
                kind,
                colour: "#ffffff".into(),
                position: [next() * 4.0 - 2.0, 0.8 + next(), next() * 3.0 - 1.0],
                orientation: [0.0, 0.0, 0.0, 1.0],
            };
            let velocity = [next() * 8.0 - 4.0, next() * 5.0, next() * 8.0 - 5.0];
            let spin = [
                next() * 10.0 - 5.0,
                next() * 10.0 - 5.0,
                next() * 10.0 - 5.0,
            ];
            Body::released(&state, velocity, spin)
        })
        .collect()
}
