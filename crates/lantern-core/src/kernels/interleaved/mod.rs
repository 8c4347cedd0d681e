//! Weight rows interleaved at load time, so that one vector register holds a piece of each of
//! several rows and the integer products land one row per lane.
//!
//! The file layout keeps each row's blocks together, so a kernel that takes its products a
//! row at a time must fold each block's lanes into one sum per row before it can scale it: a
//! horizontal add per block and row. Interleaved, the same products arrive one row per lane
//! and are scaled as they are: one conversion and one fused multiply-add per block for a
//! whole group of rows.
//!
//! # Layouts
//! - `offset`: Q4_0 and Q5_0, one fused multiply-add per block and row: Q4_0 gives the file
//!   layout's bits, Q5_0 differs from its file kernels (ggml's eight lanes) by rounding.
//! - `q3_k`: Q3_K, one fused multiply-add per super-block and row, in the order of the file
//!   layout's Q3_K kernels, so that both give the same bits.
//! - `q4_k`: Q4_K and Q5_K, two fused multiply-adds per super-block and row (codes and
//!   minimums, in running sums of their own), in the order of the file layout's kernels:
//!   both give their bits.
//! - `q6_k`: Q6_K, one fused multiply-add per super-block and row, in the order of the file
//!   layout's kernels: the same bits.
//! - `q8_0`: Q8_0, one fused multiply-add per block and row, codes stored plus 128, in the
//!   order of the file layout's kernels: the same bits.
//! - `iq4_xs`: IQ4_XS, one fused multiply-add per super-block and row, in the order of the
//!   file layout's IQ4_XS kernels: the same bits.
//! - `iq4_nl`: IQ4_NL in Q4_0's layout, one fused multiply-add per block and row, as the file
//!   layout's IQ4_NL kernels: the same bits.
//!
//! So a matrix gives the same results whether its rows are read interleaved (resident
//! weights on x86) or from the file (streamed layers, the scalar path, ranges that start
//! inside a group), for every format here but Q5_0.

use super::{Isa, MatmulFn};
use crate::GgmlType;

#[cfg(target_arch = "x86_64")]
mod avx2;
mod iq4_nl;
mod iq4_xs;
mod offset;
mod q3_k;
mod q4_k;
mod q6_k;
mod q8_0;

use offset::Offset;

/// Rows per interleaved group, in every layout.
pub const GROUP_ROWS: usize = 16;

/// The interleaved layouts.
#[derive(Clone, Copy)]
enum Layout {
    /// Q4_0 or Q5_0.
    Offset(Offset),
    /// Q3_K.
    Q3K,
    /// Q4_K or, with fifth bits, Q5_K.
    K4 { fifth: bool },
    /// Q6_K.
    Q6K,
    /// Q8_0.
    Q8_0,
    /// IQ4_XS.
    Iq4Xs,
    /// IQ4_NL.
    Iq4Nl,
}

impl Layout {
    /// The layout of `ty`, if it interleaves.
    fn of(ty: GgmlType) -> Option<Self> {
        Some(match ty {
            GgmlType::Q4_0 => Self::Offset(Offset::Q4_0),
            GgmlType::Q5_0 => Self::Offset(Offset::Q5_0),
            GgmlType::Q3_K => Self::Q3K,
            GgmlType::Q4_K => Self::K4 { fifth: false },
            GgmlType::Q5_K => Self::K4 { fifth: true },
            GgmlType::Q6_K => Self::Q6K,
            GgmlType::Q8_0 => Self::Q8_0,
            GgmlType::IQ4_XS => Self::Iq4Xs,
            GgmlType::IQ4_NL => Self::Iq4Nl,
            _ => return None,
        })
    }
}

/// Whether tensors of type `ty` can be interleaved.
pub fn interleaves(ty: GgmlType) -> bool {
    Layout::of(ty).is_some()
}

