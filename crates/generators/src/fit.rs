//! Making a generator's frames fit the stream: [`scale_i420`] (bilinear, per plane) and
//! [`fit_frames`], which picks for every stream frame of a window the generator frame shown at
//! that moment (sample-and-hold on the generator's own timestamps, so any generator frame rate
//! works), repeats the last frame when the generator returned too little, drops what it returned
//! beyond the window, and scales frames of the wrong size. Each kind of correction is logged with
//! `tracing::warn!` once per [`FitWarnings`] (once per generator), not once per window.

use std::sync::atomic::{AtomicBool, Ordering};

use talkstream_media::I420Frame;

use crate::{GeneratedWindow, GeneratorError, GeneratorKind, StreamFormat, WindowRequest};

/// Frames as a generator returned them, with their presentation times.
#[derive(Debug, Clone, Default)]
pub struct RawVideo {
    /// Decoded pictures in presentation order (any size).
    pub frames: Vec<I420Frame>,
    /// Presentation time of each frame in microseconds, relative to the origin given to
    /// [`fit_frames`]; non-decreasing, same length as `frames`.
    pub times_us: Vec<u64>,
    /// Nominal duration of one frame in microseconds (used to tell "too short" from "ends on
    /// the last frame").
    pub frame_us: u64,
}

impl RawVideo {
    /// Frames at a constant rate starting at time 0.
    pub fn constant_rate(frames: Vec<I420Frame>, fps: u32) -> Self {
        let fps = u64::from(fps.max(1));
        let times_us = (0..frames.len() as u64)
            .map(|i| i * 1_000_000 / fps)
            .collect();
        Self {
            frames,
            times_us,
            frame_us: 1_000_000 / fps,
        }
    }
}

/// Per-generator "already warned" flags, so a generator that always returns the wrong size does
/// not flood the log.
#[derive(Debug, Default)]
pub struct FitWarnings {
    scaled: AtomicBool,
    padded: AtomicBool,
    trimmed: AtomicBool,
}

impl FitWarnings {
    fn first(flag: &AtomicBool) -> bool {
        !flag.swap(true, Ordering::Relaxed)
    }
}

/// Stream time in microseconds of frame `n` at `fps` (floor).
fn frame_time_us(n: u64, fps: u32) -> i128 {
    i128::from(n) * 1_000_000 / i128::from(fps.max(1))
}

/// Tolerance when matching times: container timestamps are rounded to their timescale.
const SLACK_US: i128 = 1_000;

/// Fit `raw` to the stream frames of `req`'s fresh part.
///
/// `origin_us` is the stream time (µs since stream sample 0) of the generator's time 0: the
/// window's first sample for the exec contract (the generator renders context + fresh audio),
/// the first requested frame's time for the worker protocol.
pub fn fit_frames(
    raw: RawVideo,
    origin_us: i128,
    req: &WindowRequest,
    format: StreamFormat,
    source: GeneratorKind,
    warnings: &FitWarnings,
) -> Result<GeneratedWindow, GeneratorError> {
    let (first, end) = req.frame_range(format.fps);
    let mut out = GeneratedWindow {
        index: req.index,
        first_frame: first,
        frames: Vec::with_capacity((end - first) as usize),
        fps: format.fps,
        source,
        timings: Default::default(),
    };
    if first == end {
        return Ok(out);
    }
    let count = raw.frames.len().min(raw.times_us.len());
    if count == 0 {
        return Err(GeneratorError::NoFrames {
            window: req.index,
            what: source.as_str(),
        });
    }
    let times = &raw.times_us[..count];
    let last_end = i128::from(times[count - 1]) + i128::from(raw.frame_us.max(1));
    let mut picks = Vec::with_capacity((end - first) as usize);
    let mut padded = 0usize;
    for n in first..end {
        let t = frame_time_us(n, format.fps) - origin_us;
        // Last generator frame whose time is <= t (with slack for timestamp rounding).
        let k = times.partition_point(|&ti| i128::from(ti) <= t + SLACK_US);
        let pick = k.saturating_sub(1);
        if k == 0 || t >= last_end + SLACK_US {
            padded += 1;
        }
        picks.push(pick);
    }
    // Frames the generator made after the window's end (more than one frame of slack).
    let window_end_t = frame_time_us(end, format.fps) - origin_us;
    let extra = times
        .iter()
        .filter(|&&ti| i128::from(ti) >= window_end_t + SLACK_US)
        .count();
    if padded > 0 && FitWarnings::first(&warnings.padded) {
        tracing::warn!(
            generator = source.as_str(),
            window = req.index,
            missing = padded,
            got = count,
            "video generator returned too few frames for the window; repeating the nearest \
             frame (logged once per generator)"
        );
    }
    if extra > 0 && FitWarnings::first(&warnings.trimmed) {
        tracing::warn!(
            generator = source.as_str(),
            window = req.index,
            extra,
            "video generator returned frames past the end of the window; dropping them \
             (logged once per generator)"
        );
    }
    let wrong_size = raw
        .frames
        .iter()
        .find(|f| f.width != format.width || f.height != format.height);
    if let Some(f) = wrong_size {
        if FitWarnings::first(&warnings.scaled) {
            tracing::warn!(
                generator = source.as_str(),
                window = req.index,
                from = format!("{}x{}", f.width, f.height),
                to = format!("{}x{}", format.width, format.height),
                "video generator frames have the wrong size; scaling them (logged once per \
                 generator)"
            );
        }
    }
    // Convert each picked generator frame once; clone it for repeats, move it on its last use.
    let mut last_use = vec![usize::MAX; count];
    for (i, &p) in picks.iter().enumerate() {
        last_use[p] = i;
    }
    let mut frames: Vec<Option<I420Frame>> = raw.frames.into_iter().map(Some).collect();
    let mut converted: Vec<Option<I420Frame>> = vec![None; count];
    for (i, &p) in picks.iter().enumerate() {
        if converted[p].is_none() {
            let src = frames[p].take().unwrap_or_else(|| I420Frame::new(2, 2));
            let frame = if src.width == format.width && src.height == format.height {
                src
            } else {
                scale_i420(&src, format.width, format.height)
            };
            converted[p] = Some(frame);
        }
        let frame = if last_use[p] == i {
            converted[p].take()
        } else {
            converted[p].clone()
        };
        out.frames.extend(frame);
    }
    Ok(out)
}

