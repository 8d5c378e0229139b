//! Objective lip-sync check on pixels: the avatar is rendered with poses from the analyzer on
//! synthetic speech, the mouth opening is measured from the rendered frames, and it must follow
//! the loudness of the audio in time. The measure must also survive video-like degradation
//! (chroma subsampling, blur, noise).

use talkstream_avatar::analysis::{best_lag, loudness_envelope, pearson, synthetic_speech};
use talkstream_avatar::{measure_mouth_opening, Avatar, LipSync, MouthPose, VowelClass};

const FPS: u32 = 25;
const SR: u32 = 48_000;

struct Run {
    pcm: Vec<i16>,
    envelope: Vec<f32>,
    poses: Vec<MouthPose>,
    frames: Vec<Vec<u8>>,
    regions: Vec<(u32, u32, u32, u32)>,
    width: u32,
}

fn render_speech(size: u32, seconds: u32, seed: u64) -> Run {
    let pcm = synthetic_speech(SR, seconds * 1000, seed);
    let envelope = loudness_envelope(&pcm, SR, FPS);
    let mut lips = LipSync::new(SR, FPS);
    lips.push_audio(0, &pcm);
    let mut avatar = Avatar::new(size, size, seed).unwrap();
    let (mut poses, mut frames, mut regions) = (Vec::new(), Vec::new(), Vec::new());
    for n in 0..envelope.len() as u64 {
        let t_ms = n * 1000 / u64::from(FPS);
        let pose = lips.pose_for_frame(n);
        let mut f = vec![0u8; avatar.frame_len()];
        avatar.render_rgba(t_ms, pose, &mut f).unwrap();
        poses.push(pose);
        frames.push(f);
        regions.push(avatar.mouth_region(t_ms));
    }
    Run {
        pcm,
        envelope,
        poses,
        frames,
        regions,
        width: size,
    }
}

fn measure_all(run: &Run, frames: &[Vec<u8>]) -> Vec<f32> {
    frames
        .iter()
        .zip(&run.regions)
        .map(|(f, &r)| measure_mouth_opening(f, run.width, r))
        .collect()
}

/// Frames with no audio at all from 120 ms before their start to the end of the analyzer's
/// lookahead.
fn silent_frames(run: &Run) -> Vec<usize> {
    let spf = (SR / FPS) as usize;
    let ahead = LipSync::new(SR, FPS).lookahead_samples() as usize;
    (0..run.envelope.len())
        .filter(|&n| {
            let from = (n * spf).saturating_sub(SR as usize * 12 / 100);
            let to = (n * spf + ahead).min(run.pcm.len());
            run.pcm[from..to].iter().all(|&v| v == 0)
        })
        .collect()
}

#[test]
fn mouth_pixels_follow_the_loudness_of_the_audio() {
    for (size, seed) in [(256u32, 1u64), (384, 2)] {
        let run = render_speech(size, 12, seed);
        let measured = measure_all(&run, &run.frames);
        let open: Vec<f32> = run.poses.iter().map(|p| p.open).collect();

        let r = pearson(&run.envelope, &measured);
        let (lag, rl) = best_lag(&run.envelope, &measured, 5);
        assert!(r >= 0.6, "{size}px: pixels vs loudness r = {r}");
        // ±1 frame = ±40 ms at 25 fps.
        assert!(lag.abs() <= 1, "{size}px: best lag {lag} frames (r {rl})");
        // The pixel measure tracks the pose itself closely.
        let rp = pearson(&open, &measured);
        assert!(rp >= 0.9, "{size}px: pixels vs pose r = {rp}");

        // Silence: no dark interior at all.
        let silent = silent_frames(&run);
        assert!(silent.len() > 40, "{} silent frames", silent.len());
        for &n in &silent {
            assert_eq!(measured[n], 0.0, "{size}px: frame {n} is silent");
        }
        // Speech: clearly open in the loud frames.
        let loud: Vec<usize> = (0..measured.len())
            .filter(|&n| run.envelope[n] > 0.05)
            .collect();
        assert!(loud.len() > 40);
        let open_share =
            loud.iter().filter(|&&n| measured[n] > 0.02).count() as f32 / loud.len() as f32;
        assert!(
            open_share > 0.9,
            "{size}px: only {open_share} of loud frames open"
        );
    }
}

