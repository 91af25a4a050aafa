//! Shared objects: who holds each one, the poses its holder streams, and
//! where it rests. The resting state is what storage has (an `object_set`
//! means "at rest, nobody holds it"); holding and throwing live only here.
//!
//! The rules (in [`rules`]): one holder at a time; a grab of a thrown object
//! is a catch; only the holder changes, removes or streams a held object; a
//! holder that leaves, goes silent for [`rules::HOLD_SILENCE`] or throws for
//! over [`rules::MAX_FLIGHT`] loses it, and the server settles the object
//! with the shared physics and stores that rest itself, written as the lost
//! holder. A rest write under way (the holder's `object_set`, or the
//! server's) keeps grabs out until it is stored; once stored the event goes
//! to everyone and the object is free.

use std::collections::BTreeMap;

use roomscale_protocol::events::ErrorReply;
use roomscale_protocol::objects::{
    MAX_OBJECTS_PER_ROOM, OBJECT_POSE_BYTES, ObjectGrabReply, ObjectHolder, ObjectHolderPush,
    ObjectPoseFlags, ObjectSnapshot, decode_object_pose, object_pose_handle,
};

use super::*;
use crate::room::PushedObjects;
use crate::room::rules::{Grab, Holding, Sample};

/// The room's objects.
#[derive(Debug, Default)]
pub(super) struct Objects {
    /// By id, so join replies list them in a stable order.
    by_id: BTreeMap<String, Object>,
    /// Each object's id by its handle in pose batches.
    ids: HashMap<u16, String>,
    /// The handle the next object gets (handles are never 0).
    next_handle: u16,
    /// Object writes under way (sets and removes), by object id.
    writes: HashMap<String, u32>,
}

#[derive(Debug)]
struct Object {
    handle: u16,
    /// Where it rests, as stored.
    state: ObjectState,
    holder: Option<Holder>,
    /// Its holder's newest pose of it as relayed (the flags set from the
    /// server's view), while it is held or thrown.
    latest: Option<[u8; OBJECT_POSE_BYTES]>,
    /// `latest` arrived since the last tick.
    changed: bool,
    /// The last two poses received, with when: where the server drops it
    /// from and how fast it flew.
    last: Option<Sample>,
    before: Option<Sample>,
}

#[derive(Debug, Clone)]
struct Holder {
    member: MemberId,
    user_id: String,
    name: String,
    slot: u16,
    throwing: bool,
    /// When it was grabbed, or released into its throw.
    since: Instant,
    /// When the holder last streamed its pose (or grabbed or released it).
    heard: Instant,
}

impl Holder {
    fn holding(&self) -> Holding {
        Holding {
            member: self.member,
            throwing: self.throwing,
        }
    }

    fn wire(&self) -> ObjectHolder {
        ObjectHolder {
            user_id: self.user_id.clone(),
            name: self.name.clone(),
            slot: self.slot,
            throwing: self.throwing,
        }
    }
}

impl Objects {
    /// A free handle: counted up from 1, skipping those in use.
    fn new_handle(&mut self) -> u16 {
        loop {
            self.next_handle = self.next_handle.wrapping_add(1).max(1);
            if !self.ids.contains_key(&self.next_handle) {
                return self.next_handle;
            }
        }
    }

    fn insert(&mut self, object_id: String, state: ObjectState) {
        let handle = self.new_handle();
        self.ids.insert(handle, object_id.clone());
        self.by_id.insert(
            object_id,
            Object {
                handle,
                state,
                holder: None,
                latest: None,
                changed: false,
                last: None,
                before: None,
            },
        );
    }

    /// A write of the object was handed to storage.
    pub(super) fn begin_write(&mut self, object_id: &str) {
        *self.writes.entry(object_id.to_string()).or_default() += 1;
    }

    fn writing(&self, object_id: &str) -> bool {
        self.writes.get(object_id).is_some_and(|&n| n > 0)
    }

    fn write_done(&mut self, object_id: &str) {
        if let Some(n) = self.writes.get_mut(object_id) {
            *n -= 1;
            if *n == 0 {
                self.writes.remove(object_id);
            }
        }
    }

    /// Objects there are and objects being spawned.
    fn count(&self) -> usize {
        self.by_id.len()
            + self
                .writes
                .keys()
                .filter(|id| !self.by_id.contains_key(*id))
                .count()
    }
}

/// The object an event is about, if any.
pub(super) fn object_of(body: &RoomEventBody) -> Option<&str> {
    match body {
        RoomEventBody::Chat { .. } => None,
        RoomEventBody::ObjectSet { object_id, .. } | RoomEventBody::ObjectRemove { object_id } => {
            Some(object_id)
        }
    }
}

