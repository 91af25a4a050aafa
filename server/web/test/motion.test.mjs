// The pieces that decide how avatars move on screen and on the wire, without a
// browser: interpolation (a port of app/src/interpolation.rs, with its test) and
// the pose sender's rate and change rules.

import assert from "node:assert/strict"
import {test} from "node:test"

import {loadTs} from "./load.mjs"

const {AvatarTrack, DEFAULT_DELAY} = await loadTs("src/room/interpolation.ts")
const {PoseSender, restingHands, headingOf} = await loadTs("src/room/localPose.ts")
const {angleBetween, decodePose} = await loadTs("src/protocol/pose.ts")

/** A head walking along -Z at 1 m/s while turning at 1 rad/s (the Rust test's truth). */
function truth(t) {
  const identity = () => ({position: [0, 0, 0], orientation: [0, 0, 0, 1]})
  return {
    head: {position: [0, 1.6, -t], orientation: [0, Math.sin(t / 2), 0, Math.cos(t / 2)]},
    left: identity(),
    right: identity(),
    flags: 0,
  }
}

/** Deterministic jitter in [0, max) seconds, the same sequence as the Rust test. */
function jitter(i, max) {
  const x = Number(((BigInt(i) * 6364136223846793005n + 1442695040888963407n) & 0xffffffffffffffffn) >> 33n)
  return (x / 2 ** 31) * max
}

test("jittered 30 Hz samples play back smoothly 100 ms late", () => {
  const track = new AvatarTrack()
  const latency = 0.04
  let worstPosition = 0
  let worstAngle = 0
  let next = 0
  // Render at 90 Hz for 3 s while 30 Hz samples arrive with up to 50 ms jitter.
  for (let frame = 0; frame < 270; frame++) {
    const now = frame / 90
    while (next / 30 + latency + jitter(next, 0.05) <= now) {
      const sent = next / 30
      track.push(sent + latency + jitter(next, 0.05), sent, truth(sent))
      next++
    }
    if (now < 0.5) {
      continue
    }
    const shown = track.sample(now)
    const expected = truth(now - latency - DEFAULT_DELAY)
    worstPosition = Math.max(worstPosition, Math.abs(shown.head.position[2] - expected.head.position[2]))
    worstAngle = Math.max(worstAngle, angleBetween(shown.head.orientation, expected.head.orientation))
  }
  assert.ok(worstPosition < 0.005, `position off by ${worstPosition} m`)
  assert.ok(worstAngle < 0.01, `orientation off by ${worstAngle} rad`)
})

test("holds the newest pose when samples stop, and sorts late samples into place", () => {
  const track = new AvatarTrack()
  assert.equal(track.sample(0), null)
  track.push(1.0, 0.0, truth(0))
  track.push(1.033, 0.033, truth(0.033))
  assert.deepEqual(track.sample(10).head.position, truth(0.033).head.position)

  const late = new AvatarTrack(0)
  late.push(0.0, 0.0, truth(0))
  late.push(0.2, 0.2, truth(0.2))
  late.push(0.21, 0.1, truth(0.1))
  assert.ok(Math.abs(late.sample(0.15).head.position[2] + 0.15) < 1e-4)
})

function frames(rateHz, seconds) {
  return Array.from({length: Math.round(rateHz * seconds)}, (_, i) => (i * 1000) / rateHz)
}

test("poses go out at most 30 times a second at any frame rate", () => {
  for (const fps of [30, 60, 72, 90, 120, 144]) {
    const sent = []
    const sender = new PoseSender(() => true)
    for (const now of frames(fps, 3)) {
      // Always moving, so every allowed send happens.
      if (sender.offer(now, truth(now / 1000))) {
        sent.push(now)
      }
    }
    const perSecond = sent.filter((t) => t >= 1000 && t < 2000).length
    assert.ok(perSecond <= 30, `${fps} fps: ${perSecond} sends in a second`)
    assert.ok(perSecond >= (fps >= 60 ? 29 : 28), `${fps} fps: only ${perSecond} sends in a second`)
    const gaps = sent.slice(1).map((t, i) => t - sent[i])
    assert.ok(Math.min(...gaps) >= 1000 / 60 - 1e-9, `${fps} fps: two sends ${Math.min(...gaps)} ms apart`)
  }
})

