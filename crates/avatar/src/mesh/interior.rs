//! The inside of an open mouth, drawn under the warped inner-lip contour: a shaded cavity, the
//! upper teeth under the upper lip (they stay with the skull), the lower teeth above the lower
//! lip (they move with the jaw), and the tongue low in the mouth when it is open wide. Colours
//! come from the photo's own lips and skin so the inside matches the light of the picture.
//! Edges are feathered over about a pixel.

use super::{idx, Point, Rig};

/// Width of an upper front tooth, interocular distances.
const TOOTH_UPPER: f32 = 0.08;
/// Width of a lower front tooth, interocular distances.
const TOOTH_LOWER: f32 = 0.055;

/// Colours of the inside, from the photo.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InteriorColours {
    /// Deep in the mouth.
    pub cavity: [f32; 3],
    /// Teeth.
    pub teeth: [f32; 3],
    /// Tongue.
    pub tongue: [f32; 3],
}

impl InteriorColours {
    /// From the photo's mean lip colour and mean skin colour (0..=255).
    pub fn from_photo(lips: [f32; 3], skin: [f32; 3]) -> Self {
        // Teeth are lighter than the skin around them in any light, but never white on a
        // dim photo: a little above the cheeks' brightness, between 150 and 232, and lit by
        // the same light (a quarter of the skin's tint, so they do not look blue beside it).
        let skin_luma = 0.299 * skin[0] + 0.587 * skin[1] + 0.114 * skin[2];
        let teeth = (skin_luma * 1.25).clamp(150.0, 232.0);
        let tint = skin.map(|c| c / skin_luma.max(1.0));
        let neutral = [1.0, 0.965, 0.9];
        let mut t = [0.0f32; 3];
        for k in 0..3 {
            t[k] = (teeth * (0.75 * neutral[k] + 0.25 * tint[k])).clamp(0.0, 255.0);
        }
        InteriorColours {
            cavity: lips.map(|c| c * 0.22),
            teeth: t,
            tongue: [lips[0] * 0.85, lips[1] * 0.55, lips[2] * 0.6],
        }
    }
}

/// The RGB of the pixel of `rgba` (`width`×`height`) under `q`, clamped to the picture.
pub(super) fn pixel(rgba: &[u8], width: u32, height: u32, q: Point) -> [f32; 3] {
    let x = (q.x.max(0.0) as u32).min(width.saturating_sub(1));
    let y = (q.y.max(0.0) as u32).min(height.saturating_sub(1));
    let i = ((y * width + x) * 4) as usize;
    [
        f32::from(rgba[i]),
        f32::from(rgba[i + 1]),
        f32::from(rgba[i + 2]),
    ]
}

/// `y` of a contour (points ordered by x) at `x`, linearly between points (the end points
/// beyond the ends).
pub(super) fn contour_y(points: &[Point], x: f32) -> f32 {
    if x <= points[0].x {
        return points[0].y;
    }
    for w in points.windows(2) {
        if x <= w[1].x {
            let t = (x - w[0].x) / (w[1].x - w[0].x).max(1e-3);
            return w[0].y + (w[1].y - w[0].y) * t;
        }
    }
    points[points.len() - 1].y
}

