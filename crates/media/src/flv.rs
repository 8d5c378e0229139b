//! FLV tag bodies for RTMP publishing (Adobe FLV/F4V specification v10.1, Annex E): the AVC and
//! AAC sequence headers, H.264 access units and raw AAC frames as the `VideoData`/`AudioData`
//! payloads an RTMP ingest expects, and [`FlvFeed`], which turns a stream's [`EncodedUnit`]s
//! into the tags of one publishing connection: sequence headers first, then media from a
//! keyframe on, timestamps in milliseconds from the media timeline, monotonic per track,
//! starting again at a keyframe after a gap.

use crate::encoder::{AudioUnit, EncodedUnit, VideoUnit};
use crate::fmp4::avc_decoder_config;
use crate::fmp4::VIDEO_TIMESCALE;
use crate::MediaError;

/// FLV `VideoData` first byte: frame type (1 key, 2 inter) << 4 | codec id 7 (AVC).
const AVC_KEY: u8 = 0x17;
const AVC_INTER: u8 = 0x27;
/// FLV `AudioData` first byte for AAC: sound format 10, and the fixed rate/size/type bits the
/// specification requires for AAC (44 kHz, 16 bit, stereo; the decoder reads the real values
/// from the AudioSpecificConfig).
const AAC: u8 = 0xaf;

/// The AVC sequence header: `VideoData` with AVCPacketType 0 and the
/// AVCDecoderConfigurationRecord (SPS, PPS).
pub fn avc_sequence_header(sps: &[u8], pps: &[u8]) -> Result<Vec<u8>, MediaError> {
    let record = avc_decoder_config(sps, pps)?;
    let mut out = Vec::with_capacity(5 + record.len());
    out.extend_from_slice(&[AVC_KEY, 0, 0, 0, 0]);
    out.extend_from_slice(&record);
    Ok(out)
}

/// One H.264 access unit as `VideoData`: AVCPacketType 1, composition time 0 (no B-frames),
/// the 4-byte length-prefixed NAL units as encoded.
pub fn avc_frame(unit: &VideoUnit) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + unit.data.len());
    out.extend_from_slice(&[if unit.idr { AVC_KEY } else { AVC_INTER }, 1, 0, 0, 0]);
    out.extend_from_slice(&unit.data);
    out
}

/// The AAC sequence header: `AudioData` with AACPacketType 0 and the AudioSpecificConfig.
pub fn aac_sequence_header(asc: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + asc.len());
    out.extend_from_slice(&[AAC, 0]);
    out.extend_from_slice(asc);
    out
}

/// One raw AAC frame as `AudioData` (AACPacketType 1).
pub fn aac_frame(unit: &AudioUnit) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + unit.data.len());
    out.extend_from_slice(&[AAC, 1]);
    out.extend_from_slice(&unit.data);
    out
}

/// A video time in 90 kHz ticks as whole milliseconds (rounded down).
pub fn video_ms(pts: u64) -> u64 {
    (u128::from(pts) * 1000 / u128::from(VIDEO_TIMESCALE)) as u64
}

/// An audio time in samples at `sample_rate` as whole milliseconds (rounded down).
pub fn audio_ms(pts: u64, sample_rate: u32) -> u64 {
    (u128::from(pts) * 1000 / u128::from(sample_rate.max(1))) as u64
}

/// One tag for the ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlvTag {
    /// `VideoData` (a sequence header or an access unit).
    Video {
        /// Milliseconds since the connection's first keyframe.
        ts_ms: u64,
        /// The tag body.
        data: Vec<u8>,
        /// True for a sequence header or an IDR: a player can start here.
        keyframe: bool,
    },
    /// `AudioData` (a sequence header or a raw frame).
    Audio {
        /// Milliseconds since the connection's first keyframe.
        ts_ms: u64,
        /// The tag body.
        data: Vec<u8>,
    },
}

