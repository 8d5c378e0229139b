//! Mouth poses: the small, renderer-independent description of the mouth shape that is driven
//! from outside every frame (by lip-sync or by hand), plus viseme presets: a few vowel classes
//! ([`VowelClass`], what the audio analysis tells apart) and the 15 visemes of the Oculus set
//! ([`Viseme`], what timing hints from the text add: lips pressed for m/b/p, the lower lip on the
//! teeth for f/v, the tongue for t/d/n/l/th).

/// The shape of the mouth for one frame. All fields are in `0.0..=1.0`.
///
/// The axes combine freely, so a lip-sync module can blend between poses with
/// [`MouthPose::lerp`]:
/// - `open`: jaw opening, 0 = lips together, 1 = wide open jaw;
/// - `wide`: lips spread sideways (the "ee" smile), 0 = relaxed, 1 = fully spread;
/// - `round`: lips rounded and pushed forward (the "oo" pucker), 0 = relaxed, 1 = fully round;
/// - `press`: lips pressed together (m, b, p), whatever the jaw does;
/// - `bite`: the lower lip drawn up against the upper teeth (f, v);
/// - `tongue`: the tongue's tip up behind the upper teeth (t, d, n, l, th).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct MouthPose {
    /// Jaw opening, 0 closed .. 1 wide open.
    pub open: f32,
    /// Lip spread, 0 relaxed .. 1 fully spread ("ee").
    pub wide: f32,
    /// Lip rounding, 0 relaxed .. 1 fully rounded ("oo").
    pub round: f32,
    /// Lips pressed together, 0 free .. 1 sealed (m, b, p).
    pub press: f32,
    /// Lower lip against the upper teeth, 0 free .. 1 tucked (f, v).
    pub bite: f32,
    /// Tongue tip raised to the upper teeth, 0 down .. 1 up (t, d, n, l, th).
    pub tongue: f32,
}

impl MouthPose {
    /// The resting, closed mouth (a soft closed smile).
    pub const CLOSED: MouthPose = MouthPose {
        open: 0.0,
        wide: 0.0,
        round: 0.0,
        press: 0.0,
        bite: 0.0,
        tongue: 0.0,
    };

    /// Builds a pose of jaw and lip shape (no pressing, biting or tongue); values are not
    /// clamped (see [`MouthPose::clamped`]).
    pub const fn new(open: f32, wide: f32, round: f32) -> Self {
        MouthPose {
            open,
            wide,
            round,
            press: 0.0,
            bite: 0.0,
            tongue: 0.0,
        }
    }

    /// The same pose with `press`, `bite` and `tongue` set (not clamped).
    pub const fn with_articulation(self, press: f32, bite: f32, tongue: f32) -> Self {
        MouthPose {
            press,
            bite,
            tongue,
            ..self
        }
    }

    /// The same pose with every field clamped to `0.0..=1.0`; NaN becomes 0.
    pub fn clamped(self) -> Self {
        MouthPose {
            open: clamp01(self.open),
            wide: clamp01(self.wide),
            round: clamp01(self.round),
            press: clamp01(self.press),
            bite: clamp01(self.bite),
            tongue: clamp01(self.tongue),
        }
    }

    /// Linear blend from `a` (t = 0) to `b` (t = 1); `t` is clamped to `0.0..=1.0`.
    pub fn lerp(a: MouthPose, b: MouthPose, t: f32) -> Self {
        let t = clamp01(t);
        let mix = |x: f32, y: f32| x + (y - x) * t;
        MouthPose {
            open: mix(a.open, b.open),
            wide: mix(a.wide, b.wide),
            round: mix(a.round, b.round),
            press: mix(a.press, b.press),
            bite: mix(a.bite, b.bite),
            tongue: mix(a.tongue, b.tongue),
        }
    }

