//! The shared objects' meshes (cube, ball, marker) and the room's table, built
//! in code at the sizes every client draws (`roomscale_protocol::objects`'s
//! kinds, the physics crate's [`TABLE`]). They share the avatar pipeline's
//! vertex and instance layout, so each kind is one instanced draw.

use std::f32::consts::{PI, TAU};

use glam::{Mat4, Quat, Vec3};
use roomscale_physics::{Aabb, TABLE};
use roomscale_protocol::objects::ObjectKind;

use super::model::{MeshData, Vertex};
use crate::objects::ShownObject;

/// Edge of a cube, metres.
pub const CUBE_SIZE: f32 = 0.10;
/// Radius of a ball, metres (12 cm across).
pub const BALL_RADIUS: f32 = 0.06;
/// A marker: a cylinder along its local Y.
pub const MARKER_RADIUS: f32 = 0.01;
pub const MARKER_LENGTH: f32 = 0.14;
/// Thickness of the table's top slab and side of its square legs, metres.
const TABLE_TOP_THICKNESS: f32 = 0.04;
const TABLE_LEG_SIDE: f32 = 0.05;
/// The table's wood, linear RGB (sRGB #8a6a4a).
pub const TABLE_COLOUR: [f32; 3] = [0.2542, 0.1441, 0.0685];

/// One shared object to draw this frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ObjectInstance {
    pub kind: ObjectKind,
    /// Centre, room coordinates.
    pub position: [f32; 3],
    /// Unit quaternion `[x, y, z, w]`.
    pub orientation: [f32; 4],
    /// Linear RGB (see [`crate::colour::colour_from_hex`]).
    pub colour: [f32; 3],
    /// Held by this visitor (or hovered for a grab): drawn a little lighter.
    pub highlight: bool,
}

impl ObjectInstance {
    /// The colour the shader gets: a highlighted object is lifted 15 % of
    /// the way to white, enough to notice without losing its colour.
    pub fn shown_colour(&self) -> [f32; 3] {
        if self.highlight {
            self.colour.map(|c| c + (1.0 - c) * 0.15)
        } else {
            self.colour
        }
    }

    pub fn model(&self) -> Mat4 {
        Mat4::from_rotation_translation(
            Quat::from_array(self.orientation).normalize(),
            Vec3::from(self.position),
        )
    }
}

impl ObjectInstance {
    /// An object as the objects model shows it; this visitor's own holds
    /// (and `hovered`, the one a grab would take) are highlighted.
    pub fn shown(object: &ShownObject, hovered: bool) -> ObjectInstance {
        ObjectInstance {
            kind: object.kind,
            position: object.position,
            orientation: object.orientation,
            colour: object.colour,
            highlight: object.held_by_me || hovered,
        }
    }
}

/// The meshes in the order the renderer keeps them: one per kind, then the table.
pub(super) const MESHES: usize = 4;
pub(super) const TABLE_MESH: usize = 3;

/// Which of the renderer's prop meshes draws `kind`.
pub(super) fn mesh_index(kind: ObjectKind) -> usize {
    match kind {
        ObjectKind::Cube => 0,
        ObjectKind::Ball => 1,
        ObjectKind::Marker => 2,
    }
}

/// Every prop mesh, indexed as [`mesh_index`] and [`TABLE_MESH`] say.
pub(super) fn meshes() -> [MeshData; MESHES] {
    [cube_mesh(), ball_mesh(), marker_mesh(), table_mesh(&TABLE)]
}

pub fn cube_mesh() -> MeshData {
    let mut mesh = MeshData::default();
    let h = CUBE_SIZE / 2.0;
    add_box(&mut mesh, Vec3::splat(-h), Vec3::splat(h));
    mesh
}

