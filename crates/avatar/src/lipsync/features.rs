//! Audio analysis of one frame's window: RMS level, the power spectrum (a small radix-2 FFT),
//! the linear-prediction envelope and its first two formants, fricative energy, and the soft
//! match of the formants against vowel prototypes.

use super::{buffer::Audio, FFT_MS, GATE_DB};

/// What the analyzer sees in one frame's window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Features {
    /// RMS level, dBFS (-120 for digital silence).
    pub(crate) level_db: f32,
    /// First formant estimate, Hz (0 if none was found).
    pub(crate) f1_hz: f32,
    /// Second formant estimate, Hz (0 if none was found).
    pub(crate) f2_hz: f32,
    /// Share of the pre-emphasised energy above 3.5 kHz, 0..1.
    pub(crate) fricative: f32,
}

/// Vowel prototypes (first and second formant, Hz; roughly between adult male and female
/// averages) for A, E, I, O, U.
pub(super) const PROTOTYPES: [(f32, f32); 5] = [
    (780.0, 1_200.0),
    (600.0, 1_900.0),
    (300.0, 2_450.0),
    (560.0, 900.0),
    (330.0, 950.0),
];
/// Width of the vowel classes in the formant plane, in octaves.
pub(super) const CLASS_WIDTH_OCT: f32 = 0.3;

impl Features {
    /// Weights of A, E, I, O, U (sum 1) for this spectrum: a soft nearest-prototype choice in
    /// the (log F1, log F2) plane. Without a usable formant estimate the shape is a neutral A.
    pub(crate) fn class_weights(&self) -> [f32; 5] {
        if self.f1_hz <= 0.0 || self.f2_hz <= 0.0 {
            return [1.0, 0.0, 0.0, 0.0, 0.0];
        }
        let (l1, l2) = (self.f1_hz.log2(), self.f2_hz.log2());
        let mut w = PROTOTYPES.map(|(p1, p2)| {
            let d1 = l1 - p1.log2();
            let d2 = l2 - p2.log2();
            (d1 * d1 + d2 * d2) / (2.0 * CLASS_WIDTH_OCT * CLASS_WIDTH_OCT)
        });
        let min = w.iter().copied().fold(f32::INFINITY, f32::min);
        for v in &mut w {
            *v = (-(*v - min)).exp();
        }
        let total: f32 = w.iter().sum();
        w.map(|v| v / total)
    }
}

/// Order of the linear-prediction model of the spectral envelope.
pub(super) const LPC_ORDER: usize = 10;
/// The envelope model covers 0..this many Hz (the formant region; up to Nyquist if lower).
pub(super) const LPC_TOP_HZ: f32 = 4_000.0;
/// Points at which the envelope is evaluated to find its peaks.
pub(super) const ENVELOPE_POINTS: usize = 160;

/// The per-frame signal analysis: RMS level, a small FFT, and the formants from a
/// linear-prediction envelope fitted to the low band of the (pre-emphasised) power spectrum.
#[derive(Debug, Clone)]
pub(super) struct Analyzer {
    sr: u32,
    fft: Fft,
    /// Samples read per frame: max(RMS window, FFT window).
    span: usize,
    buf: Vec<f32>,
    /// Pre-emphasis gain per FFT bin (+6 dB per octave).
    emphasis: Vec<f32>,
    /// FFT bins that make up the envelope band 0..=lpc_bins.
    lpc_bins: usize,
    /// Hz at the top of the envelope band.
    lpc_top_hz: f32,
    /// cos(pi m k / lpc_bins) for m in 0..=LPC_ORDER, k in 0..=lpc_bins (row per m).
    acf_cos: Vec<f32>,
    /// cos and sin of (pi j i / ENVELOPE_POINTS) for j in 0..ENVELOPE_POINTS, i in 1..=order.
    env_cos: Vec<f32>,
    env_sin: Vec<f32>,
    envelope: Vec<f32>,
    /// Pre-emphasised power spectrum of the current frame.
    weighted: Vec<f32>,
}

