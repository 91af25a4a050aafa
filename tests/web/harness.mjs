// What the browser end-to-end tests and the web benchmark share: the real
// server binary on a free loopback port, Debian's headless Chromium through
// playwright-core (never a downloaded browser), visitors that record every
// request and console error, and an emulated Quest 3 (iwer) for WebXR.
//
// Pages are opened as http://localhost:PORT although the server binds
// 127.0.0.1: Babylon's Enter-VR button refuses plain http on any other host.
//
// Environment: ROOMSCALE_CHROMIUM (browser binary, default /usr/bin/chromium),
// ROOMSCALE_SERVER_BIN (a prebuilt server instead of `cargo build`),
// ROOMSCALE_SHOW_CONSOLE=1 (echo every page's console).

import {spawn, spawnSync} from "node:child_process"
import {existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync} from "node:fs"
import {connect, createServer} from "node:net"
import {tmpdir} from "node:os"
import {dirname, join} from "node:path"
import {after, before} from "node:test"
import {fileURLToPath} from "node:url"

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..")
export const ARTIFACTS = join(ROOT, "artifacts", "web")
const CHROMIUM = process.env.ROOMSCALE_CHROMIUM ?? "/usr/bin/chromium"
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
  // Two pages share the machine: keep both animating although neither has focus.
  "--disable-background-timer-throttling",
  "--disable-renderer-backgrounding",
  "--disable-backgrounding-occluded-windows",
]
const IWER = join(ROOT, "node_modules", "iwer", "build", "iwer.min.js")

/** Why these tests cannot run here, or null when they can. */
export function missingPrerequisite() {
  if (!existsSync(CHROMIUM)) {
    return `no Chromium at ${CHROMIUM}; install it with \`apt-get install -y chromium\` (or set ROOMSCALE_CHROMIUM)`
  }
  if (!existsSync(join(ROOT, "node_modules", "playwright-core"))) {
    return "playwright-core is not installed; run `npm ci` in the project root"
  }
  return null
}

/** Runs a command in the project root, failing with its output when it fails. */
function run(command, args) {
  const result = spawnSync(command, args, {cwd: ROOT, encoding: "utf8"})
  if (result.status !== 0) {
    throw new Error(`\`${command} ${args.join(" ")}\` failed (${result.status ?? result.signal}):\n${result.stdout}${result.stderr}`)
  }
  return result.stdout
}

function newestMtime(path) {
  const stat = statSync(path)
  if (!stat.isDirectory()) {
    return stat.mtimeMs
  }
  return Math.max(stat.mtimeMs, ...readdirSync(path).map((name) => newestMtime(join(path, name))))
}

/** Builds the web client when its sources are newer than the bundle. */
export function ensureWebBuild() {
  const bundle = join(ROOT, "server", "web", "dist", "room.js")
  const sources = [
    join(ROOT, "server", "web", "src"),
    join(ROOT, "server", "web", "build.mjs"),
    join(ROOT, "protocol", "bindings", "protocol.ts"),
    join(ROOT, "assets", "avatar.gltf"),
  ]
  if (!existsSync(bundle) || Math.max(...sources.map(newestMtime)) > statSync(bundle).mtimeMs) {
    run("node", ["server/web/build.mjs"])
  }
}

/** Builds (if needed) and returns the real server binary. */
export function serverBinary() {
  if (process.env.ROOMSCALE_SERVER_BIN) {
    return process.env.ROOMSCALE_SERVER_BIN
  }
  run("cargo", ["build", "--quiet", "-p", "roomscale-server", "--bin", "roomscale-server"])
  return join(ROOT, "target", "debug", "roomscale-server")
}

/**
 * Starts the server on 127.0.0.1 with a fresh data directory and the built
 * client; resolves once it logs where it listens. `restart()` kills it and
 * starts it again on the same port and data directory, as a crash and a
 * supervisor's restart would.
 */
export async function startServer() {
  ensureWebBuild()
  const binary = serverBinary()
  const dataDir = mkdtempSync(join(tmpdir(), "roomscale-web-"))
  const log = []
  let {child, port} = await spawnServer(binary, "127.0.0.1:0", dataDir, log)
  const url = `http://localhost:${port}`
  async function kill(signal) {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve))
      child.kill(signal)
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000))])
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL")
        await exited
      }
    }
  }
  return {
    url,
    port,
    log,
    async createRoom(name, description = "") {
      const response = await fetch(`http://127.0.0.1:${port}/api/rooms`, {
        method: "POST",
        headers: {"content-type": "application/json"},
        body: JSON.stringify({name, description}),
      })
      if (response.status !== 201) {
        throw new Error(`creating a room answered ${response.status}: ${await response.text()}`)
      }
      return (await response.json()).id
    },
    /** Kills the server (no goodbye to anyone) and starts it again where it was. */
    async restart() {
      await kill("SIGKILL")
      ;({child} = await spawnServer(binary, `127.0.0.1:${port}`, dataDir, log))
    },
    async stop() {
      await kill("SIGTERM")
      rmSync(dataDir, {recursive: true, force: true})
    },
  }
}

