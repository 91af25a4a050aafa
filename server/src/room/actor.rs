//! One room's actor: the thin loop around its [`RoomState`]. It owns what the
//! state machine may not touch: the inbox of commands, the clock (read once per
//! wake-up), the storage tasks and the outputs' destinations (members'
//! outboxes, the SFU, the ban table, metrics).
//!
//! Storage never runs on the loop: reads (the room at start, a join's replay,
//! history pages) each run in a task of their own, and writes go to one writer
//! task that stores them one at a time, in order, so ids and broadcasts stay in
//! order; results come back as inputs. A slow database therefore never holds
//! up the 30 Hz pose relay.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use roomscale_protocol::events::{RoomEvent, RoomEventBody};
use roomscale_protocol::limits::{MAX_REPLAY_BYTES, MAX_REPLAYED_EVENTS};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::state::{
    Input, LoadedRoom, Output, ReadResult, Recipients, RoomState, StorageRead, StorageWrite,
    VoiceEffect,
};
use super::{Headcount, RoomCommand, RoomContext, Roster};
use crate::time::unix_millis;

/// Commands handled per wake-up beyond the first.
const COMMAND_BATCH: usize = 64;

type ReadDone = (u64, Result<ReadResult, String>);
type WriteDone = (u64, Result<Option<RoomEvent>, String>);

pub(crate) struct RoomActor {
    context: RoomContext,
    room_id: Uuid,
    roster: Roster,
    /// The members last published to `roster`.
    published: Recipients,
    state: RoomState,
    /// Where storage reads hand back their results, and where they arrive.
    reads_done: mpsc::UnboundedSender<ReadDone>,
    read_results: Option<mpsc::UnboundedReceiver<ReadDone>>,
    /// The writer task's queue; `None` once the actor stopped taking writes.
    writes: Option<mpsc::UnboundedSender<(u64, StorageWrite)>>,
    write_queue: Option<mpsc::UnboundedReceiver<(u64, StorageWrite)>>,
}

impl RoomActor {
    pub(crate) fn new(context: RoomContext, room_id: Uuid, roster: Roster) -> RoomActor {
        let (reads_done, read_results) = mpsc::unbounded_channel();
        let (writes, write_queue) = mpsc::unbounded_channel();
        let state = RoomState::new(
            room_id,
            context.settings,
            Instant::now(),
            unix_millis(SystemTime::now()),
        );
        RoomActor {
            context,
            room_id,
            roster,
            published: state.recipients().clone(),
            state,
            reads_done,
            read_results: Some(read_results),
            writes: Some(writes),
            write_queue: Some(write_queue),
        }
    }

    pub(crate) async fn run(mut self, mut commands: mpsc::Receiver<RoomCommand>) {
        let (Some(mut read_results), Some(write_queue)) =
            (self.read_results.take(), self.write_queue.take())
        else {
            unreachable!("an actor runs once");
        };
        let (writes_done, mut write_results) = mpsc::unbounded_channel();
        tokio::spawn(write_in_order(
            self.context.clone(),
            self.room_id,
            write_queue,
            writes_done,
        ));
        let mut shutdown_signal = self.context.shutdown.clone();
        let shutdown = async move {
            // An error means the sender is gone: the server is going away.
            let _ = shutdown_signal.wait_for(|stopping| *stopping).await;
        };
        tokio::pin!(shutdown);
        let mut now = Instant::now();
        loop {
            let deadline = self.carry_out(now);
            if self.state.is_stopped() {
                break;
            }
            tokio::select! {
                command = commands.recv() => {
                    let Some(command) = command else { break };
                    now = Instant::now();
                    self.command(command, now);
                    // Whatever else is queued, before waiting again.
                    for _ in 0..COMMAND_BATCH {
                        if self.state.is_stopped() {
                            break;
                        }
                        let Ok(command) = commands.try_recv() else { break };
                        self.command(command, now);
                    }
                }
                Some((id, result)) = read_results.recv() => {
                    now = Instant::now();
                    self.state.handle(Input::Read { id, result }, now);
                }
                Some((id, result)) = write_results.recv() => {
                    now = Instant::now();
                    self.state.handle(Input::Written { id, result }, now);
                }
                _ = sleep_until_some(deadline) => {
                    now = Instant::now();
                    self.state.handle(Input::Timeout, now);
                }
                _ = &mut shutdown => break,
            }
        }
        // Let queued writes finish and acknowledge them: an event that was stored
        // must be acknowledged or replayed, never silently half-done.
        self.writes = None;
        commands.close();
        while let Some((id, result)) = write_results.recv().await {
            now = Instant::now();
            self.state.handle(Input::Written { id, result }, now);
            self.carry_out(now);
        }
    }

