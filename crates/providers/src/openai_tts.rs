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

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use talkstream_media::wav::{WavEncodings, WavError, WavReader};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::chunker::{has_speakable, is_speakable};
use crate::http::{self, RetryPolicy};
use crate::resample::Resampler;
use crate::retry::{Failure, FailureKind, Next, Retry};
use crate::tts::{
    CheckFuture, TtsChunk, TtsError, TtsInput, TtsProvider, TtsTurn, TurnWorker, WordTiming,
};

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

/// What a request task passes to its turn, in order: audio pieces (at the configured rate), then
/// `Done` or `Failed`.
#[derive(Debug)]
enum Piece {
    Audio(Vec<i16>),
    Done,
    Failed(TtsError),
}

/// A request of a turn, started and not yet fully played.
struct Pending {
    text: String,
    rx: mpsc::UnboundedReceiver<Piece>,
    task: JoinHandle<()>,
    /// A `Done`/`Failed` read while gathering audio, to handle next.
    stash: Option<Piece>,
    /// Samples of this request delivered so far.
    delivered: u64,
}

impl Drop for Pending {
    fn drop(&mut self) {
        // Dropping the task aborts the request (and closes its connection).
        self.task.abort();
    }
}

impl Pending {
    /// The next piece; consecutive audio pieces already received are merged into one.
    /// `None` when the task ended without saying how (it panicked).
    async fn next(&mut self) -> Option<Piece> {
        let first = match self.stash.take() {
            Some(p) => p,
            None => self.rx.recv().await?,
        };
        let Piece::Audio(mut pcm) = first else {
            return Some(first);
        };
        while let Ok(piece) = self.rx.try_recv() {
            match piece {
                Piece::Audio(more) => pcm.extend_from_slice(&more),
                other => {
                    self.stash = Some(other);
                    break;
                }
            }
        }
        Some(Piece::Audio(pcm))
    }
}

/// The front request's next piece; never resolves when nothing is in flight.
async fn next_piece(queue: &mut VecDeque<Pending>) -> Option<Piece> {
    match queue.front_mut() {
        Some(front) => front.next().await,
        None => std::future::pending().await,
    }
}

/// One turn: start a request per text (up to `max_in_flight` ahead) and play their audio in
/// order, until End, input closed, output dropped, an error or cancel.
async fn run_turn(inner: Arc<Inner>, worker: TurnWorker) {
    let TurnWorker {
        mut input,
        output,
        cancel,
    } = worker;
    let rate = inner.config.pcm_rate;
    let max_in_flight = inner.config.max_in_flight;
    // Dropping the queue (any return) aborts every request still running.
    let mut queue: VecDeque<Pending> = VecDeque::new();
    let mut input_open = true;
    let mut turn_samples = 0u64;
    // Once any audio of the turn has reached the caller, no request of the turn is retried.
    let audio_out = Arc::new(AtomicBool::new(false));
    loop {
        if !input_open && queue.is_empty() {
            return;
        }
        let can_start = input_open && queue.len() < max_in_flight;
        let step = tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            _ = output.closed() => return,
            message = input.recv(), if can_start => Step::Input(message),
            piece = next_piece(&mut queue) => Step::Piece(piece),
        };
        match step {
            Step::Input(None | Some(TtsInput::End)) => input_open = false,
            // Each text is requested as soon as it arrives: nothing to flush.
            Step::Input(Some(TtsInput::Flush)) => {}
            Step::Input(Some(TtsInput::Text(text))) => {
                if !has_speakable(&text) {
                    continue;
                }
                let (tx, rx) = mpsc::unbounded_channel();
                let task = tokio::spawn(fetch(inner.clone(), text.clone(), tx, audio_out.clone()));
                queue.push_back(Pending {
                    text,
                    rx,
                    task,
                    stash: None,
                    delivered: 0,
                });
            }
            Step::Piece(piece) => {
                let Some(front) = queue.front_mut() else {
                    continue;
                };
                let item = match piece {
                    Some(Piece::Audio(pcm)) => {
                        let mut chunk = TtsChunk {
                            pcm,
                            sample_rate: rate,
                            words: Vec::new(),
                            text: String::new(),
                        };
                        audio_out.store(true, Ordering::SeqCst);
                        if front.delivered == 0 {
                            let offset_ms = turn_samples * 1000 / u64::from(rate);
                            chunk.text = front.text.trim().to_string();
                            chunk.words = estimate_words(
                                &front.text,
                                offset_ms,
                                inner.us_per_char.load(Ordering::Relaxed),
                            );
                        }
                        front.delivered += chunk.pcm.len() as u64;
                        turn_samples += chunk.pcm.len() as u64;
                        Ok(chunk)
                    }
                    Some(Piece::Done) => {
                        if front.delivered == 0 {
                            tracing::warn!(
                                text = %http::shorten(&front.text),
                                "openai TTS: the server answered without audio"
                            );
                        } else {
                            inner.learn(&front.text, front.delivered * 1000 / u64::from(rate));
                        }
                        queue.pop_front();
                        continue;
                    }
                    Some(Piece::Failed(e)) => Err(e),
                    None => Err(TtsError::Worker {
                        provider: OpenAiTts::NAME,
                        reason: "a request task ended unexpectedly".to_string(),
                    }),
                };
                let failed = item.is_err();
                let sent = tokio::select! {
                    biased;
                    _ = cancel.cancelled() => return,
                    sent = output.send(item) => sent,
                };
                if sent.is_err() || failed {
                    return;
                }
            }
        }
    }
}

