// WAV files for voice tests: tones to use as microphones, and what a
// native client's `--speaker-wav` wrote, read back and measured.

import {readFileSync, writeFileSync} from "node:fs"

const RATE = 48000

/** A mono 48 kHz 16-bit WAV holding `seconds` of a sine at `hz`. */
export function writeTone(path, hz, seconds = 4, amplitude = 0.4) {
  const samples = new Float32Array(RATE * seconds)
  for (let i = 0; i < samples.length; i++) {
    samples[i] = Math.sin((2 * Math.PI * hz * i) / RATE) * amplitude
  }
  writeWav(path, samples, 1)
}

/** Writes interleaved float samples as 16-bit PCM at 48 kHz. */
export function writeWav(path, samples, channels) {
  const data = Buffer.alloc(samples.length * 2)
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]))
    data.writeInt16LE(Math.round(s * 32767), i * 2)
  }
  const header = Buffer.alloc(44)
  header.write("RIFF", 0)
  header.writeUInt32LE(36 + data.length, 4)
  header.write("WAVEfmt ", 8)
  header.writeUInt32LE(16, 16)
  header.writeUInt16LE(1, 20)
  header.writeUInt16LE(channels, 22)
  header.writeUInt32LE(RATE, 24)
  header.writeUInt32LE(RATE * 2 * channels, 28)
  header.writeUInt16LE(2 * channels, 32)
  header.writeUInt16LE(16, 34)
  header.write("data", 36)
  header.writeUInt32LE(data.length, 40)
  writeFileSync(path, Buffer.concat([header, data]))
}

/** A 16-bit PCM WAV as {rate, channels, mono: Float32Array (channels averaged)}. */
export function readWav(path) {
  const bytes = readFileSync(path)
  if (bytes.toString("ascii", 0, 4) !== "RIFF" || bytes.toString("ascii", 8, 12) !== "WAVE") {
    throw new Error(`${path} is not a WAV file`)
  }
  let at = 12
  let rate = 0
  let channels = 0
  while (at + 8 <= bytes.length) {
    const id = bytes.toString("ascii", at, at + 4)
    const size = bytes.readUInt32LE(at + 4)
    if (id === "fmt ") {
      channels = bytes.readUInt16LE(at + 10)
      rate = bytes.readUInt32LE(at + 12)
      const bits = bytes.readUInt16LE(at + 22)
      if (bits !== 16) {
        throw new Error(`${path}: ${bits}-bit samples; expected 16`)
      }
    } else if (id === "data") {
      // A file still being written says 0 or too much: take what is there.
      const end = Math.min(bytes.length, size === 0 ? bytes.length : at + 8 + size)
      const frames = Math.floor((end - at - 8) / (2 * channels))
      const mono = new Float32Array(frames)
      for (let f = 0; f < frames; f++) {
        let sum = 0
        for (let c = 0; c < channels; c++) {
          sum += bytes.readInt16LE(at + 8 + (f * channels + c) * 2) / 32768
        }
        mono[f] = sum / channels
      }
      return {rate, channels, mono}
    }
    at += 8 + size + (size % 2)
  }
  throw new Error(`${path} has no data chunk`)
}

/** Amplitude of `hz` in `samples` (Goertzel, normalised so a sine of amplitude A gives A). */
export function toneAmplitude(samples, hz, rate = RATE) {
  const w = (2 * Math.PI * hz) / rate
  const c = 2 * Math.cos(w)
  let s1 = 0
  let s2 = 0
  for (const x of samples) {
    const s0 = x + c * s1 - s2
    s2 = s1
    s1 = s0
  }
  return (2 * Math.sqrt(Math.max(0, s1 * s1 + s2 * s2 - c * s1 * s2))) / samples.length
}

/** The strongest frequency between `from` and `to` Hz, in `step` Hz steps. */
export function peakFrequency(samples, {from = 100, to = 2000, step = 5, rate = RATE} = {}) {
  let best = from
  let bestAmplitude = -1
  for (let hz = from; hz <= to; hz += step) {
    const amplitude = toneAmplitude(samples, hz, rate)
    if (amplitude > bestAmplitude) {
      best = hz
      bestAmplitude = amplitude
    }
  }
  return best
}
