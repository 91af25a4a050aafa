//! Moving through the room without walking, as plain logic: thumbsticks, the
//! head pose and the right controller's aim go in once per frame with the
//! time step; the transform from the play space (the tracked area, as OpenXR
//! reports poses in it) to the room comes out.
//!
//! The left stick walks relative to where the head looks; the right stick
//! snap-turns (left/right) and aims a teleport arc (forward, then release).
//! Turns pivot about the head and teleports move the head, not the play
//! space's origin, so the user's view stays put or lands where they aimed.
//!
//! Coordinates are metres, right-handed, +Y up, -Z forward; the room's floor
//! is the plane y = 0.

use std::f32::consts::{PI, TAU};

use glam::{Mat4, Quat, Vec2, Vec3};
use roomscale_protocol::pose::{AvatarPose, Joint, PoseFlags};

/// A position and orientation, in the play space or the room.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pose {
    /// Metres.
    pub position: Vec3,
    /// A unit quaternion.
    pub orientation: Quat,
}

impl Default for Pose {
    fn default() -> Self {
        Pose::IDENTITY
    }
}

impl Pose {
    /// At the origin, looking along -Z.
    pub const IDENTITY: Pose = Pose {
        position: Vec3::ZERO,
        orientation: Quat::IDENTITY,
    };

    /// A pose from its parts.
    pub fn new(position: Vec3, orientation: Quat) -> Pose {
        Pose {
            position,
            orientation,
        }
    }

    /// The direction the pose points (its -Z axis).
    pub fn forward(&self) -> Vec3 {
        self.orientation * Vec3::NEG_Z
    }

    /// The pose as the wire's joint (`[x, y, z, w]` quaternion).
    pub fn to_joint(&self) -> Joint {
        Joint {
            position: self.position.to_array(),
            orientation: self.orientation.to_array(),
        }
    }
}

impl From<Pose> for Joint {
    fn from(pose: Pose) -> Joint {
        pose.to_joint()
    }
}

/// How locomotion feels. The defaults are what most VR apps use.
#[derive(Debug, Clone, PartialEq)]
pub struct LocomotionConfig {
    /// Smooth-move speed at full stick deflection, m/s.
    pub move_speed: f32,
    /// Stick deflection below which the left stick does nothing (worn sticks
    /// rest slightly off centre).
    pub deadzone: f32,
    /// One snap turn, radians.
    pub snap_angle: f32,
    /// Right-stick deflection that fires a snap turn or starts aiming.
    pub press: f32,
    /// Right-stick deflection below which it counts as released: re-arms the
    /// snap turn, or teleports when aiming. The gap to `press` keeps a stick
    /// held near one threshold from firing again and again.
    pub release: f32,
    /// Speed the teleport arc leaves the controller at, m/s.
    pub launch_speed: f32,
    /// Pull on the arc, m/s², downwards.
    pub gravity: f32,
    /// Time between the arc's points, s.
    pub arc_step: f32,
    /// How long the arc may fly before it counts as never landing, s.
    pub arc_duration: f32,
}

impl Default for LocomotionConfig {
    fn default() -> Self {
        LocomotionConfig {
            move_speed: 2.0,
            deadzone: 0.2,
            snap_angle: 30f32.to_radians(),
            press: 0.7,
            release: 0.3,
            launch_speed: 7.0,
            gravity: 9.81,
            arc_step: 1.0 / 60.0,
            arc_duration: 3.0,
        }
    }
}

/// One frame's input, all in the play space.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LocomotionInput {
    /// The head (the VIEW space) pose.
    pub head: Pose,
    /// Left thumbstick, each axis -1..1, +y forward.
    pub left_stick: Vec2,
    /// Right thumbstick, each axis -1..1, +x right, +y forward.
    pub right_stick: Vec2,
    /// The right controller's aim pose, or `None` while it is not tracked.
    pub right_aim: Option<Pose>,
}

/// A discrete jump [`Locomotion::update`] made, for a sound or a haptic pulse.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LocomotionEvent {
    /// Turned about the head by this angle, radians (positive: to the left).
    SnapTurn {
        /// The signed angle turned.
        radians: f32,
    },
    /// Teleported the head above this point on the floor (room coordinates).
    Teleport {
        /// Where the arc hit the floor.
        to: Vec3,
    },
}

