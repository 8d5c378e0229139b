//! Objective lip-sync measurement: the loudness envelope of audio per video frame, the opening of
//! the mouth measured from rendered (or decoded) pixels, correlation helpers, and deterministic
//! speech-like test signals.
//!
//! These are used by the avatar's own tests and by end-to-end tests elsewhere (for example on
//! frames decoded by ffmpeg from the live stream), so they are plain functions without state.
//!
//! ```
//! use talkstream_avatar::analysis::{best_lag, loudness_envelope, pearson, synthetic_speech};
//!
//! let pcm = synthetic_speech(16_000, 3_000, 1);
//! let env = loudness_envelope(&pcm, 16_000, 25);
//! assert_eq!(env.len(), 75);
//! assert!((pearson(&env, &env) - 1.0).abs() < 1e-6);
//! assert_eq!(best_lag(&env, &env, 3).0, 0);
//! ```

use std::f64::consts::PI;

use crate::mouth::VowelClass;

/// Loudness of `pcm` (mono, `sample_rate` Hz) per video frame at `fps`: the RMS of the samples
/// that fall in frame n's display interval `[n / fps, (n + 1) / fps)`, relative to full scale
/// (a full-scale square wave gives 1.0).
///
/// There are `ceil(len * fps / sample_rate)` frames; the last one may be partial. Returns an
/// empty vector if the rate or the frame rate is 0.
pub fn loudness_envelope(pcm: &[i16], sample_rate: u32, fps: u32) -> Vec<f32> {
    if sample_rate == 0 || fps == 0 || pcm.is_empty() {
        return Vec::new();
    }
    let (sr, fps) = (u128::from(sample_rate), u128::from(fps));
    let len = pcm.len() as u128;
    let frames = (len * fps).div_ceil(sr);
    let bound = |n: u128| ((n * sr / fps).min(len)) as usize;
    (0..frames)
        .map(|n| {
            let s = &pcm[bound(n)..bound(n + 1)];
            if s.is_empty() {
                return 0.0;
            }
            let sum: f64 = s.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
            ((sum / s.len() as f64).sqrt() / 32_768.0) as f32
        })
        .collect()
}

