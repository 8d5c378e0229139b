//! The media loop of one live stream as a sans-I/O state machine: [`MediaCommand`]s and the
//! time go in, [`FrameOutputs`] (encoded units, HLS files) and [`Event`]s come out. It mixes
//! queued speech into the stream's audio, drives the avatar's mouth from that audio (lip-sync),
//! renders (the built-in face, or an external generator's frame), encodes and packages with the
//! media core, and keeps the turns' bookkeeping. It never reads the clock, never sleeps and never
//! writes a file: the producer thread ([`crate::producer`]) passes the time in, waits until
//! [`MediaLoop::poll`] says a frame is due, and hands each [`FrameOutputs`] to its
//! [`MediaSink`]s. Tests drive it in virtual time.
//!
//! Time is a [`Duration`] since the stream started (a monotonic clock); the wall-clock time for
//! playlist dates and deletion grace is the stream's start ([`StreamClock`]) plus it. While speech
//! is queued, frames may be produced up to [`SPEECH_LEAD_MS`] ahead of their real time so a
//! speaking segment is published quickly; idle frames are never produced ahead.
//!
//! Run loop (what the producer thread does):
//!
//! ```text
//! loop {
//!     for cmd in waiting_commands { events(lp.handle_command(cmd, now)) }
//!     match lp.poll(now) {
//!         Step::Finish => break,
//!         Step::Wait(until) => wait for a command or until `until`,
//!         Step::Produce => { let out = lp.produce(now)?; sinks.on_frame(&out)?; events(out.events) }
//!     }
//! }
//! let out = lp.finish(now)?; sinks.finish(&out)?; events(out.events)
//! ```

mod commands;
pub mod degrade;
mod sink;
mod turn;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use talkstream_avatar::Portrait;
use talkstream_media::{ChannelConfig, LiveChannel, MediaError, Output};

use crate::generation::{Decision, GeneratorLink, TurnGeneration};
use crate::pipeline::Event;
pub use crate::pipeline::MediaCommand;
use crate::render::FaceRenderer;
use degrade::{Degrade, Picture};
pub use sink::{FrameKind, FrameOutputs, MediaSink, MemorySink, SinkError};
use turn::{turn_complete, ActiveTurn, TurnEnding};

/// How far ahead of the wall clock speech frames may be produced.
pub const SPEECH_LEAD_MS: u64 = 1000;

/// Longest first segment of a turn, so its speech is published quickly.
pub const FIRST_SPEECH_SEGMENT_MS: u32 = 600;

/// Behind a frame's real time by more than this is worth a warning.
const LAG_WARNING_AFTER: Duration = Duration::from_secs(1);

/// At most one lag warning per this long.
const LAG_WARNING_EVERY: Duration = Duration::from_secs(10);

/// Why the media loop cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum MediaLoopError {
    /// The media core rejected a frame or failed to encode.
    #[error("media: {0}")]
    Media(#[from] MediaError),
    /// The avatar could not be rendered.
    #[error("avatar: {0}")]
    Avatar(#[from] talkstream_avatar::AvatarError),
}

/// Where the stream's time starts, as values: the monotonic instant of media time 0 (for the
/// `Instant`s in [`Event`]s and generator deadlines) and the same moment in Unix milliseconds
/// (for playlist dates and deletion grace).
#[derive(Debug, Clone, Copy)]
pub struct StreamClock {
    /// Monotonic instant of stream time 0.
    pub start: Instant,
    /// Unix time (ms) of stream time 0.
    pub start_unix_ms: i64,
}

impl StreamClock {
    /// The instant at stream time `now`.
    pub fn instant(&self, now: Duration) -> Instant {
        self.start + now
    }

    /// The Unix time (ms) at stream time `now`.
    pub fn unix_ms(&self, now: Duration) -> i64 {
        self.start_unix_ms
            .saturating_add(i64::try_from(now.as_millis()).unwrap_or(i64::MAX))
    }
}

/// What the loop wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A frame is due: call [`MediaLoop::produce`].
    Produce,
    /// Nothing is due before this stream time; wait for it (or for a command).
    Wait(Duration),
    /// [`MediaCommand::Finish`] arrived: call [`MediaLoop::finish`].
    Finish,
}

