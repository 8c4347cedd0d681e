//! AVX2 + FMA twins of the element-wise kernels in [`super`], eight lanes at a time
//! with the scalar kernel for the tail.
//!
//! # Safety design
//! The `unsafe fn`s require AVX2 and FMA; [`KERNELS`] is handed out by
//! [`super::vector_kernels_for`] only after detection. Loads and stores cover
//! `i..i + 8` with `i + 8 <= len` of the slices they were given.

use std::arch::x86_64::*;

use super::{vector_kernels_for, VectorKernels};
use crate::kernels::Isa;

pub(super) const KERNELS: VectorKernels = VectorKernels {
    // SAFETY: handed out only after AVX2/FMA detection (see the module docs).
    silu_mul: |gate, up| unsafe { silu_mul(gate, up) },
    // SAFETY: as above.
    exp_shifted: |x, max| unsafe { exp_shifted(x, max) },
};

fn scalar() -> &'static VectorKernels {
    vector_kernels_for(Isa::Scalar).expect("the scalar path always exists")
}

#[target_feature(enable = "avx2,fma")]
unsafe fn silu_mul(gate: &mut [f32], up: &[f32]) {
    let n = gate.len().min(up.len());
    let body = n - n % 8;
    for i in (0..body).step_by(8) {
        // SAFETY: i + 8 <= n, within both slices.
        unsafe {
            let g = _mm256_loadu_ps(gate.as_ptr().add(i));
            let u = _mm256_loadu_ps(up.as_ptr().add(i));
            let e = exp(_mm256_sub_ps(_mm256_setzero_ps(), g));
            let silu = _mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0), e));
            _mm256_storeu_ps(gate.as_mut_ptr().add(i), _mm256_mul_ps(silu, u));
        }
    }
    (scalar().silu_mul)(&mut gate[body..n], &up[body..n]);
}

#[target_feature(enable = "avx2,fma")]
unsafe fn exp_shifted(x: &mut [f32], max: f32) -> f64 {
    let body = x.len() - x.len() % 8;
    let mut sum = 0.0f64;
    for i in (0..body).step_by(8) {
        let mut lanes = [0.0f32; 8];
        // SAFETY: i + 8 <= len.
        unsafe {
            let v = exp(_mm256_sub_ps(_mm256_loadu_ps(x.as_ptr().add(i)), _mm256_set1_ps(max)));
            _mm256_storeu_ps(x.as_mut_ptr().add(i), v);
            _mm256_storeu_ps(lanes.as_mut_ptr(), v);
        }
        sum = lanes.iter().fold(sum, |s, &v| s + f64::from(v));
    }
    // The tail continues the same running sum: f64 addition is not associative either.
    for v in &mut x[body..] {
        *v = super::exp(*v - max);
        sum += f64::from(*v);
    }
    sum
}

/// ggml's `ggml_v_expf`, the eight-lane form of [`super::exp`].
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp(x: __m256) -> __m256 {
    // A local fn, not a closure: closures do not inherit the target features.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn c(bits: u32) -> __m256 {
        _mm256_set1_ps(f32::from_bits(bits))
    }
    let r = c(0x4B40_0000);
    let z = _mm256_fmadd_ps(x, c(0x3FB8_AA3B), r);
    let n = _mm256_sub_ps(z, r);
    let b = _mm256_fnmadd_ps(n, c(0x35BF_BE8E), _mm256_fnmadd_ps(n, c(0x3F31_7200), x));
    let e = _mm256_slli_epi32::<23>(_mm256_castps_si256(z));
    let k = _mm256_castsi256_ps(_mm256_add_epi32(e, _mm256_castps_si256(_mm256_set1_ps(1.0))));
    let abs_n = _mm256_andnot_ps(_mm256_set1_ps(-0.0), n);
    let big = _mm256_cmp_ps::<_CMP_GT_OQ>(abs_n, _mm256_set1_ps(126.0));
    let u = _mm256_mul_ps(b, b);
    let j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(
            _mm256_fmadd_ps(c(0x3C07_2010), b, c(0x3D2B_9F17)),
            u,
            _mm256_fmadd_ps(c(0x3E2A_AF33), b, c(0x3EFF_FEDB)),
        ),
        u,
        _mm256_mul_ps(c(0x3F7F_FFF6), b),
    );
    if _mm256_movemask_ps(big) == 0 {
        return _mm256_fmadd_ps(j, k, k);
    }
    // Near overflow or underflow 2^n is split in two factors.
    let g = _mm256_and_si256(
        _mm256_castps_si256(_mm256_cmp_ps::<_CMP_LE_OQ>(n, _mm256_setzero_ps())),
        _mm256_set1_epi32(0x8200_0000u32 as i32),
    );
    let s1 = _mm256_castsi256_ps(_mm256_add_epi32(g, _mm256_set1_epi32(0x7F00_0000)));
    let s2 = _mm256_castsi256_ps(_mm256_sub_epi32(e, g));
    let huge = _mm256_cmp_ps::<_CMP_GT_OQ>(abs_n, _mm256_set1_ps(192.0));
    let split = _mm256_mul_ps(_mm256_fmadd_ps(s2, j, s2), s1);
    let in_range = _mm256_fmadd_ps(j, k, k);
    _mm256_or_ps(
        _mm256_and_ps(huge, _mm256_mul_ps(s1, s1)),
        _mm256_andnot_ps(huge, _mm256_blendv_ps(in_range, split, big)),
    )
}
