//! Idle motion: blinking, breathing, head sway and gaze drift as pure functions of media time and
//! a seed. Nothing here keeps state, so any time can be asked in any order and the answer is
//! always the same for the same seed.
//!
//! Geometry is expressed in *design units*: the face is designed on a 512 x 512 canvas, and the
//! renderer scales design units to output pixels.

/// The idle pose at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Motion {
    /// Eyelid closure: 0 = open, 1 = fully closed.
    pub blink: f32,
    /// Horizontal head offset in output pixels (positive = to the right).
    pub head_dx: f32,
    /// Vertical head offset in output pixels (positive = down); includes breathing.
    pub head_dy: f32,
    /// Head tilt in radians around the neck (positive = clockwise on screen).
    pub tilt_rad: f32,
    /// Breathing phase, -1 (exhaled, shoulders low) .. 1 (inhaled, shoulders high).
    pub breath: f32,
    /// Gaze direction, -1 (looking to the left of the picture) .. 1 (to the right).
    pub gaze_x: f32,
    /// Gaze direction, -1 (up) .. 1 (down).
    pub gaze_y: f32,
}

impl Motion {
    /// Perfectly still, eyes open, looking straight ahead.
    pub const STILL: Motion = Motion {
        blink: 0.0,
        head_dx: 0.0,
        head_dy: 0.0,
        tilt_rad: 0.0,
        breath: 0.0,
        gaze_x: 0.0,
        gaze_y: 0.0,
    };
}

/// One blink (or double blink) of the schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlinkEvent {
    /// Media time at which the eyelids start to close, in milliseconds.
    pub start_ms: u64,
    /// Duration of one blink, in milliseconds.
    pub duration_ms: u64,
    /// Start of the second blink of a double blink, if this is one.
    pub second_start_ms: Option<u64>,
}

/// Blinks are placed one per slot of this length, at a random offset inside the slot.
const BLINK_SLOT_MS: u64 = 4_000;
/// Earliest offset of a blink inside its slot.
const BLINK_OFFSET_MIN_MS: u64 = 900;
/// Range of the random offset; consecutive blinks are therefore 1.8 s .. 6.2 s apart.
const BLINK_OFFSET_SPAN_MS: u64 = 2_200;
/// Chance that a blink is a double blink.
const DOUBLE_BLINK_CHANCE: f32 = 0.18;

// Random streams, so that unrelated quantities never share a random number.
const S_BLINK_OFFSET: u64 = 1;
const S_BLINK_DURATION: u64 = 2;
const S_BLINK_DOUBLE: u64 = 3;
const S_BLINK_GAP: u64 = 4;
const S_PHASE: u64 = 5;
const S_GAZE_X: u64 = 6;
const S_GAZE_Y: u64 = 7;
const S_GAZE_SHIFT: u64 = 8;

/// Deterministic idle motion for one seed.
#[derive(Clone, Debug)]
pub struct IdleMotion {
    seed: u64,
    phases: [f64; 8],
    breath_hz: f64,
}

impl IdleMotion {
    /// The idle motion of `seed`.
    pub fn new(seed: u64) -> Self {
        let mut phases = [0.0; 8];
        for (i, p) in phases.iter_mut().enumerate() {
            *p = f64::from(unit(seed, S_PHASE, i as u64)) * std::f64::consts::TAU;
        }
        let breath_hz = 0.21 + 0.07 * f64::from(unit(seed, S_PHASE, 100));
        IdleMotion {
            seed,
            phases,
            breath_hz,
        }
    }

