//! Microphones and speakers: sound cards through `cpal`, or WAV files in
//! their place (`--mic-wav`, `--speaker-wav`), behind one pair of traits.
//!
//! Both kinds run on their own threads (cpal's callbacks, or a thread with a
//! clock for a WAV file, paced in real time) and meet the voice pipeline at a
//! queue of samples: a [`Microphone`] hands out 20 ms frames of 48 kHz mono as
//! they are captured, a [`Speaker`] takes 20 ms frames of 48 kHz stereo and
//! plays silence when it runs dry.
//!
//! A sound card that goes away mid-call (unplugged, its stream failed) is
//! replaced by the system's default device on the same queue, so the call
//! goes on; the change is reported as a [`DeviceEvent`].

use std::collections::VecDeque;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};

use super::codec::{FRAME_SAMPLES, SAMPLE_RATE};
use super::wav::{Wav, WavError, WavWriter};

/// Samples in one 20 ms stereo frame.
pub const STEREO_FRAME: usize = 2 * FRAME_SAMPLES;
/// Device buffer: 10 ms (TESTING.md: the default size gave I/O errors).
pub const DEVICE_BUFFER_FRAMES: u32 = 480;
/// A device whose callbacks stop for this long is taken as gone.
const STALLED: Duration = Duration::from_millis(1000);
/// Frames a queue holds at most; older ones are dropped (a stalled reader
/// must not build up delay).
const QUEUE_FRAMES: usize = 10;

/// Which microphone to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputChoice {
    /// The system's default input.
    Default,
    /// A sound card by name (`--mic NAME`): its exact name, or a part of
    /// exactly one device's name.
    Named(String),
    /// A WAV file played in real time (`--mic-wav FILE`), then silence.
    Wav(PathBuf),
}

/// Which speakers to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputChoice {
    Default,
    /// `--speaker NAME`.
    Named(String),
    /// A WAV file written in real time (`--speaker-wav FILE`).
    Wav(PathBuf),
}

/// Something that happened to a device during a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceEvent {
    /// The device failed (`reason`) and the default device took over.
    FellBack {
        from: String,
        to: String,
        reason: String,
    },
    /// The device failed and no other could be opened; the call goes on
    /// without it (silence in, nothing out) and retries each second.
    Lost { device: String, reason: String },
}

impl fmt::Display for DeviceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceEvent::FellBack { from, to, reason } => {
                write!(
                    f,
                    "audio device {from:?} failed ({reason}); now using {to:?}"
                )
            }
            DeviceEvent::Lost { device, reason } => write!(
                f,
                "audio device {device:?} failed ({reason}) and no other device opens; \
                 plug one in or choose another in the settings"
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("no {kind} device named {name:?}; the {kind} devices are: {available}")]
    NotFound {
        kind: &'static str,
        name: String,
        available: String,
    },
    #[error("{count} {kind} devices match {name:?} ({matches}); give more of the name")]
    Ambiguous {
        kind: &'static str,
        name: String,
        count: usize,
        matches: String,
    },
    #[error(
        "no default {kind} device (no sound card or sound server); use --{flag}-wav FILE instead"
    )]
    NoDefault {
        kind: &'static str,
        flag: &'static str,
    },
    #[error("cannot open the {kind} device {name:?}: {reason}")]
    Open {
        kind: &'static str,
        name: String,
        reason: String,
    },
    #[error(transparent)]
    Wav(#[from] WavError),
}

/// A source of captured voice: 20 ms frames of 48 kHz mono.
pub trait Microphone: Send + fmt::Debug {
    /// The device's name (or the WAV file's path).
    fn name(&self) -> String;
    /// Fills `frame` ([`FRAME_SAMPLES`]) with the next captured frame,
    /// waiting up to `timeout`; false when none came in time.
    fn read_frame(&mut self, frame: &mut [f32], timeout: Duration) -> bool;
    /// What happened to the device since the last call.
    fn take_events(&mut self) -> Vec<DeviceEvent>;
}

/// A sink for the mix: 20 ms frames of 48 kHz stereo, interleaved.
pub trait Speaker: Send + fmt::Debug {
    fn name(&self) -> String;
    /// Queues one frame ([`STEREO_FRAME`] samples) to play.
    fn write_frame(&mut self, frame: &[f32]);
    /// Frames queued and not played yet: write another when this drops
    /// below two or so.
    fn queued_frames(&self) -> usize;
    fn take_events(&mut self) -> Vec<DeviceEvent>;
}

