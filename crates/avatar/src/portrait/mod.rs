//! A user's own portrait as the face: a PNG or JPEG photo plus a small JSON manifest that says
//! where the mouth and the eyes are. [`PortraitFace`] animates it by warping the mouth region
//! (the jaw drops, the lips part over a drawn mouth interior) and by drawing eyelids on the
//! drawn avatar's blink schedule. With a landmarks file ([`landmarks`]) the whole photo is
//! animated by the landmark mesh instead ([`crate::mesh`]).
//!
//! # Files
//!
//! The image is `AVATAR_REF_IMAGE` (PNG or JPEG, at most [`MAX_SIDE`](crate::MAX_SIDE) pixels
//! a side; the format is recognised from the file's first bytes, not its name). Its manifest is
//! by default the image path with `.json` appended (`me.png` → `me.png.json`, see
//! [`default_manifest_path`]).
//!
//! # Manifest
//!
//! ```json
//! {
//!   "mouth":     { "x": 256, "y": 372, "width": 96, "height": 30 },
//!   "left_eye":  { "x": 211, "y": 228, "width": 52, "height": 24 },
//!   "right_eye": { "x": 301, "y": 228, "width": 52, "height": 24 }
//! }
//! ```
//!
//! All values are in the image's own pixels (x to the right, y down, origin at the top-left
//! corner of the image), numbers may be fractional. `x`/`y` is the *centre* of a box and
//! `width`/`height` its full size:
//! - `mouth`: the closed lips, corner to corner and top of the upper lip to bottom of the lower
//!   lip. Its centre line is where the lips part.
//! - `left_eye` / `right_eye`: the visible eye opening (white and iris, lid edge to lid edge) of
//!   the eye on the left / right side *of the picture*.
//!
//! Every box must lie entirely inside the image and be at least 2 pixels wide and high; unknown
//! keys are rejected (to catch typos).
//!
//! # Uploads
//!
//! A photo sent by a page with its 68 landmarks is checked by [`upload::portrait_from_upload`]
//! (declared size before decoding, plausible geometry, an open-mouth note).
//!
//! # Pixels and I/O
//!
//! [`Portrait::load`] is the only function of the crate that touches the file system; everything
//! else takes bytes or decoded pixels ([`Portrait::from_encoded`], [`Portrait::from_rgba`]).

mod decode;
pub mod landmarks;
mod photo_mesh;
mod render;
pub mod upload;

use std::path::{Path, PathBuf};

pub use render::PortraitFace;

/// A box in image pixels: its centre and its full size.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureBox {
    /// Horizontal centre.
    pub x: f32,
    /// Vertical centre.
    pub y: f32,
    /// Full width.
    pub width: f32,
    /// Full height.
    pub height: f32,
}

impl FeatureBox {
    /// A box from its centre and size.
    pub const fn new(x: f32, y: f32, width: f32, height: f32) -> Self {
        FeatureBox {
            x,
            y,
            width,
            height,
        }
    }

    fn left(&self) -> f32 {
        self.x - self.width / 2.0
    }

    fn top(&self) -> f32 {
        self.y - self.height / 2.0
    }

    fn right(&self) -> f32 {
        self.x + self.width / 2.0
    }

    fn bottom(&self) -> f32 {
        self.y + self.height / 2.0
    }
}

/// Where the features are in the portrait image (see the [module docs](self) for the format).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortraitManifest {
    /// The closed lips.
    pub mouth: FeatureBox,
    /// The eye opening on the left side of the picture.
    pub left_eye: FeatureBox,
    /// The eye opening on the right side of the picture.
    pub right_eye: FeatureBox,
}

impl PortraitManifest {
    /// Parses manifest JSON (not yet checked against an image size).
    pub fn parse(json: &str) -> Result<Self, String> {
        serde_json::from_str(json).map_err(|e| format!("{e}; {MANIFEST_HINT}"))
    }

