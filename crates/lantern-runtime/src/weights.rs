//! The decoder's weights, found by name in a model file and checked against the config.
//!
//! Names follow llama.cpp's tensor-name table (`blk.N.attn_q.weight`, …), which every
//! llama-family GGUF shares; shapes are innermost first, so a projection from `a` to `b`
//! values is `[a, b]`. A block's matrix may instead be stored as SWSC factors
//! ([`SwscMatrix`]), which [`Weights::load`] finds when the matrix itself is absent.

use lantern_core::{GgmlType, QTensor};
use lantern_io::gguf::block_tensor_name;
use lantern_io::ModelFile;

use crate::swsc::{swsc_tensor_names, SwscMatrix};
use crate::{BlockMatrix, Error, Matrix, ModelConfig, Result};

/// The matrices of one transformer block, in the order a token meets them.
#[derive(Clone, Debug)]
pub struct Projections {
    /// Query projection, `[d_model, n_heads·head_dim]`.
    pub wq: Matrix,
    /// Key projection, `[d_model, kv_dim]`.
    pub wk: Matrix,
    /// Value projection, `[d_model, kv_dim]`.
    pub wv: Matrix,
    /// Attention output projection, `[n_heads·head_dim, d_model]`.
    pub wo: Matrix,
    /// FFN gate projection, `[d_model, f]`, `f` the block's FFN width (at most `n_ff`).
    pub gate: Matrix,
    /// FFN up projection, `[d_model, f]`.
    pub up: Matrix,
    /// FFN down projection, `[f, d_model]`.
    pub down: Matrix,
}

/// The weights of one transformer block.
#[derive(Clone, Debug)]
pub struct LayerWeights {
    /// RMSNorm gain before attention, `[d_model]`.
    pub attn_norm: Vec<f32>,
    /// RMSNorm gain before the FFN, `[d_model]`.
    pub ffn_norm: Vec<f32>,
    /// Biases of the Q, K and V projections, where the architecture has them.
    pub qkv_bias: Option<[Vec<f32>; 3]>,
    /// RMSNorm gains of each query and each key head, `[head_dim]`, where the architecture
    /// normalises them.
    pub qk_norm: Option<[Vec<f32>; 2]>,
    /// RMSNorm gains of the attention and the FFN outputs, `[d_model]`, where the
    /// architecture normalises them before the residual.
    pub post_norms: Option<[Vec<f32>; 2]>,
    /// The matrices; `None` when they are streamed from storage.
    pub projections: Option<Projections>,
}

/// All weights of a llama-family decoder that are resident in memory.
#[derive(Clone, Debug)]
pub struct Weights {
    /// Token embedding, `[d_model, vocab]`; `None` when its rows are read from storage.
    pub token_embd: Option<QTensor>,
    /// Transformer blocks in order.
    pub layers: Vec<LayerWeights>,
    /// Final RMSNorm gain, `[d_model]`.
    pub output_norm: Vec<f32>,
    /// Output head, `[d_model, vocab]` (the embedding itself when the model ties them);
    /// `None` when it is streamed.
    pub output: Option<QTensor>,
    /// RoPE's frequency factors (`[rope_dim / 2]`): each pair's angle is divided by its
    /// factor.
    pub rope_factors: Option<RopeFactors>,
}

impl Projections {
    /// The shape `[inputs, outputs]` each matrix of block `layer` must have, in order.
    pub(crate) fn shapes(config: &ModelConfig, layer: usize) -> [[usize; 2]; 7] {
        let (d, kv, ff) = (config.d_model, config.kv_dim(), config.ffn_widths[layer]);
        let q = config.n_heads * config.head_dim;
        [[d, q], [d, kv], [d, kv], [q, d], [d, ff], [d, ff], [ff, d]]
    }

    /// The seven matrices, in order.
    pub(crate) fn from_vec(mut matrices: Vec<Matrix>) -> Option<Self> {
        let down = matrices.pop()?;
        let up = matrices.pop()?;
        let gate = matrices.pop()?;
        let wo = matrices.pop()?;
        let wv = matrices.pop()?;
        let wk = matrices.pop()?;
        let wq = matrices.pop()?;
        matrices.is_empty().then_some(Self { wq, wk, wv, wo, gate, up, down })
    }

