//! The live segmenter: [`LiveChannel`] takes one video frame plus its PCM at a time, encodes them,
//! cuts IDR-aligned segments (made of one or more CMAF chunks), keeps the HLS playlist and tells
//! the caller which files to write and, after the RFC 8216 grace period, which to delete.
//!
//! Timeline: video frame `n` starts at `floor(n * 90000 / fps)` (90 kHz ticks); audio is one
//! continuous AAC track whose access unit `k` starts at sample `k * 1024`. Both start at media
//! time 0 and `tfdt` stays continuous per track for the whole channel.

use std::collections::VecDeque;

use crate::audio::{AacEncoder, AAC_SAMPLE_RATES, SAMPLES_PER_AU};
use crate::fmp4::{self, Sample, TrackRun, AUDIO_TRACK_ID, VIDEO_TIMESCALE, VIDEO_TRACK_ID};
use crate::playlist::{MediaPlaylist, PlaylistSegment};
use crate::video::{self, H264Encoder, I420Frame};
use crate::MediaError;

/// Name of the media playlist file.
pub const PLAYLIST_NAME: &str = "index.m3u8";

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
    /// Playlist window in segments.
    pub window: usize,
    /// H.264 target bitrate.
    pub video_bitrate_kbps: u32,
    /// AAC target bitrate.
    pub audio_bitrate_kbps: u32,
    /// Extra time added to the RFC 8216 grace before a removed segment may be deleted.
    pub deletion_slack_ms: u32,
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
            window: 8,
            video_bitrate_kbps: 1000,
            audio_bitrate_kbps: 64,
            deletion_slack_ms: 2000,
        }
    }
}

impl ChannelConfig {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), MediaError> {
        let bad = |field: &'static str, value: String, reason: String| {
            Err(MediaError::InvalidConfig {
                field,
                value,
                reason,
            })
        };
        video::validate_video_size(self.width, self.height)?;
        if self.fps == 0 || self.fps > 120 {
            return bad("fps", self.fps.to_string(), "must be 1..=120".into());
        }
        if !AAC_SAMPLE_RATES.contains(&self.sample_rate) {
            return bad(
                "sample_rate",
                self.sample_rate.to_string(),
                format!("must be an AAC table rate, one of {AAC_SAMPLE_RATES:?}"),
            );
        }
        let frame_ms = 1000u32.div_ceil(self.fps);
        let min_segment = MIN_SEGMENT_MS.max(frame_ms);
        if self.segment_ms < min_segment || self.segment_ms > MAX_SEGMENT_MS {
            return bad(
                "segment_ms",
                self.segment_ms.to_string(),
                format!("must be {min_segment}..={MAX_SEGMENT_MS} (at least one frame)"),
            );
        }
        if let Some(c) = self.chunk_ms {
            if c < frame_ms || c > self.segment_ms {
                return bad(
                    "chunk_ms",
                    c.to_string(),
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
        if self.video_bitrate_kbps == 0 || self.video_bitrate_kbps > 200_000 {
            return bad(
                "video_bitrate_kbps",
                self.video_bitrate_kbps.to_string(),
                "must be 1..=200000".into(),
            );
        }
        // AAC-LC carries at most 6144 bits per channel per 1024-sample frame.
        let max_audio_kbps = 6 * self.sample_rate / 1000;
        if self.audio_bitrate_kbps == 0 || self.audio_bitrate_kbps > max_audio_kbps {
            return bad(
                "audio_bitrate_kbps",
                self.audio_bitrate_kbps.to_string(),
                format!(
                    "must be 1..={max_audio_kbps} at {} Hz mono",
                    self.sample_rate
                ),
            );
        }
        Ok(())
    }

    /// 90 kHz tick at which frame `n` starts.
    fn frame_tick(&self, n: u64) -> u64 {
        (u128::from(n) * u128::from(VIDEO_TIMESCALE) / u128::from(self.fps)) as u64
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

/// Where one CMAF chunk (moof+mdat) lies inside its segment.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkInfo {
    /// Byte offset of the chunk's `moof` within the segment.
    pub offset: usize,
    /// Chunk length in bytes.
    pub len: usize,
    /// Video duration of the chunk in ms.
    pub duration_ms: f64,
    /// True if the chunk starts with an IDR (an LL-HLS part with `INDEPENDENT=YES`).
    pub independent: bool,
}

/// Facts about a finished segment.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentInfo {
    /// Media sequence number.
    pub msn: u64,
    /// Media time of the first video frame, ms (rounded down).
    pub start_ms: u64,
    /// Video duration in ms (the `EXTINF`).
    pub duration_ms: f64,
    /// Video frames in the segment.
    pub frames: u32,
    /// Audio samples in the segment (access units x 1024).
    pub audio_samples: u64,
    /// The chunks, in order, covering the whole segment.
    pub chunks: Vec<ChunkInfo>,
}

/// Something the caller must do, in the order given.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Write an init segment (before any segment that uses it).
    Init {
        /// File name, e.g. `init-0.mp4`.
        name: String,
        /// File contents.
        bytes: Vec<u8>,
    },
    /// Write a media segment (before the playlist that lists it).
    Segment {
        /// File name, e.g. `seg-12.m4s`.
        name: String,
        /// File contents.
        bytes: Vec<u8>,
        /// What is in it.
        info: SegmentInfo,
    },
    /// Replace the playlist (write to a temporary name, then rename).
    Playlist {
        /// File name: [`PLAYLIST_NAME`].
        name: String,
        /// The full new text.
        text: String,
    },
    /// Delete a file: its grace period has passed.
    Delete {
        /// File name.
        name: String,
    },
}

