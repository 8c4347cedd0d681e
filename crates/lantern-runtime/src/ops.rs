//! Element-wise and per-row operations of the decoder, on f32 slices.
//!
//! Where summation order or precision decides a near-tie between tokens, these follow ggml's
//! CPU definitions (RMSNorm sums squares in f64, RoPE advances the angle by repeated
//! multiplication) so greedy output matches llama.cpp on the same file.

/// `out = x / rms(x) · gain`, one row of `gain.len()` values at a time.
pub(crate) fn rms_norm(x: &[f32], gain: &[f32], eps: f32, out: &mut [f32]) {
    let n = gain.len();
    for (row, out_row) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
        let sum: f64 = row.iter().map(|&v| f64::from(v * v)).sum();
        let mean = (sum / n as f64) as f32;
        let scale = 1.0 / (mean + eps).sqrt();
        for ((o, &v), &g) in out_row.iter_mut().zip(row).zip(gain) {
            *o = v * scale * g;
        }
    }
}

/// Rotary position embedding of one token's heads, in place.
///
/// `x` holds `x.len() / head_dim` heads; within each, the first `rope_dim` values are
/// rotated in adjacent pairs `(2i, 2i+1)` by `pos · base^(−2i/rope_dim)` (GGUF stores llama
/// Q/K weights permuted for this pairing).
pub(crate) fn rope(x: &mut [f32], pos: usize, head_dim: usize, rope_dim: usize, base: f32) {
    /// Pairs whose angles are computed at a time, once for all heads.
    const GROUP: usize = 32;
    let theta_scale = base.powf(-2.0 / rope_dim as f32);
    let pairs = rope_dim.min(head_dim) / 2;
    // Each head takes the same angles, in the same sequence of products as the peer's.
    let mut theta = pos as f32;
    for start in (0..pairs).step_by(GROUP) {
        let len = GROUP.min(pairs - start);
        let mut turns = [(0.0f32, 0.0f32); GROUP];
        for turn in &mut turns[..len] {
            *turn = theta.sin_cos();
            theta *= theta_scale;
        }
        for head in x.chunks_exact_mut(head_dim) {
            let head = &mut head[2 * start..2 * (start + len)];
            for (pair, &(sin, cos)) in head.chunks_exact_mut(2).zip(&turns) {
                let (a, b) = (pair[0], pair[1]);
                // The peer's compiler fuses the first product of each line into an FMA.
                pair[0] = fused_multiply_add(a, cos, -(b * sin));
                pair[1] = fused_multiply_add(a, sin, b * cos);
            }
        }
    }
}

/// `a·b + c` rounded once, as an FMA instruction computes it: the product of two f32 is exact
/// in f64, so only the sum is rounded (twice in rare cases, which f32 results do not show).
#[inline]
pub(crate) fn fused_multiply_add(a: f32, b: f32, c: f32) -> f32 {
    (f64::from(a) * f64::from(b) + f64::from(c)) as f32
}

/// `acc += x`, element-wise.
pub(crate) fn add_assign(acc: &mut [f32], x: &[f32]) {
    acc.iter_mut().zip(x).for_each(|(a, &b)| *a += b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_makes_unit_rms() {
        let x = [3.0, 4.0, 0.0, 0.0];
        let mut out = [0.0; 4];
        rms_norm(&x, &[1.0, 1.0, 2.0, 2.0], 0.0, &mut out);
        assert!((out[0] - 1.2).abs() < 1e-6 && (out[1] - 1.6).abs() < 1e-6);
    }

    #[test]
    fn rope_at_zero_is_identity_and_preserves_norm() {
        let mut x: Vec<f32> = (0..8).map(|i| i as f32).collect();
        let orig = x.clone();
        rope(&mut x, 0, 8, 8, 10_000.0);
        assert_eq!(x, orig);
        rope(&mut x, 7, 8, 8, 10_000.0);
        let norm = |v: &[f32]| v.iter().map(|a| a * a).sum::<f32>();
        assert!((norm(&x) - norm(&orig)).abs() < 1e-3);
        // The first pair turns by exactly `pos` radians.
        let (s, c) = 7f32.sin_cos();
        assert!((x[0] - (0.0 * c - 1.0 * s)).abs() < 1e-6);
    }

    #[test]
    fn rope_turns_every_head_alike() {
        // Three heads of 128 with 96 rotated values: angles are shared across heads and
        // computed in groups; each head must match a head rotated on its own, pair by pair.
        let (head_dim, rope_dim, pos) = (128, 96, 1234);
        let x: Vec<f32> = (0..3 * head_dim).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut all = x.clone();
        rope(&mut all, pos, head_dim, rope_dim, 10_000.0);
        for (h, head) in all.chunks_exact(head_dim).enumerate() {
            let mut own = x[h * head_dim..(h + 1) * head_dim].to_vec();
            let theta_scale = 10_000f32.powf(-2.0 / rope_dim as f32);
            let mut theta = pos as f32;
            for pair in own[..rope_dim].chunks_exact_mut(2) {
                let (sin, cos) = theta.sin_cos();
                let (a, b) = (pair[0], pair[1]);
                pair[0] = fused_multiply_add(a, cos, -(b * sin));
                pair[1] = fused_multiply_add(a, sin, b * cos);
                theta *= theta_scale;
            }
            assert_eq!(head, &own[..], "head {h}");
        }
    }
}
