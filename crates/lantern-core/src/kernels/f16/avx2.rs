//! AVX2 + FMA + F16C versions of the [f16 kernels](super), chosen at run time.
//!
//! # Safety design
//! The `unsafe fn`s need AVX2, FMA and F16C. They are reached only through the safe function
//! pointers in [`KERNELS`], which [`super::f16_kernels_for`] hands out only after
//! [`crate::kernels::avx2_detected`] has confirmed those features. Loads and stores are
//! unaligned and stay within the slices (whole steps only; tails take the scalar formulas).

use std::arch::x86_64::*;

use half::f16;

use super::F16Kernels;

pub(super) static KERNELS: F16Kernels = F16Kernels {
    // SAFETY: handed out only after AVX2/FMA/F16C detection (module docs).
    dot: |a, b| unsafe { dot(a, b) },
    // SAFETY: as above.
    mad: |y, x, v| unsafe { mad(y, x, v) },
    // SAFETY: as above.
    scale: |y, v| unsafe { scale(y, v) },
};

/// Eight f16 from `p` widened to f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load8(p: &[f16]) -> __m256 {
    debug_assert!(p.len() >= 8);
    // SAFETY: `p` holds at least 8 f16 (16 bytes); the load is unaligned.
    unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.as_ptr().cast())) }
}

/// Eight f32 rounded to f16 (to nearest, ties to even) into `p`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn store8(p: &mut [f16], v: __m256) {
    debug_assert!(p.len() >= 8);
    // SAFETY: `p` holds at least 8 f16; the store is unaligned.
    unsafe {
        _mm_storeu_si128(p.as_mut_ptr().cast(), _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v))
    }
}

/// The horizontal reduction of four accumulators, in ggml's order.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn reduce(acc: [__m256; 4]) -> f32 {
    let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[2]), _mm256_add_ps(acc[1], acc[3]));
    let half = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps::<1>(sum));
    let pairs = _mm_hadd_ps(half, half);
    _mm_cvtss_f32(_mm_hadd_ps(pairs, pairs))
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot(a: &[f16], b: &[f16]) -> f32 {
    let n = a.len().min(b.len());
    let whole = n / 32 * 32;
    let mut acc = [_mm256_setzero_ps(); 4];
    for i in (0..whole).step_by(32) {
        for (j, acc) in acc.iter_mut().enumerate() {
            let at = i + 8 * j;
            // SAFETY: `at + 8 <= whole <= n`.
            *acc = unsafe { _mm256_fmadd_ps(load8(&a[at..]), load8(&b[at..]), *acc) };
        }
    }
    // SAFETY: the features are enabled on this function.
    let head = unsafe { reduce(acc) };
    let tail: f64 =
        a[whole..n].iter().zip(&b[whole..n]).map(|(x, y)| f64::from(x.to_f32() * y.to_f32())).sum();
    (f64::from(head) + tail) as f32
}

/// The scalar formula of an FMA, for tails.
fn fma(a: f32, b: f32, c: f32) -> f32 {
    (f64::from(a) * f64::from(b) + f64::from(c)) as f32
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn mad(y: &mut [f16], x: &[f16], v: f32) {
    let n = y.len().min(x.len());
    let whole = n / 8 * 8;
    let vv = _mm256_set1_ps(v);
    for i in (0..whole).step_by(8) {
        // SAFETY: `i + 8 <= whole <= n` for both slices.
        unsafe {
            let sum = _mm256_fmadd_ps(load8(&x[i..]), vv, load8(&y[i..]));
            store8(&mut y[i..], sum);
        }
    }
    for (y, x) in y[whole..n].iter_mut().zip(&x[whole..n]) {
        *y = f16::from_f32(fma(x.to_f32(), v, y.to_f32()));
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scale(y: &mut [f16], v: f32) {
    let whole = y.len() / 8 * 8;
    let vv = _mm256_set1_ps(v);
    for i in (0..whole).step_by(8) {
        // SAFETY: `i + 8 <= whole <= y.len()`.
        unsafe {
            let product = _mm256_mul_ps(load8(&y[i..]), vv);
            store8(&mut y[i..], product);
        }
    }
    for y in &mut y[whole..] {
        *y = f16::from_f32(y.to_f32() * v);
    }
}
