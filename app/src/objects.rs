//! Every shared object in the room as this client shows it, and the objects
//! this client holds or throws.
//!
//! Where an object is comes from four places: the join reply's snapshot, the
//! `object_set` / `object_remove` events (an object comes to rest, appears or
//! goes), `object_holder` pushes (who holds or throws it now) and the object
//! poses in pose batches, which are shown about [`DEFAULT_DELAY`] in the past
//! like avatars ([`Track`]).
//!
//! Local holds run here too: [`Objects::grab`] asks the server (the object
//! follows [`Objects::hold_at`] at once, and snaps back if the grab is
//! refused), [`Objects::release`] throws it with the hand's estimated
//! velocity, and [`Objects::tick`] advances flights in the physics crate's
//! fixed steps and says what to send: the poses for the next pose push and
//! the `object_set` that ends a flight at rest.
//!
//! Plain logic: time is an input (seconds on the local clock, the same clock
//! [`crate::scene::RoomScene::apply`] is given), and nothing here sends; the
//! caller carries [`GrabRequest`], [`ReleaseRequest`] and [`ObjectTick`] to
//! the room client.

use std::collections::BTreeMap;

use roomscale_physics::{Body, Flight, VelocityEstimator, World, collision_radius};
use roomscale_protocol::events::{RoomEvent, RoomEventBody};
use roomscale_protocol::objects::{
    MAX_OBJECTS_PER_POSE_PUSH, ObjectHolderPush, ObjectPose, ObjectPoseFlags, ObjectSnapshot,
};
// What a renderer reads in a ShownObject, at hand for it.
pub use roomscale_protocol::objects::{ObjectHolder, ObjectKind, ObjectState};

pub use crate::client::{GrabOutcome, ObjectReply};
use crate::colour::colour_from_hex;
use crate::interpolation::{DEFAULT_DELAY, Interpolate, Track, nlerp};

/// How long a rest this client sent may go unconfirmed before the object is
/// shown from the room's state again, in seconds.
const SETTLE_TIMEOUT: f64 = 3.0;

/// One object as every renderer draws it.
#[derive(Debug, Clone, PartialEq)]
pub struct ShownObject {
    pub id: String,
    pub kind: ObjectKind,
    /// Linear RGB (the `#rrggbb` sRGB colour decoded), as the avatar
    /// pipelines take colours.
    pub colour: [f32; 3],
    /// Metres, room coordinates.
    pub position: [f32; 3],
    /// Unit quaternion `[x, y, z, w]`.
    pub orientation: [f32; 4],
    /// Who holds or throws it, as the server last said.
    pub holder: Option<ObjectHolder>,
    /// This client holds it (or asked to and has no answer yet).
    pub held_by_me: bool,
    /// Nobody holds or throws it (nor is the server settling it for a lost
    /// holder): it lies where its last `object_set` put it.
    pub resting: bool,
}

/// Ask the server for `object_grab {object_id}`; hand the answer to
/// [`Objects::on_grab_reply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrabRequest {
    pub object_id: String,
}

/// Send `object_release {object_id}`: this client now throws it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseRequest {
    pub object_id: String,
}

/// What [`Objects::tick`] asks the caller to send.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectTick {
    /// The poses of the objects this client holds or throws (at most
    /// [`MAX_OBJECTS_PER_POSE_PUSH`]) for the next pose push; the pose
    /// sender paces them (at most 30 Hz, at least every
    /// `OBJECT_KEEPALIVE_MS` while not empty).
    pub poses: Vec<ObjectPose>,
    /// `object_release` for grabs let go of before the server answered.
    pub releases: Vec<ReleaseRequest>,
    /// `object_set`: flights that came to rest, with their rest state.
    pub rests: Vec<(String, ObjectState)>,
}

/// This client's own part in an object.
#[derive(Debug, Clone)]
enum Local {
    None,
    /// Asked to grab; following the hand meanwhile.
    Pending {
        pose: Option<([f32; 3], [f32; 4])>,
        estimator: VelocityEstimator,
        /// Let go before the answer: throw as soon as it is granted.
        released: bool,
    },
    Held {
        handle: u16,
        pose: ([f32; 3], [f32; 4]),
        estimator: VelocityEstimator,
    },
    Flying {
        handle: u16,
        flight: Flight,
        last: f64,
    },
    /// The flight ended here; the `object_set` is on its way.
    Settling {
        state: ObjectState,
        since: f64,
    },
}

/// A pose sample of a remote holder's stream.
#[derive(Debug, Clone, Copy, PartialEq)]
struct ObjectSample {
    position: [f32; 3],
    orientation: [f32; 4],
}

