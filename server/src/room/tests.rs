//! The room's logic driven as a state machine on a fake clock: plain
//! `Instant`s advanced by hand, storage answered by the test, and the frames
//! the outputs carry decoded as a client decodes them. No runtime, no
//! sockets, no sleeps.

use std::time::{Duration, Instant};

use axum::extract::ws::Message;
use roomscale_protocol::events::{
    ErrorCode, ErrorReply, Governance, JoinPayload, ModeratePush, RoomEvent, RoomEventBody,
    RoomSummary, UpdateProfilePush,
};
use roomscale_protocol::frame::{self, ServerBinary, TextFrame};
use roomscale_protocol::objects::{
    MAX_OBJECTS_PER_ROOM, ObjectKind, ObjectPose, ObjectPoseFlags, ObjectState, encode_object_pose,
};
use roomscale_protocol::pose::{self, AvatarPose, Joint, POSE_BYTES};
use roomscale_protocol::presence::ClientKind;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::state::{
    IDLE_STOP_AFTER, Input, LoadedRoom, Output, ReadResult, RoomSettings, RoomState, StorageRead,
    StorageWrite, TICK, VoiceEffect,
};
use super::{JoinRequest, MemberId, PushedObjects, RoomCommand};
use crate::address::ChannelAddress;
use crate::outbox::{self, OutboxReceiver};
use crate::storage::EventPage;

const OWNER: &str = "owner-user";
const START_UNIX_MS: i64 = 1_800_000_000_000;

type Accepted = oneshot::Receiver<Result<(), ErrorReply>>;

/// A room on a fake clock, with the outputs it produced so far.
struct Room {
    state: RoomState,
    now: Instant,
    outputs: Vec<Output>,
    /// Kept so that members' outboxes stay open.
    receivers: Vec<OutboxReceiver>,
}

impl Room {
    /// A loaded room whose newest stored event is `newest_event_id`.
    fn loaded(capacity: u16, governance: Governance, newest_event_id: u64) -> Room {
        Room::loaded_with(capacity, governance, newest_event_id, Vec::new())
    }

    /// An open room with these objects stored.
    fn with_objects(objects: &[(&str, [f32; 3])]) -> Room {
        let objects = objects
            .iter()
            .map(|(id, at)| (id.to_string(), cube_at(*at)))
            .collect();
        Room::loaded_with(25, owned_by(OWNER), 0, objects)
    }

    fn loaded_with(
        capacity: u16,
        governance: Governance,
        newest_event_id: u64,
        objects: Vec<(String, ObjectState)>,
    ) -> Room {
        let mut room = Room::loading(capacity);
        let id = room.expect_read(StorageRead::Room);
        room.handle(Input::Read {
            id,
            result: Ok(ReadResult::Room(Some(LoadedRoom {
                summary: RoomSummary {
                    id: "r".into(),
                    name: "Test room".into(),
                    description: String::new(),
                },
                governance,
                newest_event_id,
                objects,
            }))),
        });
        room
    }

    fn open(capacity: u16) -> Room {
        Room::loaded(capacity, owned_by(OWNER), 0)
    }

    fn loading(capacity: u16) -> Room {
        let now = Instant::now();
        let mut room = Room {
            state: RoomState::new(Uuid::nil(), RoomSettings { capacity }, now, START_UNIX_MS),
            now,
            outputs: Vec::new(),
            receivers: Vec::new(),
        };
        room.drain();
        room
    }

    fn handle(&mut self, input: Input) {
        self.state.handle(input, self.now);
        self.drain();
    }

    fn command(&mut self, command: RoomCommand) {
        self.handle(Input::Command(command));
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    /// Takes every output up to the deadline; returns the deadline.
    fn drain(&mut self) -> Option<Instant> {
        loop {
            match self.state.poll_output() {
                None => return None,
                Some(Output::Timeout(at)) => return Some(at),
                Some(output) => self.outputs.push(output),
            }
        }
    }

    fn deadline(&mut self) -> Option<Instant> {
        self.drain()
    }

    fn take(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.outputs)
    }

    /// Asks to join; returns what the connection will hear.
    fn ask_to_join(&mut self, member: MemberId, user_id: &str, name: &str) -> Accepted {
        self.ask_to_join_with(member, user_id, name, None, None)
    }

    fn ask_to_join_with(
        &mut self,
        member: MemberId,
        user_id: &str,
        name: &str,
        last_seen_id: Option<u64>,
        banned_until: Option<Instant>,
    ) -> Accepted {
        let (outbox, receiver) = outbox::outbox();
        self.receivers.push(receiver);
        let (accepted, answer) = oneshot::channel();
        let request = JoinRequest {
            member,
            user_id: user_id.into(),
            msg_ref: format!("m{member}"),
            address: ChannelAddress::new(outbox, topic().into(), Some(format!("j{member}").into())),
            payload: JoinPayload {
                protocol_version: roomscale_protocol::PROTOCOL_VERSION,
                name: name.into(),
                colour: "#336699".into(),
                client_kind: ClientKind::Web,
                last_seen_id,
            },
            accepted,
        };
        self.handle(Input::Join {
            request: Box::new(request),
            banned_until,
        });
        answer
    }

    /// Joins and answers the replay read with no events; returns the
    /// member's join reply.
    fn join(&mut self, member: MemberId, user_id: &str, name: &str) -> Value {
        let mut accepted = self.ask_to_join(member, user_id, name);
        self.answer_replay(Vec::new(), false);
        let outputs = self.take();
        let reply = joined_reply(&outputs, member);
        for output in outputs {
            if let Output::Joined { accepted, .. } = output {
                accepted.send(Ok(())).unwrap();
            }
        }
        assert_eq!(accepted.try_recv().unwrap(), Ok(()));
        reply
    }

    /// Answers the one replay read asked for; returns its range.
    fn answer_replay(&mut self, events: Vec<RoomEvent>, more: bool) -> (u64, u64) {
        let (id, after_id, before_id) = self
            .outputs
            .iter()
            .find_map(|o| match o {
                Output::Read {
                    id,
                    read:
                        StorageRead::Events {
                            after_id,
                            before_id,
                        },
                } => Some((*id, *after_id, *before_id)),
                _ => None,
            })
            .expect("a replay read");
        self.outputs
            .retain(|o| !matches!(o, Output::Read { id: read, .. } if *read == id));
        self.handle(Input::Read {
            id,
            result: Ok(ReadResult::Events(EventPage {
                events,
                more,
                bytes: 0,
            })),
        });
        (after_id, before_id)
    }

    fn expect_read(&mut self, expected: StorageRead) -> u64 {
        let at = self
            .outputs
            .iter()
            .position(|o| matches!(o, Output::Read { read, .. } if *read == expected))
            .unwrap_or_else(|| panic!("a read of {expected:?} in {:?}", self.outputs));
        match self.outputs.remove(at) {
            Output::Read { id, .. } => id,
            _ => unreachable!(),
        }
    }

    fn expect_write(&mut self) -> (u64, StorageWrite) {
        let at = self
            .outputs
            .iter()
            .position(|o| matches!(o, Output::Write { .. }))
            .unwrap_or_else(|| panic!("a write in {:?}", self.outputs));
        match self.outputs.remove(at) {
            Output::Write { id, write } => (id, write),
            _ => unreachable!(),
        }
    }

    fn pose(&mut self, member: MemberId, x: f32) {
        self.command(RoomCommand::Pose {
            member,
            pose: pose::encode_pose(0, &pose_at(x)),
            objects: Default::default(),
        });
    }

    /// A pose push with these object poses: (handle, position, flags).
    fn pose_with_objects(&mut self, member: MemberId, x: f32, objects: &[(u16, [f32; 3])]) {
        let encoded: Vec<_> = objects
            .iter()
            .map(|&(handle, position)| {
                encode_object_pose(&ObjectPose {
                    handle,
                    flags: ObjectPoseFlags(ObjectPoseFlags::HELD),
                    position,
                    orientation: [0.0, 0.0, 0.0, 1.0],
                })
            })
            .collect();
        self.command(RoomCommand::Pose {
            member,
            pose: pose::encode_pose(0, &pose_at(x)),
            objects: PushedObjects::from_poses(&encoded),
        });
    }

    fn grab(&mut self, member: MemberId, msg_ref: &str, object_id: &str) {
        self.command(RoomCommand::ObjectGrab {
            member,
            msg_ref: msg_ref.into(),
            object_id: object_id.into(),
        });
    }

    fn release(&mut self, member: MemberId, msg_ref: &str, object_id: &str) {
        self.command(RoomCommand::ObjectRelease {
            member,
            msg_ref: msg_ref.into(),
            object_id: object_id.into(),
        });
    }

    fn set_object(&mut self, member: MemberId, msg_ref: &str, object_id: &str, at: [f32; 3]) {
        self.command(RoomCommand::Persist {
            member,
            msg_ref: msg_ref.into(),
            body: RoomEventBody::ObjectSet {
                object_id: object_id.into(),
                state: cube_at(at).to_value(),
            },
        });
    }

    fn remove_object(&mut self, member: MemberId, msg_ref: &str, object_id: &str) {
        self.command(RoomCommand::Persist {
            member,
            msg_ref: msg_ref.into(),
            body: RoomEventBody::ObjectRemove {
                object_id: object_id.into(),
            },
        });
    }