/// Pearson correlation of the first `min(a.len(), b.len())` values of `a` and `b`, in -1..=1.
/// Returns 0 when there are fewer than two values, either series is constant, or a value is not
/// finite.
pub fn pearson(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    if n < 2 {
        return 0.0;
    }
    let (a, b) = (&a[..n], &b[..n]);
    if a.iter().chain(b).any(|v| !v.is_finite()) {
        return 0.0;
    }
    let mean = |s: &[f32]| s.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
    let (ma, mb) = (mean(a), mean(b));
    let (mut sab, mut saa, mut sbb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (dx, dy) = (f64::from(x) - ma, f64::from(y) - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    if saa <= 0.0 || sbb <= 0.0 {
        return 0.0;
    }
    (sab / (saa * sbb).sqrt()).clamp(-1.0, 1.0) as f32
}

/// The shift of `b` against `a`, in `-max_lag..=max_lag` samples (frames), that maximises the
/// Pearson correlation of the overlapping parts, and that correlation.
///
/// A positive lag means `b` is late: `b[i + lag]` lines up with `a[i]`. On ties the smaller
/// |lag| wins (then the negative one). Lags that leave fewer than two overlapping values are
/// skipped; if none is left the result is `(0, 0.0)`.
pub fn best_lag(a: &[f32], b: &[f32], max_lag: usize) -> (isize, f32) {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut best: Option<(isize, f32)> = None;
    let max_lag = max_lag.min(n);
    for mag in 0..=max_lag {
        for lag in [-(mag as isize), mag as isize] {
            if mag == 0 && lag < 0 {
                continue;
            }
            if n - mag < 2 {
                continue;
            }
            let r = if lag >= 0 {
                pearson(&a[..n - mag], &b[mag..])
            } else {
                pearson(&a[mag..], &b[..n - mag])
            };
            if best.is_none_or(|(_, br)| r > br) {
                best = Some((lag, r));
            }
        }
    }
    best.unwrap_or((0, 0.0))
}

/// How open the drawn mouth is in one RGBA frame, measured from the pixels: the share (0..=1)
/// of the pixels of `region` (x, y, w, h, as given by [`crate::Avatar::mouth_region`]) that show
/// the dark, reddish inside of the mouth. A closed mouth gives 0.
///
/// `rgba` is a frame of `width` pixels per row, 4 bytes per pixel (alpha is ignored); the region
/// is clipped to the frame. The measure is made to survive lossy video: the darkness threshold is
/// relative to the brightest skin in the region (its 90th luma percentile), the test for
/// "reddish" is loose (red above green, blue not above red by much, which holds for the mouth
/// inside even after 4:2:0 chroma subsampling), and pixels near the threshold count partially,
/// so noise and blur change the result smoothly rather than flipping whole pixels. The dark seam
/// of closed lips stays above the threshold. Teeth and tongue are not counted, so for a given
/// pose the value is a little lower than the true opening area; it grows monotonically with the
/// jaw opening.
pub fn measure_mouth_opening(rgba: &[u8], width: u32, region: (u32, u32, u32, u32)) -> f32 {
    let w = width as usize;
    if w == 0 {
        return 0.0;
    }
    let height = rgba.len() / 4 / w;
    let (rx, ry, rw, rh) = region;
    let x0 = (rx as usize).min(w);
    let y0 = (ry as usize).min(height);
    let x1 = (rx as usize).saturating_add(rw as usize).min(w);
    let y1 = (ry as usize).saturating_add(rh as usize).min(height);
    if x1 <= x0 || y1 <= y0 {
        return 0.0;
    }
    let luma =
        |p: &[u8]| 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]);
    let pixels = |f: &mut dyn FnMut(&[u8])| {
        for y in y0..y1 {
            let row = &rgba[(y * w + x0) * 4..(y * w + x1) * 4];
            for p in row.chunks_exact(4) {
                f(p);
            }
        }
    };
    // Reference brightness: the 90th percentile of luma (the skin around the lips).
    let mut hist = [0u32; 256];
    pixels(&mut |p| hist[(luma(p) as usize).min(255)] += 1);
    let total = ((x1 - x0) * (y1 - y0)) as u32;
    let target = total - total / 10;
    let mut acc = 0u32;
    let mut p90 = 255usize;
    for (i, &c) in hist.iter().enumerate() {
        acc += c;
        if acc >= target.max(1) {
            p90 = i;
            break;
        }
    }
    let reference = (p90 as f32).max(90.0);
    // Fully counted below `full`, not at all above `none` (the closed-lip seam is ~0.37).
    let full = OPENING_FULL_DARK * reference;
    let none = OPENING_NO_DARK * reference;
    let mut sum = 0.0f32;
    pixels(&mut |p| {
        let y = luma(p);
        if y >= none {
            return;
        }
        let dark = ((none - y) / (none - full)).min(1.0);
        let (r, g, b) = (f32::from(p[0]), f32::from(p[1]), f32::from(p[2]));
        let red = ((r - g - 2.0) / 10.0).clamp(0.0, 1.0) * ((r + 12.0 - b) / 10.0).clamp(0.0, 1.0);
        sum += dark * red;
    });
    sum / total as f32
}

/// Luma (relative to the skin reference) at and below which a reddish pixel counts fully.
const OPENING_FULL_DARK: f32 = 0.27;
/// Luma (relative to the skin reference) at and above which a pixel does not count.
const OPENING_NO_DARK: f32 = 0.33;

/// Typical first three formants (Hz, adult male, after Peterson & Barney) of a vowel class, or
/// `None` for `Closed` and `Rest`.
pub fn vowel_formants(class: VowelClass) -> Option<[f32; 3]> {
    match class {
        VowelClass::A => Some([730.0, 1090.0, 2440.0]),
        VowelClass::E => Some([530.0, 1840.0, 2480.0]),
        VowelClass::I => Some([270.0, 2290.0, 3010.0]),
        VowelClass::O => Some([570.0, 840.0, 2410.0]),
        VowelClass::U => Some([300.0, 870.0, 2240.0]),
        VowelClass::Closed | VowelClass::Rest => None,
    }
}

