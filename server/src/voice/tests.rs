//! The SFU state machine driven in memory, faster than real time: real
//! str0m client peers exchange datagrams with [`Sfu`] directly (each
//! `Transmit` handed to the other side's `handle_input`), signaling goes
//! straight in and out, and the clock is a number the test moves.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use roomscale_protocol::events::{ErrorCode, VoiceTracks};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input as RtcInput, Output as RtcOutput, Rtc};
use uuid::Uuid;

use super::selection::SPEECH_HANGOVER;
use super::sfu::{CONNECT_TIMEOUT, RESELECT_EVERY};
use super::*;

const SFU_ADDR: &str = "10.0.0.1:3478";
/// Simulated time between two looks at every peer's timers.
const STEP: Duration = Duration::from_millis(5);
const FRAME: Duration = Duration::from_millis(20);
/// A level that counts as speech (RFC 6464, -dBov).
const LOUD: i8 = -20;

/// A client of the SFU: a real str0m peer, its member id and what it got.
struct Client {
    member: MemberId,
    room: Uuid,
    addr: SocketAddr,
    rtc: Rtc,
    mic: Option<Mid>,
    pending: Option<SdpPendingOffer>,
    next_timeout: Option<Instant>,
    connected: bool,
    /// Frames received, by the track they came on: (track, first payload byte).
    heard: Vec<(Mid, u8)>,
    tracks: VoiceTracks,
    /// Replies to this client's pushes, by ref.
    replies: HashMap<Arc<str>, Message>,
    next_ref: u64,
    frames_sent: u64,
}

/// The SFU and its clients on one fake clock.
struct World {
    sfu: Sfu,
    metrics: Arc<Metrics>,
    now: Instant,
    clients: Vec<Client>,
    speaking: Vec<(MemberId, bool)>,
    sfu_timeout: Instant,
    next_member: MemberId,
    /// Real time spent inside the SFU on datagrams and their outputs.
    sfu_busy: Duration,
}

fn config(max_speakers: usize, max_peers_per_room: usize, max_peers: usize) -> SfuConfig {
    SfuConfig {
        local_addr: SFU_ADDR.parse().unwrap(),
        public_ip: None,
        max_speakers,
        max_peers_per_room,
        max_peers,
    }
}

impl World {
    fn new(config: SfuConfig) -> World {
        let now = Instant::now();
        let metrics = Arc::new(Metrics::new());
        World {
            sfu: Sfu::new(config, metrics.clone(), Standing::default(), now),
            metrics,
            now,
            clients: Vec::new(),
            speaking: Vec::new(),
            sfu_timeout: now,
            next_member: 1,
            sfu_busy: Duration::ZERO,
        }
    }

    fn client(&mut self, member: MemberId) -> &mut Client {
        self.clients
            .iter_mut()
            .find(|c| c.member == member)
            .expect("a client with this member id")
    }

