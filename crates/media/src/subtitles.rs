//! Captions as a WebVTT subtitles rendition: a [`CueTrack`] holds timed caption cues (media
//! times in ms, as the TTS reports them) until the video segments covering them are published,
//! and writes one WebVTT segment per video segment with every cue that overlaps it.
//!
//! Timing: every segment starts with `X-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000`, so a cue's
//! WebVTT time *is* its media time. MPEGTS 0 is media time 0 in 90 kHz ticks, the `tfdt` of the
//! first video sample. hls.js places a cue at `cue + (MPEGTS - initPTS) / 90000 - LOCAL` (or at
//! `cue` when that offset is 0), where `initPTS` is the offset it subtracts from the fMP4 decode
//! times of the main stream; the cue therefore lands on the same media-element time as the video
//! frame with the same media time. ffmpeg ignores the map and reads the cue times as-is, which
//! gives the same result.
//!
//! A cue that spans a segment boundary is written into every segment it overlaps, with its full
//! times (standard practice; hls.js drops the repeats because they have the same start, end and
//! text).

use std::fmt::Write as _;

/// The `X-TIMESTAMP-MAP` header line of every segment (see the module docs).
pub const VTT_TIMESTAMP_MAP: &str = "X-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000";

/// 90 kHz ticks per millisecond.
const TICKS_PER_MS: u64 = 90;

/// One caption cue. Times are media times in ms; `text` is plain text (escaped when written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cue {
    /// Media time the cue appears, ms.
    pub start_ms: u64,
    /// Media time the cue disappears, ms (greater than `start_ms`).
    pub end_ms: u64,
    /// Plain text, one or more non-empty lines separated by `\n`.
    pub text: String,
}

/// Pending caption cues of one channel, ordered by start time.
///
/// Cues may be added before or while their time is produced. Media time before
/// [`CueTrack::published_until_ms`] is already published (its WebVTT segments are written and
/// never change), so a cue that ends by then is ignored, and a cue that starts earlier but ends
/// later only reaches the segments not yet published (with its full, unclipped times).
#[derive(Debug, Clone, Default)]
pub struct CueTrack {
    cues: Vec<Cue>,
    /// End of the published media time, 90 kHz ticks.
    published_tick: u64,
}

impl CueTrack {
    /// An empty track with nothing published.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a cue. Returns false (and ignores it) when `end_ms <= start_ms`, when the text is
    /// empty after cleaning (control characters removed, blank lines dropped) or when the cue
    /// ends within already published media time.
    pub fn add(&mut self, start_ms: u64, end_ms: u64, text: &str) -> bool {
        if end_ms <= start_ms || end_ms.saturating_mul(TICKS_PER_MS) <= self.published_tick {
            return false;
        }
        let text = clean_text(text);
        if text.is_empty() {
            return false;
        }
        // After any cue with the same start: cues keep the order they were added in.
        let at = self.cues.partition_point(|c| c.start_ms <= start_ms);
        self.cues.insert(
            at,
            Cue {
                start_ms,
                end_ms,
                text,
            },
        );
        true
    }

    /// Barge-in: drops every cue that starts at or after `from_ms` and ends any cue spanning it
    /// at `from_ms`. Already published segments keep what they had.
    pub fn clear_from(&mut self, from_ms: u64) {
        self.cues.retain(|c| c.start_ms < from_ms);
        for c in &mut self.cues {
            c.end_ms = c.end_ms.min(from_ms);
        }
    }

    /// Cues not yet fully published, in start order.
    pub fn cues(&self) -> &[Cue] {
        &self.cues
    }

    /// End of the published media time in ms (rounded down).
    pub fn published_until_ms(&self) -> u64 {
        self.published_tick / TICKS_PER_MS
    }

    /// Writes the WebVTT segment for the media time `[start_tick, end_tick)` (90 kHz ticks) with
    /// every cue overlapping it, marks the time up to `end_tick` published and forgets the cues
    /// that end by then.
    pub fn publish_segment(&mut self, start_tick: u64, end_tick: u64) -> String {
        let overlapping = self.cues.iter().filter(|c| {
            c.start_ms.saturating_mul(TICKS_PER_MS) < end_tick
                && c.end_ms.saturating_mul(TICKS_PER_MS) > start_tick
        });
        let text = vtt_segment(overlapping);
        self.published_tick = self.published_tick.max(end_tick);
        let published = self.published_tick;
        self.cues
            .retain(|c| c.end_ms.saturating_mul(TICKS_PER_MS) > published);
        text
    }
}

/// A WebVTT file: the header with [`VTT_TIMESTAMP_MAP`], then the given cues (which must be in
/// start order), each followed by a blank line. With no cues it is just the header.
pub fn vtt_segment<'a>(cues: impl IntoIterator<Item = &'a Cue>) -> String {
    let mut s = String::with_capacity(128);
    s.push_str("WEBVTT\n");
    s.push_str(VTT_TIMESTAMP_MAP);
    s.push_str("\n\n");
    for c in cues {
        let _ = write!(
            s,
            "{} --> {}\n{}\n\n",
            format_vtt_timestamp(c.start_ms),
            format_vtt_timestamp(c.end_ms),
            escape_cue_text(&c.text)
        );
    }
    s
}

