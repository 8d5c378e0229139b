//! Measures portrait rendering speed: renders N frames (default 2000) of IMAGE (manifest at
//! `IMAGE.json`) at WxH (default 512x512) with a moving mouth and blinks, and prints frames per
//! second. Usage: `cargo run --release -p talkstream-avatar --example portrait_speed -- IMAGE
//! [N] [WxH]`.

use std::path::Path;
use std::time::Instant;

use talkstream_avatar::{MouthPose, Portrait, PortraitFace, VowelClass};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let image = args.next().ok_or("usage: portrait_speed IMAGE [N] [WxH]")?;
    let n: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(2000);
    let (w, h) = match args.next() {
        Some(s) => {
            let (a, b) = s.split_once('x').ok_or("size must be WIDTHxHEIGHT")?;
            (a.parse()?, b.parse()?)
        }
        None => (512, 512),
    };
    let t0 = Instant::now();
    let portrait = Portrait::load(Path::new(&image), None)?;
    let t1 = Instant::now();
    let face = PortraitFace::new(&portrait, w, h, 42)?;
    let t2 = Instant::now();
    println!(
        "load {:.1} ms, scale to {w}x{h} {:.1} ms",
        (t1 - t0).as_secs_f64() * 1e3,
        (t2 - t1).as_secs_f64() * 1e3
    );
    let mut frame = vec![0u8; face.frame_len()];
    let vowels = VowelClass::ALL;
    let start = Instant::now();
    let mut checksum = 0u64;
    for i in 0..n {
        let a = MouthPose::for_vowel(vowels[(i / 3) as usize % vowels.len()]);
        let b = MouthPose::for_vowel(vowels[(i / 3 + 1) as usize % vowels.len()]);
        let mouth = MouthPose::lerp(a, b, (i % 3) as f32 / 3.0);
        // Time steps of 40 ms, so the blink schedule is exercised as in a live stream.
        face.render_rgba(i * 40, mouth, &mut frame)?;
        checksum = checksum.wrapping_add(u64::from(frame[(i as usize * 4099) % frame.len()]));
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{n} frames at {w}x{h} in {secs:.3} s: {:.1} fps ({:.3} ms/frame, checksum {checksum})",
        n as f64 / secs,
        secs * 1000.0 / n as f64
    );
    Ok(())
}
