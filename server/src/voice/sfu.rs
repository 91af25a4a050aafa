//! The SFU loop: one task owns the UDP socket and every peer's `str0m::Rtc`
//! (sans-IO), feeds them datagrams and time, and moves Opus frames from each
//! speaker to the listener slots that carry it. Each turn it first applies
//! the rooms' membership changes (mutes, departures), then signaling or
//! datagrams, then timeouts.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use roomscale_protocol::events::{
    ErrorCode, ErrorReply, IceCandidate, RTC_OFFER_EVENT, SessionDescription, VOICE_TRACKS_EVENT,
    VoiceTrack, VoiceTracks,
};
use serde::Serialize;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, MediaData, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use uuid::Uuid;

use super::selection::{self, Candidate as Speaker};
use super::{Command, Control, Inbox, Members, Route, Standing, VoiceSettings};
use crate::metrics::Metrics;
use crate::room::{MemberId, RoomCommand, Rooms};

/// How often each room's speakers are re-chosen and speaking states checked.
const RESELECT_EVERY: Duration = Duration::from_millis(250);
/// A peer must connect (ICE and DTLS) within this long after its offer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// RFC 6464 levels are -dBov; louder than this counts as speech.
const SPEECH_LEVEL_DBOV: i8 = -50;
/// Speaking ends after this long without a loud frame.
const SPEECH_HANGOVER: Duration = Duration::from_millis(600);
const DATAGRAM_BYTES: usize = 2048;
/// Datagrams read per wake-up before other work gets a turn.
const RECEIVE_BATCH: usize = 32;
/// The error kind counted for each datagram a peer refused.
const BAD_DATAGRAM: &str = "voice_bad_datagram";

pub(super) struct Sfu {
    socket: Arc<UdpSocket>,
    local_addr: SocketAddr,
    settings: VoiceSettings,
    rooms: Rooms,
    metrics: Arc<Metrics>,
    peers: HashMap<MemberId, Peer>,
    /// Which peer a remote address belongs to, once one accepted it.
    owners: HashMap<SocketAddr, MemberId>,
    /// Who is in voice, by room: forwarding and speaker choice look only here.
    in_room: HashMap<Uuid, Vec<MemberId>>,
    /// Head positions of rooms with someone in voice.
    heads: HashMap<Uuid, HashMap<MemberId, [f32; 3]>>,
    next_reselect: Instant,
    /// Peers with output to run; see [`Sfu::mark`].
    dirty: VecDeque<MemberId>,
    /// Who is muted, and who left the room.
    standing: Standing,
}

struct Peer {
    route: Route,
    rtc: Rtc,
    /// The client's microphone m-line.
    mic: Option<Mid>,
    slots: Vec<Slot>,
    pending: Option<SdpPendingOffer>,
    /// The `voice_tracks` the client was last told.
    announced: Vec<VoiceTrack>,
    last_spoke: Option<Instant>,
    speaking: bool,
    next_timeout: Instant,
    /// In [`Sfu::dirty`].
    dirty: bool,
    joined_at: Instant,
    connected: bool,
}

struct Slot {
    /// None until the slot is first offered.
    mid: Option<Mid>,
    speaker: Option<MemberId>,
    /// Offered as send-only (else inactive) in the last applied offer.
    active: bool,
    /// The client answered an offer that holds this slot as it is now.
    negotiated: bool,
}

impl Sfu {
    pub(super) fn new(
        socket: Arc<UdpSocket>,
        local_addr: SocketAddr,
        settings: VoiceSettings,
        rooms: Rooms,
        metrics: Arc<Metrics>,
        standing: Standing,
    ) -> Sfu {
        Sfu {
            socket,
            local_addr,
            settings,
            rooms,
            metrics,
            peers: HashMap::new(),
            owners: HashMap::new(),
            in_room: HashMap::new(),
            heads: HashMap::new(),
            next_reselect: Instant::now(),
            dirty: VecDeque::new(),
            standing,
        }
    }

