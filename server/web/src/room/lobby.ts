// The lobby: a short dialog before entering, over the room's view while it
// loads. The visitor sets name and colour (remembered), sees their avatar
// as others will (head, hands and name tag in their colour), picks a
// microphone and watches its level, plays a test sound, and enters on the
// flat screen or in VR. Without a microphone (none, refused, or not wanted)
// they enter listening only, and the lobby says so.
//
// The room is entered (the channel joined) only from here: the lobby is the
// user gesture that lets the page play sound, and nobody sees a visitor who
// is still choosing a name.

import {MAX_NAME_CHARS} from "@roomscale/protocol"

import {LevelMeter, listMicrophones, meterValue, microphoneProblem, openMicrophone, playTestSound} from "./audioCheck"
import {userTag} from "./names"
import type {Profile} from "./profile"
import {element, labelled} from "./dom"

/** What the visitor chose on entering. */
export interface LobbyChoice {
  profile: Profile
  /** A device id ("" the default), or null: listening only. */
  microphone: string | null
  vr: boolean
}

export interface LobbyOptions {
  roomName: string
  userId: string
  profile: Profile
  /** Why a profile would be refused, or null when it is fine. */
  problem(profile: Profile): string | null
}

const LISTEN_ONLY = ""

export class Lobby {
  readonly element: HTMLElement
  private readonly people: HTMLElement
  private readonly form: HTMLFormElement
  private readonly nameInput: HTMLInputElement
  private readonly colourInput: HTMLInputElement
  private readonly preview: HTMLCanvasElement
  private readonly allowButton: HTMLButtonElement
  private readonly microphoneSelect: HTMLSelectElement
  private readonly level: HTMLMeterElement
  private readonly note: HTMLElement
  private readonly error: HTMLElement
  private readonly progress: HTMLProgressElement
  private readonly loadingText: HTMLElement
  private readonly loading: HTMLElement
  private readonly enterButton: HTMLButtonElement
  private readonly enterVrButton: HTMLButtonElement
  private context: AudioContext | null = null
  private stream: MediaStream | null = null
  private meter: LevelMeter | null = null
  private meterFrame = 0
  private ready = false
  private chosen: ((choice: LobbyChoice) => void) | null = null

