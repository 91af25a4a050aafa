// Avatars: the shared model in assets/avatar.gltf (a head and two hands, each
// facing -Z like a WebXR view), one copy per member, tinted with the member's
// colour, with a name tag over the head (the name and the user's tag).
//
// Every part is placed straight in world space from a pose, so an avatar is
// exactly where its member's headset and controllers are.

import "@babylonjs/loaders/glTF/2.0/glTFLoader"

import type {AssetContainer} from "@babylonjs/core/assetContainer"
import {LoadAssetContainerAsync} from "@babylonjs/core/Loading/sceneLoader"
import type {PBRMaterial} from "@babylonjs/core/Materials/PBR/pbrMaterial"
import {StandardMaterial} from "@babylonjs/core/Materials/standardMaterial"
import {DynamicTexture} from "@babylonjs/core/Materials/Textures/dynamicTexture"
import {Color3} from "@babylonjs/core/Maths/math.color"
import {Quaternion, Vector3} from "@babylonjs/core/Maths/math.vector"
import type {AbstractMesh} from "@babylonjs/core/Meshes/abstractMesh"
import {Mesh} from "@babylonjs/core/Meshes/mesh"
import {CreatePlane} from "@babylonjs/core/Meshes/Builders/planeBuilder"
import type {TransformNode} from "@babylonjs/core/Meshes/transformNode"
import type {Node} from "@babylonjs/core/node"
import type {Scene} from "@babylonjs/core/scene"

import type {AvatarPose, Joint} from "../protocol/pose"
import {userTag} from "./names"

/** Where the name tag floats, above the head's centre, in metres. */
const NAME_TAG_HEIGHT = 0.28
const NAME_TAG_WIDTH = 0.6
const NAME_TAG_TEXTURE = {width: 512, height: 96}
/** The model's material that takes the member's colour. */
const BODY_MATERIAL = "body"
const PARTS = ["head", "left_hand", "right_hand"] as const

export interface AvatarOptions {
  slot: number
  userId: string
  name: string
  colour: string
  /** The visitor's own avatar: its head and name tag are never drawn (they would fill the view). */
  isSelf: boolean
}

/** Loads the model once and makes an avatar per member from it. */
export class AvatarFactory {
  private constructor(
    private readonly scene: Scene,
    private readonly container: AssetContainer,
  ) {}

  static async load(scene: Scene, url: string): Promise<AvatarFactory> {
    const container = await LoadAssetContainerAsync(url, scene)
    // Compile the avatar's shaders now, while the join is in flight, rather than
    // in the first frame that shows an avatar.
    await Promise.all(
      container.meshes
        .filter((mesh) => mesh.material && mesh.getTotalVertices() > 0)
        .map((mesh) => mesh.material!.forceCompilationAsync(mesh)),
    )
    return new AvatarFactory(scene, container)
  }

  create(options: AvatarOptions): Avatar {
    const prefix = `avatar-${options.slot}-${options.isSelf ? "self" : options.userId}`
    // Clones, not instances: each avatar gets its own material colour.
    const entries = this.container.instantiateModelsToScene((name) => `${prefix}-${name}`, false, {
      doNotInstantiate: true,
    })
    const find = (part: string): TransformNode => {
      const name = `${prefix}-${part}`
      for (const root of entries.rootNodes) {
        const node = root.name === name ? root : root.getDescendants(false, (n: Node) => n.name === name)[0]
        if (node) {
          return node as TransformNode
        }
      }
      throw new Error(`assets/avatar.gltf has no node "${part}"; regenerate it with node assets/make-avatar.mjs`)
    }
    const [head, left, right] = PARTS.map(find)
    // Parts are placed in world space: detach them from the loader's root.
    for (const part of [head, left, right]) {
      part.setParent(null)
      part.rotationQuaternion = Quaternion.Identity()
    }
    for (const root of entries.rootNodes) {
      root.dispose()
    }
    return new Avatar(this.scene, options, head, left, right)
  }
}

export class Avatar {
  readonly slot: number
  readonly userId: string
  readonly isSelf: boolean
  /** The user's tag, drawn beside the name: names can repeat, tags tell people apart. */
  readonly tag: string
  name: string
  colour: string
  private visible = true
  private speaking = false
  private readonly bodyMaterial: PBRMaterial | null
  private readonly nameTag: Mesh
  private readonly nameTexture: DynamicTexture
  private readonly nameMaterial: StandardMaterial

