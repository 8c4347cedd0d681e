//! A differentiable twin of the runtime's decoder block, in candle: the same RMSNorm,
//! adjacent-pair RoPE, causal grouped-query attention and gated FFN, on f32 activations
//! (the runtime quantizes them to 8 bits before each product), so that gradients can reach
//! the quantization scales of a block's matrices (re-quantization) or to low-rank updates
//! added to them (LoRA tuning, [`adapted_block`]).

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Tensor, D};
use lantern_runtime::ModelConfig;

use crate::{Error, Result};

/// The shapes and constants a block's forward pass needs.
#[derive(Clone, Debug)]
pub(crate) struct Shape {
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    rope_dim: usize,
    rope_base: f32,
    eps: f64,
}

impl Shape {
    pub(crate) fn of(config: &ModelConfig) -> Self {
        Self {
            n_heads: config.n_heads,
            n_kv_heads: config.n_kv_heads,
            head_dim: config.head_dim,
            rope_dim: config.rope_dim,
            rope_base: config.rope_base,
            eps: f64::from(config.rms_eps),
        }
    }

    /// RMSNorm's epsilon.
    pub(crate) fn eps(&self) -> f64 {
        self.eps
    }
}

/// One block's weights as the twin multiplies them: matrices `[outputs, inputs]`, in the
/// order of [`lantern_runtime::Projections`], and the two norm gains.
#[derive(Clone, Debug)]
pub(crate) struct BlockTensors {
    pub(crate) matrices: [Tensor; 7],
    pub(crate) attn_norm: Tensor,
    pub(crate) ffn_norm: Tensor,
}

/// The angles of RoPE for positions `0..tokens`: `(cos, sin)`, each `[tokens, 1, pairs, 1]`.
#[derive(Debug)]
pub(crate) struct Rotation {
    cos: Tensor,
    sin: Tensor,
}

impl Rotation {
    /// The angles `pos · base^(−2i/rope_dim)` of the rotated pairs, for `tokens` positions.
    pub(crate) fn new(shape: &Shape, tokens: usize) -> Result<Self> {
        let pairs = shape.rope_dim.min(shape.head_dim) / 2;
        let theta_scale = shape.rope_base.powf(-2.0 / shape.rope_dim as f32);
        let mut angles = Vec::with_capacity(tokens * pairs);
        for pos in 0..tokens {
            let mut theta = pos as f32;
            for _ in 0..pairs {
                angles.push(theta);
                theta *= theta_scale;
            }
        }
        let angles = Tensor::from_vec(angles, (tokens, 1, pairs, 1), &Device::Cpu)?;
        Ok(Self { cos: angles.cos()?, sin: angles.sin()? })
    }
}

/// `x / rms(x) · gain`, per row.
pub(crate) fn rms_norm(x: &Tensor, gain: &Tensor, eps: f64) -> Result<Tensor> {
    let mean_square = x.sqr()?.mean_keepdim(D::Minus1)?;
    Ok(x.broadcast_div(&(mean_square + eps)?.sqrt()?)?.broadcast_mul(gain)?)
}

/// `x·Wᵀ` for `x` of `[tokens, inputs]` and `w` of `[outputs, inputs]`.
pub(crate) fn linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if x.track_op() && !w.track_op() {
        return Ok(x.contiguous()?.apply_op1(FrozenProduct(w.clone()))?);
    }
    Ok(x.matmul(&w.t()?)?)
}

/// `x·Wᵀ` for a `W` that is not trained. candle's matmul computes the gradients of both
/// factors, so a frozen weight would cost as much work again as the input's gradient, and a
/// weight-sized buffer per matrix; this product's backward pass gives the input's only.
struct FrozenProduct(Tensor);

impl CustomOp1 for FrozenProduct {
    fn name(&self) -> &'static str {
        "frozen-product"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, candle_core::Shape)> {
        op_output(&op_input(self.name(), storage, layout)?.matmul(&self.0.t()?)?)
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.matmul(&self.0)?))
    }
}

/// A low-rank update of one matrix's product: `x·Wᵀ` becomes `x·Wᵀ + (x·Aᵀ)·Bᵀ·factor`, for
/// `a` of `[rank, inputs]` and `b` of `[outputs, rank]`: the runtime's `W + factor·B·A`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Delta<'a> {
    pub(crate) a: &'a Tensor,
    pub(crate) b: &'a Tensor,
    pub(crate) factor: f64,
}

/// Block `b`'s output for the residual stream `x` (`[tokens, d_model]`, positions from 0).
pub(crate) fn block(
    shape: &Shape,
    rotation: &Rotation,
    b: &BlockTensors,
    x: &Tensor,
) -> Result<Tensor> {
    adapted_block(shape, rotation, b, &[None; 7], x)
}

