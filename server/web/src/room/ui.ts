// The room page's HTML around the 3D view: connection indicator, people list
// (each name with its tag, and moderation controls for those who may use
// them), name and colour, voice, objects (add a cube, ball or marker, remove
// one; a short message over the view when a grab is refused), chat with
// moderation notices and older history. Everything a person typed is put in with textContent (or an input's
// value), never as HTML.

import {MAX_CHAT_CHARS, MAX_NAME_CHARS, type ClientKind, type ObjectKind, type Role} from "@roomscale/protocol"

import type {ConnectionStatus} from "./connection"
import type {ModerationControl} from "./moderation"
import type {Profile} from "./profile"

export interface Person {
  userId: string
  name: string
  /** The four-character tag beside the name (`userTag`). */
  tag: string
  colour: string
  kind: ClientKind
  isSelf: boolean
  role: Role
  /** Connections of this user in the room (tabs, devices). */
  connections: number
  speaking: boolean
  muted: boolean
  /** Muted by a moderator: only a moderator can unmute them. */
  moderatorMuted: boolean
  /** What the viewer may do to this person (empty unless the viewer moderates). */
  controls: ModerationControl[]
}

/** What the voice controls show. */
export interface VoiceView {
  state: "off" | "starting" | "on" | "failed"
  muted: boolean
  /** A moderator muted the visitor: the mute button is locked. */
  moderatorMuted: boolean
  note: string | null
}

export interface ChatLine {
  id: number
  userId: string
  name: string
  tag: string
  text: string
  sentAt: number
}

/** A line in the chat log that nobody typed: a moderation act everyone sees. */
export interface NoticeLine {
  text: string
  /** Unix time, milliseconds, when the page received it. */
  at: number
}