    /// Runs the tick (and any holder deadline) due at or before `at`.
    fn run_until(&mut self, at: Instant) {
        while let Some(deadline) = self.deadline().filter(|d| *d <= at) {
            self.now = deadline.max(self.now);
            self.handle(Input::Timeout);
        }
        self.now = at;
    }

    fn chat(&mut self, member: MemberId, msg_ref: &str, text: &str) {
        self.command(RoomCommand::Persist {
            member,
            msg_ref: msg_ref.into(),
            body: RoomEventBody::Chat { text: text.into() },
        });
    }

    fn moderate(&mut self, member: MemberId, msg_ref: &str, act: ModeratePush) {
        self.command(RoomCommand::Moderate {
            member,
            msg_ref: msg_ref.into(),
            act,
        });
    }

    /// Stores the next write as event `id`, as storage would.
    fn store_next_event(&mut self, id: u64) {
        let (write_id, write) = self.expect_write();
        let StorageWrite::Event {
            user_id,
            name,
            sent_at_ms,
            body,
        } = write
        else {
            panic!("an event write, got {write:?}");
        };
        self.handle(Input::Written {
            id: write_id,
            result: Ok(Some(RoomEvent {
                id,
                user_id,
                name,
                sent_at: sent_at_ms,
                body,
            })),
        });
    }
}

fn topic() -> String {
    format!("room:{}", Uuid::nil())
}

fn owned_by(owner: &str) -> Governance {
    Governance {
        owner_user_id: Some(owner.into()),
        moderators: Vec::new(),
        locked: false,
    }
}

fn pose_at(x: f32) -> AvatarPose {
    let joint = |position| Joint {
        position,
        orientation: [0.0, 0.0, 0.0, 1.0],
    };
    AvatarPose {
        head: joint([x, 1.6, -2.0]),
        left: joint([x - 0.3, 1.2, -2.2]),
        right: joint([x + 0.3, 1.2, -2.2]),
        flags: Default::default(),
    }
}

fn chat_event(id: u64, text: &str) -> RoomEvent {
    RoomEvent {
        id,
        user_id: "someone".into(),
        name: "Someone".into(),
        sent_at: START_UNIX_MS,
        body: RoomEventBody::Chat { text: text.into() },
    }
}

fn text(frame: &Message) -> TextFrame {
    match frame {
        Message::Text(text) => frame::decode_text(text).expect("a Phoenix text frame"),
        other => panic!("a text frame, got {other:?}"),
    }
}

/// The text frames that reach `member`, in order, as (event, payload); a
/// reply shows as `phx_reply`.
fn frames_to(outputs: &[Output], member: MemberId) -> Vec<(String, Value)> {
    let mut seen = Vec::new();
    for output in outputs {
        match output {
            Output::Send {
                member: to, frame, ..
            } if *to == member => {
                let f = text(frame);
                seen.push((f.event, f.payload));
            }
            Output::Broadcast { to, except, frame }
                if *except != Some(member) && to.iter().any(|r| r.member == member) =>
            {
                let f = text(frame);
                seen.push((f.event, f.payload));
            }
            Output::Joined {
                member: to,
                reply,
                presence,
                ..
            } if *to == member => {
                for frame in [reply, presence] {
                    let f = text(frame);
                    seen.push((f.event, f.payload));
                }
            }
            _ => {}
        }
    }
    seen
}

fn events_to(outputs: &[Output], member: MemberId, event: &str) -> Vec<Value> {
    frames_to(outputs, member)
        .into_iter()
        .filter(|(e, _)| e == event)
        .map(|(_, payload)| payload)
        .collect()
}

fn joined_reply(outputs: &[Output], member: MemberId) -> Value {
    outputs
        .iter()
        .find_map(|o| match o {
            Output::Joined {
                member: m, reply, ..
            } if *m == member => Some(text(reply).payload["response"].clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("member {member} joined in {outputs:?}"))
}

/// The single reply in `outputs` to `msg_ref`: (status, response).
fn reply_to(outputs: &[Output], msg_ref: &str) -> (String, Value) {
    let replies: Vec<_> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Send { frame, .. } => Some(text(frame)),
            _ => None,
        })
        .filter(|f| f.event == "phx_reply" && f.msg_ref.as_deref() == Some(msg_ref))
        .collect();
    assert_eq!(replies.len(), 1, "one reply to {msg_ref} in {outputs:?}");
    let payload = &replies[0].payload;
    (
        payload["status"].as_str().unwrap().to_string(),
        payload["response"].clone(),
    )
}

fn refusal(answer: &mut Accepted, outputs: Vec<Output>) -> ErrorReply {
    for output in outputs {
        if let Output::Refused { accepted, reply } = output {
            accepted.send(Err(reply)).unwrap();
        }
    }
    answer
        .try_recv()
        .expect("an answer")
        .expect_err("a refusal")
}

/// Each pose frame sent: who gets it (the skipped left out, sorted) and its
/// batch, after checking it is the room's `poses` broadcast.
fn pose_batches(outputs: &[Output]) -> Vec<(Vec<MemberId>, &[u8])> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Poses { to, skip, frame } => {
                let Ok(ServerBinary::Broadcast {
                    topic: t,
                    event,
                    payload,
                }) = frame::decode_server_binary(frame.bytes())
                else {
                    panic!("a binary broadcast");
                };
                assert_eq!((t, event), (topic().as_str(), "poses"));
                let mut members: Vec<MemberId> = to
                    .iter()
                    .map(|r| r.member)
                    .filter(|m| !skip.contains(m))
                    .collect();
                members.sort_unstable();
                Some((members, payload))
            }
            _ => None,
        })
        .collect()
}

/// Each pose frame sent: (who gets it, the slots it carries).
fn pose_frames(outputs: &[Output]) -> Vec<(Vec<MemberId>, Vec<u16>)> {
    pose_batches(outputs)
        .into_iter()
        .map(|(members, payload)| {
            let batch = pose::decode_batch(payload).unwrap();
            let mut slots: Vec<u16> = batch.iter().map(|(slot, _)| slot).collect();
            slots.sort_unstable();
            (members, slots)
        })
        .collect()
}

fn slot_of(reply: &Value) -> u16 {
    reply["slot"].as_u64().unwrap() as u16
}

// Joining, presence, leaving ------------------------------------------------

#[test]
fn a_join_gets_its_reply_then_presence_and_the_others_a_diff() {
    let mut room = Room::open(25);
    let ada = room.join(1, "ada", "Ada");
    assert_eq!(ada["user_id"], "ada");
    assert_eq!(ada["slot"], 1);
    assert_eq!(ada["room"]["name"], "Test room");
    assert_eq!(ada["governance"]["owner_user_id"], OWNER);

    let mut answer = room.ask_to_join(2, "bo", "Bo");
    room.answer_replay(Vec::new(), false);
    let outputs = room.take();
    let to_bo = frames_to(&outputs, 2);
    assert_eq!(to_bo[0].0, "phx_reply", "the reply comes first");
    assert_eq!(to_bo[0].1["response"]["slot"], 2);
    assert_eq!(to_bo[1].0, "presence_state");
    let state = &to_bo[1].1;
    assert_eq!(state["ada"]["metas"][0]["name"], "Ada");
    assert_eq!(state["bo"]["metas"][0]["name"], "Bo");
    assert_eq!(to_bo.len(), 2, "no diff of its own join: {to_bo:?}");
    let diffs = events_to(&outputs, 1, "presence_diff");
    assert_eq!(diffs.len(), 1);
    assert_eq!(diffs[0]["joins"]["bo"]["metas"][0]["slot"], 2);
    assert!(diffs[0]["leaves"].as_object().unwrap().is_empty());
    // The connection hears the outcome only through the output it carries.
    assert!(answer.try_recv().is_err());
}

#[test]
fn a_leave_tells_the_others_frees_the_slot_and_ends_voice() {
    let mut room = Room::open(25);
    room.join(1, "ada", "Ada");
    room.join(2, "bo", "Bo");
    room.command(RoomCommand::Leave { member: 1 });
    let outputs = room.take();
    let diffs = events_to(&outputs, 2, "presence_diff");
    assert_eq!(diffs.len(), 1);
    assert_eq!(diffs[0]["leaves"]["ada"]["metas"][0]["slot"], 1);
    assert!(
        outputs
            .iter()
            .any(|o| matches!(o, Output::Voice(VoiceEffect::Leave { member: 1 })))
    );
    assert!(
        outputs
            .iter()
            .any(|o| matches!(o, Output::ForgetPoses { member: 1, .. }))
    );
    assert!(frames_to(&outputs, 1).is_empty(), "nothing to who left");
    // The slot is free again for the next one in.
    let cy = room.join(3, "cy", "Cy");
    assert_eq!(slot_of(&cy), 1);
}

#[test]
fn a_member_too_far_behind_leaves_at_once() {
    let mut room = Room::open(25);
    room.join(1, "ada", "Ada");
    room.join(2, "bo", "Bo");
    room.take();
    room.handle(Input::Unreachable { member: 2 });
    let outputs = room.take();
    assert_eq!(
        events_to(&outputs, 1, "presence_diff")[0]["leaves"]["bo"]["metas"][0]["name"],
        "Bo"
    );
    assert!(room.state.recipients().iter().all(|r| r.member != 2));
}

