//! The media loop in virtual time: a fake clock jumps from one due time to the next (no
//! sleeping, far faster than real time) and a [`MemorySink`] records every frame's outputs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use talkstream_generators::{
    GenerateFuture, GeneratedWindow, GeneratorKind, StreamFormat, VideoGenerator, WindowRequest,
    WindowTimings,
};
use talkstream_media::{ChannelConfig, I420Frame, Output, SegmentInfo};
use talkstream_providers::WordTiming;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::generation::GeneratorLink;

const RATE: u32 = 16_000;
const FPS: u32 = 25;
/// Samples per frame at `RATE` and `FPS`.
const SPF: usize = (RATE / FPS) as usize;

fn config() -> ChannelConfig {
    ChannelConfig {
        width: 64,
        height: 64,
        fps: FPS,
        sample_rate: RATE,
        segment_ms: 1800,
        ..ChannelConfig::default()
    }
}

/// Speech-like samples that are never zero, so they can be told from the idle silence.
fn speech(len: usize, seed: i16) -> Vec<i16> {
    (0..len)
        .map(|i| ((i % 97) as i16 - 48) * 100 + seed)
        .map(|s| if s == 0 { 1 } else { s })
        .collect()
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn audio(turn: u64, pcm: Vec<i16>, text: &str, words: Vec<WordTiming>) -> MediaCommand {
    MediaCommand::Audio {
        turn,
        pcm,
        text: text.into(),
        words,
    }
}

fn word(text: &str, start_ms: u64, end_ms: u64) -> WordTiming {
    WordTiming {
        text: text.into(),
        start_ms,
        end_ms,
    }
}

/// A loop, a fake clock and an in-memory sink.
struct Harness {
    media: MediaLoop,
    sink: MemorySink,
    now: Duration,
    /// Every event with the stream time it was reported at.
    events: Vec<(Duration, Event)>,
    clock: StreamClock,
}

impl Harness {
    fn new() -> Self {
        Self::with_generator(None)
    }

    fn with_generator(generator: Option<GeneratorLink>) -> Self {
        let clock = StreamClock {
            start: Instant::now(),
            start_unix_ms: 1_767_268_800_000,
        };
        Self {
            media: MediaLoop::new(config(), 7, None, generator, clock).unwrap(),
            sink: MemorySink::default(),
            now: Duration::ZERO,
            events: Vec::new(),
            clock,
        }
    }

    fn command(&mut self, cmd: MediaCommand) -> Vec<Event> {
        let events = self.media.handle_command(cmd, self.now);
        self.events
            .extend(events.iter().cloned().map(|e| (self.now, e)));
        events
    }

    /// Run the loop as the producer thread does, the clock jumping to each due time, until the
    /// clock reaches `until`.
    fn run_until(&mut self, until: Duration) {
        loop {
            match self.media.poll(self.now) {
                Step::Produce => {
                    let out = self.media.produce(self.now).unwrap();
                    self.sink.on_frame(&out, self.media.encoder()).unwrap();
                    self.events
                        .extend(out.events.iter().cloned().map(|e| (self.now, e)));
                }
                Step::Wait(due) => {
                    assert!(due > self.now, "a wait is always for a later time");
                    if due > until {
                        self.now = until;
                        return;
                    }
                    self.now = due;
                }
                Step::Finish => return,
            }
        }
    }

    fn finish(&mut self) -> FrameOutputs {
        self.command(MediaCommand::Finish);
        assert_eq!(self.media.poll(self.now), Step::Finish);
        let out = self.media.finish(self.now).unwrap();
        self.sink.finish(&out).unwrap();
        out
    }

    /// The stream's PCM as the units carry it, from sample 0.
    fn pcm(&self) -> Vec<i16> {
        let mut all = Vec::new();
        for f in &self.sink.frames {
            let unit = f.unit.as_ref().unwrap();
            assert_eq!(unit.pcm_start, all.len() as u64, "units are contiguous");
            all.extend_from_slice(&unit.pcm);
        }
        all
    }

    /// Published segments with the frame (index into `sink.frames`) that published them.
    fn segments(&self) -> Vec<(usize, SegmentInfo)> {
        let mut segs = Vec::new();
        for (i, f) in self.sink.frames.iter().enumerate() {
            for out in &f.hls {
                if let Output::Segment { info, .. } = out {
                    segs.push((i, info.clone()));
                }
            }
        }
        segs
    }

    fn turn_completes(&self) -> Vec<(Duration, Event)> {
        self.events
            .iter()
            .filter(|(_, e)| matches!(e, Event::TurnComplete { .. }))
            .cloned()
            .collect()
    }
}

fn first_nonzero(pcm: &[i16]) -> usize {
    pcm.iter().position(|&s| s != 0).unwrap()
}

#[test]
fn idle_frames_come_exactly_at_their_due_time_never_ahead() {
    let mut h = Harness::new();
    assert_eq!(h.media.poll(Duration::ZERO), Step::Produce);
    h.run_until(ms(3000));
    // 0 ms .. 3000 ms inclusive: 76 frames at 40 ms.
    assert_eq!(h.sink.frames.len(), 76);
    for (n, f) in h.sink.frames.iter().enumerate() {
        assert_eq!(f.media_time, ms(n as u64 * 40));
        assert_eq!(
            f.produced_at, f.media_time,
            "frame {n} produced at its due time"
        );
        let unit = f.unit.as_ref().unwrap();
        assert_eq!(unit.video.frame_index, n as u64);
        assert!(unit.pcm.iter().all(|&s| s == 0), "idle audio is silence");
    }
    // Just before the next frame is due, the loop waits for it.
    assert_eq!(h.media.poll(ms(3039)), Step::Wait(ms(3040)));
    let segs = h.segments();
    assert_eq!(segs.len(), 1, "one 1.8 s segment published");
    assert!(h
        .events
        .iter()
        .all(|(_, e)| matches!(e, Event::SegmentPublished { .. })));
}

#[test]
fn speech_runs_ahead_up_to_the_lead_and_reaches_the_units_unchanged() {
    let mut h = Harness::new();
    h.run_until(ms(500));
    let said = speech(RATE as usize * 3, 3); // 3 s
    let events = h.command(audio(
        1,
        said[..RATE as usize].to_vec(),
        "Hello there.",
        vec![],
    ));
    assert!(matches!(&events[..], [Event::Transcript { turn: 1, .. }]));
    h.command(audio(
        1,
        said[RATE as usize..].to_vec(),
        "How are you?",
        vec![],
    ));
    h.command(MediaCommand::TurnEnd { turn: 1 });
    // While speech is queued the next frame is due a second early: now.
    assert_eq!(h.media.poll(h.now), Step::Produce);
    h.run_until(ms(6000));

    let mut ahead = Duration::ZERO;
    for f in &h.sink.frames {
        let lead = f.media_time.saturating_sub(f.produced_at);
        assert!(lead <= ms(SPEECH_LEAD_MS), "never more than the lead ahead");
        assert!(
            f.produced_at <= f.media_time,
            "never behind in virtual time"
        );
        ahead = ahead.max(lead);
    }
    assert_eq!(ahead, ms(SPEECH_LEAD_MS), "speech used the whole lead");
    // Once the speech is all mixed, idle frames are produced at their time again.
    let last = h.sink.frames.last().unwrap();
    assert_eq!(last.produced_at, last.media_time);

    // The speech starts at the first frame after the command, sample for sample.
    let pcm = h.pcm();
    let start = first_nonzero(&pcm);
    assert_eq!(start, 13 * SPF, "frames 0..=12 were produced by 500 ms");
    assert_eq!(&pcm[start..start + said.len()], &said[..]);
    assert!(pcm[start + said.len()..].iter().all(|&s| s == 0));

    // The turn's report.
    let kinds: Vec<&str> = h
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::FirstSpeakingFrame { turn: 1, .. } => Some("frame"),
            Event::FirstSpeakingSegment { turn: 1, .. } => Some("segment"),
            Event::TurnComplete { turn: 1, .. } => Some("complete"),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, ["frame", "segment", "complete"]);
}

