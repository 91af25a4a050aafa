//! The controller binding table, as data: the one action set, its actions, and
//! the bindings suggested for each interaction profile the app knows.
//!
//! Every action is per hand: it is created with the subaction paths
//! `/user/hand/left` and `/user/hand/right` and read once per hand, the way
//! the OpenXR specification intends (§11.5 "Subaction paths"), so one
//! `grip_pose` action serves both hands instead of a left and a right action.
//!
//! The component paths are those the OpenXR 1.0 specification lists for each
//! profile (§6.4 "Interaction Profile Paths"). Where a profile lacks a
//! component the app would like, the table says what stands in for it:
//!
//! - `khr/simple_controller` has only select, menu, grip, aim and haptics:
//!   `select/click` is the trigger, there is no squeeze and no thumbstick (so
//!   no locomotion other than walking).
//! - `oculus/touch_controller` has a menu button on the left hand only.
//! - `valve/index_controller` has no menu button, and its `system/click` is
//!   reserved for the runtime; the left hand's `b/click` (the upper face
//!   button, where Touch's left hand has Y) opens the menu.
//! - `htc/vive_controller` has a trackpad instead of a thumbstick; the
//!   trackpad's position moves and turns, as SteamVR's own bindings do.
//!   Its squeeze is a click, which reads as 0.0 or 1.0.
//! - `microsoft/motion_controller` has a thumbstick and a trackpad; the
//!   thumbstick moves. Its squeeze is a click.

/// The action set's name.
pub const ACTION_SET: &str = "roomscale";
/// The action set's name as the runtime shows it (e.g. in a rebinding UI).
pub const ACTION_SET_LOCALIZED: &str = "Roomscale";

/// The left hand's top-level user path.
pub const LEFT_HAND: &str = "/user/hand/left";
/// The right hand's top-level user path.
pub const RIGHT_HAND: &str = "/user/hand/right";
/// Both hands, left first; the subaction paths of every action.
pub const HANDS: &[&str] = &[LEFT_HAND, RIGHT_HAND];

/// Where the hand holds things (pose).
pub const GRIP_POSE: &str = "grip_pose";
/// Where the hand points: lasers and the teleport arc (pose).
pub const AIM_POSE: &str = "aim_pose";
/// The index-finger trigger, 0..1.
pub const TRIGGER: &str = "trigger";
/// The grip (squeeze) button, 0..1.
pub const SQUEEZE: &str = "squeeze";
/// The thumbstick (or trackpad), each axis -1..1.
pub const THUMBSTICK: &str = "thumbstick";
/// Opens and closes the in-world menu panel.
pub const MENU: &str = "menu";

/// An action's value type (`XrActionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionKind {
    /// `XR_ACTION_TYPE_BOOLEAN_INPUT`.
    Boolean,
    /// `XR_ACTION_TYPE_FLOAT_INPUT`.
    Float,
    /// `XR_ACTION_TYPE_VECTOR2F_INPUT`.
    Vector2,
    /// `XR_ACTION_TYPE_POSE_INPUT`.
    Pose,
}

/// One action of the action set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionSpec {
    /// The action's name: lower case letters, digits, `-`, `_` and `.`.
    pub name: &'static str,
    /// The name the runtime shows a person; unique within the set.
    pub localized_name: &'static str,
    /// Its value type.
    pub kind: ActionKind,
    /// The top-level user paths it is read for.
    pub subaction_paths: &'static [&'static str],
}

/// Every action of the [`ACTION_SET`].
pub const ACTIONS: &[ActionSpec] = &[
    ActionSpec {
        name: GRIP_POSE,
        localized_name: "Hand grip pose",
        kind: ActionKind::Pose,
        subaction_paths: HANDS,
    },
    ActionSpec {
        name: AIM_POSE,
        localized_name: "Hand aim pose",
        kind: ActionKind::Pose,
        subaction_paths: HANDS,
    },
    ActionSpec {
        name: TRIGGER,
        localized_name: "Trigger",
        kind: ActionKind::Float,
        subaction_paths: HANDS,
    },
    ActionSpec {
        name: SQUEEZE,
        localized_name: "Squeeze",
        kind: ActionKind::Float,
        subaction_paths: HANDS,
    },
    ActionSpec {
        name: THUMBSTICK,
        localized_name: "Move and turn",
        kind: ActionKind::Vector2,
        subaction_paths: HANDS,
    },
    ActionSpec {
        name: MENU,
        localized_name: "Menu",
        kind: ActionKind::Boolean,
        subaction_paths: HANDS,
    },
];

