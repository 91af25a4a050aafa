//! Opus as every Roomscale client speaks it (DESIGN.md "Voice"): 48 kHz mono,
//! 20 ms frames, in-band FEC and DTX on, about 32 kbit/s VBR. The decoder
//! conceals a lost frame (PLC) or rebuilds it from the FEC data the next
//! packet carries.

use std::fmt;

/// Samples per second of every voice signal in the app.
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples in one 20 ms mono frame: the unit the encoder, the jitter buffer
/// and the mixer all work in.
pub const FRAME_SAMPLES: usize = 960;
/// The largest packet the encoder writes. Opus allows 1275 bytes per frame;
/// at 32 kbit/s a 20 ms packet is about 80 bytes.
pub const MAX_PACKET: usize = 1275;
/// The longest packet the decoder accepts: Opus packets last at most 120 ms.
pub const MAX_PACKET_SAMPLES: usize = 5760;

/// A codec call that failed: which one, and libopus' reason.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("cannot create the Opus {what}: {source}")]
    Create {
        what: &'static str,
        source: opus::Error,
    },
    #[error("cannot configure the Opus encoder ({setting}): {source}")]
    Configure {
        setting: &'static str,
        source: opus::Error,
    },
    #[error("an Opus frame must hold {FRAME_SAMPLES} mono samples (20 ms at 48 kHz), not {0}")]
    FrameSize(usize),
    #[error("an empty RTP payload is not an Opus packet (the frame is concealed instead)")]
    EmptyPacket,
    #[error("Opus encoding failed: {0}")]
    Encode(opus::Error),
    #[error(
        "Opus decoding failed: {0} (a malformed or non-Opus payload; the frame is concealed instead)"
    )]
    Decode(opus::Error),
}

/// Whether `packet` is Opus's "silence follows" packet under DTX: a TOC byte
/// (and at most one more) with no audio.
pub fn is_dtx(packet: &[u8]) -> bool {
    packet.len() <= 2
}

/// Encoder settings; [`EncoderConfig::default`] is what DESIGN.md asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderConfig {
    /// Target bit rate in bits per second (VBR, so an average).
    pub bitrate: i32,
    /// The packet loss the encoder expects, in percent: it spends that much
    /// more on in-band FEC so a lost packet can be rebuilt from the next one.
    pub expected_loss_percent: u8,
    /// In-band forward error correction.
    pub fec: bool,
    /// Discontinuous transmission: during silence the encoder sends nothing
    /// but a comfort-noise update every 400 ms.
    pub dtx: bool,
    /// 0 (fastest) to 10 (best).
    pub complexity: u8,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        EncoderConfig {
            bitrate: 32_000,
            expected_loss_percent: 10,
            fec: true,
            dtx: true,
            complexity: 9,
        }
    }
}

/// 48 kHz mono voice encoder, one 20 ms frame at a time.
pub struct Encoder {
    inner: opus::Encoder,
    config: EncoderConfig,
    packet: [u8; MAX_PACKET],
    in_dtx: bool,
}

