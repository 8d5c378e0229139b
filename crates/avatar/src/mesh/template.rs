//! A generic upright face in the 68-point layout, drawn from ellipses like a mean face: for
//! tests and benchmarks, and as the starting shape a landmark editor can drag into place.

use super::{Point, LANDMARKS};

/// The template face centred on `centre` (between the eyes and the mouth) with the eye centres
/// `eyes_apart` pixels apart.
pub fn template_landmarks(centre: Point, eyes_apart: f32) -> Vec<Point> {
    let k = eyes_apart / 100.0;
    let at = |x: f32, y: f32| Point::new(centre.x + (x - 256.0) * k, centre.y + (y - 270.0) * k);
    let mut p = vec![Point::default(); LANDMARKS];
    let (cx, cy) = (256.0f32, 270.0f32);
    // Jaw: half an ellipse from ear to ear through the chin.
    for (i, q) in p.iter_mut().take(17).enumerate() {
        let a = std::f32::consts::PI * (i as f32 / 16.0);
        *q = Point::new(cx - 120.0 * a.cos(), cy - 20.0 + 150.0 * a.sin());
    }
    // Brows.
    for i in 0..5 {
        let t = i as f32 / 4.0;
        p[17 + i] = Point::new(
            cx - 110.0 + 75.0 * t,
            cy - 95.0 - 12.0 * (std::f32::consts::PI * t).sin(),
        );
        p[22 + i] = Point::new(
            cx + 35.0 + 75.0 * t,
            cy - 95.0 - 12.0 * (std::f32::consts::PI * t).sin(),
        );
    }
    // Nose bridge 27-30 and base 31-35.
    for i in 0..4 {
        p[27 + i] = Point::new(cx, cy - 75.0 + 22.0 * i as f32);
    }
    for i in 0..5 {
        p[31 + i] = Point::new(
            cx - 24.0 + 12.0 * i as f32,
            cy + 5.0 + if i == 2 { 4.0 } else { 0.0 },
        );
    }
    // Eyes: corners and lids of an ellipse 40 x 14.
    let eye = |p: &mut Vec<Point>, first: usize, ex: f32, ey: f32| {
        let pts = [
            (-20.0, 0.0),
            (-7.0, -7.0),
            (7.0, -7.0),
            (20.0, 0.0),
            (7.0, 7.0),
            (-7.0, 7.0),
        ];
        for (k, (dx, dy)) in pts.iter().enumerate() {
            p[first + k] = Point::new(ex + dx, ey + dy);
        }
    };
    eye(&mut p, 36, cx - 50.0, cy - 60.0);
    eye(&mut p, 42, cx + 50.0, cy - 60.0);
    // Both start at the corner on the picture's left: the outer corner of the left-hand eye
    // (36), the inner corner of the right-hand one (42), as the layout has them.
    // Outer lips: an ellipse 100 x 36 around (cx, cy + 60); inner lips 70 x 4.
    let outer = [
        (-50.0, 0.0),
        (-30.0, -14.0),
        (-12.0, -18.0),
        (0.0, -16.0),
        (12.0, -18.0),
        (30.0, -14.0),
        (50.0, 0.0),
        (30.0, 14.0),
        (12.0, 18.0),
        (0.0, 19.0),
        (-12.0, 18.0),
        (-30.0, 14.0),
    ];
    for (k, (dx, dy)) in outer.iter().enumerate() {
        p[48 + k] = Point::new(cx + dx, cy + 60.0 + dy);
    }
    let inner = [
        (-40.0, 0.0),
        (-14.0, -2.0),
        (0.0, -2.0),
        (14.0, -2.0),
        (40.0, 0.0),
        (14.0, 2.0),
        (0.0, 2.0),
        (-14.0, 2.0),
    ];
    for (k, (dx, dy)) in inner.iter().enumerate() {
        p[60 + k] = Point::new(cx + dx, cy + 60.0 + dy);
    }
    p.into_iter().map(|q| at(q.x, q.y)).collect()
}
