//! The detector on generated audio: the built-in voice's speech placed between silences and
//! under noise, so where the speech really is (the truth) is known to the sample.

use super::*;
use crate::{LocalTts, LocalTtsConfig, Resampler};

/// The built-in voice saying `text` at 16 kHz, trimmed to where its sound is (|x| > 1 %).
fn speech(text: &str) -> Vec<i16> {
    let tts = LocalTts::new(LocalTtsConfig::default()).expect("the built-in voice");
    let chunk = tts.synthesize_blocking(text).expect("speech");
    let mut r = Resampler::new(chunk.sample_rate, VAD_SAMPLE_RATE).expect("resampler");
    let mut pcm = r.process(&chunk.pcm);
    pcm.extend(r.finish());
    let loud = |x: &i16| x.unsigned_abs() > 328;
    let first = pcm.iter().position(loud).expect("some sound");
    let last = pcm.iter().rposition(loud).expect("some sound");
    pcm[first..=last].to_vec()
}

/// Deterministic white noise at `level` (peak, of full scale).
fn noise(samples: usize, level: f32, seed: u32) -> Vec<i16> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..samples)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let u = (x as f32 / u32::MAX as f32) * 2.0 - 1.0;
            (u * level * 32767.0) as i16
        })
        .collect()
}

fn ms(n: u32) -> usize {
    samples_for(n)
}

/// A timeline built piece by piece, with the truth of where speech is.
#[derive(Default)]
struct Timeline {
    pcm: Vec<i16>,
    truth: Vec<(u64, u64)>,
}

impl Timeline {
    fn silence(mut self, n: u32) -> Self {
        self.pcm.extend(std::iter::repeat_n(0, ms(n)));
        self
    }
    fn speech(mut self, clip: &[i16]) -> Self {
        let start = ms_of(self.pcm.len() as u64);
        self.pcm.extend_from_slice(clip);
        self.truth.push((start, ms_of(self.pcm.len() as u64)));
        self
    }
    /// Noise added under everything so far.
    fn with_noise(mut self, level: f32) -> Self {
        let n = noise(self.pcm.len(), level, 7);
        for (s, n) in self.pcm.iter_mut().zip(n) {
            *s = s.saturating_add(n);
        }
        self
    }
}

/// Feed `pcm` in 32 ms blocks (as the page sends it); events with the ms they came at.
fn run(vad: &mut Vad, pcm: &[i16]) -> Vec<(u64, VadEvent)> {
    let mut out = Vec::new();
    for block in pcm.chunks(512) {
        for e in vad.push(block) {
            out.push((vad.position_ms(), e));
        }
    }
    out
}

fn utterances(events: &[(u64, VadEvent)]) -> Vec<&Utterance> {
    events
        .iter()
        .filter_map(|(_, e)| match e {
            VadEvent::Stopped(u) => Some(u),
            VadEvent::Started { .. } => None,
        })
        .collect()
}

fn near(found: u64, truth: u64, what: &str) {
    let diff = found.abs_diff(truth);
    assert!(diff <= 100, "{what}: found {found} ms, truth {truth} ms");
}

#[test]
fn two_sentences_between_silences_are_two_utterances_placed_within_100_ms() {
    let a = speech("Hello there. How are you doing today?");
    let b = speech("Tell me something about the moon.");
    let t = Timeline::default()
        .silence(1000)
        .speech(&a)
        .silence(1500)
        .speech(&b)
        .silence(1500);
    for level in [0.0, 0.01] {
        let t = Timeline {
            pcm: t.pcm.clone(),
            truth: t.truth.clone(),
        }
        .with_noise(level);
        let mut vad = Vad::new(VadSettings::default(), VadMode::HandsFree);
        let events = run(&mut vad, &t.pcm);
        let found = utterances(&events);
        assert_eq!(found.len(), 2, "noise {level}: {events:?}");
        for (u, (start, end)) in found.iter().zip(&t.truth) {
            near(u.speech_start_ms, *start, "start");
            near(u.speech_end_ms, *end, "end");
            assert_eq!(u.reason, EndReason::Silence);
            // The pre-roll: ~300 ms before the first speech frame are in the audio (which ends
            // TAIL_MS after the last speech frame, before the lag correction).
            let audio_start = u.speech_end_ms + 48 + TAIL_MS as u64 - u.duration_ms();
            near(audio_start + 300, u.speech_start_ms, "pre-roll");
            assert!(u.has_speech(&VadSettings::default()));
        }
        // Each start is reported once, min_speech_ms after the speech began (±100 ms), and
        // each end silence_ms after the speech ended.
        let starts: Vec<u64> = events
            .iter()
            .filter(|(_, e)| matches!(e, VadEvent::Started { .. }))
            .map(|(at, _)| *at)
            .collect();
        assert_eq!(starts.len(), 2);
        for (at, (start, _)) in starts.iter().zip(&t.truth) {
            near(*at, start + 160, "started reported");
        }
        for (at, e) in &events {
            if let VadEvent::Stopped(u) = e {
                // Reported silence_ms after the end of speech, to within one 32 ms block.
                assert!(
                    at.abs_diff(u.speech_end_ms + 600) <= 32,
                    "stopped at {at}: {u:?}"
                );
            }
        }
    }
}

