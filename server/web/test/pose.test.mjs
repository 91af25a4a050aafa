// pose.ts against the shared vectors that protocol/src/pose.rs generated:
// encoding is byte for byte, decoding value for value (f32 rounding included).
//
//   node --test server/web/test/

import assert from "node:assert/strict"
import {readFileSync} from "node:fs"
import {join} from "node:path"
import {test} from "node:test"

import {ROOT, loadTs} from "./load.mjs"

const pose = await loadTs("src/protocol/pose.ts")
const vectors = JSON.parse(readFileSync(join(ROOT, "protocol", "vectors", "poses.json"), "utf8"))

const hex = (bytes) => Buffer.from(bytes).toString("hex")
const unhex = (text) => new Uint8Array(Buffer.from(text, "hex"))

test("the vectors file has poses and a batch", () => {
  assert.ok(vectors.poses.length >= 4, "too few pose vectors")
  assert.ok(vectors.batch?.hex, "no batch vector")
})

for (const vector of vectors.poses) {
  test(`encodes "${vector.name}" byte for byte`, () => {
    const {slot, flags, head, left, right} = vector.input
    assert.equal(hex(pose.encodePose(slot, {head, left, right, flags})), vector.encoded_hex)
  })

  test(`decodes "${vector.name}" exactly`, () => {
    const {slot, pose: decoded} = pose.decodePose(unhex(vector.encoded_hex))
    const {slot: expectedSlot, flags, head, left, right} = vector.decoded
    assert.equal(slot, expectedSlot)
    assert.deepEqual(decoded, {head, left, right, flags})
  })

  test(`"${vector.name}" round-trips within the stated error bound`, () => {
    const {slot, flags, head, left, right} = vector.input
    const {pose: decoded} = pose.decodePose(pose.encodePose(slot, {head, left, right, flags}))
    // The clamped vector is outside the range by design; its positions are not bounded.
    const clamped = vector.name.startsWith("clamped")
    for (const part of ["head", "left", "right"]) {
      if (!clamped) {
        for (let axis = 0; axis < 3; axis++) {
          const error = Math.abs(decoded[part].position[axis] - vector.input[part].position[axis])
          assert.ok(error <= pose.POSITION_ERROR_BOUND_M, `${part} axis ${axis} off by ${error}`)
        }
      }
      const angle = pose.angleBetween(decoded[part].orientation, normalised(vector.input[part].orientation))
      assert.ok(angle <= pose.ANGLE_ERROR_BOUND_RAD, `${part} turned by ${angle} rad`)
    }
  })
}

test("decodes the batch vector and re-encodes it byte for byte", () => {
  const bytes = unhex(vectors.batch.hex)
  const batch = pose.decodeBatch(bytes)
  assert.equal(batch.serverTimeMs, vectors.batch.server_time_ms)
  assert.equal(batch.poses.length, vectors.poses.length)
  for (const [i, vector] of vectors.poses.entries()) {
    assert.equal(batch.poses[i].slot, vector.decoded.slot, `pose ${i}`)
    const {flags, head, left, right} = vector.decoded
    assert.deepEqual(batch.poses[i].pose, {head, left, right, flags}, `pose ${i}`)
  }
  const reencoded = pose.encodeBatch(
    batch.serverTimeMs,
    vectors.poses.map((vector) => unhex(vector.encoded_hex)),
  )
  assert.equal(hex(reencoded), vectors.batch.hex)
})

test("malformed poses and batches are refused with the Rust messages", () => {
  const check = (action, message) => assert.throws(action, (error) => error instanceof pose.PoseError && error.message === message)
  check(() => pose.decodePose(new Uint8Array(32)), "a pose is 31 bytes, got 32")
  const batch = unhex(vectors.batch.hex)
  check(() => pose.decodeBatch(batch.subarray(0, 5)), "a pose batch needs an 8-byte header, got 5 bytes")
  check(
    () => pose.decodeBatch(batch.subarray(0, 8 + 31)),
    `pose batch says ${vectors.poses.length} poses (${vectors.poses.length * 31} bytes) but carries 31 bytes`,
  )
  const wrongFormat = batch.slice()
  wrongFormat[0] = 9
  check(() => pose.decodeBatch(wrongFormat), "pose batch format 9 is not supported; this build reads formats 1 and 2")
})

test("object poses round trip in batches; format 1 batches still read", () => {
  const object = {handle: 513, flags: pose.ObjectPoseFlags.HELD, position: [1.2345, 0.75, -1.6], orientation: [0, Math.SQRT1_2, 0, Math.SQRT1_2]}
  const encoded = pose.encodeObjectPose(object)
  assert.equal(encoded.length, 14)
  const batch = pose.decodeBatch(pose.encodeBatch(77, vectors.poses.map((vector) => unhex(vector.encoded_hex)), [encoded, encoded]))
  assert.equal(batch.poses.length, vectors.poses.length)
  assert.equal(batch.objects.length, 2)
  const [decoded] = batch.objects
  assert.equal(decoded.handle, 513)
  assert.equal(decoded.flags, pose.ObjectPoseFlags.HELD)
  decoded.position.forEach((c, i) => assert.ok(Math.abs(c - object.position[i]) <= pose.POSITION_ERROR_BOUND_M))
  assert.ok(pose.angleBetween(decoded.orientation, object.orientation) <= pose.ANGLE_ERROR_BOUND_RAD)
  // Format 1: the second header byte was reserved and never counts objects.
  const old = unhex(vectors.batch.hex)
  old[0] = 1
  old[1] = 7
  assert.equal(pose.decodeBatch(old).objects.length, 0)
  const push = pose.encodePosePush(pose.encodePose(0, vectors.poses[0].decoded), [encoded])
  assert.equal(push.length, 31 + 14)
})

test("non-finite input encodes as the origin and identity", () => {
  const joint = {position: [NaN, Infinity, -Infinity], orientation: [NaN, 0, 0, 1]}
  const {pose: decoded} = pose.decodePose(pose.encodePose(3, {head: joint, left: joint, right: joint, flags: 0xff}))
  assert.deepEqual(decoded.head.position, [0, 0, 0])
  assert.equal(decoded.flags, 0x0f, "only four flag bits travel")
  assert.ok(pose.angleBetween(decoded.head.orientation, [0, 0, 0, 1]) <= pose.ANGLE_ERROR_BOUND_RAD)
})

function normalised(q) {
  const norm = Math.hypot(...q)
  return q.map((c) => c / norm)
}
