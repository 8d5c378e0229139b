//! The CMAF segmenter: [`CmafSegmenter`] consumes [`EncodedUnit`]s and returns finished
//! [`CmafSegment`]s: the bytes of one or more CMAF chunks (`moof` + `mdat`, both tracks) and
//! where each chunk lies, so that LL-HLS parts come from them without a second pass. It knows
//! nothing about file names, playlists or the clock.
//!
//! Cutting rules:
//! - every segment starts with an IDR (the caller asks the encoder for one when
//!   [`CmafSegmenter::next_starts_segment`] says so; a unit that breaks the rule is an error);
//! - a segment is closed at the first frame boundary at or after `segment_ms`;
//! - [`CmafSegmenter::cut_before_next`] cuts early: the next unit starts a new segment, which may
//!   be capped (it is closed before it would exceed the cap, after at least one frame);
//! - with `chunk_ms`, a chunk is closed at the first frame boundary at or after `chunk_ms`, and
//!   always with its segment;
//! - a chunk carries the pending audio access units that start before its video ends (all of
//!   them at [`CmafSegmenter::finish`]); `tfdt` is continuous per track for the whole stream.

use std::collections::VecDeque;

use crate::config::validate_cutting;
use crate::encoder::{frame_tick, AudioUnit, EncodedUnit, VideoUnit};
use crate::fmp4::{self, Sample, TrackRun, AUDIO_TRACK_ID, VIDEO_TIMESCALE, VIDEO_TRACK_ID};
use crate::MediaError;

/// Settings of the segmenter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmenterConfig {
    /// Frame rate of the units (for the duration of the next frame when a segment is capped).
    pub fps: u32,
    /// Audio sample rate (the audio timescale).
    pub sample_rate: u32,
    /// Target segment length in ms: a segment is cut at the first frame boundary at or after it.
    pub segment_ms: u32,
    /// `None` = one chunk per segment; `Some(ms)` = a chunk every ~ms.
    pub chunk_ms: Option<u32>,
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

/// A finished CMAF segment.
#[derive(Debug, Clone, PartialEq)]
pub struct CmafSegment {
    /// Media time of the first video frame, 90 kHz ticks.
    pub start_tick: u64,
    /// Video duration, 90 kHz ticks.
    pub duration_ticks: u64,
    /// Video frames in the segment.
    pub frames: u32,
    /// Audio samples in the segment (access units x 1024).
    pub audio_samples: u64,
    /// The chunks' bytes, one after the other.
    pub bytes: Vec<u8>,
    /// The chunks, in order, covering the whole of `bytes`.
    pub chunks: Vec<ChunkInfo>,
}

impl CmafSegment {
    /// Media time of the first video frame in ms (rounded down).
    pub fn start_ms(&self) -> u64 {
        self.start_tick / 90
    }

    /// Video duration in ms.
    pub fn duration_ms(&self) -> f64 {
        self.duration_ticks as f64 / 90.0
    }

    /// Media time at which the segment's video ends, 90 kHz ticks.
    pub fn end_tick(&self) -> u64 {
        self.start_tick + self.duration_ticks
    }
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
    /// Current chunk: its start tick and video units.
    chunk_start_tick: u64,
    chunk_video: Vec<VideoUnit>,
}

/// Encoded units in, CMAF segments out. See the module docs.
pub struct CmafSegmenter {
    cfg: SegmenterConfig,
    /// Where the next video unit must start (90 kHz ticks).
    next_tick: u64,
    /// Index of the next audio unit expected from a pushed unit.
    next_audio: u64,
    /// Access units already placed in chunks (the next one starts at `placed_aus * 1024`).
    placed_aus: u64,
    pending_audio: VecDeque<AudioUnit>,
    open: Option<OpenSegment>,
    cut_pending: bool,
    pending_cap_ms: Option<u32>,
    next_sequence: u32,
    /// End of the closed segments: video (90 kHz ticks) and audio (samples).
    closed_ticks: u64,
    closed_audio_samples: u64,
    finished: bool,
}

