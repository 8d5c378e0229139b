//! Audio windows for a video generator (the seed's "RollingWav"): [`AudioWindows`] cuts a
//! stream of mono PCM into windows of `window_ms`, each starting with `overlap_ms` of the
//! previous window's tail as *context* for the generator. The context is not new content: the
//! [`AudioWindow::fresh`] parts of all windows, concatenated, are exactly the input stream.
//!
//! Layout with the defaults (1800 ms windows, 250 ms overlap): window 0 is 1800 ms of fresh
//! audio; window `k > 0` is the last 250 ms of window `k - 1` followed by 1550 ms of fresh audio.
//! At the end of a turn [`AudioWindows::flush`] emits the rest as a shorter final window. A pure
//! state machine: no clock, no I/O.

use crate::MediaError;

/// Window geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowConfig {
    /// Samples per second of the PCM.
    pub sample_rate: u32,
    /// Length of a full window, context included, in ms.
    pub window_ms: u32,
    /// Leading context taken from the previous window, in ms (less than `window_ms`).
    pub overlap_ms: u32,
}

impl Default for WindowConfig {
    fn default() -> Self {
        Self {
            sample_rate: 16_000,
            window_ms: 1800,
            overlap_ms: 250,
        }
    }
}

impl WindowConfig {
    /// Samples in a full window: `floor(sample_rate * window_ms / 1000)`.
    pub fn window_samples(&self) -> usize {
        ms_to_samples(self.sample_rate, self.window_ms)
    }

    /// Context samples: `floor(sample_rate * overlap_ms / 1000)`.
    pub fn overlap_samples(&self) -> usize {
        ms_to_samples(self.sample_rate, self.overlap_ms)
    }

    /// Checks that a window holds at least one fresh sample after its context.
    pub fn validate(&self) -> Result<(), MediaError> {
        if self.sample_rate == 0 {
            return Err(MediaError::InvalidConfig {
                field: "sample_rate",
                value: "0".into(),
                reason: "must be positive".into(),
            });
        }
        if self.overlap_samples() >= self.window_samples() {
            return Err(MediaError::InvalidConfig {
                field: "overlap_ms",
                value: self.overlap_ms.to_string(),
                reason: format!(
                    "the overlap must be shorter than the window ({} ms = {} samples at {} Hz)",
                    self.window_ms,
                    self.window_samples(),
                    self.sample_rate
                ),
            });
        }
        Ok(())
    }
}

fn ms_to_samples(sample_rate: u32, ms: u32) -> usize {
    let n = u64::from(sample_rate) * u64::from(ms) / 1000;
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// One window of audio for the generator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioWindow {
    /// 0, 1, 2, ... in emission order (continues across [`AudioWindows::flush`] and
    /// [`AudioWindows::clear`]).
    pub index: u64,
    /// Stream position (count of samples pushed before it) of the window's first sample,
    /// context included.
    pub start_sample: u64,
    /// Leading samples that are the previous window's tail (0 for the first window of a turn).
    pub context_samples: usize,
    /// The samples: context, then fresh audio.
    pub pcm: Vec<i16>,
}

impl AudioWindow {
    /// The part that is new in this window (after the context).
    pub fn fresh(&self) -> &[i16] {
        self.pcm.get(self.context_samples..).unwrap_or(&[])
    }

    /// Stream position of the first fresh sample.
    pub fn fresh_start_sample(&self) -> u64 {
        self.start_sample + self.context_samples as u64
    }
}

/// The windowing state machine. See the module docs.
#[derive(Debug, Clone)]
pub struct AudioWindows {
    cfg: WindowConfig,
    window: usize,
    overlap: usize,
    /// Context (the first `context` samples) followed by fresh samples not yet emitted.
    buf: Vec<i16>,
    context: usize,
    /// Stream position of `buf[0]`.
    buf_start: u64,
    next_index: u64,
}

