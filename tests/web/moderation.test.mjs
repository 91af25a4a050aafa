// Room moderation in the browser, end to end: the real server binary, Debian's
// headless Chromium (playwright-core) and the built client. The owner creates
// its room through the pages (so the room is its own), then mutes, locks and
// removes from the room page while a member and a late visitor, each in a
// browser context of their own (their own cookie, so their own user id), see
// what the server made of it. Further tests: a page behind the room asks for an
// act the server refuses and shows the reason; deleting a room ends its
// members' pages; a history longer than one join reply loads page by page.
//
//   node --test tests/web/moderation.test.mjs
//
// Builds what it needs (the web bundle when stale, the server with cargo).
// Without Chromium every test prints `skipped: <reason>` and passes.

import assert from "node:assert/strict"
import {test} from "node:test"

import {loadTs} from "../../server/web/test/load.mjs"
import {
  artifactPath,
  closePanels,
  enterRoom,
  missingPrerequisite,
  openPanel,
  openVisitor,
  reloadAndEnter,
  serverAndBrowserPerFile,
  skip,
  waitFor,
  waitInRoom,
} from "./harness.mjs"

const unavailable = missingPrerequisite()
const fixture = serverAndBrowserPerFile()
/** The page's own tag function; names.test.mjs checks it against the protocol's vectors. */
const {userTag} = await loadTs("src/room/names.ts")

/**
 * A visitor who creates a room with the "New room" form and enters it from
 * the lobby: the server records this browser's visitor as the owner. Shaped
 * like `openVisitor`'s result.
 */
async function openOwnerOfNewRoom(browser, baseUrl, roomName) {
  const context = await browser.newContext({viewport: {width: 1100, height: 760}})
  const page = await context.newPage()
  const consoleErrors = []
  page.on("console", (message) => message.type() === "error" && consoleErrors.push(message.text()))
  page.on("pageerror", (error) => consoleErrors.push(`uncaught: ${error.message}`))
  await page.goto(`${baseUrl}/rooms/new`)
  await page.fill("form input[name=name]", roomName)
  await Promise.all([page.waitForURL(/\/rooms\/[0-9a-f-]{36}$/), page.click("form button[type=submit]")])
  const roomId = new URL(page.url()).pathname.split("/").pop()
  await enterRoom(page)
  return {context, page, consoleErrors, roomId, close: () => context.close()}
}

/**
 * A visitor whose page can be made to miss some server events: `holdBack(...)`
 * drops, from then on, every frame with one of those event names before the
 * page sees it, as a page that is behind the room would be.
 */
async function openLaggingVisitor(browser, baseUrl, roomId) {
  const context = await browser.newContext({viewport: {width: 1100, height: 760}})
  const page = await context.newPage()
  const consoleErrors = []
  page.on("pageerror", (error) => consoleErrors.push(`uncaught: ${error.message}`))
  const heldBack = new Set()
  await page.routeWebSocket(/\/socket\/websocket/, (socket) => {
    const server = socket.connectToServer()
    socket.onMessage((message) => server.send(message))
    server.onMessage((message) => {
      // Phoenix v2 text frames: [join_ref, ref, topic, event, payload].
      if (typeof message === "string" && heldBack.has(JSON.parse(message)[3])) {
        return
      }
      socket.send(message)
    })
    socket.onClose(() => server.close())
    server.onClose(() => socket.close())
  })
  await page.goto(`${baseUrl}/rooms/${roomId}`)
  await enterRoom(page)
  return {
    context,
    page,
    consoleErrors,
    holdBack: (...events) => events.forEach((event) => heldBack.add(event)),
    close: () => context.close(),
  }
}

/** Sets a visitor's display name through the page's own form and waits until the server took it. */
async function rename(visitor, name) {
  await openPanel(visitor.page, "settings")
  await visitor.page.fill(".room-profile input[name=name]", name)
  await visitor.page.click(".room-profile button[type=submit]")
  await visitor.page.waitForFunction(() => document.querySelector(".room-profile + .room-note")?.textContent === "Saved.")
  await visitor.page.click("#panel-settings .panel-close")
}

