//! Moderation from the room: mute, remove, lock and co-moderators, enforced by
//! the server and seen by everyone; a deleted room closes its live session.
