// Captures the frames the official phoenix.js client puts on the wire, and checks
// that it decodes the frames our server sends, into protocol/vectors/frames.json.
//
//   node protocol/vectors/phoenix-frames.mjs          check frames.json is current
//   node protocol/vectors/phoenix-frames.mjs --write  regenerate it
//
// Client frames are produced by a real `Socket` and `Channel` whose transport
// records what they send. Server frames are laid out by hand from the table in
// protocol/src/frame.rs, and each is decoded by phoenix.js's own serializer
// before it is written, so a layout phoenix.js would misread never becomes a
// vector; there is one of every message the server sends (ServerEvent in
// protocol/src/server_event.rs). The Rust tests (protocol/tests/vectors.rs)
// decode every frame, type it, and re-encode it byte for byte.

import {readFileSync, writeFileSync} from "node:fs"
import {fileURLToPath} from "node:url"
import {deepStrictEqual, strictEqual} from "node:assert"
import {Socket, Serializer} from "phoenix"

const OUT = fileURLToPath(new URL("./frames.json", import.meta.url))
const POSES = fileURLToPath(new URL("./poses.json", import.meta.url))
const ROOM = "room:6f1c2a7e-4b3d-4c5e-9f10-2a3b4c5d6e7f"
const phoenixVersion = JSON.parse(readFileSync(fileURLToPath(new URL("../../node_modules/phoenix/package.json", import.meta.url)), "utf8")).version

const hex = (buffer) => Buffer.from(new Uint8Array(buffer)).toString("hex")
const bytes = (...values) => Uint8Array.from(values).buffer

/** A WebSocket stand-in that opens at once and records every frame sent. */
class RecordingTransport {
  static sent = []
  constructor(url){
    this.url = url
    RecordingTransport.current = this
    this.readyState = 0
    this.bufferedAmount = 0
    queueMicrotask(() => { this.readyState = 1; this.onopen?.() })
  }
  send(data){ RecordingTransport.sent.push(data) }
  close(){ this.readyState = 3 }
}

async function captureClientFrames(){
  const socket = new Socket("ws://localhost:4000/socket", {
    transport: RecordingTransport,
    params: {token: "t"},
    heartbeatIntervalMs: 60_000,
  })
  socket.connect()
  await new Promise(resolve => setTimeout(resolve, 10))
  const channel = socket.channel(ROOM, () => ({
    protocol_version: 1,
    name: "Ada <b>",
    colour: "#3a7bd5",
    client_kind: "web",
    last_seen_id: 41,
  }))
  channel.join()
  await new Promise(resolve => setTimeout(resolve, 10))
  // Acknowledge the join as the server would, so the channel sends its pushes.
  const [joinRef, ref] = JSON.parse(RecordingTransport.sent[0])
  RecordingTransport.current.onmessage({data: JSON.stringify([joinRef, ref, ROOM, "phx_reply", {status: "ok", response: {}}])})
  channel.push("chat", {text: "héllo, \"room\" 👋"})
  channel.push("object_set", {object_id: "ball-1", state: {kind: "ball", colour: "#22aa44", position: [0.5, 1, -2.25], orientation: [0, 0, 0, 1]}})
  channel.push("pose", bytes(...Array.from({length: 31}, (_, i) => i * 7 % 256)))
  channel.push("rtc_ice", {candidate: "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host", sdp_mid: "0", sdp_mline_index: 0})
  socket.sendHeartbeat()
  channel.leave()
  await new Promise(resolve => setTimeout(resolve, 10))
  socket.disconnect()

  const names = ["join", "chat", "object_set", "pose", "rtc_ice", "heartbeat", "leave"]
  strictEqual(RecordingTransport.sent.length, names.length, "phoenix.js sent an unexpected number of frames")
  return RecordingTransport.sent.map((frame, i) => {
    const name = names[i]
    if(typeof frame === "string"){
      const [join_ref, ref, topic, event, payload] = JSON.parse(frame)
      return {name, direction: "to_server", encoding: "text", frame, message: {join_ref, ref, topic, event, payload}}
    }
    const decoded = decodeClientPush(frame)
    return {name, direction: "to_server", encoding: "binary", frame_hex: hex(frame), message: decoded}
  })
}

/** Independent reading of a client push, to state the vector's meaning. */
function decodeClientPush(buffer){
  const view = new Uint8Array(buffer)
  strictEqual(view[0], 0, "client binary frames are pushes")
  const sizes = [view[1], view[2], view[3], view[4]]
  let offset = 5
  const [join_ref, ref, topic, event] = sizes.map(size => {
    const text = new TextDecoder().decode(view.slice(offset, offset + size))
    offset += size
    return text
  })
  return {join_ref, ref, topic, event, payload_hex: hex(view.slice(offset))}
}

/** Server frames laid out as protocol/src/frame.rs documents. */
function serverFrame(kind, fields, payload){
  const encoded = fields.map(f => new TextEncoder().encode(f))
  const total = 1 + encoded.length + encoded.reduce((n, f) => n + f.length, 0) + payload.length
  const out = new Uint8Array(total)
  out[0] = kind
  encoded.forEach((f, i) => { out[1 + i] = f.length })
  let offset = 1 + encoded.length
  for(const f of encoded){ out.set(f, offset); offset += f.length }
  out.set(payload, offset)
  return out.buffer
}

function decodeWithPhoenix(frame){
  let decoded
  Serializer.decode(frame, message => { decoded = message })
  return decoded
}

