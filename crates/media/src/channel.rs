//! The live segmenter: [`LiveChannel`] takes one video frame plus its PCM at a time, encodes them,
//! cuts IDR-aligned segments (made of one or more CMAF chunks), keeps the HLS playlist and tells
//! the caller which files to write and, after the RFC 8216 grace period, which to delete.
//!
//! Timeline: video frame `n` starts at `floor(n * 90000 / fps)` (90 kHz ticks); audio is one
//! continuous AAC track whose access unit `k` starts at sample `k * 1024`. Both start at media
//! time 0 and `tfdt` stays continuous per track for the whole channel.
//!
//! Files: without subtitles, `index.m3u8` is the fMP4 media playlist. With subtitles
//! ([`ChannelConfig::subtitles`], the default) `index.m3u8` is a multivariant playlist written
//! once, together with the first segment and after the media playlists; the fMP4 media playlist
//! is `video.m3u8` and the WebVTT one `subs.m3u8`, which lists a `subs-<msn>.vtt` for every
//! `seg-<msn>.m4s` with the same sequence number, duration and date, slides with it and is
//! deleted with it.

use std::collections::VecDeque;

use crate::audio::{AacEncoder, AAC_SAMPLE_RATES, SAMPLES_PER_AU};
use crate::fmp4::{self, Sample, TrackRun, AUDIO_TRACK_ID, VIDEO_TIMESCALE, VIDEO_TRACK_ID};
use crate::playlist::{MediaPlaylist, MultivariantPlaylist, PlaylistSegment, SubtitlesRendition};
use crate::subtitles::CueTrack;
use crate::video::{self, H264Encoder, I420Frame};
use crate::MediaError;

