//! The built-in drawn avatar of talkstream: a friendly vector face with idle motion (blinks,
//! breathing, head sway, gaze drift) and a mouth driven from outside, rendered to RGBA frames.
//! [`LipSync`] drives the mouth from the speech audio itself (plus optional TTS timing hints),
//! and [`analysis`] measures lip-sync objectively (loudness per frame, mouth opening from
//! pixels, correlation and lag).
//!
//! Instead of the drawn face, a user's own photo can be animated: [`Portrait`] (a decoded PNG or
//! JPEG plus a manifest of where the mouth and the eyes are) rendered by [`PortraitFace`], and
//! [`Face`] holds either kind behind one frame API (see [`portrait`] for the manifest format).
//!
//! The crate is sans-I/O: it never reads a clock, and the one function that reads files,
//! [`Portrait::load`], is a thin wrapper over [`Portrait::from_encoded`], which takes bytes.
//! Media time is passed in as milliseconds, and the same seed, time and mouth pose always give
//! the same pixels.
//!
//! ```
//! use talkstream_avatar::{Avatar, MouthPose, VowelClass};
//!
//! let mut avatar = Avatar::new(256, 256, 7).unwrap();
//! let mut frame = vec![0u8; 256 * 256 * 4];
//! avatar.render_rgba(40, MouthPose::CLOSED, &mut frame).unwrap();
//! avatar.render_rgba(80, MouthPose::for_vowel(VowelClass::A), &mut frame).unwrap();
//! assert!(frame.chunks_exact(4).all(|px| px[3] == 255));
//! ```

pub mod analysis;
mod face;
mod layers;
pub mod lipsync;
pub mod mesh;
mod motion;
mod mouth;
pub mod portrait;
pub mod viseme;

use tiny_skia::PixmapMut;

pub use analysis::measure_mouth_opening;
pub use lipsync::LipSync;
pub use motion::{BlinkEvent, Motion};
pub use mouth::{MouthPose, VowelClass};
pub use portrait::{Portrait, PortraitError, PortraitFace, PortraitManifest};
pub use viseme::Viseme;

use face::{Layout, Painter};
use layers::Layers;
use motion::IdleMotion;

/// Largest accepted width or height, in pixels.
pub const MAX_SIDE: u32 = 4096;

/// Errors of the avatar.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AvatarError {
    /// Width or height is zero, odd or larger than [`MAX_SIDE`].
    #[error("invalid avatar size {width}x{height}: sides must be even and in 2..={MAX_SIDE}")]
    InvalidSize {
        /// Requested width.
        width: u32,
        /// Requested height.
        height: u32,
    },
    /// The output buffer does not hold exactly width * height * 4 bytes.
    #[error("frame buffer has {actual} bytes, expected {expected}")]
    BufferSize {
        /// Bytes needed.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
    /// The drawing surface could not be created (should not happen for valid sizes).
    #[error("could not create a {width}x{height} drawing surface")]
    Surface {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
}

/// A drawn avatar of a fixed output size: owns the cached background, the reusable drawing state
/// and the idle-motion schedule of its seed.
pub struct Avatar {
    layout: Layout,
    /// Pre-rendered background, body and head.
    layers: Layers,
    painter: Painter,
    idle: IdleMotion,
}

impl std::fmt::Debug for Avatar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Avatar")
            .field("width", &self.layout.width)
            .field("height", &self.layout.height)
            .finish_non_exhaustive()
    }
}

impl Avatar {
    /// An avatar rendering `width` x `height` frames (both even, 2..=4096, any aspect ratio: the
    /// face is fitted into the smaller side and centred). `seed` picks the idle motion.
    pub fn new(width: u32, height: u32, seed: u64) -> Result<Self, AvatarError> {
        let ok = |v: u32| v > 0 && v.is_multiple_of(2) && v <= MAX_SIDE;
        if !ok(width) || !ok(height) {
            return Err(AvatarError::InvalidSize { width, height });
        }
        let surface = AvatarError::Surface { width, height };
        let layout = Layout::new(width, height);
        let layers = Layers::new(&layout).ok_or(surface.clone())?;
        let painter = Painter::new(&layout).ok_or(surface)?;
        Ok(Avatar {
            layout,
            layers,
            painter,
            idle: IdleMotion::new(seed),
        })
    }

    /// Output width in pixels.
    pub fn width(&self) -> u32 {
        self.layout.width
    }

