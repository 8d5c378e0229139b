//! The WAV files of the exec contract, read and written by the workspace's one WAV module,
//! [`talkstream_media::wav`]: [`wav_bytes`] writes mono 16-bit PCM (the format the seed's
//! `RollingWav` hands to InfiniteTalk), [`parse_wav`] reads any PCM/float WAV back (mixing
//! channels down).

pub use talkstream_media::wav::{wav_bytes, WavError};

/// [`talkstream_media::wav::parse_wav`] with its error as text, for the server's `render`
/// command, which reports input errors as text. New callers use the typed one.
pub fn parse_wav(data: &[u8]) -> Result<(Vec<i16>, u32), String> {
    talkstream_media::wav::parse_wav(data).map_err(|e| e.to_string())
}
