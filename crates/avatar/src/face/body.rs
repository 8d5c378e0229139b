//! The head and body layers: cubic-curve helpers, the back hair, the body, the face outline
//! (with the jaw drop) and its skin, cheeks and nose.

use tiny_skia::{Paint, Path, PathBuilder, PixmapMut, Transform};

use crate::motion::smoothstep;

use super::{ellipse, fill, linear, radial, rgb, rgba, solid, stroke, CHIN_CUT, CX};

pub(super) type Pt = (f32, f32);

/// Parameter where a cubic whose y grows monotonically reaches `y` (bisection).
pub(super) fn cubic_t_at_y(c: [Pt; 4], y: f32) -> f32 {
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

pub(super) fn cubic_at(c: [Pt; 4], t: f32) -> Pt {
    let u = 1.0 - t;
    let (a, b, d, e) = (u * u * u, 3.0 * u * u * t, 3.0 * u * t * t, t * t * t);
    (
        a * c[0].0 + b * c[1].0 + d * c[2].0 + e * c[3].0,
        a * c[0].1 + b * c[1].1 + d * c[2].1 + e * c[3].1,
    )
}

/// De Casteljau split of a cubic at `t`.
pub(super) fn split_cubic(c: [Pt; 4], t: f32) -> ([Pt; 4], [Pt; 4]) {
    let l = |a: Pt, b: Pt| (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t);
    let ab = l(c[0], c[1]);
    let bc = l(c[1], c[2]);
    let cd = l(c[2], c[3]);
    let abc = l(ab, bc);
    let bcd = l(bc, cd);
    let m = l(abc, bcd);
    ([c[0], ab, abc, m], [m, bcd, cd, c[3]])
}

pub(super) fn draw_back_hair(pm: &mut PixmapMut<'_>, ts: Transform) {
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
pub(super) fn face_outline(jaw: f32) -> [Pt; 25] {
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

pub(super) fn face_path(jaw: f32) -> Option<Path> {
    let o = face_outline(jaw);
    let mut pb = PathBuilder::new();
    pb.move_to(o[0].0, o[0].1);
    for c in o[1..].chunks_exact(3) {
        pb.cubic_to(c[0].0, c[0].1, c[1].0, c[1].1, c[2].0, c[2].1);
    }
    pb.close();
    pb.finish()
}

pub(super) fn skin_paint() -> Paint<'static> {
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

pub(super) fn draw_cheeks_and_nose(pm: &mut PixmapMut<'_>, ts: Transform) {
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
