//! Controllers and tracked hands through OpenXR: the action set of
//! [`super::bindings`] created, bound for every interaction profile and
//! attached, then read once per frame into one [`HandSample`] per hand. A
//! tracked hand's pinch and fist are read from its joints
//! ([`super::grab::pinch_strength`], [`super::grab::fist_strength`]): the
//! binding table has no hand-tracking profile, so a bare hand grabs with them.

use anyhow::{Context, Result};
use openxr as xr;

use super::bindings::{self, ActionKind};
use super::grab::{fist_strength, pinch_strength};

pub const HANDS: [&str; 2] = ["/user/hand/left", "/user/hand/right"];

/// One hand this frame, in the play space.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HandSample {
    /// Where the hand holds things: the tracked wrist, else the controller grip.
    pub grip: Option<xr::Posef>,
    /// Where the hand points (lasers, teleport arcs).
    pub aim: Option<xr::Posef>,
    pub trigger: f32,
    pub squeeze: f32,
    pub thumbstick: [f32; 2],
    pub menu: bool,
    /// The grip comes from hand tracking, not a controller.
    pub hand_tracked: bool,
    /// A tracked hand closing, 0..1: the stronger of its pinch and its fist.
    pub hand_closure: f32,
    /// Where a tracked hand holds things (play space): the palm's centre,
    /// whether it pinches or makes a fist, so a held object does not jump
    /// when one becomes the other.
    pub hand_point: Option<[f32; 3]>,
}

/// Every action, created from the binding table, with its spaces per hand.
pub struct Controllers {
    action_set: xr::ActionSet,
    grip: xr::Action<xr::Posef>,
    aim: xr::Action<xr::Posef>,
    trigger: xr::Action<f32>,
    squeeze: xr::Action<f32>,
    thumbstick: xr::Action<xr::Vector2f>,
    menu: xr::Action<bool>,
    hand_paths: [xr::Path; 2],
    grip_spaces: [xr::Space; 2],
    aim_spaces: [xr::Space; 2],
    hand_trackers: Option<[xr::HandTracker; 2]>,
}

impl std::fmt::Debug for Controllers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controllers")
            .field("hand_tracking", &self.hand_trackers.is_some())
            .finish_non_exhaustive()
    }
}

impl Controllers {
    pub fn new(
        instance: &xr::Instance,
        session: &xr::Session<xr::Vulkan>,
        hand_tracking: bool,
    ) -> Result<Controllers> {
        let action_set = instance
            .create_action_set(bindings::ACTION_SET, bindings::ACTION_SET_LOCALIZED, 0)
            .context("creating the action set")?;
        let hand_paths = [
            instance.string_to_path(HANDS[0])?,
            instance.string_to_path(HANDS[1])?,
        ];
        let spec = |name: &str| {
            bindings::ACTIONS
                .iter()
                .find(|action| action.name == name)
                .with_context(|| format!("the binding table has no action `{name}`"))
        };
        macro_rules! action {
            ($name:expr, $ty:ty, $kind:expr) => {{
                let spec = spec($name)?;
                anyhow::ensure!(
                    spec.kind == $kind,
                    "action `{}` is {:?} in the binding table",
                    spec.name,
                    spec.kind
                );
                action_set
                    .create_action::<$ty>(spec.name, spec.localized_name, &hand_paths)
                    .with_context(|| format!("creating the action `{}`", spec.name))?
            }};
        }
        let grip = action!(bindings::GRIP_POSE, xr::Posef, ActionKind::Pose);
        let aim = action!(bindings::AIM_POSE, xr::Posef, ActionKind::Pose);
        let trigger = action!(bindings::TRIGGER, f32, ActionKind::Float);
        let squeeze = action!(bindings::SQUEEZE, f32, ActionKind::Float);
        let thumbstick = action!(bindings::THUMBSTICK, xr::Vector2f, ActionKind::Vector2);
        let menu = action!(bindings::MENU, bool, ActionKind::Boolean);

        for profile in bindings::PROFILES {
            let profile_path = instance.string_to_path(profile)?;
            let mut suggested = Vec::new();
            for (action_name, path) in bindings::suggested_bindings(profile) {
                let path = instance.string_to_path(path)?;
                suggested.push(match action_name {
                    n if n == bindings::GRIP_POSE => xr::Binding::new(&grip, path),
                    n if n == bindings::AIM_POSE => xr::Binding::new(&aim, path),
                    n if n == bindings::TRIGGER => xr::Binding::new(&trigger, path),
                    n if n == bindings::SQUEEZE => xr::Binding::new(&squeeze, path),
                    n if n == bindings::THUMBSTICK => xr::Binding::new(&thumbstick, path),
                    n if n == bindings::MENU => xr::Binding::new(&menu, path),
                    other => anyhow::bail!("the binding table binds an unknown action `{other}`"),
                });
            }
            // A runtime that does not know a profile refuses its bindings;
            // the other profiles still apply.
            if let Err(error) =
                instance.suggest_interaction_profile_bindings(profile_path, &suggested)
            {
                eprintln!("xr: the runtime did not take the bindings for {profile}: {error}");
            }
        }
        session
            .attach_action_sets(&[&action_set])
            .context("attaching the action set")?;
        let space = |action: &xr::Action<xr::Posef>, hand: usize| {
            action
                .create_space(session, hand_paths[hand], xr::Posef::IDENTITY)
                .context("creating a controller space")
        };
        let grip_spaces = [space(&grip, 0)?, space(&grip, 1)?];
        let aim_spaces = [space(&aim, 0)?, space(&aim, 1)?];
        let hand_trackers = if hand_tracking {
            Some([
                session.create_hand_tracker(xr::Hand::LEFT)?,
                session.create_hand_tracker(xr::Hand::RIGHT)?,
            ])
        } else {
            None
        };
        Ok(Controllers {
            action_set,
            grip,
            aim,
            trigger,
            squeeze,
            thumbstick,
            menu,
            hand_paths,
            grip_spaces,
            aim_spaces,
            hand_trackers,
        })
    }

