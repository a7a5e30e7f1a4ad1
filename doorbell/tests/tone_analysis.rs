//! The tone the service serves at /twilio/tones/9.wav, analysed as a DTMF receiver would: the two
//! frequencies of 9 at the configured level, nothing else above −30 dB relative to them, the
//! configured burst length, gaps of silence and number of repeats, in PCM and in μ-law.

mod common;

use common::{Backend, start_with};
use doorbell::config::{ToneEncoding, ToneSettings};
use doorbell::tone::{Dtmf, Wav, goertzel_level};

/// Levels measured with a Hann window, whose coherent gain is one half; its sidelobes fall fast,
/// so the −30 dB floor measures the signal, not the analysis.
fn level(samples: &[f64], frequency: f64) -> f64 {
    let n = samples.len() as f64;
    let windowed: Vec<f64> = samples
        .iter()
        .enumerate()
        .map(|(i, s)| s * (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / (n - 1.0)).cos()))
        .collect();
    goertzel_level(&windowed, 8000, frequency) / 0.5
}

fn db(ratio: f64) -> f64 {
    20.0 * ratio.log10()
}

async fn fetch(settings: ToneSettings) -> Wav {
    let doorbell = start_with(Backend::Sqlite, move |s| s.tone = settings).await;
    let response = reqwest::get(format!("{}/twilio/tones/9.wav", doorbell.service.url()))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    Wav::parse(&response.bytes().await.unwrap()).unwrap()
}

async fn check(settings: ToneSettings, level_tolerance_db: f64) {
    let wav = fetch(settings).await;
    assert_eq!(wav.sample_rate, 8000);
    assert_eq!(wav.channels, 1);
    match settings.encoding {
        ToneEncoding::Pcm => assert_eq!((wav.format_tag, wav.bits_per_sample), (1, 16)),
        ToneEncoding::Mulaw => assert_eq!((wav.format_tag, wav.bits_per_sample), (7, 8)),
    }
    let per_ms = 8usize;
    let burst = settings.duration_ms as usize * per_ms;
    let gap = settings.gap_ms as usize * per_ms;
    let repeats = settings.repeats as usize;
    assert_eq!(
        wav.samples.len(),
        repeats * burst + (repeats - 1) * gap,
        "total duration"
    );
    assert_eq!(
        wav.duration_ms(),
        f64::from(
            settings.repeats * settings.duration_ms + (settings.repeats - 1) * settings.gap_ms
        )
    );

    let nine = Dtmf::of('9').unwrap();
    let expected = 10f64.powf(settings.level_dbfs / 20.0);
    for k in 0..repeats {
        let start = k * (burst + gap);
        // The steady part of the burst, past the 5 ms ramps.
        let steady = &wav.samples[start + 10 * per_ms..start + burst - 10 * per_ms];
        let low = level(steady, nine.low_hz);
        let high = level(steady, nine.high_hz);
        for (name, measured) in [("852 Hz", low), ("1477 Hz", high)] {
            let error = db(measured) - settings.level_dbfs;
            assert!(
                error.abs() < level_tolerance_db,
                "burst {k}: {name} at {:.2} dBFS, configured {:.2}",
                db(measured),
                settings.level_dbfs
            );
        }
        let reference = low.min(high);
        let mut frequency = 100.0;
        while frequency < 3900.0 {
            let near_a_tone =
                (frequency - nine.low_hz).abs() < 60.0 || (frequency - nine.high_hz).abs() < 60.0;
            if !near_a_tone {
                let other = level(steady, frequency);
                assert!(
                    db(other / reference) < -30.0,
                    "burst {k}: {frequency} Hz at {:.1} dB relative",
                    db(other / reference)
                );
            }
            frequency += 10.0;
        }
        for other in Dtmf::all_frequencies().filter(|&f| f != nine.low_hz && f != nine.high_hz) {
            assert!(
                db(level(steady, other) / reference) < -30.0,
                "DTMF {other} Hz present"
            );
        }
        // The burst starts and ends where it should: sound right inside, silence right outside.
        let whole = &wav.samples[start..start + burst];
        let rms = |s: &[f64]| (s.iter().map(|x| x * x).sum::<f64>() / s.len() as f64).sqrt();
        assert!(
            rms(&whole[..10 * per_ms]) > expected / 2.0,
            "burst {k} starts on time"
        );
        assert!(
            rms(&whole[burst - 10 * per_ms..]) > expected / 2.0,
            "burst {k} lasts its length"
        );
        if k + 1 < repeats {
            let silence = &wav.samples[start + burst..start + burst + gap];
            assert!(
                silence.iter().all(|&s| s == 0.0),
                "the gap after burst {k} is silent"
            );
        }
    }
    // No tone is truncated near full scale: the peak is the sum of both sines.
    let peak = wav.samples.iter().fold(0.0f64, |m, s| m.max(s.abs()));
    assert!(
        peak <= 2.0 * expected * 1.02 && peak > 2.0 * expected * 0.9,
        "peak {peak}"
    );
}

#[tokio::test]
async fn the_default_tone_is_two_400_ms_bursts_200_ms_apart() {
    check(ToneSettings::default(), 0.3).await;
}

#[tokio::test]
async fn the_mulaw_tone_keeps_the_levels() {
    let settings = ToneSettings {
        encoding: ToneEncoding::Mulaw,
        ..ToneSettings::default()
    };
    check(settings, 0.5).await;
}

#[tokio::test]
async fn duration_gap_repeats_and_level_follow_the_config() {
    let settings = ToneSettings {
        duration_ms: 250,
        gap_ms: 100,
        repeats: 3,
        level_dbfs: -16.0,
        ..ToneSettings::default()
    };
    check(settings, 0.3).await;
    check(
        ToneSettings {
            encoding: ToneEncoding::Mulaw,
            ..settings
        },
        0.5,
    )
    .await;
}
