//! [`SwscMatrix`]: a weight matrix stored as shared weights for similar channels (SWSC) plus
//! a low-rank correction, multiplied without forming the matrix.
//!
//! # Layout
//! A matrix `blk.N.PART.weight` from `in` to `out` values is stored as
//! - `blk.N.PART.swsc_centroids`, F16 (or F32) `[k, out]`: row i holds output i's `k`
//!   centroid values;
//! - `blk.N.PART.swsc_labels`, I16 `[in]`: each input channel's cluster, a `u16` below `k`
//!   in the I16's bits;
//! - with a residual of rank `r`, both of `blk.N.PART.swsc_us`, F16 `[r, out]` (U_r S_r) and
//!   `blk.N.PART.swsc_vt`, F16 `[in, r]` (V_rᵀ).
//!
//! The product is `y = C·p + U_r S_r·(V_rᵀ x)`, where `p[c]` sums the inputs labelled `c`:
//! pooling is one scalar pass over x, and the three products are float matrix products
//! ([`QTensor::matmul`]) that read x (or p) as f32, for one input or a batch.

use lantern_core::kernels::{reads_f32_only, Input};
use lantern_core::{GgmlType, QTensor};
use lantern_io::ModelFile;

use crate::workers::Workers;
use crate::{Error, Result};

/// Most clusters: labels are `u16`.
const MAX_CLUSTERS: usize = 1 << 16;

/// The suffixes of the tensors a SWSC matrix is stored as, in the order of
/// [`swsc_tensor_names`]: centroids, labels, U_r S_r, V_rᵀ.
pub const SWSC_PARTS: [&str; 4] = ["swsc_centroids", "swsc_labels", "swsc_us", "swsc_vt"];

/// The names of the four tensors that stand for the matrix named `matrix`
/// (`blk.N.PART.weight` gives `blk.N.PART.swsc_centroids`, …), in the order of
/// [`SWSC_PARTS`]; `None` for a name that does not end in `.weight`.
pub fn swsc_tensor_names(matrix: &str) -> Option<[String; 4]> {
    let base = matrix.strip_suffix(".weight")?;
    Some(SWSC_PARTS.map(|part| format!("{base}.{part}")))
}

/// A `out × in` weight matrix as `k` shared columns, a label per input channel and an
/// optional rank-`r` correction: `y = C·p + U_r S_r·(V_rᵀ x)`, where `p[c]` sums the inputs
/// labelled `c`. In a file, `blk.N.PART.weight` is stored as the tensors
/// [`swsc_tensor_names`] gives (docs/format.md).
#[derive(Clone, Debug)]
pub struct SwscMatrix {
    inputs: usize,
    outputs: usize,
    /// `out` rows of `k` centroid values.
    centroids: QTensor,
    labels: Vec<u16>,
    /// U_r S_r (`out` rows of `r`) and V_rᵀ (`r` rows of `in`).
    residual: Option<(QTensor, QTensor)>,
}

/// Buffers a SWSC product reuses from call to call: the pooled inputs, their projections
/// on V_rᵀ and the correction, each for a batch.
#[derive(Debug, Default)]
pub struct SwscScratch {
    pooled: Vec<f32>,
    projected: Vec<f32>,
    correction: Vec<f32>,
    transpose: Vec<f32>,
}

