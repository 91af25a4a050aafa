// Who is in a room now, in the server's words (pages.rs `people_text`): the
// room list keeps its counts live with it, the lobby says who is there.

/** A room's live headcount by kind of client, as `GET /api/rooms` gives it. */
export interface Headcount {
  browser: number
  desktop: number
  headset: number
  total: number
}

/** The server's words for a count (pages.rs `people_text`). */
export function peopleText(people: Headcount): string {
  if (people.total === 0) {
    return "nobody here yet"
  }
  const kinds: [number, string][] = [
    [people.browser, "in a browser"],
    [people.desktop, "in the desktop app"],
    [people.headset, "in a headset"],
  ]
  const parts = kinds.filter(([count]) => count > 0).map(([count, place]) => `${count} ${place}`)
  return `${people.total} here: ${parts.join(", ")}`
}