    fn command(&mut self, command: RoomCommand, now: Instant) {
        let input = match command {
            RoomCommand::Join(request) => {
                let banned_until = self.context.bans.until(self.room_id, &request.user_id);
                Input::Join {
                    request,
                    banned_until,
                }
            }
            RoomCommand::Persist {
                body: RoomEventBody::Chat { .. },
                ..
            } => {
                self.context
                    .activity
                    .chatted(self.room_id, unix_millis(SystemTime::now()));
                Input::Command(command)
            }
            #[cfg(feature = "test-hooks")]
            RoomCommand::InjectPanic => panic!("panic injected into room {}", self.room_id),
            command => Input::Command(command),
        };
        self.state.handle(input, now);
        // Drained after every command: a member found unreachable on the way
        // leaves before the next command is looked at.
        self.carry_out(now);
    }

    /// Carries out every output the state has; returns its next deadline.
    fn carry_out(&mut self, now: Instant) -> Option<Instant> {
        let deadline = loop {
            match self.state.poll_output() {
                None => break None,
                Some(Output::Timeout(at)) => break Some(at),
                Some(output) => self.apply(output, now),
            }
        };
        if !Arc::ptr_eq(&self.published, self.state.recipients()) {
            self.published = self.state.recipients().clone();
            *self.roster.lock().expect("poisoned") = self.published.clone();
            // Members changed (a join or a leave): the room list's count follows.
            self.context.activity.people(
                self.room_id,
                Headcount::count(self.state.client_kinds()),
                unix_millis(SystemTime::now()),
            );
        }
        deadline
    }

    fn apply(&mut self, output: Output, now: Instant) {
        match output {
            Output::Send { member, to, frame } => {
                if to.outbox.send(frame).is_err() && to.outbox.overflowed() {
                    self.unreachable(member, now);
                }
            }
            Output::Broadcast { to, except, frame } => {
                let mut behind = Vec::new();
                for recipient in to.iter() {
                    if Some(recipient.member) != except
                        && recipient.address.outbox.send(frame.clone()).is_err()
                        && recipient.address.outbox.overflowed()
                    {
                        behind.push(recipient.member);
                    }
                }
                for member in behind {
                    self.unreachable(member, now);
                }
            }
            Output::Joined {
                member,
                to,
                reply,
                presence,
                accepted,
            } => {
                if to.outbox.send(reply).is_err() {
                    // A client that asks for joins but never reads them is cut
                    // off by its outbox; it does not stay a member.
                    if to.outbox.overflowed() {
                        self.context.metrics.error("send_queue_full");
                    }
                    drop(accepted);
                    self.state.handle(Input::Unreachable { member }, now);
                    return;
                }
                let _ = to.outbox.send(presence);
                let _ = accepted.send(Ok(()));
            }
            Output::Refused { accepted, reply } => {
                let _ = accepted.send(Err(reply));
            }
            Output::Poses { to, skip, frame } => {
                let mut dropped = 0;
                for recipient in to.iter() {
                    if !skip.contains(&recipient.member) {
                        dropped += recipient
                            .address
                            .outbox
                            .send_shared_poses(recipient.member, &frame);
                    }
                }
                self.context.metrics.poses_dropped.add(dropped as u64);
            }
            Output::ForgetPoses { member, to } => to.outbox.drop_channel_poses(member),
            Output::Read { id, read } => {
                let context = self.context.clone();
                let room_id = self.room_id;
                let done = self.reads_done.clone();
                tokio::spawn(async move {
                    let result = read_storage(&context, room_id, read).await;
                    let _ = done.send((id, result));
                });
            }
            Output::Write { id, write } => {
                if let Some(writes) = &self.writes {
                    let _ = writes.send((id, write));
                }
            }
            Output::Voice(effect) => {
                let Some(voice) = &self.context.voice else {
                    return;
                };
                match effect {
                    VoiceEffect::SetMuted { member, muted } => voice.set_muted(member, muted),
                    VoiceEffect::Leave { member } => voice.leave(member),
                    VoiceEffect::Positions { heads } => voice.positions(self.room_id, heads),
                }
            }
            Output::Ban { user_id, until } => {
                self.context.bans.ban(self.room_id, &user_id, until, now);
            }
            Output::Unban { user_id } => self.context.bans.unban(self.room_id, &user_id),
            Output::CountError(kind) => self.context.metrics.error(kind),
            Output::ObjectPosesIgnored(count) => {
                self.context
                    .metrics
                    .object_poses_ignored
                    .add(u64::from(count));
            }
            // The loop sees `is_stopped` once the outputs are carried out.
            Output::Stop | Output::Timeout(_) => {}
        }
    }

