//! Cached, pre-rendered layers and their fast per-frame compositing.
//!
//! Vector gradients are expensive per pixel, so everything that only moves rigidly is drawn once:
//! - the *backdrop*: background plus shoulders and neck at rest. Breathing moves the shoulders
//!   vertically only, so each frame copies the rows above the shoulders unchanged and the rows
//!   below with a sub-pixel vertical shift (linear interpolation between two rows);
//! - the *head*: hair, face, cheeks and nose, premultiplied RGBA on a transparent layer. Each
//!   frame it is resampled (bilinear, fixed point) through the head's affine transform (sway,
//!   bob, tilt) and composited source-over onto the backdrop.
//!
//! Only the features that change shape (eyes, brows, mouth, jaw) are drawn as vectors per frame.

use tiny_skia::{Pixmap, PixmapMut, Point, Transform};

use crate::face::{self, Layout};
use crate::motion::Motion;

/// The pre-rendered layers of one output size.
pub(crate) struct Layers {
    /// Background plus body at rest, opaque RGBA8 (premultiplied == straight).
    backdrop: Vec<u8>,
    /// First output row that breathing may change.
    band_start: usize,
    /// Head layer, premultiplied RGBA8 packed little-endian in `u32`s.
    head: Vec<u32>,
    head_w: usize,
    head_h: usize,
    /// Design → head-layer pixels.
    head_rest: Transform,
}

impl Layers {
    pub(crate) fn new(layout: &Layout) -> Option<Self> {
        let (w, h) = (layout.width, layout.height);
        let mut backdrop = vec![0u8; w as usize * h as usize * 4];
        {
            let mut pm = PixmapMut::from_bytes(&mut backdrop, w, h)?;
            face::draw_background(&mut pm, layout);
            face::draw_body(&mut pm, layout.rest());
        }
        for px in backdrop.chunks_exact_mut(4) {
            px[3] = 255;
        }
        let band_top = layout.rest().ty + (face::BODY_TOP - face::BREATH_RISE) * layout.scale - 2.0;
        let band_start = (band_top.floor().max(0.0) as usize).min(h as usize);

        // Head layer: the head's design bounds at rest, with a transparent border of 2 px so
        // bilinear sampling never reads outside.
        let b = face::head_bounds()?;
        let rest = layout.rest();
        let mut corners = [
            Point::from_xy(b.left(), b.top()),
            Point::from_xy(b.right(), b.bottom()),
        ];
        rest.map_points(&mut corners);
        let ox = corners[0].x.floor() - 2.0;
        let oy = corners[0].y.floor() - 2.0;
        let lw = (corners[1].x.ceil() - ox + 2.0).max(4.0) as u32;
        let lh = (corners[1].y.ceil() - oy + 2.0).max(4.0) as u32;
        let head_rest = rest.post_translate(-ox, -oy);
        let mut layer = Pixmap::new(lw, lh)?;
        face::draw_head_static(&mut layer.as_mut(), head_rest);
        let head = layer
            .data()
            .chunks_exact(4)
            .map(|p| u32::from_le_bytes([p[0], p[1], p[2], p[3]]))
            .collect();
        Some(Layers {
            backdrop,
            band_start,
            head,
            head_w: lw as usize,
            head_h: lh as usize,
            head_rest,
        })
    }

    /// Writes backdrop (with breathing) and head (with its motion) into `out`, which must hold
    /// exactly one frame.
    pub(crate) fn compose(&self, out: &mut [u8], layout: &Layout, m: &Motion) {
        self.compose_backdrop(out, layout, m);
        self.compose_head(out, layout, m);
    }

    fn compose_backdrop(&self, out: &mut [u8], layout: &Layout, m: &Motion) {
        let w4 = layout.width as usize * 4;
        let h = layout.height as usize;
        let split = self.band_start * w4;
        out[..split].copy_from_slice(&self.backdrop[..split]);
        // Shoulders rise by `rise` pixels: output row y shows backdrop row y + rise.
        let rise = m.breath * face::BREATH_RISE * layout.scale;
        let whole = rise.floor();
        let frac = ((rise - whole) * 256.0).round() as u32;
        let (whole, frac) = if frac >= 256 {
            (whole as i64 + 1, 0)
        } else {
            (whole as i64, frac)
        };
        let last = h as i64 - 1;
        for y in self.band_start..h {
            let r0 = (y as i64 + whole).clamp(0, last) as usize;
            let r1 = (y as i64 + whole + 1).clamp(0, last) as usize;
            let dst = &mut out[y * w4..(y + 1) * w4];
            let a = &self.backdrop[r0 * w4..(r0 + 1) * w4];
            if frac == 0 {
                dst.copy_from_slice(a);
                continue;
            }
            let b = &self.backdrop[r1 * w4..(r1 + 1) * w4];
            let fa = 256 - frac;
            for ((d, &x), &z) in dst.iter_mut().zip(a).zip(b) {
                *d = ((u32::from(x) * fa + u32::from(z) * frac + 128) >> 8) as u8;
            }
        }
    }