/// Opens the microphone the user chose.
pub fn open_microphone(choice: &InputChoice) -> Result<Box<dyn Microphone>, DeviceError> {
    Ok(match choice {
        InputChoice::Wav(path) => Box::new(WavMicrophone::open(path)?),
        InputChoice::Default => Box::new(CpalMicrophone::open(None)?),
        InputChoice::Named(name) => Box::new(CpalMicrophone::open(Some(name))?),
    })
}

/// Opens the speakers the user chose.
pub fn open_speaker(choice: &OutputChoice) -> Result<Box<dyn Speaker>, DeviceError> {
    Ok(match choice {
        OutputChoice::Wav(path) => Box::new(WavSpeaker::create(path)?),
        OutputChoice::Default => Box::new(CpalSpeaker::open(None)?),
        OutputChoice::Named(name) => Box::new(CpalSpeaker::open(Some(name))?),
    })
}

/// The sound cards there are, for `--list-devices` and the settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceList {
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub default_input: Option<String>,
    pub default_output: Option<String>,
}

pub fn list_devices() -> DeviceList {
    let host = cpal::default_host();
    let names = |devices: Result<Vec<cpal::Device>, cpal::Error>| -> Vec<String> {
        devices
            .map(|devices| devices.iter().map(|d| d.to_string()).collect())
            .unwrap_or_default()
    };
    DeviceList {
        inputs: names(host.input_devices().map(|d| d.collect())),
        outputs: names(host.output_devices().map(|d| d.collect())),
        default_input: host.default_input_device().map(|d| d.to_string()),
        default_output: host.default_output_device().map(|d| d.to_string()),
    }
}

