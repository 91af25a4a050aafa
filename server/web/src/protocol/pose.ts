// The 31-byte quantized avatar pose, the 14-byte object pose and pose batches:
// a port of protocol/src/pose.rs and protocol/src/objects.rs, byte for byte.
// See those files for the layout and the error bound;
// protocol/vectors/poses.json holds the shared test vectors.
//
// The Rust codec computes in f32. Every arithmetic step here goes through
// Math.fround so that rounding happens exactly where it does in Rust: a
// product or quotient of two f32 values computed in f64 and rounded once to f32
// equals the f32 operation, and so does a square root.

import {BATCH_FORMAT_VERSION, BATCH_HEADER_BYTES, MAX_OBJECTS_PER_POSE_PUSH, OBJECT_POSE_BYTES, POSE_BYTES} from "@roomscale/protocol"

export type Vec3 = [number, number, number]
/** Unit quaternion [x, y, z, w]. */
export type Quat = [number, number, number, number]

export interface Joint {
  position: Vec3
  orientation: Quat
}

export interface AvatarPose {
  head: Joint
  left: Joint
  right: Joint
  /** PoseFlags bits; four travel on the wire. */
  flags: number
}

export const PoseFlags = {
  /** The left hand (controller or tracked hand) is tracked; otherwise hide it. */
  LEFT_TRACKED: 1 << 0,
  RIGHT_TRACKED: 1 << 1,
  /** Hands come from hand tracking rather than controllers. */
  HAND_TRACKING: 1 << 2,
  WIRE_MASK: 0x0f,
} as const

export const identityJoint = (): Joint => ({position: [0, 0, 0], orientation: [0, 0, 0, 1]})

const HEAD_BITS = 20
const HAND_BITS = 12
const HEAD_MAX_MM = (1 << (HEAD_BITS - 1)) - 1
const HAND_MAX_MM = (1 << (HAND_BITS - 1)) - 1
/** What `i32::MAX / 2` bounds a hand's absolute millimetres to before it is made relative. */
const HAND_ABSOLUTE_MAX_MM = 0x3fffffff
const ROTATION_COMPONENT_BITS = 10
const ROTATION_STEPS = (1 << ROTATION_COMPONENT_BITS) - 1
const INV_SQRT2 = Math.fround(Math.SQRT1_2)

/** Largest per-axis position error after a round trip, in metres. */
export const POSITION_ERROR_BOUND_M = 0.0005 + 0.0001
/** Largest orientation error after a round trip, in radians (0.35 degrees). */
export const ANGLE_ERROR_BOUND_RAD = (0.35 * Math.PI) / 180

const f = Math.fround

/** Why a pose payload could not be decoded; the messages match the Rust ones. */
export class PoseError extends Error {
  override name = "PoseError"
}

/** Encodes `pose` for member `slot` (0 in a client's own push; the server stamps it). */
export function encodePose(slot: number, pose: AvatarPose): Uint8Array {
  const bits = new BitWriter()
  bits.write(slot & 0xffff, 16)
  bits.write(pose.flags & PoseFlags.WIRE_MASK, 4)
  const headMm = pose.head.position.map((m) => quantizeMm(m, HEAD_MAX_MM))
  for (const mm of headMm) {
    bits.writeSigned(mm, HEAD_BITS)
  }
  bits.write(encodeRotation(pose.head.orientation), 32)
  for (const hand of [pose.left, pose.right]) {
    for (let axis = 0; axis < 3; axis++) {
      // Relative to the quantized head, as in Rust: the hand's error is its own rounding.
      const relative = quantizeMm(hand.position[axis], HAND_ABSOLUTE_MAX_MM) - headMm[axis]
      bits.writeSigned(clamp(relative, -HAND_MAX_MM, HAND_MAX_MM), HAND_BITS)
    }
    bits.write(encodeRotation(hand.orientation), 32)
  }
  return bits.finish()
}

/** Decodes one pose: its slot and the pose. */
export function decodePose(bytes: Uint8Array): {slot: number; pose: AvatarPose} {
  if (bytes.length !== POSE_BYTES) {
    throw new PoseError(`a pose is ${POSE_BYTES} bytes, got ${bytes.length}`)
  }
  const bits = new BitReader(bytes)
  const slot = bits.read(16)
  const flags = bits.read(4)
  const headMm = [0, 0, 0].map(() => bits.readSigned(HEAD_BITS))
  const head: Joint = {
    position: headMm.map(mmToM) as Vec3,
    orientation: decodeRotation(bits.read(32)),
  }
  const hands: Joint[] = []
  for (let hand = 0; hand < 2; hand++) {
    const position = headMm.map((mm) => mmToM(mm + bits.readSigned(HAND_BITS))) as Vec3
    hands.push({position, orientation: decodeRotation(bits.read(32))})
  }
  return {slot, pose: {head, left: hands[0], right: hands[1], flags}}
}

