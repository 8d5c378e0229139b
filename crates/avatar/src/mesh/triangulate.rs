//! Delaunay triangulation of a point set (Bowyer–Watson): the mesh over a photo's landmarks,
//! rings and border is made once, when the photo is loaded, so a plain O(n²) method is enough
//! for the few hundred points a face has.

use super::Point;

/// A triangle as indices into the point list, counter-clockwise in image coordinates (y down
/// makes that clockwise on screen; what matters is that all have the same orientation).
pub type Triangle = [u32; 3];

/// Twice the signed area of `a b c` (positive when counter-clockwise with y up, i.e. the
/// orientation [`triangulate`] produces in image coordinates).
pub fn signed_area2(a: Point, b: Point, c: Point) -> f32 {
    (b.x - a.x) * (c.y - a.y) - (c.x - a.x) * (b.y - a.y)
}

/// Is `p` strictly inside the circumcircle of `a b c` (any orientation)?
fn in_circumcircle(a: Point, b: Point, c: Point, p: Point) -> bool {
    let (ax, ay) = (f64::from(a.x - p.x), f64::from(a.y - p.y));
    let (bx, by) = (f64::from(b.x - p.x), f64::from(b.y - p.y));
    let (cx, cy) = (f64::from(c.x - p.x), f64::from(c.y - p.y));
    let det = (ax * ax + ay * ay) * (bx * cy - cx * by) - (bx * bx + by * by) * (ax * cy - cx * ay)
        + (cx * cx + cy * cy) * (ax * by - bx * ay);
    let orient = f64::from(signed_area2(a, b, c));
    if orient > 0.0 {
        det > 1e-9
    } else {
        det < -1e-9
    }
}

/// Delaunay triangles of `points` (all of them positive by [`signed_area2`]). Duplicate points
/// are the caller's to avoid (they are skipped here).
pub fn triangulate(points: &[Point]) -> Vec<Triangle> {
    if points.len() < 3 {
        return Vec::new();
    }
    let (mut min_x, mut min_y, mut max_x, mut max_y) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for p in points {
        min_x = min_x.min(p.x);
        min_y = min_y.min(p.y);
        max_x = max_x.max(p.x);
        max_y = max_y.max(p.y);
    }
    let span = (max_x - min_x).max(max_y - min_y).max(1.0) * 20.0;
    let (mx, my) = ((min_x + max_x) / 2.0, (min_y + max_y) / 2.0);
    // A super triangle around everything; its corners are indices n, n+1, n+2.
    let n = points.len() as u32;
    let mut all: Vec<Point> = points.to_vec();
    all.push(Point::new(mx - span, my - span));
    all.push(Point::new(mx + span, my - span));
    all.push(Point::new(mx, my + span));
    let mut tris: Vec<Triangle> = vec![orient(&all, [n, n + 1, n + 2])];
    for (i, p) in points.iter().enumerate() {
        if points[..i]
            .iter()
            .any(|q| (q.x - p.x).abs() < 1e-3 && (q.y - p.y).abs() < 1e-3)
        {
            continue;
        }
        let mut bad = Vec::new();
        tris.retain(|t| {
            let inside = in_circumcircle(
                all[t[0] as usize],
                all[t[1] as usize],
                all[t[2] as usize],
                *p,
            );
            if inside {
                bad.push(*t);
            }
            !inside
        });
        // The hole's boundary: edges of bad triangles that no other bad triangle shares.
        let mut edges: Vec<(u32, u32)> = Vec::new();
        for t in &bad {
            for (a, b) in [(t[0], t[1]), (t[1], t[2]), (t[2], t[0])] {
                if let Some(k) = edges
                    .iter()
                    .position(|&(c, d)| (c == b && d == a) || (c == a && d == b))
                {
                    edges.swap_remove(k);
                } else {
                    edges.push((a, b));
                }
            }
        }
        for (a, b) in edges {
            tris.push(orient(&all, [a, b, i as u32]));
        }
    }
    tris.retain(|t| t.iter().all(|&v| v < n));
    tris.retain(|t| {
        signed_area2(all[t[0] as usize], all[t[1] as usize], all[t[2] as usize]).abs() > 1e-6
    });
    tris
}

/// `t` ordered so its signed area is positive.
fn orient(points: &[Point], t: Triangle) -> Triangle {
    let [a, b, c] = t;
    if signed_area2(points[a as usize], points[b as usize], points[c as usize]) < 0.0 {
        [a, c, b]
    } else {
        t
    }
}

/// Do segments `p1 p2` and `q1 q2` cross at a point inside both (not at an end)?
fn crosses(p1: Point, p2: Point, q1: Point, q2: Point) -> bool {
    let side = |a: Point, b: Point, c: Point| f64::from(signed_area2(a, b, c));
    side(p1, p2, q1) * side(p1, p2, q2) < 0.0 && side(q1, q2, p1) * side(q1, q2, p2) < 0.0
}

/// `a b c`, turned to the positive orientation.
fn positive(points: &[Point], [a, b, c]: Triangle) -> Triangle {
    let at = |i: u32| points[i as usize];
    if signed_area2(at(a), at(b), at(c)) < 0.0 {
        [a, c, b]
    } else {
        [a, b, c]
    }
}

/// Make each of `edges` an edge of the triangulation `tris` of `points` by flipping the edges
/// that cross it (a constrained triangulation for the few feature outlines a face has: the
/// lips' lines must never be crossed by a triangle, or opening the mouth drags one lip along
/// with the other). Edges whose crossing edges cannot be flipped are left as they are. Returns
/// how many of `edges` are in the triangulation afterwards.
pub fn enforce_edges(points: &[Point], tris: &mut [Triangle], edges: &[(u32, u32)]) -> usize {
    let has = |tris: &[Triangle], a: u32, b: u32| {
        tris.iter().any(|t| {
            (0..3).any(|k| (t[k], t[(k + 1) % 3]) == (a, b) || (t[k], t[(k + 1) % 3]) == (b, a))
        })
    };
    let at = |i: u32| points[i as usize];
    let mut present = 0;
    for &(a, b) in edges {
        // Each flip removes one crossing edge for good, so this ends; the bound is a backstop.
        for _ in 0..4 * tris.len() {
            if has(tris, a, b) {
                break;
            }
            let mut flipped = false;
            'search: for i in 0..tris.len() {
                for k in 0..3 {
                    let (u, v, w1) = (tris[i][k], tris[i][(k + 1) % 3], tris[i][(k + 2) % 3]);
                    if [u, v].iter().any(|x| *x == a || *x == b)
                        || !crosses(at(a), at(b), at(u), at(v))
                    {
                        continue;
                    }
                    let Some(j) = (0..tris.len())
                        .find(|&j| j != i && tris[j].contains(&u) && tris[j].contains(&v))
                    else {
                        continue;
                    };
                    let Some(&w2) = tris[j].iter().find(|x| **x != u && **x != v) else {
                        continue;
                    };
                    // Only a convex quad can swap its diagonal.
                    if !crosses(at(w1), at(w2), at(u), at(v)) {
                        continue;
                    }
                    tris[i] = positive(points, [w1, u, w2]);
                    tris[j] = positive(points, [w1, w2, v]);
                    flipped = true;
                    break 'search;
                }
            }
            if !flipped {
                break;
            }
        }
        if has(tris, a, b) {
            present += 1;
        }
    }
    present
}
