//! The HLS packager: [`HlsPackager`] turns finished [`CmafSegment`]s into the files of a live HLS
//! stream ([`Output`]s): it names the files, keeps the fMP4 media playlist, the WebVTT captions
//! rendition and the multivariant playlist, and decides (RFC 8216 §6.2.2 grace) when a file that
//! slid out of the playlists may be deleted. It never touches bytes of media and never reads the
//! clock: wall-clock milliseconds are passed in.
//!
//! Files: without subtitles, `index.m3u8` is the fMP4 media playlist. With subtitles
//! ([`ChannelConfig::subtitles`], the default) `index.m3u8` is a multivariant playlist written
//! once, together with the first segment and after the media playlists; the fMP4 media playlist
//! is `video.m3u8` and the WebVTT one `subs.m3u8`, which lists a `subs-<msn>.vtt` for every
//! `seg-<msn>.m4s` with the same sequence number, duration and date, slides with it and is
//! deleted with it.
//!
//! Low-Latency HLS ([`ChannelConfig::part_target_ms`]): every CMAF chunk of the open segment is
//! published as a part file `part-<msn>-<i>.m4s` ([`HlsPackager::publish_parts`]) as soon as it
//! exists, and the media playlists are re-rendered with it; the segment itself follows when it
//! closes. The video playlist reports the captions rendition (`EXT-X-RENDITION-REPORT`) and the
//! other way round; captions advance per segment, in step with the video.

