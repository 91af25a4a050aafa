// Writes assets/avatar.gltf: the avatar every client draws for a room member,
// a head and two hands, with its geometry in one embedded base64 buffer so the
// file loads without further requests.
//
//   node assets/make-avatar.mjs
//
// Conventions the clients rely on (see assets/README.md):
// - metres, right-handed, +Y up; each part is modelled around its own origin and
//   FACES -Z, the way an OpenXR/WebXR view or grip looks at identity. (glTF's
//   usual "front faces +Z" is deliberately not followed: a pose's orientation then
//   applies to the part unchanged.)
// - nodes "head", "left_hand" and "right_hand" are top-level and unparented:
//   clients place each at its joint's world position and orientation.
// - material "body" is white; clients tint it with the member's colour. "visor"
//   is dark and stays as it is.
//
// The output is deterministic: running the script again rewrites the same bytes.

import {writeFileSync} from "node:fs"
import {fileURLToPath} from "node:url"

const OUTPUT = fileURLToPath(new URL("./avatar.gltf", import.meta.url))

/** An ellipsoid centred on `centre` with radii `radii`, as a UV sphere. */
function ellipsoid(radii, centre = [0, 0, 0], rings = 12, segments = 18) {
  const positions = []
  const normals = []
  const indices = []
  const [a, b, c] = radii
  for (let ring = 0; ring <= rings; ring++) {
    const theta = (ring / rings) * Math.PI
    for (let segment = 0; segment <= segments; segment++) {
      const phi = (segment / segments) * 2 * Math.PI
      const unit = [Math.sin(theta) * Math.cos(phi), Math.cos(theta), Math.sin(theta) * Math.sin(phi)]
      positions.push(centre[0] + a * unit[0], centre[1] + b * unit[1], centre[2] + c * unit[2])
      // The gradient of the implicit surface is the outward normal.
      const n = [unit[0] / a, unit[1] / b, unit[2] / c]
      const length = Math.hypot(...n)
      normals.push(n[0] / length, n[1] / length, n[2] / length)
    }
  }
  const row = segments + 1
  for (let ring = 0; ring < rings; ring++) {
    for (let segment = 0; segment < segments; segment++) {
      const i = ring * row + segment
      // Counter-clockwise seen from outside, as glTF requires for front faces.
      indices.push(i, i + 1, i + row, i + 1, i + row + 1, i + row)
    }
  }
  return {positions, normals, indices}
}

/** An axis-aligned box with flat-shaded faces. */
function box(size, centre) {
  const positions = []
  const normals = []
  const indices = []
  const half = size.map((s) => s / 2)
  // For each face: its normal axis and sign, and the two in-plane axes ordered
  // so that (u x v) points along the normal (counter-clockwise from outside).
  const faces = [
    [0, 1, 1, 2], [0, -1, 2, 1],
    [1, 1, 2, 0], [1, -1, 0, 2],
    [2, 1, 0, 1], [2, -1, 1, 0],
  ]
  for (const [axis, sign, u, v] of faces) {
    const base = positions.length / 3
    for (const [su, sv] of [[-1, -1], [1, -1], [1, 1], [-1, 1]]) {
      const p = [0, 0, 0]
      p[axis] = sign * half[axis]
      p[u] = su * half[u]
      p[v] = sv * half[v]
      positions.push(centre[0] + p[0], centre[1] + p[1], centre[2] + p[2])
      const n = [0, 0, 0]
      n[axis] = sign
      normals.push(...n)
    }
    indices.push(base, base + 1, base + 2, base, base + 2, base + 3)
  }
  return {positions, normals, indices}
}

/** Collects typed arrays into one buffer, each view 4-byte aligned. */
class BufferBuilder {
  constructor() {
    this.chunks = []
    this.length = 0
    this.bufferViews = []
    this.accessors = []
  }

