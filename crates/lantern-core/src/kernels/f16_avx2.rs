//! AVX2 + FMA + F16C versions of the [f16 kernels](super::f16), chosen at run time.
//!
//! # Safety design
//! The `unsafe fn`s need AVX2, FMA and F16C. They are reached only through the safe function
//! pointers in [`KERNELS`], which [`super::f16::f16_kernels_for`] hands out only after
//! [`super::avx2_detected`] has confirmed those features. Loads and stores are unaligned and
//! stay within the slices (whole steps only; tails take the scalar formulas).

use std::arch::x86_64::*;

use half::f16;

use super::f16::{row, F16Kernels};

pub(super) static KERNELS: F16Kernels = F16Kernels {
    // SAFETY: handed out only after AVX2/FMA/F16C detection (module docs).
    dot: |a, b| unsafe { dot(a, b) },
    // SAFETY: as above.
    dot_f32: |a, b| unsafe { dot_f32(a, b) },
    // SAFETY: as above.
    mad: |y, x, v| unsafe { mad(y, x, v) },
    // SAFETY: as above.
    mad_f32: |y, x, v| unsafe { mad_f32(y, x, v) },
    // SAFETY: as above.
    scale: |y, v| unsafe { scale(y, v) },
    // SAFETY: as above.
    dot_f32_rows: |a, rows, stride, out| unsafe { dot_f32_rows(a, rows, stride, out) },
    // SAFETY: as above.
    mad_f32_rows: |y, rows, stride, w| unsafe { mad_f32_rows(y, rows, stride, w) },
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

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_f32(a: &[f32], b: &[f16]) -> f32 {
    let n = a.len().min(b.len());
    let whole = n / 32 * 32;
    // SAFETY: `whole <= n`, within both slices.
    let head = unsafe { reduce(steps_f32(a, b, whole)) };
    let tail: f64 =
        a[whole..n].iter().zip(&b[whole..n]).map(|(&x, y)| f64::from(x * y.to_f32())).sum();
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
unsafe fn mad_f32(y: &mut [f32], x: &[f16], v: f32) {
    let n = y.len().min(x.len());
    let whole = n / 8 * 8;
    let vv = _mm256_set1_ps(v);
    for i in (0..whole).step_by(8) {
        // SAFETY: `i + 8 <= whole <= n` for both slices; unaligned loads and stores.
        unsafe {
            let p = y[i..].as_mut_ptr();
            _mm256_storeu_ps(p, _mm256_fmadd_ps(load8(&x[i..]), vv, _mm256_loadu_ps(p)));
        }
    }
    for (y, x) in y[whole..n].iter_mut().zip(&x[whole..n]) {
        *y = fma(x.to_f32(), v, *y);
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

/// `dot_f32`'s four accumulators over the first `whole` values (a multiple of 32): eight
/// products per accumulator and step, fused multiply-adds.
///
/// # Safety
/// AVX2, FMA and F16C are available (the caller has them enabled: this is inlined into it),
/// and `whole` is at most the length of both slices.
#[inline(always)]
unsafe fn steps_f32(a: &[f32], b: &[f16], whole: usize) -> [__m256; 4] {
    // SAFETY: the caller's contract; `i + 8k + 8 <= whole`; unaligned loads.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); 4];
        for i in (0..whole).step_by(32) {
            for (k, acc) in acc.iter_mut().enumerate() {
                let x = _mm256_loadu_ps(a.as_ptr().add(i + 8 * k));
                let y = _mm256_cvtph_ps(_mm_loadu_si128(b.as_ptr().add(i + 8 * k).cast()));
                *acc = _mm256_fmadd_ps(x, y, *acc);
            }
        }
        acc
    }
}

/// `dot_f32` per row, inlined: the same four accumulators, reduction and f64 tail.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_f32_rows(a: &[f32], rows: &[f16], stride: usize, out: &mut [f32]) {
    let n = a.len();
    let whole = n / 32 * 32;
    for (j, o) in out.iter_mut().enumerate() {
        let Some(r) = row(rows, stride, j, n) else {
            *o = 0.0;
            continue;
        };
        // SAFETY: `whole <= n`, within `a` and the row.
        let head = unsafe { reduce(steps_f32(a, r, whole)) };
        *o = if whole == n {
            head
        } else {
            let tail: f64 =
                a[whole..].iter().zip(&r[whole..]).map(|(&x, y)| f64::from(x * y.to_f32())).sum();
            (f64::from(head) + tail) as f32
        };
    }
}

/// The accumulator stays in registers for 32 values at a time while every row passes, so
/// each element sees the same fused multiply-adds, in row order, as one `mad_f32` per row.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn mad_f32_rows(y: &mut [f32], rows: &[f16], stride: usize, w: &[f32]) {
    let n = y.len();
    // Rows that fit whole; `row` would refuse the others.
    let count = w.len().min(if rows.len() < n { 0 } else { (rows.len() - n) / stride.max(1) + 1 });
    let whole = n / 32 * 32;
    for i in (0..whole).step_by(32) {
        // SAFETY: `i + 32 <= whole <= n` in `y`, and in every row `j < count`, which starts at
        // `j * stride` with `j * stride + n <= rows.len()`; unaligned loads and stores.
        unsafe {
            let p = y[i..].as_mut_ptr();
            let mut acc = [_mm256_setzero_ps(); 4];
            for (k, acc) in acc.iter_mut().enumerate() {
                *acc = _mm256_loadu_ps(p.add(8 * k));
            }
            for (j, &v) in w[..count].iter().enumerate() {
                let x = rows.as_ptr().add(j * stride + i);
                let vv = _mm256_set1_ps(v);
                for (k, acc) in acc.iter_mut().enumerate() {
                    let xs = _mm256_cvtph_ps(_mm_loadu_si128(x.add(8 * k).cast()));
                    *acc = _mm256_fmadd_ps(xs, vv, *acc);
                }
            }
            for (k, acc) in acc.iter().enumerate() {
                _mm256_storeu_ps(p.add(8 * k), *acc);
            }
        }
    }
    if whole < n {
        for (j, &v) in w[..count].iter().enumerate() {
            if let Some(r) = row(rows, stride, j, n) {
                // SAFETY: the features are enabled on this function.
                unsafe { mad_f32(&mut y[whole..], &r[whole..], v) };
            }
        }
    }
}
