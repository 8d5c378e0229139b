//! The WAV files of the exec contract: [`wav_bytes`] writes mono 16-bit PCM (the format the
//! seed's `RollingWav` hands to InfiniteTalk), [`parse_wav_s16`] reads 16-bit PCM back (mixing
//! channels down), for the test generator and for generators written in Rust.

/// A canonical 44-byte-header WAV file of mono s16le samples at `sample_rate`.
pub fn wav_bytes(pcm: &[i16], sample_rate: u32) -> Vec<u8> {
    let data_len = u32::try_from(pcm.len() * 2).unwrap_or(u32::MAX - 36);
    let mut v = Vec::with_capacity(44 + pcm.len() * 2);
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + data_len).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes()); // PCM
    v.extend_from_slice(&1u16.to_le_bytes()); // mono
    v.extend_from_slice(&sample_rate.to_le_bytes());
    v.extend_from_slice(&sample_rate.saturating_mul(2).to_le_bytes());
    v.extend_from_slice(&2u16.to_le_bytes());
    v.extend_from_slice(&16u16.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&data_len.to_le_bytes());
    for s in pcm {
        v.extend_from_slice(&s.to_le_bytes());
    }
    v
}

/// Reads WAV bytes as mono 16-bit samples and their sample rate. Accepts PCM 8/16/24/32-bit and
/// 32-bit float, any number of channels (mixed down).
pub fn parse_wav(data: &[u8]) -> Result<(Vec<i16>, u32), String> {
    if data.len() < 12 || &data[0..4] != b"RIFF" || &data[8..12] != b"WAVE" {
        return Err("not a WAV file (no RIFF/WAVE header)".into());
    }
    let u16at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]);
    let u32at = |o: usize| u32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]);
    let mut pos = 12;
    let mut fmt: Option<(u16, u16, u32, u16)> = None;
    while pos + 8 <= data.len() {
        let id = &data[pos..pos + 4];
        let size = u32at(pos + 4) as usize;
        let body = pos + 8;
        let end = body.saturating_add(size).min(data.len());
        if id == b"fmt " {
            if end - body < 16 {
                return Err("fmt chunk too short".into());
            }
            let mut format = u16at(body);
            if format == 0xFFFE && end - body >= 26 {
                format = u16at(body + 24); // WAVE_FORMAT_EXTENSIBLE: the sub-format's first word
            }
            fmt = Some((format, u16at(body + 2), u32at(body + 4), u16at(body + 14)));
        } else if id == b"data" {
            let (format, channels, rate, bits) = fmt.ok_or("data chunk before the fmt chunk")?;
            if channels == 0 || rate == 0 {
                return Err("zero channels or sample rate".into());
            }
            let bytes = usize::from(bits / 8);
            let frame = bytes * usize::from(channels);
            if frame == 0 {
                return Err(format!("unsupported sample size of {bits} bits"));
            }
            let sample = |o: usize| -> Result<f32, String> {
                Ok(match (format, bits) {
                    (1, 8) => (f32::from(data[o]) - 128.0) / 128.0,
                    (1, 16) => f32::from(i16::from_le_bytes([data[o], data[o + 1]])) / 32768.0,
                    (1, 24) => {
                        (i32::from_le_bytes([0, data[o], data[o + 1], data[o + 2]]) >> 8) as f32
                            / 8_388_608.0
                    }
                    (1, 32) => u32at(o) as i32 as f32 / 2_147_483_648.0,
                    (3, 32) => f32::from_bits(u32at(o)),
                    _ => {
                        return Err(format!(
                        "unsupported WAV encoding (format {format}, {bits} bits); use 16-bit PCM"
                    ))
                    }
                })
            };
            let mut out = Vec::with_capacity((end - body) / frame);
            let mut o = body;
            while o + frame <= end {
                let mut sum = 0.0f32;
                for c in 0..usize::from(channels) {
                    sum += sample(o + c * bytes)?;
                }
                let v = (sum / f32::from(channels)).clamp(-1.0, 1.0);
                out.push((v * 32767.0).round() as i16);
                o += frame;
            }
            return Ok((out, rate));
        }
        pos = body.saturating_add(size + (size & 1));
    }
    Err("no audio data in the file".into())
}

/// The same as [`parse_wav`] (kept for callers that expect 16-bit input).
pub fn parse_wav_s16(data: &[u8]) -> Result<(Vec<i16>, u32), String> {
    parse_wav(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let pcm: Vec<i16> = (0..500).map(|i| (i * 60 - 15_000) as i16).collect();
        let bytes = wav_bytes(&pcm, 16_000);
        assert_eq!(bytes.len(), 44 + 1000);
        assert_eq!(parse_wav_s16(&bytes).unwrap(), (pcm, 16_000));
        assert!(parse_wav_s16(b"nope").is_err());
        assert!(parse_wav_s16(&bytes[..40]).is_err());
    }

    #[test]
    fn stereo_is_mixed_down() {
        // Build a 2-channel 16-bit WAV by hand: left = 1000, right = 3000 → mono 2000.
        let mut v = wav_bytes(&[0; 4], 8000);
        v[22] = 2; // channels
        v[32] = 4; // block align
        let frames: Vec<i16> = vec![1000, 3000, 1000, 3000];
        for (i, s) in frames.iter().enumerate() {
            v[44 + i * 2..46 + i * 2].copy_from_slice(&s.to_le_bytes());
        }
        let (mono, _) = parse_wav(&v).unwrap();
        assert_eq!(mono.len(), 2);
        assert!((i32::from(mono[0]) - 2000).abs() <= 1, "{mono:?}");
    }
}