/** Bits of an object pose's flags. */
export const ObjectPoseFlags = {
  /** In someone's hand (otherwise flying). */
  HELD: 1 << 0,
  WIRE_MASK: 0x0f,
} as const

/** An object's pose as it travels in a pose push or batch. */
export interface ObjectPose {
  /** The room's short number for the object (the grab reply's `handle`). */
  handle: number
  flags: number
  position: Vec3
  orientation: Quat
}

/** Encodes an object pose: handle, flags, 3 x 20-bit mm (as the avatar head), smallest-three rotation. */
export function encodeObjectPose(pose: ObjectPose): Uint8Array {
  const bits = new BitWriter(OBJECT_POSE_BYTES)
  bits.write(pose.handle & 0xffff, 16)
  bits.write(pose.flags & ObjectPoseFlags.WIRE_MASK, 4)
  for (const m of pose.position) {
    bits.writeSigned(quantizeMm(m, HEAD_MAX_MM), HEAD_BITS)
  }
  bits.write(encodeRotation(pose.orientation), 32)
  return bits.finish()
}

export function decodeObjectPose(bytes: Uint8Array): ObjectPose {
  if (bytes.length !== OBJECT_POSE_BYTES) {
    throw new PoseError(`an object pose is ${OBJECT_POSE_BYTES} bytes, got ${bytes.length}`)
  }
  const bits = new BitReader(bytes)
  const handle = bits.read(16)
  const flags = bits.read(4)
  const position = [0, 0, 0].map(() => mmToM(bits.readSigned(HEAD_BITS))) as Vec3
  return {handle, flags, position, orientation: decodeRotation(bits.read(32))}
}

/** A client's binary `pose` push: its encoded avatar pose, then 0..2 encoded object poses. */
export function encodePosePush(avatar: Uint8Array, objects: Uint8Array[]): Uint8Array {
  if (objects.length > MAX_OBJECTS_PER_POSE_PUSH) {
    throw new PoseError(`a pose push carries at most ${MAX_OBJECTS_PER_POSE_PUSH} objects, got ${objects.length}`)
  }
  const out = new Uint8Array(POSE_BYTES + objects.length * OBJECT_POSE_BYTES)
  out.set(avatar, 0)
  objects.forEach((object, i) => out.set(object, POSE_BYTES + i * OBJECT_POSE_BYTES))
  return out
}

export interface PoseBatch {
  /** Milliseconds on the server's room clock. */
  serverTimeMs: number
  poses: Array<{slot: number; pose: AvatarPose}>
  /** Held and flying objects (format 2; none in format 1). */
  objects: ObjectPose[]
}

/** Encodes a batch as the server does; clients only decode batches, tests encode them. */
export function encodeBatch(serverTimeMs: number, poses: Uint8Array[], objects: Uint8Array[] = []): Uint8Array {
  const out = new Uint8Array(BATCH_HEADER_BYTES + poses.length * POSE_BYTES + objects.length * OBJECT_POSE_BYTES)
  const view = new DataView(out.buffer)
  view.setUint8(0, BATCH_FORMAT_VERSION)
  view.setUint8(1, objects.length)
  view.setUint16(2, poses.length, true)
  view.setUint32(4, serverTimeMs >>> 0, true)
  poses.forEach((pose, i) => out.set(pose, BATCH_HEADER_BYTES + i * POSE_BYTES))
  const objectsAt = BATCH_HEADER_BYTES + poses.length * POSE_BYTES
  objects.forEach((object, i) => out.set(object, objectsAt + i * OBJECT_POSE_BYTES))
  return out
}

/** Checks a batch's header and size and decodes its poses; reads formats 1 and 2. */
export function decodeBatch(payload: Uint8Array): PoseBatch {
  if (payload.length < BATCH_HEADER_BYTES) {
    throw new PoseError(`a pose batch needs an ${BATCH_HEADER_BYTES}-byte header, got ${payload.length} bytes`)
  }
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength)
  const format = view.getUint8(0)
  if (format !== 1 && format !== 2) {
    throw new PoseError(`pose batch format ${format} is not supported; this build reads formats 1 and 2`)
  }
  // Format 1's second byte was reserved: it never counts objects.
  const objectCount = format === 2 ? view.getUint8(1) : 0
  const count = view.getUint16(2, true)
  const expected = count * POSE_BYTES + objectCount * OBJECT_POSE_BYTES
  const actual = payload.length - BATCH_HEADER_BYTES
  if (actual !== expected) {
    throw new PoseError(`pose batch says ${count} poses (${expected} bytes) but carries ${actual} bytes`)
  }
  const poses = []
  for (let i = 0; i < count; i++) {
    const start = BATCH_HEADER_BYTES + i * POSE_BYTES
    poses.push(decodePose(payload.subarray(start, start + POSE_BYTES)))
  }
  const objects = []
  const objectsAt = BATCH_HEADER_BYTES + count * POSE_BYTES
  for (let i = 0; i < objectCount; i++) {
    const start = objectsAt + i * OBJECT_POSE_BYTES
    objects.push(decodeObjectPose(payload.subarray(start, start + OBJECT_POSE_BYTES)))
  }
  return {serverTimeMs: view.getUint32(4, true), poses, objects}
}