/// Scales an I420 frame to `width x height` with bilinear filtering (pixel centres aligned,
/// edges clamped), each plane on its own. A frame whose planes are inconsistent with its size
/// yields a black frame.
pub fn scale_i420(src: &I420Frame, width: u32, height: u32) -> I420Frame {
    let mut dst = I420Frame::new(width, height);
    if !src.planes_consistent() || src.width == 0 || src.height == 0 {
        return dst;
    }
    let (sw, sh) = (src.width as usize, src.height as usize);
    let (dw, dh) = (width as usize, height as usize);
    scale_plane(&src.y, sw, sh, &mut dst.y, dw, dh);
    let (scw, sch) = (sw.div_ceil(2), sh.div_ceil(2));
    let (dcw, dch) = (dw.div_ceil(2), dh.div_ceil(2));
    scale_plane(&src.u, scw, sch, &mut dst.u, dcw, dch);
    scale_plane(&src.v, scw, sch, &mut dst.v, dcw, dch);
    dst
}

/// Source positions for each destination index in 16.16 fixed point: (index0, index1, weight1).
fn axis(src: usize, dst: usize) -> Vec<(usize, usize, u32)> {
    let max = src.saturating_sub(1);
    (0..dst)
        .map(|d| {
            // Centre-aligned: s = (d + 0.5) * src / dst - 0.5, clamped to [0, src - 1].
            let num = (2 * d as i64 + 1) * src as i64 * 65_536 / (2 * dst.max(1) as i64) - 32_768;
            let pos = num.clamp(0, (max as i64) * 65_536);
            let i0 = (pos >> 16) as usize;
            let i1 = (i0 + 1).min(max);
            (i0, i1, (pos & 0xffff) as u32)
        })
        .collect()
}

