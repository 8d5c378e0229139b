//! The WAV files of the exec contract, written by the workspace's one WAV module,
//! [`talkstream_media::wav`]: [`wav_bytes`] writes mono 16-bit PCM (the format the seed's
//! `RollingWav` hands to InfiniteTalk).

pub use talkstream_media::wav::{wav_bytes, WavError};
