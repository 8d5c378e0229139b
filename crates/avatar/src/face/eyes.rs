//! The eyes (lids, blink and gaze), the brows and the front hair drawn over them.

use tiny_skia::{FillRule, Mask, Path, PathBuilder, PixmapMut, Transform};

use super::{
    ellipse, fill, linear, radial, rgb, rgba, round_stroke, solid, stroke, EYE_L, EYE_R, EYE_Y,
};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Left,
    Right,
}

impl Side {
    /// Eye centre x and the direction of the outer corner.
    pub(super) fn center_and_out(self) -> (f32, f32) {
        match self {
            Side::Left => (EYE_L, -1.0),
            Side::Right => (EYE_R, 1.0),
        }
    }
}

/// One eye in local coordinates: x grows toward the outer corner, y down, origin at the centre.
pub(super) struct Eye {
    cx: f32,
    out: f32,
    blink: f32,
    gaze_x: f32,
    gaze_y: f32,
}

// Local eye shape.
pub(super) const EYE_INNER: (f32, f32) = (-21.0, 1.5);
pub(super) const EYE_OUTER: (f32, f32) = (23.0, -1.5);
pub(super) const LID_OPEN: [(f32, f32); 2] = [(-13.0, -18.0), (11.0, -20.0)];
pub(super) const LID_CLOSED: [(f32, f32); 2] = [(-11.0, 11.0), (13.0, 11.0)];

impl Eye {
    pub(super) fn new(side: Side, blink: f32, gaze_x: f32, gaze_y: f32) -> Self {
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
    pub(super) fn p(&self, (x, y): (f32, f32)) -> (f32, f32) {
        (self.cx + self.out * x, EYE_Y + y)
    }

    pub(super) fn lid_controls(&self) -> [(f32, f32); 2] {
        let b = self.blink;
        let l = |a: (f32, f32), c: (f32, f32)| (a.0 + (c.0 - a.0) * b, a.1 + (c.1 - a.1) * b);
        [l(LID_OPEN[0], LID_CLOSED[0]), l(LID_OPEN[1], LID_CLOSED[1])]
    }

    /// The upper lid edge, inner → outer corner.
    pub(super) fn lid_path(&self) -> Option<Path> {
        let [c1, c2] = self.lid_controls();
        let (a, b, c, d) = (self.p(EYE_INNER), self.p(c1), self.p(c2), self.p(EYE_OUTER));
        let mut pb = PathBuilder::new();
        pb.move_to(a.0, a.1);
        pb.cubic_to(b.0, b.1, c.0, c.1, d.0, d.1);
        pb.finish()
    }

    /// The visible part of the eye between the lid and the lower lid.
    pub(super) fn opening_path(&self) -> Option<Path> {
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

    pub(super) fn draw(&self, pm: &mut PixmapMut<'_>, mask: &mut Mask, ts: Transform) {
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

pub(super) fn draw_brow(pm: &mut PixmapMut<'_>, side: Side, ts: Transform, lift: f32) {
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

pub(super) fn front_hair_path() -> Option<Path> {
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

pub(super) fn draw_front_hair(pm: &mut PixmapMut<'_>, ts: Transform) {
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
