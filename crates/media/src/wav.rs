//! WAV (RIFF) audio, the one reader and writer of the workspace: [`wav_bytes`] writes the
//! canonical 44-byte-header mono s16le file (the exec generator contract's window WAV),
//! [`WavReader`] reads a WAV incrementally (the header may arrive split anywhere, as from an HTTP
//! body) and [`parse_wav`] reads a whole file. Samples come out as mono `i16` (channels mixed
//! down). Every [`WavError`] says which chunk and at which byte offset of the file it went wrong.

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

/// Why WAV bytes could not be read. Offsets are byte positions in the whole file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WavError {
    /// The first 12 bytes are not `RIFF....WAVE`.
    #[error("not a WAV file (no RIFF/WAVE header at offset 0)")]
    NotWav,
    /// A `fmt ` chunk shorter than 16 bytes, or longer than a header chunk may be.
    #[error("WAV fmt chunk at offset {offset} has {size} bytes")]
    FmtSize {
        /// Offset of the chunk header.
        offset: u64,
        /// Its declared size.
        size: u64,
    },
    /// The `data` chunk came before any `fmt ` chunk.
    #[error("WAV data chunk at offset {offset} comes before its fmt chunk")]
    DataBeforeFmt {
        /// Offset of the `data` chunk header.
        offset: u64,
    },
    /// A sample encoding this reader does not accept.
    #[error(
        "WAV format {tag:#06x} with {bits}-bit samples (fmt chunk at offset {offset}) is not \
         supported ({accepted})"
    )]
    Encoding {
        /// The format tag (the sub-format's for `WAVE_FORMAT_EXTENSIBLE`).
        tag: u16,
        /// Bits per sample.
        bits: u16,
        /// Offset of the `fmt ` chunk header.
        offset: u64,
        /// What is accepted.
        accepted: &'static str,
    },
    /// A channel count out of range.
    #[error("WAV with {channels} channels (fmt chunk at offset {offset})")]
    Channels {
        /// The declared channel count.
        channels: u16,
        /// Offset of the `fmt ` chunk header.
        offset: u64,
    },
    /// A sample rate out of range.
    #[error("WAV sample rate {rate} Hz (fmt chunk at offset {offset})")]
    SampleRate {
        /// The declared rate.
        rate: u32,
        /// Offset of the `fmt ` chunk header.
        offset: u64,
    },
    /// The file's chunks ended without a `data` chunk.
    #[error("no audio data in the WAV file ({len} bytes, no data chunk)")]
    NoData {
        /// How many bytes there were in all.
        len: u64,
    },
    /// The bytes ended inside the header (before the `data` chunk began).
    #[error("WAV header cut short: {len} bytes, the {wanted} at offset {offset} is incomplete")]
    Truncated {
        /// What was being read ("RIFF header", "chunk header", "fmt chunk").
        wanted: &'static str,
        /// Where it starts.
        offset: u64,
        /// How many bytes there were in all.
        len: u64,
    },
}

/// Which sample encodings a [`WavReader`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WavEncodings {
    /// 16-bit integer PCM only, 1 to 8 channels, 1 to 384 kHz (what a speech API streams).
    #[default]
    Pcm16,
    /// Integer PCM of 8, 16, 24 or 32 bits and 32-bit float, any non-zero channel count and
    /// rate (files a person hands over).
    Any,
}

/// The format of the audio, from its `fmt ` chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavFormat {
    /// Samples per second.
    pub sample_rate: u32,
    /// Interleaved channels.
    pub channels: u16,
    /// Format tag (1 PCM, 3 float), the sub-format's for `WAVE_FORMAT_EXTENSIBLE`.
    pub tag: u16,
    /// Bits per sample.
    pub bits: u16,
}

impl WavFormat {
    fn sample_bytes(&self) -> usize {
        usize::from(self.bits / 8)
    }

    fn frame_bytes(&self) -> usize {
        self.sample_bytes() * usize::from(self.channels)
    }
}

