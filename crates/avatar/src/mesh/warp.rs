//! The piecewise-affine warp: every triangle of the mesh maps its pixels from the photo's
//! triangle to where the rig moved it. Triangles that did not move are the photo itself (copied,
//! exact); the others are rasterized in the output, each pixel sampled bilinearly from the photo.

use super::triangulate::{signed_area2, Triangle};
use super::Point;

/// An RGBA image borrowed for reading.
#[derive(Debug, Clone, Copy)]
pub struct RgbaRef<'a> {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 4` bytes, rows top to bottom.
    pub data: &'a [u8],
}

impl RgbaRef<'_> {
    /// Bilinear sample at `(x, y)` in pixel-centre coordinates (pixel `i` covers `i..i+1`, its
    /// centre is `i + 0.5`), clamped at the edges, written to `dst` (4 bytes). Fixed point: 8
    /// bits of sub-pixel position, rounded.
    fn sample_into(&self, x: f32, y: f32, dst: &mut [u8]) {
        let w = self.width as i32;
        let h = self.height as i32;
        let fx = (((x - 0.5) * 256.0) as i32).clamp(0, (w - 1) * 256);
        let fy = (((y - 0.5) * 256.0) as i32).clamp(0, (h - 1) * 256);
        let (x0, y0) = (fx >> 8, fy >> 8);
        let (tx, ty) = (fx & 255, fy & 255);
        let x1 = (x0 + 1).min(w - 1);
        let y1 = (y0 + 1).min(h - 1);
        let at = |x: i32, y: i32| ((y * w + x) * 4) as usize;
        let (a, b, c, d) = (at(x0, y0), at(x1, y0), at(x0, y1), at(x1, y1));
        let px = self.data;
        for k in 0..4 {
            let top = i32::from(px[a + k]) * (256 - tx) + i32::from(px[b + k]) * tx;
            let bottom = i32::from(px[c + k]) * (256 - tx) + i32::from(px[d + k]) * tx;
            let v = (top * (256 - ty) + bottom * ty + (1 << 15)) >> 16;
            dst[k] = v.clamp(0, 255) as u8;
        }
    }
}

/// Warp `src` into `out` (same size): triangle `t` of `from` (the photo's points) goes to the
/// same triangle of `to`. `out` must hold `width * height * 4` bytes. Returns how many
/// triangles moved (were rasterized).
pub fn warp(
    src: RgbaRef<'_>,
    from: &[Point],
    to: &[Point],
    tris: &[Triangle],
    out: &mut [u8],
) -> usize {
    out.copy_from_slice(src.data);
    let mut moved = 0;
    for t in tris {
        let [a, b, c] = t.map(|i| i as usize);
        let still = [a, b, c]
            .iter()
            .all(|&i| (from[i].x - to[i].x).abs() < 1e-4 && (from[i].y - to[i].y).abs() < 1e-4);
        if still {
            continue;
        }
        moved += 1;
        fill_triangle(src, [from[a], from[b], from[c]], [to[a], to[b], to[c]], out);
    }
    moved
}

/// Rasterize one destination triangle row by row (the span of pixel centres inside it), each
/// pixel mapped to the photo by the triangle's affine map and sampled bilinearly.
fn fill_triangle(src: RgbaRef<'_>, from: [Point; 3], to: [Point; 3], out: &mut [u8]) {
    let area = signed_area2(to[0], to[1], to[2]);
    if area.abs() < 1e-6 {
        return;
    }
    // The affine map destination -> source: s = M * (x, y, 1), from barycentric coordinates.
    let inv = 1.0 / area;
    let [p0, p1, p2] = to;
    // Barycentric weight of vertex k as a linear function of (x, y): w_k = ax*x + ay*y + a0.
    let weight = |pa: Point, pb: Point| {
        let ax = (pa.y - pb.y) * inv;
        let ay = (pb.x - pa.x) * inv;
        let a0 = (pa.x * pb.y - pb.x * pa.y) * inv;
        (ax, ay, a0)
    };
    let w0 = weight(p1, p2);
    let w1 = weight(p2, p0);
    let w2 = weight(p0, p1);
    let lin = |f: fn(Point) -> f32| {
        let (v0, v1, v2) = (f(from[0]), f(from[1]), f(from[2]));
        (
            w0.0 * v0 + w1.0 * v1 + w2.0 * v2,
            w0.1 * v0 + w1.1 * v1 + w2.1 * v2,
            w0.2 * v0 + w1.2 * v1 + w2.2 * v2,
        )
    };
    let (sxx, sxy, sx0) = lin(|p| p.x);
    let (syx, syy, sy0) = lin(|p| p.y);

    let (w, h) = (src.width as i64, src.height as i64);
    let y_min = (p0.y.min(p1.y).min(p2.y) - 0.5).ceil().max(0.0) as i64;
    let y_max = (p0.y.max(p1.y).max(p2.y) - 0.5).floor().min((h - 1) as f32) as i64;
    let edges = [(p0, p1), (p1, p2), (p2, p0)];
    // A pixel on a shared edge is drawn by both triangles (same colour either way): no gaps.
    const EPS: f32 = 1e-3;
    for y in y_min..=y_max {
        let py = y as f32 + 0.5;
        let (mut xl, mut xr) = (f32::MAX, f32::MIN);
        for (a, b) in edges {
            let (lo, hi) = if a.y < b.y { (a, b) } else { (b, a) };
            if py < lo.y - EPS || py > hi.y + EPS {
                continue;
            }
            let x = if (hi.y - lo.y).abs() < 1e-6 {
                xl = xl.min(lo.x.min(hi.x));
                lo.x.max(hi.x)
            } else {
                lo.x + (py - lo.y) * (hi.x - lo.x) / (hi.y - lo.y)
            };
            xl = xl.min(x);
            xr = xr.max(x);
        }
        if xl > xr {
            continue;
        }
        let x_start = (xl - 0.5 - EPS).ceil().max(0.0) as i64;
        let x_end = (xr - 0.5 + EPS).floor().min((w - 1) as f32) as i64;
        if x_start > x_end {
            continue;
        }
        let px0 = x_start as f32 + 0.5;
        let mut sx = sxx * px0 + sxy * py + sx0;
        let mut sy = syx * px0 + syy * py + sy0;
        let row = (y * w) as usize * 4;
        for x in x_start..=x_end {
            let i = row + x as usize * 4;
            src.sample_into(sx, sy, &mut out[i..i + 4]);
            sx += sxx;
            sy += syx;
        }
    }
}