    fn compose_head(&self, out: &mut [u8], layout: &Layout, m: &Motion) {
        let head = layout.head(m);
        let Some(inv) = head.invert() else {
            return;
        };
        // Output pixel → head-layer pixel.
        let to_layer = self.head_rest.pre_concat(inv);
        let Some(rest_inv) = self.head_rest.invert() else {
            return;
        };
        let to_out = head.pre_concat(rest_inv);
        let (lw, lh) = (self.head_w as f32, self.head_h as f32);
        let mut c = [
            Point::from_xy(0.0, 0.0),
            Point::from_xy(lw, 0.0),
            Point::from_xy(0.0, lh),
            Point::from_xy(lw, lh),
        ];
        to_out.map_points(&mut c);
        let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
        for p in c {
            x0 = x0.min(p.x);
            y0 = y0.min(p.y);
            x1 = x1.max(p.x);
            y1 = y1.max(p.y);
        }
        let (w, h) = (layout.width as f32, layout.height as f32);
        let x0 = x0.floor().clamp(0.0, w) as usize;
        let x1 = x1.ceil().clamp(0.0, w) as usize;
        let y0 = y0.floor().clamp(0.0, h) as usize;
        let y1 = y1.ceil().clamp(0.0, h) as usize;
        if x0 >= x1 || y0 >= y1 {
            return;
        }

        const ONE: f32 = 65536.0;
        let du = (to_layer.sx * ONE) as i32;
        let dv = (to_layer.ky * ONE) as i32;
        let max_u = (self.head_w - 1) as u32;
        let max_v = (self.head_h - 1) as u32;
        let lw = self.head_w;
        let w4 = layout.width as usize * 4;
        for y in y0..y1 {
            // Texel coordinates of the centre of pixel (x0, y).
            let px = x0 as f32 + 0.5;
            let py = y as f32 + 0.5;
            let su = to_layer.sx * px + to_layer.kx * py + to_layer.tx - 0.5;
            let sv = to_layer.ky * px + to_layer.sy * py + to_layer.ty - 0.5;
            let mut u = (su * ONE) as i32;
            let mut v = (sv * ONE) as i32;
            let row = &mut out[y * w4 + x0 * 4..y * w4 + x1 * 4];
            for px in row.chunks_exact_mut(4) {
                let (cu, cv) = (u, v);
                u = u.wrapping_add(du);
                v = v.wrapping_add(dv);
                if cu < 0 || cv < 0 {
                    continue;
                }
                let ui = (cu >> 16) as u32;
                let vi = (cv >> 16) as u32;
                if ui >= max_u || vi >= max_v {
                    continue;
                }
                let i = vi as usize * lw + ui as usize;
                let (Some(&p00), Some(&p01), Some(&p10), Some(&p11)) = (
                    self.head.get(i),
                    self.head.get(i + 1),
                    self.head.get(i + lw),
                    self.head.get(i + lw + 1),
                ) else {
                    continue;
                };
                if p00 | p01 | p10 | p11 == 0 {
                    continue;
                }
                let fu = ((cu >> 8) & 0xff) as u32;
                let fv = ((cv >> 8) & 0xff) as u32;
                let s = lerp_px(lerp_px(p00, p01, fu), lerp_px(p10, p11, fu), fv);
                let d = u32::from_le_bytes([px[0], px[1], px[2], px[3]]);
                let o = over(s, d).to_le_bytes();
                px.copy_from_slice(&o);
            }
        }
    }
}

/// Blends two packed premultiplied pixels: `a + (b - a) * f / 256`, `f` in 0..=255.
#[inline]
fn lerp_px(a: u32, b: u32, f: u32) -> u32 {
    if a == b {
        return a;
    }
    let g = 256 - f;
    let rb = (((a & 0x00ff_00ff) * g + (b & 0x00ff_00ff) * f) >> 8) & 0x00ff_00ff;
    let ag = ((((a >> 8) & 0x00ff_00ff) * g + ((b >> 8) & 0x00ff_00ff) * f) >> 8) & 0x00ff_00ff;
    rb | (ag << 8)
}

/// Source-over of premultiplied `s` onto opaque `d`; the result stays opaque.
#[inline]
fn over(s: u32, d: u32) -> u32 {
    let sa = s >> 24;
    if sa == 255 {
        return s;
    }
    // d * (255 - sa) / 255, approximated with a 0..=256 factor.
    let inv = 255 - sa;
    let k = inv + (inv >> 7);
    let rb = (((d & 0x00ff_00ff) * k) >> 8) & 0x00ff_00ff;
    let ag = ((((d >> 8) & 0x00ff_00ff) * k) >> 8) & 0x00ff_00ff;
    let scaled = rb | (ag << 8);
    // Channels of premultiplied s never exceed its alpha, so the sums stay within a byte.
    (s.wrapping_add(scaled) & 0x00ff_ffff) | 0xff00_0000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(r: u8, g: u8, b: u8, a: u8) -> u32 {
        u32::from_le_bytes([r, g, b, a])
    }

    #[test]
    fn lerp_px_endpoints_and_middle() {
        let a = pack(10, 20, 30, 40);
        let b = pack(210, 120, 30, 240);
        assert_eq!(lerp_px(a, b, 0), a);
        let m = lerp_px(a, b, 128).to_le_bytes();
        assert_eq!(m, [110, 70, 30, 140]);
    }

    #[test]
    fn over_is_opaque_and_correct() {
        let d = pack(200, 100, 50, 255);
        assert_eq!(over(pack(0, 0, 0, 0), d), d);
        let s = pack(10, 20, 30, 255);
        assert_eq!(over(s, d), s);
        // Half-transparent black halves the destination.
        let r = over(pack(0, 0, 0, 128), d).to_le_bytes();
        assert_eq!(r[3], 255);
        assert!((i32::from(r[0]) - 100).abs() <= 1, "{r:?}");
        assert!((i32::from(r[1]) - 50).abs() <= 1, "{r:?}");
    }
}
