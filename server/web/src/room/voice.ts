// Voice: one peer connection to the server's SFU, the visitor's microphone
// out, every other voice in, each spatialized at its speaker's avatar head.
//
// Signaling rides the room channel. The page offers first (its microphone
// line) and gets the answer in the reply; after that only the server offers
// (a listener's tracks are added, parked or re-pointed as people come and go)
// and the page answers, so offers never cross. `voice_tracks` says which user
// speaks on which track (by SDP mid).
//
// Chromium plays a remote track into WebAudio only while it is also attached
// to a media element, so each voice has a muted <audio> beside its graph.

import type {SessionDescription, VoiceTracks} from "@roomscale/protocol"

import {LevelMeter} from "./audioCheck"

/** The DESIGN.md voice parameters: every client places voices the same way. */
export const VOICE_PANNER: PannerOptions = {
  panningModel: "HRTF",
  distanceModel: "inverse",
  refDistance: 1,
  rolloffFactor: 1,
  maxDistance: 25,
}

export type Vec3 = [number, number, number]

/** What voice needs from the room channel. */
export interface VoiceSignaling {
  push<T>(event: string, payload: object): Promise<T>
  on(event: string, handler: (payload: unknown) => void): void
  setMuted(muted: boolean): Promise<void>
}

export type VoiceState = "off" | "starting" | "on" | "failed"

interface RemoteVoice {
  mid: string
  element: HTMLAudioElement
  source: MediaStreamAudioSourceNode
  panner: PannerNode
  analyser: AnalyserNode
  userId: string | null
}

/** A panner with the voice parameters, in any audio context (live or offline). */
export function createVoicePanner(context: BaseAudioContext): PannerNode {
  return new PannerNode(context, VOICE_PANNER)
}

export class Voice {
  state: VoiceState = "off"
  /** Why voice is off or partial, in words a visitor can act on. */
  note: string | null = null
  muted = false
  /** A moderator muted this visitor: the microphone stays off whatever `muted` says. */
  moderatorMuted = false
  private context: AudioContext | null = null
  private peer: RTCPeerConnection | null = null
  private microphone: MediaStreamTrack | null = null
  /** The microphone asked for: a device id ("" the default), or null to listen only. */
  private microphoneChoice: string | null = ""
  private ownLevel: LevelMeter | null = null
  private readonly voices = new Map<string, RemoteVoice>()
  private speakers = new Map<string, string>()
  /** Server offers are answered one at a time, in order. */
  private negotiation: Promise<void> = Promise.resolve()

  constructor(
    private readonly signaling: VoiceSignaling,
    private readonly changed: () => void,
  ) {
    signaling.on("rtc_offer", (payload) => {
      this.negotiation = this.negotiation.then(() => this.answer(payload as SessionDescription))
    })
    signaling.on("voice_tracks", (payload) => {
      this.speakers = new Map((payload as VoiceTracks).tracks.map((t) => [t.mid, t.user_id]))
      for (const voice of this.voices.values()) {
        voice.userId = this.speakers.get(voice.mid) ?? null
      }
      this.changed()
    })
  }

  /**
   * Joins voice with `microphone` (a device id, "" for the browser's default)
   * or listening only (null): others are heard either way. Without an
   * argument, the last choice stands.
   */
  async start(microphone: string | null = this.microphoneChoice): Promise<void> {
    if (this.state === "starting" || this.state === "on") {
      return
    }
    this.microphoneChoice = microphone
    this.state = "starting"
    this.changed()
    // Server offers wait until our own offer is answered.
    let answered!: () => void
    this.negotiation = new Promise<void>((resolve) => (answered = resolve))
    try {
      const context = (this.context ??= new AudioContext())
      await context.resume()
      if (microphone === null) {
        this.microphone = null
        this.note = "Listening only: turn on your microphone to talk."
      } else {
        try {
          const stream = await navigator.mediaDevices.getUserMedia({
            audio: {
              ...(microphone ? {deviceId: {exact: microphone}} : {}),
              echoCancellation: true,
              noiseSuppression: true,
              autoGainControl: true,
              channelCount: 1,
            },
          })
          this.microphone = stream.getAudioTracks()[0] ?? null
          this.note = null
        } catch (error) {
          this.microphone = null
          this.note = `No microphone (${(error as Error).message}): you can listen; allow the microphone in the browser, then turn it on to talk.`
        }
      }
      if (this.microphone) {
        this.microphone.enabled = !this.muted && !this.moderatorMuted
        this.ownLevel = new LevelMeter(context, new MediaStream([this.microphone]))
      }
      const peer = new RTCPeerConnection({iceServers: []})
      this.peer = peer
      peer.addTransceiver(this.microphone ?? "audio", {direction: "sendonly"})
      peer.ontrack = (event) => this.addVoice(event)
      peer.onicecandidate = ({candidate}) => {
        if (candidate?.candidate) {
          this.signaling
            .push("rtc_ice", {candidate: candidate.candidate, sdp_mid: candidate.sdpMid ?? undefined, sdp_mline_index: candidate.sdpMLineIndex ?? undefined})
            .catch((error: Error) => console.warn(`voice: candidate refused: ${error.message}`))
        }
      }
      peer.onconnectionstatechange = () => {
        if (peer.connectionState === "failed") {
          this.fail("the voice connection failed; check that UDP to the server is allowed, then rejoin voice")
        }
      }
      const offer = await peer.createOffer()
      await peer.setLocalDescription(offer)
      const answer = await this.signaling.push<SessionDescription>("rtc_offer", {sdp: offer.sdp ?? ""})
      await peer.setRemoteDescription({type: "answer", sdp: answer.sdp})
      this.state = "on"
    } catch (error) {
      this.fail(`voice could not start: ${(error as Error).message}`)
      throw error
    } finally {
      answered()
      this.changed()
    }
  }