impl fmt::Debug for Encoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encoder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Encoder {
    pub fn new(config: EncoderConfig) -> Result<Encoder, CodecError> {
        let mut inner =
            opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip)
                .map_err(|source| CodecError::Create {
                    what: "encoder",
                    source,
                })?;
        let configure = |setting, result: opus::Result<()>| {
            result.map_err(|source| CodecError::Configure { setting, source })
        };
        configure(
            "bitrate",
            inner.set_bitrate(opus::Bitrate::Bits(config.bitrate)),
        )?;
        configure("vbr", inner.set_vbr(true))?;
        configure("in-band FEC", inner.set_inband_fec(config.fec))?;
        configure(
            "expected packet loss",
            inner.set_packet_loss_perc(i32::from(config.expected_loss_percent.min(100))),
        )?;
        configure("dtx", inner.set_dtx(config.dtx))?;
        configure(
            "complexity",
            inner.set_complexity(i32::from(config.complexity.min(10))),
        )?;
        configure("signal", inner.set_signal(opus::Signal::Voice))?;
        Ok(Encoder {
            inner,
            config,
            packet: [0; MAX_PACKET],
            in_dtx: false,
        })
    }

    pub fn config(&self) -> EncoderConfig {
        self.config
    }

    /// Encodes one 20 ms frame ([`FRAME_SAMPLES`] samples in [-1, 1]).
    ///
    /// Returns the packet to send, or `None` while DTX says there is nothing
    /// to send. In silence libopus writes packets of at most two bytes that
    /// carry no audio ([`is_dtx`]); as in WebRTC senders (the browser's too),
    /// the first goes out, to tell the receiver that silence follows, and the
    /// rest do not. The RTP timestamp still advances by [`FRAME_SAMPLES`] for
    /// every frame, sent or not.
    pub fn encode(&mut self, frame: &[f32]) -> Result<Option<&[u8]>, CodecError> {
        if frame.len() != FRAME_SAMPLES {
            return Err(CodecError::FrameSize(frame.len()));
        }
        let len = self
            .inner
            .encode_float(frame, &mut self.packet)
            .map_err(CodecError::Encode)?;
        if len <= 2 && self.config.dtx {
            // Like WebRTC's own Opus wrapper: the first DTX packet goes out so
            // the receiver knows the pause is silence, not loss; the rest not.
            if self.in_dtx {
                return Ok(None);
            }
            self.in_dtx = true;
        } else {
            self.in_dtx = false;
        }
        Ok(Some(&self.packet[..len]))
    }

    /// Tells the encoder how much loss the path shows now (for example from
    /// RTCP receiver reports), so it spends as much on FEC as the path needs.
    pub fn set_expected_loss(&mut self, percent: u8) -> Result<(), CodecError> {
        self.config.expected_loss_percent = percent.min(100);
        self.inner
            .set_packet_loss_perc(i32::from(self.config.expected_loss_percent))
            .map_err(|source| CodecError::Configure {
                setting: "expected packet loss",
                source,
            })
    }
}

/// 48 kHz mono voice decoder with loss concealment and FEC recovery.
pub struct Decoder {
    inner: opus::Decoder,
}

impl fmt::Debug for Decoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decoder").finish_non_exhaustive()
    }
}

