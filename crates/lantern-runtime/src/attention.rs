//! Causal grouped-query attention of one token over the cached positions.
//!
//! The arithmetic follows llama.cpp's CPU flash attention, the peer whose greedy output
//! lantern is checked against token for token: the query is rounded to f16 for the key dot
//! product (the cache is f16), scores are summed in the peer's order, the softmax is computed
//! online in one pass, and the weighted sum of values is accumulated at f16 precision with
//! fused multiply-adds. Near-ties between tokens are common in a small model; with this,
//! greedy output of the default model is token-identical to the peer's on the prompts in
//! BENCHMARKS.md.
//!
//! Batches of [`LONG_BATCH`] tokens or more take the peer's tiled path instead, which keeps
//! the query and the accumulator in f32: [`attend_long_batch`]. Its arithmetic is close to,
//! not bit-identical with, the peer's (which multiplies tiles of 64 keys); over long
//! prompts the extra precision matters more than the last bit.

use half::f16;

use crate::ops::{exp_like_ggml, fused_multiply_add};

/// Batches at least this long use [`attend_long_batch`] (the peer's `GGML_FA_TILE_Q`).
pub(crate) const LONG_BATCH: usize = 64;

/// Head geometry shared by every attention call of a model.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Heads {
    pub(crate) n_heads: usize,
    pub(crate) n_kv_heads: usize,
    pub(crate) head_dim: usize,
}

/// Attention of one query token over positions `0..n_pos` of a layer's cache.
///
/// `q` holds `n_heads` heads; `keys` and `values` hold `n_pos` rows of `n_kv_heads` heads
/// (f16 cache values widened to f32); query head `h` reads kv head
/// `h / (n_heads / n_kv_heads)`. `scratch` is reused between calls so decoding allocates
/// nothing.
pub(crate) fn attend(
    heads: Heads,
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    n_pos: usize,
    scratch: &mut Vec<f32>,
    out: &mut [f32],
) {
    let Heads { n_heads, n_kv_heads, head_dim } = heads;
    let kv_dim = n_kv_heads * head_dim;
    let group = n_heads / n_kv_heads;
    let scale = 1.0 / (head_dim as f32).sqrt();
    scratch.resize(head_dim, 0.0);
    let q_h = &mut scratch[..];
    for h in 0..n_heads {
        let kv_off = (h / group) * head_dim;
        for (dst, &v) in q_h.iter_mut().zip(&q[h * head_dim..(h + 1) * head_dim]) {
            *dst = round_f16(v);
        }
        let acc = &mut out[h * head_dim..(h + 1) * head_dim];
        acc.fill(0.0);
        let (mut max, mut sum) = (f32::NEG_INFINITY, 0.0f32);
        for j in 0..n_pos {
            let row = j * kv_dim + kv_off;
            let s = dot_like_ggml(q_h, &keys[row..row + head_dim]) * scale;
            // A new maximum rescales what was accumulated so far; otherwise this position
            // is weighted relative to the maximum.
            let (rescale, weight) = if s > max {
                let old = max;
                max = s;
                ((old - max).exp(), 1.0)
            } else {
                (1.0, (s - max).exp())
            };
            if rescale != 1.0 {
                acc.iter_mut().for_each(|a| *a = round_f16(*a * rescale));
            }
            for (a, &v) in acc.iter_mut().zip(&values[row..row + head_dim]) {
                *a = round_f16(fused_multiply_add(v, weight, *a));
            }
            sum = fused_multiply_add(sum, rescale, weight);
        }
        let inv = 1.0 / sum;
        acc.iter_mut().for_each(|a| *a *= inv);
    }
}

/// The dot product of ggml's f16 kernel on AVX2 (the peer's build on this kind of machine):
/// 4 accumulators of 8 lanes take 32 products a step with fused multiply-adds, then the
/// accumulators are added pairwise and the lanes by halves. The same order gives the same
/// rounding, hence the same scores.
fn dot_like_ggml(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 8;
    const STEP: usize = 4 * LANES;
    // Accumulator j, lane l at j·8 + l.
    let mut acc = [0.0f32; STEP];
    let whole = a.len().min(b.len()) / STEP * STEP;
    let mut steps = a[..whole].chunks_exact(STEP).zip(b[..whole].chunks_exact(STEP));
    // The first step adds to zero: a plain (vectorizable) product rounds the same.
    if let Some((x, y)) = steps.next() {
        for ((s, &x), &y) in acc.iter_mut().zip(x).zip(y) {
            *s = x * y;
        }
    }
    for (x, y) in steps {
        for ((s, &x), &y) in acc.iter_mut().zip(x).zip(y) {
            *s = fused_multiply_add(x, y, *s);
        }
    }
    let lanes: [f32; LANES] = std::array::from_fn(|l| {
        (acc[l] + acc[2 * LANES + l]) + (acc[LANES + l] + acc[3 * LANES + l])
    });
    let quad: [f32; 4] = std::array::from_fn(|i| lanes[i] + lanes[i + 4]);
    let tail: f64 = a[whole..].iter().zip(&b[whole..]).map(|(&x, &y)| f64::from(x * y)).sum();
    (f64::from((quad[0] + quad[1]) + (quad[2] + quad[3])) + tail) as f32
}

