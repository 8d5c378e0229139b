//! The neural local TTS: a Piper voice (a VITS model in ONNX with its `.onnx.json`) run by ONNX
//! Runtime, with phonemes from the built-in eSpeak NG. No network. Output: mono s16 at the
//! voice's rate (22 050 Hz for the medium voices).
//!
//! The model and the runtime load once ([`PiperTts::new`]) and are shared by every session.
//! Each [`TtsInput::Text`] of a turn becomes eSpeak IPA with Piper's punctuation
//! ([`voice::piper_phonemes`]), then ids ([`VoiceConfig::phonemes_to_ids`]), then one inference
//! on tokio's blocking pool; its audio goes out as one [`TtsChunk`]. Word timings come from
//! eSpeak's word marks for the same text, stretched to the length of Piper's audio and snapped
//! to its voiced parts. Cancelling a turn stops the running inference (ONNX Runtime's terminate
//! flag) and drops text not yet spoken.

mod runtime;
pub mod voice;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use espeak_ng::{EspeakNg, EventKind};
use tokio_util::sync::CancellationToken;

use crate::chunker::has_speakable;
use crate::local::{align, data, pause_after, shorten};
use crate::tts::{
    speak_each_text, CheckFuture, SynthesizeText, TtsChunk, TtsError, TtsProvider, TtsTurn,
    TurnWorker, WordTiming,
};
use runtime::{InferError, Model, Stop};
use voice::{Scales, VoiceConfig, VoiceConfigError};

