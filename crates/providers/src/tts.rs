//! The streaming text-to-speech contract every TTS provider implements (local, ElevenLabs,
//! OpenAI-style), and the channel types of one speaking turn.
//!
//! A turn is two channels: text goes in as it arrives ([`TtsInput`]), audio comes out as soon as
//! each piece is ready ([`TtsChunk`]). The output ends when the turn ends (after
//! [`TtsInput::End`], or when the input sender is dropped), after an error item, or at once when
//! the turn's [`CancellationToken`] is cancelled. [`TtsOutput`] checks the token itself, so no
//! audio comes out of a cancelled turn even if some was already queued.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::chunker::has_speakable;
use crate::output::TurnOutput;
use tokio_util::sync::CancellationToken;

/// Text sent into a turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TtsInput {
    /// More text to speak (usually a clause from the [`Chunker`](crate::Chunker)).
    Text(String),
    /// Speak everything sent so far without waiting for more text (providers that buffer text
    /// generate now; providers that synthesize each `Text` at once ignore it).
    Flush,
    /// No more text in this turn: finish speaking what was sent, then close the output.
    End,
}

/// When a word is spoken, relative to the start of the turn's audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WordTiming {
    /// The word as written (surrounding punctuation removed).
    pub text: String,
    /// Start, in milliseconds from the first sample of the turn.
    pub start_ms: u64,
    /// End (exclusive), in milliseconds from the first sample of the turn.
    pub end_ms: u64,
}

/// One piece of a turn's audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TtsChunk {
    /// Mono signed 16-bit samples.
    pub pcm: Vec<i16>,
    /// Sample rate of `pcm` in Hz.
    pub sample_rate: u32,
    /// Words spoken in this chunk, in order, timed relative to the start of the turn.
    pub words: Vec<WordTiming>,
    /// The text this audio speaks, when the provider knows it (empty otherwise).
    pub text: String,
}

impl TtsChunk {
    /// No audio yet for `text` (trimmed) at `sample_rate`: what a synthesizer fills in.
    pub fn empty(sample_rate: u32, text: &str) -> Self {
        TtsChunk {
            pcm: Vec::new(),
            sample_rate,
            words: Vec::new(),
            text: text.trim().to_string(),
        }
    }

    /// Duration of `pcm` in milliseconds (rounded down).
    pub fn duration_ms(&self) -> u64 {
        if self.sample_rate == 0 {
            return 0;
        }
        self.pcm.len() as u64 * 1000 / u64::from(self.sample_rate)
    }
}

/// Errors from a TTS provider. Each names the provider it came from.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TtsError {
    /// A setting is out of range or unknown.
    #[error("{provider} TTS: invalid setting {field}: {reason}")]
    InvalidConfig {
        /// Provider name.
        provider: &'static str,
        /// The setting.
        field: &'static str,
        /// What is wrong and what is accepted.
        reason: String,
    },
    /// Voice data could not be written to or read from disk.
    #[error("{provider} TTS: voice data at {path}: {source}")]
    Data {
        /// Provider name.
        provider: &'static str,
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The engine failed on some text.
    #[error("{provider} TTS: synthesis failed for {text:?}: {reason}")]
    Synthesis {
        /// Provider name.
        provider: &'static str,
        /// The text (possibly shortened).
        text: String,
        /// The engine's error.
        reason: String,
    },
    /// A worker task failed (panicked) or could not be started.
    #[error("{provider} TTS: worker failed: {reason}")]
    Worker {
        /// Provider name.
        provider: &'static str,
        /// What happened.
        reason: String,
    },
    /// The operation was cancelled. A cancelled turn just closes its output; this is for calls
    /// that must return something.
    #[error("{provider} TTS: cancelled")]
    Cancelled {
        /// Provider name.
        provider: &'static str,
    },
    /// The service answered with an HTTP error status.
    #[error("{provider} TTS: HTTP {status}: {message}")]
    Http {
        /// Provider name.
        provider: &'static str,
        /// HTTP status code.
        status: u16,
        /// The service's error message (shortened).
        message: String,
    },
    /// The service rejected the credentials.
    #[error("{provider} TTS: authentication failed: {message}")]
    Auth {
        /// Provider name.
        provider: &'static str,
        /// The service's error message (shortened).
        message: String,
    },
    /// The connection to the service failed or broke.
    #[error("{provider} TTS: connection failed: {message}")]
    Connection {
        /// Provider name.
        provider: &'static str,
        /// What happened.
        message: String,
    },
}

/// One output item of a turn.
pub type TtsItem = Result<TtsChunk, TtsError>;

