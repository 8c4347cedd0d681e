//! The AVX2 + FMA + F16C kernels (x86-64) for the 32-value block formats, and their AVX-512
//! VNNI variant, chosen at run time.
//!
//! # Tiles
//! The quantized kernels walk a tile of weight rows (8, or 4 for Q8_0) and one to four inputs
//! over the blocks. Per block, they unpack the rows' codes and widen their f16 scales once for
//! all inputs, and load each activation block once for all rows. Each row keeps the float
//! order of its scalar twin ([`super::scalar`]), so the results are the same bits:
//! - Q4_1, Q5_0: 8 f32 lanes per row, lane `k` taking, with one FMA per block, the exact
//!   integer sum of the products of elements `4k..4k + 4`; the result is the lanes'
//!   horizontal sum (plus, for Q4_1, the minimums' FMA chain), as `ggml_vec_dot_q4_1_q8_1`,
//!   `ggml_vec_dot_q5_0_q8_0` and `hsum_float_8` compute it, so results match llama.cpp's
//!   AVX2 build bit for bit:
//!   <https://github.com/ggml-org/llama.cpp/blob/47b0c4b5488fd83ee273515e80a3c41fe9c11314/ggml/src/ggml-cpu/arch/x86/quants.c>
//! - Q4_0: one lane per row, taking each block's exact integer sum with one FMA, as the
//!   repacked `ggml_gemv_q4_0_8x8_q8_0` that llama.cpp uses for Q4_0 on AVX2 CPUs.
//! - Q3_0 (lantern's own, which llama.cpp lacks): as Q4_0, one lane per row.
//! - Q8_0: as Q4_0, one lane per row, as its interleaved rows round
//!   ([`crate::kernels::interleaved`]), so that a row gives the same bits from the file or
//!   interleaved; ggml's `ggml_vec_dot_q8_0_q8_0` keeps eight lanes, from which this differs
//!   by float rounding only.
//!
//! The 4-bit formats (and Q5_0 and Q3_0, whose codes are unpacked the same way) hold two rows
//! per register, row `p` in the low 128 bits and row `p + 4` in the high: one `maddubs` then
//! serves two rows, and their accumulators stay in that interleaved layout until the final
//! sums.
//!
//! [`formats`] holds each format's loads and accumulation, [`nibbles`] the unpacking of the
//! 4-bit codes (and of Q5_0's and Q3_0's), and this file the dispatch and the tile driver.
//!
//! # Safety design
//! As in [`crate::kernels::avx2`]: the kernels are reached only through [`path_fn`]'s
//! wrappers, which [`crate::kernels::matmul_fn_for`] hands out only after feature detection.
//! The driver derives every row pointer and block offset from the slice lengths, so all loads
//! stay inside the weight rows and activation blocks it was given. No closures around
//! intrinsics, which would lose the target features.

use std::arch::x86_64::*;

use super::{tiles_and_next, ListedRows};
use crate::kernels::avx2::{gather_path_fn, path_fn, Dot, GatherKernel, PathKernel};
use crate::kernels::{GatherFn, Input, MatmulFn};
use crate::{BlockQ8, GgmlType};

mod formats;
mod nibbles;

use formats::{Q5_0Signed, Q3_0, Q4_0, Q4_1, Q5_0, Q8_0};

/// The tile kernel for `ty`, if there is one: with `vnni`, the AVX-512 VNNI variant. Callers
/// must have detected the features of the path (see the module docs).
pub(super) fn matmul_fn(ty: GgmlType, vnni: bool) -> Option<MatmulFn> {
    Some(match ty {
        GgmlType::Q3_0 => path_fn::<Tiles<Q3_0>>(vnni),
        GgmlType::Q4_0 => path_fn::<Tiles<Q4_0>>(vnni),
        GgmlType::Q4_1 => path_fn::<Tiles<Q4_1>>(vnni),
        GgmlType::Q5_0 => path_fn::<Q5_0Tiles>(vnni),
        GgmlType::Q8_0 => path_fn::<Tiles<Q8_0>>(vnni),
        _ => return None,
    })
}