/// The play-space-to-room transform and the stick state that moves it.
#[derive(Debug, Clone)]
pub struct Locomotion {
    config: LocomotionConfig,
    /// Room position of the play space's origin.
    offset: Vec3,
    /// Rotation of the play space about +Y in the room, radians in [-π, π).
    yaw: f32,
    /// Whether the next push of the right stick sideways may turn.
    snap_armed: bool,
    aiming: bool,
    /// The arc's points while aiming, room coordinates.
    arc: Vec<Vec3>,
    target: Option<Vec3>,
}

impl Default for Locomotion {
    fn default() -> Self {
        Locomotion::new(LocomotionConfig::default())
    }
}

impl Locomotion {
    /// Starts with the play space placed on the room (no offset, no turn).
    pub fn new(config: LocomotionConfig) -> Locomotion {
        Locomotion {
            config,
            offset: Vec3::ZERO,
            yaw: 0.0,
            snap_armed: true,
            aiming: false,
            arc: Vec::new(),
            target: None,
        }
    }

    /// The settings in use.
    pub fn config(&self) -> &LocomotionConfig {
        &self.config
    }

    /// Room position of the play space's origin.
    pub fn offset(&self) -> Vec3 {
        self.offset
    }

    /// Rotation of the play space about +Y in the room, radians in [-π, π).
    pub fn yaw(&self) -> f32 {
        self.yaw
    }

    /// Places the play space in the room (e.g. at a spawn point). Movement
    /// keeps `offset.y`, so a play space whose origin is not on the floor
    /// (OpenXR's LOCAL space, at eye height) can be lifted once here.
    pub fn set_transform(&mut self, offset: Vec3, yaw: f32) {
        if offset.is_finite() && yaw.is_finite() {
            self.offset = offset;
            self.yaw = wrap_angle(yaw);
        }
    }

    /// The play-space-to-room transform as a matrix (rotation, then offset).
    pub fn room_from_play(&self) -> Mat4 {
        Mat4::from_rotation_translation(self.rotation(), self.offset)
    }

    /// A play-space pose in room coordinates.
    pub fn to_room(&self, pose: Pose) -> Pose {
        let rotation = self.rotation();
        Pose {
            position: self.offset + rotation * pose.position,
            orientation: (rotation * pose.orientation).normalize(),
        }
    }

    /// The avatar pose to send, from play-space head and hand poses.
    pub fn room_pose(&self, head: Pose, left: Pose, right: Pose, flags: PoseFlags) -> AvatarPose {
        AvatarPose {
            head: self.to_room(head).into(),
            left: self.to_room(left).into(),
            right: self.to_room(right).into(),
            flags,
        }
    }

    /// Whether the user is aiming a teleport (right stick held forward).
    pub fn is_aiming(&self) -> bool {
        self.aiming
    }

    /// Where a teleport would land now (room floor), while aiming at the floor.
    pub fn teleport_target(&self) -> Option<Vec3> {
        self.target
    }

    /// The teleport arc's points from the controller on (room coordinates),
    /// ending at the target when there is one; empty when not aiming.
    pub fn arc(&self) -> &[Vec3] {
        &self.arc
    }

    /// Advances one frame of `dt` seconds. A frame with no time passed (or a
    /// `dt` that is not a positive number) changes nothing: the sticks are
    /// read again next frame, so no push is lost.
    pub fn update(&mut self, input: &LocomotionInput, dt: f32) -> Option<LocomotionEvent> {
        let usable = dt > 0.0 && dt.is_finite() && pose_is_finite(&input.head);
        if !usable {
            return None;
        }
        self.smooth_move(input.head, finite_or_zero(input.left_stick), dt);
        let stick = finite_or_zero(input.right_stick);
        if self.aiming {
            return self.aim(input, stick);
        }
        if !self.snap_armed && stick.x.abs() < self.config.release {
            self.snap_armed = true;
        }
        // On a diagonal push the larger axis wins, so a forward push that
        // drifts sideways aims rather than turns, and the other way round.
        if stick.y > self.config.press && stick.y > stick.x.abs() {
            self.aiming = true;
            self.recompute_arc(input.right_aim);
            None
        } else if self.snap_armed
            && stick.x.abs() > self.config.press
            && stick.x.abs() > stick.y.abs()
        {
            self.snap_armed = false;
            // Pushing right turns clockwise seen from above: negative about +Y.
            let radians = -stick.x.signum() * self.config.snap_angle;
            self.turn_about_head(input.head, radians);
            Some(LocomotionEvent::SnapTurn { radians })
        } else {
            None
        }
    }

