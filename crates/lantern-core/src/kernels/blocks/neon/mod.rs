//! NEON kernels (aarch64) for the 32-value block formats, Q3_0, Q4_0, Q4_1, Q5_0 and Q8_0, on
//! every aarch64 CPU or with the dot-product instructions.
//!
//! # Tiles
//! The matrix kernels walk a tile of 4 weight rows and one to four inputs over the blocks.
//! Per block, they widen the 4 rows' f16 scales at once, unpack each row's codes once for all
//! inputs and load each activation block once for all rows. Each row keeps the float
//! arithmetic of its scalar twin ([`super::scalar`]), so the results are the same bits:
//! - Q4_1, Q5_0: 8 f32 lanes per row (two registers), lane `k` taking, with one FMA per
//!   block, the exact integer sum of the products of elements `4k..4k + 4` times `d_w·d_a`;
//!   the result is the lanes' sum in `Lanes::sum`'s order (plus, for Q4_1, the minimums'
//!   FMA chain, one lane per row). Two inputs per tile: their 16 accumulators take half the
//!   32 vector registers.
//! - Q4_0, Q3_0, Q8_0: one f32 lane per row, taking each block's exact integer sum with one
//!   FMA; the 4 rows' sums share one register, so a tile takes four inputs.
//!
//! # Integer products
//! Codes are unpacked as signed bytes (`q − 4`, `q − 8`, `q − 16`, or `q` itself), so both paths
//! multiply signed by signed and form the same exact integers:
//! - [`Sdot`](crate::kernels::neon::Sdot) (the `dotprod` extension, Cortex-A55/A76 and later):
//!   one `sdot` sums four byte products into each i32 lane, which is exactly one of the 8 lanes
//!   above.
//! - [`Widening`](crate::kernels::neon::Widening) (any aarch64 CPU): `smull` into i16
//!   products, then pairwise additions.
//!
//! [`formats`] holds each format's scales and codes, and this file the dispatch and the tile
//! driver.
//!
//! # Safety design
//! As in [`crate::kernels::neon`]: the kernels are reached only through [`path_fn`]'s
//! wrappers, which [`crate::kernels::matmul_fn_for`] hands out for `dotprod` only after
//! detection. The driver derives every row pointer and block offset from the slice lengths, so
//! all loads stay inside the weight rows and activation blocks it was given; loads are
//! unaligned (blocks have alignment 1).

use std::arch::aarch64::*;
use std::arch::asm;

use super::{tiles_and_next, ListedRows};
use crate::kernels::neon::{gather_path_fn, path_fn, widen_f16, Dot, GatherKernel, PathKernel};
use crate::kernels::{GatherFn, Input, MatmulFn};
use crate::{BlockQ8, GgmlType, QK8};

mod formats;

use formats::{Q3_0, Q4_0, Q4_1, Q5_0, Q8_0};

/// The tile kernel for `ty`, if there is one: with `dotprod`, the `sdot` variant. Callers must
/// have detected `dotprod` before asking for it.
pub(super) fn matmul_fn(ty: GgmlType, dotprod: bool) -> Option<MatmulFn> {
    Some(match ty {
        GgmlType::Q3_0 => path_fn::<Tiles<Q3_0>>(dotprod),
        GgmlType::Q4_0 => path_fn::<Tiles<Q4_0>>(dotprod),
        GgmlType::Q4_1 => path_fn::<Tiles<Q4_1>>(dotprod),
        GgmlType::Q5_0 => path_fn::<Tiles<Q5_0>>(dotprod),
        GgmlType::Q8_0 => path_fn::<Tiles<Q8_0>>(dotprod),
        _ => return None,
    })
}

