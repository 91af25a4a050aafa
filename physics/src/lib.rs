//! Object physics: a thrown object's flight until it rests, the room it flies
//! in (floor, walls, the table), and a holder's hand velocity. Time is an
//! input; every step is [`STEP_SECONDS`] long, so a flight comes out the
//! same whatever a client's frame rate.
//!
//! The model: semi-implicit Euler with gravity; the object collides as its
//! bounding sphere ([`collision_radius`]) with the floor, the four walls and
//! the top and sides of each box; bounces keep [`restitution`] of the normal
//! speed, each push of a surface takes from the sliding speed (Coulomb
//! friction), a supported object's sliding and spin decay each step, and an
//! object slower than [`REST_SPEED`] and [`REST_SPIN`] while supported for
//! [`REST_STEPS`] steps is settled: zero velocities, exactly on its support,
//! a cube face down, a marker lying flat.
//!
//! The browser runs `server/web/src/room/physics.ts`, held to the vectors in
//! `physics/vectors/throws.json` that this crate generates and checks. To
//! keep that twin bit for bit equal, a step uses only `+ - * /`, `sqrt`,
//! comparisons and `abs` on `f32` (each correctly rounded in both languages:
//! TypeScript rounds every operation with `Math.fround`), in the order
//! written here: change one, change the other, and rewrite the vectors
//! (`ROOMSCALE_BLESS=1 cargo test -p roomscale-physics`).

use std::collections::VecDeque;

use roomscale_protocol::objects::{ObjectKind, ObjectState};

/// One physics step, in seconds.
pub const STEP_SECONDS: f32 = 1.0 / 90.0;
/// Downward acceleration, m/s^2.
pub const GRAVITY: f32 = 9.81;
/// Below this speed (m/s) a supported object counts as still.
pub const REST_SPEED: f32 = 0.06;
/// Below this spin (rad/s) a supported object counts as still (a ball rolling
/// at [`REST_SPEED`] spins at 1 rad/s).
pub const REST_SPIN: f32 = 1.2;
/// Steps an object stays still and supported before it rests (~0.25 s).
pub const REST_STEPS: u32 = 23;
/// A bounce slower than this (m/s) ends in contact instead, so an object
/// does not hop forever in ever smaller bounces.
pub const MIN_BOUNCE_SPEED: f32 = 0.25;
/// Speed and spin limits: a wild hand estimate cannot throw an object
/// through a wall in one step or overflow its pose.
pub const MAX_SPEED: f32 = 40.0;
pub const MAX_SPIN: f32 = 60.0;
/// The longest flight a client simulates (10 s) before it drops the object
/// straight down; shorter than the server's `MAX_FLIGHT_MS`, so the
/// thrower, not the server, ends every flight.
pub const MAX_FLIGHT_STEPS: u32 = 900;
/// A contact whose normal's Y is above this holds the object up (a box's
/// top, the floor); below it the contact is a side or an edge.
const SUPPORT_NORMAL_Y: f32 = 0.7;

/// An axis-aligned box objects collide with (the table top).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Aabb {
    pub min: [f32; 3],
    pub max: [f32; 3],
}

/// The room objects fly in: a floor at y = 0, walls at +-`half_size` on X and
/// Z, and the boxes on it.
#[derive(Debug, Clone, PartialEq)]
pub struct World {
    pub half_size: f32,
    pub boxes: Vec<Aabb>,
}

/// A flying (or resting) object.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Body {
    pub kind: ObjectKind,
    pub position: [f32; 3],
    /// Unit quaternion `[x, y, z, w]`.
    pub orientation: [f32; 4],
    pub velocity: [f32; 3],
    /// Radians per second about each axis.
    pub angular_velocity: [f32; 3],
    /// Steps the body has been still while supported (rest detection);
    /// 0 for a new body.
    pub still_steps: u32,
}

impl World {
    /// Every Roomscale room: 15 m half size (the floor every client draws) and [`TABLE`].
    pub fn room() -> World {
        World {
            half_size: 15.0,
            boxes: vec![TABLE],
        }
    }
}

/// The table every room has, where its first props lie: top at 0.75 m,
/// 1.2 m wide (X) and 0.7 m deep (Z), centred 1.6 m in front of the room's
/// centre (-Z). Clients draw it from this box.
pub const TABLE: Aabb = Aabb {
    min: [-0.6, 0.0, -1.95],
    max: [0.6, 0.75, -1.25],
};

