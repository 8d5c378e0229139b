//! The picture in `docs/photo-avatar.jpg`: one photo (with its `<image>.landmarks.json`) shown
//! as it is, then speaking an open "ah" with the old box warp (no landmarks: the mouth region
//! pushed apart over a drawn ellipse), then with the landmark mesh: "ah", "oo", "f" (lower lip
//! on the teeth), "m" (lips pressed) and a blink. Writes a binary PPM; turn it into a JPEG with
//! ffmpeg:
//!
//! ```sh
//! cargo run --release -p talkstream-avatar --example portrait_side_by_side -- \
//!     crates/avatar/tests/fixtures/photos/sample3_x464_y237.jpg /tmp/side.ppm
//! ffmpeg -y -i /tmp/side.ppm -q:v 3 docs/photo-avatar.jpg
//! ```

use std::path::PathBuf;

use talkstream_avatar::portrait::landmarks::manifest_from_landmarks;
use talkstream_avatar::{Motion, MouthPose, Portrait, PortraitFace, Viseme};

/// Side of each panel, px, unless a third argument gives it.
const SIDE: u32 = 320;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(image), Some(out)) = (args.next(), args.next()) else {
        return Err(
            "usage: portrait_side_by_side <image with landmarks> <out.ppm> [panel side px]".into(),
        );
    };
    let side: u32 = match args.next() {
        Some(s) => s.parse()?,
        None => SIDE,
    };
    let photo = Portrait::load(&PathBuf::from(&image), None)?;
    let points = photo
        .landmarks()
        .ok_or("the image has no landmarks file next to it")?
        .to_vec();
    let boxes = Portrait::from_rgba(
        photo.width(),
        photo.height(),
        photo.rgba().to_vec(),
        manifest_from_landmarks(&points),
    )?;
    let old = PortraitFace::new(&boxes, side, side, 1)?;
    let new = PortraitFace::new(&photo, side, side, 1)?;
    let still = Motion::default();
    let blink = Motion {
        blink: 1.0,
        ..Motion::default()
    };
    let ah = Viseme::Aa.pose();
    let f = MouthPose::lerp(MouthPose::new(0.35, 0.2, 0.0), Viseme::Ff.pose(), 0.8);
    let panels: Vec<(&PortraitFace, &Motion, MouthPose)> = vec![
        (&new, &still, MouthPose::CLOSED),
        (&old, &still, ah),
        (&new, &still, ah),
        (&new, &still, Viseme::Ou.pose()),
        (&new, &still, f),
        (&new, &still, Viseme::Pp.pose()),
        (&new, &blink, MouthPose::CLOSED),
    ];
    let n = panels.len() as u32;
    let (w, h) = (side * n, side);
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    let mut frame = vec![0u8; (side * side * 4) as usize];
    for (k, (face, motion, pose)) in panels.into_iter().enumerate() {
        face.render_rgba_with_motion(motion, pose, &mut frame)?;
        for y in 0..side {
            for x in 0..side {
                let s = ((y * side + x) * 4) as usize;
                let d = ((y * w + k as u32 * side + x) * 3) as usize;
                rgb[d..d + 3].copy_from_slice(&frame[s..s + 3]);
            }
        }
    }
    let mut ppm = format!("P6\n{w} {h}\n255\n").into_bytes();
    ppm.extend_from_slice(&rgb);
    std::fs::write(&out, ppm)?;
    println!(
        "wrote {out}: photo | old box warp \"ah\" | mesh \"ah\" | \"oo\" | \"f\" | \"m\" | blink"
    );
    Ok(())
}
