//! Causal attention of a long batch, as matrix products over tiles of the cache.
//!
//! For each kv head, the queries of every head that reads it, for all tokens of the batch,
//! form the rows of one matrix. The cache is read in tiles of [`KV_TILE`] positions, each
//! converted to f32 once for all those rows (keys transposed, so a score is a row of a
//! product). Per tile: the scores `Q·Kᵀ` and then `P·V` are [`gemm`] calls, and the softmax
//! is online, rescaling what was accumulated when a tile raises a row's maximum. A tile
//! that no token of the batch can see yet is not read, and rows of tokens that see none of
//! a tile skip it.
//!
//! This is the order of llama.cpp's tiled CPU path (`flash_attn_ext_tiled`), which it takes
//! for the same batches: every score a run of fused multiply-adds over the head's values,
//! the same tiles, the same online rescaling. The sums of a tile's exponentials are taken in
//! another order, so results are close to the peer's, not the same bits.
//!
//! [`gemm`]: lantern_core::kernels::gemm_fn

use half::f16;
use half::slice::HalfFloatSliceExt;
use lantern_core::kernels::{gemm_fn, vector_kernels};

use super::Heads;

/// Cache positions per tile (the peer's `GGML_FA_TILE_KV`).
pub(crate) const KV_TILE: usize = 64;

/// Buffers for one call of [`attend_batch`], grown to fit and reused.
#[derive(Debug, Default)]
pub(crate) struct TileScratch {
    /// The queries of one kv head: row `t·group + i` is token `t`'s head `i` of the group.
    queries: Vec<f32>,
    /// The weighted sums of values, one row per query.
    acc: Vec<f32>,
    /// One tile's scores, then its weights, one row of [`KV_TILE`] per query.
    scores: Vec<f32>,
    /// One tile's keys, transposed: `head_dim` rows of [`KV_TILE`] positions.
    keys: Vec<f32>,
    /// One tile's values: [`KV_TILE`] rows of `head_dim`.
    values: Vec<f32>,
    /// Per query, the largest score so far and the sum of its weights.
    max: Vec<f32>,
    sum: Vec<f32>,
}

/// Attention of consecutive tokens, the first of which sees cache positions
/// `0..first_len` and each next one position more; in a sliding-window layer, each sees
/// only the last `window` of those (`usize::MAX`: all of them).
///
/// `q` and `out` hold one row of `n_heads` heads per token; `keys` and `values` hold at
/// least the positions the last token sees.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attend_batch(
    heads: Heads,
    q: &[f32],
    keys: &[f16],
    values: &[f16],
    first_len: usize,
    window: usize,
    scratch: &mut TileScratch,
    out: &mut [f32],
) {
    let d = heads.head_dim;
    let q_dim = heads.n_heads * d;
    let group = heads.n_heads / heads.n_kv_heads;
    let n = out.len() / q_dim;
    let rows = n * group;
    let (gemm, exp_shifted) = (gemm_fn(), vector_kernels().exp_shifted);
    let s = scratch;
    s.queries.resize(rows * d, 0.0);
    s.acc.resize(rows * d, 0.0);
    s.scores.resize(rows * KV_TILE, 0.0);
    s.keys.resize(d * KV_TILE, 0.0);
    s.values.resize(KV_TILE * d, 0.0);
    let last_len = first_len + n.saturating_sub(1);

    for kv_head in 0..heads.n_kv_heads {
        let first_head = kv_head * group;
        for (t, queries) in s.queries.chunks_exact_mut(group * d).enumerate() {
            let at = t * q_dim + first_head * d;
            queries.copy_from_slice(&q[at..at + group * d]);
        }
        s.acc.fill(0.0);
        s.max.clear();
        s.max.resize(rows, f32::NEG_INFINITY);
        s.sum.clear();
        s.sum.resize(rows, 0.0);

        let first_seen = first_len.saturating_sub(window);
        for start in (first_seen / KV_TILE * KV_TILE..last_len).step_by(KV_TILE) {
            let len = KV_TILE.min(last_len - start);
            load_tile(heads, keys, values, kv_head, start..start + len, &mut s.keys, &mut s.values);
            // Rows `r0..r1` belong to the tokens that see some position of the tile: from
            // the first that sees `start` to the last whose window reaches into the tile.
            let r0 = (start + 1).saturating_sub(first_len) * group;
            let r1 = (start + len).saturating_add(window).saturating_sub(first_len).min(n) * group;
            if r0 >= r1 {
                continue;
            }
            let scores = &mut s.scores[r0 * KV_TILE..r1 * KV_TILE];
            scores.fill(0.0);
            gemm(scores, &s.queries[r0 * d..r1 * d], &s.keys, d, KV_TILE);
            for (r, row) in (r0..).zip(scores.chunks_exact_mut(KV_TILE)) {
                let end = first_len + r / group;
                let from = end.saturating_sub(window).max(start) - start;
                let (before, row) = row.split_at_mut(from);
                before.fill(0.0);
                let (seen, unseen) = row.split_at_mut((end - start).min(len) - from);
                unseen.fill(0.0);
                let tile_max = scale_and_max(seen, heads.scale());
                let old = s.max[r];
                if tile_max > old {
                    // exp(−∞) is 0: the first tile finds nothing to rescale.
                    let rescale = (old - tile_max).exp();
                    s.acc[r * d..(r + 1) * d].iter_mut().for_each(|a| *a *= rescale);
                    s.sum[r] *= rescale;
                    s.max[r] = tile_max;
                }
                s.sum[r] = (f64::from(s.sum[r]) + exp_shifted(seen, s.max[r])) as f32;
            }
            gemm(
                &mut s.acc[r0 * d..r1 * d],
                &s.scores[r0 * KV_TILE..r1 * KV_TILE],
                &s.values,
                KV_TILE,
                d,
            );
        }

        for (r, acc) in s.acc.chunks_exact(d).enumerate() {
            let (t, i) = (r / group, r % group);
            let at = t * q_dim + (first_head + i) * d;
            let inv = 1.0 / s.sum[r];
            for (o, &a) in out[at..at + d].iter_mut().zip(acc) {
                *o = a * inv;
            }
        }
    }
}

