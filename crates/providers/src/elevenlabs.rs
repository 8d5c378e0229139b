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

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use crate::chunker::is_speakable;
use crate::http::{self, RetryPolicy};
use crate::retry::{Failure, FailureKind, Next, Retry};
use crate::tts::{
    CheckFuture, TtsChunk, TtsError, TtsInput, TtsProvider, TtsTurn, TurnWorker, WordTiming,
};

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

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// After the end of stream, how long the server may stay silent before the turn fails.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// How one connection of a turn ended.
enum Outcome {
    /// The turn is over (finished, cancelled or nobody listens): nothing more to send.
    Done,
    /// It failed; retryable failures may be retried while no audio was delivered.
    Failed(Failure<TtsError>),
}

/// The state of one turn across (re)connections.
struct Turn {
    shared: Arc<Shared>,
    worker: TurnWorker,
    /// Messages sent after the init message (texts, flushes, end of stream), replayed when the
    /// stream has to be re-opened before any audio was delivered.
    journal: Vec<String>,
    /// The text of the turn so far (for error messages).
    spoken: String,
    /// Text was sent since the last flush.
    unflushed: bool,
    /// `End` was received (or the input was dropped) and the end of stream was sent.
    input_done: bool,
    /// Some audio reached the caller: no more retries.
    delivered: bool,
    audio: AudioState,
}

/// Audio and alignment bookkeeping of a turn.
#[derive(Default)]
struct AudioState {
    /// Samples of the turn received so far.
    samples: u64,
    /// An odd trailing byte waiting for its partner in the next message.
    carry: Option<u8>,
    /// Characters (turn-relative times) not yet given to a chunk.
    pending: Vec<TimedChar>,
    /// No visible character has been given out yet (leading spaces are dropped).
    at_start: bool,
}

#[derive(Debug, Clone)]
struct TimedChar {
    text: String,
    start_ms: f64,
    end_ms: f64,
}

async fn run_turn(shared: Arc<Shared>, worker: TurnWorker) {
    let mut turn = Turn {
        shared,
        worker,
        journal: Vec::new(),
        spoken: String::new(),
        unflushed: false,
        input_done: false,
        delivered: false,
        audio: AudioState {
            at_start: true,
            ..AudioState::default()
        },
    };
    let cancel = turn.worker.cancel.clone();
    let mut retry = Retry::new(turn.shared.config.retry, ElevenLabsTts::NAME).cancellable(&cancel);
    loop {
        let outcome = match connect(&turn.shared, &turn.worker.cancel).await {
            Ok(Some(socket)) => turn.stream(socket).await,
            Ok(None) => return,
            Err(outcome) => outcome,
        };
        let Outcome::Failed(failure) = outcome else {
            return;
        };
        match retry.after(failure, turn.delivered).await {
            Next::Again => {}
            Next::Cancelled => return,
            Next::Fail(failure) => {
                let error = failure.error;
                tracing::warn!(provider = ElevenLabsTts::NAME, error = %error, "TTS turn failed");
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => {}
                    _ = turn.worker.output.send(Err(error)) => {}
                }
                return;
            }
        }
        // Nothing of the failed attempt reached the caller: start its audio over.
        turn.audio = AudioState {
            at_start: true,
            ..AudioState::default()
        };
    }
}