impl AudioWindows {
    /// A new windower; fails if the overlap does not leave room for fresh samples.
    pub fn new(cfg: WindowConfig) -> Result<Self, MediaError> {
        cfg.validate()?;
        let window = cfg.window_samples();
        Ok(Self {
            cfg,
            window,
            overlap: cfg.overlap_samples(),
            buf: Vec::with_capacity(window),
            context: 0,
            buf_start: 0,
            next_index: 0,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &WindowConfig {
        &self.cfg
    }

    /// Fresh samples waiting for the next window.
    pub fn pending_samples(&self) -> usize {
        self.buf.len() - self.context
    }

    /// Appends PCM and returns every full window it completes (possibly none).
    pub fn push(&mut self, pcm: &[i16]) -> Vec<AudioWindow> {
        let mut out = Vec::new();
        let mut rest = pcm;
        while !rest.is_empty() {
            let room = self.window - self.buf.len();
            let take = room.min(rest.len());
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.buf.len() == self.window {
                let pcm = self.buf.clone();
                out.push(self.emit(pcm));
                // Keep the tail as the next window's context.
                let drop = self.window - self.overlap;
                self.buf.drain(..drop);
                self.buf_start += drop as u64;
                self.context = self.overlap;
            }
        }
        out
    }

    /// End of turn: returns the fresh samples still waiting as a final, shorter window (with
    /// its context), or `None` if there are none. The next window starts without context.
    pub fn flush(&mut self) -> Option<AudioWindow> {
        let window = if self.pending_samples() > 0 {
            Some(self.emit(self.buf.clone()))
        } else {
            None
        };
        self.reset();
        window
    }

    /// Barge-in: drops the waiting samples (they are never emitted) and the context. Stream
    /// positions keep counting the dropped samples.
    pub fn clear(&mut self) {
        self.reset();
    }

    fn reset(&mut self) {
        self.buf_start += self.buf.len() as u64;
        self.buf.clear();
        self.context = 0;
    }

    fn emit(&mut self, pcm: Vec<i16>) -> AudioWindow {
        let w = AudioWindow {
            index: self.next_index,
            start_sample: self.buf_start,
            context_samples: self.context,
            pcm,
        };
        self.next_index += 1;
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: deterministic, no dependencies.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn check_stream(cfg: WindowConfig, windows: &[AudioWindow], input: &[i16], flushed: bool) {
        let full = cfg.window_samples();
        let overlap = cfg.overlap_samples();
        let fresh: Vec<i16> = windows.iter().flat_map(|w| w.fresh().to_vec()).collect();
        let emitted = if flushed { input.len() } else { fresh.len() };
        assert_eq!(fresh.len(), emitted);
        assert_eq!(&fresh[..], &input[..emitted], "fresh parts are the input");
        for (i, w) in windows.iter().enumerate() {
            assert_eq!(w.index, i as u64);
            let last = i + 1 == windows.len();
            if !(last && flushed) {
                assert_eq!(w.pcm.len(), full, "window {i} is full");
            }
            assert!(w.pcm.len() <= full);
            assert!(!w.fresh().is_empty(), "window {i} has something new");
            // Position: the stream starting at start_sample is pcm.
            let at = w.start_sample as usize;
            assert_eq!(
                &w.pcm[..],
                &input[at..at + w.pcm.len()],
                "window {i} position"
            );
            if i == 0 {
                assert_eq!(w.context_samples, 0);
            } else {
                let prev = &windows[i - 1];
                assert_eq!(w.context_samples, overlap.min(prev.pcm.len()));
                let tail = &prev.pcm[prev.pcm.len() - w.context_samples..];
                assert_eq!(&w.pcm[..w.context_samples], tail, "context = previous tail");
            }
        }
    }

    #[test]
    fn fresh_parts_reassemble_the_input_under_random_chunking() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let configs = [
            WindowConfig::default(),
            WindowConfig {
                sample_rate: 48_000,
                window_ms: 1800,
                overlap_ms: 250,
            },
            WindowConfig {
                sample_rate: 1000,
                window_ms: 7,
                overlap_ms: 3,
            },
            WindowConfig {
                sample_rate: 1000,
                window_ms: 5,
                overlap_ms: 0,
            },
            WindowConfig {
                sample_rate: 1000,
                window_ms: 2,
                overlap_ms: 1,
            },
        ];
        for cfg in configs {
            for round in 0..40 {
                let len = rng.below(6 * cfg.window_samples() as u64 + 3) as usize;
                let input: Vec<i16> = (0..len).map(|_| rng.next() as i16).collect();
                let mut w = AudioWindows::new(cfg).unwrap();
                let mut windows = Vec::new();
                let mut at = 0;
                while at < input.len() {
                    // Chunks from empty to more than two windows.
                    let max = 2 * cfg.window_samples() as u64 + 2;
                    let n = (rng.below(max) as usize).min(input.len() - at);
                    windows.extend(w.push(&input[at..at + n]));
                    at += n;
                }
                check_stream(cfg, &windows, &input, false);
                let fresh_so_far: usize = windows.iter().map(|w| w.fresh().len()).sum();
                assert_eq!(
                    w.pending_samples(),
                    len - fresh_so_far,
                    "{cfg:?} round {round}"
                );
                windows.extend(w.flush());
                check_stream(cfg, &windows, &input, true);
                assert!(w.flush().is_none());
            }
        }
    }

    #[test]
    fn default_geometry() {
        let mut w = AudioWindows::new(WindowConfig::default()).unwrap();
        let input: Vec<i16> = (0..16_000 * 4).map(|i| (i % 30_000) as i16).collect();
        let windows = w.push(&input);
        // 28800 + 24800 = 53600 <= 64000 < 78400.
        assert_eq!(windows.len(), 2);
        assert_eq!(windows[0].pcm.len(), 28_800);
        assert_eq!(windows[0].fresh().len(), 28_800);
        assert_eq!(windows[1].start_sample, 24_800);
        assert_eq!(windows[1].context_samples, 4000);
        assert_eq!(windows[1].fresh().len(), 24_800);
        assert_eq!(windows[1].fresh_start_sample(), 28_800);
        let last = w.flush().unwrap();
        assert_eq!(last.index, 2);
        assert_eq!(last.start_sample, 53_600 - 4000);
        assert_eq!(last.context_samples, 4000);
        assert_eq!(last.fresh().len(), 64_000 - 53_600);
    }

    #[test]
    fn flush_and_clear_start_a_new_turn_without_context() {
        let cfg = WindowConfig {
            sample_rate: 1000,
            window_ms: 10,
            overlap_ms: 4,
        };
        let mut w = AudioWindows::new(cfg).unwrap();
        let input: Vec<i16> = (0..100).collect();
        assert_eq!(w.push(&input[..12]).len(), 1);
        let end = w.flush().unwrap();
        assert_eq!((end.start_sample, end.context_samples), (6, 4));
        assert_eq!(end.fresh(), &input[10..12]);
        let next = w.push(&input[12..22]);
        assert_eq!(next.len(), 1);
        assert_eq!((next[0].index, next[0].start_sample), (2, 12));
        assert_eq!(next[0].context_samples, 0);
        // Clear drops waiting samples but positions keep counting them.
        assert!(w.push(&input[22..25]).is_empty());
        w.clear();
        assert_eq!(w.pending_samples(), 0);
        assert!(w.flush().is_none());
        let after = w.push(&input[25..35]);
        assert_eq!((after[0].start_sample, after[0].context_samples), (25, 0));
        assert_eq!(after[0].pcm, &input[25..35]);
    }

    #[test]
    fn rejects_overlap_not_shorter_than_window() {
        for (window_ms, overlap_ms) in [(250, 250), (100, 300)] {
            let cfg = WindowConfig {
                window_ms,
                overlap_ms,
                ..WindowConfig::default()
            };
            assert!(matches!(
                AudioWindows::new(cfg),
                Err(MediaError::InvalidConfig {
                    field: "overlap_ms",
                    ..
                })
            ));
        }
        let zero = WindowConfig {
            sample_rate: 0,
            ..WindowConfig::default()
        };
        assert!(AudioWindows::new(zero).is_err());
        let tiny = WindowConfig {
            sample_rate: 1000,
            window_ms: 0,
            overlap_ms: 0,
        };
        assert!(AudioWindows::new(tiny).is_err(), "a window of 0 samples");
    }
}
