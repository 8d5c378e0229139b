//! The media sink that feeds a stream's RTMP publisher: every encoded frame goes to the
//! publisher's queue (it sends each at its time), with the codec parameters for the sequence
//! headers; the publisher's request for a keyframe (a new connection, a gap) becomes an IDR, at
//! most one a second. A barge-in changes nothing here: what was produced is sent, so the
//! ingest's timeline has no holes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use talkstream_media::encoder::FrameEncoder;

use super::publisher::{CodecParams, Frame, RtmpOutput};
use crate::media_loop::{FrameOutputs, MediaSink, SinkError};

/// The least media time between two keyframes the publisher asks for.
const KEYFRAME_EVERY: Duration = Duration::from_secs(1);

/// [`MediaSink`] for a stream's [`RtmpOutput`].
#[derive(Debug)]
pub struct RtmpSink {
    output: Option<RtmpOutput>,
    /// Wall time of media time 0.
    media_start: Instant,
    codec: Option<Arc<CodecParams>>,
    /// Media time of the last frame seen, and of the last keyframe granted.
    last_frame: Duration,
    last_keyframe: Option<Duration>,
}

impl RtmpSink {
    /// A sink feeding `output`, whose media time 0 is `media_start`.
    pub fn new(output: RtmpOutput, media_start: Instant) -> Self {
        RtmpSink {
            output: Some(output),
            media_start,
            codec: None,
            last_frame: Duration::ZERO,
            last_keyframe: None,
        }
    }
}

impl MediaSink for RtmpSink {
    fn on_frame(&mut self, out: &FrameOutputs, encoder: &FrameEncoder) -> Result<(), SinkError> {
        let (Some(output), Some(unit)) = (&self.output, &out.unit) else {
            return Ok(());
        };
        self.last_frame = out.media_time;
        if self.codec.is_none() {
            if let (Some(sps), Some(pps)) = (encoder.sps(), encoder.pps()) {
                self.codec = Some(Arc::new(CodecParams {
                    sps: sps.to_vec(),
                    pps: pps.to_vec(),
                    asc: encoder.asc().to_vec(),
                }));
            }
        }
        let Some(codec) = &self.codec else {
            return Ok(());
        };
        if unit.video.idr {
            self.last_keyframe = Some(out.media_time);
        }
        output.push(Frame {
            unit: unit.clone(),
            codec: Arc::clone(codec),
            due: self.media_start + out.media_time,
        });
        Ok(())
    }

    fn finish(&mut self, _out: &FrameOutputs) -> Result<(), SinkError> {
        // Dropping the handle ends the publisher's stream: it closes the connection cleanly.
        self.output = None;
        Ok(())
    }

    fn wants_keyframe(&mut self) -> bool {
        let Some(output) = &self.output else {
            return false;
        };
        if !output.take_keyframe_request() {
            return false;
        }
        let recent = self
            .last_keyframe
            .is_some_and(|k| self.last_frame.saturating_sub(k) < KEYFRAME_EVERY);
        if recent {
            // A keyframe is on its way; the publisher asks again if it still needs one.
            return false;
        }
        self.last_keyframe = Some(self.last_frame);
        true
    }
}
