//! Closing eyelids. A photo of open eyes holds no picture of the lid that covers a closed eye
//! (it is folded under the crease), so warping the photo can only squeeze the eye into a slit
//! under stretched lashes, which still reads as an open eye. Instead the lid is drawn, like the
//! inside of the mouth: skin coming down from over the photo's own lashes and liner to where the
//! lid's edge is, and the lower lid rising to meet it, past the corners, so a closed eye is skin
//! with no outline (no drawn lines: a drawn lash line read as the slit of an open eye). Each
//! column of the lid runs from the skin just above it to the skin just below, so its borders
//! vanish into the photo, and its middle is the cheek's lighter skin (the rounded lid catches
//! the light; a lid as dark as the shadow around the eye reads as an open eye). Edges are
//! feathered.

use super::interior::{contour_y, pixel};
use super::{idx, Point, Rig};

/// How far above the upper lid line the drawn lid starts: over the photo's own lashes and eye
/// liner (which a closing lid carries down to its edge; left in place they draw the open eye's
/// outline around the lid), interocular distances.
const LID_OVER_LASHES: f32 = 0.1;
/// The lid's top and bottom edges fade into the skin over this much, interocular distances.
const BLEND: f32 = 0.03;
/// Where a closed lid's edge lies, as a share of the way from the upper lid's points to the
/// lower lid's.
const EDGE_CLOSED: f32 = 0.8;
/// How far down the risen lower lid covers, on the same scale (past the lower lid's points:
/// the white and the dark rim under the eye show there).
const LOWER_PAST: f32 = 1.8;
/// How far past each eye corner a closed lid reaches, as a share of the eye's width (the
/// corners, the tear duct and liner wings left in place outline an eye that is not there).
const CORNER_PAST: f32 = 0.35;
/// How much lighter the lid's middle is than the skin it is made of (the lid is round).
const ROUND: f32 = 0.03;
/// Feathering of the lid's edge and sides, px.
const FEATHER: f32 = 1.3;
/// Rows of skin sampled beside the lid for its border colours, px.
const SKIN_ROWS: usize = 9;
/// The lighter share of those rows kept (lashes, liner and hairs are dark).
const SKIN_LIGHT: f32 = 0.6;
/// Columns on each side the sampled border colours are averaged over, px.
const SKIN_SMOOTH: usize = 4;

/// The colours of one eye's lid, from the photo.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LidColours {
    /// The skin of the lid's middle: the cheek's, under the eye.
    pub skin: [f32; 3],
}

/// One eye's points: outer/inner corners and the two upper and two lower lid points, in picture
/// order from left to right.
struct Eye {
    corners: (usize, usize),
    upper: [usize; 2],
    lower: [usize; 2],
}

const EYES: [Eye; 2] = [
    Eye {
        corners: (36, 39),
        upper: [37, 38],
        lower: [41, 40],
    },
    Eye {
        corners: (42, 45),
        upper: [43, 44],
        lower: [47, 46],
    },
];

fn luma(c: [f32; 3]) -> f32 {
    0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]
}

fn lerp(a: Point, b: Point, t: f32) -> Point {
    Point::new(a.x + (b.x - a.x) * t, a.y + (b.y - a.y) * t)
}

/// Lid colours of the picture-left and picture-right eye, from the photo at rest (`p`: the 68
/// landmarks): the cheek half an eye's width under each eye, the lighter half of the samples
/// without the brightest sixth (shadow, freckles and hairs out, highlights too). The skin right
/// around the eye is darker: shadow under it, make-up over it.
pub fn sample_lid_colours(rgba: &[u8], width: u32, height: u32, p: &[Point]) -> [LidColours; 2] {
    EYES.map(|eye| {
        let mut skins = Vec::new();
        let around = |q: Point, skins: &mut Vec<[f32; 3]>| {
            for (dx, dy) in [(0.0, 0.0), (-1.0, 0.0), (1.0, 0.0), (0.0, -1.0), (0.0, 1.0)] {
                skins.push(pixel(rgba, width, height, Point::new(q.x + dx, q.y + dy)));
            }
        };
        let w = p[eye.corners.0].dist(p[eye.corners.1]);
        for &l in &eye.lower {
            for dx in [-0.3, 0.0, 0.3] {
                for dy in [0.45, 0.55, 0.65] {
                    around(
                        Point::new(p[l].x + dx * w * 0.5, p[l].y + dy * w),
                        &mut skins,
                    );
                }
            }
        }
        skins.sort_by(|a, b| luma(*a).total_cmp(&luma(*b)));
        let keep = &skins[skins.len() / 2..skins.len() - skins.len() / 6];
        let mut skin = [0.0f32; 3];
        for c in keep {
            for k in 0..3 {
                skin[k] += c[k] / keep.len() as f32;
            }
        }
        LidColours { skin }
    })
}