/// `HH:MM:SS.mmm` (hours grow past two digits when needed).
pub fn format_vtt_timestamp(ms: u64) -> String {
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// Escapes `&`, `<` and `>` for a WebVTT cue payload (this also makes `-->` impossible).
pub fn escape_cue_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Keeps the non-blank lines (a blank line would end the cue), trimmed and without control
/// characters, joined with `\n`.
fn clean_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split(['\n', '\r']) {
        let line: String = line.chars().filter(|c| !c.is_control()).collect();
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n\n";

    #[test]
    fn timestamps() {
        assert_eq!(format_vtt_timestamp(0), "00:00:00.000");
        assert_eq!(format_vtt_timestamp(1_234), "00:00:01.234");
        assert_eq!(format_vtt_timestamp(61_005), "00:01:01.005");
        assert_eq!(format_vtt_timestamp(3_599_999), "00:59:59.999");
        assert_eq!(format_vtt_timestamp(36_000_000 + 120_000), "10:02:00.000");
        assert_eq!(format_vtt_timestamp(360_000_000), "100:00:00.000");
    }

    #[test]
    fn escaping_and_cleaning() {
        assert_eq!(
            escape_cue_text("a < b && c > d --> e"),
            "a &lt; b &amp;&amp; c &gt; d --&gt; e"
        );
        assert_eq!(escape_cue_text("<b>hé</b>"), "&lt;b&gt;hé&lt;/b&gt;");
        assert_eq!(clean_text("  one\r\n\r\n two \n\n"), "one\ntwo");
        assert_eq!(clean_text("tab\there\u{0}!"), "tabhere!");
        assert_eq!(clean_text(" \n\r "), "");
    }

    #[test]
    fn empty_segment_is_just_the_header() {
        let mut t = CueTrack::new();
        assert_eq!(t.publish_segment(0, 162_000), HEADER);
        assert_eq!(vtt_segment(&[]), HEADER);
    }

    #[test]
    fn cue_spanning_segments_appears_in_both() {
        let mut t = CueTrack::new();
        assert!(t.add(1000, 2500, "Hello & <welcome>"));
        assert!(t.add(200, 400, "first"));
        assert!(t.add(3700, 3800, "later"));
        // Segment 0: 0..1.8 s; segment 1: 1.8..3.6 s; segment 2: 3.6..5.4 s.
        let s0 = t.publish_segment(0, 162_000);
        assert_eq!(
            s0,
            format!(
                "{HEADER}00:00:00.200 --> 00:00:00.400\nfirst\n\n\
                 00:00:01.000 --> 00:00:02.500\nHello &amp; &lt;welcome&gt;\n\n"
            )
        );
        assert_eq!(t.cues().len(), 2, "the first cue is done");
        let s1 = t.publish_segment(162_000, 324_000);
        assert_eq!(
            s1,
            format!("{HEADER}00:00:01.000 --> 00:00:02.500\nHello &amp; &lt;welcome&gt;\n\n")
        );
        let s2 = t.publish_segment(324_000, 486_000);
        assert_eq!(
            s2,
            format!("{HEADER}00:00:03.700 --> 00:00:03.800\nlater\n\n")
        );
        assert!(t.cues().is_empty());
        assert_eq!(t.published_until_ms(), 5400);
    }

    #[test]
    fn boundaries_are_half_open() {
        let mut t = CueTrack::new();
        t.add(1800, 2000, "starts at the boundary");
        t.add(1000, 1800, "ends at the boundary");
        let s0 = t.publish_segment(0, 162_000);
        assert!(s0.contains("ends at"), "{s0}");
        assert!(!s0.contains("starts at"), "{s0}");
        let s1 = t.publish_segment(162_000, 324_000);
        assert!(s1.contains("starts at"), "{s1}");
        assert!(!s1.contains("ends at"), "{s1}");
    }

    #[test]
    fn cues_stay_in_start_order() {
        let mut t = CueTrack::new();
        t.add(500, 900, "c");
        t.add(100, 900, "a");
        t.add(500, 600, "d");
        t.add(100, 200, "b");
        let texts: Vec<&str> = t.cues().iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["a", "b", "c", "d"]);
    }

    #[test]
    fn late_and_invalid_cues() {
        let mut t = CueTrack::new();
        t.publish_segment(0, 162_000);
        assert!(!t.add(100, 1800, "wholly published"), "ignored");
        assert!(!t.add(2000, 2000, "empty span"));
        assert!(!t.add(3000, 2000, "backwards"));
        assert!(!t.add(2000, 3000, " \n "), "blank text");
        assert!(t.add(1500, 2000, "partly published"));
        // It reaches the next segment with its real start time.
        let s1 = t.publish_segment(162_000, 324_000);
        assert!(s1.contains("00:00:01.500 --> 00:00:02.000\npartly published"));
    }

    #[test]
    fn clear_from_drops_and_trims() {
        let mut t = CueTrack::new();
        t.add(0, 1000, "before");
        t.add(1000, 3000, "spanning");
        t.add(2000, 2500, "at");
        t.add(2600, 4000, "after");
        t.clear_from(2000);
        let got: Vec<(u64, u64, &str)> = t
            .cues()
            .iter()
            .map(|c| (c.start_ms, c.end_ms, c.text.as_str()))
            .collect();
        assert_eq!(got, [(0, 1000, "before"), (1000, 2000, "spanning")]);
        // New speech after the barge-in.
        assert!(t.add(2100, 2900, "new"));
        let s = t.publish_segment(0, 270_000);
        assert!(
            s.contains("00:00:01.000 --> 00:00:02.000\nspanning\n"),
            "{s}"
        );
        assert!(s.contains("new") && !s.contains("after"), "{s}");
    }
}