/// The Khronos simple controller, which every runtime should offer.
pub const SIMPLE_CONTROLLER: &str = "/interaction_profiles/khr/simple_controller";
/// Oculus / Meta Touch controllers (Rift, Quest).
pub const TOUCH_CONTROLLER: &str = "/interaction_profiles/oculus/touch_controller";
/// Valve Index controllers.
pub const INDEX_CONTROLLER: &str = "/interaction_profiles/valve/index_controller";
/// HTC Vive wands.
pub const VIVE_CONTROLLER: &str = "/interaction_profiles/htc/vive_controller";
/// Windows Mixed Reality motion controllers.
pub const MOTION_CONTROLLER: &str = "/interaction_profiles/microsoft/motion_controller";

/// Every interaction profile bindings are suggested for.
pub const PROFILES: &[&str] = &[
    SIMPLE_CONTROLLER,
    TOUCH_CONTROLLER,
    INDEX_CONTROLLER,
    VIVE_CONTROLLER,
    MOTION_CONTROLLER,
];

/// `(action, binding path)` pairs, one table per profile.
type Table = &'static [(&'static str, &'static str)];

const SIMPLE_BINDINGS: Table = &[
    (GRIP_POSE, "/user/hand/left/input/grip/pose"),
    (GRIP_POSE, "/user/hand/right/input/grip/pose"),
    (AIM_POSE, "/user/hand/left/input/aim/pose"),
    (AIM_POSE, "/user/hand/right/input/aim/pose"),
    (TRIGGER, "/user/hand/left/input/select/click"),
    (TRIGGER, "/user/hand/right/input/select/click"),
    (MENU, "/user/hand/left/input/menu/click"),
    (MENU, "/user/hand/right/input/menu/click"),
];

const TOUCH_BINDINGS: Table = &[
    (GRIP_POSE, "/user/hand/left/input/grip/pose"),
    (GRIP_POSE, "/user/hand/right/input/grip/pose"),
    (AIM_POSE, "/user/hand/left/input/aim/pose"),
    (AIM_POSE, "/user/hand/right/input/aim/pose"),
    (TRIGGER, "/user/hand/left/input/trigger/value"),
    (TRIGGER, "/user/hand/right/input/trigger/value"),
    (SQUEEZE, "/user/hand/left/input/squeeze/value"),
    (SQUEEZE, "/user/hand/right/input/squeeze/value"),
    (THUMBSTICK, "/user/hand/left/input/thumbstick"),
    (THUMBSTICK, "/user/hand/right/input/thumbstick"),
    (MENU, "/user/hand/left/input/menu/click"),
];

const INDEX_BINDINGS: Table = &[
    (GRIP_POSE, "/user/hand/left/input/grip/pose"),
    (GRIP_POSE, "/user/hand/right/input/grip/pose"),
    (AIM_POSE, "/user/hand/left/input/aim/pose"),
    (AIM_POSE, "/user/hand/right/input/aim/pose"),
    (TRIGGER, "/user/hand/left/input/trigger/value"),
    (TRIGGER, "/user/hand/right/input/trigger/value"),
    (SQUEEZE, "/user/hand/left/input/squeeze/value"),
    (SQUEEZE, "/user/hand/right/input/squeeze/value"),
    (THUMBSTICK, "/user/hand/left/input/thumbstick"),
    (THUMBSTICK, "/user/hand/right/input/thumbstick"),
    (MENU, "/user/hand/left/input/b/click"),
];

const VIVE_BINDINGS: Table = &[
    (GRIP_POSE, "/user/hand/left/input/grip/pose"),
    (GRIP_POSE, "/user/hand/right/input/grip/pose"),
    (AIM_POSE, "/user/hand/left/input/aim/pose"),
    (AIM_POSE, "/user/hand/right/input/aim/pose"),
    (TRIGGER, "/user/hand/left/input/trigger/value"),
    (TRIGGER, "/user/hand/right/input/trigger/value"),
    (SQUEEZE, "/user/hand/left/input/squeeze/click"),
    (SQUEEZE, "/user/hand/right/input/squeeze/click"),
    (THUMBSTICK, "/user/hand/left/input/trackpad"),
    (THUMBSTICK, "/user/hand/right/input/trackpad"),
    (MENU, "/user/hand/left/input/menu/click"),
    (MENU, "/user/hand/right/input/menu/click"),
];