/** One server process on `bind`; resolves with it and its port once it listens. */
async function spawnServer(binary, bind, dataDir, log) {
  // The test's own database and log level, whatever the caller's environment says.
  const env = {...process.env}
  for (const name of ["DATABASE_URL", "RUST_LOG", "ROOMSCALE_LOG", "ROOMSCALE_WEB_DIR"]) {
    delete env[name]
  }
  // Every browser and client in a test comes from 127.0.0.1: limits per
  // address that suit the internet would throttle honest tests.
  Object.assign(env, {
    ROOMSCALE_SOCKETS_PER_IP: "1000000",
    ROOMSCALE_TOKENS_PER_MINUTE: "1000000",
    ROOMSCALE_ROOMS_PER_HOUR: "1000000",
  })
  const child = spawn(
    binary,
    ["--bind", bind, "--data-dir", dataDir, "--web-dir", join(ROOT, "server", "web", "dist"), "--log", "info"],
    {cwd: ROOT, env, stdio: ["ignore", "ignore", "pipe"]},
  )
  // Only this process's output counts: a restarted server logs the same line again.
  const own = []
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server did not start within 30 s:\n${own.join("")}`)), 30_000)
    child.stderr.setEncoding("utf8")
    child.stderr.on("data", (chunk) => {
      log.push(chunk)
      own.push(chunk)
      // eslint-disable-next-line no-control-regex
      const match = own.join("").replace(/\x1b\[[0-9;]*m/g, "").match(/listening on http:\/\/127\.0\.0\.1:(\d+)/)
      if (match) {
        clearTimeout(timer)
        resolve(Number(match[1]))
      }
    })
    child.on("exit", (code) => {
      clearTimeout(timer)
      reject(new Error(`the server exited (${code}) before listening:\n${own.join("")}`))
    })
  })
  return {child, port}
}

/**
 * A TCP relay on 127.0.0.1 to `port` that a test can close to new connections,
 * as a network slow to come back would be; open connections pass through.
 */
export async function startTcpRelay(port) {
  let blocked = false
  const open = new Set()
  const relay = createServer((client) => {
    if (blocked) {
      client.destroy()
      return
    }
    const upstream = connect(port, "127.0.0.1")
    const pair = [client, upstream]
    const close = () => {
      for (const socket of pair) {
        socket.destroy()
        open.delete(socket)
      }
    }
    for (const socket of pair) {
      open.add(socket)
      socket.on("error", close)
      socket.on("close", close)
    }
    client.pipe(upstream)
    upstream.pipe(client)
  })
  await new Promise((resolve) => relay.listen(0, "127.0.0.1", resolve))
  return {
    port: relay.address().port,
    block() {
      blocked = true
    },
    unblock() {
      blocked = false
    },
    async close() {
      for (const socket of open) {
        socket.destroy()
      }
      await new Promise((resolve) => relay.close(resolve))
    },
  }
}

/** Chromium flags for voice: a WAV file as the microphone, loopback WebRTC, audio without a gesture. */
export function voiceArgs(wavPath) {
  return [
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    `--use-file-for-fake-audio-capture=${wavPath}`,
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
  ]
}

export async function launchBrowser({extraArgs = []} = {}) {
  const {chromium} = await import("playwright-core")
  // launch() gives Chromium a fresh temporary profile (user-data-dir) each time.
  return chromium.launch({executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_ARGS, ...extraArgs]})
}

/**
 * A visitor: its own browser context (own cookie, so its own user id), a page
 * recording every request, console error and uncaught exception, and
 * optionally an emulated Quest 3.
 *
 * After loading the room page the visitor goes through the lobby as a person
 * would (`enterRoom`): listen only, or with `microphone: true` the first
 * microphone offered (for browsers launched with `voiceArgs`). With
 * `lobby: "stay"` the page is left in the lobby. `context` adds browser
 * context options (touch, permissions, a device's viewport); `beforeGoto`
 * runs with the page before it loads (init scripts).
 */
export async function openVisitor(
  browser,
  baseUrl,
  roomId,
  {
    xr = false,
    proxySockets = false,
    viewport = {width: 1100, height: 760},
    lobby = "enter",
    microphone = false,
    context: contextOptions = {},
    beforeGoto = null,
  } = {},
) {
  const context = await browser.newContext({viewport, ...contextOptions})
  const page = await context.newPage()
  const requests = []
  const consoleErrors = []
  /** Text frames (JSON) each way over the page's WebSockets; binary pose frames are not kept. */
  const frames = {sent: [], received: []}
  page.on("request", (request) => requests.push(request.url()))
  page.on("websocket", (socket) => {
    requests.push(socket.url())
    socket.on("framesent", ({payload}) => typeof payload === "string" && frames.sent.push(JSON.parse(payload)))
    socket.on("framereceived", ({payload}) => typeof payload === "string" && frames.received.push(JSON.parse(payload)))
  })
  page.on("console", (message) => {
    if (message.type() === "error") {
      consoleErrors.push(message.text())
    }
  })
  if (process.env.ROOMSCALE_SHOW_CONSOLE) {
    page.on("console", (message) => console.log(`[page] ${message.text()}`))
  }
  page.on("pageerror", (error) => consoleErrors.push(`uncaught: ${error.message}`))
  if (xr) {
    // iwer stays out of the production bundle: the test injects it before any page script.
    await page.addInitScript({path: IWER})
    await page.addInitScript(() => {
      const device = new globalThis.IWER.XRDevice(globalThis.IWER.metaQuest3)
      device.installRuntime({forceInstall: true})
      globalThis.__xrDevice = device
    })
  }
  const sockets = proxySockets ? await proxyWebSockets(page) : null
  const roomUrl = `${baseUrl}/rooms/${roomId}`
  await beforeGoto?.(page)
  const startedAt = Date.now()
  await page.goto(roomUrl)
  if (lobby !== "stay") {
    await enterRoom(page, {microphone})
  }
  return {
    context,
    page,
    requests,
    consoleErrors,
    frames,
    sockets,
    roomUrl,
    startedAt,
    /** Requests that left the page's origin (data: and blob: URLs never leave the machine). */
    foreignRequests() {
      const origin = new URL(baseUrl).origin
      return requests.filter((url) => {
        const parsed = new URL(url)
        if (parsed.protocol === "data:" || parsed.protocol === "blob:") {
          return false
        }
        const asHttp = parsed.protocol.replace(/^ws/, "http")
        return `${asHttp}//${parsed.host}` !== origin
      })
    },
    async close() {
      await context.close()
    },
  }
}

