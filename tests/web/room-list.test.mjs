// The room list shows life: the real server, Debian's headless Chromium on
// /rooms, a browser visitor and the headless native client joining a room.
// The list's counts follow joins and leaves without a reload (a browser visitor
// counts once it has entered from the lobby), and the busiest room comes first.
//
//   node --test tests/web/room-list.test.mjs
//
// Screenshots: artifacts/web/landing-{1280,390}.png and rooms-{1280,390}.png.

import assert from "node:assert/strict"
import {test} from "node:test"

import {
  artifactPath,
  enterRoom,
  missingPrerequisite,
  openVisitor,
  serverAndBrowserPerFile,
  skip,
  startNative,
  waitFor,
  waitInRoom,
} from "./harness.mjs"

const unavailable = missingPrerequisite()
const fixture = serverAndBrowserPerFile()

/** pages.js polls every 3 s: a change shows within one poll and a little. */
const LIVE_WITHIN_MS = 8000

const WIDE = {width: 1280, height: 800}
const PHONE = {width: 390, height: 844}

/** The list as the page shows it now: each room's id, count badge and words, in order. */
function shownRooms(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll("ul.rooms li.room")].map((item) => ({
      id: item.dataset.roomId,
      count: item.querySelector(".count")?.textContent,
      text: item.querySelector(".people-text")?.textContent,
      join: item.querySelector("a.join")?.getAttribute("href"),
    })),
  )
}

/** Waits until room `id` says `text` in the open list; returns how long it took. */
async function waitForText(page, id, text) {
  const {ms} = await waitFor(async () => (await shownRooms(page)).find((room) => room.id === id)?.text === text, {
    timeout: LIVE_WITHIN_MS,
    what: `room ${id} to say "${text}" (it says "${(await shownRooms(page)).find((room) => room.id === id)?.text}")`,
  })
  return ms
}

test("the landing page says what Roomscale is and offers to create a room", async (t) => {
  if (unavailable) {
    return skip(t, unavailable)
  }
  const context = await fixture.browser.newContext({viewport: WIDE})
  try {
    const page = await context.newPage()
    await page.goto(fixture.server.url)
    assert.match(await page.locator("main").innerText(), /Roomscale is a place to meet people/)
    const create = page.getByRole("link", {name: "Create a room"}).first()
    assert.equal(await create.getAttribute("href"), "/rooms/new")
    await page.screenshot({path: artifactPath("landing-1280.png")})
    await page.setViewportSize(PHONE)
    const box = await create.boundingBox()
    assert.ok(box && box.x >= 0 && box.x + box.width <= PHONE.width, `"Create a room" fits the phone's width: ${JSON.stringify(box)}`)
    await page.screenshot({path: artifactPath("landing-390.png")})
  } finally {
    await context.close()
  }
})

test("the room list counts browser and native visitors live and lists the busiest room first", async (t) => {
  if (unavailable) {
    return skip(t, unavailable)
  }
  // The busy room is the older one: only its people can put it first.
  const busy = await fixture.server.createRoom("Busy hall", "Where everyone meets")
  const quiet = await fixture.server.createRoom("Quiet corner")
  const context = await fixture.browser.newContext({viewport: WIDE})
  const list = await context.newPage()
  const requests = []
  const errors = []
  list.on("request", (request) => requests.push(request.url()))
  list.on("console", (message) => message.type() === "error" && errors.push(message.text()))
  list.on("pageerror", (error) => errors.push(`uncaught: ${error.message}`))
  let visitor = null
  let native = null
  try {
    await list.goto(`${fixture.server.url}/rooms`)
    // A reload would lose this mark: the counts must change without one.
    await list.evaluate(() => {
      window.__sameListPage = true
    })
    let rooms = await shownRooms(list)
    assert.deepEqual(rooms.map((room) => room.id).slice(0, 2), [quiet, busy], "with nobody anywhere, the newest room comes first")
    assert.ok(rooms.every((room) => room.text === "nobody here yet" && room.count === "0"), JSON.stringify(rooms))
    assert.equal(rooms.find((room) => room.id === busy).join, `/rooms/${busy}`)

    // A browser visitor opens the busy room: waiting in its lobby is not being
    // in the room (one poll and more shows no one), entering is.
    visitor = await openVisitor(fixture.browser, fixture.server.url, busy, {lobby: "stay"})
    await visitor.page.waitForSelector(".lobby-enter:not([disabled])", {timeout: 20_000})
    await new Promise((resolve) => setTimeout(resolve, 4000))
    assert.equal((await shownRooms(list)).find((room) => room.id === busy).text, "nobody here yet", "a visitor in the lobby is counted")
    await enterRoom(visitor.page)
    await waitInRoom(visitor.page)
    const browserMs = await waitForText(list, busy, "1 here: 1 in a browser")
    t.diagnostic(`the list showed the browser visitor ${browserMs.toFixed(0)} ms after it was in the room`)
    rooms = await shownRooms(list)
    assert.equal(rooms[0].id, busy, "the busiest room comes first")
    assert.equal(rooms[0].count, "1")

    // The native client joins it too.
    const roomUrl = `${fixture.server.url.replace("localhost", "127.0.0.1")}/rooms/${busy}`
    native = startNative(["join", roomUrl, "--headless", "--name", "Native Nell", "--seconds", "60"])
    await native.line(/^joined ".*" as (\S+) \(slot \d+\)/, 30_000)
    const nativeMs = await waitForText(list, busy, "2 here: 1 in a browser, 1 in the desktop app")
    t.diagnostic(`the list showed the native client ${nativeMs.toFixed(0)} ms after it joined`)
    assert.equal((await shownRooms(list))[0].count, "2")

    await list.screenshot({path: artifactPath("rooms-1280.png")})
    await list.setViewportSize(PHONE)
    const join = list.locator(`li[data-room-id="${busy}"] a.join`)
    const box = await join.boundingBox()
    assert.ok(box && box.x + box.width <= PHONE.width, `the Join button fits the phone's width: ${JSON.stringify(box)}`)
    await list.screenshot({path: artifactPath("rooms-390.png"), fullPage: true})

    // They leave: the counts fall back.
    native.stop()
    native = null
    await waitForText(list, busy, "1 here: 1 in a browser")
    await visitor.close()
    visitor = null
    await waitForText(list, busy, "nobody here yet")

    assert.equal(await list.evaluate(() => window.__sameListPage), true, "the list updated without a reload")
    const origin = new URL(fixture.server.url).origin
    assert.deepEqual(requests.filter((url) => !url.startsWith(origin) && !url.startsWith("data:")), [], "no request leaves the origin")
    assert.ok(requests.some((url) => url.startsWith(`${origin}/api/rooms`)), "the list polls the room API")
    assert.deepEqual(errors, [])
  } finally {
    native?.stop()
    await visitor?.close()
    await context.close()
  }
})
