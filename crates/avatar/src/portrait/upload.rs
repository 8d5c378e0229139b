//! A photo sent over the network with its 68 landmarks (a page finds them in the browser):
//! everything about it is checked before it becomes a [`Portrait`], cheapest first.
//!
//! 1. The bytes: not empty, at most [`UploadLimits::max_bytes`], a PNG or JPEG by their first
//!    bytes (never by a name or a claimed type).
//! 2. The dimensions the file *declares* (PNG `IHDR`, JPEG `SOFn`), read without decoding: a
//!    few hundred bytes can declare 60000×60000 pixels, so the side ([`MAX_SIDE`]) and the pixel
//!    count ([`UploadLimits::max_pixels`]) are refused before any pixel buffer exists.
//! 3. The decode (with the decoders' own limits), EXIF orientation applied as browsers show it.
//! 4. The landmarks against the decoded picture ([`check_landmarks`]): 68 finite points inside
//!    the image, an upright plausible face (eyes above the nose, the nose above the mouth, the
//!    left-hand eye left of the other, eyes a sane distance apart for the picture, the mouth
//!    inside the jaw outline), and a mesh that builds and does not fold in any rig pose.
//! 5. A large photo is scaled down (landmarks with it) to [`UploadLimits::keep_side`], so what a
//!    session keeps in memory is bounded.
//!
//! A photo whose mouth is open is accepted with a note ([`CheckedUpload::notes`]). Every
//! refusal is an [`UploadError`] whose message is one sentence a person can act on.

use super::decode::{self, check_size};
use super::landmarks::manifest_from_landmarks;
use super::Portrait;
use crate::mesh::{idx, mean_of, FaceMesh, MeshError, Point, Rig, LANDMARKS};
use crate::MAX_SIDE;

/// What an upload may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadLimits {
    /// Largest file, bytes.
    pub max_bytes: usize,
    /// Largest declared pixel count (width × height).
    pub max_pixels: u64,
    /// A decoded photo larger than this on its longer side is scaled down to it.
    pub keep_side: u32,
}

impl Default for UploadLimits {
    fn default() -> Self {
        UploadLimits {
            max_bytes: 2 << 20,
            max_pixels: DEFAULT_MAX_PIXELS,
            keep_side: DEFAULT_KEEP_SIDE,
        }
    }
}

/// Default pixel limit: a 12-megapixel phone photo (4032×3024) fits, a declared 4096×4096
/// (64 MiB of RGBA) does not.
pub const DEFAULT_MAX_PIXELS: u64 = 4096 * 3072;
/// Default longest side kept after decoding.
pub const DEFAULT_KEEP_SIDE: u32 = 1536;

/// The image formats accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// PNG.
    Png,
    /// JPEG.
    Jpeg,
}

impl ImageKind {
    /// `png` or `jpeg`.
    pub fn name(self) -> &'static str {
        match self {
            ImageKind::Png => "png",
            ImageKind::Jpeg => "jpeg",
        }
    }

    /// The usual file extension.
    pub fn extension(self) -> &'static str {
        match self {
            ImageKind::Png => "png",
            ImageKind::Jpeg => "jpg",
        }
    }
}

/// What a file says about itself before decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeclaredImage {
    /// Its format.
    pub kind: ImageKind,
    /// Declared width (as stored, before EXIF orientation).
    pub width: u32,
    /// Declared height.
    pub height: u32,
}

