//! The Piper voice for real: the installed model and ONNX Runtime (scripts/piper-voice.sh, which
//! scripts/test.sh runs first; PIPER_VOICE / ORT_DYLIB_PATH point elsewhere). These tests fail,
//! never skip, when the files are missing.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use talkstream_providers::{
    default_piper_dir, PiperConfig, PiperError, PiperTts, TtsInput, TtsProvider,
    DEFAULT_ORT_LIBRARY, DEFAULT_PIPER_VOICE,
};
use tokio_util::sync::CancellationToken;

fn config() -> PiperConfig {
    let dir = default_piper_dir().unwrap_or_default();
    let path = |var: &str, name: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .unwrap_or_else(|| dir.join(name))
    };
    let config = PiperConfig::new(
        path("PIPER_VOICE", DEFAULT_PIPER_VOICE),
        path("ORT_DYLIB_PATH", DEFAULT_ORT_LIBRARY),
    );
    for file in [&config.model, &config.config_path(), &config.runtime] {
        assert!(
            file.is_file(),
            "{} is missing: run ./scripts/piper-voice.sh (scripts/test.sh does)",
            file.display()
        );
    }
    config
}

/// One loaded voice for all tests of this binary (as one server shares it).
fn voice() -> &'static PiperTts {
    static VOICE: OnceLock<PiperTts> = OnceLock::new();
    VOICE.get_or_init(|| PiperTts::new(config()).expect("the installed Piper voice loads"))
}

fn rms(pcm: &[i16]) -> f64 {
    if pcm.is_empty() {
        return 0.0;
    }
    (pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / pcm.len() as f64).sqrt()
}

