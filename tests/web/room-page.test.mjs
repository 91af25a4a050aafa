// The room page as a visitor meets it, end to end: the real server binary,
// Debian's headless Chromium (playwright-core), the built client and iwer's
// emulated Quest 3. The lobby (name, colour and its preview, listen-only
// entry, remembered after a reload; Enter VR with a headset), the bar's
// panels (mouse, Escape, keyboard only, announcements), sharing the link,
// the error pages of a deleted or unknown room, a phone with touch input,
// the connection banner, and screenshots.
//
//   node --test tests/web/room-page.test.mjs
//
// Screenshots: artifacts/web/lobby-{1280,390}.png and room-{1280,390}.png
// (landing and room list: room-list.test.mjs). Without Chromium every test
// prints `skipped: <reason>` and passes.

import assert from "node:assert/strict"
import {randomUUID} from "node:crypto"
import {test} from "node:test"

import {
  artifactPath,
  distance,
  enterRoom,
  hexToRgb,
  matchingPixels,
  missingPrerequisite,
  openPanel,
  openVisitor,
  serverAndBrowserPerFile,
  skip,
  waitFor,
  waitInRoom,
} from "./harness.mjs"

const unavailable = missingPrerequisite()
const fixture = serverAndBrowserPerFile()

const WIDE = {width: 1280, height: 800}
const PHONE = {width: 390, height: 844}
const PHONE_CONTEXT = {hasTouch: true, isMobile: true}
const PANELS = ["chat", "people", "objects", "settings", "share", "room"]
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

const browserTest = (name, body) =>
  test(name, async (t) => {
    if (unavailable) {
      return skip(t, unavailable)
    }
    return body(t)
  })

/** The lobby, loaded: its "Enter room" button enabled. */
async function lobbyReady(page) {
  await page.waitForSelector(".lobby-enter:not([disabled])", {timeout: 20_000})
}

/** The visitor's own entry in presence. */
async function selfPerson(page) {
  return (await page.evaluate(() => window.roomscale.people())).find((person) => person.isSelf)
}

/** Whether a panel shows now, and what its bar button says. */
async function panelState(page, name) {
  return page.evaluate((name) => {
    const button = document.querySelector(`nav.room-bar button[data-panel="${name}"]`)
    const panel = document.getElementById(`panel-${name}`)
    return {
      expanded: button?.getAttribute("aria-expanded") ?? null,
      controls: button?.getAttribute("aria-controls") ?? null,
      hidden: panel ? panel.hidden : null,
      shown: panel ? panel.checkVisibility() : false,
    }
  }, name)
}

async function assertPanel(page, name, open, what) {
  const state = await panelState(page, name)
  assert.deepEqual(
    {expanded: state.expanded, hidden: state.hidden, shown: state.shown},
    {expanded: open ? "true" : "false", hidden: !open, shown: open},
    `${what}: the ${name} panel should be ${open ? "open" : "closed"} (aria-expanded, hidden, visible)`,
  )
}

/** Waits until the panel's state is as wanted (a click's effect may take a frame). */
async function waitPanel(page, name, open, what) {
  await waitFor(async () => {
    const state = await panelState(page, name)
    return state.expanded === (open ? "true" : "false") && state.shown === open
  }, {timeout: 3000, what: `${what}: the ${name} panel to be ${open ? "open" : "closed"}`}).catch(async (error) => {
    throw new Error(`${error.message}; it is ${JSON.stringify(await panelState(page, name))}`)
  })
}

/**
 * Controls that show and have no name a screen reader could say (no text,
 * aria-label, aria-labelledby, title or <label>), described for the message.
 */
function unlabelledControls(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll("button, input, select, textarea, a[href], meter, progress, canvas[tabindex]")]
      .filter((control) => control.checkVisibility() && control.type !== "hidden")
      .filter((control) => {
        const text = (control.textContent ?? "").trim()
        const labelled = control.getAttribute("aria-label") || control.getAttribute("aria-labelledby") || control.title
        const labels = control.labels ? control.labels.length : 0
        return !text && !labelled && !labels
      })
      .map((control) => `${control.tagName.toLowerCase()}${control.className ? "." + String(control.className).split(" ").join(".") : ""}`),
  )
}

