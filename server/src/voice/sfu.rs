//! The SFU as a state machine without I/O, in the shape of str0m's `Rtc`:
//! [`Sfu::handle_input`] takes a datagram, a command or a timeout together
//! with the current time, and [`Sfu::poll_output`] hands back what to do:
//! datagrams to send, replies and pushes for a member's channel, speaking
//! changes for its room, and when to call again. It owns every peer's
//! `str0m::Rtc`, who is muted or departed, and the slots each listener
//! carries; it reads no clock and touches no socket or queue, so tests drive
//! it on a fake clock.
//!
//! The work is split by concern: `signaling.rs` (offers, answers, ICE, peer
//! lifecycle, caps), `forwarding.rs` (datagrams in, RTP from each speaker to
//! the listener slots that carry it) and `speakers.rs` (who speaks, and who
//! each listener hears, over the plain rules of `selection.rs`).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use roomscale_protocol::events::{ErrorReply, IceCandidate, SessionDescription, VoiceTracks};
use str0m::Rtc;
use str0m::change::SdpPendingOffer;
use str0m::media::Mid;
use uuid::Uuid;

use super::MemberId;
use super::selection::Speech;
use crate::metrics::Metrics;

/// How often each room's speakers are re-chosen, speaking states checked and
/// peers that never connected let go.
pub(super) const RESELECT_EVERY: Duration = Duration::from_millis(250);
/// A peer must connect (ICE and DTLS) within this long after its offer.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How much earlier than asked a peer's timer may fire; see [`Sfu::set_timer`].
const TIMER_SLACK: Duration = Duration::from_millis(5);
/// How far ahead [`Sfu::poll_output`] puts its timeout when nothing is due.
const IDLE: Duration = Duration::from_secs(86_400);

/// A map keyed by member id, on the per-packet path.
pub(super) type ByMember<V> = HashMap<MemberId, V, BuildHasherDefault<MemberIdHasher>>;

/// Member ids are numbers the server hands out itself, never chosen by a
/// client, so they need no defence against colliding keys: one multiply
/// hashes them, where the default hasher costs a few percent of forwarding.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct MemberIdHasher(u64);

impl Hasher for MemberIdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// What the SFU is told once, when it starts.
#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// The address of the UDP socket the datagrams arrive on.
    pub local_addr: SocketAddr,
    /// An address clients can reach the socket at when it differs from
    /// `local_addr`: announced as an extra candidate.
    pub public_ip: Option<IpAddr>,
    /// The most voices one listener receives at a time.
    pub max_speakers: usize,
    /// The most voice peers in one room.
    pub max_peers_per_room: usize,
    /// The most voice peers on the whole SFU.
    pub max_peers: usize,
}

/// Everything the SFU reacts to.
#[derive(Debug)]
pub enum Input<'a> {
    /// A UDP datagram `from` a remote address, received `to` ours.
    Datagram {
        from: SocketAddr,
        to: SocketAddr,
        bytes: &'a [u8],
    },
    /// Signaling from a member's channel.
    Signal(Signal),
    /// What the room decided about its members.
    Control(Control),
    /// Time passed: run whatever was due by `now`.
    Timeout,
}

/// A signaling push from a member's channel.
#[derive(Debug, Clone)]
pub struct Signal {
    pub member: MemberId,
    pub user_id: Arc<str>,
    pub room: Uuid,
    /// The push's ref; replies go to it, none when it has none.
    pub msg_ref: Option<Arc<str>>,
    pub request: Request,
    /// How long a moderator's removal of this user from the room still
    /// lasts, as the room said when the push was taken.
    pub removed_for: Option<Duration>,
}

#[derive(Debug, Clone)]
pub enum Request {
    /// An offer from the client: starts its voice, or renegotiates it.
    Offer(String),
    /// The client's answer to the SFU's last offer.
    Answer(String),
    Ice(IceCandidate),
    /// The client left voice and stays in the room.
    LeaveVoice,
}

