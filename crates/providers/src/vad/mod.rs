//! Voice activity detection for microphone input: where a user's utterances start and end.
//!
//! Sans-I/O and deterministic: 16 kHz mono PCM goes in ([`Vad::push`]), events come out, and
//! time is the count of samples pushed (no clock). Each 16 ms frame is scored by `earshot`'s
//! small built-in network (nothing is downloaded); the rules around the scores are ours:
//! - an utterance **starts** once `min_speech_ms` of speech frames have been heard without a
//!   gap longer than [`START_GAP_MS`] (a cough or a click is shorter); it keeps `preroll_ms` of
//!   audio from before its first speech frame, so the recognizer hears the first syllable;
//! - it **ends** after `silence_ms` of frames without speech, when it reaches
//!   `max_utterance_ms`, or when the caller ends it ([`Vad::end`], push-to-talk released);
//! - in [`VadMode::PushToTalk`] only the caller ends it, and everything pushed since
//!   [`Vad::begin`] belongs to it (silence too).

use std::collections::VecDeque;

/// The sample rate the detector works at.
pub const VAD_SAMPLE_RATE: u32 = 16_000;
/// Samples per scored frame (16 ms at 16 kHz, what `earshot` takes).
pub const VAD_FRAME: usize = 256;
/// Longest run of non-speech frames that does not break a starting utterance's speech.
pub const START_GAP_MS: u32 = 96;
/// Longest pause the detector sees inside a run of speech ([`Vad::speech_run_ms`]). Its scores
/// trail off ~100 ms after sound stops, so this is a real pause of ~200 ms: the gaps between
/// words of a phrase are shorter; bursts of echo 250 ms apart are separate runs.
pub const RUN_GAP_MS: u32 = 96;
/// Silence kept after the last speech frame of an utterance that ended on silence.
const TAIL_MS: u32 = 200;
/// After a start (or a push-to-talk press) frames are scored but not taken as speech this long:
/// the detector adapts to the room's steady noise first (noise starting from silence scores
/// like speech for ~250 ms).
pub const WARMUP_MS: u32 = 400;
/// The detector's scores trail the audio by about three frames (measured on the built-in
/// voice: starts found 44–56 ms, ends 88–120 ms late); speech positions are moved back by this.
const SCORE_LAG_SAMPLES: u64 = 3 * VAD_FRAME as u64;

/// Voice activity settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadSettings {
    /// Frame score (0–1) at or above which a frame counts as speech.
    pub threshold: f32,
    /// Speech needed before an utterance starts (ms).
    pub min_speech_ms: u32,
    /// Silence that ends an utterance (ms).
    pub silence_ms: u32,
    /// Audio kept from before the first speech frame (ms).
    pub preroll_ms: u32,
    /// Longest utterance (ms); a longer one is ended there and a new one may start.
    pub max_utterance_ms: u32,
}

impl Default for VadSettings {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            min_speech_ms: 160,
            silence_ms: 600,
            preroll_ms: 300,
            max_utterance_ms: 30_000,
        }
    }
}

/// Who decides where an utterance ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadMode {
    /// The detector: utterances start on speech and end on silence.
    HandsFree,
    /// The caller: one utterance from [`Vad::begin`] to [`Vad::end`].
    PushToTalk,
}

/// Why an utterance ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// `silence_ms` of silence followed the speech.
    Silence,
    /// It reached `max_utterance_ms`.
    MaxLength,
    /// The caller ended it (push-to-talk released, microphone closed).
    Ended,
}

/// One utterance: its audio and where its speech lies.
#[derive(Clone, PartialEq)]
pub struct Utterance {
    /// 16 kHz mono PCM: the pre-roll, the speech, and a short tail.
    pub samples: Vec<i16>,
    /// Where the first speech frame starts, in ms of microphone time (samples pushed).
    pub speech_start_ms: u64,
    /// Where the last speech frame ends, in ms of microphone time.
    pub speech_end_ms: u64,
    /// Milliseconds of frames scored as speech.
    pub speech_ms: u32,
    /// Why it ended.
    pub reason: EndReason,
}