#[test]
fn the_first_speaking_segment_is_cut_short() {
    let mut h = Harness::new();
    h.run_until(ms(1000));
    h.command(audio(
        1,
        speech(RATE as usize * 4, 5),
        "A long answer.",
        vec![],
    ));
    h.command(MediaCommand::TurnEnd { turn: 1 });
    h.run_until(ms(8000));
    let segs: Vec<SegmentInfo> = h.segments().into_iter().map(|(_, s)| s).collect();
    // Speech starts at frame 26 (1040 ms): the idle segment before it ends there, and the
    // first speaking segment is at most FIRST_SPEECH_SEGMENT_MS long.
    assert_eq!(segs[0].start_ms, 0);
    assert_eq!(segs[1].start_ms, 1040);
    assert_eq!(segs[0].frames, 26);
    assert!(segs[1].duration_ms <= f64::from(FIRST_SPEECH_SEGMENT_MS));
    assert_eq!(segs[1].frames, 15);
    // Later segments are full length again.
    assert_eq!(segs[2].frames, 45);
}

#[test]
fn a_turn_completes_once_its_last_sample_is_in_a_published_segment() {
    let mut h = Harness::new();
    let said = speech(RATE as usize * 2, 9); // 2 s
    h.command(audio(
        1,
        said.clone(),
        "Hello world.",
        vec![word("Hello", 0, 900), word("world", 1000, 1900)],
    ));
    h.command(MediaCommand::TurnEnd { turn: 1 });
    h.run_until(ms(10_000));
    let done = h.turn_completes();
    assert_eq!(done.len(), 1);
    let Event::TurnComplete {
        turn,
        interrupted,
        spoken,
        windows,
        ..
    } = &done[0].1
    else {
        unreachable!()
    };
    assert_eq!((*turn, *interrupted), (1, false));
    assert_eq!(spoken, "Hello world");
    assert_eq!(*windows, None);
    // It came with the segment that holds the last speech sample (2000 ms), not earlier.
    let frame = h
        .sink
        .frames
        .iter()
        .position(|f| {
            f.events
                .iter()
                .any(|e| matches!(e, Event::TurnComplete { .. }))
        })
        .unwrap();
    let segs = h.segments();
    let (published_at, seg) = segs
        .iter()
        .find(|(_, s)| s.start_ms as f64 + s.duration_ms >= 2000.0)
        .unwrap();
    assert_eq!(frame, *published_at);
    assert!(seg.start_ms < 2000);
}

