//! Decoding PNG and JPEG bytes to RGBA8, and flattening transparency.

use crate::MAX_SIDE;

/// Decoded straight-alpha RGBA8 pixels.
pub(crate) struct Decoded {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) rgba: Vec<u8>,
}

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";
const JPEG_MAGIC: &[u8] = &[0xFF, 0xD8, 0xFF];

/// Grey that transparent pixels are flattened onto.
const MATTE: [u8; 3] = [128, 128, 128];

/// Error unless 1..=MAX_SIDE on both sides.
pub(crate) fn check_size(width: u32, height: u32) -> Result<(), String> {
    if width == 0 || height == 0 {
        return Err(format!("the image is empty ({width}x{height})"));
    }
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(format!(
            "the image is {width}x{height}, larger than {MAX_SIDE} pixels a side; scale it down"
        ));
    }
    Ok(())
}

/// Decodes PNG or JPEG (told apart by their signatures).
pub(crate) fn decode_image(bytes: &[u8]) -> Result<Decoded, String> {
    if bytes.starts_with(PNG_MAGIC) {
        decode_png(bytes).map_err(|e| format!("not a valid PNG: {e}"))
    } else if bytes.starts_with(JPEG_MAGIC) {
        decode_jpeg(bytes).map_err(|e| format!("not a valid JPEG: {e}"))
    } else if bytes.is_empty() {
        Err("the file is empty; expected a PNG or JPEG image".into())
    } else {
        let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
        Err(format!(
            "not a PNG or JPEG image (the file starts with bytes {})",
            head.join(" ")
        ))
    }
}

fn decode_png(bytes: &[u8]) -> Result<Decoded, String> {
    let mut decoder = png::Decoder::new_with_limits(
        std::io::Cursor::new(bytes),
        png::Limits {
            // A MAX_SIDE square at 16 bits per channel RGBA, plus slack.
            bytes: (MAX_SIDE as usize * MAX_SIDE as usize * 8) + (1 << 20),
        },
    );
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(|e| e.to_string())?;
    let (width, height) = {
        let info = reader.info();
        (info.width, info.height)
    };
    check_size(width, height)?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| "image too large".to_string())?;
    let mut buf = vec![0u8; size];
    let frame = reader.next_frame(&mut buf).map_err(|e| e.to_string())?;
    let (fw, fh) = (frame.width, frame.height);
    let n = fw as usize * fh as usize;
    let line = frame.line_size;
    let rows = buf.get(..line * fh as usize).ok_or("short image data")?;
    let channels = match frame.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err("palette was not expanded".into()),
    };
    if frame.bit_depth != png::BitDepth::Eight || line < fw as usize * channels {
        return Err("unexpected pixel layout after conversion to 8 bits".into());
    }
    let mut rgba = Vec::with_capacity(n * 4);
    for row in rows.chunks_exact(line) {
        for px in row[..fw as usize * channels].chunks_exact(channels) {
            let p = match *px {
                [g] => [g, g, g, 255],
                [g, a] => [g, g, g, a],
                [r, g, b] => [r, g, b, 255],
                [r, g, b, a] => [r, g, b, a],
                _ => [0, 0, 0, 255],
            };
            rgba.extend_from_slice(&p);
        }
    }
    check_size(fw, fh)?;
    Ok(Decoded {
        width: fw,
        height: fh,
        rgba,
    })
}

fn decode_jpeg(bytes: &[u8]) -> Result<Decoded, String> {
    use zune_jpeg::zune_core::bytestream::ZCursor;
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;

    let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode_headers().map_err(|e| e.to_string())?;
    let info = decoder.info().ok_or("no image header")?;
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    check_size(width, height)?;
    let size = decoder
        .output_buffer_size()
        .ok_or_else(|| "image too large".to_string())?;
    let n = width as usize * height as usize;
    let components = decoder
        .output_colorspace()
        .map_or(0, |c| c.num_components());
    if components != 3 || size != n * 3 {
        return Err(format!(
            "unsupported JPEG colour layout ({components} components)"
        ));
    }
    let mut rgb = vec![0u8; size];
    decoder.decode_into(&mut rgb).map_err(|e| e.to_string())?;
    let mut rgba = Vec::with_capacity(n * 4);
    for p in rgb.chunks_exact(3) {
        rgba.extend_from_slice(&[p[0], p[1], p[2], 255]);
    }
    // Phone cameras store the sensor's pixels and say in EXIF how to turn them upright; image
    // viewers (where the manifest's coordinates come from) show the turned picture.
    let orientation = decoder
        .exif()
        .and_then(|e| exif_orientation(e))
        .unwrap_or(1);
    Ok(orient(
        Decoded {
            width,
            height,
            rgba,
        },
        orientation,
    ))
}

