//! [`ColumnMajor`]: a copy of a matrix stored column by column, whose products read only the
//! columns of non-zero inputs.

use std::ops::Range;

use crate::kernels::columns::{self, ColumnFn, Format, TILE_ROWS};
use crate::kernels::Isa;
use crate::{BlockQ8, Error, GgmlType, QTensor, Result, TensorBytes, QK8};

/// A matrix's [column-major copy](crate::kernels::columns): products with a sparse input
/// skip the columns of its zero codes, bytes and work alike.
#[derive(Clone, Debug)]
pub struct ColumnMajor {
    ty: GgmlType,
    rows: usize,
    blocks: usize,
    padded_rows: usize,
    bytes: TensorBytes,
    kernel: ColumnFn,
}

impl ColumnMajor {
    /// The column-major copy of `t` for this CPU's fastest path, or `None` when that path
    /// has no column kernel for `t`'s type.
    pub fn new(t: &QTensor) -> Option<Self> {
        Self::build(t, columns::column_fn(t.ty())?)
    }

    /// The copy with the kernel of path `isa` (to compare paths), or `None` when `isa` has
    /// no column kernel for `t`'s type or is not available.
    pub fn for_isa(t: &QTensor, isa: Isa) -> Option<Self> {
        Self::build(t, columns::column_fn_for(t.ty(), isa)?)
    }

    fn build(t: &QTensor, kernel: ColumnFn) -> Option<Self> {
        let format = Format::of(t.ty())?;
        let (rows, blocks) = (t.n_rows(), t.row_len() / QK8);
        let padded_rows = rows.next_multiple_of(TILE_ROWS);
        let row_bytes = t.ty().row_bytes(t.row_len()).ok()?;
        let bytes = TensorBytes::aligned(blocks * format.block_bytes(padded_rows), |out| {
            columns::transpose(format, t.bytes(), row_bytes, out);
        });
        Some(Self { ty: t.ty(), rows, blocks, padded_rows, bytes, kernel })
    }

    /// The element type of the codes.
    pub fn ty(&self) -> GgmlType {
        self.ty
    }

    /// Rows (outputs).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns (inputs).
    pub fn cols(&self) -> usize {
        self.blocks * QK8
    }

    /// Bytes of the copy.
    pub fn bytes(&self) -> usize {
        self.bytes.len()
    }

    /// `out[r − rows.start] = row(r) · x` for the input blocks `x`, reading only the columns
    /// whose code in `x` is not zero. `rows` starts on a whole tile of
    /// [`TILE_ROWS`](columns::TILE_ROWS) rows.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the sizes disagree or `rows` starts inside a tile.
    pub fn matvec(&self, x: &[BlockQ8], rows: Range<usize>, out: &mut [f32]) -> Result<()> {
        if x.len() != self.blocks
            || rows.start > rows.end
            || rows.end > self.rows
            || !rows.start.is_multiple_of(TILE_ROWS)
            || out.len() != rows.len()
        {
            return Err(Error::ShapeMismatch {
                op: "column-major matvec",
                detail: format!(
                    "{} input blocks for {}, rows {rows:?} of {} (tiles of {TILE_ROWS}) into {} \
                     outputs",
                    x.len(),
                    self.blocks,
                    self.rows,
                    out.len()
                ),
            });
        }
        (self.kernel)(&self.bytes, self.padded_rows, x, rows.start / TILE_ROWS, out);
        Ok(())
    }
}