/// Half the object's size along Y when it rests (its collision radius).
pub fn collision_radius(kind: ObjectKind) -> f32 {
    match kind {
        ObjectKind::Cube => 0.05,
        ObjectKind::Ball => 0.06,
        ObjectKind::Marker => 0.01,
    }
}

/// Height of a resting object's centre above its support: a cube on a face,
/// a ball, a marker lying down. The same as [`collision_radius`].
pub fn resting_half_height(kind: ObjectKind) -> f32 {
    collision_radius(kind)
}

/// Share of the normal speed a bounce keeps.
pub fn restitution(kind: ObjectKind) -> f32 {
    match kind {
        ObjectKind::Cube => 0.3,
        ObjectKind::Ball => 0.6,
        ObjectKind::Marker => 0.2,
    }
}

/// Share of the sliding speed a supported object keeps each step (a ball
/// rolls, so it keeps most).
fn slide_keep(kind: ObjectKind) -> f32 {
    match kind {
        ObjectKind::Cube => 0.9,
        ObjectKind::Ball => 0.993,
        ObjectKind::Marker => 0.92,
    }
}

/// Friction coefficient against every surface: how much sliding speed a
/// push of the surface takes (a ball's is its rolling resistance).
fn friction(kind: ObjectKind) -> f32 {
    match kind {
        ObjectKind::Cube => 0.5,
        ObjectKind::Ball => 0.04,
        ObjectKind::Marker => 0.4,
    }
}

/// Share of the spin a supported cube or marker keeps each step, and any
/// object after hitting a wall or a box's side.
const SPIN_KEEP_SUPPORTED: f32 = 0.85;
const SPIN_KEEP_IMPACT: f32 = 0.8;

impl Body {
    /// A body released from a hand: at `state`'s pose, with the hand's velocities.
    pub fn released(state: &ObjectState, velocity: [f32; 3], angular_velocity: [f32; 3]) -> Body {
        Body {
            kind: state.kind,
            position: state.position,
            orientation: state.orientation,
            velocity,
            angular_velocity,
            still_steps: 0,
        }
    }

    /// The body's pose as a resting state with `colour`.
    pub fn state(&self, colour: &str) -> ObjectState {
        ObjectState {
            kind: self.kind,
            colour: colour.to_owned(),
            position: self.position,
            orientation: self.orientation,
        }
    }

    fn is_finite(&self) -> bool {
        self.position.iter().all(|c| c.is_finite())
            && self.orientation.iter().all(|c| c.is_finite())
            && self.velocity.iter().all(|c| c.is_finite())
            && self.angular_velocity.iter().all(|c| c.is_finite())
    }
}

/// The props a new room starts with, on the table: `(object_id, state)`.
pub fn starter_props() -> Vec<(String, ObjectState)> {
    let top = TABLE.max[1];
    let z = (TABLE.min[2] + TABLE.max[2]) * 0.5;
    // A marker lies along X: its long local Y axis turned a quarter about Z.
    let lying_along_x = [
        0.0,
        0.0,
        std::f32::consts::FRAC_1_SQRT_2,
        std::f32::consts::FRAC_1_SQRT_2,
    ];
    let props = [
        (
            "cube-1",
            ObjectKind::Cube,
            "#d94c3d",
            -0.45,
            [0.0, 0.0, 0.0, 1.0],
        ),
        (
            "cube-2",
            ObjectKind::Cube,
            "#3d7dd9",
            -0.25,
            [0.0, 0.0, 0.0, 1.0],
        ),
        (
            "ball-1",
            ObjectKind::Ball,
            "#e8c547",
            -0.05,
            [0.0, 0.0, 0.0, 1.0],
        ),
        (
            "ball-2",
            ObjectKind::Ball,
            "#4cb86a",
            0.15,
            [0.0, 0.0, 0.0, 1.0],
        ),
        (
            "marker-1",
            ObjectKind::Marker,
            "#222222",
            0.4,
            lying_along_x,
        ),
    ];
    props
        .into_iter()
        .map(|(id, kind, colour, x, orientation)| {
            (
                id.to_owned(),
                ObjectState {
                    kind,
                    colour: colour.to_owned(),
                    position: [x, top + resting_half_height(kind), z],
                    orientation,
                },
            )
        })
        .collect()
}

