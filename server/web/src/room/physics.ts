// Object physics in the browser: the twin of the physics crate
// (physics/src/lib.rs), which the server and the native app run. A thrown
// object's flight until it rests, the room it flies in (floor, walls, the
// table) and a holder's hand velocity.
//
// Held to the vectors the crate writes (physics/vectors/throws.json, replayed
// by server/web/test/physics.test.mjs). The crate computes in f32 with only
// + - * /, sqrt, comparisons and abs, each correctly rounded; here every such
// operation is rounded to f32 with Math.fround (`f`), in the same order, so a
// flight comes out the same to the bit. Change one, change the other, and
// rewrite the vectors (`cargo xtask codegen`).
//
// Plain logic: time is an input, every step is STEP_SECONDS long.

import type {ObjectKind, ObjectState} from "@roomscale/protocol"

export type Vec3 = [number, number, number]
export type Quat = [number, number, number, number]

const f = Math.fround

/** One physics step, in seconds (f32, like the crate's). */
export const STEP_SECONDS = f(1 / 90)
/** Downward acceleration, m/s^2. */
export const GRAVITY = f(9.81)
/** Below this speed (m/s) a supported object counts as still. */
export const REST_SPEED = f(0.06)
/** Below this spin (rad/s) a supported object counts as still. */
export const REST_SPIN = f(1.2)
/** Steps an object stays still and supported before it rests (~0.25 s). */
export const REST_STEPS = 23
/** A bounce slower than this (m/s) ends in contact instead. */
export const MIN_BOUNCE_SPEED = f(0.25)
/** Speed and spin limits (m/s, rad/s). */
export const MAX_SPEED = f(40)
export const MAX_SPIN = f(60)
/** The longest flight a client simulates (10 s) before it drops the object straight down. */
export const MAX_FLIGHT_STEPS = 900
/** A contact whose normal's Y is above this holds the object up. */
const SUPPORT_NORMAL_Y = f(0.7)
const SPIN_KEEP_SUPPORTED = f(0.85)
const SPIN_KEEP_IMPACT = f(0.8)
/** Slack in Flight.advance, so rounding in summed frame times never loses a step. */
const CARRY_SLACK_SECONDS = f(1e-5)

/** An axis-aligned box objects collide with. */
export interface Aabb {
  min: Vec3
  max: Vec3
}

/** The table every room has: top at 0.75 m, 1.2 m wide (X), 0.7 m deep (Z), centred 1.6 m towards -Z. */
export const TABLE: Aabb = {min: [f(-0.6), 0, f(-1.95)], max: [f(0.6), f(0.75), f(-1.25)]}

/** The room objects fly in: a floor at y = 0, walls at +-halfSize on X and Z, and the boxes on it. */
export class World {
  constructor(
    readonly halfSize: number,
    readonly boxes: Aabb[],
  ) {}

  /** Every Roomscale room: 15 m half size and the table. */
  static room(): World {
    return new World(15, [TABLE])
  }
}

/** Half the object's size along Y when it rests (its collision radius). */
export function collisionRadius(kind: ObjectKind): number {
  switch (kind) {
    case "cube":
      return f(0.05)
    case "ball":
      return f(0.06)
    case "marker":
      return f(0.01)
  }
}

/** Height of a resting object's centre above its support. */
export const restingHalfHeight = collisionRadius

/** Share of the normal speed a bounce keeps. */
export function restitution(kind: ObjectKind): number {
  return kind === "cube" ? f(0.3) : kind === "ball" ? f(0.6) : f(0.2)
}

/** Share of the sliding speed a supported object keeps each step. */
function slideKeep(kind: ObjectKind): number {
  return kind === "cube" ? f(0.9) : kind === "ball" ? f(0.993) : f(0.92)
}

/** Friction coefficient against every surface (a ball's is its rolling resistance). */
function friction(kind: ObjectKind): number {
  return kind === "cube" ? f(0.5) : kind === "ball" ? f(0.04) : f(0.4)
}

