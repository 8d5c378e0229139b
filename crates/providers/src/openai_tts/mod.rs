//! The OpenAI-style HTTP speech provider: `POST {TTS_BASE_URL}/audio/speech`, as served by
//! OpenAI itself and by local servers that copy its API (Kokoro-FastAPI, openedai-speech,
//! speaches).
//!
//! Each [`TtsInput::Text`] of a turn becomes one request with the standard fields only (`model`,
//! `input`, `voice`, `response_format`, `speed`; OpenAI's schema rejects anything else). Requests
//! are pipelined: the next text's request starts while the previous answer is still streaming
//! (at most [`OpenAiTtsConfig::max_in_flight`] at once), but audio comes out strictly in input
//! order, and every answer is decoded and passed on piece by piece as its body arrives, so
//! speech starts on the first bytes and has no gaps between texts.
//!
//! Audio: `pcm` is raw signed 16-bit little-endian mono, at 24 kHz for OpenAI and Kokoro, at the
//! `rate=` of an `audio/pcm;rate=NNNN` Content-Type when the server names one (openedai-speech),
//! else at [`OpenAiTtsConfig::pcm_rate`]. `wav` is parsed incrementally (the header may arrive in
//! pieces; a data size of 0 or `0xFFFFFFFF`, as streamed WAV writes, means "until the end").
//! Audio at any other rate than [`OpenAiTtsConfig::pcm_rate`] is resampled to it, so every chunk
//! is at [`TtsProvider::sample_rate`].
//!
//! Word timings: the API gives none, and while an answer streams its length is unknown. The
//! first chunk of each text carries the text and its words spread over an *estimated* duration
//! (word length × a per-character time learned from this provider's previous answers, starting
//! from a typical speaking rate). The estimate is good enough for captions; the real audio may
//! run somewhat shorter or longer.
//!
//! Failures: 408, 409, 429, 5xx and connection errors are retried (honouring `Retry-After`) as
//! long as no audio of that request has been received; a failure after that (a broken
//! connection, a stalled body) ends the turn with one error item after the audio already
//! delivered (for the whole turn: once any of its audio was handed out, no request of the turn
//! is retried). 401 and 403 are [`TtsError::Auth`] and never retried. The API key never appears in
//! an error or a log line.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::http::{self, RetryPolicy};
use crate::tts::{CheckFuture, TtsError, TtsProvider, TtsTurn};

mod decode;
mod request;
mod turn;

use request::describe;
use turn::{fetch, run_turn, Piece};

/// Audio format asked of the server (`response_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OpenAiTtsFormat {
    /// Raw signed 16-bit little-endian mono samples, no header (lowest latency).
    #[default]
    Pcm,
    /// WAV (RIFF) with 16-bit PCM; the sample rate is read from the header.
    Wav,
}

impl OpenAiTtsFormat {
    /// The `response_format` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pcm => "pcm",
            Self::Wav => "wav",
        }
    }
}

impl fmt::Display for OpenAiTtsFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OpenAiTtsFormat {
    type Err = TtsError;

    /// `pcm` or `wav` (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "pcm" => Ok(Self::Pcm),
            "wav" => Ok(Self::Wav),
            other => Err(invalid(
                "response_format",
                format!("{other:?} is not supported; use pcm or wav"),
            )),
        }
    }
}

/// Settings of the OpenAI-style speech provider.
#[derive(Clone, PartialEq)]
pub struct OpenAiTtsConfig {
    /// API base (`TTS_BASE_URL`), for example `https://api.openai.com/v1` or
    /// `http://localhost:8880/v1` (Kokoro-FastAPI); `/audio/speech` is appended (a base that
    /// already ends with it is used as is).
    pub base_url: String,
    /// Bearer token (`TTS_API_KEY`); `None` sends no `Authorization` header (local servers).
    pub api_key: Option<String>,
    /// Model (`TTS_MODEL`), default `gpt-4o-mini-tts`.
    pub model: String,
    /// Voice (`TTS_VOICE`), default `alloy`.
    pub voice: String,
    /// Audio format asked for, default [`OpenAiTtsFormat::Pcm`].
    pub response_format: OpenAiTtsFormat,
    /// Rate of the server's raw PCM when its Content-Type does not say (24 000 for OpenAI and
    /// Kokoro; 22 050 for Piper voices behind openedai-speech), and the rate of every chunk this
    /// provider outputs (other rates, for example from a WAV header, are resampled to it).
    pub pcm_rate: u32,
    /// Speaking speed, 0.25–4.0 (1.0 is normal).
    pub speed: f32,
    /// Retries before any audio of a request arrived.
    pub retry: RetryPolicy,
    /// Requests running at once in a turn (the one being played plus those fetched ahead), 1–8.
    pub max_in_flight: usize,
    /// Longest wait for the response headers, and for each next piece of the body.
    pub timeout: Duration,
}

