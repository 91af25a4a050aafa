// A headset visitor and a browser visitor in one room: the native app in
// headset mode against a real OpenXR runtime (Monado with its simulated
// headset and null compositor, in a Debian 13 chroot run by `xr-run`), and a
// visitor in Debian's headless Chromium.
//
//   node --test tests/web/xr.test.mjs      (as root: the runtime needs a chroot)
//
// The headset's left eye is read back from its swapchain and written to
// artifacts/web/xr-left-eye.png.

import assert from "node:assert/strict"
import {spawnSync} from "node:child_process"
import {existsSync, mkdtempSync} from "node:fs"
import {tmpdir} from "node:os"
import {join} from "node:path"
import {test} from "node:test"

import {peakFrequency, readWav, writeTone} from "./wav.mjs"
import {
  ROOT,
  artifactPath,
  distance,
  hexToRgb,
  matchingPixels,
  missingPrerequisite,
  nativeBinary,
  openVisitor,
  serverAndBrowserPerFile,
  skip,
  startProgram,
  waitFor,
  waitInRoom,
} from "./harness.mjs"

const SAME_PLACE_M = 0.05
/** How long headset mode may take to end after Ctrl-C or a runtime that went away. */
const ENDS_WITHIN_MS = 2000
/** What `xr-run` exits with where the runtime cannot be had. */
const SKIPPED = 77
const EYE = {width: 640, height: 480}

const unavailable = missingPrerequisite() ?? (process.getuid?.() === 0 ? null : "the OpenXR runtime runs in a chroot, which needs root")
const fixture = serverAndBrowserPerFile()

/** ROOMSCALE_XR_RUN_BIN (as `cargo xtask test` sets it), else a fresh `cargo build`. */
function xrRunBinary() {
  if (process.env.ROOMSCALE_XR_RUN_BIN) {
    return process.env.ROOMSCALE_XR_RUN_BIN
  }
  const built = spawnSync("cargo", ["build", "--quiet", "-p", "roomscale-tests", "--bin", "xr-run"], {cwd: ROOT, encoding: "utf8"})
  if (built.status !== 0) {
    throw new Error(`building xr-run failed:\n${built.stderr}`)
  }
  return join(ROOT, "target", "debug", "xr-run")
}

/** The native app in headset mode against Monado; `runtimePid` once it is up. */
async function startHeadset(args, {copyIn = [], copyOut = [], openxrValidation = false} = {}) {
  const copies = [
    ...copyIn.flatMap(([host, inside]) => ["--copy-in", `${host}=${inside}`]),
    ...copyOut.flatMap(([inside, host]) => ["--copy-out", `${inside}=${host}`]),
  ]
  const validation = openxrValidation ? ["--openxr-validation"] : []
  const headset = startProgram(xrRunBinary(), [...validation, ...copies, "--", nativeBinary(), ...args])
  const first = await Promise.race([
    headset.line(/^xr-run: monado-service (\d+)$/, 240_000).then((m) => Number(m[1])),
    headset.exited.then(({code}) => ({exitedWith: code})),
  ])
  if (first.exitedWith !== undefined) {
    if (first.exitedWith === SKIPPED) {
      return {skipped: (headset.stderr().match(/skipped: (.*)/) ?? [])[1] ?? "the OpenXR runtime is not available"}
    }
    throw new Error(`xr-run exited with ${first.exitedWith} before the runtime was up: ${headset.stderr()}`)
  }
  headset.runtimePid = first
  return headset
}

/** A quaternion [x, y, z, w] applied to a vector. */
function rotate([qx, qy, qz, qw], [x, y, z]) {
  const tx = 2 * (qy * z - qz * y)
  const ty = 2 * (qz * x - qx * z)
  const tz = 2 * (qx * y - qy * x)
  return [x + qw * tx + (qy * tz - qz * ty), y + qw * ty + (qz * tx - qx * tz), z + qw * tz + (qx * ty - qy * tx)]
}

/** Where a room point lands in an eye image: eye pose and fov as the app printed them. */
function projectIntoEye(point, {eye, orientation, fov, width, height}) {
  const [qx, qy, qz, qw] = orientation
  const local = rotate([-qx, -qy, -qz, qw], point.map((c, i) => c - eye[i]))
  assert.ok(local[2] < 0, `the point ${point} is in front of the eye`)
  const [left, right, up, down] = fov.map(Math.tan)
  const x = local[0] / -local[2]
  const y = local[1] / -local[2]
  return [((x - left) / (right - left)) * width, ((up - y) / (up - down)) * height]
}