#[test]
fn barge_in_drops_the_queued_speech_and_reports_only_what_was_said() {
    let mut h = Harness::new();
    let said = speech(RATE as usize * 5, 11); // 5 s
    h.command(audio(
        1,
        said,
        "One two three four five.",
        vec![
            word("One", 0, 500),
            word("two", 1000, 1500),
            word("three", 2000, 2500),
            word("four", 3000, 3500),
            word("five", 4000, 4500),
        ],
    ));
    // At 800 ms of clock time the loop has mixed up to a second more: 1800 ms of speech.
    h.run_until(ms(800));
    let mixed = h.pcm().len();
    assert_eq!(
        mixed,
        46 * SPF,
        "frames 0..=45 (1800 ms) produced by 800 ms"
    );
    let events = h.command(MediaCommand::Interrupt { turn: 1 });
    let [Event::TurnComplete {
        turn: 1,
        interrupted: true,
        spoken,
        ..
    }] = &events[..]
    else {
        panic!("expected one TurnComplete, got {events:?}");
    };
    assert_eq!(
        spoken, "One two",
        "only the words that started before 1840 ms"
    );
    // Late audio and the turn's end are ignored; nothing else is reported for it.
    h.command(audio(1, speech(RATE as usize, 1), "Six.", vec![]));
    assert!(h.command(MediaCommand::TurnEnd { turn: 1 }).is_empty());
    h.run_until(ms(5000));
    let pcm = h.pcm();
    assert!(pcm[..mixed].iter().all(|&s| s != 0), "what was mixed stays");
    assert!(pcm[mixed..].iter().all(|&s| s == 0), "the rest was dropped");
    // Idle again: frames at their time.
    let last = h.sink.frames.last().unwrap();
    assert_eq!(last.produced_at, last.media_time);
    assert_eq!(h.turn_completes().len(), 1);
}