/// Draw the inside of the mouth into `out` (RGBA, `width` wide) for the posed landmarks `p`
/// (at least the 68), with `scale` = interocular distance in px and the rig that posed them
/// (its jaw opening lays the tongue low in the mouth, its `tongue` raises the tongue's tip to
/// the upper teeth).
pub fn draw_interior(
    out: &mut [u8],
    width: u32,
    height: u32,
    p: &[Point],
    scale: f32,
    rig: &Rig,
    colours: &InteriorColours,
) {
    let open = rig.jaw_open;
    let tip = if rig.tongue.is_finite() {
        rig.tongue.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let upper: Vec<Point> = [60, 61, 62, 63, 64].iter().map(|&i| p[i]).collect();
    let lower: Vec<Point> = [60, 67, 66, 65, 64].iter().map(|&i| p[i]).collect();
    let top = upper.iter().map(|q| q.y).fold(f32::MAX, f32::min);
    let bottom = lower.iter().map(|q| q.y).fold(f32::MIN, f32::max);
    if bottom - top < 1.0 {
        return;
    }
    let (left, right) = (p[60].x.min(p[64].x), p[60].x.max(p[64].x));
    let cx = (left + right) / 2.0;
    let half = ((right - left) / 2.0).max(1.0);
    let teeth_h = 0.085 * scale;
    let feather = 1.2f32;
    let x0 = (left.floor().max(0.0)) as u32;
    let x1 = (right.ceil().min(width as f32 - 1.0)).max(0.0) as u32;
    let y0 = (top.floor().max(0.0)) as u32;
    let y1 = (bottom.ceil().min(height as f32 - 1.0)).max(0.0) as u32;
    for y in y0..=y1 {
        let py = y as f32 + 0.5;
        for x in x0..=x1 {
            let px = x as f32 + 0.5;
            let (uy, ly) = (contour_y(&upper, px), contour_y(&lower, px));
            if py <= uy || py >= ly {
                continue;
            }
            // Feather against the lips and the corners.
            let edge = (py - uy).min(ly - py).min(px - left).min(right - px);
            let alpha = (edge / feather).clamp(0.0, 1.0);
            let gap = ly - uy;
            let t = (py - uy) / gap.max(1e-3);
            let side = ((px - cx) / half).abs();
            // The cavity: darkest in the middle and toward the back of the mouth.
            let shade = 0.75 + 0.5 * side.min(1.0) * (1.0 - t);
            let mut c = colours.cavity.map(|v| v * shade);
            let tongue_on = open > 0.3 && t > 0.55 && side < 0.7;
            if tongue_on {
                let k =
                    ((t - 0.55) / 0.45 * (1.0 - side / 0.7)).clamp(0.0, 1.0) * (open - 0.3) / 0.7;
                for (ci, tv) in c.iter_mut().zip(colours.tongue) {
                    *ci += (tv - *ci) * k.min(1.0);
                }
            }
            // The tongue's tip raised to the ridge behind the upper teeth: a rounded front
            // rising from the floor of the mouth, highest in the middle.
            if tip > 0.0 {
                let front = 1.0 - 0.8 * tip + 0.9 * side * side;
                if t > front {
                    let k = (((t - front) * gap / feather).clamp(0.0, 1.0)) * tip.min(1.0);
                    let lit = 1.0 - 0.25 * side;
                    for (ci, tv) in c.iter_mut().zip(colours.tongue) {
                        *ci += (tv * lit - *ci) * k;
                    }
                }
            }
            // Teeth: a band under the upper lip and a smaller one above the lower lip, fading
            // toward the corners (the teeth curve away into the dark).
            let teeth_fade = (1.0 - side * side).clamp(0.0, 1.0);
            // Each tooth is a little darker at its sides (a faint line between teeth) and
            // toward its biting edge.
            let tooth = |width: f32| {
                let u = ((px - cx) / width).abs();
                let edge = (u - u.round()).abs() * width;
                1.0 - 0.1 * (1.0 - edge / 0.8).max(0.0)
            };
            if py - uy < teeth_h && side < 0.85 {
                let depth = (py - uy) / teeth_h;
                let k = teeth_fade * (1.0 - depth).powf(0.3);
                let shade = tooth(TOOTH_UPPER * scale) * (1.0 - 0.12 * depth);
                for (ci, tv) in c.iter_mut().zip(colours.teeth) {
                    *ci += (tv * shade - *ci) * k;
                }
            } else if ly - py < teeth_h * 0.6 && side < 0.7 && gap > teeth_h * 1.2 {
                let k = 0.85 * teeth_fade * (1.0 - (ly - py) / (teeth_h * 0.6)).powf(0.3);
                let shade = 0.9 * tooth(TOOTH_LOWER * scale);
                for (ci, tv) in c.iter_mut().zip(colours.teeth) {
                    *ci += (tv * shade - *ci) * k;
                }
            }
            let i = ((y * width + x) * 4) as usize;
            for k in 0..3 {
                let v = f32::from(out[i + k]);
                out[i + k] = (v + (c[k] - v) * alpha).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
}

/// The photo's mean lip colour (at the outer lip landmarks) and mean skin brightness (between
/// the eyes and the mouth, at the cheeks' landmarks' ring), from an RGBA image.
pub fn sample_colours(rgba: &[u8], width: u32, height: u32, p: &[Point]) -> InteriorColours {
    let at = |q: Point| pixel(rgba, width, height, q);
    let mean = |pts: &mut dyn Iterator<Item = Point>| {
        let (mut sum, mut n) = ([0.0f32; 3], 0.0f32);
        for q in pts {
            let c = at(q);
            for k in 0..3 {
                sum[k] += c[k];
            }
            n += 1.0;
        }
        sum.map(|v| v / n.max(1.0))
    };
    // Just inside the outer lip contour (towards the mouth's centre) is lip, not skin.
    let centre = Point::new((p[48].x + p[54].x) / 2.0, (p[51].y + p[57].y) / 2.0);
    let lips = mean(&mut idx::LIPS_OUTER.clone().map(|i| {
        Point::new(
            p[i].x + (centre.x - p[i].x) * 0.25,
            p[i].y + (centre.y - p[i].y) * 0.25,
        )
    }));
    // Cheeks: between the jaw outline and the nose.
    let skin = mean(
        &mut [3usize, 4, 12, 13]
            .into_iter()
            .map(|i| Point::new((p[i].x + p[30].x) / 2.0, (p[i].y + p[30].y) / 2.0)),
    );
    InteriorColours::from_photo(lips, skin)
}
