//! The AVX2 twins of the [activation quantizers](super), chosen at run time.
//!
//! - [`quantize_q8_blocks`]: 32 values per [`BlockQ8`], bit-identical to [`super::q8_block`].
//! - [`q8k_block`]: the K-quant activation quantizer ([`crate::quantize_activation_k`]),
//!   bit-identical to the scalar `quantize_row_q8_K_ref` port for every input, NaN and
//!   infinities included.
//!
//! Safety design as in [`crate::kernels::avx2`]: both are handed out by
//! [`super::quantize_q8_fn`] and [`super::quantize_q8k_fn`] only after AVX2 detection; all
//! loads and stores address the floats and the blocks given.

use std::arch::x86_64::*;

use crate::kernels::avx2::hsum_i32;
use crate::{BlockQ8, BlockQ8K, QK8, QK_K};

/// Safe wrapper of [`quantize_blocks`], handed out only after feature detection.
pub(super) fn quantize_q8_blocks(x: &[f32], out: &mut [BlockQ8]) {
    // SAFETY: handed out only after AVX2/FMA/F16C detection (see the module docs).
    unsafe { quantize_blocks(x, out) }
}

/// The AVX2 twin of [`super::q8_block`] over whole blocks, bit-identical to it.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantize_blocks(x: &[f32], out: &mut [BlockQ8]) {
    for (o, x) in out.iter_mut().zip(x.chunks_exact(QK8)) {
        // SAFETY: the features are enabled on this fn; the four loads read the 32 floats of
        // `x` and the store writes the 32 bytes of `o.qs`, all unaligned.
        unsafe {
            let p = x.as_ptr();
            let v = [
                _mm256_loadu_ps(p),
                _mm256_loadu_ps(p.add(8)),
                _mm256_loadu_ps(p.add(16)),
                _mm256_loadu_ps(p.add(24)),
            ];
            let sign = _mm256_set1_ps(-0.0);
            let mut m = _mm256_andnot_ps(sign, v[0]);
            for &vi in &v[1..] {
                m = _mm256_max_ps(m, _mm256_andnot_ps(sign, vi));
            }
            let m4 = _mm_max_ps(_mm256_extractf128_ps::<1>(m), _mm256_castps256_ps128(m));
            let m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
            let amax = _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));

            let d = amax / 127.0;
            let id = _mm256_set1_ps(if amax != 0.0 { 127.0 / amax } else { 0.0 });
            // Round half to even (`_MM_ROUND_NEAREST` in ggml); |v·id| <= 127 so the i32
            // conversion is exact. A loop, not a closure, so the intrinsics stay inlined.
            let mut q = [_mm256_setzero_si256(); 4];
            for (qi, &vi) in q.iter_mut().zip(&v) {
                let r = _mm256_round_ps::<_MM_FROUND_TO_NEAREST_INT>(_mm256_mul_ps(vi, id));
                *qi = _mm256_cvtps_epi32(r);
            }
            let sum = hsum_i32(_mm256_add_epi32(
                _mm256_add_epi32(q[0], q[1]),
                _mm256_add_epi32(q[2], q[3]),
            ));
            // d and d·Σq through f16 (round to nearest even), as ggml's FP32_TO_FP16.
            let ds = _mm_cvtph_ps(_mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm_setr_ps(
                d,
                d * sum as f32,
                0.0,
                0.0,
            )));
            o.d = _mm_cvtss_f32(ds);
            o.s = _mm_cvtss_f32(_mm_movehdup_ps(ds));
            o.sum = sum;

            // i32 → i16 → i8 packs work per 128-bit lane; the permute restores element order.
            let lo = _mm256_packs_epi32(q[0], q[1]);
            let hi = _mm256_packs_epi32(q[2], q[3]);
            let bytes = _mm256_permutevar8x32_epi32(
                _mm256_packs_epi16(lo, hi),
                _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7),
            );
            _mm256_storeu_si256(o.qs.as_mut_ptr().cast(), bytes);
        }
    }
}

/// Safe wrapper of [`block`], handed out only after feature detection.
pub(super) fn q8k_block(x: &[f32; QK_K]) -> BlockQ8K {
    // SAFETY: handed out only after AVX2/FMA/F16C detection.
    unsafe { block(x) }
}

