// names.ts against protocol/vectors/names.json, which protocol/src/names.rs
// generated: the per-user tag, name normalisation (NFC, Rust's trim, no
// control or invisible formatting characters) and the chat text rules.
//
//   node --test server/web/test/

import assert from "node:assert/strict"
import {readFileSync} from "node:fs"
import {join} from "node:path"
import {test} from "node:test"

import {ROOT, loadTs} from "./load.mjs"

const names = await loadTs("src/room/names.ts")
const vectors = JSON.parse(readFileSync(join(ROOT, "protocol", "vectors", "names.json"), "utf8"))

/** A string for a test's title, invisible and control characters spelled out (a bidi override would reorder the report). */
const show = (text) => JSON.stringify(text).replace(/[^\x20-\x7e]/gu, (c) => `\\u{${c.codePointAt(0).toString(16)}}`)

test("the vectors file has tags and names, refused ones included", () => {
  assert.ok(vectors.tags.length >= 4, "too few tag vectors")
  assert.ok(vectors.names.some((v) => v.error), "no refused name")
  assert.ok(vectors.names.some((v) => !v.error), "no accepted name")
})

for (const vector of vectors.tags) {
  test(`the tag of ${show(vector.user_id)} is ${vector.tag}`, () => {
    assert.equal(names.userTag(vector.user_id), vector.tag)
  })
}

for (const vector of vectors.names) {
  test(`the name ${show(vector.input)} ${vector.error ? "is refused" : `becomes ${show(vector.name)}`}`, () => {
    const checked = names.normalizeName(vector.input)
    if (vector.error) {
      assert.equal(checked.ok, false, `accepted as ${JSON.stringify(checked.name)}`)
      assert.match(checked.reason, /blank|control|characters/)
    } else {
      assert.deepEqual(checked, {ok: true, name: vector.name})
    }
  })
}

test("names follow Rust's trim and count characters, not UTF-16 units", () => {
  // U+FEFF is not white space to Rust: it stays, and is refused, where JavaScript's trim would drop it.
  assert.equal(names.normalizeName("\uFEFFAda").ok, false)
  assert.deepEqual(names.normalizeName("\u3000Ada\u0085"), {ok: true, name: "Ada"})
  assert.equal(names.normalizeName("\u{1F600}".repeat(40)).ok, true, "40 emoji are 40 characters")
  assert.equal(names.normalizeName("a".repeat(41)).ok, false)
  assert.match(names.normalizeName("Ada\u202Eevil").reason, /U\+202E/)
  assert.deepEqual(names.normalizeName("\u{1F469}\u200D\u{1F4BB} Grace"), {ok: true, name: "\u{1F469}\u200D\u{1F4BB} Grace"})
})

test("tags differ for ids that differ by one character and use Crockford's alphabet", () => {
  const a = names.userTag("q8Jx3mZ0cT5aKp2Lr9vW1g")
  assert.notEqual(a, names.userTag("q8Jx3mZ0cT5aKp2Lr9vW1h"))
  assert.match(a, /^[0-9A-HJKMNP-TV-Z]{4}$/)
  assert.equal(names.nameWithTag("Ada", "bob"), "Ada (D86M)")
})

test("chat text keeps line breaks and tabs but not hidden controls", () => {
  assert.equal(names.chatTextProblem("hello\nthere\tfriend"), null)
  assert.match(names.chatTextProblem("rm -rf \u202Egnp.exe"), /U\+202E/)
  assert.match(names.chatTextProblem("bell\u0007"), /U\+0007/)
  assert.match(names.chatTextProblem("   "), /blank/)
  assert.match(names.chatTextProblem("x".repeat(2001)), /at most 2000/)
})