/** A flying (or resting) object. Every number holds an f32 value. */
export class Body {
  constructor(
    public kind: ObjectKind,
    public position: Vec3,
    /** Unit quaternion [x, y, z, w]. */
    public orientation: Quat,
    public velocity: Vec3,
    /** Radians per second about each axis. */
    public angularVelocity: Vec3,
    /** Steps the body has been still while supported (rest detection). */
    public stillSteps = 0,
  ) {}

  /** A body released from a hand: at `state`'s pose, with the hand's velocities. */
  static released(state: Pick<ObjectState, "kind" | "position" | "orientation">, velocity: Vec3, angularVelocity: Vec3): Body {
    return new Body(state.kind, f3(state.position), f4(state.orientation), f3(velocity), f3(angularVelocity))
  }

  clone(): Body {
    return new Body(this.kind, [...this.position], [...this.orientation], [...this.velocity], [...this.angularVelocity], this.stillSteps)
  }

  isFinite(): boolean {
    // Plain loops: this runs every step, and closures here cost more than the step's arithmetic.
    for (const part of [this.position, this.orientation, this.velocity, this.angularVelocity]) {
      for (const c of part) if (!Number.isFinite(c)) return false
    }
    return true
  }
}

// Values become f32 on the way in; a non-finite one stays non-finite (step drops it).
const f3 = (v: readonly number[]): Vec3 => [f(v[0]), f(v[1]), f(v[2])]
const f4 = (q: readonly number[]): Quat => [f(q[0]), f(q[1]), f(q[2]), f(q[3])]

/**
 * Advances a flight by one STEP_SECONDS; true once it has come to rest (then
 * the body is at its final, settled pose with zero velocities). A body with a
 * non-finite number in it is dropped where it can be placed and rests at once.
 */
export function step(world: World, body: Body): boolean {
  if (!body.isFinite()) {
    sanitize(world, body)
    dropDown(world, body)
    return true
  }
  const dt = STEP_SECONDS
  const kind = body.kind
  const radius = collisionRadius(kind)

  body.velocity[1] = f(body.velocity[1] - f(GRAVITY * dt))
  body.velocity = clampLength(body.velocity, MAX_SPEED)
  body.angularVelocity = clampLength(body.angularVelocity, MAX_SPIN)

  const [vx, vy, vz] = body.velocity
  body.position = [f(body.position[0] + f(vx * dt)), f(body.position[1] + f(vy * dt)), f(body.position[2] + f(vz * dt))]
  body.orientation = integrateOrientation(body.orientation, body.angularVelocity, dt)

  // Contacts: the floor and box tops hold the body up (the highest one);
  // walls and box sides only bounce it.
  let support: {top: number; box: Aabb | null} | null = null
  let impact = false
  const p = body.position
  const v = body.velocity
  if (p[1] < radius) {
    p[1] = radius
    hit(v, [0, 1, 0], kind)
    support = {top: 0, box: null}
  }
  const limit = f(world.halfSize - radius)
  for (const axis of [0, 2]) {
    const normal: Vec3 = [0, 0, 0]
    if (p[axis] > limit) {
      p[axis] = limit
      normal[axis] = -1
    } else if (p[axis] < -limit) {
      p[axis] = -limit
      normal[axis] = 1
    } else {
      continue
    }
    hit(v, normal, kind)
    impact = true
  }
  for (const box of world.boxes) {
    const normal = collideBox(box, kind, p, v)
    if (normal === null) continue
    if (normal[1] > SUPPORT_NORMAL_Y) {
      const top = box.max[1]
      if (support === null || top > support.top) support = {top, box}
    } else {
      impact = true
    }
  }

  if (support !== null) {
    const keep = slideKeep(kind)
    v[0] = f(v[0] * keep)
    v[2] = f(v[2] * keep)
    if (kind === "ball") {
      // Rolling without slipping on a horizontal support: spin = up x v / r.
      body.angularVelocity = [f(v[2] / radius), 0, f(-v[0] / radius)]
    } else {
      body.angularVelocity = scale3(body.angularVelocity, SPIN_KEEP_SUPPORTED)
    }
  } else if (impact) {
    body.angularVelocity = scale3(body.angularVelocity, SPIN_KEEP_IMPACT)
  }

  if (support === null) {
    body.stillSteps = 0
    return false
  }
  const still =
    lengthSquared(body.velocity) < f(REST_SPEED * REST_SPEED) && lengthSquared(body.angularVelocity) < f(REST_SPIN * REST_SPIN)
  if (!still) {
    body.stillSteps = 0
    return false
  }
  body.stillSteps += 1
  if (body.stillSteps < REST_STEPS) return false
  settle(world, body, support.top, support.box)
  return true
}

