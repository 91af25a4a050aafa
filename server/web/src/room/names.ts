// Text people see, by the rules of protocol/src/names.rs: display names
// normalised (NFC, trimmed, no control or invisible formatting characters),
// chat text without hidden controls, and the four-character tag shown beside
// every name so that two people with the same name never look the same.
// `test/names.test.mjs` checks this port against protocol/vectors/names.json.

import {MAX_CHAT_CHARS, MAX_NAME_CHARS} from "@roomscale/protocol"

/** The zero-width joiner: a format character, but emoji sequences need it. */
const ZERO_WIDTH_JOINER = 0x200d

/** Unicode's format characters (Cf) and the line and paragraph separators, as inclusive ranges. */
const INVISIBLE_RANGES: ReadonlyArray<readonly [number, number]> = [
  [0x00ad, 0x00ad],
  [0x0600, 0x0605],
  [0x061c, 0x061c],
  [0x06dd, 0x06dd],
  [0x070f, 0x070f],
  [0x0890, 0x0891],
  [0x08e2, 0x08e2],
  [0x180e, 0x180e],
  [0x200b, 0x200f],
  [0x2028, 0x202e],
  [0x2060, 0x2064],
  [0x2066, 0x206f],
  [0xfeff, 0xfeff],
  [0xfff9, 0xfffb],
  [0x110bd, 0x110bd],
  [0x110cd, 0x110cd],
  [0x13430, 0x1343f],
  [0x1bca0, 0x1bca3],
  [0x1d173, 0x1d17a],
  [0xe0001, 0xe0001],
  [0xe0020, 0xe007f],
]

/**
 * Rust's `str::trim` removes characters with the Unicode White_Space property;
 * JavaScript's `trim` also removes U+FEFF (which Rust keeps, and then refuses)
 * and keeps U+0085. This is Rust's set, so both sides agree on every name.
 */
const EDGE_WHITE_SPACE = /^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/g

/** True for invisible characters that change how the text around them is shown (the joiner excepted). */
export function isInvisibleControl(codePoint: number): boolean {
  return codePoint !== ZERO_WIDTH_JOINER && INVISIBLE_RANGES.some(([from, to]) => codePoint >= from && codePoint <= to)
}

/** Rust's `char::is_control`: the C0 and C1 control characters. */
function isControl(codePoint: number): boolean {
  return codePoint <= 0x1f || (codePoint >= 0x7f && codePoint <= 0x9f)
}

function codePointLabel(codePoint: number): string {
  return `U+${codePoint.toString(16).toUpperCase().padStart(4, "0")}`
}

export type NameCheck = {ok: true; name: string} | {ok: false; reason: string}

/** A display name as the server stores and shows it, or why it would be refused. */
export function normalizeName(raw: string): NameCheck {
  const name = raw.normalize("NFC").replace(EDGE_WHITE_SPACE, "")
  if (name === "") {
    return {ok: false, reason: "Your name must not be blank."}
  }
  const codePoints = [...name].map((char) => char.codePointAt(0)!)
  if (codePoints.length > MAX_NAME_CHARS) {
    return {ok: false, reason: `Your name is ${codePoints.length} characters; at most ${MAX_NAME_CHARS} are allowed.`}
  }
  const bad = codePoints.find((c) => isControl(c) || isInvisibleControl(c))
  if (bad !== undefined) {
    return {
      ok: false,
      reason: `Your name must not contain control or invisible formatting characters (it has ${codePointLabel(bad)}); remove it and save again.`,
    }
  }
  return {ok: true, name}
}

/** Why chat `text` would be refused, or null when the server will take it. */
export function chatTextProblem(text: string): string | null {
  if (text.trim() === "") {
    return "A message must not be blank."
  }
  const codePoints = [...text].map((char) => char.codePointAt(0)!)
  if (codePoints.length > MAX_CHAT_CHARS) {
    return `The message is ${codePoints.length} characters; at most ${MAX_CHAT_CHARS} are allowed.`
  }
  const bad = codePoints.find((c) => (isControl(c) && c !== 0x0a && c !== 0x09) || isInvisibleControl(c))
  if (bad !== undefined) {
    return `The message contains an invisible control character (${codePointLabel(bad)}); remove it and send again.`
  }
  return null
}

/** Crockford's base32 alphabet: no I, L, O or U, so a tag reads aloud cleanly. */
const TAG_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
const utf8 = new TextEncoder()

/**
 * The four-character tag shown beside a user's name: 20 bits of the FNV-1a
 * hash of the (server-minted) user id in Crockford base32, as `user_tag` in
 * protocol/src/names.rs computes it.
 */
export function userTag(userId: string): string {
  let hash = 0x811c9dc5
  for (const byte of utf8.encode(userId)) {
    hash = Math.imul(hash ^ byte, 0x01000193) >>> 0
  }
  let tag = ""
  for (let i = 0; i < 4; i++) {
    tag += TAG_ALPHABET[(hash >>> (15 - 5 * i)) & 31]
  }
  return tag
}

/** A name with its tag, as lines in the room's log show people: `Ada (YWNP)`. */
export function nameWithTag(name: string, userId: string): string {
  return `${name} (${userTag(userId)})`
}
