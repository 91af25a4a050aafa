// A small read-only view of the room for end-to-end tests and for a person
// debugging in the console: `window.roomscale`. Positions are read from the
// Babylon meshes as drawn, not from the data that placed them.

import type {Governance, Role} from "@roomscale/protocol"

import type {Avatar} from "./avatars"
import type {ObjectView} from "./objects"
import type {ChatLine, NoticeLine, Person} from "./ui"

export type RoomState = "lobby" | "connecting" | "joining" | "joined" | "reconnecting" | "failed"

type Vec3 = [number, number, number]

export interface AvatarView {
  userId: string
  slot: number
  name: string
  /** The tag drawn beside the name on the name tag. */
  tag: string
  colour: string
  self: boolean
  /** Whether it is drawn (a member is hidden until its first pose arrives). */
  visible: boolean
  head: Vec3
  left: Vec3
  right: Vec3
}

/** Voice, as tests and debugging see it. */
export interface VoiceSurface {
  state(): string
  muted(): boolean
  note(): string | null
  start(): Promise<void>
  stop(): void
  setMuted(muted: boolean): Promise<void>
  /** Track mid -> user id, as the server announced. */
  tracks(): Record<string, string>
  /** User id -> RMS of that user's incoming voice now. */
  levels(): Record<string, number>
  /** User id -> the strongest frequency (Hz) in that user's incoming voice now. */
  peaks(): Record<string, number>
  stats(): Promise<RTCStatsReport | null>
  /** User ids the server says are speaking. */
  speaking(): string[]
  /** Left/right RMS of a tone rendered through the voice panner at a position. */
  spatialProbe(position: Vec3): Promise<{left: number; right: number}>
}

export interface RoomSources {
  voice: VoiceSurface
  state(): RoomState
  statusReason(): string | null
  governance(): Governance | null
  role(): Role
  moderatorMuted(): boolean
  notices(): NoticeLine[]
  olderMessages(): boolean
  selfSlot(): number | null
  userId(): string
  /** performance.now() when the visitor was first in the room (joined, listed, own avatar drawn). */
  inRoomAt(): number | null
  immersive(): boolean
  avatars(): Avatar[]
  people(): Person[]
  chat(): ChatLine[]
  selfPose(): {position: Vec3; orientation: [number, number, number, number]}
  objects(): ObjectView[]
  objectScreenPoint(id: string): {x: number; y: number} | null
}

export interface RoomDebugSurface {
  readonly state: RoomState
  /** Why the page is reconnecting or out of the room (the server's reason), else null. */
  readonly statusReason: string | null
  /** Who runs the room and whether it is locked, as the page last heard. */
  readonly governance: Governance | null
  /** The visitor's own role in the room. */
  readonly role: Role
  /** Whether a moderator has muted the visitor. */
  readonly moderatorMuted: boolean
  /** Whether "Load older messages" is offered. */
  readonly olderMessages: boolean
  /** Moderation acts shown in the log, oldest first. */
  notices(): NoticeLine[]
  readonly selfSlot: number | null
  readonly userId: string
  readonly inRoomAt: number | null
  readonly immersive: boolean
  avatars(): AvatarView[]
  /** The visitor's own head, from their own avatar's head node. */
  selfHead(): Vec3 | null
  /** Where the visitor's eyes are and which way they look (quaternion x, y, z, w), as sent in their pose. */
  selfPose(): {position: Vec3; orientation: [number, number, number, number]}
  people(): Person[]
  chat(): ChatLine[]
  /** The room's objects as drawn now: pose from the mesh, who holds it, whether it rests. */
  objects(): ObjectView[]
  /** An object's centre on the canvas in CSS pixels (for a real mouse press), or null. */
  objectScreenPoint(id: string): {x: number; y: number} | null
  readonly voice: VoiceSurface
}

declare global {
  interface Window {
    roomscale?: RoomDebugSurface
  }
}

export function installDebugSurface(sources: RoomSources): void {
  const view = (avatar: Avatar): AvatarView => ({
    userId: avatar.userId,
    slot: avatar.slot,
    name: avatar.name,
    tag: avatar.tag,
    colour: avatar.colour,
    self: avatar.isSelf,
    visible: avatar.isVisible(),
    head: avatar.headPosition(),
    ...avatar.handPositions(),
  })
  const surface: RoomDebugSurface = {
    get state() {
      return sources.state()
    },
    get statusReason() {
      return sources.statusReason()
    },
    get governance() {
      const governance = sources.governance()
      return governance ? structuredClone(governance) : null
    },
    get role() {
      return sources.role()
    },
    get moderatorMuted() {
      return sources.moderatorMuted()
    },
    get olderMessages() {
      return sources.olderMessages()
    },
    notices: () => sources.notices().map((line) => ({...line})),
    get selfSlot() {
      return sources.selfSlot()
    },
    get userId() {
      return sources.userId()
    },
    get inRoomAt() {
      return sources.inRoomAt()
    },
    get immersive() {
      return sources.immersive()
    },
    avatars: () => sources.avatars().map(view),
    selfHead: () => {
      const self = sources.avatars().find((avatar) => avatar.isSelf)
      return self ? self.headPosition() : null
    },
    selfPose: () => sources.selfPose(),
    // Copies, so a caller cannot change what the page holds.
    people: () => sources.people().map((person) => structuredClone(person)),
    chat: () => sources.chat().map((line) => ({...line})),
    objects: () => sources.objects(),
    objectScreenPoint: (id: string) => sources.objectScreenPoint(id),
    voice: Object.freeze({...sources.voice}),
  }
  Object.defineProperty(window, "roomscale", {value: Object.freeze(surface), writable: false, configurable: false})
}
