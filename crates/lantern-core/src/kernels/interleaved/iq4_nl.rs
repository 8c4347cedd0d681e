//! IQ4_NL in groups of [`GROUP_ROWS`] interleaved rows: blocks of 32 codes (4 bits) that index
//! the codebook `v` ([`IQ4NL_VALUES`]) under an f16 scale `d`: value = d·v[q] (ggml
//! `block_iq4_nl`).
//!
//! # Layout
//! Q4_0's ([`offset`](super::offset)): an IQ4_NL block has Q4_0's bytes (`d`, then 16 bytes
//! of nibbles in the same order), so it interleaves as they do. Only the kernels differ: they
//! look the codes up in the codebook with one byte shuffle per register rather than take 8
//! off them.
//!
//! # Math
//! One fused multiply-add per block and row, `sum = (d_w·d_a)·Σ v[q]·q_a + sum`, the integer
//! sum exact (`|Σ v[q]·q_a| ≤ 32·127·128 < 2^20`, or `32·241·128` for a kernel that takes the
//! codes as `v + 128` before it subtracts `128·Σ q_a`): the arithmetic of the file layout's
//! IQ4_NL kernels (see [`iquants`](crate::kernels::iquants)), so interleaved rows give the file
//! rows' bits.

use super::offset::{Offset, GROUP_CODES, GROUP_SCALES, HALF_ROWS};
use super::scalar_rows;
use crate::kernels::Input;
use crate::{BlockQ8, IQ4NL_VALUES, QK8};

/// The layout whose bytes IQ4_NL's share.
pub(super) const LAYOUT: Offset = Offset::Q4_0;

/// Bytes of one group of rows of `row_bytes` bytes each.
pub(super) fn group_bytes(row_bytes: usize) -> usize {
    LAYOUT.group_bytes(row_bytes)
}

/// Writes the whole rows of `w` interleaved into `out`, whose length the caller has checked
/// and which starts zeroed.
pub(super) fn interleave(w: &[u8], row_bytes: usize, out: &mut [u8]) {
    super::offset::interleave(LAYOUT, w, row_bytes, out);
}

/// Dequantizes row `lane` of `group` (rows of `row_blocks` blocks) into `out` (whole blocks)
/// as the file row dequantizes: `d·v[q]`.
pub(super) fn dequantize_row(group: &[u8], lane: usize, row_blocks: usize, out: &mut [f32]) {
    let (half, r) = (lane / HALF_ROWS, lane % HALF_ROWS);
    for (b, out) in out.chunks_exact_mut(QK8).enumerate() {
        let at = LAYOUT.scales_at(row_blocks) + GROUP_SCALES * b + 2 * lane;
        let d = half::f16::from_le_bytes([group[at], group[at + 1]]).to_f32();
        for c in 0..4 {
            let chunk = &group[GROUP_CODES * b + 64 * c + 32 * half + 4 * r..][..4];
            for (i, &byte) in chunk.iter().enumerate() {
                out[4 * c + i] = d * f32::from(IQ4NL_VALUES[usize::from(byte & 0x0F)]);
                out[16 + 4 * c + i] = d * f32::from(IQ4NL_VALUES[usize::from(byte >> 4)]);
            }
        }
    }
}

/// The scalar twin: row by row, block by block, one fused multiply-add each.
pub(super) fn scalar(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
    let layout = (group_bytes(row_bytes), row_bytes / LAYOUT.block_bytes());
    scalar_rows(w, layout, (input.q8_all(), input.n()), out, row_dot);
}

/// Row `lane` of `group` times the activation blocks `a`.
fn row_dot(group: &[u8], lane: usize, row_blocks: usize, a: &[BlockQ8]) -> f32 {
    let (half, r) = (lane / HALF_ROWS, lane % HALF_ROWS);
    let value = |code: u8| i32::from(IQ4NL_VALUES[usize::from(code)]);
    let mut sum = 0.0f32;
    for (b, a) in a.iter().enumerate() {
        let mut sumi = 0i32;
        for c in 0..4 {
            let chunk = &group[GROUP_CODES * b + 64 * c + 32 * half + 4 * r..][..4];
            for (i, &byte) in chunk.iter().enumerate() {
                sumi += value(byte & 0x0F) * i32::from(a.qs[4 * c + i])
                    + value(byte >> 4) * i32::from(a.qs[16 + 4 * c + i]);
            }
        }
        let at = LAYOUT.scales_at(row_blocks) + GROUP_SCALES * b + 2 * lane;
        let d = half::f16::from_le_bytes([group[at], group[at + 1]]).to_f32();
        sum = (d * a.d).mul_add(sumi as f32, sum);
    }
    sum
}