#[test]
fn a_shorter_speech_lead_bounds_what_a_barge_in_throws_away() {
    let mut h = Harness::new();
    // A sink that shows frames at their real time (WebRTC) asked for a short lead.
    h.media.set_speech_lead(ms(120));
    h.command(audio(
        1,
        speech(RATE as usize * 5, 3),
        "Long answer.",
        vec![],
    ));
    h.run_until(ms(800));
    for f in &h.sink.frames {
        assert!(f.media_time.saturating_sub(f.produced_at) <= ms(120));
    }
    // 800 ms + 120 ms lead: frames 0..=23 (the one at 920 ms was due at 800 ms), not a
    // second ahead.
    assert_eq!(h.pcm().len(), 24 * SPF);
    let mixed_at_interrupt = h.pcm().len();
    h.command(MediaCommand::Interrupt { turn: 1 });
    h.run_until(ms(2000));
    let pcm = h.pcm();
    assert!(pcm[mixed_at_interrupt..].iter().all(|&s| s == 0));
    // A longer lead than the loop's own is capped at SPEECH_LEAD_MS.
    h.media.set_speech_lead(ms(60_000));
    h.command(audio(2, speech(RATE as usize * 5, 4), "Again.", vec![]));
    h.run_until(ms(2500));
    let last = h.sink.frames.last().unwrap();
    assert_eq!(last.media_time - last.produced_at, ms(SPEECH_LEAD_MS));
}

#[test]
fn a_new_turn_takes_over_from_an_unfinished_one() {
    let mut h = Harness::new();
    h.command(audio(1, speech(RATE as usize * 3, 2), "First.", vec![]));
    h.run_until(ms(200));
    let events = h.command(audio(2, speech(RATE as usize, 4), "Second.", vec![]));
    assert!(matches!(
        &events[..],
        [
            Event::TurnComplete {
                turn: 1,
                interrupted: true,
                ..
            },
            Event::Transcript { turn: 2, .. }
        ]
    ));
}

#[test]
fn a_turn_without_audio_completes_at_its_end() {
    let mut h = Harness::new();
    h.run_until(ms(300));
    let events = h.command(MediaCommand::TurnEnd { turn: 4 });
    let [Event::TurnComplete {
        turn: 4,
        interrupted: false,
        spoken,
        windows: None,
        at,
    }] = &events[..]
    else {
        panic!("expected one TurnComplete, got {events:?}");
    };
    assert!(spoken.is_empty());
    assert_eq!(
        *at,
        h.clock.instant(ms(300)),
        "reported at the time passed in"
    );
}

#[test]
fn finish_ends_the_playlist() {
    let mut h = Harness::new();
    h.run_until(ms(1000));
    let out = h.finish();
    assert!(out.unit.is_none());
    assert!(out
        .events
        .iter()
        .any(|e| matches!(e, Event::SegmentPublished { msn: 0 })));
    let ended = out.hls.iter().any(|o| match o {
        Output::Playlist { text, .. } => text.contains("#EXT-X-ENDLIST"),
        _ => false,
    });
    assert!(ended);
    // Commands after the end change nothing.
    assert!(h
        .media
        .handle_command(MediaCommand::TurnEnd { turn: 9 }, h.now)
        .is_empty());
}

#[test]
fn a_stream_that_falls_behind_catches_up_without_skipping_frames() {
    let mut h = Harness::new();
    h.run_until(ms(400));
    // The thread stalled for two seconds: every missed frame is produced, in order, at once.
    h.now = ms(2400);
    let before = h.sink.frames.len();
    h.run_until(ms(2400));
    assert_eq!(h.sink.frames.len(), 61);
    assert!(h.sink.frames[before..]
        .iter()
        .all(|f| f.produced_at == ms(2400)));
    // The frames more than 200 ms late repeat the last picture instead of rendering it.
    let repeated = h.sink.frames[before..]
        .iter()
        .filter(|f| f.kind == Some(FrameKind::Repeated))
        .count();
    // Frames at 440..=2320 ms: from more than 200 ms late until back within one frame (40 ms).
    assert_eq!(repeated, 48);
    assert_eq!(h.media.stats().repeated, 48);
}