/// Why an uploaded photo is refused. Each message is one sentence for the person who sent it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UploadError {
    /// No bytes.
    #[error("the photo is empty")]
    Empty,
    /// More bytes than allowed.
    #[error("the photo is {bytes} bytes, more than the limit of {max} bytes; send a smaller JPEG")]
    TooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// Neither PNG nor JPEG.
    #[error("the file is not a JPEG or PNG image (it starts with bytes {head})")]
    NotAnImage {
        /// Its first bytes in hex.
        head: String,
    },
    /// The header cannot be read.
    #[error("the {kind} file is damaged: {why}")]
    Header {
        /// `png` or `jpeg`.
        kind: &'static str,
        /// What is wrong.
        why: String,
    },
    /// The declared picture is too large to decode.
    #[error(
        "the {kind} declares {width}x{height} pixels, more than the {max_side} pixels a side \
         and {max_pixels} pixels in all that are accepted; scale it down"
    )]
    DeclaredTooLarge {
        /// `png` or `jpeg`.
        kind: &'static str,
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// Side limit.
        max_side: u32,
        /// Pixel limit.
        max_pixels: u64,
    },
    /// The pixels could not be decoded.
    #[error("the photo could not be decoded: {0}")]
    Decode(String),
    /// Not 68 landmarks.
    #[error("{0} landmarks were sent; a face needs exactly {LANDMARKS} (the iBUG 300-W layout)")]
    Count(usize),
    /// A landmark is not a finite number.
    #[error("landmark {index} is not a finite number")]
    NotFinite {
        /// Which one.
        index: usize,
    },
    /// A landmark is outside the picture.
    #[error("landmark {index} ({x:.1}, {y:.1}) is outside the {width}x{height} photo")]
    Outside {
        /// Which one.
        index: usize,
        /// Its x.
        x: f32,
        /// Its y.
        y: f32,
        /// Photo width.
        width: u32,
        /// Photo height.
        height: u32,
    },
    /// The face is too small (or too large) in the picture to animate.
    #[error("the eyes are {eyes:.0} pixels apart in a {width}x{height} photo: {why}")]
    FaceSize {
        /// Distance between the eye centres.
        eyes: f32,
        /// Photo width.
        width: u32,
        /// Photo height.
        height: u32,
        /// What to do.
        why: &'static str,
    },
    /// The points do not make a plausible upright face.
    #[error("the landmarks do not look like an upright face: {0}")]
    Implausible(String),
}

/// A photo that passed every check.
#[derive(Debug, Clone)]
pub struct CheckedUpload {
    /// The portrait to animate (scaled down to [`UploadLimits::keep_side`] if it was larger).
    pub portrait: Portrait,
    /// The file's format.
    pub kind: ImageKind,
    /// The decoded photo's size before any scaling down.
    pub source_width: u32,
    /// Its height.
    pub source_height: u32,
    /// Things the person should know (for example that the mouth is open in the photo).
    pub notes: Vec<String>,
}

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";
const JPEG_MAGIC: &[u8] = &[0xFF, 0xD8, 0xFF];

/// The format and the declared size of `bytes`, from the header only (no pixel is decoded).
pub fn probe(bytes: &[u8]) -> Result<DeclaredImage, UploadError> {
    if bytes.is_empty() {
        return Err(UploadError::Empty);
    }
    if bytes.starts_with(PNG_MAGIC) {
        let header = |why: &str| UploadError::Header {
            kind: "png",
            why: why.to_string(),
        };
        // The first chunk must be IHDR: length 13, type, width, height (big-endian).
        let ihdr = bytes
            .get(8..24)
            .ok_or_else(|| header("it ends inside its header"))?;
        if &ihdr[4..8] != b"IHDR" {
            return Err(header("its first chunk is not IHDR"));
        }
        let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        return Ok(DeclaredImage {
            kind: ImageKind::Png,
            width: be(&ihdr[8..12]),
            height: be(&ihdr[12..16]),
        });
    }
    if bytes.starts_with(JPEG_MAGIC) {
        let (width, height) = jpeg_size(bytes).map_err(|why| UploadError::Header {
            kind: "jpeg",
            why: why.to_string(),
        })?;
        return Ok(DeclaredImage {
            kind: ImageKind::Jpeg,
            width,
            height,
        });
    }
    let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
    Err(UploadError::NotAnImage {
        head: head.join(" "),
    })
}

/// Width and height from a JPEG's first frame header (SOF0..SOF15 but DHT, JPG and DAC).
fn jpeg_size(b: &[u8]) -> Result<(u32, u32), &'static str> {
    let mut i = 2;
    loop {
        // Markers may be preceded by fill bytes 0xFF.
        if *b.get(i).ok_or("it ends before its frame header")? != 0xFF {
            return Err("a marker is missing where one is due");
        }
        while b.get(i) == Some(&0xFF) {
            i += 1;
        }
        let marker = *b.get(i).ok_or("it ends before its frame header")?;
        i += 1;
        match marker {
            // Standalone markers: no length.
            0x01 | 0xD0..=0xD7 => continue,
            0xD9 | 0xDA => return Err("it has no frame header before its image data"),
            _ => {}
        }
        let len = b.get(i..i + 2).ok_or("it ends inside a segment")?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        if len < 2 {
            return Err("a segment has an impossible length");
        }
        let is_sof = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_sof {
            // Length, precision, height, width.
            let s = b.get(i..i + 7).ok_or("it ends inside its frame header")?;
            let height = u32::from(u16::from_be_bytes([s[3], s[4]]));
            let width = u32::from(u16::from_be_bytes([s[5], s[6]]));
            return Ok((width, height));
        }
        i += len;
    }
}