  /** Leaves voice (the room stays). */
  stop(): void {
    if (this.peer) {
      // The server drops our peer now, not when the connection times out,
      // so the others' tracks for us are parked at once.
      this.signaling.push("voice_leave", {}).catch(() => {})
    }
    this.peer?.close()
    this.peer = null
    this.microphone?.stop()
    this.microphone = null
    this.ownLevel?.dispose()
    this.ownLevel = null
    for (const voice of this.voices.values()) {
      disposeVoice(voice)
    }
    this.voices.clear()
    this.negotiation = Promise.resolve()
    this.state = "off"
    this.changed()
  }

  /** After a rejoin the server knows us under a new connection: start voice afresh. */
  async restart(): Promise<void> {
    if (this.state === "off") {
      return
    }
    this.stop()
    await this.start()
  }

  /** Voice again, now with `microphone` (a device id, "" for the default), or listening only (null). */
  async useMicrophone(microphone: string | null): Promise<void> {
    if (this.state !== "off") {
      this.stop()
    }
    await this.start(microphone)
  }

  /** The device id of the microphone in use, if any. */
  microphoneDevice(): string | null {
    return this.microphone?.getSettings().deviceId ?? null
  }

  /** On without a microphone: the visitor hears the room but cannot be heard. */
  get listeningOnly(): boolean {
    return this.state === "on" && this.microphone === null
  }

  /** RMS (0..1) of the visitor's own microphone now; 0 when muted or none. */
  microphoneLevel(): number {
    return this.microphone?.enabled && this.ownLevel ? this.ownLevel.rms() : 0
  }

  async setMuted(muted: boolean): Promise<void> {
    this.muted = muted
    if (this.microphone) {
      // A disabled track sends silence: nothing reaches the others.
      this.microphone.enabled = !muted && !this.moderatorMuted
    }
    this.changed()
    await this.signaling.setMuted(muted)
  }

  /**
   * What presence says of a moderator's mute. The server already stops
   * forwarding this visitor's voice; the microphone goes quiet here too. When
   * a moderator gives the voice back, the server keeps the visitor muted until
   * they unmute themselves, and so does the page.
   */
  setModeratorMuted(moderatorMuted: boolean): void {
    if (this.moderatorMuted === moderatorMuted) {
      return
    }
    this.moderatorMuted = moderatorMuted
    this.muted = true
    if (this.microphone) {
      this.microphone.enabled = false
    }
    this.changed()
  }

  /**
   * Each frame: the listener where the visitor's head is, looking where it
   * looks, and every voice at its speaker's head.
   */
  update(listener: {position: Vec3; forward: Vec3; up: Vec3}, headOf: (userId: string) => Vec3 | null): void {
    const context = this.context
    if (!context || this.voices.size === 0) {
      return
    }
    const l = context.listener
    const t = context.currentTime
    const [px, py, pz] = listener.position
    const [fx, fy, fz] = listener.forward
    const [ux, uy, uz] = listener.up
    if (l.positionX) {
      l.positionX.setValueAtTime(px, t)
      l.positionY.setValueAtTime(py, t)
      l.positionZ.setValueAtTime(pz, t)
      l.forwardX.setValueAtTime(fx, t)
      l.forwardY.setValueAtTime(fy, t)
      l.forwardZ.setValueAtTime(fz, t)
      l.upX.setValueAtTime(ux, t)
      l.upY.setValueAtTime(uy, t)
      l.upZ.setValueAtTime(uz, t)
    } else {
      l.setPosition(px, py, pz)
      l.setOrientation(fx, fy, fz, ux, uy, uz)
    }
    for (const voice of this.voices.values()) {
      const head = voice.userId ? headOf(voice.userId) : null
      if (head) {
        voice.panner.positionX.setValueAtTime(head[0], t)
        voice.panner.positionY.setValueAtTime(head[1], t)
        voice.panner.positionZ.setValueAtTime(head[2], t)
      }
    }
  }

