//! The 15 visemes of the Oculus (Meta) lip-sync set, their mouth poses, and how the letters of a
//! written word map onto them. The audio analysis ([`crate::LipSync`]) tells the vowels apart by
//! their formants; what it cannot hear, it gets from the text: the consonants whose shape is
//! visible (lips pressed for m/b/p, the lower lip on the teeth for f/v, the tongue for
//! t/d/n/l/th, rounded lips for sh/ch/r), placed in time by the voice's word timings.

use crate::mouth::{MouthPose, VowelClass};

/// A viseme of the Oculus set (named as it names them: `sil`, `PP`, `FF`, `TH`, `DD`, `kk`,
/// `CH`, `SS`, `nn`, `RR`, `aa`, `E`, `ih`, `oh`, `ou`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Viseme {
    /// Silence: the rest pose.
    Sil,
    /// p, b, m: lips pressed together.
    Pp,
    /// f, v: the lower lip against the upper teeth.
    Ff,
    /// th: the tongue between the teeth.
    Th,
    /// t, d: the tongue's tip on the ridge behind the upper teeth.
    Dd,
    /// k, g: the back of the tongue up, the jaw a little open.
    Kk,
    /// ch, sh, j: lips rounded and pushed out, teeth near.
    Ch,
    /// s, z: teeth close, lips spread.
    Ss,
    /// n, l: the tongue's tip up, the jaw a little open.
    Nn,
    /// r: lips a little rounded.
    Rr,
    /// "ah".
    Aa,
    /// "eh".
    E,
    /// "ih", "ee".
    Ih,
    /// "oh".
    Oh,
    /// "oo", and w.
    Ou,
}

impl Viseme {
    /// Every viseme, in the Oculus order.
    pub const ALL: [Viseme; 15] = [
        Viseme::Sil,
        Viseme::Pp,
        Viseme::Ff,
        Viseme::Th,
        Viseme::Dd,
        Viseme::Kk,
        Viseme::Ch,
        Viseme::Ss,
        Viseme::Nn,
        Viseme::Rr,
        Viseme::Aa,
        Viseme::E,
        Viseme::Ih,
        Viseme::Oh,
        Viseme::Ou,
    ];

    /// The viseme's mouth pose.
    pub fn pose(self) -> MouthPose {
        match self {
            Viseme::Sil => MouthPose::CLOSED,
            Viseme::Pp => MouthPose::for_vowel(VowelClass::Closed),
            Viseme::Ff => MouthPose::new(0.12, 0.3, 0.0).with_articulation(0.0, 1.0, 0.0),
            Viseme::Th => MouthPose::new(0.2, 0.2, 0.0).with_articulation(0.0, 0.0, 1.0),
            Viseme::Dd => MouthPose::new(0.22, 0.3, 0.0).with_articulation(0.0, 0.0, 0.8),
            Viseme::Kk => MouthPose::new(0.3, 0.25, 0.0),
            Viseme::Ch => MouthPose::new(0.22, 0.0, 0.65),
            Viseme::Ss => MouthPose::new(0.1, 0.6, 0.0),
            Viseme::Nn => MouthPose::new(0.18, 0.25, 0.0).with_articulation(0.0, 0.0, 0.7),
            Viseme::Rr => MouthPose::new(0.25, 0.0, 0.45),
            Viseme::Aa => MouthPose::for_vowel(VowelClass::A),
            Viseme::E => MouthPose::for_vowel(VowelClass::E),
            Viseme::Ih => MouthPose::for_vowel(VowelClass::I),
            Viseme::Oh => MouthPose::for_vowel(VowelClass::O),
            Viseme::Ou => MouthPose::for_vowel(VowelClass::U),
        }
    }

    /// A consonant whose shape the text adds to the audio's vowels.
    pub fn is_consonant(self) -> bool {
        match self {
            Viseme::Pp
            | Viseme::Ff
            | Viseme::Th
            | Viseme::Dd
            | Viseme::Kk
            | Viseme::Ch
            | Viseme::Ss
            | Viseme::Nn
            | Viseme::Rr => true,
            Viseme::Sil | Viseme::Aa | Viseme::E | Viseme::Ih | Viseme::Oh | Viseme::Ou => false,
        }
    }
}

/// One grapheme of a word: letters `start..end` (indexes into the word's lower-case letters)
/// sound as `viseme`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grapheme {
    /// First letter.
    pub start: usize,
    /// One past the last letter.
    pub end: usize,
    /// What it looks like; `None` for a letter with no shape of its own (h, a silent final e).
    pub viseme: Option<Viseme>,
}