#[derive(Debug, Default)]
enum State {
    /// Waiting for `RIFF....WAVE`.
    #[default]
    Riff,
    /// Waiting for the next chunk header (or the body of `fmt `).
    Chunks,
    /// Skipping the rest of an unneeded chunk.
    Skip(u64),
    /// Samples; `Some(n)`: `n` bytes of data left, `None`: until the end of the input (a
    /// streamed WAV whose size field is 0 or `u32::MAX`).
    Data(Option<u64>),
    /// After the data chunk: the rest is ignored.
    Done,
}

/// Largest header chunk (`fmt ` and the like) kept in memory.
const MAX_HEADER_CHUNK: u64 = 4096;

/// Incremental WAV reader: feed it the bytes as they come ([`WavReader::push`]); samples come
/// out as soon as whole sample frames are there.
#[derive(Debug, Default)]
pub struct WavReader {
    encodings: WavEncodings,
    state: State,
    /// Header bytes not yet parsed.
    buf: Vec<u8>,
    /// File offset of `buf[0]` (or of the next byte when `buf` is empty).
    buf_offset: u64,
    /// Bytes pushed so far.
    pushed: u64,
    format: Option<WavFormat>,
    /// An incomplete sample frame.
    carry: Vec<u8>,
}

impl WavReader {
    /// A reader that accepts `encodings`.
    pub fn new(encodings: WavEncodings) -> Self {
        Self {
            encodings,
            ..Self::default()
        }
    }

    /// The audio's format, once its `fmt ` chunk was read.
    pub fn format(&self) -> Option<WavFormat> {
        self.format
    }

    /// Bytes of an incomplete last sample frame.
    pub fn leftover(&self) -> usize {
        self.carry.len()
    }

    /// True once the `data` chunk has begun.
    pub fn in_data(&self) -> bool {
        matches!(self.state, State::Data(_) | State::Done)
    }

    /// More bytes of the file; decoded mono samples are appended to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<i16>) -> Result<(), WavError> {
        let mut bytes = bytes;
        self.pushed += bytes.len() as u64;
        loop {
            match &mut self.state {
                State::Done => return Ok(()),
                State::Data(left) => {
                    let take = match left {
                        Some(n) => {
                            let take = (*n).min(bytes.len() as u64) as usize;
                            *n -= take as u64;
                            take
                        }
                        None => bytes.len(),
                    };
                    let done = *left == Some(0);
                    if let Some(format) = self.format {
                        decode_frames(&bytes[..take], &mut self.carry, format, out);
                    }
                    if done {
                        self.state = State::Done;
                    }
                    return Ok(());
                }
                State::Skip(n) => {
                    let take = (*n).min(bytes.len() as u64) as usize;
                    *n -= take as u64;
                    self.buf_offset += take as u64;
                    bytes = &bytes[take..];
                    if *n > 0 {
                        return Ok(());
                    }
                    self.state = State::Chunks;
                }
                State::Riff => {
                    if !self.fill(&mut bytes, 12) {
                        // Say "not a WAV" as soon as the first bytes show it.
                        let seen = &self.buf[..self.buf.len().min(4)];
                        if !b"RIFF".starts_with(seen) {
                            return Err(WavError::NotWav);
                        }
                        return Ok(());
                    }
                    if &self.buf[0..4] != b"RIFF" || &self.buf[8..12] != b"WAVE" {
                        return Err(WavError::NotWav);
                    }
                    self.consume_buf();
                    self.state = State::Chunks;
                }
                State::Chunks => {
                    if !self.fill(&mut bytes, 8) {
                        return Ok(());
                    }
                    let offset = self.buf_offset;
                    let id: [u8; 4] = [self.buf[0], self.buf[1], self.buf[2], self.buf[3]];
                    let size =
                        u32::from_le_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]);
                    match &id {
                        b"data" => {
                            if self.format.is_none() {
                                return Err(WavError::DataBeforeFmt { offset });
                            }
                            self.consume_buf();
                            self.state = State::Data(match size {
                                0 | u32::MAX => None,
                                n => Some(u64::from(n)),
                            });
                        }
                        b"fmt " => {
                            let size = u64::from(size);
                            if !(16..=MAX_HEADER_CHUNK).contains(&size) {
                                return Err(WavError::FmtSize { offset, size });
                            }
                            let total = 8 + size as usize + (size % 2) as usize;
                            if !self.fill(&mut bytes, total) {
                                return Ok(());
                            }
                            let format =
                                parse_fmt(&self.buf[8..8 + size as usize], offset, self.encodings)?;
                            self.format = Some(format);
                            self.consume_buf();
                        }
                        _ => {
                            self.consume_buf();
                            self.state = State::Skip(u64::from(size) + u64::from(size % 2));
                        }
                    }
                }
            }
        }
    }

    /// The input ended: an error if it ended inside the header.
    pub fn finish(&self) -> Result<(), WavError> {
        let wanted = match self.state {
            State::Data(_) | State::Done => return Ok(()),
            State::Chunks if self.buf.is_empty() => {
                return Err(WavError::NoData { len: self.pushed })
            }
            State::Riff => "RIFF header",
            State::Chunks if self.buf.len() >= 8 => "fmt chunk",
            State::Chunks | State::Skip(_) => "chunk header",
        };
        Err(WavError::Truncated {
            wanted,
            offset: self.buf_offset,
            len: self.pushed,
        })
    }

    /// Moves bytes into `buf` until it holds `n`; true when it does.
    fn fill(&mut self, bytes: &mut &[u8], n: usize) -> bool {
        if self.buf.len() < n {
            let take = (n - self.buf.len()).min(bytes.len());
            self.buf.extend_from_slice(&bytes[..take]);
            *bytes = &bytes[take..];
        }
        self.buf.len() >= n
    }

    /// The buffered header bytes are parsed: the next byte starts a new piece.
    fn consume_buf(&mut self) {
        self.buf_offset += self.buf.len() as u64;
        self.buf.clear();
    }
}

