//! The HLS live media playlist model: a plain struct that knows the listed segments, renders the
//! playlist text (RFC 8216, version 7, fMP4), slides the window, and decides when removed
//! segments and unused init sections may be deleted (RFC 8216 §6.2.2 grace). It knows nothing
//! about fMP4 bytes and never reads the clock: wall-clock milliseconds are passed in.
//!
//! Low-Latency HLS (RFC 8216bis, [`LowLatency`]): the playlist also lists the parts
//! (`part-<msn>-<i>.m4s`) of its last [`PART_SEGMENTS`] segments and of the open one, with
//! `EXT-X-SERVER-CONTROL`, `EXT-X-PART-INF`, an `EXT-X-PRELOAD-HINT` for the next part and an
//! optional `EXT-X-RENDITION-REPORT`; media sequence numbers then start at 1 (hls.js 1.7 turns
//! blocking reload off while the last MSN is 0). Part files are deleted with their segment.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;

use crate::MediaError;

/// A segment to append to the playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct PlaylistSegment {
    /// Segment URI as written in the playlist (e.g. `seg-12.m4s`).
    pub uri: String,
    /// Media duration in milliseconds (the `EXTINF`).
    pub duration_ms: f64,
    /// Wall-clock time of the segment's first sample, Unix milliseconds
    /// (`EXT-X-PROGRAM-DATE-TIME`), if known.
    pub program_date_time_ms: Option<i64>,
    /// URI of the init section (`EXT-X-MAP`) this segment needs; empty for segments without
    /// one (WebVTT subtitle segments): no `EXT-X-MAP` is written and nothing is tracked for it.
    pub map_uri: String,
    /// True if an `EXT-X-DISCONTINUITY` precedes this segment. A new `map_uri` needs one.
    pub discontinuity: bool,
}

/// Complete segments (besides the open one) whose parts are listed: parts more than about three
/// target durations from the end must go (RFC 8216bis §6.2.2); two ~2 s segments stay well
/// inside that and cover any `PART-HOLD-BACK` we advertise.
pub const PART_SEGMENTS: usize = 2;

/// Low-Latency HLS settings of a [`MediaPlaylist`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LowLatency {
    /// `PART-TARGET` in ms: every part lasts at most this long.
    pub part_target_ms: u32,
    /// True if this playlist lists parts (the WebVTT rendition has none but still carries the
    /// same `EXT-X-SERVER-CONTROL` and `EXT-X-PART-INF`, RFC 8216bis §6.2.4).
    pub lists_parts: bool,
    /// Advertise `CAN-BLOCK-RELOAD=YES`: only when the server really holds `_HLS_msn` requests.
    pub can_block_reload: bool,
}

impl LowLatency {
    /// `PART-HOLD-BACK` in ms: 3 x `PART-TARGET` (RFC 8216bis SHOULD, Apple MUST).
    pub fn part_hold_back_ms(&self) -> u32 {
        self.part_target_ms.saturating_mul(3)
    }
}

/// One LL-HLS part of a segment.
#[derive(Debug, Clone, PartialEq)]
pub struct PlaylistPart {
    /// URI, `part-<msn>-<index>.m4s`.
    pub uri: String,
    /// Duration in ms.
    pub duration_ms: f64,
    /// True if the part starts with an IDR (`INDEPENDENT=YES`).
    pub independent: bool,
}

/// The state of another rendition, for `EXT-X-RENDITION-REPORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenditionReport {
    /// URI of the other media playlist, relative to this one.
    pub uri: String,
    /// Its last media sequence number.
    pub last_msn: u64,
    /// Its last part index, if it lists parts.
    pub last_part: Option<u64>,
}

/// Where the newest media of a playlist ends: the last complete segment and the parts of the
/// open one. What a blocking request (`_HLS_msn`, `_HLS_part`) waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlaylistEdge {
    /// MSN of the last complete segment (`None`: none yet).
    pub last_msn: Option<u64>,
    /// MSN of the segment whose parts are being published (the next complete one).
    pub open_msn: u64,
    /// Parts of the open segment published so far.
    pub open_parts: u64,
    /// True once the playlist has `EXT-X-ENDLIST`.
    pub ended: bool,
}

#[derive(Debug, Clone)]
struct Listed {
    msn: u64,
    seg: PlaylistSegment,
    parts: Vec<PlaylistPart>,
    /// Duration of the longest playlist version that listed this segment.
    longest_playlist_ms: f64,
}

#[derive(Debug, Clone)]
struct Removed {
    uri: String,
    map_uri: String,
    delete_at_ms: i64,
}

/// A sliding-window live media playlist with deletion bookkeeping.
#[derive(Debug, Clone)]
pub struct MediaPlaylist {
    target_duration_s: u32,
    window: usize,
    deletion_slack_ms: u32,
    segments: VecDeque<Listed>,
    next_msn: u64,
    discontinuity_sequence: u64,
    removed: Vec<Removed>,
    /// Init URI -> number of listed or not-yet-deleted segments that use it.
    map_refs: BTreeMap<String, usize>,
    ended: bool,
    ll: Option<LowLatency>,
    /// Parts of the open segment (MSN `next_msn`), LL-HLS only.
    open_parts: Vec<PlaylistPart>,
}

