// What this client uses of phoenix.js beyond @types/phoenix (which describes 1.6):
// sending a binary push without a ref, so the server sends no reply for each of
// the 30 poses a second (phoenix.js 1.8 `Socket.push(data, channel)`).

import type {Channel, Socket} from "phoenix"

interface SocketInternals {
  push(
    data: {topic: string; event: string; payload: ArrayBuffer; ref: string; join_ref: string | null},
    channel: Channel,
  ): void
}

interface ChannelInternals {
  joinRef(): string | null
  canPush(): boolean
}

/**
 * Sends `payload` as a binary push with an empty ref: the server then sends no
 * reply. Dropped (returns false) unless the channel is joined on an open socket:
 * a stale pose is worth nothing, so it is never buffered.
 */
export function pushBinaryNoReply(socket: Socket, channel: Channel, event: string, payload: ArrayBuffer): boolean {
  const internals = channel as unknown as ChannelInternals
  if (!internals.canPush()) {
    return false
  }
  ;(socket as unknown as SocketInternals).push(
    {topic: channel.topic, event, payload, ref: "", join_ref: internals.joinRef()},
    channel,
  )
  return true
}
