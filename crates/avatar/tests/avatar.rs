//! Behaviour tests of the avatar: idle motion schedule, pixels of eyes and mouth, determinism,
//! sizes and errors.

use talkstream_avatar::{Avatar, AvatarError, Motion, MouthPose, VowelClass};

fn frame(av: &Avatar) -> Vec<u8> {
    vec![0u8; av.frame_len()]
}

fn luma(px: &[u8]) -> f32 {
    0.299 * f32::from(px[0]) + 0.587 * f32::from(px[1]) + 0.114 * f32::from(px[2])
}

/// Pixels in `region` of an RGBA frame of width `w` for which `pred` holds.
fn count(buf: &[u8], w: u32, region: (u32, u32, u32, u32), pred: impl Fn(&[u8]) -> bool) -> usize {
    let (x0, y0, rw, rh) = region;
    let mut n = 0;
    for y in y0..y0 + rh {
        for x in x0..x0 + rw {
            let i = ((y * w + x) * 4) as usize;
            if pred(&buf[i..i + 4]) {
                n += 1;
            }
        }
    }
    n
}

fn dark(px: &[u8]) -> bool {
    luma(px) < 65.0
}

fn sclera_white(px: &[u8]) -> bool {
    px[0] > 225 && px[1] > 225 && px[2] > 225
}

fn open_eyes_still() -> Motion {
    Motion::STILL
}

