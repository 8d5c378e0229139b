//! The built-in voice's engine: its settings (`LOCAL_TTS_ENGINE`, `PIPER_*`, `ORT_DYLIB_PATH`),
//! their checks, and the choice between the neural Piper voice and eSpeak NG. `auto` speaks with
//! Piper when its voice and ONNX Runtime are found and load, else with eSpeak, and says why once.
//! eSpeak's own settings (`LOCAL_TTS_VOICE`, rate, pitch) stay in `config.rs`.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use talkstream_providers::{
    default_piper_dir, LocalTts, PiperConfig, PiperTts, TtsChunk, TtsError, TtsProvider,
    DEFAULT_ORT_LIBRARY, DEFAULT_PIPER_VOICE,
};

use crate::config::{Config, ConfigError};
use crate::server::{build_local_tts, ServerError};

/// Which engine speaks for the built-in voice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineChoice {
    /// piper when its voice and runtime are found and load, else espeak.
    Auto,
    /// The neural Piper voice (fails at start when it cannot load).
    Piper,
    /// eSpeak NG, compiled in.
    Espeak,
}

/// Settings of the built-in voice's engine.
#[derive(Debug, Clone, Args)]
pub struct EngineConfig {
    /// Engine of the built-in voice: auto (piper when PIPER_VOICE and its ONNX Runtime are found,
    /// else espeak, saying why), piper (neural, natural; needs the files scripts/piper-voice.sh
    /// installs) or espeak (eSpeak NG, compiled in, robotic but tiny and fast).
    #[arg(long, env = "LOCAL_TTS_ENGINE", value_enum, default_value_t = EngineChoice::Auto, global = true)]
    pub local_tts_engine: EngineChoice,

    /// Piper voice model: a .onnx file with its .onnx.json beside it (any Piper voice of
    /// phoneme type espeak). Default: en_US-joe-medium.onnx in
    /// $TALKSTREAM_DATA/piper (~/.local/share/talkstream/piper), where scripts/piper-voice.sh
    /// puts it.
    #[arg(long, env = "PIPER_VOICE", global = true)]
    pub piper_voice: Option<PathBuf>,

    /// ONNX Runtime shared library that runs the Piper voice (loaded at run time).
    /// Default: libonnxruntime.so in the same folder as the default voice.
    #[arg(long, env = "ORT_DYLIB_PATH", global = true)]
    pub ort_dylib_path: Option<PathBuf>,

    /// Piper speed as a duration factor: 1 is the voice's pace, 1.2 is 20 % slower, 0.8 faster
    /// (0.3 to 3; default: the voice's own).
    #[arg(long, env = "PIPER_LENGTH_SCALE", global = true)]
    pub piper_length_scale: Option<f32>,

    /// Piper voice variation (0 to 2; default: the voice's own, 0.667 for most).
    #[arg(long, env = "PIPER_NOISE_SCALE", global = true)]
    pub piper_noise_scale: Option<f32>,

    /// Piper rhythm variation (0 to 2; default: the voice's own, 0.8 for most).
    #[arg(long, env = "PIPER_NOISE_W", global = true)]
    pub piper_noise_w: Option<f32>,
}

/// The built-in voice that was built, and why it is not the one `auto` prefers, if so.
pub struct LocalVoice {
    /// The provider.
    pub tts: Arc<dyn TtsProvider>,
    /// Why Piper is not speaking although `auto` would have liked it to.
    pub note: Option<String>,
}

impl EngineConfig {
    /// The Piper settings: the given paths, or the default voice folder's files.
    pub fn piper_config(&self) -> PiperConfig {
        let dir = default_piper_dir().unwrap_or_else(|| PathBuf::from("piper"));
        let model = self
            .piper_voice
            .clone()
            .unwrap_or_else(|| dir.join(DEFAULT_PIPER_VOICE));
        let runtime = self
            .ort_dylib_path
            .clone()
            .unwrap_or_else(|| dir.join(DEFAULT_ORT_LIBRARY));
        PiperConfig {
            length_scale: self.piper_length_scale,
            noise_scale: self.piper_noise_scale,
            noise_w: self.piper_noise_w,
            ..PiperConfig::new(model, runtime)
        }
    }

