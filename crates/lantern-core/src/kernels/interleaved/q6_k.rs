//! Q6_K in groups of [`GROUP_ROWS`] interleaved rows.
//!
//! # Layout
//! Rows are taken 16 at a time, the last group padded with zero rows, as two halves of 8
//! rows. A super-block of 256 values has 16 sub-blocks `j` of 16 values, each of 4 chunks
//! `k` of 4 values (elements `16j + 4k..16j + 4k + 4`). For rows of `B` super-blocks, a group
//! holds the super-blocks one after another, [`SUPER_BYTES`] = 3360 bytes each (16 rows ×
//! 210, the file's bytes), then zeros up to a multiple of 64 bytes so that every group starts
//! on a cache line. Super-block `b` holds, from `3360·b`:
//! - the sub-block scales: for each half `h` and pair `i` of sub-blocks, the half's 8 rows'
//!   `i8` scales of sub-blocks `2i` and `2i + 1`, row by row (16 bytes at `128·h + 16·i`).
//!   Widened to i16, i32 lane `r` holds row `8h + r`'s two scales;
//! - the codes `q` (0..64, the file's code plus 32): for each half `h` and sub-block `j`,
//!   three registers `m` of 32 bytes at `256 + 1536·h + 96·j + 32·m`. Byte `4r + e` of
//!   register `m` holds in its low six bits row `8h + r`'s code of chunk `m` (element
//!   `16j + 4m + e`) and in its top two bits bits `2m` and `2m + 1` of the code of chunk 3
//!   (element `16j + 12 + e`). Loaded, each register gives its chunk with one `and`, and the
//!   three give chunk 3 with three `and`s, three shifts and two `or`s: i32 lane `r` then
//!   holds row `8h + r`'s four codes of the chunk, ready for byte products with the chunk's
//!   four activation bytes;
//! - the super-block scales: the 16 rows' f16 `d` in row order (32 bytes at `3328`).
//!
//! Every 32-byte load lies at a multiple of 32 from the group's start (3360 = 105 · 32), so
//! none splits a cache line. A kernel reads one half group at a time: its part of each
//! super-block is its scales, then its codes, then its `d`.
//!
//! # Math
//! The arithmetic of the file layout's Q6_K kernels, so that interleaved rows give the file
//! rows' bits (ggml keeps eight f32 lanes per row instead): per super-block and row the exact
//! integer `S = Σ_j sc_j·Σ_{i in j} q_i·q_a,i − 32·Σ_j sc_j·bsum_j`, with the activation
//! block's codes `q_a` and its sums `bsum_j` over each sub-block, then one fused
//! multiply-add, `acc = S·(d_w·d_a) + acc`, over the super-blocks in order from 0. No partial sum leaves
//! i32, in any order: `|Σ_{i in j} q_i·q_a,i| ≤ 16·63·127` and `|32·bsum_j| ≤ 32·16·127`,
//! each times `|sc_j| ≤ 128`, over 16 sub-blocks, stays below 2^29.

use super::{scalar_rows, GROUP_ROWS};
use crate::kernels::Input;
use crate::{BlockQ6K, BlockQ8K, QK_K};

/// Rows per half group: one 256-bit register's i32 lanes.
const HALF_ROWS: usize = GROUP_ROWS / 2;
/// Sub-blocks per super-block, each with its own scale.
const SUB_BLOCKS: usize = QK_K / 16;

/// Bytes of one Q6_K super-block of one row.
pub(super) const BLOCK_BYTES: usize = std::mem::size_of::<BlockQ6K>();
/// Bytes of one super-block of [`GROUP_ROWS`] rows.
pub(super) const SUPER_BYTES: usize = GROUP_ROWS * BLOCK_BYTES;
/// Bytes of sub-block scales of one super-block of one half group.
pub(super) const HALF_SCALES: usize = HALF_ROWS * SUB_BLOCKS;
/// Where the codes of a super-block start, after its sub-block scales.
pub(super) const CODES: usize = 2 * HALF_SCALES;
/// Bytes of codes of one sub-block of one half group: three registers.
pub(super) const SUB_CODES: usize = 3 * 32;
/// Bytes of codes of one super-block of one half group.
pub(super) const HALF_CODES: usize = SUB_BLOCKS * SUB_CODES;
/// Where the f16 scales of a super-block start, after its codes.
pub(super) const SCALES: usize = CODES + 2 * HALF_CODES;

const _: () = assert!(SCALES + 2 * GROUP_ROWS == SUPER_BYTES);

/// Bytes of one group of rows of `row_bytes` bytes each.
pub(super) fn group_bytes(row_bytes: usize) -> usize {
    (row_bytes / BLOCK_BYTES * SUPER_BYTES).next_multiple_of(64)
}

