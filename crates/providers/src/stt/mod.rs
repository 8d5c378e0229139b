//! Speech-to-text through the OpenAI-compatible transcription API:
//! `POST {STT_BASE_URL}/audio/transcriptions`, as served by OpenAI, Groq, whisper.cpp's server,
//! speaches (faster-whisper-server), LocalAI and vLLM.
//!
//! One utterance is one request: `multipart/form-data` with `file` (the audio as a 16-bit PCM
//! WAV), `model`, `response_format=json` and, when set, `language` and `prompt`; the answer's
//! `text` is the transcript. Failures follow the other providers' rules ([`crate::retry`]):
//! 408, 409, 429, 5xx, time-outs and connection errors are retried (honouring `Retry-After`),
//! 401/403 are [`SttError::Auth`] and never retried, and the API key never appears in an error
//! or a log line.

use std::time::Duration;

use talkstream_media::wav::wav_bytes;
use tokio_util::sync::CancellationToken;

use crate::http::{self, describe, RetryPolicy};
use crate::retry::{Failure, FailureKind, Next, Retry};

/// Longest error body read.
const ERROR_BODY_LIMIT: usize = 4096;
/// Longest answer read (a transcript of a long utterance is a few kB).
const ANSWER_LIMIT: usize = 256 * 1024;

/// Settings of the OpenAI-compatible speech recognizer.
#[derive(Clone, PartialEq)]
pub struct OpenAiSttConfig {
    /// API base (`STT_BASE_URL`), for example `https://api.openai.com/v1` or
    /// `http://127.0.0.1:8178/v1`; `/audio/transcriptions` is appended (a base that already ends
    /// with it is used as is).
    pub base_url: String,
    /// Bearer token (`STT_API_KEY`); `None` sends no `Authorization` header (local servers).
    pub api_key: Option<String>,
    /// Model (`STT_MODEL`), default `whisper-1`.
    pub model: String,
    /// Spoken language as ISO-639-1 (`STT_LANGUAGE`), `None` to let the server detect it.
    pub language: Option<String>,
    /// Text that primes the recognizer (names, spelling), if any.
    pub prompt: Option<String>,
    /// Longest wait for a whole answer.
    pub timeout: Duration,
    /// Longest wait for a connection.
    pub connect_timeout: Duration,
    /// Retries of a failed request.
    pub retry: RetryPolicy,
}

impl Default for OpenAiSttConfig {
    fn default() -> Self {
        Self {
            base_url: "https://api.openai.com/v1".to_string(),
            api_key: None,
            model: "whisper-1".to_string(),
            language: None,
            prompt: None,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
        }
    }
}

impl std::fmt::Debug for OpenAiSttConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiSttConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .field("language", &self.language)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Why a transcription failed.
#[derive(Debug, thiserror::Error)]
pub enum SttError {
    /// A setting cannot work.
    #[error("invalid speech recognizer setting {setting}: {message}")]
    Invalid {
        /// The setting.
        setting: &'static str,
        /// What is wrong.
        message: String,
    },
    /// No connection, it broke, or no answer in time.
    #[error("speech recognizer unreachable: {message}")]
    Connection {
        /// What happened (the key redacted).
        message: String,
    },
    /// The credentials were refused.
    #[error("speech recognizer refused the credentials: HTTP {status}: {message} (check STT_API_KEY and STT_BASE_URL)")]
    Auth {
        /// 401 or 403.
        status: u16,
        /// The server's message (the key redacted).
        message: String,
    },
    /// Another error status.
    #[error("speech recognizer failed: HTTP {status}: {message}")]
    Http {
        /// The status.
        status: u16,
        /// The server's message (the key redacted).
        message: String,
    },
    /// A success status with an answer that is not a transcript.
    #[error("speech recognizer answered something unusable: {message}")]
    Protocol {
        /// What was wrong with it.
        message: String,
    },
    /// The caller cancelled.
    #[error("transcription cancelled")]
    Cancelled,
}

/// The OpenAI-compatible speech recognizer (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct OpenAiStt {
    config: OpenAiSttConfig,
    client: reqwest::Client,
    url: String,
}

impl std::fmt::Debug for OpenAiStt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiStt")
            .field("url", &self.url)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The JSON answer (`response_format=json`).
#[derive(serde::Deserialize)]
struct Answer {
    text: String,
}

impl OpenAiStt {
    /// Provider name.
    pub const NAME: &'static str = "openai";

