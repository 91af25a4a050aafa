// Shared objects between a browser and the native client: the real server,
// Debian's headless Chromium (playwright-core) driven with the real mouse,
// and `roomscale join --headless` watching (`--watch-objects`) or throwing
// (`--grab-throw`).
//
//   node --test tests/web/objects-native.test.mjs
//
// A native screenshot of the thrown cube at rest goes to
// artifacts/web/objects-native.png. Without Chromium every test prints
// `skipped: <reason>` and passes.

import assert from "node:assert/strict"

import {
  artifactPath,
  distance,
  hexToRgb,
  matchingPixels,
  startNative,
  waitFor,
  waitInRoom,
} from "./harness.mjs"
import {
  dragThrough,
  glide,
  lookAt,
  nearestEarlier,
  objectOf,
  objectTests,
  openTallVisitor,
  pagePointOf,
  pressOn,
  startRecording,
  stopRecording,
} from "./objects-harness.mjs"

/** How far apart the browser and the native client may show one object and still agree, in metres. */
const SAME_PLACE_M = 0.05
/** How far behind the browser holder the native client may show a carried object, in milliseconds. */
const FOLLOWS_WITHIN_MS = 200
/** How long a thrown object may take to come to rest everywhere, in milliseconds. */
const RESTS_WITHIN_MS = 20_000
/** The native headless view: see app/src/view.rs. */
const VIEW = {width: 640, height: 480, verticalFovDegrees: 70}

const {fixture, browserTest} = objectTests()

/** Node's clock as wall-clock milliseconds, comparable with a page's `performance.timeOrigin + performance.now()`. */
const wallClock = (nodeMs) => performance.timeOrigin + nodeMs

/** What `--watch-objects` printed so far about `id`: [{at (wall ms it arrived), position, holder, resting}]. */
function watched(native, id) {
  const seen = []
  native.lines.forEach((line, i) => {
    if (!line.startsWith("{")) {
      return
    }
    const change = JSON.parse(line)
    if (change.id === id) {
      seen.push({at: wallClock(native.arrivals[i]), ...change})
    }
  })
  return seen
}

const latest = (native, id) => watched(native, id).at(-1)

/** Where a world point lands in the native view from `eye` looking along -Z. */
function project(point, eye) {
  const [x, y, z] = point.map((c, i) => c - eye[i])
  assert.ok(z < 0, "the point is in front of the native viewer")
  const tan = Math.tan((VIEW.verticalFovDegrees / 2) * (Math.PI / 180))
  const aspect = VIEW.width / VIEW.height
  const ndc = [x / (-z * tan * aspect), y / (-z * tan)]
  return [((ndc[0] + 1) / 2) * VIEW.width, ((1 - ndc[1]) / 2) * VIEW.height]
}

/** A browser visitor looking at `id`, and a native watcher, in a fresh room. */
async function browserAndWatcher(roomName, id) {
  const roomId = await fixture.server.createRoom(roomName)
  const visitor = await openTallVisitor(fixture, roomId)
  await waitInRoom(visitor.page)
  await waitFor(async () => Boolean(await objectOf(visitor, id)), {timeout: 10_000, what: `${id} in the browser`})
  const roomUrl = `${fixture.server.url.replace("localhost", "127.0.0.1")}/rooms/${roomId}`
  const native = startNative(["join", roomUrl, "--headless", "--name", "Native Watcher", "--watch-objects", "--seconds", "90"])
  await native.line(/^joined ".*" as (\S+) \(slot \d+\)/)
  await waitFor(() => latest(native, id), {timeout: 10_000, what: `${id} in the native client's snapshot`})
  return {roomId, roomUrl, visitor, native}
}

