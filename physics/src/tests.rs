//! Unit tests of the flight model: landings, bounces, walls, rest, the flight
//! cap, the hand velocity estimator and hostile numbers.

use super::*;

const IDENTITY: [f32; 4] = [0.0, 0.0, 0.0, 1.0];

fn body(kind: ObjectKind, position: [f32; 3], velocity: [f32; 3], spin: [f32; 3]) -> Body {
    let state = ObjectState {
        kind,
        colour: "#ffffff".into(),
        position,
        orientation: IDENTITY,
    };
    Body::released(&state, velocity, spin)
}

fn close(a: f32, b: f32, tolerance: f32) -> bool {
    (a - b).abs() <= tolerance
}

/// The largest |Y| among the body's local axes: 1 when a cube lies on a face.
fn most_vertical_axis(q: [f32; 4]) -> f32 {
    axes(q).iter().map(|a| a[1].abs()).fold(0.0, f32::max)
}

#[test]
fn drops_land_and_rest_on_the_floor() {
    let world = World::room();
    for kind in ObjectKind::ALL {
        let mut b = body(kind, [2.0, 1.5, 1.0], [0.0; 3], [0.0; 3]);
        let steps = simulate_to_rest(&world, &mut b, MAX_FLIGHT_STEPS);
        assert!(steps < MAX_FLIGHT_STEPS, "{kind:?} never rested");
        assert_eq!(b.position[1], resting_half_height(kind), "{kind:?}");
        assert!(close(b.position[0], 2.0, 1e-4) && close(b.position[2], 1.0, 1e-4));
        assert_eq!(b.velocity, [0.0; 3]);
        assert_eq!(b.angular_velocity, [0.0; 3]);
    }
}

#[test]
fn drops_land_and_rest_on_the_table() {
    let world = World::room();
    for kind in ObjectKind::ALL {
        let mut b = body(kind, [0.1, 1.4, -1.6], [0.0; 3], [0.0; 3]);
        simulate_to_rest(&world, &mut b, MAX_FLIGHT_STEPS);
        assert_eq!(
            b.position[1],
            TABLE.max[1] + resting_half_height(kind),
            "{kind:?}"
        );
    }
}

#[test]
fn bounces_lose_energy() {
    let world = World::room();
    for kind in ObjectKind::ALL {
        let mut b = body(kind, [0.0, 2.0, 3.0], [0.0; 3], [0.0; 3]);
        // Fall to the floor, then follow the first bounce to its peak.
        let mut bounced = false;
        let mut peak: f32 = 0.0;
        for _ in 0..400 {
            let before = b.velocity[1];
            if step(&world, &mut b) {
                break;
            }
            if before < 0.0 && b.velocity[1] > 0.0 {
                bounced = true;
            }
            if bounced {
                peak = peak.max(b.position[1]);
                if b.velocity[1] < 0.0 {
                    break;
                }
            }
        }
        assert!(bounced, "{kind:?} did not bounce off the floor from 2 m");
        let r = collision_radius(kind);
        let expected = r + (2.0 - r) * restitution(kind) * restitution(kind);
        assert!(peak < 2.0 * 0.5, "{kind:?} bounced back to {peak} m");
        assert!(
            close(peak, expected, 0.05),
            "{kind:?} peak {peak}, expected ~{expected}"
        );
    }
}

#[test]
fn a_ball_bounces_higher_than_a_cube() {
    let world = World::room();
    let peak = |kind| {
        let mut b = body(kind, [0.0, 1.0, 3.0], [0.0; 3], [0.0; 3]);
        let mut landed = false;
        let mut peak: f32 = 0.0;
        for _ in 0..300 {
            step(&world, &mut b);
            landed |= b.position[1] <= collision_radius(kind) + 1e-4;
            if landed {
                peak = peak.max(b.position[1]);
            }
        }
        peak
    };
    assert!(peak(ObjectKind::Ball) > peak(ObjectKind::Cube) + 0.05);
}