    fn rotation(&self) -> Quat {
        Quat::from_rotation_y(self.yaw)
    }

    fn smooth_move(&mut self, head: Pose, stick: Vec2, dt: f32) {
        let deflection = stick.length();
        let deadzone = self.config.deadzone;
        if deflection <= deadzone {
            return;
        }
        // Rescaled so speed rises from zero at the deadzone's edge instead of
        // jumping; sticks that read past 1 on diagonals are capped.
        let scale = ((deflection - deadzone) / (1.0 - deadzone)).min(1.0);
        let direction = stick / deflection;
        let forward = floor_forward(head.orientation);
        let right = forward.cross(Vec3::Y);
        let step = forward * direction.y + right * direction.x;
        self.offset += self.rotation() * step * (self.config.move_speed * scale * dt);
    }

    fn turn_about_head(&mut self, head: Pose, radians: f32) {
        let head_in_room = self.to_room(head).position;
        self.yaw = wrap_angle(self.yaw + radians);
        // Choose the offset that puts the head back where it was. Turning
        // about +Y leaves heights alone, so `offset.y` does not change.
        self.offset = head_in_room - self.rotation() * head.position;
    }

    fn aim(&mut self, input: &LocomotionInput, stick: Vec2) -> Option<LocomotionEvent> {
        if stick.y >= self.config.release {
            self.recompute_arc(input.right_aim);
            return None;
        }
        // Released: go where the arc shown last frame pointed, which is what
        // the user saw when they let go.
        let target = self.target.take();
        self.aiming = false;
        self.arc.clear();
        // The thumb often rolls sideways off a forward push; that must not
        // turn right after landing.
        self.snap_armed = false;
        let to = target?;
        let head = self.to_room(input.head).position;
        self.offset += Vec3::new(to.x - head.x, 0.0, to.z - head.z);
        Some(LocomotionEvent::Teleport { to })
    }

    fn recompute_arc(&mut self, aim: Option<Pose>) {
        self.target = match aim.filter(pose_is_finite) {
            Some(aim) => teleport_arc(self.to_room(aim), &self.config, &mut self.arc),
            None => {
                self.arc.clear();
                None
            }
        };
    }
}

/// Traces the teleport arc thrown from `from` (room coordinates) along its -Z
/// at the configured launch speed, into `points` (cleared first): the start,
/// then one point per `arc_step`, ending at the floor hit if the arc comes
/// down through y = 0 within `arc_duration`. Returns that hit.
pub fn teleport_arc(from: Pose, config: &LocomotionConfig, points: &mut Vec<Vec3>) -> Option<Vec3> {
    points.clear();
    let start = from.position;
    let velocity = from.forward().normalize_or_zero() * config.launch_speed;
    let gravity = config.gravity;
    let at = |t: f32| start + velocity * t + Vec3::new(0.0, -0.5 * gravity * t * t, 0.0);
    // The time the height comes down to zero: the later root of
    // y0 + vy·t − g/2·t² = 0. A start below the floor never lands.
    let landing = if start.y <= 0.0 {
        None
    } else if gravity > 0.0 {
        Some((velocity.y + (velocity.y * velocity.y + 2.0 * gravity * start.y).sqrt()) / gravity)
    } else if velocity.y < 0.0 {
        Some(start.y / -velocity.y)
    } else {
        None
    }
    .filter(|t| t.is_finite() && *t <= config.arc_duration);
    let end = landing.unwrap_or(config.arc_duration);
    points.push(start);
    if config.arc_step > 0.0 && end.is_finite() && end > 0.0 {
        // Bounded so a silly configuration cannot allocate without end.
        // The small allowance keeps rounding (3 s / (1/60 s) = 180.00002)
        // from adding a step of almost nothing.
        let steps = ((end / config.arc_step - 1e-3).ceil().max(1.0) as usize).min(10_000);
        points.extend((1..=steps).map(|i| at((i as f32 * config.arc_step).min(end))));
    }
    let hit = landing.map(|t| {
        let mut hit = at(t);
        hit.y = 0.0;
        hit
    });
    if let (Some(hit), Some(last)) = (hit, points.last_mut()) {
        *last = hit;
    }
    hit
}

