//! The jitter buffer: RTP packets of one remote voice go in as they arrive,
//! and every 20 ms the playout asks what to play ([`Playout`]): a packet to
//! decode, a lost frame to rebuild from the next packet's FEC or to conceal,
//! or silence.
//!
//! Plain logic, str0m-style: arrival times and the playout clock are inputs
//! (a [`Duration`] since any fixed instant of the receiver's clock), so tests
//! run faster than real time with any loss, jitter and reordering they like.
//!
//! How it decides:
//! - Every packet's transit (arrival minus its RTP timestamp) is compared with
//!   the fastest transit over the last [`JitterConfig::window`] packets. The
//!   target delay is a high percentile of that excess, within
//!   [`JitterConfig::min_delay`]..=[`JitterConfig::max_delay`]; each slot is
//!   played that long after the fastest packets arrive, so that share of
//!   packets arrives in time and the rest are late.
//! - The delay moves toward the target where it costs nothing: a silent slot
//!   is repeated (deeper) or skipped (shallower). When the buffer runs dry
//!   mid-speech and the delay is below target, the concealed frame is
//!   inserted rather than played in the lost packet's place, so a late packet
//!   is still played. Only a delay far above target drops speech.
//! - A missing slot is loss only when sequence numbers say so: a gap in RTP
//!   timestamps with consecutive sequence numbers is DTX silence. Opus' "DTX
//!   starts" packet ([`super::codec::is_dtx`]) tells an empty buffer after it
//!   apart from an underrun.
//! - Sequence numbers and timestamps are unwrapped to 64 bits. A new SSRC, or
//!   a sequence number far outside the stream (confirmed by the packet after
//!   it, as RFC 3550 A.1 does), or a timestamp that goes back more than a
//!   second, restarts the stream.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use bytes::Bytes;

use super::codec::{FRAME_SAMPLES, SAMPLE_RATE, is_dtx};

/// One received RTP packet of a voice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub ssrc: u32,
    pub sequence: u16,
    pub timestamp: u32,
    /// When it arrived, on the receiver's clock (the same clock as `now` in
    /// [`JitterBuffer::pop`]).
    pub arrival: Duration,
    /// Samples the payload decodes to ([`FRAME_SAMPLES`] for 20 ms Opus);
    /// a multiple of [`JitterConfig::frame_samples`].
    pub samples: u32,
    pub payload: Bytes,
}

/// What to play in the next 20 ms slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// Decode this packet.
    Decode(Bytes),
    /// The packet decoded earlier lasts longer than one slot and covers this
    /// one too: play the rest of what it decoded to.
    Continue,
    /// This slot's packet is lost but the next one is here: decode the next
    /// packet with `fec = true` to rebuild this slot (the packet stays in the
    /// buffer and is decoded normally in the next slot).
    RecoverFec(Bytes),
    /// This slot's packet is lost (or late): let the decoder conceal it.
    Conceal,
    /// The sender is silent (DTX, not sending, or nothing received yet).
    Silence,
}

/// Tuning; the defaults suit 20 ms Opus at 48 kHz.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JitterConfig {
    pub clock_rate: u32,
    pub frame_samples: u32,
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// The share of packets that should arrive in time (0.95: 5 % late at most).
    pub percentile: f64,
    /// Packets the jitter estimate looks back over (250: 5 s of 20 ms packets).
    pub window: usize,
    /// Concealed frames in a row, with nothing buffered, before an underrun
    /// counts as the sender having gone quiet.
    pub max_concealed_run: u32,
    /// Above target by more than this, the buffer drops speech to catch up.
    pub max_excess: Duration,
}

impl Default for JitterConfig {
    fn default() -> Self {
        JitterConfig {
            clock_rate: SAMPLE_RATE,
            frame_samples: FRAME_SAMPLES as u32,
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            percentile: 0.95,
            window: 250,
            max_concealed_run: 5,
            max_excess: Duration::from_millis(100),
        }
    }
}

/// Counters since the buffer was made, over every stream restart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Packets taken into the buffer.
    pub received: u64,
    /// Packets that arrived after their slot was played (dropped).
    pub late: u64,
    /// Packets received twice (dropped).
    pub duplicates: u64,
    /// Packets never received, counted as RFC 3550 does (highest sequence
    /// number seen minus packets received, late ones included).
    pub lost: u64,
    /// Slots played with [`Playout::Conceal`].
    pub concealed: u64,
    /// Slots played with [`Playout::RecoverFec`].
    pub recovered: u64,
    /// Slots played with [`Playout::Silence`] while a stream was playing.
    pub silent: u64,
    /// Packets dropped to bring the delay down, or out of an overfull buffer.
    pub dropped: u64,
    /// Packets ignored as far outside the stream (a lone one is ignored; the
    /// packet after it confirms a restart).
    pub ignored: u64,
    /// Streams started over (new SSRC, sequence jump, timestamp reset).
    pub restarts: u64,
    /// The delay the buffer aims for now.
    pub target_delay: Duration,
    /// The delay it plays at now: how long after the fastest packets arrive
    /// each slot is played.
    pub delay: Duration,
}

