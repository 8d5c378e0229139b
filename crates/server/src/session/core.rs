//! The session core: everything a session decides, with no socket, no tasks and no clock.
//! Client messages and pipeline [`Event`]s go in, with the time; [`Action`]s come out, in the
//! order they must be carried out: messages to send, streams to start or stop, turns to start or
//! cancel, the socket to close. The driver ([`super::driver`]) carries them out over a
//! WebSocket; the tests here drive the core in virtual time.

use std::collections::HashMap;
use std::time::Instant;

use talkstream_providers::{ChatMessage, Conversation};

use super::mic::{AudioRejected, Avatar, Heard, Mic, MicSettings};
use crate::access::limits::{LimitSettings, Refused, SessionLimits};
use crate::pipeline::{Event, HeardOutcome, TurnError};
use crate::protocol::{
    looks_like_portrait, parse_client_message_with, portrait_message_limit, ClientMessage,
    ControlAction, ErrorCode, MicAction, MicMode, Playback, ServerMessage, SpeechState, Stage,
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

    /// What the microphone needs to know of the avatar now.
    fn avatar(&self, now: Instant) -> Avatar {
        let busy = self.turn.is_some();
        let tail = std::time::Duration::from_millis(u64::from(self.config.mic.echo_tail_ms));
        let recent = self
            .last_answer_end
            .is_some_and(|end| now.saturating_duration_since(end) < tail);
        Avatar {
            busy,
            audible: busy || recent,
        }
    }

    /// A dropped audio frame: tell the client, at most once a second.
    fn audio_rejected(&mut self, rejected: AudioRejected, ms: u64) -> Vec<Action> {
        if self
            .last_audio_notice_ms
            .is_some_and(|t| ms.saturating_sub(t) < FLOOD_NOTICE_INTERVAL_MS)
        {
            return Vec::new();
        }
        self.last_audio_notice_ms = Some(ms);
        tracing::info!(parent: &self.span, "microphone audio dropped: {rejected}");
        let msg = match rejected {
            AudioRejected::TooFast { retry_after_ms } => ServerMessage::Error {
                code: ErrorCode::RateLimited,
                message: rejected.to_string(),
                retry_after_ms: Some(retry_after_ms),
            },
            AudioRejected::NotStarted
            | AudioRejected::Empty
            | AudioRejected::OddLength(_)
            | AudioRejected::TooLarge(_) => {
                ServerMessage::error(ErrorCode::BadAudio, rejected.to_string())
            }
        };
        vec![send(msg)]
    }

    fn on_mic(
        &mut self,
        action: MicAction,
        mode: MicMode,
        playback: Playback,
        now: Instant,
    ) -> Vec<Action> {
        match action {
            MicAction::Stop => {
                let heard = self.mic.stop();
                self.on_heard_audio(heard, now)
            }
            MicAction::Start => {
                if let Err(note) = self.config.stt {
                    return vec![send(ServerMessage::error(
                        ErrorCode::SttNotConfigured,
                        note,
                    ))];
                }
                if !self.streaming {
                    return vec![send(ServerMessage::error(
                        ErrorCode::NotStreaming,
                        "the stream is stopped; start it before the microphone",
                    ))];
                }
                let was_open = self.mic.is_open();
                let heard = self.mic.start(mode, playback, self.ms(now));
                let mut out = self.on_heard_audio(heard, now);
                if !was_open {
                    tracing::info!(parent: &self.span, ?mode, ?playback, "microphone on");
                }
                if mode == MicMode::PushToTalk && self.turn.is_some() {
                    tracing::info!(parent: &self.span, "push-to-talk interrupts the answer");
                    out.extend(self.cancel_turn());
                    out.push(send(status(Stage::Idle, Some("interrupted"))));
                }
                out
            }
        }
    }

    /// Act on what the microphone heard.
    fn on_heard_audio(&mut self, heard: Vec<Heard>, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        for h in heard {
            match h {
                Heard::Started => out.push(send(ServerMessage::UserSpeech {
                    state: SpeechState::Started,
                    duration_ms: None,
                    dropped: None,
                })),
                Heard::BargeIn => {
                    let cancelled = self.cancel_turn();
                    if !cancelled.is_empty() {
                        tracing::info!(parent: &self.span, "barge-in: the user's voice interrupts the answer");
                        out.extend(cancelled);
                        out.push(send(status(Stage::Idle, Some("interrupted"))));
                    }
                }
                Heard::Stopped {
                    duration_ms,
                    dropped,
                    audio,
                    barged_in,
                } => {
                    out.push(send(ServerMessage::UserSpeech {
                        state: SpeechState::Stopped,
                        duration_ms: Some(duration_ms),
                        dropped,
                    }));
                    if let Some(why) = dropped {
                        tracing::info!(parent: &self.span, duration_ms, "utterance dropped: {why}");
                    }
                    if let Some(audio) = audio {
                        let utterance = self.next_utterance;
                        self.next_utterance += 1;
                        self.transcribing.insert(utterance, (now, barged_in));
                        tracing::info!(parent: &self.span, utterance, duration_ms, "utterance to transcribe");
                        out.push(Action::Transcribe { utterance, audio });
                    }
                }
            }
        }
        out
    }

    /// `heard` is the avatar's own recent words coming back (see [`super::mic::is_echo_of`]).
    fn heard_own_words(&self, heard: &str) -> bool {
        self.recent_words
            .iter()
            .any(|(_, spoken)| super::mic::is_echo_of(heard, spoken))
    }

    /// Remember what the avatar says in `turn` (the last two turns are kept).
    fn remember_words(&mut self, turn: u64, text: &str) {
        match self.recent_words.back_mut() {
            Some((t, words)) if *t == turn => {
                words.push(' ');
                words.push_str(text);
            }
            _ => {
                if self.recent_words.len() >= 2 {
                    self.recent_words.pop_front();
                }
                self.recent_words.push_back((turn, text.to_string()));
            }
        }
    }

    /// The recognizer's answer for an utterance: its words become a prompt.
    fn on_heard(&mut self, utterance: u64, outcome: HeardOutcome, now: Instant) -> Vec<Action> {
        let Some((ended, barged_in)) = self.transcribing.remove(&utterance) else {
            return Vec::new();
        };
        let stt_ms = now.saturating_duration_since(ended).as_secs_f64() * 1000.0;
        let text = match outcome {
            HeardOutcome::Failed(why) => {
                tracing::warn!(parent: &self.span, utterance, "speech recognizer failed: {why}");
                return vec![send(ServerMessage::error(
                    ErrorCode::SttFailed,
                    format!("could not transcribe what you said: {why}"),
                ))];
            }
            HeardOutcome::Text(text) => text,
        };
        let text = text.trim().to_string();
        tracing::info!(parent: &self.span, utterance, stt_ms, chars = text.chars().count(), "utterance transcribed");
        if text.is_empty() {
            return vec![send(ServerMessage::error(
                ErrorCode::NothingHeard,
                "the speech recognizer heard no words",
            ))];
        }
        if barged_in && self.heard_own_words(&text) {
            tracing::warn!(parent: &self.span, utterance, "the voice that interrupted the answer was the avatar's own (echo through the microphone); not answered");
            return vec![send(ServerMessage::error(
                ErrorCode::NothingHeard,
                "what interrupted the avatar was its own voice coming back through the microphone; use headphones or push-to-talk",
            ))];
        }
        let turn = self.next_turn;
        let answer = self.on_prompt(text.clone(), now);
        let accepted = self.next_turn > turn;
        if accepted {
            if let Some(t) = self.timings.get_mut(&turn) {
                t.metrics.stt_ms = Some(stt_ms);
            }
        }
        let mut out = vec![send(ServerMessage::UserTranscript {
            text,
            turn: accepted.then_some(turn),
        })];
        out.extend(answer);
        out
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
        self.last_answer_end = Some(at);
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

mod portrait;
#[cfg(test)]
mod portrait_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod voice_tests;
