//! The quantized avatar pose and pose batches.
//!
//! An avatar pose is the head and both hands, each a position (metres, +Y up,
//! -Z forward, right-handed) and an orientation (unit quaternion `[x, y, z, w]`),
//! plus flags. On the wire it is exactly [`POSE_BYTES`] = 31 bytes, a
//! little-endian bit stream (least significant bit first):
//!
//! | bits | field                                                            |
//! |------|------------------------------------------------------------------|
//! | 16   | slot: the sender's member slot (0 in a client's own push)        |
//! | 4    | flags ([`PoseFlags`])                                            |
//! | 60   | head position: 3 x 20-bit signed millimetres (+-524.287 m)       |
//! | 32   | head orientation: smallest-three (2-bit index, 3 x 10 bits)      |
//! | 36   | left hand position relative to the head: 3 x 12-bit signed mm (+-2.047 m) |
//! | 32   | left hand orientation                                            |
//! | 36   | right hand position relative to the head                         |
//! | 32   | right hand orientation                                           |
//!
//! 248 bits in all: a batch of 25 poses costs 31.3 bytes per pose with its header.
//!
//! # Error bound
//! Inside those ranges every position component decodes within
//! [`POSITION_ERROR_BOUND_M`] (half a millimetre, plus f32 rounding) of what was
//! encoded, and every orientation within [`ANGLE_ERROR_BOUND_RAD`] (0.35 degrees)
//! of it. Outside them positions are clamped to the range: a head beyond
//! +-524 m stops at the edge, a hand more than 2.047 m from its head stops at
//! that distance on each axis. Non-finite input encodes as the origin / identity.
//!
//! A pose batch (server -> client, event `poses`) is an 8-byte header
//! (`u8` format version = 2, `u8` object count, `u16` avatar count, `u32`
//! server time in milliseconds, all little-endian) followed by the avatar
//! poses and then the object poses ([`crate::objects`], 14 bytes each).
//! Format 1 is the same with no objects (its second byte was reserved, 0);
//! readers take both.

use thiserror::Error;

/// Size of one encoded object pose ([`crate::objects`] says what objects are).
pub const OBJECT_POSE_BYTES: usize = 14;
/// Most object poses one client pose push carries.
pub const MAX_OBJECTS_PER_POSE_PUSH: usize = 2;

/// Size of one encoded pose, alone (a client's push) or in a batch.
pub const POSE_BYTES: usize = 31;
/// Size of a batch header.
pub const BATCH_HEADER_BYTES: usize = 8;
/// The batch format this build writes; it also reads format 1.
pub const BATCH_FORMAT_VERSION: u8 = 2;
/// Most object poses one batch carries (its header counts them in a byte).
pub const MAX_BATCH_OBJECTS: usize = u8::MAX as usize;

/// How often a client sends its pose again when it has not changed, in
/// milliseconds. Clients send a pose only when it differs from the last one
/// sent; a pose lost on the way (dropped at a full room inbox, refused for
/// its rate, sent across a rejoin) would otherwise leave the others with a
/// stale or missing avatar until the sender moved.
pub const POSE_REFRESH_MS: u64 = 1_000;

/// Largest per-axis position error after a round trip, in metres.
pub const POSITION_ERROR_BOUND_M: f32 = 0.000_5 + 0.000_1;
/// Largest orientation error after a round trip, in radians (0.35 degrees).
pub const ANGLE_ERROR_BOUND_RAD: f32 = 0.35 * std::f32::consts::PI / 180.0;

/// Largest head coordinate that encodes without clamping, in metres.
pub const HEAD_RANGE_M: f32 = HEAD_MAX_MM as f32 / 1000.0;
/// Largest hand offset from the head, per axis, that encodes without clamping.
pub const HAND_RANGE_M: f32 = HAND_MAX_MM as f32 / 1000.0;

const HEAD_BITS: u32 = 20;
const HAND_BITS: u32 = 12;
const HEAD_MAX_MM: i32 = (1 << (HEAD_BITS - 1)) - 1;
const HAND_MAX_MM: i32 = (1 << (HAND_BITS - 1)) - 1;
const ROTATION_COMPONENT_BITS: u32 = 10;
const ROTATION_STEPS: f32 = ((1 << ROTATION_COMPONENT_BITS) - 1) as f32;
const INV_SQRT2: f32 = std::f32::consts::FRAC_1_SQRT_2;

