// physics.ts against the throws physics/tests/vectors.rs wrote with the Rust
// crate: every sampled position within 1 mm, the rest pose within 1 mm and the
// rest step within 2 (the twin is written to agree to the bit; the bounds are
// what a client needs). Also the frame clock, the hand velocity estimator and
// hostile numbers.
//
//   node --test server/web/test/physics.test.mjs

import assert from "node:assert/strict"
import {readFileSync} from "node:fs"
import {join} from "node:path"
import {test} from "node:test"

import {ROOT, loadTs} from "./load.mjs"

const physics = await loadTs("src/room/physics.ts")
const vectors = JSON.parse(readFileSync(join(ROOT, "physics", "vectors", "throws.json"), "utf8"))
const {Body, Flight, VelocityEstimator, World, step, simulateToRest} = physics

const MM = 0.001

const distance = (a, b) => Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2])
const released = (start, kind) =>
  Body.released({kind, position: start.position, orientation: start.orientation}, start.velocity, start.angular_velocity)

test("the vectors and physics.ts agree on the step, the rest count and the room", () => {
  assert.ok(vectors.throws.length >= 12, `only ${vectors.throws.length} throws`)
  assert.equal(physics.STEP_SECONDS, vectors.step_seconds)
  assert.equal(physics.REST_STEPS, vectors.rest_steps)
  assert.equal(physics.MAX_FLIGHT_STEPS, vectors.max_flight_steps)
  const world = World.room()
  assert.equal(world.halfSize, vectors.world.half_size)
  assert.deepEqual(
    world.boxes.map((b) => ({min: b.min, max: b.max})),
    vectors.world.boxes,
  )
  assert.deepEqual(physics.TABLE, vectors.world.boxes[0])
})

let worstSample = 0
let worstRest = 0
for (const vector of vectors.throws) {
  test(`replays "${vector.name}"`, () => {
    const world = World.room()
    const body = released(vector.start, vector.kind)
    const samples = new Map(vector.samples.map((s) => [s.step, s]))
    let steps = 0
    let rested = false
    while (steps < vectors.max_flight_steps + 2 && !rested) {
      steps += 1
      rested = step(world, body)
      const expected = samples.get(steps)
      if (!rested && expected !== undefined) {
        const off = distance(body.position, expected.position)
        worstSample = Math.max(worstSample, off)
        assert.ok(off <= MM, `step ${steps}: at ${body.position}, Rust at ${expected.position} (${off} m apart)`)
      }
    }
    assert.ok(rested, `still flying after ${steps} steps`)
    assert.ok(
      Math.abs(steps - vector.rest.steps) <= 2,
      `rested after ${steps} steps, Rust after ${vector.rest.steps}`,
    )
    const off = distance(body.position, vector.rest.pose.position)
    worstRest = Math.max(worstRest, off)
    assert.ok(off <= MM, `rests at ${body.position}, Rust at ${vector.rest.pose.position}`)
    const turn = Math.abs(vector.rest.pose.orientation.reduce((sum, c, i) => sum + c * body.orientation[i], 0))
    assert.ok(turn > 1 - 1e-6, `rests turned ${body.orientation}, Rust ${vector.rest.pose.orientation}`)
    assert.deepEqual(body.velocity, [0, 0, 0])
  })
}

test("the replay was exact where it could be", () => {
  // Not required (the bounds above are), but the twin is written to be bit-equal;
  // print how far it is so drift shows before it breaks the bounds.
  process.stdout.write(`physics.ts vs Rust: worst sample ${worstSample} m, worst rest ${worstRest} m\n`)
})

test("a frame-clock flight rests where the vectors do, whatever the frame rate", () => {
  const world = World.room()
  for (const vector of vectors.throws) {
    for (const frame of [1 / 144, 1 / 60, 1 / 30]) {
      const flight = new Flight(released(vector.start, vector.kind))
      let frames = 0
      while (!flight.advance(world, frame)) {
        frames += 1
        assert.ok(frames < 4 * vectors.max_flight_steps, `"${vector.name}" never rests`)
      }
      assert.equal(flight.steps, vector.rest.steps, `"${vector.name}" at ${frame} s frames`)
      assert.ok(distance(flight.body.position, vector.rest.pose.position) <= MM)
    }
  }
  // A stall runs at most a second; bad frame times run nothing.
  const longest = vectors.throws.reduce((a, b) => (b.rest.steps > a.rest.steps ? b : a))
  assert.ok(longest.rest.steps > 90)
  const flight = new Flight(released(longest.start, longest.kind))
  for (const bad of [-1, NaN, Infinity]) assert.equal(flight.advance(world, bad), false)
  assert.equal(flight.steps, 0)
  flight.advance(world, 30)
  assert.equal(flight.steps, 90)
})

