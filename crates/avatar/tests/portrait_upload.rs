//! An uploaded photo with landmarks: a real JPEG with plausible landmarks becomes a portrait;
//! anything else is refused with a sentence that says why (not an image, a header declaring a
//! huge picture, points that are missing, not numbers, outside the photo or not a face), and an
//! open mouth in the photo is accepted with a note.

use talkstream_avatar::mesh::{template_landmarks, Point};
use talkstream_avatar::portrait::upload::{
    mouth_open_ratio, portrait_from_upload, probe, ImageKind, UploadError, UploadLimits,
};

const FACE128: &[u8] = include_bytes!("fixtures/face128.jpg");

/// Landmarks for face128.jpg: the template face scaled to the fixture's eyes (22.5 px apart,
/// centred between the eyes at y 56.75 and the mouth at y 76).
fn face128_points() -> Vec<Point> {
    template_landmarks(Point::new(64.0, 66.4), 22.5)
}

fn limits() -> UploadLimits {
    UploadLimits::default()
}

fn check(bytes: &[u8], points: &[Point]) -> Result<(u32, u32, Vec<String>), UploadError> {
    portrait_from_upload(bytes, points, &limits())
        .map(|c| (c.portrait.width(), c.portrait.height(), c.notes))
}

/// A PNG file's signature and an IHDR chunk declaring `w`×`h` RGBA8, then a few bytes of
/// (not even valid) data: what a decompression bomb's header looks like.
fn png_header(w: u32, h: u32) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
    b.extend(13u32.to_be_bytes());
    b.extend(b"IHDR");
    b.extend(w.to_be_bytes());
    b.extend(h.to_be_bytes());
    b.extend([8, 6, 0, 0, 0]);
    b.extend([0, 0, 0, 0]); // CRC (not checked before the size)
    b.extend([0u8; 64]);
    b
}

/// An RGB PNG of `w`×`h` (a smooth gradient) encoded with the png crate.
fn png_file(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().unwrap();
        let data: Vec<u8> = (0..w * h)
            .flat_map(|i| {
                let (x, y) = (i % w, i / w);
                [(x * 255 / w) as u8, (y * 255 / h) as u8, 128]
            })
            .collect();
        writer.write_image_data(&data).unwrap();
    }
    out
}

#[test]
fn a_real_photo_with_plausible_landmarks_is_accepted() {
    let d = probe(FACE128).unwrap();
    assert_eq!((d.kind, d.width, d.height), (ImageKind::Jpeg, 128, 128));
    let c = portrait_from_upload(FACE128, &face128_points(), &limits()).unwrap();
    assert_eq!((c.portrait.width(), c.portrait.height()), (128, 128));
    assert_eq!(c.portrait.landmarks().map(<[Point]>::len), Some(68));
    assert!(c.notes.is_empty(), "{:?}", c.notes);
    assert!(
        mouth_open_ratio(&face128_points()) < 0.1,
        "the template's mouth is closed"
    );
}

#[test]
fn not_an_image_is_refused_by_its_bytes() {
    let e = check(b"GIF89a\x01\x00\x01\x00", &face128_points()).unwrap_err();
    assert!(matches!(e, UploadError::NotAnImage { .. }), "{e}");
    assert!(e.to_string().contains("not a JPEG or PNG"), "{e}");
    assert_eq!(
        check(b"", &face128_points()).unwrap_err(),
        UploadError::Empty
    );
    // A JPEG that ends inside its header.
    let e = check(&FACE128[..40], &face128_points()).unwrap_err();
    assert!(
        matches!(e, UploadError::Header { .. } | UploadError::Decode(_)),
        "{e}"
    );
}