impl MediaPlaylist {
    /// A new empty playlist. `target_duration_s` is fixed for its lifetime (every segment's
    /// rounded duration must fit in it); `window` is the number of segments to keep listed
    /// (more are kept while the playlist would otherwise be shorter than 3 x target duration);
    /// `deletion_slack_ms` is added to the RFC 8216 grace before a removed file may be deleted.
    pub fn new(
        target_duration_s: u32,
        window: usize,
        deletion_slack_ms: u32,
    ) -> Result<Self, MediaError> {
        if target_duration_s == 0 {
            return Err(MediaError::InvalidConfig {
                field: "target_duration_s",
                value: "0".into(),
                reason: "must be at least 1 second".into(),
            });
        }
        if window == 0 {
            return Err(MediaError::InvalidConfig {
                field: "window",
                value: "0".into(),
                reason: "the playlist window must hold at least one segment".into(),
            });
        }
        Ok(Self {
            target_duration_s,
            window,
            deletion_slack_ms,
            segments: VecDeque::new(),
            next_msn: 0,
            discontinuity_sequence: 0,
            removed: Vec::new(),
            map_refs: BTreeMap::new(),
            ended: false,
            ll: None,
            open_parts: Vec::new(),
        })
    }

    /// Turns Low-Latency HLS on (before any segment is pushed): parts, server control, preload
    /// hints; media sequence numbers start at 1.
    pub fn with_low_latency(mut self, ll: LowLatency) -> Result<Self, MediaError> {
        let frame_floor = 10;
        if ll.part_target_ms < frame_floor
            || ll.part_target_ms > self.target_duration_s.saturating_mul(1000)
        {
            return Err(MediaError::InvalidConfig {
                field: "part_target_ms",
                value: ll.part_target_ms.to_string(),
                reason: "must be between 10 ms and the target duration".into(),
            });
        }
        if self.next_msn == 0 && self.segments.is_empty() {
            self.next_msn = 1;
        }
        self.ll = Some(ll);
        Ok(self)
    }

    /// The Low-Latency settings, if on.
    pub fn low_latency(&self) -> Option<LowLatency> {
        self.ll
    }

    /// Appends a part of the open segment (MSN [`MediaPlaylist::next_msn`]) and returns its URI.
    /// Its segment's [`MediaPlaylist::push_segment`] then takes over the parts pushed so far.
    pub fn push_part(&mut self, duration_ms: f64, independent: bool) -> Result<String, MediaError> {
        let Some(ll) = self.ll.filter(|ll| ll.lists_parts) else {
            return Err(MediaError::Playlist {
                message: "parts need a low-latency playlist".into(),
            });
        };
        if self.ended {
            return Err(MediaError::Finished { what: "playlist" });
        }
        if !(duration_ms.is_finite() && duration_ms > 0.0)
            || duration_ms > f64::from(ll.part_target_ms) + 0.5
        {
            return Err(MediaError::Playlist {
                message: format!(
                    "part {} of segment {} lasts {duration_ms} ms (PART-TARGET {} ms)",
                    self.open_parts.len(),
                    self.next_msn,
                    ll.part_target_ms
                ),
            });
        }
        let uri = part_uri(self.next_msn, self.open_parts.len() as u64);
        self.open_parts.push(PlaylistPart {
            uri: uri.clone(),
            duration_ms,
            independent,
        });
        Ok(uri)
    }

    /// Where the newest media ends (see [`PlaylistEdge`]).
    pub fn edge(&self) -> PlaylistEdge {
        PlaylistEdge {
            last_msn: self.segments.back().map(|l| l.msn),
            open_msn: self.next_msn,
            open_parts: self.open_parts.len() as u64,
            ended: self.ended,
        }
    }

    /// The state of this playlist for another rendition's `EXT-X-RENDITION-REPORT`: the last
    /// complete segment, or the last part of the open one when parts are listed (`None` before
    /// anything is published).
    pub fn rendition_report(&self, uri: &str) -> Option<RenditionReport> {
        let lists_parts = self.ll.is_some_and(|ll| ll.lists_parts);
        if lists_parts && !self.open_parts.is_empty() {
            return Some(RenditionReport {
                uri: uri.into(),
                last_msn: self.next_msn,
                last_part: Some(self.open_parts.len() as u64 - 1),
            });
        }
        let last = self.segments.back()?;
        Some(RenditionReport {
            uri: uri.into(),
            last_msn: last.msn,
            last_part: lists_parts.then(|| (last.parts.len() as u64).saturating_sub(1)),
        })
    }

    /// Appends a segment at wall-clock `now_unix_ms`, slides the window, and returns the segment's
    /// media sequence number.
    pub fn push_segment(
        &mut self,
        seg: PlaylistSegment,
        now_unix_ms: i64,
    ) -> Result<u64, MediaError> {
        if self.ended {
            return Err(MediaError::Finished { what: "playlist" });
        }
        if !(seg.duration_ms.is_finite() && seg.duration_ms > 0.0) {
            return Err(MediaError::Playlist {
                message: format!("segment {} has duration {} ms", seg.uri, seg.duration_ms),
            });
        }
        let rounded = (seg.duration_ms / 1000.0).round();
        if rounded > f64::from(self.target_duration_s) {
            return Err(MediaError::Playlist {
                message: format!(
                    "segment {} lasts {:.3} s, longer than the target duration {} s",
                    seg.uri,
                    seg.duration_ms / 1000.0,
                    self.target_duration_s
                ),
            });
        }
        if let Some(last) = self.segments.back() {
            if last.seg.map_uri != seg.map_uri && !seg.discontinuity {
                return Err(MediaError::Playlist {
                    message: format!(
                        "segment {} changes the init section to {} without a discontinuity",
                        seg.uri, seg.map_uri
                    ),
                });
            }
        }
        let msn = self.next_msn;
        self.next_msn += 1;
        if !seg.map_uri.is_empty() {
            *self.map_refs.entry(seg.map_uri.clone()).or_insert(0) += 1;
        }
        let parts = std::mem::take(&mut self.open_parts);
        self.segments.push_back(Listed {
            msn,
            seg,
            parts,
            longest_playlist_ms: 0.0,
        });
        self.slide(now_unix_ms);
        let total = self.duration_ms();
        for l in &mut self.segments {
            l.longest_playlist_ms = l.longest_playlist_ms.max(total);
        }
        Ok(msn)
    }