/** Clicks a moderation button on someone in the people panel (opened first), as the visitor would. */
async function act(visitor, userId, action) {
  await openPanel(visitor.page, "people")
  await visitor.page.click(`.room-people li[data-user-id="${userId}"] button[data-action=${action}]`)
}

/**
 * What the page says when it is out of the room for good: `.room-ended`
 * shows, starts with the reason and links to the room list.
 */
async function assertEnded(visitor, reason) {
  const ended = visitor.page.locator(".room-ended")
  assert.equal(await ended.isVisible(), true, "the page says it is out of the room")
  const text = (await ended.textContent()).trim()
  assert.ok(text.startsWith(`You are not in the room: ${reason}`), `.room-ended says "${text}"`)
  assert.equal(await ended.locator('a[href="/rooms"]').count(), 1, "the ended notice links to the room list")
}

/** Waits until `visitor`'s log shows a moderation line equal to `line`. */
async function waitForNotice(visitor, line) {
  await visitor.page.waitForFunction(
    (line) => [...document.querySelectorAll(".room-chat-log .notice")].some((item) => item.firstChild?.textContent === line),
    line,
    {timeout: 5000},
  ).catch((error) => {
    throw new Error(`the log never showed "${line}": ${error.message}`)
  })
}

/** The people list as the page draws it: user id -> {name, tag, voice, buttons}. */
async function drawnPeople(visitor) {
  return visitor.page.evaluate(() =>
    Object.fromEntries(
      [...document.querySelectorAll(".room-people li")].map((item) => [
        item.dataset.userId,
        {
          name: item.querySelector(".name").textContent,
          tag: item.querySelector(".tag").textContent,
          voice: item.querySelector(".voice").textContent,
          buttons: [...item.querySelectorAll("button[data-action]")].map((button) => button.dataset.action),
        },
      ]),
    ),
  )
}