impl RoomState {
    /// The objects as the room loaded them.
    pub(super) fn load_objects(&mut self, objects: Vec<(String, ObjectState)>) {
        for (object_id, state) in objects {
            self.objects.insert(object_id, state);
        }
    }

    /// Every object as a join reply lists it.
    pub(super) fn object_snapshots(&self) -> Vec<ObjectSnapshot> {
        self.objects
            .by_id
            .iter()
            .map(|(object_id, object)| ObjectSnapshot {
                object_id: object_id.clone(),
                handle: object.handle,
                state: object.state.clone(),
                holder: object.holder.as_ref().map(Holder::wire),
            })
            .collect()
    }

    pub(super) fn grab(&mut self, member: MemberId, msg_ref: &str, object_id: &str, now: Instant) {
        let Some(m) = self.members.get(&member) else {
            return;
        };
        let (user_id, name, slot, to) = (
            m.user_id.clone(),
            m.meta.name.clone(),
            m.meta.slot,
            m.address.clone(),
        );
        let settling = self.objects.writing(object_id);
        let Some(object) = self.objects.by_id.get_mut(object_id) else {
            return self.object_not_found(member, msg_ref, object_id);
        };
        let holding = object.holder.as_ref().map(Holder::holding);
        let frame = match rules::grab(holding, settling, member) {
            Grab::Granted { .. } => {
                let holder = Holder {
                    member,
                    user_id,
                    name,
                    slot,
                    throwing: false,
                    since: now,
                    heard: now,
                };
                let push = ObjectHolderPush {
                    object_id: object_id.to_string(),
                    handle: object.handle,
                    holder: Some(holder.wire()),
                };
                object.holder = Some(holder);
                // Its pose and speed are the new holder's to give: what the
                // one before streamed is not relayed any more.
                object.before = None;
                object.latest = None;
                object.changed = false;
                let handle = object.handle;
                self.broadcast(None, ServerEvent::ObjectHolder(push));
                ok_frame(&to, msg_ref, ObjectGrabReply { handle })
            }
            Grab::AlreadyHeld => ok_frame(
                &to,
                msg_ref,
                ObjectGrabReply {
                    handle: object.handle,
                },
            ),
            Grab::Refused => {
                let holder = object.holder.as_ref().expect("refused for a holder").wire();
                self.outputs
                    .push_back(Output::CountError(ErrorCode::ObjectHeld.as_str()));
                error_frame(&to, msg_ref, &ErrorReply::object_held(holder))
            }
            Grab::Settling => {
                self.outputs
                    .push_back(Output::CountError(ErrorCode::ObjectHeld.as_str()));
                let reply = ErrorReply {
                    holder: object.holder.as_ref().map(Holder::wire),
                    ..ErrorReply::new(
                        ErrorCode::ObjectHeld,
                        "it is coming to rest right now; grab it again in a moment",
                    )
                };
                error_frame(&to, msg_ref, &reply)
            }
        };
        self.outputs.push_back(Output::Send { member, to, frame });
    }

    pub(super) fn release(
        &mut self,
        member: MemberId,
        msg_ref: &str,
        object_id: &str,
        now: Instant,
    ) {
        let Some(to) = self.members.get(&member).map(|m| m.address.clone()) else {
            return;
        };
        let Some(object) = self.objects.by_id.get_mut(object_id) else {
            return self.object_not_found(member, msg_ref, object_id);
        };
        let frame = match &mut object.holder {
            Some(holder) if holder.member == member => {
                if !holder.throwing {
                    holder.throwing = true;
                    holder.since = now;
                    holder.heard = now;
                    let push = ObjectHolderPush {
                        object_id: object_id.to_string(),
                        handle: object.handle,
                        holder: Some(holder.wire()),
                    };
                    self.broadcast(None, ServerEvent::ObjectHolder(push));
                }
                ok_frame(&to, msg_ref, EmptyReply {})
            }
            Some(holder) => {
                let reply = ErrorReply::object_held(holder.wire());
                self.outputs
                    .push_back(Output::CountError(ErrorCode::ObjectHeld.as_str()));
                error_frame(&to, msg_ref, &reply)
            }
            None => {
                self.outputs
                    .push_back(Output::CountError(ErrorCode::Forbidden.as_str()));
                let reason = format!(
                    "you do not hold \"{object_id}\" (nobody does now), so there is nothing to \
                     let go of; grab it first"
                );
                error_frame(&to, msg_ref, &ErrorReply::new(ErrorCode::Forbidden, reason))
            }
        };
        self.outputs.push_back(Output::Send { member, to, frame });
    }

