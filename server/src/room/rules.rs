//! A room's rules as plain functions and data: who may moderate whom, what
//! role a person has, how fast a room and a person in it may write to
//! storage, how many people (not channels) are in, and who may grab, change
//! or stream a shared object and when a holder counts as lost (with where
//! the server lets the object come to rest then).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use roomscale_physics::{Body, World, simulate_to_rest};
use roomscale_protocol::events::{Governance, ModeratePush};
use roomscale_protocol::objects::{
    HOLD_SILENCE_MS, MAX_FLIGHT_MS, OBJECT_HEIGHT_RANGE_M, OBJECT_HORIZONTAL_RANGE_M, ObjectState,
};
use roomscale_protocol::presence::Role;

use super::MemberId;

/// Persisted events per second a room may send to storage, and the burst
/// allowed above it: far more than people chat, and little enough that a
/// flooded room leaves the database to the others.
pub const PERSISTS_PER_SECOND: f64 = 20.0;
pub const PERSISTS_BURST: f64 = 40.0;
/// A person's share of that: one member flooding leaves the rest of the room's
/// rate to everyone else in it.
pub const PERSISTS_PER_SECOND_PER_USER: f64 = 10.0;
pub const PERSISTS_BURST_PER_USER: f64 = 20.0;
/// Writes a room may have waiting for storage before it refuses more.
pub const PERSIST_QUEUE: usize = 256;
/// History pages a room reads from storage at once; more are refused as busy.
pub const HISTORY_READERS: usize = 2;

/// Whether `by` may do `act` in a room run by `governance`; `Err` says why not.
pub fn may_act(governance: &Governance, by: &str, act: &ModeratePush) -> Result<(), String> {
    if !governance.may_moderate(by) {
        return Err(
            "only the room's owner and the moderators it named may moderate this room".into(),
        );
    }
    match act {
        ModeratePush::Lock { .. } => Ok(()),
        ModeratePush::Moderator { user_id, .. } => {
            if !governance.is_owner(by) {
                Err("only the room's owner names or unnames moderators".into())
            } else if governance.is_owner(user_id) {
                Err("the owner already runs the room; name someone else".into())
            } else {
                Ok(())
            }
        }
        ModeratePush::Mute { user_id, .. } | ModeratePush::Remove { user_id } => {
            if governance.is_owner(user_id) {
                Err("the room's owner cannot be muted or removed".into())
            } else if governance.may_moderate(user_id) && !governance.is_owner(by) {
                Err("moderators can be muted or removed only by the room's owner".into())
            } else {
                Ok(())
            }
        }
    }
}

/// The role presence shows for `user_id`.
pub fn role_of(governance: &Governance, user_id: &str) -> Role {
    if governance.is_owner(user_id) {
        Role::Owner
    } else if governance.may_moderate(user_id) {
        Role::Moderator
    } else {
        Role::Member
    }
}

/// A wait in whole minutes, rounded up, as a person reads it.
pub fn minutes(wait: Duration) -> String {
    match wait.as_secs().div_ceil(60) {
        1 => "1 minute".into(),
        n => format!("{n} minutes"),
    }
}

/// The people in a room, counted by user id: a person in with several
/// clients (another tab, the headset beside the browser) is one person.
/// Joins admitted and not yet answered count too, so that two joins at once
/// cannot both take the last place.
#[derive(Debug, Default)]
pub struct People {
    channels: HashMap<String, u32>,
}

impl People {
    pub fn count(&self) -> usize {
        self.channels.len()
    }

    pub fn contains(&self, user_id: &str) -> bool {
        self.channels.contains_key(user_id)
    }

    pub fn arrive(&mut self, user_id: &str) {
        *self.channels.entry(user_id.to_string()).or_default() += 1;
    }

    pub fn depart(&mut self, user_id: &str) {
        if let Some(count) = self.channels.get_mut(user_id) {
            *count -= 1;
            if *count == 0 {
                self.channels.remove(user_id);
            }
        }
    }
}

/// A holder that sends no pose of its object for this long has lost it.
pub const HOLD_SILENCE: Duration = Duration::from_millis(HOLD_SILENCE_MS);
/// A throw still flying after this long is ended by the server.
pub const MAX_FLIGHT: Duration = Duration::from_millis(MAX_FLIGHT_MS);
/// Physics steps the server runs to settle an object (10 s of flight); a
/// body still moving then is dropped straight down where it is.
pub const SETTLE_MAX_STEPS: u32 = 900;
/// The fastest throw the server believes from two poses, in m/s: a pose
/// jump after a stall is no throw.
pub const MAX_THROW_SPEED: f32 = 20.0;

/// An object's holder as the rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holding {
    pub member: MemberId,
    /// Released and flying.
    pub throwing: bool,
}

