//! Behaviour tests of the user's own portrait: loading PNG and JPEG, errors that name the file,
//! the closed mouth being the photo exactly, mouth opening from pixels, blinks confined to the
//! eyes, letterboxing to any output size, determinism, and the `Face` switch.

use std::path::{Path, PathBuf};

use talkstream_avatar::analysis::measure_mouth_opening;
use talkstream_avatar::portrait::{default_manifest_path, FeatureBox};
use talkstream_avatar::{
    Avatar, AvatarError, Face, Motion, MouthPose, Portrait, PortraitError, PortraitFace,
    PortraitManifest, VowelClass,
};

/// A face-like test picture: textured skin, two eyes (white, dark iris), light red lips.
fn synthetic_face(w: u32, h: u32) -> (Vec<u8>, PortraitManifest) {
    let (wf, hf) = (w as f32, h as f32);
    let manifest = PortraitManifest {
        mouth: FeatureBox::new(wf * 0.5, hf * 0.7, wf * 0.3, hf * 0.08),
        left_eye: FeatureBox::new(wf * 0.33, hf * 0.42, wf * 0.16, hf * 0.06),
        right_eye: FeatureBox::new(wf * 0.67, hf * 0.42, wf * 0.16, hf * 0.06),
    };
    let inside = |b: &FeatureBox, x: f32, y: f32| {
        let u = (x - b.x) / (b.width / 2.0);
        let v = (y - b.y) / (b.height / 2.0);
        u * u + v * v < 1.0
    };
    let mut rgba = Vec::with_capacity((w * h * 4) as usize);
    for y in 0..h {
        for x in 0..w {
            let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
            // Skin with a gentle gradient and a deterministic fine texture.
            let tex = ((x.wrapping_mul(73) ^ y.wrapping_mul(151)) % 9) as f32 - 4.0;
            let mut c = [
                222.0 - 20.0 * fy / hf + tex,
                176.0 - 16.0 * fy / hf + tex,
                150.0 - 10.0 * fy / hf + tex,
            ];
            for eye in [&manifest.left_eye, &manifest.right_eye] {
                if inside(eye, fx, fy) {
                    let iris = FeatureBox::new(eye.x, eye.y, eye.height, eye.height);
                    c = if inside(&iris, fx, fy) {
                        [60.0, 40.0, 30.0]
                    } else {
                        [240.0, 238.0, 235.0]
                    };
                }
            }
            if inside(&manifest.mouth, fx, fy) {
                let seam = (fy - manifest.mouth.y).abs() < 1.0;
                c = if seam {
                    [160.0, 80.0, 80.0]
                } else {
                    [205.0, 118.0, 112.0]
                };
            }
            rgba.extend(c.iter().map(|v| v.clamp(0.0, 255.0) as u8));
            rgba.push(255);
        }
    }
    (rgba, manifest)
}

fn encode_png(w: u32, h: u32, rgba: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().unwrap();
        writer.write_image_data(rgba).unwrap();
        writer.finish().unwrap();
    }
    out
}

/// A fresh directory for this test's files.
fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("talkstream-portrait-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn synthetic_portrait(w: u32, h: u32) -> Portrait {
    let (rgba, manifest) = synthetic_face(w, h);
    Portrait::from_rgba(w, h, rgba, manifest).unwrap()
}

fn render(face: &PortraitFace, blink: f32, mouth: MouthPose) -> Vec<u8> {
    let mut out = vec![0u8; face.frame_len()];
    let motion = Motion {
        blink,
        ..Motion::STILL
    };
    face.render_rgba_with_motion(&motion, mouth, &mut out)
        .unwrap();
    out
}

/// Whether `a` and `b` (RGBA frames `w` wide) differ inside / outside `region`.
fn diff_in_out(a: &[u8], b: &[u8], w: u32, region: (u32, u32, u32, u32)) -> (usize, usize) {
    let (rx, ry, rw, rh) = region;
    let (mut inside, mut outside) = (0, 0);
    for (i, (pa, pb)) in a.chunks_exact(4).zip(b.chunks_exact(4)).enumerate() {
        if pa != pb {
            let (x, y) = (i as u32 % w, i as u32 / w);
            if x >= rx && x < rx + rw && y >= ry && y < ry + rh {
                inside += 1;
            } else {
                outside += 1;
            }
        }
    }
    (inside, outside)
}