/// One remote voice's jitter buffer.
#[derive(Debug, Clone)]
pub struct JitterBuffer {
    config: JitterConfig,
    stream: Option<Stream>,
    stats: JitterStats,
    /// Lost packets of earlier streams.
    lost_before: u64,
    /// (ssrc, sequence) a packet must have to confirm a sequence jump.
    probe: Option<(u32, u16)>,
}

impl Default for JitterBuffer {
    fn default() -> Self {
        JitterBuffer::new(JitterConfig::default())
    }
}

#[derive(Debug, Clone)]
struct Entry {
    sequence: u64,
    samples: u32,
    payload: Bytes,
}

#[derive(Debug, Clone)]
enum Play {
    /// Waiting for the target delay to pass after `since`, the first arrival.
    Buffering {
        since: Duration,
    },
    Playing(Playhead),
}

#[derive(Debug, Clone)]
struct Playhead {
    /// Timestamp of the next slot to play.
    slot: i64,
    /// Sequence number the packet after the last decoded one has.
    expected: u64,
    /// The last decoded packet covers timestamps before this.
    covered_until: i64,
    /// The sender is silent: an empty buffer is silence, not an underrun.
    silent: bool,
    concealed_run: u32,
}

#[derive(Debug, Clone)]
struct Stream {
    ssrc: u32,
    first_sequence: u64,
    highest_sequence: u64,
    highest_timestamp: i64,
    unique: u64,
    /// Sequence numbers received lately, for duplicates.
    seen: BTreeSet<u64>,
    packets: BTreeMap<i64, Entry>,
    /// Transit times (µs), newest last.
    transits: VecDeque<i64>,
    /// The target delay of the last slot.
    target: Duration,
    play: Play,
}

impl JitterBuffer {
    pub fn new(config: JitterConfig) -> JitterBuffer {
        JitterBuffer {
            config,
            stream: None,
            stats: JitterStats {
                target_delay: config.min_delay,
                ..JitterStats::default()
            },
            lost_before: 0,
            probe: None,
        }
    }

    pub fn config(&self) -> &JitterConfig {
        &self.config
    }

    pub fn stats(&self) -> JitterStats {
        let mut stats = self.stats;
        stats.lost = self.lost_before + self.stream.as_ref().map_or(0, Stream::lost);
        stats
    }

    /// Takes a received packet; a late, duplicate or stray one is counted and
    /// dropped.
    pub fn push(&mut self, packet: Packet) {
        let config = self.config;
        let Some(stream) = &mut self.stream else {
            self.start(&packet);
            return;
        };
        if stream.ssrc != packet.ssrc {
            self.restart(&packet);
            return;
        }
        let sequence_delta =
            i64::from(packet.sequence.wrapping_sub(stream.highest_sequence as u16) as i16);
        let timestamp_delta = i64::from(
            packet
                .timestamp
                .wrapping_sub(stream.highest_timestamp as u32) as i32,
        );
        if !(-1000..=3000).contains(&sequence_delta) {
            if self.probe == Some((packet.ssrc, packet.sequence)) {
                self.restart(&packet);
            } else {
                self.probe = Some((packet.ssrc, packet.sequence.wrapping_add(1)));
                self.stats.ignored += 1;
            }
            return;
        }
        if sequence_delta > 0 && timestamp_delta < -i64::from(config.clock_rate) {
            // The sequence goes on but the clock went back a second or more:
            // the sender started its timeline over.
            self.restart(&packet);
            return;
        }
        self.probe = None;
        let sequence = stream.highest_sequence.wrapping_add_signed(sequence_delta);
        let timestamp = stream.highest_timestamp + timestamp_delta;
        if sequence_delta > 0 {
            stream.highest_sequence = sequence;
            stream.highest_timestamp = timestamp;
        }
        if !stream.seen.insert(sequence) {
            self.stats.duplicates += 1;
            return;
        }
        // Remember enough sequence numbers to catch any duplicate the buffer
        // could still play or has just played.
        while let Some(&oldest) = stream.seen.first()
            && stream.highest_sequence.saturating_sub(oldest) > 2048
        {
            stream.seen.pop_first();
        }
        stream.unique += 1;
        // Late packets still say how much the network delays packets.
        stream.record_transit(&config, packet.arrival, timestamp);
        match &mut stream.play {
            Play::Playing(head) if timestamp < head.slot.max(head.covered_until) => {
                self.stats.late += 1;
                return;
            }
            Play::Playing(head) if timestamp - head.slot > 2 * config.samples(config.max_delay) => {
                // Far ahead of the playhead: the sender stopped sending for a
                // while (muted, or its timeline jumped) and starts again.
                // Buffer again from here, keeping what is queued before it.
                stream.play = Play::Buffering {
                    since: packet.arrival,
                };
            }
            _ => {}
        }
        stream.packets.insert(
            timestamp,
            Entry {
                sequence,
                samples: packet.samples.max(config.frame_samples),
                payload: packet.payload,
            },
        );
        self.stats.received += 1;
        // A buffer fuller than twice the longest delay is never played in
        // time: drop its oldest packets.
        let capacity = (2 * config.samples(config.max_delay) / i64::from(config.frame_samples))
            .max(4) as usize;
        while stream.packets.len() > capacity {
            stream.packets.pop_first();
            self.stats.dropped += 1;
        }
    }