test("the velocity estimator recovers a known hand velocity", () => {
  const estimator = new VelocityEstimator()
  assert.deepEqual(estimator.velocity(), [[0, 0, 0], [0, 0, 0]])
  const v = [1.5, -0.5, 3]
  const spin = 2 // rad/s about +Y
  for (let i = 0; i < 40; i++) {
    const s = i / 90
    const position = [0.2 + v[0] * s, 1 + v[1] * s, v[2] * s]
    const orientation = [0, Math.sin((spin * s) / 2), 0, Math.cos((spin * s) / 2)]
    estimator.push(10 + s, position, orientation)
    if (i % 3 === 0) estimator.push(10 + s, position, orientation) // a duplicate timestamp
  }
  const [linear, angular] = estimator.velocity()
  for (let axis = 0; axis < 3; axis++) assert.ok(Math.abs(linear[axis] - v[axis]) < 1e-3, `${linear}`)
  assert.ok(Math.abs(angular[1] - spin) < 1e-2 && Math.abs(angular[0]) < 1e-3, `${angular}`)

  estimator.clear()
  estimator.push(1, [0, 0, 0], [0, 0, 0, 1])
  estimator.push(1, [1, 1, 1], [0, 0, 0, 1])
  assert.deepEqual(estimator.velocity(), [[0, 0, 0], [0, 0, 0]], "two samples at one time")
  estimator.push(1.5, [2, 1, 1], [0, 0, 0, 1])
  assert.ok(Math.abs(estimator.velocity()[0][0] - 2) < 1e-4, "samples further apart than the window")
  estimator.push(0.5, [0, 0, 0], [0, 0, 0, 1])
  estimator.push(NaN, [0, 0, 0], [0, 0, 0, 1])
  estimator.push(0.6, [NaN, 0, 0], [0, 0, 0, 1])
  assert.deepEqual(estimator.velocity(), [[0, 0, 0], [0, 0, 0]], "a clock that went back starts over")
})

test("non-finite input becomes a dropped object at rest", () => {
  const world = World.room()
  const cases = [
    new Body("cube", [NaN, 2, -1.6], [0, 0, 0, 1], [0, 0, 0], [0, 0, 0]),
    new Body("ball", [0, Infinity, 0], [0, 0, 0, 1], [1, 1, 1], [0, 0, 0]),
    new Body("marker", [1, 2, 1], [NaN, 0, 0, 1], [NaN, 0, 0], [0, -Infinity, 0]),
    new Body("ball", [1e30, 1e30, -1e30], [0, 0, 0, 1], [1e30, -1e30, 1e30], [1e30, 1e30, 1e30]),
  ]
  for (const body of cases) {
    const steps = simulateToRest(world, body, physics.MAX_FLIGHT_STEPS)
    assert.ok(steps <= physics.MAX_FLIGHT_STEPS)
    for (const part of [body.position, body.orientation, body.velocity, body.angularVelocity]) {
      assert.ok(part.every(Number.isFinite), `${part}`)
    }
    assert.deepEqual(body.velocity, [0, 0, 0])
    assert.ok(Math.abs(body.position[0]) <= 15 && Math.abs(body.position[2]) <= 15)
    const height = body.position[1] - physics.collisionRadius(body.kind)
    assert.ok(Math.abs(height) < 1e-6 || Math.abs(height - 0.75) < 1e-6, `rests at ${body.position}`)
  }
  const onTable = new Body("cube", [NaN, 2, -1.6], [0, 0, 0, 1], [0, 0, 0], [0, 0, 0])
  assert.equal(step(world, onTable), true, "a non-finite body rests at once")
  assert.deepEqual(onTable.position, [0, Math.fround(0.8), Math.fround(-1.6)])
  const zero = new Body("cube", [5, 3, 5], [0, 0, 0, 0], [1, 1, 1], [1, 1, 1])
  assert.equal(simulateToRest(world, zero, 0), 0)
  assert.deepEqual(zero.position, [5, Math.fround(0.05), 5])
  assert.deepEqual(zero.orientation, [0, 0, 0, 1])
})