    /// The manifest as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        // Serialising plain numbers cannot fail; fall back to the compact debug form anyway.
        serde_json::to_string_pretty(self).unwrap_or_else(|_| format!("{self:?}"))
    }

    /// Checks that every box is finite, at least 2 x 2 pixels and inside a `width` x `height`
    /// image. The message names the offending box.
    pub fn validate(&self, width: u32, height: u32) -> Result<(), String> {
        let (w, h) = (width as f32, height as f32);
        for (name, b) in [
            ("mouth", &self.mouth),
            ("left_eye", &self.left_eye),
            ("right_eye", &self.right_eye),
        ] {
            let vals = [b.x, b.y, b.width, b.height];
            if vals.iter().any(|v| !v.is_finite()) {
                return Err(format!("\"{name}\": values must be finite numbers"));
            }
            if b.width < 2.0 || b.height < 2.0 {
                return Err(format!(
                    "\"{name}\": width and height must be at least 2 pixels (got {} x {})",
                    b.width, b.height
                ));
            }
            if b.left() < 0.0 || b.top() < 0.0 || b.right() > w || b.bottom() > h {
                return Err(format!(
                    "\"{name}\": the box x {}..{}, y {}..{} (centre {}, {} size {} x {}) is not \
                     inside the {width}x{height} image",
                    b.left(),
                    b.right(),
                    b.top(),
                    b.bottom(),
                    b.x,
                    b.y,
                    b.width,
                    b.height
                ));
            }
        }
        if self.left_eye.x >= self.right_eye.x {
            return Err(format!(
                "\"left_eye\" (x {}) must be left of \"right_eye\" (x {}): they are the eyes on \
                 the left and right side of the picture",
                self.left_eye.x, self.right_eye.x
            ));
        }
        Ok(())
    }
}

const MANIFEST_HINT: &str = "expected {\"mouth\": {\"x\", \"y\", \"width\", \"height\"}, \
     \"left_eye\": {...}, \"right_eye\": {...}} in image pixels (centre and size of each box)";

/// Why a portrait could not be loaded. Every message names the file.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum PortraitError {
    /// A file could not be read (missing, not readable, too large to be an image).
    #[error("cannot read portrait {what} {path}: {why}")]
    Read {
        /// "image" or "manifest".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        why: String,
    },
    /// The image is not a usable PNG or JPEG.
    #[error("portrait image {path}: {why}")]
    Image {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// The manifest is not valid or does not fit the image.
    #[error("portrait manifest {path}: {why}")]
    Manifest {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

/// Largest image file that [`Portrait::load`] reads, in bytes.
pub const MAX_IMAGE_FILE_BYTES: u64 = 64 << 20;
/// Largest manifest file that [`Portrait::load`] reads, in bytes.
pub const MAX_MANIFEST_FILE_BYTES: u64 = 64 << 10;

/// The manifest path used when none is given: the image path with `.json` appended
/// (`photos/me.png` → `photos/me.png.json`).
pub fn default_manifest_path(image_path: &Path) -> PathBuf {
    let mut s = image_path.as_os_str().to_os_string();
    s.push(".json");
    PathBuf::from(s)
}

/// A decoded portrait: opaque RGBA8 pixels (transparent pixels are flattened onto a neutral
/// grey) and the positions of its features.
#[derive(Clone, PartialEq)]
pub struct Portrait {
    width: u32,
    height: u32,
    rgba: Vec<u8>,
    manifest: PortraitManifest,
    /// The 68 face landmarks, when the portrait has a landmarks file: then the landmark mesh
    /// animates it.
    landmarks: Option<Vec<crate::mesh::Point>>,
}

impl std::fmt::Debug for Portrait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Portrait")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("manifest", &self.manifest)
            .finish_non_exhaustive()
    }
}

impl Portrait {
    /// Reads and decodes the image at `image_path` (PNG or JPEG) and its manifest at
    /// `manifest_path`, or at [`default_manifest_path`] when `None`. The only I/O of the crate.
    pub fn load(image_path: &Path, manifest_path: Option<&Path>) -> Result<Self, PortraitError> {
        let manifest_path = match manifest_path {
            Some(p) => p.to_path_buf(),
            None => default_manifest_path(image_path),
        };
        let image = read_limited(image_path, MAX_IMAGE_FILE_BYTES, "image")?;
        let landmarks_path = landmarks::default_landmarks_path(image_path);
        let points = if landmarks_path.exists() {
            let text = read_limited(&landmarks_path, MAX_MANIFEST_FILE_BYTES, "landmarks")?;
            let text = String::from_utf8(text).map_err(|_| PortraitError::Manifest {
                path: landmarks_path.clone(),
                why: "not UTF-8 text".into(),
            })?;
            let points =
                landmarks::parse_landmarks(&text).map_err(|why| PortraitError::Manifest {
                    path: landmarks_path.clone(),
                    why,
                })?;
            Some(points)
        } else {
            None
        };
        let manifest = match &points {
            // With landmarks the boxes come from them unless a manifest is there too.
            Some(points) if !manifest_path.exists() => {
                landmarks::manifest_from_landmarks(points).to_json()
            }
            _ => {
                let bytes = read_limited(&manifest_path, MAX_MANIFEST_FILE_BYTES, "manifest")?;
                String::from_utf8(bytes).map_err(|_| PortraitError::Manifest {
                    path: manifest_path.clone(),
                    why: "not UTF-8 text".into(),
                })?
            }
        };
        let portrait = Portrait::from_encoded(&image, &manifest, image_path, &manifest_path)?;
        match points {
            Some(points) => {
                portrait
                    .with_landmarks(points)
                    .map_err(|why| PortraitError::Manifest {
                        path: landmarks_path,
                        why,
                    })
            }
            None => Ok(portrait),
        }
    }

