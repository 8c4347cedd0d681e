//! [`ModelConfig`]: the decoder's hyper-parameters, read from GGUF metadata.
//!
//! Architectures differ here, in data, not in code: the decoder is one generic llama-family
//! block, and an architecture is a metadata key prefix plus defaults.

use lantern_io::Metadata;

use crate::{Error, Result};

/// Architectures the generic decoder runs, by their `general.architecture` name.
pub const SUPPORTED_ARCHITECTURES: &str = "llama";

/// Caps that keep a hostile file from asking for absurd allocations.
const MAX_LAYERS: usize = 1024;
const MAX_DIM: usize = 1 << 20;
const MAX_CONTEXT: usize = 1 << 24;
const MAX_VOCAB: usize = 1 << 24;

/// Hyper-parameters of a llama-family decoder.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    /// `general.architecture`, e.g. `llama`.
    pub architecture: String,
    /// Number of transformer blocks.
    pub n_layers: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    /// Hidden width of the gated FFN: the widest block's.
    pub n_ff: usize,
    /// Hidden width of each block's FFN, at most `n_ff`: a block whose least useful neurons
    /// were pruned has fewer. The model's tensors decide it ([`crate::Model::load`]); the
    /// metadata alone gives `n_ff` for every block, or llama.cpp's per-block array.
    pub ffn_widths: Vec<usize>,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads (fewer than query heads under grouped-query attention).
    pub n_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Leading dimensions of each head that RoPE rotates.
    pub rope_dim: usize,
    /// RoPE frequency base.
    pub rope_base: f32,
    /// RMSNorm epsilon.
    pub rms_eps: f32,
    /// Context length the model was trained for.
    pub train_ctx_len: usize,
    /// Vocabulary size (rows of the embedding).
    pub vocab_size: usize,
}

impl ModelConfig {
    /// Reads the hyper-parameters of the architecture named in `metadata`.
    ///
    /// `vocab_size` comes from the embedding tensor, which is the ground truth the weights
    /// must agree with.
    ///
    /// # Errors
    /// [`Error::UnsupportedArchitecture`] for an architecture the decoder does not know,
    /// [`Error::Io`] for a missing or mistyped key, [`Error::InvalidConfig`] for values out
    /// of range or inconsistent with each other.
    pub fn from_metadata(metadata: &Metadata, vocab_size: usize) -> Result<Self> {
        let arch = metadata.str("general.architecture")?;
        if !SUPPORTED_ARCHITECTURES.split(", ").any(|a| a == arch) {
            return Err(Error::UnsupportedArchitecture {
                arch: arch.to_owned(),
                supported: SUPPORTED_ARCHITECTURES,
            });
        }
        let key = |k: &str| format!("{arch}.{k}");
        let usize_of = |k: &str| -> Result<usize> { Ok(metadata.u32(&key(k))? as usize) };

        let d_model = usize_of("embedding_length")?;
        let n_heads = usize_of("attention.head_count")?;
        let n_kv_heads = match metadata.opt_u32(&key("attention.head_count_kv"))? {
            Some(n) => n as usize,
            None => n_heads,
        };
        let head_dim = d_model.checked_div(n_heads).unwrap_or(0);
        let rope_dim = match metadata.opt_u32(&key("rope.dimension_count"))? {
            Some(n) => n as usize,
            None => head_dim,
        };
        let n_layers = usize_of("block_count")?;
        // llama.cpp writes one length per block as an array when the blocks differ.
        let ffn_key = key("feed_forward_length");
        let ffn_widths = match metadata.get(&ffn_key).and_then(|v| v.as_array()) {
            Some(_) => metadata
                .i32s(&ffn_key)?
                .into_iter()
                .map(|w| usize::try_from(w).unwrap_or(0))
                .collect(),
            None => vec![usize_of("feed_forward_length")?; n_layers.min(MAX_LAYERS)],
        };
        let config = Self {
            architecture: arch.to_owned(),
            n_layers,
            d_model,
            n_ff: ffn_widths.iter().copied().max().unwrap_or(0),
            ffn_widths,
            n_heads,
            n_kv_heads,
            head_dim,
            rope_dim,
            rope_base: metadata.opt_f32(&key("rope.freq_base"))?.unwrap_or(10_000.0),
            rms_eps: metadata.f32(&key("attention.layer_norm_rms_epsilon"))?,
            train_ctx_len: usize_of("context_length")?,
            vocab_size,
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        let arch = &self.architecture;
        let invalid =
            |k: &str, reason: String| Error::InvalidConfig { key: format!("{arch}.{k}"), reason };
        let in_range = |k: &str, v: usize, max: usize| {
            if v == 0 || v > max {
                Err(invalid(k, format!("{v} is outside 1..={max}")))
            } else {
                Ok(())
            }
        };
        in_range("block_count", self.n_layers, MAX_LAYERS)?;
        in_range("embedding_length", self.d_model, MAX_DIM)?;
        in_range("feed_forward_length", self.n_ff, MAX_DIM)?;
        if self.ffn_widths.len() != self.n_layers {
            return Err(invalid(
                "feed_forward_length",
                format!("{} lengths for {} blocks", self.ffn_widths.len(), self.n_layers),
            ));
        }
        for &width in &self.ffn_widths {
            in_range("feed_forward_length", width, self.n_ff)?;
        }
        in_range("attention.head_count", self.n_heads, self.d_model)?;
        in_range("attention.head_count_kv", self.n_kv_heads, self.n_heads)?;
        in_range("context_length", self.train_ctx_len, MAX_CONTEXT)?;
        in_range("vocab_size", self.vocab_size, MAX_VOCAB)?;
        if !self.d_model.is_multiple_of(self.n_heads) {
            return Err(invalid(
                "attention.head_count",
                format!("{} heads do not divide the width {}", self.n_heads, self.d_model),
            ));
        }
        if !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return Err(invalid(
                "attention.head_count_kv",
                format!("{} kv heads do not divide {} heads", self.n_kv_heads, self.n_heads),
            ));
        }
        // No rotated dimension would leave attention blind to position.
        if self.rope_dim == 0 || self.rope_dim > self.head_dim || !self.rope_dim.is_multiple_of(2) {
            return Err(invalid(
                "rope.dimension_count",
                format!(
                    "{} must be even, from 2 to the head width {}",
                    self.rope_dim, self.head_dim
                ),
            ));
        }
        if !(self.rope_base.is_finite() && self.rope_base > 0.0) {
            return Err(invalid(
                "rope.freq_base",
                format!("{} is not a positive number", self.rope_base),
            ));
        }
        if !(self.rms_eps.is_finite() && self.rms_eps >= 0.0) {
            return Err(invalid(
                "attention.layer_norm_rms_epsilon",
                format!("{} is not a non-negative number", self.rms_eps),
            ));
        }
        Ok(())
    }

    /// Width of the key (and value) projection: `n_kv_heads · head_dim`.
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }
}