/// Reads a whole WAV file as mono 16-bit samples and its sample rate, accepting
/// [`WavEncodings::Any`]. A data chunk longer than the file is read up to the file's end.
pub fn parse_wav(data: &[u8]) -> Result<(Vec<i16>, u32), WavError> {
    let mut reader = WavReader::new(WavEncodings::Any);
    let mut out = Vec::new();
    reader.push(data, &mut out)?;
    reader.finish()?;
    let rate = reader.format.map_or(0, |f| f.sample_rate);
    Ok((out, rate))
}

/// The format of a `fmt ` chunk body (the chunk header is at `offset`).
fn parse_fmt(fmt: &[u8], offset: u64, encodings: WavEncodings) -> Result<WavFormat, WavError> {
    let u16_at = |i: usize| u16::from_le_bytes([fmt[i], fmt[i + 1]]);
    let mut tag = u16_at(0);
    // 0xFFFE (extensible) carries the real format in its sub-format GUID's first word.
    if tag == 0xFFFE && fmt.len() >= 26 {
        tag = u16_at(24);
    }
    let channels = u16_at(2);
    let rate = u32::from_le_bytes([fmt[4], fmt[5], fmt[6], fmt[7]]);
    let bits = u16_at(14);
    let (ok, accepted, channel_limit, rates) = match encodings {
        WavEncodings::Pcm16 => (
            tag == 1 && bits == 16,
            "16-bit PCM only",
            8,
            1_000..=384_000,
        ),
        WavEncodings::Any => (
            matches!((tag, bits), (1, 8 | 16 | 24 | 32) | (3, 32)),
            "PCM of 8, 16, 24 or 32 bits, or 32-bit float; use 16-bit PCM",
            u16::MAX,
            1..=u32::MAX,
        ),
    };
    if !ok {
        return Err(WavError::Encoding {
            tag,
            bits,
            offset,
            accepted,
        });
    }
    if channels == 0 || channels > channel_limit {
        return Err(WavError::Channels { channels, offset });
    }
    if !rates.contains(&rate) {
        return Err(WavError::SampleRate { rate, offset });
    }
    Ok(WavFormat {
        sample_rate: rate,
        channels,
        tag,
        bits,
    })
}

