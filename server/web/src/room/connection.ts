// The room channel through the official phoenix.js client: join (and rejoin
// after every reconnect, with `last_seen_id` so history is neither lost nor
// repeated), presence, persisted room events, older history on request,
// moderation (acts sent, notices received), a close the server initiates
// (removed, room deleted: no rejoin), pose batches in and out (format 2
// batches carry held and flying objects after the avatars), and shared
// objects: grab, release, set and remove pushed, `object_holder` heard.

import {Presence, Socket, type Channel} from "phoenix"

import {
  CHAT_EVENT,
  HISTORY_EVENT,
  MODERATE_EVENT,
  MODERATION_EVENT,
  OBJECT_GRAB_EVENT,
  OBJECT_HOLDER_EVENT,
  OBJECT_RELEASE_EVENT,
  OBJECT_REMOVE_EVENT,
  OBJECT_SET_EVENT,
  POSE_EVENT,
  POSES_EVENT,
  PROTOCOL_VERSION,
  ROOM_EVENT_EVENT,
  SET_MUTED_EVENT,
  UPDATE_PROFILE_EVENT,
  type ClosePayload,
  type ErrorCode,
  type ErrorReply,
  type HistoryPage,
  type HistoryPush,
  type JoinPayload,
  type JoinReply,
  type ModeratePush,
  type ModerationNotice,
  type ObjectGrabReply,
  type ObjectHolder,
  type ObjectHolderPush,
  type ObjectState,
  type PresenceMeta,
  type RoomEvent,
  type StoredReply,
} from "@roomscale/protocol"
import {decodeBatch, type PoseBatch} from "../protocol/pose"
import {pushBinaryNoReply} from "./phoenix"
import type {Profile} from "./profile"

export type ConnectionStatus =
  | {kind: "connecting"}
  | {kind: "joined"}
  | {kind: "reconnecting"; reason: string}
  /** Not retrying: the reason says what the visitor can do; `code` when the server said why. */
  | {kind: "failed"; reason: string; code?: ErrorCode}

export interface PresenceMember {
  userId: string
  metas: PresenceMeta[]
}

export interface RoomHandlers {
  status(status: ConnectionStatus): void
  /** The socket is open (each time it opens). */
  open(): void
  /** Each successful join, the first and every rejoin. */
  joined(reply: JoinReply): void
  presence(members: PresenceMember[]): void
  event(event: RoomEvent): void
  /** A moderation act in the room (everyone is told). */
  moderation(notice: ModerationNotice): void
  /** A decoded batch and when it arrived (performance.now() milliseconds). */
  poses(batch: PoseBatch, receivedAt: number): void
  /** Who holds or throws an object now (absent holder: the server is settling it). */
  objectHolder(push: ObjectHolderPush): void
}

/** A push the server refused: its error code, and who holds the object for `object_held`. */
export class RefusedError extends Error {
  override name = "RefusedError"

  constructor(
    readonly code: ErrorCode,
    reason: string,
    readonly holder: ObjectHolder | null,
  ) {
    super(reason)
  }
}

export interface RoomConnectionOptions {
  roomId: string
  token: string
  /** Read at every join, so a rejoin carries the current name and colour. */
  profile(): Profile
  /** The newest persisted event id this client holds; read at every join. */
  lastSeenId(): number
  handlers: RoomHandlers
}

/**
 * Join errors that retrying cannot fix: phoenix.js would retry them forever.
 * A full room (or a per-person limit) is retried: a place may free up.
 */
const FATAL_JOIN_ERRORS = new Set<ErrorCode>(["room_not_found", "unsupported_version", "unknown_topic", "room_locked", "removed", "room_deleted", "forbidden"])

/** What a server-initiated `phx_close` carries; phoenix.js's own leave closes with the string "leave". */
function isClosePayload(payload: unknown): payload is ClosePayload {
  return typeof payload === "object" && payload !== null && typeof (payload as ClosePayload).reason === "string"
}

