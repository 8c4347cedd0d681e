//! Q4_0 and Q5_0 in groups of [`GROUP_ROWS`] interleaved rows: blocks of 32 unsigned codes
//! with a fixed offset (Q4_0: q − 8 with 4-bit q; Q5_0: q − 16 with 5-bit q) and an f16 scale.
//!
//! # Layout
//! Rows are taken 16 at a time, the last group padded with zero rows, as two halves of 8
//! rows. For rows of `B` blocks, a group holds, in order:
//! - the codes' low four bits: for each block `b`, each 4-byte chunk `c < 4` of its 16 bytes
//!   of nibbles and each half `h`, the half's 8 rows' chunks side by side (32 bytes at
//!   `256·b + 64·c + 32·h`). Loaded into a register, i32 lane `r` holds row `8h + r`'s
//!   elements `4c..4c + 4` in its low nibbles and elements `16 + 4c..16 + 4c + 4` in its high
//!   nibbles;
//! - Q5_0 only, the fifth bits: for each block `b`, chunk `c` and half `h`, two little-endian
//!   u32 at `256·B + 64·b + 16·c + 8·h`. Bit `4r + i` of the first is the fifth bit of row
//!   `8h + r`'s element `4c + i`, of the second that of element `16 + 4c + i`: a mask over
//!   the bytes of the chunk's register, which AVX-512 applies as it is;
//! - the scales: for each block, the 16 rows' f16 `d` in row order (32 bytes each);
//! - zeros up to a multiple of 64 bytes, so that every group starts on a cache line.
//!
//! Each stream (codes, fifth bits, scales) is read in whole cache lines.
//!
//! # Math
//! One fused multiply-add per block and row, `(d_w·d_a)·Σ(q − offset)·q_a`. For Q4_0 this is
//! the arithmetic of its file-layout kernels and of llama.cpp's repacked Q4_0, so interleaved
//! rows give the same bits. For Q5_0 it is not: the file layout keeps ggml's eight lanes per
//! row, bit for bit with llama.cpp's AVX2 build, while interleaved rows round once per block
//! and so differ from them by float rounding.

use super::{scalar_rows, GROUP_ROWS};
use crate::kernels::Input;
use crate::{BlockQ8, QK8};

/// Rows per half group: one 256-bit register's i32 lanes.
pub(super) const HALF_ROWS: usize = GROUP_ROWS / 2;
/// Bytes of nibbles of one block of [`GROUP_ROWS`] rows.
pub(super) const GROUP_CODES: usize = GROUP_ROWS * QK8 / 2;
/// Bytes of fifth bits of one block of [`GROUP_ROWS`] rows (Q5_0).
const GROUP_FIFTHS: usize = GROUP_ROWS * QK8 / 8;
/// Bytes of scales of one block of [`GROUP_ROWS`] rows.
pub(super) const GROUP_SCALES: usize = GROUP_ROWS * 2;

/// A format of blocks of offset codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Offset {
    /// `block_q4_0`: f16 d, 16 bytes of nibbles.
    Q4_0,
    /// `block_q5_0`: f16 d, u32 of fifth bits, 16 bytes of nibbles.
    Q5_0,
}

impl Offset {
    /// Bytes of one block in the file.
    pub(super) const fn block_bytes(self) -> usize {
        match self {
            Self::Q4_0 => 18,
            Self::Q5_0 => 22,
        }
    }

    /// The offset taken off every code.
    pub(super) const fn offset(self) -> i32 {
        match self {
            Self::Q4_0 => 8,
            Self::Q5_0 => 16,
        }
    }

    /// Bytes of fifth bits per block of a group.
    const fn fifth_bytes(self) -> usize {
        match self {
            Self::Q4_0 => 0,
            Self::Q5_0 => GROUP_FIFTHS,
        }
    }

    /// Bytes of one group of rows of `row_bytes` bytes each.
    pub(super) fn group_bytes(self, row_bytes: usize) -> usize {
        let blocks = row_bytes / self.block_bytes();
        (blocks * (GROUP_CODES + self.fifth_bytes() + GROUP_SCALES)).next_multiple_of(64)
    }

    /// Where a group's fifth bits start, for rows of `row_blocks` blocks.
    pub(super) fn fifths_at(self, row_blocks: usize) -> usize {
        GROUP_CODES * row_blocks
    }

    /// Where a group's scales start, for rows of `row_blocks` blocks.
    pub(super) fn scales_at(self, row_blocks: usize) -> usize {
        (GROUP_CODES + self.fifth_bytes()) * row_blocks
    }
}