    /// Output height in pixels.
    pub fn height(&self) -> u32 {
        self.layout.height
    }

    /// Bytes of one frame: width * height * 4.
    pub fn frame_len(&self) -> usize {
        frame_len(self.layout.width, self.layout.height)
    }

    /// The idle pose at media time `t_ms` (offsets in output pixels).
    pub fn motion_at(&mut self, t_ms: u64) -> Motion {
        let mut m = self.idle.at(t_ms);
        m.head_dx *= self.layout.scale;
        m.head_dy *= self.layout.scale;
        m
    }

    /// Blink events (the start of each blink or double blink) that start in `from_ms..to_ms`.
    pub fn blink_events(&self, from_ms: u64, to_ms: u64) -> Vec<BlinkEvent> {
        self.idle.blink_events(from_ms, to_ms).collect()
    }

    /// Render the frame at media time t_ms with the given mouth pose into `out`: straight-alpha
    /// RGBA8, width*height*4 bytes, alpha 255 everywhere. Error if out has the wrong length.
    pub fn render_rgba(
        &mut self,
        t_ms: u64,
        mouth: MouthPose,
        out: &mut [u8],
    ) -> Result<(), AvatarError> {
        let motion = self.motion_at(t_ms);
        self.render_rgba_with_motion(&motion, mouth, out)
    }

    /// Like [`Avatar::render_rgba`] with an explicit pose instead of the idle motion (for
    /// example to hold the eyes open, or to drive the head from elsewhere).
    pub fn render_rgba_with_motion(
        &mut self,
        motion: &Motion,
        mouth: MouthPose,
        out: &mut [u8],
    ) -> Result<(), AvatarError> {
        let expected = self.frame_len();
        if out.len() != expected {
            return Err(AvatarError::BufferSize {
                expected,
                actual: out.len(),
            });
        }
        let motion = sanitize(motion);
        self.layers.compose(out, &self.layout, &motion);
        let (w, h) = (self.layout.width, self.layout.height);
        let mut pm = PixmapMut::from_bytes(out, w, h).ok_or(AvatarError::Surface {
            width: w,
            height: h,
        })?;
        self.painter.draw(&mut pm, &self.layout, &motion, mouth);
        // Everything is drawn over an opaque background with source-over, so alpha stays 255
        // and the premultiplied pixels already are straight alpha.
        Ok(())
    }

    /// Pixel rectangle (x, y, w, h) that contains the mouth at time t_ms for any pose.
    pub fn mouth_region(&mut self, t_ms: u64) -> (u32, u32, u32, u32) {
        let m = self.motion_at(t_ms);
        self.region(face::mouth_bounds(), &m)
    }

    /// Pixel rectangle (x, y, w, h) that contains both eyes (openings and lids, not the brows)
    /// at time t_ms.
    pub fn eyes_region(&mut self, t_ms: u64) -> (u32, u32, u32, u32) {
        let m = self.motion_at(t_ms);
        self.region(face::eyes_bounds(), &m)
    }

    /// [`Avatar::mouth_region`] for an explicit pose (as given to
    /// [`Avatar::render_rgba_with_motion`]).
    pub fn mouth_region_with_motion(&self, motion: &Motion) -> (u32, u32, u32, u32) {
        self.region(face::mouth_bounds(), &sanitize(motion))
    }

    /// [`Avatar::eyes_region`] for an explicit pose.
    pub fn eyes_region_with_motion(&self, motion: &Motion) -> (u32, u32, u32, u32) {
        self.region(face::eyes_bounds(), &sanitize(motion))
    }

    fn region(&self, r: Option<tiny_skia::Rect>, m: &Motion) -> (u32, u32, u32, u32) {
        match r {
            Some(r) => {
                let ts = self.layout.head(m);
                self.layout.pixel_rect(ts, r, 1.0)
            }
            None => (0, 0, self.layout.width, self.layout.height),
        }
    }
}

/// The face a stream shows: the built-in drawn avatar (the default) or the user's own portrait.
/// Both render the same frames API, so a caller holds a `Face` and does not care which.
///
/// ```
/// use talkstream_avatar::{Face, MouthPose};
///
/// let mut face = Face::new(128, 96, 3, None).unwrap(); // no portrait: the drawn avatar
/// let mut frame = vec![0u8; face.frame_len()];
/// face.render_rgba(40, MouthPose::CLOSED, &mut frame).unwrap();
/// ```
#[derive(Debug)]
pub enum Face {
    /// The built-in drawn avatar.
    Drawn(Avatar),
    /// A user's photo, animated.
    Portrait(PortraitFace),
}

