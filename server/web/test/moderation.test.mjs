// moderation.ts: which controls each person is offered, the line everyone
// reads for each moderation act, and which older history is still missing
// (so that loading it shows every message once).
//
//   node --test server/web/test/

import assert from "node:assert/strict"
import {test} from "node:test"

import {loadTs} from "./load.mjs"

const moderation = await loadTs("src/room/moderation.ts")
const {userTag} = await loadTs("src/room/names.ts")

const OWNER = "owner-id-000000000000a"
const MODERATOR = "moderator-id-000000000b"
const MEMBER = "member-id-00000000000c"
const governance = {owner_user_id: OWNER, moderators: [MODERATOR], locked: false}

const actions = (viewer, target, moderatorMuted = false) =>
  moderation.controlsFor(governance, viewer, {userId: target, moderatorMuted}).map((control) => control.action)

test("roles come from the governance", () => {
  assert.equal(moderation.roleOf(governance, OWNER), "owner")
  assert.equal(moderation.roleOf(governance, MODERATOR), "moderator")
  assert.equal(moderation.roleOf(governance, MEMBER), "member")
  assert.equal(moderation.roleOf(null, OWNER), "member", "before the join reply nobody moderates")
  assert.equal(moderation.mayModerate({...governance, owner_user_id: null}, OWNER), false)
})

test("the owner may mute, remove and name moderators; co-moderators may mute and remove", () => {
  assert.deepEqual(actions(OWNER, MEMBER), ["mute", "remove", "make-moderator"])
  assert.deepEqual(actions(OWNER, MODERATOR), ["mute", "remove", "unmake-moderator"])
  assert.deepEqual(actions(MODERATOR, MEMBER), ["mute", "remove"])
  assert.deepEqual(actions(OWNER, MEMBER, true), ["unmute", "remove", "make-moderator"])
  const [mute, remove, name] = moderation.controlsFor(governance, OWNER, {userId: MEMBER, moderatorMuted: false})
  assert.deepEqual(mute.push, {action: "mute", user_id: MEMBER, muted: true})
  assert.deepEqual(remove.push, {action: "remove", user_id: MEMBER})
  assert.deepEqual(name.push, {action: "moderator", user_id: MEMBER, moderator: true})
  const [unmute] = moderation.controlsFor(governance, OWNER, {userId: MEMBER, moderatorMuted: true})
  assert.deepEqual(unmute.push, {action: "mute", user_id: MEMBER, muted: false})
})

test("members see no controls, nobody gets controls on themselves or the owner, moderators none on moderators", () => {
  assert.deepEqual(actions(MEMBER, OWNER), [])
  assert.deepEqual(actions(MEMBER, MODERATOR), [])
  assert.deepEqual(actions(MEMBER, "someone-else"), [])
  assert.deepEqual(actions(OWNER, OWNER), [])
  assert.deepEqual(actions(MODERATOR, MODERATOR), [])
  assert.deepEqual(actions(MODERATOR, OWNER), [])
  assert.deepEqual(actions(MODERATOR, "another-moderator"), ["mute", "remove"], "a plain member to a moderator")
  assert.deepEqual(
    moderation.controlsFor({...governance, moderators: [MODERATOR, "another-moderator"]}, MODERATOR, {userId: "another-moderator", moderatorMuted: false}),
    [],
    "only the owner acts on co-moderators",
  )
  assert.deepEqual(moderation.controlsFor(null, OWNER, {userId: MEMBER, moderatorMuted: false}), [])
})

test("the lock toggle is offered to moderators only and says what it will do", () => {
  assert.equal(moderation.lockControl(governance, MEMBER), null)
  assert.equal(moderation.lockControl(null, OWNER), null)
  assert.deepEqual(moderation.lockControl(governance, OWNER), {action: "lock", label: "Lock room", push: {action: "lock", locked: true}})
  const unlock = moderation.lockControl({...governance, locked: true}, MODERATOR)
  assert.deepEqual(unlock, {action: "unlock", label: "Unlock room", push: {action: "lock", locked: false}})
})

