//! Q8_0 in groups of [`GROUP_ROWS`] interleaved rows: blocks of 32 signed 8-bit codes `q`
//! with an f16 scale `d` (ggml `block_q8_0`).
//!
//! # Layout
//! Rows are taken 16 at a time, the last group padded with zero rows, as two halves of 8
//! rows. For rows of `B` blocks, a group holds, in order:
//! - the codes, each stored as `q + 128` (an unsigned byte): for each block `b`, each 4-byte
//!   chunk `c < 8` of its 32 codes and each half `h`, the half's 8 rows' chunks side by side
//!   (32 bytes at `512·b + 64·c + 32·h`). Loaded into a register, i32 lane `r` holds row
//!   `8h + r`'s elements `4c..4c + 4`;
//! - the scales: for each block, the 16 rows' f16 `d` in row order (32 bytes at
//!   `512·B + 32·b`);
//! - zeros up to a multiple of 64 bytes, so that every group starts on a cache line.
//!
//! Each stream (codes, scales) is read in whole cache lines. A group holds the file's bytes
//! (16 rows × 34 per block) plus at most 63 of padding.
//!
//! # Math
//! One fused multiply-add per block and row, `(d_w·d_a)·Σ q·q_a`, the integer sum exact: the
//! arithmetic of the file layout's Q8_0 kernels, so that interleaved rows give the file rows'
//! bits. ggml's `ggml_vec_dot_q8_0_q8_0` keeps eight f32 lanes per row instead and adds them
//! at the end, so both layouts differ from llama.cpp's AVX2 build by float rounding. Kept in
//! ggml's lanes, the interleaved kernel would do the file layout's float work per product and
//! gain nothing.
//!
//! # Why `q + 128`
//! Byte products take one operand unsigned (`vpdpbusd`, `maddubs`), and both `q` and `q_a`
//! are signed. With the codes stored unsigned, `Σ q·q_a = Σ (q + 128)·q_a − 128·Σ q_a`: the
//! VNNI path adds one `vpdpbusd` per register and input and starts each block's sum at
//! `−128·Σ q_a`, which the activation block carries (`BlockQ8::sum`). The alternatives cost
//! more per product: ggml's `mul_sum_i8_pairs` (`|q|` times `q_a` with `q`'s sign) a sign
//! operation per register and input, and `(q_a + 128)·q − 128·Σ q` a sum of the weights per
//! register and block besides. On the AVX2 path `maddubs` would saturate the i16 pairs of
//! `(q + 128)·q_a`, which reach `2·255·127`, so it takes ggml's form, recovering `q` with one
//! `xor` per register that all inputs share. The x86 kernel's module docs (`avx2/q8_0.rs`)
//! give the measurements.

use super::{scalar_rows, GROUP_ROWS};
use crate::kernels::Input;
use crate::{BlockQ8, QK8};

/// Rows per half group: one 256-bit register's i32 lanes.
pub(super) const HALF_ROWS: usize = GROUP_ROWS / 2;
/// Bytes of one block of one row in the file: the f16 scale and 32 codes.
pub(super) const BLOCK_BYTES: usize = 2 + QK8;
/// Bytes of codes of one block of [`GROUP_ROWS`] rows.
pub(super) const GROUP_CODES: usize = GROUP_ROWS * QK8;
/// Bytes of scales of one block of [`GROUP_ROWS`] rows.
pub(super) const GROUP_SCALES: usize = GROUP_ROWS * 2;
/// Chunks of 4 codes per block: the registers per block and half group.
pub(super) const CHUNKS: usize = QK8 / 4;
/// What the stored codes add to the file's.
pub(super) const CODE_OFFSET: i32 = 128;

/// Bytes of one group of rows of `row_bytes` bytes each.
pub(super) fn group_bytes(row_bytes: usize) -> usize {
    (row_bytes / BLOCK_BYTES * (GROUP_CODES + GROUP_SCALES)).next_multiple_of(64)
}

/// Where a group's scales start, for rows of `row_blocks` blocks.
pub(super) fn scales_at(row_blocks: usize) -> usize {
    GROUP_CODES * row_blocks
}

/// Writes the whole rows of `w` interleaved into `out`, whose length the caller has checked.
pub(super) fn interleave(w: &[u8], row_bytes: usize, out: &mut [u8]) {
    let blocks = row_bytes / BLOCK_BYTES;
    let group = group_bytes(row_bytes);
    for (r, row) in w.chunks_exact(row_bytes).enumerate() {
        let out = &mut out[r / GROUP_ROWS * group..][..group];
        let lane = r % GROUP_ROWS;
        let (half, r) = (lane / HALF_ROWS, lane % HALF_ROWS);
        for (b, block) in row.chunks_exact(BLOCK_BYTES).take(blocks).enumerate() {
            for (c, chunk) in block[2..].chunks_exact(4).enumerate() {
                let at = GROUP_CODES * b + 64 * c + 32 * half + 4 * r;
                for (o, &q) in out[at..at + 4].iter_mut().zip(chunk) {
                    // q + 128 as an unsigned byte.
                    *o = q ^ 0x80;
                }
            }
            let at = scales_at(blocks) + GROUP_SCALES * b + 2 * lane;
            out[at..at + 2].copy_from_slice(&block[..2]);
        }
    }
}

/// Dequantizes row `lane` of `group` (rows of `row_blocks` blocks) into `out` (whole blocks)
/// as the file row dequantizes: `q·d`.
pub(super) fn dequantize_row(group: &[u8], lane: usize, row_blocks: usize, out: &mut [f32]) {
    let (half, r) = (lane / HALF_ROWS, lane % HALF_ROWS);
    for (b, out) in out.chunks_exact_mut(QK8).enumerate() {
        let at = scales_at(row_blocks) + GROUP_SCALES * b + 2 * lane;
        let d = half::f16::from_le_bytes([group[at], group[at + 1]]).to_f32();
        for (c, out) in out.chunks_exact_mut(4).enumerate() {
            let chunk = &group[GROUP_CODES * b + 64 * c + 32 * half + 4 * r..][..4];
            for (o, &u) in out.iter_mut().zip(chunk) {
                *o = f32::from((u ^ 0x80) as i8) * d;
            }
        }
    }
}

/// The scalar twin: row by row, block by block, one fused multiply-add each.
pub(super) fn scalar(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
    let layout = (group_bytes(row_bytes), row_bytes / BLOCK_BYTES);
    scalar_rows(w, layout, (input.q8_all(), input.n()), out, row_dot);
}

/// Row `lane` of `group` times the activation blocks `a`.
fn row_dot(group: &[u8], lane: usize, row_blocks: usize, a: &[BlockQ8]) -> f32 {
    let (half, r) = (lane / HALF_ROWS, lane % HALF_ROWS);
    let mut sum = 0.0f32;
    for (b, a) in a.iter().enumerate() {
        let mut sumi = 0i32;
        for c in 0..CHUNKS {
            let chunk = &group[GROUP_CODES * b + 64 * c + 32 * half + 4 * r..][..4];
            for (&u, &x) in chunk.iter().zip(&a.qs[4 * c..4 * c + 4]) {
                sumi += (i32::from(u) - CODE_OFFSET) * i32::from(x);
            }
        }
        let at = scales_at(row_blocks) + GROUP_SCALES * b + 2 * lane;
        let d = half::f16::from_le_bytes([group[at], group[at + 1]]).to_f32();
        sum = (d * a.d).mul_add(sumi as f32, sum);
    }
    sum
}
