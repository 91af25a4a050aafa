//! The loop around the [`Sfu`]: it owns the UDP socket, the clock, the
//! queues from [`super::Voice`] and each member's [`ChannelAddress`], feeds
//! the SFU datagrams, commands and timeouts, and carries out what it asks:
//! datagrams onto the socket, replies and pushes onto members' channels,
//! speaking changes to the rooms. Each turn it first applies the rooms'
//! membership changes (mutes, departures), then signaling or datagrams,
//! then timeouts. It times each forwarded frame from the datagram's read to
//! its last copy's send (`voice_forward_latency_seconds`).
//!
//! A panic inside the SFU is caught where the SFU is called: the SFU starts
//! afresh on the same socket with what the rooms decided (mutes,
//! departures), its peers lost (their clients see the connection fail and
//! rejoin voice), and the rooms never notice.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use roomscale_protocol::events::EmptyReply;
use roomscale_protocol::server_event::{Reply, ServerEvent};
use tokio::net::UdpSocket;

use super::sfu::{Control, Input, Message, Output, Request, Sfu, SfuConfig, Signal, Standing};
use super::{Command, Inbox, MemberId, RoomLink};
use crate::address::ChannelAddress;
use crate::metrics::Metrics;

const DATAGRAM_BYTES: usize = 2048;
/// Datagrams read per wake-up before other work gets a turn.
const RECEIVE_BATCH: usize = 64;
/// The shortest wait between turns when a timeout is already due, so a
/// peer that keeps asking for "now" cannot spin the loop.
const MIN_WAIT: Duration = Duration::from_micros(100);

/// What every run of the SFU loop starts from.
pub(super) struct Shared {
    pub(super) socket: UdpSocket,
    pub(super) config: SfuConfig,
    pub(super) rooms: Arc<dyn RoomLink>,
    pub(super) metrics: Arc<Metrics>,
}

/// Runs the loop, and runs it afresh if the loop itself panics (a panic in
/// the SFU is caught closer, see [`Task::guarded`]).
pub(super) async fn supervise(shared: Shared, mut inbox: Inbox) {
    use futures_util::FutureExt as _;
    let shared = Arc::new(shared);
    let mut standing = Standing::default();
    loop {
        let mut task = Task::new(shared.clone(), standing);
        let ended = AssertUnwindSafe(task.run(&mut inbox)).catch_unwind().await;
        match ended {
            Ok(()) => return,
            Err(_) => {
                standing = task.restarted();
            }
        }
    }
}

struct Task {
    shared: Arc<Shared>,
    sfu: Sfu,
    /// Where each member's replies and pushes go: the channel of its latest
    /// signaling.
    addresses: HashMap<MemberId, ChannelAddress>,
}

impl Task {
    fn new(shared: Arc<Shared>, standing: Standing) -> Task {
        let sfu = Sfu::new(
            shared.config.clone(),
            shared.metrics.clone(),
            standing,
            Instant::now(),
        );
        Task {
            shared,
            sfu,
            addresses: HashMap::new(),
        }
    }

    /// Runs until the queues close (the server is going away).
    async fn run(&mut self, inbox: &mut Inbox) {
        let mut buf = vec![0u8; DATAGRAM_BYTES];
        let shared = self.shared.clone();
        let local_addr = shared.config.local_addr;
        // One timer, moved to the next deadline rather than made anew each turn.
        let wake = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(wake);
        let mut next_timeout = Instant::now();
        loop {
            // Membership changes first: a member that left or was muted
            // gets nothing more forwarded from this turn on.
            if let Some(at) = self.apply_control(inbox) {
                next_timeout = at;
            }
            let deadline =
                tokio::time::Instant::from_std(next_timeout.max(Instant::now() + MIN_WAIT));
            if wake.deadline() != deadline {
                wake.as_mut().reset(deadline);
            }
            // Datagrams read this turn.
            let mut read = 0;
            // Not biased: under a flood of signaling, datagrams still get
            // their turns (membership changes never wait, see above).
            tokio::select! {
                control = inbox.control.recv() => match control {
                    Some(control) => next_timeout = self.control(control),
                    None => return,
                },
                command = inbox.signaling.recv() => match command {
                    Some(command) => {
                        if command.is_counted() {
                            inbox.queued.fetch_sub(1, Ordering::AcqRel);
                        }
                        // A leave sent before this command was is applied
                        // before it (a member's Forget never overtakes its
                        // Leave).
                        self.apply_control(inbox);
                        next_timeout = self.command(command);
                    }
                    None => return,
                },
                readable = shared.socket.readable() => {
                    if let Err(error) = readable {
                        tracing::debug!(%error, "voice socket failed");
                    }
                    // What has queued up, each datagram forwarded before the
                    // next is read (bounded, so commands and timeouts still
                    // get their turn under a flood).
                    for _ in 0..RECEIVE_BATCH {
                        let Ok((len, from)) = shared.socket.try_recv_from(&mut buf) else {
                            break;
                        };
                        read += 1;
                        let now = Instant::now();
                        let forwarded = self.sfu.frames_forwarded();
                        let input = Input::Datagram { from, to: local_addr, bytes: &buf[..len] };
                        self.guarded(|sfu| sfu.handle_input(input, now));
                        next_timeout = self.carry_out();
                        let frames = self.sfu.frames_forwarded().saturating_sub(forwarded);
                        if frames > 0 {
                            // Every copy is on the wire now.
                            let took = now.elapsed();
                            for _ in 0..frames {
                                self.shared.metrics.voice_forward_latency.record(took);
                            }
                        }
                    }
                },
                _ = &mut wake => {
                    let now = Instant::now();
                    self.guarded(|sfu| sfu.handle_input(Input::Timeout, now));
                    next_timeout = self.carry_out();
                }
            }
            if read == RECEIVE_BATCH {
                // More is waiting, but the sockets and rooms on this thread
                // get their turn first: under a flood of datagrams the loop
                // would otherwise hold the thread for long stretches.
                tokio::task::yield_now().await;
            }
        }
    }

