// Browser and native in one room: the real server, the headless native client
// (`roomscale join --headless`) and a visitor in Debian's headless Chromium.
//
//   node --test tests/web/native.test.mjs
//
// The native client renders offscreen with wgpu (lavapipe without a GPU); its
// screenshot goes to artifacts/web/native-view.png. A walking native bot and a
// visitor then live through two server restarts; what the bot saw after each
// is artifacts/web/native-after-restart-N.png.

import assert from "node:assert/strict"
import {spawnSync} from "node:child_process"
import {copyFileSync} from "node:fs"
import {test} from "node:test"

import {
  artifactPath,
  distance,
  hexToRgb,
  matchingPixels,
  missingPrerequisite,
  nativeBinary,
  openPanel,
  openVisitor,
  serverAndBrowserPerFile,
  skip,
  startNative,
  startServer,
  startTcpRelay,
  waitFor,
  waitInRoom,
} from "./harness.mjs"

const SAME_PLACE_M = 0.05
/** The native headless view: see app/src/view.rs. */
const VIEW = {width: 640, height: 480, verticalFovDegrees: 70}

const unavailable = missingPrerequisite()
const fixture = serverAndBrowserPerFile()

/**
 * Where a world point lands in the native view from `eye` looking along -Z
 * turned by `yaw` radians about +Y, as `walking_pose` in app/src/main.rs turns.
 */