test("the owner mutes, locks and removes; everyone sees each act, and tags tell same-named people apart", async (t) => {
  if (unavailable) {
    return skip(t, unavailable)
  }
  const {server, browser} = fixture
  const owner = await openOwnerOfNewRoom(browser, server.url, "Moderated")
  const member = await openVisitor(browser, server.url, owner.roomId)
  let late = null
  try {
    await Promise.all([waitInRoom(owner.page), waitInRoom(member.page)])
    const [ownerId, memberId] = await Promise.all([owner, member].map((v) => v.page.evaluate(() => window.roomscale.userId)))
    const [ownerTag, memberTag] = [userTag(ownerId), userTag(memberId)]
    assert.notEqual(ownerTag, memberTag)
    assert.equal(await owner.page.evaluate(() => window.roomscale.role), "owner", "the room's creator owns it")
    assert.equal(await member.page.evaluate(() => window.roomscale.role), "member")

    // Two people called Sam: each page shows both, told apart by their tags.
    await rename(owner, "Sam")
    await rename(member, "Sam")
    const {value: seenByOwner} = await waitFor(
      async () => {
        const people = await drawnPeople(owner)
        return people[memberId]?.name === "Sam" && people[ownerId]?.name === "Sam" && people
      },
      {what: "the owner's list to show both people named Sam"},
    )
    assert.equal(seenByOwner[ownerId].tag, ownerTag)
    assert.equal(seenByOwner[memberId].tag, memberTag)
    const samOwner = `Sam (${ownerTag})`
    const samMember = `Sam (${memberTag})`

    // A chat line carries its sender's tag; so does the name tag over the avatar.
    await openPanel(member.page, "chat")
    await member.page.fill(".room-chat input[name=text]", "hello from the other Sam")
    await member.page.press(".room-chat input[name=text]", "Enter")
    await owner.page.waitForFunction(
      (tag) => [...document.querySelectorAll(".room-chat-log li[data-id]")].some((item) => item.querySelector(".tag")?.textContent === tag),
      memberTag,
    )
    const {value: avatar} = await waitFor(
      async () => (await owner.page.evaluate(() => window.roomscale.avatars())).find((a) => a.userId === memberId && a.name === "Sam"),
      {timeout: 10_000, what: "the owner's scene to show the member's avatar named Sam"},
    )
    assert.equal(avatar.tag, memberTag)

    // Only the owner is offered moderation.
    assert.deepEqual(seenByOwner[memberId].buttons, ["mute", "remove", "make-moderator"])
    assert.deepEqual(seenByOwner[ownerId].buttons, [], "no controls on oneself")
    await openPanel(owner.page, "room")
    assert.equal(await owner.page.isVisible(".room-moderation .room-lock"), true)
    const seenByMember = await drawnPeople(member)
    assert.deepEqual(Object.values(seenByMember).flatMap((person) => person.buttons), [], "a member is offered controls")
    await openPanel(member.page, "room")
    assert.equal(await member.page.isVisible(".room-moderation"), false, "a member sees the moderation section")

    // A co-moderator gets the lock and controls on plain members; unnamed, nothing again.
    await act(owner, memberId, "make-moderator")
    await member.page.waitForFunction(() => window.roomscale.role === "moderator")
    await waitForNotice(member, `${samOwner} made ${samMember} a moderator`)
    await openPanel(member.page, "room")
    assert.equal(await member.page.isVisible(".room-moderation .room-lock"), true, "a co-moderator is offered the lock")
    assert.deepEqual((await drawnPeople(member))[ownerId].buttons, [], "a co-moderator is offered controls on the owner")
    await waitFor(async () => (await drawnPeople(owner))[memberId].buttons.includes("unmake-moderator"), {
      what: "the owner to be offered Remove moderator",
    })
    await act(owner, memberId, "unmake-moderator")
    await member.page.waitForFunction(() => window.roomscale.role === "member")
    await waitForNotice(owner, `${samOwner} removed ${samMember} as a moderator`)
    await openPanel(member.page, "room")
    assert.equal(await member.page.isVisible(".room-moderation"), false, "an unnamed moderator keeps the moderation section")

    // Mute: the member's mute button is locked, and both logs say who muted whom.
    await act(owner, memberId, "mute")
    await member.page.waitForFunction(() => window.roomscale.moderatorMuted)
    const muteButton = member.page.locator(".voice-mute")
    assert.equal(await muteButton.isVisible(), true)
    assert.equal(await muteButton.isDisabled(), true)
    assert.equal(await muteButton.textContent(), "Muted by a moderator")
    for (const visitor of [owner, member]) {
      await waitForNotice(visitor, `${samOwner} muted ${samMember}`)
    }
    await waitFor(async () => (await drawnPeople(owner))[memberId].buttons.includes("unmute"), {
      what: "the owner to be offered Unmute",
    })
    assert.equal((await drawnPeople(owner))[memberId].voice, "muted by a moderator")
    await member.page.screenshot({path: artifactPath("moderation-muted.png")})
    // The people panel alone on the right, as an owner moderating would have it.
    await closePanels(owner.page)
    const ownersPeople = await openPanel(owner.page, "people")
    await ownersPeople.screenshot({path: artifactPath("moderation-owner-controls.png")})

    // Lock: both see it, and a new visitor is refused with the server's reason.
    await openPanel(owner.page, "room")
    await owner.page.click(".room-lock")
    for (const visitor of [owner, member]) {
      await waitForNotice(visitor, `${samOwner} locked the room`)
    }
    assert.equal(await owner.page.textContent(".room-lock"), "Unlock room")
    late = await openVisitor(browser, server.url, owner.roomId)
    await late.page.waitForFunction(() => window.roomscale?.state === "failed", null, {timeout: 15_000})
    const lateReason = await late.page.evaluate(() => window.roomscale.statusReason)
    assert.match(lateReason, /locked/)
    await assertEnded(late, lateReason)
    assert.equal((await drawnPeople(owner))[memberId] !== undefined, true, "the member already in stays")

    // Remove: the member's page ends with the reason and does not come back.
    await act(owner, memberId, "remove")
    await member.page.waitForFunction(() => window.roomscale.state === "failed", null, {timeout: 5000})
    const removedReason = await member.page.evaluate(() => window.roomscale.statusReason)
    assert.match(removedReason, /removed you/)
    await assertEnded(member, removedReason)
    await waitForNotice(owner, `${samOwner} removed ${samMember} from the room`)
    await waitFor(async () => (await drawnPeople(owner))[memberId] === undefined, {what: "the member to leave the owner's list"})
    const joinsAfterRemoval = member.frames.sent.filter((frame) => frame[3] === "phx_join").length
    // Nothing announces a rejoin that does not happen: watch past phoenix.js's
    // first rejoin (1 s) and socket reconnect (10 ms to 5 s backoff start) for one.
    await new Promise((resolve) => setTimeout(resolve, 2500))
    assert.equal(member.frames.sent.filter((frame) => frame[3] === "phx_join").length, joinsAfterRemoval, "the removed page tried to rejoin")
    assert.equal(await member.page.evaluate(() => window.roomscale.state), "failed")

    // Coming back at once (a reload, then Enter room) is refused with the same kind of reason.
    await reloadAndEnter(member.page)
    await member.page.waitForFunction(() => window.roomscale?.state === "failed", null, {timeout: 15_000})
    assert.match(await member.page.evaluate(() => window.roomscale.statusReason), /removed you/)

    await owner.page.screenshot({path: artifactPath("moderation-owner.png")})
    await member.page.screenshot({path: artifactPath("moderation-removed.png")})
    await late.page.screenshot({path: artifactPath("moderation-locked-out.png")})
    assert.deepEqual(owner.consoleErrors, [])
    assert.deepEqual(member.foreignRequests(), [])
  } finally {
    await owner.close()
    await member.close()
    await late?.close()
  }
})

