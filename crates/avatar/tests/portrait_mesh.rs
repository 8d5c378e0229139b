//! A portrait with a landmarks file is animated by the landmark mesh: at rest and still it is
//! the photo exactly; an open mouth shows a dark inside with teeth under the upper lip; a blink
//! moves the upper lids; a bad landmarks file is refused naming the file; a portrait without
//! landmarks keeps the box warp.

use std::path::PathBuf;

use talkstream_avatar::mesh::{template_landmarks, Point};
use talkstream_avatar::portrait::landmarks::{default_landmarks_path, manifest_from_landmarks};
use talkstream_avatar::{Motion, MouthPose, Portrait, PortraitFace};

const S: u32 = 512;

/// A skin-toned face with darker, redder lips along the template's lip landmarks.
fn photo(points: &[Point]) -> Vec<u8> {
    let mut rgba = Vec::with_capacity((S * S * 4) as usize);
    let (mx, my) = (
        (points[48].x + points[54].x) / 2.0,
        (points[51].y + points[57].y) / 2.0,
    );
    for y in 0..S {
        for x in 0..S {
            let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
            let lips = ((fx - mx) / 50.0).powi(2) + ((fy - my) / 19.0).powi(2) < 1.0;
            let c = if lips {
                [178.0, 92.0, 98.0]
            } else {
                // Skin with a gentle gradient and fine texture.
                let t = ((x * 13 + y * 7) % 11) as f32;
                [214.0 - fy * 0.05 + t, 170.0 + t, 150.0 + t]
            };
            rgba.extend(c.iter().map(|v| v.clamp(0.0, 255.0) as u8));
            rgba.push(255);
        }
    }
    rgba
}

fn face() -> (Portrait, Vec<Point>) {
    let points = template_landmarks(Point::new(256.0, 270.0), 100.0);
    let portrait = Portrait::from_rgba(S, S, photo(&points), manifest_from_landmarks(&points))
        .unwrap()
        .with_landmarks(points.clone())
        .unwrap();
    (portrait, points)
}

fn luma(frame: &[u8], x: u32, y: u32) -> f32 {
    let i = ((y * S + x) * 4) as usize;
    0.299 * f32::from(frame[i]) + 0.587 * f32::from(frame[i + 1]) + 0.114 * f32::from(frame[i + 2])
}

#[test]
fn still_and_silent_the_frame_is_the_photo() {
    let (portrait, _) = face();
    let face = PortraitFace::new(&portrait, S, S, 3).unwrap();
    let mut out = vec![0u8; face.frame_len()];
    face.render_rgba_with_motion(&Motion::STILL, MouthPose::CLOSED, &mut out)
        .unwrap();
    assert!(out == face.base_rgba(), "the rest pose is not the photo");
}

#[test]
fn an_open_mouth_is_dark_inside_with_teeth_under_the_upper_lip() {
    let (portrait, p) = face();
    let face = PortraitFace::new(&portrait, S, S, 3).unwrap();
    let mut out = vec![0u8; face.frame_len()];
    face.render_rgba_with_motion(&Motion::STILL, MouthPose::new(1.0, 0.0, 0.0), &mut out)
        .unwrap();
    let cx = p[62].x as u32;
    // Down the middle of the opened mouth: teeth (bright) right under the upper lip, then the
    // dark cavity.
    let top = p[62].y as u32;
    let column: Vec<f32> = (top..top + 30).map(|y| luma(&out, cx, y)).collect();
    let brightest = column[..8].iter().cloned().fold(0.0, f32::max);
    let darkest = column.iter().cloned().fold(255.0, f32::min);
    assert!(
        brightest > 150.0,
        "no teeth under the upper lip: {column:?}"
    );
    assert!(darkest < 60.0, "no dark inside: {column:?}");
    // The forehead did not move.
    for y in 60..120 {
        for x in (200..312).step_by(7) {
            assert_eq!(luma(&out, x, y), luma(face.base_rgba(), x, y));
        }
    }
}

