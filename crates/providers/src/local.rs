//! The embedded local TTS: eSpeak NG (pure-Rust port, `espeak-ng` 0.2.0) with its English data
//! bundled into the binary. No network, no downloaded weights. Output: mono s16 at 22 050 Hz.
//!
//! Each [`TtsInput::Text`] of a turn is synthesized on tokio's blocking pool as soon as it
//! arrives, and its audio is sent as one [`TtsChunk`] with word timings. eSpeak's own
//! end-of-utterance silence is removed; a short pause is added after a chunk that ends a
//! sentence or clause, so chunked text still sounds phrased. Cancelling a turn stops synthesis
//! at the next clause boundary inside the engine and drops text not yet spoken.

pub(crate) mod align;
pub(crate) mod data;

use std::path::PathBuf;
use std::sync::Arc;

use espeak_ng::{EspeakNg, EventKind, Parameter};
use tokio_util::sync::CancellationToken;

use crate::chunker::has_speakable;
use crate::tts::{
    speak_each_text, CheckFuture, SynthesizeText, TtsChunk, TtsError, TtsProvider, TtsTurn,
    TurnWorker, WordTiming,
};

/// Voices of the bundled English data: `(tag, description)`.
///
/// A voice may carry a `+variant` suffix that changes the speaker (for example `en-us+f3`,
/// `en-gb+m3`): `f1`–`f5`, `m1`–`m8`, `klatt`…`klatt6`, `whisper`, `croak` and the other files
/// of eSpeak NG's `voices/!v` folder.
pub const LOCAL_VOICES: &[(&str, &str)] = &[
    ("en-us", "English (America)"),
    ("en", "English (Great Britain)"),
    ("en-gb", "English (Great Britain)"),
    ("en-gb-x-rp", "English (Received Pronunciation)"),
    ("en-gb-scotland", "English (Scotland)"),
    ("en-gb-x-gbclan", "English (Lancaster)"),
    ("en-gb-x-gbcwmd", "English (West Midlands)"),
    ("en-us-nyc", "English (America, New York City)"),
    ("en-029", "English (Caribbean)"),
];

/// Settings of the local TTS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTtsConfig {
    /// Voice tag from [`LOCAL_VOICES`], optionally with a `+variant` (case-insensitive).
    pub voice: String,
    /// Speaking rate in words per minute, 80–450.
    pub rate_wpm: u32,
    /// Base pitch, 0–99 (50 is the voice's normal pitch).
    pub pitch: u8,
}

impl Default for LocalTtsConfig {
    fn default() -> Self {
        Self {
            voice: "en-us".to_string(),
            rate_wpm: 165,
            pitch: 50,
        }
    }
}

impl LocalTtsConfig {
    /// Checks every setting; the error names the setting and what is accepted.
    pub fn validate(&self) -> Result<(), TtsError> {
        self.split_voice().map(|_| ())?;
        if !(80..=450).contains(&self.rate_wpm) {
            return Err(invalid(
                "rate_wpm",
                format!("{} words per minute is outside 80..=450", self.rate_wpm),
            ));
        }
        if self.pitch > 99 {
            return Err(invalid(
                "pitch",
                format!("{} is outside 0..=99", self.pitch),
            ));
        }
        Ok(())
    }

    /// The voice tag (lower case) and its variant, checked.
    fn split_voice(&self) -> Result<(String, Option<String>), TtsError> {
        let voice = self.voice.trim();
        let (tag, variant) = match voice.split_once('+') {
            Some((tag, variant)) => (tag, Some(variant)),
            None => (voice, None),
        };
        let tag = tag.to_ascii_lowercase();
        if !LOCAL_VOICES.iter().any(|(t, _)| *t == tag) {
            let known: Vec<&str> = LOCAL_VOICES.iter().map(|(t, _)| *t).collect();
            return Err(invalid(
                "voice",
                format!("unknown voice {voice:?}; known: {}", known.join(", ")),
            ));
        }
        if let Some(v) = variant {
            let plain = !v.is_empty()
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == ' ');
            if !plain {
                return Err(invalid(
                    "voice",
                    format!("variant {v:?} must be a plain name such as f3 or m3"),
                ));
            }
        }
        Ok((tag, variant.map(str::to_string)))
    }
}