/// Attention as [`attend`] computes it, with the query and the accumulator kept in f32 and a
/// two-pass softmax: the arithmetic of the peer's tiled path for long batches.
pub(crate) fn attend_long_batch(
    heads: Heads,
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    n_pos: usize,
    scratch: &mut Vec<f32>,
    out: &mut [f32],
) {
    let Heads { n_heads, n_kv_heads, head_dim } = heads;
    let kv_dim = n_kv_heads * head_dim;
    let group = n_heads / n_kv_heads;
    let scale = 1.0 / (head_dim as f32).sqrt();
    scratch.resize(n_pos, 0.0);
    for h in 0..n_heads {
        let kv_off = (h / group) * head_dim;
        let q_h = &q[h * head_dim..(h + 1) * head_dim];
        let mut max = f32::NEG_INFINITY;
        for (j, s) in scratch.iter_mut().enumerate() {
            let row = j * kv_dim + kv_off;
            *s = dot_like_ggml(q_h, &keys[row..row + head_dim]) * scale;
            max = max.max(*s);
        }
        let mut sum = 0.0f64;
        for s in scratch.iter_mut() {
            *s = exp_like_ggml(*s - max);
            sum += f64::from(*s);
        }
        let acc = &mut out[h * head_dim..(h + 1) * head_dim];
        acc.fill(0.0);
        for (j, &p) in scratch.iter().enumerate() {
            let row = j * kv_dim + kv_off;
            for (a, &v) in acc.iter_mut().zip(&values[row..row + head_dim]) {
                *a = fused_multiply_add(p, v, *a);
            }
        }
        let inv = (1.0 / sum) as f32;
        acc.iter_mut().for_each(|a| *a *= inv);
    }
}

/// Rounds to the nearest f16 value (ties to even), kept as f32: the f16 accumulator of
/// llama.cpp's attention without converting back and forth.
#[inline]
fn round_f16(x: f32) -> f32 {
    // Below f16's smallest normal the spacing is fixed at 2^-24.
    const SUBNORMAL_LIMIT: f32 = 6.103_515_6e-5; // 2^-14
    if x.abs() < SUBNORMAL_LIMIT {
        const STEP: f32 = 16_777_216.0; // 2^24
        return (x * STEP).round_ties_even() / STEP;
    }
    if x.abs() >= 65_520.0 || x.is_nan() {
        // Beyond f16's largest finite value after rounding.
        return f16::from_f32(x).to_f32();
    }
    // Keep 10 of f32's 23 mantissa bits, rounding half to even.
    let bits = x.to_bits();
    let round = 0x0FFF + ((bits >> 13) & 1);
    f32::from_bits((bits + round) & !0x1FFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_position_returns_its_value() {
        let heads = Heads { n_heads: 2, n_kv_heads: 1, head_dim: 2 };
        let mut out = [0.0; 4];
        attend(
            heads,
            &[1.0, 2.0, 3.0, 4.0],
            &[1.0, 0.0],
            &[3.0, -2.0],
            1,
            &mut Vec::new(),
            &mut out,
        );
        assert_eq!(out, [3.0, -2.0, 3.0, -2.0]);
    }

    #[test]
    fn matches_a_plain_softmax_within_f16_precision() {
        let heads = Heads { n_heads: 1, n_kv_heads: 1, head_dim: 2 };
        let keys = [0.5, 1.0, 2.0, -1.0, 0.0, 3.0];
        let values = [1.0, 2.0, -3.0, 0.5, 4.0, 4.0];
        let q = [0.75, 1.25];
        let mut out = [0.0; 2];
        attend(heads, &q, &keys, &values, 3, &mut Vec::new(), &mut out);
        let scores: Vec<f32> =
            keys.chunks(2).map(|k| (q[0] * k[0] + q[1] * k[1]) / 2f32.sqrt()).collect();
        let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let w: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
        let total: f32 = w.iter().sum();
        for d in 0..2 {
            let expect: f32 = (0..3).map(|j| w[j] * values[j * 2 + d]).sum::<f32>() / total;
            assert!((out[d] - expect).abs() < 1e-2, "{} vs {expect}", out[d]);
        }
    }

    #[test]
    fn both_paths_agree_closely() {
        let heads = Heads { n_heads: 2, n_kv_heads: 1, head_dim: 4 };
        let keys: Vec<f32> = (0..40).map(|i| ((i * 7) % 11) as f32 / 5.0 - 1.0).collect();
        let values: Vec<f32> = (0..40).map(|i| ((i * 3) % 13) as f32 / 6.0 - 1.0).collect();
        let q = [0.3, -1.2, 0.8, 0.5, 1.0, 0.0, -0.4, 0.9];
        let (mut a, mut b) = ([0.0; 8], [0.0; 8]);
        attend(heads, &q, &keys, &values, 10, &mut Vec::new(), &mut a);
        attend_long_batch(heads, &q, &keys, &values, 10, &mut Vec::new(), &mut b);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 2e-3, "{x} vs {y}");
        }
    }

    #[test]
    fn dot_like_ggml_is_a_dot_product() {
        let a: Vec<f32> = (0..70).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..70).map(|i| (i as f32 * 0.11).cos()).collect();
        let plain: f64 = a.iter().zip(&b).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum();
        assert!((f64::from(dot_like_ggml(&a, &b)) - plain).abs() < 1e-5);
    }

    #[test]
    fn round_f16_agrees_with_the_half_crate() {
        let mut x = 1.234_567e-9f32;
        while x < 70_000.0 {
            for v in [x, -x, x * 1.000_3, x * 0.999_7] {
                assert_eq!(round_f16(v), f16::from_f32(v).to_f32(), "{v}");
            }
            x *= 1.013;
        }
        assert_eq!(round_f16(0.0), 0.0);
    }
}