const CSS = `
body.in-room { max-width: 80rem; }
#room-root { display: grid; grid-template-columns: minmax(0, 1fr) 18rem; gap: 0.75rem; height: 78vh; background: none; }
.room-view { position: relative; min-height: 20rem; background: #111; border-radius: 6px; overflow: hidden; }
.room-view canvas { width: 100%; height: 100%; display: block; outline: none; touch-action: none; }
.room-status { position: absolute; left: 0.6rem; top: 0.6rem; padding: 0.2rem 0.6rem; border-radius: 1rem; font-size: 0.85rem; background: rgba(0,0,0,0.6); color: #fff; }
.room-status::before { content: ""; display: inline-block; width: 0.6rem; height: 0.6rem; border-radius: 50%; margin-right: 0.4rem; background: #999; }
.room-status[data-kind="joined"]::before { background: #3c3; }
.room-status[data-kind="connecting"]::before, .room-status[data-kind="reconnecting"]::before { background: #fc3; }
.room-status[data-kind="failed"]::before { background: #e33; }
.room-help { position: absolute; left: 0.6rem; bottom: 0.6rem; font-size: 0.8rem; color: #eee; background: rgba(0,0,0,0.45); padding: 0.15rem 0.5rem; border-radius: 4px; }
.room-side { display: flex; flex-direction: column; gap: 0.5rem; min-height: 0; }
.room-side h2 { font-size: 1rem; margin: 0.2rem 0; }
.room-side form { display: flex; gap: 0.3rem; align-items: center; margin: 0; }
.room-side input { width: auto; }
.room-side input[type=text] { flex: 1; min-width: 0; }
.room-side input[type=color] { width: 2.4rem; height: 2rem; padding: 0; border: none; background: none; }
.room-side button { margin: 0; }
.room-people { list-style: none; margin: 0; padding: 0; max-height: 10rem; overflow-y: auto; }
.room-people li { display: flex; align-items: baseline; gap: 0.4rem; flex-wrap: wrap; }
.room-people .name { min-width: 0; overflow-wrap: anywhere; }
.swatch { display: inline-block; width: 0.8rem; height: 0.8rem; border-radius: 50%; flex: none; }
.room-people .kind { color: #777; font-size: 0.8rem; flex: none; }
.tag { color: #667; font-family: ui-monospace, monospace; font-size: 0.75rem; flex: none; }
.room-people .role { font-size: 0.75rem; background: #eef; color: #334; border-radius: 3px; padding: 0 0.25rem; flex: none; }
.room-people .controls { display: flex; gap: 0.25rem; flex-basis: 100%; padding-left: 1.2rem; }
.room-people .controls button, .room-moderation button, .room-older { font-size: 0.75rem; padding: 0.1rem 0.4rem; }
.room-people li[data-speaking="true"] .swatch { box-shadow: 0 0 0 3px #3c3; }
.room-people .voice { font-size: 0.8rem; color: #2a2; flex: none; }
.room-people .voice.by-moderator { color: #b00020; }
.room-voice { display: flex; gap: 0.3rem; flex-wrap: wrap; align-items: center; }
.room-chat { display: flex; flex-direction: column; flex: 1; min-height: 0; }
.room-chat-log { list-style: none; margin: 0 0 0.3rem; padding: 0.3rem; flex: 1; overflow-y: auto; border: 1px solid #ddd; border-radius: 4px; white-space: pre-wrap; overflow-wrap: anywhere; }
.room-chat-log .who { font-weight: 600; }
.room-chat-log .tag { margin: 0 0.3rem 0 0.2rem; }
.room-chat-log .notice { color: #555; font-style: italic; }
.room-older { align-self: center; margin: 0 0 0.3rem; }
.room-ended { position: absolute; inset: 0; display: flex; align-items: center; justify-content: center; background: rgba(0,0,0,0.7); color: #fff; text-align: center; padding: 2rem; font-size: 1.1rem; }
.room-ended[hidden] { display: none; }
.room-chat-log time { color: #888; font-size: 0.75rem; margin-left: 0.3rem; }
.room-note { color: #666; font-size: 0.85rem; margin: 0; }
.room-note.error { color: #b00020; }
.room-toast { position: absolute; left: 50%; top: 0.6rem; transform: translateX(-50%); padding: 0.25rem 0.8rem; border-radius: 1rem; background: rgba(20,20,20,0.8); color: #fff; font-size: 0.9rem; }
.room-toast[hidden] { display: none; }
.room-objects-controls { display: flex; gap: 0.3rem; flex-wrap: wrap; }
.room-objects-controls button { font-size: 0.8rem; padding: 0.15rem 0.5rem; }
@media (max-width: 50rem) { #room-root { grid-template-columns: 1fr; height: auto; } .room-view { height: 60vh; } }
`

export class RoomUi {
  readonly canvas: HTMLCanvasElement
  readonly view: HTMLElement
  private readonly status: HTMLElement
  private readonly ended: HTMLElement
  private readonly help: HTMLElement
  private readonly peopleHeading: HTMLElement
  private readonly peopleList: HTMLUListElement
  private readonly profileForm: HTMLFormElement
  private readonly nameInput: HTMLInputElement
  private readonly colourInput: HTMLInputElement
  private readonly profileNote: HTMLElement
  private readonly chatLog: HTMLOListElement
  private readonly chatForm: HTMLFormElement
  private readonly chatInput: HTMLInputElement
  private readonly chatNote: HTMLElement
  private readonly chatLines = new Map<number, HTMLLIElement>()
  private readonly olderButton: HTMLButtonElement
  private readonly moderationSection: HTMLElement
  private readonly lockButton: HTMLButtonElement
  private readonly moderationNote: HTMLElement
  private lock: ModerationControl | null = null
  /** The per-person controls drawn now, by "userId action". */
  private readonly shownControls = new Map<string, ModerationControl>()
  private moderate: ((control: ModerationControl) => Promise<void>) | null = null
  private readonly voiceButton: HTMLButtonElement
  private readonly muteButton: HTMLButtonElement
  private readonly voiceNote: HTMLElement
  private readonly toast: HTMLElement
  private toastTimer: number | null = null
  private readonly objectButtons: HTMLButtonElement[]
  private readonly objectsNote: HTMLElement