use crate::config::ChannelConfig;
use crate::fmp4::VIDEO_TIMESCALE;
use crate::playlist::{
    LowLatency, MediaPlaylist, MultivariantPlaylist, PlaylistEdge, PlaylistSegment,
    SubtitlesRendition,
};
use crate::segmenter::{ChunkInfo, CmafSegment};
use crate::subtitles::CueTrack;
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
    /// Write an LL-HLS part (before the playlist that lists it). It never changes afterwards.
    Part {
        /// File name, `part-<msn>-<index>.m4s`.
        name: String,
        /// The chunk's bytes (one `moof` + `mdat`).
        bytes: Vec<u8>,
        /// Media sequence number of its segment.
        msn: u64,
        /// Index of the part in its segment, from 0.
        index: u64,
        /// Media time of the part's end in ms (when a real-time client could have it).
        end_ms: u64,
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

impl Output {
    /// The name of the file this output writes or deletes.
    pub fn name(&self) -> &str {
        match self {
            Output::Init { name, .. }
            | Output::Segment { name, .. }
            | Output::Part { name, .. }
            | Output::File { name, .. }
            | Output::Playlist { name, .. }
            | Output::Delete { name } => name,
        }
    }
}

/// Subtitles state: the WebVTT media playlist (kept in lockstep with the video one) and the cues.
#[derive(Debug)]
struct Subtitles {
    playlist: MediaPlaylist,
    cues: CueTrack,
    multivariant_emitted: bool,
}

/// CMAF segments in, HLS files out. See the module docs.
#[derive(Debug)]
pub struct HlsPackager {
    cfg: ChannelConfig,
    start_unix_ms: i64,
    playlist: MediaPlaylist,
    subs: Option<Subtitles>,
    init_name: String,
    init_emitted: bool,
    playlist_emitted: bool,
    /// Bit rate of the first segment (bits/s), for the multivariant `BANDWIDTH`.
    first_segment_bps: Option<u64>,
    /// Chunks of the open segment already published as parts (LL-HLS).
    parts_published: usize,
}

impl HlsPackager {
    /// A packager for a stream whose media time 0 is at wall-clock `start_unix_ms` (ms since the
    /// Unix epoch), used for `EXT-X-PROGRAM-DATE-TIME` (a segment's date = start + its media
    /// start).
    pub fn new(cfg: &ChannelConfig, start_unix_ms: i64) -> Result<Self, MediaError> {
        cfg.validate()?;
        let mut playlist =
            MediaPlaylist::new(cfg.target_duration_s(), cfg.window, cfg.deletion_slack_ms)?;
        let mut subs_playlist = playlist.clone();
        if let Some(part_target_ms) = cfg.part_target_ms {
            let ll = LowLatency {
                part_target_ms,
                lists_parts: true,
                can_block_reload: cfg.can_block_reload,
            };
            playlist = playlist.with_low_latency(ll)?;
            subs_playlist = subs_playlist.with_low_latency(LowLatency {
                lists_parts: false,
                ..ll
            })?;
        }
        let subs = cfg.subtitles.then(|| Subtitles {
            playlist: subs_playlist,
            cues: CueTrack::new(),
            multivariant_emitted: false,
        });
        Ok(Self {
            cfg: cfg.clone(),
            start_unix_ms,
            playlist,
            subs,
            init_name: "init-0.mp4".into(),
            init_emitted: false,
            playlist_emitted: false,
            first_segment_bps: None,
            parts_published: 0,
        })
    }

    /// True if chunks are published as LL-HLS parts.
    pub fn low_latency(&self) -> bool {
        self.cfg.part_target_ms.is_some()
    }

    /// Where the video (`.0`) and captions (`.1`, if any) playlists end: what blocking playlist
    /// requests wait for.
    pub fn edges(&self) -> (PlaylistEdge, Option<PlaylistEdge>) {
        (
            self.playlist.edge(),
            self.subs.as_ref().map(|s| s.playlist.edge()),
        )
    }

    /// LL-HLS: publishes the chunks of the open segment not published yet (`bytes` and `chunks`
    /// as [`crate::segmenter::CmafSegmenter::open_chunks`] gives them; `start_ms` = the open
    /// segment's media start) as `[Init,] Part…` and lists them. Nothing when LL-HLS is off or no
    /// chunk is new. `init` as for [`HlsPackager::publish_segment`].
    pub fn publish_parts(
        &mut self,
        bytes: &[u8],
        chunks: &[ChunkInfo],
        start_ms: f64,
        init: Option<Vec<u8>>,
    ) -> Result<Vec<Output>, MediaError> {
        let mut out = Vec::new();
        if !self.low_latency() || chunks.len() <= self.parts_published {
            return Ok(out);
        }
        self.emit_init(init, &mut out)?;
        let msn = self.playlist.next_msn();
        let mut end_ms = start_ms
            + chunks[..self.parts_published]
                .iter()
                .map(|c| c.duration_ms)
                .sum::<f64>();
        for (index, c) in chunks.iter().enumerate().skip(self.parts_published) {
            if c.duration_ms <= 0.0 {
                // The audio-only chunk that closes a stream stopped right after a part: no
                // video time, so no part (a part lasts > 0); its segment still carries it.
                continue;
            }
            let Some(part) = bytes.get(c.offset..c.offset.saturating_add(c.len)) else {
                return Err(MediaError::Playlist {
                    message: format!("chunk {index} of segment {msn} lies outside its bytes"),
                });
            };
            let name = self.playlist.push_part(c.duration_ms, c.independent)?;
            end_ms += c.duration_ms;
            out.push(Output::Part {
                name,
                bytes: part.to_vec(),
                msn,
                index: index as u64,
                end_ms: end_ms.floor() as u64,
            });
        }
        self.parts_published = chunks.len();
        Ok(out)
    }

    fn emit_init(
        &mut self,
        init: Option<Vec<u8>>,
        out: &mut Vec<Output>,
    ) -> Result<(), MediaError> {
        if self.init_emitted {
            return Ok(());
        }
        let Some(bytes) = init else {
            return Err(MediaError::Playlist {
                message: "the first segment needs its init segment".into(),
            });
        };
        out.push(Output::Init {
            name: self.init_name.clone(),
            bytes,
        });
        self.init_emitted = true;
        Ok(())
    }

    /// The playlist's fixed `EXT-X-TARGETDURATION` in seconds.
    pub fn target_duration_s(&self) -> u32 {
        self.playlist.target_duration_s()
    }

    /// Media sequence number of the first segment listed.
    pub fn media_sequence(&self) -> u64 {
        self.playlist.media_sequence()
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

    /// True until the init segment has been published: the next
    /// [`HlsPackager::publish_segment`] needs it.
    pub fn needs_init(&self) -> bool {
        !self.init_emitted
    }

    /// Adds a caption cue; see [`crate::LiveChannel::add_cue`]. Ignored when subtitles are off.
    pub fn add_cue(&mut self, start_ms: u64, end_ms: u64, text: &str) {
        if let Some(subs) = &mut self.subs {
            subs.cues.add(start_ms, end_ms, text);
        }
    }

    /// Barge-in: see [`crate::LiveChannel::clear_cues_from`].
    pub fn clear_cues_from(&mut self, from_ms: u64) {
        if let Some(subs) = &mut self.subs {
            subs.cues.clear_from(from_ms);
        }
    }

    /// Media time (ms) up to which WebVTT segments are published. `None` when subtitles are off.
    pub fn cues_published_until_ms(&self) -> Option<u64> {
        self.subs.as_ref().map(|s| s.cues.published_until_ms())
    }

    /// Names and lists a finished segment: returns `[Init,] Segment[, File (WebVTT)]` and
    /// updates the playlist models without rendering them (see [`HlsPackager::playlists`]).
    /// `init` must be given while [`HlsPackager::needs_init`] is true (it is ignored after).
    pub fn publish_segment(
        &mut self,
        seg: CmafSegment,
        init: Option<Vec<u8>>,
        now_unix_ms: i64,
    ) -> Result<Vec<Output>, MediaError> {
        let mut out = Vec::new();
        self.emit_init(init, &mut out)?;
        // The chunks not yet published as parts (at least the closing one) go first.
        out.extend(self.publish_parts(
            &seg.bytes,
            &seg.chunks,
            seg.start_tick as f64 / 90.0,
            None,
        )?);
        self.parts_published = 0;
        let msn = self.playlist.next_msn();
        let name = format!("seg-{msn}.m4s");
        let start_ms = seg.start_ms();
        let duration_ms = seg.duration_ms();
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
        if self.first_segment_bps.is_none() && seg.duration_ticks > 0 {
            let bits = (seg.bytes.len() as u128).saturating_mul(8);
            let bps = bits * u128::from(VIDEO_TIMESCALE) / u128::from(seg.duration_ticks);
            self.first_segment_bps = Some(u64::try_from(bps).unwrap_or(u64::MAX));
        }
        let (start_tick, end_tick) = (seg.start_tick, seg.end_tick());
        out.push(Output::Segment {
            name,
            bytes: seg.bytes,
            info: SegmentInfo {
                msn,
                start_ms,
                duration_ms,
                frames: seg.frames,
                audio_samples: seg.audio_samples,
                chunks: seg.chunks,
            },
        });
        if let Some(subs) = &mut self.subs {
            // Same duration, date and window as the video playlist: same MSN, same sliding.
            let vtt_name = format!("subs-{msn}.vtt");
            let text = subs.cues.publish_segment(start_tick, end_tick);
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

    /// The current media playlist(s), and the multivariant playlist the first time. `codecs` is
    /// the RFC 6381 `CODECS` value for the multivariant playlist, if known.
    pub fn playlists(&mut self, codecs: Option<String>) -> Vec<Output> {
        let subs_report = self
            .subs
            .as_ref()
            .and_then(|s| s.playlist.rendition_report(SUBTITLES_PLAYLIST_NAME));
        let video_report = self.playlist.rendition_report(VIDEO_PLAYLIST_NAME);
        let mut out = vec![Output::Playlist {
            name: self.media_playlist_name().into(),
            text: self.playlist.render_with(subs_report.as_ref()),
        }];
        self.playlist_emitted = true;
        if self
            .subs
            .as_ref()
            .is_some_and(|s| s.playlist.is_empty() && !s.playlist.is_ended())
        {
            // LL-HLS parts come before the first segment: players find the media playlists
            // through the multivariant one, which (like the captions playlist, which players
            // reject while it is empty) waits for the first segment.
            return out;
        }
        let multivariant = match &self.subs {
            Some(subs) if !subs.multivariant_emitted => Some(self.multivariant(codecs)),
            _ => None,
        };
        if let Some(subs) = &mut self.subs {
            out.push(Output::Playlist {
                name: SUBTITLES_PLAYLIST_NAME.into(),
                text: subs.playlist.render_with(video_report.as_ref()),
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

    /// Ends the media playlists (`EXT-X-ENDLIST` from the next [`HlsPackager::playlists`]).
    pub fn end(&mut self) {
        self.playlist.end();
        if let Some(subs) = &mut self.subs {
            subs.playlist.end();
        }
    }

    /// The multivariant playlist: one variant plus the subtitles rendition.
    fn multivariant(&self, codecs: Option<String>) -> MultivariantPlaylist {
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
            codecs,
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

    /// Every file name this packager has created (segments, init segments, subtitle segments and
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
            let subs_written = |s: &&Subtitles| !s.playlist.is_empty() || s.playlist.is_ended();
            if let Some(subs) = self.subs.as_ref().filter(subs_written) {
                files.push(SUBTITLES_PLAYLIST_NAME.into());
                if subs.multivariant_emitted {
                    files.push(PLAYLIST_NAME.into());
                }
            }
        }
        files
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A segment of `frames` 25 fps frames starting at `start_frame`, with `len` bytes.
    fn segment(start_frame: u64, frames: u32, len: usize) -> CmafSegment {
        CmafSegment {
            start_tick: start_frame * 3600,
            duration_ticks: u64::from(frames) * 3600,
            frames,
            audio_samples: 0,
            bytes: vec![7; len],
            chunks: vec![ChunkInfo {
                offset: 0,
                len,
                duration_ms: f64::from(frames) * 40.0,
                independent: true,
            }],
        }
    }

    fn names(out: &[Output]) -> Vec<&str> {
        out.iter().map(Output::name).collect()
    }

    #[test]
    fn the_first_segment_needs_the_init_and_names_follow_the_msn() {
        let cfg = ChannelConfig::default();
        let mut hls = HlsPackager::new(&cfg, 1_767_268_800_000).unwrap();
        assert!(hls.needs_init());
        assert!(hls.publish_segment(segment(0, 45, 10), None, 0).is_err());
        let out = hls
            .publish_segment(segment(0, 45, 225_000), Some(vec![1, 2]), 0)
            .unwrap();
        assert_eq!(names(&out), ["init-0.mp4", "seg-0.m4s", "subs-0.vtt"]);
        assert!(!hls.needs_init());
        let playlists = hls.playlists(Some("avc1.42c01e,mp4a.40.2".into()));
        assert_eq!(names(&playlists), ["video.m3u8", "subs.m3u8", "index.m3u8"]);
        // 225 000 bytes in 1.8 s = 1 Mbit/s: below the configured peak of 1.33 Mbit/s.
        let Output::Playlist { text, .. } = &playlists[2] else {
            panic!("expected the multivariant playlist")
        };
        assert!(text.contains("BANDWIDTH=1330000,"), "{text}");
        let out = hls.publish_segment(segment(45, 45, 10), None, 0).unwrap();
        assert_eq!(names(&out), ["seg-1.m4s", "subs-1.vtt"]);
        let Output::Segment { info, .. } = &out[0] else {
            panic!("expected the segment first")
        };
        assert_eq!(
            (info.msn, info.start_ms, info.duration_ms),
            (1, 1800, 1800.0)
        );
        assert_eq!(names(&hls.playlists(None)), ["video.m3u8", "subs.m3u8"]);
    }
}
