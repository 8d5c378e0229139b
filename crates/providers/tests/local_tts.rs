//! Scenario tests for the local eSpeak NG provider through the streaming TTS contract.

use std::time::{Duration, Instant};

use talkstream_providers::{
    LocalTts, LocalTtsConfig, TtsChunk, TtsError, TtsInput, TtsProvider, WordTiming,
};
use tokio_util::sync::CancellationToken;

const SENTENCE: &str = "The quick brown fox jumps over the lazy dog near the river bank.";

fn tts() -> LocalTts {
    match LocalTts::new(LocalTtsConfig::default()) {
        Ok(tts) => tts,
        Err(e) => panic!("local TTS: {e}"),
    }
}

fn peak(pcm: &[i16]) -> u16 {
    pcm.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0)
}

fn rms(pcm: &[i16]) -> f64 {
    (pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / pcm.len().max(1) as f64).sqrt()
}

fn check_words(words: &[WordTiming], audio_end_ms: u64) {
    let mut last_start = 0;
    for w in words {
        assert!(w.start_ms >= last_start, "not monotonic: {words:?}");
        assert!(w.end_ms >= w.start_ms, "negative word: {w:?}");
        assert!(w.end_ms <= audio_end_ms, "{w:?} beyond {audio_end_ms} ms");
        last_start = w.start_ms;
    }
}

async fn collect(output: &mut talkstream_providers::TtsOutput) -> Vec<TtsChunk> {
    let mut chunks = Vec::new();
    while let Some(item) = tokio::time::timeout(Duration::from_secs(20), output.recv())
        .await
        .ok()
        .flatten()
    {
        match item {
            Ok(chunk) => chunks.push(chunk),
            Err(e) => panic!("TTS error: {e}"),
        }
    }
    chunks
}

#[test]
fn a_sentence_is_audible_at_the_advertised_rate_with_word_timings() {
    let tts = tts();
    assert_eq!(tts.name(), "local");
    assert_eq!(tts.sample_rate(), 22_050);
    let chunk = tts.synthesize_blocking(SENTENCE).unwrap();
    assert_eq!(chunk.sample_rate, tts.sample_rate());
    assert_eq!(chunk.text, SENTENCE);
    let secs = chunk.pcm.len() as f64 / f64::from(chunk.sample_rate);
    assert!((2.0..8.0).contains(&secs), "{secs} s");
    assert!(peak(&chunk.pcm) > 3000, "peak {}", peak(&chunk.pcm));
    assert!(rms(&chunk.pcm) > 500.0, "rms {}", rms(&chunk.pcm));

    let written: Vec<&str> = SENTENCE
        .split_whitespace()
        .map(|w| w.trim_end_matches('.'))
        .collect();
    let timed: Vec<&str> = chunk.words.iter().map(|w| w.text.as_str()).collect();
    assert_eq!(timed, written);
    check_words(&chunk.words, chunk.duration_ms());
    // Words are spread over the speech, not piled up.
    let first = &chunk.words[0];
    let last = &chunk.words[chunk.words.len() - 1];
    assert!(first.start_ms < 200, "{first:?}");
    assert!(last.start_ms > chunk.duration_ms() / 2, "{last:?}");
    assert!(chunk.words.iter().all(|w| w.end_ms > w.start_ms));
}

#[test]
fn settings_change_the_audio() {
    let base = tts().synthesize_blocking("Hello there").unwrap();
    let fast = LocalTts::new(LocalTtsConfig {
        rate_wpm: 300,
        ..Default::default()
    })
    .unwrap()
    .synthesize_blocking("Hello there")
    .unwrap();
    assert!(fast.pcm.len() < base.pcm.len() * 3 / 4);
    for voice in ["en-gb", "en-gb-x-rp", "en-us+f3", "en-029"] {
        let tts = LocalTts::new(LocalTtsConfig {
            voice: voice.into(),
            ..Default::default()
        })
        .unwrap();
        let chunk = tts.synthesize_blocking("Hello there").unwrap();
        assert!(peak(&chunk.pcm) > 2000, "{voice}");
        assert_ne!(chunk.pcm, base.pcm, "{voice}");
    }
}

#[test]
fn bad_config_is_rejected_with_the_field() {
    let bad = [
        (
            "voice",
            LocalTtsConfig {
                voice: "de".into(),
                ..Default::default()
            },
        ),
        (
            "voice",
            LocalTtsConfig {
                voice: "en-us+nosuchvariant".into(),
                ..Default::default()
            },
        ),
        (
            "rate_wpm",
            LocalTtsConfig {
                rate_wpm: 1000,
                ..Default::default()
            },
        ),
        (
            "pitch",
            LocalTtsConfig {
                pitch: 200,
                ..Default::default()
            },
        ),
    ];
    for (field, config) in bad {
        match LocalTts::new(config.clone()) {
            Err(TtsError::InvalidConfig {
                field: f, reason, ..
            }) => {
                assert_eq!(f, field, "{reason}");
            }
            Err(e) => panic!("{config:?}: wrong error {e}"),
            Ok(_) => panic!("{config:?} accepted"),
        }
    }
}