/// Position and orientation of one tracked point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Joint {
    pub position: [f32; 3],
    /// Unit quaternion `[x, y, z, w]`.
    pub orientation: [f32; 4],
}

impl Default for Joint {
    fn default() -> Self {
        Joint::IDENTITY
    }
}

impl Joint {
    pub const IDENTITY: Joint = Joint {
        position: [0.0; 3],
        orientation: [0.0, 0.0, 0.0, 1.0],
    };
}

/// Which parts of a pose are live. Four bits travel; higher bits are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PoseFlags(pub u8);

impl PoseFlags {
    /// The left hand (controller or tracked hand) is tracked; otherwise hide it.
    pub const LEFT_TRACKED: u8 = 1 << 0;
    /// The right hand is tracked.
    pub const RIGHT_TRACKED: u8 = 1 << 1;
    /// Hands come from hand tracking rather than controllers.
    pub const HAND_TRACKING: u8 = 1 << 2;
    /// The bits that travel on the wire.
    pub const WIRE_MASK: u8 = 0x0f;

    pub fn contains(self, bit: u8) -> bool {
        self.0 & bit == bit
    }
}

/// Head, left hand and right hand of one avatar.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AvatarPose {
    pub head: Joint,
    pub left: Joint,
    pub right: Joint,
    pub flags: PoseFlags,
}

/// Why a pose payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PoseError {
    #[error("a pose is {POSE_BYTES} bytes, got {0}")]
    WrongPoseSize(usize),
    #[error("a pose batch needs an {BATCH_HEADER_BYTES}-byte header, got {0} bytes")]
    MissingBatchHeader(usize),
    #[error("pose batch format {0} is not supported; this build reads formats 1 and 2")]
    UnsupportedBatchFormat(u8),
    #[error("an object pose is {OBJECT_POSE_BYTES} bytes, got {0}")]
    WrongObjectPoseSize(usize),
    #[error(
        "a pose push is {POSE_BYTES} bytes plus up to {MAX_OBJECTS_PER_POSE_PUSH} object poses of {OBJECT_POSE_BYTES} bytes, got {0}"
    )]
    WrongPushSize(usize),
    #[error("pose batch says {count} poses ({expected} bytes) but carries {actual} bytes")]
    BatchSizeMismatch {
        count: usize,
        expected: usize,
        actual: usize,
    },
}

/// Encodes `pose` for member `slot`.
pub fn encode_pose(slot: u16, pose: &AvatarPose) -> [u8; POSE_BYTES] {
    let mut bits = BitWriter::default();
    bits.write(u64::from(slot), 16);
    bits.write(u64::from(pose.flags.0 & PoseFlags::WIRE_MASK), 4);
    let head_mm = pose.head.position.map(|m| quantize_mm(m, HEAD_MAX_MM));
    for mm in head_mm {
        bits.write_signed(mm, HEAD_BITS);
    }
    bits.write(u64::from(encode_rotation(pose.head.orientation)), 32);
    for hand in [&pose.left, &pose.right] {
        for (&metres, head) in hand.position.iter().zip(head_mm) {
            // Relative to the quantized head, so the hand's error is its own
            // rounding only and does not add the head's.
            let relative = quantize_mm(metres, i32::MAX / 2) - head;
            bits.write_signed(relative.clamp(-HAND_MAX_MM, HAND_MAX_MM), HAND_BITS);
        }
        bits.write(u64::from(encode_rotation(hand.orientation)), 32);
    }
    bits.finish()
}