/// Advances a flight by one [`STEP_SECONDS`]; true once it has come to rest
/// (then the body is at its final, settled pose with zero velocities).
/// A body with a non-finite number in it is dropped where it can be placed
/// and rests at once.
pub fn step(world: &World, body: &mut Body) -> bool {
    if !body.is_finite() {
        sanitize(world, body);
        drop_down(world, body);
        return true;
    }
    let dt = STEP_SECONDS;
    let kind = body.kind;
    let radius = collision_radius(kind);

    body.velocity[1] -= GRAVITY * dt;
    body.velocity = clamp_length(body.velocity, MAX_SPEED);
    body.angular_velocity = clamp_length(body.angular_velocity, MAX_SPIN);

    let [vx, vy, vz] = body.velocity;
    body.position = [
        body.position[0] + vx * dt,
        body.position[1] + vy * dt,
        body.position[2] + vz * dt,
    ];
    body.orientation = integrate_orientation(body.orientation, body.angular_velocity, dt);

    // Contacts: the floor and box tops hold the body up (`support`: the
    // highest one, and the box it is, if any); walls and box sides only
    // bounce it.
    let mut support: Option<(f32, Option<usize>)> = None;
    let mut impact = false;
    let p = &mut body.position;
    let v = &mut body.velocity;
    if p[1] < radius {
        p[1] = radius;
        hit(v, [0.0, 1.0, 0.0], kind);
        support = Some((0.0, None));
    }
    let limit = world.half_size - radius;
    for axis in [0, 2] {
        let mut normal = [0.0; 3];
        if p[axis] > limit {
            p[axis] = limit;
            normal[axis] = -1.0;
        } else if p[axis] < -limit {
            p[axis] = -limit;
            normal[axis] = 1.0;
        } else {
            continue;
        }
        hit(v, normal, kind);
        impact = true;
    }
    for (index, aabb) in world.boxes.iter().enumerate() {
        let Some(normal) = collide_box(aabb, kind, p, v) else {
            continue;
        };
        if normal[1] > SUPPORT_NORMAL_Y {
            let top = aabb.max[1];
            if support.is_none_or(|(height, _)| top > height) {
                support = Some((top, Some(index)));
            }
        } else {
            impact = true;
        }
    }

    if support.is_some() {
        let keep = slide_keep(kind);
        v[0] *= keep;
        v[2] *= keep;
        if kind == ObjectKind::Ball {
            // Rolling without slipping on a horizontal support: spin = up x v / r.
            body.angular_velocity = [v[2] / radius, 0.0, -v[0] / radius];
        } else {
            let w = &mut body.angular_velocity;
            *w = [
                w[0] * SPIN_KEEP_SUPPORTED,
                w[1] * SPIN_KEEP_SUPPORTED,
                w[2] * SPIN_KEEP_SUPPORTED,
            ];
        }
    } else if impact {
        let w = &mut body.angular_velocity;
        *w = [
            w[0] * SPIN_KEEP_IMPACT,
            w[1] * SPIN_KEEP_IMPACT,
            w[2] * SPIN_KEEP_IMPACT,
        ];
    }

    let Some((top, on_box)) = support else {
        body.still_steps = 0;
        return false;
    };
    let still = length_squared(body.velocity) < REST_SPEED * REST_SPEED
        && length_squared(body.angular_velocity) < REST_SPIN * REST_SPIN;
    if !still {
        body.still_steps = 0;
        return false;
    }
    body.still_steps += 1;
    if body.still_steps < REST_STEPS {
        return false;
    }
    settle(world, body, top, on_box.map(|index| &world.boxes[index]));
    true
}

/// Steps until rest or `max_steps`; returns the steps taken. A body still
/// moving after `max_steps` is settled where it is (dropped straight down
/// onto what is below it).
pub fn simulate_to_rest(world: &World, body: &mut Body, max_steps: u32) -> u32 {
    for taken in 1..=max_steps {
        if step(world, body) {
            return taken;
        }
    }
    drop_down(world, body);
    max_steps
}

