//! A Piper voice's configuration (`<model>.onnx.json`) and the pure steps from eSpeak's IPA to the
//! model's input: the phoneme string Piper was trained on, then phoneme ids.
//!
//! Piper voices of phoneme type `espeak` take eSpeak NG's IPA, one Unicode scalar value per
//! symbol, each mapped to ids by the config's `phoneme_id_map`. The sequence is framed as
//! `^` (start), then every symbol followed by `_` (pad), then `$` (end). Symbols the map does not
//! know are skipped and reported. No I/O here: the caller reads the file and passes its text.

use std::collections::HashMap;

use serde::Deserialize;

/// Start-of-sequence symbol.
const BOS: char = '^';
/// End-of-sequence symbol.
const EOS: char = '$';
/// Pad symbol, after every phoneme.
const PAD: char = '_';

/// Why a voice configuration cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VoiceConfigError {
    /// The text is not the JSON of a Piper voice.
    #[error("not a Piper voice configuration: {0}")]
    Json(String),
    /// The voice takes phonemes other than eSpeak's.
    #[error("phoneme_type {0:?} is not supported (only espeak)")]
    PhonemeType(String),
    /// A required symbol has no id.
    #[error("phoneme_id_map has no id for {0:?}")]
    MissingSymbol(char),
    /// A key of a map is not one symbol.
    #[error("{map} key {key:?} is not a single character")]
    BadKey {
        /// `phoneme_id_map` or `phoneme_map`.
        map: &'static str,
        /// The key.
        key: String,
    },
    /// The sample rate is zero or absurd.
    #[error("audio.sample_rate {0} is outside 8000..=48000")]
    SampleRate(u32),
}

/// The synthesis controls of a VITS voice.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scales {
    /// Variation of the voice (Piper's `noise_scale`).
    pub noise_scale: f32,
    /// Duration factor: above 1 is slower speech (Piper's `length_scale`).
    pub length_scale: f32,
    /// Variation of phoneme durations (Piper's `noise_w`).
    pub noise_w: f32,
}

impl Default for Scales {
    /// Piper's own defaults.
    fn default() -> Self {
        Self {
            noise_scale: 0.667,
            length_scale: 1.0,
            noise_w: 0.8,
        }
    }
}

/// What talkstream needs from a voice's `.onnx.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct VoiceConfig {
    /// Output sample rate in Hz.
    pub sample_rate: u32,
    /// The eSpeak voice whose IPA the model was trained on (`en-us`).
    pub espeak_voice: String,
    /// The voice's default scales.
    pub scales: Scales,
    /// Speakers of the model (1 for single-speaker voices; speaker 0 is used otherwise).
    pub num_speakers: u32,
    ids: HashMap<char, Vec<i64>>,
    phoneme_map: HashMap<char, Vec<char>>,
}

#[derive(Deserialize)]
struct RawConfig {
    audio: RawAudio,
    #[serde(default)]
    espeak: Option<RawEspeak>,
    #[serde(default)]
    inference: Option<RawInference>,
    #[serde(default)]
    phoneme_type: Option<String>,
    #[serde(default)]
    num_speakers: Option<u32>,
    #[serde(default)]
    phoneme_map: HashMap<String, Vec<String>>,
    phoneme_id_map: HashMap<String, Vec<i64>>,
}

#[derive(Deserialize)]
struct RawAudio {
    sample_rate: u32,
}

#[derive(Deserialize)]
struct RawEspeak {
    voice: String,
}

#[derive(Deserialize)]
struct RawInference {
    noise_scale: Option<f32>,
    length_scale: Option<f32>,
    noise_w: Option<f32>,
}

fn single_char(map: &'static str, key: &str) -> Result<char, VoiceConfigError> {
    let mut chars = key.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Ok(c),
        _ => Err(VoiceConfigError::BadKey {
            map,
            key: key.to_string(),
        }),
    }
}