/// [`block`] with `deltas` added to the products of its matrices (in the order of
/// [`BlockTensors::matrices`]); `None` leaves a matrix as it is.
pub(crate) fn adapted_block(
    shape: &Shape,
    rotation: &Rotation,
    b: &BlockTensors,
    deltas: &[Option<Delta<'_>>; 7],
    x: &Tensor,
) -> Result<Tensor> {
    let product = |i: usize, x: &Tensor| -> Result<Tensor> {
        let base = linear(x, &b.matrices[i])?;
        let Some(d) = deltas[i] else { return Ok(base) };
        Ok((base + (linear(&linear(x, d.a)?, d.b)? * d.factor)?)?)
    };
    let h = rms_norm(x, &b.attn_norm, shape.eps)?;
    let att = attention(shape, rotation, &product(0, &h)?, &product(1, &h)?, &product(2, &h)?)?;
    let x = (x + product(3, &att)?)?;
    let h = rms_norm(&x, &b.ffn_norm, shape.eps)?;
    let act = (product(4, &h)?.silu()? * product(5, &h)?)?;
    Ok((&x + product(6, &act)?)?)
}

/// Causal attention of `[tokens, heads·head_dim]` queries over keys and values of
/// `[tokens, kv_heads·head_dim]`; query head `h` reads kv head `h / (heads / kv_heads)`.
fn attention(
    shape: &Shape,
    rotation: &Rotation,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
) -> Result<Tensor> {
    let (n, hd) = (q.dim(0)?, shape.head_dim);
    let (heads, kv_heads) = (shape.n_heads, shape.n_kv_heads);
    let group = heads / kv_heads;
    let q = rope(shape, rotation, &q.reshape((n, heads, hd))?)?.transpose(0, 1)?;
    let k = rope(shape, rotation, &k.reshape((n, kv_heads, hd))?)?.transpose(0, 1)?;
    let v = v.reshape((n, kv_heads, hd))?.transpose(0, 1)?;
    // Each kv head repeated for its group of query heads: [heads, tokens, head_dim].
    let repeat = |t: Tensor| -> Result<Tensor> {
        Ok(t.unsqueeze(1)?.expand((kv_heads, group, n, hd))?.reshape((heads, n, hd))?)
    };
    let (k, v) = (repeat(k)?, repeat(v.contiguous()?)?);
    let scores = (q.contiguous()?.matmul(&k.t()?)? / (hd as f64).sqrt())?;
    let scores = scores.broadcast_add(&causal_mask(n)?)?;
    let weights = scores.contiguous()?.apply_op1(Softmax)?;
    Ok(weights.matmul(&v)?.transpose(0, 1)?.reshape((n, heads * hd))?)
}

/// The f32 values a custom op's CPU pass receives, as a tensor of their shape.
pub(crate) fn op_input(
    op: &str,
    storage: &CpuStorage,
    layout: &Layout,
) -> candle_core::Result<Tensor> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op}: the input must be contiguous")
    };
    Tensor::from_slice(&storage.as_slice::<f32>()?[start..end], layout.shape(), &Device::Cpu)
}

/// A custom op's result `y`, as its CPU pass returns it.
fn op_output(y: &Tensor) -> candle_core::Result<(CpuStorage, candle_core::Shape)> {
    Ok((CpuStorage::F32(y.flatten_all()?.to_vec1()?), y.shape().clone()))
}

/// Softmax over the last dimension, with a backward pass: candle_nn's fast
/// `softmax_last_dim` has none (it is applied without one), so gradients would not reach the
/// queries and keys; composing it of exp, sum and div would keep four score-sized tensors per
/// block for the backward pass where this keeps one.
struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "softmax"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, candle_core::Shape)> {
        op_output(&candle_nn::ops::softmax_last_dim(&op_input(self.name(), storage, layout)?)?)
    }

    /// `y ⊙ (g − Σ g⊙y)`, the sum over the last dimension.
    fn bwd(&self, _x: &Tensor, y: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let dot = (grad * y)?.sum_keepdim(D::Minus1)?;
        Ok(Some((y * grad.broadcast_sub(&dot)?)?))
    }
}

/// 0 where a token may attend, −∞ where it may not: `[tokens, tokens]`.
fn causal_mask(n: usize) -> Result<Tensor> {
    let mask: Vec<f32> = (0..n)
        .flat_map(|i| (0..n).map(move |j| if j <= i { 0.0 } else { f32::NEG_INFINITY }))
        .collect();
    Ok(Tensor::from_vec(mask, (n, n), &Device::Cpu)?)
}

/// RoPE of `[tokens, heads, head_dim]`: the first `rope_dim` values of each head turned in
/// adjacent pairs `(2i, 2i+1)`, as the runtime does.
fn rope(shape: &Shape, rotation: &Rotation, x: &Tensor) -> Result<Tensor> {
    let (n, heads, hd) = x.dims3()?;
    let rotated = shape.rope_dim.min(hd);
    let pairs = x.narrow(2, 0, rotated)?.reshape((n, heads, rotated / 2, 2))?;
    let (a, b) = (pairs.narrow(3, 0, 1)?, pairs.narrow(3, 1, 1)?);
    let (cos, sin) = (rotation.cos.narrow(0, 0, n)?, rotation.sin.narrow(0, 0, n)?);
    let (cos, sin) = (&cos, &sin);
    let first = (a.broadcast_mul(cos)? - b.broadcast_mul(sin)?)?;
    let second = (a.broadcast_mul(sin)? + b.broadcast_mul(cos)?)?;
    let turned = Tensor::cat(&[first, second], 3)?.reshape((n, heads, rotated))?;
    if rotated == hd {
        return Ok(turned);
    }
    Ok(Tensor::cat(&[turned, x.narrow(2, rotated, hd - rotated)?], 2)?)
}

/// `values` (rows of `cols`) as a `[rows, cols]` tensor.
pub(crate) fn matrix(values: Vec<f32>, rows: usize, cols: usize) -> Result<Tensor> {
    if values.len() != rows * cols {
        return Err(Error::Length {
            what: "matrix values",
            expected: rows * cols,
            actual: values.len(),
        });
    }
    Ok(Tensor::from_vec(values, (rows, cols), &Device::Cpu)?)
}

/// The tensor's values, row after row.
pub(crate) fn values(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?)
}