#[test]
fn walls_stop_objects() {
    let world = World::room();
    for (velocity, axis, sign) in [
        ([40.0, 2.0, 0.0], 0, 1.0),
        ([-40.0, 2.0, 0.0], 0, -1.0),
        ([0.0, 2.0, 40.0], 2, 1.0),
        ([0.0, 2.0, -40.0], 2, -1.0),
    ] {
        let mut b = body(ObjectKind::Ball, [0.0, 1.5, 0.0], velocity, [0.0; 3]);
        let mut hit = false;
        for _ in 0..MAX_FLIGHT_STEPS {
            let done = step(&world, &mut b);
            let limit = world.half_size - collision_radius(b.kind);
            assert!(
                b.position[axis].abs() <= limit,
                "through the wall: {:?}",
                b.position
            );
            hit |= b.position[axis] * sign >= limit;
            if done {
                break;
            }
        }
        assert!(
            hit,
            "a 40 m/s throw never reached the wall: {:?}",
            b.position
        );
        assert!(
            b.position[axis] * sign < world.half_size,
            "{:?}",
            b.position
        );
    }
}

#[test]
fn the_table_side_stops_a_throw_along_the_floor() {
    let world = World::room();
    // Rolling along the floor at the table's front face (z = -1.25).
    let mut b = body(
        ObjectKind::Cube,
        [0.0, 0.05, 0.0],
        [0.0, 0.0, -6.0],
        [0.0; 3],
    );
    simulate_to_rest(&world, &mut b, MAX_FLIGHT_STEPS);
    assert!(
        b.position[2] >= TABLE.max[2] + 0.05 - 1e-4,
        "went into the table: {:?}",
        b.position
    );
    assert_eq!(b.position[1], 0.05);
}

#[test]
fn rest_needs_a_quarter_second_of_stillness() {
    let world = World::room();
    let mut b = body(ObjectKind::Cube, [1.0, 0.05, 1.0], [0.0; 3], [0.0; 3]);
    for taken in 1..REST_STEPS {
        assert!(!step(&world, &mut b), "rested after {taken} steps");
        assert_eq!(b.still_steps, taken);
    }
    assert!(step(&world, &mut b));
    assert!(REST_STEPS as f32 * STEP_SECONDS >= 0.25);
    assert_eq!(b.position, [1.0, 0.05, 1.0]);

    // Moving resets the count; a falling body is never still.
    let mut b = body(ObjectKind::Cube, [1.0, 0.05, 1.0], [0.0; 3], [0.0; 3]);
    for _ in 0..10 {
        step(&world, &mut b);
    }
    b.velocity = [1.0, 0.0, 0.0];
    assert!(!step(&world, &mut b));
    assert_eq!(b.still_steps, 0);
    let mut b = body(ObjectKind::Cube, [1.0, 3.0, 1.0], [0.0; 3], [0.0; 3]);
    for _ in 0..40 {
        assert!(!step(&world, &mut b));
        assert_eq!(b.still_steps, 0);
    }
}

#[test]
fn a_settled_cube_lies_on_a_face_keeping_its_yaw() {
    let world = World::room();
    // Yaw 30 degrees, then tilted 10 degrees about X: it tips back onto its bottom face.
    let yaw = quat_axis_angle([0.0, 1.0, 0.0], 30f32.to_radians());
    let tilt = quat_axis_angle([1.0, 0.0, 0.0], 10f32.to_radians());
    let mut b = body(ObjectKind::Cube, [3.0, 0.5, 3.0], [0.0; 3], [0.0, 0.0, 0.0]);
    b.orientation = quat_mul(tilt, yaw);
    simulate_to_rest(&world, &mut b, MAX_FLIGHT_STEPS);
    assert!(
        close(most_vertical_axis(b.orientation), 1.0, 1e-5),
        "{:?}",
        b.orientation
    );
    let forward = axes(b.orientation)[0];
    let expected = axes(yaw)[0];
    assert!(
        close(dot(forward, expected), 1.0, 1e-3),
        "yaw lost: {forward:?} vs {expected:?}"
    );

    // Tumbling hard, it still ends on a face.
    let mut b = body(
        ObjectKind::Cube,
        [3.0, 1.0, 3.0],
        [1.0, 2.0, -1.0],
        [7.0, -3.0, 5.0],
    );
    simulate_to_rest(&world, &mut b, MAX_FLIGHT_STEPS);
    assert!(
        close(most_vertical_axis(b.orientation), 1.0, 1e-5),
        "{:?}",
        b.orientation
    );
    let norm = b.orientation.iter().map(|c| c * c).sum::<f32>();
    assert!(close(norm, 1.0, 1e-5));
}