export class RoomConnection {
  private readonly socket: Socket
  private readonly channel: Channel
  private readonly presence: Presence
  private readonly handlers: RoomHandlers
  private joinedOnce = false
  /** Set once the room cannot work (see `fail`); later socket events do not change the status. */
  private failed = false

  constructor(private readonly options: RoomConnectionOptions) {
    const handlers: RoomHandlers = {
      ...options.handlers,
      status: (status) => {
        if (!this.failed) {
          options.handlers.status(status)
        }
      },
    }
    this.handlers = handlers
    this.socket = new Socket("/socket", {params: {token: options.token}})
    this.socket.onOpen(() => {
      performance.mark("roomscale:socket-open")
      handlers.open()
    })
    this.socket.onError(() => {
      handlers.status({kind: "reconnecting", reason: "the connection to the server was lost"})
    })
    this.socket.onClose((event: CloseEvent) => {
      // The server puts what went wrong in the close reason (a heartbeat timeout, a bad frame).
      handlers.status({kind: "reconnecting", reason: event.reason || "the connection to the server closed"})
    })
    this.channel = this.socket.channel(`room:${options.roomId}`, () => this.joinPayload())
    this.channel.onError(() => {
      handlers.status({kind: "reconnecting", reason: "the room restarted or the connection dropped"})
    })
    this.presence = new Presence(this.channel)
    this.presence.onSync(() => {
      handlers.presence(this.presence.list((userId: string, entry: {metas: PresenceMeta[]}) => ({userId, metas: entry.metas})))
    })
    this.channel.on(ROOM_EVENT_EVENT, (event: RoomEvent) => handlers.event(event))
    this.channel.on(MODERATION_EVENT, (notice: ModerationNotice) => handlers.moderation(notice))
    this.channel.on(OBJECT_HOLDER_EVENT, (push: ObjectHolderPush) => handlers.objectHolder(push))
    // The server ends our membership (removed by a moderator, the room deleted):
    // phoenix.js closes the channel without rejoining; the socket goes too.
    this.channel.onClose((payload: unknown) => {
      if (isClosePayload(payload) && !this.failed) {
        this.fail(payload.reason, payload.code)
      }
    })
    this.channel.on(POSES_EVENT, (payload: ArrayBuffer) => {
      const receivedAt = performance.now()
      try {
        handlers.poses(decodeBatch(new Uint8Array(payload)), receivedAt)
      } catch (error) {
        // One bad batch must not stop the room; the next one replaces it.
        console.warn(`ignored a pose batch: ${(error as Error).message}`)
      }
    })
  }

  /** Opens the socket (in the lobby, so entering the room needs only the join). */
  open(): void {
    performance.mark("roomscale:connect")
    this.socket.connect()
  }

  /** Joins the room channel: the visitor enters the room and shows in presence. */
  join(): void {
    this.handlers.status({kind: "connecting"})
    this.socket.connect()
    this.channel
      .join()
      .receive("ok", (reply: JoinReply) => {
        this.joinedOnce = true
        this.handlers.joined(reply)
        this.handlers.status({kind: "joined"})
      })
      .receive("error", (error: ErrorReply) => {
        if (FATAL_JOIN_ERRORS.has(error.code)) {
          this.fail(error.reason, error.code)
        } else {
          this.handlers.status({kind: "reconnecting", reason: error.reason})
        }
      })
      .receive("timeout", () => {
        this.handlers.status({kind: "reconnecting", reason: "the server did not answer the join in time"})
      })
  }

  /** Leaves the room for good, showing `reason` (something the visitor can act on). */
  fail(reason: string, code?: ErrorCode): void {
    this.handlers.status({kind: "failed", reason, ...(code ? {code} : {})})
    this.failed = true
    // A channel the server closed is gone there already: no phx_leave for it.
    if (this.channel.state !== "closed") {
      this.channel.leave()
    }
    this.socket.disconnect()
  }