enum Step {
    Input(Option<TtsInput>),
    Piece(Option<Piece>),
}

/// Why an attempt failed, and whether another may follow.
type AttemptError = Failure<TtsError>;

/// Requests `text` (with retries) and sends its audio to `tx`, then `Done` or `Failed`.
async fn fetch(
    inner: Arc<Inner>,
    text: String,
    tx: mpsc::UnboundedSender<Piece>,
    turn_audio_out: Arc<AtomicBool>,
) {
    let mut retry = Retry::new(inner.config.retry, OpenAiTts::NAME);
    loop {
        let mut sent_audio = false;
        let result = inner.attempt(&text, &tx, &mut sent_audio).await;
        let failure = match result {
            Ok(()) => {
                let _ = tx.send(Piece::Done);
                return;
            }
            Err(failure) => failure,
        };
        let reached = sent_audio || turn_audio_out.load(Ordering::SeqCst);
        match retry.after(failure, reached).await {
            Next::Again => {}
            Next::Fail(failure) => {
                let _ = tx.send(Piece::Failed(failure.error));
                return;
            }
            Next::Cancelled => return,
        }
    }
}

impl Inner {
    /// `text` with the API key removed.
    fn redact(&self, text: &str) -> String {
        match &self.config.api_key {
            Some(key) => http::redact(text, key),
            None => text.to_string(),
        }
    }

    fn connection_error(&self, message: String) -> TtsError {
        TtsError::Connection {
            provider: OpenAiTts::NAME,
            message: self.redact(&message),
        }
    }

