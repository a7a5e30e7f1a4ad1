//! DTMF tones as WAV files, and the analysis that hears them again.
//!
//! A DTMF key is the sum of two sines, one from the low group (697–941 Hz) and one from the high
//! group (1209–1633 Hz): `9` is 852 Hz + 1477 Hz. The file is what a telephone line carries: 8 kHz
//! mono, 16-bit PCM or 8-bit G.711 μ-law. Each burst is shaped by a short raised-cosine ramp so its
//! edges do not click (a click is broadband noise a DTMF receiver may take as a second key).
//!
//! The simulator uses [`Wav::parse`] and [`detect_keys`] to hear the door open, and the tests use
//! [`goertzel_level`] to check frequencies and levels.

use std::f64::consts::PI;

use crate::config::{ToneEncoding, ToneSettings};

/// The sample rate of the telephone network.
pub const SAMPLE_RATE: u32 = 8000;

/// The length of each edge ramp.
const RAMP_MS: u32 = 5;

const LOW_GROUP: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
const HIGH_GROUP: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYPAD: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// The two frequencies of a key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dtmf {
    pub low_hz: f64,
    pub high_hz: f64,
}

impl Dtmf {
    pub fn of(key: char) -> Option<Self> {
        let key = key.to_ascii_uppercase();
        KEYPAD.iter().enumerate().find_map(|(row, keys)| {
            keys.iter().position(|&k| k == key).map(|column| Self {
                low_hz: LOW_GROUP[row],
                high_hz: HIGH_GROUP[column],
            })
        })
    }

    /// Every DTMF frequency: what a receiver listens for.
    pub fn all_frequencies() -> impl Iterator<Item = f64> {
        LOW_GROUP.into_iter().chain(HIGH_GROUP)
    }
}

/// The samples (−1.0..1.0) of `settings.repeats` bursts of `key` with gaps between them.
pub fn synthesize(key: char, settings: &ToneSettings) -> Option<Vec<f64>> {
    let dtmf = Dtmf::of(key)?;
    let amplitude = 10f64.powf(settings.level_dbfs / 20.0);
    let burst = samples_for_ms(settings.duration_ms);
    let gap = samples_for_ms(settings.gap_ms);
    let ramp = samples_for_ms(RAMP_MS).min(burst / 2);
    let mut samples = Vec::with_capacity((burst + gap) * settings.repeats as usize);
    for repeat in 0..settings.repeats {
        if repeat > 0 {
            samples.extend(std::iter::repeat_n(0.0, gap));
        }
        samples.extend((0..burst).map(|n| {
            let t = n as f64 / f64::from(SAMPLE_RATE);
            let envelope = ramp_gain(n, burst, ramp);
            let wave = (2.0 * PI * dtmf.low_hz * t).sin() + (2.0 * PI * dtmf.high_hz * t).sin();
            amplitude * envelope * wave
        }));
    }
    Some(samples)
}

fn samples_for_ms(ms: u32) -> usize {
    (u64::from(ms) * u64::from(SAMPLE_RATE) / 1000) as usize
}

/// A raised-cosine fade over the first and last `ramp` samples of a burst of `length`.
fn ramp_gain(n: usize, length: usize, ramp: usize) -> f64 {
    let from_edge = n.min(length - 1 - n);
    if from_edge >= ramp {
        1.0
    } else {
        0.5 - 0.5 * (PI * from_edge as f64 / ramp as f64).cos()
    }
}

/// The WAV file of `key` as configured.
pub fn wav(key: char, settings: &ToneSettings) -> Option<Vec<u8>> {
    synthesize(key, settings).map(|samples| encode_wav(&samples, settings.encoding))
}

