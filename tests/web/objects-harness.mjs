// What the shared-object browser tests (objects.test.mjs, objects-native.test.mjs)
// do alike: read a page's objects, find one on screen, turn the view toward it,
// grab and drag it with the real mouse, and record where a page draws it over
// time, so both files measure a drag the same way.

import assert from "node:assert/strict"
import {test} from "node:test"

import {closePanels, distance, missingPrerequisite, openVisitor, serverAndBrowserPerFile, skip, waitFor, waitInRoom} from "./harness.mjs"

/**
 * One server and browser for the calling test file (`fixture.server`,
 * `fixture.browser`), and `browserTest`: node's `test`, skipped with the
 * reason where this machine cannot run the server or Chromium. Call once, at
 * the top of a test file.
 */
export function objectTests() {
  const unavailable = missingPrerequisite()
  const fixture = serverAndBrowserPerFile()
  const browserTest = (name, body) =>
    test(name, async (t) => {
      if (unavailable) {
        return skip(t, unavailable)
      }
      return body(t)
    })
  return {fixture, browserTest}
}

/**
 * A visitor in room `roomId`, in the room, with a window tall enough that the
 * whole 3D view is in it and no panel open over it (the mouse reaches only
 * the view it shows).
 */
export async function openTallVisitor(fixture, roomId, {xr = false} = {}) {
  const visitor = await openVisitor(fixture.browser, fixture.server.url, roomId, {xr, viewport: {width: 1100, height: 900}})
  await waitInRoom(visitor.page)
  await closePanels(visitor.page)
  return visitor
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
export const objectsOf = (visitor) => visitor.page.evaluate(() => window.roomscale.objects())
export const objectOf = async (visitor, id) => (await objectsOf(visitor)).find((object) => object.id === id)
export const userIdOf = (visitor) => visitor.page.evaluate(() => window.roomscale.userId)

/** Where `id`'s centre is on the page, in page pixels (for page.mouse), or null when not in view. */
export async function pagePointOf(visitor, id) {
  const point = await visitor.page.evaluate((id) => window.roomscale.objectScreenPoint(id), id)
  const box = await visitor.page.locator("#room-canvas").boundingBox()
  const viewport = visitor.page.viewportSize()
  if (!point || !box || point.x < 2 || point.y < 2 || point.x > box.width - 2 || point.y > box.height - 2) {
    return null
  }
  const at = {x: box.x + point.x, y: box.y + point.y}
  // The mouse reaches only what the window shows.
  return at.x < viewport.width - 2 && at.y < viewport.height - 2 ? at : null
}

/**
 * Turns a flat page's view (dragging the real mouse across the sky, as a
 * visitor would) until `id` is in the middle part of the view: a visitor
 * arrives on a circle facing the room's centre, so the table may be behind
 * them. With `level: false` it only turns sideways, leaving the pitch alone.
 */
export async function lookAt(visitor, id, {level = true} = {}) {
  const box = await visitor.page.locator("#room-canvas").boundingBox()
  const central = (point) => point && Math.abs(point.x - (box.x + box.width / 2)) < box.width * 0.3
  for (let i = 0; i < 40 && !central(await pagePointOf(visitor, id)); i++) {
    // About 15 degrees a drag (the camera turns 1/1500 rad a pixel).
    await visitor.page.mouse.move(box.x + box.width / 2 - 200, box.y + 12)
    await visitor.page.mouse.down()
    await visitor.page.mouse.move(box.x + box.width / 2 + 200, box.y + 12, {steps: 4})
    await visitor.page.mouse.up()
  }
  assert.ok(central(await pagePointOf(visitor, id)), `could not turn the view toward ${id}`)
  if (!level) {
    return
  }
  // Then up or down until it is in the middle band, clear of the help line along the bottom.
  const middle = (point) => point && Math.abs(point.y - (box.y + box.height / 2)) < box.height * 0.25
  let direction = 1
  for (let i = 0; i < 8 && !middle(await pagePointOf(visitor, id)); i++) {
    const before = await pagePointOf(visitor, id)
    if (!before) {
      break
    }
    const x = box.x + 40
    await visitor.page.mouse.move(x, box.y + box.height / 2 - 60 * direction)
    await visitor.page.mouse.down()
    await visitor.page.mouse.move(x, box.y + box.height / 2 + 60 * direction, {steps: 4})
    await visitor.page.mouse.up()
    const after = await pagePointOf(visitor, id)
    const centreY = box.y + box.height / 2
    if (!after || Math.abs(after.y - centreY) > Math.abs(before.y - centreY)) {
      direction = -direction
    }
  }
}

/** Presses the real mouse on `id` and waits until this page holds it (the server granted the grab). */
export async function pressOn(visitor, id, {expectGranted = true} = {}) {
  const {value: point} = await waitFor(() => pagePointOf(visitor, id), {what: `${id} on screen`})
  await visitor.page.mouse.move(point.x, point.y)
  await visitor.page.mouse.down()
  if (expectGranted) {
    const self = await userIdOf(visitor)
    await waitFor(async () => (await objectOf(visitor, id))?.holder === self, {what: `the grab of ${id} to be granted`})
  }
  return point
}

/** Moves the real mouse from `from` to `to` over about `ms`, a step every ~16 ms, as a hand drags. */
export async function glide(page, from, to, ms) {
  const steps = Math.max(1, Math.round(ms / 16))
  const started = performance.now()
  for (let i = 1; i <= steps; i++) {
    await page.mouse.move(from.x + ((to.x - from.x) * i) / steps, from.y + ((to.y - from.y) * i) / steps)
    const due = started + (ms * i) / steps
    if (due > performance.now()) {
      await sleep(due - performance.now())
    }
  }
}

/**
 * Drags the held mouse from `start` through each [dx, dy] offset from it,
 * 500 ms a leg with a 150 ms pause after each, then holds still 400 ms (the
 * button stays down). Returns the last point.
 */
export async function dragThrough(page, start, offsets) {
  let from = start
  for (const [dx, dy] of offsets) {
    const to = {x: start.x + dx, y: start.y + dy}
    await glide(page, from, to, 500)
    from = to
    await sleep(150)
  }
  await sleep(400)
  return from
}

/** Records `id`'s displayed position on a page every animation frame, on the shared wall clock. */
export async function startRecording(visitor, id) {
  await visitor.page.evaluate((id) => {
    const log = []
    globalThis.__objectLog = log
    const tick = () => {
      const object = window.roomscale.objects().find((o) => o.id === id)
      if (object) {
        log.push([performance.timeOrigin + performance.now(), object.position])
      }
      if (globalThis.__objectLog === log) {
        requestAnimationFrame(tick)
      }
    }
    requestAnimationFrame(tick)
  }, id)
}

/** Ends `startRecording`: the track, [[wall ms, position], ...]. */
export function stopRecording(visitor) {
  return visitor.page.evaluate(() => {
    const log = globalThis.__objectLog
    globalThis.__objectLog = null
    return log
  })
}

/** A recorded track's position at wall time `t` (linear between samples), or null outside it. */
export function positionAt(track, t) {
  if (t < track[0][0] || t > track[track.length - 1][0]) {
    return null
  }
  let i = 1
  while (track[i][0] < t) {
    i++
  }
  const [t0, a] = track[i - 1]
  const [t1, b] = track[i]
  const f = t1 === t0 ? 1 : (t - t0) / (t1 - t0)
  return a.map((c, k) => c + (b[k] - c) * f)
}

/**
 * How close `seen` (shown at wall time `at`) is to where `track` had the
 * object up to `withinMs` earlier, tried every 5 ms: {distance, lag} of the
 * nearest (Infinity and null when the track covers none of that time).
 */
export function nearestEarlier(track, at, seen, withinMs) {
  let best = Infinity
  let lag = null
  for (let back = 0; back <= withinMs; back += 5) {
    const there = positionAt(track, at - back)
    if (there && distance(there, seen) < best) {
      best = distance(there, seen)
      lag = back
    }
  }
  return {distance: best, lag}
}
