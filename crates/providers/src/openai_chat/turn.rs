//! The retrying turn of [`OpenAiChat`](super::OpenAiChat): building and sending the request,
//! reading the streamed (or non-streaming) answer, mapping HTTP statuses to errors and retrying
//! per [`RetryPolicy`](crate::http::RetryPolicy) until the first text fragment; plus the
//! connectivity check.

use std::sync::Arc;

use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::http;
use crate::llm::{ChatMessage, LlmError, LlmItem};
use crate::retry::{self, FailureKind, Next, Retry};

use super::{
    sse::{error_is_retryable, first_choice, interpret, truthy, SseParser, Step},
    ChatRequest, Inner, MAX_BODY_BYTES, PROVIDER,
};

/// Why an attempt failed, and whether another attempt may help.
pub(super) type Failure = retry::Failure<LlmError>;

impl Inner {
    pub(super) fn redact(&self, text: &str) -> String {
        match &self.api_key {
            Some(key) => http::redact(text, key),
            None => text.to_string(),
        }
    }

    /// A reqwest error with its causes ("connection refused" lives in the source chain).
    pub(super) fn describe(&self, e: &reqwest::Error) -> String {
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

    pub(super) fn first_token_timeout_error(&self) -> LlmError {
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

    pub(super) fn body(&self, messages: &[ChatMessage], stream: bool, max_tokens: u32) -> Vec<u8> {
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

    pub(super) fn post(
        &self,
        url: &str,
        body: Vec<u8>,
        accept: &'static str,
    ) -> reqwest::RequestBuilder {
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

    pub(super) async fn run_turn(
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
    pub(super) async fn answer(
        &self,
        body: &[u8],
        tx: &mpsc::Sender<LlmItem>,
    ) -> Result<(), LlmError> {
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
    pub(super) async fn attempt(
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
    pub(super) async fn non_streaming_answer(
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
    pub(super) async fn status_failure(
        &self,
        resp: reqwest::Response,
        deadline: Instant,
    ) -> Failure {
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

    pub(super) fn status_error(&self, status: u16, body: &str) -> LlmError {
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

    pub(super) async fn check(&self) -> Result<String, LlmError> {
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
    pub(super) async fn check_chat(&self, note: &str) -> Result<String, LlmError> {
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

    pub(super) async fn send_before(
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
pub(super) fn stream_error_kind(retryable: bool) -> FailureKind {
    if retryable {
        FailureKind::ServerError
    } else {
        FailureKind::Rejected
    }
}

/// `Some(true/false)` when the server says whether a retry makes sense (`x-should-retry`).
pub(super) fn should_retry(headers: &HeaderMap) -> Option<bool> {
    match headers.get("x-should-retry")?.to_str().ok()?.trim() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// Reads at most [`MAX_BODY_BYTES`] of a body before `deadline` (a timeout yields what came).
pub(super) async fn read_body(
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
pub(super) fn shorten(text: &str) -> String {
    let mut out: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        out.push('…');
    }
    out
}