/// The horizontal direction a head looks along. Looking straight down or up
/// leaves no horizontal part of the view direction, so the top of the head
/// (down) or the back of it (up) says which way the face is turned.
fn floor_forward(orientation: Quat) -> Vec3 {
    let forward = orientation * Vec3::NEG_Z;
    let flat = Vec3::new(forward.x, 0.0, forward.z);
    if flat.length_squared() > 1e-6 {
        return flat.normalize();
    }
    let up = orientation * Vec3::Y;
    let sign = if forward.y < 0.0 { 1.0 } else { -1.0 };
    (Vec3::new(up.x, 0.0, up.z) * sign).normalize_or(Vec3::NEG_Z)
}

fn wrap_angle(radians: f32) -> f32 {
    (radians + PI).rem_euclid(TAU) - PI
}

fn finite_or_zero(stick: Vec2) -> Vec2 {
    if stick.is_finite() { stick } else { Vec2::ZERO }
}

fn pose_is_finite(pose: &Pose) -> bool {
    pose.position.is_finite() && pose.orientation.is_finite()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPS: f32 = 1e-4;

    fn yaw_pitch(yaw_deg: f32, pitch_deg: f32) -> Quat {
        Quat::from_rotation_y(yaw_deg.to_radians()) * Quat::from_rotation_x(pitch_deg.to_radians())
    }

    fn head_at(position: Vec3, yaw_deg: f32, pitch_deg: f32) -> Pose {
        Pose::new(position, yaw_pitch(yaw_deg, pitch_deg))
    }

    fn assert_close(got: Vec3, expected: Vec3, what: &str) {
        assert!(
            got.abs_diff_eq(expected, EPS),
            "{what}: got {got}, expected {expected}"
        );
    }

    /// One frame of the left stick from a fresh locomotion turned by
    /// `play_yaw_deg`, with the head turned and pitched as given; compares
    /// how far the head moved in the room.
    fn check_move(play_yaw_deg: f32, head: (f32, f32), stick: Vec2, dt: f32, expected: Vec3) {
        let mut locomotion = Locomotion::default();
        locomotion.set_transform(Vec3::new(3.0, 0.0, -2.0), play_yaw_deg.to_radians());
        let head = head_at(Vec3::new(0.2, 1.6, 0.1), head.0, head.1);
        let before = locomotion.to_room(head).position;
        let event = locomotion.update(
            &LocomotionInput {
                head,
                left_stick: stick,
                ..Default::default()
            },
            dt,
        );
        assert_eq!(event, None);
        let moved = locomotion.to_room(head).position - before;
        assert_close(
            moved,
            expected,
            &format!("play yaw {play_yaw_deg}, head {head:?}, stick {stick}, dt {dt}"),
        );
    }

    #[test]
    fn smooth_move_follows_the_head() {
        // Full forward for half a second at 2 m/s: one metre along -Z.
        check_move(0.0, (0.0, 0.0), Vec2::Y, 0.5, Vec3::new(0.0, 0.0, -1.0));
        // Back and sideways.
        check_move(0.0, (0.0, 0.0), Vec2::NEG_Y, 0.5, Vec3::new(0.0, 0.0, 1.0));
        check_move(0.0, (0.0, 0.0), Vec2::X, 0.5, Vec3::new(1.0, 0.0, 0.0));
        check_move(0.0, (0.0, 0.0), Vec2::NEG_X, 0.5, Vec3::new(-1.0, 0.0, 0.0));
        // Head turned 90° left (looking along -X): forward is -X, right is -Z.
        check_move(0.0, (90.0, 0.0), Vec2::Y, 0.5, Vec3::new(-1.0, 0.0, 0.0));
        check_move(0.0, (90.0, 0.0), Vec2::X, 0.5, Vec3::new(0.0, 0.0, -1.0));
        // Pitch is ignored: looking down 60° or up 80° walks level, full speed.
        check_move(0.0, (0.0, -60.0), Vec2::Y, 0.5, Vec3::new(0.0, 0.0, -1.0));
        check_move(0.0, (0.0, 80.0), Vec2::Y, 0.5, Vec3::new(0.0, 0.0, -1.0));
        // Looking straight down or up still walks the way the face is turned.
        check_move(0.0, (90.0, -90.0), Vec2::Y, 0.5, Vec3::new(-1.0, 0.0, 0.0));
        check_move(0.0, (90.0, 90.0), Vec2::Y, 0.5, Vec3::new(-1.0, 0.0, 0.0));
        // The play space turned 90° left in the room turns the walk with it.
        check_move(90.0, (0.0, 0.0), Vec2::Y, 0.5, Vec3::new(-1.0, 0.0, 0.0));
        check_move(90.0, (90.0, 0.0), Vec2::Y, 0.5, Vec3::new(0.0, 0.0, 1.0));
        // A diagonal reading past 1 is capped at full speed.
        let diagonal = Vec2::new(1.0, 1.0);
        let d = std::f32::consts::FRAC_1_SQRT_2;
        check_move(0.0, (0.0, 0.0), diagonal, 0.5, Vec3::new(d, 0.0, -d));
    }

    #[test]
    fn deadzone_and_scaling() {
        check_move(0.0, (0.0, 0.0), Vec2::new(0.0, 0.15), 1.0, Vec3::ZERO);
        check_move(0.0, (0.0, 0.0), Vec2::new(0.12, 0.12), 1.0, Vec3::ZERO);
        check_move(0.0, (0.0, 0.0), Vec2::new(0.0, 0.2), 1.0, Vec3::ZERO);
        // Halfway between the deadzone's edge and full: half speed.
        check_move(
            0.0,
            (0.0, 0.0),
            Vec2::new(0.0, 0.6),
            1.0,
            Vec3::new(0.0, 0.0, -1.0),
        );
        check_move(
            0.0,
            (0.0, 0.0),
            Vec2::new(0.0, 1.0),
            1.0,
            Vec3::new(0.0, 0.0, -2.0),
        );
    }

    #[test]
    fn no_time_or_bad_input_changes_nothing() {
        for dt in [0.0, -0.1, f32::NAN, f32::INFINITY] {
            check_move(0.0, (0.0, 0.0), Vec2::Y, dt, Vec3::ZERO);
            let mut locomotion = Locomotion::default();
            let input = LocomotionInput {
                left_stick: Vec2::Y,
                right_stick: Vec2::X,
                right_aim: Some(head_at(Vec3::new(0.0, 1.0, 0.0), 0.0, -30.0)),
                ..Default::default()
            };
            assert_eq!(locomotion.update(&input, dt), None, "dt {dt}");
            assert_eq!((locomotion.offset(), locomotion.yaw()), (Vec3::ZERO, 0.0));
            let aim = LocomotionInput {
                right_stick: Vec2::Y,
                ..input
            };
            locomotion.update(&aim, dt);
            assert!(!locomotion.is_aiming(), "dt {dt}");
        }
        check_move(0.0, (0.0, 0.0), Vec2::new(f32::NAN, 1.0), 1.0, Vec3::ZERO);
        let mut locomotion = Locomotion::default();
        let broken_head = LocomotionInput {
            head: Pose::new(Vec3::NAN, Quat::IDENTITY),
            left_stick: Vec2::Y,
            ..Default::default()
        };
        assert_eq!(locomotion.update(&broken_head, 0.1), None);
        assert_eq!(locomotion.offset(), Vec3::ZERO);
    }

    #[test]
    fn snap_turn_pivots_about_the_head() {
        for (play_yaw, stick_x, expected_turn) in [
            (0.0, 1.0, -30.0),
            (0.0, -1.0, 30.0),
            (170.0, -0.8, 30.0), // wraps past ±180°
            (-45.0, 0.75, -30.0),
        ] {
            let mut locomotion = Locomotion::default();
            locomotion.set_transform(Vec3::new(1.0, 0.0, 2.0), f32::to_radians(play_yaw));
            let head = head_at(Vec3::new(0.4, 1.7, -0.3), 20.0, -10.0);
            let before = locomotion.to_room(head);
            let event = locomotion.update(
                &LocomotionInput {
                    head,
                    right_stick: Vec2::new(stick_x, 0.0),
                    ..Default::default()
                },
                1.0 / 90.0,
            );
            assert_eq!(
                event,
                Some(LocomotionEvent::SnapTurn {
                    radians: f32::to_radians(expected_turn)
                })
            );
            let after = locomotion.to_room(head);
            assert_close(after.position, before.position, "the head stays put");
            let mut turned = after.orientation * before.orientation.inverse();
            // q and -q are the same rotation; take the one with the short angle.
            if turned.w < 0.0 {
                turned = -turned;
            }
            let (axis, angle) = turned.to_axis_angle();
            let signed = if axis.y < 0.0 { -angle } else { angle };
            assert!(
                (signed - expected_turn.to_radians()).abs() < EPS,
                "turned {signed} rad, expected {expected_turn}°"
            );
            assert!((-PI..PI).contains(&locomotion.yaw()));
        }
    }

    /// Feeds right-stick x values, one frame each, and compares the turns (in
    /// degrees, positive left) that fired.
    fn check_snaps(xs: &[f32], expected: &[f32]) {
        let mut locomotion = Locomotion::default();
        let turns: Vec<f32> = xs
            .iter()
            .filter_map(|&x| {
                let input = LocomotionInput {
                    right_stick: Vec2::new(x, 0.0),
                    ..Default::default()
                };
                match locomotion.update(&input, 0.01) {
                    Some(LocomotionEvent::SnapTurn { radians }) => {
                        Some(radians.to_degrees().round())
                    }
                    _ => None,
                }
            })
            .collect();
        assert_eq!(turns, expected, "stick x: {xs:?}");
    }

    #[test]
    fn snap_turn_fires_once_per_push() {
        check_snaps(&[0.0, 0.8, 0.9, 1.0, 0.8], &[-30.0]);
        // Easing back only to 0.5 does not re-arm; below 0.3 does.
        check_snaps(&[0.8, 0.5, 0.8, 0.29, 0.8], &[-30.0, -30.0]);
        check_snaps(&[0.8, 0.3, 0.8], &[-30.0]);
        // Just at the threshold is not past it.
        check_snaps(&[0.7, 0.0, 0.71], &[-30.0]);
        // Flicking straight across to the other side does not re-arm.
        check_snaps(&[0.9, -0.9, 0.0, -0.9], &[-30.0, 30.0]);
        check_snaps(&[-0.9, 0.0, -0.9, 0.0, 0.9], &[30.0, 30.0, -30.0]);
    }

    #[test]
    fn diagonal_push_uses_the_larger_axis() {
        let mut locomotion = Locomotion::default();
        let frame = |x, y| LocomotionInput {
            right_stick: Vec2::new(x, y),
            right_aim: Some(head_at(Vec3::new(0.0, 1.0, 0.0), 0.0, -30.0)),
            ..Default::default()
        };
        // Mostly sideways: turns, does not aim.
        assert!(matches!(
            locomotion.update(&frame(0.8, 0.72), 0.01),
            Some(LocomotionEvent::SnapTurn { .. })
        ));
        assert!(!locomotion.is_aiming());
        locomotion.update(&frame(0.0, 0.0), 0.01);
        // Mostly forward: aims, does not turn.
        assert_eq!(locomotion.update(&frame(0.72, 0.8), 0.01), None);
        assert!(locomotion.is_aiming());
    }

    /// The aim pose used by the teleport tests: a controller in front of the
    /// user, at hip height, pointing 30° down and 20° left.
    fn aim() -> Pose {
        head_at(Vec3::new(0.2, 1.1, -0.3), 20.0, -30.0)
    }

    /// Closed-form landing point of a throw from `from` (room coordinates).
    fn expected_hit(from: Pose, speed: f32) -> Vec3 {
        let v = from.forward() * speed;
        let g = 9.81;
        let y0 = from.position.y;
        let t = (v.y + (v.y * v.y + 2.0 * g * y0).sqrt()) / g;
        Vec3::new(from.position.x + v.x * t, 0.0, from.position.z + v.z * t)
    }

    /// Aims for three frames, then releases; returns the event at release.
    fn aim_and_release(
        locomotion: &mut Locomotion,
        head: Pose,
        aim: Option<Pose>,
    ) -> Option<LocomotionEvent> {
        let mut input = LocomotionInput {
            head,
            right_stick: Vec2::new(0.0, 0.9),
            right_aim: aim,
            ..Default::default()
        };
        for _ in 0..3 {
            assert_eq!(locomotion.update(&input, 1.0 / 72.0), None);
            assert!(locomotion.is_aiming());
        }
        // Still aiming between the two thresholds.
        input.right_stick.y = 0.5;
        assert_eq!(locomotion.update(&input, 1.0 / 72.0), None);
        assert!(locomotion.is_aiming());
        input.right_stick.y = 0.1;
        let event = locomotion.update(&input, 1.0 / 72.0);
        assert!(!locomotion.is_aiming());
        assert!(locomotion.arc().is_empty());
        assert_eq!(locomotion.teleport_target(), None);
        event
    }

    #[test]
    fn teleport_lands_the_head_over_the_hit() {
        for (offset, play_yaw_deg) in [
            (Vec3::ZERO, 0.0f32),
            (Vec3::new(4.0, 0.0, -7.0), 135.0),
            // A LOCAL play space lifted to eye height keeps its lift.
            (Vec3::new(-1.0, 1.6, 2.0), -60.0),
        ] {
            let mut locomotion = Locomotion::default();
            locomotion.set_transform(offset, play_yaw_deg.to_radians());
            let head = head_at(Vec3::new(0.3, 1.65, 0.2), 10.0, -5.0);
            let head_before = locomotion.to_room(head).position;
            let hit = expected_hit(locomotion.to_room(aim()), 7.0);

            let event = aim_and_release(&mut locomotion, head, Some(aim()));
            let what = format!("offset {offset}, yaw {play_yaw_deg}");
            let Some(LocomotionEvent::Teleport { to }) = event else {
                panic!("no teleport for {what}: {event:?}");
            };
            assert_close(to, hit, &what);
            let head_after = locomotion.to_room(head).position;
            assert_close(
                head_after,
                Vec3::new(hit.x, head_before.y, hit.z),
                &format!("head over the hit, height kept, {what}"),
            );
            assert!((locomotion.yaw() - play_yaw_deg.to_radians()).abs() < EPS);
        }
    }

    #[test]
    fn aiming_shows_the_arc_and_target() {
        let mut locomotion = Locomotion::default();
        let input = LocomotionInput {
            right_stick: Vec2::new(0.0, 1.0),
            right_aim: Some(aim()),
            ..Default::default()
        };
        locomotion.update(&input, 1.0 / 72.0);
        let hit = expected_hit(aim(), 7.0);
        assert_close(locomotion.teleport_target().unwrap(), hit, "target");
        let arc = locomotion.arc();
        assert_close(arc[0], aim().position, "the arc starts at the controller");
        assert_close(*arc.last().unwrap(), hit, "the arc ends at the hit");
        // One point per 1/60 s; at 7 m/s plus a fall, no step is longer than
        // about 7/60 m + the fall in one step near the end.
        assert!(arc.len() > 10 && arc.len() < 180, "{} points", arc.len());
        for pair in arc.windows(2) {
            assert!(pair[0].distance(pair[1]) < 0.3, "{pair:?}");
        }
        assert!(arc[..arc.len() - 1].iter().all(|p| p.y > 0.0));
    }

    #[test]
    fn an_arc_that_never_lands_does_nothing() {
        // Thrown fast and steeply up, it is still in the air after 3 s.
        let config = LocomotionConfig {
            launch_speed: 30.0,
            ..Default::default()
        };
        let mut locomotion = Locomotion::new(config);
        let upward = head_at(Vec3::new(0.0, 1.2, 0.0), 0.0, 70.0);
        let event = aim_and_release(&mut locomotion, Pose::IDENTITY, Some(upward));
        assert_eq!(event, None);
        assert_eq!(locomotion.offset(), Vec3::ZERO);

        let mut points = Vec::new();
        let hit = teleport_arc(upward, locomotion.config(), &mut points);
        assert_eq!(hit, None);
        // The whole 3 s is drawn, so the user sees it fly off.
        assert_eq!(points.len(), 181);

        // A controller below the floor (a badly set floor height).
        let mut locomotion = Locomotion::default();
        let below = head_at(Vec3::new(0.0, -0.2, 0.0), 0.0, -10.0);
        assert_eq!(
            aim_and_release(&mut locomotion, Pose::IDENTITY, Some(below)),
            None
        );

        // An untracked controller.
        assert_eq!(aim_and_release(&mut locomotion, Pose::IDENTITY, None), None);
        assert_eq!(locomotion.offset(), Vec3::ZERO);
    }

    #[test]
    fn teleport_uses_the_target_shown_before_release() {
        let mut locomotion = Locomotion::default();
        let mut input = LocomotionInput {
            right_stick: Vec2::new(0.0, 0.9),
            right_aim: Some(aim()),
            ..Default::default()
        };
        locomotion.update(&input, 0.01);
        let shown = locomotion.teleport_target().unwrap();
        // At release the controller swings away (and loses tracking).
        input.right_stick.y = 0.0;
        input.right_aim = None;
        assert_eq!(
            locomotion.update(&input, 0.01),
            Some(LocomotionEvent::Teleport { to: shown })
        );
    }

    #[test]
    fn no_snap_turn_right_after_a_teleport() {
        let mut locomotion = Locomotion::default();
        let frame = |x, y| LocomotionInput {
            right_stick: Vec2::new(x, y),
            right_aim: Some(aim()),
            ..Default::default()
        };
        locomotion.update(&frame(0.0, 0.9), 0.01);
        // The thumb rolls off to the side as it releases.
        assert!(matches!(
            locomotion.update(&frame(0.8, 0.1), 0.01),
            Some(LocomotionEvent::Teleport { .. })
        ));
        assert_eq!(locomotion.update(&frame(0.8, 0.0), 0.01), None);
        locomotion.update(&frame(0.0, 0.0), 0.01);
        assert!(matches!(
            locomotion.update(&frame(0.8, 0.0), 0.01),
            Some(LocomotionEvent::SnapTurn { .. })
        ));
    }

    #[test]
    fn to_room_and_room_pose() {
        let mut locomotion = Locomotion::default();
        locomotion.set_transform(Vec3::new(1.0, 0.0, 2.0), 90f32.to_radians());
        // A point one metre ahead in the play space is one metre along -X in
        // the room, since the play space is turned 90° left.
        let ahead = Pose::new(Vec3::new(0.0, 1.0, -1.0), Quat::IDENTITY);
        let room = locomotion.to_room(ahead);
        assert_close(room.position, Vec3::new(0.0, 1.0, 2.0), "position");
        assert_close(room.forward(), Vec3::NEG_X, "orientation");
        assert_close(
            locomotion.room_from_play().transform_point3(ahead.position),
            room.position,
            "the matrix agrees",
        );

        let flags = PoseFlags(PoseFlags::LEFT_TRACKED);
        let left = Pose::new(Vec3::new(-0.2, 1.0, -0.3), Quat::IDENTITY);
        let avatar = locomotion.room_pose(ahead, left, Pose::IDENTITY, flags);
        assert_eq!(avatar.head, locomotion.to_room(ahead).to_joint());
        assert_eq!(avatar.left, locomotion.to_room(left).to_joint());
        assert_eq!(avatar.right.position, [1.0, 0.0, 2.0]);
        assert_eq!(avatar.flags, flags);
        // The wire's quaternion order is x, y, z, w.
        let q = avatar.right.orientation;
        let half = 45f32.to_radians();
        assert!((q[1] - half.sin()).abs() < EPS && (q[3] - half.cos()).abs() < EPS);
    }
}
