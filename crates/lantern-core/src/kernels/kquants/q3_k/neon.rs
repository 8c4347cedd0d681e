//! NEON twin of the Q3_K kernel (aarch64), on every aarch64 CPU or with the dot-product
//! instructions, giving the bits of the scalar twin (see the [parent module](super)).
//!
//! Per 16 values (one sub-block), the codes q − 4 are multiplied by the negated sub-block
//! scale: −sc·(q − 4) lies in −128..=124, so it fits a signed byte, where sc·(q − 4) would
//! reach 128. [`Dot::dot4`] then sums four adjacent products of those bytes and the
//! activation codes into each i32 lane. Per super-block the lanes sum to −S, the exact
//! integer of the scalar twin negated, and the row's sum takes one FMA of S by d_w·d_a.
//!
//! A row takes up to four inputs per pass, each super-block unpacked once for all of them.
//!
//! # Safety design
//! As in [`crate::kernels::neon`]: the `unsafe fn`s need the features of their [`Dot`] path
//! (`dotprod` for `Sdot`), and are reached only through [`path_fn`]'s wrappers, which
//! [`super::matmul_fn`] hands out for `dotprod` only after `Isa::is_available` has detected it.
//! All loads are unaligned and stay within one block struct.

use std::arch::aarch64::*;

use crate::kernels::kquants::{rows, RowDot};
use crate::kernels::neon::{path_fn, widen_f16, Dot, PathKernel};
use crate::kernels::{Input, MatmulFn};
use crate::{BlockQ3K, BlockQ8K};

/// The matrix kernel for Q3_K rows: with `dotprod`, the `sdot` variant. Callers must have
/// detected `dotprod` before asking for it.
pub(super) fn matmul_fn(dotprod: bool) -> MatmulFn {
    path_fn::<Rows>(dotprod)
}

/// Q3_K rows on either path.
struct Rows;

impl PathKernel for Rows {
    #[inline(always)]
    unsafe fn run<D: Dot>(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
        // SAFETY: the caller's contract.
        unsafe { rows::<Q3K<D>>(w, row_bytes, input, out) }
    }
}

/// Q3_K with path `D`'s products, as the shared row driver takes them.
struct Q3K<D>(std::marker::PhantomData<D>);

impl<D: Dot> RowDot for Q3K<D> {
    type Block = BlockQ3K;
    const INPUTS: usize = 4;

    #[inline(always)]
    unsafe fn dot<const T: usize>(w: &[BlockQ3K], a: [&[BlockQ8K]; T]) -> [f32; T] {
        // Equal lengths, stated so that the indexing below needs no bounds checks.
        let a = a.map(|a| &a[..w.len()]);
        // SAFETY: the caller's contract; every load reads 16 bytes of one array field of one
        // block: `qs` at 0, 16, 32 and 48, `hmask` at 0 and 16, activation `qs` below 256.
        unsafe {
            let (three, four) = (vdupq_n_u8(3), vdupq_n_u8(4));
            let mut acc = [0.0f32; T];
            for (b, w) in w.iter().enumerate() {
                let dw =
                    vgetq_lane_f32::<0>(widen_f16(vcreate_u16(u64::from(u16::from_le_bytes(w.d)))));
                let [w0, w1, w2, w3] = super::scale_words(&w.scales);
                let scales = vcombine_u32(
                    vcreate_u32(u64::from(w0) | u64::from(w1) << 32),
                    vcreate_u32(u64::from(w2) | u64::from(w3) << 32),
                );
                // −(s − 32) = 32 − s, in −31..=32.
                let mut neg_scales = [0i8; 16];
                vst1q_s8(
                    neg_scales.as_mut_ptr(),
                    vsubq_s8(vdupq_n_s8(32), vreinterpretq_s8_u32(scales)),
                );
                let mut lanes = [[vdupq_n_s32(0); 2]; T];
                // Half j of 128 values, run k of 32 in it, and its two sub-blocks of 16 (c):
                // value 128j + 32k + 16c + l has its low bits at 2k of qs[32j + 16c + l] and its
                // third bit at 4j + k of hmask[16c + l].
                for j in 0..2 {
                    for c in 0..2 {
                        let q = vld1q_u8(w.qs.as_ptr().add(32 * j + 16 * c));
                        let h = vld1q_u8(w.hmask.as_ptr().add(16 * c));
                        for k in 0..4 {
                            let low = vandq_u8(vshlq_u8(q, vdupq_n_s8(-2 * k as i8)), three);
                            let third = vtstq_u8(h, vdupq_n_u8(1 << (4 * j + k)));
                            let codes = vsubq_s8(
                                vreinterpretq_s8_u8(vorrq_u8(low, vandq_u8(third, four))),
                                vreinterpretq_s8_u8(four),
                            );
                            let s = 8 * j + 2 * k + c;
                            let scaled = vmulq_s8(codes, vdupq_n_s8(neg_scales[s]));
                            let first = 128 * j + 32 * k + 16 * c;
                            for (lanes, a) in lanes.iter_mut().zip(&a) {
                                let x = vld1q_s8(a[b].qs.as_ptr().add(first));
                                lanes[c] = vaddq_s32(lanes[c], D::dot4(scaled, x));
                            }
                        }
                    }
                }
                for t in 0..T {
                    // The lanes summed −sc·(q − 4): S negated.
                    let s = -vaddvq_s32(vaddq_s32(lanes[t][0], lanes[t][1]));
                    acc[t] = (s as f32).mul_add(a[t][b].d * dw, acc[t]);
                }
            }
            acc
        }
    }
}
