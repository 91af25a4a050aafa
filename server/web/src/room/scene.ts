// The room's 3D world: a right-handed Babylon scene in metres (+Y up, -Z
// forward, as WebXR and every other Roomscale client), a floor to stand and
// teleport on, light, a few landmarks, the table the room's first objects lie
// on (physics.ts's TABLE box, which objects collide with), and the visitor's flat-screen camera
// (WASD / arrow keys to walk, drag to look).
//
// Deep imports only: each one pulls in just the Babylon module it names.

import {UniversalCamera} from "@babylonjs/core/Cameras/universalCamera"
import {Engine} from "@babylonjs/core/Engines/engine"
import {DirectionalLight} from "@babylonjs/core/Lights/directionalLight"
import {HemisphericLight} from "@babylonjs/core/Lights/hemisphericLight"
import {StandardMaterial} from "@babylonjs/core/Materials/standardMaterial"
import {DynamicTexture} from "@babylonjs/core/Materials/Textures/dynamicTexture"
import {Texture} from "@babylonjs/core/Materials/Textures/texture"
import {Color3, Color4} from "@babylonjs/core/Maths/math.color"
import {Vector3} from "@babylonjs/core/Maths/math.vector"
import type {Mesh} from "@babylonjs/core/Meshes/mesh"
import {CreateBox} from "@babylonjs/core/Meshes/Builders/boxBuilder"
import {CreateCylinder} from "@babylonjs/core/Meshes/Builders/cylinderBuilder"
import {CreateGround} from "@babylonjs/core/Meshes/Builders/groundBuilder"
import {Scene} from "@babylonjs/core/scene"

import {TABLE} from "./physics"

/** Where a standing visitor's eyes are when no headset says otherwise, in metres. */
export const EYE_HEIGHT = 1.6
/** Where a new visitor looks: the room's centre, a little below eye level, so the floor shows. */
export const SPAWN_LOOK_AT_HEIGHT = 1.1
/** Half the floor's side, in metres; walking stops at its edge. */
const FLOOR_HALF_SIZE = 15
/**
 * Flat-screen walking speed in Babylon's units: with the inertia below, about
 * 1.5 m/s at any frame rate (Babylon scales the step by the frame time).
 */
const WALK_SPEED = 0.19

export interface RoomScene {
  engine: Engine
  scene: Scene
  /** The flat-screen camera; WebXR brings its own while immersive. */
  camera: UniversalCamera
  floor: Mesh
}

export function createRoomScene(canvas: HTMLCanvasElement): RoomScene {
  const engine = new Engine(canvas, true, {stencil: false, preserveDrawingBuffer: false}, true)
  const scene = new Scene(engine)
  scene.useRightHandedSystem = true
  scene.clearColor = new Color4(0.55, 0.7, 0.86, 1)
  scene.ambientColor = new Color3(0.25, 0.25, 0.3)
  scene.fogMode = Scene.FOGMODE_EXP2
  scene.fogDensity = 0.02
  scene.fogColor = new Color3(0.55, 0.7, 0.86)

  const sky = new HemisphericLight("sky", new Vector3(0, 1, 0), scene)
  sky.intensity = 0.75
  sky.groundColor = new Color3(0.35, 0.32, 0.3)
  const sun = new DirectionalLight("sun", new Vector3(-0.4, -1, -0.3), scene)
  sun.intensity = 0.6

  const floor = createFloor(scene)
  createLandmarks(scene)
  createTable(scene)

  const camera = new UniversalCamera("visitor", new Vector3(0, EYE_HEIGHT, 2), scene)
  camera.minZ = 0.05
  camera.speed = WALK_SPEED
  camera.inertia = 0.6
  camera.angularSensibility = 1500
  // Babylon matches KeyboardEvent.keyCode: WASD and the arrow keys.
  camera.keysUp = [87, 38]
  camera.keysDown = [83, 40]
  camera.keysLeft = [65, 37]
  camera.keysRight = [68, 39]
  camera.setTarget(new Vector3(0, SPAWN_LOOK_AT_HEIGHT, 0))
  camera.attachControl(true)
  // Walking stays on the floor whatever the pitch: no flying, no leaving the room.
  scene.onBeforeRenderObservable.add(() => {
    const p = camera.position
    p.y = EYE_HEIGHT
    p.x = Math.max(-FLOOR_HALF_SIZE, Math.min(FLOOR_HALF_SIZE, p.x))
    p.z = Math.max(-FLOOR_HALF_SIZE, Math.min(FLOOR_HALF_SIZE, p.z))
  })

  return {engine, scene, camera, floor}
}

