//! Q4_K and Q5_K in groups of [`GROUP_ROWS`] interleaved rows: super-blocks of 256 unsigned
//! codes (4 bits, or 5 with Q5_K's fifth bits) in eight sub-blocks of 32, each with a 6-bit
//! scale `sc` and minimum `m`, under f16 `d` and `dmin`: value = d·sc·q − dmin·m.
//!
//! # Layout
//! Rows are taken 16 at a time, the last group padded with zero rows, as two halves of 8
//! rows. For rows of `B` super-blocks, a group holds the super-blocks one after another,
//! [`super_bytes`] each (2368 bytes, or 2880 with fifth bits), then zeros up to a multiple
//! of 64 bytes so that every group starts on a cache line. Super-block `b` holds, from its
//! start:
//! - the sub-block scales and minimums, unpacked to bytes: for each half `h` and pair `i` of
//!   sub-blocks, the half's 8 rows' scales of sub-blocks `2i` and `2i + 1`, row by row (16
//!   bytes at `128·h + 16·i`), then their minimums the same way (at `128·h + 64 + 16·i`).
//!   Widened to i16, i32 lane `r` holds row `8h + r`'s pair;
//! - the codes' low four bits: for each half `h`, sub-block `j` and 4-byte chunk `c < 4`,
//!   one register of 32 bytes at `256 + 1024·h + 128·j + 32·c`. Byte `4r + e` holds in its
//!   low nibble row `8h + r`'s code of element `32j + 4c + e` and in its high nibble that of
//!   element `32j + 16 + 4c + e`: i32 lane `r` then holds four codes of the row, ready for
//!   byte products with four activation bytes;
//! - Q5_K only, the fifth bits: for each half `h`, sub-block `j` and chunk `c`, two u32 at
//!   `2304 + 256·h + 32·j + 8·c`, masks over the bytes of the chunk's register (bit
//!   `4r + e`): the first for its low nibbles, the second for its high ones;
//! - the 16 rows' f16 `d` in row order, then their f16 `dmin` (64 bytes at the end).
//!
//! Every 32-byte load lies at a multiple of 32 from the group's start (both super-block sizes
//! are), so none splits a cache line. A kernel reads one half group at a time.
//!
//! # Math
//! The arithmetic of the file layout's Q4_K and Q5_K kernels (and of llama.cpp's repacked
//! Q4_K), so that interleaved rows give the file rows' bits. Per super-block and row, the
//! exact integers `S = Σ_j sc_j·Σ_{i in j} q_i·q_a,i` and `M = Σ_k m_{k/2}·bsum_k`, with the
//! activation block's codes `q_a` and its sums `bsum` over each 16 values; each is
//! added with one fused multiply-add, `acc = S·(d_w·d_a) + acc` and
//! `acc_min = M·(dmin_w·d_a) + acc_min`, over the super-blocks in order from 0, and the result
//! is `acc − acc_min`. Neither sum leaves i32: `|Σ_{i in j} q_i·q_a,i| ≤ 32·31·128`, times
//! `sc_j < 64`, over 8 sub-blocks, stays below 2^26; `|M| ≤ 16·63·2^15`.

use super::{scalar_rows, GROUP_ROWS};
use crate::kernels::{as_blocks, Input};
use crate::{BlockQ4K, BlockQ5K, BlockQ8K, QK_K};

/// Rows per half group: one 256-bit register's i32 lanes.
const HALF_ROWS: usize = GROUP_ROWS / 2;
/// Sub-blocks per super-block, each with its own scale and minimum.
pub(super) const SUB_BLOCKS: usize = QK_K / 32;

/// Bytes of scales and minimums of one super-block of one half group.
pub(super) const HALF_SCALES: usize = 2 * HALF_ROWS * SUB_BLOCKS;
/// Where the minimums start within a half group's scales.
pub(super) const MINS: usize = HALF_ROWS * SUB_BLOCKS;
/// Where the codes of a super-block start, after its scales and minimums.
pub(super) const CODES: usize = 2 * HALF_SCALES;
/// Bytes of codes of one sub-block of one half group: four registers.
pub(super) const SUB_CODES: usize = 4 * 32;
/// Bytes of codes of one super-block of one half group.
pub(super) const HALF_CODES: usize = SUB_BLOCKS * SUB_CODES;
/// Where the fifth bits of a super-block start (Q5_K), after its codes.
pub(super) const FIFTHS: usize = CODES + 2 * HALF_CODES;
/// Bytes of fifth bits of one sub-block of one half group: two u32 per chunk.
pub(super) const SUB_FIFTHS: usize = 4 * 8;
/// Bytes of fifth bits of one super-block of one half group.
pub(super) const HALF_FIFTHS: usize = SUB_BLOCKS * SUB_FIFTHS;
/// Bytes of the 16 rows' f16 `d` and `dmin`, which end each super-block.
const FLOATS: usize = 4 * GROUP_ROWS;

