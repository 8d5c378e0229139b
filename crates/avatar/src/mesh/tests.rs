//! The mesh on a synthetic upright face (68 landmarks drawn from ellipses like a mean face): the
//! rest pose is the photo, no rig value folds a triangle, the jaw moves the chin and not the
//! forehead, bad landmarks are refused.

use super::*;

const W: u32 = 512;
const H: u32 = 512;

/// The template face around (256, 270), eyes 100 px apart.
fn face() -> Vec<Point> {
    template_landmarks(Point::new(256.0, 270.0), 100.0)
}

/// A photo with detail everywhere (so any wrong pixel shows).
fn photo() -> Vec<u8> {
    let mut img = vec![0u8; (W * H * 4) as usize];
    for y in 0..H {
        for x in 0..W {
            let i = ((y * W + x) * 4) as usize;
            img[i] = (x * 7 + y * 3) as u8;
            img[i + 1] = (x ^ y) as u8;
            img[i + 2] = ((x / 8 + y / 8) % 2 * 200) as u8;
            img[i + 3] = 255;
        }
    }
    img
}

fn mesh() -> FaceMesh {
    FaceMesh::new(W, H, &face()).unwrap()
}

#[test]
fn the_mesh_covers_the_whole_image_with_consistent_triangles() {
    let m = mesh();
    let pts = m.rest_points();
    assert!(pts.len() > LANDMARKS + 40, "{} points", pts.len());
    let area: f32 = m
        .triangles()
        .iter()
        .map(|t| {
            let a = signed_area2(pts[t[0] as usize], pts[t[1] as usize], pts[t[2] as usize]);
            assert!(a > 0.0, "a triangle is oriented the other way");
            a / 2.0
        })
        .sum();
    assert!(
        (area - (W * H) as f32).abs() < 1.0,
        "triangles cover {area} of {} px",
        W * H
    );
    assert!((m.scale() - 100.0).abs() < 1.0);
}

#[test]
fn at_rest_the_output_is_the_photo_exactly() {
    let m = mesh();
    let src = photo();
    let mut out = vec![0u8; src.len()];
    let img = RgbaRef {
        width: W,
        height: H,
        data: &src,
    };
    let moved = m.render(img, &Rig::default(), &mut out).unwrap();
    assert_eq!(moved, 0);
    assert!(out == src, "the rest pose changed pixels");
}

#[test]
fn no_rig_value_folds_a_triangle_and_stretch_stays_bounded() {
    let m = mesh();
    let mut worst: f32 = 1.0;
    let mut poses = 0;
    for jaw_open in [0.0, 0.5, 1.0] {
        for lip_open in [0.0, 1.0] {
            for width in [-1.0, 0.0, 1.0] {
                for press in [0.0, 1.0] {
                    for (blink, lips) in [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0)] {
                        for head in [-2.0, 0.0, 2.0] {
                            let rig = Rig {
                                jaw_open,
                                lip_open,
                                width,
                                press,
                                upper_lip: lips,
                                lower_lip: lips,
                                tongue: lips,
                                blink_left: blink,
                                blink_right: 1.0 - blink,
                                roll_deg: head,
                                yaw_deg: -head,
                                pitch_deg: head,
                            };
                            let q = m.quality(&m.pose(&rig));
                            assert_eq!(q.flipped, 0, "{rig:?}");
                            worst = worst.max(q.max_stretch);
                            poses += 1;
                        }
                    }
                }
            }
        }
    }
    assert_eq!(poses, 432);
    // Skin stretches or squeezes by less than 2x anywhere (the lips' gap and the eyes close).
    assert!(worst < 2.0, "an edge changed {worst}x");
}

#[test]
fn the_jaw_moves_the_chin_and_lower_lip_but_not_the_eyes_or_forehead() {
    let m = mesh();
    let rest = m.rest_points().to_vec();
    let open = m.pose(&Rig {
        jaw_open: 1.0,
        ..Rig::default()
    });
    let drop = |i: usize| open[i].y - rest[i].y;
    assert!((drop(idx::CHIN) - JAW_DROP * m.scale()).abs() < 0.5);
    assert!(drop(57) > 0.8 * JAW_DROP * m.scale(), "lower lip");
    assert_eq!(drop(51), 0.0, "the upper lip stays");
    assert_eq!(drop(0), 0.0, "the ears stay");
    for i in idx::EYE_L.chain(idx::EYE_R).chain(idx::BROWS) {
        assert_eq!(open[i], rest[i], "landmark {i}");
    }
    // In pixels: the chin area changes, the forehead does not.
    let src = photo();
    let img = RgbaRef {
        width: W,
        height: H,
        data: &src,
    };
    let mut out = vec![0u8; src.len()];
    m.render(
        img,
        &Rig {
            jaw_open: 1.0,
            ..Rig::default()
        },
        &mut out,
    )
    .unwrap();
    let changed = |y0: u32, y1: u32| {
        (y0..y1)
            .flat_map(|y| (200..312).map(move |x| ((y * W + x) * 4) as usize))
            .filter(|&i| out[i..i + 3] != src[i..i + 3])
            .count()
    };
    assert!(changed(350, 420) > 2000, "chin area: {}", changed(350, 420));
    assert_eq!(changed(100, 170), 0, "forehead");
}

