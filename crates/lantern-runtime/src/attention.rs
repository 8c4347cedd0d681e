//! Causal grouped-query attention of one token over the cached positions.
//!
//! The arithmetic follows llama.cpp's CPU flash attention, the peer whose greedy output
//! lantern is checked against token for token: the query is rounded to f16 for the key dot
//! product (the cache is f16), the softmax is computed online in one pass, and the weighted
//! sum of values is accumulated in f16 with fused multiply-adds, by the f16 kernels of
//! `lantern-core` (same bits on every path). Near-ties between tokens are common in a small
//! model; with this, greedy output of the default model is token-identical to the peer's on
//! the prompts in BENCHMARKS.md.
//!
//! Batches of [`LONG_BATCH`] tokens or more take the peer's tiled path instead, which keeps
//! the query and the accumulator in f32: [`attend_long_batch`]. Its arithmetic is close to,
//! not bit-identical with, the peer's (which multiplies tiles of 64 keys); over long prompts
//! the extra precision matters more than the last bit.

use half::f16;
use lantern_core::kernels::{f16_kernels, vector_kernels};

use crate::ops::fused_multiply_add;

/// Batches at least this long use [`attend_long_batch`] (the peer's `GGML_FA_TILE_Q`).
pub(crate) const LONG_BATCH: usize = 64;

/// Head geometry shared by every attention call of a model.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Heads {
    pub(crate) n_heads: usize,
    pub(crate) n_kv_heads: usize,
    pub(crate) head_dim: usize,
}

impl Heads {
    /// Offset of the kv head that query head `h` reads, within a cache row.
    fn kv_offset(&self, h: usize) -> usize {
        (h / (self.n_heads / self.n_kv_heads)) * self.head_dim
    }

    /// Values in one cache row: every kv head of one position.
    fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }

    /// The factor applied to every score, 1/√head_dim.
    fn scale(&self) -> f32 {
        1.0 / (self.head_dim as f32).sqrt()
    }
}

/// Buffers reused between calls so decoding allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    query: Vec<f16>,
    acc: Vec<f16>,
    scores: Vec<f32>,
}

/// Attention of one query token over positions `0..n_pos` of a layer's f16 cache.
///
/// `q` holds `n_heads` heads; `keys` and `values` hold `n_pos` rows of `n_kv_heads` heads;
/// query head `h` reads kv head `h / (n_heads / n_kv_heads)`.
pub(crate) fn attend(
    heads: Heads,
    q: &[f32],
    keys: &[f16],
    values: &[f16],
    n_pos: usize,
    scratch: &mut Scratch,
    out: &mut [f32],
) {
    let kernels = f16_kernels();
    let (d, kv_dim, scale) = (heads.head_dim, heads.kv_dim(), heads.scale());
    scratch.query.resize(d, f16::ZERO);
    scratch.acc.resize(d, f16::ZERO);
    let (query, acc) = (&mut scratch.query, &mut scratch.acc);
    for (h, out_h) in out.chunks_exact_mut(d).take(heads.n_heads).enumerate() {
        let kv = heads.kv_offset(h);
        for (dst, &v) in query.iter_mut().zip(&q[h * d..(h + 1) * d]) {
            *dst = f16::from_f32(v);
        }
        acc.fill(f16::ZERO);
        let (mut max, mut sum) = (f32::NEG_INFINITY, 0.0f32);
        for j in 0..n_pos {
            let row = j * kv_dim + kv;
            let s = (kernels.dot)(query, &keys[row..row + d]) * scale;
            // A new maximum rescales what was accumulated so far; otherwise this position
            // is weighted relative to the maximum.
            let (rescale, weight) = if s > max {
                let old = std::mem::replace(&mut max, s);
                let rescale = (old - s).exp();
                (kernels.scale)(acc, rescale);
                (rescale, 1.0)
            } else {
                (1.0, (s - max).exp())
            };
            (kernels.mad)(acc, &values[row..row + d], weight);
            // The peer's compiler fuses `S*ms + vs`.
            sum = fused_multiply_add(sum, rescale, weight);
        }
        let inv = 1.0 / sum;
        for (o, a) in out_h.iter_mut().zip(acc.iter()) {
            *o = a.to_f32() * inv;
        }
    }
}

