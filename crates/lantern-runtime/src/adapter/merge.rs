//! Adapters merged into the weights at load: each updated matrix is dequantized, given
//! `factor · B·A` and quantized again to its own type, so decoding costs what the base
//! model's does. The requantization rounds the update, and the base is changed for every
//! session of the model.

use lantern_core::QTensor;

use crate::{Error, LayerWeights, LoraAdapter, Matrix, Result};

/// `layers`' matrices with `adapter`'s updates at `scale` merged in: all of them, or on an
/// error none.
///
/// # Errors
/// [`Error::MergeUnsupported`] for a streamed block, a SWSC matrix or a type lantern cannot
/// quantize to.
pub(crate) fn merge(layers: &mut [LayerWeights], adapter: &LoraAdapter, scale: f32) -> Result<()> {
    let mut merged = Vec::new();
    for (layer, matrix, u) in adapter.updates() {
        let name = matrix.tensor_name(layer);
        let unsupported = |reason: String| Error::MergeUnsupported { matrix: name.clone(), reason };
        let Some(p) = layers.get_mut(layer).and_then(|l| l.projections.as_mut()) else {
            return Err(unsupported("the block is streamed".into()));
        };
        let Matrix::Blocks(t) = p.get_mut(matrix) else {
            return Err(unsupported("it is stored as SWSC shared columns".into()));
        };
        let mut w = t.dequantize()?;
        let factor = adapter.factor(u, scale);
        // Row o of B·A is the rows of A weighted by row o of B.
        for (row, b) in w.chunks_exact_mut(u.inputs()).zip(u.b().chunks_exact(u.rank())) {
            for (&b, a) in b.iter().zip(u.a().chunks_exact(u.inputs())) {
                row.iter_mut().zip(a).for_each(|(v, &a)| *v += factor * b * a);
            }
        }
        let t = quantized(t, &w).map_err(|e| unsupported(e.to_string()))?;
        merged.push((layer, matrix, t));
    }
    for (layer, matrix, t) in merged {
        if let Some(p) = layers[layer].projections.as_mut() {
            *p.get_mut(matrix) = Matrix::Blocks(t);
        }
    }
    Ok(())
}

/// `values` quantized to `like`'s type and shape, interleaved as `like` is.
fn quantized(like: &QTensor, values: &[f32]) -> Result<QTensor> {
    let ty = like.ty();
    // Rows are whole blocks of `ty`, so the rows one after another quantize as one.
    let mut bytes = vec![0; ty.tensor_bytes(like.dims())?];
    lantern_core::quantize_row(ty, values, &mut bytes)?;
    let t = QTensor::new(ty, like.dims(), lantern_core::TensorBytes::from_vec(bytes))?;
    Ok(if like.is_interleaved() { t.interleaved() } else { t })
}
