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
//! offered everyone's voice all the same.
//!
//! The SFU enforces what the room decides: a muted member's voice is not
//! forwarded at all and it stops counting as speaking at once; a member that
//! left the room loses its peer, and an offer it sent before leaving starts
//! none; a member a moderator removed gets no voice in that room while the
//! removal lasts, even through a channel its connection still holds. Mutes
//! and departures travel on their own unbounded queue, taken before any
//! other work each turn, so no flood of signaling can delay or lose them;
//! signaling has a bounded queue and a flood beyond it is answered "busy".
//! Voice peers are capped per room and per server: an offer beyond a cap is
//! refused with a reason, and the room goes on without voice for that member.
//! A datagram a peer cannot take (garbage, a malformed DTLS record) is
//! dropped and counted; the peer stays connected.
//!
//! The logic is [`Sfu`], a state machine without I/O (`sfu.rs`, split into
//! `signaling.rs`, `forwarding.rs` and `speakers.rs` over `selection.rs`);
//! `task.rs` is the loop around it that owns the UDP socket, the clock, the
//! queues and each member's [`ChannelAddress`] (a panic inside the SFU
//! restarts it there, keeping who is muted or departed). `tests.rs` drives
//! the SFU in memory against real str0m client peers on a fake clock. This
//! module knows rooms only by id and member ids, and reaches them only
//! through the [`RoomLink`] it is started with; replies and pushes leave
//! through [`ChannelAddress`]; it knows nothing of WebSockets, room actors
//! or storage.

mod forwarding;
mod selection;
mod sfu;
mod signaling;
mod speakers;
mod task;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result};
use roomscale_protocol::events::IceCandidate;
use tokio::sync::mpsc;
use uuid::Uuid;

pub use self::sfu::{
    Control, Input, Message, Outgoing, Output, Request, Sfu, SfuConfig, Signal, Standing,
};
use crate::address::ChannelAddress;
use crate::metrics::Metrics;

/// A member of a room, as the room numbers it: one per joined channel.
pub type MemberId = u64;

/// What the SFU needs from the rooms, handed to [`Voice::start`].
pub trait RoomLink: Send + Sync + 'static {
    /// A member started or stopped speaking. The end of speech must reach
    /// a busy room too, so that no indicator stays lit over a muted or
    /// departed member.
    fn speaking(&self, room: Uuid, member: MemberId, speaking: bool);
    /// How long a moderator's removal of `user_id` from `room` still lasts,
    /// if it does.
    fn removed_for(&self, room: Uuid, user_id: &str) -> Option<Duration>;
}

/// What the voice socket's send and receive buffers are asked to hold.
const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// Signaling commands waiting for the SFU; a flood beyond this gets "busy"
/// errors.
const SIGNALING_QUEUE: usize = 1024;

#[derive(Debug, Clone)]
pub struct VoiceSettings {
    /// Where the UDP socket binds; port 0 picks a free one.
    pub bind: SocketAddr,
    /// An address clients can reach the socket at, when it differs from the
    /// bind address (a server behind NAT): announced as an extra candidate.
    pub public_ip: Option<IpAddr>,
    /// The most voices one listener receives at a time.
    pub max_speakers: usize,
    /// The most voice peers in one room; offers beyond it are refused.
    pub max_peers_per_room: usize,
    /// The most voice peers on the whole server.
    pub max_peers: usize,
}

/// Handle to the running SFU; cheap to clone.
#[derive(Debug, Clone)]
pub struct Voice {
    signaling: mpsc::UnboundedSender<Command>,
    /// Signaling commands sent and not yet taken by the SFU: the bound that
    /// makes the signaling queue answer "busy".
    queued: Arc<AtomicUsize>,
    control: mpsc::UnboundedSender<Control>,
    local_addr: SocketAddr,
}

/// Where a signaling push came from, so the SFU can reply to it in order with
/// the offers it sends afterwards.
#[derive(Debug, Clone)]
pub struct Route {
    pub member: MemberId,
    pub user_id: Arc<str>,
    pub room: Uuid,
    /// The member's channel: replies and the SFU's own pushes go there.
    pub address: ChannelAddress,
    /// The push's ref, for its reply; none when it expects no reply.
    pub msg_ref: Option<Arc<str>>,
}

/// Signaling and other work that may be refused when the SFU is behind.
#[derive(Debug)]
enum Command {
    Signal {
        route: Route,
        request: Request,
    },
    Positions {
        room: Uuid,
        heads: Vec<(MemberId, [f32; 3])>,
    },
    /// Sent behind a member's [`Control::Leave`] on this queue (never
    /// refused, not counted against its bound): once it comes out, no
    /// signaling the member sent before leaving is left in the queue, and
    /// the SFU may forget that the member left.
    Forget {
        member: MemberId,
    },
    /// Test hook: make the SFU panic, to exercise its restart.
    #[cfg(feature = "test-hooks")]
    InjectPanic,
}

impl Command {
    /// Whether the command holds one of the signaling queue's places.
    fn is_counted(&self) -> bool {
        !matches!(self, Command::Forget { .. })
    }
}

