//! The streaming language-model contract every LLM provider implements, the channel types of one
//! answer, and [`Conversation`], the bounded chat memory a session keeps between answers.
//!
//! An answer ("turn") is one output channel: text fragments come out as soon as the model
//! produces them. The output ends at the end of the answer, after one error item, or at once when
//! the turn's [`CancellationToken`] is cancelled. [`LlmOutput`] checks the token itself, so no
//! text comes out of a cancelled turn even if some was already queued, and the provider aborts
//! its HTTP request so the model stops generating (and billing).

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::output::TurnOutput;
use crate::tts::CheckFuture;

/// Who wrote a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions for the model (the persona).
    System,
    /// What the person said or typed.
    User,
    /// What the avatar answered (as far as it was actually spoken).
    Assistant,
}

/// One message of a chat, as sent to the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Author.
    pub role: Role,
    /// Text.
    pub content: String,
}

impl ChatMessage {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: Role::System,
            content: content.into(),
        }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
        }
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// Errors from an LLM provider. Each names the provider it came from; none ever contains the API
/// key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LlmError {
    /// The service rejected the credentials (HTTP 401) or refused access (HTTP 403).
    #[error(
        "{provider} LLM: authentication failed (HTTP {status}): {message} \
         (check OPENAI_API_KEY, and that OPENAI_BASE_URL points at the service the key belongs to)"
    )]
    Auth {
        /// Provider name.
        provider: &'static str,
        /// HTTP status code (401 or 403).
        status: u16,
        /// The service's error message (shortened, key redacted).
        message: String,
    },
    /// The account has no credits or quota left (HTTP 402, or 429 `insufficient_quota`).
    /// Retrying does not help.
    #[error(
        "{provider} LLM: out of credits or quota: {message} \
         (add credits or raise the quota of the account behind OPENAI_API_KEY)"
    )]
    Quota {
        /// Provider name.
        provider: &'static str,
        /// The service's error message (shortened, key redacted).
        message: String,
    },
    /// The service answered with another HTTP error status.
    #[error("{provider} LLM: HTTP {status}: {message}")]
    Http {
        /// Provider name.
        provider: &'static str,
        /// HTTP status code.
        status: u16,
        /// The service's error message (shortened, key redacted), with a hint when one helps.
        message: String,
    },
    /// The service kept answering 429 (rate limited) after the allowed retries, or asked for a
    /// longer wait than the retry policy allows.
    #[error("{provider} LLM: rate limited: {message}")]
    RateLimited {
        /// Provider name.
        provider: &'static str,
        /// The service's error message (shortened, key redacted).
        message: String,
    },
    /// The service could not be reached, or did not answer in time.
    #[error("{provider} LLM: connection failed: {message}")]
    Connection {
        /// Provider name.
        provider: &'static str,
        /// What happened.
        message: String,
    },
    /// The answer stream failed after it started: an error event inside a 200 stream, or the
    /// connection dropped or stalled mid-answer.
    #[error("{provider} LLM: answer stream failed: {message}")]
    Stream {
        /// Provider name.
        provider: &'static str,
        /// The provider's message, or what happened to the connection.
        message: String,
    },
    /// The service answered something that is not an OpenAI-style chat stream.
    #[error("{provider} LLM: unexpected response: {message}")]
    Protocol {
        /// Provider name.
        provider: &'static str,
        /// What was wrong.
        message: String,
    },
    /// A setting is missing or out of range.
    #[error("{provider} LLM: invalid setting {field}: {reason}")]
    InvalidConfig {
        /// Provider name.
        provider: &'static str,
        /// The setting.
        field: &'static str,
        /// What is wrong and what is accepted.
        reason: String,
    },
    /// The turn's worker task could not be started (no tokio runtime).
    #[error("{provider} LLM: worker failed: {reason}")]
    Worker {
        /// Provider name.
        provider: &'static str,
        /// What happened.
        reason: String,
    },
}