    /// The preset pose for a viseme class (see [`VowelClass`]).
    pub fn for_vowel(class: VowelClass) -> Self {
        match class {
            VowelClass::A => MouthPose::new(0.85, 0.25, 0.0),
            VowelClass::E => MouthPose::new(0.45, 0.65, 0.0),
            VowelClass::I => MouthPose::new(0.22, 1.0, 0.0),
            VowelClass::O => MouthPose::new(0.6, 0.0, 0.75),
            VowelClass::U => MouthPose::new(0.25, 0.0, 1.0),
            VowelClass::Closed => MouthPose::new(0.0, 0.2, 0.0).with_articulation(1.0, 0.0, 0.0),
            VowelClass::Rest => MouthPose::CLOSED,
        }
    }
}

/// A small set of viseme classes, enough for convincing cartoon lip-sync.
///
/// | class    | sounds                  | pose (open, wide, round) |
/// |----------|-------------------------|--------------------------|
/// | `A`      | "ah" (f**a**ther, c**u**p) | 0.85, 0.25, 0.0       |
/// | `E`      | "eh" (b**e**d, c**a**t)    | 0.45, 0.65, 0.0       |
/// | `I`      | "ee" (s**ee**, h**i**t)    | 0.22, 1.0, 0.0        |
/// | `O`      | "oh" (g**o**, l**aw**)     | 0.6, 0.0, 0.75        |
/// | `U`      | "oo" (b**oo**t), also w    | 0.25, 0.0, 1.0        |
/// | `Closed` | m, b, p (lips pressed)     | 0.0, 0.2, 0.0         |
/// | `Rest`   | silence                    | 0.0, 0.0, 0.0         |
///
/// Consonants other than m/b/p are usually best shown as a small blend toward the neighbouring
/// vowel (for example 30 % of `E`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VowelClass {
    /// Open "ah".
    A,
    /// Half-open, spread "eh".
    E,
    /// Nearly closed, fully spread "ee".
    I,
    /// Open, rounded "oh".
    O,
    /// Nearly closed, fully rounded "oo" (and "w").
    U,
    /// Lips pressed together: m, b, p.
    Closed,
    /// Silence: the relaxed closed smile.
    Rest,
}

impl VowelClass {
    /// Every class, in declaration order.
    pub const ALL: [VowelClass; 7] = [
        VowelClass::A,
        VowelClass::E,
        VowelClass::I,
        VowelClass::O,
        VowelClass::U,
        VowelClass::Closed,
        VowelClass::Rest,
    ];
}

fn clamp01(v: f32) -> f32 {
    if v.is_nan() {
        0.0
    } else {
        v.clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamped_limits_and_cleans_nan() {
        let p = MouthPose::new(1.5, -0.2, f32::NAN).clamped();
        assert_eq!(p, MouthPose::new(1.0, 0.0, 0.0));
    }

    #[test]
    fn lerp_endpoints_and_middle() {
        let a = MouthPose::CLOSED;
        let b = MouthPose::for_vowel(VowelClass::A);
        assert_eq!(MouthPose::lerp(a, b, 0.0), a);
        assert_eq!(MouthPose::lerp(a, b, 1.0), b);
        assert_eq!(MouthPose::lerp(a, b, 7.0), b);
        let m = MouthPose::lerp(a, b, 0.5);
        assert!((m.open - b.open / 2.0).abs() < 1e-6);
    }

    #[test]
    fn presets_are_in_range_and_distinct() {
        for (i, a) in VowelClass::ALL.iter().enumerate() {
            let p = MouthPose::for_vowel(*a);
            assert_eq!(p, p.clamped());
            for b in &VowelClass::ALL[i + 1..] {
                assert_ne!(p, MouthPose::for_vowel(*b), "{a:?} vs {b:?}");
            }
        }
        assert_eq!(MouthPose::for_vowel(VowelClass::Rest), MouthPose::CLOSED);
        assert_eq!(MouthPose::default(), MouthPose::CLOSED);
    }
}