impl std::fmt::Debug for Utterance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Utterance")
            .field("samples", &self.samples.len())
            .field("speech_start_ms", &self.speech_start_ms)
            .field("speech_end_ms", &self.speech_end_ms)
            .field("speech_ms", &self.speech_ms)
            .field("reason", &self.reason)
            .finish()
    }
}

impl Utterance {
    /// Enough speech to be worth transcribing (`min_speech_ms` of it).
    pub fn has_speech(&self, settings: &VadSettings) -> bool {
        self.speech_ms >= settings.min_speech_ms
    }

    /// Length of its audio in ms.
    pub fn duration_ms(&self) -> u64 {
        self.samples.len() as u64 * 1000 / u64::from(VAD_SAMPLE_RATE)
    }
}

/// What [`Vad::push`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum VadEvent {
    /// An utterance started: `min_speech_ms` of speech heard (hands-free), or the first speech
    /// frame reached `min_speech_ms` in a push-to-talk utterance.
    Started {
        /// Where its first speech frame starts (ms of microphone time).
        speech_start_ms: u64,
    },
    /// An utterance ended.
    Stopped(Utterance),
}

/// A starting or running utterance.
#[derive(Debug)]
struct Current {
    samples: Vec<i16>,
    /// Sample position of `samples[0]`.
    first_sample: u64,
    /// Sample position where its first speech frame starts (None: no speech yet, push-to-talk).
    speech_start: Option<u64>,
    /// Sample position where its last speech frame ends.
    speech_end: u64,
    speech_frames: u32,
    /// Non-speech frames since the last speech frame.
    quiet_frames: u32,
    /// Speech frames of the current run (pauses up to [`RUN_GAP_MS`] inside).
    run_frames: u32,
    /// `Started` was reported.
    started: bool,
}

/// The detector of one microphone stream (see the module docs).
pub struct Vad {
    settings: VadSettings,
    mode: VadMode,
    detector: Box<earshot::Detector>,
    /// Samples not yet scored (less than a frame).
    pending: Vec<i16>,
    /// Recent scored audio kept for the pre-roll (hands-free, between utterances).
    history: VecDeque<i16>,
    current: Option<Current>,
    /// Samples scored so far (the microphone clock).
    position: u64,
    /// Push-to-talk: an utterance was begun and not yet ended.
    holding: bool,
    /// Frames still to score before any counts as speech ([`WARMUP_MS`]).
    warmup_frames: u32,
}

impl std::fmt::Debug for Vad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vad")
            .field("settings", &self.settings)
            .field("mode", &self.mode)
            .field("position", &self.position)
            .field("in_utterance", &self.current.is_some())
            .finish_non_exhaustive()
    }
}

fn frames_for(ms: u32) -> u32 {
    (ms * VAD_SAMPLE_RATE / 1000).div_ceil(VAD_FRAME as u32)
}

fn samples_for(ms: u32) -> usize {
    (u64::from(ms) * u64::from(VAD_SAMPLE_RATE) / 1000) as usize
}

fn ms_of(samples: u64) -> u64 {
    samples * 1000 / u64::from(VAD_SAMPLE_RATE)
}

impl Vad {
    /// A detector in `mode`.
    pub fn new(settings: VadSettings, mode: VadMode) -> Self {
        Self {
            settings,
            mode,
            detector: earshot::Detector::default_boxed(),
            pending: Vec::with_capacity(VAD_FRAME),
            history: VecDeque::with_capacity(samples_for(settings.preroll_ms) + VAD_FRAME),
            current: None,
            position: 0,
            holding: false,
            warmup_frames: frames_for(WARMUP_MS),
        }
    }

    /// The settings in use.
    pub fn settings(&self) -> &VadSettings {
        &self.settings
    }

    /// The mode in use.
    pub fn mode(&self) -> VadMode {
        self.mode
    }

    /// Microphone time: ms of audio scored so far.
    pub fn position_ms(&self) -> u64 {
        ms_of(self.position)
    }

