//! Voice: the SFU inside the server. One UDP socket carries every peer
//! connection; each speaker's Opus is forwarded to the listeners of its room
//! without re-encoding, at most `max_speakers` voices per listener.
//!
//! Signaling rides the room channel (`rtc_offer`, `rtc_answer`, `rtc_ice`):
//! the client starts voice with an offer holding its microphone track and
//! gets the answer in the reply; from then on the server makes the offers
//! (adding or parking a listener's tracks as speakers come and go) and the
//! client answers them, so offers never cross. `voice_tracks` tells each
//! listener which user speaks on which track. A client that only listens
//! offers a receive-only line (or a send-only one it never sends on) and is
//! offered everyone's voice all the same. A muted member's voice is not
//! forwarded at all.
//!
//! This module knows rooms only by id and talks back to them through
//! [`crate::room::Rooms`]; it knows nothing of sockets or storage.

mod selection;
mod sfu;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};
use roomscale_protocol::events::IceCandidate;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::room::{MemberId, Rooms};

/// Commands waiting for the SFU; a flood beyond this gets "busy" errors.
const COMMAND_QUEUE: usize = 1024;

#[derive(Debug, Clone)]
pub struct VoiceSettings {
    /// Where the UDP socket binds; port 0 picks a free one.
    pub bind: SocketAddr,
    /// An address clients can reach the socket at, when it differs from the
    /// bind address (a server behind NAT): announced as an extra candidate.
    pub public_ip: Option<IpAddr>,
    /// The most voices one listener receives at a time.
    pub max_speakers: usize,
}

/// Handle to the running SFU; cheap to clone.
#[derive(Debug, Clone)]
pub struct Voice {
    commands: mpsc::Sender<Command>,
    local_addr: SocketAddr,
}

/// Where a signaling push came from, so the SFU can reply to it in order with
/// the offers it sends afterwards.
#[derive(Debug, Clone)]
pub struct Route {
    pub member: MemberId,
    pub user_id: Arc<str>,
    pub room: Uuid,
    pub topic: Arc<str>,
    pub join_ref: Option<String>,
    pub msg_ref: Option<String>,
    pub outbox: Outbox,
}

#[derive(Debug)]
enum Command {
    Offer {
        route: Route,
        sdp: String,
    },
    Answer {
        route: Route,
        sdp: String,
    },
    Ice {
        route: Route,
        candidate: IceCandidate,
    },
    /// The client left voice and stays in the room.
    LeaveVoice {
        route: Route,
    },
    /// The member is muted (or unmuted): its voice is not forwarded.
    SetMuted {
        member: MemberId,
        muted: bool,
    },
    Leave {
        member: MemberId,
    },
    Positions {
        room: Uuid,
        heads: Vec<(MemberId, [f32; 3])>,
    },
    /// Test hook: make the SFU panic, to exercise its supervisor.
    InjectPanic,
}

impl Voice {
    /// Binds the UDP socket and starts the SFU task.
    pub fn start(settings: VoiceSettings, rooms: Rooms, metrics: Arc<Metrics>) -> Result<Voice> {
        let socket = std::net::UdpSocket::bind(settings.bind).with_context(|| {
            format!(
                "could not bind the voice UDP socket on {}; choose another port with --voice-port",
                settings.bind
            )
        })?;
        socket.set_nonblocking(true)?;
        let socket = tokio::net::UdpSocket::from_std(socket)?;
        let local_addr = socket.local_addr()?;
        let (commands, inbox) = mpsc::channel(COMMAND_QUEUE);
        let public_ip = settings.public_ip;
        tokio::spawn(supervise(
            Shared {
                socket: Arc::new(socket),
                local_addr,
                settings,
                rooms,
                metrics,
                muted: Muted::default(),
            },
            inbox,
        ));
        tracing::info!(%local_addr, "voice listening on udp");
        if local_addr.ip().is_unspecified() && public_ip.is_none() {
            tracing::warn!(
                "voice is bound to {local_addr}, which no visitor can be told to reach: \
                 set --voice-public-ip to the address visitors use"
            );
        }
        Ok(Voice {
            commands,
            local_addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// An offer from a client: starts its voice, or renegotiates it.
    pub fn offer(&self, route: Route, sdp: String) -> Result<(), Busy> {
        self.send(Command::Offer { route, sdp })
    }

    /// The client's answer to the server's last offer.
    pub fn answer(&self, route: Route, sdp: String) -> Result<(), Busy> {
        self.send(Command::Answer { route, sdp })
    }

    pub fn ice(&self, route: Route, candidate: IceCandidate) -> Result<(), Busy> {
        self.send(Command::Ice { route, candidate })
    }

    /// The client left voice (it stays in the room): drop its peer, reply.
    pub fn leave_voice(&self, route: Route) -> Result<(), Busy> {
        self.send(Command::LeaveVoice { route })
    }

    /// Mutes or unmutes a member's voice at the SFU (it may join voice later).
    pub fn set_muted(&self, member: MemberId, muted: bool) {
        let _ = self.send(Command::SetMuted { member, muted });
    }

    /// The member left the room (or its socket closed): drop its peer.
    pub fn leave(&self, member: MemberId) {
        let _ = self.send(Command::Leave { member });
    }

    /// The room's head positions, for choosing the nearest speakers.
    pub fn positions(&self, room: Uuid, heads: Vec<(MemberId, [f32; 3])>) {
        let _ = self.send(Command::Positions { room, heads });
    }

    /// Test hook: make the SFU panic; its supervisor starts it afresh.
    pub fn inject_panic(&self) -> Result<(), Busy> {
        self.send(Command::InjectPanic)
    }

    fn send(&self, command: Command) -> Result<(), Busy> {
        self.commands.try_send(command).map_err(|_| Busy)
    }
}

/// Who is muted, kept outside the SFU task so that a restarted SFU still
/// knows: members stay muted across it without telling the room again.
type Muted = Arc<Mutex<HashSet<MemberId>>>;

/// What every run of the SFU starts from.
struct Shared {
    socket: Arc<tokio::net::UdpSocket>,
    local_addr: SocketAddr,
    settings: VoiceSettings,
    rooms: Rooms,
    metrics: Arc<Metrics>,
    muted: Muted,
}

/// Runs the SFU, and runs it afresh on the same socket if it panics: voice
/// peers are lost then (their pages see the connection fail and rejoin
/// voice), but voice stays available and the rooms never notice.
async fn supervise(shared: Shared, mut inbox: mpsc::Receiver<Command>) {
    use futures_util::FutureExt as _;
    let Shared {
        socket,
        local_addr,
        settings,
        rooms,
        metrics,
        muted,
    } = shared;
    loop {
        let sfu = sfu::Sfu::new(
            socket.clone(),
            local_addr,
            settings.clone(),
            rooms.clone(),
            metrics.clone(),
            muted.clone(),
        );
        match std::panic::AssertUnwindSafe(sfu.run(&mut inbox))
            .catch_unwind()
            .await
        {
            Ok(()) => return,
            Err(_) => {
                metrics.error("voice_panic");
                metrics.voice_peers.set(0);
                tracing::error!(
                    "the voice SFU panicked and was restarted; voice peers must rejoin"
                );
            }
        }
    }
}

/// The SFU's queue is full (or it stopped); the push should be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;
