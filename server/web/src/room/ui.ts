// The room page around the 3D view, which fills the window: a bar at the
// bottom (microphone: mute or turn on, with its level; the panels' buttons;
// Enter VR) and overlay panels over the view: chat (with moderation notices
// and older history), people (each name with its tag, and moderation
// controls for those who may use them), objects (add a cube, ball or marker,
// remove one), settings (name, colour, microphone, a test sound), share (copy
// the link, open it in the app) and the room (its details and the owner's
// actions from the server's page, the moderators' lock). Over the view too: a
// banner while the connection is lost and when it is back, the reason when
// the room is over for this page, a short message for a refused grab, and a
// hidden polite live region announcing who joins and leaves.
// Everything a person typed is put in with textContent (or an input's value),
// never as HTML.

import {MAX_CHAT_CHARS, MAX_NAME_CHARS, type ClientKind, type ObjectKind, type Role} from "@roomscale/protocol"

import type {ConnectionStatus} from "./connection"
import {element, icon, labelled} from "./dom"
import type {ModerationControl} from "./moderation"
import {Panels} from "./panels"
import {appLink} from "./share"
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
  /** In voice without a microphone: hearing the room, not heard. */
  listeningOnly: boolean
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

export class RoomUi {
  readonly canvas: HTMLCanvasElement
  readonly view: HTMLElement
  readonly panels: Panels
  private readonly banner: HTMLElement
  private bannerTimer: number | null = null
  private lost = false
  private readonly ended: HTMLElement
  private readonly endedText: HTMLElement
  private readonly announcer: HTMLElement
  /** Who was in the room at the last presence change, to announce arrivals and departures. */
  private present: Map<string, string> | null = null
  private readonly peopleButton: HTMLButtonElement
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
  private readonly joinVoiceButton: HTMLButtonElement
  private readonly muteButton: HTMLButtonElement
  private readonly level: HTMLMeterElement
  private readonly voiceNote: HTMLElement
  readonly microphoneSelect: HTMLSelectElement
  readonly speakerTestButton: HTMLButtonElement
  private readonly enterVrButton: HTMLButtonElement
  private readonly xrNote: HTMLElement
  private readonly toast: HTMLElement
  private toastTimer: number | null = null
  private readonly objectButtons: HTMLButtonElement[]
  private readonly objectsNote: HTMLElement