/// Picks `wanted` from `names`: an exact name, else the one name that
/// contains it (ignoring case).
fn choose<'a>(
    kind: &'static str,
    names: &'a [String],
    wanted: &str,
) -> Result<&'a str, DeviceError> {
    if let Some(exact) = names.iter().find(|n| *n == wanted) {
        return Ok(exact);
    }
    let lower = wanted.to_lowercase();
    let matches: Vec<&String> = names
        .iter()
        .filter(|n| n.to_lowercase().contains(&lower))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(DeviceError::NotFound {
            kind,
            name: wanted.to_owned(),
            available: if names.is_empty() {
                "(none)".into()
            } else {
                names.join(", ")
            },
        }),
        many => Err(DeviceError::Ambiguous {
            kind,
            name: wanted.to_owned(),
            count: many.len(),
            matches: many
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Samples between a device thread and the pipeline, and the device's events.
#[derive(Debug, Default)]
struct Shared {
    samples: Mutex<VecDeque<f32>>,
    ready: Condvar,
    events: Mutex<Vec<DeviceEvent>>,
    stop: AtomicBool,
    /// When a device callback last ran: a device that stops calling back
    /// (some report no error when they go) is as gone as one that fails.
    activity: Mutex<Option<Instant>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, VecDeque<f32>> {
        // A device thread that panicked leaves plain samples behind: go on.
        self.samples
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends samples, dropping the oldest beyond `capacity`.
    fn push(&self, samples: impl IntoIterator<Item = f32>, capacity: usize) {
        let mut queue = self.lock();
        queue.extend(samples);
        let excess = queue.len().saturating_sub(capacity);
        queue.drain(..excess);
        drop(queue);
        self.ready.notify_all();
    }

    /// Takes exactly `out.len()` samples, waiting up to `timeout` for them.
    fn pop_exact(&self, out: &mut [f32], timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut queue = self.lock();
        while queue.len() < out.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            queue = self
                .ready
                .wait_timeout(queue, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
        let n = out.len();
        for (slot, sample) in out.iter_mut().zip(queue.drain(..n)) {
            *slot = sample;
        }
        true
    }

    /// Fills `out` with what is queued, silence for the rest.
    fn pop_or_silence(&self, out: &mut [f32]) {
        let mut queue = self.lock();
        let n = out.len().min(queue.len());
        for (slot, sample) in out.iter_mut().zip(queue.drain(..n)) {
            *slot = sample;
        }
        out[n..].fill(0.0);
    }

    fn touch(&self) {
        *self.activity.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    fn silent_for(&self) -> Duration {
        self.activity
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map_or(Duration::ZERO, |at| at.elapsed())
    }

    fn report(&self, event: DeviceEvent) {
        eprintln!("voice: {event}");
        self.events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(event);
    }

    fn take_events(&self) -> Vec<DeviceEvent> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Runs `tick` every 20 ms on a clock (not "sleep 20 ms", which drifts)
/// until the shared stop flag is set.
fn paced(
    shared: Arc<Shared>,
    name: String,
    mut tick: impl FnMut(&Shared) + Send + 'static,
) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let start = Instant::now();
            let period = Duration::from_millis(20);
            let mut n = 0u32;
            while !shared.stop.load(Ordering::Relaxed) {
                tick(&shared);
                n += 1;
                let next = start + period * n;
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
        })
        .expect("spawning a WAV device thread")
}

/// A WAV file in place of a microphone: its voice (48 kHz mono, converted
/// from any rate and channel count) in real time, then silence.
#[derive(Debug)]
pub struct WavMicrophone {
    path: PathBuf,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl WavMicrophone {
    pub fn open(path: &Path) -> Result<WavMicrophone, DeviceError> {
        let voice = Wav::read_voice(path)?;
        let shared = Arc::new(Shared::default());
        let mut at = 0;
        let thread = paced(shared.clone(), "mic-wav".into(), move |shared| {
            let end = (at + FRAME_SAMPLES).min(voice.len());
            let frame = voice[at.min(end)..end]
                .iter()
                .copied()
                .chain(std::iter::repeat(0.0))
                .take(FRAME_SAMPLES);
            at = end;
            shared.push(frame, QUEUE_FRAMES * FRAME_SAMPLES);
        });
        Ok(WavMicrophone {
            path: path.to_owned(),
            shared,
            thread: Some(thread),
        })
    }
}

impl Microphone for WavMicrophone {
    fn name(&self) -> String {
        self.path.display().to_string()
    }

    fn read_frame(&mut self, frame: &mut [f32], timeout: Duration) -> bool {
        self.shared.pop_exact(frame, timeout)
    }

    fn take_events(&mut self) -> Vec<DeviceEvent> {
        self.shared.take_events()
    }
}

impl Drop for WavMicrophone {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A WAV file in place of speakers: 48 kHz stereo, 16-bit, written in real
/// time (silence where the mix ran dry), so its timeline is the listener's.
#[derive(Debug)]
pub struct WavSpeaker {
    path: PathBuf,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl WavSpeaker {
    pub fn create(path: &Path) -> Result<WavSpeaker, DeviceError> {
        let mut writer = WavWriter::create(path, SAMPLE_RATE, 2)?;
        let shared = Arc::new(Shared::default());
        let mut frame = vec![0.0f32; STEREO_FRAME];
        let mut failed = false;
        let thread = paced(shared.clone(), "speaker-wav".into(), move |shared| {
            shared.pop_or_silence(&mut frame);
            if let Err(error) = writer.write(&frame)
                && !failed
            {
                failed = true;
                shared.report(DeviceEvent::Lost {
                    device: writer_path(&error),
                    reason: error.to_string(),
                });
            }
        });
        Ok(WavSpeaker {
            path: path.to_owned(),
            shared,
            thread: Some(thread),
        })
    }
}

fn writer_path(error: &WavError) -> String {
    match error {
        WavError::Write { path, .. }
        | WavError::Read { path, .. }
        | WavError::Format { path, .. } => path.display().to_string(),
    }
}

impl Speaker for WavSpeaker {
    fn name(&self) -> String {
        self.path.display().to_string()
    }

    fn write_frame(&mut self, frame: &[f32]) {
        self.shared
            .push(frame.iter().copied(), QUEUE_FRAMES * STEREO_FRAME);
    }

    fn queued_frames(&self) -> usize {
        self.shared.lock().len() / STEREO_FRAME
    }

    fn take_events(&mut self) -> Vec<DeviceEvent> {
        self.shared.take_events()
    }
}

impl Drop for WavSpeaker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Direction of a cpal stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Input,
    Output,
}

impl Direction {
    fn kind(self) -> &'static str {
        match self {
            Direction::Input => "input",
            Direction::Output => "output",
        }
    }
}

/// A cpal stream on a device, kept open by a supervisor thread that replaces
/// the device with the default one when its stream reports an error.
struct CpalDevice {
    direction: Direction,
    shared: Arc<Shared>,
    /// The device in use now.
    current: Arc<Mutex<String>>,
    supervisor: Option<JoinHandle<()>>,
    errors: std::sync::mpsc::Sender<Option<String>>,
}

impl fmt::Debug for CpalDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CpalDevice")
            .field("direction", &self.direction)
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

/// Finds the device: by name, or the default one.
fn find_device(direction: Direction, name: Option<&str>) -> Result<cpal::Device, DeviceError> {
    let host = cpal::default_host();
    let kind = direction.kind();
    let Some(name) = name else {
        let device = match direction {
            Direction::Input => host.default_input_device(),
            Direction::Output => host.default_output_device(),
        };
        return device.ok_or(DeviceError::NoDefault {
            kind,
            flag: match direction {
                Direction::Input => "mic",
                Direction::Output => "speaker",
            },
        });
    };
    let devices: Vec<cpal::Device> = match direction {
        Direction::Input => host.input_devices().map(|d| d.collect()),
        Direction::Output => host.output_devices().map(|d| d.collect()),
    }
    .map_err(|error| DeviceError::Open {
        kind,
        name: name.to_owned(),
        reason: error.to_string(),
    })?;
    let names: Vec<String> = devices.iter().map(|d| d.to_string()).collect();
    let chosen = choose(kind, &names, name)?;
    let at = names
        .iter()
        .position(|n| n == chosen)
        .expect("chosen from names");
    Ok(devices.into_iter().nth(at).expect("same length"))
}

/// Opens a stream on `device` that moves samples between it and `shared`,
/// converting to and from 48 kHz (mono in, stereo out); stream errors go to
/// `errors`.
fn build_stream(
    direction: Direction,
    device: &cpal::Device,
    shared: &Arc<Shared>,
    errors: std::sync::mpsc::Sender<Option<String>>,
) -> Result<cpal::Stream, String> {
    let supported = match direction {
        Direction::Input => device
            .supported_input_configs()
            .map(|c| c.collect::<Vec<_>>()),
        Direction::Output => device
            .supported_output_configs()
            .map(|c| c.collect::<Vec<_>>()),
    }
    .map_err(|error| error.to_string())?;
    let formats = [cpal::SampleFormat::F32, cpal::SampleFormat::I16];
    let range = formats
        .iter()
        .find_map(|format| {
            supported.iter().find(|c| {
                c.sample_format() == *format
                    && c.min_sample_rate() <= SAMPLE_RATE
                    && c.max_sample_rate() >= SAMPLE_RATE
            })
        })
        .ok_or_else(|| {
            "it supports neither 32-bit float nor 16-bit samples at 48 kHz".to_owned()
        })?;
    let format = range.sample_format();
    let channels = usize::from(range.channels());
    let config = cpal::StreamConfig {
        channels: range.channels(),
        sample_rate: SAMPLE_RATE,
        buffer_size: cpal::BufferSize::Fixed(DEVICE_BUFFER_FRAMES),
    };
    let on_error = move |error: cpal::Error| {
        // An xrun is a glitch, not a lost device.
        if error.kind() != cpal::ErrorKind::Xrun {
            let _ = errors.send(Some(error.to_string()));
        }
    };
    let timeout = Some(Duration::from_secs(2));
    let stream = match (direction, format) {
        (Direction::Input, cpal::SampleFormat::F32) => {
            let shared = shared.clone();
            device.build_input_stream::<f32, _, _>(
                config,
                move |data, _| capture(&shared, data.iter().copied(), channels),
                on_error,
                timeout,
            )
        }
        (Direction::Input, _) => {
            let shared = shared.clone();
            device.build_input_stream::<i16, _, _>(
                config,
                move |data, _| {
                    capture(
                        &shared,
                        data.iter().map(|s| f32::from(*s) / 32768.0),
                        channels,
                    )
                },
                on_error,
                timeout,
            )
        }
        (Direction::Output, cpal::SampleFormat::F32) => {
            let shared = shared.clone();
            let mut stereo = Vec::new();
            device.build_output_stream::<f32, _, _>(
                config,
                move |data: &mut [f32], _| {
                    play(
                        &shared,
                        &mut stereo,
                        data.len() / channels,
                        channels,
                        |i, v| data[i] = v,
                    )
                },
                on_error,
                timeout,
            )
        }
        (Direction::Output, _) => {
            let shared = shared.clone();
            let mut stereo = Vec::new();
            device.build_output_stream::<i16, _, _>(
                config,
                move |data: &mut [i16], _| {
                    play(
                        &shared,
                        &mut stereo,
                        data.len() / channels,
                        channels,
                        |i, v| data[i] = (v.clamp(-1.0, 1.0) * 32767.0) as i16,
                    )
                },
                on_error,
                timeout,
            )
        }
    }
    .map_err(|error| error.to_string())?;
    stream.play().map_err(|error| error.to_string())?;
    Ok(stream)
}

/// Captured device samples (interleaved, `channels`) into the mono queue.
fn capture(shared: &Shared, data: impl Iterator<Item = f32>, channels: usize) {
    shared.touch();
    let samples: Vec<f32> = data.collect();
    let mono = samples
        .chunks_exact(channels.max(1))
        .map(|frame| frame.iter().sum::<f32>() / frame.len() as f32);
    shared.push(mono, QUEUE_FRAMES * FRAME_SAMPLES);
}

/// Fills `frames` device frames of `channels` from the stereo queue (silence
/// when it runs dry) through `write(index, sample)`.
fn play(
    shared: &Shared,
    stereo: &mut Vec<f32>,
    frames: usize,
    channels: usize,
    mut write: impl FnMut(usize, f32),
) {
    shared.touch();
    stereo.resize(2 * frames, 0.0);
    shared.pop_or_silence(stereo);
    for (i, pair) in stereo.chunks_exact(2).enumerate() {
        for channel in 0..channels {
            let value = match (channels, channel) {
                (1, _) => 0.5 * (pair[0] + pair[1]),
                (_, 0) => pair[0],
                (_, 1) => pair[1],
                _ => 0.0,
            };
            write(i * channels + channel, value);
        }
    }
}

impl CpalDevice {
    fn open(direction: Direction, name: Option<&str>) -> Result<CpalDevice, DeviceError> {
        let device = find_device(direction, name)?;
        let device_name = device.to_string();
        let shared = Arc::new(Shared::default());
        let (errors, failures) = std::sync::mpsc::channel();
        let stream =
            build_stream(direction, &device, &shared, errors.clone()).map_err(|reason| {
                DeviceError::Open {
                    kind: direction.kind(),
                    name: device_name.clone(),
                    reason,
                }
            })?;
        let current = Arc::new(Mutex::new(device_name));
        let supervisor = {
            let (shared, current, errors) = (shared.clone(), current.clone(), errors.clone());
            std::thread::Builder::new()
                .name(format!("{}-device", direction.kind()))
                .spawn(move || supervise(direction, stream, &shared, &current, &errors, &failures))
                .expect("spawning an audio device supervisor")
        };
        Ok(CpalDevice {
            direction,
            shared,
            current,
            supervisor: Some(supervisor),
            errors,
        })
    }

    fn name(&self) -> String {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Holds the stream; on an error, drops it (a failed stream keeps
/// reporting errors) and opens the default device in its place, retrying
/// each second while none opens. `None` on `failures` stops it.
fn supervise(
    direction: Direction,
    stream: cpal::Stream,
    shared: &Arc<Shared>,
    current: &Mutex<String>,
    errors: &std::sync::mpsc::Sender<Option<String>>,
    failures: &std::sync::mpsc::Receiver<Option<String>>,
) {
    let mut stream = Detached(Some(stream));
    shared.touch();
    loop {
        let reason = match failures.recv_timeout(Duration::from_millis(250)) {
            Ok(Some(reason)) => reason,
            Ok(None) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) if shared.silent_for() > STALLED => {
                format!(
                    "no audio from it for {} ms",
                    shared.silent_for().as_millis()
                )
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
        };
        drop(Detached(stream.0.take()));
        let from = current.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut reported = false;
        while stream.0.is_none() {
            // What the dropped stream said before it went is stale.
            loop {
                match failures.try_recv() {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
                    Err(std::sync::mpsc::TryRecvError::Empty) => break,
                }
            }
            if shared.stop.load(Ordering::Relaxed) {
                return;
            }
            let opened = find_device(direction, None)
                .map_err(|e| e.to_string())
                .and_then(|device| {
                    let name = device.to_string();
                    build_stream(direction, &device, shared, errors.clone()).map(|s| (s, name))
                });
            match opened {
                Ok((replacement, to)) => {
                    stream.0 = Some(replacement);
                    shared.touch();
                    *current.lock().unwrap_or_else(|p| p.into_inner()) = to.clone();
                    shared.report(DeviceEvent::FellBack {
                        from: from.clone(),
                        to,
                        reason: reason.clone(),
                    });
                }
                Err(error) => {
                    if !reported {
                        reported = true;
                        shared.report(DeviceEvent::Lost {
                            device: from.clone(),
                            reason: format!("{reason}; the default device: {error}"),
                        });
                    }
                    match failures.recv_timeout(Duration::from_secs(1)) {
                        Ok(None) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                        _ => {}
                    }
                }
            }
        }
    }
}

/// A stream that is closed on a thread of its own: closing waits for the
/// stream's audio thread, which a device that went away can leave stuck.
struct Detached(Option<cpal::Stream>);

impl Drop for Detached {
    fn drop(&mut self) {
        if let Some(stream) = self.0.take() {
            let _ = std::thread::Builder::new()
                .name("closing-audio-stream".into())
                .spawn(move || drop(stream));
        }
    }
}

impl Drop for CpalDevice {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        let _ = self.errors.send(None);
        if let Some(supervisor) = self.supervisor.take() {
            let _ = supervisor.join();
        }
    }
}

/// A sound card's microphone.
#[derive(Debug)]
pub struct CpalMicrophone(CpalDevice);

impl CpalMicrophone {
    /// The named device (see [`InputChoice::Named`]), or the default one.
    pub fn open(name: Option<&str>) -> Result<CpalMicrophone, DeviceError> {
        CpalDevice::open(Direction::Input, name).map(CpalMicrophone)
    }
}

impl Microphone for CpalMicrophone {
    fn name(&self) -> String {
        self.0.name()
    }

    fn read_frame(&mut self, frame: &mut [f32], timeout: Duration) -> bool {
        self.0.shared.pop_exact(frame, timeout)
    }

    fn take_events(&mut self) -> Vec<DeviceEvent> {
        self.0.shared.take_events()
    }
}

/// A sound card's speakers (or headphones).
#[derive(Debug)]
pub struct CpalSpeaker(CpalDevice);

impl CpalSpeaker {
    pub fn open(name: Option<&str>) -> Result<CpalSpeaker, DeviceError> {
        CpalDevice::open(Direction::Output, name).map(CpalSpeaker)
    }
}

impl Speaker for CpalSpeaker {
    fn name(&self) -> String {
        self.0.name()
    }

    fn write_frame(&mut self, frame: &[f32]) {
        self.0
            .shared
            .push(frame.iter().copied(), QUEUE_FRAMES * STEREO_FRAME);
    }

    fn queued_frames(&self) -> usize {
        self.0.shared.lock().len() / STEREO_FRAME
    }

    fn take_events(&mut self) -> Vec<DeviceEvent> {
        self.0.shared.take_events()
    }
}

#[cfg(test)]
mod tests {
    use std::process::{Child, Command, Stdio};

    use super::*;

    fn tempdir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("roomscale-devices-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn tone(frequency: f32, seconds: f32, rate: u32) -> Vec<f32> {
        (0..(seconds * rate as f32) as usize)
            .map(|n| 0.5 * (std::f32::consts::TAU * frequency * n as f32 / rate as f32).sin())
            .collect()
    }

    /// The strongest of `candidates` (Hz) in `signal` (48 kHz), by Goertzel.
    fn loudest(signal: &[f32], candidates: &[f32]) -> f32 {
        let power = |frequency: f32| {
            let w = std::f32::consts::TAU * frequency / SAMPLE_RATE as f32;
            let (mut s1, mut s2) = (0.0f32, 0.0f32);
            for x in signal {
                let s = x + 2.0 * w.cos() * s1 - s2;
                s2 = s1;
                s1 = s;
            }
            s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2
        };
        *candidates
            .iter()
            .max_by(|a, b| power(**a).total_cmp(&power(**b)))
            .unwrap()
    }

    #[test]
    fn devices_are_chosen_by_name_or_part_of_it() {
        let names: Vec<String> = ["default", "pulse", "USB Headset Mic", "USB Webcam Mic"]
            .map(String::from)
            .into();
        assert_eq!(choose("input", &names, "pulse").unwrap(), "pulse");
        assert_eq!(
            choose("input", &names, "headset").unwrap(),
            "USB Headset Mic"
        );
        let ambiguous = choose("input", &names, "usb").unwrap_err().to_string();
        assert!(
            ambiguous.contains("2 input devices match") && ambiguous.contains("USB Webcam Mic"),
            "{ambiguous}"
        );
        let missing = choose("input", &names, "studio").unwrap_err().to_string();
        assert!(
            missing.contains("no input device named \"studio\"")
                && missing.contains("USB Headset Mic"),
            "{missing}"
        );
        assert!(
            choose("output", &[], "x")
                .unwrap_err()
                .to_string()
                .contains("(none)")
        );
    }

    #[test]
    fn a_wav_microphone_speaks_in_real_time_then_goes_silent() {
        let dir = tempdir("mic");
        let path = dir.join("tone.wav");
        // 0.2 s of 440 Hz at 44.1 kHz stereo: converted to 48 kHz mono.
        let samples: Vec<f32> = tone(440.0, 0.2, 44_100)
            .iter()
            .flat_map(|s| [*s, *s])
            .collect();
        Wav {
            sample_rate: 44_100,
            channels: 2,
            samples,
        }
        .write(&path)
        .unwrap();
        let mut mic = open_microphone(&InputChoice::Wav(path.clone())).unwrap();
        assert_eq!(mic.name(), path.display().to_string());
        let start = Instant::now();
        let mut frames = Vec::new();
        let mut frame = [0.0f32; FRAME_SAMPLES];
        while frames.len() < 20 {
            assert!(
                mic.read_frame(&mut frame, Duration::from_secs(1)),
                "a frame every 20 ms"
            );
            frames.push(frame);
        }
        let elapsed = start.elapsed();
        // 20 frames take 19 periods after the first (paced, not all at once).
        assert!(
            elapsed >= Duration::from_millis(340) && elapsed < Duration::from_millis(600),
            "{elapsed:?}"
        );
        let voice: Vec<f32> = frames[..10].iter().flatten().copied().collect();
        assert_eq!(loudest(&voice[960..], &[220.0, 440.0, 880.0]), 440.0);
        assert!(
            frames[11..].iter().flatten().all(|s| *s == 0.0),
            "silence after the file"
        );
        assert!(mic.take_events().is_empty());
        drop(mic);
        let error = open_microphone(&InputChoice::Wav(dir.join("missing.wav")))
            .unwrap_err()
            .to_string();
        assert!(error.contains("missing.wav"), "{error}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_wav_speaker_records_in_real_time_with_silence_where_the_mix_ran_dry() {
        let dir = tempdir("speaker");
        let path = dir.join("out.wav");
        let opened = Instant::now();
        let mut speaker = open_speaker(&OutputChoice::Wav(path.clone())).unwrap();
        let mono = tone(660.0, 0.2, SAMPLE_RATE);
        let stereo: Vec<f32> = mono.iter().flat_map(|s| [*s, -*s]).collect();
        for frame in stereo.chunks(STEREO_FRAME) {
            speaker.write_frame(frame);
        }
        assert!(
            speaker.queued_frames() >= 8,
            "queued {}",
            speaker.queued_frames()
        );
        std::thread::sleep(Duration::from_millis(500));
        let deadline = Instant::now() + Duration::from_secs(2);
        while speaker.queued_frames() > 0 {
            assert!(Instant::now() < deadline, "the speaker stopped playing");
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(speaker);
        let elapsed = opened.elapsed().as_secs_f32();
        let wav = Wav::read(&path).unwrap();
        assert_eq!((wav.sample_rate, wav.channels), (SAMPLE_RATE, 2));
        let seconds = wav.samples.len() as f32 / 2.0 / SAMPLE_RATE as f32;
        assert!(
            (seconds - elapsed).abs() < 0.1,
            "{seconds} s written in {elapsed} s"
        );
        let left: Vec<f32> = wav.samples.iter().step_by(2).copied().collect();
        let start = left.iter().position(|s| s.abs() > 0.01).unwrap();
        assert!(
            start <= 2 * FRAME_SAMPLES,
            "the tone starts within a frame or two ({start})"
        );
        assert_eq!(
            loudest(&left[start..start + 9600], &[330.0, 660.0, 1320.0]),
            660.0
        );
        assert!(
            left[start + 9600 + FRAME_SAMPLES..]
                .iter()
                .all(|s| s.abs() < 1e-4),
            "silence after the tone"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A PulseAudio daemon with a null sink, as TESTING.md starts it; killed on drop.
    struct Pulse(Child);

    impl Drop for Pulse {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn start_pulse(runtime: &Path) -> Result<Pulse, String> {
        let child = Command::new("pulseaudio")
            .args([
                "--daemonize=no",
                "-n",
                "--exit-idle-time=-1",
                "--disallow-exit",
                "--use-pid-file=no",
                "--load=module-native-protocol-unix",
                "--load=module-null-sink sink_name=vsink rate=48000 channels=2",
                "--load=module-always-sink",
            ])
            .env("XDG_RUNTIME_DIR", runtime)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| format!("cannot start pulseaudio ({error}); install it with `apt-get install pulseaudio`"))?;
        let pulse = Pulse(child);
        let socket = runtime.join("pulse/native");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            if Instant::now() > deadline {
                return Err("pulseaudio started but its socket never appeared".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(pulse)
    }

    /// Plays a tone through cpal into the null sink and captures it back from
    /// the sink's monitor, then kills the sound server mid-call and starts it
    /// again: the devices report the loss and come back, the call goes on.
    ///
    /// ALSA finds the test's own PulseAudio through XDG_RUNTIME_DIR, which a
    /// test cannot set in its own process: it runs itself again as a child
    /// with the variable set (ROOMSCALE_PULSE_CHILD marks the child).
    #[test]
    fn cpal_plays_and_captures_through_a_pulseaudio_null_sink() {
        const TEST: &str =
            "voice::devices::tests::cpal_plays_and_captures_through_a_pulseaudio_null_sink";
        let Some(runtime) = std::env::var_os("ROOMSCALE_PULSE_CHILD") else {
            let runtime = tempdir("pulse");
            let _pulse = match start_pulse(&runtime) {
                Ok(pulse) => pulse,
                Err(reason) => {
                    println!("skipped: {reason}");
                    return;
                }
            };
            let mut child = Command::new(std::env::current_exe().unwrap())
                .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
                .env("XDG_RUNTIME_DIR", &runtime)
                .env("ROOMSCALE_PULSE_CHILD", &runtime)
                .env("ROOMSCALE_PULSE_PID", _pulse.0.id().to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            // A sound stack that hangs fails the test instead of holding the run.
            let deadline = Instant::now() + Duration::from_secs(60);
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let output = child.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&output.stdout).to_string()
                + &String::from_utf8_lossy(&output.stderr);
            eprintln!("{text}");
            if let Some(line) = text.lines().find(|l| l.starts_with("skipped: ")) {
                println!("{line}");
            }
            assert!(
                output.status.success() && text.contains("1 passed"),
                "the child run failed:\n{text}"
            );
            let _ = std::fs::remove_dir_all(runtime);
            return;
        };
        let runtime = PathBuf::from(runtime);
        let devices = list_devices();
        eprintln!("devices: {devices:?}");
        if devices.default_output.is_none() || devices.default_input.is_none() {
            println!(
                "skipped: ALSA has no default device here (is libasound2-plugins installed?): {devices:?}"
            );
            return;
        }
        let mut speaker = open_speaker(&OutputChoice::Default).unwrap();
        let mut mic = open_microphone(&InputChoice::Default).unwrap();
        let play_and_hear = |speaker: &mut Box<dyn Speaker>,
                             mic: &mut Box<dyn Microphone>,
                             frequency: f32|
         -> f32 {
            let tone = tone(frequency, 1.0, SAMPLE_RATE);
            let mut heard = Vec::new();
            let mut frame = [0.0f32; FRAME_SAMPLES];
            for chunk in tone.chunks(FRAME_SAMPLES) {
                let stereo: Vec<f32> = chunk.iter().flat_map(|s| [*s, *s]).collect();
                let deadline = Instant::now() + Duration::from_secs(2);
                while speaker.queued_frames() > 3 {
                    assert!(Instant::now() < deadline, "the speaker stopped playing");
                    std::thread::sleep(Duration::from_millis(2));
                }
                speaker.write_frame(&stereo);
                while mic.read_frame(&mut frame, Duration::ZERO) {
                    heard.extend_from_slice(&frame);
                }
            }
            let deadline = Instant::now() + Duration::from_millis(300);
            while Instant::now() < deadline {
                if mic.read_frame(&mut frame, Duration::from_millis(50)) {
                    heard.extend_from_slice(&frame);
                }
            }
            let rms = (heard.iter().map(|s| s * s).sum::<f32>() / heard.len().max(1) as f32).sqrt();
            assert!(
                rms > 0.01,
                "heard nothing back at {frequency} Hz (RMS {rms}, {} samples)",
                heard.len()
            );
            loudest(&heard, &[frequency / 2.0, frequency, frequency * 1.5])
        };
        assert_eq!(play_and_hear(&mut speaker, &mut mic, 440.0), 440.0);

        // The sound server goes away mid-call (as a USB headset would), then
        // comes back: each device reports it and carries on, same objects.
        let pid = std::env::var("ROOMSCALE_PULSE_PID").unwrap();
        assert!(Command::new("kill").arg(&pid).status().unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(5);
        let (mut speaker_events, mut mic_events) = (Vec::new(), Vec::new());
        while (speaker_events.is_empty() || mic_events.is_empty()) && Instant::now() < deadline {
            speaker_events.extend(speaker.take_events());
            mic_events.extend(mic.take_events());
            // The call goes on meanwhile: writing and reading neither block nor fail.
            speaker.write_frame(&[0.0; STEREO_FRAME]);
            let mut frame = [0.0f32; FRAME_SAMPLES];
            mic.read_frame(&mut frame, Duration::from_millis(20));
        }
        eprintln!("after the sound server died: {speaker_events:?} {mic_events:?}");
        assert!(
            !speaker_events.is_empty() && !mic_events.is_empty(),
            "both devices said so"
        );
        let _pulse = start_pulse(&runtime).unwrap();
        // Back on the default device: a tone goes round again.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut heard = None;
        while heard != Some(660.0) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(500));
            heard = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                play_and_hear(&mut speaker, &mut mic, 660.0)
            }))
            .ok();
        }
        assert_eq!(
            heard,
            Some(660.0),
            "the call came back after the sound server did"
        );
        let events: Vec<DeviceEvent> = speaker
            .take_events()
            .into_iter()
            .chain(mic.take_events())
            .collect();
        eprintln!("after it came back: {events:?}");
    }
}
