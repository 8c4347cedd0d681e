//! Q3_K in groups of [`GROUP_ROWS`] interleaved rows: super-blocks of 256 codes `q` in 0..8
//! in sixteen sub-blocks of 16, each with a signed scale `sc` (the file's six bits minus 32),
//! under an f16 `d`: value = d·sc·(q − 4).
//!
//! # Layout
//! Rows are taken 16 at a time, the last group padded with zero rows, as two halves of 8
//! rows. A super-block's 256 values form 8 pairs `p` of sub-blocks (`2p` and `2p + 1`), each
//! of 8 chunks `c` of 4 values (elements `32p + 4c..32p + 4c + 4`: chunks 0..4 are sub-block
//! `2p`, chunks 4..8 sub-block `2p + 1`). For rows of `B` super-blocks, a group holds the
//! super-blocks one after another, [`SUPER_BYTES`] = 1824 bytes each, then zeros up to a
//! multiple of 64 bytes so that every group starts on a cache line. Super-block `b` holds,
//! from `1824·b`:
//! - the sub-block scales, minus 32, as `i8`: for each half `h` and pair `p`, the half's 8
//!   rows' scales of sub-blocks `2p` and `2p + 1`, row by row (16 bytes at `128·h + 16·p`).
//!   Widened to i16, i32 lane `r` holds row `8h + r`'s two scales;
//! - the codes, three bits each, as many bytes as the file's: for each half `h` and pair `p`,
//!   three registers `m` of 32 bytes at `256 + 768·h + 96·p + 32·m`. Byte `4r + e` of
//!   register `m` holds row `8h + r`'s code of chunk `m` (element `32p + 4m + e`) in bits
//!   0..3, that of chunk `4 + m` (the same place in the odd sub-block) in bits 3..6, and in
//!   bits 6..8 bits `2m` and `2m + 1` of the six-bit `t` = code of chunk 3 | code of chunk 7
//!   << 3. Loaded, the three registers give six chunks with six `and`s and three shifts, and
//!   `t` as Q6_K gathers its fourth chunk (three `and`s, three shifts, two `or`s); `t` gives
//!   chunks 3 and 7 with one more shift and two `and`s. I32 lane `r` then holds row
//!   `8h + r`'s four codes of a chunk, ready for byte products with the chunk's four
//!   activation bytes;
//! - the super-block scales: the 16 rows' f16 `d` in row order (32 bytes at `1792`).
//!
//! Every 32-byte load lies at a multiple of 32 from the group's start (1824 = 57 · 32), so
//! none splits a cache line. A kernel reads one half group at a time: its part of each
//! super-block is its scales, then its codes, then its `d`.
//!
//! # Math
//! Per super-block and row the exact integer
//! `S = Σ_j sc_j·Σ_{i in j} (q_i − 4)·q_a,i = Σ_j sc_j·(Σ_{i in j} q_i·q_a,i − 4·bsum_j)`,
//! with the activation block's codes `q_a` and its sums `bsum_j` over each sub-block, then one
//! fused multiply-add, `acc = S·(d_w·d_a) + acc`, over the super-blocks in order from 0. The
//! file layout's Q3_K kernels round the same way (they form `S` from `q − 4` directly, so the
//! two agree wherever `bsums` are the sums of the codes, as quantized activations' are).
//! No partial sum comes near the i32 bounds, in any order: `|Σ_{i in j} q_i·q_a,i| ≤
//! 16·7·128` and `|4·bsum_j| ≤ 4·2^15` even for `bsums` that are not the codes' sums, each
//! times `|sc_j| ≤ 32`, over 16 sub-blocks, stays below 2^27.

use super::{scalar_rows, GROUP_ROWS};
use crate::kernels::{as_blocks, Input};
use crate::{BlockQ3K, BlockQ8K, QK_K};

/// Rows per half group: one 256-bit register's i32 lanes.
const HALF_ROWS: usize = GROUP_ROWS / 2;
/// Sub-blocks per super-block, each with its own scale.
const SUB_BLOCKS: usize = QK_K / 16;
/// Pairs of sub-blocks, which share their scales' load and their codes' registers.
pub(super) const PAIRS: usize = SUB_BLOCKS / 2;

/// Bytes of one Q3_K super-block of one row in the file.
pub(super) const BLOCK_BYTES: usize = std::mem::size_of::<BlockQ3K>();
/// Bytes of sub-block scales of one super-block of one half group.
pub(super) const HALF_SCALES: usize = HALF_ROWS * SUB_BLOCKS;
/// Where the codes of a super-block start, after its sub-block scales.
pub(super) const CODES: usize = 2 * HALF_SCALES;
/// Bytes of codes of one pair of sub-blocks of one half group: three registers.
pub(super) const PAIR_CODES: usize = 3 * 32;
/// Bytes of codes of one super-block of one half group.
pub(super) const HALF_CODES: usize = PAIRS * PAIR_CODES;
/// Where the f16 scales of a super-block start, after its codes.
pub(super) const SCALES: usize = CODES + 2 * HALF_CODES;
/// Bytes of one super-block of [`GROUP_ROWS`] rows.
pub(super) const SUPER_BYTES: usize = SCALES + 2 * GROUP_ROWS;

