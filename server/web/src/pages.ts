// pages.js: the little every server-rendered page gets (kept tiny: its one
// import is the headcount's words, shared with the room's lobby).
//
// - A form with `data-confirm="Question?"` asks before it submits (deleting a room).
// - `<time datetime="2024-05-01T12:00:00Z">` shows in the reader's own time zone
//   and language; the server's text stays as the fallback without JavaScript.
// - A room list `<ul class="rooms" data-live="/api/rooms?...">` polls that same-origin
//   JSON every few seconds and updates each room's people count and the order
//   (most people, then most recent activity, then newest), without a reload.

import {peopleText, type Headcount} from "./headcount"

function confirmBeforeSubmit(): void {
  document.addEventListener("submit", (event) => {
    const form = event.target
    if (!(form instanceof HTMLFormElement) || form.dataset.confirm === undefined) {
      return
    }
    if (!window.confirm(form.dataset.confirm)) {
      event.preventDefault()
    }
  })
}

function showLocalTimes(): void {
  const format = new Intl.DateTimeFormat(undefined, {dateStyle: "medium", timeStyle: "short"})
  for (const time of document.querySelectorAll<HTMLTimeElement>("time[datetime]")) {
    const date = new Date(time.dateTime)
    if (!Number.isNaN(date.getTime())) {
      time.title = time.dateTime
      time.textContent = format.format(date)
    }
  }
}

/** How often the room list asks who is where. */
const LIVE_LIST_MS = 3000

interface ListedRoom {
  id: string
  people?: Headcount
  active_at?: string | null
}

function activityKey(item: HTMLElement): [number, number, number] {
  return [
    Number(item.dataset.total ?? 0),
    Number(item.dataset.activeAt ?? 0),
    Number(item.dataset.insertedAt ?? 0),
  ]
}

function updateRoomList(list: HTMLElement, rooms: ListedRoom[]): void {
  const byId = new Map(rooms.map((room) => [room.id, room]))
  const items = [...list.querySelectorAll<HTMLLIElement>("li.room[data-room-id]")]
  for (const item of items) {
    const room = byId.get(item.dataset.roomId ?? "")
    if (room?.people === undefined) {
      continue
    }
    const activeAt = room.active_at ? Date.parse(room.active_at) : 0
    item.dataset.total = String(room.people.total)
    item.dataset.activeAt = String(Number.isNaN(activeAt) ? 0 : activeAt)
    const count = item.querySelector(".count")
    const text = item.querySelector(".people-text")
    if (count !== null && count.textContent !== String(room.people.total)) {
      count.textContent = String(room.people.total)
    }
    const words = peopleText(room.people)
    if (text !== null && text.textContent !== words) {
      text.textContent = words
    }
  }
  const sorted = [...items].sort((a, b) => {
    const [ka, kb] = [activityKey(a), activityKey(b)]
    for (let i = 0; i < ka.length; i++) {
      if (ka[i] !== kb[i]) {
        return kb[i] - ka[i]
      }
    }
    return 0
  })
  // Moved only when the order changed, so keyboard focus and reading stay put otherwise.
  if (sorted.some((item, i) => item !== items[i])) {
    list.append(...sorted)
  }
}

function keepRoomListLive(): void {
  const list = document.querySelector<HTMLElement>("ul.rooms[data-live]")
  const url = list?.dataset.live
  if (list === null || url === undefined || !url.startsWith("/")) {
    return
  }
  const poll = async (): Promise<void> => {
    try {
      const response = await fetch(url, {credentials: "same-origin", headers: {accept: "application/json"}})
      if (response.ok) {
        updateRoomList(list, (await response.json()) as ListedRoom[])
      }
    } catch {
      // Offline for a moment: the next poll tries again.
    }
    window.setTimeout(() => void poll(), LIVE_LIST_MS)
  }
  window.setTimeout(() => void poll(), LIVE_LIST_MS)
}

confirmBeforeSubmit()
if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", () => {
    showLocalTimes()
    keepRoomListLive()
  })
} else {
  showLocalTimes()
  keepRoomListLive()
}
