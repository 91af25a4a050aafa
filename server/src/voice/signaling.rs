//! The SFU's signaling: a client's offer starts (or renegotiates) its peer,
//! answers settle the SFU's own offers, ICE candidates reach the peer, and
//! leaving voice drops it. Peers are capped per room and per server; a
//! member that left the room, or that a moderator removed, starts none.
//! From the first offer on, the SFU makes the offers (adding or parking a
//! listener's tracks as speakers come and go) and the client answers, so
//! offers never cross.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use roomscale_protocol::events::{ErrorCode, ErrorReply, IceCandidate, SessionDescription};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{Direction, MediaKind, Mid};
use str0m::{Candidate, Rtc};

use super::MemberId;
use super::selection::Speech;
use super::sfu::{Message, Peer, RESELECT_EVERY, Request, Sfu, Signal};

/// Where a reply to one signaling push goes.
struct Asker {
    member: MemberId,
    msg_ref: Option<Arc<str>>,
}

impl Sfu {
    pub(super) fn signal(&mut self, signal: Signal, now: Instant) {
        let asker = Asker {
            member: signal.member,
            msg_ref: signal.msg_ref.clone(),
        };
        match signal.request {
            Request::Offer(ref sdp) => {
                let sdp = sdp.clone();
                self.offer(signal, asker, &sdp, now)
            }
            Request::Answer(ref sdp) => self.answer(&asker, sdp),
            Request::Ice(ref candidate) => self.ice(&asker, candidate),
            Request::LeaveVoice => {
                self.remove(asker.member, now);
                self.reply_ok(&asker);
            }
        }
    }

    fn offer(&mut self, signal: Signal, asker: Asker, sdp: &str, now: Instant) {
        let offer = match SdpOffer::from_sdp_string(sdp) {
            Ok(offer) => offer,
            Err(error) => {
                return self.reply_invalid(&asker, format!("unreadable SDP offer: {error}"));
            }
        };
        let member = signal.member;
        if self.standing.departed.contains(&member) {
            // Sent before the member left the room, and only now taken.
            return self.refuse(
                &asker,
                ErrorCode::NotJoined,
                "you are no longer in this room; join it again to use voice".into(),
            );
        }
        if let Some(peer) = self.peers.get_mut(&member) {
            if peer.pending.is_some() {
                return self.reply_invalid(
                    &asker,
                    "the server's offer is waiting for your answer; answer it (rtc_answer), then offer again".into(),
                );
            }
            match peer.rtc.sdp_api().accept_offer(offer) {
                Ok(answer) => self.reply_answer(&asker, answer.to_sdp_string()),
                Err(error) => self.reply_invalid(&asker, format!("offer rejected: {error}")),
            }
            self.mark(member);
            return;
        }
        // A removed member's connection may still hold the room's channel
        // (the room closed it, the client need not listen): its old member
        // id must not bring voice back while the removal lasts.
        if let Some(left) = signal.removed_for {
            return self.refuse(
                &asker,
                ErrorCode::Removed,
                format!(
                    "a moderator removed you from this room; you may rejoin it, and its voice, \
                     in {} min",
                    left.as_secs().div_ceil(60).max(1)
                ),
            );
        }
        if let Some(reason) = self.over_cap(signal.room) {
            self.metrics.error(ErrorCode::LimitReached.as_str());
            return self.refuse(&asker, ErrorCode::LimitReached, reason);
        }
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .clear_codecs()
            .enable_opus(true, false)
            .build(now);
        if let Ok(candidate) = Candidate::host(self.config.local_addr, "udp") {
            rtc.add_local_candidate(candidate);
        }
        if let Some(ip) = self.config.public_ip {
            let public = SocketAddr::new(ip, self.config.local_addr.port());
            if let Ok(candidate) = Candidate::host(public, "udp") {
                rtc.add_local_candidate(candidate);
            }
        }
        let answer = match rtc.sdp_api().accept_offer(offer) {
            Ok(answer) => answer,
            Err(error) => {
                return self.reply_invalid(&asker, format!("offer rejected: {error}"));
            }
        };
        self.reply_answer(&asker, answer.to_sdp_string());
        tracing::debug!(member, room = %signal.room, "voice peer joined");
        // The microphone line is known from the offer at once; str0m's
        // MediaAdded event for it only comes once the connection is up.
        let mic = microphone_mid(sdp, &rtc);
        self.metrics.voice_peers.inc();
        self.in_room.entry(signal.room).or_default().push(member);
        self.peers.insert(
            member,
            Peer {
                user_id: signal.user_id,
                room: signal.room,
                rtc,
                mic,
                slots: Vec::new(),
                pending: None,
                announced: Vec::new(),
                speech: Speech::default(),
                next_timeout: None,
                dirty: false,
                joined_at: now,
                connected: false,
            },
        );
        self.next_reselect.get_or_insert(now + RESELECT_EVERY);
        self.mark(member);
        self.reselect(signal.room, now);
    }