#[test]
fn pressed_lips_close_whatever_the_jaw_and_blinks_stop_short_of_the_lower_lid() {
    let m = mesh();
    let p = m.pose(&Rig {
        jaw_open: 1.0,
        lip_open: 1.0,
        press: 1.0,
        ..Rig::default()
    });
    for (&u, &l) in idx::UPPER_INNER.iter().zip(idx::LOWER_INNER.iter()) {
        assert!(
            (p[l].y - p[u].y - PRESSED_GAP).abs() < 0.01,
            "inner lips {u}/{l} apart"
        );
    }
    let p = m.pose(&Rig {
        blink_left: 1.0,
        blink_right: 1.0,
        ..Rig::default()
    });
    for &(upper, lower) in &idx::LIDS {
        assert!(p[upper].y < p[lower].y, "lid {upper} passed {lower}");
        assert!(p[lower].y - p[upper].y < 2.0, "lid {upper} did not close");
    }
}

#[test]
fn wild_rig_values_are_clamped() {
    let m = mesh();
    let wild = Rig {
        jaw_open: 9.0,
        lip_open: f32::NAN,
        width: -5.0,
        press: -1.0,
        upper_lip: 3.0,
        lower_lip: f32::NAN,
        tongue: -2.0,
        blink_left: f32::INFINITY,
        blink_right: 2.0,
        roll_deg: 45.0,
        yaw_deg: -30.0,
        pitch_deg: f32::NAN,
    };
    let tame = Rig {
        jaw_open: 1.0,
        lip_open: 0.0,
        width: -1.0,
        press: 0.0,
        upper_lip: 1.0,
        lower_lip: 0.0,
        tongue: 0.0,
        blink_left: 0.0,
        blink_right: 1.0,
        roll_deg: MAX_HEAD_DEG,
        yaw_deg: -MAX_HEAD_DEG,
        pitch_deg: 0.0,
    };
    assert_eq!(m.pose(&wild), m.pose(&tame));
    assert_eq!(m.quality(&m.pose(&wild)).flipped, 0);
}

#[test]
fn bad_landmarks_are_refused_with_the_reason() {
    let good = face();
    assert_eq!(
        FaceMesh::new(W, H, &good[..67]).unwrap_err(),
        MeshError::Count(67)
    );
    let mut out = good.clone();
    out[10].x = 600.0;
    assert!(matches!(
        FaceMesh::new(W, H, &out),
        Err(MeshError::OutOfBounds { index: 10, .. })
    ));
    let mut nan = good.clone();
    nan[3].y = f32::NAN;
    assert!(matches!(
        FaceMesh::new(W, H, &nan),
        Err(MeshError::OutOfBounds { index: 3, .. })
    ));
    let tiny: Vec<Point> = good
        .iter()
        .map(|p| Point::new(256.0 + (p.x - 256.0) / 20.0, 256.0 + (p.y - 256.0) / 20.0))
        .collect();
    assert!(matches!(
        FaceMesh::new(W, H, &tiny),
        Err(MeshError::TooSmall(_))
    ));
    let upside_down: Vec<Point> = good
        .iter()
        .map(|p| Point::new(p.x, H as f32 - p.y))
        .collect();
    assert!(matches!(
        FaceMesh::new(W, H, &upside_down),
        Err(MeshError::Implausible(_))
    ));
    let mut lid = good.clone();
    lid[37].y = good[41].y + 3.0;
    assert!(matches!(
        FaceMesh::new(W, H, &lid),
        Err(MeshError::Implausible(_))
    ));
    let mut buf = vec![0u8; 10];
    let src = photo();
    let img = RgbaRef {
        width: W,
        height: H,
        data: &src,
    };
    assert!(matches!(
        mesh().render(img, &Rig::default(), &mut buf),
        Err(MeshError::BufferSize { .. })
    ));
}

