//! Benchmark: the photo mesh warp plus the mouth interior and the blinking lids (`talkstream_avatar::mesh`) at 512×512
//! on one core — per frame median and p99 over a talking cycle (jaw, lips, width, lips pressed,
//! lower lip tucked, tongue, blinks, head motion all moving), and the rest pose (the photo
//! copied).
//!
//! `cargo run --release -p talkstream-avatar --example mesh_warp_speed`

use std::time::{Duration, Instant};

use talkstream_avatar::mesh::{
    draw_interior, draw_lids, sample_colours, sample_lid_colours, template_landmarks, FaceMesh,
    Point, RgbaRef, Rig,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (w, h) = (512u32, 512u32);
    let mesh = FaceMesh::new(w, h, &template_landmarks(Point::new(256.0, 270.0), 100.0))?;
    let mut photo = vec![0u8; (w * h * 4) as usize];
    for (i, px) in photo.chunks_exact_mut(4).enumerate() {
        let (x, y) = (i as u32 % w, i as u32 / w);
        px.copy_from_slice(&[(x * 7 + y * 3) as u8, (x ^ y) as u8, (x / 2) as u8, 255]);
    }
    let src = RgbaRef {
        width: w,
        height: h,
        data: &photo,
    };
    let colours = sample_colours(&photo, w, h, mesh.rest_points());
    let lids = sample_lid_colours(&photo, w, h, mesh.rest_points());
    let mut out = vec![0u8; photo.len()];
    let frames = 1000;
    let mut times = Vec::with_capacity(frames);
    let mut moved = 0;
    for n in 0..frames {
        let t = n as f32 / 25.0;
        let rig = Rig {
            jaw_open: (t * 9.0).sin().abs(),
            lip_open: (t * 5.0).sin().max(0.0),
            width: (t * 1.3).sin(),
            press: if n % 40 < 4 { 1.0 } else { 0.0 },
            upper_lip: if n % 30 < 3 { 0.6 } else { 0.0 },
            lower_lip: if n % 30 < 3 { 1.0 } else { 0.0 },
            tongue: if n % 20 < 3 { 0.8 } else { 0.0 },
            blink_left: if n % 90 < 4 { 1.0 } else { 0.0 },
            blink_right: if n % 90 < 4 { 1.0 } else { 0.0 },
            roll_deg: 2.0 * (t * 0.7).sin(),
            yaw_deg: 1.5 * (t * 0.5).sin(),
            pitch_deg: (t * 0.9).sin(),
        };
        let start = Instant::now();
        // As the portrait does it: the warp keeps the eyes open, the lids are drawn.
        let posed = mesh.pose(&Rig {
            blink_left: 0.0,
            blink_right: 0.0,
            ..rig
        });
        moved = mesh.render_posed(src, &posed, &mut out)?;
        draw_interior(&mut out, w, h, &posed, mesh.scale(), &rig, &colours);
        draw_lids(&mut out, w, h, &posed, mesh.scale(), &rig, &lids);
        times.push(start.elapsed());
    }
    let mut rest = Vec::with_capacity(200);
    for _ in 0..200 {
        let start = Instant::now();
        mesh.render(src, &Rig::default(), &mut out)?;
        rest.push(start.elapsed());
    }
    let pct = |v: &mut Vec<Duration>, p: f64| {
        v.sort();
        v[((v.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1000.0
    };
    println!(
        "mesh: {} points, {} triangles; talking: {} triangles moved in the last frame",
        mesh.rest_points().len(),
        mesh.triangles().len(),
        moved
    );
    println!(
        "512x512 warp + mouth interior + lids, talking: median {:.2} ms, p99 {:.2} ms over {frames} frames; at rest (copy): median {:.3} ms",
        pct(&mut times, 0.5),
        pct(&mut times, 0.99),
        pct(&mut rest, 0.5)
    );
    Ok(())
}
