//! End-to-end check of [`LiveChannel`] output with the real ffmpeg tools: files are written to a
//! temporary folder the way the server writes them, then probed and decoded with
//! `/usr/bin/ffprobe` and `/usr/bin/ffmpeg`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use talkstream_media::{ChannelConfig, I420Frame, LiveChannel, Output, SegmentInfo};

const FFPROBE: &str = "/usr/bin/ffprobe";
const FFMPEG: &str = "/usr/bin/ffmpeg";
const START_UNIX_MS: i64 = 1_767_268_800_000;

fn require_tools() {
    for tool in [FFPROBE, FFMPEG] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: install ffmpeg (apt-get install ffmpeg) or run scripts/test.sh, \
             which installs it"
        );
    }
}

/// A temporary folder removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "talkstream-media-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("TALKSTREAM_KEEP_TEST_DIR").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Applies outputs like the server does: files written, playlists atomically, deletes done.
fn apply(dir: &Path, outputs: Vec<Output>, segments: &mut Vec<(String, SegmentInfo)>) {
    for o in outputs {
        match o {
            Output::Init { name, bytes }
            | Output::File { name, bytes }
            | Output::Part { name, bytes, .. } => std::fs::write(dir.join(name), bytes).unwrap(),
            Output::Segment { name, bytes, info } => {
                std::fs::write(dir.join(&name), bytes).unwrap();
                segments.push((name, info));
            }
            Output::Playlist { name, text } => {
                let tmp = dir.join(format!("{name}.tmp"));
                std::fs::write(&tmp, text).unwrap();
                std::fs::rename(tmp, dir.join(name)).unwrap();
            }
            Output::Delete { name } => std::fs::remove_file(dir.join(name)).unwrap(),
        }
    }
}

fn moving_gradient(w: u32, h: u32, n: u64, rgba: &mut Vec<u8>) {
    rgba.clear();
    let t = n as u32;
    for y in 0..h {
        for x in 0..w {
            rgba.extend_from_slice(&[
                ((x + 4 * t) & 255) as u8,
                ((y + 2 * t) & 255) as u8,
                (((x ^ y) / 2 + t) & 255) as u8,
                255,
            ]);
        }
    }
}

/// Runs a channel for `frames` frames with PCM from `pcm_at(sample_index)`, then finishes it.
fn run_channel(
    dir: &Path,
    cfg: ChannelConfig,
    frames: u64,
    pcm_at: impl Fn(u64) -> i16,
) -> Vec<(String, SegmentInfo)> {
    run_channel_with(dir, cfg, frames, pcm_at, |_, _| {})
}

/// Like [`run_channel`], calling `before_frame(n, channel)` before each push.
fn run_channel_with(
    dir: &Path,
    cfg: ChannelConfig,
    frames: u64,
    pcm_at: impl Fn(u64) -> i16,
    mut before_frame: impl FnMut(u64, &mut LiveChannel),
) -> Vec<(String, SegmentInfo)> {
    let (w, h) = (cfg.width, cfg.height);
    let mut ch = LiveChannel::new(cfg, START_UNIX_MS).unwrap();
    let mut segments = Vec::new();
    let mut frame = I420Frame::new(w, h);
    let mut rgba = Vec::new();
    let mut sample = 0u64;
    for n in 0..frames {
        moving_gradient(w, h, n, &mut rgba);
        frame.fill_from_rgba(&rgba);
        let count = ch.samples_for_frame(n) as u64;
        let pcm: Vec<i16> = (sample..sample + count).map(&pcm_at).collect();
        sample += count;
        before_frame(n, &mut ch);
        let now = START_UNIX_MS + ch.frame_time_ms(n + 1) as i64;
        apply(
            dir,
            ch.push_frame(&frame, &pcm, now).unwrap(),
            &mut segments,
        );
    }
    let now = START_UNIX_MS + ch.frame_time_ms(frames) as i64;
    apply(dir, ch.finish(now).unwrap(), &mut segments);
    segments
}

fn run(cmd: &mut Command) -> (String, String) {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{cmd:?} failed: {stderr}");
    (stdout, stderr)
}

