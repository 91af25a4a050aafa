// Building the page's elements: properties set directly, text always through
// textContent (never as HTML), and the few icons the room's bar draws, as
// inline SVG so nothing is fetched.

/** document.createElement with properties; text goes in through textContent. */
export function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  properties: Partial<HTMLElementTagNameMap[K]> & {role?: string},
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag)
  const {role, ...rest} = properties
  Object.assign(node, rest)
  if (role) {
    node.setAttribute("role", role)
  }
  return node
}

/** A label around `control` with `text` above it: the control's accessible name. */
export function labelled(text: string, control: HTMLElement): HTMLLabelElement {
  const label = element("label", {})
  label.append(element("span", {textContent: text}), control)
  return label
}

/** 24 x 24 stroke icons (paths drawn for this page). */
const ICONS = {
  mic: "M12 3a3 3 0 0 1 3 3v6a3 3 0 0 1-6 0V6a3 3 0 0 1 3-3z M5 11a7 7 0 0 0 14 0 M12 18v3",
  micOff: "M12 3a3 3 0 0 1 3 3v6a3 3 0 0 1-6 0V6a3 3 0 0 1 3-3z M5 11a7 7 0 0 0 14 0 M12 18v3 M4 4l16 16",
  chat: "M4 5h16v11H9l-5 4z",
  people: "M9 11a3.5 3.5 0 1 0 0-7 3.5 3.5 0 0 0 0 7z M3 20c0-3.3 2.7-6 6-6s6 2.7 6 6 M16 4.5a3.5 3.5 0 0 1 0 6.5 M18 14.5c1.8.8 3 2.9 3 5.5",
  objects: "M12 3l8 4.5v9L12 21l-8-4.5v-9z M12 12l8-4.5 M12 12v9 M12 12L4 7.5",
  settings: "M12 15.5a3.5 3.5 0 1 0 0-7 3.5 3.5 0 0 0 0 7z M12 2v3 M12 19v3 M2 12h3 M19 12h3 M4.9 4.9l2.1 2.1 M17 17l2.1 2.1 M4.9 19.1L7 17 M17 7l2.1-2.1",
  share: "M18 8a3 3 0 1 0 0-6 3 3 0 0 0 0 6z M6 15a3 3 0 1 0 0-6 3 3 0 0 0 0 6z M18 22a3 3 0 1 0 0-6 3 3 0 0 0 0 6z M8.6 13.5l6.8 4 M15.4 6.5l-6.8 4",
  room: "M4 6h16 M4 12h16 M4 18h16",
  vr: "M3 8h18v8h-6l-3-3-3 3H3z",
  close: "M6 6l12 12 M18 6L6 18",
} as const

export type IconName = keyof typeof ICONS

export function icon(name: IconName): SVGSVGElement {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg")
  svg.setAttribute("viewBox", "0 0 24 24")
  svg.setAttribute("aria-hidden", "true")
  svg.setAttribute("class", "icon")
  const path = document.createElementNS("http://www.w3.org/2000/svg", "path")
  path.setAttribute("d", ICONS[name])
  svg.append(path)
  return svg
}
