//! One `/session` WebSocket connection: owns the session's live stream (one media thread), turns
//! prompts into speech turns (barge-in: a new prompt interrupts the old answer), relays status,
//! captions, metrics and errors to the client, and on close ends the stream and schedules its
//! files for removal. Bad client messages get an `error` and the session goes on.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::net::SocketAddr;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio_util::sync::CancellationToken;

use crate::access::limits::{Refused, SessionLimits};
use crate::access::RequestFacts;
use crate::files::remove_session_dir;
use crate::generation::GeneratorLink;
use crate::pipeline::{run_turn, Event, Frame, TextSource, TurnContext};
use crate::producer::Producer;
use crate::protocol::{
    parse_client_message, ClientMessage, ControlAction, ErrorCode, ServerMessage, Stage,
    StreamInfo, TurnMetrics, MAX_CLIENT_MESSAGE_BYTES,
};
use crate::server::AppState;
use talkstream_providers::Conversation;

/// Longest client log line written to the server log.
const MAX_LOGGED_CLIENT_CHARS: usize = 2000;

/// `GET /session`: check who is asking (origin, access token), then upgrade to a WebSocket and
/// run a session on it. Refusals are answered before the upgrade (403, 401 or 429).
pub async fn upgrade(
    ws: WebSocketUpgrade,
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let facts = RequestFacts::from_parts(&headers, query.as_deref(), peer);
    if let Err(refusal) = crate::access::authorize(
        &state.policy,
        &state.addresses,
        &facts,
        state.now_ms(),
        "session",
    ) {
        return refusal.into_response();
    }
    // Accept frames well past our own limit so an oversized message gets a polite `error`
    // instead of a dropped connection.
    ws.max_message_size(MAX_CLIENT_MESSAGE_BYTES * 64)
        .on_upgrade(move |socket| {
            // Tracked so shutdown waits for the session to end its stream.
            let tracker = state.tracker.clone();
            tracker.track_future(run(socket, state, peer))
        })
}