/// A steady synthetic vowel: a band-limited glottal-like source at `f0` Hz (harmonics falling at
/// 6 dB per octave) through three formant resonators, `duration_ms` long, normalised so its RMS
/// is `rms` of full scale (clamped to 0..=0.5), with 10 ms fades at both ends.
pub fn synthetic_vowel(
    sample_rate: u32,
    formants: [f32; 3],
    f0: f32,
    duration_ms: u32,
    rms: f32,
) -> Vec<i16> {
    let n = (u64::from(sample_rate) * u64::from(duration_ms) / 1000) as usize;
    if n == 0 || !f0.is_finite() || f0 <= 0.0 {
        return vec![0; n];
    }
    let sr = f64::from(sample_rate);
    let mut voice = Voice::new(sr);
    voice.set_formants(formants);
    let raw: Vec<f64> = (0..n).map(|_| voice.next(f64::from(f0))).collect();
    let sum: f64 = raw.iter().map(|v| v * v).sum();
    let gain = f64::from(rms.clamp(0.0, 0.5)) * 32_768.0 / (sum / n as f64).sqrt().max(1e-12);
    let fade = (sr * 0.010) as usize;
    raw.iter()
        .enumerate()
        .map(|(i, v)| {
            let edge = i.min(n - 1 - i);
            let f = if edge < fade {
                edge as f64 / fade as f64
            } else {
                1.0
            };
            to_i16(v * gain * f)
        })
        .collect()
}

/// Deterministic speech-like audio for lip-sync tests, `duration_ms` long at `sample_rate`:
/// phrases of 3..=7 syllables separated by pauses of true silence (the first 300 ms are silent
/// too), each syllable a vowel (one of A, E, I, O, U with their formants) with a smooth rise and
/// fall and its own loudness, separated by short quiet consonant gaps (sometimes with a little
/// fricative noise), over a gliding pitch. Peaks stay below about -3 dBFS. The same arguments
/// always give the same samples; `seed` picks the sequence.
pub fn synthetic_speech(sample_rate: u32, duration_ms: u32, seed: u64) -> Vec<i16> {
    let n = (u64::from(sample_rate) * u64::from(duration_ms) / 1000) as usize;
    let mut out = vec![0i16; n];
    if n == 0 {
        return out;
    }
    let sr = f64::from(sample_rate);
    let ms = |v: f64| (v * sr / 1000.0) as usize;
    let mut rng = Lcg(seed ^ 0x5eed_1234_abcd_9876);
    let vowels = [
        VowelClass::A,
        VowelClass::E,
        VowelClass::I,
        VowelClass::O,
        VowelClass::U,
    ];
    let mut voice = Voice::new(sr);
    let mut pos = ms(300.0);
    let mut phase_f0 = rng.range(0.0, 6.0);
    while pos < n {
        let syllables = 3 + (rng.next() % 5) as usize;
        for s in 0..syllables {
            let class = vowels[(rng.next() % 5) as usize];
            let formants = vowel_formants(class).unwrap_or([500.0, 1500.0, 2500.0]);
            voice.set_formants(formants);
            let len = ms(rng.range(140.0, 320.0));
            let rise = ms(rng.range(30.0, 60.0)).max(1);
            let fall = ms(rng.range(40.0, 90.0)).max(1);
            let peak = rng.range(0.08, 0.24);
            for i in 0..len {
                if pos + i >= n {
                    break;
                }
                let env = if i < rise {
                    0.5 - 0.5 * (PI * i as f64 / rise as f64).cos()
                } else if i + fall > len {
                    let j = (len - i) as f64 / fall as f64;
                    0.5 - 0.5 * (PI * j).cos()
                } else {
                    1.0
                };
                phase_f0 += 1.0 / sr;
                let f0 = 118.0 + 18.0 * (phase_f0 * 2.1).sin();
                let v = voice.next(f0) * voice.gain * peak * env * 32_768.0;
                out[pos + i] = to_i16(v);
            }
            pos += len;
            if s + 1 < syllables {
                // A quiet consonant gap, sometimes with some fricative noise.
                let gap = ms(rng.range(25.0, 90.0));
                let noisy = rng.next().is_multiple_of(3);
                for i in 0..gap {
                    if pos + i >= n {
                        break;
                    }
                    if noisy {
                        let w = (PI * i as f64 / gap as f64).sin();
                        out[pos + i] = to_i16(rng.range(-1.0, 1.0) * 0.012 * 32_768.0 * w);
                    }
                }
                pos += gap;
            }
        }
        pos += ms(rng.range(350.0, 700.0));
    }
    out
}