#[test]
fn a_settled_marker_lies_flat_along_its_yaw() {
    let world = World::room();
    for orientation in [
        IDENTITY,
        quat_axis_angle([1.0, 0.0, 0.0], 1.0),
        quat_axis_angle([0.3, 0.5, 0.8], 2.0),
    ] {
        let mut b = body(
            ObjectKind::Marker,
            [-3.0, 1.0, 2.0],
            [0.5, 0.0, 0.0],
            [0.0, 4.0, 2.0],
        );
        b.orientation = normalize_quat(orientation);
        simulate_to_rest(&world, &mut b, MAX_FLIGHT_STEPS);
        let long = axes(b.orientation)[1];
        assert!(long[1].abs() < 1e-5, "marker not flat: long axis {long:?}");
        assert_eq!(b.position[1], 0.01);
    }
}

#[test]
fn a_ball_keeps_its_orientation_and_rolls() {
    let world = World::room();
    let mut b = body(
        ObjectKind::Ball,
        [0.0, 0.06, 5.0],
        [2.0, 0.0, 0.0],
        [0.0; 3],
    );
    step(&world, &mut b);
    // Rolling towards +X spins it about -Z.
    assert!(b.angular_velocity[2] < -10.0, "{:?}", b.angular_velocity);
    simulate_to_rest(&world, &mut b, MAX_FLIGHT_STEPS);
    assert!(b.position[0] > 1.0, "a ball rolls on: {:?}", b.position);
    assert!(b.orientation != IDENTITY);
}

#[test]
fn throws_end_within_the_cap() {
    let world = World::room();
    let mut seed = 0x2545_f491u32;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        (seed as f32 / u32::MAX as f32) * 2.0 - 1.0
    };
    for i in 0..300 {
        let kind = ObjectKind::ALL[i % 3];
        let start = [next() * 14.0, 0.2 + next().abs() * 3.0, next() * 14.0];
        let velocity = [next() * 40.0, next() * 40.0, next() * 40.0];
        let spin = [next() * 60.0, next() * 60.0, next() * 60.0];
        let mut b = body(kind, start, velocity, spin);
        let steps = simulate_to_rest(&world, &mut b, MAX_FLIGHT_STEPS);
        assert!(steps <= MAX_FLIGHT_STEPS);
        assert_eq!(b.velocity, [0.0; 3]);
        let state = b.state("#123456");
        state
            .validate()
            .unwrap_or_else(|e| panic!("throw {i} rests invalid: {e}: {state:?}"));
        let on_table = close(b.position[1], TABLE.max[1] + collision_radius(kind), 1e-6);
        let on_floor = b.position[1] == collision_radius(kind);
        assert!(
            on_table || on_floor,
            "throw {i} rests in the air: {:?}",
            b.position
        );

        // A frame-clock flight of the same throw ends too, at 17 ms frames.
        let mut flight = Flight::new(body(kind, start, velocity, spin));
        let mut frames = 0;
        while !flight.advance(&world, 0.017) {
            frames += 1;
            assert!(frames < 2 * MAX_FLIGHT_STEPS, "flight {i} never ended");
        }
        assert!(flight.steps <= MAX_FLIGHT_STEPS);
    }
}

