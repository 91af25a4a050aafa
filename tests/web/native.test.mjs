// Browser and native in one room: the real server, the headless native client
// (`roomscale join --headless`) and a visitor in Debian's headless Chromium.
//
//   node --test tests/web/native.test.mjs
//
// The native client renders offscreen with wgpu (lavapipe without a GPU); its
// screenshot goes to artifacts/web/native-view.png.

import assert from "node:assert/strict"
import {spawnSync} from "node:child_process"
import {test} from "node:test"

import {
  artifactPath,
  distance,
  hexToRgb,
  matchingPixels,
  missingPrerequisite,
  nativeBinary,
  openVisitor,
  serverAndBrowserPerFile,
  skip,
  startNative,
  waitFor,
  waitInRoom,
} from "./harness.mjs"

const SAME_PLACE_M = 0.05
/** The native headless view: see app/src/view.rs. */
const VIEW = {width: 640, height: 480, verticalFovDegrees: 70}

const unavailable = missingPrerequisite()
const fixture = serverAndBrowserPerFile()

/** Where a world point lands in the native view from `eye` looking along -Z. */
function project(point, eye) {
  const r = point.map((c, i) => c - eye[i])
  assert.ok(r[2] < 0, "the point is in front of the native viewer")
  const tan = Math.tan((VIEW.verticalFovDegrees / 2) * (Math.PI / 180))
  const aspect = VIEW.width / VIEW.height
  const ndc = [r[0] / (-r[2] * tan * aspect), r[1] / (-r[2] * tan)]
  return [((ndc[0] + 1) / 2) * VIEW.width, ((1 - ndc[1]) / 2) * VIEW.height]
}

test("a native client and a browser visitor see each other, chat, and the native walk shows in the browser", async (t) => {
  if (unavailable) {
    return skip(t, unavailable)
  }
  const roomId = await fixture.server.createRoom("Browser and native")
  const visitor = await openVisitor(fixture.browser, fixture.server.url, roomId)
  const natives = []
  try {
    await waitInRoom(visitor.page)
    const visitorHead = (await waitFor(() => visitor.page.evaluate(() => window.roomscale.selfHead()), {what: "the visitor's own head"})).value
    const self = await visitor.page.evaluate(() => window.roomscale.avatars().find((a) => a.self))
    const roomUrl = `${fixture.server.url.replace("localhost", "127.0.0.1")}/rooms/${roomId}`

    // The native client stands 3 m behind the visitor, a little to the side, facing it.
    const at = [visitorHead[0] + 0.4, 1.65, visitorHead[2] + 3]
    const screenshot = artifactPath("native-view.png")
    const native = startNative([
      "join", roomUrl, "--headless", "--name", "Native Nell", "--colour", "#e0a030",
      "--at", at.join(","), "--say", "hello from native", "--frames", "90", "--screenshot", screenshot, "--seconds", "40",
    ])
    natives.push(native)
    const [, nativeId] = await native.line(/^joined ".*" as (\S+) \(slot \d+\)/)

    // The browser shows the native avatar where the native client stands.
    const seen = await waitFor(async () => {
      const avatar = (await visitor.page.evaluate(() => window.roomscale.avatars())).find((a) => a.userId === nativeId)
      return avatar?.visible && distance(avatar.head, at) <= SAME_PLACE_M && avatar
    }, {timeout: 10_000, what: "the native avatar in the browser where the native client stands"})
    t.diagnostic(`native avatar shown ${(distance(seen.value.head, at) * 100).toFixed(2)} cm from where it stands`)
    const person = (await visitor.page.evaluate(() => window.roomscale.people())).find((p) => p.userId === nativeId)
    assert.equal(person?.name, "Native Nell")

    // The native client's presence lists the visitor.
    const visitorName = (await visitor.page.evaluate(() => window.roomscale.people())).find((p) => p.isSelf).name
    await native.line(new RegExp(`^present: .*${visitorName.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`))

    // Chat both ways.
    await waitFor(() => visitor.page.evaluate(() => window.roomscale.chat().some((line) => line.text === "hello from native")), {
      what: "the native chat in the browser",
    })
    await visitor.page.fill(".room-chat input[name=text]", "hello from the browser")
    await visitor.page.press(".room-chat input[name=text]", "Enter")
    await native.line(/^chat #\d+ .*: hello from the browser$/)

    // The native screenshot shows the visitor's avatar at its projected place.
    await native.line(/^wrote /, 30_000)
    const where = project(visitorHead, at)
    const hits = await matchingPixels(visitor.page, screenshot, where, 24, hexToRgb(self.colour))
    t.diagnostic(`visitor's colour covers ${hits} pixels around (${where.map((c) => c.toFixed(0)).join(", ")}) in the native view`)
    assert.ok(hits >= 30, `the native view shows the visitor's avatar at its projected place (${hits} matching pixels)`)

    // A native bot walking its path moves its avatar in the browser.
    const bot = startNative(["join", roomUrl, "--headless", "--name", "Walker", "--bot", "--seconds", "30"])
    natives.push(bot)
    const [, botId] = await bot.line(/^joined ".*" as (\S+) \(slot \d+\)/)
    const botHead = async () => (await visitor.page.evaluate(() => window.roomscale.avatars())).find((a) => a.userId === botId && a.visible)?.head
    const start = (await waitFor(botHead, {timeout: 10_000, what: "the walking bot in the browser"})).value
    const moved = await waitFor(async () => {
      const now = await botHead()
      return now && distance(now, start) > 0.5 && now
    }, {timeout: 5000, what: "the walking bot to move in the browser"})
    assert.ok(Math.abs(Math.hypot(moved.value[0], moved.value[2]) - 1.5) < 0.1, `the bot walks its 1.5 m circle: ${moved.value}`)
    await visitor.page.screenshot({path: artifactPath("browser-with-native.png")})
    assert.deepEqual(visitor.consoleErrors, [])
  } finally {
    for (const native of natives) {
      native.stop()
    }
    await visitor.close()
  }
})

test("the native client says what to do when the room does not exist", async (t) => {
  if (unavailable) {
    return skip(t, unavailable)
  }
  const result = spawnSync(nativeBinary(), ["join", `${fixture.server.url}/rooms/00000000-0000-4000-8000-000000000000`, "--headless"], {encoding: "utf8"})
  assert.notEqual(result.status, 0)
  assert.match(result.stderr, /does not exist; pick one from the room list/)
})
