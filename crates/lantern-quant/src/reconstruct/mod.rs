//! Cross-block reconstruction: each block's quantization scales trained, through a
//! differentiable twin of the decoder, to reproduce what the original model computes
//! further on (after Shabanovi et al. 2024, who compare where that error is measured).
//!
//! Blocks are taken in order, one window of consecutive blocks at a time. A window's
//! matrices start from the per-matrix scale search ([`Objective::ScaleSearch`]) and their
//! scales are trained with Adam, rounding passing its gradient straight through, on the
//! calibration chunks: the window's input is the residual stream of the model quantized so
//! far, and its target what the original model computes from its own stream. The window's
//! blocks are then quantized for good and the two streams carried past them.
//!
//! [`Target`] says where the error is measured:
//! - [`Target::Block`]: each block's output, alone (the single-block baseline);
//! - [`Target::Window`]: the output of the last of `n` blocks trained jointly;
//! - [`Target::Downstream`]: the pre-activations of the next block, the query, key and value
//!   projections of its normed input (the final norm's output, after the last block), so
//!   that the error counts as the next block reads it: per token relative to the stream's
//!   size, and only in the directions it projects.
//!
//! [`Objective::ScaleSearch`]: crate::Objective::ScaleSearch

mod fake_quant;

use std::ops::Range;

use candle_core::{Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use lantern_core::{quantize_row_on, GgmlType, Grid, QTensor, TensorBytes, QK8};
use lantern_io::ModelFile;
use lantern_runtime::{BlockMatrix, Model};

use crate::reconstruct::fake_quant::FakeQuant;
use crate::twin::{self, BlockTensors, Rotation, Shape};
use crate::{scale_search, Error, Grams, Result};

/// Where a block's quantization error is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// The block's own output.
    Block,
    /// The output of the last block of a window of this many, trained jointly.
    Window(usize),
    /// The next block's query, key and value pre-activations.
    Downstream,
}

/// Settings of [`reconstruct`].
#[derive(Clone, Debug)]
pub struct Reconstruction {
    /// Where the error is measured.
    pub target: Target,
    /// Optimizer steps per block, each on one calibration chunk (a window of `n` blocks
    /// takes `n` times as many).
    pub steps: usize,
    /// Adam's step, as a share of each scale.
    pub learning_rate: f64,
}

impl Default for Reconstruction {
    fn default() -> Self {
        Self { target: Target::Block, steps: 32, learning_rate: 5e-3 }
    }
}

/// What training one window did: the mean loss over its first and its last chunk-sized
/// rounds of steps.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowReport {
    /// The window's blocks.
    pub blocks: Range<usize>,
    /// Mean loss of the first steps (one per chunk, at most).
    pub loss_before: f64,
    /// Mean loss of the last steps (one per chunk, at most).
    pub loss_after: f64,
}

