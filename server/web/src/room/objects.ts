//! The room's shared objects (cubes, balls, markers) as this page shows and moves them.
//!
//! The server decides who holds an object; the holder simulates it. So each
//! object is, for this page, in one of four places:
//! - carried by this visitor: it follows the hand or the pointer (`moveHeld`),
//!   and its pose goes out with every pose push;
//! - thrown by this visitor: the flight runs here with physics.ts in fixed
//!   steps, is streamed the same way, and ends with an `object_set` at the rest;
//! - held or thrown by someone else: shown from the pose batches, about 100 ms
//!   behind like an avatar (an AvatarTrack carries the object's pose as its head);
//! - at rest: where the last `object_set` (or the join reply) put it.
//!
//! A grab is tried at once (the object moves under the pointer before the
//! server answers); a refusal puts it back and says who holds it.

import {StandardMaterial} from "@babylonjs/core/Materials/standardMaterial"
import {DynamicTexture} from "@babylonjs/core/Materials/Textures/dynamicTexture"
import {Color3} from "@babylonjs/core/Maths/math.color"
import {Matrix, Quaternion, Vector3} from "@babylonjs/core/Maths/math.vector"
import type {AbstractMesh} from "@babylonjs/core/Meshes/abstractMesh"
import {CreateBox} from "@babylonjs/core/Meshes/Builders/boxBuilder"
import {CreateCylinder} from "@babylonjs/core/Meshes/Builders/cylinderBuilder"
import {CreateSphere} from "@babylonjs/core/Meshes/Builders/sphereBuilder"
import {CreatePlane} from "@babylonjs/core/Meshes/Builders/planeBuilder"
import {Mesh} from "@babylonjs/core/Meshes/mesh"
import type {Scene} from "@babylonjs/core/scene"

import type {ObjectHolder, ObjectHolderPush, ObjectKind, ObjectSnapshot, ObjectState, RoomEvent} from "@roomscale/protocol"

import {encodeObjectPose, ObjectPoseFlags, type ObjectPose, type Quat, type Vec3} from "../protocol/pose"
import {RefusedError} from "./connection"
import {AvatarTrack} from "./interpolation"
import {Body, Flight, VelocityEstimator, World, simulateToRest} from "./physics"

/** How far a hand may be from an object's centre to grab it, in metres. */
export const GRAB_REACH_M = 0.15
/** Longest a spawned object's drop is simulated before it is placed, in steps (10 s). */
const SPAWN_MAX_STEPS = 900
/** The holder's name floats this far above a held object's centre, in metres. */
const LABEL_HEIGHT = 0.13
const LABEL_TEXTURE = {width: 256, height: 48}
const LABEL_WIDTH = 0.24
/** Colours offered to spawned objects. */
const SPAWN_COLOURS = ["#d94c3d", "#3d7dd9", "#e8c547", "#4cb86a", "#9b59b6", "#f0883e"]

/** What the page needs from the room channel. */
export interface ObjectChannel {
  grabObject(objectId: string): Promise<number>
  releaseObject(objectId: string): Promise<void>
  setObject(objectId: string, state: ObjectState): Promise<number>
  removeObject(objectId: string): Promise<void>
}

/** One object as tests and debugging see it (window.roomscale.objects()). */
export interface ObjectView {
  id: string
  kind: ObjectKind
  colour: string
  position: Vec3
  orientation: Quat
  handle: number
  /** The holder's user id, or null. */
  holder: string | null
  throwing: boolean
  /** Nobody holds or throws it: it shows its stored rest. */
  resting: boolean
}

type Local =
  /** In this visitor's hand; `handle` once the server granted the grab. */
  | {mode: "carrying"; handle: number | null; target: Pose; estimator: VelocityEstimator; releasedWith: [Vec3, Vec3] | null}
  /** Thrown by this visitor and flying; ends with an object_set at the rest. */
  | {mode: "throwing"; handle: number; flight: Flight; lastFrameMs: number}

interface Pose {
  position: Vec3
  orientation: Quat
}

interface RoomObject {
  id: string
  /** The stored rest (its kind and colour never change). */
  state: ObjectState
  handle: number
  holder: ObjectHolder | null
  /** The server let go of it for a lost holder and will store its rest: keep showing the stream till then. */
  settlingByServer: boolean
  mesh: Mesh
  material: StandardMaterial
  track: AvatarTrack
  local: Local | null
  /** What is drawn now. */
  shown: Pose
  /** The holder's name over the object while someone else holds or throws it (made on first use). */
  label: Label | null
}

