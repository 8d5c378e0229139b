//! OpenAI-style streaming chat completions (`POST {base}/chat/completions` with `stream: true`),
//! for OpenAI itself and the compatible servers: OpenRouter, Ollama (`/v1`), llama.cpp
//! `llama-server`, vLLM and the like.
//!
//! The answer arrives as server-sent events. [`SseParser`] is a pure incremental parser (bytes
//! in, events out) that copes with what those servers really send: any of the three line
//! endings, lines split anywhere across network reads (even inside a UTF-8 character), comment
//! lines (OpenRouter's `: OPENROUTER PROCESSING`, llama.cpp pings), multi-line data, llama.cpp's
//! non-standard `error:` field, `data: [DONE]` or just the end of the body. Each event's JSON
//! yields the text of `choices[0].delta.content`; an `error` object inside a 200 stream ends the
//! answer with [`LlmError::Stream`] carrying the provider's message.
//!
//! Failures before the first text fragment (retryable statuses 408/409/429/5xx, connection
//! errors, a connection dropped before any text) are retried per [`RetryPolicy`], honouring
//! `Retry-After`; once text has been handed out a failure ends the answer with an error, so no
//! text is ever repeated. The API key never appears in an error or a log line.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::http::{self, RetryPolicy};
use crate::llm::{ChatMessage, LlmError, LlmItem, LlmProvider, LlmTurn};
use crate::retry::{self, FailureKind, Next, Retry};
use crate::tts::CheckFuture;

const PROVIDER: &str = "openai";
/// Time allowed to open the TCP/TLS connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest error or non-streaming body read, in bytes.
const MAX_BODY_BYTES: usize = 1 << 20;

/// Settings of [`OpenAiChat`].
#[derive(Clone, PartialEq)]
pub struct OpenAiChatConfig {
    /// Bearer token. `None` (or empty) sends no `Authorization` header (Ollama, llama.cpp).
    pub api_key: Option<String>,
    /// API base URL up to and including the version, with or without a trailing `/`:
    /// `https://api.openai.com/v1`, `https://openrouter.ai/api/v1`, `http://localhost:11434/v1`.
    pub base_url: String,
    /// Model name.
    pub model: String,
    /// Sampling temperature, 0–2.
    pub temperature: f32,
    /// Longest answer in tokens (`max_tokens`, which every compatible server reads). 0 leaves the
    /// field out (the server's default).
    pub max_tokens: u32,
    /// Retries of requests that failed before any text came out.
    pub retry: RetryPolicy,
    /// Longest wait for the first text fragment of an attempt (a model may be loading), and for
    /// any data once the answer has started (a stalled stream).
    pub first_token_timeout: Duration,
}

impl Default for OpenAiChatConfig {
    fn default() -> Self {
        Self {
            api_key: None,
            base_url: "https://api.openai.com/v1".into(),
            model: "gpt-4o-mini".into(),
            temperature: 0.7,
            max_tokens: 400,
            retry: RetryPolicy::default(),
            first_token_timeout: Duration::from_secs(60),
        }
    }
}

impl std::fmt::Debug for OpenAiChatConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiChatConfig")
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("temperature", &self.temperature)
            .field("max_tokens", &self.max_tokens)
            .field("retry", &self.retry)
            .field("first_token_timeout", &self.first_token_timeout)
            .finish()
    }
}