/// The speech side of the stream: queued samples, the active turn.
#[derive(Debug, Default)]
struct Speech {
    queue: VecDeque<i16>,
    turn: Option<ActiveTurn>,
    /// Turns at or below this id were interrupted; their late audio is dropped.
    interrupted_upto: Option<u64>,
    /// Stream sample up to which segments have been published.
    published_until: u64,
}

impl Speech {
    fn is_interrupted(&self, turn: u64) -> bool {
        self.interrupted_upto.is_some_and(|u| turn <= u)
    }
}

/// The media loop of one stream. See the module docs.
pub struct MediaLoop {
    channel: LiveChannel,
    /// Avatar + lip-sync: the mouth follows the queued speech.
    face: FaceRenderer,
    speech: Speech,
    /// The external video generator, if one is configured.
    generator: Option<GeneratorLink>,
    /// Its side of the current turn.
    gen_turn: Option<TurnGeneration>,
    clock: StreamClock,
    fps: u32,
    /// Stream sample rate.
    rate: u64,
    /// Samples mixed into the stream so far (the next frame's first sample).
    stream_samples: u64,
    /// The next frame's PCM (reused).
    pcm: Vec<i16>,
    last_lag_warning: Option<Duration>,
    finishing: bool,
    /// How far ahead speech may be produced now (at most [`SPEECH_LEAD_MS`]).
    speech_lead: Duration,
    /// Repeating pictures while behind real time.
    degrade: Degrade,
    stats: FrameStats,
}

/// Frames a stream produced, by where their picture came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameStats {
    /// Drawn by the built-in avatar.
    pub rendered: u64,
    /// The external generator's.
    pub generated: u64,
    /// The previous picture repeated to catch up with real time.
    pub repeated: u64,
}

impl MediaLoop {
    /// The stream's encoder: its codec parameters (H.264 SPS/PPS, AAC config) for sinks.
    pub fn encoder(&self) -> &talkstream_media::encoder::FrameEncoder {
        self.channel.encoder()
    }

    /// Make the next produced frame an IDR (a sink's viewer asked for one), without cutting a
    /// segment.
    pub fn request_keyframe(&mut self) {
        self.channel.request_keyframe();
    }

    /// A loop for one stream; `clock` says when its time 0 is.
    pub fn new(
        cfg: ChannelConfig,
        seed: u64,
        portrait: Option<Arc<Portrait>>,
        generator: Option<GeneratorLink>,
        clock: StreamClock,
    ) -> Result<Self, MediaLoopError> {
        let face = FaceRenderer::new(&cfg, seed, portrait.as_deref())?;
        let fps = cfg.fps;
        let rate = u64::from(cfg.sample_rate);
        Ok(Self {
            channel: LiveChannel::new(cfg, clock.start_unix_ms)?,
            face,
            speech: Speech::default(),
            generator,
            gen_turn: None,
            clock,
            fps,
            rate,
            stream_samples: 0,
            pcm: Vec::new(),
            last_lag_warning: None,
            finishing: false,
            speech_lead: Duration::from_millis(SPEECH_LEAD_MS),
            degrade: Degrade::new(fps, Some(degrade::DEGRADE_AFTER)),
            stats: FrameStats::default(),
        })
    }

    /// How late a frame may be before the loop repeats the last picture instead of rendering
    /// (`None`: never; [`degrade::DEGRADE_AFTER`] by default).
    pub fn set_degrade_after(&mut self, after: Option<Duration>) {
        self.degrade = Degrade::new(self.fps, after);
    }

    /// Frames produced so far, by source.
    pub fn stats(&self) -> FrameStats {
        self.stats
    }

    /// True while a turn's speech is queued or being published.
    pub fn is_speaking(&self) -> bool {
        self.speech.turn.is_some() || !self.speech.queue.is_empty()
    }

    /// How far ahead of its time speech may be produced from now on: [`SPEECH_LEAD_MS`] or
    /// less. A sink whose viewers see frames at their real time (WebRTC) asks for less, because
    /// speech produced ahead is lost to them on a barge-in (a frozen picture until the clock
    /// catches up with the render position).
    pub fn set_speech_lead(&mut self, lead: Duration) {
        self.speech_lead = lead.min(Duration::from_millis(SPEECH_LEAD_MS));
    }