    /// Decodes an encoded image (PNG or JPEG, recognised by its first bytes) and parses its
    /// manifest JSON. The paths are only used in error messages.
    pub fn from_encoded(
        image: &[u8],
        manifest_json: &str,
        image_path: &Path,
        manifest_path: &Path,
    ) -> Result<Self, PortraitError> {
        let decoded = decode::decode_image(image).map_err(|why| PortraitError::Image {
            path: image_path.to_path_buf(),
            why,
        })?;
        let manifest =
            PortraitManifest::parse(manifest_json).map_err(|why| PortraitError::Manifest {
                path: manifest_path.to_path_buf(),
                why,
            })?;
        Portrait::from_rgba(decoded.width, decoded.height, decoded.rgba, manifest).map_err(|why| {
            PortraitError::Manifest {
                path: manifest_path.to_path_buf(),
                why,
            }
        })
    }

    /// A portrait from straight-alpha RGBA8 pixels (`width * height * 4` bytes, sides
    /// 1..=[`MAX_SIDE`](crate::MAX_SIDE)). Transparent pixels are flattened onto grey. The error
    /// says what is wrong (size or manifest).
    pub fn from_rgba(
        width: u32,
        height: u32,
        mut rgba: Vec<u8>,
        manifest: PortraitManifest,
    ) -> Result<Self, String> {
        decode::check_size(width, height)?;
        let expected = width as usize * height as usize * 4;
        if rgba.len() != expected {
            return Err(format!(
                "pixel buffer has {} bytes, expected {expected} for {width}x{height} RGBA",
                rgba.len()
            ));
        }
        manifest.validate(width, height)?;
        decode::flatten_alpha(&mut rgba);
        Ok(Portrait {
            width,
            height,
            rgba,
            manifest,
            landmarks: None,
        })
    }

    /// Image width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Image height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The decoded pixels: opaque RGBA8, `width * height * 4` bytes.
    pub fn rgba(&self) -> &[u8] {
        &self.rgba
    }

    /// The feature positions.
    pub fn manifest(&self) -> &PortraitManifest {
        &self.manifest
    }

    /// The 68 face landmarks (image pixels), if the portrait has them.
    pub fn landmarks(&self) -> Option<&[crate::mesh::Point]> {
        self.landmarks.as_deref()
    }

    /// The same portrait animated by the landmark mesh: the landmarks must make a plausible
    /// upright face inside the image (the message says what is wrong).
    pub fn with_landmarks(mut self, points: Vec<crate::mesh::Point>) -> Result<Self, String> {
        crate::mesh::FaceMesh::new(self.width, self.height, &points).map_err(|e| e.to_string())?;
        self.landmarks = Some(points);
        Ok(self)
    }
}

/// Reads a whole file of at most `limit` bytes.
fn read_limited(path: &Path, limit: u64, what: &'static str) -> Result<Vec<u8>, PortraitError> {
    use std::io::Read;
    let err = |why: String| PortraitError::Read {
        what,
        path: path.to_path_buf(),
        why,
    };
    let file = std::fs::File::open(path).map_err(|e| {
        if what == "manifest" && e.kind() == std::io::ErrorKind::NotFound {
            err(format!(
                "{e}; the portrait needs a JSON manifest there: {MANIFEST_HINT}"
            ))
        } else {
            err(e.to_string())
        }
    })?;
    let mut data = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut data)
        .map_err(|e| err(e.to_string()))?;
    if data.len() as u64 > limit {
        return Err(err(format!("larger than {limit} bytes")));
    }
    Ok(data)
}