  add(typed, target) {
    const padding = (4 - (this.length % 4)) % 4
    if (padding) {
      this.chunks.push(new Uint8Array(padding))
      this.length += padding
    }
    const bytes = new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength)
    this.chunks.push(bytes)
    this.bufferViews.push({buffer: 0, byteOffset: this.length, byteLength: bytes.byteLength, target})
    this.length += bytes.byteLength
    return this.bufferViews.length - 1
  }

  vec3(values) {
    const view = this.add(new Float32Array(values), 34962)
    const min = [Infinity, Infinity, Infinity]
    const max = [-Infinity, -Infinity, -Infinity]
    for (let i = 0; i < values.length; i += 3) {
      for (let axis = 0; axis < 3; axis++) {
        // Bounds of the float32 values actually stored, as validators check.
        const v = Math.fround(values[i + axis])
        min[axis] = Math.min(min[axis], v)
        max[axis] = Math.max(max[axis], v)
      }
    }
    this.accessors.push({bufferView: view, componentType: 5126, count: values.length / 3, type: "VEC3", min, max})
    return this.accessors.length - 1
  }

  indices(values) {
    const view = this.add(new Uint16Array(values), 34963)
    this.accessors.push({bufferView: view, componentType: 5123, count: values.length, type: "SCALAR"})
    return this.accessors.length - 1
  }

  primitive(geometry, material) {
    return {
      attributes: {POSITION: this.vec3(geometry.positions), NORMAL: this.vec3(geometry.normals)},
      indices: this.indices(geometry.indices),
      material,
    }
  }

  bytes() {
    const out = new Uint8Array(this.length)
    let offset = 0
    for (const chunk of this.chunks) {
      out.set(chunk, offset)
      offset += chunk.byteLength
    }
    return out
  }
}

const BODY = 0
const VISOR = 1
const buffer = new BufferBuilder()

// Head: a slightly tall ellipsoid with a visor band across its -Z face.
const headShell = buffer.primitive(ellipsoid([0.1, 0.12, 0.11]), BODY)
const visor = buffer.primitive(box([0.15, 0.055, 0.05], [0, 0.015, -0.085]), VISOR)
// Hand: a mitten, longer along -Z (where the controller points), with a cuff.
// Shared accessors: both hands use the same geometry.
const mitten = buffer.primitive(ellipsoid([0.035, 0.025, 0.06], [0, 0, -0.02], 8, 12), BODY)
const cuff = buffer.primitive(box([0.06, 0.045, 0.02], [0, 0, 0.045]), VISOR)

const bytes = buffer.bytes()
const gltf = {
  asset: {
    version: "2.0",
    generator: "roomscale assets/make-avatar.mjs",
    extras: {
      note: "Parts face -Z (an OpenXR view's forward), not glTF's +Z: apply pose orientations unchanged. Tint material 'body' per member.",
    },
  },
  scene: 0,
  scenes: [{name: "avatar", nodes: [0, 1, 2]}],
  nodes: [
    {name: "head", mesh: 0},
    {name: "left_hand", mesh: 1},
    {name: "right_hand", mesh: 2},
  ],
  meshes: [
    {name: "head", primitives: [headShell, visor]},
    {name: "left_hand", primitives: [mitten, cuff]},
    {name: "right_hand", primitives: [mitten, cuff]},
  ],
  materials: [
    {
      name: "body",
      pbrMetallicRoughness: {baseColorFactor: [1, 1, 1, 1], metallicFactor: 0, roughnessFactor: 0.7},
    },
    {
      name: "visor",
      pbrMetallicRoughness: {baseColorFactor: [0.04, 0.05, 0.07, 1], metallicFactor: 0, roughnessFactor: 0.25},
    },
  ],
  buffers: [
    {
      byteLength: bytes.byteLength,
      uri: `data:application/octet-stream;base64,${Buffer.from(bytes).toString("base64")}`,
    },
  ],
  bufferViews: buffer.bufferViews,
  accessors: buffer.accessors,
}

writeFileSync(OUTPUT, JSON.stringify(gltf, null, 1) + "\n")
console.log(`wrote ${OUTPUT} (${bytes.byteLength} bytes of geometry)`)
