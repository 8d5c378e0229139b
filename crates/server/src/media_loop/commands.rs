//! [`MediaLoop::handle_command`]: what each [`MediaCommand`] does to the queued speech, the
//! active turn, lip-sync, captions and the generator side of the turn.

use std::time::{Duration, Instant};

use talkstream_providers::WordTiming;

use super::turn::{turn_complete, ActiveTurn, TurnEnding};
use super::{MediaLoop, FIRST_SPEECH_SEGMENT_MS};
use crate::generation::TurnGeneration;
use crate::pipeline::{Event, MediaCommand};

impl MediaLoop {
    /// Apply one command at stream time `now`; returns what to report. After
    /// [`MediaCommand::Finish`], [`MediaLoop::poll`] says [`super::Step::Finish`] and further
    /// commands are ignored.
    pub fn handle_command(&mut self, cmd: MediaCommand, now: Duration) -> Vec<Event> {
        if self.finishing {
            return Vec::new();
        }
        let at = self.clock.instant(now);
        match cmd {
            MediaCommand::Finish => {
                self.finishing = true;
                Vec::new()
            }
            MediaCommand::Interrupt { turn } => self.interrupt(turn, at),
            MediaCommand::SetFace { face, ref_image } => {
                self.set_face(*face, ref_image);
                Vec::new()
            }
            MediaCommand::TurnEnd { turn } => self.turn_end(turn, at),
            MediaCommand::Audio {
                turn,
                pcm,
                text,
                words,
            } => self.audio(turn, pcm, &text, &words, at),
        }
    }

    /// Swap the face (the lip-sync and the turn go on); a new generator reference image is
    /// used from the next turn on. A face of the wrong size is refused (the old one stays).
    fn set_face(&mut self, face: talkstream_avatar::Face, ref_image: Option<std::path::PathBuf>) {
        let portrait = matches!(face, talkstream_avatar::Face::Portrait(_));
        match self.face.set_face(face) {
            Ok(()) => tracing::info!(portrait, "the stream shows a new face"),
            Err(e) => {
                tracing::warn!("the new face does not fit the stream, the old one stays: {e}")
            }
        }
        if let (Some(link), Some(path)) = (self.generator.as_mut(), ref_image) {
            link.ref_image = path;
        }
    }

    /// Urgent: drop everything queued for `turn` and older ones.
    fn interrupt(&mut self, turn: u64, at: Instant) -> Vec<Event> {
        self.speech.interrupted_upto =
            Some(self.speech.interrupted_upto.map_or(turn, |u| u.max(turn)));
        if self.speech.turn.as_ref().is_none_or(|t| t.id > turn) {
            return Vec::new();
        }
        self.drop_queued_speech();
        self.channel.clear_cues_from(self.stream_ms());
        let ending = TurnEnding::Interrupted {
            at_ms: self.stream_ms(),
        };
        let done = self.close_turn(ending, at);
        if let Some(Event::TurnComplete { turn, .. }) = &done {
            tracing::info!(turn, "speech interrupted");
        }
        done.into_iter().collect()
    }

    /// No more audio will come for `turn`.
    fn turn_end(&mut self, turn: u64, at: Instant) -> Vec<Event> {
        if let Some(t) = self.speech.turn.as_mut().filter(|t| t.id == turn) {
            t.ended = true;
            if let Some(g) = self.gen_turn.as_mut() {
                g.finish();
            }
            Vec::new()
        } else if !self.speech.is_interrupted(turn) && self.speech.turn.is_none() {
            // A turn that produced no audio at all (e.g. the TTS failed at once).
            vec![turn_complete(
                turn,
                at,
                TurnEnding::Published,
                String::new(),
                None,
            )]
        } else {
            Vec::new()
        }
    }