  constructor(
    scene: Scene,
    options: AvatarOptions,
    readonly head: TransformNode,
    readonly left: TransformNode,
    readonly right: TransformNode,
  ) {
    this.slot = options.slot
    this.userId = options.userId
    this.isSelf = options.isSelf
    this.tag = userTag(options.userId)
    this.name = options.name
    this.colour = options.colour

    // One body material per avatar, shared by its three parts.
    const bodyMeshes = this.meshes().filter((mesh) => mesh.material?.name === BODY_MATERIAL)
    this.bodyMaterial = (bodyMeshes[0]?.material?.clone(`${head.name}-body`) as PBRMaterial | null) ?? null
    for (const mesh of bodyMeshes) {
      mesh.material = this.bodyMaterial
    }

    this.nameTag = CreatePlane(`${head.name}-name`, {width: NAME_TAG_WIDTH, height: (NAME_TAG_WIDTH * NAME_TAG_TEXTURE.height) / NAME_TAG_TEXTURE.width}, scene)
    this.nameTag.billboardMode = Mesh.BILLBOARDMODE_ALL
    this.nameTag.isPickable = false
    this.nameTexture = new DynamicTexture(`${head.name}-name`, NAME_TAG_TEXTURE, scene, true)
    this.nameTexture.hasAlpha = true
    this.nameMaterial = new StandardMaterial(`${head.name}-name`, scene)
    this.nameMaterial.diffuseTexture = this.nameTexture
    this.nameMaterial.emissiveColor = Color3.White()
    this.nameMaterial.disableLighting = true
    this.nameMaterial.useAlphaFromDiffuseTexture = true
    this.nameMaterial.backFaceCulling = false
    this.nameTag.material = this.nameMaterial

    for (const mesh of this.meshes()) {
      mesh.isPickable = false
    }
    this.setProfile(options.name, options.colour)
    if (this.isSelf) {
      this.setEnabled(this.head, false)
      this.nameTag.setEnabled(false)
    }
  }

  setProfile(name: string, colour: string): void {
    this.name = name
    this.colour = colour
    if (this.bodyMaterial) {
      // Colours are chosen as sRGB; the PBR material works in linear light.
      this.bodyMaterial.albedoColor = Color3.FromHexString(colour).toLinearSpace()
    }
    this.drawNameTag()
  }

  /** Places every part where the pose says. */
  applyPose(pose: AvatarPose, showHands = true): void {
    place(this.head, pose.head)
    place(this.left, pose.left)
    place(this.right, pose.right)
    this.nameTag.position.set(pose.head.position[0], pose.head.position[1] + NAME_TAG_HEIGHT, pose.head.position[2])
    this.setEnabled(this.left, showHands)
    this.setEnabled(this.right, showHands)
  }

  /** Rings the name tag while the member speaks. */
  setSpeaking(speaking: boolean): void {
    if (this.speaking !== speaking) {
      this.speaking = speaking
      this.drawNameTag()
    }
  }

  /** Shows or hides the whole avatar (a member whose first pose has not arrived yet is hidden). */
  setVisible(visible: boolean): void {
    if (this.visible === visible) {
      return
    }
    this.visible = visible
    this.setEnabled(this.head, visible && !this.isSelf)
    this.nameTag.setEnabled(visible && !this.isSelf)
    this.setEnabled(this.left, visible)
    this.setEnabled(this.right, visible)
  }

  isVisible(): boolean {
    return this.visible
  }

  /** World position of the head as drawn, from the mesh itself. */
  headPosition(): [number, number, number] {
    const p = this.head.getAbsolutePosition()
    return [p.x, p.y, p.z]
  }

  handPositions(): {left: [number, number, number]; right: [number, number, number]} {
    const l = this.left.getAbsolutePosition()
    const r = this.right.getAbsolutePosition()
    return {left: [l.x, l.y, l.z], right: [r.x, r.y, r.z]}
  }

  dispose(): void {
    for (const part of [this.head, this.left, this.right]) {
      part.dispose(false, false)
    }
    this.bodyMaterial?.dispose()
    this.nameTag.dispose()
    this.nameMaterial.dispose()
    this.nameTexture.dispose()
  }

  private meshes(): AbstractMesh[] {
    return [this.head, this.left, this.right].flatMap((part) => [
      ...((part as AbstractMesh).getTotalVertices ? [part as AbstractMesh] : []),
      ...part.getChildMeshes(false),
    ])
  }

  private setEnabled(part: TransformNode, enabled: boolean): void {
    if (part.isEnabled(false) !== enabled) {
      part.setEnabled(enabled)
    }
  }

  private drawNameTag(): void {
    const {width, height} = NAME_TAG_TEXTURE
    // A canvas draws the name as text: markup in a name is never interpreted.
    const context = this.nameTexture.getContext() as CanvasRenderingContext2D
    context.clearRect(0, 0, width, height)
    context.fillStyle = "rgba(20, 22, 28, 0.72)"
    context.beginPath()
    context.roundRect(4, 4, width - 8, height - 8, 24)
    context.fill()
    if (this.speaking) {
      context.strokeStyle = "#33cc33"
      context.lineWidth = 8
      context.stroke()
    }
    context.fillStyle = this.colour
    context.fillRect(20, height / 2 - 14, 28, 28)
    context.textBaseline = "middle"
    // The tag at the right end, the name in what is left of the width.
    context.font = "500 32px ui-monospace, monospace"
    const tagWidth = context.measureText(this.tag).width
    context.fillStyle = "#b8bcc8"
    context.textAlign = "right"
    context.fillText(this.tag, width - 24, height / 2 + 2)
    context.textAlign = "left"
    context.fillStyle = "#ffffff"
    context.font = "600 44px system-ui, sans-serif"
    context.fillText(this.name, 64, height / 2 + 2, width - 84 - tagWidth - 16)
    this.nameTexture.update(true)
  }
}

const scratchPosition = new Vector3()

function place(node: TransformNode, joint: Joint): void {
  scratchPosition.set(joint.position[0], joint.position[1], joint.position[2])
  node.position.copyFrom(scratchPosition)
  const [x, y, z, w] = joint.orientation
  if (node.rotationQuaternion) {
    node.rotationQuaternion.set(x, y, z, w)
  } else {
    node.rotationQuaternion = new Quaternion(x, y, z, w)
  }
}
