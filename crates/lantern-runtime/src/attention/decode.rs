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
//! Batches of [`LONG_BATCH`](super::LONG_BATCH) tokens or more take the peer's tiled path
//! instead, which keeps the queries and the accumulators in f32 ([`super::batch`]).

use half::f16;
use lantern_core::kernels::f16_kernels;

use super::Heads;
use crate::kv_cache::Seen;
use crate::ops::fused_multiply_add;

/// Buffers reused between calls so decoding allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    query: Vec<f16>,
    acc: Vec<f16>,
}

/// Attention of one query token over the positions it sees in a layer's f16 cache, `seen`
/// in order (one run of rows, or two where a ring wraps).
///
/// `q` holds `n_heads` heads; each run holds rows of `n_kv_heads` heads; query head `h`
/// reads kv head `h / (n_heads / n_kv_heads)`.
pub(crate) fn attend(
    heads: Heads,
    q: &[f32],
    seen: Seen<'_>,
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
        let rows = seen
            .iter()
            .flat_map(|&(keys, values)| keys.chunks_exact(kv_dim).zip(values.chunks_exact(kv_dim)));
        for (keys, values) in rows {
            let row = kv;
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

/// Attention computed plainly in f64, the reference the tests compare both paths with.
#[cfg(test)]
pub(crate) fn plain_attention(
    heads: Heads,
    q: &[f32],
    keys: &[f16],
    values: &[f16],
    n_pos: usize,
) -> Vec<f32> {
    let (d, kv_dim) = (heads.head_dim, heads.kv_dim());
    let mut out = vec![0.0; heads.n_heads * d];
    for (h, out) in out.chunks_exact_mut(d).enumerate() {
        let kv = heads.kv_offset(h);
        let at = |j: usize, i: usize| j * kv_dim + kv + i;
        let scores: Vec<f64> = (0..n_pos)
            .map(|j| {
                let dot: f64 = (0..d)
                    .map(|i| f64::from(q[h * d + i]) * f64::from(keys[at(j, i)].to_f32()))
                    .sum();
                dot * f64::from(heads.scale())
            })
            .collect();
        let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
        let total: f64 = weights.iter().sum();
        for (i, o) in out.iter_mut().enumerate() {
            let mixed: f64 = weights
                .iter()
                .enumerate()
                .map(|(j, w)| w * f64::from(values[at(j, i)].to_f32()))
                .sum();
            *o = (mixed / total) as f32;
        }
    }
    out
}

#[cfg(test)]
pub(crate) fn halves(v: impl IntoIterator<Item = f32>) -> Vec<f16> {
    v.into_iter().map(f16::from_f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_position_returns_its_value() {
        let heads = Heads {
            n_heads: 2,
            n_kv_heads: 1,
            head_dim: 2,
            scale: std::f32::consts::FRAC_1_SQRT_2,
        };
        let mut out = [0.0; 4];
        let (keys, values) = (halves([1.0, 0.0]), halves([3.0, -2.0]));
        let seen = [(&keys[..], &values[..]), (&[][..], &[][..])];
        attend(heads, &[1.0, 2.0, 3.0, 4.0], seen, &mut Scratch::default(), &mut out);
        assert_eq!(out, [3.0, -2.0, 3.0, -2.0]);
    }

    #[test]
    fn matches_a_plain_softmax() {
        let heads = Heads { n_heads: 4, n_kv_heads: 2, head_dim: 4, scale: 0.5 };
        let keys = halves((0..80).map(|i| ((i * 7) % 11) as f32 / 5.0 - 1.0));
        let values = halves((0..80).map(|i| ((i * 3) % 13) as f32 / 6.0 - 1.0));
        let q: Vec<f32> = (0..16).map(|i| ((i * 5) % 9) as f32 / 4.0 - 1.0).collect();
        let mut out = [0.0; 16];
        // Split in two runs, as a wrapped ring gives them.
        let seen = [(&keys[..24], &values[..24]), (&keys[24..], &values[24..])];
        attend(heads, &q, seen, &mut Scratch::default(), &mut out);
        // The f16 accumulator holds about three decimal digits.
        let expect = plain_attention(heads, &q, &keys, &values, 10);
        for (x, e) in out.iter().zip(&expect) {
            assert!((x - e).abs() < 5e-3, "{x} vs {e}");
        }
    }
}