    /// Stream time at which the next frame is due: its real time, less the speech lead
    /// ([`MediaLoop::set_speech_lead`]) while speech is queued.
    pub fn next_due(&self) -> Duration {
        let t = Duration::from_millis(self.channel.frame_time_ms(self.channel.next_frame_index()));
        if self.speech.queue.is_empty() {
            t
        } else {
            t.saturating_sub(self.speech_lead)
        }
    }

    /// What to do at stream time `now`.
    pub fn poll(&self, now: Duration) -> Step {
        if self.finishing {
            return Step::Finish;
        }
        let due = self.next_due();
        if now < due {
            Step::Wait(due)
        } else {
            Step::Produce
        }
    }

    /// Produce the next frame at stream time `now` (call when [`MediaLoop::poll`] says
    /// [`Step::Produce`]): mix its audio, render, encode, package; report what it changed.
    pub fn produce(&mut self, now: Duration) -> Result<FrameOutputs, MediaLoopError> {
        let n = self.channel.next_frame_index();
        let t_ms = self.channel.frame_time_ms(n);
        let media_time = Duration::from_millis(t_ms);
        self.warn_if_behind(media_time, now);
        let behind = now.saturating_sub(media_time);
        let at = self.clock.instant(now);
        let now_unix_ms = self.clock.unix_ms(now);
        let mut events = Vec::new();

        // This frame's audio: queued speech first, silence after.
        let need = self.channel.samples_for_frame(n);
        self.pcm.clear();
        let take = need.min(self.speech.queue.len());
        self.pcm.extend(self.speech.queue.drain(..take));
        self.pcm.resize(need, 0);
        let speaking_frame = take > 0;
        let frame_start_sample = self.stream_samples;
        self.stream_samples += need as u64;

        // Behind real time: the last picture again (no rendering), so the stream catches up
        // while every frame still carries its audio.
        let picture = self.degrade.decide(behind, now);
        let generated = self.generated_frame(n, &mut events);
        let (kind, pushed) = match (&generated, picture) {
            (Some(frame), _) => {
                self.face.skip(n);
                let pushed = self
                    .channel
                    .push_frame_with_unit(frame, &self.pcm, now_unix_ms)?;
                (FrameKind::Generated, pushed)
            }
            (None, Picture::Repeat) => {
                self.face.skip(n);
                let frame = self.face.last_frame();
                let pushed = self
                    .channel
                    .push_frame_with_unit(frame, &self.pcm, now_unix_ms)?;
                (FrameKind::Repeated, pushed)
            }
            (None, Picture::Render) => {
                let frame = self.face.render(n, t_ms)?;
                let pushed = self
                    .channel
                    .push_frame_with_unit(frame, &self.pcm, now_unix_ms)?;
                (FrameKind::Rendered, pushed)
            }
        };
        match kind {
            FrameKind::Rendered => self.stats.rendered += 1,
            FrameKind::Generated => self.stats.generated += 1,
            FrameKind::Repeated => self.stats.repeated += 1,
        }
        let mut hls = pushed.outputs;

        if let Some(turn) = self.speech.turn.as_mut() {
            if speaking_frame && !turn.first_frame_reported {
                turn.first_frame_reported = true;
                events.push(Event::FirstSpeakingFrame { turn: turn.id, at });
            }
        }
        self.report_outputs(&hls, at, &mut events);

        // A turn is complete once its last sample is in a published segment.
        let done = self.speech.turn.as_ref().is_some_and(|t| {
            t.ended && self.speech.queue.is_empty() && self.speech.published_until >= t.end_sample()
        });
        if done {
            events.extend(self.close_turn(TurnEnding::Published, at));
        }
        if n.is_multiple_of(u64::from(self.fps.max(1))) {
            self.face
                .lipsync()
                .discard_before(frame_start_sample.saturating_sub(self.rate));
            hls.extend(self.channel.poll_expired(now_unix_ms));
        }
        Ok(FrameOutputs {
            media_time,
            produced_at: now,
            unit: Some(pushed.unit),
            kind: Some(kind),
            behind,
            hls,
            events,
        })
    }