/// An OpenAI-compatible streaming chat provider. Cheap to clone (shared client).
#[derive(Clone)]
pub struct OpenAiChat {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for OpenAiChat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiChat")
            .field("base_url", &self.inner.base_url)
            .field("model", &self.inner.model)
            .field(
                "api_key",
                &self.inner.api_key.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

struct Inner {
    client: reqwest::Client,
    base_url: String,
    chat_url: String,
    models_url: String,
    model: String,
    api_key: Option<String>,
    auth: Option<HeaderValue>,
    temperature: f32,
    max_tokens: u32,
    retry: RetryPolicy,
    first_token_timeout: Duration,
}

/// The JSON body of a chat request: only fields every compatible server accepts.
#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: &'a [ChatMessage],
    stream: bool,
    temperature: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> LlmError {
    LlmError::InvalidConfig {
        provider: PROVIDER,
        field,
        reason: reason.into(),
    }
}

impl OpenAiChat {
    /// Checks the settings and builds the HTTP client. Makes no request.
    pub fn new(cfg: OpenAiChatConfig) -> Result<Self, LlmError> {
        let base = cfg.base_url.trim().trim_end_matches('/').to_string();
        let url = reqwest::Url::parse(&base).map_err(|e| {
            invalid(
                "base_url",
                format!("{base:?} is not a URL ({e}); expected e.g. https://api.openai.com/v1"),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(
                "base_url",
                format!("{base:?} must start with http:// or https://"),
            ));
        }
        if cfg.model.trim().is_empty() {
            return Err(invalid("model", "must not be empty"));
        }
        if !cfg.temperature.is_finite() || !(0.0..=2.0).contains(&cfg.temperature) {
            return Err(invalid(
                "temperature",
                format!("{} is outside 0–2", cfg.temperature),
            ));
        }
        if cfg.first_token_timeout.is_zero() {
            return Err(invalid("first_token_timeout", "must be longer than zero"));
        }
        let api_key = cfg
            .api_key
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty());
        let auth = match &api_key {
            Some(key) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                    invalid(
                        "api_key",
                        "contains characters not allowed in an HTTP header (check OPENAI_API_KEY)",
                    )
                })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let client = http::client(CONNECT_TIMEOUT).map_err(|e| LlmError::Worker {
            provider: PROVIDER,
            reason: format!("cannot build the HTTP client: {e}"),
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                chat_url: format!("{base}/chat/completions"),
                models_url: format!("{base}/models"),
                base_url: base,
                model: cfg.model.trim().to_string(),
                api_key,
                auth,
                temperature: cfg.temperature,
                max_tokens: cfg.max_tokens,
                retry: cfg.retry,
                first_token_timeout: cfg.first_token_timeout,
            }),
        })
    }

    /// The API base URL (without a trailing `/`).
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// Proves the service is reachable and accepts the credentials, cheaply: `GET {base}/models`;
    /// when that is missing (404/405), does not list the model, or is public (OpenRouter), a
    /// one-token chat request. Returns a one-line description for `talkstream check`.
    pub async fn check(&self) -> Result<String, LlmError> {
        self.inner.check().await
    }
}

impl LlmProvider for OpenAiChat {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn model(&self) -> &str {
        &self.inner.model
    }

    fn describe(&self) -> String {
        format!("{} at {}", self.inner.model, self.inner.base_url)
    }

    fn check(&self) -> CheckFuture<'_, LlmError> {
        Box::pin(OpenAiChat::check(self))
    }

    fn start_turn(&self, messages: Vec<ChatMessage>, cancel: CancellationToken) -> LlmTurn {
        if messages.is_empty() {
            return LlmTurn::failed(
                cancel,
                invalid("messages", "at least one message is needed"),
            );
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return LlmTurn::failed(
                cancel,
                LlmError::Worker {
                    provider: PROVIDER,
                    reason: "start_turn was called outside a tokio runtime".into(),
                },
            );
        };
        let (turn, tx) = LlmTurn::channel(cancel.clone());
        let inner = Arc::clone(&self.inner);
        handle.spawn(async move { inner.run_turn(messages, tx, cancel).await });
        turn
    }
}

/// Why an attempt failed, and whether another attempt may help.
type Failure = retry::Failure<LlmError>;

impl Inner {
    fn redact(&self, text: &str) -> String {
        match &self.api_key {
            Some(key) => http::redact(text, key),
            None => text.to_string(),
        }
    }

