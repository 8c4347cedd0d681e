//! Q4_0 in groups of [`GROUP_ROWS`] interleaved rows.
//!
//! # Layout
//! Rows are taken 16 at a time, the last group padded with zero rows, as two halves of 8
//! rows. For rows of `B` blocks, a group holds, in order:
//! - the codes: for each block `b`, each 4-byte chunk `c < 4` of its 16 bytes of nibbles and
//!   each half `h`, the half's 8 rows' chunks side by side (32 bytes at `256·b + 64·c + 32·h`).
//!   Loaded into a register, i32 lane `r` holds row `8h + r`'s elements `4c..4c + 4` in its
//!   low nibbles and elements `16 + 4c..16 + 4c + 4` in its high nibbles;
//! - the scales: for each block, the 16 rows' f16 `d` in row order (32 bytes at
//!   `256·B + 32·b`);
//! - zeros up to a multiple of 64 bytes, so that every group starts on a cache line.
//!
//! A group is read as two streams, codes and scales, each chunk a whole cache line.
//!
//! # Math
//! One fused multiply-add per block and row, `(d_w·d_a)·Σ(q − 8)·q_a`, as the file layout's
//! Q4_0 kernels compute it: an interleaved tensor gives the same bits as its file rows.

use super::{extent, GROUP_ROWS};
use crate::kernels::Input;
use crate::{BlockQ4_0, BlockQ8, QK8};

/// Rows per half group: one 256-bit register's i32 lanes.
const HALF_ROWS: usize = GROUP_ROWS / 2;

/// Bytes of one Q4_0 block: f16 scale and 16 bytes of nibbles.
pub(super) const BLOCK_BYTES: usize = std::mem::size_of::<BlockQ4_0>();
/// Bytes of nibbles of one block of [`GROUP_ROWS`] rows.
const GROUP_CODES: usize = GROUP_ROWS * QK8 / 2;
/// Bytes of scales of one block of [`GROUP_ROWS`] rows.
const GROUP_SCALES: usize = GROUP_ROWS * 2;

/// Bytes of one group of rows of `row_bytes` bytes each.
pub(super) fn group_bytes(row_bytes: usize) -> usize {
    let blocks = row_bytes / BLOCK_BYTES;
    (blocks * (GROUP_CODES + GROUP_SCALES)).next_multiple_of(64)
}

/// Writes the whole rows of `w` interleaved into `out`, whose length the caller has checked.
pub(super) fn interleave(w: &[u8], row_bytes: usize, out: &mut [u8]) {
    let blocks = row_bytes / BLOCK_BYTES;
    let group = group_bytes(row_bytes);
    for (r, row) in w.chunks_exact(row_bytes).enumerate() {
        let out = &mut out[r / GROUP_ROWS * group..][..group];
        let lane = r % GROUP_ROWS;
        for (b, block) in crate::kernels::blocks::<BlockQ4_0>(row).iter().enumerate() {
            for (c, chunk) in block.qs.chunks_exact(4).enumerate() {
                out[code_offset(b, c, lane)..][..4].copy_from_slice(chunk);
            }
            out[GROUP_CODES * blocks + GROUP_SCALES * b + 2 * lane..][..2]
                .copy_from_slice(&block.d);
        }
    }
}

/// Where row `lane`'s chunk `c` of block `b` lies in its group.
fn code_offset(b: usize, c: usize, lane: usize) -> usize {
    GROUP_CODES * b + 64 * c + 32 * (lane / HALF_ROWS) + 4 * (lane % HALF_ROWS)
}

/// The scalar twin: row by row, block by block, one fused multiply-add each.
pub(super) fn scalar(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
    let n = input.n();
    let xq = input.q8_all();
    let Some(stride) = xq.len().checked_div(n) else { return };
    let e = extent(w, group_bytes(row_bytes), row_bytes / BLOCK_BYTES, stride, n, out);
    for r in 0..e.rows {
        let group = &w[r / GROUP_ROWS * e.group..][..e.group];
        let lane = r % GROUP_ROWS;
        for t in 0..n {
            let a = &xq[t * stride..][..e.blocks];
            out[t * e.rows + r] = row_dot(group, lane, e.row_blocks, a);
        }
    }
}

/// Row `lane` of `group` times the activation blocks `a`.
fn row_dot(group: &[u8], lane: usize, row_blocks: usize, a: &[BlockQ8]) -> f32 {
    let mut sum = 0.0f32;
    for (b, a) in a.iter().enumerate() {
        let codes = &group[GROUP_CODES * b..][..GROUP_CODES];
        let d = &group[GROUP_CODES * row_blocks + GROUP_SCALES * b + 2 * lane..][..2];
        let mut sumi = 0i32;
        for c in 0..4 {
            let chunk = &codes[code_offset(0, c, lane)..][..4];
            for (j, &byte) in chunk.iter().enumerate() {
                let low = i32::from(byte & 0x0F) - 8;
                let high = i32::from(byte >> 4) - 8;
                sumi += low * i32::from(a.qs[4 * c + j]) + high * i32::from(a.qs[16 + 4 * c + j]);
            }
        }
        let d = half::f16::from_le_bytes([d[0], d[1]]).to_f32();
        sum = (d * a.d).mul_add(sumi as f32, sum);
    }
    sum
}