/// Writes init + the given segments into one file.
fn concat(dir: &Path, name: &str, parts: &[&str]) -> PathBuf {
    let mut bytes = std::fs::read(dir.join("init-0.mp4")).unwrap();
    for p in parts {
        bytes.extend(std::fs::read(dir.join(p)).unwrap());
    }
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// `ffprobe -show_entries packet=...` in compact key=value form, one map per packet.
fn packets(file: &Path) -> Vec<HashMap<String, String>> {
    let (stdout, _) = run(Command::new(FFPROBE)
        .args([
            "-v",
            "error",
            "-show_entries",
            "packet=stream_index,pts,dts,duration,flags",
            "-of",
            "compact=p=0:nk=0",
        ])
        .arg(file));
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.split('|')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

fn num(p: &HashMap<String, String>, key: &str) -> i64 {
    p.get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("packet without numeric {key}: {p:?}"))
}

/// Stream index -> (codec_type, codec_name, time_base) from ffprobe.
fn streams(file: &Path) -> Vec<(String, String, String)> {
    let (stdout, _) = run(Command::new(FFPROBE)
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,codec_name,time_base",
            "-of",
            "compact=p=0:nk=0",
        ])
        .arg(file));
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let m: HashMap<&str, &str> = l.split('|').filter_map(|kv| kv.split_once('=')).collect();
            (
                m.get("codec_type").unwrap_or(&"").to_string(),
                m.get("codec_name").unwrap_or(&"").to_string(),
                m.get("time_base").unwrap_or(&"").to_string(),
            )
        })
        .collect()
}

#[test]
fn live_channel_output_is_valid_hls_for_ffmpeg() {
    require_tools();
    let dir = TempDir::new("hls");
    let cfg = ChannelConfig::default(); // 512x512, 25 fps, 48 kHz, 1.8 s segments
    let fps = f64::from(cfg.fps);
    // ~6 s: two tones switching every half second.
    let segments = run_channel(&dir.0, cfg, 150, |i| {
        let t = i as f64 / 48_000.0;
        let f = if ((t * 2.0) as u64).is_multiple_of(2) {
            440.0
        } else {
            660.0
        };
        ((t * f * std::f64::consts::TAU).sin() * 9000.0) as i16
    });
    assert_eq!(segments.len(), 4, "45 + 45 + 45 + 15 frames");

    // The media playlist lists every segment with its EXTINF, and is ended.
    let playlist = std::fs::read_to_string(dir.0.join("video.m3u8")).unwrap();
    assert!(playlist.ends_with("#EXT-X-ENDLIST\n"), "{playlist}");
    let mut extinf = HashMap::new();
    let lines: Vec<&str> = playlist.lines().collect();
    for pair in lines.windows(2) {
        if let Some(d) = pair[0].strip_prefix("#EXTINF:") {
            let d: f64 = d.trim_end_matches(',').parse().unwrap();
            extinf.insert(pair[1].to_owned(), d);
        }
    }
    assert_eq!(extinf.len(), 4, "{playlist}");

    // Each init+segment parses with one h264 and one aac stream; frame count and duration match.
    for (name, info) in &segments {
        let file = concat(&dir.0, &format!("probe-{name}.mp4"), &[name]);
        let s = streams(&file);
        let kinds: Vec<(&str, &str)> = s.iter().map(|(t, c, _)| (t.as_str(), c.as_str())).collect();
        assert_eq!(kinds, [("video", "h264"), ("audio", "aac")], "{name}");
        assert_eq!(s[0].2, "1/90000");
        assert_eq!(s[1].2, "1/48000");
        let pk = packets(&file);
        let video: Vec<_> = pk.iter().filter(|p| num(p, "stream_index") == 0).collect();
        assert_eq!(video.len() as u32, info.frames, "{name}: frames");
        assert!(
            video[0]["flags"].starts_with('K'),
            "{name}: starts with a keyframe"
        );
        // ffmpeg's mov demuxer leaves some packet durations N/A in fragmented files (its own
        // fMP4 output too), so durations come from timestamps: span plus one nominal frame.
        let first = num(video[0], "pts");
        let last = num(video.last().unwrap(), "pts");
        let dur_s = (last - first + 3600) as f64 / 90_000.0;
        let ext = extinf[name];
        assert!(
            (dur_s - ext).abs() <= 1.0 / fps + 1e-9,
            "{name}: {dur_s} s vs EXTINF {ext}"
        );
        assert_eq!(first as f64 / 90.0, info.start_ms as f64, "{name}: start");
        let audio = pk.iter().filter(|p| num(p, "stream_index") == 1).count();
        assert!(audio > 0, "{name}: has audio");
    }

    // Timestamps are continuous across all segments, per track.
    let names: Vec<&str> = segments.iter().map(|(n, _)| n.as_str()).collect();
    let all = concat(&dir.0, "probe-all.mp4", &names);
    let pk = packets(&all);
    let nominal = [3600i64, 1024];
    let mut next = [0i64, 0i64];
    let mut counts = [0usize, 0usize];
    for p in &pk {
        let idx = num(p, "stream_index") as usize;
        assert_eq!(
            num(p, "dts"),
            next[idx],
            "stream {idx} packet {}",
            counts[idx]
        );
        assert_eq!(
            num(p, "pts"),
            next[idx],
            "stream {idx} packet {}",
            counts[idx]
        );
        next[idx] += nominal[idx];
        counts[idx] += 1;
    }
    assert_eq!(counts[0], 150);
    assert_eq!(next[0], 150 * 3600);
    // Audio covers the whole stream (rounded up to an access unit).
    assert_eq!(next[1], (150 * 1920u64).div_ceil(1024) as i64 * 1024);

    // ffmpeg decodes the whole playlist without a single complaint.
    let (_, stderr) = run(Command::new(FFMPEG).current_dir(&dir.0).args([
        "-v",
        "error",
        "-i",
        "index.m3u8",
        "-f",
        "null",
        "-",
    ]));
    assert!(stderr.trim().is_empty(), "ffmpeg reported: {stderr}");
}