/// Settles `body` at once straight below where it is: on the highest box
/// whose footprint holds its centre (and whose bottom is below it), else on
/// the floor. What the server does with a lost holder's object that was
/// held, and what ends a flight that ran out of steps.
pub fn drop_down(world: &World, body: &mut Body) {
    sanitize(world, body);
    let [x, y, z] = body.position;
    let mut top = 0.0;
    let mut on_box = None;
    for aabb in &world.boxes {
        let over = x >= aabb.min[0]
            && x <= aabb.max[0]
            && z >= aabb.min[2]
            && z <= aabb.max[2]
            && y >= aabb.min[1];
        if over && aabb.max[1] > top {
            top = aabb.max[1];
            on_box = Some(aabb);
        }
    }
    settle(world, body, top, on_box);
}

/// Replaces every non-finite number: a position component by 0, an
/// orientation by identity, velocities by zero; and a zero-length
/// orientation by identity.
fn sanitize(world: &World, body: &mut Body) {
    for c in &mut body.position {
        if !c.is_finite() {
            *c = 0.0;
        }
    }
    let limit = world.half_size - collision_radius(body.kind);
    body.position[0] = body.position[0].clamp(-limit, limit);
    body.position[2] = body.position[2].clamp(-limit, limit);
    body.position[1] = body.position[1].max(0.0);
    if body.orientation.iter().all(|c| c.is_finite()) {
        body.orientation = normalize_quat(body.orientation);
    } else {
        body.orientation = [0.0, 0.0, 0.0, 1.0];
    }
    if !body.velocity.iter().all(|c| c.is_finite()) {
        body.velocity = [0.0; 3];
    }
    if !body.angular_velocity.iter().all(|c| c.is_finite()) {
        body.angular_velocity = [0.0; 3];
    }
}

/// Puts the body at rest on a support whose top is at `top` (on `on_box`, or
/// the floor): exactly its resting half height above it, inside the box's
/// footprint and the walls, still, and turned to how its kind lies.
fn settle(world: &World, body: &mut Body, top: f32, on_box: Option<&Aabb>) {
    let kind = body.kind;
    let limit = world.half_size - collision_radius(kind);
    let mut x = body.position[0].clamp(-limit, limit);
    let mut z = body.position[2].clamp(-limit, limit);
    if let Some(aabb) = on_box {
        // A body balanced on an edge rests just inside it.
        x = x.clamp(aabb.min[0], aabb.max[0]);
        z = z.clamp(aabb.min[2], aabb.max[2]);
    }
    body.position = [x, top + resting_half_height(kind), z];
    body.velocity = [0.0; 3];
    body.angular_velocity = [0.0; 3];
    body.still_steps = 0;
    body.orientation = match kind {
        ObjectKind::Cube => face_down(body.orientation),
        ObjectKind::Marker => lying_flat(body.orientation),
        ObjectKind::Ball => body.orientation,
    };
}

/// Collides a sphere at `p` with `aabb`'s top and sides; returns the contact
/// normal when they touched (then `p` is outside and `v` bounced).
fn collide_box(
    aabb: &Aabb,
    kind: ObjectKind,
    p: &mut [f32; 3],
    v: &mut [f32; 3],
) -> Option<[f32; 3]> {
    let radius = collision_radius(kind);
    let closest = [
        p[0].clamp(aabb.min[0], aabb.max[0]),
        p[1].clamp(aabb.min[1], aabb.max[1]),
        p[2].clamp(aabb.min[2], aabb.max[2]),
    ];
    let d = [p[0] - closest[0], p[1] - closest[1], p[2] - closest[2]];
    let distance_squared = length_squared(d);
    if distance_squared >= radius * radius {
        return None;
    }
    let normal;
    if distance_squared > 0.0 {
        let distance = distance_squared.sqrt();
        normal = [d[0] / distance, d[1] / distance, d[2] / distance];
        *p = [
            closest[0] + normal[0] * radius,
            closest[1] + normal[1] * radius,
            closest[2] + normal[2] * radius,
        ];
    } else {
        // The centre got inside (a fast object): out through the nearest
        // face of the top and the sides (the box stands on the floor).
        let depths = [
            aabb.max[1] - p[1],
            aabb.max[0] - p[0],
            p[0] - aabb.min[0],
            aabb.max[2] - p[2],
            p[2] - aabb.min[2],
        ];
        let mut face = 0;
        for (index, depth) in depths.iter().enumerate() {
            if *depth < depths[face] {
                face = index;
            }
        }
        match face {
            0 => {
                normal = [0.0, 1.0, 0.0];
                p[1] = aabb.max[1] + radius;
            }
            1 => {
                normal = [1.0, 0.0, 0.0];
                p[0] = aabb.max[0] + radius;
            }
            2 => {
                normal = [-1.0, 0.0, 0.0];
                p[0] = aabb.min[0] - radius;
            }
            3 => {
                normal = [0.0, 0.0, 1.0];
                p[2] = aabb.max[2] + radius;
            }
            _ => {
                normal = [0.0, 0.0, -1.0];
                p[2] = aabb.min[2] - radius;
            }
        }
    }
    hit(v, normal, kind);
    Some(normal)
}

