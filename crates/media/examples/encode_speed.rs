//! Measures `H264Encoder::encode` speed on a synthetic moving image.
//!
//! `cargo run --release -p talkstream-media --example encode_speed -- [frames] [width] [height]`
//! (defaults: 300 frames at 512x512, 25 fps, 1000 kbps). Prints frames per second for the
//! RGBA -> I420 conversion and for the encoder alone, plus the resulting bitrate.

use std::time::{Duration, Instant};

use talkstream_media::video::H264Encoder;
use talkstream_media::I420Frame;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let frames: u32 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(300);
    let width: u32 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(512);
    let height: u32 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(512);
    let fps = 25;

    let mut encoder = H264Encoder::new(width, height, fps, 1000)?;
    let mut frame = I420Frame::new(width, height);
    let mut rgba = vec![0u8; (width * height * 4) as usize];
    let mut convert = Duration::ZERO;
    let mut encode = Duration::ZERO;
    let mut bytes = 0usize;
    for n in 0..frames {
        // A gradient that scrolls and a bright square that moves: some motion every frame.
        for y in 0..height {
            for x in 0..width {
                let i = ((y * width + x) * 4) as usize;
                let in_square = (x + 600 - (n * 5) % 600) % 600 < 96 && (y + n * 2) % 400 < 96;
                let v = if in_square { 255 } else { 0 };
                rgba[i] = ((x + n * 3) & 255) as u8 | v;
                rgba[i + 1] = ((y + n) & 255) as u8;
                rgba[i + 2] = (((x ^ y) >> 1) & 255) as u8 | v;
                rgba[i + 3] = 255;
            }
        }
        let t = Instant::now();
        frame.fill_from_rgba(&rgba);
        convert += t.elapsed();
        let t = Instant::now();
        let out = encoder.encode(&frame, n % 45 == 0)?;
        encode += t.elapsed();
        bytes += out.data.len();
    }
    let per_s = |d: Duration| f64::from(frames) / d.as_secs_f64().max(1e-9);
    println!("{frames} frames at {width}x{height}");
    println!("rgba->i420: {:8.1} frames/s", per_s(convert));
    println!("h264 encode: {:8.1} frames/s", per_s(encode));
    println!(
        "bitrate at {fps} fps: {:.0} kbps",
        bytes as f64 * 8.0 * f64::from(fps) / f64::from(frames) / 1000.0
    );
    Ok(())
}
