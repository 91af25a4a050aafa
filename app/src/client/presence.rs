//! Presence as phoenix.js `Presence` keeps it: a state, then diffs that add and
//! remove metas by their `phx_ref`.

use std::collections::BTreeMap;

use roomscale_protocol::presence::{PresenceDiff, PresenceMeta, PresenceState};

/// Everyone in the room: user id -> one meta per connection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Presence {
    users: BTreeMap<String, Vec<PresenceMeta>>,
}

impl Presence {
    pub fn replace(&mut self, state: PresenceState) {
        self.users = state
            .into_iter()
            .map(|(user, entry)| (user, entry.metas))
            .collect();
    }

    pub fn apply(&mut self, diff: PresenceDiff) {
        for (user, entry) in diff.joins {
            let metas = self.users.entry(user).or_default();
            for meta in entry.metas {
                metas.retain(|m| m.phx_ref != meta.phx_ref);
                metas.push(meta);
            }
        }
        for (user, entry) in diff.leaves {
            if let Some(metas) = self.users.get_mut(&user) {
                metas.retain(|m| entry.metas.iter().all(|gone| gone.phx_ref != m.phx_ref));
                if metas.is_empty() {
                    self.users.remove(&user);
                }
            }
        }
    }

    /// Every connection in the room, with its user id.
    pub fn members(&self) -> impl Iterator<Item = (&str, &PresenceMeta)> {
        self.users
            .iter()
            .flat_map(|(user, metas)| metas.iter().map(move |m| (user.as_str(), m)))
    }

    pub fn user_ids(&self) -> impl Iterator<Item = &str> {
        self.users.keys().map(String::as_str)
    }

    /// The member holding `slot`, if any.
    pub fn by_slot(&self, slot: u16) -> Option<(&str, &PresenceMeta)> {
        self.members().find(|(_, m)| m.slot == slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roomscale_protocol::events::ClientKind;
    use roomscale_protocol::presence::PresenceEntry;

    fn meta(phx_ref: &str, slot: u16) -> PresenceMeta {
        PresenceMeta {
            phx_ref: phx_ref.into(),
            phx_ref_prev: None,
            name: format!("n{slot}"),
            colour: "#000000".into(),
            client_kind: ClientKind::Web,
            slot,
            joined_at: 0,
            speaking: false,
            muted: false,
            moderator_muted: false,
            role: Default::default(),
        }
    }

    fn entry(metas: Vec<PresenceMeta>) -> PresenceEntry {
        PresenceEntry { metas }
    }

    #[test]
    fn diffs_add_update_and_remove_metas_by_ref() {
        let mut presence = Presence::default();
        presence.replace([("a".to_string(), entry(vec![meta("1", 1)]))].into());
        presence.apply(PresenceDiff {
            joins: [("b".into(), entry(vec![meta("2", 2)]))].into(),
            leaves: Default::default(),
        });
        assert_eq!(presence.user_ids().collect::<Vec<_>>(), ["a", "b"]);
        // An update: leave the old ref, join the new one.
        presence.apply(PresenceDiff {
            joins: [("b".into(), entry(vec![meta("3", 2)]))].into(),
            leaves: [("b".into(), entry(vec![meta("2", 2)]))].into(),
        });
        assert_eq!(presence.by_slot(2).unwrap().1.phx_ref, "3");
        presence.apply(PresenceDiff {
            joins: Default::default(),
            leaves: [("a".into(), entry(vec![meta("1", 1)]))].into(),
        });
        assert_eq!(presence.user_ids().collect::<Vec<_>>(), ["b"]);
    }
}