impl Default for OpenAiTtsConfig {
    fn default() -> Self {
        Self {
            base_url: "https://api.openai.com/v1".to_string(),
            api_key: None,
            model: "gpt-4o-mini-tts".to_string(),
            voice: "alloy".to_string(),
            response_format: OpenAiTtsFormat::Pcm,
            pcm_rate: 24_000,
            speed: 1.0,
            retry: RetryPolicy::default(),
            max_in_flight: 2,
            timeout: Duration::from_secs(30),
        }
    }
}

/// Never prints the key.
impl fmt::Debug for OpenAiTtsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiTtsConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("model", &self.model)
            .field("voice", &self.voice)
            .field("response_format", &self.response_format)
            .field("pcm_rate", &self.pcm_rate)
            .field("speed", &self.speed)
            .field("retry", &self.retry)
            .field("max_in_flight", &self.max_in_flight)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl OpenAiTtsConfig {
    /// Checks every setting; the error names the setting and what is accepted.
    pub fn validate(&self) -> Result<(), TtsError> {
        let base = self.base_url.trim();
        if !(base.starts_with("http://") || base.starts_with("https://"))
            || base.len() <= "https://".len()
        {
            return Err(invalid(
                "base_url",
                format!("{base:?} must be an http:// or https:// URL (TTS_BASE_URL)"),
            ));
        }
        if reqwest::Url::parse(base).is_err() {
            return Err(invalid(
                "base_url",
                format!("{base:?} is not a valid URL (TTS_BASE_URL)"),
            ));
        }
        if let Some(key) = &self.api_key {
            if key.trim().is_empty() {
                return Err(invalid(
                    "api_key",
                    "is empty; leave TTS_API_KEY unset for servers without keys".to_string(),
                ));
            }
            if key
                .trim()
                .chars()
                .any(|c| c.is_control() || c.is_whitespace())
            {
                return Err(invalid(
                    "api_key",
                    "contains spaces or control characters (TTS_API_KEY)".to_string(),
                ));
            }
        }
        if self.model.trim().is_empty() {
            return Err(invalid("model", "is empty (TTS_MODEL)".to_string()));
        }
        if self.voice.trim().is_empty() {
            return Err(invalid("voice", "is empty (TTS_VOICE)".to_string()));
        }
        if !(8_000..=192_000).contains(&self.pcm_rate) {
            return Err(invalid(
                "pcm_rate",
                format!("{} Hz is outside 8000..=192000", self.pcm_rate),
            ));
        }
        if !(self.speed.is_finite() && (0.25..=4.0).contains(&self.speed)) {
            return Err(invalid(
                "speed",
                format!("{} is outside 0.25..=4.0", self.speed),
            ));
        }
        if !(1..=8).contains(&self.max_in_flight) {
            return Err(invalid(
                "max_in_flight",
                format!("{} is outside 1..=8", self.max_in_flight),
            ));
        }
        if self.timeout.is_zero() {
            return Err(invalid("timeout", "must be more than zero".to_string()));
        }
        Ok(())
    }

    /// The full request URL.
    fn speech_url(&self) -> String {
        let base = self.base_url.trim().trim_end_matches('/');
        if base.ends_with("/audio/speech") {
            base.to_string()
        } else {
            format!("{base}/audio/speech")
        }
    }
}