/// What producing a frame costs the starved thread, in stream time: rendering takes longer
/// than a frame lasts (40 ms), repeating the last picture does not.
fn starved_cost(kind: Option<FrameKind>) -> Duration {
    match kind {
        Some(FrameKind::Repeated) => ms(12),
        _ => ms(55),
    }
}

#[test]
fn a_starved_stream_stays_on_the_wall_clock_with_continuous_audio() {
    let mut h = Harness::new();
    h.run_until(ms(200));
    let said = speech(RATE as usize * 8, 5); // 8 s of speech
    h.command(audio(1, said.clone(), "a long answer", Vec::new()));
    h.command(MediaCommand::TurnEnd { turn: 1 });
    // The thread is starved: every frame it renders costs more than the frame lasts, so the
    // clock moves on by that cost after each one (as a real overloaded thread sees it).
    let until = ms(12_000);
    let mut worst = Duration::ZERO;
    while h.now < until {
        match h.media.poll(h.now) {
            Step::Produce => {
                let out = h.media.produce(h.now).unwrap();
                h.sink.on_frame(&out, h.media.encoder()).unwrap();
                worst = worst.max(out.behind);
                // The frame's timestamp is its real time: behind it by what `behind` says.
                assert_eq!(h.now.saturating_sub(out.media_time), out.behind);
                h.now += starved_cost(out.kind);
            }
            Step::Wait(due) => h.now = due,
            Step::Finish => break,
        }
    }
    // Never more than the threshold plus one rendered frame behind: no drift.
    assert!(
        worst <= degrade::DEGRADE_AFTER + ms(55),
        "fell {worst:?} behind real time"
    );
    let last = h.sink.frames.last().unwrap();
    assert!(
        h.now.saturating_sub(last.media_time) <= degrade::DEGRADE_AFTER + ms(100),
        "the last frame ({:?}) is near the wall clock ({:?})",
        last.media_time,
        h.now
    );
    // Both kinds happened: it degraded, and rendered whenever it was back on time.
    let stats = h.media.stats();
    assert!(stats.repeated > 0 && stats.rendered > 0, "{stats:?}");
    assert_eq!(
        stats.rendered + stats.repeated,
        h.sink.frames.len() as u64,
        "every frame is counted once"
    );
    // Audio is continuous: every frame's PCM follows the previous one, and the speech is in
    // the stream unchanged, without a gap.
    let pcm = h.pcm();
    let start = first_nonzero(&pcm);
    assert_eq!(&pcm[start..start + said.len()], &said[..]);
    // Media time is constant-rate: frame n at n * 40 ms.
    for (n, f) in h.sink.frames.iter().enumerate() {
        assert_eq!(f.media_time, ms(n as u64 * 40));
    }
}

/// A generator whose windows answer with blank frames at once, or never.
struct FakeGenerator {
    answers: bool,
}

impl VideoGenerator for FakeGenerator {
    fn kind(&self) -> GeneratorKind {
        GeneratorKind::Worker
    }

    fn format(&self) -> StreamFormat {
        StreamFormat {
            width: 64,
            height: 64,
            fps: FPS,
        }
    }

    fn generate(&self, req: WindowRequest, cancel: CancellationToken) -> GenerateFuture<'_> {
        let answers = self.answers;
        Box::pin(async move {
            if !answers {
                cancel.cancelled().await;
            }
            let (first, end) = req.frame_range(FPS);
            Ok(GeneratedWindow {
                index: req.index,
                first_frame: first,
                frames: vec![I420Frame::new(64, 64); (end - first) as usize],
                fps: FPS,
                source: GeneratorKind::Worker,
                timings: WindowTimings::default(),
            })
        })
    }
}