#[test]
fn a_flight_runs_whole_steps_whatever_the_frame_rate() {
    let world = World::room();
    let start = body(
        ObjectKind::Cube,
        [0.0, 1.2, 2.0],
        [1.0, 2.0, -0.5],
        [1.0, 0.0, 3.0],
    );
    let mut reference = start;
    let steps = simulate_to_rest(&world, &mut reference, MAX_FLIGHT_STEPS);
    for frame in [1.0 / 144.0, 1.0 / 72.0, 1.0 / 30.0, 0.25] {
        let mut flight = Flight::new(start);
        while !flight.advance(&world, frame) {}
        assert_eq!(flight.body, reference, "frame {frame}");
        assert_eq!(flight.steps, steps, "frame {frame}");
    }
    // A long stall runs at most a second's worth of steps.
    let mut flight = Flight::new(start);
    flight.advance(&world, 30.0);
    assert_eq!(flight.steps, 90);
    // Negative and non-finite frame times run nothing.
    let mut flight = Flight::new(start);
    for bad in [-1.0, f32::NAN, f32::INFINITY] {
        assert!(!flight.advance(&world, bad));
    }
    assert_eq!(flight.steps, 0);
}

#[test]
fn estimator_recovers_a_known_velocity() {
    let mut estimator = VelocityEstimator::new();
    assert_eq!(estimator.velocity(), ([0.0; 3], [0.0; 3]));
    let velocity = [1.5, -0.5, 3.0];
    let spin = [0.0, 2.0, 0.0];
    for i in 0..40 {
        let t = 10.0 + f64::from(i) / 90.0;
        let s = (t - 10.0) as f32;
        let position = [
            0.2 + velocity[0] * s,
            1.0 + velocity[1] * s,
            velocity[2] * s,
        ];
        estimator.push(t, position, quat_axis_angle([0.0, 1.0, 0.0], spin[1] * s));
        if i % 3 == 0 {
            // Duplicate timestamps (a frame that sampled twice) change nothing.
            estimator.push(t, position, quat_axis_angle([0.0, 1.0, 0.0], spin[1] * s));
        }
    }
    let (v, w) = estimator.velocity();
    for axis in 0..3 {
        assert!(close(v[axis], velocity[axis], 1e-3), "{v:?}");
        assert!(close(w[axis], spin[axis], 1e-2), "{w:?}");
    }
    // Only the last ~100 ms count: a stop shows at once.
    let last = [
        0.2 + 1.5 * 40.0 / 90.0,
        1.0 - 0.5 * 40.0 / 90.0,
        3.0 * 40.0 / 90.0,
    ];
    for i in 40..60 {
        estimator.push(10.0 + f64::from(i) / 90.0, last, IDENTITY);
    }
    let (v, _) = estimator.velocity();
    assert!(v.iter().all(|c| c.abs() < 1e-3), "{v:?}");

    estimator.clear();
    estimator.push(1.0, [0.0; 3], IDENTITY);
    estimator.push(1.0, [1.0; 3], IDENTITY);
    assert_eq!(
        estimator.velocity(),
        ([0.0; 3], [0.0; 3]),
        "two samples at one time"
    );
    // Two samples further apart than the window still give their slope.
    estimator.push(1.5, [2.0, 1.0, 1.0], IDENTITY);
    let (v, _) = estimator.velocity();
    assert!(close(v[0], 2.0, 1e-4), "{v:?}");
    // A clock that goes back starts over; non-finite samples are ignored.
    estimator.push(0.5, [0.0; 3], IDENTITY);
    estimator.push(f64::NAN, [0.0; 3], IDENTITY);
    estimator.push(0.6, [f32::NAN; 3], IDENTITY);
    assert_eq!(estimator.velocity(), ([0.0; 3], [0.0; 3]));
}