/// Decodes one pose: its slot and the pose.
pub fn decode_pose(bytes: &[u8]) -> Result<(u16, AvatarPose), PoseError> {
    let bytes: &[u8; POSE_BYTES] = bytes
        .try_into()
        .map_err(|_| PoseError::WrongPoseSize(bytes.len()))?;
    let mut bits = BitReader::new(bytes);
    let slot = bits.read(16) as u16;
    let flags = PoseFlags(bits.read(4) as u8);
    let head_mm = [0; 3].map(|_: i32| bits.read_signed(HEAD_BITS));
    let head = Joint {
        position: head_mm.map(mm_to_m),
        orientation: decode_rotation(bits.read(32) as u32),
    };
    let mut hands = [Joint::IDENTITY; 2];
    for hand in &mut hands {
        let mut position = [0.0; 3];
        for (axis, value) in position.iter_mut().enumerate() {
            *value = mm_to_m(head_mm[axis] + bits.read_signed(HAND_BITS));
        }
        *hand = Joint {
            position,
            orientation: decode_rotation(bits.read(32) as u32),
        };
    }
    let [left, right] = hands;
    Ok((
        slot,
        AvatarPose {
            head,
            left,
            right,
            flags,
        },
    ))
}

/// The slot stored in an encoded pose, without decoding the rest.
pub fn pose_slot(bytes: &[u8; POSE_BYTES]) -> u16 {
    u16::from_le_bytes([bytes[0], bytes[1]])
}

/// Rewrites the slot of an encoded pose: the server stamps the sender's slot
/// into a client's push without decoding it.
pub fn set_pose_slot(bytes: &mut [u8; POSE_BYTES], slot: u16) {
    bytes[..2].copy_from_slice(&slot.to_le_bytes());
}

/// Appends a batch: header then the given encoded avatar poses.
pub fn encode_batch<'a>(
    out: &mut Vec<u8>,
    server_time_ms: u32,
    poses: impl ExactSizeIterator<Item = &'a [u8; POSE_BYTES]>,
) {
    encode_batch_with_objects(out, server_time_ms, poses, std::iter::empty());
}

/// Appends a batch: header, the encoded avatar poses, then the encoded object
/// poses (at most [`MAX_BATCH_OBJECTS`]; a room holds far fewer).
pub fn encode_batch_with_objects<'a, 'b>(
    out: &mut Vec<u8>,
    server_time_ms: u32,
    poses: impl ExactSizeIterator<Item = &'a [u8; POSE_BYTES]>,
    objects: impl ExactSizeIterator<Item = &'b [u8; OBJECT_POSE_BYTES]>,
) {
    let count = u16::try_from(poses.len()).expect("a room holds fewer than 65536 members");
    let objects = objects.take(MAX_BATCH_OBJECTS);
    let object_count = objects.len();
    out.reserve(BATCH_HEADER_BYTES + poses.len() * POSE_BYTES + object_count * OBJECT_POSE_BYTES);
    out.push(BATCH_FORMAT_VERSION);
    out.push(object_count as u8);
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&server_time_ms.to_le_bytes());
    for pose in poses {
        out.extend_from_slice(pose);
    }
    for object in objects {
        out.extend_from_slice(object);
    }
}

/// A decoded batch header and its still-encoded poses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoseBatch<'a> {
    pub server_time_ms: u32,
    poses: &'a [u8],
    objects: &'a [u8],
}

impl<'a> PoseBatch<'a> {
    pub fn len(&self) -> usize {
        self.poses.len() / POSE_BYTES
    }

    pub fn is_empty(&self) -> bool {
        self.poses.is_empty()
    }

    /// Each pose with its slot.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (u16, AvatarPose)> + 'a {
        self.poses
            .chunks_exact(POSE_BYTES)
            .map(|chunk| decode_pose(chunk).expect("chunks are exactly POSE_BYTES"))
    }

    /// The still-encoded avatar poses.
    pub fn encoded(&self) -> impl ExactSizeIterator<Item = &'a [u8; POSE_BYTES]> + 'a {
        self.poses
            .chunks_exact(POSE_BYTES)
            .map(|chunk| chunk.try_into().expect("chunks are exactly POSE_BYTES"))
    }

    /// The still-encoded object poses.
    pub fn encoded_objects(
        &self,
    ) -> impl ExactSizeIterator<Item = &'a [u8; OBJECT_POSE_BYTES]> + 'a {
        self.objects.chunks_exact(OBJECT_POSE_BYTES).map(|chunk| {
            chunk
                .try_into()
                .expect("chunks are exactly OBJECT_POSE_BYTES")
        })
    }

    /// Each object pose.
    pub fn objects(&self) -> impl ExactSizeIterator<Item = ObjectPose> + 'a {
        self.objects
            .chunks_exact(OBJECT_POSE_BYTES)
            .map(|chunk| decode_object_pose(chunk).expect("chunks are exactly OBJECT_POSE_BYTES"))
    }
}