/// Writes the whole rows of `w` interleaved into `out`, whose length the caller has checked
/// and which starts zeroed.
pub(super) fn interleave(format: Offset, w: &[u8], row_bytes: usize, out: &mut [u8]) {
    let block_bytes = format.block_bytes();
    let blocks = row_bytes / block_bytes;
    let group = format.group_bytes(row_bytes);
    for (r, row) in w.chunks_exact(row_bytes).enumerate() {
        let out = &mut out[r / GROUP_ROWS * group..][..group];
        let lane = r % GROUP_ROWS;
        let (half, r) = (lane / HALF_ROWS, lane % HALF_ROWS);
        for (b, block) in row.chunks_exact(block_bytes).enumerate() {
            let qs = &block[block_bytes - QK8 / 2..];
            for (c, chunk) in qs.chunks_exact(4).enumerate() {
                out[GROUP_CODES * b + 64 * c + 32 * half + 4 * r..][..4].copy_from_slice(chunk);
            }
            if format == Offset::Q5_0 {
                let qh = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
                for c in 0..4 {
                    // Elements 4c..4c + 4 and 16 + 4c..16 + 4c + 4, as bits 4r..4r + 4.
                    let masks = [(qh >> (4 * c)) & 0xF, (qh >> (16 + 4 * c)) & 0xF];
                    for (part, mask) in masks.into_iter().enumerate() {
                        let at = format.fifths_at(blocks) + 64 * b + 16 * c + 8 * half + 4 * part;
                        let word = &mut out[at..at + 4];
                        let bits = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
                        word.copy_from_slice(&(bits | mask << (4 * r)).to_le_bytes());
                    }
                }
            }
            let at = format.scales_at(blocks) + GROUP_SCALES * b + 2 * lane;
            out[at..at + 2].copy_from_slice(&block[..2]);
        }
    }
}

/// Dequantizes row `lane` of `group` (rows of `row_blocks` blocks) into `out` (whole blocks)
/// as the file row dequantizes: `(q − offset)·d`.
pub(super) fn dequantize_row(
    format: Offset,
    group: &[u8],
    lane: usize,
    row_blocks: usize,
    out: &mut [f32],
) {
    let (half, r) = (lane / HALF_ROWS, lane % HALF_ROWS);
    for (b, out) in out.chunks_exact_mut(QK8).enumerate() {
        let at = format.scales_at(row_blocks) + GROUP_SCALES * b + 2 * lane;
        let d = half::f16::from_le_bytes([group[at], group[at + 1]]).to_f32();
        for c in 0..4 {
            let chunk = &group[GROUP_CODES * b + 64 * c + 32 * half + 4 * r..][..4];
            let masks = fifth_masks(format, group, row_blocks, b, c, half);
            for (i, &byte) in chunk.iter().enumerate() {
                let fifth = |part: usize| (((masks[part] >> (4 * r + i)) & 1) << 4) as i32;
                let low = i32::from(byte & 0x0F) | fifth(0);
                let high = i32::from(byte >> 4) | fifth(1);
                out[4 * c + i] = (low - format.offset()) as f32 * d;
                out[16 + 4 * c + i] = (high - format.offset()) as f32 * d;
            }
        }
    }
}

/// The scalar twin for `format`: row by row, block by block, one fused multiply-add each.
pub(super) fn scalar(
    format: Offset,
    w: &[u8],
    row_bytes: usize,
    input: Input<'_>,
    out: &mut [f32],
) {
    let layout = (format.group_bytes(row_bytes), row_bytes / format.block_bytes());
    scalar_rows(w, layout, (input.q8_all(), input.n()), out, |group, lane, row_blocks, a| {
        row_dot(format, group, lane, row_blocks, a)
    });
}

/// The scalar twin of the Q4_0 layout.
pub(super) fn scalar_q4_0(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
    scalar(Offset::Q4_0, w, row_bytes, input, out);
}

/// The scalar twin of the Q5_0 layout.
pub(super) fn scalar_q5_0(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
    scalar(Offset::Q5_0, w, row_bytes, input, out);
}

/// Row `lane` of `group` times the activation blocks `a`.
fn row_dot(format: Offset, group: &[u8], lane: usize, row_blocks: usize, a: &[BlockQ8]) -> f32 {
    let (half, r) = (lane / HALF_ROWS, lane % HALF_ROWS);
    let mut sum = 0.0f32;
    for (b, a) in a.iter().enumerate() {
        let mut sumi = 0i32;
        for c in 0..4 {
            let chunk = &group[GROUP_CODES * b + 64 * c + 32 * half + 4 * r..][..4];
            let masks = fifth_masks(format, group, row_blocks, b, c, half);
            for (i, &byte) in chunk.iter().enumerate() {
                let fifth = |part: usize| (((masks[part] >> (4 * r + i)) & 1) << 4) as i32;
                let low = (i32::from(byte & 0x0F) | fifth(0)) - format.offset();
                let high = (i32::from(byte >> 4) | fifth(1)) - format.offset();
                sumi += low * i32::from(a.qs[4 * c + i]) + high * i32::from(a.qs[16 + 4 * c + i]);
            }
        }
        let at = format.scales_at(row_blocks) + GROUP_SCALES * b + 2 * lane;
        let d = half::f16::from_le_bytes([group[at], group[at + 1]]).to_f32();
        sum = (d * a.d).mul_add(sumi as f32, sum);
    }
    sum
}

/// The masks of fifth bits of chunk `c` of block `b` for half group `half`, for the low
/// nibbles and the high ones (zero for Q4_0).
fn fifth_masks(
    format: Offset,
    group: &[u8],
    row_blocks: usize,
    b: usize,
    c: usize,
    half: usize,
) -> [u32; 2] {
    if format == Offset::Q4_0 {
        return [0; 2];
    }
    std::array::from_fn(|part| {
        let at = format.fifths_at(row_blocks) + 64 * b + 16 * c + 8 * half + 4 * part;
        u32::from_le_bytes([group[at], group[at + 1], group[at + 2], group[at + 3]])
    })
}