    /// Runs until the queues close (the server is going away).
    pub(super) async fn run(mut self, inbox: &mut Inbox) {
        let mut buf = vec![0u8; DATAGRAM_BYTES];
        // One timer, moved to the next deadline rather than made anew each turn.
        let wake = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(wake);
        loop {
            // Membership changes first: a member that left or was muted
            // gets nothing more forwarded from this turn on.
            self.apply_control(inbox);
            let now = Instant::now();
            let deadline = self
                .peers
                .values()
                .map(|p| p.next_timeout)
                .min()
                .unwrap_or(now + RESELECT_EVERY)
                .min(self.next_reselect)
                .max(now + Duration::from_micros(100));
            let deadline = tokio::time::Instant::from_std(deadline);
            if wake.deadline() != deadline {
                wake.as_mut().reset(deadline);
            }
            // Not biased: under a flood of signaling, datagrams still get
            // their turns (membership changes never wait, see above).
            tokio::select! {
                control = inbox.control.recv() => match control {
                    Some(control) => self.control(control),
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
                        self.command(command);
                    }
                    None => return,
                },
                readable = self.socket.readable() => {
                    if let Err(error) = readable {
                        tracing::debug!(%error, "voice socket failed");
                    }
                    // What has queued up, in one go (bounded, so commands
                    // and timeouts still get their turn under a flood).
                    for _ in 0..RECEIVE_BATCH {
                        match self.socket.try_recv_from(&mut buf) {
                            Ok((len, source)) => self.receive(&buf[..len], source),
                            Err(_) => break,
                        }
                    }
                },
                _ = &mut wake => {}
            }
            let now = Instant::now();
            let due: Vec<MemberId> = self
                .peers
                .iter()
                .filter(|(_, p)| p.next_timeout <= now)
                .map(|(&id, _)| id)
                .collect();
            for member in due {
                if let Some(peer) = self.peers.get_mut(&member) {
                    let _ = peer.rtc.handle_input(Input::Timeout(now));
                }
                self.mark(member);
            }
            self.flush();
            if now >= self.next_reselect {
                self.next_reselect = now + RESELECT_EVERY;
                self.update_speaking(now);
                let rooms: Vec<Uuid> = self.in_room.keys().copied().collect();
                for room in rooms {
                    self.reselect(room);
                }
            }
            self.reap();
            self.flush();
        }
    }

    /// Applies every membership change waiting, without waiting for more.
    fn apply_control(&mut self, inbox: &mut Inbox) {
        while let Ok(control) = inbox.control.try_recv() {
            self.control(control);
        }
    }

    fn control(&mut self, control: Control) {
        match control {
            Control::Leave { member } => {
                {
                    let mut standing = self.standing();
                    standing.muted.remove(&member);
                    standing.departed.insert(member);
                }
                self.remove(member);
            }
            Control::SetMuted { member, muted } => {
                if muted {
                    self.standing().muted.insert(member);
                    // Speaking ends with the mute, not a hangover later.
                    if let Some(peer) = self.peers.get_mut(&member) {
                        peer.last_spoke = None;
                        if peer.speaking {
                            peer.speaking = false;
                            let room = peer.route.room;
                            self.report_speaking(room, member, false);
                        }
                    }
                } else {
                    self.standing().muted.remove(&member);
                }
            }
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Offer { route, sdp } => self.offer(route, &sdp),
            Command::Answer { route, sdp } => self.answer(route, &sdp),
            Command::Ice { route, candidate } => self.ice(route, candidate),
            Command::Forget { member } => {
                self.standing().departed.remove(&member);
            }
            Command::LeaveVoice { route } => {
                self.remove(route.member);
                reply_ok(&route, &serde_json::json!({}));
            }
            Command::Positions { room, heads } => {
                // Every busy room sends them; only rooms with voice keep them.
                if self.in_room.contains_key(&room) {
                    self.heads.insert(room, heads.into_iter().collect());
                }
            }
            Command::InjectPanic => panic!("panic injected into the voice SFU"),
        }
    }

    // Signaling ------------------------------------------------------------

    fn offer(&mut self, route: Route, sdp: &str) {
        let offer = match SdpOffer::from_sdp_string(sdp) {
            Ok(offer) => offer,
            Err(error) => {
                return reply_error(&route, format!("unreadable SDP offer: {error}"));
            }
        };
        let member = route.member;
        if self.standing().departed.contains(&member) {
            // Sent before the member left the room, and only now taken.
            return reply_refused(
                &route,
                ErrorCode::NotJoined,
                "you are no longer in this room; join it again to use voice".into(),
            );
        }
        if let Some(peer) = self.peers.get_mut(&member) {
            if peer.pending.is_some() {
                return reply_error(
                    &route,
                    "the server's offer is waiting for your answer; answer it (rtc_answer), then offer again".into(),
                );
            }
            match peer.rtc.sdp_api().accept_offer(offer) {
                Ok(answer) => reply_ok(
                    &route,
                    &SessionDescription {
                        sdp: answer.to_sdp_string(),
                    },
                ),
                Err(error) => reply_error(&route, format!("offer rejected: {error}")),
            }
            peer.route = route;
            self.mark(member);
            return;
        }
        // A removed member's connection may still hold the room's channel
        // (the room closed it, the client need not listen): its old member
        // id must not bring voice back while the removal lasts.
        if let Some(left) = self.rooms.banned_for(route.room, &route.user_id) {
            return reply_refused(
                &route,
                ErrorCode::Removed,
                format!(
                    "a moderator removed you from this room; you may rejoin it, and its voice, \
                     in {} min",
                    left.as_secs().div_ceil(60).max(1)
                ),
            );
        }
        if let Some(reason) = self.over_cap(route.room) {
            self.metrics.error(ErrorCode::LimitReached.as_str());
            return reply_refused(&route, ErrorCode::LimitReached, reason);
        }
        let now = Instant::now();
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .clear_codecs()
            .enable_opus(true, false)
            .build(now);
        if let Ok(candidate) = Candidate::host(self.local_addr, "udp") {
            rtc.add_local_candidate(candidate);
        }
        if let Some(ip) = self.settings.public_ip {
            let public = SocketAddr::new(ip, self.local_addr.port());
            if let Ok(candidate) = Candidate::host(public, "udp") {
                rtc.add_local_candidate(candidate);
            }
        }
        let answer = match rtc.sdp_api().accept_offer(offer) {
            Ok(answer) => answer,
            Err(error) => return reply_error(&route, format!("offer rejected: {error}")),
        };
        reply_ok(
            &route,
            &SessionDescription {
                sdp: answer.to_sdp_string(),
            },
        );
        tracing::debug!(member, room = %route.room, "voice peer joined");
        // The microphone line is known from the offer at once; str0m's
        // MediaAdded event for it only comes once the connection is up.
        let mic = microphone_mid(sdp, &rtc);
        self.metrics.voice_peers.inc();
        self.in_room.entry(route.room).or_default().push(member);
        self.peers.insert(
            member,
            Peer {
                route,
                rtc,
                mic,
                slots: Vec::new(),
                pending: None,
                announced: Vec::new(),
                last_spoke: None,
                speaking: false,
                next_timeout: now,
                dirty: false,
                joined_at: now,
                connected: false,
            },
        );
        self.mark(member);
        let room = self.peers[&member].route.room;
        self.reselect(room);
    }

    fn answer(&mut self, route: Route, sdp: &str) {
        let member = route.member;
        let Some(peer) = self.peers.get_mut(&member) else {
            return reply_error(
                &route,
                "no voice connection to answer for; start voice with rtc_offer".into(),
            );
        };
        let answer = match SdpAnswer::from_sdp_string(sdp) {
            Ok(answer) => answer,
            Err(error) => return reply_error(&route, format!("unreadable SDP answer: {error}")),
        };
        let Some(pending) = peer.pending.take() else {
            return reply_error(
                &route,
                "no offer from the server is waiting for an answer".into(),
            );
        };
        match peer.rtc.sdp_api().accept_answer(pending, answer) {
            Ok(()) => {
                for slot in &mut peer.slots {
                    slot.negotiated = true;
                }
                reply_ok(&route, &serde_json::json!({}));
                self.mark(member);
                self.offer_if_needed(member);
            }
            Err(error) => {
                // The offer and the answer no longer describe one session:
                // start over rather than guess which half holds.
                reply_error(
                    &route,
                    format!("answer rejected ({error}); voice was reset: send a new rtc_offer"),
                );
                self.remove(member);
            }
        }
    }

    fn ice(&mut self, route: Route, candidate: IceCandidate) {
        let Some(peer) = self.peers.get_mut(&route.member) else {
            return reply_error(
                &route,
                "no voice connection for this candidate; start voice with rtc_offer first".into(),
            );
        };
        let line = candidate.candidate.trim();
        if line.is_empty() {
            // End of candidates.
            return reply_ok(&route, &serde_json::json!({}));
        }
        let line = line.strip_prefix("a=").unwrap_or(line);
        let parsed = Candidate::from_sdp_string(line).or_else(|_| {
            Candidate::from_sdp_string(line.strip_prefix("candidate:").unwrap_or(line))
        });
        match parsed {
            Ok(parsed) => {
                peer.rtc.add_remote_candidate(parsed);
                reply_ok(&route, &serde_json::json!({}));
            }
            Err(error) => reply_error(&route, format!("unreadable ICE candidate: {error}")),
        }
    }

    /// Offers the peer its changed slots (new ones, and ones that start or
    /// stop carrying a voice), unless an offer is already out. A peer without
    /// a microphone line (a receive-only offer: listening only) is offered
    /// voices all the same.
    fn offer_if_needed(&mut self, member: MemberId) {
        let Some(peer) = self.peers.get_mut(&member) else {
            return;
        };
        if peer.pending.is_some() {
            return;
        }
        let mut api = peer.rtc.sdp_api();
        for slot in &mut peer.slots {
            let want = slot.speaker.is_some();
            match slot.mid {
                None if want => {
                    slot.mid = Some(api.add_media(
                        MediaKind::Audio,
                        Direction::SendOnly,
                        None,
                        None,
                        None,
                    ));
                    slot.active = true;
                    slot.negotiated = false;
                }
                Some(mid) if slot.active != want => {
                    let direction = if want {
                        Direction::SendOnly
                    } else {
                        Direction::Inactive
                    };
                    api.set_direction(mid, direction);
                    slot.active = want;
                    slot.negotiated = false;
                }
                _ => {}
            }
        }
        if !api.has_changes() {
            return;
        }
        let Some((offer, pending)) = api.apply() else {
            return;
        };
        peer.pending = Some(pending);
        let route = &peer.route;
        let _ = route.outbox.push(
            route.join_ref.as_deref(),
            &route.topic,
            RTC_OFFER_EVENT,
            &SessionDescription {
                sdp: offer.to_sdp_string(),
            },
        );
        self.mark(member);
    }

    // Speaker choice ---------------------------------------------------------

    /// Re-chooses every listener's speakers in a room, re-pointing slots, and
    /// offers or announces what changed.
    fn reselect(&mut self, room: Uuid) {
        let now = Instant::now();
        let heads = self.heads.get(&room);
        let listeners: Vec<MemberId> = self.in_room.get(&room).cloned().unwrap_or_default();
        let speakers: Vec<(MemberId, Option<Instant>)> = listeners
            .iter()
            .filter_map(|id| self.peers.get(id).map(|p| (*id, p)))
            .filter(|(_, p)| p.mic.is_some())
            .map(|(id, p)| (id, p.last_spoke))
            .collect();
        let limit = self.settings.max_speakers;
        let mut listeners_to_update = Vec::new();
        for listener in listeners {
            let here = heads.and_then(|h| h.get(&listener));
            let candidates: Vec<Speaker> = speakers
                .iter()
                .filter(|(id, _)| *id != listener)
                .map(|&(speaker, last_spoke)| Speaker {
                    speaker,
                    last_spoke,
                    distance: here
                        .zip(heads.and_then(|h| h.get(&speaker)))
                        .map(|(a, b)| distance(a, b)),
                })
                .collect();
            let chosen = selection::choose(limit, &candidates, now);
            let Some(peer) = self.peers.get_mut(&listener) else {
                continue;
            };
            let mut assigned: Vec<Option<MemberId>> =
                peer.slots.iter().map(|s| s.speaker).collect();
            if selection::assign(&mut assigned, &chosen, limit) {
                for (index, speaker) in assigned.into_iter().enumerate() {
                    match peer.slots.get_mut(index) {
                        Some(slot) => slot.speaker = speaker,
                        None => peer.slots.push(Slot {
                            mid: None,
                            speaker,
                            active: false,
                            negotiated: false,
                        }),
                    }
                }
            }
            // Also when nothing changed now: an earlier change may still wait
            // for the peer's microphone line or for its answer.
            listeners_to_update.push(listener);
        }
        for listener in listeners_to_update {
            self.offer_if_needed(listener);
            self.announce(listener);
        }
    }

    /// Sends `voice_tracks` when the listener's slot map changed.
    fn announce(&mut self, listener: MemberId) {
        let tracks: Vec<VoiceTrack> = {
            let Some(peer) = self.peers.get(&listener) else {
                return;
            };
            peer.slots
                .iter()
                .enumerate()
                .filter_map(|(index, slot)| {
                    let speaker = self.peers.get(&slot.speaker?)?;
                    Some(VoiceTrack {
                        mid: slot.mid?.to_string(),
                        user_id: speaker.route.user_id.to_string(),
                        slot: index as u16,
                    })
                })
                .collect()
        };
        let Some(peer) = self.peers.get_mut(&listener) else {
            return;
        };
        if peer.announced == tracks {
            return;
        }
        let route = &peer.route;
        let _ = route.outbox.push(
            route.join_ref.as_deref(),
            &route.topic,
            VOICE_TRACKS_EVENT,
            &VoiceTracks {
                tracks: tracks.clone(),
            },
        );
        peer.announced = tracks;
    }

    fn update_speaking(&mut self, now: Instant) {
        let mut changed = Vec::new();
        for peer in self.peers.values_mut() {
            let speaking = peer
                .last_spoke
                .is_some_and(|t| now.saturating_duration_since(t) < SPEECH_HANGOVER);
            if speaking != peer.speaking {
                peer.speaking = speaking;
                changed.push((peer.route.room, peer.route.member, speaking));
            }
        }
        for (room, member, speaking) in changed {
            self.report_speaking(room, member, speaking);
        }
    }

    /// Tells the room a member started or stopped speaking. The end of
    /// speech reaches a busy room too (a waiting task delivers it), so no
    /// indicator stays lit over a muted or departed member.
    fn report_speaking(&self, room: Uuid, member: MemberId, speaking: bool) {
        if self
            .rooms
            .try_send(room, RoomCommand::Speaking { member, speaking })
            || speaking
        {
            return;
        }
        let rooms = self.rooms.clone();
        tokio::spawn(async move {
            rooms
                .send(
                    room,
                    RoomCommand::Speaking {
                        member,
                        speaking: false,
                    },
                )
                .await
        });
    }

    /// Why a new peer in `room` would pass a cap on voice peers, if it would.
    fn over_cap(&self, room: Uuid) -> Option<String> {
        let in_room = self.in_room.get(&room).map_or(0, Vec::len);
        if in_room >= self.settings.max_peers_per_room {
            return Some(format!(
                "voice in this room is full ({in_room} people are in it, the most it takes); \
                 the room itself still works, and you can join voice when someone leaves it"
            ));
        }
        if self.peers.len() >= self.settings.max_peers {
            return Some(format!(
                "this server's voice is full ({} voice connections, the most it takes); \
                 the room itself still works, and you can join voice later",
                self.peers.len()
            ));
        }
        None
    }

    // Media ----------------------------------------------------------------

    fn receive(&mut self, datagram: &[u8], source: SocketAddr) {
        let Ok(receive) = Receive::new(Protocol::Udp, source, self.local_addr, datagram) else {
            // Neither STUN, DTLS, RTP nor RTCP: a scanner, or noise.
            self.metrics.error("voice_unreadable_datagram");
            return;
        };
        let input = Input::Receive(Instant::now(), receive);
        let owner = match self.owners.get(&source) {
            Some(&member) if self.peers.contains_key(&member) => Some(member),
            _ => {
                let found = self
                    .peers
                    .iter()
                    .find(|(_, p)| p.rtc.accepts(&input))
                    .map(|(&id, _)| id);
                if let Some(member) = found {
                    self.owners.insert(source, member);
                }
                found
            }
        };
        let Some(member) = owner else {
            return;
        };
        if let Some(peer) = self.peers.get_mut(&member)
            && let Err(error) = peer.rtc.handle_input(input)
        {
            // Anyone can send a datagram from (or spoofing) a peer's
            // address: dropping the peer for one would let a stranger cut
            // anybody off. The datagram is dropped; the peer goes on, and
            // one that has truly failed stops answering STUN and is reaped.
            tracing::debug!(member, %error, "voice datagram refused by its peer; dropped");
            self.metrics.error(BAD_DATAGRAM);
        }
        self.mark(member);
    }

    /// Runs a peer's output until it only waits: sends its datagrams and
    /// handles its events. Returns the media it received, to forward (none
    /// while the member is muted).
    fn drain(&mut self, member: MemberId) -> Vec<MediaData> {
        let mut media = Vec::new();
        let muted = self.standing().muted.contains(&member);
        {
            let Some(peer) = self.peers.get_mut(&member) else {
                return media;
            };
            loop {
                if !peer.rtc.is_alive() {
                    peer.next_timeout = Instant::now();
                    break;
                }
                match peer.rtc.poll_output() {
                    Ok(Output::Timeout(at)) => {
                        peer.next_timeout = at;
                        break;
                    }
                    Ok(Output::Transmit(transmit)) => {
                        if self
                            .socket
                            .try_send_to(&transmit.contents, transmit.destination)
                            .is_err()
                        {
                            self.metrics.voice_datagrams_dropped.inc();
                        }
                    }
                    Ok(Output::Event(event)) => match event {
                        Event::MediaAdded(added)
                            if added.kind == MediaKind::Audio
                                && matches!(
                                    added.direction,
                                    Direction::RecvOnly | Direction::SendRecv
                                )
                                && peer.mic.is_none() =>
                        {
                            peer.mic = Some(added.mid);
                        }
                        Event::MediaData(data) if Some(data.mid) == peer.mic && !muted => {
                            if data
                                .ext_vals
                                .audio_level
                                .is_some_and(|level| level >= SPEECH_LEVEL_DBOV)
                            {
                                peer.last_spoke = Some(Instant::now());
                            }
                            media.push(data);
                        }
                        Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                            peer.rtc.disconnect();
                        }
                        Event::Connected => {
                            peer.connected = true;
                            tracing::debug!(member, "voice peer connected");
                        }
                        _ => {}
                    },
                    Err(error) => {
                        tracing::debug!(member, %error, "voice peer failed; dropping it");
                        peer.rtc.disconnect();
                    }
                }
            }
        }
        media
    }

    /// Marks a peer as having output to run (datagrams, events, media);
    /// [`Sfu::flush`] runs it once, however many inputs it took meanwhile.
    fn mark(&mut self, member: MemberId) {
        if let Some(peer) = self.peers.get_mut(&member)
            && !peer.dirty
        {
            peer.dirty = true;
            self.dirty.push_back(member);
        }
    }

    /// Runs every marked peer's output, forwarding its media to listeners
    /// (which marks them in turn), until none is left. First in, first out:
    /// every speaker of a batch is drained before its listeners, so each
    /// listener runs once for all the frames it was handed.
    fn flush(&mut self) {
        let mut forwarded = Vec::new();
        while let Some(member) = self.dirty.pop_front() {
            if let Some(peer) = self.peers.get_mut(&member) {
                peer.dirty = false;
            }
            for data in self.drain(member) {
                self.forward(member, &data);
                forwarded.push(data.network_time);
            }
        }
        // Every copy is on the wire now.
        let now = Instant::now();
        for arrived in forwarded {
            self.metrics
                .voice_forward_latency
                .record(now.saturating_duration_since(arrived));
        }
    }

    fn forward(&mut self, speaker: MemberId, data: &MediaData) {
        let Some(room) = self.peers.get(&speaker).map(|p| p.route.room) else {
            return;
        };
        let in_room = self.in_room.get(&room).map_or(&[][..], Vec::as_slice);
        let listeners: Vec<(MemberId, Mid)> = in_room
            .iter()
            .filter(|&&id| id != speaker)
            .filter_map(|&id| {
                let slot = self
                    .peers
                    .get(&id)?
                    .slots
                    .iter()
                    .find(|s| s.speaker == Some(speaker) && s.active && s.negotiated)?;
                Some((id, slot.mid?))
            })
            .collect();
        for (listener, mid) in listeners {
            let Some(peer) = self.peers.get_mut(&listener) else {
                continue;
            };
            let Some(writer) = peer.rtc.writer(mid) else {
                continue;
            };
            let Some(pt) = writer.match_params(data.params) else {
                continue;
            };
            let writer = match (data.ext_vals.audio_level, data.ext_vals.voice_activity) {
                (Some(level), vad) => writer.audio_level(level, vad.unwrap_or(false)),
                _ => writer,
            };
            if writer
                .write(pt, data.network_time, data.time, data.data.clone())
                .is_ok()
            {
                self.metrics.voice_frames_forwarded.inc();
                self.mark(listener);
            }
        }
    }

    fn standing(&self) -> std::sync::MutexGuard<'_, Members> {
        // A panic elsewhere in the SFU cannot leave the sets half-changed.
        self.standing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    // Cleanup --------------------------------------------------------------

    fn reap(&mut self) {
        let dead: Vec<MemberId> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                // A peer that never connects (blocked UDP, a page that went
                // away mid-offer) is let go too; a silent connected one is
                // noticed by str0m (no STUN for 15 s) and is no longer alive.
                !p.rtc.is_alive() || (!p.connected && p.joined_at.elapsed() > CONNECT_TIMEOUT)
            })
            .map(|(&id, _)| id)
            .collect();
        for member in dead {
            tracing::debug!(member, "voice peer connection closed");
            self.remove(member);
        }
    }

    fn remove(&mut self, member: MemberId) {
        let Some(peer) = self.peers.remove(&member) else {
            return;
        };
        self.metrics.voice_peers.dec();
        self.owners.retain(|_, owner| *owner != member);
        let room = peer.route.room;
        if let Some(members) = self.in_room.get_mut(&room) {
            members.retain(|&m| m != member);
            if members.is_empty() {
                self.in_room.remove(&room);
                self.heads.remove(&room);
            }
        }
        if peer.speaking {
            self.report_speaking(room, member, false);
        }
        self.reselect(peer.route.room);
    }
}

