// WebXR through Babylon's default experience, entered from the page's own
// buttons (the lobby's and the bar's Enter VR), not Babylon's: teleport on
// the thumbstick (push forward, aim, release) and snap turns (flick left or
// right), controller rays.
//
// Nothing may be fetched from outside the origin, so no controller models from
// Babylon's online repository, no near interaction and no hand tracking (which
// would load hand meshes from a CDN); the avatar's own hands show where the
// controllers are.

import type {Camera} from "@babylonjs/core/Cameras/camera"
import type {Quaternion} from "@babylonjs/core/Maths/math.vector"
import type {Mesh} from "@babylonjs/core/Meshes/mesh"
import type {Scene} from "@babylonjs/core/scene"
import {WebXRDefaultExperience} from "@babylonjs/core/XR/webXRDefaultExperience"
import {WebXRState} from "@babylonjs/core/XR/webXRTypes"

import {headingOf} from "./localPose"

/** Snap turn step: 45 degrees, the usual comfortable default. */
const SNAP_TURN_RADIANS = Math.PI / 4

export interface XrSupport {
  experience: WebXRDefaultExperience | null
  /** Why immersive mode is unavailable, for the visitor; null when it is available. */
  unavailableReason: string | null
}

/**
 * Creates the XR experience. Entering VR keeps the visitor where the flat
 * camera stood and facing the same way (Babylon would otherwise start at the
 * room's centre).
 */
export async function setUpXr(scene: Scene, floor: Mesh, flatCamera: Camera): Promise<XrSupport> {
  if (!("xr" in navigator) || !navigator.xr) {
    return {experience: null, unavailableReason: "This browser has no WebXR; the room works on the flat screen."}
  }
  const supported = await navigator.xr.isSessionSupported("immersive-vr").catch(() => false)
  if (!supported) {
    return {experience: null, unavailableReason: "No VR headset is available to this browser; the room works on the flat screen."}
  }
  try {
    const experience = await WebXRDefaultExperience.CreateAsync(scene, {
      floorMeshes: [floor],
      inputOptions: {doNotLoadControllerMeshes: true, disableOnlineControllerRepository: true},
      disableNearInteraction: true,
      disableHandTracking: true,
      disableDefaultUI: true,
      teleportationOptions: {defaultTargetMeshOptions: {disableAnimation: false}},
    })
    experience.teleportation.rotationEnabled = true
    experience.teleportation.rotationAngle = SNAP_TURN_RADIANS
    keepPlaceOnEntering(experience, flatCamera)
    return {experience, unavailableReason: null}
  } catch (error) {
    // Babylon refuses WebXR on plain http except on localhost: say how to get it.
    const reason =
      location.protocol === "http:" && location.hostname !== "localhost"
        ? "VR needs a secure page: open the room over https (or on localhost)."
        : `VR is unavailable here: ${(error as Error).message}`
    return {experience: null, unavailableReason: reason}
  }
}

/**
 * On the first frames in VR, moves the XR camera to where the flat camera stood
 * and turns it (about the vertical only) to the flat camera's heading. Setting
 * the XR camera's pose is how Babylon teleports: it shifts the reference space,
 * so the headset keeps tracking from there.
 */
function keepPlaceOnEntering(experience: WebXRDefaultExperience, flatCamera: Camera): void {
  const xrCamera = experience.baseExperience.camera
  let framesUntilPlacement = -1
  experience.baseExperience.onStateChangedObservable.add((state) => {
    // The camera settles its own first-frame compensation first; place it after that.
    framesUntilPlacement = state === WebXRState.IN_XR ? 2 : -1
  })
  experience.baseExperience.sessionManager.onXRFrameObservable.add(() => {
    if (framesUntilPlacement < 0 || --framesUntilPlacement > 0) {
      return
    }
    framesUntilPlacement = -1
    const from = flatCamera.globalPosition
    const turn = headingOfRotation(flatCamera.absoluteRotation) - headingOfRotation(xrCamera.rotationQuaternion)
    xrCamera.position.x = from.x
    xrCamera.position.z = from.z
    // World-frame yaw applied after the head's own rotation: q' = yaw(turn) * q.
    const q = xrCamera.rotationQuaternion
    const s = Math.sin(turn / 2)
    const c = Math.cos(turn / 2)
    q.set(c * q.x + s * q.z, c * q.y + s * q.w, c * q.z - s * q.x, c * q.w - s * q.y)
  })
}

function headingOfRotation(q: Quaternion): number {
  return headingOf([q.x, q.y, q.z, q.w])
}

/** Enters immersive VR standing on the floor; call it from a click (browsers require a user gesture). */
export async function enterVr(experience: WebXRDefaultExperience): Promise<void> {
  await experience.baseExperience.enterXRAsync("immersive-vr", "local-floor", experience.renderTarget)
}

export function isImmersive(xr: XrSupport): boolean {
  return xr.experience?.baseExperience.state === WebXRState.IN_XR
}
