//! The pose and batch decoders, on arbitrary bytes: every decoded pose is finite
//! with unit quaternions, and re-encoding a decoded pose decodes within the bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomscale_protocol::pose;

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = pose::decode_batch(data) {
        assert_eq!(batch.iter().count(), batch.len());
    }
    if let Ok((slot, decoded)) = pose::decode_pose(data) {
        for joint in [decoded.head, decoded.left, decoded.right] {
            assert!(joint.position.iter().all(|c| c.is_finite()));
            let norm: f32 = joint.orientation.iter().map(|c| c * c).sum();
            assert!((norm - 1.0).abs() < 1e-4);
        }
        let (again_slot, again) = pose::decode_pose(&pose::encode_pose(slot, &decoded)).unwrap();
        assert_eq!(again_slot, slot);
        assert!(pose::angle_between(again.head.orientation, decoded.head.orientation) <= pose::ANGLE_ERROR_BOUND_RAD);
    }
});
