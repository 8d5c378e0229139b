//! The face rig: a handful of values (jaw, lips, blinks, a little head motion) turned into where
//! each of the 68 landmarks (the iBUG 300-W layout that face-api and dlib use) and each ring point
//! goes. Distances are in units of the face's interocular distance, so a rig value means the
//! same on a small and a large photo.

use super::Point;

/// The 68-point layout's index ranges.
pub mod idx {
    use std::ops::RangeInclusive;
    /// Jaw outline, picture-left ear to picture-right ear; 8 is the chin.
    pub const JAW: RangeInclusive<usize> = 0..=16;
    /// The chin.
    pub const CHIN: usize = 8;
    /// Both eyebrows.
    pub const BROWS: RangeInclusive<usize> = 17..=26;
    /// Picture-left eye: 36 outer corner, 37-38 upper lid, 39 inner corner, 40-41 lower lid.
    pub const EYE_L: RangeInclusive<usize> = 36..=41;
    /// Picture-right eye: 42 inner corner, 43-44 upper lid, 45 outer corner, 46-47 lower lid.
    pub const EYE_R: RangeInclusive<usize> = 42..=47;
    /// Outer lip contour: 48 left corner, 49-53 upper (51 centre), 54 right corner, 55-59 lower.
    pub const LIPS_OUTER: RangeInclusive<usize> = 48..=59;
    /// Inner lip contour: 60 left corner, 61-63 upper (62 centre), 64 right corner, 65-67 lower.
    pub const LIPS_INNER: RangeInclusive<usize> = 60..=67;
    /// Upper lids (with the lower lid point each closes onto).
    pub const LIDS: [(usize, usize); 4] = [(37, 41), (38, 40), (43, 47), (44, 46)];
    /// Lower lip points (outer and inner): they move with the jaw.
    pub const LOWER_LIP: [usize; 8] = [55, 56, 57, 58, 59, 65, 66, 67];
    /// Upper inner lip points.
    pub const UPPER_INNER: [usize; 3] = [61, 62, 63];
    /// Lower inner lip points.
    pub const LOWER_INNER: [usize; 3] = [67, 66, 65];
    /// Mouth corners (outer, inner).
    pub const CORNERS: [usize; 4] = [48, 54, 60, 64];
}

/// Largest jaw drop, in interocular distances.
pub const JAW_DROP: f32 = 0.22;
/// Extra parting of the lips at `lip_open` 1 (upper lip up, lower down), interocular distances.
pub const LIP_PART: f32 = 0.05;
/// Mouth corners' sideways travel at `width` ±1, interocular distances.
pub const CORNER_TRAVEL: f32 = 0.08;
/// The upper lip's lift at `upper_lip` 1, interocular distances.
pub const UPPER_LIFT: f32 = 0.035;
/// How far under the upper inner lip a tucked lower lip stops (the upper teeth's edge that
/// shows over it), interocular distances.
pub const TUCK_BELOW_UPPER: f32 = 0.045;
/// What is left between pressed lips, px (closed to the eye and the encoder).
pub const PRESSED_GAP: f32 = 0.2;
/// Head rotation limit, degrees.
pub const MAX_HEAD_DEG: f32 = 2.0;

/// The rig's values for one frame. Everything is clamped to its range when applied.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rig {
    /// Jaw opening, 0..=1 (the chin, the lower lip and the jaw outline drop).
    pub jaw_open: f32,
    /// Lip parting beyond the jaw, 0..=1.
    pub lip_open: f32,
    /// Mouth width, -1..=1 (+ smile/stretch, − pucker/funnel).
    pub width: f32,
    /// Lips pressed together (m, b, p), 0..=1: closes the lips whatever the jaw does.
    pub press: f32,
    /// Upper lip raised, 0..=1: the upper teeth show under it.
    pub upper_lip: f32,
    /// Lower lip drawn up and in against the upper teeth (f, v), 0..=1.
    pub lower_lip: f32,
    /// Tongue tip up behind the upper teeth (t, d, n, l, th), 0..=1: drawn inside the mouth,
    /// it moves no landmark.
    pub tongue: f32,
    /// Picture-left eye closed, 0..=1.
    pub blink_left: f32,
    /// Picture-right eye closed, 0..=1.
    pub blink_right: f32,
    /// Head roll (tilt), degrees, within ±[`MAX_HEAD_DEG`].
    pub roll_deg: f32,
    /// Head yaw (turn), degrees, within ±[`MAX_HEAD_DEG`]: a small sideways shift.
    pub yaw_deg: f32,
    /// Head pitch (nod), degrees, within ±[`MAX_HEAD_DEG`]: a small vertical shift.
    pub pitch_deg: f32,
}

impl Rig {
    /// Every value in its range.
    pub fn clamped(&self) -> Rig {
        let unit = |v: f32| {
            if v.is_finite() {
                v.clamp(0.0, 1.0)
            } else {
                0.0
            }
        };
        let signed = |v: f32, m: f32| if v.is_finite() { v.clamp(-m, m) } else { 0.0 };
        Rig {
            jaw_open: unit(self.jaw_open),
            lip_open: unit(self.lip_open),
            width: signed(self.width, 1.0),
            press: unit(self.press),
            upper_lip: unit(self.upper_lip),
            lower_lip: unit(self.lower_lip),
            tongue: unit(self.tongue),
            blink_left: unit(self.blink_left),
            blink_right: unit(self.blink_right),
            roll_deg: signed(self.roll_deg, MAX_HEAD_DEG),
            yaw_deg: signed(self.yaw_deg, MAX_HEAD_DEG),
            pitch_deg: signed(self.pitch_deg, MAX_HEAD_DEG),
        }
    }
}

