//! The face rig: a handful of values (jaw, lips, blinks, a little head motion) turned into where
//! each of the 68 landmarks (the iBUG 300-W layout that face-api and dlib use) and each ring point
//! goes. Distances are in units of the face's interocular distance, so a rig value means the
//! same on a small and a large photo.

use super::{mean_of, Point};

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
    /// Upper lid points.
    pub const UPPER_LIDS: [usize; 4] = [37, 38, 43, 44];
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
pub const LIP_PART: f32 = 0.08;
/// Mouth corners' sideways travel at `width` ±1, interocular distances.
pub const CORNER_TRAVEL: f32 = 0.08;
/// The upper lip's lift at `upper_lip` 1, interocular distances.
pub const UPPER_LIFT: f32 = 0.035;
/// How far under the upper inner lip a tucked lower lip stops (the upper teeth's edge that
/// shows over it), interocular distances.
pub const TUCK_BELOW_UPPER: f32 = 0.045;
/// Farthest a tucked lower lip rises, interocular distances.
pub const TUCK_MAX_RISE: f32 = 0.05;
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
///
/// The rig works in the face's own axes: on a tilted head the jaw drops along the face's
/// "down" (perpendicular to the line between the eyes), not the picture's. Each point's
/// displacement is found on the face turned upright and turned back, so the rest pose moves
/// nothing at all.
pub fn pose_landmarks(rest: &[Point], rig: &Rig, scale: f32) -> Vec<Point> {
    let (el, er) = (mean_of(rest, idx::EYE_L), mean_of(rest, idx::EYE_R));
    let angle = (er.y - el.y).atan2(er.x - el.x);
    if angle.abs() < 0.2f32.to_radians() || !angle.is_finite() {
        return pose_upright(rest, rig, scale);
    }
    let (sin, cos) = angle.sin_cos();
    let pivot = Point::new((el.x + er.x) / 2.0, (el.y + er.y) / 2.0);
    // Into the face's axes (turned by -angle about the pivot) and back.
    let upright: Vec<Point> = rest
        .iter()
        .map(|q| {
            let (dx, dy) = (q.x - pivot.x, q.y - pivot.y);
            Point::new(pivot.x + dx * cos + dy * sin, pivot.y - dx * sin + dy * cos)
        })
        .collect();
    let posed = pose_upright(&upright, rig, scale);
    rest.iter()
        .zip(upright.iter().zip(&posed))
        .map(|(r, (u, q))| {
            let (dx, dy) = (q.x - u.x, q.y - u.y);
            Point::new(r.x + dx * cos - dy * sin, r.y + dx * sin + dy * cos)
        })
        .collect()
}

/// [`pose_landmarks`] for a face whose eyes are level.
fn pose_upright(rest: &[Point], rig: &Rig, scale: f32) -> Vec<Point> {
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
    // The upper lip lifts off the teeth: its middle most, nothing at the corners.
    let lift = rig.upper_lip * (1.0 - press) * UPPER_LIFT * scale;
    if lift > 0.0 {
        for (i, share) in [
            (61, 1.0),
            (62, 1.0),
            (63, 1.0),
            (49, 0.7),
            (50, 0.7),
            (51, 0.7),
        ]
        .into_iter()
        .chain([(52, 0.7), (53, 0.7)])
        {
            let off = ((rest[i].x - mid_x) / half).clamp(-1.0, 1.0);
            p[i].y -= lift * share * (1.0 - off * off);
        }
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
            // A lip reaches the teeth only when the jaw is nearly closed (as for f and v);
            // it never rolls in further than TUCK_MAX_RISE.
            let rise = ((p[l].y - stop) * tuck).clamp(0.0, TUCK_MAX_RISE * scale * tuck);
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
        // In proportion to the distance from the mouth's middle: the lips stretch or squeeze
        // evenly, so no lip point overtakes its neighbour (on a photo the inner corners may lie
        // a pixel from the outer ones).
        let side = ((rest[i].x - centre_x) / ((rest[54].x - rest[48].x).abs() / 2.0).max(1.0))
            .clamp(-1.0, 1.0);
        p[i].x += travel * side;
        if rig.width > 0.0 {
            // A smile lifts the corners a little, and the lips near them with them.
            p[i].y -= travel * 0.3 * side * side;
        }
    }
    // Blinks (for users of the mesh alone; the portrait draws its lids instead, see
    // `mesh::lids`): each upper lid point travels along the straight line to its lower lid
    // point (never past it). On a real face the two are not above one another; moving straight down
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
