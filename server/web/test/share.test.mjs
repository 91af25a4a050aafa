// share.ts: the roomscale:// link the room page offers for the native app,
// as app/src/link.rs expects it (http only on loopback or with insecure=1).
//
//   node --test server/web/test/

import assert from "node:assert/strict"
import {test} from "node:test"

import {loadTs} from "./load.mjs"

const {appLink} = await loadTs("src/room/share.ts")
const page = (url) => {
  const {protocol, host, hostname, pathname} = new URL(url)
  return {protocol, host, hostname, pathname}
}
const ROOM = "/rooms/0b6f5b9e-6a43-4f0c-9d5e-1f2a3b4c5d6e"

test("an https page gives the plain app link with its host and port", () => {
  assert.equal(appLink(page(`https://rooms.example.org${ROOM}`)), `roomscale://rooms.example.org${ROOM}`)
  assert.equal(appLink(page(`https://rooms.example.org:8443${ROOM}`)), `roomscale://rooms.example.org:8443${ROOM}`)
})

test("plain http on loopback needs no flag", () => {
  for (const host of ["localhost:4000", "room.localhost:4000", "127.0.0.1:4000", "127.1.2.3", "[::1]:4000"]) {
    assert.equal(appLink(page(`http://${host}${ROOM}`)), `roomscale://${host}${ROOM}`, host)
  }
})

test("plain http anywhere else says so with insecure=1", () => {
  assert.equal(appLink(page(`http://192.168.1.20:4000${ROOM}`)), `roomscale://192.168.1.20:4000${ROOM}?insecure=1`)
  assert.equal(appLink(page(`http://rooms.lan${ROOM}`)), `roomscale://rooms.lan${ROOM}?insecure=1`)
  // A name that only starts like loopback is not loopback.
  assert.equal(appLink(page(`http://127.example.org${ROOM}`)), `roomscale://127.example.org${ROOM}?insecure=1`)
})
