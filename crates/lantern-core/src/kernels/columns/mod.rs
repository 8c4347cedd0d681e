//! Weight matrices stored column by column, for products with sparse inputs: a column whose
//! input is zero is neither read nor computed.
//!
//! In the file layout a block holds 32 columns of one row, so a zero input skips nothing
//! unless all 32 inputs of its block are zero. Here each column's codes over all rows lie
//! together, and a column is read only when its input's 8-bit code is not zero. The FFN's
//! down projection, after activation sparsity has zeroed neurons, reads only the active
//! neurons' columns.
//!
//! # Layout
//! Rows are padded with zero rows to a multiple of [`TILE_ROWS`], `R` in all. For each block
//! of 32 columns, in order:
//! - the `R` rows' f16 scales `d`, then, for Q4_1, their f16 minimums `m`;
//! - each of the block's 32 columns' codes, `R / 2` bytes each: in each tile of 64 rows,
//!   byte `k < 32` holds row `k`'s code in its low nibble and row `32 + k`'s in its high
//!   nibble, so one 32-byte load unpacks into the tile's codes in row order.
//!
//! A block of columns holds exactly the bytes of the file's blocks it came from, rearranged.
//!
//! # Math
//! Row `r` is `Σ_b (d_w·d_a) · Σ_{j: q_a[j] ≠ 0} (q_w[j] − o)·q_a[j]` with one fused
//! multiply-add per block (`o` = 8 for Q4_0, 0 for Q4_1), plus for Q4_1 the chain of
//! `m_w·s_a` fused multiply-adds, added last. The integer sums are exact, so leaving out
//! the columns whose codes are zero changes nothing: the result is that of every column
//! computed, on every path. For Q4_0 it is also the file layout's result bit for bit (both
//! take one fused multiply-add per block and row). Q4_1's file kernels keep ggml's eight
//! lanes per row, which here would cost lane work for every block whatever the sparsity, so
//! Q4_1 columns round once per block instead and differ from the file kernels in the last
//! bits.

use super::Isa;
use crate::{BlockQ8, GgmlType, QK8};

#[cfg(target_arch = "x86_64")]
mod avx2;

/// Rows per tile: columns are packed, and row ranges start, on whole tiles.
pub const TILE_ROWS: usize = 64;

/// Rows `tiles` (whole tiles, the last one possibly cut by `out.len()`) of a column-major
/// matrix `w` times the input blocks `x`, into `out[r − 64·tiles.start]`.
///
/// `padded_rows` is the matrix's row count rounded up to whole tiles. Blocks past the end of
/// `w` or of `x` are not computed, and rows past `out` not written: mismatched lengths never
/// read or write out of bounds.
pub type ColumnFn =
    fn(w: &[u8], padded_rows: usize, x: &[BlockQ8], first_tile: usize, out: &mut [f32]);

/// A format with a column-major layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// f16 `d`, codes `q − 8`.
    Q4_0,
    /// f16 `d` and `m`, codes `q`.
    Q4_1,
}

impl Format {
    /// The format of `ty`, if it has a column-major layout.
    pub(crate) fn of(ty: GgmlType) -> Option<Self> {
        match ty {
            GgmlType::Q4_0 => Some(Self::Q4_0),
            GgmlType::Q4_1 => Some(Self::Q4_1),
            _ => None,
        }
    }

    /// The format a const parameter names ([`Format`] as `u8`).
    const fn from_u8(f: u8) -> Self {
        if f == Self::Q4_0 as u8 {
            Self::Q4_0
        } else {
            Self::Q4_1
        }
    }

    /// Bytes of a file block.
    const fn file_block_bytes(self) -> usize {
        match self {
            Self::Q4_0 => 18,
            Self::Q4_1 => 20,
        }
    }

    /// The offset taken off every code.
    const fn offset(self) -> i32 {
        match self {
            Self::Q4_0 => 8,
            Self::Q4_1 => 0,
        }
    }

    /// Bytes of scales per row of a block: `d`, and `m` for Q4_1.
    const fn scale_bytes(self) -> usize {
        self.file_block_bytes() - QK8 / 2
    }

    /// Bytes of one block of 32 columns over `padded_rows` rows.
    pub(crate) const fn block_bytes(self, padded_rows: usize) -> usize {
        self.file_block_bytes() * padded_rows
    }
}

/// Bytes of one column's codes in one block, over `padded_rows` rows.
const fn column_bytes(padded_rows: usize) -> usize {
    padded_rows / 2
}

/// Where the codes of column `j` of a block start, within the block.
const fn codes_at(format: Format, padded_rows: usize, j: usize) -> usize {
    format.scale_bytes() * padded_rows + j * column_bytes(padded_rows)
}