/// The gather kernel for `ty` (one input, listed rows in its tiles), if there is one: with
/// `dotprod`, the `sdot` variant. Callers must have detected `dotprod` before asking for it.
pub(super) fn gather_fn(ty: GgmlType, dotprod: bool) -> Option<GatherFn> {
    Some(match ty {
        GgmlType::Q3_0 => gather_path_fn::<Tiles<Q3_0>>(dotprod),
        GgmlType::Q4_0 => gather_path_fn::<Tiles<Q4_0>>(dotprod),
        GgmlType::Q4_1 => gather_path_fn::<Tiles<Q4_1>>(dotprod),
        GgmlType::Q5_0 => gather_path_fn::<Tiles<Q5_0>>(dotprod),
        GgmlType::Q8_0 => gather_path_fn::<Tiles<Q8_0>>(dotprod),
        _ => return None,
    })
}

/// Rows per tile.
const ROWS: usize = 4;
/// Inputs per tile at most.
const MAX_INPUTS: usize = 4;
/// Bytes per cache line (64 on the Cortex cores), the step of the prefetches.
const CACHE_LINE: usize = 64;

/// The tiles of format `F`.
struct Tiles<F>(std::marker::PhantomData<F>);

impl<F: Format> PathKernel for Tiles<F> {
    #[inline(always)]
    unsafe fn run<D: Dot>(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
        // SAFETY: the caller's contract.
        unsafe { tiles::<F, D>(w, row_bytes, input, out) }
    }
}

impl<F: Format> GatherKernel for Tiles<F> {
    #[inline(always)]
    unsafe fn gather<D: Dot>(
        w: &[u8],
        row_bytes: usize,
        rows: &[u32],
        x: &[BlockQ8],
        out: &mut [f32],
    ) {
        // SAFETY: the caller's contract.
        unsafe { gathered::<F, D>(w, row_bytes, rows, x, out) }
    }
}

/// A 32-value weight format as the tiles see it.
trait Format {
    /// Bytes per block of 32 weights.
    const BLOCK_BYTES: usize;
    /// Inputs a tile takes at once (up to [`MAX_INPUTS`]), as many as keep the accumulators
    /// in registers.
    const INPUTS: usize;
    /// Whether a row keeps one f32 lane (Q4_0, Q3_0, Q8_0) rather than eight.
    const ONE_LANE: bool = false;
    /// Whether blocks hold a minimum `m`, whose `m_w·s_a` chain is added at the end (Q4_1).
    const MIN: bool = false;

    /// The 4 rows' scales (and minimums, with [`Format::MIN`]) of their blocks at byte
    /// `offset`, in row order. Blocks without a minimum start with their f16 scale `d`.
    ///
    /// # Safety
    /// The block's bytes are readable from each row pointer.
    #[inline(always)]
    unsafe fn scales(rows: &[*const u8; ROWS], offset: usize) -> (float32x4_t, float32x4_t) {
        // SAFETY: the caller's contract: d is the block's first two bytes.
        let d = unsafe { f16_rows(rows, offset) };
        (d, d)
    }

    /// The 32 codes of the block at `block` as signed bytes: elements 0..16 and 16..32.
    ///
    /// # Safety
    /// The block's bytes are readable.
    unsafe fn codes(block: *const u8) -> [int8x16_t; 2];

    /// Four i32 lanes whose total is the exact sum of the products of `codes` with the
    /// activation codes `a`, for [`Format::ONE_LANE`]: [`Dot::dot32`], exact for codes of
    /// magnitude up to 63.
    ///
    /// # Safety
    /// The features of the path are available.
    #[inline(always)]
    unsafe fn block_sum<D: Dot>(codes: [int8x16_t; 2], a: [int8x16_t; 2]) -> int32x4_t {
        // SAFETY: the caller's contract.
        unsafe { D::dot32(codes, a) }
    }
}

/// The f16 values at byte `offset` of the 4 rows, widened to f32 in row order.
///
/// # Safety
/// Two bytes are readable at `offset` of each row pointer.
#[inline(always)]
unsafe fn f16_rows(rows: &[*const u8; ROWS], offset: usize) -> float32x4_t {
    let mut bits = 0u64;
    for (r, row) in rows.iter().enumerate() {
        // SAFETY: the caller's contract.
        let d = unsafe { row.add(offset).cast::<u16>().read_unaligned() };
        bits |= u64::from(d) << (16 * r);
    }
    // SAFETY: register-only.
    widen_f16(unsafe { vcreate_u16(bits) })
}

