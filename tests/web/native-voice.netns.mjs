// Native voice end to end: the native client (`roomscale join --headless`)
// with WAV files for microphone and speakers, and headless Chromium visitors
// with WAV tones as fake microphones, in one room through the server's SFU.
// Each voice is a tone of its own, so every listener's spectrum says whose
// voice came through on whose track.
//
// WebRTC runs inside a private network namespace so only loopback exists;
// `cargo xtask test` starts this file as voice.netns.mjs is started:
//   unshare -n sh -c 'ip link set lo up && node --test tests/web/native-voice.netns.mjs'
// (root). Build first (`cargo build -p roomscale-app -p roomscale-server`):
// the namespace has no registry.

import assert from "node:assert/strict"
import {mkdtempSync} from "node:fs"
import {tmpdir} from "node:os"
import {join} from "node:path"
import {after, before, test} from "node:test"

import {
  launchBrowser,
  missingPrerequisite,
  openVisitor,
  skip,
  startNative,
  startServer,
  voiceArgs,
  waitFor,
  waitInRoom,
} from "./harness.mjs"
import {peakFrequency, readWav, toneAmplitude, writeTone} from "./wav.mjs"

/** A voice counts as heard above this RMS, and as silent below SILENT. */
const HEARD = 0.01
const SILENT = 0.002
const VOICE_TIMEOUT = 30_000
const TEST_TIMEOUT = 240_000
/** How far from its tone a voice's spectral peak may lie (bins are 23 Hz wide). */
const PEAK_TOLERANCE_HZ = 20

const unavailable = missingPrerequisite()
let server
let dir
const tones = {}
const browsers = []
const natives = []

before(async () => {
  if (unavailable) {
    return
  }
  dir = mkdtempSync(join(tmpdir(), "roomscale-native-voice-"))
  for (const hz of [440, 550, 660]) {
    tones[hz] = join(dir, `tone${hz}.wav`)
    // Long enough to outlast every test: a WAV microphone falls silent at its end.
    writeTone(tones[hz], hz, 120)
  }
  server = await startServer()
})

after(async () => {
  await closeAll()
  await server?.stop()
})

async function closeAll() {
  for (const native of natives.splice(0)) {
    native.stop()
    await native.exited
  }
  for (const browser of browsers.splice(0)) {
    await browser.close().catch(() => {})
  }
}

/** A browser visitor in voice whose microphone (picked in the lobby) plays a tone of `hz`. */
async function browserVoice(name, roomId, hz) {
  const browser = await launchBrowser({extraArgs: voiceArgs(tones[hz])})
  browsers.push(browser)
  const visitor = await openVisitor(browser, server.url, roomId, {microphone: true})
  await waitInRoom(visitor.page)
  await waitFor(() => visitor.page.evaluate(() => window.roomscale.voice.state() === "on"), {
    timeout: VOICE_TIMEOUT,
    what: `${name}'s voice to start`,
  })
  visitor.name = name
  visitor.userId = await visitor.page.evaluate(() => window.roomscale.userId)
  return visitor
}