/**
 * Steps until rest or `maxSteps`; returns the steps taken. A body still moving
 * after `maxSteps` is settled where it is (dropped straight down).
 */
export function simulateToRest(world: World, body: Body, maxSteps: number): number {
  for (let taken = 1; taken <= maxSteps; taken++) {
    if (step(world, body)) return taken
  }
  dropDown(world, body)
  return Math.max(0, maxSteps)
}

/**
 * Settles `body` at once straight below where it is: on the highest box whose
 * footprint holds its centre (and whose bottom is below it), else on the floor.
 */
export function dropDown(world: World, body: Body): void {
  sanitize(world, body)
  const [x, y, z] = body.position
  let top = 0
  let onBox: Aabb | null = null
  for (const box of world.boxes) {
    const over = x >= box.min[0] && x <= box.max[0] && z >= box.min[2] && z <= box.max[2] && y >= box.min[1]
    if (over && box.max[1] > top) {
      top = box.max[1]
      onBox = box
    }
  }
  settle(world, body, top, onBox)
}

/** Replaces non-finite numbers: a position component by 0, an orientation by identity, velocities by zero. */
function sanitize(world: World, body: Body): void {
  body.position = body.position.map((c) => (Number.isFinite(c) ? f(c) : 0)) as Vec3
  const limit = f(world.halfSize - collisionRadius(body.kind))
  body.position[0] = clamp(body.position[0], -limit, limit)
  body.position[2] = clamp(body.position[2], -limit, limit)
  body.position[1] = Math.max(body.position[1], 0)
  body.orientation = body.orientation.every(Number.isFinite) ? normalizeQuat(f4(body.orientation)) : [0, 0, 0, 1]
  if (!body.velocity.every(Number.isFinite)) body.velocity = [0, 0, 0]
  if (!body.angularVelocity.every(Number.isFinite)) body.angularVelocity = [0, 0, 0]
}

/** Puts the body at rest on a support whose top is at `top`, turned to how its kind lies. */
function settle(world: World, body: Body, top: number, onBox: Aabb | null): void {
  const kind = body.kind
  const limit = f(world.halfSize - collisionRadius(kind))
  let x = clamp(body.position[0], -limit, limit)
  let z = clamp(body.position[2], -limit, limit)
  if (onBox !== null) {
    // A body balanced on an edge rests just inside it.
    x = clamp(x, onBox.min[0], onBox.max[0])
    z = clamp(z, onBox.min[2], onBox.max[2])
  }
  body.position = [x, f(top + restingHalfHeight(kind)), z]
  body.velocity = [0, 0, 0]
  body.angularVelocity = [0, 0, 0]
  body.stillSteps = 0
  if (kind === "cube") body.orientation = faceDown(body.orientation)
  else if (kind === "marker") body.orientation = lyingFlat(body.orientation)
}