impl Interpolate for ObjectSample {
    fn interpolate(a: &ObjectSample, b: &ObjectSample, f: f32) -> ObjectSample {
        let mut position = [0.0; 3];
        for (i, p) in position.iter_mut().enumerate() {
            *p = a.position[i] + (b.position[i] - a.position[i]) * f;
        }
        ObjectSample {
            position,
            orientation: nlerp(a.orientation, b.orientation, f),
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    /// The last resting state the room stored.
    state: ObjectState,
    colour: [f32; 3],
    handle: Option<u16>,
    holder: Option<ObjectHolder>,
    /// The server let go of it for a lost holder and is settling it: shown
    /// where the stream left it until the rest arrives.
    server_settling: bool,
    track: Track<ObjectSample>,
    local: Local,
}

impl Entry {
    fn new(state: ObjectState, handle: Option<u16>, holder: Option<ObjectHolder>) -> Entry {
        Entry {
            colour: colour_from_hex(&state.colour).unwrap_or([0.7; 3]),
            state,
            handle,
            holder,
            server_settling: false,
            track: Track::new(DEFAULT_DELAY),
            local: Local::None,
        }
    }

    fn local_pose(&self) -> Option<([f32; 3], [f32; 4])> {
        match &self.local {
            Local::None => None,
            Local::Pending { pose, .. } => *pose,
            Local::Held { pose, .. } => Some(*pose),
            Local::Flying { flight, .. } => Some((flight.body.position, flight.body.orientation)),
            Local::Settling { state, .. } => Some((state.position, state.orientation)),
        }
    }

    fn pose(&self, now: f64) -> ([f32; 3], [f32; 4]) {
        if let Some(pose) = self.local_pose() {
            return pose;
        }
        if self.streaming()
            && let Some(sample) = self.track.sample(now)
        {
            return (sample.position, sample.orientation);
        }
        (self.state.position, self.state.orientation)
    }

    /// Someone else holds or throws it, or the server is settling it: its
    /// pose comes from the batches. At rest it does not, so a batch that
    /// comes after the rest (the thrower's last poses) moves nothing.
    fn streaming(&self) -> bool {
        self.holder.is_some() || self.server_settling
    }

    fn held_by_me(&self) -> bool {
        matches!(
            self.local,
            Local::Pending { .. } | Local::Held { .. } | Local::Flying { .. }
        )
    }
}

/// Every object in the room.
#[derive(Debug, Clone)]
pub struct Objects {
    objects: BTreeMap<String, Entry>,
    /// This client's slot in the room: a holder with it is this client.
    own_slot: Option<u16>,
    world: World,
    notices: Vec<String>,
    /// Grabs let go of before they were granted, to release now.
    pending_releases: Vec<String>,
}

impl Default for Objects {
    fn default() -> Self {
        Objects::new()
    }
}

impl Objects {
    pub fn new() -> Objects {
        Objects {
            objects: BTreeMap::new(),
            own_slot: None,
            world: World::room(),
            notices: Vec::new(),
            pending_releases: Vec::new(),
        }
    }

    /// A join's (or rejoin's) snapshot: the truth about every object now.
    /// Local holds end: a rejoin is a new membership, and the server let go
    /// of whatever the old one held.
    pub fn joined(&mut self, own_slot: u16, snapshot: &[ObjectSnapshot]) {
        self.own_slot = Some(own_slot);
        self.objects = snapshot
            .iter()
            .map(|object| {
                (
                    object.object_id.clone(),
                    Entry::new(
                        object.state.clone(),
                        Some(object.handle),
                        object.holder.clone(),
                    ),
                )
            })
            .collect();
    }

    /// This client's slot changed (a rejoin) before its snapshot arrived.
    pub fn set_own_slot(&mut self, own_slot: Option<u16>) {
        self.own_slot = own_slot;
    }

    /// Out of the room: nothing is shown.
    pub fn clear(&mut self) {
        self.objects.clear();
        self.own_slot = None;
    }

    /// A persisted event: `object_set` (appears, or comes to rest) or
    /// `object_remove`. Other events are ignored.
    pub fn on_event(&mut self, event: &RoomEvent) {
        match &event.body {
            RoomEventBody::ObjectSet { object_id, state } => {
                let Ok(state) = ObjectState::from_value(state) else {
                    return;
                };
                self.set(object_id, state);
            }
            RoomEventBody::ObjectRemove { object_id } => {
                self.objects.remove(object_id);
            }
            _ => {}
        }
    }

    /// An object rests at `state`, held by nobody.
    pub fn set(&mut self, object_id: &str, state: ObjectState) {
        match self.objects.get_mut(object_id) {
            Some(entry) => {
                entry.colour = colour_from_hex(&state.colour).unwrap_or([0.7; 3]);
                entry.state = state;
                entry.holder = None;
                entry.server_settling = false;
                entry.track.reset();
                // A grab asked for before this rest keeps waiting for its
                // answer; anything else of ours is over.
                if !matches!(entry.local, Local::Pending { .. }) {
                    entry.local = Local::None;
                }
            }
            None => {
                self.objects
                    .insert(object_id.to_string(), Entry::new(state, None, None));
            }
        }
    }

    /// `object_holder`: who holds or throws an object now.
    pub fn on_holder(&mut self, push: &ObjectHolderPush) {
        let own_slot = self.own_slot;
        let Some(entry) = self.objects.get_mut(&push.object_id) else {
            return;
        };
        entry.handle = Some(push.handle);
        let mine = push
            .holder
            .as_ref()
            .is_some_and(|holder| Some(holder.slot) == own_slot);
        if !mine
            && matches!(
                entry.local,
                Local::Held { .. } | Local::Flying { .. } | Local::Settling { .. }
            )
        {
            // Someone else caught it, or the server let go of it for this
            // client (silent too long): this client's hold or flight is over,
            // and the stream takes over. The stream keeps the room's pose
            // clock whoever sends it, so the track goes on.
            if push.holder.is_none() {
                self.notices.push(format!(
                    "{} slipped away: the server let go of it",
                    push.object_id
                ));
            }
            entry.local = Local::None;
        }
        entry.server_settling = push.holder.is_none();
        entry.holder = push.holder.clone();
    }

    /// The object poses of a pose batch stamped `server_time_ms`, received at `now`.
    pub fn on_poses(&mut self, now: f64, server_time_ms: u32, poses: &[ObjectPose]) {
        let server_time = f64::from(server_time_ms) / 1000.0;
        for pose in poses {
            let Some(entry) = self
                .objects
                .values_mut()
                .find(|entry| entry.handle == Some(pose.handle))
            else {
                continue;
            };
            // Our own poses come back in every batch; we show our own.
            if matches!(entry.local, Local::None) && entry.streaming() {
                entry.track.push(
                    now,
                    server_time,
                    ObjectSample {
                        position: pose.position,
                        orientation: pose.orientation,
                    },
                );
            }
        }
    }

    /// Asks to take hold of `object_id`: `None` if there is no such object,
    /// this client already holds it, or someone else holds it (a notice says
    /// who). A thrown object may be grabbed: a catch.
    pub fn grab(&mut self, object_id: &str, _now: f64) -> Option<GrabRequest> {
        let entry = self.objects.get_mut(object_id)?;
        if entry.held_by_me() {
            return None;
        }
        if let Some(holder) = &entry.holder
            && !holder.throwing
            && Some(holder.slot) != self.own_slot
        {
            self.notices.push(held_notice(object_id, Some(holder)));
            return None;
        }
        let start = entry.pose(_now);
        entry.local = Local::Pending {
            pose: Some(start),
            estimator: VelocityEstimator::default(),
            released: false,
        };
        Some(GrabRequest {
            object_id: object_id.to_string(),
        })
    }

    /// The server's answer to a grab.
    pub fn on_grab_reply(&mut self, object_id: &str, outcome: GrabOutcome, now: f64) {
        let Some(entry) = self.objects.get_mut(object_id) else {
            return;
        };
        let Local::Pending {
            pose,
            estimator,
            released,
        } = std::mem::replace(&mut entry.local, Local::None)
        else {
            return;
        };
        match outcome {
            GrabOutcome::Granted { handle } => {
                entry.handle = Some(handle);
                let pose = pose.unwrap_or((entry.state.position, entry.state.orientation));
                entry.local = Local::Held {
                    handle,
                    pose,
                    estimator,
                };
                if released {
                    self.pending_releases.push(object_id.to_string());
                    self.start_flight(object_id, now);
                }
            }
            GrabOutcome::Held(holder) => {
                self.notices.push(held_notice(object_id, holder.as_ref()));
            }
            GrabOutcome::Failed(reason) => {
                self.notices
                    .push(format!("could not pick up {object_id}: {reason}"));
            }
        }
    }

    /// Where the hand (or mouse) holding `object_id` puts it at `now`.
    pub fn hold_at(
        &mut self,
        object_id: &str,
        position: [f32; 3],
        orientation: [f32; 4],
        now: f64,
    ) {
        let Some(entry) = self.objects.get_mut(object_id) else {
            return;
        };
        match &mut entry.local {
            Local::Pending {
                pose, estimator, ..
            } => {
                *pose = Some((position, orientation));
                estimator.push(now, position, orientation);
            }
            Local::Held {
                pose, estimator, ..
            } => {
                *pose = (position, orientation);
                estimator.push(now, position, orientation);
            }
            _ => {}
        }
    }

    /// Lets go of `object_id`: it flies on with the hand's velocity, this
    /// client simulating it until it rests. `Some` when `object_release` is
    /// to be sent now; a grab still unanswered is released once granted
    /// (through [`ObjectTick::releases`]).
    pub fn release(&mut self, object_id: &str, now: f64) -> Option<ReleaseRequest> {
        let entry = self.objects.get_mut(object_id)?;
        match &mut entry.local {
            Local::Pending { released, .. } => {
                *released = true;
                None
            }
            Local::Held { .. } => {
                self.start_flight(object_id, now);
                Some(ReleaseRequest {
                    object_id: object_id.to_string(),
                })
            }
            _ => None,
        }
    }

    fn start_flight(&mut self, object_id: &str, now: f64) {
        let Some(entry) = self.objects.get_mut(object_id) else {
            return;
        };
        let Local::Held {
            handle,
            pose: (position, orientation),
            estimator,
        } = &entry.local
        else {
            return;
        };
        let (velocity, angular_velocity) = estimator.velocity();
        let mut state = entry.state.clone();
        state.position = *position;
        state.orientation = *orientation;
        entry.local = Local::Flying {
            handle: *handle,
            flight: Flight::new(Body::released(&state, velocity, angular_velocity)),
            last: now,
        };
    }

    /// Advances this client's flights to `now` and says what to send.
    pub fn tick(&mut self, now: f64) -> ObjectTick {
        let mut tick = ObjectTick {
            releases: std::mem::take(&mut self.pending_releases)
                .into_iter()
                .map(|object_id| ReleaseRequest { object_id })
                .collect(),
            ..ObjectTick::default()
        };
        for (id, entry) in &mut self.objects {
            match &mut entry.local {
                Local::Held { handle, pose, .. } => tick.poses.push(ObjectPose {
                    handle: *handle,
                    flags: ObjectPoseFlags(ObjectPoseFlags::HELD),
                    position: pose.0,
                    orientation: pose.1,
                }),
                Local::Flying {
                    handle,
                    flight,
                    last,
                } => {
                    // The flight runs on this clock's time whatever the frame
                    // rate (Flight::advance caps a stall at a second).
                    let elapsed = (now - *last).max(0.0) as f32;
                    *last = now;
                    let resting = flight.resting || flight.advance(&self.world, elapsed);
                    tick.poses.push(ObjectPose {
                        handle: *handle,
                        flags: ObjectPoseFlags(0),
                        position: flight.body.position,
                        orientation: flight.body.orientation,
                    });
                    if resting {
                        let mut state = entry.state.clone();
                        state.position = flight.body.position;
                        state.orientation = normalized(flight.body.orientation);
                        tick.rests.push((id.clone(), state.clone()));
                        entry.local = Local::Settling { state, since: now };
                    }
                }
                Local::Settling { since, .. } if now - *since > SETTLE_TIMEOUT => {
                    entry.local = Local::None;
                }
                _ => {}
            }
        }
        tick.poses.truncate(MAX_OBJECTS_PER_POSE_PUSH);
        tick
    }

    /// The server's answer to a request of this client.
    pub fn on_reply(&mut self, reply: ObjectReply, now: f64) {
        match reply {
            ObjectReply::Grab { object_id, outcome } => {
                self.on_grab_reply(&object_id, outcome, now)
            }
            ObjectReply::RestRefused { object_id, reason } => {
                self.on_rest_refused(&object_id, &reason)
            }
            ObjectReply::ReleaseRefused { object_id, reason } => self
                .notices
                .push(format!("could not let go of {object_id}: {reason}")),
        }
    }

    /// The rest this client sent was refused (someone caught the object, or
    /// it is gone): show the room's state again.
    pub fn on_rest_refused(&mut self, object_id: &str, reason: &str) {
        if let Some(entry) = self.objects.get_mut(object_id)
            && matches!(entry.local, Local::Settling { .. })
        {
            entry.local = Local::None;
            self.notices
                .push(format!("{object_id} could not be put down: {reason}"));
        }
    }

    /// Every object as it is to be drawn at `now`.
    pub fn displayed(&self, now: f64) -> impl Iterator<Item = ShownObject> + '_ {
        self.objects.iter().map(move |(id, entry)| {
            let (position, orientation) = entry.pose(now);
            ShownObject {
                id: id.clone(),
                kind: entry.state.kind,
                colour: entry.colour,
                position,
                orientation,
                holder: entry.holder.clone(),
                held_by_me: entry.held_by_me(),
                resting: !entry.streaming() && !entry.held_by_me(),
            }
        })
    }

    /// One object as it is to be drawn at `now`.
    pub fn shown(&self, object_id: &str, now: f64) -> Option<ShownObject> {
        self.displayed(now).find(|object| object.id == object_id)
    }

    /// The object nearest `point` whose surface is within `max_distance` of
    /// it and that this client may grab (not held by someone else).
    pub fn nearest_grabbable(
        &self,
        point: [f32; 3],
        max_distance: f32,
        now: f64,
    ) -> Option<String> {
        self.displayed(now)
            .filter(|object| {
                object.held_by_me
                    || object
                        .holder
                        .as_ref()
                        .is_none_or(|holder| holder.throwing || Some(holder.slot) == self.own_slot)
            })
            .map(|object| {
                let d = distance(object.position, point) - collision_radius(object.kind);
                (d.max(0.0), object.id)
            })
            .filter(|(d, _)| *d <= max_distance)
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, id)| id)
    }

    /// The objects this client holds or throws now.
    pub fn mine(&self) -> impl Iterator<Item = &str> {
        self.objects
            .iter()
            .filter(|(_, entry)| entry.held_by_me())
            .map(|(id, _)| id.as_str())
    }

    /// Notices for the chat or status line (a refused grab names the holder).
    pub fn take_notices(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notices)
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

