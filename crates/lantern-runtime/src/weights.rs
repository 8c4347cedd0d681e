//! The decoder's weights, found by name in a GGUF file and checked against the config.
//!
//! Names follow llama.cpp's tensor-name table (`blk.N.attn_q.weight`, …), which every
//! llama-family GGUF shares; shapes are innermost first, so a projection from `a` to `b`
//! values is `[a, b]`.

use lantern_core::QTensor;
use lantern_io::ModelFile;

use crate::{Error, ModelConfig, Result};

/// The weights of one transformer block.
#[derive(Clone, Debug)]
pub struct LayerWeights {
    /// RMSNorm gain before attention, `[d_model]`.
    pub attn_norm: Vec<f32>,
    /// Query projection, `[d_model, n_heads·head_dim]`.
    pub wq: QTensor,
    /// Key projection, `[d_model, kv_dim]`.
    pub wk: QTensor,
    /// Value projection, `[d_model, kv_dim]`.
    pub wv: QTensor,
    /// Attention output projection, `[n_heads·head_dim, d_model]`.
    pub wo: QTensor,
    /// RMSNorm gain before the FFN, `[d_model]`.
    pub ffn_norm: Vec<f32>,
    /// FFN gate projection, `[d_model, n_ff]`.
    pub gate: QTensor,
    /// FFN up projection, `[d_model, n_ff]`.
    pub up: QTensor,
    /// FFN down projection, `[n_ff, d_model]`.
    pub down: QTensor,
}

/// All weights of a llama-family decoder.
#[derive(Clone, Debug)]
pub struct Weights {
    /// Token embedding, `[d_model, vocab]`.
    pub token_embd: QTensor,
    /// Transformer blocks in order.
    pub layers: Vec<LayerWeights>,
    /// Final RMSNorm gain, `[d_model]`.
    pub output_norm: Vec<f32>,
    /// Output head, `[d_model, vocab]`; the embedding itself when the model ties them.
    pub output: QTensor,
}

impl Weights {
    /// Finds, checks and wraps every weight the decoder needs. Quantized tensors stay
    /// zero-copy views of the file, and the matrices of formats whose fastest kernel reads
    /// interleaved rows (Q4_0, Q5_0 and Q6_K on x86) also get that copy ([`QTensor::interleaved`]); norm
    /// gains are dequantized to f32 once.
    ///
    /// # Errors
    /// [`Error::Io`] for a missing tensor, [`Error::TensorShape`] for a shape that does not
    /// match `config`, [`Error::UnsupportedTensorType`] for a format without kernels.
    pub fn load(file: &dyn ModelFile, config: &ModelConfig) -> Result<Self> {
        let d = config.d_model;
        let q_dim = config.n_heads * config.head_dim;
        let loader = Loader { file };
        let layers = (0..config.n_layers)
            .map(|i| {
                let name = |t: &str| format!("blk.{i}.{t}.weight");
                Ok(LayerWeights {
                    attn_norm: loader.vector(&name("attn_norm"), d)?,
                    wq: loader.projection(&name("attn_q"), d, q_dim)?,
                    wk: loader.projection(&name("attn_k"), d, config.kv_dim())?,
                    wv: loader.projection(&name("attn_v"), d, config.kv_dim())?,
                    wo: loader.projection(&name("attn_output"), q_dim, d)?,
                    ffn_norm: loader.vector(&name("ffn_norm"), d)?,
                    gate: loader.projection(&name("ffn_gate"), d, config.n_ff)?,
                    up: loader.projection(&name("ffn_up"), d, config.n_ff)?,
                    down: loader.projection(&name("ffn_down"), config.n_ff, d)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // The embedding is read a row at a time, so it keeps the file's rows only.
        let token_embd = loader.matrix("token_embd.weight", d, config.vocab_size)?;
        let output = if file.has_tensor("output.weight") {
            loader.projection("output.weight", d, config.vocab_size)?
        } else {
            token_embd.clone().interleaved()
        };
        Ok(Self {
            token_embd,
            layers,
            output_norm: loader.vector("output_norm.weight", d)?,
            output,
        })
    }

    /// Every matrix a token is multiplied with: each block's projections, then the output
    /// head.
    pub fn matrices(&self) -> impl Iterator<Item = &QTensor> {
        self.layers
            .iter()
            .flat_map(|l| [&l.wq, &l.wk, &l.wv, &l.wo, &l.gate, &l.up, &l.down])
            .chain([&self.output])
    }

    /// Bytes of weight data read to decode one token: every block's projections and the
    /// output head (the embedding contributes one row).
    pub fn bytes_per_token(&self) -> usize {
        self.matrices().map(|t| t.bytes().len()).sum()
    }
}

struct Loader<'a> {
    file: &'a dyn ModelFile,
}

impl Loader<'_> {
    fn checked(&self, name: &str, expected: &[usize]) -> Result<QTensor> {
        let tensor = self.file.tensor(name)?;
        if tensor.dims() != expected {
            return Err(Error::TensorShape {
                tensor: name.to_owned(),
                expected: expected.to_vec(),
                found: tensor.dims().to_vec(),
            });
        }
        Ok(tensor)
    }

    /// A weight matrix mapping `inputs` values to `outputs` values, in a format with kernels.
    fn matrix(&self, name: &str, inputs: usize, outputs: usize) -> Result<QTensor> {
        let tensor = self.checked(name, &[inputs, outputs])?;
        if !tensor.ty().is_supported() {
            return Err(Error::UnsupportedTensorType { tensor: name.to_owned(), ty: tensor.ty() });
        }
        Ok(tensor)
    }

    /// A weight matrix that tokens are multiplied with, in the layout of its fastest kernel.
    fn projection(&self, name: &str, inputs: usize, outputs: usize) -> Result<QTensor> {
        Ok(self.matrix(name, inputs, outputs)?.interleaved())
    }

    /// A vector of `len` values, dequantized to f32.
    fn vector(&self, name: &str, len: usize) -> Result<Vec<f32>> {
        let tensor = self.checked(name, &[len])?;
        tensor.dequantize().map_err(|source| {
            Error::Io(lantern_io::Error::Tensor { name: name.to_owned(), source })
        })
    }
}