/** What #room-announcer has said so far (it may replace its text; the test records every change). */
async function recordAnnouncements(page) {
  await page.evaluate(() => {
    const announcer = document.getElementById("room-announcer")
    const said = []
    globalThis.__announced = said
    const note = () => {
      const text = announcer.textContent.trim()
      if (text && said[said.length - 1] !== text) {
        said.push(text)
      }
    }
    note()
    new MutationObserver(note).observe(announcer, {childList: true, subtree: true, characterData: true})
  })
}

const announced = (page) => page.evaluate(() => globalThis.__announced)

/**
 * A visitor who creates a room with the "New room" form (so the room is
 * theirs) and enters it through the lobby. Shaped like `openVisitor`'s result.
 */
async function openOwner(roomName) {
  const context = await fixture.browser.newContext({viewport: WIDE})
  const page = await context.newPage()
  const consoleErrors = []
  page.on("console", (message) => message.type() === "error" && consoleErrors.push(message.text()))
  page.on("pageerror", (error) => consoleErrors.push(`uncaught: ${error.message}`))
  await page.goto(`${fixture.server.url}/rooms/new`)
  await page.fill("form input[name=name]", roomName)
  await Promise.all([page.waitForURL(/\/rooms\/[0-9a-f-]{36}$/), page.click("form button[type=submit]")])
  const roomId = new URL(page.url()).pathname.split("/").pop()
  await enterRoom(page)
  await waitInRoom(page)
  return {context, page, consoleErrors, roomId, close: () => context.close()}
}

/** Head position and (when the page reports it) orientation. */
async function headPose(page) {
  const head = await page.evaluate(() => window.roomscale.selfHead())
  return Array.isArray(head) ? {position: head, orientation: null} : head
}

/** Which way the visitor faces on the floor, in radians: from their resting left hand to the right one. */
async function heading(page) {
  const self = (await page.evaluate(() => window.roomscale.avatars())).find((avatar) => avatar.self)
  return Math.atan2(self.right[2] - self.left[2], self.right[0] - self.left[0])
}

const wrapDegrees = (degrees) => ((((degrees + 180) % 360) + 360) % 360) - 180

/** One touch point's path through CDP: down at `from`, moving to `to` in steps, held, then up. */
async function touchDrag(cdp, from, to, {steps = 10, stepMs = 30, holdMs = 0} = {}) {
  const point = (x, y) => [{x: Math.round(x), y: Math.round(y), id: 1, radiusX: 4, radiusY: 4, force: 1}]
  await cdp.send("Input.dispatchTouchEvent", {type: "touchStart", touchPoints: point(from.x, from.y)})
  for (let i = 1; i <= steps; i++) {
    const x = from.x + ((to.x - from.x) * i) / steps
    const y = from.y + ((to.y - from.y) * i) / steps
    await cdp.send("Input.dispatchTouchEvent", {type: "touchMove", touchPoints: point(x, y)})
    await sleep(stepMs)
  }
  // A held stick keeps moving; a few small moves on the spot, as a real thumb makes.
  const heldUntil = performance.now() + holdMs
  while (performance.now() < heldUntil) {
    await cdp.send("Input.dispatchTouchEvent", {type: "touchMove", touchPoints: point(to.x + (Math.random() - 0.5), to.y)})
    await sleep(50)
  }
  await cdp.send("Input.dispatchTouchEvent", {type: "touchEnd", touchPoints: []})
}

