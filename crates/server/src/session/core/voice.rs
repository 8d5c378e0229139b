//! The session's side of the microphone: `mic` start/stop, audio frames and what the
//! [`Mic`](crate::session::mic::Mic) heard in them (speech started, barge-in, an utterance to
//! transcribe), audio-drop notices, and the recognizer's answer ([`Event::Heard`]) becoming a
//! prompt unless it is the avatar's own words coming back (the echo check and the words it
//! remembers for it).
//!
//! [`Event::Heard`]: crate::pipeline::Event::Heard

use std::time::Instant;

use super::{send, status, Action, SessionCore, FLOOD_NOTICE_INTERVAL_MS};
use crate::pipeline::HeardOutcome;
use crate::protocol::{ErrorCode, MicAction, MicMode, Playback, ServerMessage, SpeechState, Stage};
use crate::session::mic::{is_echo_of, AudioRejected, Avatar, Heard};

impl SessionCore {
    /// What the microphone needs to know of the avatar now.
    pub(super) fn avatar(&self, now: Instant) -> Avatar {
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
    pub(super) fn audio_rejected(&mut self, rejected: AudioRejected, ms: u64) -> Vec<Action> {
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

    pub(super) fn on_mic(
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
    pub(super) fn on_heard_audio(&mut self, heard: Vec<Heard>, now: Instant) -> Vec<Action> {
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

    /// `heard` is the avatar's own recent words coming back (see [`is_echo_of`]).
    fn heard_own_words(&self, heard: &str) -> bool {
        self.recent_words
            .iter()
            .any(|(_, spoken)| is_echo_of(heard, spoken))
    }

    /// Remember what the avatar says in `turn` (the last two turns are kept).
    pub(super) fn remember_words(&mut self, turn: u64, text: &str) {
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
    pub(super) fn on_heard(
        &mut self,
        utterance: u64,
        outcome: HeardOutcome,
        now: Instant,
    ) -> Vec<Action> {
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
            self.mark_stt(turn, stt_ms);
        }
        let mut out = vec![send(ServerMessage::UserTranscript {
            text,
            turn: accepted.then_some(turn),
        })];
        out.extend(answer);
        out
    }
}
