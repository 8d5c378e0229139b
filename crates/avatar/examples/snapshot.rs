//! Writes a PNG with a few poses of the avatar side by side: mouth closed, open "A", "O", "E"
//! and a mid-blink. Usage: `cargo run -p talkstream-avatar --example snapshot -- OUT.png [SIZE]`.

use talkstream_avatar::{Avatar, MouthPose, VowelClass};
use tiny_skia::{IntSize, Pixmap, PixmapPaint, Transform};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = args
        .next()
        .ok_or("usage: snapshot OUT.png [SIZE (even, default 512)]")?;
    let size: u32 = match args.next() {
        Some(s) => s.parse()?,
        None => 512,
    };
    let mut avatar = Avatar::new(size, size, 1)?;
    let still = avatar.motion_at(0);
    let mut open_eyes = still;
    open_eyes.blink = 0.0;
    let mut half = open_eyes;
    half.blink = 0.5;
    let poses = [
        ("closed", open_eyes, MouthPose::CLOSED),
        ("A", open_eyes, MouthPose::for_vowel(VowelClass::A)),
        ("O", open_eyes, MouthPose::for_vowel(VowelClass::O)),
        ("E", open_eyes, MouthPose::for_vowel(VowelClass::E)),
        ("mid-blink", half, MouthPose::CLOSED),
    ];
    let mut sheet = Pixmap::new(size * poses.len() as u32, size).ok_or("sheet too large")?;
    let mut frame = vec![0u8; avatar.frame_len()];
    for (i, (name, motion, mouth)) in poses.iter().enumerate() {
        avatar.render_rgba_with_motion(motion, *mouth, &mut frame)?;
        let tile = Pixmap::from_vec(
            frame.clone(),
            IntSize::from_wh(size, size).ok_or("bad size")?,
        )
        .ok_or("bad frame")?;
        sheet.draw_pixmap(
            (i as u32 * size) as i32,
            0,
            tile.as_ref(),
            &PixmapPaint::default(),
            Transform::identity(),
            None,
        );
        println!("tile {i}: {name}");
    }
    sheet.save_png(&out)?;
    println!("wrote {out}");
    Ok(())
}