    fn slide(&mut self, now_unix_ms: i64) {
        let floor_ms = 3.0 * f64::from(self.target_duration_s) * 1000.0;
        while self.segments.len() > self.window {
            let Some(front) = self.segments.front() else {
                break;
            };
            if self.duration_ms() - front.seg.duration_ms < floor_ms {
                break;
            }
            let Some(gone) = self.segments.pop_front() else {
                break;
            };
            // A discontinuity tag leaving the playlist bumps the sequence so the remaining
            // segments keep their discontinuity sequence numbers.
            if gone.seg.discontinuity {
                self.discontinuity_sequence += 1;
            }
            let grace = gone.seg.duration_ms + gone.longest_playlist_ms;
            let delete_at_ms = now_unix_ms
                .saturating_add(grace.ceil() as i64)
                .saturating_add(i64::from(self.deletion_slack_ms));
            // Part files go with their segment, under the same grace.
            for part in gone.parts {
                self.removed.push(Removed {
                    uri: part.uri,
                    map_uri: String::new(),
                    delete_at_ms,
                });
            }
            self.removed.push(Removed {
                uri: gone.seg.uri,
                map_uri: gone.seg.map_uri,
                delete_at_ms,
            });
        }
    }

    /// Marks the presentation as ended: the playlist gets `EXT-X-ENDLIST` and accepts no more
    /// segments. Listed segments stay listed (and are never reported as expired).
    pub fn end(&mut self) {
        self.ended = true;
    }

    /// True once [`MediaPlaylist::end`] was called.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Files (segments, then init sections no longer used by any listed or undeleted segment)
    /// whose grace period has passed at `now_unix_ms`. Each name is reported once.
    pub fn poll_expired(&mut self, now_unix_ms: i64) -> Vec<String> {
        let mut out = Vec::new();
        let mut freed_maps = Vec::new();
        let map_refs = &mut self.map_refs;
        self.removed.retain(|r| {
            if r.delete_at_ms > now_unix_ms {
                return true;
            }
            out.push(r.uri.clone());
            if let Some(n) = map_refs.get_mut(&r.map_uri) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    freed_maps.push(r.map_uri.clone());
                }
            }
            false
        });
        for m in freed_maps {
            self.map_refs.remove(&m);
            out.push(m);
        }
        out
    }

    /// Every segment and init file that is listed or removed but not yet reported by
    /// [`MediaPlaylist::poll_expired`].
    pub fn live_files(&self) -> Vec<String> {
        let mut files: Vec<String> = self.map_refs.keys().cloned().collect();
        files.extend(self.removed.iter().map(|r| r.uri.clone()));
        for l in &self.segments {
            files.extend(l.parts.iter().map(|p| p.uri.clone()));
            files.push(l.seg.uri.clone());
        }
        files.extend(self.open_parts.iter().map(|p| p.uri.clone()));
        files
    }

    /// Media sequence number of the first listed segment (the next one if none is listed).
    pub fn media_sequence(&self) -> u64 {
        self.segments.front().map_or(self.next_msn, |l| l.msn)
    }

    /// Media sequence number the next pushed segment will get.
    pub fn next_msn(&self) -> u64 {
        self.next_msn
    }

    /// Current `EXT-X-DISCONTINUITY-SEQUENCE`.
    pub fn discontinuity_sequence(&self) -> u64 {
        self.discontinuity_sequence
    }

    /// Number of listed segments.
    pub fn len(&self) -> usize {
        self.segments.len()
    }

    /// True if no segment is listed.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// Sum of the listed segments' durations in milliseconds.
    pub fn duration_ms(&self) -> f64 {
        self.segments.iter().map(|l| l.seg.duration_ms).sum()
    }

    /// The fixed `EXT-X-TARGETDURATION` in seconds.
    pub fn target_duration_s(&self) -> u32 {
        self.target_duration_s
    }

    /// Renders the playlist text.
    pub fn render(&self) -> String {
        self.render_with(None)
    }

    /// Renders the playlist text with an `EXT-X-RENDITION-REPORT` (LL-HLS only). The version
    /// stays 7: nothing here needs more (`EXT-X-SKIP`, the first tag that does, is not used).
    pub fn render_with(&self, report: Option<&RenditionReport>) -> String {
        let mut s = String::with_capacity(512 + self.segments.len() * 300);
        s.push_str("#EXTM3U\n#EXT-X-VERSION:7\n");
        let _ = writeln!(s, "#EXT-X-TARGETDURATION:{}", self.target_duration_s);
        if let Some(ll) = self.ll {
            s.push_str("#EXT-X-SERVER-CONTROL:");
            if ll.can_block_reload {
                s.push_str("CAN-BLOCK-RELOAD=YES,");
            }
            let _ = writeln!(
                s,
                "PART-HOLD-BACK={:.3},HOLD-BACK={:.3}",
                f64::from(ll.part_hold_back_ms()) / 1000.0,
                3.0 * f64::from(self.target_duration_s)
            );
            // Also in a rendition without parts (the captions): it carries the same
            // PART-HOLD-BACK, and a player (hls.js) takes a playlist without PART-TARGET for one
            // whose every reload is late by its whole age.
            let _ = writeln!(
                s,
                "#EXT-X-PART-INF:PART-TARGET={:.3}",
                f64::from(ll.part_target_ms) / 1000.0
            );
        }
        let _ = writeln!(s, "#EXT-X-MEDIA-SEQUENCE:{}", self.media_sequence());
        let _ = writeln!(
            s,
            "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
            self.discontinuity_sequence
        );
        s.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        let mut current_map: Option<&str> = None;
        for (i, l) in self.segments.iter().enumerate() {
            if l.seg.discontinuity {
                s.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if !l.seg.map_uri.is_empty() && current_map != Some(l.seg.map_uri.as_str()) {
                let _ = writeln!(s, "#EXT-X-MAP:URI=\"{}\"", l.seg.map_uri);
                current_map = Some(&l.seg.map_uri);
            }
            if let Some(pdt) = l.seg.program_date_time_ms {
                let _ = writeln!(
                    s,
                    "#EXT-X-PROGRAM-DATE-TIME:{}",
                    format_program_date_time(pdt)
                );
            }
            if self.segments.len() - i <= PART_SEGMENTS {
                render_parts(&mut s, &l.parts);
            }
            let _ = writeln!(s, "#EXTINF:{:.3},", l.seg.duration_ms / 1000.0);
            s.push_str(&l.seg.uri);
            s.push('\n');
        }
        render_parts(&mut s, &self.open_parts);
        if self.ended {
            s.push_str("#EXT-X-ENDLIST\n");
        } else if self.ll.is_some_and(|ll| ll.lists_parts) {
            let next = part_uri(self.next_msn, self.open_parts.len() as u64);
            let _ = writeln!(s, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{next}\"");
        }
        if let (Some(_), Some(r)) = (self.ll, report) {
            let _ = write!(
                s,
                "#EXT-X-RENDITION-REPORT:URI=\"{}\",LAST-MSN={}",
                quoted(&r.uri),
                r.last_msn
            );
            if let Some(p) = r.last_part {
                let _ = write!(s, ",LAST-PART={p}");
            }
            s.push('\n');
        }
        s
    }
}