/// Multiplies `x` by `scale` and returns its largest value, eight lanes at a time so that
/// the compiler keeps it in vector registers (the maximum is the same in any order).
fn scale_and_max(x: &mut [f32], scale: f32) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let mut chunks = x.chunks_exact_mut(8);
    for chunk in &mut chunks {
        for (v, m) in chunk.iter_mut().zip(&mut lanes) {
            *v *= scale;
            *m = if *v > *m { *v } else { *m };
        }
    }
    for v in chunks.into_remainder() {
        *v *= scale;
        lanes[0] = if *v > lanes[0] { *v } else { lanes[0] };
    }
    lanes.into_iter().fold(f32::NEG_INFINITY, f32::max)
}

/// Positions `range` of `kv_head` as f32: keys transposed into `keys` (`head_dim` rows of
/// [`KV_TILE`]), values into `values` ([`KV_TILE`] rows of `head_dim`). Positions past the
/// range are zero, so a tile cut short adds nothing.
fn load_tile(
    heads: Heads,
    keys: &[f16],
    values: &[f16],
    kv_head: usize,
    range: std::ops::Range<usize>,
    keys_t: &mut [f32],
    values_f32: &mut [f32],
) {
    let d = heads.head_dim;
    for (j, p) in range.clone().enumerate() {
        let at = p * heads.kv_dim() + kv_head * d;
        values[at..at + d].convert_to_f32_slice(&mut values_f32[j * d..(j + 1) * d]);
        for (i, k) in keys[at..at + d].iter().enumerate() {
            keys_t[i * KV_TILE + j] = k.to_f32();
        }
    }
    for j in range.len()..KV_TILE {
        values_f32[j * d..(j + 1) * d].fill(0.0);
        for i in 0..d {
            keys_t[i * KV_TILE + j] = 0.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::decode::{halves, plain_attention};

    /// Three query heads per kv head, and a batch that starts inside the first tile and
    /// ends in the third.
    const HEADS: Heads = Heads {
        n_heads: 6,
        n_kv_heads: 2,
        head_dim: 8,
        scale: std::f32::consts::FRAC_1_SQRT_2 / 2.0,
    };
    const FIRST_LEN: usize = 60;
    const TOKENS: usize = 80;

    fn inputs() -> (Vec<f32>, Vec<f16>, Vec<f16>) {
        let positions = FIRST_LEN + TOKENS - 1;
        let kv = positions * HEADS.kv_dim();
        let q = (0..TOKENS * 48).map(|i| ((i * 5) % 9) as f32 / 2.0 - 2.0).collect();
        let keys = halves((0..kv).map(|i| ((i * 7) % 11) as f32 / 5.0 - 1.0));
        let values = halves((0..kv).map(|i| ((i * 3) % 13) as f32 / 6.0 - 1.0));
        (q, keys, values)
    }

    #[test]
    fn every_token_matches_a_plain_softmax() {
        let (q, keys, values) = inputs();
        let mut out = vec![0.0; q.len()];
        attend_batch(
            HEADS,
            &q,
            &keys,
            &values,
            FIRST_LEN,
            usize::MAX,
            &mut TileScratch::default(),
            &mut out,
        );
        for (t, (q, out)) in q.chunks_exact(48).zip(out.chunks_exact(48)).enumerate() {
            let expect = plain_attention(HEADS, q, &keys, &values, FIRST_LEN + t);
            for (x, e) in out.iter().zip(&expect) {
                assert!((x - e).abs() < 1e-5, "token {t}: {x} vs {e}");
            }
        }
    }

    #[test]
    fn a_sliding_window_hides_what_lies_before_it() {
        let (q, keys, values) = inputs();
        let kv = HEADS.kv_dim();
        // Windows shorter than a tile, across tiles, and as long as the cache.
        for window in [1, 5, 64, 70, FIRST_LEN + TOKENS] {
            let mut out = vec![0.0; q.len()];
            attend_batch(
                HEADS,
                &q,
                &keys,
                &values,
                FIRST_LEN,
                window,
                &mut TileScratch::default(),
                &mut out,
            );
            for (t, (q, out)) in q.chunks_exact(48).zip(out.chunks_exact(48)).enumerate() {
                let end = FIRST_LEN + t;
                let first = end.saturating_sub(window);
                let expect = plain_attention(
                    HEADS,
                    q,
                    &keys[first * kv..],
                    &values[first * kv..],
                    end - first,
                );
                for (x, e) in out.iter().zip(&expect) {
                    assert!((x - e).abs() < 1e-5, "window {window}, token {t}: {x} vs {e}");
                }
            }
        }
    }

    #[test]
    fn a_token_gets_the_same_bits_in_any_batch() {
        let (q, keys, values) = inputs();
        let mut whole = vec![0.0; q.len()];
        let mut scratch = TileScratch::default();
        attend_batch(HEADS, &q, &keys, &values, FIRST_LEN, usize::MAX, &mut scratch, &mut whole);
        for (t, (q, whole)) in q.chunks_exact(48).zip(whole.chunks_exact(48)).enumerate() {
            let mut alone = [0.0; 48];
            attend_batch(
                HEADS,
                q,
                &keys,
                &values,
                FIRST_LEN + t,
                usize::MAX,
                &mut scratch,
                &mut alone,
            );
            assert_eq!(whole, alone, "token {t}");
        }
    }
}