/// Attention as [`attend`] computes it, with the query and the accumulator kept in f32 and a
/// two-pass softmax: the arithmetic of the peer's tiled path for long batches.
pub(crate) fn attend_long_batch(
    heads: Heads,
    q: &[f32],
    keys: &[f16],
    values: &[f16],
    n_pos: usize,
    scratch: &mut Scratch,
    out: &mut [f32],
) {
    let kernels = f16_kernels();
    let (d, kv_dim, scale) = (heads.head_dim, heads.kv_dim(), heads.scale());
    let scores = &mut scratch.scores;
    scores.resize(n_pos, 0.0);
    for (h, acc) in out.chunks_exact_mut(d).take(heads.n_heads).enumerate() {
        let kv = heads.kv_offset(h);
        let q_h = &q[h * d..(h + 1) * d];
        (kernels.dot_f32_rows)(q_h, &keys[kv..], kv_dim, scores);
        let mut max = f32::NEG_INFINITY;
        for s in scores.iter_mut() {
            *s *= scale;
            max = max.max(*s);
        }
        let sum = (vector_kernels().exp_shifted)(scores, max);
        acc.fill(0.0);
        (kernels.mad_f32_rows)(acc, &values[kv..], kv_dim, scores);
        let inv = (1.0 / sum) as f32;
        acc.iter_mut().for_each(|a| *a *= inv);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn halves(v: &[f32]) -> Vec<f16> {
        v.iter().map(|&x| f16::from_f32(x)).collect()
    }

    #[test]
    fn one_position_returns_its_value() {
        let heads = Heads { n_heads: 2, n_kv_heads: 1, head_dim: 2 };
        let mut out = [0.0; 4];
        let (keys, values) = (halves(&[1.0, 0.0]), halves(&[3.0, -2.0]));
        attend(heads, &[1.0, 2.0, 3.0, 4.0], &keys, &values, 1, &mut Scratch::default(), &mut out);
        assert_eq!(out, [3.0, -2.0, 3.0, -2.0]);
    }

    #[test]
    fn both_paths_match_a_plain_softmax() {
        let heads = Heads { n_heads: 2, n_kv_heads: 1, head_dim: 4 };
        let keys = halves(&(0..40).map(|i| ((i * 7) % 11) as f32 / 5.0 - 1.0).collect::<Vec<_>>());
        let values =
            halves(&(0..40).map(|i| ((i * 3) % 13) as f32 / 6.0 - 1.0).collect::<Vec<_>>());
        let q = [0.3, -1.2, 0.8, 0.5, 1.0, 0.0, -0.4, 0.9];
        let mut expect = [0.0f32; 8];
        for h in 0..2 {
            let s: Vec<f32> = (0..10)
                .map(|j| (0..4).map(|i| q[h * 4 + i] * keys[j * 4 + i].to_f32()).sum::<f32>() / 2.0)
                .collect();
            let max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let w: Vec<f32> = s.iter().map(|x| (x - max).exp()).collect();
            let total: f32 = w.iter().sum();
            for i in 0..4 {
                expect[h * 4 + i] =
                    (0..10).map(|j| w[j] * values[j * 4 + i].to_f32()).sum::<f32>() / total;
            }
        }
        let (mut a, mut b) = ([0.0; 8], [0.0; 8]);
        attend(heads, &q, &keys, &values, 10, &mut Scratch::default(), &mut a);
        attend_long_batch(heads, &q, &keys, &values, 10, &mut Scratch::default(), &mut b);
        for ((x, y), e) in a.iter().zip(&b).zip(&expect) {
            assert!((x - e).abs() < 5e-3 && (y - e).abs() < 1e-4, "{x} {y} vs {e}");
        }
    }
}