/** A small name tag: who has the object. */
interface Label {
  mesh: Mesh
  texture: DynamicTexture
  material: StandardMaterial
  text: string
}

export class RoomObjects {
  private readonly objects = new Map<string, RoomObject>()
  private readonly world = World.room()
  private selfSlot: number | null = null
  /** The object this visitor last grabbed or spawned: what "Remove" removes. */
  private lastTouched: string | null = null

  constructor(
    private readonly scene: Scene,
    private readonly channel: ObjectChannel,
    /** Shows a short message to the visitor (a refused grab says who holds the object). */
    private readonly notify: (text: string) => void,
  ) {}

  /** Each (re)join: the reply's objects are the truth; anything this page was doing with them is over. */
  joined(snapshots: ObjectSnapshot[], selfSlot: number): void {
    this.selfSlot = selfSlot
    const seen = new Set<string>()
    for (const snapshot of snapshots) {
      seen.add(snapshot.object_id)
      const object = this.upsert(snapshot.object_id, snapshot.state)
      object.handle = snapshot.handle
      object.holder = snapshot.holder ?? null
      object.local = null
      object.settlingByServer = false
      // The room's pose clock may have restarted with the room.
      object.track.reset()
    }
    for (const id of [...this.objects.keys()]) {
      if (!seen.has(id)) {
        this.dispose(id)
      }
    }
  }

  /** A live room event (never the join reply's history: the reply's `objects` already hold that). */
  event(event: RoomEvent): void {
    const body = event.body
    if (body.type === "object_set") {
      const object = this.upsert(body.object_id, body.state as ObjectState)
      object.holder = null
      object.settlingByServer = false
      object.track.reset()
      if (object.local?.mode === "throwing") {
        object.local = null
      }
    } else if (body.type === "object_remove") {
      this.dispose(body.object_id)
    }
  }

  holderChanged(push: ObjectHolderPush): void {
    const object = this.objects.get(push.object_id)
    if (!object) {
      return
    }
    const previousSlot = object.holder?.slot ?? null
    object.handle = push.handle
    object.holder = push.holder ?? null
    object.settlingByServer = push.holder === undefined
    const mine = push.holder !== undefined && push.holder.slot === this.selfSlot
    if (!mine && object.local && !(object.local.mode === "carrying" && object.local.handle === null)) {
      // Caught by someone else, or taken from us by the server: our hand or flight lets go.
      object.local = null
    }
    if (!mine && push.holder !== undefined && push.holder.slot !== previousSlot) {
      // A new sender: its poses start a new timeline. The same holder letting
      // go keeps its stream (no stall at the release), and so does a server
      // settling what the lost holder last sent.
      object.track.reset()
    }
  }

  /** Object poses from a batch (others' held and flying objects). */
  poses(poses: ObjectPose[], receivedAt: number, serverTimeMs: number): void {
    for (const pose of poses) {
      const object = this.byHandle(pose.handle)
      if (!object || object.local) {
        continue
      }
      const joint = {position: pose.position, orientation: pose.orientation}
      object.track.push(receivedAt / 1000, serverTimeMs / 1000, {head: joint, left: joint, right: joint, flags: pose.flags})
    }
  }

  /** The object a mesh belongs to. */
  objectOf(mesh: AbstractMesh | null | undefined): string | null {
    const id = (mesh?.metadata as {objectId?: string} | null)?.objectId
    return id && this.objects.has(id) ? id : null
  }

  /** The nearest object whose centre is within `reach` of `point`. */
  nearest(point: Vec3, reach = GRAB_REACH_M): string | null {
    let best: string | null = null
    let bestDistance = reach
    for (const object of this.objects.values()) {
      const d = Math.hypot(...object.shown.position.map((c, i) => c - point[i]))
      if (d <= bestDistance) {
        best = object.id
        bestDistance = d
      }
    }
    return best
  }

  shownPose(id: string): Pose | null {
    const object = this.objects.get(id)
    return object ? {position: [...object.shown.position], orientation: [...object.shown.orientation]} : null
  }

  isCarriedHere(id: string): boolean {
    return this.objects.get(id)?.local?.mode === "carrying"
  }