#[test]
fn decoded_audio_lines_up_with_media_time() {
    require_tools();
    let dir = TempDir::new("align");
    let cfg = ChannelConfig {
        width: 64,
        height: 64,
        video_bitrate_kbps: 100,
        ..ChannelConfig::default()
    };
    // Silence with a short click (1 ms pulse) at a time that is not an AU or frame boundary.
    let click_at = 112_560u64; // 2.345 s
    let segments = run_channel(&dir.0, cfg, 100, |i| {
        if (click_at..click_at + 48).contains(&i) {
            20_000
        } else {
            0
        }
    });
    let names: Vec<&str> = segments.iter().map(|(n, _)| n.as_str()).collect();
    let all = concat(&dir.0, "align.mp4", &names);
    let pk = packets(&all);
    let first_audio = pk.iter().find(|p| num(p, "stream_index") == 1).unwrap();
    assert_eq!(num(first_audio, "pts"), 0, "audio starts at media time 0");
    let out = Command::new(FFMPEG)
        .args(["-v", "error", "-i"])
        .arg(&all)
        .args(["-map", "0:a", "-f", "s16le", "-acodec", "pcm_s16le", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pcm: Vec<i16> = out
        .stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let (peak_at, peak) = pcm
        .iter()
        .enumerate()
        .max_by_key(|(_, s)| s.unsigned_abs())
        .map(|(i, s)| (i as u64, s.unsigned_abs()))
        .unwrap();
    assert!(peak > 5_000, "click lost: peak {peak}");
    // The centre of the decoded click's energy must be within 3 ms of where it was put.
    let window = 48 * 20; // +-20 ms around the peak
    let (mut sum, mut weighted) = (0f64, 0f64);
    for i in peak_at.saturating_sub(window)..(peak_at + window).min(pcm.len() as u64) {
        let e = f64::from(pcm[i as usize]).powi(2);
        sum += e;
        weighted += e * i as f64;
    }
    let centre = weighted / sum;
    let expected = click_at as f64 + 24.0;
    let off_ms = (centre - expected) / 48.0;
    eprintln!("click offset {off_ms:.3} ms");
    assert!(
        off_ms.abs() <= 3.0,
        "click decoded {off_ms:.2} ms off (peak at {peak_at})"
    );
    assert_eq!(pcm.len() as u64, (100 * 1920u64).div_ceil(1024) * 1024);
    // Before the click there is (almost) silence: the priming did not shift earlier audio in.
    let early_max = pcm[..(click_at - 48 * 25) as usize]
        .iter()
        .map(|s| s.unsigned_abs())
        .max()
        .unwrap();
    assert!(early_max < 200, "noise before the click: {early_max}");
}

#[test]
fn chunked_and_early_cut_segments_play_cleanly() {
    require_tools();
    let dir = TempDir::new("chunks");
    let cfg = ChannelConfig {
        width: 128,
        height: 96,
        chunk_ms: Some(500),
        video_bitrate_kbps: 300,
        subtitles: false, // today's single media playlist layout
        ..ChannelConfig::default()
    };
    // Speech "starts" at frame 30: cut there and publish a first short segment of <= 600 ms.
    let segments = run_channel_with(
        &dir.0,
        cfg,
        150,
        |i| ((i as f64 * 0.05).sin() * 5000.0) as i16,
        |n, ch| {
            if n == 30 {
                ch.cut_before_next(Some(600));
            }
        },
    );
    let frames: Vec<u32> = segments.iter().map(|(_, i)| i.frames).collect();
    assert_eq!(frames, [30, 15, 45, 45, 15]);
    for (name, info) in &segments {
        assert!(info.chunks[0].independent, "{name}");
        assert!(info.chunks[1..].iter().all(|c| !c.independent), "{name}");
        let total: usize = info.chunks.iter().map(|c| c.len).sum();
        assert_eq!(
            total,
            std::fs::metadata(dir.0.join(name)).unwrap().len() as usize
        );
    }
    let names: Vec<&str> = segments.iter().map(|(n, _)| n.as_str()).collect();
    let all = concat(&dir.0, "chunks.mp4", &names);
    let pk = packets(&all);
    let video: Vec<i64> = pk
        .iter()
        .filter(|p| num(p, "stream_index") == 0)
        .map(|p| num(p, "dts"))
        .collect();
    assert_eq!(video, (0..150).map(|n| n * 3600).collect::<Vec<_>>());
    let (_, stderr) = run(Command::new(FFMPEG).current_dir(&dir.0).args([
        "-v",
        "error",
        "-i",
        "index.m3u8",
        "-f",
        "null",
        "-",
    ]));
    assert!(stderr.trim().is_empty(), "ffmpeg reported: {stderr}");
}

#[test]
fn low_latency_parts_are_the_segments_chunks_and_decode_with_whole_frames() {
    require_tools();
    let dir = TempDir::new("llhls");
    let cfg = ChannelConfig {
        width: 128,
        height: 96,
        sample_rate: 22_050,
        part_target_ms: Some(330),
        video_bitrate_kbps: 300,
        ..ChannelConfig::default()
    };
    let (w, h) = (cfg.width, cfg.height);
    let mut ch = LiveChannel::new(cfg, START_UNIX_MS).unwrap();
    let mut frame = I420Frame::new(w, h);
    let mut rgba = Vec::new();
    // Everything written, in order; parts and segments kept in memory (the window deletes).
    let mut parts: Vec<(u64, u64, Vec<u8>)> = Vec::new();
    let mut segments: Vec<(u64, Vec<u8>, SegmentInfo)> = Vec::new();
    let mut playlists = Vec::new();
    let mut sample = 0u64;
    let frames = 200u64;
    let mut outputs = Vec::new();
    for n in 0..frames {
        moving_gradient(w, h, n, &mut rgba);
        frame.fill_from_rgba(&rgba);
        let count = ch.samples_for_frame(n) as u64;
        let pcm: Vec<i16> = (sample..sample + count)
            .map(|i| ((i as f64 * 0.05).sin() * 5000.0) as i16)
            .collect();
        sample += count;
        if n == 60 {
            ch.cut_before_next(Some(600)); // speech starts: a short first speaking segment
        }
        let now = START_UNIX_MS + ch.frame_time_ms(n + 1) as i64;
        outputs.extend(ch.push_frame(&frame, &pcm, now).unwrap());
    }
    outputs.extend(
        ch.finish(START_UNIX_MS + ch.frame_time_ms(frames) as i64)
            .unwrap(),
    );
    let mut seen_part_before_segment = false;
    for o in &outputs {
        match o {
            Output::Part {
                msn, index, bytes, ..
            } => {
                if !segments.iter().any(|(m, ..)| m == msn) && *index == 0 {
                    seen_part_before_segment = true;
                }
                parts.push((*msn, *index, bytes.clone()));
            }
            Output::Segment { bytes, info, .. } => {
                segments.push((info.msn, bytes.clone(), info.clone()))
            }
            Output::Playlist { name, text } if name == "video.m3u8" => playlists.push(text.clone()),
            _ => {}
        }
    }
    apply(&dir.0, outputs, &mut Vec::new());
    assert!(seen_part_before_segment);
    assert_eq!(segments[0].0, 1, "media sequence numbers start at 1");
    // Each segment is exactly its parts, in order; parts hold 8 frames (320 ms) except the last
    // of a segment; INDEPENDENT only on the first part (the IDR).
    for (msn, bytes, info) in &segments {
        let mine: Vec<&(u64, u64, Vec<u8>)> = parts.iter().filter(|p| p.0 == *msn).collect();
        assert_eq!(mine.len(), info.chunks.len(), "segment {msn}");
        let joined: Vec<u8> = mine.iter().flat_map(|p| p.2.clone()).collect();
        assert_eq!(&joined, bytes, "segment {msn} = its parts");
        for (i, c) in info.chunks.iter().enumerate() {
            assert!(c.duration_ms <= 330.0);
            if i + 1 < info.chunks.len() {
                assert_eq!(c.duration_ms, 320.0, "segment {msn} part {i}");
            }
            assert_eq!(c.independent, i == 0);
        }
    }
    // Every playlist version: parts <= PART-TARGET, a hint for the next part until the end.
    for text in &playlists {
        assert!(
            text.contains("#EXT-X-PART-INF:PART-TARGET=0.330\n"),
            "{text}"
        );
        assert!(
            text.contains("PART-HOLD-BACK=0.990,HOLD-BACK=6.000"),
            "{text}"
        );
        assert!(
            !text.contains("CAN-BLOCK-RELOAD"),
            "not unless the server blocks"
        );
        assert_eq!(
            text.contains("#EXT-X-RENDITION-REPORT:URI=\"subs.m3u8\""),
            text.contains("#EXTINF"),
            "captions are reported once they have a segment: {text}"
        );
        assert_eq!(
            text.contains("#EXT-X-PRELOAD-HINT:TYPE=PART"),
            !text.contains("#EXT-X-ENDLIST"),
            "{text}"
        );
        for l in text.lines().filter(|l| l.starts_with("#EXT-X-PART:")) {
            let d: f64 = l["#EXT-X-PART:DURATION=".len()..]
                .split(',')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert!(d <= 0.330, "{l}");
        }
    }
    // init + every part in order decodes: continuous video (every frame once), continuous audio.
    let mut all = std::fs::read(dir.0.join("init-0.mp4")).unwrap();
    for (_, _, bytes) in &parts {
        all.extend(bytes);
    }
    let path = dir.0.join("parts.mp4");
    std::fs::write(&path, all).unwrap();
    let pk = packets(&path);
    let video: Vec<i64> = pk
        .iter()
        .filter(|p| num(p, "stream_index") == 0)
        .map(|p| num(p, "dts"))
        .collect();
    assert_eq!(
        video,
        (0..frames as i64).map(|n| n * 3600).collect::<Vec<_>>()
    );
    let audio: Vec<i64> = pk
        .iter()
        .filter(|p| num(p, "stream_index") == 1)
        .map(|p| num(p, "pts"))
        .collect();
    assert!(audio.len() > 150);
    assert!(
        audio.windows(2).all(|w| w[1] - w[0] == 1024),
        "audio continuous"
    );
    // Each part alone (after the init) decodes to whole frames without errors.
    for (msn, index, bytes) in parts.iter().take(12) {
        let mut one = std::fs::read(dir.0.join("init-0.mp4")).unwrap();
        one.extend(bytes);
        let p = dir.0.join(format!("one-{msn}-{index}.mp4"));
        std::fs::write(&p, one).unwrap();
        let (_, stderr) = run(Command::new(FFPROBE)
            .args(["-v", "error", "-show_packets"])
            .arg(&p));
        assert!(stderr.trim().is_empty(), "part {msn}-{index}: {stderr}");
    }
    // And the playlists play in ffmpeg (which ignores the parts).
    let (_, stderr) = run(Command::new(FFMPEG).current_dir(&dir.0).args([
        "-v",
        "error",
        "-i",
        "index.m3u8",
        "-f",
        "null",
        "-",
    ]));
    assert!(stderr.trim().is_empty(), "ffmpeg reported: {stderr}");
}

/// `[HH:]MM:SS.mmm` to ms.
fn vtt_ms(t: &str) -> u64 {
    let (rest, ms) = t.rsplit_once('.').unwrap();
    let mut secs = 0u64;
    for part in rest.split(':') {
        secs = secs * 60 + part.parse::<u64>().unwrap();
    }
    secs * 1000 + ms.parse::<u64>().unwrap()
}

/// (start_ms, end_ms, text) of every cue in a WebVTT document.
fn vtt_cues(doc: &str) -> Vec<(u64, u64, String)> {
    let mut out = Vec::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        if let Some((a, b)) = line.split_once(" --> ") {
            let mut text = Vec::new();
            for l in lines.by_ref() {
                if l.trim().is_empty() {
                    break;
                }
                text.push(l);
            }
            let end = b.split_whitespace().next().unwrap();
            out.push((vtt_ms(a.trim()), vtt_ms(end), text.join("\n")));
        }
    }
    out
}

#[test]
fn captions_reach_ffmpeg_through_the_multivariant_playlist() {
    require_tools();
    let dir = TempDir::new("subs");
    let cfg = ChannelConfig {
        width: 128,
        height: 96,
        video_bitrate_kbps: 300,
        ..ChannelConfig::default() // subtitles on
    };
    let frame_ms = 1000 / u64::from(cfg.fps);
    let segments = run_channel_with(
        &dir.0,
        cfg,
        150,
        |i| ((i as f64 * 0.05).sin() * 5000.0) as i16,
        |n, ch| match n {
            // Timings arrive ahead of the frames, as from a TTS.
            0 => {
                ch.add_cue(400, 1500, "Hello there.");
                ch.add_cue(1500, 2600, "This one <spans> a cut & more.");
            }
            50 => {
                ch.add_cue(3000, 3500, "Third.");
                ch.add_cue(4200, 5800, "Cut short by a barge-in.");
                ch.add_cue(5200, 5600, "Never said.");
            }
            100 => ch.clear_cues_from(5000),
            _ => {}
        },
    );
    assert_eq!(segments.len(), 4);
    let expected = [
        (400, 1500, "Hello there."),
        (1500, 2600, "This one <spans> a cut & more."),
        (3000, 3500, "Third."),
        (4200, 5000, "Cut short by a barge-in."),
    ];

    // index.m3u8 is the multivariant playlist; the media playlists sit next to it.
    let index = std::fs::read_to_string(dir.0.join("index.m3u8")).unwrap();
    assert!(index.contains("#EXT-X-MEDIA:TYPE=SUBTITLES,"), "{index}");
    assert!(
        index.ends_with(",SUBTITLES=\"subs\"\nvideo.m3u8\n"),
        "{index}"
    );
    let subs = std::fs::read_to_string(dir.0.join("subs.m3u8")).unwrap();
    assert!(subs.ends_with("subs-3.vtt\n#EXT-X-ENDLIST\n"), "{subs}");
    // The spanning cue is in both segments it overlaps, escaped.
    for n in [0, 1] {
        let vtt = std::fs::read_to_string(dir.0.join(format!("subs-{n}.vtt"))).unwrap();
        assert!(
            vtt.contains("This one &lt;spans&gt; a cut &amp; more."),
            "subs-{n}.vtt: {vtt}"
        );
    }

    // ffmpeg 5.1's HLS demuxer opens subtitle renditions only with `-strict experimental`
    // (otherwise it warns "Can't support the subtitle" and shows video and audio only).
    let (stdout, _) = run(Command::new(FFPROBE).current_dir(&dir.0).args([
        "-v",
        "error",
        "-strict",
        "experimental",
        "-show_entries",
        "stream=codec_type,codec_name,start_time:stream_tags=language",
        "-of",
        "compact=p=0:nk=0",
        "index.m3u8",
    ]));
    // Streams are listed twice (under the HLS program, then on their own with tags): keep the
    // last line per codec type.
    let by_type: HashMap<String, HashMap<&str, &str>> = stdout
        .lines()
        .filter(|l| l.contains("codec_type="))
        .map(|l| {
            let m: HashMap<&str, &str> = l.split('|').filter_map(|kv| kv.split_once('=')).collect();
            (m["codec_type"].to_owned(), m)
        })
        .collect();
    let mut kinds: Vec<String> = by_type
        .iter()
        .map(|(t, m)| format!("{t}:{}", m["codec_name"]))
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        ["audio:aac", "subtitle:webvtt", "video:h264"],
        "{stdout}"
    );
    // Cue times are media times because the video starts at media time 0.
    assert_eq!(by_type["video"]["start_time"].parse::<f64>().unwrap(), 0.0);
    assert_eq!(
        by_type["subtitle"].get("tag:language"),
        Some(&"en"),
        "{stdout}"
    );
    let plain = streams(&dir.0.join("index.m3u8"));
    let mut plain: Vec<&str> = plain.iter().map(|s| s.1.as_str()).collect();
    plain.sort();
    plain.dedup(); // listed under the program and on their own
    assert_eq!(
        plain,
        ["aac", "h264"],
        "without -strict: video and audio only"
    );

    // The captions come back with their texts and times (ffmpeg drops the repeated cue).
    let (stdout, _) = run(Command::new(FFMPEG).current_dir(&dir.0).args([
        "-v",
        "error",
        "-strict",
        "experimental",
        "-i",
        "index.m3u8",
        "-map",
        "0:s",
        "-f",
        "webvtt",
        "-",
    ]));
    let got = vtt_cues(&stdout);
    assert_eq!(got.len(), expected.len(), "{stdout}");
    for ((start, end, text), (want_start, want_end, want_text)) in got.iter().zip(expected) {
        assert_eq!(text, want_text);
        assert!(
            start.abs_diff(want_start) <= frame_ms,
            "{text}: start {start}"
        );
        assert!(end.abs_diff(want_end) <= frame_ms, "{text}: end {end}");
    }
}