    /// The blink event of schedule slot `slot` (every 4 s slot holds exactly one event).
    pub fn blink_event_in_slot(&self, slot: u64) -> BlinkEvent {
        let s = self.seed;
        let offset = BLINK_OFFSET_MIN_MS
            + (f64::from(unit(s, S_BLINK_OFFSET, slot)) * BLINK_OFFSET_SPAN_MS as f64) as u64;
        let start_ms = slot.saturating_mul(BLINK_SLOT_MS).saturating_add(offset);
        let duration_ms = 130 + (f64::from(unit(s, S_BLINK_DURATION, slot)) * 60.0) as u64;
        let second_start_ms = if unit(s, S_BLINK_DOUBLE, slot) < DOUBLE_BLINK_CHANCE {
            let gap = 80 + (f64::from(unit(s, S_BLINK_GAP, slot)) * 110.0) as u64;
            Some(start_ms + duration_ms + gap)
        } else {
            None
        };
        BlinkEvent {
            start_ms,
            duration_ms,
            second_start_ms,
        }
    }

    /// Every blink event that starts in `from_ms..to_ms`, in order.
    pub fn blink_events(&self, from_ms: u64, to_ms: u64) -> impl Iterator<Item = BlinkEvent> + '_ {
        let first = from_ms / BLINK_SLOT_MS;
        let last = to_ms / BLINK_SLOT_MS;
        (first..=last)
            .map(move |slot| self.blink_event_in_slot(slot))
            .filter(move |e| e.start_ms >= from_ms && e.start_ms < to_ms)
    }

    /// Eyelid closure at `t_ms`: 0 open .. 1 closed.
    pub fn blink_at(&self, t_ms: u64) -> f32 {
        // An event (even a double one) never leaves its slot: the latest start is
        // 900 + 2200 ms, plus at most 190 + 190 + 190 ms of blinking.
        let e = self.blink_event_in_slot(t_ms / BLINK_SLOT_MS);
        let one = |start: u64| -> f32 {
            if t_ms < start || t_ms >= start + e.duration_ms {
                return 0.0;
            }
            blink_curve((t_ms - start) as f32 / e.duration_ms as f32)
        };
        let first = one(e.start_ms);
        match e.second_start_ms {
            Some(s2) => first.max(one(s2)),
            None => first,
        }
    }

    /// The full idle pose at `t_ms`, in design units (see the module docs); the renderer scales
    /// offsets to pixels.
    pub fn at(&self, t_ms: u64) -> Motion {
        let t = t_ms as f64 / 1000.0;
        let p = &self.phases;
        let wave = |hz: f64, phase: f64| -> f64 { (std::f64::consts::TAU * hz * t + phase).sin() };

        let breath = wave(self.breath_hz, p[0]);
        // Incommensurate frequencies so the sway never visibly repeats.
        let sway_x = 0.6 * wave(0.071, p[1]) + 0.4 * wave(0.1131, p[2]);
        let sway_y = 0.6 * wave(0.0533, p[3]) + 0.4 * wave(0.0877, p[4]);
        let tilt = 0.6 * wave(0.0617, p[5]) + 0.4 * wave(0.0973, p[6]);

        let (fix_x, fix_y) = self.fixation(t_ms);
        let drift_x = 0.15 * wave(0.043, p[7]);
        let drift_y = 0.1 * wave(0.031, p[1] + 1.0);

        Motion {
            blink: self.blink_at(t_ms),
            head_dx: (4.0 * sway_x) as f32,
            head_dy: (1.6 * sway_y - 1.2 * breath) as f32,
            tilt_rad: (0.032 * tilt) as f32,
            breath: breath as f32,
            gaze_x: (fix_x + drift_x as f32).clamp(-1.0, 1.0),
            gaze_y: (fix_y + drift_y as f32).clamp(-1.0, 1.0),
        }
    }

    /// Gaze fixation: the eyes hold a target for 0.8 .. 3.2 s, then glance to the next one in a
    /// quick (150 ms) smooth move.
    fn fixation(&self, t_ms: u64) -> (f32, f32) {
        const SLOT: u64 = 2_000;
        const MOVE_MS: f32 = 150.0;
        let shift = |k: u64| -> u64 {
            k * SLOT + (f64::from(unit(self.seed, S_GAZE_SHIFT, k)) * 1_200.0) as u64
        };
        let target = |k: u64| -> (f32, f32) {
            // Mostly near the centre, sometimes a little aside: it is talking to the viewer.
            let x = unit(self.seed, S_GAZE_X, k) * 2.0 - 1.0;
            let y = unit(self.seed, S_GAZE_Y, k) * 2.0 - 1.0;
            (0.45 * x * x.abs(), 0.3 * y * y.abs() - 0.05)
        };
        let mut k = t_ms / SLOT;
        if t_ms < shift(k) {
            if k == 0 {
                return target(0);
            }
            k -= 1;
        }
        let from = if k == 0 { target(0) } else { target(k - 1) };
        let to = target(k);
        let u = smoothstep((t_ms - shift(k)) as f32 / MOVE_MS);
        (from.0 + (to.0 - from.0) * u, from.1 + (to.1 - from.1) * u)
    }
}

