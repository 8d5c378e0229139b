//! Audio and alignment bookkeeping of a turn: the PCM bytes of the server's messages become
//! chunks (an odd trailing byte waits for the next message) and the timed characters are grouped
//! into [`WordTiming`](crate::WordTiming)s.

use serde_json::Value;

use crate::chunker::is_speakable;
use crate::tts::{TtsChunk, WordTiming};

/// Audio and alignment bookkeeping of a turn.
#[derive(Default)]
pub(super) struct AudioState {
    /// Samples of the turn received so far.
    pub(super) samples: u64,
    /// An odd trailing byte waiting for its partner in the next message.
    pub(super) carry: Option<u8>,
    /// Characters (turn-relative times) not yet given to a chunk.
    pub(super) pending: Vec<TimedChar>,
    /// No visible character has been given out yet (leading spaces are dropped).
    pub(super) at_start: bool,
}

#[derive(Debug, Clone)]
pub(super) struct TimedChar {
    text: String,
    start_ms: f64,
    end_ms: f64,
}

impl AudioState {
    /// Adds one message's audio and alignment; returns a chunk when it carried audio.
    pub(super) fn push(
        &mut self,
        bytes: &[u8],
        alignment: &[(String, f64, Option<f64>)],
        rate: u32,
    ) -> Option<TtsChunk> {
        let offset_ms = self.samples as f64 * 1000.0 / f64::from(rate);
        for (i, (text, start, duration)) in alignment.iter().enumerate() {
            let start_ms = offset_ms + start.max(0.0);
            let duration = duration
                .or_else(|| alignment.get(i + 1).map(|next| next.1 - start))
                .unwrap_or(0.0)
                .max(0.0);
            self.pending.push(TimedChar {
                text: text.clone(),
                start_ms,
                end_ms: start_ms + duration,
            });
        }

        let mut data = Vec::with_capacity(bytes.len() + 1);
        data.extend(self.carry.take());
        data.extend_from_slice(bytes);
        if data.len() % 2 == 1 {
            self.carry = data.pop();
        }
        let pcm: Vec<i16> = data
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        if pcm.is_empty() {
            // Keep the alignment for the next message that has audio.
            return None;
        }
        self.samples += pcm.len() as u64;

        let mut chars = std::mem::take(&mut self.pending);
        if self.at_start {
            let visible = chars
                .iter()
                .position(|c| !c.text.trim().is_empty())
                .unwrap_or(chars.len());
            chars.drain(..visible);
            self.at_start = chars.is_empty();
        }
        let text: String = chars.iter().map(|c| c.text.as_str()).collect();
        Some(TtsChunk {
            pcm,
            sample_rate: rate,
            words: group_words(&chars),
            text,
        })
    }
}

/// Words of timed characters: split on whitespace, surrounding punctuation removed (and not
/// counted in the timing); tokens of punctuation only are skipped.
pub(super) fn group_words(chars: &[TimedChar]) -> Vec<WordTiming> {
    let mut words = Vec::new();
    for token in chars.split(|c| c.text.chars().all(char::is_whitespace)) {
        let first = token.iter().position(|c| c.text.chars().any(is_speakable));
        let last = token.iter().rposition(|c| c.text.chars().any(is_speakable));
        let (Some(first), Some(last)) = (first, last) else {
            continue;
        };
        let core = &token[first..=last];
        let text: String = core.iter().map(|c| c.text.as_str()).collect();
        let text = text.trim_matches(|c: char| !is_speakable(c)).to_string();
        let start = core
            .iter()
            .map(|c| c.start_ms)
            .fold(f64::INFINITY, f64::min);
        let end = core.iter().map(|c| c.end_ms).fold(0.0, f64::max);
        let start_ms = start.round().max(0.0) as u64;
        let end_ms = (end.round().max(0.0) as u64).max(start_ms);
        words.push(WordTiming {
            text,
            start_ms,
            end_ms,
        });
    }
    words
}

/// `(char, start_ms, duration_ms)` of an alignment object (empty when null or malformed).
/// Accepts the `charsDurationsMs` spelling too.
pub(super) fn parse_alignment(value: &Value) -> Vec<(String, f64, Option<f64>)> {
    let list = |key: &str| value.get(key).and_then(Value::as_array);
    let Some(chars) = list("chars") else {
        return Vec::new();
    };
    let Some(starts) = list("charStartTimesMs") else {
        return Vec::new();
    };
    let durations = list("charDurationsMs").or_else(|| list("charsDurationsMs"));
    chars
        .iter()
        .zip(starts)
        .enumerate()
        .filter_map(|(i, (c, s))| {
            let c = c.as_str()?.to_string();
            let s = s.as_f64().filter(|s| s.is_finite())?;
            let d = durations
                .and_then(|d| d.get(i))
                .and_then(Value::as_f64)
                .filter(|d| d.is_finite());
            Some((c, s, d))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn timed(text: &str, start_ms: f64, end_ms: f64) -> TimedChar {
        TimedChar {
            text: text.to_string(),
            start_ms,
            end_ms,
        }
    }

    #[test]
    fn words_group_on_whitespace_without_punctuation() {
        let chars = [
            timed("H", 0.0, 10.0),
            timed("i", 10.0, 20.0),
            timed(",", 20.0, 25.0),
            timed(" ", 25.0, 30.0),
            timed("-", 30.0, 32.0),
            timed(" ", 32.0, 35.0),
            timed("y", 35.0, 40.0),
            timed("o", 40.0, 51.6),
        ];
        let words = group_words(&chars);
        let got: Vec<(&str, u64, u64)> = words
            .iter()
            .map(|w| (w.text.as_str(), w.start_ms, w.end_ms))
            .collect();
        assert_eq!(got, vec![("Hi", 0, 20), ("yo", 35, 52)]);
    }

    #[test]
    fn alignment_accepts_both_spellings_and_null() {
        let a =
            json!({"chars": ["a", "b"], "charStartTimesMs": [0, 5], "charsDurationsMs": [5, 6]});
        assert_eq!(
            parse_alignment(&a),
            vec![("a".into(), 0.0, Some(5.0)), ("b".into(), 5.0, Some(6.0))]
        );
        assert!(parse_alignment(&Value::Null).is_empty());
    }
}
