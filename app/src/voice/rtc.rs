//! The voice transport: one WebRTC peer connection (webrtc-rs) to the
//! server's SFU, speaking exactly the browser page's signaling on the room
//! channel, with Opus frames in and out.
//!
//! The media side hands [`VoiceTransport::send_opus`] its 20 ms Opus frames
//! (they become RTP on the outgoing track, with the RFC 6464 audio level the
//! SFU uses to tell who speaks) and reads [`ReceivedOpus`] packets, each
//! attributed to the user `voice_tracks` names for its track.
//!
//! Signaling, as the page does it: the client offers first (its microphone
//! line, or a receive-only line when it only listens) and gets the answer in
//! the reply; after that only the server offers (a track added, parked or
//! re-pointed per speaker) and the client answers, so offers never cross.
//!
//! Voice starts over by itself when the connection fails (the SFU restarted,
//! the network changed) and when the room was joined again after a drop; a
//! `voice_leave` first makes sure the server holds no stale peer of ours.
//!
//! What arrives is checked before it is passed on: a payload that is no
//! well-formed Opus packet, or a packet on a track no `voice_tracks` entry
//! names, is counted and dropped (and said so on stderr), never attributed
//! to anyone.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use roomscale_protocol::events::{IceCandidate, VoiceTracks};
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::configure_rtcp_reports;
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_OPUS;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use tokio::sync::{mpsc, watch};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceCandidateInit, RTCIceGatheringState, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, RTCSessionDescription,
};
use webrtc::rtp_transceiver::{
    RTCRtpReceiverId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit,
};

use crate::client::{ClientError, ServerUrl, VoiceEvent, VoiceSignaling};

/// Opus at 48 kHz: RTP timestamps count samples at this rate.
pub const OPUS_CLOCK_RATE: u32 = 48_000;
/// Samples in one 20 ms frame.
pub const FRAME_SAMPLES: u32 = 960;
/// The payload type offered for Opus (what browsers and str0m use too).
const OPUS_PAYLOAD_TYPE: u8 = 111;
/// RFC 6464: the speaker's level in each packet, read by the SFU.
const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// Frames waiting for the sender task; a stalled network drops beyond this
/// rather than delaying every later frame.
const SEND_QUEUE: usize = 16;
/// Received packets waiting for the media side.
const RECEIVE_QUEUE: usize = 1024;
/// How long ICE candidate gathering may take before the offer goes out
/// with what it has (the rest trickle).
const GATHER_LIMIT: Duration = Duration::from_secs(2);
/// Voice restarts back off from this to [`RESTART_BACKOFF_MAX`].
const RESTART_BACKOFF_FIRST: Duration = Duration::from_millis(250);
const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A connection that stayed up this long resets the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(30);
/// Log the first drop of a kind, then one in this many.
const LOG_EVERY: u64 = 500;

/// How the transport connects.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Send a microphone track; `false` joins listen-only (a receive-only
    /// offer) and hears everyone.
    pub microphone: bool,
    /// Local addresses to gather host candidates on. A server on loopback
    /// is reached from `127.0.0.1:0` (a wildcard bind skips loopback).
    pub udp_addrs: Vec<SocketAddr>,
    /// Silence on the connection before ICE calls it disconnected, and
    /// then before it calls it failed and voice starts over.
    pub ice_disconnected_after: Duration,
    pub ice_failed_after: Duration,
}

impl TransportConfig {
    /// The settings for a server at `server`: loopback candidates when it is
    /// on this machine's loopback, every interface otherwise.
    pub fn for_server(server: &ServerUrl, microphone: bool) -> TransportConfig {
        let host = server.host();
        let loopback = host == "localhost"
            || host
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        let udp_addr = if loopback {
            SocketAddr::from(([127, 0, 0, 1], 0))
        } else {
            SocketAddr::from(([0, 0, 0, 0], 0))
        };
        TransportConfig {
            microphone,
            udp_addrs: vec![udp_addr],
            ice_disconnected_after: Duration::from_secs(3),
            ice_failed_after: Duration::from_secs(4),
        }
    }
}

/// The RFC 6464 level of a frame: `dbov` is minus its level in dBov
/// (0 = full scale, 127 = silence), `voice` whether it holds speech.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioLevel {
    pub dbov: u8,
    pub voice: bool,
}

impl AudioLevel {
    /// The level of `samples` (full scale ±1.0), as RFC 6464 computes it
    /// (RMS relative to a full-scale square wave).
    pub fn from_samples(samples: &[f32], voice: bool) -> AudioLevel {
        let energy: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
        let rms = (energy / samples.len().max(1) as f64).sqrt();
        let dbov = if rms <= 0.0 {
            127.0
        } else {
            (-20.0 * rms.log10()).clamp(0.0, 127.0)
        };
        AudioLevel {
            dbov: dbov.round() as u8,
            voice,
        }
    }

    fn byte(self) -> u8 {
        (u8::from(self.voice) << 7) | self.dbov.min(127)
    }
}

/// One encoded frame to send.
#[derive(Debug, Clone)]
pub struct OpusFrame {
    pub payload: Bytes,
    /// Where the frame's first sample lies in the capture stream, in samples
    /// at 48 kHz since capture started. Frames left out (DTX, mute) are a
    /// gap here, so the RTP timestamps keep real time.
    pub sample: u64,
    /// The frame's level, for the SFU's choice of who speaks.
    pub level: Option<AudioLevel>,
}

