//! Turn bookkeeping: a prompt becoming a turn (checks, limits, barge-in), cancelling the turn
//! being spoken, the per-turn timings marked as the pipeline reports, the viewer's `shown`
//! report, charging a language model's answer to the voice allowance, and a turn's end
//! (conversation memory, `metrics`, back to idle).

use std::time::Instant;

use super::{send, status, Action, SessionCore, TurnText};
use crate::protocol::{ErrorCode, ServerMessage, Stage, TurnMetrics};

/// Per-turn timing being collected.
#[derive(Debug)]
pub(super) struct Timing {
    /// Answered by the language model (its voice characters are charged as they go).
    llm: bool,
    prompt: String,
    prompt_at: Instant,
    metrics: TurnMetrics,
}

/// Turns whose viewer timing is still awaited, newest last (a page reports the first frame of
/// an answer seconds after the turn may have ended).
pub(super) const SHOWN_TURNS_KEPT: usize = 8;

impl SessionCore {
    /// Cancel the current turn, if any.
    pub(super) fn cancel_turn(&mut self) -> Vec<Action> {
        match self.turn.take() {
            Some(turn) => vec![Action::CancelTurn { turn }],
            None => Vec::new(),
        }
    }

    pub(super) fn on_prompt(&mut self, text: String, now: Instant) -> Vec<Action> {
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
    pub(super) fn on_shown(&mut self, turn: u64, now: Instant) -> Vec<Action> {
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

    pub(super) fn is_current(&self, turn: u64) -> bool {
        self.turn == Some(turn)
    }

    /// Record a per-turn time (ms from the prompt) in the field `field` picks.
    pub(super) fn mark(
        &mut self,
        turn: u64,
        at: Instant,
        field: fn(&mut TurnMetrics) -> &mut Option<f64>,
    ) {
        if let Some(t) = self.timings.get_mut(&turn) {
            *field(&mut t.metrics) =
                Some(at.saturating_duration_since(t.prompt_at).as_secs_f64() * 1000.0);
        }
    }

    /// A language model's answer went to the voice: charge it; stop the answer when the
    /// hourly allowance is spent.
    pub(super) fn on_voice_text(&mut self, turn: u64, chars: u64, now: Instant) -> Vec<Action> {
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

    pub(super) fn on_turn_complete(
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

    /// Record how long the recognizer took for the utterance that became `turn`'s prompt.
    pub(super) fn mark_stt(&mut self, turn: u64, stt_ms: f64) {
        if let Some(t) = self.timings.get_mut(&turn) {
            t.metrics.stt_ms = Some(stt_ms);
        }
    }
}