/// Bytes of one group of interleaved rows of type `ty`, `row_bytes` bytes each (0 when `ty`
/// does not interleave). A multiple of 64, so that every group starts on a cache line.
pub fn group_bytes(ty: GgmlType, row_bytes: usize) -> usize {
    match Layout::of(ty) {
        Some(Layout::Offset(format)) => format.group_bytes(row_bytes),
        Some(Layout::Q3K) => q3_k::group_bytes(row_bytes),
        Some(Layout::K4 { fifth }) => q4_k::group_bytes(fifth, row_bytes),
        Some(Layout::Q6K) => q6_k::group_bytes(row_bytes),
        Some(Layout::Q8_0) => q8_0::group_bytes(row_bytes),
        Some(Layout::Iq4Xs) => iq4_xs::group_bytes(row_bytes),
        Some(Layout::Iq4Nl) => iq4_nl::group_bytes(row_bytes),
        None => 0,
    }
}

/// Writes the whole rows of `w` (`row_bytes` each, type `ty`) interleaved into `out`, which
/// must hold `rows.div_ceil(GROUP_ROWS) · group_bytes(ty, row_bytes)` bytes and start zeroed.
///
/// Returns `false`, writing nothing, when `ty` does not interleave or `out` has the wrong
/// length.
pub fn interleave(ty: GgmlType, w: &[u8], row_bytes: usize, out: &mut [u8]) -> bool {
    let group = group_bytes(ty, row_bytes);
    if group == 0
        || row_bytes == 0
        || out.len() != (w.len() / row_bytes).div_ceil(GROUP_ROWS) * group
    {
        return false;
    }
    match Layout::of(ty) {
        Some(Layout::Offset(format)) => offset::interleave(format, w, row_bytes, out),
        Some(Layout::Q3K) => q3_k::interleave(w, row_bytes, out),
        Some(Layout::K4 { fifth }) => q4_k::interleave(fifth, w, row_bytes, out),
        Some(Layout::Q6K) => q6_k::interleave(w, row_bytes, out),
        Some(Layout::Q8_0) => q8_0::interleave(w, row_bytes, out),
        Some(Layout::Iq4Xs) => iq4_xs::interleave(w, row_bytes, out),
        Some(Layout::Iq4Nl) => iq4_nl::interleave(w, row_bytes, out),
        None => return false,
    }
    true
}

/// Dequantizes row `r` of the rows `w` of type `ty` (`row_bytes` bytes each in the file),
/// [interleaved](interleave), into `out`, with the file rows' arithmetic: the values are the
/// file row's, bit for bit. The file rows need not be read again once interleaved, as the
/// embedding rows of a tied output head need not.
///
/// Returns `false`, writing nothing, when `ty` does not interleave, `w` holds no row `r` or
/// `out` is not one row long.
pub fn dequantize_row(ty: GgmlType, w: &[u8], row_bytes: usize, r: usize, out: &mut [f32]) -> bool {
    let Some(layout) = Layout::of(ty) else { return false };
    let group = group_bytes(ty, row_bytes);
    let (block_bytes, block_len) = match layout {
        Layout::Offset(format) => (format.block_bytes(), crate::QK8),
        Layout::Q3K => (q3_k::BLOCK_BYTES, crate::QK_K),
        Layout::K4 { fifth } => (q4_k::block_bytes(fifth), crate::QK_K),
        Layout::Q6K => (q6_k::BLOCK_BYTES, crate::QK_K),
        Layout::Q8_0 => (q8_0::BLOCK_BYTES, crate::QK8),
        Layout::Iq4Xs => (iq4_xs::BLOCK_BYTES, crate::QK_K),
        Layout::Iq4Nl => (iq4_nl::LAYOUT.block_bytes(), crate::QK8),
    };
    let row_blocks = row_bytes / block_bytes;
    let Some(group_at) = (r / GROUP_ROWS).checked_mul(group) else { return false };
    if group == 0 || w.len() < group_at + group || out.len() != row_blocks * block_len {
        return false;
    }
    let (w, lane) = (&w[group_at..][..group], r % GROUP_ROWS);
    match layout {
        Layout::Offset(format) => offset::dequantize_row(format, w, lane, row_blocks, out),
        Layout::Q3K => q3_k::dequantize_row(w, lane, out),
        Layout::K4 { fifth } => q4_k::dequantize_row(fifth, w, lane, out),
        Layout::Q6K => q6_k::dequantize_row(w, lane, out),
        Layout::Q8_0 => q8_0::dequantize_row(w, lane, row_blocks, out),
        Layout::Iq4Xs => iq4_xs::dequantize_row(w, lane, out),
        Layout::Iq4Nl => iq4_nl::dequantize_row(w, lane, row_blocks, out),
    }
    true
}

