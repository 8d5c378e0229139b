//! Audio: [`AacEncoder`], a wrapper around syom's push encoder that turns mono 16-bit PCM into raw
//! AAC-LC access units of 1024 samples and compensates the encoder's 1024-sample priming so that
//! access unit `k` (placed at media time `k * 1024`) decodes to stream samples
//! `[k * 1024, (k + 1) * 1024)`.

use syom::{EncodeOptions, Encoder};

use crate::MediaError;

/// Samples per AAC-LC access unit.
pub const SAMPLES_PER_AU: usize = 1024;

/// Sample rates an AAC AudioSpecificConfig can signal with a table index.
pub const AAC_SAMPLE_RATES: [u32; 12] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
];

/// Mono AAC-LC encoder producing raw access units (no ADTS) with priming compensation.
///
/// The encoder delays its output by one access unit (1024 samples of priming). To keep decoded
/// audio aligned with video, the first 1024 samples pushed are not fed to the encoder: the encoder
/// runs 1024 samples ahead of the stream, so access unit `k` decodes to stream samples
/// `[k * 1024, (k + 1) * 1024)`. The stream's first 1024 samples are therefore never heard (the
/// decoder plays its priming output there instead). An access unit is complete once the stream
/// is two access units further along, so output lags input by up to ~2048 samples;
/// [`AacEncoder::flush`] pads with silence to emit the rest.
pub struct AacEncoder {
    encoder: Encoder,
    sample_rate: u32,
    /// Stream samples still to drop for priming compensation.
    skip: usize,
    /// Stream samples pushed (including skipped ones).
    pushed: u64,
    /// Access units emitted.
    emitted: u64,
    flushed: bool,
    scratch: Vec<f32>,
}

impl std::fmt::Debug for AacEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AacEncoder")
            .field("sample_rate", &self.sample_rate)
            .field("pushed", &self.pushed)
            .field("emitted", &self.emitted)
            .field("flushed", &self.flushed)
            .finish_non_exhaustive()
    }
}

impl AacEncoder {
    /// A mono AAC-LC encoder at `sample_rate` (one of [`AAC_SAMPLE_RATES`]) targeting
    /// `bitrate_kbps`.
    pub fn new(sample_rate: u32, bitrate_kbps: u32) -> Result<Self, MediaError> {
        if !AAC_SAMPLE_RATES.contains(&sample_rate) {
            return Err(MediaError::InvalidConfig {
                field: "sample_rate",
                value: sample_rate.to_string(),
                reason: format!("must be an AAC table rate, one of {AAC_SAMPLE_RATES:?}"),
            });
        }
        let Some(bps) = bitrate_kbps.checked_mul(1000).filter(|b| *b > 0) else {
            return Err(MediaError::InvalidConfig {
                field: "audio_bitrate_kbps",
                value: bitrate_kbps.to_string(),
                reason: "must be greater than 0".into(),
            });
        };
        let opts = EncodeOptions::raw().with_bitrate_bps(bps);
        let encoder =
            Encoder::new(sample_rate, 1, &opts).map_err(|e| MediaError::AudioEncoder {
                message: format!(
                    "cannot create encoder ({sample_rate} Hz, {bitrate_kbps} kbps): {e}"
                ),
            })?;
        Ok(Self {
            encoder,
            sample_rate,
            skip: SAMPLES_PER_AU,
            pushed: 0,
            emitted: 0,
            flushed: false,
            scratch: Vec::new(),
        })
    }

    /// Pushes mono PCM and returns the access units completed by it (raw AAC, no ADTS), in order.
    pub fn push(&mut self, pcm: &[i16]) -> Result<Vec<Vec<u8>>, MediaError> {
        if self.flushed {
            return Err(MediaError::Finished {
                what: "AAC encoder",
            });
        }
        self.pushed += pcm.len() as u64;
        let drop = self.skip.min(pcm.len());
        self.skip -= drop;
        let rest = &pcm[drop..];
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        scratch.extend(rest.iter().map(|&s| f32::from(s) / 32768.0));
        let out = self.feed(&scratch);
        self.scratch = scratch;
        out
    }

    /// Ends the stream: pads with silence so that every stream sample pushed so far is covered by
    /// an access unit, and returns those last access units. Further pushes are an error.
    pub fn flush(&mut self) -> Result<Vec<Vec<u8>>, MediaError> {
        if self.flushed {
            return Ok(Vec::new());
        }
        let au = SAMPLES_PER_AU as u64;
        // Access units needed to cover `pushed` stream samples, and encoder input they require.
        let needed = self.pushed.div_ceil(au);
        let fed = self.pushed.saturating_sub(au);
        let zeros = (needed * au).saturating_sub(fed);
        let silence = vec![0.0f32; zeros as usize];
        let out = self.feed(&silence);
        self.flushed = true;
        out
    }

    fn feed(&mut self, samples: &[f32]) -> Result<Vec<Vec<u8>>, MediaError> {
        let mut aus = Vec::new();
        if samples.is_empty() {
            return Ok(aus);
        }
        self.encoder
            .feed(&[samples], |frame| {
                aus.push(frame.payload.to_vec());
                Ok(())
            })
            .map_err(|e| MediaError::AudioEncoder {
                message: format!("encode failed after {} access units: {e}", self.emitted),
            })?;
        self.emitted += aus.len() as u64;
        Ok(aus)
    }

    /// The AudioSpecificConfig (2 bytes for AAC-LC) for the `esds` box.
    pub fn asc(&self) -> &[u8] {
        self.encoder.asc()
    }

    /// Sample rate in Hz.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Access units emitted so far.
    pub fn access_units_emitted(&self) -> u64 {
        self.emitted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_config() {
        assert!(AacEncoder::new(47_000, 64).is_err());
        assert!(AacEncoder::new(48_000, 0).is_err());
    }

    #[test]
    fn asc_is_lc_mono() {
        let enc = AacEncoder::new(48_000, 64).unwrap();
        assert_eq!(enc.asc(), &[0x11, 0x88]);
        let enc = AacEncoder::new(16_000, 32).unwrap();
        assert_eq!(enc.asc(), &[0x14, 0x08]);
    }

    #[test]
    fn access_units_lag_two_and_flush_covers_everything() {
        let mut enc = AacEncoder::new(48_000, 64).unwrap();
        // 1920 samples per 25 fps frame.
        let pcm: Vec<i16> = (0..1920)
            .map(|i| ((i as f32 * 0.05).sin() * 8000.0) as i16)
            .collect();
        let mut total = 0u64;
        let mut pushed = 0u64;
        for _ in 0..10 {
            let aus = enc.push(&pcm).unwrap();
            pushed += pcm.len() as u64;
            total += aus.len() as u64;
            assert!(aus.iter().all(|a| !a.is_empty()));
            // AU k is out once stream sample (k + 2) * 1024 has been pushed.
            assert_eq!(total, (pushed / 1024).saturating_sub(1));
        }
        let rest = enc.flush().unwrap();
        total += rest.len() as u64;
        assert_eq!(total, pushed.div_ceil(1024));
        assert!(enc.push(&pcm).is_err());
        assert!(enc.flush().unwrap().is_empty());
    }
}
