//! What flows between the stages of a session, and the turn stage that produces speech.
//!
//! A turn runs as one async task: prompt text (from the LLM, or typed when there is none) →
//! the text chunker → the TTS provider → audio resampled to the stream rate → [`MediaCommand::Audio`]
//! to the session's media thread. Everything the stages report back to the session travels as an
//! [`Event`]. Interrupting a turn cancels its token (the TTS stops at once) and sends the urgent
//! [`MediaCommand::Interrupt`], which makes the media thread drop everything queued for that turn.

use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use talkstream_providers::{
    ChatMessage, Chunker, ChunkerConfig, LlmProvider, Resampler, TtsChunk, TtsInput, TtsProvider,
    WordTiming,
};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

/// What flows into a session's media thread.
#[derive(Debug)]
pub enum MediaCommand {
    /// Speech audio of a turn at the stream's sample rate, in order.
    Audio {
        /// The turn it belongs to.
        turn: u64,
        /// Mono samples at the stream rate.
        pcm: Vec<i16>,
        /// What this audio says (a chunker flush).
        text: String,
        /// Word timings relative to the first sample of the turn.
        words: Vec<WordTiming>,
    },
    /// No more audio will come for this turn.
    TurnEnd {
        /// The turn.
        turn: u64,
    },
    /// Urgent: drop everything queued for this turn (and older ones) now.
    Interrupt {
        /// The turn being interrupted.
        turn: u64,
    },
    /// Show this face from the next frame on (a portrait or the drawn avatar, built off the
    /// media thread for the stream's size and seed); the lip-sync state stays, so a turn being
    /// spoken goes on. With `ref_image`, the external generator's reference image becomes that
    /// file for the turns that start from now on.
    SetFace {
        /// The face.
        face: Box<talkstream_avatar::Face>,
        /// The generator's reference image, when it changes.
        ref_image: Option<std::path::PathBuf>,
    },
    /// End the stream (`EXT-X-ENDLIST`) and stop the thread.
    Finish,
}

/// What the stages report to the session.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A segment was written and listed.
    SegmentPublished {
        /// Media sequence number.
        msn: u64,
    },
    /// The language model sent the turn's first text.
    FirstToken {
        /// The turn.
        turn: u64,
        /// When.
        at: Instant,
    },
    /// The chunker released the turn's first text for the TTS.
    FirstText {
        /// The turn.
        turn: u64,
        /// When.
        at: Instant,
    },
    /// Text of the turn was handed to the voice (counted against the session's allowance).
    VoiceText {
        /// The turn.
        turn: u64,
        /// How many characters.
        chars: u64,
    },
    /// The TTS returned the turn's first audio.
    FirstAudio {
        /// The turn.
        turn: u64,
        /// When.
        at: Instant,
    },
    /// Text placed on the stream timeline (a caption).
    Transcript {
        /// The turn.
        turn: u64,
        /// The words.
        text: String,
        /// Stream (media) time where it starts.
        start_ms: u64,
        /// Stream time where it ends.
        end_ms: u64,
        /// Wall-clock (program date time) of the start, Unix ms.
        start_pdt_ms: i64,
        /// Wall-clock (program date time) of the end, Unix ms.
        end_pdt_ms: i64,
    },
    /// The first frame with the turn's speech was rendered.
    FirstSpeakingFrame {
        /// The turn.
        turn: u64,
        /// When.
        at: Instant,
    },
    /// The first segment (with LL-HLS: the first part) containing the turn's speech was
    /// published.
    FirstSpeakingSegment {
        /// The turn.
        turn: u64,
        /// When.
        at: Instant,
    },
    /// The turn's last audio was published (or it was interrupted).
    TurnComplete {
        /// The turn.
        turn: u64,
        /// When.
        at: Instant,
        /// True if it was cut short.
        interrupted: bool,
        /// What was actually put on the stream (cut where the audio stopped).
        spoken: String,
        /// With an external generator: windows it filled, windows the built-in renderer filled.
        windows: Option<(u32, u32)>,
    },
    /// The external generator failed or was late for a window of this turn (sent once per turn;
    /// the built-in renderer filled in).
    GeneratorNote {
        /// The turn.
        turn: u64,
        /// What went wrong.
        message: String,
    },
    /// The check of a photo the page sent finished (see [`crate::uploads`]); the error is one
    /// sentence for the person.
    PortraitChecked {
        /// The upload's number in the session.
        upload: u64,
        /// The portrait, or why not.
        outcome: Result<crate::uploads::CheckedPortrait, String>,
    },
    /// A turn failed; the stream goes on.
    TurnFailed {
        /// The turn.
        turn: u64,
        /// What went wrong.
        error: TurnError,
    },
    /// The media thread stopped because of an error.
    StreamFailed(String),
    /// The media thread ended the playlist and stopped.
    StreamFinished,
    /// The stream's RTMP publisher changed state (go live).
    Publish(crate::rtmp::PublishStatus),
    /// The speech recognizer finished an utterance of the microphone.
    Heard {
        /// The utterance (numbered per session).
        utterance: u64,
        /// What it heard.
        outcome: HeardOutcome,
    },
}

