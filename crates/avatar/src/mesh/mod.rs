//! A photo animated by a landmark mesh (the non-neural approach of "Bringing Portraits to
//! Life", Averbuch-Elor et al. 2017): the 68 face landmarks, two rings of points around the face
//! and points along the image border are triangulated once; per frame a small [`Rig`] (jaw, lips,
//! blinks, a little head motion) moves the landmarks, the rings follow with a falloff, the border
//! stays, and every triangle's pixels are warped from the photo (piecewise affine, bilinear).
//! At rest the output is the photo itself, exactly.
//!
//! The inside of the open mouth (cavity, teeth, tongue) is drawn under the inner lip contour
//! ([`draw_interior`]), and a blink's closing lids over the eyes ([`draw_lids`]). [`crate::PortraitFace`] uses all this when the portrait has landmarks
//! (`<image>.landmarks.json`, see [`crate::portrait::landmarks`]). Sans-I/O like the rest of the
//! crate.

mod interior;
mod lids;
mod rig;
mod template;
mod triangulate;
mod warp;

pub use interior::{draw_interior, sample_colours, InteriorColours};
pub use lids::{draw_lids, sample_lid_colours, LidColours};
pub use rig::{
    idx, Rig, CORNER_TRAVEL, JAW_DROP, LIP_PART, MAX_HEAD_DEG, PRESSED_GAP, TUCK_BELOW_UPPER,
    TUCK_MAX_RISE, UPPER_LIFT,
};
pub use template::template_landmarks;
pub use triangulate::{signed_area2, triangulate, Triangle};
pub use warp::{warp, RgbaRef};

/// A point in image pixels (x right, y down; pixel `i` spans `i..i+1`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Point {
    /// Horizontal position.
    pub x: f32,
    /// Vertical position.
    pub y: f32,
}

impl Point {
    /// A point.
    pub const fn new(x: f32, y: f32) -> Self {
        Point { x, y }
    }

    /// Distance to `o`.
    pub fn dist(self, o: Point) -> f32 {
        ((self.x - o.x).powi(2) + (self.y - o.y).powi(2)).sqrt()
    }
}

/// The mean of the landmarks `p[r]` (an eye's centre, the mouth's, …).
pub fn mean_of(p: &[Point], r: std::ops::RangeInclusive<usize>) -> Point {
    let n = r.clone().count() as f32;
    let (x, y) = r.fold((0.0, 0.0), |(x, y), i| (x + p[i].x, y + p[i].y));
    Point::new(x / n, y / n)
}

/// Landmarks per face (the iBUG 300-W layout).
pub const LANDMARKS: usize = 68;

/// Why landmarks cannot make a mesh.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MeshError {
    /// Not 68 points.
    #[error("expected {LANDMARKS} landmarks, got {0}")]
    Count(usize),
    /// A point is not a number or lies outside the image.
    #[error("landmark {index} ({x}, {y}) is outside the {width}x{height} image")]
    OutOfBounds {
        /// Which landmark.
        index: usize,
        /// Its x.
        x: f32,
        /// Its y.
        y: f32,
        /// Image width.
        width: u32,
        /// Image height.
        height: u32,
    },
    /// The face is too small to animate.
    #[error("the eyes are {0:.1} px apart; a face needs at least 8 px between the eyes")]
    TooSmall(f32),
    /// The points do not look like an upright face.
    #[error("the landmarks do not look like an upright face: {0}")]
    Implausible(&'static str),
    /// The output buffer has the wrong size.
    #[error("frame buffer has {actual} bytes, expected {expected}")]
    BufferSize {
        /// Bytes needed.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
}

/// What a pose did to the mesh (for tests and checks).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeshQuality {
    /// Triangles whose orientation flipped (folded over): must be 0.
    pub flipped: usize,
    /// Largest factor by which a triangle edge grew or shrank (1 = unchanged), leaving out the
    /// edges across the mouth's gap and across an eye, which close by design.
    pub max_stretch: f32,
}

/// Where a non-landmark point comes from and how much it follows the face.
#[derive(Debug, Clone, Copy)]
struct Follower {
    /// The landmark whose rig displacement it takes (a share of).
    base: usize,
    /// Share of that landmark's displacement.
    follow: f32,
    /// Share of the head motion.
    head: f32,
}