/**
 * Puts the page's WebSockets through Playwright, so a test can drop them (as a
 * network failure would) and refuse reconnections for a while. Records the
 * JSON frames each way.
 */
async function proxyWebSockets(page) {
  const control = {blocked: false, live: [], sent: [], received: [], refused: 0}
  await page.routeWebSocket(/\/socket\/websocket/, (socket) => {
    if (control.blocked) {
      control.refused++
      socket.close({code: 1011, reason: "refused by the test"})
      return
    }
    const server = socket.connectToServer()
    const pair = {socket, server}
    control.live.push(pair)
    socket.onMessage((message) => {
      if (typeof message === "string") {
        control.sent.push(JSON.parse(message))
      }
      server.send(message)
    })
    server.onMessage((message) => {
      if (typeof message === "string") {
        control.received.push(JSON.parse(message))
      }
      socket.send(message)
    })
    socket.onClose(() => server.close())
    server.onClose(() => socket.close())
  })
  return {
    get sent() {
      return control.sent
    },
    get received() {
      return control.received
    },
    get refused() {
      return control.refused
    },
    /** Refuses new connections until `unblock()`; open ones stay. */
    block() {
      control.blocked = true
    },
    /** Drops every open connection and refuses new ones until `unblock()`. */
    async dropAndBlock() {
      control.blocked = true
      for (const {socket, server} of control.live.splice(0)) {
        await socket.close({code: 4000, reason: "dropped by the test"})
        await server.close()
      }
    },
    unblock() {
      control.blocked = false
    },
  }
}

/**
 * Goes through the lobby as a person would: with `microphone`, "Use my
 * microphone" and the first microphone in the list, else listening only
 * ("No microphone" chosen where the lobby picked one by itself), then "Enter
 * room" as soon as it is enabled (the page has loaded).
 */