fn held_notice(object_id: &str, holder: Option<&ObjectHolder>) -> String {
    match holder {
        Some(holder) => format!("{object_id} is held by {}", holder.name),
        None => format!("{object_id} is held by someone else"),
    }
}

fn distance(a: [f32; 3], b: [f32; 3]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt()
}

fn normalized(q: [f32; 4]) -> [f32; 4] {
    let norm = q.iter().map(|c| c * c).sum::<f32>().sqrt();
    if norm < 1e-6 {
        [0.0, 0.0, 0.0, 1.0]
    } else {
        q.map(|c| c / norm)
    }
}

#[cfg(test)]
mod tests {
    use roomscale_protocol::events::{ErrorCode, RoomEvent};

    use super::*;

    const ME: u16 = 4;
    const OTHER: u16 = 7;

    fn cube_at(position: [f32; 3]) -> ObjectState {
        ObjectState {
            kind: ObjectKind::Cube,
            colour: "#ff0000".into(),
            position,
            orientation: [0.0, 0.0, 0.0, 1.0],
        }
    }

    fn holder(slot: u16, name: &str, throwing: bool) -> ObjectHolder {
        ObjectHolder {
            user_id: format!("u-{slot}"),
            name: name.into(),
            slot,
            throwing,
        }
    }

