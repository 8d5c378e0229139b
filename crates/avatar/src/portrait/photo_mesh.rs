//! The landmark-mesh path of a [`super::PortraitFace`]: the photo's mesh in output pixels with
//! the colours of its mouth's inside and of its lids, and one frame of it from a mouth pose and
//! the idle motion: the rig, the warp (eyes left open), the inside of the mouth under the inner
//! lips, the lids over the eyes during a blink.
//!
//! A photo whose mouth is open (the inner lips apart, [`super::upload::mouth_open_ratio`]) gets
//! a closed rest pose made for it: in silence the lips are pressed together over the photo's
//! teeth, and as the jaw opens they part again onto the photo's own teeth and mouth, which are
//! shown instead of a drawn inside.

use super::upload::{mouth_open_ratio, OPEN_MOUTH_RATIO};
use crate::mesh::{
    draw_interior, draw_lids, sample_colours, sample_lid_colours, FaceMesh, InteriorColours,
    LidColours, Point, RgbaRef, Rig,
};
use crate::motion::smoothstep;
use crate::{Motion, MouthPose};

/// Jaw opening by which an open-mouthed photo's lips have parted fully again.
const OPEN_PHOTO_PARTED: f32 = 0.35;

/// A portrait's landmark mesh in output pixels, with its mouth and lid colours.
pub(super) struct PhotoMesh {
    mesh: FaceMesh,
    colours: InteriorColours,
    lids: [LidColours; 2],
    /// The photo's own mouth is open: its lips are closed in silence and its inside is kept.
    open_photo: bool,
}

impl PhotoMesh {
    /// The mesh of `base` (RGBA, `width`×`height`, the photo as placed in the frame) with the
    /// 68 landmarks `pts` in the same pixels; `None` when they do not make a face the mesh can
    /// hold (too small at this size): the caller falls back to the box warp.
    pub fn new(width: u32, height: u32, base: &[u8], pts: &[Point]) -> Option<PhotoMesh> {
        let mesh = FaceMesh::new(width, height, pts).ok()?;
        Some(PhotoMesh {
            mesh,
            colours: sample_colours(base, width, height, pts),
            lids: sample_lid_colours(base, width, height, pts),
            open_photo: mouth_open_ratio(pts) > OPEN_MOUTH_RATIO,
        })
    }

    /// The rig for a mouth pose and the idle motion.
    fn rig(&self, motion: &Motion, pose: MouthPose) -> Rig {
        let scale = self.mesh.scale();
        let finite = |v: f32| if v.is_finite() { v } else { 0.0 };
        // Head offsets (output px) as the small turn/nod of a head ~1.5 eye distances deep.
        let angle = |px: f32| {
            (finite(px) / (1.5 * scale))
                .clamp(-1.0, 1.0)
                .asin()
                .to_degrees()
        };
        let pose = pose.clamped();
        // An open-mouthed photo: pressed shut in silence, parting as the jaw opens.
        let closed_rest = if self.open_photo {
            1.0 - smoothstep(pose.open / OPEN_PHOTO_PARTED)
        } else {
            0.0
        };
        Rig {
            jaw_open: pose.open,
            lip_open: pose.open * 0.6,
            width: pose.wide - pose.round,
            press: pose.press.max(closed_rest),
            // Spread lips ("ee") and a tucked lower lip (f, v) show the upper teeth.
            upper_lip: 0.6 * pose.bite + 0.3 * pose.wide * (pose.open / 0.3).min(1.0),
            lower_lip: pose.bite,
            tongue: pose.tongue,
            blink_left: finite(motion.blink),
            blink_right: finite(motion.blink),
            roll_deg: finite(motion.tilt_rad).to_degrees(),
            yaw_deg: angle(motion.head_dx),
            pitch_deg: angle(motion.head_dy),
        }
    }

    /// One frame into `out` (RGBA, the size of `base`).
    pub fn render(&self, base: &[u8], motion: &Motion, pose: MouthPose, out: &mut [u8]) {
        let (width, height) = (self.mesh.width(), self.mesh.height());
        let scale = self.mesh.scale();
        let rig = self.rig(motion, pose);
        let src = RgbaRef {
            width,
            height,
            data: base,
        };
        // The warp keeps the eyes open; the lids are drawn over them (see mesh::lids).
        let posed = self.mesh.pose(&Rig {
            blink_left: 0.0,
            blink_right: 0.0,
            ..rig
        });
        // Sizes were checked by the caller; a mismatch leaves the frame as it was.
        if self.mesh.render_posed(src, &posed, out).is_err() {
            return;
        }
        if !self.open_photo && (rig.jaw_open > 0.0 || rig.upper_lip > 0.0) {
            draw_interior(out, width, height, &posed, scale, &rig, &self.colours);
        }
        if rig.blink_left > 0.0 || rig.blink_right > 0.0 {
            draw_lids(out, width, height, &posed, scale, &rig, &self.lids);
        }
    }
}