/** Collides a sphere at `p` with the box's top and sides; the contact normal when they touched. */
function collideBox(box: Aabb, kind: ObjectKind, p: Vec3, v: Vec3): Vec3 | null {
  const radius = collisionRadius(kind)
  const closest: Vec3 = [clamp(p[0], box.min[0], box.max[0]), clamp(p[1], box.min[1], box.max[1]), clamp(p[2], box.min[2], box.max[2])]
  const d: Vec3 = [f(p[0] - closest[0]), f(p[1] - closest[1]), f(p[2] - closest[2])]
  const distanceSquared = lengthSquared(d)
  if (distanceSquared >= f(radius * radius)) return null
  let normal: Vec3
  if (distanceSquared > 0) {
    const distance = f(Math.sqrt(distanceSquared))
    normal = [f(d[0] / distance), f(d[1] / distance), f(d[2] / distance)]
    p[0] = f(closest[0] + f(normal[0] * radius))
    p[1] = f(closest[1] + f(normal[1] * radius))
    p[2] = f(closest[2] + f(normal[2] * radius))
  } else {
    // The centre got inside (a fast object): out through the nearest face of the top and the sides.
    const depths = [f(box.max[1] - p[1]), f(box.max[0] - p[0]), f(p[0] - box.min[0]), f(box.max[2] - p[2]), f(p[2] - box.min[2])]
    let face = 0
    depths.forEach((depth, index) => {
      if (depth < depths[face]) face = index
    })
    switch (face) {
      case 0:
        normal = [0, 1, 0]
        p[1] = f(box.max[1] + radius)
        break
      case 1:
        normal = [1, 0, 0]
        p[0] = f(box.max[0] + radius)
        break
      case 2:
        normal = [-1, 0, 0]
        p[0] = f(box.min[0] - radius)
        break
      case 3:
        normal = [0, 0, 1]
        p[2] = f(box.max[2] + radius)
        break
      default:
        normal = [0, 0, -1]
        p[2] = f(box.min[2] - radius)
    }
  }
  hit(v, normal, kind)
  return normal
}

/**
 * A body moving at `v` against a surface with unit `normal`: the normal speed
 * bounces back (or stops, when slow), and friction takes from the sliding speed
 * in proportion to the surface's push (Coulomb). Changes `v` in place.
 */
function hit(v: Vec3, normal: Vec3, kind: ObjectKind): void {
  const approach = dot(v, normal)
  if (approach >= 0) return
  const bounce = restitution(kind)
  let slide: Vec3 = [f(v[0] - f(normal[0] * approach)), f(v[1] - f(normal[1] * approach)), f(v[2] - f(normal[2] * approach))]
  const slideSquared = lengthSquared(slide)
  if (slideSquared > 0) {
    const speed = f(Math.sqrt(slideSquared))
    const cut = f(f(friction(kind) * f(1 + bounce)) * -approach)
    const keep = cut >= speed ? 0 : f(f(speed - cut) / speed)
    slide = scale3(slide, keep)
  }
  const after = bounced(approach, bounce)
  v[0] = f(slide[0] + f(normal[0] * after))
  v[1] = f(slide[1] + f(normal[1] * after))
  v[2] = f(slide[2] + f(normal[2] * after))
}

/** The normal speed after a bounce at `speed`: reversed and scaled, or zero when too slow. */
function bounced(speed: number, bounce: number): number {
  const after = f(-speed * bounce)
  return Math.abs(after) < MIN_BOUNCE_SPEED ? 0 : after
}

/** `q` turned by angular velocity `w` for `dt`: q += dt/2 [w, 0] q, normalized. */
function integrateOrientation(q: Quat, w: Vec3, dt: number): Quat {
  const [x, y, z, qw] = q
  const [wx, wy, wz] = w
  const h = f(dt * 0.5)
  const dx = f(f(f(wx * qw) + f(wy * z)) - f(wz * y))
  const dy = f(f(f(wy * qw) + f(wz * x)) - f(wx * z))
  const dz = f(f(f(wz * qw) + f(wx * y)) - f(wy * x))
  const dw = f(f(-f(wx * x) - f(wy * y)) - f(wz * z))
  return normalizeQuat([f(x + f(dx * h)), f(y + f(dy * h)), f(z + f(dz * h)), f(qw + f(dw * h))])
}

function normalizeQuat(q: Quat): Quat {
  const n2 = f(f(f(f(q[0] * q[0]) + f(q[1] * q[1])) + f(q[2] * q[2])) + f(q[3] * q[3]))
  if (!Number.isFinite(n2) || n2 <= f(1e-12)) return [0, 0, 0, 1]
  const n = f(Math.sqrt(n2))
  return [f(q[0] / n), f(q[1] / n), f(q[2] / n), f(q[3] / n)]
}

/** Hamilton product `a b`. */
function quatMul(a: Quat, b: Quat): Quat {
  return [
    f(f(f(f(a[3] * b[0]) + f(a[0] * b[3])) + f(a[1] * b[2])) - f(a[2] * b[1])),
    f(f(f(f(a[3] * b[1]) - f(a[0] * b[2])) + f(a[1] * b[3])) + f(a[2] * b[0])),
    f(f(f(f(a[3] * b[2]) + f(a[0] * b[1])) - f(a[1] * b[0])) + f(a[2] * b[3])),
    f(f(f(f(a[3] * b[3]) - f(a[0] * b[0])) - f(a[1] * b[1])) - f(a[2] * b[2])),
  ]
}

