//! NEON twin of the Q2_K kernel (aarch64), on every aarch64 CPU or with the dot-product
//! instructions, giving the bits of the scalar twin (see the [parent module](super)).
//!
//! Per super-block, the minimums first: the sixteen products `m_s·bsums_s` (`smull`) added in
//! adjacent pairs, ggml's eight lanes, each added to its f32 lane with one FMA by
//! −d_a·dmin_w. Then the codes: per 16 values (one sub-block) the codes times the sub-block
//! scale (at most 45, a byte), and [`Dot::dot4`] sums four adjacent products of those bytes and
//! the activation codes into each i32 lane, the four lanes of ggml's x86 kernel for these 16
//! values; each f32 lane takes one FMA by d_a·d_w. The final sum is the scalar twin's
//! ([`hsum`]).
//!
//! A row takes up to four inputs per pass, each super-block unpacked once for all of them.
//!
//! # Safety design
//! As in [`crate::kernels::neon`]: the `unsafe fn`s need the features of their [`Dot`] path
//! (`dotprod` for `Sdot`), and are reached only through [`path_fn`]'s wrappers, which
//! [`super::matmul_fn`] hands out for `dotprod` only after `Isa::is_available` has detected it.
//! All loads are unaligned and stay within one block struct.

use std::arch::aarch64::*;

use crate::kernels::kquants::lanes::hsum;
use crate::kernels::kquants::{rows, RowDot};
use crate::kernels::neon::{path_fn, widen_f16, Dot, PathKernel};
use crate::kernels::{Input, MatmulFn};
use crate::{BlockQ2K, BlockQ8K};

/// The matrix kernel for Q2_K rows: with `dotprod`, the `sdot` variant. Callers must have
/// detected `dotprod` before asking for it.
pub(super) fn matmul_fn(dotprod: bool) -> MatmulFn {
    path_fn::<Rows>(dotprod)
}

/// Q2_K rows on either path.
struct Rows;

impl PathKernel for Rows {
    #[inline(always)]
    unsafe fn run<D: Dot>(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
        // SAFETY: the caller's contract.
        unsafe { rows::<Q2K<D>>(w, row_bytes, input, out) }
    }
}

/// Q2_K with path `D`'s products, as the shared row driver takes them.
struct Q2K<D>(std::marker::PhantomData<D>);

impl<D: Dot> RowDot for Q2K<D> {
    type Block = BlockQ2K;
    const INPUTS: usize = 4;

    #[inline(always)]
    unsafe fn dot<const T: usize>(w: &[BlockQ2K], a: [&[BlockQ8K]; T]) -> [f32; T] {
        // Equal lengths, stated so that the indexing below needs no bounds checks.
        let a = a.map(|a| &a[..w.len()]);
        // SAFETY: the caller's contract; every load reads 16 bytes of one array field of one
        // block: `scales` at 0, `qs` at 0, 16, 32 and 48, activation `qs` below 256, `bsums`
        // at 0 and 8 of its 16 values.
        unsafe {
            let (three, low4) = (vdupq_n_u8(3), vdupq_n_u8(0x0F));
            let mut acc = [[vdupq_n_f32(0.0); 2]; T];
            for (b, w) in w.iter().enumerate() {
                let d = u32::from_le_bytes([w.d[0], w.d[1], w.dmin[0], w.dmin[1]]);
                let d = widen_f16(vcreate_u16(u64::from(d)));
                let (dw, dminw) = (vgetq_lane_f32::<0>(d), vgetq_lane_f32::<1>(d));
                let scales_and_mins = vld1q_u8(w.scales.as_ptr());
                let mins =
                    vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(vshrq_n_u8::<4>(scales_and_mins))));
                let mins_high =
                    vreinterpretq_s16_u16(vmovl_high_u8(vshrq_n_u8::<4>(scales_and_mins)));
                let mut scales = [0u8; 16];
                vst1q_u8(scales.as_mut_ptr(), vandq_u8(scales_and_mins, low4));
                let mut lanes = [[vdupq_n_s32(0); 2]; T];
                // Half j of 128 values, run k of 32 in it, and its two sub-blocks of 16 (c):
                // value 128j + 32k + 16c + l has its code at bit 2k of qs[32j + 16c + l].
                for j in 0..2 {
                    for c in 0..2 {
                        let q = vld1q_u8(w.qs.as_ptr().add(32 * j + 16 * c));
                        for k in 0..4 {
                            let codes = vandq_u8(vshlq_u8(q, vdupq_n_s8(-2 * k as i8)), three);
                            let s = 8 * j + 2 * k + c;
                            let scaled =
                                vreinterpretq_s8_u8(vmulq_u8(codes, vdupq_n_u8(scales[s])));
                            let first = 128 * j + 32 * k + 16 * c;
                            for (lanes, a) in lanes.iter_mut().zip(&a) {
                                let x = vld1q_s8(a[b].qs.as_ptr().add(first));
                                lanes[c] = vaddq_s32(lanes[c], D::dot4(scaled, x));
                            }
                        }
                    }
                }
                for t in 0..T {
                    let a = &a[t][b];
                    // The minimums first, then the codes, as ggml adds them. A minimum times a
                    // 16-value sum is at most 15·16·127, and a pair of them fits i32.
                    let bsums = [vld1q_s16(a.bsums.as_ptr()), vld1q_s16(a.bsums.as_ptr().add(8))];
                    let summs = [
                        vpaddq_s32(
                            vmull_s16(vget_low_s16(mins), vget_low_s16(bsums[0])),
                            vmull_high_s16(mins, bsums[0]),
                        ),
                        vpaddq_s32(
                            vmull_s16(vget_low_s16(mins_high), vget_low_s16(bsums[1])),
                            vmull_high_s16(mins_high, bsums[1]),
                        ),
                    ];
                    let (dmin, d) = (-a.d * dminw, a.d * dw);
                    for ((acc, &summs), &lane) in acc[t].iter_mut().zip(&summs).zip(&lanes[t]) {
                        *acc = vfmaq_n_f32(*acc, vcvtq_f32_s32(summs), dmin);
                        *acc = vfmaq_n_f32(*acc, vcvtq_f32_s32(lane), d);
                    }
                }
            }
            let mut out = [0.0; T];
            for (out, acc) in out.iter_mut().zip(&acc) {
                let mut lanes = [0.0f32; 8];
                vst1q_f32(lanes.as_mut_ptr(), acc[0]);
                vst1q_f32(lanes.as_mut_ptr().add(4), acc[1]);
                *out = hsum(&lanes);
            }
            out
        }
    }
}