/// A link to `generator` on a current-thread runtime that runs its tasks only when the test
/// drives it (`drive`), so when a window's answer arrives is up to the test.
fn link(generator: FakeGenerator) -> (GeneratorLink, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let link = GeneratorLink {
        generator: Arc::new(generator),
        runtime: rt.handle().clone(),
        ref_image: "ref.png".into(),
        session_id: "s".into(),
        window_ms: 1000,
        overlap_ms: 200,
        buffer_ms: 400,
    };
    (link, rt)
}

fn drive(rt: &tokio::runtime::Runtime) {
    rt.block_on(async {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    });
}

#[test]
fn windows_the_generator_misses_are_rendered_by_the_builtin_face() {
    let (link, _rt) = link(FakeGenerator { answers: false });
    let mut h = Harness::with_generator(Some(link));
    let said = speech(RATE as usize * 2, 6);
    h.command(audio(1, said.clone(), "Hi.", vec![]));
    h.command(MediaCommand::TurnEnd { turn: 1 });
    h.run_until(ms(6000));
    // The buffer (400 ms = 10 frames of silence) comes before the speech.
    let pcm = h.pcm();
    assert_eq!(first_nonzero(&pcm), 10 * SPF);
    assert_eq!(&pcm[10 * SPF..10 * SPF + said.len()], &said[..]);
    let notes = h
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::GeneratorNote { turn: 1, .. }))
        .count();
    assert_eq!(notes, 1, "the first missed window is reported, once");
    let done = h.turn_completes();
    let [(
        _,
        Event::TurnComplete {
            interrupted: false,
            windows: Some((0, missed)),
            ..
        },
    )] = &done[..]
    else {
        panic!("expected one TurnComplete, got {done:?}");
    };
    // 2 s of speech in 800 ms fresh windows: 3 windows, all from the built-in face.
    assert_eq!(*missed, 3);
}

#[test]
fn windows_the_generator_answered_in_time_are_played() {
    let (link, rt) = link(FakeGenerator { answers: true });
    let mut h = Harness::with_generator(Some(link));
    h.command(audio(1, speech(RATE as usize * 2, 6), "Hi.", vec![]));
    h.command(MediaCommand::TurnEnd { turn: 1 });
    // The generator answers every window before its first frame is due.
    drive(&rt);
    h.run_until(ms(6000));
    let done = h.turn_completes();
    let [(
        _,
        Event::TurnComplete {
            windows: Some((used, 0)),
            ..
        },
    )] = &done[..]
    else {
        panic!("expected one TurnComplete, got {done:?}");
    };
    assert_eq!(*used, 3);
    assert!(!h
        .events
        .iter()
        .any(|(_, e)| matches!(e, Event::GeneratorNote { .. })));
}

#[test]
fn with_ll_hls_speech_starts_mid_segment_and_its_first_part_counts() {
    let clock = StreamClock {
        start: Instant::now(),
        start_unix_ms: 1_767_268_800_000,
    };
    let cfg = ChannelConfig {
        part_target_ms: Some(330),
        ..config()
    };
    let mut h = Harness {
        media: MediaLoop::new(cfg, 7, None, None, clock).unwrap(),
        sink: MemorySink::default(),
        now: Duration::ZERO,
        events: Vec::new(),
        clock,
    };
    h.run_until(ms(1000));
    h.command(audio(
        1,
        speech(RATE as usize * 2, 5),
        "A short answer.",
        vec![],
    ));
    h.command(MediaCommand::TurnEnd { turn: 1 });
    h.run_until(ms(8000));
    let segs: Vec<SegmentInfo> = h.segments().into_iter().map(|(_, s)| s).collect();
    // No early cut: every segment but the last has its full length (45 frames, 1.8 s), so hls.js
    // never meets the tiny segments a cut would leave.
    assert!(segs.len() >= 3);
    assert!(
        segs[..segs.len() - 1].iter().all(|s| s.frames == 45),
        "{segs:?}"
    );
    // "speaking" comes with the first part holding speech, well before its segment closes.
    let first_part_with_speech = h
        .events
        .iter()
        .find_map(|(t, e)| matches!(e, Event::FirstSpeakingSegment { turn: 1, .. }).then_some(*t))
        .expect("first speaking part reported");
    assert!(
        first_part_with_speech < ms(1000 + 400),
        "{first_part_with_speech:?}"
    );
    // The turn completes once its last sample is in a published part.
    assert!(h
        .events
        .iter()
        .any(|(_, e)| matches!(e, Event::TurnComplete { turn: 1, .. })));
}