/// A subtitles rendition (`EXT-X-MEDIA:TYPE=SUBTITLES`) of a [`MultivariantPlaylist`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubtitlesRendition {
    /// `GROUP-ID`, referenced by the variant's `SUBTITLES` attribute.
    pub group_id: String,
    /// `NAME`, shown in players' track menus.
    pub name: String,
    /// `LANGUAGE` (an RFC 5646 tag such as `en`).
    pub language: String,
    /// URI of the WebVTT media playlist.
    pub uri: String,
}

/// A multivariant playlist with a single variant stream and optional subtitles rendition. It is
/// written once and never changes, so players can poll it like a static file.
#[derive(Debug, Clone, PartialEq)]
pub struct MultivariantPlaylist {
    /// `BANDWIDTH`: peak segment bit rate, bits per second.
    pub bandwidth: u64,
    /// `AVERAGE-BANDWIDTH`, bits per second, if known.
    pub average_bandwidth: Option<u64>,
    /// `CODECS` (RFC 6381), if known.
    pub codecs: Option<String>,
    /// `RESOLUTION` width.
    pub width: u32,
    /// `RESOLUTION` height.
    pub height: u32,
    /// `FRAME-RATE`.
    pub frame_rate: f64,
    /// URI of the variant's media playlist.
    pub uri: String,
    /// The subtitles rendition, if any.
    pub subtitles: Option<SubtitlesRendition>,
}

impl MultivariantPlaylist {
    /// Renders the playlist text. Quoted attribute values lose any `"`, CR or LF (they cannot be
    /// represented in an HLS quoted string).
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(512);
        s.push_str("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
        if let Some(sub) = &self.subtitles {
            let _ = writeln!(
                s,
                "#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"{}\",NAME=\"{}\",LANGUAGE=\"{}\",\
                 DEFAULT=YES,AUTOSELECT=YES,FORCED=NO,URI=\"{}\"",
                quoted(&sub.group_id),
                quoted(&sub.name),
                quoted(&sub.language),
                quoted(&sub.uri)
            );
        }
        let _ = write!(s, "#EXT-X-STREAM-INF:BANDWIDTH={}", self.bandwidth);
        if let Some(avg) = self.average_bandwidth {
            let _ = write!(s, ",AVERAGE-BANDWIDTH={avg}");
        }
        if let Some(codecs) = &self.codecs {
            let _ = write!(s, ",CODECS=\"{}\"", quoted(codecs));
        }
        let _ = write!(
            s,
            ",RESOLUTION={}x{},FRAME-RATE={:.3}",
            self.width, self.height, self.frame_rate
        );
        if let Some(sub) = &self.subtitles {
            let _ = write!(s, ",SUBTITLES=\"{}\"", quoted(&sub.group_id));
        }
        s.push('\n');
        s.push_str(&quoted(&self.uri));
        s.push('\n');
        s
    }
}

/// The URI of part `index` of segment `msn`.
pub fn part_uri(msn: u64, index: u64) -> String {
    format!("part-{msn}-{index}.m4s")
}

fn render_parts(s: &mut String, parts: &[PlaylistPart]) {
    for p in parts {
        let _ = write!(
            s,
            "#EXT-X-PART:DURATION={:.3},URI=\"{}\"",
            p.duration_ms / 1000.0,
            p.uri
        );
        if p.independent {
            s.push_str(",INDEPENDENT=YES");
        }
        s.push('\n');
    }
}