/// Every block's seven matrices of the model in `file` re-quantized to `ty` with scales
/// trained as `options` says on `chunks` of calibration tokens, starting from the scale
/// search on `grams` (the Gram matrices of the original model's inputs to each matrix),
/// named (`blk.N.PART.weight`), block by block in the order of [`BlockMatrix::ALL`].
/// `on_window` hears of each window as it is done.
///
/// # Errors
/// [`Error::Model`] when the model does not load;
/// [`Error::NoGrid`] for a type without a [`Grid`] or one that stores offsets (Q4_1);
/// [`Error::Calibration`] for no chunks, a window of 0 blocks or a streamed model;
/// [`Error::Training`] when a tensor operation fails; [`Error::Core`] when a matrix cannot
/// be dequantized.
pub fn reconstruct(
    file: &dyn ModelFile,
    ty: GgmlType,
    chunks: &[&[u32]],
    grams: &Grams,
    options: &Reconstruction,
    mut on_window: impl FnMut(&WindowReport),
) -> Result<Vec<(String, QTensor)>> {
    let grid = Grid::of(ty).filter(|g| !g.has_min()).ok_or(Error::NoGrid(ty))?;
    let window = match options.target {
        Target::Window(n) => n,
        Target::Block | Target::Downstream => 1,
    };
    if chunks.is_empty() || chunks.iter().any(|c| c.is_empty()) || window == 0 {
        return Err(Error::Calibration("no calibration tokens, or a window of no blocks".into()));
    }
    let model = &Model::load(file)?;
    if model.config().architecture != "llama" {
        return Err(Error::Architecture(model.config().architecture.clone()));
    }
    let original = Original::load(model)?;
    let shape = Shape::of(model.config());
    let longest = chunks.iter().map(|c| c.len()).max().unwrap_or(0);
    let rotation = Rotation::new(&shape, longest)?;
    let mut streams = Streams::embed(model, chunks)?;
    let n_layers = original.blocks.len();
    let mut out = Vec::with_capacity(n_layers * BlockMatrix::ALL.len());
    for start in (0..n_layers).step_by(window) {
        let blocks = start..(start + window).min(n_layers);
        let mut trained = Vec::new();
        for l in blocks.clone() {
            let p = matrices(model, l)?;
            trained.push(starting_point(p, l, grid, grams)?);
        }
        let run =
            Run { shape: &shape, rotation: &rotation, original: &original, blocks: blocks.clone() };
        let original_out = streams
            .fp
            .iter()
            .map(|x| run.forward(x, run.original_blocks()))
            .collect::<Result<Vec<_>>>()?;
        let targets = original_out
            .iter()
            .map(|y| run.measure(y, options.target))
            .collect::<Result<Vec<_>>>()?;
        let report = run.train(&trained, &streams.quantized, &targets, options)?;
        let quantized: Vec<[QTensor; 7]> = trained
            .iter()
            .zip(blocks.clone())
            .map(|(fq, l)| store(fq, matrices(model, l)?, grid))
            .collect::<Result<_>>()?;
        let as_tensors = quantized
            .iter()
            .zip(blocks.clone())
            .map(|(q, l)| original.with_matrices(l, q))
            .collect::<Result<Vec<_>>>()?;
        streams.advance(&run, original_out, &as_tensors)?;
        for (l, matrices) in blocks.clone().zip(quantized) {
            out.extend(
                BlockMatrix::ALL.into_iter().zip(matrices).map(|(m, t)| (m.tensor_name(l), t)),
            );
        }
        on_window(&report);
    }
    Ok(out)
}

/// The original model's blocks as tensors, and its final norm.
struct Original {
    blocks: Vec<BlockTensors>,
    output_norm: Tensor,
}