/// One RTP Opus packet received, and whose voice it is.
#[derive(Debug, Clone)]
pub struct ReceivedOpus {
    pub user_id: Arc<str>,
    /// The SDP mid of the track it came on.
    pub mid: Arc<str>,
    pub ssrc: u32,
    pub sequence: u16,
    pub timestamp: u32,
    /// Set on the first packet of a talkspurt.
    pub marker: bool,
    pub arrival: Instant,
    pub payload: Bytes,
}

/// Where voice stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoiceStatus {
    /// Offering, connecting.
    Joining,
    /// Media flows.
    Connected,
    /// The connection was lost; voice starts over by itself.
    Reconnecting(String),
    /// Voice is off: left, or the room is gone.
    Off(String),
}

/// Counters for tests, benchmarks and the debug view.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportStats {
    pub frames_sent: u64,
    /// Frames dropped before the wire: not connected yet, queue full, muted.
    pub frames_not_sent: u64,
    pub packets_received: u64,
    /// Payloads that are no well-formed Opus packet (or carry another codec).
    pub malformed: u64,
    /// Packets on a track no `voice_tracks` entry names.
    pub unattributed: u64,
    /// Packets the media side did not take in time.
    pub receive_overflow: u64,
    /// Times voice started over after a failure or a room rejoin.
    pub restarts: u64,
}

/// A running voice connection. Dropping it leaves voice (without telling
/// the server, which drops the peer when it goes silent); [`Self::leave`]
/// tells it.
#[derive(Debug)]
pub struct VoiceTransport {
    frames: mpsc::Sender<OpusFrame>,
    commands: mpsc::UnboundedSender<TransportCommand>,
    status: watch::Receiver<VoiceStatus>,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
enum TransportCommand {
    SetMuted(bool),
    Leave(tokio::sync::oneshot::Sender<()>),
}

impl VoiceTransport {
    /// Joins voice on `signaling`'s room and keeps it up; the second half
    /// is the stream of received packets, for the media side.
    pub fn start(
        signaling: VoiceSignaling,
        config: TransportConfig,
    ) -> (VoiceTransport, mpsc::Receiver<ReceivedOpus>) {
        let (frames, frame_rx) = mpsc::channel(SEND_QUEUE);
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (status_tx, status) = watch::channel(VoiceStatus::Joining);
        let (received_tx, received) = mpsc::channel(RECEIVE_QUEUE);
        let shared = Arc::new(Shared {
            counters: Counters::default(),
            tracks: watch::channel(Arc::new(TrackMap::default())).0,
            speaking: watch::channel(Arc::new(BTreeSet::new())).0,
            outgoing: watch::channel(None).0,
            muted: watch::channel(false).0,
            received: received_tx,
        });
        tokio::spawn(send_frames(frame_rx, shared.clone()));
        let task = tokio::spawn(
            Connection {
                signaling,
                config,
                shared: shared.clone(),
                status: status_tx,
                commands: command_rx,
                generation: 0,
            }
            .run(),
        );
        (
            VoiceTransport {
                frames,
                commands,
                status,
                shared,
                task,
            },
            received,
        )
    }

    /// Queues a frame for the wire; never blocks, so the audio thread may
    /// call it. Returns false when it was dropped (not connected, muted, or
    /// the network is behind).
    pub fn send_opus(&self, frame: OpusFrame) -> bool {
        if *self.shared.muted.borrow() {
            self.shared.counters.frames_not_sent.add();
            return false;
        }
        match self.frames.try_send(frame) {
            Ok(()) => true,
            Err(_) => {
                self.shared.counters.frames_not_sent.add();
                false
            }
        }
    }

    /// Mutes or unmutes: nothing of ours is sent while muted, presence shows
    /// it, and the SFU forwards nothing of ours either.
    pub fn set_muted(&self, muted: bool) {
        self.shared.muted.send_replace(muted);
        let _ = self.commands.send(TransportCommand::SetMuted(muted));
    }

    pub fn muted(&self) -> bool {
        *self.shared.muted.borrow()
    }

    /// Where voice stands, and its changes.
    pub fn status(&self) -> watch::Receiver<VoiceStatus> {
        self.status.clone()
    }

    /// Which user speaks on which track (mid), as the server last said.
    pub fn tracks(&self) -> HashMap<String, String> {
        self.shared
            .tracks
            .borrow()
            .by_mid
            .iter()
            .map(|(mid, user)| (mid.to_string(), user.to_string()))
            .collect()
    }

    /// Who the SFU hears speaking now (user ids).
    pub fn speaking(&self) -> BTreeSet<String> {
        (**self.shared.speaking.borrow()).clone()
    }

    pub fn stats(&self) -> TransportStats {
        self.shared.counters.snapshot()
    }

    /// Leaves voice: tells the server (which parks our track at the others
    /// at once) and closes the connection. Frames sent afterwards are dropped.
    pub async fn leave(&self) {
        let (done, finished) = tokio::sync::oneshot::channel();
        if self.commands.send(TransportCommand::Leave(done)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(5), finished).await;
        }
    }
}