    /// A new client in `room` that offers one audio line in `direction`,
    /// without driving the exchange further.
    fn offer(&mut self, room: Uuid, direction: Direction) -> MemberId {
        let member = self.next_member;
        self.next_member += 1;
        let addr: SocketAddr = format!("10.0.1.{member}:5000").parse().unwrap();
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_opus(true, false)
            .build(self.now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        let mut api = rtc.sdp_api();
        let mid = api.add_media(MediaKind::Audio, direction, None, None, None);
        let (offer, pending) = api.apply().expect("a new line makes an offer");
        self.clients.push(Client {
            member,
            room,
            addr,
            rtc,
            mic: (direction != Direction::RecvOnly).then_some(mid),
            pending: Some(pending),
            next_timeout: None,
            connected: false,
            heard: Vec::new(),
            tracks: VoiceTracks { tracks: Vec::new() },
            replies: HashMap::new(),
            next_ref: 1,
            frames_sent: 0,
        });
        self.signal(member, Request::Offer(offer.to_sdp_string()), None);
        member
    }

    /// A client that joins voice and connects.
    fn join(&mut self, room: Uuid, direction: Direction) -> MemberId {
        let member = self.offer(room, direction);
        self.run_until(Duration::from_secs(5), |w| w.client(member).connected);
        member
    }

    /// Sends signaling from a member's channel; returns the push's ref.
    fn signal(
        &mut self,
        member: MemberId,
        request: Request,
        removed_for: Option<Duration>,
    ) -> Arc<str> {
        let client = self.client(member);
        client.next_ref += 1;
        let msg_ref: Arc<str> = Arc::from(client.next_ref.to_string());
        let room = client.room;
        let signal = Signal {
            member,
            user_id: user_id(member),
            room,
            msg_ref: Some(msg_ref.clone()),
            request,
            removed_for,
        };
        let now = self.now;
        self.sfu.handle_input(Input::Signal(signal), now);
        self.pump();
        msg_ref
    }

    fn control(&mut self, control: Control) {
        let now = self.now;
        self.sfu.handle_input(Input::Control(control), now);
        self.pump();
    }

    /// Moves datagrams and signaling both ways until neither side has any.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            // The SFU's side.
            loop {
                let started = Instant::now();
                let output = self.sfu.poll_output();
                self.sfu_busy += started.elapsed();
                match output {
                    Output::Timeout(at) => {
                        self.sfu_timeout = at;
                        break;
                    }
                    Output::Transmit { to, bytes } => {
                        moved = true;
                        let now = self.now;
                        if let Some(client) = self.clients.iter_mut().find(|c| c.addr == to) {
                            let from = SFU_ADDR.parse().unwrap();
                            let receive = Receive::new(Protocol::Udp, from, to, &bytes)
                                .expect("the SFU sends readable datagrams");
                            let _ = client.rtc.handle_input(RtcInput::Receive(now, receive));
                        }
                    }
                    Output::Signal(Outgoing { member, message }) => {
                        moved = true;
                        self.deliver(member, message);
                    }
                    Output::Speaking {
                        member, speaking, ..
                    } => self.speaking.push((member, speaking)),
                }
            }
            // The clients' side.
            let mut datagrams = Vec::new();
            let now = self.now;
            for client in &mut self.clients {
                let mut due_at_once = 0;
                loop {
                    match client.rtc.poll_output() {
                        // A written frame becomes a packet on the timeout
                        // str0m asks for at once.
                        Ok(RtcOutput::Timeout(at)) if at <= now && due_at_once < 4 => {
                            due_at_once += 1;
                            let _ = client.rtc.handle_input(RtcInput::Timeout(now));
                        }
                        Ok(RtcOutput::Timeout(at)) => {
                            client.next_timeout = Some(at);
                            break;
                        }
                        Ok(RtcOutput::Transmit(t)) => {
                            datagrams.push((t.source, t.destination, Vec::from(t.contents)))
                        }
                        Ok(RtcOutput::Event(Event::Connected)) => client.connected = true,
                        Ok(RtcOutput::Event(Event::MediaData(data))) => {
                            client.heard.push((data.mid, data.data[0]));
                        }
                        Ok(RtcOutput::Event(_)) => {}
                        Err(error) => panic!("client {} failed: {error}", client.member),
                    }
                }
            }
            for (from, to, bytes) in datagrams {
                moved = true;
                let now = self.now;
                let started = Instant::now();
                self.sfu.handle_input(
                    Input::Datagram {
                        from,
                        to,
                        bytes: &bytes,
                    },
                    now,
                );
                self.sfu_busy += started.elapsed();
            }
            if !moved {
                return;
            }
        }
    }

    /// What a client does with a frame from the SFU: keep replies, take
    /// `voice_tracks`, answer offers at once.
    fn deliver(&mut self, member: MemberId, message: Message) {
        let Some(client) = self.clients.iter_mut().find(|c| c.member == member) else {
            return;
        };
        match message {
            Message::Answer {
                ref msg_ref,
                ref answer,
            } => {
                if let Some(pending) = client.pending.take() {
                    let answer = SdpAnswer::from_sdp_string(&answer.sdp).unwrap();
                    client.rtc.sdp_api().accept_answer(pending, answer).unwrap();
                }
                client.replies.insert(msg_ref.clone(), message);
            }
            Message::Ok { ref msg_ref } | Message::Refused { ref msg_ref, .. } => {
                client.replies.insert(msg_ref.clone(), message);
            }
            Message::Tracks(tracks) => client.tracks = tracks,
            Message::Offer(offer) => {
                let offer = SdpOffer::from_sdp_string(&offer.sdp).unwrap();
                // A client whose peer the test abandoned cannot answer.
                let Ok(answer) = client.rtc.sdp_api().accept_offer(offer) else {
                    return;
                };
                let now = self.now;
                client.next_ref += 1;
                let signal = Signal {
                    member,
                    user_id: user_id(member),
                    room: client.room,
                    msg_ref: Some(Arc::from(client.next_ref.to_string())),
                    request: Request::Answer(answer.to_sdp_string()),
                    removed_for: None,
                };
                self.sfu.handle_input(Input::Signal(signal), now);
            }
        }
    }

    /// Moves the clock by `by`, in steps, running every timer that falls due.
    fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        while self.now < end {
            self.now = (self.now + STEP).min(end);
            self.tick();
        }
    }

    fn tick(&mut self) {
        let now = self.now;
        for client in &mut self.clients {
            if client.next_timeout.is_some_and(|at| at <= now) {
                let _ = client.rtc.handle_input(RtcInput::Timeout(now));
            }
        }
        if self.sfu_timeout <= now {
            self.sfu.handle_input(Input::Timeout, now);
        }
        self.pump();
    }

    /// Advances until `done` holds; panics after `limit` of simulated time.
    fn run_until(&mut self, limit: Duration, done: impl Fn(&mut World) -> bool) {
        let end = self.now + limit;
        while !done(self) {
            assert!(self.now < end, "not done after {limit:?} of simulated time");
            self.now += STEP;
            self.tick();
        }
    }

    /// `member` sends one Opus-sized frame at `level`, tagged with its id.
    fn send_frame(&mut self, member: MemberId, level: i8) {
        let now = self.now;
        let client = self.client(member);
        let mic = client.mic.expect("a client with a microphone");
        let seq = client.frames_sent;
        client.frames_sent += 1;
        let writer = client
            .rtc
            .writer(mic)
            .expect("the microphone line is negotiated");
        let pt = writer.payload_params().next().unwrap().pt();
        let time = MediaTime::new(seq * 960, Frequency::FORTY_EIGHT_KHZ);
        writer
            .audio_level(level, level >= -50)
            .write(pt, now, time, vec![member as u8; 80])
            .unwrap();
        self.pump();
    }

    /// `member` talks for `frames` frames of 20 ms, the clock moving on.
    fn talk(&mut self, member: MemberId, frames: usize, level: i8) {
        for _ in 0..frames {
            self.send_frame(member, level);
            self.advance(FRAME);
        }
    }

    /// Frames `listener` heard from `speaker`'s voice.
    fn heard_from(&mut self, listener: MemberId, speaker: MemberId) -> usize {
        self.client(listener)
            .heard
            .iter()
            .filter(|(_, tag)| u64::from(*tag) == speaker)
            .count()
    }

    /// The users `listener` was told are on its tracks.
    fn tracks_of(&mut self, listener: MemberId) -> Vec<String> {
        let mut users: Vec<String> = self
            .client(listener)
            .tracks
            .tracks
            .iter()
            .map(|t| t.user_id.clone())
            .collect();
        users.sort();
        users
    }

    fn reply(&mut self, member: MemberId, msg_ref: &Arc<str>) -> &Message {
        self.client(member)
            .replies
            .get(msg_ref)
            .expect("the SFU replied to the push")
    }
}

