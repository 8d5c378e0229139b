//! The session core: everything a session decides, with no socket, no tasks and no clock.
//! Client messages and pipeline [`Event`]s go in, with the time; [`Action`]s come out, in the
//! order they must be carried out: messages to send, streams to start or stop, turns to start or
//! cancel, the socket to close. The driver ([`super::driver`]) carries them out over a
//! WebSocket; the tests here drive the core in virtual time.

use std::collections::HashMap;
use std::time::Instant;

use talkstream_providers::{ChatMessage, Conversation};

use crate::access::limits::{LimitSettings, Refused, SessionLimits};
use crate::pipeline::{Event, TurnError};
use crate::protocol::{
    parse_client_message, ClientMessage, ControlAction, ErrorCode, ServerMessage, Stage,
    TurnMetrics,
};

/// Longest client log line written to the server log.
const MAX_LOGGED_CLIENT_CHARS: usize = 2000;
/// Shortest time between two notices about the same message flood.
const FLOOD_NOTICE_INTERVAL_MS: u64 = 1_000;

/// What a session needs to know of the server's settings.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Longest prompt in characters (`MAX_PROMPT_CHARS`).
    pub max_prompt_chars: usize,
    /// A language model answers prompts (else the avatar says what is typed).
    pub llm: bool,
    /// The persona (system message), with a language model.
    pub system_prompt: String,
    /// Conversation memory in characters.
    pub history_chars: usize,
    /// Rate and spend limits.
    pub limits: LimitSettings,
}

/// Where a turn's words come from.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnText {
    /// Say the typed text.
    Direct(String),
    /// Ask the language model with this conversation.
    Llm(Vec<ChatMessage>),
}

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send a message to the client.
    Send(ServerMessage),
    /// Start a new live stream; report back with [`SessionCore::stream_started`] or
    /// [`SessionCore::stream_start_failed`].
    StartStream,
    /// End the live stream (its playlist ends; files go after the linger time).
    StopStream,
    /// Start speaking a turn on the stream.
    StartTurn {
        /// The turn's number.
        turn: u64,
        /// Its words.
        text: TurnText,
    },
    /// Stop a turn now: cancel its providers and drop its queued speech from the stream.
    CancelTurn {
        /// The turn.
        turn: u64,
    },
    /// Close the socket.
    Close {
        /// WebSocket close code.
        code: u16,
        /// Reason for the close frame.
        reason: &'static str,
    },
}

/// Per-turn timing being collected.
#[derive(Debug)]
struct Timing {
    /// Answered by the language model (its voice characters are charged as they go).
    llm: bool,
    prompt: String,
    prompt_at: Instant,
    metrics: TurnMetrics,
}

/// Turns whose viewer timing is still awaited, newest last (a page reports the first frame of
/// an answer seconds after the turn may have ended).
const SHOWN_TURNS_KEPT: usize = 8;

/// One session's state.
#[derive(Debug)]
pub struct SessionCore {
    config: CoreConfig,
    span: tracing::Span,
    epoch: Instant,
    streaming: bool,
    /// The turn being spoken, if any.
    turn: Option<u64>,
    next_turn: u64,
    timings: HashMap<u64, Timing>,
    conversation: Option<Conversation>,
    /// Recent turns not yet reported on screen: (turn, when its prompt arrived).
    awaiting_shown: std::collections::VecDeque<(u64, Instant)>,
    limits: SessionLimits,
    last_flood_notice_ms: Option<u64>,
    flood: Option<Refused>,
}

fn status(stage: Stage, note: Option<&str>) -> ServerMessage {
    ServerMessage::Status {
        stage,
        note: note.map(str::to_string),
    }
}

fn send(msg: ServerMessage) -> Action {
    Action::Send(msg)
}

impl SessionCore {
    /// A new session at `now`, logging into `span`.
    pub fn new(config: CoreConfig, span: tracing::Span, now: Instant) -> Self {
        let conversation = config
            .llm
            .then(|| Conversation::new(config.system_prompt.clone(), config.history_chars));
        SessionCore {
            limits: SessionLimits::new(config.limits, 0),
            config,
            span,
            epoch: now,
            streaming: false,
            turn: None,
            next_turn: 1,
            timings: HashMap::new(),
            conversation,
            awaiting_shown: std::collections::VecDeque::new(),
            last_flood_notice_ms: None,
            flood: None,
        }
    }