/// Everything a turn task needs.
pub struct TurnContext {
    /// Turn number within the session.
    pub turn: u64,
    /// TTS provider.
    pub tts: Arc<dyn TtsProvider>,
    /// Sample rate of the published stream.
    pub stream_rate: u32,
    /// Chunker settings.
    pub chunker: ChunkerConfig,
    /// Where audio goes.
    pub commands: std_mpsc::Sender<MediaCommand>,
    /// Where reports go.
    pub events: UnboundedSender<Event>,
    /// Cancelled on interrupt.
    pub cancel: CancellationToken,
}

/// What the speech recognizer made of an utterance. The failure text comes from the
/// recognizer's own error, which never contains credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeardOutcome {
    /// The words (possibly none).
    Text(String),
    /// The recognizer failed.
    Failed(String),
}

/// Why a turn failed. The texts come from the providers' own errors, which never contain
/// credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TurnError {
    /// The language model failed (rate limit, rejected key, an answer that stopped).
    #[error("the language model failed: {0}")]
    Llm(String),
    /// The voice failed.
    #[error("speech synthesis failed: {0}")]
    Tts(String),
    /// The voice's audio cannot be converted to the stream's rate.
    #[error("cannot convert the voice's audio to the stream rate: {0}")]
    Resample(String),
    /// The stream ended while the turn was speaking.
    #[error("the stream has stopped")]
    StreamStopped,
}

/// Where a turn's words come from.
pub enum TextSource {
    /// Typed text, said as it is (no LLM).
    Direct(String),
    /// An answer streaming from the language model.
    Llm(Arc<dyn LlmProvider>, Vec<ChatMessage>),
}

/// Run one turn: text (typed, or streamed from the LLM) → chunker → TTS → the media thread.
/// Failures are reported as [`Event::TurnFailed`]; the turn always ends with
/// [`MediaCommand::TurnEnd`] unless it was cancelled.
pub async fn run_turn(ctx: TurnContext, source: TextSource) {
    let turn = ctx.turn;
    let events = ctx.events.clone();
    let commands = ctx.commands.clone();
    let cancel = ctx.cancel.clone();
    let result = speak(ctx, source).await;
    if cancel.is_cancelled() {
        return;
    }
    if let Err(error) = result {
        tracing::warn!(turn, "turn failed: {error}");
        let _ = events.send(Event::TurnFailed { turn, error });
    }
    let _ = commands.send(MediaCommand::TurnEnd { turn });
}

