//! The media sink that feeds a stream's WebRTC output: every encoded frame goes to the output,
//! which sends it to the viewers when it is due (speech may be produced ahead); a viewer's
//! keyframe request becomes an IDR; a barge-in drops what was queued and not yet sent.

use std::time::{Duration, Instant};

use talkstream_media::encoder::FrameEncoder;

use super::WebRtcStream;
use crate::media_loop::{FrameOutputs, MediaSink, SinkError};

/// How far ahead of its time speech may be produced while WebRTC viewers watch: enough to absorb
/// a slow frame, short enough that a barge-in (which drops what waits) freezes the picture for
/// at most this long.
pub const WEBRTC_SPEECH_LEAD: Duration = Duration::from_millis(80);

/// [`MediaSink`] for a stream's [`WebRtcStream`].
#[derive(Debug)]
pub struct WebRtcSink {
    stream: WebRtcStream,
    /// Wall time of media time 0 (RTP times and sender reports derive from it).
    media_start: Instant,
}

impl WebRtcSink {
    /// A sink feeding `stream`, whose media time 0 is `media_start`.
    pub fn new(stream: WebRtcStream, media_start: Instant) -> Self {
        WebRtcSink {
            stream,
            media_start,
        }
    }
}

impl MediaSink for WebRtcSink {
    fn on_frame(&mut self, out: &FrameOutputs, encoder: &FrameEncoder) -> Result<(), SinkError> {
        if let Some(unit) = &out.unit {
            // A frame WebRTC cannot take must not stop the stream (HLS goes on): log it.
            if let Err(e) = self.stream.push(unit, encoder, self.media_start) {
                tracing::warn!(frame = unit.video.frame_index, error = %e, "WebRTC output refused a frame");
            }
        }
        Ok(())
    }

    fn finish(&mut self, _out: &FrameOutputs) -> Result<(), SinkError> {
        Ok(())
    }

    fn wants_keyframe(&mut self) -> bool {
        self.stream.take_keyframe_request(Instant::now())
    }

    fn speech_lead(&self) -> Option<Duration> {
        (self.stream.viewer_count() > 0).then_some(WEBRTC_SPEECH_LEAD)
    }

    fn interrupted(&mut self) {
        self.stream.clear_pending();
    }
}