/// Opens one stream. `Ok(None)`: cancelled while connecting.
async fn connect(shared: &Shared, cancel: &CancellationToken) -> Result<Option<Socket>, Outcome> {
    let cfg = &shared.config;
    let fail = |kind: FailureKind, error: TtsError, retryable: bool| {
        Outcome::Failed(Failure::new(kind, error, retryable))
    };
    let mut request = shared.url.as_str().into_client_request().map_err(|e| {
        fail(
            FailureKind::Rejected,
            invalid(
                "base_url",
                redact(&format!("{} is not usable: {e}", cfg.base_url), cfg),
            ),
            false,
        )
    })?;
    let mut key = HeaderValue::from_str(&cfg.api_key).map_err(|_| {
        fail(
            FailureKind::Rejected,
            invalid(
                "api_key",
                "contains characters an API key cannot have; check ELEVENLABS_API_KEY".to_string(),
            ),
            false,
        )
    })?;
    key.set_sensitive(true);
    request.headers_mut().insert("xi-api-key", key);
    if shared.url.starts_with("wss://") {
        http::install_crypto();
    }
    tracing::debug!(provider = ElevenLabsTts::NAME, url = %shared.url, "connecting");
    let connecting = tokio_tungstenite::connect_async_with_config(request, None, true);
    let result = tokio::select! {
        biased;
        _ = cancel.cancelled() => return Ok(None),
        result = tokio::time::timeout(cfg.connect_timeout, connecting) => result,
    };
    match result {
        Ok(Ok((socket, _response))) => Ok(Some(socket)),
        Ok(Err(tungstenite::Error::Http(response))) => {
            let status = response.status().as_u16();
            let body = response
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            let message = redact(&http::error_message(&body), cfg);
            let error = match status {
                401 | 403 => TtsError::Auth {
                    provider: ElevenLabsTts::NAME,
                    message: format!(
                        "{message} (HTTP {status}); check ELEVENLABS_API_KEY (a valid key with \
                         text-to-speech access)"
                    ),
                },
                402 => http_error(
                    status,
                    format!("{message}; check the ElevenLabs account's quota/credits"),
                ),
                404 => http_error(
                    status,
                    format!(
                        "{message}; check the voice id {:?} and the base URL {}",
                        cfg.voice_id, cfg.base_url
                    ),
                ),
                _ => http_error(status, message),
            };
            let retryable = http::is_retryable_status(status);
            Err(Outcome::Failed(
                Failure::new(FailureKind::from_status(status), error, retryable)
                    .with_retry_after(http::retry_after(response.headers())),
            ))
        }
        Ok(Err(e @ (tungstenite::Error::Url(_) | tungstenite::Error::HttpFormat(_)))) => Err(fail(
            FailureKind::Rejected,
            invalid(
                "base_url",
                redact(&format!("{} is not usable: {e}", cfg.base_url), cfg),
            ),
            false,
        )),
        Ok(Err(e)) => Err(fail(
            FailureKind::Connection,
            connection_error(redact(
                &format!("cannot open a stream at {}: {e}", cfg.base_url),
                cfg,
            )),
            true,
        )),
        Err(_) => Err(fail(
            FailureKind::Timeout,
            connection_error(format!(
                "no WebSocket connection to {} within {} ms",
                cfg.base_url,
                cfg.connect_timeout.as_millis()
            )),
            true,
        )),
    }
}