const _: () = assert!(SUPER_BYTES == 1824 && SUPER_BYTES.is_multiple_of(32));

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
        for (b, block) in as_blocks::<BlockQ3K>(row).iter().enumerate() {
            let out = &mut out[SUPER_BYTES * b..][..SUPER_BYTES];
            for (j, &scale) in block.scales().iter().enumerate() {
                out[scale_offset(j, lane)] = scale as u8;
            }
            for (i, &code) in block.codes().iter().enumerate() {
                // The file's code plus 4: 0..8.
                let q = (code + 4) as u8;
                let (p, odd, m, e) = (i / 32, i % 32 / 16, i % 16 / 4, i % 4);
                if m < 3 {
                    out[code_offset(p, m, lane) + e] |= q << (3 * odd);
                } else {
                    let t = q << (3 * odd);
                    for m in 0..3 {
                        out[code_offset(p, m, lane) + e] |= ((t >> (2 * m)) & 3) << 6;
                    }
                }
            }
            out[SCALES + 2 * lane..][..2].copy_from_slice(&block.d);
        }
    }
}

/// Where row `lane`'s scale of sub-block `j` lies in its super-block.
fn scale_offset(j: usize, lane: usize) -> usize {
    HALF_SCALES * (lane / HALF_ROWS) + 2 * HALF_ROWS * (j / 2) + 2 * (lane % HALF_ROWS) + j % 2
}

/// Where row `lane`'s 4 bytes of register `m` of pair `p` lie in their super-block.
fn code_offset(p: usize, m: usize, lane: usize) -> usize {
    CODES + HALF_CODES * (lane / HALF_ROWS) + PAIR_CODES * p + 32 * m + 4 * (lane % HALF_ROWS)
}

/// The scalar twin: row by row, super-block by super-block, one fused multiply-add each.
pub(super) fn scalar(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
    let (layout, xq) = ((group_bytes(row_bytes), row_bytes / BLOCK_BYTES), input.q8k_all());
    scalar_rows(w, layout, (xq, input.n()), out, |group, lane, _, a| row_dot(group, lane, a));
}

/// Dequantizes row `lane` of `group` into `out` (whole super-blocks) as the file row
/// dequantizes.
pub(super) fn dequantize_row(group: &[u8], lane: usize, out: &mut [f32]) {
    for (b, out) in out.chunks_exact_mut(QK_K).enumerate() {
        let block = &group[SUPER_BYTES * b..][..SUPER_BYTES];
        let scales = std::array::from_fn(|j| block[scale_offset(j, lane)] as i8);
        let codes = std::array::from_fn(|i| (code(block, lane, i) - 4) as i8);
        let d = half::f16::from_le_bytes([block[SCALES + 2 * lane], block[SCALES + 2 * lane + 1]]);
        crate::dequant::scaled_sub_blocks_of_16(d.to_f32(), &scales, &codes, out);
    }
}

/// Row `lane`'s code of element `i` of the super-block `block`.
fn code(block: &[u8], lane: usize, i: usize) -> i32 {
    let (p, odd, m, e) = (i / 32, i % 32 / 16, i % 16 / 4, i % 4);
    let byte = |m: usize| block[code_offset(p, m, lane) + e];
    let six = if m < 3 { byte(m) & 0x3F } else { (0..3).map(|m| (byte(m) >> 6) << (2 * m)).sum() };
    i32::from((six >> (3 * odd)) & 7)
}

/// Row `lane` of `group` times the activation blocks `a`.
fn row_dot(group: &[u8], lane: usize, a: &[BlockQ8K]) -> f32 {
    let mut sum = 0.0f32;
    for (b, a) in a.iter().enumerate() {
        let block = &group[SUPER_BYTES * b..][..SUPER_BYTES];
        let mut s = 0i32;
        for j in 0..SUB_BLOCKS {
            let sumi: i32 =
                (16 * j..16 * j + 16).map(|i| code(block, lane, i) * i32::from(a.qs[i])).sum();
            // Exact (see the module docs for the bounds).
            let scale = i32::from(block[scale_offset(j, lane)] as i8);
            s += scale * (sumi - 4 * i32::from(a.bsums[j]));
        }
        let d = half::f16::from_le_bytes([block[SCALES + 2 * lane], block[SCALES + 2 * lane + 1]]);
        sum = (s as f32).mul_add(d.to_f32() * a.d, sum);
    }
    sum
}