fn reply_ok(route: &Route, response: &impl Serialize) {
    if let Some(msg_ref) = &route.msg_ref {
        let _ = route
            .outbox
            .reply_ok(route.join_ref.as_deref(), msg_ref, &route.topic, response);
    }
}

/// Refuses signaling the SFU cannot use (unreadable, out of order).
fn reply_error(route: &Route, reason: String) {
    reply_refused(route, ErrorCode::InvalidPayload, reason);
}

fn reply_refused(route: &Route, code: ErrorCode, reason: String) {
    tracing::debug!(member = route.member, %reason, "voice signaling refused");
    if let Some(msg_ref) = &route.msg_ref {
        let _ = route.outbox.reply_error(
            route.join_ref.as_deref(),
            msg_ref,
            &route.topic,
            &ErrorReply::new(code, reason),
        );
    }
}

/// The first audio line of a client's offer that sends to us.
fn microphone_mid(offer: &str, rtc: &Rtc) -> Option<Mid> {
    offer
        .split("\nm=")
        .skip(1)
        .filter(|section| section.starts_with("audio"))
        .filter_map(|section| {
            section
                .lines()
                .find_map(|line| line.trim_end().strip_prefix("a=mid:"))
        })
        .map(Mid::from)
        .find(|&mid| {
            rtc.media(mid).is_some_and(|media| {
                matches!(media.direction(), Direction::RecvOnly | Direction::SendRecv)
            })
        })
}

fn distance(a: &[f32; 3], b: &[f32; 3]) -> f32 {
    let d = [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
    (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt()
}
