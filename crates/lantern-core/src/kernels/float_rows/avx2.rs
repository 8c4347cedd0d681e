//! The AVX2 + F16C matrix kernel for F16 weight rows against f32 inputs, chosen at run time.
//!
//! Each row keeps its scalar twin's arithmetic (`dot_f16` in [`super`]): eight f32
//! lanes, each adding its products `w·x` (a multiply, then an add, never fused) for elements
//! `8j + lane`, then the lanes summed in order and the tail (length mod 8) added last. The
//! widening of f16 is exact, so every path gives the same bits. A tile of four rows keeps
//! four independent sums in flight, where one row alone would wait on each add.
//!
//! # Safety design
//! The `unsafe fn` needs AVX2, FMA and F16C. It is reached only through the safe
//! [`matmul_fn`], which [`crate::kernels::matmul_fn_for`] hands out only after
//! [`crate::kernels::Isa::is_available`] has confirmed those features. Row pointers are derived
//! from the slice lengths; loads stop at the last whole step of 8 values of the shorter of the
//! row and the input, so they stay inside both.

use std::arch::x86_64::*;

use half::f16;

use crate::kernels::{Input, MatmulFn};
use crate::GgmlType;

/// Rows per tile.
const TILE: usize = 4;

/// The kernel for `ty`, if it is F16. Callers must have detected AVX2, FMA and F16C.
pub(super) fn matmul_fn(ty: GgmlType) -> Option<MatmulFn> {
    (ty == GgmlType::F16).then_some(f16_rows as MatmulFn)
}

fn f16_rows(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
    // SAFETY: handed out only after AVX2/FMA/F16C detection (see the module docs).
    unsafe { f16_rows_avx2(w, row_bytes, input, out) }
}

/// The [`MatmulFn`] contract for F16 rows.
///
/// # Safety
/// AVX2, FMA and F16C are available.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_rows_avx2(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
    let n = input.n();
    if row_bytes == 0 || n == 0 {
        return;
    }
    let rows = (w.len() / row_bytes).min(out.len() / n);
    for first in (0..rows).step_by(TILE) {
        let tile = TILE.min(rows - first);
        // A short last tile repeats its first row; those sums are not stored.
        let row_of =
            |k: usize| &w[(first + if k < tile { k } else { 0 }) * row_bytes..][..row_bytes];
        let tile_rows: [&[u8]; TILE] = std::array::from_fn(row_of);
        for t in 0..n {
            let x = input.x(t);
            let len = (row_bytes / 2).min(x.len());
            let whole = len / 8 * 8;
            let mut acc = [_mm256_setzero_ps(); TILE];
            for i in (0..whole).step_by(8) {
                // SAFETY: i + 8 <= whole <= x.len().
                let xv = unsafe { _mm256_loadu_ps(x.as_ptr().add(i)) };
                for (acc, row) in acc.iter_mut().zip(&tile_rows) {
                    // SAFETY: 2·(i + 8) <= 2·len <= row_bytes, the row's length.
                    let wv = unsafe { _mm_loadu_si128(row.as_ptr().add(2 * i).cast()) };
                    *acc = _mm256_add_ps(*acc, _mm256_mul_ps(_mm256_cvtph_ps(wv), xv));
                }
            }
            for (k, (acc, row)) in acc.iter().zip(&tile_rows).enumerate().take(tile) {
                let mut lanes = [0.0f32; 8];
                // SAFETY: `lanes` holds 8 f32; the store is unaligned.
                unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), *acc) };
                let mut tail = 0.0f32;
                for i in whole..len {
                    tail += f16::from_le_bytes([row[2 * i], row[2 * i + 1]]).to_f32() * x[i];
                }
                out[t * rows + first + k] = lanes.iter().sum::<f32>() + tail;
            }
        }
    }
}