/// How much of the jaw's drop a jaw-outline point takes: all at the chin, fading to nothing at
/// the ears.
pub fn jaw_weight(i: usize) -> f32 {
    let from_chin = (i as f32 - idx::CHIN as f32).abs() / 8.0;
    (1.0 - from_chin).clamp(0.0, 1.0).powf(1.5)
}

/// The 68 landmarks moved by `rig` (already clamped), with `scale` = interocular distance.
pub fn pose_landmarks(rest: &[Point], rig: &Rig, scale: f32) -> Vec<Point> {
    let mut p = rest.to_vec();
    let press = rig.press;
    let jaw = rig.jaw_open * (1.0 - press) * JAW_DROP * scale;
    // The jaw outline and the chin.
    for i in idx::JAW {
        p[i].y += jaw * jaw_weight(i);
    }
    // The lower lip rides on the jaw (a little less than the chin), most in the middle; the
    // mouth corners drop a little.
    let mid_x = (rest[48].x + rest[54].x) / 2.0;
    let half = ((rest[54].x - rest[48].x) / 2.0).abs().max(1.0);
    for &i in &idx::LOWER_LIP {
        let off = ((rest[i].x - mid_x) / half).clamp(-1.0, 1.0);
        p[i].y += jaw * 0.85 * (1.0 - 0.5 * off * off);
    }
    for &i in &idx::CORNERS {
        p[i].y += jaw * 0.3;
    }
    // The lips part beyond the jaw.
    let part = rig.lip_open * (1.0 - press) * LIP_PART * scale;
    for &i in &idx::UPPER_INNER {
        p[i].y -= part * 0.4;
    }
    for i in [50, 51, 52] {
        p[i].y -= part * 0.3;
    }
    for &i in &idx::LOWER_INNER {
        p[i].y += part * 0.6;
    }
    // The upper lip lifts off the teeth (its middle most).
    let lift = rig.upper_lip * (1.0 - press) * UPPER_LIFT * scale;
    for &i in &idx::UPPER_INNER {
        p[i].y -= lift;
    }
    for i in [50, 51, 52] {
        p[i].y -= lift * 0.7;
    }
    // The lower lip tucks up under the upper teeth: its inner edge rises to just under the
    // upper lip, the outer edge follows part of the way (the lip rolls in).
    let tuck = rig.lower_lip * (1.0 - press);
    if tuck > 0.0 {
        for ((&u, &l), &o) in idx::UPPER_INNER
            .iter()
            .zip(idx::LOWER_INNER.iter())
            .zip([58usize, 57, 56].iter())
        {
            let stop = p[u].y + TUCK_BELOW_UPPER * scale;
            let rise = ((p[l].y - stop) * tuck).max(0.0);
            p[l].y -= rise;
            p[o].y -= rise * 0.6;
        }
    }
    // Pressed lips: the inner contours meet on their middle line (a hair apart, so the
    // triangles of the mouth's gap stay triangles).
    if press > 0.0 {
        for (&u, &l) in idx::UPPER_INNER.iter().zip(idx::LOWER_INNER.iter()) {
            let mid = (p[u].y + p[l].y) / 2.0;
            p[u].y += (mid - PRESSED_GAP / 2.0 - p[u].y) * press;
            p[l].y += (mid + PRESSED_GAP / 2.0 - p[l].y) * press;
        }
    }
    // Width: corners out (smile) or in (pucker), the lips' middle points follow a little.
    let centre_x = (rest[48].x + rest[54].x) / 2.0;
    let travel = rig.width * CORNER_TRAVEL * scale;
    for i in idx::LIPS_OUTER.chain(idx::LIPS_INNER) {
        let side = (rest[i].x - centre_x) / ((rest[54].x - rest[48].x).abs() / 2.0).max(1.0);
        let weight = if idx::CORNERS.contains(&i) {
            1.0
        } else {
            0.5 * side.abs()
        };
        p[i].x += travel * side.signum() * weight;
        if rig.width > 0.0 && idx::CORNERS.contains(&i) {
            // A smile lifts the corners a little.
            p[i].y -= travel * 0.3;
        }
    }
    // Blinks: each upper lid point travels along the straight line to its lower lid point
    // (never past it). On a real face the two are not above one another; moving straight down
    // would cross the line from the eye corner to the lower lid and fold that triangle.
    for &(upper, lower) in &idx::LIDS {
        let closed = if idx::EYE_L.contains(&upper) {
            rig.blink_left
        } else {
            rig.blink_right
        };
        if rest[lower].y > rest[upper].y {
            p[upper].x += (rest[lower].x - rest[upper].x) * closed * 0.92;
            p[upper].y += (rest[lower].y - rest[upper].y) * closed * 0.92;
        }
    }
    p
}

/// Head motion for a point at `p`: rotation about `centre` by the roll, plus a shift for yaw and
/// pitch, scaled by `amount` (1 on the face, less in the outer rings, 0 at the border).
pub fn head_motion(p: Point, centre: Point, rig: &Rig, scale: f32, amount: f32) -> Point {
    if amount == 0.0 {
        return p;
    }
    let roll = rig.roll_deg.to_radians() * amount;
    let (s, c) = roll.sin_cos();
    let (dx, dy) = (p.x - centre.x, p.y - centre.y);
    // A face ~3 interocular distances deep turning by yaw shifts sideways by depth * sin(yaw).
    let depth = 1.5 * scale;
    Point::new(
        centre.x + dx * c - dy * s + depth * rig.yaw_deg.to_radians().sin() * amount,
        centre.y + dx * s + dy * c + depth * rig.pitch_deg.to_radians().sin() * amount,
    )
}
