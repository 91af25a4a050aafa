// What test/objects.test.mjs loads: the objects model and a scene on Babylon's NullEngine.
import {NullEngine} from "@babylonjs/core/Engines/nullEngine"
import {Scene} from "@babylonjs/core/scene"

export {RoomObjects} from "../src/room/objects"
export {RefusedError} from "../src/room/connection"
export {decodeObjectPose, ObjectPoseFlags} from "../src/protocol/pose"

export function RoomScene(): Scene {
  const scene = new Scene(new NullEngine())
  scene.useRightHandedSystem = true
  return scene
}