/// A checked pose batch that owns its bytes (header and encoded poses), as
/// a server event carries it: built once per room and tick, read by each client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoseBatchBuf(Vec<u8>);

impl PoseBatchBuf {
    /// Encodes a batch of already encoded poses.
    pub fn new<'a>(
        server_time_ms: u32,
        poses: impl ExactSizeIterator<Item = &'a [u8; POSE_BYTES]>,
    ) -> PoseBatchBuf {
        let mut bytes = Vec::new();
        encode_batch(&mut bytes, server_time_ms, poses);
        PoseBatchBuf(bytes)
    }

    /// Encodes a batch of already encoded avatar and object poses.
    pub fn with_objects<'a, 'b>(
        server_time_ms: u32,
        poses: impl ExactSizeIterator<Item = &'a [u8; POSE_BYTES]>,
        objects: impl ExactSizeIterator<Item = &'b [u8; OBJECT_POSE_BYTES]>,
    ) -> PoseBatchBuf {
        let mut bytes = Vec::new();
        encode_batch_with_objects(&mut bytes, server_time_ms, poses, objects);
        PoseBatchBuf(bytes)
    }

    /// Takes a batch payload as received, once its header and size check out.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<PoseBatchBuf, PoseError> {
        decode_batch(&bytes)?;
        Ok(PoseBatchBuf(bytes))
    }

    /// The header and the still-encoded poses.
    pub fn batch(&self) -> PoseBatch<'_> {
        decode_batch(&self.0).expect("checked when it was built")
    }

    /// The payload as it travels.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Checks a batch's header and size.
pub fn decode_batch(payload: &[u8]) -> Result<PoseBatch<'_>, PoseError> {
    let Some((header, rest)) = payload.split_first_chunk::<BATCH_HEADER_BYTES>() else {
        return Err(PoseError::MissingBatchHeader(payload.len()));
    };
    let object_count = match header[0] {
        1 => 0,
        2 => usize::from(header[1]),
        other => return Err(PoseError::UnsupportedBatchFormat(other)),
    };
    let count = usize::from(u16::from_le_bytes([header[2], header[3]]));
    let expected = count * POSE_BYTES + object_count * OBJECT_POSE_BYTES;
    if rest.len() != expected {
        return Err(PoseError::BatchSizeMismatch {
            count,
            expected,
            actual: rest.len(),
        });
    }
    let (poses, objects) = rest.split_at(count * POSE_BYTES);
    Ok(PoseBatch {
        server_time_ms: u32::from_le_bytes([header[4], header[5], header[6], header[7]]),
        poses,
        objects,
    })
}

/// A position component as 20-bit offset-binary millimetres (object poses
/// share the head's quantization).
pub(crate) fn encode_position_mm(metres: f32) -> u32 {
    (quantize_mm(metres, HEAD_MAX_MM) + (1 << (HEAD_BITS - 1))) as u32
}

pub(crate) fn decode_position_mm(biased: u32) -> f32 {
    mm_to_m(biased as i32 - (1 << (HEAD_BITS - 1)))
}

/// Bits of a packed rotation.
pub(crate) const ROTATION_BITS_PACKED: u32 = 32;

/// Bits of an object pose's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ObjectPoseFlags(pub u8);

impl ObjectPoseFlags {
    /// In someone's hand (otherwise flying).
    pub const HELD: u8 = 1 << 0;
    pub const WIRE_MASK: u8 = 0x0f;

    pub fn contains(self, bit: u8) -> bool {
        self.0 & bit == bit
    }
}

/// An object's pose as it travels in a pose push or batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ObjectPose {
    pub handle: u16,
    pub flags: ObjectPoseFlags,
    pub position: [f32; 3],
    pub orientation: [f32; 4],
}