    /// Applies every membership change waiting, without waiting for more;
    /// returns the SFU's next timeout when there were any.
    fn apply_control(&mut self, inbox: &mut Inbox) -> Option<Instant> {
        let mut next = None;
        while let Ok(control) = inbox.control.try_recv() {
            next = Some(self.control(control));
        }
        next
    }

    fn control(&mut self, control: Control) -> Instant {
        let departed = match control {
            Control::Leave { member } => Some(member),
            _ => None,
        };
        let now = Instant::now();
        self.guarded(|sfu| sfu.handle_input(Input::Control(control), now));
        let next = self.carry_out();
        if let Some(member) = departed {
            self.addresses.remove(&member);
        }
        next
    }

    fn command(&mut self, command: Command) -> Instant {
        let now = Instant::now();
        match command {
            Command::Signal { route, request } => {
                let member = route.member;
                let removed_for = match request {
                    Request::Offer(_) => self.shared.rooms.removed_for(route.room, &route.user_id),
                    _ => None,
                };
                self.addresses.insert(member, route.address);
                let signal = Signal {
                    member,
                    user_id: route.user_id,
                    room: route.room,
                    msg_ref: route.msg_ref,
                    request,
                    removed_for,
                };
                self.guarded(|sfu| sfu.handle_input(Input::Signal(signal), now));
                let next = self.carry_out();
                if !self.sfu.has_peer(member) {
                    self.addresses.remove(&member);
                }
                next
            }
            Command::Positions { room, heads } => {
                let control = Control::Positions { room, heads };
                self.guarded(|sfu| sfu.handle_input(Input::Control(control), now));
                self.carry_out()
            }
            Command::Forget { member } => {
                self.addresses.remove(&member);
                let control = Control::Forget { member };
                self.guarded(|sfu| sfu.handle_input(Input::Control(control), now));
                self.carry_out()
            }
            #[cfg(feature = "test-hooks")]
            Command::InjectPanic => {
                self.guarded(|_| panic!("panic injected into the voice SFU"));
                self.carry_out()
            }
        }
    }

    /// Carries out what the SFU asks until it only waits; returns when it
    /// wants to be woken.
    fn carry_out(&mut self) -> Instant {
        loop {
            let output = match std::panic::catch_unwind(AssertUnwindSafe(|| self.sfu.poll_output()))
            {
                Ok(output) => output,
                Err(_) => {
                    self.restart();
                    continue;
                }
            };
            match output {
                Output::Timeout(at) => return at,
                Output::Transmit { to, bytes } => {
                    if self.shared.socket.try_send_to(&bytes, to).is_err() {
                        self.shared.metrics.voice_datagrams_dropped.inc();
                    }
                }
                Output::Signal(outgoing) => {
                    if let Some(address) = self.addresses.get(&outgoing.member) {
                        // A full outbox closes its connection by itself.
                        let _ = address.send(&server_event(outgoing.message));
                    }
                }
                Output::Speaking {
                    room,
                    member,
                    speaking,
                } => self.shared.rooms.speaking(room, member, speaking),
            }
        }
    }

    /// Runs `f` on the SFU; a panic in it restarts the SFU.
    fn guarded(&mut self, f: impl FnOnce(&mut Sfu)) {
        if std::panic::catch_unwind(AssertUnwindSafe(|| f(&mut self.sfu))).is_err() {
            self.restart();
        }
    }

    /// Starts the SFU afresh, keeping what the rooms decided.
    fn restart(&mut self) {
        let standing = self.restarted();
        self.sfu = Sfu::new(
            self.shared.config.clone(),
            self.shared.metrics.clone(),
            standing,
            Instant::now(),
        );
    }

    /// Counts and logs a restart; returns what the next SFU starts from.
    fn restarted(&mut self) -> Standing {
        let metrics = &self.shared.metrics;
        metrics.error("voice_panic");
        metrics.voice_peers.set(0);
        tracing::error!("the voice SFU panicked and was restarted; voice peers must rejoin");
        let placeholder = Sfu::new(
            self.shared.config.clone(),
            metrics.clone(),
            Standing::default(),
            Instant::now(),
        );
        std::mem::replace(&mut self.sfu, placeholder).into_standing()
    }
}

/// One SFU message as the server event its member's client reads.
fn server_event(message: Message) -> ServerEvent {
    match message {
        Message::Answer { msg_ref, answer } => ServerEvent::Reply(Reply::ok(&*msg_ref, answer)),
        Message::Ok { msg_ref } => ServerEvent::Reply(Reply::ok(&*msg_ref, EmptyReply {})),
        Message::Refused { msg_ref, reason } => ServerEvent::Reply(Reply::error(&*msg_ref, reason)),
        Message::Offer(offer) => ServerEvent::RtcOffer(offer),
        Message::Tracks(tracks) => ServerEvent::VoiceTracks(tracks),
    }
}
