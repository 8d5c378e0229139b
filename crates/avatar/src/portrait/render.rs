//! Rendering a [`Portrait`]: the photo scaled once to the output size, then per frame a copy of
//! it with the mouth region warped open and the eyelids drawn during blinks.

use super::photo_mesh::PhotoMesh;
use super::Portrait;
use crate::mesh::Point;
use crate::motion::{smoothstep, IdleMotion};
use crate::{frame_len, AvatarError, BlinkEvent, Motion, MouthPose, MAX_SIDE};

/// Lip separation at full jaw opening, in lip heights (the manifest's mouth box height).
const GAP_PER_OPEN: f32 = 1.15;
/// Share of the lip separation made by lifting the upper lip (the rest is the jaw drop).
const UPPER_SHARE: f32 = 0.22;
/// Lower lip thickness that moves rigidly before the jaw profile takes over, in lip heights.
const LOWER_LIP: f32 = 0.35;
/// Length of the change from lip profile to jaw profile, in lip heights.
const LIP_TO_JAW: f32 = 1.5;
/// Below the mouth centre, the jaw moves fully down to here, in lip heights...
const JAW_FULL: f32 = 1.9;
/// ...and not at all from here on (the chin's lower edge and the neck stay put).
const JAW_END: f32 = 3.9;
/// The jaw moves fully within this many mouth half-widths of the centre...
const JAW_HALF_FULL: f32 = 1.0;
/// ...and not at all from this many on.
const JAW_HALF_END: f32 = 2.2;
/// Above the mouth centre, the upper lip lifts rigidly up to here, in lip heights...
const UPPER_LIP: f32 = 0.45;
/// ...and the lift fades out by here (below the nose).
const UPPER_END: f32 = 1.6;

/// Enlargement of the eye box for the eyelid (to cover lashes and the lid margin).
const LID_GROW_X: f32 = 1.14;
const LID_GROW_Y: f32 = 1.35;
/// Where the lid edge ends up when closed, as a share of the lid ellipse's lower half (a little
/// inside it, below the eye opening, so the lash line is drawn at full strength).
const LID_CLOSED_EDGE: f32 = 0.86;

/// Interior colours: deep in the mouth (under the upper lip) and at the lower lip.
const INSIDE_TOP: [f32; 3] = [38.0, 10.0, 12.0];
const INSIDE_BOTTOM: [f32; 3] = [86.0, 28.0, 32.0];
const TEETH: [f32; 3] = [212.0, 204.0, 194.0];

/// Mouth geometry in output pixels.
#[derive(Clone, Copy, Debug)]
struct MouthGeom {
    cx: f32,
    cy: f32,
    /// Half the lips' width.
    half_w: f32,
    /// The lips' full height.
    lip_h: f32,
    feather: f32,
}

/// One eyelid in output pixels.
#[derive(Clone, Copy, Debug)]
struct Lid {
    cx: f32,
    cy: f32,
    /// Lid ellipse radii.
    ra: f32,
    rb: f32,
    feather: f32,
    /// Skin colour of the lid.
    skin: [f32; 3],
}

/// Pixel rectangle, half-open: x0..x1, y0..y1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rect {
    x0: usize,
    y0: usize,
    x1: usize,
    y1: usize,
}

impl Rect {
    fn tuple(self) -> (u32, u32, u32, u32) {
        (
            self.x0 as u32,
            self.y0 as u32,
            (self.x1 - self.x0) as u32,
            (self.y1 - self.y0) as u32,
        )
    }

    /// The rectangle covering (l, t)..(r, b) in continuous coordinates, clipped to `clip`.
    fn covering(l: f32, t: f32, r: f32, b: f32, clip: Rect) -> Rect {
        let c = |v: f32, lo: usize, hi: usize| -> usize {
            if v.is_nan() {
                lo
            } else {
                (v.max(lo as f32).min(hi as f32)) as usize
            }
        };
        let x0 = c(l.floor(), clip.x0, clip.x1);
        let y0 = c(t.floor(), clip.y0, clip.y1);
        let x1 = c(r.ceil(), x0, clip.x1);
        let y1 = c(b.ceil(), y0, clip.y1);
        Rect { x0, y0, x1, y1 }
    }