/// A body moving at `v` against a surface with unit `normal` (pointing out
/// of it): the normal speed bounces back by the kind's restitution (or stops,
/// when slow), and friction takes from the sliding speed in proportion to
/// the push the surface gave (Coulomb), down to zero. A body moving away is
/// left alone.
fn hit(v: &mut [f32; 3], normal: [f32; 3], kind: ObjectKind) {
    let approach = dot(*v, normal);
    if approach >= 0.0 {
        return;
    }
    let bounce = restitution(kind);
    let mut slide = [
        v[0] - normal[0] * approach,
        v[1] - normal[1] * approach,
        v[2] - normal[2] * approach,
    ];
    let slide_squared = length_squared(slide);
    if slide_squared > 0.0 {
        let speed = slide_squared.sqrt();
        let cut = friction(kind) * (1.0 + bounce) * -approach;
        let keep = if cut >= speed {
            0.0
        } else {
            (speed - cut) / speed
        };
        slide = [slide[0] * keep, slide[1] * keep, slide[2] * keep];
    }
    let after = bounced(approach, bounce);
    *v = [
        slide[0] + normal[0] * after,
        slide[1] + normal[1] * after,
        slide[2] + normal[2] * after,
    ];
}

/// The normal speed after a bounce off a surface the body hit at `speed`
/// (either sign): reversed and scaled by `bounce`, or zero when too slow.
fn bounced(speed: f32, bounce: f32) -> f32 {
    let after = -speed * bounce;
    if after.abs() < MIN_BOUNCE_SPEED {
        0.0
    } else {
        after
    }
}

/// `q` turned by angular velocity `w` for `dt`: q += dt/2 [w, 0] q, normalized.
fn integrate_orientation(q: [f32; 4], w: [f32; 3], dt: f32) -> [f32; 4] {
    let [x, y, z, qw] = q;
    let [wx, wy, wz] = w;
    let h = dt * 0.5;
    let dx = wx * qw + wy * z - wz * y;
    let dy = wy * qw + wz * x - wx * z;
    let dz = wz * qw + wx * y - wy * x;
    let dw = -(wx * x) - wy * y - wz * z;
    normalize_quat([x + dx * h, y + dy * h, z + dz * h, qw + dw * h])
}

fn normalize_quat(q: [f32; 4]) -> [f32; 4] {
    let n2 = q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3];
    if !n2.is_finite() || n2 <= 1e-12 {
        return [0.0, 0.0, 0.0, 1.0];
    }
    let n = n2.sqrt();
    [q[0] / n, q[1] / n, q[2] / n, q[3] / n]
}

/// Hamilton product `a b`.
fn quat_mul(a: [f32; 4], b: [f32; 4]) -> [f32; 4] {
    [
        a[3] * b[0] + a[0] * b[3] + a[1] * b[2] - a[2] * b[1],
        a[3] * b[1] - a[0] * b[2] + a[1] * b[3] + a[2] * b[0],
        a[3] * b[2] + a[0] * b[1] - a[1] * b[0] + a[2] * b[3],
        a[3] * b[3] - a[0] * b[0] - a[1] * b[1] - a[2] * b[2],
    ]
}