#[test]
fn loads_png_from_disk_with_default_manifest_path() {
    let dir = scratch("png");
    let (rgba, manifest) = synthetic_face(160, 200);
    let image = dir.join("me.png");
    std::fs::write(&image, encode_png(160, 200, &rgba)).unwrap();
    assert_eq!(default_manifest_path(&image), dir.join("me.png.json"));
    std::fs::write(dir.join("me.png.json"), manifest.to_json()).unwrap();

    let p = Portrait::load(&image, None).unwrap();
    assert_eq!((p.width(), p.height()), (160, 200));
    assert_eq!(p.rgba(), &rgba[..]);
    assert_eq!(p.manifest(), &manifest);

    // An explicit manifest path wins.
    let other = dir.join("features.json");
    std::fs::write(&other, manifest.to_json()).unwrap();
    std::fs::remove_file(dir.join("me.png.json")).unwrap();
    assert!(Portrait::load(&image, None).is_err());
    assert_eq!(Portrait::load(&image, Some(&other)).unwrap(), p);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn png_transparency_is_flattened_and_grey_png_is_read() {
    let (mut rgba, manifest) = synthetic_face(40, 40);
    rgba[3] = 0; // first pixel fully transparent
    let bytes = encode_png(40, 40, &rgba);
    let json = manifest.to_json();
    let p = Portrait::from_encoded(&bytes, &json, Path::new("a.png"), Path::new("a.json")).unwrap();
    assert_eq!(&p.rgba()[..4], &[128, 128, 128, 255]);
    assert!(p.rgba().chunks_exact(4).all(|px| px[3] == 255));

    // 8-bit greyscale PNG.
    let grey: Vec<u8> = (0..40 * 40).map(|i| (i % 251) as u8).collect();
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, 40, 40);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().unwrap();
        w.write_image_data(&grey).unwrap();
        w.finish().unwrap();
    }
    let p = Portrait::from_encoded(&bytes, &json, Path::new("g.png"), Path::new("g.json")).unwrap();
    assert_eq!(&p.rgba()[4 * 7..4 * 8], &[7, 7, 7, 255]);
}

#[test]
fn loads_jpeg_fixture_and_animates_it() {
    // tests/fixtures/face128.jpg: the drawn avatar at 128x128, JPEG 4:2:0 (made with ffmpeg).
    let p = Portrait::load(&fixture("face128.jpg"), None).unwrap();
    assert_eq!((p.width(), p.height()), (128, 128));
    let px = |x: usize, y: usize| -> [u8; 3] {
        let i = (y * 128 + x) * 4;
        [p.rgba()[i], p.rgba()[i + 1], p.rgba()[i + 2]]
    };
    // Light blue background at the top-left, blue shirt at the bottom centre.
    let bg = px(4, 4);
    assert!(bg[2] > 225 && bg[2] > bg[0] && bg[0] > 190, "{bg:?}");
    let shirt = px(64, 120);
    assert!(shirt[2] > shirt[0] + 60, "{shirt:?}");

    let face = PortraitFace::new(&p, 512, 512, 1).unwrap();
    let region = face.mouth_region();
    let closed = render(&face, 0.0, MouthPose::CLOSED);
    let open = render(&face, 0.0, MouthPose::for_vowel(VowelClass::A));
    let m0 = measure_mouth_opening(&closed, 512, region);
    let m1 = measure_mouth_opening(&open, 512, region);
    // The region also holds some dark hair beside the chin, so closed is not exactly 0.
    assert_eq!(closed, face.base_rgba());
    assert!(m1 > m0 + 0.01, "open {m1} vs closed {m0}");
}

