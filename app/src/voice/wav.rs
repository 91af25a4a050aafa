//! WAV files in place of a microphone and speakers (DESIGN.md "Voice"), so
//! bots and tests run on machines without sound cards: a reader for PCM
//! (8, 16, 24, 32-bit) and float (32, 64-bit) files of any channel count and
//! rate, brought to the 48 kHz mono the voice pipeline speaks, and a 16-bit
//! PCM writer. Plain file I/O; real-time pacing is the device layer's
//! ([`super::devices`]).

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::codec::SAMPLE_RATE;

/// A WAV file that cannot be read or written, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not a WAV file I can read: {reason}; convert it with \
         `sox IN -r 48000 -c 1 -b 16 OUT.wav`"
    )]
    Format { path: PathBuf, reason: String },
}

/// The samples of a WAV file, as f32 in [-1, 1], interleaved.
#[derive(Debug, Clone, PartialEq)]
pub struct Wav {
    pub sample_rate: u32,
    pub channels: u16,
    pub samples: Vec<f32>,
}

impl Wav {
    /// Reads a WAV file.
    pub fn read(path: &Path) -> Result<Wav, WavError> {
        let bytes = std::fs::read(path).map_err(|source| WavError::Read {
            path: path.to_owned(),
            source,
        })?;
        Wav::parse(&bytes).map_err(|reason| WavError::Format {
            path: path.to_owned(),
            reason,
        })
    }

    /// Reads a WAV file as 48 kHz mono: channels averaged, other rates
    /// resampled. What `--mic-wav` plays into the pipeline.
    pub fn read_voice(path: &Path) -> Result<Vec<f32>, WavError> {
        let wav = Wav::read(path)?;
        Ok(resample(&wav.mono(), wav.sample_rate, SAMPLE_RATE))
    }

    /// Parses the bytes of a WAV file; the error says what is wrong.
    pub fn parse(bytes: &[u8]) -> Result<Wav, String> {
        if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
            return Err("no RIFF/WAVE header".into());
        }
        let mut format: Option<(u16, u16, u32, u16)> = None;
        let mut at = 12;
        while at + 8 <= bytes.len() {
            let id = &bytes[at..at + 4];
            let size =
                u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
            let body = &bytes[at + 8..(at + 8).saturating_add(size).min(bytes.len())];
            match id {
                b"fmt " => {
                    if body.len() < 16 {
                        return Err("fmt chunk too short".into());
                    }
                    let u16_at = |i: usize| u16::from_le_bytes([body[i], body[i + 1]]);
                    let mut code = u16_at(0);
                    if code == 0xfffe {
                        // WAVE_FORMAT_EXTENSIBLE: the real code opens the subformat GUID.
                        if body.len() < 26 {
                            return Err("extensible fmt chunk too short".into());
                        }
                        code = u16_at(24);
                    }
                    let rate = u32::from_le_bytes(body[4..8].try_into().expect("4 bytes"));
                    format = Some((code, u16_at(2), rate, u16_at(14)));
                }
                b"data" => {
                    let (code, channels, rate, bits) =
                        format.ok_or("the data chunk comes before the fmt chunk")?;
                    if channels == 0 || rate == 0 {
                        return Err(format!("{channels} channels at {rate} Hz"));
                    }
                    let samples = decode(code, bits, body)?;
                    return Ok(Wav {
                        sample_rate: rate,
                        channels,
                        samples,
                    });
                }
                _ => {}
            }
            // Chunks are padded to an even size.
            at = at + 8 + size + (size & 1);
        }
        Err("no data chunk".into())
    }

    /// The channels averaged into one.
    pub fn mono(&self) -> Vec<f32> {
        let channels = usize::from(self.channels);
        if channels == 1 {
            return self.samples.clone();
        }
        self.samples
            .chunks_exact(channels)
            .map(|frame| frame.iter().sum::<f32>() / channels as f32)
            .collect()
    }

    /// Writes the samples as 16-bit PCM.
    pub fn write(&self, path: &Path) -> Result<(), WavError> {
        let mut writer = WavWriter::create(path, self.sample_rate, self.channels)?;
        writer.write(&self.samples)?;
        writer.finish()
    }
}

fn decode(code: u16, bits: u16, data: &[u8]) -> Result<Vec<f32>, String> {
    Ok(match (code, bits) {
        (1, 8) => data
            .iter()
            .map(|b| (f32::from(*b) - 128.0) / 128.0)
            .collect(),
        (1, 16) => data
            .chunks_exact(2)
            .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
            .collect(),
        (1, 24) => data
            .chunks_exact(3)
            .map(|b| (i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8) as f32 / 8_388_608.0)
            .collect(),
        (1, 32) => data
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2_147_483_648.0)
            .collect(),
        (3, 32) => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        (3, 64) => data
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
            .collect(),
        (1 | 3, _) => return Err(format!("{bits}-bit samples are not supported")),
        _ => {
            return Err(format!(
                "format code {code} is compressed (only PCM and float are supported)"
            ));
        }
    })
}

