//! Speech providers for talkstream: the text chunker that feeds a TTS, the streaming TTS
//! contract ([`TtsProvider`]), the embedded local TTS ([`LocalTts`], eSpeak NG), the neural local
//! TTS ([`PiperTts`], a Piper voice in ONNX Runtime) and a streaming
//! resampler for the PCM they produce.
#![deny(missing_docs)]

mod chunker;
mod elevenlabs;
pub mod http;
mod llm;
mod local;
mod openai_chat;
mod openai_tts;
mod output;
mod piper;
mod resample;
pub mod retry;
mod stt;
mod tts;
pub mod vad;

pub use chunker::{Chunker, ChunkerConfig};
pub use elevenlabs::{
    ElevenLabsConfig, ElevenLabsTts, ElevenLabsVoiceSettings, ELEVENLABS_PCM_RATES,
};
pub use llm::{
    ChatMessage, Conversation, LlmError, LlmItem, LlmOutput, LlmProvider, LlmTurn, Role,
    DEFAULT_HISTORY_CHARS, LLM_OUTPUT_CAPACITY, UNSPOKEN_ANSWER_MARKER,
};
pub use local::{LocalTts, LocalTtsConfig, LOCAL_VOICES};
pub use openai_chat::{OpenAiChat, OpenAiChatConfig};
pub use openai_tts::{OpenAiTts, OpenAiTtsConfig, OpenAiTtsFormat};
pub use output::TurnOutput;
pub use piper::voice::{Scales, VoiceConfig, VoiceConfigError};
pub use piper::{
    default_piper_dir, PiperConfig, PiperError, PiperTts, DEFAULT_ORT_LIBRARY, DEFAULT_PIPER_VOICE,
};
pub use resample::{ResampleError, Resampler};
pub use stt::{OpenAiStt, OpenAiSttConfig, SttError};
pub use tts::{
    CheckFuture, TtsChunk, TtsError, TtsInput, TtsItem, TtsOutput, TtsProvider, TtsTurn,
    TurnWorker, WordTiming, TURN_INPUT_CAPACITY, TURN_OUTPUT_CAPACITY,
};