impl Turn {
    /// Runs one connection: sends the init message and the journal, then text as it comes while
    /// handing audio to the caller, until the turn ends or the stream fails.
    async fn stream(&mut self, mut socket: Socket) -> Outcome {
        let cancel = self.worker.cancel.clone();
        let mut messages = vec![self.shared.init.clone()];
        messages.extend(self.journal.iter().cloned());
        for text in messages {
            if let Some(outcome) = self.send(&mut socket, text).await {
                return outcome;
            }
        }
        let keepalive = self.shared.config.keepalive;
        let mut last_sent = Instant::now();
        // Last time anything came from the server (or the end of stream went out).
        let mut last_heard = Instant::now();
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => {
                    close(socket).await;
                    return Outcome::Done;
                }
                _ = self.worker.output.closed() => {
                    close(socket).await;
                    return Outcome::Done;
                }
                input = self.worker.input.recv(), if !self.input_done => {
                    match self.on_input(input) {
                        Some(texts) => {
                            for text in texts {
                                self.journal.push(text.clone());
                                if let Some(outcome) = self.send(&mut socket, text).await {
                                    return outcome;
                                }
                                last_sent = Instant::now();
                            }
                            if self.input_done {
                                last_heard = Instant::now();
                            }
                        }
                        None => {
                            // The turn ended before any text: nothing to speak.
                            close(socket).await;
                            return Outcome::Done;
                        }
                    }
                }
                _ = tokio::time::sleep_until(last_sent + keepalive), if !self.input_done => {
                    tracing::trace!(provider = ElevenLabsTts::NAME, "keepalive");
                    let text = json!({"text": " "}).to_string();
                    if let Some(outcome) = self.send(&mut socket, text).await {
                        return outcome;
                    }
                    last_sent = Instant::now();
                }
                _ = tokio::time::sleep_until(last_heard + ANSWER_TIMEOUT), if self.input_done => {
                    close(socket).await;
                    return self.dropped(&format!(
                        "no answer for {} s after the end of the text",
                        ANSWER_TIMEOUT.as_secs()
                    ));
                }
                frame = socket.next() => {
                    last_heard = Instant::now();
                    if let Some(outcome) = self.on_frame(frame).await {
                        close(socket).await;
                        return outcome;
                    }
                }
            }
        }
    }

    /// The messages for one input item; `None` when the turn ends without any text.
    fn on_input(&mut self, input: Option<TtsInput>) -> Option<Vec<String>> {
        let flush = || json!({"text": " ", "flush": true}).to_string();
        match input {
            Some(TtsInput::Text(text)) => {
                let text = text.trim();
                if text.is_empty() {
                    return Some(Vec::new());
                }
                if !self.spoken.is_empty() {
                    self.spoken.push(' ');
                }
                self.spoken.push_str(text);
                self.unflushed = true;
                Some(vec![json!({
                    "text": format!("{text} "),
                    "try_trigger_generation": false,
                })
                .to_string()])
            }
            Some(TtsInput::Flush) if self.unflushed => {
                self.unflushed = false;
                Some(vec![flush()])
            }
            Some(TtsInput::Flush) => Some(Vec::new()),
            Some(TtsInput::End) | None => {
                self.input_done = true;
                if self.spoken.is_empty() {
                    return None;
                }
                let mut out = Vec::new();
                if self.unflushed {
                    self.unflushed = false;
                    out.push(flush());
                }
                out.push(json!({"text": ""}).to_string());
                Some(out)
            }
        }
    }

    /// Sends one text message; `Some` when the stream broke (or the turn was cancelled).
    async fn send(&mut self, socket: &mut Socket, text: String) -> Option<Outcome> {
        let cancel = self.worker.cancel.clone();
        let sent = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Some(Outcome::Done),
            sent = socket.send(Message::text(text)) => sent,
        };
        let error = sent.err()?;
        // The server may have said why before it went away: read what is left for a moment.
        let deadline = Instant::now() + Duration::from_millis(300);
        while let Ok(frame) = tokio::time::timeout_at(deadline, socket.next()).await {
            if matches!(frame, None | Some(Err(_))) {
                break;
            }
            if let Some(outcome) = self.on_frame(frame).await {
                return Some(outcome);
            }
        }
        Some(self.dropped(&error.to_string()))
    }

    /// Handles one frame from the server; `Some` when this connection is over.
    async fn on_frame(
        &mut self,
        frame: Option<Result<Message, tungstenite::Error>>,
    ) -> Option<Outcome> {
        match frame {
            Some(Ok(Message::Text(text))) => self.on_message(text.as_str()).await,
            Some(Ok(Message::Close(frame))) => {
                let (code, reason) = frame
                    .map(|f| (u16::from(f.code), f.reason.to_string()))
                    .unwrap_or((1005, String::new()));
                if matches!(code, 1000 | 1005) {
                    tracing::debug!(provider = ElevenLabsTts::NAME, "stream closed normally");
                    return Some(Outcome::Done);
                }
                let reason = if reason.trim().is_empty() {
                    None
                } else {
                    Some(reason)
                };
                Some(self.server_error(None, reason.as_deref(), Some(code)))
            }
            // Pings are answered by the socket itself; binary frames are not part of the API.
            Some(Ok(_)) => None,
            Some(Err(e)) => Some(self.dropped(&e.to_string())),
            None => Some(self.dropped("the server closed the connection")),
        }
    }

    /// Handles one JSON message: audio (with alignment), the final message or an error.
    async fn on_message(&mut self, text: &str) -> Option<Outcome> {
        let Ok(Value::Object(msg)) = serde_json::from_str::<Value>(text) else {
            tracing::debug!(
                provider = ElevenLabsTts::NAME,
                "ignoring a message that is not a JSON object"
            );
            return None;
        };
        let audio = msg.get("audio").and_then(Value::as_str);
        let is_final = msg
            .get("isFinal")
            .or_else(|| msg.get("is_final"))
            .and_then(Value::as_bool)
            == Some(true);
        let error = msg.get("error").filter(|e| !e.is_null());
        let message = msg.get("message").and_then(Value::as_str);
        if error.is_some() || (message.is_some() && audio.is_none() && !is_final) {
            let error = error.map(|e| match e {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            let code = msg
                .get("code")
                .and_then(Value::as_u64)
                .and_then(|c| u16::try_from(c).ok());
            return Some(self.server_error(error.as_deref(), message, code));
        }
        let alignment = ["alignment", "normalizedAlignment"]
            .iter()
            .filter_map(|k| msg.get(*k))
            .map(parse_alignment)
            .find(|a| !a.is_empty())
            .unwrap_or_default();
        let bytes = match audio.filter(|a| !a.is_empty()) {
            Some(a) => match base64::engine::general_purpose::STANDARD.decode(a) {
                Ok(bytes) => bytes,
                Err(e) => {
                    return Some(Outcome::Failed(Failure::fatal(
                        FailureKind::Protocol,
                        TtsError::Synthesis {
                            provider: ElevenLabsTts::NAME,
                            text: http::shorten(&self.spoken),
                            reason: format!("the server sent audio that is not base64: {e}"),
                        },
                    )))
                }
            },
            None => Vec::new(),
        };
        if let Some(chunk) = self.audio.push(&bytes, &alignment, self.shared.sample_rate) {
            let cancel = self.worker.cancel.clone();
            let sent = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Some(Outcome::Done),
                sent = self.worker.output.send(Ok(chunk)) => sent,
            };
            if sent.is_err() {
                return Some(Outcome::Done);
            }
            self.delivered = true;
        }
        if is_final {
            tracing::debug!(provider = ElevenLabsTts::NAME, "final message received");
            return Some(Outcome::Done);
        }
        None
    }

    /// A stream that broke without a close frame: retryable until audio was delivered.
    fn dropped(&self, what: &str) -> Outcome {
        let after = if self.delivered {
            "mid-turn, after some audio"
        } else {
            "before any audio"
        };
        Outcome::Failed(Failure::transient(
            FailureKind::Connection,
            connection_error(redact(
                &format!("the ElevenLabs stream dropped {after}: {what}"),
                &self.shared.config,
            )),
        ))
    }

    /// An error reported by the server (an error message or a close code other than 1000).
    fn server_error(
        &self,
        error: Option<&str>,
        message: Option<&str>,
        code: Option<u16>,
    ) -> Outcome {
        let cfg = &self.shared.config;
        let mut detail = match (error, message) {
            (Some(e), Some(m)) if m.contains(e) => m.to_string(),
            (Some(e), Some(m)) => format!("{e}: {m}"),
            (Some(e), None) => e.to_string(),
            (None, Some(m)) => m.to_string(),
            (None, None) => "the server ended the stream".to_string(),
        };
        if let Some(code) = code {
            let meaning = match code {
                1008 => " policy violation",
                1011 => " internal server error",
                _ => "",
            };
            detail.push_str(&format!(" (close code {code}{meaning})"));
        }
        let detail = redact(&detail, cfg);
        let lower = format!("{} {}", error.unwrap_or(""), message.unwrap_or("")).to_lowercase();
        let has = |words: &[&str]| words.iter().any(|w| lower.contains(w));
        let auth = has(&[
            "api key",
            "api_key",
            "apikey",
            "xi-api-key",
            "unauthorized",
            "unauthenticated",
            "authentication",
            "permission",
        ]);
        let error = if auth {
            TtsError::Auth {
                provider: ElevenLabsTts::NAME,
                message: format!("{detail}; check ELEVENLABS_API_KEY"),
            }
        } else {
            let hint = if has(&["quota", "credit", "character limit", "payment", "plan"]) {
                "; check the ElevenLabs account's quota/credits (ELEVENLABS_API_KEY)".to_string()
            } else if has(&["input_timeout", "timeout"]) {
                format!(
                    "; text came too slowly (keepalive every {} ms)",
                    cfg.keepalive.as_millis()
                )
            } else if has(&["voice"]) {
                format!("; check the voice id {:?}", cfg.voice_id)
            } else if has(&["model"]) {
                format!("; check the model id {:?}", cfg.model_id)
            } else {
                String::new()
            };
            TtsError::Synthesis {
                provider: ElevenLabsTts::NAME,
                text: http::shorten(&self.spoken),
                reason: format!("{detail}{hint}"),
            }
        };
        // An internal error before any audio is worth another try.
        let internal = code == Some(1011);
        let kind = if auth {
            FailureKind::AuthRejected
        } else if internal {
            FailureKind::ServerError
        } else {
            FailureKind::Rejected
        };
        Outcome::Failed(Failure::new(kind, error, internal))
    }
}