#[test]
fn a_second_client_of_the_same_person_shows_as_a_second_meta() {
    let mut room = Room::open(25);
    room.join(1, "ada", "Ada");
    let mut answer = room.ask_to_join(2, "ada", "Ada");
    room.answer_replay(Vec::new(), false);
    let outputs = room.take();
    let to_second = frames_to(&outputs, 2);
    assert_eq!(
        to_second[1].1["ada"]["metas"].as_array().unwrap().len(),
        2,
        "both clients in presence"
    );
    drop(answer.try_recv());
}

// Replay ---------------------------------------------------------------------

#[test]
fn a_replay_covers_what_the_client_lacks_up_to_the_last_broadcast() {
    let mut room = Room::loaded(25, owned_by(OWNER), 7);
    room.ask_to_join_with(1, "ada", "Ada", Some(4), None);
    let (after, before) = room.answer_replay(
        vec![
            chat_event(5, "five"),
            chat_event(6, "six"),
            chat_event(7, "seven"),
        ],
        true,
    );
    assert_eq!((after, before), (4, 8));
    let reply = joined_reply(&room.take(), 1);
    let ids: Vec<u64> = reply["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [5, 6, 7]);
    assert_eq!(
        reply["truncated"], true,
        "the store cut it to its byte budget"
    );
}

#[test]
fn events_stored_not_yet_broadcast_come_as_broadcasts_not_in_the_replay() {
    let mut room = Room::loaded(25, owned_by(OWNER), 3);
    room.join(1, "ada", "Ada");
    room.chat(1, "c1", "stored while bo joins");
    // The write is under way (event 4 not yet broadcast) as Bo asks in.
    room.ask_to_join(2, "bo", "Bo");
    let (after, before) = room.answer_replay(Vec::new(), false);
    assert_eq!(
        (after, before),
        (0, 4),
        "the replay stops at the last broadcast"
    );
    room.take_joined_and_accept(2);
    room.store_next_event(4);
    let outputs = room.take();
    let to_bo = events_to(&outputs, 2, roomscale_protocol::events::ROOM_EVENT_EVENT);
    assert_eq!(to_bo.len(), 1);
    assert_eq!(to_bo[0]["id"], 4);
    assert_eq!(reply_to(&outputs, "c1").0, "ok");
}

#[test]
fn events_broadcast_while_a_replay_is_read_follow_the_join_reply() {
    let mut room = Room::loaded(25, owned_by(OWNER), 3);
    room.join(1, "ada", "Ada");
    room.chat(1, "c1", "one");
    room.ask_to_join_with(2, "bo", "Bo", Some(1), None);
    // Event 4 is stored and broadcast before Bo's replay read (which saw ids
    // up to 3) comes back: Bo was no member yet when it went out.
    room.store_next_event(4);
    assert!(
        events_to(
            &room.outputs,
            2,
            roomscale_protocol::events::ROOM_EVENT_EVENT
        )
        .is_empty()
    );
    let (_, before) = room.answer_replay(vec![chat_event(2, "two"), chat_event(3, "three")], false);
    assert_eq!(before, 4);
    let outputs = room.take();
    let to_bo = frames_to(&outputs, 2);
    let order: Vec<&str> = to_bo.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        order,
        [
            "phx_reply",
            "presence_state",
            roomscale_protocol::events::ROOM_EVENT_EVENT
        ]
    );
    assert_eq!(to_bo[2].1["id"], 4, "missed, then sent once");
    let replayed: Vec<u64> = to_bo[0].1["response"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    assert_eq!(replayed, [2, 3]);
}

#[test]
fn a_failed_replay_read_refuses_the_join_and_frees_its_place() {
    let mut room = Room::open(1);
    let mut answer = room.ask_to_join(1, "ada", "Ada");
    let read = room
        .take()
        .into_iter()
        .find_map(|o| match o {
            Output::Read { id, .. } => Some(id),
            _ => None,
        })
        .unwrap();
    room.handle(Input::Read {
        id: read,
        result: Err("disk on fire".into()),
    });
    let refused = refusal(&mut answer, room.take());
    assert_eq!(refused.code, ErrorCode::Internal);
    assert!(refused.reason.contains("try joining again"));
    // Its place was given back: the room of one takes someone.
    room.join(2, "bo", "Bo");
}

// Loading ------------------------------------------------------------------------

#[test]
fn joins_that_arrive_while_the_room_loads_are_answered_once_it_loaded() {
    let mut room = Room::loading(25);
    let read = room.expect_read(StorageRead::Room);
    let mut answer = room.ask_to_join(1, "ada", "Ada");
    assert!(
        !room
            .outputs
            .iter()
            .any(|o| matches!(o, Output::Read { .. })),
        "waits for the room"
    );
    room.handle(Input::Read {
        id: read,
        result: Ok(ReadResult::Room(Some(LoadedRoom {
            summary: RoomSummary {
                id: "r".into(),
                name: "Late".into(),
                description: String::new(),
            },
            governance: owned_by(OWNER),
            newest_event_id: 0,
            objects: Vec::new(),
        }))),
    });
    room.answer_replay(Vec::new(), false);
    let outputs = room.take();
    assert_eq!(joined_reply(&outputs, 1)["room"]["name"], "Late");
    drop(answer.try_recv());
}

#[test]
fn a_room_that_cannot_load_refuses_its_joins_and_stops() {
    let mut room = Room::loading(25);
    let read = room.expect_read(StorageRead::Room);
    let mut answer = room.ask_to_join(1, "ada", "Ada");
    room.handle(Input::Read {
        id: read,
        result: Err("database is gone".into()),
    });
    let outputs = room.take();
    assert!(outputs.iter().any(|o| matches!(o, Output::Stop)));
    assert!(room.state.is_stopped());
    let refused = refusal(&mut answer, outputs);
    assert_eq!(refused.code, ErrorCode::Internal);
    assert!(refused.reason.contains("could not be loaded"));
}

#[test]
fn a_room_not_in_the_store_refuses_joins() {
    let mut room = Room::loading(25);
    let read = room.expect_read(StorageRead::Room);
    room.handle(Input::Read {
        id: read,
        result: Ok(ReadResult::Room(None)),
    });
    let mut answer = room.ask_to_join(1, "ada", "Ada");
    let refused = refusal(&mut answer, room.take());
    assert_eq!(refused.code, ErrorCode::RoomNotFound);
}

// Pose relay ---------------------------------------------------------------------

#[test]
fn ticks_relay_only_changed_poses_in_one_shared_frame_at_30_hz() {
    let mut room = Room::open(25);
    room.join(1, "ada", "Ada");
    room.join(2, "bo", "Bo");
    room.join(3, "cy", "Cy");
    let first_tick = room.deadline().expect("a tick is due");
    assert!(first_tick <= room.now + TICK);
    // The first tick: nobody has a pose yet, newcomers get nothing.
    room.now = first_tick;
    room.handle(Input::Timeout);
    assert!(pose_frames(&room.take()).is_empty());
    let next = room.deadline().unwrap();
    assert_eq!(next - first_tick, TICK, "30 Hz");
    assert_eq!(TICK, Duration::from_secs(1) / 30);

    room.pose(1, 1.0);
    room.pose(2, 2.0);
    room.now = next;
    room.handle(Input::Timeout);
    let frames = pose_frames(&room.take());
    assert_eq!(
        frames,
        [(vec![1, 2, 3], vec![1, 2])],
        "one frame for all, each client skips its own slot"
    );

    // Nothing changed: nothing sent.
    room.now = room.deadline().unwrap();
    room.handle(Input::Timeout);
    assert!(pose_frames(&room.take()).is_empty());

    // One member moved: the frame holds its pose alone, and it is not sent
    // back to the one member whose pose it is.
    room.pose(3, 3.0);
    room.now = room.deadline().unwrap();
    room.handle(Input::Timeout);
    assert_eq!(pose_frames(&room.take()), [(vec![1, 2], vec![3])]);
}

#[test]
fn a_newcomer_gets_everyone_latest_pose_and_the_others_only_changes() {
    let mut room = Room::open(25);
    room.join(1, "ada", "Ada");
    room.join(2, "bo", "Bo");
    room.pose(1, 1.0);
    room.pose(2, 2.0);
    room.now = room.deadline().unwrap();
    room.handle(Input::Timeout);
    room.take();

    room.join(3, "cy", "Cy");
    room.pose(2, 2.5);
    room.now = room.deadline().unwrap();
    room.handle(Input::Timeout);
    let mut frames = pose_frames(&room.take());
    frames.sort();
    assert_eq!(
        frames,
        [(vec![1], vec![2]), (vec![3], vec![1, 2])],
        "Bo's change to Ada (Bo skips its own), everyone's to Cy"
    );
    // Cy is no newcomer on the next tick.
    room.pose(1, 1.5);
    room.now = room.deadline().unwrap();
    room.handle(Input::Timeout);
    assert_eq!(pose_frames(&room.take()), [(vec![2, 3], vec![1])]);
}

#[test]
fn poses_carry_the_senders_slot_whatever_it_wrote() {
    let mut room = Room::open(25);
    room.join(1, "ada", "Ada");
    let bo = room.join(2, "bo", "Bo");
    room.command(RoomCommand::Pose {
        member: 2,
        pose: pose::encode_pose(999, &pose_at(0.0)),
        objects: Default::default(),
    });
    room.now = room.deadline().unwrap();
    room.handle(Input::Timeout);
    assert_eq!(pose_frames(&room.take()), [(vec![1], vec![slot_of(&bo)])]);
}

#[test]
fn late_ticks_are_skipped_not_caught_up() {
    let mut room = Room::open(25);
    room.join(1, "ada", "Ada");
    let tick = room.deadline().unwrap();
    room.now = tick + TICK * 10;
    room.handle(Input::Timeout);
    room.take();
    assert_eq!(room.deadline().unwrap(), room.now + TICK);
}

#[test]
fn head_positions_go_to_the_sfu_every_sixth_tick() {
    let mut room = Room::open(25);
    room.join(1, "ada", "Ada");
    room.join(2, "bo", "Bo");
    room.pose(1, 1.0);
    room.pose(2, 2.0);
    let mut positions = Vec::new();
    for _ in 0..12 {
        room.now = room.deadline().unwrap();
        room.handle(Input::Timeout);
        for output in room.take() {
            if let Output::Voice(VoiceEffect::Positions { mut heads }) = output {
                heads.sort_by_key(|(member, _)| *member);
                positions.push(heads);
            }
        }
    }
    assert_eq!(positions.len(), 2, "5 Hz out of 30");
    let xs: Vec<f32> = positions[0].iter().map(|(_, head)| head[0]).collect();
    assert!(
        (xs[0] - 1.0).abs() < 0.01 && (xs[1] - 2.0).abs() < 0.01,
        "{xs:?}"
    );
}

#[test]
fn a_pose_stays_a_fixed_size_copy() {
    // The pose command is a plain array: nothing to allocate per pose.
    assert_eq!(std::mem::size_of::<[u8; POSE_BYTES]>(), POSE_BYTES);
    let mut room = Room::open(25);
    room.join(1, "ada", "Ada");
    for i in 0..1000 {
        room.pose(1, i as f32 / 1000.0);
    }
    assert!(room.take().is_empty(), "poses wait for the tick");
}

// Idle stop --------------------------------------------------------------------

#[test]
fn an_empty_room_stops_after_30_seconds_and_not_before() {
    let mut room = Room::open(25);
    let started = room.now;
    assert_eq!(room.deadline(), Some(started + IDLE_STOP_AFTER));
    room.advance(IDLE_STOP_AFTER - Duration::from_millis(1));
    room.handle(Input::Timeout);
    assert!(!room.state.is_stopped());

    // Someone comes and goes: the 30 s start again from the leave.
    room.join(1, "ada", "Ada");
    assert!(
        room.deadline().unwrap() <= room.now + TICK,
        "ticking, not idle"
    );
    room.advance(Duration::from_secs(5));
    room.command(RoomCommand::Leave { member: 1 });
    let left_at = room.now;
    room.take();
    assert_eq!(room.deadline(), Some(left_at + IDLE_STOP_AFTER));
    room.now = left_at + IDLE_STOP_AFTER;
    room.handle(Input::Timeout);
    assert!(room.take().iter().any(|o| matches!(o, Output::Stop)));
    assert!(room.state.is_stopped());
    assert!(room.state.poll_output().is_none(), "nothing after the stop");
}

#[test]
fn a_room_with_a_join_under_way_is_not_idle() {
    let mut room = Room::open(25);
    room.ask_to_join(1, "ada", "Ada");
    assert_eq!(room.deadline(), None, "no timer while the replay is read");
    room.advance(IDLE_STOP_AFTER * 2);
    room.handle(Input::Timeout);
    assert!(!room.state.is_stopped());
}

// Admission ---------------------------------------------------------------------

#[test]
fn capacity_counts_people_not_clients() {
    let mut room = Room::open(2);
    room.join(1, "ada", "Ada");
    room.join(2, "bo", "Bo");
    let mut answer = room.ask_to_join(3, "cy", "Cy");
    let refused = refusal(&mut answer, room.take());
    assert_eq!(refused.code, ErrorCode::RoomFull);
    assert!(
        refused.reason.contains("holds 2 people"),
        "{}",
        refused.reason
    );
    // Ada's second client takes no place.
    room.join(4, "ada", "Ada");
    // A join admitted and still reading its replay holds its place.
    room.command(RoomCommand::Leave { member: 2 });
    room.take();
    room.ask_to_join(5, "dee", "Dee");
    let mut answer = room.ask_to_join(6, "eve", "Eve");
    let refused = refusal(&mut answer, room.take());
    assert_eq!(refused.code, ErrorCode::RoomFull);
}

#[test]
fn a_locked_room_lets_in_only_those_already_in_and_moderators() {
    let governance = Governance {
        owner_user_id: Some(OWNER.into()),
        moderators: vec!["mod".into()],
        locked: true,
    };
    let mut room = Room::loaded(25, governance, 0);
    let mut answer = room.ask_to_join(1, "ada", "Ada");
    let refused = refusal(&mut answer, room.take());
    assert_eq!(refused.code, ErrorCode::RoomLocked);
    room.join(2, OWNER, "Owner");
    room.join(3, "mod", "Mod");
    room.join(4, OWNER, "Owner");
}

#[test]
fn a_removed_user_stays_out_until_its_ban_ends() {
    let mut room = Room::open(25);
    let until = room.now + Duration::from_secs(90);
    let mut answer = room.ask_to_join_with(1, "ada", "Ada", None, Some(until));
    let refused = refusal(&mut answer, room.take());
    assert_eq!(refused.code, ErrorCode::Removed);
    assert!(
        refused.reason.contains("in 2 minutes"),
        "rounded up: {}",
        refused.reason
    );
    let expected_wall = crate::time::rfc3339(START_UNIX_MS + 90_000);
    assert!(
        refused.reason.contains(&expected_wall),
        "{}",
        refused.reason
    );
    // Once the ban ended, in.
    room.now = until;
    room.ask_to_join_with(2, "ada", "Ada", None, Some(until));
    room.answer_replay(Vec::new(), false);
    joined_reply(&room.take(), 2);
}

#[test]
fn a_join_with_a_bad_name_is_refused_with_the_reason() {
    let mut room = Room::open(25);
    let mut answer = room.ask_to_join(1, "ada", "   ");
    let refused = refusal(&mut answer, room.take());
    assert_eq!(refused.code, ErrorCode::InvalidPayload);
}

// Moderation ------------------------------------------------------------------

#[test]
fn who_may_moderate_whom() {
    let governance = Governance {
        owner_user_id: Some(OWNER.into()),
        moderators: vec!["mod".into(), "mod2".into()],
        locked: false,
    };
    let mut room = Room::loaded(25, governance, 0);
    room.join(1, OWNER, "Owner");
    room.join(2, "mod", "Mod");
    room.join(3, "ada", "Ada");
    room.join(4, "mod2", "Mod Two");
    room.take();
    let cases: [(MemberId, ModeratePush, Option<&str>); 6] = [
        (
            3,
            ModeratePush::Lock { locked: true },
            Some("only the room's owner and the moderators"),
        ),
        (
            2,
            ModeratePush::Moderator {
                user_id: "ada".into(),
                moderator: true,
            },
            Some("only the room's owner names"),
        ),
        (
            2,
            ModeratePush::Remove {
                user_id: OWNER.into(),
            },
            Some("owner cannot be muted or removed"),
        ),
        (
            2,
            ModeratePush::Mute {
                user_id: "mod2".into(),
                muted: true,
            },
            Some("only by the room's owner"),
        ),
        (
            1,
            ModeratePush::Moderator {
                user_id: OWNER.into(),
                moderator: true,
            },
            Some("the owner already runs the room"),
        ),
        (
            2,
            ModeratePush::Mute {
                user_id: "ada".into(),
                muted: true,
            },
            None,
        ),
    ];
    for (i, (by, act, refusal)) in cases.into_iter().enumerate() {
        let msg_ref = format!("r{i}");
        room.moderate(by, &msg_ref, act.clone());
        let outputs = room.take();
        let (status, response) = reply_to(&outputs, &msg_ref);
        match refusal {
            Some(reason) => {
                assert_eq!(status, "error", "{act:?}");
                assert_eq!(response["code"], "forbidden");
                assert!(
                    response["reason"].as_str().unwrap().contains(reason),
                    "{act:?}: {response}"
                );
                assert!(events_to(&outputs, 1, "moderation").is_empty());
            }
            None => {
                assert_eq!(status, "ok", "{act:?}: {response}");
                let notices = events_to(&outputs, 1, "moderation");
                assert_eq!(notices.len(), 1);
                assert_eq!(notices[0]["target_name"], "Ada");
            }
        }
    }
}

#[test]
fn a_moderator_mute_reaches_the_sfu_and_sticks_across_a_rejoin() {
    let mut room = Room::open(25);
    room.join(1, OWNER, "Owner");
    room.join(2, "ada", "Ada");
    room.take();
    room.moderate(
        1,
        "m",
        ModeratePush::Mute {
            user_id: "ada".into(),
            muted: true,
        },
    );
    let outputs = room.take();
    assert!(outputs.iter().any(|o| matches!(
        o,
        Output::Voice(VoiceEffect::SetMuted {
            member: 2,
            muted: true
        })
    )));
    // Ada cannot unmute herself.
    room.command(RoomCommand::SetMuted {
        member: 2,
        msg_ref: "u".into(),
        muted: false,
    });
    let (status, response) = reply_to(&room.take(), "u");
    assert_eq!(
        (status.as_str(), &response["code"]),
        ("error", &json!("forbidden"))
    );
    // A rejoin is muted before its connection hears it is in.
    room.command(RoomCommand::Leave { member: 2 });
    room.ask_to_join(3, "ada", "Ada");
    room.answer_replay(Vec::new(), false);
    let outputs = room.take();
    let muted_at = outputs
        .iter()
        .position(|o| {
            matches!(
                o,
                Output::Voice(VoiceEffect::SetMuted {
                    member: 3,
                    muted: true
                })
            )
        })
        .expect("muted at the SFU");
    let joined_at = outputs
        .iter()
        .position(|o| matches!(o, Output::Joined { .. }))
        .unwrap();
    assert!(muted_at < joined_at);
    assert_eq!(joined_reply(&outputs, 3)["slot"], 2);
}

#[test]
fn a_removal_bans_closes_every_client_and_answers_later_pushes() {
    let mut room = Room::open(25);
    room.join(1, OWNER, "Owner");
    room.join(2, "ada", "Ada");
    room.join(3, "ada", "Ada");
    room.take();
    room.moderate(
        1,
        "rm",
        ModeratePush::Remove {
            user_id: "ada".into(),
        },
    );
    let outputs = room.take();
    let ban = outputs
        .iter()
        .find_map(|o| match o {
            Output::Ban { user_id, until } => Some((user_id.clone(), *until)),
            _ => None,
        })
        .expect("a ban");
    assert_eq!(ban.0, "ada");
    assert_eq!(
        ban.1 - room.now,
        Duration::from_secs(roomscale_protocol::limits::REMOVAL_BAN_SECONDS)
    );
    for member in [2, 3] {
        let closes = events_to(&outputs, member, "phx_close");
        assert_eq!(closes.len(), 1, "member {member}");
        assert_eq!(closes[0]["code"], "removed");
    }
    assert_eq!(reply_to(&outputs, "rm").0, "ok");
    assert_eq!(events_to(&outputs, 1, "moderation").len(), 1);
    // The closed channel's pushes get the reason until its connection leaves.
    room.chat(2, "late", "hello?");
    let (status, response) = reply_to(&room.take(), "late");
    assert_eq!(
        (status.as_str(), &response["code"]),
        ("error", &json!("removed"))
    );
    room.command(RoomCommand::Leave { member: 2 });
    room.chat(2, "later", "hello?");
    assert!(room.take().is_empty());
}

#[test]
fn a_lock_holds_only_once_stored() {
    let mut room = Room::open(25);
    room.join(1, OWNER, "Owner");
    room.take();
    room.moderate(1, "l1", ModeratePush::Lock { locked: true });
    let (id, write) = room.expect_write();
    assert_eq!(write, StorageWrite::Lock { locked: true });
    assert!(room.take().is_empty(), "nothing said before it is stored");
    room.handle(Input::Written {
        id,
        result: Err("read-only database".into()),
    });
    let (status, response) = reply_to(&room.take(), "l1");
    assert_eq!(status, "error");
    assert!(
        response["reason"]
            .as_str()
            .unwrap()
            .contains("nothing changed")
    );
    let mut answer = room.ask_to_join(2, "ada", "Ada");
    room.answer_replay(Vec::new(), false);
    drop(answer.try_recv());
    joined_reply(&room.take(), 2);

    room.moderate(1, "l2", ModeratePush::Lock { locked: true });
    let (id, _) = room.expect_write();
    room.handle(Input::Written {
        id,
        result: Ok(None),
    });
    let outputs = room.take();
    assert_eq!(reply_to(&outputs, "l2").0, "ok");
    let notices = events_to(&outputs, 2, "moderation");
    assert_eq!(notices[0]["governance"]["locked"], true);
    let mut answer = room.ask_to_join(3, "bo", "Bo");
    assert_eq!(
        refusal(&mut answer, room.take()).code,
        ErrorCode::RoomLocked
    );
}

#[test]
fn naming_a_moderator_is_stored_then_lifts_its_ban_and_changes_its_role() {
    let mut room = Room::open(25);
    room.join(1, OWNER, "Owner");
    room.join(2, "ada", "Ada");
    room.take();
    room.moderate(
        1,
        "n",
        ModeratePush::Moderator {
            user_id: "ada".into(),
            moderator: true,
        },
    );
    let (id, write) = room.expect_write();
    assert_eq!(
        write,
        StorageWrite::Moderator {
            user_id: "ada".into(),
            moderator: true
        }
    );
    room.handle(Input::Written {
        id,
        result: Ok(None),
    });
    let outputs = room.take();
    assert!(
        outputs
            .iter()
            .any(|o| matches!(o, Output::Unban { user_id } if user_id == "ada"))
    );
    let diffs = events_to(&outputs, 1, "presence_diff");
    assert_eq!(diffs[0]["joins"]["ada"]["metas"][0]["role"], "moderator");
    assert_eq!(reply_to(&outputs, "n").0, "ok");
}

// Persisting -------------------------------------------------------------------

#[test]
fn a_chat_is_acknowledged_and_broadcast_only_once_stored() {
    let mut room = Room::open(25);
    room.join(1, "ada", "Ada");
    room.join(2, "bo", "Bo");
    room.take();
    room.advance(Duration::from_secs(2));
    room.chat(1, "c", "hello");
    let (id, write) = room.expect_write();
    match write {
        StorageWrite::Event {
            user_id,
            name,
            sent_at_ms,
            ..
        } => {
            assert_eq!((user_id.as_str(), name.as_str()), ("ada", "Ada"));
            assert_eq!(
                sent_at_ms,
                START_UNIX_MS + 2_000,
                "wall time from the input's time"
            );
        }
        other => panic!("an event write, got {other:?}"),
    }
    assert!(room.take().is_empty(), "no ack before it is stored");
    room.handle(Input::Written {
        id,
        result: Ok(Some(chat_event(9, "hello"))),
    });
    let outputs = room.take();
    let (status, response) = reply_to(&outputs, "c");
    assert_eq!((status.as_str(), &response["id"]), ("ok", &json!(9)));
    for member in [1, 2] {
        assert_eq!(
            events_to(
                &outputs,
                member,
                roomscale_protocol::events::ROOM_EVENT_EVENT
            )[0]["id"],
            9
        );
    }

    room.chat(1, "c2", "again");
    let (id, _) = room.expect_write();
    room.handle(Input::Written {
        id,
        result: Err("disk full".into()),
    });
    let outputs = room.take();
    assert_eq!(reply_to(&outputs, "c2").0, "error");
    assert!(events_to(&outputs, 2, roomscale_protocol::events::ROOM_EVENT_EVENT).is_empty());
}

#[test]
fn one_person_flooding_spends_only_its_own_share() {
    let mut room = Room::open(25);
    room.join(1, "ada", "Ada");
    room.join(2, "bo", "Bo");
    room.take();
    let mut refused = 0;
    for i in 0..30 {
        room.chat(1, &format!("a{i}"), "flood");
        refused += room
            .take()
            .iter()
            .filter(|o| matches!(o, Output::Send { .. }))
            .count();
    }
    assert_eq!(refused, 10, "a burst of 20 a person");
    room.chat(2, "bo", "still here");
    assert!(
        room.take()
            .iter()
            .any(|o| matches!(o, Output::Write { .. }))
    );
    // A second later Ada has ten more.
    room.advance(Duration::from_secs(1));
    let mut stored = 0;
    for i in 0..15 {
        room.chat(1, &format!("b{i}"), "more");
        stored += room
            .take()
            .iter()
            .filter(|o| matches!(o, Output::Write { .. }))
            .count();
    }
    assert_eq!(stored, 10);
}

#[test]
fn a_room_flooded_by_many_is_held_to_its_own_rate() {
    let mut room = Room::open(25);
    for member in 1..=5 {
        room.join(member, &format!("user{member}"), &format!("User {member}"));
    }
    room.take();
    let mut stored = 0;
    let mut last = None;
    for i in 0..60 {
        let member = 1 + i % 5;
        room.chat(member, &format!("r{i}"), "many");
        let outputs = room.take();
        stored += outputs
            .iter()
            .filter(|o| matches!(o, Output::Write { .. }))
            .count();
        if let Some(Output::Send { frame, .. }) = outputs.last() {
            last = Some(text(frame).payload);
        }
    }
    assert_eq!(stored, 40, "the room's burst");
    let last = last.unwrap();
    assert_eq!(last["response"]["code"], "rate_limited");
    assert!(
        last["response"]["reason"]
            .as_str()
            .unwrap()
            .contains("as fast as it may")
    );
}

// History -----------------------------------------------------------------------

#[test]
fn history_pages_are_read_off_the_loop_two_at_a_time() {
    let mut room = Room::loaded(25, owned_by(OWNER), 50);
    room.join(1, "ada", "Ada");
    room.take();
    room.command(RoomCommand::History {
        member: 1,
        msg_ref: "h1".into(),
        before_id: 1000,
    });
    let first = room.expect_read(StorageRead::Events {
        after_id: 0,
        before_id: 51,
    });
    room.command(RoomCommand::History {
        member: 1,
        msg_ref: "h2".into(),
        before_id: 20,
    });
    room.expect_read(StorageRead::Events {
        after_id: 0,
        before_id: 20,
    });
    room.command(RoomCommand::History {
        member: 1,
        msg_ref: "h3".into(),
        before_id: 10,
    });
    let (status, response) = reply_to(&room.take(), "h3");
    assert_eq!(
        (status.as_str(), &response["code"]),
        ("error", &json!("rate_limited"))
    );
    room.handle(Input::Read {
        id: first,
        result: Ok(ReadResult::Events(EventPage {
            events: vec![chat_event(49, "a"), chat_event(50, "b")],
            more: true,
            bytes: 0,
        })),
    });
    let (status, response) = reply_to(&room.take(), "h1");
    assert_eq!(status, "ok");
    assert_eq!(response["more"], true);
    assert_eq!(response["events"].as_array().unwrap().len(), 2);
    // A reader is free again.
    room.command(RoomCommand::History {
        member: 1,
        msg_ref: "h4".into(),
        before_id: 5,
    });
    room.expect_read(StorageRead::Events {
        after_id: 0,
        before_id: 5,
    });
}

// Profile, speaking ---------------------------------------------------------

#[test]
fn a_profile_change_is_normalised_and_shown_to_everyone() {
    let mut room = Room::open(25);
    room.join(1, "ada", "Ada");
    room.join(2, "bo", "Bo");
    room.take();
    room.command(RoomCommand::UpdateProfile {
        member: 1,
        msg_ref: "p".into(),
        update: UpdateProfilePush {
            name: Some("  Ada L.  ".into()),
            colour: None,
        },
    });
    let outputs = room.take();
    assert_eq!(reply_to(&outputs, "p").0, "ok");
    let diff = &events_to(&outputs, 2, "presence_diff")[0];
    assert_eq!(diff["joins"]["ada"]["metas"][0]["name"], "Ada L.");
    assert_eq!(diff["leaves"]["ada"]["metas"][0]["name"], "Ada");
    assert_eq!(
        diff["joins"]["ada"]["metas"][0]["phx_ref_prev"],
        diff["leaves"]["ada"]["metas"][0]["phx_ref"]
    );
}

#[test]
fn speaking_goes_to_everyone_the_speaker_too() {
    let mut room = Room::open(25);
    room.join(1, "ada", "Ada");
    room.join(2, "bo", "Bo");
    room.take();
    room.command(RoomCommand::Speaking {
        member: 1,
        speaking: true,
    });
    let outputs = room.take();
    for member in [1, 2] {
        let speaking = events_to(&outputs, member, "speaking");
        assert_eq!(speaking, [json!({"user_id": "ada", "speaking": true})]);
    }
}

// Close --------------------------------------------------------------------------

#[test]
fn closing_the_room_tells_everyone_refuses_joins_under_way_and_stops() {
    let mut room = Room::open(25);
    room.join(1, "ada", "Ada");
    room.join(2, "bo", "Bo");
    let mut pending = room.ask_to_join(3, "cy", "Cy");
    room.take_keep_reads();
    let reason = ErrorReply::new(ErrorCode::RoomNotFound, "this room was deleted");
    room.command(RoomCommand::Close {
        reason: reason.clone(),
    });
    let outputs = room.take();
    for member in [1, 2] {
        let closes = events_to(&outputs, member, "phx_close");
        assert_eq!(closes.len(), 1);
        assert_eq!(closes[0]["reason"], "this room was deleted");
    }
    assert!(outputs.iter().any(|o| matches!(o, Output::Stop)));
    assert_eq!(refusal(&mut pending, outputs), reason);
    assert!(room.state.is_stopped());
    // Commands after the stop do nothing.
    room.chat(1, "x", "anyone?");
    assert!(room.take().is_empty());
}

#[test]
fn a_write_finished_after_the_stop_is_still_acknowledged() {
    let mut room = Room::open(25);
    room.join(1, "ada", "Ada");
    room.take();
    room.chat(1, "c", "last words");
    let (id, _) = room.expect_write();
    room.command(RoomCommand::Close {
        reason: ErrorReply::new(ErrorCode::RoomNotFound, "deleted"),
    });
    room.take();
    room.handle(Input::Written {
        id,
        result: Ok(Some(chat_event(1, "last words"))),
    });
    assert_eq!(reply_to(&room.take(), "c").0, "ok");
}

impl Room {
    /// Takes the outputs but keeps reads not yet answered.
    fn take_keep_reads(&mut self) {
        self.outputs.retain(|o| matches!(o, Output::Read { .. }));
    }

    /// Takes the outputs but writes under way, accepting the join of
    /// `member` in them.
    fn take_joined_and_accept(&mut self, member: MemberId) {
        let (writes, others): (Vec<_>, Vec<_>) = self
            .take()
            .into_iter()
            .partition(|o| matches!(o, Output::Write { .. }));
        self.outputs = writes;
        for output in others {
            if let Output::Joined {
                member: m,
                accepted,
                ..
            } = output
                && m == member
            {
                // The test may have let go of the connection's end.
                let _ = accepted.send(Ok(()));
            }
        }
    }
}

#[test]
fn closing_a_room_still_loading_refuses_the_joins_waiting_for_it() {
    let mut room = Room::loading(25);
    room.expect_read(StorageRead::Room);
    let mut answer = room.ask_to_join(1, "ada", "Ada");
    let reason = ErrorReply::new(ErrorCode::RoomNotFound, "this room was deleted");
    room.command(RoomCommand::Close {
        reason: reason.clone(),
    });
    assert_eq!(refusal(&mut answer, room.take()), reason);
    assert!(room.state.is_stopped());
}

#[test]
fn a_channel_close_carries_the_join_ref_as_its_ref() {
    let mut room = Room::open(25);
    room.join(1, OWNER, "Owner");
    room.join(2, "ada", "Ada");
    room.take();
    room.moderate(
        1,
        "rm",
        ModeratePush::Remove {
            user_id: "ada".into(),
        },
    );
    let close = room
        .take()
        .iter()
        .find_map(|o| match o {
            Output::Send {
                member: 2, frame, ..
            } => Some(text(frame)),
            _ => None,
        })
        .expect("a frame to the removed member");
    assert_eq!(close.event, "phx_close");
    assert_eq!(close.join_ref.as_deref(), Some("j2"));
    assert_eq!(close.msg_ref.as_deref(), Some("j2"));
    assert_eq!(close.topic, topic());
}

#[test]
fn ticks_go_on_while_storage_reads_and_writes_are_under_way() {
    let mut room = Room::open(25);
    room.join(1, "ada", "Ada");
    room.join(2, "bo", "Bo");
    room.take();
    // A chat being stored, a history page and a join's replay being read.
    room.chat(1, "c", "slow disk");
    room.command(RoomCommand::History {
        member: 2,
        msg_ref: "h".into(),
        before_id: 10,
    });
    room.ask_to_join(3, "cy", "Cy");
    let pending = room.take();
    assert_eq!(
        pending
            .iter()
            .filter(|o| matches!(o, Output::Read { .. } | Output::Write { .. }))
            .count(),
        3
    );
    for x in 0..30 {
        room.pose(1, x as f32 / 10.0);
        room.now = room.deadline().unwrap();
        room.handle(Input::Timeout);
        assert_eq!(pose_frames(&room.take()), [(vec![2], vec![1])], "tick {x}");
    }
}

// Shared objects ----------------------------------------------------------------

fn cube_at(position: [f32; 3]) -> ObjectState {
    ObjectState {
        kind: ObjectKind::Cube,
        colour: "#cc3333".into(),
        position,
        orientation: [0.0, 0.0, 0.0, 1.0],
    }
}

/// On the table, as the starter props lie.
const ON_TABLE: [f32; 3] = [0.0, 0.8, -1.6];

/// An object pose as a test reads it: (handle, held, x).
type SeenObject = (u16, bool, f32);

/// Each pose frame's object poses: (who gets it, the objects).
fn object_frames(outputs: &[Output]) -> Vec<(Vec<MemberId>, Vec<SeenObject>)> {
    pose_batches(outputs)
        .into_iter()
        .map(|(members, payload)| {
            let batch = pose::decode_batch(payload).unwrap();
            let objects: Vec<_> = batch
                .objects()
                .map(|o| {
                    (
                        o.handle,
                        o.flags.contains(ObjectPoseFlags::HELD),
                        o.position[0],
                    )
                })
                .collect();
            (members, objects)
        })
        .collect()
}

/// The handle a granted grab answered with.
fn granted(outputs: &[Output], msg_ref: &str) -> u16 {
    let (status, response) = reply_to(outputs, msg_ref);
    assert_eq!(status, "ok", "{response}");
    response["handle"].as_u64().unwrap() as u16
}

fn refused(outputs: &[Output], msg_ref: &str) -> Value {
    let (status, response) = reply_to(outputs, msg_ref);
    assert_eq!(status, "error", "{response}");
    response
}

/// Every object event write asked for: (user_id, object_id, state).
fn object_writes(outputs: &[Output]) -> Vec<(u64, String, RoomEventBody)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Write {
                id,
                write: StorageWrite::Event { user_id, body, .. },
            } if !matches!(body, RoomEventBody::Chat { .. }) => {
                Some((*id, user_id.clone(), body.clone()))
            }
            _ => None,
        })
        .collect()
}