/** Angle between two rotations, in radians. */
export function angleBetween(a: Quat, b: Quat): number {
  const dot = a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3]
  return 2 * Math.acos(Math.min(Math.abs(dot), 1))
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(Math.max(value, min), max)
}

function quantizeMm(metres: number, maxMm: number): number {
  if (!Number.isFinite(metres)) {
    return 0
  }
  // Rust's `as i32` saturates; clamping before converting does the same here.
  return clamp(roundHalfAway(f(f(metres) * 1000)), -maxMm, maxMm) | 0
}

/** `(value + 0.5f32.copysign(value)) as i32` without the saturation (callers clamp). */
function roundHalfAway(value: number): number {
  const half = value < 0 || Object.is(value, -0) ? -0.5 : 0.5
  return Math.trunc(f(value + half))
}

function mmToM(mm: number): number {
  return f(mm / 1000)
}

/** f32 sum of squares, added in index order as Rust's `.sum()` does. */
function sumOfSquares(q: readonly number[]): number {
  let sum = 0
  for (const c of q) {
    sum = f(sum + f(c * c))
  }
  return sum
}

/**
 * Smallest-three: drop the largest component (its sign made positive), store its
 * index and the other three, each in [-1/sqrt 2, 1/sqrt 2], on 10 bits.
 */
function encodeRotation(input: Quat): number {
  const raw = input.map(f)
  const norm = f(Math.sqrt(sumOfSquares(raw)))
  const q = Number.isFinite(norm) && norm > 1e-6 ? raw.map((c) => f(c / norm)) : [0, 0, 0, 1]
  let largest = 0
  for (let i = 1; i < 4; i++) {
    if (Math.abs(q[i]) > Math.abs(q[largest])) {
      largest = i
    }
  }
  const sign = q[largest] < 0 ? -1 : 1
  let packed = largest
  let shift = 2
  for (let i = 0; i < 4; i++) {
    if (i === largest) {
      continue
    }
    const unit = clamp(f((q[i] * sign) / INV_SQRT2), -1, 1)
    const step = roundHalfAway(f(f(f(unit + 1) * 0.5) * ROTATION_STEPS))
    packed += step * 2 ** shift
    shift += ROTATION_COMPONENT_BITS
  }
  return packed
}

function decodeRotation(packed: number): Quat {
  const largest = packed & 0b11
  const q = [0, 0, 0, 0]
  let shift = 2
  let sum = 0
  for (let i = 0; i < 4; i++) {
    if (i === largest) {
      continue
    }
    const step = Math.floor(packed / 2 ** shift) & ((1 << ROTATION_COMPONENT_BITS) - 1)
    q[i] = f(f(f(f(step / ROTATION_STEPS) * 2) - 1) * INV_SQRT2)
    sum = f(sum + f(q[i] * q[i]))
    shift += ROTATION_COMPONENT_BITS
  }
  q[largest] = f(Math.sqrt(Math.max(f(1 - sum), 0)))
  // Corrupt input can make the three too large; renormalize as Rust does.
  const norm = f(Math.sqrt(sumOfSquares(q)))
  return q.map((c) => f(c / norm)) as Quat
}

/** Little-endian bit stream, least significant bit first, as pose.rs (and objects.rs) write it. */
class BitWriter {
  private readonly bytes: Uint8Array
  private position = 0

  constructor(private readonly size = POSE_BYTES) {
    this.bytes = new Uint8Array(size)
  }

  /** Writes the low `bits` bits of a non-negative integer below 2^32. */
  write(value: number, bits: number): void {
    for (let i = 0; i < bits; i++) {
      if (Math.floor(value / 2 ** i) % 2 === 1) {
        this.bytes[this.position >> 3] |= 1 << (this.position & 7)
      }
      this.position++
    }
  }

  writeSigned(value: number, bits: number): void {
    // Offset binary: -max..=max maps to 1..=2*max+1.
    this.write(value + (1 << (bits - 1)), bits)
  }

  finish(): Uint8Array {
    if (this.position !== this.size * 8) {
      throw new Error(`pose encoder wrote ${this.position} bits instead of ${this.size * 8}`)
    }
    return this.bytes
  }
}

class BitReader {
  private position = 0

  constructor(private readonly bytes: Uint8Array) {}

  read(bits: number): number {
    let value = 0
    for (let i = 0; i < bits; i++) {
      const bit = (this.bytes[this.position >> 3] >> (this.position & 7)) & 1
      value += bit * 2 ** i
      this.position++
    }
    return value
  }

  readSigned(bits: number): number {
    return this.read(bits) - (1 << (bits - 1))
  }
}
