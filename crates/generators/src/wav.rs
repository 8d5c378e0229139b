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

/// Reads a 16-bit PCM WAV file: (mono samples, sample rate). Several channels are averaged.
pub fn parse_wav_s16(data: &[u8]) -> Result<(Vec<i16>, u32), String> {
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
            fmt = Some((
                u16at(body),
                u16at(body + 2),
                u32at(body + 4),
                u16at(body + 14),
            ));
        } else if id == b"data" {
            let (format, channels, rate, bits) = fmt.ok_or("data chunk before the fmt chunk")?;
            if format != 1 || bits != 16 {
                return Err(format!(
                    "unsupported WAV encoding (format {format}, {bits} bits); expected 16-bit PCM"
                ));
            }
            if channels == 0 || rate == 0 {
                return Err("zero channels or sample rate".into());
            }
            let frame = 2 * usize::from(channels);
            let pcm = data[body..end]
                .chunks_exact(frame)
                .map(|f| {
                    let sum: i32 = f
                        .chunks_exact(2)
                        .map(|s| i32::from(i16::from_le_bytes([s[0], s[1]])))
                        .sum();
                    (sum / i32::from(channels)) as i16
                })
                .collect();
            return Ok((pcm, rate));
        }
        pos = body.saturating_add(size + (size & 1));
    }
    Err("no data chunk".into())
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
}
