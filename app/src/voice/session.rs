//! A voice call as the app holds it: the transport to the SFU, the media
//! pipeline, and the microphone and speakers (or WAV files in their place),
//! driven by one audio thread. Desktop, headset and headless modes start one
//! the same way and feed it where everyone's head is.
//!
//! The audio thread owns the pipeline: it takes each microphone frame
//! through it to the transport (the microphone's clock paces sending), feeds
//! it the packets the transport received, and whenever the speakers hold
//! fewer than two frames asks it for the next one (the speakers' clock
//! paces playing). Nothing else touches the pipeline, so it needs no lock;
//! the rest of the app talks to the thread through a channel.

use std::collections::HashMap;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use glam::Vec3;
use roomscale_protocol::pose::Joint;
use tokio::sync::{mpsc, watch};

use super::codec::FRAME_SAMPLES;
use super::devices::{
    self, DeviceError, InputChoice, Microphone, OutputChoice, STEREO_FRAME, Speaker,
};
use super::mixer::HeadPose;
use super::pipeline::{PipelineConfig, PipelineError, VoicePipeline};
use super::processing::ProcessingConfig;
use super::rtc::{
    AudioLevel, OpusFrame, ReceivedOpus, TransportConfig, TransportStats, VoiceStatus,
    VoiceTransport,
};
use crate::client::{ClientError, RoomClient, ServerUrl};
use crate::scene::RoomScene;

/// Speaker frames kept queued: fewer and a late wake-up is heard as a gap.
const SPEAKER_QUEUE_FRAMES: usize = 2;
/// How long the audio thread waits for a microphone frame before it looks
/// at the speakers and the network again.
const POLL: Duration = Duration::from_millis(2);

/// What a call uses.
#[derive(Debug, Clone)]
pub struct VoiceOptions {
    /// The microphone; `None` joins listen-only.
    pub input: Option<InputChoice>,
    /// The speakers; `None` plays nothing (a bot that only talks).
    pub output: Option<OutputChoice>,
    pub pipeline: PipelineConfig,
}

impl VoiceOptions {
    /// A WAV file is a clean recording, not a room: no echo to cancel, no
    /// noise to suppress, and a steady test tone must not be taken for noise.
    pub fn with_wav_input_unprocessed(mut self) -> VoiceOptions {
        if matches!(self.input, Some(InputChoice::Wav(_))) {
            self.pipeline.processing = ProcessingConfig::OFF;
        }
        self
    }
}