browserTest("the lobby takes a name and a colour, previews them, enters listen-only, and remembers them", async (t) => {
  const roomId = await fixture.server.createRoom("Lobby <b>test</b>")
  const visitor = await openVisitor(fixture.browser, fixture.server.url, roomId, {lobby: "stay", viewport: WIDE})
  const {page} = visitor
  try {
    await lobbyReady(page)
    assert.equal(await page.evaluate(() => window.roomscale?.state), "lobby", "the page waits in the lobby")
    const lobby = page.locator("section.lobby")
    assert.equal(await lobby.getAttribute("role"), "dialog")
    assert.equal(await lobby.getAttribute("aria-modal"), "true")
    assert.equal(await lobby.locator("h1").textContent(), "Lobby <b>test</b>", "the lobby names the room, as text")
    // The visitor is not in the room before entering.
    assert.equal((await page.evaluate(() => window.roomscale.people())).some((person) => person.isSelf), false)

    assert.deepEqual(await unlabelledControls(page), [], "every control in the lobby has a name a screen reader says")
    // Listen only unless a microphone is chosen, and the lobby says so.
    assert.equal(await page.inputValue("#lobby-microphone"), "")
    assert.match(await page.textContent(".lobby-note"), /listen/i, "the lobby says the visitor will listen only")

    const colour = "#e0208f"
    const rgb = hexToRgb(colour)
    const preview = page.locator("canvas.lobby-avatar")
    const box = await preview.boundingBox()
    assert.ok(box && box.width > 20 && box.height > 20, `the avatar preview is drawn: ${JSON.stringify(box)}`)
    const centre = [box.width / 2, box.height / 2]
    const radius = Math.floor(Math.min(box.width, box.height) / 2) - 1
    const beforePath = artifactPath("lobby-preview-before.png")
    await preview.screenshot({path: beforePath})
    const pinkBefore = await matchingPixels(page, beforePath, centre, radius, rgb)

    await page.fill("#lobby-name", "Ada Lovelace")
    await page.fill("#lobby-colour", colour)
    // The preview redraws in the new colour.
    const afterPath = artifactPath("lobby-preview-after.png")
    const {value: pinkAfter} = await waitFor(async () => {
      await preview.screenshot({path: afterPath})
      const hits = await matchingPixels(page, afterPath, centre, radius, rgb)
      return hits >= 50 && hits
    }, {timeout: 5000, what: `the avatar preview to show ${colour}`}).catch(async (error) => {
      throw new Error(`${error.message}: ${await matchingPixels(page, afterPath, centre, radius, rgb)} matching pixels (${pinkBefore} before)`)
    })
    t.diagnostic(`the preview shows ${colour} on ${pinkAfter} pixels (${pinkBefore} before the change)`)
    assert.ok(pinkBefore < pinkAfter / 4, `the preview was not that colour before (${pinkBefore} pixels)`)

    await page.click(".lobby-enter")
    await waitInRoom(page)
    assert.equal(await lobby.isVisible(), false, "the lobby closes on entering")
    assert.equal(await page.isVisible("nav.room-bar"), true, "the room's bar shows")
    const self = await selfPerson(page)
    assert.equal(self?.name, "Ada Lovelace", "presence carries the name typed in the lobby")
    assert.equal(self?.colour.toLowerCase(), colour, "presence carries the colour picked in the lobby")
    const ownAvatar = (await page.evaluate(() => window.roomscale.avatars())).find((avatar) => avatar.self)
    assert.equal(ownAvatar.colour.toLowerCase(), colour)
    // Listen only: the bar offers to turn the microphone on.
    assert.equal(await page.isVisible(".voice-join"), true, `"Turn on microphone" is offered to a listen-only visitor`)

    await page.reload()
    await lobbyReady(page)
    assert.equal(await page.inputValue("#lobby-name"), "Ada Lovelace", "the lobby remembers the name")
    assert.equal((await page.inputValue("#lobby-colour")).toLowerCase(), colour, "the lobby remembers the colour")
    assert.deepEqual(visitor.consoleErrors, [])
    assert.deepEqual(visitor.foreignRequests(), [])
  } finally {
    await visitor.close()
  }
})

