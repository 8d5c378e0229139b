//! Renders a few poses of a portrait (image + manifest) side by side into one PNG: mouth closed,
//! the vowels A, E, I, O, U, a half and a full blink.
//!
//! Usage:
//! - `cargo run -p talkstream-avatar --example portrait_snapshot -- IMAGE OUT.png [WIDTHxHEIGHT]
//!   [MANIFEST]` (the manifest defaults to `IMAGE.json`, the output size to 512x512);
//! - `cargo run -p talkstream-avatar --example portrait_snapshot -- --make-standin OUT.png`
//!   writes a stand-in "photo" (the drawn avatar at 512x512) and its manifest `OUT.png.json`.

use std::path::{Path, PathBuf};

use talkstream_avatar::portrait::{default_manifest_path, FeatureBox};
use talkstream_avatar::{
    Avatar, Motion, MouthPose, Portrait, PortraitFace, PortraitManifest, VowelClass,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: portrait_snapshot IMAGE OUT.png [WxH] [MANIFEST] | --make-standin OUT.png";
    if args.first().map(String::as_str) == Some("--make-standin") {
        let out = args.get(1).ok_or(usage)?;
        return make_standin(Path::new(out));
    }
    let image = PathBuf::from(args.first().ok_or(usage)?);
    let out = args.get(1).ok_or(usage)?;
    let (w, h) = match args.get(2) {
        Some(s) => {
            let (a, b) = s.split_once('x').ok_or("size must be WIDTHxHEIGHT")?;
            (a.parse()?, b.parse()?)
        }
        None => (512, 512),
    };
    let manifest = args.get(3).map(PathBuf::from);
    let portrait = Portrait::load(&image, manifest.as_deref())?;
    println!(
        "{}: {}x{}, manifest {}",
        image.display(),
        portrait.width(),
        portrait.height(),
        manifest
            .unwrap_or_else(|| default_manifest_path(&image))
            .display()
    );
    let face = PortraitFace::new(&portrait, w, h, 1)?;
    let open = Motion::STILL;
    let blink = |b: f32| Motion { blink: b, ..open };
    let v = MouthPose::for_vowel;
    let poses = [
        ("closed", open, MouthPose::CLOSED),
        ("A", open, v(VowelClass::A)),
        ("E", open, v(VowelClass::E)),
        ("I", open, v(VowelClass::I)),
        ("O", open, v(VowelClass::O)),
        ("U", open, v(VowelClass::U)),
        ("half blink", blink(0.5), MouthPose::CLOSED),
        ("blink", blink(1.0), MouthPose::CLOSED),
    ];
    let (tw, th) = (w as usize, h as usize);
    let sheet_w = tw * poses.len();
    let mut sheet = vec![0u8; sheet_w * th * 4];
    let mut frame = vec![0u8; face.frame_len()];
    for (i, (name, motion, mouth)) in poses.iter().enumerate() {
        face.render_rgba_with_motion(motion, *mouth, &mut frame)?;
        for y in 0..th {
            let dst = (y * sheet_w + i * tw) * 4;
            sheet[dst..dst + tw * 4].copy_from_slice(&frame[y * tw * 4..(y + 1) * tw * 4]);
        }
        println!("tile {i}: {name}");
    }
    write_png(Path::new(out), sheet_w as u32, h, &sheet)?;
    println!("wrote {out}");
    Ok(())
}

/// The drawn avatar at rest as a 512x512 "photo", with a manifest for its features.
fn make_standin(out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let mut avatar = Avatar::new(512, 512, 1)?;
    let mut frame = vec![0u8; avatar.frame_len()];
    avatar.render_rgba_with_motion(&Motion::STILL, MouthPose::CLOSED, &mut frame)?;
    write_png(out, 512, 512, &frame)?;
    // The drawn face's design coordinates (a 512 design square, so 1:1 at this size).
    let manifest = PortraitManifest {
        mouth: FeatureBox::new(256.0, 304.0, 60.0, 16.0),
        left_eye: FeatureBox::new(211.0, 227.0, 44.0, 18.0),
        right_eye: FeatureBox::new(301.0, 227.0, 44.0, 18.0),
    };
    let mpath = default_manifest_path(out);
    std::fs::write(&mpath, manifest.to_json())?;
    println!("wrote {} and {}", out.display(), mpath.display());
    Ok(())
}

fn write_png(path: &Path, w: u32, h: u32, rgba: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut enc = png::Encoder::new(file, w, h);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header()?;
    writer.write_image_data(rgba)?;
    writer.finish()?;
    Ok(())
}