    /// Checks `config` and prepares the HTTP client.
    pub fn new(config: OpenAiSttConfig) -> Result<Self, SttError> {
        let base = config.base_url.trim().trim_end_matches('/');
        let parsed = reqwest::Url::parse(base).map_err(|e| SttError::Invalid {
            setting: "STT_BASE_URL",
            message: format!("{base:?} is not a URL: {e}"),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(SttError::Invalid {
                setting: "STT_BASE_URL",
                message: format!("{base:?} must start with http:// or https://"),
            });
        }
        if config.model.trim().is_empty() {
            return Err(SttError::Invalid {
                setting: "STT_MODEL",
                message: "the model name is empty".to_string(),
            });
        }
        let url = if base.ends_with("/audio/transcriptions") {
            base.to_string()
        } else {
            format!("{base}/audio/transcriptions")
        };
        let client = http::client(config.connect_timeout).map_err(|e| SttError::Invalid {
            setting: "STT_BASE_URL",
            message: format!("cannot set up HTTP: {}", describe(&e)),
        })?;
        Ok(Self {
            config,
            client,
            url,
        })
    }

    /// The settings in use.
    pub fn config(&self) -> &OpenAiSttConfig {
        &self.config
    }

    /// The endpoint requests go to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `model at url` for logs and `check`.
    pub fn describe(&self) -> String {
        format!("{} at {}", self.config.model.trim(), self.url)
    }

    fn redact(&self, text: &str) -> String {
        match &self.config.api_key {
            Some(key) => http::redact(text, key),
            None => text.to_string(),
        }
    }

    /// The transcript of `pcm` (mono, `sample_rate` Hz), trimmed; retried as the module docs
    /// say, until `cancel` fires.
    pub async fn transcribe(
        &self,
        pcm: &[i16],
        sample_rate: u32,
        cancel: &CancellationToken,
    ) -> Result<String, SttError> {
        let (content_type, body) = self.form(&wav_bytes(pcm, sample_rate));
        let mut retry = Retry::new(self.config.retry, "stt").cancellable(cancel);
        loop {
            let attempt = tokio::select! {
                () = cancel.cancelled() => return Err(SttError::Cancelled),
                r = self.attempt(&content_type, body.clone()) => r,
            };
            match attempt {
                Ok(text) => return Ok(text),
                Err(failure) => match retry.after(failure, false).await {
                    Next::Again => continue,
                    Next::Fail(failure) => return Err(failure.error),
                    Next::Cancelled => return Err(SttError::Cancelled),
                },
            }
        }
    }

    /// Transcribes half a second of silence: proves the server is there and takes the
    /// credentials and the model (any transcript, even empty, will do).
    pub async fn check(&self) -> Result<String, SttError> {
        let silence = vec![0i16; 8000];
        let text = self
            .transcribe(&silence, 16_000, &CancellationToken::new())
            .await?;
        Ok(format!(
            "{}: answered {} for 0.5 s of silence",
            self.describe(),
            if text.is_empty() {
                "no words".to_string()
            } else {
                format!("{:?}", http::shorten(&text))
            }
        ))
    }

    /// The multipart form: its Content-Type (with the boundary) and body.
    fn form(&self, wav: &[u8]) -> (String, bytes::Bytes) {
        let cfg = &self.config;
        let mut fields: Vec<(&str, &str)> = vec![("model", cfg.model.trim())];
        if let Some(language) = cfg.language.as_deref().map(str::trim) {
            if !language.is_empty() {
                fields.push(("language", language));
            }
        }
        if let Some(prompt) = cfg.prompt.as_deref() {
            if !prompt.trim().is_empty() {
                fields.push(("prompt", prompt));
            }
        }
        fields.push(("response_format", "json"));
        let boundary = boundary_for(wav);
        let mut body = Vec::with_capacity(wav.len() + 1024);
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"speech.wav\"\r\nContent-Type: audio/wav\r\n\r\n").as_bytes());
        body.extend_from_slice(wav);
        body.extend_from_slice(b"\r\n");
        for (name, value) in fields {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                )
                .as_bytes(),
            );
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        (
            format!("multipart/form-data; boundary={boundary}"),
            bytes::Bytes::from(body),
        )
    }

    async fn attempt(
        &self,
        content_type: &str,
        body: bytes::Bytes,
    ) -> Result<String, Failure<SttError>> {
        let mut request = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body);
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key.trim());
        }
        let timeout = self.config.timeout;
        let exchange = async {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let retry_after = http::retry_after(response.headers());
            let limit = if response.status().is_success() {
                ANSWER_LIMIT
            } else {
                ERROR_BODY_LIMIT
            };
            let body = read_limited(response, limit).await?;
            Ok::<_, reqwest::Error>((status, retry_after, body))
        };
        let (status, retry_after, body) = match tokio::time::timeout(timeout, exchange).await {
            Err(_) => {
                return Err(Failure::transient(
                    FailureKind::Timeout,
                    SttError::Connection {
                        message: format!(
                            "no answer from {} within {} s",
                            self.url,
                            timeout.as_secs_f32()
                        ),
                    },
                ))
            }
            Ok(Err(e)) => {
                return Err(Failure::transient(
                    FailureKind::Connection,
                    SttError::Connection {
                        message: self.redact(&format!("{}: {}", self.url, describe(&e))),
                    },
                ))
            }
            Ok(Ok(answer)) => answer,
        };
        let text = String::from_utf8_lossy(&body);
        if !(200..300).contains(&status) {
            let message = self.redact(&http::error_message(&text));
            let kind = FailureKind::from_status(status);
            let error = match status {
                401 | 403 => return Err(Failure::fatal(kind, SttError::Auth { status, message })),
                404 => SttError::Http {
                    status,
                    message: format!(
                        "{message} (is STT_BASE_URL right? the request went to {})",
                        self.url
                    ),
                },
                _ => SttError::Http { status, message },
            };
            return Err(Failure::new(kind, error, http::is_retryable_status(status))
                .with_retry_after(retry_after));
        }
        match serde_json::from_str::<Answer>(&text) {
            Ok(answer) => Ok(answer.text.trim().to_string()),
            Err(e) => Err(Failure::fatal(
                FailureKind::Protocol,
                SttError::Protocol {
                    message: self.redact(&format!(
                        "expected JSON with \"text\" ({e}): {}",
                        http::shorten(&text)
                    )),
                },
            )),
        }
    }
}

/// A multipart boundary that does not occur in `data`.
fn boundary_for(data: &[u8]) -> String {
    let mut seed = data.len() as u64 ^ 0x9e37_79b9_7f4a_7c15;
    loop {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let boundary = format!("talkstream-{seed:016x}");
        if !data
            .windows(boundary.len())
            .any(|w| w == boundary.as_bytes())
        {
            return boundary;
        }
    }
}

/// Up to `limit` bytes of a body.
async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        body.extend_from_slice(&chunk);
        if body.len() >= limit {
            body.truncate(limit);
            break;
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests;