/// Bytes of one super-block of [`GROUP_ROWS`] rows, with or without fifth bits.
pub(super) const fn super_bytes(fifth: bool) -> usize {
    FIFTHS + if fifth { 2 * HALF_FIFTHS } else { 0 } + FLOATS
}

/// Where the f16 `d` of a super-block start; their `dmin` follow, 32 bytes on.
pub(super) const fn floats_at(fifth: bool) -> usize {
    super_bytes(fifth) - FLOATS
}

const _: () = assert!(super_bytes(false) == 2368 && super_bytes(false).is_multiple_of(32));
const _: () = assert!(super_bytes(true) == 2880 && super_bytes(true).is_multiple_of(32));

/// Bytes of one super-block of one row in the file.
pub(super) const fn block_bytes(fifth: bool) -> usize {
    if fifth {
        size_of::<BlockQ5K>()
    } else {
        size_of::<BlockQ4K>()
    }
}

/// Bytes of one group of rows of `row_bytes` bytes each.
pub(super) fn group_bytes(fifth: bool, row_bytes: usize) -> usize {
    (row_bytes / block_bytes(fifth) * super_bytes(fifth)).next_multiple_of(64)
}

/// One super-block of one row, as the layout stores it.
struct Unpacked {
    d: [u8; 2],
    dmin: [u8; 2],
    /// The eight scales, then the eight minimums.
    scales_and_mins: [u8; 16],
    /// The codes in element order, below 32.
    codes: [u8; QK_K],
}

/// The super-blocks of one file row.
fn unpacked(fifth: bool, row: &[u8]) -> Vec<Unpacked> {
    if fifth {
        let blocks = as_blocks::<BlockQ5K>(row).iter();
        blocks
            .map(|b| Unpacked {
                d: b.d,
                dmin: b.dmin,
                scales_and_mins: b.scales_and_mins(),
                codes: b.codes(),
            })
            .collect()
    } else {
        let blocks = as_blocks::<BlockQ4K>(row).iter();
        blocks
            .map(|b| Unpacked {
                d: b.d,
                dmin: b.dmin,
                scales_and_mins: b.scales_and_mins(),
                codes: b.codes(),
            })
            .collect()
    }
}

/// Writes the whole rows of `w` interleaved into `out`, whose length the caller has checked.
pub(super) fn interleave(fifth: bool, w: &[u8], row_bytes: usize, out: &mut [u8]) {
    let (group, size, floats) =
        (group_bytes(fifth, row_bytes), super_bytes(fifth), floats_at(fifth));
    for (r, row) in w.chunks_exact(row_bytes).enumerate() {
        let out = &mut out[r / GROUP_ROWS * group..][..group];
        let lane = r % GROUP_ROWS;
        for (b, block) in unpacked(fifth, row).iter().enumerate() {
            let out = &mut out[size * b..][..size];
            for j in 0..SUB_BLOCKS {
                out[scale_offset(j, lane)] = block.scales_and_mins[j];
                out[scale_offset(j, lane) + MINS] = block.scales_and_mins[j + 8];
            }
            for (i, &q) in block.codes.iter().enumerate() {
                let (j, high, c, e) = element_place(i);
                out[code_offset(j, c, lane) + e] |= (q & 0x0F) << (4 * high);
                if q >> 4 != 0 {
                    let bit = 4 * (lane % HALF_ROWS) + e;
                    out[fifth_offset(j, c, high, lane) + bit / 8] |= 1 << (bit % 8);
                }
            }
            out[floats + 2 * lane..][..2].copy_from_slice(&block.d);
            out[floats + 2 * GROUP_ROWS + 2 * lane..][..2].copy_from_slice(&block.dmin);
        }
    }
}

/// Dequantizes row `lane` of `group` into `out` (whole super-blocks) as the file row
/// dequantizes.
pub(super) fn dequantize_row(fifth: bool, group: &[u8], lane: usize, out: &mut [f32]) {
    let (size, floats) = (super_bytes(fifth), floats_at(fifth));
    for (b, out) in out.chunks_exact_mut(QK_K).enumerate() {
        let block = &group[size * b..][..size];
        let sm = std::array::from_fn(|k| block[scale_offset(k % 8, lane) + MINS * (k / 8)]);
        let codes = std::array::from_fn(|i| {
            let (j, high, c, e) = element_place(i);
            let low = (block[code_offset(j, c, lane) + e] >> (4 * high)) & 0x0F;
            if !fifth {
                return low;
            }
            let bit = 4 * (lane % HALF_ROWS) + e;
            let mask = &block[fifth_offset(j, c, high, lane)..][..4];
            low | ((mask[bit / 8] >> (bit % 8)) & 1) << 4
        });
        let f16 = |at: usize| half::f16::from_le_bytes([block[at], block[at + 1]]).to_f32();
        let (d, dmin) = (f16(floats + 2 * lane), f16(floats + 2 * GROUP_ROWS + 2 * lane));
        crate::dequant::k_sub_blocks(d, dmin, &sm, &codes, out);
    }
}

