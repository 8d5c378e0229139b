//! `talkstream-generators`: external video generators for talkstream.
//!
//! A video generator turns one *audio window* (mono s16 PCM, see
//! [`talkstream_media::AudioWindows`]: 1.8 s windows whose first 250 ms are *context* repeated
//! from the previous window) plus a reference image into the video frames of the window's
//! *fresh* part, at the stream's size and frame rate. The crate offers:
//!
//! - [`VideoGenerator`], the async, cancellable interface the server drives with a deadline;
//! - [`exec::ExecGenerator`], the seed's command contract: one process per window
//!   (`$INFINITETALK_BIN --ref_image IMG --input_audio WAV --output_video MP4 --duration_ms N
//!   --no_audio`), killed as a process group on timeout, its MP4 demuxed ([`mp4`]) and decoded
//!   ([`decode`]);
//! - [`worker::WorkerGenerator`], a persistent generator process speaking the framed protocol of
//!   [`protocol`] (documented in `docs/generator-protocol.md`), restarted with a backoff when it
//!   dies, over a child's stdin/stdout or a TCP connection to a worker on another machine
//!   (reconnected with a backoff), and [`serve::serve_worker`] / [`serve::BuiltinRenderer`], the
//!   worker side of that protocol around any frame producer (the built-in avatar included), with
//!   [`serve_tcp::serve_tcp`] serving it to several talkstream nodes at once;
//! - [`fit`], which makes whatever a generator returns fit the stream: bilinear I420 scaling,
//!   frame-rate mapping, padding and trimming to exactly the fresh part's frames.
//!
//! Frames of a window are placed on the stream timeline by [`WindowRequest::frame_range`]:
//! stream frame `n` (shown at `n / fps` s) belongs to the window whose fresh samples contain the
//! frame's start, so consecutive windows tile the stream without gaps or repeats.

pub mod decode;
mod error;
pub mod exec;
pub mod fit;
pub mod mp4;
mod process;
pub mod protocol;
pub mod ref_image;
pub mod serve;
pub mod serve_tcp;
pub mod wav;
mod window;
pub mod worker;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, Instant};

pub use error::GeneratorError;
pub use exec::{ExecConfig, ExecGenerator};
pub use serve::{serve_worker, BuiltinRenderer, FrameProducer};
pub use talkstream_media::I420Frame;
pub use tokio_util::sync::CancellationToken;
pub use worker::{RemoteWorker, WorkerConfig, WorkerGenerator, WorkerScope};

/// Size and frame rate of the stream the frames are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamFormat {
    /// Picture width (even).
    pub width: u32,
    /// Picture height (even).
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
}

impl StreamFormat {
    /// Checks that the format is usable (even, non-zero sides; fps in 1..=240).
    pub fn validate(&self) -> Result<(), GeneratorError> {
        let bad = |reason: String| GeneratorError::InvalidRequest { reason };
        if self.width == 0
            || self.height == 0
            || !self.width.is_multiple_of(2)
            || !self.height.is_multiple_of(2)
        {
            return Err(bad(format!(
                "stream size {}x{} must be even and non-zero",
                self.width, self.height
            )));
        }
        if self.fps == 0 || self.fps > 240 {
            return Err(bad(format!("stream fps {} must be 1..=240", self.fps)));
        }
        Ok(())
    }
}

/// One audio window to turn into frames.
#[derive(Debug, Clone)]
pub struct WindowRequest {
    /// The session the window belongs to (a worker may keep per-session state).
    pub session_id: String,
    /// Window index (for logs and errors).
    pub index: u64,
    /// Stream position, in samples, of `pcm[0]` (context included).
    pub start_sample: u64,
    /// Sample rate of `pcm` (talkstream sends 16 000 Hz).
    pub sample_rate: u32,
    /// Leading samples of `pcm` that repeat the previous window's tail (context, not new audio).
    pub context_samples: usize,
    /// Mono s16 PCM: context, then fresh audio.
    pub pcm: Vec<i16>,
    /// The reference image of the avatar.
    pub ref_image: PathBuf,
    /// Wall-clock time by which the frames are needed. The generator's own timeout applies too;
    /// whichever comes first wins.
    pub deadline: Option<Instant>,
}

impl WindowRequest {
    /// A request for a window cut by [`talkstream_media::AudioWindows`].
    pub fn from_window(
        window: &talkstream_media::AudioWindow,
        sample_rate: u32,
        session_id: impl Into<String>,
        ref_image: impl Into<PathBuf>,
    ) -> Self {
        Self {
            session_id: session_id.into(),
            index: window.index,
            start_sample: window.start_sample,
            sample_rate,
            context_samples: window.context_samples,
            pcm: window.pcm.clone(),
            ref_image: ref_image.into(),
            deadline: None,
        }
    }

    /// Checks the request's internal consistency.
    pub fn validate(&self) -> Result<(), GeneratorError> {
        let bad = |reason: String| GeneratorError::InvalidRequest { reason };
        if self.sample_rate == 0 {
            return Err(bad(format!("window {}: sample rate 0", self.index)));
        }
        if self.context_samples >= self.pcm.len() {
            return Err(bad(format!(
                "window {}: {} context samples leave no fresh audio in {} samples",
                self.index,
                self.context_samples,
                self.pcm.len()
            )));
        }
        Ok(())
    }

    /// Stream position of the first fresh sample.
    pub fn fresh_start_sample(&self) -> u64 {
        self.start_sample + self.context_samples as u64
    }