    /// A room with cube-1 on the table (handle 1) and ball-1 on the floor (handle 2).
    fn room() -> Objects {
        let mut objects = Objects::new();
        objects.joined(
            ME,
            &[
                ObjectSnapshot {
                    object_id: "cube-1".into(),
                    handle: 1,
                    state: cube_at([0.0, 0.8, -1.6]),
                    holder: None,
                },
                ObjectSnapshot {
                    object_id: "ball-1".into(),
                    handle: 2,
                    state: ObjectState {
                        kind: ObjectKind::Ball,
                        colour: "#00ff00".into(),
                        position: [2.0, 0.06, 0.0],
                        orientation: [0.0, 0.0, 0.0, 1.0],
                    },
                    holder: None,
                },
            ],
        );
        objects
    }

    fn shown(objects: &Objects, id: &str, now: f64) -> ShownObject {
        objects.shown(id, now).expect("the object is shown")
    }

    fn close(a: [f32; 3], b: [f32; 3], within: f32) -> bool {
        distance(a, b) <= within
    }

    fn set_event(id: u64, object_id: &str, state: &ObjectState) -> RoomEvent {
        RoomEvent {
            id,
            user_id: "u-7".into(),
            name: "Bo".into(),
            sent_at: 0,
            body: RoomEventBody::ObjectSet {
                object_id: object_id.into(),
                state: state.to_value(),
            },
        }
    }