#[test]
fn non_finite_input_becomes_a_dropped_object_at_rest() {
    let world = World::room();
    let cases = [
        body(ObjectKind::Cube, [f32::NAN, 2.0, 1.0], [0.0; 3], [0.0; 3]),
        body(
            ObjectKind::Ball,
            [0.0, f32::INFINITY, 0.0],
            [1.0; 3],
            [0.0; 3],
        ),
        body(
            ObjectKind::Marker,
            [1.0, 2.0, 1.0],
            [f32::NAN, 0.0, 0.0],
            [0.0; 3],
        ),
        body(
            ObjectKind::Cube,
            [1.0, 2.0, 1.0],
            [0.0; 3],
            [0.0, f32::NEG_INFINITY, 0.0],
        ),
        body(ObjectKind::Cube, [0.0, 2.0, -1.6], [0.0; 3], [0.0; 3]),
        body(
            ObjectKind::Ball,
            [1e30, 1e30, -1e30],
            [1e30, -1e30, 1e30],
            [1e30; 3],
        ),
    ];
    for (i, mut b) in cases.into_iter().enumerate() {
        if i == 4 {
            b.orientation = [f32::NAN, 0.0, 0.0, 1.0];
        }
        let steps = simulate_to_rest(&world, &mut b, MAX_FLIGHT_STEPS);
        assert!(steps <= MAX_FLIGHT_STEPS);
        let state = b.state("#000000");
        state
            .validate()
            .unwrap_or_else(|e| panic!("case {i}: {e}: {state:?}"));
        assert_eq!(b.velocity, [0.0; 3], "case {i}");
        assert_eq!(b.angular_velocity, [0.0; 3], "case {i}");
    }
    // The non-finite step itself rests at once, below where it was.
    let mut b = body(ObjectKind::Cube, [f32::NAN, 2.0, -1.6], [0.0; 3], [0.0; 3]);
    assert!(step(&world, &mut b));
    assert_eq!(b.position, [0.0, 0.8, -1.6], "dropped onto the table");
    // A flight through zero steps settles where it is; a quaternion of zeros is identity.
    let mut b = body(ObjectKind::Cube, [5.0, 3.0, 5.0], [1.0; 3], [1.0; 3]);
    b.orientation = [0.0; 4];
    assert_eq!(simulate_to_rest(&world, &mut b, 0), 0);
    assert_eq!(b.position, [5.0, 0.05, 5.0]);
    assert_eq!(b.orientation, IDENTITY);
}

#[test]
fn starter_props_rest_on_the_table() {
    let world = World::room();
    let props = starter_props();
    let ids: Vec<&str> = props.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["cube-1", "cube-2", "ball-1", "ball-2", "marker-1"]);
    let colours: Vec<&str> = props.iter().map(|(_, s)| s.colour.as_str()).collect();
    assert_eq!(
        colours,
        ["#d94c3d", "#3d7dd9", "#e8c547", "#4cb86a", "#222222"]
    );
    let mut last_x = f32::NEG_INFINITY;
    for (id, state) in &props {
        state.validate().unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(
            state.position[1],
            TABLE.max[1] + resting_half_height(state.kind)
        );
        assert!(state.position[0] > last_x, "{id} not spread along X");
        last_x = state.position[0];
        // Left alone, a prop stays exactly where it is.
        let mut b = Body::released(state, [0.0; 3], [0.0; 3]);
        assert_eq!(
            simulate_to_rest(&world, &mut b, MAX_FLIGHT_STEPS),
            REST_STEPS
        );
        assert_eq!(b.position, state.position, "{id}");
        assert!(
            close(dot4(b.orientation, state.orientation).abs(), 1.0, 1e-6),
            "{id}"
        );
        // It lies inside the table top, a marker along X included.
        let half = if state.kind == ObjectKind::Marker {
            0.07
        } else {
            0.06
        };
        assert!(state.position[0] - half > TABLE.min[0] && state.position[0] + half < TABLE.max[0]);
    }
}

fn dot4(a: [f32; 4], b: [f32; 4]) -> f32 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3]
}

fn quat_axis_angle(axis: [f32; 3], angle: f32) -> [f32; 4] {
    let n = length_squared(axis).sqrt();
    let s = (angle * 0.5).sin() / n;
    [axis[0] * s, axis[1] * s, axis[2] * s, (angle * 0.5).cos()]
}