/// Why a Piper voice cannot be used. Each names the file involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PiperError {
    /// The ONNX Runtime library is missing or does not load.
    #[error("ONNX Runtime library {path}: {reason}")]
    Runtime {
        /// The library file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The voice model is missing or ONNX Runtime rejects it.
    #[error("Piper voice model {path}: {reason}")]
    Model {
        /// The `.onnx` file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The voice configuration cannot be read.
    #[error("Piper voice configuration {path}: {source}")]
    ConfigFile {
        /// The `.onnx.json` file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The voice configuration is not usable.
    #[error("Piper voice configuration {path}: {source}")]
    Config {
        /// The `.onnx.json` file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: VoiceConfigError,
    },
    /// A setting is out of range.
    #[error("Piper setting {field}: {reason}")]
    Setting {
        /// The setting.
        field: &'static str,
        /// What is wrong and what is accepted.
        reason: String,
    },
    /// The voice loaded but could not speak a test word.
    #[error("Piper voice {path} loaded but does not speak: {source}")]
    Silent {
        /// The `.onnx` file.
        path: PathBuf,
        /// The synthesis error.
        #[source]
        source: Box<TtsError>,
    },
}

/// Settings of the Piper voice.
#[derive(Debug, Clone, PartialEq)]
pub struct PiperConfig {
    /// The voice model (`.onnx`); its configuration is the same path with `.json` appended.
    pub model: PathBuf,
    /// The ONNX Runtime shared library (`libonnxruntime.so…`).
    pub runtime: PathBuf,
    /// Speed: duration factor, above 1 is slower (default: the voice's own, usually 1).
    pub length_scale: Option<f32>,
    /// Voice variation (default: the voice's own, usually 0.667).
    pub noise_scale: Option<f32>,
    /// Duration variation (default: the voice's own, usually 0.8).
    pub noise_w: Option<f32>,
    /// ONNX Runtime threads per inference (1 keeps one speaking session on one core).
    pub threads: usize,
}

impl PiperConfig {
    /// A voice and a runtime with the voice's own scales, one thread.
    pub fn new(model: impl Into<PathBuf>, runtime: impl Into<PathBuf>) -> Self {
        Self {
            model: model.into(),
            runtime: runtime.into(),
            length_scale: None,
            noise_scale: None,
            noise_w: None,
            threads: 1,
        }
    }

    /// The voice configuration file: `<model>.json`.
    pub fn config_path(&self) -> PathBuf {
        let mut path = self.model.clone().into_os_string();
        path.push(".json");
        PathBuf::from(path)
    }

    /// Checks the settings; the error names the setting and what is accepted.
    pub fn validate(&self) -> Result<(), PiperError> {
        let check = |field, value: Option<f32>, lo: f32, hi: f32| match value {
            Some(v) if !(lo..=hi).contains(&v) => Err(PiperError::Setting {
                field,
                reason: format!("{v} is outside {lo}..={hi}"),
            }),
            _ => Ok(()),
        };
        check("length_scale", self.length_scale, 0.3, 3.0)?;
        check("noise_scale", self.noise_scale, 0.0, 2.0)?;
        check("noise_w", self.noise_w, 0.0, 2.0)?;
        if !(1..=16).contains(&self.threads) {
            return Err(PiperError::Setting {
                field: "threads",
                reason: format!("{} is outside 1..=16", self.threads),
            });
        }
        Ok(())
    }
}

/// The Piper provider; cheap to clone (the model is shared).
#[derive(Debug, Clone)]
pub struct PiperTts {
    inner: Arc<Engine>,
}

#[derive(Debug)]
struct Engine {
    config: PiperConfig,
    voice: VoiceConfig,
    scales: Scales,
    model: Model,
    espeak_data: PathBuf,
    load_time: Duration,
}

impl PiperTts {
    /// Provider name.
    pub const NAME: &'static str = "piper";

    /// Loads the runtime (once per process), the voice and its configuration, and speaks a test
    /// word. Blocks for about half a second.
    pub fn new(config: PiperConfig) -> Result<Self, PiperError> {
        config.validate()?;
        let started = Instant::now();
        let config_path = config.config_path();
        let json =
            std::fs::read_to_string(&config_path).map_err(|source| PiperError::ConfigFile {
                path: config_path.clone(),
                source,
            })?;
        let voice = VoiceConfig::parse(&json).map_err(|source| PiperError::Config {
            path: config_path,
            source,
        })?;
        let env = runtime::environment(&config.runtime)?;
        let model = Model::load(&env, &config.model, config.threads)?;
        let model_path = config.model.clone();
        let silent = |source: TtsError| PiperError::Silent {
            path: model_path.clone(),
            source: Box::new(source),
        };
        let espeak_data = data::data_dir().map_err(silent)?;
        let scales = Scales {
            noise_scale: config.noise_scale.unwrap_or(voice.scales.noise_scale),
            length_scale: config.length_scale.unwrap_or(voice.scales.length_scale),
            noise_w: config.noise_w.unwrap_or(voice.scales.noise_w),
        };
        let mut engine = Engine {
            config,
            voice,
            scales,
            model,
            espeak_data,
            load_time: Duration::ZERO,
        };
        // The first inference also warms ONNX Runtime up; fail now rather than in a turn.
        let stop = Stop::new().map_err(|reason| silent(worker_error(reason)))?;
        match engine.synthesize("ok", 0, &stop) {
            Ok(Some(chunk)) if !chunk.pcm.is_empty() => {}
            Ok(_) => {
                return Err(silent(TtsError::Synthesis {
                    provider: Self::NAME,
                    text: "ok".to_string(),
                    reason: "no audio".to_string(),
                }))
            }
            Err(e) => return Err(silent(e)),
        }
        engine.load_time = started.elapsed();
        Ok(Self {
            inner: Arc::new(engine),
        })
    }

    /// The settings this provider runs with.
    pub fn config(&self) -> &PiperConfig {
        &self.inner.config
    }

    /// How long [`PiperTts::new`] took (runtime, model, configuration and the test word).
    pub fn load_time(&self) -> Duration {
        self.inner.load_time
    }

    /// Synthesizes `text` on the calling thread (for offline rendering and measurements). Word
    /// timings start at the beginning of the returned audio.
    pub fn synthesize_blocking(&self, text: &str) -> Result<TtsChunk, TtsError> {
        let stop = Stop::new().map_err(worker_error)?;
        match self.inner.synthesize(text, 0, &stop)? {
            Some(chunk) => Ok(chunk),
            None => Err(TtsError::Cancelled {
                provider: Self::NAME,
            }),
        }
    }
}

fn worker_error(reason: String) -> TtsError {
    TtsError::Worker {
        provider: PiperTts::NAME,
        reason,
    }
}

impl TtsProvider for PiperTts {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn sample_rate(&self) -> u32 {
        self.inner.voice.sample_rate
    }

    fn describe(&self) -> String {
        let name = self
            .inner
            .config
            .model
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        format!("Piper {name} (neural, offline)")
    }

    fn check(&self) -> CheckFuture<'_, TtsError> {
        let tts = self.clone();
        Box::pin(async move {
            let chunk = tokio::task::spawn_blocking(move || tts.synthesize_blocking("ok"))
                .await
                .map_err(|e| worker_error(format!("the check's synthesis task failed: {e}")))??;
            Ok(format!(
                "synthesized {} ms of audio offline with ONNX Runtime (loaded in {} ms)",
                chunk.duration_ms(),
                self.inner.load_time.as_millis()
            ))
        })
    }

    fn start_turn(&self, cancel: CancellationToken) -> TtsTurn {
        let inner = self.inner.clone();
        TtsTurn::spawn(Self::NAME, cancel, move |worker| run_turn(inner, worker))
    }
}

/// Stops the turn's inference when the turn's task ends for any reason (cancel, output dropped).
struct StopOnDrop(Arc<Stop>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// How the first text of a turn is cut so the first audio comes after the inference of a word
/// or two instead of a whole clause (inference time grows with the length of the audio: ~0.11 s
/// per second of speech on one idle core, ~70 ms for one word, ~100 ms for two, ~165 ms for
/// four; docs/benchmarks.md). Each piece must be inferred while the one before it plays, so
/// they grow: a head of one or two words, then up to five, then the rest.
struct Piece {
    /// Words in the piece when no comma comes first.
    words: usize,
    /// A comma (semicolon, colon) ending a word at this position (1-based) ends the piece there.
    comma_at: std::ops::RangeInclusive<usize>,
    /// The text is cut only when it has more words than this.
    above: usize,
}

const PIECES: [Piece; 2] = [
    Piece {
        words: 2,
        comma_at: 1..=4,
        above: 3,
    },
    Piece {
        words: 5,
        comma_at: 3..=7,
        above: 8,
    },
];

/// Piece `piece` of a turn's first text and the rest (see [`Piece`]): cut at a comma if one
/// comes early enough, else after a fixed number of words. `None` when the text is short enough
/// to speak whole, or no more pieces are cut.
pub fn split_head(text: &str, piece: usize) -> Option<(String, String)> {
    let rule = PIECES.get(piece)?;
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.len() <= rule.above {
        return None;
    }
    let at = words
        .iter()
        .enumerate()
        .find(|(i, w)| rule.comma_at.contains(&(i + 1)) && w.ends_with([',', ';', ':']))
        .map_or(rule.words, |(i, _)| i + 1);
    if at >= words.len() {
        return None;
    }
    Some((words[..at].join(" "), words[at..].join(" ")))
}

/// Silence the model leaves before the first sound and after the last that is kept, in ms.
/// VITS voices pad each text with ~60 ms before and ~200 ms after; a turn's pieces and clauses
/// follow each other, so that padding would delay the first word and put pauses mid-sentence
/// (the pause a clause ends with is added by [`pause_after`] instead).
const KEEP_LEAD_MS: usize = 10;
const KEEP_TAIL_MS: usize = 40;
/// Below this amplitude (about -46 dBFS) a sample counts as silence.
const SILENCE: f32 = 0.005;

/// `audio` without the model's silent padding beyond [`KEEP_LEAD_MS`] / [`KEEP_TAIL_MS`].
fn trim_silence(audio: &[f32], rate: u32) -> &[f32] {
    let per_ms = rate as usize / 1000;
    let Some(first) = audio.iter().position(|s| s.abs() > SILENCE) else {
        return audio;
    };
    let last = audio
        .iter()
        .rposition(|s| s.abs() > SILENCE)
        .unwrap_or(first);
    let start = first.saturating_sub(KEEP_LEAD_MS * per_ms);
    let end = (last + 1 + KEEP_TAIL_MS * per_ms).min(audio.len());
    &audio[start..end]
}

/// One turn: each text synthesized as it arrives ([`speak_each_text`]), the first in two parts
/// ([`split_head`]). The inference under way stops when the turn's task ends (cancel, output
/// dropped).
async fn run_turn(engine: Arc<Engine>, worker: TurnWorker) {
    let stop = match Stop::new() {
        Ok(stop) => StopOnDrop(Arc::new(stop)),
        Err(reason) => {
            let _ = worker.output.send(Err(worker_error(reason))).await;
            return;
        }
    };
    let flag = stop.0.clone();
    let synthesize: SynthesizeText =
        Arc::new(move |text, offset| engine.synthesize(text, offset, &flag));
    speak_each_text(PiperTts::NAME, worker, split_head, synthesize).await;
    drop(stop);
}

impl Engine {
    /// Synthesizes `text`; word times are offset by `offset_samples` (the turn's audio so far).
    /// `Ok(None)` when `stop` fired.
    fn synthesize(
        &self,
        text: &str,
        offset_samples: u64,
        stop: &Stop,
    ) -> Result<Option<TtsChunk>, TtsError> {
        let rate = self.voice.sample_rate;
        let mut chunk = TtsChunk::empty(rate, text);
        if !has_speakable(text) {
            return Ok(Some(chunk));
        }
        let failed = |reason: String| TtsError::Synthesis {
            provider: PiperTts::NAME,
            text: shorten(text),
            reason,
        };
        let espeak = EspeakNg::with_data_dir(&self.voice.espeak_voice, &self.espeak_data)
            .map_err(|e| failed(format!("eSpeak: {e}")))?;
        let ipa = espeak
            .text_to_phonemes_phonemizer(text)
            .map_err(|e| failed(format!("eSpeak phonemes: {e}")))?;
        let phonemes = voice::piper_phonemes(&ipa);
        let (ids, unknown) = self.voice.phonemes_to_ids(&phonemes);
        if !unknown.is_empty() {
            tracing::debug!(?unknown, %phonemes, "phonemes the voice does not know were skipped");
        }
        let audio = match self.model.infer(&ids, self.scales, stop) {
            Ok(audio) => audio,
            Err(InferError::Stopped) => return Ok(None),
            Err(InferError::Failed(reason)) => return Err(failed(reason)),
        };
        let speech = trim_silence(&audio, rate);
        chunk.pcm = speech
            .iter()
            .map(|&s| (s * 32767.0).clamp(-32768.0, 32767.0) as i16)
            .collect();

        let marks_ms = self.word_marks(&espeak, text, chunk.pcm.len());
        let to_ms = |samples: u64| samples * 1000 / u64::from(rate);
        chunk.words = align::align_words(text, &chunk.pcm, rate, &marks_ms)
            .into_iter()
            .map(|span| WordTiming {
                text: span.text,
                start_ms: to_ms(offset_samples + span.start as u64),
                end_ms: to_ms(offset_samples + span.end as u64),
            })
            .collect();
        let rate_wpm = (175.0 / self.scales.length_scale.max(0.1)) as u32;
        let pause = pause_after(text, rate_wpm) * u64::from(rate) / 1000;
        chunk.pcm.extend(std::iter::repeat_n(0i16, pause as usize));
        Ok(Some(chunk))
    }

    /// eSpeak's word marks for `text`, stretched from eSpeak's audio to `samples` of Piper's
    /// (both voices read the same phonemes, so words fall in the same order and roughly the same
    /// proportions). Empty when eSpeak fails: the aligner then spreads the words evenly.
    fn word_marks(&self, espeak: &EspeakNg, text: &str, samples: usize) -> Vec<u32> {
        let Ok((espeak_pcm, espeak_rate, events)) = espeak.synth_with_events(text) else {
            return Vec::new();
        };
        let espeak_ms = espeak_pcm.len() as f64 * 1000.0 / f64::from(espeak_rate.max(1));
        let piper_ms = samples as f64 * 1000.0 / f64::from(self.voice.sample_rate);
        if espeak_ms <= 0.0 {
            return Vec::new();
        }
        let stretch = piper_ms / espeak_ms;
        events
            .iter()
            .filter_map(|e| match e.kind {
                EventKind::Word(_) => Some((f64::from(e.audio_position_ms) * stretch) as u32),
                _ => None,
            })
            .collect()
    }
}

/// Where Piper voices and the runtime live when nothing else is set:
/// `$TALKSTREAM_DATA/piper`, else `~/.local/share/talkstream/piper` (what `scripts/piper-voice.sh`
/// installs).
pub fn default_piper_dir() -> Option<PathBuf> {
    let base = match std::env::var_os("TALKSTREAM_DATA").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(&std::env::var_os("HOME")?).join(".local/share/talkstream"),
    };
    Some(base.join("piper"))
}

/// The voice `scripts/piper-voice.sh` installs, by file name.
pub const DEFAULT_PIPER_VOICE: &str = "en_US-joe-medium.onnx";
/// The runtime library `scripts/piper-voice.sh` installs, by file name.
pub const DEFAULT_ORT_LIBRARY: &str = "libonnxruntime.so";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_first_text_is_cut_into_growing_pieces_preferring_commas() {
        let cut = |text: &str, piece| split_head(text, piece);
        let pair = |a: &str, b: &str| Some((a.to_string(), b.to_string()));
        assert_eq!(cut("Hello there, friend.", 0), None, "three words: whole");
        assert_eq!(
            cut("Hello there, nice to meet you.", 0),
            pair("Hello there,", "nice to meet you.")
        );
        assert_eq!(
            cut("nice to meet you.", 1),
            None,
            "a short rest stays whole"
        );
        assert_eq!(
            cut("Sure, the capital of France is Paris.", 0),
            pair("Sure,", "the capital of France is Paris.")
        );
        let text = "The quick brown fox jumps over the lazy dog by the river today.";
        let (head, rest) = cut(text, 0).unwrap();
        assert_eq!(head, "The quick");
        let (second, third) = cut(&rest, 1).unwrap();
        assert_eq!(second, "brown fox jumps over the");
        assert_eq!(third, "lazy dog by the river today.");
        assert_eq!(cut(&third, 2), None, "two cuts at most");
        assert_eq!(
            cut(
                "I think that you, my friend, are right about this matter.",
                1
            ),
            pair(
                "I think that you,",
                "my friend, are right about this matter."
            )
        );
    }

    #[test]
    fn the_models_silent_padding_is_trimmed_to_a_few_ms() {
        let rate = 22_050;
        let mut audio = vec![0.0f32; 2205]; // 100 ms of padding
        audio.extend(std::iter::repeat_n(0.3f32, 4410)); // 200 ms of sound
        audio.extend(std::iter::repeat_n(0.001f32, 6615)); // 300 ms of near-silence
        let kept = trim_silence(&audio, rate);
        let ms = |n: usize| n * 1000 / rate as usize;
        assert_eq!(ms(kept.len()), 10 + 200 + 40 - 1);
        assert_eq!(kept.iter().position(|s| *s > 0.1), Some(220));
        let quiet = vec![0.0f32; 100];
        assert_eq!(
            trim_silence(&quiet, rate).len(),
            100,
            "all silence is left alone"
        );
    }

    #[test]
    fn config_path_appends_json() {
        let c = PiperConfig::new("/v/en_US-joe-medium.onnx", "/r/libonnxruntime.so");
        assert_eq!(c.config_path(), Path::new("/v/en_US-joe-medium.onnx.json"));
    }

    #[test]
    fn settings_out_of_range_name_the_field() {
        let mut c = PiperConfig::new("a.onnx", "lib.so");
        assert!(c.validate().is_ok());
        c.length_scale = Some(5.0);
        assert!(matches!(
            c.validate(),
            Err(PiperError::Setting {
                field: "length_scale",
                ..
            })
        ));
        c.length_scale = None;
        c.threads = 0;
        assert!(matches!(
            c.validate(),
            Err(PiperError::Setting {
                field: "threads",
                ..
            })
        ));
    }

    #[test]
    fn a_missing_voice_names_its_configuration_file() {
        let c = PiperConfig::new("/nonexistent/voice.onnx", "/nonexistent/lib.so");
        match PiperTts::new(c) {
            Err(PiperError::ConfigFile { path, .. }) => {
                assert_eq!(path, Path::new("/nonexistent/voice.onnx.json"))
            }
            other => panic!("{other:?}"),
        }
    }
}