#[test]
fn a_png_bomb_header_is_refused_before_decoding() {
    // 60000 x 60000 declared in 100 bytes.
    let e = check(&png_header(60_000, 60_000), &face128_points()).unwrap_err();
    assert!(
        matches!(
            e,
            UploadError::DeclaredTooLarge {
                width: 60_000,
                height: 60_000,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("60000x60000"), "{e}");
    // Within the side limit but over the pixel count (64 MiB of RGBA).
    let e = check(&png_header(4096, 4096), &face128_points()).unwrap_err();
    assert!(matches!(e, UploadError::DeclaredTooLarge { .. }), "{e}");
    // An empty picture.
    let e = check(&png_header(0, 10), &face128_points()).unwrap_err();
    assert!(matches!(e, UploadError::Header { .. }), "{e}");
}

#[test]
fn a_jpeg_declaring_a_huge_size_is_refused_before_decoding() {
    // Patch the fixture's frame header (SOF0/SOF2) to declare 60000 x 60000.
    let mut bytes = FACE128.to_vec();
    let sof = (2..bytes.len() - 9)
        .find(|&i| bytes[i] == 0xFF && matches!(bytes[i + 1], 0xC0 | 0xC2))
        .expect("a frame header");
    bytes[sof + 5..sof + 7].copy_from_slice(&60_000u16.to_be_bytes());
    bytes[sof + 7..sof + 9].copy_from_slice(&60_000u16.to_be_bytes());
    assert_eq!(probe(&bytes).unwrap().width, 60_000);
    let e = check(&bytes, &face128_points()).unwrap_err();
    assert!(matches!(e, UploadError::DeclaredTooLarge { .. }), "{e}");
}

#[test]
fn a_file_over_the_byte_limit_is_refused() {
    let small = UploadLimits {
        max_bytes: 1000,
        ..UploadLimits::default()
    };
    let e = portrait_from_upload(FACE128, &face128_points(), &small).unwrap_err();
    assert!(matches!(e, UploadError::TooLarge { max: 1000, .. }), "{e}");
}

#[test]
fn wrong_counts_non_numbers_and_points_outside_are_refused() {
    let p = face128_points();
    let e = check(FACE128, &p[..67]).unwrap_err();
    assert_eq!(e, UploadError::Count(67));
    let mut nan = p.clone();
    nan[30].y = f32::NAN;
    assert_eq!(
        check(FACE128, &nan).unwrap_err(),
        UploadError::NotFinite { index: 30 }
    );
    let mut out = p.clone();
    out[8].y = 500.0;
    let e = check(FACE128, &out).unwrap_err();
    assert!(matches!(e, UploadError::Outside { index: 8, .. }), "{e}");
    assert!(e.to_string().contains("outside the 128x128 photo"), "{e}");
    let mut neg = p;
    neg[0].x = -3.0;
    assert!(matches!(
        check(FACE128, &neg).unwrap_err(),
        UploadError::Outside { index: 0, .. }
    ));
}

#[test]
fn implausible_geometry_is_refused() {
    let p = face128_points();
    // The eyes swapped: the picture's left-hand eye is right of the other.
    let mut swapped = p.clone();
    for i in 0..6 {
        swapped.swap(36 + i, 42 + i);
    }
    let e = check(FACE128, &swapped).unwrap_err();
    assert!(e.to_string().contains("left-hand eye"), "{e}");
    // Upside down: mirrored vertically.
    let flipped: Vec<Point> = p.iter().map(|q| Point::new(q.x, 128.0 - q.y)).collect();
    assert!(matches!(
        check(FACE128, &flipped).unwrap_err(),
        UploadError::Implausible(_)
    ));
    // A tiny face in the photo.
    let tiny = template_landmarks(Point::new(64.0, 66.0), 4.0);
    let e = check(FACE128, &tiny).unwrap_err();
    assert!(matches!(e, UploadError::FaceSize { .. }), "{e}");
    // The mouth dragged below the chin, out of the jaw outline.
    let mut low = p.clone();
    for q in &mut low[48..68] {
        q.y += 40.0;
    }
    let e = check(FACE128, &low).unwrap_err();
    assert!(e.to_string().contains("outside the jaw outline"), "{e}");
    // All points in one spot.
    let spot = vec![Point::new(60.0, 60.0); 68];
    assert!(check(FACE128, &spot).is_err());
    // Random points.
    let mut seed = 7u32;
    let random: Vec<Point> = (0..68)
        .map(|_| {
            let mut r = || {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (seed >> 8) as f32 / (1u32 << 24) as f32 * 128.0
            };
            Point::new(r(), r())
        })
        .collect();
    assert!(check(FACE128, &random).is_err());
}

#[test]
fn an_open_mouth_is_accepted_with_a_note() {
    let mut p = face128_points();
    // Part the inner lips by a third of the mouth's width (the outer lips follow).
    let width = p[54].x - p[48].x;
    let gap = width / 3.0;
    for i in [65, 66, 67] {
        p[i].y += gap;
    }
    for q in &mut p[55..=59] {
        q.y += gap;
    }
    assert!(mouth_open_ratio(&p) > 0.25);
    let (_, _, notes) = check(FACE128, &p).unwrap();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].contains("mouth is open"), "{notes:?}");
}

#[test]
fn a_large_photo_is_kept_scaled_down_with_its_landmarks() {
    let png = png_file(800, 600);
    let points = template_landmarks(Point::new(400.0, 300.0), 120.0);
    let small = UploadLimits {
        keep_side: 400,
        ..UploadLimits::default()
    };
    let c = portrait_from_upload(&png, &points, &small).unwrap();
    assert_eq!(c.kind, ImageKind::Png);
    assert_eq!((c.source_width, c.source_height), (800, 600));
    assert_eq!((c.portrait.width(), c.portrait.height()), (400, 300));
    let kept = c.portrait.landmarks().unwrap();
    assert!((kept[30].x - points[30].x / 2.0).abs() < 0.01);
    assert!((kept[30].y - points[30].y / 2.0).abs() < 0.01);
}

/// The real photo fixtures (face-api's landmarks on real faces, see fixtures/photos/README.md):
/// each is accepted as the page would send it.
#[test]
fn the_real_photo_fixtures_are_accepted() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/photos");
    let entries = std::fs::read_dir(&dir).unwrap();
    let mut checked = 0;
    for e in entries {
        let path = e.unwrap().path();
        if path.extension().and_then(|x| x.to_str()) != Some("jpg") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let json = std::fs::read_to_string(format!("{}.landmarks.json", path.display())).unwrap();
        let points = talkstream_avatar::portrait::landmarks::parse_landmarks(&json).unwrap();
        let c = portrait_from_upload(&bytes, &points, &limits())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(c.portrait.width(), c.source_width);
        // They were chosen with closed lips: no open-mouth note.
        assert!(c.notes.is_empty(), "{}: {:?}", path.display(), c.notes);
        checked += 1;
    }
    assert!(checked > 0, "no photos in {}", dir.display());
}