/// Closes the socket politely without waiting long for the server.
async fn close(mut socket: Socket) {
    let _ = tokio::time::timeout(Duration::from_millis(500), socket.close(None)).await;
}

impl AudioState {
    /// Adds one message's audio and alignment; returns a chunk when it carried audio.
    fn push(
        &mut self,
        bytes: &[u8],
        alignment: &[(String, f64, Option<f64>)],
        rate: u32,
    ) -> Option<TtsChunk> {
        let offset_ms = self.samples as f64 * 1000.0 / f64::from(rate);
        for (i, (text, start, duration)) in alignment.iter().enumerate() {
            let start_ms = offset_ms + start.max(0.0);
            let duration = duration
                .or_else(|| alignment.get(i + 1).map(|next| next.1 - start))
                .unwrap_or(0.0)
                .max(0.0);
            self.pending.push(TimedChar {
                text: text.clone(),
                start_ms,
                end_ms: start_ms + duration,
            });
        }

        let mut data = Vec::with_capacity(bytes.len() + 1);
        data.extend(self.carry.take());
        data.extend_from_slice(bytes);
        if data.len() % 2 == 1 {
            self.carry = data.pop();
        }
        let pcm: Vec<i16> = data
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        if pcm.is_empty() {
            // Keep the alignment for the next message that has audio.
            return None;
        }
        self.samples += pcm.len() as u64;

        let mut chars = std::mem::take(&mut self.pending);
        if self.at_start {
            let visible = chars
                .iter()
                .position(|c| !c.text.trim().is_empty())
                .unwrap_or(chars.len());
            chars.drain(..visible);
            self.at_start = chars.is_empty();
        }
        let text: String = chars.iter().map(|c| c.text.as_str()).collect();
        Some(TtsChunk {
            pcm,
            sample_rate: rate,
            words: group_words(&chars),
            text,
        })
    }
}

