//! Intelligibility and speed of the built-in voices, side by side in one run: each engine (eSpeak
//! NG, Piper) speaks the same sentences, a real recognizer (an OpenAI-compatible
//! `/audio/transcriptions` server, e.g. `./scripts/stt-server.sh --port 0`) transcribes them,
//! and the word error rate against the text is reported with the real-time factor and the time
//! from the chunker's first chunk to its audio.
//!
//! ```sh
//! ./scripts/stt-server.sh --port 0            # prints: stt server ready on http://127.0.0.1:PORT/v1
//! cargo build --release -p talkstream --example voice_wer
//! taskset -c 0 target/release/examples/voice_wer http://127.0.0.1:PORT/v1
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use talkstream_providers::{
    default_piper_dir, Chunker, ChunkerConfig, LocalTts, LocalTtsConfig, OpenAiStt,
    OpenAiSttConfig, PiperConfig, PiperTts, TtsInput, TtsProvider, DEFAULT_ORT_LIBRARY,
    DEFAULT_PIPER_VOICE,
};
use tokio_util::sync::CancellationToken;

/// Everyday sentences of an assistant, without digits (so the reference needs no number words).
const SENTENCES: &[&str] = &[
    "What is the capital of France?",
    "The capital of France is Paris, a city on the river Seine.",
    "Good morning, how can I help you today?",
    "Please close the window before you leave the room.",
    "The weather tomorrow will be cold and windy, with rain in the evening.",
    "I have booked a table for two at the Italian restaurant.",
    "Could you tell me where the nearest train station is?",
    "Turn left at the bakery and walk straight on for five minutes.",
    "My favourite colour is green, like the leaves in spring.",
    "The meeting has been moved to Thursday afternoon.",
    "She bought a new bicycle and rode it to work.",
    "Water boils at one hundred degrees at sea level.",
    "Remember to drink enough water during the day.",
    "The library opens at nine and closes at six.",
    "A good night of sleep helps you think more clearly.",
    "He plays the guitar in a small band on weekends.",
    "Do you want tea or coffee with your breakfast?",
    "The children are building a sandcastle on the beach.",
    "Your package will arrive on Monday morning.",
    "Thank you for waiting, the doctor will see you now.",
    "Mount Everest is the highest mountain in the world.",
    "We need milk, eggs, bread and a little cheese.",
    "The museum is free for students on Sundays.",
    "I am sorry, I did not understand the question.",
];

fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .replace("favorite", "favourite")
        .replace("color", "colour")
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Word-level edit distance between the reference and the hypothesis.
fn word_errors(reference: &[String], hypothesis: &[String]) -> usize {
    let mut row: Vec<usize> = (0..=hypothesis.len()).collect();
    for (i, r) in reference.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, h) in hypothesis.iter().enumerate() {
            let substitute = prev + usize::from(r != h);
            prev = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(prev + 1);
        }
    }
    row[hypothesis.len()]
}

/// The first chunk the server's chunker (default settings) sends to the voice when the whole
/// sentence arrives at once, as a typed prompt does.
fn first_chunk(text: &str) -> String {
    let mut chunker = Chunker::new(ChunkerConfig::default());
    let mut chunks = chunker.push(text, 0);
    chunks.extend(chunker.finish());
    chunks.into_iter().next().unwrap_or_default()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

/// Time from the chunker's first chunk entering a turn to the turn's first audio, as a session
/// sees it (a provider may speak a long first chunk in parts to start sooner).
async fn first_audio(voice: &dyn TtsProvider, chunk: &str) -> anyhow::Result<Duration> {
    let mut turn = voice.start_turn(CancellationToken::new());
    let t = Instant::now();
    turn.input.send(TtsInput::Text(chunk.to_string())).await?;
    turn.input.send(TtsInput::End).await?;
    match turn.output.recv().await {
        Some(Ok(_)) => Ok(t.elapsed()),
        Some(Err(e)) => Err(e.into()),
        None => anyhow::bail!("the turn ended without audio"),
    }
}

/// Speaks `text` in one turn; the whole audio.
async fn speak(voice: &dyn TtsProvider, text: &str) -> anyhow::Result<Vec<i16>> {
    let mut turn = voice.start_turn(CancellationToken::new());
    turn.input.send(TtsInput::Text(text.to_string())).await?;
    turn.input.send(TtsInput::End).await?;
    let mut pcm = Vec::new();
    while let Some(item) = turn.output.recv().await {
        pcm.extend(item?.pcm);
    }
    Ok(pcm)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let base_url = std::env::args().nth(1).ok_or_else(|| {
        anyhow::anyhow!("usage: voice_wer STT_BASE_URL (e.g. http://127.0.0.1:8178/v1)")
    })?;
    let stt = OpenAiStt::new(OpenAiSttConfig {
        base_url,
        language: Some("en".to_string()),
        ..OpenAiSttConfig::default()
    })?;

    let started = Instant::now();
    let espeak = LocalTts::new(LocalTtsConfig::default())?;
    let espeak_load = started.elapsed();
    let dir = default_piper_dir().unwrap_or_default();
    let piper_config = PiperConfig::new(
        std::env::var_os("PIPER_VOICE").map_or_else(|| dir.join(DEFAULT_PIPER_VOICE), Into::into),
        std::env::var_os("ORT_DYLIB_PATH")
            .map_or_else(|| dir.join(DEFAULT_ORT_LIBRARY), Into::into),
    );
    let piper = PiperTts::new(piper_config)?;
    let piper_load = piper.load_time();
    let engines: Vec<(&str, Duration, Arc<dyn TtsProvider>)> = vec![
        ("eSpeak NG", espeak_load, Arc::new(espeak)),
        ("Piper joe-medium", piper_load, Arc::new(piper)),
    ];

    println!("| voice | WER ({} sentences) | real-time factor | first chunk → audio, median / p95 | load |", SENTENCES.len());
    println!("|---|---|---|---|---|");
    let mut examples = Vec::new();
    for (name, load, voice) in &engines {
        let (mut errors, mut total_words) = (0, 0);
        let (mut synth_time, mut audio_time) = (Duration::ZERO, Duration::ZERO);
        let mut firsts = Vec::new();
        for &sentence in SENTENCES {
            firsts.push(first_audio(voice.as_ref(), &first_chunk(sentence)).await?);
            let t = Instant::now();
            let pcm = speak(voice.as_ref(), sentence).await?;
            synth_time += t.elapsed();
            let rate = voice.sample_rate();
            audio_time += Duration::from_secs_f64(pcm.len() as f64 / f64::from(rate));
            let heard = stt
                .transcribe(&pcm, rate, &CancellationToken::new())
                .await?;
            let (reference, hypothesis) = (words(sentence), words(&heard));
            let e = word_errors(&reference, &hypothesis);
            errors += e;
            total_words += reference.len();
            if e > 0 && examples.len() < 12 {
                examples.push(format!("{name}: {sentence:?} → {heard:?}"));
            }
        }
        firsts.sort();
        println!(
            "| {name} | **{:.1} %** ({errors}/{total_words} words) | {:.3} ({:.0}× real time) | {} / {} ms | {} ms |",
            100.0 * errors as f64 / total_words as f64,
            synth_time.as_secs_f64() / audio_time.as_secs_f64(),
            audio_time.as_secs_f64() / synth_time.as_secs_f64(),
            percentile(&firsts, 0.5).as_millis(),
            percentile(&firsts, 0.95).as_millis(),
            load.as_millis(),
        );
    }
    println!();
    for line in examples {
        println!("- {line}");
    }
    Ok(())
}