  constructor(root: HTMLElement, profile: Profile) {
    // A constructed stylesheet, not an inline <style>: the Content-Security-Policy need not allow inline styles.
    const sheet = new CSSStyleSheet()
    sheet.replaceSync(CSS)
    document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet]
    document.body.classList.add("in-room")
    root.replaceChildren()

    this.view = element("div", {className: "room-view"})
    this.canvas = element("canvas", {id: "room-canvas", tabIndex: 0})
    this.canvas.setAttribute("aria-label", "The room in 3D: click, then walk with W A S D or the arrow keys, drag to look")
    this.status = element("div", {className: "room-status", role: "status"})
    this.help = element("div", {className: "room-help", textContent: "Click the view, then W A S D to walk, drag to look, drag an object to carry and throw it"})
    this.ended = element("div", {className: "room-ended", role: "alert", hidden: true})
    this.toast = element("div", {className: "room-toast", role: "status", hidden: true})
    this.view.append(this.canvas, this.status, this.help, this.toast, this.ended)

    const side = element("aside", {className: "room-side"})

    const people = element("section", {className: "room-people-section"})
    this.peopleHeading = element("h2", {textContent: "People"})
    this.peopleList = element("ul", {className: "room-people"})
    people.append(this.peopleHeading, this.peopleList)

    const you = element("section", {})
    this.profileForm = element("form", {className: "room-profile"})
    this.nameInput = element("input", {type: "text", name: "name", maxLength: MAX_NAME_CHARS, required: true, value: profile.name})
    this.nameInput.setAttribute("aria-label", "Your name")
    this.colourInput = element("input", {type: "color", name: "colour", value: profile.colour})
    this.colourInput.setAttribute("aria-label", "Your colour")
    const save = element("button", {type: "submit", textContent: "Save"})
    this.profileForm.append(this.nameInput, this.colourInput, save)
    this.profileNote = element("p", {className: "room-note"})
    you.append(element("h2", {textContent: "You"}), this.profileForm, this.profileNote)

    this.moderationSection = element("section", {className: "room-moderation", hidden: true})
    this.lockButton = element("button", {type: "button", className: "room-lock"})
    this.moderationNote = element("p", {className: "room-note moderation-note"})
    this.moderationSection.append(element("h2", {textContent: "Moderation"}), this.lockButton, this.moderationNote)

    const chat = element("section", {className: "room-chat"})
    this.olderButton = element("button", {type: "button", className: "room-older", textContent: "Load older messages", hidden: true})
    this.chatLog = element("ol", {className: "room-chat-log"})
    this.chatLog.setAttribute("aria-live", "polite")
    this.chatForm = element("form", {})
    this.chatInput = element("input", {type: "text", name: "text", maxLength: MAX_CHAT_CHARS, autocomplete: "off", placeholder: "Say something"})
    this.chatInput.setAttribute("aria-label", "Chat message")
    this.chatForm.append(this.chatInput, element("button", {type: "submit", textContent: "Send"}))
    this.chatNote = element("p", {className: "room-note"})
    chat.append(element("h2", {textContent: "Chat"}), this.olderButton, this.chatLog, this.chatForm, this.chatNote)

    const voice = element("section", {})
    this.voiceButton = element("button", {type: "button", className: "voice-join", textContent: "Join voice"})
    this.muteButton = element("button", {type: "button", className: "voice-mute", textContent: "Mute", hidden: true})
    this.voiceNote = element("p", {className: "room-note voice-note"})
    const voiceControls = element("div", {className: "room-voice"})
    voiceControls.append(this.voiceButton, this.muteButton)
    voice.append(element("h2", {textContent: "Voice"}), voiceControls, this.voiceNote)