/// One output item of an answer: a text fragment, or the error that ended it.
pub type LlmItem = Result<String, LlmError>;

/// A streaming chat-completion provider.
///
/// Implementations spawn their work on the current tokio runtime; they must be cheap to call and
/// never block the caller.
pub trait LlmProvider: Send + Sync + 'static {
    /// Short provider name: `"openai"` (any OpenAI-compatible server).
    fn name(&self) -> &'static str;

    /// The model answers come from.
    fn model(&self) -> &str;

    /// The model and where it runs, for people (`talkstream check`): `<model> at <url>`.
    fn describe(&self) -> String;

    /// Proves the service is reachable and accepts the credentials. Returns a one-line
    /// description of what was proven.
    fn check(&self) -> CheckFuture<'_, LlmError>;

    /// Starts one answer to `messages` (usually from [`Conversation::messages_for`]). Text
    /// fragments come out of [`LlmTurn::output`] as they arrive; the output closes at the end of
    /// the answer or after one error item. Cancelling `cancel` stops the request at once (the
    /// HTTP stream is aborted) and nothing more comes out.
    ///
    /// Must be called inside a tokio runtime; outside one, the output yields an
    /// [`LlmError::Worker`] and ends.
    fn start_turn(&self, messages: Vec<ChatMessage>, cancel: CancellationToken) -> LlmTurn;
}

/// Channel capacity for text coming out of an answer.
pub const LLM_OUTPUT_CAPACITY: usize = 64;

/// The caller's end of one answer.
#[derive(Debug)]
pub struct LlmTurn {
    /// Text out.
    pub output: LlmOutput,
}

impl LlmTurn {
    /// Creates the channel of an answer: the caller's end and the provider's sender. Dropping
    /// the sender ends the output.
    pub fn channel(cancel: CancellationToken) -> (LlmTurn, mpsc::Sender<LlmItem>) {
        let (tx, rx) = mpsc::channel(LLM_OUTPUT_CAPACITY);
        (
            LlmTurn {
                output: TurnOutput::new(rx, cancel),
            },
            tx,
        )
    }

    /// An answer whose output yields `error` once and ends (for providers that cannot start).
    pub fn failed(cancel: CancellationToken, error: LlmError) -> LlmTurn {
        let (turn, tx) = LlmTurn::channel(cancel);
        // The channel is new and empty, so this cannot be full.
        let _ = tx.try_send(Err(error));
        turn
    }
}

/// The receiving end of an answer's text. Returns nothing once the turn is cancelled, even if
/// text was already queued.
pub type LlmOutput = TurnOutput<LlmItem>;

/// What [`Conversation::record_turn`] stores as the assistant's side of an exchange when nothing
/// of the answer was spoken (the person interrupted before the first word). Storing a marker
/// keeps user and assistant messages alternating, which some local chat templates require, and
/// tells the model that its previous answer was not heard.
pub const UNSPOKEN_ANSWER_MARKER: &str = "(interrupted before answering)";

/// Default character budget of a [`Conversation`] (system prompt, history and new message).
pub const DEFAULT_HISTORY_CHARS: usize = 12_000;

/// The chat memory of one session: a system prompt and the past exchanges, bounded by a
/// character budget.
///
/// When the messages would exceed the budget, the oldest exchanges (user message and answer
/// together) are dropped first. The system prompt and the newest user message are never dropped,
/// even if they alone exceed the budget. Characters are counted as Unicode scalar values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    system_prompt: String,
    max_chars: usize,
    /// Past exchanges, oldest first: (user text, spoken answer).
    history: std::collections::VecDeque<(String, String)>,
}

impl Conversation {
    /// A conversation with `system_prompt` (empty: no system message) and a character budget.
    pub fn new(system_prompt: impl Into<String>, max_chars: usize) -> Self {
        Self {
            system_prompt: system_prompt.into(),
            max_chars,
            history: Default::default(),
        }
    }

