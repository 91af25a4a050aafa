// Remote avatars move smoothly although their poses arrive in 30 Hz batches with
// network jitter: each avatar is shown about DEFAULT_DELAY in the past,
// interpolated between the two samples around that moment. The same logic as
// the native app's interpolator (app/src/interpolation.rs), so browser and
// native clients show the same motion; both are checked against
// protocol/vectors/interpolation.json.
//
// A track notices when the sender's clock restarted (a restarted room's pose
// clock starts again at 0) and starts over from the first sample of the new
// timeline; see AvatarTrack.push. Callers also reset (or drop) every track on
// each join, when slots may have changed hands.
//
// Plain logic: time is an input (seconds on the receiver's clock), so tests can
// feed it any timeline.

import type {AvatarPose, Joint, Quat, Vec3} from "../protocol/pose"

/** How far behind real time remote avatars are shown, in seconds. */
export const DEFAULT_DELAY = 0.1
/** Samples older than this behind the newest are forgotten, in seconds. */
const HISTORY = 1.0
/**
 * A sample stamped before the newest one that arrived more than this much later
 * than the fastest delivery so far (seconds) belongs to a restarted clock.
 * Jitter never makes a stream go back in time, and a stream that stalls and then
 * delivers a late burst goes forward, so neither trips it.
 */
const CLOCK_RESTART = 1.0

/** One remote avatar's recent poses on the sender's timeline. */
export class AvatarTrack {
  /** [server time in seconds, pose], oldest first. */
  private samples: Array<[number, AvatarPose]> = []
  /**
   * Smallest (receive time - server time) seen: the clock offset of the fastest
   * delivery, which jitter can only make larger.
   */
  private offset: number | null = null

  constructor(private readonly delay = DEFAULT_DELAY) {}

  /**
   * Records a pose stamped `serverTime` (batch header, seconds) that arrived at
   * `receiveTime` (receiver clock, seconds).
   *
   * A sample stamped before the newest one yet delivered more than a second
   * later than the fastest delivery so far cannot come from the timeline the
   * track holds: the sender's clock restarted (a restarted room, or its 32-bit
   * millisecond clock wrapping). The track then forgets its samples and offset
   * and starts over from this sample. Any other sample, early, late or out of
   * order, is sorted into the timeline.
   */
  push(receiveTime: number, serverTime: number, pose: AvatarPose): void {
    const offset = receiveTime - serverTime
    const newest = this.samples.length ? this.samples[this.samples.length - 1][0] : null
    if (this.offset !== null && newest !== null && serverTime < newest && offset - this.offset > CLOCK_RESTART) {
      this.reset()
    }
    this.offset = this.offset === null ? offset : Math.min(this.offset, offset)
    // Batches can arrive out of order over a reconnect; keep the timeline sorted.
    const at = partitionPoint(this.samples, (t) => t <= serverTime)
    if (at > 0 && this.samples[at - 1][0] === serverTime) {
      this.samples[at - 1][1] = pose
    } else {
      this.samples.splice(at, 0, [serverTime, pose])
    }
    const last = this.samples[this.samples.length - 1][0]
    while (this.samples.length > 2 && this.samples[1][0] < last - HISTORY) {
      this.samples.shift()
    }
  }

  /**
   * Forgets every sample and the clock offset, as a new track would have.
   * Callers do this on every (re)join: the room's clock may have restarted and
   * the slot may now be someone else's.
   */
  reset(): void {
    this.samples = []
    this.offset = null
  }

  /** The pose to show at `now` (receiver clock, seconds), or null before the first sample. */
  sample(now: number): AvatarPose | null {
    if (this.offset === null || this.samples.length === 0) {
      return null
    }
    const target = now - this.offset - this.delay
    const after = partitionPoint(this.samples, (t) => t <= target)
    if (after === 0) {
      return this.samples[0][1]
    }
    if (after === this.samples.length) {
      return this.samples[this.samples.length - 1][1]
    }
    const [t0, a] = this.samples[after - 1]
    const [t1, b] = this.samples[after]
    const f = (target - t0) / (t1 - t0)
    return {
      head: lerpJoint(a.head, b.head, f),
      left: lerpJoint(a.left, b.left, f),
      right: lerpJoint(a.right, b.right, f),
      // Tracking flags switch at the later sample, never half-way.
      flags: f < 1 ? a.flags : b.flags,
    }
  }
}

/** Index of the first sample whose time fails `before` (samples are sorted). */
function partitionPoint(samples: Array<[number, AvatarPose]>, before: (t: number) => boolean): number {
  let low = 0
  let high = samples.length
  while (low < high) {
    const mid = (low + high) >> 1
    if (before(samples[mid][0])) {
      low = mid + 1
    } else {
      high = mid
    }
  }
  return low
}

function lerpJoint(a: Joint, b: Joint, f: number): Joint {
  const position = a.position.map((p, i) => p + (b.position[i] - p) * f) as Vec3
  return {position, orientation: nlerp(a.orientation, b.orientation, f)}
}

/**
 * Normalised linear interpolation along the shorter arc; between 30 Hz samples
 * the angles are small, where it matches slerp closely.
 */
export function nlerp(a: Quat, b: Quat, f: number): Quat {
  const dot = a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3]
  const sign = dot < 0 ? -1 : 1
  const q = a.map((c, i) => c * (1 - f) + b[i] * sign * f)
  const norm = Math.hypot(...q)
  return norm < 1e-6 ? a : (q.map((c) => c / norm) as Quat)
}