    /// A reqwest error with its causes ("connection refused" lives in the source chain).
    fn describe(&self, e: &reqwest::Error) -> String {
        let mut out = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !out.ends_with(&text) {
                out.push_str(": ");
                out.push_str(&text);
            }
            source = cause.source();
        }
        self.redact(&out)
    }

    fn first_token_timeout_error(&self) -> LlmError {
        LlmError::Connection {
            provider: PROVIDER,
            message: format!(
                "no answer from {} within {:.0} s (first_token_timeout); the model may still be \
                 loading or the server is overloaded",
                self.base_url,
                self.first_token_timeout.as_secs_f64()
            ),
        }
    }

    fn body(&self, messages: &[ChatMessage], stream: bool, max_tokens: u32) -> Vec<u8> {
        let request = ChatRequest {
            model: &self.model,
            messages,
            stream,
            temperature: self.temperature,
            max_tokens: (max_tokens > 0).then_some(max_tokens),
        };
        // Serializing strings and numbers cannot fail; an empty body would be rejected visibly.
        serde_json::to_vec(&request).unwrap_or_default()
    }

    fn post(&self, url: &str, body: Vec<u8>, accept: &'static str) -> reqwest::RequestBuilder {
        let mut req = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, accept)
            .body(body);
        if let Some(auth) = &self.auth {
            req = req.header(AUTHORIZATION, auth.clone());
        }
        req
    }

    async fn run_turn(
        self: Arc<Self>,
        messages: Vec<ChatMessage>,
        tx: mpsc::Sender<LlmItem>,
        cancel: CancellationToken,
    ) {
        let body = self.body(&messages, true, self.max_tokens);
        let result = tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                // Dropping the answer future drops the response, which closes the connection.
                tracing::debug!(provider = PROVIDER, "answer cancelled; request aborted");
                return;
            }
            result = self.answer(&body, &tx) => result,
        };
        if let Err(error) = result {
            tracing::warn!(provider = PROVIDER, model = %self.model, "{error}");
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = tx.send(Err(error)) => {}
            }
        }
    }

    /// Runs attempts until one succeeds, fails for good, or fails after text came out (the
    /// rule of [`Retry`]).
    async fn answer(&self, body: &[u8], tx: &mpsc::Sender<LlmItem>) -> Result<(), LlmError> {
        let mut retry = Retry::new(self.retry, PROVIDER);
        loop {
            let mut emitted = false;
            let failure = match self.attempt(body, tx, &mut emitted).await {
                Ok(()) => return Ok(()),
                Err(failure) => failure,
            };
            if !emitted && failure.retryable && tx.is_closed() {
                // Nobody reads the answer any more.
                return Ok(());
            }
            match retry.after(failure, emitted).await {
                Next::Again => {}
                Next::Fail(failure) => return Err(failure.error),
                Next::Cancelled => return Ok(()),
            }
        }
    }

    /// One request. Sets `emitted` once a text fragment has been handed to the caller.
    async fn attempt(
        &self,
        body: &[u8],
        tx: &mpsc::Sender<LlmItem>,
        emitted: &mut bool,
    ) -> Result<(), Failure> {
        let deadline = Instant::now() + self.first_token_timeout;
        let request = self.post(&self.chat_url, body.to_vec(), "text/event-stream");
        let mut resp = match tokio::time::timeout_at(deadline, request.send()).await {
            Err(_) => {
                return Err(Failure::fatal(
                    FailureKind::Timeout,
                    self.first_token_timeout_error(),
                ))
            }
            Ok(Err(e)) => {
                return Err(Failure::transient(
                    FailureKind::Connection,
                    LlmError::Connection {
                        provider: PROVIDER,
                        message: self.describe(&e),
                    },
                ))
            }
            Ok(Ok(resp)) => resp,
        };
        if !resp.status().is_success() {
            return Err(self.status_failure(resp, deadline).await);
        }
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.starts_with("application/json") {
            return self.non_streaming_answer(resp, deadline, tx, emitted).await;
        }
        if content_type.starts_with("text/html") {
            return Err(Failure::fatal(
                FailureKind::Protocol,
                LlmError::Protocol {
                    provider: PROVIDER,
                    message: format!(
                    "{} answered with an HTML page, not an event stream (check OPENAI_BASE_URL; \
                     it usually ends in /v1)",
                    self.chat_url
                ),
                },
            ));
        }

        let mut parser = SseParser::new();
        let mut events = Vec::new();
        loop {
            let next = if *emitted {
                tokio::time::timeout(self.first_token_timeout, resp.chunk()).await
            } else {
                tokio::time::timeout_at(deadline, resp.chunk()).await
            };
            let at_end = match next {
                Err(_) if *emitted => {
                    return Err(Failure::fatal(
                        FailureKind::Timeout,
                        LlmError::Stream {
                            provider: PROVIDER,
                            message: format!(
                                "no data for {:.0} s; the answer stream stalled",
                                self.first_token_timeout.as_secs_f64()
                            ),
                        },
                    ))
                }
                Err(_) => {
                    return Err(Failure::fatal(
                        FailureKind::Timeout,
                        self.first_token_timeout_error(),
                    ))
                }
                Ok(Err(e)) => {
                    // Retried only when no text came out yet (see `answer`).
                    return Err(Failure::transient(
                        FailureKind::Connection,
                        LlmError::Stream {
                            provider: PROVIDER,
                            message: format!(
                                "the connection broke mid-answer: {}",
                                self.describe(&e)
                            ),
                        },
                    ));
                }
                Ok(Ok(Some(bytes))) => {
                    parser.feed(&bytes, &mut events);
                    false
                }
                Ok(Ok(None)) => {
                    parser.finish(&mut events);
                    true
                }
            };
            for event in events.drain(..) {
                match interpret(&event) {
                    Step::Text(text) => {
                        *emitted = true;
                        if tx.send(Ok(text)).await.is_err() {
                            // The caller dropped the turn: stop reading (closes the connection).
                            return Ok(());
                        }
                    }
                    Step::Skip => {}
                    Step::Done => return Ok(()),
                    Step::Failed { message, retryable } => {
                        let error = LlmError::Stream {
                            provider: PROVIDER,
                            message: self.redact(&message),
                        };
                        return Err(Failure::new(stream_error_kind(retryable), error, retryable));
                    }
                    Step::Invalid(message) => {
                        return Err(Failure::fatal(
                            FailureKind::Protocol,
                            LlmError::Protocol {
                                provider: PROVIDER,
                                message: self.redact(&message),
                            },
                        ))
                    }
                }
            }
            if at_end {
                // Older llama.cpp builds end without `[DONE]`: the end of the body ends the answer.
                return Ok(());
            }
        }
    }

    /// A server that ignored `stream: true` and sent one JSON completion (or a JSON error with
    /// status 200).
    async fn non_streaming_answer(
        &self,
        resp: reqwest::Response,
        deadline: Instant,
        tx: &mpsc::Sender<LlmItem>,
        emitted: &mut bool,
    ) -> Result<(), Failure> {
        let text = match read_body(resp, deadline).await {
            Ok(text) => text,
            Err(e) => {
                return Err(Failure::transient(
                    FailureKind::Connection,
                    LlmError::Stream {
                        provider: PROVIDER,
                        message: format!("reading the answer failed: {}", self.describe(&e)),
                    },
                ))
            }
        };
        let value: Value = serde_json::from_str(&text).map_err(|e| {
            Failure::fatal(
                FailureKind::Protocol,
                LlmError::Protocol {
                    provider: PROVIDER,
                    message: self.redact(&format!("invalid JSON answer ({e}): {}", shorten(&text))),
                },
            )
        })?;
        if truthy(value.get("error")) {
            let retryable = error_is_retryable(&value);
            let error = LlmError::Stream {
                provider: PROVIDER,
                message: self.redact(&http::error_message(&text)),
            };
            return Err(Failure::new(stream_error_kind(retryable), error, retryable));
        }
        let content = first_choice(&value)
            .and_then(|c| c.get("message"))
            .and_then(|m| m.get("content"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        if let Some(content) = content {
            *emitted = true;
            let _ = tx.send(Ok(content.to_string())).await;
        }
        Ok(())
    }

    /// Maps a non-2xx response to an error, reading the provider's message from the body.
    async fn status_failure(&self, resp: reqwest::Response, deadline: Instant) -> Failure {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = read_body(resp, deadline).await.unwrap_or_default();
        let error = self.status_error(status, &body);
        let retryable = match error {
            LlmError::RateLimited { .. } | LlmError::Http { .. } => {
                should_retry(&headers).unwrap_or_else(|| http::is_retryable_status(status))
            }
            _ => false,
        };
        let kind = match error {
            LlmError::Quota { .. } => FailureKind::Quota,
            _ => FailureKind::from_status(status),
        };
        Failure::new(kind, error, retryable).with_retry_after(http::retry_after(&headers))
    }

    fn status_error(&self, status: u16, body: &str) -> LlmError {
        let message = self.redact(&http::error_message(body));
        match status {
            401 | 403 => LlmError::Auth {
                provider: PROVIDER,
                status,
                message,
            },
            402 => LlmError::Quota {
                provider: PROVIDER,
                message,
            },
            429 if body.contains("insufficient_quota") => LlmError::Quota {
                provider: PROVIDER,
                message,
            },
            429 => LlmError::RateLimited {
                provider: PROVIDER,
                message: format!("HTTP 429: {message}"),
            },
            404 => LlmError::Http {
                provider: PROVIDER,
                status,
                message: format!(
                    "{message} (check OPENAI_BASE_URL, which usually ends in /v1, and that the \
                     model {:?} exists there)",
                    self.model
                ),
            },
            _ => LlmError::Http {
                provider: PROVIDER,
                status,
                message,
            },
        }
    }

    async fn check(&self) -> Result<String, LlmError> {
        let deadline = Instant::now() + self.first_token_timeout;
        let mut req = self
            .client
            .get(&self.models_url)
            .header(ACCEPT, "application/json");
        if let Some(auth) = &self.auth {
            req = req.header(AUTHORIZATION, auth.clone());
        }
        let resp = self.send_before(req, deadline).await?;
        let status = resp.status().as_u16();
        if matches!(status, 404 | 405) {
            return self.check_chat("the models list is not available").await;
        }
        let body = read_body(resp, deadline)
            .await
            .map_err(|e| LlmError::Connection {
                provider: PROVIDER,
                message: self.describe(&e),
            })?;
        if !(200..300).contains(&status) {
            return Err(self.status_error(status, &body));
        }
        let ids: Vec<String> = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.get("data").and_then(Value::as_array).cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|m| m.get("id").and_then(Value::as_str).map(str::to_string))
            .collect();
        let listed = ids
            .iter()
            .any(|id| id == &self.model || id.strip_suffix(":latest") == Some(self.model.as_str()));
        let public_listing = reqwest::Url::parse(&self.base_url)
            .ok()
            .and_then(|u| u.host_str().map(|h| h.ends_with("openrouter.ai")))
            .unwrap_or(false);
        if !listed || public_listing {
            let note = if listed {
                format!("{} models listed", ids.len())
            } else {
                format!(
                    "{} models listed, {:?} not among them",
                    ids.len(),
                    self.model
                )
            };
            return self.check_chat(&note).await;
        }
        Ok(format!(
            "{PROVIDER} LLM at {}: reachable, credentials accepted, model {} available ({} models listed)",
            self.base_url,
            self.model,
            ids.len()
        ))
    }

    /// A one-token, non-streaming chat request: proves the credentials and the model.
    async fn check_chat(&self, note: &str) -> Result<String, LlmError> {
        let deadline = Instant::now() + self.first_token_timeout;
        let body = self.body(&[ChatMessage::user("Say OK.")], false, 1);
        let resp = self
            .send_before(
                self.post(&self.chat_url, body, "application/json"),
                deadline,
            )
            .await?;
        let status = resp.status().as_u16();
        let text = read_body(resp, deadline).await.unwrap_or_default();
        if !(200..300).contains(&status) {
            return Err(self.status_error(status, &text));
        }
        Ok(format!(
            "{PROVIDER} LLM at {}: reachable, model {} answered a test request ({note})",
            self.base_url, self.model
        ))
    }

    async fn send_before(
        &self,
        req: reqwest::RequestBuilder,
        deadline: Instant,
    ) -> Result<reqwest::Response, LlmError> {
        match tokio::time::timeout_at(deadline, req.send()).await {
            Err(_) => Err(self.first_token_timeout_error()),
            Ok(Err(e)) => Err(LlmError::Connection {
                provider: PROVIDER,
                message: self.describe(&e),
            }),
            Ok(Ok(resp)) => Ok(resp),
        }
    }
}

