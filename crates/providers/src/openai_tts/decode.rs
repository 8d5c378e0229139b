//! Audio decoding of an answer body (raw s16le PCM or WAV, the rate from the Content-Type) and
//! the word timings estimated from the text.

use talkstream_media::wav::{WavError, WavReader};

use crate::chunker::is_speakable;
use crate::tts::WordTiming;

/// The `rate=` parameter of a Content-Type such as `audio/pcm;rate=22050`.
pub(super) fn content_type_rate(content_type: &str) -> Option<u32> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        (name.trim() == "rate")
            .then(|| value.trim().trim_matches('"').parse::<u32>().ok())
            .flatten()
            .filter(|r| (1_000..=384_000).contains(r))
    })
}

/// Turns body bytes into mono samples.
#[derive(Debug)]
pub(super) enum Decoder {
    /// Raw s16le mono; `carry` holds an odd trailing byte.
    Pcm {
        rate: u32,
        carry: Vec<u8>,
    },
    Wav(WavReader),
}

impl Decoder {
    pub(super) fn push(&mut self, bytes: &[u8], out: &mut Vec<i16>) -> Result<(), WavError> {
        match self {
            Self::Pcm { carry, .. } => {
                decode_s16(bytes, carry, out);
                Ok(())
            }
            Self::Wav(wav) => wav.push(bytes, out),
        }
    }

    /// The audio's rate, once known.
    pub(super) fn rate(&self) -> Option<u32> {
        match self {
            Self::Pcm { rate, .. } => Some(*rate),
            Self::Wav(wav) => wav.format().map(|f| f.sample_rate),
        }
    }

    /// Bytes of an incomplete last sample.
    pub(super) fn leftover(&self) -> usize {
        match self {
            Self::Pcm { carry, .. } => carry.len(),
            Self::Wav(wav) => wav.leftover(),
        }
    }
}

/// Decodes raw mono s16le samples from `carry` + `bytes`; an odd last byte stays in `carry`.
pub(super) fn decode_s16(bytes: &[u8], carry: &mut Vec<u8>, out: &mut Vec<i16>) {
    let mut bytes = bytes;
    if let (Some(&lo), Some(&hi)) = (carry.first(), bytes.first()) {
        out.push(i16::from_le_bytes([lo, hi]));
        carry.clear();
        bytes = &bytes[1..];
    }
    let mut pairs = bytes.chunks_exact(2);
    out.extend((&mut pairs).map(|b| i16::from_le_bytes([b[0], b[1]])));
    carry.extend_from_slice(pairs.remainder());
}

/// Letters (and one per word for the gap) of `text`: the weight word estimates use.
pub(super) fn text_weight(text: &str) -> usize {
    written_words(text).map(|w| w.chars().count() + 1).sum()
}

/// Words of `text` without surrounding punctuation.
pub(super) fn written_words(text: &str) -> impl Iterator<Item = &str> {
    text.split_whitespace()
        .map(|t| t.trim_matches(|c: char| !is_speakable(c)))
        .filter(|t| !t.is_empty())
}

/// The words of `text` spread, in proportion to their length, over an estimated duration
/// starting at `offset_ms`.
pub(super) fn estimate_words(text: &str, offset_ms: u64, us_per_char: u32) -> Vec<WordTiming> {
    let mut words = Vec::new();
    let mut at_us = offset_ms * 1000;
    for w in written_words(text) {
        let len = (w.chars().count() + 1) as u64;
        let end_us = at_us + len * u64::from(us_per_char);
        words.push(WordTiming {
            text: w.to_string(),
            start_ms: at_us / 1000,
            end_ms: end_us / 1000,
        });
        at_us = end_us;
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcm_keeps_odd_bytes() {
        let samples: Vec<i16> = vec![1, -2, 300, -32768, 32767];
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut d = Decoder::Pcm {
            rate: 24_000,
            carry: Vec::new(),
        };
        let mut out = Vec::new();
        for piece in bytes.chunks(3) {
            d.push(piece, &mut out).unwrap();
        }
        assert_eq!(out, samples);
        assert_eq!(d.leftover(), 0);
    }

    #[test]
    fn content_type_rates() {
        assert_eq!(content_type_rate("audio/pcm;rate=22050"), Some(22_050));
        assert_eq!(content_type_rate("audio/pcm; rate=\"16000\""), Some(16_000));
        assert_eq!(content_type_rate("audio/pcm"), None);
        assert_eq!(content_type_rate("audio/pcm;rate=x"), None);
    }

    #[test]
    fn word_estimates_are_ordered_and_offset() {
        let words = estimate_words("Hello, big world!", 1000, 60_000);
        let texts: Vec<&str> = words.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(texts, ["Hello", "big", "world"]);
        assert_eq!(words[0].start_ms, 1000);
        assert_eq!(words[0].end_ms, 1360);
        assert_eq!(words[1].start_ms, 1360);
        assert!(words[2].end_ms > words[2].start_ms);
    }
}