/// The running sums of a tile for one input.
#[derive(Clone, Copy)]
struct Acc {
    /// Row `r`'s lanes 0..4 in `lanes[2r]` and 4..8 in `lanes[2r + 1]`; with
    /// [`Format::ONE_LANE`], `lanes[0]` holds one lane per row.
    lanes: [float32x4_t; 2 * ROWS],
    /// Q4_1's `Σ m_w·s_a`, one lane per row.
    mins: float32x4_t,
}

impl Acc {
    #[inline(always)]
    fn zero() -> Self {
        // SAFETY: register-only.
        let zero = unsafe { vdupq_n_f32(0.0) };
        Self { lanes: [zero; 2 * ROWS], mins: zero }
    }
}

/// `out[t * rows + r] = row_r · input_t` for every whole row of `w` that `out` has room for and
/// the `n` inputs, over the blocks that the row and the input both hold.
///
/// # Safety
/// The features `D` needs are available.
#[inline(always)]
unsafe fn tiles<F: Format, D: Dot>(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
    let n = input.n();
    if row_bytes == 0 || n == 0 {
        return;
    }
    let rows = (w.len() / row_bytes).min(out.len() / n);
    // Every input holds the same number of blocks (see `Input`).
    let xq = input.q8_all();
    let per_input = xq.len() / n;
    let blocks = (row_bytes / F::BLOCK_BYTES).min(per_input);
    let x = |t: usize| &xq[t * per_input..t * per_input + blocks];
    // SAFETY: r <= rows - 1, so the row lies within `w`.
    let row = |r: usize| unsafe { w.as_ptr().add(r.min(rows - 1) * row_bytes) };
    for r0 in (0..rows).step_by(ROWS) {
        // A last partial tile repeats its last row; the extra results are not stored.
        let ptrs: [*const u8; ROWS] = std::array::from_fn(|i| row(r0 + i));
        let next = Upcoming {
            rows: std::array::from_fn(|i| row(r0 + ROWS + i)),
            count: rows.saturating_sub(r0 + ROWS).min(ROWS),
            row_bytes,
        };
        let mut t0 = 0;
        while t0 < n {
            let inputs = F::INPUTS.min(n - t0);
            let next = &if t0 == 0 { next } else { Upcoming { count: 0, ..next } };
            let mut sums = [[0.0; ROWS]; MAX_INPUTS];
            // SAFETY: each row pointer has `blocks * BLOCK_BYTES <= row_bytes` readable bytes,
            // and each input `blocks` blocks; the features are the caller's contract. Arms
            // beyond `F::INPUTS` are never taken and compile to nothing.
            unsafe {
                match inputs {
                    4 if F::INPUTS >= 4 => {
                        sums =
                            tile::<F, D, 4>(&ptrs, [x(t0), x(t0 + 1), x(t0 + 2), x(t0 + 3)], next)
                    }
                    3 if F::INPUTS >= 3 => sums[..3].copy_from_slice(&tile::<F, D, 3>(
                        &ptrs,
                        [x(t0), x(t0 + 1), x(t0 + 2)],
                        next,
                    )),
                    2 if F::INPUTS >= 2 => {
                        sums[..2].copy_from_slice(&tile::<F, D, 2>(&ptrs, [x(t0), x(t0 + 1)], next))
                    }
                    _ => sums[..1].copy_from_slice(&tile::<F, D, 1>(&ptrs, [x(t0)], next)),
                }
            }
            let valid = ROWS.min(rows - r0);
            for (t, sums) in sums.iter().take(inputs).enumerate() {
                let start = (t0 + t) * rows + r0;
                out[start..start + valid].copy_from_slice(&sums[..valid]);
            }
            t0 += inputs;
        }
    }
}