fn invalid(field: &'static str, reason: String) -> TtsError {
    TtsError::InvalidConfig {
        provider: LocalTts::NAME,
        field,
        reason,
    }
}

/// The local eSpeak NG provider; cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct LocalTts {
    inner: Arc<Engine>,
}

/// Everything a synthesis call needs; shared with blocking tasks.
#[derive(Debug)]
struct Engine {
    config: LocalTtsConfig,
    /// Tag as eSpeak takes it (`en-us+f3`).
    voice: String,
    data_dir: PathBuf,
}

impl LocalTts {
    /// Provider name.
    pub const NAME: &'static str = "local";
    /// Sample rate of the audio eSpeak NG produces.
    pub const SAMPLE_RATE: u32 = 22_050;

    /// Validates `config`, unpacks the voice data (once per process) and checks that the voice
    /// speaks. Blocks for a few tens of milliseconds the first time.
    pub fn new(config: LocalTtsConfig) -> Result<Self, TtsError> {
        config.validate()?;
        let (tag, variant) = config.split_voice()?;
        let data_dir = data::data_dir()?;
        let voice = match &variant {
            Some(v) => {
                let file = data_dir.join("voices").join("!v").join(v);
                if !file.is_file() {
                    return Err(invalid(
                        "voice",
                        format!("variant {v:?} not found ({} is missing)", file.display()),
                    ));
                }
                format!("{tag}+{v}")
            }
            None => tag,
        };
        let tts = Self {
            inner: Arc::new(Engine {
                config,
                voice,
                data_dir,
            }),
        };
        // Fail now rather than in the first turn.
        tts.synthesize_blocking("ok")?;
        Ok(tts)
    }

    /// The settings this provider runs with.
    pub fn config(&self) -> &LocalTtsConfig {
        &self.inner.config
    }

    /// Remove the voice data this process unpacked into the temp folder. Call once at exit,
    /// when no local TTS will speak again in this process.
    pub fn remove_unpacked_data() {
        data::remove_own();
    }

    /// Synthesizes `text` on the calling thread (for offline rendering). Word timings start at
    /// the beginning of the returned audio. Text with nothing speakable gives empty audio.
    pub fn synthesize_blocking(&self, text: &str) -> Result<TtsChunk, TtsError> {
        match self.inner.synthesize(text, 0, None)? {
            Some(chunk) => Ok(chunk),
            None => Err(TtsError::Cancelled {
                provider: Self::NAME,
            }),
        }
    }
}

impl TtsProvider for LocalTts {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn sample_rate(&self) -> u32 {
        Self::SAMPLE_RATE
    }

    fn describe(&self) -> String {
        format!("built-in ({})", self.inner.config.voice)
    }

    fn check(&self) -> CheckFuture<'_, TtsError> {
        let tts = self.clone();
        Box::pin(async move {
            // eSpeak NG blocks its thread: synthesize on the blocking pool.
            let chunk = tokio::task::spawn_blocking(move || tts.synthesize_blocking("ok"))
                .await
                .map_err(|e| TtsError::Worker {
                    provider: Self::NAME,
                    reason: format!("the check's synthesis task failed: {e}"),
                })??;
            Ok(format!(
                "synthesized {} ms of audio offline",
                chunk.duration_ms()
            ))
        })
    }

    fn start_turn(&self, cancel: CancellationToken) -> TtsTurn {
        let inner = self.inner.clone();
        TtsTurn::spawn(Self::NAME, cancel, move |worker| run_turn(inner, worker))
    }
}

/// One turn: each text synthesized as it arrives ([`speak_each_text`]); the engine stops at its
/// next clause when the turn is cancelled.
async fn run_turn(engine: Arc<Engine>, worker: TurnWorker) {
    let cancel = worker.cancel.clone();
    let synthesize: SynthesizeText =
        Arc::new(move |text, offset| engine.synthesize(text, offset, Some(&cancel)));
    speak_each_text(LocalTts::NAME, worker, |_, _| None, synthesize).await;
}

