//! Element-wise and per-row operations of the decoder, on f32 slices.
//!
//! Where summation order or precision decides a near-tie between tokens, these follow ggml's
//! CPU definitions (RMSNorm sums squares in f64, RoPE advances the angle by repeated
//! multiplication) so greedy output matches llama.cpp on the same file.

use std::sync::OnceLock;

use half::f16;

use crate::RopeStyle;

/// `out = x / rms(x) · gain`, one row of `gain.len()` values at a time.
pub(crate) fn rms_norm(x: &[f32], gain: &[f32], eps: f32, out: &mut [f32]) {
    let n = gain.len();
    for (row, out_row) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
        let scale = inverse_rms(row, eps);
        for ((o, &v), &g) in out_row.iter_mut().zip(row).zip(gain) {
            *o = v * scale * g;
        }
    }
}

/// [`rms_norm`] in place, of each head of `gain.len()` values.
pub(crate) fn rms_norm_heads(x: &mut [f32], gain: &[f32], eps: f32) {
    for head in x.chunks_exact_mut(gain.len().max(1)) {
        let scale = inverse_rms(head, eps);
        for (v, &g) in head.iter_mut().zip(gain) {
            *v = *v * scale * g;
        }
    }
}

/// `1 / √(mean(row²) + eps)`, the squares summed in f64.
fn inverse_rms(row: &[f32], eps: f32) -> f32 {
    let sum: f64 = row.iter().map(|&v| f64::from(v * v)).sum();
    let mean = (sum / row.len() as f64) as f32;
    1.0 / (mean + eps).sqrt()
}

/// How one layer's RoPE turns a token's heads.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rope<'a> {
    /// Leading values of each head that turn.
    pub(crate) dim: usize,
    /// Frequency base.
    pub(crate) base: f32,
    /// Frequency scale (linear scaling; 1 for none).
    pub(crate) scale: f32,
    /// Which values turn together.
    pub(crate) style: RopeStyle,
    /// Per-pair divisors of the angle (Llama 3's `rope_freqs`, LongRoPE's factors).
    pub(crate) factors: Option<&'a [f32]>,
    /// Factor of the sines and cosines (LongRoPE's `attn_factor`; 1 for none).
    pub(crate) magnitude: f32,
}

/// Rotary position embedding of one token's heads, in place.
///
/// `x` holds `x.len() / head_dim` heads; within each, the first `rope.dim` values turn in
/// pairs (adjacent ones, or value `i` with `i + dim/2`), pair `i` by the angle
/// `scale · pos · base^(−2i/dim) / factor_i`, its sine and cosine times `magnitude`,
/// computed as ggml computes them.
pub(crate) fn rope(x: &mut [f32], pos: usize, head_dim: usize, rope: &Rope<'_>) {
    /// Pairs whose angles are computed at a time, once for all heads.
    const GROUP: usize = 32;
    let theta_scale = rope.base.powf(-2.0 / rope.dim as f32);
    let pairs = rope.dim.min(head_dim) / 2;
    // Each head takes the same angles, in the same sequence of products as the peer's.
    let mut theta = pos as f32;
    for start in (0..pairs).step_by(GROUP) {
        let len = GROUP.min(pairs - start);
        let mut turns = [(0.0f32, 0.0f32); GROUP];
        for (i, turn) in turns[..len].iter_mut().enumerate() {
            let factor = rope.factors.and_then(|f| f.get(start + i)).copied().unwrap_or(1.0);
            let (sin, cos) = (rope.scale * (theta / factor)).sin_cos();
            *turn = (sin * rope.magnitude, cos * rope.magnitude);
            theta *= theta_scale;
        }
        for head in x.chunks_exact_mut(head_dim) {
            for (i, &(sin, cos)) in turns[..len].iter().enumerate() {
                let (at, partner) = match rope.style {
                    RopeStyle::Adjacent => (2 * (start + i), 2 * (start + i) + 1),
                    RopeStyle::Halves => (start + i, start + i + pairs),
                };
                let (a, b) = (head[at], head[partner]);
                // The peer's compiler fuses the first product of each line into an FMA.
                head[at] = fused_multiply_add(a, cos, -(b * sin));
                head[partner] = fused_multiply_add(a, sin, b * cos);
            }
        }
    }
}

/// `out[i] = GELU(gate[i]) · up[i]` in place of `gate`, GELU's tanh approximation, as ggml
/// computes it on the CPU: the gate rounded to f16 and looked up in a table of f16 results.
pub(crate) fn gelu_mul(gate: &mut [f32], up: &[f32]) {
    let table = gelu_table();
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = if *g <= -10.0 {
            0.0
        } else if *g >= 10.0 {
            *g * u
        } else {
            table[usize::from(f16::from_f32(*g).to_bits())].to_f32() * u
        };
    }
}

/// GELU of every f16 value, rounded to f16.
fn gelu_table() -> &'static [f16] {
    static TABLE: OnceLock<Vec<f16>> = OnceLock::new();
    TABLE.get_or_init(|| {
        const SQRT_2_OVER_PI: f32 = 0.797_884_6;
        const COEF_A: f32 = 0.044_715;
        (0..=u16::MAX)
            .map(|bits| {
                let x = f16::from_bits(bits).to_f32();
                let inner = fused_multiply_add(COEF_A * x, x, 1.0);
                f16::from_f32(0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * inner).tanh()))
            })
            .collect()
    })
}

/// `a·b + c` rounded once, as an FMA instruction computes it: the product of two f32 is exact
/// in f64, so only the sum is rounded (twice in rare cases, which f32 results do not show).
#[inline]
pub(crate) fn fused_multiply_add(a: f32, b: f32, c: f32) -> f32 {
    (f64::from(a) * f64::from(b) + f64::from(c)) as f32
}

/// `acc += x` for each row of `x.len()` values in `acc`: a bias on every token.
pub(crate) fn add_rows(acc: &mut [f32], x: &[f32]) {
    for row in acc.chunks_exact_mut(x.len().max(1)) {
        add_assign(row, x);
    }
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
        let r = Rope {
            dim: 8,
            base: 10_000.0,
            scale: 1.0,
            style: RopeStyle::Adjacent,
            factors: None,
            magnitude: 1.0,
        };
        rope(&mut x, 0, 8, &r);
        assert_eq!(x, orig);
        rope(&mut x, 7, 8, &r);
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
        let r = Rope {
            dim: rope_dim,
            base: 10_000.0,
            scale: 1.0,
            style: RopeStyle::Adjacent,
            factors: None,
            magnitude: 1.0,
        };
        rope(&mut all, pos, head_dim, &r);
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
