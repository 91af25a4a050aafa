//! Picking up objects: with the mouse or a finger on the flat screen, with a
//! controller's squeeze (grip) button in VR.
//!
//! Flat screen: press on an object and drag; it moves on the plane facing the
//! camera through its centre (the mouse wheel pushes it away or pulls it
//! closer) and letting go throws it with the drag's velocity. The camera does
//! not turn while an object is dragged: this handler runs before the camera's
//! and stops the events it uses.
//!
//! VR: squeezing within GRAB_REACH_M of an object's centre takes it; it keeps
//! the offset it had from the controller's grip and follows the grip; letting
//! go throws it with the controller's velocity.

// Scene picking needs Ray's side effect registered; WebXR registers it too,
// but a browser without a headset never sets WebXR up.
import "@babylonjs/core/Culling/ray"
import type {Camera} from "@babylonjs/core/Cameras/camera"
import {PointerEventTypes, type PointerInfo} from "@babylonjs/core/Events/pointerEvents"
import {Matrix, Quaternion, Vector3} from "@babylonjs/core/Maths/math.vector"
import type {Scene} from "@babylonjs/core/scene"
import type {WebXRDefaultExperience} from "@babylonjs/core/XR/webXRDefaultExperience"

import type {Quat, Vec3} from "../protocol/pose"
import type {RoomObjects} from "./objects"

/** How much one wheel notch moves a dragged object toward or away from the camera, in metres. */
const WHEEL_STEP_M = 0.1
/** The closest a dragged object comes to the camera, in metres. */
const MIN_DRAG_DEPTH_M = 0.3
/** Squeeze counts as pressed past this value (xr-standard button 1). */
const SQUEEZE_PRESSED = 0.5

interface Drag {
  id: string
  pointerId: number
  /** Distance of the drag plane from the camera along its forward axis. */
  depth: number
  /** Object centre minus where the pointer's ray met the plane at the press. */
  offset: Vector3
  orientation: Quat
}

interface HandHold {
  id: string
  /** The object's pose in the grip's frame at the grab. */
  offset: Matrix
}

export class Grabbing {
  private drag: Drag | null = null
  private readonly hands = new Map<string, HandHold>()
  private readonly squeezed = new Set<string>()

  constructor(
    private readonly scene: Scene,
    private readonly camera: Camera,
    private readonly objects: RoomObjects,
    /** Whether the visitor is in VR now (the flat-screen pointer then does nothing here). */
    private readonly immersive: () => boolean,
  ) {
    // insertFirst: before the camera's own pointer input, so a drag on an object does not turn the view.
    scene.onPointerObservable.add(
      (info, state) => {
        if (this.handlePointer(info)) {
          state.skipNextObservers = true
        }
      },
      PointerEventTypes.POINTERDOWN | PointerEventTypes.POINTERMOVE | PointerEventTypes.POINTERUP | PointerEventTypes.POINTERWHEEL,
      true,
    )
  }

  /** Once per frame, before objects.frame: keeps held objects where the pointer or hands are. */
  frame(nowMs: number, xr: WebXRDefaultExperience | null): void {
    if (this.drag) {
      if (!this.objects.isCarriedHere(this.drag.id)) {
        // Refused, or caught by someone else.
        this.drag = null
      } else {
        this.moveDrag(nowMs)
      }
    }
    if (xr && this.immersive()) {
      this.xrFrame(nowMs, xr)
    }
  }