fn stored(room: &mut Room, write_id: u64, event_id: u64, user_id: &str, body: RoomEventBody) {
    room.outputs
        .retain(|o| !matches!(o, Output::Write { id, .. } if *id == write_id));
    room.handle(Input::Written {
        id: write_id,
        result: Ok(Some(RoomEvent {
            id: event_id,
            user_id: user_id.into(),
            name: user_id.into(),
            sent_at: START_UNIX_MS,
            body,
        })),
    });
}

/// [`stored`] for a write as [`object_writes`] lists it.
fn store(room: &mut Room, write: &(u64, String, RoomEventBody), event_id: u64) {
    let (id, user_id, body) = write.clone();
    stored(room, id, event_id, &user_id, body);
}

/// A room with `objects`, Ada (member 1) and then `others` (member, user id,
/// name) joined, where Ada has just grabbed cube-1: the room, outputs taken,
/// and the cube's handle.
fn ada_holding_cube_1(
    objects: &[(&str, [f32; 3])],
    others: &[(MemberId, &str, &str)],
) -> (Room, u16) {
    let mut room = Room::with_objects(objects);
    room.join(1, "ada", "Ada");
    for &(member, user_id, name) in others {
        room.join(member, user_id, name);
    }
    room.grab(1, "g", "cube-1");
    let handle = granted(&room.take(), "g");
    (room, handle)
}