function createFloor(scene: Scene): Mesh {
  const floor = CreateGround("floor", {width: FLOOR_HALF_SIZE * 2, height: FLOOR_HALF_SIZE * 2}, scene)
  const tiles = new DynamicTexture("floor-tiles", {width: 256, height: 256}, scene, true)
  const context = tiles.getContext()
  // A 1 m checker (the texture holds 2 x 2 tiles and repeats every 2 m) so
  // distances can be judged by eye.
  context.fillStyle = "#d8d2c4"
  context.fillRect(0, 0, 256, 256)
  context.fillStyle = "#a29a88"
  context.fillRect(0, 0, 128, 128)
  context.fillRect(128, 128, 128, 128)
  tiles.update()
  // A dynamic texture clamps by default; the floor repeats it.
  tiles.wrapU = Texture.WRAP_ADDRESSMODE
  tiles.wrapV = Texture.WRAP_ADDRESSMODE
  tiles.anisotropicFilteringLevel = 8
  tiles.uScale = FLOOR_HALF_SIZE
  tiles.vScale = FLOOR_HALF_SIZE
  const material = new StandardMaterial("floor", scene)
  material.diffuseTexture = tiles
  material.specularColor = new Color3(0.05, 0.05, 0.05)
  floor.material = material
  return floor
}

/** A rug at the centre and a ring of pillars, so a visitor can tell where they are. */
function createLandmarks(scene: Scene): void {
  const rug = CreateCylinder("rug", {diameter: 3, height: 0.01, tessellation: 48}, scene)
  rug.position.y = 0.005
  const rugMaterial = new StandardMaterial("rug", scene)
  rugMaterial.diffuseColor = new Color3(0.55, 0.22, 0.2)
  rugMaterial.specularColor = Color3.Black()
  rug.material = rugMaterial
  rug.isPickable = false

  const stone = new StandardMaterial("stone", scene)
  stone.diffuseColor = new Color3(0.82, 0.8, 0.76)
  stone.specularColor = new Color3(0.1, 0.1, 0.1)
  const pillars = 8
  for (let i = 0; i < pillars; i++) {
    const angle = (i / pillars) * Math.PI * 2
    const pillar = CreateBox(`pillar-${i}`, {width: 0.5, depth: 0.5, height: 3}, scene)
    pillar.position.set(Math.sin(angle) * 7, 1.5, Math.cos(angle) * 7)
    pillar.material = stone
    pillar.isPickable = false
  }
}

/** The table, exactly the box objects bounce off and rest on. */
function createTable(scene: Scene): void {
  const [minX, minY, minZ] = TABLE.min
  const [maxX, maxY, maxZ] = TABLE.max
  const table = CreateBox("table", {width: maxX - minX, height: maxY - minY, depth: maxZ - minZ}, scene)
  table.position.set((minX + maxX) / 2, (minY + maxY) / 2, (minZ + maxZ) / 2)
  const wood = new StandardMaterial("table", scene)
  wood.diffuseColor = new Color3(0.55, 0.4, 0.26)
  wood.specularColor = new Color3(0.08, 0.08, 0.08)
  table.material = wood
  // Not a teleport target nor something a drag grabs: a press on it turns the view.
  table.isPickable = false
}