#[test]
fn a_blink_moves_the_upper_lids_and_nothing_below_the_nose() {
    let (portrait, p) = face();
    let face = PortraitFace::new(&portrait, S, S, 3).unwrap();
    let mut out = vec![0u8; face.frame_len()];
    let blink = Motion {
        blink: 1.0,
        ..Motion::STILL
    };
    face.render_rgba_with_motion(&blink, MouthPose::CLOSED, &mut out)
        .unwrap();
    let base = face.base_rgba();
    let eye_y = p[37].y as u32;
    let changed_eyes = (eye_y - 10..eye_y + 10)
        .flat_map(|y| (p[36].x as u32..p[45].x as u32).map(move |x| (x, y)))
        .filter(|&(x, y)| luma(&out, x, y) != luma(base, x, y))
        .count();
    assert!(changed_eyes > 50, "{changed_eyes} eye pixels changed");
    let mouth_y = p[57].y as u32 + 5;
    for x in (p[48].x as u32..p[54].x as u32).step_by(3) {
        assert_eq!(luma(&out, x, mouth_y), luma(base, x, mouth_y));
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("talkstream-mesh-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn png(rgba: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, S, S);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().unwrap();
        writer.write_image_data(rgba).unwrap();
        writer.finish().unwrap();
    }
    out
}

#[test]
fn a_landmarks_file_next_to_the_image_is_enough_and_a_bad_one_is_refused() {
    let dir = scratch("file");
    let points = template_landmarks(Point::new(256.0, 270.0), 100.0);
    let image = dir.join("me.png");
    std::fs::write(&image, png(&photo(&points))).unwrap();
    let json =
        serde_json::json!({ "points": points.iter().map(|p| [p.x, p.y]).collect::<Vec<_>>() });
    std::fs::write(default_landmarks_path(&image), json.to_string()).unwrap();
    let portrait = Portrait::load(&image, None).unwrap();
    assert_eq!(portrait.landmarks().map(<[Point]>::len), Some(68));
    let mouth = portrait.manifest().mouth;
    assert!(
        (mouth.x - 256.0).abs() < 1.0 && mouth.width > 90.0,
        "{mouth:?}"
    );

    let short = serde_json::json!({ "points": [[1.0, 2.0]] });
    std::fs::write(default_landmarks_path(&image), short.to_string()).unwrap();
    let err = Portrait::load(&image, None).unwrap_err().to_string();
    assert!(
        err.contains("me.png.landmarks.json") && err.contains("68"),
        "{err}"
    );

    let mut upside_down = points.clone();
    for p in &mut upside_down {
        p.y = S as f32 - p.y;
    }
    let json =
        serde_json::json!({ "points": upside_down.iter().map(|p| [p.x, p.y]).collect::<Vec<_>>() });
    std::fs::write(default_landmarks_path(&image), json.to_string()).unwrap();
    let err = Portrait::load(&image, None).unwrap_err().to_string();
    assert!(err.contains("upright"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_photo_with_an_open_mouth_closes_it_in_silence_and_shows_its_own_teeth_when_open() {
    // The template with the lower lip and the jaw 14 px lower: the inner lips 14 px apart.
    let mut points = template_landmarks(Point::new(256.0, 270.0), 100.0);
    for i in (55..=59).chain(65..=67).chain(5..=11) {
        points[i].y += 14.0;
    }
    let mut rgba = photo(&points);
    // The photo's own teeth: white between the inner lips.
    let (top, bottom) = (points[62].y, points[66].y);
    for y in (top as u32 + 1)..(bottom as u32) {
        for x in (points[61].x as u32)..(points[63].x as u32) {
            let i = ((y * S + x) * 4) as usize;
            rgba[i..i + 3].copy_from_slice(&[240, 240, 236]);
        }
    }
    let portrait = Portrait::from_rgba(S, S, rgba, manifest_from_landmarks(&points))
        .unwrap()
        .with_landmarks(points.clone())
        .unwrap();
    let face = PortraitFace::new(&portrait, S, S, 3).unwrap();
    let mut out = vec![0u8; face.frame_len()];
    let white_in_mouth = |frame: &[u8]| {
        ((top - 4.0) as u32..(bottom + 4.0) as u32)
            .flat_map(|y| ((points[61].x as u32)..(points[63].x as u32)).map(move |x| (x, y)))
            .filter(|&(x, y)| luma(frame, x, y) > 225.0)
            .count()
    };
    let in_photo = white_in_mouth(face.base_rgba());
    assert!(in_photo > 300, "{in_photo}");
    // In silence the lips are pressed over the teeth.
    face.render_rgba_with_motion(&Motion::STILL, MouthPose::CLOSED, &mut out)
        .unwrap();
    let silent = white_in_mouth(&out);
    assert!(
        silent < in_photo / 10,
        "silent: {silent} of {in_photo} teeth pixels show"
    );
    // Speaking, the lips part onto the photo's own teeth (nothing is drawn over them).
    face.render_rgba_with_motion(&Motion::STILL, MouthPose::new(0.6, 0.2, 0.0), &mut out)
        .unwrap();
    let open = white_in_mouth(&out);
    assert!(
        open > in_photo / 2,
        "open: {open} of {in_photo} teeth pixels show"
    );
}
