//! Voice signaling on the room channel, typed: what a WebRTC peer to the
//! server's SFU needs from the room client, exactly as the browser page
//! speaks it (`rtc_offer` with the answer in its reply, then server offers
//! answered with `rtc_answer`, `rtc_ice`, `voice_tracks`, `voice_leave`,
//! `set_muted`, `speaking`).
//!
//! [`super::RoomClient::voice_signaling`] hands out a [`VoiceSignaling`]; the
//! newest one gets the inbound voice events. It holds the room client only
//! weakly, so dropping the [`super::RoomClient`] still leaves the room.

use roomscale_protocol::events::{
    ClientEvent, IceCandidate, SessionDescription, SetMutedPush, Speaking, VoiceTracks,
};
use tokio::sync::{mpsc, oneshot};

use super::{Awaiting, ClientError, Command};

/// Inbound voice events buffered for a slow reader; beyond this they are
/// dropped (a reader that far behind restarts voice anyway).
pub(super) const VOICE_EVENT_QUEUE: usize = 256;

/// What the server says about voice, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoiceEvent {
    /// The server offers a change to the session (tracks added, parked or
    /// re-pointed); answer it with [`VoiceSignaling::answer`].
    Offer(SessionDescription),
    /// Which incoming track (by SDP mid) carries which user's voice: the
    /// whole map, replacing the previous one.
    Tracks(VoiceTracks),
    /// A trickled candidate from the server.
    Ice(IceCandidate),
    /// Someone started or stopped speaking (the SFU hears it).
    Speaking(Speaking),
    /// The room connection dropped and was joined again: the server knows
    /// this client as a new member without voice, so voice starts afresh.
    Rejoined,
}

/// The voice side of a joined room: typed pushes with typed replies, and the
/// inbound voice events.
#[derive(Debug)]
pub struct VoiceSignaling {
    commands: mpsc::WeakSender<Command>,
    events: mpsc::Receiver<VoiceEvent>,
}

impl VoiceSignaling {
    pub(super) fn new(
        commands: mpsc::WeakSender<Command>,
        events: mpsc::Receiver<VoiceEvent>,
    ) -> VoiceSignaling {
        VoiceSignaling { commands, events }
    }

    /// Starts (or restarts) voice with an offer holding this client's lines;
    /// resolves with the server's answer.
    pub async fn offer(&self, sdp: String) -> Result<SessionDescription, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.push(
            ClientEvent::RtcOffer(SessionDescription { sdp }),
            Awaiting::Description(tx),
            rx,
        )
        .await
    }

    /// Answers the server's latest offer.
    pub async fn answer(&self, sdp: String) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        self.push(
            ClientEvent::RtcAnswer(SessionDescription { sdp }),
            Awaiting::Empty(tx),
            rx,
        )
        .await
    }

    /// Trickles one of this client's candidates to the server.
    pub async fn ice(&self, candidate: IceCandidate) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        self.push(ClientEvent::RtcIce(candidate), Awaiting::Empty(tx), rx)
            .await
    }

    /// Leaves voice and stays in the room: the server drops this client's
    /// peer at once and parks its track at the others.
    pub async fn leave(&self) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        self.push(ClientEvent::VoiceLeave, Awaiting::Empty(tx), rx)
            .await
    }

    /// Mutes or unmutes this client: presence shows it and the SFU stops
    /// forwarding its voice.
    pub async fn set_muted(&self, muted: bool) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        self.push(
            ClientEvent::SetMuted(SetMutedPush { muted }),
            Awaiting::Empty(tx),
            rx,
        )
        .await
    }

    /// The next voice event; `None` once the room client is gone (or a newer
    /// [`VoiceSignaling`] took over the events).
    pub async fn next_event(&mut self) -> Option<VoiceEvent> {
        self.events.recv().await
    }

    /// A voice event already queued, without waiting.
    pub fn try_next_event(&mut self) -> Option<VoiceEvent> {
        self.events.try_recv().ok()
    }

    async fn push<T>(
        &self,
        event: ClientEvent,
        awaiting: Awaiting,
        reply: oneshot::Receiver<Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        let commands = self.commands.upgrade().ok_or(ClientError::Closed)?;
        commands
            .send(Command::Push { event, awaiting })
            .await
            .map_err(|_| ClientError::Closed)?;
        drop(commands);
        reply.await.map_err(|_| ClientError::ConnectionLost)?
    }
}