/// A RIFF/WAVE file of mono samples at [`SAMPLE_RATE`].
pub fn encode_wav(samples: &[f64], encoding: ToneEncoding) -> Vec<u8> {
    let (format_tag, bits, data): (u16, u16, Vec<u8>) = match encoding {
        ToneEncoding::Pcm => (
            1,
            16,
            samples
                .iter()
                .flat_map(|&s| to_pcm16(s).to_le_bytes())
                .collect(),
        ),
        ToneEncoding::Mulaw => (
            7,
            8,
            samples.iter().map(|&s| mulaw_encode(to_pcm16(s))).collect(),
        ),
    };
    let block_align = bits / 8;
    // Formats other than PCM carry a `cbSize` field and a `fact` chunk (the sample count).
    let is_pcm = format_tag == 1;
    let fmt_size: u32 = if is_pcm { 16 } else { 18 };
    let fact_size: u32 = if is_pcm { 0 } else { 12 };
    let data_len = u32::try_from(data.len()).expect("a tone is far below 4 GiB");
    let mut out = Vec::with_capacity(data.len() + 58);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(4 + 8 + fmt_size + fact_size + 8 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&fmt_size.to_le_bytes());
    out.extend_from_slice(&format_tag.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&SAMPLE_RATE.to_le_bytes());
    out.extend_from_slice(&(SAMPLE_RATE * u32::from(block_align)).to_le_bytes());
    out.extend_from_slice(&block_align.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    if !is_pcm {
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(b"fact");
        out.extend_from_slice(&4u32.to_le_bytes());
        out.extend_from_slice(&(samples.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    out.extend_from_slice(&data);
    out
}

fn to_pcm16(sample: f64) -> i16 {
    (sample.clamp(-1.0, 1.0) * f64::from(i16::MAX)).round() as i16
}

/// G.711 μ-law: 14-bit magnitude companded into a sign, a 3-bit segment and a 4-bit mantissa,
/// all bits inverted.
pub fn mulaw_encode(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let sign = if sample < 0 { 0x80 } else { 0 };
    let magnitude = (i32::from(sample).abs().min(CLIP)) + BIAS;
    let exponent = (7 - (magnitude << 17).leading_zeros().min(7)) as i32;
    let mantissa = (magnitude >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) as u8 | mantissa as u8)
}

pub fn mulaw_decode(byte: u8) -> i16 {
    let byte = !byte;
    let exponent = i32::from((byte >> 4) & 0x07);
    let mantissa = i32::from(byte & 0x0F);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    let value = if byte & 0x80 != 0 {
        -magnitude
    } else {
        magnitude
    };
    value as i16
}

/// A decoded WAV file.
#[derive(Debug, Clone, PartialEq)]
pub struct Wav {
    pub sample_rate: u32,
    pub channels: u16,
    /// 1 for PCM, 7 for μ-law.
    pub format_tag: u16,
    pub bits_per_sample: u16,
    /// The first channel, −1.0..1.0.
    pub samples: Vec<f64>,
}

impl Wav {
    /// Reads 16-bit PCM and 8-bit μ-law files.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
            return Err("not a RIFF/WAVE file".into());
        }
        let mut format = None;
        let mut position = 12;
        while position + 8 <= bytes.len() {
            let id = &bytes[position..position + 4];
            let size =
                u32::from_le_bytes(bytes[position + 4..position + 8].try_into().unwrap()) as usize;
            let body = bytes
                .get(position + 8..position + 8 + size)
                .ok_or("a chunk runs past the end of the file")?;
            match id {
                b"fmt " if size >= 16 => {
                    let u16_at = |i: usize| u16::from_le_bytes([body[i], body[i + 1]]);
                    let sample_rate = u32::from_le_bytes(body[4..8].try_into().unwrap());
                    format = Some((u16_at(0), u16_at(2), sample_rate, u16_at(14)));
                }
                b"data" => {
                    let (format_tag, channels, sample_rate, bits) =
                        format.ok_or("data chunk before the fmt chunk")?;
                    let frame = usize::from(channels) * usize::from(bits / 8);
                    if frame == 0 {
                        return Err("zero channels or sample size".into());
                    }
                    let samples = match (format_tag, bits) {
                        (1, 16) => body
                            .chunks_exact(frame)
                            .map(|f| f64::from(i16::from_le_bytes([f[0], f[1]])) / 32768.0)
                            .collect(),
                        (7, 8) => body
                            .chunks_exact(frame)
                            .map(|f| f64::from(mulaw_decode(f[0])) / 32768.0)
                            .collect(),
                        _ => return Err(format!("unsupported format {format_tag}/{bits} bits")),
                    };
                    return Ok(Self {
                        sample_rate,
                        channels,
                        format_tag,
                        bits_per_sample: bits,
                        samples,
                    });
                }
                _ => {}
            }
            // Chunks are padded to an even size.
            position += 8 + size + (size & 1);
        }
        Err("no data chunk".into())
    }

    pub fn duration_ms(&self) -> f64 {
        self.samples.len() as f64 * 1000.0 / f64::from(self.sample_rate)
    }
}

/// The amplitude of the `frequency` component of `samples` (a sine of amplitude `a` gives `a`),
/// by the Goertzel algorithm: one DFT bin, computed by a second-order recurrence.
pub fn goertzel_level(samples: &[f64], sample_rate: u32, frequency: f64) -> f64 {
    let n = samples.len() as f64;
    if samples.is_empty() {
        return 0.0;
    }
    let omega = 2.0 * PI * frequency / f64::from(sample_rate);
    let coefficient = 2.0 * omega.cos();
    let (mut previous, mut before) = (0.0, 0.0);
    for &sample in samples {
        let current = sample + coefficient * previous - before;
        before = previous;
        previous = current;
    }
    let power = previous * previous + before * before - coefficient * previous * before;
    2.0 * power.max(0.0).sqrt() / n
}

/// The keys heard in `samples`, one per burst, as a DTMF receiver would: in 20 ms blocks, a key is
/// one low and one high frequency each well above every other DTMF frequency.
pub fn detect_keys(samples: &[f64], sample_rate: u32) -> String {
    let block = (sample_rate / 50) as usize;
    let mut keys = String::new();
    if block == 0 {
        return keys;
    }
    let mut current = None;
    for chunk in samples.chunks_exact(block) {
        let heard = key_in_block(chunk, sample_rate);
        if heard != current {
            if let Some(key) = heard {
                keys.push(key);
            }
            current = heard;
        }
    }
    keys
}

fn key_in_block(block: &[f64], sample_rate: u32) -> Option<char> {
    let strongest = |group: &[f64; 4]| {
        let mut levels: Vec<(usize, f64)> = group
            .iter()
            .map(|&f| goertzel_level(block, sample_rate, f))
            .enumerate()
            .collect();
        levels.sort_by(|a, b| b.1.total_cmp(&a.1));
        (levels[0], levels[1].1)
    };
    let ((row, low), low_runner_up) = strongest(&LOW_GROUP);
    let ((column, high), high_runner_up) = strongest(&HIGH_GROUP);
    // −40 dBFS is the quietest a tone counts; the runner-up must be 10 dB below the winner.
    let audible = low > 0.01 && high > 0.01;
    let distinct = low_runner_up * 3.16 < low && high_runner_up * 3.16 < high;
    (audible && distinct).then(|| KEYPAD[row][column])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keypad_frequencies() {
        assert_eq!(
            Dtmf::of('9'),
            Some(Dtmf {
                low_hz: 852.0,
                high_hz: 1477.0
            })
        );
        assert_eq!(Dtmf::of('x'), None);
    }

    #[test]
    fn mulaw_round_trips_within_its_step() {
        for sample in (i16::MIN..=i16::MAX).step_by(97) {
            let back = mulaw_decode(mulaw_encode(sample));
            let step = (i32::from(sample).abs() / 8).max(16);
            assert!(
                (i32::from(back) - i32::from(sample)).abs() <= step,
                "{sample} came back as {back}"
            );
        }
        // Reference points of G.711.
        assert_eq!(mulaw_encode(0), 0xFF);
        assert_eq!(mulaw_encode(-1), 0x7F);
        assert_eq!(mulaw_decode(0x80), 32124);
    }

    #[test]
    fn goertzel_measures_a_known_sine() {
        let samples: Vec<f64> = (0..8000)
            .map(|n| 0.5 * (2.0 * PI * 1000.0 * n as f64 / 8000.0).sin())
            .collect();
        assert!((goertzel_level(&samples, 8000, 1000.0) - 0.5).abs() < 1e-3);
        assert!(goertzel_level(&samples, 8000, 1477.0) < 1e-3);
    }

    #[test]
    fn hears_every_key_it_makes() {
        let settings = ToneSettings::default();
        for key in "0123456789*#ABCD".chars() {
            let samples = synthesize(key, &settings).unwrap();
            assert_eq!(
                detect_keys(&samples, SAMPLE_RATE),
                key.to_string().repeat(2)
            );
        }
    }
}