    fn answer(&mut self, asker: &Asker, sdp: &str) {
        let member = asker.member;
        let Some(peer) = self.peers.get_mut(&member) else {
            return self.reply_invalid(
                asker,
                "no voice connection to answer for; start voice with rtc_offer".into(),
            );
        };
        let answer = match SdpAnswer::from_sdp_string(sdp) {
            Ok(answer) => answer,
            Err(error) => {
                return self.reply_invalid(asker, format!("unreadable SDP answer: {error}"));
            }
        };
        let Some(pending) = peer.pending.take() else {
            return self.reply_invalid(
                asker,
                "no offer from the server is waiting for an answer".into(),
            );
        };
        match peer.rtc.sdp_api().accept_answer(pending, answer) {
            Ok(()) => {
                for slot in &mut peer.slots {
                    slot.negotiated = true;
                }
                let room = peer.room;
                self.reply_ok(asker);
                self.mark(member);
                self.offer_if_needed(member);
                self.rebuild_routes(room);
            }
            Err(error) => {
                // The offer and the answer no longer describe one session:
                // start over rather than guess which half holds.
                self.reply_invalid(
                    asker,
                    format!("answer rejected ({error}); voice was reset: send a new rtc_offer"),
                );
                self.remove(member, self.now);
            }
        }
    }

    fn ice(&mut self, asker: &Asker, candidate: &IceCandidate) {
        let Some(peer) = self.peers.get_mut(&asker.member) else {
            return self.reply_invalid(
                asker,
                "no voice connection for this candidate; start voice with rtc_offer first".into(),
            );
        };
        let line = candidate.candidate.trim();
        if line.is_empty() {
            // End of candidates.
            return self.reply_ok(asker);
        }
        let line = line.strip_prefix("a=").unwrap_or(line);
        let parsed = Candidate::from_sdp_string(line).or_else(|_| {
            Candidate::from_sdp_string(line.strip_prefix("candidate:").unwrap_or(line))
        });
        match parsed {
            Ok(parsed) => {
                peer.rtc.add_remote_candidate(parsed);
                self.reply_ok(asker);
            }
            Err(error) => self.reply_invalid(asker, format!("unreadable ICE candidate: {error}")),
        }
    }

    /// Offers the peer its changed slots (new ones, and ones that start or
    /// stop carrying a voice), unless an offer is already out. A peer without
    /// a microphone line (a receive-only offer: listening only) is offered
    /// voices all the same.
    pub(super) fn offer_if_needed(&mut self, member: MemberId) {
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
        self.send(
            member,
            Message::Offer(SessionDescription {
                sdp: offer.to_sdp_string(),
            }),
        );
        self.mark(member);
    }

    /// Why a new peer in `room` would pass a cap on voice peers, if it would.
    fn over_cap(&self, room: uuid::Uuid) -> Option<String> {
        let in_room = self.in_room.get(&room).map_or(0, Vec::len);
        if in_room >= self.config.max_peers_per_room {
            return Some(format!(
                "voice in this room is full ({in_room} people are in it, the most it takes); \
                 the room itself still works, and you can join voice when someone leaves it"
            ));
        }
        if self.peers.len() >= self.config.max_peers {
            return Some(format!(
                "this server's voice is full ({} voice connections, the most it takes); \
                 the room itself still works, and you can join voice later",
                self.peers.len()
            ));
        }
        None
    }

    fn reply_ok(&mut self, asker: &Asker) {
        if let Some(msg_ref) = asker.msg_ref.clone() {
            self.send(asker.member, Message::Ok { msg_ref });
        }
    }

    fn reply_answer(&mut self, asker: &Asker, sdp: String) {
        if let Some(msg_ref) = asker.msg_ref.clone() {
            self.send(
                asker.member,
                Message::Answer {
                    msg_ref,
                    answer: SessionDescription { sdp },
                },
            );
        }
    }

    /// Refuses signaling the SFU cannot use (unreadable, out of order).
    fn reply_invalid(&mut self, asker: &Asker, reason: String) {
        self.refuse(asker, ErrorCode::InvalidPayload, reason);
    }

    fn refuse(&mut self, asker: &Asker, code: ErrorCode, reason: String) {
        tracing::debug!(member = asker.member, %reason, "voice signaling refused");
        if let Some(msg_ref) = asker.msg_ref.clone() {
            self.send(
                asker.member,
                Message::Refused {
                    msg_ref,
                    reason: ErrorReply::new(code, reason),
                },
            );
        }
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