async fn speak(ctx: TurnContext, source: TextSource) -> Result<(), TurnError> {
    let TurnContext {
        turn,
        tts,
        stream_rate,
        chunker,
        commands,
        events,
        cancel,
    } = ctx;
    let tts_turn = tts.start_turn(cancel.clone());
    let input = tts_turn.input;
    let mut output = tts_turn.output;
    let mut resampler = Resampler::new(tts.sample_rate(), stream_rate)
        .map_err(|e| TurnError::Resample(e.to_string()))?;

    let mut chunker = Chunker::new(chunker);
    let clock = Instant::now();
    let now_ms = move || clock.elapsed().as_millis() as u64;
    let feeder = {
        let events = events.clone();
        let cancel = cancel.clone();
        async move {
            let mut first = true;
            let mut send = |chunks: Vec<String>| {
                let events = events.clone();
                let input = input.clone();
                let cancel = cancel.clone();
                let was_first = first && !chunks.is_empty();
                if was_first {
                    first = false;
                }
                async move {
                    if was_first {
                        let _ = events.send(Event::FirstText {
                            turn,
                            at: Instant::now(),
                        });
                    }
                    for chunk in chunks {
                        let chars = chunk.chars().count() as u64;
                        if cancel.is_cancelled() || input.send(TtsInput::Text(chunk)).await.is_err()
                        {
                            return false;
                        }
                        let _ = events.send(Event::VoiceText { turn, chars });
                    }
                    true
                }
            };
            match source {
                TextSource::Direct(text) => {
                    // Typed text arrives all at once: the chunker cuts it into clauses now.
                    let mut chunks = chunker.push(&text, now_ms());
                    chunks.extend(chunker.finish());
                    if !send(chunks).await {
                        return Ok(());
                    }
                }
                TextSource::Llm(llm, messages) => {
                    let mut answer = llm.start_turn(messages, cancel.clone());
                    let mut first_token = true;
                    loop {
                        let deadline = chunker.next_deadline();
                        let wait =
                            deadline.map(|d| Duration::from_millis(d.saturating_sub(now_ms())));
                        tokio::select! {
                            fragment = answer.output.recv() => match fragment {
                                Some(Ok(text)) => {
                                    if first_token {
                                        first_token = false;
                                        let _ = events.send(Event::FirstToken { turn, at: Instant::now() });
                                    }
                                    if !send(chunker.push(&text, now_ms())).await {
                                        return Ok(());
                                    }
                                }
                                Some(Err(e)) => {
                                    // Say what already arrived, then report the failure.
                                    let rest: Vec<String> = chunker.finish().into_iter().collect();
                                    send(rest).await;
                                    let _ = input.send(TtsInput::End).await;
                                    return Err(TurnError::Llm(e.to_string()));
                                }
                                None => break,
                            },
                            _ = tokio::time::sleep(wait.unwrap_or(Duration::from_secs(3600))), if wait.is_some() => {
                                if let Some(chunk) = chunker.poll(now_ms()) {
                                    if !send(vec![chunk]).await {
                                        return Ok(());
                                    }
                                }
                            }
                            _ = cancel.cancelled() => return Ok(()),
                        }
                    }
                    let rest: Vec<String> = chunker.finish().into_iter().collect();
                    if !send(rest).await {
                        return Ok(());
                    }
                }
            }
            let _ = input.send(TtsInput::End).await;
            Ok::<(), TurnError>(())
        }
    };
    let reader = async {
        let mut first = true;
        while let Some(item) = output.recv().await {
            let chunk: TtsChunk = item.map_err(|e| TurnError::Tts(e.to_string()))?;
            if cancel.is_cancelled() {
                return Ok(());
            }
            if first {
                let _ = events.send(Event::FirstAudio {
                    turn,
                    at: Instant::now(),
                });
                first = false;
            }
            // Word timings are in milliseconds, so resampling leaves them as they are.
            let pcm = resampler.process(&chunk.pcm);
            let words = chunk.words;
            if commands
                .send(MediaCommand::Audio {
                    turn,
                    pcm,
                    text: chunk.text,
                    words,
                })
                .is_err()
            {
                return Err(TurnError::StreamStopped);
            }
        }
        Ok(())
    };
    let (fed, read) = tokio::join!(feeder, reader);
    fed.and(read)
}