fn scale_plane(src: &[u8], sw: usize, sh: usize, dst: &mut [u8], dw: usize, dh: usize) {
    if sw == 0 || sh == 0 || src.len() < sw * sh || dst.len() < dw * dh {
        return;
    }
    let xs = axis(sw, dw);
    let ys = axis(sh, dh);
    let mut row = vec![0u32; dw];
    for (dy, &(y0, y1, wy)) in ys.iter().enumerate() {
        let r0 = &src[y0 * sw..(y0 + 1) * sw];
        let r1 = &src[y1 * sw..(y1 + 1) * sw];
        for (out, &(x0, x1, wx)) in row.iter_mut().zip(&xs) {
            let top = u32::from(r0[x0]) * (65_536 - wx) + u32::from(r0[x1]) * wx;
            let bottom = u32::from(r1[x0]) * (65_536 - wx) + u32::from(r1[x1]) * wx;
            // top, bottom < 2^24; blend vertically in 64-bit to keep precision.
            let v = (u64::from(top) * u64::from(65_536 - wy)
                + u64::from(bottom) * u64::from(wy)
                + (1 << 31))
                >> 32;
            *out = v as u32;
        }
        for (d, &v) in dst[dy * dw..(dy + 1) * dw].iter_mut().zip(&row) {
            *d = v.min(255) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn solid(w: u32, h: u32, y: u8) -> I420Frame {
        let mut f = I420Frame::new(w, h);
        f.y.fill(y);
        f
    }

    fn req(start: u64, ctx: usize, len: usize) -> WindowRequest {
        WindowRequest {
            session_id: "s".into(),
            index: 3,
            start_sample: start,
            sample_rate: 16_000,
            context_samples: ctx,
            pcm: vec![0; len],
            ref_image: PathBuf::from("x.png"),
            deadline: None,
        }
    }

    const FMT: StreamFormat = StreamFormat {
        width: 8,
        height: 6,
        fps: 25,
    };

    #[test]
    fn scaling_keeps_flat_planes_and_interpolates_ramps() {
        let f = solid(4, 4, 100);
        let s = scale_i420(&f, 10, 6);
        assert_eq!((s.width, s.height), (10, 6));
        assert!(s.planes_consistent());
        assert!(s.y.iter().all(|&v| v == 100));
        assert!(s.u.iter().all(|&v| v == 128));
        // A horizontal ramp stays monotonic and within range when upscaled.
        let mut r = I420Frame::new(4, 2);
        r.y = vec![0, 80, 160, 240, 0, 80, 160, 240];
        let up = scale_i420(&r, 8, 2);
        let row = &up.y[..8];
        assert!(row.windows(2).all(|w| w[0] <= w[1]), "{row:?}");
        assert_eq!((row[0], row[7]), (0, 240));
        // Downscale by 2 averages neighbours.
        let down = scale_i420(&r, 2, 2);
        assert_eq!(&down.y[..2], &[40, 200]);
        // Odd sizes and inconsistent planes never panic.
        let odd = scale_i420(&solid(5, 3, 50), 6, 4);
        assert!(odd.y.iter().all(|&v| v == 50));
        let mut broken = solid(4, 4, 1);
        broken.y.truncate(3);
        assert_eq!(scale_i420(&broken, 4, 4), I420Frame::new(4, 4));
    }

    #[test]
    fn exact_output_passes_through() {
        // Window 1 of the default layout: context 4000, start 24 800.
        let r = req(24_800, 4000, 28_800);
        let (first, end) = r.frame_range(25);
        assert_eq!((first, end), (45, 84));
        // The generator renders the whole window (context + fresh): 45 frames at 25 fps.
        let frames: Vec<_> = (0..45).map(|i| solid(8, 6, i as u8)).collect();
        let origin = i128::from(r.start_sample) * 1_000_000 / 16_000;
        let w = fit_frames(
            RawVideo::constant_rate(frames, 25),
            origin,
            &r,
            FMT,
            GeneratorKind::Exec,
            &FitWarnings::default(),
        )
        .unwrap();
        assert_eq!(w.first_frame, 45);
        assert_eq!(w.frames.len(), 39);
        // Stream frame 45 is at 1.8 s; the window starts at 1.55 s → generator frame 6.25 → 6.
        assert_eq!(w.frames[0].y[0], 6);
        assert_eq!(w.frames[38].y[0], 44);
    }

    #[test]
    fn short_output_is_padded_long_output_trimmed_wrong_size_scaled() {
        let r = req(0, 0, 16_000); // 1 s → 25 frames
        let warnings = FitWarnings::default();
        let short: Vec<_> = (0..20).map(|i| solid(16, 12, i as u8)).collect();
        let w = fit_frames(
            RawVideo::constant_rate(short, 25),
            0,
            &r,
            FMT,
            GeneratorKind::Worker,
            &warnings,
        )
        .unwrap();
        assert_eq!(w.frames.len(), 25);
        assert!(w.frames.iter().all(|f| (f.width, f.height) == (8, 6)));
        assert_eq!(w.frames[19].y[0], 19);
        assert_eq!(w.frames[24].y[0], 19, "last frame repeated");
        assert!(warnings.padded.load(Ordering::Relaxed));
        assert!(warnings.scaled.load(Ordering::Relaxed));
        // 50 fps generator with 60 frames: every other frame, extra dropped.
        let long: Vec<_> = (0..60).map(|i| solid(8, 6, i as u8)).collect();
        let w = fit_frames(
            RawVideo::constant_rate(long, 50),
            0,
            &r,
            FMT,
            GeneratorKind::Worker,
            &warnings,
        )
        .unwrap();
        assert_eq!(w.frames.len(), 25);
        assert_eq!(w.frames[1].y[0], 2);
        assert_eq!(w.frames[24].y[0], 48);
        assert!(warnings.trimmed.load(Ordering::Relaxed));
        // Nothing at all is an error.
        let err = fit_frames(
            RawVideo::default(),
            0,
            &r,
            FMT,
            GeneratorKind::Exec,
            &warnings,
        )
        .unwrap_err();
        assert!(matches!(err, GeneratorError::NoFrames { window: 3, .. }));
    }
}