    /// An `object_set` or `object_remove`: checked against the holder and
    /// the room's limit, then stored like any event.
    pub(super) fn change_object(
        &mut self,
        member: MemberId,
        msg_ref: String,
        body: RoomEventBody,
        now: Instant,
    ) {
        if !self.members.contains_key(&member) {
            return;
        }
        let object_id = object_of(&body).expect("an object's event").to_string();
        if let RoomEventBody::ObjectSet { state, .. } = &body
            && let Err(reason) = ObjectState::from_value(state)
        {
            return self.reply(member, &msg_ref, Err(ErrorCode::InvalidPayload), reason);
        }
        match self.objects.by_id.get(&object_id) {
            Some(object) => {
                let holding = object.holder.as_ref().map(Holder::holding);
                if !rules::may_change(holding, member) {
                    let holder = object.holder.as_ref().expect("refused for a holder").wire();
                    return self.refuse(member, &msg_ref, ErrorReply::object_held(holder));
                }
            }
            None => match &body {
                RoomEventBody::ObjectRemove { .. } if !self.objects.writing(&object_id) => {
                    return self.object_not_found(member, &msg_ref, &object_id);
                }
                RoomEventBody::ObjectSet { .. }
                    if !self.objects.writing(&object_id)
                        && self.objects.count() >= MAX_OBJECTS_PER_ROOM =>
                {
                    let reason = format!(
                        "this room already has {MAX_OBJECTS_PER_ROOM} objects, the most a room \
                         holds; remove one before adding another"
                    );
                    return self.refuse(
                        member,
                        &msg_ref,
                        ErrorReply::new(ErrorCode::LimitReached, reason),
                    );
                }
                _ => {}
            },
        }
        self.persist(member, msg_ref, body, now);
    }

    /// The object poses of a member's pose push: kept from its holder,
    /// ignored (and counted) from anyone else.
    pub(super) fn object_poses(&mut self, member: MemberId, poses: &PushedObjects, now: Instant) {
        let mut ignored = 0;
        for pose in poses.as_slice() {
            let handle = object_pose_handle(pose);
            let object = self
                .objects
                .ids
                .get(&handle)
                .and_then(|id| self.objects.by_id.get_mut(id));
            let Some(object) = object else {
                ignored += 1;
                continue;
            };
            let Some(holder) = object.holder.as_mut().filter(|h| h.member == member) else {
                ignored += 1;
                continue;
            };
            let Ok(decoded) = decode_object_pose(pose) else {
                ignored += 1;
                continue;
            };
            holder.heard = now;
            // Held or flying as the server sees it, whatever the client wrote.
            let flags = if holder.throwing {
                0
            } else {
                ObjectPoseFlags::HELD
            };
            let mut relayed = *pose;
            relayed[2] = (relayed[2] & !ObjectPoseFlags::WIRE_MASK) | flags;
            object.latest = Some(relayed);
            object.changed = true;
            object.before = object.last.take();
            object.last = Some(Sample {
                at: now,
                position: decoded.position,
                orientation: decoded.orientation,
            });
        }
        if ignored > 0 {
            self.outputs.push_back(Output::ObjectPosesIgnored(ignored));
        }
    }

    /// A member left: the objects it held or threw are settled by the server.
    pub(super) fn drop_objects_of(&mut self, member: MemberId, now: Instant) {
        let lost: Vec<String> = self
            .objects
            .by_id
            .iter()
            .filter(|(_, o)| o.holder.as_ref().is_some_and(|h| h.member == member))
            .map(|(id, _)| id.clone())
            .collect();
        for object_id in lost {
            self.lose_holder(&object_id, now);
        }
    }

    /// Holders silent too long, or throwing too long, lose their objects.
    pub(super) fn object_timeouts(&mut self, now: Instant) {
        let lost: Vec<String> = self
            .objects
            .by_id
            .iter()
            .filter(|(id, o)| {
                !self.objects.writing(id)
                    && o.holder
                        .as_ref()
                        .is_some_and(|h| rules::holder_lost(h.throwing, h.since, h.heard, now))
            })
            .map(|(id, _)| id.clone())
            .collect();
        for object_id in lost {
            self.lose_holder(&object_id, now);
        }
    }

