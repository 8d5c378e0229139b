//! The landmarks file of a portrait: the 68 face landmarks (iBUG 300-W order, as face-api and
//! dlib give them) in the image's own pixels, next to the image as `<image>.landmarks.json`:
//!
//! ```json
//! { "points": [[x0, y0], [x1, y1], …, [x67, y67]] }
//! ```
//!
//! With it the portrait is animated by the landmark mesh ([`crate::mesh`]); the manifest of
//! boxes becomes optional (it is derived from the landmarks when missing).

use std::path::{Path, PathBuf};

use super::{FeatureBox, PortraitManifest};
use crate::mesh::{idx, Point, LANDMARKS};

/// The landmarks path for an image: `photos/me.png` → `photos/me.png.landmarks.json`.
pub fn default_landmarks_path(image_path: &Path) -> PathBuf {
    let mut s = image_path.as_os_str().to_os_string();
    s.push(".landmarks.json");
    PathBuf::from(s)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LandmarksFile {
    points: Vec<[f32; 2]>,
}

/// Parse a landmarks file (count and numbers checked; geometry is checked against the image by
/// [`super::Portrait::with_landmarks`]).
pub fn parse_landmarks(json: &str) -> Result<Vec<Point>, String> {
    let file: LandmarksFile = serde_json::from_str(json).map_err(|e| {
        format!("{e}; expected {{\"points\": [[x, y], …]}} with {LANDMARKS} points")
    })?;
    if file.points.len() != LANDMARKS {
        return Err(format!(
            "{} points; a face needs {LANDMARKS} (the iBUG 300-W layout)",
            file.points.len()
        ));
    }
    Ok(file.points.iter().map(|&[x, y]| Point::new(x, y)).collect())
}

/// Boxes around the lips and the eyes, for the parts of talkstream that work from boxes.
pub fn manifest_from_landmarks(p: &[Point]) -> PortraitManifest {
    let bbox = |range: std::ops::RangeInclusive<usize>, min: f32| {
        let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
        for i in range {
            x0 = x0.min(p[i].x);
            y0 = y0.min(p[i].y);
            x1 = x1.max(p[i].x);
            y1 = y1.max(p[i].y);
        }
        FeatureBox {
            x: (x0 + x1) / 2.0,
            y: (y0 + y1) / 2.0,
            width: (x1 - x0).max(min),
            height: (y1 - y0).max(min),
        }
    };
    PortraitManifest {
        mouth: bbox(idx::LIPS_OUTER, 2.0),
        left_eye: bbox(idx::EYE_L, 2.0),
        right_eye: bbox(idx::EYE_R, 2.0),
    }
}
