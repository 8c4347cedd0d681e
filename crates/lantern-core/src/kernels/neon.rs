//! What the NEON kernel families share (aarch64): [`path_fn`], which runs a [`PathKernel`] on
//! every aarch64 CPU or with the dot-product instructions, each path's integer products
//! ([`Dot`]), and the exact widening of f16 values.
//!
//! # Integer products
//! Both paths multiply signed bytes by signed bytes and form the same exact integers:
//! - [`Sdot`] (the `dotprod` extension, Cortex-A55/A76 and later): one `sdot` sums four byte
//!   products into each i32 lane.
//! - [`Widening`] (any aarch64 CPU): `smull` into i16 products, then pairwise additions.
//!
//! # Safety design
//! The kernels are `unsafe fn`s generic over [`Dot`]; those given [`Sdot`] require `dotprod`.
//! They are reached only through the safe wrappers of [`path_fn`], which
//! [`super::matmul_fn_for`] hands out for `dotprod` only after [`super::Isa::is_available`] has
//! detected it on this CPU (NEON itself is part of every aarch64 CPU).
//!
//! No closures around [`Dot`] methods: a closure is compiled without the enclosing function's
//! target features, so `sdot` would become a call.

use std::arch::aarch64::*;
use std::arch::asm;

use super::{GatherFn, Input, MatmulFn};
use crate::BlockQ8;

/// A family of matrix kernels written once for both paths' integer products.
pub(super) trait PathKernel {
    /// The [`MatmulFn`] contract, with `D`'s products.
    ///
    /// # Safety
    /// The features `D` needs are available.
    unsafe fn run<D: Dot>(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]);
}

/// `K` with [`Sdot`] when `dotprod`, else with [`Widening`]. Callers must have detected
/// `dotprod` before asking for it.
pub(super) fn path_fn<K: PathKernel>(dotprod: bool) -> MatmulFn {
    if dotprod {
        on_dotprod::<K>
    } else {
        on_neon::<K>
    }
}

fn on_neon<K: PathKernel>(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
    // SAFETY: `Widening` needs only NEON, which every aarch64 CPU has.
    unsafe { K::run::<Widening>(w, row_bytes, input, out) }
}

fn on_dotprod<K: PathKernel>(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
    // SAFETY: handed out only after `dotprod` detection (see the module docs).
    unsafe { run_dotprod::<K>(w, row_bytes, input, out) }
}

/// `K` with `sdot`, compiled with the feature so that every `sdot` is inlined.
#[target_feature(enable = "dotprod")]
unsafe fn run_dotprod<K: PathKernel>(
    w: &[u8],
    row_bytes: usize,
    input: Input<'_>,
    out: &mut [f32],
) {
    // SAFETY: `dotprod` is enabled on this function.
    unsafe { K::run::<Sdot>(w, row_bytes, input, out) }
}

/// A family of kernels that multiply listed rows, written once for both paths' products.
pub(super) trait GatherKernel {
    /// The [`GatherFn`] contract, with `D`'s products.
    ///
    /// # Safety
    /// The features `D` needs are available.
    unsafe fn gather<D: Dot>(
        w: &[u8],
        row_bytes: usize,
        rows: &[u32],
        x: &[BlockQ8],
        out: &mut [f32],
    );
}

/// `K`'s gather with [`Sdot`] when `dotprod`, else with [`Widening`]. Callers must have
/// detected `dotprod` before asking for it.
pub(super) fn gather_path_fn<K: GatherKernel>(dotprod: bool) -> GatherFn {
    if dotprod {
        gather_on_dotprod::<K>
    } else {
        gather_on_neon::<K>
    }
}

fn gather_on_neon<K: GatherKernel>(
    w: &[u8],
    row_bytes: usize,
    rows: &[u32],
    x: &[BlockQ8],
    out: &mut [f32],
) {
    // SAFETY: `Widening` needs only NEON, which every aarch64 CPU has.
    unsafe { K::gather::<Widening>(w, row_bytes, rows, x, out) }
}

fn gather_on_dotprod<K: GatherKernel>(
    w: &[u8],
    row_bytes: usize,
    rows: &[u32],
    x: &[BlockQ8],
    out: &mut [f32],
) {
    // SAFETY: handed out only after `dotprod` detection (see the module docs).
    unsafe { gather_dotprod::<K>(w, row_bytes, rows, x, out) }
}

/// `K`'s gather with `sdot`, compiled with the feature so that every `sdot` is inlined.
#[target_feature(enable = "dotprod")]
unsafe fn gather_dotprod<K: GatherKernel>(
    w: &[u8],
    row_bytes: usize,
    rows: &[u32],
    x: &[BlockQ8],
    out: &mut [f32],
) {
    // SAFETY: `dotprod` is enabled on this function.
    unsafe { K::gather::<Sdot>(w, row_bytes, rows, x, out) }
}

/// A path's integer products of signed bytes, into i32 lanes. Both paths give the same
/// integers.
pub(super) trait Dot {
    /// `Σ_k w[4i + k]·a[4i + k]` in each i32 lane `i`; exact when every two adjacent products
    /// sum within i16, as they do for activation codes in −127..=127 and any weight byte.
    ///
    /// # Safety
    /// The features of the path are available.
    unsafe fn dot4(w: int8x16_t, a: int8x16_t) -> int32x4_t;

    /// Four i32 lanes whose total is `Σ_j w[j]·a[j]` over both halves (32 products), spread
    /// over the lanes in the path's own way; exact when any four products sum within i16, as
    /// they do for weight codes of magnitude up to 63.
    ///
    /// # Safety
    /// The features of the path are available.
    unsafe fn dot32(w: [int8x16_t; 2], a: [int8x16_t; 2]) -> int32x4_t;
}