browserTest("each bar button opens and closes its panel; Escape and the keyboard work; arrivals and departures are announced", async (t) => {
  const started = performance.now()
  const roomId = await fixture.server.createRoom("Panels")
  const visitor = await openVisitor(fixture.browser, fixture.server.url, roomId, {viewport: WIDE})
  const {page} = visitor
  let second = null
  try {
    await waitInRoom(page)
    // A wide window opens chat and people at first.
    for (const name of PANELS) {
      const state = await panelState(page, name)
      assert.equal(state.controls, `panel-${name}`, `the ${name} button names its panel (aria-controls)`)
      await assertPanel(page, name, name === "chat" || name === "people", "on entering a wide window")
    }
    // Each button toggles its panel.
    for (const name of PANELS) {
      const button = page.locator(`nav.room-bar button[data-panel="${name}"]`)
      const wasOpen = (await panelState(page, name)).expanded === "true"
      await button.click()
      await waitPanel(page, name, !wasOpen, `after one click on ${name}`)
      await button.click()
      await waitPanel(page, name, wasOpen, `after a second click on ${name}`)
    }
    // With every panel open, every control shown has a name a screen reader says.
    for (const name of PANELS) {
      await openPanel(page, name)
    }
    assert.deepEqual(await unlabelledControls(page), [], "controls without an accessible name")
    // Each panel's close button closes it.
    await openPanel(page, "share")
    await page.click("#panel-share .panel-close")
    await waitPanel(page, "share", false, "after its close button")
    // Escape closes the panel in use.
    await openPanel(page, "settings")
    await page.focus("#panel-settings input[name=name]")
    await page.keyboard.press("Escape")
    await waitPanel(page, "settings", false, "after Escape")

    t.diagnostic(`panels toggled by mouse and Escape within ${(performance.now() - started).toFixed(0)} ms of the start`)
    // Keyboard only: Tab to the share button, Enter opens its panel.
    await page.click("#room-canvas", {position: {x: 640, y: 300}})
    let tabs = 0
    let reached = false
    const passed = []
    while (tabs < 80 && !reached) {
      await page.keyboard.press("Tab")
      tabs++
      const focused = await page.evaluate(() => {
        const element = document.activeElement
        return {
          share: element?.matches('nav.room-bar button[data-panel="share"]') ?? false,
          what: element ? `${element.tagName.toLowerCase()}${element.className ? "." + String(element.className).split(" ").join(".") : ""}` : "nothing",
        }
      })
      reached = focused.share
      passed.push(focused.what)
    }
    assert.ok(reached, `Tab reaches the share button in the bar (focus went through ${passed.join(", ")})`)
    t.diagnostic(`${tabs} Tab presses from the view to the share button`)
    await page.keyboard.press("Enter")
    await waitPanel(page, "share", true, "after Enter on the focused share button")
    await page.keyboard.press("Escape")
    await waitPanel(page, "share", false, "after Escape in the share panel")

    // The chat log is read out politely; the announcer tells arrivals and departures.
    await openPanel(page, "chat")
    assert.equal(await page.getAttribute("ol.room-chat-log", "aria-live"), "polite")
    assert.equal(await page.getAttribute("#room-announcer", "aria-live"), "polite")
    await recordAnnouncements(page)
    second = await openVisitor(fixture.browser, fixture.server.url, roomId, {lobby: "stay"})
    await lobbyReady(second.page)
    await second.page.fill("#lobby-name", "Grace Hopper")
    await second.page.click(".lobby-enter")
    await waitInRoom(second.page)
    const {ms: joinedMs} = await waitFor(async () => (await announced(page)).some((text) => text.includes("Grace Hopper joined")), {
      what: `"Grace Hopper joined" from #room-announcer`,
    }).catch(async (error) => {
      throw new Error(`${error.message}; it said ${JSON.stringify(await announced(page))}`)
    })
    await second.close()
    second = null
    const {ms: leftMs} = await waitFor(async () => (await announced(page)).some((text) => text.includes("Grace Hopper left")), {
      what: `"Grace Hopper left" from #room-announcer`,
    }).catch(async (error) => {
      throw new Error(`${error.message}; it said ${JSON.stringify(await announced(page))}`)
    })
    t.diagnostic(`announced: ${JSON.stringify(await announced(page))} (joined after ${joinedMs.toFixed(0)} ms, left after ${leftMs.toFixed(0)} ms)`)
    assert.deepEqual(visitor.consoleErrors, [])
  } finally {
    await second?.close()
    await visitor.close()
  }
})