    /// What to play in the slot that starts now; call once per 20 ms of
    /// playout.
    pub fn pop(&mut self, now: Duration) -> Playout {
        let config = self.config;
        let Some(stream) = &mut self.stream else {
            return Playout::Silence;
        };
        // The target rises at once (packets are late now) but falls by at
        // most 0.25 ms a slot (12.5 ms a second), so the pauses in speech can
        // absorb the change instead of dropped speech.
        let wanted = stream.target_delay(&config);
        let target = wanted.max(stream.target.saturating_sub(Duration::from_micros(250)));
        stream.target = target;
        self.stats.target_delay = target;
        if let Play::Buffering { since } = stream.play {
            let Some((&first, entry)) = stream.packets.first_key_value() else {
                return Playout::Silence;
            };
            if now < since + target {
                return Playout::Silence;
            }
            stream.play = Play::Playing(Playhead {
                slot: first,
                expected: entry.sequence,
                covered_until: first,
                silent: false,
                concealed_run: 0,
            });
        }
        let Play::Playing(head) = &mut stream.play else {
            unreachable!("buffering was handled above");
        };
        let frame = i64::from(config.frame_samples);
        let frame_us = config.micros(frame);
        let target_us = target.as_micros() as i64;
        let fastest = stream.transits.iter().copied().min().unwrap_or(0);
        // How much later than the target this slot is played (µs).
        let excess = |slot: i64| now.as_micros() as i64 - config.micros(slot) - fastest - target_us;
        self.stats.delay = Duration::from_micros((excess(head.slot) + target_us).max(0) as u64);

        // Packets before the slot can no longer be played (the playhead moved
        // past them while they waited, e.g. after a skip).
        while let Some((&timestamp, _)) = stream.packets.first_key_value()
            && timestamp < head.slot
        {
            stream.packets.pop_first();
            self.stats.dropped += 1;
        }
        if head.slot < head.covered_until {
            head.slot += frame;
            return Playout::Continue;
        }
        // Far deeper than needed mid-speech: drop packets to catch up.
        while excess(head.slot) > config.max_excess.as_micros() as i64
            && stream.packets.len() > 1
            && stream
                .packets
                .first_key_value()
                .is_some_and(|(t, _)| *t == head.slot)
        {
            let (_, entry) = stream.packets.pop_first().expect("checked non-empty");
            head.expected = entry.sequence + 1;
            head.slot += i64::from(entry.samples);
            head.covered_until = head.slot;
            self.stats.dropped += 1;
        }
        let next = stream
            .packets
            .first_key_value()
            .map(|(t, e)| (*t, e.sequence, e.payload.clone()));
        match next {
            // The slot's packet, or one a little off the slot grid (a sender
            // whose timestamps moved by less than a frame): play it now.
            Some((timestamp, _, _)) if timestamp < head.slot + frame => {
                let entry = stream.packets.remove(&timestamp).expect("just seen");
                head.slot = timestamp + frame;
                head.covered_until = timestamp + i64::from(entry.samples);
                head.expected = entry.sequence + 1;
                head.silent = is_dtx(&entry.payload);
                head.concealed_run = 0;
                Playout::Decode(entry.payload)
            }
            Some((timestamp, sequence, payload)) => {
                head.concealed_run = 0;
                let missing_packets = sequence as i64 - head.expected as i64;
                let missing_slots = (timestamp - head.slot) / frame;
                if missing_packets <= 0 || missing_slots > missing_packets {
                    // Consecutive sequence numbers across a timestamp gap:
                    // the sender was silent (the lost packets, if any, are
                    // the ones just before `next`).
                    self.stats.silent += 1;
                    head.silent_slot(excess(head.slot), frame, frame_us, Some(timestamp));
                    Playout::Silence
                } else if missing_slots == 1 {
                    self.stats.recovered += 1;
                    head.slot += frame;
                    Playout::RecoverFec(payload)
                } else {
                    self.stats.concealed += 1;
                    head.slot += frame;
                    Playout::Conceal
                }
            }
            None if head.silent => {
                self.stats.silent += 1;
                head.silent_slot(excess(head.slot), frame, frame_us, None);
                Playout::Silence
            }
            None => {
                head.concealed_run += 1;
                if head.concealed_run > config.max_concealed_run {
                    // Nothing for a while and no DTX packet: the sender went
                    // quiet (muted, or the network stalled).
                    head.silent = true;
                    self.stats.silent += 1;
                    head.silent_slot(excess(head.slot), frame, frame_us, None);
                    return Playout::Silence;
                }
                self.stats.concealed += 1;
                // Below target the packet is most likely late, not lost:
                // conceal without moving on, so it still plays when it comes.
                if excess(head.slot) >= 0 {
                    head.slot += frame;
                }
                Playout::Conceal
            }
        }
    }

    /// Forgets the stream (for example when the speaker leaves voice); the
    /// counters stay.
    pub fn reset(&mut self) {
        if let Some(stream) = self.stream.take() {
            self.lost_before += stream.lost();
        }
        self.probe = None;
    }