/// Membership changes and room state.
#[derive(Debug, Clone)]
pub enum Control {
    /// The member is muted (or unmuted): its voice is not forwarded.
    SetMuted { member: MemberId, muted: bool },
    /// The member left the room: its peer goes, and signaling it sent before
    /// leaving starts nothing until [`Control::Forget`].
    Leave { member: MemberId },
    /// No signaling the member sent before leaving is left to take.
    Forget { member: MemberId },
    /// The room's head positions, for choosing the nearest speakers.
    Positions {
        room: Uuid,
        heads: Vec<(MemberId, [f32; 3])>,
    },
}

/// What the SFU asks its owner to do.
#[derive(Debug)]
pub enum Output {
    Transmit {
        to: SocketAddr,
        bytes: Vec<u8>,
    },
    /// A reply or push for a member's channel.
    Signal(Outgoing),
    /// Tell the room that a member started or stopped speaking.
    Speaking {
        room: Uuid,
        member: MemberId,
        speaking: bool,
    },
    /// Nothing more until this time (or the next input).
    Timeout(Instant),
}

/// A frame for one member's channel.
#[derive(Debug, PartialEq)]
pub struct Outgoing {
    pub member: MemberId,
    pub message: Message,
}

#[derive(Debug, PartialEq)]
pub enum Message {
    /// `phx_reply` ok to `msg_ref` carrying an SDP answer.
    Answer {
        msg_ref: Arc<str>,
        answer: SessionDescription,
    },
    /// `phx_reply` ok to `msg_ref` with an empty response.
    Ok { msg_ref: Arc<str> },
    /// `phx_reply` error to `msg_ref`.
    Refused {
        msg_ref: Arc<str>,
        reason: ErrorReply,
    },
    /// Push `rtc_offer`: the SFU renegotiates; the client answers.
    Offer(SessionDescription),
    /// Push `voice_tracks`: which user speaks on which of the client's tracks.
    Tracks(VoiceTracks),
}

/// What the room decided about its members; a restarted SFU keeps it.
#[derive(Debug, Default)]
pub struct Standing {
    /// Members whose voice is not forwarded.
    pub(super) muted: HashSet<MemberId, BuildHasherDefault<MemberIdHasher>>,
    /// Members that left, until their [`Control::Forget`]: an offer they
    /// sent before leaving may still be waiting, and must start no peer.
    pub(super) departed: HashSet<MemberId>,
}

pub struct Sfu {
    pub(super) config: SfuConfig,
    pub(super) metrics: Arc<Metrics>,
    pub(super) peers: ByMember<Peer>,
    /// Which peer a remote address belongs to, once one accepted it.
    pub(super) owners: HashMap<SocketAddr, MemberId>,
    /// Who is in voice, by room: forwarding and speaker choice look only here.
    pub(super) in_room: HashMap<Uuid, Vec<MemberId>>,
    /// Head positions of rooms with someone in voice.
    pub(super) heads: HashMap<Uuid, HashMap<MemberId, [f32; 3]>>,
    /// For each speaker, the listeners and their track that carry it now:
    /// rebuilt when slots change, read for every packet.
    pub(super) routes: ByMember<Vec<(MemberId, Mid)>>,
    /// Each peer's next str0m timeout, earliest first.
    pub(super) timers: BTreeSet<(Instant, MemberId)>,
    pub(super) next_reselect: Option<Instant>,
    /// Peers with output to run; see [`Sfu::mark`].
    pub(super) dirty: VecDeque<MemberId>,
    /// Peers that failed or closed, to remove once the current input is done.
    pub(super) dead: Vec<MemberId>,
    pub(super) standing: Standing,
    pub(super) outputs: VecDeque<Output>,
    /// Frames forwarded to at least one listener, ever: the owner times the
    /// inputs that moved it.
    pub(super) frames_forwarded: u64,
    /// The time of the latest input.
    pub(super) now: Instant,
}

