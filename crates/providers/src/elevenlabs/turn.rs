//! One turn of [`ElevenLabsTts`](super::ElevenLabsTts): the state kept across reconnections, the
//! retrying loop over connections, and one connection's exchange (init message, journal and text
//! out; audio, alignment and errors in).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::http;
use crate::retry::{Failure, FailureKind, Next, Retry};
use crate::tts::{TtsError, TtsInput, TurnWorker};

use super::{
    audio::{parse_alignment, AudioState},
    connection::{close, connect, connection_error, redact, Socket},
    ElevenLabsTts, Shared,
};

/// After the end of stream, how long the server may stay silent before the turn fails.
pub(super) const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// How one connection of a turn ended.
pub(super) enum Outcome {
    /// The turn is over (finished, cancelled or nobody listens): nothing more to send.
    Done,
    /// It failed; retryable failures may be retried while no audio was delivered.
    Failed(Failure<TtsError>),
}

/// The state of one turn across (re)connections.
pub(super) struct Turn {
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

pub(super) async fn run_turn(shared: Arc<Shared>, worker: TurnWorker) {
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

impl Turn {
    /// Runs one connection: sends the init message and the journal, then text as it comes while
    /// handing audio to the caller, until the turn ends or the stream fails.
    pub(super) async fn stream(&mut self, mut socket: Socket) -> Outcome {
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
    pub(super) fn on_input(&mut self, input: Option<TtsInput>) -> Option<Vec<String>> {
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
    pub(super) async fn send(&mut self, socket: &mut Socket, text: String) -> Option<Outcome> {
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
    pub(super) async fn on_frame(
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
    pub(super) async fn on_message(&mut self, text: &str) -> Option<Outcome> {
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
    pub(super) fn dropped(&self, what: &str) -> Outcome {
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
    pub(super) fn server_error(
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