    /// The system prompt.
    pub fn system_prompt(&self) -> &str {
        &self.system_prompt
    }

    /// The character budget.
    pub fn max_chars(&self) -> usize {
        self.max_chars
    }

    /// Number of past exchanges kept.
    pub fn exchanges(&self) -> usize {
        self.history.len()
    }

    /// Forgets all past exchanges (the system prompt stays).
    pub fn clear(&mut self) {
        self.history.clear();
    }

    /// The messages to send for a new user message: the system prompt (if not empty), as many of
    /// the most recent exchanges as fit in the budget, then `user_text`.
    pub fn messages_for(&self, user_text: &str) -> Vec<ChatMessage> {
        let fixed = chars(&self.system_prompt) + chars(user_text);
        let keep = self.fitting_exchanges(fixed);
        let mut out = Vec::with_capacity(2 + 2 * keep);
        if !self.system_prompt.is_empty() {
            out.push(ChatMessage::system(self.system_prompt.clone()));
        }
        for (user, answer) in self.history.iter().skip(self.history.len() - keep) {
            out.push(ChatMessage::user(user.clone()));
            out.push(ChatMessage::assistant(answer.clone()));
        }
        out.push(ChatMessage::user(user_text));
        out
    }

    /// Remembers an exchange. `spoken_answer` must be only what was actually spoken: after a
    /// barge-in, the answer cut where the audio stopped. Surrounding whitespace is trimmed; an
    /// empty spoken answer is stored as [`UNSPOKEN_ANSWER_MARKER`]. An exchange with an empty
    /// `user_text` is not stored. Exchanges that no longer fit the budget are dropped, oldest
    /// first.
    pub fn record_turn(&mut self, user_text: &str, spoken_answer: &str) {
        let user = user_text.trim();
        if user.is_empty() {
            return;
        }
        let answer = spoken_answer.trim();
        let answer = if answer.is_empty() {
            UNSPOKEN_ANSWER_MARKER
        } else {
            answer
        };
        self.history
            .push_back((user.to_string(), answer.to_string()));
        let keep = self.fitting_exchanges(chars(&self.system_prompt));
        while self.history.len() > keep {
            self.history.pop_front();
        }
    }

    /// How many of the newest exchanges fit in the budget next to `fixed` characters.
    fn fitting_exchanges(&self, fixed: usize) -> usize {
        let mut used = fixed;
        let mut keep = 0;
        for (user, answer) in self.history.iter().rev() {
            let cost = chars(user) + chars(answer);
            if used + cost > self.max_chars {
                break;
            }
            used += cost;
            keep += 1;
        }
        keep
    }
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(msgs: &[ChatMessage]) -> Vec<Role> {
        msgs.iter().map(|m| m.role).collect()
    }