/// The mesh of one photo: rest points (landmarks, rings, border) and their triangles.
#[derive(Debug, Clone)]
pub struct FaceMesh {
    width: u32,
    height: u32,
    rest: Vec<Point>,
    /// For each point after the 68 landmarks: how it moves (`None`: the border, fixed).
    followers: Vec<Option<Follower>>,
    tris: Vec<Triangle>,
    /// Interocular distance, px.
    scale: f32,
    /// The face's centre (between the eyes and the mouth), the head's pivot.
    centre: Point,
}

/// Ring distances from the face centre, relative to the face contour, and how much each ring
/// follows the face: the inner ring carries the cheeks and hair near the face, the outer fades
/// into the background.
const RINGS: [(f32, f32, f32); 2] = [(1.35, 0.5, 0.6), (1.9, 0.15, 0.25)];
/// Spacing of the border points, px.
const BORDER_STEP: f32 = 64.0;

impl FaceMesh {
    /// The mesh for a `width`×`height` photo with these 68 landmarks (validated).
    pub fn new(width: u32, height: u32, landmarks: &[Point]) -> Result<Self, MeshError> {
        validate(width, height, landmarks)?;
        let (el, er) = (
            mean_of(landmarks, idx::EYE_L),
            mean_of(landmarks, idx::EYE_R),
        );
        let scale = el.dist(er);
        let mouth = Point::new(
            (landmarks[48].x + landmarks[54].x) / 2.0,
            (landmarks[51].y + landmarks[57].y) / 2.0,
        );
        let centre = Point::new(
            (el.x + er.x + 2.0 * mouth.x) / 4.0,
            (el.y + er.y + 2.0 * mouth.y) / 4.0,
        );

        let mut rest = landmarks.to_vec();
        settle_inner_corners(&mut rest);
        let landmarks = &rest.clone()[..];
        let mut followers = Vec::new();
        let (w, h) = (width as f32, height as f32);
        let inside = |p: Point| p.x > 2.0 && p.y > 2.0 && p.x < w - 2.0 && p.y < h - 2.0;
        let contour: Vec<usize> = idx::JAW.chain(idx::BROWS.rev()).collect();
        for &(k, follow, head) in &RINGS {
            for &i in &contour {
                let p = landmarks[i];
                let q = Point::new(
                    centre.x + (p.x - centre.x) * k,
                    centre.y + (p.y - centre.y) * k,
                );
                let crowded = rest.iter().any(|r| r.dist(q) < 3.0);
                if inside(q) && !crowded {
                    rest.push(q);
                    followers.push(Some(Follower {
                        base: i,
                        follow,
                        head,
                    }));
                }
            }
        }
        // The border: corners and evenly spaced points along each side, fixed.
        let steps = |len: f32| ((len / BORDER_STEP).ceil() as usize).max(1);
        for i in 0..steps(w) {
            let x = w * i as f32 / steps(w) as f32;
            for y in [0.0, h] {
                rest.push(Point::new(x, y));
                followers.push(None);
            }
        }
        for i in 0..=steps(h) {
            let y = h * i as f32 / steps(h) as f32;
            rest.push(Point::new(w, y));
            followers.push(None);
            if i > 0 && i < steps(h) {
                rest.push(Point::new(0.0, y));
                followers.push(None);
            }
        }
        // The triangles are laid out on the face with its mouth half open (the rig's own
        // pose): on a photo with closed lips the inner lip points of both lips lie on one line,
        // and triangles laid out at rest would join the lower lip to the upper one across the
        // lips' line, dragging the upper lip down as the jaw opens. Laid out open, every
        // triangle between the lips has only inner-lip corners: the gap, which the mouth's
        // interior covers.
        let mut layout = rest.clone();
        let open = Rig {
            jaw_open: 0.6,
            lip_open: 1.0,
            ..Rig::default()
        };
        layout[..LANDMARKS].copy_from_slice(&rig::pose_landmarks(landmarks, &open, scale));
        let mut tris = triangulate(&layout);
        // And no triangle crosses a lip's or an eye's outline.
        let outline = |r: std::ops::RangeInclusive<usize>| {
            let v: Vec<u32> = r.map(|i| i as u32).collect();
            (0..v.len()).map(move |k| (v[k], v[(k + 1) % v.len()]))
        };
        let edges: Vec<(u32, u32)> = outline(idx::LIPS_INNER)
            .chain(outline(idx::LIPS_OUTER))
            .chain(outline(idx::EYE_L))
            .chain(outline(idx::EYE_R))
            .collect();
        triangulate::enforce_edges(&layout, &mut tris, &edges);
        Ok(FaceMesh {
            width,
            height,
            rest,
            followers,
            tris,
            scale,
            centre,
        })
    }

