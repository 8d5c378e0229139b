//! Measures the cost of the lip-sync analyzer: poses for N seconds (default 60) of synthetic
//! speech at each common sample rate, 25 fps, and prints the time per frame.
//! Usage: `cargo run --release -p talkstream-avatar --example lipsync_speed -- [SECONDS]`.

use std::time::Instant;
use talkstream_avatar::analysis::synthetic_speech;
use talkstream_avatar::LipSync;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secs: u32 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(60);
    for rate in [8_000u32, 16_000, 22_050, 24_000, 44_100, 48_000] {
        let pcm = synthetic_speech(rate, secs * 1000, 1);
        let mut lips = LipSync::new(rate, 25);
        let frames = u64::from(secs) * 25;
        let chunk = rate as usize / 10;
        let mut pushed = 0usize;
        let mut open_sum = 0.0f64;
        let start = Instant::now();
        for n in 0..frames {
            // Stream the audio 100 ms at a time, ahead of the frames, as a server would.
            let need = lips.frame_window(n).1 as usize;
            while pushed < need.min(pcm.len()) {
                let len = chunk.min(pcm.len() - pushed);
                lips.push_audio(pushed as u64, &pcm[pushed..pushed + len]);
                pushed += len;
            }
            if n % 25 == 0 {
                lips.discard_before(lips.frame_start_sample(n).saturating_sub(u64::from(rate)));
            }
            open_sum += f64::from(lips.pose_for_frame(n).open);
        }
        let el = start.elapsed().as_secs_f64();
        println!(
            "{rate:>6} Hz: {frames} frames in {:.1} ms, {:.1} us/frame (mean open {:.2})",
            el * 1000.0,
            el * 1e6 / frames as f64,
            open_sum / frames as f64
        );
    }
    Ok(())
}