    /// Grabs cube-1 for this client and has the grab granted at `now`.
    fn held(objects: &mut Objects, now: f64) {
        assert!(objects.grab("cube-1", now).is_some());
        objects.on_grab_reply("cube-1", GrabOutcome::Granted { handle: 1 }, now);
    }

    #[test]
    fn a_snapshot_is_shown_at_rest_in_linear_colour() {
        let objects = room();
        let cube = shown(&objects, "cube-1", 0.0);
        assert_eq!(cube.kind, ObjectKind::Cube);
        assert_eq!(cube.position, [0.0, 0.8, -1.6]);
        assert_eq!(cube.colour, [1.0, 0.0, 0.0]);
        assert!(cube.resting && !cube.held_by_me && cube.holder.is_none());
        assert_eq!(objects.len(), 2);
    }

    #[test]
    fn a_remote_holders_stream_is_shown_a_tenth_of_a_second_behind() {
        let mut objects = room();
        objects.on_holder(&ObjectHolderPush {
            object_id: "cube-1".into(),
            handle: 1,
            holder: Some(holder(OTHER, "Bo", false)),
        });
        // Carried along +X at 1 m/s, 30 batches a second, arriving 20 ms late.
        for tick in 0..30u32 {
            let t = f64::from(tick) / 30.0;
            let pose = ObjectPose {
                handle: 1,
                flags: ObjectPoseFlags(ObjectPoseFlags::HELD),
                position: [t as f32, 1.0, -1.6],
                orientation: [0.0, 0.0, 0.0, 1.0],
            };
            objects.on_poses(t + 0.02, (t * 1000.0).round() as u32, &[pose]);
        }
        let cube = shown(&objects, "cube-1", 0.5 + 0.02);
        assert!(
            close(cube.position, [0.4, 1.0, -1.6], 0.005),
            "{:?}",
            cube.position
        );
        assert_eq!(cube.holder.as_ref().map(|h| h.name.as_str()), Some("Bo"));
        assert!(!cube.resting && !cube.held_by_me);
        // The thrower's rest puts it down where the room stored it.
        let rest = cube_at([1.2, 0.05, -0.3]);
        objects.on_event(&set_event(9, "cube-1", &rest));
        let cube = shown(&objects, "cube-1", 1.0);
        assert_eq!(cube.position, rest.position);
        assert!(cube.resting && cube.holder.is_none());
    }

