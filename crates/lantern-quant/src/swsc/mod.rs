//! [`Swsc`]: a weight matrix as shared weights for similar channels (SWSC, Zeng et al. 2025)
//! plus a low-rank correction.
//!
//! For an `out × in` matrix W (rows are outputs, as in [`QTensor`]), the `in` input channels
//! (the columns of W, `out` values each) are clustered into `k` groups by k-means and each
//! column is replaced by its group's centroid: W′ = C·L, with C the `out × k` centroids and
//! L the `k × in` one-hot labels. What that loses, R = W − W′, is kept to rank `r` by its
//! truncated SVD, so the matrix stands as Ŵ = W′ + (U_r S_r)·V_rᵀ. The product never forms
//! Ŵ: Ŵx = C·p + (U_r S_r)·(V_rᵀ x), where p[c] sums the inputs labelled c. It reads
//! `out·k + (out + in)·r` values instead of `out·in`.
//!
//! Clustering the input channels (rather than the outputs) is what lets the product pool
//! x first. The output error of column j moves with the mean square of input j, so the
//! clustering can weigh each column by it ([`SwscBuilder::channel_energies`], from
//! [`Gram::diagonal`](crate::Gram::diagonal)).
//!
//! # Layout
//! C is `out × k` row-major, the labels one `u16` per input channel, U_r S_r `out × r`
//! row-major and V_rᵀ `r × in` row-major. The values are rounded to the [`Precision`] they
//! would be stored in (f16 by default, which halves the bytes for an error far below any
//! 4-bit format's) but held as f32, so the product reads them without conversion;
//! [`Swsc::bytes`] counts them at the stored width. The residual is taken after C is
//! rounded, so the correction also makes up for that rounding.
//!
//! # Example
//! ```
//! use lantern_quant::{Precision, Swsc};
//!
//! // 2 outputs × 4 inputs: columns 0 and 2 alike, 1 and 3 alike.
//! let w = [1.0, 5.0, 1.0, 5.0, 2.0, -3.0, 2.0, -3.0];
//! let swsc = Swsc::builder(2, 0).precision(Precision::F32).factor(&w, 2, 4)?;
//! assert_eq!(swsc.to_dense(), w);
//! let mut y = [0.0; 2];
//! swsc.matvec(&[1.0, 0.0, 1.0, 1.0], &mut y)?;
//! assert_eq!(y, [7.0, 1.0]);
//! # Ok::<(), lantern_quant::Error>(())
//! ```
//!
//! [`QTensor`]: lantern_core::QTensor

mod kmeans;
mod residual;
mod specs;
mod tensors;

use half::f16;
use lantern_core::QTensor;

use crate::{Error, Result};

pub use specs::{factor_swsc, plan_swsc, Clusters, SwscFactors, SwscSpec, SwscTarget};

/// Most clusters: labels are `u16`.
const MAX_CLUSTERS: usize = 1 << 16;

/// The width the factors are stored in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Precision {
    /// IEEE half precision, 2 bytes a value.
    F16,
    /// Single precision, 4 bytes a value: the clustering's output as it is.
    F32,
}

impl Precision {
    /// Bytes a value takes.
    pub fn bytes(self) -> usize {
        match self {
            Self::F16 => 2,
            Self::F32 => 4,
        }
    }

    fn round(self, values: &mut [f32]) {
        if self == Self::F16 {
            values.iter_mut().for_each(|v| *v = f16::from_f32(*v).to_f32());
        }
    }
}

/// Options of the factorization, set through [`SwscBuilder`].
#[derive(Clone, Debug)]
struct Config {
    clusters: usize,
    rank: usize,
    seed: u64,
    max_iterations: usize,
    energies: Option<Vec<f32>>,
    precision: Precision,
}

/// Factors matrices into [`Swsc`]s with a given cluster count and residual rank.
#[derive(Clone, Debug)]
pub struct SwscBuilder {
    config: Config,
}

impl SwscBuilder {
    /// A builder of factorizations into `clusters` shared columns and a residual of rank
    /// `rank` (0 for none).
    pub fn new(clusters: usize, rank: usize) -> Self {
        Self {
            config: Config {
                clusters,
                rank,
                seed: 0,
                max_iterations: 100,
                energies: None,
                precision: Precision::F16,
            },
        }
    }