impl FlvTag {
    /// The tag's timestamp in milliseconds.
    pub fn ts_ms(&self) -> u64 {
        match self {
            FlvTag::Video { ts_ms, .. } | FlvTag::Audio { ts_ms, .. } => *ts_ms,
        }
    }
}

/// Where the feed's timeline starts, and what it sent last.
#[derive(Debug, Clone, Copy)]
struct Started {
    /// Media time (ms) of the keyframe the connection started at: its timestamp 0.
    base_ms: u64,
    /// Index of the last frame sent.
    last_frame: u64,
    /// Timestamp of the last audio tag sent (audio before it is not sent again).
    last_audio_ms: Option<u64>,
    /// Index of the last audio access unit sent.
    last_audio_index: Option<u64>,
}

/// The tags of one publishing connection, from the stream's encoded units. Sans-I/O: units in,
/// tags out; a new connection is a new feed.
#[derive(Debug)]
pub struct FlvFeed {
    sample_rate: u32,
    started: Option<Started>,
}

impl FlvFeed {
    /// A feed for a stream whose audio runs at `sample_rate`; it starts at the next keyframe.
    pub fn new(sample_rate: u32) -> Self {
        FlvFeed {
            sample_rate,
            started: None,
        }
    }

    /// True until a keyframe has started the feed (or again after a gap): the stream should
    /// make one soon.
    pub fn waiting_for_keyframe(&self) -> bool {
        self.started.is_none()
    }

    /// The tags for one encoded frame, in timestamp order. Before the first keyframe (or after
    /// a frame was missed) nothing is sent until the next keyframe, which comes with the
    /// sequence headers (`sps`, `pps`, `asc`) so a player can start there.
    pub fn push(
        &mut self,
        unit: &EncodedUnit,
        sps: &[u8],
        pps: &[u8],
        asc: &[u8],
    ) -> Result<Vec<FlvTag>, MediaError> {
        let frame_ms = video_ms(unit.video.pts);
        let mut tags = Vec::with_capacity(2 + unit.audio.len());
        let mut started = match self.started {
            Some(s) if s.last_frame + 1 == unit.video.frame_index => s,
            // A gap (a frame this connection never got): start again at a keyframe.
            Some(_) | None => {
                self.started = None;
                if !unit.video.idr {
                    return Ok(Vec::new());
                }
                tags.push(FlvTag::Video {
                    ts_ms: 0,
                    data: avc_sequence_header(sps, pps)?,
                    keyframe: true,
                });
                tags.push(FlvTag::Audio {
                    ts_ms: 0,
                    data: aac_sequence_header(asc),
                });
                Started {
                    base_ms: frame_ms,
                    last_frame: unit.video.frame_index,
                    last_audio_ms: None,
                    last_audio_index: None,
                }
            }
        };
        let base = started.base_ms;
        let mut media = Vec::with_capacity(1 + unit.audio.len());
        for au in &unit.audio {
            let ms = audio_ms(au.pts, self.sample_rate);
            // Audio from before the connection's first keyframe would have a negative time.
            if ms < base || started.last_audio_index.is_some_and(|i| au.index <= i) {
                continue;
            }
            let ts_ms = (ms - base).max(started.last_audio_ms.unwrap_or(0));
            started.last_audio_ms = Some(ts_ms);
            started.last_audio_index = Some(au.index);
            media.push(FlvTag::Audio {
                ts_ms,
                data: aac_frame(au),
            });
        }
        media.push(FlvTag::Video {
            ts_ms: frame_ms.saturating_sub(base),
            data: avc_frame(&unit.video),
            keyframe: unit.video.idr,
        });
        // Interleave by time so the ingest sees one ordered timeline (stable: audio first
        // when equal).
        media.sort_by_key(FlvTag::ts_ms);
        tags.extend(media);
        started.last_frame = unit.video.frame_index;
        self.started = Some(started);
        Ok(tags)
    }
}

#[cfg(test)]
mod tests;