    /// When the next holder loses its object unless it is heard from.
    pub(super) fn object_deadline(&self) -> Option<Instant> {
        self.objects
            .by_id
            .iter()
            .filter(|(id, _)| !self.objects.writing(id))
            .filter_map(|(_, o)| o.holder.as_ref())
            .map(|h| rules::holder_deadline(h.throwing, h.since, h.heard))
            .min()
    }

    /// Takes an object from its lost holder: everyone hears that nobody
    /// holds it, and the rest the server works out is stored as the holder's
    /// `object_set`. With a rest write already under way, that write ends it.
    fn lose_holder(&mut self, object_id: &str, now: Instant) {
        let writing = self.objects.writing(object_id);
        let Some(object) = self.objects.by_id.get_mut(object_id) else {
            return;
        };
        let Some(holder) = object.holder.take() else {
            return;
        };
        object.changed = false;
        object.latest = None;
        if writing {
            return;
        }
        let rest = rules::settle(
            &object.state,
            object.last.as_ref(),
            object.before.as_ref(),
            holder.throwing,
        );
        let push = ObjectHolderPush {
            object_id: object_id.to_string(),
            handle: object.handle,
            holder: None,
        };
        self.broadcast(None, ServerEvent::ObjectHolder(push));
        self.objects.begin_write(object_id);
        let id = self.request_id();
        self.writes.insert(
            id,
            PendingWrite::Settle {
                object_id: object_id.to_string(),
            },
        );
        // Outside the write budgets: a rest must be stored whatever the room
        // stored before.
        self.outputs.push_back(Output::Write {
            id,
            write: StorageWrite::Event {
                user_id: holder.user_id,
                name: holder.name,
                sent_at_ms: self.unix_ms(now),
                body: RoomEventBody::ObjectSet {
                    object_id: object_id.to_string(),
                    state: rest.to_value(),
                },
            },
        });
    }

    /// An object's event was stored: the object rests (or is gone) as it says,
    /// and nobody holds it.
    pub(super) fn object_stored(&mut self, body: &RoomEventBody) {
        let Some(object_id) = object_of(body) else {
            return;
        };
        self.objects.write_done(object_id);
        match body {
            RoomEventBody::ObjectSet { object_id, state } => {
                let Ok(state) = ObjectState::from_value(state) else {
                    return;
                };
                match self.objects.by_id.get_mut(object_id) {
                    Some(object) => {
                        object.state = state;
                        object.holder = None;
                        object.latest = None;
                        object.changed = false;
                        object.last = None;
                        object.before = None;
                    }
                    None => self.objects.insert(object_id.clone(), state),
                }
            }
            RoomEventBody::ObjectRemove { object_id } => {
                if let Some(object) = self.objects.by_id.remove(object_id) {
                    self.objects.ids.remove(&object.handle);
                }
            }
            RoomEventBody::Chat { .. } => {}
        }
    }

    /// An object's write failed: it stays as it was.
    pub(super) fn object_write_failed(&mut self, object_id: &str) {
        self.objects.write_done(object_id);
    }

    /// Moves the object poses received since the last tick into `out`;
    /// `senders` gets the holder of each.
    pub(super) fn take_object_poses(
        &mut self,
        out: &mut Vec<[u8; OBJECT_POSE_BYTES]>,
        senders: &mut super::relay::Senders,
    ) {
        for object in self.objects.by_id.values_mut() {
            if !object.changed {
                continue;
            }
            object.changed = false;
            if let (Some(pose), Some(holder)) = (object.latest, &object.holder) {
                out.push(pose);
                senders.add(holder.member);
            }
        }
    }

    /// The latest pose of every object in motion (held or thrown), for a
    /// newcomer's first frame.
    pub(super) fn moving_object_poses(&self, out: &mut Vec<[u8; OBJECT_POSE_BYTES]>) {
        out.extend(
            self.objects
                .by_id
                .values()
                .filter(|o| o.holder.is_some())
                .filter_map(|o| o.latest),
        );
    }

    fn object_not_found(&mut self, member: MemberId, msg_ref: &str, object_id: &str) {
        let reason = format!(
            "this room has no object \"{object_id}\" (it may have been removed); the join \
             reply and object events list the room's objects"
        );
        self.reply(member, msg_ref, Err(ErrorCode::ObjectNotFound), reason);
    }

    fn refuse(&mut self, member: MemberId, msg_ref: &str, reply: ErrorReply) {
        let Some(to) = self.members.get(&member).map(|m| m.address.clone()) else {
            return;
        };
        self.outputs
            .push_back(Output::CountError(reply.code.as_str()));
        let frame = error_frame(&to, msg_ref, &reply);
        self.outputs.push_back(Output::Send { member, to, frame });
    }
}