  constructor(
    parent: HTMLElement,
    private readonly options: LobbyOptions,
  ) {
    this.element = element("section", {className: "lobby", role: "dialog"})
    this.element.setAttribute("aria-modal", "true")
    this.element.setAttribute("aria-labelledby", "lobby-title")
    const title = element("h1", {id: "lobby-title", textContent: options.roomName})
    this.people = element("p", {className: "lobby-people", textContent: "Looking who is here…"})
    this.people.setAttribute("aria-live", "polite")

    this.form = element("form", {className: "lobby-form"})
    this.form.noValidate = true
    this.preview = element("canvas", {className: "lobby-avatar", width: 240, height: 240})
    this.preview.setAttribute("role", "img")
    const you = element("div", {className: "lobby-you"})
    this.nameInput = element("input", {id: "lobby-name", type: "text", name: "name", maxLength: MAX_NAME_CHARS, required: true, value: options.profile.name})
    this.colourInput = element("input", {id: "lobby-colour", type: "color", name: "colour", value: options.profile.colour})
    you.append(
      labelled("Your name", this.nameInput),
      labelled("Your colour", this.colourInput),
    )
    const identity = element("div", {className: "lobby-identity"})
    identity.append(this.preview, you)

    const sound = element("fieldset", {className: "lobby-sound"})
    sound.append(element("legend", {textContent: "Sound"}))
    this.allowButton = element("button", {type: "button", className: "lobby-mic-allow", textContent: "Use my microphone"})
    this.microphoneSelect = element("select", {id: "lobby-microphone", name: "microphone"})
    this.microphoneSelect.append(new Option("No microphone (listen only)", LISTEN_ONLY))
    this.level = element("meter", {className: "lobby-level", min: 0, max: 1, low: 0.25, high: 0.85, optimum: 0.5, value: 0})
    this.level.setAttribute("aria-label", "Microphone level")
    const speakerTest = element("button", {type: "button", className: "lobby-speaker-test", textContent: "Play a test sound"})
    const microphoneRow = element("div", {className: "lobby-row"})
    microphoneRow.append(labelled("Microphone", this.microphoneSelect), this.level)
    const buttons = element("div", {className: "lobby-row"})
    buttons.append(this.allowButton, speakerTest)
    this.note = element("p", {className: "lobby-note"})
    this.note.setAttribute("aria-live", "polite")
    sound.append(microphoneRow, buttons, this.note)

    this.loading = element("div", {className: "room-loading", role: "status"})
    this.progress = element("progress", {className: "room-progress", max: 1, value: 0})
    this.progress.setAttribute("aria-label", "Loading the room")
    this.loadingText = element("span", {className: "room-loading-text", textContent: "Loading the room…"})
    this.loading.append(this.progress, this.loadingText)

    this.error = element("p", {className: "lobby-error error", role: "alert"})
    this.enterButton = element("button", {type: "submit", className: "lobby-enter primary", textContent: "Enter room", disabled: true})
    this.enterVrButton = element("button", {type: "button", className: "lobby-enter-vr", textContent: "Enter VR", hidden: true, disabled: true})
    const enter = element("div", {className: "lobby-actions"})
    enter.append(this.enterButton, this.enterVrButton)

    this.form.append(identity, sound, this.loading, this.error, enter)
    this.element.append(title, this.people, this.form)
    parent.append(this.element)

    this.nameInput.addEventListener("input", () => this.drawPreview())
    this.colourInput.addEventListener("input", () => this.drawPreview())
    this.allowButton.addEventListener("click", () => this.askForMicrophone())
    this.microphoneSelect.addEventListener("change", () => this.useMicrophone(this.microphoneSelect.value))
    speakerTest.addEventListener("click", () => {
      speakerTest.disabled = true
      playTestSound(this.audioContext())
        .then(() => (this.note.textContent = "Did you hear two notes? If not, check the volume and which speakers the system uses."))
        .catch((error: Error) => (this.note.textContent = `The test sound could not play: ${error.message}`))
        .finally(() => (speakerTest.disabled = false))
    })
    this.form.addEventListener("submit", (event) => {
      event.preventDefault()
      this.enter(false)
    })
    this.enterVrButton.addEventListener("click", () => this.enter(true))
    this.drawPreview()
    this.describeMicrophone()
    // Asked before and allowed: show the microphone at once, as the visitor left it.
    navigator.permissions
      ?.query({name: "microphone" as PermissionName})
      .then((status) => {
        if (status.state === "granted") {
          this.askForMicrophone()
        }
      })
      .catch(() => {})
    this.nameInput.focus()
  }

  /** Resolves when the visitor enters. */
  choice(): Promise<LobbyChoice> {
    return new Promise((resolve) => (this.chosen = resolve))
  }

  /** Loading progress, 0..1, and what is still coming; at 1 the Enter buttons work. */
  setProgress(fraction: number, text: string): void {
    this.progress.value = fraction
    this.loadingText.textContent = text
    this.ready = fraction >= 1
    this.loading.hidden = this.ready
    this.enterButton.disabled = !this.ready
    this.enterVrButton.disabled = !this.ready
  }

  /** Something that keeps the visitor out (the room failed to load): said, and nothing can be entered. */
  setFailed(reason: string): void {
    this.error.textContent = reason
    this.enterButton.disabled = true
    this.enterVrButton.disabled = true
  }

  setPeople(text: string): void {
    this.people.textContent = text
  }

  setVrAvailable(available: boolean): void {
    this.enterVrButton.hidden = !available
  }

  close(): void {
    // The lobby's own microphone goes: voice opens the chosen one itself.
    this.stopMicrophone()
    this.context?.close().catch(() => {})
    this.element.remove()
  }

  private enter(vr: boolean): void {
    if (!this.ready || !this.chosen) {
      return
    }
    const profile = {name: this.nameInput.value, colour: this.colourInput.value}
    const problem = this.options.problem(profile)
    if (problem) {
      this.error.textContent = problem
      this.nameInput.focus()
      return
    }
    this.error.textContent = ""
    const microphone = this.stream && this.microphoneSelect.value !== LISTEN_ONLY ? this.microphoneSelect.value : null
    this.chosen({profile, microphone, vr})
    this.chosen = null
  }

  private audioContext(): AudioContext {
    this.context ??= new AudioContext()
    return this.context
  }

