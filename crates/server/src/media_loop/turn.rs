//! The turn whose speech is queued or playing, and the one place a [`Event::TurnComplete`] is
//! built.

use std::time::Instant;

use crate::pipeline::Event;

/// The turn whose speech is queued or playing.
#[derive(Debug)]
pub(super) struct ActiveTurn {
    pub(super) id: u64,
    /// Stream sample where its speech starts.
    pub(super) start_sample: u64,
    /// Samples of its audio received so far.
    pub(super) received: u64,
    /// No more audio will come.
    pub(super) ended: bool,
    pub(super) first_frame_reported: bool,
    pub(super) first_segment_reported: bool,
    /// Words (or whole chunks when the voice gives no word timings) with their stream start (ms).
    pub(super) spoken: Vec<(u64, String)>,
}

impl ActiveTurn {
    /// A turn whose speech starts at stream sample `start_sample`.
    pub(super) fn new(id: u64, start_sample: u64) -> Self {
        Self {
            id,
            start_sample,
            received: 0,
            ended: false,
            first_frame_reported: false,
            first_segment_reported: false,
            spoken: Vec::new(),
        }
    }

    /// Stream sample just after the last sample received so far.
    pub(super) fn end_sample(&self) -> u64 {
        self.start_sample + self.received
    }

    /// The text whose audio starts before `until_ms` of stream time (all of it for `u64::MAX`).
    pub(super) fn spoken_until(&self, until_ms: u64) -> String {
        self.spoken
            .iter()
            .filter(|(start, _)| *start < until_ms)
            .map(|(_, w)| w.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// How a turn left the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TurnEnding {
    /// Its last sample is in a published segment: all of it was said.
    Published,
    /// Cut short (barge-in, or a newer turn took over) at stream time `at_ms`: only what
    /// started before that was said.
    Interrupted {
        /// Stream time (ms) where its audio stopped.
        at_ms: u64,
    },
}

/// The [`Event::TurnComplete`] of turn `turn`: the only place it is built.
pub(super) fn turn_complete(
    turn: u64,
    at: Instant,
    ending: TurnEnding,
    spoken: String,
    windows: Option<(u32, u32)>,
) -> Event {
    Event::TurnComplete {
        turn,
        at,
        interrupted: matches!(ending, TurnEnding::Interrupted { .. }),
        spoken,
        windows,
    }
}
