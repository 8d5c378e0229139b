//! A small streaming resampler for mono 16-bit PCM (TTS output → the stream's audio rate).
//!
//! It is a polyphase windowed-sinc filter (Blackman window), band-limited to the lower of the two
//! Nyquist frequencies, so downsampling does not alias. State is kept across calls, so chunk
//! boundaries do not click, and over a whole stream (all [`Resampler::process`] calls plus
//! [`Resampler::finish`]) the output has exactly `round(input_len * out_rate / in_rate)` samples.
//! Output sample `n` is the signal at input time `n * in_rate / out_rate` (no added delay); the
//! filter needs a few input samples of look-ahead, which [`Resampler::finish`] releases.
//! Equal rates copy samples through unchanged.

/// Errors from building a [`Resampler`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResampleError {
    /// One of the rates is zero.
    #[error("invalid resampler rates {in_rate} Hz -> {out_rate} Hz: rates must be non-zero")]
    ZeroRate {
        /// Input sample rate.
        in_rate: u32,
        /// Output sample rate.
        out_rate: u32,
    },
}

/// Zero crossings of the sinc kernel on each side of its centre, at the cutoff frequency.
const ZERO_CROSSINGS: f64 = 12.0;
/// Cutoff as a fraction of the lower Nyquist frequency (the rest is the transition band).
const ROLLOFF: f64 = 0.9;
/// Most filter phases kept in the table; finer positions are rounded to the nearest phase.
const MAX_PHASES: u64 = 1024;

/// Streaming mono i16 resampler; see the module documentation.
#[derive(Debug, Clone)]
pub struct Resampler {
    in_rate: u32,
    out_rate: u32,
    /// `None` when the rates are equal.
    sinc: Option<Sinc>,
}

#[derive(Debug, Clone)]
struct Sinc {
    /// Output samples per `down` input samples (rates divided by their gcd).
    up: u64,
    down: u64,
    /// Taps on each side of the centre.
    half: usize,
    /// Number of phases in `table`.
    phases: u64,
    /// `phases` rows of `2 * half` taps.
    table: Vec<f32>,
    /// Input samples from absolute index `hist_start` on (negative indices are the zeros before
    /// the stream).
    hist: Vec<f32>,
    hist_start: i64,
    /// Input samples received in this stream.
    in_total: u64,
    /// Output samples produced in this stream.
    out_total: u64,
}

impl Resampler {
    /// A resampler from `in_rate` to `out_rate` (Hz).
    pub fn new(in_rate: u32, out_rate: u32) -> Result<Self, ResampleError> {
        if in_rate == 0 || out_rate == 0 {
            return Err(ResampleError::ZeroRate { in_rate, out_rate });
        }
        let sinc = (in_rate != out_rate).then(|| Sinc::new(in_rate, out_rate));
        Ok(Self {
            in_rate,
            out_rate,
            sinc,
        })
    }

    /// Input sample rate in Hz.
    pub fn in_rate(&self) -> u32 {
        self.in_rate
    }

    /// Output sample rate in Hz.
    pub fn out_rate(&self) -> u32 {
        self.out_rate
    }

    /// Resamples the next piece of the stream; returns the output samples that are ready.
    pub fn process(&mut self, input: &[i16]) -> Vec<i16> {
        let mut out = Vec::new();
        self.process_into(input, &mut out);
        out
    }

    /// Like [`Resampler::process`], appending to `out`.
    pub fn process_into(&mut self, input: &[i16], out: &mut Vec<i16>) {
        match &mut self.sinc {
            None => out.extend_from_slice(input),
            Some(sinc) => sinc.process(input, out),
        }
    }

    /// Ends the stream: returns the remaining output (the input end is padded with silence) and
    /// resets the resampler for a new stream.
    pub fn finish(&mut self) -> Vec<i16> {
        let mut out = Vec::new();
        if let Some(sinc) = &mut self.sinc {
            sinc.finish(&mut out);
        }
        out
    }