/// Decodes whole sample frames from `carry` + `bytes`, mixed to mono; an incomplete frame at the
/// end stays in `carry`.
fn decode_frames(bytes: &[u8], carry: &mut Vec<u8>, format: WavFormat, out: &mut Vec<i16>) {
    let frame = format.frame_bytes().max(1);
    let mut bytes = bytes;
    if !carry.is_empty() {
        let take = (frame - carry.len()).min(bytes.len());
        carry.extend_from_slice(&bytes[..take]);
        bytes = &bytes[take..];
        if carry.len() < frame {
            return;
        }
        out.push(mix(carry, format));
        carry.clear();
    }
    let mut frames = bytes.chunks_exact(frame);
    for f in &mut frames {
        out.push(mix(f, format));
    }
    carry.extend_from_slice(frames.remainder());
}

/// One interleaved sample frame, averaged to mono. 16-bit PCM is mixed exactly in integers;
/// other encodings through floats.
fn mix(frame: &[u8], format: WavFormat) -> i16 {
    let width = format.sample_bytes().max(1);
    if format.tag == 1 && format.bits == 16 {
        let mut sum = 0i32;
        let mut n = 0i32;
        for s in frame.chunks_exact(2) {
            sum += i32::from(i16::from_le_bytes([s[0], s[1]]));
            n += 1;
        }
        return (sum / n.max(1)) as i16;
    }
    let mut sum = 0.0f32;
    let mut n = 0.0f32;
    for s in frame.chunks_exact(width) {
        sum += match (format.tag, format.bits, s) {
            (1, 8, [a]) => (f32::from(*a) - 128.0) / 128.0,
            (1, 24, [a, b, c]) => (i32::from_le_bytes([0, *a, *b, *c]) >> 8) as f32 / 8_388_608.0,
            (1, 32, [a, b, c, d]) => i32::from_le_bytes([*a, *b, *c, *d]) as f32 / 2_147_483_648.0,
            (3, 32, [a, b, c, d]) => f32::from_le_bytes([*a, *b, *c, *d]),
            _ => 0.0,
        };
        n += 1.0;
    }
    let v = (sum / n.max(1.0)).clamp(-1.0, 1.0);
    (v * 32767.0).round() as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RIFF + a LIST chunk + fmt (16-bit PCM) + the data chunk header.
    fn header(rate: u32, channels: u16, data_len: u32) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend_from_slice(b"RIFF");
        h.extend_from_slice(&u32::MAX.to_le_bytes());
        h.extend_from_slice(b"WAVE");
        h.extend_from_slice(b"LIST");
        h.extend_from_slice(&3u32.to_le_bytes());
        h.extend_from_slice(b"abc\0");
        h.extend_from_slice(b"fmt ");
        h.extend_from_slice(&16u32.to_le_bytes());
        h.extend_from_slice(&1u16.to_le_bytes());
        h.extend_from_slice(&channels.to_le_bytes());
        h.extend_from_slice(&rate.to_le_bytes());
        h.extend_from_slice(&(rate * 2 * u32::from(channels)).to_le_bytes());
        h.extend_from_slice(&(2 * channels).to_le_bytes());
        h.extend_from_slice(&16u16.to_le_bytes());
        h.extend_from_slice(b"data");
        h.extend_from_slice(&data_len.to_le_bytes());
        h
    }

    #[test]
    fn round_trip_and_errors() {
        let pcm: Vec<i16> = (0..500).map(|i| (i * 60 - 15_000) as i16).collect();
        let bytes = wav_bytes(&pcm, 16_000);
        assert_eq!(bytes.len(), 44 + 1000);
        assert_eq!(parse_wav(&bytes).unwrap(), (pcm, 16_000));
        assert_eq!(parse_wav(b"nope").unwrap_err(), WavError::NotWav);
        assert_eq!(
            parse_wav(b"RIF").unwrap_err(),
            WavError::Truncated {
                wanted: "RIFF header",
                offset: 0,
                len: 3
            }
        );
        assert_eq!(
            parse_wav(&bytes[..40]).unwrap_err(),
            WavError::Truncated {
                wanted: "chunk header",
                offset: 36,
                len: 40
            }
        );
        assert_eq!(
            parse_wav(&bytes[..36]).unwrap_err(),
            WavError::NoData { len: 36 }
        );
    }

    #[test]
    fn stereo_is_mixed_down() {
        // A 2-channel 16-bit WAV: left = 1000, right = 3000 → mono 2000.
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

    #[test]
    fn parses_byte_by_byte() {
        let samples: Vec<i16> = (0..100).map(|i| i * 37 - 1800).collect();
        let mut bytes = header(22_050, 1, u32::MAX);
        bytes.extend(samples.iter().flat_map(|s| s.to_le_bytes()));
        let mut p = WavReader::new(WavEncodings::Pcm16);
        let mut out = Vec::new();
        for b in &bytes {
            p.push(std::slice::from_ref(b), &mut out).unwrap();
        }
        assert_eq!(out, samples);
        assert_eq!(p.format().map(|f| f.sample_rate), Some(22_050));
        assert_eq!(p.leftover(), 0);
    }

    #[test]
    fn stereo_with_sized_data_and_trailer() {
        let mut bytes = header(16_000, 2, 8);
        for (l, r) in [(100i16, 300i16), (-50, -150)] {
            bytes.extend(l.to_le_bytes());
            bytes.extend(r.to_le_bytes());
        }
        bytes.extend(b"LIST\x04\0\0\0junk");
        let mut p = WavReader::new(WavEncodings::Pcm16);
        let mut out = Vec::new();
        p.push(&bytes, &mut out).unwrap();
        assert_eq!(out, vec![200, -100]);
    }

    #[test]
    fn errors_name_the_chunk_offset() {
        let mut bytes = header(16_000, 1, 0);
        bytes[32] = 3; // format tag of fmt (after RIFF 12 + LIST 12 + fmt header 8)
        let err = WavReader::new(WavEncodings::Pcm16)
            .push(&bytes, &mut Vec::new())
            .unwrap_err();
        assert!(
            matches!(
                err,
                WavError::Encoding {
                    tag: 3,
                    bits: 16,
                    offset: 24,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("offset 24"), "{err}");
        assert_eq!(
            WavReader::default()
                .push(b"{\"error\": \"x\"}", &mut Vec::new())
                .unwrap_err(),
            WavError::NotWav
        );
        // data before fmt, found after RIFF (12) + LIST (12).
        let mut v = header(16_000, 1, 0);
        v.drain(24..48);
        assert_eq!(
            parse_wav(&v).unwrap_err(),
            WavError::DataBeforeFmt { offset: 24 }
        );
        let mut v = header(16_000, 1, 0);
        v[34..36].copy_from_slice(&0u16.to_le_bytes());
        assert_eq!(
            parse_wav(&v).unwrap_err(),
            WavError::Channels {
                channels: 0,
                offset: 24
            }
        );
    }

    #[test]
    fn other_encodings_in_any_mode() {
        // 8-bit unsigned mono: 128 is silence, 255 near full scale.
        let mut v = wav_bytes(&[], 8000);
        v[34] = 8; // bits
        v[32] = 1; // block align
        v[40..44].copy_from_slice(&2u32.to_le_bytes());
        v.extend([128u8, 255]);
        let (pcm, rate) = parse_wav(&v).unwrap();
        assert_eq!(rate, 8000);
        assert_eq!(pcm[0], 0);
        assert!(pcm[1] > 32_000);
        assert!(WavReader::new(WavEncodings::Pcm16)
            .push(&v, &mut Vec::new())
            .is_err());
    }
}
