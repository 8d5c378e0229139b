//! Benchmark: render the avatar and push it through the live channel (RGBA → I420 → H.264 +
//! AAC → fMP4 segments → playlist), as fast as possible on the calling thread. `idle` renders
//! the idle face with silence; `speaking` drives the mouth with lip-sync from speech-like audio.
//! Pin it to one core for the figures in docs/benchmarks.md:
//!
//! `taskset -c 0 target/release/examples/render_encode 750 idle`
//! `taskset -c 0 target/release/examples/render_encode 750 speaking`
//!
//! A third argument `loop` runs the same frames through the server's `MediaLoop` instead (commands
//! in, virtual time, a sink that counts bytes): the whole per-frame path of a live stream except
//! the clock and the file writes.
//!
//! `taskset -c 0 target/release/examples/render_encode 750 speaking loop`

use std::time::{Duration, Instant};

use talkstream::media_loop::{MediaCommand, MediaLoop, Step, StreamClock};
use talkstream::render::FaceRenderer;
use talkstream_avatar::analysis::synthetic_speech;
use talkstream_media::{ChannelConfig, LiveChannel, Output};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let frames: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(750);
    let speaking = args.get(2).is_some_and(|m| m == "speaking");
    let cfg = ChannelConfig {
        sample_rate: 22_050,
        ..ChannelConfig::default()
    };
    if args.get(3).is_some_and(|m| m == "loop") {
        return through_the_loop(cfg, frames, speaking);
    }
    let (w, h, fps, sr) = (cfg.width, cfg.height, cfg.fps, cfg.sample_rate);
    let mut channel = LiveChannel::new(cfg.clone(), 0)?;
    let mut face = FaceRenderer::new(&cfg, 7, None)?;
    let media_ms = frames * 1000 / u64::from(fps);
    let audio = if speaking {
        synthetic_speech(sr, media_ms as u32 + 1000, 3)
    } else {
        vec![0i16; (media_ms as usize + 1000) * sr as usize / 1000]
    };
    face.lipsync().push_audio(0, &audio);
    let (mut render_s, mut encode_s) = (0.0f64, 0.0f64);
    let mut bytes = 0usize;
    let mut pos = 0usize;
    let start = Instant::now();
    for n in 0..frames {
        let t = channel.frame_time_ms(n);
        let need = channel.samples_for_frame(n);
        let t0 = Instant::now();
        let frame = face.render(n, t)?;
        let t1 = Instant::now();
        for out in channel.push_frame(frame, &audio[pos..pos + need], t as i64)? {
            if let Output::Segment { bytes: b, .. } = out {
                bytes += b.len();
            }
        }
        pos += need;
        render_s += (t1 - t0).as_secs_f64();
        encode_s += t1.elapsed().as_secs_f64();
    }
    let total = start.elapsed().as_secs_f64();
    let media_s = frames as f64 / f64::from(fps);
    let mode = if speaking { "speaking" } else { "idle" };
    println!("{mode}: {frames} frames {w}x{h} @ {fps} fps ({media_s:.1} s of video)");
    println!(
        "lip-sync+render+convert: {:.0} fps; encode+mux: {:.0} fps; together: {:.0} fps = {:.1}x real time",
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

/// The same frames through `MediaLoop`: speech (if any) is one command at time 0, the clock
/// jumps to each frame's due time.
fn through_the_loop(
    cfg: ChannelConfig,
    frames: u64,
    speaking: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let (fps, sr) = (cfg.fps, cfg.sample_rate);
    let clock = StreamClock {
        start: Instant::now(),
        start_unix_ms: 0,
    };
    let mut media = MediaLoop::new(cfg, 7, None, None, clock)?;
    let media_ms = frames * 1000 / u64::from(fps);
    if speaking {
        let pcm = synthetic_speech(sr, media_ms as u32 + 1000, 3);
        let cmd = MediaCommand::Audio {
            turn: 1,
            pcm,
            text: String::new(),
            words: Vec::new(),
        };
        let _ = media.handle_command(cmd, Duration::ZERO);
    }
    let mut now = Duration::ZERO;
    let (mut bytes, mut produced) = (0usize, 0u64);
    let start = Instant::now();
    while produced < frames {
        match media.poll(now) {
            Step::Produce => {
                let out = media.produce(now)?;
                for o in &out.hls {
                    if let Output::Segment { bytes: b, .. } = o {
                        bytes += b.len();
                    }
                }
                produced += 1;
            }
            Step::Wait(due) => now = due,
            Step::Finish => break,
        }
    }
    let total = start.elapsed().as_secs_f64();
    let media_s = frames as f64 / f64::from(fps);
    let mode = if speaking { "speaking" } else { "idle" };
    println!("{mode} through MediaLoop: {frames} frames ({media_s:.1} s of video)");
    println!(
        "together: {:.0} fps = {:.1}x real time; output: {:.0} kbit/s",
        frames as f64 / total,
        media_s / total,
        bytes as f64 * 8.0 / media_s / 1000.0
    );
    Ok(())
}
