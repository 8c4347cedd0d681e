//! NEON kernels for IQ4_NL and IQ4_XS (aarch64), on every aarch64 CPU or with the dot-product
//! instructions. Both give the bits of their scalar twins ([`super::scalar`]), in their float
//! order (see the [family docs](super)).
//!
//! Codes become codebook values with `tbl` of the 16-byte codebook, as ggml's
//! `ggml_vec_dot_iq4_nl_q8_0` and `ggml_vec_dot_iq4_xs_q8_K` do on aarch64, and multiply the
//! activation's codes as signed bytes ([`Dot::dot4`]: `sdot`, or `smull` and pairwise adds;
//! a code is at most 127 in magnitude, so a pair of products fits in i16).
//! - IQ4_NL, tiles of 4 rows by up to four inputs: each row's lanes of a block are added
//!   pairwise across the tile into the rows' exact block sums, one register for the 4 rows,
//!   which one FMA per block adds to the rows' sums.
//! - IQ4_XS, a row at a time: per sub-block, the four i32 lanes of its values 0..16 and of
//!   its values 16..32, each lane the products of four adjacent values, multiplied by the
//!   sub-block's scale into the eight lanes of the super-block, whose sum is its exact
//!   integer; one FMA per super-block.
//!
//! # Safety design
//! As in [`crate::kernels::neon`]: the `unsafe fn`s here require the features of their [`Dot`]
//! path and are reached only through the safe wrappers of `path_fn`, which
//! [`super::matmul_fn`] hands out for `dotprod` only after detection. Row pointers and block
//! offsets come from the drivers, which derive them from the slice lengths; every load reads
//! 16 bytes of one block or activation block.

use std::arch::aarch64::*;
use std::arch::asm;

use super::{nl_tiles, NlTile, MAX_ROWS, NL_BYTES};
use crate::kernels::kquants::{rows, RowDot};
use crate::kernels::neon::{path_fn, widen_f16, Dot, PathKernel};
use crate::kernels::{Input, MatmulFn};
use crate::{BlockIQ4XS, BlockQ8, BlockQ8K, GgmlType, IQ4NL_VALUES, QK8};

/// The kernel for IQ4_NL or IQ4_XS rows: with `dotprod`, the `sdot` variant. Callers must have
/// detected `dotprod` before asking for it.
pub(super) fn matmul_fn(ty: GgmlType, dotprod: bool) -> Option<MatmulFn> {
    Some(match ty {
        GgmlType::IQ4_NL => path_fn::<Nl>(dotprod),
        GgmlType::IQ4_XS => path_fn::<Xs>(dotprod),
        _ => return None,
    })
}

/// Rows per IQ4_NL tile.
const ROWS: usize = 4;

/// Bytes per cache line (64 on the Cortex cores), the step of the prefetches.
const CACHE_LINE: usize = 64;

/// The 32 codebook values of the 16 code bytes at `codes`: values 0..16 (low nibbles) and
/// 16..32 (high nibbles).
///
/// # Safety
/// 16 bytes are readable at `codes`.
#[inline(always)]
unsafe fn values(table: int8x16_t, codes: *const u8) -> [int8x16_t; 2] {
    // SAFETY: the caller's contract.
    unsafe {
        let q = vld1q_u8(codes);
        [vqtbl1q_s8(table, vandq_u8(q, vdupq_n_u8(0x0F))), vqtbl1q_s8(table, vshrq_n_u8::<4>(q))]
    }
}

/// IQ4_NL in tiles of 4 rows.
struct Nl;

impl PathKernel for Nl {
    #[inline(always)]
    unsafe fn run<D: Dot>(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
        // SAFETY: the caller's contract.
        unsafe { nl_tiles::<NlOn<D>>(w, row_bytes, input, out) }
    }
}

/// IQ4_NL tiles with path `D`'s products.
struct NlOn<D>(std::marker::PhantomData<D>);

impl<D: Dot> NlTile for NlOn<D> {
    const ROWS: usize = ROWS;
    const INPUTS: usize = 4;