#[cfg(test)]
mod phoneme_tests {
    use super::*;

    /// The configuration of the voice `scripts/piper-voice.sh` installs.
    const JOE: &str = include_str!("piper/testdata/en_US-joe-medium.onnx.json");

    fn phonemes(text: &str) -> String {
        let data = data::data_dir().unwrap();
        let espeak = EspeakNg::with_data_dir("en-us", &data).unwrap();
        voice::piper_phonemes(&espeak.text_to_phonemes_phonemizer(text).unwrap())
    }

    #[test]
    fn clauses_keep_their_marks() {
        assert_eq!(
            phonemes("Hello there, world! What is the capital of France?"),
            "həlˈoʊ ðˈɛɹ, wˈɜːld! wˌʌt ɪz ðə kˈæpɪɾəl ʌv fɹˈæns?"
        );
        assert_eq!(
            phonemes("It's 3 o'clock; \"yes\" (maybe)..."),
            "ɪts θɹˈiː əklˈɑːk; jˈɛs mˈeɪbiː."
        );
    }

    #[test]
    fn english_ipa_has_ids_in_the_installed_voice() {
        let voice = VoiceConfig::parse(JOE).unwrap();
        let text = "The quick brown fox, thinking of Zürich's jazz & judo, \
                    measured 3.5 yards; why? Because 42% isn't enough!";
        let (ids, unknown) = voice.phonemes_to_ids(&phonemes(text));
        assert!(unknown.is_empty(), "{unknown:?} {}", phonemes(text));
        assert!(ids.len() > 100);
        assert_eq!(ids.first(), Some(&1));
        assert_eq!(ids.last(), Some(&2));
    }
}