  private async askForMicrophone(): Promise<void> {
    this.allowButton.disabled = true
    try {
      await this.open("")
      const microphones = await listMicrophones()
      const current = this.stream?.getAudioTracks()[0]?.getSettings().deviceId ?? ""
      this.microphoneSelect.replaceChildren(new Option("No microphone (listen only)", LISTEN_ONLY))
      for (const {deviceId, label} of microphones) {
        this.microphoneSelect.append(new Option(label, deviceId))
      }
      this.microphoneSelect.value = microphones.some((m) => m.deviceId === current) ? current : (microphones[0]?.deviceId ?? LISTEN_ONLY)
      this.allowButton.hidden = true
    } catch (error) {
      this.allowButton.disabled = false
      this.note.textContent = microphoneProblem(error)
      return
    }
    this.describeMicrophone()
  }

  private async useMicrophone(deviceId: string): Promise<void> {
    if (deviceId === LISTEN_ONLY) {
      this.stopMicrophone()
    } else {
      try {
        await this.open(deviceId)
      } catch (error) {
        this.note.textContent = microphoneProblem(error)
        this.microphoneSelect.value = LISTEN_ONLY
        return
      }
    }
    this.describeMicrophone()
  }

  private async open(deviceId: string): Promise<void> {
    const stream = await openMicrophone(deviceId)
    this.stopMicrophone()
    this.stream = stream
    const context = this.audioContext()
    await context.resume().catch(() => {})
    this.meter = new LevelMeter(context, stream)
    const show = () => {
      this.level.value = this.meter ? meterValue(this.meter.rms()) : 0
      this.meterFrame = requestAnimationFrame(show)
    }
    show()
  }

  private stopMicrophone(): void {
    cancelAnimationFrame(this.meterFrame)
    this.meter?.dispose()
    this.meter = null
    for (const track of this.stream?.getTracks() ?? []) {
      track.stop()
    }
    this.stream = null
    this.level.value = 0
  }

  private describeMicrophone(): void {
    const listening = !this.stream || this.microphoneSelect.value === LISTEN_ONLY
    this.level.hidden = listening
    this.note.textContent = listening
      ? "You will enter listening only: you hear everyone, nobody hears you. You can turn your microphone on in the room."
      : "Speak: the bar shows what your microphone hears. Others hear you once you enter."
  }

  /** The avatar as others see it: head and hands in the colour, the name tag above. */
  private drawPreview(): void {
    const g = this.preview.getContext("2d")
    if (!g) {
      return
    }
    const {width, height} = this.preview
    const colour = /^#[0-9a-fA-F]{6}$/.test(this.colourInput.value) ? this.colourInput.value : "#888888"
    const name = this.nameInput.value.trim() || "…"
    this.preview.setAttribute("aria-label", `Your avatar: ${name}, in ${colour}`)
    g.clearRect(0, 0, width, height)
    const floor = g.createRadialGradient(width / 2, height * 0.92, 4, width / 2, height * 0.92, width * 0.45)
    floor.addColorStop(0, "rgba(0,0,0,0.28)")
    floor.addColorStop(1, "rgba(0,0,0,0)")
    g.fillStyle = floor
    g.fillRect(0, height * 0.8, width, height * 0.2)
    // Head: a rounded box facing the viewer, with a visor.
    g.fillStyle = colour
    roundedRect(g, width * 0.32, height * 0.3, width * 0.36, height * 0.34, 26)
    g.fill()
    g.fillStyle = "rgba(15,18,24,0.82)"
    roundedRect(g, width * 0.36, height * 0.4, width * 0.28, height * 0.1, 12)
    g.fill()
    // Hands, resting low at either side.
    g.fillStyle = colour
    for (const x of [0.17, 0.83]) {
      g.beginPath()
      g.ellipse(width * x, height * 0.76, width * 0.07, height * 0.055, 0, 0, Math.PI * 2)
      g.fill()
    }
    // The name tag, as drawn over every avatar: name and tag on a dark plate.
    const tag = userTag(this.options.userId)
    g.font = "600 24px system-ui, sans-serif"
    const text = `${name}  ${tag}`
    const plate = Math.min(width - 8, g.measureText(text).width + 24)
    g.fillStyle = "rgba(15,18,24,0.78)"
    roundedRect(g, (width - plate) / 2, height * 0.06, plate, 38, 10)
    g.fill()
    g.fillStyle = "#ffffff"
    g.textAlign = "center"
    g.textBaseline = "middle"
    g.fillText(text, width / 2, height * 0.06 + 19, plate - 12)
  }
}

function roundedRect(g: CanvasRenderingContext2D, x: number, y: number, w: number, h: number, r: number): void {
  g.beginPath()
  g.roundRect(x, y, w, h, r)
}