    /// Speech heard in the utterance under way (ms), if one has started.
    pub fn speech_ms(&self) -> Option<u32> {
        self.current
            .as_ref()
            .filter(|c| c.started)
            .map(|c| c.speech_frames * VAD_FRAME as u32 * 1000 / VAD_SAMPLE_RATE)
    }

    /// The longest stretch of continuous speech (pauses up to [`RUN_GAP_MS`] inside) of the
    /// utterance under way, up to now, if one has started: what barge-in waits for, so that
    /// short bursts (an echo the canceller let through, a cough) do not add up.
    pub fn speech_run_ms(&self) -> Option<u32> {
        self.current
            .as_ref()
            .filter(|c| c.started && c.quiet_frames <= frames_for(RUN_GAP_MS))
            .map(|c| c.run_frames * VAD_FRAME as u32 * 1000 / VAD_SAMPLE_RATE)
    }

    /// Push-to-talk: an utterance begins now (pressed). Hands-free: nothing.
    pub fn begin(&mut self) {
        if self.mode == VadMode::PushToTalk && !self.holding {
            self.holding = true;
            // Audio from before the press is not part of the utterance.
            self.position += self.pending.len() as u64;
            self.pending.clear();
            self.warmup_frames = frames_for(WARMUP_MS);
        }
    }

    /// End the utterance under way now (push-to-talk released, microphone closed), scoring
    /// what is pending. `None` when there is none (hands-free: none has started).
    pub fn end(&mut self) -> Option<Utterance> {
        self.holding = false;
        let current = self.current.take()?;
        if !current.started && self.mode == VadMode::HandsFree {
            return None;
        }
        Some(self.finish(current, EndReason::Ended))
    }

    /// Feed microphone audio (16 kHz mono). Returns what happened, in order.
    pub fn push(&mut self, samples: &[i16]) -> Vec<VadEvent> {
        let mut events = Vec::new();
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (VAD_FRAME - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == VAD_FRAME {
                let frame = std::mem::take(&mut self.pending);
                self.frame(&frame, &mut events);
                self.pending = frame;
                self.pending.clear();
            }
        }
        events
    }

    fn frame(&mut self, frame: &[i16], events: &mut Vec<VadEvent>) {
        let score = self.detector.predict_i16(frame);
        let speech = if self.warmup_frames > 0 {
            self.warmup_frames -= 1;
            false
        } else {
            score >= self.settings.threshold
        };
        let frame_start = self.position;
        self.position += VAD_FRAME as u64;
        match self.mode {
            VadMode::HandsFree => self.hands_free(frame, frame_start, speech, events),
            VadMode::PushToTalk => self.push_to_talk(frame, frame_start, speech, events),
        }
    }

    fn hands_free(
        &mut self,
        frame: &[i16],
        frame_start: u64,
        speech: bool,
        events: &mut Vec<VadEvent>,
    ) {
        let s = self.settings;
        if self.current.is_none() {
            if !speech {
                self.remember(frame);
                return;
            }
            let preroll: Vec<i16> = self.history.drain(..).collect();
            let first_sample = frame_start - preroll.len() as u64;
            self.current = Some(Current {
                samples: preroll,
                first_sample,
                speech_start: Some(frame_start),
                speech_end: frame_start,
                speech_frames: 0,
                quiet_frames: 0,
                run_frames: 0,
                started: false,
            });
        }
        let Some(cur) = self.current.as_mut() else {
            return;
        };
        cur.samples.extend_from_slice(frame);
        if speech {
            if cur.quiet_frames > frames_for(RUN_GAP_MS) {
                cur.run_frames = 0;
            }
            cur.speech_frames += 1;
            cur.run_frames += 1;
            cur.quiet_frames = 0;
            cur.speech_end = frame_start + VAD_FRAME as u64;
        } else {
            cur.quiet_frames += 1;
        }
        if !cur.started {
            if cur.quiet_frames > frames_for(START_GAP_MS) {
                // Too short to be speech: forget it, keep its audio as pre-roll.
                if let Some(cur) = self.current.take() {
                    self.remember(&cur.samples);
                }
                return;
            }
            if cur.speech_frames >= frames_for(s.min_speech_ms) {
                cur.started = true;
                let start = cur.speech_start.unwrap_or(frame_start);
                events.push(VadEvent::Started {
                    speech_start_ms: ms_of(start.saturating_sub(SCORE_LAG_SAMPLES)),
                });
            }
            return;
        }
        // Silence counts from the end of speech, which the scores report SCORE_LAG late.
        let lag_frames = (SCORE_LAG_SAMPLES / VAD_FRAME as u64) as u32;
        let reason = if cur.quiet_frames + lag_frames >= frames_for(s.silence_ms) {
            Some(EndReason::Silence)
        } else if cur.samples.len() >= samples_for(s.max_utterance_ms) {
            Some(EndReason::MaxLength)
        } else {
            None
        };
        if let Some(reason) = reason {
            if let Some(cur) = self.current.take() {
                events.push(VadEvent::Stopped(self.finish(cur, reason)));
            }
        }
    }

