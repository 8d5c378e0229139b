//! The live channel: [`LiveChannel`] is the composition of the three media stages for one HLS
//! stream: the encoder ([`FrameEncoder`]: frame + PCM in, one [`EncodedUnit`] out), the CMAF
//! segmenter ([`CmafSegmenter`]: units in, IDR-aligned segments of chunks out) and the HLS
//! packager ([`HlsPackager`]: segments in, files to write and delete out). It owns only the
//! wiring and the channel's failure state; every rule lives in one stage.
//!
//! [`LiveChannel::push_frame_with_unit`] hands each frame's encoded unit back to the caller, so
//! other outputs (a WebRTC pacer, an RTMP publisher) can use the same single encode.
//!
//! Timeline: see [`crate::encoder`]. Cutting: see [`crate::segmenter`]. Files: see [`crate::hls`].

pub use crate::config::ChannelConfig;
use crate::encoder::{EncodedUnit, FrameEncoder};
use crate::hls::HlsPackager;
pub use crate::hls::{
    Output, SegmentInfo, PLAYLIST_NAME, SUBTITLES_PLAYLIST_NAME, VIDEO_PLAYLIST_NAME,
};
pub use crate::playlist::PlaylistEdge;
pub use crate::segmenter::ChunkInfo;
use crate::segmenter::{CmafSegment, CmafSegmenter};
use crate::video::I420Frame;
use crate::MediaError;

/// What one pushed frame produced: its encoded unit (for any other output) and the HLS files to
/// write or delete, in order.
#[derive(Debug, Clone)]
pub struct PushedFrame {
    /// The frame's H.264 access unit, the AAC access units its PCM completed and the PCM.
    /// Cloning it shares the buffers.
    pub unit: EncodedUnit,
    /// What to write/delete, in order (as [`LiveChannel::push_frame`] returns it).
    pub outputs: Vec<Output>,
}

/// One live HLS channel: frames and PCM in, [`Output`]s (and [`EncodedUnit`]s) out. See the
/// module docs.
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
///             | Output::Part { name, .. }
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
    encoder: FrameEncoder,
    segmenter: CmafSegmenter,
    hls: HlsPackager,
    finished: bool,
    failed: bool,
}

