//! The per-session media thread: mixes queued speech into the stream's audio, drives the
//! avatar's mouth from that audio (lip-sync), renders, encodes and segments with the media core,
//! writes the results, and paces all of it against the wall clock so the live stream advances in
//! real time. While speech is queued it may run up to [`SPEECH_LEAD_MS`] ahead of the clock so a
//! speaking segment is published quickly; idle frames are never produced ahead.
//!
//! It receives [`Frame`]s and reports [`Event`]s.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use talkstream_avatar::Portrait;
use talkstream_media::{ChannelConfig, LiveChannel, MediaError, Output};
use tokio::sync::mpsc::UnboundedSender;

use crate::files::{FileError, OutputWriter};
use crate::generation::{Decision, GeneratorLink, TurnGeneration};
use crate::pipeline::{Event, Frame};
use crate::render::FaceRenderer;

/// How far ahead of the wall clock speech frames may be produced.
pub const SPEECH_LEAD_MS: u64 = 1000;

/// Longest first segment of a turn, so its speech is published quickly.
pub const FIRST_SPEECH_SEGMENT_MS: u32 = 600;

/// Why the media thread stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    /// The media core rejected a frame or failed to encode.
    #[error("media: {0}")]
    Media(#[from] MediaError),
    /// The avatar could not be rendered.
    #[error("avatar: {0}")]
    Avatar(#[from] talkstream_avatar::AvatarError),
    /// Writing the stream's files failed.
    #[error("files: {0}")]
    Files(#[from] FileError),
}

/// A running media thread.
#[derive(Debug)]
pub struct Producer {
    frames: mpsc::Sender<Frame>,
    thread: Option<JoinHandle<()>>,
}

impl Producer {
    /// Start the media thread of one stream, writing into `dir`.
    pub fn spawn(
        stream_id: &str,
        dir: PathBuf,
        channel: ChannelConfig,
        seed: u64,
        portrait: Option<Arc<Portrait>>,
        generator: Option<GeneratorLink>,
        events: UnboundedSender<Event>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("media-{stream_id}"))
            .spawn(
                move || match run(dir, channel, seed, portrait, generator, &rx, &events) {
                    Ok(()) => {
                        let _ = events.send(Event::StreamFinished);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "stream stopped");
                        let _ = events.send(Event::StreamFailed(e.to_string()));
                    }
                },
            )?;
        Ok(Self {
            frames: tx,
            thread: Some(thread),
        })
    }

    /// A sender for frames into this thread.
    pub fn sender(&self) -> mpsc::Sender<Frame> {
        self.frames.clone()
    }

    /// Ask the thread to end the stream and wait for it (blocking; call from a blocking context).
    pub fn finish_blocking(mut self) {
        let _ = self.frames.send(Frame::Finish);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("media thread panicked");
            }
        }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        // Dropping without finish_blocking still stops the thread.
        let _ = self.frames.send(Frame::Finish);
    }
}

fn unix_ms_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The turn whose speech is queued or playing.
#[derive(Debug)]
struct ActiveTurn {
    id: u64,
    /// Stream sample where its speech starts.
    start_sample: u64,
    /// Samples of its audio received so far.
    received: u64,
    /// No more audio will come.
    ended: bool,
    first_frame_reported: bool,
    first_segment_reported: bool,
    /// Words (or whole chunks when the voice gives no word timings) with their stream start.
    spoken: Vec<(u64, String)>,
}