  /**
   * Starts carrying an object; false when it is someone else's to hold (the
   * server is still asked, so its refusal can say who holds it).
   */
  grab(id: string): boolean {
    const object = this.objects.get(id)
    if (!object) {
      return false
    }
    this.lastTouched = id
    if (object.local?.mode === "carrying") {
      return true
    }
    const heldElsewhere = object.holder !== null && !object.holder.throwing && object.holder.slot !== this.selfSlot
    const local: Local | null = heldElsewhere
      ? null
      : {mode: "carrying", handle: null, target: this.shownPose(id)!, estimator: new VelocityEstimator(), releasedWith: null}
    object.local = local
    this.channel.grabObject(id).then(
      (handle) => {
        if (object.local !== local || !local) {
          return
        }
        local.handle = handle
        object.handle = handle
        if (local.releasedWith) {
          this.startThrow(object, local, ...local.releasedWith)
        }
      },
      (error: Error) => {
        if (local && object.local === local) {
          object.local = null
        }
        this.notify(refusal(error))
      },
    )
    return local !== null
  }

  /** Where the carrying hand (or pointer) puts the object now; `nowMs` is performance.now(). */
  moveHeld(id: string, pose: Pose, nowMs: number): void {
    const local = this.objects.get(id)?.local
    if (local?.mode !== "carrying") {
      return
    }
    const [x, y, z] = pose.position
    const limit = this.world.halfSize
    const radius = 0.06
    // Never into the floor or through a wall: a rest there would be refused.
    local.target = {position: [clamp(x, -limit + radius, limit - radius), clamp(y, radius, 9.5), clamp(z, -limit + radius, limit - radius)], orientation: pose.orientation}
    local.estimator.push(nowMs / 1000, local.target.position, local.target.orientation)
  }

  /** Lets go: the object flies with the hand's recent velocity. */
  release(id: string, nowMs: number): void {
    const object = this.objects.get(id)
    const local = object?.local
    if (!object || local?.mode !== "carrying") {
      return
    }
    local.estimator.push(nowMs / 1000, local.target.position, local.target.orientation)
    const [velocity, spin] = local.estimator.velocity()
    if (local.handle === null) {
      // The grab is still on its way: throw once it is granted.
      local.releasedWith = [velocity, spin]
      return
    }
    this.startThrow(object, local, velocity, spin)
  }

  /** Spawns an object of `kind` dropped from `from` onto what is below it; resolves with its id. */
  async spawn(kind: ObjectKind, from: Vec3): Promise<string> {
    const id = `${kind}-${Math.random().toString(36).slice(2, 10)}`
    const colour = SPAWN_COLOURS[Math.floor(Math.random() * SPAWN_COLOURS.length)]
    const body = Body.released({kind, position: from, orientation: [0, 0, 0, 1]}, [0, 0, 0], [0, 0, 0])
    simulateToRest(this.world, body, SPAWN_MAX_STEPS)
    await this.channel.setObject(id, {kind, colour, position: body.position, orientation: body.orientation})
    this.lastTouched = id
    return id
  }

  /** Removes the object last grabbed or spawned here, else the one nearest `fallback` (what the view looks at). */
  async removeLastTouched(fallback: Vec3 | null): Promise<string | null> {
    const id = (this.lastTouched && this.objects.has(this.lastTouched) ? this.lastTouched : null) ?? (fallback ? this.nearest(fallback, 1.5) : null)
    if (!id) {
      return null
    }
    await this.channel.removeObject(id)
    return id
  }

  /** Advances this visitor's flights and places every mesh; once per frame. */
  frame(nowMs: number): void {
    for (const object of this.objects.values()) {
      const local = object.local
      if (local?.mode === "carrying") {
        object.shown = local.target
      } else if (local?.mode === "throwing") {
        const resting = local.flight.advance(this.world, (nowMs - local.lastFrameMs) / 1000)
        local.lastFrameMs = nowMs
        object.shown = {position: [...local.flight.body.position], orientation: [...local.flight.body.orientation]}
        if (resting) {
          this.finishThrow(object)
        }
      } else if (object.holder !== null || object.settlingByServer) {
        const sampled = object.track.sample(nowMs / 1000)
        object.shown = sampled ? {position: sampled.head.position, orientation: sampled.head.orientation} : restPose(object.state)
      } else {
        object.shown = restPose(object.state)
      }
      place(object)
      this.showLabel(object)
    }
  }

