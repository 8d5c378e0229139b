//! Measures rendering speed: renders N frames (default 1000) at WxH (default 512x512) with a
//! moving mouth and prints frames per second.
//! Usage: `cargo run --release -p talkstream-avatar --example render_speed -- [N] [W] [H]`.

use std::time::Instant;
use talkstream_avatar::{Avatar, MouthPose, VowelClass};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1000);
    let w: u32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(512);
    let h: u32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(w);
    let mut avatar = Avatar::new(w, h, 42)?;
    let mut frame = vec![0u8; avatar.frame_len()];
    let vowels = VowelClass::ALL;
    let start = Instant::now();
    let mut checksum = 0u64;
    for i in 0..n {
        let t_ms = i * 40;
        let a = MouthPose::for_vowel(vowels[(i / 3) as usize % vowels.len()]);
        let b = MouthPose::for_vowel(vowels[(i / 3 + 1) as usize % vowels.len()]);
        let mouth = MouthPose::lerp(a, b, (i % 3) as f32 / 3.0);
        avatar.render_rgba(t_ms, mouth, &mut frame)?;
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
