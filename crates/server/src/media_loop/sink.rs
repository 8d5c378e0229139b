//! Where a stream's frames go once the [`super::MediaLoop`] has produced them: a [`MediaSink`]
//! receives every [`FrameOutputs`] (the frame's [`EncodedUnit`] with its media time, and the HLS
//! packager's files) in order, then the final outputs once. The HLS files writer
//! ([`crate::files::OutputWriter`]) is one; a WebRTC pacer or an RTMP publisher is another
//! implementation that reads `unit` and holds it until `media_time` (speech may arrive up to
//! [`super::SPEECH_LEAD_MS`] early). [`MemorySink`] keeps everything, for tests.

use std::time::Duration;

use talkstream_media::encoder::FrameEncoder;
use talkstream_media::{EncodedUnit, Output};

use crate::files::FileError;
use crate::pipeline::Event;

/// Everything one produced frame (or the end of the stream) yields.
#[derive(Debug, Clone)]
pub struct FrameOutputs {
    /// Stream time the frame is due at (its real time; `unit.video.pts` in milliseconds). A sink
    /// that plays frames in real time sends it at this time after the stream start.
    pub media_time: Duration,
    /// Stream time at which it was produced: up to [`super::SPEECH_LEAD_MS`] before
    /// `media_time` while speech is queued, at `media_time` otherwise (later if the machine lags).
    pub produced_at: Duration,
    /// The frame's encoded unit (H.264 + the AAC units it completed + its PCM); `None` for the
    /// final outputs of the stream.
    pub unit: Option<EncodedUnit>,
    /// Where the frame's picture came from; `None` for the final outputs of the stream.
    pub kind: Option<FrameKind>,
    /// How far past its real time the frame was produced (zero when on time or ahead).
    pub behind: Duration,
    /// HLS files to write and delete, in order.
    pub hls: Vec<Output>,
    /// What to report to the session (after the sinks have taken the frame).
    pub events: Vec<Event>,
}

/// Where a frame's picture came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// Drawn by the built-in avatar.
    Rendered,
    /// The external generator's frame.
    Generated,
    /// The previous picture again: the stream was behind real time ([`super::degrade`]).
    Repeated,
}

/// A sink failed; the stream stops.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Writing the HLS files failed.
    #[error("HLS files: {0}")]
    Hls(#[from] FileError),
}

/// A consumer of the media loop's output.
pub trait MediaSink: Send {
    /// A frame was produced (called in frame order, possibly ahead of `out.media_time`).
    /// `encoder` gives the stream's codec parameters (H.264 SPS/PPS, AAC config).
    fn on_frame(&mut self, out: &FrameOutputs, encoder: &FrameEncoder) -> Result<(), SinkError>;

    /// Stream time `now` has come (called after every step of the media thread and at
    /// [`MediaSink::next_due`]): a sink that holds outputs until their media time sends them.
    fn poll(&mut self, _now: Duration) -> Result<(), SinkError> {
        Ok(())
    }

    /// The stream time at which the sink next wants [`MediaSink::poll`], if any.
    fn next_due(&self) -> Option<Duration> {
        None
    }

    /// The stream ended: the last outputs (the closing segment, `EXT-X-ENDLIST`); no more calls
    /// follow.
    fn finish(&mut self, out: &FrameOutputs) -> Result<(), SinkError>;

    /// Asked before every frame: should the next frame be an IDR (for example a WebRTC viewer
    /// sent a PLI)? The sink throttles its own requests.
    fn wants_keyframe(&mut self) -> bool {
        false
    }

    /// The most this sink lets speech be produced ahead of its time (`None`: no limit beyond
    /// [`super::SPEECH_LEAD_MS`]). Asked before every frame.
    fn speech_lead(&self) -> Option<Duration> {
        None
    }

    /// Speech that had been produced ahead was dropped (barge-in): a sink that holds frames
    /// until their time drops what it holds, so nothing of the interrupted answer goes out.
    fn interrupted(&mut self) {}
}

/// A sink that keeps everything it receives (tests, and a model for new sinks).
#[derive(Debug, Default)]
pub struct MemorySink {
    /// Every frame's outputs, in order.
    pub frames: Vec<FrameOutputs>,
    /// The final outputs, once finished.
    pub finished: Option<FrameOutputs>,
}

impl MediaSink for MemorySink {
    fn on_frame(&mut self, out: &FrameOutputs, _encoder: &FrameEncoder) -> Result<(), SinkError> {
        self.frames.push(out.clone());
        Ok(())
    }

    fn finish(&mut self, out: &FrameOutputs) -> Result<(), SinkError> {
        self.finished = Some(out.clone());
        Ok(())
    }
}
