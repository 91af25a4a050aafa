// Voice end to end: three headless Chromium visitors, each with its own WAV
// tone as microphone, talk through the server's SFU.
//
// WebRTC runs inside a private network namespace so only loopback exists;
// `cargo xtask test` starts this file as
//   unshare -n sh -c 'ip link set lo up && node --test tests/web/voice.netns.mjs'
// (root). Build first: the namespace has no registry. Without Chromium or
// outside a namespace-capable machine the test prints `skipped: <reason>`.

import assert from "node:assert/strict"
import {mkdtempSync, writeFileSync} from "node:fs"
import {tmpdir} from "node:os"
import {join} from "node:path"
import {after, before, test} from "node:test"

import {
  artifactPath,
  launchBrowser,
  missingPrerequisite,
  openVisitor,
  skip,
  startServer,
  voiceArgs,
  waitFor,
  waitInRoom,
} from "./harness.mjs"

/** An incoming voice counts as heard above this RMS, and as silent below SILENT. */
const HEARD = 0.01
const SILENT = 0.002
const VOICE_TIMEOUT = 30_000
/** An offline render of half a second of audio takes well under a second. */
const PROBE_TIMEOUT = 20_000

const unavailable = missingPrerequisite()
const tones = {}
let server
const browsers = []

/** A mono 48 kHz 16-bit WAV holding `seconds` of a sine at `hz` (Chromium loops it). */
function writeTone(path, hz, seconds = 4) {
  const rate = 48000
  const samples = rate * seconds
  const data = Buffer.alloc(samples * 2)
  for (let i = 0; i < samples; i++) {
    data.writeInt16LE(Math.round(Math.sin((2 * Math.PI * hz * i) / rate) * 0.4 * 32767), i * 2)
  }
  const header = Buffer.alloc(44)
  header.write("RIFF", 0)
  header.writeUInt32LE(36 + data.length, 4)
  header.write("WAVEfmt ", 8)
  header.writeUInt32LE(16, 16)
  header.writeUInt16LE(1, 20)
  header.writeUInt16LE(1, 22)
  header.writeUInt32LE(rate, 24)
  header.writeUInt32LE(rate * 2, 28)
  header.writeUInt16LE(2, 32)
  header.writeUInt16LE(16, 34)
  header.write("data", 36)
  header.writeUInt32LE(data.length, 40)
  writeFileSync(path, Buffer.concat([header, data]))
}

before(async () => {
  if (unavailable) {
    return
  }
  const dir = mkdtempSync(join(tmpdir(), "roomscale-voice-"))
  for (const [name, hz] of Object.entries({ada: 330, ben: 440, cy: 550, dee: 660})) {
    tones[name] = join(dir, `${name}.wav`)
    writeTone(tones[name], hz)
  }
  server = await startServer()
})

after(async () => {
  await closeBrowsers()
  await server?.stop()
})

/**
 * A visitor in its own browser (the fake microphone is per browser), in
 * voice with the microphone picked in the lobby, or listening only.
 */
async function voiceVisitor(name, roomId, {microphone = true} = {}) {
  const browser = await launchBrowser({extraArgs: voiceArgs(tones[name])})
  browsers.push(browser)
  const visitor = await openVisitor(browser, server.url, roomId, {microphone})
  await waitInRoom(visitor.page)
  await waitFor(() => visitor.page.evaluate(() => window.roomscale.voice.state() === "on"), {
    timeout: VOICE_TIMEOUT,
    what: `${name}'s voice to start`,
  })
  visitor.name = name
  visitor.userId = await visitor.page.evaluate(() => window.roomscale.userId)
  return visitor
}

/** What `listener` hears of each user now (RMS per user id). */
function levels(listener) {
  return listener.page.evaluate(() => window.roomscale.voice.levels())
}

/** inbound-rtp audio streams: codec mime type and samples received. */
async function inbound(listener) {
  return listener.page.evaluate(async () => {
    const report = await window.roomscale.voice.stats()
    const rows = []
    report?.forEach((entry) => {
      if (entry.type === "inbound-rtp" && entry.kind === "audio") {
        const codec = report.get(entry.codecId)
        rows.push({mid: entry.mid, samples: entry.totalSamplesReceived ?? 0, bytes: entry.bytesReceived ?? 0, codec: codec?.mimeType ?? null})
      }
    })
    return rows
  })
}

