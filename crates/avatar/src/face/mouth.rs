//! The mouth: its geometry for one [`MouthPose`](crate::MouthPose) (lip curves, opening and
//! teeth) and its drawing.

use tiny_skia::{FillRule, Mask, PathBuilder, PixmapMut, Transform};

use crate::mouth::MouthPose;

use super::{ellipse, fill, linear, radial, rgb, rgba, solid, stroke, MOUTH};

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

    pub(super) fn upper_ctrl_y(&self) -> f32 {
        (self.sag - self.up) * 4.0 / 3.0
    }

    pub(super) fn lower_ctrl_y(&self) -> f32 {
        (self.sag + self.down) * 4.0 / 3.0
    }

    pub(super) fn draw(&self, pm: &mut PixmapMut<'_>, mask: &mut Mask, head: Transform) {
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
