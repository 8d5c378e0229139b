//! How a stream degrades instead of drifting when its media thread falls behind the wall clock
//! (the machine is briefly overloaded): the pure decision, time passed in. While the frame being
//! produced is more than [`DEGRADE_AFTER`] (`DEGRADE_AFTER_MS`) past its real time the loop
//! repeats the last picture
//! instead of rendering a new one (the encoder still gets every frame and all of its audio, so the
//! timeline stays constant-rate and the audio continuous); it renders again once it is back within
//! one frame of real time. A repeated frame costs no rendering and encodes as an almost empty
//! P-frame, so a stream that cannot render every frame in time catches up with the clock instead
//! of falling further behind. The decisions are counted, and logged at most every
//! [`LOG_EVERY`].

use std::time::Duration;

/// Behind a frame's real time by more than this, the loop stops rendering new pictures (the
/// default of `DEGRADE_AFTER_MS`).
pub const DEGRADE_AFTER: Duration = Duration::from_millis(200);

/// At most one log line about degrading per this long.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// What the loop should do for the next frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Picture {
    /// Render (or take the generator's frame) as usual.
    Render,
    /// Repeat the last picture: the stream is behind real time.
    Repeat,
}

/// The degrade decision of one stream, with hysteresis, and its counters.
#[derive(Debug)]
pub struct Degrade {
    frame: Duration,
    /// Late by more than this: repeat; `None`: never (render every frame, however late).
    after: Option<Duration>,
    active: bool,
    /// Frames repeated since the stream started.
    pub repeated: u64,
    /// Frames repeated since the last log line.
    unlogged: u64,
    last_log: Option<Duration>,
}

impl Degrade {
    /// A stream at `fps` frames per second that repeats pictures once more than `after` late
    /// (`None`: never).
    pub fn new(fps: u32, after: Option<Duration>) -> Self {
        Self {
            frame: Duration::from_secs(1) / fps.max(1),
            after,
            active: false,
            repeated: 0,
            unlogged: 0,
            last_log: None,
        }
    }

    /// True while the stream repeats pictures.
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Decide for a frame that is `behind` its real time, produced at stream time `now`.
    pub fn decide(&mut self, behind: Duration, now: Duration) -> Picture {
        if self.active && behind <= self.frame {
            self.active = false;
            tracing::info!(
                repeated = self.repeated,
                "the stream is back on real time; rendering every frame again"
            );
        } else if !self.active && self.after.is_some_and(|after| behind > after) {
            self.active = true;
        }
        if !self.active {
            return Picture::Render;
        }
        self.repeated += 1;
        self.unlogged += 1;
        let quiet = self
            .last_log
            .is_some_and(|at| now.saturating_sub(at) < LOG_EVERY);
        if !quiet {
            tracing::warn!(
                behind_ms = behind.as_millis() as u64,
                repeated = self.unlogged,
                "the stream fell behind real time: repeating frames instead of rendering to catch up \
                 (machine overloaded)"
            );
            self.unlogged = 0;
            self.last_log = Some(now);
        }
        Picture::Repeat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn repeats_past_the_threshold_until_back_within_one_frame() {
        let mut d = Degrade::new(25, Some(DEGRADE_AFTER));
        assert_eq!(d.decide(ms(0), ms(0)), Picture::Render);
        assert_eq!(
            d.decide(ms(150), ms(40)),
            Picture::Render,
            "jitter is tolerated"
        );
        assert_eq!(d.decide(ms(250), ms(80)), Picture::Repeat);
        assert_eq!(d.decide(ms(150), ms(120)), Picture::Repeat, "hysteresis");
        assert_eq!(d.decide(ms(41), ms(160)), Picture::Repeat);
        assert_eq!(d.decide(ms(40), ms(200)), Picture::Render);
        assert!(!d.is_active());
        assert_eq!(d.repeated, 3);
    }

    #[test]
    fn turned_off_it_renders_every_frame_however_late() {
        let mut d = Degrade::new(25, None);
        assert_eq!(d.decide(ms(5000), ms(0)), Picture::Render);
        assert_eq!(d.repeated, 0);
    }
}
