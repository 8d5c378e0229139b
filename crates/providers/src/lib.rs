//! Speech providers for talkstream: the text chunker that feeds a TTS, the streaming TTS
//! contract ([`TtsProvider`]), the embedded local TTS ([`LocalTts`], eSpeak NG) and a streaming
//! resampler for the PCM they produce.
#![deny(missing_docs)]

mod chunker;
mod local;
mod resample;
mod tts;

pub use chunker::{Chunker, ChunkerConfig};
pub use local::{LocalTts, LocalTtsConfig, LOCAL_VOICES};
pub use resample::{ResampleError, Resampler};
pub use tts::{
    TtsChunk, TtsError, TtsInput, TtsItem, TtsOutput, TtsProvider, TtsTurn, TurnWorker, WordTiming,
    TURN_INPUT_CAPACITY, TURN_OUTPUT_CAPACITY,
};
