//! What voice activity detection costs per listening session: the built-in voice's speech with
//! pauses (60 s at 16 kHz) pushed through `Vad` in 32 ms frames, as the page sends them, timed.
//!
//!     cargo run --release -p talkstream-providers --example vad_cost
//!
//! Prints the CPU time per second of microphone audio (one core; the process is single-threaded
//! here, so wall time on an idle machine is CPU time).

use std::time::Instant;

use talkstream_providers::vad::{Vad, VadEvent, VadMode, VadSettings, VAD_SAMPLE_RATE};
use talkstream_providers::{LocalTts, LocalTtsConfig, Resampler};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tts = LocalTts::new(LocalTtsConfig::default())?;
    let chunk = tts.synthesize_blocking(
        "Hello there, how are you today? I would like to ask you a question about the weather.",
    )?;
    let mut r = Resampler::new(chunk.sample_rate, VAD_SAMPLE_RATE)?;
    let mut speech = r.process(&chunk.pcm);
    speech.extend(r.finish());
    let mut audio = Vec::new();
    while audio.len() < 60 * VAD_SAMPLE_RATE as usize {
        audio.extend(&speech);
        audio.extend(std::iter::repeat_n(0i16, VAD_SAMPLE_RATE as usize));
    }
    let seconds = audio.len() as f64 / f64::from(VAD_SAMPLE_RATE);
    let mut best = f64::MAX;
    let mut utterances = 0;
    for _ in 0..5 {
        let mut vad = Vad::new(VadSettings::default(), VadMode::HandsFree);
        let started = Instant::now();
        utterances = 0;
        for frame in audio.chunks(512) {
            utterances += vad
                .push(frame)
                .iter()
                .filter(|e| matches!(e, VadEvent::Stopped(_)))
                .count();
        }
        best = best.min(started.elapsed().as_secs_f64());
    }
    println!(
        "{seconds:.0} s of microphone audio ({utterances} utterances) in {:.1} ms (best of 5): {:.2} ms of CPU per second of audio, {:.3} % of one core",
        best * 1000.0,
        best * 1000.0 / seconds,
        best / seconds * 100.0
    );
    Ok(())
}