    /// Syncs the actions and samples both hands at `time` in `base`.
    pub fn sync(
        &self,
        session: &xr::Session<xr::Vulkan>,
        base: &xr::Space,
        time: xr::Time,
    ) -> Result<[HandSample; 2]> {
        session.sync_actions(&[(&self.action_set).into()])?;
        let mut hands = [HandSample::default(); 2];
        for (index, hand) in hands.iter_mut().enumerate() {
            let path = self.hand_paths[index];
            let located = |space: &xr::Space| -> Result<Option<xr::Posef>> {
                let location = space.locate(base, time)?;
                Ok(location
                    .location_flags
                    .contains(
                        xr::SpaceLocationFlags::POSITION_VALID
                            | xr::SpaceLocationFlags::ORIENTATION_VALID,
                    )
                    .then_some(location.pose))
            };
            if self.grip.is_active(session, path)? {
                hand.grip = located(&self.grip_spaces[index])?;
            }
            if self.aim.is_active(session, path)? {
                hand.aim = located(&self.aim_spaces[index])?;
            }
            hand.trigger = self.trigger.state(session, path)?.current_state;
            hand.squeeze = self.squeeze.state(session, path)?.current_state;
            let stick = self.thumbstick.state(session, path)?.current_state;
            hand.thumbstick = [stick.x, stick.y];
            hand.menu = self.menu.state(session, path)?.current_state;
            if let Some(trackers) = &self.hand_trackers
                && let Some(joints) = base.locate_hand_joints(&trackers[index], time)?
            {
                let wrist = joints[xr::HandJoint::WRIST];
                if wrist.location_flags.contains(
                    xr::SpaceLocationFlags::POSITION_VALID
                        | xr::SpaceLocationFlags::ORIENTATION_VALID,
                ) {
                    hand.grip = Some(wrist.pose);
                    hand.hand_tracked = true;
                }
                let at = |joint: xr::HandJoint| {
                    let located = joints[joint];
                    located
                        .location_flags
                        .contains(xr::SpaceLocationFlags::POSITION_VALID)
                        .then(|| {
                            let p = located.pose.position;
                            glam::Vec3::new(p.x, p.y, p.z)
                        })
                };
                if let (
                    Some(thumb),
                    Some(index),
                    Some(palm),
                    Some(middle),
                    Some(ring),
                    Some(little),
                ) = (
                    at(xr::HandJoint::THUMB_TIP),
                    at(xr::HandJoint::INDEX_TIP),
                    at(xr::HandJoint::PALM),
                    at(xr::HandJoint::MIDDLE_TIP),
                    at(xr::HandJoint::RING_TIP),
                    at(xr::HandJoint::LITTLE_TIP),
                ) {
                    let pinch = pinch_strength(thumb, index);
                    let fist = fist_strength(palm, [middle, ring, little]);
                    hand.hand_closure = pinch.max(fist);
                    hand.hand_point = Some(palm.to_array());
                }
            }
        }
        Ok(hands)
    }
}
