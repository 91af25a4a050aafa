//! A room's rules as plain functions and data: who may moderate whom, what
//! role a person has, how fast a room and a person in it may write to
//! storage, and how many people (not channels) are in.

use std::collections::HashMap;
use std::time::Duration;

use roomscale_protocol::events::{Governance, ModeratePush};
use roomscale_protocol::presence::Role;

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
