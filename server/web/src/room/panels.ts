// The room's overlay panels and the bar buttons that open them. Each panel
// is a labelled region with a close button; its bar button says whether it
// is open (aria-expanded). Escape closes the panel that has the focus, or the
// last one opened. On a narrow window one panel at a time is open (it takes
// the width); on a wide one chat sits on the left and the rest stack on the
// right. Which panels are open is remembered for the next visit.

import {element, icon, type IconName} from "./dom"

export type PanelName = "chat" | "people" | "objects" | "settings" | "share" | "room"

/** Windows at least this wide show panels beside each other (and open chat and people at first). */
const WIDE = "(min-width: 900px)"
const STORAGE_KEY = "roomscale.panels"

interface Panel {
  name: PanelName
  section: HTMLElement
  button: HTMLButtonElement
}

export class Panels {
  private readonly panels = new Map<PanelName, Panel>()
  private readonly opened: PanelName[] = []
  private readonly wide = window.matchMedia(WIDE)

  constructor(
    private readonly left: HTMLElement,
    private readonly right: HTMLElement,
  ) {
    document.addEventListener("keydown", (event) => {
      if (event.key !== "Escape") {
        return
      }
      const focused = [...this.panels.values()].find((panel) => panel.section.contains(document.activeElement))
      const name = focused?.name ?? this.opened[this.opened.length - 1]
      if (name) {
        this.close(name)
        this.panels.get(name)?.button.focus()
      }
    })
  }

  /** Makes a panel and its bar button; returns the panel's body to fill. */
  add(name: PanelName, title: string, iconName: IconName): {body: HTMLElement; button: HTMLButtonElement} {
    const section = element("section", {className: "panel", id: `panel-${name}`, hidden: true})
    section.setAttribute("aria-labelledby", `panel-${name}-title`)
    section.setAttribute("role", "region")
    const header = element("header", {className: "panel-header"})
    const close = element("button", {type: "button", className: "panel-close"})
    close.setAttribute("aria-label", `Close ${title.toLowerCase()}`)
    close.append(icon("close"))
    close.addEventListener("click", () => {
      this.close(name)
      button.focus()
    })
    header.append(element("h2", {id: `panel-${name}-title`, textContent: title}), close)
    const body = element("div", {className: "panel-body"})
    section.append(header, body)
    ;(name === "chat" ? this.left : this.right).append(section)

    const button = element("button", {type: "button", className: "bar-button"})
    button.dataset.panel = name
    button.setAttribute("aria-controls", section.id)
    button.setAttribute("aria-expanded", "false")
    // On a narrow window the label is not shown: the button still has its name.
    button.setAttribute("aria-label", title)
    button.append(icon(iconName), element("span", {className: "bar-label", textContent: title}))
    button.addEventListener("click", () => this.toggle(name))
    this.panels.set(name, {name, section, button})
    return {body, button}
  }

  /**
   * Opens what was open last time, or chat and people at first; only on a
   * wide window (on a phone a panel covers the room: the visitor opens it).
   */
  restore(): void {
    if (!this.wide.matches) {
      return
    }
    let names: PanelName[] = ["chat", "people"]
    try {
      const stored = window.localStorage.getItem(STORAGE_KEY)
      if (stored !== null) {
        names = JSON.parse(stored) as PanelName[]
      }
    } catch {
      // Storage off or a bad value: the defaults stand.
    }
    for (const name of names) {
      if (this.panels.has(name)) {
        this.open(name, {remember: false})
      }
    }
  }

  isOpen(name: PanelName): boolean {
    return this.panels.get(name)?.section.hidden === false
  }

  toggle(name: PanelName): void {
    if (this.isOpen(name)) {
      this.close(name)
    } else {
      this.open(name)
    }
  }

  open(name: PanelName, {remember = true} = {}): void {
    const panel = this.panels.get(name)
    if (!panel) {
      return
    }
    if (!this.wide.matches) {
      for (const other of [...this.opened]) {
        if (other !== name) {
          this.close(other, {remember: false})
        }
      }
    }
    panel.section.hidden = false
    panel.button.setAttribute("aria-expanded", "true")
    this.forget(name)
    this.opened.push(name)
    if (remember) {
      this.remember()
    }
  }

  close(name: PanelName, {remember = true} = {}): void {
    const panel = this.panels.get(name)
    if (!panel) {
      return
    }
    panel.section.hidden = true
    panel.button.setAttribute("aria-expanded", "false")
    this.forget(name)
    if (remember) {
      this.remember()
    }
  }

  private forget(name: PanelName): void {
    const at = this.opened.indexOf(name)
    if (at >= 0) {
      this.opened.splice(at, 1)
    }
  }

  private remember(): void {
    try {
      window.localStorage.setItem(STORAGE_KEY, JSON.stringify(this.opened))
    } catch {
      // Not remembered.
    }
  }
}
