// The room's objects (src/room/objects.ts) without a browser: Babylon's
// NullEngine, a recording stand-in for the room channel, and time as an input.
// The end-to-end behaviour with a real server is tests/web/objects.test.mjs.

import assert from "node:assert/strict"
import {test} from "node:test"

import {loadTs} from "./load.mjs"

// Node has no canvas: the holder's name tag draws into one that keeps nothing.
globalThis.OffscreenCanvas ??= class {
  constructor(width, height) {
    Object.assign(this, {width, height})
  }

  getContext() {
    return new Proxy({}, {get: (target, key) => (key in target ? target[key] : () => ({width: 0})), set: (target, key, value) => ((target[key] = value), true)})
  }
}

const {RoomObjects, RoomScene, RefusedError, decodeObjectPose, ObjectPoseFlags} = await loadTs("test/objects.entry.ts")

const SELF_SLOT = 3
const cube = {kind: "cube", colour: "#d94c3d", position: [0, 0.8, -1.6], orientation: [0, 0, 0, 1]}

/** A channel that records pushes and answers grabs as the test says. */
function channel({grab = async () => 7} = {}) {
  const calls = []
  return {
    calls,
    grabObject: (id) => (calls.push(["grab", id]), grab(id)),
    releaseObject: async (id) => void calls.push(["release", id]),
    setObject: async (id, state) => (calls.push(["set", id, state]), 1),
    removeObject: async (id) => void calls.push(["remove", id]),
  }
}

function setUp(options) {
  const scene = RoomScene()
  const net = channel(options)
  const notes = []
  const objects = new RoomObjects(scene, net, (text) => notes.push(text))
  objects.joined([{object_id: "cube-1", handle: 7, state: cube}], SELF_SLOT)
  return {objects, net, notes, scene}
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0))

test("a carried cube follows the hand, rides in pose pushes as held, and a throw ends with object_set at its rest", async () => {
  const {objects, net} = setUp()
  assert.equal(objects.grab("cube-1"), true)
  await tick()
  let now = 1000
  // Carried up and sideways at 1 m/s for 200 ms.
  for (let i = 0; i <= 20; i++, now += 10) {
    objects.moveHeld("cube-1", {position: [i * 0.01, 1.2, -1.6], orientation: [0, 0, 0, 1]}, now)
    objects.frame(now)
  }
  const [pose] = objects.encodedPoses().map(decodeObjectPose)
  assert.equal(pose.handle, 7)
  assert.equal(pose.flags, ObjectPoseFlags.HELD)
  assert.ok(Math.abs(pose.position[0] - 0.2) < 0.002)
  objects.release("cube-1", now)
  await tick()
  assert.deepEqual(net.calls.map((c) => c[0]), ["grab", "release"])
  const view = () => objects.views().find((o) => o.id === "cube-1")
  assert.equal(view().throwing, true)
  assert.equal(decodeObjectPose(objects.encodedPoses()[0]).flags & ObjectPoseFlags.HELD, 0, "a flying pose is not held")
  for (let i = 0; i < 20 * 90 && !net.calls.some((c) => c[0] === "set"); i++) {
    now += 1000 / 90
    objects.frame(now)
  }
  const set = net.calls.find((c) => c[0] === "set")
  assert.ok(set, "the flight ended with object_set")
  const rest = set[2]
  assert.equal(rest.kind, "cube")
  assert.equal(rest.colour, cube.colour)
  assert.ok(rest.position[0] > 0.2, `the cube flew on along +X (${rest.position})`)
  assert.ok(Math.abs(rest.position[1] - 0.05) < 0.002 || Math.abs(rest.position[1] - 0.8) < 0.002, `it rests on the floor or the table (${rest.position})`)
  assert.deepEqual(objects.encodedPoses(), [], "nothing streams once it rests")
  assert.equal(view().resting, true)
})

test("a refused grab puts the object back and names who holds it", async () => {
  const holder = {user_id: "u-ann", name: "Ann", slot: 1, throwing: false}
  const {objects, notes} = setUp({grab: async () => Promise.reject(new RefusedError("object_held", "someone holds it", holder))})
  objects.grab("cube-1")
  objects.moveHeld("cube-1", {position: [1, 1, 1], orientation: [0, 0, 0, 1]}, 0)
  await tick()
  objects.frame(16)
  assert.deepEqual(notes, ["Ann is holding that"])
  const view = objects.views()[0]
  assert.deepEqual(view.position.map((c) => Math.round(c * 1000) / 1000), cube.position)
  assert.deepEqual(objects.encodedPoses(), [])
})

test("a catch by someone else stops this visitor's flight; their poses show it", async () => {
  const {objects, net, scene} = setUp()
  objects.grab("cube-1")
  await tick()
  objects.moveHeld("cube-1", {position: [0, 1.5, -1.6], orientation: [0, 0, 0, 1]}, 0)
  objects.release("cube-1", 10)
  await tick()
  objects.frame(20)
  objects.holderChanged({object_id: "cube-1", handle: 7, holder: {user_id: "u-bo", name: "Bo", slot: 5, throwing: false}})
  assert.deepEqual(objects.encodedPoses(), [])
  objects.poses([{handle: 7, flags: ObjectPoseFlags.HELD, position: [2, 1, 0], orientation: [0, 0, 0, 1]}], 100, 5000)
  for (let now = 100; now < 400; now += 16) {
    objects.frame(now)
  }
  const label = scene.getMeshByName("object-cube-1-label")
  assert.ok(label?.isEnabled(), "the catcher's name shows over the cube")
  assert.ok(Math.abs(label.position.y - 1.13) < 1e-6)
  const view = objects.views()[0]
  assert.equal(view.holder, "u-bo")
  assert.deepEqual(view.position, [2, 1, 0])
  assert.ok(!net.calls.some((c) => c[0] === "set"), "the caught flight stores no rest")
  // Stored where the catcher put it down.
  objects.event({id: 9, user_id: "u-bo", name: "Bo", sent_at: 0, body: {type: "object_set", object_id: "cube-1", state: {...cube, position: [2, 0.05, 0]}}})
  objects.frame(500)
  assert.deepEqual(objects.views()[0].position, [2, 0.05, 0])
  assert.equal(objects.views()[0].resting, true)
  assert.ok(!label.isEnabled(), "no name over a resting cube")
  objects.event({id: 10, user_id: "u-bo", name: "Bo", sent_at: 0, body: {type: "object_remove", object_id: "cube-1"}})
  assert.deepEqual(objects.views(), [])
})