  /** True when the event was about an object (and the camera must not see it). */
  private handlePointer(info: PointerInfo): boolean {
    if (this.immersive()) {
      return false
    }
    const event = info.event as PointerEvent
    switch (info.type) {
      case PointerEventTypes.POINTERDOWN: {
        if (this.drag || (event.button !== undefined && event.button !== 0)) {
          return this.drag !== null
        }
        const pick = this.scene.pick(this.scene.pointerX, this.scene.pointerY, (mesh) => this.objects.objectOf(mesh) !== null, false, this.camera)
        const id = pick?.hit ? this.objects.objectOf(pick.pickedMesh) : null
        if (!id) {
          return false
        }
        if (!this.objects.grab(id)) {
          // Someone else holds it: the server's refusal will say who. The view does not turn either.
          return true
        }
        const pose = this.objects.shownPose(id)!
        const centre = new Vector3(...pose.position)
        const forward = this.camera.getDirection(Vector3.Forward(this.scene.useRightHandedSystem))
        const depth = Math.max(MIN_DRAG_DEPTH_M, Vector3.Dot(centre.subtract(this.camera.globalPosition), forward))
        const hit = this.rayOnPlane(depth) ?? centre
        this.drag = {id, pointerId: event.pointerId ?? 0, depth, offset: centre.subtract(hit), orientation: pose.orientation}
        this.moveDrag(performance.now())
        return true
      }
      case PointerEventTypes.POINTERMOVE:
        if (this.drag) {
          this.moveDrag(performance.now())
          return true
        }
        return false
      case PointerEventTypes.POINTERWHEEL:
        if (this.drag) {
          const wheel = event as unknown as WheelEvent
          this.drag.depth = Math.max(MIN_DRAG_DEPTH_M, this.drag.depth - Math.sign(wheel.deltaY) * WHEEL_STEP_M)
          this.moveDrag(performance.now())
          return true
        }
        return false
      case PointerEventTypes.POINTERUP:
        if (this.drag && (event.pointerId ?? 0) === this.drag.pointerId) {
          this.moveDrag(performance.now())
          this.objects.release(this.drag.id, performance.now())
          this.drag = null
          return true
        }
        return false
    }
    return false
  }

  private moveDrag(nowMs: number): void {
    const drag = this.drag!
    const hit = this.rayOnPlane(drag.depth)
    if (!hit) {
      return
    }
    const centre = hit.add(drag.offset)
    this.objects.moveHeld(drag.id, {position: [centre.x, centre.y, centre.z], orientation: drag.orientation}, nowMs)
  }

  /** Where the pointer's ray meets the plane facing the camera `depth` ahead of it. */
  private rayOnPlane(depth: number): Vector3 | null {
    this.camera.computeWorldMatrix()
    const ray = this.scene.createPickingRay(this.scene.pointerX, this.scene.pointerY, Matrix.Identity(), this.camera)
    const forward = this.camera.getDirection(Vector3.Forward(this.scene.useRightHandedSystem))
    const along = Vector3.Dot(ray.direction, forward)
    if (along <= 1e-3) {
      return null
    }
    return ray.origin.add(ray.direction.scale(depth / along))
  }

  private xrFrame(nowMs: number, xr: WebXRDefaultExperience): void {
    for (const controller of xr.input.controllers) {
      const hand = controller.inputSource.handedness
      const grip = controller.grip ?? controller.pointer
      const value = controller.inputSource.gamepad?.buttons[1]?.value ?? 0
      const pressed = value > SQUEEZE_PRESSED
      const wasPressed = this.squeezed.has(hand)
      grip.computeWorldMatrix(true)
      const gripWorld = grip.getWorldMatrix()
      if (pressed && !wasPressed) {
        this.squeezed.add(hand)
        const at = grip.getAbsolutePosition()
        const id = this.objects.nearest([at.x, at.y, at.z])
        const inOtherHand = [...this.hands.values()].some((hold) => hold.id === id)
        if (id && !inOtherHand && this.objects.grab(id)) {
          const pose = this.objects.shownPose(id)!
          const objectWorld = Matrix.Compose(Vector3.One(), new Quaternion(...pose.orientation), new Vector3(...pose.position))
          // Row vectors: world = local * parent, so local = world * inverse(parent).
          this.hands.set(hand, {id, offset: objectWorld.multiply(Matrix.Invert(gripWorld))})
        }
      } else if (!pressed && wasPressed) {
        this.squeezed.delete(hand)
        const hold = this.hands.get(hand)
        if (hold) {
          this.follow(hold, gripWorld, nowMs)
          this.objects.release(hold.id, nowMs)
          this.hands.delete(hand)
        }
      }
      const hold = this.hands.get(hand)
      if (hold) {
        if (this.objects.isCarriedHere(hold.id)) {
          this.follow(hold, gripWorld, nowMs)
        } else {
          this.hands.delete(hand)
        }
      }
    }
  }

  private follow(hold: HandHold, gripWorld: Matrix, nowMs: number): void {
    const world = hold.offset.multiply(gripWorld)
    const position = new Vector3()
    const rotation = new Quaternion()
    world.decompose(undefined, rotation, position)
    const position3: Vec3 = [position.x, position.y, position.z]
    this.objects.moveHeld(hold.id, {position: position3, orientation: [rotation.x, rotation.y, rotation.z, rotation.w]}, nowMs)
  }
}
