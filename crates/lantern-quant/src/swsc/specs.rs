//! Which matrices of a model to store as SWSC factors ([`SwscSpec`]), checked against the
//! model before any calibration runs ([`plan_swsc`]), and the factoring itself
//! ([`factor_swsc`]), which gives a container the tensors that stand for each matrix.

use lantern_core::QTensor;
use lantern_io::GgufModel;
use lantern_runtime::BlockMatrix;

use super::{Swsc, MAX_CLUSTERS};
use crate::{Error, Grams, Result};

/// A cluster count: a number, or a share of the matrix's input channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clusters {
    /// This many clusters.
    Count(usize),
    /// The matrix's input channels divided by this (rounded down).
    InputsOver(usize),
}

impl Clusters {
    /// The count for a matrix of `inputs` input channels.
    pub fn of(self, inputs: usize) -> usize {
        match self {
            Self::Count(k) => k,
            Self::InputsOver(d) => inputs.checked_div(d).unwrap_or(0),
        }
    }
}

/// Which block matrices to factor, and how: `clusters` clusters of input channels and a
/// residual of rank `rank`.
#[derive(Clone, Debug, PartialEq)]
pub struct SwscSpec {
    /// The kinds of block matrix it applies to.
    pub matrices: Vec<BlockMatrix>,
    /// Clusters of input channels.
    pub clusters: Clusters,
    /// Rank of the low-rank residual (0 for none).
    pub rank: usize,
}

/// One matrix to factor: its name, cluster count and rank.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwscTarget {
    /// The matrix's tensor name (`blk.N.PART.weight`).
    pub name: String,
    /// Clusters of input channels.
    pub clusters: usize,
    /// Rank of the residual.
    pub rank: usize,
}

/// The tensors a container stores for SWSC-factored matrices, and what they weigh.
#[derive(Clone, Debug)]
pub struct SwscFactors {
    /// Per factored matrix, its name and the tensors stored in its place
    /// ([`Swsc::tensors`]).
    pub substitutes: Vec<(String, Vec<(String, QTensor)>)>,
    /// Bytes of the factors, as stored.
    pub bytes: usize,
    /// Bytes of the matrices they replace.
    pub dense_bytes: usize,
}

/// The matrices of `model` that `specs` name (later specs winning), in the file's order,
/// each with its cluster count and rank, checked to fit: 1 ≤ k ≤ min(inputs, 65536) and
/// r ≤ min(inputs, outputs).
///
/// # Errors
/// [`Error::NotAMatrix`] for a named tensor that is not two-dimensional,
/// [`Error::SwscClusters`] and [`Error::SwscRank`] for a count or rank that does not fit a
/// matrix.
pub fn plan_swsc(model: &GgufModel, specs: &[SwscSpec]) -> Result<Vec<SwscTarget>> {
    let mut out = Vec::new();
    for info in model.gguf().tensors() {
        let Some((_, matrix)) = BlockMatrix::parse(&info.name) else { continue };
        let Some(spec) = specs.iter().rev().find(|s| s.matrices.contains(&matrix)) else {
            continue;
        };
        let (inputs, outputs) = match info.dims[..] {
            [inputs, outputs] => (inputs, outputs),
            _ => {
                return Err(Error::NotAMatrix { name: info.name.clone(), dims: info.dims.clone() })
            }
        };
        let (clusters, rank) = (spec.clusters.of(inputs), spec.rank);
        if clusters == 0 || clusters > inputs.min(MAX_CLUSTERS) {
            return Err(Error::SwscClusters { matrix: info.name.clone(), clusters, inputs });
        }
        if rank > inputs.min(outputs) {
            return Err(Error::SwscRank { matrix: info.name.clone(), rank, outputs, inputs });
        }
        out.push(SwscTarget { name: info.name.clone(), clusters, rank });
    }
    Ok(out)
}

/// Each matrix of `plan` factored, its clustering weighted by the channel energies of its
/// inputs (the diagonal of their Gram matrix in `grams`), as the tensors that stand for it
/// in a container. `progress(done, total)` hears of the start and of each matrix done.
///
/// # Errors
/// [`Error::Calibration`] when `grams` has no inputs for a matrix, [`Error::Factor`] naming
/// a matrix the factoring failed on, and [`Error::File`] when a tensor cannot be read.
pub fn factor_swsc(
    model: &GgufModel,
    plan: &[SwscTarget],
    grams: &Grams,
    mut progress: impl FnMut(usize, usize),
) -> Result<SwscFactors> {
    let mut factors = SwscFactors { substitutes: Vec::new(), bytes: 0, dense_bytes: 0 };
    progress(0, plan.len());
    for (i, target) in plan.iter().enumerate() {
        let SwscTarget { name, clusters, rank } = target;
        let tensor = model.tensor(name)?;
        let energies = grams
            .of_matrix(name)
            .ok_or_else(|| Error::Calibration(format!("no calibration inputs for {name}")))?
            .diagonal();
        let swsc = Swsc::builder(*clusters, *rank)
            .channel_energies(energies)
            .factor_tensor(&tensor)
            .map_err(|e| Error::Factor {
                name: name.clone(),
                clusters: *clusters,
                rank: *rank,
                source: Box::new(e),
            })?;
        factors.bytes += swsc.bytes();
        factors.dense_bytes += tensor.bytes().len();
        factors.substitutes.push((name.clone(), swsc.tensors(name)?));
        progress(i + 1, plan.len());
    }
    Ok(factors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_counts_follow_the_inputs() {
        assert_eq!(Clusters::InputsOver(4).of(576), 144);
        assert_eq!(Clusters::Count(768).of(576), 768);
        assert_eq!(Clusters::InputsOver(0).of(576), 0);
    }
}