#[test]
fn blink_schedule_is_irregular_bounded_and_seeded() {
    let a = Avatar::new(64, 64, 11).unwrap();
    let events = a.blink_events(0, 240_000);
    assert!(events.len() >= 40, "{} blinks in 4 minutes", events.len());
    let gaps: Vec<u64> = events
        .windows(2)
        .map(|w| w[1].start_ms - w[0].start_ms)
        .collect();
    for &g in &gaps {
        assert!((1_500..=8_000).contains(&g), "gap {g} ms");
    }
    let mean = gaps.iter().sum::<u64>() as f64 / gaps.len() as f64;
    let var = gaps.iter().map(|&g| (g as f64 - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
    assert!(var.sqrt() > 400.0, "gaps too regular: sd {}", var.sqrt());
    assert!((2_500.0..=5_500.0).contains(&mean), "mean gap {mean}");
    for e in &events {
        assert!((120..=200).contains(&e.duration_ms), "{e:?}");
    }
    assert!(
        events.iter().any(|e| e.second_start_ms.is_some()),
        "no double blink"
    );
    assert!(
        events
            .iter()
            .filter(|e| e.second_start_ms.is_some())
            .count()
            < events.len() / 2
    );

    let same = Avatar::new(128, 64, 11).unwrap().blink_events(0, 240_000);
    assert_eq!(events, same, "same seed, same schedule");
    let other = Avatar::new(64, 64, 12).unwrap().blink_events(0, 240_000);
    assert_ne!(events, other, "different seeds should differ");
}

#[test]
fn blinks_seen_through_motion_match_the_schedule() {
    let mut a = Avatar::new(64, 64, 5).unwrap();
    // Onsets of eyelid closure (crossing 0.5), sampled every 5 ms for two minutes.
    let mut onsets = Vec::new();
    let mut closed_ms = Vec::new();
    let mut prev = 0.0;
    let mut closed_since = None;
    for t in (0..120_000u64).step_by(5) {
        let b = a.motion_at(t).blink;
        assert!((0.0..=1.0).contains(&b));
        if prev < 0.5 && b >= 0.5 {
            onsets.push(t);
        }
        if prev == 0.0 && b > 0.0 {
            closed_since = Some(t);
        }
        if prev > 0.0 && b == 0.0 {
            if let Some(s) = closed_since.take() {
                closed_ms.push(t - s);
            }
        }
        prev = b;
    }
    // Group double blinks (second within 0.6 s), then check the spacing of the groups.
    let mut groups: Vec<u64> = Vec::new();
    for &t in &onsets {
        if groups.last().is_none_or(|&g| t - g > 600) {
            groups.push(t);
        }
    }
    assert!(groups.len() >= 18, "{} blinks in 2 minutes", groups.len());
    for w in groups.windows(2) {
        let gap = w[1] - w[0];
        assert!((1_500..=8_000).contains(&gap), "gap {gap}");
    }
    // A blink lasts about 120..200 ms.
    for d in &closed_ms {
        assert!((100..=210).contains(d), "blink lasted {d} ms");
    }
    // Closing is faster than opening: check one blink in detail.
    let e = a.blink_events(0, 20_000)[0];
    let peak = (e.start_ms..e.start_ms + e.duration_ms)
        .find(|&t| a.motion_at(t).blink >= 1.0)
        .unwrap();
    assert!(peak - e.start_ms < e.duration_ms / 2);
}

#[test]
fn eyes_region_changes_only_and_clearly_when_blinking() {
    let mut av = Avatar::new(512, 512, 3).unwrap();
    let open = open_eyes_still();
    let closed = Motion { blink: 1.0, ..open };
    let (mut fo, mut fc) = (frame(&av), frame(&av));
    av.render_rgba_with_motion(&open, MouthPose::CLOSED, &mut fo)
        .unwrap();
    av.render_rgba_with_motion(&closed, MouthPose::CLOSED, &mut fc)
        .unwrap();
    let region = av.eyes_region_with_motion(&open);
    let white_open = count(&fo, 512, region, sclera_white);
    let white_closed = count(&fc, 512, region, sclera_white);
    assert!(white_open > 80, "open eyes show {white_open} white pixels");
    assert!(
        white_closed < 10,
        "closed eyes show {white_closed} white pixels"
    );
    let lum = |f: &[u8]| -> f32 {
        let (x0, y0, w, h) = region;
        let mut s = 0.0;
        for y in y0..y0 + h {
            for x in x0..x0 + w {
                let i = ((y * 512 + x) * 4) as usize;
                s += luma(&f[i..i + 4]);
            }
        }
        s / (w * h) as f32
    };
    assert!((lum(&fo) - lum(&fc)).abs() > 2.0);
    // Nothing outside the eyes region changes.
    let (x0, y0, w, h) = region;
    for y in 0..512u32 {
        for x in 0..512u32 {
            let inside = x >= x0 && x < x0 + w && y >= y0 && y < y0 + h;
            let i = ((y * 512 + x) * 4) as usize;
            if !inside {
                assert_eq!(
                    fo[i..i + 4],
                    fc[i..i + 4],
                    "pixel {x},{y} outside eyes changed"
                );
            }
        }
    }
}

#[test]
fn idle_blink_darkens_eyes_from_pixels() {
    let mut av = Avatar::new(256, 256, 8).unwrap();
    let e = av.blink_events(0, 10_000)[0];
    let t_closed = (e.start_ms..e.start_ms + e.duration_ms)
        .find(|&t| av.motion_at(t).blink >= 1.0)
        .unwrap();
    let t_open = e.start_ms - 400;
    assert_eq!(av.motion_at(t_open).blink, 0.0);
    let (mut fo, mut fc) = (frame(&av), frame(&av));
    av.render_rgba(t_open, MouthPose::CLOSED, &mut fo).unwrap();
    av.render_rgba(t_closed, MouthPose::CLOSED, &mut fc)
        .unwrap();
    let wo = count(&fo, 256, av.eyes_region(t_open), sclera_white);
    let wc = count(&fc, 256, av.eyes_region(t_closed), sclera_white);
    assert!(wo > 15 && wc < 3, "white pixels open {wo}, closed {wc}");
}

fn dark_area(av: &mut Avatar, t: u64, mouth: MouthPose) -> usize {
    let mut f = frame(av);
    av.render_rgba(t, mouth, &mut f).unwrap();
    let w = av.width();
    count(&f, w, av.mouth_region(t), dark)
}

#[test]
fn mouth_dark_interior_grows_with_open() {
    let mut av = Avatar::new(512, 512, 21).unwrap();
    let t = 1_000;
    for (wide, round) in [(0.0, 0.0), (0.65, 0.0), (0.0, 0.75), (1.0, 0.0), (0.0, 1.0)] {
        let areas: Vec<usize> = (0..=10)
            .map(|i| dark_area(&mut av, t, MouthPose::new(i as f32 / 10.0, wide, round)))
            .collect();
        assert!(areas[0] < 3, "closed mouth has {} dark pixels", areas[0]);
        for w in areas.windows(2) {
            assert!(
                w[1] >= w[0],
                "not monotonic for wide {wide} round {round}: {areas:?}"
            );
        }
        assert!(areas[10] > 400, "wide open: {areas:?}");
        assert!(areas[10] > 3 * areas[3], "{areas:?}");
    }
    // Presets: closed ones are closed, A is the most open.
    let area = |v| {
        dark_area(
            &mut Avatar::new(512, 512, 21).unwrap(),
            t,
            MouthPose::for_vowel(v),
        )
    };
    assert!(area(VowelClass::Rest) < 3);
    assert!(area(VowelClass::Closed) < 3);
    let a = area(VowelClass::A);
    for v in [VowelClass::E, VowelClass::I, VowelClass::O, VowelClass::U] {
        let x = area(v);
        assert!(x > 20 && x < a, "{v:?}: {x} vs A {a}");
    }
}

#[test]
fn mouth_opening_appears_inside_mouth_region() {
    let mut av = Avatar::new(384, 384, 2).unwrap();
    let t = 7_777;
    let (mut a, mut b) = (frame(&av), frame(&av));
    av.render_rgba(t, MouthPose::CLOSED, &mut a).unwrap();
    av.render_rgba(t, MouthPose::for_vowel(VowelClass::A), &mut b)
        .unwrap();
    let (x0, y0, w, h) = av.mouth_region(t);
    let (mut inside, mut outside) = (0, 0);
    for y in 0..384u32 {
        for x in 0..384u32 {
            let i = ((y * 384 + x) * 4) as usize;
            if dark(&b[i..i + 4]) && !dark(&a[i..i + 4]) {
                if x >= x0 && x < x0 + w && y >= y0 && y < y0 + h {
                    inside += 1;
                } else {
                    outside += 1;
                }
            }
        }
    }
    assert!(inside > 300, "{inside}");
    assert_eq!(outside, 0, "dark pixels appeared outside the mouth region");
    // The region is snug: a small part of the frame, around the lower middle.
    assert!(w * h < 384 * 384 / 20, "{w}x{h}");
    assert!(y0 > 384 / 2 && x0 < 192 && x0 + w > 192);
}

#[test]
fn render_is_deterministic_and_stateless() {
    let mouth = MouthPose::for_vowel(VowelClass::O);
    let mut a = Avatar::new(200, 120, 99).unwrap();
    let mut b = Avatar::new(200, 120, 99).unwrap();
    let (mut fa, mut fb) = (frame(&a), frame(&b));
    a.render_rgba(12_345, mouth, &mut fa).unwrap();
    // b renders other frames first: the result must not depend on history.
    for t in [0, 40, 99_000, 5] {
        b.render_rgba(t, MouthPose::CLOSED, &mut fb).unwrap();
    }
    b.render_rgba(12_345, mouth, &mut fb).unwrap();
    assert_eq!(fa, fb);
    // Another seed moves differently.
    let mut c = Avatar::new(200, 120, 100).unwrap();
    let mut fc = frame(&c);
    c.render_rgba(12_345, mouth, &mut fc).unwrap();
    assert_ne!(fa, fc);
}

#[test]
fn head_motion_is_small_continuous_and_alive() {
    let mut av = Avatar::new(512, 512, 4).unwrap();
    let mut prev = av.motion_at(0);
    let (mut min_dx, mut max_dx) = (f32::MAX, f32::MIN);
    let mut breath_range = (f32::MAX, f32::MIN);
    for i in 1..(120 * 25) {
        let t = i * 40;
        let m = av.motion_at(t);
        assert!(m.head_dx.abs() < 12.0 && m.head_dy.abs() < 12.0, "{m:?}");
        assert!(m.tilt_rad.abs() < 0.06, "{m:?}");
        assert!(
            (m.head_dx - prev.head_dx).abs() < 0.5,
            "jump at {t}: {prev:?} -> {m:?}"
        );
        assert!((m.head_dy - prev.head_dy).abs() < 0.5, "jump at {t}");
        assert!((m.tilt_rad - prev.tilt_rad).abs() < 0.003, "jump at {t}");
        assert!((m.breath - prev.breath).abs() < 0.1, "jump at {t}");
        assert!(m.gaze_x.abs() <= 1.0 && m.gaze_y.abs() <= 1.0);
        min_dx = min_dx.min(m.head_dx);
        max_dx = max_dx.max(m.head_dx);
        breath_range = (breath_range.0.min(m.breath), breath_range.1.max(m.breath));
        prev = m;
    }
    assert!(
        max_dx - min_dx > 2.0,
        "head does not sway: {min_dx}..{max_dx}"
    );
    assert!(breath_range.0 < -0.9 && breath_range.1 > 0.9);
    // Offsets scale with the output size.
    let mut small = Avatar::new(256, 256, 4).unwrap();
    let (a, b) = (av.motion_at(5_000), small.motion_at(5_000));
    assert!((a.head_dx - 2.0 * b.head_dx).abs() < 1e-3);
}

#[test]
fn consecutive_frames_differ_little() {
    let mut av = Avatar::new(256, 256, 6).unwrap();
    let (mut a, mut b) = (frame(&av), frame(&av));
    // Pick a stretch without a blink.
    let e = av.blink_events(0, 10_000)[0];
    let t0 = e.start_ms + e.duration_ms * 3 + 400;
    av.render_rgba(t0, MouthPose::CLOSED, &mut a).unwrap();
    av.render_rgba(t0 + 40, MouthPose::CLOSED, &mut b).unwrap();
    let changed = a
        .chunks_exact(4)
        .zip(b.chunks_exact(4))
        .filter(|(p, q)| p.iter().zip(q.iter()).any(|(x, y)| x.abs_diff(*y) > 24))
        .count();
    assert!(
        changed < 256 * 256 / 50,
        "{changed} pixels changed a lot in 40 ms"
    );
}

#[test]
fn wrong_buffer_size_is_an_error() {
    let mut av = Avatar::new(64, 48, 1).unwrap();
    for len in [0, 64 * 48 * 4 - 1, 64 * 48 * 4 + 4, 64 * 48 * 3] {
        let mut buf = vec![0u8; len];
        let err = av.render_rgba(0, MouthPose::CLOSED, &mut buf).unwrap_err();
        assert_eq!(
            err,
            AvatarError::BufferSize {
                expected: 64 * 48 * 4,
                actual: len
            }
        );
    }
}

#[test]
fn invalid_sizes_are_errors() {
    for (w, h) in [
        (0, 64),
        (64, 0),
        (63, 64),
        (64, 65),
        (4098, 64),
        (64, 5000),
        (1, 1),
    ] {
        assert!(
            matches!(Avatar::new(w, h, 0), Err(AvatarError::InvalidSize { .. })),
            "{w}x{h}"
        );
    }
    assert!(Avatar::new(4096, 2, 0).is_ok());
    assert!(Avatar::new(2, 2, 0).is_ok());
}

#[test]
fn non_square_and_tiny_sizes_render_opaque_centered_faces() {
    for (w, h) in [(640, 360), (360, 640), (2, 2), (98, 40)] {
        let mut av = Avatar::new(w, h, 13).unwrap();
        assert_eq!((av.width(), av.height()), (w, h));
        let mut f = frame(&av);
        av.render_rgba(2_000, MouthPose::for_vowel(VowelClass::A), &mut f)
            .unwrap();
        assert!(f.chunks_exact(4).all(|p| p[3] == 255), "{w}x{h} not opaque");
        for r in [av.mouth_region(2_000), av.eyes_region(2_000)] {
            assert!(r.0 + r.2 <= w && r.1 + r.3 <= h, "{r:?} outside {w}x{h}");
        }
        if w >= 64 {
            let (mx, _, mw, _) = av.mouth_region(2_000);
            let centre = mx as f32 + mw as f32 / 2.0;
            let side = w.min(h) as f32;
            assert!(
                (centre - w as f32 / 2.0).abs() < side * 0.05,
                "{w}x{h}: {centre}"
            );
            assert!(count(&f, w, av.mouth_region(2_000), dark) > 0);
        }
    }
    // Wide frames keep the face the height of the frame: mouth sizes agree with a square frame
    // of the same height.
    let mut wide = Avatar::new(640, 360, 1).unwrap();
    let mut square = Avatar::new(360, 360, 1).unwrap();
    let (_, _, ww, wh) = wide.mouth_region(0);
    let (_, _, sw, sh) = square.mouth_region(0);
    assert!(ww.abs_diff(sw) <= 1 && wh.abs_diff(sh) <= 1);
}

#[test]
fn extreme_inputs_do_not_panic() {
    let mut av = Avatar::new(96, 96, u64::MAX).unwrap();
    let mut f = frame(&av);
    for t in [0, u64::MAX / 2, u64::MAX] {
        av.render_rgba(t, MouthPose::new(f32::NAN, 9.0, -3.0), &mut f)
            .unwrap();
    }
    let wild = Motion {
        blink: f32::INFINITY,
        head_dx: 1e30,
        head_dy: f32::NAN,
        tilt_rad: 40.0,
        breath: -7.0,
        gaze_x: f32::NEG_INFINITY,
        gaze_y: 3.0,
    };
    av.render_rgba_with_motion(&wild, MouthPose::CLOSED, &mut f)
        .unwrap();
    assert!(f.chunks_exact(4).all(|p| p[3] == 255));
}
