//! `voice-latency`: mouth-to-ear latency of native voice on loopback.
//!
//! Starts the real `roomscale-server` and two native clients
//! (`roomscale join --headless`): one talks with a WAV file of clicks as its
//! microphone (`--mic-wav`), the other writes what it hears to a WAV file
//! (`--speaker-wav`). Both devices run in real time from a moment each
//! client prints (`voice: microphone ... from unix_us=T`), so a click's
//! place in each file is a time on one clock, and the latency of each click
//! is when it is written minus when it was said.
//!
//! Device buffers are left out, as a figure for the software between two
//! sound cards: the speakers' queue (the client prints its average) is taken
//! off. A WAV microphone hands over each 20 ms frame as it starts, where a
//! sound card hands it over when it is complete, so the 20 ms a real
//! microphone frame takes to fill is added (clicks start frames).
//!
//!   voice-latency [--server PATH] [--app PATH]
//!
//! Environment: ROOMSCALE_SERVER_BIN, ROOMSCALE_APP_BIN (default: next to this
//! program).

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use roomscale_tests::process;

const RATE: usize = 48_000;
const FRAME: usize = 960;
/// Clicks at these seconds into the microphone file (each starts a frame).
const CLICKS_AT_S: std::ops::RangeInclusive<usize> = 3..=12;
const MIC_SECONDS: usize = 14;
/// A click: 5 ms of 1 kHz under a Hann window.
const CLICK_SAMPLES: usize = 240;
/// The 20 ms a sound card's microphone frame takes to fill.
const FRAMING_MS: f64 = 20.0;
const TARGET_MS: f64 = 80.0;
/// A click is looked for this long after it was said.
const SEARCH_MS: usize = 500;

type Result<T, E = String> = std::result::Result<T, E>;

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(error) => {
            eprintln!("voice-latency: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<bool> {
    let mut args = std::env::args().skip(1);
    let mut server_path = std::env::var_os("ROOMSCALE_SERVER_BIN").map(PathBuf::from);
    let mut app_path = std::env::var_os("ROOMSCALE_APP_BIN").map(PathBuf::from);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--server" => server_path = args.next().map(PathBuf::from),
            "--app" => app_path = args.next().map(PathBuf::from),
            other => {
                return Err(format!(
                    "unknown argument {other}; see the file's doc comment"
                ));
            }
        }
    }
    let server_bin = process::server_binary(server_path.as_deref())?;
    let app_bin = match app_path {
        Some(path) => path,
        None => std::env::current_exe()
            .map_err(|e| format!("cannot find my own executable: {e}"))?
            .with_file_name("roomscale"),
    };
    if !app_bin.is_file() {
        return Err(format!(
            "no native client at {}; build it with `cargo build --release -p roomscale-app` \
             or name one with --app / ROOMSCALE_APP_BIN",
            app_bin.display()
        ));
    }
    let dir = tempfile::Builder::new()
        .prefix("roomscale-voice-latency-")
        .tempdir()
        .map_err(|e| format!("creating a temporary directory: {e}"))?;
    let clicks = dir.path().join("clicks.wav");
    let heard = dir.path().join("heard.wav");
    write_clicks(&clicks)?;

    let server = process::start_server(&server_bin, 0, &[], "ROOMSCALE_LATENCY_PINNED")?;
    let room_url = process::create_room_link(server.addr, "Latency")?;

    let seconds = (MIC_SECONDS + 3).to_string();
    let mut ear = Client::start(
        &app_bin,
        &[
            &room_url,
            "--name",
            "Ear",
            "--speaker-wav",
            path(&heard)?,
            "--seconds",
            &seconds,
        ],
    )?;
    ear.wait_for("voice: connected", Duration::from_secs(30))?;
    let mut mouth = Client::start(
        &app_bin,
        &[
            &room_url,
            "--name",
            "Mouth",
            "--mic-wav",
            path(&clicks)?,
            "--seconds",
            &MIC_SECONDS.to_string(),
        ],
    )?;
    mouth.wait_for("voice: connected", Duration::from_secs(30))?;
    let mouth_lines = mouth.finish(Duration::from_secs(MIC_SECONDS as u64 + 20))?;
    let ear_lines = ear.finish(Duration::from_secs(30))?;

    let mic_start = started_at(&mouth_lines, "voice: microphone ")?;
    let speaker_start = started_at(&ear_lines, "voice: speaker ")?;
    let speaker_buffer_ms = ear_lines
        .iter()
        .find_map(|l| {
            l.strip_prefix("voice: left (speaker buffer averaged ")
                .and_then(|rest| rest.strip_suffix(" ms)"))
        })
        .and_then(|ms| ms.parse::<f64>().ok())
        .ok_or("the listening client did not report its speaker buffer")?;
    let written = read_wav_mono(&heard)?;

    let mut raw = Vec::new();
    for second in CLICKS_AT_S {
        let said_us = mic_start as f64 + (second * RATE) as f64 / RATE as f64 * 1e6;
        let from = ((said_us - speaker_start as f64) / 1e6 * RATE as f64).max(0.0) as usize;
        let to = (from + SEARCH_MS * RATE / 1000).min(written.len());
        if from >= to {
            continue;
        }
        let window = &written[from..to];
        let peak = window.iter().fold(0f32, |m, s| m.max(s.abs()));
        if peak < 0.01 {
            continue;
        }
        let onset = window
            .iter()
            .position(|s| s.abs() >= 0.3 * peak)
            .expect("the peak is in the window");
        let heard_us = speaker_start as f64 + (from + onset) as f64 / RATE as f64 * 1e6;
        raw.push((heard_us - said_us) / 1000.0);
    }
    let expected = CLICKS_AT_S.count();
    if raw.len() < expected / 2 {
        return Err(format!(
            "only {} of {expected} clicks came through; the clients said:\n{}\n{}",
            raw.len(),
            mouth_lines.join("\n"),
            ear_lines.join("\n")
        ));
    }
    let latency: Vec<f64> = raw
        .iter()
        .map(|ms| ms + FRAMING_MS - speaker_buffer_ms)
        .collect();
    let median = quantile(&latency, 0.5);
    let max = quantile(&latency, 1.0);
    println!(
        "mouth-to-ear latency on loopback (a click in --mic-wav to the click in --speaker-wav of \
         another client, device buffers excluded): median {median:.1} ms, max {max:.1} ms over {} \
         of {expected} clicks (target < {TARGET_MS:.0} ms)",
        latency.len()
    );
    println!(
        "  from: file to file median {:.1} ms, + {FRAMING_MS:.0} ms microphone framing, \
         - {speaker_buffer_ms:.1} ms speaker buffer",
        quantile(&raw, 0.5)
    );
    let held = median < TARGET_MS;
    println!(
        "  verdict: {}",
        if held { "holds" } else { "over the target" }
    );
    drop(server);
    Ok(held)
}

