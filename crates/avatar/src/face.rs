//! The face model and its drawing: every shape of the avatar (background, hair, body, face,
//! eyes, brows, nose, mouth) as vector paths in design units on a 512 x 512 canvas, painted with
//! tiny-skia. The layout maps design units onto any output size.

use tiny_skia::{
    Color, FillRule, GradientStop, LineCap, LineJoin, LinearGradient, Mask, Paint, Path,
    PathBuilder, PixmapMut, Point, RadialGradient, Rect, Shader, SpreadMode, Stroke, Transform,
};

use crate::motion::{smoothstep, Motion};
use crate::mouth::MouthPose;

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

type Pt = (f32, f32);

/// Parameter where a cubic whose y grows monotonically reaches `y` (bisection).
fn cubic_t_at_y(c: [Pt; 4], y: f32) -> f32 {
    let (mut lo, mut hi) = (0.0f32, 1.0f32);
    for _ in 0..24 {
        let mid = 0.5 * (lo + hi);
        if cubic_at(c, mid).1 < y {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

fn cubic_at(c: [Pt; 4], t: f32) -> Pt {
    let u = 1.0 - t;
    let (a, b, d, e) = (u * u * u, 3.0 * u * u * t, 3.0 * u * t * t, t * t * t);
    (
        a * c[0].0 + b * c[1].0 + d * c[2].0 + e * c[3].0,
        a * c[0].1 + b * c[1].1 + d * c[2].1 + e * c[3].1,
    )
}

/// De Casteljau split of a cubic at `t`.
fn split_cubic(c: [Pt; 4], t: f32) -> ([Pt; 4], [Pt; 4]) {
    let l = |a: Pt, b: Pt| (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t);
    let ab = l(c[0], c[1]);
    let bc = l(c[1], c[2]);
    let cd = l(c[2], c[3]);
    let abc = l(ab, bc);
    let bcd = l(bc, cd);
    let m = l(abc, bcd);
    ([c[0], ab, abc, m], [m, bcd, cd, c[3]])
}

fn draw_back_hair(pm: &mut PixmapMut<'_>, ts: Transform) {
    let mut pb = PathBuilder::new();
    pb.move_to(256.0, 50.0);
    pb.cubic_to(340.0, 48.0, 394.0, 104.0, 395.0, 188.0);
    pb.cubic_to(396.0, 250.0, 401.0, 298.0, 399.0, 322.0);
    pb.cubic_to(397.0, 342.0, 376.0, 349.0, 354.0, 344.0);
    pb.cubic_to(320.0, 336.0, 290.0, 330.0, 256.0, 330.0);
    pb.cubic_to(222.0, 330.0, 192.0, 336.0, 158.0, 344.0);
    pb.cubic_to(136.0, 349.0, 115.0, 342.0, 113.0, 322.0);
    pb.cubic_to(111.0, 298.0, 116.0, 250.0, 117.0, 188.0);
    pb.cubic_to(118.0, 104.0, 172.0, 48.0, 256.0, 50.0);
    pb.close();
    if let Some(p) = pb.finish() {
        let paint = linear(
            0.0,
            60.0,
            0.0,
            340.0,
            &[(0.0, rgb(84, 56, 42)), (1.0, rgb(56, 36, 28))],
        );
        fill(pm, &p, &paint, ts, None);
    }
}

/// Neck and shoulders.
pub(crate) fn draw_body(pm: &mut PixmapMut<'_>, ts: Transform) {
    // Neck, with the shadow of the jaw at its top.
    let mut pb = PathBuilder::new();
    pb.move_to(227.0, 280.0);
    pb.line_to(285.0, 280.0);
    pb.cubic_to(285.0, 330.0, 288.0, 358.0, 300.0, 386.0);
    pb.line_to(300.0, 404.0);
    pb.line_to(212.0, 404.0);
    pb.line_to(212.0, 386.0);
    pb.cubic_to(224.0, 358.0, 227.0, 330.0, 227.0, 280.0);
    pb.close();
    if let Some(p) = pb.finish() {
        let paint = linear(
            0.0,
            334.0,
            0.0,
            372.0,
            &[(0.0, rgb(205, 145, 112)), (1.0, rgb(236, 186, 150))],
        );
        fill(pm, &p, &paint, ts, None);
    }

    // Sweater with a crew neck; it runs far down so tall outputs stay covered.
    let mut pb = PathBuilder::new();
    pb.move_to(54.0, 2400.0);
    pb.line_to(56.0, 478.0);
    pb.cubic_to(58.0, 432.0, 92.0, 404.0, 152.0, 392.0);
    pb.cubic_to(182.0, 386.0, 203.0, 379.0, 214.0, 372.0);
    pb.cubic_to(228.0, 397.0, 284.0, 397.0, 298.0, 372.0);
    pb.cubic_to(309.0, 379.0, 330.0, 386.0, 360.0, 392.0);
    pb.cubic_to(420.0, 404.0, 454.0, 432.0, 456.0, 478.0);
    pb.line_to(458.0, 2400.0);
    pb.close();
    if let Some(p) = pb.finish() {
        let paint = linear(
            0.0,
            375.0,
            0.0,
            512.0,
            &[(0.0, rgb(98, 136, 196)), (1.0, rgb(70, 104, 160))],
        );
        fill(pm, &p, &paint, ts, None);
        // Soft shading toward the arms.
        let side = linear(
            56.0,
            0.0,
            456.0,
            0.0,
            &[
                (0.0, rgba(30, 50, 90, 0.28)),
                (0.22, rgba(30, 50, 90, 0.0)),
                (0.78, rgba(30, 50, 90, 0.0)),
                (1.0, rgba(30, 50, 90, 0.28)),
            ],
        );
        fill(pm, &p, &side, ts, None);
    }
    // Collar rib.
    let mut pb = PathBuilder::new();
    pb.move_to(214.0, 372.0);
    pb.cubic_to(228.0, 397.0, 284.0, 397.0, 298.0, 372.0);
    pb.line_to(306.0, 375.5);
    pb.cubic_to(288.0, 409.0, 224.0, 409.0, 206.0, 375.5);
    pb.close();
    if let Some(p) = pb.finish() {
        fill(pm, &p, &solid(rgb(76, 110, 168)), ts, None);
    }
    let mut pb = PathBuilder::new();
    pb.move_to(208.0, 378.0);
    pb.cubic_to(226.0, 408.0, 286.0, 408.0, 304.0, 378.0);
    if let Some(p) = pb.finish() {
        stroke(pm, &p, &solid(rgba(150, 182, 228, 0.45)), 1.4, ts);
    }
}

/// The face outline, clockwise from the top of the head: a start point and eight cubics. The
/// jaw segments are split at [`CHIN_CUT`]; `jaw` moves only the part below the cut down (design
/// units), so the outline above the cut never changes and the lower part can be redrawn alone.
fn face_outline(jaw: f32) -> [Pt; 25] {
    let right_jaw = [
        (361.0, 196.0),
        (362.0, 254.0),
        (347.0, 300.0),
        (315.0, 328.0),
    ];
    let (upper, lower) = split_cubic(right_jaw, cubic_t_at_y(right_jaw, CHIN_CUT));
    let j = |p: Pt| {
        (
            p.0,
            p.1 + jaw * smoothstep((p.1 - CHIN_CUT) / (353.0 - CHIN_CUT)),
        )
    };
    let m = |p: Pt| (2.0 * CX - p.0, p.1);
    let (cut, q1, q2, q3) = (lower[0], lower[1], j(lower[2]), j(lower[3]));
    [
        (CX, 88.0),
        (322.0, 88.0),
        (360.0, 130.0),
        (361.0, 196.0),
        upper[1],
        upper[2],
        cut,
        // Below the cut: 4 cubics, indices 7..=18.
        q1,
        q2,
        q3,
        j((295.0, 346.0)),
        j((276.0, 353.0)),
        j((CX, 353.0)),
        j((236.0, 353.0)),
        j((217.0, 346.0)),
        m(q3),
        m(q2),
        m(q1),
        m(cut),
        // Back up to the top.
        m(upper[2]),
        m(upper[1]),
        (151.0, 196.0),
        (152.0, 130.0),
        (190.0, 88.0),
        (CX, 88.0),
    ]
}

fn face_path(jaw: f32) -> Option<Path> {
    let o = face_outline(jaw);
    let mut pb = PathBuilder::new();
    pb.move_to(o[0].0, o[0].1);
    for c in o[1..].chunks_exact(3) {
        pb.cubic_to(c[0].0, c[0].1, c[1].0, c[1].1, c[2].0, c[2].1);
    }
    pb.close();
    pb.finish()
}

fn skin_paint() -> Paint<'static> {
    radial(
        246.0,
        205.0,
        175.0,
        &[
            (0.0, rgb(252, 218, 190)),
            (0.55, rgb(247, 204, 170)),
            (0.82, rgb(236, 184, 148)),
            (1.0, rgb(222, 164, 128)),
        ],
    )
}

fn draw_cheeks_and_nose(pm: &mut PixmapMut<'_>, ts: Transform) {
    for x in [198.0, 314.0] {
        let blush = radial(
            x,
            262.0,
            26.0,
            &[
                (0.0, rgba(242, 128, 128, 0.34)),
                (0.6, rgba(242, 128, 128, 0.14)),
                (1.0, rgba(242, 128, 128, 0.0)),
            ],
        );
        if let Some(p) = ellipse(x, 262.0, 26.0, 26.0) {
            fill(pm, &p, &blush, ts, None);
        }
    }
    // Nose: a soft side shadow, the nostril curve and a tip highlight.
    let shade = rgba(196, 130, 100, 0.28);
    let mut pb = PathBuilder::new();
    pb.move_to(249.0, 236.0);
    pb.cubic_to(246.0, 248.0, 244.0, 258.0, 245.0, 266.0);
    if let Some(p) = pb.finish() {
        stroke(pm, &p, &solid(shade), 2.0, ts);
    }
    let mut pb = PathBuilder::new();
    pb.move_to(246.0, 269.0);
    pb.cubic_to(249.0, 277.0, 263.0, 277.0, 266.0, 269.0);
    if let Some(p) = pb.finish() {
        stroke(pm, &p, &solid(rgba(190, 124, 96, 0.75)), 2.4, ts);
    }
    if let Some(p) = ellipse(258.0, 262.0, 5.0, 4.0) {
        fill(pm, &p, &solid(rgba(255, 240, 226, 0.45)), ts, None);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

impl Side {
    /// Eye centre x and the direction of the outer corner.
    fn center_and_out(self) -> (f32, f32) {
        match self {
            Side::Left => (EYE_L, -1.0),
            Side::Right => (EYE_R, 1.0),
        }
    }
}

/// One eye in local coordinates: x grows toward the outer corner, y down, origin at the centre.
struct Eye {
    cx: f32,
    out: f32,
    blink: f32,
    gaze_x: f32,
    gaze_y: f32,
}

// Local eye shape.
const EYE_INNER: (f32, f32) = (-21.0, 1.5);
const EYE_OUTER: (f32, f32) = (23.0, -1.5);
const LID_OPEN: [(f32, f32); 2] = [(-13.0, -18.0), (11.0, -20.0)];
const LID_CLOSED: [(f32, f32); 2] = [(-11.0, 11.0), (13.0, 11.0)];

impl Eye {
    fn new(side: Side, blink: f32, gaze_x: f32, gaze_y: f32) -> Self {
        let (cx, out) = side.center_and_out();
        Eye {
            cx,
            out,
            blink,
            gaze_x: gaze_x.clamp(-1.0, 1.0),
            gaze_y: gaze_y.clamp(-1.0, 1.0),
        }
    }

    /// Local → design coordinates.
    fn p(&self, (x, y): (f32, f32)) -> (f32, f32) {
        (self.cx + self.out * x, EYE_Y + y)
    }

    fn lid_controls(&self) -> [(f32, f32); 2] {
        let b = self.blink;
        let l = |a: (f32, f32), c: (f32, f32)| (a.0 + (c.0 - a.0) * b, a.1 + (c.1 - a.1) * b);
        [l(LID_OPEN[0], LID_CLOSED[0]), l(LID_OPEN[1], LID_CLOSED[1])]
    }

    /// The upper lid edge, inner → outer corner.
    fn lid_path(&self) -> Option<Path> {
        let [c1, c2] = self.lid_controls();
        let (a, b, c, d) = (self.p(EYE_INNER), self.p(c1), self.p(c2), self.p(EYE_OUTER));
        let mut pb = PathBuilder::new();
        pb.move_to(a.0, a.1);
        pb.cubic_to(b.0, b.1, c.0, c.1, d.0, d.1);
        pb.finish()
    }

    /// The visible part of the eye between the lid and the lower lid.
    fn opening_path(&self) -> Option<Path> {
        let [c1, c2] = self.lid_controls();
        let pts = [
            self.p(EYE_INNER),
            self.p(c1),
            self.p(c2),
            self.p(EYE_OUTER),
            self.p(LID_CLOSED[1]),
            self.p(LID_CLOSED[0]),
        ];
        let mut pb = PathBuilder::new();
        pb.move_to(pts[0].0, pts[0].1);
        pb.cubic_to(pts[1].0, pts[1].1, pts[2].0, pts[2].1, pts[3].0, pts[3].1);
        pb.cubic_to(pts[4].0, pts[4].1, pts[5].0, pts[5].1, pts[0].0, pts[0].1);
        pb.close();
        pb.finish()
    }

    fn draw(&self, pm: &mut PixmapMut<'_>, mask: &mut Mask, ts: Transform) {
        let dark = rgb(56, 38, 32);
        // Crease above the eye; it drops a little as the lid closes.
        let crease_y = 4.0 * self.blink;
        let mut pb = PathBuilder::new();
        let a = self.p((-17.0, -14.0 + crease_y));
        let b = self.p((-7.0, -26.0 + crease_y));
        let c = self.p((11.0, -27.0 + crease_y));
        let d = self.p((21.0, -11.0 + crease_y));
        pb.move_to(a.0, a.1);
        pb.cubic_to(b.0, b.1, c.0, c.1, d.0, d.1);
        if let Some(p) = pb.finish() {
            stroke(pm, &p, &solid(rgba(196, 136, 106, 0.45)), 1.6, ts);
        }

        if self.blink < 0.98 {
            if let Some(open) = self.opening_path() {
                let white = linear(
                    0.0,
                    EYE_Y - 14.0,
                    0.0,
                    EYE_Y + 2.0,
                    &[(0.0, rgb(222, 212, 210)), (1.0, rgb(253, 251, 249))],
                );
                fill(pm, &open, &white, ts, None);
                mask.fill_path(&open, FillRule::Winding, true, ts);

                let ix = self.cx + 5.0 * self.gaze_x;
                let iy = EYE_Y + 0.5 + 3.0 * self.gaze_y;
                let m = Some(&*mask);
                if let Some(p) = ellipse(ix, iy, 12.8, 12.8) {
                    let iris = radial(
                        ix,
                        iy + 1.5,
                        12.8,
                        &[
                            (0.0, rgb(168, 118, 66)),
                            (0.55, rgb(122, 80, 44)),
                            (0.85, rgb(86, 56, 32)),
                            (1.0, rgb(54, 36, 24)),
                        ],
                    );
                    fill(pm, &p, &iris, ts, m);
                }
                if let Some(p) = ellipse(ix, iy, 6.0, 6.0) {
                    fill(pm, &p, &solid(rgb(22, 16, 14)), ts, m);
                }
                // Shadow of the lid on the eyeball.
                if let Some(p) = self.lid_path() {
                    let shadow = solid(rgba(60, 40, 40, 0.2));
                    let lid_ts = ts.pre_translate(0.0, 2.5);
                    pm.stroke_path(&p, &shadow, &round_stroke(7.0), lid_ts, m);
                }
                if let Some(p) = ellipse(ix + 4.2, iy - 4.6, 3.2, 3.2) {
                    fill(pm, &p, &solid(rgb(255, 255, 255)), ts, m);
                }
                if let Some(p) = ellipse(ix - 3.6, iy + 4.2, 1.5, 1.5) {
                    fill(pm, &p, &solid(rgba(255, 255, 255, 0.8)), ts, m);
                }
            }
        }

        // Lower lid line: faint.
        let mut pb = PathBuilder::new();
        let (o, c2, c1, i) = (
            self.p(EYE_OUTER),
            self.p(LID_CLOSED[1]),
            self.p(LID_CLOSED[0]),
            self.p(EYE_INNER),
        );
        pb.move_to(o.0, o.1);
        pb.cubic_to(c2.0, c2.1, c1.0, c1.1, i.0, i.1);
        if let Some(p) = pb.finish() {
            stroke(pm, &p, &solid(rgba(170, 110, 90, 0.45)), 1.3, ts);
        }
        // Upper lash line with a small flick at the outer corner.
        if let Some(p) = self.lid_path() {
            stroke(pm, &p, &solid(dark), 3.4, ts);
        }
        let b = self.blink;
        let mut pb = PathBuilder::new();
        let f0 = self.p((19.0, -3.5 + 2.5 * b));
        let f1 = self.p((24.5, -5.0 + 3.5 * b));
        let f2 = self.p((28.0, -8.5 + 5.0 * b));
        pb.move_to(f0.0, f0.1);
        pb.quad_to(f1.0, f1.1, f2.0, f2.1);
        if let Some(p) = pb.finish() {
            stroke(pm, &p, &solid(dark), 2.6, ts);
        }
    }
}

fn draw_brow(pm: &mut PixmapMut<'_>, side: Side, ts: Transform, lift: f32) {
    let (cx, out) = side.center_and_out();
    let p = |x: f32, y: f32| (cx + out * x, EYE_Y + y - lift);
    let pts = [
        p(-21.0, -32.0),
        p(-8.0, -43.0),
        p(10.0, -45.0),
        p(27.0, -34.5),
        p(10.0, -40.0),
        p(-6.0, -37.0),
        p(-18.5, -28.0),
        p(-22.5, -27.5),
    ];
    let mut pb = PathBuilder::new();
    pb.move_to(pts[0].0, pts[0].1);
    pb.cubic_to(pts[1].0, pts[1].1, pts[2].0, pts[2].1, pts[3].0, pts[3].1);
    pb.cubic_to(pts[4].0, pts[4].1, pts[5].0, pts[5].1, pts[6].0, pts[6].1);
    pb.quad_to(pts[7].0, pts[7].1, pts[0].0, pts[0].1);
    pb.close();
    if let Some(path) = pb.finish() {
        let paint = solid(rgb(98, 68, 50));
        fill(pm, &path, &paint, ts, None);
        pm.stroke_path(&path, &paint, &round_stroke(1.2), ts, None);
    }
}

fn front_hair_path() -> Option<Path> {
    let mut pb = PathBuilder::new();
    pb.move_to(256.0, 56.0);
    pb.cubic_to(336.0, 56.0, 388.0, 108.0, 389.0, 188.0);
    pb.cubic_to(390.0, 250.0, 395.0, 298.0, 393.0, 321.0);
    pb.cubic_to(391.0, 337.0, 368.0, 342.0, 350.0, 335.0);
    pb.cubic_to(353.0, 290.0, 354.0, 220.0, 345.0, 178.0);
    pb.cubic_to(338.0, 144.0, 320.0, 118.0, 302.0, 108.0);
    pb.cubic_to(292.0, 140.0, 244.0, 164.0, 182.0, 170.0);
    pb.cubic_to(167.0, 196.0, 158.0, 260.0, 162.0, 335.0);
    pb.cubic_to(144.0, 342.0, 121.0, 337.0, 119.0, 321.0);
    pb.cubic_to(117.0, 298.0, 122.0, 250.0, 123.0, 188.0);
    pb.cubic_to(124.0, 108.0, 176.0, 56.0, 256.0, 56.0);
    pb.close();
    pb.finish()
}

fn draw_front_hair(pm: &mut PixmapMut<'_>, ts: Transform) {
    let Some(p) = front_hair_path() else {
        return;
    };
    // Soft shadow cast on the forehead.
    fill(
        pm,
        &p,
        &solid(rgba(120, 60, 40, 0.16)),
        ts.pre_translate(1.5, 4.5),
        None,
    );
    let paint = radial(
        232.0,
        96.0,
        230.0,
        &[
            (0.0, rgb(122, 86, 62)),
            (0.45, rgb(98, 66, 48)),
            (1.0, rgb(70, 46, 34)),
        ],
    );
    fill(pm, &p, &paint, ts, None);
    // Strand lines and a sheen.
    let strand = solid(rgba(60, 38, 28, 0.55));
    let mut pb = PathBuilder::new();
    pb.move_to(296.0, 114.0);
    pb.cubic_to(280.0, 140.0, 240.0, 152.0, 200.0, 160.0);
    pb.move_to(306.0, 112.0);
    pb.cubic_to(330.0, 130.0, 344.0, 160.0, 350.0, 210.0);
    pb.move_to(170.0, 190.0);
    pb.cubic_to(160.0, 230.0, 150.0, 270.0, 148.0, 310.0);
    if let Some(s) = pb.finish() {
        stroke(pm, &s, &strand, 1.6, ts);
    }
    let shine = solid(rgba(200, 160, 128, 0.3));
    let mut pb = PathBuilder::new();
    pb.move_to(176.0, 100.0);
    pb.cubic_to(210.0, 68.0, 282.0, 62.0, 322.0, 84.0);
    pb.cubic_to(282.0, 72.0, 218.0, 78.0, 176.0, 100.0);
    pb.close();
    if let Some(s) = pb.finish() {
        fill(pm, &s, &shine, ts, None);
    }
    let mut pb = PathBuilder::new();
    pb.move_to(138.0, 196.0);
    pb.cubic_to(133.0, 236.0, 133.0, 280.0, 138.0, 318.0);
    pb.move_to(376.0, 196.0);
    pb.cubic_to(381.0, 236.0, 381.0, 280.0, 376.0, 318.0);
    if let Some(s) = pb.finish() {
        stroke(pm, &s, &shine, 3.0, ts);
    }
}

/// Mouth shape for one pose, in design units relative to [`MOUTH`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct MouthGeom {
    /// Half the width of the lip seam.
    pub(crate) half_width: f32,
    /// Height of the corners (negative = up, a smile).
    corner_y: f32,
    /// Sag of the seam at the centre.
    sag: f32,
    /// How far the upper opening edge rises.
    up: f32,
    /// How far the lower opening edge drops.
    down: f32,
    /// Horizontal control factor: 1 = boxy, smaller = rounder.
    k: f32,
    /// Chin drop.
    pub(crate) jaw: f32,
    open: f32,
}

impl MouthGeom {
    pub(crate) fn new(p: MouthPose) -> Self {
        let p = p.clamped();
        let half_width = 26.0 * (1.0 + 0.24 * p.wide - 0.34 * p.round) * (1.0 - 0.06 * p.open);
        let height = p.open * 36.0 * (1.0 - 0.2 * p.wide) * (1.0 + 0.1 * p.round);
        let up = height * 0.28;
        let down = height * 0.72;
        MouthGeom {
            half_width,
            corner_y: -5.5 * (1.0 - 0.5 * p.open) - 1.0 * p.wide,
            sag: 3.0 * (1.0 - 0.6 * p.round),
            up,
            down,
            k: 0.92 - 0.42 * p.round,
            jaw: down * 0.55,
            open: p.open,
        }
    }

    fn upper_ctrl_y(&self) -> f32 {
        (self.sag - self.up) * 4.0 / 3.0
    }

    fn lower_ctrl_y(&self) -> f32 {
        (self.sag + self.down) * 4.0 / 3.0
    }

    fn draw(&self, pm: &mut PixmapMut<'_>, mask: &mut Mask, head: Transform) {
        let ts = head.pre_translate(MOUTH.0, MOUTH.1);
        let a = self.half_width;
        let cy = self.corner_y;
        let k = self.k;
        let (uy, ly) = (self.upper_ctrl_y(), self.lower_ctrl_y());
        let tu = 4.5; // upper lip thickness
        let tl = 7.5; // lower lip thickness

        // Upper lip: cupid's bow on top, the opening's upper edge below.
        let top = -tu - self.up + self.sag * 0.3;
        let mut pb = PathBuilder::new();
        pb.move_to(-a - 2.5, cy + 0.5);
        pb.cubic_to(
            -a * 0.72,
            cy - 4.0 - self.up,
            -a * 0.4,
            top - 1.5,
            -a * 0.17,
            top - 0.5,
        );
        pb.quad_to(0.0, top + 3.0, a * 0.17, top - 0.5);
        pb.cubic_to(
            a * 0.4,
            top - 1.5,
            a * 0.72,
            cy - 4.0 - self.up,
            a + 2.5,
            cy + 0.5,
        );
        pb.line_to(a, cy);
        pb.cubic_to(a * k, uy, -a * k, uy, -a, cy);
        pb.close();
        let upper = pb.finish();

        // Lower lip: the opening's lower edge on top, a full curve below.
        let bottom = (self.sag + self.down + tl + 1.0) * 4.0 / 3.0;
        let mut pb = PathBuilder::new();
        pb.move_to(-a - 2.5, cy + 0.5);
        pb.line_to(-a, cy);
        pb.cubic_to(-a * k, ly, a * k, ly, a, cy);
        pb.line_to(a + 2.5, cy + 0.5);
        pb.cubic_to(a * 0.8, bottom, -a * 0.8, bottom, -a - 2.5, cy + 0.5);
        pb.close();
        let lower = pb.finish();

        let lip_top = top - 2.0;
        let lip_bottom = bottom * 0.75 + 1.0;

        // The opening.
        if self.open > 0.005 {
            let mut pb = PathBuilder::new();
            pb.move_to(-a, cy);
            pb.cubic_to(-a * k, uy, a * k, uy, a, cy);
            pb.cubic_to(a * k, ly, -a * k, ly, -a, cy);
            pb.close();
            if let Some(hole) = pb.finish() {
                let inside = linear(
                    0.0,
                    -self.up,
                    0.0,
                    self.sag + self.down,
                    &[(0.0, rgb(58, 18, 28)), (1.0, rgb(104, 36, 48))],
                );
                fill(pm, &hole, &inside, ts, None);
                mask.fill_path(&hole, FillRule::Winding, true, ts);
                let m = Some(&*mask);
                // Upper teeth: a band under the upper edge.
                let th = (self.up + self.down) * 0.22;
                let th = th.min(6.0);
                let mut pb = PathBuilder::new();
                pb.move_to(-a, cy - 2.0);
                pb.cubic_to(-a * k, uy - 2.0, a * k, uy - 2.0, a, cy - 2.0);
                pb.line_to(a, cy + th);
                pb.cubic_to(a * k, uy + th, -a * k, uy + th, -a, cy + th);
                pb.close();
                if let Some(teeth) = pb.finish() {
                    let paint = linear(
                        0.0,
                        -self.up,
                        0.0,
                        -self.up + th + 3.0,
                        &[(0.0, rgb(255, 254, 250)), (1.0, rgb(226, 222, 216))],
                    );
                    fill(pm, &teeth, &paint, ts, m);
                }
                // Tongue resting at the bottom.
                let d = self.sag + self.down;
                if let Some(t) = ellipse(0.0, d + 1.0, a * 0.6, (self.down * 0.42).max(0.5)) {
                    let paint = radial(
                        0.0,
                        d - self.down * 0.2,
                        a * 0.6,
                        &[(0.0, rgb(214, 104, 112)), (1.0, rgb(176, 74, 84))],
                    );
                    fill(pm, &t, &paint, ts, m);
                }
            }
        }

        let lip_paint = linear(
            0.0,
            lip_top,
            0.0,
            lip_bottom,
            &[
                (0.0, rgb(194, 100, 104)),
                (0.5, rgb(206, 112, 114)),
                (1.0, rgb(222, 132, 128)),
            ],
        );
        if let Some(p) = &upper {
            fill(pm, p, &lip_paint, ts, None);
        }
        if let Some(p) = &lower {
            fill(pm, p, &lip_paint, ts, None);
            // Gloss on the lower lip.
            let gy = self.sag + self.down + tl * 0.45;
            if let Some(g) = ellipse(a * 0.12, gy, a * 0.34, 2.2) {
                fill(pm, &g, &solid(rgba(255, 226, 220, 0.3)), ts, None);
            }
        }

        // Seam of closed lips and the smile tucks at the corners.
        let seam = rgba(128, 52, 60, 0.95 * (1.0 - (self.open * 8.0).min(1.0)));
        if self.open < 0.125 {
            let mut pb = PathBuilder::new();
            pb.move_to(-a, cy);
            pb.cubic_to(-a * k, uy, a * k, uy, a, cy);
            if let Some(p) = pb.finish() {
                stroke(pm, &p, &solid(seam), 2.0, ts);
            }
        }
        let tuck = solid(rgba(176, 104, 90, 0.55));
        for s in [-1.0f32, 1.0] {
            let mut pb = PathBuilder::new();
            pb.move_to(s * (a + 1.5), cy - 3.5);
            pb.quad_to(s * (a + 5.0), cy + 0.5, s * (a + 2.0), cy + 4.0);
            if let Some(p) = pb.finish() {
                stroke(pm, &p, &tuck, 1.4, ts);
            }
        }
    }
}