    /// Drops all state (for example on barge-in), starting a new stream.
    pub fn reset(&mut self) {
        if let Some(sinc) = &mut self.sinc {
            sinc.reset();
        }
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Sinc {
    fn new(in_rate: u32, out_rate: u32) -> Self {
        let g = gcd(u64::from(in_rate), u64::from(out_rate));
        let up = u64::from(out_rate) / g;
        let down = u64::from(in_rate) / g;
        // Cutoff in cycles per input sample.
        let cutoff = 0.5 * ROLLOFF * (up as f64 / down as f64).min(1.0);
        let reach = ZERO_CROSSINGS / (2.0 * cutoff);
        let half = reach.ceil() as usize;
        let phases = up.min(MAX_PHASES);
        let taps = 2 * half;
        let mut table = Vec::with_capacity(phases as usize * taps);
        for p in 0..phases {
            let frac = p as f64 / phases as f64;
            let start = table.len();
            for q in 0..taps {
                // Distance from the output instant to input sample `i - half + 1 + q`.
                let x = frac + (half as f64 - 1.0) - q as f64;
                table.push(kernel(x, cutoff, reach) as f32);
            }
            let row = &mut table[start..];
            let sum: f32 = row.iter().sum();
            if sum.abs() > f32::EPSILON {
                row.iter_mut().for_each(|t| *t /= sum);
            }
        }
        let mut sinc = Self {
            up,
            down,
            half,
            phases,
            table,
            hist: Vec::new(),
            hist_start: 0,
            in_total: 0,
            out_total: 0,
        };
        sinc.reset();
        sinc
    }

    fn reset(&mut self) {
        self.hist.clear();
        self.hist.resize(self.half.saturating_sub(1), 0.0);
        self.hist_start = -(self.half as i64 - 1);
        self.in_total = 0;
        self.out_total = 0;
    }

    fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        self.hist.extend(input.iter().map(|&s| f32::from(s)));
        self.in_total += input.len() as u64;
        self.produce(self.in_total as i64, u64::MAX, out);
    }

    fn finish(&mut self, out: &mut Vec<i16>) {
        // round(in_total * up / down), half up.
        let total = ((u128::from(self.in_total) * u128::from(self.up) * 2 + u128::from(self.down))
            / (2 * u128::from(self.down))) as u64;
        if total > self.out_total {
            let (last_i, _) = self.position(total - 1);
            let needed_end = last_i + self.half as i64 + 1;
            let have_end = self.hist_start + self.hist.len() as i64;
            if needed_end > have_end {
                self.hist
                    .extend(std::iter::repeat_n(0.0, (needed_end - have_end) as usize));
            }
            self.produce(needed_end, total, out);
        }
        self.reset();
    }

    /// Input index and filter phase for output sample `n`.
    fn position(&self, n: u64) -> (i64, usize) {
        let num = u128::from(n) * u128::from(self.down);
        let up = u128::from(self.up);
        let phases = u128::from(self.phases);
        // Position in units of 1/phases input samples, rounded (exact when phases == up).
        let pos = (num * phases + up / 2) / up;
        ((pos / phases) as i64, (pos % phases) as usize)
    }

    /// Produces output samples while their input (up to absolute index `available_end`,
    /// exclusive) is there, stopping at `max_total` samples in this stream.
    fn produce(&mut self, available_end: i64, max_total: u64, out: &mut Vec<i16>) {
        let taps = 2 * self.half;
        while self.out_total < max_total {
            let (i, phase) = self.position(self.out_total);
            if i + self.half as i64 >= available_end {
                break;
            }
            let base = (i - self.half as i64 + 1 - self.hist_start) as usize;
            let (Some(window), Some(row)) = (
                self.hist.get(base..base + taps),
                self.table.get(phase * taps..(phase + 1) * taps),
            ) else {
                break;
            };
            let acc: f32 = window.iter().zip(row).map(|(x, h)| x * h).sum();
            out.push(acc.round().clamp(-32768.0, 32767.0) as i16);
            self.out_total += 1;
        }
        // Drop input no later output needs.
        let (next_i, _) = self.position(self.out_total);
        let keep_from = next_i - self.half as i64 + 1;
        let drop = (keep_from - self.hist_start).clamp(0, self.hist.len() as i64) as usize;
        if drop > 0 {
            self.hist.drain(..drop);
            self.hist_start += drop as i64;
        }
    }
}

/// Blackman-windowed sinc low-pass with `cutoff` (cycles/sample), zero outside `±reach`.
fn kernel(x: f64, cutoff: f64, reach: f64) -> f64 {
    use std::f64::consts::PI;
    if x.abs() >= reach {
        return 0.0;
    }
    let arg = 2.0 * cutoff * x;
    let sinc = if arg.abs() < 1e-12 {
        1.0
    } else {
        (PI * arg).sin() / (PI * arg)
    };
    let r = x / reach;
    let window = 0.42 + 0.5 * (PI * r).cos() + 0.08 * (2.0 * PI * r).cos();
    2.0 * cutoff * sinc * window
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, rate: u32, len: usize, amp: f64) -> Vec<i16> {
        (0..len)
            .map(|n| {
                let t = n as f64 / f64::from(rate);
                (amp * (2.0 * std::f64::consts::PI * freq * t).sin()).round() as i16
            })
            .collect()
    }

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
    }

    /// Sign changes, ignoring exact zeros.
    fn zero_crossings(x: &[i16]) -> usize {
        let mut last = 0i16;
        let mut count = 0;
        for &s in x.iter().filter(|&&s| s != 0) {
            if last != 0 && (last < 0) != (s < 0) {
                count += 1;
            }
            last = s;
        }
        count
    }

    /// Deterministic xorshift for chunk sizes.
    fn chunk_sizes(seed: u64, total: usize) -> Vec<usize> {
        let mut s = seed;
        let mut left = total;
        let mut sizes = Vec::new();
        while left > 0 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let n = ((s % 700) as usize).min(left);
            sizes.push(n);
            left -= n;
        }
        sizes
    }

    #[test]
    fn zero_rate_is_an_error() {
        assert_eq!(
            Resampler::new(0, 48_000).err(),
            Some(ResampleError::ZeroRate {
                in_rate: 0,
                out_rate: 48_000
            })
        );
        assert!(Resampler::new(16_000, 0).is_err());
    }

    #[test]
    fn equal_rates_are_identity() {
        let mut r = Resampler::new(22_050, 22_050).unwrap();
        let x = sine(440.0, 22_050, 1000, 8000.0);
        assert_eq!(r.process(&x), x);
        assert!(r.finish().is_empty());
    }

    #[test]
    fn total_length_is_rounded_ratio_for_any_chunking() {
        let pairs = [
            (22_050, 48_000),
            (48_000, 16_000),
            (16_000, 48_000),
            (24_000, 48_000),
            (44_100, 48_000),
            (22_050, 16_000),
            (8_000, 44_100),
            (44_101, 48_000),
        ];
        for (k, &(a, b)) in pairs.iter().enumerate() {
            for len in [0usize, 1, 7, 100, 4_321, 22_050] {
                let input = sine(300.0, a, len, 5000.0);
                let mut r = Resampler::new(a, b).unwrap();
                let mut out = Vec::new();
                let mut pos = 0;
                for n in chunk_sizes(k as u64 * 1000 + len as u64 + 1, len) {
                    out.extend(r.process(&input[pos..pos + n]));
                    pos += n;
                }
                out.extend(r.finish());
                let expected = (len as f64 * f64::from(b) / f64::from(a)).round() as i64;
                assert!(
                    (out.len() as i64 - expected).abs() <= 1,
                    "{a}->{b} len {len}: got {} want {expected}",
                    out.len()
                );
            }
        }
    }

    #[test]
    fn chunking_does_not_change_the_output() {
        let input = sine(523.0, 22_050, 10_000, 9000.0);
        let mut whole = Resampler::new(22_050, 48_000).unwrap();
        let mut a = whole.process(&input);
        a.extend(whole.finish());
        let mut pieces = Resampler::new(22_050, 48_000).unwrap();
        let mut b = Vec::new();
        let mut pos = 0;
        for n in chunk_sizes(7, input.len()) {
            b.extend(pieces.process(&input[pos..pos + n]));
            pos += n;
        }
        b.extend(pieces.finish());
        assert_eq!(a, b);
    }

    #[test]
    fn a_sine_keeps_its_frequency_and_level() {
        for (a, b, f) in [
            (22_050, 48_000, 440.0),
            (48_000, 16_000, 1000.0),
            (16_000, 48_000, 3000.0),
        ] {
            let secs = 1.0;
            let input = sine(f, a, (f64::from(a) * secs) as usize, 10_000.0);
            let mut r = Resampler::new(a, b).unwrap();
            let mut out = r.process(&input);
            out.extend(r.finish());
            let expected = (2.0 * f * secs) as usize;
            let got = zero_crossings(&out);
            assert_eq!(got, zero_crossings(&input), "{a}->{b} {f} Hz");
            assert!(
                got.abs_diff(expected) <= 2,
                "{a}->{b} {f} Hz: {got} crossings, want {expected}"
            );
            // Level is kept (ignore the edges).
            let mid = &out[out.len() / 4..out.len() * 3 / 4];
            let level = rms(mid) / (10_000.0 / 2f64.sqrt());
            assert!((level - 1.0).abs() < 0.02, "{a}->{b} {f} Hz: level {level}");
        }
    }

    #[test]
    fn downsampling_removes_frequencies_above_the_new_nyquist() {
        // 10 kHz cannot exist at 16 kHz: it must not alias down to 6 kHz.
        let input = sine(10_000.0, 48_000, 48_000, 10_000.0);
        let mut r = Resampler::new(48_000, 16_000).unwrap();
        let mut out = r.process(&input);
        out.extend(r.finish());
        let mid = &out[out.len() / 4..out.len() * 3 / 4];
        assert!(rms(mid) < 10_000.0 * 0.01, "alias rms {}", rms(mid));
    }

    #[test]
    fn finish_resets_for_a_new_stream() {
        let input = sine(440.0, 22_050, 2000, 8000.0);
        let mut r = Resampler::new(22_050, 48_000).unwrap();
        let mut first = r.process(&input);
        first.extend(r.finish());
        let mut second = r.process(&input);
        second.extend(r.finish());
        assert_eq!(first, second);
    }
}
