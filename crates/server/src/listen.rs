//! Listening settings: the speech recognizer (`STT_*`) and the voice activity rules (`VAD_*`,
//! `BARGE_IN_MS`, `ECHO_TAIL_MS`) of microphone input, their checks, and the recognizer they
//! build. What a session does with microphone audio is `session::mic`.

use clap::{Args, ValueEnum};
use talkstream_providers::vad::VadSettings;
use talkstream_providers::{OpenAiStt, OpenAiSttConfig, SttError};

use crate::config::{Config, ConfigError, Secret};
use crate::protocol::VadInfo;

/// Which speech recognizer to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SttChoice {
    /// openai when STT_BASE_URL or STT_API_KEY is set, or when OPENAI_API_KEY is set for
    /// api.openai.com (no OPENAI_BASE_URL); else none.
    Auto,
    /// No recognizer: the microphone is off.
    None,
    /// An OpenAI-compatible /audio/transcriptions server.
    Openai,
}

/// Microphone input: the recognizer and the voice activity rules.
#[derive(Debug, Clone, Args)]
pub struct ListenConfig {
    /// Speech recognizer for the microphone: auto (openai when STT_BASE_URL or STT_API_KEY is
    /// set, or OPENAI_API_KEY without OPENAI_BASE_URL; else none), none, or openai (any
    /// OpenAI-compatible /audio/transcriptions server: OpenAI, Groq, whisper.cpp, speaches).
    #[arg(long, env = "STT_PROVIDER", value_enum, default_value_t = SttChoice::Auto, global = true)]
    pub stt_provider: SttChoice,

    /// Base URL of the speech recognizer, e.g. http://127.0.0.1:8178/v1 (scripts/stt-server.sh)
    /// or https://api.groq.com/openai/v1. Default: https://api.openai.com/v1.
    #[arg(long, env = "STT_BASE_URL", global = true)]
    pub stt_base_url: Option<String>,

    /// API key of the speech recognizer (default: OPENAI_API_KEY when the recognizer is
    /// api.openai.com). Never logged.
    #[arg(long, env = "STT_API_KEY", hide_env_values = true, global = true)]
    pub stt_api_key: Option<Secret>,

    /// Recognizer model (whisper-1 for OpenAI, whisper-large-v3-turbo for Groq; local servers
    /// mostly ignore it).
    #[arg(long, env = "STT_MODEL", default_value = "whisper-1", global = true)]
    pub stt_model: String,

    /// Spoken language as an ISO-639-1 code (en, de, fr…); empty lets the recognizer detect it.
    #[arg(long, env = "STT_LANGUAGE", default_value = "", global = true)]
    pub stt_language: String,

    /// Text that primes the recognizer (names and words it should spell right).
    #[arg(long, env = "STT_PROMPT", default_value = "", global = true)]
    pub stt_prompt: String,

    /// Longest wait for a transcription, in ms (then it is retried, twice at most).
    #[arg(long, env = "STT_TIMEOUT_MS", default_value_t = 30_000, global = true)]
    pub stt_timeout_ms: u64,

    /// Voice activity score (0–1) from which a 16 ms frame of microphone audio counts as
    /// speech.
    #[arg(long, env = "VAD_THRESHOLD", default_value_t = 0.5, global = true)]
    pub vad_threshold: f32,

    /// Speech needed before an utterance starts, in ms (shorter sounds are ignored).
    #[arg(long, env = "VAD_MIN_SPEECH_MS", default_value_t = 160, global = true)]
    pub vad_min_speech_ms: u32,

    /// Silence that ends an utterance, in ms (shorter pauses stay inside it).
    #[arg(long, env = "VAD_SILENCE_MS", default_value_t = 600, global = true)]
    pub vad_silence_ms: u32,

    /// Audio kept from before the detected start of speech, in ms.
    #[arg(long, env = "VAD_PREROLL_MS", default_value_t = 300, global = true)]
    pub vad_preroll_ms: u32,

    /// Longest utterance, in ms (a longer one is cut there and transcribed).
    #[arg(
        long,
        env = "VAD_MAX_UTTERANCE_MS",
        default_value_t = 30_000,
        global = true
    )]
    pub vad_max_utterance_ms: u32,

    /// Speech that interrupts the avatar while it talks, in ms (hands-free; coughs and clicks
    /// are shorter). Shorter utterances during an answer are ignored. 0: voice never
    /// interrupts.
    #[arg(long, env = "BARGE_IN_MS", default_value_t = 400, global = true)]
    pub barge_in_ms: u32,

    /// With HLS playback (no echo cancellation of the avatar's voice), utterances that start
    /// while the avatar speaks or within this many ms after are taken as its echo and dropped.
    #[arg(long, env = "ECHO_TAIL_MS", default_value_t = 2500, global = true)]
    pub echo_tail_ms: u32,
}

fn invalid(name: &'static str, value: impl ToString, why: &str) -> ConfigError {
    ConfigError::Invalid {
        name,
        value: value.to_string(),
        why: why.to_string(),
    }
}

fn in_range(name: &'static str, v: u32, lo: u32, hi: u32) -> Result<(), ConfigError> {
    if (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(invalid(name, v, &format!("use {lo} to {hi}")))
    }
}