    const objects = element("section", {className: "room-objects"})
    const objectControls = element("div", {className: "room-objects-controls"})
    const kinds: Array<[ObjectKind, string]> = [["cube", "Add cube"], ["ball", "Add ball"], ["marker", "Add marker"]]
    this.objectButtons = kinds.map(([kind, label]) => {
      const button = element("button", {type: "button", className: "object-add", textContent: label})
      button.dataset.kind = kind
      button.setAttribute("aria-label", `${label} in front of you`)
      return button
    })
    const remove = element("button", {type: "button", className: "object-remove", textContent: "Remove"})
    remove.setAttribute("aria-label", "Remove the object you last picked up or added")
    this.objectButtons.push(remove)
    objectControls.append(...this.objectButtons)
    this.objectsNote = element("p", {className: "room-note objects-note"})
    objects.append(element("h2", {textContent: "Objects"}), objectControls, this.objectsNote)

    side.append(people, this.moderationSection, voice, objects, you, chat)
    root.append(this.view, side)

    // Clicking the view gives it the keyboard, so WASD walks.
    this.canvas.addEventListener("pointerdown", () => this.canvas.focus())
    // The people list is redrawn on every presence change: one listener for all its buttons.
    this.peopleList.addEventListener("click", (event) => {
      const button = (event.target as HTMLElement).closest<HTMLButtonElement>("button[data-action]")
      const userId = button?.closest<HTMLElement>("li[data-user-id]")?.dataset.userId
      const control = this.shownControls.get(`${userId} ${button?.dataset.action}`)
      if (button && control) {
        this.runModeration(control, button)
      }
    })
    this.lockButton.addEventListener("click", () => {
      if (this.lock) {
        this.runModeration(this.lock, this.lockButton)
      }
    })
  }

  setStatus(status: ConnectionStatus): void {
    const text = {
      connecting: "Connecting…",
      joined: "In the room",
      reconnecting: "Reconnecting…",
      failed: "Not connected",
    }[status.kind]
    this.status.dataset.kind = status.kind
    this.status.textContent = "reason" in status ? `${text}: ${status.reason}` : text
    this.status.title = "reason" in status ? status.reason : text
    if (status.kind === "failed") {
      // The room is over for this page (removed, deleted, refused): say so over the view.
      this.ended.textContent = `You are not in the room: ${status.reason}`
      this.ended.hidden = false
      this.chatInput.disabled = true
      this.voiceButton.disabled = true
      this.moderationSection.hidden = true
    }
  }

  /** The room lock toggle (null hides the moderation section: the visitor does not moderate). */
  setModeration(lock: ModerationControl | null): void {
    this.lock = lock
    this.moderationSection.hidden = lock === null || this.ended.hidden === false
    if (lock) {
      this.lockButton.textContent = lock.label
      this.lockButton.dataset.action = lock.action
    } else {
      this.setModerationNote("")
    }
  }

  /** Sends every moderation act the page's buttons ask for. */
  onModerate(moderate: (control: ModerationControl) => Promise<void>): void {
    this.moderate = moderate
  }

  setModerationNote(note: string, isError = false): void {
    this.moderationNote.textContent = note
    this.moderationNote.classList.toggle("error", isError)
  }

  private runModeration(control: ModerationControl, button: HTMLButtonElement): void {
    if (!this.moderate) {
      return
    }
    button.disabled = true
    this.setModerationNote("")
    this.moderationSection.hidden = false
    this.moderate(control).then(
      () => {
        button.disabled = false
      },
      (error: Error) => {
        button.disabled = false
        this.setModerationNote(`${control.label} failed: ${error.message}`, true)
      },
    )
  }

  setVoice(view: VoiceView): void {
    const on = view.state === "on" || view.state === "starting"
    this.voiceButton.textContent = on ? "Leave voice" : "Join voice"
    this.voiceButton.disabled = view.state === "starting" || !this.ended.hidden
    // Muted by a moderator: the button stays in sight, locked, saying why.
    this.muteButton.hidden = !on && !view.moderatorMuted
    this.muteButton.disabled = view.moderatorMuted
    this.muteButton.textContent = view.moderatorMuted ? "Muted by a moderator" : view.muted ? "Unmute" : "Mute"
    this.muteButton.title = view.moderatorMuted ? "A moderator muted you; only a moderator can unmute you" : ""
    this.muteButton.setAttribute("aria-pressed", String(view.muted || view.moderatorMuted))
    this.voiceNote.textContent = view.note ?? ""
    this.voiceNote.classList.toggle("error", view.state === "failed")
  }

  onVoice(toggle: () => void, toggleMute: () => void): void {
    this.voiceButton.addEventListener("click", toggle)
    this.muteButton.addEventListener("click", toggleMute)
  }

  /** Runs `add(kind)` for the add buttons and `remove()` for Remove; their errors show under them. */
  onObjects(add: (kind: ObjectKind) => Promise<void>, remove: () => Promise<string | null>): void {
    for (const button of this.objectButtons) {
      button.addEventListener("click", () => {
        this.objectsNote.textContent = ""
        this.objectsNote.classList.remove("error")
        const kind = button.dataset.kind as ObjectKind | undefined
        const done = kind ? add(kind).then(() => null) : remove().then((id) => (id ? null : "Pick something up first, or look at it."))
        button.disabled = true
        done.then(
          (note) => {
            button.disabled = false
            this.objectsNote.textContent = note ?? ""
          },
          (error: Error) => {
            button.disabled = false
            this.objectsNote.textContent = error.message
            this.objectsNote.classList.add("error")
          },
        )
      })
    }
  }

  /** A short message over the view (who holds what you tried to grab). */
  showToast(text: string, ms = 3000): void {
    this.toast.textContent = text
    this.toast.hidden = false
    if (this.toastTimer !== null) {
      clearTimeout(this.toastTimer)
    }
    this.toastTimer = window.setTimeout(() => {
      this.toast.hidden = true
      this.toastTimer = null
    }, ms)
  }

  setXrNote(note: string | null): void {
    if (note) {
      this.help.textContent = `${this.help.textContent} · ${note}`
    }
  }

  setPeople(people: Person[]): void {
    this.peopleHeading.textContent = `People (${people.length})`
    this.shownControls.clear()
    const items = people.map((person) => {
      const item = element("li", {})
      item.dataset.userId = person.userId
      const swatch = element("span", {className: "swatch"})
      swatch.style.background = person.colour
      const name = element("span", {className: "name", textContent: person.name})
      const tag = element("span", {className: "tag", textContent: person.tag})
      tag.title = "This person's tag: names can repeat, tags tell people apart"
      const details = [kindLabel(person.kind), person.isSelf ? "you" : "", person.connections > 1 ? `×${person.connections}` : ""]
      const kind = element("span", {className: "kind", textContent: details.filter(Boolean).join(" · ")})
      item.dataset.speaking = String(person.speaking)
      const voiceText = person.moderatorMuted ? "muted by a moderator" : person.muted ? "muted" : person.speaking ? "speaking" : ""
      const voice = element("span", {className: person.moderatorMuted ? "voice by-moderator" : "voice", textContent: voiceText})
      item.append(swatch, name, tag)
      if (person.role !== "member") {
        item.append(element("span", {className: "role", textContent: person.role}))
      }
      item.append(kind, voice)
      if (person.controls.length > 0) {
        const controls = element("span", {className: "controls"})
        for (const control of person.controls) {
          const button = element("button", {type: "button", textContent: control.label})
          button.dataset.action = control.action
          button.setAttribute("aria-label", `${control.label}: ${person.name} (${person.tag})`)
          this.shownControls.set(`${person.userId} ${control.action}`, control)
          controls.append(button)
        }
        item.append(controls)
      }
      return item
    })
    this.peopleList.replaceChildren(...items)
  }

  /**
   * Shows `lines`, sorted by id; lines already shown are kept, not repeated.
   * Older lines (a history page) go in above without moving what the reader sees.
   */
  showChat(lines: ChatLine[], {older = false} = {}): void {
    const heightBefore = this.chatLog.scrollHeight
    let added = false
    for (const line of lines) {
      if (this.chatLines.has(line.id)) {
        continue
      }
      const item = element("li", {})
      item.dataset.id = String(line.id)
      const who = element("span", {className: "who", textContent: line.name})
      const tag = element("span", {className: "tag", textContent: line.tag})
      const text = element("span", {className: "text", textContent: line.text})
      const time = element("time", {textContent: new Date(line.sentAt).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"})})
      time.dateTime = new Date(line.sentAt).toISOString()
      item.append(who, tag, text, time)
      this.chatLines.set(line.id, item)
      const next = [...this.chatLines.keys()].filter((id) => id > line.id).sort((a, b) => a - b)[0]
      this.chatLog.insertBefore(item, next === undefined ? null : this.chatLines.get(next)!)
      added = true
    }
    if (added && older) {
      this.chatLog.scrollTop += this.chatLog.scrollHeight - heightBefore
    } else if (added) {
      this.chatLog.scrollTop = this.chatLog.scrollHeight
    }
  }

  /** A moderation act, after everything shown so far. */
  showNotice(line: NoticeLine): void {
    const item = element("li", {className: "notice", textContent: line.text})
    const time = element("time", {textContent: new Date(line.at).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"})})
    time.dateTime = new Date(line.at).toISOString()
    item.append(time)
    this.chatLog.append(item)
    this.chatLog.scrollTop = this.chatLog.scrollHeight
  }

  /** Shows or hides "Load older messages". */
  setOlderMessages(available: boolean): void {
    this.olderButton.hidden = !available
  }

  /** Loads a page of older messages per click; a failure is said under the chat. */
  onLoadOlder(load: () => Promise<void>): void {
    this.olderButton.addEventListener("click", () => {
      this.olderButton.disabled = true
      load().then(
        () => {
          this.olderButton.disabled = false
        },
        (error: Error) => {
          this.olderButton.disabled = false
          this.setChatNote(`Older messages could not be loaded: ${error.message}`, true)
        },
      )
    })
  }

  setChatNote(note: string, isError = false): void {
    this.chatNote.textContent = note
    this.chatNote.classList.toggle("error", isError)
  }

  setProfileNote(note: string, isError = false): void {
    this.profileNote.textContent = note
    this.profileNote.classList.toggle("error", isError)
  }

  onChat(send: (text: string) => Promise<void>): void {
    this.chatForm.addEventListener("submit", (event) => {
      event.preventDefault()
      const text = this.chatInput.value
      if (text.trim() === "") {
        return
      }
      this.setChatNote("")
      send(text).then(
        () => {
          if (this.chatInput.value === text) {
            this.chatInput.value = ""
          }
        },
        (error: Error) => this.setChatNote(`Not sent: ${error.message}`, true),
      )
    })
  }

  onProfile(save: (profile: Profile) => Promise<void>): void {
    this.profileForm.addEventListener("submit", (event) => {
      event.preventDefault()
      const profile = {name: this.nameInput.value, colour: this.colourInput.value}
      save(profile).then(
        () => this.setProfileNote("Saved."),
        (error: Error) => this.setProfileNote(error.message, true),
      )
    })
  }
}

function kindLabel(kind: ClientKind): string {
  return {web: "browser", desktop: "desktop app", xr: "PC VR", quest: "Quest"}[kind] ?? kind
}

/** document.createElement with properties; text goes in through textContent. */
function element<K extends keyof HTMLElementTagNameMap>(
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
