//! A whole model's weight matrices re-quantized as [`WeightTypes`] says, each by
//! [`requantize`], with the calibration inputs [`Grams`] holds for the blocks' matrices.

use lantern_core::{GgmlType, QTensor};
use lantern_io::GgufModel;

use crate::{requantize, Error, Grams, Objective, Result, WeightTypes};

/// The weight matrices of `model` that `types` gives another type than their own and
/// `keep` keeps (by name), in the file's order, each re-quantized to its type by
/// `objective` on its inputs' Gram matrix in `grams`; a matrix `grams` has no inputs for
/// (the embedding, the output head, or any with no `grams`) rounds to nearest.
/// `progress(done, total)` hears of the start and of each matrix done.
///
/// # Errors
/// [`Error::Requantize`] naming the matrix that could not be re-quantized, and
/// [`Error::File`] when a tensor cannot be read.
pub fn requantize_matrices(
    model: &GgufModel,
    types: &WeightTypes,
    objective: Objective,
    grams: Option<&Grams>,
    keep: impl Fn(&str) -> bool,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<(String, QTensor)>> {
    let tensors: Vec<(&str, GgmlType)> = model
        .gguf()
        .tensors()
        .iter()
        .filter(|info| keep(&info.name))
        .filter_map(|info| {
            Some((info.name.as_str(), types.of(&info.name).filter(|&t| t != info.ty)?))
        })
        .collect();
    let mut out = Vec::with_capacity(tensors.len());
    progress(0, tensors.len());
    for (i, &(name, ty)) in tensors.iter().enumerate() {
        let tensor = model.tensor(name)?;
        let gram = grams.and_then(|g| g.of_matrix(name));
        let requantized = requantize_named(name, &tensor, ty, objective, gram.as_ref())?;
        out.push((name.to_owned(), requantized));
        progress(i + 1, tensors.len());
    }
    Ok(out)
}

/// [`requantize`] of the tensor named `name`, by `objective` when `gram` is there and to
/// nearest otherwise; an error names the tensor.
pub(crate) fn requantize_named(
    name: &str,
    tensor: &QTensor,
    ty: GgmlType,
    objective: Objective,
    gram: Option<&crate::Gram>,
) -> Result<QTensor> {
    let objective = if gram.is_some() { objective } else { Objective::Nearest };
    requantize(tensor, ty, objective, gram).map_err(|e| Error::Requantize {
        name: name.to_owned(),
        ty,
        source: Box::new(e),
    })
}
