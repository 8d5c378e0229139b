//! The part of a window's life every generator shares, in one place: [`begin`] validates the
//! request, computes its frame range and time budget, and answers a window without frames at
//! once; [`finish`] fits what the generator produced onto the stream ([`fit_frames`]) and records
//! the timings. Between the two each generator does only its own work (run a process, or talk
//! to a worker).

use std::time::{Duration, Instant};

use crate::fit::{fit_frames, FitWarnings, RawVideo};
use crate::{
    GeneratedWindow, GeneratorError, GeneratorKind, StreamFormat, WindowRequest, WindowTimings,
};

/// Which generator runs a window, for what stream.
#[derive(Clone, Copy)]
pub(crate) struct Shape<'a> {
    /// The generator (reported in warnings and in the result).
    pub kind: GeneratorKind,
    /// The stream the frames are for.
    pub format: StreamFormat,
    /// The generator's once-per-problem fit warnings.
    pub warnings: &'a FitWarnings,
}

/// A window that needs frames: its range and the time the generator has.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Job {
    /// First stream frame of the window.
    pub first: u64,
    /// One past its last frame.
    pub end: u64,
    /// The smaller of the generator's timeout and the time left until the deadline.
    pub budget: Duration,
    started: Instant,
}

impl Job {
    /// Time since the window was asked for.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// What [`begin`] decided.
pub(crate) enum Begin {
    /// The window has no frames of its own: this is its (empty) answer.
    Done(GeneratedWindow),
    /// The generator must produce the window's frames.
    Run(Job),
}

/// What a generator produced for a window, and how long its stages took.
pub(crate) struct Produced {
    /// The frames as the generator made them.
    pub raw: RawVideo,
    /// Stream time (µs) of the raw video's time 0.
    pub origin_us: i128,
    /// Preparing the request (writing the WAV, building the message).
    pub prepare: Duration,
    /// Waiting for the generator.
    pub generator: Duration,
    /// Demuxing and decoding its output (zero when frames arrive raw).
    pub decode: Duration,
}

/// The prologue of every window: validate, frame range, empty-window answer, budget.
pub(crate) fn begin(
    shape: Shape<'_>,
    timeout: Duration,
    req: &WindowRequest,
) -> Result<Begin, GeneratorError> {
    let started = Instant::now();
    req.validate()?;
    let (first, end) = req.frame_range(shape.format.fps);
    if first == end {
        return fit_frames(
            RawVideo::default(),
            0,
            req,
            shape.format,
            shape.kind,
            shape.warnings,
        )
        .map(Begin::Done);
    }
    Ok(Begin::Run(Job {
        first,
        end,
        budget: budget(timeout, req.deadline),
        started,
    }))
}

/// The epilogue of every window: fit the produced frames to the stream, fill in the timings.
pub(crate) fn finish(
    shape: Shape<'_>,
    job: Job,
    req: &WindowRequest,
    produced: Produced,
) -> Result<GeneratedWindow, GeneratorError> {
    let fit_start = Instant::now();
    let mut out = fit_frames(
        produced.raw,
        produced.origin_us,
        req,
        shape.format,
        shape.kind,
        shape.warnings,
    )?;
    out.timings = WindowTimings {
        prepare: produced.prepare,
        generator: produced.generator,
        decode: produced.decode,
        fit: fit_start.elapsed(),
        total: job.elapsed(),
    };
    Ok(out)
}

/// The smaller of the generator's timeout and the time left until the deadline.
pub(crate) fn budget(timeout: Duration, deadline: Option<Instant>) -> Duration {
    match deadline {
        Some(d) => timeout.min(d.saturating_duration_since(Instant::now())),
        None => timeout,
    }
}