const BO: (MemberId, &str, &str) = (2, "bo", "Bo");
const CY: (MemberId, &str, &str) = (3, "cy", "Cy");

fn rest_of(body: &RoomEventBody) -> ObjectState {
    match body {
        RoomEventBody::ObjectSet { state, .. } => ObjectState::from_value(state).unwrap(),
        other => panic!("an object_set, got {other:?}"),
    }
}

#[test]
fn the_join_reply_lists_objects_with_handles_and_holders() {
    let mut room = Room::with_objects(&[("cube-1", ON_TABLE), ("ball-1", [0.3, 0.8, -1.6])]);
    let ada = room.join(1, "ada", "Ada");
    let objects = ada["objects"].as_array().unwrap();
    let ids: Vec<_> = objects.iter().map(|o| o["object_id"].clone()).collect();
    assert_eq!(ids, [json!("ball-1"), json!("cube-1")]);
    assert!(objects.iter().all(|o| o.get("holder").is_none()));
    assert_ne!(objects[0]["handle"], objects[1]["handle"]);
    assert_eq!(
        objects[1]["state"]["position"][1].as_f64().unwrap() as f32,
        0.8
    );

    room.grab(1, "g", "cube-1");
    room.take();
    let bo = room.join(2, "bo", "Bo");
    let cube = &bo["objects"][1];
    assert_eq!(cube["object_id"], "cube-1");
    assert_eq!(cube["holder"]["user_id"], "ada");
    assert_eq!(cube["holder"]["name"], "Ada");
    assert_eq!(cube["holder"]["slot"], 1);
    assert_eq!(cube["holder"]["throwing"], false);
}