browserTest("with a headset the lobby offers Enter VR, which enters the room in VR; without one it is hidden", async (t) => {
  const roomId = await fixture.server.createRoom("Lobby VR")
  const flat = await openVisitor(fixture.browser, fixture.server.url, roomId, {lobby: "stay", viewport: WIDE})
  const headset = await openVisitor(fixture.browser, fixture.server.url, roomId, {lobby: "stay", viewport: WIDE, xr: true})
  try {
    await lobbyReady(flat.page)
    await lobbyReady(headset.page)
    await headset.page.waitForSelector(".lobby-enter-vr:not([disabled])", {state: "visible", timeout: 10_000}).catch((error) => {
      throw new Error(`an emulated Quest 3 is not offered Enter VR in the lobby (.lobby-enter-vr): ${error.message}`)
    })
    assert.equal(await flat.page.isVisible(".lobby-enter-vr"), false, "a browser without VR is offered Enter VR")
    await headset.page.click(".lobby-enter-vr")
    await waitInRoom(headset.page)
    await headset.page.waitForFunction(() => window.roomscale.immersive, null, {timeout: 10_000})
    assert.equal(await flat.page.isVisible(".enter-vr"), false, "the bar offers Enter VR without VR")
    t.diagnostic("Enter VR in the lobby put the emulated headset in the room, immersive")
    assert.deepEqual(headset.consoleErrors, [])
  } finally {
    await flat.close()
    await headset.close()
  }
})

browserTest("the share panel copies the room's link and offers it to the app as roomscale://", async () => {
  const roomId = await fixture.server.createRoom("Sharing")
  const visitor = await openVisitor(fixture.browser, fixture.server.url, roomId, {
    viewport: WIDE,
    context: {permissions: ["clipboard-read", "clipboard-write"]},
  })
  const {page} = visitor
  try {
    await waitInRoom(page)
    await openPanel(page, "share")
    assert.equal(await page.inputValue(".share-url"), visitor.roomUrl, "the link shown is the room's address")
    assert.equal(await page.getAttribute(".share-url", "readonly"), "", "the link is read-only")
    await page.evaluate(() => navigator.clipboard.writeText("nothing copied yet"))
    await page.click(".share-copy")
    const {value: copied} = await waitFor(async () => {
      const text = await page.evaluate(() => navigator.clipboard.readText())
      return text !== "nothing copied yet" && text
    }, {what: "Copy link to change the clipboard"})
    assert.equal(copied, visitor.roomUrl, "Copy link puts the room's address on the clipboard")
    // Loopback over plain http: the app connects without ?insecure=1.
    const port = new URL(fixture.server.url).port
    assert.equal(await page.getAttribute(".share-app", "href"), `roomscale://localhost:${port}/rooms/${roomId}`)
    assert.match(await page.textContent(".share-app"), /Open in the Roomscale app/)
    assert.deepEqual(visitor.consoleErrors, [])
  } finally {
    await visitor.close()
  }
})

browserTest("a deleted room ends its visitors' pages and shows its error page; an unknown room says it does not exist", async (t) => {
  const owner = await openOwner("Soon gone")
  const member = await openVisitor(fixture.browser, fixture.server.url, owner.roomId, {viewport: WIDE})
  try {
    await waitInRoom(member.page)
    // A member has no Delete in their Room panel; the owner has.
    const memberRoom = await openPanel(member.page, "room")
    assert.equal(await memberRoom.getByRole("button", {name: "Delete room"}).count(), 0, "a member is offered Delete room")
    const ownerRoom = await openPanel(owner.page, "room")
    assert.equal(await ownerRoom.locator("#room-details h2").textContent(), "Soon gone", "the room's details moved into the Room panel")
    owner.page.once("dialog", (dialog) => void dialog.accept())
    const roomPath = `/rooms/${owner.roomId}`
    await Promise.all([
      owner.page.waitForURL((url) => url.pathname !== roomPath),
      ownerRoom.getByRole("button", {name: "Delete room"}).click(),
    ])

    // The member inside is told, with a way back to the room list.
    await member.page.waitForSelector(".room-ended", {state: "visible", timeout: 5000})
    assert.equal(await member.page.getAttribute(".room-ended", "role"), "alert")
    assert.match(await member.page.textContent(".room-ended"), /deleted/)
    assert.equal(await member.page.locator('.room-ended a[href="/rooms"]').count(), 1, "the ended notice links to the room list")

    // Reloading shows the deleted room's page: 410 Gone.
    const gone = await member.page.reload()
    assert.equal(gone.status(), 410)
    assert.match(await member.page.textContent(".room-error"), /This room was deleted/)
    assert.equal(await member.page.locator(".room-error a[href='/rooms']").count() > 0, true, "the error page links to the room list")
    assert.equal(await member.page.locator("#room-root").count(), 0, "no room is drawn for a deleted room")
    await member.page.screenshot({path: artifactPath("room-deleted.png")})

    // A room that never was: 404.
    const missing = await member.page.goto(`${fixture.server.url}/rooms/${randomUUID()}`)
    assert.equal(missing.status(), 404)
    assert.match(await member.page.textContent(".room-error"), /This room does not exist/)
    assert.equal(await member.page.locator(".room-error a[href='/rooms']").count() > 0, true)
    t.diagnostic(`a deleted room answers 410, an unknown one 404`)
    assert.deepEqual(owner.consoleErrors, [])
  } finally {
    await owner.close()
    await member.close()
  }
})