    /// The seed of k-means++'s draws: the same seed and matrix give the same factors.
    ///
    /// By default, 0.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }

    /// Most Lloyd reassignments after the first; k-means stops earlier when no label
    /// changes.
    ///
    /// By default, 100.
    #[must_use]
    pub fn max_iterations(mut self, n: usize) -> Self {
        self.config.max_iterations = n;
        self
    }

    /// Weighs input channel j's column by `energies[j]` in the clustering, the mean square
    /// of that input (the diagonal of the inputs' Gram matrix): the output error of moving
    /// a column grows with it, so loud channels are moved least.
    ///
    /// By default, every channel weighs the same (plain k-means).
    #[must_use]
    pub fn channel_energies(mut self, energies: Vec<f32>) -> Self {
        self.config.energies = Some(energies);
        self
    }

    /// The width the factors are stored in, and rounded to.
    ///
    /// By default, [`Precision::F16`].
    #[must_use]
    pub fn precision(mut self, precision: Precision) -> Self {
        self.config.precision = precision;
        self
    }

    /// Factors the `rows × cols` row-major matrix `weights` (rows are outputs).
    ///
    /// # Errors
    /// [`Error::Length`] when `weights` is not `rows × cols` values or the channel energies
    /// not `cols`; [`Error::Clusters`] for a cluster count outside 1..=min(cols, 65536);
    /// [`Error::Rank`] for a rank above min(rows, cols); [`Error::NotFinite`] for a weight
    /// that is not finite or an energy that is not finite and non-negative; [`Error::Svd`]
    /// when the residual's decomposition does not converge.
    pub fn factor(&self, weights: &[f32], rows: usize, cols: usize) -> Result<Swsc> {
        let c = &self.config;
        // An overflowing size saturates, and no slice is that long.
        check_length("weights", rows.saturating_mul(cols), weights.len())?;
        if c.clusters == 0 || c.clusters > cols.min(MAX_CLUSTERS) {
            return Err(Error::Clusters { clusters: c.clusters, channels: cols });
        }
        if c.rank > rows.min(cols) {
            return Err(Error::Rank { rank: c.rank, rows, cols });
        }
        check_finite("weight", weights, false)?;
        let energies = match &c.energies {
            Some(e) => {
                check_length("channel energies", cols, e.len())?;
                check_finite("channel energy", e, true)?;
                e.clone()
            }
            None => vec![1.0; cols],
        };
        // The columns, one after another: the points k-means clusters.
        let points: Vec<f32> =
            (0..cols).flat_map(|j| (0..rows).map(move |i| weights[i * cols + j])).collect();
        let found = kmeans::cluster(&points, rows, &energies, c.clusters, c.seed, c.max_iterations);
        let k = c.clusters;
        let from = &found.centroids;
        let mut centroids: Vec<f32> =
            (0..rows).flat_map(|i| (0..k).map(move |g| from[g * rows + i])).collect();
        c.precision.round(&mut centroids);
        let mut swsc = Swsc {
            rows,
            cols,
            clusters: k,
            rank: c.rank,
            precision: c.precision,
            centroids,
            labels: found.labels,
            us: Vec::new(),
            vt: Vec::new(),
            iterations: found.iterations,
        };
        if c.rank > 0 {
            let shared = swsc.to_dense();
            let residual: Vec<f32> = weights.iter().zip(&shared).map(|(w, s)| w - s).collect();
            let low = residual::truncate(&residual, rows, cols, c.rank)?;
            (swsc.us, swsc.vt) = (low.us, low.vt);
            c.precision.round(&mut swsc.us);
            c.precision.round(&mut swsc.vt);
        }
        Ok(swsc)
    }

    /// Factors a weight matrix (its rows are outputs), dequantized to f32 first.
    ///
    /// # Errors
    /// As [`SwscBuilder::factor`], and [`Error::Core`] when the tensor cannot be
    /// dequantized.
    pub fn factor_tensor(&self, tensor: &QTensor) -> Result<Swsc> {
        self.factor(&tensor.dequantize()?, tensor.n_rows(), tensor.row_len())
    }
}