#[derive(Debug)]
struct VideoSample {
    data: Vec<u8>,
    duration: u32,
    sync: bool,
}

/// The segment being built.
#[derive(Debug)]
struct OpenSegment {
    start_tick: u64,
    ticks: u64,
    frames: u32,
    audio_samples: u64,
    cap_ms: Option<u32>,
    bytes: Vec<u8>,
    chunks: Vec<ChunkInfo>,
    /// Current chunk: its start tick and video samples.
    chunk_start_tick: u64,
    chunk_video: Vec<VideoSample>,
}

/// One live HLS channel: frames and PCM in, [`Output`]s out. See the module docs.
///
/// ```
/// use talkstream_media::{ChannelConfig, I420Frame, LiveChannel, Output};
/// let cfg = ChannelConfig { width: 64, height: 64, ..ChannelConfig::default() };
/// let start_unix_ms = 1_767_268_800_000;
/// let mut ch = LiveChannel::new(cfg, start_unix_ms)?;
/// let frame = I420Frame::new(64, 64);
/// let mut written = Vec::new();
/// for _ in 0..50 {
///     let n = ch.next_frame_index();
///     let pcm = vec![0i16; ch.samples_for_frame(n)];
///     let now = start_unix_ms + ch.frame_time_ms(n + 1) as i64; // the caller's wall clock
///     for out in ch.push_frame(&frame, &pcm, now)? {
///         match out {
///             Output::Init { name, .. } | Output::Segment { name, .. } => written.push(name),
///             Output::Playlist { .. } | Output::Delete { .. } => {}
///         }
///     }
/// }
/// assert_eq!(written, ["init-0.mp4", "seg-0.m4s"]); // 45 frames = 1.8 s
/// ch.finish(start_unix_ms + 2000)?;
/// # Ok::<(), talkstream_media::MediaError>(())
/// ```
pub struct LiveChannel {
    cfg: ChannelConfig,
    start_unix_ms: i64,
    video: H264Encoder,
    audio: AacEncoder,
    playlist: MediaPlaylist,
    next_frame: u64,
    /// Access units already placed in chunks (the next one starts at `placed_aus * 1024`).
    placed_aus: u64,
    pending_audio: VecDeque<Vec<u8>>,
    open: Option<OpenSegment>,
    cut_pending: bool,
    pending_cap_ms: Option<u32>,
    next_sequence: u32,
    init_name: String,
    init_emitted: bool,
    playlist_emitted: bool,
    finished: bool,
    failed: bool,
}