/// The kind of an error object inside an answer: the service's trouble when it says a retry may
/// help, else a refusal.
fn stream_error_kind(retryable: bool) -> FailureKind {
    if retryable {
        FailureKind::ServerError
    } else {
        FailureKind::Rejected
    }
}

/// `Some(true/false)` when the server says whether a retry makes sense (`x-should-retry`).
fn should_retry(headers: &HeaderMap) -> Option<bool> {
    match headers.get("x-should-retry")?.to_str().ok()?.trim() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// Reads at most [`MAX_BODY_BYTES`] of a body before `deadline` (a timeout yields what came).
async fn read_body(
    mut resp: reqwest::Response,
    deadline: Instant,
) -> Result<String, reqwest::Error> {
    let mut buf = Vec::new();
    while buf.len() < MAX_BODY_BYTES {
        match tokio::time::timeout_at(deadline, resp.chunk()).await {
            Err(_) | Ok(Ok(None)) => break,
            Ok(Ok(Some(bytes))) => buf.extend_from_slice(&bytes),
            Ok(Err(e)) if buf.is_empty() => return Err(e),
            Ok(Err(_)) => break,
        }
    }
    buf.truncate(MAX_BODY_BYTES);
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// At most 200 characters of `text`, for messages.
fn shorten(text: &str) -> String {
    let mut out: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        out.push('…');
    }
    out
}

/// Python-like truthiness of an optional JSON value (null, false, "", 0, [] and {} are false).
fn truthy(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

/// Whether an error object inside a stream is worth another attempt (before any text came out):
/// a numeric retryable code (OpenRouter) or OpenAI's `server_error` type.
fn error_is_retryable(value: &Value) -> bool {
    let Some(error) = value.get("error") else {
        return false;
    };
    let code = error.get("code").and_then(|c| {
        c.as_u64()
            .or_else(|| c.as_str().and_then(|s| s.parse().ok()))
    });
    if let Some(code) = code.and_then(|c| u16::try_from(c).ok()) {
        return http::is_retryable_status(code);
    }
    error.get("type").and_then(Value::as_str) == Some("server_error")
}

/// The choice with index 0 (or without an index), if any.
fn first_choice(value: &Value) -> Option<&Value> {
    value
        .get("choices")?
        .as_array()?
        .iter()
        .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
}

/// What one server-sent event means for the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// A text fragment to hand out.
    Text(String),
    /// Nothing to say (role-only delta, empty or null content, usage chunk, finish chunk).
    Skip,
    /// `[DONE]`: the answer is complete.
    Done,
    /// The provider reported an error inside the stream.
    Failed {
        /// The provider's message.
        message: String,
        /// Whether a new attempt may help (only used before any text came out).
        retryable: bool,
    },
    /// The event is not valid chat-stream JSON.
    Invalid(String),
}

fn interpret(event: &SseEvent) -> Step {
    if let Some(error) = &event.error_field {
        // llama.cpp's non-standard `error:` field.
        let retryable = serde_json::from_str::<Value>(error)
            .map(|v| error_is_retryable(&serde_json::json!({ "error": v })))
            .unwrap_or(false);
        return Step::Failed {
            message: error_field_message(error),
            retryable,
        };
    }
    let data = event.data.trim();
    if data.starts_with("[DONE]") {
        return Step::Done;
    }
    let is_error_event = event.event == "error";
    if data.is_empty() {
        return if is_error_event {
            Step::Failed {
                message: "the provider sent an error event without details".into(),
                retryable: false,
            }
        } else {
            Step::Skip
        };
    }
    let value: Value = match serde_json::from_str(data) {
        Ok(value) => value,
        Err(_) if is_error_event => {
            return Step::Failed {
                message: http::error_message(data),
                retryable: false,
            }
        }
        Err(e) => {
            return Step::Invalid(format!(
                "invalid JSON in the answer stream ({e}): {}",
                shorten(data)
            ))
        }
    };
    if is_error_event || truthy(value.get("error")) {
        return Step::Failed {
            message: http::error_message(data),
            retryable: error_is_retryable(&value),
        };
    }
    let Some(choice) = first_choice(&value) else {
        return Step::Skip;
    };
    let content = choice
        .get("delta")
        .and_then(|d| d.get("content"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    if choice.get("finish_reason").and_then(Value::as_str) == Some("error") {
        return Step::Failed {
            message: "the provider ended the answer with an error (finish_reason \"error\")".into(),
            retryable: false,
        };
    }
    match content {
        Some(text) => Step::Text(text.to_string()),
        None => Step::Skip,
    }
}

/// The message of an `error:` field value: JSON `{"message":…}` / `{"error":{…}}` or plain text.
fn error_field_message(value: &str) -> String {
    match serde_json::from_str::<Value>(value) {
        Ok(v) if v.get("message").and_then(Value::as_str).is_some() => v
            .get("message")
            .and_then(Value::as_str)
            .map(shorten)
            .unwrap_or_default(),
        _ => http::error_message(value),
    }
}

/// One dispatched server-sent event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `event:` type; empty for the default (`message`).
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The last `id:` seen (the stream's last event id), if any.
    pub id: Option<String>,
    /// The value of a non-standard `error:` field (older llama.cpp), if any.
    pub error_field: Option<String>,
}

/// Incremental server-sent-events parser (WHATWG "event stream interpretation"): feed it bytes
/// as they arrive, in pieces of any size; it returns complete events.
///
/// Lines end with `\n`, `\r\n` or `\r` (a `\r` at the end of one piece and `\n` at the start of
/// the next count as one line ending). Lines are decoded as UTF-8 only once complete, so a
/// character split across pieces is intact. At the end of the body, [`SseParser::finish`]
/// dispatches a last event that lacks its blank line.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    line: Vec<u8>,
    /// The previous piece ended with `\r`: a leading `\n` belongs to that line ending.
    skip_lf: bool,
    event: String,
    data: String,
    has_data: bool,
    last_id: Option<String>,
    error_field: Option<String>,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next piece of the body; appends completed events to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) {
        let mut rest = bytes;
        if self.skip_lf && !bytes.is_empty() {
            self.skip_lf = false;
            if bytes[0] == b'\n' {
                rest = &bytes[1..];
            }
        }
        while let Some(pos) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.line.extend_from_slice(&rest[..pos]);
            let ending = rest[pos];
            rest = &rest[pos + 1..];
            if ending == b'\r' {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, out);
        }
        self.line.extend_from_slice(rest);
    }

    /// The end of the body: processes an unterminated last line and dispatches a pending event.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, out);
        }
        self.dispatch(out);
        self.skip_lf = false;
    }

    fn process_line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line[0] == b':' {
            // A comment: keep-alive (`: OPENROUTER PROCESSING`, llama.cpp pings).
            return;
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = value.to_string(),
            "id" if !value.contains('\0') => self.last_id = Some(value.to_string()),
            // `retry:` sets the reconnection delay; an answer is never reconnected (a new
            // request would repeat text), so it is ignored like unknown fields.
            "error" => {
                tracing::debug!(provider = PROVIDER, "non-standard SSE error field: {value}");
                self.error_field = Some(value.to_string());
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = std::mem::take(&mut self.event);
        let error_field = self.error_field.take();
        if !self.has_data && error_field.is_none() {
            self.data.clear();
            return;
        }
        self.has_data = false;
        out.push(SseEvent {
            event,
            data: std::mem::take(&mut self.data),
            id: self.last_id.clone(),
            error_field,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(pieces: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for piece in pieces {
            p.feed(piece, &mut out);
        }
        p.finish(&mut out);
        out
    }

    fn data(events: &[SseEvent]) -> Vec<&str> {
        events.iter().map(|e| e.data.as_str()).collect()
    }

    #[test]
    fn basic_events_and_line_endings() {
        for sep in ["\n", "\r\n", "\r"] {
            let text = format!("data: a{sep}{sep}data:b{sep}{sep}data: [DONE]{sep}{sep}");
            let events = parse_all(&[text.as_bytes()]);
            assert_eq!(data(&events), vec!["a", "b", "[DONE]"], "{sep:?}");
        }
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        let text = "data: h\u{e9}llo \u{1f600}\r\n\r\n: ping\r\ndata: one\r\ndata: two\r\n\r\n\
                    event: error\rdata: {\"x\":1}\r\rdata: end";
        let whole = parse_all(&[text.as_bytes()]);
        assert_eq!(
            data(&whole),
            vec!["h\u{e9}llo \u{1f600}", "one\ntwo", "{\"x\":1}", "end"]
        );
        assert_eq!(whole[2].event, "error");
        let bytes = text.as_bytes();
        for i in 0..=bytes.len() {
            for j in i..=bytes.len() {
                let split = parse_all(&[&bytes[..i], &bytes[i..j], &bytes[j..]]);
                assert_eq!(split, whole, "split at {i}/{j}");
            }
        }
        // One byte at a time too.
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(parse_all(&singles), whole);
    }

    #[test]
    fn cr_then_lf_in_the_next_piece_is_one_line_ending() {
        let events = parse_all(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]);
        assert_eq!(data(&events), vec!["a\nb"]);
    }

    #[test]
    fn comments_fields_and_unknown_lines() {
        let text = ": OPENROUTER PROCESSING\n\n: OPENROUTER PROCESSING\n\nid: 7\nretry: 3000\nfoo: bar\nevent: message\ndata:{\"a\":1}\n\nevent: only\n\n";
        let events = parse_all(&[text.as_bytes()]);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data, "{\"a\":1}");
        assert_eq!(events[0].event, "message");
        assert_eq!(events[0].id.as_deref(), Some("7"));
    }

    #[test]
    fn llama_cpp_error_field_is_an_event() {
        let events = parse_all(&[
            b"error: {\"code\":400,\"message\":\"context too long\",\"type\":\"invalid_request_error\"}\n\n",
        ]);
        assert_eq!(events.len(), 1);
        assert_eq!(
            interpret(&events[0]),
            Step::Failed {
                message: "context too long".into(),
                retryable: false
            }
        );
    }

    #[test]
    fn unterminated_last_event_is_flushed_at_eof() {
        assert_eq!(
            data(&parse_all(&[b"data: x\n\ndata: [DONE]"])),
            vec!["x", "[DONE]"]
        );
        assert_eq!(data(&parse_all(&[b"data: x\n"])), vec!["x"]);
        assert!(parse_all(&[b": only a comment"]).is_empty());
    }

    fn ev(data: &str) -> SseEvent {
        SseEvent {
            data: data.into(),
            ..Default::default()
        }
    }

    #[test]
    fn chunk_interpretation() {
        let chunk = |delta: &str| {
            format!(
                r#"{{"id":"c","object":"chat.completion.chunk","choices":[{{"index":0,"delta":{delta},"finish_reason":null}}]}}"#
            )
        };
        assert_eq!(
            interpret(&ev(&chunk(r#"{"content":"Hi"}"#))),
            Step::Text("Hi".into())
        );
        assert_eq!(
            interpret(&ev(&chunk(r#"{"role":"assistant","content":""}"#))),
            Step::Skip
        );
        assert_eq!(
            interpret(&ev(&chunk(r#"{"role":"assistant","content":null}"#))),
            Step::Skip
        );
        assert_eq!(interpret(&ev(&chunk("{}"))), Step::Skip);
        assert_eq!(
            interpret(&ev(&chunk(
                r#"{"reasoning":"hmm","reasoning_content":"hmm"}"#
            ))),
            Step::Skip
        );
        assert_eq!(
            interpret(&ev(r#"{"choices":[],"usage":{"total_tokens":3}}"#)),
            Step::Skip
        );
        assert_eq!(interpret(&ev(r#"{"error":null,"choices":[]}"#)), Step::Skip);
        assert_eq!(interpret(&ev("[DONE]")), Step::Done);
        assert_eq!(interpret(&ev("")), Step::Skip);
        assert!(matches!(interpret(&ev("not json")), Step::Invalid(_)));
    }

    #[test]
    fn errors_inside_a_200_stream() {
        assert_eq!(
            interpret(&ev(
                r#"{"error":{"message":"The server had an error","type":"server_error"}}"#
            )),
            Step::Failed {
                message: "The server had an error".into(),
                retryable: true
            }
        );
        assert_eq!(
            interpret(&ev(
                r#"{"id":"x","error":{"code":400,"message":"Provider returned error"},"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}"#
            )),
            Step::Failed {
                message: "Provider returned error".into(),
                retryable: false
            }
        );
        assert_eq!(
            interpret(&ev(r#"{"error":{"code":502,"message":"upstream down"}}"#)),
            Step::Failed {
                message: "upstream down".into(),
                retryable: true
            }
        );
        assert!(matches!(
            interpret(&ev(
                r#"{"choices":[{"index":0,"delta":{},"finish_reason":"error"}]}"#
            )),
            Step::Failed { .. }
        ));
        let event_error = SseEvent {
            event: "error".into(),
            data: r#"{"message":"overloaded"}"#.into(),
            ..Default::default()
        };
        assert!(
            matches!(interpret(&event_error), Step::Failed { message, .. } if message == "overloaded")
        );
    }

    #[test]
    fn config_validation_and_debug_hides_key() {
        let cfg = OpenAiChatConfig {
            api_key: Some("sk-secret-key-1234567890".into()),
            ..Default::default()
        };
        assert!(!format!("{cfg:?}").contains("sk-secret"));
        let chat = OpenAiChat::new(cfg.clone()).unwrap();
        assert!(!format!("{chat:?}").contains("sk-secret"));
        assert_eq!(
            chat.inner.chat_url,
            "https://api.openai.com/v1/chat/completions"
        );
        let slash = OpenAiChat::new(OpenAiChatConfig {
            base_url: "http://localhost:11434/v1/".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            slash.inner.chat_url,
            "http://localhost:11434/v1/chat/completions"
        );
        assert!(slash.inner.auth.is_none());
        for bad in [
            OpenAiChatConfig {
                base_url: "localhost:11434".into(),
                ..Default::default()
            },
            OpenAiChatConfig {
                temperature: 3.0,
                ..Default::default()
            },
            OpenAiChatConfig {
                model: " ".into(),
                ..Default::default()
            },
            OpenAiChatConfig {
                api_key: Some("sk-bad\nkey-123456789".into()),
                ..Default::default()
            },
        ] {
            let err = OpenAiChat::new(bad).unwrap_err();
            assert!(matches!(err, LlmError::InvalidConfig { .. }), "{err}");
            assert!(!err.to_string().contains("sk-bad"));
        }
    }

    #[test]
    fn request_body_is_minimal() {
        let chat = OpenAiChat::new(OpenAiChatConfig::default()).unwrap();
        let body = chat.inner.body(&[ChatMessage::user("Hi")], true, 400);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": "Hi"}],
                "stream": true,
                "temperature": 0.7,
                "max_tokens": 400
            })
        );
        let body = chat.inner.body(&[ChatMessage::user("Hi")], true, 0);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert!(v.get("max_tokens").is_none());
    }
}