#[test]
fn a_tucked_lower_lip_stops_under_the_upper_teeth_and_the_upper_lip_lifts() {
    let m = mesh();
    let s = m.scale();
    // About the jaw of an "f".
    let open = Rig {
        jaw_open: 0.15,
        lip_open: 0.1,
        ..Rig::default()
    };
    let free = m.pose(&open);
    let f = m.pose(&Rig {
        lower_lip: 1.0,
        upper_lip: 1.0,
        ..open
    });
    for (&u, &l) in idx::UPPER_INNER.iter().zip(idx::LOWER_INNER.iter()) {
        assert!(f[l].y < free[l].y - 1.0, "lower inner lip {l} rose");
        let below = f[l].y - f[u].y;
        assert!(
            below >= TUCK_BELOW_UPPER * s - 0.01,
            "lip {l} rose to {below} px under {u}, over the teeth"
        );
        assert!(
            free[l].y - f[l].y <= TUCK_MAX_RISE * s + 0.01,
            "lip {l} rose too far"
        );
    }
    assert!(
        (free[62].y - f[62].y - UPPER_LIFT * s).abs() < 0.01,
        "upper lip lift"
    );
    // The tongue moves no landmark.
    assert_eq!(
        m.pose(&Rig {
            tongue: 1.0,
            ..open
        }),
        free
    );
}

#[test]
fn the_raised_tongue_fills_the_front_of_the_mouth() {
    let m = mesh();
    let src = photo();
    let colours = InteriorColours {
        cavity: [20.0, 5.0, 5.0],
        teeth: [230.0, 230.0, 230.0],
        tongue: [200.0, 60.0, 80.0],
    };
    let rig = Rig {
        jaw_open: 1.0,
        lip_open: 1.0,
        ..Rig::default()
    };
    let posed = m.pose(&rig);
    let tongue_px = |rig: &Rig| {
        let mut out = src.clone();
        draw_interior(&mut out, W, H, &posed, m.scale(), rig, &colours);
        // Tongue-coloured pixels between the upper teeth and the middle of the gap, in the
        // middle of the mouth.
        let (top, bottom) = (posed[62].y, posed[66].y);
        let under_teeth = top + 0.085 * m.scale() + 1.0;
        let mid = (top + bottom) / 2.0;
        assert!(
            mid > under_teeth + 2.0,
            "the mouth is open enough to see: {top} {under_teeth} {mid} {bottom}"
        );
        let cx = posed[62].x;
        (under_teeth.ceil() as u32..mid as u32)
            .flat_map(|y| ((cx - 10.0) as u32..(cx + 10.0) as u32).map(move |x| (x, y)))
            .filter(|&(x, y)| {
                let i = ((y * W + x) * 4) as usize;
                out[i] > 150 && out[i + 1] < 110 && out[i + 2] < 130
            })
            .count()
    };
    let low = tongue_px(&rig);
    let up = tongue_px(&Rig { tongue: 1.0, ..rig });
    assert!(up > 30 && up > 4 * low.max(1), "raised {up}, low {low}");
}

#[test]
fn closed_lids_cover_the_eyes_and_open_ones_change_nothing() {
    let m = mesh();
    let src = photo();
    let p = m.rest_points();
    let colours = sample_lid_colours(&src, W, H, p);
    let mut out = src.clone();
    draw_lids(&mut out, W, H, p, m.scale(), &Rig::default(), &colours);
    assert!(out == src, "open eyes drew something");
    let closed = Rig {
        blink_left: 1.0,
        blink_right: 1.0,
        ..Rig::default()
    };
    draw_lids(&mut out, W, H, p, m.scale(), &closed, &colours);
    // Every pixel inside each eye's opening is drawn over; nothing beside the eyes changes.
    for eye in [idx::EYE_L, idx::EYE_R] {
        let c = eye.clone().fold(Point::new(0.0, 0.0), |a, i| {
            Point::new(a.x + p[i].x / 6.0, a.y + p[i].y / 6.0)
        });
        let i = ((c.y as u32 * W + c.x as u32) * 4) as usize;
        assert_ne!(
            out[i..i + 3],
            src[i..i + 3],
            "eye centre {c:?} still the photo"
        );
    }
    let changed_below_nose = (p[33].y as u32..H)
        .flat_map(|y| (0..W).map(move |x| ((y * W + x) * 4) as usize))
        .filter(|&i| out[i..i + 3] != src[i..i + 3])
        .count();
    assert_eq!(changed_below_nose, 0);
}
