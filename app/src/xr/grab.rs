//! Grabbing shared objects with the hands: which object is in reach, and the
//! grab / hold / release edges of a controller's squeeze or a tracked hand's
//! pinch or fist. Plain logic without I/O: each frame the hands' poses and
//! grab strengths come in (room coordinates), with a way to find the nearest
//! object; what to ask of the objects model comes out ([`GrabAction`]).
//!
//! A grabbed object keeps the pose it had relative to the hand when it was
//! grabbed, so it does not jump into the palm. One hand may take an object
//! from the other (a hand-over within one visitor needs no new grab). A hand
//! that closed on nothing catches a thrown object that comes into its reach
//! while it stays closed: so a hand-over between two people works by one
//! holding a closed hand at the object and the other letting go.

use glam::{Quat, Vec3};

/// How far from the grab point an object's surface may be to be grabbed, metres.
pub const REACH: f32 = 0.15;
/// A grab starts when the strength rises to this...
pub const PRESS: f32 = 0.7;
/// ...and ends when it falls to this (hysteresis, so a half-held squeeze
/// does not flicker between grabbing and throwing).
pub const LET_GO: f32 = 0.35;

/// A pose in the room.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GrabPose {
    pub position: Vec3,
    pub orientation: Quat,
}

/// One hand this frame.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HandGrabInput {
    /// Where the hand holds things (controller grip, or the tracked hand's
    /// palm), room coordinates; `None` while untracked.
    pub grip: Option<GrabPose>,
    /// How firmly the hand closes, 0..1: the squeeze, or for a tracked hand
    /// the stronger of [`pinch_strength`] and [`fist_strength`].
    pub strength: f32,
}

/// What to ask of the objects model.
#[derive(Debug, Clone, PartialEq)]
pub enum GrabAction {
    /// `Objects::grab` this object.
    Grab { hand: usize, object_id: String },
    /// `Objects::hold_at`: the held object is here now.
    Hold {
        hand: usize,
        object_id: String,
        position: [f32; 3],
        orientation: [f32; 4],
    },
    /// `Objects::release`: thrown with the hand's velocity.
    Release { hand: usize, object_id: String },
    /// The hand closed with nothing it may take in reach, here (room
    /// coordinates): the place to say who holds what it reached for.
    ClosedEmpty { hand: usize, at: [f32; 3] },
}

/// An object a hand could take: its id and where it is shown now.
#[derive(Debug, Clone, PartialEq)]
pub struct Reachable {
    pub object_id: String,
    pub pose: GrabPose,
    /// It lies at rest (not thrown): only a hand closing on it takes it.
    pub resting: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct Holding {
    object_id: String,
    /// The object's pose in the hand's frame.
    in_hand: GrabPose,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Hand {
    closed: bool,
    holding: Option<Holding>,
}

/// Both hands' grabs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hands {
    hands: [Hand; 2],
}

impl Hands {
    /// One frame: `nearest(point)` names the object in reach of `point` that
    /// may be grabbed (the objects model's `nearest_grabbable` within
    /// [`REACH`]) and where it is. Returns what to do, in order.
    pub fn update(
        &mut self,
        inputs: &[HandGrabInput; 2],
        mut nearest: impl FnMut(Vec3) -> Option<Reachable>,
    ) -> Vec<GrabAction> {
        let mut actions = Vec::new();
        for (hand, input) in inputs.iter().enumerate() {
            let was_closed = self.hands[hand].closed;
            let closed = if was_closed {
                input.strength > LET_GO
            } else {
                input.strength >= PRESS
            };
            self.hands[hand].closed = closed;
            let empty = self.hands[hand].holding.is_none();
            if closed && empty {
                // Grabbing needs a tracked hand; a closed hand that is not
                // tracked just stays closed until it opens. Closing takes
                // what is in reach; staying closed catches only what flies.
                let other = 1 - hand;
                let held_by_other = |id: &str| {
                    self.hands[other]
                        .holding
                        .as_ref()
                        .is_some_and(|held| held.object_id == id)
                };
                let target = input.grip.and_then(|grip| {
                    nearest(grip.position)
                        .filter(|target| {
                            !was_closed || !(target.resting || held_by_other(&target.object_id))
                        })
                        .map(|target| (grip, target))
                });
                if let (false, None, Some(grip)) = (was_closed, &target, input.grip) {
                    actions.push(GrabAction::ClosedEmpty {
                        hand,
                        at: grip.position.to_array(),
                    });
                }
                if let Some((grip, target)) = target {
                    if held_by_other(&target.object_id) {
                        // A hand-over between this visitor's hands: still held.
                        self.hands[other].holding = None;
                    } else {
                        actions.push(GrabAction::Grab {
                            hand,
                            object_id: target.object_id.clone(),
                        });
                    }
                    self.hands[hand].holding = Some(Holding {
                        object_id: target.object_id,
                        in_hand: relative(&grip, &target.pose),
                    });
                }
            } else if !closed
                && was_closed
                && let Some(held) = self.hands[hand].holding.take()
            {
                actions.push(GrabAction::Release {
                    hand,
                    object_id: held.object_id,
                });
                continue;
            }
            if let (Some(held), Some(grip)) = (&self.hands[hand].holding, input.grip) {
                let pose = compose(&grip, &held.in_hand);
                actions.push(GrabAction::Hold {
                    hand,
                    object_id: held.object_id.clone(),
                    position: pose.position.to_array(),
                    orientation: pose.orientation.normalize().to_array(),
                });
            }
        }
        actions
    }