    fn union(self, o: Rect) -> Rect {
        if self.x0 == self.x1 || self.y0 == self.y1 {
            return o;
        }
        if o.x0 == o.x1 || o.y0 == o.y1 {
            return self;
        }
        Rect {
            x0: self.x0.min(o.x0),
            y0: self.y0.min(o.y0),
            x1: self.x1.max(o.x1),
            y1: self.y1.max(o.y1),
        }
    }
}

/// A portrait animated at a fixed output size: the same frame API as [`crate::Avatar`].
///
/// The photo is scaled once to fit inside the output (*contain*: the whole image is visible,
/// centred, aspect ratio kept; the bars on the sides or at the top and bottom are filled with the
/// mean colour of the image's border). Per frame the scaled photo is copied and only the mouth
/// and eye regions are modified: a closed mouth (`open == 0`) with open eyes gives exactly the
/// scaled photo. There is no head motion: the portrait only blinks (on the same seeded schedule
/// as the drawn avatar) and speaks.
pub struct PortraitFace {
    width: u32,
    height: u32,
    /// The scaled, letterboxed photo, opaque RGBA8.
    base: Vec<u8>,
    /// Where the photo is in the output.
    image: Rect,
    mouth: MouthGeom,
    lids: [Lid; 2],
    mouth_rect: Rect,
    eyes_rect: Rect,
    idle: IdleMotion,
    /// With landmarks: the mesh that animates the photo instead of the box warp.
    mesh: Option<Box<PhotoMesh>>,
}

impl std::fmt::Debug for PortraitFace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortraitFace")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("image", &self.image)
            .finish_non_exhaustive()
    }
}