test("every moderation act reads as one line with each person's tag", () => {
  const notice = (act, target_name = "Bo") => ({act, by_user_id: OWNER, by_name: "Ada", target_name, governance})
  const ada = `Ada (${userTag(OWNER)})`
  const bo = `Bo (${userTag(MEMBER)})`
  const nobody = () => null
  const lines = [
    [{action: "mute", user_id: MEMBER, muted: true}, `${ada} muted ${bo}`],
    [{action: "mute", user_id: MEMBER, muted: false}, `${ada} unmuted ${bo}`],
    [{action: "remove", user_id: MEMBER}, `${ada} removed ${bo} from the room`],
    [{action: "moderator", user_id: MEMBER, moderator: true}, `${ada} made ${bo} a moderator`],
    [{action: "moderator", user_id: MEMBER, moderator: false}, `${ada} removed ${bo} as a moderator`],
  ]
  for (const [act, line] of lines) {
    assert.equal(moderation.describeNotice(notice(act), nobody), line)
  }
  assert.equal(moderation.describeNotice(notice({action: "lock", locked: true}, null), nobody), `${ada} locked the room`)
  assert.equal(moderation.describeNotice(notice({action: "lock", locked: false}, null), nobody), `${ada} unlocked the room`)
  // A target the notice does not name: the page's own knowledge, else a plain word; the tag always.
  const removed = {action: "remove", user_id: MEMBER}
  assert.equal(moderation.describeNotice(notice(removed, null), (id) => (id === MEMBER ? "Bo" : null)), `${ada} removed ${bo} from the room`)
  assert.equal(moderation.describeNotice(notice(removed, null), nobody), `${ada} removed someone who has left (${userTag(MEMBER)}) from the room`)
})

/** A room's persisted history and the server's `history` answer: older than before_id, newest `pageSize` of them, oldest first. */
function historyOf(ids, pageSize) {
  const events = ids.map((id) => ({id, user_id: MEMBER, name: "Bo", sent_at: id, body: {type: "chat", text: `message ${id}`}}))
  return {
    replay: (after, count) => {
      const newer = events.filter((event) => event.id > after)
      return {events: newer.slice(-count), truncated: newer.length > count}
    },
    page: (beforeId) => {
      const older = events.filter((event) => event.id < beforeId)
      return {events: older.slice(-pageSize), more: older.length > pageSize}
    },
  }
}

/** Loads older pages as the "Load older messages" button would until none is offered; returns the ids shown, in order received. */
function loadAll(gaps, room, shown) {
  let pages = 0
  while (gaps.hasOlder) {
    const before = gaps.nextBeforeId()
    const page = room.page(before)
    gaps.received(before, page)
    shown.push(...page.events.map((event) => event.id))
    assert.ok(++pages < 100, "paging never ends")
  }
  return pages
}

test("a first join cut short pages back to the room's first message", () => {
  const ids = Array.from({length: 23}, (_, i) => i + 1)
  const room = historyOf(ids, 5)
  const gaps = new moderation.HistoryGaps()
  const joined = room.replay(0, 7)
  gaps.joined(joined.events, joined.truncated, 0)
  assert.equal(gaps.hasOlder, true)
  assert.equal(gaps.nextBeforeId(), 17, "the first page asks before the replay's first event")
  const shown = joined.events.map((event) => event.id)
  assert.equal(loadAll(gaps, room, shown), 4)
  assert.deepEqual([...shown].sort((a, b) => a - b), ids, "every message shows, once")
  assert.equal(gaps.nextBeforeId(), null)
})

test("a join that was not cut short offers no older messages", () => {
  const room = historyOf([1, 2, 3], 5)
  const gaps = new moderation.HistoryGaps()
  const joined = room.replay(0, 7)
  gaps.joined(joined.events, joined.truncated, 0)
  assert.equal(gaps.hasOlder, false)
})

test("a rejoin cut short fills the gap since what the page had, then the older history, missing nothing", () => {
  const room = historyOf(Array.from({length: 40}, (_, i) => i + 1), 4)
  const gaps = new moderation.HistoryGaps()
  // First join: 21..30 shown, 1..20 still missing.
  const first = historyOf(Array.from({length: 30}, (_, i) => i + 1), 4).replay(0, 10)
  gaps.joined(first.events, first.truncated, 0)
  const shown = first.events.map((event) => event.id)
  // Away; 31..40 were said. The rejoin after 30 replays only 37..40.
  const rejoin = room.replay(30, 4)
  gaps.joined(rejoin.events, rejoin.truncated, 30)
  shown.push(...rejoin.events.map((event) => event.id))
  assert.equal(gaps.nextBeforeId(), 37, "the newest gap comes first")
  loadAll(gaps, room, shown)
  // Pages stop at what the page had: the gap's last page may overlap it, never more than one page.
  const unique = new Set(shown)
  assert.deepEqual([...unique].sort((a, b) => a - b), Array.from({length: 40}, (_, i) => i + 1))
  assert.ok(shown.length - unique.size < 4, `pages repeated ${shown.length - unique.size} messages`)
})

test("an answer for a gap already filled changes nothing", () => {
  const gaps = new moderation.HistoryGaps()
  gaps.joined([{id: 10}], true, 0)
  gaps.received(99, {events: [{id: 5}], more: true})
  assert.equal(gaps.nextBeforeId(), 10)
  gaps.received(10, {events: [], more: false})
  assert.equal(gaps.hasOlder, false)
})