/// The local axes of `q` in room coordinates: the columns of its rotation.
fn axes(q: [f32; 4]) -> [[f32; 3]; 3] {
    let [x, y, z, w] = q;
    [
        [
            1.0 - 2.0 * (y * y + z * z),
            2.0 * (x * y + w * z),
            2.0 * (x * z - w * y),
        ],
        [
            2.0 * (x * y - w * z),
            1.0 - 2.0 * (x * x + z * z),
            2.0 * (y * z + w * x),
        ],
        [
            2.0 * (x * z + w * y),
            2.0 * (y * z - w * x),
            1.0 - 2.0 * (x * x + y * y),
        ],
    ]
}

/// The shortest turn taking unit `from` to unit `to` (not opposite).
fn turn_between(from: [f32; 3], to: [f32; 3]) -> [f32; 4] {
    let c = cross(from, to);
    normalize_quat([c[0], c[1], c[2], 1.0 + dot(from, to)])
}

/// A cube turned the least so that the local axis nearest vertical is
/// vertical: it lies on that face, its yaw kept.
fn face_down(q: [f32; 4]) -> [f32; 4] {
    let q = normalize_quat(q);
    let mut up = [0.0, 1.0, 0.0];
    let mut best = -1.0;
    for axis in axes(q) {
        if axis[1].abs() > best {
            best = axis[1].abs();
            up = if axis[1] < 0.0 {
                [-axis[0], -axis[1], -axis[2]]
            } else {
                axis
            };
        }
    }
    normalize_quat(quat_mul(turn_between(up, [0.0, 1.0, 0.0]), q))
}

/// A marker (long along its local Y) turned the least so that it lies flat
/// along where it pointed; one standing upright falls along its local Z.
fn lying_flat(q: [f32; 4]) -> [f32; 4] {
    let q = normalize_quat(q);
    let [_, long, side] = axes(q);
    let mut flat = [long[0], 0.0, long[2]];
    if length_squared(flat) < 1e-6 {
        flat = [side[0], 0.0, side[2]];
    }
    let n = length_squared(flat).sqrt();
    let flat = [flat[0] / n, 0.0, flat[2] / n];
    normalize_quat(quat_mul(turn_between(long, flat), q))
}

fn dot(a: [f32; 3], b: [f32; 3]) -> f32 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn length_squared(a: [f32; 3]) -> f32 {
    dot(a, a)
}

fn clamp_length(a: [f32; 3], max: f32) -> [f32; 3] {
    let l2 = length_squared(a);
    if l2 <= max * max {
        return a;
    }
    let scale = max / l2.sqrt();
    [a[0] * scale, a[1] * scale, a[2] * scale]
}

/// A flight driven by a frame clock: whole steps for the time that passed.
#[derive(Debug, Clone)]
pub struct Flight {
    pub body: Body,
    /// Seconds not yet stepped.
    pub carry: f32,
    pub resting: bool,
    /// Steps taken; at [`MAX_FLIGHT_STEPS`] the body is dropped straight down.
    pub steps: u32,
}

/// See [`Flight::advance`].
const CARRY_SLACK_SECONDS: f32 = 1e-5;

impl Flight {
    pub fn new(body: Body) -> Flight {
        Flight {
            body,
            carry: 0.0,
            resting: false,
            steps: 0,
        }
    }

    /// Runs the steps `elapsed_seconds` holds (at most one second's worth);
    /// true once resting. A negative or non-finite time runs none.
    pub fn advance(&mut self, world: &World, elapsed_seconds: f32) -> bool {
        if self.resting {
            return true;
        }
        let elapsed = if elapsed_seconds.is_finite() {
            elapsed_seconds.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.carry = (self.carry + elapsed).min(1.0);
        // A hair of slack, so f32 rounding in the sum of frame times never
        // loses a step (a second of 1/90 s frames is 90 steps).
        while self.carry >= STEP_SECONDS - CARRY_SLACK_SECONDS {
            self.carry -= STEP_SECONDS;
            self.steps += 1;
            if step(world, &mut self.body) {
                self.resting = true;
            } else if self.steps >= MAX_FLIGHT_STEPS {
                drop_down(world, &mut self.body);
                self.resting = true;
            }
            if self.resting {
                self.carry = 0.0;
                break;
            }
        }
        self.resting
    }
}

/// Estimates a holder's hand (or dragged object's) velocity from recent poses.
#[derive(Debug, Clone, Default)]
pub struct VelocityEstimator {
    samples: VecDeque<Sample>,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    time: f64,
    position: [f32; 3],
    orientation: [f32; 4],
}

/// The span of samples a velocity is measured over, in seconds.
pub const VELOCITY_WINDOW_SECONDS: f64 = 0.1;
/// Samples kept: a 144 Hz display fills the window with ~15.
const MAX_SAMPLES: usize = 32;

impl VelocityEstimator {
    pub fn new() -> VelocityEstimator {
        VelocityEstimator::default()
    }

