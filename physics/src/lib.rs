//! Object physics: a thrown object's flight until it rests, the room it flies
//! in (floor, walls, the table), and a holder's hand velocity. Time is an
//! input; every step is [`STEP_SECONDS`] long, so a flight comes out the
//! same whatever a client's frame rate.
//!
//! The browser runs `server/web/src/room/physics.ts`, held to the vectors in
//! `physics/vectors/throws.json` that this crate generates and checks.

use roomscale_protocol::objects::{ObjectKind, ObjectState};

/// One physics step, in seconds.
pub const STEP_SECONDS: f32 = 1.0 / 90.0;
/// Downward acceleration, m/s^2.
pub const GRAVITY: f32 = 9.81;

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
}

/// Estimates a holder's hand (or dragged object's) velocity from recent poses.
#[derive(Debug, Clone, Default)]
pub struct VelocityEstimator {}

// The API below is being filled in; signatures are the contract others build on.

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

impl Body {
    /// A body released from a hand: at `state`'s pose, with the hand's velocities.
    pub fn released(state: &ObjectState, velocity: [f32; 3], angular_velocity: [f32; 3]) -> Body {
        Body {
            kind: state.kind,
            position: state.position,
            orientation: state.orientation,
            velocity,
            angular_velocity,
        }
    }
}

/// The props a new room starts with, on the table: `(object_id, state)`.
pub fn starter_props() -> Vec<(String, ObjectState)> {
    unimplemented!()
}

/// Advances a flight by one [`STEP_SECONDS`]; true once it has come to rest
/// (then the body is at its final, settled pose with zero velocities).
pub fn step(_world: &World, _body: &mut Body) -> bool {
    unimplemented!()
}

/// Steps until rest or `max_steps`; returns the steps taken. A body still
/// moving after `max_steps` is settled where it is (dropped straight down
/// onto what is below it).
pub fn simulate_to_rest(_world: &World, _body: &mut Body, _max_steps: u32) -> u32 {
    unimplemented!()
}

/// A flight driven by a frame clock: whole steps for the time that passed.
#[derive(Debug, Clone)]
pub struct Flight {
    pub body: Body,
    /// Seconds not yet stepped.
    pub carry: f32,
    pub resting: bool,
}

impl Flight {
    pub fn new(body: Body) -> Flight {
        Flight {
            body,
            carry: 0.0,
            resting: false,
        }
    }

    /// Runs the steps `elapsed_seconds` holds (at most one second's worth);
    /// true once resting.
    pub fn advance(&mut self, _world: &World, _elapsed_seconds: f32) -> bool {
        unimplemented!()
    }
}

impl VelocityEstimator {
    /// Records where the hand (or object) was at `time_seconds`.
    pub fn push(&mut self, _time_seconds: f64, _position: [f32; 3], _orientation: [f32; 4]) {
        unimplemented!()
    }

    /// Linear and angular velocity over the last ~100 ms; zero with fewer than two samples.
    pub fn velocity(&self) -> ([f32; 3], [f32; 3]) {
        unimplemented!()
    }

    pub fn clear(&mut self) {
        unimplemented!()
    }
}