    fn restart(&mut self, packet: &Packet) {
        self.reset();
        self.stats.restarts += 1;
        self.start(packet);
    }

    fn start(&mut self, packet: &Packet) {
        let config = self.config;
        let mut stream = Stream {
            ssrc: packet.ssrc,
            first_sequence: u64::from(packet.sequence),
            highest_sequence: u64::from(packet.sequence),
            highest_timestamp: i64::from(packet.timestamp),
            unique: 1,
            seen: BTreeSet::from([u64::from(packet.sequence)]),
            packets: BTreeMap::new(),
            transits: VecDeque::with_capacity(config.window + 1),
            target: config.min_delay,
            play: Play::Buffering {
                since: packet.arrival,
            },
        };
        // Unwrapped sequence numbers start high enough that reordering before
        // the first packet never goes below zero.
        stream.first_sequence += 1 << 32;
        stream.highest_sequence += 1 << 32;
        stream.seen = BTreeSet::from([stream.highest_sequence]);
        stream.record_transit(&config, packet.arrival, stream.highest_timestamp);
        stream.packets.insert(
            stream.highest_timestamp,
            Entry {
                sequence: stream.highest_sequence,
                samples: packet.samples.max(config.frame_samples),
                payload: packet.payload.clone(),
            },
        );
        self.stats.received += 1;
        self.probe = None;
        self.stream = Some(stream);
    }
}

impl JitterConfig {
    fn micros(&self, timestamp: i64) -> i64 {
        (i128::from(timestamp) * 1_000_000 / i128::from(self.clock_rate)) as i64
    }

    fn samples(&self, duration: Duration) -> i64 {
        (duration.as_micros() * u128::from(self.clock_rate) / 1_000_000) as i64
    }
}

impl Stream {
    fn record_transit(&mut self, config: &JitterConfig, arrival: Duration, timestamp: i64) {
        self.transits
            .push_back(arrival.as_micros() as i64 - config.micros(timestamp));
        while self.transits.len() > config.window.max(1) {
            self.transits.pop_front();
        }
    }

    fn target_delay(&self, config: &JitterConfig) -> Duration {
        let Some(&fastest) = self.transits.iter().min() else {
            return config.min_delay;
        };
        let mut excess: Vec<i64> = self.transits.iter().map(|t| t - fastest).collect();
        let rank =
            ((excess.len() as f64 * config.percentile).ceil() as usize).clamp(1, excess.len()) - 1;
        let (_, at, _) = excess.select_nth_unstable(rank);
        Duration::from_micros(*at as u64).clamp(config.min_delay, config.max_delay)
    }

    fn lost(&self) -> u64 {
        (self.highest_sequence + 1 - self.first_sequence).saturating_sub(self.unique)
    }
}