    /// Records where the hand (or object) was at `time_seconds`. A sample at
    /// the same time as the last replaces it; one earlier than the last (a
    /// clock that went back) starts over; non-finite samples are ignored.
    pub fn push(&mut self, time_seconds: f64, position: [f32; 3], orientation: [f32; 4]) {
        if !time_seconds.is_finite()
            || !position.iter().all(|c| c.is_finite())
            || !orientation.iter().all(|c| c.is_finite())
        {
            return;
        }
        let sample = Sample {
            time: time_seconds,
            position,
            orientation: normalize_quat(orientation),
        };
        match self.samples.back() {
            Some(last) if last.time == time_seconds => {
                self.samples.pop_back();
            }
            Some(last) if last.time > time_seconds => self.samples.clear(),
            _ => {}
        }
        self.samples.push_back(sample);
        // Keep one sample older than the window, so a slow sender still
        // gives a velocity.
        while self.samples.len() > MAX_SAMPLES
            || (self.samples.len() > 2
                && time_seconds - self.samples[1].time > VELOCITY_WINDOW_SECONDS)
        {
            self.samples.pop_front();
        }
    }

    /// Linear and angular velocity over the last ~100 ms; zero with fewer than two samples.
    /// Linear: the least-squares slope of position over time; angular: the
    /// turn from the window's first orientation to its last.
    pub fn velocity(&self) -> ([f32; 3], [f32; 3]) {
        let count = self.samples.len();
        if count < 2 {
            return ([0.0; 3], [0.0; 3]);
        }
        let newest = self.samples[count - 1].time;
        // The samples inside the window, or the last two if they are further apart.
        let first = self
            .samples
            .iter()
            .position(|s| newest - s.time <= VELOCITY_WINDOW_SECONDS)
            .unwrap_or(count - 1)
            .min(count - 2);
        let window = || self.samples.iter().skip(first);
        let n = (count - first) as f64;
        let mean_t = window().map(|s| s.time).sum::<f64>() / n;
        let mut mean_p = [0.0f64; 3];
        for s in window() {
            for (m, c) in mean_p.iter_mut().zip(s.position) {
                *m += f64::from(c) / n;
            }
        }
        let mut tt = 0.0;
        let mut tp = [0.0f64; 3];
        for s in window() {
            let dt = s.time - mean_t;
            tt += dt * dt;
            for axis in 0..3 {
                tp[axis] += dt * (f64::from(s.position[axis]) - mean_p[axis]);
            }
        }
        if !tt.is_finite() || tt <= 1e-12 {
            return ([0.0; 3], [0.0; 3]);
        }
        let velocity = clamp_length(tp.map(|c| (c / tt) as f32), MAX_SPEED);

        let from = self.samples[first];
        let to = self.samples[count - 1];
        let span = (to.time - from.time) as f32;
        let inverse = [
            -from.orientation[0],
            -from.orientation[1],
            -from.orientation[2],
            from.orientation[3],
        ];
        let mut turn = quat_mul(to.orientation, inverse);
        if turn[3] < 0.0 {
            turn = turn.map(|c| -c);
        }
        let sin_half = length_squared([turn[0], turn[1], turn[2]]).sqrt();
        let angular = if sin_half > 1e-7 && span > 0.0 {
            let angle = 2.0 * sin_half.atan2(turn[3]);
            let scale = angle / (sin_half * span);
            clamp_length(
                [turn[0] * scale, turn[1] * scale, turn[2] * scale],
                MAX_SPIN,
            )
        } else {
            [0.0; 3]
        };
        (velocity, angular)
    }

    pub fn clear(&mut self) {
        self.samples.clear();
    }
}

#[cfg(test)]
mod tests;
