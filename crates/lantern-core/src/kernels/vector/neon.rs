//! NEON twins of the element-wise kernels in [`super`], four lanes at a time with the
//! scalar formulas for the tail.
//!
//! [`exp`] performs [`super::exp`]'s operations lane by lane: the same fused
//! multiply-adds (`vfmsq_f32(x, n, c)` is `(−n).mul_add(c, x)`), and the same choice between
//! the in-range, split and saturated results, made per lane with the scalar comparisons.
//!
//! # Safety design
//! The kernels carry `#[target_feature(enable = "neon")]`. Every aarch64 CPU has NEON, so the
//! safe function pointers in [`KERNELS`] call them without detection. Loads and stores each
//! cover one `chunks_exact` chunk of four f32.

use std::arch::aarch64::*;

use super::{VectorKernels, SCALAR};

pub(super) static KERNELS: VectorKernels = VectorKernels {
    // SAFETY: NEON is part of every aarch64 CPU (module docs).
    silu_mul: |gate, up| unsafe { silu_mul(gate, up) },
    // SAFETY: as above.
    exp_shifted: |x, max| unsafe { exp_shifted(x, max) },
};

/// f32 lanes per register.
const LANES: usize = 4;

#[target_feature(enable = "neon")]
fn silu_mul(gate: &mut [f32], up: &[f32]) {
    let n = gate.len().min(up.len());
    let body = n - n % LANES;
    let one = vdupq_n_f32(1.0);
    for (g, u) in gate[..body].chunks_exact_mut(LANES).zip(up[..body].chunks_exact(LANES)) {
        // SAFETY: each chunk holds four f32.
        let (gv, uv) = unsafe { (vld1q_f32(g.as_ptr()), vld1q_f32(u.as_ptr())) };
        let silu = vdivq_f32(gv, vaddq_f32(one, exp(vnegq_f32(gv))));
        // SAFETY: as above.
        unsafe { vst1q_f32(g.as_mut_ptr(), vmulq_f32(silu, uv)) };
    }
    (SCALAR.silu_mul)(&mut gate[body..n], &up[body..n]);
}

#[target_feature(enable = "neon")]
fn exp_shifted(x: &mut [f32], max: f32) -> f64 {
    let body = x.len() - x.len() % LANES;
    let shift = vdupq_n_f32(max);
    let mut sum = 0.0f64;
    for chunk in x[..body].chunks_exact_mut(LANES) {
        // SAFETY: the chunk holds four f32.
        let v = exp(vsubq_f32(unsafe { vld1q_f32(chunk.as_ptr()) }, shift));
        // SAFETY: as above.
        unsafe { vst1q_f32(chunk.as_mut_ptr(), v) };
        sum = chunk.iter().fold(sum, |s, &v| s + f64::from(v));
    }
    // The tail continues the same running sum: f64 addition is not associative, so a separate
    // sum of the tail added at the end could round differently.
    x[body..].iter_mut().fold(sum, |s, v| {
        *v = super::exp(*v - max);
        s + f64::from(*v)
    })
}

/// ggml's `ggml_v_expf`, the four-lane form of [`super::exp`].
#[inline]
#[target_feature(enable = "neon")]
fn exp(x: float32x4_t) -> float32x4_t {
    #[inline]
    #[target_feature(enable = "neon")]
    fn c(bits: u32) -> float32x4_t {
        vreinterpretq_f32_u32(vdupq_n_u32(bits))
    }
    let round = c(0x4B40_0000);
    let z = vfmaq_f32(round, x, c(0x3FB8_AA3B));
    let n = vsubq_f32(z, round);
    let b = vfmsq_f32(vfmsq_f32(x, n, c(0x3F31_7200)), n, c(0x35BF_BE8E));
    let e = vshlq_n_u32::<23>(vreinterpretq_u32_f32(z));
    let k = vreinterpretq_f32_u32(vaddq_u32(e, vdupq_n_u32(1f32.to_bits())));
    let u = vmulq_f32(b, b);
    let j = vfmaq_f32(
        vfmaq_f32(c(0x3EFF_FEDB), c(0x3E2A_AF33), b),
        vfmaq_f32(c(0x3D2B_9F17), c(0x3C07_2010), b),
        u,
    );
    let j = vfmaq_f32(vmulq_f32(c(0x3F7F_FFF6), b), j, u);
    let scaled = vfmaq_f32(k, j, k);
    // |n| <= 126, false for NaN as in the scalar test.
    let in_range = vcaleq_f32(n, vdupq_n_f32(126.0));
    if vminvq_u32(in_range) == u32::MAX {
        return scaled;
    }
    // Near overflow or underflow 2^n is split in two factors.
    let g = vandq_u32(vclezq_f32(n), vdupq_n_u32(0x8200_0000));
    let s1 = vreinterpretq_f32_u32(vaddq_u32(g, vdupq_n_u32(0x7F00_0000)));
    let s2 = vreinterpretq_f32_u32(vsubq_u32(e, g));
    let split = vmulq_f32(vfmaq_f32(s2, s2, j), s1);
    let huge = vcagtq_f32(n, vdupq_n_f32(192.0));
    vbslq_f32(in_range, scaled, vbslq_f32(huge, vmulq_f32(s1, s1), split))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values around every branch of `exp`, infinities included, in a repeating pattern.
    fn inputs(len: usize) -> Vec<f32> {
        let special = [0.0, -0.0, 88.7, 89.0, -87.4, -103.0, -150.0, 1e3, -1e3];
        let special = special.into_iter().chain([f32::INFINITY, f32::NEG_INFINITY]);
        let ramp = (-300..300).map(|i| i as f32 * 0.71);
        special.chain(ramp).cycle().take(len).collect()
    }

    #[test]
    fn every_length_gives_the_scalar_bits() {
        for len in (0..=24).chain([611, 1000]) {
            let x = inputs(len);
            let up: Vec<f32> = x.iter().map(|v| 1.0 - v / 50.0).collect();
            let (mut a, mut b) = (x.clone(), x.clone());
            (SCALAR.silu_mul)(&mut a, &up);
            (KERNELS.silu_mul)(&mut b, &up);
            assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()), "silu {len}");
            for max in [0.0, 40.0, 300.0] {
                let (mut a, mut b) = (x.clone(), x.clone());
                let sums = ((SCALAR.exp_shifted)(&mut a, max), (KERNELS.exp_shifted)(&mut b, max));
                assert_eq!(sums.0.to_bits(), sums.1.to_bits(), "sum {len} {max}");
                assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()), "exp {len}");
            }
        }
    }

    #[test]
    fn the_tail_continues_the_running_sum() {
        // Four ones, then a tail of three values near 2^-40 whose low bits fall below the
        // f64 ulp of 4: the rounding shows the order of the additions.
        let x = [0.0, 0.0, 0.0, 0.0, -26.5, -26.6, -26.7];
        let (mut a, mut b) = (x, x);
        let simd = (KERNELS.exp_shifted)(&mut b, 0.0);
        assert_eq!((SCALAR.exp_shifted)(&mut a, 0.0).to_bits(), simd.to_bits());
        let tail: f64 = b[4..].iter().map(|&v| f64::from(v)).sum();
        assert_ne!((4.0 + tail).to_bits(), simd.to_bits(), "the values must be order-sensitive");
    }
}
