//! The ElevenLabs streaming TTS: one `stream-input` WebSocket per speaking turn.
//!
//! A turn connects at once (the key goes in the `xi-api-key` header of the upgrade request, never
//! in the URL), sends the initialization message (voice settings and chunk schedule) exactly
//! once, then forwards each [`TtsInput::Text`] as it arrives, so ElevenLabs starts speaking
//! while the language model is still writing. [`TtsInput::Flush`] asks for the buffered text now,
//! [`TtsInput::End`] flushes and sends the end-of-stream message. While no text comes (a slow
//! model), a one-space keepalive keeps the server's 20 s input timeout from closing the stream.
//!
//! Audio arrives as base64 `pcm_N` (s16le mono) with per-character alignment whose times are
//! relative to each audio message; they are shifted by the audio already received so every
//! [`WordTiming`] counts from the first sample of the turn. `isFinal` ends the turn. A server
//! error (an error message, or a close code other than 1000) becomes one [`TtsError`] item; a
//! connection that drops becomes [`TtsError::Connection`]. Connecting is retried per
//! [`RetryPolicy`] (and a stream that broke is re-opened, replaying the text) only while no
//! audio of the turn has been delivered. The API key never appears in errors or logs.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_util::sync::CancellationToken;

use crate::http::RetryPolicy;
use crate::tts::{CheckFuture, TtsError, TtsInput, TtsProvider, TtsTurn};

mod audio;
mod connection;
mod turn;

use connection::connection_error;
use turn::{run_turn, ANSWER_TIMEOUT};

/// Output rates ElevenLabs offers as raw PCM (`pcm_<rate>`).
pub const ELEVENLABS_PCM_RATES: &[u32] = &[8_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000];

/// Voice settings sent once, in the first message of each stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ElevenLabsVoiceSettings {
    /// 0–1: higher is more stable and less expressive.
    pub stability: f64,
    /// 0–1: how closely to match the original voice.
    pub similarity_boost: f64,
    /// 0–1: style exaggeration (0 is fastest).
    pub style: f64,
    /// Boosts similarity to the original speaker (slightly more latency).
    pub use_speaker_boost: bool,
    /// Speaking speed, 0.7–1.2 (1.0 is normal).
    pub speed: f64,
}

impl Default for ElevenLabsVoiceSettings {
    fn default() -> Self {
        Self {
            stability: 0.5,
            similarity_boost: 0.75,
            style: 0.0,
            use_speaker_boost: true,
            speed: 1.0,
        }
    }
}

/// Settings of the ElevenLabs provider. `Debug` never shows the API key.
#[derive(Clone, PartialEq)]
pub struct ElevenLabsConfig {
    /// The API key (`ELEVENLABS_API_KEY`), sent as the `xi-api-key` header.
    pub api_key: String,
    /// The voice id (letters and digits), e.g. `21m00Tcm4TlvDq8ikWAM` ("Rachel").
    pub voice_id: String,
    /// The model; `eleven_flash_v2_5` has the lowest latency (`eleven_v3` has no WebSocket API).
    pub model_id: String,
    /// `wss://api.elevenlabs.io`, or another `ws://`/`wss://` origin (a proxy, a test server).
    pub base_url: String,
    /// `pcm_<rate>` with a rate from [`ELEVENLABS_PCM_RATES`]; the provider's sample rate.
    pub output_format: String,
    /// Voice settings for every turn.
    pub voice_settings: ElevenLabsVoiceSettings,
    /// Characters the server buffers before each successive generation, each 50–500. Lower
    /// values start speaking sooner at some cost in quality.
    pub chunk_length_schedule: Vec<u32>,
    /// Send a one-space keepalive after this long without text (the server closes the stream
    /// after 20 s without input). 50 ms – 19 s.
    pub keepalive: Duration,
    /// Longest wait for the TCP/TLS/WebSocket handshake of one attempt.
    pub connect_timeout: Duration,
    /// Retries of a failed connection (only before any audio of the turn was delivered).
    pub retry: RetryPolicy,
}

impl ElevenLabsConfig {
    /// The default voice: "Rachel", a premade voice every account has.
    pub const DEFAULT_VOICE_ID: &'static str = "21m00Tcm4TlvDq8ikWAM";
    /// The default model: the low-latency Flash v2.5.
    pub const DEFAULT_MODEL_ID: &'static str = "eleven_flash_v2_5";
    /// The public API origin.
    pub const DEFAULT_BASE_URL: &'static str = "wss://api.elevenlabs.io";