  /** The holder's name over an object someone else has; nothing over one this visitor has or that rests. */
  private showLabel(object: RoomObject): void {
    const holder = object.local === null && object.holder !== null && object.holder.slot !== this.selfSlot ? object.holder : null
    if (!holder) {
      if (object.label) {
        object.label.mesh.setEnabled(false)
      }
      return
    }
    const label = (object.label ??= makeLabel(this.scene, object.id))
    const text = holder.name
    if (label.text !== text) {
      label.text = text
      // A canvas draws the name as text: markup in a name is never interpreted.
      const context = label.texture.getContext() as CanvasRenderingContext2D
      const {width, height} = LABEL_TEXTURE
      context.clearRect(0, 0, width, height)
      context.fillStyle = "rgba(20, 22, 28, 0.72)"
      context.fillRect(0, 0, width, height)
      context.fillStyle = "#ffffff"
      context.font = "600 30px system-ui, sans-serif"
      context.textBaseline = "middle"
      context.textAlign = "center"
      context.fillText(text, width / 2, height / 2 + 1, width - 12)
      label.texture.update(true)
    }
    const [x, y, z] = object.shown.position
    label.mesh.position.set(x, y + LABEL_HEIGHT, z)
    label.mesh.setEnabled(true)
  }

  /** Encoded poses of what this visitor carries or throws (at most two), for the next pose push. */
  encodedPoses(): Uint8Array[] {
    const out: Uint8Array[] = []
    for (const object of this.objects.values()) {
      const local = object.local
      if (!local || local.handle === null || out.length === 2) {
        continue
      }
      const flags = local.mode === "carrying" ? ObjectPoseFlags.HELD : 0
      out.push(encodeObjectPose({handle: local.handle, flags, position: object.shown.position, orientation: object.shown.orientation}))
    }
    return out
  }

  views(): ObjectView[] {
    return [...this.objects.values()].map((object) => {
      const local = object.local
      const position = object.mesh.position
      const rotation = object.mesh.rotationQuaternion ?? Quaternion.Identity()
      return {
        id: object.id,
        kind: object.state.kind,
        colour: object.state.colour,
        position: [position.x, position.y, position.z],
        orientation: [rotation.x, rotation.y, rotation.z, rotation.w],
        handle: object.handle,
        holder: object.holder?.user_id ?? null,
        throwing: local ? local.mode === "throwing" : (object.holder?.throwing ?? false),
        resting: local === null && object.holder === null && !object.settlingByServer,
      }
    })
  }

  /** The object's centre on the canvas in CSS pixels, or null when it is unknown or behind the camera. */
  screenPoint(id: string): {x: number; y: number} | null {
    const object = this.objects.get(id)
    const camera = this.scene.activeCamera
    if (!object || !camera) {
      return null
    }
    const engine = this.scene.getEngine()
    const width = engine.getRenderWidth()
    const height = engine.getRenderHeight()
    object.mesh.computeWorldMatrix(true)
    const projected = Vector3.Project(object.mesh.getAbsolutePosition(), Matrix.Identity(), this.scene.getTransformMatrix(), camera.viewport.toGlobal(width, height))
    if (projected.z < 0 || projected.z > 1) {
      return null
    }
    const canvas = engine.getRenderingCanvas()
    const scaleX = canvas ? canvas.clientWidth / width : 1
    const scaleY = canvas ? canvas.clientHeight / height : 1
    return {x: projected.x * scaleX, y: projected.y * scaleY}
  }

  private startThrow(object: RoomObject, local: Local & {mode: "carrying"}, velocity: Vec3, spin: Vec3): void {
    const handle = local.handle!
    const state: ObjectState = {...object.state, position: local.target.position, orientation: local.target.orientation}
    object.local = {mode: "throwing", handle, flight: new Flight(Body.released(state, velocity, spin)), lastFrameMs: performance.now()}
    this.channel.releaseObject(object.id).catch((error: Error) => {
      // The server no longer counts us as the holder (it dropped a silent hold): its own settling wins.
      if (object.local?.mode === "throwing") {
        object.local = null
      }
      console.warn(`releasing ${object.id}: ${error.message}`)
    })
  }