/// Eyelid closure along one blink, `u` in 0..1: a quick close (35 %), a short hold (10 %) and a
/// slower opening (55 %).
fn blink_curve(u: f32) -> f32 {
    const CLOSE: f32 = 0.35;
    const HOLD: f32 = 0.10;
    if u < CLOSE {
        smoothstep(u / CLOSE)
    } else if u < CLOSE + HOLD {
        1.0
    } else {
        1.0 - smoothstep((u - CLOSE - HOLD) / (1.0 - CLOSE - HOLD))
    }
    .clamp(0.0, 1.0)
}

pub(crate) fn smoothstep(x: f32) -> f32 {
    let x = x.clamp(0.0, 1.0);
    x * x * (3.0 - 2.0 * x)
}

/// SplitMix64 finaliser: a well-mixed 64-bit hash.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A deterministic uniform number in `0.0..1.0` for (seed, stream, index).
fn unit(seed: u64, stream: u64, index: u64) -> f32 {
    let h = mix(mix(seed ^ stream.wrapping_mul(0xD6E8_FEB8_6659_FD93)) ^ index);
    (h >> 40) as f32 / (1u64 << 24) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blink_curve_shape() {
        assert_eq!(blink_curve(0.0), 0.0);
        assert_eq!(blink_curve(0.4), 1.0);
        assert!(blink_curve(0.999) < 0.01);
        // Closing is faster than opening: time from 0.1 to 0.9 closure.
        let steps = 10_000;
        let (mut up, mut down) = (0, 0);
        for i in 0..steps {
            let u = i as f32 / steps as f32;
            let b = blink_curve(u);
            if (0.1..0.9).contains(&b) {
                if u < 0.4 {
                    up += 1;
                } else {
                    down += 1;
                }
            }
        }
        assert!(up < down, "close {up} vs open {down}");
    }

    #[test]
    fn blink_is_bounded_and_reaches_closed() {
        let m = IdleMotion::new(3);
        let mut max: f32 = 0.0;
        for t in (0..20_000).step_by(5) {
            let b = m.blink_at(t);
            assert!((0.0..=1.0).contains(&b));
            max = max.max(b);
        }
        assert_eq!(max, 1.0);
    }

    #[test]
    fn unit_is_in_range_and_varies() {
        let mut sum = 0.0;
        for i in 0..1000 {
            let u = unit(42, 1, i);
            assert!((0.0..1.0).contains(&u));
            sum += u;
        }
        assert!((sum / 1000.0 - 0.5).abs() < 0.05);
    }

    #[test]
    fn gaze_is_continuous_except_short_glances() {
        let m = IdleMotion::new(9);
        let mut prev = m.at(0);
        for t in (40..60_000).step_by(40) {
            let cur = m.at(t);
            assert!((cur.gaze_x - prev.gaze_x).abs() < 0.6);
            assert!(cur.gaze_x.abs() <= 1.0 && cur.gaze_y.abs() <= 1.0);
            prev = cur;
        }
    }
}