impl Face {
    /// The portrait's face if `portrait` is given, else the drawn avatar; `width` x `height`
    /// output (both even, 2..=4096), `seed` picks the idle motion / blink schedule.
    pub fn new(
        width: u32,
        height: u32,
        seed: u64,
        portrait: Option<&Portrait>,
    ) -> Result<Self, AvatarError> {
        Ok(match portrait {
            Some(p) => Face::Portrait(PortraitFace::new(p, width, height, seed)?),
            None => Face::Drawn(Avatar::new(width, height, seed)?),
        })
    }

    /// Output width in pixels.
    pub fn width(&self) -> u32 {
        match self {
            Face::Drawn(a) => a.width(),
            Face::Portrait(p) => p.width(),
        }
    }

    /// Output height in pixels.
    pub fn height(&self) -> u32 {
        match self {
            Face::Drawn(a) => a.height(),
            Face::Portrait(p) => p.height(),
        }
    }

    /// Bytes of one frame: width * height * 4.
    pub fn frame_len(&self) -> usize {
        frame_len(self.width(), self.height())
    }

    /// The idle pose at media time `t_ms` (a portrait only blinks).
    pub fn motion_at(&mut self, t_ms: u64) -> Motion {
        match self {
            Face::Drawn(a) => a.motion_at(t_ms),
            Face::Portrait(p) => p.motion_at(t_ms),
        }
    }

    /// Blink events that start in `from_ms..to_ms`.
    pub fn blink_events(&self, from_ms: u64, to_ms: u64) -> Vec<BlinkEvent> {
        match self {
            Face::Drawn(a) => a.blink_events(from_ms, to_ms),
            Face::Portrait(p) => p.blink_events(from_ms, to_ms),
        }
    }

    /// Render the frame at media time `t_ms` with the given mouth pose into `out` (RGBA8,
    /// width*height*4 bytes, alpha 255).
    pub fn render_rgba(
        &mut self,
        t_ms: u64,
        mouth: MouthPose,
        out: &mut [u8],
    ) -> Result<(), AvatarError> {
        match self {
            Face::Drawn(a) => a.render_rgba(t_ms, mouth, out),
            Face::Portrait(p) => p.render_rgba(t_ms, mouth, out),
        }
    }

    /// Render with an explicit pose instead of the idle motion (a portrait uses only `blink`).
    pub fn render_rgba_with_motion(
        &mut self,
        motion: &Motion,
        mouth: MouthPose,
        out: &mut [u8],
    ) -> Result<(), AvatarError> {
        match self {
            Face::Drawn(a) => a.render_rgba_with_motion(motion, mouth, out),
            Face::Portrait(p) => p.render_rgba_with_motion(motion, mouth, out),
        }
    }

    /// Pixel rectangle (x, y, w, h) that contains the mouth at time `t_ms` for any pose.
    pub fn mouth_region(&mut self, t_ms: u64) -> (u32, u32, u32, u32) {
        match self {
            Face::Drawn(a) => a.mouth_region(t_ms),
            Face::Portrait(p) => p.mouth_region(),
        }
    }

    /// Pixel rectangle (x, y, w, h) that contains both eyes at time `t_ms`.
    pub fn eyes_region(&mut self, t_ms: u64) -> (u32, u32, u32, u32) {
        match self {
            Face::Drawn(a) => a.eyes_region(t_ms),
            Face::Portrait(p) => p.eyes_region(),
        }
    }
}

fn frame_len(width: u32, height: u32) -> usize {
    width as usize * height as usize * 4
}

/// Replaces non-finite motion values so a bad caller value cannot break drawing.
fn sanitize(m: &Motion) -> Motion {
    let f = |v: f32| if v.is_finite() { v } else { 0.0 };
    Motion {
        blink: f(m.blink).clamp(0.0, 1.0),
        head_dx: f(m.head_dx),
        head_dy: f(m.head_dy),
        tilt_rad: f(m.tilt_rad).clamp(-0.5, 0.5),
        breath: f(m.breath).clamp(-1.0, 1.0),
        gaze_x: f(m.gaze_x).clamp(-1.0, 1.0),
        gaze_y: f(m.gaze_y).clamp(-1.0, 1.0),
    }
}