/// Writes the file-layout rows `w` (`row_bytes` each, whole blocks of `format`) column-major
/// into `out`, which holds `blocks · block_bytes(padded_rows)` bytes and starts zeroed.
pub(crate) fn transpose(format: Format, w: &[u8], row_bytes: usize, out: &mut [u8]) {
    let file_block = format.file_block_bytes();
    let blocks = row_bytes / file_block;
    let rows = w.len() / row_bytes;
    let padded = rows.next_multiple_of(TILE_ROWS);
    let block_bytes = format.block_bytes(padded);
    for (r, row) in w.chunks_exact(row_bytes).enumerate() {
        let (tile, k) = (r / TILE_ROWS, r % TILE_ROWS);
        let (byte, shift) = (tile * TILE_ROWS / 2 + k % 32, 4 * (k / 32));
        for (b, block) in row.chunks_exact(file_block).take(blocks).enumerate() {
            let out = &mut out[b * block_bytes..][..block_bytes];
            let scales = format.scale_bytes() / 2;
            for s in 0..scales {
                out[(s * padded + r) * 2..][..2].copy_from_slice(&block[2 * s..2 * s + 2]);
            }
            let qs = &block[format.scale_bytes()..];
            for j in 0..QK8 {
                let code = if j < 16 { qs[j] & 0x0F } else { qs[j - 16] >> 4 };
                out[codes_at(format, padded, j) + byte] |= code << shift;
            }
        }
    }
}

/// The column kernel for `ty` on path `isa`, or `None` when there is none.
pub fn column_fn_for(ty: GgmlType, isa: Isa) -> Option<ColumnFn> {
    let format = Format::of(ty)?;
    if !isa.is_available() {
        return None;
    }
    match isa {
        Isa::Scalar => Some(match format {
            Format::Q4_0 => scalar::<{ Format::Q4_0 as u8 }>,
            Format::Q4_1 => scalar::<{ Format::Q4_1 as u8 }>,
        }),
        Isa::Avx2 | Isa::Avx512Vnni => simd_fn(format, isa),
        _ => None,
    }
}

/// The column kernel of this CPU's fastest path for `ty`, when that path has one: a path
/// without one computes sparse inputs faster in the file layout.
pub fn column_fn(ty: GgmlType) -> Option<ColumnFn> {
    column_fn_for(ty, super::best_isa())
}

#[cfg(target_arch = "x86_64")]
fn simd_fn(format: Format, isa: Isa) -> Option<ColumnFn> {
    Some(avx2::column_fn(format, isa == Isa::Avx512Vnni))
}

#[cfg(not(target_arch = "x86_64"))]
fn simd_fn(_format: Format, _isa: Isa) -> Option<ColumnFn> {
    None
}

/// What one call computes: blocks both `w` and `x` hold, and the rows that fit `out`.
pub(crate) struct Extent {
    pub(crate) blocks: usize,
    pub(crate) block_bytes: usize,
    pub(crate) first_row: usize,
    pub(crate) rows: usize,
}

impl Extent {
    pub(crate) fn new(
        format: Format,
        w: &[u8],
        padded_rows: usize,
        x: &[BlockQ8],
        first_tile: usize,
        out: &[f32],
    ) -> Self {
        let block_bytes = format.block_bytes(padded_rows);
        let blocks = w.len().checked_div(block_bytes).unwrap_or(0).min(x.len());
        let first_row = first_tile * TILE_ROWS;
        let rows = out.len().min(padded_rows.saturating_sub(first_row));
        Self { blocks, block_bytes, first_row, rows }
    }
}

/// The scalar twin: row by row, block by block, the active columns in order.
fn scalar<const F: u8>(w: &[u8], padded: usize, x: &[BlockQ8], first_tile: usize, out: &mut [f32]) {
    let format = Format::from_u8(F);
    let e = Extent::new(format, w, padded, x, first_tile, out);
    for (i, out) in out[..e.rows].iter_mut().enumerate() {
        let r = e.first_row + i;
        let (byte, shift) = (r / TILE_ROWS * TILE_ROWS / 2 + r % 32, 4 * (r % TILE_ROWS / 32));
        let mut sum = 0.0f32;
        let mut mins = 0.0f32;
        for (b, a) in x[..e.blocks].iter().enumerate() {
            if a.qs.iter().all(|&q| q == 0) {
                continue;
            }
            let block = &w[b * e.block_bytes..][..e.block_bytes];
            let f16_at = |s: usize| {
                let at = (s * padded + r) * 2;
                half::f16::from_le_bytes([block[at], block[at + 1]]).to_f32()
            };
            let mut sumi = 0i32;
            for (j, &q) in a.qs.iter().enumerate().filter(|(_, &q)| q != 0) {
                let code = i32::from((block[codes_at(format, padded, j) + byte] >> shift) & 0x0F);
                sumi += (code - format.offset()) * i32::from(q);
            }
            sum = (f16_at(0) * a.d).mul_add(sumi as f32, sum);
            if format == Format::Q4_1 {
                mins = f16_at(1).mul_add(a.s, mins);
            }
        }
        // Q4_0 returns its one chain as the file kernels do (no `+ 0.0`).
        *out = if format == Format::Q4_1 { sum + mins } else { sum };
    }
}