    #[test]
    fn a_grab_of_an_object_someone_holds_names_the_holder() {
        let mut objects = room();
        objects.on_holder(&ObjectHolderPush {
            object_id: "cube-1".into(),
            handle: 1,
            holder: Some(holder(OTHER, "Bo", false)),
        });
        assert_eq!(objects.grab("cube-1", 0.0), None);
        assert_eq!(objects.take_notices(), ["cube-1 is held by Bo"]);
        // The server may know better than the last push: its refusal says who.
        let mut objects = room();
        assert!(objects.grab("cube-1", 0.0).is_some());
        objects.hold_at("cube-1", [0.0, 1.2, -1.0], [0.0, 0.0, 0.0, 1.0], 0.05);
        let refusal =
            roomscale_protocol::events::ErrorReply::object_held(holder(OTHER, "Cy", false));
        assert_eq!(refusal.code, ErrorCode::ObjectHeld);
        objects.on_grab_reply("cube-1", GrabOutcome::from_error(&refusal), 0.1);
        assert_eq!(objects.take_notices(), ["cube-1 is held by Cy"]);
        let cube = shown(&objects, "cube-1", 0.1);
        assert!(!cube.held_by_me);
        assert_eq!(cube.position, [0.0, 0.8, -1.6], "back where it lies");
        assert!(objects.tick(0.2).poses.is_empty());
    }

    #[test]
    fn a_held_object_follows_the_hand_at_once_and_goes_out_flagged_held() {
        let mut objects = room();
        assert!(objects.grab("cube-1", 0.0).is_some());
        assert_eq!(objects.grab("cube-1", 0.0), None, "asked once");
        objects.hold_at("cube-1", [0.1, 1.1, -1.4], [0.0, 0.0, 0.0, 1.0], 0.01);
        let cube = shown(&objects, "cube-1", 0.01);
        assert!(cube.held_by_me);
        assert_eq!(cube.position, [0.1, 1.1, -1.4], "no wait for the server");
        assert!(objects.tick(0.02).poses.is_empty(), "no handle yet");
        objects.on_grab_reply("cube-1", GrabOutcome::Granted { handle: 1 }, 0.03);
        objects.on_holder(&ObjectHolderPush {
            object_id: "cube-1".into(),
            handle: 1,
            holder: Some(holder(ME, "Me", false)),
        });
        let tick = objects.tick(0.04);
        assert_eq!(tick.poses.len(), 1);
        assert_eq!(tick.poses[0].handle, 1);
        assert!(tick.poses[0].flags.contains(ObjectPoseFlags::HELD));
        assert_eq!(tick.poses[0].position, [0.1, 1.1, -1.4]);
        assert_eq!(objects.mine().collect::<Vec<_>>(), ["cube-1"]);
        // Our own poses echoed in batches do not move what we show.
        objects.on_poses(
            0.05,
            50,
            &[ObjectPose {
                position: [9.0, 1.0, 0.0],
                ..tick.poses[0]
            }],
        );
        assert_eq!(shown(&objects, "cube-1", 0.2).position, [0.1, 1.1, -1.4]);
    }

