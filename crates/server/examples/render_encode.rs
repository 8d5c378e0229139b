//! Benchmark: render the idle avatar and push it through the live channel (RGBA → I420 →
//! H.264 + AAC → fMP4 segments → playlist), as fast as possible on the calling thread.
//! Pin it to one core for the figure in docs/benchmarks.md:
//!
//! `taskset -c 0 cargo run --release -p talkstream --example render_encode -- 750`

use std::time::Instant;

use talkstream_avatar::{Avatar, MouthPose};
use talkstream_media::{ChannelConfig, I420Frame, LiveChannel};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let frames: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(750);
    let cfg = ChannelConfig::default();
    let (w, h, fps) = (cfg.width, cfg.height, cfg.fps);
    let mut channel = LiveChannel::new(cfg, 0)?;
    let mut avatar = Avatar::new(w, h, 7)?;
    let mut rgba = vec![0u8; (w * h * 4) as usize];
    let mut frame = I420Frame::new(w, h);
    let (mut render_s, mut encode_s) = (0.0f64, 0.0f64);
    let mut bytes = 0usize;
    let start = Instant::now();
    for n in 0..frames {
        let t = channel.frame_time_ms(n);
        let t0 = Instant::now();
        avatar.render_rgba(t, MouthPose::CLOSED, &mut rgba)?;
        frame.fill_from_rgba(&rgba);
        let t1 = Instant::now();
        let pcm = vec![0i16; channel.samples_for_frame(n)];
        for out in channel.push_frame(&frame, &pcm, t as i64)? {
            if let talkstream_media::Output::Segment { bytes: b, .. } = out {
                bytes += b.len();
            }
        }
        render_s += (t1 - t0).as_secs_f64();
        encode_s += t1.elapsed().as_secs_f64();
    }
    let total = start.elapsed().as_secs_f64();
    let media_s = frames as f64 / f64::from(fps);
    println!("{frames} frames {w}x{h} @ {fps} fps ({media_s:.1} s of video)");
    println!(
        "render+convert: {:.0} fps; encode+mux: {:.0} fps; together: {:.0} fps = {:.1}x real time",
        frames as f64 / render_s,
        frames as f64 / encode_s,
        frames as f64 / total,
        media_s / total
    );
    println!(
        "output: {:.0} kbit/s",
        bytes as f64 * 8.0 / media_s / 1000.0
    );
    Ok(())
}