export async function enterRoom(page, {microphone = false, timeout = 20_000} = {}) {
  const enter = page.locator(".lobby-enter")
  await enter.waitFor({state: "visible", timeout}).catch((error) => {
    throw new Error(`the lobby's "Enter room" button never showed (${page.url()}): ${error.message}`)
  })
  if (microphone) {
    // "Use my microphone" asks the browser; where the page may already use it
    // (a permission granted before) the lobby lists the microphones itself.
    const firstDevice = () =>
      page.evaluate(() => {
        const allow = document.querySelector(".lobby-mic-allow")
        const device = [...document.querySelectorAll("#lobby-microphone option")].find((o) => o.value !== "")?.value
        return device ? {device} : allow && !allow.hidden && !allow.disabled ? {allow: true} : null
      })
    let {value: found} = await waitFor(firstDevice, {timeout, what: `"Use my microphone" (.lobby-mic-allow) or a listed microphone`})
    if (found.allow) {
      await page.click(".lobby-mic-allow")
      ;({value: found} = await waitFor(async () => (await firstDevice())?.device && (await firstDevice()), {
        timeout,
        what: "a microphone in the lobby's list (#lobby-microphone) after Use my microphone",
      }))
    }
    await page.selectOption("#lobby-microphone", found.device)
  } else if ((await page.evaluate(() => navigator.permissions.query({name: "microphone"}).then((status) => status.state))) === "granted") {
    // Allowed before (as in browsers launched with voiceArgs): the lobby opens
    // the microphone by itself; listening only is then a choice in the list.
    await waitFor(
      () => page.evaluate(() => [...document.querySelectorAll("#lobby-microphone option")].some((o) => o.value !== "")),
      {timeout, what: "the lobby to list the microphone it was allowed before"},
    )
    await page.selectOption("#lobby-microphone", "")
  }
  await page.waitForSelector(".lobby-enter:not([disabled])", {timeout}).catch((error) => {
    throw new Error(`"Enter room" (.lobby-enter) stayed disabled: ${error.message}`)
  })
  await enter.click()
}

/** Reloads a visitor's page and goes through the lobby again, as after a reload a person would. */
export async function reloadAndEnter(page, options = {}) {
  await page.reload()
  await enterRoom(page, options)
}

/**
 * Opens a room panel from its bar button (unless it is open already) and
 * waits until it shows; returns the panel's locator.
 */
export async function openPanel(page, name) {
  const button = page.locator(`nav.room-bar button[data-panel="${name}"]`)
  if ((await button.getAttribute("aria-expanded")) !== "true") {
    await button.click()
  }
  const panel = page.locator(`#panel-${name}`)
  await panel.waitFor({state: "visible", timeout: 5000}).catch((error) => {
    throw new Error(`the ${name} panel (#panel-${name}) did not open from its bar button: ${error.message}`)
  })
  return panel
}

/** Closes every open room panel from its bar button (wide windows open chat and people at first). */
export async function closePanels(page) {
  const open = await page.evaluate(() =>
    [...document.querySelectorAll('nav.room-bar button[data-panel][aria-expanded="true"]')].map((button) => button.dataset.panel),
  )
  for (const name of open) {
    await page.click(`nav.room-bar button[data-panel="${name}"]`)
    await page.locator(`#panel-${name}`).waitFor({state: "hidden", timeout: 5000})
  }
}

/** Waits until the page is in the room: joined, listed in presence, own avatar drawn. */
export async function waitInRoom(page, timeout = 20_000) {
  await page.waitForFunction(() => window.roomscale?.state === "joined", null, {timeout})
}

/** Polls `probe` (run in the test) every 20 ms until it returns a truthy value. */
export async function waitFor(probe, {timeout = 5000, what = "a condition"} = {}) {
  const started = performance.now()
  let last
  while (performance.now() - started < timeout) {
    last = await probe()
    if (last) {
      return {value: last, ms: performance.now() - started}
    }
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  throw new Error(`timed out after ${timeout} ms waiting for ${what}`)
}

export function distance(a, b) {
  return Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2])
}

export function artifactPath(name) {
  mkdirSync(ARTIFACTS, {recursive: true})
  return join(ARTIFACTS, name)
}

/**
 * One server and one browser for a whole test file: started before its first
 * test (unless this machine cannot run them), stopped after its last. Read
 * `fixture.server` and `fixture.browser` inside tests.
 */
export function serverAndBrowserPerFile() {
  const fixture = {server: null, browser: null}
  before(async () => {
    if (missingPrerequisite()) {
      return
    }
    fixture.server = await startServer()
    fixture.browser = await launchBrowser()
  })
  after(async () => {
    await fixture.browser?.close()
    await fixture.server?.stop()
  })
  return fixture
}