/// The interleaved kernel for `ty` on path `isa`, or `None` when there is none.
///
/// The kernel meets the [`MatmulFn`] contract with `w` holding whole groups
/// ([`group_bytes`] each) instead of whole rows: it computes the first `out.len() / n` rows
/// of the groups, at most all their rows. K-quant kernels read the input's 256-value blocks
/// ([`Input::with_q8k`](super::Input::with_q8k)), as the file layout's do.
pub fn interleaved_fn_for(ty: GgmlType, isa: Isa) -> Option<MatmulFn> {
    let layout = Layout::of(ty)?;
    if !isa.is_available() {
        return None;
    }
    match (layout, isa) {
        (Layout::Offset(Offset::Q4_0), Isa::Scalar) => Some(offset::scalar_q4_0),
        (Layout::Offset(Offset::Q5_0), Isa::Scalar) => Some(offset::scalar_q5_0),
        (Layout::Q3K, Isa::Scalar) => Some(q3_k::scalar),
        (Layout::K4 { fifth: false }, Isa::Scalar) => Some(q4_k::scalar_q4_k),
        (Layout::K4 { fifth: true }, Isa::Scalar) => Some(q4_k::scalar_q5_k),
        (Layout::Q6K, Isa::Scalar) => Some(q6_k::scalar),
        (Layout::Q8_0, Isa::Scalar) => Some(q8_0::scalar),
        (Layout::Iq4Xs, Isa::Scalar) => Some(iq4_xs::scalar),
        (Layout::Iq4Nl, Isa::Scalar) => Some(iq4_nl::scalar),
        #[cfg(target_arch = "x86_64")]
        (_, Isa::Avx2 | Isa::Avx512Vnni) => Some(avx2::matmul_fn(layout, isa == Isa::Avx512Vnni)),
        _ => None,
    }
}

/// The interleaved kernel of this CPU's fastest path, when that path has one: interleaving
/// pays only where a SIMD kernel reads the groups.
pub fn interleaved_fn(ty: GgmlType) -> Option<MatmulFn> {
    match super::best_isa() {
        Isa::Scalar => None,
        isa => interleaved_fn_for(ty, isa),
    }
}

/// What one call of an interleaved kernel covers: whole groups of `w` (`group` bytes each,
/// rows of `row_blocks` blocks), the blocks that rows and inputs (`stride` blocks each) both
/// hold, and the rows that fit `out`.
fn extent(
    w: &[u8],
    group: usize,
    row_blocks: usize,
    stride: usize,
    n: usize,
    out: &[f32],
) -> Extent {
    let groups = w.len().checked_div(group).unwrap_or(0);
    Extent {
        group,
        row_blocks,
        blocks: row_blocks.min(stride),
        rows: (groups * GROUP_ROWS).min(out.len().checked_div(n).unwrap_or(0)),
    }
}

/// The scalar twins' loop: for each row the groups of `w` hold and `out` takes, and each of
/// the `n` inputs of `xq`, `row_dot(group, lane, row_blocks, a)` with the row's group and
/// lane and the input's blocks `a`, over what [`extent`] says one call covers (`group`
/// bytes per group, rows of `row_blocks` blocks).
fn scalar_rows<B>(
    w: &[u8],
    (group, row_blocks): (usize, usize),
    (xq, n): (&[B], usize),
    out: &mut [f32],
    row_dot: impl Fn(&[u8], usize, usize, &[B]) -> f32,
) {
    let Some(stride) = xq.len().checked_div(n) else { return };
    let e = extent(w, group, row_blocks, stride, n, out);
    for r in 0..e.rows {
        let group = &w[r / GROUP_ROWS * e.group..][..e.group];
        for t in 0..n {
            let a = &xq[t * stride..][..e.blocks];
            out[t * e.rows + r] = row_dot(group, r % GROUP_ROWS, e.row_blocks, a);
        }
    }
}

/// What one call of an interleaved kernel covers; see [`extent`].
struct Extent {
    /// Bytes per group.
    group: usize,
    /// Blocks per row in the layout, which places the scales after all of them.
    row_blocks: usize,
    /// Blocks to compute.
    blocks: usize,
    /// Rows to compute.
    rows: usize,
}
