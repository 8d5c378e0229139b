//! The face model and its drawing: every shape of the avatar (background, hair, body, face,
//! eyes, brows, nose, mouth) as vector paths in design units on a 512 x 512 canvas, painted with
//! tiny-skia. The layout maps design units onto any output size.

use tiny_skia::{
    Color, FillRule, GradientStop, LineCap, LineJoin, LinearGradient, Mask, Paint, Path,
    PathBuilder, PixmapMut, Point, RadialGradient, Rect, Shader, SpreadMode, Stroke, Transform,
};

use crate::motion::Motion;
use crate::mouth::MouthPose;

mod body;
mod eyes;
mod mouth;

pub(crate) use body::draw_body;
use body::{draw_back_hair, draw_cheeks_and_nose, face_outline, face_path, skin_paint};
use eyes::{draw_brow, draw_front_hair, Eye, Side};
use mouth::MouthGeom;

/// Side of the square design canvas, in design units.
pub(crate) const DESIGN: f32 = 512.0;
/// Centre of the face, x.
const CX: f32 = 256.0;
/// The head rotates around this point (top of the neck).
const PIVOT: (f32, f32) = (256.0, 335.0);
/// Centre of the mouth (seam of the closed lips).
const MOUTH: (f32, f32) = (256.0, 304.0);
/// Centres of the two eyes: (x of the left one on screen, x of the right one, y).
const EYE_L: f32 = 211.0;
const EYE_R: f32 = 301.0;
const EYE_Y: f32 = 228.0;
/// How far the shoulders rise on a full breath, in design units.
pub(crate) const BREATH_RISE: f32 = 1.6;
/// Highest point of the body (top of the neck), in design units.
pub(crate) const BODY_TOP: f32 = 280.0;
/// The chin patch redrawn per frame (to drop the jaw) starts at this height.
const CHIN_CUT: f32 = 290.0;

/// Maps design units to output pixels: the design square is fitted into the smaller output
/// dimension and centred.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    pub(crate) width: u32,
    pub(crate) height: u32,
    /// Output pixels per design unit.
    pub(crate) scale: f32,
    base: Transform,
}

impl Layout {
    pub(crate) fn new(width: u32, height: u32) -> Self {
        let side = width.min(height) as f32;
        let scale = side / DESIGN;
        let ox = (width as f32 - side) / 2.0;
        let oy = (height as f32 - side) / 2.0;
        Layout {
            width,
            height,
            scale,
            base: Transform::from_row(scale, 0.0, 0.0, scale, ox, oy),
        }
    }

    /// Design → pixels for everything that moves with the head. `m` is in output pixels.
    pub(crate) fn head(&self, m: &Motion) -> Transform {
        let s = self.scale.max(f32::MIN_POSITIVE);
        self.base
            .pre_translate(m.head_dx / s, m.head_dy / s)
            .pre_concat(Transform::from_rotate_at(
                m.tilt_rad.to_degrees(),
                PIVOT.0,
                PIVOT.1,
            ))
    }

    /// Design → pixels at rest (no motion).
    pub(crate) fn rest(&self) -> Transform {
        self.base
    }

    /// Pixel rectangle that contains the design-space rectangle `r` under `ts`, plus `pad`
    /// pixels, clipped to the output.
    pub(crate) fn pixel_rect(&self, ts: Transform, r: Rect, pad: f32) -> (u32, u32, u32, u32) {
        let mut pts = [
            Point::from_xy(r.left(), r.top()),
            Point::from_xy(r.right(), r.top()),
            Point::from_xy(r.left(), r.bottom()),
            Point::from_xy(r.right(), r.bottom()),
        ];
        ts.map_points(&mut pts);
        let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
        for p in pts {
            x0 = x0.min(p.x);
            y0 = y0.min(p.y);
            x1 = x1.max(p.x);
            y1 = y1.max(p.y);
        }
        let clampx = |v: f32| v.clamp(0.0, self.width as f32);
        let clampy = |v: f32| v.clamp(0.0, self.height as f32);
        let x0 = clampx((x0 - pad).floor()) as u32;
        let y0 = clampy((y0 - pad).floor()) as u32;
        let x1 = clampx((x1 + pad).ceil()) as u32;
        let y1 = clampy((y1 + pad).ceil()) as u32;
        (x0, y0, x1.saturating_sub(x0), y1.saturating_sub(y0))
    }
}