impl ActiveTurn {
    /// The text whose audio starts before `until_ms` of stream time (all of it for `u64::MAX`).
    fn spoken_until(&self, until_ms: u64) -> String {
        self.spoken
            .iter()
            .filter(|(start, _)| *start < until_ms)
            .map(|(_, w)| w.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The speech side of the stream: queued samples, the active turn, lip-sync.
struct Speech {
    queue: VecDeque<i16>,
    turn: Option<ActiveTurn>,
    /// Turns at or below this id were interrupted; their late audio is dropped.
    interrupted_upto: Option<u64>,
    /// Stream sample up to which segments have been published.
    published_until: u64,
    /// Avatar + lip-sync: the mouth follows the queued speech.
    face: FaceRenderer,
    /// The external video generator, if one is configured.
    generator: Option<GeneratorLink>,
    /// Its side of the current turn.
    gen_turn: Option<TurnGeneration>,
    /// WEBRTC SINK HOOK (issue 9, until the media loop has sinks): the stream's WebRTC output,
    /// fed with every encoded frame; cleared on barge-in.
    webrtc: Option<crate::webrtc::WebRtcStream>,
    /// Wall-clock instant of media time 0.
    wall_start: Instant,
    fps: u32,
    stream_rate: u32,
}

fn run(
    dir: PathBuf,
    cfg: ChannelConfig,
    seed: u64,
    portrait: Option<Arc<Portrait>>,
    generator: Option<GeneratorLink>,
    frames: &mpsc::Receiver<Frame>,
    events: &UnboundedSender<Event>,
) -> Result<(), ProducerError> {
    let writer = OutputWriter::create(dir)?;
    let start = Instant::now();
    let start_unix_ms = unix_ms_now();
    // Wall-clock "now" derived from a monotonic clock so a clock step cannot upset deletion.
    let now_ms = || start_unix_ms + start.elapsed().as_millis() as i64;
    let rate = u64::from(cfg.sample_rate);

    let mut channel = LiveChannel::new(cfg.clone(), start_unix_ms)?;
    let mut pcm: Vec<i16> = Vec::new();
    let mut stream_samples: u64 = 0;
    let mut speech = Speech {
        queue: VecDeque::new(),
        turn: None,
        interrupted_upto: None,
        published_until: 0,
        face: FaceRenderer::new(&cfg, seed, portrait.as_deref())?,
        generator,
        gen_turn: None,
        webrtc: None,
        wall_start: start,
        fps: cfg.fps,
        stream_rate: cfg.sample_rate,
    };
    let mut last_lag_warning = Instant::now() - Duration::from_secs(60);

    'stream: loop {
        // Take everything that is waiting, urgent or not, before deciding what to render.
        loop {
            match frames.try_recv() {
                Ok(f) => {
                    if !handle_frame(
                        f,
                        &mut speech,
                        &mut channel,
                        stream_samples,
                        rate,
                        start_unix_ms,
                        events,
                    ) {
                        break 'stream;
                    }
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => break 'stream,
            }
        }

        let n = channel.next_frame_index();
        let t_ms = channel.frame_time_ms(n);
        let lead = if speech.queue.is_empty() {
            0
        } else {
            SPEECH_LEAD_MS
        };
        let due = start + Duration::from_millis(t_ms.saturating_sub(lead));
        let now = Instant::now();
        if now < due {
            match frames.recv_timeout(due - now) {
                Ok(f) => {
                    if !handle_frame(
                        f,
                        &mut speech,
                        &mut channel,
                        stream_samples,
                        rate,
                        start_unix_ms,
                        events,
                    ) {
                        break 'stream;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break 'stream,
            }
            continue;
        }
        // Behind the frame's real time (not the speech lead) by more than a second?
        let real_due = start + Duration::from_millis(t_ms);
        if now > real_due + Duration::from_secs(1) && last_lag_warning.elapsed().as_secs() >= 10 {
            tracing::warn!(
                behind_ms = (now - real_due).as_millis() as u64,
                "the stream is falling behind real time (machine too slow or overloaded)"
            );
            last_lag_warning = Instant::now();
        }

        // This frame's audio: queued speech first, silence after.
        let need = channel.samples_for_frame(n);
        pcm.clear();
        let take = need.min(speech.queue.len());
        pcm.extend(speech.queue.drain(..take));
        pcm.resize(need, 0);
        let speaking_frame = take > 0;
        let frame_start_sample = stream_samples;
        stream_samples += need as u64;

        let generated = match speech.gen_turn.as_mut() {
            Some(g) => {
                let (frame, decision) = g.frame(n);
                let frame = frame.cloned();
                if let Some(Decision::Builtin { why }) = decision {
                    tracing::warn!(frame = n, "window filled by the built-in renderer: {why}");
                    if g.from_builtin == 1 {
                        if let Some(turn) = speech.turn.as_ref() {
                            let _ = events.send(Event::GeneratorNote {
                                turn: turn.id,
                                message: why,
                            });
                        }
                    }
                }
                frame
            }
            None => None,
        };
        // WEBRTC SINK HOOK: a viewer's keyframe request makes this frame an IDR (throttled).
        if let Some(webrtc) = &speech.webrtc {
            if webrtc.take_keyframe_request(Instant::now()) {
                channel.request_keyframe();
            }
        }
        let pushed = match &generated {
            Some(frame) => {
                speech.face.skip(n);
                channel.push_frame_with_unit(frame, &pcm, now_ms())?
            }
            None => {
                let frame = speech.face.render(n, t_ms)?;
                channel.push_frame_with_unit(frame, &pcm, now_ms())?
            }
        };
        // WEBRTC SINK HOOK: the same unit goes to the WebRTC output, which sends it when due.
        if let Some(webrtc) = &speech.webrtc {
            if let Err(e) = webrtc.push(&pushed.unit, channel.encoder(), start) {
                tracing::warn!(frame = n, error = %e, "WebRTC output refused a frame");
            }
        }
        let outputs = pushed.outputs;

        if let Some(turn) = speech.turn.as_mut() {
            if speaking_frame && !turn.first_frame_reported {
                turn.first_frame_reported = true;
                let _ = events.send(Event::FirstSpeakingFrame {
                    turn: turn.id,
                    at: Instant::now(),
                });
            }
        }
        report_outputs(&outputs, &mut speech, rate, events);
        writer.apply(outputs)?;

        // A turn is complete once its last sample is in a published segment.
        let done = speech.turn.as_ref().is_some_and(|t| {
            t.ended
                && speech.queue.is_empty()
                && speech.published_until >= t.start_sample + t.received
        });
        if done {
            if let Some(t) = speech.turn.take() {
                let windows = speech
                    .gen_turn
                    .take()
                    .map(|g| (g.from_generator, g.from_builtin));
                let _ = events.send(Event::TurnComplete {
                    turn: t.id,
                    at: Instant::now(),
                    interrupted: false,
                    spoken: t.spoken_until(u64::MAX),
                    windows,
                });
            }
        }
        if n % u64::from(cfg.fps) == 0 {
            speech
                .face
                .lipsync()
                .discard_before(frame_start_sample.saturating_sub(rate));
            writer.apply(channel.poll_expired(now_ms()))?;
        }
    }
    let outputs = channel.finish(now_ms())?;
    report_outputs(&outputs, &mut speech, rate, events);
    writer.apply(outputs)?;
    Ok(())
}

/// Apply one incoming frame. Returns false when the stream must end.
fn handle_frame(
    frame: Frame,
    speech: &mut Speech,
    channel: &mut LiveChannel,
    stream_samples: u64,
    rate: u64,
    start_unix_ms: i64,
    events: &UnboundedSender<Event>,
) -> bool {
    match frame {
        Frame::Finish => return false,
        // WEBRTC SINK HOOK: attach the output.
        Frame::WebRtc(stream) => speech.webrtc = Some(stream),
        Frame::Interrupt { turn } => {
            speech.interrupted_upto = Some(speech.interrupted_upto.map_or(turn, |u| u.max(turn)));
            if speech.turn.as_ref().is_some_and(|t| t.id <= turn) {
                speech.queue.clear();
                // WEBRTC SINK HOOK: nothing of the interrupted answer not yet sent may go out.
                if let Some(webrtc) = &speech.webrtc {
                    webrtc.clear_pending();
                }
                speech.face.lipsync().clear_from(stream_samples);
                channel.clear_cues_from(stream_samples * 1000 / rate);
                // Dropping the turn's generation cancels its windows (processes are killed).
                let windows = speech
                    .gen_turn
                    .take()
                    .map(|g| (g.from_generator, g.from_builtin));
                if let Some(t) = speech.turn.take() {
                    tracing::info!(turn = t.id, "speech interrupted");
                    let _ = events.send(Event::TurnComplete {
                        turn: t.id,
                        at: Instant::now(),
                        interrupted: true,
                        spoken: t.spoken_until(stream_samples * 1000 / rate),
                        windows,
                    });
                }
            }
        }
        Frame::TurnEnd { turn } => {
            if let Some(t) = speech.turn.as_mut().filter(|t| t.id == turn) {
                t.ended = true;
                if let Some(g) = speech.gen_turn.as_mut() {
                    g.finish();
                }
            } else if !is_interrupted(speech, turn) && speech.turn.is_none() {
                // A turn that produced no audio at all (e.g. the TTS failed at once).
                let _ = events.send(Event::TurnComplete {
                    turn,
                    at: Instant::now(),
                    interrupted: false,
                    spoken: String::new(),
                    windows: None,
                });
            }
        }
        Frame::Audio {
            turn,
            pcm,
            text,
            words,
        } => {
            if is_interrupted(speech, turn) || pcm.is_empty() {
                return true;
            }
            if speech.turn.as_ref().is_some_and(|t| t.id != turn) {
                // A new turn without an interrupt: the old one gives way.
                speech.queue.clear();
                speech.face.lipsync().clear_from(stream_samples);
                let windows = speech
                    .gen_turn
                    .take()
                    .map(|g| (g.from_generator, g.from_builtin));
                if let Some(t) = speech.turn.take() {
                    let _ = events.send(Event::TurnComplete {
                        turn: t.id,
                        at: Instant::now(),
                        interrupted: true,
                        spoken: t.spoken_until(stream_samples * 1000 / rate),
                        windows,
                    });
                }
            }
            if speech.turn.is_none() {
                if let Some(link) = speech.generator.clone() {
                    // GENERATOR_BUFFER_MS of silence before the answer gives a slow generator
                    // time; the speech then starts on a frame boundary after it.
                    let buffer_frames = u64::from(link.buffer_ms) * u64::from(speech.fps) / 1000;
                    let first_frame = channel.next_frame_index() + buffer_frames;
                    for k in 0..buffer_frames {
                        let n = channel.next_frame_index() + k;
                        let len = channel.samples_for_frame(n);
                        speech.queue.extend(std::iter::repeat_n(0i16, len));
                    }
                    match TurnGeneration::new(
                        link,
                        speech.stream_rate,
                        speech.fps,
                        first_frame,
                        speech.wall_start,
                    ) {
                        Ok(g) => speech.gen_turn = Some(g),
                        Err(e) => {
                            tracing::warn!("external generator unavailable for this turn: {e}")
                        }
                    }
                }
            }
            let queued = speech.queue.len() as u64;
            let active = speech.turn.get_or_insert_with(|| {
                // Speech starts with the next frame, in a new short segment.
                channel.cut_before_next(Some(FIRST_SPEECH_SEGMENT_MS));
                ActiveTurn {
                    id: turn,
                    start_sample: stream_samples + queued,
                    received: 0,
                    ended: false,
                    first_frame_reported: false,
                    first_segment_reported: false,
                    spoken: Vec::new(),
                }
            });
            let chunk_start = active.start_sample + active.received;
            active.received += pcm.len() as u64;
            // Word timings count from the first sample of the turn.
            let turn_start_ms = active.start_sample * 1000 / rate;
            let chunk_start_ms = chunk_start * 1000 / rate;
            let chunk_end_ms = (chunk_start + pcm.len() as u64) * 1000 / rate;
            speech.face.lipsync().push_audio(chunk_start, &pcm);
            if let Some(g) = speech.gen_turn.as_mut() {
                g.push_audio(&pcm);
            }
            for w in &words {
                speech.face.lipsync().add_hint(
                    turn_start_ms + w.start_ms,
                    turn_start_ms + w.end_ms,
                    &w.text,
                );
            }
            // What the turn said, word by word, for the conversation memory (blank words from a
            // provider's alignment are skipped so the text joins cleanly).
            if words.is_empty() {
                if !text.trim().is_empty() {
                    active
                        .spoken
                        .push((chunk_start_ms, text.trim().to_string()));
                }
            } else {
                active.spoken.extend(
                    words
                        .iter()
                        .filter(|w| !w.text.trim().is_empty())
                        .map(|w| (turn_start_ms + w.start_ms, w.text.trim().to_string())),
                );
            }
            let (start_ms, end_ms) = match (words.first(), words.last()) {
                (Some(f), Some(l)) => (turn_start_ms + f.start_ms, turn_start_ms + l.end_ms),
                _ => (chunk_start_ms, chunk_end_ms),
            };
            let text = text.trim().to_string();
            if !text.is_empty() {
                channel.add_cue(start_ms, end_ms.max(start_ms + 1), &text);
                let _ = events.send(Event::Transcript {
                    turn,
                    text,
                    start_ms,
                    end_ms,
                    start_pdt_ms: start_unix_ms + start_ms as i64,
                    end_pdt_ms: start_unix_ms + end_ms as i64,
                });
            }
            speech.queue.extend(pcm);
        }
    }
    true
}

fn is_interrupted(speech: &Speech, turn: u64) -> bool {
    speech.interrupted_upto.is_some_and(|u| turn <= u)
}

fn report_outputs(
    outputs: &[Output],
    speech: &mut Speech,
    rate: u64,
    events: &UnboundedSender<Event>,
) {
    for out in outputs {
        if let Output::Segment { info, .. } = out {
            tracing::debug!(
                msn = info.msn,
                duration_ms = info.duration_ms,
                "segment published"
            );
            let _ = events.send(Event::SegmentPublished { msn: info.msn });
            let seg_end_sample =
                ((info.start_ms as f64 + info.duration_ms) * rate as f64 / 1000.0).round() as u64;
            speech.published_until = speech.published_until.max(seg_end_sample);
            if let Some(turn) = speech.turn.as_mut() {
                if !turn.first_segment_reported && seg_end_sample > turn.start_sample {
                    turn.first_segment_reported = true;
                    let _ = events.send(Event::FirstSpeakingSegment {
                        turn: turn.id,
                        at: Instant::now(),
                    });
                }
            }
        }
    }
}