async function waitHears(listener, speakers, what) {
  try {
    await waitFor(
      async () => {
        const heard = await levels(listener)
        return speakers.every((speaker) => (heard[speaker.userId] ?? 0) > HEARD)
      },
      {timeout: VOICE_TIMEOUT, what: `${listener.name} to hear ${what}`},
    )
  } catch (error) {
    // Say what the page does hear, and on which tracks, to tell a signaling fault from a media one.
    const state = await listener.page.evaluate(() => ({
      voice: window.roomscale.voice.state(),
      note: window.roomscale.voice.note(),
      tracks: window.roomscale.voice.tracks(),
      levels: window.roomscale.voice.levels(),
    }))
    const speakerIds = Object.fromEntries(speakers.map((s) => [s.userId, s.name]))
    throw new Error(`${error.message}\nspeakers ${JSON.stringify(speakerIds)}; page: ${JSON.stringify(state)}; inbound-rtp: ${JSON.stringify(await inbound(listener))}`)
  }
}

/** Each test's own limit: a hung page fails the test with this, instead of hanging the run. */
const TEST_TIMEOUT = 240_000

/** Closes every browser a test opened: four rendering pages starve the next test on two cores. */
async function closeBrowsers() {
  for (const browser of browsers.splice(0)) {
    await browser.close().catch(() => {})
  }
}

test("three visitors hear each other through the SFU; mute, leave and a late joiner", {timeout: TEST_TIMEOUT}, async (t) => {
  if (unavailable) {
    return skip(t, unavailable)
  }
  t.after(closeBrowsers)
  const roomId = await server.createRoom("Voice room")
  const ada = await voiceVisitor("ada", roomId)
  const ben = await voiceVisitor("ben", roomId)
  const cy = await voiceVisitor("cy", roomId)
  const everyone = [ada, ben, cy]

  // Everyone hears the two others: Opus arriving, the analyser not silent.
  for (const listener of everyone) {
    const others = everyone.filter((v) => v !== listener)
    await waitHears(listener, others, others.map((o) => o.name).join(" and "))
    const tracks = await listener.page.evaluate(() => window.roomscale.voice.tracks())
    assert.deepEqual(new Set(Object.values(tracks)), new Set(others.map((o) => o.userId)), `${listener.name}'s track map`)
    const before = await inbound(listener)
    await new Promise((resolve) => setTimeout(resolve, 500))
    const later = await inbound(listener)
    for (const mid of Object.keys(tracks)) {
      const a = before.find((row) => row.mid === mid)
      const b = later.find((row) => row.mid === mid)
      assert.ok(b, `${listener.name} has inbound-rtp for track ${mid}`)
      assert.equal(b.codec, "audio/opus", `${listener.name}'s track ${mid} is Opus`)
      assert.ok(b.samples > (a?.samples ?? 0), `${listener.name}'s samples on track ${mid} keep growing`)
    }
  }
  await Promise.all(everyone.map((v) => v.page.screenshot({path: artifactPath(`voice-${v.name}.png`)})))

  // The server reports who speaks; everyone sees the others speaking.
  await waitFor(
    async () => {
      const seen = await ada.page.evaluate(() => window.roomscale.voice.speaking())
      return seen.includes(ben.userId) && seen.includes(cy.userId)
    },
    {timeout: VOICE_TIMEOUT, what: "ada to see ben and cy speaking"},
  )

  // Muting ada silences her at the others; ben and cy are still heard.
  await ada.page.click(".voice-mute")
  for (const listener of [ben, cy]) {
    await waitFor(async () => ((await levels(listener))[ada.userId] ?? 0) < SILENT, {
      timeout: VOICE_TIMEOUT,
      what: `${listener.name} to stop hearing ada after she muted`,
    })
  }
  await waitHears(ben, [cy], "cy while ada is muted")
  await waitFor(
    async () => (await ben.page.evaluate(() => window.roomscale.people())).find((p) => p.userId === ada.userId)?.muted === true,
    {what: "ben's people list to show ada muted"},
  )
  await ada.page.click(".voice-mute")
  await waitHears(ben, [ada], "ada again after she unmuted")

  // Cy leaves: the others' tracks for cy are renegotiated away.
  await cy.close()
  for (const listener of [ada, ben]) {
    await waitFor(
      async () => !Object.values(await listener.page.evaluate(() => window.roomscale.voice.tracks())).includes(cy.userId),
      {timeout: VOICE_TIMEOUT, what: `${listener.name}'s tracks to drop cy`},
    )
  }

  // Dee joins late, listening only (no microphone chosen in the lobby): Dee
  // hears the others and nobody hears Dee, until "Turn on microphone".
  const dee = await voiceVisitor("dee", roomId, {microphone: false})
  await waitHears(dee, [ada, ben], "ada and ben while listening only")
  assert.equal(await dee.page.isVisible(".voice-join"), true, `a listen-only visitor is offered "Turn on microphone"`)
  assert.equal(((await levels(ada))[dee.userId] ?? 0) < SILENT, true, "ada hears a visitor who is listening only")
  await dee.page.click(".voice-join")
  await waitHears(ada, [ben, dee], "ben and the late dee")
  await waitHears(ben, [ada, dee], "ada and the late dee")
  await waitHears(dee, [ada, ben], "ada and ben")

  for (const visitor of [ada, ben, dee]) {
    assert.deepEqual(visitor.consoleErrors, [], `${visitor.name}'s console errors`)
    assert.deepEqual(visitor.foreignRequests(), [], `${visitor.name}'s requests outside the origin`)
  }
})

