//! The NEON twin of the 32-value [activation quantizer](super), bit-identical to
//! [`super::q8_block`]. NEON is part of every aarch64 CPU, so it needs no detection.

use std::arch::aarch64::*;
use std::arch::asm;

use crate::{BlockQ8, QK8};

/// `v` rounded to f16 (to nearest, ties to even, as `half::f16::from_f32`) and widened back.
#[inline(always)]
fn round_through_f16(v: float32x4_t) -> float32x4_t {
    let out: float32x4_t;
    // SAFETY: register-only instructions of base Advanced SIMD.
    unsafe {
        asm!(
            "fcvtn {0:v}.4h, {1:v}.4s",
            "fcvtl {0:v}.4s, {0:v}.4h",
            out(vreg) out,
            in(vreg) v,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    out
}

/// The NEON twin of [`super::scalar_q8_blocks`], bit-identical to it.
pub(super) fn quantize_q8_blocks(x: &[f32], out: &mut [BlockQ8]) {
    for (o, x) in out.iter_mut().zip(x.chunks_exact(QK8)) {
        // SAFETY: the chunk holds the 32 floats the block reads.
        *o = unsafe { q8_block(x.as_ptr()) };
    }
}

/// The twin of [`super::q8_block`] for the 32 floats at `x`.
///
/// # Safety
/// `x` points to 32 readable floats.
#[inline]
unsafe fn q8_block(x: *const f32) -> BlockQ8 {
    // SAFETY: the loads read the caller's 32 floats and the 4 of `ds`; the stores write the
    // 32 bytes of `qs` and the 4 floats of `rounded`; the rest is register-only.
    unsafe {
        let mut v = [vdupq_n_f32(0.0); 8];
        for (i, v) in v.iter_mut().enumerate() {
            *v = vld1q_f32(x.add(4 * i));
        }
        // `maxnm` ignores NaN as `f32::max` does; the order of maxima does not matter.
        let mut m = vabsq_f32(v[0]);
        for &vi in &v[1..] {
            m = vmaxnmq_f32(m, vabsq_f32(vi));
        }
        let amax = vmaxnmvq_f32(m);
        let d = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        // Round half to even; |v·id| <= 127 up to one rounding, so nothing saturates.
        let mut q = [vdupq_n_s32(0); 8];
        for (q, &v) in q.iter_mut().zip(&v) {
            *q = vcvtnq_s32_f32(vmulq_n_f32(v, id));
        }
        let sum = vaddvq_s32(vaddq_s32(
            vaddq_s32(vaddq_s32(q[0], q[1]), vaddq_s32(q[2], q[3])),
            vaddq_s32(vaddq_s32(q[4], q[5]), vaddq_s32(q[6], q[7])),
        ));
        let mut qs = [0i8; QK8];
        for half in 0..2 {
            let q = &q[4 * half..];
            let lo = vmovn_high_s32(vmovn_s32(q[0]), q[1]);
            let hi = vmovn_high_s32(vmovn_s32(q[2]), q[3]);
            vst1q_s8(qs.as_mut_ptr().add(16 * half), vmovn_high_s16(vmovn_s16(lo), hi));
        }
        // ggml multiplies the unrounded d by the integer sum, then rounds both to f16.
        let ds = [d, d * sum as f32, 0.0, 0.0];
        let mut rounded = [0.0f32; 4];
        vst1q_f32(rounded.as_mut_ptr(), round_through_f16(vld1q_f32(ds.as_ptr())));
        BlockQ8 { d: rounded[0], s: rounded[1], sum, qs }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantizer_matches_scalar_at_the_edges() {
        let mut x = vec![0.0f32; 32]; // all zero: d = 0, id = 0
        x.extend((0..32).map(|i| (i as f32 - 16.0) * 0.5)); // ties at amax = 8
        x.extend((0..32).map(|i| i as f32 * 4e-6)); // d an f16 subnormal
        x.extend((0..32).map(|i| i as f32 * 1e-9)); // d below every f16: zero
        x.extend((0..32).map(|i| i as f32 * 3e6 - 4e7)); // d beyond every f16: infinity
        x.extend((0..32).map(|i| if i % 2 == 0 { -0.0 } else { 1e-30 }));
        let blocks = x.len() / QK8;
        let mut expect = vec![BlockQ8::default(); blocks];
        super::super::scalar_q8_blocks(&x, &mut expect);
        let mut got = vec![BlockQ8::default(); blocks];
        quantize_q8_blocks(&x, &mut got);
        for (e, g) in expect.iter().zip(&got) {
            assert_eq!(
                (e.d.to_bits(), e.s.to_bits(), e.sum, e.qs),
                (g.d.to_bits(), g.s.to_bits(), g.sum, g.qs)
            );
        }
    }
}