/// What a provider's `check` returns: a one-line description of what was proven, or the error.
pub type CheckFuture<'a, E> = Pin<Box<dyn Future<Output = Result<String, E>> + Send + 'a>>;

/// A streaming text-to-speech provider.
///
/// Implementations spawn their work on the current tokio runtime (and its blocking pool); they
/// must be cheap to call and never block the caller.
pub trait TtsProvider: Send + Sync + 'static {
    /// Short provider name: `"local"`, `"elevenlabs"`, `"openai"`.
    fn name(&self) -> &'static str;

    /// Sample rate of the PCM this provider produces, in Hz.
    fn sample_rate(&self) -> u32;

    /// The voice in words, for people (`talkstream check`): `built-in (en-us)`,
    /// `ElevenLabs <voice> (<model>)`, `<model> / <voice> at <url>`.
    fn describe(&self) -> String;

    /// Proves the voice works for real, the way each provider can (the built-in voice
    /// synthesizes a word offline; cloud voices speak a word through the service). Returns a
    /// one-line description of what was proven.
    fn check(&self) -> CheckFuture<'_, TtsError>;

    /// Starts one turn. Feed text through [`TtsTurn::input`]; read audio from
    /// [`TtsTurn::output`] until it returns `None` (the turn ended) or an error item (after which
    /// it ends). Cancelling `cancel` stops synthesis at once, drops text not yet spoken and ends
    /// the output without further chunks.
    ///
    /// Must be called inside a tokio runtime; outside one, the output yields a
    /// [`TtsError::Worker`] and ends.
    fn start_turn(&self, cancel: CancellationToken) -> TtsTurn;
}

/// Channel capacity for text going into a turn.
pub const TURN_INPUT_CAPACITY: usize = 64;
/// Channel capacity for audio coming out of a turn.
pub const TURN_OUTPUT_CAPACITY: usize = 32;

/// The caller's ends of one turn.
#[derive(Debug)]
pub struct TtsTurn {
    /// Text in. Dropping it ends the turn like [`TtsInput::End`].
    pub input: mpsc::Sender<TtsInput>,
    /// Audio out.
    pub output: TtsOutput,
}

/// The provider's ends of one turn, for implementations of [`TtsProvider::start_turn`].
#[derive(Debug)]
pub struct TurnWorker {
    /// Text from the caller.
    pub input: mpsc::Receiver<TtsInput>,
    /// Audio to the caller. Dropping it ends the output.
    pub output: mpsc::Sender<TtsItem>,
    /// The turn's cancellation token.
    pub cancel: CancellationToken,
}

impl TtsTurn {
    /// Creates the channels of a turn: the caller's ends and the provider's ends.
    pub fn channel(cancel: CancellationToken) -> (TtsTurn, TurnWorker) {
        let (input_tx, input_rx) = mpsc::channel(TURN_INPUT_CAPACITY);
        let (output_tx, output_rx) = mpsc::channel(TURN_OUTPUT_CAPACITY);
        let turn = TtsTurn {
            input: input_tx,
            output: TurnOutput::new(output_rx, cancel.clone()),
        };
        let worker = TurnWorker {
            input: input_rx,
            output: output_tx,
            cancel,
        };
        (turn, worker)
    }

    /// Starts a turn whose provider side is `work` (given the provider's ends), spawned on the
    /// current tokio runtime. Outside a runtime the turn yields one [`TtsError::Worker`] and ends.
    pub fn spawn<F, Fut>(provider: &'static str, cancel: CancellationToken, work: F) -> TtsTurn
    where
        F: FnOnce(TurnWorker) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return TtsTurn::failed(
                cancel,
                TtsError::Worker {
                    provider,
                    reason: "start_turn was called outside a tokio runtime".to_string(),
                },
            );
        };
        let (turn, worker) = TtsTurn::channel(cancel);
        runtime.spawn(work(worker));
        turn
    }

    /// A turn whose output yields `error` once and ends (for providers that cannot start).
    pub fn failed(cancel: CancellationToken, error: TtsError) -> TtsTurn {
        let (turn, worker) = TtsTurn::channel(cancel);
        // The channel is new and empty, so this cannot be full.
        let _ = worker.output.try_send(Err(error));
        turn
    }
}

/// The receiving end of a turn's audio. Returns nothing once the turn is cancelled, even if audio
/// was already queued.
pub type TtsOutput = TurnOutput<TtsItem>;

/// How a voice that synthesizes on the calling thread speaks one text of a turn: `(text, audio
/// samples of the turn so far)` → the chunk, `Ok(None)` when the turn was stopped meanwhile.
pub(crate) type SynthesizeText =
    Arc<dyn Fn(&str, u64) -> Result<Option<TtsChunk>, TtsError> + Send + Sync>;

