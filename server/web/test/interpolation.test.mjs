// interpolation.ts against the shared vectors in protocol/vectors/interpolation.json,
// which app/src/interpolation.rs checks too, so the browser and the native app
// move remote avatars alike: clock offset, ordering, history, flags, and the
// start-over when the room's clock restarts.
//
//   node --test server/web/test/

import assert from "node:assert/strict"
import {readFileSync} from "node:fs"
import {join} from "node:path"
import {test} from "node:test"

import {ROOT, loadTs} from "./load.mjs"

const {AvatarTrack} = await loadTs("src/room/interpolation.ts")
const {angleBetween} = await loadTs("src/protocol/pose.ts")
const vectors = JSON.parse(readFileSync(join(ROOT, "protocol", "vectors", "interpolation.json"), "utf8"))

/** The pose a vector's `value` stands for: head at [v, 1.6, -v] turned v/10 rad about +Y, hands at the identity. */
function poseOf(value, flags = 0) {
  const identity = () => ({position: [0, 0, 0], orientation: [0, 0, 0, 1]})
  const half = value / 20
  return {
    head: {position: [value, 1.6, -value], orientation: [0, Math.sin(half), 0, Math.cos(half)]},
    left: identity(),
    right: identity(),
    flags,
  }
}

test("the vectors file has cases", () => {
  assert.ok(vectors.cases.length >= 10, "too few interpolation vectors")
})

for (const vector of vectors.cases) {
  test(vector.name, () => {
    const track = new AvatarTrack(vector.delay)
    for (const [i, step] of vector.steps.entries()) {
      const at = `step ${i}`
      if (step.push) {
        const {receive, server, value, flags} = step.push
        track.push(receive, server, poseOf(value, flags ?? 0))
      } else if (step.sample) {
        const {now, expect, flags} = step.sample
        const shown = track.sample(now)
        if (expect === null) {
          assert.equal(shown, null, `${at}: expected no pose`)
          continue
        }
        assert.ok(shown, `${at}: expected ${expect}, got none`)
        const expected = poseOf(expect)
        for (let axis = 0; axis < 3; axis++) {
          const error = Math.abs(shown.head.position[axis] - expected.head.position[axis])
          assert.ok(error <= 1e-4, `${at}: expected ${expect}, head at ${shown.head.position}`)
        }
        const angle = angleBetween(shown.head.orientation, expected.head.orientation)
        assert.ok(angle <= 1e-3, `${at}: head turned ${angle} rad off`)
        if (flags !== undefined) {
          assert.equal(shown.flags, flags, `${at}: flags`)
        }
      } else if (step.reset) {
        track.reset()
      } else {
        assert.fail(`${at}: unknown step ${JSON.stringify(step)}`)
      }
    }
  })
}