/// The EXIF orientation (1..=8) from EXIF data starting at its TIFF header, if present.
fn exif_orientation(tiff: &[u8]) -> Option<u16> {
    let big = match tiff.get(..2)? {
        b"MM" => true,
        b"II" => false,
        _ => return None,
    };
    let u16_at = |i: usize| -> Option<u16> {
        let b = tiff.get(i..i + 2)?;
        Some(if big {
            u16::from_be_bytes([b[0], b[1]])
        } else {
            u16::from_le_bytes([b[0], b[1]])
        })
    };
    let u32_at = |i: usize| -> Option<u32> {
        let b = tiff.get(i..i + 4)?;
        let a = [b[0], b[1], b[2], b[3]];
        Some(if big {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        })
    };
    if u16_at(2)? != 42 {
        return None;
    }
    let ifd = u32_at(4)? as usize;
    let count = usize::from(u16_at(ifd)?);
    (0..count).find_map(|k| {
        let e = ifd.checked_add(2 + 12 * k)?;
        // Tag 0x0112 (Orientation), type 3 (SHORT), one value stored inline.
        if u16_at(e)? == 0x0112 && u16_at(e + 2)? == 3 {
            let v = u16_at(e + 8)?;
            (1..=8).contains(&v).then_some(v)
        } else {
            None
        }
    })
}

/// Turns decoded pixels upright according to an EXIF orientation (1 = as stored).
fn orient(img: Decoded, orientation: u16) -> Decoded {
    if !(2..=8).contains(&orientation) {
        return img;
    }
    let (w, h) = (img.width as usize, img.height as usize);
    let swap = orientation >= 5;
    let (ow, oh) = if swap { (h, w) } else { (w, h) };
    let mut rgba = vec![0u8; img.rgba.len()];
    for y in 0..oh {
        for x in 0..ow {
            let (sx, sy) = match orientation {
                2 => (w - 1 - x, y),
                3 => (w - 1 - x, h - 1 - y),
                4 => (x, h - 1 - y),
                5 => (y, x),
                6 => (y, h - 1 - x),
                7 => (w - 1 - y, h - 1 - x),
                _ => (w - 1 - y, x),
            };
            let (d, s) = ((y * ow + x) * 4, (sy * w + sx) * 4);
            rgba[d..d + 4].copy_from_slice(&img.rgba[s..s + 4]);
        }
    }
    Decoded {
        width: ow as u32,
        height: oh as u32,
        rgba,
    }
}

/// Composites every pixel over [`MATTE`] and makes it opaque.
pub(crate) fn flatten_alpha(rgba: &mut [u8]) {
    for px in rgba.chunks_exact_mut(4) {
        let a = u32::from(px[3]);
        if a == 255 {
            continue;
        }
        for (c, m) in px[..3].iter_mut().zip(MATTE) {
            *c = ((u32::from(*c) * a + u32::from(m) * (255 - a) + 127) / 255) as u8;
        }
        px[3] = 255;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal TIFF header with one IFD entry: orientation `v`.
    fn tiff(big: bool, v: u16) -> Vec<u8> {
        let u16b = |v: u16| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let u32b = |v: u32| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut t = if big { b"MM".to_vec() } else { b"II".to_vec() };
        t.extend(u16b(42));
        t.extend(u32b(8));
        t.extend(u16b(2));
        // An unrelated entry first (ImageWidth), then Orientation.
        t.extend(u16b(0x0100));
        t.extend(u16b(3));
        t.extend(u32b(1));
        t.extend(u32b(640));
        t.extend(u16b(0x0112));
        t.extend(u16b(3));
        t.extend(u32b(1));
        t.extend(u16b(v));
        t.extend([0, 0]);
        t
    }

    #[test]
    fn reads_exif_orientation_in_both_byte_orders() {
        for v in 1..=8 {
            assert_eq!(exif_orientation(&tiff(true, v)), Some(v));
            assert_eq!(exif_orientation(&tiff(false, v)), Some(v));
        }
        assert_eq!(exif_orientation(&tiff(false, 9)), None);
        assert_eq!(exif_orientation(&tiff(false, 6)[..20]), None);
        assert_eq!(exif_orientation(b"XX\x2a\x00"), None);
        assert_eq!(exif_orientation(&[]), None);
    }

    #[test]
    fn orientations_turn_the_picture_upright() {
        // 3 x 2 picture, pixel value = index; the marker pixel is the top-left one (0).
        let img = || Decoded {
            width: 3,
            height: 2,
            rgba: (0..6u8).flat_map(|i| [i, 0, 0, 255]).collect(),
        };
        let red = |d: &Decoded| -> Vec<u8> { d.rgba.chunks_exact(4).map(|p| p[0]).collect() };
        let cases: [(u16, (u32, u32), [u8; 6]); 8] = [
            (1, (3, 2), [0, 1, 2, 3, 4, 5]),
            (2, (3, 2), [2, 1, 0, 5, 4, 3]),
            (3, (3, 2), [5, 4, 3, 2, 1, 0]),
            (4, (3, 2), [3, 4, 5, 0, 1, 2]),
            (5, (2, 3), [0, 3, 1, 4, 2, 5]),
            (6, (2, 3), [3, 0, 4, 1, 5, 2]),
            (7, (2, 3), [5, 2, 4, 1, 3, 0]),
            (8, (2, 3), [2, 5, 1, 4, 0, 3]),
        ];
        for (o, dims, want) in cases {
            let d = orient(img(), o);
            assert_eq!((d.width, d.height), dims, "orientation {o}");
            assert_eq!(red(&d), want, "orientation {o}");
        }
    }
}
