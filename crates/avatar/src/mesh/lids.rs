//! Closing eyelids. A photo of open eyes holds no picture of the lid that covers a closed eye
//! (it is folded under the crease), so warping the photo can only squeeze the eye into a slit
//! under stretched lashes, which still reads as an open eye. Instead the lid is drawn, like the
//! inside of the mouth: a smooth surface in the colour of the skin around the eye (a little of
//! the texture above it) coming down from over the photo's own lashes and liner to where the
//! lid's edge is, its top fading into the skin, a line of lashes along the edge in the photo's
//! lash colour, and the lower lid rising to meet it when closed. Edges are feathered.

use super::interior::contour_y;
use super::{idx, Point, Rig};

/// How far above the upper lid line the drawn lid starts: over the photo's own lashes and eye
/// liner (which a closing lid carries down to its edge; left in place they draw the open eye's
/// outline around the lid), interocular distances.
const LID_OVER_LASHES: f32 = 0.1;
/// The lid's top edge fades into the skin above over this much, interocular distances.
const TOP_BLEND: f32 = 0.03;
/// Thickness of the drawn lash line at the lid's edge, interocular distances.
const LASH_LINE: f32 = 0.016;
/// How dark the drawn lash line is, 0..=1 of the photo's lash colour.
const LASH_STRENGTH: f32 = 0.8;
/// Where a closed lid's edge lies, as a share of the way from the upper lid's points to the
/// lower lid's.
const EDGE_CLOSED: f32 = 0.8;
/// How far the risen lower lid covers, on the same scale (past the lower lid's points: the
/// white shows a little under them).
const LOWER_PAST: f32 = 1.6;
/// How much of the lid's surface is the texture of the skin above it (the rest is that skin's
/// mean colour): a lid is smooth, and a textured one showed the eye's round outline again.
const LID_TEXTURE: f32 = 0.2;
/// How far past each eye corner a closed lid reaches, as a share of the eye's width.
const CORNER_PAST: f32 = 0.15;
/// Feathering, px.
const FEATHER: f32 = 1.3;

/// The colours of one eye's lid, from the photo.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LidColours {
    /// The lid's skin (as between the lid and the brow).
    pub skin: [f32; 3],
    /// The lashes along the lid's edge.
    pub lash: [f32; 3],
}

/// One eye's points: outer/inner corners and the two upper and two lower lid points, in picture
/// order from left to right.
struct Eye {
    corners: (usize, usize),
    upper: [usize; 2],
    lower: [usize; 2],
    brow: [usize; 2],
}

const EYES: [Eye; 2] = [
    Eye {
        corners: (36, 39),
        upper: [37, 38],
        lower: [41, 40],
        brow: [19, 20],
    },
    Eye {
        corners: (42, 45),
        upper: [43, 44],
        lower: [47, 46],
        brow: [23, 24],
    },
];

fn pixel(rgba: &[u8], width: u32, height: u32, q: Point) -> [f32; 3] {
    let x = (q.x.max(0.0) as u32).min(width.saturating_sub(1));
    let y = (q.y.max(0.0) as u32).min(height.saturating_sub(1));
    let i = ((y * width + x) * 4) as usize;
    [
        f32::from(rgba[i]),
        f32::from(rgba[i + 1]),
        f32::from(rgba[i + 2]),
    ]
}

fn luma(c: [f32; 3]) -> f32 {
    0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]
}

fn lerp(a: Point, b: Point, t: f32) -> Point {
    Point::new(a.x + (b.x - a.x) * t, a.y + (b.y - a.y) * t)
}