    /// The matrix `m`.
    pub(crate) fn get_mut(&mut self, m: BlockMatrix) -> &mut Matrix {
        match m {
            BlockMatrix::AttnQ => &mut self.wq,
            BlockMatrix::AttnK => &mut self.wk,
            BlockMatrix::AttnV => &mut self.wv,
            BlockMatrix::AttnOutput => &mut self.wo,
            BlockMatrix::FfnGate => &mut self.gate,
            BlockMatrix::FfnUp => &mut self.up,
            BlockMatrix::FfnDown => &mut self.down,
        }
    }

    /// The matrices in the order a token meets them.
    pub fn iter(&self) -> impl Iterator<Item = &Matrix> {
        [&self.wq, &self.wk, &self.wv, &self.wo, &self.gate, &self.up, &self.down].into_iter()
    }
}

impl Weights {
    /// Finds, checks and wraps every weight the decoder needs. Quantized tensors stay
    /// zero-copy views of the file, and the matrices of formats whose fastest kernel reads
    /// interleaved rows (Q4_0, Q5_0, Q8_0, Q3_K, Q4_K, Q5_K and Q6_K on x86) also get that copy
    /// ([`QTensor::interleaved`]); norm gains are dequantized to f32 once. A block matrix
    /// absent from the file is read from its SWSC tensors when they are there.
    ///
    /// Each block's FFN width must be the one in `config.ffn_widths` ([`crate::Model::load`]
    /// reads them from the tensors' dims).
    ///
    /// # Errors
    /// [`Error::Io`] for a missing tensor, [`Error::TensorShape`] for a shape that does not
    /// match `config`, [`Error::UnsupportedTensorType`] for a format without kernels,
    /// [`Error::InvalidSwsc`] for SWSC tensors that are incomplete or inconsistent.
    pub fn load(file: &dyn ModelFile, config: &ModelConfig) -> Result<Self> {
        let read = |name: &str| Ok(file.tensor(name)?);
        let layers = (0..config.n_layers)
            .map(|i| {
                let norms = LayerWeights::vectors(config, i, &read)?;
                let names = BlockMatrix::tensor_names(i);
                let matrices = names
                    .iter()
                    .zip(Projections::shapes(config, i))
                    .map(|(name, [a, b])| block_matrix(file, name, a, b))
                    .collect::<Result<Vec<_>>>()?;
                Ok(LayerWeights { projections: Projections::from_vec(matrices), ..norms })
            })
            .collect::<Result<Vec<_>>>()?;
        let (d, vocab) = (config.d_model, config.vocab_size);
        // The embedding is read a row at a time, so on its own it keeps the file's rows
        // only. Tied to the head, it is the head's interleaved copy, whose rows give the
        // file's values: the file's pages are given back, not read again a lookup at a time.
        let token_embd = matrix("token_embd.weight", read("token_embd.weight")?, d, vocab)?;
        let (token_embd, output) = if file.has_tensor("output.weight") {
            let output = matrix("output.weight", read("output.weight")?, d, vocab)?;
            (token_embd, output.interleaved())
        } else {
            let output = token_embd.interleaved();
            (output.clone(), output)
        };
        Ok(Self {
            token_embd: Some(token_embd),
            layers,
            output_norm: vector("output_norm.weight", read("output_norm.weight")?, d)?,
            output: Some(output),
            rope_factors: rope_factors(&|name| file.has_tensor(name), &read, config)?,
        })
    }

    /// Every resident tensor a token is multiplied with: each block's projections (a SWSC
    /// matrix's factors), then the output head.
    pub fn matrices(&self) -> impl Iterator<Item = &QTensor> {
        self.layers
            .iter()
            .filter_map(|l| l.projections.as_ref())
            .flat_map(Projections::iter)
            .flat_map(Matrix::tensors)
            .chain(&self.output)
    }

    /// Bytes of the resident matrices a token reads: each block's projections (a SWSC
    /// matrix's labels included), then the output head.
    pub fn matrix_bytes(&self) -> usize {
        let blocks: usize = self
            .layers
            .iter()
            .filter_map(|l| l.projections.as_ref())
            .flat_map(Projections::iter)
            .map(Matrix::bytes)
            .sum();
        blocks + self.output.as_ref().map_or(0, |t| t.bytes().len())
    }
}