/// What a grab gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grab {
    /// Nobody held it, or `by` catches someone's throw (`catch`).
    Granted { catch: bool },
    /// `by` holds it already: nothing changes.
    AlreadyHeld,
    /// Someone else holds it in their hand.
    Refused,
    /// A rest write for it is under way: refused until it is stored.
    Settling,
}

/// Whether `by` may grab an object held as `holder`, with a rest write
/// under way or not. One holder at a time: a held object is refused, a
/// thrown one may be caught.
pub fn grab(holder: Option<Holding>, settling: bool, by: MemberId) -> Grab {
    if settling {
        return Grab::Settling;
    }
    match holder {
        None => Grab::Granted { catch: false },
        Some(h) if h.member == by && !h.throwing => Grab::AlreadyHeld,
        Some(h) if h.member == by => Grab::Granted { catch: false },
        Some(h) if h.throwing => Grab::Granted { catch: true },
        Some(_) => Grab::Refused,
    }
}

/// Whether `by` may set or remove (or stream the pose of) an object held as
/// `holder`: anyone when nobody holds it, only the holder otherwise.
pub fn may_change(holder: Option<Holding>, by: MemberId) -> bool {
    holder.is_none_or(|h| h.member == by)
}

/// Whether a holder heard last at `heard`, holding (or throwing) since
/// `since`, has lost its object by `now`: silent for [`HOLD_SILENCE`], or
/// throwing for over [`MAX_FLIGHT`].
pub fn holder_lost(throwing: bool, since: Instant, heard: Instant, now: Instant) -> bool {
    now >= holder_deadline(throwing, since, heard)
}

/// When a holder loses its object unless it is heard from again.
pub fn holder_deadline(throwing: bool, since: Instant, heard: Instant) -> Instant {
    let silent = heard + HOLD_SILENCE;
    if throwing {
        silent.min(since + MAX_FLIGHT)
    } else {
        silent
    }
}

/// One pose of an object as the server received it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub at: Instant,
    pub position: [f32; 3],
    pub orientation: [f32; 4],
}

/// Velocity between two poses, in m/s: zero when they are not apart in
/// time, capped at [`MAX_THROW_SPEED`].
pub fn velocity_between(before: &Sample, last: &Sample) -> [f32; 3] {
    let dt = last.at.saturating_duration_since(before.at).as_secs_f32();
    if dt <= 0.0 {
        return [0.0; 3];
    }
    let mut v = [0, 1, 2].map(|i| (last.position[i] - before.position[i]) / dt);
    let speed = v.iter().map(|c| c * c).sum::<f32>().sqrt();
    if !speed.is_finite() {
        return [0.0; 3];
    }
    if speed > MAX_THROW_SPEED {
        v = v.map(|c| c * MAX_THROW_SPEED / speed);
    }
    v
}

/// Where an object whose holder was lost comes to rest: from the last pose
/// relayed (`last`; none: where it rested), dropped from the hand, or flying
/// on with the velocity of its last two poses when it was thrown, through the
/// shared physics. Always a state that passes [`ObjectState::validate`].
pub fn settle(
    resting: &ObjectState,
    last: Option<&Sample>,
    before: Option<&Sample>,
    throwing: bool,
) -> ObjectState {
    let Some(last) = last else {
        return resting.clone();
    };
    let velocity = match (throwing, before) {
        (true, Some(before)) => velocity_between(before, last),
        _ => [0.0; 3],
    };
    let from = ObjectState {
        position: last.position,
        orientation: last.orientation,
        ..resting.clone()
    };
    let mut body = Body::released(&from, velocity, [0.0; 3]);
    simulate_to_rest(&World::room(), &mut body, SETTLE_MAX_STEPS);
    let settled = ObjectState {
        position: body.position,
        orientation: body.orientation,
        ..resting.clone()
    };
    in_the_room(settled, resting)
}

/// `state` kept inside what a stored state may be: positions clamped into
/// the room, the orientation normalised (the resting one if it cannot be).
fn in_the_room(mut state: ObjectState, fallback: &ObjectState) -> ObjectState {
    let h = OBJECT_HORIZONTAL_RANGE_M;
    let [x, y, z] = state.position;
    state.position = [
        finite_or(x, fallback.position[0]).clamp(-h, h),
        finite_or(y, fallback.position[1]).clamp(0.0, OBJECT_HEIGHT_RANGE_M),
        finite_or(z, fallback.position[2]).clamp(-h, h),
    ];
    let norm = state.orientation.iter().map(|c| c * c).sum::<f32>().sqrt();
    state.orientation = if norm.is_finite() && norm > 0.5 {
        state.orientation.map(|c| c / norm)
    } else {
        fallback.orientation
    };
    state
}

fn finite_or(value: f32, fallback: f32) -> f32 {
    if value.is_finite() { value } else { fallback }
}