impl std::fmt::Debug for LiveChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveChannel")
            .field("cfg", &self.cfg)
            .field("start_unix_ms", &self.start_unix_ms)
            .field("next_frame", &self.next_frame)
            .field("placed_aus", &self.placed_aus)
            .field("pending_audio", &self.pending_audio.len())
            .field("open_frames", &self.open.as_ref().map(|o| o.frames))
            .field("media_sequence", &self.playlist.media_sequence())
            .field("finished", &self.finished)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl LiveChannel {
    /// A new channel. `start_unix_ms` is the wall-clock time (ms since the Unix epoch) of media
    /// time 0, used for `EXT-X-PROGRAM-DATE-TIME` (a segment's date = start + its media start).
    pub fn new(cfg: ChannelConfig, start_unix_ms: i64) -> Result<Self, MediaError> {
        cfg.validate()?;
        let video = H264Encoder::new(cfg.width, cfg.height, cfg.fps, cfg.video_bitrate_kbps)?;
        let audio = AacEncoder::new(cfg.sample_rate, cfg.audio_bitrate_kbps)?;
        let playlist =
            MediaPlaylist::new(cfg.target_duration_s(), cfg.window, cfg.deletion_slack_ms)?;
        Ok(Self {
            cfg,
            start_unix_ms,
            video,
            audio,
            playlist,
            next_frame: 0,
            placed_aus: 0,
            pending_audio: VecDeque::new(),
            open: None,
            cut_pending: false,
            pending_cap_ms: None,
            next_sequence: 1,
            init_name: "init-0.mp4".into(),
            init_emitted: false,
            playlist_emitted: false,
            finished: false,
            failed: false,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ChannelConfig {
        &self.cfg
    }

    /// Index of the next frame to push.
    pub fn next_frame_index(&self) -> u64 {
        self.next_frame
    }

    /// Media time of frame `n` in ms (rounded down).
    pub fn frame_time_ms(&self, n: u64) -> u64 {
        (u128::from(n) * 1000 / u128::from(self.cfg.fps)) as u64
    }

    /// PCM samples that go with frame `n`: `floor((n+1)*sr/fps) - floor(n*sr/fps)`.
    pub fn samples_for_frame(&self, n: u64) -> usize {
        let at =
            |k: u64| u128::from(k) * u128::from(self.cfg.sample_rate) / u128::from(self.cfg.fps);
        (at(n + 1) - at(n)) as usize
    }

    /// The playlist's fixed `EXT-X-TARGETDURATION` in seconds.
    pub fn target_duration_s(&self) -> u32 {
        self.playlist.target_duration_s()
    }

    /// RFC 6381 `CODECS` value (`avc1.PPCCLL,mp4a.40.2`), known once the first frame is encoded.
    pub fn codecs(&self) -> Option<String> {
        self.video.codec_string().map(|v| format!("{v},mp4a.40.2"))
    }

    /// Pushes the next video frame and exactly `samples_for_frame(next_frame_index())` mono PCM
    /// samples. `now_unix_ms` (wall clock) is used only for deletion grace timing. Returns what
    /// to write/delete, in order.
    pub fn push_frame(
        &mut self,
        frame: &I420Frame,
        pcm: &[i16],
        now_unix_ms: i64,
    ) -> Result<Vec<Output>, MediaError> {
        self.check_usable()?;
        let n = self.next_frame;
        video::check_frame(frame, self.cfg.width, self.cfg.height, n)?;
        let expected = self.samples_for_frame(n);
        if pcm.len() != expected {
            return Err(MediaError::PcmLength {
                frame_index: n,
                expected,
                got: pcm.len(),
            });
        }
        let result = self.push_checked(frame, pcm, now_unix_ms);
        if result.is_err() {
            // An encoder or writer failure leaves the timeline in an unknown state.
            self.failed = true;
        }
        result
    }

    fn push_checked(
        &mut self,
        frame: &I420Frame,
        pcm: &[i16],
        now_unix_ms: i64,
    ) -> Result<Vec<Output>, MediaError> {
        let n = self.next_frame;
        let cut_open = self.cut_pending && self.open.is_some();
        let starts_segment = self.open.is_none() || cut_open;
        let encoded = self.video.encode(frame, starts_segment)?;
        if starts_segment && !encoded.is_idr {
            return Err(MediaError::VideoEncoder {
                frame_index: n,
                message: "segment would not start with an IDR".into(),
            });
        }
        // Access units made available by this frame's PCM may still belong to the open segment.
        self.pending_audio.extend(self.audio.push(pcm)?);

        let mut out = Vec::new();
        if cut_open {
            out.extend(self.close_segment(now_unix_ms, false)?);
        }
        let frame_start = self.cfg.frame_tick(n);
        let duration = self.cfg.frame_tick(n + 1) - frame_start;
        if self.open.is_none() {
            self.cut_pending = false;
            self.open = Some(OpenSegment {
                start_tick: frame_start,
                ticks: 0,
                frames: 0,
                audio_samples: 0,
                cap_ms: self.pending_cap_ms.take(),
                bytes: Vec::new(),
                chunks: Vec::new(),
                chunk_start_tick: frame_start,
                chunk_video: Vec::new(),
            });
        }
        let next_duration = self.cfg.frame_tick(n + 2) - self.cfg.frame_tick(n + 1);
        let (close_chunk, close_segment) = {
            let Some(open) = self.open.as_mut() else {
                return Err(MediaError::Playlist {
                    message: "internal: no open segment".into(),
                });
            };
            open.chunk_video.push(VideoSample {
                data: encoded.data,
                duration: duration as u32,
                sync: encoded.is_idr,
            });
            open.ticks += duration;
            open.frames += 1;
            let chunk_ticks = open.start_tick + open.ticks - open.chunk_start_tick;
            let close_chunk = self
                .cfg
                .chunk_ms
                .is_some_and(|c| chunk_ticks >= u64::from(c) * 90);
            let reached_target = open.ticks >= u64::from(self.cfg.segment_ms) * 90;
            let reached_cap = open
                .cap_ms
                .is_some_and(|cap| open.ticks + next_duration > u64::from(cap) * 90);
            (close_chunk, reached_target || reached_cap)
        };
        self.next_frame += 1;
        if close_segment {
            out.extend(self.close_segment(now_unix_ms, false)?);
        } else if close_chunk {
            self.close_chunk(false)?;
        }
        out.extend(self.poll_expired(now_unix_ms));
        Ok(out)
    }

    fn check_usable(&self) -> Result<(), MediaError> {
        if self.failed {
            return Err(MediaError::ChannelFailed);
        }
        if self.finished {
            return Err(MediaError::Finished { what: "channel" });
        }
        Ok(())
    }

    /// The next pushed frame starts a new segment (IDR) even if the open one is short. If
    /// `next_segment_max_ms` is `Some`, that new segment is closed after at most that long (at
    /// least one frame). With no open segment only the cap is set.
    pub fn cut_before_next(&mut self, next_segment_max_ms: Option<u32>) {
        if self.open.is_some() {
            self.cut_pending = true;
        }
        self.pending_cap_ms = next_segment_max_ms;
    }

    /// Closes the open segment (if it has frames), flushing the audio encoder into it, and ends
    /// the playlist (`EXT-X-ENDLIST`). Further pushes are an error; a second `finish` returns
    /// nothing. Audio still pending when no segment is open (at most ~2 access units) is dropped.
    pub fn finish(&mut self, now_unix_ms: i64) -> Result<Vec<Output>, MediaError> {
        if self.failed {
            return Err(MediaError::ChannelFailed);
        }
        if self.finished {
            return Ok(Vec::new());
        }
        self.finished = true;
        let mut out = Vec::new();
        if self.open.is_some() {
            self.pending_audio.extend(self.audio.flush()?);
            out.extend(self.close_segment(now_unix_ms, true)?);
        }
        self.pending_audio.clear();
        self.playlist.end();
        self.playlist_emitted = true;
        if out.iter().all(|o| !matches!(o, Output::Playlist { .. })) {
            out.push(Output::Playlist {
                name: PLAYLIST_NAME.into(),
                text: self.playlist.render(),
            });
        } else {
            // close_segment rendered before end(): re-render with ENDLIST.
            for o in &mut out {
                if let Output::Playlist { text, .. } = o {
                    *text = self.playlist.render();
                }
            }
        }
        out.extend(self.poll_expired(now_unix_ms));
        Ok(out)
    }

    /// Delete outputs for files whose grace period has passed at `now_unix_ms` (segments, then
    /// init segments no longer used).
    pub fn poll_expired(&mut self, now_unix_ms: i64) -> Vec<Output> {
        self.playlist
            .poll_expired(now_unix_ms)
            .into_iter()
            .map(|name| Output::Delete { name })
            .collect()
    }

    /// Every file name this channel has created (segments, init segments and the playlist) that
    /// has not been reported in a [`Output::Delete`].
    pub fn live_files(&self) -> Vec<String> {
        // The init segment is emitted together with the first segment that uses it, so the
        // playlist's bookkeeping covers it.
        let mut files = self.playlist.live_files();
        if self.playlist_emitted {
            files.push(PLAYLIST_NAME.into());
        }
        files
    }

    /// Turns the open chunk into bytes appended to the open segment, with the pending audio that
    /// starts before the chunk's video end (all of it when `all_audio`).
    fn close_chunk(&mut self, all_audio: bool) -> Result<(), MediaError> {
        let sr = u128::from(self.cfg.sample_rate);
        let Some(open) = self.open.as_mut() else {
            return Ok(());
        };
        // An empty chunk is only built at finish, to carry the last audio (audio-only chunk).
        let audio_only = all_audio && !self.pending_audio.is_empty();
        if open.chunk_video.is_empty() && !audio_only {
            return Ok(());
        }
        let end_tick = open.start_tick + open.ticks;
        let audio_start = self.placed_aus;
        let mut take = 0usize;
        while take < self.pending_audio.len() {
            let au_start = u128::from(audio_start + take as u64) * SAMPLES_PER_AU as u128;
            // AU start (samples) < video end (ticks), compared without rounding.
            if !all_audio && au_start * u128::from(VIDEO_TIMESCALE) >= u128::from(end_tick) * sr {
                break;
            }
            take += 1;
        }
        let audio: Vec<Vec<u8>> = self.pending_audio.drain(..take).collect();
        let video_samples: Vec<Sample<'_>> = open
            .chunk_video
            .iter()
            .map(|s| Sample {
                duration: s.duration,
                data: &s.data,
                sync: s.sync,
            })
            .collect();
        let audio_samples: Vec<Sample<'_>> = audio
            .iter()
            .map(|d| Sample {
                duration: SAMPLES_PER_AU as u32,
                data: d,
                sync: true,
            })
            .collect();
        let runs = [
            TrackRun {
                track_id: VIDEO_TRACK_ID,
                base_media_decode_time: open.chunk_start_tick,
                samples: &video_samples,
            },
            TrackRun {
                track_id: AUDIO_TRACK_ID,
                base_media_decode_time: audio_start * SAMPLES_PER_AU as u64,
                samples: &audio_samples,
            },
        ];
        let bytes = fmp4::chunk(self.next_sequence, &runs)?;
        self.next_sequence = self.next_sequence.wrapping_add(1).max(1);
        open.chunks.push(ChunkInfo {
            offset: open.bytes.len(),
            len: bytes.len(),
            duration_ms: (end_tick - open.chunk_start_tick) as f64 / 90.0,
            independent: open.chunk_video.first().is_some_and(|s| s.sync),
        });
        open.bytes.extend_from_slice(&bytes);
        open.audio_samples += (take * SAMPLES_PER_AU) as u64;
        open.chunk_video.clear();
        open.chunk_start_tick = end_tick;
        self.placed_aus += take as u64;
        Ok(())
    }

    /// Closes the open segment: returns [Init,] Segment, Playlist.
    fn close_segment(
        &mut self,
        now_unix_ms: i64,
        all_audio: bool,
    ) -> Result<Vec<Output>, MediaError> {
        self.close_chunk(all_audio)?;
        let Some(open) = self.open.take() else {
            return Ok(Vec::new());
        };
        if open.frames == 0 {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        if !self.init_emitted {
            out.push(Output::Init {
                name: self.init_name.clone(),
                bytes: self.init_segment()?,
            });
            self.init_emitted = true;
        }
        let msn = self.playlist.next_msn();
        let name = format!("seg-{msn}.m4s");
        let start_ms = open.start_tick / 90;
        let duration_ms = open.ticks as f64 / 90.0;
        let pdt = self
            .start_unix_ms
            .saturating_add(i64::try_from(start_ms).unwrap_or(i64::MAX));
        self.playlist.push_segment(
            PlaylistSegment {
                uri: name.clone(),
                duration_ms,
                program_date_time_ms: Some(pdt),
                map_uri: self.init_name.clone(),
                discontinuity: false,
            },
            now_unix_ms,
        )?;
        out.push(Output::Segment {
            name,
            bytes: open.bytes,
            info: SegmentInfo {
                msn,
                start_ms,
                duration_ms,
                frames: open.frames,
                audio_samples: open.audio_samples,
                chunks: open.chunks,
            },
        });
        out.push(Output::Playlist {
            name: PLAYLIST_NAME.into(),
            text: self.playlist.render(),
        });
        self.playlist_emitted = true;
        Ok(out)
    }

    fn init_segment(&self) -> Result<Vec<u8>, MediaError> {
        let (Some(sps), Some(pps)) = (self.video.sps(), self.video.pps()) else {
            return Err(MediaError::VideoEncoder {
                frame_index: self.next_frame,
                message: "no SPS/PPS captured for the init segment".into(),
            });
        };
        fmp4::init_segment(
            &fmp4::VideoTrack {
                width: self.cfg.width,
                height: self.cfg.height,
                sps: sps.to_vec(),
                pps: pps.to_vec(),
            },
            &fmp4::AudioTrack {
                sample_rate: self.cfg.sample_rate,
                channels: 1,
                asc: self.audio.asc().to_vec(),
                avg_bitrate: self.cfg.audio_bitrate_kbps.saturating_mul(1000),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fmp4::testutil::parse_chunks;
    use crate::fmp4::{SAMPLE_FLAGS_NON_SYNC, SAMPLE_FLAGS_SYNC};

    const START: i64 = 1_767_268_800_000;

    fn small(segment_ms: u32) -> ChannelConfig {
        ChannelConfig {
            width: 64,
            height: 48,
            segment_ms,
            video_bitrate_kbps: 200,
            deletion_slack_ms: 0,
            ..ChannelConfig::default()
        }
    }

    fn frame_for(n: u64, w: u32, h: u32) -> I420Frame {
        let mut f = I420Frame::new(w, h);
        for (i, y) in f.y.iter_mut().enumerate() {
            *y = (16 + (i as u64 + n * 3) % 200) as u8;
        }
        f
    }

    /// Pushes `count` frames (tone PCM), returning every output.
    fn push_n(ch: &mut LiveChannel, count: u64) -> Vec<Output> {
        let mut out = Vec::new();
        for _ in 0..count {
            let n = ch.next_frame_index();
            let pcm: Vec<i16> = (0..ch.samples_for_frame(n))
                .map(|i| (((i as f32) * 0.07).sin() * 6000.0) as i16)
                .collect();
            let f = frame_for(n, ch.config().width, ch.config().height);
            let now = START + ch.frame_time_ms(n + 1) as i64;
            out.extend(ch.push_frame(&f, &pcm, now).unwrap());
        }
        out
    }

    fn segments(out: &[Output]) -> Vec<(&String, &Vec<u8>, &SegmentInfo)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Segment { name, bytes, info } => Some((name, bytes, info)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn channel_can_move_to_a_media_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<LiveChannel>();
        assert_send::<Output>();
    }

    #[test]
    fn samples_for_frame_sums_to_the_rate_every_second() {
        for (fps, sr) in [
            (25, 48_000),
            (30, 44_100),
            (24, 22_050),
            (7, 16_000),
            (60, 8_000),
        ] {
            let cfg = ChannelConfig {
                fps,
                sample_rate: sr,
                audio_bitrate_kbps: 32,
                ..small(1800)
            };
            let ch = LiveChannel::new(cfg, 0).unwrap();
            for second in [0u64, 1, 3599, 1_000_000] {
                let first = second * u64::from(fps);
                let sum: usize = (first..first + u64::from(fps))
                    .map(|n| ch.samples_for_frame(n))
                    .sum();
                assert_eq!(sum, sr as usize, "fps {fps} sr {sr} second {second}");
            }
            assert_eq!(ch.frame_time_ms(u64::from(fps)), 1000);
        }
        let ch = LiveChannel::new(small(1800), 0).unwrap();
        assert_eq!(ch.samples_for_frame(0), 1920);
        assert_eq!(ch.frame_time_ms(3), 120);
    }

    #[test]
    fn target_duration_from_segment_ms_plus_a_frame() {
        assert_eq!(small(1800).target_duration_s(), 2);
        assert_eq!(small(2000).target_duration_s(), 2);
        assert_eq!(small(2001).target_duration_s(), 3);
        assert_eq!(small(200).target_duration_s(), 1);
        let odd = ChannelConfig {
            fps: 7,
            ..small(1800)
        };
        assert_eq!(odd.target_duration_s(), 2); // 1.8 s + 1/7 s
    }

    #[test]
    fn config_validation_names_the_field() {
        let cases: Vec<(ChannelConfig, &str)> = vec![
            (
                ChannelConfig {
                    width: 63,
                    ..small(1800)
                },
                "width",
            ),
            (
                ChannelConfig {
                    height: 0,
                    ..small(1800)
                },
                "height",
            ),
            (
                ChannelConfig {
                    fps: 0,
                    ..small(1800)
                },
                "fps",
            ),
            (
                ChannelConfig {
                    sample_rate: 47_000,
                    ..small(1800)
                },
                "sample_rate",
            ),
            (small(50), "segment_ms"),
            (
                ChannelConfig {
                    chunk_ms: Some(2000),
                    ..small(1800)
                },
                "chunk_ms",
            ),
            (
                ChannelConfig {
                    chunk_ms: Some(10),
                    ..small(1800)
                },
                "chunk_ms",
            ),
            (
                ChannelConfig {
                    window: 0,
                    ..small(1800)
                },
                "window",
            ),
            (
                ChannelConfig {
                    video_bitrate_kbps: 0,
                    ..small(1800)
                },
                "video_bitrate_kbps",
            ),
            (
                ChannelConfig {
                    audio_bitrate_kbps: 0,
                    ..small(1800)
                },
                "audio_bitrate_kbps",
            ),
            (
                ChannelConfig {
                    audio_bitrate_kbps: 300,
                    ..small(1800)
                },
                "audio_bitrate_kbps",
            ),
        ];
        for (cfg, field) in cases {
            match LiveChannel::new(cfg, 0) {
                Err(MediaError::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: expected InvalidConfig, got {other:?}"),
            }
        }
        assert!(ChannelConfig::default().validate().is_ok());
    }

    #[test]
    fn rejects_wrong_pcm_and_frame_sizes_without_advancing() {
        let mut ch = LiveChannel::new(small(1800), START).unwrap();
        let f = I420Frame::new(64, 48);
        let err = ch.push_frame(&f, &[0; 100], START).unwrap_err();
        assert!(matches!(
            err,
            MediaError::PcmLength {
                expected: 1920,
                got: 100,
                ..
            }
        ));
        let err = ch
            .push_frame(&I420Frame::new(32, 32), &[0; 1920], START)
            .unwrap_err();
        assert!(matches!(err, MediaError::BadFrame { .. }));
        let mut bad = I420Frame::new(64, 48);
        bad.u.pop();
        assert!(ch.push_frame(&bad, &[0; 1920], START).is_err());
        assert_eq!(ch.next_frame_index(), 0);
        assert!(ch.push_frame(&f, &[0; 1920], START).is_ok());
        assert_eq!(ch.next_frame_index(), 1);
    }

    #[test]
    fn segments_are_cut_at_target_with_continuous_timelines() {
        let mut ch = LiveChannel::new(small(1800), START).unwrap();
        let out = push_n(&mut ch, 250); // 10 s
                                        // Write order: Init first, each Segment before its Playlist.
        assert!(matches!(out[0], Output::Init { ref name, .. } if name == "init-0.mp4"));
        assert!(matches!(out[1], Output::Segment { .. }));
        assert!(matches!(out[2], Output::Playlist { .. }));
        let segs = segments(&out);
        assert_eq!(segs.len(), 5, "5 x 45 frames, 25 frames left open");
        let mut video_t = 0u64;
        let mut audio_t = 0u64;
        let mut seq = 0u32;
        for (k, (name, bytes, info)) in segs.iter().enumerate() {
            assert_eq!(**name, format!("seg-{k}.m4s"));
            assert_eq!(info.msn, k as u64);
            assert_eq!(info.frames, 45);
            assert_eq!(info.duration_ms, 1800.0);
            assert_eq!(info.start_ms, k as u64 * 1800);
            assert_eq!(info.chunks.len(), 1);
            assert_eq!(info.chunks[0].len, bytes.len());
            assert!(info.chunks[0].independent);
            let chunks = parse_chunks(bytes);
            let mut frames = 0;
            let mut audio_samples = 0u64;
            for c in &chunks {
                seq += 1;
                assert_eq!(c.sequence, seq);
                for t in &c.trafs {
                    if t.track_id == VIDEO_TRACK_ID {
                        assert_eq!(t.tfdt, video_t);
                        for (i, s) in t.samples.iter().enumerate() {
                            let want = if i == 0 && frames == 0 {
                                SAMPLE_FLAGS_SYNC
                            } else {
                                SAMPLE_FLAGS_NON_SYNC
                            };
                            assert_eq!(s.2, want, "segment {k} sample {i} flags");
                            video_t += u64::from(s.0);
                        }
                        frames += t.samples.len() as u32;
                    } else {
                        assert_eq!(t.tfdt, audio_t);
                        audio_t += 1024 * t.samples.len() as u64;
                        audio_samples += 1024 * t.samples.len() as u64;
                    }
                }
            }
            assert_eq!(frames, info.frames);
            assert_eq!(audio_samples, info.audio_samples);
            // Audio ends within ~2 AUs of the video end, never starts after it.
            let video_end_samples = video_t * 48_000 / 90_000;
            assert!(audio_t <= video_end_samples + 1024, "segment {k}");
            assert!(
                audio_t + 3 * 1024 >= video_end_samples,
                "segment {k} audio lags"
            );
        }
        let text = match out
            .iter()
            .rev()
            .find(|o| matches!(o, Output::Playlist { .. }))
        {
            Some(Output::Playlist { text, .. }) => text.clone(),
            _ => unreachable!(),
        };
        assert!(text.contains("#EXT-X-TARGETDURATION:2\n"));
        assert!(text.contains(
            "#EXT-X-PROGRAM-DATE-TIME:2026-01-01T12:00:01.800Z\n#EXTINF:1.800,\nseg-1.m4s"
        ));
        assert_eq!(ch.codecs().unwrap().split(',').nth(1), Some("mp4a.40.2"));
    }

    #[test]
    fn cut_before_next_and_cap() {
        let mut ch = LiveChannel::new(small(1800), START).unwrap();
        assert!(push_n(&mut ch, 10).is_empty());
        ch.cut_before_next(Some(400));
        let out = push_n(&mut ch, 1);
        let segs = segments(&out);
        assert_eq!(
            segs.len(),
            1,
            "the short segment closes when the next frame arrives"
        );
        assert_eq!(segs[0].2.frames, 10);
        // The capped segment: 400 ms = 10 frames, including the frame just pushed.
        let out = push_n(&mut ch, 9);
        let segs = segments(&out);
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].2.frames, 10);
        assert_eq!(segs[0].2.start_ms, 400);
        assert!(parse_chunks(segs[0].1)[0].trafs[0].samples[0].2 == SAMPLE_FLAGS_SYNC);
        // Back to normal length afterwards.
        let out = push_n(&mut ch, 45);
        assert_eq!(segments(&out)[0].2.frames, 45);
        // Cut on an empty open segment only sets the cap.
        ch.cut_before_next(Some(100));
        let out = push_n(&mut ch, 3);
        let segs = segments(&out);
        assert_eq!(segs.iter().map(|s| s.2.frames).collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn chunks_are_recorded_with_offsets() {
        let cfg = ChannelConfig {
            chunk_ms: Some(500),
            ..small(1800)
        };
        let mut ch = LiveChannel::new(cfg, START).unwrap();
        let out = push_n(&mut ch, 45);
        let segs = segments(&out);
        let (_, bytes, info) = segs[0];
        let frames: Vec<f64> = info.chunks.iter().map(|c| c.duration_ms / 40.0).collect();
        assert_eq!(frames, [13.0, 13.0, 13.0, 6.0]);
        let independent: Vec<bool> = info.chunks.iter().map(|c| c.independent).collect();
        assert_eq!(independent, [true, false, false, false]);
        let mut at = 0;
        for c in &info.chunks {
            assert_eq!(c.offset, at);
            let parsed = parse_chunks(&bytes[c.offset..c.offset + c.len]);
            assert_eq!(parsed.len(), 1, "each chunk is one moof+mdat");
            at += c.len;
        }
        assert_eq!(at, bytes.len());
    }

    #[test]
    fn finish_closes_flushes_and_ends() {
        let mut ch = LiveChannel::new(small(1800), START).unwrap();
        push_n(&mut ch, 60);
        let out = ch.finish(START + 3000).unwrap();
        let segs = segments(&out);
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].2.frames, 15);
        let last = out.last().unwrap();
        match last {
            Output::Playlist { text, .. } => assert!(text.ends_with("#EXT-X-ENDLIST\n")),
            other => panic!("expected the playlist last, got {other:?}"),
        }
        let err = ch
            .push_frame(&I420Frame::new(64, 48), &[0; 1920], START)
            .unwrap_err();
        assert!(matches!(err, MediaError::Finished { .. }));
        assert!(ch.finish(START).unwrap().is_empty());
    }

    #[test]
    fn total_audio_covers_stream_at_finish() {
        let mut ch = LiveChannel::new(small(1800), START).unwrap();
        let mut out = push_n(&mut ch, 100);
        out.extend(ch.finish(START + 5000).unwrap());
        let audio: u64 = segments(&out).iter().map(|s| s.2.audio_samples).sum();
        assert_eq!(audio, (100 * 1920u64).div_ceil(1024) * 1024);
        let frames: u32 = segments(&out).iter().map(|s| s.2.frames).sum();
        assert_eq!(frames, 100);
    }

    #[test]
    fn finish_without_frames_still_ends_the_playlist() {
        let mut ch = LiveChannel::new(small(1800), START).unwrap();
        let out = ch.finish(START).unwrap();
        assert!(matches!(&out[..], [Output::Playlist { text, .. }] if text.contains("ENDLIST")));
    }

    #[test]
    fn old_segments_are_deleted_after_grace_and_files_stay_bounded() {
        // 200 ms segments (TD 1 s -> at least 3 s listed), window 3.
        let cfg = ChannelConfig {
            window: 3,
            ..small(200)
        };
        let mut ch = LiveChannel::new(cfg, START).unwrap();
        let mut listed: Vec<String> = Vec::new();
        let mut removed_at: std::collections::HashMap<String, i64> = Default::default();
        let mut max_live = 0;
        for _ in 0..1000 {
            let n = ch.next_frame_index();
            let now = START + ch.frame_time_ms(n + 1) as i64;
            for o in push_n(&mut ch, 1) {
                match o {
                    Output::Playlist { text, .. } => {
                        let now_listed: Vec<String> = text
                            .lines()
                            .filter(|l| l.ends_with(".m4s"))
                            .map(str::to_owned)
                            .collect();
                        for gone in listed.iter().filter(|l| !now_listed.contains(l)) {
                            removed_at.insert(gone.clone(), now);
                        }
                        listed = now_listed;
                    }
                    Output::Delete { name } if name.ends_with(".m4s") => {
                        assert!(!listed.contains(&name), "{name} deleted while listed");
                        let at = removed_at[&name];
                        // 200 ms own duration + 3 s longest playlist.
                        assert!(
                            now >= at + 3200,
                            "{name} deleted {} ms after removal",
                            now - at
                        );
                    }
                    Output::Delete { name } => panic!("unexpected delete of {name}"),
                    _ => {}
                }
            }
            max_live = max_live.max(ch.live_files().len());
        }
        assert_eq!(listed.len(), 15);
        assert!(removed_at.len() > 150);
        // playlist + init + 15 listed + ~17 in grace.
        assert!(max_live <= 2 + 15 + 18, "{max_live}");
        assert!(ch.live_files().contains(&"index.m3u8".to_string()));
    }
}
