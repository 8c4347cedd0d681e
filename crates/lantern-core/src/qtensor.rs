//! [`QTensor`]: a typed, shaped view of (possibly quantized) tensor bytes.
//!
//! A tensor has dimensions innermost first, as in ggml: `dims[0]` is the row length and the
//! product of the remaining dimensions is the number of rows. A weight matrix of shape
//! `[in, out]` therefore has `out` rows of `in` elements, and a matrix-vector product with
//! an input of `in` values yields `out` values.

use std::ops::Range;

use crate::kernels::interleaved::{self, GROUP_ROWS};
use crate::kernels::{self, GatherFn, Input, MatmulFn};
use crate::{dequant, Error, GgmlType, Result, TensorBytes, QK8, QK_K};

/// A tensor of any [`GgmlType`] over shared bytes.
#[derive(Clone, Debug)]
pub struct QTensor {
    ty: GgmlType,
    dims: Vec<usize>,
    row_len: usize,
    n_rows: usize,
    row_bytes: usize,
    bytes: TensorBytes,
    kernel: Option<MatmulFn>,
    gather: Option<GatherFn>,
    interleaved: Option<Interleaved>,
}

/// A copy of a tensor's rows in the [interleaved layout](kernels::interleaved), with its
/// kernel.
#[derive(Clone, Debug)]
struct Interleaved {
    bytes: TensorBytes,
    group_bytes: usize,
    kernel: MatmulFn,
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
            kernel: kernels::matmul_fn(ty),
            gather: kernels::gather_fn(ty),
            interleaved: None,
        })
    }

    /// This tensor with its rows also [interleaved](kernels::interleaved) for the fastest
    /// path of this CPU, when that path has an interleaved kernel for the type; otherwise
    /// unchanged. [`QTensor::matmul`] then reads the interleaved copy for row ranges that
    /// start on a group of [`GROUP_ROWS`]; the copy is made once, here. For Q4_0, Q8_0, Q3_K,
    /// Q4_K, Q5_K and Q6_K the results are the file rows' bit for bit; Q5_0 rounds in an order
    /// of its own (one fused multiply-add per block and row, where its file rows keep ggml's
    /// eight lanes), so a row's result can differ from the file rows' in the last bits, and
    /// with it on whether its range starts on a group (the runtime's ranges always do).
    pub fn interleaved(self) -> Self {
        let Some(kernel) = interleaved::interleaved_fn(self.ty) else { return self };
        let group_bytes = interleaved::group_bytes(self.ty, self.row_bytes);
        if group_bytes == 0 {
            return self;
        }
        let len = self.n_rows.div_ceil(GROUP_ROWS) * group_bytes;
        // A few MB of groups at a time, whose file pages go back as soon as they are copied:
        // whole, the largest matrix (a tied Q8_0 head) would be resident twice at its peak.
        let slice = (4 << 20) / group_bytes + 1;
        let mut done = true;
        let bytes = TensorBytes::aligned(len, |out| {
            for (i, out) in out.chunks_mut(slice * group_bytes).enumerate() {
                let rows = i * slice * GROUP_ROWS..((i + 1) * slice * GROUP_ROWS).min(self.n_rows);
                let file = rows.start * self.row_bytes..rows.end * self.row_bytes;
                done &= interleaved::interleave(
                    self.ty,
                    &self.bytes[file.clone()],
                    self.row_bytes,
                    out,
                );
                if let Ok(file) = self.bytes.slice(file) {
                    file.release_pages();
                }
            }
        });
        if !done {
            return self;
        }
        // The products read the copy; the file rows serve only row lookups from now on (and
        // the pages that straddle two slices go back here).
        self.bytes.release_pages();
        Self { interleaved: Some(Interleaved { bytes, group_bytes, kernel }), ..self }
    }

    /// Whether [`QTensor::matmul`] reads an interleaved copy of the rows.
    pub fn is_interleaved(&self) -> bool {
        self.interleaved.is_some()
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

    /// The rows `rows` of this tensor, in that order, as a matrix of `rows.len()` rows: their
    /// bytes copied unchanged, so each row is exactly what it was (rows quantize
    /// independently). Picks a pruned FFN's kept gate and up rows, for example.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when a row index is not below [`QTensor::n_rows`].
    pub fn select_rows(&self, rows: &[usize]) -> Result<Self> {
        if let Some(&bad) = rows.iter().find(|&&r| r >= self.n_rows) {
            return Err(Error::ShapeMismatch {
                op: "select_rows",
                detail: format!("row {bad} of {}", self.n_rows),
            });
        }
        let bytes = rows.iter().flat_map(|&r| self.row(r)).copied().collect();
        Self::new(self.ty, &[self.row_len, rows.len()], TensorBytes::from_vec(bytes))
    }

    /// Rows `rows` as a matrix of their own, a view of the same bytes (the file layout; no
    /// interleaved copy). Splits a fused matrix, such as Q, K and V in one, into its parts.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when `rows` does not lie within [`QTensor::n_rows`].
    pub fn row_range(&self, rows: Range<usize>) -> Result<Self> {
        if rows.start > rows.end || rows.end > self.n_rows {
            return Err(Error::ShapeMismatch {
                op: "row_range",
                detail: format!("rows {rows:?} of {}", self.n_rows),
            });
        }
        let bytes = self.bytes.slice(rows.start * self.row_bytes..rows.end * self.row_bytes)?;
        Self::new(self.ty, &[self.row_len, rows.len()], bytes)
    }

    /// Dequantizes row `i` into `out`, which must hold `row_len` values. An
    /// [interleaved](QTensor::interleaved) tensor reads its copy, with the same values.
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
        if let Some(copy) = &self.interleaved {
            // The copy rather than the file rows, whose pages went back after interleaving.
            if interleaved::dequantize_row(self.ty, &copy.bytes, self.row_bytes, i, out) {
                return Ok(());
            }
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

    /// This tensor in type `ty`, rounded to nearest: each row dequantized to f32, then
    /// quantized with [`quantize_row`](crate::quantize_row). Rounding a dequantized tensor
    /// again, even to its own type, may move values: a block's new scale comes from its
    /// dequantized extremes, which need not sit where the old grid's ends were.
    ///
    /// # Errors
    /// [`Error::UnsupportedType`] when either type does not convert to and from f32;
    /// [`Error::RaggedRow`] when the rows are not a whole number of `ty`'s blocks.
    pub fn requantize(&self, ty: GgmlType) -> Result<Self> {
        let row_bytes = ty.row_bytes(self.row_len)?;
        let mut bytes = vec![0; row_bytes * self.n_rows];
        let mut row = vec![0.0; self.row_len];
        for (i, out) in bytes.chunks_exact_mut(row_bytes.max(1)).enumerate() {
            self.dequantize_row(i, &mut row)?;
            crate::quantize_row(ty, &row, out)?;
        }
        Self::new(ty, &self.dims, TensorBytes::from_vec(bytes))
    }

    /// Matrix product over a range of rows: `out[t * rows.len() + (r - rows.start)] =
    /// row(r) · x_t` for the `n` vectors of `input`.
    ///
    /// One run of results per input; with one input it is simply `out[r - rows.start]`.
    /// Each row's bytes are read once for all inputs. Each format reads the form of the
    /// input its kernel needs (see [`Input`]), so the caller quantizes once and reuses it
    /// across tensors; float rows ([`kernels::reads_f32_only`]) read only the f32 values, so
    /// an input for them may hold no blocks.
    ///
    /// # Errors
    /// [`Error::UnsupportedType`] for a type without kernels, [`Error::ShapeMismatch`] when
    /// the sizes disagree.
    pub fn matmul(&self, rows: Range<usize>, input: Input<'_>, out: &mut [f32]) -> Result<()> {
        let kernel = self.kernel.ok_or(Error::UnsupportedType { ty: self.ty, op: "matmul" })?;
        self.check_input("matmul", input)?;
        let n = input.n();
        if rows.start > rows.end || rows.end > self.n_rows || out.len() != rows.len() * n {
            return Err(Error::ShapeMismatch {
                op: "matmul",
                detail: format!(
                    "rows {rows:?} of {} × {n} inputs into {} outputs",
                    self.n_rows,
                    out.len()
                ),
            });
        }
        match &self.interleaved {
            // Ranges that start inside a group read the file's rows.
            Some(il) if rows.start.is_multiple_of(GROUP_ROWS) => {
                let groups = rows.start / GROUP_ROWS..rows.end.div_ceil(GROUP_ROWS);
                let bytes = &il.bytes[groups.start * il.group_bytes..groups.end * il.group_bytes];
                (il.kernel)(bytes, self.row_bytes, input, out);
            }
            _ => {
                let bytes = &self.bytes[rows.start * self.row_bytes..rows.end * self.row_bytes];
                kernel(bytes, self.row_bytes, input, out);
            }
        }
        Ok(())
    }

    /// `out[i] = row(rows[i]) · x` for the one input of `input`: only the listed rows are read,
    /// from the file layout (never the interleaved copy, whose groups hold 16 rows each), with
    /// the bits of the file rows' products (which the interleaved copy shares, but for Q5_0;
    /// see [`QTensor::interleaved`]). A product whose outputs are mostly not
    /// needed, such as an FFN up matrix whose neurons activation sparsity zeroes, reads a
    /// share of the rows. Types without a [`GatherFn`] on this CPU run their matrix kernel
    /// over each run of consecutive rows.
    ///
    /// # Errors
    /// As [`QTensor::matmul`], and [`Error::ShapeMismatch`] for a row index past the end or
    /// an input of more than one vector.
    pub fn gather_rows(&self, rows: &[u32], input: Input<'_>, out: &mut [f32]) -> Result<()> {
        let kernel =
            self.kernel.ok_or(Error::UnsupportedType { ty: self.ty, op: "gather_rows" })?;
        self.check_input("gather_rows", input)?;
        let bad = rows.iter().find(|&&r| r as usize >= self.n_rows);
        if input.n() != 1 || out.len() != rows.len() || bad.is_some() {
            return Err(Error::ShapeMismatch {
                op: "gather_rows",
                detail: format!(
                    "{} rows (first out of range: {bad:?}) of {} × {} inputs into {} outputs",
                    rows.len(),
                    self.n_rows,
                    input.n(),
                    out.len()
                ),
            });
        }
        let rb = self.row_bytes;
        if let Some(gather) = self.gather {
            gather(&self.bytes, rb, rows, input.q8(0), out);
            return Ok(());
        }
        let mut start = 0;
        while start < rows.len() {
            let first = rows[start] as usize;
            let run =
                rows[start..].iter().zip(first..).take_while(|&(&r, i)| r as usize == i).count();
            kernel(
                &self.bytes[first * rb..(first + run) * rb],
                rb,
                input,
                &mut out[start..start + run],
            );
            start += run;
        }
        Ok(())
    }

    /// Checks that `input` holds the values and activation blocks a row of this tensor reads.
    fn check_input(&self, op: &'static str, input: Input<'_>) -> Result<()> {
        let n = input.n();
        let (x_len, q8_len, q8k_len) = input.lens();
        let (block, got) =
            if kernels::reads_q8k(self.ty) { (QK_K, q8k_len) } else { (QK8, q8_len) };
        let blocks = self.row_len.div_ceil(block);
        // Float rows read the f32 values only, so their inputs may come without blocks.
        let blocks_ok = got == blocks * n || kernels::reads_f32_only(self.ty);
        if x_len != self.row_len * n || !blocks_ok {
            return Err(Error::ShapeMismatch {
                op,
                detail: format!(
                    "{n} inputs of {} values need {} floats and {} blocks of {block}, got \
                     {x_len} and {got}",
                    self.row_len,
                    self.row_len * n,
                    blocks * n,
                ),
            });
        }
        Ok(())
    }
}