/// Words of timed characters: split on whitespace, surrounding punctuation removed (and not
/// counted in the timing); tokens of punctuation only are skipped.
fn group_words(chars: &[TimedChar]) -> Vec<WordTiming> {
    let mut words = Vec::new();
    for token in chars.split(|c| c.text.chars().all(char::is_whitespace)) {
        let first = token.iter().position(|c| c.text.chars().any(is_speakable));
        let last = token.iter().rposition(|c| c.text.chars().any(is_speakable));
        let (Some(first), Some(last)) = (first, last) else {
            continue;
        };
        let core = &token[first..=last];
        let text: String = core.iter().map(|c| c.text.as_str()).collect();
        let text = text.trim_matches(|c: char| !is_speakable(c)).to_string();
        let start = core
            .iter()
            .map(|c| c.start_ms)
            .fold(f64::INFINITY, f64::min);
        let end = core.iter().map(|c| c.end_ms).fold(0.0, f64::max);
        let start_ms = start.round().max(0.0) as u64;
        let end_ms = (end.round().max(0.0) as u64).max(start_ms);
        words.push(WordTiming {
            text,
            start_ms,
            end_ms,
        });
    }
    words
}

/// `(char, start_ms, duration_ms)` of an alignment object (empty when null or malformed).
/// Accepts the `charsDurationsMs` spelling too.
fn parse_alignment(value: &Value) -> Vec<(String, f64, Option<f64>)> {
    let list = |key: &str| value.get(key).and_then(Value::as_array);
    let Some(chars) = list("chars") else {
        return Vec::new();
    };
    let Some(starts) = list("charStartTimesMs") else {
        return Vec::new();
    };
    let durations = list("charDurationsMs").or_else(|| list("charsDurationsMs"));
    chars
        .iter()
        .zip(starts)
        .enumerate()
        .filter_map(|(i, (c, s))| {
            let c = c.as_str()?.to_string();
            let s = s.as_f64().filter(|s| s.is_finite())?;
            let d = durations
                .and_then(|d| d.get(i))
                .and_then(Value::as_f64)
                .filter(|d| d.is_finite());
            Some((c, s, d))
        })
        .collect()
}