/// One block, as `crate::quantize::q8_k_block` computes it.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn block(x: &[f32; QK_K]) -> BlockQ8K {
    // SAFETY: the features are enabled on this fn; every load reads 8 of the 256 floats of
    // `x` and every store writes 32 of the 256 bytes of `out.qs`.
    unsafe {
        let p = x.as_ptr();
        let sign = _mm256_set1_ps(-0.0);
        // `max_ps(a, b)` returns b when a is NaN: NaN never becomes the maximum, as with
        // ggml's `>` comparison.
        let mut m = _mm256_setzero_ps();
        for i in 0..QK_K / 8 {
            m = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(p.add(8 * i))), m);
        }
        let m4 = _mm_max_ps(_mm256_extractf128_ps::<1>(m), _mm256_castps256_ps128(m));
        let m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        let amax = _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
        if amax == 0.0 {
            return BlockQ8K::default();
        }
        // ggml keeps the first value of that magnitude; its sign sets d's.
        let target = _mm256_set1_ps(amax);
        let mut first = None;
        for i in 0..QK_K / 8 {
            let v = _mm256_andnot_ps(sign, _mm256_loadu_ps(p.add(8 * i)));
            let hits = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(v, target));
            if hits != 0 {
                first = Some(8 * i + hits.trailing_zeros() as usize);
                break;
            }
        }
        let Some(max) = first.map(|i| x[i]) else { return BlockQ8K::default() };
        let iscale = -127.0 / max;
        let mut out = BlockQ8K { d: 1.0 / iscale, ..BlockQ8K::default() };
        let scale = _mm256_set1_ps(iscale);
        // ggml's `nearest_int`, then `min(127)` and the truncating cast to i8 (a shift up
        // and back down), so that even infinite products give the scalar's codes.
        let magic = _mm256_set1_ps(12_582_912.0);
        let mantissa = _mm256_set1_epi32(0x007F_FFFF);
        let bias = _mm256_set1_epi32(0x0040_0000);
        let top = _mm256_set1_epi32(127);
        for run in 0..QK_K / 32 {
            let mut q = [_mm256_setzero_si256(); 4];
            for (j, q) in q.iter_mut().enumerate() {
                let v = _mm256_mul_ps(scale, _mm256_loadu_ps(p.add(32 * run + 8 * j)));
                let bits = _mm256_castps_si256(_mm256_add_ps(v, magic));
                let int = _mm256_sub_epi32(_mm256_and_si256(bits, mantissa), bias);
                let int = _mm256_min_epi32(int, top);
                *q = _mm256_srai_epi32::<24>(_mm256_slli_epi32::<24>(int));
            }
            // Each 16 values' sum fits an i16 (at most 16·128).
            for half in 0..2 {
                let sum = hsum_i32(_mm256_add_epi32(q[2 * half], q[2 * half + 1]));
                out.bsums[2 * run + half] = sum as i16;
            }
            // i32 → i16 → i8 packs work per 128-bit lane; the permute restores element order.
            // The values are already within i8, so the saturating packs change nothing.
            let lo = _mm256_packs_epi32(q[0], q[1]);
            let hi = _mm256_packs_epi32(q[2], q[3]);
            let bytes = _mm256_permutevar8x32_epi32(
                _mm256_packs_epi16(lo, hi),
                _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7),
            );
            _mm256_storeu_si256(out.qs.as_mut_ptr().add(32 * run).cast(), bytes);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_scalar_quantizer_bit_for_bit() {
        if !crate::kernels::runs(crate::kernels::Isa::Avx2, "the AVX2 quantizer is not tested") {
            return;
        }
        let mut inputs: Vec<[f32; QK_K]> = Vec::new();
        let wave = |k: usize| -> [f32; QK_K] {
            std::array::from_fn(|i| ((i * 7919 + k * 104_729) % 1000) as f32 / 37.0 - 13.0)
        };
        inputs.extend((0..8).map(wave));
        // Ties at .5 after scaling, the largest magnitude first negative then positive.
        inputs.push(std::array::from_fn(|i| (i % 255) as f32 - 127.0));
        inputs.push(std::array::from_fn(|i| 127.0 - (i % 255) as f32));
        let mut special = wave(9);
        special[3] = f32::NAN;
        special[200] = -0.0;
        inputs.push(special);
        inputs.push([0.0; QK_K]);
        // Subnormals only: iscale overflows to infinity, and the codes come from infinite and
        // NaN products.
        inputs.push(std::array::from_fn(|i| (i as f32 - 100.0) * 1e-44));
        let mut infinite = wave(10);
        infinite[17] = f32::NEG_INFINITY;
        inputs.push(infinite);
        for x in &inputs {
            let expect = crate::quantize::q8_k_block(x);
            let got = q8k_block(x);
            assert_eq!(expect.d.to_bits(), got.d.to_bits());
            assert_eq!((expect.qs, expect.bsums), (got.qs, got.bsums));
        }
    }
}