    /// Stream position one past the last sample.
    pub fn end_sample(&self) -> u64 {
        self.start_sample + self.pcm.len() as u64
    }

    /// The stream frames `[first, end)` this window must supply at `fps`: the frames whose start
    /// time `n / fps` lies in the fresh audio `[fresh_start, end)`.
    pub fn frame_range(&self, fps: u32) -> (u64, u64) {
        let first = first_frame_at_or_after(self.fresh_start_sample(), self.sample_rate, fps);
        let end = first_frame_at_or_after(self.end_sample(), self.sample_rate, fps);
        (first, end.max(first))
    }

    /// Duration of the whole PCM (context included) in whole milliseconds, rounded.
    pub fn duration_ms(&self) -> u64 {
        let sr = u64::from(self.sample_rate.max(1));
        (self.pcm.len() as u64 * 1000 + sr / 2) / sr
    }
}

/// Smallest `n` with `n * sample_rate / fps >= sample`, i.e. `ceil(sample * fps / sample_rate)`.
fn first_frame_at_or_after(sample: u64, sample_rate: u32, fps: u32) -> u64 {
    let num = u128::from(sample) * u128::from(fps);
    let den = u128::from(sample_rate.max(1));
    u64::try_from(num.div_ceil(den)).unwrap_or(u64::MAX)
}

/// Which kind of generator produced a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GeneratorKind {
    /// One process per window ([`exec::ExecGenerator`]).
    Exec,
    /// A persistent worker process ([`worker::WorkerGenerator`]).
    Worker,
}

impl GeneratorKind {
    /// `"exec"` or `"worker"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exec => "exec",
            Self::Worker => "worker",
        }
    }
}

impl std::fmt::Display for GeneratorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the time of one window went (for logs and the overhead benchmark).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowTimings {
    /// Writing the WAV / sending the request.
    pub prepare: Duration,
    /// Waiting for the generator: spawn + run + exit (exec), or request sent → last frame
    /// received (worker), including any worker (re)start.
    pub generator: Duration,
    /// MP4 demuxing and H.264 decoding (exec only).
    pub decode: Duration,
    /// Frame-rate mapping, padding/trimming and scaling ([`fit`]).
    pub fit: Duration,
    /// Everything, from the call to the result.
    pub total: Duration,
}

/// The frames of one window, ready for the stream.
#[derive(Debug, Clone)]
pub struct GeneratedWindow {
    /// The window index of the request.
    pub index: u64,
    /// Stream frame index of `frames[0]` (see [`WindowRequest::frame_range`]).
    pub first_frame: u64,
    /// Exactly the frames of the window's fresh part, at the stream's size.
    pub frames: Vec<I420Frame>,
    /// The stream frame rate the frames are for.
    pub fps: u32,
    /// Which generator made them.
    pub source: GeneratorKind,
    /// Where the time went.
    pub timings: WindowTimings,
}

/// The future returned by [`VideoGenerator::generate`].
pub type GenerateFuture<'a> =
    Pin<Box<dyn Future<Output = Result<GeneratedWindow, GeneratorError>> + Send + 'a>>;

/// The future returned by [`VideoGenerator::end_session`] and [`VideoGenerator::shutdown`].
pub type UnitFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// An external video generator.
///
/// [`VideoGenerator::generate`] runs one window. It ends by the earlier of the request's
/// deadline and the generator's own timeout, or as soon as `cancel` is cancelled; in every
/// failure case the generator's processes that could still be working on the window are killed
/// (a whole process group) and reaped. Dropping the future also kills them. The server is
/// expected to run windows ahead of playback and fall back to its built-in frames when a window
/// fails or is late.
pub trait VideoGenerator: Send + Sync {
    /// Which kind of generator this is.
    fn kind(&self) -> GeneratorKind;

    /// The stream format the frames are fitted to.
    fn format(&self) -> StreamFormat;

    /// Generate the frames of one window.
    fn generate(&self, req: WindowRequest, cancel: CancellationToken) -> GenerateFuture<'_>;

    /// The session ended: drop its state (a per-session worker is stopped).
    fn end_session<'a>(&'a self, _session_id: &'a str) -> UnitFuture<'a> {
        Box::pin(async {})
    }

    /// Stop every process the generator keeps.
    fn shutdown(&self) -> UnitFuture<'_> {
        Box::pin(async {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(start: u64, ctx: usize, len: usize) -> WindowRequest {
        WindowRequest {
            session_id: "s".into(),
            index: 0,
            start_sample: start,
            sample_rate: 16_000,
            context_samples: ctx,
            pcm: vec![0; len],
            ref_image: PathBuf::from("x.png"),
            deadline: None,
        }
    }

    #[test]
    fn frame_ranges_tile_the_stream() {
        // The default windows: 28 800 fresh, then 24 800 fresh each with 4000 context.
        let mut start = 0u64;
        let mut ctx = 0usize;
        let mut next_frame = 0u64;
        for _ in 0..10 {
            let len = 28_800;
            let r = req(start, ctx, len);
            let (a, b) = r.frame_range(25);
            assert_eq!(a, next_frame, "no gap, no repeat");
            next_frame = b;
            start += (len - 4000) as u64;
            ctx = 4000;
        }
        // 10 windows = 28 800 + 9 * 24 800 = 252 000 samples = 15.75 s → frames 0..394 (393.75).
        assert_eq!(next_frame, (28_800u64 + 9 * 24_800) * 25 / 16_000 + 1);
        assert_eq!(req(0, 0, 28_800).duration_ms(), 1800);
        assert!(req(0, 10, 10).validate().is_err());
    }
}