    /// The default settings with `api_key`.
    pub fn with_api_key(api_key: impl Into<String>) -> Self {
        Self {
            api_key: api_key.into(),
            ..Self::default()
        }
    }

    /// Checks every setting; the error names the setting and what is accepted (never the key).
    pub fn validate(&self) -> Result<(), TtsError> {
        let key = self.api_key.trim();
        if key.is_empty() {
            return Err(invalid(
                "api_key",
                "missing: set ELEVENLABS_API_KEY to your ElevenLabs API key".to_string(),
            ));
        }
        if HeaderValue::from_str(key).is_err() || key.chars().any(char::is_whitespace) {
            return Err(invalid(
                "api_key",
                "contains characters an API key cannot have (spaces, control or non-ASCII \
                 characters); check ELEVENLABS_API_KEY"
                    .to_string(),
            ));
        }
        if self.voice_id.is_empty() || !self.voice_id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(invalid(
                "voice_id",
                format!(
                    "{:?} is not a voice id (letters and digits, e.g. {})",
                    self.voice_id,
                    Self::DEFAULT_VOICE_ID
                ),
            ));
        }
        if self.model_id.is_empty()
            || !self
                .model_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(invalid(
                "model_id",
                format!(
                    "{:?} is not a model id (e.g. {})",
                    self.model_id,
                    Self::DEFAULT_MODEL_ID
                ),
            ));
        }
        if self.model_id == "eleven_v3" {
            return Err(invalid(
                "model_id",
                "eleven_v3 is not available over WebSockets; use eleven_flash_v2_5 or \
                 eleven_turbo_v2_5"
                    .to_string(),
            ));
        }
        self.origin()?;
        self.sample_rate()?;
        let v = &self.voice_settings;
        for (field, value, lo, hi) in [
            ("voice_settings.stability", v.stability, 0.0, 1.0),
            (
                "voice_settings.similarity_boost",
                v.similarity_boost,
                0.0,
                1.0,
            ),
            ("voice_settings.style", v.style, 0.0, 1.0),
            ("voice_settings.speed", v.speed, 0.7, 1.2),
        ] {
            if !(lo..=hi).contains(&value) {
                return Err(invalid(field, format!("{value} is outside {lo}..={hi}")));
            }
        }
        if self.chunk_length_schedule.is_empty() {
            return Err(invalid(
                "chunk_length_schedule",
                "needs at least one value, e.g. [120, 160, 250, 290]".to_string(),
            ));
        }
        if let Some(bad) = self
            .chunk_length_schedule
            .iter()
            .find(|n| !(50..=500).contains(*n))
        {
            return Err(invalid(
                "chunk_length_schedule",
                format!("{bad} is outside 50..=500 characters"),
            ));
        }
        if !(Duration::from_millis(50)..=Duration::from_secs(19)).contains(&self.keepalive) {
            return Err(invalid(
                "keepalive",
                format!(
                    "{:?} is outside 50 ms..=19 s (the server closes the stream after 20 s \
                     without text)",
                    self.keepalive
                ),
            ));
        }
        if self.connect_timeout.is_zero() {
            return Err(invalid(
                "connect_timeout",
                "must be longer than zero".to_string(),
            ));
        }
        Ok(())
    }

    /// The sample rate named by `output_format`.
    pub fn sample_rate(&self) -> Result<u32, TtsError> {
        self.output_format
            .strip_prefix("pcm_")
            .and_then(|r| r.parse::<u32>().ok())
            .filter(|r| ELEVENLABS_PCM_RATES.contains(r))
            .ok_or_else(|| {
                let known: Vec<String> = ELEVENLABS_PCM_RATES
                    .iter()
                    .map(|r| format!("pcm_{r}"))
                    .collect();
                invalid(
                    "output_format",
                    format!(
                        "{:?} is not supported; use raw PCM: {}",
                        self.output_format,
                        known.join(", ")
                    ),
                )
            })
    }

    /// The WebSocket URL of one stream (holds no secret).
    pub fn stream_url(&self) -> Result<String, TtsError> {
        Ok(format!(
            "{}/v1/text-to-speech/{}/stream-input?model_id={}&output_format={}&sync_alignment=true",
            self.origin()?,
            self.voice_id,
            self.model_id,
            self.output_format
        ))
    }

    /// `base_url` as a `ws://`/`wss://` origin without a trailing slash (`http(s)://` accepted).
    fn origin(&self) -> Result<String, TtsError> {
        let base = self.base_url.trim().trim_end_matches('/');
        let base = if let Some(rest) = base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            base.to_string()
        };
        let host = base
            .strip_prefix("wss://")
            .or_else(|| base.strip_prefix("ws://"));
        match host {
            Some(h) if !h.is_empty() && !h.contains(char::is_whitespace) && !h.contains('?') => {
                Ok(base)
            }
            _ => Err(invalid(
                "base_url",
                format!(
                    "{:?} is not a ws:// or wss:// URL (default {})",
                    self.base_url,
                    Self::DEFAULT_BASE_URL
                ),
            )),
        }
    }
}