impl Drop for VoiceTransport {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// State shared by the connection task, the sender and the track readers ----

#[derive(Debug)]
struct Shared {
    counters: Counters,
    tracks: watch::Sender<Arc<TrackMap>>,
    speaking: watch::Sender<Arc<BTreeSet<String>>>,
    /// The current connection's outgoing track, once it can carry media.
    outgoing: watch::Sender<Option<Outgoing>>,
    muted: watch::Sender<bool>,
    received: mpsc::Sender<ReceivedOpus>,
}

#[derive(Debug, Default)]
struct Counter(AtomicU64);

impl Counter {
    /// Adds one; returns the new count.
    fn add(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }
    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
struct Counters {
    frames_sent: Counter,
    frames_not_sent: Counter,
    packets_received: Counter,
    malformed: Counter,
    unattributed: Counter,
    receive_overflow: Counter,
    restarts: Counter,
}

impl Counters {
    fn snapshot(&self) -> TransportStats {
        TransportStats {
            frames_sent: self.frames_sent.get(),
            frames_not_sent: self.frames_not_sent.get(),
            packets_received: self.packets_received.get(),
            malformed: self.malformed.get(),
            unattributed: self.unattributed.get(),
            receive_overflow: self.receive_overflow.get(),
            restarts: self.restarts.get(),
        }
    }
}

/// Which user's voice each incoming track (by mid) carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackMap {
    by_mid: HashMap<Arc<str>, Arc<str>>,
}

impl TrackMap {
    pub fn from_tracks(tracks: &VoiceTracks) -> TrackMap {
        TrackMap {
            by_mid: tracks
                .tracks
                .iter()
                .map(|t| (Arc::from(t.mid.as_str()), Arc::from(t.user_id.as_str())))
                .collect(),
        }
    }

    pub fn user(&self, mid: &str) -> Option<&Arc<str>> {
        self.by_mid.get(mid)
    }
}

/// Why a received packet was not passed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dropped {
    /// Not a well-formed Opus packet, or not the Opus payload type.
    Malformed(&'static str),
    /// No `voice_tracks` entry names its track (or its track has no mid).
    Unattributed,
}

/// Decides whose voice a received packet is, or why it is dropped. Pure, so
/// the rules are tested without a network.
pub fn attribute(
    tracks: &TrackMap,
    mid: Option<&str>,
    opus_payload_types: &[u8],
    payload_type: u8,
    payload: &[u8],
) -> Result<Arc<str>, Dropped> {
    if !opus_payload_types.contains(&payload_type) {
        return Err(Dropped::Malformed("payload type is not Opus"));
    }
    check_opus_packet(payload).map_err(Dropped::Malformed)?;
    mid.and_then(|mid| tracks.user(mid))
        .cloned()
        .ok_or(Dropped::Unattributed)
}

/// Checks the framing rules of RFC 6716 §3.4 (R1–R7) that a decoder relies
/// on; `Err` names the broken one.
pub fn check_opus_packet(packet: &[u8]) -> Result<(), &'static str> {
    const MAX_FRAME: usize = 1275;
    let Some((&toc, rest)) = packet.split_first() else {
        return Err("empty payload");
    };
    // Frame duration in units of 2.5 ms, from the TOC's configuration.
    let config = toc >> 3;
    let frame_units: u32 = match config {
        0..=11 => [4, 8, 16, 24][usize::from(config % 4)],
        12..=15 => [4, 8][usize::from(config % 2)],
        _ => [1, 2, 4, 8][usize::from(config % 4)],
    };
    // A frame length: one byte below 252, else two.
    let length = |bytes: &[u8]| -> Option<(usize, usize)> {
        match bytes {
            [first, ..] if *first < 252 => Some((usize::from(*first), 1)),
            [first, second, ..] => Some((usize::from(*first) + 4 * usize::from(*second), 2)),
            _ => None,
        }
    };
    match toc & 0b11 {
        0 => {
            if rest.len() > MAX_FRAME {
                return Err("frame longer than 1275 bytes");
            }
        }
        1 => {
            if rest.len() % 2 != 0 {
                return Err("two equal frames of odd total length");
            }
            if rest.len() / 2 > MAX_FRAME {
                return Err("frame longer than 1275 bytes");
            }
        }
        2 => {
            let (first, used) = length(rest).ok_or("frame length missing")?;
            let remaining = rest.len() - used;
            if first > remaining {
                return Err("first frame longer than the packet");
            }
            if first > MAX_FRAME || remaining - first > MAX_FRAME {
                return Err("frame longer than 1275 bytes");
            }
        }
        _ => {
            let (&count_byte, mut rest) = rest.split_first().ok_or("frame count missing")?;
            let count = usize::from(count_byte & 0x3f);
            if count == 0 {
                return Err("no frames");
            }
            if count as u32 * frame_units > 48 {
                return Err("more than 120 ms of audio");
            }
            if count_byte & 0x40 != 0 {
                // Padding: bytes of 255 add 254 each, the last one its value.
                let mut padding = 0usize;
                loop {
                    let (&p, after) = rest.split_first().ok_or("padding length missing")?;
                    rest = after;
                    padding += if p == 255 { 254 } else { usize::from(p) };
                    if p != 255 {
                        break;
                    }
                }
                if padding > rest.len() {
                    return Err("padding longer than the packet");
                }
                rest = &rest[..rest.len() - padding];
            }
            if count_byte & 0x80 == 0 {
                if rest.len() % count != 0 {
                    return Err("constant-bitrate frames of unequal length");
                }
                if rest.len() / count > MAX_FRAME {
                    return Err("frame longer than 1275 bytes");
                }
            } else {
                let mut total = 0usize;
                for _ in 1..count {
                    let (frame, used) = length(rest).ok_or("frame length missing")?;
                    if frame > MAX_FRAME {
                        return Err("frame longer than 1275 bytes");
                    }
                    rest = &rest[used..];
                    total += frame;
                }
                if total > rest.len() {
                    return Err("frames longer than the packet");
                }
                if rest.len() - total > MAX_FRAME {
                    return Err("frame longer than 1275 bytes");
                }
            }
        }
    }
    Ok(())
}

