//! The consonant marks of one stream: visible consonants ([`Viseme`]) placed in stream time from
//! the voice's timing hints, and how much of a video frame each covers.

use crate::viseme::{graphemes, Viseme};

/// Consonant marks last at least this long, in milliseconds (bilabial closures: 50 ms).
const MARK_MIN_MS: u64 = 40;
/// Bilabial closures last at least this long, in milliseconds.
const CLOSURE_MIN_MS: u64 = 50;
/// Marks from a single character are capped at this length, in milliseconds.
const SINGLE_MAX_MS: u64 = 300;
/// Bilabial closures placed inside a word are capped at this length, in milliseconds.
const CLOSURE_WORD_MAX_MS: u64 = 110;
/// Other consonants placed inside a word are capped at this length, in milliseconds.
const MARK_WORD_MAX_MS: u64 = 90;

/// A consonant at `[start, end)` stream milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Mark {
    pub start: u64,
    pub end: u64,
    pub viseme: Viseme,
}

/// The marks of a stream, sorted by start.
#[derive(Clone, Debug, Default)]
pub(super) struct Marks {
    marks: Vec<Mark>,
}

impl Marks {
    /// See [`super::LipSync::add_hint`].
    pub fn add_hint(&mut self, start_ms: u64, end_ms: u64, text: &str) {
        let end_ms = end_ms.max(start_ms);
        let letters: Vec<char> = text
            .chars()
            .filter(|c| c.is_alphabetic())
            .flat_map(char::to_lowercase)
            .collect();
        if letters.len() == 1 {
            if let Some(v) = graphemes(&letters)[0].viseme.filter(|v| v.is_consonant()) {
                let min = min_len(v);
                let len = (end_ms - start_ms).clamp(min, SINGLE_MAX_MS.max(min));
                self.add(centred(start_ms, end_ms, len), v);
            }
            return;
        }
        let n = letters.len() as u64;
        let span = end_ms - start_ms;
        let at = |k: usize| {
            let off = u128::from(span) * k as u128 / u128::from(n.max(1));
            start_ms.saturating_add(u64::try_from(off).unwrap_or(u64::MAX))
        };
        for g in graphemes(&letters) {
            let Some(v) = g.viseme.filter(|v| v.is_consonant()) else {
                continue;
            };
            let (a, b) = (at(g.start), at(g.end));
            let max = if v == Viseme::Pp {
                CLOSURE_WORD_MAX_MS
            } else {
                MARK_WORD_MAX_MS
            };
            self.add(centred(a, b, (b - a).clamp(min_len(v), max)), v);
        }
    }

    fn add(&mut self, (start, end): (u64, u64), viseme: Viseme) {
        let at = self.marks.partition_point(|m| m.start <= start);
        self.marks.insert(at, Mark { start, end, viseme });
    }

    /// Forget marks from `ms` on (those that started before end there).
    pub fn clear_from(&mut self, ms: u64) {
        self.marks.retain_mut(|m| {
            m.end = m.end.min(ms);
            m.start < ms
        });
    }

    /// Drop marks that ended by `ms`.
    pub fn discard_before(&mut self, ms: u64) {
        self.marks.retain(|m| m.end > ms);
    }

    /// The consonant that covers most of `[t0, t1)` (stream ms) and how much, 0..=1 (half the
    /// interval or more counts fully); a bilabial closure wins a tie.
    pub fn strongest(&self, t0: f64, t1: f64) -> Option<(Viseme, f32)> {
        let span = (t1 - t0).max(1e-9);
        let end = self.marks.partition_point(|m| (m.start as f64) < t1);
        let mut covered = [0.0f64; Viseme::ALL.len()];
        for m in &self.marks[..end] {
            let c = (m.end as f64).min(t1) - (m.start as f64).max(t0);
            if c > 0.0 {
                if let Some(i) = Viseme::ALL.iter().position(|&v| v == m.viseme) {
                    covered[i] += c;
                }
            }
        }
        let mut best: Option<(Viseme, f64)> = None;
        for (v, c) in Viseme::ALL.iter().zip(covered) {
            if c > 0.0 && best.is_none_or(|(_, b)| c > b) {
                best = Some((*v, c));
            }
        }
        best.map(|(v, c)| (v, ((c / span) * 2.0).min(1.0) as f32))
    }

    /// How many marks are held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.marks.len()
    }

    /// The marks of one viseme, as `(start, end)` (for tests).
    #[cfg(test)]
    pub fn of(&self, v: Viseme) -> Vec<(u64, u64)> {
        self.marks
            .iter()
            .filter(|m| m.viseme == v)
            .map(|m| (m.start, m.end))
            .collect()
    }
}

fn min_len(v: Viseme) -> u64 {
    if v == Viseme::Pp {
        CLOSURE_MIN_MS
    } else {
        MARK_MIN_MS
    }
}

/// `[a, b)` widened or narrowed to `len` around its centre.
fn centred(a: u64, b: u64, len: u64) -> (u64, u64) {
    let mid = a + (b - a) / 2;
    let start = mid.saturating_sub(len / 2);
    (start, start.saturating_add(len))
}