    /// End the stream at `now`: close the open segment and the playlist (`EXT-X-ENDLIST`).
    pub fn finish(&mut self, now: Duration) -> Result<FrameOutputs, MediaLoopError> {
        self.finishing = true;
        let at = self.clock.instant(now);
        let hls = self.channel.finish(self.clock.unix_ms(now))?;
        let mut events = Vec::new();
        self.report_outputs(&hls, at, &mut events);
        Ok(FrameOutputs {
            media_time: Duration::from_millis(
                self.channel.frame_time_ms(self.channel.next_frame_index()),
            ),
            produced_at: now,
            unit: None,
            kind: None,
            behind: Duration::ZERO,
            hls,
            events,
        })
    }

    /// The generator's frame for frame `n`, if the current turn has one ready.
    fn generated_frame(
        &mut self,
        n: u64,
        events: &mut Vec<Event>,
    ) -> Option<talkstream_media::I420Frame> {
        let g = self.gen_turn.as_mut()?;
        let (frame, decision) = g.frame(n);
        let frame = frame.cloned();
        if let Some(Decision::Builtin { why }) = decision {
            // Once per answer at warn (a worker that is down would otherwise log every window);
            // the turn's metrics count them all.
            if g.from_builtin == 1 {
                tracing::warn!(frame = n, "window filled by the built-in renderer: {why}");
                if let Some(turn) = self.speech.turn.as_ref() {
                    events.push(Event::GeneratorNote {
                        turn: turn.id,
                        message: why,
                    });
                }
            } else {
                tracing::debug!(frame = n, "window filled by the built-in renderer: {why}");
            }
        }
        frame
    }

    /// Behind the frame's real time (not the speech lead) by more than a second? Warn, at most
    /// every ten seconds.
    fn warn_if_behind(&mut self, media_time: Duration, now: Duration) {
        let Some(behind) = now.checked_sub(media_time) else {
            return;
        };
        let quiet = self
            .last_lag_warning
            .is_some_and(|w| now.saturating_sub(w) < LAG_WARNING_EVERY);
        if behind > LAG_WARNING_AFTER && !quiet {
            tracing::warn!(
                behind_ms = behind.as_millis() as u64,
                "the stream is falling behind real time (machine too slow or overloaded)"
            );
            self.last_lag_warning = Some(now);
        }
    }

    /// Segment bookkeeping: what is published (segments, and with LL-HLS each part), the turn's
    /// first speaking segment (or part).
    fn report_outputs(&mut self, outputs: &[Output], at: Instant, events: &mut Vec<Event>) {
        for out in outputs {
            let end_ms = match out {
                Output::Segment { info, .. } => {
                    tracing::debug!(
                        msn = info.msn,
                        duration_ms = info.duration_ms,
                        "segment published"
                    );
                    events.push(Event::SegmentPublished { msn: info.msn });
                    info.start_ms as f64 + info.duration_ms
                }
                Output::Part { end_ms, .. } => *end_ms as f64,
                _ => continue,
            };
            let end_sample = (end_ms * self.rate as f64 / 1000.0).round() as u64;
            self.speech.published_until = self.speech.published_until.max(end_sample);
            if let Some(turn) = self.speech.turn.as_mut() {
                if !turn.first_segment_reported && end_sample > turn.start_sample {
                    turn.first_segment_reported = true;
                    events.push(Event::FirstSpeakingSegment { turn: turn.id, at });
                }
            }
        }
    }

    /// Stream time (ms) of the next sample to be mixed.
    fn stream_ms(&self) -> u64 {
        self.stream_samples * 1000 / self.rate.max(1)
    }

    /// End the active turn (if any) and its generation: the turn's [`Event::TurnComplete`].
    /// Dropping the generation cancels its windows (processes are killed).
    fn close_turn(&mut self, ending: TurnEnding, at: Instant) -> Option<Event> {
        let windows = self
            .gen_turn
            .take()
            .map(|g| (g.from_generator, g.from_builtin));
        let t = self.speech.turn.take()?;
        let spoken = match ending {
            TurnEnding::Published => t.spoken_until(u64::MAX),
            TurnEnding::Interrupted { at_ms } => t.spoken_until(at_ms),
        };
        Some(turn_complete(t.id, at, ending, spoken, windows))
    }
}
