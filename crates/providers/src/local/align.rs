//! Word timing for the local TTS: pairs the words of a text with the word marks eSpeak NG
//! reports (start times in the audio), trimmed to where the audio is actually voiced.
//!
//! eSpeak NG 0.2.0 reports one mark per spoken word plus a mark after each clause pause (also at
//! the very end), and a written token can become several spoken words (`U.S.A.`, `e.g.`). So:
//! silent marks are dropped, and when the remaining count differs from the written words they
//! are paired by a simple estimate, falling back to spreading them evenly by index.

use crate::chunker::is_speakable;

/// Samples with a magnitude at or below this are treated as silence (about -54 dBFS).
const SILENCE: u16 = 64;

/// A written word and where it sounds, in samples of the chunk's audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Span {
    pub text: String,
    pub start: usize,
    pub end: usize,
}

/// The written words of `text`: whitespace-separated tokens without surrounding punctuation;
/// tokens that are only punctuation are skipped.
pub(crate) fn written_words(text: &str) -> Vec<&str> {
    text.split_whitespace()
        .map(|t| t.trim_matches(|c: char| !is_speakable(c)))
        .filter(|t| !t.is_empty())
        .collect()
}

/// Voiced `[start, end)` ranges in `pcm` between consecutive marks (sample offsets).
fn voiced_segments(pcm: &[i16], marks: &[usize]) -> Vec<(usize, usize)> {
    let mut bounds: Vec<usize> = marks.iter().map(|&m| m.min(pcm.len())).collect();
    bounds.sort_unstable();
    bounds.dedup();
    if bounds.first() != Some(&0) {
        bounds.insert(0, 0);
    }
    bounds.push(pcm.len());
    bounds
        .windows(2)
        .filter_map(|w| {
            let seg = pcm.get(w[0]..w[1])?;
            let first = seg.iter().position(|s| s.unsigned_abs() > SILENCE)?;
            let last = seg.iter().rposition(|s| s.unsigned_abs() > SILENCE)?;
            Some((w[0] + first, w[0] + last + 1))
        })
        .collect()
}

/// How many spoken words a written token probably becomes.
fn spoken_estimate(word: &str) -> usize {
    // Dotted initials (`U.S.A`, `e.g`) are read letter by letter.
    let parts: Vec<&str> = word.split('.').filter(|p| !p.is_empty()).collect();
    if parts.len() > 1 && parts.iter().all(|p| p.chars().count() == 1) {
        return parts.len();
    }
    1
}

/// Times each written word of `text` in `pcm`, given eSpeak's word marks in milliseconds.
pub(crate) fn align_words(text: &str, pcm: &[i16], rate: u32, marks_ms: &[u32]) -> Vec<Span> {
    let words = written_words(text);
    if words.is_empty() {
        return Vec::new();
    }
    let marks: Vec<usize> = marks_ms
        .iter()
        .map(|&ms| (u64::from(ms) * u64::from(rate) / 1000) as usize)
        .collect();
    let mut segments = voiced_segments(pcm, &marks);
    if segments.is_empty() {
        segments.push((0, pcm.len()));
    }
    let (n, m) = (words.len(), segments.len());
    let span = |text: &str, first: usize, last: usize| Span {
        text: text.to_string(),
        start: segments[first].0,
        end: segments[last].1,
    };

    if m >= n {
        let estimates: Vec<usize> = words.iter().map(|w| spoken_estimate(w)).collect();
        let mut groups = Vec::with_capacity(n);
        if estimates.iter().sum::<usize>() == m {
            let mut at = 0;
            for &e in &estimates {
                groups.push((at, at + e));
                at += e;
            }
        } else {
            groups.extend((0..n).map(|i| (i * m / n, (i + 1) * m / n)));
        }
        return words
            .iter()
            .zip(groups)
            .map(|(w, (a, b))| span(w, a, b.max(a + 1) - 1))
            .collect();
    }

    // Fewer voiced segments than words: share each segment among its words by length.
    let mut out = Vec::with_capacity(n);
    for (j, &(seg_start, seg_end)) in segments.iter().enumerate() {
        let group = &words[j * n / m..(j + 1) * n / m];
        let total: usize = group.iter().map(|w| w.chars().count().max(1)).sum();
        let length = seg_end - seg_start;
        let mut chars_before = 0;
        for w in group {
            let chars = w.chars().count().max(1);
            let start = seg_start + length * chars_before / total.max(1);
            chars_before += chars;
            let end = seg_start + length * chars_before / total.max(1);
            out.push(Span {
                text: (*w).to_string(),
                start,
                end,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1000 Hz "audio": `voiced` ranges of loud samples, silence elsewhere.
    fn pcm(len: usize, voiced: &[(usize, usize)]) -> Vec<i16> {
        let mut x = vec![0i16; len];
        for &(a, b) in voiced {
            x[a..b].iter_mut().for_each(|s| *s = 5000);
        }
        x
    }

    #[test]
    fn written_words_drop_punctuation() {
        assert_eq!(
            written_words("\"Hello,\" she said — 3.14 (really)!"),
            vec!["Hello", "she", "said", "3.14", "really"]
        );
    }

    #[test]
    fn one_mark_per_word_with_a_silent_final_mark() {
        // Words at 0-300, 350-600; a clause mark at 800 followed by silence.
        let x = pcm(1000, &[(10, 300), (350, 600)]);
        let spans = align_words("Hello there.", &x, 1000, &[0, 340, 800]);
        assert_eq!(
            spans,
            vec![
                Span {
                    text: "Hello".into(),
                    start: 10,
                    end: 300
                },
                Span {
                    text: "there".into(),
                    start: 350,
                    end: 600
                },
            ]
        );
    }

    #[test]
    fn dotted_initials_take_several_marks() {
        let x = pcm(
            1000,
            &[(0, 90), (100, 190), (200, 290), (300, 390), (400, 490)],
        );
        let spans = align_words("the U.S.A. now", &x, 1000, &[0, 100, 200, 300, 400]);
        let got: Vec<_> = spans
            .iter()
            .map(|s| (s.text.as_str(), s.start, s.end))
            .collect();
        assert_eq!(
            got,
            vec![("the", 0, 90), ("U.S.A", 100, 390), ("now", 400, 490)]
        );
    }

    #[test]
    fn mismatched_counts_stay_monotonic_and_inside_the_audio() {
        let x = pcm(1000, &[(0, 200), (300, 500), (600, 900)]);
        for text in ["a b c d e f g", "one", "one two three four five six seven"] {
            let spans = align_words(text, &x, 1000, &[0, 250, 550]);
            assert_eq!(spans.len(), written_words(text).len());
            let mut last = 0;
            for s in &spans {
                assert!(
                    s.start >= last && s.end >= s.start && s.end <= x.len(),
                    "{spans:?}"
                );
                last = s.start;
            }
        }
    }

    #[test]
    fn no_words_no_spans() {
        assert!(align_words("... —", &pcm(100, &[]), 1000, &[0]).is_empty());
    }
}