#[test]
fn nothing_speakable_gives_empty_audio() {
    let chunk = tts().synthesize_blocking("  ... ").unwrap();
    assert!(chunk.pcm.is_empty());
    assert!(chunk.words.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_texts_come_out_in_order_and_end_closes_the_output() {
    let tts = tts();
    let mut turn = tts.start_turn(CancellationToken::new());
    let texts = [
        "Hello there, friend.",
        "This is the second chunk",
        "and this one is the third!",
    ];
    for t in texts {
        turn.input.send(TtsInput::Text(t.into())).await.unwrap();
    }
    turn.input.send(TtsInput::Flush).await.unwrap();
    turn.input.send(TtsInput::Text("   ".into())).await.unwrap();
    turn.input.send(TtsInput::End).await.unwrap();
    let chunks = collect(&mut turn.output).await;
    let got: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(got, texts);
    // Word timings are relative to the turn: each chunk's words start where its audio starts.
    let mut turn_ms = 0;
    let mut all_words = Vec::new();
    for chunk in &chunks {
        assert!(peak(&chunk.pcm) > 2000);
        let start = chunk.words[0].start_ms;
        assert!(
            start >= turn_ms && start < turn_ms + 200,
            "{start} vs {turn_ms}"
        );
        turn_ms += chunk.duration_ms();
        all_words.extend(chunk.words.iter().cloned());
    }
    check_words(&all_words, turn_ms + 1);
    assert_eq!(all_words.len(), 14);
    // The output stays closed.
    assert!(turn.output.recv().await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_input_ends_the_turn() {
    let tts = tts();
    let mut turn = tts.start_turn(CancellationToken::new());
    turn.input
        .send(TtsInput::Text("Just one line.".into()))
        .await
        .unwrap();
    drop(turn.input);
    let chunks = collect(&mut turn.output).await;
    assert_eq!(chunks.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_mid_turn_closes_the_output_promptly() {
    let tts = tts();
    let cancel = CancellationToken::new();
    let mut turn = tts.start_turn(cancel.clone());
    for i in 0..40 {
        let text = format!("This is sentence number {i}, and it keeps going for a while.");
        turn.input.send(TtsInput::Text(text)).await.unwrap();
    }
    let first = turn.output.recv().await.unwrap().unwrap();
    assert!(!first.pcm.is_empty());
    cancel.cancel();
    let at = Instant::now();
    // No further chunk, even though more were queued or in flight.
    assert!(turn.output.recv().await.is_none());
    assert!(at.elapsed() < Duration::from_millis(100));
    // The worker drops its ends: the input closes too.
    let closed = tokio::time::timeout(Duration::from_secs(2), turn.input.closed()).await;
    assert!(closed.is_ok(), "turn task did not stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_before_any_audio_yields_nothing() {
    let tts = tts();
    let cancel = CancellationToken::new();
    let mut turn = tts.start_turn(cancel.clone());
    turn.input
        .send(TtsInput::Text(SENTENCE.into()))
        .await
        .unwrap();
    cancel.cancel();
    assert!(turn.output.recv().await.is_none());
}

#[test]
fn start_turn_outside_a_runtime_reports_an_error() {
    let mut turn = tts().start_turn(CancellationToken::new());
    match turn.output.blocking_recv() {
        Some(Err(TtsError::Worker { .. })) => {}
        other => panic!("{other:?}"),
    }
    assert!(turn.output.blocking_recv().is_none());
}

/// Re-runs the `child_*` test below in a child process without `HOME`.
#[test]
fn works_without_home() {
    let exe = std::env::current_exe().unwrap();
    let status = std::process::Command::new(exe)
        .args(["--exact", "child_synthesizes_without_home", "--nocapture"])
        .env_remove("HOME")
        .env("TALKSTREAM_CHILD_TEST", "1")
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn child_synthesizes_without_home() {
    if std::env::var_os("TALKSTREAM_CHILD_TEST").is_none() {
        return;
    }
    assert!(std::env::var_os("HOME").is_none());
    let chunk = tts().synthesize_blocking("No home needed.").unwrap();
    assert!(peak(&chunk.pcm) > 2000);
}

/// Speed in release: `cargo test --release -p talkstream-providers --test local_tts -- --ignored --nocapture`
#[test]
#[ignore = "measurement"]
fn measure_speed() {
    let tts = tts();
    let texts = [
        SENTENCE,
        "Hello there, friend.",
        "Sure! I can help you with that: first, open the settings page, then choose a voice.",
    ];
    for text in texts {
        let runs = 20;
        let started = Instant::now();
        let mut audio_ms = 0;
        for _ in 0..runs {
            audio_ms = tts.synthesize_blocking(text).unwrap().duration_ms();
        }
        let per_run = started.elapsed() / runs;
        println!(
            "{:>3} chars, {audio_ms:>5} ms audio: {:>6.1} ms per synthesis, {:>5.1}x real time",
            text.len(),
            per_run.as_secs_f64() * 1000.0,
            audio_ms as f64 / 1000.0 / per_run.as_secs_f64()
        );
    }
}