impl Default for ElevenLabsConfig {
    fn default() -> Self {
        Self {
            api_key: String::new(),
            voice_id: Self::DEFAULT_VOICE_ID.to_string(),
            model_id: Self::DEFAULT_MODEL_ID.to_string(),
            base_url: Self::DEFAULT_BASE_URL.to_string(),
            output_format: "pcm_16000".to_string(),
            voice_settings: ElevenLabsVoiceSettings::default(),
            chunk_length_schedule: vec![120, 160, 250, 290],
            keepalive: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
        }
    }
}

impl fmt::Debug for ElevenLabsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = if self.api_key.is_empty() {
            "(not set)"
        } else {
            "[redacted]"
        };
        f.debug_struct("ElevenLabsConfig")
            .field("api_key", &key)
            .field("voice_id", &self.voice_id)
            .field("model_id", &self.model_id)
            .field("base_url", &self.base_url)
            .field("output_format", &self.output_format)
            .field("voice_settings", &self.voice_settings)
            .field("chunk_length_schedule", &self.chunk_length_schedule)
            .field("keepalive", &self.keepalive)
            .field("connect_timeout", &self.connect_timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

fn invalid(field: &'static str, reason: String) -> TtsError {
    TtsError::InvalidConfig {
        provider: ElevenLabsTts::NAME,
        field,
        reason,
    }
}

/// The ElevenLabs streaming provider; cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct ElevenLabsTts {
    inner: Arc<Shared>,
}

/// What every turn needs, computed once.
#[derive(Debug)]
struct Shared {
    config: ElevenLabsConfig,
    url: String,
    sample_rate: u32,
    /// The first message of every stream.
    init: String,
}

impl ElevenLabsTts {
    /// Provider name.
    pub const NAME: &'static str = "elevenlabs";

    /// Validates `config`. Does not touch the network (see [`ElevenLabsTts::check`]).
    pub fn new(mut config: ElevenLabsConfig) -> Result<Self, TtsError> {
        config.validate()?;
        config.api_key = config.api_key.trim().to_string();
        let url = config.stream_url()?;
        let sample_rate = config.sample_rate()?;
        let init = json!({
            "text": " ",
            "voice_settings": config.voice_settings,
            "generation_config": {"chunk_length_schedule": config.chunk_length_schedule},
        })
        .to_string();
        Ok(Self {
            inner: Arc::new(Shared {
                config,
                url,
                sample_rate,
                init,
            }),
        })
    }

    /// The settings this provider runs with.
    pub fn config(&self) -> &ElevenLabsConfig {
        &self.inner.config
    }