/// Why a call could not start.
#[derive(Debug, thiserror::Error)]
pub enum VoiceError {
    #[error("cannot open the speakers: {0}")]
    Speaker(DeviceError),
    #[error("cannot set up voice: {0}")]
    Pipeline(#[from] PipelineError),
    #[error("cannot start voice signaling: {0}")]
    Signaling(#[from] ClientError),
}

/// What the devices and the audio thread report, for the UI and tests.
#[derive(Debug, Clone, Default)]
pub struct AudioReport {
    /// The microphone in use; `None` when listening only.
    pub microphone: Option<String>,
    /// Why there is no microphone, when one was asked for.
    pub microphone_refused: Option<String>,
    pub speaker: Option<String>,
    /// When the microphone and the speakers started (their sample 0), on
    /// the wall clock: WAV devices run in real time from there.
    pub microphone_started: Option<SystemTime>,
    pub speaker_started: Option<SystemTime>,
    /// The microphone's level after processing (0 to 1).
    pub input_level: f32,
    /// Each remote voice's level as last played (0 to 1).
    pub voice_levels: HashMap<String, f32>,
    /// How long a frame waited in the speakers' queue on average, from
    /// being handed over to its turn to play (the frames ahead of it, and the
    /// rest of the device's current 20 ms period, counted from when the
    /// speakers started): the output device's buffer, which latency figures
    /// leave out.
    pub speaker_queue_ms: f64,
    /// Why microphone processing does not run, where it does not.
    pub processing_unavailable: Option<String>,
}

enum AudioCommand {
    Listener(HeadPose),
    Position(String, Vec3),
    Volume(String, f32),
    Transmitting(bool),
    MutedAll(bool),
    Processing(ProcessingConfig),
    Forget(String),
    Stop,
}

/// A running voice call.
#[derive(Debug)]
pub struct VoiceSession {
    transport: Arc<VoiceTransport>,
    commands: std_mpsc::Sender<AudioCommand>,
    report: Arc<Mutex<AudioReport>>,
    audio: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for AudioCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AudioCommand")
    }
}

impl VoiceSession {
    /// Joins voice in `room`. A microphone that cannot be opened (none, or
    /// permission refused) leaves the call listen-only, and the report says
    /// why; speakers that cannot be opened are an error.
    pub async fn start(
        room: &RoomClient,
        server: &ServerUrl,
        options: VoiceOptions,
    ) -> Result<VoiceSession, VoiceError> {
        let mut report = AudioReport::default();
        let microphone = match &options.input {
            None => None,
            Some(choice) => match devices::open_microphone(choice) {
                Ok(microphone) => {
                    report.microphone = Some(microphone.name());
                    report.microphone_started = Some(SystemTime::now());
                    Some(microphone)
                }
                Err(error) => {
                    let reason = format!("{error}; listening only");
                    eprintln!("voice: {reason}");
                    report.microphone_refused = Some(reason);
                    None
                }
            },
        };
        let speaker = match &options.output {
            None => None,
            Some(choice) => {
                let speaker = devices::open_speaker(choice).map_err(VoiceError::Speaker)?;
                report.speaker = Some(speaker.name());
                report.speaker_started = Some(SystemTime::now());
                Some((speaker, Instant::now()))
            }
        };
        let pipeline = VoicePipeline::new(options.pipeline)?;
        report.processing_unavailable = pipeline.processing_unavailable().map(str::to_owned);
        let signaling = room.voice_signaling().await?;
        let config = TransportConfig::for_server(server, microphone.is_some());
        let (transport, received) = VoiceTransport::start(signaling, config);
        let transport = Arc::new(transport);
        let report = Arc::new(Mutex::new(report));
        let (commands, command_rx) = std_mpsc::channel();
        let audio = AudioThread {
            pipeline,
            microphone,
            speaker,
            transport: transport.clone(),
            received,
            commands: command_rx,
            report: report.clone(),
        };
        let audio = std::thread::Builder::new()
            .name("voice-audio".into())
            .spawn(move || audio.run())
            .expect("spawning the voice audio thread");
        Ok(VoiceSession {
            transport,
            commands,
            report,
            audio: Some(audio),
        })
    }

    /// Mutes or unmutes this client: nothing is sent, presence shows it and
    /// the SFU forwards nothing; the input meter still moves.
    pub fn set_muted(&self, muted: bool) {
        self.transport.set_muted(muted);
        let _ = self.commands.send(AudioCommand::Transmitting(!muted));
    }

    pub fn muted(&self) -> bool {
        self.transport.muted()
    }

    /// Silences every remote voice here (the others still hear this client).
    pub fn set_muted_all(&self, muted: bool) {
        let _ = self.commands.send(AudioCommand::MutedAll(muted));
    }

    /// Echo cancellation, noise suppression and gain control, on or off.
    pub fn set_processing(&self, config: ProcessingConfig) {
        let _ = self.commands.send(AudioCommand::Processing(config));
    }

    /// One person's volume (1 as sent, 0 silent).
    pub fn set_volume(&self, user: &str, volume: f32) {
        let _ = self
            .commands
            .send(AudioCommand::Volume(user.to_owned(), volume));
    }

    /// Where the listener's head is (desktop camera or headset), each frame.
    pub fn set_listener(&self, pose: HeadPose) {
        let _ = self.commands.send(AudioCommand::Listener(pose));
    }

    /// Where `user`'s head is, each frame.
    pub fn set_position(&self, user: &str, position: Vec3) {
        let _ = self
            .commands
            .send(AudioCommand::Position(user.to_owned(), position));
    }