/// `out[i] = row_{listed[i]} · x` for the rows of `w` that `listed` names, in tiles of
/// [`ROWS`] listed rows, over the blocks that the rows and `x` both hold. A listed row past the
/// end of `w` gets no result, and outputs beyond `out` are skipped.
///
/// # Safety
/// The features `D` needs are available.
#[inline(always)]
unsafe fn gathered<F: Format, D: Dot>(
    w: &[u8],
    row_bytes: usize,
    listed: &[u32],
    x: &[BlockQ8],
    out: &mut [f32],
) {
    let blocks = (row_bytes / F::BLOCK_BYTES).min(x.len());
    let rows = ListedRows::new(w, row_bytes);
    if blocks == 0 || rows.rows == 0 {
        return;
    }
    let (x, listed) = (&x[..blocks], &listed[..listed.len().min(out.len())]);
    for ((these, following), out) in tiles_and_next(listed, ROWS).zip(out.chunks_mut(ROWS)) {
        let next = Upcoming { rows: rows.pointers(following), count: following.len(), row_bytes };
        // SAFETY: each row pointer has `blocks * BLOCK_BYTES <= row_bytes` readable bytes, and
        // `x` holds `blocks` blocks.
        let [sums] = unsafe { tile::<F, D, 1>(&rows.pointers(these), [x], &next) };
        for ((o, &r), &sum) in out.iter_mut().zip(these).zip(&sums) {
            if rows.holds(r) {
                *o = sum;
            }
        }
    }
}

/// The rows the next tile reads, which start where no stream the hardware prefetcher follows
/// ends: the tile prefetches a share of their cache lines per block.
#[derive(Clone, Copy)]
struct Upcoming {
    rows: [*const u8; ROWS],
    /// Rows of `rows` to prefetch.
    count: usize,
    row_bytes: usize,
}

