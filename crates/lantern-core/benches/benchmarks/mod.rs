//! One module per operation; each exports a criterion group named `benches`.

pub(crate) mod columns;
pub(crate) mod matmul;
pub(crate) mod pool;
pub(crate) mod quantize;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// `n` seeded random values in (−scale, scale).
pub(crate) fn random(n: usize, scale: f32, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-scale..scale)).collect()
}