/** The nearest distance from `point` to the path through `points`. */
function distanceToPath(point, points) {
  let best = Infinity
  for (let i = 0; i < points.length; i++) {
    best = Math.min(best, distance(point, points[i]))
    if (i > 0) {
      const [a, b] = [points[i - 1], points[i]]
      const ab = b.map((c, k) => c - a[k])
      const length2 = ab.reduce((sum, c) => sum + c * c, 0)
      if (length2 > 0) {
        const t = Math.max(0, Math.min(1, point.reduce((sum, c, k) => sum + (c - a[k]) * ab[k], 0) / length2))
        best = Math.min(best, distance(point, a.map((c, k) => c + t * ab[k])))
      }
    }
  }
  return best
}

/** The head positions the headset reported sending, in order. */
function reportedHeads(headset) {
  return headset.lines
    .map((line) => line.match(/^pose t=[\d.]+ head=(-?[\d.]+),(-?[\d.]+),(-?[\d.]+)$/))
    .filter(Boolean)
    .map((m) => [Number(m[1]), Number(m[2]), Number(m[3])])
}

test("a headset visitor and a browser visitor see each other, and the headset's head moves in the browser", async (t) => {
  if (unavailable) {
    return skip(t, unavailable)
  }
  const roomId = await fixture.server.createRoom("Headset and browser")
  const visitor = await openVisitor(fixture.browser, fixture.server.url, roomId)
  let headset = null
  try {
    await waitInRoom(visitor.page)
    const visitorHead = (await waitFor(() => visitor.page.evaluate(() => window.roomscale.selfHead()), {what: "the visitor's own head"})).value
    const self = await visitor.page.evaluate(() => window.roomscale.avatars().find((a) => a.self))
    const roomUrl = `${fixture.server.url.replace("localhost", "127.0.0.1")}/rooms/${roomId}`

    // The headset's play space stands 3 m behind the visitor, facing it (-Z).
    const playSpace = [visitorHead[0], 0, visitorHead[2] + 3]
    const screenshots = [artifactPath("xr-left-eye.png"), artifactPath("xr-right-eye.png")]
    const inside = "/tmp/roomscale-xr-eye.png"
    headset = await startHeadset(
      ["join", roomUrl, "--xr", "--headless", "--validation", "--verbose-xr", "--name", "Headset Hana", "--colour", "#30a0e0",
        "--at", playSpace.join(","), "--eye-size", `${EYE.width}x${EYE.height}`, "--seconds", "22", "--screenshot", inside],
      {copyOut: [[inside, screenshots[0]], ["/tmp/roomscale-xr-eye-right.png", screenshots[1]]], openxrValidation: true},
    )
    if (headset.skipped) {
      return skip(t, headset.skipped)
    }
    await headset.line(/^xr: session Focused$/, 60_000)
    const [, headsetId] = await headset.line(/^joined ".*" as (\S+) \(slot \d+\)/)

    // Presence says a headset came.
    const person = (await waitFor(async () => (await visitor.page.evaluate(() => window.roomscale.people())).find((p) => p.userId === headsetId), {
      what: "the headset visitor in the browser's people list",
    })).value
    assert.equal(person.name, "Headset Hana")
    assert.equal(person.kind, "xr")

    // The simulated head always moves: several times, the head the browser
    // draws lies on the path of heads the runtime reported (within 5 cm).
    const shownHead = async () => (await visitor.page.evaluate(() => window.roomscale.avatars())).find((a) => a.userId === headsetId && a.visible)?.head
    await waitFor(shownHead, {timeout: 10_000, what: "the headset's avatar in the browser"})
    const offsets = []
    for (let i = 0; i < 8; i++) {
      await new Promise((resolve) => setTimeout(resolve, 250))
      const head = await shownHead()
      offsets.push(distanceToPath(head, reportedHeads(headset).slice(-90)))
    }
    t.diagnostic(`browser-shown head vs the runtime's path: ${offsets.map((d) => (d * 100).toFixed(2)).join(", ")} cm`)
    assert.ok(Math.max(...offsets) <= SAME_PLACE_M, `the browser shows the headset's head where the runtime put it: ${offsets}`)
    const heads = reportedHeads(headset)
    const spread = distance(heads[0], heads.at(-1))
    assert.ok(heads.length > 20 && heads.every((h) => distance(h, playSpace) < 2.5), `the headset sends its poses from its play space (${heads.length} poses)`)
    t.diagnostic(`${heads.length} poses sent so far; the head moved ${(spread * 100).toFixed(1)} cm`)

    // Headset mode ends when --seconds is up: ≥ 300 frames, no validation
    // errors, and the left eye shows the visitor where the visitor stands.
    const done = await headset.line(/^xr: (\d+) frames, (\d+) rendered, eyes (\d+)x(\d+), reached focused: (\w+); ended: (.*)$/, 60_000)
    assert.ok(Number(done[2]) >= 300, `at least 300 frames rendered: ${done[0]}`)
    assert.equal(done[5], "true")
    await headset.line(/^xr: vulkan validation errors: 0$/)
    const output = [...headset.lines, ...headset.stderr().split("\n")]
    assert.ok(output.some((line) => /Core Validation/.test(line)), "the OpenXR core validation layer was loaded")
    assert.deepEqual(output.filter((line) => /VALID_ERROR/.test(line)), [], "the OpenXR core validation layer reports no errors")
    assert.equal((await headset.exited).code, 0, `headset mode exits cleanly: ${headset.stderr().slice(-2000)}`)
    // Both eyes (one multiview pass where the device has it) show the
    // visitor where each eye's own projection puts it.
    const wrote = headset.lines.map((line) => line.match(/^wrote \S+ eye=(\S+) orientation=(\S+) fov=(\S+) size=(\d+)x(\d+)$/)).filter(Boolean)
    assert.equal(wrote.length, 2, `both eyes were written: ${headset.lines.filter((l) => l.startsWith("wrote"))}`)
    const numbers = (text) => text.split(",").map(Number)
    const places = []
    for (const [index, name] of ["left", "right"].entries()) {
      const m = wrote[index]
      const eye = {eye: numbers(m[1]), orientation: numbers(m[2]), fov: numbers(m[3]), width: Number(m[4]), height: Number(m[5])}
      assert.ok(existsSync(screenshots[index]), `the ${name} eye was copied out of the chroot`)
      const where = projectIntoEye(visitorHead, eye)
      places.push(where)
      const hits = await matchingPixels(visitor.page, screenshots[index], where, 20, hexToRgb(self.colour))
      t.diagnostic(`visitor's colour covers ${hits} pixels around (${where.map((c) => c.toFixed(0)).join(", ")}) in the ${name} eye`)
      assert.ok(hits >= 30, `the ${name} eye shows the visitor's avatar at its projected place (${hits} matching pixels)`)
    }
    assert.ok(places[0][0] - places[1][0] > 1, `the eyes see the visitor from two places: ${places}`)
    assert.deepEqual(visitor.consoleErrors, [])
  } finally {
    headset?.stop?.()
    await headset?.exited
    await visitor.close()
  }
})