    /// Check the settings (not the files: `auto` falls back when they are missing).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let check = |name, value: Option<f32>, lo: f32, hi: f32| match value {
            Some(v) if !(lo..=hi).contains(&v) => Err(ConfigError::Invalid {
                name,
                value: v.to_string(),
                why: format!("use {lo} to {hi}"),
            }),
            _ => Ok(()),
        };
        check("PIPER_LENGTH_SCALE", self.piper_length_scale, 0.3, 3.0)?;
        check("PIPER_NOISE_SCALE", self.piper_noise_scale, 0.0, 2.0)?;
        check("PIPER_NOISE_W", self.piper_noise_w, 0.0, 2.0)
    }
}

/// The built-in voice the settings ask for. With `auto`, a Piper voice that is missing or does
/// not load gives eSpeak and a note (logged here, once); with `piper` it is an error.
pub fn build_builtin_voice(config: &Config) -> Result<(BuiltInVoice, Option<String>), ServerError> {
    let engine = &config.engine;
    let espeak = |note: Option<String>| -> Result<(BuiltInVoice, Option<String>), ServerError> {
        Ok((BuiltInVoice::Espeak(build_local_tts(config)?), note))
    };
    if engine.local_tts_engine == EngineChoice::Espeak {
        return espeak(None);
    }
    let piper = engine.piper_config();
    if engine.local_tts_engine == EngineChoice::Auto {
        let config_path = piper.config_path();
        let missing = [&piper.model, &config_path, &piper.runtime]
            .into_iter()
            .find(|p| !p.is_file());
        if let Some(missing) = missing {
            let note = format!(
                "the Piper voice is not used: {} not found (./scripts/piper-voice.sh installs it; \
                 or set PIPER_VOICE and ORT_DYLIB_PATH); speaking with eSpeak NG",
                missing.display()
            );
            tracing::warn!("{note}");
            return espeak(Some(note));
        }
    }
    match PiperTts::new(piper) {
        Ok(tts) => {
            tracing::info!(
                voice = %tts.config().model.display(),
                runtime = %tts.config().runtime.display(),
                load_ms = tts.load_time().as_millis() as u64,
                "Piper voice loaded"
            );
            Ok((BuiltInVoice::Piper(tts), None))
        }
        Err(e) if engine.local_tts_engine == EngineChoice::Auto => {
            let note = format!("the Piper voice is not used: {e}; speaking with eSpeak NG");
            tracing::warn!("{note}");
            espeak(Some(note))
        }
        Err(e) => Err(ServerError::Piper(e)),
    }
}

/// The built-in voice as a session provider, with the note when `auto` fell back to eSpeak.
pub fn build_local_voice(config: &Config) -> Result<LocalVoice, ServerError> {
    let (voice, note) = build_builtin_voice(config)?;
    let tts: Arc<dyn TtsProvider> = match voice {
        BuiltInVoice::Piper(tts) => Arc::new(tts),
        BuiltInVoice::Espeak(tts) => Arc::new(tts),
    };
    Ok(LocalVoice { tts, note })
}

/// The built-in voice itself, for work that synthesizes whole texts on the calling thread
/// (`talkstream render`).
pub enum BuiltInVoice {
    /// The neural Piper voice.
    Piper(PiperTts),
    /// eSpeak NG.
    Espeak(LocalTts),
}

impl BuiltInVoice {
    /// Synthesize `text` here; word times start at the beginning of the audio.
    pub fn synthesize_blocking(&self, text: &str) -> Result<TtsChunk, TtsError> {
        match self {
            BuiltInVoice::Piper(tts) => tts.synthesize_blocking(text),
            BuiltInVoice::Espeak(tts) => tts.synthesize_blocking(text),
        }
    }

    /// The engine's name, for people.
    pub fn describe(&self) -> &'static str {
        match self {
            BuiltInVoice::Piper(_) => "Piper",
            BuiltInVoice::Espeak(_) => "eSpeak NG",
        }
    }
}
