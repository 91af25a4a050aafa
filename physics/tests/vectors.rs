//! Writes and checks `physics/vectors/throws.json`: throws of each kind onto
//! the table, the floor and the walls, each with its pose every
//! [`SAMPLE_EVERY`] steps and where and after how many steps it rests. The
//! browser's `server/web/src/room/physics.ts` replays them
//! (`server/web/test/physics.test.mjs`). `ROOMSCALE_BLESS=1` (or
//! `cargo xtask codegen`) rewrites the file; this test fails while the
//! committed one differs from what the model computes.

use roomscale_physics::{Body, MAX_FLIGHT_STEPS, REST_STEPS, STEP_SECONDS, World, step};
use roomscale_protocol::objects::{ObjectKind, ObjectState};
use serde_json::{Value, json};

const SAMPLE_EVERY: u32 = 9;
const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/throws.json");

struct Throw {
    name: &'static str,
    kind: ObjectKind,
    position: [f32; 3],
    orientation: [f32; 4],
    velocity: [f32; 3],
    spin: [f32; 3],
}

const IDENTITY: [f32; 4] = [0.0, 0.0, 0.0, 1.0];

fn throws() -> Vec<Throw> {
    use ObjectKind::{Ball, Cube, Marker};
    let throw = |name, kind, position, orientation, velocity, spin| Throw {
        name,
        kind,
        position,
        orientation,
        velocity,
        spin,
    };
    // A quarter turn about X, and a tilted, turned pose.
    let on_side = [0.707_106_77, 0.0, 0.0, 0.707_106_77];
    let tilted = [0.2, 0.4, -0.1, 0.888_819_4];
    vec![
        throw(
            "cube dropped onto the table",
            Cube,
            [0.2, 1.3, -1.6],
            IDENTITY,
            [0.0; 3],
            [0.0; 3],
        ),
        throw(
            "ball dropped onto the floor",
            Ball,
            [1.0, 1.5, 1.0],
            IDENTITY,
            [0.0; 3],
            [0.0; 3],
        ),
        throw(
            "marker tossed onto the floor, spinning",
            Marker,
            [-1.0, 1.3, 0.5],
            tilted,
            [0.8, 1.0, 1.2],
            [2.0, 9.0, -3.0],
        ),
        throw(
            "cube lobbed onto the table",
            Cube,
            [0.0, 1.2, 0.0],
            IDENTITY,
            [0.0, 1.5, -2.9],
            [3.0, 0.0, 1.0],
        ),
        throw(
            "ball across the table and off its side",
            Ball,
            [-1.0, 1.2, -1.6],
            IDENTITY,
            [2.5, 1.0, 0.0],
            [0.0; 3],
        ),
        throw(
            "ball hard into the +X wall",
            Ball,
            [13.0, 1.5, 0.0],
            IDENTITY,
            [25.0, 3.0, 0.0],
            [0.0, 0.0, -5.0],
        ),
        throw(
            "cube into the -X -Z corner",
            Cube,
            [-13.0, 1.0, -13.0],
            tilted,
            [-20.0, 2.0, -20.0],
            [5.0, 5.0, 5.0],
        ),
        throw(
            "marker onto the table with spin",
            Marker,
            [0.3, 1.1, -0.9],
            on_side,
            [-0.3, 0.5, -1.5],
            [0.0, 8.0, 4.0],
        ),
        throw(
            "cube skimming the floor into the table's front",
            Cube,
            [0.0, 0.3, 0.0],
            IDENTITY,
            [0.0, 0.0, -5.0],
            [0.0; 3],
        ),
        throw(
            "ball lobbed high",
            Ball,
            [0.0, 1.6, 0.0],
            IDENTITY,
            [3.0, 8.0, -2.0],
            [0.0; 3],
        ),
        throw(
            "cube tumbling far",
            Cube,
            [2.0, 1.4, 2.0],
            tilted,
            [4.0, 3.0, 5.0],
            [10.0, -6.0, 3.0],
        ),
        throw(
            "marker thrown straight up, standing",
            Marker,
            [-2.0, 1.0, 3.0],
            IDENTITY,
            [0.0, 4.0, 0.0],
            [0.0; 3],
        ),
        throw(
            "ball dropped onto the table's edge",
            Ball,
            [0.63, 1.5, -1.6],
            IDENTITY,
            [0.0; 3],
            [0.0; 3],
        ),
        throw(
            "cube thrown down onto the table, fast",
            Cube,
            [-0.3, 1.6, -1.5],
            on_side,
            [0.5, -12.0, -0.2],
            [0.0, 0.0, 20.0],
        ),
    ]
}

fn pose(body: &Body) -> Value {
    json!({"position": body.position, "orientation": body.orientation})
}

fn kind_name(kind: ObjectKind) -> &'static str {
    kind.as_str()
}

#[test]
fn throw_vectors_are_current() {
    let world = World::room();
    let mut cases = Vec::new();
    for throw in throws() {
        let state = ObjectState {
            kind: throw.kind,
            colour: "#ffffff".into(),
            position: throw.position,
            orientation: throw.orientation,
        };
        let mut body = Body::released(&state, throw.velocity, throw.spin);
        let mut samples = Vec::new();
        let mut steps = 0;
        let mut rested = false;
        while steps < MAX_FLIGHT_STEPS {
            steps += 1;
            rested = step(&world, &mut body);
            if rested {
                break;
            }
            if steps % SAMPLE_EVERY == 0 {
                samples.push(json!({"step": steps, "position": body.position,
                                    "orientation": body.orientation}));
            }
        }
        assert!(rested, "\"{}\" still flies after {steps} steps", throw.name);
        assert!(
            samples.len() >= 3,
            "\"{}\" is too short to test",
            throw.name
        );
        cases.push(json!({
            "name": throw.name,
            "kind": kind_name(throw.kind),
            "start": {"position": throw.position, "orientation": throw.orientation,
                      "velocity": throw.velocity, "angular_velocity": throw.spin},
            "samples": samples,
            "rest": {"steps": steps, "pose": pose(&body)},
        }));
    }
    let generated = serde_json::to_string_pretty(&json!({
        "comment": "Generated by physics/tests/vectors.rs (ROOMSCALE_BLESS=1 to rewrite); do not edit. \
                    Each throw: the body released at `start`, stepped by roomscale_physics::step; \
                    `samples` hold the pose after every `sample_every`-th step, `rest` the settled \
                    pose and the step that returned true.",
        "step_seconds": STEP_SECONDS,
        "rest_steps": REST_STEPS,
        "max_flight_steps": MAX_FLIGHT_STEPS,
        "world": {"half_size": world.half_size,
                  "boxes": world.boxes.iter().map(|b| json!({"min": b.min, "max": b.max}))
                      .collect::<Vec<_>>()},
        "sample_every": SAMPLE_EVERY,
        "throws": cases,
    }))
    .unwrap()
        + "\n";
    if std::env::var_os("ROOMSCALE_BLESS").is_some() {
        std::fs::write(PATH, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(PATH).unwrap_or_default();
    assert!(
        committed == generated,
        "physics/vectors/throws.json is stale: run `cargo xtask codegen` (or \
         ROOMSCALE_BLESS=1 cargo test -p roomscale-physics), review and commit it"
    );
}
