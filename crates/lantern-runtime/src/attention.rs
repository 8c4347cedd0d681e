//! Causal grouped-query attention of one token over the cached positions.

use half::f16;

use crate::ops::{dot, softmax};

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
/// `h / (n_heads / n_kv_heads)`. The query is rounded to f16 before the key dot product,
/// as llama.cpp does against an f16 cache. `scratch` is reused
/// between calls so decoding allocates nothing.
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
    scratch.resize(head_dim + n_pos, 0.0);
    let (q_h, scores) = scratch.split_at_mut(head_dim);
    for h in 0..n_heads {
        let kv_off = (h / group) * head_dim;
        for (dst, &v) in q_h.iter_mut().zip(&q[h * head_dim..(h + 1) * head_dim]) {
            *dst = f16::from_f32(v).to_f32();
        }
        for (j, s) in scores.iter_mut().enumerate() {
            let k = &keys[j * kv_dim + kv_off..j * kv_dim + kv_off + head_dim];
            *s = dot(q_h, k) * scale;
        }
        softmax(scores);
        let out_h = &mut out[h * head_dim..(h + 1) * head_dim];
        out_h.fill(0.0);
        for (j, &p) in scores.iter().enumerate() {
            let v = &values[j * kv_dim + kv_off..j * kv_dim + kv_off + head_dim];
            for (o, &vv) in out_h.iter_mut().zip(v) {
                *o += p * vv;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_position_returns_its_value() {
        let heads = Heads { n_heads: 2, n_kv_heads: 1, head_dim: 2 };
        let keys = [1.0, 0.0];
        let values = [3.0, -2.0];
        let mut out = [0.0; 4];
        attend(heads, &[1.0, 2.0, 3.0, 4.0], &keys, &values, 1, &mut Vec::new(), &mut out);
        assert_eq!(out, [3.0, -2.0, 3.0, -2.0]);
    }

    #[test]
    fn weights_follow_key_similarity() {
        let heads = Heads { n_heads: 1, n_kv_heads: 1, head_dim: 1 };
        let keys = [0.0, 10.0];
        let values = [0.0, 1.0];
        let mut out = [0.0; 1];
        attend(heads, &[1.0], &keys, &values, 2, &mut Vec::new(), &mut out);
        // softmax([0, 10]) puts almost all weight on the second position.
        assert!(out[0] > 0.99);
    }
}