impl Original {
    fn load(model: &Model) -> Result<Self> {
        let weights = model.weights();
        let blocks = (0..weights.layers.len())
            .map(|l| {
                let layer = &weights.layers[l];
                Ok(BlockTensors {
                    matrices: try_map(matrices(model, l)?, |m| {
                        twin::matrix(m.dequantize()?, m.n_rows(), m.row_len())
                    })?,
                    attn_norm: vector(&layer.attn_norm)?,
                    ffn_norm: vector(&layer.ffn_norm)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { blocks, output_norm: vector(&weights.output_norm)? })
    }

    /// Block `l` with `matrices` in place of its own.
    fn with_matrices(&self, l: usize, matrices: &[QTensor; 7]) -> Result<BlockTensors> {
        let matrices = try_map(matrices.each_ref(), |m| {
            twin::matrix(m.dequantize()?, m.n_rows(), m.row_len())
        })?;
        Ok(BlockTensors { matrices, ..self.blocks[l].clone() })
    }
}

/// The residual streams of the calibration chunks ahead of the next block: the original
/// model's, and the one quantized so far.
struct Streams {
    fp: Vec<Tensor>,
    quantized: Vec<Tensor>,
}

impl Streams {
    fn embed(model: &Model, chunks: &[&[u32]]) -> Result<Self> {
        let embedding =
            model.weights().token_embd.as_ref().ok_or_else(|| {
                Error::Calibration("a streamed embedding cannot be read here".into())
            })?;
        let d = model.config().d_model;
        let fp = chunks
            .iter()
            .map(|tokens| {
                let mut x = vec![0.0; tokens.len() * d];
                for (&t, row) in tokens.iter().zip(x.chunks_exact_mut(d)) {
                    embedding.dequantize_row(t as usize, row)?;
                }
                twin::matrix(x, tokens.len(), d)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { quantized: fp.clone(), fp })
    }

    /// Both streams past `run`'s blocks: the original one to `original_out`, the quantized
    /// one through `quantized`.
    fn advance(
        &mut self,
        run: &Run<'_>,
        original_out: Vec<Tensor>,
        quantized: &[BlockTensors],
    ) -> Result<()> {
        self.fp = original_out;
        for q in &mut self.quantized {
            *q = run.forward(q, quantized.iter())?;
        }
        Ok(())
    }
}

/// One window of blocks being trained.
struct Run<'a> {
    shape: &'a Shape,
    rotation: &'a Rotation,
    original: &'a Original,
    blocks: Range<usize>,
}

impl Run<'_> {
    fn original_blocks(&self) -> std::slice::Iter<'_, BlockTensors> {
        self.original.blocks[self.blocks.clone()].iter()
    }

    /// `x` through `blocks`, in order.
    fn forward<'b>(
        &self,
        x: &Tensor,
        blocks: impl Iterator<Item = &'b BlockTensors>,
    ) -> Result<Tensor> {
        let mut x = x.clone();
        for b in blocks {
            x = twin::block(self.shape, self.rotation, b, &x)?;
        }
        Ok(x)
    }

    /// What `target` measures of the window's output `y`.
    fn measure(&self, y: &Tensor, target: Target) -> Result<Tensor> {
        if target != Target::Downstream {
            return Ok(y.clone());
        }
        let eps = self.shape.eps();
        let Some(next) = self.original.blocks.get(self.blocks.end) else {
            return twin::rms_norm(y, &self.original.output_norm, eps);
        };
        let h = twin::rms_norm(y, &next.attn_norm, eps)?;
        let [wq, wk, wv, ..] = &next.matrices;
        let [q, k, v] = [wq, wk, wv].map(|w| twin::linear(&h, w));
        Ok(Tensor::cat(&[q?, k?, v?], 1)?)
    }

    /// Trains `trained` (the window's matrices, 7 per block) so that the window, from the
    /// quantized streams `inputs`, gives `targets`.
    fn train(
        &self,
        trained: &[[FakeQuant; 7]],
        inputs: &[Tensor],
        targets: &[Tensor],
        options: &Reconstruction,
    ) -> Result<WindowReport> {
        let vars = trained.iter().flatten().map(|fq| fq.var().clone()).collect();
        let params =
            ParamsAdamW { lr: options.learning_rate, weight_decay: 0.0, ..Default::default() };
        let mut adam = AdamW::new(vars, params)?;
        let steps = options.steps * self.blocks.len();
        let round = inputs.len().min(steps).max(1);
        let mut losses = Vec::with_capacity(steps);
        for step in 0..steps {
            let c = step % inputs.len();
            let leaves = trained
                .iter()
                .map(|fq| try_map(fq.each_ref(), FakeQuant::quantized))
                .collect::<Result<Vec<_>>>()?;
            let blocks: Vec<_> = leaves
                .iter()
                .zip(self.blocks.clone())
                .map(|(leaves, l)| BlockTensors {
                    matrices: leaves.each_ref().map(|v| v.as_tensor().clone()),
                    ..self.original.blocks[l].clone()
                })
                .collect();
            let y = self.measure(&self.forward(&inputs[c], blocks.iter())?, options.target)?;
            let loss = (y - &targets[c])?.sqr()?.mean_all()?;
            losses.push(f64::from(loss.to_scalar::<f32>()?));
            let mut grads = loss.backward()?;
            for (fq, leaf) in trained.iter().flatten().zip(leaves.iter().flatten()) {
                if let Some(grad) = grads.remove(leaf.as_tensor()) {
                    grads.insert(fq.var().as_tensor(), fq.scale_gradient(&grad)?);
                }
            }
            adam.step(&grads)?;
        }
        let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len().max(1) as f64;
        Ok(WindowReport {
            blocks: self.blocks.clone(),
            loss_before: mean(&losses[..round.min(losses.len())]),
            loss_after: mean(&losses[losses.len().saturating_sub(round)..]),
        })
    }
}