fn invalid(field: &'static str, reason: String) -> TtsError {
    TtsError::InvalidConfig {
        provider: OpenAiTts::NAME,
        field,
        reason,
    }
}

/// The OpenAI-style speech provider; cheap to clone (shared state). See the module docs.
#[derive(Debug, Clone)]
pub struct OpenAiTts {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: OpenAiTtsConfig,
    url: String,
    client: reqwest::Client,
    /// Learned speaking time per character of text, in microseconds (for word estimates).
    us_per_char: AtomicU32,
}

/// Typical speaking time per character (letters plus one for the space) at speed 1.0.
const DEFAULT_US_PER_CHAR: f32 = 62_000.0;
/// Connect timeout of the HTTP client.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes of an error body read for its message.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

impl OpenAiTts {
    /// Provider name.
    pub const NAME: &'static str = "openai";

    /// Validates `config` and prepares the HTTP client. Makes no request (see
    /// [`OpenAiTts::check`]).
    pub fn new(config: OpenAiTtsConfig) -> Result<Self, TtsError> {
        config.validate()?;
        let client = http::client(CONNECT_TIMEOUT).map_err(|e| TtsError::Connection {
            provider: Self::NAME,
            message: format!("cannot set up the HTTP client: {}", describe(&e)),
        })?;
        let initial = (DEFAULT_US_PER_CHAR / config.speed).round() as u32;
        Ok(Self {
            inner: Arc::new(Inner {
                url: config.speech_url(),
                config,
                client,
                us_per_char: AtomicU32::new(initial),
            }),
        })
    }

    /// The settings this provider runs with.
    pub fn config(&self) -> &OpenAiTtsConfig {
        &self.inner.config
    }

    /// Synthesizes `"ok"` once, proving the server is reachable and accepts the credentials,
    /// model and voice. Returns a one-line description.
    pub async fn check(&self) -> Result<String, TtsError> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        fetch(self.inner.clone(), "ok".to_string(), tx, Arc::default()).await;
        let mut samples = 0usize;
        while let Some(piece) = rx.recv().await {
            match piece {
                Piece::Audio(pcm) => samples += pcm.len(),
                Piece::Failed(e) => return Err(e),
                Piece::Done => break,
            }
        }
        let cfg = &self.inner.config;
        if samples == 0 {
            return Err(TtsError::Synthesis {
                provider: Self::NAME,
                text: "ok".to_string(),
                reason: format!("{} answered without audio", self.inner.url),
            });
        }
        Ok(format!(
            "{} (model {}, voice {}, {}): {} ms of audio at {} Hz",
            self.inner.url,
            cfg.model,
            cfg.voice,
            cfg.response_format,
            samples as u64 * 1000 / u64::from(cfg.pcm_rate),
            cfg.pcm_rate
        ))
    }
}

impl TtsProvider for OpenAiTts {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    /// [`OpenAiTtsConfig::pcm_rate`]: audio at any other rate is resampled to it.
    fn sample_rate(&self) -> u32 {
        self.inner.config.pcm_rate
    }

    fn describe(&self) -> String {
        let cfg = &self.inner.config;
        format!("{} / {} at {}", cfg.model, cfg.voice, cfg.base_url)
    }

    fn check(&self) -> CheckFuture<'_, TtsError> {
        Box::pin(OpenAiTts::check(self))
    }

    fn start_turn(&self, cancel: CancellationToken) -> TtsTurn {
        let inner = self.inner.clone();
        TtsTurn::spawn(Self::NAME, cancel, move |worker| run_turn(inner, worker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_validation() {
        let mut c = OpenAiTtsConfig {
            base_url: "http://localhost:8880/v1/".into(),
            ..Default::default()
        };
        assert_eq!(c.speech_url(), "http://localhost:8880/v1/audio/speech");
        c.base_url = "http://h/v1/audio/speech".into();
        assert_eq!(c.speech_url(), "http://h/v1/audio/speech");
        assert!(c.validate().is_ok());
        c.api_key = Some("sk-secret-value".into());
        assert!(!format!("{c:?}").contains("sk-secret"));
    }
}