#[test]
fn two_grabs_at_once_one_wins_and_the_other_hears_who_holds_it() {
    let mut room = Room::with_objects(&[("cube-1", ON_TABLE)]);
    room.join(1, "ada", "Ada");
    room.join(2, "bo", "Bo");
    room.take();
    room.grab(1, "a", "cube-1");
    room.grab(2, "b", "cube-1");
    let outputs = room.take();
    let handle = granted(&outputs, "a");
    let refusal = refused(&outputs, "b");
    assert_eq!(refusal["code"], "object_held");
    assert_eq!(refusal["holder"]["user_id"], "ada");
    assert_eq!(refusal["holder"]["throwing"], false);
    assert!(refusal["reason"].as_str().unwrap().contains("Ada"));
    for member in [1, 2] {
        let pushes = events_to(&outputs, member, "object_holder");
        assert_eq!(pushes.len(), 1, "one holder change, heard by everyone");
        assert_eq!(pushes[0]["handle"], handle);
        assert_eq!(pushes[0]["holder"]["user_id"], "ada");
    }
    // A grab of one's own held object changes nothing.
    room.grab(1, "again", "cube-1");
    let outputs = room.take();
    assert_eq!(granted(&outputs, "again"), handle);
    assert!(events_to(&outputs, 2, "object_holder").is_empty());
    // An unknown object.
    room.grab(2, "x", "anvil-9");
    assert_eq!(refused(&room.take(), "x")["code"], "object_not_found");
}