impl std::fmt::Debug for LiveChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveChannel")
            .field("cfg", &self.cfg)
            .field("next_frame", &self.encoder.next_frame_index())
            .field("segmenter", &self.segmenter)
            .field("media_sequence", &self.hls.media_sequence())
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
        let encoder = FrameEncoder::new(cfg.encoder())?;
        let segmenter = CmafSegmenter::new(cfg.segmenter())?;
        let hls = HlsPackager::new(&cfg, start_unix_ms)?;
        Ok(Self {
            cfg,
            encoder,
            segmenter,
            hls,
            finished: false,
            failed: false,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ChannelConfig {
        &self.cfg
    }

    /// The encoder stage: codec parameters for other outputs ([`FrameEncoder::sps`],
    /// [`FrameEncoder::pps`], [`FrameEncoder::asc`], [`FrameEncoder::init_segment`]).
    pub fn encoder(&self) -> &FrameEncoder {
        &self.encoder
    }

    /// Index of the next frame to push.
    pub fn next_frame_index(&self) -> u64 {
        self.encoder.next_frame_index()
    }

    /// Media time of frame `n` in ms (rounded down).
    pub fn frame_time_ms(&self, n: u64) -> u64 {
        self.encoder.config().frame_time_ms(n)
    }

    /// PCM samples that go with frame `n`: `floor((n+1)*sr/fps) - floor(n*sr/fps)`.
    pub fn samples_for_frame(&self, n: u64) -> usize {
        self.encoder.config().samples_for_frame(n)
    }

    /// The playlist's fixed `EXT-X-TARGETDURATION` in seconds.
    pub fn target_duration_s(&self) -> u32 {
        self.hls.target_duration_s()
    }

    /// RFC 6381 `CODECS` value (`avc1.PPCCLL,mp4a.40.2`), known once the first frame is encoded.
    pub fn codecs(&self) -> Option<String> {
        self.encoder.codecs()
    }

    /// Name of the fMP4 media playlist: [`VIDEO_PLAYLIST_NAME`] with subtitles, else
    /// [`PLAYLIST_NAME`].
    pub fn media_playlist_name(&self) -> &'static str {
        self.hls.media_playlist_name()
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
        self.hls.add_cue(start_ms, end_ms, text);
    }

    /// Barge-in: drops the cues starting at or after `from_ms` and ends any cue spanning
    /// `from_ms` there. Published WebVTT segments keep the cues they were written with.
    pub fn clear_cues_from(&mut self, from_ms: u64) {
        self.hls.clear_cues_from(from_ms);
    }

    /// Media time (ms) up to which WebVTT segments are published: the end of the last closed
    /// segment. `None` when subtitles are off.
    pub fn cues_published_until_ms(&self) -> Option<u64> {
        self.hls.cues_published_until_ms()
    }

    /// Length of the published media in ms, rounded up: the longer of the video and the audio
    /// track of all closed segments (the audio may run up to one AAC access unit past the
    /// video). After [`LiveChannel::finish`] it is the `duration_ms` to give
    /// [`crate::offline_mp4`].
    pub fn published_duration_ms(&self) -> u64 {
        let video = self.segmenter.closed_video_ticks().div_ceil(90);
        let audio = (u128::from(self.segmenter.closed_audio_samples()) * 1000)
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
        self.push_frame_with_unit(frame, pcm, now_unix_ms)
            .map(|pushed| pushed.outputs)
    }

    /// [`LiveChannel::push_frame`] that also returns the frame's [`EncodedUnit`], for outputs
    /// other than HLS (the same single encode; cloning the unit shares its buffers).
    pub fn push_frame_with_unit(
        &mut self,
        frame: &I420Frame,
        pcm: &[i16],
        now_unix_ms: i64,
    ) -> Result<PushedFrame, MediaError> {
        self.check_usable()?;
        // Input errors leave the channel as it was.
        self.encoder.check_input(frame, pcm)?;
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
    ) -> Result<PushedFrame, MediaError> {
        if self.segmenter.next_starts_segment() {
            self.encoder.request_keyframe();
        }
        let unit = self.encoder.encode(frame, pcm)?;
        let mut outputs = Vec::new();
        for segment in self.segmenter.push(&unit)? {
            outputs.extend(self.publish(segment, now_unix_ms)?);
            outputs.extend(self.hls.playlists(self.encoder.codecs()));
        }
        if self.hls.low_latency() {
            let parts = self.publish_open_parts()?;
            if !parts.is_empty() {
                outputs.extend(parts);
                outputs.extend(self.hls.playlists(self.encoder.codecs()));
            }
        }
        outputs.extend(self.hls.poll_expired(now_unix_ms));
        Ok(PushedFrame { unit, outputs })
    }

    /// LL-HLS: the chunks of the open segment completed since the last call, as parts.
    fn publish_open_parts(&mut self) -> Result<Vec<Output>, MediaError> {
        let (Some((bytes, chunks)), Some(start_tick)) = (
            self.segmenter.open_chunks(),
            self.segmenter.open_start_tick(),
        ) else {
            return Ok(Vec::new());
        };
        let init = if self.hls.needs_init() && !chunks.is_empty() {
            Some(self.encoder.init_segment()?)
        } else {
            None
        };
        self.hls
            .publish_parts(bytes, chunks, start_tick as f64 / 90.0, init)
    }

    /// Where the video and captions playlists end (see [`HlsPackager::edges`]).
    pub fn playlist_edges(&self) -> (PlaylistEdge, Option<PlaylistEdge>) {
        self.hls.edges()
    }

    /// Hands a closed segment to the packager (with the init segment the first time).
    fn publish(
        &mut self,
        segment: CmafSegment,
        now_unix_ms: i64,
    ) -> Result<Vec<Output>, MediaError> {
        let init = if self.hls.needs_init() {
            Some(self.encoder.init_segment()?)
        } else {
            None
        };
        self.hls.publish_segment(segment, init, now_unix_ms)
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

    /// The next pushed frame is an IDR, without cutting a segment: for outputs whose receivers
    /// ask for a picture they can start from. Not throttled: every request costs an IDR.
    pub fn request_keyframe(&mut self) {
        self.encoder.request_keyframe();
    }

    /// The next pushed frame starts a new segment (IDR) even if the open one is short. If
    /// `next_segment_max_ms` is `Some`, that new segment is closed after at most that long (at
    /// least one frame). With no open segment only the cap is set.
    pub fn cut_before_next(&mut self, next_segment_max_ms: Option<u32>) {
        self.segmenter.cut_before_next(next_segment_max_ms);
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
        let tail = if self.segmenter.open_frames().is_some() {
            self.encoder.finish()?
        } else {
            Vec::new()
        };
        if let Some(segment) = self.segmenter.finish(&tail)? {
            out.extend(self.publish(segment, now_unix_ms)?);
        }
        self.hls.end();
        out.extend(self.hls.playlists(self.encoder.codecs()));
        out.extend(self.hls.poll_expired(now_unix_ms));
        Ok(out)
    }

    /// Delete outputs for files whose grace period has passed at `now_unix_ms` (segments, then
    /// init segments no longer used).
    pub fn poll_expired(&mut self, now_unix_ms: i64) -> Vec<Output> {
        self.hls.poll_expired(now_unix_ms)
    }

    /// Every file name this channel has created (segments, init segments, subtitle segments and
    /// playlists) that has not been reported in a [`Output::Delete`].
    pub fn live_files(&self) -> Vec<String> {
        self.hls.live_files()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fmp4::testutil::parse_chunks;
    use crate::fmp4::{SAMPLE_FLAGS_NON_SYNC, SAMPLE_FLAGS_SYNC, VIDEO_TRACK_ID};

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
    fn encoded_units_leave_the_channel_and_are_what_the_segments_carry() {
        let mut ch = LiveChannel::new(small(1800), START).unwrap();
        let mut units = Vec::new();
        let mut segs = Vec::new();
        for _ in 0..90 {
            let n = ch.next_frame_index();
            let pcm = vec![(n * 100) as i16; ch.samples_for_frame(n)];
            let f = frame_for(n, 64, 48);
            let pushed = ch
                .push_frame_with_unit(&f, &pcm, START + ch.frame_time_ms(n + 1) as i64)
                .unwrap();
            assert_eq!(pushed.unit.video.frame_index, n);
            assert_eq!(&pushed.unit.pcm[..], &pcm[..]);
            segs.extend(pushed.outputs.into_iter().filter_map(|o| match o {
                Output::Segment { bytes, .. } => Some(bytes),
                _ => None,
            }));
            units.push(pushed.unit);
        }
        assert_eq!(segs.len(), 2);
        // The segments' samples are the units' access units, in order, byte for byte.
        let mut video = Vec::new();
        let mut audio = Vec::new();
        for bytes in &segs {
            for c in parse_chunks(bytes) {
                let mut at = c.mdat.start;
                for t in &c.trafs {
                    for s in &t.samples {
                        let data = bytes[at..at + s.1 as usize].to_vec();
                        at += s.1 as usize;
                        if t.track_id == VIDEO_TRACK_ID {
                            video.push((data, s.2 == SAMPLE_FLAGS_SYNC));
                        } else {
                            audio.push(data);
                        }
                    }
                }
            }
        }
        let unit_video: Vec<(Vec<u8>, bool)> = units
            .iter()
            .map(|u| (u.video.data.to_vec(), u.video.idr))
            .collect();
        assert_eq!(video, unit_video);
        let unit_audio: Vec<Vec<u8>> = units
            .iter()
            .flat_map(|u| u.audio.iter().map(|a| a.data.to_vec()))
            .collect();
        assert_eq!(audio, unit_audio[..audio.len()]);
        assert!(ch.encoder().sps().is_some() && ch.encoder().asc() == [0x11, 0x88]);
    }

    #[test]
    fn a_keyframe_request_makes_an_idr_without_cutting() {
        let mut ch = LiveChannel::new(small(1800), START).unwrap();
        let mut idr = Vec::new();
        let mut frames = Vec::new();
        for i in 0..45u64 {
            if i == 20 {
                ch.request_keyframe();
            }
            let n = ch.next_frame_index();
            let pcm = vec![0i16; ch.samples_for_frame(n)];
            let pushed = ch
                .push_frame_with_unit(&frame_for(n, 64, 48), &pcm, START)
                .unwrap();
            idr.push(pushed.unit.video.idr);
            frames.extend(segments(&pushed.outputs).iter().map(|s| s.2.frames));
        }
        let idr_at: Vec<usize> = (0..45).filter(|&i| idr[i]).collect();
        assert_eq!(idr_at, [0, 20]);
        assert_eq!(frames, [45], "still one segment of 45 frames");
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
    fn ll_hls_ends_cleanly_whatever_frame_the_stream_stops_at() {
        // Stopping right after a part closes leaves only the encoder's last audio for the final
        // chunk: an audio-only chunk of no video duration, which is no part (a part lasts > 0).
        for frames in [8u64, 9, 15, 16, 45, 46] {
            let cfg = ChannelConfig {
                part_target_ms: Some(330),
                ..small(1800)
            };
            let mut ch = LiveChannel::new(cfg, START).unwrap();
            let _ = push_n(&mut ch, frames);
            let out = ch
                .finish(START + ch.frame_time_ms(frames) as i64)
                .unwrap_or_else(|e| panic!("{frames} frames: {e}"));
            let playlist = out
                .iter()
                .find_map(|o| match o {
                    Output::Playlist { text, .. } if text.contains("#EXT-X-TARGETDURATION") => {
                        Some(text)
                    }
                    _ => None,
                })
                .expect("a final media playlist");
            assert!(playlist.contains("#EXT-X-ENDLIST"), "{frames}: {playlist}");
            assert!(!playlist.contains("DURATION=0.000"), "{frames}: {playlist}");
        }
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
        let names: Vec<&str> = out.iter().map(Output::name).collect();
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