/// Refuses a declared size over the limits (before decoding).
fn check_declared(d: &DeclaredImage, limits: &UploadLimits) -> Result<(), UploadError> {
    let pixels = u64::from(d.width) * u64::from(d.height);
    if d.width == 0 || d.height == 0 {
        return Err(UploadError::Header {
            kind: d.kind.name(),
            why: format!("it declares an empty picture ({}x{})", d.width, d.height),
        });
    }
    if d.width > MAX_SIDE || d.height > MAX_SIDE || pixels > limits.max_pixels {
        return Err(UploadError::DeclaredTooLarge {
            kind: d.kind.name(),
            width: d.width,
            height: d.height,
            max_side: MAX_SIDE,
            max_pixels: limits.max_pixels,
        });
    }
    Ok(())
}

/// Is `q` inside the polygon `poly` (even-odd rule)?
fn inside_polygon(q: Point, poly: &[Point]) -> bool {
    let mut inside = false;
    let mut j = poly.len() - 1;
    for i in 0..poly.len() {
        let (a, b) = (poly[i], poly[j]);
        if (a.y > q.y) != (b.y > q.y) && q.x < (b.x - a.x) * (q.y - a.y) / (b.y - a.y) + a.x {
            inside = !inside;
        }
        j = i;
    }
    inside
}

/// Inner-lip gap over mouth width above which the photo's mouth counts as open.
pub const OPEN_MOUTH_RATIO: f32 = 0.1;

/// How open the photo's mouth is: the mean gap between the inner lips over the mouth's width.
pub fn mouth_open_ratio(p: &[Point]) -> f32 {
    let gap = [(61, 67), (62, 66), (63, 65)]
        .iter()
        .map(|&(u, l)| (p[l].y - p[u].y).max(0.0))
        .sum::<f32>()
        / 3.0;
    gap / p[48].dist(p[54]).max(1.0)
}

/// Rig poses the mesh must survive without folding: rest, each control at its extremes.
fn test_rigs() -> Vec<Rig> {
    let base = Rig::default();
    vec![
        base,
        Rig {
            jaw_open: 1.0,
            lip_open: 1.0,
            ..base
        },
        Rig {
            jaw_open: 0.5,
            width: 1.0,
            ..base
        },
        Rig {
            width: -1.0,
            press: 1.0,
            ..base
        },
        Rig {
            blink_left: 1.0,
            blink_right: 1.0,
            roll_deg: 2.0,
            yaw_deg: 2.0,
            pitch_deg: 2.0,
            ..base
        },
    ]
}