impl Analyzer {
    pub(super) fn new(sr: u32, rms_len: usize) -> Self {
        let max = (sr as usize * FFT_MS as usize / 1000).max(16);
        let mut n = 16usize;
        while n * 2 <= max {
            n *= 2;
        }
        let fft = Fft::new(n);
        let hz = f64::from(sr) / n as f64;
        let emphasis = (0..=n / 2)
            .map(|k| {
                let f = k as f64 * hz / 1000.0;
                (f * f) as f32
            })
            .collect();
        let lpc_bins = ((f64::from(LPC_TOP_HZ) / hz).round() as usize).clamp(LPC_ORDER + 2, n / 2);
        let lpc_top_hz = (lpc_bins as f64 * hz) as f32;
        let pi = std::f64::consts::PI;
        let mut acf_cos = Vec::with_capacity((LPC_ORDER + 1) * (lpc_bins + 1));
        for m in 0..=LPC_ORDER {
            for k in 0..=lpc_bins {
                acf_cos.push((pi * (m * k) as f64 / lpc_bins as f64).cos() as f32);
            }
        }
        let mut env_cos = Vec::with_capacity(ENVELOPE_POINTS * LPC_ORDER);
        let mut env_sin = Vec::with_capacity(ENVELOPE_POINTS * LPC_ORDER);
        for j in 0..ENVELOPE_POINTS {
            for i in 1..=LPC_ORDER {
                let w = pi * (j * i) as f64 / ENVELOPE_POINTS as f64;
                env_cos.push(w.cos() as f32);
                env_sin.push(w.sin() as f32);
            }
        }
        let span = rms_len.max(n);
        Analyzer {
            sr,
            fft,
            span,
            buf: vec![0.0; span],
            emphasis,
            lpc_bins,
            lpc_top_hz,
            acf_cos,
            env_cos,
            env_sin,
            envelope: vec![0.0; ENVELOPE_POINTS],
            weighted: vec![0.0; n / 2 + 1],
        }
    }

    pub(super) fn span(&self) -> usize {
        self.span
    }

    pub(super) fn analyze(&mut self, audio: &Audio, start: i128, rms_len: usize) -> Features {
        audio.read(start, &mut self.buf);
        let mid = self.span / 2;
        let rms_from = mid - rms_len / 2;
        let energy: f64 = self.buf[rms_from..rms_from + rms_len]
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum();
        let rms = (energy / rms_len.max(1) as f64).sqrt();
        let level_db = if rms > 1e-6 {
            (20.0 * rms.log10()) as f32
        } else {
            -120.0
        };
        let mut features = Features {
            level_db,
            f1_hz: 0.0,
            f2_hz: 0.0,
            fricative: 0.0,
        };
        if level_db <= GATE_DB {
            return features;
        }
        let n = self.fft.n;
        let fft_from = mid - n / 2;
        let power = self.fft.power(&self.buf[fft_from..fft_from + n]);
        let hz = self.sr as f32 / n as f32;
        let bin = |f: f32| ((f / hz).round() as usize).min(n / 2);

        for ((w, &p), &e) in self.weighted.iter_mut().zip(power).zip(&self.emphasis) {
            *w = p * e;
        }
        let weighted = &self.weighted;

        // Fricative share: pre-emphasised energy above 3.5 kHz against 150 Hz..8 kHz.
        let (lo, mid_bin, hi) = (bin(150.0), bin(3_500.0), bin(8_000.0));
        let voiced: f32 = weighted[lo..mid_bin.max(lo)].iter().sum();
        let noise: f32 = weighted[mid_bin..hi.max(mid_bin)].iter().sum();
        if voiced + noise > 0.0 {
            features.fricative = noise / (voiced + noise);
        }

        // Autocorrelation of the pre-emphasised low band, then Levinson-Durbin.
        let kb = self.lpc_bins;
        let mut r = [0.0f64; LPC_ORDER + 1];
        for (m, rm) in r.iter_mut().enumerate() {
            let row = &self.acf_cos[m * (kb + 1)..(m + 1) * (kb + 1)];
            *rm = weighted[..=kb]
                .iter()
                .zip(row)
                .map(|(&w, &c)| f64::from(w * c))
                .sum();
        }
        let Some(a) = levinson(&r) else {
            return features;
        };

        // Evaluate the envelope 1/|A|^2 over the band and take its first two peaks.
        for (j, e) in self.envelope.iter_mut().enumerate() {
            let (mut re, mut im) = (1.0f32, 0.0f32);
            let row = j * LPC_ORDER;
            for i in 0..LPC_ORDER {
                re += a[i + 1] * self.env_cos[row + i];
                im -= a[i + 1] * self.env_sin[row + i];
            }
            *e = 1.0 / (re * re + im * im).max(1e-12);
        }
        // Peaks more than 30 dB under the strongest one are modelling noise, not formants.
        let step = self.lpc_top_hz / ENVELOPE_POINTS as f32;
        let env = &self.envelope;
        let floor = env.iter().copied().fold(0.0f32, f32::max) * 1e-3;
        let mut peaks = (1..ENVELOPE_POINTS - 1)
            .filter(|&j| env[j] > env[j - 1] && env[j] >= env[j + 1] && env[j] >= floor)
            .map(|j| j as f32 * step);
        if let Some(f1) = peaks.by_ref().find(|&f| (200.0..=1_100.0).contains(&f)) {
            features.f1_hz = f1;
            if let Some(f2) = peaks.find(|&f| f >= f1 * 1.2 && f <= 3_200.0) {
                features.f2_hz = f2;
            }
        }
        features
    }
}

