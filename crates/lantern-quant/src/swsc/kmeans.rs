//! Weighted k-means over points of equal length: k-means++ seeding from a seeded xorshift
//! generator, then Lloyd iterations until no label changes.
//!
//! Point j has a weight e_j ≥ 0 and the objective is Σ_j e_j·‖p_j − c_(label j)‖². Seeding
//! draws each new centre in proportion to e_j times the squared distance to the nearest
//! centre so far; each centroid is its points' weighted mean (their plain mean when all
//! their weights are zero, so that such points are still represented). Assignment takes the
//! nearest centre, whatever the weight: a point's own weight does not change which is
//! nearest.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};

/// What the clustering found.
pub(crate) struct Clusters {
    /// `k` centroids of `dim` values, one after another.
    pub(crate) centroids: Vec<f32>,
    /// Each point's centroid.
    pub(crate) labels: Vec<u16>,
    /// Reassignments run after the first assignment.
    pub(crate) iterations: usize,
}

/// Clusters the `weights.len()` points held one after another in `points` (`dim` values
/// each) into `k` groups. The caller checks `1 <= k <= min(points, 65536)` and the lengths.
pub(crate) fn cluster(
    points: &[f32],
    dim: usize,
    weights: &[f32],
    k: usize,
    seed: u64,
    max_iterations: usize,
) -> Clusters {
    let mut centroids = seed_centroids(points, dim, weights, k, seed);
    let mut labels = assign(points, weights.len(), dim, &centroids, k);
    let mut iterations = 0;
    loop {
        update(points, dim, weights, &labels, k, &mut centroids);
        if iterations == max_iterations {
            break;
        }
        iterations += 1;
        let next = assign(points, weights.len(), dim, &centroids, k);
        if next == labels {
            break;
        }
        labels = next;
    }
    Clusters { centroids, labels, iterations }
}

/// k-means++: the first centre drawn by weight, each next one by weight times squared
/// distance to the nearest centre so far. When every remaining point sits on a centre, the
/// first point not yet taken is, so `k` equal to the number of points takes every point.
fn seed_centroids(points: &[f32], dim: usize, weights: &[f32], k: usize, seed: u64) -> Vec<f32> {
    let n = weights.len();
    let mut rng = XorShift::new(seed);
    let mut taken = vec![false; n];
    let mut nearest = vec![f32::INFINITY; n];
    let mut mass: Vec<f64> = weights.iter().map(|&e| f64::from(e)).collect();
    let mut centroids = Vec::with_capacity(k * dim);
    for _ in 0..k {
        let j = draw(&mut rng, &mass, &taken);
        taken[j] = true;
        let centre = &points[j * dim..(j + 1) * dim];
        centroids.extend_from_slice(centre);
        for (i, (d, m)) in nearest.iter_mut().zip(&mut mass).enumerate() {
            *d = d.min(squared_distance(&points[i * dim..(i + 1) * dim], centre));
            *m = if taken[i] { 0.0 } else { f64::from(weights[i]) * f64::from(*d) };
        }
    }
    centroids
}

/// A point not yet taken, drawn in proportion to `mass` (the first one not taken when all
/// mass is zero).
fn draw(rng: &mut XorShift, mass: &[f64], taken: &[bool]) -> usize {
    let total: f64 = mass.iter().sum();
    if total > 0.0 && total.is_finite() {
        let target = rng.unit() * total;
        let mut sum = 0.0;
        let mut last = None;
        for (j, &m) in mass.iter().enumerate() {
            if m > 0.0 {
                sum += m;
                last = Some(j);
                if sum > target {
                    return j;
                }
            }
        }
        if let Some(j) = last {
            return j;
        }
    }
    taken.iter().position(|&t| !t).unwrap_or(0)
}