/// Encodes an object pose.
pub fn encode_object_pose(pose: &ObjectPose) -> [u8; OBJECT_POSE_BYTES] {
    let mut bits: u128 = u128::from(pose.handle);
    bits |= u128::from(pose.flags.0 & ObjectPoseFlags::WIRE_MASK) << 16;
    let mut shift = 20;
    for mm in pose.position.map(encode_position_mm) {
        bits |= u128::from(mm) << shift;
        shift += 20;
    }
    bits |= u128::from(encode_rotation(pose.orientation)) << shift;
    debug_assert_eq!(shift + ROTATION_BITS_PACKED, OBJECT_POSE_BYTES as u32 * 8);
    let mut out = [0; OBJECT_POSE_BYTES];
    out.copy_from_slice(&bits.to_le_bytes()[..OBJECT_POSE_BYTES]);
    out
}

/// Decodes an object pose.
pub fn decode_object_pose(bytes: &[u8]) -> Result<ObjectPose, PoseError> {
    let bytes: &[u8; OBJECT_POSE_BYTES] = bytes
        .try_into()
        .map_err(|_| PoseError::WrongObjectPoseSize(bytes.len()))?;
    let mut wide = [0u8; 16];
    wide[..OBJECT_POSE_BYTES].copy_from_slice(bytes);
    let bits = u128::from_le_bytes(wide);
    let field = |shift: u32, width: u32| ((bits >> shift) & ((1u128 << width) - 1)) as u32;
    Ok(ObjectPose {
        handle: field(0, 16) as u16,
        flags: ObjectPoseFlags(field(16, 4) as u8),
        position: [20, 40, 60].map(|shift| decode_position_mm(field(shift, 20))),
        orientation: decode_rotation(field(80, 32)),
    })
}

/// The handle of an encoded object pose, without decoding the rest.
pub fn object_pose_handle(bytes: &[u8; OBJECT_POSE_BYTES]) -> u16 {
    u16::from_le_bytes([bytes[0], bytes[1]])
}

/// A client's binary `pose` push: its avatar pose and the object poses after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PosePush<'a> {
    pub avatar: &'a [u8; POSE_BYTES],
    objects: &'a [u8],
}