/// Design-space rectangle that holds the mouth (lips, opening, teeth) for any pose.
pub(crate) fn mouth_bounds() -> Option<Rect> {
    let g = MouthGeom::new(MouthPose::new(0.0, 1.0, 0.0));
    let half = g.half_width + 8.0;
    Rect::from_ltrb(
        MOUTH.0 - half,
        MOUTH.1 - 24.0,
        MOUTH.0 + half,
        MOUTH.1 + 66.0,
    )
}

/// Design-space rectangle that holds both eye openings and lids (not the brows).
pub(crate) fn eyes_bounds() -> Option<Rect> {
    Rect::from_ltrb(EYE_L - 31.0, EYE_Y - 24.0, EYE_R + 31.0, EYE_Y + 14.0)
}

fn rgb(r: u8, g: u8, b: u8) -> Color {
    Color::from_rgba8(r, g, b, 255)
}

fn rgba(r: u8, g: u8, b: u8, a: f32) -> Color {
    Color::from_rgba8(r, g, b, (a.clamp(0.0, 1.0) * 255.0).round() as u8)
}

fn solid(color: Color) -> Paint<'static> {
    let mut p = Paint::default();
    p.set_color(color);
    p
}

fn shaded(shader: Shader<'static>) -> Paint<'static> {
    Paint {
        shader,
        ..Paint::default()
    }
}

fn stops(list: &[(f32, Color)]) -> Vec<GradientStop> {
    list.iter().map(|&(p, c)| GradientStop::new(p, c)).collect()
}

fn linear(x0: f32, y0: f32, x1: f32, y1: f32, list: &[(f32, Color)]) -> Paint<'static> {
    let fallback = list.first().map_or(Color::BLACK, |s| s.1);
    match LinearGradient::new(
        Point::from_xy(x0, y0),
        Point::from_xy(x1, y1),
        stops(list),
        SpreadMode::Pad,
        Transform::identity(),
    ) {
        Some(s) => shaded(s),
        None => solid(fallback),
    }
}

fn radial(cx: f32, cy: f32, r: f32, list: &[(f32, Color)]) -> Paint<'static> {
    radial_xf(cx, cy, r, list, Transform::identity())
}

fn radial_xf(cx: f32, cy: f32, r: f32, list: &[(f32, Color)], ts: Transform) -> Paint<'static> {
    let fallback = list.first().map_or(Color::BLACK, |s| s.1);
    match RadialGradient::new(
        Point::from_xy(cx, cy),
        0.0,
        Point::from_xy(cx, cy),
        r,
        stops(list),
        SpreadMode::Pad,
        ts,
    ) {
        Some(s) => shaded(s),
        None => solid(fallback),
    }
}

fn round_stroke(width: f32) -> Stroke {
    Stroke {
        width,
        line_cap: LineCap::Round,
        line_join: LineJoin::Round,
        ..Stroke::default()
    }
}

fn fill(
    pm: &mut PixmapMut<'_>,
    path: &Path,
    paint: &Paint<'_>,
    ts: Transform,
    mask: Option<&Mask>,
) {
    pm.fill_path(path, paint, FillRule::Winding, ts, mask);
}

fn stroke(pm: &mut PixmapMut<'_>, path: &Path, paint: &Paint<'_>, width: f32, ts: Transform) {
    pm.stroke_path(path, paint, &round_stroke(width), ts, None);
}

fn ellipse(cx: f32, cy: f32, rx: f32, ry: f32) -> Option<Path> {
    let mut pb = PathBuilder::new();
    pb.push_oval(Rect::from_ltrb(cx - rx, cy - ry, cx + rx, cy + ry)?);
    pb.finish()
}

