//! [`Grams`]: the Gram matrices of the values each block's matrices multiply, gathered on
//! the real forward pass.

use std::sync::{Arc, Mutex, PoisonError};

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};
use lantern_runtime::calibration::{InputSite, MatrixInputs};
use lantern_runtime::{BlockMatrix, ModelConfig};

/// The sum of x·xᵀ over the input vectors x one matrix (or several sharing their input)
/// multiplied, and how many there were.
#[derive(Clone, Debug)]
pub struct Gram {
    sum: Mat<f32>,
    vectors: u64,
}

impl Gram {
    /// An empty Gram matrix for inputs of `dim` values.
    pub fn new(dim: usize) -> Self {
        Self { sum: Mat::zeros(dim, dim), vectors: 0 }
    }

    /// Values per input vector.
    pub fn dim(&self) -> usize {
        self.sum.nrows()
    }

    /// Input vectors added.
    pub fn vectors(&self) -> u64 {
        self.vectors
    }

    /// Adds `n` input vectors, `x` holding them one after another.
    ///
    /// # Panics
    /// When `x` does not hold `n` vectors of [`Gram::dim`] values.
    pub fn add(&mut self, x: &[f32], n: usize) {
        let x = MatRef::from_row_major_slice(x, n, self.dim());
        matmul(self.sum.as_mut(), Accum::Add, x.transpose(), x, 1.0, Par::rayon(0));
        self.vectors += n as u64;
    }

    /// The mean of x·xᵀ (zero before any input).
    pub fn mean(&self) -> Mat<f64> {
        let scale = 1.0 / self.vectors.max(1) as f64;
        Mat::from_fn(self.dim(), self.dim(), |i, j| f64::from(self.sum[(i, j)]) * scale)
    }

    /// The Gram matrix of the inputs' channels `channels` alone, in that order: what a
    /// matrix keeping only those input channels (a pruned down matrix) multiplies. `None`
    /// when a channel is not below [`Gram::dim`].
    pub fn restricted(&self, channels: &[usize]) -> Option<Self> {
        if channels.iter().any(|&c| c >= self.dim()) {
            return None;
        }
        let sum = Mat::from_fn(channels.len(), channels.len(), |i, j| {
            self.sum[(channels[i], channels[j])]
        });
        Some(Self { sum, vectors: self.vectors })
    }

    /// The mean square of each input channel: the diagonal of [`Gram::mean`].
    pub fn diagonal(&self) -> Vec<f32> {
        let scale = 1.0 / self.vectors.max(1) as f32;
        (0..self.dim()).map(|i| self.sum[(i, i)] * scale).collect()
    }
}

/// The [`Gram`] of every site of every block, filled as an observer of the forward pass
/// ([`lantern_runtime::State::observe_matrix_inputs`]). Clones share the matrices, so one
/// clone can watch while another reads them afterwards. Values of a block or width the
/// matrices were not made for are left out (an observer cannot fail the pass).
#[derive(Clone, Debug)]
pub struct Grams(Arc<Mutex<Vec<[Gram; 4]>>>);

impl Grams {
    /// Empty matrices for `layers` blocks whose sites ([`InputSite::ALL`], in order) have
    /// inputs of `widths` values.
    pub fn new(layers: usize, widths: [usize; 4]) -> Self {
        Self(Arc::new(Mutex::new(vec![widths.map(Gram::new); layers])))
    }

    /// Empty matrices for blocks whose sites have inputs of `widths` values, one entry per
    /// block: blocks whose FFNs were pruned to different widths differ at
    /// [`InputSite::FfnDown`].
    pub fn per_layer(widths: impl IntoIterator<Item = [usize; 4]>) -> Self {
        Self(Arc::new(Mutex::new(widths.into_iter().map(|w| w.map(Gram::new)).collect())))
    }

    /// Empty matrices for every block of a model of `config`, each site as wide as its
    /// inputs: the residual stream, the heads' mixed values, the residual stream and the
    /// block's FFN width.
    pub fn for_config(config: &ModelConfig) -> Self {
        let (d, q_dim) = (config.d_model, config.n_heads * config.head_dim);
        Self::per_layer(config.ffn_widths.iter().map(|&ff| [d, q_dim, d, ff]))
    }

    /// A copy of the Gram matrix of the inputs of the block matrix named `name`
    /// (`blk.N.PART.weight`, [`BlockMatrix::parse`]); `None` for another tensor or a block
    /// these matrices were not made for.
    pub fn of_matrix(&self, name: &str) -> Option<Gram> {
        let (block, matrix) = BlockMatrix::parse(name)?;
        self.gram(block, matrix.input_site())
    }

    /// A copy of the Gram matrix of block `layer`'s inputs at `site`.
    pub fn gram(&self, layer: usize, site: InputSite) -> Option<Gram> {
        let grams = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        grams.get(layer).map(|sites| sites[index(site)].clone())
    }
}

impl MatrixInputs for Grams {
    fn observe(&mut self, layer: usize, site: InputSite, x: &[f32], n: usize) {
        let mut grams = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sites) = grams.get_mut(layer) {
            let gram = &mut sites[index(site)];
            if x.len() == n * gram.dim() {
                gram.add(x, n);
            }
        }
    }
}

fn index(site: InputSite) -> usize {
    InputSite::ALL.iter().position(|&s| s == site).unwrap_or(0)
}