impl LayerWeights {
    /// Values of one block's gains and biases under `config`: what
    /// [`LayerWeights::vectors`] reads.
    pub(crate) fn vector_len(config: &ModelConfig) -> usize {
        let (d, b) = (config.d_model, config.block);
        let biases = if b.qkv_bias { config.q_dim() + 2 * config.kv_dim() } else { 0 };
        let qk = if b.qk_norm { 2 * config.head_dim } else { 0 };
        let post = if b.post_norms { 2 * d } else { 0 };
        2 * d + biases + qk + post
    }

    /// Block `layer`'s gains and biases, read with `read`, and no matrices.
    pub(crate) fn vectors(
        config: &ModelConfig,
        layer: usize,
        read: &dyn Fn(&str) -> Result<QTensor>,
    ) -> Result<Self> {
        let vector_of = |part: &str, len: usize| {
            let name = block_tensor_name(layer, part);
            vector(&name, read(&name)?, len)
        };
        let (d, q, kv, head) = (config.d_model, config.q_dim(), config.kv_dim(), config.head_dim);
        let b = config.block;
        let qkv_bias = b.qkv_bias.then(|| -> Result<_> {
            Ok([
                vector_of("attn_q.bias", q)?,
                vector_of("attn_k.bias", kv)?,
                vector_of("attn_v.bias", kv)?,
            ])
        });
        let qk_norm = b.qk_norm.then(|| -> Result<_> {
            Ok([vector_of("attn_q_norm.weight", head)?, vector_of("attn_k_norm.weight", head)?])
        });
        let post_norms = b.post_norms.then(|| -> Result<_> {
            Ok([vector_of("post_attention_norm.weight", d)?, vector_of("post_ffw_norm.weight", d)?])
        });
        Ok(Self {
            attn_norm: vector_of("attn_norm.weight", d)?,
            ffn_norm: vector_of("ffn_norm.weight", d)?,
            qkv_bias: qkv_bias.transpose()?,
            qk_norm: qk_norm.transpose()?,
            post_norms: post_norms.transpose()?,
            projections: None,
        })
    }
}

/// Per-pair divisors of RoPE's angles: Llama 3's one set (`rope_freqs`), or LongRoPE's
/// two (`rope_factors_short`, `rope_factors_long`), chosen by the context's length.
#[derive(Clone, Debug, PartialEq)]
pub struct RopeFactors {
    /// The factors of a context up to the original one (Llama 3's only set).
    pub short: Vec<f32>,
    /// The factors of a longer context.
    pub long: Option<Vec<f32>>,
}

impl RopeFactors {
    /// The factors a context of `ctx_len` positions takes, the model trained for
    /// `original`.
    pub fn for_context(&self, ctx_len: usize, original: usize) -> &[f32] {
        match &self.long {
            Some(long) if ctx_len > original => long,
            _ => &self.short,
        }
    }
}

/// RoPE's frequency factors, when the file `has` them, read with `read`.
pub(crate) fn rope_factors(
    has: &dyn Fn(&str) -> bool,
    read: &dyn Fn(&str) -> Result<QTensor>,
    config: &ModelConfig,
) -> Result<Option<RopeFactors>> {
    let factors = |name: &str| -> Result<Option<Vec<f32>>> {
        if !has(name) {
            return Ok(None);
        }
        let factors = vector(name, read(name)?, config.rope_dim / 2)?;
        if let Some(bad) = factors.iter().find(|f| !(f.is_finite() && **f > 0.0)) {
            return Err(Error::InvalidConfig {
                key: name.to_owned(),
                reason: format!("a factor of {bad} is not a positive number"),
            });
        }
        Ok(Some(factors))
    };
    if let Some(short) = factors("rope_freqs.weight")? {
        return Ok(Some(RopeFactors { short, long: None }));
    }
    Ok(match (factors("rope_factors_short.weight")?, factors("rope_factors_long.weight")?) {
        (Some(short), long) => Some(RopeFactors { short, long }),
        (None, Some(long)) => Some(RopeFactors { short: vec![1.0; long.len()], long: Some(long) }),
        (None, None) => None,
    })
}

/// Quantization blocks hold 32 values: an FFN width is a whole number of them.
const FFN_WIDTH_STEP: usize = 32;