#[test]
fn opening_measure_is_monotonic_in_the_pose() {
    let mut av = Avatar::new(256, 256, 4).unwrap();
    let mut f = vec![0u8; av.frame_len()];
    for class in [
        VowelClass::A,
        VowelClass::E,
        VowelClass::I,
        VowelClass::O,
        VowelClass::U,
    ] {
        let shape = MouthPose::for_vowel(class);
        let mut prev = -1.0f32;
        for i in 0..=10 {
            let pose = MouthPose::new(i as f32 / 10.0, shape.wide, shape.round);
            av.render_rgba(3_000, pose, &mut f).unwrap();
            let m = measure_mouth_opening(&f, 256, av.mouth_region(3_000));
            if i == 0 {
                assert_eq!(m, 0.0, "{class:?} closed");
            } else {
                assert!(
                    m > prev,
                    "{class:?}: {m} after {prev} at open {}",
                    pose.open
                );
            }
            prev = m;
        }
        assert!(prev > 0.04, "{class:?} wide open: {prev}");
    }
    for class in [VowelClass::Closed, VowelClass::Rest] {
        av.render_rgba(3_000, MouthPose::for_vowel(class), &mut f)
            .unwrap();
        assert_eq!(measure_mouth_opening(&f, 256, av.mouth_region(3_000)), 0.0);
    }
}

/// Video-like damage (harsher than H.264 at the stream's bitrate, which barely changes the
/// measure): BT.601 YCbCr with 2x2-averaged chroma (4:2:0), a 3x3 [1 2 1] blur of luma, and
/// deterministic noise of up to ±`noise` on luma.
fn degrade(rgba: &[u8], w: usize, noise: f32, seed: u32) -> Vec<u8> {
    let h = rgba.len() / 4 / w;
    let px = |x: usize, y: usize| {
        let i = (y * w + x) * 4;
        let (r, g, b) = (
            f32::from(rgba[i]),
            f32::from(rgba[i + 1]),
            f32::from(rgba[i + 2]),
        );
        let yy = 0.299 * r + 0.587 * g + 0.114 * b;
        (yy, (b - yy) * 0.564, (r - yy) * 0.713)
    };
    let mut luma = vec![0.0f32; w * h];
    let mut cb = vec![0.0f32; w * h];
    let mut cr = vec![0.0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            luma[y * w + x] = px(x, y).0;
        }
    }
    for by in (0..h).step_by(2) {
        for bx in (0..w).step_by(2) {
            let (mut sb, mut sr, mut n) = (0.0, 0.0, 0.0);
            for y in by..(by + 2).min(h) {
                for x in bx..(bx + 2).min(w) {
                    let (_, b, r) = px(x, y);
                    sb += b;
                    sr += r;
                    n += 1.0;
                }
            }
            for y in by..(by + 2).min(h) {
                for x in bx..(bx + 2).min(w) {
                    cb[y * w + x] = sb / n;
                    cr[y * w + x] = sr / n;
                }
            }
        }
    }
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    let mut out = vec![255u8; rgba.len()];
    for y in 0..h {
        for x in 0..w {
            let mut s = 0.0;
            let mut n = 0.0;
            for dy in -1i32..=1 {
                for dx in -1i32..=1 {
                    let (xx, yy) = (x as i32 + dx, y as i32 + dy);
                    if xx >= 0 && yy >= 0 && (xx as usize) < w && (yy as usize) < h {
                        let k = ((2 - dx.abs()) * (2 - dy.abs())) as f32;
                        s += k * luma[yy as usize * w + xx as usize];
                        n += k;
                    }
                }
            }
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let jitter = (state % 1_000) as f32 / 500.0 - 1.0;
            let yv = s / n + noise * jitter;
            let (b, r) = (cb[y * w + x], cr[y * w + x]);
            let rr = yv + r / 0.713;
            let bb = yv + b / 0.564;
            let gg = (yv - 0.299 * rr - 0.114 * bb) / 0.587;
            let i = (y * w + x) * 4;
            for (k, v) in [rr, gg, bb].into_iter().enumerate() {
                out[i + k] = v.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}

#[test]
fn opening_measure_survives_video_like_damage() {
    let run = render_speech(384, 8, 5);
    let clean = measure_all(&run, &run.frames);
    let damaged: Vec<Vec<u8>> = run
        .frames
        .iter()
        .enumerate()
        .map(|(i, f)| degrade(f, 384, 6.0, i as u32))
        .collect();
    let measured = measure_all(&run, &damaged);

    let r = pearson(&clean, &measured);
    assert!(r >= 0.97, "damaged vs clean r = {r}");
    let r_audio = pearson(&run.envelope, &measured);
    let (lag, _) = best_lag(&run.envelope, &measured, 5);
    assert!(r_audio >= 0.6 && lag.abs() <= 1, "r {r_audio}, lag {lag}");

    // Closed stays (nearly) closed, open stays clearly open (blur eats a little of the edges).
    let silent = silent_frames(&run);
    let worst_closed = silent.iter().map(|&n| measured[n]).fold(0.0f32, f32::max);
    assert!(worst_closed < 0.002, "closed mouth measures {worst_closed}");
    let open: Vec<f32> = (0..clean.len())
        .filter(|&n| clean[n] > 0.03)
        .map(|n| measured[n] / clean[n])
        .collect();
    assert!(open.len() > 30);
    for ratio in open {
        assert!((0.6..1.2).contains(&ratio), "damaged/clean {ratio}");
    }
}