test("an unchanged pose is not sent again until after a reset", () => {
  const sent = []
  const sender = new PoseSender((bytes) => {
    sent.push(bytes)
    return true
  })
  const still = truth(1)
  for (const now of frames(60, 1)) {
    sender.offer(now, still)
  }
  assert.equal(sent.length, 1, "a still visitor sends once")
  assert.equal(sent[0].length, 31)
  assert.equal(decodePose(sent[0]).slot, 0, "the server stamps the slot")
  sender.reset()
  sender.offer(2000, still)
  assert.equal(sent.length, 2, "after a rejoin the server needs the pose again")
})

test("holding an object, a still visitor still sends every 500 ms, the object pose after the avatar's", () => {
  const sent = []
  const sender = new PoseSender((bytes) => {
    sent.push(bytes)
    return true
  })
  const still = truth(1)
  const held = new Uint8Array(14).fill(7)
  for (const now of frames(60, 2)) {
    sender.offer(now, still, [held])
  }
  // At 0, then at each frame 500 ms or more after the last send: about every 500 ms for 2 s.
  assert.ok(sent.length >= 4 && sent.length <= 5, `a held object is kept alive (${sent.length} sends in 2 s)`)
  assert.ok(sent.every((bytes) => bytes.length === 31 + 14))
  assert.deepEqual([...sent[0].subarray(31)], [...held])
})

test("sub-millimetre tracking noise is not a change; a millimetre is; a still pose is refreshed every second", () => {
  // The native client's PoseSender (app/src/client/pose_sender.rs) runs the same case.
  const [x, y, z] = [0.0302, 0.2803, 0.0101]
  const w = Math.sqrt(1 - x * x - y * y - z * z)
  const still = (t, shift = 0) => {
    const noise = 0.0003 * Math.sin(t * 37)
    const wobble = 0.00005 * Math.cos(t * 53)
    const identity = () => ({position: [0, 0, 0], orientation: [0, 0, 0, 1]})
    return {
      head: {position: [0.4 + shift + noise, 1.65 - noise, 3 + noise], orientation: [x + wobble, y - wobble, z, w]},
      left: identity(),
      right: identity(),
      flags: 0,
    }
  }
  const sendTimes = (pose) => {
    const sent = []
    const sender = new PoseSender(() => true)
    for (const now of frames(90, 3)) {
      if (sender.offer(now, pose(now / 1000))) {
        sent.push(now)
      }
    }
    return sent
  }
  // Unchanged, the pose goes out again only as the refresh every POSE_REFRESH_MS (1 s).
  assert.deepEqual(sendTimes((t) => still(t)), [0, 1000, 2000], "noise counted as movement")
  assert.deepEqual(sendTimes((t) => still(t, t >= 1.5 ? 0.001 : 0)), [0, 1000, 1500, 2500])
})

test("a refused send is retried on the next frame", () => {
  let open = false
  const sender = new PoseSender(() => open)
  assert.equal(sender.offer(0, truth(0)), false)
  open = true
  assert.equal(sender.offer(16, truth(0)), true)
})

test("resting hands hang at the sides and turn with the head's heading", () => {
  for (const yaw of [0, 0.5, -2, Math.PI]) {
    const head = {position: [1, 1.6, -2], orientation: [0, Math.sin(yaw / 2), 0, Math.cos(yaw / 2)]}
    assert.ok(Math.abs(Math.atan2(Math.sin(headingOf(head.orientation) - yaw), Math.cos(headingOf(head.orientation) - yaw))) < 1e-9)
    const {left, right} = restingHands(head)
    // Left of a head looking along (-sin yaw, -cos yaw) is (-cos yaw, sin yaw).
    const leftward = [-Math.cos(yaw), 0, Math.sin(yaw)]
    const side = (hand) => (hand.position[0] - 1) * leftward[0] + (hand.position[2] + 2) * leftward[2]
    assert.ok(side(left) > 0.2 && side(right) < -0.2, `yaw ${yaw}: left ${side(left)}, right ${side(right)}`)
    assert.ok(left.position[1] < 1.6 && right.position[1] < 1.6)
  }
})