/// A UV sphere: 24 segments around, 12 rings from pole to pole.
pub fn ball_mesh() -> MeshData {
    const SEGMENTS: u16 = 24;
    const RINGS: u16 = 12;
    let mut mesh = MeshData::default();
    for ring in 0..=RINGS {
        let polar = PI * f32::from(ring) / f32::from(RINGS);
        for segment in 0..=SEGMENTS {
            let azimuth = TAU * f32::from(segment) / f32::from(SEGMENTS);
            let normal = Vec3::new(
                polar.sin() * azimuth.cos(),
                polar.cos(),
                -polar.sin() * azimuth.sin(),
            );
            mesh.vertices.push(Vertex {
                position: (normal * BALL_RADIUS).to_array(),
                normal: normal.to_array(),
            });
        }
    }
    let row = SEGMENTS + 1;
    for ring in 0..RINGS {
        for segment in 0..SEGMENTS {
            let a = ring * row + segment;
            let b = a + row;
            // Counter-clockwise seen from outside (the pipeline culls back faces).
            mesh.indices.extend([a, b, a + 1, a + 1, b, b + 1]);
        }
    }
    mesh
}

/// A cylinder along local Y, centred, with flat caps: 16 sides.
pub fn marker_mesh() -> MeshData {
    const SIDES: u16 = 16;
    let mut mesh = MeshData::default();
    let h = MARKER_LENGTH / 2.0;
    let around = |i: u16| {
        let a = TAU * f32::from(i) / f32::from(SIDES);
        Vec3::new(a.cos(), 0.0, -a.sin())
    };
    for i in 0..=SIDES {
        let n = around(i);
        for y in [-h, h] {
            mesh.vertices.push(Vertex {
                position: (n * MARKER_RADIUS + Vec3::Y * y).to_array(),
                normal: n.to_array(),
            });
        }
    }
    for i in 0..SIDES {
        let (bottom, top) = (2 * i, 2 * i + 1);
        mesh.indices
            .extend([bottom, bottom + 2, top, top, bottom + 2, top + 2]);
    }
    for (y, normal) in [(h, Vec3::Y), (-h, Vec3::NEG_Y)] {
        let centre = mesh.vertices.len() as u16;
        mesh.vertices.push(Vertex {
            position: [0.0, y, 0.0],
            normal: normal.to_array(),
        });
        for i in 0..SIDES {
            mesh.vertices.push(Vertex {
                position: (around(i) * MARKER_RADIUS + Vec3::Y * y).to_array(),
                normal: normal.to_array(),
            });
        }
        for i in 0..SIDES {
            let (a, b) = (centre + 1 + i, centre + 1 + (i + 1) % SIDES);
            if y > 0.0 {
                mesh.indices.extend([centre, a, b]);
            } else {
                mesh.indices.extend([centre, b, a]);
            }
        }
    }
    mesh
}

/// The table in room coordinates (drawn with an identity model matrix): a
/// top slab filling `table`'s footprint up to its top, and four legs under
/// its corners down to the floor.
pub fn table_mesh(table: &Aabb) -> MeshData {
    let mut mesh = MeshData::default();
    let (min, max) = (Vec3::from(table.min), Vec3::from(table.max));
    let slab_bottom = max.y - TABLE_TOP_THICKNESS;
    add_box(
        &mut mesh,
        Vec3::new(min.x, slab_bottom, min.z),
        Vec3::new(max.x, max.y, max.z),
    );
    let inset = 0.04;
    for (x, z) in [
        (min.x + inset, min.z + inset),
        (max.x - inset - TABLE_LEG_SIDE, min.z + inset),
        (min.x + inset, max.z - inset - TABLE_LEG_SIDE),
        (
            max.x - inset - TABLE_LEG_SIDE,
            max.z - inset - TABLE_LEG_SIDE,
        ),
    ] {
        add_box(
            &mut mesh,
            Vec3::new(x, min.y, z),
            Vec3::new(x + TABLE_LEG_SIDE, slab_bottom, z + TABLE_LEG_SIDE),
        );
    }
    mesh
}