/** The local axes of `q` in room coordinates: the columns of its rotation. */
function axes(q: Quat): [Vec3, Vec3, Vec3] {
  const [x, y, z, w] = q
  const two = (a: number) => f(2 * a)
  return [
    [f(1 - two(f(f(y * y) + f(z * z)))), two(f(f(x * y) + f(w * z))), two(f(f(x * z) - f(w * y)))],
    [two(f(f(x * y) - f(w * z))), f(1 - two(f(f(x * x) + f(z * z)))), two(f(f(y * z) + f(w * x)))],
    [two(f(f(x * z) + f(w * y))), two(f(f(y * z) - f(w * x))), f(1 - two(f(f(x * x) + f(y * y))))],
  ]
}

/** The shortest turn taking unit `from` to unit `to` (not opposite). */
function turnBetween(from: Vec3, to: Vec3): Quat {
  const c = cross(from, to)
  return normalizeQuat([c[0], c[1], c[2], f(1 + dot(from, to))])
}

/** A cube turned the least so that the local axis nearest vertical is vertical, its yaw kept. */
function faceDown(orientation: Quat): Quat {
  const q = normalizeQuat(orientation)
  let up: Vec3 = [0, 1, 0]
  let best = -1
  for (const axis of axes(q)) {
    if (Math.abs(axis[1]) > best) {
      best = Math.abs(axis[1])
      up = axis[1] < 0 ? [-axis[0], -axis[1], -axis[2]] : axis
    }
  }
  return normalizeQuat(quatMul(turnBetween(up, [0, 1, 0]), q))
}

/** A marker (long along its local Y) turned the least so that it lies flat along where it pointed. */
function lyingFlat(orientation: Quat): Quat {
  const q = normalizeQuat(orientation)
  const [, long, side] = axes(q)
  let flat: Vec3 = [long[0], 0, long[2]]
  if (lengthSquared(flat) < f(1e-6)) flat = [side[0], 0, side[2]]
  const n = f(Math.sqrt(lengthSquared(flat)))
  return normalizeQuat(quatMul(turnBetween(long, [f(flat[0] / n), 0, f(flat[2] / n)]), q))
}

function dot(a: Vec3, b: Vec3): number {
  return f(f(f(a[0] * b[0]) + f(a[1] * b[1])) + f(a[2] * b[2]))
}

function cross(a: Vec3, b: Vec3): Vec3 {
  return [f(f(a[1] * b[2]) - f(a[2] * b[1])), f(f(a[2] * b[0]) - f(a[0] * b[2])), f(f(a[0] * b[1]) - f(a[1] * b[0]))]
}

function lengthSquared(a: Vec3): number {
  return dot(a, a)
}

function scale3(a: Vec3, s: number): Vec3 {
  return [f(a[0] * s), f(a[1] * s), f(a[2] * s)]
}

function clampLength(a: Vec3, max: number): Vec3 {
  const l2 = lengthSquared(a)
  if (l2 <= f(max * max)) return a
  return scale3(a, f(max / f(Math.sqrt(l2))))
}

function clamp(x: number, min: number, max: number): number {
  return Math.min(Math.max(x, min), max)
}

/** A flight driven by a frame clock: whole steps for the time that passed. */
export class Flight {
  /** Seconds not yet stepped (f32). */
  carry = 0
  resting = false
  /** Steps taken; at MAX_FLIGHT_STEPS the body is dropped straight down. */
  steps = 0

  constructor(public body: Body) {}