/** A native client in voice: `mic` a tone (Hz) or none, `speaker` a WAV path or none. */
async function nativeVoice(name, roomId, {mic, speaker}) {
  const args = ["join", `${server.url}/rooms/${roomId}`, "--headless", "--name", name]
  if (mic) {
    args.push("--mic-wav", tones[mic])
  }
  if (speaker) {
    args.push("--speaker-wav", speaker)
  }
  const native = startNative(args)
  natives.push(native)
  const joined = await native.line(/^joined ".*" as (\S+) \(slot/)
  await native.line(/^voice: connected/, VOICE_TIMEOUT)
  native.name = name
  native.userId = joined[1]
  native.speaker = speaker
  return native
}

/** What a native client said it hears last: user id -> level. */
function nativeLevels(native) {
  const line = native.lines.findLast((l) => l.startsWith("voice: levels "))
  if (!line) {
    return {}
  }
  return Object.fromEntries(
    line
      .slice("voice: levels ".length)
      .split(" ")
      .map((pair) => pair.split("="))
      .map(([user, level]) => [user, Number(level)]),
  )
}

/** The track map a native client printed last: mid -> user id. */
function nativeTracks(native) {
  const line = native.lines.findLast((l) => l.startsWith("voice: tracks "))
  return line ? JSON.parse(line.slice("voice: tracks ".length)) : {}
}

async function nativeHears(native, speakers, {silent = false} = {}) {
  const what = `${native.name} to ${silent ? "stop hearing" : "hear"} ${speakers.map((s) => s.name).join(" and ")}`
  await waitFor(
    () => {
      const levels = nativeLevels(native)
      return speakers.every((s) => (silent ? (levels[s.userId] ?? 0) < SILENT : (levels[s.userId] ?? 0) > HEARD))
    },
    {timeout: VOICE_TIMEOUT, what: `${what} (last levels ${JSON.stringify(nativeLevels(native))}; tracks ${JSON.stringify(nativeTracks(native))})`},
  )
}

/** Waits until the page hears each speaker at its tone: level and spectral peak. */
async function pageHears(visitor, speakers) {
  let last = {}
  try {
    await waitFor(
      async () => {
        last = await visitor.page.evaluate(() => ({
          levels: window.roomscale.voice.levels(),
          peaks: window.roomscale.voice.peaks(),
        }))
        return speakers.every(
          (s) => (last.levels[s.userId] ?? 0) > HEARD && Math.abs((last.peaks[s.userId] ?? 0) - s.hz) <= PEAK_TOLERANCE_HZ,
        )
      },
      {timeout: VOICE_TIMEOUT, what: `${visitor.name} to hear ${speakers.map((s) => `${s.name} at ${s.hz} Hz`).join(" and ")}`},
    )
  } catch (error) {
    const tracks = await visitor.page.evaluate(() => window.roomscale.voice.tracks())
    throw new Error(`${error.message}\npage levels ${JSON.stringify(last.levels)}, peaks ${JSON.stringify(last.peaks)}, tracks ${JSON.stringify(tracks)}`)
  }
}

/** Stops a native client the way Ctrl-C does (it leaves voice and finishes its WAV). */
async function stopNative(native) {
  native.signal("SIGINT")
  const {code} = await native.exited
  natives.splice(natives.indexOf(native), 1)
  assert.equal(code, 0, `${native.name} exits cleanly after Ctrl-C: ${native.stderr().slice(-2000)}`)
  assert.ok(native.lines.some((l) => l.startsWith("voice: left")), `${native.name} left voice`)
}

test("a native bot's 440 Hz voice is heard by a browser visitor on that bot's track", {timeout: TEST_TIMEOUT}, async (t) => {
  if (unavailable) {
    return skip(t, unavailable)
  }
  t.after(closeAll)
  const roomId = await server.createRoom("Native bot")
  const bot = await nativeVoice("Bot", roomId, {mic: 440})
  bot.hz = 440
  const visitor = await browserVoice("Ada", roomId, 660)
  await pageHears(visitor, [bot])
  const tracks = await visitor.page.evaluate(() => window.roomscale.voice.tracks())
  assert.deepEqual(Object.values(tracks), [bot.userId], "the visitor's only track is the bot's")
  assert.deepEqual(visitor.consoleErrors, [], "the visitor's console errors")
})

test("a browser visitor's 660 Hz voice is in a native client's --speaker-wav", {timeout: TEST_TIMEOUT}, async (t) => {
  if (unavailable) {
    return skip(t, unavailable)
  }
  t.after(closeAll)
  const roomId = await server.createRoom("Native ear")
  const ear = await nativeVoice("Ear", roomId, {speaker: join(dir, "ear.wav")})
  assert.ok(ear.lines.some((l) => l.startsWith("voice: listening only")), "no microphone: listening only")
  const visitor = await browserVoice("Ada", roomId, 660)
  await nativeHears(ear, [visitor])
  // Two more seconds of it in the file.
  await new Promise((resolve) => setTimeout(resolve, 2000))
  await stopNative(ear)
  const {mono, rate} = readWav(ear.speaker)
  const tail = mono.subarray(Math.max(0, mono.length - 2 * rate))
  const peak = peakFrequency(tail)
  assert.ok(Math.abs(peak - 660) <= 5, `the speaker file's strongest tone is ${peak} Hz`)
  // Far from the visitor's avatar and through the browser's own noise
  // suppression the tone is quiet, but it stands well clear of the rest.
  const [tone, other] = [toneAmplitude(tail, 660), toneAmplitude(tail, 440)]
  assert.ok(tone > 0.002 && tone > 10 * other, `660 Hz at amplitude ${tone}, 440 Hz at ${other}`)
})

test("two native clients and a browser hear each other; mute and voice_leave silence a voice at both others", {timeout: TEST_TIMEOUT}, async (t) => {
  if (unavailable) {
    return skip(t, unavailable)
  }
  t.after(closeAll)
  const roomId = await server.createRoom("Mixed voice")
  const ann = await nativeVoice("Ann", roomId, {mic: 440, speaker: join(dir, "ann.wav")})
  ann.hz = 440
  const bea = await nativeVoice("Bea", roomId, {mic: 550, speaker: join(dir, "bea.wav")})
  bea.hz = 550
  const cy = await browserVoice("Cy", roomId, 660)
  cy.hz = 660

  await pageHears(cy, [ann, bea])
  await nativeHears(ann, [bea, cy])
  await nativeHears(bea, [ann, cy])

  // Cy mutes: the SFU stops forwarding Cy, and both natives hear Cy fall silent.
  await cy.page.click(".voice-mute")
  await nativeHears(ann, [cy], {silent: true})
  await nativeHears(bea, [cy], {silent: true})
  await nativeHears(ann, [bea])
  await cy.page.click(".voice-mute")
  await nativeHears(ann, [cy])
  await nativeHears(bea, [cy])

  // Cy leaves voice (and stays in the room): both natives' tracks for Cy are
  // parked. The room page offers no "leave voice" (voice runs from entering
  // to leaving, listen-only without a microphone), so the page's own voice
  // is stopped through its debug surface.
  await cy.page.evaluate(() => window.roomscale.voice.stop())
  for (const native of [ann, bea]) {
    await waitFor(() => !Object.values(nativeTracks(native)).includes(cy.userId), {
      timeout: VOICE_TIMEOUT,
      what: `${native.name}'s tracks to drop Cy after voice_leave (last: ${JSON.stringify(nativeTracks(native))})`,
    })
  }
  await nativeHears(ann, [cy], {silent: true})
  await nativeHears(ann, [bea])

  // What each native wrote holds the other two tones and not its own.
  for (const [native, heard, own] of [
    [ann, [550, 660], 440],
    [bea, [440, 660], 550],
  ]) {
    await stopNative(native)
    const {mono} = readWav(native.speaker)
    // A tone nobody sends, as the floor the others stand out from.
    const floor = toneAmplitude(mono, 770)
    const amplitudes = Object.fromEntries([...heard, own].map((hz) => [hz, toneAmplitude(mono, hz)]))
    for (const hz of heard) {
      assert.ok(amplitudes[hz] > Math.max(0.001, 5 * floor), `${native.name}'s file holds ${hz} Hz: ${JSON.stringify(amplitudes)}, floor ${floor}`)
    }
    assert.ok(amplitudes[own] < 0.2 * Math.min(...heard.map((hz) => amplitudes[hz])), `${native.name} does not hear itself: ${JSON.stringify(amplitudes)}`)
  }
  assert.deepEqual(cy.consoleErrors, [], "the browser's console errors")
})