fn connection_error(message: String) -> TtsError {
    TtsError::Connection {
        provider: ElevenLabsTts::NAME,
        message,
    }
}

fn http_error(status: u16, message: String) -> TtsError {
    TtsError::Http {
        provider: ElevenLabsTts::NAME,
        status,
        message,
    }
}

fn redact(text: &str, cfg: &ElevenLabsConfig) -> String {
    http::redact(text, &cfg.api_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timed(text: &str, start_ms: f64, end_ms: f64) -> TimedChar {
        TimedChar {
            text: text.to_string(),
            start_ms,
            end_ms,
        }
    }

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

    #[test]
    fn words_group_on_whitespace_without_punctuation() {
        let chars = [
            timed("H", 0.0, 10.0),
            timed("i", 10.0, 20.0),
            timed(",", 20.0, 25.0),
            timed(" ", 25.0, 30.0),
            timed("-", 30.0, 32.0),
            timed(" ", 32.0, 35.0),
            timed("y", 35.0, 40.0),
            timed("o", 40.0, 51.6),
        ];
        let words = group_words(&chars);
        let got: Vec<(&str, u64, u64)> = words
            .iter()
            .map(|w| (w.text.as_str(), w.start_ms, w.end_ms))
            .collect();
        assert_eq!(got, vec![("Hi", 0, 20), ("yo", 35, 52)]);
    }

    #[test]
    fn alignment_accepts_both_spellings_and_null() {
        let a =
            json!({"chars": ["a", "b"], "charStartTimesMs": [0, 5], "charsDurationsMs": [5, 6]});
        assert_eq!(
            parse_alignment(&a),
            vec![("a".into(), 0.0, Some(5.0)), ("b".into(), 5.0, Some(6.0))]
        );
        assert!(parse_alignment(&Value::Null).is_empty());
    }
}