#[test]
fn noise_alone_starts_nothing() {
    for (level, seed) in [(0.005, 1), (0.03, 2), (0.1, 3), (0.3, 4)] {
        let mut vad = Vad::new(VadSettings::default(), VadMode::HandsFree);
        let events = run(&mut vad, &noise(ms(10_000), level, seed));
        assert!(events.is_empty(), "noise at {level}: {events:?}");
    }
}

#[test]
fn a_click_or_a_cough_starts_nothing() {
    let mut pcm = vec![0i16; ms(500)];
    // A 40 ms burst (a click or a cough), then silence.
    pcm.extend(noise(ms(40), 0.8, 9));
    pcm.extend(std::iter::repeat_n(0, ms(1500)));
    // A 60 ms vowel-like buzz.
    pcm.extend((0..ms(60)).map(|i| ((i as f32 * 0.1).sin() * 12000.0) as i16));
    pcm.extend(std::iter::repeat_n(0, ms(1500)));
    let mut vad = Vad::new(VadSettings::default(), VadMode::HandsFree);
    let events = run(&mut vad, &pcm);
    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn a_long_utterance_is_cut_at_the_longest_length_and_speech_goes_on_in_a_new_one() {
    let clip = speech("This sentence goes on and on for rather a long while, longer than allowed.");
    assert!(clip.len() > ms(2500), "the clip is long enough");
    let settings = VadSettings {
        max_utterance_ms: 1500,
        ..VadSettings::default()
    };
    let mut vad = Vad::new(settings, VadMode::HandsFree);
    let t = Timeline::default().silence(500).speech(&clip).silence(1000);
    let events = run(&mut vad, &t.pcm);
    let found = utterances(&events);
    assert!(found.len() >= 2, "{events:?}");
    assert_eq!(found[0].reason, EndReason::MaxLength);
    assert!(
        found.iter().all(|u| u.duration_ms() <= 1500 + 32),
        "{found:?}"
    );
    // The speech after the cut is heard too, up to the clip's end.
    let last = found.last().map_or(0, |u| u.speech_end_ms);
    near(last, t.truth[0].1, "last speech end");
}

#[test]
fn speech_ms_grows_while_the_user_speaks_for_barge_in() {
    let clip = speech("Wait, stop talking please, I have a question.");
    let mut vad = Vad::new(VadSettings::default(), VadMode::HandsFree);
    assert_eq!(vad.speech_ms(), None);
    let t = Timeline::default().silence(300).speech(&clip);
    let mut seen = Vec::new();
    for block in t.pcm.chunks(512) {
        vad.push(block);
        seen.extend(vad.speech_ms());
    }
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert!(seen.first().is_some_and(|&m| m >= 160));
    assert!(seen.last().is_some_and(|&m| m >= 500), "{seen:?}");
}

#[test]
fn push_to_talk_keeps_everything_between_press_and_release() {
    let clip = speech("What time is it?");
    let mut vad = Vad::new(VadSettings::default(), VadMode::PushToTalk);
    // Before the press nothing is kept.
    assert!(run(&mut vad, &vec![0; ms(500)]).is_empty());
    vad.begin();
    let t = Timeline::default().silence(400).speech(&clip).silence(900);
    let events = run(&mut vad, &t.pcm);
    // Silence does not end it; the start is reported.
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(matches!(events[0].1, VadEvent::Started { .. }));
    let u = vad.end().expect("an utterance");
    assert_eq!(u.reason, EndReason::Ended);
    assert_eq!(u.samples.len(), t.pcm.len());
    assert!(u.has_speech(vad.settings()));
    near(u.speech_start_ms, 500 + t.truth[0].0, "start");
    near(u.speech_end_ms, 500 + t.truth[0].1, "end");
    // Released again with nothing pressed: nothing.
    assert_eq!(vad.end(), None);
}

#[test]
fn push_to_talk_held_in_silence_has_no_speech() {
    let mut vad = Vad::new(VadSettings::default(), VadMode::PushToTalk);
    vad.begin();
    run(&mut vad, &noise(ms(1200), 0.01, 5));
    let u = vad.end().expect("the held audio");
    assert!(!u.has_speech(vad.settings()));
    assert_eq!(u.samples.len(), ms(1200));
}

#[test]
fn hands_free_end_returns_an_utterance_only_once_one_started() {
    let clip = speech("Good morning to you.");
    let mut vad = Vad::new(VadSettings::default(), VadMode::HandsFree);
    run(&mut vad, &vec![0; ms(300)]);
    assert_eq!(vad.end(), None);
    let t = Timeline::default().speech(&clip);
    run(&mut vad, &t.pcm[..t.pcm.len() / 2]);
    let u = vad.end().expect("the utterance so far");
    assert_eq!(u.reason, EndReason::Ended);
}