    fn push_to_talk(
        &mut self,
        frame: &[i16],
        frame_start: u64,
        speech: bool,
        events: &mut Vec<VadEvent>,
    ) {
        if !self.holding {
            return;
        }
        let s = self.settings;
        let cur = self.current.get_or_insert_with(|| Current {
            samples: Vec::new(),
            first_sample: frame_start,
            speech_start: None,
            speech_end: frame_start,
            speech_frames: 0,
            quiet_frames: 0,
            run_frames: 0,
            started: false,
        });
        cur.samples.extend_from_slice(frame);
        if speech {
            cur.speech_start.get_or_insert(frame_start);
            cur.speech_frames += 1;
            cur.speech_end = frame_start + VAD_FRAME as u64;
            if !cur.started && cur.speech_frames >= frames_for(s.min_speech_ms) {
                cur.started = true;
                let start = cur.speech_start.unwrap_or(frame_start);
                events.push(VadEvent::Started {
                    speech_start_ms: ms_of(start.saturating_sub(SCORE_LAG_SAMPLES)),
                });
            }
        }
        if cur.samples.len() >= samples_for(s.max_utterance_ms) {
            self.holding = false;
            if let Some(cur) = self.current.take() {
                events.push(VadEvent::Stopped(self.finish(cur, EndReason::MaxLength)));
            }
        }
    }

    /// Keep `samples` as the most recent pre-roll candidates.
    fn remember(&mut self, samples: &[i16]) {
        let keep = samples_for(self.settings.preroll_ms);
        self.history.extend(samples.iter().copied());
        let excess = self.history.len().saturating_sub(keep);
        self.history.drain(..excess);
    }

    fn finish(&mut self, mut cur: Current, reason: EndReason) -> Utterance {
        if self.mode == VadMode::HandsFree && reason == EndReason::Silence {
            // Keep a short tail of the silence after the last word, not all of it.
            let end = cur.speech_end + samples_for(TAIL_MS) as u64;
            let keep = end.saturating_sub(cur.first_sample) as usize;
            cur.samples.truncate(keep.min(cur.samples.len()));
        }
        if self.mode == VadMode::PushToTalk && !self.pending.is_empty() {
            // Released mid-frame: the unscored rest belongs to the utterance too.
            cur.samples.append(&mut self.pending);
        }
        let speech_start = cur
            .speech_start
            .map_or(cur.first_sample, |s| s.saturating_sub(SCORE_LAG_SAMPLES));
        let speech_end = cur.speech_end.saturating_sub(SCORE_LAG_SAMPLES);
        Utterance {
            speech_start_ms: ms_of(speech_start),
            speech_end_ms: ms_of(speech_end.max(speech_start)),
            speech_ms: cur.speech_frames * VAD_FRAME as u32 * 1000 / VAD_SAMPLE_RATE,
            samples: cur.samples,
            reason,
        }
    }
}

#[cfg(test)]
mod tests;
