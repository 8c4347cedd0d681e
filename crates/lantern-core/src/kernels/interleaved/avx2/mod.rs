//! The interleaved kernels on the AVX2 and AVX-512 VNNI paths: [`offset`] for Q4_0 and Q5_0,
//! [`q3_k`] for Q3_K, [`q4_k`] for Q4_K and Q5_K, [`q6_k`] for Q6_K, [`q8_0`] for Q8_0,
//! [`iq4_xs`] for IQ4_XS, [`iq4_nl`] for IQ4_NL, and the loop they share ([`run`]): group by
//! group, inputs a tile at a time, the next group prefetched while one computes, results
//! copied out per input.

use std::arch::x86_64::*;

use super::{Extent, Layout, GROUP_ROWS};
use crate::kernels::avx2::Dot;
use crate::kernels::MatmulFn;

mod iq4_nl;
mod iq4_xs;
mod offset;
mod q3_k;
mod q4_k;
mod q6_k;
mod q8_0;

/// The interleaved kernel for `layout` on the AVX2 path or, with `vnni`, the AVX-512 VNNI
/// path. Callers must have detected the features of the path.
pub(super) fn matmul_fn(layout: Layout, vnni: bool) -> MatmulFn {
    match layout {
        Layout::Offset(format) => offset::matmul_fn(format, vnni),
        Layout::Q3K => q3_k::matmul_fn(vnni),
        Layout::K4 { fifth } => q4_k::matmul_fn(fifth, vnni),
        Layout::Q6K => q6_k::matmul_fn(vnni),
        Layout::Q8_0 => q8_0::matmul_fn(vnni),
        Layout::Iq4Xs => iq4_xs::matmul_fn(vnni),
        Layout::Iq4Nl => iq4_nl::matmul_fn(vnni),
    }
}

/// Inputs a tile takes at most, in any layout.
const MAX_INPUTS: usize = 8;

/// One layout's tile: a group of rows times `T` inputs.
trait GroupTile {
    /// The activation blocks the layout reads.
    type Block;
    /// Inputs per tile with 32 vector registers (half as many with 16), at most
    /// [`MAX_INPUTS`]; a batch's remainder goes in tiles of up to four.
    const INPUTS: usize;

    /// One group times `T` inputs (input `t`'s blocks start at `a[t * stride]`) over
    /// `e.blocks` blocks, prefetching `next` on the way; row `r` for input `t` goes to
    /// `sums[t][r]`.
    ///
    /// # Safety
    /// AVX2, FMA and F16C are available, and the features `D` needs; `group` is `e.group`
    /// bytes in the layout; `a` holds `T` inputs of `stride >= e.blocks` blocks.
    unsafe fn tile<D: Dot, const T: usize>(
        group: &[u8],
        a: &[Self::Block],
        stride: usize,
        e: &Extent,
        next: &[u8],
        sums: &mut [[f32; GROUP_ROWS]; MAX_INPUTS],
    );
}

/// `out[t * e.rows + r] = row_r · input_t` for the groups of `w` and the `n` inputs of `a`
/// (`stride` blocks each), tile by tile.
///
/// # Safety
/// AVX2, FMA and F16C are available, and the features `D` needs; `w` holds whole groups in
/// `K`'s layout as `e` describes them, and `a` holds `n` inputs of `stride >= e.blocks`
/// blocks.
#[inline(always)]
unsafe fn run<K: GroupTile, D: Dot>(
    w: &[u8],
    e: &Extent,
    a: &[K::Block],
    (n, stride): (usize, usize),
    out: &mut [f32],
) {
    let max_inputs = if D::WIDE { K::INPUTS } else { K::INPUTS / 2 };
    // The first group all at once, rather than line by line as the loads reach it.
    for line in w[..w.len().min(e.group)].chunks(64) {
        // SAFETY: SSE is part of x86-64; a prefetch reads nothing.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast()) };
    }
    for (g, r0) in (0..e.rows).step_by(GROUP_ROWS).enumerate() {
        let group = &w[g * e.group..(g + 1) * e.group];
        // The next group, read while this one computes: DRAM latency is longer than the
        // hardware prefetcher's reach.
        let next = w.get((g + 1) * e.group..(g + 2) * e.group).unwrap_or_default();
        // A batch's tiles share the next group's lines evenly, rather than the first tile
        // reading them all: that many misses at once stall it.
        let tiles = n.div_ceil(max_inputs).max(1);
        let mut next = next.chunks(next.len().div_ceil(64 * tiles).max(1) * 64);
        let mut t0 = 0;
        while t0 < n {
            // Whole tiles, then the rest in tiles of up to four.
            let inputs = if n - t0 >= max_inputs { max_inputs } else { (n - t0).min(4) };
            let next = next.next().unwrap_or_default();
            let a = &a[t0 * stride..(t0 + inputs) * stride];
            let mut sums = [[0.0; GROUP_ROWS]; MAX_INPUTS];
            // SAFETY: the caller's contract, for `inputs` of the inputs.
            unsafe {
                match inputs {
                    1 => K::tile::<D, 1>(group, a, stride, e, next, &mut sums),
                    2 => K::tile::<D, 2>(group, a, stride, e, next, &mut sums),
                    3 => K::tile::<D, 3>(group, a, stride, e, next, &mut sums),
                    4 => K::tile::<D, 4>(group, a, stride, e, next, &mut sums),
                    _ => K::tile::<D, MAX_INPUTS>(group, a, stride, e, next, &mut sums),
                }
            }
            let valid = GROUP_ROWS.min(e.rows - r0);
            for (t, sums) in sums.iter().take(inputs).enumerate() {
                let start = (t0 + t) * e.rows + r0;
                out[start..start + valid].copy_from_slice(&sums[..valid]);
            }
            t0 += inputs;
        }
    }
}

/// A byte shuffle that copies the `k`-th i16 of each i32 lane to both of its halves.
///
/// # Safety
/// AVX is available.
#[inline(always)]
pub(super) unsafe fn duplicate(k: i32) -> __m256i {
    // Lane p of each 128 bits takes bytes 4p + 2k and 4p + 2k + 1, twice.
    let base = 2 * k * 0x0001_0001 + (2 * k + 1) * 0x0100_0100;
    let [p1, p2, p3] = [1, 2, 3].map(|p| base + p * 0x0404_0404);
    // SAFETY: the caller's contract; register-only.
    unsafe { _mm256_setr_epi32(base, p1, p2, p3, base, p1, p2, p3) }
}