/// A flat-coloured 64x64 portrait with a box manifest (no landmarks needed here).
fn flat_portrait(rgb: [u8; 3]) -> Arc<talkstream_avatar::Portrait> {
    use talkstream_avatar::portrait::FeatureBox;
    let rgba: Vec<u8> = [rgb[0], rgb[1], rgb[2], 255].repeat(64 * 64);
    let manifest = talkstream_avatar::PortraitManifest {
        mouth: FeatureBox::new(32.0, 46.0, 16.0, 4.0),
        left_eye: FeatureBox::new(24.0, 26.0, 8.0, 4.0),
        right_eye: FeatureBox::new(40.0, 26.0, 8.0, 4.0),
    };
    Arc::new(talkstream_avatar::Portrait::from_rgba(64, 64, rgba, manifest).unwrap())
}

/// Share of luma samples within 6 of `luma`.
fn share_near(frame: &I420Frame, luma: u8) -> f64 {
    frame.y.iter().filter(|&&v| v.abs_diff(luma) <= 6).count() as f64 / frame.y.len() as f64
}

#[test]
fn a_new_portrait_mid_turn_shows_at_once_and_the_turn_goes_on() {
    let mut h = Harness::new();
    let said = speech(RATE as usize * 4, 9); // 4 s
    h.command(audio(
        1,
        said.clone(),
        "Hello world.",
        vec![word("Hello", 0, 900), word("world", 1000, 1900)],
    ));
    h.command(MediaCommand::TurnEnd { turn: 1 });
    h.run_until(ms(800));
    // The drawn avatar: hardly any pixel is the photo's grey.
    let grey = 150u8;
    assert!(share_near(h.media.face.last_frame(), grey) < 0.5);
    let portrait = flat_portrait([grey, grey, grey]);
    h.command(MediaCommand::SetFace {
        face: Box::new(talkstream_avatar::Face::new(64, 64, 7, Some(&portrait)).unwrap()),
        ref_image: None,
    });
    h.run_until(ms(900));
    assert!(
        share_near(h.media.face.last_frame(), grey) > 0.9,
        "the frame after the swap is not the portrait"
    );
    // The lip-sync goes on in the new face: its mouth opens during the speech.
    let mut least = 1.0f64;
    for t in (940..2800).step_by(40) {
        h.run_until(ms(t));
        least = least.min(share_near(h.media.face.last_frame(), grey));
    }
    assert!(least < 0.99, "the portrait's mouth never opened");
    h.run_until(ms(10_000));
    // The turn went on to its end in the new face, its audio whole and once.
    let done = h.turn_completes();
    assert_eq!(done.len(), 1);
    let Event::TurnComplete {
        interrupted,
        spoken,
        ..
    } = &done[0].1
    else {
        unreachable!()
    };
    assert!(!interrupted);
    assert_eq!(spoken, "Hello world");
    let pcm = h.pcm();
    let start = first_nonzero(&pcm);
    assert_eq!(&pcm[start..start + said.len()], said.as_slice());
    // Back to the drawn avatar.
    h.command(MediaCommand::SetFace {
        face: Box::new(talkstream_avatar::Face::new(64, 64, 7, None).unwrap()),
        ref_image: None,
    });
    // A face of another size is refused; the drawn one stays.
    h.command(MediaCommand::SetFace {
        face: Box::new(talkstream_avatar::Face::new(32, 32, 7, Some(&portrait)).unwrap()),
        ref_image: None,
    });
    h.run_until(ms(10_200));
    assert!(share_near(h.media.face.last_frame(), grey) < 0.5);
}
