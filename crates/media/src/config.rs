//! [`ChannelConfig`]: the settings of one live channel and their validation. The channel hands
//! the encoder, segmenter and HLS packager their part of it ([`ChannelConfig::encoder`],
//! [`ChannelConfig::segmenter`]); each rule of a field lives here once.

use crate::audio::AAC_SAMPLE_RATES;
use crate::encoder::EncoderConfig;
use crate::fmp4::VIDEO_TIMESCALE;
use crate::segmenter::SegmenterConfig;
use crate::video;
use crate::MediaError;

/// Shortest accepted `segment_ms`.
const MIN_SEGMENT_MS: u32 = 200;
/// Longest accepted `segment_ms`.
const MAX_SEGMENT_MS: u32 = 60_000;

/// Settings of one live channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelConfig {
    /// Picture width (even).
    pub width: u32,
    /// Picture height (even).
    pub height: u32,
    /// Constant frame rate (1..=120).
    pub fps: u32,
    /// Audio sample rate; must be an AAC table rate, e.g. 48000.
    pub sample_rate: u32,
    /// Target segment length in ms: a segment is cut at the first frame boundary at or after it.
    pub segment_ms: u32,
    /// `None` = one chunk per segment; `Some(ms)` = a moof+mdat every ~ms (cut at the first frame
    /// boundary at or after it), recorded for LL-HLS parts.
    pub chunk_ms: Option<u32>,
    /// Low-Latency HLS: `Some(PART-TARGET in ms)` publishes every chunk as a part while its
    /// segment is open. Chunks then hold the most whole frames that fit in it
    /// ([`ChannelConfig::effective_chunk_ms`], overriding `chunk_ms`).
    pub part_target_ms: Option<u32>,
    /// Advertise `CAN-BLOCK-RELOAD=YES` (LL-HLS): only when the server holds `_HLS_msn` requests.
    pub can_block_reload: bool,
    /// Playlist window in segments.
    pub window: usize,
    /// H.264 target bitrate.
    pub video_bitrate_kbps: u32,
    /// AAC target bitrate.
    pub audio_bitrate_kbps: u32,
    /// Extra time added to the RFC 8216 grace before a removed segment may be deleted.
    pub deletion_slack_ms: u32,
    /// Publish captions ([`crate::LiveChannel::add_cue`]) as a WebVTT subtitles rendition behind
    /// a multivariant `index.m3u8` (see [`crate::hls`]). When false the output is a single media
    /// playlist `index.m3u8` and cues are ignored.
    pub subtitles: bool,
    /// `LANGUAGE` of the subtitles rendition: an RFC 5646 tag (letters, digits, `-`).
    pub subtitles_language: String,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        Self {
            width: 512,
            height: 512,
            fps: 25,
            sample_rate: 48_000,
            segment_ms: 1800,
            chunk_ms: None,
            part_target_ms: None,
            can_block_reload: false,
            window: 8,
            video_bitrate_kbps: 1000,
            audio_bitrate_kbps: 64,
            deletion_slack_ms: 2000,
            subtitles: true,
            subtitles_language: "en".into(),
        }
    }
}

/// An [`MediaError::InvalidConfig`] for `field`.
fn bad(field: &'static str, value: String, reason: String) -> Result<(), MediaError> {
    Err(MediaError::InvalidConfig {
        field,
        value,
        reason,
    })
}

/// Checks picture size, frame rate and sample rate (the stream format).
pub(crate) fn validate_format(
    width: u32,
    height: u32,
    fps: u32,
    sample_rate: u32,
) -> Result<(), MediaError> {
    video::validate_video_size(width, height)?;
    if fps == 0 || fps > 120 {
        return bad("fps", fps.to_string(), "must be 1..=120".into());
    }
    if !AAC_SAMPLE_RATES.contains(&sample_rate) {
        return bad(
            "sample_rate",
            sample_rate.to_string(),
            format!("must be an AAC table rate, one of {AAC_SAMPLE_RATES:?}"),
        );
    }
    Ok(())
}

/// Checks the two encoder bitrates (the audio limit depends on `sample_rate`).
pub(crate) fn validate_bitrates(
    video_bitrate_kbps: u32,
    audio_bitrate_kbps: u32,
    sample_rate: u32,
) -> Result<(), MediaError> {
    if video_bitrate_kbps == 0 || video_bitrate_kbps > 200_000 {
        return bad(
            "video_bitrate_kbps",
            video_bitrate_kbps.to_string(),
            "must be 1..=200000".into(),
        );
    }
    // AAC-LC carries at most 6144 bits per channel per 1024-sample frame.
    let max_audio_kbps = 6 * sample_rate / 1000;
    if audio_bitrate_kbps == 0 || audio_bitrate_kbps > max_audio_kbps {
        return bad(
            "audio_bitrate_kbps",
            audio_bitrate_kbps.to_string(),
            format!("must be 1..={max_audio_kbps} at {sample_rate} Hz mono"),
        );
    }
    Ok(())
}