// Sending ------------------------------------------------------------------

/// The current connection's microphone track and what its RTP needs.
#[derive(Clone)]
struct Outgoing {
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    payload_type: u8,
    /// The negotiated id of the audio-level extension, if the SFU took it.
    level_extension: Option<u8>,
    /// Random starting points, per connection, as RFC 3550 asks.
    first_sequence: u16,
    timestamp_base: u32,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing")
            .field("ssrc", &self.ssrc)
            .field("payload_type", &self.payload_type)
            .field("level_extension", &self.level_extension)
            .finish_non_exhaustive()
    }
}

/// Turns queued frames into RTP on the current connection's track.
async fn send_frames(mut frames: mpsc::Receiver<OpusFrame>, shared: Arc<Shared>) {
    let mut outgoing_rx = shared.outgoing.subscribe();
    let mut sequence = 0u16;
    let mut ssrc = None;
    let mut last_sample: Option<u64> = None;
    while let Some(frame) = frames.recv().await {
        let outgoing = outgoing_rx.borrow_and_update().clone();
        let Some(out) = outgoing else {
            shared.counters.frames_not_sent.add();
            last_sample = None;
            continue;
        };
        if ssrc != Some(out.ssrc) {
            ssrc = Some(out.ssrc);
            sequence = out.first_sequence;
            last_sample = None;
        }
        // A talkspurt starts after a gap (DTX, mute, a new connection).
        let marker = last_sample.is_none_or(|last| frame.sample > last + u64::from(FRAME_SAMPLES));
        last_sample = Some(frame.sample);
        let mut header = rtp::header::Header {
            version: 2,
            marker,
            payload_type: out.payload_type,
            sequence_number: sequence,
            timestamp: out.timestamp_base.wrapping_add(frame.sample as u32),
            ssrc: out.ssrc,
            ..Default::default()
        };
        if let (Some(id), Some(level)) = (out.level_extension, frame.level) {
            let _ = header.set_extension(id, Bytes::copy_from_slice(&[level.byte()]));
        }
        sequence = sequence.wrapping_add(1);
        let packet = rtp::packet::Packet {
            header,
            payload: frame.payload,
        };
        match out.track.write_rtp(packet).await {
            Ok(()) => shared.counters.frames_sent.add(),
            Err(_) => shared.counters.frames_not_sent.add(),
        };
    }
}

// Receiving ----------------------------------------------------------------

/// Reads one remote track until it ends, passing on what is attributable.
async fn read_track(track: Arc<dyn TrackRemote>, pc: Arc<dyn PeerConnection>, shared: Arc<Shared>) {
    let mut mid: Option<Arc<str>> = None;
    let mut opus_payload_types = vec![OPUS_PAYLOAD_TYPE];
    let tracks = shared.tracks.subscribe();
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnOpen(init) => {
                if let Some((found_mid, pts)) = describe_receiver(&pc, init.receiver_id).await {
                    mid = found_mid.map(Arc::from);
                    if !pts.is_empty() {
                        opus_payload_types = pts;
                    }
                }
            }
            TrackRemoteEvent::OnRtpPacket(packet) => {
                let arrival = Instant::now();
                shared.counters.packets_received.add();
                let verdict = attribute(
                    &tracks.borrow(),
                    mid.as_deref(),
                    &opus_payload_types,
                    packet.header.payload_type,
                    &packet.payload,
                );
                match verdict {
                    Ok(user_id) => {
                        let received = ReceivedOpus {
                            user_id,
                            mid: mid.clone().unwrap_or_else(|| Arc::from("")),
                            ssrc: packet.header.ssrc,
                            sequence: packet.header.sequence_number,
                            timestamp: packet.header.timestamp,
                            marker: packet.header.marker,
                            arrival,
                            payload: packet.payload,
                        };
                        if shared.received.try_send(received).is_err() {
                            shared.counters.receive_overflow.add();
                        }
                    }
                    Err(Dropped::Malformed(why)) => {
                        let n = shared.counters.malformed.add();
                        if n == 1 || n.is_multiple_of(LOG_EVERY) {
                            eprintln!(
                                "voice: dropped a malformed packet on track {} ({why}); {n} so far",
                                mid.as_deref().unwrap_or("?")
                            );
                        }
                    }
                    Err(Dropped::Unattributed) => {
                        let n = shared.counters.unattributed.add();
                        if n == 1 || n.is_multiple_of(LOG_EVERY) {
                            eprintln!(
                                "voice: dropped a packet on track {}, which the server named no speaker for; {n} so far",
                                mid.as_deref().unwrap_or("?")
                            );
                        }
                    }
                }
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
}

/// The mid of a receiver's transceiver and the payload types it takes for Opus.
async fn describe_receiver(
    pc: &Arc<dyn PeerConnection>,
    receiver: RTCRtpReceiverId,
) -> Option<(Option<String>, Vec<u8>)> {
    let wanted = usize::from(receiver);
    for transceiver in pc.get_transceivers().await {
        if transceiver.id() != wanted {
            continue;
        }
        let mid = transceiver.mid().await.ok().flatten();
        let mut pts = Vec::new();
        if let Ok(Some(receiver)) = transceiver.receiver().await
            && let Ok(parameters) = receiver.get_parameters().await
        {
            pts = parameters
                .rtp_parameters
                .codecs
                .iter()
                .filter(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(MIME_TYPE_OPUS))
                .map(|c| c.payload_type)
                .collect();
        }
        return Some((mid, pts));
    }
    None
}

// The connection task -------------------------------------------------------

/// What a peer connection's handler reports, tagged with its generation so
/// a closed connection's late events are ignored.
enum PcEvent {
    Candidate(RTCIceCandidateInit),
    GatheringComplete,
    State(RTCPeerConnectionState),
    Track(Arc<dyn TrackRemote>),
}

struct Handler {
    generation: u64,
    events: mpsc::UnboundedSender<(u64, PcEvent)>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            let _ = self
                .events
                .send((self.generation, PcEvent::Candidate(init)));
        }
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self
                .events
                .send((self.generation, PcEvent::GatheringComplete));
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.events.send((self.generation, PcEvent::State(state)));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.events.send((self.generation, PcEvent::Track(track)));
    }
}