  private finishThrow(object: RoomObject): void {
    const rest: ObjectState = {...object.state, position: [...object.shown.position], orientation: [...object.shown.orientation]}
    object.local = null
    // Shown at its rest at once; the stored event confirms it (or someone caught it first and it is refused).
    object.state = rest
    object.holder = null
    this.channel.setObject(object.id, rest).catch((error: Error) => {
      console.warn(`storing where ${object.id} came to rest: ${error.message}`)
    })
  }

  private byHandle(handle: number): RoomObject | null {
    for (const object of this.objects.values()) {
      if (object.handle === handle) {
        return object
      }
    }
    return null
  }

  private upsert(id: string, state: ObjectState): RoomObject {
    let object = this.objects.get(id)
    if (object && object.state.kind !== state.kind) {
      this.dispose(id)
      object = undefined
    }
    if (!object) {
      const {mesh, material} = makeMesh(this.scene, id, state.kind)
      object = {
        id,
        state,
        handle: -1,
        holder: null,
        settlingByServer: false,
        mesh,
        material,
        track: new AvatarTrack(),
        local: null,
        shown: restPose(state),
        label: null,
      }
      this.objects.set(id, object)
      // Where it rests from the start, not at the origin until the next frame.
      place(object)
    }
    object.state = state
    object.material.diffuseColor = Color3.FromHexString(state.colour)
    return object
  }

  private dispose(id: string): void {
    const object = this.objects.get(id)
    if (object) {
      object.mesh.dispose()
      object.material.dispose()
      if (object.label) {
        object.label.mesh.dispose()
        object.label.material.dispose()
        object.label.texture.dispose()
      }
      this.objects.delete(id)
    }
  }
}

/** One mesh per object, sized as every client draws that kind. */
function makeMesh(scene: Scene, id: string, kind: ObjectKind): {mesh: Mesh; material: StandardMaterial} {
  const mesh =
    kind === "cube"
      ? CreateBox(`object-${id}`, {size: 0.1}, scene)
      : kind === "ball"
        ? CreateSphere(`object-${id}`, {diameter: 0.12, segments: 16}, scene)
        : CreateCylinder(`object-${id}`, {diameter: 0.02, height: 0.14, tessellation: 16}, scene)
  const material = new StandardMaterial(`object-${id}`, scene)
  material.specularColor = new Color3(0.2, 0.2, 0.2)
  mesh.material = material
  mesh.metadata = {objectId: id}
  mesh.rotationQuaternion = new Quaternion()
  return {mesh, material}
}

const IN_PLAY_GLOW = new Color3(0.25, 0.25, 0.25)
const NO_GLOW = Color3.Black()

function makeLabel(scene: Scene, id: string): Label {
  const mesh = CreatePlane(`object-${id}-label`, {width: LABEL_WIDTH, height: (LABEL_WIDTH * LABEL_TEXTURE.height) / LABEL_TEXTURE.width}, scene)
  mesh.billboardMode = Mesh.BILLBOARDMODE_ALL
  mesh.isPickable = false
  const texture = new DynamicTexture(`object-${id}-label`, LABEL_TEXTURE, scene, true)
  texture.hasAlpha = true
  const material = new StandardMaterial(`object-${id}-label`, scene)
  material.diffuseTexture = texture
  material.emissiveColor = Color3.White()
  material.disableLighting = true
  material.useAlphaFromDiffuseTexture = true
  material.backFaceCulling = false
  mesh.material = material
  return {mesh, texture, material, text: ""}
}

function place(object: RoomObject): void {
  const [x, y, z] = object.shown.position
  const [qx, qy, qz, qw] = object.shown.orientation
  object.mesh.position.set(x, y, z)
  object.mesh.rotationQuaternion!.set(qx, qy, qz, qw)
  // Held or flying objects glow a little, so everyone sees they are in play.
  const inPlay = object.local !== null || object.holder !== null
  object.material.emissiveColor.copyFrom(inPlay ? IN_PLAY_GLOW : NO_GLOW)
}

function restPose(state: ObjectState): Pose {
  return {position: [...state.position], orientation: [...state.orientation]}
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(Math.max(value, min), max)
}

/** What a refused grab tells the visitor. */
function refusal(error: Error): string {
  if (error instanceof RefusedError && error.code === "object_held" && error.holder) {
    return `${error.holder.name} is ${error.holder.throwing ? "throwing" : "holding"} that`
  }
  return `Could not pick that up: ${error.message}`
}