    /// One request; audio pieces go to `tx` as they are decoded (`sent_audio` turns true with
    /// the first).
    async fn attempt(
        &self,
        text: &str,
        tx: &mpsc::UnboundedSender<Piece>,
        sent_audio: &mut bool,
    ) -> Result<(), AttemptError> {
        let cfg = &self.config;
        let body = SpeechRequest {
            model: cfg.model.trim(),
            input: text,
            voice: cfg.voice.trim(),
            response_format: cfg.response_format.as_str(),
            speed: cfg.speed,
        };
        let json = serde_json::to_vec(&body).map_err(|e| {
            AttemptError::fatal(
                FailureKind::Protocol,
                TtsError::Synthesis {
                    provider: OpenAiTts::NAME,
                    text: http::shorten(text),
                    reason: format!("cannot encode the request: {e}"),
                },
            )
        })?;
        let mut request = self
            .client
            .post(&self.url)
            .header(reqwest::header::ACCEPT, "application/octet-stream")
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(json);
        if let Some(key) = &cfg.api_key {
            request = request.bearer_auth(key.trim());
        }
        tracing::debug!(url = %self.url, chars = text.chars().count(), "openai TTS: request");
        let response = match tokio::time::timeout(cfg.timeout, request.send()).await {
            Err(_) => {
                return Err(AttemptError::transient(
                    FailureKind::Timeout,
                    self.connection_error(format!(
                        "no answer from {} within {} s",
                        self.url,
                        cfg.timeout.as_secs_f32()
                    )),
                ))
            }
            Ok(Err(e)) => {
                return Err(AttemptError::transient(
                    FailureKind::Connection,
                    self.connection_error(format!("{}: {}", self.url, describe(&e))),
                ))
            }
            Ok(Ok(response)) => response,
        };
        let status = response.status().as_u16();
        if !response.status().is_success() {
            return Err(self.status_error(response).await);
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.starts_with("application/json") || content_type.starts_with("text/") {
            // An error (or something else) sent with a success status: do not play it.
            let body = self.read_error_body(response).await;
            return Err(AttemptError::fatal(
                FailureKind::Protocol,
                TtsError::Synthesis {
                    provider: OpenAiTts::NAME,
                    text: http::shorten(text),
                    reason: self.redact(&format!(
                        "HTTP {status} with {content_type} instead of audio: {}",
                        http::error_message(&body)
                    )),
                },
            ));
        }
        let wav = content_type.contains("wav")
            || (cfg.response_format == OpenAiTtsFormat::Wav
                && !content_type.starts_with("audio/pcm")
                && !content_type.starts_with("audio/l16"));
        let mut decoder = if wav {
            Decoder::Wav(WavReader::new(WavEncodings::Pcm16))
        } else {
            Decoder::Pcm {
                rate: content_type_rate(&content_type).unwrap_or(cfg.pcm_rate),
                carry: Vec::new(),
            }
        };
        let mut resampler: Option<Resampler> = None;
        let mut stream = response.bytes_stream();
        let mut samples = Vec::new();
        loop {
            let next = match tokio::time::timeout(cfg.timeout, stream.next()).await {
                Err(_) => Err(format!(
                    "the audio stopped: no data for {} s",
                    cfg.timeout.as_secs_f32()
                )),
                Ok(None) => break,
                Ok(Some(Err(e))) => Err(format!("the audio broke off: {}", describe(&e))),
                Ok(Some(Ok(bytes))) => Ok(bytes),
            };
            let bytes = next.map_err(|message| {
                AttemptError::transient(FailureKind::Connection, self.connection_error(message))
            })?;
            samples.clear();
            decoder.push(&bytes, &mut samples).map_err(|e| {
                AttemptError::fatal(
                    FailureKind::Protocol,
                    TtsError::Synthesis {
                        provider: OpenAiTts::NAME,
                        text: http::shorten(text),
                        reason: format!("the answer is not usable audio: {e}"),
                    },
                )
            })?;
            if samples.is_empty() {
                continue;
            }
            let pcm = self.convert(&mut resampler, decoder.rate(), &samples, text)?;
            if !pcm.is_empty() {
                *sent_audio = true;
                // The turn may be gone (cancelled); the task is aborted soon anyway.
                let _ = tx.send(Piece::Audio(pcm));
            }
        }
        if let Some(rate) = decoder.rate() {
            tracing::debug!(rate, "openai TTS: audio complete");
        } else if wav {
            return Err(AttemptError::fatal(
                FailureKind::Protocol,
                TtsError::Synthesis {
                    provider: OpenAiTts::NAME,
                    text: http::shorten(text),
                    reason: "the WAV answer ended before its audio data".to_string(),
                },
            ));
        }
        if decoder.leftover() > 0 {
            tracing::debug!(
                bytes = decoder.leftover(),
                "openai TTS: incomplete last sample dropped"
            );
        }
        if let Some(r) = resampler.as_mut() {
            let tail = r.finish();
            if !tail.is_empty() {
                *sent_audio = true;
                let _ = tx.send(Piece::Audio(tail));
            }
        }
        Ok(())
    }

    /// `samples` at the configured rate (a resampler is made on first need).
    fn convert(
        &self,
        resampler: &mut Option<Resampler>,
        rate: Option<u32>,
        samples: &[i16],
        text: &str,
    ) -> Result<Vec<i16>, AttemptError> {
        let target = self.config.pcm_rate;
        let rate = rate.unwrap_or(target);
        if rate == target {
            return Ok(samples.to_vec());
        }
        if resampler.is_none() {
            tracing::debug!(
                from = rate,
                to = target,
                "openai TTS: resampling the server's audio"
            );
            let r = Resampler::new(rate, target).map_err(|e| {
                AttemptError::fatal(
                    FailureKind::Protocol,
                    TtsError::Synthesis {
                        provider: OpenAiTts::NAME,
                        text: http::shorten(text),
                        reason: format!("cannot resample {rate} Hz audio: {e}"),
                    },
                )
            })?;
            *resampler = Some(r);
        }
        Ok(resampler
            .as_mut()
            .map(|r| r.process(samples))
            .unwrap_or_default())
    }

    /// The error for a non-success answer.
    async fn status_error(&self, response: reqwest::Response) -> AttemptError {
        let status = response.status().as_u16();
        let retry_after = http::retry_after(response.headers());
        let body = self.read_error_body(response).await;
        let message = self.redact(&http::error_message(&body));
        match status {
            401 | 403 => AttemptError::fatal(
                FailureKind::AuthRejected,
                TtsError::Auth {
                    provider: OpenAiTts::NAME,
                    message: format!(
                        "HTTP {status}: {message} (check TTS_API_KEY and TTS_BASE_URL {})",
                        self.config.base_url.trim()
                    ),
                },
            ),
            _ => {
                let message = if status == 404 {
                    format!(
                        "{message} (is TTS_BASE_URL right? the request went to {})",
                        self.url
                    )
                } else {
                    message
                };
                let error = TtsError::Http {
                    provider: OpenAiTts::NAME,
                    status,
                    message,
                };
                let retryable = http::is_retryable_status(status);
                AttemptError::new(FailureKind::from_status(status), error, retryable)
                    .with_retry_after(retry_after)
            }
        }
    }

    /// Up to [`ERROR_BODY_LIMIT`] bytes of a body as text (empty when it cannot be read).
    async fn read_error_body(&self, response: reqwest::Response) -> String {
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while body.len() < ERROR_BODY_LIMIT {
            match tokio::time::timeout(self.config.timeout, stream.next()).await {
                Ok(Some(Ok(bytes))) => body.extend_from_slice(&bytes),
                _ => break,
            }
        }
        body.truncate(ERROR_BODY_LIMIT);
        String::from_utf8_lossy(&body).into_owned()
    }

    /// Updates the speaking-time estimate from an answer of `ms` milliseconds for `text`.
    fn learn(&self, text: &str, ms: u64) {
        let chars = text_weight(text);
        if chars < 8 || ms == 0 {
            return;
        }
        let observed = (ms as f64 * 1000.0 / chars as f64).clamp(15_000.0, 400_000.0);
        let old = f64::from(self.us_per_char.load(Ordering::Relaxed));
        let new = (old * 0.5 + observed * 0.5).round() as u32;
        self.us_per_char.store(new, Ordering::Relaxed);
    }
}

/// The JSON body: standard fields only.
#[derive(serde::Serialize)]
struct SpeechRequest<'a> {
    model: &'a str,
    input: &'a str,
    voice: &'a str,
    response_format: &'a str,
    speed: f32,
}