/// Name of the playlist players open: the fMP4 media playlist, or with subtitles the
/// multivariant playlist.
pub const PLAYLIST_NAME: &str = "index.m3u8";
/// Name of the fMP4 media playlist when subtitles are on.
pub const VIDEO_PLAYLIST_NAME: &str = "video.m3u8";
/// Name of the WebVTT subtitles media playlist.
pub const SUBTITLES_PLAYLIST_NAME: &str = "subs.m3u8";
/// `GROUP-ID` of the subtitles rendition.
const SUBTITLES_GROUP: &str = "subs";
/// `NAME` of the subtitles rendition.
const SUBTITLES_TRACK_NAME: &str = "Captions";

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
    /// Publish captions ([`LiveChannel::add_cue`]) as a WebVTT subtitles rendition behind a
    /// multivariant `index.m3u8` (see the module docs). When false the output is a single media
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
            window: 8,
            video_bitrate_kbps: 1000,
            audio_bitrate_kbps: 64,
            deletion_slack_ms: 2000,
            subtitles: true,
            subtitles_language: "en".into(),
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
    /// Write a file that is neither an init nor a media segment: a WebVTT subtitle segment
    /// (`subs-<msn>.vtt`, UTF-8), before the playlist that lists it. It never changes afterwards.
    File {
        /// File name, e.g. `subs-12.vtt`.
        name: String,
        /// File contents.
        bytes: Vec<u8>,
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

/// Subtitles state: the WebVTT media playlist (kept in lockstep with the video one) and the cues.
#[derive(Debug)]
struct Subtitles {
    playlist: MediaPlaylist,
    cues: CueTrack,
    multivariant_emitted: bool,
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
///             Output::Init { name, .. }
///             | Output::Segment { name, .. }
///             | Output::File { name, .. }
///             | Output::Playlist { name, .. } => written.push(name),
///             Output::Delete { .. } => {}
///         }
///     }
/// }
/// // 45 frames = 1.8 s; the multivariant index.m3u8 comes after the media playlists.
/// assert_eq!(
///     written,
///     ["init-0.mp4", "seg-0.m4s", "subs-0.vtt", "video.m3u8", "subs.m3u8", "index.m3u8"]
/// );
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
    /// Bit rate of the first segment (bits/s), for the multivariant `BANDWIDTH`.
    first_segment_bps: Option<u64>,
    /// End of the published video (90 kHz ticks) and audio (samples).
    published_ticks: u64,
    published_audio_samples: u64,
    subs: Option<Subtitles>,
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
        let subs = if cfg.subtitles {
            Some(Subtitles {
                playlist: playlist.clone(),
                cues: CueTrack::new(),
                multivariant_emitted: false,
            })
        } else {
            None
        };
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
            first_segment_bps: None,
            published_ticks: 0,
            published_audio_samples: 0,
            subs,
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

    /// Name of the fMP4 media playlist: [`VIDEO_PLAYLIST_NAME`] with subtitles, else
    /// [`PLAYLIST_NAME`].
    pub fn media_playlist_name(&self) -> &'static str {
        if self.subs.is_some() {
            VIDEO_PLAYLIST_NAME
        } else {
            PLAYLIST_NAME
        }
    }

    /// Adds a caption cue shown from `start_ms` to `end_ms` (media times, the timeline of
    /// [`LiveChannel::frame_time_ms`]). Cues may be added in any order, before or while their
    /// time is produced; each goes into the WebVTT segment of every video segment it overlaps,
    /// written when that segment closes. A segment already published cannot change: a cue that
    /// ends within published time (see [`LiveChannel::cues_published_until_ms`]) is ignored,
    /// and one that starts there but ends later only appears in later segments (with its real,
    /// unclipped times). Also ignored: `end_ms <= start_ms`, blank text, and any cue when
    /// subtitles are off. Text is plain (escaped when written); blank lines are dropped.
    pub fn add_cue(&mut self, start_ms: u64, end_ms: u64, text: &str) {
        if let Some(subs) = &mut self.subs {
            subs.cues.add(start_ms, end_ms, text);
        }
    }

    /// Barge-in: drops the cues starting at or after `from_ms` and ends any cue spanning
    /// `from_ms` there. Published WebVTT segments keep the cues they were written with.
    pub fn clear_cues_from(&mut self, from_ms: u64) {
        if let Some(subs) = &mut self.subs {
            subs.cues.clear_from(from_ms);
        }
    }

    /// Media time (ms) up to which WebVTT segments are published: the end of the last closed
    /// segment. `None` when subtitles are off.
    pub fn cues_published_until_ms(&self) -> Option<u64> {
        self.subs.as_ref().map(|s| s.cues.published_until_ms())
    }

    /// Length of the published media in ms, rounded up: the longer of the video and the audio
    /// track of all closed segments (the audio may run up to one AAC access unit past the
    /// video). After [`LiveChannel::finish`] it is the `duration_ms` to give
    /// [`crate::offline_mp4`].
    pub fn published_duration_ms(&self) -> u64 {
        let video = self.published_ticks.div_ceil(90);
        let audio = (u128::from(self.published_audio_samples) * 1000)
            .div_ceil(u128::from(self.cfg.sample_rate));
        video.max(u64::try_from(audio).unwrap_or(u64::MAX))
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
            out.extend(self.close_segment_files(now_unix_ms, true)?);
        }
        self.pending_audio.clear();
        self.playlist.end();
        if let Some(subs) = &mut self.subs {
            subs.playlist.end();
        }
        out.extend(self.playlist_outputs());
        out.extend(self.poll_expired(now_unix_ms));
        Ok(out)
    }

    /// Delete outputs for files whose grace period has passed at `now_unix_ms` (segments, then
    /// init segments no longer used).
    pub fn poll_expired(&mut self, now_unix_ms: i64) -> Vec<Output> {
        let mut names = self.playlist.poll_expired(now_unix_ms);
        if let Some(subs) = &mut self.subs {
            names.extend(subs.playlist.poll_expired(now_unix_ms));
        }
        names
            .into_iter()
            .map(|name| Output::Delete { name })
            .collect()
    }

    /// Every file name this channel has created (segments, init segments, subtitle segments and
    /// playlists) that has not been reported in a [`Output::Delete`].
    pub fn live_files(&self) -> Vec<String> {
        // The init segment is emitted together with the first segment that uses it, so the
        // playlist's bookkeeping covers it.
        let mut files = self.playlist.live_files();
        if let Some(subs) = &self.subs {
            files.extend(subs.playlist.live_files());
        }
        if self.playlist_emitted {
            files.push(self.media_playlist_name().into());
            if let Some(subs) = &self.subs {
                files.push(SUBTITLES_PLAYLIST_NAME.into());
                if subs.multivariant_emitted {
                    files.push(PLAYLIST_NAME.into());
                }
            }
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

    /// Closes the open segment: returns [Init,] Segment, [File (WebVTT),] then the playlists.
    fn close_segment(
        &mut self,
        now_unix_ms: i64,
        all_audio: bool,
    ) -> Result<Vec<Output>, MediaError> {
        let mut out = self.close_segment_files(now_unix_ms, all_audio)?;
        if !out.is_empty() {
            out.extend(self.playlist_outputs());
        }
        Ok(out)
    }

    /// The current media playlist(s), and the multivariant playlist the first time.
    fn playlist_outputs(&mut self) -> Vec<Output> {
        let mut out = vec![Output::Playlist {
            name: self.media_playlist_name().into(),
            text: self.playlist.render(),
        }];
        self.playlist_emitted = true;
        let multivariant = match &self.subs {
            Some(subs) if !subs.multivariant_emitted => Some(self.multivariant()),
            _ => None,
        };
        if let Some(subs) = &mut self.subs {
            out.push(Output::Playlist {
                name: SUBTITLES_PLAYLIST_NAME.into(),
                text: subs.playlist.render(),
            });
            if let Some(m) = multivariant {
                out.push(Output::Playlist {
                    name: PLAYLIST_NAME.into(),
                    text: m.render(),
                });
                subs.multivariant_emitted = true;
            }
        }
        out
    }

    /// The multivariant playlist: one variant plus the subtitles rendition.
    fn multivariant(&self) -> MultivariantPlaylist {
        let configured = u64::from(self.cfg.video_bitrate_kbps)
            .saturating_add(u64::from(self.cfg.audio_bitrate_kbps))
            .saturating_mul(1000);
        // ~5 % fMP4 overhead on average; the peak allows for rate-control overshoot.
        let average = configured.saturating_add(configured / 20);
        let bandwidth = self
            .first_segment_bps
            .unwrap_or(0)
            .max(configured.saturating_add(configured / 4));
        MultivariantPlaylist {
            bandwidth,
            average_bandwidth: Some(average),
            codecs: self.codecs(),
            width: self.cfg.width,
            height: self.cfg.height,
            frame_rate: f64::from(self.cfg.fps),
            uri: VIDEO_PLAYLIST_NAME.into(),
            subtitles: Some(SubtitlesRendition {
                group_id: SUBTITLES_GROUP.into(),
                name: SUBTITLES_TRACK_NAME.into(),
                language: self.cfg.subtitles_language.clone(),
                uri: SUBTITLES_PLAYLIST_NAME.into(),
            }),
        }
    }

    /// Closes the open segment: returns [Init,] Segment[, File (WebVTT)]; updates the playlist
    /// models without rendering them.
    fn close_segment_files(
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
        self.published_ticks = open.start_tick + open.ticks;
        self.published_audio_samples += open.audio_samples;
        if self.first_segment_bps.is_none() && open.ticks > 0 {
            let bits = (open.bytes.len() as u128).saturating_mul(8);
            let bps = bits * u128::from(VIDEO_TIMESCALE) / u128::from(open.ticks);
            self.first_segment_bps = Some(u64::try_from(bps).unwrap_or(u64::MAX));
        }
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
        if let Some(subs) = &mut self.subs {
            // Same duration, date and window as the video playlist: same MSN, same sliding.
            let vtt_name = format!("subs-{msn}.vtt");
            let text = subs
                .cues
                .publish_segment(open.start_tick, open.start_tick + open.ticks);
            subs.playlist.push_segment(
                PlaylistSegment {
                    uri: vtt_name.clone(),
                    duration_ms,
                    program_date_time_ms: Some(pdt),
                    map_uri: String::new(),
                    discontinuity: false,
                },
                now_unix_ms,
            )?;
            out.push(Output::File {
                name: vtt_name,
                bytes: text.into_bytes(),
            });
        }
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

    /// A small channel with today's single-playlist layout (subtitles off): the tests that use
    /// it as-is check that this layout did not change.
    fn small(segment_ms: u32) -> ChannelConfig {
        ChannelConfig {
            width: 64,
            height: 48,
            segment_ms,
            video_bitrate_kbps: 200,
            deletion_slack_ms: 0,
            subtitles: false,
            ..ChannelConfig::default()
        }
    }

    /// Like [`small`] with the subtitles rendition on.
    fn small_subs(segment_ms: u32) -> ChannelConfig {
        ChannelConfig {
            subtitles: true,
            ..small(segment_ms)
        }
    }

    /// (name, text) of the playlists among `out`, in order.
    fn playlists(out: &[Output]) -> Vec<(&str, &str)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Playlist { name, text } => Some((name.as_str(), text.as_str())),
                _ => None,
            })
            .collect()
    }

    /// (name, text) of the WebVTT files among `out`.
    fn vtt_files(out: &[Output]) -> Vec<(String, String)> {
        out.iter()
            .filter_map(|o| match o {
                Output::File { name, bytes } => {
                    Some((name.clone(), String::from_utf8(bytes.clone()).unwrap()))
                }
                _ => None,
            })
            .collect()
    }

    /// The media playlist lines that describe segments (everything but the URIs, which differ
    /// between the two playlists, and EXT-X-MAP, which only the video one has).
    fn timing_lines(text: &str) -> Vec<&str> {
        text.lines()
            .filter(|l| l.starts_with('#') && !l.starts_with("#EXT-X-MAP"))
            .collect()
    }

    /// Segment URIs of a media playlist with their extension stripped to the MSN.
    fn listed_msns(text: &str, prefix: &str, ext: &str) -> Vec<u64> {
        text.lines()
            .filter_map(|l| l.strip_prefix(prefix)?.strip_suffix(ext)?.parse().ok())
            .collect()
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
        // 4 s of video; 188 AUs = 192512 samples = 4010.67 ms of audio.
        assert_eq!(ch.published_duration_ms(), 4011);
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

    #[test]
    fn subtitles_layout_and_write_order() {
        let mut ch = LiveChannel::new(small_subs(1800), START).unwrap();
        assert_eq!(ch.media_playlist_name(), "video.m3u8");
        ch.add_cue(100, 900, "Hi <there> & welcome");
        let out = push_n(&mut ch, 45);
        let names: Vec<&str> = out
            .iter()
            .map(|o| match o {
                Output::Init { name, .. }
                | Output::Segment { name, .. }
                | Output::File { name, .. }
                | Output::Playlist { name, .. }
                | Output::Delete { name } => name.as_str(),
            })
            .collect();
        assert_eq!(
            names,
            [
                "init-0.mp4",
                "seg-0.m4s",
                "subs-0.vtt",
                "video.m3u8",
                "subs.m3u8",
                "index.m3u8"
            ]
        );
        let pl = playlists(&out);
        let codecs = ch.codecs().unwrap();
        assert_eq!(
            pl[2].1,
            format!(
                "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n\
                 #EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"Captions\",LANGUAGE=\"en\",\
                 DEFAULT=YES,AUTOSELECT=YES,FORCED=NO,URI=\"subs.m3u8\"\n\
                 #EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH=277200,CODECS=\"{codecs}\",\
                 RESOLUTION=64x48,FRAME-RATE=25.000,SUBTITLES=\"subs\"\nvideo.m3u8\n",
                pl[2]
                    .1
                    .split("BANDWIDTH=")
                    .nth(1)
                    .and_then(|r| r.split(',').next())
                    .unwrap()
            )
        );
        // The video playlist is exactly what index.m3u8 was without subtitles.
        assert!(pl[0].1.contains("#EXT-X-MAP:URI=\"init-0.mp4\"\n"));
        assert!(pl[0].1.ends_with("#EXTINF:1.800,\nseg-0.m4s\n"));
        assert_eq!(
            pl[1].1,
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n\
             #EXT-X-DISCONTINUITY-SEQUENCE:0\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-PROGRAM-DATE-TIME:2026-01-01T12:00:00.000Z\n#EXTINF:1.800,\nsubs-0.vtt\n"
        );
        assert_eq!(
            vtt_files(&out),
            [(
                "subs-0.vtt".to_string(),
                "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n\n\
                 00:00:00.100 --> 00:00:00.900\nHi &lt;there&gt; &amp; welcome\n\n"
                    .to_string()
            )]
        );
        // Later segments: no init, no multivariant.
        let out = push_n(&mut ch, 45);
        let pl = playlists(&out);
        assert_eq!(
            pl.iter().map(|p| p.0).collect::<Vec<_>>(),
            ["video.m3u8", "subs.m3u8"]
        );
        let mut files = ch.live_files();
        files.sort();
        assert_eq!(
            files,
            [
                "index.m3u8",
                "init-0.mp4",
                "seg-0.m4s",
                "seg-1.m4s",
                "subs-0.vtt",
                "subs-1.vtt",
                "subs.m3u8",
                "video.m3u8"
            ]
        );
        // Finish ends both media playlists; the multivariant playlist never changes.
        let out = ch.finish(START + 4000).unwrap();
        let pl = playlists(&out);
        assert_eq!(
            pl.iter().map(|p| p.0).collect::<Vec<_>>(),
            ["video.m3u8", "subs.m3u8"]
        );
        assert!(pl.iter().all(|p| p.1.ends_with("#EXT-X-ENDLIST\n")));
    }

    #[test]
    fn subtitle_playlist_moves_in_lockstep_with_video() {
        // 200 ms segments (TD 1 s), window 3, cut early now and then.
        let cfg = ChannelConfig {
            window: 3,
            ..small_subs(200)
        };
        let mut ch = LiveChannel::new(cfg, START).unwrap();
        let (mut video, mut subs) = (String::new(), String::new());
        let mut deleted_seg = Vec::new();
        let mut deleted_vtt = Vec::new();
        let mut max_live = 0;
        for i in 0..800u64 {
            if i % 37 == 0 {
                ch.cut_before_next(Some(120));
            }
            let out = push_n(&mut ch, 1);
            let segs = segments(&out);
            let vtts = vtt_files(&out);
            assert_eq!(segs.len(), vtts.len());
            for ((_, _, info), (name, _)) in segs.iter().zip(&vtts) {
                assert_eq!(*name, format!("subs-{}.vtt", info.msn));
            }
            for (name, text) in playlists(&out) {
                match name {
                    "video.m3u8" => video = text.to_owned(),
                    "subs.m3u8" => subs = text.to_owned(),
                    other => assert_eq!(other, "index.m3u8"),
                }
            }
            let mut seg_del = Vec::new();
            let mut vtt_del = Vec::new();
            for o in &out {
                if let Output::Delete { name } = o {
                    if let Some(n) = name.strip_prefix("seg-") {
                        seg_del.push(n.trim_end_matches(".m4s").to_owned());
                    } else if let Some(n) = name.strip_prefix("subs-") {
                        vtt_del.push(n.trim_end_matches(".vtt").to_owned());
                    } else {
                        panic!("unexpected delete of {name}");
                    }
                }
            }
            assert_eq!(seg_del, vtt_del, "deleted together");
            deleted_seg.extend(seg_del);
            deleted_vtt.extend(vtt_del);
            if !video.is_empty() {
                assert_eq!(timing_lines(&video), timing_lines(&subs));
                assert_eq!(
                    listed_msns(&video, "seg-", ".m4s"),
                    listed_msns(&subs, "subs-", ".vtt")
                );
                assert!(!subs.contains("EXT-X-MAP"));
            }
            let live = ch.live_files();
            let count = |ext: &str| live.iter().filter(|f| f.ends_with(ext)).count();
            assert_eq!(count(".m4s"), count(".vtt"), "same number of files alive");
            max_live = max_live.max(live.len());
        }
        let msns = listed_msns(&video, "seg-", ".m4s");
        assert!(
            deleted_seg.len() > 100,
            "{} deleted, listed {msns:?}",
            deleted_seg.len()
        );
        assert!(subs.contains("#EXT-X-MEDIA-SEQUENCE:") && !subs.contains("SEQUENCE:0\n#EXT-X-D"));
        // 3 playlists + init + 2 x (listed + in grace); early cuts make some segments short.
        assert!(max_live <= 4 + 2 * (20 + 20), "{max_live}");
        let out = ch.finish(START + 40_000).unwrap();
        let pl = playlists(&out);
        assert!(pl.iter().all(|p| p.1.ends_with("#EXT-X-ENDLIST\n")));
        assert_eq!(timing_lines(pl[0].1), timing_lines(pl[1].1));
    }

    #[test]
    fn cues_land_in_every_overlapping_vtt_segment() {
        let mut ch = LiveChannel::new(small_subs(1800), START).unwrap();
        ch.add_cue(1500, 2100, "spans the first cut");
        ch.add_cue(3000, 5000, "cut short by barge-in");
        ch.add_cue(4000, 4500, "never said");
        let mut out = push_n(&mut ch, 45);
        assert_eq!(ch.cues_published_until_ms(), Some(1800));
        // Too late for segment 0: ignored; partly late: kept for segment 1.
        ch.add_cue(200, 1700, "too late");
        ch.add_cue(1700, 1900, "partly late");
        ch.clear_cues_from(3500);
        ch.add_cue(3600, 3700, "after barge-in");
        out.extend(push_n(&mut ch, 90));
        let vtts = vtt_files(&out);
        assert_eq!(vtts.len(), 3);
        let head = "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n\n";
        assert_eq!(
            vtts[0].1,
            format!("{head}00:00:01.500 --> 00:00:02.100\nspans the first cut\n\n")
        );
        assert_eq!(
            vtts[1].1,
            format!(
                "{head}00:00:01.500 --> 00:00:02.100\nspans the first cut\n\n\
                 00:00:01.700 --> 00:00:01.900\npartly late\n\n\
                 00:00:03.000 --> 00:00:03.500\ncut short by barge-in\n\n"
            )
        );
        assert_eq!(
            vtts[2].1,
            format!("{head}00:00:03.600 --> 00:00:03.700\nafter barge-in\n\n")
        );
        assert_eq!(ch.cues_published_until_ms(), Some(5400));
    }

    #[test]
    fn subtitles_off_ignores_cues() {
        let mut ch = LiveChannel::new(small(1800), START).unwrap();
        ch.add_cue(0, 1000, "ignored");
        ch.clear_cues_from(0);
        assert_eq!(ch.cues_published_until_ms(), None);
        let out = push_n(&mut ch, 45);
        assert!(vtt_files(&out).is_empty());
        assert_eq!(
            playlists(&out).iter().map(|p| p.0).collect::<Vec<_>>(),
            ["index.m3u8"]
        );
    }

    #[test]
    fn finish_without_frames_writes_all_three_playlists() {
        let mut ch = LiveChannel::new(small_subs(1800), START).unwrap();
        let out = ch.finish(START).unwrap();
        let pl = playlists(&out);
        assert_eq!(
            pl.iter().map(|p| p.0).collect::<Vec<_>>(),
            ["video.m3u8", "subs.m3u8", "index.m3u8"]
        );
        assert!(pl[0].1.ends_with("#EXT-X-ENDLIST\n"));
        assert!(pl[1].1.ends_with("#EXT-X-ENDLIST\n"));
        assert!(
            !pl[2].1.contains("CODECS"),
            "unknown before the first frame"
        );
        assert!(pl[2].1.contains("SUBTITLES=\"subs\"\nvideo.m3u8\n"));
    }

    #[test]
    fn subtitles_language_is_validated() {
        for bad in ["", "en\"", "-en", "e n", "en\n"] {
            let cfg = ChannelConfig {
                subtitles_language: bad.into(),
                ..small_subs(1800)
            };
            assert!(
                matches!(
                    LiveChannel::new(cfg, 0),
                    Err(MediaError::InvalidConfig {
                        field: "subtitles_language",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
        let cfg = ChannelConfig {
            subtitles_language: "pt-BR".into(),
            ..small_subs(1800)
        };
        assert!(LiveChannel::new(cfg, 0).is_ok());
    }
}