#[test]
fn a_sentence_gives_speech_where_the_words_are() {
    let text = "The quick brown fox jumps over the lazy dog.";
    let chunk = voice().synthesize_blocking(text).unwrap();
    let rate = chunk.sample_rate as usize;
    assert_eq!(rate, 22_050);
    // Nine words at a natural pace (2–4 words a second), plus the sentence's pause.
    let seconds = chunk.pcm.len() as f64 / rate as f64;
    assert!((1.8..5.0).contains(&seconds), "{seconds} s");

    // Quiet at both ends (the first 20 ms; the pause after the sentence).
    let edge = rate / 50;
    assert!(
        rms(&chunk.pcm[..edge]) < 300.0,
        "{}",
        rms(&chunk.pcm[..edge])
    );
    let tail = &chunk.pcm[chunk.pcm.len() - edge..];
    assert!(rms(tail) < 100.0, "{}", rms(tail));

    // Every word is timed, in order, inside the audio, and the words' spans hold the speech.
    let words: Vec<&str> = chunk.words.iter().map(|w| w.text.as_str()).collect();
    assert_eq!(
        words,
        ["The", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog"]
    );
    let energy = |pcm: &[i16]| pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>();
    let mut last_end = 0;
    let mut spoken = 0.0;
    for w in &chunk.words {
        assert!(w.start_ms >= last_end && w.end_ms > w.start_ms, "{w:?}");
        last_end = w.end_ms;
        let (a, b) = (
            w.start_ms as usize * rate / 1000,
            (w.end_ms as usize * rate / 1000).min(chunk.pcm.len()),
        );
        spoken += energy(&chunk.pcm[a..b]);
    }
    let share = spoken / energy(&chunk.pcm);
    assert!(
        share > 0.9,
        "the words' spans hold {share:.2} of the energy"
    );
    assert!(chunk.words.last().unwrap().end_ms as f64 <= seconds * 1000.0);
}

#[test]
fn longer_text_gives_longer_speech() {
    let short = voice().synthesize_blocking("Yes.").unwrap();
    let long = voice()
        .synthesize_blocking("Yes, and then we walked all the way home through the park.")
        .unwrap();
    assert!(short.duration_ms() > 200, "{}", short.duration_ms());
    assert!(
        long.duration_ms() > short.duration_ms() * 3,
        "{} vs {}",
        long.duration_ms(),
        short.duration_ms()
    );
}

#[test]
fn a_corrupt_model_is_refused_with_its_path() {
    let good = config();
    let dir = std::env::temp_dir().join(format!("talkstream-piper-corrupt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("broken.onnx");
    std::fs::write(&model, b"this is not an ONNX model").unwrap();
    std::fs::copy(good.config_path(), dir.join("broken.onnx.json")).unwrap();
    let result = PiperTts::new(PiperConfig::new(&model, &good.runtime));
    std::fs::remove_dir_all(&dir).ok();
    match result {
        Err(e @ PiperError::Model { .. }) => {
            assert!(e.to_string().contains("broken.onnx"), "{e}")
        }
        other => panic!("{other:?}"),
    }
}

/// A cancelled turn stops its inference: the shared model is free again long before the
/// sentence would have been finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_turn_stops_inference() {
    let tts = voice().clone();
    let text = "This is a long sentence without any pause in it that goes on and on about \
                the weather and the trains and the price of bread in the old town market \
                so that the voice has a lot of work to do before any audio comes out";
    let full = {
        let tts = tts.clone();
        let started = Instant::now();
        tokio::task::spawn_blocking(move || tts.synthesize_blocking(text))
            .await
            .unwrap()
            .unwrap();
        started.elapsed()
    };
    assert!(
        full > Duration::from_millis(150),
        "{full:?}: too fast to measure"
    );

    let cancel = CancellationToken::new();
    let mut turn = tts.start_turn(cancel.clone());
    turn.input.send(TtsInput::Text(text.into())).await.unwrap();
    tokio::time::sleep(full / 5).await;
    cancel.cancel();
    let cancelled_at = Instant::now();
    assert!(turn.output.recv().await.is_none());
    // The model takes one inference at a time: this waits for the cancelled one to end.
    let after = {
        let tts = tts.clone();
        tokio::task::spawn_blocking(move || tts.synthesize_blocking("ok"))
    };
    after.await.unwrap().unwrap();
    let freed = cancelled_at.elapsed();
    assert!(
        freed < full / 2,
        "the model was busy {freed:?} after the cancel (a whole inference takes {full:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_streams_each_text_with_running_word_times() {
    let tts = voice().clone();
    let mut turn = tts.start_turn(CancellationToken::new());
    for text in ["Hello there,", "how are you today?"] {
        turn.input.send(TtsInput::Text(text.into())).await.unwrap();
    }
    turn.input.send(TtsInput::End).await.unwrap();
    let first = turn.output.recv().await.unwrap().unwrap();
    let second = turn.output.recv().await.unwrap().unwrap();
    assert!(turn.output.recv().await.is_none());
    assert_eq!(first.text, "Hello there,");
    assert!(second.words[0].start_ms >= first.duration_ms());
    assert_eq!(tts.name(), "piper");
    assert!(tts.check().await.unwrap().contains("ONNX Runtime"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_first_text_is_spoken_in_growing_pieces_that_add_up_to_it() {
    let tts = voice().clone();
    let mut turn = tts.start_turn(CancellationToken::new());
    let text = "The quick brown fox jumps over the lazy dog by the river today.";
    turn.input.send(TtsInput::Text(text.into())).await.unwrap();
    turn.input.send(TtsInput::End).await.unwrap();
    let mut pieces = Vec::new();
    while let Some(chunk) = turn.output.recv().await {
        pieces.push(chunk.unwrap());
    }
    let texts: Vec<&str> = pieces.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "The quick",
            "brown fox jumps over the",
            "lazy dog by the river today."
        ]
    );
    // The first piece is short (so it comes quickly); the word times run on across pieces.
    assert!(
        pieces[0].duration_ms() < 1500,
        "{} ms",
        pieces[0].duration_ms()
    );
    let starts: Vec<u64> = pieces
        .iter()
        .flat_map(|c| c.words.iter().map(|w| w.start_ms))
        .collect();
    assert_eq!(starts.len(), 13, "every word timed once");
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{starts:?}");
}