impl SwscMatrix {
    /// Checks and wraps the parts of the matrix named `matrix`, from `inputs` to `outputs`
    /// values: `centroids` `[k, outputs]`, `labels` I16 `[inputs]`, and the residual's
    /// `(us, vt)`, `[r, outputs]` and `[inputs, r]`. The factors are F16 or F32.
    ///
    /// # Errors
    /// [`Error::InvalidSwsc`] for a part of another type or shape, a cluster count outside
    /// 1..=min(inputs, 65536), a label not below it, or a residual of rank 0.
    pub fn new(
        matrix: &str,
        centroids: QTensor,
        labels: &QTensor,
        residual: Option<(QTensor, QTensor)>,
        (inputs, outputs): (usize, usize),
    ) -> Result<Self> {
        let bad = |reason: String| Error::InvalidSwsc { matrix: matrix.to_owned(), reason };
        let check = |part: &str, t: &QTensor, dims: &[usize]| {
            if !reads_f32_only(t.ty()) || !t.ty().is_supported() {
                return Err(bad(format!("{part} has type {:?}, not F16 or F32", t.ty())));
            }
            if t.dims() != dims {
                return Err(bad(format!("{part} has shape {:?}, expected {dims:?}", t.dims())));
            }
            Ok(())
        };
        let clusters = centroids.dims().first().copied().unwrap_or(0);
        if clusters == 0 || clusters > inputs.min(MAX_CLUSTERS) {
            let most = inputs.min(MAX_CLUSTERS);
            return Err(bad(format!("{clusters} clusters, expected 1 to {most}")));
        }
        check("centroids", &centroids, &[clusters, outputs])?;
        if labels.ty() != GgmlType::I16 || labels.dims() != [inputs] {
            return Err(bad(format!(
                "labels are {:?} {:?}, expected I16 [{inputs}]",
                labels.ty(),
                labels.dims()
            )));
        }
        let labels: Vec<u16> =
            labels.bytes().chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])).collect();
        if let Some((j, &label)) =
            labels.iter().enumerate().find(|(_, &l)| usize::from(l) >= clusters)
        {
            return Err(bad(format!("input channel {j} has label {label}, not below {clusters}")));
        }
        if let Some((us, vt)) = &residual {
            let rank = us.dims().first().copied().unwrap_or(0);
            if rank == 0 {
                return Err(bad("the residual has rank 0".into()));
            }
            check("U_r S_r", us, &[rank, outputs])?;
            check("V_r^T", vt, &[inputs, rank])?;
        }
        Ok(Self { inputs, outputs, centroids, labels, residual })
    }

    /// The matrix named `matrix` (`blk.N.PART.weight`) from its SWSC tensors in `file`, or
    /// `None` when the file holds none of them.
    ///
    /// # Errors
    /// [`Error::InvalidSwsc`] when only some of the tensors are there (the centroids and
    /// labels without each other, or one residual factor without the other), and as
    /// [`SwscMatrix::new`].
    pub fn from_file(
        file: &dyn ModelFile,
        matrix: &str,
        (inputs, outputs): (usize, usize),
    ) -> Result<Option<Self>> {
        let Some(names) = swsc_tensor_names(matrix) else { return Ok(None) };
        let present = names.clone().map(|n| file.has_tensor(&n));
        if !present.iter().any(|&p| p) {
            return Ok(None);
        }
        let bad = |reason: String| Error::InvalidSwsc { matrix: matrix.to_owned(), reason };
        let missing: Vec<&str> =
            (0..2).filter(|&i| !present[i]).map(|i| names[i].as_str()).collect();
        if !missing.is_empty() {
            return Err(bad(format!("{} missing", missing.join(" and "))));
        }
        let read = |i: usize| Ok::<_, Error>(file.tensor(&names[i])?);
        let residual = match (present[2], present[3]) {
            (true, true) => Some((read(2)?, read(3)?)),
            (false, false) => None,
            (us, _) => {
                let (has, lacks) = if us { (2, 3) } else { (3, 2) };
                return Err(bad(format!("{} without {}", names[has], names[lacks])));
            }
        };
        Self::new(matrix, read(0)?, &read(1)?, residual, (inputs, outputs)).map(Some)
    }

    /// Inputs: the values each row multiplies.
    pub fn row_len(&self) -> usize {
        self.inputs
    }

    /// Outputs: rows of the matrix.
    pub fn n_rows(&self) -> usize {
        self.outputs
    }

    /// Shared columns (k).
    pub fn clusters(&self) -> usize {
        self.centroids.row_len()
    }

    /// Rank of the correction (r), 0 for none.
    pub fn rank(&self) -> usize {
        self.residual.as_ref().map_or(0, |(us, _)| us.row_len())
    }

    /// Each input channel's cluster.
    pub fn labels(&self) -> &[u16] {
        &self.labels
    }

    /// The factor tensors a product multiplies with: the centroids, then U_r S_r and V_rᵀ.
    pub fn tensors(&self) -> impl Iterator<Item = &QTensor> {
        let residual = self.residual.iter().flat_map(|(us, vt)| [us, vt]);
        std::iter::once(&self.centroids).chain(residual)
    }

    /// Bytes the matrix reads per product: its factors and two bytes of label per input.
    pub fn bytes(&self) -> usize {
        let factors: usize = self.tensors().map(|t| t.bytes().len()).sum();
        factors + self.labels.len() * size_of::<u16>()
    }

    /// The matrix itself, `out` rows of `in` values (for calibration and tests).
    ///
    /// # Errors
    /// [`Error::Core`] when a factor cannot be dequantized.
    pub fn dequantize(&self) -> Result<Vec<f32>> {
        let (k, n) = (self.clusters(), self.inputs);
        let centroids = self.centroids.dequantize()?;
        let mut w = Vec::with_capacity(self.outputs * n);
        for c in centroids.chunks_exact(k) {
            w.extend(self.labels.iter().map(|&l| c[usize::from(l)]));
        }
        if let Some((us, vt)) = &self.residual {
            let (us, vt, r) = (us.dequantize()?, vt.dequantize()?, self.rank());
            for (row, us) in w.chunks_exact_mut(n.max(1)).zip(us.chunks_exact(r)) {
                for (&u, v) in us.iter().zip(vt.chunks_exact(n.max(1))) {
                    row.iter_mut().zip(v).for_each(|(w, &v)| *w += u * v);
                }
            }
        }
        Ok(w)
    }

    /// `out = W·x` for the `n` inputs of `x` (one after another, `in` values each) on the
    /// calling thread: `out` holds `n` runs of `out` values.
    ///
    /// # Errors
    /// [`Error::Core`] with a shape mismatch when `x` or `out` are not `n` vectors long.
    pub fn matmul(
        &self,
        x: &[f32],
        n: usize,
        out: &mut [f32],
        scratch: &mut SwscScratch,
    ) -> Result<()> {
        self.check_lengths(x.len(), n, out.len())?;
        let input = Input::new(x, &[], n);
        let k = self.clusters();
        scratch.pooled.resize(n * k, 0.0);
        for (t, pooled) in scratch.pooled.chunks_exact_mut(k).enumerate() {
            self.pool(input.x(t), pooled);
        }
        let pooled = Input::new(&scratch.pooled, &[], n);
        self.centroids.matmul(0..self.outputs, pooled, out)?;
        if let Some((us, vt)) = &self.residual {
            let r = self.rank();
            scratch.projected.resize(n * r, 0.0);
            vt.matmul(0..r, input, &mut scratch.projected)?;
            scratch.correction.resize(n * self.outputs, 0.0);
            let projected = Input::new(&scratch.projected, &[], n);
            us.matmul(0..self.outputs, projected, &mut scratch.correction)?;
            out.iter_mut().zip(&scratch.correction).for_each(|(y, c)| *y += c);
        }
        Ok(())
    }

    /// [`SwscMatrix::matmul`] on the workers: the pooling a share of the inputs per
    /// thread, each product split as [`Workers::linear`] splits any matrix's.
    pub(crate) fn linear(
        &self,
        workers: &Workers,
        input: Input<'_>,
        out: &mut [f32],
        scratch: &mut SwscScratch,
    ) -> Result<()> {
        let n = input.n();
        self.check_lengths(input.x(0).len() * n, n, out.len())?;
        let k = self.clusters();
        let SwscScratch { pooled, projected, correction, transpose } = scratch;
        pooled.resize(n * k, 0.0);
        let per_task = n.div_ceil(workers.threads()).max(1);
        workers.for_each_chunk(pooled, per_task * k, |i, part| {
            for (t, pooled) in (i * per_task..).zip(part.chunks_exact_mut(k)) {
                self.pool(input.x(t), pooled);
            }
            Ok(())
        })?;
        workers.linear(&self.centroids, Input::new(pooled, &[], n), out, transpose)?;
        if let Some((us, vt)) = &self.residual {
            let r = self.rank();
            projected.resize(n * r, 0.0);
            workers.linear(vt, input, projected, transpose)?;
            correction.resize(n * self.outputs, 0.0);
            workers.linear(us, Input::new(projected, &[], n), correction, transpose)?;
            out.iter_mut().zip(correction.iter()).for_each(|(y, c)| *y += c);
        }
        Ok(())
    }

    /// `pooled[c]` = the sum of the inputs of `x` labelled `c`.
    fn pool(&self, x: &[f32], pooled: &mut [f32]) {
        pooled.fill(0.0);
        for (&label, &v) in self.labels.iter().zip(x) {
            pooled[usize::from(label)] += v;
        }
    }

    fn check_lengths(&self, x_len: usize, n: usize, out_len: usize) -> Result<()> {
        if x_len == n * self.inputs && out_len == n * self.outputs {
            return Ok(());
        }
        Err(lantern_core::Error::ShapeMismatch {
            op: "SWSC matmul",
            detail: format!(
                "{n} inputs of {} values into outputs of {}: got {x_len} values and {out_len} \
                 outputs",
                self.inputs, self.outputs
            ),
        }
        .into())
    }
}