/// Linear-prediction coefficients a[0] = 1, a[1..=p] from the autocorrelation `r`
/// (Levinson-Durbin); `None` if the signal is degenerate.
pub(super) fn levinson(r: &[f64; LPC_ORDER + 1]) -> Option<[f32; LPC_ORDER + 1]> {
    if r[0] <= 0.0 || !r[0].is_finite() {
        return None;
    }
    let mut a = [0.0f64; LPC_ORDER + 1];
    a[0] = 1.0;
    // A touch of white noise keeps the recursion stable.
    let mut err = r[0] * 1.000_1;
    for i in 1..=LPC_ORDER {
        let mut acc = r[i];
        for j in 1..i {
            acc += a[j] * r[i - j];
        }
        let k = -acc / err;
        if !k.is_finite() || k.abs() >= 1.0 {
            return None;
        }
        let prev = a;
        for j in 1..i {
            a[j] = prev[j] + k * prev[i - j];
        }
        a[i] = k;
        err *= 1.0 - k * k;
    }
    Some(a.map(|v| v as f32))
}

/// A radix-2 complex FFT of a fixed size with a Hann window, returning the power spectrum.
#[derive(Debug, Clone)]
pub(super) struct Fft {
    n: usize,
    window: Vec<f32>,
    /// exp(-2 pi i k / n) for k < n / 2.
    twiddle: Vec<(f32, f32)>,
    bitrev: Vec<usize>,
    re: Vec<f32>,
    im: Vec<f32>,
    power: Vec<f32>,
}

impl Fft {
    /// `n` must be a power of two, at least 2.
    pub(super) fn new(n: usize) -> Self {
        let bits = n.trailing_zeros();
        let tau = std::f64::consts::TAU;
        Fft {
            n,
            window: (0..n)
                .map(|i| (0.5 - 0.5 * (tau * i as f64 / n as f64).cos()) as f32)
                .collect(),
            twiddle: (0..n / 2)
                .map(|k| {
                    let a = -tau * k as f64 / n as f64;
                    (a.cos() as f32, a.sin() as f32)
                })
                .collect(),
            bitrev: (0..n)
                .map(|i| i.reverse_bits() >> (usize::BITS - bits))
                .collect(),
            re: vec![0.0; n],
            im: vec![0.0; n],
            power: vec![0.0; n / 2 + 1],
        }
    }

    /// Power spectrum (bins 0..=n/2) of the windowed `x` (`x.len() == n`).
    pub(super) fn power(&mut self, x: &[f32]) -> &[f32] {
        let n = self.n;
        for (i, (&v, &w)) in x.iter().zip(&self.window).enumerate() {
            let j = self.bitrev[i];
            self.re[j] = v * w;
            self.im[j] = 0.0;
        }
        let mut len = 2;
        while len <= n {
            let half = len / 2;
            let step = n / len;
            for start in (0..n).step_by(len) {
                for k in 0..half {
                    let (wr, wi) = self.twiddle[k * step];
                    let (a, b) = (start + k, start + k + half);
                    let tr = self.re[b] * wr - self.im[b] * wi;
                    let ti = self.re[b] * wi + self.im[b] * wr;
                    self.re[b] = self.re[a] - tr;
                    self.im[b] = self.im[a] - ti;
                    self.re[a] += tr;
                    self.im[a] += ti;
                }
            }
            len *= 2;
        }
        for (k, p) in self.power.iter_mut().enumerate() {
            *p = self.re[k] * self.re[k] + self.im[k] * self.im[k];
        }
        &self.power
    }
}