const MOTION_BINDINGS: Table = &[
    (GRIP_POSE, "/user/hand/left/input/grip/pose"),
    (GRIP_POSE, "/user/hand/right/input/grip/pose"),
    (AIM_POSE, "/user/hand/left/input/aim/pose"),
    (AIM_POSE, "/user/hand/right/input/aim/pose"),
    (TRIGGER, "/user/hand/left/input/trigger/value"),
    (TRIGGER, "/user/hand/right/input/trigger/value"),
    (SQUEEZE, "/user/hand/left/input/squeeze/click"),
    (SQUEEZE, "/user/hand/right/input/squeeze/click"),
    (THUMBSTICK, "/user/hand/left/input/thumbstick"),
    (THUMBSTICK, "/user/hand/right/input/thumbstick"),
    (MENU, "/user/hand/left/input/menu/click"),
    (MENU, "/user/hand/right/input/menu/click"),
];

/// The `(action name, binding path)` pairs to suggest for `profile` (one of
/// [`PROFILES`]); empty for a profile the table does not know.
pub fn suggested_bindings(profile: &str) -> Vec<(&'static str, &'static str)> {
    let table: Table = match profile {
        SIMPLE_CONTROLLER => SIMPLE_BINDINGS,
        TOUCH_CONTROLLER => TOUCH_BINDINGS,
        INDEX_CONTROLLER => INDEX_BINDINGS,
        VIVE_CONTROLLER => VIVE_BINDINGS,
        MOTION_CONTROLLER => MOTION_BINDINGS,
        _ => &[],
    };
    table.to_vec()
}