    /// Every point at rest: the 68 landmarks first, then rings and border.
    pub fn rest_points(&self) -> &[Point] {
        &self.rest
    }

    /// The triangles (indices into the points).
    pub fn triangles(&self) -> &[Triangle] {
        &self.tris
    }

    /// Width of the photo, px.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height of the photo, px.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Distance between the eye centres, px: the rig's unit.
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// Where every point goes for `rig`.
    pub fn pose(&self, rig: &Rig) -> Vec<Point> {
        let rig = rig.clamped();
        let (w, h) = (self.width as f32, self.height as f32);
        let faces = rig::pose_landmarks(&self.rest[..LANDMARKS], &rig, self.scale);
        let mut out: Vec<Point> = faces
            .iter()
            .map(|&p| rig::head_motion(p, self.centre, &rig, self.scale, 1.0))
            .collect();
        for (k, follower) in self.followers.iter().enumerate() {
            let p = self.rest[LANDMARKS + k];
            out.push(match follower {
                None => p,
                Some(f) => {
                    let d = Point::new(
                        faces[f.base].x - self.rest[f.base].x,
                        faces[f.base].y - self.rest[f.base].y,
                    );
                    // Near the picture's edge (a chin close to the bottom) a ring point moves
                    // at most a third of its way to the fixed border, so what lies between is
                    // never squeezed flat.
                    let room = p.x.min(p.y).min(w - p.x).min(h - p.y).max(0.0) / 3.0;
                    let len = (d.x * d.x + d.y * d.y).sqrt() * f.follow;
                    let k = if len > room { room / len } else { 1.0 };
                    let moved = Point::new(p.x + d.x * f.follow * k, p.y + d.y * f.follow * k);
                    rig::head_motion(moved, self.centre, &rig, self.scale, f.head)
                }
            });
        }
        out
    }

    /// Render `photo` posed by `rig` into `out` (RGBA, the photo's size). Returns the number of
    /// triangles that moved.
    pub fn render(
        &self,
        photo: RgbaRef<'_>,
        rig: &Rig,
        out: &mut [u8],
    ) -> Result<usize, MeshError> {
        let posed = self.pose(rig);
        self.render_posed(photo, &posed, out)
    }

    /// Like [`FaceMesh::render`] for points already posed (from [`FaceMesh::pose`]).
    pub fn render_posed(
        &self,
        photo: RgbaRef<'_>,
        posed: &[Point],
        out: &mut [u8],
    ) -> Result<usize, MeshError> {
        let expected = self.width as usize * self.height as usize * 4;
        if out.len() != expected || photo.data.len() != expected || posed.len() != self.rest.len() {
            return Err(MeshError::BufferSize {
                expected,
                actual: if out.len() != expected {
                    out.len()
                } else {
                    photo.data.len()
                },
            });
        }
        Ok(warp(photo, &self.rest, posed, &self.tris, out))
    }

    /// Flipped triangles and the largest edge stretch of a pose.
    pub fn quality(&self, posed: &[Point]) -> MeshQuality {
        let mut flipped = 0;
        let mut max_stretch: f32 = 1.0;
        for t in &self.tris {
            let [a, b, c] = t.map(|i| i as usize);
            // The lips' gap and the eyes' openings close by design (the lips' gap is closed at
            // rest on a photo with closed lips; the interior is drawn over it when open).
            let gap = [idx::LIPS_INNER, idx::EYE_L, idx::EYE_R]
                .iter()
                .any(|r| [a, b, c].iter().all(|i| r.contains(i)));
            if !gap && signed_area2(posed[a], posed[b], posed[c]) <= 0.0 {
                flipped += 1;
            }
            for (i, j) in [(a, b), (b, c), (c, a)] {
                if closes(i, j) {
                    continue;
                }
                let before = self.rest[i].dist(self.rest[j]).max(1e-3);
                let after = posed[i].dist(posed[j]).max(1e-3);
                max_stretch = max_stretch.max(after / before).max(before / after);
            }
        }
        MeshQuality {
            flipped,
            max_stretch,
        }
    }
}

