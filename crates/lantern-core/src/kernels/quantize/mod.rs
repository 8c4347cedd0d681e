//! Activation quantizers: f32 activations to the 8-bit blocks that the quantized kernels
//! read, 32 values per [`BlockQ8`] or 256 per [`BlockQ8K`] (the k-quants), with their SIMD
//! twins.
//!
//! # Math
//! Every path gives the same bits. [`q8_block`] performs ggml's AVX2 `quantize_row_q8_1`, one
//! IEEE operation at a time, and its AVX2 and NEON twins perform the same operations. The
//! 256-value quantizer's scalar form is [`crate::quantize`]'s port of ggml's
//! `quantize_row_q8_K_ref`, which its AVX2 twin reproduces.
//!
//! # Dispatch
//! [`quantize_q8_blocks`] runs on the fastest path; [`quantize_q8_fn`] and
//! [`quantize_q8k_fn`] return a path's quantizer, the scalar one when the path has none or
//! this CPU cannot run it.

use half::f16;

use super::{best_isa, Isa};
use crate::{BlockQ8, BlockQ8K, QK8, QK_K};

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "aarch64")]
mod neon;

/// Quantizes whole blocks (`x.len() == 32 * out.len()`) with the fastest path; every path
/// gives identical bits.
pub(crate) fn quantize_q8_blocks(x: &[f32], out: &mut [BlockQ8]) {
    quantize_q8_fn(best_isa())(x, out);
}

/// The block quantizer of a path (scalar when `isa` is not available).
fn quantize_q8_fn(isa: Isa) -> fn(&[f32], &mut [BlockQ8]) {
    #[cfg(target_arch = "x86_64")]
    if matches!(isa, Isa::Avx2 | Isa::Avx512Vnni) && super::avx2_detected() {
        return avx2::quantize_q8_blocks;
    }
    #[cfg(target_arch = "aarch64")]
    if matches!(isa, Isa::Neon | Isa::NeonDot) {
        return neon::quantize_q8_blocks;
    }
    let _ = isa;
    scalar_q8_blocks
}

/// The 256-value block quantizer of a path (scalar when `isa` has none or is not
/// available); every path gives identical bits.
pub(crate) fn quantize_q8k_fn(isa: Isa) -> fn(&[f32; QK_K]) -> BlockQ8K {
    #[cfg(target_arch = "x86_64")]
    if matches!(isa, Isa::Avx2 | Isa::Avx512Vnni) && super::avx2_detected() {
        return avx2::q8k_block;
    }
    let _ = isa;
    crate::quantize::q8_k_block
}

/// Quantizes one block of 32 activations exactly as ggml's AVX2 `quantize_row_q8_1` does.
///
/// Every step is a single IEEE operation (max, divide, multiply, round-half-to-even), so the
/// scalar and SIMD results are identical bit for bit. NaN inputs give unspecified codes.
#[inline]
pub(crate) fn q8_block(x: &[f32; QK8]) -> BlockQ8 {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let mut qs = [0i8; QK8];
    let mut sum = 0i32;
    for (q, &v) in qs.iter_mut().zip(x) {
        // |v·id| <= 127 up to one rounding, so the conversion never saturates.
        let r = (v * id).round_ties_even() as i32;
        *q = r as i8;
        sum += r;
    }
    BlockQ8 {
        d: f16::from_f32(d).to_f32(),
        // ggml multiplies the unrounded d by the integer sum, then rounds to f16.
        s: f16::from_f32(d * sum as f32).to_f32(),
        sum,
        qs,
    }
}

/// Quantizes whole blocks: `x.len() == 32 * out.len()` (extra values or blocks are ignored).
fn scalar_q8_blocks(x: &[f32], out: &mut [BlockQ8]) {
    for (o, chunk) in out.iter_mut().zip(x.chunks_exact(QK8)) {
        if let Ok(block) = <&[f32; QK8]>::try_from(chunk) {
            *o = q8_block(block);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_block_by_hand() {
        // amax = 127 so id = 1: codes equal the inputs rounded half to even.
        let mut x = [0.0f32; QK8];
        x[0] = 127.0;
        x[1] = 2.5; // tie → 2
        x[2] = -3.5; // tie → -4
        x[3] = 0.5; // tie → 0
        let b = q8_block(&x);
        assert_eq!(&b.qs[..4], &[127, 2, -4, 0]);
        assert_eq!(b.d, 1.0);
        assert_eq!(b.s, 125.0);
    }

    #[test]
    fn quantizers_agree_bit_for_bit() {
        let x: Vec<f32> = (0..QK8 * 8).map(|i| ((i * 7919) % 1000) as f32 / 37.0 - 13.0).collect();
        let mut a = vec![BlockQ8::default(); 8];
        let mut b = vec![BlockQ8::default(); 8];
        quantize_q8_fn(Isa::Scalar)(&x, &mut a);
        for isa in crate::kernels::runnable_isas("its activation quantizer is not compared") {
            quantize_q8_fn(isa)(&x, &mut b);
            assert_eq!(a, b, "{isa}");
        }
    }
}