/// Paints the static background (gradient plus a soft glow behind the head) into `pm`.
pub(crate) fn draw_background(pm: &mut PixmapMut<'_>, layout: &Layout) {
    let w = layout.width as f32;
    let h = layout.height as f32;
    let Some(all) = Rect::from_ltrb(0.0, 0.0, w, h) else {
        return;
    };
    let base = linear(
        0.0,
        0.0,
        0.0,
        h,
        &[(0.0, rgb(226, 236, 248)), (1.0, rgb(186, 206, 234))],
    );
    pm.fill_rect(all, &base, Transform::identity(), None);
    // A soft light disc behind the head, in design units.
    let glow = radial(
        CX,
        215.0,
        300.0,
        &[
            (0.0, rgba(255, 255, 255, 0.75)),
            (0.55, rgba(250, 252, 255, 0.35)),
            (1.0, rgba(255, 255, 255, 0.0)),
        ],
    );
    let inv = layout.rest().invert().unwrap_or_default();
    let mut pts = [Point::from_xy(0.0, 0.0), Point::from_xy(w, h)];
    inv.map_points(&mut pts);
    if let Some(r) = Rect::from_ltrb(pts[0].x, pts[0].y, pts[1].x, pts[1].y) {
        pm.fill_rect(r, &glow, layout.rest(), None);
    }
}

/// Per-frame drawing state that is reused between frames.
pub(crate) struct Painter {
    /// Clip mask for the eye openings and the mouth opening.
    mask: Mask,
}

impl Painter {
    pub(crate) fn new(layout: &Layout) -> Option<Self> {
        Some(Painter {
            mask: Mask::new(layout.width, layout.height)?,
        })
    }

    /// Draws the moving features (jaw, eyes, brows, mouth) over the composited static layers
    /// already in `pm`. `m` is in output pixels.
    pub(crate) fn draw(
        &mut self,
        pm: &mut PixmapMut<'_>,
        layout: &Layout,
        m: &Motion,
        mouth: MouthPose,
    ) {
        let head = layout.head(m);
        let mouth = mouth.clamped();
        let geom = MouthGeom::new(mouth);

        if geom.jaw > 0.05 {
            draw_chin(pm, head, geom.jaw);
        }
        self.mask.clear();
        let blink = m.blink.clamp(0.0, 1.0);
        let lift = 2.5 * mouth.open + 1.0 * mouth.round;
        for side in [Side::Left, Side::Right] {
            let eye = Eye::new(side, blink, m.gaze_x, m.gaze_y);
            eye.draw(pm, &mut self.mask, head);
            draw_brow(pm, side, head, lift);
        }
        geom.draw(pm, &mut self.mask, head);
    }
}

/// Design-space bounds of everything [`draw_head_static`] paints.
pub(crate) fn head_bounds() -> Option<Rect> {
    Rect::from_ltrb(110.0, 42.0, 402.0, 362.0)
}

/// The parts of the head that never change shape: hair, face, cheeks and nose.
pub(crate) fn draw_head_static(pm: &mut PixmapMut<'_>, ts: Transform) {
    draw_back_hair(pm, ts);
    if let Some(p) = face_path(0.0) {
        fill(pm, &p, &skin_paint(), ts, None);
    }
    draw_cheeks_and_nose(pm, ts);
    draw_front_hair(pm, ts);
}

/// Redraws the lower face (below [`CHIN_CUT`]) with the chin dropped by `jaw` design units.
/// The outline above the cut is the same as at rest, and the skin uses the same gradient, so the
/// patch joins the cached face seamlessly.
fn draw_chin(pm: &mut PixmapMut<'_>, ts: Transform, jaw: f32) {
    let o = face_outline(jaw);
    let mut pb = PathBuilder::new();
    pb.move_to(o[6].0, o[6].1);
    for c in o[7..19].chunks_exact(3) {
        pb.cubic_to(c[0].0, c[0].1, c[1].0, c[1].1, c[2].0, c[2].1);
    }
    pb.close();
    if let Some(p) = pb.finish() {
        fill(pm, &p, &skin_paint(), ts, None);
    }
}