pub(super) struct Peer {
    pub(super) user_id: Arc<str>,
    pub(super) room: Uuid,
    pub(super) rtc: Rtc,
    /// The client's microphone m-line.
    pub(super) mic: Option<Mid>,
    pub(super) slots: Vec<Slot>,
    pub(super) pending: Option<SdpPendingOffer>,
    /// The `voice_tracks` the client was last told: (slot, track, speaker).
    pub(super) announced: Vec<(u16, Mid, MemberId)>,
    pub(super) speech: Speech,
    /// Its key in [`Sfu::timers`].
    pub(super) next_timeout: Option<Instant>,
    /// In [`Sfu::dirty`].
    pub(super) dirty: bool,
    pub(super) joined_at: Instant,
    pub(super) connected: bool,
}

pub(super) struct Slot {
    /// None until the slot is first offered.
    pub(super) mid: Option<Mid>,
    pub(super) speaker: Option<MemberId>,
    /// Offered as send-only (else inactive) in the last applied offer.
    pub(super) active: bool,
    /// The client answered an offer that holds this slot as it is now.
    pub(super) negotiated: bool,
}

impl std::fmt::Debug for Sfu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sfu")
            .field("config", &self.config)
            .field("peers", &self.peers.len())
            .field("rooms", &self.in_room.len())
            .field("outputs", &self.outputs.len())
            .finish_non_exhaustive()
    }
}

impl Sfu {
    pub fn new(config: SfuConfig, metrics: Arc<Metrics>, standing: Standing, now: Instant) -> Sfu {
        Sfu {
            config,
            metrics,
            peers: ByMember::default(),
            owners: HashMap::new(),
            in_room: HashMap::new(),
            heads: HashMap::new(),
            routes: ByMember::default(),
            timers: BTreeSet::new(),
            next_reselect: None,
            dirty: VecDeque::new(),
            dead: Vec::new(),
            standing,
            outputs: VecDeque::new(),
            frames_forwarded: 0,
            now,
        }
    }

    /// What the room decided, for a fresh SFU to go on with.
    pub fn into_standing(self) -> Standing {
        self.standing
    }

    /// Takes one input at time `now`; then call [`Sfu::poll_output`] until it
    /// returns [`Output::Timeout`].
    pub fn handle_input(&mut self, input: Input<'_>, now: Instant) {
        self.now = self.now.max(now);
        match input {
            Input::Datagram { from, to, bytes } => self.receive(from, to, bytes, now),
            Input::Signal(signal) => self.signal(signal, now),
            Input::Control(control) => self.control(control, now),
            Input::Timeout => self.timeout(now),
        }
        self.flush(now);
        self.bury(now);
        self.flush(now);
    }

