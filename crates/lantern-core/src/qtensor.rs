//! [`QTensor`]: a typed, shaped view of (possibly quantized) tensor bytes.
//!
//! A tensor has dimensions innermost first, as in ggml: `dims[0]` is the row length and the
//! product of the remaining dimensions is the number of rows. A weight matrix of shape
//! `[in, out]` therefore has `out` rows of `in` elements, and a matrix-vector product with
//! an input of `in` values yields `out` values.

use std::ops::Range;

use crate::kernels::{self, DotFn};
use crate::{dequant, BlockQ8, Error, GgmlType, Result, TensorBytes, QK8};

/// A tensor of any [`GgmlType`] over shared bytes.
#[derive(Clone, Debug)]
pub struct QTensor {
    ty: GgmlType,
    dims: Vec<usize>,
    row_len: usize,
    n_rows: usize,
    row_bytes: usize,
    bytes: TensorBytes,
    dot: Option<DotFn>,
}

impl QTensor {
    /// A tensor of type `ty` and dimensions `dims` (innermost first) over `bytes`.
    ///
    /// # Errors
    /// [`Error::SizeMismatch`] when `bytes` is not exactly the size `dims` and `ty` require;
    /// [`Error::RaggedRow`] when the row length is not a whole number of blocks.
    pub fn new(ty: GgmlType, dims: &[usize], bytes: TensorBytes) -> Result<Self> {
        let expected = ty.tensor_bytes(dims)?;
        if bytes.len() != expected {
            return Err(Error::SizeMismatch {
                ty,
                dims: dims.to_vec(),
                expected,
                actual: bytes.len(),
            });
        }
        let row_len = dims.first().copied().unwrap_or(1);
        let n_rows = dims.iter().skip(1).product();
        Ok(Self {
            ty,
            dims: dims.to_vec(),
            row_len,
            n_rows,
            row_bytes: ty.row_bytes(row_len)?,
            bytes,
            dot: kernels::dot_fn(ty),
        })
    }

    /// The element type.
    pub fn ty(&self) -> GgmlType {
        self.ty
    }

    /// The dimensions, innermost first.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// Elements per row (`dims[0]`).
    pub fn row_len(&self) -> usize {
        self.row_len
    }

    /// Number of rows (product of the outer dimensions).
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// The raw bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The raw bytes of row `i`.
    ///
    /// # Panics
    /// When `i >= self.n_rows()`.
    pub fn row(&self, i: usize) -> &[u8] {
        &self.bytes[i * self.row_bytes..(i + 1) * self.row_bytes]
    }

    /// Dequantizes row `i` into `out`, which must hold `row_len` values.
    ///
    /// # Errors
    /// [`Error::UnsupportedType`] for types without a dequantizer, [`Error::ShapeMismatch`]
    /// for a wrong row index or output length.
    pub fn dequantize_row(&self, i: usize, out: &mut [f32]) -> Result<()> {
        if i >= self.n_rows || out.len() != self.row_len {
            return Err(Error::ShapeMismatch {
                op: "dequantize_row",
                detail: format!(
                    "row {i} of {}, output {} for rows of {}",
                    self.n_rows,
                    out.len(),
                    self.row_len
                ),
            });
        }
        dequant::dequantize_row(self.ty, self.row(i), out)
    }

    /// Dequantizes the whole tensor to f32, rows one after another.
    ///
    /// # Errors
    /// [`Error::UnsupportedType`] for types without a dequantizer.
    pub fn dequantize(&self) -> Result<Vec<f32>> {
        let mut out = vec![0.0; self.row_len * self.n_rows];
        if self.row_len > 0 {
            for (i, chunk) in out.chunks_exact_mut(self.row_len).enumerate() {
                dequant::dequantize_row(self.ty, self.row(i), chunk)?;
            }
        }
        Ok(out)
    }

    fn dot_fn(&self, op: &'static str) -> Result<DotFn> {
        self.dot.ok_or(Error::UnsupportedType { ty: self.ty, op })
    }

    fn check_input(&self, op: &'static str, x: &[f32], xq: &[BlockQ8], n: usize) -> Result<()> {
        let blocks = self.row_len.div_ceil(QK8);
        if x.len() != self.row_len * n || xq.len() != blocks * n {
            return Err(Error::ShapeMismatch {
                op,
                detail: format!(
                    "{n} inputs of {} values need {} floats and {} q8 blocks, got {} and {}",
                    self.row_len,
                    self.row_len * n,
                    blocks * n,
                    x.len(),
                    xq.len()
                ),
            });
        }
        Ok(())
    }

    fn check_rows(&self, op: &'static str, rows: &Range<usize>, out_len: usize) -> Result<()> {
        if rows.start > rows.end || rows.end > self.n_rows || out_len != rows.len() {
            return Err(Error::ShapeMismatch {
                op,
                detail: format!("rows {rows:?} of {} into {out_len} outputs", self.n_rows),
            });
        }
        Ok(())
    }

    /// Matrix-vector product over a range of rows: `out[r - rows.start] = row(r) · x`.
    ///
    /// `x` is the input and `xq` the same input quantized by
    /// [`quantize_activation`](crate::quantize_activation); each format uses the one its
    /// kernel needs, so the caller quantizes once and reuses it across tensors.
    ///
    /// # Errors
    /// [`Error::UnsupportedType`] for a type without kernels, [`Error::ShapeMismatch`] when
    /// the sizes disagree.
    pub fn matvec(
        &self,
        rows: Range<usize>,
        x: &[f32],
        xq: &[BlockQ8],
        out: &mut [f32],
    ) -> Result<()> {
        let dot = self.dot_fn("matvec")?;
        self.check_input("matvec", x, xq, 1)?;
        self.check_rows("matvec", &rows, out.len())?;
        for (o, r) in out.iter_mut().zip(rows) {
            *o = dot(self.row(r), x, xq);
        }
        Ok(())
    }

    /// Matrix product with `n` inputs over a range of rows.
    ///
    /// `x` holds `n` inputs of `row_len` values one after another and `xq` their
    /// quantizations. The result is weight-row-major: `out[(r - rows.start) * n + t]` is
    /// `row(r) · x_t`, so that a range of rows is one contiguous slice of the output and the
    /// row's bytes are read once for all inputs.
    ///
    /// # Errors
    /// As [`QTensor::matvec`].
    pub fn matmul(
        &self,
        rows: Range<usize>,
        x: &[f32],
        xq: &[BlockQ8],
        n: usize,
        out: &mut [f32],
    ) -> Result<()> {
        let dot = self.dot_fn("matmul")?;
        self.check_input("matmul", x, xq, n)?;
        self.check_rows("matmul", &rows, out.len() / n.max(1))?;
        if out.len() != rows.len() * n {
            return Err(Error::ShapeMismatch {
                op: "matmul",
                detail: format!("{} outputs for {} rows × {n} inputs", out.len(), rows.len()),
            });
        }
        let blocks = self.row_len.div_ceil(QK8);
        for (r, out_row) in rows.zip(out.chunks_exact_mut(n.max(1))) {
            let row = self.row(r);
            for (t, o) in out_row.iter_mut().enumerate() {
                let x_t = &x[t * self.row_len..(t + 1) * self.row_len];
                let xq_t = &xq[t * blocks..(t + 1) * blocks];
                *o = dot(row, x_t, xq_t);
            }
        }
        Ok(())
    }
}
