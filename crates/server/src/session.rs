//! One `/session` WebSocket connection: creates the session's live stream, sends `hello`, reads
//! client messages (bad ones get an `error` and the session goes on), forwards stream events, and
//! on close ends the stream and schedules its files for removal.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;

use crate::files::remove_session_dir;
use crate::producer::{Producer, ProducerEvent};
use crate::protocol::{
    parse_client_message, ClientMessage, ControlAction, ErrorCode, ServerMessage, Stage,
    StreamInfo, MAX_CLIENT_MESSAGE_BYTES,
};
use crate::server::AppState;

/// Longest client log line written to the server log.
const MAX_LOGGED_CLIENT_CHARS: usize = 2000;

/// `GET /session`: upgrade to a WebSocket and run a session on it.
pub async fn upgrade(ws: WebSocketUpgrade, State(state): State<Arc<AppState>>) -> Response {
    // Accept frames well past our own limit so an oversized message gets a polite `error`
    // instead of a dropped connection.
    ws.max_message_size(MAX_CLIENT_MESSAGE_BYTES * 64)
        .on_upgrade(move |socket| {
            // Tracked so shutdown waits for the session to end its stream.
            let tracker = state.tracker.clone();
            tracker.track_future(run(socket, state))
        })
}

fn new_session_id() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: fall back to a clock-derived id (still unique per process).
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        bytes = (nanos as u64).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn send(socket: &mut WebSocket, msg: &ServerMessage) -> bool {
    socket
        .send(Message::Text(msg.to_json().into()))
        .await
        .is_ok()
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}

async fn run(mut socket: WebSocket, state: Arc<AppState>) {
    let Some(_slot) = state.try_acquire_session() else {
        tracing::warn!(
            max = state.config.max_sessions,
            "refused a session: MAX_SESSIONS reached"
        );
        send(
            &mut socket,
            &ServerMessage::error(
                ErrorCode::TooManySessions,
                format!(
                    "this server already runs its maximum of {} sessions; try again later",
                    state.config.max_sessions
                ),
            ),
        )
        .await;
        close(&mut socket, 1013, "too many sessions").await;
        return;
    };

    let id = new_session_id();
    let span = tracing::info_span!("session", id = %id);
    let dir = state.config.hls_dir.join(&id);
    let seed = u64::from_str_radix(&id, 16).unwrap_or(0);
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let producer = match Producer::spawn(
        &id,
        dir.clone(),
        state.config.channel_config(),
        seed,
        events_tx,
    ) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(parent: &span, error = %e, "could not start the media thread");
            send(
                &mut socket,
                &ServerMessage::error(ErrorCode::StreamFailed, "could not start the stream"),
            )
            .await;
            close(&mut socket, 1011, "stream failed").await;
            return;
        }
    };
    tracing::info!(parent: &span, "session started");

    let cfg = &state.config;
    let hello = ServerMessage::Hello {
        session_id: id.clone(),
        playlist: format!("/hls/{id}/index.m3u8"),
        version: env!("CARGO_PKG_VERSION"),
        stream: StreamInfo {
            width: cfg.width,
            height: cfg.height,
            fps: cfg.fps,
            segment_ms: cfg.seg_len_ms,
            audio_sample_rate: cfg.audio_sample_rate,
        },
        llm: "none".into(),
        tts: "none".into(),
    };
    let mut open = send(&mut socket, &hello).await
        && send(
            &mut socket,
            &ServerMessage::Status {
                stage: Stage::Idle,
                note: None,
            },
        )
        .await;

    while open {
        tokio::select! {
            _ = state.shutdown.cancelled() => {
                close(&mut socket, 1001, "server shutting down").await;
                break;
            }
            event = events.recv() => match event {
                Some(ProducerEvent::SegmentPublished { .. }) => {}
                Some(ProducerEvent::Failed(why)) => {
                    send(&mut socket, &ServerMessage::error(ErrorCode::StreamFailed, format!("the stream stopped: {why}"))).await;
                    send(&mut socket, &ServerMessage::Status { stage: Stage::Error, note: Some(why) }).await;
                    // Close so the page reconnects to a fresh session.
                    close(&mut socket, 1011, "stream failed").await;
                    break;
                }
                Some(ProducerEvent::Finished) | None => break,
            },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Text(text))) => {
                    if let Some(reply) = handle_text(&text, &span) {
                        open = send(&mut socket, &reply).await;
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    open = send(&mut socket, &ServerMessage::error(ErrorCode::BadMessage, "binary messages are not supported; send JSON text")).await;
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | None => break,
                Some(Err(e)) => {
                    tracing::info!(parent: &span, error = %e, "socket error");
                    break;
                }
            },
        }
    }

    // End the stream (ENDLIST), then keep the files for a while so players can finish.
    let joined = tokio::task::spawn_blocking(move || producer.finish_blocking()).await;
    if joined.is_err() {
        tracing::error!(parent: &span, "media thread could not be joined");
    }
    tracing::info!(parent: &span, "session ended");
    let linger = Duration::from_millis(state.config.session_linger_ms);
    let shutdown = state.shutdown.clone();
    state.tracker.spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(linger) => {}
            _ = shutdown.cancelled() => {}
        }
        let _ = tokio::task::spawn_blocking(move || remove_session_dir(&dir)).await;
    });
}

/// React to one text frame; returns the reply to send, if any.
fn handle_text(text: &str, span: &tracing::Span) -> Option<ServerMessage> {
    match parse_client_message(text) {
        Err(rejected) => {
            tracing::info!(parent: span, code = ?rejected.code, "rejected a client message: {}", rejected.message);
            Some(ServerMessage::error(rejected.code, rejected.message))
        }
        Ok(ClientMessage::Log { level, message }) => {
            let message: String = message.chars().take(MAX_LOGGED_CLIENT_CHARS).collect();
            match level.as_str() {
                "error" => tracing::error!(parent: span, "client log: {message}"),
                "warn" | "warning" => tracing::warn!(parent: span, "client log: {message}"),
                "debug" => tracing::debug!(parent: span, "client log: {message}"),
                _ => tracing::info!(parent: span, "client log: {message}"),
            }
            None
        }
        Ok(ClientMessage::Prompt { .. }) => Some(ServerMessage::error(
            ErrorCode::Unsupported,
            "this server streams the idle avatar only; speech is not available in this build",
        )),
        Ok(ClientMessage::Control { action }) => {
            let what = match action {
                ControlAction::Start => "start",
                ControlAction::Stop => "stop",
                ControlAction::Interrupt => "interrupt",
            };
            Some(ServerMessage::error(
                ErrorCode::Unsupported,
                format!("control action '{what}' is not available in this build"),
            ))
        }
    }
}
