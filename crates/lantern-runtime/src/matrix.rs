//! [`Matrix`]: a block's weight matrix in one of the forms the decoder multiplies with.
//!
//! A matrix from `in` to `out` values yields `out` values per input: `n` inputs of `in`
//! values, one after another, give `n` runs of `out` results.

use lantern_core::kernels::{reads_q8k, Input};
use lantern_core::QTensor;

use crate::swsc::{SwscMatrix, SwscScratch};
use crate::workers::Workers;
use crate::Result;

/// A block's weight matrix: rows of blocks as in a GGUF file, or shared columns (SWSC).
#[derive(Clone, Debug)]
pub enum Matrix {
    /// Rows of any [`lantern_core::GgmlType`] with kernels, read as stored.
    Blocks(QTensor),
    /// Shared columns and a low-rank correction ([`SwscMatrix`]).
    SharedColumns(Box<SwscMatrix>),
}

/// Buffers the products reuse: the row-split results of a short batch, and a SWSC
/// product's intermediates.
#[derive(Debug, Default)]
pub(crate) struct LinearScratch {
    pub(crate) transpose: Vec<f32>,
    swsc: SwscScratch,
}

impl Matrix {
    /// Inputs: the values each row multiplies.
    pub fn row_len(&self) -> usize {
        match self {
            Self::Blocks(t) => t.row_len(),
            Self::SharedColumns(s) => s.row_len(),
        }
    }

    /// Outputs: rows of the matrix.
    pub fn n_rows(&self) -> usize {
        match self {
            Self::Blocks(t) => t.n_rows(),
            Self::SharedColumns(s) => s.n_rows(),
        }
    }

    /// The rows of blocks, unless the matrix is stored otherwise.
    pub fn blocks(&self) -> Option<&QTensor> {
        match self {
            Self::Blocks(t) => Some(t),
            Self::SharedColumns(_) => None,
        }
    }

    /// The tensors a product multiplies with: the matrix itself, or a SWSC matrix's factors.
    pub fn tensors(&self) -> Box<dyn Iterator<Item = &QTensor> + '_> {
        match self {
            Self::Blocks(t) => Box::new(std::iter::once(t)),
            Self::SharedColumns(s) => Box::new(s.tensors()),
        }
    }

    /// Bytes a product reads: the rows, or a SWSC matrix's factors and labels.
    pub fn bytes(&self) -> usize {
        match self {
            Self::Blocks(t) => t.bytes().len(),
            Self::SharedColumns(s) => s.bytes(),
        }
    }

    /// Whether a product reads the 256-value activation blocks K-quants need.
    pub fn reads_q8k(&self) -> bool {
        self.blocks().is_some_and(|t| reads_q8k(t.ty()))
    }

    /// The matrix as f32, rows one after another.
    ///
    /// # Errors
    /// [`crate::Error::Core`] when it cannot be dequantized.
    pub fn dequantize(&self) -> Result<Vec<f32>> {
        match self {
            Self::Blocks(t) => Ok(t.dequantize()?),
            Self::SharedColumns(s) => s.dequantize(),
        }
    }

    /// `out = W·x` for the inputs of `input`, on the workers.
    pub(crate) fn linear(
        &self,
        workers: &Workers,
        input: Input<'_>,
        out: &mut [f32],
        scratch: &mut LinearScratch,
    ) -> Result<()> {
        match self {
            Self::Blocks(t) => workers.linear(t, input, out, &mut scratch.transpose),
            Self::SharedColumns(s) => s.linear(workers, input, out, &mut scratch.swsc),
        }
    }
}