impl PortraitFace {
    /// The portrait rendering `width` x `height` frames (both even, 2..=4096, any aspect ratio).
    /// `seed` picks the blink schedule (the same seed blinks like the drawn avatar).
    pub fn new(
        portrait: &Portrait,
        width: u32,
        height: u32,
        seed: u64,
    ) -> Result<Self, AvatarError> {
        let ok = |v: u32| v > 0 && v.is_multiple_of(2) && v <= MAX_SIDE;
        if !ok(width) || !ok(height) {
            return Err(AvatarError::InvalidSize { width, height });
        }
        let (iw, ih) = (portrait.width(), portrait.height());
        let s = (width as f64 / iw as f64).min(height as f64 / ih as f64);
        let dw = ((iw as f64 * s).round() as u32).clamp(1, width);
        let dh = ((ih as f64 * s).round() as u32).clamp(1, height);
        let image = Rect {
            x0: ((width - dw) / 2) as usize,
            y0: ((height - dh) / 2) as usize,
            x1: ((width - dw) / 2 + dw) as usize,
            y1: ((height - dh) / 2 + dh) as usize,
        };
        let scaled = resample(portrait.rgba(), iw, ih, dw, dh);
        let fill = border_mean(portrait.rgba(), iw, ih);
        let w = width as usize;
        let mut base = vec![0u8; frame_len(width, height)];
        for (y, row) in base.chunks_exact_mut(w * 4).enumerate() {
            for (x, px) in row.chunks_exact_mut(4).enumerate() {
                let inside = (image.x0..image.x1).contains(&x) && (image.y0..image.y1).contains(&y);
                if inside {
                    let i = ((y - image.y0) * dw as usize + (x - image.x0)) * 4;
                    px.copy_from_slice(&scaled[i..i + 4]);
                } else {
                    px.copy_from_slice(&[fill[0], fill[1], fill[2], 255]);
                }
            }
        }

        // Image pixels -> output pixels.
        let sx = dw as f32 / iw as f32;
        let sy = dh as f32 / ih as f32;
        let (ox, oy) = (image.x0 as f32, image.y0 as f32);
        let man = portrait.manifest();
        let mb = man.mouth;
        let lip_h = (mb.height * sy).max(1.0);
        let mouth = MouthGeom {
            cx: ox + mb.x * sx,
            cy: oy + mb.y * sy,
            half_w: (mb.width * sx / 2.0).max(1.0),
            lip_h,
            feather: (0.045 * lip_h).max(0.7),
        };
        let mouth_rect = Rect::covering(
            mouth.cx - JAW_HALF_END * mouth.half_w - 1.0,
            mouth.cy - UPPER_END * lip_h - 1.0,
            mouth.cx + JAW_HALF_END * mouth.half_w + 1.0,
            mouth.cy + JAW_END * lip_h + 1.0,
            image,
        );

        let lid = |b: &super::FeatureBox| -> Lid {
            let (cx, cy) = (ox + b.x * sx, oy + b.y * sy);
            let (ew, eh) = ((b.width * sx).max(1.0), (b.height * sy).max(1.0));
            // Skin between the eye and the brow: the brighter half of a patch above the eye box
            // (so lashes, the lid crease and the brow do not darken it).
            let top = cy - eh / 2.0;
            let patch = Rect::covering(
                cx - 0.35 * ew,
                top - 0.9 * eh,
                cx + 0.35 * ew,
                top - 0.15 * eh,
                image,
            );
            let skin = skin_color(&base, w, patch).unwrap_or_else(|| {
                let x = (cx.max(0.0) as usize).clamp(image.x0, image.x1 - 1);
                let y = (top.max(0.0) as usize).clamp(image.y0, image.y1 - 1);
                let i = (y * w + x) * 4;
                [
                    f32::from(base[i]),
                    f32::from(base[i + 1]),
                    f32::from(base[i + 2]),
                ]
            });
            Lid {
                cx,
                cy,
                ra: ew / 2.0 * LID_GROW_X,
                rb: eh / 2.0 * LID_GROW_Y,
                feather: (0.07 * eh).max(0.7),
                skin,
            }
        };
        let lids = [lid(&man.left_eye), lid(&man.right_eye)];
        let lid_rect = |l: &Lid| {
            Rect::covering(
                l.cx - l.ra - l.feather - 1.0,
                l.cy - l.rb - l.feather - 1.0,
                l.cx + l.ra + l.feather + 1.0,
                l.cy + l.rb + l.feather + 1.0,
                image,
            )
        };
        let eyes_rect = lid_rect(&lids[0]).union(lid_rect(&lids[1]));
        // Landmarks (image pixels -> output pixels) make the mesh; a face too small at this
        // output size falls back to the box warp.
        let mesh = portrait.landmarks().and_then(|l| {
            let pts: Vec<Point> = l
                .iter()
                .map(|q| Point::new(ox + q.x * sx, oy + q.y * sy))
                .collect();
            PhotoMesh::new(width, height, &base, &pts).map(Box::new)
        });
        Ok(PortraitFace {
            width,
            height,
            base,
            image,
            mouth,
            lids,
            mouth_rect,
            eyes_rect,
            idle: IdleMotion::new(seed),
            mesh,
        })
    }

    /// Output width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Output height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Bytes of one frame: width * height * 4.
    pub fn frame_len(&self) -> usize {
        frame_len(self.width, self.height)
    }

    /// The scaled, letterboxed photo: what every frame shows with the mouth closed and the eyes
    /// open (RGBA8, alpha 255).
    pub fn base_rgba(&self) -> &[u8] {
        &self.base
    }

    /// Where the photo lies in the output, (x, y, w, h); the rest is letterbox fill.
    pub fn image_rect(&self) -> (u32, u32, u32, u32) {
        self.image.tuple()
    }

    /// The pose at `t_ms`: only `blink` moves (the portrait has no head motion).
    pub fn motion_at(&self, t_ms: u64) -> Motion {
        Motion {
            blink: self.idle.blink_at(t_ms),
            ..Motion::STILL
        }
    }

    /// Blink events (the start of each blink or double blink) that start in `from_ms..to_ms`.
    pub fn blink_events(&self, from_ms: u64, to_ms: u64) -> Vec<BlinkEvent> {
        self.idle.blink_events(from_ms, to_ms).collect()
    }

    /// Pixel rectangle (x, y, w, h) outside which the mouth never changes a pixel (lips, jaw and
    /// chin, whatever the pose); it does not move with time.
    pub fn mouth_region(&self) -> (u32, u32, u32, u32) {
        self.mouth_rect.tuple()
    }