/// One peer connection to the SFU.
struct Session {
    pc: Arc<dyn PeerConnection>,
    events: mpsc::UnboundedReceiver<(u64, PcEvent)>,
    /// Handler events that came while the offer was made.
    early: VecDeque<PcEvent>,
    generation: u64,
    microphone: Option<Outgoing>,
    /// Candidates found after the offer went out are trickled.
    trickle: bool,
}

/// Why a session ended.
enum Ended {
    /// Start voice over, after the reason is shown.
    Restart(String),
    /// Left on request.
    Left(tokio::sync::oneshot::Sender<()>),
    /// The room client is gone.
    Closed,
}

struct Connection {
    signaling: VoiceSignaling,
    config: TransportConfig,
    shared: Arc<Shared>,
    status: watch::Sender<VoiceStatus>,
    commands: mpsc::UnboundedReceiver<TransportCommand>,
    generation: u64,
}

impl Connection {
    async fn run(mut self) {
        let mut backoff = RESTART_BACKOFF_FIRST;
        loop {
            self.status.send_replace(VoiceStatus::Joining);
            let started = Instant::now();
            let ended = match self.join().await {
                Ok(session) => self.serve(session).await,
                Err(Failure::Closed) => Ended::Closed,
                Err(Failure::Retry(reason)) => Ended::Restart(reason),
            };
            self.shared.outgoing.send_replace(None);
            match ended {
                Ended::Closed => {
                    self.status
                        .send_replace(VoiceStatus::Off("the room was left".into()));
                    return;
                }
                Ended::Left(done) => {
                    let _ = self.signaling.leave().await;
                    self.status
                        .send_replace(VoiceStatus::Off("voice was left".into()));
                    let _ = done.send(());
                    return;
                }
                Ended::Restart(reason) => {
                    eprintln!("voice: {reason}; joining voice again");
                    self.shared.counters.restarts.add();
                    self.status.send_replace(VoiceStatus::Reconnecting(reason));
                    if started.elapsed() > STABLE_AFTER {
                        backoff = RESTART_BACKOFF_FIRST;
                    }
                    // Wait, but a leave request or the room's end still counts.
                    let wait = tokio::time::sleep(backoff);
                    tokio::pin!(wait);
                    loop {
                        tokio::select! {
                            _ = &mut wait => break,
                            command = self.commands.recv() => match command {
                                Some(TransportCommand::Leave(done)) => {
                                    let _ = self.signaling.leave().await;
                                    self.status.send_replace(VoiceStatus::Off("voice was left".into()));
                                    let _ = done.send(());
                                    return;
                                }
                                Some(TransportCommand::SetMuted(_)) => {}
                                None => return,
                            },
                        }
                    }
                    backoff = (backoff * 2).min(RESTART_BACKOFF_MAX);
                    // The server may still hold our old peer (a network
                    // change rather than a restart): let it go first, and
                    // forget what the old connection was told.
                    if let Err(ClientError::Closed) = self.signaling.leave().await {
                        self.status
                            .send_replace(VoiceStatus::Off("the room was left".into()));
                        return;
                    }
                    self.forget_stale_events();
                }
            }
        }
    }

    /// Everything queued before the `voice_leave` reply was about the old
    /// connection; who speaks still counts.
    fn forget_stale_events(&mut self) {
        while let Some(event) = self.signaling.try_next_event() {
            if let VoiceEvent::Speaking(speaking) = event {
                self.speaking(&speaking.user_id, speaking.speaking);
            }
        }
        self.shared
            .tracks
            .send_replace(Arc::new(TrackMap::default()));
    }

    /// Builds a peer connection, offers, applies the server's answer.
    async fn join(&mut self) -> Result<Session, Failure> {
        self.generation += 1;
        let generation = self.generation;
        let (event_tx, events) = mpsc::unbounded_channel();
        let pc = build_peer_connection(
            &self.config,
            Handler {
                generation,
                events: event_tx,
            },
        )
        .await
        .map_err(|e| Failure::Retry(format!("could not create the voice connection: {e}")))?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        let mut session = Session {
            pc,
            events,
            early: VecDeque::new(),
            generation,
            microphone: None,
            trickle: false,
        };
        let result = self.offer(&mut session).await;
        if result.is_err() {
            let _ = session.pc.close().await;
        }
        result.map(|()| session)
    }