/// A detector may put an inner mouth corner (60, 64) a hair outside the outer lip outline (on
/// or above the upper lip's line near the corner); the triangle between them is then turned
/// over before anything moves. Such a corner is moved toward the mouth's middle until it lies
/// inside the outline by at least half a pixel (a move of a pixel or two; the photo is not
/// changed, only where the mesh holds it).
fn settle_inner_corners(p: &mut [Point]) {
    let upper: Vec<Point> = (48..=54).map(|i| p[i]).collect();
    let lower: Vec<Point> = [54, 55, 56, 57, 58, 59, 48]
        .iter()
        .rev()
        .map(|&i| p[i])
        .collect();
    let at = |line: &[Point], x: f32| -> Option<f32> {
        line.windows(2).find_map(|w| {
            let (a, b) = (w[0], w[1]);
            let (lo, hi) = (a.x.min(b.x), a.x.max(b.x));
            (lo <= x && x <= hi && hi - lo > 1e-3)
                .then(|| a.y + (b.y - a.y) * (x - a.x) / (b.x - a.x))
        })
    };
    let inside = |q: Point| match (at(&upper, q.x), at(&lower, q.x)) {
        (Some(u), Some(l)) => q.y > u + 0.5 && q.y < l - 0.5,
        _ => false,
    };
    let middle = Point::new((p[51].x + p[57].x) / 2.0, (p[51].y + p[57].y) / 2.0);
    for i in [60, 64] {
        let from = p[i];
        for step in 0..=40 {
            let t = step as f32 / 100.0;
            let q = Point::new(
                from.x + (middle.x - from.x) * t,
                from.y + (middle.y - from.y) * t,
            );
            if inside(q) {
                p[i] = q;
                break;
            }
        }
    }
}

/// Is `i`–`j` an edge that closes by design (across the lips' gap, or an eye's opening)?
fn closes(i: usize, j: usize) -> bool {
    [idx::LIPS_INNER, idx::EYE_L, idx::EYE_R]
        .iter()
        .any(|r| r.contains(&i) && r.contains(&j))
}

/// The landmarks' count, bounds and rough geometry.
fn validate(width: u32, height: u32, p: &[Point]) -> Result<(), MeshError> {
    if p.len() != LANDMARKS {
        return Err(MeshError::Count(p.len()));
    }
    for (index, q) in p.iter().enumerate() {
        let ok = q.x.is_finite()
            && q.y.is_finite()
            && (0.0..=width as f32).contains(&q.x)
            && (0.0..=height as f32).contains(&q.y);
        if !ok {
            return Err(MeshError::OutOfBounds {
                index,
                x: q.x,
                y: q.y,
                width,
                height,
            });
        }
    }
    let mean = |r| mean_of(p, r);
    let (el, er) = (mean(idx::EYE_L), mean(idx::EYE_R));
    let eyes = el.dist(er);
    if eyes < 8.0 {
        return Err(MeshError::TooSmall(eyes));
    }
    if el.x >= er.x {
        return Err(MeshError::Implausible(
            "the left-hand eye is not left of the other",
        ));
    }
    let mouth = mean(idx::LIPS_OUTER);
    let eye_y = (el.y + er.y) / 2.0;
    if !(eye_y < p[30].y && p[30].y < mouth.y && mouth.y < p[idx::CHIN].y) {
        return Err(MeshError::Implausible(
            "eyes, nose tip, mouth and chin are not in that order from the top",
        ));
    }
    let mouth_width = p[48].dist(p[54]);
    if !(0.3 * eyes..=2.5 * eyes).contains(&mouth_width) {
        return Err(MeshError::Implausible(
            "the mouth is far too narrow or too wide for the eyes",
        ));
    }
    for &(upper, lower) in &idx::LIDS {
        if p[upper].y > p[lower].y {
            return Err(MeshError::Implausible(
                "an upper eyelid is below its lower eyelid",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