/// The graphemes of an English word's letters (lower case, letters only), by common spelling
/// rules: digraphs (th, sh, ch, ph, ck, ng, wh, qu) are one sound, a doubled consonant or a run
/// of the same viseme ("ll", "mp", the "mb" of "lamb") is one, a final `e` after a consonant is
/// silent.
/// Spelling is only a guess at sound; the audio still decides how open the mouth is.
pub fn graphemes(letters: &[char]) -> Vec<Grapheme> {
    let n = letters.len();
    let mut out = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        let c = letters[i];
        let next = letters.get(i + 1).copied();
        let (len, viseme) = match (c, next) {
            ('t', Some('h')) => (2, Some(Viseme::Th)),
            ('s' | 'c', Some('h')) => (2, Some(Viseme::Ch)),
            ('p', Some('h')) => (2, Some(Viseme::Ff)),
            ('w', Some('h')) => (2, Some(Viseme::Ou)),
            ('c', Some('k')) | ('q', Some('u')) => (2, Some(Viseme::Kk)),
            ('n', Some('g')) => (2, Some(Viseme::Nn)),
            ('e', None) if i >= 2 && !is_vowel(letters[i - 1]) => (1, None),
            _ => (1, letter_viseme(c)),
        };
        // A doubled consonant ("ll", "tt", "mm") and a run of bilabials ("mp", "mb") are one.
        let mut end = i + len;
        if len == 1 {
            if let Some(v) = viseme.filter(|v| v.is_consonant()) {
                while end < n && letters[end] != 'h' && letter_viseme(letters[end]) == Some(v) {
                    end += 1;
                }
            }
        }
        out.push(Grapheme {
            start: i,
            end,
            viseme,
        });
        i = end;
    }
    out
}

fn is_vowel(c: char) -> bool {
    matches!(c, 'a' | 'e' | 'i' | 'o' | 'u' | 'y')
}

/// The viseme of a single letter.
fn letter_viseme(c: char) -> Option<Viseme> {
    Some(match c {
        'm' | 'b' | 'p' => Viseme::Pp,
        'f' | 'v' => Viseme::Ff,
        't' | 'd' => Viseme::Dd,
        'k' | 'g' | 'c' | 'q' | 'x' => Viseme::Kk,
        'j' => Viseme::Ch,
        's' | 'z' => Viseme::Ss,
        'n' | 'l' => Viseme::Nn,
        'r' => Viseme::Rr,
        'a' => Viseme::Aa,
        'e' => Viseme::E,
        'i' | 'y' => Viseme::Ih,
        'o' => Viseme::Oh,
        'u' | 'w' => Viseme::Ou,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spell(word: &str) -> Vec<(String, Option<Viseme>)> {
        let letters: Vec<char> = word.chars().collect();
        graphemes(&letters)
            .into_iter()
            .map(|g| (letters[g.start..g.end].iter().collect(), g.viseme))
            .collect()
    }

    #[test]
    fn digraphs_doubles_and_silent_letters() {
        use Viseme::*;
        let s = |w: &str| {
            spell(w)
                .into_iter()
                .map(|(g, v)| format!("{g}:{v:?}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            s("think"),
            format!(
                "th:{:?} i:{:?} n:{:?} k:{:?}",
                Some(Th),
                Some(Ih),
                Some(Nn),
                Some(Kk)
            )
        );
        assert_eq!(
            s("phone"),
            format!("ph:{:?} o:{:?} n:{:?} e:None", Some(Ff), Some(Oh), Some(Nn))
        );
        assert_eq!(
            s("lamb"),
            format!("l:{:?} a:{:?} mb:{:?}", Some(Nn), Some(Aa), Some(Pp))
        );
        assert_eq!(
            s("hello"),
            format!("h:None e:{:?} ll:{:?} o:{:?}", Some(E), Some(Nn), Some(Oh))
        );
        assert_eq!(s("ramp").split(' ').next_back(), Some("mp:Some(Pp)"));
        assert_eq!(s("she").split(' ').next(), Some("sh:Some(Ch)"));
    }

    #[test]
    fn every_letter_is_covered_once() {
        for word in [
            "strengths",
            "queue",
            "rhythm",
            "a",
            "",
            "mmmm",
            "bookkeeper",
        ] {
            let letters: Vec<char> = word.chars().collect();
            let g = graphemes(&letters);
            let mut at = 0;
            for x in &g {
                assert_eq!(x.start, at, "{word}");
                assert!(x.end > x.start, "{word}");
                at = x.end;
            }
            assert_eq!(at, letters.len(), "{word}");
        }
    }

    #[test]
    fn poses_are_in_range_and_consonants_are_marked() {
        for v in Viseme::ALL {
            let p = v.pose();
            assert_eq!(p, p.clamped(), "{v:?}");
        }
        assert_eq!(Viseme::Pp.pose().press, 1.0);
        assert_eq!(Viseme::Pp.pose().open, 0.0);
        assert_eq!(Viseme::Ff.pose().bite, 1.0);
        assert!(Viseme::Dd.pose().tongue > 0.5 && Viseme::Th.pose().tongue > 0.5);
        assert_eq!(Viseme::Sil.pose(), MouthPose::CLOSED);
        let consonants = Viseme::ALL.iter().filter(|v| v.is_consonant()).count();
        assert_eq!(consonants, 9);
    }
}