    /// Speech audio of `turn`: queue it, feed lip-sync and the generator, place its caption.
    fn audio(
        &mut self,
        turn: u64,
        pcm: Vec<i16>,
        text: &str,
        words: &[WordTiming],
        at: Instant,
    ) -> Vec<Event> {
        let mut events = Vec::new();
        if self.speech.is_interrupted(turn) || pcm.is_empty() {
            return events;
        }
        if self.speech.turn.as_ref().is_some_and(|t| t.id != turn) {
            // A new turn without an interrupt: the old one gives way.
            self.drop_queued_speech();
            let ending = TurnEnding::Interrupted {
                at_ms: self.stream_ms(),
            };
            events.extend(self.close_turn(ending, at));
        }
        if self.speech.turn.is_none() {
            self.start_turn(turn);
        }
        let rate = self.rate.max(1);
        let Some(active) = self.speech.turn.as_mut() else {
            return events;
        };
        let chunk_start = active.end_sample();
        active.received += pcm.len() as u64;
        // Word timings count from the first sample of the turn.
        let turn_start_ms = active.start_sample * 1000 / rate;
        let chunk_start_ms = chunk_start * 1000 / rate;
        let chunk_end_ms = (chunk_start + pcm.len() as u64) * 1000 / rate;
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
        self.face.lipsync().push_audio(chunk_start, &pcm);
        if let Some(g) = self.gen_turn.as_mut() {
            g.push_audio(&pcm);
        }
        for w in words {
            self.face.lipsync().add_hint(
                turn_start_ms + w.start_ms,
                turn_start_ms + w.end_ms,
                &w.text,
            );
        }
        let (start_ms, end_ms) = match (words.first(), words.last()) {
            (Some(f), Some(l)) => (turn_start_ms + f.start_ms, turn_start_ms + l.end_ms),
            _ => (chunk_start_ms, chunk_end_ms),
        };
        let text = text.trim().to_string();
        if !text.is_empty() {
            self.channel
                .add_cue(start_ms, end_ms.max(start_ms + 1), &text);
            events.push(Event::Transcript {
                turn,
                text,
                start_ms,
                end_ms,
                start_pdt_ms: self.clock.start_unix_ms + start_ms as i64,
                end_pdt_ms: self.clock.start_unix_ms + end_ms as i64,
            });
        }
        self.speech.queue.extend(pcm);
        events
    }

    /// The first audio of `turn`: with a generator, queue its buffer of silence and start the
    /// turn's generation; speech starts with the next frame, in a new short segment.
    fn start_turn(&mut self, turn: u64) {
        if let Some(link) = self.generator.clone() {
            // GENERATOR_BUFFER_MS of silence before the answer gives a slow generator time; the
            // speech then starts on a frame boundary after it.
            let buffer_frames = u64::from(link.buffer_ms) * u64::from(self.fps) / 1000;
            let next = self.channel.next_frame_index();
            for k in 0..buffer_frames {
                let len = self.channel.samples_for_frame(next + k);
                self.speech.queue.extend(std::iter::repeat_n(0i16, len));
            }
            match TurnGeneration::new(
                link,
                self.channel.config().sample_rate,
                self.fps,
                next + buffer_frames,
                self.clock.start,
            ) {
                Ok(g) => self.gen_turn = Some(g),
                Err(e) => tracing::warn!("external generator unavailable for this turn: {e}"),
            }
        }
        // Plain HLS publishes by segment: a short first speaking segment is on the playlist
        // quickly. LL-HLS publishes every part anyway, and hls.js 1.7 stumbles over the tiny
        // segment such a cut leaves before it (it turns part loading off and waits for the next
        // whole segment: a stall), so the segments keep their length there.
        if self.channel.config().part_target_ms.is_none() {
            self.channel.cut_before_next(Some(FIRST_SPEECH_SEGMENT_MS));
        }
        let start_sample = self.stream_samples + self.speech.queue.len() as u64;
        self.speech.turn = Some(ActiveTurn::new(turn, start_sample));
    }

    /// Drop the queued speech and the mouth poses still to come from it.
    fn drop_queued_speech(&mut self) {
        self.speech.queue.clear();
        let from = self.stream_samples;
        self.face.lipsync().clear_from(from);
    }
}