fn user_id(member: MemberId) -> Arc<str> {
    Arc::from(format!("user-{member}"))
}

fn refused_code(message: &Message) -> ErrorCode {
    match message {
        Message::Refused { reason, .. } => reason.code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Three members talk in one room with room for everyone's voice.
fn room_of_three() -> (World, [MemberId; 3]) {
    let mut world = World::new(config(16, 50, 500));
    let room = Uuid::new_v4();
    let members = [
        world.join(room, Direction::SendRecv),
        world.join(room, Direction::SendRecv),
        world.join(room, Direction::SendRecv),
    ];
    // Each is offered the others' voices and answers.
    world.advance(RESELECT_EVERY * 2);
    (world, members)
}

#[test]
fn a_peer_offers_gets_an_answer_and_connects() {
    let mut world = World::new(config(16, 50, 500));
    let room = Uuid::new_v4();
    let ada = world.offer(room, Direction::SendRecv);
    let first_ref: Arc<str> = Arc::from("2");
    assert!(
        matches!(world.reply(ada, &first_ref), Message::Answer { .. }),
        "the offer is answered in its reply"
    );
    assert!(world.sfu.has_peer(ada));
    world.run_until(Duration::from_secs(5), |w| w.client(ada).connected);
    assert_eq!(world.metrics.voice_peers.get(), 1);
}

#[test]
fn a_speakers_audio_reaches_the_other_listeners_and_not_itself() {
    let (mut world, [ada, bo, cy]) = room_of_three();
    assert_eq!(world.tracks_of(bo), vec!["user-1", "user-3"]);
    world.talk(ada, 10, LOUD);
    assert!(world.heard_from(bo, ada) >= 9, "Bo hears Ada");
    assert!(world.heard_from(cy, ada) >= 9, "Cy hears Ada");
    assert_eq!(world.heard_from(ada, ada), 0, "Ada does not hear herself");
    // Ada's frames arrive on the track voice_tracks names for her.
    let ada_mid = world
        .client(bo)
        .tracks
        .tracks
        .iter()
        .find(|t| t.user_id == "user-1")
        .map(|t| t.mid.clone())
        .unwrap();
    assert!(
        world
            .client(bo)
            .heard
            .iter()
            .all(|(mid, tag)| *tag != ada as u8 || mid.to_string() == ada_mid)
    );
    // Speaking is reported once the selection tick sees it.
    world.advance(RESELECT_EVERY);
    assert!(world.speaking.contains(&(ada, true)));
    // And ends after the hangover.
    world.advance(SPEECH_HANGOVER + RESELECT_EVERY);
    assert_eq!(world.speaking.last(), Some(&(ada, false)));
}

#[test]
fn a_frame_is_forwarded_while_the_sfu_handles_the_datagram_that_brought_it() {
    let (mut world, [ada, bo, cy]) = room_of_three();
    world.talk(ada, 3, LOUD);
    let before = (world.heard_from(bo, ada), world.heard_from(cy, ada));
    // No time passes, so no timer of the SFU's can run: the copies must
    // leave during the datagram's own input.
    world.send_frame(ada, LOUD);
    assert_eq!(world.heard_from(bo, ada), before.0 + 1);
    assert_eq!(world.heard_from(cy, ada), before.1 + 1);
}

#[test]
fn a_muted_member_is_not_forwarded_and_stops_speaking_at_once() {
    let (mut world, [ada, bo, _cy]) = room_of_three();
    world.talk(ada, 20, LOUD);
    assert!(world.speaking.contains(&(ada, true)));
    world.control(Control::SetMuted {
        member: ada,
        muted: true,
    });
    assert_eq!(
        world.speaking.last(),
        Some(&(ada, false)),
        "speaking ends with the mute, without waiting for the hangover"
    );
    let before = world.heard_from(bo, ada);
    world.talk(ada, 10, LOUD);
    assert_eq!(
        world.heard_from(bo, ada),
        before,
        "nothing of a muted member is forwarded"
    );
    assert_eq!(
        world.speaking.last(),
        Some(&(ada, false)),
        "a muted member does not speak"
    );
    world.control(Control::SetMuted {
        member: ada,
        muted: false,
    });
    world.talk(ada, 10, LOUD);
    assert!(
        world.heard_from(bo, ada) >= before + 9,
        "heard again once unmuted"
    );
}

#[test]
fn a_member_that_leaves_gets_and_sends_nothing_more_and_its_offer_starts_nothing() {
    let (mut world, [ada, bo, cy]) = room_of_three();
    world.talk(bo, 20, LOUD);
    assert!(world.speaking.contains(&(bo, true)));
    world.control(Control::Leave { member: bo });
    assert!(!world.sfu.has_peer(bo));
    assert_eq!(
        world.speaking.last(),
        Some(&(bo, false)),
        "its speaking ends"
    );
    assert_eq!(world.metrics.voice_peers.get(), 2);
    let (bo_heard, ada_heard) = (world.heard_from(bo, ada), world.heard_from(ada, bo));
    world.talk(ada, 10, LOUD);
    world.send_frame(bo, LOUD);
    assert_eq!(world.heard_from(bo, ada), bo_heard, "Bo hears nothing more");
    assert_eq!(
        world.heard_from(ada, bo),
        ada_heard,
        "nothing from Bo is forwarded"
    );
    assert!(world.heard_from(cy, ada) >= 9, "the others go on");
    // Bo's track is parked at Ada and Cy, and named no more.
    world.advance(RESELECT_EVERY);
    assert_eq!(world.tracks_of(ada), vec!["user-3"]);
    // An offer Bo sent before leaving, taken only now, starts no peer.
    let (_rtc, offer) = bare_offer(world.now);
    let msg_ref = world.signal(bo, Request::Offer(offer.clone()), None);
    assert_eq!(
        refused_code(world.reply(bo, &msg_ref)),
        ErrorCode::NotJoined
    );
    assert!(!world.sfu.has_peer(bo));
    // Once no more is waiting from Bo, the id is forgotten.
    world.control(Control::Forget { member: bo });
    let msg_ref = world.signal(bo, Request::Offer(offer), None);
    assert!(matches!(world.reply(bo, &msg_ref), Message::Answer { .. }));
}

#[test]
fn leaving_voice_drops_the_peer_and_replies() {
    let (mut world, [ada, bo, _cy]) = room_of_three();
    let msg_ref = world.signal(bo, Request::LeaveVoice, None);
    assert!(matches!(world.reply(bo, &msg_ref), Message::Ok { .. }));
    assert!(!world.sfu.has_peer(bo));
    world.advance(RESELECT_EVERY);
    assert_eq!(world.tracks_of(ada), vec!["user-3"]);
}

#[test]
fn each_listener_hears_at_most_its_slots_recent_then_nearest_speakers_first() {
    let mut world = World::new(config(2, 50, 500));
    let room = Uuid::new_v4();
    let members: Vec<MemberId> = (0..5)
        .map(|_| world.join(room, Direction::SendRecv))
        .collect();
    let listener = members[0];
    // Everyone stands on a line, further and further from the listener.
    let heads = members
        .iter()
        .enumerate()
        .map(|(i, &m)| (m, [i as f32, 1.6, 0.0]))
        .collect();
    world.control(Control::Positions { room, heads });
    world.advance(RESELECT_EVERY * 2);
    assert_eq!(
        world.tracks_of(listener),
        vec!["user-2", "user-3"],
        "with nobody speaking, the nearest two"
    );
    // The furthest speaks: it takes a slot from the nearest ones.
    let far = members[4];
    world.talk(far, 15, LOUD);
    assert_eq!(world.tracks_of(listener), vec!["user-2", "user-5"]);
    assert!(world.heard_from(listener, far) > 0);
    assert!(world.client(listener).tracks.tracks.len() <= 2);
    // Every listener holds at most two voices.
    for &member in &members {
        assert!(world.client(member).tracks.tracks.len() <= 2);
    }
}

#[test]
fn a_peer_that_never_connects_is_let_go() {
    let mut world = World::new(config(16, 50, 500));
    let room = Uuid::new_v4();
    let (_silent_rtc, offer) = bare_offer(world.now);
    world.clients.push(bystander(99, room, world.now));
    let msg_ref = world.signal(99, Request::Offer(offer), None);
    assert!(matches!(world.reply(99, &msg_ref), Message::Answer { .. }));
    assert!(world.sfu.has_peer(99));
    // Its client never sends a datagram (blocked UDP, a closed page).
    world.advance(CONNECT_TIMEOUT + RESELECT_EVERY * 2);
    assert!(!world.sfu.has_peer(99));
    assert_eq!(world.metrics.voice_peers.get(), 0);
}

#[test]
fn voice_peers_are_capped_per_room_and_per_server() {
    let mut world = World::new(config(16, 2, 3));
    let (room, other) = (Uuid::new_v4(), Uuid::new_v4());
    world.join(room, Direction::SendRecv);
    world.join(room, Direction::SendRecv);
    let third = world.offer(room, Direction::SendRecv);
    let first_ref: Arc<str> = Arc::from("2");
    assert_eq!(
        refused_code(world.reply(third, &first_ref)),
        ErrorCode::LimitReached
    );
    let Message::Refused { reason, .. } = world.reply(third, &first_ref) else {
        unreachable!()
    };
    assert!(
        reason.reason.contains("voice in this room is full"),
        "{reason:?}"
    );
    world.join(other, Direction::SendRecv);
    let fourth = world.offer(other, Direction::SendRecv);
    let Message::Refused { reason, .. } = world.reply(fourth, &first_ref) else {
        panic!("the server-wide cap refuses a fourth peer")
    };
    assert!(
        reason.reason.contains("this server's voice is full"),
        "{reason:?}"
    );
    assert_eq!(world.metrics.voice_peers.get(), 3);
    assert_eq!(world.metrics.errors("limit_reached"), 2);
}

#[test]
fn a_removed_member_gets_no_voice() {
    let mut world = World::new(config(16, 50, 500));
    let room = Uuid::new_v4();
    let (_rtc, offer) = bare_offer(world.now);
    world.clients.push(bystander(7, room, world.now));
    let msg_ref = world.signal(7, Request::Offer(offer), Some(Duration::from_secs(90)));
    let Message::Refused { reason, .. } = world.reply(7, &msg_ref) else {
        panic!("a removed member's offer is refused")
    };
    assert_eq!(reason.code, ErrorCode::Removed);
    assert!(reason.reason.contains("in 2 min"), "{reason:?}");
    assert!(!world.sfu.has_peer(7));
}

#[test]
fn a_bad_datagram_is_dropped_alone_and_the_peer_goes_on() {
    let (mut world, [ada, bo, _cy]) = room_of_three();
    let ada_addr = world.client(ada).addr;
    let now = world.now;
    let sfu = SFU_ADDR.parse().unwrap();
    let garbage: [&[u8]; 3] = [
        b"GET / HTTP/1.1\r\n\r\n",
        // A DTLS record header that claims more than it holds.
        &[22, 254, 253, 0, 0, 0, 0, 0, 0, 0, 9, 0, 200, 1],
        // An RTP header with nothing after it.
        &[0x80, 111, 0, 1],
    ];
    for bytes in garbage {
        world.sfu.handle_input(
            Input::Datagram {
                from: ada_addr,
                to: sfu,
                bytes,
            },
            now,
        );
        world.sfu.handle_input(
            Input::Datagram {
                from: "10.9.9.9:1".parse().unwrap(),
                to: sfu,
                bytes,
            },
            now,
        );
    }
    world.pump();
    assert!(
        world.metrics.errors("voice_unreadable_datagram")
            + world.metrics.errors("voice_bad_datagram")
            > 0,
        "the bad datagrams were counted"
    );
    assert!(world.sfu.has_peer(ada), "Ada keeps her peer");
    let before = world.heard_from(bo, ada);
    world.talk(ada, 10, LOUD);
    assert!(
        world.heard_from(bo, ada) >= before + 9,
        "Ada is still heard"
    );
}

#[test]
fn a_listen_only_peer_is_offered_every_voice_and_hears_it() {
    let mut world = World::new(config(16, 50, 500));
    let room = Uuid::new_v4();
    let ada = world.join(room, Direction::SendRecv);
    let ear = world.join(room, Direction::RecvOnly);
    world.advance(RESELECT_EVERY * 2);
    assert_eq!(world.tracks_of(ear), vec!["user-1"]);
    assert_eq!(
        world.tracks_of(ada),
        Vec::<String>::new(),
        "a listener offers no voice"
    );
    world.talk(ada, 10, LOUD);
    assert!(world.heard_from(ear, ada) >= 9);
}

#[test]
fn signaling_out_of_order_is_refused_with_a_reason() {
    let mut world = World::new(config(16, 50, 500));
    let room = Uuid::new_v4();
    world.clients.push(bystander(5, room, world.now));
    let msg_ref = world.signal(5, Request::Answer("v=0".into()), None);
    assert_eq!(
        refused_code(world.reply(5, &msg_ref)),
        ErrorCode::InvalidPayload
    );
    let msg_ref = world.signal(5, Request::Offer("not sdp".into()), None);
    let Message::Refused { reason, .. } = world.reply(5, &msg_ref) else {
        panic!("garbage is refused")
    };
    assert!(reason.reason.contains("unreadable SDP offer"), "{reason:?}");
    assert_eq!(world.sfu.peer_count(), 0);
}

/// An offer from a client peer that will never be driven.
fn bare_offer(now: Instant) -> (Rtc, String) {
    let mut rtc = Rtc::builder()
        .clear_codecs()
        .enable_opus(true, false)
        .build(now);
    rtc.add_local_candidate(Candidate::host("10.0.2.1:5000".parse().unwrap(), "udp").unwrap());
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
    let (offer, _pending) = api.apply().unwrap();
    (rtc, offer.to_sdp_string())
}

/// A client entry that only sends signaling by hand (its peer never runs).
fn bystander(member: MemberId, room: Uuid, now: Instant) -> Client {
    let rtc = Rtc::builder().build(now);
    Client {
        member,
        room,
        addr: format!("10.0.3.{member}:5000").parse().unwrap(),
        rtc,
        mic: None,
        pending: None,
        next_timeout: None,
        connected: false,
        heard: Vec::new(),
        tracks: VoiceTracks { tracks: Vec::new() },
        replies: HashMap::new(),
        next_ref: 1,
        frames_sent: 0,
    }
}

/// What forwarding costs inside the SFU, without sockets: a room of 17
/// where everyone talks, timed on the real clock around the SFU's own
/// calls. Run it in release for figures:
/// `cargo test --release -p roomscale-server --lib forwarding_cost -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check; run it by name"]
fn forwarding_cost() {
    let mut world = World::new(config(16, 50, 500));
    let room = Uuid::new_v4();
    let members: Vec<MemberId> = (0..17)
        .map(|_| world.join(room, Direction::SendRecv))
        .collect();
    world.advance(RESELECT_EVERY * 2);
    for _ in 0..5 {
        for &member in &members {
            world.send_frame(member, LOUD);
        }
        world.advance(FRAME);
    }
    let (forwarded_before, busy_before) =
        (world.metrics.voice_frames_forwarded.get(), world.sfu_busy);
    for _ in 0..200 {
        for &member in &members {
            world.send_frame(member, LOUD);
        }
        world.advance(FRAME);
    }
    let copies = world.metrics.voice_frames_forwarded.get() - forwarded_before;
    let busy = world.sfu_busy - busy_before;
    assert_eq!(
        copies,
        200 * 17 * 16,
        "every frame reached every other member"
    );
    println!(
        "forwarding_cost: {copies} copies, {:.2} µs of SFU time per copy (one core forwards about {:.0} down-tracks of 50 frames/s at that cost, before sockets)",
        busy.as_secs_f64() * 1e6 / copies as f64,
        copies as f64 / busy.as_secs_f64() / 50.0,
    );
}
