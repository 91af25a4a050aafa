//! Who speaks, and whom each listener hears: the SFU's side of speaker
//! choice. Speaking is detected from the RFC 6464 audio level of a
//! speaker's frames and ends after a hangover (or at once on a mute or a
//! departure); every [`RESELECT_EVERY`](super::sfu::RESELECT_EVERY) each
//! room's listeners get their speakers re-chosen by the rules of
//! `selection.rs`, and a listener whose slots changed is offered the change
//! and told who is on which track (`voice_tracks`).

use std::time::Instant;

use roomscale_protocol::events::{VoiceTrack, VoiceTracks};
use str0m::media::Mid;
use uuid::Uuid;

use super::MemberId;
use super::selection::{self, Candidate};
use super::sfu::{Message, Output, Sfu, Slot};

impl Sfu {
    /// Re-chooses every listener's speakers in a room, re-pointing slots, and
    /// offers or announces what changed.
    pub(super) fn reselect(&mut self, room: Uuid, now: Instant) {
        let heads = self.heads.get(&room);
        let listeners: Vec<MemberId> = self.in_room.get(&room).cloned().unwrap_or_default();
        let speakers: Vec<(MemberId, Option<Instant>)> = listeners
            .iter()
            .filter_map(|id| self.peers.get(id).map(|p| (*id, p)))
            .filter(|(_, p)| p.mic.is_some())
            .map(|(id, p)| (id, p.speech.last_spoke()))
            .collect();
        let limit = self.config.max_speakers;
        for &listener in &listeners {
            let here = heads.and_then(|h| h.get(&listener));
            let candidates: Vec<Candidate> = speakers
                .iter()
                .filter(|(id, _)| *id != listener)
                .map(|&(speaker, last_spoke)| Candidate {
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
        }
        // Also when nothing changed now: an earlier change may still wait
        // for the peer's microphone line or for its answer.
        for &listener in &listeners {
            self.offer_if_needed(listener);
            self.announce(listener);
        }
        self.rebuild_routes(room);
    }

    /// Sends `voice_tracks` when the listener's slot map changed. Runs for
    /// every listener on every selection tick, so the map is compared as
    /// numbers and only spelled out when it changed.
    fn announce(&mut self, listener: MemberId) {
        let Some(peer) = self.peers.get(&listener) else {
            return;
        };
        let now_on: Vec<(u16, Mid, MemberId)> = peer
            .slots
            .iter()
            .enumerate()
            .filter_map(|(index, slot)| {
                let speaker = slot.speaker.filter(|s| self.peers.contains_key(s))?;
                Some((index as u16, slot.mid?, speaker))
            })
            .collect();
        if peer.announced == now_on {
            return;
        }
        let tracks = VoiceTracks {
            tracks: now_on
                .iter()
                .filter_map(|&(slot, mid, speaker)| {
                    Some(VoiceTrack {
                        mid: mid.to_string(),
                        user_id: self.peers.get(&speaker)?.user_id.to_string(),
                        slot,
                    })
                })
                .collect(),
        };
        if let Some(peer) = self.peers.get_mut(&listener) {
            peer.announced = now_on;
        }
        self.send(listener, Message::Tracks(tracks));
    }

    /// Ends speaking for those whose hangover ran out, and reports changes.
    pub(super) fn update_speaking(&mut self, now: Instant) {
        for (&member, peer) in &mut self.peers {
            if let Some(speaking) = peer.speech.update(now) {
                self.outputs.push_back(Output::Speaking {
                    room: peer.room,
                    member,
                    speaking,
                });
            }
        }
    }
}

fn distance(a: &[f32; 3], b: &[f32; 3]) -> f32 {
    let d = [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
    (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt()
}