/// The action named `name`, if the table has one.
pub fn action(name: &str) -> Option<&'static ActionSpec> {
    ACTIONS.iter().find(|action| action.name == name)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// The components the OpenXR 1.0 specification lists for each profile
    /// (§6.4), per hand, written out independently of the tables above so a
    /// typo in either shows up.
    fn spec_components(profile: &str, hand: &str) -> &'static [&'static str] {
        const SIMPLE: &[&str] = &[
            "input/select/click",
            "input/menu/click",
            "input/grip/pose",
            "input/aim/pose",
            "output/haptic",
        ];
        const TOUCH_LEFT: &[&str] = &[
            "input/x/click",
            "input/x/touch",
            "input/y/click",
            "input/y/touch",
            "input/menu/click",
            "input/squeeze/value",
            "input/trigger/value",
            "input/trigger/touch",
            "input/thumbstick/x",
            "input/thumbstick/y",
            "input/thumbstick/click",
            "input/thumbstick/touch",
            "input/thumbrest/touch",
            "input/grip/pose",
            "input/aim/pose",
            "output/haptic",
        ];
        const TOUCH_RIGHT: &[&str] = &[
            "input/a/click",
            "input/a/touch",
            "input/b/click",
            "input/b/touch",
            "input/system/click",
            "input/squeeze/value",
            "input/trigger/value",
            "input/trigger/touch",
            "input/thumbstick/x",
            "input/thumbstick/y",
            "input/thumbstick/click",
            "input/thumbstick/touch",
            "input/thumbrest/touch",
            "input/grip/pose",
            "input/aim/pose",
            "output/haptic",
        ];
        const INDEX: &[&str] = &[
            "input/system/click",
            "input/system/touch",
            "input/a/click",
            "input/a/touch",
            "input/b/click",
            "input/b/touch",
            "input/squeeze/value",
            "input/squeeze/force",
            "input/trigger/click",
            "input/trigger/value",
            "input/trigger/touch",
            "input/thumbstick/x",
            "input/thumbstick/y",
            "input/thumbstick/click",
            "input/thumbstick/touch",
            "input/trackpad/x",
            "input/trackpad/y",
            "input/trackpad/force",
            "input/trackpad/touch",
            "input/grip/pose",
            "input/aim/pose",
            "output/haptic",
        ];
        const VIVE: &[&str] = &[
            "input/system/click",
            "input/squeeze/click",
            "input/menu/click",
            "input/trigger/click",
            "input/trigger/value",
            "input/trackpad/x",
            "input/trackpad/y",
            "input/trackpad/click",
            "input/trackpad/touch",
            "input/grip/pose",
            "input/aim/pose",
            "output/haptic",
        ];
        const MOTION: &[&str] = &[
            "input/menu/click",
            "input/squeeze/click",
            "input/trigger/value",
            "input/thumbstick/x",
            "input/thumbstick/y",
            "input/thumbstick/click",
            "input/trackpad/x",
            "input/trackpad/y",
            "input/trackpad/click",
            "input/trackpad/touch",
            "input/grip/pose",
            "input/aim/pose",
            "output/haptic",
        ];
        match (profile, hand) {
            ("/interaction_profiles/khr/simple_controller", _) => SIMPLE,
            ("/interaction_profiles/oculus/touch_controller", "/user/hand/left") => TOUCH_LEFT,
            ("/interaction_profiles/oculus/touch_controller", "/user/hand/right") => TOUCH_RIGHT,
            ("/interaction_profiles/valve/index_controller", _) => INDEX,
            ("/interaction_profiles/htc/vive_controller", _) => VIVE,
            ("/interaction_profiles/microsoft/motion_controller", _) => MOTION,
            _ => panic!("no component table for {profile} {hand}"),
        }
    }

    /// Components the specification reserves for the runtime.
    const RESERVED: &[&str] = &["input/system/click", "input/system/touch"];

    /// Splits a binding path into its hand and its component.
    fn split(path: &str) -> (&str, &str) {
        for hand in HANDS {
            if let Some(component) = path
                .strip_prefix(hand)
                .and_then(|rest| rest.strip_prefix('/'))
            {
                return (hand, component);
            }
        }
        panic!("{path} is not under a hand");
    }

    /// Whether a component of `components` can feed an action of `kind`.
    /// A vector2 binds to the parent of an `x` and a `y` component.
    fn fits(kind: ActionKind, component: &str, components: &[&str]) -> bool {
        let listed = components.contains(&component);
        match kind {
            ActionKind::Pose => listed && component.ends_with("/pose"),
            ActionKind::Float => {
                listed && (component.ends_with("/value") || component.ends_with("/click"))
            }
            ActionKind::Boolean => listed && component.ends_with("/click"),
            ActionKind::Vector2 => {
                components.contains(&format!("{component}/x").as_str())
                    && components.contains(&format!("{component}/y").as_str())
            }
        }
    }

    /// Every binding of `profile`, described as `action hand component`.
    fn described(profile: &str) -> Vec<String> {
        suggested_bindings(profile)
            .iter()
            .map(|(action, path)| {
                let (hand, component) = split(path);
                let hand = hand.rsplit('/').next().unwrap();
                format!("{action} {hand} {component}")
            })
            .collect()
    }

    #[test]
    fn every_binding_is_legal_for_its_profile() {
        for &profile in PROFILES {
            for (name, path) in suggested_bindings(profile) {
                let spec = action(name).unwrap_or_else(|| panic!("unknown action {name}"));
                let (hand, component) = split(path);
                let components = spec_components(profile, hand);
                assert!(
                    fits(spec.kind, component, components),
                    "{profile}: {path} is not a {:?} component of the profile",
                    spec.kind
                );
                assert!(
                    !RESERVED.contains(&component),
                    "{profile}: {path} is reserved"
                );
                // A binding outside the action's subaction paths is refused
                // by xrSuggestInteractionProfileBindings.
                assert!(
                    spec.subaction_paths.contains(&hand),
                    "{profile}: {path} is not for a hand {name} is read for"
                );
            }
        }
    }

    #[test]
    fn the_checks_catch_mistakes() {
        let touch = spec_components(TOUCH_CONTROLLER, LEFT_HAND);
        let touch_right = spec_components(TOUCH_CONTROLLER, RIGHT_HAND);
        assert!(!fits(ActionKind::Float, "input/trigger/vaule", touch));
        assert!(!fits(ActionKind::Boolean, "input/menu/click", touch_right));
        assert!(!fits(ActionKind::Pose, "input/trigger/value", touch));
        assert!(!fits(ActionKind::Boolean, "input/squeeze/value", touch));
        assert!(!fits(ActionKind::Vector2, "input/thumbstick/x", touch));
        assert!(!fits(ActionKind::Vector2, "input/trackpad", touch));
        assert!(fits(ActionKind::Vector2, "input/thumbstick", touch));
        assert!(fits(
            ActionKind::Float,
            "input/squeeze/click",
            spec_components(VIVE_CONTROLLER, LEFT_HAND)
        ));
    }

    #[test]
    fn every_profile_binds_both_poses_for_both_hands() {
        for &profile in PROFILES {
            let bound: HashSet<(&str, &str)> = suggested_bindings(profile)
                .into_iter()
                .map(|(action, path)| (action, split(path).0))
                .collect();
            for pose in [GRIP_POSE, AIM_POSE] {
                for hand in HANDS {
                    assert!(
                        bound.contains(&(pose, hand)),
                        "{profile} does not bind {pose} for {hand}"
                    );
                }
            }
        }
    }

    #[test]
    fn no_duplicate_bindings() {
        for &profile in PROFILES {
            let bindings = suggested_bindings(profile);
            let unique: HashSet<_> = bindings.iter().collect();
            assert_eq!(unique.len(), bindings.len(), "{profile}");
        }
        let unique: HashSet<_> = PROFILES.iter().collect();
        assert_eq!(unique.len(), PROFILES.len());
    }

    #[test]
    fn unknown_profile_has_no_bindings() {
        assert!(suggested_bindings("/interaction_profiles/acme/stick").is_empty());
        assert!(action("jump").is_none());
    }

    /// Compares a profile's bindings, described as `action hand component`.
    fn check(profile: &str, expected: &[&str]) {
        assert_eq!(described(profile), expected, "{profile}");
    }

    #[test]
    fn what_each_profile_binds() {
        let poses = [
            "grip_pose left input/grip/pose",
            "grip_pose right input/grip/pose",
            "aim_pose left input/aim/pose",
            "aim_pose right input/aim/pose",
        ];
        let with = |rest: &[&'static str]| -> Vec<&'static str> {
            poses.iter().copied().chain(rest.iter().copied()).collect()
        };
        check(
            SIMPLE_CONTROLLER,
            &with(&[
                "trigger left input/select/click",
                "trigger right input/select/click",
                "menu left input/menu/click",
                "menu right input/menu/click",
            ]),
        );
        check(
            TOUCH_CONTROLLER,
            &with(&[
                "trigger left input/trigger/value",
                "trigger right input/trigger/value",
                "squeeze left input/squeeze/value",
                "squeeze right input/squeeze/value",
                "thumbstick left input/thumbstick",
                "thumbstick right input/thumbstick",
                "menu left input/menu/click",
            ]),
        );
        check(
            INDEX_CONTROLLER,
            &with(&[
                "trigger left input/trigger/value",
                "trigger right input/trigger/value",
                "squeeze left input/squeeze/value",
                "squeeze right input/squeeze/value",
                "thumbstick left input/thumbstick",
                "thumbstick right input/thumbstick",
                "menu left input/b/click",
            ]),
        );
        check(
            VIVE_CONTROLLER,
            &with(&[
                "trigger left input/trigger/value",
                "trigger right input/trigger/value",
                "squeeze left input/squeeze/click",
                "squeeze right input/squeeze/click",
                "thumbstick left input/trackpad",
                "thumbstick right input/trackpad",
                "menu left input/menu/click",
                "menu right input/menu/click",
            ]),
        );
        check(
            MOTION_CONTROLLER,
            &with(&[
                "trigger left input/trigger/value",
                "trigger right input/trigger/value",
                "squeeze left input/squeeze/click",
                "squeeze right input/squeeze/click",
                "thumbstick left input/thumbstick",
                "thumbstick right input/thumbstick",
                "menu left input/menu/click",
                "menu right input/menu/click",
            ]),
        );
    }

    #[test]
    fn actions_are_well_formed() {
        let mut names = HashSet::new();
        let mut localized = HashSet::new();
        for action in ACTIONS {
            // XR_MAX_ACTION_NAME_SIZE and XR_MAX_LOCALIZED_ACTION_NAME_SIZE
            // count the terminating NUL.
            assert!(!action.name.is_empty() && action.name.len() < 64);
            assert!(
                action
                    .name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c)),
                "{}",
                action.name
            );
            assert!(!action.localized_name.is_empty() && action.localized_name.len() < 128);
            assert!(names.insert(action.name), "{} twice", action.name);
            // The runtime refuses a set with two equal localized names.
            assert!(localized.insert(action.localized_name));
            assert_eq!(action.subaction_paths, HANDS);
        }
        for name in [GRIP_POSE, AIM_POSE, TRIGGER, SQUEEZE, THUMBSTICK, MENU] {
            assert!(action(name).is_some(), "{name}");
        }
        assert!(ACTION_SET.len() < 64 && ACTION_SET.chars().all(|c| c.is_ascii_lowercase()));
    }
}