  /** Whether the channel is joined right now. */
  get isJoined(): boolean {
    return this.joinedOnce && this.channel.state === "joined" && this.socket.isConnected()
  }

  /** Sends one encoded pose; false when not joined (the pose is dropped). */
  sendPose(encoded: Uint8Array): boolean {
    const payload = encoded.buffer.slice(encoded.byteOffset, encoded.byteOffset + encoded.byteLength) as ArrayBuffer
    return pushBinaryNoReply(this.socket, this.channel, POSE_EVENT, payload)
  }

  /** Takes hold of an object; resolves with its handle, rejects with a RefusedError (`object_held` names the holder). */
  grabObject(objectId: string): Promise<number> {
    return this.pushForReply<ObjectGrabReply>(OBJECT_GRAB_EVENT, {object_id: objectId}).then((reply) => reply.handle)
  }

  /** Lets go of a held object: this client now throws it until it rests (then `setObject`). */
  releaseObject(objectId: string): Promise<void> {
    return this.pushForReply(OBJECT_RELEASE_EVENT, {object_id: objectId}).then(() => undefined)
  }

  /** Stores where an object rests (a new id spawns it); resolves with the stored event's id. */
  setObject(objectId: string, state: ObjectState): Promise<number> {
    return this.pushForReply<{id: number}>(OBJECT_SET_EVENT, {object_id: objectId, state}).then((reply) => reply.id)
  }

  removeObject(objectId: string): Promise<void> {
    return this.pushForReply(OBJECT_REMOVE_EVENT, {object_id: objectId}).then(() => undefined)
  }

  /** Stores a chat message; resolves with its id once the server has stored it. */
  sendChat(text: string): Promise<number> {
    return this.pushForReply<StoredReply>(CHAT_EVENT, {text}).then((reply) => reply.id)
  }

  updateProfile(profile: Profile): Promise<void> {
    return this.pushForReply(UPDATE_PROFILE_EVENT, {name: profile.name, colour: profile.colour}).then(() => undefined)
  }

  setMuted(muted: boolean): Promise<void> {
    return this.pushForReply(SET_MUTED_EVENT, {muted}).then(() => undefined)
  }

  /** Asks for a moderation act; rejects with the server's reason when it is refused. */
  moderate(act: ModeratePush): Promise<void> {
    return this.pushForReply(MODERATE_EVENT, act).then(() => undefined)
  }

  /** The page of events older than `beforeId` (oldest first) and whether there are more. */
  history(beforeId: number): Promise<HistoryPage> {
    const push: HistoryPush = {before_id: beforeId}
    return this.pushForReply<HistoryPage>(HISTORY_EVENT, push)
  }

  /** A push to the room that resolves with the server's reply (WebRTC signaling). */
  push<T>(event: string, payload: object): Promise<T> {
    return this.pushForReply<T>(event, payload)
  }

  /** Listens to a server event on the room channel. */
  on(event: string, handler: (payload: unknown) => void): void {
    this.channel.on(event, handler)
  }

  private pushForReply<T>(event: string, payload: object): Promise<T> {
    if (!this.joinedOnce) {
      // phoenix.js throws on a push before the first join; say it plainly instead.
      return Promise.reject(new Error("not in the room yet; wait until it says you are in"))
    }
    return new Promise((resolve, reject) => {
      this.channel
        .push(event, payload)
        .receive("ok", (reply: T) => resolve(reply))
        .receive("error", (error: ErrorReply) => reject(new RefusedError(error.code, error.reason, error.holder ?? null)))
        .receive("timeout", () => reject(new Error("the server did not answer in time; try again")))
    })
  }

  private joinPayload(): JoinPayload {
    const profile = this.options.profile()
    const lastSeenId = this.options.lastSeenId()
    return {
      protocol_version: PROTOCOL_VERSION,
      name: profile.name,
      colour: profile.colour,
      client_kind: "web",
      ...(lastSeenId > 0 ? {last_seen_id: lastSeenId} : {}),
    }
  }
}
