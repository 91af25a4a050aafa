// Moving on a phone or tablet: a virtual stick at the bottom left walks
// (forward, back and sideways, relative to where the view looks, on the
// floor), and a one-finger drag on the view turns it, up and down too.
// The stick shows on touch screens, and on any screen once it is touched.

import type {FreeCameraTouchInput} from "@babylonjs/core/Cameras/Inputs/freeCameraTouchInput"
import type {UniversalCamera} from "@babylonjs/core/Cameras/universalCamera"
import {Vector3} from "@babylonjs/core/Maths/math.vector"
import type {Scene} from "@babylonjs/core/scene"

import {element} from "./dom"

/** Walking speed at full stick, metres per second (the keyboard's pace). */
const STICK_SPEED_M_S = 1.5
/** How far (CSS px) the knob travels from the centre at full stick. */
const STICK_RADIUS_PX = 44
/** Below this fraction of full travel the stick does nothing, so a resting thumb does not drift. */
const DEAD_ZONE = 0.12

export class TouchControls {
  readonly stick: HTMLElement
  private readonly knob: HTMLElement
  private pointerId: number | null = null
  private centre = {x: 0, y: 0}
  /** Stick deflection: x right, y forward, each -1..1. */
  private vector = {x: 0, y: 0}

  constructor(view: HTMLElement, scene: Scene, camera: UniversalCamera) {
    this.stick = element("div", {className: "touch-stick", hidden: !window.matchMedia("(pointer: coarse)").matches})
    this.stick.setAttribute("role", "group")
    this.stick.setAttribute("aria-label", "Move: drag the stick; drag the view to look around")
    this.knob = element("div", {className: "touch-knob"})
    this.stick.append(this.knob)
    view.append(this.stick)
    view.addEventListener("touchstart", () => (this.stick.hidden = false), {passive: true, once: true})

    // Babylon's touch input moves forward on a vertical drag by default; here a
    // drag only looks, and the stick walks.
    const touch = camera.inputs.attached.touch as FreeCameraTouchInput | undefined
    if (touch) {
      touch.singleFingerRotate = true
      touch.touchAngularSensibility = 8000
    }

    this.stick.addEventListener("pointerdown", (event) => {
      event.preventDefault()
      this.pointerId = event.pointerId
      this.stick.setPointerCapture(event.pointerId)
      const box = this.stick.getBoundingClientRect()
      this.centre = {x: box.left + box.width / 2, y: box.top + box.height / 2}
      this.follow(event)
    })
    this.stick.addEventListener("pointermove", (event) => {
      if (event.pointerId === this.pointerId) {
        this.follow(event)
      }
    })
    const release = (event: PointerEvent) => {
      if (event.pointerId === this.pointerId) {
        this.pointerId = null
        this.vector = {x: 0, y: 0}
        this.knob.style.transform = ""
      }
    }
    this.stick.addEventListener("pointerup", release)
    this.stick.addEventListener("pointercancel", release)

    scene.onBeforeRenderObservable.add(() => {
      const {x, y} = this.vector
      if (x === 0 && y === 0) {
        return
      }
      const seconds = Math.min(0.1, scene.getEngine().getDeltaTime() / 1000)
      // Walk on the floor: the view's forward and right flattened onto it.
      const forward = camera.getDirection(Vector3.Forward(scene.useRightHandedSystem))
      const length = Math.hypot(forward.x, forward.z) || 1
      const fx = forward.x / length
      const fz = forward.z / length
      // Right of forward (fx, fz) on the floor, right-handed, +Y up: (-fz, fx).
      const step = STICK_SPEED_M_S * seconds
      camera.position.x += (fx * y - fz * x) * step
      camera.position.z += (fz * y + fx * x) * step
    })
  }

  private follow(event: PointerEvent): void {
    let dx = (event.clientX - this.centre.x) / STICK_RADIUS_PX
    let dy = (event.clientY - this.centre.y) / STICK_RADIUS_PX
    const length = Math.hypot(dx, dy)
    if (length > 1) {
      dx /= length
      dy /= length
    }
    this.knob.style.transform = `translate(${dx * STICK_RADIUS_PX}px, ${dy * STICK_RADIUS_PX}px)`
    const magnitude = Math.min(1, length)
    this.vector = magnitude < DEAD_ZONE ? {x: 0, y: 0} : {x: dx, y: -dy}
  }
}