  constructor(root: HTMLElement, profile: Profile) {
    document.body.classList.add("in-room")
    root.replaceChildren()

    this.view = element("div", {className: "room-view"})
    this.canvas = element("canvas", {id: "room-canvas", tabIndex: 0})
    this.canvas.setAttribute("aria-label", "The room in 3D: click, then walk with W A S D or the arrow keys, drag to look, drag an object to carry and throw it")
    this.banner = element("div", {className: "room-banner", role: "status", hidden: true})
    this.toast = element("div", {className: "room-toast", role: "status", hidden: true})
    this.ended = element("div", {className: "room-ended", role: "alert", hidden: true})
    this.endedText = element("p", {})
    const endedLinks = element("p", {className: "actions"})
    endedLinks.append(element("a", {className: "button primary", href: "/rooms", textContent: "See the rooms"}), element("a", {className: "button", href: location.pathname, textContent: "Try again"}))
    this.ended.append(this.endedText, endedLinks)
    this.announcer = element("div", {id: "room-announcer", className: "visually-hidden"})
    this.announcer.setAttribute("aria-live", "polite")
    const left = element("div", {className: "room-dock room-dock-left"})
    const right = element("div", {className: "room-dock room-dock-right"})
    this.view.append(this.canvas, left, right, this.banner, this.toast, this.ended, this.announcer)
    this.panels = new Panels(left, right)

    const bar = element("nav", {className: "room-bar"})
    bar.setAttribute("aria-label", "Room controls")
    this.muteButton = element("button", {type: "button", className: "bar-button voice-mute", hidden: true})
    this.muteButton.append(icon("mic"), element("span", {className: "bar-label", textContent: "Mute"}))
    this.joinVoiceButton = element("button", {type: "button", className: "bar-button voice-join"})
    this.joinVoiceButton.append(icon("micOff"), element("span", {className: "bar-label", textContent: "Turn on microphone"}))
    this.joinVoiceButton.setAttribute("aria-label", "Turn on microphone")
    this.level = element("meter", {className: "voice-level", min: 0, max: 1, low: 0.25, high: 0.85, optimum: 0.5, value: 0, hidden: true})
    this.level.setAttribute("aria-label", "Your microphone level")
    const voiceGroup = element("div", {className: "bar-group"})
    voiceGroup.append(this.muteButton, this.joinVoiceButton, this.level)

    // Chat
    const chat = this.panels.add("chat", "Chat", "chat")
    const chatSection = element("div", {className: "room-chat"})
    this.olderButton = element("button", {type: "button", className: "room-older", textContent: "Load older messages", hidden: true})
    this.chatLog = element("ol", {className: "room-chat-log"})
    this.chatLog.setAttribute("aria-live", "polite")
    this.chatLog.setAttribute("aria-label", "Messages")
    this.chatForm = element("form", {className: "room-chat-form"})
    this.chatInput = element("input", {type: "text", name: "text", maxLength: MAX_CHAT_CHARS, autocomplete: "off", placeholder: "Say something"})
    this.chatInput.setAttribute("aria-label", "Chat message")
    this.chatForm.append(this.chatInput, element("button", {type: "submit", textContent: "Send"}))
    this.chatNote = element("p", {className: "room-note"})
    chatSection.append(this.olderButton, this.chatLog, this.chatForm, this.chatNote)
    chat.body.append(chatSection)

    // People
    const people = this.panels.add("people", "People", "people")
    this.peopleButton = people.button
    this.peopleList = element("ul", {className: "room-people"})
    people.body.append(this.peopleList)

    // Objects
    const objects = this.panels.add("objects", "Objects", "objects")
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
    this.objectsNote.setAttribute("aria-live", "polite")
    objects.body.append(element("p", {className: "room-note", textContent: "Drag an object to carry it; let go while moving to throw it."}), objectControls, this.objectsNote)

    // Settings: you, and sound
    const settings = this.panels.add("settings", "Settings", "settings")
    this.profileForm = element("form", {className: "room-profile"})
    this.nameInput = element("input", {type: "text", name: "name", maxLength: MAX_NAME_CHARS, required: true, value: profile.name})
    this.colourInput = element("input", {type: "color", name: "colour", value: profile.colour})
    this.profileForm.append(labelled("Your name", this.nameInput), labelled("Your colour", this.colourInput), element("button", {type: "submit", textContent: "Save"}))
    this.profileNote = element("p", {className: "room-note"})
    this.profileNote.setAttribute("aria-live", "polite")
    this.microphoneSelect = element("select", {name: "microphone", className: "settings-microphone"})
    this.microphoneSelect.append(new Option("No microphone (listen only)", ""))
    this.speakerTestButton = element("button", {type: "button", className: "settings-speaker-test", textContent: "Play a test sound"})
    this.voiceNote = element("p", {className: "room-note voice-note"})
    this.voiceNote.setAttribute("aria-live", "polite")
    this.xrNote = element("p", {className: "room-note xr-note"})
    settings.body.append(
      element("h3", {textContent: "You"}),
      this.profileForm,
      this.profileNote,
      element("h3", {textContent: "Sound"}),
      labelled("Microphone", this.microphoneSelect),
      this.speakerTestButton,
      this.voiceNote,
      this.xrNote,
    )

    // Share
    const share = this.panels.add("share", "Share", "share")
    const url = `${location.origin}${location.pathname}`
    const urlInput = element("input", {type: "text", className: "share-url", readOnly: true, value: url})
    const copy = element("button", {type: "button", className: "share-copy primary", textContent: "Copy link"})
    const shareNote = element("p", {className: "room-note share-note"})
    shareNote.setAttribute("aria-live", "polite")
    const app = element("a", {className: "share-app button", href: appLink(location), textContent: "Open in the Roomscale app"})
    copy.addEventListener("click", () => {
      copyText(url, urlInput).then(
        () => (shareNote.textContent = "Link copied: paste it to whoever you want to meet here."),
        (error: Error) => (shareNote.textContent = `Could not copy (${error.message}): select the link and copy it.`),
      )
    })
    const copyRow = element("div", {className: "share-row"})
    copyRow.append(urlInput, copy)
    share.body.append(
      labelled("Link to this room", copyRow),
      shareNote,
      app,
      element("p", {className: "room-note", textContent: "The app opens this room on the desktop or in a PC headset. Install its link handler once with: roomscale install-desktop-entry"}),
    )

    // The room: details (rendered by the server, with the owner's actions), and moderation
    const roomPanel = this.panels.add("room", "Room", "room")
    const details = document.getElementById("room-details")
    if (details) {
      details.hidden = false
      roomPanel.body.append(details)
    }
    this.moderationSection = element("section", {className: "room-moderation", hidden: true})
    this.lockButton = element("button", {type: "button", className: "room-lock"})
    this.moderationNote = element("p", {className: "room-note moderation-note"})
    this.moderationSection.append(element("h3", {textContent: "Moderation"}), this.lockButton, this.moderationNote)
    const leave = element("p", {})
    leave.append(element("a", {href: "/rooms", textContent: "Leave: back to the rooms"}))
    roomPanel.body.append(this.moderationSection, leave)

    this.enterVrButton = element("button", {type: "button", className: "bar-button enter-vr", hidden: true})
    this.enterVrButton.append(icon("vr"), element("span", {className: "bar-label", textContent: "Enter VR"}))
    const panelButtons = element("div", {className: "bar-group"})
    panelButtons.append(chat.button, people.button, objects.button, settings.button, share.button, roomPanel.button)
    bar.append(voiceGroup, panelButtons, this.enterVrButton)
    root.append(this.view, bar)

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

  /** Shows the room's controls once the visitor has entered (the lobby is over). */
  entered(profile: Profile): void {
    this.nameInput.value = profile.name
    this.colourInput.value = profile.colour
    this.panels.restore()
  }

  /**
   * The connection's state as a banner over the view: lost (and retrying),
   * back (for a few seconds), or, when the room is over for this page
   * (removed, deleted, refused), the reason over the whole view.
   */
  setStatus(status: ConnectionStatus): void {
    if (status.kind === "reconnecting") {
      this.lost = true
      this.showBanner("lost", `Connection lost: ${status.reason}. Reconnecting…`)
    } else if (status.kind === "joined" && this.lost) {
      this.lost = false
      this.showBanner("back", "Back in the room.", 4000)
    }
    if (status.kind === "failed") {
      this.banner.hidden = true
      this.endedText.textContent = `You are not in the room: ${status.reason}`
      this.ended.hidden = false
      this.chatInput.disabled = true
      this.joinVoiceButton.disabled = true
      this.moderationSection.hidden = true
    }
  }

  private showBanner(kind: "lost" | "back", text: string, ms?: number): void {
    if (this.bannerTimer !== null) {
      clearTimeout(this.bannerTimer)
      this.bannerTimer = null
    }
    this.banner.dataset.kind = kind
    this.banner.textContent = text
    this.banner.hidden = false
    if (ms) {
      this.bannerTimer = window.setTimeout(() => {
        this.banner.hidden = true
        this.bannerTimer = null
      }, ms)
    }
  }

  /** Says `text` to screen readers, politely (after what they are reading). */
  announce(text: string): void {
    const line = element("p", {textContent: text})
    this.announcer.append(line)
    // Keep the region short: only the latest few lines matter.
    while (this.announcer.childElementCount > 5) {
      this.announcer.firstElementChild?.remove()
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
    const talking = view.state === "on" && !view.listeningOnly
    // Muted by a moderator: the button stays in sight, locked, saying why.
    this.muteButton.hidden = !talking && !view.moderatorMuted
    this.muteButton.disabled = view.moderatorMuted
    const muted = view.muted || view.moderatorMuted
    this.muteButton.replaceChildren(
      icon(muted ? "micOff" : "mic"),
      element("span", {className: "bar-label", textContent: view.moderatorMuted ? "Muted by a moderator" : view.muted ? "Unmute" : "Mute"}),
    )
    this.muteButton.title = view.moderatorMuted ? "A moderator muted you; only a moderator can unmute you" : view.muted ? "Unmute your microphone" : "Mute your microphone"
    this.muteButton.setAttribute("aria-pressed", String(muted))
    this.muteButton.setAttribute("aria-label", view.moderatorMuted ? "Muted by a moderator" : "Mute microphone")
    this.level.hidden = !talking || muted
    this.joinVoiceButton.hidden = talking || view.moderatorMuted
    this.joinVoiceButton.disabled = view.state === "starting" || !this.ended.hidden
    this.joinVoiceButton.title = view.listeningOnly ? "You are listening only: turn your microphone on to talk" : "Turn your microphone on to talk"
    this.voiceNote.textContent = view.note ?? (talking ? "Your microphone is on." : "")
    this.voiceNote.classList.toggle("error", view.state === "failed")
  }

  /** The bar's microphone level, 0..1. */
  setMicrophoneLevel(value: number): void {
    this.level.value = value
  }

  /** `turnOn` for "Turn on microphone", `toggleMute` for Mute / Unmute. */
  onVoice(turnOn: () => void, toggleMute: () => void): void {
    this.joinVoiceButton.addEventListener("click", turnOn)
    this.muteButton.addEventListener("click", toggleMute)
  }

  /** Shows the bar's Enter VR button (when immersive VR is available) and what it runs. */
  setEnterVr(enter: (() => void) | null, note: string | null): void {
    this.enterVrButton.hidden = enter === null
    this.enterVrButton.onclick = enter
    this.xrNote.textContent = note ?? ""
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

  setPeople(people: Person[]): void {
    this.peopleButton.querySelector(".bar-label")!.textContent = `People (${people.length})`
    this.peopleButton.setAttribute("aria-label", `People: ${people.length} in the room`)
    this.announceArrivals(people)
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

  /** "Ada joined" / "Ada left" for screen readers; not for the first list, nor the visitor. */
  private announceArrivals(people: Person[]): void {
    const now = new Map(people.map((person) => [person.userId, person.name]))
    if (this.present) {
      for (const person of people) {
        if (!this.present.has(person.userId) && !person.isSelf) {
          this.announce(`${person.name} joined`)
        }
      }
      for (const [userId, name] of this.present) {
        if (!now.has(userId)) {
          this.announce(`${name} left`)
        }
      }
    }
    this.present = now
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

/** Puts `text` on the clipboard; where the Clipboard API is refused, selects it in `input` and copies that. */
async function copyText(text: string, input: HTMLInputElement): Promise<void> {
  try {
    await navigator.clipboard.writeText(text)
  } catch (error) {
    input.select()
    if (!document.execCommand("copy")) {
      throw error
    }
  }
}