fn to_i16(v: f64) -> i16 {
    v.round().clamp(-32_768.0, 32_767.0) as i16
}

/// A tiny formant synthesiser: harmonic source through three cascaded two-pole resonators.
struct Voice {
    sr: f64,
    phase: f64,
    res: [Resonator; 3],
    /// Gain that brings a steady vowel of the current formants to about unit RMS.
    gain: f64,
}

impl Voice {
    fn new(sr: f64) -> Self {
        Voice {
            sr,
            phase: 0.0,
            res: [Resonator::default(); 3],
            gain: 1.0,
        }
    }

    fn set_formants(&mut self, f: [f32; 3]) {
        const BW: [f64; 3] = [70.0, 100.0, 140.0];
        for (i, r) in self.res.iter_mut().enumerate() {
            r.tune(f64::from(f[i]), BW[i], self.sr);
        }
        // Unit-RMS gain for these formants, measured on a short run of a copy.
        let mut probe = Voice {
            sr: self.sr,
            phase: 0.0,
            res: self.res,
            gain: 1.0,
        };
        for r in &mut probe.res {
            r.y1 = 0.0;
            r.y2 = 0.0;
        }
        let n = (self.sr * 0.05) as usize;
        let skip = n / 2;
        let mut sum = 0.0;
        for i in 0..n {
            let v = probe.next(120.0);
            if i >= skip {
                sum += v * v;
            }
        }
        self.gain = 1.0 / (sum / (n - skip) as f64).sqrt().max(1e-12);
    }

    fn next(&mut self, f0: f64) -> f64 {
        self.phase = (self.phase + f0 / self.sr).fract();
        let top = (0.45 * self.sr).min(5_000.0);
        let harmonics = (top / f0).floor().max(1.0) as usize;
        let mut x = 0.0;
        for k in 1..=harmonics {
            x += (2.0 * PI * k as f64 * self.phase).sin() / k as f64;
        }
        self.res.iter_mut().fold(x, |v, r| r.step(v))
    }
}

#[derive(Clone, Copy, Default)]
struct Resonator {
    a: f64,
    b1: f64,
    b2: f64,
    y1: f64,
    y2: f64,
}

impl Resonator {
    fn tune(&mut self, f: f64, bw: f64, sr: f64) {
        let r = (-PI * bw / sr).exp();
        let theta = 2.0 * PI * f.min(0.49 * sr) / sr;
        self.b1 = 2.0 * r * theta.cos();
        self.b2 = -r * r;
        self.a = 1.0 - self.b1 - self.b2;
    }

    fn step(&mut self, x: f64) -> f64 {
        let y = self.a * x + self.b1 * self.y1 + self.b2 * self.y2;
        self.y2 = self.y1;
        self.y1 = y;
        y
    }
}