    #[test]
    fn a_throw_flies_with_the_hands_velocity_and_comes_to_rest_once() {
        let mut objects = room();
        held(&mut objects, 0.0);
        // Carried towards +X at 2 m/s, 1.2 m up, for a third of a second.
        let mut now = 0.0;
        for frame in 0..30 {
            now = f64::from(frame) / 90.0;
            objects.hold_at(
                "cube-1",
                [2.0 * now as f32, 1.2, 0.0],
                [0.0, 0.0, 0.0, 1.0],
                now,
            );
        }
        let released_at = [2.0 * now as f32, 1.2, 0.0];
        assert_eq!(
            objects.release("cube-1", now),
            Some(ReleaseRequest {
                object_id: "cube-1".into()
            })
        );
        let mut rests = Vec::new();
        let mut rested_at = 0.0;
        let mut flying = 0;
        let mut previous_x = released_at[0];
        for frame in 1..=600 {
            let t = now + f64::from(frame) / 60.0;
            let tick = objects.tick(t);
            if let Some(pose) = tick.poses.first() {
                assert!(!pose.flags.contains(ObjectPoseFlags::HELD), "flying");
                assert!(
                    pose.position[0] >= previous_x - 1e-3,
                    "it flies on along +X"
                );
                previous_x = pose.position[0];
                flying += 1;
            }
            if !tick.rests.is_empty() {
                rested_at = t;
                rests.extend(tick.rests);
                break;
            }
        }
        assert!(objects.tick(rested_at + 0.05).rests.is_empty(), "sent once");
        assert_eq!(rests.len(), 1, "one rest: {rests:?}");
        let (id, rest) = &rests[0];
        assert_eq!(id, "cube-1");
        assert!(rest.position[0] > released_at[0] + 0.3, "{rest:?}");
        assert!(
            (rest.position[1] - collision_radius(ObjectKind::Cube)).abs() < 0.01,
            "on the floor: {rest:?}"
        );
        assert!(flying > 10, "{flying} poses in flight");
        // Settled and sent: shown at the rest until the room stores it.
        let cube = shown(&objects, "cube-1", rested_at + 0.1);
        assert!(!cube.held_by_me);
        assert_eq!(cube.position, rest.position);
        objects.on_event(&set_event(12, "cube-1", rest));
        let cube = shown(&objects, "cube-1", rested_at + 0.2);
        assert!(cube.resting);
        assert_eq!(cube.position, rest.position);
    }

    #[test]
    fn a_catch_by_someone_else_ends_this_clients_flight() {
        let mut objects = room();
        held(&mut objects, 0.0);
        objects.hold_at("cube-1", [0.0, 1.5, 0.0], [0.0, 0.0, 0.0, 1.0], 0.0);
        objects.hold_at("cube-1", [0.0, 1.6, 0.0], [0.0, 0.0, 0.0, 1.0], 0.05);
        objects.release("cube-1", 0.05);
        assert_eq!(objects.tick(0.1).poses.len(), 1);
        objects.on_holder(&ObjectHolderPush {
            object_id: "cube-1".into(),
            handle: 1,
            holder: Some(holder(OTHER, "Bo", false)),
        });
        let tick = objects.tick(0.15);
        assert!(tick.poses.is_empty() && tick.rests.is_empty());
        let cube = shown(&objects, "cube-1", 0.15);
        assert!(!cube.held_by_me);
        assert_eq!(cube.holder.map(|h| h.slot), Some(OTHER));
    }

    #[test]
    fn a_release_before_the_grant_throws_once_granted() {
        let mut objects = room();
        assert!(objects.grab("cube-1", 0.0).is_some());
        objects.hold_at("cube-1", [0.0, 1.5, -1.0], [0.0, 0.0, 0.0, 1.0], 0.01);
        assert_eq!(objects.release("cube-1", 0.02), None, "not granted yet");
        objects.on_grab_reply("cube-1", GrabOutcome::Granted { handle: 1 }, 0.05);
        let tick = objects.tick(0.06);
        assert_eq!(
            tick.releases,
            [ReleaseRequest {
                object_id: "cube-1".into()
            }]
        );
        assert_eq!(tick.poses.len(), 1);
        assert!(!tick.poses[0].flags.contains(ObjectPoseFlags::HELD));
        assert!(objects.tick(0.07).releases.is_empty(), "released once");
    }