/// The turn loop of the local voices: each text is synthesized on tokio's blocking pool as soon
/// as it arrives, in order, until `End`, the input closes, the output is dropped, an error is
/// sent, or the turn is cancelled (the blocking work is abandoned; `synthesize` is expected to
/// notice the cancellation itself). `split_first(text, piece)` may cut the turn's first text
/// into pieces spoken one after the other (a quicker start): it is asked again for the rest
/// with the next piece number until it says `None`.
pub(crate) async fn speak_each_text(
    provider: &'static str,
    worker: TurnWorker,
    split_first: fn(&str, usize) -> Option<(String, String)>,
    synthesize: SynthesizeText,
) {
    let TurnWorker {
        mut input,
        output,
        cancel,
    } = worker;
    let mut offset_samples = 0u64;
    // Pieces cut from the first text so far; `None` once the first text is done with.
    let mut piece: Option<usize> = Some(0);
    let mut rest: Option<String> = None;
    loop {
        let text = if let Some(text) = rest.take() {
            text
        } else {
            let message = tokio::select! {
                biased;
                _ = cancel.cancelled() => return,
                _ = output.closed() => return,
                message = input.recv() => message,
            };
            match message {
                None | Some(TtsInput::End) => return,
                // Each text is synthesized as soon as it arrives: nothing to flush.
                Some(TtsInput::Flush) => continue,
                Some(TtsInput::Text(text)) if !has_speakable(&text) => continue,
                Some(TtsInput::Text(text)) => text,
            }
        };
        let text = match piece.and_then(|n| split_first(&text, n).map(|cut| (n, cut))) {
            Some((n, (head, tail))) => {
                rest = Some(tail);
                piece = Some(n + 1);
                head
            }
            None => {
                piece = None;
                text
            }
        };
        let job = {
            let synthesize = synthesize.clone();
            tokio::task::spawn_blocking(move || synthesize(&text, offset_samples))
        };
        let result = tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            result = job => result,
        };
        let item: TtsItem = match result {
            Ok(Ok(Some(chunk))) => {
                offset_samples += chunk.pcm.len() as u64;
                Ok(chunk)
            }
            Ok(Ok(None)) => return,
            Ok(Err(e)) => Err(e),
            Err(e) => Err(TtsError::Worker {
                provider,
                reason: format!("synthesis task failed: {e}"),
            }),
        };
        if !deliver(&output, &cancel, item).await {
            return;
        }
    }
}

/// Send one item of a turn to the caller. False when the turn is over: it was cancelled, the
/// caller stopped listening, or the item was an error (nothing follows an error).
pub(crate) async fn deliver(
    output: &mpsc::Sender<TtsItem>,
    cancel: &CancellationToken,
    item: TtsItem,
) -> bool {
    let failed = item.is_err();
    let sent = tokio::select! {
        biased;
        _ = cancel.cancelled() => return false,
        sent = output.send(item) => sent,
    };
    sent.is_ok() && !failed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(n: usize) -> TtsChunk {
        TtsChunk {
            pcm: vec![1; n],
            sample_rate: 1000,
            words: Vec::new(),
            text: String::new(),
        }
    }

    #[tokio::test]
    async fn queued_audio_is_not_returned_after_cancel() {
        let cancel = CancellationToken::new();
        let (mut turn, worker) = TtsTurn::channel(cancel.clone());
        worker.output.send(Ok(chunk(10))).await.unwrap();
        worker.output.send(Ok(chunk(20))).await.unwrap();
        let first = turn.output.recv().await.unwrap().unwrap();
        assert_eq!(first.duration_ms(), 10);
        cancel.cancel();
        assert!(turn.output.recv().await.is_none());
        assert!(matches!(
            turn.output.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ));
    }

    #[tokio::test]
    async fn output_ends_when_worker_drops_its_sender() {
        let (mut turn, worker) = TtsTurn::channel(CancellationToken::new());
        drop(worker);
        assert!(turn.output.recv().await.is_none());
    }

    #[tokio::test]
    async fn failed_turn_yields_its_error_then_ends() {
        let mut turn = TtsTurn::failed(
            CancellationToken::new(),
            TtsError::Worker {
                provider: "test",
                reason: "no runtime".into(),
            },
        );
        let err = turn.output.recv().await.unwrap().unwrap_err();
        assert_eq!(err.to_string(), "test TTS: worker failed: no runtime");
        assert!(turn.output.recv().await.is_none());
    }
}
