// Benchmark figures for the browser client, one line each:
//
// - the room bundle's size, raw and gzip (target: at most 2 MiB gzip);
// - the time from navigation to the lobby being ready ("Enter room" enabled),
//   and from navigation to "in the room" (joined, listed in presence, own
//   avatar drawn) with "Enter room" clicked as soon as it is enabled, on
//   loopback in headless Chromium with a cold cache, median of several runs
//   (target for in-room: at most 3 s): for a visitor alone on the machine, and
//   for one whose machine also renders another visitor's page.
//
//   node tests/web/bench.mjs [--runs N]
//
// Builds the web bundle when stale and the server with cargo. Without Chromium
// the timing prints `skipped: <reason>` on stderr; the sizes are still printed.

import {existsSync, readFileSync} from "node:fs"
import {join} from "node:path"
import {gzipSync} from "node:zlib"

import {ROOT, ensureWebBuild, launchBrowser, missingPrerequisite, openVisitor, startServer, waitFor, waitInRoom} from "./harness.mjs"

const BUNDLE_TARGET_GZIP_BYTES = 2 * 1024 * 1024
const IN_ROOM_TARGET_MS = 3000
const runsFlag = process.argv.indexOf("--runs")
const RUNS = runsFlag > 0 ? Number(process.argv[runsFlag + 1]) : 5

const kib = (bytes) => `${(bytes / 1024).toFixed(1)} KiB`
const verdict = (ok) => (ok ? "ok" : "OVER TARGET")

function bundleSizes() {
  ensureWebBuild()
  const bundle = join(ROOT, "server", "web", "dist", "room.js")
  const raw = readFileSync(bundle)
  // Level 9, as build.mjs writes the room.js.gz the server sends.
  const gzip = gzipSync(raw, {level: 9}).byteLength
  console.log(
    `web room.js bundle: ${kib(raw.byteLength)} raw, ${kib(gzip)} gzip ` +
      `(target <= ${kib(BUNDLE_TARGET_GZIP_BYTES)} gzip: ${verdict(gzip <= BUNDLE_TARGET_GZIP_BYTES)})`,
  )
  const pages = join(ROOT, "server", "web", "dist", "pages.js")
  if (existsSync(pages)) {
    const pagesRaw = readFileSync(pages)
    console.log(`web pages.js bundle: ${kib(pagesRaw.byteLength)} raw, ${kib(gzipSync(pagesRaw, {level: 9}).byteLength)} gzip`)
  }
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/**
 * Notes, in the page, the moment "Enter room" is first enabled and clicks it
 * then, as a visitor who does not linger in the lobby would: no round trip to
 * the test in between.
 */
function clickEnterWhenReady() {
  const check = () => {
    const enter = document.querySelector(".lobby-enter")
    if (enter && !enter.disabled && globalThis.__lobbyReadyAt === undefined) {
      globalThis.__lobbyReadyAt = performance.now()
      enter.click()
      observer.disconnect()
    }
  }
  const observer = new MutationObserver(check)
  observer.observe(document, {subtree: true, childList: true, attributes: true, attributeFilter: ["disabled"]})
}

/**
 * Milliseconds from navigation to the lobby being ready and to in-room, for
 * `RUNS` fresh visitors, each with an empty cache.
 */
async function measure(browser, server, roomId) {
  const times = {lobby: [], inRoom: []}
  for (let run = 0; run < RUNS; run++) {
    // A fresh context each run: empty cache, new cookie, new visitor.
    const visitor = await openVisitor(browser, server.url, roomId, {
      lobby: "stay",
      beforeGoto: (page) => page.addInitScript(clickEnterWhenReady),
    })
    await waitInRoom(visitor.page)
    // performance.now() counts from the navigation's start.
    const {value} = await waitFor(
      () => visitor.page.evaluate(() => globalThis.__lobbyReadyAt !== undefined && [globalThis.__lobbyReadyAt, window.roomscale.inRoomAt]),
      {what: "the lobby-ready and in-room marks"},
    )
    times.lobby.push(value[0])
    times.inRoom.push(value[1])
    await visitor.close()
  }
  return times
}

const listed = (times) => `${median(times).toFixed(0)} ms [${times.map((t) => t.toFixed(0)).join(", ")}]`

function report(label, times) {
  const setting = `loopback, headless Chromium without GPU, cold cache, median of ${RUNS}`
  console.log(`web time to lobby ready ("Enter room" enabled), ${label} (${setting}): ${listed(times.lobby)}`)
  const typical = median(times.inRoom)
  console.log(
    `web time to in-room, Enter clicked when enabled, ${label} (${setting}): ${listed(times.inRoom)} ` +
      `(target <= ${IN_ROOM_TARGET_MS} ms: ${verdict(typical <= IN_ROOM_TARGET_MS)})`,
  )
}

async function timeToInRoom() {
  const unavailable = missingPrerequisite()
  if (unavailable) {
    process.stderr.write(`skipped: time to in-room: ${unavailable}\n`)
    return
  }
  const server = await startServer()
  const browser = await launchBrowser()
  try {
    // The visitor alone on the machine, as on a real visit.
    report("first visitor", await measure(browser, server, await server.createRoom("Benchmark alone")))
    // With a second visitor's page rendering on the same machine: both pages
    // share its cores, so this is the slower, pessimistic figure.
    const roomId = await server.createRoom("Benchmark with company")
    const host = await openVisitor(browser, server.url, roomId)
    await waitInRoom(host.page)
    report("second visitor, another page rendering on the same machine", await measure(browser, server, roomId))
    await host.close()
  } finally {
    await browser.close()
    await server.stop()
  }
}

bundleSizes()
await timeToInRoom()