    #[test]
    fn picking_skips_what_others_hold_but_not_what_they_throw() {
        let mut objects = room();
        let near_cube = [0.0, 0.9, -1.6];
        assert_eq!(
            objects.nearest_grabbable(near_cube, 0.2, 0.0).as_deref(),
            Some("cube-1")
        );
        assert_eq!(objects.nearest_grabbable([5.0, 1.0, 5.0], 0.2, 0.0), None);
        objects.on_holder(&ObjectHolderPush {
            object_id: "cube-1".into(),
            handle: 1,
            holder: Some(holder(OTHER, "Bo", false)),
        });
        assert_eq!(objects.nearest_grabbable(near_cube, 0.2, 0.0), None);
        objects.on_holder(&ObjectHolderPush {
            object_id: "cube-1".into(),
            handle: 1,
            holder: Some(holder(OTHER, "Bo", true)),
        });
        assert_eq!(
            objects.nearest_grabbable(near_cube, 0.2, 0.0).as_deref(),
            Some("cube-1"),
            "a thrown object may be caught"
        );
    }

    #[test]
    fn objects_appear_and_go_with_events_and_a_rejoin_drops_local_holds() {
        let mut objects = room();
        objects.on_event(&set_event(3, "marker-9", &cube_at([1.0, 0.05, 1.0])));
        assert_eq!(objects.len(), 3);
        objects.on_event(&RoomEvent {
            body: RoomEventBody::ObjectRemove {
                object_id: "ball-1".into(),
            },
            ..set_event(4, "x", &cube_at([0.0; 3]))
        });
        assert!(objects.shown("ball-1", 0.0).is_none());
        held(&mut objects, 0.0);
        objects.joined(
            9,
            &[ObjectSnapshot {
                object_id: "cube-1".into(),
                handle: 1,
                state: cube_at([0.0, 0.8, -1.6]),
                holder: None,
            }],
        );
        assert!(!shown(&objects, "cube-1", 0.0).held_by_me);
        assert_eq!(objects.len(), 1);
    }

    fn pose_at(x: f32, held: bool) -> ObjectPose {
        ObjectPose {
            handle: 1,
            flags: ObjectPoseFlags(if held { ObjectPoseFlags::HELD } else { 0 }),
            position: [x, 1.0, -1.6],
            orientation: [0.0, 0.0, 0.0, 1.0],
        }
    }

    #[test]
    fn a_throw_goes_on_from_the_stream_and_late_poses_after_the_rest_move_nothing() {
        let mut objects = room();
        let push = |throwing| ObjectHolderPush {
            object_id: "cube-1".into(),
            handle: 1,
            holder: Some(holder(OTHER, "Bo", throwing)),
        };
        objects.on_holder(&push(false));
        for tick in 0..10u32 {
            let t = f64::from(tick) / 30.0;
            objects.on_poses(t, tick * 33, &[pose_at(t as f32, true)]);
        }
        // Let go: the same stream goes on, nothing jumps back to the table.
        objects.on_holder(&push(true));
        let flying = shown(&objects, "cube-1", 0.31);
        assert!(close(flying.position, [0.2, 1.0, -1.6], 0.02), "{flying:?}");
        assert!(flying.holder.unwrap().throwing);
        let rest = cube_at([0.5, 0.05, -1.0]);
        objects.on_event(&set_event(5, "cube-1", &rest));
        // The thrower's last poses, relayed after the rest was stored.
        objects.on_poses(0.4, 400, &[pose_at(0.45, false)]);
        objects.on_poses(0.43, 433, &[pose_at(0.47, false)]);
        assert_eq!(shown(&objects, "cube-1", 0.6).position, rest.position);
    }

    #[test]
    fn a_hold_the_server_let_go_of_ends_here_with_a_notice() {
        let mut objects = room();
        held(&mut objects, 0.0);
        objects.hold_at("cube-1", [0.3, 1.2, -1.0], [0.0, 0.0, 0.0, 1.0], 0.0);
        objects.on_poses(0.05, 50, &[pose_at(0.3, true)]);
        objects.on_holder(&ObjectHolderPush {
            object_id: "cube-1".into(),
            handle: 1,
            holder: None,
        });
        assert_eq!(
            objects.take_notices(),
            ["cube-1 slipped away: the server let go of it"]
        );
        assert!(objects.tick(2.1).poses.is_empty());
        let cube = shown(&objects, "cube-1", 2.1);
        assert!(!cube.held_by_me && !cube.resting && cube.holder.is_none());
        // Until the server's rest arrives, it stays where the stream left it.
        objects.on_poses(2.2, 2200, &[pose_at(0.3, false)]);
        assert!(close(
            shown(&objects, "cube-1", 2.5).position,
            [0.3, 1.0, -1.6],
            0.001
        ));
    }
}