    /// Pixel rectangle (x, y, w, h) outside which blinking never changes a pixel.
    pub fn eyes_region(&self) -> (u32, u32, u32, u32) {
        self.eyes_rect.tuple()
    }

    /// Render the frame at media time `t_ms` (the blink schedule) with the given mouth pose into
    /// `out`: RGBA8, width*height*4 bytes, alpha 255.
    pub fn render_rgba(
        &self,
        t_ms: u64,
        mouth: MouthPose,
        out: &mut [u8],
    ) -> Result<(), AvatarError> {
        self.render_rgba_with_motion(&self.motion_at(t_ms), mouth, out)
    }

    /// Like [`PortraitFace::render_rgba`] with an explicit pose; only `motion.blink` is used.
    pub fn render_rgba_with_motion(
        &self,
        motion: &Motion,
        mouth: MouthPose,
        out: &mut [u8],
    ) -> Result<(), AvatarError> {
        let expected = self.frame_len();
        if out.len() != expected {
            return Err(AvatarError::BufferSize {
                expected,
                actual: out.len(),
            });
        }
        let pose = mouth.clamped();
        if let Some(m) = &self.mesh {
            m.render(&self.base, motion, pose, out);
            return Ok(());
        }
        out.copy_from_slice(&self.base);
        if pose.open > 0.0 {
            self.draw_mouth(out, pose);
        }
        let blink = if motion.blink.is_finite() {
            motion.blink.clamp(0.0, 1.0)
        } else {
            0.0
        };
        if blink > 0.0 {
            for lid in &self.lids {
                self.draw_lid(out, lid, blink);
            }
        }
        Ok(())
    }