/// A native client in headless mode, its stdout lines collected.
struct Client {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Client {
    fn start(app: &Path, args: &[&str]) -> Result<Client> {
        let mut child = Command::new(app)
            .arg("join")
            .args(args)
            .arg("--headless")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", app.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Client {
            child,
            lines,
            seen: Vec::new(),
        })
    }

    fn wait_for(&mut self, prefix: &str, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if self.seen.iter().any(|l| l.starts_with(prefix)) {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => {
                    return Err(format!(
                        "a client did not print \"{prefix}\" within {limit:?}; it printed:\n{}",
                        self.seen.join("\n")
                    ));
                }
            }
        }
    }

    /// Waits for the client to end by itself (`--seconds`); its lines.
    fn finish(mut self, limit: Duration) -> Result<Vec<String>> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                self.seen.extend(self.lines.try_iter());
                if !status.success() {
                    return Err(format!(
                        "a client failed ({status}); it printed:\n{}",
                        self.seen.join("\n")
                    ));
                }
                return Ok(self.seen);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return Err(format!("a client did not finish within {limit:?}"));
            }
            self.seen.extend(self.lines.try_iter());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn path(p: &Path) -> Result<&str> {
    p.to_str()
        .ok_or_else(|| format!("{} is not UTF-8", p.display()))
}

/// The `unix_us=` a client printed on the line starting with `prefix`.
fn started_at(lines: &[String], prefix: &str) -> Result<u64> {
    lines
        .iter()
        .filter(|l| l.starts_with(prefix))
        .find_map(|l| l.rsplit_once("unix_us=").and_then(|(_, t)| t.parse().ok()))
        .ok_or_else(|| {
            format!(
                "no \"{prefix}... from unix_us=\" line in:\n{}",
                lines.join("\n")
            )
        })
}

fn write_clicks(path: &Path) -> Result<()> {
    let mut samples = vec![0i16; MIC_SECONDS * RATE];
    for second in CLICKS_AT_S {
        let start = second * RATE;
        debug_assert_eq!(start % FRAME, 0, "each click starts a frame");
        for i in 0..CLICK_SAMPLES {
            let window =
                0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / CLICK_SAMPLES as f64).cos();
            let tone = (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / RATE as f64).sin();
            samples[start + i] = (0.8 * window * tone * 32767.0) as i16;
        }
    }
    let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut wav = Vec::with_capacity(44 + data.len());
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    for (value, bytes) in [
        (16u32, 4),
        (1, 2),
        (1, 2),
        (RATE as u32, 4),
        (RATE as u32 * 2, 4),
        (2, 2),
        (16, 2),
    ] {
        wav.extend_from_slice(&value.to_le_bytes()[..bytes]);
    }
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
    wav.extend_from_slice(&data);
    std::fs::write(path, wav).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// A 16-bit PCM WAV's samples, channels averaged.
fn read_wav_mono(path: &Path) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let bad = || format!("{} is not a 16-bit PCM WAV file", path.display());
    if bytes.get(0..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WAVE") {
        return Err(bad());
    }
    let mut at = 12;
    let mut channels = 0usize;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
        let body = &bytes[at + 8..(at + 8 + size).min(bytes.len())];
        if id == b"fmt " {
            channels = usize::from(u16::from_le_bytes([body[2], body[3]]));
            if u16::from_le_bytes([body[14], body[15]]) != 16 {
                return Err(bad());
            }
        } else if id == b"data" {
            if channels == 0 {
                return Err(bad());
            }
            return Ok(body
                .chunks_exact(2 * channels)
                .map(|frame| {
                    frame
                        .chunks_exact(2)
                        .map(|s| f32::from(i16::from_le_bytes([s[0], s[1]])) / 32768.0)
                        .sum::<f32>()
                        / channels as f32
                })
                .collect());
        }
        at += 8 + size + size % 2;
    }
    Err(bad())
}

fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}