    #[inline(always)]
    unsafe fn tile<const T: usize>(
        rows: &[*const u8; MAX_ROWS],
        xq: [&[BlockQ8]; T],
        next: &[u8],
    ) -> [[f32; MAX_ROWS]; T] {
        let blocks = xq[0].len();
        // Equal lengths, stated so that the indexing below needs no bounds checks.
        let xq = xq.map(|x| &x[..blocks]);
        // SAFETY: the caller's contract: each row pointer has `blocks` whole blocks readable;
        // the activation loads read the 32 bytes of a block's `qs`, the table load its 16.
        unsafe {
            let table = vld1q_s8(IQ4NL_VALUES.as_ptr());
            let mut acc = [vdupq_n_f32(0.0); T];
            // An even share of the next tile's cache lines per block.
            let share = next.len().div_ceil(blocks.max(1));
            let mut prefetched = 0;
            for b in 0..blocks {
                let until = next.len().min(share * (b + 1));
                while prefetched < until {
                    prefetch(next.as_ptr().add(prefetched));
                    prefetched += CACHE_LINE;
                }
                let offset = b * NL_BYTES;
                let mut v = [[vdupq_n_s8(0); 2]; ROWS];
                for (v, row) in v.iter_mut().zip(rows) {
                    *v = values(table, row.add(offset + 2));
                }
                let d = f16_rows(rows, offset);
                for (acc, x) in acc.iter_mut().zip(&xq) {
                    let x = &x[b];
                    let a = [vld1q_s8(x.qs.as_ptr()), vld1q_s8(x.qs.as_ptr().add(QK8 / 2))];
                    let mut s = [vdupq_n_s32(0); ROWS];
                    for (s, v) in s.iter_mut().zip(&v) {
                        *s = vaddq_s32(D::dot4(v[0], a[0]), D::dot4(v[1], a[1]));
                    }
                    // Each row's lanes added up: the rows' exact block sums, in row order.
                    let sumi = vpaddq_s32(vpaddq_s32(s[0], s[1]), vpaddq_s32(s[2], s[3]));
                    // d_w·d_a per row, the product the scalar twin rounds.
                    *acc = vfmaq_f32(*acc, vcvtq_f32_s32(sumi), vmulq_n_f32(d, x.d));
                }
            }
            let mut sums = [[0.0; MAX_ROWS]; T];
            for (sums, acc) in sums.iter_mut().zip(&acc) {
                vst1q_f32(sums.as_mut_ptr(), *acc);
            }
            sums
        }
    }
}

/// The f16 scales at byte `offset` of the 4 rows, widened to f32 in row order.
///
/// # Safety
/// Two bytes are readable at `offset` of each row pointer.
#[inline(always)]
unsafe fn f16_rows(rows: &[*const u8; MAX_ROWS], offset: usize) -> float32x4_t {
    let mut bits = 0u64;
    for (r, row) in rows.iter().take(ROWS).enumerate() {
        // SAFETY: the caller's contract.
        let d = unsafe { row.add(offset).cast::<u16>().read_unaligned() };
        bits |= u64::from(d) << (16 * r);
    }
    // SAFETY: register-only.
    widen_f16(unsafe { vcreate_u16(bits) })
}

/// Asks for the cache line at `p` to be loaded into L2, as the 32-value block tiles do.
#[inline(always)]
fn prefetch(p: *const u8) {
    // SAFETY: a prefetch is a hint; it never faults and changes no architectural state.
    unsafe { asm!("prfm pldl2keep, [{0}]", in(reg) p, options(nostack, preserves_flags, readonly)) }
}

/// IQ4_XS, a row at a time on the K-quants' row driver.
struct Xs;

impl PathKernel for Xs {
    #[inline(always)]
    unsafe fn run<D: Dot>(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
        // SAFETY: the caller's contract.
        unsafe { rows::<XsOn<D>>(w, row_bytes, input, out) }
    }
}

/// IQ4_XS rows with path `D`'s products.
struct XsOn<D>(std::marker::PhantomData<D>);

impl<D: Dot> RowDot for XsOn<D> {
    type Block = BlockIQ4XS;
    const INPUTS: usize = 4;

    #[inline(always)]
    unsafe fn dot<const T: usize>(w: &[BlockIQ4XS], a: [&[BlockQ8K]; T]) -> [f32; T] {
        // Equal lengths, stated so that the indexing below needs no bounds checks.
        let a = a.map(|a| &a[..w.len()]);
        // SAFETY: the caller's contract; every load reads 16 bytes of `qs` at a 16-byte step
        // below its length (128 for the codes, 256 for the activation), or the codebook's 16.
        unsafe {
            let table = vld1q_s8(IQ4NL_VALUES.as_ptr());
            let zero = vdupq_n_s32(0);
            let mut acc = [0.0f32; T];
            for (b, w) in w.iter().enumerate() {
                let ls = w.scales();
                let mut lanes = [[zero; 2]; T];
                for (s, &ls) in ls.iter().enumerate() {
                    let v = values(table, w.qs.as_ptr().add(16 * s));
                    for (lanes, a) in lanes.iter_mut().zip(&a) {
                        let q8 = a[b].qs.as_ptr().add(32 * s);
                        let (lo, hi) =
                            (D::dot4(v[0], vld1q_s8(q8)), D::dot4(v[1], vld1q_s8(q8.add(16))));
                        lanes[0] = vmlaq_n_s32(lanes[0], lo, i32::from(ls));
                        lanes[1] = vmlaq_n_s32(lanes[1], hi, i32::from(ls));
                    }
                }
                let dw = w.d();
                for (acc, (lanes, a)) in acc.iter_mut().zip(lanes.iter().zip(&a)) {
                    // The lanes' sum is the super-block's exact S, in any order.
                    let s = vaddvq_s32(vaddq_s32(lanes[0], lanes[1])) as f32;
                    *acc = s.mul_add(dw * a[b].d, *acc);
                }
            }
            acc
        }
    }
}