/// A fresh random id: 16 lowercase hex digits.
pub fn new_id() -> String {
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

/// The live stream of a session.
struct Stream {
    id: String,
    dir: PathBuf,
    producer: Producer,
}

/// The turn being spoken.
struct Turn {
    id: u64,
    cancel: CancellationToken,
}

/// Per-turn timing being collected.
struct Timing {
    /// Answered by the language model (its voice characters are charged as they go).
    llm: bool,
    prompt: String,
    prompt_at: Instant,
    metrics: TurnMetrics,
}

struct Session {
    id: String,
    state: Arc<AppState>,
    span: tracing::Span,
    events_tx: UnboundedSender<Event>,
    stream: Option<Stream>,
    turn: Option<Turn>,
    next_turn: u64,
    timings: HashMap<u64, Timing>,
    /// The conversation so far (only with a language model).
    conversation: Option<Conversation>,
    /// Rate and spend limits.
    limits: SessionLimits,
    /// When the last `rate_limited` notice for the message rate was sent (limits' clock).
    last_flood_notice_ms: Option<u64>,
    /// The latest refusal by the message rate, not yet told to the client.
    flood: Option<Refused>,
}

/// Shortest time between two notices about the same message flood.
const FLOOD_NOTICE_INTERVAL_MS: u64 = 1_000;

/// What the session loop should do after handling something.
enum Next {
    Continue,
    Close(u16, &'static str),
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

fn status(stage: Stage, note: Option<&str>) -> ServerMessage {
    ServerMessage::Status {
        stage,
        note: note.map(str::to_string),
    }
}

async fn run(mut socket: WebSocket, state: Arc<AppState>, peer: SocketAddr) {
    let per_address = state.config.access.sessions_per_address;
    let Some(_address_slot) = state.addresses.try_acquire(peer.ip(), per_address) else {
        tracing::warn!(peer = %peer, max = per_address, "refused a session: SESSIONS_PER_ADDRESS reached");
        let msg = format!(
            "this address already has {per_address} sessions open (SESSIONS_PER_ADDRESS); close one and try again"
        );
        send(
            &mut socket,
            &ServerMessage::error(ErrorCode::TooManySessionsFromAddress, msg),
        )
        .await;
        close(&mut socket, 1013, "too many sessions from this address").await;
        return;
    };
    let Some(_slot) = state.try_acquire_session() else {
        tracing::warn!(
            max = state.config.max_sessions,
            "refused a session: MAX_SESSIONS reached"
        );
        let msg = format!(
            "this server already runs its maximum of {} sessions; try again later",
            state.config.max_sessions
        );
        send(
            &mut socket,
            &ServerMessage::error(ErrorCode::TooManySessions, msg),
        )
        .await;
        close(&mut socket, 1013, "too many sessions").await;
        return;
    };

    let id = new_id();
    let span = tracing::info_span!("session", id = %id);
    let (events_tx, mut events) = unbounded_channel();
    let mut session = Session {
        id: id.clone(),
        state: Arc::clone(&state),
        span,
        events_tx,
        stream: None,
        turn: None,
        next_turn: 1,
        timings: HashMap::new(),
        conversation: state.llm.as_ref().map(|_| {
            Conversation::new(
                state.config.system_prompt.clone(),
                state.config.history_chars,
            )
        }),
        limits: SessionLimits::new(state.config.access.limits(), state.now_ms()),
        last_flood_notice_ms: None,
        flood: None,
    };
    tracing::info!(parent: &session.span, "session started");
    let mut next = match session.start_stream(&mut socket, id).await {
        Ok(()) => Next::Continue,
        Err(()) => Next::Close(1011, "stream failed"),
    };

    while let Next::Continue = next {
        next = tokio::select! {
            _ = state.shutdown.cancelled() => Next::Close(1001, "server shutting down"),
            event = events.recv() => match event {
                Some(event) => session.on_event(&mut socket, event).await,
                None => Next::Close(1011, "internal error"),
            },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Text(_) | Message::Binary(_))) if session.over_message_rate().is_some() => {
                    session.flood_notice(&mut socket).await
                }
                Some(Ok(Message::Text(text))) => session.on_text(&mut socket, &text).await,
                Some(Ok(Message::Binary(_))) => {
                    let reply = ServerMessage::error(ErrorCode::BadMessage, "binary messages are not supported; send JSON text");
                    if send(&mut socket, &reply).await { Next::Continue } else { Next::Close(1000, "") }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => Next::Continue,
                Some(Ok(Message::Close(_))) | None => Next::Close(1000, ""),
                Some(Err(e)) => {
                    tracing::info!(parent: &session.span, error = %e, "socket error");
                    Next::Close(1000, "")
                }
            },
        };
    }
    if let Next::Close(code, reason) = next {
        if !reason.is_empty() {
            close(&mut socket, code, reason).await;
        }
    }
    session.stop_turn();
    session.stop_stream().await;
    drain_stale(&mut events);
    tracing::info!(parent: &session.span, "session ended");
}

fn drain_stale(events: &mut UnboundedReceiver<Event>) {
    while events.try_recv().is_ok() {}
}

impl Session {
    /// Count a client message against the message rate; `Some` when it is over the limit (the
    /// message is then dropped unread and [`Session::flood_notice`] sends the refusal).
    fn over_message_rate(&mut self) -> Option<Refused> {
        let refused = self.limits.message(self.state.now_ms()).err();
        self.flood = refused.or(self.flood);
        refused
    }

    /// Tell the client its messages are being dropped, at most once a second during a flood.
    async fn flood_notice(&mut self, socket: &mut WebSocket) -> Next {
        let now = self.state.now_ms();
        if self
            .last_flood_notice_ms
            .is_some_and(|t| now.saturating_sub(t) < FLOOD_NOTICE_INTERVAL_MS)
        {
            return Next::Continue;
        }
        self.last_flood_notice_ms = Some(now);
        tracing::warn!(parent: &self.span, "client messages over MESSAGES_PER_SECOND are dropped");
        let Some(refused) = self.flood.take() else {
            return Next::Continue;
        };
        if send(socket, &ServerMessage::limited(refused)).await {
            Next::Continue
        } else {
            Next::Close(1000, "")
        }
    }

    /// Start a live stream with the given id and announce it with `hello`.
    async fn start_stream(&mut self, socket: &mut WebSocket, stream_id: String) -> Result<(), ()> {
        let cfg = &self.state.config;
        let dir = cfg.hls_dir.join(&stream_id);
        let seed = u64::from_str_radix(&stream_id, 16).unwrap_or(0);
        let channel = self.state.channel_config();
        let sample_rate = channel.sample_rate;
        match Producer::spawn(
            &stream_id,
            dir.clone(),
            channel,
            seed,
            self.state.portrait.clone(),
            self.state.generator.as_ref().map(|g| GeneratorLink {
                generator: Arc::clone(g),
                runtime: tokio::runtime::Handle::current(),
                ref_image: cfg.avatar_ref_image.clone().unwrap_or_default(),
                session_id: self.id.clone(),
                window_ms: cfg.seg_len_ms,
                overlap_ms: cfg.seg_overlap_ms,
                buffer_ms: cfg.generator_buffer_ms,
            }),
            self.events_tx.clone(),
        ) {
            Ok(producer) => {
                self.stream = Some(Stream {
                    id: stream_id.clone(),
                    dir,
                    producer,
                });
            }
            Err(e) => {
                tracing::error!(parent: &self.span, error = %e, "could not start the media thread");
                send(
                    socket,
                    &ServerMessage::error(ErrorCode::StreamFailed, "could not start the stream"),
                )
                .await;
                return Err(());
            }
        }
        let hello = ServerMessage::Hello {
            session_id: self.id.clone(),
            playlist: format!("/hls/{stream_id}/index.m3u8"),
            version: env!("CARGO_PKG_VERSION"),
            stream: StreamInfo {
                width: cfg.width,
                height: cfg.height,
                fps: cfg.fps,
                segment_ms: cfg.seg_len_ms,
                audio_sample_rate: sample_rate,
            },
            llm: self.state.llm.as_ref().map_or_else(
                || "none".to_string(),
                |l| format!("{}:{}", l.name(), l.model()),
            ),
            tts: self.state.tts.name().into(),
            video_generator: self.state.generator_kind.clone(),
            generator_note: self.state.generator_note.clone(),
        };
        send(socket, &hello).await;
        send(socket, &status(Stage::Idle, None)).await;
        Ok(())
    }

    /// End the stream (ENDLIST) and remove its files after the linger time.
    async fn stop_stream(&mut self) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        let Stream {
            id, dir, producer, ..
        } = stream;
        let joined = tokio::task::spawn_blocking(move || producer.finish_blocking()).await;
        if joined.is_err() {
            tracing::error!(parent: &self.span, "media thread could not be joined");
        }
        tracing::info!(parent: &self.span, stream = %id, "stream ended");
        let linger = Duration::from_millis(self.state.config.session_linger_ms);
        let shutdown = self.state.shutdown.clone();
        self.state.tracker.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(linger) => {}
                _ = shutdown.cancelled() => {}
            }
            let _ = tokio::task::spawn_blocking(move || remove_session_dir(&dir)).await;
        });
    }

    /// Cancel the current turn (if any) and tell the media thread to drop its audio.
    fn stop_turn(&mut self) -> bool {
        let Some(turn) = self.turn.take() else {
            return false;
        };
        turn.cancel.cancel();
        if let Some(stream) = &self.stream {
            let _ = stream
                .producer
                .sender()
                .send(Frame::Interrupt { turn: turn.id });
        }
        true
    }

    async fn on_text(&mut self, socket: &mut WebSocket, text: &str) -> Next {
        let reply = match parse_client_message(text) {
            Err(rejected) => {
                tracing::info!(parent: &self.span, code = ?rejected.code, "rejected a client message: {}", rejected.message);
                Some(ServerMessage::error(rejected.code, rejected.message))
            }
            Ok(ClientMessage::Log { level, message }) => {
                self.log_client(&level, &message);
                None
            }
            Ok(ClientMessage::Prompt { text }) => self.on_prompt(socket, text).await,
            Ok(ClientMessage::Control { action }) => match action {
                ControlAction::Interrupt => {
                    if self.stop_turn() {
                        tracing::info!(parent: &self.span, "interrupted by the client");
                        Some(status(Stage::Idle, Some("interrupted")))
                    } else {
                        Some(status(Stage::Idle, Some("nothing to interrupt")))
                    }
                }
                ControlAction::Stop => {
                    self.stop_turn();
                    self.stop_stream().await;
                    Some(status(Stage::Complete, Some("stream stopped")))
                }
                ControlAction::Start => {
                    if self.stream.is_some() {
                        Some(status(Stage::Idle, Some("already streaming")))
                    } else if self.start_stream(socket, new_id()).await.is_err() {
                        return Next::Close(1011, "stream failed");
                    } else {
                        None
                    }
                }
            },
        };
        match reply {
            Some(r) if !send(socket, &r).await => Next::Close(1000, ""),
            _ => Next::Continue,
        }
    }

    fn log_client(&self, level: &str, message: &str) {
        let message: String = message.chars().take(MAX_LOGGED_CLIENT_CHARS).collect();
        let span = &self.span;
        match level {
            "error" => tracing::error!(parent: span, "client log: {message}"),
            "warn" | "warning" => tracing::warn!(parent: span, "client log: {message}"),
            "debug" => tracing::debug!(parent: span, "client log: {message}"),
            _ => tracing::info!(parent: span, "client log: {message}"),
        }
    }

    async fn on_prompt(&mut self, socket: &mut WebSocket, text: String) -> Option<ServerMessage> {
        let prompt_at = Instant::now();
        let text = text.trim().to_string();
        if text.is_empty() {
            return Some(ServerMessage::error(
                ErrorCode::EmptyPrompt,
                "the prompt is empty; type something for the avatar to say",
            ));
        }
        let max = self.state.config.max_prompt_chars;
        let chars = text.chars().count();
        if chars > max {
            return Some(ServerMessage::error(
                ErrorCode::PromptTooLong,
                format!("the prompt has {chars} characters; the limit is {max} (MAX_PROMPT_CHARS)"),
            ));
        }
        let Some(stream) = &self.stream else {
            return Some(ServerMessage::error(
                ErrorCode::NotStreaming,
                "the stream is stopped; send {\"type\":\"control\",\"action\":\"start\"} first",
            ));
        };
        let frames = stream.producer.sender();
        let llm = self.state.llm.is_some() && self.conversation.is_some();
        if let Err(refused) = self.limits.prompt(llm, chars as u64, self.state.now_ms()) {
            tracing::info!(parent: &self.span, limit = refused.limit.setting(), "prompt refused by a limit");
            return Some(ServerMessage::limited(refused));
        }
        if self.stop_turn() {
            tracing::info!(parent: &self.span, "barge-in: a new prompt interrupts the answer");
        }
        let turn = self.next_turn;
        self.next_turn += 1;
        let cancel = CancellationToken::new();
        self.turn = Some(Turn {
            id: turn,
            cancel: cancel.clone(),
        });
        self.timings.insert(
            turn,
            Timing {
                llm,
                prompt: text.clone(),
                prompt_at,
                metrics: TurnMetrics {
                    turn,
                    ..TurnMetrics::default()
                },
            },
        );
        tracing::info!(parent: &self.span, turn, chars, "prompt received");
        let ctx = TurnContext {
            turn,
            tts: Arc::clone(&self.state.tts),
            stream_rate: self.state.channel_config().sample_rate,
            chunker: self.state.config.chunker_config(),
            frames,
            events: self.events_tx.clone(),
            cancel,
        };
        let (source, note) = match (&self.state.llm, &self.conversation) {
            (Some(llm), Some(conv)) => (
                TextSource::Llm(Arc::clone(llm), conv.messages_for(&text)),
                "thinking",
            ),
            _ => (TextSource::Direct(text), "preparing speech"),
        };
        self.state.tracker.spawn(run_turn(ctx, source));
        send(socket, &status(Stage::Thinking, Some(note))).await;
        None
    }

    fn timing(&mut self, turn: u64) -> Option<&mut Timing> {
        self.timings.get_mut(&turn)
    }

    async fn on_event(&mut self, socket: &mut WebSocket, event: Event) -> Next {
        let ms = |t: &Timing, at: Instant| (at - t.prompt_at).as_secs_f64() * 1000.0;
        let reply = match event {
            Event::SegmentPublished { .. } => None,
            Event::FirstToken { turn, at } => {
                if let Some(t) = self.timing(turn) {
                    t.metrics.first_token_ms = Some(ms(t, at));
                }
                None
            }
            Event::FirstText { turn, at } => {
                if let Some(t) = self.timing(turn) {
                    t.metrics.first_text_ms = Some(ms(t, at));
                }
                None
            }
            Event::VoiceText { turn, chars } => {
                let llm = self.timing(turn).is_some_and(|t| t.llm);
                let now = self.state.now_ms();
                match self.limits.voice_chars(if llm { chars } else { 0 }, now) {
                    Err(refused) if llm && self.is_current(turn) => {
                        tracing::warn!(parent: &self.span, turn, "TTS_CHARS_PER_HOUR reached: the answer stops here");
                        self.stop_turn();
                        send(socket, &status(Stage::Idle, Some("interrupted"))).await;
                        Some(ServerMessage::limited(refused))
                    }
                    _ => None,
                }
            }
            Event::FirstAudio { turn, at } => {
                if let Some(t) = self.timing(turn) {
                    t.metrics.first_audio_ms = Some(ms(t, at));
                }
                None
            }
            Event::FirstSpeakingFrame { turn, at } => {
                if let Some(t) = self.timing(turn) {
                    t.metrics.first_frame_ms = Some(ms(t, at));
                }
                None
            }
            Event::FirstSpeakingSegment { turn, at } => {
                if let Some(t) = self.timing(turn) {
                    t.metrics.first_segment_ms = Some(ms(t, at));
                }
                self.is_current(turn).then(|| status(Stage::Speaking, None))
            }
            Event::Transcript {
                turn,
                text,
                start_ms,
                end_ms,
                start_pdt_ms,
                end_pdt_ms,
            } => Some(ServerMessage::Transcript {
                turn,
                text,
                start_ms,
                end_ms,
                start_pdt_ms,
                end_pdt_ms,
            }),
            Event::GeneratorNote { turn, message } => {
                tracing::warn!(parent: &self.span, turn, "video generator: {message}");
                Some(ServerMessage::error(
                    ErrorCode::GeneratorFailed,
                    format!("the video generator could not keep up ({message}); the built-in avatar filled in"),
                ))
            }
            Event::TurnComplete {
                turn,
                at,
                interrupted,
                spoken,
                windows,
            } => {
                if self.is_current(turn) {
                    self.turn = None;
                }
                if let Some(mut t) = self.timings.remove(&turn) {
                    if let Some(conv) = self.conversation.as_mut() {
                        // Memory keeps only what the avatar actually said.
                        conv.record_turn(&t.prompt, &spoken);
                    }
                    t.metrics.complete_ms = Some(ms(&t, at));
                    t.metrics.interrupted = interrupted;
                    if let Some((generated, builtin)) = windows {
                        t.metrics.generator_windows = Some(generated);
                        t.metrics.builtin_windows = Some(builtin);
                        tracing::info!(parent: &self.span, turn, generated, builtin, "windows by source");
                    }
                    let m = &t.metrics;
                    tracing::info!(
                        parent: &self.span,
                        turn,
                        interrupted,
                        first_token_ms = m.first_token_ms.unwrap_or(-1.0),
                        first_text_ms = m.first_text_ms.unwrap_or(-1.0),
                        first_audio_ms = m.first_audio_ms.unwrap_or(-1.0),
                        first_frame_ms = m.first_frame_ms.unwrap_or(-1.0),
                        first_segment_ms = m.first_segment_ms.unwrap_or(-1.0),
                        complete_ms = m.complete_ms.unwrap_or(-1.0),
                        "turn timing"
                    );
                    if !send(socket, &ServerMessage::Metrics(t.metrics)).await {
                        return Next::Close(1000, "");
                    }
                }
                if interrupted || self.turn.is_some() {
                    None
                } else {
                    send(socket, &status(Stage::Complete, None)).await;
                    Some(status(Stage::Idle, None))
                }
            }
            Event::TurnFailed { turn, llm, message } => {
                let code = if llm {
                    ErrorCode::LlmFailed
                } else {
                    ErrorCode::TtsFailed
                };
                tracing::warn!(parent: &self.span, turn, "turn failed: {message}");
                // The turn still ends through TurnComplete, which returns the status to idle.
                Some(ServerMessage::error(code, message))
            }
            Event::StreamFailed(why) => {
                send(
                    socket,
                    &ServerMessage::error(
                        ErrorCode::StreamFailed,
                        format!("the stream stopped: {why}"),
                    ),
                )
                .await;
                send(socket, &status(Stage::Error, Some(&why))).await;
                // Close so the page reconnects to a fresh session.
                return Next::Close(1011, "stream failed");
            }
            Event::StreamFinished => None,
        };
        match reply {
            Some(r) if !send(socket, &r).await => Next::Close(1000, ""),
            _ => Next::Continue,
        }
    }

    fn is_current(&self, turn: u64) -> bool {
        self.turn.as_ref().is_some_and(|t| t.id == turn)
    }
}