/// The dot-product extension: `sdot` sums four byte products into each i32 lane.
pub(super) struct Sdot;

impl Dot for Sdot {
    #[inline(always)]
    unsafe fn dot4(w: int8x16_t, a: int8x16_t) -> int32x4_t {
        // SAFETY: `dotprod` is available (the caller's contract).
        unsafe { sdot(vdupq_n_s32(0), w, a) }
    }

    #[inline(always)]
    unsafe fn dot32([w0, w1]: [int8x16_t; 2], [a0, a1]: [int8x16_t; 2]) -> int32x4_t {
        // SAFETY: `dotprod` is available (the caller's contract).
        unsafe { sdot(sdot(vdupq_n_s32(0), w0, a0), w1, a1) }
    }
}

/// `acc + Σ_k a[4i + k]·b[4i + k]` in each i32 lane `i`, exact for all bytes.
///
/// The intrinsic is not stable yet, hence the instruction itself.
#[inline]
#[target_feature(enable = "dotprod")]
unsafe fn sdot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: a register-only instruction; the caller's contract guarantees `dotprod`.
    unsafe {
        asm!(
            "sdot {0:v}.4s, {1:v}.16b, {2:v}.16b",
            inout(vreg) acc,
            in(vreg) a,
            in(vreg) b,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    acc
}

/// Plain Advanced SIMD: `smull` into i16 products, then pairwise additions into i32.
pub(super) struct Widening;

impl Dot for Widening {
    #[inline(always)]
    unsafe fn dot4(w: int8x16_t, a: int8x16_t) -> int32x4_t {
        // SAFETY: NEON only.
        unsafe {
            let lo = vmull_s8(vget_low_s8(w), vget_low_s8(a));
            let hi = vmull_high_s8(w, a);
            // Adjacent pairs in i16 (the caller keeps them in range), pairs of pairs in i32.
            vpaddlq_s16(vpaddq_s16(lo, hi))
        }
    }

    #[inline(always)]
    unsafe fn dot32([w0, w1]: [int8x16_t; 2], [a0, a1]: [int8x16_t; 2]) -> int32x4_t {
        // SAFETY: NEON only.
        unsafe {
            // Four products per i16 lane (the caller keeps them in range), then pairs in i32.
            let p = vmull_s8(vget_low_s8(w0), vget_low_s8(a0));
            let p = vmlal_high_s8(p, w0, a0);
            let p = vmlal_s8(p, vget_low_s8(w1), vget_low_s8(a1));
            vpaddlq_s16(vmlal_high_s8(p, w1, a1))
        }
    }
}

/// The four f16 values in `h` widened to f32, exactly (`fcvtl`, part of every aarch64 CPU;
/// the intrinsic needs the unstable `f16` type).
#[inline(always)]
pub(super) fn widen_f16(h: uint16x4_t) -> float32x4_t {
    let out: float32x4_t;
    // SAFETY: a register-only instruction of base Advanced SIMD.
    unsafe {
        asm!(
            "fcvtl {0:v}.4s, {1:v}.4h",
            out(vreg) out,
            in(vreg) h,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::Isa;

    #[target_feature(enable = "dotprod")]
    unsafe fn sdot_products(w: [i8; 32], a: [i8; 32]) -> ([i32; 8], i32) {
        // SAFETY: `dotprod` is enabled here; the loads and stores cover the arrays.
        unsafe { products::<Sdot>(w, a) }
    }

    /// `D::dot4` of both halves and the total of `D::dot32`.
    unsafe fn products<D: Dot>(w: [i8; 32], a: [i8; 32]) -> ([i32; 8], i32) {
        // SAFETY: the caller's contract; the loads and stores cover the arrays.
        unsafe {
            let w = [vld1q_s8(w.as_ptr()), vld1q_s8(w.as_ptr().add(16))];
            let a = [vld1q_s8(a.as_ptr()), vld1q_s8(a.as_ptr().add(16))];
            let mut lanes = [0i32; 8];
            vst1q_s32(lanes.as_mut_ptr(), D::dot4(w[0], a[0]));
            vst1q_s32(lanes.as_mut_ptr().add(4), D::dot4(w[1], a[1]));
            (lanes, vaddvq_s32(D::dot32(w, a)))
        }
    }

    #[test]
    fn paths_form_the_same_exact_integers() {
        // The largest products each method is specified for, and mixed signs.
        let cases: [([i8; 32], [i8; 32]); 4] = [
            ([-128; 32], [127; 32]),
            ([-128; 32], [-127; 32]),
            ([63; 32], [-128; 32]),
            (
                std::array::from_fn(|j| (j as i8 * 37) % 64),
                std::array::from_fn(|j| 127 - 9 * j as i8),
            ),
        ];
        for (w, a) in cases {
            let lanes: [i32; 8] = std::array::from_fn(|k| {
                (4 * k..4 * k + 4).map(|j| i32::from(w[j]) * i32::from(a[j])).sum()
            });
            let total: i32 = lanes.iter().sum();
            // SAFETY: NEON only.
            let (l, t) = unsafe { products::<Widening>(w, a) };
            assert_eq!(l, lanes, "dot4, plain");
            if w[0] != -128 {
                // dot32 is specified for codes of magnitude up to 63.
                assert_eq!(t, total, "dot32, plain");
            }
            if crate::kernels::runs(Isa::NeonDot, "sdot's products are not checked") {
                // SAFETY: `dotprod` is available.
                assert_eq!(unsafe { sdot_products(w, a) }, (lanes, total), "sdot");
            }
        }
    }
}