impl Playhead {
    /// Plays a silent slot, moving the delay toward the target: repeat the
    /// slot when playing too early, skip one when a frame or more too late
    /// (and the next packet is not in the skipped slot).
    fn silent_slot(&mut self, excess: i64, frame: i64, frame_us: i64, next: Option<i64>) {
        if excess < 0 {
            return;
        }
        let room = next.is_none_or(|t| t >= self.slot + 2 * frame);
        if excess >= frame_us && room {
            self.slot += 2 * frame;
        } else {
            self.slot += frame;
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{RngExt as _, SeedableRng as _};

    use super::*;

    const FRAME: Duration = Duration::from_millis(20);

    /// A netem-like path: each packet is lost with `loss`, duplicated with
    /// `duplicate`, and delayed by `base` plus a random jitter up to `jitter`
    /// (uniform, with a `spike` share of packets delayed up to 3× that), which
    /// reorders packets whenever jitter exceeds the packet interval.
    #[derive(Debug, Clone, Copy)]
    struct Path {
        loss: f64,
        duplicate: f64,
        base: Duration,
        jitter: Duration,
        spike: f64,
    }

    impl Path {
        fn clean() -> Path {
            Path {
                loss: 0.0,
                duplicate: 0.0,
                base: Duration::from_millis(30),
                jitter: Duration::ZERO,
                spike: 0.0,
            }
        }
    }

    /// What the sender does in each 20 ms frame.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Send {
        Speech,
        /// Opus' first DTX packet.
        DtxStart,
        Nothing,
    }

    /// Packets in arrival order: payload = sender frame index (4 bytes) so
    /// the test knows what played.
    struct Sender {
        ssrc: u32,
        sequence: u16,
        timestamp: u32,
    }

    impl Sender {
        fn new(sequence: u16, timestamp: u32) -> Sender {
            Sender {
                ssrc: 7,
                sequence,
                timestamp,
            }
        }

        /// Sends `plan` from time `start`, through `path`; returns arrivals.
        fn send(
            &mut self,
            rng: &mut StdRng,
            path: Path,
            start: Duration,
            first_frame: u32,
            plan: &[Send],
        ) -> Vec<Packet> {
            let mut out = Vec::new();
            for (i, what) in plan.iter().enumerate() {
                let frame = first_frame + i as u32;
                let sent = start + FRAME * i as u32;
                if *what != Send::Nothing {
                    let mut payload = frame.to_be_bytes().to_vec();
                    if *what == Send::DtxStart {
                        payload.truncate(1);
                        payload[0] = 0xff;
                    }
                    let packet = Packet {
                        ssrc: self.ssrc,
                        sequence: self.sequence,
                        timestamp: self.timestamp,
                        arrival: sent,
                        samples: 960,
                        payload: payload.into(),
                    };
                    self.sequence = self.sequence.wrapping_add(1);
                    let copies = if rng.random_bool(path.duplicate) {
                        2
                    } else {
                        1
                    };
                    for _ in 0..copies {
                        if rng.random_bool(path.loss) {
                            continue;
                        }
                        let mut jitter = path.jitter.mul_f64(rng.random::<f64>());
                        if rng.random_bool(path.spike) {
                            jitter *= 3;
                        }
                        let mut arriving = packet.clone();
                        arriving.arrival = sent + path.base + jitter;
                        out.push(arriving);
                    }
                }
                self.timestamp = self.timestamp.wrapping_add(960);
            }
            out.sort_by_key(|p| p.arrival);
            out
        }
    }

    /// What the receiver played, slot by slot.
    #[derive(Debug, Default)]
    struct Played {
        outputs: Vec<Playout>,
        /// Sender frame indices decoded, in play order.
        frames: Vec<u32>,
        /// Playout delay (stats.delay) sampled at every pop.
        delays: Vec<Duration>,
        /// Target delay sampled at every pop.
        targets: Vec<Duration>,
    }

    impl Played {
        fn count(&self, what: fn(&Playout) -> bool) -> usize {
            self.outputs.iter().filter(|p| what(p)).count()
        }
    }

    /// Feeds `packets` and pops every 20 ms from `start` (offset by a phase)
    /// until `end`; faster than real time.
    fn receive(
        buffer: &mut JitterBuffer,
        packets: &[Packet],
        start: Duration,
        end: Duration,
    ) -> Played {
        let mut played = Played::default();
        let mut next = 0;
        let mut now = start + Duration::from_micros(7_300);
        while now < end {
            while next < packets.len() && packets[next].arrival <= now {
                buffer.push(packets[next].clone());
                next += 1;
            }
            let out = buffer.pop(now);
            if let Playout::Decode(payload) = &out
                && payload.len() == 4
            {
                played
                    .frames
                    .push(u32::from_be_bytes(payload[..].try_into().unwrap()));
            }
            played.delays.push(buffer.stats().delay);
            played.targets.push(buffer.stats().target_delay);
            played.outputs.push(out);
            now += FRAME;
        }
        played
    }

    fn speech(frames: usize) -> Vec<Send> {
        vec![Send::Speech; frames]
    }

    /// Talkspurts of `talk` frames, a DTX packet, then `pause` silent frames.
    fn conversation(spurts: usize, talk: usize, pause: usize) -> Vec<Send> {
        let mut plan = Vec::new();
        for _ in 0..spurts {
            plan.extend(speech(talk));
            plan.push(Send::DtxStart);
            plan.extend(std::iter::repeat_n(Send::Nothing, pause));
        }
        plan
    }

    fn ms(d: Duration) -> f64 {
        d.as_secs_f64() * 1000.0
    }

    fn is_decode(p: &Playout) -> bool {
        matches!(p, Playout::Decode(_))
    }

    fn is_conceal(p: &Playout) -> bool {
        matches!(p, Playout::Conceal)
    }

    fn is_fec(p: &Playout) -> bool {
        matches!(p, Playout::RecoverFec(_))
    }

    fn assert_increasing(frames: &[u32]) {
        assert!(
            frames.windows(2).all(|w| w[0] < w[1]),
            "frames played out of order or twice: {frames:?}"
        );
    }

    #[test]
    fn a_clean_path_plays_every_packet_at_the_minimum_delay() {
        let mut rng = StdRng::seed_from_u64(1);
        let packets = Sender::new(100, 5000).send(&mut rng, Path::clean(), Duration::ZERO, 0, &{
            // Ends with DTX, so the end of the stream is silence, not loss.
            let mut plan = speech(500);
            plan.push(Send::DtxStart);
            plan
        });
        let mut buffer = JitterBuffer::default();
        let played = receive(
            &mut buffer,
            &packets,
            Duration::ZERO,
            Duration::from_secs(11),
        );
        assert_eq!(played.frames, (0..500).collect::<Vec<_>>());
        let stats = buffer.stats();
        assert_eq!(
            (
                stats.late,
                stats.lost,
                stats.concealed,
                stats.recovered,
                stats.dropped
            ),
            (0, 0, 0, 0, 0)
        );
        assert_eq!(stats.target_delay, Duration::from_millis(20));
        let delay = played.delays[100];
        assert!(
            (Duration::from_millis(20)..=Duration::from_millis(40)).contains(&delay),
            "delay {delay:?}"
        );
    }

    #[test]
    fn loss_is_rebuilt_from_fec_or_concealed_and_counted() {
        let mut rng = StdRng::seed_from_u64(2);
        let path = Path {
            loss: 0.10,
            ..Path::clean()
        };
        let packets = Sender::new(0, 0).send(&mut rng, path, Duration::ZERO, 0, &speech(3000));
        let mut buffer = JitterBuffer::default();
        let mut played = receive(
            &mut buffer,
            &packets,
            Duration::ZERO,
            Duration::from_secs(61),
        );
        assert_increasing(&played.frames);
        let stats = buffer.stats();
        let received = packets.len();
        assert_eq!(
            played.frames.len(),
            received,
            "every received packet is played"
        );
        let sequences: Vec<u16> = packets.iter().map(|p| p.sequence).collect();
        let span = sequences.iter().max().unwrap() - sequences.iter().min().unwrap() + 1;
        assert_eq!(stats.lost as usize, usize::from(span) - received);
        // A lone loss is rebuilt from FEC; only runs of losses are concealed.
        // (After the last packet the sender is gone: that is not loss.)
        let last = played.outputs.iter().rposition(is_decode).unwrap();
        played.outputs.truncate(last);
        let fec = played.count(is_fec);
        let conceal = played.count(is_conceal);
        assert_eq!(fec + conceal, stats.lost as usize);
        assert!(
            fec as f64 > 0.8 * stats.lost as f64,
            "FEC {fec}, concealed {conceal}"
        );
        // No slot of speech goes silent: each is decoded, rebuilt or concealed.
        let first = played.outputs.iter().position(is_decode).unwrap();
        let speaking = &played.outputs[first..];
        assert!(speaking.iter().all(|p| !matches!(p, Playout::Silence)));
    }

    #[test]
    fn the_delay_follows_the_jitter_and_few_packets_are_late() {
        let mut rng = StdRng::seed_from_u64(3);
        let path = Path {
            loss: 0.02,
            duplicate: 0.0,
            base: Duration::from_millis(40),
            jitter: Duration::from_millis(60),
            spike: 0.0,
        };
        let plan = conversation(20, 150, 25);
        let packets =
            Sender::new(65_000, u32::MAX - 100_000).send(&mut rng, path, Duration::ZERO, 0, &plan);
        let mut buffer = JitterBuffer::default();
        let played = receive(
            &mut buffer,
            &packets,
            Duration::ZERO,
            Duration::from_secs(80),
        );
        assert_increasing(&played.frames);
        let stats = buffer.stats();
        let target = ms(stats.target_delay);
        assert!(
            (50.0..=70.0).contains(&target),
            "target {target} ms for 60 ms of jitter"
        );
        let late = stats.late as f64 / packets.len() as f64;
        assert!(late < 0.05, "{:.1} % late", late * 100.0);
        // The playout delay settles within a frame or two of the target.
        let settled = ms(played.delays[played.delays.len() - 100]);
        assert!(
            (target - 5.0..=target + 45.0).contains(&settled),
            "delay {settled} ms, target {target} ms"
        );
        assert_eq!(
            stats.restarts, 0,
            "wrapping sequence numbers and timestamps are no restart"
        );
    }

    #[test]
    fn the_delay_comes_down_in_silence_when_the_jitter_calms() {
        let mut rng = StdRng::seed_from_u64(4);
        let rough = Path {
            jitter: Duration::from_millis(150),
            ..Path::clean()
        };
        let mut sender = Sender::new(1, 1);
        let plan = conversation(6, 100, 20);
        let frames = plan.len() as u32;
        let mut packets = sender.send(&mut rng, rough, Duration::ZERO, 0, &plan);
        let calm_start = FRAME * frames;
        packets.extend(sender.send(
            &mut rng,
            Path::clean(),
            calm_start,
            frames,
            &conversation(12, 100, 20),
        ));
        packets.sort_by_key(|p| p.arrival);
        let mut buffer = JitterBuffer::default();
        let end = calm_start + FRAME * (12 * 121) + Duration::from_secs(1);
        let played = receive(&mut buffer, &packets, Duration::ZERO, end);
        let rough_target = ms(played.targets[frames as usize]);
        assert!(
            rough_target > 120.0,
            "target {rough_target} ms under 150 ms of jitter"
        );
        let stats = buffer.stats();
        assert_eq!(stats.target_delay, Duration::from_millis(20));
        let delay = ms(*played.delays.last().unwrap());
        assert!(delay <= 40.0, "delay {delay} ms after the jitter calmed");
        assert_increasing(&played.frames);
        // Silence slots absorbed the change: no speech was dropped to do it.
        assert_eq!(stats.dropped, 0);
    }

    #[test]
    fn the_delay_stays_within_200_ms_whatever_the_jitter() {
        let mut rng = StdRng::seed_from_u64(5);
        let path = Path {
            jitter: Duration::from_millis(600),
            ..Path::clean()
        };
        let packets = Sender::new(0, 0).send(
            &mut rng,
            path,
            Duration::ZERO,
            0,
            &conversation(10, 100, 20),
        );
        let mut buffer = JitterBuffer::default();
        let played = receive(
            &mut buffer,
            &packets,
            Duration::ZERO,
            Duration::from_secs(26),
        );
        assert_increasing(&played.frames);
        assert_eq!(buffer.stats().target_delay, Duration::from_millis(200));
        let worst = played.delays.iter().max().unwrap();
        assert!(
            ms(*worst) <= 200.0 + 100.0 + 20.0,
            "delay reached {worst:?}"
        );
        assert!(buffer.stats().late > 0);
    }

    #[test]
    fn reordered_packets_play_in_order_and_duplicates_once() {
        let mut rng = StdRng::seed_from_u64(6);
        let path = Path {
            duplicate: 0.05,
            jitter: Duration::from_millis(45),
            ..Path::clean()
        };
        let packets = Sender::new(0, 0).send(&mut rng, path, Duration::ZERO, 0, &speech(1000));
        let reordered = packets
            .windows(2)
            .filter(|w| w[0].sequence > w[1].sequence)
            .count();
        assert!(reordered > 50, "the path reorders ({reordered})");
        let mut buffer = JitterBuffer::default();
        let played = receive(
            &mut buffer,
            &packets,
            Duration::ZERO,
            Duration::from_secs(21),
        );
        assert_increasing(&played.frames);
        let stats = buffer.stats();
        assert!(stats.duplicates > 20, "{stats:?}");
        assert_eq!(stats.lost, 0);
        assert!(played.frames.len() as u64 >= 1000 - stats.late);
        assert!(stats.late <= 50, "{stats:?}");
    }

    #[test]
    fn dtx_silence_is_neither_loss_nor_concealment() {
        let mut rng = StdRng::seed_from_u64(7);
        let packets = Sender::new(10, 10).send(
            &mut rng,
            Path::clean(),
            Duration::ZERO,
            0,
            &conversation(10, 50, 40),
        );
        let mut buffer = JitterBuffer::default();
        let played = receive(
            &mut buffer,
            &packets,
            Duration::ZERO,
            Duration::from_secs(20),
        );
        let stats = buffer.stats();
        assert_eq!(
            (stats.lost, stats.concealed, stats.recovered, stats.late),
            (0, 0, 0, 0)
        );
        assert_eq!(played.frames.len(), 500);
        assert!(stats.silent >= 10 * 39, "{stats:?}");
    }

    #[test]
    fn a_lost_talkspurt_start_is_recovered_and_a_muted_sender_is_not_concealed_forever() {
        // Speech, DTX, a pause, then a talkspurt whose first packet is lost.
        let mut rng = StdRng::seed_from_u64(8);
        let mut plan = speech(20);
        plan.push(Send::DtxStart);
        plan.extend(std::iter::repeat_n(Send::Nothing, 30));
        plan.extend(speech(20));
        let mut packets = Sender::new(0, 0).send(&mut rng, Path::clean(), Duration::ZERO, 0, &plan);
        packets.retain(|p| p.payload[..] != 51u32.to_be_bytes());
        // Then a sender that stops without DTX (muted) for a second.
        // Its sequence numbers go on from the talkspurt's, its clock keeps
        // running while it sends nothing.
        let mut sender = Sender::new(41, 71 * 960);
        packets.extend(sender.send(&mut rng, Path::clean(), FRAME * 71, 71, &speech(10)));
        sender.timestamp = 131 * 960;
        packets.extend(sender.send(&mut rng, Path::clean(), FRAME * 131, 131, &speech(10)));
        let mut buffer = JitterBuffer::default();
        let played = receive(
            &mut buffer,
            &packets,
            Duration::ZERO,
            Duration::from_secs(4),
        );
        let stats = buffer.stats();
        assert_eq!(stats.recovered, 1, "{stats:?}");
        assert_eq!(stats.lost, 1);
        // 100 ms of concealment each time the sender went quiet without DTX
        // (muted, and at the end), then silence.
        assert_eq!(
            stats.concealed,
            2 * u64::from(JitterConfig::default().max_concealed_run),
            "{stats:?}"
        );
        assert_eq!(played.frames.len(), 20 + 19 + 10 + 10);
        assert_increasing(&played.frames);
    }

    #[test]
    fn sequence_numbers_and_timestamps_wrap() {
        let mut rng = StdRng::seed_from_u64(9);
        let path = Path {
            loss: 0.05,
            jitter: Duration::from_millis(30),
            ..Path::clean()
        };
        let packets = Sender::new(65_400, u32::MAX - 960 * 50).send(
            &mut rng,
            path,
            Duration::ZERO,
            0,
            &speech(400),
        );
        let mut buffer = JitterBuffer::default();
        let played = receive(
            &mut buffer,
            &packets,
            Duration::ZERO,
            Duration::from_secs(9),
        );
        assert_increasing(&played.frames);
        let stats = buffer.stats();
        assert_eq!(stats.restarts, 0);
        assert_eq!(stats.ignored, 0);
        let received = packets.len() as u64;
        assert!(
            stats.lost + received >= 399 && stats.lost + received <= 400,
            "{stats:?}"
        );
        assert!(played.frames.len() as u64 >= received - stats.late);
    }

    #[test]
    fn a_new_ssrc_restarts_the_stream() {
        let mut rng = StdRng::seed_from_u64(10);
        let mut packets =
            Sender::new(500, 123_456).send(&mut rng, Path::clean(), Duration::ZERO, 0, &speech(50));
        let mut other = Sender::new(9, 42);
        other.ssrc = 8;
        packets.extend(other.send(&mut rng, Path::clean(), FRAME * 50, 1000, &speech(50)));
        let mut buffer = JitterBuffer::default();
        let played = receive(
            &mut buffer,
            &packets,
            Duration::ZERO,
            Duration::from_secs(3),
        );
        let stats = buffer.stats();
        assert_eq!(stats.restarts, 1);
        assert_eq!(stats.lost, 0);
        // The old stream's last packets (still buffered) give way to the new one.
        let new: Vec<u32> = played
            .frames
            .iter()
            .copied()
            .filter(|f| *f >= 1000)
            .collect();
        assert_eq!(new, (1000..1050).collect::<Vec<_>>());
        assert!(played.frames.iter().filter(|f| **f < 1000).count() >= 48);
    }

    #[test]
    fn a_sequence_jump_restarts_the_stream_once_the_next_packet_confirms_it() {
        let mut rng = StdRng::seed_from_u64(11);
        let mut packets =
            Sender::new(100, 0).send(&mut rng, Path::clean(), Duration::ZERO, 0, &speech(50));
        // One stray packet far outside the stream is ignored...
        let mut stray = packets[10].clone();
        stray.sequence = 30_000;
        stray.arrival += Duration::from_millis(5);
        packets.push(stray);
        // ...but a sender that jumped (and keeps going) is followed.
        packets.extend(Sender::new(20_000, 9_999_999).send(
            &mut rng,
            Path::clean(),
            FRAME * 50,
            1000,
            &speech(50),
        ));
        packets.sort_by_key(|p| p.arrival);
        let mut buffer = JitterBuffer::default();
        let played = receive(
            &mut buffer,
            &packets,
            Duration::ZERO,
            Duration::from_secs(3),
        );
        let stats = buffer.stats();
        assert_eq!((stats.restarts, stats.ignored), (1, 2), "{stats:?}");
        let new: Vec<u32> = played
            .frames
            .iter()
            .copied()
            .filter(|f| *f >= 1000)
            .collect();
        assert_eq!(new, (1001..1050).collect::<Vec<_>>());
    }

    #[test]
    fn a_timestamp_that_goes_back_restarts_the_stream() {
        let mut rng = StdRng::seed_from_u64(12);
        let mut packets = Sender::new(100, 10_000_000).send(
            &mut rng,
            Path::clean(),
            Duration::ZERO,
            0,
            &speech(50),
        );
        packets.extend(Sender::new(150, 0).send(
            &mut rng,
            Path::clean(),
            FRAME * 50,
            1000,
            &speech(50),
        ));
        let mut buffer = JitterBuffer::default();
        let played = receive(
            &mut buffer,
            &packets,
            Duration::ZERO,
            Duration::from_secs(3),
        );
        assert_eq!(buffer.stats().restarts, 1);
        let new: Vec<u32> = played
            .frames
            .iter()
            .copied()
            .filter(|f| *f >= 1000)
            .collect();
        assert_eq!(new, (1000..1050).collect::<Vec<_>>());
    }

    #[test]
    fn late_packets_are_dropped_and_counted() {
        let mut rng = StdRng::seed_from_u64(13);
        let mut packets =
            Sender::new(0, 0).send(&mut rng, Path::clean(), Duration::ZERO, 0, &speech(100));
        // Packet 60 comes 300 ms late.
        let at = packets
            .iter()
            .position(|p| p.payload[..] == 60u32.to_be_bytes())
            .unwrap();
        packets[at].arrival += Duration::from_millis(300);
        packets.sort_by_key(|p| p.arrival);
        let mut buffer = JitterBuffer::default();
        let played = receive(
            &mut buffer,
            &packets,
            Duration::ZERO,
            Duration::from_secs(3),
        );
        let stats = buffer.stats();
        assert_eq!(
            (stats.late, stats.lost, stats.recovered),
            (1, 0, 1),
            "{stats:?}"
        );
        assert!(!played.frames.contains(&60));
        assert_increasing(&played.frames);
    }

    #[test]
    fn a_slow_packet_below_target_is_waited_for_not_dropped() {
        // 40 ms jitter on a few packets early on raises the target; then one
        // packet arrives 30 ms late when the buffer holds nothing after it.
        let mut buffer = JitterBuffer::default();
        let packet = |sequence: u16, arrival_ms: u64| Packet {
            ssrc: 1,
            sequence,
            timestamp: u32::from(sequence) * 960,
            arrival: Duration::from_millis(arrival_ms),
            samples: 960,
            payload: Bytes::from(u32::from(sequence).to_be_bytes().to_vec()),
        };
        let mut outputs = Vec::new();
        for sequence in 0..20u16 {
            let sent = u64::from(sequence) * 20;
            let extra = if sequence == 15 { 30 } else { 0 };
            buffer.push(packet(sequence, sent + extra));
            // Pop halfway between arrivals.
            outputs.push(buffer.pop(Duration::from_millis(sent + 10)));
        }
        let decoded = outputs.iter().filter(|o| is_decode(o)).count();
        assert!(decoded >= 17, "{outputs:?}");
        assert_eq!(buffer.stats().late, 0, "{:?}", buffer.stats());
    }
}
