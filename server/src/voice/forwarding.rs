//! The SFU's media path: a datagram goes to the peer that owns its source
//! address, the peer's output runs (datagrams out, events, media in), and
//! each Opus frame from a speaker's microphone is written to the listener
//! tracks that carry that speaker, which run in turn. Everything one input
//! causes is done before the input returns, so a frame's copies leave in
//! the same turn it arrived. A datagram a peer refuses is dropped and
//! counted; the peer goes on.

use std::net::SocketAddr;
use std::time::Instant;

use str0m::media::{Direction, MediaData, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Event, IceConnectionState, Input, Output as RtcOutput};
use uuid::Uuid;

use super::MemberId;
use super::sfu::{Output, Sfu};

/// RFC 6464 levels are -dBov; louder than this counts as speech.
const SPEECH_LEVEL_DBOV: i8 = -50;
/// Timeouts already due that one drain of a peer runs at once.
const DUE_AT_ONCE: usize = 4;
/// The error kind counted for each datagram a peer refused.
const BAD_DATAGRAM: &str = "voice_bad_datagram";

impl Sfu {
    pub(super) fn receive(&mut self, from: SocketAddr, to: SocketAddr, bytes: &[u8], now: Instant) {
        let Ok(receive) = Receive::new(Protocol::Udp, from, to, bytes) else {
            // Neither STUN, DTLS, RTP nor RTCP: a scanner, or noise.
            self.metrics.error("voice_unreadable_datagram");
            return;
        };
        let input = Input::Receive(now, receive);
        let owner = match self.owners.get(&from) {
            Some(&member) if self.peers.contains_key(&member) => Some(member),
            _ => {
                let found = self
                    .peers
                    .iter()
                    .find(|(_, p)| p.rtc.accepts(&input))
                    .map(|(&id, _)| id);
                if let Some(member) = found {
                    self.owners.insert(from, member);
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

    /// Runs every marked peer's output, forwarding its media to listeners
    /// (which marks them in turn), until none is left. First in, first out:
    /// every speaker of a batch is drained before its listeners, so each
    /// listener runs once for all the frames it was handed.
    pub(super) fn flush(&mut self, now: Instant) {
        let mut media = Vec::new();
        while let Some(member) = self.dirty.pop_front() {
            self.drain(member, now, &mut media);
            for data in media.drain(..) {
                self.forward(member, &data);
            }
        }
    }

    /// Runs a peer's output until it only waits: queues its datagrams and
    /// handles its events. Puts the media it received, to forward, in
    /// `media` (none while the member is muted).
    fn drain(&mut self, member: MemberId, now: Instant, media: &mut Vec<MediaData>) {
        let muted = self.standing.muted.contains(&member);
        let Some(peer) = self.peers.get_mut(&member) else {
            return;
        };
        peer.dirty = false;
        let mut due_at_once = 0;
        let next_timeout = loop {
            if !peer.rtc.is_alive() {
                self.dead.push(member);
                break None;
            }
            match peer.rtc.poll_output() {
                // Frames written to a listener are only made into packets
                // on its next timeout, which str0m asks for at once: run it
                // now, so the copies leave with the frame that brought them
                // (a few rounds at most, so a peer that keeps asking cannot
                // hold the SFU).
                Ok(RtcOutput::Timeout(at)) if at <= now && due_at_once < DUE_AT_ONCE => {
                    due_at_once += 1;
                    if let Err(error) = peer.rtc.handle_input(Input::Timeout(now)) {
                        tracing::debug!(member, %error, "voice peer failed on a timeout");
                    }
                }
                Ok(RtcOutput::Timeout(at)) => break Some(at),
                Ok(RtcOutput::Transmit(transmit)) => {
                    self.outputs.push_back(Output::Transmit {
                        to: transmit.destination,
                        bytes: transmit.contents.into(),
                    });
                }
                Ok(RtcOutput::Event(event)) => match event {
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
                            peer.speech.heard(now);
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
        };
        if let Some(at) = next_timeout {
            self.set_timer(member, at);
        }
    }

    fn forward(&mut self, speaker: MemberId, data: &MediaData) {
        let Some(listeners) = self.routes.get(&speaker) else {
            return;
        };
        let mut copies = 0;
        for &(listener, mid) in listeners {
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
            // The payload is shared, not copied, between listeners.
            if writer
                .write(pt, data.network_time, data.time, data.data.clone())
                .is_ok()
            {
                copies += 1;
                if !peer.dirty {
                    peer.dirty = true;
                    self.dirty.push_back(listener);
                }
            }
        }
        if copies > 0 {
            self.frames_forwarded += 1;
            self.metrics.voice_frames_forwarded.add(copies);
        }
    }

    /// Recomputes, for each speaker of a room, the listener tracks that
    /// carry it: slots that are offered, answered and pointed at it.
    pub(super) fn rebuild_routes(&mut self, room: Uuid) {
        let members = self.in_room.get(&room).map_or(&[][..], Vec::as_slice);
        for speaker in members {
            if let Some(routes) = self.routes.get_mut(speaker) {
                routes.clear();
            }
        }
        for &listener in members {
            let Some(peer) = self.peers.get(&listener) else {
                continue;
            };
            for slot in &peer.slots {
                if let (Some(speaker), Some(mid), true, true) =
                    (slot.speaker, slot.mid, slot.active, slot.negotiated)
                    && speaker != listener
                {
                    self.routes
                        .entry(speaker)
                        .or_default()
                        .push((listener, mid));
                }
            }
        }
    }
}