    /// The next thing to do; [`Output::Timeout`] when nothing is left until
    /// then.
    pub fn poll_output(&mut self) -> Output {
        if let Some(output) = self.outputs.pop_front() {
            return output;
        }
        let peer_due = self.timers.first().map(|&(at, _)| at);
        let at = match (peer_due, self.next_reselect) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            // Nothing runs: only an input brings work; a day ahead stands
            // for "never" (Instant has no maximum).
            (None, None) => self.now + IDLE,
        };
        Output::Timeout(at)
    }

    /// Frames forwarded to at least one listener so far: an input that
    /// moved it forwarded media, and its owner may time it.
    pub fn frames_forwarded(&self) -> u64 {
        self.frames_forwarded
    }

    pub fn has_peer(&self, member: MemberId) -> bool {
        self.peers.contains_key(&member)
    }

    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    fn control(&mut self, control: Control, now: Instant) {
        match control {
            Control::Leave { member } => {
                self.standing.muted.remove(&member);
                self.standing.departed.insert(member);
                self.remove(member, now);
            }
            Control::Forget { member } => {
                self.standing.departed.remove(&member);
            }
            Control::SetMuted { member, muted } => {
                if muted {
                    self.standing.muted.insert(member);
                    // Speaking ends with the mute, not a hangover later.
                    if let Some(peer) = self.peers.get_mut(&member)
                        && peer.speech.silence()
                    {
                        let room = peer.room;
                        self.outputs.push_back(Output::Speaking {
                            room,
                            member,
                            speaking: false,
                        });
                    }
                } else {
                    self.standing.muted.remove(&member);
                }
            }
            Control::Positions { room, heads } => {
                // Every busy room sends them; only rooms with voice keep them.
                if self.in_room.contains_key(&room) {
                    self.heads.insert(room, heads.into_iter().collect());
                }
            }
        }
    }

    fn timeout(&mut self, now: Instant) {
        while let Some(&(at, member)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            if let Some(peer) = self.peers.get_mut(&member) {
                peer.next_timeout = None;
                if let Err(error) = peer.rtc.handle_input(str0m::Input::Timeout(now)) {
                    tracing::debug!(member, %error, "voice peer failed on a timeout");
                }
            }
            self.mark(member);
        }
        if self.next_reselect.is_some_and(|at| at <= now) {
            self.next_reselect = Some(now + RESELECT_EVERY);
            self.update_speaking(now);
            self.reap(now);
            let rooms: Vec<Uuid> = self.in_room.keys().copied().collect();
            for room in rooms {
                self.reselect(room, now);
            }
        }
    }

    /// Moves a peer's str0m timeout in [`Sfu::timers`]. A timer already set
    /// a little earlier is kept: str0m takes an early timeout as a no-op, and
    /// most of its deadlines move by a hair after every packet a listener is
    /// sent, which would otherwise move the timer just as often.
    pub(super) fn set_timer(&mut self, member: MemberId, at: Instant) {
        let Some(peer) = self.peers.get_mut(&member) else {
            return;
        };
        if peer
            .next_timeout
            .is_some_and(|set| set <= at && at.duration_since(set) < TIMER_SLACK)
        {
            return;
        }
        if let Some(old) = peer.next_timeout.replace(at) {
            self.timers.remove(&(old, member));
        }
        self.timers.insert((at, member));
    }

    /// Marks a peer as having output to run (datagrams, events, media);
    /// [`Sfu::flush`] runs it once, however many inputs it took meanwhile.
    pub(super) fn mark(&mut self, member: MemberId) {
        if let Some(peer) = self.peers.get_mut(&member)
            && !peer.dirty
        {
            peer.dirty = true;
            self.dirty.push_back(member);
        }
    }

    /// Lets go of peers that never connected in time; str0m itself notices
    /// a silent connected one (no STUN for a while) and is no longer alive.
    fn reap(&mut self, now: Instant) {
        for (&member, peer) in &self.peers {
            if !peer.rtc.is_alive()
                || (!peer.connected
                    && now.saturating_duration_since(peer.joined_at) > CONNECT_TIMEOUT)
            {
                self.dead.push(member);
            }
        }
    }

    /// Removes the peers found dead while handling the last input.
    fn bury(&mut self, now: Instant) {
        while let Some(member) = self.dead.pop() {
            if self.peers.contains_key(&member) {
                tracing::debug!(member, "voice peer connection closed");
                self.remove(member, now);
            }
        }
    }

    pub(super) fn remove(&mut self, member: MemberId, now: Instant) {
        let Some(peer) = self.peers.remove(&member) else {
            return;
        };
        self.metrics.voice_peers.dec();
        if let Some(at) = peer.next_timeout {
            self.timers.remove(&(at, member));
        }
        self.owners.retain(|_, owner| *owner != member);
        self.routes.remove(&member);
        let room = peer.room;
        if let Some(members) = self.in_room.get_mut(&room) {
            members.retain(|&m| m != member);
            if members.is_empty() {
                self.in_room.remove(&room);
                self.heads.remove(&room);
            }
        }
        if self.peers.is_empty() {
            self.next_reselect = None;
        }
        if peer.speech.is_speaking() {
            self.outputs.push_back(Output::Speaking {
                room,
                member,
                speaking: false,
            });
        }
        self.reselect(room, now);
    }

    /// Queues a reply or push for a member's channel.
    pub(super) fn send(&mut self, member: MemberId, message: Message) {
        self.outputs
            .push_back(Output::Signal(Outgoing { member, message }));
    }
}