    /// Warps the mouth region of `out` (which holds the base frame) open and paints the inside.
    fn draw_mouth(&self, out: &mut [u8], p: MouthPose) {
        let m = &self.mouth;
        let r = self.mouth_rect;
        if r.x0 >= r.x1 || r.y0 >= r.y1 {
            return;
        }
        let w = self.width as usize;
        let lh = m.lip_h;
        let gap = p.open * GAP_PER_OPEN * lh;
        let g_up = UPPER_SHARE * gap;
        let g_down = gap - g_up;
        // Spread and rounding act on the lip corners once the lips are apart.
        let engage = (p.open * 4.0).min(1.0);
        let kx = (0.12 * p.wide - 0.14 * p.round) * engage;
        let half_in = (m.half_w * 0.8 * (1.0 + kx) * (1.0 - 0.22 * p.round)).max(1.0);
        // Opening profile across the mouth: rounder for "oo".
        let power = 0.62 - 0.12 * p.round;

        // Per column: offset from the centre, lip profile, jaw profile, horizontal warp weight.
        let cols: Vec<[f32; 4]> = (r.x0..r.x1)
            .map(|x| {
                let dx = x as f32 + 0.5 - m.cx;
                let u = dx / half_in;
                let e = if u.abs() < 1.0 {
                    (1.0 - u * u).powf(power)
                } else {
                    0.0
                };
                let ax = dx.abs() / m.half_w;
                let jaw = 1.0 - smoothstep((ax - JAW_HALF_FULL) / (JAW_HALF_END - JAW_HALF_FULL));
                let hx = 1.0 - smoothstep((ax - 1.0) / 0.9);
                [dx, e, jaw, hx]
            })
            .collect();
        let f = m.feather;
        let teeth_h = (0.24 * gap).min(0.22 * lh);
        let teeth_fade = (gap / (0.3 * lh)).min(1.0);
        let src = &self.base;
        for y in r.y0..r.y1 {
            let dy = y as f32 + 0.5 - m.cy;
            let t = dy.abs() / lh;
            let vy = 1.0 - smoothstep((t - 0.5) / 1.0);
            // Vertical displacement factors for this row.
            let (lip_w, jaw_w, up_w) = if dy >= 0.0 {
                let s = smoothstep((t - LOWER_LIP) / LIP_TO_JAW);
                let fall = 1.0 - smoothstep((t - JAW_FULL) / (JAW_END - JAW_FULL));
                ((1.0 - s) * fall, s * fall, 0.0)
            } else {
                let up = 1.0 - smoothstep((t - UPPER_LIP) / (UPPER_END - UPPER_LIP));
                (0.0, 0.0, up)
            };
            let row = &mut out[(y * w + r.x0) * 4..(y * w + r.x1) * 4];
            for (px, &[dx, e, jaw, hx]) in row.chunks_exact_mut(4).zip(&cols) {
                let wx = hx * vy;
                let sx = dx / (1.0 + kx * wx);
                let sy = if dy >= 0.0 {
                    dy - g_down * (e * lip_w + jaw * jaw_w)
                } else {
                    dy + g_up * e * up_w
                };
                if sx == dx && sy == dy {
                    continue;
                }
                let mut c = self.sample(src, m.cx + sx - 0.5, m.cy + sy - 0.5);
                // The inside of the mouth between the parted lips.
                if e > 0.0 {
                    let top = -g_up * e;
                    let bottom = g_down * e;
                    let a = ((dy - top).min(bottom - dy) / f + 0.5).clamp(0.0, 1.0);
                    if a > 0.0 {
                        let depth = ((dy - top) / (bottom - top).max(1e-3)).clamp(0.0, 1.0);
                        let q = depth * depth;
                        let shade = 0.7 + 0.3 * e;
                        let mut inside = [0.0f32; 3];
                        for (k, v) in inside.iter_mut().enumerate() {
                            *v = (INSIDE_TOP[k] + (INSIDE_BOTTOM[k] - INSIDE_TOP[k]) * q) * shade;
                        }
                        // A hint of the upper teeth just under the upper lip.
                        let u = dx / half_in;
                        let across = (1.0 - (u / 0.62) * (u / 0.62)).max(0.0);
                        let ta = ((top + teeth_h * e.sqrt() - dy) / f + 0.5).clamp(0.0, 1.0)
                            * (across * 3.0).min(1.0)
                            * teeth_fade
                            * 0.9;
                        for (k, v) in inside.iter_mut().enumerate() {
                            *v += (TEETH[k] * (0.7 + 0.3 * across) - *v) * ta;
                        }
                        for (k, v) in c.iter_mut().enumerate() {
                            *v += (inside[k] - *v) * a;
                        }
                    }
                }
                px[0] = to_u8(c[0]);
                px[1] = to_u8(c[1]);
                px[2] = to_u8(c[2]);
            }
        }
    }

    /// Draws one eyelid closed by `blink` (0..=1] into `out`.
    fn draw_lid(&self, out: &mut [u8], lid: &Lid, blink: f32) {
        let w = self.width as usize;
        let f = lid.feather;
        let r = Rect::covering(
            lid.cx - lid.ra - f - 1.0,
            lid.cy - lid.rb - f - 1.0,
            lid.cx + lid.ra + f + 1.0,
            lid.cy + lid.rb + f + 1.0,
            self.image,
        );
        let rmin = lid.ra.min(lid.rb);
        let lash = [lid.skin[0] * 0.4, lid.skin[1] * 0.35, lid.skin[2] * 0.35];
        for y in r.y0..r.y1 {
            let dy = y as f32 + 0.5 - lid.cy;
            let v = dy / lid.rb;
            let row = &mut out[(y * w + r.x0) * 4..(y * w + r.x1) * 4];
            for (i, px) in row.chunks_exact_mut(4).enumerate() {
                let dx = (r.x0 + i) as f32 + 0.5 - lid.cx;
                let u = dx / lid.ra;
                let rr = (u * u + v * v).sqrt();
                let a_ellipse = ((1.0 - rr) * rmin / f + 0.5).clamp(0.0, 1.0);
                if a_ellipse <= 0.0 {
                    continue;
                }
                // The lid edge: the lower arc of the ellipse raised by (1 - blink) diameters.
                let hh = lid.rb * (1.0 - (u * u).min(1.0)).sqrt();
                let edge = LID_CLOSED_EDGE * hh - (1.0 - blink) * 2.0 * lid.rb;
                let a_lid = ((edge - dy) / f + 0.5).clamp(0.0, 1.0);
                let a = a_ellipse * a_lid;
                if a <= 0.0 {
                    continue;
                }
                // Lashes darken the lid edge.
                let l = (1.0 - ((edge - dy) / (1.3 * f)).abs()).clamp(0.0, 1.0) * 0.8 * blink;
                for k in 0..3 {
                    let col = lid.skin[k] + (lash[k] - lid.skin[k]) * l;
                    let c = f32::from(px[k]);
                    px[k] = to_u8(c + (col - c) * a);
                }
            }
        }
    }

