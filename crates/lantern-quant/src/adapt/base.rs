//! The frozen base model as training reads it: stored quantized, each block's matrices
//! dequantized to f32 only while a step computes that block, the output head once.

use candle_core::{Device, Tensor};
use lantern_runtime::{Activation, Matrix, Model, RopeStyle};

use super::head_loss::HeadCrossEntropy;
use crate::twin::{self, BlockTensors, Rotation, Shape};
use crate::{Error, Result};

/// A model's frozen weights, and the twin's constants for sequences of `seq_len` tokens.
#[derive(Debug)]
pub(crate) struct Base<'m> {
    model: &'m Model,
    pub(crate) shape: Shape,
    pub(crate) rotation: Rotation,
    output_norm: Tensor,
    /// `[vocab, d_model]`.
    head: Tensor,
}

impl<'m> Base<'m> {
    /// The base of `model`, for sequences of up to `seq_len` tokens.
    ///
    /// # Errors
    /// As [`check_supported`]; [`Error::Core`] when the head cannot be dequantized.
    pub(crate) fn new(model: &'m Model, seq_len: usize) -> Result<Self> {
        check_supported(model)?;
        let weights = model.weights();
        let head = weights.output.as_ref().ok_or_else(|| unsupported("a streamed output head"))?;
        let head = twin::matrix(head.dequantize()?, head.n_rows(), head.row_len())?;
        let shape = Shape::of(model.config());
        let rotation = Rotation::new(&shape, seq_len)?;
        Ok(Self { model, shape, rotation, output_norm: vector(&weights.output_norm)?, head })
    }

    /// The rows of the embedding for `tokens`: `[tokens, d_model]`.
    pub(crate) fn embed(&self, tokens: &[u32]) -> Result<Tensor> {
        let embedding = self.model.weights().token_embd.as_ref();
        let embedding = embedding.ok_or_else(|| unsupported("a streamed embedding"))?;
        let d = self.model.config().d_model;
        let mut x = vec![0.0; tokens.len() * d];
        for (&t, row) in tokens.iter().zip(x.chunks_exact_mut(d)) {
            embedding.dequantize_row(t as usize, row)?;
        }
        twin::matrix(x, tokens.len(), d)
    }

    /// Block `l` in f32, dequantized now.
    pub(crate) fn block(&self, l: usize) -> Result<BlockTensors> {
        let layer = &self.model.weights().layers[l];
        let matrices = matrices(self.model, l)?;
        let mut out = Vec::with_capacity(7);
        for m in matrices {
            out.push(twin::matrix(m.dequantize()?, m.n_rows(), m.row_len())?);
        }
        Ok(BlockTensors {
            matrices: out.try_into().unwrap_or_else(|_| unreachable!("seven matrices")),
            attn_norm: vector(&layer.attn_norm)?,
            ffn_norm: vector(&layer.ffn_norm)?,
        })
    }

    /// The mean next-token cross-entropy of the residual stream `x` at an exit against
    /// `targets`: the final norm, then the head, whose logits are never all held at once.
    pub(crate) fn loss(&self, x: &Tensor, targets: Vec<u32>) -> Result<Tensor> {
        let normed = twin::rms_norm(x, &self.output_norm, self.shape.eps())?;
        Ok(normed.apply_op1(HeadCrossEntropy::new(self.head.clone(), targets))?)
    }
}

/// Block `l`'s `(inputs, outputs)` per matrix, in the order of
/// [`BlockMatrix::ALL`](lantern_runtime::BlockMatrix::ALL).
pub(crate) fn shapes(model: &Model, l: usize) -> Result<[(usize, usize); 7]> {
    Ok(matrices(model, l)?.map(|m| (m.row_len(), m.n_rows())))
}

fn matrices(model: &Model, l: usize) -> Result<[&Matrix; 7]> {
    let p = model.weights().layers[l]
        .projections
        .as_ref()
        .ok_or_else(|| unsupported("streamed blocks (load it resident to tune it)"))?;
    Ok([&p.wq, &p.wk, &p.wv, &p.wo, &p.gate, &p.up, &p.down])
}

/// Checks that the twin computes `model`'s blocks as the runtime does.
///
/// # Errors
/// [`Error::TuneUnsupported`] naming the first difference.
pub(crate) fn check_supported(model: &Model) -> Result<()> {
    let c = model.config();
    let b = &c.block;
    let weights = model.weights();
    let differences = [
        (b.rope != RopeStyle::Adjacent, "RoPE on the two halves of each head".to_string()),
        (b.activation != Activation::Silu, format!("a {:?} FFN activation", b.activation)),
        (b.qkv_bias, "biases on Q, K and V".into()),
        (b.qk_norm, "norms of each query and key head".into()),
        (b.post_norms, "norms after attention and the FFN".into()),
        (b.embedding_scale, "scaled embeddings".into()),
        (c.local_layers.iter().any(|&l| l), "sliding-window layers".into()),
        (c.logit_softcap.is_some(), "a logit softcap".into()),
        (c.rope_scale != 1.0, format!("a RoPE frequency scale of {}", c.rope_scale)),
        (c.rope_attn_factor != 1.0, format!("a RoPE magnitude factor of {}", c.rope_attn_factor)),
        (weights.rope_factors.is_some(), "RoPE frequency factors".into()),
        (weights.token_embd.is_none(), "a streamed embedding".into()),
        (weights.output.is_none(), "a streamed output head".into()),
    ];
    if let Some((_, what)) = differences.into_iter().find(|(differs, _)| *differs) {
        return Err(unsupported(&what));
    }
    for l in 0..c.n_layers {
        matrices(model, l)?;
    }
    Ok(())
}

fn unsupported(what: &str) -> Error {
    Error::TuneUnsupported { what: what.to_string() }
}

fn vector(values: &[f32]) -> Result<Tensor> {
    Ok(Tensor::from_slice(values, values.len(), &Device::Cpu)?)
}
