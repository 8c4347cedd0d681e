//! IQ4_XS in groups of [`GROUP_ROWS`] interleaved rows: super-blocks of 256 codes (4 bits)
//! that index the codebook `v` ([`IQ4NL_VALUES`]), in eight sub-blocks of 32, each with a
//! 6-bit scale `ls`, under an f16 `d`: value = d·(ls − 32)·v[q] (ggml `block_iq4_xs`).
//!
//! # Layout
//! Rows are taken 16 at a time, the last group padded with zero rows, as two halves of 8
//! rows. For rows of `B` super-blocks, a group holds the super-blocks one after another,
//! [`SUPER_BYTES`] = 2208 bytes each (the file's 16 × 136 plus 32), then zeros up to a
//! multiple of 64 bytes so that every group starts on a cache line. Super-block `b` holds,
//! from `2208·b`:
//! - the sub-block scales `sc = ls − 32` (−32..32) as signed bytes: for each half `h` and
//!   pair `i` of sub-blocks, the half's 8 rows' scales of sub-blocks `2i` and `2i + 1`, row by
//!   row (16 bytes at `64·h + 16·i`). Widened to i16, i32 lane `r` holds row `8h + r`'s pair;
//! - the codes, as the file holds them: for each half `h`, sub-block `j` and 4-byte chunk
//!   `c < 4`, one register of 32 bytes at `128 + 1024·h + 128·j + 32·c`, whose bytes
//!   `4r..4r + 4` are row `8h + r`'s code bytes `16j + 4c..16j + 4c + 4`. Byte `4r + e` so
//!   holds in its low nibble the row's code of element `32j + 4c + e` and in its high nibble
//!   that of element `32j + 16 + 4c + e`, and i32 lane `r` four codes of the row, ready for
//!   byte products with four activation bytes;
//! - the 16 rows' f16 `d` in row order (32 bytes at 2176).
//!
//! Every 32-byte load lies at a multiple of 32 from the group's start (2208 = 69 · 32), so
//! none splits a cache line. A kernel reads one half group at a time. The codebook is not
//! stored: a kernel looks the codes up with one byte shuffle per register.
//!
//! # Math
//! Per super-block and row the exact integer `S = Σ_j sc_j·Σ_{i in j} v[q_i]·q_a,i`, with the
//! activation block's codes `q_a`, then one fused multiply-add, `acc = S·(d_w·d_a) + acc`,
//! over the super-blocks in order from 0. The file layout's IQ4_XS kernels compute the same
//! (see [`iquants`](crate::kernels::iquants)), so interleaved rows give the file rows' bits.
//! No partial sum leaves i32, in any order: `|Σ_{i in j} v[q_i]·q_a,i| ≤ 32·127·128 = 2^19 −
//! 2^12` (codebook values are at most 127 in magnitude, activation codes at least −128),
//! times `|sc_j| ≤ 32`, over 8 sub-blocks, stays below 2^27. A kernel that takes the codes as
//! `v + 128` (unsigned bytes, at most 241) and subtracts `128·sc_j·Σ_{i in j} q_a,i` apart
//! stays below 2^28: `32·241·128 < 2^20` and `128·32·128 < 2^19` per value sum, times 32,
//! over 8 sub-blocks.

use super::{scalar_rows, GROUP_ROWS};
use crate::kernels::{as_blocks, Input};
use crate::{BlockIQ4XS, BlockQ8K, IQ4NL_VALUES, QK_K};

/// Rows per half group: one 256-bit register's i32 lanes.
pub(super) const HALF_ROWS: usize = GROUP_ROWS / 2;
/// Sub-blocks per super-block, each with its own scale.
pub(super) const SUB_BLOCKS: usize = QK_K / 32;
/// Chunks of 4 code bytes per sub-block: the registers per sub-block and half group.
pub(super) const CHUNKS: usize = 4;

/// Bytes of sub-block scales of one super-block of one half group.
pub(super) const HALF_SCALES: usize = HALF_ROWS * SUB_BLOCKS;
/// Where the codes of a super-block start, after its sub-block scales.
pub(super) const CODES: usize = 2 * HALF_SCALES;
/// Bytes of codes of one sub-block of one half group.
pub(super) const SUB_CODES: usize = CHUNKS * 32;
/// Bytes of codes of one super-block of one half group.
pub(super) const HALF_CODES: usize = SUB_BLOCKS * SUB_CODES;
/// Where the f16 scales of a super-block start, after its codes.
pub(super) const FLOATS: usize = CODES + 2 * HALF_CODES;
/// Bytes of one super-block of [`GROUP_ROWS`] rows.
pub(super) const SUPER_BYTES: usize = FLOATS + 2 * GROUP_ROWS;
/// Bytes of one super-block of one row in the file.
pub(super) const BLOCK_BYTES: usize = size_of::<BlockIQ4XS>();