    /// A member too far behind to take its frames is being disconnected: it
    /// leaves at once, so the room stops queueing for it and its memory is freed.
    fn unreachable(&mut self, member: u64, now: Instant) {
        self.context.metrics.error("send_queue_full");
        self.state.handle(Input::Unreachable { member }, now);
    }
}

/// Runs one storage read for a room.
async fn read_storage(
    context: &RoomContext,
    room_id: Uuid,
    read: StorageRead,
) -> Result<ReadResult, String> {
    let store = &context.store;
    match read {
        StorageRead::Room => {
            let Some(room) = store.get_room(room_id).await.map_err(|e| e.to_string())? else {
                return Ok(ReadResult::Room(None));
            };
            let moderators = store
                .room_moderators(room_id)
                .await
                .map_err(|e| e.to_string())?;
            let (newest, _) = store
                .events_after(room_id, 0, 1)
                .await
                .map_err(|e| e.to_string())?;
            let objects = store
                .room_objects(room_id)
                .await
                .map_err(|e| e.to_string())?;
            Ok(ReadResult::Room(Some(LoadedRoom {
                summary: room.summary(),
                governance: room.governance(moderators),
                newest_event_id: newest.last().map_or(0, |e| e.id),
                objects,
            })))
        }
        StorageRead::Events {
            after_id,
            before_id,
        } => store
            .events_page(
                room_id,
                after_id,
                before_id,
                MAX_REPLAYED_EVENTS,
                MAX_REPLAY_BYTES,
            )
            .await
            .map(ReadResult::Events)
            .map_err(|e| e.to_string()),
    }
}

/// Stores a room's writes one at a time, in order, and hands each result back.
async fn write_in_order(
    context: RoomContext,
    room_id: Uuid,
    mut writes: mpsc::UnboundedReceiver<(u64, StorageWrite)>,
    done: mpsc::UnboundedSender<WriteDone>,
) {
    let store = &context.store;
    while let Some((id, write)) = writes.recv().await {
        let result = match write {
            StorageWrite::Event {
                user_id,
                name,
                sent_at_ms,
                body,
            } => store
                .append_event(room_id, &user_id, &name, sent_at_ms, &body)
                .await
                .map(Some),
            StorageWrite::Lock { locked } => {
                store.set_room_locked(room_id, locked).await.map(|()| None)
            }
            StorageWrite::Moderator { user_id, moderator } => store
                .set_room_moderator(room_id, &user_id, moderator)
                .await
                .map(|()| None),
        };
        if done.send((id, result.map_err(|e| e.to_string()))).is_err() {
            break;
        }
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}