browserTest("a cube dragged in the browser is followed by the native client within 5 cm and 200 ms, and rests in the same place", async (t) => {
  const {visitor, native} = await browserAndWatcher("Native watches a drag", "cube-1")
  try {
    await lookAt(visitor, "cube-1", {level: false})
    const userId = await visitor.page.evaluate(() => window.roomscale.userId)
    const start = await pressOn(visitor, "cube-1")
    await waitFor(() => latest(native, "cube-1")?.holder === userId, {what: "the native client to hear who holds cube-1"})
    const linesBefore = native.lines.length
    await startRecording(visitor, "cube-1")
    const from = await dragThrough(visitor.page, start, [[0, -120], [140, -120], [140, -40], [-60, -60]])
    const own = await stopRecording(visitor)
    const travel = Math.max(...own.map(([, p]) => distance(p, own[0][1])))
    assert.ok(travel > 0.2, `the mouse carried the cube ${travel.toFixed(3)} m`)

    // Each position the native client printed during the drag: how close to
    // where the browser had it up to 200 ms before the line arrived?
    const errors = []
    for (const change of watched(native, "cube-1")) {
      if (change.at < own[0][0] + FOLLOWS_WITHIN_MS + 100 || change.at > own[own.length - 1][0]) {
        continue
      }
      errors.push(nearestEarlier(own, change.at, change.position, FOLLOWS_WITHIN_MS).distance)
    }
    assert.ok(native.lines.length - linesBefore > 20 && errors.length > 20, `the native client printed enough of the drag to judge (${errors.length})`)
    errors.sort((a, b) => a - b)
    const worst = errors[errors.length - 1]
    t.diagnostic(
      `carried ${travel.toFixed(2)} m; the native client within ${(worst * 100).toFixed(2)} cm of the browser's position ≤ ${FOLLOWS_WITHIN_MS} ms earlier (median ${(errors[errors.length >> 1] * 100).toFixed(2)} cm, ${errors.length} lines)`,
    )
    assert.ok(worst <= SAME_PLACE_M, `the native client showed the cube ${worst.toFixed(3)} m from anywhere the browser had it in the last ${FOLLOWS_WITHIN_MS} ms`)

    // A flick and let go: a throw the browser simulates and ends at rest.
    const here = (await pagePointOf(visitor, "cube-1")) ?? from
    await glide(visitor.page, here, {x: here.x + 100, y: here.y - 60}, 120)
    await visitor.page.mouse.up()
    const {value: rests} = await waitFor(async () => {
      const [browser, nativeSeen] = [await objectOf(visitor, "cube-1"), latest(native, "cube-1")]
      return browser?.resting && nativeSeen?.resting && !nativeSeen.holder ? [browser.position, nativeSeen.position] : null
    }, {timeout: RESTS_WITHIN_MS, what: "cube-1 to rest in the browser and the native client"})
    const apart = distance(...rests)
    t.diagnostic(`at rest the browser and the native client agree within ${(apart * 100).toFixed(2)} cm`)
    assert.ok(apart <= SAME_PLACE_M, `the native client shows the rest ${apart.toFixed(3)} m from the browser's`)
    assert.deepEqual(visitor.consoleErrors, [])
  } finally {
    native.stop()
    await visitor.close()
  }
})

browserTest("a cube the native client grabs and throws (--grab-throw) is seen at rest by the browser, and in the native screenshot", async (t) => {
  const {roomUrl, visitor, native} = await browserAndWatcher("Native throws", "cube-2")
  const natives = [native]
  try {
    const before = (await objectOf(visitor, "cube-2")).position
    const thrower = startNative(["join", roomUrl, "--headless", "--name", "Native Thrower", "--grab-throw", "cube-2", "--seconds", "60"])
    natives.push(thrower)
    const [, throwerId] = await thrower.line(/^joined ".*" as (\S+) \(slot \d+\)/)
    await thrower.line(/^grab-throw: holding cube-2/)
    await waitFor(async () => (await objectOf(visitor, "cube-2"))?.holder === throwerId, {what: "the browser to see the native client hold cube-2"})
    await thrower.line(/^grab-throw: threw cube-2/)
    const [, x, y, z] = await thrower.line(/^grab-throw: cube-2 rests at \[(\S+), (\S+), (\S+)\]/, RESTS_WITHIN_MS)
    const thrownTo = [x, y, z].map(Number)
    const {value: seen} = await waitFor(async () => {
      const object = await objectOf(visitor, "cube-2")
      return object?.resting && !object.holder ? object.position : null
    }, {timeout: RESTS_WITHIN_MS, what: "the browser to show cube-2 at rest"})
    const apart = distance(seen, thrownTo)
    t.diagnostic(`the native client threw cube-2 ${distance(before, thrownTo).toFixed(2)} m; the browser shows it ${(apart * 100).toFixed(2)} cm from the thrower's rest`)
    assert.ok(distance(before, thrownTo) > 0.3, `the throw moved the cube (${distance(before, thrownTo).toFixed(3)} m)`)
    assert.ok(apart <= SAME_PLACE_M, `the browser shows the rest ${apart.toFixed(3)} m from the native thrower's`)
    // The watching native client agrees too.
    const {value: watchedRest} = await waitFor(() => {
      const change = latest(native, "cube-2")
      return change?.resting && change.position
    }, {what: "the native watcher to show cube-2 at rest"})
    assert.ok(distance(watchedRest, thrownTo) <= SAME_PLACE_M, `the native watcher shows the rest ${distance(watchedRest, thrownTo).toFixed(3)} m off`)

    // A native view of the cube where it rests, from 1.2 m in front of it.
    const eye = [thrownTo[0], thrownTo[1] + 0.35, thrownTo[2] + 1.2]
    const screenshot = artifactPath("objects-native.png")
    const viewer = startNative([
      "join", roomUrl, "--headless", "--name", "Native Camera", "--at", eye.join(","), "--frames", "30", "--screenshot", screenshot, "--seconds", "30",
    ])
    natives.push(viewer)
    await viewer.line(/^wrote /, 30_000)
    const where = project(thrownTo, eye)
    const colour = await visitor.page.evaluate(() => window.roomscale.objects().find((o) => o.id === "cube-2").colour)
    const hits = await matchingPixels(visitor.page, screenshot, where, 20, hexToRgb(colour))
    t.diagnostic(`cube-2's colour covers ${hits} pixels around (${where.map((c) => c.toFixed(0)).join(", ")}) in the native view`)
    assert.ok(hits >= 30, `the native screenshot shows cube-2 where it rests (${hits} matching pixels)`)
    assert.deepEqual(visitor.consoleErrors, [])
  } finally {
    for (const program of natives) {
      program.stop()
    }
    await visitor.close()
  }
})