  /** RMS (0..1) of what each speaking user's track carries now, for tests and meters. */
  levels(): Record<string, number> {
    const levels: Record<string, number> = {}
    const samples = new Float32Array(2048)
    for (const voice of this.voices.values()) {
      if (!voice.userId) {
        continue
      }
      voice.analyser.getFloatTimeDomainData(samples)
      let sum = 0
      for (const s of samples) {
        sum += s * s
      }
      levels[voice.userId] = Math.max(levels[voice.userId] ?? 0, Math.sqrt(sum / samples.length))
    }
    return levels
  }

  /**
   * The strongest frequency (Hz) in each speaking user's track now, from its
   * analyser: tests tell which tone came through on whose track.
   */
  peaks(): Record<string, number> {
    const peaks: Record<string, number> = {}
    for (const voice of this.voices.values()) {
      if (!voice.userId) {
        continue
      }
      const bins = new Float32Array(voice.analyser.frequencyBinCount)
      voice.analyser.getFloatFrequencyData(bins)
      const hzPerBin = voice.analyser.context.sampleRate / voice.analyser.fftSize
      let best = -1
      // Voices live between 50 Hz and 4 kHz.
      for (let i = Math.ceil(50 / hzPerBin); i < Math.min(bins.length - 1, 4000 / hzPerBin); i++) {
        if (best < 0 || bins[i] > bins[best]) {
          best = i
        }
      }
      if (best > 0 && Number.isFinite(bins[best])) {
        // Parabolic interpolation between the neighbouring bins (in dB).
        const [a, b, c] = [bins[best - 1], bins[best], bins[best + 1]]
        const shift = a - 2 * b + c === 0 ? 0 : (0.5 * (a - c)) / (a - 2 * b + c)
        peaks[voice.userId] = (best + shift) * hzPerBin
      }
    }
    return peaks
  }

  /** Which user speaks on which track, as the server said. */
  tracks(): Record<string, string> {
    return Object.fromEntries(this.speakers)
  }

  async stats(): Promise<RTCStatsReport | null> {
    return this.peer ? this.peer.getStats() : null
  }

  private async answer(offer: SessionDescription): Promise<void> {
    const peer = this.peer
    if (!peer) {
      return
    }
    try {
      await peer.setRemoteDescription({type: "offer", sdp: offer.sdp})
      const answer = await peer.createAnswer()
      await peer.setLocalDescription(answer)
      await this.signaling.push("rtc_answer", {sdp: answer.sdp ?? ""})
    } catch (error) {
      console.warn(`voice: renegotiation failed (${(error as Error).message}); restarting voice`)
      await this.restart().catch(() => {})
    }
  }

  private addVoice(event: RTCTrackEvent): void {
    const context = this.context
    const mid = event.transceiver.mid
    if (!context || !mid || this.voices.has(mid)) {
      return
    }
    const stream = new MediaStream([event.track])
    const element = new Audio()
    element.muted = true
    element.srcObject = stream
    element.play().catch(() => {})
    const source = context.createMediaStreamSource(stream)
    const analyser = new AnalyserNode(context, {fftSize: 2048})
    const panner = createVoicePanner(context)
    source.connect(analyser)
    source.connect(panner).connect(context.destination)
    const voice = {mid, element, source, panner, analyser, userId: this.speakers.get(mid) ?? null}
    this.voices.set(mid, voice)
    event.track.addEventListener("ended", () => {
      disposeVoice(voice)
      this.voices.delete(mid)
    })
    this.changed()
  }

  private fail(reason: string): void {
    this.stop()
    this.state = "failed"
    this.note = reason
    this.changed()
  }
}

function disposeVoice(voice: RemoteVoice): void {
  voice.source.disconnect()
  voice.panner.disconnect()
  voice.element.srcObject = null
}

/**
 * Renders a 440 Hz voice through the voice panner at `position` (listener at
 * the origin looking down -Z) and returns the left and right RMS: the
 * spatialization check, with the very panner settings voices use.
 */
export async function renderSpatialProbe(position: Vec3): Promise<{left: number; right: number}> {
  const rate = 48000
  const context = new OfflineAudioContext(2, rate / 2, rate)
  const oscillator = new OscillatorNode(context, {frequency: 440})
  const panner = createVoicePanner(context)
  panner.positionX.value = position[0]
  panner.positionY.value = position[1]
  panner.positionZ.value = position[2]
  oscillator.connect(panner).connect(context.destination)
  oscillator.start()
  const rendered = await context.startRendering()
  const rms = (channel: Float32Array) => {
    let sum = 0
    // Skip the first 50 ms while HRTF convolution settles.
    const from = Math.floor(rate * 0.05)
    for (let i = from; i < channel.length; i++) {
      sum += channel[i] * channel[i]
    }
    return Math.sqrt(sum / (channel.length - from))
  }
  return {left: rms(rendered.getChannelData(0)), right: rms(rendered.getChannelData(1))}
}
