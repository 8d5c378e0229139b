//! OpenAI-style streaming chat completions (`POST {base}/chat/completions` with `stream: true`),
//! for OpenAI itself and the compatible servers: OpenRouter, Ollama (`/v1`), llama.cpp
//! `llama-server`, vLLM and the like.
//!
//! The answer arrives as server-sent events. [`SseParser`](sse::SseParser) is a pure incremental
//! parser (bytes in, events out) that copes with what those servers really send: any of the three
//! line endings, lines split anywhere across network reads (even inside a UTF-8 character), comment
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

use reqwest::header::HeaderValue;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::http::{self, RetryPolicy};
use crate::llm::{ChatMessage, LlmError, LlmProvider, LlmTurn};
use crate::tts::CheckFuture;

mod sse;
mod turn;

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
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