    /// Bilinear sample of the base frame at continuous pixel coordinates (pixel centres at
    /// integers), clamped to the photo.
    fn sample(&self, src: &[u8], x: f32, y: f32) -> [f32; 3] {
        let im = self.image;
        let w = self.width as usize;
        let xmax = (im.x1 - 1) as f32;
        let ymax = (im.y1 - 1) as f32;
        let x = x.clamp(im.x0 as f32, xmax);
        let y = y.clamp(im.y0 as f32, ymax);
        let (x0, y0) = (x.floor(), y.floor());
        let (fx, fy) = (x - x0, y - y0);
        let (x0, y0) = (x0 as usize, y0 as usize);
        let x1 = (x0 + 1).min(im.x1 - 1);
        let y1 = (y0 + 1).min(im.y1 - 1);
        let at = |xx: usize, yy: usize, k: usize| f32::from(src[(yy * w + xx) * 4 + k]);
        let mut c = [0.0f32; 3];
        for (k, v) in c.iter_mut().enumerate() {
            let top = at(x0, y0, k) + (at(x1, y0, k) - at(x0, y0, k)) * fx;
            let bot = at(x0, y1, k) + (at(x1, y1, k) - at(x0, y1, k)) * fx;
            *v = top + (bot - top) * fy;
        }
        c
    }
}

fn to_u8(v: f32) -> u8 {
    (v + 0.5).clamp(0.0, 255.0) as u8
}

/// Skin colour of the pixels of `r` in an RGBA frame `w` pixels wide: the mean of those between
/// the 45th and the 90th luma percentile. None if `r` is empty.
fn skin_color(rgba: &[u8], w: usize, r: Rect) -> Option<[f32; 3]> {
    if r.x0 >= r.x1 || r.y0 >= r.y1 {
        return None;
    }
    let mut px: Vec<(u32, [u8; 3])> = Vec::with_capacity((r.x1 - r.x0) * (r.y1 - r.y0));
    for y in r.y0..r.y1 {
        for p in rgba[(y * w + r.x0) * 4..(y * w + r.x1) * 4].chunks_exact(4) {
            let luma = 299 * u32::from(p[0]) + 587 * u32::from(p[1]) + 114 * u32::from(p[2]);
            px.push((luma, [p[0], p[1], p[2]]));
        }
    }
    px.sort_unstable_by_key(|&(l, _)| l);
    let n = px.len();
    let (lo, hi) = (n * 45 / 100, (n * 90 / 100).max(n * 45 / 100 + 1).min(n));
    let sel = &px[lo.min(n - 1)..hi.max(lo.min(n - 1) + 1)];
    let mut sum = [0.0f64; 3];
    for (_, c) in sel {
        for k in 0..3 {
            sum[k] += f64::from(c[k]);
        }
    }
    Some(sum.map(|s| (s / sel.len() as f64) as f32))
}

/// Mean colour of the outermost pixels of an image (the letterbox fill).
fn border_mean(rgba: &[u8], w: u32, h: u32) -> [u8; 3] {
    let (w, h) = (w as usize, h as usize);
    let mut sum = [0u64; 3];
    let mut n = 0u64;
    for y in 0..h {
        for x in 0..w {
            if y == 0 || y + 1 == h || x == 0 || x + 1 == w {
                let i = (y * w + x) * 4;
                for k in 0..3 {
                    sum[k] += u64::from(rgba[i + k]);
                }
                n += 1;
            }
        }
    }
    sum.map(|s| (s / n.max(1)) as u8)
}