/// The `rate=` parameter of a Content-Type such as `audio/pcm;rate=22050`.
fn content_type_rate(content_type: &str) -> Option<u32> {
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
enum Decoder {
    /// Raw s16le mono; `carry` holds an odd trailing byte.
    Pcm {
        rate: u32,
        carry: Vec<u8>,
    },
    Wav(WavReader),
}

impl Decoder {
    fn push(&mut self, bytes: &[u8], out: &mut Vec<i16>) -> Result<(), WavError> {
        match self {
            Self::Pcm { carry, .. } => {
                decode_s16(bytes, carry, out);
                Ok(())
            }
            Self::Wav(wav) => wav.push(bytes, out),
        }
    }

    /// The audio's rate, once known.
    fn rate(&self) -> Option<u32> {
        match self {
            Self::Pcm { rate, .. } => Some(*rate),
            Self::Wav(wav) => wav.format().map(|f| f.sample_rate),
        }
    }

    /// Bytes of an incomplete last sample.
    fn leftover(&self) -> usize {
        match self {
            Self::Pcm { carry, .. } => carry.len(),
            Self::Wav(wav) => wav.leftover(),
        }
    }
}

/// Decodes raw mono s16le samples from `carry` + `bytes`; an odd last byte stays in `carry`.
fn decode_s16(bytes: &[u8], carry: &mut Vec<u8>, out: &mut Vec<i16>) {
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
fn text_weight(text: &str) -> usize {
    written_words(text).map(|w| w.chars().count() + 1).sum()
}

/// Words of `text` without surrounding punctuation.
fn written_words(text: &str) -> impl Iterator<Item = &str> {
    text.split_whitespace()
        .map(|t| t.trim_matches(|c: char| !is_speakable(c)))
        .filter(|t| !t.is_empty())
}

/// The words of `text` spread, in proportion to their length, over an estimated duration
/// starting at `offset_ms`.
fn estimate_words(text: &str, offset_ms: u64, us_per_char: u32) -> Vec<WordTiming> {
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

/// The source chain of a `reqwest` error as one line (its own text is terse).
fn describe(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
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
