// Checking sound before and during a visit: the microphones the browser
// offers, a live level for one of them, and a short test sound for the
// speakers. The lobby uses all three; voice uses the level meter for the
// bar's microphone meter.

/** The RMS level of a stream, read on demand from an analyser that goes nowhere (nothing is played back). */
export class LevelMeter {
  private readonly source: MediaStreamAudioSourceNode
  private readonly analyser: AnalyserNode
  private readonly samples = new Float32Array(1024)

  constructor(context: AudioContext, stream: MediaStream) {
    this.source = context.createMediaStreamSource(stream)
    this.analyser = new AnalyserNode(context, {fftSize: 1024})
    this.source.connect(this.analyser)
  }

  /** 0 (silence) .. 1 (full scale). */
  rms(): number {
    this.analyser.getFloatTimeDomainData(this.samples)
    let sum = 0
    for (const s of this.samples) {
      sum += s * s
    }
    return Math.sqrt(sum / this.samples.length)
  }

  dispose(): void {
    this.source.disconnect()
  }
}

/** A level meter's value for an RMS: speech sits around 0.02..0.2, so the scale is logarithmic (-60..0 dBFS -> 0..1). */
export function meterValue(rms: number): number {
  if (rms <= 0) {
    return 0
  }
  return Math.max(0, Math.min(1, (20 * Math.log10(rms) + 60) / 60))
}

export interface Microphone {
  deviceId: string
  label: string
}

/**
 * The microphones the browser lists. Their names are only known once the
 * visitor allowed one; before that they are numbered.
 */
export async function listMicrophones(): Promise<Microphone[]> {
  if (!navigator.mediaDevices?.enumerateDevices) {
    return []
  }
  const devices = await navigator.mediaDevices.enumerateDevices()
  return devices
    .filter((device) => device.kind === "audioinput" && device.deviceId !== "")
    .map((device, index) => ({deviceId: device.deviceId, label: device.label || `Microphone ${index + 1}`}))
}

/** The microphone `deviceId` ("" the default), echo-cancelled like voice uses it. */
export async function openMicrophone(deviceId: string): Promise<MediaStream> {
  if (!navigator.mediaDevices?.getUserMedia) {
    throw new Error("this browser offers no microphone on this page (it needs https or localhost)")
  }
  return navigator.mediaDevices.getUserMedia({
    audio: {...(deviceId ? {deviceId: {exact: deviceId}} : {}), echoCancellation: true, noiseSuppression: true, autoGainControl: true},
  })
}

/** Why the microphone could not be had, in words a visitor can act on. */
export function microphoneProblem(error: unknown): string {
  const name = (error as {name?: string}).name
  if (name === "NotAllowedError") {
    return "The browser did not allow the microphone. Allow it in the address bar's site settings, or enter listening only."
  }
  if (name === "NotFoundError" || name === "OverconstrainedError") {
    return "No microphone was found. Plug one in and try again, or enter listening only."
  }
  if (name === "NotReadableError") {
    return "The microphone is in use by another program. Close it and try again, or enter listening only."
  }
  return `The microphone could not be opened (${(error as Error).message ?? error}); you can enter listening only.`
}

/**
 * Plays a short two-note chime (about 0.6 s) so a visitor can check that
 * speakers or headphones work; resolves when it has played.
 */
export async function playTestSound(context: AudioContext): Promise<void> {
  await context.resume()
  const start = context.currentTime + 0.02
  const notes: Array<[number, number]> = [
    [660, 0],
    [880, 0.25],
  ]
  for (const [frequency, offset] of notes) {
    const oscillator = new OscillatorNode(context, {frequency, type: "sine"})
    const gain = new GainNode(context, {gain: 0})
    gain.gain.setValueAtTime(0, start + offset)
    gain.gain.linearRampToValueAtTime(0.25, start + offset + 0.02)
    gain.gain.exponentialRampToValueAtTime(0.001, start + offset + 0.35)
    oscillator.connect(gain).connect(context.destination)
    oscillator.start(start + offset)
    oscillator.stop(start + offset + 0.36)
  }
  await new Promise((resolve) => setTimeout(resolve, 650))
}
