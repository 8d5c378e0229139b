//! The WebSocket connection of a turn: opening one stream (with its handshake errors mapped to
//! [`TtsError`](crate::TtsError)s), closing it politely, and the error helpers that keep the API
//! key out of messages.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use crate::http;
use crate::retry::{Failure, FailureKind};
use crate::tts::TtsError;

use super::{invalid, turn::Outcome, ElevenLabsConfig, ElevenLabsTts, Shared};

pub(super) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens one stream. `Ok(None)`: cancelled while connecting.
pub(super) async fn connect(
    shared: &Shared,
    cancel: &CancellationToken,
) -> Result<Option<Socket>, Outcome> {
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

/// Closes the socket politely without waiting long for the server.
pub(super) async fn close(mut socket: Socket) {
    let _ = tokio::time::timeout(Duration::from_millis(500), socket.close(None)).await;
}

pub(super) fn connection_error(message: String) -> TtsError {
    TtsError::Connection {
        provider: ElevenLabsTts::NAME,
        message,
    }
}

pub(super) fn http_error(status: u16, message: String) -> TtsError {
    TtsError::Http {
        provider: ElevenLabsTts::NAME,
        status,
        message,
    }
}

pub(super) fn redact(text: &str, cfg: &ElevenLabsConfig) -> String {
    http::redact(text, &cfg.api_key)
}