test("a headset visitor's voice (a WAV microphone) is heard by a native visitor", async (t) => {
  if (unavailable) {
    return skip(t, unavailable)
  }
  const roomId = await fixture.server.createRoom("Headset voice")
  const roomUrl = `${fixture.server.url.replace("localhost", "127.0.0.1")}/rooms/${roomId}`
  const dir = mkdtempSync(join(tmpdir(), "roomscale-xr-voice-"))
  const [tone, heard] = [join(dir, "tone550.wav"), join(dir, "heard.wav")]
  writeTone(tone, 550, 30)
  const listener = startProgram(nativeBinary(), ["join", roomUrl, "--headless", "--name", "Listener", "--speaker-wav", heard, "--seconds", "40"])
  let headset = null
  try {
    await listener.line(/^voice: connected$/, 30_000)
    // The tone goes into the chroot with the app; the app reads it there.
    const inside = "/tmp/roomscale-xr-tone550.wav"
    headset = await startHeadset(["join", roomUrl, "--xr", "--headless", "--seconds", "15", "--mic-wav", inside, "--at", "0,0,3"], {copyIn: [[tone, inside]]})
    if (headset.skipped) {
      return skip(t, headset.skipped)
    }
    const [, headsetId] = await headset.line(/^joined ".*" as (\S+) \(slot \d+\)/, 60_000)
    await headset.line(/^voice: joined$/, 30_000)
    // The listener's track map names the headset's voice, and it grows loud.
    const level = new RegExp(`^voice: levels .*${headsetId}=([0-9.]+)`)
    const {value: loud} = await waitFor(
      () => listener.lines.map((line) => line.match(level)).find((m) => m && Number(m[1]) > 0.02),
      {timeout: 30_000, what: `the headset's voice at the listener (levels so far: ${listener.lines.filter((l) => level.test(l)).slice(-3)})`},
    )
    t.diagnostic(`the headset's voice reaches the listener at level ${loud[1]}`)
    listener.stop()
    await listener.exited
    const {mono, rate} = readWav(heard)
    const peak = peakFrequency(mono.slice(-rate * 4))
    t.diagnostic(`the listener's speakers peak at ${peak} Hz`)
    assert.ok(Math.abs(peak - 550) <= 10, `the listener hears the headset's 550 Hz tone (peak ${peak} Hz)`)
  } finally {
    listener.stop()
    headset?.stop?.()
    await headset?.exited
    await listener.exited
  }
})