    /// Places the listener at `own` and every remote voice at its speaker's
    /// interpolated avatar head in `scene` at `now`: what every mode calls
    /// once a frame.
    pub fn place(&self, scene: &RoomScene, now: f64, own: HeadPose) {
        self.set_listener(own);
        for avatar in scene.remote_avatars(now) {
            if let Some((user, _)) = scene.presence().by_slot(avatar.slot) {
                self.set_position(user, Vec3::from(avatar.instance.pose.head.position));
            }
        }
    }

    /// Forgets a person's voice (they left the room).
    pub fn forget(&self, user: &str) {
        let _ = self.commands.send(AudioCommand::Forget(user.to_owned()));
    }

    pub fn status(&self) -> watch::Receiver<VoiceStatus> {
        self.transport.status()
    }

    /// Track mid -> user id, as the server announced.
    pub fn tracks(&self) -> HashMap<String, String> {
        self.transport.tracks()
    }

    /// Who the SFU hears speaking now.
    pub fn speaking(&self) -> std::collections::BTreeSet<String> {
        self.transport.speaking()
    }

    pub fn transport_stats(&self) -> TransportStats {
        self.transport.stats()
    }

    pub fn report(&self) -> AudioReport {
        self.monitor().report()
    }

    /// A handle that watches the call from elsewhere (a printer, the UI).
    pub fn monitor(&self) -> VoiceMonitor {
        VoiceMonitor {
            transport: self.transport.clone(),
            report: self.report.clone(),
        }
    }

    /// Leaves voice (the room stays) and closes the devices; a WAV speaker
    /// file is complete once this returns.
    pub async fn leave(mut self) {
        self.transport.leave().await;
        self.stop_audio();
    }

    fn stop_audio(&mut self) {
        let _ = self.commands.send(AudioCommand::Stop);
        if let Some(audio) = self.audio.take() {
            let _ = audio.join();
        }
    }
}

/// Watches a call: where it stands, whose voice each track carries, levels.
#[derive(Debug, Clone)]
pub struct VoiceMonitor {
    transport: Arc<VoiceTransport>,
    report: Arc<Mutex<AudioReport>>,
}

impl VoiceMonitor {
    pub fn status(&self) -> watch::Receiver<VoiceStatus> {
        self.transport.status()
    }

    /// Track mid -> user id, as the server announced.
    pub fn tracks(&self) -> HashMap<String, String> {
        self.transport.tracks()
    }