function project(point, eye, yaw = 0) {
  const [x, y, z] = point.map((c, i) => c - eye[i])
  // Into the viewer's frame: turn back by the yaw.
  const r = [x * Math.cos(yaw) - z * Math.sin(yaw), y, x * Math.sin(yaw) + z * Math.cos(yaw)]
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
    await openPanel(visitor.page, "chat")
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

/** The walking bot (`--bot`): its head at native time `t` seconds, and its yaw. */
function botAt(t) {
  const angle = (t * 2 * Math.PI) / 8
  return {head: [1.5 * Math.cos(angle), 1.65, -1.5 * Math.sin(angle)], yaw: angle}
}

/** The bot's angle on its circle where `head` is. */
const angleOnCircle = (head) => Math.atan2(-head[2], head[0])
const wrapAngle = (a) => Math.atan2(Math.sin(a), Math.cos(a))
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
/** What `--screenshot-every` prints: the frame's time on the native clock. */
const WROTE = /^wrote .* at ([\d.]+) s$/
/**
 * How long the room lives before the visitor's last move before the first
 * restart. A track still on the old room's clock shows that move's pose only
 * until the new room's clock passes its stamp, so the stamp must be later than
 * the checks after the restart take.
 */
const OLD_ROOM_AGE_MS = 40_000

test("after server restarts a native bot and a browser visitor each see the other move again where they really are", async (t) => {
  if (unavailable) {
    return skip(t, unavailable)
  }
  // A server of its own: this test kills it twice. Each client reaches it
  // through something the test can hold closed, to choose who rejoins first
  // and so which slots the restarted room hands out.
  const server = await startServer()
  const relay = await startTcpRelay(server.port)
  const roomId = await server.createRoom("Restarts")
  const visitor = await openVisitor(fixture.browser, server.url, roomId, {proxySockets: true})
  let bot
  try {
    await waitInRoom(visitor.page)
    const roomStartedAt = performance.now()
    const visitorName = (await visitor.page.evaluate(() => window.roomscale.people())).find((p) => p.isSelf).name
    const visitorColour = (await visitor.page.evaluate(() => window.roomscale.avatars().find((a) => a.self))).colour
    assert.equal(await visitor.page.evaluate(() => window.roomscale.selfSlot), 1)

    // The bot renders what it sees and replaces its screenshot twice a second,
    // printing the moment each one shows: the same process lives through both restarts.
    const screenshot = artifactPath("native-bot-view.png")
    bot = startNative([
      "join", `http://127.0.0.1:${relay.port}/rooms/${roomId}`, "--headless", "--name", "Restart Walker", "--bot",
      "--screenshot", screenshot, "--screenshot-every", "0.5", "--seconds", "240",
    ])
    const [, botId, firstBotSlot] = await bot.line(/^joined ".*" as (\S+) \(slot (\d+)\)/)
    assert.equal(Number(firstBotSlot), 2)
    await bot.line(new RegExp(`^present: .*${escape(visitorName)}`))
    const botInBrowser = async () => (await visitor.page.evaluate(() => window.roomscale.avatars())).find((a) => a.userId === botId)
    await waitFor(async () => (await botInBrowser())?.visible, {timeout: 10_000, what: "the bot in the browser before the restarts"})
    /**
     * The bot's clock (seconds) at `at` (performance.now()), from its screenshot
     * lines: the one that came through fastest tells the clocks' offset best,
     * as a loaded machine only ever delays a line.
     */
    const botTimeAt = (at) => {
      let offset = Infinity
      bot.lines.forEach((line, i) => {
        const match = line.match(WROTE)
        if (match) {
          offset = Math.min(offset, bot.arrivals[i] / 1000 - Number(match[1]))
        }
      })
      return at / 1000 - offset
    }
    const visitorJoins = () => visitor.sockets.sent.filter((frame) => frame[3] === "phx_join").length
    // The visitor steps sideways (facing the centre, so along the room's
    // circles, across the bot's lines of sight): where it stands and where it
    // stood then show apart in the bot's view.
    const rounds = [
      // The visitor rejoins first: both keep their slots, and the bot hears of
      // the visitor at once. The visitor walks just before the restart, so the
      // bot's track holds a pose stamped late on the old room's clock; a track
      // that kept it would hold the visitor there until the new room's clock
      // caught up.
      {round: 1, first: "visitor", key: "d", slots: {visitor: 1, bot: 2}},
      // The bot rejoins first: the slots swap, so a client that kept its first
      // slot would take the visitor for itself and not draw it.
      {round: 2, first: "bot", key: "a", slots: {visitor: 2, bot: 1}},
    ]
    /** Walks with `key` held for 800 ms (about 1.2 m); resolves with where the visitor then stands still. */
    const walk = async (key) => {
      await visitor.page.click("#room-canvas")
      await visitor.page.keyboard.down(key)
      await sleep(800)
      await visitor.page.keyboard.up(key)
      return (await waitFor(async () => {
        const a = await visitor.page.evaluate(() => window.roomscale.selfHead())
        await sleep(200)
        const b = await visitor.page.evaluate(() => window.roomscale.selfHead())
        return distance(a, b) < 0.001 && b
      }, {what: `the visitor to stand still after walking with ${key}`})).value
    }
    let lastPoseAt = null
    for (const {round, first, key, slots} of rounds) {
      if (round === 1) {
        await sleep(Math.max(0, roomStartedAt + OLD_ROOM_AGE_MS - performance.now()))
        await walk("a")
        lastPoseAt = performance.now()
      }
      const mark = bot.lines.length
      const joinsBefore = visitorJoins()
      const visitorRejoined = async () => {
        await waitFor(async () => visitorJoins() > joinsBefore && (await visitor.page.evaluate(() => window.roomscale.state)) === "joined", {
          timeout: 20_000,
          what: `round ${round}: the visitor to rejoin`,
        })
      }
      const restartedAt = performance.now()
      if (first === "visitor") {
        relay.block()
        await server.restart()
        await visitorRejoined()
        relay.unblock()
      } else {
        visitor.sockets.block()
        await server.restart()
        await bot.lineAfter(mark, /^rejoined /, 30_000)
        visitor.sockets.unblock()
        await visitorRejoined()
      }
      const botRejoined = await bot.lineAfter(mark, /^rejoined ".*" \(slot (\d+)\)/, 30_000)
      const [, botSlot] = botRejoined.match
      const botRejoinedAt = botRejoined.arrivedAt
      const visitorSlot = await visitor.page.evaluate(() => window.roomscale.selfSlot)
      assert.deepEqual({visitor: visitorSlot, bot: Number(botSlot)}, slots, `round ${round}: the slots the restarted room handed out`)
      await bot.lineAfter(mark, new RegExp(`^present: .*${escape(visitorName)}`))

      // (a) The browser shows the bot walking its circle again, where the bot is now.
      await waitFor(async () => {
        const shown = await botInBrowser()
        return shown?.visible && shown.slot === slots.bot
      }, {timeout: 10_000, what: `round ${round}: the bot under its new slot in the browser`})
      // A window of 1.4 s in which the bot walks on its circle no further behind
      // where it really is than delivery and the interpolation delay explain.
      // A loaded machine may stall a window; a frozen or stale track fails them all.
      const samples = []
      let last = "no window yet"
      const giveUpAt = performance.now() + 15_000
      let good = null
      while (!good && performance.now() < giveUpAt) {
        const at = performance.now()
        samples.push({at, head: (await botInBrowser()).head})
        await sleep(100)
        if (samples.length < 15) {
          continue
        }
        const recent = samples.slice(-15)
        const lags = recent.map(({at, head}) => Math.abs(wrapAngle(botAt(botTimeAt(at)).yaw - angleOnCircle(head)) / ((2 * Math.PI) / 8)))
        const onCircle = recent.every(({head}) => Math.abs(Math.hypot(head[0], head[2]) - 1.5) < 0.1 && Math.abs(head[1] - 1.65) < 0.05)
        const walked = distance(recent[0].head, recent[recent.length - 1].head)
        const worstLag = Math.max(...lags)
        last = `walked ${walked.toFixed(2)} m, at most ${(worstLag * 1000).toFixed(0)} ms behind, ${onCircle ? "on" : "off"} its circle (${recent.at(-1).head.map((c) => c.toFixed(2))})`
        if (onCircle && walked > 0.8 && worstLag < 0.5) {
          good = {walked, worstLag, after: (at - botRejoinedAt) / 1000}
        }
      }
      assert.ok(good, `round ${round}: the browser never showed the bot walking where it is for 1.4 s; last: ${last}`)
      t.diagnostic(`round ${round}: the browser shows the bot walking (${good.walked.toFixed(2)} m in 1.4 s), at most ${(good.worstLag * 1000).toFixed(0)} ms behind where it is, ${good.after.toFixed(1)} s after it rejoined`)

      // (b) The visitor walks; the bot's view shows it where it now stands.
      const before = await visitor.page.evaluate(() => window.roomscale.selfHead())
      const settled = await walk(key)
      assert.ok(distance(before, settled) > 0.5, `round ${round}: the visitor walked ${distance(before, settled)} m`)
      // Pose relay and the ~100 ms interpolation delay, then frames drawn after it.
      await sleep(500)
      let from = bot.lines.length
      let checked = null
      const deadline = performance.now() + 40_000
      while (!checked && performance.now() < deadline) {
        const shot = await bot.lineAfter(from, WROTE, 5000)
        from = shot.index + 1
        const saved = artifactPath(`native-after-restart-${round}.png`)
        copyFileSync(screenshot, saved)
        const {head: eye, yaw} = botAt(Number(shot.match[1]))
        /** Where `point` shows in this screenshot, or null when it is behind the bot or too near. */
        const shown = (point) => {
          const [x, , z] = point.map((c, i) => c - eye[i])
          return x * Math.sin(yaw) + z * Math.cos(yaw) < -0.5 ? project(point, eye, yaw) : null
        }
        const where = shown(settled)
        const old = shown(before)
        const inFrame = (p) => p && p[0] > 40 && p[0] < VIEW.width - 40
        // The visitor well inside the frame and not too far to make out, and
        // where it stood before far enough from it on screen to tell the two apart.
        if (inFrame(where) && distance(settled, eye) < 6 && (!old || Math.hypot(old[0] - where[0], old[1] - where[1]) > 70)) {
          const colour = hexToRgb(visitorColour)
          checked = {where, saved, arrivedAt: shot.arrivedAt, hits: await matchingPixels(visitor.page, saved, where, 20, colour)}
          if (inFrame(old)) {
            checked.oldHits = await matchingPixels(visitor.page, saved, old, 20, colour)
          }
        }
      }
      assert.ok(checked, `round ${round}: the bot's view never had the visitor in frame, clear of where it stood before`)
      if (round === 1) {
        // Bounds that can only err toward the old stamp earlier and the new room older.
        const oldAge = (lastPoseAt - roomStartedAt) / 1000
        const newAge = (checked.arrivedAt - restartedAt) / 1000
        t.diagnostic(`round 1: checked when the new room was at most ${newAge.toFixed(1)} s old; the visitor's last pose before the restart was stamped after ${oldAge.toFixed(1)} s`)
        assert.ok(newAge < oldAge, `round 1: the check came too late (${newAge} s after the restart) to tell a track on the old room's clock from a live one`)
      }
      t.diagnostic(`round ${round}: the visitor's colour covers ${checked.hits} pixels around (${checked.where.map((c) => c.toFixed(0)).join(", ")}) in the bot's view${checked.oldHits === undefined ? "" : `, ${checked.oldHits} where it stood before`}`)
      assert.ok(checked.hits >= 30, `round ${round}: the bot's view shows the visitor where it stands (${checked.hits} matching pixels; see ${checked.saved})`)
      if (checked.oldHits !== undefined) {
        assert.ok(checked.oldHits < 10, `round ${round}: the bot's view still shows the visitor where it stood before the restart (${checked.oldHits} matching pixels)`)
      }
    }
    await visitor.page.screenshot({path: artifactPath("browser-after-restarts.png")})
    // Refused reconnections may log; nothing may throw.
    assert.deepEqual(visitor.consoleErrors.filter((e) => e.startsWith("uncaught")), [])
  } finally {
    bot?.stop()
    await visitor.close()
    await relay.close()
    await server.stop()
  }
})

function escape(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
}

test("the native client says what to do when the room does not exist", async (t) => {
  if (unavailable) {
    return skip(t, unavailable)
  }
  const result = spawnSync(nativeBinary(), ["join", `${fixture.server.url}/rooms/00000000-0000-4000-8000-000000000000`, "--headless"], {encoding: "utf8"})
  assert.notEqual(result.status, 0)
  assert.match(result.stderr, /does not exist.*; pick one from the room list/)
})