impl VoiceConfig {
    /// Parses the text of a `.onnx.json` file.
    pub fn parse(json: &str) -> Result<Self, VoiceConfigError> {
        let raw: RawConfig =
            serde_json::from_str(json).map_err(|e| VoiceConfigError::Json(e.to_string()))?;
        if let Some(kind) = raw.phoneme_type.filter(|t| t != "espeak") {
            return Err(VoiceConfigError::PhonemeType(kind));
        }
        if !(8000..=48_000).contains(&raw.audio.sample_rate) {
            return Err(VoiceConfigError::SampleRate(raw.audio.sample_rate));
        }
        let mut ids = HashMap::with_capacity(raw.phoneme_id_map.len());
        for (key, value) in raw.phoneme_id_map {
            ids.insert(single_char("phoneme_id_map", &key)?, value);
        }
        for required in [BOS, EOS, PAD] {
            if ids.get(&required).is_none_or(Vec::is_empty) {
                return Err(VoiceConfigError::MissingSymbol(required));
            }
        }
        let mut phoneme_map = HashMap::new();
        for (key, value) in raw.phoneme_map {
            let to = value.iter().flat_map(|s| s.chars()).collect();
            phoneme_map.insert(single_char("phoneme_map", &key)?, to);
        }
        let defaults = Scales::default();
        let inference = raw.inference.unwrap_or(RawInference {
            noise_scale: None,
            length_scale: None,
            noise_w: None,
        });
        Ok(Self {
            sample_rate: raw.audio.sample_rate,
            espeak_voice: raw.espeak.map_or_else(|| "en-us".to_string(), |e| e.voice),
            scales: Scales {
                noise_scale: inference.noise_scale.unwrap_or(defaults.noise_scale),
                length_scale: inference.length_scale.unwrap_or(defaults.length_scale),
                noise_w: inference.noise_w.unwrap_or(defaults.noise_w),
            },
            num_speakers: raw.num_speakers.unwrap_or(1).max(1),
            ids,
            phoneme_map,
        })
    }

    /// The ids of a phoneme string (see the module documentation), and the symbols that had no
    /// id (skipped), in order of appearance.
    pub fn phonemes_to_ids(&self, phonemes: &str) -> (Vec<i64>, Vec<char>) {
        let id = |c: char| self.ids.get(&c).map_or(&[][..], Vec::as_slice);
        let mut out = Vec::with_capacity(phonemes.len() * 2 + 3);
        let mut unknown = Vec::new();
        out.extend_from_slice(id(BOS));
        out.extend_from_slice(id(PAD));
        let mapped = phonemes
            .chars()
            .flat_map(|c| match self.phoneme_map.get(&c) {
                Some(to) => to.clone(),
                None => vec![c],
            });
        for c in mapped {
            match self.ids.get(&c) {
                Some(ids) => {
                    out.extend_from_slice(ids);
                    out.extend_from_slice(id(PAD));
                }
                None => unknown.push(c),
            }
        }
        out.extend_from_slice(id(EOS));
        (out, unknown)
    }
}