/// A smooth curve through `pts` (Catmull-Rom, ends repeated), as a polyline of 8 steps per span.
fn smooth(pts: &[Point]) -> Vec<Point> {
    let n = pts.len();
    let at = |i: isize| pts[i.clamp(0, n as isize - 1) as usize];
    let mut out = Vec::with_capacity(8 * n);
    for i in 0..n.saturating_sub(1) {
        let (p0, p1, p2, p3) = (
            at(i as isize - 1),
            at(i as isize),
            at(i as isize + 1),
            at(i as isize + 2),
        );
        for s in 0..8 {
            let t = s as f32 / 8.0;
            let (t2, t3) = (t * t, t * t * t);
            let f = |a: f32, b: f32, c: f32, d: f32| {
                0.5 * (2.0 * b
                    + (c - a) * t
                    + (2.0 * a - 5.0 * b + 4.0 * c - d) * t2
                    + (3.0 * b - a - 3.0 * c + d) * t3)
            };
            out.push(Point::new(
                f(p0.x, p1.x, p2.x, p3.x),
                f(p0.y, p1.y, p2.y, p3.y),
            ));
        }
    }
    out.push(pts[n - 1]);
    out
}

/// The skin colour of each column `xs` just outside a contour: the lighter part (by luma) of
/// the pixels `from..from+SKIN_ROWS` rows away from `contour` in direction `dir` (-1 up, +1 down),
/// so lashes, liner and brow hairs in the way do not darken it, then smoothed across columns.
fn skin_along(
    img: &[u8],
    width: u32,
    height: u32,
    contour: &[Point],
    xs: std::ops::RangeInclusive<u32>,
    from: f32,
    dir: f32,
) -> Vec<[f32; 3]> {
    let raw: Vec<[f32; 3]> = xs
        .map(|x| {
            let px = x as f32 + 0.5;
            let y0 = contour_y(contour, px);
            let mut c: Vec<[f32; 3]> = (0..SKIN_ROWS)
                .map(|k| {
                    pixel(
                        img,
                        width,
                        height,
                        Point::new(px, y0 + dir * (from + k as f32)),
                    )
                })
                .collect();
            c.sort_by(|a, b| luma(*b).total_cmp(&luma(*a)));
            let keep = &c[..((c.len() as f32 * SKIN_LIGHT).ceil() as usize).clamp(1, c.len())];
            let mut m = [0.0f32; 3];
            for q in keep {
                for k in 0..3 {
                    m[k] += q[k] / keep.len() as f32;
                }
            }
            m
        })
        .collect();
    let n = raw.len();
    (0..n)
        .map(|i| {
            let (a, b) = (i.saturating_sub(SKIN_SMOOTH), (i + SKIN_SMOOTH).min(n - 1));
            let mut m = [0.0f32; 3];
            for q in &raw[a..=b] {
                for k in 0..3 {
                    m[k] += q[k] / (b - a + 1) as f32;
                }
            }
            m
        })
        .collect()
}

