//! Test audio for microphone input: the built-in voice saying a sentence at 16 kHz, between
//! silences, as bytes the page would send.

use talkstream_providers::{LocalTts, LocalTtsConfig, Resampler};

/// `before` ms of silence, the built-in voice saying `text`, then `after` ms of silence, at
/// 16 kHz mono.
pub fn said(text: &str, before: usize, after: usize) -> Vec<i16> {
    let tts = LocalTts::new(LocalTtsConfig::default()).expect("the built-in voice");
    let chunk = tts.synthesize_blocking(text).expect("speech");
    let mut r = Resampler::new(chunk.sample_rate, 16_000).expect("resampler");
    let mut pcm = vec![0i16; before * 16];
    pcm.extend(r.process(&chunk.pcm));
    pcm.extend(r.finish());
    pcm.extend(std::iter::repeat_n(0, after * 16));
    pcm
}

/// Samples as a binary frame (16-bit little-endian).
pub fn bytes(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}