/// Turns eSpeak's IPA of a text (from `text_to_phonemes_phonemizer`: punctuation kept, clauses
/// joined by spaces) into the phoneme string Piper voices were trained on: eSpeak's clause and
/// sentence marks as the `,` `.` `?` `!` `:` `;` symbols, directly after the clause's last phoneme
/// and followed by one space; other ASCII punctuation and tie marks dropped; other whitespace collapsed
/// to one space; everything before the first and after the last symbol trimmed.
pub fn piper_phonemes(ipa: &str) -> String {
    let mut out = String::with_capacity(ipa.len());
    let mut space = false;
    for c in ipa.chars() {
        match c {
            c if c.is_whitespace() => space = !out.is_empty(),
            ',' | '.' | '?' | '!' | ':' | ';' => {
                // Dots and commas of one clause (`...`, `?!`) collapse to their first mark.
                let last_is_mark = out
                    .chars()
                    .next_back()
                    .is_some_and(|p| matches!(p, ',' | '.' | '?' | '!' | ':' | ';'));
                if !out.is_empty() && !last_is_mark {
                    out.push(c);
                }
                space = !out.is_empty();
            }
            // eSpeak's tie and zero-width joiners are not Piper symbols, and Piper's own
            // phonemizer never gives other punctuation (quotes, brackets, `&` before the `ænd`
            // eSpeak reads for it): its voices were trained without them.
            '\u{200d}' | '\u{361}' | '\u{35c}' => {}
            c if c.is_ascii_punctuation() => {}
            c => {
                if space {
                    out.push(' ');
                    space = false;
                }
                out.push(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small config in the shape of `en_US-joe-medium.onnx.json` (its ids for these symbols).
    const CONFIG: &str = r#"{
        "audio": {"sample_rate": 22050, "quality": "medium"},
        "espeak": {"voice": "en-us"},
        "inference": {"noise_scale": 0.667, "length_scale": 1, "noise_w": 0.8},
        "phoneme_type": "espeak",
        "phoneme_map": {},
        "num_speakers": 1,
        "phoneme_id_map": {"_": [0], "^": [1], "$": [2], " ": [3], "!": [4], ",": [8],
            ".": [10], "?": [13], "a": [14], "h": [20], "l": [24], "o": [27], "ə": [59],
            "ˈ": [120], "ˌ": [121], "ː": [122], "ʊ": [100], "w": [35], "ɜ": [62], "d": [17]}
    }"#;

    fn config() -> VoiceConfig {
        VoiceConfig::parse(CONFIG).unwrap()
    }

    #[test]
    fn parses_the_settings() {
        let c = config();
        assert_eq!(c.sample_rate, 22_050);
        assert_eq!(c.espeak_voice, "en-us");
        assert_eq!(c.scales, Scales::default());
        assert_eq!(c.num_speakers, 1);
    }

    #[test]
    fn ids_are_framed_and_padded() {
        let (ids, unknown) = config().phonemes_to_ids("hə");
        assert_eq!(ids, vec![1, 0, 20, 0, 59, 0, 2]);
        assert!(unknown.is_empty());
    }

    #[test]
    fn stress_length_space_and_punctuation_have_ids() {
        let (ids, unknown) = config().phonemes_to_ids("həlˈoʊ, wˈɜːld!");
        assert!(unknown.is_empty());
        let symbols: Vec<i64> = ids.iter().skip(2).step_by(2).copied().collect();
        assert_eq!(
            symbols,
            vec![20, 59, 24, 120, 27, 100, 8, 3, 35, 120, 62, 122, 24, 17, 4, 2]
        );
        assert!(ids.iter().skip(1).step_by(2).all(|&p| p == 0));
    }

    #[test]
    fn unknown_symbols_are_skipped_and_reported() {
        let (ids, unknown) = config().phonemes_to_ids("hxəℤ");
        assert_eq!(ids, vec![1, 0, 20, 0, 59, 0, 2]);
        assert_eq!(unknown, vec!['x', 'ℤ']);
    }

    #[test]
    fn phoneme_map_rewrites_before_ids() {
        let json = CONFIG.replace(
            r#""phoneme_map": {}"#,
            r#""phoneme_map": {"x": ["h", "ə"]}"#,
        );
        let (ids, unknown) = VoiceConfig::parse(&json).unwrap().phonemes_to_ids("x");
        assert_eq!(ids, vec![1, 0, 20, 0, 59, 0, 2]);
        assert!(unknown.is_empty());
    }

    #[test]
    fn bad_configs_say_why() {
        assert!(matches!(
            VoiceConfig::parse("{"),
            Err(VoiceConfigError::Json(_))
        ));
        let text = CONFIG.replace(r#""phoneme_type": "espeak""#, r#""phoneme_type": "text""#);
        assert_eq!(
            VoiceConfig::parse(&text),
            Err(VoiceConfigError::PhonemeType("text".into()))
        );
        let no_pad = CONFIG.replace(r#""_": [0], "#, "");
        assert_eq!(
            VoiceConfig::parse(&no_pad),
            Err(VoiceConfigError::MissingSymbol('_'))
        );
        let long_key = CONFIG.replace(r#""a": [14]"#, r#""ab": [14]"#);
        assert!(matches!(
            VoiceConfig::parse(&long_key),
            Err(VoiceConfigError::BadKey { .. })
        ));
        let rate = CONFIG.replace("22050", "0");
        assert_eq!(
            VoiceConfig::parse(&rate),
            Err(VoiceConfigError::SampleRate(0))
        );
    }

    #[test]
    fn piper_phonemes_keep_clause_marks_against_the_word() {
        assert_eq!(piper_phonemes("  həlˈoʊ ,  wˈɜːld !\n"), "həlˈoʊ, wˈɜːld!");
        assert_eq!(piper_phonemes("ə... bˈiː?!"), "ə. bˈiː?");
        assert_eq!(piper_phonemes(", ə"), "ə");
        assert_eq!(piper_phonemes("t\u{361}ʃ"), "tʃ");
        assert_eq!(piper_phonemes("\"jˈɛs\" (mˈeɪbiː)"), "jˈɛs mˈeɪbiː");
        assert_eq!(piper_phonemes("&ænd %pɚsˈɛnt"), "ænd pɚsˈɛnt");
        assert_eq!(piper_phonemes(""), "");
    }
}