#[test]
fn offline_mp4_reports_its_duration_and_decodes_cleanly() {
    require_tools();
    let dir = TempDir::new("offline");
    let cfg = ChannelConfig {
        width: 128,
        height: 96,
        video_bitrate_kbps: 300,
        subtitles: false,
        ..ChannelConfig::default()
    };
    let (w, h) = (cfg.width, cfg.height);
    // The render command's use: keep every segment, concatenate after finish.
    let mut ch = LiveChannel::new(cfg, START_UNIX_MS).unwrap();
    let mut init = Vec::new();
    let mut segments: Vec<Vec<u8>> = Vec::new();
    let mut collect = |outputs: Vec<Output>| {
        for o in outputs {
            match o {
                Output::Init { bytes, .. } => init = bytes,
                Output::Segment { bytes, .. } => segments.push(bytes),
                _ => {}
            }
        }
    };
    let mut frame = I420Frame::new(w, h);
    let mut rgba = Vec::new();
    let mut sample = 0u64;
    for n in 0..150 {
        moving_gradient(w, h, n, &mut rgba);
        frame.fill_from_rgba(&rgba);
        let count = ch.samples_for_frame(n) as u64;
        let pcm: Vec<i16> = (sample..sample + count)
            .map(|i| ((i as f64 * 0.03).sin() * 8000.0) as i16)
            .collect();
        sample += count;
        collect(ch.push_frame(&frame, &pcm, START_UNIX_MS).unwrap());
    }
    collect(ch.finish(START_UNIX_MS).unwrap());
    let duration_ms = ch.published_duration_ms();
    // 6 s of video; audio rounded up to 282 AUs of 1024 samples = 6.016 s.
    assert_eq!(duration_ms, 6016);
    let parts: Vec<&[u8]> = segments.iter().map(Vec::as_slice).collect();
    let file = dir.0.join("offline.mp4");
    let bytes = talkstream_media::offline_mp4(&init, &parts, duration_ms).unwrap();
    std::fs::write(&file, bytes).unwrap();

    let (stdout, _) = run(Command::new(FFPROBE)
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "format=duration:stream=codec_name,nb_read_frames",
            "-of",
            "compact=p=0:nk=0",
        ])
        .arg(&file));
    let duration: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("duration="))
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("no format duration: {stdout}"));
    assert!(
        (duration * 1000.0 - duration_ms as f64).abs() <= 1.0,
        "ffprobe says {duration} s, header {duration_ms} ms"
    );
    assert!(
        stdout.contains("codec_name=h264|nb_read_frames=150"),
        "{stdout}"
    );
    assert!(
        stdout.contains("codec_name=aac|nb_read_frames=282"),
        "{stdout}"
    );
    let (_, stderr) = run(Command::new(FFMPEG)
        .args(["-v", "error", "-i"])
        .arg(&file)
        .args(["-f", "null", "-"]));
    assert!(stderr.trim().is_empty(), "ffmpeg reported: {stderr}");
}