    #[test]
    fn role_serializes_lowercase() {
        let m = ChatMessage::assistant("hi");
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"role":"assistant","content":"hi"}"#
        );
        assert_eq!(serde_json::to_string(&Role::System).unwrap(), r#""system""#);
    }

    #[test]
    fn first_message_has_system_and_user() {
        let c = Conversation::new("Be terse.", 1000);
        let m = c.messages_for("Hi");
        assert_eq!(
            m,
            vec![ChatMessage::system("Be terse."), ChatMessage::user("Hi")]
        );
        let c = Conversation::new("", 1000);
        assert_eq!(c.messages_for("Hi"), vec![ChatMessage::user("Hi")]);
    }

    #[test]
    fn history_is_kept_in_order() {
        let mut c = Conversation::new("S", 1000);
        c.record_turn("one", "answer one");
        c.record_turn("two", "answer two");
        let m = c.messages_for("three");
        assert_eq!(
            m,
            vec![
                ChatMessage::system("S"),
                ChatMessage::user("one"),
                ChatMessage::assistant("answer one"),
                ChatMessage::user("two"),
                ChatMessage::assistant("answer two"),
                ChatMessage::user("three"),
            ]
        );
    }

    #[test]
    fn oldest_pairs_are_dropped_first() {
        // system 10 chars, each exchange 10 chars, new message 10 chars, budget 40.
        let mut c = Conversation::new("s".repeat(10), 40);
        c.record_turn("aaaaa", "AAAAA");
        c.record_turn("bbbbb", "BBBBB");
        c.record_turn("ccccc", "CCCCC");
        // Stored: 10 + 3*10 = 40 fits exactly.
        assert_eq!(c.exchanges(), 3);
        let m = c.messages_for(&"n".repeat(10));
        assert_eq!(
            roles(&m),
            vec![
                Role::System,
                Role::User,
                Role::Assistant,
                Role::User,
                Role::Assistant,
                Role::User
            ]
        );
        assert_eq!(m[1].content, "bbbbb");
        assert_eq!(m[3].content, "ccccc");
        let total: usize = m.iter().map(|m| m.content.chars().count()).sum();
        assert!(total <= 40);
        // Recording a fourth exchange drops the oldest one for good.
        c.record_turn("ddddd", "DDDDD");
        assert_eq!(c.exchanges(), 3);
        assert_eq!(c.messages_for("")[1].content, "bbbbb");
        assert_eq!(c.messages_for("x")[1].content, "ccccc");
    }

    #[test]
    fn system_prompt_and_new_message_are_never_dropped() {
        let mut c = Conversation::new("system prompt longer than the budget", 10);
        c.record_turn("hello", "hi");
        assert_eq!(c.exchanges(), 0);
        let long = "a user message that is also longer than the budget";
        let m = c.messages_for(long);
        assert_eq!(
            m,
            vec![
                ChatMessage::system("system prompt longer than the budget"),
                ChatMessage::user(long)
            ]
        );
    }

    #[test]
    fn budget_counts_characters_not_bytes() {
        let mut c = Conversation::new("", 6);
        c.record_turn("äöü", "éèê"); // 6 chars, 12 bytes
        assert_eq!(c.exchanges(), 1);
        assert_eq!(c.messages_for("").len(), 3);
        assert_eq!(c.messages_for("x").len(), 1);
    }

    #[test]
    fn cut_and_empty_answers() {
        let mut c = Conversation::new("S", 1000);
        c.record_turn("tell me a story", "Once upon a ");
        c.record_turn("stop", "   ");
        c.record_turn("   ", "ignored");
        let m = c.messages_for("next");
        assert_eq!(m[2], ChatMessage::assistant("Once upon a"));
        assert_eq!(m[3], ChatMessage::user("stop"));
        assert_eq!(m[4], ChatMessage::assistant(UNSPOKEN_ANSWER_MARKER));
        assert_eq!(m.len(), 6);
        c.clear();
        assert_eq!(c.messages_for("x").len(), 2);
    }

    #[tokio::test]
    async fn queued_text_is_not_returned_after_cancel() {
        let cancel = CancellationToken::new();
        let (mut turn, tx) = LlmTurn::channel(cancel.clone());
        tx.send(Ok("a".into())).await.unwrap();
        tx.send(Ok("b".into())).await.unwrap();
        assert_eq!(turn.output.recv().await.unwrap().unwrap(), "a");
        cancel.cancel();
        assert!(turn.output.recv().await.is_none());
        assert!(matches!(
            turn.output.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ));
    }

    #[tokio::test]
    async fn failed_turn_yields_its_error_then_ends() {
        let mut turn = LlmTurn::failed(
            CancellationToken::new(),
            LlmError::Worker {
                provider: "test",
                reason: "no runtime".into(),
            },
        );
        let err = turn.output.recv().await.unwrap().unwrap_err();
        assert_eq!(err.to_string(), "test LLM: worker failed: no runtime");
        assert!(turn.output.recv().await.is_none());
    }
}