#[test]
fn a_grab_during_a_throw_is_a_catch_and_the_throwers_set_is_refused() {
    let (mut room, handle) = ada_holding_cube_1(&[("cube-1", ON_TABLE)], &[BO]);
    room.release(1, "r", "cube-1");
    let outputs = room.take();
    assert_eq!(reply_to(&outputs, "r").0, "ok");
    let thrown = events_to(&outputs, 2, "object_holder");
    assert_eq!(thrown[0]["holder"]["throwing"], true);

    room.pose_with_objects(1, 0.0, &[(handle, [0.5, 1.2, -1.0])]);
    room.grab(2, "catch", "cube-1");
    let outputs = room.take();
    assert_eq!(granted(&outputs, "catch"), handle);
    let caught = events_to(&outputs, 1, "object_holder");
    assert_eq!(caught.len(), 1, "the thrower hears who caught it");
    assert_eq!(caught[0]["holder"]["user_id"], "bo");
    assert_eq!(caught[0]["holder"]["throwing"], false);

    // The thrower's flight ends with its object_set: refused, the catcher holds it.
    room.set_object(1, "late", "cube-1", [0.5, 0.05, 0.0]);
    let outputs = room.take();
    let refusal = refused(&outputs, "late");
    assert_eq!(refusal["code"], "object_held");
    assert_eq!(refusal["holder"]["user_id"], "bo");
    assert!(object_writes(&outputs).is_empty(), "nothing stored");
    // And its flight's poses are no longer relayed.
    room.pose_with_objects(1, 0.0, &[(handle, [0.6, 1.0, -1.0])]);
    room.run_until(room.now + TICK);
    assert!(
        object_frames(&room.take())
            .iter()
            .all(|(_, objects)| objects.is_empty())
    );
}

#[test]
fn a_throw_from_a_client_that_vanishes_is_settled_once_by_the_server() {
    let (mut room, handle) = ada_holding_cube_1(&[("cube-1", ON_TABLE)], &[BO]);
    room.release(1, "r", "cube-1");
    // Two poses 33 ms apart, moving +X at 3 m/s from 1.5 m up.
    room.pose_with_objects(1, 0.0, &[(handle, [0.0, 1.5, 0.0])]);
    room.advance(Duration::from_millis(33));
    room.pose_with_objects(1, 0.0, &[(handle, [0.099, 1.5, 0.0])]);
    room.take();
    // The page closes: its connection is gone.
    room.handle(Input::Unreachable { member: 1 });
    let outputs = room.take();
    let dropped = events_to(&outputs, 2, "object_holder");
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0]["object_id"], "cube-1");
    assert!(dropped[0].get("holder").is_none(), "nobody holds it now");
    let writes = object_writes(&outputs);
    assert_eq!(writes.len(), 1, "one rest: {writes:?}");
    let (write_id, user_id, body) = writes[0].clone();
    assert_eq!(user_id, "ada", "stored as the lost holder's");
    let rest = rest_of(&body);
    assert!(rest.validate().is_ok());
    assert!(
        rest.position[1] < 0.1,
        "it fell to the floor: {:?}",
        rest.position
    );
    assert!(
        rest.position[0] > 0.2,
        "it flew on in +X before it settled: {:?}",
        rest.position
    );
    // Until stored, a grab waits; nothing else is written meanwhile.
    room.grab(2, "early", "cube-1");
    let outputs = room.take();
    assert_eq!(refused(&outputs, "early")["code"], "object_held");
    room.run_until(room.now + Duration::from_secs(20));
    assert!(object_writes(&room.take()).is_empty(), "settled once");

    stored(&mut room, write_id, 7, "ada", body);
    let outputs = room.take();
    let events = events_to(&outputs, 2, roomscale_protocol::events::ROOM_EVENT_EVENT);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["body"]["type"], "object_set");
    room.grab(2, "now", "cube-1");
    assert_eq!(granted(&room.take(), "now"), handle);
    let cy = room.join(3, "cy", "Cy");
    let rested = ObjectState::from_value(&cy["objects"][0]["state"]).unwrap();
    assert_eq!(rested, rest);
}

#[test]
fn a_holder_silent_for_2_s_drops_it_where_it_was() {
    let (mut room, handle) = ada_holding_cube_1(&[("cube-1", ON_TABLE)], &[BO]);
    // Held above the floor beside the table, streamed every 500 ms for a while.
    for _ in 0..6 {
        room.pose_with_objects(1, 0.0, &[(handle, [2.0, 1.0, 1.0])]);
        room.run_until(room.now + Duration::from_millis(500));
    }
    assert!(object_writes(&room.take()).is_empty(), "kept alive");
    let last_heard = room.now;
    room.pose_with_objects(1, 0.0, &[(handle, [2.0, 1.0, 1.0])]);
    // Its avatar pose alone keeps nothing alive.
    room.command(RoomCommand::Pose {
        member: 1,
        pose: pose::encode_pose(0, &pose_at(0.0)),
        objects: Default::default(),
    });
    room.run_until(last_heard + Duration::from_millis(1_999));
    assert!(object_writes(&room.take()).is_empty(), "not before 2 s");
    room.run_until(last_heard + Duration::from_millis(2_000));
    let outputs = room.take();
    let writes = object_writes(&outputs);
    assert_eq!(writes.len(), 1);
    let rest = rest_of(&writes[0].2);
    assert!(
        (rest.position[0] - 2.0).abs() < 0.01 && (rest.position[2] - 1.0).abs() < 0.01,
        "dropped straight down: {:?}",
        rest.position
    );
    assert!(
        rest.position[1] < 0.1,
        "onto the floor: {:?}",
        rest.position
    );
    assert!(
        events_to(&outputs, 1, "object_holder")[0]
            .get("holder")
            .is_none()
    );
}