test("an act the server refuses shows its reason, and changes nothing", async (t) => {
  if (unavailable) {
    return skip(t, unavailable)
  }
  const {server, browser} = fixture
  const owner = await openOwnerOfNewRoom(browser, server.url, "Stale moderator")
  const moderator = await openLaggingVisitor(browser, server.url, owner.roomId)
  const member = await openVisitor(browser, server.url, owner.roomId)
  try {
    await Promise.all([owner, moderator, member].map((visitor) => waitInRoom(visitor.page)))
    const [moderatorId, memberId] = await Promise.all([moderator, member].map((v) => v.page.evaluate(() => window.roomscale.userId)))
    await waitFor(async () => (await drawnPeople(owner))[moderatorId], {what: "the owner to list the moderator-to-be"})
    await act(owner, moderatorId, "make-moderator")
    await moderator.page.waitForFunction(() => window.roomscale.role === "moderator")
    await waitFor(async () => (await drawnPeople(moderator))[memberId]?.buttons.includes("mute"), {
      what: "the new moderator to be offered Mute voice on the member",
    })

    // The moderator's page stops hearing about moderation, then the owner unnames it.
    moderator.holdBack("moderation", "presence_diff")
    await act(owner, moderatorId, "unmake-moderator")
    await owner.page.waitForFunction(() => document.querySelectorAll(".room-chat-log .notice").length === 2)
    assert.equal(await moderator.page.evaluate(() => window.roomscale.role), "moderator", "the page is behind, as intended")

    await act(moderator, memberId, "mute")
    await moderator.page.waitForFunction(() => document.querySelector(".moderation-note.error")?.textContent)
    const note = await moderator.page.textContent(".moderation-note")
    t.diagnostic(`the stale moderator's page says: ${note}`)
    assert.match(note, /^Mute voice failed: .*only the room's owner/)
    assert.equal(await member.page.evaluate(() => window.roomscale.moderatorMuted), false, "the refused mute reached the member")
    assert.equal((await drawnPeople(owner))[memberId].voice, "")
    assert.deepEqual(moderator.consoleErrors, [])
  } finally {
    await owner.close()
    await moderator.close()
    await member.close()
  }
})

test("deleting a room ends its live session: members see the reason and do not rejoin", async (t) => {
  if (unavailable) {
    return skip(t, unavailable)
  }
  const {server, browser} = fixture
  const owner = await openOwnerOfNewRoom(browser, server.url, "Short-lived")
  const member = await openVisitor(browser, server.url, owner.roomId)
  try {
    await Promise.all([waitInRoom(owner.page), waitInRoom(member.page)])
    const roomPanel = await openPanel(owner.page, "room")
    owner.page.once("dialog", (dialog) => void dialog.accept())
    const roomPath = `/rooms/${owner.roomId}`
    await Promise.all([
      owner.page.waitForURL((url) => url.pathname !== roomPath),
      roomPanel.getByRole("button", {name: "Delete room"}).click(),
    ])
    await member.page.waitForFunction(() => window.roomscale.state === "failed", null, {timeout: 5000})
    const reason = await member.page.evaluate(() => window.roomscale.statusReason)
    assert.match(reason, /deleted/)
    await assertEnded(member, reason)
    const joins = member.frames.sent.filter((frame) => frame[3] === "phx_join").length
    // As after a removal: watch past phoenix.js's first rejoin for one that must not come.
    await new Promise((resolve) => setTimeout(resolve, 2500))
    assert.equal(member.frames.sent.filter((frame) => frame[3] === "phx_join").length, joins, "the page tried to rejoin a deleted room")
    assert.deepEqual(member.consoleErrors, [])
  } finally {
    await owner.close()
    await member.close()
  }
})

test("a history longer than one join reply loads page by page, each message once", async (t) => {
  if (unavailable) {
    return skip(t, unavailable)
  }
  const {server, browser} = fixture
  const roomId = await server.createRoom("Long history")
  const writer = await openVisitor(browser, server.url, roomId)
  let reader = null
  try {
    await waitInRoom(writer.page)
    await openPanel(writer.page, "chat")
    // 18 messages of 2,000 three-byte characters: about 108 KB, more than two join replies' worth (48 KiB each).
    // (Fewer than the 20 a person may send at once, so no pacing is needed.)
    const count = 18
    for (let i = 0; i < count; i++) {
      const text = `${String(i).padStart(2, "0")} ${"\u20AC".repeat(1997)}`
      await writer.page.fill(".room-chat input[name=text]", text)
      await writer.page.press(".room-chat input[name=text]", "Enter")
      await writer.page
        .waitForFunction((text) => window.roomscale.chat().some((line) => line.text === text), text, {timeout: 10_000})
        .catch(async (error) => {
          const note = await writer.page.textContent(".room-chat .room-note")
          throw new Error(`message ${i} was not stored (the page says "${note}"): ${error.message}`)
        })
    }

    reader = await openVisitor(browser, server.url, roomId)
    await waitInRoom(reader.page)
    const firstShown = (await reader.page.evaluate(() => window.roomscale.chat())).length
    assert.ok(firstShown < count, `the join reply held all ${count} messages; the history is not long enough to page`)
    assert.equal(await reader.page.evaluate(() => window.roomscale.olderMessages), true)
    await openPanel(reader.page, "chat")
    let clicks = 0
    while (await reader.page.isVisible(".room-older")) {
      const before = (await reader.page.evaluate(() => window.roomscale.chat())).length
      await reader.page.click(".room-older")
      await reader.page.waitForFunction(
        (before) => window.roomscale.chat().length > before || !window.roomscale.olderMessages,
        before,
      )
      assert.ok(++clicks <= count, "older pages never ran out")
    }
    t.diagnostic(`the join showed ${firstShown} of ${count} messages; ${clicks} older pages brought the rest`)
    assert.ok(clicks >= 2, `${clicks} older page(s): the history should take more than one`)
    const lines = await reader.page.evaluate(() => window.roomscale.chat())
    assert.deepEqual(
      lines.map((line) => line.text.slice(0, 2)),
      Array.from({length: count}, (_, i) => String(i).padStart(2, "0")),
      "every message, once, in order",
    )
    const drawn = await reader.page.evaluate(() => [...document.querySelectorAll(".room-chat-log li[data-id]")].map((item) => Number(item.dataset.id)))
    assert.deepEqual(drawn, lines.map((line) => line.id), "the log draws each message once, oldest first")
    assert.deepEqual(reader.consoleErrors, [])
  } finally {
    await writer.close()
    await reader?.close()
  }
})