/// Draw the closing lids into `out` (RGBA, `width` wide) for the landmarks `p` where the eyes
/// are (the warp leaves them open), with `scale` = interocular distance and the rig's
/// `blink_left`/`blink_right` (0 open .. 1 closed: the lid's edge reaches the lower lid).
pub fn draw_lids(
    out: &mut [u8],
    width: u32,
    height: u32,
    p: &[Point],
    scale: f32,
    rig: &Rig,
    colours: &[LidColours; 2],
) {
    let amounts = [rig.blink_left, rig.blink_right];
    for ((eye, &b), c) in EYES.iter().zip(&amounts).zip(colours) {
        let b = if b.is_finite() {
            b.clamp(0.0, 1.0)
        } else {
            0.0
        };
        if b <= 0.0 {
            continue;
        }
        debug_assert!(idx::EYE_L.contains(&eye.corners.0) || idx::EYE_R.contains(&eye.corners.0));
        let (c0, c3) = (p[eye.corners.0], p[eye.corners.1]);
        let (u0, u1) = (p[eye.upper[0]], p[eye.upper[1]]);
        let (l0, l1) = (p[eye.lower[0]], p[eye.lower[1]]);
        let lift = LID_OVER_LASHES * scale;
        let blend = BLEND * scale;
        // The lid's ends, past the corners.
        let out_by = (c3.x - c0.x).abs() * CORNER_PAST;
        let (e0, e3) = (
            Point::new(c0.x - out_by, c0.y - lift * 0.3),
            Point::new(c3.x + out_by, c3.y - lift * 0.3),
        );
        let up = |q: Point, by: f32| Point::new(q.x, q.y - by);
        let top = smooth(&[
            e0,
            up(c0, lift * 0.8),
            up(u0, lift),
            up(u1, lift),
            up(c3, lift * 0.8),
            e3,
        ]);
        // The lid's edge comes down to EDGE_CLOSED of the way to the lower lid; the lower lid
        // rises to meet it there, so the opening shrinks with the blink.
        let through = |t: f32| smooth(&[e0, c0, lerp(u0, l0, t), lerp(u1, l1, t), c3, e3]);
        let edge = through(b * EDGE_CLOSED);
        let rise = through(1.0 - (1.0 - EDGE_CLOSED) * b);
        let low = smooth(&[
            e0,
            up(c0, -lift * 1.2),
            lerp(u0, l0, LOWER_PAST),
            lerp(u1, l1, LOWER_PAST),
            up(c3, -lift * 1.2),
            e3,
        ]);
        // The lower lid covers the rim under the eye only once the blink is well under way,
        // and the whole lid fades in over its first part so its start is not a jump.
        let lower_lid = ((b - 0.3) / 0.4).clamp(0.0, 1.0);
        let fade = (b / 0.15).min(1.0);
        let (x0, x1) = (e0.x.min(e3.x), e0.x.max(e3.x));
        let xs = (x0.floor().max(0.0) as u32)..=(x1.ceil().min(width as f32 - 1.0).max(0.0) as u32);
        let x_first = *xs.start();
        // Rows above `top` and below `low` are never written here: still the photo's.
        let above = skin_along(out, width, height, &top, xs.clone(), blend + 1.0, -1.0);
        let below = skin_along(out, width, height, &low, xs.clone(), blend + 1.0, 1.0);
        let y_top = top.iter().map(|q| q.y).fold(f32::MAX, f32::min) - blend;
        let y_bot = low.iter().map(|q| q.y).fold(f32::MIN, f32::max) + blend;
        let ys = (y_top.floor().max(0.0) as u32)
            ..=(y_bot.ceil().min(height as f32 - 1.0).max(0.0) as u32);
        let half = ((c3.x - c0.x).abs() / 2.0).max(1.0);
        let cx = (c0.x + c3.x) / 2.0;
        for x in xs {
            let px = x as f32 + 0.5;
            let (ty, ey, ry, ly) = (
                contour_y(&top, px),
                contour_y(&edge, px),
                contour_y(&rise, px),
                contour_y(&low, px),
            );
            if ly <= ty {
                continue;
            }
            let (sa, sb) = (above[(x - x_first) as usize], below[(x - x_first) as usize]);
            // 0 at the eye's middle, 1 at its corners, 1 + CORNER_PAST at the lid's ends.
            let side = ((px - cx) / half).abs();
            let across = 1.0 - (side / (1.0 + CORNER_PAST)).min(1.0).powi(2);
            let ends = ((px - x0) / (2.0 * FEATHER))
                .min((x1 - px) / (2.0 * FEATHER))
                .clamp(0.0, 1.0);
            for y in ys.clone() {
                let py = y as f32 + 0.5;
                if py < ty - blend || py > ly + blend {
                    continue;
                }
                // The lid down to its edge, and the lower lid up from where it has risen to;
                // their feathers add up where they meet (a closed eye has no seam).
                let upper = ((py - ty + blend) / (2.0 * blend))
                    .min((ey - py + FEATHER) / (2.0 * FEATHER))
                    .clamp(0.0, 1.0);
                let lower = ((ly - py + blend) / (2.0 * blend))
                    .min((py - ry + FEATHER) / (2.0 * FEATHER))
                    .clamp(0.0, 1.0)
                    * lower_lid;
                let a = ((upper + lower).min(1.0) * ends * fade).clamp(0.0, 1.0);
                if a <= 0.0 {
                    continue;
                }
                // From the skin above to the skin below, turning to the lighter cheek skin
                // toward the middle, which is a little lighter still (round).
                let t = ((py - ty) / (ly - ty)).clamp(0.0, 1.0);
                let middle = (1.0 - (2.0 * t - 1.0).powi(2)) * across;
                let round =
                    1.0 + ROUND * (1.0 - (2.0 * t - 1.0).powi(2)) * (1.0 - side.min(1.0).powi(2));
                let i = ((y * width + x) * 4) as usize;
                for k in 0..3 {
                    let border = sa[k] + (sb[k] - sa[k]) * t;
                    let want = (border + (c.skin[k] - border) * middle) * round;
                    let v = f32::from(out[i + k]);
                    out[i + k] = (v + (want - v) * a).round().clamp(0.0, 255.0) as u8;
                }
            }
        }
    }
}
