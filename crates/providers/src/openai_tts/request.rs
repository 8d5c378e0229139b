//! One speech request of a turn: the attempt (send, check the status, stream and decode the
//! body, convert to the configured rate), its errors with the API key redacted, and the learnt
//! speaking rate used for word timing estimates.

use std::sync::atomic::Ordering;

use futures_util::StreamExt;
use talkstream_media::wav::{WavEncodings, WavReader};
use tokio::sync::mpsc;

use crate::http;
use crate::resample::Resampler;
use crate::retry::FailureKind;
use crate::tts::TtsError;

use super::{
    decode::{content_type_rate, text_weight, Decoder},
    turn::{AttemptError, Piece},
    Inner, OpenAiTts, OpenAiTtsFormat, ERROR_BODY_LIMIT,
};

impl Inner {
    /// `text` with the API key removed.
    pub(super) fn redact(&self, text: &str) -> String {
        match &self.config.api_key {
            Some(key) => http::redact(text, key),
            None => text.to_string(),
        }
    }

    pub(super) fn connection_error(&self, message: String) -> TtsError {
        TtsError::Connection {
            provider: OpenAiTts::NAME,
            message: self.redact(&message),
        }
    }

    /// One request; audio pieces go to `tx` as they are decoded (`sent_audio` turns true with
    /// the first).
    pub(super) async fn attempt(
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
    pub(super) fn convert(
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
    pub(super) async fn status_error(&self, response: reqwest::Response) -> AttemptError {
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
    pub(super) async fn read_error_body(&self, response: reqwest::Response) -> String {
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
    pub(super) fn learn(&self, text: &str, ms: u64) {
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
pub(super) struct SpeechRequest<'a> {
    model: &'a str,
    input: &'a str,
    voice: &'a str,
    response_format: &'a str,
    speed: f32,
}

pub(super) use crate::http::describe;