/// A `rows × cols` weight matrix factored into shared columns and a low-rank residual:
/// k-means over the input channels gives each channel a centroid column, and a truncated
/// SVD of what the centroids miss is added back, `W ≈ C·P + U_r S_r V_rᵀ`.
#[derive(Clone, Debug)]
pub struct Swsc {
    rows: usize,
    cols: usize,
    clusters: usize,
    rank: usize,
    precision: Precision,
    /// `rows × clusters`, row-major.
    centroids: Vec<f32>,
    labels: Vec<u16>,
    /// U_r S_r, `rows × rank`, row-major.
    us: Vec<f32>,
    /// V_rᵀ, `rank × cols`, row-major.
    vt: Vec<f32>,
    iterations: usize,
}

impl Swsc {
    /// A builder of factorizations into `clusters` shared columns and a residual of rank
    /// `rank`; the same as [`SwscBuilder::new`].
    pub fn builder(clusters: usize, rank: usize) -> SwscBuilder {
        SwscBuilder::new(clusters, rank)
    }

    /// Outputs: rows of the matrix.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Inputs: columns of the matrix.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Shared columns (k).
    pub fn clusters(&self) -> usize {
        self.clusters
    }

    /// Rank of the residual's correction (r).
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The width the factors are stored in.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Each input channel's cluster.
    pub fn labels(&self) -> &[u16] {
        &self.labels
    }

    /// Lloyd reassignments k-means ran after its first assignment.
    pub fn iterations(&self) -> usize {
        self.iterations
    }

    /// Bytes the factors take stored: the centroids and both residual factors at
    /// [`Swsc::precision`], and two bytes of label per input channel.
    pub fn bytes(&self) -> usize {
        let values = self.centroids.len() + self.us.len() + self.vt.len();
        values * self.precision.bytes() + self.labels.len() * size_of::<u16>()
    }

    /// `y = Ŵx`, without forming Ŵ: the inputs pooled by label and multiplied by the
    /// centroids, plus U_r S_r·(V_rᵀ x).
    ///
    /// # Errors
    /// [`Error::Length`] when `x` is not [`Swsc::cols`] values or `y` not [`Swsc::rows`].
    pub fn matvec(&self, x: &[f32], y: &mut [f32]) -> Result<()> {
        check_length("input", self.cols, x.len())?;
        check_length("output", self.rows, y.len())?;
        let mut pooled = vec![0.0f32; self.clusters];
        for (&label, &v) in self.labels.iter().zip(x) {
            pooled[usize::from(label)] += v;
        }
        for (out, c) in y.iter_mut().zip(self.centroids.chunks_exact(self.clusters)) {
            *out = dot(c, &pooled);
        }
        if self.rank > 0 {
            let projected: Vec<f32> = self.vt.chunks_exact(self.cols).map(|v| dot(v, x)).collect();
            for (out, us) in y.iter_mut().zip(self.us.chunks_exact(self.rank)) {
                *out += dot(us, &projected);
            }
        }
        Ok(())
    }

    /// Ŵ itself, `rows × cols` row-major (for tests and measurements).
    pub fn to_dense(&self) -> Vec<f32> {
        let mut w = Vec::with_capacity(self.rows * self.cols);
        for i in 0..self.rows {
            let c = &self.centroids[i * self.clusters..(i + 1) * self.clusters];
            w.extend(self.labels.iter().map(|&l| c[usize::from(l)]));
        }
        if self.rank > 0 {
            for (row, us) in w.chunks_exact_mut(self.cols).zip(self.us.chunks_exact(self.rank)) {
                for (&u, v) in us.iter().zip(self.vt.chunks_exact(self.cols)) {
                    row.iter_mut().zip(v).for_each(|(w, &v)| *w += u * v);
                }
            }
        }
        w
    }
}

fn check_length(what: &'static str, expected: usize, actual: usize) -> Result<()> {
    if expected == actual {
        Ok(())
    } else {
        Err(Error::Length { what, expected, actual })
    }
}

/// The first value that is not finite (or negative, when `non_negative`) is an error.
fn check_finite(what: &'static str, values: &[f32], non_negative: bool) -> Result<()> {
    match values.iter().position(|v| !v.is_finite() || (non_negative && *v < 0.0)) {
        Some(index) => Err(Error::NotFinite { what, index, value: values[index] }),
        None => Ok(()),
    }
}

/// a·b in eight running sums, which the compiler keeps in vector registers.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let done = a.len().min(b.len()) / 8 * 8;
    let tail: f32 = a[done..].iter().zip(&b[done..]).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}
