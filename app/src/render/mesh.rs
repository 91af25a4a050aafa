//! Triangle meshes for the avatar parts, built in code so every client draws
//! the same shapes with no asset loading at start-up.

use bytemuck::{Pod, Zeroable};

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct Vertex {
    pub position: [f32; 3],
    pub normal: [f32; 3],
}

#[derive(Debug, Clone, Default)]
pub struct MeshData {
    pub vertices: Vec<Vertex>,
    pub indices: Vec<u16>,
}

/// An axis-aligned box centred at `centre` with half extents `half`.
pub fn cuboid(centre: [f32; 3], half: [f32; 3]) -> MeshData {
    let mut mesh = MeshData::default();
    // Each face: normal axis, sign; four corners in counter-clockwise order seen from outside.
    for axis in 0..3 {
        for sign in [1.0f32, -1.0] {
            let (u, v) = ((axis + 1) % 3, (axis + 2) % 3);
            let mut normal = [0.0; 3];
            normal[axis] = sign;
            let base = mesh.vertices.len() as u16;
            for (du, dv) in [(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)] {
                let mut p = centre;
                p[axis] += sign * half[axis];
                p[u] += du * half[u] * sign;
                p[v] += dv * half[v];
                mesh.vertices.push(Vertex {
                    position: p,
                    normal,
                });
            }
            mesh.indices
                .extend_from_slice(&[base, base + 1, base + 2, base, base + 2, base + 3]);
        }
    }
    mesh
}

/// A UV sphere of `radius` with `rings` x `segments` quads.
pub fn sphere(radius: f32, rings: u16, segments: u16) -> MeshData {
    let mut mesh = MeshData::default();
    for ring in 0..=rings {
        let theta = std::f32::consts::PI * f32::from(ring) / f32::from(rings);
        for segment in 0..=segments {
            let phi = std::f32::consts::TAU * f32::from(segment) / f32::from(segments);
            let normal = [
                theta.sin() * phi.cos(),
                theta.cos(),
                theta.sin() * phi.sin(),
            ];
            mesh.vertices.push(Vertex {
                position: normal.map(|c| c * radius),
                normal,
            });
        }
    }
    let stride = segments + 1;
    for ring in 0..rings {
        for segment in 0..segments {
            let a = ring * stride + segment;
            let b = a + stride;
            mesh.indices
                .extend_from_slice(&[a, a + 1, b, a + 1, b + 1, b]);
        }
    }
    mesh
}

/// The avatar's parts, in the avatar's local frame (metres, -Z forward).
#[derive(Debug)]
pub struct AvatarMeshes {
    pub head: MeshData,
    /// A dark band across the front of the head, so facing is visible.
    pub visor: MeshData,
    pub hand: MeshData,
}

pub fn avatar_meshes() -> AvatarMeshes {
    AvatarMeshes {
        head: sphere(0.12, 12, 16),
        visor: cuboid([0.0, 0.02, -0.1], [0.085, 0.03, 0.035]),
        hand: cuboid([0.0, 0.0, 0.0], [0.04, 0.02, 0.06]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuboid_faces_point_outwards() {
        let mesh = cuboid([0.0; 3], [1.0, 2.0, 3.0]);
        assert_eq!((mesh.vertices.len(), mesh.indices.len()), (24, 36));
        for tri in mesh.indices.chunks(3) {
            let [a, b, c] =
                [0, 1, 2].map(|i| glam::Vec3::from(mesh.vertices[tri[i] as usize].position));
            let winding = (b - a).cross(c - a);
            let normal = glam::Vec3::from(mesh.vertices[tri[0] as usize].normal);
            assert!(
                winding.dot(normal) > 0.0,
                "counter-clockwise seen from outside"
            );
        }
    }

    #[test]
    fn sphere_vertices_lie_on_the_radius() {
        let mesh = sphere(0.5, 6, 8);
        assert!(
            mesh.vertices
                .iter()
                .all(|v| (glam::Vec3::from(v.position).length() - 0.5).abs() < 1e-5)
        );
        assert!(
            mesh.indices
                .iter()
                .all(|&i| (i as usize) < mesh.vertices.len())
        );
    }
}
