// The visitor's display name and avatar colour: kept in localStorage so they
// survive reloads, with defaults derived from the user id until the visitor
// chooses. Validation mirrors the server's (protocol/src/events.rs) so a bad
// value is explained here instead of being refused there.

import {MAX_NAME_CHARS} from "@roomscale/protocol"

export interface Profile {
  name: string
  /** `#rrggbb` */
  colour: string
}

const NAME_KEY = "roomscale.name"
const COLOUR_KEY = "roomscale.colour"

export function loadProfile(userId: string): Profile {
  const name = readStorage(NAME_KEY)
  const colour = readStorage(COLOUR_KEY)
  return {
    name: name !== null && validateName(name) === null ? name : `Guest ${userId.slice(-4)}`,
    colour: colour !== null && validateColour(colour) === null ? colour : colourFor(userId),
  }
}

export function saveProfile(profile: Profile): void {
  writeStorage(NAME_KEY, profile.name)
  writeStorage(COLOUR_KEY, profile.colour)
}

/** Why `name` would be refused, or null when it is fine. */
export function validateName(name: string): string | null {
  if (name.trim() === "") {
    return "Your name must not be blank."
  }
  const chars = [...name].length
  if (chars > MAX_NAME_CHARS) {
    return `Your name is ${chars} characters; at most ${MAX_NAME_CHARS} are allowed.`
  }
  // Rust's char::is_control: the C0 and C1 control characters.
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) {
    return "Your name must not contain control characters."
  }
  return null
}

export function validateColour(colour: string): string | null {
  return /^#[0-9a-fA-F]{6}$/.test(colour) ? null : `A colour looks like #3a7bd5, not "${colour.slice(0, 16)}".`
}

/** A pleasant, stable colour for a user id: its hash picks the hue. */
export function colourFor(userId: string): string {
  let hash = 2166136261
  for (const char of userId) {
    hash = Math.imul(hash ^ char.codePointAt(0)!, 16777619) >>> 0
  }
  return hslToHex(hash % 360, 0.62, 0.55)
}

function hslToHex(hue: number, saturation: number, lightness: number): string {
  const amplitude = saturation * Math.min(lightness, 1 - lightness)
  const channel = (n: number) => {
    const k = (n + hue / 30) % 12
    const value = lightness - amplitude * Math.max(-1, Math.min(k - 3, 9 - k, 1))
    return Math.round(value * 255).toString(16).padStart(2, "0")
  }
  return `#${channel(0)}${channel(8)}${channel(4)}`
}

// Storage can be unavailable (private modes, disabled cookies): the room still
// works, the profile just is not remembered.
function readStorage(key: string): string | null {
  try {
    return window.localStorage.getItem(key)
  } catch {
    return null
  }
}

function writeStorage(key: string, value: string): void {
  try {
    window.localStorage.setItem(key, value)
  } catch {
    // Not remembered; see above.
  }
}