/// Checks `segment_ms` and `chunk_ms` against each other and the frame duration.
pub(crate) fn validate_cutting(
    fps: u32,
    segment_ms: u32,
    chunk_ms: Option<u32>,
) -> Result<(), MediaError> {
    let frame_ms = 1000u32.div_ceil(fps.max(1));
    let min_segment = MIN_SEGMENT_MS.max(frame_ms);
    if !(min_segment..=MAX_SEGMENT_MS).contains(&segment_ms) {
        return bad(
            "segment_ms",
            segment_ms.to_string(),
            format!("must be {min_segment}..={MAX_SEGMENT_MS} (at least one frame)"),
        );
    }
    if let Some(c) = chunk_ms {
        if c < frame_ms || c > segment_ms {
            return bad(
                "chunk_ms",
                c.to_string(),
                format!("must be between one frame ({frame_ms} ms) and segment_ms ({segment_ms})"),
            );
        }
    }
    Ok(())
}

impl ChannelConfig {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), MediaError> {
        validate_format(self.width, self.height, self.fps, self.sample_rate)?;
        validate_cutting(self.fps, self.segment_ms, self.chunk_ms)?;
        if let Some(p) = self.part_target_ms {
            let frame_ms = 1000u32.div_ceil(self.fps.max(1));
            if p < frame_ms || p > self.segment_ms {
                return bad(
                    "part_target_ms",
                    p.to_string(),
                    format!(
                        "must be between one frame ({frame_ms} ms) and segment_ms ({})",
                        self.segment_ms
                    ),
                );
            }
        }
        if self.window == 0 {
            return bad("window", "0".into(), "must be at least 1 segment".into());
        }
        validate_bitrates(
            self.video_bitrate_kbps,
            self.audio_bitrate_kbps,
            self.sample_rate,
        )?;
        let lang = &self.subtitles_language;
        if lang.is_empty()
            || lang.len() > 35
            || lang.starts_with('-')
            || lang.ends_with('-')
            || !lang.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return bad(
                "subtitles_language",
                lang.clone(),
                "must be a language tag such as en or pt-BR".into(),
            );
        }
        Ok(())
    }

    /// The encoder stage's part of the settings.
    pub fn encoder(&self) -> EncoderConfig {
        EncoderConfig {
            width: self.width,
            height: self.height,
            fps: self.fps,
            sample_rate: self.sample_rate,
            video_bitrate_kbps: self.video_bitrate_kbps,
            audio_bitrate_kbps: self.audio_bitrate_kbps,
        }
    }

    /// The CMAF segmenter's part of the settings.
    pub fn segmenter(&self) -> SegmenterConfig {
        SegmenterConfig {
            fps: self.fps,
            sample_rate: self.sample_rate,
            segment_ms: self.segment_ms,
            chunk_ms: self.effective_chunk_ms(),
        }
    }

    /// The chunk length the segmenter uses: with `part_target_ms`, the whole number of frames
    /// that fits in it (at least one) in ms rounded down, so that a chunk (closed at the first
    /// frame boundary at or after it) never exceeds `PART-TARGET`; else `chunk_ms`.
    pub fn effective_chunk_ms(&self) -> Option<u32> {
        let Some(p) = self.part_target_ms else {
            return self.chunk_ms;
        };
        let fps = u64::from(self.fps.max(1));
        let frames = (u64::from(p) * fps / 1000).max(1);
        Some(u32::try_from(frames * 1000 / fps).unwrap_or(p).max(1))
    }

    /// The fixed `EXT-X-TARGETDURATION`: ceil of the longest segment the cutting rule can make.
    pub fn target_duration_s(&self) -> u32 {
        let fps = u64::from(self.fps.max(1));
        let timescale = u64::from(VIDEO_TIMESCALE);
        let target = u64::from(self.segment_ms) * 90;
        let max_ticks = if timescale % fps == 0 {
            let frame = timescale / fps;
            target.div_ceil(frame) * frame
        } else {
            target - 1 + timescale.div_ceil(fps)
        };
        max_ticks.div_ceil(timescale).max(1) as u32
    }
}