impl Engine {
    /// Synthesizes `text`; word times are offset by `offset_samples` (the turn's audio so far).
    /// `Ok(None)` when `cancel` fired during synthesis.
    fn synthesize(
        &self,
        text: &str,
        offset_samples: u64,
        cancel: Option<&CancellationToken>,
    ) -> Result<Option<TtsChunk>, TtsError> {
        let rate = LocalTts::SAMPLE_RATE;
        let mut chunk = TtsChunk::empty(rate, text);
        if !has_speakable(text) {
            return Ok(Some(chunk));
        }
        let failed = |reason: String| TtsError::Synthesis {
            provider: LocalTts::NAME,
            text: shorten(text),
            reason,
        };
        let mut engine = EspeakNg::with_data_dir(&self.voice, &self.data_dir)
            .map_err(|e| failed(e.to_string()))?;
        engine.set_parameter(Parameter::Rate, self.config.rate_wpm as i32);
        engine.set_parameter(Parameter::Pitch, i32::from(self.config.pitch));
        engine.set_no_final_pause(true);

        let mut marks_ms = Vec::new();
        let mut cancelled = false;
        engine
            .synth_streaming_with_events(text, |samples, is_final, events| {
                if cancel.is_some_and(CancellationToken::is_cancelled) {
                    cancelled = true;
                    return true;
                }
                chunk.pcm.extend_from_slice(samples);
                if is_final {
                    marks_ms.extend(events.iter().filter_map(|e| match e.kind {
                        EventKind::Word(_) => Some(e.audio_position_ms),
                        _ => None,
                    }));
                }
                false
            })
            .map_err(|e| failed(e.to_string()))?;
        if cancelled {
            return Ok(None);
        }

        let to_ms = |samples: u64| samples * 1000 / u64::from(rate);
        chunk.words = align::align_words(text, &chunk.pcm, rate, &marks_ms)
            .into_iter()
            .map(|span| WordTiming {
                text: span.text,
                start_ms: to_ms(offset_samples + span.start as u64),
                end_ms: to_ms(offset_samples + span.end as u64),
            })
            .collect();
        let pause = pause_after(text, self.config.rate_wpm) * u64::from(rate) / 1000;
        chunk.pcm.extend(std::iter::repeat_n(0i16, pause as usize));
        Ok(Some(chunk))
    }
}

/// Silence after a chunk, in milliseconds: eSpeak's own pauses are per utterance, and a chunk may
/// end mid-sentence, so phrasing is restored from the chunk's last punctuation mark.
pub(crate) fn pause_after(text: &str, rate_wpm: u32) -> u64 {
    let end = text
        .trim_end()
        .trim_end_matches(['"', '\'', ')', ']', '}', '”', '’', '»']);
    let base_ms = match end.chars().next_back() {
        Some('.' | '!' | '?' | '…' | '。' | '！' | '？') => 250,
        Some(',' | ';' | ':' | '，' | '；' | '：' | '、') => 150,
        _ => 0,
    };
    // eSpeak's pauses scale with the rate; 175 wpm is its default.
    base_ms * 175 / u64::from(rate_wpm.max(1))
}

/// `text` cut to 80 characters for error messages.
pub(crate) fn shorten(text: &str) -> String {
    let mut out: String = text.chars().take(80).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        assert!(LocalTtsConfig::default().validate().is_ok());
    }

    #[test]
    fn bad_settings_name_the_field() {
        let cases = [
            (
                LocalTtsConfig {
                    voice: "xx".into(),
                    ..Default::default()
                },
                "voice",
            ),
            (
                LocalTtsConfig {
                    voice: "en-us+../../etc".into(),
                    ..Default::default()
                },
                "voice",
            ),
            (
                LocalTtsConfig {
                    rate_wpm: 40,
                    ..Default::default()
                },
                "rate_wpm",
            ),
            (
                LocalTtsConfig {
                    pitch: 100,
                    ..Default::default()
                },
                "pitch",
            ),
        ];
        for (config, field) in cases {
            match config.validate() {
                Err(TtsError::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{config:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn voice_tags_are_case_insensitive() {
        let config = LocalTtsConfig {
            voice: "en-US+f3".into(),
            ..Default::default()
        };
        assert_eq!(
            config.split_voice().ok(),
            Some(("en-us".to_string(), Some("f3".to_string())))
        );
    }

    #[test]
    fn pauses_follow_the_last_mark() {
        assert_eq!(pause_after("The end.\"", 175), 250);
        assert_eq!(pause_after("First,", 175), 150);
        assert_eq!(pause_after("no mark", 175), 0);
        assert_eq!(pause_after("Fast.", 350), 125);
    }
}