impl Decoder {
    pub fn new() -> Result<Decoder, CodecError> {
        let inner = opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono).map_err(|source| {
            CodecError::Create {
                what: "decoder",
                source,
            }
        })?;
        Ok(Decoder { inner })
    }

    /// Decodes a packet into `out` and returns how many samples it held
    /// (960 for a 20 ms packet). `out` must have room for the packet's
    /// duration; [`MAX_PACKET_SAMPLES`] always does.
    pub fn decode(&mut self, packet: &[u8], out: &mut [f32]) -> Result<usize, CodecError> {
        if packet.is_empty() {
            // An empty slice means "lost" to libopus: loss goes through
            // `conceal` or `recover`, so an empty payload here is bad input.
            return Err(CodecError::EmptyPacket);
        }
        self.inner
            .decode_float(packet, out, false)
            .map_err(CodecError::Decode)
    }

    /// Samples `packet` decodes to, without decoding it; an error for a
    /// payload that is not Opus.
    pub fn packet_samples(packet: &[u8]) -> Result<usize, CodecError> {
        opus::packet::get_nb_samples(packet, SAMPLE_RATE).map_err(CodecError::Decode)
    }

    /// Packet loss concealment: fills `out` (one frame of
    /// [`FRAME_SAMPLES`]) with a continuation of what came before, fading to
    /// silence over repeated losses.
    pub fn conceal(&mut self, out: &mut [f32]) -> Result<(), CodecError> {
        if out.len() != FRAME_SAMPLES {
            return Err(CodecError::FrameSize(out.len()));
        }
        self.inner
            .decode_float(&[], out, false)
            .map_err(CodecError::Decode)?;
        Ok(())
    }

    /// Rebuilds the lost frame just before `next` from the FEC data `next`
    /// carries, into `out` (one frame). `next` itself must still be decoded
    /// normally afterwards. Where `next` holds no FEC data libopus conceals
    /// the frame instead, so this is never worse than [`Decoder::conceal`].
    pub fn recover(&mut self, next: &[u8], out: &mut [f32]) -> Result<(), CodecError> {
        if out.len() != FRAME_SAMPLES {
            return Err(CodecError::FrameSize(out.len()));
        }
        if next.is_empty() {
            return self.conceal(out);
        }
        self.inner
            .decode_float(next, out, true)
            .map_err(CodecError::Decode)?;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Speech-like sound: a glottal pulse train whose pitch glides (120 to
    /// 180 Hz) through two formants that change every 200 ms, in 4 Hz
    /// syllables. It has to vary: Opus' voice detector treats a steady tone
    /// as background noise and then stops sending FEC.
    pub(crate) fn speech_like(frames: usize) -> Vec<f32> {
        let rate = SAMPLE_RATE as f32;
        let vowels = [
            (700.0f32, 1200.0f32),
            (300.0, 2300.0),
            (500.0, 900.0),
            (400.0, 1900.0),
        ];
        let mut out = Vec::with_capacity(frames * FRAME_SAMPLES);
        let mut phase = 0.0f32;
        let mut resonators = [(0.0f32, 0.0f32); 2];
        for n in 0..frames * FRAME_SAMPLES {
            let t = n as f32 / rate;
            let pitch = 150.0 + 30.0 * (std::f32::consts::TAU * 0.7 * t).sin();
            phase += pitch / rate;
            let pulse = if phase.fract() < pitch / rate {
                1.0
            } else {
                0.0
            };
            let (f1, f2) = vowels[(t / 0.2) as usize % vowels.len()];
            let mut y = 0.0;
            for ((state, velocity), (freq, weight)) in
                resonators.iter_mut().zip([(f1, 1.0f32), (f2, 0.5)])
            {
                let w = std::f32::consts::TAU * freq / rate;
                *velocity += w * (pulse - *state * w) - 0.03 * *velocity;
                *state += *velocity;
                y += weight * *state;
            }
            let syllable = (std::f32::consts::TAU * 4.0 * t).sin().abs();
            out.push(y * (0.2 + 0.8 * syllable));
        }
        let peak = out.iter().fold(0.0f32, |m, s| m.max(s.abs()));
        out.iter_mut().for_each(|s| *s *= 0.5 / peak);
        out
    }

    fn snr_db(reference: &[f32], decoded: &[f32]) -> f64 {
        let signal: f64 = reference.iter().map(|s| f64::from(*s).powi(2)).sum();
        let noise: f64 = reference
            .iter()
            .zip(decoded)
            .map(|(a, b)| f64::from(a - b).powi(2))
            .sum();
        10.0 * (signal / noise.max(1e-20)).log10()
    }

    /// Opus delays its output by its lookahead (6.5 ms at 48 kHz in VoIP mode
    /// plus the decoder's); find the lag that lines decoded up with the input.
    fn best_lag(reference: &[f32], decoded: &[f32]) -> usize {
        (0..960)
            .max_by(|a, b| {
                let corr = |lag: usize| -> f64 {
                    reference
                        .iter()
                        .zip(&decoded[lag..])
                        .map(|(x, y)| f64::from(*x) * f64::from(*y))
                        .sum()
                };
                corr(*a).total_cmp(&corr(*b))
            })
            .unwrap()
    }

    #[test]
    fn the_default_encoder_is_what_design_md_asks_for() {
        let config = EncoderConfig::default();
        assert_eq!(
            (
                config.bitrate,
                config.fec,
                config.dtx,
                config.expected_loss_percent
            ),
            (32_000, true, true, 10)
        );
        let mut encoder = Encoder::new(config).unwrap();
        assert!(encoder.inner.get_inband_fec().unwrap());
        assert!(encoder.inner.get_dtx().unwrap());
        assert!(encoder.inner.get_vbr().unwrap());
        assert_eq!(encoder.inner.get_packet_loss_perc().unwrap(), 10);
        assert_eq!(
            encoder.inner.get_bitrate().unwrap(),
            opus::Bitrate::Bits(32_000)
        );
    }

    #[test]
    fn voice_round_trips_at_about_32_kbit_s() {
        let input = speech_like(100);
        let mut encoder = Encoder::new(EncoderConfig::default()).unwrap();
        let mut decoder = Decoder::new().unwrap();
        let mut output = Vec::new();
        let mut bytes = 0;
        let mut out = [0.0f32; MAX_PACKET_SAMPLES];
        for frame in input.chunks(FRAME_SAMPLES) {
            let packet = encoder.encode(frame).unwrap().expect("voice is never DTX");
            bytes += packet.len();
            let n = decoder.decode(packet, &mut out).unwrap();
            assert_eq!(n, FRAME_SAMPLES);
            output.extend_from_slice(&out[..n]);
        }
        let kbits = bytes as f64 * 8.0 / 2.0 / 1000.0;
        assert!((20.0..=45.0).contains(&kbits), "{kbits} kbit/s");
        // Skip the first 200 ms while the codec settles.
        let lag = best_lag(&input[9600..19200], &output[9600..]);
        let snr = snr_db(&input[9600..90_000], &output[9600 + lag..90_000 + lag]);
        // A perceptual codec keeps how speech sounds, not its waveform, so a
        // waveform SNR of a few dB is a good result (a broken path gives 0 or less).
        assert!(snr > 5.0, "decoded voice SNR {snr:.1} dB at lag {lag}");
    }

    #[test]
    fn silence_is_not_sent_under_dtx() {
        let mut encoder = Encoder::new(EncoderConfig::default()).unwrap();
        let silence = [0.0f32; FRAME_SAMPLES];
        let sent = (0..100)
            .filter(|_| encoder.encode(&silence).unwrap().is_some())
            .count();
        // Some frames go out while DTX engages, then one refresh every 400 ms.
        assert!(sent < 30, "{sent} of 100 silent frames sent");
        let mut no_dtx = Encoder::new(EncoderConfig {
            dtx: false,
            ..EncoderConfig::default()
        })
        .unwrap();
        assert!((0..100).all(|_| no_dtx.encode(&silence).unwrap().is_some()));
    }

    #[test]
    fn a_lost_frame_is_rebuilt_better_from_fec_than_by_concealment() {
        let input = speech_like(60);
        let mut encoder = Encoder::new(EncoderConfig::default()).unwrap();
        let packets: Vec<Vec<u8>> = input
            .chunks(FRAME_SAMPLES)
            .map(|frame| encoder.encode(frame).unwrap().unwrap().to_vec())
            .collect();
        let mut out = [0.0f32; MAX_PACKET_SAMPLES];
        let (mut fec_total, mut plc_total) = (0.0, 0.0);
        let lost_frames = 5..55;
        for lost in lost_frames.clone() {
            // Three decoders with one history: the packet arrives, is
            // rebuilt from the next one's FEC, or is concealed.
            let mut decoders: Vec<Decoder> = (0..3).map(|_| Decoder::new().unwrap()).collect();
            for packet in &packets[..lost] {
                for decoder in &mut decoders {
                    decoder.decode(packet, &mut out).unwrap();
                }
            }
            let mut clean = [0.0f32; MAX_PACKET_SAMPLES];
            decoders[0].decode(&packets[lost], &mut clean).unwrap();
            let mut fec = [0.0f32; FRAME_SAMPLES];
            decoders[1].recover(&packets[lost + 1], &mut fec).unwrap();
            let mut plc = [0.0f32; FRAME_SAMPLES];
            decoders[2].conceal(&mut plc).unwrap();
            fec_total += snr_db(&clean[..FRAME_SAMPLES], &fec);
            plc_total += snr_db(&clean[..FRAME_SAMPLES], &plc);
        }
        let count = lost_frames.len() as f64;
        let (fec, plc) = (fec_total / count, plc_total / count);
        assert!(
            fec > plc + 6.0,
            "mean SNR of a lost frame: FEC {fec:.1} dB, PLC {plc:.1} dB"
        );
    }

    #[test]
    fn concealment_continues_the_signal_instead_of_going_silent() {
        let input = speech_like(20);
        let mut encoder = Encoder::new(EncoderConfig::default()).unwrap();
        let mut decoder = Decoder::new().unwrap();
        let mut out = [0.0f32; MAX_PACKET_SAMPLES];
        for frame in input.chunks(FRAME_SAMPLES) {
            let packet = encoder.encode(frame).unwrap().unwrap();
            decoder.decode(packet, &mut out).unwrap();
        }
        let mut concealed = [0.0f32; FRAME_SAMPLES];
        decoder.conceal(&mut concealed).unwrap();
        let rms = (concealed.iter().map(|s| s * s).sum::<f32>() / FRAME_SAMPLES as f32).sqrt();
        assert!(rms > 0.01, "concealed frame RMS {rms}");
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let mut encoder = Encoder::new(EncoderConfig::default()).unwrap();
        assert!(matches!(
            encoder.encode(&[0.0; 480]),
            Err(CodecError::FrameSize(480))
        ));
        let mut decoder = Decoder::new().unwrap();
        let mut out = [0.0f32; MAX_PACKET_SAMPLES];
        assert!(decoder.decode(&[], &mut out).is_err());
        // A TOC byte announcing a code-3 packet with no frame count byte.
        assert!(decoder.decode(&[0xff], &mut out).is_err());
        assert!(Decoder::packet_samples(&[0xff]).is_err());
        let message = decoder.decode(&[0xff], &mut out).unwrap_err().to_string();
        assert!(message.contains("concealed"), "{message}");
        assert!(decoder.conceal(&mut out[..100]).is_err());
    }
}