    pub fn report(&self) -> AudioReport {
        self.report
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// The listener's head from an avatar pose's head joint.
pub fn head_pose(head: &Joint) -> HeadPose {
    let [x, y, z, w] = head.orientation;
    HeadPose {
        position: Vec3::from(head.position),
        orientation: glam::Quat::from_xyzw(x, y, z, w).normalize(),
    }
}

impl Drop for VoiceSession {
    fn drop(&mut self) {
        self.stop_audio();
    }
}

struct AudioThread {
    pipeline: VoicePipeline,
    microphone: Option<Box<dyn Microphone>>,
    /// The speakers, and when they started playing their first period.
    speaker: Option<(Box<dyn Speaker>, Instant)>,
    transport: Arc<VoiceTransport>,
    received: mpsc::Receiver<ReceivedOpus>,
    commands: std_mpsc::Receiver<AudioCommand>,
    report: Arc<Mutex<AudioReport>>,
}

impl AudioThread {
    fn run(mut self) {
        // One clock for packet arrivals and playout, as the jitter buffer needs.
        let epoch = Instant::now();
        let mut frame = vec![0f32; FRAME_SAMPLES];
        let mut out = vec![0f32; STEREO_FRAME];
        let mut queued_sum = 0f64;
        let mut written = 0u64;
        let mut last_report = Instant::now();
        loop {
            loop {
                match self.commands.try_recv() {
                    Ok(AudioCommand::Stop) | Err(std_mpsc::TryRecvError::Disconnected) => return,
                    Ok(command) => self.command(command),
                    Err(std_mpsc::TryRecvError::Empty) => break,
                }
            }
            while let Ok(packet) = self.received.try_recv() {
                if self.speaker.is_none() {
                    // Nothing plays: a talking bot ignores what it hears.
                    continue;
                }
                let arrival = packet.arrival.saturating_duration_since(epoch);
                self.pipeline.receive(
                    &packet.user_id,
                    packet.ssrc,
                    packet.sequence,
                    packet.timestamp,
                    arrival,
                    packet.payload,
                );
            }
            match &mut self.microphone {
                Some(microphone) => {
                    if microphone.read_frame(&mut frame, POLL) {
                        self.capture(&frame);
                    }
                }
                None => std::thread::sleep(POLL),
            }
            if let Some((speaker, started)) = &mut self.speaker {
                while speaker.queued_frames() < SPEAKER_QUEUE_FRAMES {
                    let queued = speaker.queued_frames();
                    self.pipeline.playout(epoch.elapsed(), &mut out);
                    speaker.write_frame(&out);
                    // This frame plays after the ones ahead of it, once the
                    // period playing now is over.
                    let into_period = started.elapsed().as_secs_f64() * 1000.0 % 20.0;
                    queued_sum += queued as f64 * 20.0 + (20.0 - into_period);
                    written += 1;
                }
            }
            if last_report.elapsed() >= Duration::from_millis(100) {
                last_report = Instant::now();
                self.publish(queued_sum / written.max(1) as f64);
            }
        }
    }

    fn capture(&mut self, frame: &[f32]) {
        match self.pipeline.capture(frame) {
            Ok(Some(packet)) => {
                self.transport.send_opus(OpusFrame {
                    payload: packet.payload,
                    sample: packet.sample,
                    level: Some(AudioLevel {
                        dbov: packet.level_dbov,
                        voice: packet.voice,
                    }),
                });
            }
            Ok(None) => {}
            Err(error) => eprintln!("voice: a microphone frame was not sent: {error}"),
        }
    }

    fn command(&mut self, command: AudioCommand) {
        match command {
            AudioCommand::Listener(pose) => self.pipeline.set_listener(pose),
            AudioCommand::Position(user, position) => self.pipeline.set_position(&user, position),
            AudioCommand::Volume(user, volume) => self.pipeline.set_volume(&user, volume),
            AudioCommand::Transmitting(on) => self.pipeline.set_transmitting(on),
            AudioCommand::MutedAll(muted) => self.pipeline.set_muted_all(muted),
            AudioCommand::Processing(config) => self.pipeline.set_processing(config),
            AudioCommand::Forget(user) => self.pipeline.remove_voice(&user),
            AudioCommand::Stop => {}
        }
    }

    /// Device events to stderr; levels and figures to the report.
    fn publish(&mut self, speaker_queue_ms: f64) {
        let mut events = Vec::new();
        if let Some(microphone) = &mut self.microphone {
            events.extend(microphone.take_events());
        }
        if let Some((speaker, _)) = &mut self.speaker {
            events.extend(speaker.take_events());
        }
        for event in events {
            eprintln!("voice: {event}");
        }
        // A voice the server no longer names (its speaker left voice, or
        // another took the track) is forgotten, jitter buffer and all.
        let named: std::collections::HashSet<String> =
            self.transport.tracks().into_values().collect();
        let gone: Vec<String> = self
            .pipeline
            .users()
            .filter(|user| !named.contains(*user))
            .map(str::to_owned)
            .collect();
        for user in gone {
            self.pipeline.remove_voice(&user);
        }
        let voice_levels = self
            .pipeline
            .users()
            .map(|user| {
                let level = self.pipeline.voice_level(user).unwrap_or(0.0);
                (user.to_owned(), level)
            })
            .collect();
        let mut report = self
            .report
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        report.input_level = self.pipeline.input_level();
        report.voice_levels = voice_levels;
        report.speaker_queue_ms = speaker_queue_ms;
    }
}