    /// Checks the key, voice and model for real: opens a stream, speaks one word and waits for
    /// its first audio (or the error). Returns a one-line description.
    pub async fn check(&self) -> Result<String, TtsError> {
        let cfg = &self.inner.config;
        let cancel = CancellationToken::new();
        let started = std::time::Instant::now();
        let mut turn = self.start_turn(cancel.clone());
        // A send fails only when the turn already ended; its output then says why.
        let _ = turn.input.send(TtsInput::Text("Hello.".to_string())).await;
        let _ = turn.input.send(TtsInput::End).await;
        let attempts = cfg.retry.max_retries.saturating_add(1);
        let limit = cfg
            .connect_timeout
            .saturating_mul(attempts)
            .saturating_add(cfg.retry.max_delay.saturating_mul(cfg.retry.max_retries))
            .saturating_add(ANSWER_TIMEOUT);
        let first = tokio::time::timeout(limit, turn.output.recv()).await;
        let latency_ms = started.elapsed().as_millis();
        cancel.cancel();
        match first {
            Ok(Some(Ok(chunk))) => Ok(format!(
                "ElevenLabs OK: voice {}, model {}, {} ({} Hz): first audio after {latency_ms} ms",
                cfg.voice_id, cfg.model_id, cfg.output_format, chunk.sample_rate
            )),
            Ok(Some(Err(e))) => Err(e),
            Ok(None) => Err(connection_error(
                "the stream ended without audio (check the voice id and model)".to_string(),
            )),
            Err(_) => Err(connection_error(format!(
                "no audio within {} s",
                limit.as_secs()
            ))),
        }
    }
}

impl TtsProvider for ElevenLabsTts {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn sample_rate(&self) -> u32 {
        self.inner.sample_rate
    }

    fn describe(&self) -> String {
        let cfg = &self.inner.config;
        format!("ElevenLabs {} ({})", cfg.voice_id, cfg.model_id)
    }

    fn check(&self) -> CheckFuture<'_, TtsError> {
        Box::pin(ElevenLabsTts::check(self))
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
    fn default_config_needs_only_a_key() {
        assert!(matches!(
            ElevenLabsConfig::default().validate(),
            Err(TtsError::InvalidConfig {
                field: "api_key",
                ..
            })
        ));
        let cfg = ElevenLabsConfig::with_api_key("sk_0123456789abcdef");
        assert!(cfg.validate().is_ok());
        assert_eq!(cfg.sample_rate().ok(), Some(16_000));
        assert!(!format!("{cfg:?}").contains("sk_0123456789abcdef"));
        assert_eq!(
            cfg.stream_url().ok().as_deref(),
            Some(
                "wss://api.elevenlabs.io/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM/stream-input\
                 ?model_id=eleven_flash_v2_5&output_format=pcm_16000&sync_alignment=true"
            )
        );
    }

    #[test]
    fn bad_settings_name_the_field() {
        let base = ElevenLabsConfig::with_api_key("sk_0123456789abcdef");
        let cases: Vec<(ElevenLabsConfig, &str)> = vec![
            (
                ElevenLabsConfig {
                    api_key: "bad key\n".into(),
                    ..base.clone()
                },
                "api_key",
            ),
            (
                ElevenLabsConfig {
                    voice_id: "../x".into(),
                    ..base.clone()
                },
                "voice_id",
            ),
            (
                ElevenLabsConfig {
                    model_id: "eleven_v3".into(),
                    ..base.clone()
                },
                "model_id",
            ),
            (
                ElevenLabsConfig {
                    base_url: "ftp://x".into(),
                    ..base.clone()
                },
                "base_url",
            ),
            (
                ElevenLabsConfig {
                    output_format: "mp3_44100_128".into(),
                    ..base.clone()
                },
                "output_format",
            ),
            (
                ElevenLabsConfig {
                    chunk_length_schedule: vec![120, 40],
                    ..base.clone()
                },
                "chunk_length_schedule",
            ),
            (
                ElevenLabsConfig {
                    keepalive: Duration::from_secs(25),
                    ..base.clone()
                },
                "keepalive",
            ),
            (
                ElevenLabsConfig {
                    voice_settings: ElevenLabsVoiceSettings {
                        speed: 2.0,
                        ..Default::default()
                    },
                    ..base.clone()
                },
                "voice_settings.speed",
            ),
        ];
        for (cfg, field) in cases {
            match cfg.validate() {
                Err(TtsError::InvalidConfig {
                    field: f, reason, ..
                }) => {
                    assert_eq!(f, field);
                    assert!(!reason.contains("bad key"), "{reason}");
                }
                other => panic!("{cfg:?}: {other:?}"),
            }
        }
        let http = ElevenLabsConfig {
            base_url: "http://127.0.0.1:9/".into(),
            ..base
        };
        assert!(http
            .stream_url()
            .is_ok_and(|u| u.starts_with("ws://127.0.0.1:9/v1/")));
    }
}