/** Starts headset mode in a fresh room, waits for FOCUSED, then runs `end` and times the end. */
async function timeTheEnd(t, end) {
  const roomId = await fixture.server.createRoom("Headset ending")
  const roomUrl = `${fixture.server.url.replace("localhost", "127.0.0.1")}/rooms/${roomId}`
  const headset = await startHeadset(["join", roomUrl, "--xr", "--headless", "--seconds", "60"])
  if (headset.skipped) {
    skip(t, headset.skipped)
    return null
  }
  try {
    await headset.line(/^xr: session Focused$/, 60_000)
    await headset.line(/^joined /)
    // In the frame loop proper: eyes drawn, frames handed to the compositor.
    await headset.line(/^xr: eye images /)
    await new Promise((resolve) => setTimeout(resolve, 500))
    const started = performance.now()
    end(headset)
    const ended = await headset.line(/^xr: \d+ frames, .*; ended: (.*)$/, 10_000)
    const ms = performance.now() - started
    const {code} = await headset.exited
    return {ms, reason: ended[1], code, stderr: headset.stderr()}
  } finally {
    headset.stop()
    await headset.exited
  }
}

test("Ctrl-C ends headset mode cleanly within 2 s", async (t) => {
  if (unavailable) {
    return skip(t, unavailable)
  }
  const result = await timeTheEnd(t, (headset) => headset.signal("SIGINT"))
  if (!result) {
    return
  }
  t.diagnostic(`headset mode ended ${result.ms.toFixed(0)} ms after Ctrl-C: ${result.reason}`)
  assert.ok(result.ms <= ENDS_WITHIN_MS, `ended within 2 s (${result.ms.toFixed(0)} ms)`)
  assert.match(result.reason, /left headset mode/)
  assert.equal(result.code, 0)
})

test("a runtime that goes away ends headset mode with a message within 2 s", async (t) => {
  if (unavailable) {
    return skip(t, unavailable)
  }
  const result = await timeTheEnd(t, (headset) => process.kill(headset.runtimePid, "SIGKILL"))
  if (!result) {
    return
  }
  t.diagnostic(`headset mode ended ${result.ms.toFixed(0)} ms after the runtime was killed: ${result.reason}`)
  assert.ok(result.ms <= ENDS_WITHIN_MS, `ended within 2 s (${result.ms.toFixed(0)} ms)`)
  assert.match(result.reason, /runtime/)
  assert.notEqual(result.code, 0, "a runtime that went away is not a clean exit")
  assert.match(result.stderr, /headset mode ended: .*restart the runtime, or use desktop mode/)
})

test("without a runtime, headset mode says why and what to do", async (t) => {
  if (missingPrerequisite()) {
    return skip(t, missingPrerequisite())
  }
  const roomId = await fixture.server.createRoom("No runtime")
  const result = spawnSync(nativeBinary(), ["join", `${fixture.server.url}/rooms/${roomId}`, "--xr", "--headless"], {
    encoding: "utf8",
    env: {...process.env, XR_RUNTIME_JSON: "/nonexistent/openxr_runtime.json"},
  })
  assert.equal(result.status, 3, result.stderr)
  assert.match(result.stderr, /headset mode is not available: XR_RUNTIME_JSON names \/nonexistent\/openxr_runtime.json, which does not exist; point it at/)
})