/// Filter taps of a 1-D resampling from `src` to `dst` samples: for each output sample, the
/// first source index and the normalised weights. A tent filter as wide as one output pixel
/// (area-like averaging when shrinking, linear interpolation when enlarging); the same size
/// gives the identity exactly.
fn taps(src: usize, dst: usize) -> Vec<(usize, Vec<f32>)> {
    let scale = src as f64 / dst as f64;
    let radius = scale.max(1.0);
    (0..dst)
        .map(|j| {
            let c = (j as f64 + 0.5) * scale - 0.5;
            // Taps strictly inside the filter (the weight at the edge is 0).
            let lo = ((c - radius).floor() + 1.0).max(0.0) as usize;
            let hi = ((((c + radius).ceil() - 1.0).max(0.0)) as usize).min(src - 1);
            let mut ws: Vec<f32> = (lo..=hi.max(lo))
                .map(|i| (1.0 - (i as f64 - c).abs() / radius).max(0.0) as f32)
                .collect();
            let sum: f32 = ws.iter().sum();
            if sum > 0.0 {
                ws.iter_mut().for_each(|v| *v /= sum);
            } else {
                // Cannot happen for src >= 1, but keep a valid tap.
                ws = vec![1.0];
            }
            (lo.min(src - 1), ws)
        })
        .collect()
}

/// Resizes opaque RGBA8 `sw` x `sh` to `dw` x `dh` (separable tent filter).
pub(crate) fn resample(src: &[u8], sw: u32, sh: u32, dw: u32, dh: u32) -> Vec<u8> {
    let (sw, sh, dw, dh) = (sw as usize, sh as usize, dw as usize, dh as usize);
    if (sw, sh) == (dw, dh) {
        return src.to_vec();
    }
    let hx = taps(sw, dw);
    let vy = taps(sh, dh);
    // Horizontal pass: sh rows of dw RGB floats.
    let mut tmp = vec![0.0f32; sh * dw * 3];
    for y in 0..sh {
        let srow = &src[y * sw * 4..(y + 1) * sw * 4];
        let trow = &mut tmp[y * dw * 3..(y + 1) * dw * 3];
        for (x, (start, ws)) in hx.iter().enumerate() {
            let mut acc = [0.0f32; 3];
            for (k, &wt) in ws.iter().enumerate() {
                let i = (start + k).min(sw - 1) * 4;
                acc[0] += f32::from(srow[i]) * wt;
                acc[1] += f32::from(srow[i + 1]) * wt;
                acc[2] += f32::from(srow[i + 2]) * wt;
            }
            trow[x * 3..x * 3 + 3].copy_from_slice(&acc);
        }
    }
    let mut out = vec![255u8; dw * dh * 4];
    for (y, (start, ws)) in vy.iter().enumerate() {
        let orow = &mut out[y * dw * 4..(y + 1) * dw * 4];
        for x in 0..dw {
            let mut acc = [0.0f32; 3];
            for (k, &wt) in ws.iter().enumerate() {
                let i = ((start + k).min(sh - 1) * dw + x) * 3;
                acc[0] += tmp[i] * wt;
                acc[1] += tmp[i + 1] * wt;
                acc[2] += tmp[i + 2] * wt;
            }
            orow[x * 4] = to_u8(acc[0]);
            orow[x * 4 + 1] = to_u8(acc[1]);
            orow[x * 4 + 2] = to_u8(acc[2]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taps_identity_and_normalised() {
        for (j, (start, ws)) in taps(7, 7).iter().enumerate() {
            assert_eq!(*start, j);
            assert_eq!(ws, &[1.0]);
        }
        for (s, d) in [(100, 7), (7, 100), (3, 1), (1, 5)] {
            for (start, ws) in taps(s, d) {
                assert!(start < s);
                assert!((ws.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn resample_keeps_flat_colour() {
        let src: Vec<u8> = [10u8, 200, 90, 255].repeat(13 * 9);
        for (dw, dh) in [(4, 3), (40, 30), (13, 9)] {
            let out = resample(&src, 13, 9, dw, dh);
            assert_eq!(out.len(), (dw * dh * 4) as usize);
            assert!(out.chunks_exact(4).all(|p| p == [10, 200, 90, 255]));
        }
    }
}