    async fn offer(&mut self, session: &mut Session) -> Result<(), Failure> {
        let pc = session.pc.clone();
        let retry = |what: &str, e: &dyn std::fmt::Display| Failure::Retry(format!("{what}: {e}"));
        let microphone = if self.config.microphone {
            let ssrc = random_u32();
            let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
                "roomscale-voice".to_owned(),
                "microphone".to_owned(),
                "microphone".to_owned(),
                RtpCodecKind::Audio,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    codec: opus_codec().rtp_codec,
                    ..Default::default()
                }],
            )));
            pc.add_transceiver_from_track(
                track.clone() as Arc<dyn TrackLocal>,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Sendonly,
                    streams: vec![],
                    send_encodings: vec![],
                }),
            )
            .await
            .map_err(|e| retry("could not add the microphone track", &e))?;
            Some((track, ssrc))
        } else {
            // Listening only: a receive-only line, which the SFU answers
            // and then offers every voice on, as it does for a microphone.
            pc.add_transceiver_from_kind(
                RtpCodecKind::Audio,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    streams: vec![],
                    send_encodings: vec![],
                }),
            )
            .await
            .map_err(|e| retry("could not add the listening line", &e))?;
            None
        };
        let offer = pc
            .create_offer(None)
            .await
            .map_err(|e| retry("could not create the voice offer", &e))?;
        pc.set_local_description(offer)
            .await
            .map_err(|e| retry("could not apply the voice offer", &e))?;
        // Host candidates come at once on loopback; wait for them so the
        // offer carries them, as a non-trickling peer's would.
        let gathered = tokio::time::timeout(GATHER_LIMIT, async {
            while let Some((generation, event)) = session.events.recv().await {
                if generation != session.generation {
                    continue;
                }
                match event {
                    PcEvent::GatheringComplete => return,
                    PcEvent::Candidate(_) => {}
                    other => session.early.push_back(other),
                }
            }
        })
        .await;
        session.trickle = gathered.is_err();
        let local = pc
            .local_description()
            .await
            .ok_or_else(|| Failure::Retry("the voice offer vanished".into()))?;
        let answer = match self.signaling.offer(local.sdp).await {
            Ok(answer) => answer,
            Err(ClientError::Closed) => return Err(Failure::Closed),
            Err(error) => return Err(retry("the server did not take the voice offer", &error)),
        };
        let answer = RTCSessionDescription::answer(answer.sdp)
            .map_err(|e| retry("the server's voice answer is unreadable", &e))?;
        pc.set_remote_description(answer)
            .await
            .map_err(|e| retry("the server's voice answer does not fit the offer", &e))?;
        if let Some((track, ssrc)) = microphone {
            session.microphone = Some(outgoing(&pc, track, ssrc).await);
        }
        // A new membership is unmuted in presence: say it again.
        if *self.shared.muted.borrow() {
            let _ = self.signaling.set_muted(true).await;
        }
        Ok(())
    }

    async fn serve(&mut self, mut session: Session) -> Ended {
        let ended = loop {
            if let Some(event) = session.early.pop_front() {
                if let Some(ended) = self.on_pc_event(&mut session, event).await {
                    break ended;
                }
                continue;
            }
            tokio::select! {
                event = self.signaling.next_event() => {
                    let Some(event) = event else { break Ended::Closed };
                    if let Some(ended) = self.on_voice_event(&session, event).await {
                        break ended;
                    }
                }
                event = session.events.recv() => {
                    let Some((generation, event)) = event else {
                        break Ended::Restart("the voice connection stopped".into());
                    };
                    if generation != session.generation {
                        continue;
                    }
                    if let Some(ended) = self.on_pc_event(&mut session, event).await {
                        break ended;
                    }
                }
                command = self.commands.recv() => match command {
                    Some(TransportCommand::SetMuted(muted)) => {
                        if let Err(ClientError::Closed) = self.signaling.set_muted(muted).await {
                            break Ended::Closed;
                        }
                    }
                    Some(TransportCommand::Leave(done)) => break Ended::Left(done),
                    None => break Ended::Closed,
                },
            }
        };
        self.shared.outgoing.send_replace(None);
        let _ = session.pc.close().await;
        ended
    }

    async fn on_voice_event(&mut self, session: &Session, event: VoiceEvent) -> Option<Ended> {
        match event {
            VoiceEvent::Offer(offer) => {
                let answer = async {
                    let offer = RTCSessionDescription::offer(offer.sdp)
                        .map_err(|e| format!("the server's voice offer is unreadable: {e}"))?;
                    session
                        .pc
                        .set_remote_description(offer)
                        .await
                        .map_err(|e| format!("the server's voice offer does not apply: {e}"))?;
                    let answer =
                        session.pc.create_answer(None).await.map_err(|e| {
                            format!("could not answer the server's voice offer: {e}")
                        })?;
                    session
                        .pc
                        .set_local_description(answer.clone())
                        .await
                        .map_err(|e| format!("could not apply the voice answer: {e}"))?;
                    Ok::<_, String>(answer.sdp)
                }
                .await;
                match answer {
                    Ok(sdp) => match self.signaling.answer(sdp).await {
                        Ok(()) => None,
                        Err(ClientError::Closed) => Some(Ended::Closed),
                        Err(error) => Some(Ended::Restart(format!(
                            "the server did not take the voice answer: {error}"
                        ))),
                    },
                    Err(reason) => Some(Ended::Restart(reason)),
                }
            }
            VoiceEvent::Tracks(tracks) => {
                self.shared
                    .tracks
                    .send_replace(Arc::new(TrackMap::from_tracks(&tracks)));
                None
            }
            VoiceEvent::Ice(candidate) => {
                let init = RTCIceCandidateInit {
                    candidate: candidate.candidate,
                    sdp_mid: candidate.sdp_mid,
                    sdp_mline_index: candidate.sdp_mline_index,
                    ..Default::default()
                };
                if let Err(error) = session.pc.add_ice_candidate(init).await {
                    eprintln!("voice: ignored a candidate from the server: {error}");
                }
                None
            }
            VoiceEvent::Speaking(speaking) => {
                self.speaking(&speaking.user_id, speaking.speaking);
                None
            }
            VoiceEvent::Rejoined => Some(Ended::Restart(
                "the room was joined again after a drop".into(),
            )),
        }
    }

    async fn on_pc_event(&mut self, session: &mut Session, event: PcEvent) -> Option<Ended> {
        match event {
            PcEvent::Candidate(init) if session.trickle => {
                let candidate = IceCandidate {
                    candidate: init.candidate,
                    sdp_mid: init.sdp_mid.filter(|m| !m.is_empty()),
                    sdp_mline_index: init.sdp_mline_index,
                };
                if let Err(ClientError::Closed) = self.signaling.ice(candidate).await {
                    return Some(Ended::Closed);
                }
                None
            }
            PcEvent::Candidate(_) | PcEvent::GatheringComplete => None,
            PcEvent::State(state) => match state {
                RTCPeerConnectionState::Connected => {
                    self.shared
                        .outgoing
                        .send_replace(session.microphone.clone());
                    self.status.send_replace(VoiceStatus::Connected);
                    None
                }
                RTCPeerConnectionState::Failed => Some(Ended::Restart(
                    "the voice connection failed (the server stopped answering)".into(),
                )),
                RTCPeerConnectionState::Closed => {
                    Some(Ended::Restart("the voice connection closed".into()))
                }
                _ => None,
            },
            PcEvent::Track(track) => {
                tokio::spawn(read_track(track, session.pc.clone(), self.shared.clone()));
                None
            }
        }
    }

    fn speaking(&self, user_id: &str, speaking: bool) {
        self.shared.speaking.send_modify(|set| {
            let set = Arc::make_mut(set);
            if speaking {
                set.insert(user_id.to_string());
            } else {
                set.remove(user_id);
            }
        });
    }
}