/// Checks 68 landmarks against a `width`×`height` picture (see the [module docs](self)).
/// Returns the notes for an acceptable face.
pub fn check_landmarks(width: u32, height: u32, p: &[Point]) -> Result<Vec<String>, UploadError> {
    if p.len() != LANDMARKS {
        return Err(UploadError::Count(p.len()));
    }
    for (index, q) in p.iter().enumerate() {
        if !q.x.is_finite() || !q.y.is_finite() {
            return Err(UploadError::NotFinite { index });
        }
        if !(0.0..=width as f32).contains(&q.x) || !(0.0..=height as f32).contains(&q.y) {
            return Err(UploadError::Outside {
                index,
                x: q.x,
                y: q.y,
                width,
                height,
            });
        }
    }
    let (el, er) = (mean_of(p, idx::EYE_L), mean_of(p, idx::EYE_R));
    let eyes = el.dist(er);
    let short = width.min(height) as f32;
    let size = |why| UploadError::FaceSize {
        eyes,
        width,
        height,
        why,
    };
    if eyes < 8.0_f32.max(0.04 * short) {
        return Err(size(
            "the face is too small to animate; crop the photo closer around the face",
        ));
    }
    if eyes > 0.75 * width as f32 {
        return Err(size(
            "the face does not fit in the photo; use a photo with the whole face in it",
        ));
    }
    let implausible = |why: &str| UploadError::Implausible(why.to_string());
    if el.x >= er.x {
        return Err(implausible(
            "the left-hand eye (points 36-41) is not left of the other (points 42-47)",
        ));
    }
    let mouth = mean_of(p, idx::LIPS_OUTER);
    if el.y.max(er.y) >= mouth.y {
        return Err(implausible("the eyes are not above the mouth"));
    }
    if mean_of(p, idx::BROWS).y >= (el.y + er.y) / 2.0 {
        return Err(implausible("the eyebrows are not above the eyes"));
    }
    if p[0].x >= p[16].x {
        return Err(implausible(
            "the jaw outline (points 0-16) does not run from the picture's left to its right",
        ));
    }
    let jaw: Vec<Point> = idx::JAW.map(|i| p[i]).collect();
    if let Some(i) = idx::LIPS_OUTER
        .chain(idx::LIPS_INNER)
        .find(|&i| !inside_polygon(p[i], &jaw))
    {
        return Err(UploadError::Implausible(format!(
            "lip point {i} is outside the jaw outline"
        )));
    }
    let mesh = FaceMesh::new(width, height, p).map_err(|e| match e {
        MeshError::Implausible(why) => implausible(why),
        other => UploadError::Implausible(other.to_string()),
    })?;
    for rig in test_rigs() {
        let q = mesh.quality(&mesh.pose(&rig));
        if q.flipped > 0 {
            return Err(implausible(
                "the face mesh folds over when the mouth moves (points out of order or crossing)",
            ));
        }
    }
    let mut notes = Vec::new();
    let open = mouth_open_ratio(p);
    if open > OPEN_MOUTH_RATIO {
        notes.push(format!(
            "the mouth is open in this photo (lip gap {:.0}% of its width): the avatar closes \
             it in silence by stretching the lips over the photo's teeth, which can look odd; \
             a photo with closed lips looks best",
            open * 100.0
        ));
    }
    Ok(notes)
}

/// Checks an uploaded photo and its landmarks (image pixels, as shown upright) and makes the
/// portrait. See the [module docs](self) for the order of the checks.
pub fn portrait_from_upload(
    bytes: &[u8],
    points: &[Point],
    limits: &UploadLimits,
) -> Result<CheckedUpload, UploadError> {
    if bytes.len() > limits.max_bytes {
        return Err(UploadError::TooLarge {
            bytes: bytes.len(),
            max: limits.max_bytes,
        });
    }
    let declared = probe(bytes)?;
    check_declared(&declared, limits)?;
    // Cheap point checks before the decode; the bounds need the upright size.
    if points.len() != LANDMARKS {
        return Err(UploadError::Count(points.len()));
    }
    if let Some(index) = points
        .iter()
        .position(|q| !q.x.is_finite() || !q.y.is_finite())
    {
        return Err(UploadError::NotFinite { index });
    }
    let mut img = decode::decode_image(bytes).map_err(UploadError::Decode)?;
    check_size(img.width, img.height).map_err(UploadError::Decode)?;
    let notes = check_landmarks(img.width, img.height, points)?;
    let (source_width, source_height) = (img.width, img.height);
    let mut points = points.to_vec();
    decode::flatten_alpha(&mut img.rgba);
    let long = img.width.max(img.height);
    if long > limits.keep_side.max(16) {
        let s = limits.keep_side.max(16) as f64 / long as f64;
        let w = ((img.width as f64 * s).round() as u32).max(1);
        let h = ((img.height as f64 * s).round() as u32).max(1);
        img.rgba = super::render::resample(&img.rgba, img.width, img.height, w, h);
        let (fx, fy) = (w as f32 / img.width as f32, h as f32 / img.height as f32);
        for q in &mut points {
            *q = Point::new((q.x * fx).min(w as f32), (q.y * fy).min(h as f32));
        }
        img.width = w;
        img.height = h;
    }
    let manifest = manifest_from_landmarks(&points);
    let portrait = Portrait::from_rgba(img.width, img.height, img.rgba, manifest)
        .and_then(|p| p.with_landmarks(points))
        .map_err(UploadError::Implausible)?;
    Ok(CheckedUpload {
        portrait,
        kind: declared.kind,
        source_width,
        source_height,
        notes,
    })
}