/// Appends an axis-aligned box with one flat normal per face.
fn add_box(mesh: &mut MeshData, min: Vec3, max: Vec3) {
    let centre = (min + max) / 2.0;
    let half = (max - min) / 2.0;
    for normal in [
        Vec3::X,
        Vec3::NEG_X,
        Vec3::Y,
        Vec3::NEG_Y,
        Vec3::Z,
        Vec3::NEG_Z,
    ] {
        // Two axes spanning the face, so that u x v = normal (counter-clockwise
        // seen from outside).
        let u = if normal.x != 0.0 {
            Vec3::Y
        } else if normal.y != 0.0 {
            Vec3::Z
        } else {
            Vec3::X
        };
        let v = normal.cross(u);
        let first = mesh.vertices.len() as u16;
        for (su, sv) in [(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)] {
            let p = centre + (normal + u * su + v * sv) * half;
            mesh.vertices.push(Vertex {
                position: p.to_array(),
                normal: normal.to_array(),
            });
        }
        mesh.indices
            .extend([first, first + 1, first + 2, first, first + 2, first + 3]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(mesh: &MeshData) -> (Vec3, Vec3) {
        mesh.vertices.iter().fold(
            (Vec3::splat(f32::MAX), Vec3::splat(f32::MIN)),
            |(lo, hi), v| {
                let p = Vec3::from(v.position);
                (lo.min(p), hi.max(p))
            },
        )
    }

    /// Every triangle winds counter-clockwise seen from outside: its face
    /// normal agrees with its vertices' normals.
    fn faces_point_out(mesh: &MeshData) {
        for triangle in mesh.indices.chunks(3) {
            let [a, b, c] = [0, 1, 2].map(|i| mesh.vertices[triangle[i] as usize]);
            let (pa, pb, pc) = (
                Vec3::from(a.position),
                Vec3::from(b.position),
                Vec3::from(c.position),
            );
            let face = (pb - pa).cross(pc - pa);
            if face.length() < 1e-9 {
                continue; // the sphere's degenerate pole triangles
            }
            let normals = Vec3::from(a.normal) + Vec3::from(b.normal) + Vec3::from(c.normal);
            assert!(
                face.dot(normals) > 0.0,
                "triangle {triangle:?} faces inwards"
            );
        }
    }

    #[test]
    fn each_kind_has_its_size() {
        let close = |a: Vec3, b: Vec3| (a - b).length() < 1e-5;
        let (lo, hi) = bounds(&cube_mesh());
        assert!(close(hi - lo, Vec3::splat(0.10)), "{lo} {hi}");
        let (lo, hi) = bounds(&ball_mesh());
        assert!(close(hi - lo, Vec3::splat(0.12)), "{lo} {hi}");
        let (lo, hi) = bounds(&marker_mesh());
        assert!(close(hi - lo, Vec3::new(0.02, 0.14, 0.02)), "{lo} {hi}");
        assert!(close(lo + hi, Vec3::ZERO), "centred");
        for mesh in meshes() {
            faces_point_out(&mesh);
            assert!(
                mesh.indices
                    .iter()
                    .all(|&i| (i as usize) < mesh.vertices.len())
            );
        }
    }

    #[test]
    fn the_table_fills_the_physics_box() {
        let (lo, hi) = bounds(&table_mesh(&TABLE));
        assert!((lo - Vec3::from(TABLE.min)).length() < 1e-5, "{lo}");
        assert!((hi - Vec3::from(TABLE.max)).length() < 1e-5, "{hi}");
    }

    #[test]
    fn a_highlight_lightens_without_losing_the_colour() {
        let object = ObjectInstance {
            kind: ObjectKind::Cube,
            position: [0.0; 3],
            orientation: [0.0, 0.0, 0.0, 1.0],
            colour: [0.8, 0.1, 0.1],
            highlight: true,
        };
        let [r, g, b] = object.shown_colour();
        assert!(r > 0.8 && g > 0.1 && r > 2.0 * g && (g - b).abs() < 1e-6);
    }
}
