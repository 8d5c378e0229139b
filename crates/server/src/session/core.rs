//! The session core: everything a session decides, with no socket, no tasks and no clock.
//! Client messages and pipeline [`Event`]s go in, with the time; [`Action`]s come out, in the
//! order they must be carried out: messages to send, streams to start or stop, turns to start or
//! cancel, the socket to close. The driver ([`super::driver`]) carries them out over a
//! WebSocket; the tests here drive the core in virtual time.
//!
//! This file holds the entry points (frames, events, the stream's life) and the message
//! rate; `turns` keeps the turn bookkeeping, `voice` the microphone, `portrait` photo uploads.

use std::collections::HashMap;
use std::time::Instant;

use talkstream_providers::{ChatMessage, Conversation};

use super::mic::{Mic, MicSettings};
use crate::access::limits::{LimitSettings, Refused, SessionLimits};
use crate::pipeline::{Event, TurnError};
use crate::protocol::{
    looks_like_portrait, parse_client_message_with, portrait_message_limit, ClientMessage,
    ControlAction, ErrorCode, ServerMessage, Stage,
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
    /// Listening rules of the microphone.
    pub mic: MicSettings,
    /// A speech recognizer is configured (else `mic` is refused with this note).
    pub stt: Result<(), &'static str>,
    /// What a photo sent by the page does (`PORTRAIT_UPLOADS`).
    pub portraits: crate::config::PortraitUploads,
    /// Largest photo file, bytes (`PORTRAIT_MAX_BYTES`).
    pub portrait_max_bytes: usize,
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
// Actions live for one step of the session loop; boxing every message would cost an
// allocation per message for no gain.
#[allow(clippy::large_enum_variant)]
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
    /// Transcribe an utterance of the microphone; report with [`Event::Heard`].
    Transcribe {
        /// The utterance's number.
        utterance: u64,
        /// Its audio: 16 kHz mono.
        audio: Vec<i16>,
    },
    /// Check a photo the page sent (decode it, check its landmarks) off the session's loop;
    /// report with [`Event::PortraitChecked`].
    CheckPortrait {
        /// The upload's number in the session.
        upload: u64,
        /// The file's bytes (base64 decoded; at most `PORTRAIT_MAX_BYTES`).
        image: Vec<u8>,
        /// 68 finite points in the image's pixels.
        landmarks: Vec<[f32; 2]>,
    },
    /// Animate the checked photo in this session (and make it the server's default).
    ApplyPortrait {
        /// The upload's number.
        upload: u64,
        /// The portrait.
        checked: crate::uploads::CheckedPortrait,
        /// Also the default portrait for sessions started later.
        make_default: bool,
    },
    /// Back to the server's default portrait (or the drawn avatar).
    ResetPortrait,
    /// Close the socket.
    Close {
        /// WebSocket close code.
        code: u16,
        /// Reason for the close frame.
        reason: &'static str,
    },
}

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
    timings: HashMap<u64, turns::Timing>,
    conversation: Option<Conversation>,
    /// Recent turns not yet reported on screen: (turn, when its prompt arrived).
    awaiting_shown: std::collections::VecDeque<(u64, Instant)>,
    limits: SessionLimits,
    last_flood_notice_ms: Option<u64>,
    flood: Option<Refused>,
    mic: Mic,
    next_utterance: u64,
    /// Utterances being transcribed: when each ended, and whether it interrupted the avatar.
    transcribing: HashMap<u64, (Instant, bool)>,
    /// The avatar's words (captions) of the recent turns, newest last, for the echo check.
    recent_words: std::collections::VecDeque<(u64, String)>,
    /// When the last answer's speech ended (for the echo guard).
    last_answer_end: Option<Instant>,
    last_audio_notice_ms: Option<u64>,
    /// Photo uploads.
    portraits: portrait::PortraitGate,
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
            mic: Mic::new(config.mic),
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
            next_utterance: 1,
            transcribing: HashMap::new(),
            recent_words: std::collections::VecDeque::new(),
            last_answer_end: None,
            last_audio_notice_ms: None,
            portraits: portrait::PortraitGate::default(),
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
        // An utterance under way is not transcribed any more.
        drop(self.mic.stop());
        self.transcribing.clear();
        self.forget_portrait_check();
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
        let portrait_limit = portrait_message_limit(self.config.portrait_max_bytes);
        match parse_client_message_with(text, portrait_limit) {
            Err(rejected) if looks_like_portrait(text) => {
                let why = if rejected.code == ErrorCode::MessageTooLarge {
                    format!(
                        "the message is {} bytes, more than the {portrait_limit} bytes a photo of \
                         at most {} bytes takes (PORTRAIT_MAX_BYTES)",
                        text.len(),
                        self.config.portrait_max_bytes
                    )
                } else {
                    rejected.message
                };
                self.portrait_unreadable(&why)
            }
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
            Ok(ClientMessage::Mic {
                action,
                mode,
                playback,
            }) => self.on_mic(action, mode, playback, now),
            Ok(ClientMessage::Portrait { image, landmarks }) => {
                self.on_portrait(&image, &landmarks, now)
            }
            Ok(ClientMessage::PortraitReset) => self.on_portrait_reset(),
        }
    }

    /// A binary frame from the client: microphone audio. It does not count against the
    /// message rate; the microphone has its own real-time budget.
    pub fn on_binary(&mut self, data: &[u8], now: Instant) -> Vec<Action> {
        let ms = self.ms(now);
        let avatar = self.avatar(now);
        match self.mic.audio(data, ms, avatar) {
            Ok(heard) => self.on_heard_audio(heard, now),
            Err(rejected) => self.audio_rejected(rejected, ms),
        }
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

    /// Something the pipeline or the media thread reported.
    pub fn on_event(&mut self, event: Event, now: Instant) -> Vec<Action> {
        match event {
            Event::SegmentPublished { .. } | Event::StreamFinished => Vec::new(),
            Event::Publish(status) => vec![send(ServerMessage::Publish(status))],
            Event::Heard { utterance, outcome } => self.on_heard(utterance, outcome, now),
            Event::PortraitChecked { upload, outcome } => self.on_portrait_checked(upload, outcome),
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
            } => {
                self.remember_words(turn, &text);
                vec![send(ServerMessage::Transcript {
                    turn,
                    text,
                    start_ms,
                    end_ms,
                    start_pdt_ms,
                    end_pdt_ms,
                })]
            }
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
}

mod portrait;
#[cfg(test)]
mod portrait_tests;
#[cfg(test)]
mod tests;
mod turns;
mod voice;
#[cfg(test)]
mod voice_tests;