const _: () = assert!(SUPER_BYTES == 2208 && SUPER_BYTES.is_multiple_of(32));

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
        for (b, block) in as_blocks::<BlockIQ4XS>(row).iter().enumerate() {
            let out = &mut out[SUPER_BYTES * b..][..SUPER_BYTES];
            for (j, &sc) in block.scales().iter().enumerate() {
                out[scale_offset(j, lane)] = sc as u8;
            }
            for (k, chunk) in block.qs.chunks_exact(4).enumerate() {
                let (j, c) = (k / CHUNKS, k % CHUNKS);
                out[code_offset(j, c, lane)..][..4].copy_from_slice(chunk);
            }
            out[FLOATS + 2 * lane..][..2].copy_from_slice(&block.d);
        }
    }
}

/// Dequantizes row `lane` of `group` into `out` (whole super-blocks) as the file row
/// dequantizes: `(d·sc)·v[q]`.
pub(super) fn dequantize_row(group: &[u8], lane: usize, out: &mut [f32]) {
    for (b, out) in out.chunks_exact_mut(QK_K).enumerate() {
        let block = &group[SUPER_BYTES * b..][..SUPER_BYTES];
        let d = half::f16::from_le_bytes([block[FLOATS + 2 * lane], block[FLOATS + 2 * lane + 1]]);
        for (j, out) in out.chunks_exact_mut(32).enumerate() {
            let dl = d.to_f32() * f32::from(block[scale_offset(j, lane)] as i8);
            for c in 0..CHUNKS {
                for (e, &byte) in block[code_offset(j, c, lane)..][..4].iter().enumerate() {
                    out[4 * c + e] = dl * f32::from(IQ4NL_VALUES[usize::from(byte & 0x0F)]);
                    out[16 + 4 * c + e] = dl * f32::from(IQ4NL_VALUES[usize::from(byte >> 4)]);
                }
            }
        }
    }
}

/// Where row `lane`'s scale of sub-block `j` lies in its super-block.
fn scale_offset(j: usize, lane: usize) -> usize {
    HALF_SCALES * (lane / HALF_ROWS) + 2 * HALF_ROWS * (j / 2) + 2 * (lane % HALF_ROWS) + j % 2
}

/// Where row `lane`'s 4 code bytes of chunk `c` of sub-block `j` lie in their super-block.
fn code_offset(j: usize, c: usize, lane: usize) -> usize {
    CODES + HALF_CODES * (lane / HALF_ROWS) + SUB_CODES * j + 32 * c + 4 * (lane % HALF_ROWS)
}

/// The scalar twin: row by row, super-block by super-block, one fused multiply-add each.
pub(super) fn scalar(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
    let (layout, xq) = ((group_bytes(row_bytes), row_bytes / BLOCK_BYTES), input.q8k_all());
    scalar_rows(w, layout, (xq, input.n()), out, |group, lane, _, a| row_dot(group, lane, a));
}

/// Row `lane` of `group` times the activation blocks `a`.
fn row_dot(group: &[u8], lane: usize, a: &[BlockQ8K]) -> f32 {
    let mut acc = 0.0f32;
    for (b, a) in a.iter().enumerate() {
        let block = &group[SUPER_BYTES * b..][..SUPER_BYTES];
        let mut s = 0i32;
        for j in 0..SUB_BLOCKS {
            let mut sumi = 0i32;
            for c in 0..CHUNKS {
                let chunk = &block[code_offset(j, c, lane)..][..4];
                for (e, &byte) in chunk.iter().enumerate() {
                    let (lo, hi) = (
                        IQ4NL_VALUES[usize::from(byte & 0x0F)],
                        IQ4NL_VALUES[usize::from(byte >> 4)],
                    );
                    sumi += i32::from(lo) * i32::from(a.qs[32 * j + 4 * c + e])
                        + i32::from(hi) * i32::from(a.qs[32 * j + 16 + 4 * c + e]);
                }
            }
            // Exact (see the module docs for the bounds).
            s += i32::from(block[scale_offset(j, lane)] as i8) * sumi;
        }
        let d = half::f16::from_le_bytes([block[FLOATS + 2 * lane], block[FLOATS + 2 * lane + 1]]);
        acc = (s as f32).mul_add(d.to_f32() * a.d, acc);
    }
    acc
}