/** Marks a test as skipped with the reason on stderr, as the project's tests do. */
export function skip(t, reason) {
  process.stderr.write(`skipped: ${reason}\n`)
  t.skip(reason)
}

/** ROOMSCALE_APP_BIN (as `cargo xtask test` sets it), else a fresh `cargo build`. */
export function nativeBinary() {
  if (process.env.ROOMSCALE_APP_BIN) {
    return process.env.ROOMSCALE_APP_BIN
  }
  run("cargo", ["build", "--quiet", "-p", "roomscale-app", "--bin", "roomscale"])
  return join(ROOT, "target", "debug", "roomscale")
}

/**
 * A program as a child process, its stdout lines kept for `line()` and
 * `lineAfter()` (with `arrivals`: when each arrived, in `performance.now()`
 * milliseconds) and its stderr for failure messages; `exited` resolves with
 * its status.
 */
export function startProgram(program, args, {env = {}} = {}) {
  const runtimeDir = join(ROOT, "target", "xdg-runtime")
  mkdirSync(runtimeDir, {recursive: true, mode: 0o700})
  const child = spawn(program, args, {
    cwd: ROOT,
    env: {...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? runtimeDir, ...env},
    stdio: ["ignore", "pipe", "pipe"],
  })
  const lines = []
  const arrivals = []
  const errors = []
  let buffer = ""
  child.stdout.setEncoding("utf8")
  child.stdout.on("data", (chunk) => {
    buffer += chunk
    const complete = buffer.split("\n")
    buffer = complete.pop()
    lines.push(...complete)
    arrivals.push(...complete.map(() => performance.now()))
  })
  child.stderr.setEncoding("utf8")
  child.stderr.on("data", (chunk) => errors.push(chunk))
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({code, signal})))
  const name = program.split("/").pop()
  return {
    child,
    lines,
    arrivals,
    exited,
    stderr: () => errors.join(""),
    /** The first line matching `pattern` (waiting for it), as a match array. */
    async line(pattern, timeout = 15_000) {
      const {value} = await waitFor(() => lines.map((l) => l.match(pattern)).find(Boolean), {
        timeout,
        what: `${name} to print ${pattern} (printed so far: ${JSON.stringify(lines.slice(-40))}; stderr: ${errors.join("").slice(-4000)})`,
      })
      return value
    },
    /**
     * The first line from index `from` on matching `pattern` (waiting for it):
     * its match, its index, and when it arrived.
     */
    async lineAfter(from, pattern, timeout = 15_000) {
      const {value} = await waitFor(() => {
        const index = lines.findIndex((l, i) => i >= from && pattern.test(l))
        return index >= 0 && {match: lines[index].match(pattern), index, arrivedAt: arrivals[index]}
      }, {
        timeout,
        what: `${name} to print ${pattern} after line ${from} (printed so far: ${JSON.stringify(lines.slice(-40))}; stderr: ${errors.join("").slice(-4000)})`,
      })
      return value
    },
    signal(name) {
      child.kill(name)
    },
    stop() {
      child.kill("SIGTERM")
    },
  }
}

/** The native client (`roomscale`) as a child process; see `startProgram`. */
export function startNative(args) {
  return startProgram(nativeBinary(), args)
}

export function hexToRgb(hex) {
  return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16))
}

/** Pixels within `radius` of `centre` in a PNG whose hue matches `rgb` (any lighting). */
export async function matchingPixels(page, pngPath, centre, radius, rgb) {
  const dataUrl = `data:image/png;base64,${readFileSync(pngPath).toString("base64")}`
  return page.evaluate(async ({dataUrl, centre, radius, rgb}) => {
    const image = new Image()
    image.src = dataUrl
    await image.decode()
    const canvas = document.createElement("canvas")
    canvas.width = image.width
    canvas.height = image.height
    const context = canvas.getContext("2d")
    context.drawImage(image, 0, 0)
    const [x0, y0] = [Math.round(centre[0] - radius), Math.round(centre[1] - radius)]
    const {data} = context.getImageData(x0, y0, radius * 2, radius * 2)
    const norm = Math.hypot(...rgb)
    let hits = 0
    for (let i = 0; i < data.length; i += 4) {
      const pixel = [data[i], data[i + 1], data[i + 2]]
      const length = Math.hypot(...pixel)
      const cosine = (pixel[0] * rgb[0] + pixel[1] * rgb[1] + pixel[2] * rgb[2]) / (length * norm)
      if (length > 40 && cosine > 0.995) {
        hits++
      }
    }
    return hits
  }, {dataUrl, centre, radius, rgb})
}
