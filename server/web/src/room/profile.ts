// The visitor's display name and avatar colour: kept in localStorage so they
// survive reloads, with defaults derived from the user id until the visitor
// chooses. Validation follows the server's (protocol/src/names.rs) so a bad
// value is explained here instead of being refused there.

import {normalizeName} from "./names"

export interface Profile {
  name: string
  /** `#rrggbb` */
  colour: string
}

const NAME_KEY = "roomscale.name"
const COLOUR_KEY = "roomscale.colour"

export function loadProfile(userId: string): Profile {
  const stored = readStorage(NAME_KEY)
  const name = stored === null ? null : normalizeName(stored)
  const colour = readStorage(COLOUR_KEY)
  return {
    name: name?.ok ? name.name : `Guest ${userId.slice(-4)}`,
    colour: colour !== null && validateColour(colour) === null ? colour : colourFor(userId),
  }
}

export function saveProfile(profile: Profile): void {
  writeStorage(NAME_KEY, profile.name)
  writeStorage(COLOUR_KEY, profile.colour)
}

/** Why `name` would be refused, or null when it is fine (the rules of protocol/src/names.rs). */
export function validateName(name: string): string | null {
  const checked = normalizeName(name)
  return checked.ok ? null : checked.reason
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