impl ListenConfig {
    /// Check the listening settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(0.05..=0.95).contains(&self.vad_threshold) {
            return Err(invalid(
                "VAD_THRESHOLD",
                self.vad_threshold,
                "use 0.05 to 0.95",
            ));
        }
        in_range("VAD_MIN_SPEECH_MS", self.vad_min_speech_ms, 32, 2000)?;
        in_range("VAD_SILENCE_MS", self.vad_silence_ms, 100, 5000)?;
        in_range("VAD_PREROLL_MS", self.vad_preroll_ms, 0, 1000)?;
        in_range(
            "VAD_MAX_UTTERANCE_MS",
            self.vad_max_utterance_ms,
            1000,
            120_000,
        )?;
        in_range("BARGE_IN_MS", self.barge_in_ms, 0, 5000)?;
        in_range("ECHO_TAIL_MS", self.echo_tail_ms, 0, 30_000)?;
        if !(1000..=600_000).contains(&self.stt_timeout_ms) {
            return Err(invalid(
                "STT_TIMEOUT_MS",
                self.stt_timeout_ms,
                "use 1000 to 600000",
            ));
        }
        let language = self.stt_language.trim();
        let iso_639_1 = language.len() == 2 && language.chars().all(|c| c.is_ascii_lowercase());
        if !language.is_empty() && !iso_639_1 {
            return Err(invalid(
                "STT_LANGUAGE",
                language,
                "use a two-letter ISO-639-1 code such as en, or leave it empty",
            ));
        }
        if self.stt_model.trim().is_empty() {
            return Err(invalid("STT_MODEL", "", "name a model, e.g. whisper-1"));
        }
        Ok(())
    }

    /// The voice activity rules.
    pub fn vad(&self) -> VadSettings {
        VadSettings {
            threshold: self.vad_threshold,
            min_speech_ms: self.vad_min_speech_ms,
            silence_ms: self.vad_silence_ms,
            preroll_ms: self.vad_preroll_ms,
            max_utterance_ms: self.vad_max_utterance_ms,
        }
    }

    /// The voice activity rules as `hello` announces them.
    pub fn vad_info(&self) -> VadInfo {
        VadInfo {
            silence_ms: self.vad_silence_ms,
            min_speech_ms: self.vad_min_speech_ms,
            barge_in_ms: self.barge_in_ms,
            max_utterance_ms: self.vad_max_utterance_ms,
        }
    }
}

/// What to set for a speech recognizer (shown in the page and by `check` when there is none).
pub const STT_NOTE: &str = "no speech recognizer is set up: set STT_BASE_URL to an \
OpenAI-compatible transcription server (./scripts/stt-server.sh runs one locally with no keys), \
or STT_API_KEY / OPENAI_API_KEY for OpenAI";

impl Config {
    /// The recognizer the settings ask for (`auto` resolved).
    pub fn stt_choice(&self) -> SttChoice {
        let l = &self.listen;
        match l.stt_provider {
            SttChoice::Auto
                if l.stt_base_url.is_some() || Secret::non_empty(&l.stt_api_key).is_some() =>
            {
                SttChoice::Openai
            }
            SttChoice::Auto
                if Secret::non_empty(&self.openai_api_key).is_some()
                    && self.openai_base_url.is_none() =>
            {
                SttChoice::Openai
            }
            SttChoice::Auto => SttChoice::None,
            other => other,
        }
    }

    /// Check that `STT_PROVIDER=openai` has somewhere to go.
    pub fn validate_stt(&self) -> Result<(), ConfigError> {
        let l = &self.listen;
        if l.stt_provider == SttChoice::Openai
            && l.stt_base_url.is_none()
            && self.stt_key().is_none()
        {
            return Err(invalid(
                "STT_PROVIDER",
                "openai",
                "set STT_BASE_URL (or STT_API_KEY for api.openai.com)",
            ));
        }
        l.validate()
    }

    /// The recognizer's key: STT_API_KEY, else OPENAI_API_KEY when both talk to api.openai.com.
    fn stt_key(&self) -> Option<String> {
        Secret::non_empty(&self.listen.stt_api_key).or_else(|| {
            (self.listen.stt_base_url.is_none() && self.openai_base_url.is_none())
                .then(|| Secret::non_empty(&self.openai_api_key))
                .flatten()
        })
    }

    /// The recognizer's settings.
    pub fn stt_config(&self) -> OpenAiSttConfig {
        let l = &self.listen;
        let defaults = OpenAiSttConfig::default();
        let non_empty = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        OpenAiSttConfig {
            base_url: l.stt_base_url.clone().unwrap_or(defaults.base_url.clone()),
            api_key: self.stt_key(),
            model: l.stt_model.trim().to_string(),
            language: non_empty(&l.stt_language),
            prompt: non_empty(&l.stt_prompt),
            timeout: std::time::Duration::from_millis(l.stt_timeout_ms),
            ..defaults
        }
    }

    /// The recognizer the settings ask for, if any.
    pub fn build_stt(&self) -> Result<Option<OpenAiStt>, SttError> {
        match self.stt_choice() {
            SttChoice::Openai => OpenAiStt::new(self.stt_config()).map(Some),
            SttChoice::None | SttChoice::Auto => Ok(None),
        }
    }
}