/// Block `l`'s seven matrices, in the order of [`BlockMatrix::ALL`] (that of
/// [`Projections`](lantern_runtime::Projections)).
fn matrices(model: &Model, l: usize) -> Result<[&QTensor; 7]> {
    let p = model.weights().layers[l]
        .projections
        .as_ref()
        .ok_or_else(|| Error::Calibration("a streamed model's blocks cannot be trained".into()))?;
    try_map([&p.wq, &p.wk, &p.wv, &p.wo, &p.gate, &p.up, &p.down], |m| {
        m.blocks().ok_or_else(|| Error::Calibration("SWSC matrices cannot be trained".into()))
    })
}

/// Block `l`'s matrices ready to train, on the scales the per-matrix search picks.
fn starting_point(
    matrices: [&QTensor; 7],
    l: usize,
    grid: Grid,
    grams: &Grams,
) -> Result<[FakeQuant; 7]> {
    let mut out = Vec::with_capacity(7);
    for (m, site) in matrices.into_iter().zip(BlockMatrix::ALL.map(BlockMatrix::input_site)) {
        let (rows, cols) = (m.n_rows(), m.row_len());
        let energies = grams
            .gram(l, site)
            .filter(|g| g.dim() == cols && g.vectors() > 0)
            .map(|g| g.diagonal())
            .ok_or_else(|| Error::Calibration(format!("no calibration inputs for block {l}")))?;
        let weights = m.dequantize()?;
        let (_, scales) = scale_search::search(&weights, cols, grid, &energies);
        out.push(FakeQuant::new(weights, rows, cols, grid, &scales)?);
    }
    Ok(out.try_into().unwrap_or_else(|_| unreachable!("seven matrices")))
}

/// `trained` stored as blocks of `grid`'s type: its learned scales, rounded as blocks store
/// them, and each weight's nearest code on them. `like` gives the dims.
fn store(trained: &[FakeQuant; 7], like: [&QTensor; 7], grid: Grid) -> Result<[QTensor; 7]> {
    let ty = grid.ty();
    let mut out = Vec::with_capacity(7);
    for (fq, like) in trained.iter().zip(like) {
        let cols = like.row_len();
        let (weights, scales) = (fq.weights(), fq.scales()?);
        let row_bytes = ty.row_bytes(cols)?;
        let mut bytes = vec![0; row_bytes * like.n_rows()];
        let per_row = cols / QK8;
        for (r, row) in bytes.chunks_exact_mut(row_bytes.max(1)).enumerate() {
            let values = &weights[r * cols..(r + 1) * cols];
            quantize_row_on(ty, values, &scales[r * per_row..(r + 1) * per_row], row)?;
        }
        out.push(QTensor::new(ty, like.dims(), TensorBytes::from_vec(bytes))?);
    }
    Ok(out.try_into().unwrap_or_else(|_| unreachable!("seven matrices")))
}

fn vector(values: &[f32]) -> Result<Tensor> {
    Ok(Tensor::from_slice(values, values.len(), &Device::Cpu)?)
}

/// `f` of each of seven, or its first error.
fn try_map<A, B>(items: [A; 7], f: impl FnMut(A) -> Result<B>) -> Result<[B; 7]> {
    let out = items.into_iter().map(f).collect::<Result<Vec<B>>>()?;
    Ok(out.try_into().unwrap_or_else(|_| unreachable!("seven items")))
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