#[test]
fn a_flight_over_15_s_is_ended_by_the_server() {
    let (mut room, handle) = ada_holding_cube_1(&[("cube-1", ON_TABLE)], &[]);
    room.release(1, "r", "cube-1");
    let released = room.now;
    let mut writes = Vec::new();
    while room.now < released + Duration::from_secs(16) && writes.is_empty() {
        room.pose_with_objects(1, 0.0, &[(handle, [1.0, 2.0, 1.0])]);
        room.run_until(room.now + Duration::from_millis(400));
        writes = object_writes(&room.take());
    }
    assert_eq!(writes.len(), 1, "the server ended the flight");
    assert!(room.now >= released + Duration::from_secs(15));
    assert!(room.now < released + Duration::from_millis(15_400));
}

#[test]
fn only_the_holder_releases_sets_or_removes_a_held_object() {
    let mut room = Room::with_objects(&[("cube-1", ON_TABLE)]);
    room.join(1, "ada", "Ada");
    room.join(2, "bo", "Bo");
    room.release(2, "free", "cube-1");
    assert_eq!(refused(&room.take(), "free")["code"], "forbidden");
    room.grab(1, "g", "cube-1");
    room.take();
    room.release(2, "r", "cube-1");
    room.set_object(2, "s", "cube-1", [1.0, 0.05, 1.0]);
    room.remove_object(2, "d", "cube-1");
    let outputs = room.take();
    for msg_ref in ["r", "s", "d"] {
        let refusal = refused(&outputs, msg_ref);
        assert_eq!(refusal["code"], "object_held", "{msg_ref}");
        assert_eq!(refusal["holder"]["user_id"], "ada");
    }
    assert!(object_writes(&outputs).is_empty());
    assert!(events_to(&outputs, 1, "object_holder").is_empty());

    // The holder puts it down: stored, then everyone hears it, then it is free.
    room.set_object(1, "down", "cube-1", [1.0, 0.05, 1.0]);
    let outputs = room.take();
    let writes = object_writes(&outputs);
    assert_eq!(writes.len(), 1);
    room.grab(2, "wait", "cube-1");
    assert_eq!(refused(&room.take(), "wait")["code"], "object_held");
    store(&mut room, &writes[0], 3);
    let outputs = room.take();
    assert_eq!(reply_to(&outputs, "down").1["id"], 3);
    room.grab(2, "mine", "cube-1");
    room.take();
    room.remove_object(2, "gone", "cube-1");
    let writes = object_writes(&room.take());
    store(&mut room, &writes[0], 4);
    room.take();
    room.grab(1, "where", "cube-1");
    assert_eq!(refused(&room.take(), "where")["code"], "object_not_found");
    room.remove_object(1, "twice", "cube-1");
    assert_eq!(refused(&room.take(), "twice")["code"], "object_not_found");
}

#[test]
fn a_room_holds_at_most_64_objects() {
    let mut room = Room::open(25);
    room.join(1, "ada", "Ada");
    room.take();
    for i in 0..MAX_OBJECTS_PER_ROOM {
        room.advance(Duration::from_secs(1));
        room.set_object(1, &format!("s{i}"), &format!("cube-{i}"), [0.0, 0.05, 0.0]);
    }
    let outputs = room.take();
    let writes = object_writes(&outputs);
    assert_eq!(writes.len(), MAX_OBJECTS_PER_ROOM, "spawns under way count");
    room.set_object(1, "one-more", "cube-x", [0.0, 0.05, 0.0]);
    let refusal = refused(&room.take(), "one-more");
    assert_eq!(refusal["code"], "limit_reached");
    for (n, write) in writes.iter().enumerate() {
        store(&mut room, write, n as u64 + 1);
    }
    room.take();
    room.advance(Duration::from_secs(1));
    room.set_object(1, "still", "cube-y", [0.0, 0.05, 0.0]);
    assert_eq!(refused(&room.take(), "still")["code"], "limit_reached");
    // Moving an existing one is no spawn.
    room.set_object(1, "move", "cube-3", [1.0, 0.05, 0.0]);
    assert_eq!(object_writes(&room.take()).len(), 1);
    let bo = room.join(2, "bo", "Bo");
    assert_eq!(
        bo["objects"].as_array().unwrap().len(),
        MAX_OBJECTS_PER_ROOM
    );
}

#[test]
fn object_poses_from_anyone_but_the_holder_are_ignored_and_counted() {
    let (mut room, cube) =
        ada_holding_cube_1(&[("cube-1", ON_TABLE), ("ball-1", ON_TABLE)], &[BO, CY]);
    room.run_until(room.now + TICK);
    room.take();
    // Bo streams Ada's cube, a free ball's handle and a made-up handle.
    room.pose_with_objects(2, 0.0, &[(cube, [9.0, 1.0, 0.0]), (999, [9.0, 1.0, 0.0])]);
    room.pose_with_objects(2, 0.0, &[(cube - 1, [9.0, 1.0, 0.0])]);
    let ignored: u32 = room
        .take()
        .iter()
        .map(|o| match o {
            Output::ObjectPosesIgnored(n) => *n,
            _ => 0,
        })
        .sum();
    assert_eq!(ignored, 3);
    room.run_until(room.now + TICK);
    let frames = object_frames(&room.take());
    assert!(
        frames.iter().all(|(_, objects)| objects.is_empty()),
        "{frames:?}"
    );
}

#[test]
fn the_relay_carries_each_moving_object_once_per_tick_in_the_shared_frame() {
    let (mut room, handle) = ada_holding_cube_1(&[("cube-1", ON_TABLE)], &[BO, CY]);
    room.run_until(room.now + TICK);
    room.take();
    // Three pushes within one tick: the newest pose goes, once.
    for x in [0.1, 0.2, 0.3] {
        room.pose_with_objects(1, 0.0, &[(handle, [x, 1.0, -1.0])]);
    }
    room.pose(2, 2.0);
    let due = room.deadline().unwrap();
    room.run_until(due);
    let frames = object_frames(&room.take());
    assert_eq!(frames.len(), 1, "one shared frame: {frames:?}");
    let (to, objects) = &frames[0];
    assert_eq!(to, &vec![1, 2, 3]);
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0].0, handle);
    assert!(objects[0].1, "held");
    assert!((objects[0].2 - 0.3).abs() < 0.001);
    // Nothing new: nothing sent.
    let due = room.deadline().unwrap();
    room.run_until(due);
    assert!(object_frames(&room.take()).is_empty());
    // Thrown: flagged flying by the server, whatever the client wrote; the
    // holder alone moved, so the frame skips it.
    room.release(1, "r", "cube-1");
    room.pose_with_objects(1, 0.0, &[(handle, [0.4, 1.0, -1.0])]);
    let due = room.deadline().unwrap();
    room.run_until(due);
    let frames = object_frames(&room.take());
    assert_eq!(
        frames,
        [(vec![2, 3], vec![(handle, false, frames[0].1[0].2)])]
    );
}

#[test]
fn a_newcomer_gets_every_moving_object_where_it_is_now() {
    let (mut room, cube) = ada_holding_cube_1(&[("cube-1", ON_TABLE), ("ball-1", ON_TABLE)], &[]);
    room.pose_with_objects(1, 0.0, &[(cube, [0.7, 1.1, -1.0])]);
    room.run_until(room.now + TICK);
    room.take();
    room.join(2, "bo", "Bo");
    let due = room.deadline().unwrap();
    room.run_until(due);
    let frames = object_frames(&room.take());
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].0, vec![2]);
    assert_eq!(
        frames[0].1.len(),
        1,
        "the resting ball is in the join reply only"
    );
    assert_eq!(frames[0].1[0].0, cube);
    assert!((frames[0].1[0].2 - 0.7).abs() < 0.001);
}

#[test]
fn a_room_with_a_rest_being_stored_does_not_stop_before_it_is() {
    let (mut room, handle) = ada_holding_cube_1(&[("cube-1", ON_TABLE)], &[]);
    room.pose_with_objects(1, 0.0, &[(handle, [0.0, 1.0, 0.0])]);
    room.command(RoomCommand::Leave { member: 1 });
    let writes = object_writes(&room.take());
    assert_eq!(writes.len(), 1);
    room.advance(IDLE_STOP_AFTER * 2);
    room.handle(Input::Timeout);
    assert!(!room.state.is_stopped(), "the rest is still being stored");
    store(&mut room, &writes[0], 1);
    let stored_at = room.now;
    assert_eq!(room.deadline(), Some(stored_at + IDLE_STOP_AFTER));
    room.now = stored_at + IDLE_STOP_AFTER;
    room.handle(Input::Timeout);
    assert!(room.state.is_stopped());
}