impl<'a> PosePush<'a> {
    /// Splits a push payload; its size says how many objects it carries.
    pub fn parse(payload: &'a [u8]) -> Result<PosePush<'a>, PoseError> {
        let Some((avatar, objects)) = payload.split_first_chunk::<POSE_BYTES>() else {
            return Err(PoseError::WrongPoseSize(payload.len()));
        };
        if !objects.len().is_multiple_of(OBJECT_POSE_BYTES)
            || objects.len() / OBJECT_POSE_BYTES > MAX_OBJECTS_PER_POSE_PUSH
        {
            return Err(PoseError::WrongPushSize(payload.len()));
        }
        Ok(PosePush { avatar, objects })
    }

    /// The encoded object poses.
    pub fn objects(&self) -> impl ExactSizeIterator<Item = &'a [u8; OBJECT_POSE_BYTES]> + 'a {
        self.objects.chunks_exact(OBJECT_POSE_BYTES).map(|chunk| {
            chunk
                .try_into()
                .expect("chunks are exactly OBJECT_POSE_BYTES")
        })
    }
}

/// Builds a client's `pose` push payload.
pub fn encode_pose_push(avatar: &[u8; POSE_BYTES], objects: &[[u8; OBJECT_POSE_BYTES]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(POSE_BYTES + objects.len() * OBJECT_POSE_BYTES);
    out.extend_from_slice(avatar);
    for object in objects.iter().take(MAX_OBJECTS_PER_POSE_PUSH) {
        out.extend_from_slice(object);
    }
    out
}

fn quantize_mm(metres: f32, max_mm: i32) -> i32 {
    if !metres.is_finite() {
        return 0;
    }
    // `as` saturates, so huge values clamp instead of wrapping. Rounding by hand:
    // `f32::round` is a library call on baseline x86-64 and dominated encoding.
    round_half_away(metres * 1000.0).clamp(-max_mm, max_mm)
}

fn round_half_away(value: f32) -> i32 {
    (value + 0.5f32.copysign(value)) as i32
}

fn mm_to_m(mm: i32) -> f32 {
    mm as f32 / 1000.0
}

/// Smallest-three: drop the largest component (its sign made positive, which
/// leaves the rotation unchanged), store its index and the other three, each in
/// [-1/sqrt 2, 1/sqrt 2], on 10 bits.
pub(crate) fn encode_rotation(q: [f32; 4]) -> u32 {
    let norm = q.iter().map(|c| c * c).sum::<f32>().sqrt();
    let q = if norm.is_finite() && norm > 1e-6 {
        q.map(|c| c / norm)
    } else {
        [0.0, 0.0, 0.0, 1.0]
    };
    let mut largest = 0;
    for i in 1..4 {
        if q[i].abs() > q[largest].abs() {
            largest = i;
        }
    }
    let sign = if q[largest] < 0.0 { -1.0 } else { 1.0 };
    let mut packed = largest as u32;
    let mut shift = 2;
    for (i, &c) in q.iter().enumerate() {
        if i == largest {
            continue;
        }
        let unit = (c * sign / INV_SQRT2).clamp(-1.0, 1.0);
        let step = round_half_away((unit + 1.0) * 0.5 * ROTATION_STEPS) as u32;
        packed |= step << shift;
        shift += ROTATION_COMPONENT_BITS;
    }
    packed
}

pub(crate) fn decode_rotation(packed: u32) -> [f32; 4] {
    let largest = (packed & 0b11) as usize;
    let mut q = [0.0f32; 4];
    let mut shift = 2;
    let mut sum = 0.0;
    for (i, c) in q.iter_mut().enumerate() {
        if i == largest {
            continue;
        }
        let step = (packed >> shift) & ((1 << ROTATION_COMPONENT_BITS) - 1);
        *c = (step as f32 / ROTATION_STEPS * 2.0 - 1.0) * INV_SQRT2;
        sum += *c * *c;
        shift += ROTATION_COMPONENT_BITS;
    }
    q[largest] = (1.0 - sum).max(0.0).sqrt();
    // Corrupt input can make the three too large; renormalize so the result is
    // always a unit quaternion.
    let norm = q.iter().map(|c| c * c).sum::<f32>().sqrt();
    q.map(|c| c / norm)
}

/// Angle between two rotations, in radians.
pub fn angle_between(a: [f32; 4], b: [f32; 4]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    2.0 * dot.abs().min(1.0).acos()
}

#[derive(Default)]
struct BitWriter {
    words: [u64; 4],
    position: u32,
}

impl BitWriter {
    fn write(&mut self, value: u64, bits: u32) {
        debug_assert!(bits <= 32 && value < (1 << bits));
        let word = (self.position / 64) as usize;
        let offset = self.position % 64;
        self.words[word] |= value << offset;
        if offset + bits > 64 {
            self.words[word + 1] |= value >> (64 - offset);
        }
        self.position += bits;
    }

    fn write_signed(&mut self, value: i32, bits: u32) {
        // Offset binary: -max..=max maps to 1..=2*max+1.
        let biased = (value + (1 << (bits - 1))) as u64;
        self.write(biased, bits);
    }

    fn finish(self) -> [u8; POSE_BYTES] {
        debug_assert_eq!(self.position as usize, POSE_BYTES * 8);
        let mut padded = [0u8; 32];
        for (chunk, word) in padded.chunks_exact_mut(8).zip(self.words) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        let mut out = [0u8; POSE_BYTES];
        out.copy_from_slice(&padded[..POSE_BYTES]);
        out
    }
}

struct BitReader {
    words: [u64; 4],
    position: u32,
}

impl BitReader {
    fn new(bytes: &[u8; POSE_BYTES]) -> Self {
        let mut padded = [0u8; 32];
        padded[..POSE_BYTES].copy_from_slice(bytes);
        let mut words = [0u64; 4];
        for (word, chunk) in words.iter_mut().zip(padded.chunks_exact(8)) {
            *word = u64::from_le_bytes(chunk.try_into().expect("8-byte chunk"));
        }
        BitReader { words, position: 0 }
    }

    fn read(&mut self, bits: u32) -> u64 {
        let word = (self.position / 64) as usize;
        let offset = self.position % 64;
        let mut value = self.words[word] >> offset;
        if offset + bits > 64 {
            value |= self.words[word + 1] << (64 - offset);
        }
        self.position += bits;
        value & ((1u64 << bits) - 1)
    }

    fn read_signed(&mut self, bits: u32) -> i32 {
        self.read(bits) as i32 - (1 << (bits - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_pose() -> AvatarPose {
        let tilt = 0.3f32;
        AvatarPose {
            head: Joint {
                position: [1.25, 1.7, -3.5],
                orientation: [0.0, (tilt / 2.0).sin(), 0.0, (tilt / 2.0).cos()],
            },
            left: Joint {
                position: [1.0, 1.2, -3.8],
                orientation: [0.5, 0.5, 0.5, 0.5],
            },
            right: Joint {
                position: [1.5, 1.1, -3.7],
                orientation: [0.0, 0.0, -0.70710677, 0.70710677],
            },
            flags: PoseFlags(PoseFlags::LEFT_TRACKED | PoseFlags::RIGHT_TRACKED),
        }
    }

    #[test]
    fn a_pose_is_31_bytes_and_round_trips_within_bounds() {
        let pose = sample_pose();
        let bytes = encode_pose(42, &pose);
        assert_eq!(bytes.len(), 31);
        assert_eq!(pose_slot(&bytes), 42);
        let (slot, decoded) = decode_pose(&bytes).unwrap();
        assert_eq!(slot, 42);
        assert_eq!(decoded.flags, pose.flags);
        for (a, b) in [
            (pose.head, decoded.head),
            (pose.left, decoded.left),
            (pose.right, decoded.right),
        ] {
            for axis in 0..3 {
                assert!((a.position[axis] - b.position[axis]).abs() <= POSITION_ERROR_BOUND_M);
            }
            assert!(angle_between(a.orientation, b.orientation) <= ANGLE_ERROR_BOUND_RAD);
        }
    }

    #[test]
    fn out_of_range_positions_clamp() {
        let mut pose = sample_pose();
        pose.head.position = [1000.0, f32::NAN, -1000.0];
        pose.left.position = [1000.0, 0.0, -1000.0];
        let (_, decoded) = decode_pose(&encode_pose(0, &pose)).unwrap();
        assert_eq!(decoded.head.position, [HEAD_RANGE_M, 0.0, -HEAD_RANGE_M]);
        assert_eq!(
            decoded.left.position,
            [
                HEAD_RANGE_M + HAND_RANGE_M,
                0.0,
                -HEAD_RANGE_M - HAND_RANGE_M
            ]
        );
    }

    #[test]
    fn slot_can_be_restamped_without_decoding() {
        let mut bytes = encode_pose(0, &sample_pose());
        set_pose_slot(&mut bytes, 513);
        let (slot, pose) = decode_pose(&bytes).unwrap();
        assert_eq!(slot, 513);
        assert_eq!(
            pose,
            decode_pose(&encode_pose(513, &sample_pose())).unwrap().1
        );
    }

    #[test]
    fn batches_check_their_header() {
        let a = encode_pose(1, &sample_pose());
        let b = encode_pose(2, &AvatarPose::default());
        let mut out = Vec::new();
        encode_batch(&mut out, 123_456, [&a, &b].into_iter());
        assert_eq!(out.len(), BATCH_HEADER_BYTES + 2 * POSE_BYTES);
        let batch = decode_batch(&out).unwrap();
        assert_eq!(batch.server_time_ms, 123_456);
        assert_eq!(
            batch.iter().map(|(slot, _)| slot).collect::<Vec<_>>(),
            [1, 2]
        );

        assert_eq!(
            decode_batch(&out[..5]),
            Err(PoseError::MissingBatchHeader(5))
        );
        assert_eq!(
            decode_batch(&out[..39]),
            Err(PoseError::BatchSizeMismatch {
                count: 2,
                expected: 62,
                actual: 31
            })
        );
        out[0] = 9;
        assert_eq!(
            decode_batch(&out),
            Err(PoseError::UnsupportedBatchFormat(9))
        );
        assert_eq!(decode_pose(&[0; 32]), Err(PoseError::WrongPoseSize(32)));
    }
}