/// One tile: `ROWS` rows times `T` inputs, over as many blocks as each input holds,
/// prefetching `next` on the way. Returns row `i`'s result for input `t` at `[t][i]`.
///
/// # Safety
/// Each row pointer has `xq[t].len()` whole blocks readable, every `xq[t]` has the same
/// length, and the features `D` needs are available.
#[inline(always)]
unsafe fn tile<F: Format, D: Dot, const T: usize>(
    rows: &[*const u8; ROWS],
    xq: [&[BlockQ8]; T],
    next: &Upcoming,
) -> [[f32; ROWS]; T] {
    let blocks = xq[0].len();
    // Equal lengths, stated so that the indexing below needs no bounds checks.
    let xq = xq.map(|x| &x[..blocks]);
    // SAFETY: the caller's contract; the activation loads read the 32 bytes of a block's `qs`.
    unsafe {
        let mut acc = [Acc::zero(); T];
        // An even share of the next tile's cache lines per block, walked row by row.
        let lines = next.count * next.row_bytes.div_ceil(CACHE_LINE);
        let share = lines.div_ceil(blocks.max(1));
        let (mut prefetched, mut row, mut offset) = (0, 0, 0);
        for b in 0..blocks {
            let until = lines.min(share * (b + 1));
            while prefetched < until {
                prefetch(next.rows[row].wrapping_add(offset));
                prefetched += 1;
                offset += CACHE_LINE;
                if offset >= next.row_bytes {
                    (row, offset) = (row + 1, 0);
                }
            }
            let offset = b * F::BLOCK_BYTES;
            let (d, m) = F::scales(rows, offset);
            let mut dd = [vdupq_n_f32(0.0); T];
            let mut a = [[vdupq_n_s8(0); 2]; T];
            for t in 0..T {
                let x = &xq[t][b];
                // d_w·d_a per row, the product the scalar twin rounds.
                dd[t] = vmulq_n_f32(d, x.d);
                a[t] = [vld1q_s8(x.qs.as_ptr()), vld1q_s8(x.qs.as_ptr().add(QK8 / 2))];
                if F::MIN {
                    // `mins = m.mul_add(s, mins)`, one lane per row.
                    acc[t].mins = vfmaq_n_f32(acc[t].mins, m, x.s);
                }
            }
            if F::ONE_LANE {
                let mut codes = [[vdupq_n_s8(0); 2]; ROWS];
                for (codes, row) in codes.iter_mut().zip(rows) {
                    *codes = F::codes(row.add(offset));
                }
                for t in 0..T {
                    let s = [
                        F::block_sum::<D>(codes[0], a[t]),
                        F::block_sum::<D>(codes[1], a[t]),
                        F::block_sum::<D>(codes[2], a[t]),
                        F::block_sum::<D>(codes[3], a[t]),
                    ];
                    // Each row's lanes added up: the rows' exact block sums, in row order.
                    let sumi = vpaddq_s32(vpaddq_s32(s[0], s[1]), vpaddq_s32(s[2], s[3]));
                    acc[t].lanes[0] = vfmaq_f32(acc[t].lanes[0], dd[t], vcvtq_f32_s32(sumi));
                }
            } else {
                // Row by row, each row's codes serving every input.
                for (r, row) in rows.iter().enumerate() {
                    let [lo, hi] = F::codes(row.add(offset));
                    for t in 0..T {
                        let lo = vcvtq_f32_s32(D::dot4(lo, a[t][0]));
                        let hi = vcvtq_f32_s32(D::dot4(hi, a[t][1]));
                        acc[t].lanes[2 * r] = fma_lane(acc[t].lanes[2 * r], lo, dd[t], r);
                        acc[t].lanes[2 * r + 1] = fma_lane(acc[t].lanes[2 * r + 1], hi, dd[t], r);
                    }
                }
            }
        }
        let mut sums = [[0.0; ROWS]; T];
        for (sums, acc) in sums.iter_mut().zip(&acc) {
            if F::ONE_LANE {
                vst1q_f32(sums.as_mut_ptr(), acc.lanes[0]);
                continue;
            }
            let mut mins = [0.0f32; ROWS];
            vst1q_f32(mins.as_mut_ptr(), acc.mins);
            for (r, sum) in sums.iter_mut().enumerate() {
                *sum = lanes_sum(acc.lanes[2 * r], acc.lanes[2 * r + 1]);
                if F::MIN {
                    *sum += mins[r];
                }
            }
        }
        sums
    }
}

/// `acc + x·v[lane]` in each lane, with one rounding (an FMA).
#[inline(always)]
unsafe fn fma_lane(acc: float32x4_t, x: float32x4_t, v: float32x4_t, lane: usize) -> float32x4_t {
    // SAFETY: register-only.
    unsafe {
        match lane {
            0 => vfmaq_laneq_f32::<0>(acc, x, v),
            1 => vfmaq_laneq_f32::<1>(acc, x, v),
            2 => vfmaq_laneq_f32::<2>(acc, x, v),
            _ => vfmaq_laneq_f32::<3>(acc, x, v),
        }
    }
}

/// The sum of eight lanes `a[0..4]` (`lo`) and `a[4..8]` (`hi`) in `Lanes::sum`'s order:
/// `((a4 + a0) + (a6 + a2)) + ((a5 + a1) + (a7 + a3))`.
#[inline(always)]
fn lanes_sum(lo: float32x4_t, hi: float32x4_t) -> f32 {
    // SAFETY: register-only.
    unsafe {
        let r = vaddq_f32(hi, lo);
        vpadds_f32(vadd_f32(vget_low_f32(r), vget_high_f32(r)))
    }
}

/// Asks for the cache line at `p` to be loaded into L2: a whole tile ahead would not fit in
/// L1 beside the current one for long rows, and from L2 the core's own prefetcher follows
/// each row once the tile reads it.
#[inline(always)]
fn prefetch(p: *const u8) {
    // SAFETY: a prefetch is a hint; it never faults and changes no architectural state.
    unsafe { asm!("prfm pldl2keep, [{0}]", in(reg) p, options(nostack, preserves_flags, readonly)) }
}