/// Why joining failed.
enum Failure {
    /// Try again later, for this reason.
    Retry(String),
    /// The room client is gone.
    Closed,
}

/// Opus as the page's Chromium offers it: 48 kHz, two channels in SDP (the
/// RFC 7587 convention, even for mono), in-band FEC.
fn opus_codec() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_OPUS.to_owned(),
            clock_rate: OPUS_CLOCK_RATE,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type: OPUS_PAYLOAD_TYPE,
    }
}

async fn build_peer_connection(
    config: &TransportConfig,
    handler: Handler,
) -> webrtc::error::Result<impl PeerConnection> {
    let mut media = MediaEngine::default();
    media.register_codec(opus_codec(), RtpCodecKind::Audio)?;
    media.register_header_extension(
        RTCRtpHeaderExtensionCapability {
            uri: AUDIO_LEVEL_URI.to_owned(),
        },
        RtpCodecKind::Audio,
        None,
    )?;
    // Sender and receiver reports only: the SFU forwards Opus as it comes,
    // and in-band FEC, not retransmission, covers loss within a voice's delay.
    let registry = configure_rtcp_reports(Registry::new());
    let settings = SettingEngineBuilder::new()
        // Nothing to discover on a private network or loopback: mDNS off.
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .with_include_loopback_candidate(true)
        // The SFU is ICE-lite: its address comes as peer-reflexive; take
        // it at once instead of waiting a second for better pairs.
        .with_prflx_acceptance_min_wait(Some(Duration::ZERO))
        .with_ice_timeouts(
            Some(config.ice_disconnected_after),
            Some(config.ice_failed_after),
            Some(Duration::from_secs(1)),
        )
        .build();
    PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media)
        .with_setting_engine(settings)
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(handler))
        .with_udp_addrs(config.udp_addrs.clone())
        .build()
        .await
}

/// The microphone track with what the answer negotiated for it.
async fn outgoing(
    pc: &Arc<dyn PeerConnection>,
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
) -> Outgoing {
    let mut payload_type = OPUS_PAYLOAD_TYPE;
    let mut level_extension = None;
    for sender in pc.get_senders().await {
        if let Ok(parameters) = sender.get_parameters().await {
            if let Some(codec) = parameters
                .rtp_parameters
                .codecs
                .iter()
                .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(MIME_TYPE_OPUS))
            {
                payload_type = codec.payload_type;
            }
            level_extension = parameters
                .rtp_parameters
                .header_extensions
                .iter()
                .find(|e| e.uri == AUDIO_LEVEL_URI)
                .and_then(|e| u8::try_from(e.id).ok());
        }
    }
    Outgoing {
        track,
        ssrc,
        payload_type,
        level_extension,
        first_sequence: random_u32() as u16,
        timestamp_base: random_u32(),
    }
}

