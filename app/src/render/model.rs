//! The avatar model: `assets/avatar.gltf`, the same file the browser client
//! draws, read into meshes at start-up. It is compiled into the binary, so the
//! app needs no asset files at run time.
//!
//! The reader covers what that file uses (documented in assets/make-avatar.mjs):
//! top-level nodes `head`, `left_hand`, `right_hand`; triangle primitives with
//! float POSITION and NORMAL and u16 indices; one embedded base64 buffer; the
//! `body` material is tinted with the member's colour, others keep theirs.

use base64::Engine as _;
use bytemuck::{Pod, Zeroable};
use serde::Deserialize;
use thiserror::Error;

/// The model every client draws for a room member.
pub const AVATAR_GLTF: &str = include_str!("../../../assets/avatar.gltf");

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct Vertex {
    pub position: [f32; 3],
    pub normal: [f32; 3],
}

#[derive(Debug, Clone, Default)]
pub struct MeshData {
    pub vertices: Vec<Vertex>,
    pub indices: Vec<u16>,
}

/// Which tracked joint a part follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JointKind {
    Head,
    LeftHand,
    RightHand,
}

/// One drawable piece: a mesh, the joint it follows and how it is coloured.
#[derive(Debug, Clone)]
pub struct Part {
    pub joint: JointKind,
    pub mesh: MeshData,
    /// `None`: tinted with the member's colour; otherwise this linear RGB.
    pub fixed_colour: Option<[f32; 3]>,
}

#[derive(Debug, Error)]
pub enum ModelError {
    #[error("the avatar model is not valid glTF JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the avatar model is unusable: {0}")]
    Invalid(String),
}

#[derive(Deserialize)]
struct Gltf {
    nodes: Vec<Node>,
    meshes: Vec<Mesh>,
    #[serde(default)]
    materials: Vec<Material>,
    buffers: Vec<Buffer>,
    #[serde(rename = "bufferViews")]
    buffer_views: Vec<BufferView>,
    accessors: Vec<Accessor>,
}

#[derive(Deserialize)]
struct Node {
    name: String,
    mesh: Option<usize>,
}

#[derive(Deserialize)]
struct Mesh {
    primitives: Vec<Primitive>,
}

#[derive(Deserialize)]
struct Primitive {
    attributes: std::collections::HashMap<String, usize>,
    indices: usize,
    material: Option<usize>,
}

#[derive(Deserialize)]
struct Material {
    name: String,
    #[serde(rename = "pbrMetallicRoughness")]
    pbr: Option<Pbr>,
}

#[derive(Deserialize)]
struct Pbr {
    #[serde(rename = "baseColorFactor")]
    base_colour: Option<[f32; 4]>,
}

#[derive(Deserialize)]
struct Buffer {
    uri: String,
}

#[derive(Deserialize)]
struct BufferView {
    buffer: usize,
    #[serde(rename = "byteOffset", default)]
    offset: usize,
    #[serde(rename = "byteLength")]
    length: usize,
}

#[derive(Deserialize)]
struct Accessor {
    #[serde(rename = "bufferView")]
    view: usize,
    #[serde(rename = "byteOffset", default)]
    offset: usize,
    #[serde(rename = "componentType")]
    component: u32,
    count: usize,
    #[serde(rename = "type")]
    kind: String,
}

const FLOAT: u32 = 5126;
const UNSIGNED_SHORT: u32 = 5123;