/// A small deterministic generator (64-bit LCG, high bits).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next() as f64 / (1u64 << 31) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_frames_and_values() {
        // 1 s at 8 kHz, 25 fps: 25 frames of 320 samples; a square wave of amplitude 1000 in
        // frames 5..10.
        let mut pcm = vec![0i16; 8_000];
        for (i, v) in pcm.iter_mut().enumerate().skip(1_600).take(1_600) {
            *v = if i % 2 == 0 { 1000 } else { -1000 };
        }
        let env = loudness_envelope(&pcm, 8_000, 25);
        assert_eq!(env.len(), 25);
        for (i, &e) in env.iter().enumerate() {
            let want = if (5..10).contains(&i) {
                1000.0 / 32_768.0
            } else {
                0.0
            };
            assert!((e - want).abs() < 1e-6, "frame {i}: {e}");
        }
        assert_eq!(loudness_envelope(&pcm, 0, 25), Vec::<f32>::new());
        assert_eq!(loudness_envelope(&pcm[..330], 8_000, 25).len(), 2);
    }

    #[test]
    fn pearson_basics() {
        let a = [1.0, 2.0, 3.0, 4.0];
        assert!((pearson(&a, &[2.0, 4.0, 6.0, 8.0]) - 1.0).abs() < 1e-6);
        assert!((pearson(&a, &[4.0, 3.0, 2.0, 1.0]) + 1.0).abs() < 1e-6);
        assert_eq!(pearson(&a, &[1.0, 1.0, 1.0, 1.0]), 0.0);
        assert_eq!(pearson(&a, &[1.0]), 0.0);
        assert_eq!(pearson(&a, &[1.0, f32::NAN, 0.0, 2.0]), 0.0);
    }

    #[test]
    fn best_lag_finds_the_shift() {
        let a: Vec<f32> = (0..100).map(|i| ((i * 37) % 11) as f32).collect();
        // b is a delayed by 3.
        let b: Vec<f32> = (0..100)
            .map(|i| if i >= 3 { a[i - 3] } else { 0.0 })
            .collect();
        let (lag, r) = best_lag(&a, &b, 5);
        assert_eq!(lag, 3);
        assert!(r > 0.99);
        let (lag, _) = best_lag(&b, &a, 5);
        assert_eq!(lag, -3);
        assert_eq!(best_lag(&a, &b, 0).0, 0);
        assert_eq!(best_lag(&[], &[], 4), (0, 0.0));
    }

    #[test]
    fn synthetic_signals_are_deterministic_and_bounded() {
        let a = synthetic_speech(16_000, 4_000, 3);
        assert_eq!(a, synthetic_speech(16_000, 4_000, 3));
        assert_ne!(a, synthetic_speech(16_000, 4_000, 4));
        assert_eq!(a.len(), 64_000);
        assert!(
            a[..16_000 * 3 / 10].iter().all(|&v| v == 0),
            "leading silence"
        );
        let peak = a.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0);
        assert!(peak > 3_000 && peak < 32_000, "peak {peak}");
        let v = synthetic_vowel(8_000, [730.0, 1090.0, 2440.0], 120.0, 500, 0.1);
        assert_eq!(v.len(), 4_000);
        let env = loudness_envelope(&v[800..3_200], 8_000, 25);
        for e in env {
            assert!((e - 0.1).abs() < 0.02, "rms {e}");
        }
    }

    #[test]
    fn opening_measure_handles_bad_regions() {
        let buf = vec![0u8; 8 * 8 * 4];
        assert_eq!(measure_mouth_opening(&buf, 0, (0, 0, 8, 8)), 0.0);
        assert_eq!(measure_mouth_opening(&buf, 8, (9, 9, 8, 8)), 0.0);
        assert_eq!(measure_mouth_opening(&buf, 8, (0, 0, 0, 8)), 0.0);
        assert_eq!(
            measure_mouth_opening(&buf, 8, (u32::MAX, 0, u32::MAX, 8)),
            0.0
        );
        // Black is dark but not reddish.
        assert_eq!(measure_mouth_opening(&buf, 8, (0, 0, 100, 100)), 0.0);
        // Skin with a dark red 2x2 patch: 4 of 64 pixels.
        let mut img = Vec::new();
        for y in 0..8 {
            for x in 0..8 {
                let inside = (3..5).contains(&x) && (3..5).contains(&y);
                img.extend_from_slice(if inside {
                    &[70u8, 20, 30, 255]
                } else {
                    &[247u8, 204, 170, 255]
                });
            }
        }
        let m = measure_mouth_opening(&img, 8, (0, 0, 8, 8));
        assert!((m - 4.0 / 64.0).abs() < 1e-6, "{m}");
    }
}
