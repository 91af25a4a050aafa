// The visitor's own pose, read from what Babylon draws: in VR the XR camera and
// the controllers' grips, on the flat screen the camera with hands resting at
// the sides. And the sender that puts it on the wire at most 30 times a second,
// only when it changed (and again every POSE_REFRESH_MS, so a pose lost on the
// way heals), with the poses of the objects the visitor holds or throws after
// it (then also at least every OBJECT_KEEPALIVE_MS, still or not: the server
// drops a silent hold).

import type {Camera} from "@babylonjs/core/Cameras/camera"
import {Quaternion} from "@babylonjs/core/Maths/math.vector"
import type {WebXRDefaultExperience} from "@babylonjs/core/XR/webXRDefaultExperience"

import {OBJECT_KEEPALIVE_MS, POSE_REFRESH_MS} from "@roomscale/protocol"

import {PoseFlags, encodePose, encodePosePush, type AvatarPose, type Joint, type Quat, type Vec3} from "../protocol/pose"

/** Where resting hands hang relative to the head, before turning with it, in metres. */
const REST_LEFT: Vec3 = [-0.22, -0.55, -0.15]
const REST_RIGHT: Vec3 = [0.22, -0.55, -0.15]

/** The flat-screen pose: the camera as the head, hands at rest, untracked. */
export function flatPose(camera: Camera): AvatarPose {
  const head = cameraJoint(camera)
  return {head, ...restingHands(head), flags: 0}
}

/** The immersive pose: the XR camera as the head, tracked controllers as hands. */
export function immersivePose(xr: WebXRDefaultExperience): AvatarPose {
  const head = cameraJoint(xr.baseExperience.camera)
  const hands = restingHands(head)
  let flags = 0
  for (const controller of xr.input.controllers) {
    const handedness = controller.inputSource.handedness
    if (handedness !== "left" && handedness !== "right") {
      continue
    }
    // The grip is where the hand holds the controller; a pointer-only source still says where it is.
    const mesh = controller.grip ?? controller.pointer
    mesh.computeWorldMatrix(true)
    const position = mesh.getAbsolutePosition()
    const rotation = mesh.absoluteRotationQuaternion
    hands[handedness] = {
      position: [position.x, position.y, position.z],
      orientation: [rotation.x, rotation.y, rotation.z, rotation.w],
    }
    flags |= handedness === "left" ? PoseFlags.LEFT_TRACKED : PoseFlags.RIGHT_TRACKED
  }
  return {head, ...hands, flags}
}

const scratchRotation = new Quaternion()

function cameraJoint(camera: Camera): Joint {
  camera.computeWorldMatrix()
  const position = camera.globalPosition
  // With scene.useRightHandedSystem the camera's world matrix looks down -Z at
  // identity, exactly like a WebXR view: its rotation goes on the wire unchanged.
  camera.getWorldMatrix().decompose(undefined, scratchRotation)
  return {
    position: [position.x, position.y, position.z],
    orientation: [scratchRotation.x, scratchRotation.y, scratchRotation.z, scratchRotation.w],
  }
}

/** Hands hanging beside the body, turned with the head's heading (not its pitch or roll). */
export function restingHands(head: Joint): {left: Joint; right: Joint} {
  const yaw = headingOf(head.orientation)
  const orientation: Quat = [0, Math.sin(yaw / 2), 0, Math.cos(yaw / 2)]
  const place = (offset: Vec3): Joint => {
    const [x, y, z] = offset
    const cos = Math.cos(yaw)
    const sin = Math.sin(yaw)
    return {
      position: [head.position[0] + x * cos + z * sin, head.position[1] + y, head.position[2] - x * sin + z * cos],
      orientation,
    }
  }
  return {left: place(REST_LEFT), right: place(REST_RIGHT)}
}

/** The rotation about +Y that turns -Z toward where `q` looks, in radians. */
export function headingOf(q: Quat): number {
  const [x, y, z, w] = q
  // Forward (-Z) rotated by q.
  const forwardX = -2 * (x * z + w * y)
  const forwardZ = -(1 - 2 * (x * x + y * y))
  return Math.atan2(-forwardX, -forwardZ)
}

/**
 * Sends the pose at most `rateHz` times a second, and only when its encoding
 * changed: a visitor standing still costs one push every POSE_REFRESH_MS, or
 * one every OBJECT_KEEPALIVE_MS while they hold or throw an object.
 */
export class PoseSender {
  private lastSent: Uint8Array | null = null
  private lastSentAt = -Infinity
  private nextSendAt = 0
  private readonly periodMs: number

  constructor(
    private readonly send: (encoded: Uint8Array) => boolean,
    rateHz = 30,
  ) {
    this.periodMs = 1000 / rateHz
  }

  /** Forget what was sent: after a (re)join the server knows no pose of ours. */
  reset(): void {
    this.lastSent = null
  }

  /**
   * Offers the current pose at `now` (milliseconds) with the encoded poses of
   * held or thrown objects; returns whether it was sent.
   */
  offer(now: number, pose: AvatarPose, objects: Uint8Array[] = []): boolean {
    if (now < this.nextSendAt) {
      return false
    }
    const encoded = objects.length ? encodePosePush(encodePose(0, pose), objects) : encodePose(0, pose)
    // A held object's pose keeps its hold alive; an unchanged avatar pose is
    // refreshed more slowly, in case one was lost on the way.
    const keepAlive = now - this.lastSentAt >= (objects.length > 0 ? OBJECT_KEEPALIVE_MS : POSE_REFRESH_MS)
    if (this.lastSent && sameBytes(encoded, this.lastSent) && !keepAlive) {
      return false
    }
    if (!this.send(encoded)) {
      return false
    }
    this.lastSent = encoded
    this.lastSentAt = now
    // The schedule keeps the average at the rate whatever the frame rate (72 Hz
    // frames do not round down to 24 Hz), and never lets two sends come closer
    // than half a period, also after a pause.
    this.nextSendAt = Math.max(this.nextSendAt + this.periodMs, now + this.periodMs / 2)
    return true
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i])
}