/// Each block's FFN width, read from its gate, up and down matrices' dims (`dims` gives a
/// tensor's): `[d_model, f]`, `[d_model, f]` and `[f, d_model]`, with `f` a multiple of 32
/// and at most the width `config` declares for the block.
///
/// # Errors
/// [`Error::TensorShape`] naming the first matrix that does not fit, and the errors of
/// `dims`.
pub(crate) fn ffn_widths(
    config: &ModelConfig,
    dims: &dyn Fn(&str) -> Result<Vec<usize>>,
) -> Result<Vec<usize>> {
    let d = config.d_model;
    (0..config.n_layers)
        .map(|layer| {
            let [.., gate, up, down] = BlockMatrix::tensor_names(layer);
            let declared = config.ffn_widths[layer];
            let found = dims(&gate)?;
            let width = match found[..] {
                [a, f] if a == d && f > 0 && f <= declared => f,
                _ => return Err(shape_error(&gate, &found, &[d, declared])),
            };
            let whole = width / FFN_WIDTH_STEP * FFN_WIDTH_STEP;
            check_shape(&gate, &found, &[d, whole.max(FFN_WIDTH_STEP)])?;
            check_shape(&up, &dims(&up)?, &[d, width])?;
            check_shape(&down, &dims(&down)?, &[width, d])?;
            Ok(width)
        })
        .collect()
}

/// The dims of matrix `name` in `file`: its own, or `[inputs, outputs]` of its SWSC factors
/// (the labels' length and the centroids' outputs) when it is stored as those, which are
/// checked first ([`SwscMatrix::from_file`]) so that a broken factor is named as such.
pub(crate) fn matrix_dims(file: &dyn ModelFile, name: &str) -> Result<Vec<usize>> {
    if let (false, Some([centroids, labels, ..])) = (file.has_tensor(name), swsc_tensor_names(name))
    {
        let dim = |part: &str, i: usize| -> Result<usize> {
            if !file.has_tensor(part) {
                return Ok(0);
            }
            Ok(file.tensor(part)?.dims().get(i).copied().unwrap_or(0))
        };
        let dims = [dim(&labels, 0)?, dim(&centroids, 1)?];
        if SwscMatrix::from_file(file, name, (dims[0], dims[1]))?.is_some() {
            return Ok(dims.to_vec());
        }
    }
    Ok(file.tensor(name)?.dims().to_vec())
}

/// Checks that tensor `name` of type `ty` has shape `expected`.
pub(crate) fn check_shape(name: &str, dims: &[usize], expected: &[usize]) -> Result<()> {
    if dims != expected {
        return Err(shape_error(name, dims, expected));
    }
    Ok(())
}

fn shape_error(name: &str, dims: &[usize], expected: &[usize]) -> Error {
    Error::TensorShape {
        tensor: name.to_owned(),
        expected: expected.to_vec(),
        found: dims.to_vec(),
    }
}

/// Checks that a weight matrix `name` maps `inputs` values to `outputs` values, in a format
/// with kernels.
pub(crate) fn check_matrix(
    name: &str,
    ty: GgmlType,
    dims: &[usize],
    inputs: usize,
    outputs: usize,
) -> Result<()> {
    check_shape(name, dims, &[inputs, outputs])?;
    if !ty.is_supported() {
        return Err(Error::UnsupportedTensorType { tensor: name.to_owned(), ty });
    }
    Ok(())
}

/// Block matrix `name` from `inputs` to `outputs` values: its rows when the file holds them
/// (interleaved where that is faster), else its SWSC tensors.
fn block_matrix(file: &dyn ModelFile, name: &str, inputs: usize, outputs: usize) -> Result<Matrix> {
    if !file.has_tensor(name) {
        if let Some(swsc) = SwscMatrix::from_file(file, name, (inputs, outputs))? {
            return Ok(Matrix::SharedColumns(Box::new(swsc)));
        }
    }
    Ok(Matrix::Blocks(matrix(name, file.tensor(name)?, inputs, outputs)?.interleaved()))
}

fn matrix(name: &str, tensor: QTensor, inputs: usize, outputs: usize) -> Result<QTensor> {
    check_matrix(name, tensor.ty(), tensor.dims(), inputs, outputs)?;
    Ok(tensor)
}

/// A vector of `len` values, dequantized to f32.
pub(crate) fn vector(name: &str, tensor: QTensor, len: usize) -> Result<Vec<f32>> {
    check_shape(name, tensor.dims(), &[len])?;
    tensor
        .dequantize()
        .map_err(|source| Error::Io(lantern_io::Error::Tensor { name: name.to_owned(), source }))
}