browserTest("on a phone the lobby fits, the stick moves, a drag looks around, and panels fit the width", async (t) => {
  const roomId = await fixture.server.createRoom("Phone")
  const visitor = await openVisitor(fixture.browser, fixture.server.url, roomId, {lobby: "stay", viewport: PHONE, context: PHONE_CONTEXT})
  const {page} = visitor
  try {
    await lobbyReady(page)
    const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth)
    assert.ok(scrollWidth <= PHONE.width, `the lobby fits the phone's width (scrollWidth ${scrollWidth})`)
    const enterBox = await page.locator(".lobby-enter").boundingBox()
    assert.ok(enterBox && enterBox.x >= 0 && enterBox.x + enterBox.width <= PHONE.width, `"Enter room" fits: ${JSON.stringify(enterBox)}`)
    await page.locator(".lobby-enter").tap()
    await waitInRoom(page)
    // A narrow window opens no panel at first.
    for (const name of PANELS) {
      await assertPanel(page, name, false, "on entering a phone")
    }

    const stick = page.locator(".touch-stick")
    await stick.waitFor({state: "visible", timeout: 5000}).catch((error) => {
      throw new Error(`the move stick (.touch-stick) does not show on a touch phone: ${error.message}`)
    })
    const cdp = await page.context().newCDPSession(page)
    const stickBox = await stick.boundingBox()
    const stickCentre = {x: stickBox.x + stickBox.width / 2, y: stickBox.y + stickBox.height / 2}

    // Push the stick forward and hold it: the visitor walks.
    const before = await headPose(page)
    await touchDrag(cdp, stickCentre, {x: stickCentre.x, y: stickCentre.y - stickBox.height / 2}, {holdMs: 1000})
    const {value: walked} = await waitFor(async () => {
      const a = await headPose(page)
      await sleep(200)
      const b = await headPose(page)
      return distance(a.position, b.position) < 0.001 && b
    }, {what: "the visitor to stand still after the stick is let go"})
    const moved = distance(before.position, walked.position)
    t.diagnostic(`the stick walked the visitor ${moved.toFixed(2)} m`)
    assert.ok(moved > 0.3, `pushing the stick forward for a second moved the visitor only ${moved.toFixed(3)} m`)

    // One finger across the sky turns the view: the heading (which the
    // resting hands follow, left to right across the body) changes.
    const canvas = await page.locator("#room-canvas").boundingBox()
    const turnedFrom = await headPose(page)
    const headingFrom = await heading(page)
    await touchDrag(cdp, {x: canvas.x + 80, y: canvas.y + 120}, {x: canvas.x + 300, y: canvas.y + 120}, {steps: 12})
    await sleep(300)
    const turnedTo = await headPose(page)
    const turned = Math.abs(wrapDegrees(((await heading(page)) - headingFrom) * (180 / Math.PI)))
    t.diagnostic(`a one-finger drag of 220 px turned the view ${turned.toFixed(1)} degrees`)
    assert.ok(turned > 5, `a one-finger drag across the view turned it only ${turned.toFixed(2)} degrees`)
    assert.ok(distance(turnedFrom.position, turnedTo.position) < 0.05, "looking around does not walk")

    // Panels open over the view and fit the phone's width.
    for (const name of ["chat", "people", "settings", "share", "room"]) {
      const panel = await openPanel(page, name)
      const box = await panel.boundingBox()
      assert.ok(box && box.x >= 0 && box.x + box.width <= PHONE.width + 0.5, `the ${name} panel fits the width: ${JSON.stringify(box)}`)
      const wide = await page.evaluate(() => document.documentElement.scrollWidth)
      assert.ok(wide <= PHONE.width, `with the ${name} panel open the page does not scroll sideways (scrollWidth ${wide})`)
      await page.click(`#panel-${name} .panel-close`)
      await waitPanel(page, name, false, `after the ${name} panel's close button`)
    }
    assert.deepEqual(visitor.consoleErrors, [])
  } finally {
    await visitor.close()
  }
})