/// Lid colours of the picture-left and picture-right eye, from the photo at rest (`p`: the 68
/// landmarks): the skin as the mean of the middle third of points between each upper lid point
/// and the brow above it and under the eye, the lashes as the darkest pixels along the upper
/// lid line.
pub fn sample_lid_colours(rgba: &[u8], width: u32, height: u32, p: &[Point]) -> [LidColours; 2] {
    EYES.map(|eye| {
        // Above the eye (the lid's own skin, often with make-up) and under it (the skin the
        // lid must not stand out from).
        let mut skins = Vec::new();
        let around = |q: Point, skins: &mut Vec<[f32; 3]>| {
            for (dx, dy) in [(0.0, 0.0), (-1.0, 0.0), (1.0, 0.0), (0.0, -1.0), (0.0, 1.0)] {
                skins.push(pixel(rgba, width, height, Point::new(q.x + dx, q.y + dy)));
            }
        };
        for ((&u, &b), &l) in eye.upper.iter().zip(&eye.brow).zip(&eye.lower) {
            for t in [0.35, 0.45, 0.55] {
                around(lerp(p[u], p[b], t), &mut skins);
            }
            for t in [1.8, 2.1, 2.4] {
                around(lerp(p[u], p[l], t), &mut skins);
            }
        }
        // Drop the darkest and brightest third (lashes, brow hairs, highlights).
        skins.sort_by(|a, b| luma(*a).total_cmp(&luma(*b)));
        let keep = &skins[skins.len() / 3..skins.len() - skins.len() / 3];
        let mut skin = [0.0f32; 3];
        for c in keep {
            for k in 0..3 {
                skin[k] += c[k] / keep.len() as f32;
            }
        }
        let line = [eye.corners.0, eye.upper[0], eye.upper[1], eye.corners.1];
        let mut lash = [255.0f32; 3];
        for w in line.windows(2) {
            for s in 0..=8 {
                let q = lerp(p[w[0]], p[w[1]], s as f32 / 8.0);
                for dy in [-1.0, 0.0, 1.0] {
                    let c = pixel(rgba, width, height, Point::new(q.x, q.y + dy));
                    if luma(c) < luma(lash) {
                        lash = c;
                    }
                }
            }
        }
        // Never lighter than the skin (a pale photo): then a darker shade of it.
        if luma(lash) > luma(skin) * 0.7 {
            lash = skin.map(|v| v * 0.45);
        }
        LidColours { skin, lash }
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
        let lift = LID_OVER_LASHES * scale;
        let top: Vec<Point> = [c0, p[eye.upper[0]], p[eye.upper[1]], c3]
            .iter()
            .enumerate()
            .map(|(k, q)| {
                let l = if k == 0 || k == 3 { lift * 0.8 } else { lift };
                Point::new(q.x, q.y - l)
            })
            .collect();
        let top = smooth(&top);
        // Closed, the lid's edge (the lash line) lies low in the eye, and the lower lid rises a
        // little to meet it, covering the white that shows between the landmarks and just past
        // the corners.
        let reach = b * EDGE_CLOSED;
        let out_by = (c3.x - c0.x).abs() * CORNER_PAST * b;
        let (c0, c3) = (
            Point::new(c0.x - out_by, c0.y),
            Point::new(c3.x + out_by, c3.y),
        );
        let edge = smooth(&[
            c0,
            lerp(p[eye.upper[0]], p[eye.lower[0]], reach),
            lerp(p[eye.upper[1]], p[eye.lower[1]], reach),
            c3,
        ]);
        let low = smooth(&[
            c0,
            lerp(p[eye.upper[0]], p[eye.lower[0]], LOWER_PAST),
            lerp(p[eye.upper[1]], p[eye.lower[1]], LOWER_PAST),
            c3,
        ]);
        let lower_lid = ((b - 0.6) / 0.4).clamp(0.0, 1.0);
        // The lid fades in over the first part of the blink so its start is not a jump.
        let fade = (b / 0.15).min(1.0);
        let lash_w = LASH_LINE * scale;
        let (x0, x1) = (c0.x.min(c3.x), c0.x.max(c3.x));
        let y_top = top.iter().map(|q| q.y).fold(f32::MAX, f32::min) - TOP_BLEND * scale;
        let y_bot = low.iter().map(|q| q.y).fold(f32::MIN, f32::max) + FEATHER;
        let xs = (x0.floor().max(0.0) as u32)..=(x1.ceil().min(width as f32 - 1.0).max(0.0) as u32);
        let ys = (y_top.floor().max(0.0) as u32)
            ..=(y_bot.ceil().min(height as f32 - 1.0).max(0.0) as u32);
        let half = ((x1 - x0) / 2.0).max(1.0);
        let cx = (x0 + x1) / 2.0;
        for y in ys {
            let py = y as f32 + 0.5;
            for x in xs.clone() {
                let px = x as f32 + 0.5;
                let (ty, ey) = (contour_y(&top, px), contour_y(&edge, px));
                let blend = TOP_BLEND * scale;
                if ey <= ty || py < ty - blend {
                    continue;
                }
                if py > ey + FEATHER {
                    // Under the lash line: the lower lid's skin, mirrored up from under it.
                    let ly = contour_y(&low, px);
                    if lower_lid <= 0.0 || py > ly + FEATHER {
                        continue;
                    }
                    let a = ((ly - py + FEATHER) / (2.0 * FEATHER))
                        .min((px - x0) / FEATHER)
                        .min((x1 - px) / FEATHER)
                        .clamp(0.0, 1.0)
                        * lower_lid;
                    let src_y = ly + lift + (ly - py) * 0.7;
                    let tex = pixel(out, width, height, Point::new(px, src_y));
                    let i = ((y * width + x) * 4) as usize;
                    for k in 0..3 {
                        let v = f32::from(out[i + k]);
                        let want = (LID_TEXTURE * tex[k] + (1.0 - LID_TEXTURE) * c.skin[k]) * 0.97;
                        out[i + k] = (v + (want - v) * a).round().clamp(0.0, 255.0) as u8;
                    }
                    continue;
                }
                let inside = ((py - ty + blend) / (2.0 * blend))
                    .min((ey - py + FEATHER) / (2.0 * FEATHER))
                    .min((px - x0) / FEATHER)
                    .min((x1 - px) / FEATHER)
                    .clamp(0.0, 1.0);
                if inside <= 0.0 {
                    continue;
                }
                // Round lid: lighter across its middle, darker toward the edge and the corners.
                let t = ((py - ty) / (ey - ty).max(1.0)).clamp(0.0, 1.0);
                let side = ((px - cx) / half).abs().min(1.0);
                let shade = 1.02 - 0.04 * t * t - 0.06 * side * side;
                // The lid's texture: the skin above the lashes, mirrored down (rows above the
                // lid are never written here, so they are still the photo's).
                let src_y = ty - blend - 2.0 - (py - ty) * 0.5;
                let tex = pixel(out, width, height, Point::new(px, src_y));
                let mut col = [0.0f32; 3];
                for k in 0..3 {
                    col[k] = (LID_TEXTURE * tex[k] + (1.0 - LID_TEXTURE) * c.skin[k]) * shade;
                }
                // Lashes along the edge.
                let to_edge = ey - py;
                if to_edge < lash_w {
                    let k = LASH_STRENGTH
                        * (1.0 - to_edge / lash_w).clamp(0.0, 1.0).powf(0.7)
                        * (1.0 - 0.4 * side);
                    for (v, l) in col.iter_mut().zip(c.lash) {
                        *v += (l - *v) * k;
                    }
                }
                let a = inside * fade;
                let i = ((y * width + x) * 4) as usize;
                for k in 0..3 {
                    let v = f32::from(out[i + k]);
                    out[i + k] = (v + (col[k] - v) * a).round().clamp(0.0, 255.0) as u8;
                }
            }
        }
    }
}