/// The gather kernel for `ty` (listed rows times one input, in its one-input tiles), if there
/// is one: with `vnni`, the AVX-512 VNNI variant. Callers must have detected the features of
/// the path (see the module docs).
pub(super) fn gather_fn(ty: GgmlType, vnni: bool) -> Option<GatherFn> {
    Some(match ty {
        GgmlType::Q3_0 => gather_path_fn::<Tiles<Q3_0>>(vnni),
        GgmlType::Q4_0 => gather_path_fn::<Tiles<Q4_0>>(vnni),
        GgmlType::Q4_1 => gather_path_fn::<Tiles<Q4_1>>(vnni),
        GgmlType::Q5_0 => gather_path_fn::<Tiles<Q5_0>>(vnni),
        GgmlType::Q8_0 => gather_path_fn::<Tiles<Q8_0>>(vnni),
        _ => return None,
    })
}

/// The tiles of format `F`.
struct Tiles<F>(std::marker::PhantomData<F>);

impl<F: Format> PathKernel for Tiles<F> {
    #[inline(always)]
    unsafe fn run<D: Dot>(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
        // SAFETY: the caller's contract.
        unsafe { tiles::<F, D>(w, row_bytes, input.q8_all(), input.n(), out) }
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

/// Q5_0: one input in the 8-row [`Q5_0`] tiles; a batch on VNNI in the
/// [`Signed`](formats::Signed) tiles, which share each row's codes among four inputs. Each was
/// the faster there (criterion); both give the same bits.
struct Q5_0Tiles;

impl PathKernel for Q5_0Tiles {
    #[inline(always)]
    unsafe fn run<D: Dot>(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
        // SAFETY: the caller's contract.
        unsafe {
            if D::WIDE && input.n() > 1 {
                Tiles::<Q5_0Signed>::run::<D>(w, row_bytes, input, out)
            } else {
                Tiles::<Q5_0>::run::<D>(w, row_bytes, input, out)
            }
        }
    }
}

/// Rows per tile at most.
const ROWS: usize = 8;
/// Inputs per tile at most.
const MAX_INPUTS: usize = 4;

/// The running sums of a tile: 8 lanes per row, and one lane per row for a second term.
#[derive(Clone, Copy)]
struct Acc {
    /// Per row, or per pair of rows in the 4-bit layout (see the module docs).
    lanes: [__m256; ROWS],
    /// Q4_1's Σ m_w·s_a, one lane per row.
    mins: __m256,
}

/// A weight format as the tile driver sees it.
trait Format {
    /// Bytes per block of 32 weights.
    const BLOCK_BYTES: usize;
    /// Rows a tile takes (up to [`ROWS`]); the row pointers and sums beyond are unused.
    const ROWS: usize;
    /// Inputs a tile takes at once with 32 vector registers (AVX-512), up to [`MAX_INPUTS`].
    const WIDE_INPUTS: usize;
    /// Inputs a tile takes at once (up to [`MAX_INPUTS`]): more share the unpacking of each
    /// block, as long as their accumulators fit in registers.
    const INPUTS: usize;
    /// One block of 8 rows, unpacked for the integer products.
    type Block: Copy;

    /// Unpacks the block at byte `offset` of each of the 8 rows.
    ///
    /// # Safety
    /// AVX2, FMA and F16C are available, and `offset + BLOCK_BYTES` bytes are readable from
    /// each row pointer.
    unsafe fn load(rows: &[*const u8; ROWS], offset: usize) -> Self::Block;

    /// Adds the block's products with activation block `a` to `acc`.
    ///
    /// # Safety
    /// AVX2, FMA and F16C are available, and the features `D` needs.
    unsafe fn accumulate<D: Dot>(w: &Self::Block, a: &BlockQ8, acc: &mut Acc);

    /// Adds the block's products with activation blocks `a` to their sums `acc`: input by
    /// input, unless a format orders the work otherwise.
    ///
    /// # Safety
    /// AVX2, FMA and F16C are available, and the features `D` needs.
    #[inline(always)]
    unsafe fn accumulate_inputs<D: Dot, const T: usize>(
        w: &Self::Block,
        a: [&BlockQ8; T],
        acc: &mut [Acc; T],
    ) {
        for (a, acc) in a.into_iter().zip(acc) {
            // SAFETY: the caller's contract.
            unsafe { Self::accumulate::<D>(w, a, acc) }
        }
    }

    /// The 8 rows' results.
    ///
    /// # Safety
    /// AVX2, FMA and F16C are available.
    unsafe fn finish(acc: &Acc) -> [f32; ROWS];
}

/// `out[t * rows + r] = row_r · input_t` for every whole row of `w` and the `n` inputs of `xq`
/// (`xq.len() / n` blocks each, as [`Input`] holds them), over the blocks that the row and the
/// input both hold. Outputs beyond `out` are skipped.
///
/// # Safety
/// AVX2, FMA and F16C are available, and the features `D` needs.
#[inline(always)]
unsafe fn tiles<F: Format, D: Dot>(
    w: &[u8],
    row_bytes: usize,
    xq: &[BlockQ8],
    n: usize,
    out: &mut [f32],
) {
    if n == 0 {
        return;
    }
    let stride = xq.len() / n;
    let blocks = (row_bytes / F::BLOCK_BYTES).min(stride);
    if blocks == 0 {
        return;
    }
    let rows = (w.len() / row_bytes).min(out.len() / n);
    // SAFETY: r <= rows - 1, so the row lies within `w`.
    let row = |r: usize| unsafe { w.as_ptr().add(r.min(rows - 1) * row_bytes) };
    for r0 in (0..rows).step_by(F::ROWS) {
        // A last partial tile repeats its last row; the extra results are not stored.
        let ptrs: [*const u8; ROWS] = std::array::from_fn(|i| row(r0 + i));
        let next = Upcoming {
            rows: std::array::from_fn(|i| row(r0 + F::ROWS + i)),
            count: rows.saturating_sub(r0 + F::ROWS).min(F::ROWS),
            row_bytes,
        };
        let mut t0 = 0;
        while t0 < n {
            let inputs = if D::WIDE { F::WIDE_INPUTS } else { F::INPUTS }.min(n - t0);
            let xq = &xq[t0 * stride..(t0 + inputs) * stride];
            let next = if t0 == 0 { next } else { Upcoming { count: 0, ..next } };
            let mut sums = [[0.0; ROWS]; MAX_INPUTS];
            // SAFETY: each row pointer has `blocks * BLOCK_BYTES <= row_bytes` readable bytes,
            // and `xq` holds `inputs` inputs of `stride >= blocks` blocks.
            unsafe {
                match inputs {
                    1 => tile::<F, D, 1>(&ptrs, xq, (blocks, stride), &next, &mut sums),
                    2 => tile::<F, D, 2>(&ptrs, xq, (blocks, stride), &next, &mut sums),
                    3 => tile::<F, D, 3>(&ptrs, xq, (blocks, stride), &next, &mut sums),
                    _ => tile::<F, D, MAX_INPUTS>(&ptrs, xq, (blocks, stride), &next, &mut sums),
                }
            }
            let valid = F::ROWS.min(rows - r0);
            for (t, sums) in sums.iter().take(inputs).enumerate() {
                let start = (t0 + t) * rows + r0;
                out[start..start + valid].copy_from_slice(&sums[..valid]);
            }
            t0 += inputs;
        }
    }
}

/// `out[i] = row_{listed[i]} · x` for the rows of `w` that `listed` names, in tiles of
/// `F::ROWS` listed rows, over the blocks that the rows and `x` both hold. A listed row past
/// the end of `w` gets no result, and outputs beyond `out` are skipped.
///
/// # Safety
/// AVX2, FMA and F16C are available, and the features `D` needs.
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
    let listed = &listed[..listed.len().min(out.len())];
    for ((these, following), out) in tiles_and_next(listed, F::ROWS).zip(out.chunks_mut(F::ROWS)) {
        let next = Upcoming { rows: rows.pointers(following), count: following.len(), row_bytes };
        let mut sums = [[0.0; ROWS]; MAX_INPUTS];
        // SAFETY: each row pointer has `blocks * BLOCK_BYTES <= row_bytes` readable bytes,
        // and `x` holds `blocks` blocks.
        unsafe { tile::<F, D, 1>(&rows.pointers(these), x, (blocks, x.len()), &next, &mut sums) };
        for ((o, &r), &sum) in out.iter_mut().zip(these).zip(&sums[0]) {
            if rows.holds(r) {
                *o = sum;
            }
        }
    }
}

/// The rows the next tile reads, which the hardware prefetcher does not foresee (a tile reads
/// its rows side by side, not as one stream): the tile prefetches a share of their cache
/// lines per block.
#[derive(Clone, Copy)]
struct Upcoming {
    rows: [*const u8; ROWS],
    /// Rows of `rows` to prefetch.
    count: usize,
    row_bytes: usize,
}

/// One tile: `F::ROWS` rows times `T` inputs (input `t`'s blocks start at `t * stride`) over
/// `blocks` blocks, prefetching `next` on the way; row `i`'s result for input `t` goes to
/// `sums[t][i]`.
#[inline(always)]
unsafe fn tile<F: Format, D: Dot, const T: usize>(
    rows: &[*const u8; ROWS],
    xq: &[BlockQ8],
    (blocks, stride): (usize, usize),
    next: &Upcoming,
    sums: &mut [[f32; ROWS]; MAX_INPUTS],
) {
    // SAFETY: the caller's contract (see `matmul`).
    unsafe {
        let zero = Acc { lanes: [_mm256_setzero_ps(); ROWS], mins: _mm256_setzero_ps() };
        let mut acc = [zero; T];
        // An even share of the next tile's cache lines per block, walked row by row.
        let lines = next.count * next.row_bytes.div_ceil(64);
        let share = lines.div_ceil(blocks);
        let (mut prefetched, mut row, mut offset) = (0, 0, 0);
        for b in 0..blocks {
            let until = lines.min(share * (b + 1));
            while prefetched < until {
                _mm_prefetch::<_MM_HINT_T0>(next.rows[row].wrapping_add(offset).cast());
                prefetched += 1;
                offset += 64;
                if offset >= next.row_bytes {
                    (row, offset) = (row + 1, 0);
                }
            }
            let w = F::load(rows, b * F::BLOCK_BYTES);
            F::accumulate_inputs::<D, T>(
                &w,
                std::array::from_fn(|t| &xq[t * stride + b]),
                &mut acc,
            );
        }
        for (sums, acc) in sums.iter_mut().zip(&acc) {
            *sums = F::finish(acc);
        }
    }
}

/// Reads 4 unaligned bytes.
#[inline(always)]
unsafe fn read_i32(p: *const u8) -> i32 {
    // SAFETY: the caller guarantees 4 readable bytes.
    unsafe { p.cast::<i32>().read_unaligned() }
}

/// Reads 8 unaligned bytes.
#[inline(always)]
unsafe fn read_i64(p: *const u8) -> i64 {
    // SAFETY: the caller guarantees 8 readable bytes.
    unsafe { p.cast::<i64>().read_unaligned() }
}

/// Reads 2 unaligned bytes.
#[inline(always)]
unsafe fn read_i16(p: *const u8) -> i16 {
    // SAFETY: the caller guarantees 2 readable bytes.
    unsafe { p.cast::<i16>().read_unaligned() }
}

/// The f16 scales at byte `offset` of the 8 rows, widened to f32 in row order.
#[inline(always)]
unsafe fn scales(rows: &[*const u8; ROWS], offset: usize) -> __m256 {
    // SAFETY: the caller guarantees 2 readable bytes at `offset` of each row.
    unsafe {
        let d = |r: usize| read_i16(rows[r].add(offset));
        _mm256_cvtph_ps(_mm_setr_epi16(d(0), d(1), d(2), d(3), d(4), d(5), d(6), d(7)))
    }
}