/// The receiving ends of the SFU's queues, kept by its supervisor so that a
/// restarted SFU goes on with what was waiting.
struct Inbox {
    /// Membership changes the room decides ([`Control::SetMuted`],
    /// [`Control::Leave`]): never refused, never lost, and applied before
    /// any other work the SFU has waiting. The number of members bounds
    /// them in practice.
    control: mpsc::UnboundedReceiver<Control>,
    signaling: mpsc::UnboundedReceiver<Command>,
    queued: Arc<AtomicUsize>,
}

impl Voice {
    /// Binds the UDP socket and starts the SFU task; `rooms` hears who
    /// speaks and says who was removed.
    pub fn start(
        settings: VoiceSettings,
        rooms: Arc<dyn RoomLink>,
        metrics: Arc<Metrics>,
    ) -> Result<Voice> {
        let socket = std::net::UdpSocket::bind(settings.bind).with_context(|| {
            format!(
                "could not bind the voice UDP socket on {}; choose another port with --voice-port",
                settings.bind
            )
        })?;
        socket.set_nonblocking(true)?;
        // One socket carries every peer: its send buffer holds what the
        // receivers have yet to take (all of it, on loopback), and a full
        // one drops datagrams. The kernel may grant less than asked.
        let buffers = socket2::SockRef::from(&socket);
        if let Err(error) = buffers
            .set_send_buffer_size(SOCKET_BUFFER_BYTES)
            .and_then(|()| buffers.set_recv_buffer_size(SOCKET_BUFFER_BYTES))
        {
            tracing::warn!(%error, "could not enlarge the voice socket's buffers; voice may drop datagrams under load");
        }
        let socket = tokio::net::UdpSocket::from_std(socket)?;
        let local_addr = socket.local_addr()?;
        let (signaling, signaling_rx) = mpsc::unbounded_channel();
        let (control, control_rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let public_ip = settings.public_ip;
        let config = SfuConfig {
            local_addr,
            public_ip,
            max_speakers: settings.max_speakers,
            max_peers_per_room: settings.max_peers_per_room,
            max_peers: settings.max_peers,
        };
        tokio::spawn(task::supervise(
            task::Shared {
                socket,
                config,
                rooms,
                metrics,
            },
            Inbox {
                control: control_rx,
                signaling: signaling_rx,
                queued: queued.clone(),
            },
        ));
        tracing::info!(%local_addr, "voice listening on udp");
        if local_addr.ip().is_unspecified() && public_ip.is_none() {
            tracing::warn!(
                "voice is bound to {local_addr}, which no visitor can be told to reach: \
                 set --voice-public-ip to the address visitors use"
            );
        }
        Ok(Voice {
            signaling,
            queued,
            control,
            local_addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// An offer from a client: starts its voice, or renegotiates it.
    pub fn offer(&self, route: Route, sdp: String) -> Result<(), Busy> {
        self.signal(route, Request::Offer(sdp))
    }

    /// The client's answer to the server's last offer.
    pub fn answer(&self, route: Route, sdp: String) -> Result<(), Busy> {
        self.signal(route, Request::Answer(sdp))
    }

    pub fn ice(&self, route: Route, candidate: IceCandidate) -> Result<(), Busy> {
        self.signal(route, Request::Ice(candidate))
    }

    /// The client left voice (it stays in the room): drop its peer, reply.
    pub fn leave_voice(&self, route: Route) -> Result<(), Busy> {
        self.signal(route, Request::LeaveVoice)
    }

    /// Mutes or unmutes a member's voice at the SFU (it may join voice
    /// later). Never lost, whatever else the SFU has waiting.
    pub fn set_muted(&self, member: MemberId, muted: bool) {
        // Fails only when the SFU is gone, and with it every peer.
        let _ = self.control.send(Control::SetMuted { member, muted });
    }

    /// The member left the room (or its socket closed, or it was removed):
    /// drop its peer; an offer it sent before leaving that still waits in
    /// the queue starts none. Never lost, whatever else the SFU has waiting.
    pub fn leave(&self, member: MemberId) {
        // Fails only when the SFU is gone, and with it every peer.
        let _ = self.control.send(Control::Leave { member });
        let _ = self.signaling.send(Command::Forget { member });
    }

    /// The room's head positions, for choosing the nearest speakers.
    pub fn positions(&self, room: Uuid, heads: Vec<(MemberId, [f32; 3])>) {
        let _ = self.send(Command::Positions { room, heads });
    }

    /// Test hook: make the SFU panic; it starts afresh.
    #[cfg(feature = "test-hooks")]
    pub fn inject_panic(&self) -> Result<(), Busy> {
        self.send(Command::InjectPanic)
    }

    fn signal(&self, route: Route, request: Request) -> Result<(), Busy> {
        self.send(Command::Signal { route, request })
    }

    fn send(&self, command: Command) -> Result<(), Busy> {
        // Take a place first, so that concurrent senders never pass the bound.
        if self.queued.fetch_add(1, Ordering::AcqRel) >= SIGNALING_QUEUE {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy);
        }
        self.signaling.send(command).map_err(|_| {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            Busy
        })
    }
}

/// The SFU's queue is full (or it stopped); the push should be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;