/// Reads the avatar's parts from glTF JSON with an embedded buffer.
pub fn load_avatar(gltf_json: &str) -> Result<Vec<Part>, ModelError> {
    let gltf: Gltf = serde_json::from_str(gltf_json)?;
    let invalid = |what: String| ModelError::Invalid(what);
    let buffers = gltf
        .buffers
        .iter()
        .map(|b| {
            let data = b
                .uri
                .split_once(";base64,")
                .map(|(_, d)| d)
                .ok_or_else(|| invalid("buffers must be embedded base64 data URIs".into()))?;
            base64::engine::general_purpose::STANDARD
                .decode(data)
                .map_err(|e| invalid(format!("buffer is not base64: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bytes_of = |accessor: usize,
                    component: u32,
                    kind: &str,
                    width: usize|
     -> Result<(&[u8], usize), ModelError> {
        let a = gltf
            .accessors
            .get(accessor)
            .ok_or_else(|| invalid(format!("no accessor {accessor}")))?;
        if a.component != component || a.kind != kind {
            return Err(invalid(format!(
                "accessor {accessor} is {} {}, expected {component} {kind}",
                a.component, a.kind
            )));
        }
        let view = gltf
            .buffer_views
            .get(a.view)
            .ok_or_else(|| invalid(format!("no buffer view {}", a.view)))?;
        let buffer = buffers
            .get(view.buffer)
            .ok_or_else(|| invalid(format!("no buffer {}", view.buffer)))?;
        let start = view.offset + a.offset;
        let end = start + a.count * width;
        if end > view.offset + view.length || end > buffer.len() {
            return Err(invalid(format!("accessor {accessor} runs past its buffer")));
        }
        Ok((&buffer[start..end], a.count))
    };
    let floats3 = |accessor| -> Result<Vec<[f32; 3]>, ModelError> {
        let (bytes, count) = bytes_of(accessor, FLOAT, "VEC3", 12)?;
        Ok((0..count)
            .map(|i| {
                std::array::from_fn(|c| {
                    f32::from_le_bytes(
                        bytes[i * 12 + c * 4..i * 12 + c * 4 + 4]
                            .try_into()
                            .expect("4 bytes"),
                    )
                })
            })
            .collect())
    };

    let mut parts = Vec::new();
    for node in &gltf.nodes {
        let joint = match node.name.as_str() {
            "head" => JointKind::Head,
            "left_hand" => JointKind::LeftHand,
            "right_hand" => JointKind::RightHand,
            _ => continue,
        };
        let mesh = node
            .mesh
            .and_then(|m| gltf.meshes.get(m))
            .ok_or_else(|| invalid(format!("node {} has no mesh", node.name)))?;
        for primitive in &mesh.primitives {
            let attribute = |name: &str| {
                primitive
                    .attributes
                    .get(name)
                    .copied()
                    .ok_or_else(|| invalid(format!("a primitive lacks {name}")))
            };
            let positions = floats3(attribute("POSITION")?)?;
            let normals = floats3(attribute("NORMAL")?)?;
            if positions.len() != normals.len() {
                return Err(invalid("POSITION and NORMAL counts differ".into()));
            }
            let (index_bytes, _) = bytes_of(primitive.indices, UNSIGNED_SHORT, "SCALAR", 2)?;
            let indices: Vec<u16> = index_bytes
                .chunks_exact(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]))
                .collect();
            if indices.iter().any(|&i| usize::from(i) >= positions.len()) {
                return Err(invalid("an index points past the vertices".into()));
            }
            let material = primitive.material.and_then(|m| gltf.materials.get(m));
            let fixed_colour = match material {
                Some(m) if m.name != "body" => {
                    let [r, g, b, _] = m
                        .pbr
                        .as_ref()
                        .and_then(|p| p.base_colour)
                        .unwrap_or([1.0; 4]);
                    Some([r, g, b])
                }
                _ => None,
            };
            let vertices = positions
                .into_iter()
                .zip(normals)
                .map(|(position, normal)| Vertex { position, normal })
                .collect();
            parts.push(Part {
                joint,
                mesh: MeshData { vertices, indices },
                fixed_colour,
            });
        }
    }
    for (kind, name) in [
        (JointKind::Head, "head"),
        (JointKind::LeftHand, "left_hand"),
        (JointKind::RightHand, "right_hand"),
    ] {
        if !parts.iter().any(|p| p.joint == kind) {
            return Err(invalid(format!("the model has no {name} node")));
        }
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_avatar_model_loads() {
        let parts = load_avatar(AVATAR_GLTF).unwrap();
        assert!(
            parts
                .iter()
                .any(|p| p.joint == JointKind::Head && p.fixed_colour.is_none()),
            "a tinted head"
        );
        assert!(
            parts
                .iter()
                .any(|p| p.joint == JointKind::Head && p.fixed_colour.is_some()),
            "a visor"
        );
        for part in &parts {
            assert!(!part.mesh.indices.is_empty() && part.mesh.indices.len() % 3 == 0);
            // Parts are modelled around their joint: nothing is more than 30 cm away.
            assert!(
                part.mesh
                    .vertices
                    .iter()
                    .all(|v| glam::Vec3::from(v.position).length() < 0.3)
            );
        }
    }

    #[test]
    fn broken_models_say_what_is_wrong() {
        let no_hands = AVATAR_GLTF.replace("\"left_hand\"", "\"tail\"");
        assert!(
            load_avatar(&no_hands)
                .unwrap_err()
                .to_string()
                .contains("no left_hand node")
        );
        assert!(
            load_avatar("{")
                .unwrap_err()
                .to_string()
                .contains("not valid glTF JSON")
        );
    }
}
