//! What flows between the stages of a session, and the turn stage that produces speech.
//!
//! A turn runs as one async task: prompt text (from the LLM, or typed when there is none) →
//! the text chunker → the TTS provider → audio resampled to the stream rate → [`Frame::Audio`]
//! to the session's media thread. Everything the stages report back to the session travels as an
//! [`Event`]. Interrupting a turn cancels its token (the TTS stops at once) and sends the urgent
//! [`Frame::Interrupt`], which makes the media thread drop everything queued for that turn.

use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Instant;

use talkstream_providers::{
    Chunker, ChunkerConfig, Resampler, TtsChunk, TtsInput, TtsProvider, WordTiming,
};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

/// What flows into a session's media thread.
#[derive(Debug)]
pub enum Frame {
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
    /// The chunker released the turn's first text for the TTS.
    FirstText {
        /// The turn.
        turn: u64,
        /// When.
        at: Instant,
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
    /// The first segment containing the turn's speech was published.
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
    },
    /// A turn failed; the stream goes on.
    TurnFailed {
        /// The turn.
        turn: u64,
        /// What happened, for people.
        message: String,
    },
    /// The media thread stopped because of an error.
    StreamFailed(String),
    /// The media thread ended the playlist and stopped.
    StreamFinished,
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
    pub frames: std_mpsc::Sender<Frame>,
    /// Where reports go.
    pub events: UnboundedSender<Event>,
    /// Cancelled on interrupt.
    pub cancel: CancellationToken,
}

/// Speak `text` directly (no LLM): chunk it, synthesize it, hand the audio to the media thread.
pub async fn run_direct_speech(ctx: TurnContext, text: String) {
    let turn = ctx.turn;
    let events = ctx.events.clone();
    let frames = ctx.frames.clone();
    let cancel = ctx.cancel.clone();
    let result = speak(ctx, text).await;
    if cancel.is_cancelled() {
        return;
    }
    if let Err(message) = result {
        tracing::warn!(turn, "turn failed: {message}");
        let _ = events.send(Event::TurnFailed { turn, message });
    }
    let _ = frames.send(Frame::TurnEnd { turn });
}

async fn speak(ctx: TurnContext, text: String) -> Result<(), String> {
    let TurnContext {
        turn,
        tts,
        stream_rate,
        chunker,
        frames,
        events,
        cancel,
    } = ctx;
    let tts_turn = tts.start_turn(cancel.clone());
    let input = tts_turn.input;
    let mut output = tts_turn.output;
    let mut resampler = Resampler::new(tts.sample_rate(), stream_rate)
        .map_err(|e| format!("cannot convert the voice's audio to the stream rate: {e}"))?;

    // Typed text arrives all at once: the chunker cuts it into clauses right away.
    let mut chunker = Chunker::new(chunker);
    let mut chunks = chunker.push(&text, 0);
    chunks.extend(chunker.finish());
    let feeder = {
        let events = events.clone();
        let cancel = cancel.clone();
        async move {
            let mut first = true;
            for chunk in chunks {
                if first {
                    let _ = events.send(Event::FirstText {
                        turn,
                        at: Instant::now(),
                    });
                    first = false;
                }
                if cancel.is_cancelled() || input.send(TtsInput::Text(chunk)).await.is_err() {
                    return;
                }
            }
            let _ = input.send(TtsInput::End).await;
        }
    };
    let reader = async {
        let mut first = true;
        while let Some(item) = output.recv().await {
            let chunk: TtsChunk = item.map_err(|e| format!("speech synthesis failed: {e}"))?;
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
            if frames
                .send(Frame::Audio {
                    turn,
                    pcm,
                    text: chunk.text,
                    words,
                })
                .is_err()
            {
                return Err("the stream has stopped".to_string());
            }
        }
        Ok(())
    };
    let (_, read) = tokio::join!(feeder, reader);
    read
}
