// pages.js: the little every server-rendered page gets (kept tiny; no imports).
//
// - A form with `data-confirm="Question?"` asks before it submits (deleting a room).
// - `<time datetime="2024-05-01T12:00:00Z">` shows in the reader's own time zone
//   and language; the server's text stays as the fallback without JavaScript.

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

confirmBeforeSubmit()
if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", showLocalTimes)
} else {
  showLocalTimes()
}