/// Random enough for SSRCs and RTP starting points (RFC 3550 asks for them
/// to be unpredictable, not secret).
fn random_u32() -> u32 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish() as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use roomscale_protocol::events::VoiceTrack;

    fn map(pairs: &[(&str, &str)]) -> TrackMap {
        TrackMap::from_tracks(&VoiceTracks {
            tracks: pairs
                .iter()
                .enumerate()
                .map(|(slot, (mid, user))| VoiceTrack {
                    mid: mid.to_string(),
                    user_id: user.to_string(),
                    slot: slot as u16,
                })
                .collect(),
        })
    }

    fn check(mid: Option<&str>, pt: u8, payload: &[u8], expected: Result<&str, Dropped>) {
        let tracks = map(&[("1", "ada"), ("2", "bo")]);
        let got = attribute(&tracks, mid, &[111], pt, payload);
        assert_eq!(
            got.as_deref().map_err(Clone::clone),
            expected,
            "mid {mid:?} pt {pt} payload {payload:02x?}"
        );
    }

    #[test]
    fn packets_are_attributed_by_voice_tracks_or_dropped_with_a_reason() {
        let frame = [0xfc, 1, 2, 3];
        check(Some("1"), 111, &frame, Ok("ada"));
        check(Some("2"), 111, &frame, Ok("bo"));
        check(Some("3"), 111, &frame, Err(Dropped::Unattributed));
        check(None, 111, &frame, Err(Dropped::Unattributed));
        check(
            Some("1"),
            96,
            &frame,
            Err(Dropped::Malformed("payload type is not Opus")),
        );
        check(
            Some("1"),
            111,
            &[],
            Err(Dropped::Malformed("empty payload")),
        );
        // Malformed Opus is dropped before anyone is named for it.
        check(
            Some("3"),
            111,
            &[0xfd, 1, 2, 3],
            Err(Dropped::Malformed("two equal frames of odd total length")),
        );
    }

    #[test]
    fn opus_framing_follows_rfc_6716() {
        let cases: &[(&[u8], Result<(), &str>)] = &[
            (&[0xf8], Ok(())),             // code 0, DTX-sized
            (&[0xfc, 0xaa, 0xbb], Ok(())), // code 0
            (&[0xfd, 1, 2], Ok(())),       // code 1, two frames of 1
            (&[0xfe, 1, 9, 8], Ok(())),    // code 2: 1 then 1
            (&[0xfe, 3, 9], Err("first frame longer than the packet")),
            (&[0xfe], Err("frame length missing")),
            (&[0xff, 0x02, 1, 2], Ok(())), // code 3, CBR, 2 frames
            (
                &[0xff, 0x02, 1, 2, 3],
                Err("constant-bitrate frames of unequal length"),
            ),
            (&[0xff, 0x00], Err("no frames")),
            (&[0xff], Err("frame count missing")),
            (&[0xff, 0x82, 1, 5, 6, 7], Ok(())), // VBR: 1 then 2
            (&[0xff, 0x82, 4, 5], Err("frames longer than the packet")),
            (&[0xff, 0x42, 2, 1, 2, 0, 0], Ok(())), // CBR with 2 bytes of padding
            (&[0xff, 0x41, 9, 1], Err("padding longer than the packet")),
            // 20 ms frames (config 31): at most six fit in 120 ms.
            (&[0xff, 0x06, 1, 2, 3, 4, 5, 6], Ok(())),
            (
                &[0xff, 0x07, 1, 2, 3, 4, 5, 6, 7],
                Err("more than 120 ms of audio"),
            ),
        ];
        for (packet, expected) in cases {
            assert_eq!(check_opus_packet(packet), *expected, "{packet:02x?}");
        }
        let long = [vec![0xfc], vec![0u8; 1276]].concat();
        assert_eq!(
            check_opus_packet(&long),
            Err("frame longer than 1275 bytes")
        );
    }

    #[test]
    fn audio_levels_are_minus_dbov() {
        assert_eq!(AudioLevel::from_samples(&[0.0; 960], false).dbov, 127);
        assert_eq!(AudioLevel::from_samples(&[1.0; 960], true).dbov, 0);
        // Half of full scale is about -6 dBov.
        let half = AudioLevel::from_samples(&[0.5; 960], true);
        assert_eq!(
            half,
            AudioLevel {
                dbov: 6,
                voice: true
            }
        );
        assert_eq!(half.byte(), 0x80 | 6);
        assert_eq!(AudioLevel::from_samples(&[], false).dbov, 127);
    }

    #[test]
    fn loopback_servers_get_loopback_candidates() {
        for (url, addr) in [
            ("http://127.0.0.1:4000", "127.0.0.1:0"),
            ("http://localhost:4000", "127.0.0.1:0"),
            ("http://192.168.1.20:4000", "0.0.0.0:0"),
            ("http://example.org", "0.0.0.0:0"),
        ] {
            let config = TransportConfig::for_server(&ServerUrl::parse(url).unwrap(), true);
            assert_eq!(
                config.udp_addrs,
                vec![addr.parse::<SocketAddr>().unwrap()],
                "{url}"
            );
        }
    }
}