/// Resamples mono `input` from `from` Hz to `to` Hz with a windowed-sinc
/// (Blackman, 16 zero crossings each side) low-pass at the lower Nyquist.
pub fn resample(input: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || input.is_empty() {
        return input.to_vec();
    }
    const ZEROS: f64 = 16.0;
    let ratio = f64::from(to) / f64::from(from);
    // Below 1 when downsampling: the filter narrows to the new Nyquist.
    let cutoff = ratio.min(1.0) * 0.97;
    let reach = ZEROS / cutoff;
    let len = (input.len() as f64 * ratio).round() as usize;
    (0..len)
        .map(|n| {
            let centre = n as f64 / ratio;
            let first = (centre - reach).ceil().max(0.0) as usize;
            let last = ((centre + reach).floor() as usize).min(input.len() - 1);
            let mut sum = 0.0;
            for (k, sample) in input.iter().enumerate().take(last + 1).skip(first) {
                let x = k as f64 - centre;
                let sinc = if x.abs() < 1e-9 {
                    1.0
                } else {
                    let arg = std::f64::consts::PI * x * cutoff;
                    arg.sin() / arg
                };
                let phase = std::f64::consts::PI * x / reach;
                let blackman = 0.42 + 0.5 * phase.cos() + 0.08 * (2.0 * phase).cos();
                sum += f64::from(*sample) * sinc * cutoff * blackman;
            }
            sum as f32
        })
        .collect()
}

/// Writes a 16-bit PCM WAV file as samples come; the header always says how
/// much has been written, so a killed process still leaves a readable file.
#[derive(Debug)]
pub struct WavWriter {
    path: PathBuf,
    file: BufWriter<File>,
    channels: u16,
    data_bytes: u32,
}