/// Writes the whole rows of `w` interleaved into `out`, whose length the caller has checked.
pub(super) fn interleave(w: &[u8], row_bytes: usize, out: &mut [u8]) {
    let group = group_bytes(row_bytes);
    for (r, row) in w.chunks_exact(row_bytes).enumerate() {
        let out = &mut out[r / GROUP_ROWS * group..][..group];
        let lane = r % GROUP_ROWS;
        for (b, block) in crate::kernels::as_blocks::<BlockQ6K>(row).iter().enumerate() {
            let out = &mut out[SUPER_BYTES * b..][..SUPER_BYTES];
            for (j, &scale) in block.scales.iter().enumerate() {
                out[scale_offset(j, lane)] = scale as u8;
            }
            for (i, &code) in block.codes().iter().enumerate() {
                // The file's code plus 32: 0..64.
                let q = (code + 32) as u8;
                let (j, m, e) = (i / 16, i % 16 / 4, i % 4);
                if m < 3 {
                    out[code_offset(j, m, lane) + e] |= q;
                } else {
                    for m in 0..3 {
                        out[code_offset(j, m, lane) + e] |= (q >> (2 * m)) << 6;
                    }
                }
            }
            out[SCALES + 2 * lane..][..2].copy_from_slice(&block.d);
        }
    }
}

/// Dequantizes row `lane` of `group` into `out` (whole super-blocks) as the file row
/// dequantizes.
pub(super) fn dequantize_row(group: &[u8], lane: usize, out: &mut [f32]) {
    for (b, out) in out.chunks_exact_mut(QK_K).enumerate() {
        let block = &group[SUPER_BYTES * b..][..SUPER_BYTES];
        let scales = std::array::from_fn(|j| block[scale_offset(j, lane)] as i8);
        let codes = std::array::from_fn(|i| {
            let (j, m, e) = (i / 16, i % 16 / 4, i % 4);
            let q = if m < 3 {
                block[code_offset(j, m, lane) + e] & 0x3F
            } else {
                (0..3).map(|m| (block[code_offset(j, m, lane) + e] >> 6) << (2 * m)).sum()
            };
            q as i8 - 32
        });
        let d = half::f16::from_le_bytes([block[SCALES + 2 * lane], block[SCALES + 2 * lane + 1]]);
        crate::dequant::scaled_sub_blocks_of_16(d.to_f32(), &scales, &codes, out);
    }
}

/// Where row `lane`'s scale of sub-block `j` lies in its super-block.
fn scale_offset(j: usize, lane: usize) -> usize {
    HALF_SCALES * (lane / HALF_ROWS) + 2 * HALF_ROWS * (j / 2) + 2 * (lane % HALF_ROWS) + j % 2
}

/// Where row `lane`'s 4 bytes of register `m` of sub-block `j` lie in their super-block.
fn code_offset(j: usize, m: usize, lane: usize) -> usize {
    CODES + HALF_CODES * (lane / HALF_ROWS) + SUB_CODES * j + 32 * m + 4 * (lane % HALF_ROWS)
}

/// The scalar twin: row by row, super-block by super-block, one fused multiply-add each.
pub(super) fn scalar(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
    let (layout, xq) = ((group_bytes(row_bytes), row_bytes / BLOCK_BYTES), input.q8k_all());
    scalar_rows(w, layout, (xq, input.n()), out, |group, lane, _, a| row_dot(group, lane, a));
}

/// Row `lane` of `group` times the activation blocks `a`.
fn row_dot(group: &[u8], lane: usize, a: &[BlockQ8K]) -> f32 {
    let mut sum = 0.0f32;
    for (b, a) in a.iter().enumerate() {
        let block = &group[SUPER_BYTES * b..][..SUPER_BYTES];
        let mut s = 0i32;
        for j in 0..SUB_BLOCKS {
            let bytes: [&[u8]; 3] = std::array::from_fn(|m| &block[code_offset(j, m, lane)..][..4]);
            let mut sumi = 0i32;
            for (e, x) in a.qs[16 * j..16 * j + 16].iter().enumerate() {
                let (m, e) = (e / 4, e % 4);
                let q = if m < 3 {
                    bytes[m][e] & 0x3F
                } else {
                    (0..3).map(|m| (bytes[m][e] >> 6) << (2 * m)).sum()
                };
                sumi += i32::from(q) * i32::from(*x);
            }
            // Exact (see the module docs for the bounds); the sum over sub-blocks could wrap
            // only for `bsums` that are not the sums of the codes, and then wraps as the
            // SIMD kernels' adds do.
            let scale = i32::from(block[scale_offset(j, lane)] as i8);
            s = s.wrapping_add(scale * (sumi - 32 * i32::from(a.bsums[j])));
        }
        let d = half::f16::from_le_bytes([block[SCALES + 2 * lane], block[SCALES + 2 * lane + 1]]);
        sum = (s as f32).mul_add(d.to_f32() * a.d, sum);
    }
    sum
}