impl std::fmt::Debug for CmafSegmenter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CmafSegmenter")
            .field("cfg", &self.cfg)
            .field("next_tick", &self.next_tick)
            .field("placed_aus", &self.placed_aus)
            .field("pending_audio", &self.pending_audio.len())
            .field("open_frames", &self.open_frames())
            .field("cut_pending", &self.cut_pending)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl CmafSegmenter {
    /// A segmenter for a stream that starts at media time 0 on both tracks.
    pub fn new(cfg: SegmenterConfig) -> Result<Self, MediaError> {
        if cfg.fps == 0 || cfg.sample_rate == 0 {
            return Err(MediaError::InvalidConfig {
                field: if cfg.fps == 0 { "fps" } else { "sample_rate" },
                value: "0".into(),
                reason: "must be greater than 0".into(),
            });
        }
        validate_cutting(cfg.fps, cfg.segment_ms, cfg.chunk_ms)?;
        Ok(Self {
            cfg,
            next_tick: 0,
            next_audio: 0,
            placed_aus: 0,
            pending_audio: VecDeque::new(),
            open: None,
            cut_pending: false,
            pending_cap_ms: None,
            next_sequence: 1,
            closed_ticks: 0,
            closed_audio_samples: 0,
            finished: false,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SegmenterConfig {
        &self.cfg
    }

    /// True if the next unit starts a new segment and so must be an IDR (ask the encoder for
    /// one before encoding it).
    pub fn next_starts_segment(&self) -> bool {
        self.open.is_none() || self.cut_pending
    }

    /// Frames in the open segment, if one is open.
    pub fn open_frames(&self) -> Option<u32> {
        self.open.as_ref().map(|o| o.frames)
    }

    /// The chunks of the open segment completed so far: their bytes and where each lies. For an
    /// output that publishes chunks before their segment closes (LL-HLS parts); the closed
    /// segment starts with exactly these bytes. `None` with no open segment.
    pub fn open_chunks(&self) -> Option<(&[u8], &[ChunkInfo])> {
        self.open.as_ref().map(|o| (&o.bytes[..], &o.chunks[..]))
    }

    /// Media time of the open segment's first frame, 90 kHz ticks.
    pub fn open_start_tick(&self) -> Option<u64> {
        self.open.as_ref().map(|o| o.start_tick)
    }

    /// End of the closed segments' video, 90 kHz ticks.
    pub fn closed_video_ticks(&self) -> u64 {
        self.closed_ticks
    }

    /// Audio samples in the closed segments (access units x 1024).
    pub fn closed_audio_samples(&self) -> u64 {
        self.closed_audio_samples
    }

    /// The next unit starts a new segment (an IDR) even if the open one is short. If
    /// `next_segment_max_ms` is `Some`, that new segment is closed after at most that long (at
    /// least one frame). With no open segment only the cap is set.
    pub fn cut_before_next(&mut self, next_segment_max_ms: Option<u32>) {
        if self.open.is_some() {
            self.cut_pending = true;
        }
        self.pending_cap_ms = next_segment_max_ms;
    }

    /// Adds the next unit; returns the segments it closed, in order (at most two: the one cut
    /// before it, and the one it completes). Checks that the unit continues both timelines and
    /// that a segment starts with an IDR; a rejected unit changes nothing.
    pub fn push(&mut self, unit: &EncodedUnit) -> Result<Vec<CmafSegment>, MediaError> {
        self.check_unit(unit)?;
        let n = unit.video.frame_index;
        let cut_open = self.cut_pending && self.open.is_some();
        self.next_tick = unit.video.pts + u64::from(unit.video.duration);
        self.next_audio += unit.audio.len() as u64;
        // Access units made available by this frame's PCM may still belong to the open segment.
        self.pending_audio.extend(unit.audio.iter().cloned());

        let mut out = Vec::new();
        if cut_open {
            out.extend(self.close_segment(false)?);
        }
        let open = self.open.get_or_insert_with(|| OpenSegment {
            start_tick: unit.video.pts,
            ticks: 0,
            frames: 0,
            audio_samples: 0,
            cap_ms: self.pending_cap_ms.take(),
            bytes: Vec::new(),
            chunks: Vec::new(),
            chunk_start_tick: unit.video.pts,
            chunk_video: Vec::new(),
        });
        self.cut_pending = false;
        open.chunk_video.push(unit.video.clone());
        open.ticks += u64::from(unit.video.duration);
        open.frames += 1;
        let chunk_ticks = open.start_tick + open.ticks - open.chunk_start_tick;
        let close_chunk = self
            .cfg
            .chunk_ms
            .is_some_and(|c| chunk_ticks >= u64::from(c) * 90);
        let reached_target = open.ticks >= u64::from(self.cfg.segment_ms) * 90;
        let next_duration = frame_tick(self.cfg.fps, n + 2) - frame_tick(self.cfg.fps, n + 1);
        let reached_cap = open
            .cap_ms
            .is_some_and(|cap| open.ticks + next_duration > u64::from(cap) * 90);
        if reached_target || reached_cap {
            out.extend(self.close_segment(false)?);
        } else if close_chunk {
            self.close_chunk(false)?;
        }
        Ok(out)
    }

    fn check_unit(&self, unit: &EncodedUnit) -> Result<(), MediaError> {
        if self.finished {
            return Err(MediaError::Finished { what: "segmenter" });
        }
        if unit.video.pts != self.next_tick {
            return Err(MediaError::Timeline {
                track: "video",
                expected: self.next_tick,
                got: unit.video.pts,
            });
        }
        self.check_audio(&unit.audio)?;
        if self.next_starts_segment() && !unit.video.idr {
            return Err(MediaError::VideoEncoder {
                frame_index: unit.video.frame_index,
                message: "segment would not start with an IDR".into(),
            });
        }
        Ok(())
    }

    /// Checks that `audio` continues the audio timeline.
    fn check_audio(&self, audio: &[AudioUnit]) -> Result<(), MediaError> {
        for (a, expected) in audio.iter().zip(self.next_audio..) {
            if a.index != expected || a.pts != expected * AudioUnit::DURATION as u64 {
                return Err(MediaError::Timeline {
                    track: "audio",
                    expected,
                    got: a.index,
                });
            }
        }
        Ok(())
    }

    /// Closes the open segment (if it has frames) with `tail_audio` (the encoder's last access
    /// units, [`crate::encoder::FrameEncoder::finish`]) and every pending access unit, in an
    /// audio-only chunk if needed. Audio pending with no open segment is dropped. Further pushes
    /// are an error; a second call returns nothing.
    pub fn finish(&mut self, tail_audio: &[AudioUnit]) -> Result<Option<CmafSegment>, MediaError> {
        if self.finished {
            return Ok(None);
        }
        self.check_audio(tail_audio)?;
        self.finished = true;
        let mut segment = None;
        if self.open.is_some() {
            self.pending_audio.extend(tail_audio.iter().cloned());
            segment = self.close_segment(true)?;
        }
        self.pending_audio.clear();
        Ok(segment)
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
        let mut take = 0usize;
        for au in &self.pending_audio {
            // AU start (samples) < video end (ticks), compared without rounding.
            if !all_audio
                && u128::from(au.pts) * u128::from(VIDEO_TIMESCALE) >= u128::from(end_tick) * sr
            {
                break;
            }
            take += 1;
        }
        let audio_start = self.placed_aus * AudioUnit::DURATION as u64;
        let video_samples: Vec<Sample<'_>> = open
            .chunk_video
            .iter()
            .map(|v| Sample {
                duration: v.duration,
                data: &v.data,
                sync: v.idr,
            })
            .collect();
        let audio_samples: Vec<Sample<'_>> = self
            .pending_audio
            .iter()
            .take(take)
            .map(|a| Sample {
                duration: AudioUnit::DURATION,
                data: &a.data,
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
                base_media_decode_time: audio_start,
                samples: &audio_samples,
            },
        ];
        let bytes = fmp4::chunk(self.next_sequence, &runs)?;
        self.next_sequence = self.next_sequence.wrapping_add(1).max(1);
        open.chunks.push(ChunkInfo {
            offset: open.bytes.len(),
            len: bytes.len(),
            duration_ms: (end_tick - open.chunk_start_tick) as f64 / 90.0,
            independent: open.chunk_video.first().is_some_and(|v| v.idr),
        });
        open.bytes.extend_from_slice(&bytes);
        open.audio_samples += take as u64 * AudioUnit::DURATION as u64;
        open.chunk_video.clear();
        open.chunk_start_tick = end_tick;
        self.pending_audio.drain(..take);
        self.placed_aus += take as u64;
        Ok(())
    }

    /// Closes the open chunk and segment; `None` if no segment with frames was open.
    fn close_segment(&mut self, all_audio: bool) -> Result<Option<CmafSegment>, MediaError> {
        self.close_chunk(all_audio)?;
        let Some(open) = self.open.take() else {
            return Ok(None);
        };
        if open.frames == 0 {
            return Ok(None);
        }
        self.closed_ticks = open.start_tick + open.ticks;
        self.closed_audio_samples += open.audio_samples;
        Ok(Some(CmafSegment {
            start_tick: open.start_tick,
            duration_ticks: open.ticks,
            frames: open.frames,
            audio_samples: open.audio_samples,
            bytes: open.bytes,
            chunks: open.chunks,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::fmp4::testutil::parse_chunks;
    use crate::fmp4::{SAMPLE_FLAGS_NON_SYNC, SAMPLE_FLAGS_SYNC};

    /// Feeds synthetic units with the encoder's timing: frame `n` at `floor(n * 90000 / fps)`,
    /// AAC access unit `k` out once stream sample `(k + 2) * 1024` has been pushed.
    struct Feed {
        fps: u32,
        sr: u32,
        next_frame: u64,
        next_au: u64,
        /// Frames to encode as IDR.
        idr_at: Vec<u64>,
    }

    impl Feed {
        fn new(fps: u32, sr: u32) -> Self {
            Self {
                fps,
                sr,
                next_frame: 0,
                next_au: 0,
                idr_at: vec![0],
            }
        }

        fn sample_at(&self, n: u64) -> u64 {
            n * u64::from(self.sr) / u64::from(self.fps)
        }

        /// The next unit; an IDR if asked for or listed in `idr_at`.
        fn unit(&mut self, idr: bool) -> EncodedUnit {
            let n = self.next_frame;
            self.next_frame += 1;
            let pts = frame_tick(self.fps, n);
            let pushed = self.sample_at(n + 1);
            let complete = (pushed / 1024).saturating_sub(1);
            let audio = (self.next_au..complete)
                .map(|k| AudioUnit {
                    index: k,
                    pts: k * 1024,
                    data: Bytes::from(vec![0x21, k as u8, 3]),
                })
                .collect();
            self.next_au = complete;
            EncodedUnit {
                video: VideoUnit {
                    frame_index: n,
                    pts,
                    duration: (frame_tick(self.fps, n + 1) - pts) as u32,
                    idr: idr || self.idr_at.contains(&n),
                    data: Bytes::from(vec![0, 0, 0, 2, 0x65, n as u8]),
                },
                audio,
                pcm_start: self.sample_at(n),
                pcm: Arc::from(vec![0i16; (pushed - self.sample_at(n)) as usize]),
            }
        }

        /// The encoder's flush: access units up to every pushed sample.
        fn tail(&mut self) -> Vec<AudioUnit> {
            let end = self.sample_at(self.next_frame).div_ceil(1024);
            let tail = (self.next_au..end)
                .map(|k| AudioUnit {
                    index: k,
                    pts: k * 1024,
                    data: Bytes::from(vec![0x21, k as u8]),
                })
                .collect();
            self.next_au = end;
            tail
        }
    }

    fn cfg(fps: u32, segment_ms: u32, chunk_ms: Option<u32>) -> SegmenterConfig {
        SegmenterConfig {
            fps,
            sample_rate: 48_000,
            segment_ms,
            chunk_ms,
        }
    }

    /// Pushes `count` units, each an IDR exactly when the segmenter asks for one.
    fn push_n(seg: &mut CmafSegmenter, feed: &mut Feed, count: u64) -> Vec<CmafSegment> {
        let mut out = Vec::new();
        for _ in 0..count {
            let idr = seg.next_starts_segment();
            out.extend(seg.push(&feed.unit(idr)).unwrap());
        }
        out
    }

    /// Checks that `segs` are contiguous from media time 0 with continuous `tfdt`s, that every
    /// segment starts with a sync sample, and returns (video ticks, audio access units) seen.
    fn check_timelines(segs: &[CmafSegment]) -> (u64, u64) {
        let (mut video_t, mut audio_au) = (0u64, 0u64);
        for (k, s) in segs.iter().enumerate() {
            assert_eq!(
                s.start_tick, video_t,
                "segment {k} starts where the last ended"
            );
            let mut at = 0;
            let mut frames = 0;
            let mut audio_samples = 0;
            for (i, c) in s.chunks.iter().enumerate() {
                assert_eq!(c.offset, at);
                let parsed = parse_chunks(&s.bytes[c.offset..c.offset + c.len]);
                assert_eq!(parsed.len(), 1, "each chunk is one moof+mdat");
                for t in &parsed[0].trafs {
                    if t.track_id == VIDEO_TRACK_ID {
                        assert_eq!(t.tfdt, video_t);
                        if i == 0 {
                            assert_eq!(t.samples[0].2, SAMPLE_FLAGS_SYNC, "segment {k}");
                        }
                        assert_eq!(c.independent, t.samples[0].2 == SAMPLE_FLAGS_SYNC);
                        video_t += t.samples.iter().map(|s| u64::from(s.0)).sum::<u64>();
                        frames += t.samples.len() as u32;
                    } else {
                        assert_eq!(t.tfdt, audio_au * 1024);
                        assert!(t.samples.iter().all(|s| s.0 == 1024));
                        audio_au += t.samples.len() as u64;
                        audio_samples += 1024 * t.samples.len() as u64;
                    }
                }
                at += c.len;
            }
            assert_eq!(at, s.bytes.len());
            assert_eq!(frames, s.frames);
            assert_eq!(audio_samples, s.audio_samples);
            assert_eq!(s.end_tick(), video_t);
        }
        (video_t, audio_au)
    }

    #[test]
    fn segments_are_cut_at_the_first_frame_at_or_after_the_target() {
        // 25 fps: 1.8 s = 45 frames exactly. 7 fps (1/7 s is not a whole number of ticks):
        // 1.1 s needs 8 frames (7 frames = 1 s).
        for (fps, segment_ms, frames) in [(25, 1800, 45), (7, 1100, 8), (30, 1000, 30)] {
            let mut seg = CmafSegmenter::new(cfg(fps, segment_ms, None)).unwrap();
            let mut feed = Feed::new(fps, 48_000);
            let segs = push_n(&mut seg, &mut feed, u64::from(frames) * 5 + 3);
            assert_eq!(segs.len(), 5);
            for s in &segs {
                assert_eq!(s.frames, frames, "fps {fps}");
                assert!(s.duration_ticks >= u64::from(segment_ms) * 90);
                assert_eq!(s.chunks.len(), 1);
            }
            let (video_t, _) = check_timelines(&segs);
            assert_eq!(seg.closed_video_ticks(), video_t);
            assert_eq!(seg.open_frames(), Some(3));
        }
    }

    #[test]
    fn chunk_boundaries_are_recorded_and_audio_follows_video() {
        let mut seg = CmafSegmenter::new(cfg(25, 1800, Some(500))).unwrap();
        let mut feed = Feed::new(25, 48_000);
        assert!(seg.open_chunks().is_none());
        push_n(&mut seg, &mut feed, 12);
        assert_eq!(
            seg.open_chunks().map(|(b, c)| (b.len(), c.len())),
            Some((0, 0))
        );
        push_n(&mut seg, &mut feed, 1);
        let (bytes, chunks) = seg.open_chunks().unwrap();
        assert_eq!(chunks.len(), 1, "the first part is out after 13 frames");
        let first_part = bytes.to_vec();
        let mut segs = push_n(&mut seg, &mut feed, 32);
        assert_eq!(segs.len(), 1);
        assert!(segs[0].bytes.starts_with(&first_part));
        segs.extend(push_n(&mut seg, &mut feed, 45));
        assert_eq!(segs.len(), 2);
        for s in &segs {
            let frames: Vec<f64> = s.chunks.iter().map(|c| c.duration_ms / 40.0).collect();
            assert_eq!(frames, [13.0, 13.0, 13.0, 6.0]);
            let independent: Vec<bool> = s.chunks.iter().map(|c| c.independent).collect();
            assert_eq!(independent, [true, false, false, false]);
            // Each chunk's audio starts before the chunk's video ends.
            let mut video_end = s.start_tick;
            for c in &s.chunks {
                video_end += (c.duration_ms * 90.0) as u64;
                let parsed = parse_chunks(&s.bytes[c.offset..c.offset + c.len]);
                let audio = parsed[0]
                    .trafs
                    .iter()
                    .find(|t| t.track_id != VIDEO_TRACK_ID);
                if let Some(a) = audio {
                    let last_start = a.tfdt + 1024 * (a.samples.len() as u64 - 1);
                    assert!(last_start * 90_000 < video_end * 48_000);
                }
            }
        }
        let (_, aus) = check_timelines(&segs);
        // Audio lags by at most ~2 access units plus the one still being filled.
        assert!(aus * 1024 + 3 * 1024 >= 3_600 * 48, "{aus}");
    }

    #[test]
    fn an_early_cut_closes_the_open_segment_and_caps_the_next() {
        let mut seg = CmafSegmenter::new(cfg(25, 1800, None)).unwrap();
        let mut feed = Feed::new(25, 48_000);
        assert!(push_n(&mut seg, &mut feed, 10).is_empty());
        assert!(!seg.next_starts_segment());
        seg.cut_before_next(Some(400));
        assert!(seg.next_starts_segment());
        let segs = push_n(&mut seg, &mut feed, 1);
        assert_eq!(segs.iter().map(|s| s.frames).collect::<Vec<_>>(), [10]);
        // The capped segment: 400 ms = 10 frames, including the frame just pushed.
        let capped = push_n(&mut seg, &mut feed, 9);
        assert_eq!(capped.len(), 1);
        assert_eq!((capped[0].frames, capped[0].start_ms()), (10, 400));
        let normal = push_n(&mut seg, &mut feed, 45);
        assert_eq!(normal[0].frames, 45);
        // A one-frame cap: the unit that starts the new segment closes two segments at once.
        push_n(&mut seg, &mut feed, 4);
        seg.cut_before_next(Some(40));
        let both = push_n(&mut seg, &mut feed, 1);
        assert_eq!(both.iter().map(|s| s.frames).collect::<Vec<_>>(), [4, 1]);
        // With no open segment only the cap is set.
        seg.cut_before_next(Some(100));
        let segs = push_n(&mut seg, &mut feed, 3);
        assert_eq!(segs.iter().map(|s| s.frames).collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn every_segment_boundary_is_checked_on_the_full_stream() {
        let mut seg = CmafSegmenter::new(cfg(25, 1000, Some(200))).unwrap();
        let mut feed = Feed::new(25, 48_000);
        let mut segs = Vec::new();
        for i in 0..400u64 {
            if i % 37 == 0 {
                seg.cut_before_next(Some(120));
            }
            segs.extend(push_n(&mut seg, &mut feed, 1));
        }
        assert!(seg.open_frames().is_some());
        let tail = feed.tail();
        segs.extend(seg.finish(&tail).unwrap());
        let (video_t, aus) = check_timelines(&segs);
        assert_eq!(video_t, frame_tick(25, 400));
        assert_eq!(
            aus, feed.next_au,
            "every access unit is placed exactly once"
        );
        assert_eq!(seg.closed_audio_samples(), aus * 1024);
        assert!(segs.iter().all(|s| s.duration_ticks <= 90_000 + 3_600));
    }

    #[test]
    fn an_idr_inside_a_segment_does_not_cut_it() {
        // Another output asked the encoder for a keyframe at frame 20.
        let mut seg = CmafSegmenter::new(cfg(25, 1800, Some(400))).unwrap();
        let mut feed = Feed::new(25, 48_000);
        feed.idr_at.push(20);
        let segs = push_n(&mut seg, &mut feed, 45);
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].frames, 45);
        let parsed = parse_chunks(&segs[0].bytes);
        let flags: Vec<u32> = parsed
            .iter()
            .flat_map(|c| c.trafs.iter().filter(|t| t.track_id == VIDEO_TRACK_ID))
            .flat_map(|t| t.samples.iter().map(|s| s.2))
            .collect();
        for (i, f) in flags.iter().enumerate() {
            let want = if i == 0 || i == 20 {
                SAMPLE_FLAGS_SYNC
            } else {
                SAMPLE_FLAGS_NON_SYNC
            };
            assert_eq!(*f, want, "frame {i}");
        }
    }

    #[test]
    fn bad_units_are_rejected_without_changing_anything() {
        let mut seg = CmafSegmenter::new(cfg(25, 1800, None)).unwrap();
        let mut feed = Feed::new(25, 48_000);
        // A segment must start with an IDR.
        let mut not_idr = feed.unit(false);
        not_idr.video.idr = false;
        assert!(matches!(
            seg.push(&not_idr),
            Err(MediaError::VideoEncoder { frame_index: 0, .. })
        ));
        let mut first = not_idr;
        first.video.idr = true;
        seg.push(&first).unwrap();
        // A skipped frame or a repeated one breaks the timeline.
        let skipped = {
            feed.unit(false);
            feed.unit(false)
        };
        assert!(matches!(
            seg.push(&skipped),
            Err(MediaError::Timeline {
                track: "video",
                expected: 3600,
                got: 7200
            })
        ));
        assert!(seg.push(&first).is_err());
        assert_eq!(seg.open_frames(), Some(1));
        let mut feed = Feed::new(25, 48_000);
        let mut seg = CmafSegmenter::new(cfg(25, 1800, None)).unwrap();
        push_n(&mut seg, &mut feed, 3);
        let mut unit = feed.unit(false);
        for a in &mut unit.audio {
            a.index += 1;
        }
        assert!(matches!(
            seg.push(&unit),
            Err(MediaError::Timeline { track: "audio", .. })
        ));
    }

    #[test]
    fn finish_places_the_tail_audio_and_ends() {
        // Finish right after a chunk closed: the tail audio goes into an audio-only chunk.
        let mut seg = CmafSegmenter::new(cfg(25, 1800, Some(400))).unwrap();
        let mut feed = Feed::new(25, 48_000);
        let mut segs = push_n(&mut seg, &mut feed, 10);
        assert!(segs.is_empty());
        let tail = feed.tail();
        let last = seg.finish(&tail).unwrap().unwrap();
        assert_eq!(last.frames, 10);
        let last_chunk = parse_chunks(&last.bytes[last.chunks[1].offset..]);
        assert!(last_chunk[0]
            .trafs
            .iter()
            .all(|t| t.track_id != VIDEO_TRACK_ID));
        assert_eq!(last.chunks[1].duration_ms, 0.0);
        segs.push(last);
        let (_, aus) = check_timelines(&segs);
        assert_eq!(aus, (10 * 1920u64).div_ceil(1024));
        assert!(seg.finish(&[]).unwrap().is_none());
        assert!(matches!(
            seg.push(&feed.unit(true)),
            Err(MediaError::Finished { .. })
        ));
        // Nothing open: nothing to close.
        let mut seg = CmafSegmenter::new(cfg(25, 1800, None)).unwrap();
        assert!(seg.finish(&[]).unwrap().is_none());
    }

    #[test]
    fn config_is_validated() {
        assert!(CmafSegmenter::new(cfg(25, 50, None)).is_err());
        assert!(CmafSegmenter::new(cfg(25, 1800, Some(10))).is_err());
        assert!(CmafSegmenter::new(cfg(0, 1800, None)).is_err());
    }
}