#[test]
fn errors_name_the_file() {
    let dir = scratch("errors");
    let (rgba, manifest) = synthetic_face(64, 64);
    let image = dir.join("face.png");
    std::fs::write(&image, encode_png(64, 64, &rgba)).unwrap();
    let good = manifest.to_json();
    let mpath = dir.join("face.png.json");
    let msg = |e: PortraitError| e.to_string();

    // Missing image.
    let missing = dir.join("nope.png");
    let e = Portrait::load(&missing, Some(&mpath)).unwrap_err();
    assert!(
        matches!(e, PortraitError::Read { what: "image", .. }),
        "{e:?}"
    );
    assert!(msg(e).contains("nope.png"));

    // Missing manifest.
    let e = Portrait::load(&image, None).unwrap_err();
    assert!(
        matches!(
            e,
            PortraitError::Read {
                what: "manifest",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(msg(e).contains("face.png.json"));

    // Not JSON / wrong shape / unknown key / region outside the image.
    let bad_manifests = [
        ("{not json", "expected"),
        (
            r#"{"mouth": {"x": 1, "y": 2, "width": 3, "height": 4}}"#,
            "left_eye",
        ),
        (&good.replace("\"height\"", "\"heigth\""), "heigth"),
        (&good.replacen("\"x\": 32.0", "\"x\": 62.0", 1), "mouth"),
        (
            r#"{"mouth": {"x": 32, "y": 40, "width": 10, "height": 4},
                "left_eye": {"x": 40, "y": 20, "width": 8, "height": 4},
                "right_eye": {"x": 20, "y": 20, "width": 8, "height": 4}}"#,
            "left_eye",
        ),
        (
            r#"{"mouth": {"x": 32, "y": 40, "width": 1, "height": 4},
                "left_eye": {"x": 20, "y": 20, "width": 8, "height": 4},
                "right_eye": {"x": 40, "y": 20, "width": 8, "height": 4}}"#,
            "at least 2",
        ),
    ];
    for (json, needle) in bad_manifests {
        std::fs::write(&mpath, json).unwrap();
        let e = Portrait::load(&image, None).unwrap_err();
        assert!(matches!(e, PortraitError::Manifest { .. }), "{json}: {e:?}");
        let m = msg(e);
        assert!(m.contains("face.png.json"), "{m}");
        assert!(m.contains(needle), "{json}: {m}");
    }
    assert!(good.contains("\"x\": 32.0"), "fixture assumption: {good}");

    // Wrong format: a GIF header, an empty file, a truncated PNG.
    std::fs::write(&mpath, &good).unwrap();
    for (bytes, needle) in [
        (b"GIF89a\x01\x00\x01\x00".to_vec(), "not a PNG or JPEG"),
        (Vec::new(), "empty"),
        (encode_png(64, 64, &rgba)[..60].to_vec(), "PNG"),
        (vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 0], "JPEG"),
    ] {
        std::fs::write(&image, &bytes).unwrap();
        let e = Portrait::load(&image, None).unwrap_err();
        assert!(matches!(e, PortraitError::Image { .. }), "{e:?}");
        let m = msg(e);
        assert!(m.contains("face.png") && m.contains(needle), "{m}");
    }

    // Too large.
    let wide = vec![200u8; 4097 * 2 * 4];
    std::fs::write(&image, encode_png(4097, 2, &wide)).unwrap();
    let e = Portrait::load(&image, None).unwrap_err();
    let m = msg(e);
    assert!(m.contains("face.png") && m.contains("4097x2"), "{m}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn closed_mouth_and_open_eyes_is_the_photo_exactly() {
    let p = synthetic_portrait(160, 200);
    // Same size: no scaling at all, so the frame is the decoded image itself.
    let face = PortraitFace::new(&p, 160, 200, 3).unwrap();
    assert_eq!(face.base_rgba(), p.rgba());
    assert_eq!(face.image_rect(), (0, 0, 160, 200));
    for mouth in [
        MouthPose::CLOSED,
        MouthPose::for_vowel(VowelClass::Closed),
        MouthPose::new(0.0, 1.0, 1.0),
        MouthPose::new(-1.0, f32::NAN, 0.5),
    ] {
        assert_eq!(render(&face, 0.0, mouth), p.rgba(), "{mouth:?}");
    }
    // Scaled: the frame is the scaled base.
    let face = PortraitFace::new(&p, 256, 256, 3).unwrap();
    let frame = render(&face, 0.0, MouthPose::CLOSED);
    assert_eq!(frame, face.base_rgba());
    // A full frame write: stale buffer contents never leak through.
    let mut out = vec![7u8; face.frame_len()];
    face.render_rgba_with_motion(&Motion::STILL, MouthPose::CLOSED, &mut out)
        .unwrap();
    assert_eq!(out, frame);
}

#[test]
fn mouth_opening_grows_with_open_and_stays_in_its_region() {
    let p = synthetic_portrait(200, 200);
    for (w, h) in [(512, 512), (256, 256)] {
        let face = PortraitFace::new(&p, w, h, 1).unwrap();
        let region = face.mouth_region();
        let base = face.base_rgba().to_vec();
        let mut prev = -1.0;
        for i in 0..=10 {
            let open = i as f32 / 10.0;
            for (wide, round) in [(0.0, 0.0), (0.6, 0.0), (0.0, 0.8)] {
                let frame = render(&face, 0.0, MouthPose::new(open, wide, round));
                let (inside, outside) = diff_in_out(&frame, &base, w, region);
                assert_eq!(
                    outside, 0,
                    "open {open}: pixels changed outside the mouth region"
                );
                if open > 0.0 {
                    assert!(inside > 0, "open {open} changed nothing");
                }
            }
            let frame = render(&face, 0.0, MouthPose::new(open, 0.0, 0.0));
            let m = measure_mouth_opening(&frame, w, region);
            if i == 0 {
                assert!(m < 0.001, "closed mouth measures {m}");
            } else {
                assert!(
                    m > prev,
                    "{w}x{h}: open {open} measures {m}, not above {prev}"
                );
            }
            prev = m;
        }
        assert!(prev > 0.03, "fully open mouth measures only {prev}");
    }
}

#[test]
fn wide_widens_and_round_narrows_the_opening() {
    let p = synthetic_portrait(200, 200);
    let face = PortraitFace::new(&p, 400, 400, 1).unwrap();
    let base = face.base_rgba();
    // Width of the changed columns on the mouth's centre row.
    let (cx, cy) = (200usize, 280usize);
    let span = |mouth: MouthPose| -> usize {
        let f = render(&face, 0.0, mouth);
        let dark = |x: usize| {
            let i = (cy * 400 + x) * 4;
            f[i] != base[i] && f[i] < 120
        };
        (0..400)
            .filter(|&x| dark(x) && x.abs_diff(cx) < 120)
            .count()
    };
    let plain = span(MouthPose::new(0.6, 0.0, 0.0));
    let wide = span(MouthPose::new(0.6, 1.0, 0.0));
    let round = span(MouthPose::new(0.6, 0.0, 1.0));
    assert!(plain > 10, "{plain}");
    assert!(wide > plain, "wide {wide} vs {plain}");
    assert!(round < plain, "round {round} vs {plain}");
}

#[test]
fn blinks_change_only_the_eyes_region() {
    let p = synthetic_portrait(160, 200);
    let face = PortraitFace::new(&p, 320, 400, 5).unwrap();
    let (w, base) = (320, face.base_rgba().to_vec());
    let eyes = face.eyes_region();
    assert_eq!(render(&face, 0.0, MouthPose::CLOSED), base);
    let half = render(&face, 0.5, MouthPose::CLOSED);
    let full = render(&face, 1.0, MouthPose::CLOSED);
    let (hi, ho) = diff_in_out(&half, &base, w, eyes);
    let (fi, fo) = diff_in_out(&full, &base, w, eyes);
    assert_eq!(
        (ho, fo),
        (0, 0),
        "blinking changed pixels outside the eyes region"
    );
    assert!(hi > 50 && fi > hi, "half {hi}, full {fi}");
    // Closed eyes hide the dark irises: no very dark pixel left at the eye centres.
    for eye in [&p.manifest().left_eye, &p.manifest().right_eye] {
        let (x, y) = ((eye.x * 2.0) as usize, (eye.y * 2.0) as usize);
        let i = (y * w as usize + x) * 4;
        assert!(base[i] < 100, "iris in the base");
        assert!(
            full[i] > 150,
            "iris still visible when closed: {:?}",
            &full[i..i + 3]
        );
    }
    // The mouth region and the eyes region do not overlap for this face.
    let m = face.mouth_region();
    assert!(eyes.1 + eyes.3 <= m.1, "eyes {eyes:?} mouth {m:?}");

    // Through the schedule: some frame blinks fully, and blinking frames differ in the eyes.
    let mut frame = vec![0u8; face.frame_len()];
    let t = (0..20_000u64)
        .step_by(10)
        .find(|&t| face.motion_at(t).blink == 1.0)
        .expect("a full blink in 20 s");
    face.render_rgba(t, MouthPose::CLOSED, &mut frame).unwrap();
    assert_eq!(frame, full);
}

#[test]
fn blink_schedule_matches_the_drawn_avatar() {
    let p = synthetic_portrait(64, 64);
    let face = PortraitFace::new(&p, 64, 64, 11).unwrap();
    let mut drawn = Avatar::new(64, 64, 11).unwrap();
    assert_eq!(
        face.blink_events(0, 120_000),
        drawn.blink_events(0, 120_000)
    );
    for t in (0..30_000).step_by(20) {
        let m = face.motion_at(t);
        assert_eq!(m.blink, drawn.motion_at(t).blink, "t {t}");
        assert_eq!((m.head_dx, m.head_dy, m.tilt_rad), (0.0, 0.0, 0.0));
    }
}

#[test]
fn non_square_outputs_letterbox_the_photo() {
    let p = synthetic_portrait(160, 200);
    for (w, h) in [(640, 360), (360, 640), (200, 200), (1280, 720), (2, 2)] {
        let face = PortraitFace::new(&p, w, h, 2).unwrap();
        let (ix, iy, iw, ih) = face.image_rect();
        assert!(ix + iw <= w && iy + ih <= h);
        // Contain: the photo touches two opposite sides and keeps its aspect ratio.
        assert!(iw == w || ih == h, "{w}x{h}: {:?}", face.image_rect());
        let aspect = iw as f32 / ih as f32;
        assert!(
            (aspect - 0.8).abs() < 0.8 * 2.0 / ih.min(iw) as f32 + 0.01,
            "{aspect}"
        );
        // The bars are one flat colour.
        let base = face.base_rgba();
        let fill = &base[..4];
        for (i, px) in base.chunks_exact(4).enumerate() {
            let (x, y) = (i as u32 % w, i as u32 / w);
            if x < ix || x >= ix + iw || y < iy || y >= iy + ih {
                assert_eq!(px, fill);
            }
        }
        // Regions lie inside the photo, and rendering works.
        for (rx, ry, rw, rh) in [face.mouth_region(), face.eyes_region()] {
            assert!(rx >= ix && ry >= iy && rx + rw <= ix + iw && ry + rh <= iy + ih);
        }
        let frame = render(&face, 1.0, MouthPose::for_vowel(VowelClass::A));
        assert_eq!(frame.len(), (w * h * 4) as usize);
        assert!(frame.chunks_exact(4).all(|px| px[3] == 255));
        if w >= 360 {
            let m = measure_mouth_opening(&frame, w, face.mouth_region());
            assert!(m > 0.02, "{w}x{h}: opening {m}");
        }
    }
}

#[test]
fn rendering_is_deterministic() {
    let p = synthetic_portrait(120, 150);
    let a = PortraitFace::new(&p, 240, 200, 9).unwrap();
    let b = PortraitFace::new(&p, 240, 200, 9).unwrap();
    let (mut fa, mut fb) = (vec![0u8; a.frame_len()], vec![0u8; b.frame_len()]);
    for i in 0..400u64 {
        let mouth = MouthPose::for_vowel(VowelClass::ALL[(i % 7) as usize]);
        a.render_rgba(i * 40, mouth, &mut fa).unwrap();
        b.render_rgba(i * 40, mouth, &mut fb).unwrap();
        assert_eq!(fa, fb, "frame {i}");
    }
    // Out of order and repeated: the same time and pose give the same pixels.
    let first = render(&a, 0.3, MouthPose::for_vowel(VowelClass::O));
    let _ = render(&a, 1.0, MouthPose::for_vowel(VowelClass::A));
    assert_eq!(render(&a, 0.3, MouthPose::for_vowel(VowelClass::O)), first);
}

#[test]
fn size_and_buffer_errors() {
    let p = synthetic_portrait(64, 64);
    for (w, h) in [(0, 64), (63, 64), (64, 4098)] {
        assert_eq!(
            PortraitFace::new(&p, w, h, 0).unwrap_err(),
            AvatarError::InvalidSize {
                width: w,
                height: h
            }
        );
    }
    let face = PortraitFace::new(&p, 64, 64, 0).unwrap();
    let mut short = vec![0u8; 100];
    assert_eq!(
        face.render_rgba(0, MouthPose::CLOSED, &mut short),
        Err(AvatarError::BufferSize {
            expected: 64 * 64 * 4,
            actual: 100
        })
    );
    // Bad pixel buffers and manifests given in memory.
    let (rgba, manifest) = synthetic_face(64, 64);
    assert!(Portrait::from_rgba(64, 64, rgba[..100].to_vec(), manifest).is_err());
    assert!(Portrait::from_rgba(0, 64, Vec::new(), manifest).is_err());
    let mut nan = manifest;
    nan.mouth.x = f32::NAN;
    assert!(Portrait::from_rgba(64, 64, rgba, nan).is_err());
}

#[test]
fn face_switches_between_drawn_and_portrait() {
    let p = synthetic_portrait(100, 100);
    let mut drawn = Face::new(200, 160, 4, None).unwrap();
    let mut own = Face::new(200, 160, 4, Some(&p)).unwrap();
    assert!(matches!(drawn, Face::Drawn(_)));
    assert!(matches!(own, Face::Portrait(_)));
    for face in [&mut drawn, &mut own] {
        assert_eq!(
            (face.width(), face.height(), face.frame_len()),
            (200, 160, 200 * 160 * 4)
        );
        let mut frame = vec![0u8; face.frame_len()];
        face.render_rgba(1_000, MouthPose::for_vowel(VowelClass::A), &mut frame)
            .unwrap();
        let m = face.mouth_region(1_000);
        assert!(measure_mouth_opening(&frame, 200, m) > 0.01);
        let e = face.eyes_region(1_000);
        assert!(e.1 < m.1, "eyes above the mouth");
    }
    assert_eq!(drawn.blink_events(0, 60_000), own.blink_events(0, 60_000));
    assert!(Face::new(3, 160, 4, Some(&p)).is_err());
}