/// Where element `i` of a super-block goes: its sub-block `j`, whether it is a high nibble,
/// its chunk `c` and its byte `e` within the chunk.
fn element_place(i: usize) -> (usize, usize, usize, usize) {
    let (j, k) = (i / 32, i % 32);
    (j, k / 16, k % 16 / 4, k % 4)
}

/// Where row `lane`'s scale of sub-block `j` lies in its super-block (its minimum lies
/// [`MINS`] bytes on).
fn scale_offset(j: usize, lane: usize) -> usize {
    HALF_SCALES * (lane / HALF_ROWS) + 2 * HALF_ROWS * (j / 2) + 2 * (lane % HALF_ROWS) + j % 2
}

/// Where row `lane`'s 4 bytes of chunk `c` of sub-block `j` lie in their super-block.
fn code_offset(j: usize, c: usize, lane: usize) -> usize {
    CODES + HALF_CODES * (lane / HALF_ROWS) + SUB_CODES * j + 32 * c + 4 * (lane % HALF_ROWS)
}

/// Where the u32 mask of fifth bits of chunk `c` of sub-block `j` lies for row `lane`'s half
/// group, for the low nibbles or (`high` = 1) the high ones.
fn fifth_offset(j: usize, c: usize, high: usize, lane: usize) -> usize {
    FIFTHS + HALF_FIFTHS * (lane / HALF_ROWS) + SUB_FIFTHS * j + 8 * c + 4 * high
}

/// The scalar twin, Q4_K: row by row, super-block by super-block, two fused multiply-adds
/// each.
pub(super) fn scalar_q4_k(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
    scalar::<false>(w, row_bytes, input, out);
}

/// The scalar twin, Q5_K.
pub(super) fn scalar_q5_k(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
    scalar::<true>(w, row_bytes, input, out);
}

fn scalar<const FIFTH: bool>(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
    let layout = (group_bytes(FIFTH, row_bytes), row_bytes / block_bytes(FIFTH));
    let xq = (input.q8k_all(), input.n());
    scalar_rows(w, layout, xq, out, |group, lane, _, a| row_dot::<FIFTH>(group, lane, a));
}

/// Row `lane` of `group` times the activation blocks `a`.
fn row_dot<const FIFTH: bool>(group: &[u8], lane: usize, a: &[BlockQ8K]) -> f32 {
    let (size, floats) = (super_bytes(FIFTH), floats_at(FIFTH));
    let (mut acc, mut acc_min) = (0.0f32, 0.0f32);
    for (b, a) in a.iter().enumerate() {
        let block = &group[size * b..][..size];
        let f16 = |at: usize| half::f16::from_le_bytes([block[at], block[at + 1]]).to_f32();
        let (mut s, mut m) = (0i32, 0i32);
        for j in 0..SUB_BLOCKS {
            let mut sumi = 0i32;
            for (k, x) in a.qs[32 * j..32 * j + 32].iter().enumerate() {
                let (high, c, e) = (k / 16, k % 16 / 4, k % 4);
                let mut q = (block[code_offset(j, c, lane) + e] >> (4 * high)) & 0x0F;
                if FIFTH {
                    let bit = 4 * (lane % HALF_ROWS) + e;
                    let mask = &block[fifth_offset(j, c, high, lane)..][..4];
                    q |= ((mask[bit / 8] >> (bit % 8)) & 1) << 4;
                }
                sumi += i32::from(q) * i32::from(*x);
            }
            // Exact (see the module docs for the bounds).
            s += i32::from(block[scale_offset(j, lane)]) * sumi;
            let min = i32::from(block[scale_offset(j, lane) + MINS]);
            m += min * (i32::from(a.bsums[2 * j]) + i32::from(a.bsums[2 * j + 1]));
        }
        acc = (s as f32).mul_add(f16(floats + 2 * lane) * a.d, acc);
        acc_min = (m as f32).mul_add(f16(floats + 2 * GROUP_ROWS + 2 * lane) * a.d, acc_min);
    }
    acc - acc_min
}
