//! The pipelined turn of [`OpenAiTts`](super::OpenAiTts): one request task per text (at most
//! `max_in_flight` at once), their audio passed on strictly in input order.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::chunker::has_speakable;
use crate::http;
use crate::retry::{Failure, Next, Retry};
use crate::tts::{deliver, TtsChunk, TtsError, TtsInput, TurnWorker};

use super::{decode::estimate_words, Inner, OpenAiTts};

/// What a request task passes to its turn, in order: audio pieces (at the configured rate), then
/// `Done` or `Failed`.
#[derive(Debug)]
pub(super) enum Piece {
    Audio(Vec<i16>),
    Done,
    Failed(TtsError),
}

/// A request of a turn, started and not yet fully played.
pub(super) struct Pending {
    text: String,
    rx: mpsc::UnboundedReceiver<Piece>,
    task: JoinHandle<()>,
    /// A `Done`/`Failed` read while gathering audio, to handle next.
    stash: Option<Piece>,
    /// Samples of this request delivered so far.
    delivered: u64,
}

impl Drop for Pending {
    fn drop(&mut self) {
        // Dropping the task aborts the request (and closes its connection).
        self.task.abort();
    }
}

impl Pending {
    /// The next piece; consecutive audio pieces already received are merged into one.
    /// `None` when the task ended without saying how (it panicked).
    pub(super) async fn next(&mut self) -> Option<Piece> {
        let first = match self.stash.take() {
            Some(p) => p,
            None => self.rx.recv().await?,
        };
        let Piece::Audio(mut pcm) = first else {
            return Some(first);
        };
        while let Ok(piece) = self.rx.try_recv() {
            match piece {
                Piece::Audio(more) => pcm.extend_from_slice(&more),
                other => {
                    self.stash = Some(other);
                    break;
                }
            }
        }
        Some(Piece::Audio(pcm))
    }
}

/// The front request's next piece; never resolves when nothing is in flight.
pub(super) async fn next_piece(queue: &mut VecDeque<Pending>) -> Option<Piece> {
    match queue.front_mut() {
        Some(front) => front.next().await,
        None => std::future::pending().await,
    }
}

/// One turn: start a request per text (up to `max_in_flight` ahead) and play their audio in
/// order, until End, input closed, output dropped, an error or cancel.
pub(super) async fn run_turn(inner: Arc<Inner>, worker: TurnWorker) {
    let TurnWorker {
        mut input,
        output,
        cancel,
    } = worker;
    let rate = inner.config.pcm_rate;
    let max_in_flight = inner.config.max_in_flight;
    // Dropping the queue (any return) aborts every request still running.
    let mut queue: VecDeque<Pending> = VecDeque::new();
    let mut input_open = true;
    let mut turn_samples = 0u64;
    // Once any audio of the turn has reached the caller, no request of the turn is retried.
    let audio_out = Arc::new(AtomicBool::new(false));
    loop {
        if !input_open && queue.is_empty() {
            return;
        }
        let can_start = input_open && queue.len() < max_in_flight;
        let step = tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            _ = output.closed() => return,
            message = input.recv(), if can_start => Step::Input(message),
            piece = next_piece(&mut queue) => Step::Piece(piece),
        };
        match step {
            Step::Input(None | Some(TtsInput::End)) => input_open = false,
            // Each text is requested as soon as it arrives: nothing to flush.
            Step::Input(Some(TtsInput::Flush)) => {}
            Step::Input(Some(TtsInput::Text(text))) => {
                if !has_speakable(&text) {
                    continue;
                }
                let (tx, rx) = mpsc::unbounded_channel();
                let task = tokio::spawn(fetch(inner.clone(), text.clone(), tx, audio_out.clone()));
                queue.push_back(Pending {
                    text,
                    rx,
                    task,
                    stash: None,
                    delivered: 0,
                });
            }
            Step::Piece(piece) => {
                let Some(front) = queue.front_mut() else {
                    continue;
                };
                let item = match piece {
                    Some(Piece::Audio(pcm)) => {
                        let mut chunk = TtsChunk {
                            pcm,
                            sample_rate: rate,
                            words: Vec::new(),
                            text: String::new(),
                        };
                        audio_out.store(true, Ordering::SeqCst);
                        if front.delivered == 0 {
                            let offset_ms = turn_samples * 1000 / u64::from(rate);
                            chunk.text = front.text.trim().to_string();
                            chunk.words = estimate_words(
                                &front.text,
                                offset_ms,
                                inner.us_per_char.load(Ordering::Relaxed),
                            );
                        }
                        front.delivered += chunk.pcm.len() as u64;
                        turn_samples += chunk.pcm.len() as u64;
                        Ok(chunk)
                    }
                    Some(Piece::Done) => {
                        if front.delivered == 0 {
                            tracing::warn!(
                                text = %http::shorten(&front.text),
                                "openai TTS: the server answered without audio"
                            );
                        } else {
                            inner.learn(&front.text, front.delivered * 1000 / u64::from(rate));
                        }
                        queue.pop_front();
                        continue;
                    }
                    Some(Piece::Failed(e)) => Err(e),
                    None => Err(TtsError::Worker {
                        provider: OpenAiTts::NAME,
                        reason: "a request task ended unexpectedly".to_string(),
                    }),
                };
                if !deliver(&output, &cancel, item).await {
                    return;
                }
            }
        }
    }
}

pub(super) enum Step {
    Input(Option<TtsInput>),
    Piece(Option<Piece>),
}

/// Why an attempt failed, and whether another may follow.
pub(super) type AttemptError = Failure<TtsError>;

/// Requests `text` (with retries) and sends its audio to `tx`, then `Done` or `Failed`.
pub(super) async fn fetch(
    inner: Arc<Inner>,
    text: String,
    tx: mpsc::UnboundedSender<Piece>,
    turn_audio_out: Arc<AtomicBool>,
) {
    let mut retry = Retry::new(inner.config.retry, OpenAiTts::NAME);
    loop {
        let mut sent_audio = false;
        let result = inner.attempt(&text, &tx, &mut sent_audio).await;
        let failure = match result {
            Ok(()) => {
                let _ = tx.send(Piece::Done);
                return;
            }
            Err(failure) => failure,
        };
        let reached = sent_audio || turn_audio_out.load(Ordering::SeqCst);
        match retry.after(failure, reached).await {
            Next::Again => {}
            Next::Fail(failure) => {
                let _ = tx.send(Piece::Failed(failure.error));
                return;
            }
            Next::Cancelled => return,
        }
    }
}