test("voices are spatialized with the DESIGN.md panner: right is louder right, gain falls as 1/d", {timeout: TEST_TIMEOUT}, async (t) => {
  if (unavailable) {
    return skip(t, unavailable)
  }
  t.after(closeBrowsers)
  const roomId = await server.createRoom("Spatial room")
  const browser = await launchBrowser({extraArgs: voiceArgs(tones.ada)})
  browsers.push(browser)
  let visitor = await openVisitor(browser, server.url, roomId)
  await waitInRoom(visitor.page)
  // Chromium's offline rendering has been seen to stall now and then on this
  // machine (never twice in a row), and a stalled page may not even reload:
  // one stall gets a fresh browser and a second try; a second stall fails.
  const render = (position) => visitor.page.evaluate((p) => window.roomscale.voice.spatialProbe(p), position)
  const probe = async (position) => {
    const stalled = Symbol("stalled")
    const first = await Promise.race([render(position), new Promise((resolve) => setTimeout(resolve, PROBE_TIMEOUT, stalled))])
    if (first !== stalled) {
      return first
    }
    process.stderr.write(`spatial probe at ${position}: the offline render stalled for ${PROBE_TIMEOUT} ms; trying once more in a fresh browser\n`)
    const fresh = await launchBrowser({extraArgs: voiceArgs(tones.ada)})
    browsers.push(fresh)
    visitor = await openVisitor(fresh, server.url, roomId)
    await waitInRoom(visitor.page)
    const second = await Promise.race([render(position), new Promise((resolve) => setTimeout(resolve, PROBE_TIMEOUT, stalled))])
    assert.notEqual(second, stalled, `the offline render of the spatial probe at ${position} stalled twice`)
    return second
  }

  const right = await probe([2, 0, 0])
  const energy = (rms) => rms * rms
  assert.ok(
    energy(right.right) >= 2 * energy(right.left),
    `a voice to the right: right-channel energy ${energy(right.right)} vs left ${energy(right.left)}`,
  )

  const level = async (d) => {
    const {left, right: r} = await probe([0, 0, -d])
    return 20 * Math.log10(Math.hypot(left, r))
  }
  const atOne = await level(1)
  for (const d of [2, 4]) {
    const measured = (await level(d)) - atOne
    const expected = 20 * Math.log10(1 / d) // inverse model, refDistance 1, rolloff 1
    assert.ok(Math.abs(measured - expected) <= 1, `at ${d} m: ${measured.toFixed(2)} dB, the inverse model says ${expected.toFixed(2)} dB`)
  }
})