browserTest("a dropped connection shows a banner, and another when the visitor is back", async (t) => {
  const roomId = await fixture.server.createRoom("Banner")
  const visitor = await openVisitor(fixture.browser, fixture.server.url, roomId, {viewport: WIDE, proxySockets: true})
  const {page} = visitor
  try {
    await waitInRoom(page)
    assert.equal(await page.isVisible(".room-banner"), false, "no banner while connected")
    await visitor.sockets.dropAndBlock()
    await page.waitForSelector('.room-banner[data-kind="lost"]', {state: "visible", timeout: 5000})
    assert.equal(await page.getAttribute(".room-banner", "role"), "status")
    assert.match(await page.textContent(".room-banner"), /Connection lost/)
    await page.screenshot({path: artifactPath("room-connection-lost.png")})
    const unblockedAt = performance.now()
    visitor.sockets.unblock()
    await page.waitForSelector('.room-banner[data-kind="back"]', {state: "visible", timeout: 15_000})
    t.diagnostic(`"back" shown ${(performance.now() - unblockedAt).toFixed(0)} ms after the network came back`)
    assert.match(await page.textContent(".room-banner"), /Back in the room/)
    await waitInRoom(page)
    // It goes away by itself after a few seconds.
    await page.waitForSelector(".room-banner", {state: "hidden", timeout: 10_000})
  } finally {
    await visitor.close()
  }
})

browserTest("screenshots of the lobby and the room at 1280 x 800 and 390 x 844", async (t) => {
  const roomId = await fixture.server.createRoom("Screenshots", "A room to look at")
  const visitors = []
  try {
    // Someone is already there and has said something.
    const host = await openVisitor(fixture.browser, fixture.server.url, roomId, {lobby: "stay", viewport: WIDE})
    visitors.push(host)
    await lobbyReady(host.page)
    await host.page.fill("#lobby-name", "Ada")
    await host.page.fill("#lobby-colour", "#d05a2c")
    await host.page.click(".lobby-enter")
    await waitInRoom(host.page)
    await openPanel(host.page, "chat")
    await host.page.fill(".room-chat input[name=text]", "Welcome! The table has things to throw.")
    await host.page.press(".room-chat input[name=text]", "Enter")

    for (const [size, viewport, context] of [["1280", WIDE, {}], ["390", PHONE, PHONE_CONTEXT]]) {
      const visitor = await openVisitor(fixture.browser, fixture.server.url, roomId, {lobby: "stay", viewport, context})
      visitors.push(visitor)
      const {page} = visitor
      await lobbyReady(page)
      await page.fill("#lobby-name", `Grace ${size}`)
      // The lobby tells who is in the room now, in the room list's words.
      await waitFor(async () => /^\d+ here: \d+ in a browser\.$/.test(await page.textContent(".lobby-people")), {
        what: "the lobby to say who is here (.lobby-people)",
      })
      await page.screenshot({path: artifactPath(`lobby-${size}.png`)})
      await page.click(".lobby-enter")
      await waitInRoom(page)
      await waitFor(() => page.evaluate(() => window.roomscale.avatars().filter((a) => !a.self && a.visible).length >= 1), {
        timeout: 10_000,
        what: "the host's avatar in view",
      })
      if (viewport === WIDE) {
        await openPanel(page, "chat")
        await openPanel(page, "people")
      }
      await waitFor(() => page.evaluate(() => window.roomscale.chat().length >= 1), {what: "the host's chat line"})
      await sleep(300)
      await page.screenshot({path: artifactPath(`room-${size}.png`)})
      const wide = await page.evaluate(() => document.documentElement.scrollWidth)
      assert.ok(wide <= viewport.width, `the room fits ${viewport.width} px (scrollWidth ${wide})`)
      t.diagnostic(`wrote lobby-${size}.png and room-${size}.png`)
    }
    for (const visitor of visitors) {
      assert.deepEqual(visitor.consoleErrors, [])
    }
  } finally {
    for (const visitor of visitors) {
      await visitor.close()
    }
  }
})