/// Each point's nearest centroid (the first of equals), from ‖c‖² − 2·p·c: the cross terms
/// are one matrix product.
fn assign(points: &[f32], n: usize, dim: usize, centroids: &[f32], k: usize) -> Vec<u16> {
    let p = MatRef::from_row_major_slice(points, n, dim);
    let c = MatRef::from_row_major_slice(centroids, k, dim);
    let mut cross = Mat::<f32>::zeros(n, k);
    matmul(cross.as_mut(), Accum::Replace, p, c.transpose(), 1.0, Par::rayon(0));
    let norms: Vec<f32> =
        (0..k).map(|c| squared_distance(&centroids[c * dim..(c + 1) * dim], &[])).collect();
    (0..n)
        .map(|j| {
            let mut best = (f32::INFINITY, 0);
            for (c, norm) in norms.iter().enumerate() {
                let d = norm - 2.0 * cross[(j, c)];
                if d < best.0 {
                    best = (d, c);
                }
            }
            best.1 as u16
        })
        .collect()
}

/// Each centroid moved to its points' weighted mean, summed in f64 (so a lone point's
/// centroid is the point exactly); a centroid with no points stays where it is.
fn update(
    points: &[f32],
    dim: usize,
    weights: &[f32],
    labels: &[u16],
    k: usize,
    centroids: &mut [f32],
) {
    let mut sums = vec![0.0f64; k * dim];
    let mut mass = vec![0.0f64; k];
    let mut count = vec![0usize; k];
    for (j, &label) in labels.iter().enumerate() {
        let c = usize::from(label);
        count[c] += 1;
        let e = f64::from(weights[j]);
        if e == 0.0 {
            continue;
        }
        mass[c] += e;
        for (s, &v) in sums[c * dim..(c + 1) * dim].iter_mut().zip(&points[j * dim..]) {
            *s += e * f64::from(v);
        }
    }
    // Clusters of weightless points only: their plain mean.
    for (j, &label) in labels.iter().enumerate() {
        let c = usize::from(label);
        if mass[c] == 0.0 {
            for (s, &v) in sums[c * dim..(c + 1) * dim].iter_mut().zip(&points[j * dim..]) {
                *s += f64::from(v);
            }
        }
    }
    for c in (0..k).filter(|&c| count[c] > 0) {
        let total = if mass[c] > 0.0 { mass[c] } else { count[c] as f64 };
        for (out, &s) in centroids[c * dim..(c + 1) * dim].iter_mut().zip(&sums[c * dim..]) {
            *out = (s / total) as f32;
        }
    }
}

/// ‖a − b‖², `b` padded with zeros (so an empty `b` gives ‖a‖²), in eight running sums that
/// the compiler can keep in vector registers.
fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut i = 0;
    if b.len() == a.len() {
        for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
            for l in 0..8 {
                let d = x[l] - y[l];
                acc[l] += d * d;
            }
            i += 8;
        }
    }
    let mut tail = 0.0;
    for (t, &x) in a.iter().enumerate().skip(i) {
        let d = x - b.get(t).copied().unwrap_or(0.0);
        tail += d * d;
    }
    acc.iter().sum::<f32>() + tail
}

/// xorshift64 (Marsaglia 2003): enough randomness to seed k-means, and the same draws for
/// the same seed on every platform.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        // The state must not be zero; mixing in a constant keeps seed 0 usable.
        let state = seed ^ 0x9E37_79B9_7F4A_7C15;
        Self(if state == 0 { 0x9E37_79B9_7F4A_7C15 } else { state })
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squared_distance_matches_the_plain_sum() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..19).map(|i| (i % 4) as f32).collect();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
        assert!((squared_distance(&a, &b) - plain).abs() < 1e-3);
        assert_eq!(squared_distance(&[3.0, 4.0], &[]), 25.0);
    }

    #[test]
    fn draws_skip_points_without_mass() {
        let mut rng = XorShift::new(0);
        for _ in 0..100 {
            assert_eq!(draw(&mut rng, &[0.0, 2.0, 0.0], &[false; 3]), 1);
        }
        assert_eq!(draw(&mut rng, &[0.0; 3], &[true, false, false]), 1);
        assert!((0..1000).map(|_| rng.unit()).all(|u| (0.0..1.0).contains(&u)));
    }
}