  /** Runs the steps `elapsedSeconds` holds (at most one second's worth); true once resting. */
  advance(world: World, elapsedSeconds: number): boolean {
    if (this.resting) return true
    const elapsed = Number.isFinite(elapsedSeconds) ? clamp(f(elapsedSeconds), 0, 1) : 0
    this.carry = Math.min(f(this.carry + elapsed), 1)
    while (this.carry >= f(STEP_SECONDS - CARRY_SLACK_SECONDS)) {
      this.carry = f(this.carry - STEP_SECONDS)
      this.steps += 1
      if (step(world, this.body)) {
        this.resting = true
      } else if (this.steps >= MAX_FLIGHT_STEPS) {
        dropDown(world, this.body)
        this.resting = true
      }
      if (this.resting) {
        this.carry = 0
        break
      }
    }
    return this.resting
  }
}

/** The span of samples a velocity is measured over, in seconds. */
export const VELOCITY_WINDOW_SECONDS = 0.1
const MAX_SAMPLES = 32

interface Sample {
  time: number
  position: Vec3
  orientation: Quat
}

/**
 * Estimates a holder's hand (or dragged object's) velocity from recent poses:
 * the least-squares slope of position over the last ~100 ms, and the turn
 * from the window's first orientation to its last. The crate's estimator in
 * doubles; not held to the vectors bit for bit.
 */
export class VelocityEstimator {
  private samples: Sample[] = []

  /**
   * Records where the hand was at `timeSeconds`. A sample at the same time as
   * the last replaces it; an earlier one (a clock that went back) starts over;
   * non-finite samples are ignored.
   */
  push(timeSeconds: number, position: readonly number[], orientation: readonly number[]): void {
    if (!Number.isFinite(timeSeconds) || !position.every(Number.isFinite) || !orientation.every(Number.isFinite)) return
    const last = this.samples[this.samples.length - 1]
    if (last !== undefined && last.time === timeSeconds) this.samples.pop()
    else if (last !== undefined && last.time > timeSeconds) this.samples = []
    this.samples.push({time: timeSeconds, position: f3(position), orientation: normalizeQuat(f4(orientation))})
    // Keep one sample older than the window, so a slow sender still gives a velocity.
    while (
      this.samples.length > MAX_SAMPLES ||
      (this.samples.length > 2 && timeSeconds - this.samples[1].time > VELOCITY_WINDOW_SECONDS)
    ) {
      this.samples.shift()
    }
  }

  /** [linear, angular] velocity over the last ~100 ms; zero with fewer than two samples. */
  velocity(): [Vec3, Vec3] {
    const count = this.samples.length
    if (count < 2) return [[0, 0, 0], [0, 0, 0]]
    const newest = this.samples[count - 1].time
    let first = this.samples.findIndex((s) => newest - s.time <= VELOCITY_WINDOW_SECONDS)
    if (first < 0) first = count - 1
    first = Math.min(first, count - 2)
    const window = this.samples.slice(first)
    const n = window.length
    const meanT = window.reduce((sum, s) => sum + s.time, 0) / n
    const meanP = [0, 1, 2].map((axis) => window.reduce((sum, s) => sum + s.position[axis] / n, 0))
    let tt = 0
    const tp = [0, 0, 0]
    for (const s of window) {
      const dt = s.time - meanT
      tt += dt * dt
      for (let axis = 0; axis < 3; axis++) tp[axis] += dt * (s.position[axis] - meanP[axis])
    }
    if (!Number.isFinite(tt) || tt <= 1e-12) return [[0, 0, 0], [0, 0, 0]]
    const velocity = clampLength(f3(tp.map((c) => c / tt)), MAX_SPEED)

    const from = window[0]
    const to = window[n - 1]
    const span = to.time - from.time
    const inverse: Quat = [-from.orientation[0], -from.orientation[1], -from.orientation[2], from.orientation[3]]
    let turn = quatMul(to.orientation, inverse)
    if (turn[3] < 0) turn = turn.map((c) => -c) as Quat
    const sinHalf = Math.hypot(turn[0], turn[1], turn[2])
    let angular: Vec3 = [0, 0, 0]
    if (sinHalf > 1e-7 && span > 0) {
      const angle = 2 * Math.atan2(sinHalf, turn[3])
      const scale = angle / (sinHalf * span)
      angular = clampLength(f3([turn[0] * scale, turn[1] * scale, turn[2] * scale]), MAX_SPIN)
    }
    return [velocity, angular]
  }

  clear(): void {
    this.samples = []
  }
}