    fn ms(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    /// The session opens: start its stream.
    pub fn start(&mut self) -> Vec<Action> {
        vec![Action::StartStream]
    }

    /// The stream asked for is running (its `hello` has been sent).
    pub fn stream_started(&mut self) -> Vec<Action> {
        self.streaming = true;
        vec![send(status(Stage::Idle, None))]
    }

    /// The stream asked for could not start.
    pub fn stream_start_failed(&mut self) -> Vec<Action> {
        vec![
            send(ServerMessage::error(
                ErrorCode::StreamFailed,
                "could not start the stream",
            )),
            Action::Close {
                code: 1011,
                reason: "stream failed",
            },
        ]
    }

    /// The client or the server is closing the session: stop what runs.
    pub fn close(&mut self) -> Vec<Action> {
        let mut out = self.cancel_turn();
        if self.streaming {
            self.streaming = false;
            out.push(Action::StopStream);
        }
        out
    }

    /// A text frame from the client.
    pub fn on_text(&mut self, text: &str, now: Instant) -> Vec<Action> {
        if let Some(flood) = self.over_message_rate(now) {
            return flood;
        }
        match parse_client_message(text) {
            Err(rejected) => {
                tracing::info!(parent: &self.span, code = ?rejected.code, "rejected a client message: {}", rejected.message);
                vec![send(ServerMessage::error(rejected.code, rejected.message))]
            }
            Ok(ClientMessage::Log { level, message }) => {
                self.log_client(&level, &message);
                Vec::new()
            }
            Ok(ClientMessage::Prompt { text }) => self.on_prompt(text, now),
            Ok(ClientMessage::Shown { turn }) => self.on_shown(turn, now),
            Ok(ClientMessage::Control { action }) => self.on_control(action),
        }
    }

    /// A binary frame from the client.
    pub fn on_binary(&mut self, now: Instant) -> Vec<Action> {
        if let Some(flood) = self.over_message_rate(now) {
            return flood;
        }
        vec![send(ServerMessage::error(
            ErrorCode::BadMessage,
            "binary messages are not supported; send JSON text",
        ))]
    }

    /// Count a message against the message rate. Over it, the message is dropped unread and
    /// the client is told so, at most once a second.
    fn over_message_rate(&mut self, now: Instant) -> Option<Vec<Action>> {
        let ms = self.ms(now);
        let refused = self.limits.message(ms).err()?;
        self.flood = Some(refused);
        if self
            .last_flood_notice_ms
            .is_some_and(|t| ms.saturating_sub(t) < FLOOD_NOTICE_INTERVAL_MS)
        {
            return Some(Vec::new());
        }
        self.last_flood_notice_ms = Some(ms);
        tracing::warn!(parent: &self.span, "client messages over MESSAGES_PER_SECOND are dropped");
        Some(
            self.flood
                .take()
                .map(|r| vec![send(ServerMessage::limited(r))])
                .unwrap_or_default(),
        )
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

    /// Cancel the current turn, if any.
    fn cancel_turn(&mut self) -> Vec<Action> {
        match self.turn.take() {
            Some(turn) => vec![Action::CancelTurn { turn }],
            None => Vec::new(),
        }
    }

    fn on_control(&mut self, action: ControlAction) -> Vec<Action> {
        match action {
            ControlAction::Interrupt => {
                let mut out = self.cancel_turn();
                let note = if out.is_empty() {
                    "nothing to interrupt"
                } else {
                    tracing::info!(parent: &self.span, "interrupted by the client");
                    "interrupted"
                };
                out.push(send(status(Stage::Idle, Some(note))));
                out
            }
            ControlAction::Stop => {
                let mut out = self.close();
                out.push(send(status(Stage::Complete, Some("stream stopped"))));
                out
            }
            ControlAction::Start if self.streaming => {
                vec![send(status(Stage::Idle, Some("already streaming")))]
            }
            ControlAction::Start => vec![Action::StartStream],
        }
    }

    fn on_prompt(&mut self, text: String, now: Instant) -> Vec<Action> {
        let text = text.trim().to_string();
        if text.is_empty() {
            return vec![send(ServerMessage::error(
                ErrorCode::EmptyPrompt,
                "the prompt is empty; type something for the avatar to say",
            ))];
        }
        let max = self.config.max_prompt_chars;
        let chars = text.chars().count();
        if chars > max {
            return vec![send(ServerMessage::error(
                ErrorCode::PromptTooLong,
                format!("the prompt has {chars} characters; the limit is {max} (MAX_PROMPT_CHARS)"),
            ))];
        }
        if !self.streaming {
            return vec![send(ServerMessage::error(
                ErrorCode::NotStreaming,
                "the stream is stopped; send {\"type\":\"control\",\"action\":\"start\"} first",
            ))];
        }
        let llm = self.conversation.is_some();
        if let Err(refused) = self.limits.prompt(llm, chars as u64, self.ms(now)) {
            tracing::info!(parent: &self.span, limit = refused.limit.setting(), "prompt refused by a limit");
            return vec![send(ServerMessage::limited(refused))];
        }
        let mut out = self.cancel_turn();
        if !out.is_empty() {
            tracing::info!(parent: &self.span, "barge-in: a new prompt interrupts the answer");
        }
        let turn = self.next_turn;
        self.next_turn += 1;
        self.turn = Some(turn);
        if self.awaiting_shown.len() >= SHOWN_TURNS_KEPT {
            self.awaiting_shown.pop_front();
        }
        self.awaiting_shown.push_back((turn, now));
        self.timings.insert(
            turn,
            Timing {
                llm,
                prompt: text.clone(),
                prompt_at: now,
                metrics: TurnMetrics {
                    turn,
                    ..TurnMetrics::default()
                },
            },
        );
        tracing::info!(parent: &self.span, turn, chars, "prompt received");
        let (text, note) = match &self.conversation {
            Some(conv) => (TurnText::Llm(conv.messages_for(&text)), "thinking"),
            None => (TurnText::Direct(text), "preparing speech"),
        };
        out.push(Action::StartTurn { turn, text });
        out.push(send(status(Stage::Thinking, Some(note))));
        out
    }

    /// The page showed the first frame of `turn`'s answer: say how long that took from the
    /// prompt, once per turn (later or unknown reports are ignored).
    fn on_shown(&mut self, turn: u64, now: Instant) -> Vec<Action> {
        let Some(i) = self.awaiting_shown.iter().position(|(t, _)| *t == turn) else {
            tracing::debug!(parent: &self.span, turn, "a viewer report for an unknown or reported turn");
            return Vec::new();
        };
        let Some((_, prompt_at)) = self.awaiting_shown.remove(i) else {
            return Vec::new();
        };
        let on_screen_ms = now.saturating_duration_since(prompt_at).as_secs_f64() * 1000.0;
        tracing::info!(parent: &self.span, turn, on_screen_ms, "answer on screen in the page");
        vec![send(ServerMessage::OnScreen { turn, on_screen_ms })]
    }

    fn is_current(&self, turn: u64) -> bool {
        self.turn == Some(turn)
    }

    /// Record a per-turn time (ms from the prompt) in the field `field` picks.
    fn mark(&mut self, turn: u64, at: Instant, field: fn(&mut TurnMetrics) -> &mut Option<f64>) {
        if let Some(t) = self.timings.get_mut(&turn) {
            *field(&mut t.metrics) =
                Some(at.saturating_duration_since(t.prompt_at).as_secs_f64() * 1000.0);
        }
    }

    /// Something the pipeline or the media thread reported.
    pub fn on_event(&mut self, event: Event, now: Instant) -> Vec<Action> {
        match event {
            Event::SegmentPublished { .. } | Event::StreamFinished => Vec::new(),
            Event::FirstToken { turn, at } => {
                self.mark(turn, at, |m| &mut m.first_token_ms);
                Vec::new()
            }
            Event::FirstText { turn, at } => {
                self.mark(turn, at, |m| &mut m.first_text_ms);
                Vec::new()
            }
            Event::VoiceText { turn, chars } => self.on_voice_text(turn, chars, now),
            Event::FirstAudio { turn, at } => {
                self.mark(turn, at, |m| &mut m.first_audio_ms);
                Vec::new()
            }
            Event::FirstSpeakingFrame { turn, at } => {
                self.mark(turn, at, |m| &mut m.first_frame_ms);
                Vec::new()
            }
            Event::FirstSpeakingSegment { turn, at } => {
                self.mark(turn, at, |m| &mut m.first_segment_ms);
                if self.is_current(turn) {
                    vec![send(status(Stage::Speaking, None))]
                } else {
                    Vec::new()
                }
            }
            Event::Transcript {
                turn,
                text,
                start_ms,
                end_ms,
                start_pdt_ms,
                end_pdt_ms,
            } => vec![send(ServerMessage::Transcript {
                turn,
                text,
                start_ms,
                end_ms,
                start_pdt_ms,
                end_pdt_ms,
            })],
            Event::GeneratorNote { turn, message } => {
                tracing::warn!(parent: &self.span, turn, "video generator: {message}");
                vec![send(ServerMessage::error(
                    ErrorCode::GeneratorFailed,
                    format!("the video generator could not keep up ({message}); the built-in avatar filled in"),
                ))]
            }
            Event::TurnComplete {
                turn,
                at,
                interrupted,
                spoken,
                windows,
            } => self.on_turn_complete(turn, at, interrupted, &spoken, windows),
            Event::TurnFailed { turn, error } => {
                let code = match error {
                    TurnError::Llm(_) => ErrorCode::LlmFailed,
                    TurnError::Tts(_) | TurnError::Resample(_) | TurnError::StreamStopped => {
                        ErrorCode::TtsFailed
                    }
                };
                tracing::warn!(parent: &self.span, turn, "turn failed: {error}");
                // The turn still ends through TurnComplete, which returns the status to idle.
                vec![send(ServerMessage::error(code, error.to_string()))]
            }
            Event::StreamFailed(why) => {
                self.streaming = false;
                let mut out = self.cancel_turn();
                out.push(send(ServerMessage::error(
                    ErrorCode::StreamFailed,
                    format!("the stream stopped: {why}"),
                )));
                out.push(send(status(Stage::Error, Some(&why))));
                // Close so the page reconnects to a fresh session.
                out.push(Action::Close {
                    code: 1011,
                    reason: "stream failed",
                });
                out
            }
        }
    }

    /// A language model's answer went to the voice: charge it; stop the answer when the
    /// hourly allowance is spent.
    fn on_voice_text(&mut self, turn: u64, chars: u64, now: Instant) -> Vec<Action> {
        let llm = self.timings.get(&turn).is_some_and(|t| t.llm);
        if !llm {
            // Typed prompts were charged in full when they arrived.
            return Vec::new();
        }
        match self.limits.voice_chars(chars, self.ms(now)) {
            Err(refused) if self.is_current(turn) => {
                tracing::warn!(parent: &self.span, turn, "TTS_CHARS_PER_HOUR reached: the answer stops here");
                let mut out = self.cancel_turn();
                out.push(send(status(Stage::Idle, Some("interrupted"))));
                out.push(send(ServerMessage::limited(refused)));
                out
            }
            _ => Vec::new(),
        }
    }

    fn on_turn_complete(
        &mut self,
        turn: u64,
        at: Instant,
        interrupted: bool,
        spoken: &str,
        windows: Option<(u32, u32)>,
    ) -> Vec<Action> {
        if self.is_current(turn) {
            self.turn = None;
        }
        let mut out = Vec::new();
        if let Some(mut t) = self.timings.remove(&turn) {
            if let Some(conv) = self.conversation.as_mut() {
                // Memory keeps only what the avatar actually said.
                conv.record_turn(&t.prompt, spoken);
            }
            t.metrics.complete_ms =
                Some(at.saturating_duration_since(t.prompt_at).as_secs_f64() * 1000.0);
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
            out.push(send(ServerMessage::Metrics(t.metrics)));
        }
        if !interrupted && self.turn.is_none() {
            out.push(send(status(Stage::Complete, None)));
            out.push(send(status(Stage::Idle, None)));
        }
        out
    }
}

#[cfg(test)]
mod tests;