impl WavWriter {
    pub fn create(path: &Path, sample_rate: u32, channels: u16) -> Result<WavWriter, WavError> {
        let failed = |source| WavError::Write {
            path: path.to_owned(),
            source,
        };
        let file = File::create(path).map_err(failed)?;
        let mut writer = WavWriter {
            path: path.to_owned(),
            file: BufWriter::new(file),
            channels,
            data_bytes: 0,
        };
        let block = channels * 2;
        let mut header = Vec::with_capacity(44);
        header.extend_from_slice(b"RIFF");
        header.extend_from_slice(&36u32.to_le_bytes());
        header.extend_from_slice(b"WAVEfmt ");
        header.extend_from_slice(&16u32.to_le_bytes());
        header.extend_from_slice(&1u16.to_le_bytes());
        header.extend_from_slice(&channels.to_le_bytes());
        header.extend_from_slice(&sample_rate.to_le_bytes());
        header.extend_from_slice(&(sample_rate * u32::from(block)).to_le_bytes());
        header.extend_from_slice(&block.to_le_bytes());
        header.extend_from_slice(&16u16.to_le_bytes());
        header.extend_from_slice(b"data");
        header.extend_from_slice(&0u32.to_le_bytes());
        writer.file.write_all(&header).map_err(failed)?;
        Ok(writer)
    }

    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Appends interleaved samples (clipped to [-1, 1]) and updates the header.
    pub fn write(&mut self, samples: &[f32]) -> Result<(), WavError> {
        let mut bytes = Vec::with_capacity(samples.len() * 2);
        for sample in samples {
            let value = (sample.clamp(-1.0, 1.0) * 32767.0).round() as i16;
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        self.data_bytes = self.data_bytes.saturating_add(bytes.len() as u32);
        let data_bytes = self.data_bytes;
        let result = (|| {
            self.file.write_all(&bytes)?;
            self.file.seek(SeekFrom::Start(4))?;
            self.file.write_all(&(36 + data_bytes).to_le_bytes())?;
            self.file.seek(SeekFrom::Start(40))?;
            self.file.write_all(&data_bytes.to_le_bytes())?;
            self.file.seek(SeekFrom::End(0))?;
            self.file.flush()
        })();
        result.map_err(|source| WavError::Write {
            path: self.path.clone(),
            source,
        })
    }

    pub fn finish(mut self) -> Result<(), WavError> {
        self.file.flush().map_err(|source| WavError::Write {
            path: self.path.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(code: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        out.extend_from_slice(b"WAVE");
        // An unknown chunk first, with an odd size: it must be skipped with its pad byte.
        out.extend_from_slice(b"LIST");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&[1, 2, 3, 0]);
        out.extend_from_slice(b"fmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&code.to_le_bytes());
        out.extend_from_slice(&channels.to_le_bytes());
        out.extend_from_slice(&rate.to_le_bytes());
        let block = channels * bits / 8;
        out.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
        out.extend_from_slice(&block.to_le_bytes());
        out.extend_from_slice(&bits.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        out
    }

    fn check(bytes: &[u8], expected: Result<(u32, u16, &[f32]), &str>) {
        match (Wav::parse(bytes), expected) {
            (Ok(wav), Ok((rate, channels, samples))) => {
                assert_eq!((wav.sample_rate, wav.channels), (rate, channels));
                assert_eq!(wav.samples.len(), samples.len());
                for (got, want) in wav.samples.iter().zip(samples) {
                    assert!((got - want).abs() < 1e-4, "{got} vs {want}");
                }
            }
            (Err(reason), Err(expected)) => {
                assert!(
                    reason.contains(expected),
                    "{reason:?} should say {expected:?}"
                )
            }
            (got, want) => panic!("got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn sample_formats() {
        let pcm16: Vec<u8> = [0i16, 16384, -32768, 32767]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        check(
            &header(1, 2, 48000, 16, &pcm16),
            Ok((48000, 2, &[0.0, 0.5, -1.0, 1.0])),
        );
        check(
            &header(1, 1, 8000, 8, &[128, 192, 0]),
            Ok((8000, 1, &[0.0, 0.5, -1.0])),
        );
        check(
            &header(1, 1, 44100, 24, &[0, 0, 0x40, 0, 0, 0x80]),
            Ok((44100, 1, &[0.5, -1.0])),
        );
        let i32s: Vec<u8> = [1i32 << 30].iter().flat_map(|s| s.to_le_bytes()).collect();
        check(&header(1, 1, 48000, 32, &i32s), Ok((48000, 1, &[0.5])));
        let f32s: Vec<u8> = [0.25f32, -0.75]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        check(
            &header(3, 1, 48000, 32, &f32s),
            Ok((48000, 1, &[0.25, -0.75])),
        );
        let f64s: Vec<u8> = [0.125f64].iter().flat_map(|s| s.to_le_bytes()).collect();
        check(&header(3, 1, 48000, 64, &f64s), Ok((48000, 1, &[0.125])));
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        check(b"not a wav file", Err("no RIFF/WAVE header"));
        check(&header(2, 1, 48000, 4, &[0; 8]), Err("compressed"));
        check(&header(1, 1, 48000, 12, &[0; 8]), Err("12-bit"));
        check(&header(1, 0, 48000, 16, &[0; 8]), Err("0 channels"));
        let mut no_data = header(1, 1, 48000, 16, &[]);
        no_data.truncate(no_data.len() - 8);
        check(&no_data, Err("no data chunk"));
        let error = Wav::read(Path::new("/nonexistent/mic.wav"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("/nonexistent/mic.wav"), "{error}");
        let dir = tempdir();
        let path = dir.join("bad.wav");
        std::fs::write(&path, b"RIFF....WAVEjunk").unwrap();
        let error = Wav::read(&path).unwrap_err().to_string();
        assert!(
            error.contains("sox"),
            "the error says how to convert: {error}"
        );
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "roomscale-wav-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn written_files_read_back_and_are_valid_while_being_written() {
        let dir = tempdir();
        let path = dir.join("out.wav");
        let samples: Vec<f32> = (0..960).map(|n| (n as f32 / 960.0) - 0.5).collect();
        let mut writer = WavWriter::create(&path, 48000, 2).unwrap();
        writer.write(&samples).unwrap();
        // Readable before finish, as after a kill.
        let halfway = Wav::read(&path).unwrap();
        assert_eq!(halfway.samples.len(), 960);
        writer.write(&samples).unwrap();
        writer.finish().unwrap();
        let wav = Wav::read(&path).unwrap();
        assert_eq!(
            (wav.sample_rate, wav.channels, wav.samples.len()),
            (48000, 2, 1920)
        );
        for (got, want) in wav.samples.iter().zip(samples.iter().chain(&samples)) {
            assert!((got - want).abs() < 1.0 / 32000.0);
        }
        assert_eq!(wav.mono().len(), 960);
        assert!(WavWriter::create(Path::new("/nonexistent/dir/x.wav"), 48000, 1).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn other_rates_are_resampled_to_48_khz_mono() {
        // A 1 kHz stereo tone at 44.1 kHz (left and right equal).
        let tone = |rate: u32, seconds: f32| -> Vec<f32> {
            (0..(rate as f32 * seconds) as usize)
                .map(|n| 0.5 * (std::f32::consts::TAU * 1000.0 * n as f32 / rate as f32).sin())
                .collect()
        };
        for rate in [8000u32, 16000, 44100, 96000] {
            let mono = tone(rate, 0.5);
            let out = resample(&mono, rate, 48000);
            assert_eq!(out.len(), 24000, "{rate} Hz");
            let expected = tone(48000, 0.5);
            // Away from the edges the resampled tone matches the ideal one.
            let error = out[2000..22000]
                .iter()
                .zip(&expected[2000..22000])
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(error < 0.01, "{rate} Hz: error {error}");
        }
        let dir = tempdir();
        let path = dir.join("stereo44.wav");
        let mono = tone(44100, 0.2);
        let stereo: Vec<f32> = mono.iter().flat_map(|s| [*s, *s]).collect();
        Wav {
            sample_rate: 44100,
            channels: 2,
            samples: stereo,
        }
        .write(&path)
        .unwrap();
        let voice = Wav::read_voice(&path).unwrap();
        assert_eq!(voice.len(), 9600);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