fn quoted(v: &str) -> String {
    v.chars()
        .filter(|c| !matches!(c, '"' | '\r' | '\n'))
        .collect()
}

/// Formats Unix milliseconds as an ISO 8601 UTC date-time with milliseconds, e.g.
/// `2026-01-01T12:00:00.000Z` (proleptic Gregorian calendar).
pub fn format_program_date_time(unix_ms: i64) -> String {
    let days = unix_ms.div_euclid(86_400_000);
    let ms_of_day = unix_ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let hour = ms_of_day / 3_600_000;
    let minute = ms_of_day / 60_000 % 60;
    let second = ms_of_day / 1000 % 60;
    let milli = ms_of_day % 1000;
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z")
}

/// Converts days since 1970-01-01 to (year, month, day), counting in 400-year eras of 146097
/// days that start on March 1st so the leap day falls at the end of each era-year.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of (March-based) year [0, 365]
    let mp = (5 * doy + 2) / 153; // month index from March [0, 11]
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(n: u64, dur_ms: f64, map: &str, disc: bool) -> PlaylistSegment {
        PlaylistSegment {
            uri: format!("seg-{n}.m4s"),
            duration_ms: dur_ms,
            program_date_time_ms: Some(1_767_268_800_000 + n as i64 * 2000),
            map_uri: map.into(),
            discontinuity: disc,
        }
    }

    fn lines(p: &MediaPlaylist) -> Vec<String> {
        p.render().lines().map(str::to_owned).collect()
    }

    #[test]
    fn pdt_format_known_dates() {
        assert_eq!(format_program_date_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_program_date_time(1_767_268_800_000),
            "2026-01-01T12:00:00.000Z"
        );
        assert_eq!(
            format_program_date_time(1_767_268_804_500),
            "2026-01-01T12:00:04.500Z"
        );
        // Leap day and end of a leap year.
        assert_eq!(
            format_program_date_time(951_782_400_000 + 86_399_999),
            "2000-02-29T23:59:59.999Z"
        );
        assert_eq!(
            format_program_date_time(1_735_603_200_123),
            "2024-12-31T00:00:00.123Z"
        );
        assert_eq!(format_program_date_time(-1), "1969-12-31T23:59:59.999Z");
        // Every day boundary of 1999..2101 agrees with a naive day counter.
        let mut days = 10_592i64; // 1999-01-01
        for year in 1999..2101i64 {
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
            let lens = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            for (m, len) in lens.iter().enumerate() {
                for d in 1..=*len {
                    assert_eq!(civil_from_days(days), (year, m as u32 + 1, d as u32));
                    days += 1;
                }
            }
        }
    }

    #[test]
    fn header_and_segment_lines() {
        let mut p = MediaPlaylist::new(2, 8, 0).unwrap();
        p.push_segment(seg(0, 1800.0, "init-0.mp4", false), 0)
            .unwrap();
        p.push_segment(seg(1, 1760.0, "init-0.mp4", false), 0)
            .unwrap();
        assert_eq!(
            p.render(),
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n\
             #EXT-X-DISCONTINUITY-SEQUENCE:0\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MAP:URI=\"init-0.mp4\"\n\
             #EXT-X-PROGRAM-DATE-TIME:2026-01-01T12:00:00.000Z\n#EXTINF:1.800,\nseg-0.m4s\n\
             #EXT-X-PROGRAM-DATE-TIME:2026-01-01T12:00:02.000Z\n#EXTINF:1.760,\nseg-1.m4s\n"
        );
        assert!(!p.render().contains("PLAYLIST-TYPE"));
        p.end();
        assert!(p.render().ends_with("seg-1.m4s\n#EXT-X-ENDLIST\n"));
        assert!(p
            .push_segment(seg(2, 1000.0, "init-0.mp4", false), 0)
            .is_err());
    }

    #[test]
    fn window_slides_and_media_sequence_counts_removed() {
        let mut p = MediaPlaylist::new(2, 4, 0).unwrap();
        for n in 0..10 {
            let msn = p
                .push_segment(seg(n, 2000.0, "init-0.mp4", false), 0)
                .unwrap();
            assert_eq!(msn, n);
        }
        assert_eq!(p.len(), 4);
        assert_eq!(p.media_sequence(), 6);
        let l = lines(&p);
        assert!(l.contains(&"#EXT-X-MEDIA-SEQUENCE:6".to_string()));
        let uris: Vec<&String> = l.iter().filter(|s| s.ends_with(".m4s")).collect();
        assert_eq!(uris, ["seg-6.m4s", "seg-7.m4s", "seg-8.m4s", "seg-9.m4s"]);
        // The MAP is re-emitted above the first remaining segment.
        assert_eq!(l[6], "#EXT-X-MAP:URI=\"init-0.mp4\"");
        assert_eq!(l.iter().filter(|s| s.starts_with("#EXT-X-MAP")).count(), 1);
    }

    #[test]
    fn three_target_durations_floor() {
        // Window of 2 but 1 s segments with TD 2: must keep at least 6 s listed.
        let mut p = MediaPlaylist::new(2, 2, 0).unwrap();
        for n in 0..20 {
            p.push_segment(seg(n, 1000.0, "i.mp4", false), 0).unwrap();
            assert!(p.len() <= 7);
            if n >= 6 {
                assert!(p.duration_ms() >= 6000.0, "after {n}: {}", p.duration_ms());
                assert!(p.duration_ms() - 1000.0 < 6000.0, "no more than needed");
            }
        }
        assert_eq!(p.len(), 6);
    }

    #[test]
    fn discontinuity_sequence_and_map_as_discontinuities_slide_out() {
        // The example of PROTOCOLS.md 4.4.
        let mut p = MediaPlaylist::new(2, 4, 0).unwrap();
        p.push_segment(seg(0, 2000.0, "init-3.mp4", true), 0)
            .unwrap();
        p.push_segment(seg(1, 2000.0, "init-3.mp4", false), 0)
            .unwrap();
        p.push_segment(seg(2, 1960.0, "init-4.mp4", true), 0)
            .unwrap();
        p.push_segment(seg(3, 2000.0, "init-4.mp4", false), 0)
            .unwrap();
        assert_eq!(p.discontinuity_sequence(), 0);
        let l = lines(&p);
        assert_eq!(l.iter().filter(|s| *s == "#EXT-X-DISCONTINUITY").count(), 2);
        // DISCONTINUITY, MAP, PDT, EXTINF order for the segment after the break.
        let i = l.iter().position(|s| s == "seg-2.m4s").unwrap();
        assert_eq!(l[i - 4], "#EXT-X-DISCONTINUITY");
        assert_eq!(l[i - 3], "#EXT-X-MAP:URI=\"init-4.mp4\"");
        assert!(l[i - 2].starts_with("#EXT-X-PROGRAM-DATE-TIME:"));
        assert_eq!(l[i - 1], "#EXTINF:1.960,");

        p.push_segment(seg(4, 2000.0, "init-4.mp4", false), 0)
            .unwrap();
        // seg-0 (with a discontinuity) slid out.
        assert_eq!(p.discontinuity_sequence(), 1);
        p.push_segment(seg(5, 2000.0, "init-4.mp4", false), 0)
            .unwrap();
        assert_eq!(p.discontinuity_sequence(), 1, "seg-1 had no discontinuity");
        p.push_segment(seg(6, 2000.0, "init-4.mp4", false), 0)
            .unwrap();
        assert_eq!(p.discontinuity_sequence(), 2);
        let l = lines(&p);
        assert!(l.contains(&"#EXT-X-DISCONTINUITY-SEQUENCE:2".to_string()));
        assert!(l.contains(&"#EXT-X-MEDIA-SEQUENCE:3".to_string()));
        assert!(!l.contains(&"#EXT-X-DISCONTINUITY".to_string()));
        assert_eq!(l[6], "#EXT-X-MAP:URI=\"init-4.mp4\"");
        assert!(!p.render().contains("init-3.mp4"));
    }

    #[test]
    fn new_map_requires_discontinuity() {
        let mut p = MediaPlaylist::new(2, 4, 0).unwrap();
        p.push_segment(seg(0, 2000.0, "a.mp4", false), 0).unwrap();
        assert!(p.push_segment(seg(1, 2000.0, "b.mp4", false), 0).is_err());
        assert!(p.push_segment(seg(1, 2499.0, "a.mp4", false), 0).is_ok());
        assert!(
            p.push_segment(seg(2, 2600.0, "a.mp4", false), 0).is_err(),
            "rounds to 3 > TD"
        );
    }

    #[test]
    fn deletion_grace_timing() {
        // TD 2, window 3, 2 s segments, slack 500 ms. Longest playlist holding a segment: 6 s.
        let mut p = MediaPlaylist::new(2, 3, 500).unwrap();
        let mut now = 0i64;
        for n in 0..3 {
            p.push_segment(seg(n, 2000.0, "init-0.mp4", false), now)
                .unwrap();
            now += 2000;
        }
        assert!(p.poll_expired(i64::MAX).is_empty(), "nothing removed yet");
        // seg-0 is removed at t = 6000: deletable from 6000 + 2000 + 6000 + 500 = 14500.
        p.push_segment(seg(3, 2000.0, "init-0.mp4", false), 6000)
            .unwrap();
        assert_eq!(p.live_files().len(), 5, "init + seg-0..3");
        assert!(p.poll_expired(14_499).is_empty());
        assert_eq!(p.poll_expired(14_500), ["seg-0.m4s"]);
        assert!(p.poll_expired(20_000).is_empty(), "reported once");
        assert!(!p.live_files().contains(&"seg-0.m4s".to_string()));
        assert!(p.live_files().contains(&"init-0.mp4".to_string()));
    }

    #[test]
    fn init_deleted_only_when_unused() {
        let mut p = MediaPlaylist::new(2, 2, 0).unwrap();
        p.push_segment(seg(0, 2000.0, "init-0.mp4", false), 0)
            .unwrap();
        p.push_segment(seg(1, 2000.0, "init-0.mp4", false), 0)
            .unwrap();
        p.push_segment(seg(2, 2000.0, "init-0.mp4", false), 0)
            .unwrap();
        p.push_segment(seg(3, 2000.0, "init-1.mp4", true), 0)
            .unwrap();
        p.push_segment(seg(4, 2000.0, "init-1.mp4", false), 0)
            .unwrap();
        p.push_segment(seg(5, 2000.0, "init-1.mp4", false), 0)
            .unwrap();
        // seg-0..2 removed; init-0 still used by nobody listed, but seg-1/2 not yet deleted.
        let first = p.poll_expired(10_000);
        assert!(first.contains(&"seg-0.m4s".to_string()));
        assert!(first.contains(&"seg-1.m4s".to_string()));
        assert!(first.contains(&"seg-2.m4s".to_string()));
        assert_eq!(
            first.last().unwrap(),
            "init-0.mp4",
            "init goes after its segments"
        );
        assert!(!p.live_files().contains(&"init-0.mp4".to_string()));
        assert!(p.live_files().contains(&"init-1.mp4".to_string()));
    }

    #[test]
    fn init_kept_while_a_removed_segment_still_waits() {
        let mut p = MediaPlaylist::new(2, 1, 0).unwrap();
        p.push_segment(seg(0, 2000.0, "a.mp4", false), 0).unwrap();
        p.push_segment(seg(1, 2000.0, "a.mp4", false), 0).unwrap();
        p.push_segment(seg(2, 2000.0, "a.mp4", false), 0).unwrap();
        p.push_segment(seg(3, 2000.0, "b.mp4", true), 1000).unwrap(); // seg-0 removed at 1000
        p.push_segment(seg(4, 2000.0, "b.mp4", false), 50_000)
            .unwrap(); // seg-1 at 50000
        p.push_segment(seg(5, 2000.0, "b.mp4", false), 50_000)
            .unwrap(); // seg-2 at 50000
        assert_eq!(p.poll_expired(10_000), ["seg-0.m4s"]);
        assert!(p.live_files().contains(&"a.mp4".to_string()));
        let later = p.poll_expired(100_000);
        assert_eq!(later, ["seg-1.m4s", "seg-2.m4s", "a.mp4"]);
    }

    #[test]
    fn live_files_stay_bounded_for_hours() {
        // 10 hours of 1.8 s segments, polled like the server would, with time passed in.
        let mut p = MediaPlaylist::new(2, 8, 2000).unwrap();
        let mut now = 1_767_268_800_000i64;
        let mut deleted = 0usize;
        let mut max_live = 0usize;
        let n_segments = 10 * 3600 * 10 / 18;
        for n in 0..n_segments {
            let init = format!("init-{}.mp4", n / 5000); // an init change every 2.5 h
            let disc = n > 0 && n % 5000 == 0;
            p.push_segment(seg(n as u64, 1800.0, &init, disc), now)
                .unwrap();
            now += 1800;
            deleted += p.poll_expired(now).len();
            max_live = max_live.max(p.live_files().len());
        }
        // Window 8 (14.4 s) + grace (1.8 + 14.4 + 2 s ~ 11 segments) + init(s).
        assert!(max_live <= 8 + 12 + 2, "live files grew to {max_live}");
        assert!(deleted >= n_segments - 8 - 12, "only {deleted} deleted");
        assert_eq!(p.discontinuity_sequence(), (n_segments as u64 - 8) / 5000);
    }

    #[test]
    fn segments_without_map_render_no_map_and_track_no_init() {
        let mut p = MediaPlaylist::new(1, 1, 0).unwrap();
        for n in 0..6 {
            let mut sg = seg(n, 1000.0, "", false);
            sg.uri = format!("subs-{n}.vtt");
            p.push_segment(sg, 0).unwrap();
        }
        let text = p.render();
        assert!(!text.contains("EXT-X-MAP"), "{text}");
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:3\n"), "{text}");
        assert!(p.live_files().iter().all(|f| f.ends_with(".vtt")));
        assert_eq!(
            p.poll_expired(i64::MAX),
            ["subs-0.vtt", "subs-1.vtt", "subs-2.vtt"],
            "no init file to delete"
        );
    }

    fn ll(can_block_reload: bool) -> LowLatency {
        LowLatency {
            part_target_ms: 330,
            lists_parts: true,
            can_block_reload,
        }
    }

    #[test]
    fn low_latency_lists_parts_hint_and_report() {
        let mut p = MediaPlaylist::new(2, 8, 0)
            .unwrap()
            .with_low_latency(ll(true))
            .unwrap();
        assert_eq!(p.next_msn(), 1, "MSNs start at 1");
        assert_eq!(p.push_part(320.0, true).unwrap(), "part-1-0.m4s");
        assert!(
            p.push_part(331.0, false).is_err(),
            "longer than PART-TARGET"
        );
        assert_eq!(
            p.edge(),
            PlaylistEdge {
                last_msn: None,
                open_msn: 1,
                open_parts: 1,
                ended: false
            }
        );
        let report = RenditionReport {
            uri: "subs.m3u8".into(),
            last_msn: 0,
            last_part: None,
        };
        assert_eq!(
            p.render_with(Some(&report)),
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n\
             #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.990,HOLD-BACK=6.000\n\
             #EXT-X-PART-INF:PART-TARGET=0.330\n#EXT-X-MEDIA-SEQUENCE:1\n\
             #EXT-X-DISCONTINUITY-SEQUENCE:0\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-PART:DURATION=0.320,URI=\"part-1-0.m4s\",INDEPENDENT=YES\n\
             #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-1-1.m4s\"\n\
             #EXT-X-RENDITION-REPORT:URI=\"subs.m3u8\",LAST-MSN=0\n"
        );
        // Segments 1..=5 with 5 + 1 parts each, then 2 parts of segment 6.
        for n in 1..=5u64 {
            let parts = if n == 1 { 5 } else { 6 };
            for i in 0..parts {
                p.push_part(if i == 5 { 200.0 } else { 320.0 }, i == 0)
                    .unwrap();
            }
            p.push_segment(seg(n, 1800.0, "init-0.mp4", false), 0)
                .unwrap();
        }
        p.push_part(320.0, true).unwrap();
        p.push_part(320.0, false).unwrap();
        let l = lines(&p);
        let listed: Vec<&str> = l
            .iter()
            .filter_map(|s| s.strip_prefix("#EXT-X-PART:DURATION="))
            .collect();
        // Parts of the last two segments (4, 5) and the open one (6) only.
        assert_eq!(listed.len(), 6 + 6 + 2, "{l:?}");
        assert!(listed[0].starts_with("0.320,URI=\"part-4-0.m4s\",INDEPENDENT=YES"));
        assert_eq!(listed[5], "0.200,URI=\"part-4-5.m4s\"");
        assert_eq!(
            l.iter().filter(|s| s.contains("INDEPENDENT=YES")).count(),
            3,
            "exactly the parts that start a segment"
        );
        // Parts sit between the segment's date and its EXTINF.
        let i = l.iter().position(|s| s == "seg-5.m4s").unwrap();
        assert_eq!(l[i - 1], "#EXTINF:1.800,");
        assert_eq!(l[i - 2], "#EXT-X-PART:DURATION=0.200,URI=\"part-5-5.m4s\"");
        assert!(l[i - 8].starts_with("#EXT-X-PROGRAM-DATE-TIME:"));
        assert_eq!(
            l.last().unwrap(),
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-6-2.m4s\""
        );
        assert_eq!(
            p.rendition_report("video.m3u8"),
            Some(RenditionReport {
                uri: "video.m3u8".into(),
                last_msn: 6,
                last_part: Some(1)
            })
        );
        p.end();
        assert!(!p.render().contains("PRELOAD-HINT"), "never with ENDLIST");
    }

    #[test]
    fn a_rendition_without_parts_carries_the_same_server_control() {
        let mut p = MediaPlaylist::new(2, 8, 0)
            .unwrap()
            .with_low_latency(LowLatency {
                lists_parts: false,
                ..ll(true)
            })
            .unwrap();
        assert!(p.push_part(320.0, true).is_err(), "no parts here");
        p.push_segment(seg(1, 1800.0, "", false), 0).unwrap();
        let report = RenditionReport {
            uri: "video.m3u8".into(),
            last_msn: 2,
            last_part: Some(1),
        };
        let text = p.render_with(Some(&report));
        assert!(
            text.contains(
                "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.990,HOLD-BACK=6.000\n\
                 #EXT-X-PART-INF:PART-TARGET=0.330\n"
            ),
            "{text}"
        );
        assert!(!text.contains("#EXT-X-PART:"), "{text}");
        assert!(!text.contains("PRELOAD-HINT"), "{text}");
        assert!(text.ends_with(
            "seg-1.m4s\n#EXT-X-RENDITION-REPORT:URI=\"video.m3u8\",LAST-MSN=2,LAST-PART=1\n"
        ));
        assert_eq!(
            p.rendition_report("subs.m3u8"),
            Some(RenditionReport {
                uri: "subs.m3u8".into(),
                last_msn: 1,
                last_part: None
            })
        );
    }

    #[test]
    fn part_files_are_deleted_with_their_segment() {
        let mut p = MediaPlaylist::new(2, 3, 0)
            .unwrap()
            .with_low_latency(ll(false))
            .unwrap();
        assert!(!p.render().contains("CAN-BLOCK-RELOAD"));
        for n in 1..=4u64 {
            p.push_part(320.0, true).unwrap();
            p.push_part(320.0, false).unwrap();
            p.push_segment(seg(n, 2000.0, "init-0.mp4", false), 1000)
                .unwrap();
        }
        assert!(p.live_files().contains(&"part-1-1.m4s".to_string()));
        // Segment 1 slid out at 1000: deletable after 2 + 6 s of grace.
        assert!(p.poll_expired(8999).is_empty());
        assert_eq!(
            p.poll_expired(9000),
            ["part-1-0.m4s", "part-1-1.m4s", "seg-1.m4s"]
        );
        assert!(!p.live_files().iter().any(|f| f.starts_with("part-1-")));
    }

    #[test]
    fn parts_need_a_low_latency_playlist() {
        let mut p = MediaPlaylist::new(2, 3, 0).unwrap();
        assert!(p.push_part(320.0, true).is_err());
        assert_eq!(p.next_msn(), 0, "plain playlists keep starting at 0");
    }

    #[test]
    fn multivariant_with_subtitles() {
        let m = MultivariantPlaylist {
            bandwidth: 1_330_000,
            average_bandwidth: Some(1_117_200),
            codecs: Some("avc1.42C01E,mp4a.40.2".into()),
            width: 512,
            height: 512,
            frame_rate: 25.0,
            uri: "video.m3u8".into(),
            subtitles: Some(SubtitlesRendition {
                group_id: "subs".into(),
                name: "Cap\"tions\n".into(),
                language: "en".into(),
                uri: "subs.m3u8".into(),
            }),
        };
        assert_eq!(
            m.render(),
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"Captions\",LANGUAGE=\"en\",\
             DEFAULT=YES,AUTOSELECT=YES,FORCED=NO,URI=\"subs.m3u8\"\n\
             #EXT-X-STREAM-INF:BANDWIDTH=1330000,AVERAGE-BANDWIDTH=1117200,\
             CODECS=\"avc1.42C01E,mp4a.40.2\",RESOLUTION=512x512,FRAME-RATE=25.000,\
             SUBTITLES=\"subs\"\nvideo.m3u8\n"
        );
        let bare = MultivariantPlaylist {
            subtitles: None,
            codecs: None,
            average_bandwidth: None,
            frame_rate: 29.97,
            ..m
        };
        assert_eq!(
            bare.render(),
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-STREAM-INF:BANDWIDTH=1330000,RESOLUTION=512x512,FRAME-RATE=29.970\n\
             video.m3u8\n"
        );
    }
}