function serverFrames(){
  const meta = {phx_ref: "F1", name: "Bo", colour: "#ff8800", client_kind: "quest", slot: 4, joined_at: 1700000000000, speaking: false, muted: false}
  const chat = (id, text) => ({id, user_id: "u-2", name: "Bo", sent_at: 1700000000000 + id, body: {type: "chat", text}})
  const governance = {owner_user_id: "u-1", moderators: ["u-2"], locked: false}
  const text = [
    ["join_reply", ["1", "1", ROOM, "phx_reply", {status: "ok", response: {
      user_id: "u-1", slot: 3, protocol_version: 1,
      room: {id: ROOM.slice("room:".length), name: "Lobby", description: "Where everyone starts"},
      events: [chat(41, "hi")], truncated: true, pose_rate_hz: 30, governance,
    }}]],
    ["error_reply", ["1", "2", ROOM, "phx_reply", {status: "error", response: {code: "unknown_event", reason: "unknown event \"dance\""}}]],
    ["stored_reply", ["1", "3", ROOM, "phx_reply", {status: "ok", response: {id: 42}}]],
    ["history_reply", ["1", "4", ROOM, "phx_reply", {status: "ok", response: {events: [chat(39, "older"), chat(40, "old")], more: true}}]],
    ["rtc_answer_reply", ["1", "5", ROOM, "phx_reply", {status: "ok", response: {sdp: "v=0\r\n"}}]],
    ["presence_state", ["1", null, ROOM, "presence_state", {"u-2": {metas: [{...meta, muted: true, moderator_muted: true, role: "moderator"}]}}]],
    ["presence_diff", [null, null, ROOM, "presence_diff", {joins: {"u-2": {metas: [meta]}}, leaves: {}}]],
    ["event", [null, null, ROOM, "event", chat(43, "héllo 👋")]],
    ["speaking", [null, null, ROOM, "speaking", {user_id: "u-2", speaking: true}]],
    ["moderation", [null, null, ROOM, "moderation", {act: {action: "mute", user_id: "u-3", muted: true}, by_user_id: "u-1", by_name: "Ada", target_name: "Cy", governance}]],
    ["rtc_offer", ["1", null, ROOM, "rtc_offer", {sdp: "v=0\r\n"}]],
    ["rtc_ice", ["1", null, ROOM, "rtc_ice", {candidate: "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host", sdp_mid: "0", sdp_mline_index: 0}]],
    ["voice_tracks", ["1", null, ROOM, "voice_tracks", {tracks: [{mid: "1", user_id: "u-2", slot: 4}]}]],
    ["heartbeat_reply", [null, "9", "phoenix", "phx_reply", {status: "ok", response: {}}]],
    ["phx_error", ["1", "1", ROOM, "phx_error", {}]],
    ["phx_close", ["1", "1", ROOM, "phx_close", {code: "removed", reason: "a moderator removed you from this room; you may come back in 10 minutes"}]],
  ].map(([name, array]) => {
    const frame = JSON.stringify(array)
    const decoded = decodeWithPhoenix(frame)
    const [join_ref, ref, topic, event, payload] = array
    deepStrictEqual(decoded, {join_ref, ref, topic, event, payload})
    return {name, direction: "to_client", encoding: "text", frame, message: decoded}
  })

  // A real batch (protocol/vectors/poses.json): the server sends nothing else binary but empty replies.
  const poses = Uint8Array.from(Buffer.from(JSON.parse(readFileSync(POSES, "utf8")).batch.hex, "hex"))
  const emptyBatch = Uint8Array.of(1, 0, 0, 0, 7, 0, 0, 0)
  const binary = [
    ["poses_broadcast", "broadcast", 2, [ROOM, "poses"], poses, m => m],
    ["binary_reply", "reply", 1, ["1", "17", ROOM, "ok"], Uint8Array.of(), m => m],
    ["binary_push", "push", 0, ["1", ROOM, "poses"], emptyBatch, m => m],
  ].map(([name, kind, kindByte, fields, payload]) => {
    const frame = serverFrame(kindByte, fields, payload)
    const decoded = decodeWithPhoenix(frame)
    const message = kind === "reply"
      ? {join_ref: decoded.join_ref, ref: decoded.ref, topic: decoded.topic, event: decoded.event,
        status: decoded.payload.status, payload_hex: hex(decoded.payload.response)}
      : {join_ref: decoded.join_ref, ref: decoded.ref, topic: decoded.topic, event: decoded.event,
        payload_hex: hex(decoded.payload)}
    // phoenix.js must read back exactly what we laid out.
    strictEqual(message.topic, kind === "broadcast" ? fields[0] : fields[kind === "push" ? 1 : 2])
    strictEqual(message.payload_hex, hex(payload))
    return {name, direction: "to_client", encoding: "binary", kind, frame_hex: hex(frame), message}
  })
  return [...text, ...binary]
}

const vectors = {
  comment: "Generated by protocol/vectors/phoenix-frames.mjs from the phoenix npm client; do not edit.",
  phoenix_version: phoenixVersion,
  frames: [...await captureClientFrames(), ...serverFrames()],
}
const json = JSON.stringify(vectors, null, 2) + "\n"

if(process.argv.includes("--write")){
  writeFileSync(OUT, json)
  console.log(`wrote ${vectors.frames.length} frames to ${OUT}`)
} else {
  const committed = readFileSync(OUT, "utf8")
  if(committed !== json){
    console.error("protocol/vectors/frames.json differs from what phoenix.js produces now: run `node protocol/vectors/phoenix-frames.mjs --write` and review the diff")
    process.exit(1)
  }
  console.log(`ok: ${vectors.frames.length} phoenix.js frames match protocol/vectors/frames.json`)
}