    /// The object `hand` (0 left, 1 right) holds.
    pub fn held(&self, hand: usize) -> Option<&str> {
        self.hands[hand]
            .holding
            .as_ref()
            .map(|held| held.object_id.as_str())
    }

    /// The objects model let go of `object_id` (a refused grab, a catch by
    /// someone else, leaving the room): no hand holds it any more.
    pub fn forget(&mut self, object_id: &str) {
        for hand in &mut self.hands {
            if hand
                .holding
                .as_ref()
                .is_some_and(|held| held.object_id == object_id)
            {
                hand.holding = None;
            }
        }
    }

    /// Out of the room: nothing is held.
    pub fn clear(&mut self) {
        for hand in &mut self.hands {
            hand.holding = None;
        }
    }
}

/// `object`'s pose in `hand`'s frame.
fn relative(hand: &GrabPose, object: &GrabPose) -> GrabPose {
    let inverse = hand.orientation.inverse();
    GrabPose {
        position: inverse * (object.position - hand.position),
        orientation: (inverse * object.orientation).normalize(),
    }
}

/// A pose given in `hand`'s frame, in the room.
fn compose(hand: &GrabPose, in_hand: &GrabPose) -> GrabPose {
    GrabPose {
        position: hand.position + hand.orientation * in_hand.position,
        orientation: (hand.orientation * in_hand.orientation).normalize(),
    }
}

/// A tracked hand's pinch, 0..1, from its thumb and index finger tips: 1
/// when they touch (2 cm apart or less, joint centres), 0 from 5 cm apart.
pub fn pinch_strength(thumb_tip: Vec3, index_tip: Vec3) -> f32 {
    ramp(thumb_tip.distance(index_tip), 0.02, 0.05)
}

/// A tracked hand's fist, 0..1: the middle, ring and little finger tips
/// curled onto the palm (on average 4 cm from its centre or less) is 1; an
/// open hand (8 cm or more) is 0.
pub fn fist_strength(palm: Vec3, tips: [Vec3; 3]) -> f32 {
    let mean = tips.iter().map(|tip| tip.distance(palm)).sum::<f32>() / 3.0;
    ramp(mean, 0.04, 0.08)
}

/// 1 at or below `closed`, 0 at or above `open`, linear between.
fn ramp(distance: f32, closed: f32, open: f32) -> f32 {
    ((open - distance) / (open - closed)).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(x: f32, y: f32, z: f32) -> GrabPose {
        GrabPose {
            position: Vec3::new(x, y, z),
            orientation: Quat::IDENTITY,
        }
    }

    fn hand(grip: Option<GrabPose>, strength: f32) -> HandGrabInput {
        HandGrabInput { grip, strength }
    }

    /// A cube at `centre`; in reach within [`REACH`] of its surface (5 cm
    /// radius), as the objects model decides.
    fn cube_at(centre: Vec3, resting: bool) -> impl FnMut(Vec3) -> Option<Reachable> {
        move |point: Vec3| {
            (point.distance(centre) - 0.05 <= REACH).then(|| Reachable {
                object_id: "cube-1".into(),
                pose: GrabPose {
                    position: centre,
                    orientation: Quat::from_rotation_y(0.3),
                },
                resting,
            })
        }
    }

    /// The cube resting on the table at (0, 0.8, -1.5).
    fn cube(point: Vec3) -> Option<Reachable> {
        cube_at(Vec3::new(0.0, 0.8, -1.5), true)(point)
    }

    fn is_empty_close(actions: &[GrabAction]) -> bool {
        matches!(actions, [GrabAction::ClosedEmpty { .. }])
    }

    #[test]
    fn a_squeeze_in_reach_grabs_follows_the_hand_and_throws_on_letting_go() {
        let mut hands = Hands::default();
        let idle = hand(None, 0.0);
        // Squeezing far away grabs nothing.
        let far = at(0.0, 1.0, 0.0);
        assert!(is_empty_close(
            &hands.update(&[idle, hand(Some(far), 1.0)], cube)
        ));
        assert!(hands.update(&[idle, hand(Some(far), 0.0)], cube).is_empty());
        // Open near the cube: nothing yet; squeezed: a grab, then the hold.
        let near = at(0.1, 0.85, -1.5);
        assert!(
            hands
                .update(&[idle, hand(Some(near), 0.2)], cube)
                .is_empty()
        );
        let actions = hands.update(&[idle, hand(Some(near), 0.9)], cube);
        assert_eq!(
            actions[0],
            GrabAction::Grab {
                hand: 1,
                object_id: "cube-1".into()
            }
        );
        let GrabAction::Hold {
            position,
            orientation,
            ..
        } = &actions[1]
        else {
            panic!("{actions:?}");
        };
        // Where it was: no jump into the hand.
        assert!(Vec3::from(*position).distance(Vec3::new(0.0, 0.8, -1.5)) < 1e-5);
        assert!(Quat::from_array(*orientation).angle_between(Quat::from_rotation_y(0.3)) < 1e-3);
        assert_eq!(hands.held(1), Some("cube-1"));
        // The hand moves up 30 cm and turns: the cube moves and turns with it.
        let turned = GrabPose {
            position: Vec3::new(0.1, 1.15, -1.5),
            orientation: Quat::from_rotation_y(std::f32::consts::FRAC_PI_2),
        };
        // Half a squeeze still holds (hysteresis).
        let actions = hands.update(&[idle, hand(Some(turned), 0.5)], cube);
        let [GrabAction::Hold { position, .. }] = actions.as_slice() else {
            panic!("{actions:?}");
        };
        // The cube was 10 cm to the hand's -X; turned a quarter about +Y,
        // that offset points along +Z.
        let expected = Vec3::new(0.1, 1.10, -1.4);
        assert!(
            Vec3::from(*position).distance(expected) < 1e-5,
            "{position:?}"
        );
        // Letting go throws it.
        let actions = hands.update(&[idle, hand(Some(turned), 0.1)], cube);
        assert_eq!(
            actions,
            [GrabAction::Release {
                hand: 1,
                object_id: "cube-1".into()
            }]
        );
        assert_eq!(hands.held(1), None);
    }

    #[test]
    fn one_hand_takes_an_object_from_the_other_without_a_second_grab() {
        let mut hands = Hands::default();
        let near = at(0.1, 0.85, -1.5);
        let actions = hands.update(&[hand(Some(near), 1.0), hand(None, 0.0)], cube);
        assert!(matches!(actions[0], GrabAction::Grab { hand: 0, .. }));
        let actions = hands.update(&[hand(Some(near), 1.0), hand(Some(near), 1.0)], cube);
        assert!(
            actions
                .iter()
                .all(|a| !matches!(a, GrabAction::Grab { .. } | GrabAction::Release { .. })),
            "{actions:?}"
        );
        assert_eq!((hands.held(0), hands.held(1)), (None, Some("cube-1")));
        // The first hand opening now throws nothing.
        let actions = hands.update(&[hand(Some(near), 0.0), hand(Some(near), 1.0)], cube);
        assert!(matches!(
            actions.as_slice(),
            [GrabAction::Hold { hand: 1, .. }]
        ));
    }

    #[test]
    fn an_untracked_hand_grabs_nothing_and_a_forgotten_hold_is_not_thrown() {
        let mut hands = Hands::default();
        assert!(
            hands
                .update(&[hand(None, 1.0), hand(None, 1.0)], cube)
                .is_empty()
        );
        let near = at(0.0, 0.9, -1.5);
        // Still closed since it lost tracking: a resting cube is not taken
        // until the hand opens and closes again.
        assert!(
            hands
                .update(&[hand(None, 0.0), hand(Some(near), 1.0)], cube)
                .is_empty()
        );
        let _ = hands.update(&[hand(None, 0.0), hand(Some(near), 0.0)], cube);
        let actions = hands.update(&[hand(None, 0.0), hand(Some(near), 1.0)], cube);
        assert!(matches!(actions[0], GrabAction::Grab { hand: 1, .. }));
        // The grab was refused: the hand holds nothing, opening throws nothing.
        hands.forget("cube-1");
        assert!(
            hands
                .update(&[hand(None, 0.0), hand(Some(near), 0.0)], cube)
                .is_empty()
        );
    }

    #[test]
    fn a_closed_hand_catches_a_thrown_object_that_comes_into_reach() {
        let mut hands = Hands::default();
        let hand_at = at(0.0, 1.2, -1.0);
        let open = hand(Some(hand_at), 0.0);
        // Closed on nothing: said once, so the panel can name who holds what
        // the hand reached for.
        let actions = hands.update(&[open, hand(Some(hand_at), 1.0)], cube);
        assert!(is_empty_close(&actions), "{actions:?}");
        // Still closed: a resting object coming into reach is not taken...
        let resting_near = cube_at(Vec3::new(0.0, 1.2, -1.1), true);
        assert!(
            hands
                .update(&[open, hand(Some(hand_at), 1.0)], resting_near)
                .is_empty()
        );
        // ...a flying one is: the other person let go of it into this hand.
        let flying_near = cube_at(Vec3::new(0.0, 1.2, -1.1), false);
        let actions = hands.update(&[open, hand(Some(hand_at), 1.0)], flying_near);
        assert!(
            matches!(&actions[0], GrabAction::Grab { hand: 1, object_id } if object_id == "cube-1"),
            "{actions:?}"
        );
        assert_eq!(hands.held(1), Some("cube-1"));
    }

    #[test]
    fn pinches_and_fists_read_from_joints() {
        let o = Vec3::ZERO;
        assert_eq!(pinch_strength(o, Vec3::new(0.015, 0.0, 0.0)), 1.0);
        assert_eq!(pinch_strength(o, Vec3::new(0.06, 0.0, 0.0)), 0.0);
        let half = pinch_strength(o, Vec3::new(0.035, 0.0, 0.0));
        assert!((half - 0.5).abs() < 1e-5, "{half}");
        let curled = [Vec3::new(0.03, 0.0, 0.0); 3];
        let open = [Vec3::new(0.0, 0.0, -0.09); 3];
        assert_eq!(fist_strength(o, curled), 1.0);
        assert_eq!(fist_strength(o, open), 0.0);
    }
}
